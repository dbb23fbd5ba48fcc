/**
 * One client connection: its WebSocket and the TCP (or TLS) socket under it, as the upgrade
 * handler received it; what it follows (channels, keys, maxRate); how many bytes it holds in
 * the server's memory; and `send`, which corks replies into one write per turn of the event
 * loop and drops frames (counted) once the connection is over its byte budget.
 */
import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import type { FrameEncoding } from '../transport/codec.js'
import { encodeFrame } from '../transport/codec.js'
import type { Channel, ServerFrame } from '../transport/protocol.js'
import type { SharedFrame } from './frames.js'
import { RateBucket } from './limits.js'

/** How long replies may wait in a corked socket while later ticks of the same chunk run, in ms. */
const CORK_BUDGET_MS = 1

/**
 * Heap bytes a queued frame holds beside its payload: the write request and the frame header
 * ws writes before it (two stream chunks, their Buffers and callbacks). Measured with stalled
 * subscribers (test/streams/server/slow-readers.test.ts); small frames are mostly overhead.
 */
export const FRAME_OVERHEAD_BYTES = 400

/** Send options for a shared JSON frame: UTF-8 bytes that go out as a text frame. */
const TEXT = { binary: false } as const

/** The byte budgets every connection draws from, and the server's counts of what they refused. */
export interface SendBudget {
  /** Bytes one connection may hold unsent before frames to it are dropped. */
  readonly perConnection: number
  /** Bytes all connections together may hold unsent. */
  readonly total: number
  /** Bytes held now, all connections (kept up to date by every send and every sweep). */
  held: number
  /** Frames dropped for a full budget. */
  dropped: number
  /** Frames left out by subscribers' maxRate. */
  sampledOut: number
}

export class Connection {
  /** Encoding of the last frame received: replies use the encoding of the request. */
  encoding: FrameEncoding = 'msgpack'
  producer = false
  channels: ReadonlySet<Channel> = new Set()
  keys: ReadonlySet<string> | null = null
  /** The subscriber's maxRate (frames per second per channel, metrics excepted), or null. */
  maxRate: number | null = null
  /** Frames dropped for this connection's budget, and left out by its maxRate. */
  dropped = 0
  sampledOut = 0
  /** When the peer last sent anything (a frame or a pong), ms since the epoch. */
  lastSeen = Date.now()
  /** Since when its frames are being dropped (ms), 0 when they are not. */
  overBudgetSince = 0
  /** New keys this connection may still create this second. */
  readonly newKeys: RateBucket
  private readonly rate = { predictions: [0, 0], hidden: [0, 0], updates: [0, 0] }
  private corked = false
  private corkedAt = 0
  private framesSent = 0
  private bytesSent = 0
  /** Bytes this connection held at its last send or sweep (its share of budget.held). */
  private held = 0

  constructor(
    readonly socket: WebSocket,
    /** The socket under the WebSocket, as the upgrade handler got it (corked around replies). */
    private readonly tcp: Duplex,
    readonly address: string,
    private readonly budget: SendBudget,
    newKeysPerSecond: number,
  ) {
    this.newKeys = new RateBucket(newKeysPerSecond)
    socket.on('pong', () => {
      this.lastSeen = Date.now()
    })
  }

  /** Sends a frame in this connection's encoding, unless its budget is spent (then it is dropped and counted). */
  send(frame: ServerFrame): void {
    if (this.refuses(false)) return
    this.write(encodeFrame(frame, this.encoding), undefined)
  }

  /** Sends a frame encoded once for every connection that gets it. */
  sendShared(frame: SharedFrame): void {
    if (this.refuses(true)) return
    this.write(frame.bytes(this.encoding), this.encoding === 'json' ? TEXT : undefined)
  }

  /** Whether this connection follows `channel` for `key` (null: a global frame). */
  follows(channel: Channel, key: string | null): boolean {
    return this.channels.has(channel) && (key === null || this.keys === null || this.keys.has(key))
  }

  /** Whether maxRate lets one more frame of this channel through now (counts the ones it does not). */
  underRate(channel: Channel, now: number): boolean {
    if (this.maxRate === null || channel === 'metrics') return true
    const counter = this.rate[channel]
    const second = Math.floor(now / 1000)
    if (counter[0] !== second) {
      counter[0] = second
      counter[1] = 0
    }
    if (counter[1]! >= this.maxRate) {
      this.sampledOut++
      this.budget.sampledOut++
      return false
    }
    counter[1]!++
    return true
  }

  /**
   * Bytes this connection holds in the server's memory: what ws and the socket have queued,
   * plus each queued frame's overhead (estimated from the connection's mean frame size).
   */
  heldBytes(): number {
    const buffered = this.socket.bufferedAmount
    if (buffered === 0 || this.framesSent === 0) return buffered
    const meanFrame = this.bytesSent / this.framesSent
    return buffered + Math.ceil(buffered / meanFrame) * FRAME_OVERHEAD_BYTES
  }

  /**
   * Brings this connection's share of the global budget up to date, and says whether it has
   * been over its budget for `graceMs` (the caller then closes it).
   */
  sweep(now: number, graceMs: number): boolean {
    this.account()
    if (this.overBudgetSince === 0) return false
    if (this.held < this.budget.perConnection / 2) {
      this.overBudgetSince = 0
      return false
    }
    return now - this.overBudgetSince >= graceMs
  }

  /** Gives this connection's share of the budget back (it closed). */
  release(): void {
    this.budget.held -= this.held
    this.held = 0
  }

  /**
   * Whether the next frame is dropped: the connection is over its own budget, or (for broadcast
   * frames) all connections together are over the global one. A connection's own replies (the
   * answers to its ticks) only answer to its own budget, so stalled subscribers never cost a
   * producer its predictions.
   */
  private refuses(broadcast: boolean): boolean {
    if (this.socket.readyState !== 1) return true
    if (this.within(broadcast)) return false
    // The figures may be stale: a reader that caught up since shows it now.
    this.account()
    if (this.within(broadcast)) return false
    this.dropped++
    this.budget.dropped++
    if (this.overBudgetSince === 0) this.overBudgetSince = Date.now()
    return true
  }

  private within(broadcast: boolean): boolean {
    return this.held <= this.budget.perConnection && (!broadcast || this.budget.held <= this.budget.total)
  }

  private write(data: Uint8Array | string, options: typeof TEXT | undefined): void {
    // Replies to the ticks of one incoming TCP chunk leave in one write: cork the socket at the
    // first, uncork when this turn of the event loop is done. Under load this is the difference
    // between a syscall per tick and a syscall per batch; a lone tick is not delayed. A long
    // chunk (a backlog after a stall) is flushed every CORK_BUDGET_MS, so its first replies do
    // not wait for its last ticks and their weight updates.
    if (!this.corked) {
      this.corked = true
      this.corkedAt = performance.now()
      this.tcp.cork()
      process.nextTick(uncork, this)
    } else if (performance.now() - this.corkedAt > CORK_BUDGET_MS) {
      this.tcp.uncork()
      this.tcp.cork()
      this.corkedAt = performance.now()
    }
    this.socket.send(data, options as never)
    this.framesSent++
    this.bytesSent += typeof data === 'string' ? data.length : data.byteLength
    this.account()
  }

  private account(): void {
    const held = this.heldBytes()
    this.budget.held += held - this.held
    this.held = held
  }

  /** Ends the cork `write` started this turn. */
  endCork(): void {
    this.corked = false
    this.tcp.uncork()
  }
}

/** A plain function for process.nextTick: no closure per batch of replies. */
function uncork(conn: Connection): void {
  conn.endCork()
}
