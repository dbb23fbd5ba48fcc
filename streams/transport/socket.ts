/**
 * What the transport needs from a WebSocket, whatever the platform: `websocket-node.ts` (on `ws`) and
 * `websocket-browser.ts` (on the platform's `WebSocket`) implement it, and package.json's `#websocket`
 * import picks one by export condition (`browser` or `default`). Nothing here imports either, so the
 * public types never name `ws`.
 */

/** Bytes or text to send: bytes go out as a binary message, a string as a text message. */
export type WireData = Uint8Array | string

/** `readyState` values shared by `ws` and the WHATWG `WebSocket`. */
export const CONNECTING = 0
export const OPEN = 1
export const CLOSED = 3

export const NORMAL_CLOSURE = 1000
export const GOING_AWAY = 1001

/**
 * The part of a WebSocket that a send queue writes to: a `ws` socket and a browser `WebSocket` both
 * have it. `written` is called once the frame left (`ws` does; browsers ignore it, and the queue
 * polls `bufferedAmount` instead).
 *
 * @example
 * const target: SendTarget = new WebSocket('ws://127.0.0.1:8080/stream')
 */
export interface SendTarget {
  readonly readyState: number
  readonly bufferedAmount: number
  send(data: WireData, written?: (error?: Error) => void): void
}

/**
 * A WebSocket that someone else opened and owns, as `webSocketSink` accepts it: a `ws` socket (client
 * or server side) in Node, a `WebSocket` in a browser. Structural, so the published types need
 * neither `ws` nor the DOM library.
 *
 * @example
 * wss.on('connection', (socket: OwnedWebSocket) => frames$.pipe(webSocketSink(socket)).subscribe())
 */
export interface OwnedWebSocket extends SendTarget {
  addEventListener(type: 'open' | 'close', listener: () => void): void
  removeEventListener(type: 'open' | 'close', listener: () => void): void
}

/** True for anything that has what {@link OwnedWebSocket} names. */
export function isOwnedWebSocket(value: unknown): value is OwnedWebSocket {
  if (typeof value !== 'object' || value === null) return false
  const socket = value as Partial<Record<keyof OwnedWebSocket, unknown>>
  return (
    typeof socket.readyState === 'number' &&
    typeof socket.send === 'function' &&
    typeof socket.addEventListener === 'function' &&
    typeof socket.removeEventListener === 'function'
  )
}

/** How to open a client socket; what a platform cannot do it reports in {@link WebSocketPlatform}. */
export interface SocketSettings {
  readonly headers: Readonly<Record<string, string>>
  readonly protocols: readonly string[]
  readonly maxPayload: number
  readonly handshakeTimeoutMs: number
  readonly closeTimeoutMs: number
}

/** What the link hears from a client socket, already in one shape for every platform. */
export interface SocketEvents {
  open(): void
  /** `data` is a Uint8Array (a Buffer in Node) for binary messages; text may come as a string. */
  message(data: Uint8Array | string, isBinary: boolean): void
  /** A pong or a ping: the peer is alive. */
  alive(): void
  /** The server answered the upgrade with a plain HTTP response. */
  refused(status: number, statusText: string): void
  error(message: string): void
  close(code: number, reason: string): void
}

/** A client socket as the link drives it. */
export interface ClientSocket extends SendTarget {
  ping(): void
  /** Closing handshake with `code`; the socket is destroyed after `closeTimeoutMs` without an answer. */
  close(code: number, reason: string): void
  /** Drops the connection at once. */
  terminate(): void
  /** Stops every event (late errors are swallowed), then closes or terminates as its state needs. */
  dispose(code: number, reason: string): void
}

/** What the platform's WebSocket can do; browsers cannot set headers, see HTTP statuses or ping. */
export interface WebSocketPlatform {
  readonly name: 'node' | 'browser'
  readonly headers: boolean
  readonly httpStatus: boolean
  readonly ping: boolean
}

export type OpenSocket = (url: string, settings: SocketSettings, events: SocketEvents) => ClientSocket
