import { describe, expect, it } from 'vitest'
import { AdaptiveConformal } from '../../../src/forecasting/conformal.js'
import { ForecastTracker } from '../../../src/forecasting/tracker.js'
import { Rng } from '../../../src/index.js'
import { loadSeattleHourly } from '../../../streams/demo/datasets.js'

/** Runs one calibrated series over (prediction, target) pairs; returns the realised coverage. */
function realisedCoverage(cal: AdaptiveConformal, pairs: [number, number][]): number {
  let covered = 0
  for (const [prediction, target] of pairs) {
    const q = cal.halfWidth(0)
    const hit = Math.abs(target - prediction) <= q
    if (hit) covered++
    cal.observe(0, Math.abs(target - prediction), hit)
  }
  return covered / pairs.length
}

function gaussian(rng: Rng): number {
  return Math.sqrt(-2 * Math.log(1 - rng.uniform())) * Math.cos(2 * Math.PI * rng.uniform())
}

describe('adaptive conformal intervals', () => {
  it('cover at the nominal rate on a synthetic series whose noise triples half-way', () => {
    const rng = new Rng(3)
    const pairs: [number, number][] = Array.from({ length: 6000 }, (_, t) => {
      const scale = t < 3000 ? 1 : 3
      return [0, scale * gaussian(rng)]
    })
    for (const coverage of [0.8, 0.9, 0.95]) {
      const cal = new AdaptiveConformal(1, { coverage, gamma: 0.01 })
      const realised = realisedCoverage(cal, pairs)
      expect(Math.abs(realised - coverage)).toBeLessThan(0.015)
      // And after the jump on its own: the level adapts instead of under-covering for long.
      const after = pairs.slice(3000)
      const cal2 = new AdaptiveConformal(1, { coverage, gamma: 0.01 })
      realisedCoverage(cal2, pairs.slice(0, 3000))
      expect(Math.abs(realisedCoverage(cal2, after) - coverage)).toBeLessThan(0.03)
    }
  })

  it('obeys the Gibbs–Candès bound on an adversarial sequence (residuals that grow forever)', () => {
    const coverage = 0.9
    const gamma = 0.05
    const cal = new AdaptiveConformal(1, { coverage, gamma, window: 20 })
    const T = 2000
    const pairs: [number, number][] = Array.from({ length: T }, (_, t) => [0, t * t])
    const realised = realisedCoverage(cal, pairs)
    const bound = (Math.max(0.1, 0.9) + gamma) / (gamma * T)
    expect(Math.abs(realised - coverage)).toBeLessThanOrEqual(bound)
    expect(cal.coverage(0)).toBeCloseTo(realised, 12)
  })

  it('is the whole line until enough residuals are in, then finite', () => {
    const cal = new AdaptiveConformal(1, { coverage: 0.9 })
    expect(cal.halfWidth(0)).toBe(Number.POSITIVE_INFINITY)
    for (let i = 1; i <= 9; i++) cal.observe(0, i, true)
    // n = 9: rank ⌈0.9·10⌉ = 9 <= 9, but α moved up a little with each hit.
    expect(Number.isFinite(cal.halfWidth(0))).toBe(true)
  })

  it('keeps exactly the last `window` residuals, sorted, in bounded memory', () => {
    const cal = new AdaptiveConformal(1, { coverage: 0.5, gamma: 1e-9, window: 10 })
    for (let i = 0; i < 25; i++) cal.observe(0, i, true)
    // Scores 15..24 remain: the p-value of 20 counts 20..24 (5 of 10).
    expect(cal.pValue(0, 20)).toBeCloseTo(6 / 11, 12)
    expect(cal.pValue(0, 24)).toBeCloseTo(2 / 11, 12)
    // Beyond the largest kept score (24): the Pareto tail, 24/100 of 1/11.
    expect(cal.pValue(0, 100)).toBeCloseTo(0.24 / 11, 12)
    expect(cal.pValue(0, 0)).toBe(1)
  })

  it('covers Seattle hourly temperature at 80 % and 90 % (persistence forecasts, one series per horizon)', async () => {
    const hours = await loadSeattleHourly()
    const temps = hours.map((h) => h.temperature)
    for (const coverage of [0.8, 0.9]) {
      // Persistence for three horizons: the forecast of every row is the latest temperature.
      const tracker = new ForecastTracker(1, 3, { coverage })
      const row = new Float64Array(3)
      const target = new Float64Array(1)
      for (let t = 1; t < temps.length; t++) {
        row.fill(temps[t - 1]!)
        target[0] = temps[t]!
        tracker.step(row, target)
      }
      for (let h = 0; h < 3; h++) expect(Math.abs(tracker.coverage(h) - coverage)).toBeLessThan(0.02)
    }
  })
})

describe('anomaly scores', () => {
  it('rank injected spikes highest on a noisy sine', () => {
    const rng = new Rng(11)
    const spikes = new Set([400, 777, 1200, 1500, 1901])
    const tracker = new ForecastTracker(1, 1, { coverage: 0.9, anomalyThreshold: 0.99 })
    const scores: { t: number; anomaly: number }[] = []
    for (let t = 1; t < 2000; t++) {
      const clean = Math.sin(t / 20)
      const y = clean + 0.1 * gaussian(rng) + (spikes.has(t) ? 1.5 : 0)
      const step = tracker.step([Math.sin(t / 20)], [y])
      if (t > 300) scores.push({ t, anomaly: step.anomaly })
      if (spikes.has(t)) expect(step.isAnomaly).toBe(true)
    }
    const top = scores.sort((a, b) => b.anomaly - a.anomaly).slice(0, spikes.size)
    expect(new Set(top.map((s) => s.t))).toEqual(spikes)
    // Scores are in [0, 1); about 1 % of normal ticks cross 0.99 (Bonferroni-valid p-values).
    expect(scores.every((s) => s.anomaly >= 0 && s.anomaly < 1)).toBe(true)
    expect(tracker.anomalies).toBeLessThan(0.03 * 1700 + spikes.size)
  })
})
