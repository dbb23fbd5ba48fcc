/**
 * The connect / heartbeat / reconnect state machine behind `webSocketSource` and `webSocketConnection`.
 *
 * Why not RxJS's `webSocket()` (rxjs/webSocket) with `retry({ delay })`: it takes a `WebSocketCtor`
 * (so `ws` in Node), a serializer/deserializer and `binaryType`, and `retry({ delay, resetOnSuccess })`
 * gives capped backoff with jitter. What it cannot give: (1) a final error on HTTP 401/403, because a
 * WebSocketSubject sees only the socket's `close`, never `ws`'s 'unexpected-response' with the status;
 * (2) a heartbeat, because it never exposes the socket to ping it or hear pongs; (3) a bounded send
 * queue with a drop policy and `bufferedAmount` backpressure: its `next()` buffers without limit
 * until open and then writes whatever the socket holds; (4) a backoff that resets after the
 * connection stayed up `healthyAfterMs` (`resetOnSuccess` resets on the first message instead); and
 * (5) status events with the close code and reason. Building on it would mean reaching around it for
 * the socket in each of these, so the link drives the platform socket itself (see socket.ts) and
 * stays about as long as the parts it would have to patch.
 */
import { RxrnnError } from '../../src/errors.js'
import type { LinkSettings, ReconnectOptions, WebSocketStatus } from './options.js'
import type { SendQueue } from './send-queue.js'
import { type ClientSocket, GOING_AWAY, NORMAL_CLOSURE, type OpenSocket } from './socket.js'

type Timer = ReturnType<typeof setTimeout>

/** Where the link is; `backoff` without a timer is the moment between one socket and the next. */
export type LinkPhase = 'idle' | 'connecting' | 'open' | 'backoff' | 'closed'

export interface LinkObserver {
  next(value: unknown): void
  error(error: unknown): void
  complete(): void
  status?(status: WebSocketStatus): void
}

/** One socket and what the link learns about it before it closes. */
interface Conn {
  readonly socket: ClientSocket
  /** Why this side killed the socket, reported as the close reason. */
  killReason?: string
  lastError?: string
  /** Set when the server refused the upgrade in a way retrying cannot fix. */
  fatal?: RxrnnError
}

type LinkState =
  | { readonly phase: 'idle' }
  | { readonly phase: 'connecting'; readonly conn: Conn }
  | {
      readonly phase: 'open'
      readonly conn: Conn
      readonly openedAt: number
      readonly pingTimer: Timer | undefined
      readonly deadTimer: Timer | undefined
    }
  | { readonly phase: 'backoff'; readonly timer: Timer | undefined }
  | { readonly phase: 'closed' }

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

export class Link {
  received = 0
  decodeErrors = 0
  reconnects = 0
  private state: LinkState = { phase: 'idle' }
  /** Consecutive reconnects; back to 0 after a healthy connection. */
  private attempt = 0
  private readonly settings: LinkSettings
  private readonly openSocket: OpenSocket
  private readonly observer: LinkObserver
  private readonly outbox: SendQueue | null
  private readonly connect = (): void => {
    this.emitStatus({ state: 'connecting', attempt: this.attempt })
    if (this.phase === 'closed') return
    const conn = this.open()
    if (conn !== null) this.state = { phase: 'connecting', conn }
  }

  constructor(
    settings: LinkSettings,
    openSocket: OpenSocket,
    observer: LinkObserver,
    outbox: SendQueue | null,
  ) {
    this.settings = settings
    this.openSocket = openSocket
    this.observer = observer
    this.outbox = outbox
  }

  get phase(): LinkPhase {
    return this.state.phase
  }

  start(): void {
    if (this.state.phase === 'idle') this.connect()
  }

  /** Closes the socket (code 1000), cancels every timer and listener; idempotent. */
  stop(): void {
    const previous = this.state
    if (previous.phase === 'closed') return
    this.state = { phase: 'closed' }
    clearTimers(previous)
    this.outbox?.close()
    if (previous.phase === 'connecting' || previous.phase === 'open') {
      previous.conn.socket.dispose(NORMAL_CLOSURE, 'client closed')
    }
    this.emitStatus({
      state: 'closed',
      attempt: this.attempt,
      code: NORMAL_CLOSURE,
      reason: 'closed by client',
    })
  }

  private open(): Conn | null {
    let conn: Conn | null = null
    const current = (): Conn | null => {
      const state = this.state
      return (state.phase === 'connecting' || state.phase === 'open') && state.conn === conn ? conn : null
    }
    try {
      const socket = this.openSocket(this.settings.url, this.settings, {
        open: () => {
          if (current() !== null) this.onOpen(conn!)
        },
        message: (data, isBinary) => {
          if (current() !== null) this.onMessage(data, isBinary)
        },
        alive: () => this.onAlive(),
        refused: (status, statusText) => {
          if (current() !== null) this.onRefused(conn!, status, statusText)
        },
        error: (message) => {
          if (current() !== null) conn!.lastError = message
        },
        close: (code, reason) => {
          if (current() !== null) this.onClose(conn!, code, reason)
        },
      })
      conn = { socket }
    } catch (error) {
      this.finish(
        new RxrnnError(
          'bad_config',
          `Could not open a WebSocket to ${this.settings.shownUrl}: ${messageOf(error)}`,
        ),
      )
    }
    return conn
  }

  private onOpen(conn: Conn): void {
    const { heartbeatMs, heartbeatTimeoutMs } = this.settings
    const beating = heartbeatMs > 0
    this.state = {
      phase: 'open',
      conn,
      openedAt: performance.now(),
      pingTimer: beating ? setInterval(() => conn.socket.ping(), heartbeatMs) : undefined,
      deadTimer: beating ? setTimeout(() => this.onSilence(conn), heartbeatTimeoutMs) : undefined,
    }
    this.emitStatus({ state: 'open', attempt: this.attempt })
    if (this.phase === 'open') this.outbox?.attach(conn.socket)
  }

  private onAlive(): void {
    if (this.state.phase === 'open') this.state.deadTimer?.refresh()
  }

  private onSilence(conn: Conn): void {
    conn.killReason = `no pong or message for ${this.settings.heartbeatTimeoutMs} ms: dead peer`
    conn.socket.terminate()
  }

  private onMessage(data: Uint8Array | string, isBinary: boolean): void {
    this.onAlive()
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

  private onRefused(conn: Conn, status: number, statusText: string): void {
    conn.lastError = `HTTP ${status} ${statusText}`.trimEnd()
    const { shownUrl, tokenIn } = this.settings
    if (status === 401 || status === 403) {
      const sent =
        tokenIn === null
          ? 'no token was sent: pass the `token` option'
          : `the token sent (${tokenIn === 'query' ? 'as ?token=' : 'as Authorization: Bearer'}) was refused: ` +
            'check the `token` option against the token the server expects'
      conn.fatal = new RxrnnError(
        'bad_config',
        `WebSocket server at ${shownUrl} answered HTTP ${status} (not authorized); ${sent}. Not retrying.`,
      )
    } else if (status < 500 && status !== 408 && status !== 429) {
      // A redirect, a plain HTTP page or a client error: retrying the same request cannot help.
      conn.fatal = new RxrnnError(
        'bad_config',
        `WebSocket server at ${shownUrl} answered HTTP ${status} to the upgrade request: check the URL ` +
          '(host, port and path). Not retrying.',
      )
    }
    conn.socket.terminate()
  }

  private onClose(conn: Conn, code: number, closeReason: string): void {
    const previous = this.state
    const wasHealthy =
      previous.phase === 'open' && performance.now() - previous.openedAt >= this.settings.healthyAfterMs
    clearTimers(previous)
    this.state = { phase: 'backoff', timer: undefined }
    this.outbox?.detach()
    const reason = conn.killReason ?? (closeReason !== '' ? closeReason : (conn.lastError ?? ''))
    this.emitStatus({ state: 'closed', attempt: this.attempt, code, reason })
    // onStatus may have called stop().
    if (this.phase === 'closed') return
    const policy = this.settings.reconnect
    if (wasHealthy) this.attempt = 0
    if (conn.fatal === undefined && policy !== null && this.attempt < policy.maxAttempts) {
      this.scheduleReconnect(policy)
    } else {
      this.finish(conn.fatal ?? this.endError(policy, code, reason))
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
    if (this.phase === 'closed') return
    this.state = { phase: 'backoff', timer: setTimeout(this.connect, delayMs) }
  }

  private finish(error?: RxrnnError): void {
    clearTimers(this.state)
    this.state = { phase: 'closed' }
    this.outbox?.close()
    if (error === undefined) this.observer.complete()
    else this.observer.error(error)
  }

  private emitStatus(status: WebSocketStatus): void {
    this.observer.status?.(status)
    this.settings.onStatus?.(status)
  }
}

function clearTimers(state: LinkState): void {
  if (state.phase === 'open') {
    clearInterval(state.pingTimer)
    clearTimeout(state.deadTimer)
  } else if (state.phase === 'backoff') {
    clearTimeout(state.timer)
  }
}
