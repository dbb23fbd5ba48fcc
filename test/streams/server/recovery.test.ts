/**
 * Issue 8, crash recovery: `rxrnn serve --checkpoint FILE --checkpoint-every 200ms` as a real child
 * process (the TypeScript CLI run with tsx), fed by a producer over WebSocket on 127.0.0.1, killed
 * with SIGKILL mid-stream and started again; and stopped with SIGTERM. The checkpoint file is read
 * and restored with KeyedTrainer.fromSnapshot in the test, and compared with what the server answers.
 */
import { createHash } from 'node:crypto'
import { closeSync, fstatSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { createModel, KeyedTrainer } from '../../../src/index.js'
import { type CliProcess, startServeProcess, stopProcess } from '../../helpers/cli-process.js'
import { FrameClient, waitUntil } from '../../helpers/wire-client.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

function tempCheckpoint(): string {
  const dir = mkdtempSync(join(tmpdir(), 'rxrnn-recovery-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  return join(dir, 'model.ckpt')
}

async function serveProcess(args: string[]): Promise<CliProcess> {
  const p = await startServeProcess(args)
  cleanups.push(() => stopProcess(p))
  return p
}

async function open(url: string): Promise<FrameClient> {
  const c = await FrameClient.open(url)
  cleanups.push(() => c.close())
  return c
}

const MODEL = { cell: 'gru' as const, inputSize: 3, hiddenSize: 8, outputSize: 1, seed: 5 }
const serveArgs = (path: string, every: string) => [
  '--port',
  '0',
  '--input-size',
  String(MODEL.inputSize),
  '--output-size',
  String(MODEL.outputSize),
  '--hidden-size',
  String(MODEL.hiddenSize),
  '--seed',
  String(MODEL.seed),
  '--k1',
  '4',
  '--lr',
  '0.01',
  '--checkpoint',
  path,
  '--checkpoint-every',
  every,
]
const KEYS = ['a', 'b', 'c']
const tickX = (n: number, key: number): number[] => [Math.sin(n / 7 + key), Math.cos(n / 5), key / 3]
const tickY = (n: number, key: number): number => Math.sin((n + 1) / 7 + key)

/** The checkpoint as it is now, read through one descriptor (one file even if a rename lands meanwhile). */
function readWhole(path: string): Buffer | null {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch {
    return null
  }
  try {
    fstatSync(fd)
    return readFileSync(fd)
  } finally {
    closeSync(fd)
  }
}

describe('crash recovery through the CLI', () => {
  it('SIGKILL mid-stream: the restarted server resumes exactly from the last checkpoint, which never tears', async () => {
    const path = tempCheckpoint()
    const args = serveArgs(path, '200ms')
    const first = await serveProcess(args)
    const producer = await open(first.url)

    // Reads the checkpoint over and over while the stream runs: every read must restore.
    const reads = { ok: 0, failures: [] as string[], versions: 0, last: '' }
    let reading = true
    const reader = (async () => {
      while (reading) {
        const bytes = readWhole(path)
        if (bytes) {
          try {
            const restored = KeyedTrainer.fromSnapshot(bytes)
            reads.ok++
            const version = createHash('sha256').update(bytes).digest('hex')
            // A new checkpoint with something learned in it.
            if (version !== reads.last && restored.trainer.optimizer.t > 0) reads.versions++
            reads.last = version
          } catch (error) {
            reads.failures.push(String(error))
          }
        }
        await new Promise((resolve) => setImmediate(resolve))
      }
    })()

    // Streams in bursts of 30 ticks (10 per key) until three checkpoints with learning in them are on
    // disk and a few more bursts went by, then kills the server with a burst still in flight.
    const acknowledged = new Map(KEYS.map((k) => [k, 0]))
    let n = 0
    let id = 0
    let burstsAfter = 0
    for (;;) {
      const from = producer.frames.length
      for (let s = 0; s < 10; s++, n++)
        KEYS.forEach((key, k) => {
          producer.send({ type: 'tick', key, x: tickX(n, k), y: tickY(n, k), id: ++id })
        })
      if (reads.versions >= 3 && ++burstsAfter > 3) {
        first.child.kill('SIGKILL')
        break
      }
      const last = id
      await producer.waitFor((f) => f.id === last, from)
      for (const f of producer.frames.slice(from))
        if (f.type === 'prediction') acknowledged.set(f.key as string, acknowledged.get(f.key as string)! + 1)
      expect(n).toBeLessThan(200_000)
    }
    const exit = await first.exited
    expect(exit.signal).toBe('SIGKILL')
    reading = false
    await reader
    expect(reads.failures).toEqual([])
    expect(reads.ok).toBeGreaterThan(10)

    // The last checkpoint on disk: what the restarted server must be.
    const saved = KeyedTrainer.fromSnapshot(readFileSync(path))
    expect(saved.size).toBe(KEYS.length)
    expect(saved.trainer.optimizer.t).toBeGreaterThan(0)
    for (const key of KEYS) {
      // Ticks after the last checkpoint are lost with the process, never more than that.
      expect(saved.entry(key)!.sequence.observed).toBeLessThanOrEqual(acknowledged.get(key)!)
    }
    const leftovers = readdirSync(join(path, '..')).filter((f) => f !== 'model.ckpt')
    console.info(
      `SIGKILL after ${id} ticks sent, ${[...acknowledged.values()].reduce((a, b) => a + b)} acknowledged; ` +
        `${reads.ok} reads of the checkpoint, ${reads.versions} versions seen, none torn; ` +
        `last checkpoint: ${saved.trainer.optimizer.t} updates, observed ${KEYS.map((k) => saved.entry(k)!.sequence.observed).join('/')}; ` +
        `temporary files left: ${leftovers.length}`,
    )

    const second = await serveProcess(args)
    const c = await open(second.url)
    c.send({ type: 'hello', id: 1 })
    const welcome = c.frames[await c.waitFor((f) => f.type === 'welcome')]!
    expect(welcome.model).toMatchObject({ cell: 'gru', inputSize: 3, hiddenSize: 8, outputSize: 1 })
    c.send({ type: 'subscribe', channels: ['metrics'], id: 2 })
    const metrics = c.frames[await c.waitFor((f) => f.type === 'metrics')]!
    expect(metrics.keys).toBe(KEYS.length)

    // A fresh key from a zero state: the checkpointed weights' prediction, not a fresh model's.
    const probe = [0.3, -0.2, 0.5]
    c.send({ type: 'tick', key: 'probe', x: probe, id: 3 })
    const answer = c.frames[await c.waitFor((f) => f.id === 3 && f.type === 'prediction')]!.y as number[]
    const model = saved.trainer.model
    const fromZero = Array.from(model.step(probe, model.initialState()))
    expect(answer).toEqual(fromZero)
    expect(answer).toEqual(Array.from(saved.observe('probe', probe).prediction))
    const fresh = createModel(MODEL)
    expect(answer).not.toEqual(Array.from(fresh.step(probe, fresh.initialState())))

    // The keys it had resume with their hidden state and window: the same next ticks, the same answers.
    let next = 4
    for (let round = 0; round < 6; round++) {
      for (const [k, key] of KEYS.entries()) {
        const x = tickX(1000 + round, k)
        const y = tickY(1000 + round, k)
        c.send({ type: 'tick', key, x, y, id: next })
        const got = c.frames[await c.waitFor((f) => f.id === next && f.type === 'prediction')]!.y
        expect(got, `${key}, round ${round}`).toEqual(Array.from(saved.observe(key, x, y).prediction))
        next++
      }
    }

    // Its final checkpoint is the saved one carried on by the same ticks, bit for bit.
    second.child.kill('SIGTERM')
    expect(await second.exited).toEqual({ code: 0, signal: null })
    const final = KeyedTrainer.fromSnapshot(readFileSync(path))
    expect(final.trainer.optimizer.t).toBe(saved.trainer.optimizer.t)
    expect(final.trainer.optimizer.t).toBeGreaterThan(0)
    expect(final.trainer.model.params.values).toEqual(saved.trainer.model.params.values)
    expect([...final.keys()].sort()).toEqual([...saved.keys()].sort())
    for (const key of saved.keys()) {
      expect(final.entry(key)!.sequence.state.data).toEqual(saved.entry(key)!.sequence.state.data)
    }
  })

  it('SIGTERM writes a final checkpoint holding every acknowledged tick and exits 0', async () => {
    const path = tempCheckpoint()
    // No periodic checkpoint within this test: the file can only come from the final write.
    const server = await serveProcess(serveArgs(path, '10m'))
    const watcher = await open(server.url)
    watcher.send({ type: 'subscribe', channels: ['updates'], id: 1 })
    await watcher.waitFor((f) => f.type === 'subscribed')
    const producer = await open(server.url)
    const perKey = 250
    let id = 0
    for (let n = 0; n < perKey; n += 25) {
      const from = producer.frames.length
      for (let s = n; s < n + 25; s++)
        KEYS.forEach((key, k) => {
          producer.send({ type: 'tick', key, x: tickX(s, k), y: tickY(s, k), id: ++id })
        })
      const last = id
      await producer.waitFor((f) => f.id === last, from)
    }
    const predictions = producer.frames.filter((f) => f.type === 'prediction')
    expect(predictions).toHaveLength(perKey * KEYS.length)
    // Every update the server made is reported to the watcher before its prediction goes out.
    // The server staggers new keys' windows: the k-th key created starts k mod k1 steps in.
    const expectedUpdates = KEYS.reduce((sum, _, k) => sum + Math.floor((perKey + (k % 4)) / 4), 0)
    await waitUntil(
      () => watcher.frames.filter((f) => f.type === 'update').length === expectedUpdates,
      'every update is reported',
    )
    const updates = watcher.frames.filter((f) => f.type === 'update')
    const applied = updates.filter((u) => u.skipped !== true).length
    expect(readWhole(path)).toBeNull()

    server.child.kill('SIGTERM')
    expect(await server.exited).toEqual({ code: 0, signal: null })
    await waitUntil(() => producer.closed, 'the producer is closed')
    expect(producer.closeCode).toBe(1001)

    const final = KeyedTrainer.fromSnapshot(readFileSync(path))
    expect(final.trainer.optimizer.t).toBe(applied)
    expect(final.trainer.optimizer.t).toBe(Math.max(...updates.map((u) => u.update as number)))
    expect(final.size).toBe(KEYS.length)
    for (const key of KEYS) expect(final.entry(key)!.sequence.observed).toBe(perKey)
    console.info(
      `SIGTERM: ${predictions.length} ticks acknowledged, ${updates.length} updates reported (${applied} applied); ` +
        `final checkpoint: optimizer step ${final.trainer.optimizer.t}, ${perKey} ticks observed per key`,
    )
  })
})
