/** The client side shared by `replay` and `tail`: one reconnecting connection, its log, and hello. */
import type { Subscription } from 'rxjs'
import { RxrnnError } from '../../src/index.js'
import type { WelcomeFrame } from '../transport/protocol.js'
import type { WebSocketConnection, WebSocketStatus } from '../transport/ws-source.js'
import { webSocketConnection } from '../transport/ws-source.js'
import type { StatusLine } from './io.js'
import { type CliIo, Notifier, sleep } from './io.js'

export interface ClientFlags {
  url: string
  token?: string
  encoding: 'msgpack' | 'json'
}

/** Every frame the server sends is an object with a string `type`. */
export type ServerMessage = Record<string, unknown> & { type?: unknown }

/**
 * A connection to an rxrnn server for a CLI command: frames go to `onFrame`, status changes to
 * `onStatus` and to the log (reconnects on stderr), and a refused token or exhausted reconnects
 * land in `fatal`, with `changed` notified so that waiting loops wake up.
 */
export class CliConnection {
  readonly connection: WebSocketConnection
  readonly changed = new Notifier()
  fatal: Error | undefined
  ended = false
  private readonly subscriptions: Subscription[] = []

  constructor(
    readonly flags: ClientFlags,
    io: CliIo,
    status: StatusLine,
    onFrame: (frame: ServerMessage) => void,
    onStatus: (s: WebSocketStatus) => void = () => {},
    queue: { maxQueue?: number } = {},
    readonly signal?: AbortSignal,
  ) {
    this.connection = webSocketConnection(flags.url, {
      ...(flags.token === undefined ? {} : { token: flags.token }),
      encoding: flags.encoding,
      reconnect: { initialDelayMs: 100, maxDelayMs: 2_000, maxAttempts: 10 },
      heartbeatMs: 10_000,
      ...queue,
    })
    let opened = false
    let lastClose = ''
    this.subscriptions.push(
      this.connection.messages$.subscribe({
        next: (message) => {
          if (typeof message === 'object' && message !== null) onFrame(message as ServerMessage)
          this.changed.notify()
        },
        error: (error: unknown) => {
          this.fatal = error instanceof Error ? error : new Error(String(error))
          this.ended = true
          this.changed.notify()
        },
        complete: () => {
          this.ended = true
          this.changed.notify()
        },
      }),
      this.connection.status$.subscribe((s) => {
        onStatus(s)
        if (s.state === 'closed') lastClose = s.reason ? ` (${s.reason})` : ''
        else if (s.state === 'reconnecting') {
          const what = opened ? `lost the connection to ${flags.url}` : `cannot connect to ${flags.url}`
          status.log(
            `${what}${lastClose}; retrying in ${s.delayMs ?? 0} ms (attempt ${s.attempt})`,
            io.stderr,
          )
        } else if (s.state === 'open') {
          if (opened) status.log(`reconnected to ${flags.url}`, io.stderr)
          opened = true
        }
        this.changed.notify()
      }),
    )
  }

  send(frame: object): boolean {
    return this.connection.send(frame)
  }

  /** Waits for the next frame or status change, at most `ms`. */
  async next(ms: number, signal?: AbortSignal): Promise<void> {
    const controller = new AbortController()
    const stop = (): void => controller.abort()
    signal?.addEventListener('abort', stop, { once: true })
    await Promise.race([this.changed.wait(), sleep(ms, controller.signal)])
    controller.abort()
    signal?.removeEventListener('abort', stop)
  }

  close(): void {
    for (const s of this.subscriptions) s.unsubscribe()
    this.connection.close()
  }
}

/**
 * Sends `hello` and waits for `welcome`: the server's protocol version and model shape. Throws
 * when the connection is refused or nothing answers within `timeoutMs`; undefined when aborted.
 */
export async function hello(
  client: CliConnection,
  welcome: () => WelcomeFrame | undefined,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<WelcomeFrame | undefined> {
  client.send({ type: 'hello', id: -1 })
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const w = welcome()
    if (w !== undefined) return w
    if (client.fatal !== undefined) throw client.fatal
    if (signal?.aborted) return undefined
    const left = deadline - performance.now()
    if (left <= 0 || client.ended) {
      throw new RxrnnError(
        'internal',
        `no answer from ${client.flags.url} within ${Math.round(timeoutMs / 1000)} s: is \`rxrnn serve\` running there? (--url, --timeout)`,
      )
    }
    await client.next(left, signal)
  }
}
