/**
 * `rxrnn serve`: the streaming server of `server.ts`, with the model and trainer from flags or a
 * JSON config file (flags win), live progress, and a clean shutdown on SIGINT / SIGTERM.
 */
import { readFile } from 'node:fs/promises'
import { type Command, InvalidArgumentError, Option } from 'commander'
import type {
  CellKind,
  DriftDetectorName,
  DriftResponse,
  DType,
  LossName,
  MissingPolicy,
  Model,
  ModelConfig,
  TrainerOptions,
} from '../../src/index.js'
import {
  CELL_KINDS,
  createModel,
  DRIFT_DETECTORS,
  DRIFT_RESPONSES,
  ForecastTracker,
  LOSS_NAMES,
  MISSING_POLICIES,
  RxrnnError,
} from '../../src/index.js'
import { resolveTrainerOptions } from '../../src/trainer-options.js'
import type { ServeForecastingOptions } from '../server/forecasting.js'
import type { RxrnnServer, ServeOptions } from '../server/server.js'
import { serve } from '../server/server.js'
import { metricsLine } from './format.js'
import { aborted, type CliIo, StatusLine, UsageError } from './io.js'
import { integer, number, parseBytes, parseDuration, token } from './parse.js'

export const OPTIMIZER_TYPES = ['sgd', 'rmsprop', 'adam', 'adamw'] as const

/** The flags of `rxrnn serve`, as commander parses them. */
export interface ServeFlags {
  config?: string
  host: string
  port: number
  cell: CellKind
  inputSize?: number
  hiddenSize: number
  outputSize?: number
  layers: number
  dtype: DType
  seed?: number
  k1: number
  k2?: number
  loss: LossName
  optimizer: (typeof OPTIMIZER_TYPES)[number]
  lr: number
  clipNorm: number
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
  horizon?: number
  coverage?: number
  anomalyThreshold?: number
  drift?: DriftDetectorName | true
  onDrift?: DriftResponse
  timeFeature?: boolean
  missing?: MissingPolicy
}

/** What a `--config` file holds: `model` and `trainer` as the library takes them, and server options. */
export interface ServeConfigFile {
  model?: Partial<ModelConfig>
  trainer?: Partial<TrainerOptions>
  host?: string
  port?: number
  token?: string
  maxPayload?: number
  maxKeys?: number
  idleMs?: number
  maxBufferedBytes?: number
  metricsIntervalMs?: number
  checkpoint?: { path: string; everyMs?: number }
  dashboard?: boolean
  /** Intervals, anomalies, drift, time and missing values, as `serve` takes them; flags win. */
  forecasting?: ServeForecastingOptions
}

/** Where a flag's value came from (commander's `getOptionValueSource`). */
export type FlagSource = (flag: keyof ServeFlags) => string | undefined

const CONFIG_FIELDS: readonly string[] = [
  'model',
  'trainer',
  'host',
  'port',
  'token',
  'maxPayload',
  'maxKeys',
  'idleMs',
  'maxBufferedBytes',
  'metricsIntervalMs',
  'checkpoint',
  'dashboard',
  'forecasting',
]

/** Which flag and config field set what a core problem message starts with. */
const WHERE: Record<string, string> = {
  cell: '--cell, or model.cell',
  inputSize: '--input-size, or model.inputSize',
  hiddenSize: '--hidden-size, or model.hiddenSize',
  numLayers: '--layers, or model.numLayers',
  outputSize: '--output-size, or model.outputSize',
  dtype: '--dtype, or model.dtype',
  seed: '--seed, or model.seed',
  k1: '--k1, or trainer.k1',
  k2: '--k2, or trainer.k2',
  loss: '--loss, or trainer.loss',
  clipNorm: '--clip-norm, or trainer.clipNorm',
  'optimizer.type': '--optimizer, or trainer.optimizer.type',
  'optimizer.lr': '--lr, or trainer.optimizer.lr',
}

export function registerServe(program: Command, io: CliIo, done: (code: number) => void): void {
  const command = program
    .command('serve')
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
    .addOption(new Option('--cell <kind>', 'recurrent cell').choices(CELL_KINDS).default('gru'))
    .option('--input-size <n>', 'inputs per tick (length of x); required unless in --config', integer(1))
    .option('--hidden-size <n>', 'hidden units per layer', integer(1), 32)
    .option(
      '--output-size <n>',
      'outputs (regression targets, or classes with --loss cross_entropy); required unless in --config',
      integer(1),
    )
    .option('--layers <n>', 'stacked recurrent layers', integer(1), 1)
    .addOption(
      new Option('--dtype <dtype>', 'floating-point type of the weights')
        .choices(['float32', 'float64'])
        .default('float32'),
    )
    .option('--seed <n>', 'seed of the initial weights (default: random, printed at start)', integer(0))
    .option('--k1 <n>', 'truncated BPTT: update the weights every k1 ticks of a key', integer(1), 16)
    .option(
      '--k2 <n>',
      'truncated BPTT: backpropagate through the last k2 ticks (>= k1; default k1)',
      integer(1),
    )
    .addOption(new Option('--loss <name>', 'training loss').choices(LOSS_NAMES).default('mse'))
    .addOption(new Option('--optimizer <type>', 'optimizer').choices(OPTIMIZER_TYPES).default('adam'))
    .option('--lr <rate>', 'learning rate', number(0), 1e-3)
    .option('--clip-norm <n>', 'clip the global gradient norm to this (0: no clipping)', number(0), 1)
    .addOption(
      new Option(
        '--token <token>',
        'require this token from clients (Authorization: Bearer <token>, or ?token=); others get HTTP 401',
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
    .option(
      '--horizon <n>',
      'forecast n ticks ahead with a direct multi-horizon head: prediction frames carry `ahead` (n rows of --output-size); k2 defaults to k1 + n - 1',
      integer(1),
    )
    .option(
      '--coverage <c>',
      'calibrated intervals (adaptive conformal, per key): frames carry lower/upper holding the target with long-run probability c, and an anomaly score',
      fraction,
    )
    .option('--anomaly-threshold <a>', 'mark ticks whose anomaly score is >= a (default 0.99)', fraction)
    .addOption(
      new Option(
        '--drift [detector]',
        "detect drift on each key's prequential loss; alarms go to `updates` subscribers",
      ).choices(DRIFT_DETECTORS),
    )
    .addOption(
      new Option('--on-drift <response>', 'what a drift alarm does (default report)').choices(
        DRIFT_RESPONSES,
      ),
    )
    .option(
      '--time-feature',
      "also feed the model ln(1 + seconds since the key's last tick), from the ticks' t",
    )
    .addOption(
      new Option(
        '--missing <policy>',
        'accept null in x: impute (last value or zero) and add a mask input per feature',
      ).choices(MISSING_POLICIES),
    )
  command.action(async (flags: ServeFlags, cmd: Command) => {
    const file = flags.config === undefined ? undefined : await loadServeConfig(flags.config)
    const options = resolveServeOptions(flags, (name) => cmd.getOptionValueSource(name), file)
    done(await runServe(options, flags, io))
  })
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
  for (const field of ['maxPayload', 'maxKeys', 'idleMs', 'maxBufferedBytes', 'metricsIntervalMs']) {
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

  const model: Record<string, unknown> = { ...file.model }
  const modelFields: [keyof ModelConfig, keyof ServeFlags][] = [
    ['cell', 'cell'],
    ['inputSize', 'inputSize'],
    ['hiddenSize', 'hiddenSize'],
    ['numLayers', 'layers'],
    ['outputSize', 'outputSize'],
    ['dtype', 'dtype'],
    ['seed', 'seed'],
  ]
  for (const [field, flag] of modelFields) {
    const value = pick(flag, model[field])
    if (value !== undefined) model[field] = value
  }

  const trainer: Record<string, unknown> = { ...file.trainer }
  for (const field of ['k1', 'k2', 'loss'] as const) {
    const value = pick(field, trainer[field])
    if (value !== undefined) trainer[field] = value
  }
  // Forecasting: the model's sizes grow by what the flags add (rows of the head, masks, the time input).
  const horizon = flags.horizon ?? (trainer.horizon as number | undefined) ?? 1
  if (horizon > 1) {
    trainer.horizon = horizon
    if (typeof model.outputSize === 'number') model.outputSize = model.outputSize * horizon
    // k2 must reach back over the horizon: unless given, it does.
    if (trainer.k2 === undefined && typeof trainer.k1 === 'number') trainer.k2 = trainer.k1 + horizon - 1
  }
  // The file's forecasting settings, then the flags over them.
  const forecasting: ServeForecastingOptions = { ...file.forecasting }
  if (flags.coverage !== undefined) forecasting.coverage = flags.coverage
  if (flags.anomalyThreshold !== undefined) forecasting.anomalyThreshold = flags.anomalyThreshold
  if (flags.drift !== undefined || flags.onDrift !== undefined) {
    forecasting.drift = {
      ...forecasting.drift,
      ...(typeof flags.drift === 'string' ? { detector: flags.drift } : {}),
      ...(flags.onDrift ? { response: flags.onDrift } : {}),
    }
  }
  if (flags.timeFeature) forecasting.timeFeature = true
  if (flags.missing) forecasting.missing = flags.missing
  if (typeof model.inputSize === 'number' && (forecasting.missing || forecasting.timeFeature)) {
    model.inputSize = model.inputSize * (forecasting.missing ? 2 : 1) + (forecasting.timeFeature ? 1 : 0)
  }
  // 0 (a flag) or null (a file) turns clipping off.
  const clipNorm = pick('clipNorm', trainer.clipNorm)
  if (clipNorm === 0 || clipNorm === null) delete trainer.clipNorm
  else trainer.clipNorm = clipNorm
  let optimizer: Record<string, unknown> = {
    ...(file.trainer?.optimizer as Record<string, unknown> | undefined),
  }
  // Another optimizer type on the command line drops the file's settings that belonged to the old one.
  if (given('optimizer') && optimizer.type !== flags.optimizer) optimizer = {}
  optimizer.type = pick('optimizer', optimizer.type)
  optimizer.lr = pick('lr', optimizer.lr)
  trainer.optimizer = optimizer

  const problems: string[] = []
  if (model.inputSize === undefined) {
    problems.push('inputSize is missing: pass --input-size <n> (or set model.inputSize in the --config file)')
  }
  if (model.outputSize === undefined) {
    problems.push(
      'outputSize is missing: pass --output-size <n> (or set model.outputSize in the --config file)',
    )
  }
  let built: Model | undefined
  if (problems.length === 0) {
    try {
      built = createModel(model as unknown as ModelConfig)
    } catch (error) {
      if (!(error instanceof RxrnnError)) throw error
      problems.push(...error.problems.map(where))
    }
  }
  try {
    resolveTrainerOptions(trainer as unknown as TrainerOptions)
  } catch (error) {
    if (!(error instanceof RxrnnError)) throw error
    problems.push(...error.problems.map(where))
  }
  problems.push(...forecastingProblems(forecasting))
  if (problems.length > 0 || built === undefined) {
    throw new RxrnnError('bad_config', 'Invalid model or trainer settings for rxrnn serve', problems)
  }

  const options: ServeOptions = {
    model: built,
    trainer: trainer as unknown as TrainerOptions,
    host: pick('host', file.host) ?? '127.0.0.1',
    port: pick('port', file.port) ?? 8080,
    maxPayload: pick('maxPayload', file.maxPayload) ?? 1 << 20,
    maxKeys: pick('maxKeys', file.maxKeys) ?? 100_000,
    maxBufferedBytes: pick('maxBufferedBytes', file.maxBufferedBytes) ?? 4 << 20,
    metricsIntervalMs: pick('metricsInterval', file.metricsIntervalMs) ?? 1000,
    dashboard: pick('dashboard', file.dashboard) ?? true,
  }
  const checkpointPath = pick('checkpoint', file.checkpoint?.path)
  if (checkpointPath !== undefined) {
    const everyMs = pick('checkpointEvery', file.checkpoint?.everyMs) ?? 60_000
    options.checkpoint = { path: checkpointPath, everyMs }
  }
  if (Object.keys(forecasting).length > 0) options.forecasting = forecasting
  const tokenValue = pick('token', file.token)
  if (tokenValue !== undefined) options.token = tokenValue
  const idleMs = pick('idleMs', file.idleMs)
  if (idleMs !== undefined) options.idleMs = idleMs
  return options
}

/** What is wrong with the forecasting settings (flags or the file's `forecasting`), each naming where it is set. */
function forecastingProblems(f: ServeForecastingOptions): string[] {
  const problems: string[] = []
  try {
    // The same checks the server runs per key, now, before anything listens.
    new ForecastTracker(1, 1, {
      ...(f.coverage === undefined ? {} : { coverage: f.coverage }),
      ...(f.anomalyThreshold === undefined ? {} : { anomalyThreshold: f.anomalyThreshold }),
      ...(f.drift === undefined ? {} : { drift: f.drift }),
    })
  } catch (error) {
    if (!(error instanceof RxrnnError)) throw error
    problems.push(
      ...error.problems.map(
        (p) => `${p} (--coverage, --anomaly-threshold, --drift, --on-drift, or forecasting.*)`,
      ),
    )
  }
  if (f.missing !== undefined && !MISSING_POLICIES.includes(f.missing))
    problems.push(
      `missing is ${JSON.stringify(f.missing)}; use one of ${MISSING_POLICIES.join(', ')} (--missing, or forecasting.missing)`,
    )
  return problems
}

/** A number strictly between 0 and 1 (a coverage or a threshold). */
function fraction(value: string): number {
  const n = Number(value)
  if (!(n > 0 && n < 1))
    throw new InvalidArgumentError('Expected a number between 0 and 1 (exclusive), e.g. 0.9.')
  return n
}

/** Appends the flag and config field a core problem is about, when it is one of ours. */
function where(problem: string): string {
  const subject = /^([A-Za-z0-9]+(?:\.[A-Za-z0-9]+)?)/.exec(problem)?.[1]
  const hint = subject === undefined ? undefined : WHERE[subject]
  return hint === undefined ? problem : `${problem} (${hint})`
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
    `trainer: k1 ${t.k1}, k2 ${t.k2}, ${t.loss}, ${o.type} lr ${o.lr}, ${clip}`
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
    const code = (error as NodeJS.ErrnoException).code
    const at = `${options.host}:${options.port}`
    if (code === 'EADDRINUSE') {
      throw new UsageError(
        `cannot listen on ${at}: the port is in use; pick another --port (0: any free port)`,
      )
    }
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EACCES') {
      throw new UsageError(`cannot listen on ${at} (${code}): check --host and --port`)
    }
    throw error
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
  await server.close(1001)
  if (!quiet) io.stderr.write(`closed ${server.url} after ${server.metrics().events} ticks\n`)
  return 0
}
