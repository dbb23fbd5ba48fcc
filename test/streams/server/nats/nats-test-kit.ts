/**
 * Shared by the NATS tests: a reproducible tick feed, publishing it into partition streams (one
 * tick per message or batched), and collecting every prediction frame a deployment publishes.
 */
import type { NatsConnection } from '@nats-io/transport-node'
import { decodeFrame, encodeFrame } from '../../../../streams/transport/codec.js'
import { partitionOf } from '../../../../streams/transport/partition.js'

export interface TestTick {
  type: 'tick'
  key: string
  x: number[]
  y: number[]
  id: number
}

/** `count` ticks over `keys` keys: a noisy sine per key, the target the next value. */
export function tickFeed(count: number, keys: number): TestTick[] {
  const ticks: TestTick[] = []
  for (let i = 0; i < count; i++) {
    const k = i % keys
    const t = Math.floor(i / keys)
    const phase = k * 0.7
    ticks.push({
      type: 'tick',
      key: `sensor-${k}`,
      x: [Math.sin(t * 0.3 + phase), Math.cos(t * 0.11 + phase)],
      y: [Math.sin((t + 1) * 0.3 + phase)],
      id: i,
    })
  }
  return ticks
}

/**
 * Publishes ticks to `<prefix>.ticks.<partitionOf(key)>` through JetStream (acked), in order per
 * partition, `batch` ticks per message (1: a tick frame per message; more: an array of frames).
 */
export async function publishTicks(
  nc: NatsConnection,
  prefix: string,
  partitions: number,
  ticks: readonly TestTick[],
  batch: number,
  encoding: 'msgpack' | 'json' = 'msgpack',
): Promise<void> {
  const { jetstream } = await import('@nats-io/jetstream')
  const js = jetstream(nc)
  const pending = new Map<number, TestTick[]>()
  const acks: Promise<unknown>[] = []
  const flush = (p: number): void => {
    const frames = pending.get(p)
    if (!frames || frames.length === 0) return
    const body = batch === 1 ? frames[0]! : frames
    acks.push(js.publish(`${prefix}.ticks.${p}`, encodeFrame(body, encoding)))
    pending.set(p, [])
  }
  for (const tick of ticks) {
    const p = partitionOf(tick.key, partitions)
    const frames = pending.get(p) ?? []
    frames.push(tick)
    pending.set(p, frames)
    if (frames.length >= batch) flush(p)
  }
  for (const p of pending.keys()) flush(p)
  await Promise.all(acks)
}

export interface CollectedPrediction {
  key: string
  id: number
  y: number[]
  partition: number
  seq: number
}

/** Subscribes to every partition's predictions and keeps them, keyed by tick id (replays add up). */
export function collectPredictions(nc: NatsConnection, prefix: string) {
  const byId = new Map<number, CollectedPrediction[]>()
  const errors: unknown[] = []
  const sub = nc.subscribe(`${prefix}.predictions.*`, {
    callback: (_error, msg) => {
      const decoded = decodeFrame(msg.data, msg.data[0] !== 0x7b)
      if (!decoded.ok) {
        errors.push(decoded.error)
        return
      }
      const frame = decoded.value as CollectedPrediction & { type: string }
      if (frame.type !== 'prediction') {
        errors.push(frame)
        return
      }
      const list = byId.get(frame.id) ?? []
      list.push(frame)
      byId.set(frame.id, list)
    },
  })
  return {
    byId,
    errors,
    /** Ticks answered at least once. */
    get answered(): number {
      return byId.size
    },
    stop: () => sub.unsubscribe(),
  }
}

/** Polls `condition` every 20 ms until it holds, or throws after `ms` with `what`. */
export async function waitFor(condition: () => boolean, ms: number, what: () => string): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what()}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
