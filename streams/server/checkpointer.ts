/**
 * Checkpoints a server can trust: resumed only when their weights and optimizer state are
 * finite and their model and trainer agree with the settings the user gave; written every
 * `everyMs` and at shutdown, atomically; a failed final save is an error that says where the
 * last good checkpoint is.
 */
import { statSync } from 'node:fs'
import type { OnlineTrainer } from '../../src/index.js'
import { RxrnnError } from '../../src/index.js'
import { writeFileAtomic } from './checkpoint.js'

/**
 * Model and trainer settings the user gave explicitly (flags or config file). On resume each
 * must equal the checkpoint's: a contradiction is an error naming both values.
 */
export interface ExplicitSettings {
  model?: Partial<Record<'cell' | 'inputSize' | 'hiddenSize' | 'numLayers' | 'outputSize' | 'dtype', unknown>>
  trainer?: Partial<Record<'algorithm' | 'k1' | 'k2' | 'loss' | 'clipNorm' | 'optimizer' | 'lr', unknown>>
}

/** The flag (and config field) that sets each setting, for messages. */
const FLAG: Record<string, string> = {
  cell: '--cell',
  inputSize: '--input-size',
  hiddenSize: '--hidden-size',
  numLayers: '--layers',
  outputSize: '--output-size',
  dtype: '--dtype',
  algorithm: '--algorithm',
  k1: '--k1',
  k2: '--k2',
  loss: '--loss',
  clipNorm: '--clip-norm',
  optimizer: '--optimizer',
  lr: '--lr',
}

/**
 * Refuses a resumed trainer whose weights or optimizer state hold NaN or ±Infinity (a valid
 * CRC proves the bytes are as written, not that the learning was sound), and one that
 * contradicts `explicit`. Throws RxrnnError listing every problem.
 */
export function checkResumed(trainer: OnlineTrainer, path: string, explicit: ExplicitSettings = {}): void {
  const problems: string[] = []
  const weights = trainer.model.params.values
  const bad = firstNonFinite(weights)
  if (bad >= 0) problems.push(`weight ${bad} of ${weights.length} is ${weights[bad]}`)
  for (const [name, buffer] of Object.entries(trainer.optimizer.state)) {
    const i = firstNonFinite(buffer)
    if (i >= 0) problems.push(`optimizer state ${name}[${i}] is ${buffer[i]}`)
  }
  if (problems.length > 0) {
    throw new RxrnnError(
      'bad_snapshot',
      `Checkpoint ${path} holds non-finite numbers (${problems.join('; ')}); move it away to start fresh, or resume from an older copy`,
    )
  }
  const c = trainer.model.config as unknown as Record<string, unknown>
  const t = trainer.options as unknown as Record<string, unknown>
  const saved: Record<string, unknown> = {
    ...Object.fromEntries(Object.keys(explicit.model ?? {}).map((k) => [k, c[k]])),
    algorithm: t.algorithm,
    k1: t.k1,
    k2: t.k2,
    loss: t.loss,
    clipNorm: t.clipNorm ?? 0,
    optimizer: trainer.optimizer.config.type,
    // The base rate: a schedule or a drift raise changes the current one at every update.
    lr: trainer.learningRate.base,
  }
  const given = { ...explicit.model, ...explicit.trainer } as Record<string, unknown>
  for (const [name, value] of Object.entries(given)) {
    if (value === undefined || !(name in saved)) continue
    const held = saved[name] ?? 0
    const wanted = value ?? 0
    if (held !== wanted) {
      problems.push(
        `${FLAG[name] ?? name} is ${JSON.stringify(wanted)} but the checkpoint's ${name} is ${JSON.stringify(held)}`,
      )
    }
  }
  if (problems.length > 0) {
    throw new RxrnnError(
      'bad_config',
      `Checkpoint ${path} was written for other model or trainer settings: ${problems.join('; ')}. Drop the flags that contradict it (the checkpoint decides them), or move it away to start fresh`,
    )
  }
}

function firstNonFinite(values: ArrayLike<number>): number {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i]!)) return i
  return -1
}

/**
 * Writes checkpoints of `snapshot()` to `path`: `save()` now (failures are logged, the server
 * goes on), every `everyMs` once started, and `final()` at shutdown, which rejects when it fails.
 *
 * @example
 * const checkpointer = new Checkpointer('model.ckpt', 60_000, () => keyed.snapshot(), console.error)
 * checkpointer.start()
 * await checkpointer.final() // throws: 'the final checkpoint ... failed; the last good one is ...'
 */
export class Checkpointer {
  /** When the last good checkpoint was written (or found at start), or null. */
  lastGood: Date | null
  private writing: Promise<boolean> = Promise.resolve(true)
  private timer: NodeJS.Timeout | undefined

  constructor(
    readonly path: string,
    readonly everyMs: number,
    private readonly snapshot: () => Uint8Array,
    private readonly log: (line: string) => void,
  ) {
    let found: Date | null = null
    try {
      found = statSync(path).mtime
    } catch {
      // none yet
    }
    this.lastGood = found
  }

  start(): void {
    this.timer = setInterval(() => void this.save(), this.everyMs)
    this.timer.unref()
  }

  /** Writes a checkpoint now; resolves true once it is safely on disk, false when it failed (logged). */
  save(): Promise<boolean> {
    // The snapshot is taken now, synchronously, so it is one consistent state; writes queue up.
    const bytes = this.snapshot()
    this.writing = this.writing.then(() =>
      writeFileAtomic(this.path, bytes).then(
        () => {
          this.lastGood = new Date()
          return true
        },
        (error: unknown) => {
          this.log(`checkpoint to ${this.path} failed: ${error instanceof Error ? error.message : error}`)
          return false
        },
      ),
    )
    return this.writing
  }

  /** Stops the timer and writes the final checkpoint; rejects (naming the last good one) when it fails. */
  async final(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    if (await this.save()) return
    const last =
      this.lastGood === null
        ? 'there is no good checkpoint: this run learned nothing that was saved'
        : `the last good checkpoint is ${this.path}, written ${this.lastGood.toISOString()}`
    throw new RxrnnError(
      'internal',
      `The final checkpoint to ${this.path} failed (see the line above); ${last}`,
    )
  }
}
