/**
 * The control of section 4: a bare WebSocket server (ws, msgpack through streams/codec.ts) that
 * answers every tick at once with a constant prediction frame: no validation, no model, no
 * monitor. Run by the same client as the rxrnn server, it measures what this machine's WebSocket
 * path alone costs (the transport floor), so the rxrnn numbers can be read against it. Prints
 * `{ port, backend: 'echo' }` on stdout and closes on SIGTERM or when stdin ends.
 */
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'
import { decodeFrame, encodeFrame } from '../../streams/transport/codec.js'

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })
await new Promise((resolve) => wss.once('listening', resolve))
const y = [0]
wss.on('connection', (socket) => {
  socket.on('message', (data, isBinary) => {
    const decoded = decodeFrame(data as Buffer, isBinary)
    const tick = (decoded.ok ? decoded.value : {}) as { key?: string; id?: number }
    socket.send(encodeFrame({ type: 'prediction', key: tick.key, id: tick.id, y }, 'msgpack'))
  })
})
const port = (wss.address() as AddressInfo).port
process.stdout.write(`${JSON.stringify({ port, backend: 'echo', timing: false })}\n`)
const stop = () => wss.close(() => process.exit(0))
process.on('SIGTERM', stop)
process.stdin.on('end', stop)
process.stdin.resume()
