/**
 * Section 8: slow readers. One producer keeps a window of 256 ticks in flight against `serve`
 * (in this process: the memory measured is the server's), once alone and once with 20
 * subscribers to predictions, updates and hidden states whose sockets are paused (they never
 * read). Reports producers' throughput both ways and the server memory each stalled subscriber
 * costs (heap and buffers after a full GC, at the default 4 MiB budget per connection). Goals
 * (issue 15): producers keep at least half their throughput; at most 8 MiB per stalled subscriber.
 */
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { pack } from 'msgpackr'
import { WebSocket } from 'ws'
import type { RxrnnServer } from '../../streams/server/server.js'
import { serve } from '../../streams/server/server.js'
import { decodeFrame, encodeFrame } from '../../streams/transport/codec.js'
import { bytes, count, header, note, printTable, type SummaryRow } from '../report.js'
import type { Context } from './common.js'

const STALLED = 20
const WINDOW = 256
const KEYS = 100

export interface SlowReadersResult {
  alone: number
  withStalled: number
  bytesPerStalled: number
  dropped: number
  summary: SummaryRow[]
}

export async function runSlowReaders(ctx: Context): Promise<SlowReadersResult> {
  header(8, `slow readers: one producer, alone and beside ${STALLED} subscribers that never read`)
  const server = await serve({
    model: { cell: 'gru', inputSize: 8, hiddenSize: 64, outputSize: 1, seed: 1 },
    trainer: { k1: 16, loss: 'mse', optimizer: { type: 'adam', lr: 1e-3 }, clipNorm: 1 },
    // The stalled subscribers stay for the whole run (the default closes them after 5 s).
    slowReaderGraceMs: 3_600_000,
    idleTimeoutMs: 3_600_000,
  })
  const seconds = ctx.quick ? 1 : 4
  const memory = (): number => {
    ctx.gc()
    ctx.gc()
    const m = process.memoryUsage()
    return m.heapUsed + m.arrayBuffers
  }
  try {
    await throughput(server, 0.5) // warm-up
    const alone = await throughput(server, seconds)
    const before = memory()
    const stalled: Socket[] = []
    for (let i = 0; i < STALLED; i++) stalled.push(await stalledSubscriber(server.port))
    const withStalled = await throughput(server, seconds)
    const bytesPerStalled = (memory() - before) / STALLED
    const dropped = server.metrics().dropped
    for (const s of stalled) s.destroy()
    const kept = withStalled / alone
    printTable(
      ['producer', 'ticks/s', 'vs alone', 'server memory per stalled subscriber'],
      [
        ['alone', count(alone), '', ''],
        [
          `with ${STALLED} stalled`,
          count(withStalled),
          `${(kept * 100).toFixed(0)} %`,
          bytes(bytesPerStalled),
        ],
      ],
    )
    note(
      `goals: producers keep ≥ 50 % (${kept >= 0.5 ? 'PASS' : 'MISS'}), ≤ 8 MiB per stalled subscriber ` +
        `(${bytesPerStalled <= 8 * 2 ** 20 ? 'PASS' : 'MISS'}); ${count(dropped)} frames to them dropped (counted)`,
    )
    return {
      alone,
      withStalled,
      bytesPerStalled,
      dropped,
      summary: [
        {
          measure: `producer throughput beside ${STALLED} stalled subscribers`,
          rxrnn: `${count(withStalled)} ticks/s (${(kept * 100).toFixed(0)} % of ${count(alone)})`,
          versus: '',
          ratio: '',
          target: `${kept >= 0.5 ? 'PASS' : 'MISS'} (≥ 50 %)`,
        },
        {
          measure: 'server memory per stalled subscriber',
          rxrnn: bytes(bytesPerStalled),
          versus: '',
          ratio: '',
          target: `${bytesPerStalled <= 8 * 2 ** 20 ? 'PASS' : 'MISS'} (≤ 8 MiB)`,
        },
      ],
    }
  } finally {
    await server.close()
  }
}

/** Ticks per second one producer gets with WINDOW ticks in flight, over `seconds`. */
async function throughput(server: RxrnnServer, seconds: number): Promise<number> {
  const ws = new WebSocket(server.url, { perMessageDeflate: false })
  await once(ws, 'open')
  const frames = Array.from({ length: KEYS }, (_, k) =>
    encodeFrame(
      { type: 'tick', key: `sensor-${k}`, x: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, k / KEYS], y: 0.5 },
      'msgpack',
    ),
  )
  let sent = 0
  let answered = 0
  const started = performance.now()
  const end = started + seconds * 1000
  const done = new Promise<void>((resolve) => {
    ws.on('message', (data: Buffer, isBinary) => {
      const decoded = decodeFrame(data, isBinary)
      if (!decoded.ok || (decoded.value as { type?: string }).type !== 'prediction') return
      answered++
      if (performance.now() < end) ws.send(frames[sent++ % KEYS]!)
      else if (answered === sent) resolve()
    })
  })
  for (let i = 0; i < WINDOW; i++) ws.send(frames[sent++ % KEYS]!)
  await done
  const rate = answered / ((performance.now() - started) / 1000)
  ws.close()
  return rate
}

/** A raw WebSocket that subscribes to predictions, updates and hidden states, then never reads. */
async function stalledSubscriber(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => {})
  await once(socket, 'connect')
  socket.write(
    `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  )
  await once(socket, 'data')
  const payload = pack({ type: 'subscribe', channels: ['predictions', 'updates', 'hidden'] })
  const header = Buffer.from([0x82, 0x80 | payload.length, 0, 0, 0, 0]) // masked with a zero mask
  socket.write(Buffer.concat([header, payload]))
  socket.pause()
  return socket
}
