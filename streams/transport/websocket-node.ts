/**
 * The client socket in Node, on `ws`: headers on the upgrade request, the HTTP status of a refused
 * upgrade, ping/pong heartbeats and send callbacks. package.json's `#websocket` import resolves here
 * under the `default` condition; browsers get `websocket-browser.ts`.
 */
import WebSocket from 'ws'
import type { ClientSocket, OpenSocket, SocketEvents, SocketSettings, WebSocketPlatform } from './socket.js'

export const platform: WebSocketPlatform = { name: 'node', headers: true, httpStatus: true, ping: true }

function noop(): void {}

export const openSocket: OpenSocket = (
  url: string,
  settings: SocketSettings,
  events: SocketEvents,
): ClientSocket => {
  const socket = new WebSocket(url, [...settings.protocols], {
    perMessageDeflate: false,
    headers: { ...settings.headers },
    maxPayload: settings.maxPayload,
    handshakeTimeout: settings.handshakeTimeoutMs,
    closeTimeout: settings.closeTimeoutMs,
  } as WebSocket.ClientOptions)
  socket.on('open', () => events.open())
  socket.on('message', (data, isBinary) => events.message(data as Buffer, isBinary))
  socket.on('pong', () => events.alive())
  socket.on('ping', () => events.alive())
  socket.on('unexpected-response', (_request, response) => {
    response.resume()
    events.refused(response.statusCode ?? 0, response.statusMessage ?? '')
  })
  socket.on('error', (error) => events.error(error.message))
  socket.on('close', (code, reason) => events.close(code, reason.toString()))
  return {
    get readyState() {
      return socket.readyState
    },
    get bufferedAmount() {
      return socket.bufferedAmount
    },
    send: (data, written) => socket.send(data, written),
    ping: () => socket.ping(),
    close: (code, reason) => socket.close(code, reason),
    terminate: () => socket.terminate(),
    dispose: (code, reason) => {
      socket.removeAllListeners()
      // Aborting a handshake still emits 'error'; with no listener that would crash the process.
      socket.on('error', noop)
      if (socket.readyState === WebSocket.CONNECTING) socket.terminate()
      else socket.close(code, reason)
    },
  }
}
