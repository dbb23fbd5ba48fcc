import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { type RxrnnServer, serve } from '../../../streams/server/server.js'

const chromiumPath = '/usr/bin/chromium'
const hasChromium = existsSync(chromiumPath)

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

interface InPage {
  __rxrnnDashboard: { status(): string; pointCount(): Record<string, number | undefined> }
  document: { getElementById(id: string): { textContent: string | null } | null }
}

/** A server forecasting 4 ticks ahead with 90 % intervals and drift detection (reset on drift). */
async function start(): Promise<RxrnnServer> {
  const server = await serve({
    model: { cell: 'gru', inputSize: 1, hiddenSize: 12, outputSize: 4, seed: 3 },
    trainer: { k1: 4, k2: 7, horizon: 4, loss: 'mse', optimizer: { type: 'adam', lr: 0.01 }, clipNorm: 1 },
    forecasting: { coverage: 0.9, drift: { response: 'reset' } },
    metricsIntervalMs: 200,
  })
  cleanups.push(() => server.close())
  return server
}

/** A sine whose amplitude jumps fivefold at tick 1500, with a spike at tick 900; waits for every answer. */
async function replay(url: string, ticks: number): Promise<void> {
  const ws = new WebSocket(url)
  cleanups.push(() => ws.terminate())
  await once(ws, 'open')
  const value = (t: number) => (t < 1500 ? 1 : 5) * Math.sin(t / 4) + (t === 900 ? 4 : 0)
  let answered = 0
  const done = new Promise<void>((resolve) => {
    ws.on('message', () => {
      if (++answered === ticks) resolve()
    })
  })
  for (let t = 0; t < ticks; t += 20) {
    for (let s = t; s < Math.min(ticks, t + 20); s++)
      ws.send(JSON.stringify({ type: 'tick', key: 'k', x: [value(s)], y: value(s + 1), id: s }))
    await new Promise((resolve) => setTimeout(resolve, 4))
  }
  await done
}

describe.skipIf(!hasChromium)(`dashboard forecasting views in a real browser (${chromiumPath})`, () => {
  let browser: Browser
  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: ['--headless', '--no-sandbox', '--disable-gpu'],
    })
  })
  afterAll(async () => {
    await browser?.close()
  })

  it('draws the interval band, anomaly and drift marks, the horizon fan, and the realised coverage', async () => {
    const server = await start()
    const page: Page = await browser.newPage({ viewport: { width: 1440, height: 900 } })
    cleanups.push(() => page.close())
    const errors: string[] = []
    page.on('pageerror', (error) => errors.push(error.message))
    await page.goto(`http://127.0.0.1:${server.port}/`)
    await page.waitForFunction(() => (globalThis as unknown as InPage).__rxrnnDashboard.status() === 'live')
    await replay(server.url, 1700)
    await page.waitForFunction(
      () => {
        const c = (globalThis as unknown as InPage).__rxrnnDashboard.pointCount()
        return (c.interval ?? 0) >= 100 && (c.anomalies ?? 0) >= 1 && (c.drifts ?? 0) >= 1 && c.horizon === 4
      },
      undefined,
      { timeout: 20_000 },
    )
    await page.waitForFunction(() =>
      /^\d+\.\d%$/.test(
        (globalThis as unknown as InPage).document.getElementById('t-coverage')?.textContent ?? '',
      ),
    )
    const coverage = Number((await page.textContent('#t-coverage'))!.replace('%', ''))
    expect(Math.abs(coverage - 90)).toBeLessThan(6)
    // The tiles follow the metrics frames (every 200 ms here).
    await page.waitForFunction(
      () => Number((globalThis as unknown as InPage).document.getElementById('t-drifts')?.textContent) >= 1,
    )
    expect(errors).toEqual([])
  })
})
