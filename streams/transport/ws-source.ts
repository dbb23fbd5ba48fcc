import { Observable, ReplaySubject, Subject } from 'rxjs'
import { openSocket, platform } from '#websocket'
import { Link } from './link.js'
import {
  resolveConnectionSettings,
  type WebSocketConnectionOptions,
  type WebSocketSourceOptions,
  type WebSocketStatus,
} from './options.js'
import { SendQueue, type SendQueueStats } from './send-queue.js'

export type {
  FrameDecoder,
  FrameEncoder,
  ReconnectOptions,
  SendQueueOptions,
  WebSocketConnectionOptions,
  WebSocketSourceOptions,
  WebSocketStatus,
} from './options.js'

/**
 * Counters of a {@link WebSocketConnection}: those of its send queue, plus messages received, messages
 * that failed to decode, and reconnects scheduled.
 *
 * @example
 * setInterval(() => console.log(connection.stats()), 10_000).unref()
 */
export interface ConnectionStats extends SendQueueStats {
  readonly received: number
  readonly decodeErrors: number
  readonly reconnects: number
}

/**
 * One reconnecting socket that both sends and receives: what a producer needs to send ticks and read
 * predictions on the same connection.
 *
 * @example
 * const connection = webSocketConnection('ws://127.0.0.1:8080/stream')
 * connection.messages$.subscribe((prediction) => console.log(prediction))
 * ticks$.subscribe((tick) => connection.send({ type: 'tick', ...tick }))
 */
export interface WebSocketConnection {
  /** Every decoded message (hot: messages before the first subscription are not replayed). */
  readonly messages$: Observable<unknown>
  /** Replays the latest status; completes after `close()` or when the connection gives up. */
  readonly status$: Observable<WebSocketStatus>
  /** Encodes and sends a frame, or queues it; false when it was dropped. Throws `bad_frame` if unencodable. */
  send(frame: unknown): boolean
  stats(): ConnectionStats
  /** Resolves once the queue is empty and the socket buffer flushed (or the connection ended). */
  drained(): Promise<void>
  /** Closes the socket (code 1000) and stops reconnecting; still-queued frames count as dropped. */
  close(): void
}

/**
 * A cold Observable of the messages a WebSocket server sends. Each subscription opens its own connection,
 * decodes every message (binary: msgpack, text: JSON, unless `decode` says otherwise), pings the server
 * to find dead peers, reconnects with capped exponential backoff and full jitter, and closes the socket
 * on unsubscribe. Messages that fail to decode go to `onDecodeError` and the stream goes on. It errors
 * with `RxrnnError` when the server refuses the token (HTTP 401/403, never retried), when reconnects run
 * out, or when the connection closes with `reconnect: false` (a clean close completes instead).
 * Throws `RxrnnError('bad_config')` at once on invalid options. In a browser it runs on the platform's
 * `WebSocket`; see `WebSocketSourceOptions` for what differs there.
 *
 * @example
 * webSocketSource('ws://127.0.0.1:8080/predictions', {
 *   token: process.env.RXRNN_TOKEN,
 *   onStatus: (s) => console.error(`[ws] ${s.state}`, s.delayMs ?? ''),
 * }).subscribe((message) => console.log(message))
 */
export function webSocketSource(
  url: string | URL,
  options: WebSocketSourceOptions = {},
): Observable<unknown> {
  const { link: settings } = resolveConnectionSettings(url, options, platform)
  return new Observable<unknown>((subscriber) => {
    const link = new Link(settings, openSocket, subscriber, null)
    link.start()
    return () => link.stop()
  })
}

/**
 * Opens one reconnecting connection at once that both receives (`messages$`) and sends (`send`). Sends
 * go through a bounded send queue: while the connection is down, or the socket buffers more than
 * `highWaterMark` bytes, frames wait (at most `maxQueue`; 'drop-oldest' by default), and they go out in
 * order after the reconnect. `close()` ends it; a refused token or exhausted reconnects error `messages$`.
 * Throws `RxrnnError('bad_config')` at once on invalid options.
 *
 * @example
 * const connection = webSocketConnection('ws://127.0.0.1:8080/stream', { encoding: 'json' })
 * connection.messages$.subscribe({ next: (m) => console.log('prediction', m), error: console.error })
 * connection.send({ type: 'tick', t: Date.now(), x: [0.1, 0.2] })
 * await connection.drained()
 * connection.close()
 */
export function webSocketConnection(
  url: string | URL,
  options: WebSocketConnectionOptions = {},
): WebSocketConnection {
  const { link: settings } = resolveConnectionSettings(url, options, platform)
  const messages = new Subject<unknown>()
  const status = new ReplaySubject<WebSocketStatus>(1)
  const outbox = new SendQueue(options)
  const link = new Link(
    settings,
    openSocket,
    {
      next: (value) => messages.next(value),
      status: (s) => status.next(s),
      error: (error) => {
        messages.error(error)
        status.complete()
      },
      complete: () => {
        messages.complete()
        status.complete()
      },
    },
    outbox,
  )
  link.start()
  return {
    messages$: messages.asObservable(),
    status$: status.asObservable(),
    send: (frame) => outbox.push(frame),
    stats: () => ({
      ...outbox.stats(),
      received: link.received,
      decodeErrors: link.decodeErrors,
      reconnects: link.reconnects,
    }),
    drained: () => outbox.drained(),
    close: () => {
      link.stop()
      messages.complete()
      status.complete()
    },
  }
}
