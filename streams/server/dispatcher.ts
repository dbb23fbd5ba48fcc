/**
 * What happens to each frame a connection sends: decode and check it, refuse it with an error
 * frame (counted), or hand it to the learner and the hub: a tick is answered with its
 * prediction and broadcast to subscribers, a subscribe changes what the connection follows. A
 * bug on one frame closes that connection (1011), never the server.
 */
import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import { RxrnnError } from '../../src/index.js'
import type { FrameData } from '../transport/codec.js'
import { decodeClientFrame } from '../transport/codec.js'
import type {
  ClientFrame,
  ErrorFrame,
  FrameExpectations,
  MetricsFrame,
  TickFrame,
} from '../transport/protocol.js'
import { errorFrame } from '../transport/protocol.js'
import { Connection, type SendBudget } from './connection.js'
import { hiddenFrame, predictionFrame, subscribedFrame, welcomeFrame } from './frames.js'
import type { Hub } from './hub.js'
import type { Learner, TickResult } from './learner.js'

const INTERNAL =
  'The server failed on this frame and closes this connection (1011); it goes on. Please report this.'

export interface DispatcherOptions {
  learner: Learner
  hub: Hub
  budget: SendBudget
  /** What a frame must look like (model shape, size and value caps). */
  expect: FrameExpectations & { maxBytes: number; maxValues: number }
  maxNewKeysPerSecond: number
  /** The metrics frame a new metrics subscriber gets at once. */
  metrics(): MetricsFrame
  /** Observes each tick's handling time, in seconds. */
  tickSeconds: { observe(seconds: number): void }
  /** Counted here: ticks refused for new keys too fast. */
  counts: { rateLimited: number }
  log(line: string): void
}

export class Dispatcher {
  constructor(private readonly o: DispatcherOptions) {}

  /** Takes a WebSocket the front door admitted. */
  connect(socket: WebSocket, tcp: Duplex, address: string): void {
    const { hub, budget, log } = this.o
    const conn = new Connection(socket, tcp, address, budget, this.o.maxNewKeysPerSecond)
    hub.add(conn)
    socket.on('message', (data, isBinary) => this.onMessageGuarded(conn, data as FrameData, isBinary))
    socket.on('error', (error) => log(`connection error from ${address}: ${error.message}`))
    socket.on('close', () => {
      hub.remove(conn)
      conn.release()
    })
  }

  private onMessageGuarded(conn: Connection, data: FrameData, isBinary: boolean): void {
    try {
      this.onMessage(conn, data, isBinary)
    } catch (error) {
      this.o.log(
        `internal error on a frame from ${conn.address}: ${error instanceof Error ? error.stack : error}`,
      )
      try {
        conn.send(errorFrame('internal', INTERNAL))
        conn.socket.close(1011, 'internal error')
      } catch {
        conn.socket.terminate()
      }
    }
  }

  private onMessage(conn: Connection, data: FrameData, isBinary: boolean): void {
    conn.lastSeen = Date.now()
    const decoded = decodeClientFrame(data, isBinary, this.o.expect)
    conn.encoding = decoded.encoding
    if (!decoded.ok) {
      this.reject(conn, decoded.error, data)
      return
    }
    this.onFrame(conn, decoded.frame)
  }

  private onFrame(conn: Connection, frame: ClientFrame): void {
    const { hub, learner } = this.o
    switch (frame.type) {
      case 'tick':
        this.onTick(conn, frame)
        return
      case 'subscribe':
        hub.subscribe(conn, frame)
        conn.send(subscribedFrame(frame.channels, frame.keys, frame.id))
        if (conn.channels.has('metrics')) conn.send(this.o.metrics())
        return
      case 'unsubscribe':
        hub.unsubscribe(conn)
        conn.send(subscribedFrame([], undefined, frame.id))
        return
      case 'reset':
        learner.reset(frame.key)
        return
      case 'hello':
        conn.send(welcomeFrame(learner.summary, frame.id))
        return
    }
  }

  private onTick(conn: Connection, tick: TickFrame): void {
    const { hub, learner } = this.o
    const started = performance.now()
    conn.producer = true
    const { key, y } = tick
    if (!learner.has(key) && !conn.newKeys.take(started)) {
      this.o.counts.rateLimited++
      const message =
        `this connection creates keys faster than ${this.o.maxNewKeysPerSecond} per second ` +
        '(--max-new-keys-per-second); reuse keys, or send new ones more slowly'
      this.reject(conn, errorFrame('rate_limited', message, tick.id), tick, key)
      return
    }
    let result: TickResult
    try {
      result = learner.tick(key, tick.x, y, tick.t)
    } catch (error) {
      if (!(error instanceof RxrnnError)) throw error
      this.reject(conn, errorFrame(error.code, error.message, tick.id), tick, key)
      return
    }
    conn.send(predictionFrame(key, tick.id, result))
    const drift = result.forecast?.drift
    if (drift) hub.broadcast('updates', key, () => drift, undefined, true)
    // Other subscribers also get the target, when the tick had one.
    if (hub.following.predictions > 0) {
      const target = y === undefined ? undefined : typeof y === 'number' ? [y] : Array.from(y)
      const anomalous = result.forecast?.isAnomaly === true
      hub.broadcast('predictions', key, () => predictionFrame(key, tick.id, result, target), conn, anomalous)
    }
    if (hub.following.hidden > 0) {
      const h = learner.hidden(key)
      if (h) hub.broadcast('hidden', key, () => hiddenFrame(key, h))
    }
    this.o.tickSeconds.observe((performance.now() - started) / 1000)
  }

  /** Answers a refused frame with its error frame, and counts it (monitor and per code). */
  private reject(conn: Connection, error: ErrorFrame, event: unknown, key?: string): void {
    this.o.learner.monitor.reject(new RxrnnError(error.code, error.message), event, key)
    this.o.learner.reject(error)
    conn.send(error)
  }
}
