/**
 * `rxrnn serve`: the streaming server of `server.ts`, with the model and trainer from flags or a
 * JSON config file (flags win), live progress, and a clean shutdown on SIGINT / SIGTERM.
 */
import { readFile } from 'node:fs/promises'
import { type Command, Option } from 'commander'
import type { ModelConfig, TrainerOptions } from '../../src/index.js'
import { createModel, RxrnnError } from '../../src/index.js'
import type { ExplicitSettings } from '../server/checkpointer.js'
import type { EndpointOptions } from '../server/endpoint-options.js'
import type { ServeForecastingOptions } from '../server/forecasting.js'
import type { RxrnnServer, ServeOptions } from '../server/server.js'
import { serve } from '../server/server.js'
import { resolveEndpointOptions } from './endpoint-flags.js'
import { addForecastingFlags, type ForecastingFlags, resolveForecastingFlags } from './forecasting-flags.js'
import { metricsLine } from './format.js'
import { type GatewayFlags, runGateway } from './gateway.js'
import { aborted, type CliIo, StatusLine, UsageError } from './io.js'
import { addModelFlags, type ModelFlags, resolveModelFlags } from './model-flags.js'
import { integer, parseBytes, parseDuration, token } from './parse.js'

export { OPTIMIZER_TYPES } from './model-flags.js'

/** The flags of `rxrnn serve`, as commander parses them. */
export interface ServeFlags extends ModelFlags, ForecastingFlags {
  config?: string
  host: string
  port: number
  token?: string
  maxPayload: number
  maxKeys: number
  idleMs?: number
  maxBufferedBytes: number
  metricsInterval: number
  progressInterval: number
  quiet?: boolean
  checkpoint?: string
  checkpointEvery: number
  dashboard: boolean
  allowOrigin?: string[]
  allowedHost?: string[]
  maxConnections: number
  maxConnectionsPerAddress: number
  pingInterval: number
  idleTimeout: number
  headersTimeout: number
  requestTimeout: number
  maxSubscribeKeys: number
  maxNewKeysPerSecond: number
  maxMemory?: number
  maxBufferedTotal: number
  slowReaderGrace: number
  tlsCert?: string
  tlsKey?: string
}

/**
 * What a `--config` file holds: `model` and `trainer` as the library takes them, and the server's
 * options under their `serve()` names (JSON: no callbacks; `tls` names the PEM files).
 */
export interface ServeConfigFile
  extends Omit<EndpointOptions, 'http' | 'log' | 'tls'>,
    Pick<ServeOptions, 'maxKeys' | 'idleMs' | 'maxMemory'> {
  model?: Partial<ModelConfig>
  trainer?: Partial<TrainerOptions>
  checkpoint?: { path: string; everyMs?: number }
  tls?: { cert: string; key: string }
  /** Intervals, anomalies, drift, time and missing values, as `serve` takes them; flags win. */
  forecasting?: ServeForecastingOptions
}

/** Where a flag's value came from (commander's `getOptionValueSource`). */
export type FlagSource = (flag: keyof ServeFlags) => string | undefined

/** Numeric server settings of a config file: each a number >= 1. */
const CONFIG_NUMBERS = [
  'maxPayload',
  'maxKeys',
  'idleMs',
  'maxBufferedBytes',
  'metricsIntervalMs',
  'maxConnections',
  'maxConnectionsPerAddress',
  'pingIntervalMs',
  'idleTimeoutMs',
  'headersTimeoutMs',
  'requestTimeoutMs',
  'maxSubscribeKeys',
  'maxNewKeysPerSecond',
  'maxMemory',
  'maxBufferedTotal',
  'slowReaderGraceMs',
]

const CONFIG_FIELDS: readonly string[] = [
  'model',
  'trainer',
  'host',
  'port',
  'token',
  'checkpoint',
  'dashboard',
  'allowOrigins',
  'allowedHosts',
  'tls',
  'forecasting',
  ...CONFIG_NUMBERS,
]

export function registerServe(program: Command, io: CliIo, done: (code: number) => void): void {
  const command = program.command('serve')
  command
    .summary('start the streaming server: a model that learns online from the ticks producers send')
    .description(
      'Start the streaming server: producers send ticks over WebSocket, the model learns online per key and ' +
        'answers every tick with its prediction; subscribers follow predictions, updates and metrics. The model ' +
        'comes from the flags or a --config file (flags win). Prints "listening on ws://HOST:PORT" when ready; ' +
        'SIGINT or SIGTERM closes every connection (code 1001) and exits 0.',
    )
    .option(
      '--config <file>',
      'JSON file with { model: ModelConfig, trainer: TrainerOptions, host, port, token, ... }; flags override it',
    )
    .option('--host <host>', 'interface to listen on (0.0.0.0: every interface)', '127.0.0.1')
    .option('--port <n>', 'port to listen on (0: any free port)', integer(0, 65535), 8080)
  addModelFlags(command)
  command
    .addOption(
      new Option(
        '--token <token>',
        'require this token (16+ characters) from clients (Authorization: Bearer <token>); others get HTTP 401, and 429 after 5 wrong ones',
      )
        .env('RXRNN_TOKEN')
        .argParser(token),
    )
    .addOption(
      new Option('--max-payload <bytes>', 'largest frame accepted; a larger one closes its connection (1009)')
        .argParser(parseBytes)
        .default(1 << 20, '1mb'),
    )
    .option(
      '--max-keys <n>',
      'keys (sequences) held at most; the least recently seen go first',
      integer(1),
      100_000,
    )
    .option('--idle-ms <duration>', 'forget keys unseen this long, e.g. 10m (default: never)', parseDuration)
    .addOption(
      new Option(
        '--max-buffered-bytes <bytes>',
        'unsent bytes a slow client may have before frames to it are dropped (and counted)',
      )
        .argParser(parseBytes)
        .default(4 << 20, '4mb'),
    )
    .addOption(
      new Option('--metrics-interval <duration>', 'how often subscribers get a metrics frame')
        .argParser(parseDuration)
        .default(1000, '1s'),
    )
    .addOption(
      new Option('--progress-interval <duration>', 'how often to print progress (0: never)')
        .argParser(parseDuration)
        .default(1000, '1s'),
    )
    .option('--quiet', 'print only the listening line and errors')
    .option(
      '--checkpoint <file>',
      'crash recovery: resume from this file when it exists, save to it every --checkpoint-every and on exit',
    )
    .addOption(
      new Option('--checkpoint-every <duration>', 'how often to save the --checkpoint, e.g. 30s or 5m')
        .argParser(parseDuration)
        .default(60_000, '1m'),
    )
    .option('--no-dashboard', 'do not serve the live dashboard on http://HOST:PORT/')
  addForecastingFlags(command)
  command
    .option(
      '--allow-origin <origin>',
      "let pages from this origin (e.g. https://app.example.com) open WebSockets, beside the server's own; repeatable",
      collect,
    )
    .option(
      '--allowed-host <name>',
      'accept this Host header beside loopback names (a name a reverse proxy forwards); repeatable',
      collect,
    )
    .option('--max-connections <n>', 'open WebSocket connections at most (more get 503)', integer(1), 1024)
    .option(
      '--max-connections-per-address <n>',
      'open WebSocket connections per client address',
      integer(1),
      256,
    )
    .addOption(
      new Option('--ping-interval <duration>', 'how often every connection is pinged')
        .argParser(parseDuration)
        .default(5000, '5s'),
    )
    .addOption(
      new Option(
        '--idle-timeout <duration>',
        'terminate connections that send nothing, not even a pong, this long',
      )
        .argParser(parseDuration)
        .default(30_000, '30s'),
    )
    .addOption(
      new Option('--headers-timeout <duration>', 'time a client has to send the headers of an HTTP request')
        .argParser(parseDuration)
        .default(10_000, '10s'),
    )
    .addOption(
      new Option('--request-timeout <duration>', 'time a client has to send a whole HTTP request')
        .argParser(parseDuration)
        .default(30_000, '30s'),
    )
    .option('--max-subscribe-keys <n>', 'keys one subscribe frame may name', integer(1), 1000)
    .option(
      '--max-new-keys-per-second <n>',
      'new keys one connection may create per second; more get a rate_limited error frame',
      integer(1),
      1000,
    )
    .addOption(
      new Option(
        '--max-memory <bytes>',
        "refuse to start when --max-keys keys may not fit in this (default: half the machine's memory)",
      ).argParser(parseBytes),
    )
    .addOption(
      new Option('--max-buffered-total <bytes>', 'unsent bytes all clients together may have')
        .argParser(parseBytes)
        .default(256 << 20, '256mb'),
    )
    .addOption(
      new Option(
        '--slow-reader-grace <duration>',
        'close (1013) a client over its --max-buffered-bytes this long',
      )
        .argParser(parseDuration)
        .default(5000, '5s'),
    )
    .option('--tls-cert <file>', 'serve https:// and wss:// with this certificate (PEM); needs --tls-key')
    .option('--tls-key <file>', 'the private key (PEM) of --tls-cert')
    .option(
      '--nats <url>',
      'be a gateway: publish ticks into NATS JetStream partitions and relay the predictions of `rxrnn worker`s',
    )
    .option(
      '--partitions <n>',
      'with --nats: partitions of the deployment (as the workers)',
      integer(1, 100_000),
      16,
    )
    .option('--subject-prefix <prefix>', 'with --nats: prefix of every subject and stream', 'rxrnn')
  command.action(async (flags: ServeFlags & GatewayFlags, cmd: Command) => {
    const file = flags.config === undefined ? undefined : await loadServeConfig(flags.config)
    if (flags.nats !== undefined) {
      return done(await runGateway(flags, (name) => cmd.getOptionValueSource(name), file, io))
    }
    const options = resolveServeOptions(flags, (name) => cmd.getOptionValueSource(name), file)
    done(await runServe(options, flags, io))
  })
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value]
}

/** Reads and shape-checks a `--config` file; every problem is reported at once. */
export async function loadServeConfig(path: string): Promise<ServeConfigFile> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new UsageError(`--config: cannot read ${path}: ${(error as Error).message}`)
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new UsageError(`--config: ${path} is not valid JSON: ${(error as Error).message}`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UsageError(
      `--config: ${path} must hold a JSON object such as { "model": {...}, "trainer": {...} }`,
    )
  }
  const record = value as Record<string, unknown>
  const problems: string[] = []
  for (const field of Object.keys(record)) {
    if (!CONFIG_FIELDS.includes(field)) {
      problems.push(`unknown field "${field}"; the fields are ${CONFIG_FIELDS.join(', ')}`)
    }
  }
  for (const field of ['model', 'trainer']) {
    const v = record[field]
    if (v !== undefined && (typeof v !== 'object' || v === null || Array.isArray(v))) {
      problems.push(`${field} must be an object`)
    }
  }
  const optimizer = (record.trainer as Record<string, unknown> | undefined)?.optimizer
  if (
    optimizer !== undefined &&
    (typeof optimizer !== 'object' || optimizer === null || Array.isArray(optimizer))
  ) {
    problems.push(`trainer.optimizer must be an object such as { "type": "adam", "lr": 0.001 }`)
  }
  for (const field of ['host', 'token']) {
    const v = record[field]
    if (v !== undefined && (typeof v !== 'string' || v === ''))
      problems.push(`${field} must be a non-empty string`)
  }
  if (typeof record.token === 'string' && /\s/.test(record.token))
    problems.push('token must not contain spaces')
  const port = record.port
  if (port !== undefined && !(Number.isInteger(port) && (port as number) >= 0 && (port as number) <= 65535)) {
    problems.push(`port is ${JSON.stringify(port)}; it must be a whole number from 0 to 65535`)
  }
  for (const field of CONFIG_NUMBERS) {
    const v = record[field]
    if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v >= 1)) {
      problems.push(`${field} is ${JSON.stringify(v)}; it must be a number >= 1`)
    }
  }
  const checkpoint = record.checkpoint as Record<string, unknown> | undefined
  if (checkpoint !== undefined) {
    if (typeof checkpoint !== 'object' || checkpoint === null || typeof checkpoint.path !== 'string') {
      problems.push('checkpoint must be an object such as { "path": "model.ckpt", "everyMs": 60000 }')
    } else if (
      checkpoint.everyMs !== undefined &&
      !(
        typeof checkpoint.everyMs === 'number' &&
        Number.isFinite(checkpoint.everyMs) &&
        checkpoint.everyMs >= 1
      )
    ) {
      problems.push(`checkpoint.everyMs is ${JSON.stringify(checkpoint.everyMs)}; it must be a number >= 1`)
    }
  }
  if (record.dashboard !== undefined && typeof record.dashboard !== 'boolean') {
    problems.push('dashboard must be true or false')
  }
  const forecasting = record.forecasting
  if (
    forecasting !== undefined &&
    (typeof forecasting !== 'object' || forecasting === null || Array.isArray(forecasting))
  ) {
    problems.push(
      'forecasting must be an object such as { "coverage": 0.9, "drift": { "response": "reset" } }',
    )
  }
  for (const field of ['allowOrigins', 'allowedHosts']) {
    const v = record[field]
    if (v !== undefined && !(Array.isArray(v) && v.every((s) => typeof s === 'string' && s !== ''))) {
      problems.push(`${field} must be a list of non-empty strings`)
    }
  }
  const tls = record.tls as Record<string, unknown> | undefined
  if (
    tls !== undefined &&
    (typeof tls !== 'object' || tls === null || typeof tls.cert !== 'string' || typeof tls.key !== 'string')
  ) {
    problems.push('tls must be an object such as { "cert": "server.crt", "key": "server.key" } (PEM files)')
  }
  if (problems.length > 0) throw new RxrnnError('bad_config', `Invalid config file ${path}`, problems)
  return record as ServeConfigFile
}

/**
 * Merges flags over the config file over the flags' defaults, builds the model and checks the
 * trainer options, and returns what `serve()` takes. Throws one `RxrnnError('bad_config')` listing
 * every problem, each naming the flag and the config field that set it.
 */
export function resolveServeOptions(
  flags: ServeFlags,
  sourceOf: FlagSource,
  file: ServeConfigFile = {},
): ServeOptions {
  // A flag given on the command line (or by its environment variable) wins; then the file; then the default.
  const given = (flag: keyof ServeFlags): boolean => {
    const source = sourceOf(flag)
    return source === 'cli' || source === 'env'
  }
  const pick = <T>(flag: keyof ServeFlags, fromFile: T | undefined): T | undefined =>
    given(flag) || fromFile === undefined ? (flags[flag] as T | undefined) : fromFile

  const forecasting = resolveForecastingFlags(flags, file.forecasting, 'rxrnn serve')
  const resolved = resolveModelFlags(flags, sourceOf, file, 'rxrnn serve', {
    horizon: flags.horizon,
    missing: forecasting.missing !== undefined,
    timeFeature: forecasting.timeFeature === true,
  })
  const built = createModel(resolved.model)
  const trainer = resolved.trainer

  const options: ServeOptions = {
    // Host, port, token, origins, TLS, limits, budgets, timeouts: shared with `serve --nats`.
    ...resolveEndpointOptions(flags, sourceOf, file),
    model: built,
    trainer,
    maxKeys: pick('maxKeys', file.maxKeys) ?? 100_000,
    explicit: modelShaped(explicitSettings(flags, given, file), resolved.trainer.horizon ?? 1, forecasting),
  }
  const maxMemory = pick('maxMemory', file.maxMemory)
  if (maxMemory !== undefined) options.maxMemory = maxMemory
  const checkpointPath = pick('checkpoint', file.checkpoint?.path)
  if (checkpointPath !== undefined) {
    const everyMs = pick('checkpointEvery', file.checkpoint?.everyMs) ?? 60_000
    options.checkpoint = { path: checkpointPath, everyMs }
  }
  if (Object.keys(forecasting).length > 0) options.forecasting = forecasting
  const idleMs = pick('idleMs', file.idleMs)
  if (idleMs !== undefined) options.idleMs = idleMs
  return options
}

/**
 * The explicit sizes as the model has them, so a resume compares like with like: with a horizon
 * H the model has H × --output-size outputs; --missing and --time-feature add inputs.
 */
function modelShaped(
  explicit: ExplicitSettings,
  horizon: number,
  f: ServeForecastingOptions,
): ExplicitSettings {
  const model = explicit.model
  if (!model) return explicit
  const shaped = { ...model }
  if (typeof shaped.outputSize === 'number') shaped.outputSize = shaped.outputSize * horizon
  if (typeof shaped.inputSize === 'number' && (f.missing || f.timeFeature))
    shaped.inputSize = shaped.inputSize * (f.missing ? 2 : 1) + (f.timeFeature ? 1 : 0)
  return { ...explicit, model: shaped }
}

/**
 * The model and trainer settings given explicitly (on the command line, by environment, or in
 * the config file): on resume each must agree with the checkpoint.
 */
function explicitSettings(
  flags: ServeFlags,
  given: (flag: keyof ServeFlags) => boolean,
  file: ServeConfigFile,
): ExplicitSettings {
  const fm = (file.model ?? {}) as Record<string, unknown>
  const ft = (file.trainer ?? {}) as Record<string, unknown>
  const fo = (ft.optimizer ?? {}) as Record<string, unknown>
  const pickGiven = (flag: keyof ServeFlags, fromFile: unknown): unknown =>
    given(flag) ? flags[flag] : fromFile
  const drop = (record: Record<string, unknown>) =>
    Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined))
  return {
    model: drop({
      cell: pickGiven('cell', fm.cell),
      inputSize: pickGiven('inputSize', fm.inputSize),
      hiddenSize: pickGiven('hiddenSize', fm.hiddenSize),
      numLayers: pickGiven('layers', fm.numLayers),
      outputSize: pickGiven('outputSize', fm.outputSize),
      dtype: pickGiven('dtype', fm.dtype),
    }),
    trainer: drop({
      algorithm: pickGiven('algorithm', ft.algorithm),
      k1: pickGiven('k1', ft.k1),
      k2: pickGiven('k2', ft.k2),
      loss: pickGiven('loss', ft.loss),
      clipNorm: pickGiven('clipNorm', ft.clipNorm === null ? 0 : ft.clipNorm),
      optimizer: pickGiven('optimizer', fo.type),
      lr: pickGiven('lr', fo.lr),
    }),
  }
}

/** One line about the model and trainer as served (resumed from a checkpoint or new): enough to reproduce the run. */
export function describeServer(server: RxrnnServer): string {
  const c = server.model.config
  const t = server.trainer.options
  const o = server.trainer.optimizer.config
  const layers = `${c.numLayers} layer${c.numLayers === 1 ? '' : 's'}`
  const clip = t.clipNorm === undefined ? 'no clipping' : `clip-norm ${t.clipNorm}`
  return (
    `model: ${c.cell} ${c.inputSize} → ${c.hiddenSize} → ${c.outputSize} (${layers}, ${c.dtype}, seed ${c.seed}); ` +
    `trainer: ${t.algorithm === 'tbptt' ? `tbptt k1 ${t.k1}, k2 ${t.k2}` : `${t.algorithm} k1 ${t.k1}`}, ${t.loss}, ${o.type} lr ${o.lr}, ${clip}`
  )
}

/** Serves until `io.signal` aborts, then closes every connection with 1001. Returns the exit code. */
export async function runServe(
  options: ServeOptions,
  flags: Pick<ServeFlags, 'progressInterval' | 'quiet'>,
  io: CliIo,
): Promise<number> {
  const status = new StatusLine(io.stdout)
  const quiet = flags.quiet === true
  let server: RxrnnServer
  try {
    server = await serve({ ...options, log: (line) => status.log(line, io.stderr) })
  } catch (error) {
    throw explainListenError(error, `${options.host}:${options.port}`)
  }
  io.stdout.write(`listening on ${server.url}\n`)
  if (!quiet) {
    io.stderr.write(`${describeServer(server)}\n`)
    if (options.dashboard !== false) io.stderr.write(`dashboard on http${server.url.slice(2)}/\n`)
  }
  const loopback = ['127.0.0.1', 'localhost', '::1'].includes(server.host)
  if (!loopback && options.token === undefined) {
    io.stderr.write(
      `warning: listening on ${server.host} without --token: anyone who can reach port ${server.port} can send ticks\n`,
    )
  }

  let lastEvents = 0
  let lastRejected = 0
  let lastTime = performance.now()
  const timer =
    quiet || flags.progressInterval <= 0
      ? undefined
      : setInterval(() => {
          const m = server.metrics()
          const now = performance.now()
          const rate = ((m.events - lastEvents) * 1000) / Math.max(1, now - lastTime)
          const changed = m.events !== lastEvents || m.rejected !== lastRejected
          lastEvents = m.events
          lastRejected = m.rejected
          lastTime = now
          // A log gets a line when something happened; a terminal shows the current state.
          if (status.tty || changed) status.update(metricsLine(m, rate))
        }, flags.progressInterval)
  timer?.unref()

  await aborted(io.signal)
  clearInterval(timer)
  status.end()
  try {
    await server.close(1001)
  } catch (error) {
    // The learning since the last good checkpoint is lost: say so, and where that checkpoint is.
    io.stderr.write(`error: ${error instanceof Error ? error.message : error}\n`)
    return 1
  }
  if (!quiet) io.stderr.write(`closed ${server.url} after ${server.metrics().events} ticks\n`)
  return 0
}

/** A UsageError saying what to change when the server cannot listen on `at`; other errors as they are. */
export function explainListenError(error: unknown, at: string): unknown {
  const code = (error as NodeJS.ErrnoException).code
  if (code === 'EADDRINUSE')
    return new UsageError(
      `cannot listen on ${at}: the port is in use; pick another --port (0: any free port)`,
    )
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EACCES')
    return new UsageError(`cannot listen on ${at} (${code}): check --host and --port`)
  return error
}
