/**
 * `npm start` / `rxrnn demo`: two recorded feeds replayed live into rxrnn servers over
 * WebSocket, each learned online while it is forecast, then scored against naive baselines.
 *
 * Design. A server holds one model (its weights shared by every key), and the two feeds need
 * different models: 3 inputs → 1 output for the S&P 500, 5 inputs → 2 outputs for the weather.
 * So each feed gets its own server on its own port, exactly as two independent deployments
 * would: their losses, metrics and dashboards do not mix, and either can be restarted alone.
 * (Several sensors of one kind would instead be keys of one server: see examples/sensors.ts.)
 *
 * Each producer is a real WebSocket client on loopback: it scales its features online (no
 * look-ahead), sends one msgpack `tick` per row with the step's target, and scores the
 * `prediction` that answers it. See `demo/feeds.ts` for the features and why a tick is sent one
 * row late, and `demo/producer.ts` for the replay.
 */
import type { ModelConfig, TrainerOptions } from '../../src/index.js'
import { RxrnnError } from '../../src/index.js'
import type { RxrnnServer } from '../server/server.js'
import { serve } from '../server/server.js'
import type { MetricsFrame } from '../transport/protocol.js'
import { loadSeattleHourly, loadSp500Daily } from './datasets.js'
import type { FeedSteps } from './feeds.js'
import { seattleSteps, sp500Steps } from './feeds.js'
import { Replay, type ReplayResult } from './producer.js'
import { ProgressLine, progressText, summaryLines } from './report.js'

export interface DemoOptions {
  /** Keep the servers running after the replay, for other producers and the dashboard, until SIGINT or SIGTERM. */
  keepServing?: boolean
  /** Port of the S&P 500 server; the weather server takes the next one. Default: any free ports. */
  port?: number
  /** A small slice of each feed, unpaced: a few seconds, e.g. to check an install. */
  quick?: boolean
  /**
   * Where lines go; progress then comes as plain lines every few seconds. Default: stdout,
   * with the progress line rewritten in place (\r) when stdout is a terminal.
   */
  log?: (line: string) => void
}

/** How long the full replay takes: the feeds are paced so that they end together. */
const REPLAY_SECONDS = 30

/** Steps ahead the demo forecasts, and the nominal coverage of its intervals. */
const HORIZON = 6
const COVERAGE = 0.9

/** The same recurrent net and learning rule for both feeds; only the sizes differ. */
const TRAINER: TrainerOptions = {
  k1: 16,
  k2: 32,
  loss: 'mse',
  optimizer: { type: 'adam', lr: 1e-3 },
  clipNorm: 1,
  // Gradient flow and spectral radius for the dashboard, on every 10th update.
  diagnosticsEvery: 10,
  // Six rows per target: the forecasts 1 … 6 steps on (k2 = 32 reaches back over k1 + 5).
  horizon: HORIZON,
}

interface DemoFeed {
  title: string
  label: string
  key: string
  unit: string
  load: () => Promise<FeedSteps>
  warmup: { full: number; quick: number }
  quickSteps: number
  note: string
}

const FEEDS: DemoFeed[] = [
  {
    title: 'S&P 500 daily (^GSPC), 2000–2020',
    label: 'S&P 500',
    key: '^GSPC',
    unit: 'days',
    load: async () => sp500Steps(await loadSp500Daily()),
    warmup: { full: 250, quick: 100 },
    quickSteps: 600,
    note:
      'Daily returns are close to unpredictable: the zero forecast is the bar to beat, and persistence ' +
      '(tomorrow repeats today) is a weak baseline here: its error adds the noise of two days.',
  },
  {
    title: 'Seattle hourly weather (NOAA 1981–2010 normals)',
    label: 'Seattle',
    key: 'seattle',
    unit: 'hours',
    load: async () => seattleSteps(await loadSeattleHourly()),
    warmup: { full: 500, quick: 200 },
    quickSteps: 1000,
    note:
      'Hourly normals are 30-year averages, smoother than any one year of weather: their daily cycle (given ' +
      'as sin/cos of the hour) is regular and learnable, so expect a far larger gain over persistence than on raw weather.',
  },
]

const MODEL_NAME = 'GRU (online)'

/**
 * Runs the demo: starts one server per feed on 127.0.0.1, replays the S&P 500 daily bars and
 * the Seattle hourly weather into them over WebSocket as live producers would (about 30 s;
 * `quick`: a few seconds), shows live progress, and ends with a table per feed of the
 * prequential RMSE and MAE of the model next to persistence (and the zero forecast for
 * returns). Resolves when done and the servers are closed; with `keepServing` the servers stay
 * up until SIGINT or SIGTERM.
 *
 * @example
 * // From the shell: npm start, or npx rxrnn demo --quick. From code:
 * await runDemo({ quick: true, log: (line) => console.log(line) })
 */
export function runDemo(options: DemoOptions = {}): Promise<void> {
  return runDemoUntil(options, interrupted)
}

/**
 * `runDemo`, with `keepServing` ending when `stop()` resolves instead of at SIGINT or SIGTERM.
 *
 * @example
 * const stop = new Promise<void>((resolve) => setTimeout(resolve, 60_000))
 * await runDemoUntil({ quick: true, keepServing: true }, () => stop)
 */
export async function runDemoUntil(options: DemoOptions, stop: () => Promise<void>): Promise<void> {
  if (
    options.port !== undefined &&
    !(Number.isInteger(options.port) && options.port >= 0 && options.port < 65535)
  ) {
    throw new RxrnnError(
      'bad_config',
      `port is ${options.port}; give a port from 1 to 65534 (the weather server takes the next one), or 0 for any free ports`,
    )
  }
  const quick = options.quick === true
  const tty = options.log === undefined && process.stdout.isTTY === true
  const write = (text: string) => process.stdout.write(text)
  const progress = new ProgressLine(tty, write, options.log ?? ((line) => write(`${line}\n`)))
  // Lines other than progress end the progress line first, so they never overwrite each other.
  const log = (line: string) => {
    progress.done()
    if (options.log) options.log(line)
    else write(`${line}\n`)
  }
  const started = performance.now()

  const feeds = await Promise.all(
    FEEDS.map(async (spec) => {
      const all = await spec.load()
      const steps = quick ? all.steps.slice(0, spec.quickSteps) : all.steps
      const warmup = quick ? spec.warmup.quick : spec.warmup.full
      return { spec, feed: { ...all, steps }, warmup }
    }),
  )

  const servers: RxrnnServer[] = []
  const closeAll = () => Promise.all(servers.map((s) => s.close()))
  try {
    for (const [i, { spec, feed }] of feeds.entries()) {
      const model: ModelConfig = {
        cell: 'gru',
        inputSize: feed.inputs.length,
        hiddenSize: 32,
        outputSize: feed.targets.length * HORIZON,
        seed: 1,
      }
      const server = await serve({
        model,
        trainer: TRAINER,
        host: '127.0.0.1',
        port: options.port === undefined || options.port === 0 ? 0 : options.port + i,
        metricsIntervalMs: quick ? 250 : 1000,
        forecasting: { coverage: COVERAGE },
        log: (line) => log(`[${spec.label}] ${line}`),
      })
      servers.push(server)
    }

    log('rxrnn demo: two recorded feeds replayed live over WebSocket, each into its own server and model')
    for (const [i, { spec, feed, warmup }] of feeds.entries()) {
      const server = servers[i]!
      log(`  ${spec.title}`)
      log(`    ${server.url}   dashboard http://127.0.0.1:${server.port}/`)
      log(
        `    ${server.model.describe()}, TBPTT(${TRAINER.k1}, ${TRAINER.k2}), ` +
          `${TRAINER.optimizer.type} lr ${TRAINER.optimizer.lr}, clip norm ${TRAINER.clipNorm}; ` +
          `inputs: ${feed.inputs.join(', ')} (scaled online by the producer)`,
      )
      log(`    ${feed.steps.length} ${spec.unit}, the first ${warmup} not scored (warm-up)`)
    }

    const latest: (MetricsFrame | undefined)[] = feeds.map(() => undefined)
    const replays = feeds.map(
      ({ spec, feed, warmup }, i) =>
        new Replay({
          url: servers[i]!.url,
          key: spec.key,
          steps: feed.steps,
          baselines: feed.baselines.length,
          warmup,
          ratePerSecond: quick ? Number.POSITIVE_INFINITY : feed.steps.length / REPLAY_SECONDS,
          onMetrics: (m) => {
            latest[i] = m
          },
        }),
    )
    log(
      quick
        ? 'replaying a slice of each feed as fast as the servers answer …'
        : `replaying ${feeds.map(({ feed, spec }) => `${feed.steps.length} ${spec.unit}`).join(' and ')} in about ${REPLAY_SECONDS} s …`,
    )
    const show = () => {
      const parts = feeds.map(({ spec }, i) =>
        progressText(spec.label, spec.unit, replays[i]!.progress(), latest[i]),
      )
      if (tty) progress.show(parts.join('  │  '))
      else for (const part of parts) progress.show(part)
    }
    const ticker = setInterval(show, tty ? 200 : quick ? 1000 : 5000)
    let results: ReplayResult[]
    const runs = replays.map((r) => r.run())
    // When one fails the other is stopped, and its own rejection must not go unhandled.
    for (const run of runs) run.catch(() => {})
    try {
      results = await Promise.all(runs)
    } catch (error) {
      for (const r of replays) r.close()
      throw error
    } finally {
      clearInterval(ticker)
    }
    // The final figures, straight from the servers (the last pushed frame may be up to a second old).
    for (const [i, server] of servers.entries()) latest[i] = server.metrics()
    show()
    progress.done()
    const replaySeconds = Math.max(...results.map((r) => r.elapsedMs)) / 1000

    for (const [i, { spec, feed, warmup }] of feeds.entries()) {
      const result = results[i]!
      log('')
      for (const line of summaryLines({
        title: spec.title,
        unit: spec.unit,
        feed,
        result,
        warmup,
        metrics: servers[i]!.metrics(),
        modelName: MODEL_NAME,
        note: spec.note,
        coverage: COVERAGE,
      }))
        log(line)
      log(
        `  replayed in ${(result.elapsedMs / 1000).toFixed(1)} s (${Math.round((feed.steps.length * 1000) / result.elapsedMs)} ticks/s)`,
      )
    }
    log('')
    log(
      `done in ${((performance.now() - started) / 1000).toFixed(1)} s (replay ${replaySeconds.toFixed(1)} s)`,
    )

    if (options.keepServing) {
      log('the servers stay up for other producers and subscribers (Ctrl-C to stop):')
      for (const [i, { spec }] of feeds.entries()) {
        const server = servers[i]!
        log(`  ${spec.label}: ${server.url}   dashboard http://127.0.0.1:${server.port}/`)
      }
      await stop()
    }
  } finally {
    progress.done()
    await closeAll()
  }
}

/** Resolves on the first SIGINT or SIGTERM (and takes over their default exit meanwhile). */
function interrupted(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
      resolve()
    }
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
}
