/**
 * Soak: a long stream of events through one KeyedTrainer (GRU 4 → 16 → 1, 100 keys, k1 16), as a
 * server learning per key would see it. Sized for CI by default (200 000 events, a few seconds);
 * for the million-event run of issue 8, or longer:
 *
 *   RXRNN_SOAK_EVENTS=1000000 npx vitest run test/src/soak.test.ts
 *
 * What it holds the trainer to, none of it an absolute timing:
 * - memory: heapUsed after a full GC, measured once 20% of the events are in (every key and
 *   every buffer exists by then) and at the end, grows by less than 8 MB: nothing accumulates
 *   per event;
 * - throughput: the events per CPU second of the last quarter are at least half those of the
 *   first quarter (a ratio on the same machine in the same run: a leak or a growing structure
 *   shows as a slowdown; CPU time, so that other test files sharing the cores do not skew it);
 * - every prediction is finite, no update is skipped, and the model learns (the error of the
 *   last tenth is below that of the first tenth).
 */
import { describe, expect, it } from 'vitest'
import { createModel, KeyedTrainer, OnlineTrainer } from '../../src/index.js'
import { heapAfterGc, mb } from '../helpers/wire-client.js'

const events = Number(process.env.RXRNN_SOAK_EVENTS ?? 200_000)
const KEYS = 100
const HEAP_BOUND = 8 * 2 ** 20

/**
 * This process's CPU time in ms. Throughput is events per CPU second: other test files running on
 * the same cores slow the wall clock unevenly across quarters, not the work done per event.
 */
function cpuMs(): number {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1000
}

describe('soak: a long stream through the keyed trainer', () => {
  it(`${events.toLocaleString('en-US')} events over ${KEYS} keys: flat heap, steady throughput, no NaN`, {
    timeout: Math.max(60_000, events / 5),
  }, () => {
    expect(Number.isInteger(events) && events >= 10_000).toBe(true)
    const model = createModel({ cell: 'gru', inputSize: 4, hiddenSize: 16, outputSize: 1, seed: 7 })
    const keyed = new KeyedTrainer(
      new OnlineTrainer(model, {
        k1: 16,
        loss: 'mse',
        optimizer: { type: 'adam', lr: 3e-3 },
        clipNorm: 1,
        diagnosticsEvery: 8,
      }),
    )
    const keys = Array.from({ length: KEYS }, (_, k) => `sensor-${k}`)
    const x = new Float32Array(4)
    const quarter = Math.floor(events / 4)
    const elapsed = [0, 0, 0, 0]
    const tenth = Math.floor(events / 10)
    let firstTenthError = 0
    let lastTenthError = 0
    let nonFinite = 0
    let updates = 0
    let skipped = 0
    let heapAtFifth = 0
    let clock = cpuMs()
    for (let i = 0; i < events; i++) {
      if (i === Math.floor(events / 5)) {
        // The GC and the measurement are kept out of the throughput clock.
        elapsed[Math.floor(i / quarter)]! += cpuMs() - clock
        heapAtFifth = heapAfterGc()
        clock = cpuMs()
      }
      const k = i % KEYS
      const t = (i - k) / KEYS
      // Each key: a noisy mix of two sines with its own phase; the target is the next value of the first.
      const phase = k * 0.37
      x[0] = Math.sin(t / 6 + phase)
      x[1] = Math.sin(t / 17 + 2 * phase)
      x[2] = Math.cos(t / 6 + phase)
      x[3] = (k % 10) / 10
      const target = Math.sin((t + 1) / 6 + phase)
      const { prediction, updates: reports } = keyed.observe(keys[k]!, x, target)
      const y = prediction[0]!
      if (!Number.isFinite(y)) nonFinite++
      const error = (y - target) ** 2
      if (i < tenth) firstTenthError += error
      else if (i >= events - tenth) lastTenthError += error
      for (const u of reports) {
        updates++
        if (u.skipped) skipped++
      }
      if ((i + 1) % quarter === 0 && i < 4 * quarter) {
        const now = cpuMs()
        elapsed[Math.floor(i / quarter)]! += now - clock
        clock = now
      }
    }
    const heapAtEnd = heapAfterGc()
    const perSecond = elapsed.map((ms) => (quarter / ms) * 1000)
    const ratio = perSecond[3]! / perSecond[0]!
    const growth = heapAtEnd - heapAtFifth
    console.info(
      `soak ${events} events: ${perSecond.map((r) => Math.round(r)).join(' / ')} events per CPU second by quarter ` +
        `(last/first ${ratio.toFixed(2)}); heap ${mb(heapAtFifth)} at 20% → ${mb(heapAtEnd)} at the end ` +
        `(${growth >= 0 ? '+' : ''}${mb(growth)}); mse first tenth ${(firstTenthError / tenth).toFixed(4)}, ` +
        `last tenth ${(lastTenthError / tenth).toFixed(4)}; ${updates} updates`,
    )
    expect(nonFinite).toBe(0)
    expect(skipped).toBe(0)
    // Every key updates after every 16 of its events (each event has a target).
    let expectedUpdates = 0
    for (let k = 0; k < KEYS; k++) expectedUpdates += Math.floor(Math.ceil((events - k) / KEYS) / 16)
    expect(updates).toBe(expectedUpdates)
    expect(keyed.size).toBe(KEYS)
    expect(model.params.values.every(Number.isFinite)).toBe(true)
    expect(lastTenthError).toBeLessThan(firstTenthError)
    expect(growth).toBeLessThan(HEAP_BOUND)
    expect(ratio).toBeGreaterThanOrEqual(0.5)
  })
})
