/**
 * The attacks of issue 15 on the frame side, against a real `serve`: megabyte bigints, frames of
 * many tiny containers, key floods, oversized subscriptions, and a model too big for memory.
 */
import { pack } from 'msgpackr'
import { afterEach, describe, expect, it } from 'vitest'
import type { ModelConfig, TrainerOptions } from '../../../src/index.js'
import { type RxrnnServer, type ServeOptions, serve } from '../../../streams/server/server.js'
import { FrameClient } from '../../helpers/wire-client.js'

const MODEL: ModelConfig = { cell: 'gru', inputSize: 2, hiddenSize: 4, outputSize: 1, seed: 1 }
const TRAINER: TrainerOptions = { k1: 4, loss: 'mse', optimizer: { type: 'adam', lr: 1e-2 } }

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function start(options: Partial<ServeOptions> = {}): Promise<RxrnnServer> {
  const server = await serve({ model: MODEL, trainer: TRAINER, ...options })
  cleanups.push(() => server.close())
  return server
}

async function open(server: RxrnnServer): Promise<FrameClient> {
  const client = await FrameClient.open(server.url)
  cleanups.push(() => client.close())
  return client
}

const str = (text: string) => Buffer.from([0xa0 | text.length, ...Buffer.from(text)])
/** A msgpack bigint (ext 0x42) of `bytes` bytes. */
function wideInteger(bytes: number): Buffer {
  const ext = Buffer.alloc(6 + bytes, 0x7f)
  ext[0] = 0xc9
  ext.writeUInt32BE(bytes, 1)
  ext[5] = 0x42
  return ext
}

describe('bounded work per frame', () => {
  it('a 1 MB bigint as id, key, x[i] or y gets a bad_frame error and changes nothing; the next tick is answered', async () => {
    const server = await start({ maxPayload: 2 << 20 })
    const client = await open(server)
    const weights = Float64Array.from(server.model.params.values)
    const big = wideInteger(1 << 20)
    const frames = [
      Buffer.concat([Buffer.from([0x83]), str('type'), str('tick'), str('key'), str('k'), str('id'), big]),
      Buffer.concat([Buffer.from([0x83]), str('type'), str('tick'), str('x'), pack([1, 2]), str('key'), big]),
      Buffer.concat([
        Buffer.from([0x83]),
        str('type'),
        str('tick'),
        str('key'),
        str('k'),
        str('x'),
        Buffer.from([0x92, 0x01]),
        big,
      ]),
      Buffer.concat([
        Buffer.from([0x84]),
        str('type'),
        str('tick'),
        str('key'),
        str('k'),
        str('x'),
        pack([1, 2]),
        str('y'),
        big,
      ]),
    ]
    for (const frame of frames) client.sendRaw(frame, true)
    client.send({ type: 'tick', key: 'k', x: [1, 2], y: 0.5, id: 7 })
    const answer = await client.waitFor((f) => f.type === 'prediction' && f.id === 7)
    const errors = client.frames.slice(0, answer).filter((f) => f.type === 'error')
    expect(errors).toHaveLength(4)
    for (const e of errors) expect(e.message).toMatch(/integer wider than 64 bits/)
    expect(Float64Array.from(server.model.params.values)).toEqual(weights)
  })

  it('a frame of a million empty arrays is refused unread (payload_too_large), and the server goes on', async () => {
    const server = await start()
    const client = await open(server)
    const arrays = Buffer.concat([Buffer.from([0xdd, 0, 0x0f, 0xff, 0x00]), Buffer.alloc(0x0fff00, 0x90)])
    client.sendRaw(arrays, true)
    client.sendRaw(`[${'[],'.repeat(300_000)}[]]`, false)
    await client.waitFor((f) => f.type === 'error' && f.code === 'payload_too_large')
    await client.waitFor(
      (f) => f.type === 'error' && f.code === 'payload_too_large',
      client.frames.length - 1,
    )
    await client.fence(1)
  })
})

describe('limits on keys', () => {
  it('a connection that invents keys too fast gets rate_limited error frames, counted; known keys keep being answered', async () => {
    const server = await start({ maxNewKeysPerSecond: 20 })
    const flood = await open(server)
    const producer = await open(server)
    producer.send({ type: 'tick', key: 'real', x: [1, 2], y: 1, id: 1 })
    await producer.waitFor((f) => f.type === 'prediction')
    for (let i = 0; i < 200; i++) flood.send({ type: 'tick', key: `junk-${i}`, x: [1, 2], id: i })
    await flood.fence(1000)
    const limited = flood.frames.filter((f) => f.type === 'error' && f.code === 'rate_limited')
    expect(limited.length).toBeGreaterThanOrEqual(150)
    expect(limited[0]!.message).toMatch(/--max-new-keys-per-second/)
    expect(server.metrics().rateLimited).toBe(limited.length)
    expect(server.keyed.size).toBeLessThanOrEqual(1 + 200 - limited.length)
    // Ticks of keys the flooder already has are not limited.
    flood.send({ type: 'tick', key: 'junk-0', x: [1, 2], id: 5000 })
    await flood.waitFor((f) => f.type === 'prediction' && f.id === 5000)
    producer.send({ type: 'tick', key: 'real', x: [1, 2], y: 1, id: 2 })
    await producer.waitFor((f) => f.type === 'prediction' && f.id === 2)
    const text = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text()
    expect(text).toMatch(new RegExp(`rxrnn_rejected_frames_total\\{code="rate_limited"\\} ${limited.length}`))
  })

  it('one subscribe may name at most --max-subscribe-keys keys', async () => {
    const server = await start({ maxSubscribeKeys: 10 })
    const client = await open(server)
    client.send({
      type: 'subscribe',
      channels: ['predictions'],
      keys: Array.from({ length: 11 }, (_, i) => `k${i}`),
      id: 1,
    })
    const i = await client.waitFor((f) => f.type === 'error' && f.id === 1)
    expect(client.frames[i]!.message).toMatch(/at most 10/)
    client.send({ type: 'subscribe', channels: ['predictions'], keys: ['a', 'b'], id: 2 })
    await client.waitFor((f) => f.type === 'subscribed' && f.id === 2)
  })

  it('refuses to start when --max-keys keys of this model may not fit in --max-memory, naming the figures', async () => {
    const big = { cell: 'lstm', inputSize: 4, hiddenSize: 1024, outputSize: 1 } as const
    await expect(
      serve({ model: big, trainer: { ...TRAINER, k1: 256 }, maxKeys: 100_000, maxMemory: 8 * 2 ** 30 }),
    ).rejects.toThrow(/--max-keys 100000 × [\d.]+ MiB per key .* = [\d.]+ GiB, over --max-memory 8\.0 GiB/)
    // The same model with few keys starts.
    const server = await start({
      model: big,
      trainer: { ...TRAINER, k1: 256 },
      maxKeys: 10,
      maxMemory: 8 * 2 ** 30,
    })
    expect(server.keyed.maxKeys).toBe(10)
  })
})
