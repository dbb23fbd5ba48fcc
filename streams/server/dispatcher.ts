/**
 * What happens to each frame a connection sends: decode and check it, refuse it with an error
 * frame (counted), or hand it to the tick handler and the hub: a tick (within the connection's
 * new-key rate) goes to the handler, which answers it (a local learner at once, the NATS gateway
 * when a worker has), a subscribe changes what the connection follows. A bug on one frame closes
 * that connection (1011), never the server.
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
  SubscribeFrame,
  TickFrame,
} from '../transport/protocol.js'
import { errorFrame } from '../transport/protocol.js'
import { Connection, type SendBudget } from './connection.js'
import { subscribedFrame, welcomeFrame } from './frames.js'
import type { Hub } from './hub.js'
import type { TickHandler } from './tick-handler.js'

const INTERNAL =
  'The server failed on this frame and closes this connection (1011); it goes on. Please report this.'

export interface DispatcherOptions {
  /** Answers the ticks (a local learner, or the NATS gateway). */
  handler: TickHandler
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
    const { hub, handler } = this.o
    switch (frame.type) {
      case 'tick':
        this.onTick(conn, frame)
        return
      case 'subscribe':
        this.onSubscribe(conn, frame)
        if (conn.channels.has('metrics')) conn.send(this.o.metrics())
        return
      case 'unsubscribe':
        hub.unsubscribe(conn)
        conn.send(subscribedFrame([], undefined, frame.id))
        return
      case 'reset':
        handler.reset(frame.key)
        return
      case 'hello':
        conn.send(welcomeFrame(handler.summary, frame.id))
        return
    }
  }

  /** Follows what the handler feeds of what the frame names (a gateway feeds no `updates`). */
  private onSubscribe(conn: Connection, frame: SubscribeFrame): void {
    const fed = this.o.handler.channels
    if (fed !== undefined && !frame.channels.every((c) => fed.has(c))) {
      frame = { ...frame, channels: frame.channels.filter((c) => fed.has(c)) }
    }
    this.o.hub.subscribe(conn, frame)
    conn.send(subscribedFrame(frame.channels, frame.keys, frame.id))
  }

  private onTick(conn: Connection, tick: TickFrame): void {
    const { handler } = this.o
    const started = performance.now()
    conn.producer = true
    const key = tick.key
    if (!handler.has(key) && !conn.newKeys.take(started)) {
      this.o.counts.rateLimited++
      const message =
        `this connection creates keys faster than ${this.o.maxNewKeysPerSecond} per second ` +
        '(--max-new-keys-per-second); reuse keys, or send new ones more slowly'
      this.reject(conn, errorFrame('rate_limited', message, tick.id), tick, key)
      return
    }
    try {
      handler.tick(conn, tick)
    } catch (error) {
      if (!(error instanceof RxrnnError)) throw error
      this.reject(conn, errorFrame(error.code, error.message, tick.id), tick, key)
      return
    }
    this.o.tickSeconds.observe((performance.now() - started) / 1000)
  }

  /** Answers a refused frame with its error frame, and counts it (monitor and per code). */
  private reject(conn: Connection, error: ErrorFrame, event: unknown, key?: string): void {
    this.o.handler.reject(error, event, key)
    conn.send(error)
  }
}
