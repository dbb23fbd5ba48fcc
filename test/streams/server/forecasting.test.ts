import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { afterEach, describe, expect, it } from 'vitest'
import { runCli } from '../../../streams/cli/program.js'
import { registerForecastingMetrics } from '../../../streams/server/forecasting-metrics.js'
import { serve } from '../../../streams/server/server.js'
import { until } from '../../helpers/streams.js'
import { type Frame, FrameClient } from '../../helpers/wire-client.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** `rxrnn serve` in process with these flags; resolves with its URL. */
async function serveCli(flags: string[]): Promise<string> {
  let stdout = ''
  const controller = new AbortController()
  const code = runCli(['serve', '--port', '0', '--quiet', '--no-dashboard', '--seed', '5', ...flags], {
    stdout: { write: (s: string) => (stdout += s), isTTY: false, columns: 200 },
    stderr: { write: () => true },
    signal: controller.signal,
  })
  cleanups.push(async () => {
    controller.abort()
    await code
  })
  await until('listening', () => /listening on (ws:\S+)/.test(stdout) || stdout.includes('rror'))
  return /listening on (ws:\S+)/.exec(stdout)![1]!
}

async function client(url: string): Promise<FrameClient> {
  const c = await FrameClient.open(url)
  cleanups.push(() => c.close())
  return c
}

const predictions = (c: FrameClient) => c.frames.filter((f) => f.type === 'prediction')

describe('rxrnn serve: horizons, intervals, anomalies, drift, time and missing values', () => {
  it('prediction frames carry ahead (ahead[0] = y), lower/upper per row, anomaly in [0, 1); metrics the coverage', async () => {
    const url = await serveCli([
      '--input-size',
      '1',
      '--output-size',
      '1',
      '--hidden-size',
      '12',
      '--k1',
      '4',
      '--lr',
      '0.01',
      '--horizon',
      '3',
      '--coverage',
      '0.9',
    ])
    const producer = await client(url)
    const T = 1500
    // A sine with uniform noise from a fixed generator (the test reads the same values back).
    let seed = 12345
    const noise = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5) * 0.3
    const series = Array.from({ length: T + 1 }, (_, t) => Math.sin(t / 5) + noise())
    for (let t = 0; t < T; t++)
      producer.send({ type: 'tick', key: 's', x: [series[t]!], y: series[t + 1]!, id: t })
    await producer.waitFor((f) => f.type === 'prediction' && f.id === T - 1)
    const frames = predictions(producer)
    expect(frames).toHaveLength(T)
    for (const f of frames) {
      const ahead = f.ahead as number[][]
      expect(ahead).toHaveLength(3)
      expect(ahead.every((row) => row.length === 1)).toBe(true)
      expect(ahead[0]).toEqual(f.y)
      expect((f.aheadLower as number[][]).length).toBe(3)
      expect((f.aheadUpper as number[][]).length).toBe(3)
      expect(typeof f.anomaly).toBe('number')
      expect(f.anomaly as number).toBeGreaterThanOrEqual(0)
      expect(f.anomaly as number).toBeLessThan(1)
    }
    // Realised coverage after the first 500 ticks, measured here from the frames: within 3 points of 0.9.
    let covered = 0
    for (const f of frames.slice(500)) {
      const y = series[(f.id as number) + 1]!
      if (y >= (f.lower as number[])[0]! && y <= (f.upper as number[])[0]!) covered++
    }
    expect(Math.abs(covered / 1000 - 0.9)).toBeLessThan(0.03)
    producer.send({ type: 'subscribe', channels: ['metrics'] })
    const at = await producer.waitFor((f) => f.type === 'metrics')
    const metrics = producer.frames[at] as Frame
    expect(Math.abs((metrics.intervalCoverage as number) - 0.9)).toBeLessThan(0.05)
    expect(metrics.anomalies).toBeTypeOf('number')
  })

  it('--drift --on-drift reset: a regime change sends { type: drift, key, step } to updates subscribers', async () => {
    const url = await serveCli([
      '--input-size',
      '1',
      '--output-size',
      '1',
      '--hidden-size',
      '8',
      '--k1',
      '4',
      '--lr',
      '0.01',
      '--drift',
      '--on-drift',
      'reset',
    ])
    const watcher = await client(url)
    watcher.send({ type: 'subscribe', channels: ['updates'] })
    await watcher.waitFor((f) => f.type === 'subscribed')
    const producer = await client(url)
    const value = (t: number) => (t < 1500 ? Math.sin(t / 6) : 6 * Math.sin(t / 2))
    for (let t = 0; t < 1700; t++)
      producer.send({ type: 'tick', key: 'k', x: [value(t)], y: value(t + 1), id: t })
    await producer.waitFor((f) => f.id === 1699)
    const at = await watcher.waitFor((f) => f.type === 'drift')
    const drift = watcher.frames[at]!
    expect(drift).toMatchObject({ type: 'drift', key: 'k', response: 'reset', detector: 'page-hinkley' })
    expect(drift.step as number).toBeGreaterThan(1500)
    expect(drift.step as number).toBeLessThan(1600)
    expect(watcher.frames.filter((f) => f.type === 'drift' && (f.step as number) <= 1500)).toEqual([])
  })

  it('--missing last --time-feature: null entries are imputed; t is read; without --missing null is bad_input', async () => {
    const url = await serveCli([
      '--input-size',
      '2',
      '--output-size',
      '1',
      '--hidden-size',
      '4',
      '--missing',
      'last',
      '--time-feature',
    ])
    const producer = await client(url)
    producer.send({ type: 'tick', key: 'a', x: [1, null], t: 1_700_000_000_000, id: 1 })
    producer.send({ type: 'tick', key: 'a', x: [null, 2], y: 0.5, t: 1_700_000_060_000, id: 2 }, 'json')
    producer.send({ type: 'tick', key: 'a', x: [1, 2], t: 'soon', id: 3 })
    await producer.waitFor((f) => f.id === 3)
    expect(producer.frames.filter((f) => f.type === 'prediction').map((f) => f.id)).toEqual([1, 2])
    expect(producer.frames.find((f) => f.id === 3)).toMatchObject({ type: 'error', code: 'bad_input' })

    const plain = await serveCli(['--input-size', '2', '--output-size', '1', '--hidden-size', '4'])
    const other = await client(plain)
    other.send({ type: 'tick', key: 'a', x: [1, null], id: 9 })
    const at = await other.waitFor((f) => f.id === 9)
    expect(other.frames[at]).toMatchObject({ type: 'error', code: 'bad_input' })
  })

  it('a k2 too short for the horizon is refused with the relation explained', async () => {
    let stderr = ''
    const code = await runCli(
      [
        'serve',
        '--port',
        '0',
        '--input-size',
        '1',
        '--output-size',
        '1',
        '--k1',
        '8',
        '--k2',
        '8',
        '--horizon',
        '4',
      ],
      {
        stdout: { write: () => true, isTTY: false, columns: 200 },
        stderr: { write: (s: string) => (stderr += s) },
        signal: new AbortController().signal,
      },
    )
    expect(code).not.toBe(0)
    expect(stderr).toMatch(/k2 \(8\) is too short for horizon 4 with k1 8.*k2 >= k1 \+ horizon - 1 = 11/)
  })

  it('rxrnn_interval_coverage, rxrnn_anomalies_total and rxrnn_drifts_total on a prom-client registry', async () => {
    const server = await serve({
      model: { cell: 'gru', inputSize: 1, hiddenSize: 8, outputSize: 1, seed: 2 },
      trainer: { k1: 4, loss: 'mse', optimizer: { type: 'adam', lr: 0.01 } },
      forecasting: { coverage: 0.8, drift: {} },
      port: 0,
      dashboard: false,
    })
    cleanups.push(() => server.close())
    const registry = new Registry()
    registerForecastingMetrics(registry, () => server.forecasting?.metrics(), 0.8)
    // prom-client writes NaN as "Nan" (Prometheus parses either).
    expect(await registry.metrics()).toMatch(/^rxrnn_interval_coverage Nan$/im)
    const producer = await client(server.url)
    for (let t = 0; t < 600; t++)
      producer.send({ type: 'tick', key: 'a', x: [Math.sin(t / 3)], y: Math.sin((t + 1) / 3), id: t })
    await producer.waitFor((f) => f.id === 599)
    const text = await registry.metrics()
    const coverage = Number(/^rxrnn_interval_coverage ([\d.]+)$/m.exec(text)![1])
    expect(Math.abs(coverage - 0.8)).toBeLessThan(0.05)
    expect(coverage).toBe(server.metrics().intervalCoverage)
    expect(text).toMatch(/^rxrnn_interval_nominal_coverage 0.8$/m)
    expect(text).toMatch(/^rxrnn_anomalies_total \d+$/m)
    expect(text).toMatch(/^rxrnn_drifts_total 0$/m)
    expect(text).toContain('# TYPE rxrnn_drifts_total counter')
  })

  it('a checkpoint keeps the forecasting state beside it: after a restart the intervals are calibrated at once', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rxrnn-forecast-'))
    cleanups.push(() => rm(dir, { recursive: true, force: true }))
    const options = {
      model: { cell: 'gru' as const, inputSize: 1, hiddenSize: 8, outputSize: 1, seed: 2 },
      trainer: { k1: 4, loss: 'mse' as const, optimizer: { type: 'adam' as const, lr: 0.01 } },
      forecasting: { coverage: 0.9, drift: {} },
      checkpoint: { path: join(dir, 'model.ckpt'), everyMs: 60_000 },
      port: 0,
      dashboard: false,
    }
    const first = await serve(options)
    const producer = await client(first.url)
    for (let t = 0; t < 300; t++)
      producer.send({ type: 'tick', key: 'a', x: [Math.sin(t / 3)], y: Math.sin((t + 1) / 3), id: t })
    await producer.waitFor((f) => f.id === 299)
    const before = first.metrics().intervalCoverage
    await first.close()
    expect(existsSync(join(dir, 'model.ckpt.forecast'))).toBe(true)

    const second = await serve(options)
    cleanups.push(() => second.close())
    expect(second.metrics().intervalCoverage).toBe(before)
    const again = await client(second.url)
    again.send({ type: 'tick', key: 'a', x: [Math.sin(300 / 3)], y: Math.sin(301 / 3), id: 300 })
    const at = await again.waitFor((f) => f.id === 300)
    const frame = again.frames[at]!
    // Finite bounds straight away (a fresh key's would be ±Infinity until ~10 outcomes are in).
    expect(Number.isFinite((frame.lower as number[])[0])).toBe(true)
    expect(Number.isFinite((frame.upper as number[])[0])).toBe(true)
  })

  it('a --config file may hold forecasting settings (flags win); bad ones are refused, naming where they are set', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rxrnn-forecast-config-'))
    cleanups.push(() => rm(dir, { recursive: true, force: true }))
    const good = join(dir, 'good.json')
    await writeFile(
      good,
      JSON.stringify({
        model: { inputSize: 2, outputSize: 1, hiddenSize: 4 },
        forecasting: { coverage: 0.8, missing: 'zero' },
      }),
    )
    const url = await serveCli(['--config', good, '--coverage', '0.9'])
    const producer = await client(url)
    producer.send({ type: 'tick', key: 'a', x: [1, null], y: 0.5, id: 1 })
    const at = await producer.waitFor((f) => f.id === 1)
    expect(producer.frames[at]).toMatchObject({ type: 'prediction' })
    expect(producer.frames[at]!.lower).toHaveLength(1)

    const bad = join(dir, 'bad.json')
    await writeFile(
      bad,
      JSON.stringify({
        model: { inputSize: 1, outputSize: 1 },
        forecasting: { coverage: 2, missing: 'mean' },
      }),
    )
    let stderr = ''
    const code = await runCli(['serve', '--port', '0', '--config', bad], {
      stdout: { write: () => true, isTTY: false, columns: 200 },
      stderr: { write: (s: string) => (stderr += s) },
      signal: new AbortController().signal,
    })
    expect(code).not.toBe(0)
    expect(stderr).toMatch(/coverage is 2; it must be a number in \(0, 1\).*or forecasting\.\*\)/)
    expect(stderr).toMatch(/missing is "mean"; use one of last, zero \(--missing, or forecasting\.missing\)/)
  })

  it('GET /metrics serves rxrnn_interval_coverage, rxrnn_anomalies_total and rxrnn_drifts_total', async () => {
    const server = await serve({
      model: { cell: 'gru', inputSize: 1, hiddenSize: 8, outputSize: 1, seed: 2 },
      trainer: { k1: 4, loss: 'mse', optimizer: { type: 'adam', lr: 0.01 } },
      forecasting: { coverage: 0.9, drift: {} },
      port: 0,
    })
    cleanups.push(() => server.close())
    const producer = await client(server.url)
    for (let t = 0; t < 300; t++)
      producer.send({ type: 'tick', key: 'a', x: [Math.sin(t / 3)], y: Math.sin((t + 1) / 3), id: t })
    await producer.waitFor((f) => f.id === 299)
    const response = await fetch(`http://127.0.0.1:${server.port}/metrics`)
    expect(response.status).toBe(200)
    const text = await response.text()
    const coverage = Number(/^rxrnn_interval_coverage ([\d.]+)$/m.exec(text)?.[1])
    expect(Math.abs(coverage - 0.9)).toBeLessThan(0.06)
    expect(text).toMatch(/^rxrnn_interval_nominal_coverage 0.9$/m)
    expect(text).toMatch(/^rxrnn_anomalies_total \d+$/m)
    expect(text).toMatch(/^rxrnn_drifts_total 0$/m)
  })

  it('rxrnn serve --horizon --missing --checkpoint resumes with the same flags, intervals calibrated at once', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rxrnn-forecast-resume-'))
    cleanups.push(() => rm(dir, { recursive: true, force: true }))
    const flags = [
      'serve',
      '--port',
      '0',
      '--quiet',
      '--no-dashboard',
      '--seed',
      '3',
      '--input-size',
      '1',
      '--output-size',
      '1',
      '--hidden-size',
      '6',
      '--k1',
      '4',
      '--horizon',
      '2',
      '--missing',
      'last',
      '--coverage',
      '0.9',
      '--checkpoint',
      join(dir, 'model.ckpt'),
    ]
    const run = () => {
      let stdout = ''
      let stderr = ''
      const controller = new AbortController()
      const code = runCli(flags, {
        stdout: { write: (s: string) => (stdout += s), isTTY: false, columns: 200 },
        stderr: { write: (s: string) => (stderr += s) },
        signal: controller.signal,
      })
      return {
        code,
        stop: () => controller.abort(),
        url: () => /listening on (ws:\S+)/.exec(stdout)?.[1],
        stderr: () => stderr,
      }
    }
    const first = run()
    await until('listening', () => first.url() !== undefined)
    const producer = await client(first.url()!)
    for (let t = 0; t < 100; t++)
      producer.send({
        type: 'tick',
        key: 'a',
        x: [t % 7 === 0 ? null : Math.sin(t / 3)],
        y: Math.sin((t + 1) / 3),
        id: t,
      })
    await producer.waitFor((f) => f.id === 99)
    first.stop()
    expect(await first.code).toBe(0)

    const second = run()
    cleanups.push(async () => {
      second.stop()
      await second.code
    })
    await until('listening again', () => second.url() !== undefined || /error/i.test(second.stderr()))
    // Resumed, not refused: the sizes the flags imply match the checkpoint's model.
    expect(second.stderr()).toMatch(/resumed from/)
    expect(second.stderr()).not.toMatch(/error|but the checkpoint/i)
    const again = await client(second.url()!)
    again.send({ type: 'tick', key: 'a', x: [null], y: 0.1, id: 100 })
    const at = await again.waitFor((f) => f.id === 100)
    expect(again.frames[at]).toMatchObject({ type: 'prediction' })
    expect(Number.isFinite((again.frames[at]!.lower as number[])[0])).toBe(true)
    expect(again.frames[at]!.ahead).toHaveLength(2)
  })

  it("the memory budget at start counts each key's forecasting state", async () => {
    const base = {
      model: { cell: 'gru' as const, inputSize: 1, hiddenSize: 4, outputSize: 6, seed: 2 },
      trainer: { k1: 4, horizon: 6, loss: 'mse' as const, optimizer: { type: 'sgd' as const, lr: 0.01 } },
      port: 0,
      dashboard: false,
      maxKeys: 10_000,
    }
    const plain = await serve(base)
    const keyBytes = plain.keyed.bytesPerKey()
    await plain.close()
    // Room for twice the keys' windows (as the server counts them), not for 6 × 100 residuals each.
    const maxMemory = Math.round((2 * keyBytes + 512) * base.maxKeys * 2)
    const fits = await serve({ ...base, maxMemory })
    // A horizon alone remembers the last forecasts only (6 × 6 floats per key).
    expect(fits.forecasting!.bytesPerKey()).toBeLessThan(1000)
    await fits.close()
    await expect(serve({ ...base, maxMemory, forecasting: { coverage: 0.9 } })).rejects.toThrow(
      /may not fit in memory/,
    )
  })

  it('serve --nats takes the forecasting flags (the workers forecast) and goes on to connect; a bad one is refused first', async () => {
    const gateway = async (...flags: string[]) => {
      let stderr = ''
      const code = await runCli(
        ['serve', '--nats', 'nats://127.0.0.1:1', '--input-size', '1', '--output-size', '1', ...flags],
        {
          stdout: { write: () => true, isTTY: false, columns: 200 },
          stderr: { write: (s: string) => (stderr += s) },
          signal: new AbortController().signal,
        },
      )
      return { code, stderr }
    }
    const taken = await gateway('--coverage', '0.9', '--time-feature', '--missing', 'last')
    expect(taken.code).toBe(2)
    expect(taken.stderr).toMatch(/Cannot connect to NATS at nats:\/\/127\.0\.0\.1:1/)
    const bad = await gateway('--drift', 'adwin', '--on-drift', 'explode')
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/--on-drift/)
  })
})
