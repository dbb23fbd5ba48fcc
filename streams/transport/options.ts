/**
 * The WebSocket client's options: the public option types, their defaults (applied once, here) and
 * their validation (of the values after defaults, so every check sees what will run). One
 * `RxrnnError('bad_config')` lists every problem.
 */
import { RxrnnError } from '../../src/errors.js'
import { decodeFrame, encodeFrame } from './codec.js'
import type { WebSocketPlatform } from './socket.js'

/**
 * One step in the life of a client connection, as reported to `onStatus` and `status$`.
 * `attempt` is 0 for the first connection and counts consecutive reconnects after that; it goes back to 0
 * once a connection has stayed open for `healthyAfterMs`. `delayMs` comes with `reconnecting`, `code` and
 * `reason` with `closed`.
 *
 * @example
 * webSocketSource(url, { onStatus: (s) => console.log(s.state, s.attempt, s.delayMs ?? '', s.reason ?? '') })
 */
export interface WebSocketStatus {
  readonly state: 'connecting' | 'open' | 'closed' | 'reconnecting'
  readonly attempt: number
  readonly delayMs?: number
  readonly code?: number
  readonly reason?: string
}

/**
 * Capped exponential backoff with full jitter: before reconnect attempt `n` the client waits
 * `random() * min(maxDelayMs, initialDelayMs * factor ** (n - 1))` milliseconds.
 *
 * @example
 * webSocketSource(url, { reconnect: { initialDelayMs: 100, maxDelayMs: 5_000, maxAttempts: 20 } })
 */
export interface ReconnectOptions {
  /** Cap of the first delay. Default 250. */
  readonly initialDelayMs?: number
  /** Cap of every delay. Default 10_000. */
  readonly maxDelayMs?: number
  /** Growth of the cap per attempt. Default 2. */
  readonly factor?: number
  /** Consecutive failed reconnects before the stream errors. Default Infinity. */
  readonly maxAttempts?: number
}

/**
 * Turns one received WebSocket message into a value. Throwing marks the message as undecodable: it goes
 * to `onDecodeError` and the stream goes on. In Node `data` is a Buffer for both kinds of message; in a
 * browser binary messages come as a Uint8Array and text messages as a string.
 *
 * @example
 * const decode: FrameDecoder = (data, isBinary) =>
 *   isBinary ? unpack(data as Uint8Array) : JSON.parse(typeof data === 'string' ? data : new TextDecoder().decode(data))
 */
export type FrameDecoder = (data: Uint8Array | string, isBinary: boolean) => unknown

/**
 * Turns one outgoing frame into wire data: a string goes out as a text message, bytes as a binary one.
 *
 * @example
 * const encode: FrameEncoder = (frame) => JSON.stringify(frame)
 */
export type FrameEncoder = (frame: unknown) => Uint8Array | string

/**
 * Options of `webSocketSource`, shared by `webSocketConnection` and `webSocketSink`.
 *
 * In a browser the platform's `WebSocket` cannot set headers, see the HTTP status of a refused
 * upgrade, or send pings. There the token goes as `?token=` (`tokenIn` defaults to 'query'; 'header'
 * and 'both' are refused) or, for a server that reads it from the subprotocol header, in `protocols`;
 * `headers` is refused; a refused token looks like any failed connection (close code 1006), so it is
 * retried under the reconnect policy instead of ending the stream; and `heartbeatMs` is ignored (the
 * browser answers the server's pings itself, and the server finds dead clients).
 *
 * @example
 * const options: WebSocketSourceOptions = { token: process.env.RXRNN_TOKEN, heartbeatMs: 5_000 }
 */
export interface WebSocketSourceOptions {
  /** Sent as `Authorization: Bearer <token>` and/or as the `?token=` query parameter (see `tokenIn`). */
  readonly token?: string
  /**
   * Where the token goes. Default 'header' in Node, 'query' in browsers (which cannot set headers);
   * use 'query' for servers behind proxies that drop the header.
   */
  readonly tokenIn?: 'header' | 'query' | 'both'
  /** WebSocket subprotocols offered in `Sec-WebSocket-Protocol` (browsers can send these). */
  readonly protocols?: string | readonly string[]
  /** Extra HTTP headers of the upgrade request (Node only). */
  readonly headers?: Readonly<Record<string, string>>
  /** Largest message accepted, in bytes; a bigger one closes the connection (code 1009). Default 100 MiB. */
  readonly maxPayload?: number
  /** Reconnect policy, or `false` to end the stream when the connection closes. */
  readonly reconnect?: ReconnectOptions | false
  /** A connection open this long counts as healthy: the backoff starts over after it closes. Default 5_000. */
  readonly healthyAfterMs?: number
  /** Ping interval; 0 turns the heartbeat off. Default 15_000. Ignored in browsers. */
  readonly heartbeatMs?: number
  /** Silence (no pong, no message) after which the peer counts as dead. Default 2 × heartbeatMs. */
  readonly heartbeatTimeoutMs?: number
  /** Longest wait for the server to answer the upgrade request. Default 10_000. */
  readonly handshakeTimeoutMs?: number
  /** Longest wait for the server's close frame before the socket is destroyed. Default 1_000. */
  readonly closeTimeoutMs?: number
  /** Default: binary messages are msgpack, text messages JSON. */
  readonly decode?: FrameDecoder
  /** Gets every message `decode` threw on; the stream goes on without it. Default: count it and go on. */
  readonly onDecodeError?: (error: unknown, data: Uint8Array | string, isBinary: boolean) => void
  readonly onStatus?: (status: WebSocketStatus) => void
  /** Source of jitter in [0, 1). Default Math.random; pass a seeded one for reproducible delays. */
  readonly random?: () => number
}

/**
 * How frames are sent: encoding, and the bounded queue that holds frames while the socket is not open or
 * while more than `highWaterMark` bytes wait in its buffer.
 *
 * @example
 * const options: SendQueueOptions = { encoding: 'json', maxQueue: 100, dropPolicy: 'drop-newest' }
 */
export interface SendQueueOptions {
  /** 'msgpack' sends binary messages, 'json' text messages. Default 'msgpack'. */
  readonly encoding?: 'msgpack' | 'json'
  /** Replaces the encoder `encoding` names. */
  readonly encode?: FrameEncoder
  /** Frames are queued while the socket buffers more than this many bytes. Default 1 MiB. */
  readonly highWaterMark?: number
  /** Most frames queued; past it the drop policy applies. Default 1_000. */
  readonly maxQueue?: number
  /** Which frame goes when the queue is full. Default 'drop-oldest': live data, the newest matters most. */
  readonly dropPolicy?: 'drop-oldest' | 'drop-newest'
  /** How often a non-empty queue looks at the socket buffer besides the send callbacks. Default 50. */
  readonly drainPollMs?: number
}

/**
 * Options of `webSocketConnection`: those of `webSocketSource` and of the send queue.
 *
 * @example
 * const options: WebSocketConnectionOptions = { token, encoding: 'json', maxQueue: 500 }
 */
export interface WebSocketConnectionOptions extends WebSocketSourceOptions, SendQueueOptions {}

/** The send queue's options with every default applied. */
export interface QueueSettings {
  readonly encode: FrameEncoder
  /** Names the encoder in error messages. */
  readonly encoding: string
  readonly highWaterMark: number
  readonly maxQueue: number
  readonly dropOldest: boolean
  readonly drainPollMs: number
}

/** The link's options with every default applied. */
export interface LinkSettings {
  readonly url: string
  /** The URL with the token hidden, for messages. */
  readonly shownUrl: string
  readonly tokenIn: 'header' | 'query' | 'both' | null
  readonly headers: Readonly<Record<string, string>>
  readonly protocols: readonly string[]
  readonly maxPayload: number
  readonly handshakeTimeoutMs: number
  readonly closeTimeoutMs: number
  readonly reconnect: Required<ReconnectOptions> | null
  readonly healthyAfterMs: number
  /** 0 when off, or when the platform cannot ping. */
  readonly heartbeatMs: number
  readonly heartbeatTimeoutMs: number
  readonly decode: FrameDecoder
  readonly onDecodeError: ((error: unknown, data: Uint8Array | string, isBinary: boolean) => void) | undefined
  readonly onStatus: ((status: WebSocketStatus) => void) | undefined
  readonly random: () => number
}

// The protocol's codec: typed arrays survive msgpack both ways, JSON text frames too.
function defaultDecode(data: Uint8Array | string, isBinary: boolean): unknown {
  const decoded = decodeFrame(data, isBinary)
  if (!decoded.ok) throw new RxrnnError(decoded.error.code, decoded.error.message)
  return decoded.value
}

function encodeMsgpack(frame: unknown): Uint8Array {
  return encodeFrame(frame as object, 'msgpack')
}

function encodeJson(frame: unknown): string {
  return encodeFrame(frame as object, 'json')
}

const queueDefaults = {
  encoding: 'msgpack',
  highWaterMark: 1024 * 1024,
  maxQueue: 1_000,
  dropPolicy: 'drop-oldest',
  drainPollMs: 50,
} as const

const reconnectDefaults = {
  initialDelayMs: 250,
  maxDelayMs: 10_000,
  factor: 2,
  maxAttempts: Number.POSITIVE_INFINITY,
} as const

const linkDefaults = {
  maxPayload: 100 * 1024 * 1024,
  healthyAfterMs: 5_000,
  heartbeatMs: 15_000,
  handshakeTimeoutMs: 10_000,
  closeTimeoutMs: 1_000,
} as const

function checkNumber(problems: string[], name: string, value: number, min: number): void {
  if (typeof value !== 'number' || Number.isNaN(value) || value < min) {
    problems.push(`${name} must be a number >= ${min}, got ${String(value)}`)
  }
}

function checkFinite(problems: string[], name: string, value: number, min: number): void {
  checkNumber(problems, name, value, min)
  if (typeof value === 'number' && value >= min && !Number.isFinite(value)) {
    problems.push(`${name} must be finite, got ${value}`)
  }
}

function checkOneOf(problems: string[], name: string, value: unknown, allowed: readonly string[]): void {
  if (!allowed.includes(value as string)) {
    problems.push(`${name} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${String(value)}`)
  }
}

function checkFunction(problems: string[], name: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'function') problems.push(`${name} must be a function`)
}

function fail(problems: readonly string[], what: string): void {
  if (problems.length > 0)
    throw new RxrnnError('bad_config', `Invalid ${what}; fix these and try again`, [...problems])
}

/** The send queue's settings, or the problems with them (pushed to `problems`). */
function queueSettings(options: SendQueueOptions, problems: string[]): QueueSettings {
  const merged = { ...queueDefaults, ...definedOnly(options) }
  checkOneOf(problems, 'encoding', merged.encoding, ['msgpack', 'json'])
  checkOneOf(problems, 'dropPolicy', merged.dropPolicy, ['drop-oldest', 'drop-newest'])
  checkFinite(problems, 'highWaterMark', merged.highWaterMark, 0)
  checkFinite(problems, 'maxQueue', merged.maxQueue, 0)
  if (typeof merged.maxQueue === 'number' && !Number.isInteger(merged.maxQueue)) {
    problems.push(`maxQueue must be a whole number, got ${merged.maxQueue}`)
  }
  checkFinite(problems, 'drainPollMs', merged.drainPollMs, 1)
  checkFunction(problems, 'encode', options.encode)
  return {
    encode: options.encode ?? (merged.encoding === 'json' ? encodeJson : encodeMsgpack),
    encoding: options.encode ? 'the custom encode' : merged.encoding,
    highWaterMark: merged.highWaterMark,
    maxQueue: merged.maxQueue,
    dropOldest: merged.dropPolicy === 'drop-oldest',
    drainPollMs: merged.drainPollMs,
  }
}

/** `options` without the keys set to undefined, so spreading it over defaults keeps the defaults. */
function definedOnly<T extends object>(options: T): Partial<T> {
  const out: Partial<T> = {}
  for (const key of Object.keys(options) as (keyof T)[]) {
    if (options[key] !== undefined) out[key] = options[key]
  }
  return out
}

function parseUrl(url: string | URL, problems: string[]): URL | null {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    problems.push(`url must be an absolute ws:// or wss:// URL, got ${JSON.stringify(String(url))}`)
    return null
  }
  if (!['ws:', 'wss:', 'http:', 'https:'].includes(parsed.protocol)) {
    problems.push(`url must start with ws:// or wss://, got ${parsed.protocol}//`)
    return null
  }
  return parsed
}

function tokenProblems(
  options: WebSocketSourceOptions,
  platform: WebSocketPlatform,
  problems: string[],
): void {
  const { token } = options
  if (token !== undefined && (typeof token !== 'string' || token === '' || /\s/.test(token))) {
    problems.push('token must be a non-empty string without whitespace')
  }
  const tokenIn = options.tokenIn ?? (platform.headers ? 'header' : 'query')
  checkOneOf(problems, 'tokenIn', tokenIn, ['header', 'query', 'both'])
  if (!platform.headers && token !== undefined && tokenIn !== 'query') {
    problems.push(
      `tokenIn '${tokenIn}' needs a header, which a browser WebSocket cannot send: ` +
        "use tokenIn 'query', or put the token in `protocols` if the server reads it there",
    )
  }
  if (!platform.headers && options.headers !== undefined && Object.keys(options.headers).length > 0) {
    problems.push(
      'headers cannot be sent by a browser WebSocket: pass the token as ?token= or in `protocols`',
    )
  }
  const protocols = options.protocols
  if (
    protocols !== undefined &&
    typeof protocols !== 'string' &&
    !(Array.isArray(protocols) && protocols.every((p) => typeof p === 'string'))
  ) {
    problems.push('protocols must be a string or an array of strings')
  }
}

/**
 * The link's settings with every default applied once, then checked; problems go to `problems`.
 * `url: null` checks options only (and returns null).
 */
function linkSettings(
  url: string | URL | null,
  options: WebSocketSourceOptions,
  platform: WebSocketPlatform,
  problems: string[],
): LinkSettings | null {
  const target = url === null ? null : parseUrl(url, problems)
  tokenProblems(options, platform, problems)
  const merged = { ...linkDefaults, ...definedOnly(options) }
  const reconnect =
    options.reconnect === false ? null : { ...reconnectDefaults, ...definedOnly(options.reconnect ?? {}) }
  if (reconnect !== null) {
    checkFinite(problems, 'reconnect.initialDelayMs', reconnect.initialDelayMs, 0)
    checkFinite(problems, 'reconnect.maxDelayMs', reconnect.maxDelayMs, 0)
    checkFinite(problems, 'reconnect.factor', reconnect.factor, 1)
    checkNumber(problems, 'reconnect.maxAttempts', reconnect.maxAttempts, 0)
    if (reconnect.maxDelayMs < reconnect.initialDelayMs) {
      problems.push(
        `reconnect.maxDelayMs (${reconnect.maxDelayMs}) must be >= initialDelayMs (${reconnect.initialDelayMs})`,
      )
    }
  }
  const heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 2 * merged.heartbeatMs
  checkFinite(problems, 'maxPayload', merged.maxPayload, 1)
  checkFinite(problems, 'healthyAfterMs', merged.healthyAfterMs, 0)
  checkFinite(problems, 'heartbeatMs', merged.heartbeatMs, 0)
  if (options.heartbeatTimeoutMs !== undefined) {
    checkFinite(problems, 'heartbeatTimeoutMs', heartbeatTimeoutMs, 1)
    if (merged.heartbeatMs > 0 && heartbeatTimeoutMs <= merged.heartbeatMs) {
      problems.push(
        `heartbeatTimeoutMs (${heartbeatTimeoutMs}) must be greater than heartbeatMs (${merged.heartbeatMs}), ` +
          'or a quiet but healthy peer would count as dead',
      )
    }
  }
  checkFinite(problems, 'handshakeTimeoutMs', merged.handshakeTimeoutMs, 1)
  checkFinite(problems, 'closeTimeoutMs', merged.closeTimeoutMs, 1)
  for (const name of ['decode', 'onDecodeError', 'onStatus', 'random'] as const) {
    checkFunction(problems, name, options[name])
  }
  if (target === null) return null

  const { token } = options
  const tokenIn = token === undefined ? null : (options.tokenIn ?? (platform.headers ? 'header' : 'query'))
  const headers: Record<string, string> = { ...options.headers }
  if (token !== undefined && tokenIn !== 'query') headers.authorization = `Bearer ${token}`
  if (token !== undefined && tokenIn !== 'header') target.searchParams.set('token', token)
  const shown = new URL(target)
  if (shown.searchParams.has('token')) shown.searchParams.set('token', '***')
  const { protocols } = options
  return {
    url: target.href,
    shownUrl: shown.href,
    tokenIn,
    headers,
    protocols: protocols === undefined ? [] : typeof protocols === 'string' ? [protocols] : [...protocols],
    maxPayload: merged.maxPayload,
    handshakeTimeoutMs: merged.handshakeTimeoutMs,
    closeTimeoutMs: merged.closeTimeoutMs,
    reconnect,
    healthyAfterMs: merged.healthyAfterMs,
    heartbeatMs: platform.ping ? merged.heartbeatMs : 0,
    heartbeatTimeoutMs,
    decode: options.decode ?? defaultDecode,
    onDecodeError: options.onDecodeError,
    onStatus: options.onStatus,
    random: options.random ?? Math.random,
  }
}

/**
 * Checks options the way `webSocketSource`, `webSocketConnection` and `webSocketSink` do (on this
 * platform), and throws one `RxrnnError('bad_config')` that lists every problem. Pass `url: null` to
 * check options only.
 *
 * @example
 * checkWebSocketOptions(process.argv[2] ?? '', { reconnect: { maxAttempts: 5 }, maxQueue: 100 })
 */
export function checkWebSocketOptions(
  url: string | URL | null,
  options: WebSocketConnectionOptions,
  platform: WebSocketPlatform,
): string[] {
  const problems: string[] = []
  linkSettings(url, options, platform, problems)
  queueSettings(options, problems)
  return problems
}

/** The send queue's settings; throws `bad_config` listing every problem. */
export function resolveQueueSettings(options: SendQueueOptions): QueueSettings {
  const problems: string[] = []
  const settings = queueSettings(options, problems)
  fail(problems, 'send queue options')
  return settings
}

/** Link and queue settings for `url`; throws `bad_config` listing every problem. */
export function resolveConnectionSettings(
  url: string | URL,
  options: WebSocketConnectionOptions,
  platform: WebSocketPlatform,
): { link: LinkSettings; queue: QueueSettings } {
  const problems: string[] = []
  const link = linkSettings(url, options, platform, problems)
  const queue = queueSettings(options, problems)
  fail(problems, 'WebSocket options')
  return { link: link!, queue }
}
