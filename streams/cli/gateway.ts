/**
 * `rxrnn serve --nats <url> --partitions <P>`: the WebSocket server as a gateway to NATS workers
 * (streams/server/nats/gateway.ts). It takes every security and limit flag of `serve` (token,
 * origins, hosts, connection limits, timeouts, budgets, TLS, dashboard), from the same flags and
 * `--config` fields with the same defaults. The model lives in the workers; the model flags given
 * here only check ticks before they are published (--input-size, --output-size, --loss) and fill
 * `welcome`. Forecasting runs in the workers (`rxrnn worker --coverage …`); here --missing lets
 * null through to them and --horizon goes into `welcome`.
 */
import { type GatewayOptions, serveGateway } from '../server/nats/gateway.js'
import type { FrameExpectations, ModelSummary } from '../transport/protocol.js'
import { resolveEndpointOptions } from './endpoint-flags.js'
import { resolveForecastingFlags } from './forecasting-flags.js'
import { aborted, type CliIo } from './io.js'
import { explainListenError, type FlagSource, type ServeConfigFile, type ServeFlags } from './serve.js'

/** The flags `serve` takes for the gateway. */
export interface GatewayFlags {
  nats?: string
  partitions: number
  subjectPrefix: string
}

/** Serves as a gateway until `io.signal` aborts, then closes every connection with 1001. Returns the exit code. */
export async function runGateway(
  flags: ServeFlags & GatewayFlags,
  sourceOf: FlagSource,
  file: ServeConfigFile = {},
  io: CliIo,
): Promise<number> {
  const endpoint = resolveEndpointOptions(flags, sourceOf, file)
  const given = (flag: keyof ServeFlags): boolean => sourceOf(flag) === 'cli' || sourceOf(flag) === 'env'
  const pick = <T>(flag: keyof ServeFlags, fromFile: T | undefined): T =>
    (given(flag) || fromFile === undefined ? flags[flag] : fromFile) as T
  const inputSize = pick<number | undefined>('inputSize', file.model?.inputSize)
  const outputSize = pick<number | undefined>('outputSize', file.model?.outputSize)
  const classification = pick('loss', file.trainer?.loss) === 'cross_entropy'
  // The workers forecast; the gateway checks ticks as they will (null in x with --missing) and says so in welcome.
  const forecasting = resolveForecastingFlags(flags, file.forecasting, 'rxrnn serve --nats')
  const horizon = pick<number | undefined>('horizon', file.trainer?.horizon)
  const expect: FrameExpectations = { task: classification ? 'classification' : 'regression' }
  if (inputSize !== undefined) expect.inputSize = inputSize
  if (outputSize !== undefined) expect.outputSize = outputSize
  if (forecasting.missing) expect.allowMissing = true
  const model: ModelSummary = {
    cell: pick('cell', file.model?.cell),
    inputSize: inputSize ?? 0,
    hiddenSize: pick('hiddenSize', file.model?.hiddenSize),
    numLayers: pick('layers', file.model?.numLayers),
    outputSize: outputSize ?? 0,
    task: expect.task!,
    ...(horizon !== undefined && horizon > 1 ? { horizon } : {}),
    workers: 'nats',
  }
  const options: GatewayOptions = {
    ...endpoint,
    servers: flags.nats!.split(',').map((s) => s.trim()),
    partitions: flags.partitions,
    subjectPrefix: flags.subjectPrefix,
    expect,
    model,
    maxKnownKeys: pick('maxKeys', file.maxKeys),
    log: (line) => io.stderr.write(`${line}\n`),
  }
  let gateway: Awaited<ReturnType<typeof serveGateway>>
  try {
    gateway = await serveGateway(options)
  } catch (error) {
    throw explainListenError(error, `${endpoint.host}:${endpoint.port}`)
  }
  io.stdout.write(`listening on ${gateway.url}\n`)
  if (flags.quiet !== true) {
    io.stderr.write(
      `gateway to ${flags.partitions} partitions on ${flags.nats} (subjects ${flags.subjectPrefix}.ticks.<p>); metrics on http${gateway.url.slice(2)}/metrics\n`,
    )
  }
  const loopback = ['127.0.0.1', 'localhost', '::1'].includes(gateway.host)
  if (!loopback && endpoint.token === undefined) {
    io.stderr.write(
      `warning: listening on ${gateway.host} without --token: anyone who can reach port ${gateway.port} can send ticks\n`,
    )
  }
  await aborted(io.signal)
  await gateway.close(1001)
  return 0
}
