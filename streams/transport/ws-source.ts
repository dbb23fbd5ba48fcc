import type { IncomingMessage } from 'node:http'
import { Observable, ReplaySubject, Subject } from 'rxjs'
import WebSocket from 'ws'
import { RxrnnError } from '../../src/errors.js'
import { decodeFrame, encodeFrame } from './codec.js'

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
 * to `onDecodeError` and the stream goes on.
 *
 * @example
 * const decode: FrameDecoder = (data, isBinary) => (isBinary ? unpack(data) : JSON.parse(data.toString()))
 */
export type FrameDecoder = (data: Buffer, isBinary: boolean) => unknown

/**
 * Turns one outgoing frame into wire data: a string goes out as a text message, bytes as a binary one.
 *
 * @example
 * const encode: FrameEncoder = (frame) => JSON.stringify(frame)
 */
export type FrameEncoder = (frame: unknown) => Buffer | Uint8Array | string

/**
 * Options of {@link webSocketSource}, shared by {@link webSocketConnection} and `webSocketSink`.
 *
 * @example
 * const options: WebSocketSourceOptions = { token: process.env.RXRNN_TOKEN, heartbeatMs: 5_000 }
 */
export interface WebSocketSourceOptions {
  /** Sent as `Authorization: Bearer <token>` and/or as the `?token=` query parameter (see `tokenIn`). */
  readonly token?: string
  /** Where the token goes. Default 'header'; use 'query' for servers behind proxies that drop the header. */
  readonly tokenIn?: 'header' | 'query' | 'both'
  /** Extra HTTP headers of the upgrade request. */
  readonly headers?: Readonly<Record<string, string>>
  /** Largest message accepted, in bytes; a bigger one closes the connection (code 1009). Default 100 MiB. */
  readonly maxPayload?: number
  /** Reconnect policy, or `false` to end the stream when the connection closes. */
  readonly reconnect?: ReconnectOptions | false
  /** A connection open this long counts as healthy: the backoff starts over after it closes. Default 5_000. */
  readonly healthyAfterMs?: number
  /** Ping interval; 0 turns the heartbeat off. Default 15_000. */
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
  readonly onDecodeError?: (error: unknown, data: Buffer, isBinary: boolean) => void
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
 * Options of {@link webSocketConnection}: those of {@link webSocketSource} and of {@link SendQueue}.
 *
 * @example
 * const options: WebSocketConnectionOptions = { token, encoding: 'json', maxQueue: 500 }
 */
export interface WebSocketConnectionOptions extends WebSocketSourceOptions, SendQueueOptions {}

/**
 * Counters of a {@link SendQueue}: `sent` frames were handed to the socket, `dropped` ones never will be,
 * `queued` ones wait. Every frame `push` could encode is in exactly one of them.
 *
 * @example
 * const { sent, dropped, queued } = queue.stats()
 */
export interface SendQueueStats {
  readonly sent: number
  readonly dropped: number
  readonly queued: number
}

/**
 * Counters of a {@link WebSocketConnection}: those of its send queue, plus messages received, messages
 * that failed to decode, and reconnects scheduled.
 *
 * @example
 * setInterval(() => console.log(connection.stats()), 10_000).unref()
 */
export interface ConnectionStats extends SendQueueStats {
  readonly received: number
  readonly decodeErrors: number
  readonly reconnects: number
}

/**
 * One reconnecting socket that both sends and receives: what a producer needs to send ticks and read
 * predictions on the same connection.
 *
 * @example
 * const connection = webSocketConnection('ws://127.0.0.1:8080/stream')
 * connection.messages$.subscribe((prediction) => console.log(prediction))
 * ticks$.subscribe((tick) => connection.send({ type: 'tick', ...tick }))
 */
export interface WebSocketConnection {
  /** Every decoded message (hot: messages before the first subscription are not replayed). */
  readonly messages$: Observable<unknown>
  /** Replays the latest status; completes after `close()` or when the connection gives up. */
  readonly status$: Observable<WebSocketStatus>
  /** Encodes and sends a frame, or queues it; false when it was dropped. Throws `bad_frame` if unencodable. */
  send(frame: unknown): boolean
  stats(): ConnectionStats
  /** Resolves once the queue is empty and the socket buffer flushed (or the connection ended). */
  drained(): Promise<void>
  /** Closes the socket (code 1000) and stops reconnecting; still-queued frames count as dropped. */
  close(): void
}

type WireData = Buffer | Uint8Array | string
type Timer = ReturnType<typeof setTimeout>

const NORMAL_CLOSURE = 1000
const GOING_AWAY = 1001

function noop(): void {}

// The protocol's codec: typed arrays survive msgpack both ways, JSON text frames too.
function defaultDecode(data: Buffer, isBinary: boolean): unknown {
  const decoded = decodeFrame(data, isBinary)
  if (!decoded.ok) throw new RxrnnError(decoded.error.code, decoded.error.message)
  return decoded.value
}

function encodeMsgpack(frame: unknown): Buffer {
  return encodeFrame(frame as object, 'msgpack')
}

function encodeJson(frame: unknown): string {
  return encodeFrame(frame as object, 'json')
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

function checkNumber(problems: string[], name: string, value: number | undefined, min: number): void {
  if (value === undefined) return
  if (typeof value !== 'number' || Number.isNaN(value) || value < min) {
    problems.push(`${name} must be a number >= ${min}, got ${String(value)}`)
  }
}

function checkFinite(problems: string[], name: string, value: number | undefined, min: number): void {
  checkNumber(problems, name, value, min)
  if (typeof value === 'number' && value >= min && !Number.isFinite(value)) {
    problems.push(`${name} must be finite, got ${value}`)
  }
}

function checkOneOf(problems: string[], name: string, value: unknown, allowed: readonly string[]): void {
  if (value !== undefined && !allowed.includes(value as string)) {
    problems.push(`${name} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${String(value)}`)
  }
}

function sendQueueProblems(options: SendQueueOptions, problems: string[]): void {
  checkOneOf(problems, 'encoding', options.encoding, ['msgpack', 'json'])
  checkOneOf(problems, 'dropPolicy', options.dropPolicy, ['drop-oldest', 'drop-newest'])
  checkFinite(problems, 'highWaterMark', options.highWaterMark, 0)
  checkFinite(problems, 'maxQueue', options.maxQueue, 0)
  if (options.maxQueue !== undefined && !Number.isInteger(options.maxQueue)) {
    problems.push(`maxQueue must be a whole number, got ${options.maxQueue}`)
  }
  checkFinite(problems, 'drainPollMs', options.drainPollMs, 1)
  if (options.encode !== undefined && typeof options.encode !== 'function') {
    problems.push('encode must be a function')
  }
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

function sourceProblems(options: WebSocketSourceOptions, problems: string[]): void {
  const { token, reconnect } = options
  if (token !== undefined && (typeof token !== 'string' || token === '' || /\s/.test(token))) {
    problems.push('token must be a non-empty string without whitespace')
  }
  checkOneOf(problems, 'tokenIn', options.tokenIn, ['header', 'query', 'both'])
  if (reconnect !== undefined && reconnect !== false) {
    checkFinite(problems, 'reconnect.initialDelayMs', reconnect.initialDelayMs, 0)
    checkFinite(problems, 'reconnect.maxDelayMs', reconnect.maxDelayMs, 0)
    checkFinite(problems, 'reconnect.factor', reconnect.factor, 1)
    checkNumber(problems, 'reconnect.maxAttempts', reconnect.maxAttempts, 0)
    const initial = reconnect.initialDelayMs ?? 250
    const max = reconnect.maxDelayMs ?? 10_000
    if (max < initial) problems.push(`reconnect.maxDelayMs (${max}) must be >= initialDelayMs (${initial})`)
  }
  checkFinite(problems, 'maxPayload', options.maxPayload, 1)
  checkFinite(problems, 'healthyAfterMs', options.healthyAfterMs, 0)
  checkFinite(problems, 'heartbeatMs', options.heartbeatMs, 0)
  checkFinite(problems, 'heartbeatTimeoutMs', options.heartbeatTimeoutMs, 1)
  const heartbeatMs = options.heartbeatMs ?? 15_000
  if (
    heartbeatMs > 0 &&
    options.heartbeatTimeoutMs !== undefined &&
    options.heartbeatTimeoutMs <= heartbeatMs
  ) {
    problems.push(
      `heartbeatTimeoutMs (${options.heartbeatTimeoutMs}) must be greater than heartbeatMs (${heartbeatMs}), ` +
        'or a quiet but healthy peer would count as dead',
    )
  }
  checkFinite(problems, 'handshakeTimeoutMs', options.handshakeTimeoutMs, 1)
  checkFinite(problems, 'closeTimeoutMs', options.closeTimeoutMs, 1)
  for (const name of ['decode', 'onDecodeError', 'onStatus', 'random'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function') {
      problems.push(`${name} must be a function`)
    }
  }
}

/**
 * Checks options the way {@link webSocketSource}, {@link webSocketConnection} and `webSocketSink` do, and
 * throws one `RxrnnError('bad_config')` that lists every problem. Pass `url: null` to check options only.
 *
 * @example
 * checkWebSocketOptions(process.argv[2] ?? '', { reconnect: { maxAttempts: 5 }, maxQueue: 100 })
 */
export function checkWebSocketOptions(url: string | URL | null, options: WebSocketConnectionOptions): void {
  const problems: string[] = []
  if (url !== null) parseUrl(url, problems)
  sourceProblems(options, problems)
  sendQueueProblems(options, problems)
  if (problems.length > 0) {
    throw new RxrnnError('bad_config', 'Invalid WebSocket options; fix these and try again', problems)
  }
}

/**
 * A bounded queue of encoded frames in front of one `ws` socket. A frame goes straight to the socket
 * while it is open and buffers at most `highWaterMark` bytes; otherwise it waits in a ring of `maxQueue`
 * frames, and past that the drop policy throws a frame away and counts it. The queue drains from the
 * socket's send callbacks, with a poll as a backstop; `attach` a new socket after a reconnect.
 *
 * @example
 * const queue = new SendQueue({ maxQueue: 100, highWaterMark: 64 * 1024 })
 * queue.attach(socket)
 * queue.push({ type: 'tick', t: Date.now(), x: [0.5] })
 * console.log(queue.stats()) // { sent: 1, dropped: 0, queued: 0 }
 */
export class SendQueue {
  private readonly encode: FrameEncoder
  private readonly encoding: string
  private readonly highWaterMark: number
  private readonly dropOldest: boolean
  private readonly drainPollMs: number
  private readonly ring: (WireData | undefined)[]
  private head = 0
  private size = 0
  private sent = 0
  private dropped = 0
  private closed = false
  private socket: WebSocket | null = null
  private pollTimer: Timer | undefined
  private waiters: (() => void)[] = []
  private readonly onWritten = (): void => {
    if (this.size > 0 || this.waiters.length > 0) this.drain()
  }

  constructor(options: SendQueueOptions = {}) {
    const problems: string[] = []
    sendQueueProblems(options, problems)
    if (problems.length > 0) throw new RxrnnError('bad_config', 'Invalid send queue options', problems)
    this.encoding = options.encode ? 'the custom encode' : (options.encoding ?? 'msgpack')
    this.encode = options.encode ?? (options.encoding === 'json' ? encodeJson : encodeMsgpack)
    this.highWaterMark = options.highWaterMark ?? 1024 * 1024
    this.dropOldest = (options.dropPolicy ?? 'drop-oldest') === 'drop-oldest'
    this.drainPollMs = options.drainPollMs ?? 50
    this.ring = new Array<WireData | undefined>(options.maxQueue ?? 1_000)
  }

  /** Starts sending on `socket` (open or about to be), beginning with what is queued. */
  attach(socket: WebSocket): void {
    this.socket = socket
    this.drain()
  }

  /** Stops sending: frames queue up (and drop) until the next `attach`. */
  detach(): void {
    this.socket = null
    this.settle()
  }

  /**
   * Encodes `frame` and sends or queues it. Returns false when the frame itself was dropped (queue full
   * under 'drop-newest', or queue closed). Throws `RxrnnError('bad_frame')` when the frame cannot be encoded.
   */
  push(frame: unknown): boolean {
    if (this.closed) {
      this.dropped++
      return false
    }
    let data: WireData
    try {
      data = this.encode(frame)
    } catch (error) {
      throw new RxrnnError(
        'bad_frame',
        `Could not encode a frame with ${this.encoding} (${messageOf(error)}): send plain objects, arrays, ` +
          'numbers and strings, or pass an `encode` function that handles this frame',
      )
    }
    if (this.size > 0) this.drain()
    const socket = this.socket
    if (this.size === 0 && socket !== null && this.writable(socket)) {
      this.write(socket, data)
      return true
    }
    return this.enqueue(data)
  }

  stats(): SendQueueStats {
    return { sent: this.sent, dropped: this.dropped, queued: this.size }
  }

  /** Resolves once nothing is queued and the attached socket has flushed its buffer, or the queue closed. */
  drained(): Promise<void> {
    if (this.isDrained()) return Promise.resolve()
    return new Promise((resolve) => {
      this.waiters.push(resolve)
      this.settle()
    })
  }

  /** Drops what is queued (counted), refuses further frames and stops its timer. */
  close(): void {
    this.closed = true
    this.dropped += this.size
    this.ring.fill(undefined)
    this.head = 0
    this.size = 0
    this.socket = null
    this.settle()
  }

  private writable(socket: WebSocket): boolean {
    return socket.readyState === WebSocket.OPEN && socket.bufferedAmount <= this.highWaterMark
  }

  private write(socket: WebSocket, data: WireData): void {
    socket.send(data, this.onWritten)
    this.sent++
  }

  private enqueue(data: WireData): boolean {
    const capacity = this.ring.length
    if (this.size === capacity) {
      this.dropped++
      // With no room at all the new frame is also the oldest one.
      if (!this.dropOldest || capacity === 0) return false
      this.ring[this.head] = undefined
      this.head = (this.head + 1) % capacity
      this.size--
    }
    this.ring[(this.head + this.size) % capacity] = data
    this.size++
    this.settle()
    return true
  }

  private drain(): void {
    const socket = this.socket
    while (this.size > 0 && socket !== null && this.writable(socket)) {
      const data = this.ring[this.head]!
      this.ring[this.head] = undefined
      this.head = (this.head + 1) % this.ring.length
      this.size--
      this.write(socket, data)
    }
    this.settle()
  }

  private isDrained(): boolean {
    return this.size === 0 && (this.socket === null || this.socket.bufferedAmount === 0)
  }

  private settle(): void {
    if (this.waiters.length > 0 && this.isDrained()) {
      const waiters = this.waiters
      this.waiters = []
      for (const resolve of waiters) resolve()
    }
    const needsPoll = this.socket !== null && (this.size > 0 || this.waiters.length > 0)
    if (needsPoll && this.pollTimer === undefined) {
      this.pollTimer = setInterval(() => this.drain(), this.drainPollMs)
      this.pollTimer.unref()
    } else if (!needsPoll && this.pollTimer !== undefined) {
      clearInterval(this.pollTimer)
      this.pollTimer = undefined
    }
  }
}

interface LinkSettings {
  readonly url: string
  /** The URL with the token hidden, for messages. */
  readonly shownUrl: string
  readonly tokenIn: 'header' | 'query' | 'both' | null
  readonly socketOptions: WebSocket.ClientOptions & { closeTimeout: number }
  readonly reconnect: Required<ReconnectOptions> | null
  readonly healthyAfterMs: number
  readonly heartbeatMs: number
  readonly heartbeatTimeoutMs: number
  readonly decode: FrameDecoder
  readonly onDecodeError: ((error: unknown, data: Buffer, isBinary: boolean) => void) | undefined
  readonly onStatus: ((status: WebSocketStatus) => void) | undefined
  readonly random: () => number
}

interface LinkObserver {
  next(value: unknown): void
  error(error: unknown): void
  complete(): void
  status?(status: WebSocketStatus): void
}

function resolveSettings(url: string | URL, options: WebSocketConnectionOptions): LinkSettings {
  checkWebSocketOptions(url, options)
  const target = new URL(url)
  const { token } = options
  const tokenIn = token === undefined ? null : (options.tokenIn ?? 'header')
  const headers: Record<string, string> = { ...options.headers }
  if (token !== undefined && tokenIn !== 'query') headers.authorization = `Bearer ${token}`
  if (token !== undefined && tokenIn !== 'header') target.searchParams.set('token', token)
  const shown = new URL(target)
  if (shown.searchParams.has('token')) shown.searchParams.set('token', '***')
  const heartbeatMs = options.heartbeatMs ?? 15_000
  const reconnect = options.reconnect ?? {}
  return {
    url: target.href,
    shownUrl: shown.href,
    tokenIn,
    socketOptions: {
      perMessageDeflate: false,
      headers,
      maxPayload: options.maxPayload ?? 100 * 1024 * 1024,
      handshakeTimeout: options.handshakeTimeoutMs ?? 10_000,
      closeTimeout: options.closeTimeoutMs ?? 1_000,
    },
    reconnect:
      reconnect === false
        ? null
        : {
            initialDelayMs: reconnect.initialDelayMs ?? 250,
            maxDelayMs: reconnect.maxDelayMs ?? 10_000,
            factor: reconnect.factor ?? 2,
            maxAttempts: reconnect.maxAttempts ?? Number.POSITIVE_INFINITY,
          },
    healthyAfterMs: options.healthyAfterMs ?? 5_000,
    heartbeatMs,
    heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? 2 * heartbeatMs,
    decode: options.decode ?? defaultDecode,
    onDecodeError: options.onDecodeError,
    onStatus: options.onStatus,
    random: options.random ?? Math.random,
  }
}

/** The connect / heartbeat / reconnect state machine behind the source and the connection. */
class Link {
  received = 0
  decodeErrors = 0
  reconnects = 0
  private readonly settings: LinkSettings
  private readonly observer: LinkObserver
  private readonly outbox: SendQueue | null
  private socket: WebSocket | null = null
  private attempt = 0
  private openedAt = -1
  private stopped = false
  private retryTimer: Timer | undefined
  private pingTimer: Timer | undefined
  private deadTimer: Timer | undefined
  /** Why this side killed the socket, reported as the close reason. */
  private killReason: string | undefined
  private lastError: string | undefined
  private fatal: RxrnnError | undefined
  private readonly onAlive = (): void => {
    this.deadTimer?.refresh()
  }
  private readonly ping = (): void => {
    this.socket?.ping()
  }
  private readonly onSilence = (): void => {
    const socket = this.socket
    if (socket === null) return
    this.killReason = `no pong or message for ${this.settings.heartbeatTimeoutMs} ms: dead peer`
    socket.terminate()
  }
  private readonly connect = (): void => {
    this.retryTimer = undefined
    this.emitStatus({ state: 'connecting', attempt: this.attempt })
    if (this.stopped) return
    let socket: WebSocket
    try {
      socket = new WebSocket(this.settings.url, this.settings.socketOptions)
    } catch (error) {
      this.finish(
        new RxrnnError(
          'bad_config',
          `Could not open a WebSocket to ${this.settings.shownUrl}: ${messageOf(error)}`,
        ),
      )
      return
    }
    this.socket = socket
    this.openedAt = -1
    socket.on('open', () => this.onOpen(socket))
    socket.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary))
    socket.on('pong', this.onAlive)
    socket.on('ping', this.onAlive)
    socket.on('unexpected-response', (_request, response) => this.onRefused(socket, response))
    socket.on('error', (error) => {
      this.lastError = error.message
    })
    socket.on('close', (code, reason) => this.onClose(socket, code, reason))
  }

  constructor(settings: LinkSettings, observer: LinkObserver, outbox: SendQueue | null) {
    this.settings = settings
    this.observer = observer
    this.outbox = outbox
  }

  start(): void {
    this.connect()
  }

  /** Closes the socket (code 1000), cancels every timer and listener; idempotent. */
  stop(): void {
    if (this.stopped) return
    this.stopped = true
    this.clearTimers()
    this.outbox?.close()
    const socket = this.socket
    this.socket = null
    if (socket !== null) {
      socket.removeAllListeners()
      // Aborting a handshake still emits 'error'; with no listener that would crash the process.
      socket.on('error', noop)
      if (socket.readyState === WebSocket.CONNECTING) socket.terminate()
      else socket.close(NORMAL_CLOSURE, 'client closed')
    }
    this.emitStatus({
      state: 'closed',
      attempt: this.attempt,
      code: NORMAL_CLOSURE,
      reason: 'closed by client',
    })
  }

  private onOpen(socket: WebSocket): void {
    if (socket !== this.socket) return
    this.openedAt = performance.now()
    if (this.settings.heartbeatMs > 0) {
      this.pingTimer = setInterval(this.ping, this.settings.heartbeatMs)
      this.deadTimer = setTimeout(this.onSilence, this.settings.heartbeatTimeoutMs)
    }
    this.emitStatus({ state: 'open', attempt: this.attempt })
    if (!this.stopped) this.outbox?.attach(socket)
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    this.deadTimer?.refresh()
    this.received++
    let value: unknown
    try {
      value = this.settings.decode(data, isBinary)
    } catch (error) {
      this.decodeErrors++
      this.settings.onDecodeError?.(error, data, isBinary)
      return
    }
    this.observer.next(value)
  }

  private onRefused(socket: WebSocket, response: IncomingMessage): void {
    const status = response.statusCode ?? 0
    response.resume()
    this.lastError = `HTTP ${status} ${response.statusMessage ?? ''}`.trimEnd()
    const { shownUrl, tokenIn } = this.settings
    if (status === 401 || status === 403) {
      const sent =
        tokenIn === null
          ? 'no token was sent: pass the `token` option'
          : `the token sent (${tokenIn === 'query' ? 'as ?token=' : 'as Authorization: Bearer'}) was refused: ` +
            'check the `token` option against the token the server expects'
      this.fatal = new RxrnnError(
        'bad_config',
        `WebSocket server at ${shownUrl} answered HTTP ${status} (not authorized); ${sent}. Not retrying.`,
      )
    } else if (status < 500 && status !== 408 && status !== 429) {
      // A redirect, a plain HTTP page or a client error: retrying the same request cannot help.
      this.fatal = new RxrnnError(
        'bad_config',
        `WebSocket server at ${shownUrl} answered HTTP ${status} to the upgrade request: check the URL ` +
          '(host, port and path). Not retrying.',
      )
    }
    socket.terminate()
  }

  private onClose(socket: WebSocket, code: number, reasonBytes: Buffer): void {
    if (socket !== this.socket) return
    this.socket = null
    this.clearTimers()
    this.outbox?.detach()
    const reason =
      this.killReason ?? (reasonBytes.length > 0 ? reasonBytes.toString() : (this.lastError ?? ''))
    this.killReason = undefined
    this.lastError = undefined
    const wasHealthy = this.openedAt >= 0 && performance.now() - this.openedAt >= this.settings.healthyAfterMs
    this.emitStatus({ state: 'closed', attempt: this.attempt, code, reason })
    if (this.stopped) return
    const policy = this.settings.reconnect
    if (wasHealthy) this.attempt = 0
    if (this.fatal === undefined && policy !== null && this.attempt < policy.maxAttempts) {
      this.scheduleReconnect(policy)
    } else {
      this.finish(this.fatal ?? this.endError(policy, code, reason))
    }
  }

  /** The error that ends the stream after a close that will not be retried; none for a clean close. */
  private endError(
    policy: Required<ReconnectOptions> | null,
    code: number,
    reason: string,
  ): RxrnnError | undefined {
    const { shownUrl } = this.settings
    const lastClose = `code ${code}${reason === '' ? '' : `, ${reason}`}`
    if (policy !== null) {
      return new RxrnnError(
        'internal',
        `Gave up on ${shownUrl} after ${policy.maxAttempts} reconnect attempts (last: ${lastClose}): ` +
          'check that the server is running and reachable, or raise reconnect.maxAttempts',
      )
    }
    if (code === NORMAL_CLOSURE || code === GOING_AWAY) return undefined
    return new RxrnnError(
      'internal',
      `WebSocket to ${shownUrl} closed (${lastClose}) and reconnect is off: ` +
        'check the server, or pass a `reconnect` policy to keep the stream alive',
    )
  }

  private scheduleReconnect(policy: Required<ReconnectOptions>): void {
    this.attempt++
    const cap = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.factor ** (this.attempt - 1))
    const jitter = Math.min(Math.max(this.settings.random(), 0), 1)
    const delayMs = Math.floor(jitter * cap)
    this.reconnects++
    this.emitStatus({ state: 'reconnecting', attempt: this.attempt, delayMs })
    if (this.stopped) return
    this.retryTimer = setTimeout(this.connect, delayMs)
  }

  private finish(error?: RxrnnError): void {
    this.stopped = true
    this.clearTimers()
    this.outbox?.close()
    if (error === undefined) this.observer.complete()
    else this.observer.error(error)
  }

  private clearTimers(): void {
    clearTimeout(this.retryTimer)
    clearInterval(this.pingTimer)
    clearTimeout(this.deadTimer)
    this.retryTimer = undefined
    this.pingTimer = undefined
    this.deadTimer = undefined
  }

  private emitStatus(status: WebSocketStatus): void {
    this.observer.status?.(status)
    this.settings.onStatus?.(status)
  }
}

/**
 * A cold Observable of the messages a WebSocket server sends. Each subscription opens its own connection,
 * decodes every message (binary: msgpack, text: JSON, unless `decode` says otherwise), pings the server
 * to find dead peers, reconnects with capped exponential backoff and full jitter, and closes the socket
 * on unsubscribe. Messages that fail to decode go to `onDecodeError` and the stream goes on. It errors
 * with `RxrnnError` when the server refuses the token (HTTP 401/403, never retried), when reconnects run
 * out, or when the connection closes with `reconnect: false` (a clean close completes instead).
 * Throws `RxrnnError('bad_config')` at once on invalid options.
 *
 * @example
 * webSocketSource('ws://127.0.0.1:8080/predictions', {
 *   token: process.env.RXRNN_TOKEN,
 *   onStatus: (s) => console.error(`[ws] ${s.state}`, s.delayMs ?? ''),
 * }).subscribe((message) => console.log(message))
 */
export function webSocketSource(
  url: string | URL,
  options: WebSocketSourceOptions = {},
): Observable<unknown> {
  const settings = resolveSettings(url, options)
  return new Observable<unknown>((subscriber) => {
    const link = new Link(settings, subscriber, null)
    link.start()
    return () => link.stop()
  })
}

/**
 * Opens one reconnecting connection at once that both receives (`messages$`) and sends (`send`). Sends
 * go through a bounded {@link SendQueue}: while the connection is down, or the socket buffers more than
 * `highWaterMark` bytes, frames wait (at most `maxQueue`; 'drop-oldest' by default), and they go out in
 * order after the reconnect. `close()` ends it; a refused token or exhausted reconnects error `messages$`.
 * Throws `RxrnnError('bad_config')` at once on invalid options.
 *
 * @example
 * const connection = webSocketConnection('ws://127.0.0.1:8080/stream', { encoding: 'json' })
 * connection.messages$.subscribe({ next: (m) => console.log('prediction', m), error: console.error })
 * connection.send({ type: 'tick', t: Date.now(), x: [0.1, 0.2] })
 * await connection.drained()
 * connection.close()
 */
export function webSocketConnection(
  url: string | URL,
  options: WebSocketConnectionOptions = {},
): WebSocketConnection {
  const settings = resolveSettings(url, options)
  const messages = new Subject<unknown>()
  const status = new ReplaySubject<WebSocketStatus>(1)
  const outbox = new SendQueue(options)
  const link = new Link(
    settings,
    {
      next: (value) => messages.next(value),
      status: (s) => status.next(s),
      error: (error) => {
        messages.error(error)
        status.complete()
      },
      complete: () => {
        messages.complete()
        status.complete()
      },
    },
    outbox,
  )
  link.start()
  return {
    messages$: messages.asObservable(),
    status$: status.asObservable(),
    send: (frame) => outbox.push(frame),
    stats: () => ({
      ...outbox.stats(),
      received: link.received,
      decodeErrors: link.decodeErrors,
      reconnects: link.reconnects,
    }),
    drained: () => outbox.drained(),
    close: () => {
      link.stop()
      messages.complete()
      status.complete()
    },
  }
}
