import { once } from 'node:events'
import { existsSync, mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import type { ModelConfig, TrainerOptions } from '../../../src/index.js'
import { type RxrnnServer, type ServeOptions, serve } from '../../../streams/server/server.js'

const chromiumPath = '/usr/bin/chromium'
const hasChromium = existsSync(chromiumPath)
// The README's picture is refreshed only on request, so a test run leaves the tree clean.
const screenshotPath = fileURLToPath(
  new URL(
    process.env.RXRNN_UPDATE_SCREENSHOTS ? '../../docs/dashboard.png' : '../../.tmp/dashboard.png',
    import.meta.url,
  ),
)

const model: ModelConfig = { cell: 'gru', inputSize: 1, hiddenSize: 24, numLayers: 2, outputSize: 1, seed: 7 }
const trainer: TrainerOptions = {
  k1: 8,
  k2: 24,
  loss: 'mse',
  optimizer: { type: 'adam', lr: 0.01 },
  clipNorm: 0.5,
}

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** What the servers logged that would mean a bug (internal errors). */
const serverFailures: string[] = []
const log = (line: string) => {
  if (line.includes('internal error')) serverFailures.push(line)
}

async function start(options: Partial<ServeOptions> = {}): Promise<RxrnnServer> {
  const server = await serve({ model, trainer, metricsIntervalMs: 200, log, ...options })
  cleanups.push(() => server.close())
  return server
}

const pageUrl = (server: RxrnnServer, path = '/') => `http://127.0.0.1:${server.port}${path}`

/** Opens a WebSocket; resolves when open, rejects with the server's refusal. */
async function open(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url)
  cleanups.push(() => ws.terminate())
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  return ws
}

async function request(ws: WebSocket, frame: object): Promise<Record<string, unknown>> {
  const reply = once(ws, 'message')
  ws.send(JSON.stringify(frame))
  const [data] = await reply
  return JSON.parse(String(data))
}

/** A seeded noisy two-tone wave per key: x = v_t, target y = v_{t+1}. */
function noisyWave(phase: number, seed: number): (t: number) => number {
  let s = seed >>> 0
  const noise = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32 - 0.5
  }
  const values: number[] = []
  return (t) => {
    while (values.length <= t) {
      const u = values.length
      values.push(
        Math.sin((2 * Math.PI * u) / 20 + phase) + 0.4 * Math.sin((2 * Math.PI * u) / 150) + 0.1 * noise(),
      )
    }
    return values[t]!
  }
}

/**
 * Replays a feed as a real producer: `ticks` per key in small batches, with targets, and waits
 * for every prediction to come back.
 */
async function replay(url: string, keys: string[], ticks: number, batch = 10, pauseMs = 6) {
  const ws = await open(url)
  const waves = keys.map((_, i) => noisyWave(i * 1.3, 1000 + i))
  let answered = 0
  const done = new Promise<void>((resolve) => {
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data))
      if (frame.type === 'error') throw new Error(`the server refused a tick: ${frame.message}`)
      if (++answered === keys.length * ticks) resolve()
    })
  })
  for (let t = 0; t < ticks; t += batch) {
    for (let step = t; step < Math.min(ticks, t + batch); step++) {
      keys.forEach((key, i) => {
        const wave = waves[i]!
        ws.send(JSON.stringify({ type: 'tick', key, x: [wave(step)], y: wave(step + 1), id: step }))
      })
    }
    await new Promise((resolve) => setTimeout(resolve, pauseMs))
  }
  await done
  ws.close()
}

/**
 * What checks running inside the page read: the probe app.ts exposes, and a little DOM. Those
 * checks are functions Playwright sends to the page, so they must be self-contained (no helpers
 * from this module) and cast globalThis themselves; this project's types know no DOM.
 */
interface InPage {
  __rxrnnDashboard: {
    status(): string
    keys(): string[]
    selected(): string | null
    pointCount(): Record<string, number | undefined>
  }
  document: {
    getElementById(id: string): { textContent: string | null } | null
    querySelector(selector: string): { textContent: string | null } | null
  }
}

describe('dashboard over HTTP', () => {
  it('serves the page on GET / and its assets, while upgrades stay WebSocket', async () => {
    const server = await start()

    const page = await fetch(pageUrl(server))
    expect(page.status).toBe(200)
    expect(page.headers.get('content-type')).toMatch(/^text\/html/)
    const html = await page.text()
    expect(html).toContain('<title>rxrnn · live dashboard</title>')
    expect(html).toContain('src="dashboard/uPlot.iife.min.js"')
    expect(html).toContain('src="dashboard/app.js"')
    expect(html).toContain('data-auth="none"')
    expect((await fetch(pageUrl(server, '/index.html'))).status).toBe(200)

    const uplot = await fetch(pageUrl(server, '/dashboard/uPlot.iife.min.js'))
    expect(uplot.status).toBe(200)
    expect(uplot.headers.get('content-type')).toMatch(/^text\/javascript/)
    expect(await uplot.text()).toMatch(/uPlot/)
    const css = await fetch(pageUrl(server, '/dashboard/uPlot.min.css'))
    expect(css.headers.get('content-type')).toMatch(/^text\/css/)
    expect(await css.text()).toContain('.uplot')
    const app = await fetch(pageUrl(server, '/dashboard/app.js'))
    expect(app.headers.get('content-type')).toMatch(/^text\/javascript/)
    expect(await app.text()).toContain('__rxrnnDashboard')
    const style = await fetch(pageUrl(server, '/dashboard/style.css'))
    expect(style.headers.get('content-type')).toMatch(/^text\/css/)

    expect((await fetch(pageUrl(server, '/nothing-here'))).status).toBe(404)
    expect((await fetch(pageUrl(server), { method: 'POST' })).status).toBe(405)
    const head = await fetch(pageUrl(server), { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(await head.text()).toBe('')

    const ws = await open(server.url)
    const welcome = await request(ws, { type: 'hello', id: 3 })
    expect(welcome).toMatchObject({ type: 'welcome', id: 3, model: { cell: 'gru', hiddenSize: 24 } })
  })

  it('on a token-protected server, the page still loads and asks for the token; the socket needs it', async () => {
    const server = await start({ token: 's3cret-0123456789abcdef' })

    const html = await (await fetch(pageUrl(server))).text()
    expect(html).toContain('data-auth="token"')
    expect(html).toContain('id="token-dialog"')
    expect(html).not.toContain('s3cret-0123456789abcdef')
    expect((await fetch(pageUrl(server, '/dashboard/uPlot.iife.min.js'))).status).toBe(200)

    const verdict = async (token: string) =>
      (
        await fetch(pageUrl(server, '/dashboard/auth'), { headers: { authorization: `Bearer ${token}` } })
      ).json()
    expect(await verdict('wrong')).toEqual({ ok: false })
    expect(await verdict('s3cret-0123456789abcdef')).toEqual({ ok: true })

    await expect(open(server.url)).rejects.toThrow(/401/)
    const ws = await open(`${server.url}/?token=s3cret-0123456789abcdef`)
    expect(await request(ws, { type: 'hello' })).toMatchObject({ type: 'welcome' })
  })

  it('leaves GET / to the caller with dashboard: false, and routes of `http` come first', async () => {
    const off = await start({ dashboard: false })
    expect((await fetch(pageUrl(off))).status).toBe(404)

    const custom = await start({
      http: (req, res) => {
        if (req.url !== '/') return false
        res.writeHead(200, { 'content-type': 'text/plain' }).end('mine')
        return true
      },
    })
    expect(await (await fetch(pageUrl(custom))).text()).toBe('mine')
    expect((await fetch(pageUrl(custom, '/dashboard/app.js'))).status).toBe(200)
  })
})

describe.skipIf(!hasChromium)(`dashboard in a real browser (${chromiumPath})`, () => {
  let browser: Browser

  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
      ],
    })
  })

  afterAll(async () => {
    await browser?.close()
  })

  /** A page that records console errors and uncaught exceptions. */
  async function openPage(width = 1440, height = 900): Promise<{ page: Page; errors: string[] }> {
    const page = await browser.newPage({ viewport: { width, height }, deviceScaleFactor: 1 })
    cleanups.push(() => page.close())
    const errors: string[] = []
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text())
    })
    page.on('pageerror', (error) => errors.push(error.message))
    return { page, errors }
  }

  // Functions, not strings: the page's CSP forbids eval, which Playwright needs for string predicates.
  const until = (page: Page, check: () => unknown, timeout = 15_000) =>
    page.waitForFunction(check, undefined, { timeout })
  const status = (page: Page) =>
    page.evaluate(() => (globalThis as unknown as InPage).__rxrnnDashboard.status())

  it('charts a live feed: predictions, losses, gradients, gradient flow, hidden state, throughput', async () => {
    const server = await start()
    const { page, errors } = await openPage()
    await page.goto(pageUrl(server))
    await until(page, () => (globalThis as unknown as InPage).__rxrnnDashboard.status() === 'live')

    await replay(server.url, ['sine-a', 'sine-b'], 2400)
    // What the charts hold, as drawn (uPlot's data), once the feed has gone through.
    // The page subscribes with maxRate 400: a fast replay reaches it sampled (≥ 400 frames a
    // second per channel for both keys together), so the minimums hold however fast it ran.
    const minimum = {
      prediction: 150,
      target: 150,
      loss: 60,
      gradNorm: 60,
      flow: 8,
      gain: 60,
      rho: 60,
      error: 3,
      throughput: 3,
      connections: 3,
      heatmap: 60,
    }
    await page.waitForFunction(
      (min) => {
        const counts = (globalThis as unknown as InPage).__rxrnnDashboard.pointCount()
        return Object.entries(min).every(([chart, n]) => (counts[chart] ?? 0) >= n)
      },
      minimum,
      { timeout: 30_000 },
    )
    expect(await page.evaluate(() => (globalThis as unknown as InPage).__rxrnnDashboard.keys())).toEqual([
      'sine-a',
      'sine-b',
    ])
    expect(await page.evaluate(() => (globalThis as unknown as InPage).__rxrnnDashboard.selected())).toBe(
      'sine-a',
    )
    expect(await page.textContent('#model')).toContain('GRU 1 → 24 × 2 layers → 1')
    expect(await page.textContent('#t-events')).not.toBe('–')
    expect(await page.textContent('#gain-badge')).toMatch(
      /latest ln-gain [-+]\d\.\d{3} \/ step .* · (vanishing|exploding)/,
    )
    // The throughput figures are sampled: wait until a metrics frame has seen the whole feed.
    await until(
      page,
      () => (globalThis as unknown as InPage).document.getElementById('t-events')?.textContent === '4800',
    )

    mkdirSync(dirname(screenshotPath), { recursive: true })
    await page.screenshot({ path: screenshotPath, fullPage: true })
    expect(existsSync(screenshotPath)).toBe(true)

    await page.selectOption('#key', 'sine-b')
    await until(
      page,
      () =>
        (globalThis as unknown as InPage).document.querySelector('[data-key]')?.textContent === 'key sine-b',
    )
    expect(errors).toEqual([])
    expect(serverFailures).toEqual([])
  })

  it('asks for the token on a protected server, refuses a wrong one, and connects with the right one', async () => {
    const server = await start({ token: 's3cret-0123456789abcdef' })
    const { page, errors } = await openPage()
    await page.goto(pageUrl(server))
    await page.waitForSelector('#token-dialog[open]')
    expect(await status(page)).toBe('token')

    await page.fill('#token-input', 'wrong')
    await page.click('#token-dialog button[type=submit]')
    await until(page, () =>
      (globalThis as unknown as InPage).document
        .getElementById('token-error')
        ?.textContent?.includes('refused'),
    )
    await page.fill('#token-input', 's3cret-0123456789abcdef')
    await page.click('#token-dialog button[type=submit]')
    await until(page, () => (globalThis as unknown as InPage).__rxrnnDashboard.status() === 'live')
    expect(await page.isVisible('#token-dialog')).toBe(false)

    await replay(`${server.url}/?token=s3cret-0123456789abcdef`, ['k'], 200)
    await until(
      page,
      () => ((globalThis as unknown as InPage).__rxrnnDashboard.pointCount().prediction ?? 0) >= 150,
    )
    expect(errors).toEqual([])
  })

  it('reconnects by itself when the server restarts', async () => {
    const first = await serve({ model, trainer, metricsIntervalMs: 200, log })
    const port = first.port
    const { page } = await openPage()
    await page.goto(`http://127.0.0.1:${port}/`)
    await until(page, () => (globalThis as unknown as InPage).__rxrnnDashboard.status() === 'live')

    await first.close()
    await until(page, () => (globalThis as unknown as InPage).__rxrnnDashboard.status() === 'reconnecting')
    const second = await start({ port })
    await until(page, () => (globalThis as unknown as InPage).__rxrnnDashboard.status() === 'live', 20_000)
    await replay(second.url, ['after-restart'], 100)
    await until(page, () =>
      (globalThis as unknown as InPage).__rxrnnDashboard.keys().includes('after-restart'),
    )
  })
})
