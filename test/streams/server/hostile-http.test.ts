/**
 * The attacks of issue 15 on the HTTP side, each on real sockets against a real `serve`: request
 * targets that used to crash the process, pages on other origins, DNS rebinding, token guessing,
 * connection floods, dead peers and half-sent requests.
 */
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import type WebSocket from 'ws'
import type { ModelConfig, TrainerOptions } from '../../../src/index.js'
import { type RxrnnServer, type ServeOptions, serve } from '../../../streams/server/server.js'
import { FrameClient, rawHttp, rawWebSocket, upgradeStatus } from '../../helpers/wire-client.js'

const MODEL: ModelConfig = { cell: 'gru', inputSize: 2, hiddenSize: 4, outputSize: 1, seed: 1 }
const TRAINER: TrainerOptions = { k1: 4, loss: 'mse', optimizer: { type: 'adam', lr: 1e-2 } }
const TOKEN = 'a-token-of-24-characters'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function start(options: Partial<ServeOptions> = {}): Promise<RxrnnServer & { logs: string[] }> {
  const logs: string[] = []
  const server = await serve({ model: MODEL, trainer: TRAINER, log: (line) => logs.push(line), ...options })
  cleanups.push(() => server.close())
  return Object.assign(server, { logs })
}

async function open(url: string, options: WebSocket.ClientOptions = {}): Promise<FrameClient> {
  const client = await FrameClient.openWith(url, options)
  cleanups.push(() => client.close())
  return client
}

/** The server still answers: a hello gets its welcome. */
async function alive(server: RxrnnServer, options: WebSocket.ClientOptions = {}): Promise<void> {
  const client = await open(server.url, options)
  await client.fence(99)
}

const request = (target: string, extra = '') => `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\n`
const upgrade =
  'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n'

describe('nothing a client sends ends the process', () => {
  it('request targets that cannot be read answer 400, on plain requests and on upgrades (with a token too)', async () => {
    for (const token of [undefined, TOKEN]) {
      const server = await start(token ? { token } : {})
      for (const target of ['//999.999.999.999/', 'http://[/', '//999.999.999.999/x?token=1']) {
        expect(await rawHttp(server.port, request(target))).toMatch(/^HTTP\/1\.1 400 /)
        expect(await rawHttp(server.port, request(target, upgrade))).toMatch(/^HTTP\/1\.1 400 /)
      }
      await alive(server, token ? { headers: { authorization: `Bearer ${token}` } } : {})
    }
  })

  it('a route that throws answers 500 to that request only; the log says why and the server goes on', async () => {
    const server = await start({
      http: (req) => {
        if (req.url === '/boom') throw new Error('a bug in a route')
        return false
      },
    })
    const res = await fetch(`http://127.0.0.1:${server.port}/boom`)
    expect(res.status).toBe(500)
    expect(server.logs.join('\n')).toMatch(/internal error: Error: a bug in a route/)
    expect((await fetch(`http://127.0.0.1:${server.port}/`)).status).toBe(200)
    await alive(server)
  })

  it('a bug while handling a frame closes that connection with 1011 and an internal error frame; others go on', async () => {
    const server = await start()
    // Plant a bug: the trainer throws a plain Error (not a refusal) for one key.
    const observe = server.keyed.observeDeferred.bind(server.keyed)
    server.keyed.observeDeferred = (key, x, y) => {
      if (key === 'bug') throw new TypeError('a bug in the trainer')
      return observe(key, x, y)
    }
    const victim = await open(server.url)
    const bystander = await open(server.url)
    victim.send({ type: 'tick', key: 'bug', x: [1, 2] })
    await victim.waitFor((f) => f.type === 'error' && f.code === 'internal')
    await expect(victim.waitFor(() => false, 0, 5_000)).rejects.toThrow(/closed \(1011\)/)
    expect(server.logs.join('\n')).toMatch(/internal error on a frame .*TypeError: a bug in the trainer/s)
    bystander.send({ type: 'tick', key: 'fine', x: [1, 2], id: 1 })
    await bystander.waitFor((f) => f.type === 'prediction' && f.id === 1)
  })
})

describe('origins and hosts', () => {
  it("refuses WebSockets from pages on other origins (403), token or not; accepts the server's own, listed ones, and programs", async () => {
    const server = await start({ token: TOKEN, allowOrigins: ['https://app.example.com'] })
    const auth = { authorization: `Bearer ${TOKEN}` }
    expect(await upgradeStatus(server.url, { origin: 'https://evil.example', headers: auth })).toBe(403)
    expect(await upgradeStatus(`${server.url}/?token=${TOKEN}`, { origin: 'https://evil.example' })).toBe(403)
    expect(await upgradeStatus(server.url, { origin: 'null', headers: auth })).toBe(403)
    expect(
      await upgradeStatus(server.url, { origin: `http://127.0.0.1:${server.port}`, headers: auth }),
    ).toBe(101)
    expect(await upgradeStatus(server.url, { origin: 'https://app.example.com', headers: auth })).toBe(101)
    expect(await upgradeStatus(server.url, { headers: auth })).toBe(101)
    // The refused page could not train the weights: no tick arrived.
    expect(server.metrics().events).toBe(0)
  })

  it('on a loopback listener, a Host that is not a loopback name gets 403 on every route (DNS rebinding); --allowed-host adds names', async () => {
    const server = await start({ allowedHosts: ['rxrnn.internal'] })
    for (const host of ['evil.example', `evil.example:${server.port}`, '10.0.0.1']) {
      expect(await rawHttp(server.port, `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`)).toMatch(
        /^HTTP\/1\.1 403 /,
      )
      expect(await rawHttp(server.port, `GET /metrics HTTP/1.1\r\nHost: ${host}\r\n\r\n`)).toMatch(
        /^HTTP\/1\.1 403 /,
      )
      expect(await upgradeStatus(server.url, { headers: { host } })).toBe(403)
    }
    for (const host of [
      'localhost',
      `localhost:${server.port}`,
      '127.0.0.9',
      '[::1]:80',
      'rxrnn.internal:443',
    ]) {
      expect(
        await rawHttp(server.port, `GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`),
      ).toMatch(/^HTTP\/1\.1 200 /)
    }
    await alive(server)
  })
})

describe('tokens', () => {
  it('refuses a token shorter than 16 characters at start, saying how to make one', async () => {
    await expect(serve({ model: MODEL, trainer: TRAINER, token: 'x' })).rejects.toThrow(
      /at least 16 characters.*randomBytes\(24\)/,
    )
  })

  it('after 5 wrong tokens an address gets 429, even with the right one, on upgrades and on /metrics', async () => {
    const server = await start({ token: TOKEN })
    for (let i = 0; i < 5; i++) {
      expect(await upgradeStatus(server.url, { headers: { authorization: `Bearer wrong-${i}` } })).toBe(401)
    }
    expect(await upgradeStatus(server.url, { headers: { authorization: `Bearer ${TOKEN}` } })).toBe(429)
    const metrics = await fetch(`http://127.0.0.1:${server.port}/metrics`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    })
    expect(metrics.status).toBe(429)
    expect(Number(metrics.headers.get('retry-after'))).toBeGreaterThan(0)
  })

  it('the dashboard logs in once: an HttpOnly, SameSite=Strict session cookie, which the WebSocket then carries', async () => {
    const server = await start({ token: TOKEN })
    const base = `http://127.0.0.1:${server.port}`
    expect(await (await fetch(`${base}/dashboard/auth`)).json()).toEqual({ ok: false })
    const wrong = await fetch(`${base}/dashboard/auth`, { headers: { authorization: 'Bearer nope' } })
    expect(await wrong.json()).toEqual({ ok: false })
    expect(wrong.headers.get('set-cookie')).toBeNull()
    const login = await fetch(`${base}/dashboard/auth`, { headers: { authorization: `Bearer ${TOKEN}` } })
    expect(await login.json()).toEqual({ ok: true })
    const cookie = login.headers.get('set-cookie') ?? ''
    expect(cookie).toMatch(/HttpOnly/)
    expect(cookie).toMatch(/SameSite=Strict/)
    expect(cookie).not.toContain(TOKEN)
    const session = cookie.split(';')[0]!
    expect(await (await fetch(`${base}/dashboard/auth`, { headers: { cookie: session } })).json()).toEqual({
      ok: true,
    })
    expect(await upgradeStatus(server.url, { origin: base, headers: { cookie: session } })).toBe(101)
    expect(
      await upgradeStatus(server.url, { origin: base, headers: { cookie: 'rxrnn_session_1=forged' } }),
    ).toBe(401)
  })

  it("the dashboard's page script never puts the token in a URL", async () => {
    const server = await start({ token: TOKEN })
    const app = await (await fetch(`http://127.0.0.1:${server.port}/dashboard/app.js`)).text()
    expect(app).not.toMatch(/searchParams\.set\('token'/)
    expect(app).not.toMatch(/sessionStorage/)
    expect(app).not.toMatch(/location\.search/)
  })
})

describe('connection limits', () => {
  it('--max-connections and the per-address limit refuse with 503; a closed connection frees its place', async () => {
    const server = await start({ maxConnections: 3, maxConnectionsPerAddress: 2 })
    const a = await open(server.url)
    await open(server.url)
    expect(await upgradeStatus(server.url)).toBe(503)
    await a.close()
    // The server sees the close a moment after the client does.
    let status = 0
    for (let i = 0; i < 50 && status !== 101; i++) {
      status = await upgradeStatus(server.url)
      if (status !== 101) await new Promise((resolve) => setTimeout(resolve, 20))
    }
    expect(status).toBe(101)
  })

  it('pings every connection and terminates one that never answers; a live client that pongs stays', async () => {
    const server = await start({ pingIntervalMs: 50, idleTimeoutMs: 300 })
    const dead = await rawWebSocket(server.port)
    dead.on('data', () => {}) // reads, but never answers a ping
    const live = await open(server.url)
    await once(dead, 'close')
    expect(live.closed).toBe(false)
    await live.fence(1)
    const metrics = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text()
    expect(metrics).toMatch(/^rxrnn_dead_peers_total 1$/m)
  })

  it('half-sent requests and silent sockets are cut after the headers timeout: they cannot hold the port', async () => {
    const server = await start({ headersTimeoutMs: 300, requestTimeoutMs: 600 })
    const sockets: Socket[] = []
    for (let i = 0; i < 100; i++) {
      const socket = connect(server.port, '127.0.0.1')
      socket.on('error', () => {})
      // Read (and discard) the answer, so the server's close is seen.
      socket.resume()
      // Half of them send half a request, half send nothing at all.
      if (i % 2 === 0) socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ')
      sockets.push(socket)
    }
    await Promise.all(sockets.map((s) => once(s, 'close')))
    // A long-lived WebSocket is not a half-sent request: it outlives the timeouts.
    const client = await open(server.url)
    await new Promise((resolve) => setTimeout(resolve, 900))
    await client.fence(1)
  })
})
