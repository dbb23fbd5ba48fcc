/**
 * The gateway (`rxrnn serve --nats`) is as safe as `serve`: the attacks of issue 15 against a real
 * gateway on a real nats-server with a real worker behind it (skipped, saying so, without
 * nats-server): pages on other origins, DNS rebinding, token guessing, request targets that used
 * to crash `serve`, hostile frames, key floods, connection floods and dead peers, `/metrics`
 * behind the token, TLS, and the same flags on the command line.
 */
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type WebSocket from 'ws'
import {
  type GatewayOptions,
  type RxrnnGateway,
  serveGateway,
} from '../../../../streams/server/nats/gateway.js'
import { type RxrnnWorker, startWorker } from '../../../../streams/server/nats/worker.js'
import { startServeProcess, stopProcess } from '../../../helpers/cli-process.js'
import {
  type NatsServer,
  natsServerPath,
  natsSkipMessage,
  startNatsServer,
} from '../../../helpers/nats-server.js'
import { opensslSkipMessage, selfSigned } from '../../../helpers/self-signed.js'
import { FrameClient, rawHttp, rawWebSocket, upgradeStatus, waitUntil } from '../../../helpers/wire-client.js'

const PARTITIONS = 2
const TOKEN = 'a-token-of-24-characters'
const BEARER = { authorization: `Bearer ${TOKEN}` }
const model = { cell: 'gru' as const, inputSize: 2, hiddenSize: 4, outputSize: 1, seed: 3 }
const trainer = { k1: 4, loss: 'mse' as const, optimizer: { type: 'adam' as const, lr: 0.01 } }

if (natsServerPath === null) console.warn(natsSkipMessage)

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

describe.skipIf(natsServerPath === null)('the gateway takes serve’s security', () => {
  let nats: NatsServer
  let dir: string
  let worker: RxrnnWorker
  let nextId = 1

  beforeAll(async () => {
    nats = await startNatsServer()
    dir = await mkdtemp(join(tmpdir(), 'rxrnn-gateway-security-'))
    worker = await startWorker({
      servers: nats.url,
      partitions: PARTITIONS,
      checkpointDir: dir,
      model,
      trainer,
      metricsIntervalMs: 50,
      streamMaxAgeMs: 3_600_000,
    })
  })

  afterAll(async () => {
    await worker?.close()
    await nats?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  async function start(options: Partial<GatewayOptions> = {}): Promise<RxrnnGateway & { logs: string[] }> {
    const logs: string[] = []
    const gateway = await serveGateway({
      servers: nats.url,
      partitions: PARTITIONS,
      expect: { inputSize: 2, outputSize: 1, task: 'regression' },
      metricsIntervalMs: 50,
      log: (line) => logs.push(line),
      ...options,
    })
    cleanups.push(() => gateway.close())
    return Object.assign(gateway, { logs })
  }

  async function open(url: string, options: WebSocket.ClientOptions = {}): Promise<FrameClient> {
    const client = await FrameClient.openWith(url, options)
    cleanups.push(() => client.close())
    return client
  }

  /** The gateway still serves: a tick goes through NATS to the worker and its prediction comes back. */
  async function answered(client: FrameClient): Promise<void> {
    const id = nextId++
    client.send({ type: 'tick', key: 'alive', x: [0.5, -0.5], y: 0.1, id })
    await client.waitFor((f) => f.type === 'prediction' && f.id === id && f.key === 'alive')
  }

  const request = (target: string, extra = '') => `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\n`
  const upgrade =
    'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n'

  it('refuses WebSockets from pages on other origins (403), token or not; accepts its own origin, --allow-origin and programs', async () => {
    const gateway = await start({ token: TOKEN, allowOrigins: ['https://app.example.com'] })
    expect(await upgradeStatus(gateway.url, { origin: 'https://evil.example', headers: BEARER })).toBe(403)
    expect(await upgradeStatus(`${gateway.url}/?token=${TOKEN}`, { origin: 'https://evil.example' })).toBe(
      403,
    )
    expect(await upgradeStatus(gateway.url, { origin: 'null', headers: BEARER })).toBe(403)
    expect(
      await upgradeStatus(gateway.url, { origin: `http://127.0.0.1:${gateway.port}`, headers: BEARER }),
    ).toBe(101)
    expect(await upgradeStatus(gateway.url, { origin: 'https://app.example.com', headers: BEARER })).toBe(101)
    expect(await upgradeStatus(gateway.url, { headers: BEARER })).toBe(101)
    // The refused pages published nothing into the partition streams.
    expect(gateway.metrics().published).toBe(0)
    expect(gateway.logs.join('\n')).toMatch(/refused 127\.0\.0\.1: Origin "https:\/\/evil\.example"/)
  })

  it('on a loopback listener, a Host that is not a loopback name gets 403 on every route and upgrade; --allowed-host adds names', async () => {
    const gateway = await start({ allowedHosts: ['rxrnn.internal'] })
    for (const host of ['evil.example', `evil.example:${gateway.port}`, '10.0.0.1']) {
      for (const path of ['/', '/metrics', '/dashboard/auth']) {
        expect(await rawHttp(gateway.port, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`)).toMatch(
          /^HTTP\/1\.1 403 /,
        )
      }
      expect(await upgradeStatus(gateway.url, { headers: { host } })).toBe(403)
    }
    for (const host of [`localhost:${gateway.port}`, '127.0.0.9', '[::1]:80', 'rxrnn.internal:443']) {
      expect(
        await rawHttp(gateway.port, `GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`),
      ).toMatch(/^HTTP\/1\.1 200 /)
    }
    expect(await upgradeStatus(gateway.url, { headers: { host: 'rxrnn.internal' } })).toBe(101)
  })

  it('a wrong token gets 401; after 5 the address gets 429 with Retry-After, even with the right token, on upgrades and /metrics', async () => {
    const gateway = await start({ token: TOKEN })
    expect(await upgradeStatus(gateway.url)).toBe(401)
    for (let i = 0; i < 5; i++) {
      expect(await upgradeStatus(gateway.url, { headers: { authorization: `Bearer wrong-${i}` } })).toBe(401)
    }
    expect(await upgradeStatus(gateway.url, { headers: BEARER })).toBe(429)
    expect(await upgradeStatus(`${gateway.url}/?token=${TOKEN}`)).toBe(429)
    const metrics = await fetch(`http://127.0.0.1:${gateway.port}/metrics`, { headers: BEARER })
    expect(metrics.status).toBe(429)
    expect(Number(metrics.headers.get('retry-after'))).toBeGreaterThan(0)
    expect(gateway.metrics().published).toBe(0)
  })

  it('refuses a token shorter than 16 characters, and an idle timeout not above the ping interval, before connecting', async () => {
    await expect(start({ token: 'short' })).rejects.toThrow(/at least 16 characters.*randomBytes\(24\)/)
    await expect(start({ pingIntervalMs: 1000, idleTimeoutMs: 1000 })).rejects.toThrow(
      /--idle-timeout \(1000 ms\) must be longer than --ping-interval/,
    )
  })

  it('request targets that crashed serve (//999.999.999.999/, http://[/) answer 400 on requests and upgrades, token or not; the gateway keeps serving', async () => {
    for (const token of [undefined, TOKEN]) {
      const gateway = await start(token ? { token } : {})
      for (const target of ['//999.999.999.999/', 'http://[/', '//999.999.999.999/x?token=1']) {
        expect(await rawHttp(gateway.port, request(target))).toMatch(/^HTTP\/1\.1 400 /)
        expect(await rawHttp(gateway.port, request(target, upgrade))).toMatch(/^HTTP\/1\.1 400 /)
      }
      // Bytes that are no HTTP at all: 400, the socket ends, nothing else.
      expect(await rawHttp(gateway.port, '\x16\x03\x01\x00\xff garbage\r\n\r\n')).toMatch(/^HTTP\/1\.1 400 /)
      await answered(await open(gateway.url, token ? { headers: BEARER } : {}))
    }
  })

  it('/metrics needs the token; with it, prom-client text: the fixed names, the workers’ progress, the gateway’s own series', async () => {
    const gateway = await start({ token: TOKEN })
    const base = `http://127.0.0.1:${gateway.port}`
    expect((await fetch(`${base}/metrics`)).status).toBe(401)
    expect(
      (await fetch(`${base}/metrics`, { headers: { authorization: 'Bearer nope-nope-nope-nope' } })).status,
    ).toBe(401)
    const client = await open(gateway.url, { headers: BEARER })
    client.send({ type: 'tick', key: 'short-x', x: [1], id: 0 })
    for (let i = 0; i < 3; i++) await answered(client)
    await client.waitFor((f) => f.type === 'error' && f.id === 0)
    const ticks = worker.metrics().ticks
    let text = ''
    // The worker publishes its metrics every 50 ms: scrape until they show every tick.
    for (let i = 0; i < 100 && !new RegExp(`^rxrnn_ticks_total ${ticks}$`, 'm').test(text); i++) {
      const res = await fetch(`${base}/metrics`, { headers: BEARER })
      expect(res.status).toBe(200)
      expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
      text = await res.text()
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    expect(text).toMatch(new RegExp(`^rxrnn_ticks_total ${ticks}$`, 'm'))
    expect(text).toMatch(/^rxrnn_updates_total \d+$/m)
    expect(text).toMatch(/^rxrnn_keys [1-9]\d*$/m)
    expect(text).toMatch(/^rxrnn_connections 1$/m)
    expect(text).toMatch(/^rxrnn_workers 1$/m)
    expect(text).toMatch(/^rxrnn_partition_ticks_total\{worker="[^"]+",partition="[01]"\} [1-9]\d*$/m)
    expect(text).toMatch(/^rxrnn_partition_sequence\{worker="[^"]+",partition="[01]"\} \d+$/m)
    expect(text).toMatch(/^rxrnn_gateway_published_ticks_total 3$/m)
    expect(text).toMatch(/^rxrnn_gateway_waiting 0$/m)
    expect(text).toMatch(/^rxrnn_rejected_frames_total\{code="bad_input"\} 1$/m)
    expect(text).toMatch(/^rxrnn_refused_requests_total\{reason="token"\} 2$/m)
    expect(text).toMatch(/^rxrnn_tick_duration_seconds_count 3$/m)
    expect(text).toMatch(/^process_cpu_user_seconds_total /m)
  })

  it('hostile frames get error frames (a 1 MB bigint described by its bit length), an oversized one closes with 1009; nothing is published, and the gateway goes on', async () => {
    const gateway = await start({ maxPayload: 2 << 20 })
    const client = await open(gateway.url)
    const big = Buffer.alloc(6 + (1 << 20), 0x7f)
    big[0] = 0xc9
    big.writeUInt32BE(1 << 20, 1)
    big[5] = 0x42
    const str = (text: string) => Buffer.from([0xa0 | text.length, ...Buffer.from(text)])
    client.sendRaw(
      Buffer.concat([Buffer.from([0x83]), str('type'), str('tick'), str('key'), str('k'), str('id'), big]),
      true,
    )
    client.sendRaw('{"type":"tick","key":"k","x":[1,2],"__proto__":{"polluted":1}}', false)
    client.sendRaw('{"type":"tick","key":"k","x":[NaN,2]}', false)
    client.sendRaw(`[${'[],'.repeat(300_000)}[]]`, false)
    client.sendRaw(Buffer.from([0xc1, 0xff, 0x00]), true)
    client.send({ type: 'tick', key: 'k', x: [1, 2, 3] })
    client.send({
      type: 'subscribe',
      channels: ['predictions'],
      keys: Array.from({ length: 1001 }, (_, i) => `k${i}`),
    })
    await waitUntil(() => client.frames.filter((f) => f.type === 'error').length >= 7, '7 error frames')
    const errors = client.frames.filter((f) => f.type === 'error')
    expect(errors[0]!.message).toMatch(/integer wider than 64 bits/)
    expect(errors.map((e) => e.code)).toContain('payload_too_large')
    expect(gateway.metrics().published).toBe(0)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    await answered(client)
    // A frame over --max-payload closes its connection (1009); others go on.
    const other = await open(gateway.url)
    other.sendRaw(Buffer.alloc((2 << 20) + 1), true)
    await expect(other.waitFor(() => false, 0, 5_000)).rejects.toThrow(/closed \(1009\)/)
    await answered(client)
  })

  it('a connection that invents keys faster than --max-new-keys-per-second gets rate_limited; keys already known keep being answered', async () => {
    const gateway = await start({ maxNewKeysPerSecond: 20 })
    const flood = await open(gateway.url)
    const producer = await open(gateway.url)
    await answered(producer)
    for (let i = 0; i < 200; i++) flood.send({ type: 'tick', key: `junk-${i}`, x: [1, 2], id: 10_000 + i })
    await flood.fence(1)
    const limited = flood.frames.filter((f) => f.type === 'error' && f.code === 'rate_limited')
    expect(limited.length).toBeGreaterThanOrEqual(150)
    expect(limited[0]!.message).toMatch(/--max-new-keys-per-second/)
    expect(gateway.metrics().rateLimited).toBe(limited.length)
    expect(gateway.metrics().published).toBe(1 + 200 - limited.length)
    flood.send({ type: 'tick', key: 'junk-0', x: [1, 2], id: 5000 })
    await flood.waitFor((f) => f.type === 'prediction' && f.id === 5000)
    await answered(producer)
  })

  it('one connection may have at most maxWaitingPerConnection ticks awaiting answers: more get rate_limited, each tick gets one answer', async () => {
    const gateway = await start({ maxWaitingPerConnection: 5 })
    const producer = await open(gateway.url)
    await answered(producer)
    const from = producer.frames.length
    // Sent at once: all 50 arrive before the first answer can come back through NATS.
    for (let i = 0; i < 50; i++) producer.send({ type: 'tick', key: 'alive', x: [i / 50, 0], id: 20_000 + i })
    await waitUntil(() => producer.frames.length - from >= 50, 'an answer to each of the 50 ticks')
    const answers = producer.frames.slice(from)
    const limited = answers.filter((f) => f.type === 'error' && f.code === 'rate_limited')
    expect(limited.length).toBeGreaterThanOrEqual(1)
    expect(limited[0]!.message).toMatch(/ticks waiting for their answers/)
    expect(answers.filter((f) => f.type === 'prediction')).toHaveLength(50 - limited.length)
    expect(new Set(answers.map((f) => f.id)).size).toBe(50)
    // Once answered, the connection may send again.
    await answered(producer)
  })

  it('--max-connections and the per-address limit answer 503; a peer that never answers a ping is terminated', async () => {
    const gateway = await start({
      maxConnections: 3,
      maxConnectionsPerAddress: 2,
      pingIntervalMs: 50,
      idleTimeoutMs: 300,
    })
    const dead = await rawWebSocket(gateway.port)
    dead.on('data', () => {}) // reads, but never answers a ping
    const live = await open(gateway.url)
    expect(await upgradeStatus(gateway.url)).toBe(503)
    await once(dead, 'close')
    expect(live.closed).toBe(false)
    await answered(live)
    const metrics = await (await fetch(`http://127.0.0.1:${gateway.port}/metrics`)).text()
    expect(metrics).toMatch(/^rxrnn_dead_peers_total 1$/m)
    expect(metrics).toMatch(/^rxrnn_refused_requests_total\{reason="connections"\} 1$/m)
  })

  it('subscribers of predictions get other producers’ answers with their targets; hidden, which the workers do not send, is left out', async () => {
    const gateway = await start()
    const watcher = await open(gateway.url)
    watcher.send({
      type: 'subscribe',
      channels: ['predictions', 'hidden', 'updates'],
      keys: ['alive'],
      id: 1,
    })
    const i = await watcher.waitFor((f) => f.type === 'subscribed' && f.id === 1)
    // updates: the workers' drift alarms (with --drift).
    expect(watcher.frames[i]!.channels).toEqual(['predictions', 'updates'])
    const producer = await open(gateway.url)
    await answered(producer)
    const j = await watcher.waitFor((f) => f.type === 'prediction' && f.key === 'alive')
    expect(watcher.frames[j]!.target).toEqual([0.1])
  })

  const tls = selfSigned()
  afterAll(async () => {
    if (tls) await rm(tls.dir, { recursive: true, force: true })
  })
  if (!tls) console.warn(opensslSkipMessage)

  it.skipIf(!tls)('serves wss:// and https:// with a certificate (tls)', async () => {
    const gateway = await start({ tls: { cert: tls!.cert, key: tls!.key }, token: TOKEN })
    expect(gateway.url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/)
    await answered(await open(gateway.url, { ca: tls!.cert, headers: BEARER }))
    // A plain-text client on the TLS port gets nowhere, and the gateway goes on.
    await expect(fetch(`http://127.0.0.1:${gateway.port}/`)).rejects.toThrow()
    await answered(await open(gateway.url, { ca: tls!.cert, headers: BEARER }))
  })

  it('rxrnn serve --nats takes serve’s flags: --token, --allow-origin, --max-connections; a short token exits 2', async () => {
    const args = ['--nats', nats.url, '--partitions', String(PARTITIONS), '--port', '0', '--quiet']
    const child = await startServeProcess([
      ...args,
      '--token',
      TOKEN,
      '--allow-origin',
      'https://app.example.com',
      '--max-connections',
      '1',
      '--input-size',
      '2',
    ])
    cleanups.push(() => stopProcess(child))
    expect(await upgradeStatus(child.url)).toBe(401)
    expect(await upgradeStatus(child.url, { origin: 'https://evil.example', headers: BEARER })).toBe(403)
    const client = await open(child.url, { origin: 'https://app.example.com', headers: BEARER })
    await answered(client)
    expect(await upgradeStatus(child.url, { headers: BEARER })).toBe(503)
    client.send({ type: 'tick', key: 'alive', x: [1, 2, 3], id: 77 })
    const k = await client.waitFor((f) => f.type === 'error' && f.id === 77)
    expect(client.frames[k]!.message).toMatch(/x has 3 values but the model takes 2 inputs/)
    const short = await startServeProcess([...args, '--token', 'ten-chars!']).catch((error: Error) => error)
    expect(short).toBeInstanceOf(Error)
    expect((short as Error).message).toMatch(/exited \(2\).*at least 16 characters/s)
    // A port in use: exit 2, saying so.
    const taken = Number(new URL(child.url).port)
    const busy = await startServeProcess([...args.slice(0, 4), '--port', String(taken)]).catch(
      (error: Error) => error,
    )
    expect((busy as Error).message).toMatch(/exited \(2\).*the port is in use/s)
  })
})
