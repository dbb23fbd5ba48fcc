/**
 * The live dashboard under load: is the page still smooth while a producer pushes 10,000 ticks/s?
 *
 *   npx tsx bench/dashboard.ts [seconds=5] [rate=10000]
 *
 * The server is bench/sections/e2e-server.ts (the benchmark model, LSTM 8 → 64 → 1 on wasm, or js
 * when wasm cannot be built; diagnosticsEvery 0) in a CHILD process, so that it has its own event
 * loop. The dashboard page (GET /) is opened in headless chromium (/usr/bin/chromium, the launch
 * flags of test/streams/dashboard.test.ts); it subscribes with maxRate 400, so the server samples
 * predictions, updates and hidden frames to at most 400/s each. This process is the producer: one
 * connection, pre-encoded msgpack ticks with targets over 4 keys, paced to `rate` in small batches
 * (what is due every 2 ms, at most 1,000 ticks unanswered), for `seconds`.
 *
 * Measured in the page, over 1 s idle and then over the run: requestAnimationFrame gaps (p50, p95,
 * max), long tasks (PerformanceObserver 'longtask'), frames the page received per second (its own
 * count, __rxrnnDashboard.stats().frames) and its redraws. From the server (metrics frames): events,
 * sampledOut (frames maxRate left out) and dropped. The bar: rAF p95 ≤ 50 ms under load.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import { WebSocket } from 'ws'
import { encodeFrame } from '../streams/transport/codec.js'
import { INPUTS, STREAM_LENGTH, TARGETS } from './sections/common.js'

const SECONDS = Number(process.argv[2] ?? 5)
const RATE = Number(process.argv[3] ?? 10_000)
const KEYS = ['k0', 'k1', 'k2', 'k3']
const PACE_MS = 2
const MAX_IN_FLIGHT = 1000
const here = dirname(fileURLToPath(import.meta.url))

/** What the script installs in the page (functions sent by page.evaluate: the CSP forbids eval). */
interface Probe {
  gaps: number[]
  longTasks: number[]
  longTaskSupported: boolean
}
interface InPage {
  __bench: Probe
  __rxrnnDashboard: { status(): string; stats(): { draws: number; frames: number; drawMs: { max: number } } }
  requestAnimationFrame(callback: (time: number) => void): number
  PerformanceObserver: {
    new (
      callback: (list: { getEntries(): { duration: number }[] }) => void,
    ): { observe(options: { type: string }): void }
    supportedEntryTypes: readonly string[]
  }
}

interface Metrics {
  events: number
  sampledOut: number
  dropped: number
}

// --- the server, in its own process ---------------------------------------------------------
const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'sections', 'e2e-server.ts'), 'wasm'], {
  cwd: join(here, '..'),
  stdio: ['pipe', 'pipe', 'inherit'],
})
const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string]
const info = JSON.parse(line) as { port: number; backend: string; fallback?: string }
const stopServer = async () => {
  if (child.exitCode !== null) return
  child.kill('SIGTERM')
  await once(child, 'exit')
}

// A metrics subscriber (no maxRate): re-subscribing answers with a metrics frame at once.
const watcher = new WebSocket(`ws://127.0.0.1:${info.port}`, { perMessageDeflate: false })
await once(watcher, 'open')
const metricsNow = async (): Promise<Metrics> => {
  const reply = new Promise<Metrics>((resolve) => {
    const onMessage = (data: Buffer) => {
      const frame = JSON.parse(String(data)) as { type: string } & Metrics
      if (frame.type !== 'metrics') return
      watcher.off('message', onMessage)
      resolve(frame)
    }
    watcher.on('message', onMessage)
  })
  watcher.send(JSON.stringify({ type: 'subscribe', channels: ['metrics'] }))
  return reply
}

// --- the page -------------------------------------------------------------------------------
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--no-first-run',
  ],
})
const page = await browser.newPage({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 })
const pageErrors: string[] = []
page.on('pageerror', (error) => pageErrors.push(error.message))
await page.goto(`http://127.0.0.1:${info.port}/`)
await page.waitForFunction(() => (globalThis as unknown as InPage).__rxrnnDashboard.status() === 'live')
// tsx (esbuild, keepNames) wraps named inner functions in __name(…), which the page lacks.
await page.evaluate(() => {
  ;(globalThis as unknown as { __name: (f: unknown) => unknown }).__name = (f) => f
})
await page.evaluate(() => {
  const g = globalThis as unknown as InPage
  const probe: Probe = { gaps: [], longTasks: [], longTaskSupported: false }
  g.__bench = probe
  let last = -1
  const frame = (time: number) => {
    if (last >= 0) probe.gaps.push(time - last)
    last = time
    g.requestAnimationFrame(frame)
  }
  g.requestAnimationFrame(frame)
  if (g.PerformanceObserver.supportedEntryTypes.includes('longtask')) {
    probe.longTaskSupported = true
    new g.PerformanceObserver((list) => {
      for (const entry of list.getEntries()) probe.longTasks.push(entry.duration)
    }).observe({ type: 'longtask' })
  }
})

/** The page's probe since the last call (and resets it), and the dashboard's own counts. */
const sample = () =>
  page.evaluate(() => {
    const g = globalThis as unknown as InPage
    const { gaps, longTasks, longTaskSupported } = g.__bench
    g.__bench.gaps = []
    g.__bench.longTasks = []
    return { gaps, longTasks, longTaskSupported, stats: g.__rxrnnDashboard.stats() }
  })

// --- the producer ---------------------------------------------------------------------------
const total = Math.ceil(RATE * SECONDS)
const frames = Array.from({ length: total }, (_, id) => {
  const e = id % STREAM_LENGTH
  return encodeFrame(
    { type: 'tick', key: KEYS[id % KEYS.length]!, x: INPUTS[e]!, y: TARGETS[e]![0]!, id },
    'msgpack',
  )
})
const producer = new WebSocket(`ws://127.0.0.1:${info.port}`, { perMessageDeflate: false })
await once(producer, 'open')
let answered = 0
producer.on('message', () => {
  answered++
})
const turn = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

// Idle baseline: 1 s with the page live and no ticks.
const idleStart = (await sample()).stats
await turn(1000)
const idle = await sample()

const before = await metricsNow()
const pageBefore = (await sample()).stats
const cpuBefore = process.cpuUsage()
const start = performance.now()
let sent = 0
let stalls = 0
while (sent < total) {
  const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * RATE))
  const allowed = Math.min(due, answered + MAX_IN_FLIGHT)
  if (allowed < due) stalls++
  while (sent < allowed) producer.send(frames[sent++]!)
  await turn(PACE_MS)
}
const sendSeconds = (performance.now() - start) / 1000
const answeredAtEnd = answered
const load = await sample()
const loadSeconds = (performance.now() - start) / 1000
const after = await metricsNow()
const cpu = process.cpuUsage(cpuBefore)
const drainDeadline = performance.now() + 5000
while (answered < sent && performance.now() < drainDeadline) await turn(10)

producer.terminate()
watcher.terminate()
await browser.close()
await stopServer()

// --- the report -----------------------------------------------------------------------------
const pct = (sorted: number[], p: number) =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '–')
const row = (name: string, s: Awaited<ReturnType<typeof sample>>, seconds: number, prev: typeof s.stats) => {
  const gaps = [...s.gaps].sort((a, b) => a - b)
  return {
    phase: name,
    'rAF frames': gaps.length,
    'gap p50 ms': f1(pct(gaps, 0.5)),
    'gap p95 ms': f1(pct(gaps, 0.95)),
    'gap max ms': f1(gaps.at(-1) ?? Number.NaN),
    'long tasks': s.longTaskSupported ? s.longTasks.length : 'n/a',
    'long task max ms': s.longTaskSupported ? f1(Math.max(0, ...s.longTasks)) : 'n/a',
    'frames in /s': Math.round((s.stats.frames - prev.frames) / seconds),
    'redraws /s': Math.round((s.stats.draws - prev.draws) / seconds),
    'draw max ms': f1(s.stats.drawMs.max),
  }
}
console.log(
  `dashboard bench: ${cpus().length} CPUs, load avg ${loadavg()[0]!.toFixed(2)}; server ${info.backend}` +
    `${info.fallback ? ` (wasm unavailable: ${info.fallback})` : ''} in a child process; ` +
    `${RATE} ticks/s target over ${KEYS.length} keys for ${SECONDS} s`,
)
console.table([row('idle 1 s', idle, 1, idleStart), row(`load ${SECONDS} s`, load, loadSeconds, pageBefore)])
const p95 = pct(
  [...load.gaps].sort((a, b) => a - b),
  0.95,
)
console.table({
  'ticks sent': sent,
  'sent /s': Math.round(sent / sendSeconds),
  'answered /s (during run)': Math.round(answeredAtEnd / loadSeconds),
  'server events (metrics)': after.events - before.events,
  'server sampledOut': after.sampledOut - before.sampledOut,
  'server dropped': after.dropped - before.dropped,
  'pacing stalls (in-flight cap hit)': stalls,
  'answered after drain': answered,
  'producer CPU s': ((cpu.user + cpu.system) / 1e6).toFixed(2),
})
console.log(
  `verdict: rAF p95 ${f1(p95)} ms under load — ${p95 <= 50 ? 'smooth (≤ 50 ms)' : 'NOT smooth (> 50 ms)'}; ` +
    `achieved ${Math.round(answeredAtEnd / loadSeconds)} of ${RATE} ticks/s` +
    (pageErrors.length ? `; page errors: ${pageErrors.join(' | ')}` : ''),
)
