/**
 * Slow readers cannot hurt producers (issue 15): twenty subscribers that never read cost a
 * bounded amount of server memory each (their budget counts real bytes, frame overhead
 * included), the global budget bounds them together, and one that stays over its budget is
 * closed with 1013 and counted. Throughput with and without them is `npm run bench`'s job.
 */
import { once } from 'node:events'
import type { Socket } from 'node:net'
import { pack } from 'msgpackr'
import { afterEach, describe, expect, it } from 'vitest'
import type { ModelConfig, TrainerOptions } from '../../../src/index.js'
import { SharedFrame } from '../../../streams/server/frames.js'
import { type RxrnnServer, type ServeOptions, serve } from '../../../streams/server/server.js'
import { FrameClient, heapAfterGc, maskedFrame, mb, rawWebSocket } from '../../helpers/wire-client.js'

const MODEL: ModelConfig = { cell: 'gru', inputSize: 3, hiddenSize: 48, outputSize: 1, seed: 1 }
const TRAINER: TrainerOptions = { k1: 8, loss: 'mse', optimizer: { type: 'adam', lr: 1e-3 } }

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function start(options: Partial<ServeOptions>): Promise<RxrnnServer> {
  const server = await serve({ model: MODEL, trainer: TRAINER, ...options })
  cleanups.push(() => server.close())
  return server
}

/** Memory the process holds in JS objects and buffers, after a full GC. */
function memory(): number {
  heapAfterGc()
  const m = process.memoryUsage()
  return m.heapUsed + m.arrayBuffers
}

/** `n` raw WebSocket subscribers to predictions, updates and hidden states that never read. */
async function stalledSubscribers(server: RxrnnServer, n: number): Promise<Socket[]> {
  const sockets: Socket[] = []
  for (let i = 0; i < n; i++) {
    const socket = await rawWebSocket(server.port)
    socket.write(maskedFrame(pack({ type: 'subscribe', channels: ['predictions', 'updates', 'hidden'] })))
    socket.pause()
    socket.on('error', () => {})
    cleanups.push(() => socket.destroy())
    sockets.push(socket)
  }
  return sockets
}

/** Sends `n` ticks in batches and waits for every answer. */
async function produce(producer: FrameClient, n: number, from: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    producer.send({ type: 'tick', key: `k${i % 20}`, x: [i % 7, 1, 2], y: 0.5, id: from + i })
    if (i % 500 === 499)
      await producer.waitFor((f) => f.id === from + i, Math.max(0, producer.frames.length - 600))
  }
  await producer.waitFor((f) => f.id === from + n - 1, Math.max(0, producer.frames.length - 600))
}

describe('slow readers', () => {
  it('twenty stalled subscribers each cost about their byte budget, not more; producers get every answer', async () => {
    const budget = 512 << 10
    const server = await start({ maxBufferedBytes: budget, slowReaderGraceMs: 60_000 })
    const producer = await FrameClient.open(server.url)
    cleanups.push(() => producer.close())
    await produce(producer, 2000, 0)
    const before = memory()
    await stalledSubscribers(server, 20)
    await produce(producer, 12_000, 100_000)
    const perSubscriber = (memory() - before) / 20
    const m = server.metrics()
    console.info(
      `stalled subscribers: ${mb(perSubscriber)} each with a ${mb(budget)} budget; ${m.dropped} frames dropped`,
    )
    expect(m.dropped).toBeGreaterThan(0)
    // Looser than the benchmark's goal (8 MiB each at the default 4 MiB budget): twice the budget.
    expect(perSubscriber).toBeLessThan(2 * budget + (256 << 10))
  })

  it('the global budget bounds all connections together', async () => {
    const server = await start({
      maxBufferedBytes: 4 << 20,
      maxBufferedTotal: 2 << 20,
      slowReaderGraceMs: 60_000,
    })
    const producer = await FrameClient.open(server.url)
    cleanups.push(() => producer.close())
    await produce(producer, 1000, 0)
    const before = memory()
    await stalledSubscribers(server, 20)
    await produce(producer, 8000, 100_000)
    const growth = memory() - before
    console.info(`20 stalled subscribers under a 2 MiB global budget: ${mb(growth)} in all`)
    expect(server.metrics().dropped).toBeGreaterThan(0)
    expect(growth).toBeLessThan(8 << 20)
  })

  it('a subscriber over its budget longer than the grace period is closed with 1013, counted, and its memory freed', async () => {
    const server = await start({ maxBufferedBytes: 64 << 10, slowReaderGraceMs: 200 })
    const producer = await FrameClient.open(server.url)
    cleanups.push(() => producer.close())
    const [slow] = await stalledSubscribers(server, 1)
    await produce(producer, 3000, 0)
    // Ticks keep coming while the grace period runs out.
    const closing = once(slow!, 'close')
    let id = 10_000
    while (server.metrics().slowClosed === 0) await produce(producer, 200, (id += 200))
    const chunks: Buffer[] = []
    slow!.on('data', (chunk: Buffer) => chunks.push(chunk))
    slow!.resume()
    await closing
    // The last frame it got is a close frame (opcode 8) with code 1013.
    const tail = Buffer.concat(chunks).subarray(-64)
    const at = tail.lastIndexOf(0x88)
    expect(at).toBeGreaterThanOrEqual(0)
    expect(tail.readUInt16BE(at + 2)).toBe(1013)
    expect(server.metrics().slowClosed).toBe(1)
    const text = await server.prometheus.text()
    expect(text).toMatch(/rxrnn_slow_subscribers_closed_total 1/)
    expect(server.metrics().subscribers).toBe(0)
  })

  it('a broadcast frame is encoded once per encoding, whatever the number of subscribers', () => {
    const shared = new SharedFrame({ type: 'hidden', key: 'k', h: [0.5, -0.25] })
    expect(shared.bytes('msgpack')).toBe(shared.bytes('msgpack'))
    expect(shared.bytes('json')).toBe(shared.bytes('json'))
    expect(shared.bytes('json').toString()).toBe('{"type":"hidden","key":"k","h":[0.5,-0.25]}')
  })
})
