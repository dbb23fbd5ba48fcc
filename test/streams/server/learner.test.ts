/** The learner on its own: no socket, no server; ticks in, predictions and update reports out. */
import { describe, expect, it } from 'vitest'
import type { UpdateReport } from '../../../src/index.js'
import { RxrnnError } from '../../../src/index.js'
import { Learner } from '../../../streams/server/learner.js'
import { asServerFrame } from '../../../streams/transport/protocol.js'

const options = {
  model: { cell: 'gru', inputSize: 2, hiddenSize: 4, outputSize: 1, seed: 3 } as const,
  trainer: { k1: 2, loss: 'mse', optimizer: { type: 'adam', lr: 1e-2 } } as const,
}

describe('Learner', () => {
  it('answers each tick, reports each update (deferred until flushed), scores regression', () => {
    const updates: [string, UpdateReport][] = []
    const learner = new Learner({
      ...options,
      staggerUpdates: false,
      onUpdate: (k, u) => updates.push([k, u]),
    })
    for (let i = 0; i < 4; i++) expect(learner.tick('a', [i, 1], 0.5).y).toHaveLength(1)
    expect(updates).toHaveLength(0)
    learner.flush()
    expect(updates.map(([k]) => k)).toEqual(['a', 'a'])
    expect(learner.monitor.events).toBe(4)
    // Scored from the second tick on: the first has no previous target for the persistence baseline.
    expect(learner.monitor.snapshot().regression?.n).toBe(3)
    expect(learner.has('a')).toBe(true)
    expect(learner.hidden('a')).toHaveLength(4)
  })

  it('without deferral, updates are reported before tick returns', () => {
    const updates: string[] = []
    const learner = new Learner({
      ...options,
      deferUpdates: false,
      staggerUpdates: false,
      onUpdate: (k) => updates.push(k),
    })
    learner.tick('a', [1, 1], 0.5)
    learner.tick('a', [1, 1], 0.5)
    expect(updates).toEqual(['a'])
  })

  it('a tick the model cannot take throws RxrnnError and changes nothing; reject counts by code', () => {
    const learner = new Learner({ ...options, onUpdate: () => {} })
    const before = Float64Array.from(learner.model.params.values)
    expect(() => learner.tick('a', [1, 2, 3], 0.5)).toThrow(RxrnnError)
    expect(Float64Array.from(learner.model.params.values)).toEqual(before)
    learner.reject({ code: 'bad_input' })
    learner.reject({ code: 'bad_input' })
    expect(learner.rejectedByCode.get('bad_input')).toBe(2)
  })

  it('maxKeys and idleMs are the caller’s, also when resuming from a snapshot', () => {
    const first = new Learner({ ...options, maxKeys: 50, idleMs: 1000, onUpdate: () => {} })
    first.tick('a', [1, 1], 0.5)
    const resumed = new Learner({
      ...options,
      resumeFrom: first.keyed.snapshot(),
      maxKeys: 3,
      onUpdate: () => {},
    })
    expect(resumed.keyed.maxKeys).toBe(3)
    expect(resumed.keyed.idleMs).toBe(Number.POSITIVE_INFINITY)
    expect(resumed.has('a')).toBe(true)
  })
})

describe('asServerFrame', () => {
  it('narrows decoded values by type, and refuses non-frames', () => {
    expect(asServerFrame({ type: 'metrics', t: 1 })?.type).toBe('metrics')
    expect(asServerFrame({ type: 'tick' })).toBeUndefined()
    expect(asServerFrame(null)).toBeUndefined()
    expect(asServerFrame('metrics')).toBeUndefined()
  })
})
