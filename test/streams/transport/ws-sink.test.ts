import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { unpack } from 'msgpackr'
import { from, lastValueFrom, Observable, Subject, toArray } from 'rxjs'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket, { WebSocketServer } from 'ws'
import { RxrnnError } from '../../../src/errors.js'
import { type SinkStats, webSocketSink } from '../../../streams/transport/ws-sink.js'
import { until } from '../../helpers/streams.js'

const cleanups: (() => unknown)[] = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

interface Received {
  readonly frames: { value: unknown; isBinary: boolean }[]
  readonly sockets: WebSocket[]
}

/** A server that records every frame it receives; `paused` ones stop reading from the socket. */
async function startServer(options: { paused?: boolean } = {}): Promise<WebSocketServer & Received> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  const received: Received = { frames: [], sockets: [] }
  server.on('connection', (socket) => {
    received.sockets.push(socket)
    if (options.paused) socket.pause()
    socket.on('message', (data, isBinary) => {
      const bytes = data as Buffer
      received.frames.push({ value: isBinary ? unpack(bytes) : JSON.parse(bytes.toString()), isBinary })
    })
  })
  await once(server, 'listening')
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const client of server.clients) client.terminate()
        server.close(() => resolve())
      }),
  )
  return Object.assign(server, received)
}

function urlOf(server: WebSocketServer): string {
  return `ws://127.0.0.1:${(server.address() as AddressInfo).port}`
}

const FRAME_BYTES = 64 * 1024
const payload = Buffer.alloc(FRAME_BYTES, 7)

/**
 * Once `ready()`, emits numbered 64 KiB frames, a batch per macrotask, until `stalled()` says the sink
 * has started to drop (the kernel's socket buffers, a few MiB, are full by then), then completes.
 */
function framesUntil(
  ready: () => boolean,
  stalled: () => boolean,
  emitted: { count: number },
): Observable<unknown> {
  return new Observable((subscriber) => {
    let timer: NodeJS.Timeout | undefined
    const batch = (): void => {
      if (stalled() || emitted.count >= 4_000) {
        subscriber.complete()
        return
      }
      if (ready()) for (let k = 0; k < 32; k++) subscriber.next({ i: emitted.count++, payload })
      timer = setTimeout(batch, 1)
    }
    batch()
    return () => clearTimeout(timer)
  })
}

function indices(server: Received): number[] {
  return server.frames.map((f) => (f.value as { i: number }).i)
}

describe('webSocketSink', () => {
  it('sends msgpack as binary messages and JSON as text messages, then completes with its stats', async () => {
    const server = await startServer()
    const frames = [
      { t: 1, x: [0.5, -1] },
      { t: 2, x: [0.25, 2] },
    ]
    const binary = await lastValueFrom(from(frames).pipe(webSocketSink(urlOf(server))))
    const text = await lastValueFrom(from(frames).pipe(webSocketSink(urlOf(server), { encoding: 'json' })))
    expect(binary).toEqual({ sent: 2, dropped: 0, queued: 0 })
    expect(text).toEqual({ sent: 2, dropped: 0, queued: 0 })
    await until('four frames', () => server.frames.length === 4)
    expect(server.frames).toEqual([
      { value: frames[0], isBinary: true },
      { value: frames[1], isBinary: true },
      { value: frames[0], isBinary: false },
      { value: frames[1], isBinary: false },
    ])
  })

  it('against a reader that stops reading: queues at most maxQueue, drops the oldest, sends the newest', async () => {
    const server = await startServer({ paused: true })
    const maxQueue = 8
    const stats: SinkStats[] = []
    const dropping = (): boolean => stats.some((s) => s.dropped > 0)
    const emitted = { count: 0 }
    let open = false
    const finished = new Promise<void>((resolve, reject) => {
      const sink = webSocketSink(urlOf(server), {
        highWaterMark: 256 * 1024,
        maxQueue,
        statsIntervalMs: 5,
        heartbeatMs: 0,
        onStatus: (s) => (open ||= s.state === 'open'),
      })
      const subscription = framesUntil(() => open, dropping, emitted)
        .pipe(sink)
        .subscribe({ next: (s) => stats.push(s), error: reject, complete: resolve })
      cleanups.push(() => subscription.unsubscribe())
    })
    await until('the sink to drop frames', dropping)
    expect(stats.find((s) => s.dropped > 0)!.queued).toBe(maxQueue)

    for (const socket of server.sockets) socket.resume()
    await finished
    const final = stats.at(-1)!
    expect(stats.every((s) => s.queued <= maxQueue)).toBe(true)
    expect(final.queued).toBe(0)
    expect(final.dropped).toBeGreaterThan(0)
    expect(final.sent + final.dropped).toBe(emitted.count)
    expect(final.sent).toBeGreaterThan(maxQueue)

    await until('the server to read every frame sent', () => server.frames.length === final.sent)
    const got = indices(server)
    expect(got.every((i, k) => k === 0 || i > got[k - 1]!)).toBe(true)
    const newest = Array.from({ length: maxQueue }, (_, k) => emitted.count - maxQueue + k)
    expect(got.slice(-maxQueue)).toEqual(newest)
  })

  it('on a socket it was given: drop-newest keeps the oldest frames and bounds the socket buffer', async () => {
    const server = await startServer({ paused: true })
    const socket = new WebSocket(urlOf(server), { perMessageDeflate: false })
    cleanups.push(() => socket.terminate())
    await once(socket, 'open')
    const highWaterMark = 128 * 1024
    const maxQueue = 5
    const stats: SinkStats[] = []
    const dropping = (): boolean => stats.some((s) => s.dropped > 0)
    const emitted = { count: 0 }
    const finished = new Promise<void>((resolve, reject) => {
      const sink = webSocketSink(socket, {
        highWaterMark,
        maxQueue,
        dropPolicy: 'drop-newest',
        statsIntervalMs: 5,
      })
      const subscription = framesUntil(() => true, dropping, emitted)
        .pipe(sink)
        .subscribe({ next: (s) => stats.push(s), error: reject, complete: resolve })
      cleanups.push(() => subscription.unsubscribe())
    })
    await until('the sink to drop frames', dropping)
    // The sink only writes while the buffer holds at most highWaterMark bytes: one frame can overshoot it.
    expect(socket.bufferedAmount).toBeLessThanOrEqual(highWaterMark + FRAME_BYTES + 64)
    expect(stats.find((s) => s.dropped > 0)!.queued).toBe(maxQueue)

    for (const peer of server.sockets) peer.resume()
    await finished
    const final = stats.at(-1)!
    expect(stats.every((s) => s.queued <= maxQueue)).toBe(true)
    expect(final).toMatchObject({ queued: 0 })
    expect(final.dropped).toBeGreaterThan(0)
    expect(final.sent + final.dropped).toBe(emitted.count)
    expect(final.sent).toBeGreaterThan(maxQueue)

    await until('the server to read every frame sent', () => server.frames.length === final.sent)
    const got = indices(server)
    expect(got[0]).toBe(0)
    expect(got.every((i, k) => k === 0 || i > got[k - 1]!)).toBe(true)
    expect(got.at(-1)).toBeLessThan(emitted.count - 1)
    expect(socket.readyState).toBe(WebSocket.OPEN)
  })

  it('completes when the socket it was given closes, and stops taking frames', async () => {
    const server = await startServer()
    const socket = new WebSocket(urlOf(server), { perMessageDeflate: false })
    cleanups.push(() => socket.terminate())
    const frames = new Subject<unknown>()
    const all = lastValueFrom(frames.pipe(webSocketSink(socket, { statsIntervalMs: 0 }), toArray()))
    frames.next({ i: 0 })
    frames.next({ i: 1 })
    await until('two frames', () => server.frames.length === 2)
    server.sockets[0]!.close(1000, 'bye')
    expect(await all).toEqual([{ sent: 2, dropped: 0, queued: 0 }])
    expect(frames.observed).toBe(false)
    expect(socket.readyState).toBe(WebSocket.CLOSED)
  })

  it('errors with bad_frame on a frame it cannot encode', async () => {
    const server = await startServer()
    const error = await lastValueFrom(
      from([{ ok: 1 }, { n: 1n }]).pipe(webSocketSink(urlOf(server), { encoding: 'json' })),
    ).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(RxrnnError)
    expect((error as RxrnnError).code).toBe('bad_frame')
    expect((error as RxrnnError).message).toMatch(/json.*BigInt/)
  })

  it('errors when the server refuses the token', async () => {
    const server = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      verifyClient: (_info, done) => done(false, 401),
    })
    await once(server, 'listening')
    cleanups.push(() => new Promise((resolve) => server.close(resolve)))
    const error = await lastValueFrom(
      from([{ i: 0 }]).pipe(webSocketSink(urlOf(server), { token: 'wrong' })),
    ).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(RxrnnError)
    expect((error as RxrnnError).message).toMatch(/HTTP 401.*token/)
  })

  it('throws one bad_config error listing every invalid argument', () => {
    let error: unknown
    try {
      webSocketSink('nope', { maxQueue: -1, dropPolicy: 'sometimes' as 'drop-oldest', statsIntervalMs: -5 })
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(RxrnnError)
    expect((error as RxrnnError).code).toBe('bad_config')
    expect((error as RxrnnError).problems).toHaveLength(4)
  })
})
