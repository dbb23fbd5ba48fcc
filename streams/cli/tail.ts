/** `rxrnn tail`: follows a server's predictions, updates and metrics, one line each. */
import { type Command, Option } from 'commander'
import { CHANNELS, type Channel } from '../transport/protocol.js'
import { CliConnection, type ClientFlags, type ServerMessage } from './connect.js'
import { frameLine } from './format.js'
import { type CliIo, StatusLine } from './io.js'
import { integer, list, token, wsUrl } from './parse.js'

export interface TailFlags extends ClientFlags {
  channels: Channel[]
  keys?: string[]
  json?: boolean
  limit?: number
}

export function registerTail(program: Command, io: CliIo, done: (code: number) => void): void {
  program
    .command('tail')
    .summary('print the predictions, updates and metrics a server sends')
    .description(
      'Subscribe to a server and print what it sends: predictions (with their targets), weight updates ' +
        '(loss, gradient norm, clipping) and periodic metrics, one line each (--json: one JSON object each), ' +
        'until interrupted or --limit frames were printed. Reconnects and subscribes again when the server restarts.',
    )
    .option('--url <url>', 'server to follow', wsUrl, 'ws://127.0.0.1:8080')
    .option(
      '--channels <list>',
      `comma-separated channels, of ${CHANNELS.join(', ')} (hidden: each key's h_t after every tick)`,
      list(CHANNELS),
      ['predictions', 'updates', 'metrics'],
    )
    .option(
      '--keys <list>',
      'comma-separated keys to follow (default: every key; metrics are global)',
      list(),
    )
    .option('--json', 'print each frame as one JSON object per line')
    .addOption(new Option('--token <token>', 'token the server expects').env('RXRNN_TOKEN').argParser(token))
    .addOption(
      new Option('--encoding <encoding>', 'wire encoding').choices(['msgpack', 'json']).default('msgpack'),
    )
    .option('--limit <n>', 'exit after printing n frames', integer(1))
    .action(async (flags: TailFlags) => done(await runTail(flags, io)))
}

/** Prints frames until `io.signal` aborts, `--limit` frames were printed, or the connection fails. */
export async function runTail(flags: TailFlags, io: CliIo): Promise<number> {
  const status = new StatusLine(io.stdout, false)
  let printed = 0
  const subscribe = {
    type: 'subscribe',
    channels: flags.channels,
    ...(flags.keys === undefined ? {} : { keys: flags.keys }),
  }
  const onFrame = (frame: ServerMessage): void => {
    if (flags.limit !== undefined && printed >= flags.limit) return
    if (frame.type === 'subscribed') {
      const keys = Array.isArray(frame.keys) ? ` for keys ${frame.keys.join(', ')}` : ''
      io.stderr.write(`following ${(frame.channels as string[]).join(', ')}${keys} on ${flags.url}\n`)
      return
    }
    if (flags.json === true) {
      io.stdout.write(`${JSON.stringify(frame, typedArraysAsArrays)}\n`)
      printed++
      return
    }
    const line = frameLine(frame)
    if (line === undefined) return
    if (frame.type === 'error') io.stderr.write(`${line}\n`)
    else io.stdout.write(`${line}\n`)
    printed++
  }
  const client = new CliConnection(
    flags,
    io,
    status,
    onFrame,
    // Every (re)connection starts without a subscription: subscribe on each open.
    (s) => {
      if (s.state === 'open') client.send(subscribe)
    },
    {},
    io.signal,
  )
  try {
    while (!io.signal?.aborted && client.fatal === undefined && !client.ended) {
      if (flags.limit !== undefined && printed >= flags.limit) break
      await client.next(60_000, io.signal)
    }
    if (client.fatal !== undefined) throw client.fatal
  } finally {
    client.close()
  }
  return 0
}

function typedArraysAsArrays(_key: string, value: unknown): unknown {
  return ArrayBuffer.isView(value) && !(value instanceof DataView)
    ? Array.from(value as unknown as ArrayLike<unknown>)
    : value
}
