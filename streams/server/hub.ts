/**
 * The open connections and who follows what: `broadcast` sends a frame to every connection
 * that follows its channel and key, encoding it once per encoding.
 */
import type { Channel, ServerFrame, SubscribeFrame } from '../transport/protocol.js'
import type { Connection } from './connection.js'
import { SharedFrame } from './frames.js'

export class Hub {
  readonly connections = new Set<Connection>()
  /** Connections following each channel, so a tick with no one listening costs no loop. */
  readonly following: Record<Channel, number> = { predictions: 0, updates: 0, metrics: 0, hidden: 0 }

  add(conn: Connection): void {
    this.connections.add(conn)
  }

  remove(conn: Connection): void {
    if (!this.connections.delete(conn)) return
    this.unsubscribe(conn)
  }

  /** Replaces the connection's subscription with `frame`'s. */
  subscribe(conn: Connection, frame: SubscribeFrame): void {
    this.setChannels(conn, frame.channels)
    conn.keys = frame.keys ? new Set(frame.keys) : null
    conn.maxRate = frame.maxRate ?? null
  }

  unsubscribe(conn: Connection): void {
    this.setChannels(conn, [])
    conn.keys = null
    conn.maxRate = null
  }

  /**
   * Sends `frame` to every connection (but `except`) that follows `channel` for `key` (null:
   * every follower), within its maxRate; built lazily by `make` only when someone gets it.
   */
  broadcast(
    channel: Channel,
    key: string | null,
    make: () => ServerFrame,
    except?: Connection,
    /** Rare frames that are the point of watching (anomalies, drift alarms) pass maxRate. */
    essential = false,
  ): void {
    if (this.following[channel] === 0) return
    let shared: SharedFrame | undefined
    const now = Date.now()
    for (const conn of this.connections) {
      if (conn === except || !conn.follows(channel, key)) continue
      if (!essential && !conn.underRate(channel, now)) continue
      shared ??= new SharedFrame(make())
      conn.sendShared(shared)
    }
  }

  /** Producers (connections that sent a tick) and subscribers (connections that follow a channel). */
  roles(): { producers: number; subscribers: number } {
    let producers = 0
    let subscribers = 0
    for (const c of this.connections) {
      if (c.producer) producers++
      if (c.channels.size > 0) subscribers++
    }
    return { producers, subscribers }
  }

  /**
   * Pings every connection, and terminates those that sent nothing (not even a pong) for
   * `idleTimeoutMs`; returns how many it terminated.
   */
  heartbeat(now: number, idleTimeoutMs: number): number {
    let dead = 0
    for (const conn of this.connections) {
      if (now - conn.lastSeen > idleTimeoutMs) {
        dead++
        conn.socket.terminate()
      } else if (conn.socket.readyState === 1) conn.socket.ping()
    }
    return dead
  }

  /**
   * Closes (1013) the connections over their byte budget for `graceMs` and returns them. Their
   * buffers are full, so the close frame may never leave: they are terminated a second later.
   */
  closeSlowReaders(now: number, graceMs: number): Connection[] {
    const closed: Connection[] = []
    for (const conn of this.connections) {
      if (!conn.sweep(now, graceMs)) continue
      closed.push(conn)
      this.remove(conn)
      conn.socket.close(1013, 'too slow: subscribe to less, or set maxRate')
      setTimeout(() => conn.socket.terminate(), 1000).unref()
    }
    return closed
  }

  private setChannels(conn: Connection, channels: Iterable<Channel>): void {
    for (const c of conn.channels) this.following[c]--
    conn.channels = new Set(channels)
    for (const c of conn.channels) this.following[c]++
  }
}
