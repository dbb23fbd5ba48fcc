import { Packr } from 'msgpackr'
import { describe, expect, it } from 'vitest'
import type { Observation, TrainerOptions } from '../../src/index.js'
import { createModel, KeyedTrainer, OnlineTrainer, Rng, RxrnnError } from '../../src/index.js'

const options: TrainerOptions = {
  k1: 3,
  k2: 7,
  loss: 'mse',
  optimizer: { type: 'adam', lr: 0.01 },
  clipNorm: 0.5,
  dropout: { input: 0.2, recurrent: 0.2 },
  rollback: { lossFactor: 50, every: 2 },
}

function events(n: number, seed: number): { x: number[]; target: number[] }[] {
  const rng = new Rng(seed)
  return Array.from({ length: n }, (_, t) => ({
    x: [Math.sin(t / 3) + 0.1 * rng.normal(), rng.uniform()],
    target: [Math.sin((t + 1) / 3)],
  }))
}

function run(trainer: OnlineTrainer, evs: { x: number[]; target: number[] }[]): Observation[] {
  return evs.map((e, t) => trainer.observe(e.x, t % 4 === 3 ? undefined : e.target))
}

describe('trainer snapshots', () => {
  for (const dtype of ['float32', 'float64'] as const) {
    for (const cut of [1, 5, 9, 13]) {
      it(`resume bit-identically after step ${cut} (${dtype}, dropout, zoneout, k2 > k1, rollback)`, () => {
        const model = createModel({
          cell: 'lstm',
          inputSize: 2,
          hiddenSize: 6,
          numLayers: 2,
          outputSize: 1,
          dtype,
          seed: 3,
          zoneout: 0.1,
        })
        const trainer = new OnlineTrainer(model, options)
        const evs = events(40, 9)
        run(trainer, evs.slice(0, cut))
        const bytes = trainer.snapshot()
        const resumed = OnlineTrainer.fromSnapshot(bytes)
        const expected = run(trainer, evs.slice(cut))
        const actual = run(resumed, evs.slice(cut))
        expect(actual.map((o) => Array.from(o.prediction))).toEqual(
          expected.map((o) => Array.from(o.prediction)),
        )
        expect(actual.map((o) => o.update)).toEqual(expected.map((o) => o.update))
        expect(actual.filter((o) => o.update).length).toBeGreaterThan(5)
        expect(Array.from(resumed.model.params.values)).toEqual(Array.from(model.params.values))
        expect(resumed.model.params.values).toBeInstanceOf(dtype === 'float64' ? Float64Array : Float32Array)
      })
    }
  }

  it('keeps the optimizer step count and learning rate', () => {
    const trainer = new OnlineTrainer(
      createModel({ cell: 'gru', inputSize: 2, hiddenSize: 4, outputSize: 1, seed: 1 }),
      {
        ...options,
        optimizer: { type: 'sgd', lr: 0.05, momentum: 0.9, nesterov: true },
      },
    )
    run(trainer, events(10, 1))
    trainer.optimizer.setLearningRate(0.01)
    const resumed = OnlineTrainer.fromSnapshot(trainer.snapshot())
    expect(resumed.optimizer.t).toBe(trainer.optimizer.t)
    expect(resumed.optimizer.config).toEqual(trainer.optimizer.config)
  })

  it('refuses empty, truncated, damaged, foreign and future snapshots with a clear error', () => {
    const trainer = new OnlineTrainer(
      createModel({ cell: 'rnn_tanh', inputSize: 2, hiddenSize: 3, outputSize: 1, seed: 1 }),
      options,
    )
    run(trainer, events(5, 2))
    const bytes = trainer.snapshot()
    const refused = (b: Uint8Array, why: RegExp) => {
      let error: unknown
      try {
        OnlineTrainer.fromSnapshot(b)
      } catch (e) {
        error = e
      }
      expect(error).toBeInstanceOf(RxrnnError)
      expect((error as RxrnnError).code).toBe('bad_snapshot')
      expect((error as RxrnnError).message).toMatch(why)
    }
    refused(new Uint8Array(0), /empty/)
    refused(bytes.subarray(0, bytes.length - 10), /truncated|body|checksum/)
    const damaged = bytes.slice()
    damaged[damaged.length - 20] = damaged[damaged.length - 20]! ^ 0x40
    refused(damaged, /checksum|damaged/)
    const packr = new Packr({ useRecords: false, moreTypes: true })
    const envelope = packr.unpack(bytes) as Record<string, unknown>
    refused(new Uint8Array(packr.pack({ ...envelope, version: 99 })), /version is 99/)
    refused(new Uint8Array(packr.pack({ hello: 'world' })), /not an rxrnn snapshot/)
    refused(new Uint8Array(packr.pack({ ...envelope, kind: 'keyed-trainer' })), /holds a "keyed-trainer"/)
  })
})

describe('keyed trainer snapshots', () => {
  it('resume every key exactly', () => {
    const model = createModel({
      cell: 'gru',
      inputSize: 2,
      hiddenSize: 5,
      outputSize: 1,
      dtype: 'float64',
      seed: 4,
    })
    const keyed = new KeyedTrainer(new OnlineTrainer(model, { ...options, dropout: {} }), { maxKeys: 10 })
    const evs = events(60, 3)
    const keyOf = (t: number) => `k${t % 3}`
    evs.slice(0, 25).forEach((e, t) => {
      keyed.observe(keyOf(t), e.x, e.target, t)
    })
    const resumed = KeyedTrainer.fromSnapshot(keyed.snapshot())
    expect([...resumed.keys()]).toEqual([...keyed.keys()])
    const continueWith = (k: KeyedTrainer) =>
      evs.slice(25).map((e, i) => {
        const { prediction, updates } = k.observe(keyOf(25 + i), e.x, e.target, 25 + i)
        return [Array.from(prediction), updates.map((u) => u.loss)]
      })
    expect(continueWith(resumed)).toEqual(continueWith(keyed))
  })
})
