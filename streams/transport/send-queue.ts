import { RxrnnError } from '../../src/errors.js'
import { type QueueSettings, resolveQueueSettings, type SendQueueOptions } from './options.js'
import { OPEN, type SendTarget, type WireData } from './socket.js'

/**
 * Counters of a {@link SendQueue}: `sent` frames were handed to the socket, `dropped` ones never will be,
 * `queued` ones wait. Every frame `push` could encode is in exactly one of them.
 *
 * @example
 * const { sent, dropped, queued } = queue.stats()
 */
export interface SendQueueStats {
  readonly sent: number
  readonly dropped: number
  readonly queued: number
}

type Timer = ReturnType<typeof setInterval>

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/**
 * A bounded queue of encoded frames in front of one socket (`ws` or a browser `WebSocket`). A frame goes
 * straight to the socket while it is open and buffers at most `highWaterMark` bytes; otherwise it waits
 * in a ring of `maxQueue` frames, and past that the drop policy throws a frame away and counts it. The
 * queue drains from the socket's send callbacks (`ws` has them), with a poll of `bufferedAmount` as a
 * backstop (all a browser offers); `attach` a new socket after a reconnect.
 *
 * @example
 * const queue = new SendQueue({ maxQueue: 100, highWaterMark: 64 * 1024 })
 * queue.attach(socket)
 * queue.push({ type: 'tick', t: Date.now(), x: [0.5] })
 * console.log(queue.stats()) // { sent: 1, dropped: 0, queued: 0 }
 */
export class SendQueue {
  private readonly settings: QueueSettings
  private readonly ring: (WireData | undefined)[]
  private head = 0
  private size = 0
  private sent = 0
  private dropped = 0
  private closed = false
  private socket: SendTarget | null = null
  private pollTimer: Timer | undefined
  private waiters: (() => void)[] = []
  private readonly onWritten = (): void => {
    if (this.size > 0 || this.waiters.length > 0) this.drain()
  }

  constructor(options: SendQueueOptions = {}) {
    this.settings = resolveQueueSettings(options)
    this.ring = new Array<WireData | undefined>(this.settings.maxQueue)
  }

  /** Starts sending on `socket` (open or about to be), beginning with what is queued. */
  attach(socket: SendTarget): void {
    this.socket = socket
    this.drain()
  }

  /** Stops sending: frames queue up (and drop) until the next `attach`. */
  detach(): void {
    this.socket = null
    this.settle()
  }

  /**
   * Encodes `frame` and sends or queues it. Returns false when the frame itself was dropped (queue full
   * under 'drop-newest', or queue closed). Throws `RxrnnError('bad_frame')` when the frame cannot be encoded.
   */
  push(frame: unknown): boolean {
    if (this.closed) {
      this.dropped++
      return false
    }
    let data: WireData
    try {
      data = this.settings.encode(frame)
    } catch (error) {
      throw new RxrnnError(
        'bad_frame',
        `Could not encode a frame with ${this.settings.encoding} (${messageOf(error)}): send plain objects, ` +
          'arrays, numbers and strings, or pass an `encode` function that handles this frame',
      )
    }
    if (this.size > 0) this.drain()
    const socket = this.socket
    if (this.size === 0 && socket !== null && this.writable(socket)) {
      this.write(socket, data)
      return true
    }
    return this.enqueue(data)
  }

  stats(): SendQueueStats {
    return { sent: this.sent, dropped: this.dropped, queued: this.size }
  }

  /** Resolves once nothing is queued and the attached socket has flushed its buffer, or the queue closed. */
  drained(): Promise<void> {
    if (this.isDrained()) return Promise.resolve()
    return new Promise((resolve) => {
      this.waiters.push(resolve)
      this.settle()
    })
  }

  /** Drops what is queued (counted), refuses further frames and stops its timer. */
  close(): void {
    this.closed = true
    this.dropped += this.size
    this.ring.fill(undefined)
    this.head = 0
    this.size = 0
    this.socket = null
    this.settle()
  }

  private writable(socket: SendTarget): boolean {
    return socket.readyState === OPEN && socket.bufferedAmount <= this.settings.highWaterMark
  }

  private write(socket: SendTarget, data: WireData): void {
    socket.send(data, this.onWritten)
    this.sent++
  }

  private enqueue(data: WireData): boolean {
    const capacity = this.ring.length
    if (this.size === capacity) {
      this.dropped++
      // With no room at all the new frame is also the oldest one.
      if (!this.settings.dropOldest || capacity === 0) return false
      this.ring[this.head] = undefined
      this.head = (this.head + 1) % capacity
      this.size--
    }
    this.ring[(this.head + this.size) % capacity] = data
    this.size++
    this.settle()
    return true
  }

  private drain(): void {
    const socket = this.socket
    while (this.size > 0 && socket !== null && this.writable(socket)) {
      const data = this.ring[this.head]!
      this.ring[this.head] = undefined
      this.head = (this.head + 1) % this.ring.length
      this.size--
      this.write(socket, data)
    }
    this.settle()
  }

  private isDrained(): boolean {
    return this.size === 0 && (this.socket === null || this.socket.bufferedAmount === 0)
  }

  private settle(): void {
    if (this.waiters.length > 0 && this.isDrained()) {
      const waiters = this.waiters
      this.waiters = []
      for (const resolve of waiters) resolve()
    }
    const needsPoll = this.socket !== null && (this.size > 0 || this.waiters.length > 0)
    if (needsPoll && this.pollTimer === undefined) {
      this.pollTimer = setInterval(() => this.drain(), this.settings.drainPollMs)
      // Node: the poll alone must not keep the process alive. Browsers return a number.
      ;(this.pollTimer as { unref?: () => void }).unref?.()
    } else if (!needsPoll && this.pollTimer !== undefined) {
      clearInterval(this.pollTimer)
      this.pollTimer = undefined
    }
  }
}
