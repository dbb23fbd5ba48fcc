/**
 * The browser WebSocket client (`#websocket` under the `browser` condition) in real Chromium: the
 * `rxrnn/streams` bundle that a browser build gets connects to a `ws` server on 127.0.0.1, decodes
 * msgpack and JSON frames, sends through the queue, passes the token as ?token= and the subprotocols,
 * reconnects after the server drops it, and refuses what a browser cannot do (headers).
 */
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { chromium } from 'playwright-core'
import { describe, expect, it } from 'vitest'
import { WebSocketServer } from 'ws'
import { decodeFrame, encodeFrame } from '../../../streams/transport/codec.js'

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url))
const chromiumPath = '/usr/bin/chromium'
const hasChromium = existsSync(chromiumPath)
if (!hasChromium) console.warn(`skipping the browser WebSocket test: no Chromium at ${chromiumPath}`)

// Runs in the page: connect, collect what arrives and every status, send one tick once open.
const pageScript = `
import { webSocketConnection } from './streams/index.ts'
const url = new URL(location.href).searchParams.get('ws')
const result = { messages: [], states: [], headerRefused: '' }
globalThis.result = result
try {
  webSocketConnection(url, { token: 'abc', tokenIn: 'header' })
} catch (error) {
  result.headerRefused = error.code + ': ' + error.problems.join('; ')
}
const connection = webSocketConnection(url, {
  token: 'abc',
  protocols: ['rxrnn.v1'],
  reconnect: { initialDelayMs: 10, maxDelayMs: 20 },
})
connection.status$.subscribe((s) => {
  result.states.push(s.state)
  if (s.state === 'open') connection.send({ type: 'tick', key: 'k', x: new Float32Array([0.5, -2]), id: result.states.length })
})
connection.messages$.subscribe((m) => {
  result.messages.push(m instanceof Object && m.x instanceof Float32Array ? { ...m, x: ['Float32Array', ...m.x] } : m)
})
`

describe('webSocketConnection in a browser', () => {
  it.skipIf(!hasChromium)(
    'talks msgpack and JSON to a ws server, sends the token as ?token= with the subprotocol, and reconnects',
    async () => {
      const bundle = await build({
        stdin: { contents: pageScript, resolveDir: repoRoot, loader: 'ts', sourcefile: 'page.ts' },
        absWorkingDir: repoRoot,
        bundle: true,
        platform: 'browser',
        format: 'esm',
        write: false,
        logLevel: 'silent',
      })
      // The page comes from the same 127.0.0.1 server as the socket: an http:// origin, as an app's.
      const http = createServer((_request, response) => response.end('<!doctype html><title>ws</title>'))
      http.listen(0, '127.0.0.1')
      await once(http, 'listening')
      const server = new WebSocketServer({ server: http })
      const upgrades: { url: string; protocol: string }[] = []
      const received: unknown[] = []
      server.on('connection', (socket, request) => {
        upgrades.push({ url: request.url ?? '', protocol: socket.protocol })
        socket.send(encodeFrame({ type: 'prediction', key: 'k', x: new Float32Array([1.5, 2.5]) }, 'msgpack'))
        socket.send(encodeFrame({ type: 'welcome', n: upgrades.length }, 'json'))
        socket.on('message', (data, isBinary) => {
          const decoded = decodeFrame(data as Buffer, isBinary)
          received.push(decoded.ok ? decoded.value : decoded.error)
          // Drop the first connection once it has sent: the client must come back by itself.
          if (upgrades.length === 1) socket.terminate()
        })
      })
      const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] })
      try {
        const page = await browser.newPage()
        const errors: string[] = []
        page.on('pageerror', (error) => errors.push(error.message))
        const port = (http.address() as AddressInfo).port
        const wsUrl = `ws://127.0.0.1:${port}/stream`
        await page.goto(`http://127.0.0.1:${port}/?ws=${encodeURIComponent(wsUrl)}`)
        await page.addScriptTag({ content: bundle.outputFiles[0]!.text, type: 'module' })
        await page.waitForFunction(
          () => (globalThis as unknown as { result?: { messages: unknown[] } }).result!.messages.length >= 4,
          undefined,
          { timeout: 20_000 },
        )
        const result = (await page.evaluate(() => (globalThis as unknown as { result: unknown }).result)) as {
          messages: unknown[]
          states: string[]
          headerRefused: string
        }
        expect(errors).toEqual([])
        expect(result.headerRefused).toMatch(/^bad_config: tokenIn 'header' needs a header/)
        expect(upgrades.slice(0, 2)).toEqual([
          { url: '/stream?token=abc', protocol: 'rxrnn.v1' },
          { url: '/stream?token=abc', protocol: 'rxrnn.v1' },
        ])
        expect(result.messages.slice(0, 4)).toEqual([
          { type: 'prediction', key: 'k', x: ['Float32Array', 1.5, 2.5] },
          { type: 'welcome', n: 1 },
          { type: 'prediction', key: 'k', x: ['Float32Array', 1.5, 2.5] },
          { type: 'welcome', n: 2 },
        ])
        expect(result.states.slice(0, 5)).toEqual([
          'connecting',
          'open',
          'closed',
          'reconnecting',
          'connecting',
        ])
        expect(result.states).toContain('open')
        expect(received[0]).toEqual({ type: 'tick', key: 'k', x: new Float32Array([0.5, -2]), id: 2 })
      } finally {
        await browser.close()
        for (const client of server.clients) client.terminate()
        await new Promise((resolve) => server.close(resolve))
        await new Promise((resolve) => http.close(resolve))
      }
    },
    60_000,
  )
})
