import { describe, expect, it } from 'vitest'
import { main as anomalies } from '../../examples/anomalies.js'

describe('examples/anomalies.ts', () => {
  it('catches the injected fault as an anomaly and the recalibrated sensor as drift, with no drift before', async () => {
    const r = await anomalies({ hours: 6500, faultAt: 3000, changeAt: 6000, log: () => {} })
    // The fault's onset is among the two highest scores of the run, and marked.
    expect(r.faultEdgesCaught).toContain(3000)
    expect(r.topHours.slice(0, 2)).toContain(3000)
    // The new calibration: its first hour is the other top score; drift fires within 48 hours, and never before.
    expect(r.topHours.slice(0, 2)).toContain(6000)
    expect(r.driftHours.length).toBeGreaterThan(0)
    expect(r.driftHours[0]! - 6000).toBeGreaterThanOrEqual(0)
    expect(r.driftHours[0]! - 6000).toBeLessThanOrEqual(48)
    // Calibrated: 95 % intervals cover within 1.5 points; about 1 % of hours cross 0.99.
    expect(Math.abs(r.coverage - 0.95)).toBeLessThan(0.015)
    expect(r.anomalyHours.length / 6500).toBeLessThan(0.03)
  })
})
