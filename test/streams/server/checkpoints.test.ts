/**
 * Checkpoints you can trust (issue 15): startup removes only its own temporaries, a failed save
 * leaves none, a failed final save is an error naming the last good checkpoint, server settings
 * come from the flags on resume, and contradicting or non-finite checkpoints are refused.
 */
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { ModelConfig, TrainerOptions } from '../../../src/index.js'
import { createModel, KeyedTrainer, OnlineTrainer } from '../../../src/index.js'
import { removeStaleTemporaries } from '../../../streams/server/checkpoint.js'
import { type RxrnnServer, type ServeOptions, serve } from '../../../streams/server/server.js'
import { startServeProcess } from '../../helpers/cli-process.js'
import { FrameClient } from '../../helpers/wire-client.js'

const MODEL: ModelConfig = { cell: 'gru', inputSize: 2, hiddenSize: 4, outputSize: 1, seed: 1 }
const TRAINER: TrainerOptions = { k1: 2, loss: 'mse', optimizer: { type: 'adam', lr: 1e-2 } }

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function folder(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'rxrnn-ckpt-'))
  cleanups.push(() => rm(dir, { recursive: true, force: true }))
  return dir
}

async function start(options: Partial<ServeOptions>): Promise<RxrnnServer> {
  const server = await serve({ model: MODEL, trainer: TRAINER, ...options })
  cleanups.push(() => server.close().catch(() => {}))
  return server
}

/** Sends `n` ticks of `key` with targets and waits for their answers. */
async function feed(server: RxrnnServer, key: string, n: number): Promise<void> {
  const client = await FrameClient.open(server.url)
  for (let i = 0; i < n; i++) client.send({ type: 'tick', key, x: [i, 1], y: Math.sin(i), id: i })
  await client.waitFor((f) => f.type === 'prediction' && f.id === n - 1)
  await client.close()
}

describe('checkpoints', () => {
  it("startup removes only its own temporaries (<name>.<pid>.<ms>.tmp), never a user's .tmp files", async () => {
    const dir = await folder()
    const path = join(dir, 'model.ckpt')
    const theirs = ['notes.important.tmp', 'model.ckpt.notes.tmp', 'model.ckpt.1.tmp', 'other.ckpt.12.34.tmp']
    for (const name of [...theirs, 'model.ckpt.4242.1700000000000.tmp']) await writeFile(join(dir, name), 'x')
    expect(await removeStaleTemporaries(path)).toBe(1)
    expect((await readdir(dir)).sort()).toEqual([...theirs].sort())
  })

  it('a failed save leaves no temporary behind and the server goes on; a failed final save rejects, naming the last good checkpoint', async () => {
    const dir = await folder()
    const path = join(dir, 'model.ckpt')
    const logs: string[] = []
    const server = await start({ checkpoint: { path, everyMs: 3_600_000 }, log: (l) => logs.push(l) })
    await feed(server, 'a', 5)
    await server.checkpoint()
    expect(existsSync(path)).toBe(true)
    // The checkpoint's place becomes a folder: every rename onto it fails.
    await rm(path)
    await mkdir(path)
    await server.checkpoint()
    expect(logs.join('\n')).toMatch(/checkpoint to .*model\.ckpt failed/)
    expect((await readdir(dir)).filter((n) => n.endsWith('.tmp'))).toEqual([])
    await feed(server, 'a', 3)
    await expect(server.close()).rejects.toThrow(
      /final checkpoint to .*model\.ckpt failed.*last good checkpoint is .*model\.ckpt, written 20/,
    )
    expect((await readdir(dir)).filter((n) => n.endsWith('.tmp'))).toEqual([])
  })

  it('rxrnn serve exits non-zero when its final checkpoint fails, and says so', async () => {
    const dir = await folder()
    const path = join(dir, 'model.ckpt')
    const args = ['--input-size', '2', '--output-size', '1', '--port', '0', '--quiet', '--checkpoint', path]
    const child = await startServeProcess(args)
    cleanups.push(() => child.child.kill('SIGKILL'))
    await mkdir(path)
    child.child.kill('SIGTERM')
    const { code } = await child.exited
    expect(code).toBe(1)
    expect(child.stderr()).toMatch(/final checkpoint to .*model\.ckpt failed.*no good checkpoint/)
  })

  it('on resume, limits come from the options; the model from the checkpoint; a contradicting setting names both values', async () => {
    const dir = await folder()
    const path = join(dir, 'model.ckpt')
    const first = await start({ checkpoint: { path, everyMs: 3_600_000 }, maxKeys: 50, idleMs: 60_000 })
    await feed(first, 'a', 4)
    await first.close()
    const resumed = await start({
      model: { ...MODEL, hiddenSize: 99 },
      checkpoint: { path, everyMs: 3_600_000 },
      maxKeys: 7,
    })
    expect(resumed.keyed.maxKeys).toBe(7)
    expect(resumed.keyed.idleMs).toBe(Number.POSITIVE_INFINITY)
    expect(resumed.model.config.hiddenSize).toBe(4)
    expect(resumed.keyed.size).toBe(1)
    await resumed.close()
    await expect(
      serve({
        model: MODEL,
        trainer: TRAINER,
        checkpoint: { path, everyMs: 3_600_000 },
        explicit: { model: { hiddenSize: 99 }, trainer: { algorithm: 'rtrl', k1: 2, lr: 0.5 } },
      }),
    ).rejects.toThrow(
      /--hidden-size is 99 but the checkpoint's hiddenSize is 4[\s\S]*--algorithm is "rtrl" but the checkpoint's algorithm is "tbptt"[\s\S]*--lr is 0\.5 but the checkpoint's lr is 0\.01/,
    )
  })

  it('rxrnn serve: a flag that contradicts the checkpoint exits 2 naming both values; flags it leaves out are taken from it', async () => {
    const dir = await folder()
    const path = join(dir, 'model.ckpt')
    const base = ['--input-size', '2', '--output-size', '1', '--port', '0', '--quiet', '--checkpoint', path]
    const first = await startServeProcess([...base, '--hidden-size', '8'])
    first.child.kill('SIGTERM')
    expect((await first.exited).code).toBe(0)
    await expect(startServeProcess([...base, '--hidden-size', '16'])).rejects.toThrow(
      /exited \(2\)[\s\S]*--hidden-size is 16 but the checkpoint's hiddenSize is 8/,
    )
    const resumed = await startServeProcess(base)
    resumed.child.kill('SIGTERM')
    expect((await resumed.exited).code).toBe(0)
  })

  it('refuses a checkpoint whose weights or optimizer state are not finite, though its CRC is valid', async () => {
    const dir = await folder()
    for (const spoil of ['weights', 'optimizer'] as const) {
      const path = join(dir, `${spoil}.ckpt`)
      const keyed = new KeyedTrainer(new OnlineTrainer(createModel(MODEL), TRAINER))
      for (let i = 0; i < 4; i++) keyed.observe('a', [i, 1], [0.5])
      if (spoil === 'weights') keyed.trainer.model.params.values[3] = Number.NaN
      else Object.values(keyed.trainer.optimizer.state)[0]![1] = Number.POSITIVE_INFINITY
      await writeFile(path, keyed.snapshot())
      await expect(start({ checkpoint: { path, everyMs: 3_600_000 } })).rejects.toThrow(
        spoil === 'weights'
          ? /non-finite numbers[\s\S]*weight 3 of \d+ is NaN/
          : /optimizer state \w+\[1\] is Infinity/,
      )
    }
  })
})
