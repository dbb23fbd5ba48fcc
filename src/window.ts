import type { FloatArray, FloatArrayConstructor } from './dtype.js'
import { RxrnnError } from './errors.js'
import type { LayerMasks } from './layer.js'
import { restoreArray } from './snapshot.js'
import { RecurrentState } from './state.js'

/** Sizes a window needs, from the model and the trainer options. */
export interface WindowLayout {
  /** Steps backpropagated through (k2); the ring holds k2 + 1 slots, the extra one for the state entering the window. */
  k2: number
  inputSize: number
  hiddenSize: number
  numLayers: number
  /** Floats of state per layer. */
  stateSize: number
  /** Per-layer inputs: inputSize, then hiddenSize for every layer above. */
  layerInputSizes: readonly number[]
  cacheSize: number
  outputSize: number
  targetSize: number
  /** Keep each step's gate activations for backward (fast), or recompute them at update time (small). */
  storeActivations: boolean
  inputDropout: boolean
  recurrentDropout: boolean
  zoneout: boolean
  /**
   * Floats the gradient algorithm carries per sequence from step to step (RTRL's, SnAp-1's or
   * UORO's sensitivities and summed gradient); 0 or absent for TBPTT.
   */
  carriedFloats?: number
}

/** One time step of the window: what it read, what it must predict, what forward produced. */
export interface Slot {
  readonly x: FloatArray
  readonly target: FloatArray
  hasTarget: boolean
  /** State after this step, per layer (views of `stateOf.data`). */
  readonly states: readonly FloatArray[]
  readonly stateOf: RecurrentState
  /** Gate activations per layer, when activations are stored. */
  readonly caches: readonly FloatArray[]
  readonly y: FloatArray
  /** Per layer, or null when the layer is not regularised. */
  readonly masks: readonly (LayerMasks | null)[]
}

/**
 * The truncation window of one sequence: a ring of k2 + 1 slots in flat buffers allocated
 * once, so memory is O(k2) however long the stream runs, and a step writes into the oldest slot
 * instead of allocating. Slot `newest` holds the latest step; the slot before the oldest step in
 * the window holds the state entering it (a constant for backpropagation).
 */
export class SequenceWindow {
  readonly capacity: number
  readonly slots: readonly Slot[]
  /** Index of the newest slot. */
  newest = 0
  /** Steps in the window (at most k2), counted since the last reset. */
  filled = 0
  /** Steps since the last update or reset. */
  sinceUpdate = 0
  /** Steps observed in total, never reset (the `step` of update reports). */
  observed = 0
  /** Consecutive steps, up to the horizon, that brought a target (multi-horizon training; see HorizonTargets). */
  targetRun = 0
  /** The window-level variational dropout masks, redrawn at the start of each truncation window. */
  readonly windowMasks: readonly (LayerMasks | null)[]
  /** Deterministic inference state, kept apart from the training trajectory when dropout or zoneout randomise it. */
  readonly cleanState: RecurrentState | null
  /** Every slot's floats, in one buffer. */
  readonly buffer: FloatArray
  /**
   * Whether the buffer came from the kernels' allocator (so kernels work on the slots in place);
   * else the trainer steps the window through its own scratch and copies the states in.
   */
  readonly placed: boolean
  /**
   * What a forward-mode gradient algorithm carries for this sequence (its sensitivities and the
   * gradient summed since the last update; see src/gradients/), empty for TBPTT.
   */
  readonly carried: FloatArray
  /** The summed (not yet averaged) loss of the steps since the last update, and how many had a target (forward mode). */
  carriedLoss = 0
  carriedLossSteps = 0

  /**
   * `alloc`, when given, places the slots' buffer (e.g. in the kernels' memory, so the
   * WebAssembly kernels read and write the window without staging copies).
   */
  constructor(
    readonly layout: WindowLayout,
    ArrayType: FloatArrayConstructor,
    alloc?: (n: number) => FloatArray,
  ) {
    const L = layout
    this.capacity = L.k2 + 1
    const cap = this.capacity
    const stateFloats = L.numLayers * L.stateSize
    const cacheFloats = L.storeActivations ? L.numLayers * L.cacheSize : 0
    const yFloats = L.storeActivations ? L.outputSize : 0
    const maskFloats = L.layerInputSizes.reduce(
      (sum, inSize) =>
        sum +
        (L.inputDropout ? inSize : 0) +
        (L.recurrentDropout ? L.hiddenSize : 0) +
        (L.zoneout ? L.stateSize : 0),
      0,
    )
    const perSlot = L.inputSize + L.targetSize + stateFloats + cacheFloats + yFloats + maskFloats
    const regularised = L.inputDropout || L.recurrentDropout || L.zoneout
    const noCaches: FloatArray[] = []
    const noMasks: null[] = L.layerInputSizes.map(() => null)
    const emptyOutput = new ArrayType(0)
    const buffer = alloc ? alloc(perSlot * cap) : new ArrayType(perSlot * cap)
    this.buffer = buffer
    this.placed = alloc !== undefined
    let offset = 0
    const take = (n: number): FloatArray => buffer.subarray(offset, (offset += n))
    const slots: Slot[] = []
    for (let s = 0; s < cap; s++) {
      const x = take(L.inputSize)
      const target = take(L.targetSize)
      const stateData = take(stateFloats)
      const stateOf = new RecurrentState(stateData, L.numLayers, L.hiddenSize)
      // Slots of windows that store no activations or masks share their empty parts: a key of a
      // keyed stream then holds fewer JS objects per slot.
      const caches = L.storeActivations
        ? Array.from({ length: L.numLayers }, () => take(L.cacheSize))
        : noCaches
      const y = yFloats > 0 ? take(yFloats) : emptyOutput
      const masks = regularised ? L.layerInputSizes.map((inSize) => this.layerMasks(take, inSize)) : noMasks
      slots.push({ x, target, hasTarget: false, states: stateOf.layers, stateOf, caches, y, masks })
    }
    this.slots = slots
    const own = (n: number): FloatArray => new ArrayType(n)
    this.windowMasks = L.layerInputSizes.map((inSize) => this.layerMasks(own, inSize))
    this.carried = new ArrayType(L.carriedFloats ?? 0)
    this.cleanState =
      L.inputDropout || L.recurrentDropout || L.zoneout
        ? new RecurrentState(new ArrayType(stateFloats), L.numLayers, L.hiddenSize)
        : null
  }

  private layerMasks(take: (n: number) => FloatArray, inSize: number): LayerMasks | null {
    const L = this.layout
    if (!L.inputDropout && !L.recurrentDropout && !L.zoneout) return null
    return {
      x: L.inputDropout ? take(inSize) : null,
      h: L.recurrentDropout ? take(L.hiddenSize) : null,
      zone: L.zoneout ? take(L.stateSize) : null,
    }
  }

  /** The slot `back` steps before the newest (0 = newest). */
  slotBack(back: number): Slot {
    return this.slots[(this.newest - back + this.capacity * 2) % this.capacity]!
  }

  /** The current hidden state (after the newest step). */
  get state(): RecurrentState {
    return this.slots[this.newest]!.stateOf
  }

  /** Everything needed to resume this window exactly (typed arrays are copies). */
  exportState(): Record<string, unknown> {
    return {
      newest: this.newest,
      filled: this.filled,
      sinceUpdate: this.sinceUpdate,
      observed: this.observed,
      targetRun: this.targetRun,
      buffer: this.buffer.slice(),
      hasTarget: Uint8Array.from(this.slots, (s) => (s.hasTarget ? 1 : 0)),
      windowMasks: this.windowMasks.map((m) => (m ? [m.x?.slice() ?? null, m.h?.slice() ?? null] : null)),
      cleanState: this.cleanState?.data.slice() ?? null,
      ...(this.carried.length > 0
        ? {
            carried: this.carried.slice(),
            carriedLoss: this.carriedLoss,
            carriedLossSteps: this.carriedLossSteps,
          }
        : {}),
    }
  }

  /** Restores `exportState`'s output into this (same layout) window. */
  importState(saved: Record<string, unknown>): void {
    const int = (name: string, max: number): number => {
      const v = saved[name]
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
        throw new RxrnnError(
          'bad_snapshot',
          `Cannot restore this snapshot: window.${name} is ${JSON.stringify(v)}`,
        )
      }
      return v
    }
    const newest = int('newest', this.capacity - 1)
    const filled = int('filled', this.layout.k2)
    const sinceUpdate = int('sinceUpdate', this.layout.k2)
    const observed = int('observed', Number.MAX_SAFE_INTEGER)
    restoreArray(this.buffer, saved.buffer, 'window.buffer')
    const hasTarget = new Uint8Array(this.capacity)
    restoreArray(hasTarget, saved.hasTarget, 'window.hasTarget')
    const masks = saved.windowMasks
    if (!Array.isArray(masks) || masks.length !== this.windowMasks.length) {
      throw new RxrnnError(
        'bad_snapshot',
        'Cannot restore this snapshot: window.windowMasks does not fit this model',
      )
    }
    this.windowMasks.forEach((m, l) => {
      const pair = masks[l] as [unknown, unknown] | null
      if (m?.x) restoreArray(m.x, pair?.[0], `window.windowMasks[${l}].x`)
      if (m?.h) restoreArray(m.h, pair?.[1], `window.windowMasks[${l}].h`)
    })
    if (this.cleanState) restoreArray(this.cleanState.data, saved.cleanState, 'window.cleanState')
    if (this.carried.length > 0) {
      restoreArray(this.carried, saved.carried, 'window.carried')
      const loss = saved.carriedLoss
      const steps = saved.carriedLossSteps
      if (typeof loss !== 'number' || typeof steps !== 'number' || !Number.isInteger(steps) || steps < 0) {
        throw new RxrnnError('bad_snapshot', 'Cannot restore this snapshot: window.carriedLoss is malformed')
      }
      this.carriedLoss = loss
      this.carriedLossSteps = steps
    }
    this.slots.forEach((slot, i) => {
      slot.hasTarget = hasTarget[i] === 1
    })
    this.newest = newest
    this.filled = filled
    this.sinceUpdate = sinceUpdate
    this.observed = observed
    this.targetRun = typeof saved.targetRun === 'number' ? saved.targetRun : 0
  }

  /** A sequence boundary: zero state, empty window, zero sensitivities. */
  reset(): void {
    this.state.reset()
    this.cleanState?.reset()
    this.carried.fill(0)
    this.carriedLoss = 0
    this.carriedLossSteps = 0
    this.filled = 0
    this.sinceUpdate = 0
    this.targetRun = 0
  }
}
