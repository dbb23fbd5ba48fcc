import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import { pack, unpack } from 'msgpackr'
import { firstValueFrom, lastValueFrom, type Subscription, take, toArray } from 'rxjs'
import { afterEach, describe, expect, it } from 'vitest'
import { type ServerOptions, type WebSocket, WebSocketServer } from 'ws'
import { RxrnnError } from '../../../src/errors.js'
import {
  type WebSocketConnection,
  type WebSocketStatus,
  webSocketConnection,
  webSocketSource,
} from '../../../streams/transport/ws-source.js'
import { until } from '../../helpers/streams.js'

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url))
const sourceModule = fileURLToPath(new URL('../../../streams/transport/ws-source.ts', import.meta.url))

const cleanups: (() => unknown)[] = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function startServer(options: ServerOptions = {}): Promise<WebSocketServer> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, ...options })
  await once(server, 'listening')
  cleanups.push(() => closeServer(server))
  return server
}

async function closeServer(server: WebSocketServer): Promise<void> {
  for (const client of server.clients) client.terminate()
  await new Promise<void>((resolve) => server.close(() => resolve()))
}

function urlOf(server: WebSocketServer | Server): string {
  return `ws://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** A port nothing listens on (until a test starts a server there). */
async function freePort(): Promise<number> {
  const probe = createServer()
  probe.listen(0, '127.0.0.1')
  await once(probe, 'listening')
  const { port } = probe.address() as AddressInfo
  await new Promise((resolve) => probe.close(resolve))
  return port
}

function track(subscription: Subscription): Subscription {
  cleanups.push(() => subscription.unsubscribe())
  return subscription
}

function trackConnection(connection: WebSocketConnection): WebSocketConnection {
  cleanups.push(() => connection.close())
  return connection
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** A server that completes the WebSocket handshake, then reads everything and never answers: a dead peer. */
async function startSilentServer(): Promise<{ server: Server; connections: () => number }> {
  let connections = 0
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
    let head = ''
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1')
      const key = /sec-websocket-key:\s*(\S+)/i.exec(head)?.[1]
      if (!head.includes('\r\n\r\n') || key === undefined) return
      socket.off('data', onData)
      socket.resume()
      connections++
      const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64')
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
      )
    }
    socket.on('data', onData)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  cleanups.push(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  return { server, connections: () => connections }
}

describe('webSocketSource', () => {
  it('decodes binary messages as msgpack and text messages as JSON', async () => {
    const server = await startServer()
    server.on('connection', (socket) => {
      socket.send(pack({ kind: 'msgpack', x: [1.5, -2] }))
      socket.send(JSON.stringify({ kind: 'json', y: 'z' }))
    })
    const messages = await firstValueFrom(webSocketSource(urlOf(server)).pipe(take(2), toArray()))
    expect(messages).toEqual([
      { kind: 'msgpack', x: [1.5, -2] },
      { kind: 'json', y: 'z' },
    ])
  })

  it('opens one connection per subscription and closes it (code 1000) on unsubscribe', async () => {
    const server = await startServer()
    const closes: number[] = []
    server.on('connection', (socket) => {
      socket.send(JSON.stringify({ hello: server.clients.size }))
      socket.on('close', (code) => closes.push(code))
    })
    const source = webSocketSource(urlOf(server), { heartbeatMs: 0 })
    const first: unknown[] = []
    const second: unknown[] = []
    const a = track(source.subscribe((m) => first.push(m)))
    const b = track(source.subscribe((m) => second.push(m)))
    await until('both subscriptions to get a message', () => first.length === 1 && second.length === 1)
    expect(server.clients.size).toBe(2)

    a.unsubscribe()
    await until('the server to see the first close', () => closes.length === 1)
    expect(closes).toEqual([1000])
    expect(server.clients.size).toBe(1)

    b.unsubscribe()
    await until('the server to see the second close', () => closes.length === 2)
    expect(closes).toEqual([1000, 1000])
  })

  it('leaves no timer, socket or listener behind on unsubscribe: a process using it exits by itself', async () => {
    const server = await startServer()
    const closes: number[] = []
    server.on('connection', (socket) => {
      socket.send(JSON.stringify({ tick: 1 }))
      socket.on('close', (code) => closes.push(code))
    })
    // Default heartbeat (15 s) and reconnect: a timer left running would keep the child alive.
    const script = [
      `const { webSocketSource } = await import(${JSON.stringify(sourceModule)})`,
      `const { take } = await import('rxjs')`,
      `webSocketSource(${JSON.stringify(urlOf(server))}).pipe(take(1))`,
      '  .subscribe((m) => console.log(JSON.stringify(m)))',
    ].join('\n')
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    const [exitCode, signal] = (await once(child, 'exit')) as [number | null, string | null]
    clearTimeout(killer)
    expect({ exitCode, signal, output: output.trim() }).toEqual({
      exitCode: 0,
      signal: null,
      output: '{"tick":1}',
    })
    await until('the server to see the close', () => closes.length === 1)
    expect(closes).toEqual([1000])
  })

  it('reconnects after the server goes away and comes back on the same port', async () => {
    const first = await startServer()
    const { port } = first.address() as AddressInfo
    first.on('connection', (socket) => socket.send(JSON.stringify({ server: 1 })))
    const statuses: WebSocketStatus[] = []
    const messages: unknown[] = []
    track(
      webSocketSource(urlOf(first), {
        heartbeatMs: 0,
        reconnect: { initialDelayMs: 20, maxDelayMs: 50 },
        onStatus: (s) => statuses.push(s),
      }).subscribe((m) => messages.push(m)),
    )
    await until('the first message', () => messages.length === 1)

    await closeServer(first)
    await until('the client to notice', () => statuses.some((s) => s.state === 'reconnecting'))
    const second = await startServer({ port })
    second.on('connection', (socket) => socket.send(JSON.stringify({ server: 2 })))
    await until('the message from the restarted server', () => messages.length === 2)

    expect(messages).toEqual([{ server: 1 }, { server: 2 }])
    const states = statuses.map((s) => s.state)
    expect(states.slice(0, 3)).toEqual(['connecting', 'open', 'closed'])
    expect(states.at(-1)).toBe('open')
    expect(statuses.at(-1)!.attempt).toBeGreaterThanOrEqual(1)
    expect(statuses.find((s) => s.state === 'closed')!.code).toBe(1006)
  })

  it('waits a capped exponential backoff with full jitter, then gives up after maxAttempts', async () => {
    const url = `ws://127.0.0.1:${await freePort()}`
    const statuses: WebSocketStatus[] = []
    const error = await lastValueFrom(
      webSocketSource(url, {
        reconnect: { initialDelayMs: 10, maxDelayMs: 40, factor: 2, maxAttempts: 5 },
        random: () => 0.5,
        onStatus: (s) => statuses.push(s),
      }),
    ).catch((e: unknown) => e)

    const reconnecting = statuses.filter((s) => s.state === 'reconnecting')
    expect(reconnecting.map((s) => s.attempt)).toEqual([1, 2, 3, 4, 5])
    // caps 10, 20, 40, 40, 40 (capped), times the jitter 0.5
    expect(reconnecting.map((s) => s.delayMs)).toEqual([5, 10, 20, 20, 20])
    expect(statuses.filter((s) => s.state === 'connecting')).toHaveLength(6)
    expect(error).toBeInstanceOf(RxrnnError)
    expect((error as RxrnnError).code).toBe('internal')
    expect((error as RxrnnError).message).toMatch(/after 5 reconnect attempts.*ECONNREFUSED/)
  })

  it('keeps every jittered delay between 0 and its cap', async () => {
    const url = `ws://127.0.0.1:${await freePort()}`
    let seed = 42
    const random = (): number => {
      // mulberry32
      seed = (seed + 0x6d2b79f5) | 0
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296
    }
    const delays: number[] = []
    await lastValueFrom(
      webSocketSource(url, {
        reconnect: { initialDelayMs: 4, maxDelayMs: 30, factor: 3, maxAttempts: 6 },
        random,
        onStatus: (s) => s.delayMs !== undefined && delays.push(s.delayMs),
      }),
    ).catch(() => undefined)
    const caps = [4, 12, 30, 30, 30, 30]
    expect(delays).toHaveLength(caps.length)
    delays.forEach((delay, i) => {
      expect(Number.isInteger(delay)).toBe(true)
      expect(delay).toBeGreaterThanOrEqual(0)
      expect(delay).toBeLessThanOrEqual(caps[i]!)
    })
    expect(new Set(delays).size).toBeGreaterThan(1)
  })

  it('starts the backoff over after a connection stayed open for healthyAfterMs', async () => {
    const server = await startServer()
    let rejectConnections = true
    const sockets: WebSocket[] = []
    server.on('connection', (socket) => {
      if (rejectConnections) socket.close(4000, 'go away')
      else sockets.push(socket)
    })
    const statuses: WebSocketStatus[] = []
    track(
      webSocketSource(urlOf(server), {
        heartbeatMs: 0,
        healthyAfterMs: 200,
        reconnect: { initialDelayMs: 1, maxDelayMs: 5, maxAttempts: 100 },
        onStatus: (s) => statuses.push(s),
      }).subscribe(),
    )
    const attempts = (): number[] => statuses.filter((s) => s.state === 'reconnecting').map((s) => s.attempt)
    await until('three quick closes', () => attempts().length >= 3)
    rejectConnections = false
    await until('a connection that stays', () => sockets.length === 1)
    const before = attempts().length
    expect(attempts()).toEqual(Array.from({ length: before }, (_, i) => i + 1))
    expect(statuses.find((s) => s.state === 'closed')).toMatchObject({ code: 4000, reason: 'go away' })

    await sleep(250)
    sockets[0]!.close(4001, 'restart')
    await until('the next reconnect', () => attempts().length === before + 1)
    expect(attempts().at(-1)).toBe(1)
  })

  it('terminates a peer that stops answering pings and reconnects', async () => {
    const silent = await startSilentServer()
    const statuses: WebSocketStatus[] = []
    track(
      webSocketSource(urlOf(silent.server), {
        heartbeatMs: 30,
        heartbeatTimeoutMs: 100,
        reconnect: { initialDelayMs: 5, maxDelayMs: 10 },
        onStatus: (s) => statuses.push(s),
      }).subscribe(),
    )
    await until('a second connection', () => silent.connections() === 2)
    const closed = statuses.find((s) => s.state === 'closed')
    expect(closed).toMatchObject({ code: 1006, reason: 'no pong or message for 100 ms: dead peer' })
    expect(statuses.map((s) => s.state).slice(0, 5)).toEqual([
      'connecting',
      'open',
      'closed',
      'reconnecting',
      'connecting',
    ])
  })

  it('keeps a quiet but healthy connection open: pongs count as life', async () => {
    const server = await startServer()
    const statuses: WebSocketStatus[] = []
    track(
      webSocketSource(urlOf(server), {
        heartbeatMs: 25,
        heartbeatTimeoutMs: 150,
        onStatus: (s) => statuses.push(s),
      }).subscribe(),
    )
    let pings = 0
    server.on('connection', (socket) => socket.on('ping', () => pings++))
    // 16 pings take well over the 150 ms timeout: only the pongs kept the connection alive.
    await until('sixteen pings', () => pings >= 16)
    expect(statuses.map((s) => s.state)).toEqual(['connecting', 'open'])
  })

  it('fails at once on HTTP 401, with a message about the token, and does not retry', async () => {
    let upgrades = 0
    const server = await startServer({
      verifyClient: (_info: { req: IncomingMessage }, done: (ok: boolean, code?: number) => void) => {
        upgrades++
        done(false, 401)
      },
    })
    const statuses: WebSocketStatus[] = []
    const error = await lastValueFrom(
      webSocketSource(urlOf(server), {
        token: 'not-the-token',
        reconnect: { initialDelayMs: 1, maxDelayMs: 1 },
        onStatus: (s) => statuses.push(s),
      }),
    ).catch((e: unknown) => e)

    expect(error).toBeInstanceOf(RxrnnError)
    const { code, message } = error as RxrnnError
    expect(code).toBe('bad_config')
    expect(message).toMatch(/HTTP 401.*check the `token` option.*Not retrying/)
    expect(message).not.toContain('not-the-token')
    await sleep(50)
    expect(upgrades).toBe(1)
    expect(statuses.map((s) => s.state)).toEqual(['connecting', 'closed'])
  })

  it('sends the token as a Bearer header, or as ?token= when asked', async () => {
    const seen: { authorization: string | undefined; url: string | undefined }[] = []
    const server = await startServer({
      verifyClient: ({ req }: { req: IncomingMessage }) => {
        seen.push({ authorization: req.headers.authorization, url: req.url })
        return true
      },
    })
    server.on('connection', (socket) => socket.send('{}'))
    await firstValueFrom(webSocketSource(`${urlOf(server)}/stream`, { token: 's3cret' }))
    await firstValueFrom(webSocketSource(`${urlOf(server)}/stream`, { token: 's3cret', tokenIn: 'query' }))
    expect(seen).toEqual([
      { authorization: 'Bearer s3cret', url: '/stream' },
      { authorization: undefined, url: '/stream?token=s3cret' },
    ])
  })

  it('passes undecodable messages to onDecodeError and goes on', async () => {
    const server = await startServer()
    server.on('connection', (socket) => {
      socket.send(Buffer.from([0x92, 0x01])) // msgpack array of 2 with 1 element
      socket.send('{not json')
      socket.send(pack({ ok: true }))
      socket.send(JSON.stringify({ still: 'here' }))
    })
    const failures: { message: string; isBinary: boolean }[] = []
    const messages = await firstValueFrom(
      webSocketSource(urlOf(server), {
        onDecodeError: (error, _data, isBinary) =>
          failures.push({ message: (error as Error).message, isBinary }),
      }).pipe(take(2), toArray()),
    )
    expect(messages).toEqual([{ ok: true }, { still: 'here' }])
    expect(failures.map((f) => f.isBinary)).toEqual([true, false])
  })

  it('with reconnect off, completes when the server closes cleanly', async () => {
    const server = await startServer()
    server.on('connection', (socket) => {
      socket.send('{"last":true}')
      socket.close(1000, 'done')
    })
    const messages = await lastValueFrom(webSocketSource(urlOf(server), { reconnect: false }).pipe(toArray()))
    expect(messages).toEqual([{ last: true }])
  })

  it('throws one bad_config error listing every invalid option', () => {
    const call = (): unknown =>
      webSocketSource('http//nope', {
        reconnect: { initialDelayMs: -1, factor: 0.5 },
        heartbeatMs: 100,
        heartbeatTimeoutMs: 50,
        token: '',
      })
    expect(call).toThrowError(RxrnnError)
    try {
      call()
    } catch (error) {
      expect((error as RxrnnError).code).toBe('bad_config')
      expect((error as RxrnnError).problems).toHaveLength(5)
    }
  })
})

describe('webSocketConnection', () => {
  it('sends ticks and receives predictions on one socket', async () => {
    const server = await startServer()
    server.on('connection', (socket) =>
      socket.on('message', (data, isBinary) => {
        const tick = JSON.parse(data.toString()) as { x: number }
        socket.send(JSON.stringify({ prediction: tick.x * 2, isBinary }))
      }),
    )
    const connection = trackConnection(webSocketConnection(urlOf(server), { encoding: 'json' }))
    const predictions = firstValueFrom(connection.messages$.pipe(take(3), toArray()))
    for (const x of [1, 2, 3]) expect(connection.send({ type: 'tick', x })).toBe(true)
    expect(await predictions).toEqual([
      { prediction: 2, isBinary: false },
      { prediction: 4, isBinary: false },
      { prediction: 6, isBinary: false },
    ])
    expect(server.clients.size).toBe(1)
    expect(connection.stats()).toMatchObject({ sent: 3, dropped: 0, queued: 0, received: 3, decodeErrors: 0 })
  })

  it('queues sends while the server is down, keeping the newest maxQueue, and sends them in order', async () => {
    const port = await freePort()
    const connection = trackConnection(
      webSocketConnection(`ws://127.0.0.1:${port}`, {
        maxQueue: 3,
        reconnect: { initialDelayMs: 5, maxDelayMs: 20 },
      }),
    )
    const states: string[] = []
    connection.status$.subscribe((s) => states.push(s.state))
    for (let i = 0; i < 5; i++) connection.send({ i })
    expect(connection.stats()).toMatchObject({ sent: 0, dropped: 2, queued: 3 })
    await until('a failed attempt', () => states.includes('reconnecting'))

    const server = await startServer({ port })
    const received: unknown[] = []
    server.on('connection', (socket) => socket.on('message', (data) => received.push(unpack(data as Buffer))))
    await until('the queued frames', () => received.length === 3)
    expect(received).toEqual([{ i: 2 }, { i: 3 }, { i: 4 }])
    expect(connection.stats()).toMatchObject({ sent: 3, dropped: 2, queued: 0 })
    await connection.drained()

    connection.close()
    expect(states.at(-1)).toBe('closed')
    expect(connection.send({ i: 5 })).toBe(false)
  })

  it('counts undecodable messages and keeps receiving', async () => {
    const server = await startServer()
    server.on('connection', (socket) => {
      socket.send(Buffer.from([0xff, 0x00, 0x12]))
      socket.send('nope')
      socket.send('{"fine":1}')
    })
    const connection = trackConnection(webSocketConnection(urlOf(server)))
    expect(await firstValueFrom(connection.messages$)).toEqual({ fine: 1 })
    expect(connection.stats()).toMatchObject({ received: 3, decodeErrors: 2 })
  })
})
