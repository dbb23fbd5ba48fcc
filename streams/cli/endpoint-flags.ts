/**
 * How `rxrnn serve` meets its clients, from flags over the `--config` file over the defaults:
 * host, port, token, origins and hosts, TLS, limits, budgets, timeouts, dashboard. One place, so
 * that `serve` and `serve --nats` (the gateway) take the same flags with the same defaults.
 */
import { readFileSync } from 'node:fs'
import type { EndpointOptions } from '../server/endpoint.js'
import { UsageError } from './io.js'
import type { FlagSource, ServeConfigFile, ServeFlags } from './serve.js'

/**
 * @example
 * const endpoint = resolveEndpointOptions(flags, (name) => cmd.getOptionValueSource(name), file)
 */
export function resolveEndpointOptions(
  flags: ServeFlags,
  sourceOf: FlagSource,
  file: ServeConfigFile = {},
): EndpointOptions {
  // A flag given on the command line (or by its environment variable) wins; then the file; then the default.
  const pick = <T>(flag: keyof ServeFlags, fromFile: T | undefined): T | undefined => {
    const source = sourceOf(flag)
    const given = source === 'cli' || source === 'env'
    return given || fromFile === undefined ? (flags[flag] as T | undefined) : fromFile
  }
  const options: EndpointOptions = {
    host: pick('host', file.host) ?? '127.0.0.1',
    port: pick('port', file.port) ?? 8080,
    maxPayload: pick('maxPayload', file.maxPayload) ?? 1 << 20,
    maxBufferedBytes: pick('maxBufferedBytes', file.maxBufferedBytes) ?? 4 << 20,
    metricsIntervalMs: pick('metricsInterval', file.metricsIntervalMs) ?? 1000,
    dashboard: pick('dashboard', file.dashboard) ?? true,
    allowOrigins: [...(file.allowOrigins ?? []), ...(flags.allowOrigin ?? [])],
    allowedHosts: [...(file.allowedHosts ?? []), ...(flags.allowedHost ?? [])],
    maxConnections: pick('maxConnections', file.maxConnections) ?? 1024,
    maxConnectionsPerAddress: pick('maxConnectionsPerAddress', file.maxConnectionsPerAddress) ?? 256,
    pingIntervalMs: pick('pingInterval', file.pingIntervalMs) ?? 5000,
    idleTimeoutMs: pick('idleTimeout', file.idleTimeoutMs) ?? 30_000,
    headersTimeoutMs: pick('headersTimeout', file.headersTimeoutMs) ?? 10_000,
    requestTimeoutMs: pick('requestTimeout', file.requestTimeoutMs) ?? 30_000,
    maxSubscribeKeys: pick('maxSubscribeKeys', file.maxSubscribeKeys) ?? 1000,
    maxNewKeysPerSecond: pick('maxNewKeysPerSecond', file.maxNewKeysPerSecond) ?? 1000,
    maxBufferedTotal: pick('maxBufferedTotal', file.maxBufferedTotal) ?? 256 << 20,
    slowReaderGraceMs: pick('slowReaderGrace', file.slowReaderGraceMs) ?? 5000,
  }
  const tlsCert = pick('tlsCert', file.tls?.cert)
  const tlsKey = pick('tlsKey', file.tls?.key)
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    throw new UsageError('--tls-cert and --tls-key go together: pass both (PEM files), or neither')
  }
  if (tlsCert !== undefined && tlsKey !== undefined)
    options.tls = { cert: readPem(tlsCert, '--tls-cert'), key: readPem(tlsKey, '--tls-key') }
  const tokenValue = pick('token', file.token)
  if (tokenValue !== undefined) options.token = tokenValue
  return options
}

/** A PEM file's text, or a usage error naming the flag. */
function readPem(path: string, flag: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (error) {
    throw new UsageError(`${flag}: cannot read ${path}: ${(error as Error).message}`)
  }
}
