import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { connect } from 'node:net'
import { fileURLToPath } from 'node:url'
import { pack } from 'msgpackr'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import type { ModelConfig, TrainerOptions } from '../../../src/index.js'
import { createModel, KeyedTrainer, OnlineTrainer } from '../../../src/index.js'
import { type RxrnnServer, type ServeOptions, serve } from '../../../streams/server/server.js'
import { decodeFrame, encodeFrame, type FrameEncoding } from '../../../streams/transport/codec.js'
import { PROTOCOL_VERSION } from '../../../streams/transport/protocol.js'
import { type WebSocketStatus, webSocketConnection } from '../../../streams/transport/ws-source.js'
import { until } from '../../helpers/streams.js'

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url))

const MODEL: ModelConfig = { cell: 'gru', inputSize: 3, hiddenSize: 8, outputSize: 1, seed: 7 }
const TRAINER: TrainerOptions = { k1: 4, loss: 'mse', optimizer: { type: 'adam', lr: 1e-2 }, clipNorm: 1 }

const cleanups: (() => unknown)[] = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function start(options: Partial<ServeOptions> = {}): Promise<RxrnnServer> {
  const server = await serve({ model: MODEL, trainer: TRAINER, port: 0, ...options })
  cleanups.push(() => server.close())
  return server
}

type Frame = Record<string, unknown> & { type: string }

/** A raw `ws` client that speaks the protocol in one encoding and keeps every frame it receives. */
class Client {
  readonly inbox: Frame[] = []
  readonly received: Frame[] = []
  closed: { code: number; reason: string } | undefined
  private wake: (() => void) | undefined

  private constructor(
    readonly ws: WebSocket,
    readonly encoding: FrameEncoding,
  ) {
    ws.on('message', (data: Buffer, isBinary) => {
      const decoded = decodeFrame(data, isBinary)
      if (!decoded.ok) throw new Error(`the server sent an undecodable frame: ${decoded.error.message}`)
      const frame = decoded.value as Frame
      this.inbox.push(frame)
      this.received.push(frame)
      this.wake?.()
    })
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() }
      this.wake?.()
    })
  }

  static async open(
    url: string,
    encoding: FrameEncoding = 'msgpack',
    options: WebSocket.ClientOptions = {},
  ): Promise<Client> {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...options })
    const client = new Client(ws, encoding)
    cleanups.push(() => client.close())
    await once(ws, 'open')
    return client
  }

  send(frame: object): void {
    this.ws.send(encodeFrame(frame, this.encoding))
  }

  /** Sends bytes as they are: a binary frame, or a text frame for a string. */
  sendRaw(data: Buffer | string): void {
    this.ws.send(data, { binary: typeof data !== 'string' })
  }

  /** The first frame not yet taken that matches, waiting for it. */
  async next(type: string, match: (f: Frame) => boolean = () => true, deadlineMs = 5_000): Promise<Frame> {
    const deadline = Date.now() + deadlineMs
    for (;;) {
      const i = this.inbox.findIndex((f) => f.type === type && match(f))
      if (i >= 0) return this.inbox.splice(i, 1)[0]!
      if (this.closed) throw new Error(`closed (${this.closed.code}) while waiting for a ${type} frame`)
      const left = deadline - Date.now()
      if (left <= 0)
        throw new Error(`no ${type} frame within ${deadlineMs} ms; got ${JSON.stringify(this.inbox)}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
    }
  }

  async closedWith(): Promise<number> {
    if (!this.closed) await once(this.ws, 'close')
    return this.closed!.code
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING)
      this.ws.terminate()
  }
}

/** The prediction a fresh key gets from the same model, computed here. */
function referencePrediction(x: number[]): number[] {
  const keyed = new KeyedTrainer(new OnlineTrainer(createModel(MODEL), TRAINER))
  return Array.from(keyed.observe('reference', x).prediction)
}

describe.each(['msgpack', 'json'] as const)('every frame round-trips in %s', (encoding) => {
  it('hello → welcome, with the protocol version, the model and the id', async () => {
    const server = await start()
    const client = await Client.open(server.url, encoding)
    client.send({ type: 'hello', id: 11 })
    const welcome = await client.next('welcome')
    expect(welcome).toMatchObject({
      type: 'welcome',
      id: 11,
      version: PROTOCOL_VERSION,
      model: { cell: 'gru', inputSize: 3, hiddenSize: 8, numLayers: 1, outputSize: 1, task: 'regression' },
    })
    expect(welcome.model).toMatchObject({ loss: 'mse', k1: 4, optimizer: 'adam', lr: 1e-2, clipNorm: 1 })
  })

  it('tick → prediction, with the id echoed, equal to the same model run here', async () => {
    const server = await start()
    const client = await Client.open(server.url, encoding)
    client.send({ type: 'tick', key: 'a', x: [0.5, -1.25, 2], id: 42 })
    const prediction = await client.next('prediction')
    expect(prediction).toEqual({
      type: 'prediction',
      key: 'a',
      id: 42,
      y: referencePrediction([0.5, -1.25, 2]),
    })
    client.send({ type: 'tick', key: 'a', x: [0, 0, 0] })
    expect(await client.next('prediction')).not.toHaveProperty('id')
  })

  it('subscribe → subscribed; subscribers get predictions with targets, updates and metrics', async () => {
    const server = await start({ metricsIntervalMs: 20 })
    const producer = await Client.open(server.url, encoding)
    const subscriber = await Client.open(server.url, encoding)
    subscriber.send({
      type: 'subscribe',
      channels: ['predictions', 'updates', 'metrics'],
      keys: ['a'],
      id: 3,
    })
    expect(await subscriber.next('subscribed')).toEqual({
      type: 'subscribed',
      channels: ['predictions', 'updates', 'metrics'],
      keys: ['a'],
      id: 3,
    })
    // Metrics come at once on subscribing, then every metricsIntervalMs.
    expect(await subscriber.next('metrics')).toMatchObject({ type: 'metrics', events: 0, subscribers: 1 })

    for (let t = 0; t < 4; t++) producer.send({ type: 'tick', key: 'a', x: [t, 1, -t], y: t / 4, id: t })
    producer.send({ type: 'tick', key: 'b', x: [1, 2, 3], y: 0.5, id: 99 })
    for (let t = 0; t < 4; t++) await producer.next('prediction', (f) => f.id === t)
    await producer.next('prediction', (f) => f.id === 99)

    for (let t = 0; t < 4; t++) {
      const shared = await subscriber.next('prediction', (f) => f.id === t)
      expect(shared).toMatchObject({ key: 'a', target: [t / 4] })
    }
    // k1 = 4: the fourth tick of key a updated the weights.
    const update = await subscriber.next('update')
    expect(update).toMatchObject({ type: 'update', key: 'a', step: 4, update: 1, skipped: false })
    expect(update.loss).toBeGreaterThan(0)
    expect(update.gradNorm).toBeGreaterThan(0)
    expect(typeof update.clipped).toBe('boolean')
    const metrics = await subscriber.next('metrics', (f) => f.events === 5)
    expect(metrics).toMatchObject({
      events: 5,
      producers: 1,
      subscribers: 1,
      keys: 2,
      updates: 1,
      rejected: 0,
    })
    // Key b is not followed.
    expect(subscriber.received.some((f) => f.key === 'b')).toBe(false)
  })

  it('answers first and learns after: the update follows the reply, and the weights are those of observe', async () => {
    const ticks = Array.from({ length: 12 }, (_, t) => ({
      key: t % 3 === 0 ? 'b' : 'a',
      x: [t / 10, 1, -t / 10],
      y: Math.sin(t),
    }))
    const order = async (deferUpdates: boolean) => {
      const server = await start({ deferUpdates })
      const client = await Client.open(server.url, encoding)
      client.send({ type: 'subscribe', channels: ['updates'] })
      await client.next('subscribed')
      // One tick at a time, each sent once the one before is answered.
      for (const [id, tick] of ticks.entries()) {
        client.send({ type: 'tick', ...tick, id })
        await client.next('prediction', (f) => f.id === id)
      }
      await until('the last update', () => server.monitor.updates === 3)
      const seen = client.received
        .filter((f) => f.type === 'prediction' || f.type === 'update')
        .map((f) => (f.type === 'update' ? `update ${f.key}` : `${f.key} #${f.id}`))
      return { seen, weights: server.model.params.values.slice() }
    }
    const deferred = await order(true)
    const immediate = await order(false)
    // The server staggers new keys' windows: a (the second key) starts one step in, so its third
    // tick (#4) completes its window. Deferred, the reply comes before the update.
    expect(deferred.seen.slice(4, 7)).toEqual(['a #4', 'update a', 'a #5'])
    expect(immediate.seen.slice(4, 7)).toEqual(['update a', 'a #4', 'a #5'])
    // Answered one by one, every update ran before the next tick: both learned the same weights,
    // those of KeyedTrainer.observe on the same ticks.
    const reference = new KeyedTrainer(new OnlineTrainer(createModel(MODEL), TRAINER), {
      staggerUpdates: true,
    })
    for (const tick of ticks) reference.observe(tick.key, tick.x, tick.y)
    expect(Array.from(deferred.weights)).toEqual(Array.from(reference.trainer.model.params.values))
    expect(Array.from(immediate.weights)).toEqual(Array.from(reference.trainer.model.params.values))
  })

  it('unsubscribe → subscribed with no channels, and nothing more arrives', async () => {
    const server = await start()
    const producer = await Client.open(server.url, encoding)
    const subscriber = await Client.open(server.url, encoding)
    subscriber.send({ type: 'subscribe', channels: ['predictions'] })
    await subscriber.next('subscribed')
    subscriber.send({ type: 'unsubscribe', id: 5 })
    expect(await subscriber.next('subscribed')).toEqual({ type: 'subscribed', channels: [], id: 5 })
    producer.send({ type: 'tick', key: 'a', x: [1, 2, 3], id: 1 })
    await producer.next('prediction')
    // Anything sent to the subscriber for that tick would arrive before this welcome.
    subscriber.send({ type: 'hello', id: 6 })
    await subscriber.next('welcome')
    expect(subscriber.received.map((f) => f.type)).toEqual(['subscribed', 'subscribed', 'welcome'])
  })

  it('reset: the next tick of the key starts from a fresh hidden state', async () => {
    const server = await start()
    const client = await Client.open(server.url, encoding)
    const x = [0.3, -0.7, 1.1]
    client.send({ type: 'tick', key: 'k', x, id: 1 })
    client.send({ type: 'tick', key: 'k', x, id: 2 })
    client.send({ type: 'reset', key: 'k', id: 3 })
    client.send({ type: 'tick', key: 'k', x, id: 4 })
    const [first, second, afterReset] = [
      await client.next('prediction', (f) => f.id === 1),
      await client.next('prediction', (f) => f.id === 2),
      await client.next('prediction', (f) => f.id === 4),
    ]
    expect(second.y).not.toEqual(first.y)
    expect(afterReset.y).toEqual(first.y)
  })

  it('error frames name the problem and echo the id of the refused frame', async () => {
    const server = await start()
    const client = await Client.open(server.url, encoding)
    const cases: [object, string, RegExp][] = [
      [{ type: 'tock', key: 'a', x: [1, 2, 3], id: 1 }, 'unknown_type', /unknown frame type "tock"/],
      [{ type: 'tick', x: [1, 2, 3], id: 2 }, 'missing_key', /tick has no key/],
      [
        { type: 'tick', key: 'a', x: [1, 2], id: 3 },
        'bad_input',
        /x has 2 values but the model takes 3 inputs/,
      ],
      [
        { type: 'tick', key: 'a', x: [1, '2', 3], id: 4 },
        'bad_input',
        /x\[1\] is the string "2", not a number/,
      ],
      [{ type: 'tick', key: 'a', x: [1, 2, 3], y: [1, 2], id: 5 }, 'bad_target', /y has 2 values/],
      [
        { type: 'subscribe', channels: ['gossip'], id: 6 },
        'bad_frame',
        /channels\[0\] is the string "gossip"/,
      ],
    ]
    for (const [frame] of cases) client.send(frame)
    for (const [frame, code, message] of cases) {
      const id = (frame as { id: number }).id
      const error = await client.next('error', (f) => f.id === id)
      expect(error.code).toBe(code)
      expect(error.message).toMatch(message)
    }
    // The connection goes on.
    client.send({ type: 'tick', key: 'a', x: [1, 2, 3], id: 7 })
    expect(await client.next('prediction')).toMatchObject({ id: 7 })
    expect(server.metrics().rejected).toBe(cases.length)
  })
})

describe('serve', () => {
  it('typed arrays arrive intact: Float32Array and Float64Array x predict as a number[] x', async () => {
    const server = await start()
    const client = await Client.open(server.url, 'msgpack')
    // Values a float32 holds exactly, so that all three carry the same numbers.
    const x = [0.5, -1.25, 2]
    client.send({ type: 'tick', key: 'plain', x, id: 1 })
    client.send({ type: 'tick', key: 'f32', x: Float32Array.from(x), id: 2 })
    client.send({ type: 'tick', key: 'f64', x: Float64Array.from(x), id: 3 })
    const ys = [
      await client.next('prediction', (f) => f.id === 1),
      await client.next('prediction', (f) => f.id === 2),
      await client.next('prediction', (f) => f.id === 3),
    ].map((p) => p.y)
    expect(ys[0]).toEqual(referencePrediction(x))
    expect(ys[1]).toEqual(ys[0])
    expect(ys[2]).toEqual(ys[0])
  })

  it('refuses NaN in a msgpack x and null in a JSON x, naming the element', async () => {
    const server = await start()
    const msgpack = await Client.open(server.url, 'msgpack')
    msgpack.send({ type: 'tick', key: 'a', x: [1, Number.NaN, 3], id: 1 })
    msgpack.send({ type: 'tick', key: 'a', x: Float64Array.of(1, 2, Number.POSITIVE_INFINITY), id: 2 })
    const nan = await msgpack.next('error', (f) => f.id === 1)
    expect(nan).toMatchObject({ code: 'bad_input' })
    expect(nan.message).toMatch(/x\[1\] is NaN; every value in x must be a finite number/)
    expect((await msgpack.next('error', (f) => f.id === 2)).message).toMatch(/x\[2\] is Infinity/)
    const json = await Client.open(server.url, 'json')
    json.sendRaw('{"type":"tick","key":"a","x":[1,null,3],"id":3}')
    const error = await json.next('error')
    expect(error).toMatchObject({ code: 'bad_input', id: 3 })
    expect(error.message).toMatch(/x\[1\] is null/)
  })

  it('garbage gets bad_frame; the connection and the model go on; refused frames leave the weights alone', async () => {
    const server = await start()
    const client = await Client.open(server.url, 'msgpack')
    const before = Float64Array.from(server.model.params.values)
    const bad: (Buffer | string)[] = [
      Buffer.from([0xc1, 0xff, 0x00, 0x13]),
      Buffer.from('{"type":"tick"}'),
      'not json at all',
      Buffer.from([0xff, 0xfe, 0xfd]).toString('latin1'),
      pack({ type: 'tick', key: 'a', x: [1, Number.NaN, 3], y: 0.5, id: 1 }),
      pack({ type: 'tick', key: 'a', x: [1, 2, 3], y: Number.NaN, id: 2 }),
      pack({ type: 'tick', key: 'a', x: [1, 2, 3, 4], y: 0.5, id: 3 }),
      pack([1, 2, 3]),
      pack('tick'),
    ]
    for (let round = 0; round < 8; round++) for (const data of bad) client.sendRaw(data)
    const errors = []
    for (let i = 0; i < bad.length * 8; i++) errors.push(await client.next('error'))
    expect(errors.slice(0, 4).map((e) => e.code)).toEqual([
      'bad_frame',
      'bad_frame',
      'bad_frame',
      'bad_frame',
    ])
    expect(errors[0]!.message).toMatch(/not valid msgpack/)
    expect(errors[1]!.message).toMatch(/looks like JSON/)
    expect(errors[2]!.message).toMatch(/not valid JSON/)
    expect(server.metrics()).toMatchObject({ rejected: bad.length * 8, events: 0 })
    expect(Float64Array.from(server.model.params.values)).toEqual(before)

    // Then good ticks with targets: predictions, and the weights learn.
    for (let t = 0; t < TRAINER.k1; t++)
      client.send({ type: 'tick', key: 'a', x: [t, 0, 1], y: 1, id: 10 + t })
    for (let t = 0; t < TRAINER.k1; t++) await client.next('prediction', (f) => f.id === 10 + t)
    expect(Float64Array.from(server.model.params.values)).not.toEqual(before)
  })

  it('an oversized frame closes its connection with 1009; other clients are unaffected', async () => {
    const server = await start({ maxPayload: 1024 })
    const big = await Client.open(server.url, 'json')
    const other = await Client.open(server.url, 'msgpack')
    other.send({ type: 'tick', key: 'other', x: [1, 2, 3], id: 1 })
    await other.next('prediction')
    big.send({ type: 'tick', key: 'big', x: [1, 2, 3], id: 1, padding: 'x'.repeat(2048) })
    expect(await big.closedWith()).toBe(1009)
    other.send({ type: 'tick', key: 'other', x: [1, 2, 3], id: 2 })
    expect(await other.next('prediction')).toMatchObject({ key: 'other', id: 2 })
    const next = await Client.open(server.url, 'json')
    next.send({ type: 'hello', id: 1 })
    await next.next('welcome')
  })

  it('a wrong or missing token gets HTTP 401 and no socket; the right one works in the header and in ?token=', async () => {
    const server = await start({ token: 's3cret-0123456789abcdef' })
    const refused = async (url: string, headers: Record<string, string> = {}): Promise<number> => {
      const ws = new WebSocket(url, { headers })
      let opened = false
      ws.on('open', () => {
        opened = true
      })
      ws.on('error', () => {})
      const [, response] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number }]
      ws.terminate()
      expect(opened).toBe(false)
      return response.statusCode
    }
    expect(await refused(server.url)).toBe(401)
    expect(await refused(server.url, { authorization: 'Bearer wrong' })).toBe(401)
    expect(await refused(`${server.url}/?token=wrong`)).toBe(401)

    const byHeader = await Client.open(server.url, 'msgpack', {
      headers: { authorization: 'Bearer s3cret-0123456789abcdef' },
    })
    byHeader.send({ type: 'hello', id: 1 })
    await byHeader.next('welcome')
    const byQuery = await Client.open(`${server.url}/?token=s3cret-0123456789abcdef`, 'json')
    byQuery.send({ type: 'tick', key: 'q', x: [1, 2, 3], id: 2 })
    expect(await byQuery.next('prediction')).toMatchObject({ id: 2 })
  })

  it('survives clients that reset the connection while being refused', async () => {
    const server = await start({ token: 's3cret-0123456789abcdef' })
    // Before the fix this crashed the process: the refusal's write hit ECONNRESET with no listener.
    for (let i = 0; i < 50; i++) {
      await new Promise<void>((resolve) => {
        const socket = connect(server.port, '127.0.0.1', () => {
          socket.write(
            'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
              'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
          )
          setImmediate(() => {
            socket.resetAndDestroy()
            resolve()
          })
        })
        socket.on('error', () => {})
      })
    }
    const client = await Client.open(server.url, 'json', {
      headers: { authorization: 'Bearer s3cret-0123456789abcdef' },
    })
    client.send({ type: 'hello', id: 1 })
    await client.next('welcome')
  })

  it('webSocketConnection reconnects after a server restart on the same port and carries on', async () => {
    const first = await start()
    const statuses: WebSocketStatus[] = []
    const frames: Frame[] = []
    const connection = webSocketConnection(first.url, {
      heartbeatMs: 0,
      reconnect: { initialDelayMs: 20, maxDelayMs: 50 },
      onStatus: (s) => statuses.push(s),
    })
    cleanups.push(() => connection.close())
    connection.messages$.subscribe((m) => frames.push(m as Frame))
    connection.send({ type: 'tick', key: 'a', x: [1, 2, 3], id: 1 })
    await until('the first prediction', () => frames.some((f) => f.id === 1))

    await first.close()
    await until('a reconnect attempt', () => statuses.some((s) => s.state === 'reconnecting'))
    expect(statuses.find((s) => s.state === 'closed')).toMatchObject({ code: 1001 })
    // Sent while the server is down: queued, and sent once the connection is back.
    connection.send({ type: 'tick', key: 'a', x: [1, 2, 3], id: 2 })
    const second = await start({ port: first.port })
    await until('the prediction from the new server', () => frames.some((f) => f.id === 2))
    connection.send({ type: 'tick', key: 'a', x: [3, 2, 1], id: 3 })
    await until('one more prediction', () => frames.some((f) => f.id === 3))
    expect(frames.filter((f) => f.type === 'prediction').map((f) => f.id)).toEqual([1, 2, 3])
    expect(second.metrics().events).toBe(2)
    expect(statuses.filter((s) => s.state === 'open')).toHaveLength(2)
  })

  it('a subscriber that stops reading never slows the model: its frames are dropped and counted', async () => {
    // Large predictions (1024 outputs, ~9 kB a frame) fill the socket buffers quickly.
    const maxBufferedBytes = 256 * 1024
    const server = await start({
      model: { cell: 'gru', inputSize: 1, hiddenSize: 4, outputSize: 1024, seed: 1 },
      maxBufferedBytes,
    })
    const slow = await Client.open(server.url, 'msgpack')
    slow.send({ type: 'subscribe', channels: ['predictions'] })
    await slow.next('subscribed')
    const socket = (slow.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket
    socket.pause()

    const producer = await Client.open(server.url, 'msgpack')
    const total = 2000
    const window = 16
    let answered = 0
    for (let sent = 0; sent < total; ) {
      while (sent < total && sent - answered < window)
        producer.send({ type: 'tick', key: 'p', x: [sent % 7], id: sent++ })
      await producer.next('prediction', (f) => f.id === answered)
      answered++
    }
    while (answered < total) await producer.next('prediction', (f) => f.id === answered++)
    // Every prediction came back while the subscriber read nothing.
    expect(producer.received.filter((f) => f.type === 'prediction')).toHaveLength(total)
    const { dropped, events } = server.metrics()
    expect(events).toBe(total)
    expect(dropped).toBeGreaterThan(0)

    // Each frame for the slow subscriber was either kept within its budget (and arrives now) or dropped.
    socket.resume()
    const delivered = (): number => slow.received.filter((f) => f.type === 'prediction').length
    await until('the kept frames to arrive', () => delivered() + dropped === total, 10_000)
    expect(delivered()).toBeLessThan(total)
  })

  it('twenty producers on different keys at once each get every prediction; the server holds 20 keys', async () => {
    const server = await start()
    const producers = 20
    const ticks = 30
    const clients = await Promise.all(
      Array.from({ length: producers }, (_, p) => Client.open(server.url, p % 2 === 0 ? 'msgpack' : 'json')),
    )
    clients.forEach((client, p) => {
      for (let t = 0; t < ticks; t++) {
        client.send({ type: 'tick', key: `producer-${p}`, x: [p, t, 1], y: Math.sin(t), id: t })
      }
    })
    await Promise.all(
      clients.map(async (client, p) => {
        for (let t = 0; t < ticks; t++) await client.next('prediction', (f) => f.id === t)
        const predictions = client.received.filter((f) => f.type === 'prediction')
        expect(predictions).toHaveLength(ticks)
        expect(new Set(predictions.map((f) => f.key))).toEqual(new Set([`producer-${p}`]))
      }),
    )
    expect(server.keyed.size).toBe(producers)
    expect(server.metrics()).toMatchObject({
      keys: producers,
      producers,
      events: producers * ticks,
      rejected: 0,
    })
  })
})

describe('rxrnn serve in a child process', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)(
    'prints "listening on ws://127.0.0.1:PORT"; %s closes connections with 1001 and exits 0',
    async (signal) => {
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          'streams/cli/index.ts',
          'serve',
          '--port',
          '0',
          '--input-size',
          '3',
          '--output-size',
          '1',
        ],
        { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
      )
      cleanups.push(() => child.exitCode === null && child.kill('SIGKILL'))
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
      const exited = once(child, 'exit')
      await until(`the listening line (stderr: ${stderr})`, () => stdout.includes('\n'), 15_000)
      const firstLine = stdout.split('\n')[0]!
      expect(firstLine).toMatch(/^listening on ws:\/\/127\.0\.0\.1:\d+$/)
      const url = firstLine.slice('listening on '.length)

      const client = await Client.open(url, 'msgpack')
      client.send({ type: 'tick', key: 'a', x: [1, 2, 3], id: 1 })
      await client.next('prediction')
      child.kill(signal)
      expect(await client.closedWith()).toBe(1001)
      const [code, exitSignal] = (await exited) as [number | null, string | null]
      expect({ code, exitSignal, stderr: stderr.includes('error') ? stderr : '' }).toEqual({
        code: 0,
        exitSignal: null,
        stderr: '',
      })
    },
  )
})
