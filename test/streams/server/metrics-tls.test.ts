/**
 * `GET /metrics` (Prometheus text, behind the token, one registry per server) and TLS
 * (`--tls-cert` / `--tls-key`: https and wss on the same port), against real servers.
 */
import { readFileSync, rmSync } from 'node:fs'
import { get } from 'node:https'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import type { ModelConfig, TrainerOptions } from '../../../src/index.js'
import { type RxrnnServer, type ServeOptions, serve } from '../../../streams/server/server.js'
import { startServeProcess, stopProcess } from '../../helpers/cli-process.js'
import { opensslSkipMessage, selfSigned } from '../../helpers/self-signed.js'
import { FrameClient } from '../../helpers/wire-client.js'

const MODEL: ModelConfig = { cell: 'gru', inputSize: 2, hiddenSize: 4, outputSize: 1, seed: 1 }
const TRAINER: TrainerOptions = { k1: 2, loss: 'mse', optimizer: { type: 'adam', lr: 1e-2 } }
const TOKEN = 'metrics-token-0123456789'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function start(options: Partial<ServeOptions> = {}): Promise<RxrnnServer> {
  const server = await serve({ model: MODEL, trainer: TRAINER, ...options })
  cleanups.push(() => server.close())
  return server
}

async function feed(server: RxrnnServer, n: number, options = {}): Promise<void> {
  const client = await FrameClient.openWith(server.url, options)
  for (let i = 0; i < n; i++) client.send({ type: 'tick', key: `k${i % 3}`, x: [i, 1], y: 0.5, id: i })
  client.send({ type: 'tick', key: 'k0', x: [1], id: n })
  await client.waitFor((f) => f.id === n)
  await client.close()
}

const value = (text: string, name: string): number =>
  Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1])

describe('GET /metrics', () => {
  it('serves the Prometheus text format: the fixed rxrnn_ names, the operator figures and the process metrics', async () => {
    const server = await start()
    await feed(server, 12)
    const res = await fetch(`http://127.0.0.1:${server.port}/metrics`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    const text = await res.text()
    expect(value(text, 'rxrnn_ticks_total')).toBe(12)
    expect(value(text, 'rxrnn_updates_total')).toBeGreaterThanOrEqual(3)
    expect(value(text, 'rxrnn_keys')).toBe(3)
    expect(value(text, 'rxrnn_connections')).toBeGreaterThanOrEqual(0)
    expect(text).toMatch(/^rxrnn_rejected_frames_total\{code="bad_input"\} 1$/m)
    for (const name of [
      'rxrnn_loss',
      'rxrnn_grad_norm',
      'rxrnn_clip_rate',
      'rxrnn_skipped_updates_total',
      'rxrnn_rolled_back_updates_total',
      'rxrnn_dropped_frames_total',
      'rxrnn_sampled_out_frames_total',
      'rxrnn_evicted_keys_total',
      'rxrnn_slow_subscribers_closed_total',
      'rxrnn_tick_duration_seconds_bucket',
      'nodejs_eventloop_lag_seconds',
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
    ]) {
      expect(text).toMatch(new RegExp(`^${name}[ {]`, 'm'))
    }
    expect(value(text, 'rxrnn_tick_duration_seconds_count')).toBe(12)
  })

  it('is behind the token (Prometheus sends it as a bearer token)', async () => {
    const server = await start({ token: TOKEN })
    const url = `http://127.0.0.1:${server.port}/metrics`
    expect((await fetch(url)).status).toBe(401)
    const ok = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } })
    expect(ok.status).toBe(200)
    expect(await ok.text()).toMatch(/^rxrnn_ticks_total 0$/m)
  })

  it('two servers in one process keep their own registries', async () => {
    const a = await start()
    const b = await start()
    await feed(a, 5)
    await feed(b, 9)
    const text = async (s: RxrnnServer) => (await fetch(`http://127.0.0.1:${s.port}/metrics`)).text()
    expect(value(await text(a), 'rxrnn_ticks_total')).toBe(5)
    expect(value(await text(b), 'rxrnn_ticks_total')).toBe(9)
  })
})

const tls = selfSigned()
afterAll(() => {
  if (tls) rmSync(tls.dir, { recursive: true, force: true })
})
if (!tls) console.warn(opensslSkipMessage)

describe.skipIf(!tls)('TLS', () => {
  it('serves wss:// and https:// (the dashboard and /metrics) on one port with --tls-cert and --tls-key', async () => {
    const server = await start({ tls: { cert: tls!.cert, key: tls!.key } })
    expect(server.url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/)
    await feed(server, 4, { ca: tls!.cert })
    const page = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      get(`https://127.0.0.1:${server.port}/`, { ca: tls!.cert }, (res) => {
        let body = ''
        res.setEncoding('utf8').on('data', (c: string) => {
          body += c
        })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      }).on('error', reject)
    })
    expect(page.status).toBe(200)
    expect(page.body).toContain('rxrnn')
    // A plain-text client on the TLS port gets nowhere, and the server goes on.
    await expect(fetch(`http://127.0.0.1:${server.port}/`)).rejects.toThrow()
    await feed(server, 2, { ca: tls!.cert })
  })

  it('rxrnn serve --tls-cert --tls-key prints a wss:// url', async () => {
    const cert = join(tls!.dir, 'cert.pem')
    const key = join(tls!.dir, 'key.pem')
    const child = await startServeProcess([
      '--input-size',
      '2',
      '--output-size',
      '1',
      '--port',
      '0',
      '--quiet',
      '--tls-cert',
      cert,
      '--tls-key',
      key,
    ])
    cleanups.push(() => stopProcess(child))
    expect(child.url).toMatch(/^wss:\/\//)
    const client = await FrameClient.openWith(child.url, { ca: readFileSync(cert) })
    await client.fence(1)
    await client.close()
  })
})
