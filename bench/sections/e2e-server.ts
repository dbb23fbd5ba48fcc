/**
 * The server side of section 4, run in its own process (`node --import tsx`) so that the client
 * and the server do not share an event loop. Builds the benchmark model on the backend named in
 * argv[2] (falling back to js when that one cannot be built), serves it on 127.0.0.1 on a free
 * port, prints one JSON line `{ port, backend, fallback? }` on stdout, and closes on SIGTERM or
 * when stdin ends (the harness died).
 */
import { serve } from '../../streams/server.js'
import { type Backend, createRxrnnModel, trainerOptions } from './common.js'

const wanted = (process.argv[2] ?? 'js') as Backend
let backend: Backend = wanted
let model = createRxrnnModel(wanted)
let fallback: string | undefined
if ('available' in model) {
  fallback = model.reason
  backend = 'js'
  model = createRxrnnModel('js')
}
if ('available' in model) throw new Error(model.reason)

const server = await serve({ model, trainer: trainerOptions(0), host: '127.0.0.1', port: 0 })
process.stdout.write(`${JSON.stringify({ port: server.port, backend, ...(fallback ? { fallback } : {}) })}\n`)

let closing = false
const stop = () => {
  if (closing) return
  closing = true
  void server.close().then(() => process.exit(0))
  setTimeout(() => process.exit(0), 2000).unref()
}
process.on('SIGTERM', stop)
process.stdin.on('end', stop)
process.stdin.resume()
