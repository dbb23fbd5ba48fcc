import type { FloatArray } from './dtype.js'
import type { RxrnnErrorCode } from './errors.js'
import { RxrnnError } from './errors.js'

/**
 * Copies `values` into `out` after checking that it holds exactly `out.length` finite numbers;
 * throws a RxrnnError naming the first problem otherwise, before anything is written.
 */
export function copyFiniteVector(
  out: FloatArray,
  values: ArrayLike<number>,
  what: string,
  code: RxrnnErrorCode,
  sizeName: string,
): void {
  const problem = finiteVectorProblem(values, out.length, what, sizeName) ?? float32Problem(out, values, what)
  if (problem) throw new RxrnnError(code, problem)
  for (let i = 0; i < out.length; i++) out[i] = values[i]!
}

/**
 * A finite double past ±3.4e38 turns into ±Infinity when stored in a float32 array: the first
 * such value, named, or null (always null for a float64 `out`).
 */
export function float32Problem(out: FloatArray, values: ArrayLike<number>, what: string): string | null {
  if (!(out instanceof Float32Array)) return null
  for (let i = 0; i < out.length; i++) {
    const v = values[i]!
    if (!Number.isFinite(Math.fround(v)))
      return `${what}[${i}] is ${v}, beyond the float32 range (±3.4e38) of this model; rescale it first`
  }
  return null
}

/** The first thing wrong with `values` as a vector of `length` finite numbers, or null. */
export function finiteVectorProblem(
  values: unknown,
  length: number,
  what: string,
  sizeName: string,
): string | null {
  if (
    values === null ||
    typeof values !== 'object' ||
    typeof (values as ArrayLike<number>).length !== 'number'
  ) {
    return `${what} must be an array of ${length} numbers, got ${describe(values)}`
  }
  const v = values as ArrayLike<unknown>
  if (v.length !== length) {
    return `${what} has ${v.length} values but the model takes ${length} (${sizeName}); send exactly ${length}`
  }
  for (let i = 0; i < length; i++) {
    const e = v[i]
    if (typeof e !== 'number') return `${what}[${i}] is ${describe(e)}, not a number`
    if (!Number.isFinite(e))
      return `${what}[${i}] is ${e}; values must be finite (impute or drop missing data first)`
  }
  return null
}

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'string')
    return `the string ${JSON.stringify(value.length > 20 ? `${value.slice(0, 20)}…` : value)}`
  return typeof value
}
