import { describe, expect, it } from 'vitest'
import { createModel, KeyedTrainer, OnlineTrainer } from '../../../../src/index.js'
import {
  decodePartitionCheckpoint,
  encodePartitionCheckpoint,
} from '../../../../streams/server/nats/partition-checkpoint.js'
import { PartitionProcessor } from '../../../../streams/server/nats/partition-processor.js'
import { decodeFrame, encodeFrame } from '../../../../streams/transport/codec.js'
import { partitionOf } from '../../../../streams/transport/partition.js'
import { tickFeed } from './nats-test-kit.js'

const P = 4
const processor = (partition: number) =>
  new PartitionProcessor(
    partition,
    P,
    new KeyedTrainer(
      new OnlineTrainer(createModel({ cell: 'gru', inputSize: 2, hiddenSize: 6, outputSize: 1, seed: 5 }), {
        k1: 3,
        loss: 'mse',
        optimizer: { type: 'adam', lr: 0.01 },
      }),
      { staggerUpdates: true },
    ),
    0,
  )

const decode = (frame: Uint8Array | string) => {
  const bytes = typeof frame === 'string' ? new TextEncoder().encode(frame) : frame
  const decoded = decodeFrame(bytes, typeof frame !== 'string')
  if (!decoded.ok) throw new Error('undecodable')
  return decoded.value as Record<string, unknown>
}

/** Applies each tick as its own msgpack message, at sequences first, first + 1, … */
function feed(
  p: PartitionProcessor,
  ticks: readonly object[],
  first: number,
  sink: (f: Uint8Array | string) => void,
) {
  for (let i = 0; i < ticks.length; i++) p.apply(first + i, encodeFrame(ticks[i]!, 'msgpack'), sink)
}

describe('PartitionProcessor', () => {
  const ticks = tickFeed(400, 9).filter((t) => partitionOf(t.key, P) === 1)

  it('predicts the same, bit for bit, whatever the batching and the encoding', () => {
    const one = processor(1)
    const single: unknown[] = []
    feed(one, ticks, 1, (f) => single.push(decode(f).y))
    const other = processor(1)
    const batched: unknown[] = []
    for (let i = 0; i < ticks.length; i += 7) {
      other.apply(100 + i, encodeFrame(ticks.slice(i, i + 7), 'json') as unknown as Uint8Array, (f) =>
        batched.push(decode(f).y),
      )
    }
    expect(batched).toEqual(single)
    expect(one.counters.ticks).toBe(ticks.length)
    expect(one.counters.updates).toBeGreaterThan(0)
  })

  it('answers in the message encoding, with partition and seq', () => {
    const p = processor(1)
    const frames: (Uint8Array | string)[] = []
    p.apply(7, new TextEncoder().encode(JSON.stringify({ ...ticks[0], id: 3 })), (f) => frames.push(f))
    expect(typeof frames[0]).toBe('string')
    expect(JSON.parse(frames[0] as string)).toMatchObject({
      type: 'prediction',
      key: ticks[0]!.key,
      id: 3,
      partition: 1,
      seq: 7,
    })
  })

  it('refuses bad ticks and keys of other partitions with an error frame, changing nothing', () => {
    const p = processor(1)
    const before = p.keyed.snapshot()
    const out: Record<string, unknown>[] = []
    const sink = (f: Uint8Array | string) => out.push(decode(f))
    const foreign = tickFeed(40, 9).find((t) => partitionOf(t.key, P) !== 1)!
    p.apply(1, encodeFrame(foreign, 'msgpack'), sink)
    p.apply(2, encodeFrame({ type: 'tick', key: ticks[0]!.key, x: [1], id: 9 }, 'msgpack'), sink)
    p.apply(3, new Uint8Array([0xc1]), sink)
    p.apply(4, encodeFrame({ type: 'subscribe', channels: ['metrics'] }, 'msgpack'), sink)
    expect(out.map((f) => [f.type, f.code, f.partition, f.seq])).toEqual([
      ['error', 'bad_key', 1, 1],
      ['error', 'bad_input', 1, 2],
      ['error', 'bad_frame', 1, 3],
      ['error', 'unknown_type', 1, 4],
    ])
    expect(out[0]!.message).toMatch(/belongs to partition \d of 4, not 1/)
    expect(p.keyed.snapshot()).toEqual(before)
    expect(p.counters.rejected).toBe(4)
  })

  it('checkpoints round-trip, and a checkpoint of another partition count is refused', () => {
    const p = processor(1)
    feed(p, ticks.slice(0, 20), 1, () => {})
    const bytes = encodePartitionCheckpoint({
      partition: 1,
      partitions: P,
      seq: p.seq,
      weights: 'partition',
      keyed: p.keyed.snapshot(),
    })
    const back = decodePartitionCheckpoint(bytes, 1, P, 'x.ckpt')
    expect(back.seq).toBe(20)
    const resumed = new PartitionProcessor(1, P, KeyedTrainer.fromSnapshot(back.keyed), back.seq)
    const a: unknown[] = []
    const b: unknown[] = []
    feed(p, ticks.slice(20), 21, (f) => a.push(decode(f).y))
    feed(resumed, ticks.slice(20), 21, (f) => b.push(decode(f).y))
    expect(b).toEqual(a)
    expect(() => decodePartitionCheckpoint(bytes, 1, 8, 'x.ckpt')).toThrow(
      /holds partition 1 of 4, but this worker reads partition 1 of 8/,
    )
  })
})
