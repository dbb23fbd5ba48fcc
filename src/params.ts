import type { FloatArray } from './dtype.js'

/** One named tensor inside the flat parameter buffer. */
export interface ParameterSpec {
  /** PyTorch state_dict name, e.g. `rnn.weight_hh_l0` or `head.bias`. */
  readonly name: string
  /** PyTorch shape, row-major. */
  readonly shape: readonly number[]
  readonly offset: number
  readonly size: number
}

/**
 * Every parameter of a model in ONE flat buffer, with a gradient buffer of the same layout.
 * Clipping, optimizers and serialization are then single loops over `values` and `grads`,
 * and the named views (`value(name)`, `grad(name)`) alias those buffers: nothing is copied.
 */
export class ParameterSet {
  readonly values: FloatArray
  readonly grads: FloatArray
  readonly specs: readonly ParameterSpec[]
  private readonly byName = new Map<string, ParameterSpec>()

  /** `alloc` gives zeroed buffers of the model's float type (in the kernels' memory). */
  constructor(alloc: (n: number) => FloatArray, shapes: ReadonlyArray<readonly [string, readonly number[]]>) {
    const specs: ParameterSpec[] = []
    let offset = 0
    for (const [name, shape] of shapes) {
      const size = shape.reduce((a, b) => a * b, 1)
      const spec = { name, shape: [...shape], offset, size }
      specs.push(spec)
      this.byName.set(name, spec)
      offset += size
    }
    this.specs = specs
    this.values = alloc(offset)
    this.grads = alloc(offset)
  }

  get size(): number {
    return this.values.length
  }

  spec(name: string): ParameterSpec | undefined {
    return this.byName.get(name)
  }

  /** The live view of a parameter's values (writes change the model). */
  value(name: string): FloatArray {
    const s = this.mustSpec(name)
    return this.values.subarray(s.offset, s.offset + s.size)
  }

  /** The live view of a parameter's gradient. */
  grad(name: string): FloatArray {
    const s = this.mustSpec(name)
    return this.grads.subarray(s.offset, s.offset + s.size)
  }

  zeroGrads(): void {
    this.grads.fill(0)
  }

  private mustSpec(name: string): ParameterSpec {
    const s = this.byName.get(name)
    if (!s) {
      throw new Error(
        `No parameter named ${JSON.stringify(name)}; the model has ${[...this.byName.keys()].join(', ')}`,
      )
    }
    return s
  }
}
