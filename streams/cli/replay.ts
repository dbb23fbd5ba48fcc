/**
 * `rxrnn replay <file.csv>`: sends a recorded CSV file to a server as a live feed, one tick per
 * row, at a fixed rate or as fast as the server answers, and counts what comes back.
 */
import { basename, extname } from 'node:path'
import { type Command, Option } from 'commander'
import { RxrnnError } from '../../src/index.js'
import { type CsvFile, csvLineOf, openCsv, selectColumns } from '../server/feeds/csv.js'
import { asServerFrame, type MetricsFrame, type WelcomeFrame } from '../transport/protocol.js'
import { CliConnection, type ClientFlags, hello, type ServerMessage } from './connect.js'
import { count, num, percent } from './format.js'
import { type CliIo, StatusLine, sleep, UsageError } from './io.js'
import { integer, list, number, parseDuration, token, wsUrl } from './parse.js'

export interface ReplayFlags extends ClientFlags {
  x: string[]
  y?: string[]
  key?: string
  keyValue?: string
  rate: number
  target: 'same' | 'next'
  limit?: number
  maxInFlight: number
  timeout: number
  progressInterval: number
  quiet?: boolean
}

/** What a replay did; also printed as its summary. */
export interface ReplaySummary {
  rows: number
  sent: number
  predictions: number
  errors: number
  skipped: number
  /** Ticks that got no answer: lost with a dropped connection, or still unanswered at the end. */
  unanswered: number
  seconds: number
  interrupted: boolean
}

/** One row of the file as a tick. */
interface FeedRow {
  /** The row's place among the rows kept (file order): the tick's id. */
  readonly id: number
  readonly key: string
  readonly line: number
  readonly x: Float64Array
  /** Its --y, or with --target next the --y of the next row of its key (none for a key's last row). */
  y: Float64Array | undefined
}

/**
 * The rows of a CSV file as ticks, read as they are sent: the file streams through the parser,
 * so a file larger than memory replays in constant memory (with --target next, one row per key
 * waits for the next row of its key).
 */
interface Feed {
  readonly dx: number
  readonly dy: number
  /** The next tick to send, or undefined at the end (or --limit). */
  next(): Promise<FeedRow | undefined>
  /** Rows kept so far (all of them once `next` returned undefined). */
  readonly kept: number
  /** Rows left out for a non-numeric cell. */
  readonly skipped: number
  /** How much of the file has been read, from 0 to 1. */
  fraction(): number
  close(): void
}

const SHOWN_PROBLEMS = 5

export function registerReplay(program: Command, io: CliIo, done: (code: number) => void): void {
  program
    .command('replay')
    .summary('send a CSV file to a server as a live feed')
    .description(
      'Send a CSV file to a server as a live feed: one tick per row, with inputs from the --x columns and ' +
        'targets from the --y columns (of the same row, or of the next row of the same key with --target next), ' +
        'and count the predictions that come back. Prints progress and a summary; exits 0 when every tick got ' +
        'its prediction, 1 when some got errors or no answer, 130 when interrupted.',
    )
    .argument('<file.csv>', 'CSV file with a header row')
    .option('--url <url>', 'server to send to', wsUrl, 'ws://127.0.0.1:8080')
    .requiredOption('--x <cols>', 'comma-separated input columns, in the order the model takes them', list())
    .option('--y <cols>', 'comma-separated target columns (none: the server only predicts)', list())
    .addOption(new Option('--key <col>', 'column naming the sequence of each row').conflicts('keyValue'))
    .option('--key-value <string>', 'one key for every row (default: the file name without extension)')
    .option('--rate <ticks/s>', 'ticks per second (0: as fast as the server answers)', number(0), 0)
    .addOption(
      new Option(
        '--target <which>',
        "'next': a row's target is the --y of the next row of its key (forecasting)",
      )
        .choices(['same', 'next'])
        .default('same'),
    )
    .addOption(
      new Option('--encoding <encoding>', 'wire encoding').choices(['msgpack', 'json']).default('msgpack'),
    )
    .addOption(new Option('--token <token>', 'token the server expects').env('RXRNN_TOKEN').argParser(token))
    .option('--limit <n>', 'send at most the first n rows', integer(1))
    .option('--max-in-flight <n>', 'ticks sent but not yet answered, at most', integer(1, 10_000), 64)
    .addOption(
      new Option('--timeout <duration>', 'how long to wait for the server to answer before giving up')
        .argParser(parseDuration)
        .default(10_000, '10s'),
    )
    .addOption(
      new Option('--progress-interval <duration>', 'how often to print progress (0: never)')
        .argParser(parseDuration)
        .default(1000, '1s'),
    )
    .option('--quiet', 'print only the summary and errors')
    .action(async (file: string, flags: ReplayFlags) => {
      const summary = await runReplay(file, flags, io)
      const failed = summary.errors > 0 || summary.unanswered > 0
      done(summary.interrupted ? 130 : failed ? 1 : 0)
    })
}

/** Reads `file` and sends it to `flags.url`; resolves with the summary it printed. */
export async function runReplay(file: string, flags: ReplayFlags, io: CliIo): Promise<ReplaySummary> {
  if (flags.target === 'next' && flags.y === undefined) {
    throw new UsageError(
      '--target next takes its targets from the --y columns of the next row: pass --y <cols>',
    )
  }
  const status = new StatusLine(io.stdout)
  const feed = await openFeed(file, flags, (line) => status.log(line, io.stderr))
  const started = performance.now()
  const summary: ReplaySummary = {
    rows: 0,
    sent: 0,
    predictions: 0,
    errors: 0,
    skipped: feed.skipped,
    unanswered: 0,
    seconds: 0,
    interrupted: false,
  }
  // The ticks sent and not yet answered, with where they came from for error messages.
  const pending = new Map<number, { line: number; key: string }>()
  let welcome: WelcomeFrame | undefined
  let problemsShown = 0
  const problem = (line: string): void => {
    if (problemsShown < SHOWN_PROBLEMS) status.log(line, io.stderr)
    else if (problemsShown === SHOWN_PROBLEMS) status.log('(further errors are only counted)', io.stderr)
    problemsShown++
  }

  // The server's own figures (loss, gradient norm, clipping) for the progress line.
  let metrics: MetricsFrame | undefined
  const onFrame = (frame: ServerMessage): void => {
    const id = typeof frame.id === 'number' ? frame.id : undefined
    const known = asServerFrame(frame)
    if (known?.type === 'metrics') metrics = known
    else if (known?.type === 'welcome' && id === -1) welcome = known
    else if (frame.type === 'prediction' && id !== undefined && pending.delete(id)) summary.predictions++
    else if (frame.type === 'error') {
      summary.errors++
      const row = id === undefined ? undefined : pending.get(id)
      if (id !== undefined) pending.delete(id)
      const where = row === undefined ? '' : ` (line ${row.line}, key ${row.key})`
      problem(`error${where}: ${String(frame.code)}: ${String(frame.message)}`)
    }
  }
  const client = new CliConnection(
    flags,
    io,
    status,
    onFrame,
    (s) => {
      if (s.state === 'open' && flags.progressInterval > 0 && flags.quiet !== true) {
        client.send({ type: 'subscribe', channels: ['metrics'] })
      }
      if (s.state !== 'closed' || pending.size === 0) return
      // The frames still queued go out after the reconnect; those already written are lost.
      const queued = client.connection.stats().queued
      const lost = [...pending.keys()].slice(0, Math.max(0, pending.size - queued))
      for (const id of lost) pending.delete(id)
      summary.unanswered += lost.length
    },
    { maxQueue: flags.maxInFlight + 16 },
    io.signal,
  )

  const progress = (): string => {
    const seconds = (performance.now() - started) / 1000
    return (
      `sent ${count(summary.sent)} (${Math.floor(100 * feed.fraction())}% of the file)  ` +
      `predictions ${count(summary.predictions)}  errors ${count(summary.errors)}  in flight ${pending.size}  ` +
      `${count(summary.sent / Math.max(seconds, 1e-3))} ticks/s` +
      (metrics === undefined
        ? ''
        : `  |  loss ${num(metrics.loss)}  grad norm ${num(metrics.gradNorm)}  clip ${percent(metrics.clipRate)}`)
    )
  }
  const timer =
    flags.quiet === true || flags.progressInterval <= 0
      ? undefined
      : setInterval(() => status.update(progress()), flags.progressInterval)
  timer?.unref()

  const signal = io.signal
  const answers = (): number => summary.predictions + summary.errors + summary.unanswered
  try {
    const w = await hello(client, () => welcome, flags.timeout, signal)
    if (w !== undefined) {
      checkShapes(w, feed, flags)
      const answered = await send(feed, flags, client, pending, summary, answers)
      if (answered && feed.kept === 0 && feed.skipped > 0) {
        throw new UsageError(`no row of ${file} has numbers in every --x${flags.y ? ' and --y' : ''} column`)
      }
      // What is still in flight: wait while answers keep coming.
      const drained =
        answered && (await waitFor(() => pending.size === 0, client, flags.timeout, signal, answers))
      if (!drained && !signal?.aborted && client.fatal === undefined) {
        status.log(
          `no answer from ${flags.url} for ${Math.round(flags.timeout / 1000)} s with ${pending.size} ticks in flight; stopping`,
          io.stderr,
        )
      }
    }
    if (client.fatal !== undefined) throw client.fatal
  } finally {
    clearInterval(timer)
    feed.close()
    client.close()
    status.end()
  }
  summary.rows = feed.kept
  summary.skipped = feed.skipped
  summary.unanswered += pending.size
  summary.interrupted = signal?.aborted === true
  summary.seconds = (performance.now() - started) / 1000
  io.stdout.write(`${summaryLine(file, flags.url, summary)}\n`)
  return summary
}

/**
 * Sends every row, paced by --rate and bounded by --max-in-flight. False when it stopped early:
 * interrupted, the connection failed, or the server went --timeout without answering.
 */
async function send(
  feed: Feed,
  flags: ReplayFlags,
  client: CliConnection,
  pending: Map<number, { line: number; key: string }>,
  summary: ReplaySummary,
  answers: () => number,
): Promise<boolean> {
  const { signal } = client
  const tick: { type: 'tick'; key: string; x: Float64Array; y?: number | Float64Array; id: number } = {
    type: 'tick',
    key: '',
    x: new Float64Array(feed.dx),
    id: 0,
  }
  const start = performance.now()
  const room = (): boolean => pending.size < flags.maxInFlight
  for (let row = await feed.next(); row !== undefined; row = await feed.next()) {
    if (flags.rate > 0) {
      // Ticks already due go out at once: timers are too coarse to wait a fraction of a millisecond.
      const wait = start + (summary.sent * 1000) / flags.rate - performance.now()
      if (wait > 0) await sleep(wait, signal)
    }
    if (!room() && !(await waitFor(room, client, flags.timeout, signal, answers))) return false
    if (signal?.aborted || client.fatal !== undefined || client.ended) return false
    // A frame is encoded when it is sent (or queued), so one tick object serves every row.
    tick.x = row.x
    if (row.y === undefined) delete tick.y
    else tick.y = feed.dy === 1 ? row.y[0]! : row.y
    tick.key = row.key
    tick.id = row.id
    pending.set(row.id, { line: row.line, key: row.key })
    if (!client.send(tick)) {
      pending.delete(row.id)
      summary.unanswered++
    }
    summary.sent++
  }
  return true
}

/**
 * Waits until `done()`, for as long as answers keep coming: false once `timeoutMs` pass without
 * one, or when interrupted or the connection failed.
 */
async function waitFor(
  done: () => boolean,
  client: CliConnection,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  answers: () => number,
): Promise<boolean> {
  let seen = answers()
  let since = performance.now()
  while (!done()) {
    if (signal?.aborted || client.fatal !== undefined || client.ended) return false
    const left = since + timeoutMs - performance.now()
    if (left <= 0) return false
    await client.next(left, signal)
    if (answers() !== seen) {
      seen = answers()
      since = performance.now()
    }
  }
  return true
}

/**
 * Opens the CSV file and checks its header against the flags; the rows are read as `next` asks
 * for them. Rows with a non-numeric cell are skipped and reported; a malformed row stops the
 * replay there (UsageError).
 */
async function openFeed(file: string, flags: ReplayFlags, warn: (line: string) => void): Promise<Feed> {
  let csv: CsvFile
  try {
    csv = await openCsv(file)
  } catch (error) {
    if (!(error instanceof RxrnnError)) throw error
    throw new UsageError(
      `cannot read ${file}: ${error.problems.length > 0 ? error.problems.join('; ') : error.message}`,
    )
  }
  const { columns } = csv
  const missing: string[] = []
  const need = (flag: string, names: readonly string[]): void => {
    for (const name of names) {
      if (!columns.includes(name)) missing.push(`${flag}: column "${name}" is not in ${file}`)
    }
  }
  need('--x', flags.x)
  need('--y', flags.y ?? [])
  if (flags.key !== undefined) need('--key', [flags.key])
  if (missing.length > 0) {
    csv.close()
    throw new UsageError(
      `unknown column${missing.length > 1 ? 's' : ''} (the columns are: ${columns.join(', ')})`,
      missing,
    )
  }

  const dx = flags.x.length
  const dy = flags.y?.length ?? 0
  const defaultKey = flags.keyValue ?? basename(file, extname(file))
  const limit = flags.limit ?? Number.POSITIVE_INFINITY
  const next = flags.target === 'next'
  let read = 0
  let kept = 0
  let skipped = 0
  let ended = false
  // --target next: each key's latest row, waiting for the next row of its key to bring its target.
  const waiting = new Map<string, FeedRow>()
  // Rows ready to send, in order (at most two at a time, or the waiting rows at the end).
  const ready: FeedRow[] = []

  /** The next row with numbers in every --x and --y column, or undefined at the end. */
  const readRow = async (): Promise<FeedRow | undefined> => {
    while (read < limit) {
      let result: IteratorResult<Record<string, string>>
      try {
        result = await csv.rows.next()
      } catch (error) {
        if (!(error instanceof RxrnnError)) throw error
        throw new UsageError(`${file} is not a CSV file rxrnn can read`, error.problems)
      }
      if (result.done) return undefined
      read++
      const row = result.value
      let x: Float64Array
      let y: Float64Array | undefined
      try {
        x = selectColumns(row, flags.x)
        if (flags.y !== undefined) y = selectColumns(row, flags.y)
      } catch (error) {
        if (!(error instanceof RxrnnError)) throw error
        if (skipped < SHOWN_PROBLEMS) warn(`skipping a row: ${error.problems.join('; ')}`)
        skipped++
        if (skipped === SHOWN_PROBLEMS + 1) warn('(further rows with non-numeric cells are only counted)')
        continue
      }
      const key = flags.key === undefined ? defaultKey : (row[flags.key] ?? '')
      return { id: kept++, key, line: csvLineOf(row) ?? 0, x, y }
    }
    return undefined
  }

  return {
    dx,
    dy,
    get kept() {
      return kept
    },
    get skipped() {
      return skipped
    },
    fraction: () => (csv.size > 0 ? Math.min(1, csv.bytesRead() / csv.size) : 1),
    close: () => csv.close(),
    async next() {
      if (!next) return readRow()
      while (ready.length === 0 && !ended) {
        const row = await readRow()
        if (row === undefined) {
          ended = true
          // The last row of each key has no next row: it goes without a target, in file order.
          for (const last of waiting.values()) last.y = undefined
          ready.push(...[...waiting.values()].sort((a, b) => a.id - b.id))
          waiting.clear()
          break
        }
        const previous = waiting.get(row.key)
        waiting.set(row.key, row)
        if (previous !== undefined) {
          previous.y = row.y
          ready.push(previous)
        }
      }
      return ready.shift()
    },
  }
}

/** Refuses, before sending anything, columns that cannot fit the server's model. */
function checkShapes(welcome: WelcomeFrame, feed: Feed, flags: ReplayFlags): void {
  const m = welcome.model
  const problems: string[] = []
  if (feed.dx !== m.inputSize) {
    problems.push(
      `--x names ${feed.dx} column${feed.dx === 1 ? '' : 's'} but the model takes ${m.inputSize} inputs`,
    )
  }
  if (flags.y !== undefined) {
    if (m.task === 'classification' && feed.dy !== 1) {
      problems.push(
        `--y names ${feed.dy} columns but the model is a classifier: give the one column holding the class index`,
      )
    } else if (m.task !== 'classification' && feed.dy !== m.outputSize) {
      problems.push(
        `--y names ${feed.dy} column${feed.dy === 1 ? '' : 's'} but the model has ${m.outputSize} outputs`,
      )
    }
  }
  if (problems.length > 0) {
    throw new UsageError(
      `the columns do not fit the model at ${flags.url} (${m.cell}, ${m.inputSize} inputs, ${m.outputSize} outputs)`,
      problems,
    )
  }
}

function summaryLine(file: string, url: string, s: ReplaySummary): string {
  const rate = s.seconds > 0 ? ` (${count(s.sent / s.seconds)} ticks/s)` : ''
  const extra = [
    s.skipped > 0 ? `${count(s.skipped)} row${s.skipped === 1 ? '' : 's'} skipped` : '',
    s.unanswered > 0 ? `${count(s.unanswered)} unanswered` : '',
    s.interrupted ? 'interrupted' : '',
  ].filter((e) => e !== '')
  return (
    `replayed ${basename(file)} to ${url}: ${count(s.sent)}/${count(s.rows)} ticks sent, ` +
    `${count(s.predictions)} predictions received, ${count(s.errors)} errors` +
    `${extra.length > 0 ? `, ${extra.join(', ')}` : ''} in ${s.seconds.toFixed(s.seconds < 10 ? 2 : 1)} s${rate}`
  )
}
