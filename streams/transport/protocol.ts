/**
 * The rxrnn wire protocol: every frame that crosses a WebSocket, as TypeScript types, and the
 * validation of what clients send. Frames are plain objects tagged by `type`; they travel as
 * binary msgpack frames or JSON text frames (see `codec.ts`), and the server answers each
 * connection in the encoding it used.
 *
 * Producer → server: `tick`. Client → server: `hello`, `subscribe`, `unsubscribe`, `reset`.
 * Server → sender of a tick: `prediction`. Server → subscribers: `update`, `metrics`,
 * `prediction`. Replies: `welcome` (to hello), `subscribed` (to subscribe and unsubscribe),
 * `error` (to any frame it rejects).
 *
 * Every client frame may carry a numeric `id`; a reply or error about that frame echoes it.
 */
import type { RxrnnErrorCode } from '../../src/errors.js'

/** Bumped when a frame changes incompatibly; sent in `welcome`. */
export const PROTOCOL_VERSION = 1

/** Longest accepted `key`, in UTF-16 code units, unless the server configures another. */
export const DEFAULT_MAX_KEY_LENGTH = 256

/** Most keys one `subscribe` may name, unless the server configures another. */
export const DEFAULT_MAX_SUBSCRIBE_KEYS = 1000

/** What a subscriber can follow. */
export const CHANNELS = ['predictions', 'updates', 'metrics', 'hidden'] as const
export type Channel = (typeof CHANNELS)[number]

export const CLIENT_FRAME_TYPES = ['tick', 'subscribe', 'unsubscribe', 'reset', 'hello'] as const
export const SERVER_FRAME_TYPES = [
  'prediction',
  'update',
  'metrics',
  'hidden',
  'drift',
  'subscribed',
  'welcome',
  'error',
] as const
export type ClientFrameType = (typeof CLIENT_FRAME_TYPES)[number]
export type ServerFrameType = (typeof SERVER_FRAME_TYPES)[number]

/**
 * A vector of numbers as it arrives: a plain array (JSON, or a msgpack array from any client),
 * or a typed array (msgpackr's typed-array extension, see `codec.ts`).
 */
export type NumericVector = number[] | Float32Array | Float64Array

/**
 * One step of one sequence, sent by a producer.
 *
 * @example
 * const tick: TickFrame = { type: 'tick', key: 'sensor-7', x: [0.1, 0.2, 0.3], y: 1, id: 42 }
 */
export interface TickFrame {
  type: 'tick'
  /** Names the sequence; the server keeps one hidden state per key. */
  key: string
  /** The inputs at this step; `inputSize` finite numbers. */
  x: NumericVector
  /**
   * The target for this step, when the producer knows it: a class index for a classification
   * model, or the regression targets (a single number when the model has one output).
   */
  y?: number | NumericVector
  /** Echoed in the `prediction` (or `error`) that answers this tick. */
  id?: number
  /**
   * When the tick happened, in milliseconds since the epoch (irregular feeds). With
   * `--time-feature` the model also gets the time since the key's previous tick.
   */
  t?: number
}

/**
 * Follow channels, optionally only for some keys. Replaces any earlier subscription on the
 * connection; the server answers with `subscribed`.
 *
 * @example
 * const sub: SubscribeFrame = { type: 'subscribe', channels: ['updates', 'metrics'], keys: ['sensor-7'] }
 */
export interface SubscribeFrame {
  type: 'subscribe'
  channels: Channel[]
  /** Only these keys; omitted: every key. Metrics are global and ignore this filter. */
  keys?: string[]
  /**
   * At most this many prediction, update and hidden frames per second to this connection (each
   * channel counted apart; metrics are never sampled); the rest are sampled out, not queued. A dashboard sets it to draw a 10,000
   * ticks/s feed without drowning. Omitted: every frame.
   */
  maxRate?: number
  id?: number
}

/**
 * Stop following every channel; the server answers `{ type: 'subscribed', channels: [] }`.
 *
 * @example
 * const unsub: UnsubscribeFrame = { type: 'unsubscribe' }
 */
export interface UnsubscribeFrame {
  type: 'unsubscribe'
  id?: number
}

/**
 * A sequence boundary: the next tick for `key` starts from a fresh hidden state.
 *
 * @example
 * const reset: ResetFrame = { type: 'reset', key: 'sensor-7' }
 */
export interface ResetFrame {
  type: 'reset'
  key: string
  id?: number
}

/**
 * Asks for the protocol version and the model's shape; the server answers `welcome`.
 *
 * @example
 * const hello: HelloFrame = { type: 'hello' }
 */
export interface HelloFrame {
  type: 'hello'
  id?: number
}

/** Everything a client may send. */
export type ClientFrame = TickFrame | SubscribeFrame | UnsubscribeFrame | ResetFrame | HelloFrame

/**
 * The model's output for a tick, sent to the connection that sent it (and to subscribers of
 * `predictions`). `y` is a plain array so that any msgpack or JSON client reads it natively.
 *
 * @example
 * const p: PredictionFrame = { type: 'prediction', key: 'sensor-7', id: 42, y: [0.1, 0.9] }
 */
export interface PredictionFrame {
  type: 'prediction'
  key: string
  /** The tick's id; omitted when the tick had none. */
  id?: number
  y: number[]
  /** The tick's target, in frames to other subscribers of `predictions` when the tick had one. */
  target?: number[]
  /** With --horizon H: H rows of outputSize; ahead[h - 1] forecasts the y of this key's tick h - 1 on (ahead[0] is y). */
  ahead?: number[][]
  /**
   * With --coverage c: an interval holding this tick's target with long-run probability c
   * (±Infinity, null in JSON, until a key has enough residuals to calibrate it).
   */
  lower?: number[]
  upper?: number[]
  /** With --coverage and --horizon: the interval of each `ahead` row. */
  aheadLower?: number[][]
  aheadUpper?: number[][]
  /** With --coverage, on ticks with y: 1 - conformal p-value of y against this prediction, in [0, 1). */
  anomaly?: number
  /** anomaly >= --anomaly-threshold. */
  isAnomaly?: boolean
}

/**
 * Server → subscribers of `updates` (with --drift): a key's prequential loss rose.
 *
 * @example
 * const d: DriftFrame = { type: 'drift', key: 'sensor-7', step: 5120, detector: 'page-hinkley', response: 'reset', loss: 4.2, detail: {} }
 */
export interface DriftFrame {
  type: 'drift'
  key: string
  /** The key's observed steps, as `step` in update reports. */
  step: number
  detector: string
  /** What the server did: 'reset', 'raise-lr' or 'report'. */
  response: string
  /** The squared error that tipped it. */
  loss: number
  detail: Record<string, number>
}

/**
 * Server → subscribers of 'hidden': the top layer's hidden state h_t of a key after a tick
 * (what the dashboard draws as a heatmap). Prediction frames never carry it.
 *
 * @example
 * const h: HiddenFrame = { type: 'hidden', key: 'sensor-7', h: [0.1, -0.4, 0.9] }
 */
export interface HiddenFrame {
  type: 'hidden'
  key: string
  h: number[]
}

/**
 * One optimizer step, sent to subscribers of `updates`: the trainer's `UpdateReport` for it.
 *
 * @example
 * const u: UpdateFrame = {
 *   type: 'update', key: 'sensor-7', step: 120, update: 31, loss: 0.31, gradNorm: 2.4, clippedGradNorm: 1,
 *   clipped: true, skipped: false, rolledBack: false, clipRate: 0.2,
 * }
 */
export interface UpdateFrame {
  type: 'update'
  key: string
  /** The key's steps so far. */
  step: number
  /** Optimizer steps taken so far (all keys), this one included. */
  update: number
  /** The loss this step minimised (JSON carries a non-finite loss as null). */
  loss: number
  /** Global gradient norm before clipping. */
  gradNorm: number
  /** Global gradient norm after clipping. */
  clippedGradNorm: number
  /** Whether the gradient was scaled down to the clipping threshold. */
  clipped: boolean
  /** Whether the update was skipped (a non-finite loss or gradient); `reason` says why. */
  skipped: boolean
  /** Whether a diverging loss restored the previous weights. */
  rolledBack: boolean
  reason?: string
  /** Fraction of recent updates that were clipped. */
  clipRate: number
  /** ‖∂L/∂h‖ at each step back through the window, and its fitted log gain per step. */
  gradientFlow?: { norms: number[]; logGainPerStep: number }
  /** ρ(W_hh) per layer. */
  spectralRadius?: number[]
}

/** Per-key figures inside a `metrics` frame; an open record of numbers. */
export interface KeyMetrics {
  /** Ticks accepted for this key since the server started. */
  events: number
  /** Optimizer steps taken for this key. */
  step: number
  /** The last update's loss, null before the first. */
  loss: number | null
  [metric: string]: number | null
}

/**
 * A periodic summary, sent to subscribers of `metrics`. Counters are totals since the server
 * started; rates and means cover the window since the previous metrics frame and are null
 * when nothing happened in it. Further numeric fields may be added at any time.
 *
 * @example
 * const m: MetricsFrame = {
 *   type: 'metrics', t: Date.now(), events: 5120, eventsPerSecond: 980.5, loss: 0.42, gradNorm: 1.7,
 *   clipRate: 0.05, skippedUpdates: 0, rejected: 3, dropped: 0, producers: 2, subscribers: 1, keys: 4,
 * }
 */
export interface MetricsFrame {
  type: 'metrics'
  /** When the window ended, in ms since the Unix epoch. */
  t: number
  /** Ticks accepted. */
  events: number
  eventsPerSecond: number
  /** Mean training loss over the window's updates. */
  loss: number | null
  /** Mean pre-clipping gradient norm over the window's updates. */
  gradNorm: number | null
  /** Fraction of the window's updates that were clipped. */
  clipRate: number | null
  /** Updates skipped because the loss or gradient was not finite. */
  skippedUpdates: number
  /** Frames answered with an `error`. */
  rejected: number
  /** Ticks dropped because the model could not keep up. */
  dropped: number
  /** Connections that have sent a tick and are still open. */
  producers: number
  /** Connections with a subscription. */
  subscribers: number
  /** Keys with a live hidden state. */
  keys: number
  perKey?: Record<string, KeyMetrics>
  [metric: string]: number | string | null | Record<string, KeyMetrics> | undefined
}

/**
 * The answer to `subscribe` (what is now followed) and to `unsubscribe` (`channels: []`).
 *
 * @example
 * const s: SubscribedFrame = { type: 'subscribed', channels: ['metrics'] }
 */
export interface SubscribedFrame {
  type: 'subscribed'
  channels: Channel[]
  keys?: string[]
  id?: number
}

/** The model's shape and settings as `welcome` reports them; an open record. */
export interface ModelSummary {
  cell: string
  inputSize: number
  hiddenSize: number
  numLayers: number
  outputSize: number
  task?: 'classification' | 'regression'
  [setting: string]: string | number | boolean | null | undefined
}

/**
 * The answer to `hello`.
 *
 * @example
 * const w: WelcomeFrame = {
 *   type: 'welcome', version: PROTOCOL_VERSION,
 *   model: { cell: 'lstm', inputSize: 3, hiddenSize: 32, numLayers: 1, outputSize: 2, task: 'classification' },
 * }
 */
export interface WelcomeFrame {
  type: 'welcome'
  version: number
  model: ModelSummary
  id?: number
}

/**
 * Why a frame was rejected. `code` is stable and machine-readable; `message` says what was
 * wrong and what to send instead. `id` echoes the rejected frame's id when that id was valid.
 *
 * @example
 * const e: ErrorFrame = { type: 'error', id: 42, code: 'bad_input', message: 'x[3] is NaN; ...' }
 */
export interface ErrorFrame {
  type: 'error'
  id?: number
  code: RxrnnErrorCode
  message: string
}

/** Everything the server may send. */
export type ServerFrame =
  | PredictionFrame
  | UpdateFrame
  | DriftFrame
  | HiddenFrame
  | MetricsFrame
  | SubscribedFrame
  | WelcomeFrame
  | ErrorFrame

export type Frame = ClientFrame | ServerFrame

/**
 * A decoded value as the server frame its `type` names, or undefined when it is no object or
 * names no server frame. The check is shallow (the server is trusted to send what the protocol
 * says): it replaces a cast, so that a client switches on `type` and gets the frame's own type.
 *
 * @example
 * const frame = asServerFrame(decoded.value)
 * if (frame?.type === 'metrics') console.log(frame.eventsPerSecond)
 */
export function asServerFrame(value: unknown): ServerFrame | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const type = (value as { type?: unknown }).type
  return (SERVER_FRAME_TYPES as readonly unknown[]).includes(type) ? (value as ServerFrame) : undefined
}

/** What the server knows about the model, so that a tick that cannot fit it is rejected up front. */
export interface FrameExpectations {
  /** Required length of `x`. */
  inputSize?: number
  /** Required length of an array `y`; for classification, the number of classes. */
  outputSize?: number
  /** Default `DEFAULT_MAX_KEY_LENGTH`. */
  maxKeyLength?: number
  /** Most keys one `subscribe` may name. Default `DEFAULT_MAX_SUBSCRIBE_KEYS`. */
  maxSubscribeKeys?: number
  /**
   * 'classification': `y` must be a class index, an integer in [0, outputSize).
   * 'regression': `y` is an array of outputSize numbers, or one number when outputSize is 1.
   * Omitted: any finite number, or an array of finite numbers (of length outputSize when given).
   */
  task?: 'classification' | 'regression'
  /** Accept `null` entries in x (the server imputes them: --missing). */
  allowMissing?: boolean
}

export type ClientFrameValidation = { ok: true; frame: ClientFrame } | { ok: false; error: ErrorFrame }

/**
 * Builds an error frame, with `id` only when there is one.
 *
 * @example
 * ws.send(encodeFrame(errorFrame('payload_too_large', 'frame is 2 MB; the limit is 1 MB'), 'json'))
 */
export function errorFrame(code: RxrnnErrorCode, message: string, id?: number): ErrorFrame {
  const frame: ErrorFrame = { type: 'error', code, message }
  if (id !== undefined) frame.id = id
  return frame
}

/**
 * Checks a decoded value against the protocol and returns the typed frame, or the error frame
 * to send back. Never throws and never modifies `value`. The returned frame is a new object
 * holding only the protocol's fields (unknown fields are ignored, for forward compatibility),
 * but `x` and `y` are the very arrays that were received, not copies. A `null` `y` or `id` is
 * read as absent, since msgpack and JSON clients often write nil for a missing value.
 *
 * @example
 * const decoded = decodeFrame(data, isBinary)
 * if (!decoded.ok) return send(decoded.error)
 * const checked = validateClientFrame(decoded.value, { inputSize: 3, outputSize: 2 })
 * if (!checked.ok) return send(checked.error) // e.g. { code: 'bad_input', message: 'x[1] is NaN; ...' }
 * if (checked.frame.type === 'tick') learn(checked.frame.key, checked.frame.x, checked.frame.y)
 */
export function validateClientFrame(value: unknown, expect: FrameExpectations = {}): ClientFrameValidation {
  try {
    return validate(value, expect)
  } catch (cause) {
    // Only values that are not plain decoded data get here (throwing getters, revoked proxies).
    const reason = cause instanceof Error ? cause.message : 'it threw'
    return {
      ok: false,
      error: errorFrame('bad_frame', `the frame could not be read (${clip(reason)}); send a plain object`),
    }
  }
}

function validate(value: unknown, expect: FrameExpectations): ClientFrameValidation {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail(
      'bad_frame',
      `a frame must be an object (a msgpack map or a JSON object), not ${describe(value)}`,
    )
  }
  const proto = Object.getPrototypeOf(value)
  if (proto !== Object.prototype && proto !== null) {
    return fail(
      'bad_frame',
      `a frame must be a plain object (a msgpack map or a JSON object), not ${describe(value)}`,
    )
  }
  // JSON.parse makes "__proto__" an own field; refuse it rather than risk a later spread or
  // Object.assign turning it into a prototype.
  if (Object.hasOwn(value, '__proto__')) {
    return fail('bad_frame', 'the frame has a "__proto__" field; remove it')
  }
  const record = value as Record<string, unknown>

  const rawId = own(record, 'id')
  const idIsValid =
    rawId === undefined || rawId === null || (typeof rawId === 'number' && Number.isFinite(rawId))
  const id = idIsValid && typeof rawId === 'number' ? rawId : undefined

  const type = own(record, 'type')
  if (typeof type !== 'string') {
    const got = type === undefined ? 'the frame has no type' : `type is ${describe(type)}`
    return fail('unknown_type', `${got}; send type: one of ${CLIENT_FRAME_TYPES.join(', ')}`, id)
  }
  if (!idIsValid) {
    return fail('bad_frame', `id is ${describe(rawId)}; an id must be a finite number, or be left out`)
  }

  switch (type) {
    case 'tick':
      return validateTick(record, expect, id)
    case 'subscribe':
      return validateSubscribe(record, expect, id)
    case 'unsubscribe':
      return { ok: true, frame: withId({ type: 'unsubscribe' }, id) }
    case 'reset': {
      const key = own(record, 'key')
      const problem = keyProblem('reset', key, expect)
      if (problem) return fail(problem.code, problem.message, id)
      return { ok: true, frame: withId({ type: 'reset', key: key as string }, id) }
    }
    case 'hello':
      return { ok: true, frame: withId({ type: 'hello' }, id) }
    default: {
      const expected = `send one of ${CLIENT_FRAME_TYPES.join(', ')}`
      const message = (SERVER_FRAME_TYPES as readonly string[]).includes(type)
        ? `"${type}" frames are sent by the server, not to it; ${expected}`
        : `unknown frame type ${quote(type)}; ${expected}`
      return fail('unknown_type', message, id)
    }
  }
}

function validateTick(
  record: Record<string, unknown>,
  expect: FrameExpectations,
  id?: number,
): ClientFrameValidation {
  const key = own(record, 'key')
  const problem = keyProblem('tick', key, expect)
  if (problem) return fail(problem.code, problem.message, id)

  const x = own(record, 'x')
  const xProblem = inputProblem(x, expect.inputSize, expect.allowMissing === true)
  if (xProblem) return fail('bad_input', xProblem, id)

  const y = own(record, 'y')
  const yProblem = y === undefined || y === null ? undefined : targetProblem(y, expect)
  if (yProblem) return fail('bad_target', yProblem, id)

  const frame: TickFrame = { type: 'tick', key: key as string, x: x as NumericVector }
  const t = own(record, 't')
  if (t !== undefined && t !== null && !(typeof t === 'number' && Number.isFinite(t)))
    return fail(
      'bad_input',
      `t is ${describe(t)}; send t as milliseconds since the epoch (a finite number)`,
      id,
    )
  if (y !== undefined && y !== null) frame.y = y as number | NumericVector
  if (typeof t === 'number') frame.t = t
  if (id !== undefined) frame.id = id
  return { ok: true, frame }
}

function validateSubscribe(
  record: Record<string, unknown>,
  expect: FrameExpectations,
  id?: number,
): ClientFrameValidation {
  const expected = `send channels: a list of ${CHANNELS.map((c) => `"${c}"`).join(', ')}`
  const channels = own(record, 'channels')
  if (!Array.isArray(channels)) {
    const got = channels === undefined ? 'subscribe has no channels' : `channels is ${describe(channels)}`
    return fail('bad_frame', `${got}; ${expected}`, id)
  }
  if (channels.length === 0) {
    return fail('bad_frame', `channels is empty; ${expected} (send unsubscribe to stop following)`, id)
  }
  for (let i = 0; i < channels.length; i++) {
    const channel: unknown = channels[i]
    if (!(CHANNELS as readonly unknown[]).includes(channel)) {
      return fail('bad_frame', `channels[${i}] is ${describe(channel)}; ${expected}`, id)
    }
  }
  const frame: SubscribeFrame = { type: 'subscribe', channels: [...new Set(channels as Channel[])] }

  const keys = own(record, 'keys')
  if (keys !== undefined && keys !== null) {
    if (!Array.isArray(keys)) {
      return fail(
        'bad_key',
        `keys is ${describe(keys)}; send a list of keys, or leave keys out to follow every key`,
        id,
      )
    }
    if (keys.length === 0) {
      return fail(
        'bad_key',
        'keys is empty; list at least one key, or leave keys out to follow every key',
        id,
      )
    }
    const maxKeys = expect.maxSubscribeKeys ?? DEFAULT_MAX_SUBSCRIBE_KEYS
    if (keys.length > maxKeys) {
      return fail(
        'bad_key',
        `keys lists ${keys.length} keys; one subscribe may name at most ${maxKeys}: leave keys out to follow every key`,
        id,
      )
    }
    for (let i = 0; i < keys.length; i++) {
      const problem = keyProblem('subscribe', keys[i], expect, `keys[${i}]`)
      if (problem) return fail('bad_key', problem.message, id)
    }
    frame.keys = [...new Set(keys as string[])]
  }
  const maxRate = own(record, 'maxRate')
  if (maxRate !== undefined && maxRate !== null) {
    if (typeof maxRate !== 'number' || !(maxRate > 0) || !Number.isFinite(maxRate)) {
      return fail(
        'bad_frame',
        `maxRate is ${describe(maxRate)}; send a positive number of frames per second`,
        id,
      )
    }
    frame.maxRate = maxRate
  }
  if (id !== undefined) frame.id = id
  return { ok: true, frame }
}

interface Problem {
  code: RxrnnErrorCode
  message: string
}

// The checks below run for every tick: they build message strings only once something is wrong.

function keyProblem(
  type: string,
  key: unknown,
  expect: FrameExpectations,
  name = 'key',
): Problem | undefined {
  const max = expect.maxKeyLength ?? DEFAULT_MAX_KEY_LENGTH
  if (typeof key === 'string' && key.length > 0 && key.length <= max) return undefined
  const expected = `send ${name}: a non-empty string of at most ${max} characters naming the sequence`
  if (key === undefined || key === null) {
    const got = name === 'key' ? `${type} has no key` : `${name} is ${describe(key)}`
    return { code: 'missing_key', message: `${got}; ${expected}` }
  }
  if (typeof key !== 'string') return { code: 'bad_key', message: `${name} is ${describe(key)}; ${expected}` }
  if (key.length === 0) return { code: 'missing_key', message: `${name} is empty; ${expected}` }
  return { code: 'bad_key', message: `${name} is ${key.length} characters long; ${expected}` }
}

function inputProblem(x: unknown, inputSize: number | undefined, allowMissing = false): string | undefined {
  if (x === undefined) return `the tick has no x; ${expectedInput(inputSize)}`
  if (!isVector(x)) return `x is ${describe(x)}; ${expectedInput(inputSize)}${binHint(x)}`
  if (x.length === 0) return `x is empty; ${expectedInput(inputSize)}`
  if (inputSize !== undefined && x.length !== inputSize) {
    return `x has ${x.length} values but the model takes ${inputSize} inputs`
  }
  return elementProblem('x', x, allowMissing)
}

// The hints below are built only for a frame that is refused: a good tick makes no closures or strings.
function expectedInput(inputSize: number | undefined): string {
  const count = inputSize === undefined ? 'finite numbers' : `${inputSize} finite numbers`
  return `send x: an array (or a Float32Array or Float64Array) of ${count}`
}

function expectedTarget(outputSize: number | undefined): string {
  const outputs = outputSize === undefined ? 'finite numbers' : `${outputSize} finite numbers`
  return `send y: a finite number or an array of ${outputs}, or leave y out when the target is not known yet`
}

function targetProblem(y: unknown, expect: FrameExpectations): string | undefined {
  const { outputSize, task } = expect
  if (task === 'classification') {
    if (
      typeof y === 'number' &&
      Number.isInteger(y) &&
      y >= 0 &&
      (outputSize === undefined || y < outputSize)
    ) {
      return undefined
    }
    const classes =
      outputSize === undefined ? 'a non-negative integer' : `an integer from 0 to ${outputSize - 1}`
    return `y is ${describe(y)}; a classification target is a class index, ${classes} (leave y out when the class is not known yet)`
  }
  if (typeof y === 'number') {
    if (!Number.isFinite(y)) return `y is ${describe(y)}; ${expectedTarget(outputSize)}`
    if (task === 'regression' && outputSize !== undefined && outputSize !== 1) {
      return `y is a single number but the model has ${outputSize} outputs; send an array of ${outputSize} numbers`
    }
    return undefined
  }
  if (!isVector(y)) return `y is ${describe(y)}; ${expectedTarget(outputSize)}${binHint(y)}`
  if (y.length === 0) return `y is empty; ${expectedTarget(outputSize)}`
  if (outputSize !== undefined && y.length !== outputSize) {
    return `y has ${y.length} values but the model has ${outputSize} outputs`
  }
  return elementProblem('y', y)
}

function isVector(v: unknown): v is NumericVector | unknown[] {
  return Array.isArray(v) || v instanceof Float32Array || v instanceof Float64Array
}

function elementProblem(name: 'x' | 'y', values: ArrayLike<unknown>, allowNull = false): string | undefined {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    if (typeof v === 'number' && Number.isFinite(v)) continue
    if (v === null && allowNull) continue
    const notANumber = typeof v === 'number' ? '' : ', not a number'
    return `${name}[${i}] is ${describe(v)}${notANumber}; every value in ${name} must be a finite number${elementHint(v)}`
  }
  return undefined
}

function elementHint(v: unknown): string {
  if (v === null)
    return ' (JSON writes NaN and Infinity as null: impute or drop missing values before sending)'
  if (v === undefined || Number.isNaN(v)) return ' (impute or drop missing values before sending)'
  if (typeof v === 'number') return ' (clip or rescale it before sending)'
  if (typeof v === 'string') return ' (parse strings into numbers before sending)'
  return ''
}

function binHint(v: unknown): string {
  return v instanceof Uint8Array
    ? ' (msgpack bin data is raw bytes: send a msgpack array of floats, or a typed array)'
    : ''
}

function own(record: Record<string, unknown>, name: string): unknown {
  return Object.hasOwn(record, name) ? record[name] : undefined
}

function withId<F extends ClientFrame>(frame: F, id: number | undefined): F {
  if (id !== undefined) frame.id = id
  return frame
}

function fail(code: RxrnnErrorCode, message: string, id?: number): { ok: false; error: ErrorFrame } {
  return { ok: false, error: errorFrame(code, message, id) }
}

/** A short, safe description of a received value, for error messages. */
function describe(v: unknown): string {
  switch (typeof v) {
    case 'number':
      return Number.isNaN(v) ? 'NaN' : Object.is(v, -0) ? '-0' : String(v)
    case 'string':
      return `the string ${quote(v)}`
    case 'boolean':
      return `the boolean ${v}`
    case 'bigint':
      // Its size, never its digits: turning a megabyte bigint into decimal takes seconds.
      return `a ${bitLength(v)}-bit integer, beyond what a number holds exactly (±2^53)`
    case 'undefined':
      return 'undefined'
    case 'object': {
      if (v === null) return 'null'
      if (Array.isArray(v)) return 'an array'
      const tag = Object.prototype.toString.call(v).slice(8, -1)
      return tag === 'Object' ? 'an object' : `${/^[AEIO]/.test(tag) ? 'an' : 'a'} ${tag}`
    }
    default:
      return `a ${typeof v}`
  }
}

/** Bits of a bigint's magnitude, from its hexadecimal form (linear time, unlike decimal). */
function bitLength(v: bigint): number {
  const hex = (v < 0n ? -v : v).toString(16)
  return hex === '0' ? 0 : (hex.length - 1) * 4 + Number.parseInt(hex[0]!, 16).toString(2).length
}

function quote(s: string): string {
  return JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s)
}

function clip(s: string): string {
  return s.length > 120 ? `${s.slice(0, 120)}…` : s
}
