/**
 * The examples, run at a reduced size, with their outcomes checked: what each one claims in
 * its header must hold on the real data.
 */
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { espeakAvailable } from '../../examples/audio/speech.js'
import { main as audio } from '../../examples/audio.js'
import { main as interop } from '../../examples/pytorch-interop.js'
import { FAULTS, main as rxjsApp } from '../../examples/rxjs-app.js'
import { main as sensors } from '../../examples/sensors.js'
import { main as stock } from '../../examples/stock.js'

const quiet = () => {}

describe('examples/stock.ts', () => {
  it('forecasts next-day returns no worse than zero, far better than persistence, and beats persistence on the range', async () => {
    const r = await stock({ days: 1500, log: quiet })
    expect(r.scored).toBe(1500 - 1 - 20 - 1 - 250)
    const { model, persistence, zero } = r.logReturn
    // Returns: a tie with zero at best; persistence adds a second day's noise.
    expect(model.rmse).toBeLessThan(zero.rmse * 1.02)
    expect(model.rmse).toBeLessThan(persistence.rmse * 0.8)
    expect(zero.rmse).toBeLessThan(persistence.rmse)
    // Volatility clusters: the range is forecastable.
    expect(r.logRange.model.rmse).toBeLessThan(r.logRange.persistence.rmse * 0.95)
    expect(r.logRange.model.mae).toBeLessThan(r.logRange.persistence.mae)
  })
})

describe('examples/sensors.ts', () => {
  it('one model for three sensors beats persistence on each sensor, temperature and pressure', async () => {
    const results = await sensors({ hoursPerSensor: 1000, warmup: 200, log: quiet })
    expect(results.map((r) => r.sensor)).toEqual(['jan-apr', 'may-aug', 'sep-dec'])
    for (const r of results) {
      expect(r.scored).toBeGreaterThan(700)
      expect(r.temperature.model.rmse).toBeLessThan(r.temperature.persistence.rmse * 0.8)
      expect(r.pressure.model.rmse).toBeLessThan(r.pressure.persistence.rmse)
    }
  })
})

describe('examples/rxjs-app.ts', () => {
  it('alerts on every injected fault within range, with no false alarm', async () => {
    const r = await rxjsApp({ hours: 3500, log: quiet })
    expect(r.faults).toEqual([...FAULTS.keys()].filter((h) => h < 3500))
    expect(r.faults.length).toBe(2)
    expect(r.detected).toEqual(r.faults)
    expect(r.falseAlarms).toEqual([])
    // The alarm has a margin: away from faults |z| stays well under the threshold of 6.
    expect(r.quietMaxZ).toBeLessThan(5)
    for (const incident of r.incidents) expect(Math.abs(incident.errorC)).toBeGreaterThan(3)
    // The forecast improves as it learns.
    expect(r.weeklyRmse.at(-1)!).toBeLessThan(r.weeklyRmse[0]!)
  })
})

describe('examples/pytorch-interop.ts', () => {
  let folder: string
  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), 'rxrnn-interop-test-'))
  })
  afterAll(async () => {
    await rm(folder, { recursive: true, force: true })
  })

  it('loads PyTorch weights, learns, saves them back bit-exactly and reloads them identically', async () => {
    const output = join(folder, 'learned.safetensors')
    const r = await interop({ hours: 1500, output, log: quiet })
    expect(existsSync(output)).toBe(true)
    expect(r.config).toMatchObject({ inputSize: 3, outputSize: 2 })
    if (r.input.endsWith('fwd_lstm.safetensors') && r.referenceError !== undefined) {
      // The reference weights reproduce PyTorch's outputs before any learning.
      expect(r.referenceError).toBeLessThan(1e-5)
      expect(r.config).toEqual({ cell: 'lstm', inputSize: 3, hiddenSize: 5, numLayers: 2, outputSize: 2 })
    }
    expect(r.weightChange).toBeGreaterThan(0.01)
    expect(r.lossLast).toBeLessThan(r.lossFirst)
    expect(r.sameLayout).toBe(true)
    expect(r.savedExactly).toBe(true)
    expect(r.reloadedExactly).toBe(true)
  })
})

describe('examples/audio.ts', async () => {
  const available = await espeakAvailable()
  it.skipIf(!available)(
    'classifies the words of a voice it never heard far above chance',
    async () => {
      const r = await audio({ trainVoices: 3, variants: 2, epochs: 3, log: quiet })
      expect(r.trainVoices).not.toContain(r.testVoice)
      expect(r.testUtterances).toBe(2 * 5)
      expect(r.utteranceAccuracy).toBeGreaterThanOrEqual(0.5)
      expect(r.chanceUtteranceAccuracy).toBe(0.2)
      expect(r.speechFrameAccuracy).toBeGreaterThan(0.5)
      expect(r.frameAccuracy).toBeGreaterThan(r.chanceFrameAccuracy + 0.2)
      expect(r.lastPassFrameAccuracy).toBeGreaterThan(0.8)
    },
    60_000,
  )
})
