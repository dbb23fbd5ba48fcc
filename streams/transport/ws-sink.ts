import { Observable, type OperatorFunction } from 'rxjs'
import { platform } from '#websocket'
import { RxrnnError } from '../../src/errors.js'
import { checkWebSocketOptions, type WebSocketConnectionOptions } from './options.js'
import { SendQueue, type SendQueueStats } from './send-queue.js'
import { CLOSED, CONNECTING, isOwnedWebSocket, OPEN, type OwnedWebSocket } from './socket.js'
import { webSocketConnection } from './ws-source.js'

/**
 * What a sink reports: `sent` frames were handed to the socket, `dropped` ones were thrown away by the
 * drop policy (or left queued when the socket closed), `queued` ones wait. `sent + dropped + queued` is
 * the number of frames the source emitted.
 *
 * @example
 * ticks$.pipe(webSocketSink(url)).subscribe(({ sent, dropped }) => console.log(`${sent} sent, ${dropped} dropped`))
 */
export type SinkStats = SendQueueStats

/**
 * Options of {@link webSocketSink}: how frames are encoded and queued (see `SendQueueOptions`), how often
 * stats are reported, and, when the sink opens its own connection from a URL, the connection options
 * (token, reconnect, heartbeat) of `webSocketConnection`.
 *
 * @example
 * const options: WebSocketSinkOptions = { encoding: 'json', maxQueue: 200, dropPolicy: 'drop-newest' }
 */
export interface WebSocketSinkOptions extends WebSocketConnectionOptions {
  /** Interval of the stats the sink emits while it runs; 0 emits only the final ones. Default 1_000. */
  readonly statsIntervalMs?: number
}

interface Channel {
  send(frame: unknown): boolean
  stats(): SendQueueStats
  drained(): Promise<void>
  close(): void
}

function isUrl(target: OwnedWebSocket | string | URL): target is string | URL {
  return typeof target === 'string' || target instanceof URL
}

/** A queue on a socket someone else owns: the sink never closes it, and stops when it closes. */
function socketChannel(socket: OwnedWebSocket, options: WebSocketSinkOptions, onClosed: () => void): Channel {
  const queue = new SendQueue(options)
  const onOpen = (): void => {
    socket.removeEventListener('open', onOpen)
    queue.attach(socket)
  }
  const onClose = (): void => {
    socket.removeEventListener('open', onOpen)
    socket.removeEventListener('close', onClose)
    queue.close()
    onClosed()
  }
  if (socket.readyState === OPEN) queue.attach(socket)
  else if (socket.readyState === CONNECTING) socket.addEventListener('open', onOpen)
  if (socket.readyState === CLOSED) queueMicrotask(onClose)
  else socket.addEventListener('close', onClose)
  return {
    send: (frame) => queue.push(frame),
    stats: () => queue.stats(),
    drained: () => queue.drained(),
    close: () => {
      socket.removeEventListener('open', onOpen)
      socket.removeEventListener('close', onClose)
      queue.close()
    },
  }
}

/** A reconnecting connection of the sink's own, closed when the sink ends. */
function urlChannel(
  url: string | URL,
  options: WebSocketSinkOptions,
  onError: (error: unknown) => void,
): Channel {
  const connection = webSocketConnection(url, options)
  connection.messages$.subscribe({ error: onError })
  return {
    send: (frame) => connection.send(frame),
    stats: () => {
      const { sent, dropped, queued } = connection.stats()
      return { sent, dropped, queued }
    },
    drained: () => connection.drained(),
    close: () => connection.close(),
  }
}

/**
 * An operator that sends every frame of the source over a WebSocket and emits {@link SinkStats}: every
 * `statsIntervalMs`, and once more when the source has completed and every queued frame was handed to
 * the socket (then it completes). Frames are encoded with msgpack (binary) or JSON (text). While the
 * socket buffers more than `highWaterMark` bytes (a slow or stalled reader), frames wait in a bounded
 * queue of `maxQueue`; when it is full, `dropPolicy` throws away the oldest or the newest frame and
 * counts it, so memory stays bounded whatever the reader does.
 *
 * The target is either a WebSocket (open or connecting; `ws`, client or server side, in Node, the
 * platform's `WebSocket` in a browser) that the caller owns:
 * the sink never closes it, and completes when it closes; or a URL: the sink opens its own reconnecting
 * connection on subscribe (see `webSocketConnection`), queues while reconnecting, and closes it when done.
 * An unencodable frame errors with `RxrnnError('bad_frame')`; a refused token or exhausted reconnects
 * error with the connection's error. Throws `RxrnnError('bad_config')` at once on invalid options.
 *
 * @example
 * // producer: stream ticks to the server, report backpressure every 5 s
 * ticks$
 *   .pipe(webSocketSink('ws://127.0.0.1:8080/stream', { token, maxQueue: 500, statsIntervalMs: 5_000 }))
 *   .subscribe((stats) => console.error(stats))
 *
 * @example
 * // server side: push predictions to one client without letting a slow client grow memory
 * wss.on('connection', (socket) => predictions$.pipe(webSocketSink(socket, { encoding: 'json' })).subscribe())
 */
export function webSocketSink(
  target: OwnedWebSocket | string | URL,
  options: WebSocketSinkOptions = {},
): OperatorFunction<unknown, SinkStats> {
  const { statsIntervalMs = 1_000 } = options
  const problems: string[] = []
  if (!isUrl(target) && !isOwnedWebSocket(target)) {
    problems.push(
      'target must be a WebSocket (ws in Node, the platform WebSocket in browsers) or a ws:// URL',
    )
  }
  if (typeof statsIntervalMs !== 'number' || !(statsIntervalMs >= 0) || !Number.isFinite(statsIntervalMs)) {
    problems.push(`statsIntervalMs must be a finite number >= 0, got ${String(statsIntervalMs)}`)
  }
  problems.push(...checkWebSocketOptions(isUrl(target) ? target : null, options, platform))
  if (problems.length > 0) {
    throw new RxrnnError('bad_config', 'Invalid webSocketSink arguments; fix these and try again', problems)
  }

  return (source$) =>
    new Observable<SinkStats>((subscriber) => {
      let ended = false
      const end = (): void => {
        if (ended) return
        ended = true
        subscriber.next(channel.stats())
        subscriber.complete()
      }
      const channel = isUrl(target)
        ? urlChannel(target, options, (error) => subscriber.error(error))
        : socketChannel(target, options, end)
      const timer =
        statsIntervalMs > 0 ? setInterval(() => subscriber.next(channel.stats()), statsIntervalMs) : undefined
      const subscription = source$.subscribe({
        next: (frame) => {
          try {
            channel.send(frame)
          } catch (error) {
            subscriber.error(error)
          }
        },
        error: (error) => subscriber.error(error),
        complete: () => {
          void channel.drained().then(end)
        },
      })
      return () => {
        clearInterval(timer)
        subscription.unsubscribe()
        channel.close()
      }
    })
}
