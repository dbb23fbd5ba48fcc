import { RxrnnError } from '../errors.js'
import type { KeySlots } from '../key-store.js'

/** How a missing (`null`) input is filled in: the key's last observed value, or zero. */
export type MissingPolicy = 'last' | 'zero'
export const MISSING_POLICIES: readonly MissingPolicy[] = ['last', 'zero']

/**
 * Irregular time and missing values, as model inputs.
 *
 * @example
 * { features: 3, timeFeature: true, missing: 'last' }   // the model takes 3 + 3 + 1 = 7 inputs
 */
export interface InputOptions {
  /** Values per raw `x`. */
  features: number
  /** Add the time since the key's last tick as an input: ln(1 + seconds), 0 on a key's first tick. */
  timeFeature?: boolean
  /** Accept `null` entries in x: impute them and add a mask input per feature (1 observed, 0 imputed). */
  missing?: MissingPolicy
  /**
   * Where each key's last values and time live; default a map inside the augmenter (then
   * `delete` a key when you drop it). With a KeyedTrainer pass `keyed.slots('inputs')`.
   */
  keys?: KeySlots<KeyInputs>
}

/** One key's memory: its last observed value per feature, and the time of its last tick. */
export interface KeyInputs {
  last: Float64Array
  lastT: number
}

/**
 * Turns a raw tick (x with possible nulls, optional time t in ms since the epoch) into the
 * model's input: [imputed x (features), masks (features, with `missing`), ln(1 + Δt s) (with
 * `timeFeature`)]. Per key it remembers the last observed values and the last time.
 * A null without `missing`, or anything else not finite, is a `bad_input` error and changes no state.
 *
 * Why ln(1 + seconds): gaps range from milliseconds to days; the logarithm keeps the input in the
 * range a recurrent net's gates are sensitive to, whatever the feed's cadence.
 *
 * Cost: O(features) per tick, no allocation after a key's first tick; memory features + 1 numbers per key.
 *
 * @example
 * const inputs = new InputAugmenter({ features: 2, missing: 'last', timeFeature: true })
 * const x = inputs.prepare('sensor-7', [21.5, null], 1733472000000)   // [21.5, last, 1, 0, 0]
 * trainer.observe(x, target)
 * inputs.commit()
 */
export class InputAugmenter {
  readonly features: number
  readonly timeFeature: boolean
  readonly missing: MissingPolicy | null
  /** Inputs the model takes. */
  readonly inputSize: number
  private readonly out: Float64Array
  private readonly keys: KeySlots<KeyInputs>
  /** What the last `prepare` would record, until `commit` records it. */
  private pendingKey: string | null = null
  private readonly pendingX: Float64Array
  private readonly pendingSeen: Uint8Array
  private pendingT = Number.NaN

  constructor(options: InputOptions) {
    const problems: string[] = []
    if (!Number.isInteger(options.features) || options.features < 1)
      problems.push(`features is ${JSON.stringify(options.features)}; it must be an integer >= 1`)
    if (options.missing !== undefined && !MISSING_POLICIES.includes(options.missing))
      problems.push(
        `missing is ${JSON.stringify(options.missing)}; use one of ${MISSING_POLICIES.join(', ')}`,
      )
    if (problems.length > 0) throw new RxrnnError('bad_config', 'Invalid input options', problems)
    this.features = options.features
    this.keys = options.keys ?? new Map()
    this.timeFeature = options.timeFeature === true
    this.missing = options.missing ?? null
    this.inputSize = this.features * (this.missing ? 2 : 1) + (this.timeFeature ? 1 : 0)
    this.out = new Float64Array(this.inputSize)
    this.pendingX = new Float64Array(this.features)
    this.pendingSeen = new Uint8Array(this.features)
  }

  /**
   * The model input for this tick (reused by the next call). Throws RxrnnError('bad_input')
   * first, touching nothing; records nothing either until `commit()` (call it once the model
   * accepted the tick, so a tick refused later, e.g. for its target, leaves no trace).
   */
  prepare(key: string, x: ArrayLike<number | null>, t?: number | null): Float64Array {
    const F = this.features
    if (x === null || typeof x !== 'object' || typeof x.length !== 'number' || x.length !== F)
      throw new RxrnnError(
        'bad_input',
        `x must hold ${F} values (null for a missing one${this.missing ? '' : ', with --missing'})`,
      )
    for (let i = 0; i < F; i++) {
      const v = x[i]
      if (v === null && this.missing) continue
      if (typeof v !== 'number' || !Number.isFinite(v))
        throw new RxrnnError(
          'bad_input',
          v === null
            ? `x[${i}] is null; missing values need the missing option (--missing last|zero), or impute them before sending`
            : `x[${i}] is ${String(v)}; every value in x must be a finite number (or null with --missing)`,
        )
    }
    if (t !== undefined && t !== null && !(typeof t === 'number' && Number.isFinite(t)))
      throw new RxrnnError(
        'bad_input',
        `t is ${String(t)}; send t as milliseconds since the epoch, a finite number`,
      )
    const state = this.keys.get(key)
    const out = this.out
    this.pendingKey = key
    for (let i = 0; i < F; i++) {
      const v = x[i]
      if (v === null || v === undefined) {
        out[i] = this.missing === 'last' && state ? state.last[i]! : 0
        out[F + i] = 0
        this.pendingSeen[i] = 0
      } else {
        out[i] = v
        this.pendingX[i] = v
        this.pendingSeen[i] = 1
        if (this.missing) out[F + i] = 1
      }
    }
    if (this.timeFeature) {
      const now = typeof t === 'number' ? t : Date.now()
      const gap = !state || Number.isNaN(state.lastT) ? 0 : Math.max(0, now - state.lastT) / 1000
      out[this.inputSize - 1] = Math.log1p(gap)
      this.pendingT = now
    }
    return out
  }

  /** Records the last prepared tick: its observed values (for 'last') and its time. */
  commit(): void {
    const key = this.pendingKey
    if (key === null) return
    this.pendingKey = null
    let state = this.keys.get(key)
    if (!state) {
      state = { last: new Float64Array(this.features), lastT: Number.NaN }
      this.keys.set(key, state)
    }
    for (let i = 0; i < this.features; i++) if (this.pendingSeen[i] === 1) state.last[i] = this.pendingX[i]!
    if (this.timeFeature) state.lastT = this.pendingT
  }

  delete(key: string): void {
    this.keys.delete(key)
  }

  /** Every key's last values and time (copies), for a snapshot. */
  exportState(): Record<string, unknown> {
    return Object.fromEntries(
      [...this.keys.entries()].map(([key, s]) => [key, { last: s.last.slice(), lastT: s.lastT }]),
    )
  }

  /** Restores `exportState`'s output (same features); throws RxrnnError('bad_snapshot') naming what does not fit. */
  importState(saved: Record<string, unknown>): void {
    const restored = new Map<string, KeyInputs>()
    for (const [key, value] of Object.entries(saved ?? {})) {
      const s = value as { last?: unknown; lastT?: unknown }
      if (
        !(s?.last instanceof Float64Array) ||
        s.last.length !== this.features ||
        typeof s.lastT !== 'number'
      )
        throw new RxrnnError(
          'bad_snapshot',
          `Cannot restore this snapshot: the inputs of key ${JSON.stringify(key)} do not fit`,
        )
      restored.set(key, { last: s.last.slice(), lastT: s.lastT })
    }
    this.keys.clear()
    for (const [key, s] of restored) this.keys.set(key, s)
  }
}
