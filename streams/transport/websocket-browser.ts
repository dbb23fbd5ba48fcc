/**
 * The client socket in browsers (and other runtimes with a WHATWG `WebSocket`), on
 * `globalThis.WebSocket` with binaryType 'arraybuffer'. package.json's `#websocket` import resolves
 * here under the `browser` condition, so a browser bundle never reaches `ws` or `node:*`.
 *
 * What differs from Node, by what the platform allows: no headers on the upgrade request (the token
 * goes as `?token=` or in `protocols`); a refused upgrade is only a close with code 1006, with no
 * HTTP status, so a wrong token is retried like a network failure; no pings (the browser answers the
 * server's pings itself, and the server finds dead clients); no send callbacks (the send queue polls
 * `bufferedAmount`). `maxPayload` and the handshake timeout are enforced here by hand.
 */
import type { ClientSocket, OpenSocket, SocketEvents, SocketSettings, WebSocketPlatform } from './socket.js'
import { CONNECTING } from './socket.js'

export const platform: WebSocketPlatform = { name: 'browser', headers: false, httpStatus: false, ping: false }

const MESSAGE_TOO_BIG = 1009

/** The few members of the DOM `WebSocket` used here, so this file needs no DOM typings. */
interface BrowserWebSocket {
  binaryType: string
  readonly readyState: number
  readonly bufferedAmount: number
  onopen: (() => void) | null
  onmessage: ((event: { data: unknown }) => void) | null
  onerror: (() => void) | null
  onclose: ((event: { code: number; reason: string }) => void) | null
  send(data: Uint8Array | string): void
  close(code?: number, reason?: string): void
}

type BrowserWebSocketCtor = new (url: string, protocols?: string[]) => BrowserWebSocket

function webSocketCtor(): BrowserWebSocketCtor {
  const ctor = (globalThis as { WebSocket?: BrowserWebSocketCtor }).WebSocket
  if (ctor === undefined) {
    throw new Error(
      'this runtime has no global WebSocket; in Node, import rxrnn/streams without the browser condition',
    )
  }
  return ctor
}

export const openSocket: OpenSocket = (
  url: string,
  settings: SocketSettings,
  events: SocketEvents,
): ClientSocket => {
  const Ctor = webSocketCtor()
  const socket = new Ctor(url, [...settings.protocols])
  socket.binaryType = 'arraybuffer'
  let closed = false
  // A close we started: the browser reports the code it got back (or 1006); report ours.
  let ownClose: { code: number; reason: string } | undefined
  const handshakeTimer = setTimeout(() => {
    ownClose = {
      code: 1006,
      reason: `no answer to the upgrade request within ${settings.handshakeTimeoutMs} ms`,
    }
    socket.close()
  }, settings.handshakeTimeoutMs)
  socket.onopen = () => {
    clearTimeout(handshakeTimer)
    events.open()
  }
  socket.onmessage = (event) => {
    const { data } = event
    if (typeof data === 'string') {
      // UTF-16 length ≤ UTF-8 length ≤ 3 × UTF-16 length: count bytes only when it matters.
      if (
        data.length * 3 > settings.maxPayload &&
        new TextEncoder().encode(data).length > settings.maxPayload
      ) {
        tooBig()
        return
      }
      events.message(data, false)
    } else if (data instanceof ArrayBuffer) {
      if (data.byteLength > settings.maxPayload) {
        tooBig()
        return
      }
      events.message(new Uint8Array(data), true)
    }
  }
  socket.onerror = () => events.error('WebSocket error (the browser gives no detail)')
  socket.onclose = (event) => {
    clearTimeout(handshakeTimer)
    if (closed) return
    closed = true
    const reported = ownClose ?? { code: event.code, reason: event.reason }
    events.close(reported.code, reported.reason)
  }
  function tooBig(): void {
    ownClose = {
      code: MESSAGE_TOO_BIG,
      reason: `a message was larger than maxPayload (${settings.maxPayload} bytes)`,
    }
    socket.close()
  }
  // Browsers accept only 1000 and 3000-4999 from a script; any other code closes with none.
  function closeWith(code: number, reason: string): void {
    if (code === 1000 || (code >= 3000 && code <= 4999)) socket.close(code, reason)
    else socket.close()
  }
  return {
    get readyState() {
      return socket.readyState
    },
    get bufferedAmount() {
      return socket.bufferedAmount
    },
    send: (data) => socket.send(data),
    ping: () => {},
    close: closeWith,
    // Browsers cannot drop a connection without the closing handshake; close() is as close as it gets.
    terminate: () => {
      ownClose ??= { code: 1006, reason: 'terminated' }
      socket.close()
    },
    dispose: (code, reason) => {
      clearTimeout(handshakeTimer)
      closed = true
      socket.onopen = null
      socket.onmessage = null
      socket.onerror = null
      socket.onclose = null
      if (socket.readyState === CONNECTING) socket.close()
      else closeWith(code, reason)
    },
  }
}
