import { describe, expect, it } from 'vitest'
import { frameLine, metricsLine } from '../../../streams/cli/format.js'
import type { MetricsFrame } from '../../../streams/transport/protocol.js'

describe('tail and serve lines for forecasting frames', () => {
  it('a prediction shows its interval, anomaly and horizon; a drift frame its key, step and response', () => {
    expect(
      frameLine({
        type: 'prediction',
        key: 's',
        id: 3,
        y: [1.5],
        lower: [1],
        upper: [2],
        anomaly: 0.995,
        isAnomaly: true,
        ahead: [[1.5], [1.7], [1.9]],
      }),
    ).toBe('prediction  s #3  y [1.5]  interval [1] … [2]  anomaly 0.995 ANOMALY  ahead 3 rows, last [1.9]')
    expect(
      frameLine({
        type: 'drift',
        key: 's',
        step: 5120,
        detector: 'adwin',
        loss: 4.25,
        response: 'reset',
        detail: {},
      }),
    ).toBe('drift       s  step 5,120  adwin  loss 4.25  response reset')
  })

  it('metrics show the realised coverage, anomalies and drifts when the server has them', () => {
    const m = {
      type: 'metrics',
      events: 10,
      loss: 0.5,
      gradNorm: 1,
      clipRate: 0,
      updates: 2,
      keys: 1,
      producers: 1,
      subscribers: 0,
      rejected: 0,
      dropped: 0,
      skippedUpdates: 0,
      intervalCoverage: 0.9012,
      anomalies: 3,
      drifts: 1,
    } as unknown as MetricsFrame
    expect(metricsLine(m, 5)).toMatch(/coverage 90\.1% {2}anomalies 3 {2}drifts 1$/)
  })
})
