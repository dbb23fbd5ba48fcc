import type { Registry } from 'prom-client'
import { Counter, Gauge } from 'prom-client'

/** What the forecasting series read: a server's (`ServerForecasting.metrics()`) or the NATS workers' summed. */
export interface ForecastingFigures {
  /** Realised coverage of the row-0 intervals over every key; null before any outcome. */
  intervalCoverage: number | null
  anomalies: number
  drifts: number
}

/**
 * Registers forecasting figures on a prom-client registry, read from `source` at each scrape:
 * `rxrnn_interval_coverage` (realised coverage of the row-0 intervals over every key, NaN before
 * any outcome), `rxrnn_anomalies_total`, `rxrnn_drifts_total`, and `rxrnn_interval_nominal_coverage`.
 * Cost: nothing per tick; three reads per scrape.
 *
 * @example
 * const registry = new Registry()
 * registerForecastingMetrics(registry, () => server.forecasting?.metrics(), 0.9)
 * res.end(await registry.metrics())
 */
export function registerForecastingMetrics(
  registry: Registry,
  source: () => ForecastingFigures | null | undefined,
  nominal?: number,
): void {
  const metrics = source
  new Gauge({
    name: 'rxrnn_interval_coverage',
    help: 'Realised coverage of the prediction intervals (the next value, every key); NaN before any outcome.',
    registers: [registry],
    collect() {
      this.set(metrics()?.intervalCoverage ?? Number.NaN)
    },
  })
  if (nominal !== undefined) {
    new Gauge({
      name: 'rxrnn_interval_nominal_coverage',
      help: 'The coverage the intervals are calibrated for (--coverage).',
      registers: [registry],
      collect() {
        this.set(nominal)
      },
    })
  }
  new Counter({
    name: 'rxrnn_anomalies_total',
    help: 'Ticks whose anomaly score reached the threshold (--anomaly-threshold).',
    registers: [registry],
    collect() {
      this.reset()
      this.inc(metrics()?.anomalies ?? 0)
    },
  })
  new Counter({
    name: 'rxrnn_drifts_total',
    help: "Drift alarms on the keys' prequential loss (--drift).",
    registers: [registry],
    collect() {
      this.reset()
      this.inc(metrics()?.drifts ?? 0)
    },
  })
}
