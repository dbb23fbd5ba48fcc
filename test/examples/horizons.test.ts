import { describe, expect, it } from 'vitest'
import { main as horizons } from '../../examples/horizons.js'

describe('examples/horizons.ts', () => {
  it('direct head and roll-out both beat persistence 6 hours ahead; the direct head compounds less', async () => {
    const r = await horizons({ hours: 4000, warmup: 1500, log: () => {} })
    expect(r.direct.mae).toHaveLength(6)
    // Full year, measured: direct 0.365 → 0.509 °C, roll-out 0.264 → 0.784, persistence 0.567 → 2.956.
    expect(r.direct.mae[5]!).toBeLessThan(0.4 * r.persistence[5]!)
    expect(r.rollout.mae[5]!).toBeLessThan(0.6 * r.persistence[5]!)
    expect(r.direct.mae[5]!).toBeLessThan(r.rollout.mae[5]!)
    // The roll-out's growth from 1 to 6 hours is steeper than the direct head's.
    expect(r.rollout.mae[5]! / r.rollout.mae[0]!).toBeGreaterThan(r.direct.mae[5]! / r.direct.mae[0]!)
  })
})
