/**
 * `rxrnn serve --nats <url> --partitions <P>`: the WebSocket server as a gateway to NATS workers
 * (streams/server/nats/gateway.ts). The model lives in the workers; the model flags given here
 * only check ticks before they are published (--input-size, --output-size, --loss) and fill
 * `welcome`.
 */
import { serveGateway } from '../server/nats/gateway.js'
import type { FrameExpectations, ModelSummary } from '../transport/protocol.js'
import { aborted, type CliIo, UsageError } from './io.js'
import type { ServeFlags } from './serve.js'

/** The flags `serve` takes for the gateway. */
export interface GatewayFlags {
  nats?: string
  partitions: number
  subjectPrefix: string
}

export async function runGateway(flags: ServeFlags & GatewayFlags, io: CliIo): Promise<number> {
  const classification = flags.loss === 'cross_entropy'
  const expect: FrameExpectations = { task: classification ? 'classification' : 'regression' }
  if (flags.inputSize !== undefined) expect.inputSize = flags.inputSize
  if (flags.outputSize !== undefined) expect.outputSize = flags.outputSize
  const model: ModelSummary = {
    cell: flags.cell,
    inputSize: flags.inputSize ?? 0,
    hiddenSize: flags.hiddenSize,
    numLayers: flags.layers,
    outputSize: flags.outputSize ?? 0,
    task: expect.task!,
    workers: 'nats',
  }
  let gateway: Awaited<ReturnType<typeof serveGateway>>
  try {
    gateway = await serveGateway({
      servers: flags.nats!.split(',').map((s) => s.trim()),
      partitions: flags.partitions,
      subjectPrefix: flags.subjectPrefix,
      host: flags.host,
      port: flags.port,
      ...(flags.token === undefined ? {} : { token: flags.token }),
      expect,
      model,
      maxPayload: flags.maxPayload,
      metricsIntervalMs: flags.metricsInterval,
      dashboard: flags.dashboard,
      log: (line) => io.stderr.write(`${line}\n`),
    })
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EADDRINUSE') {
      throw new UsageError(
        `cannot listen on ${flags.host}:${flags.port}: the port is in use; pick another --port`,
      )
    }
    throw error
  }
  io.stdout.write(`listening on ${gateway.url}\n`)
  if (flags.quiet !== true) {
    io.stderr.write(
      `gateway to ${flags.partitions} partitions on ${flags.nats} (subjects ${flags.subjectPrefix}.ticks.<p>); metrics on http${gateway.url.slice(2)}/metrics\n`,
    )
  }
  await aborted(io.signal)
  await gateway.close(1001)
  return 0
}
