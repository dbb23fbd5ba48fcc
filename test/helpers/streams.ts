import type { Observable } from 'rxjs'
import { config } from 'rxjs'
import { TestScheduler } from 'rxjs/testing'
import { expect, vi } from 'vitest'
import type { CellKind, Model, ModelConfig, TrainerOptions } from '../../src/index.js'
import { createModel, Rng } from '../../src/index.js'
import type { RejectedEvent } from '../../streams/index.js'
import { Monitor } from '../../streams/index.js'

/** A tiny float64 model: same config and seed, same weights. */
export function tinyModel(seed = 1, extra: Partial<ModelConfig> = {}): Model {
  return createModel({
    cell: 'gru' as CellKind,
    inputSize: 2,
    hiddenSize: 3,
    outputSize: 1,
    dtype: 'float64',
    seed,
    ...extra,
  })
}

export { sameModel } from './models.js'

/** Waits for a condition the test drives towards; the deadline only turns a hang into a clear failure. */
export async function until(what: string, condition: () => boolean, deadlineMs = 5_000): Promise<void> {
  const start = Date.now()
  while (!condition()) {
    if (Date.now() - start > deadlineMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** `model.step` over `xs` from a fresh zero state: the reference every operator must match. */
export function stepLoop(model: Model, xs: readonly ArrayLike<number>[]): number[][] {
  const state = model.initialState()
  return xs.map((x) => Array.from(model.step(x, state)))
}

/** Deterministic rows of `size` values in [-1, 1). */
export function rows(seed: number, n: number, size: number): number[][] {
  const rng = new Rng(seed)
  return Array.from({ length: n }, () => Array.from({ length: size }, () => rng.range(-1, 1)))
}

/** Trainer options that never change the weights (lr 0): predictions stay those of a `stepLoop`. */
export const frozen = (k1 = 2, extra: Partial<TrainerOptions> = {}): TrainerOptions => ({
  k1,
  loss: 'mse',
  optimizer: { type: 'sgd', lr: 0 },
  diagnosticsEvery: 0,
  ...extra,
})

/** Trainer options that learn (plain SGD, so updates are easy to reason about). */
export const learning = (k1 = 2, extra: Partial<TrainerOptions> = {}): TrainerOptions => ({
  k1,
  loss: 'mse',
  optimizer: { type: 'sgd', lr: 0.5 },
  ...extra,
})

/** A TestScheduler whose assertions are vitest's deep equality. */
export function marbles(): TestScheduler {
  return new TestScheduler((actual, expected) => expect(actual).toEqual(expected))
}

/** A monitor on a frozen clock (time 0), with every refused event recorded. */
export function recordingMonitor(): { monitor: Monitor; rejected: RejectedEvent[] } {
  const monitor = new Monitor(() => 0)
  const rejected: RejectedEvent[] = []
  monitor.errors$.subscribe((e) => rejected.push(e))
  return { monitor, rejected }
}

/** Every value a synchronous observable emits, and how it ended. */
export function drain<T>(source: Observable<T>): { values: T[]; error: unknown; completed: boolean } {
  const values: T[] = []
  const out: { values: T[]; error: unknown; completed: boolean } = {
    values,
    error: undefined,
    completed: false,
  }
  source.subscribe({
    next: (v) => values.push(v),
    error: (e) => {
      out.error = e
    },
    complete: () => {
      out.completed = true
    },
  })
  return out
}

/**
 * Runs `body` with rxjs's unhandled-error hook replaced by a spy; returns the spy after letting
 * any error RxJS reports asynchronously (it uses setTimeout) arrive.
 */
export async function withUnhandledErrorSpy(body: () => void): Promise<ReturnType<typeof vi.fn>> {
  const spy = vi.fn()
  const saved = config.onUnhandledError
  config.onUnhandledError = spy
  try {
    body()
    await new Promise((resolve) => setTimeout(resolve, 5))
  } finally {
    config.onUnhandledError = saved
  }
  return spy
}

/** Mean squared error of a prediction (per output), as the losses and evaluators compute it. */
export function squaredError(prediction: ArrayLike<number>, target: ArrayLike<number>): number {
  let sum = 0
  for (let i = 0; i < target.length; i++) {
    const d = prediction[i]! - target[i]!
    sum += d * d
  }
  return sum
}
