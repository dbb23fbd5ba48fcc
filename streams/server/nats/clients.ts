/**
 * The NATS clients are optional peer dependencies: only `rxrnn worker` and `serve --nats` load
 * them, on first use, so that users who never scale out install nothing for it.
 */
import { RxrnnError } from '../../../src/index.js'

import { NATS_INSTALL } from './install-hint.js'

export { NATS_INSTALL }

export interface NatsClients {
  transport: typeof import('@nats-io/transport-node')
  jetstream: typeof import('@nats-io/jetstream')
  kv: typeof import('@nats-io/kv')
}

let loaded: Promise<NatsClients> | undefined

/**
 * Imports the three NATS client packages, once.
 *
 * @throws RxrnnError('bad_config') whose message ends with NATS_INSTALL when one is missing.
 */
export function loadNatsClients(): Promise<NatsClients> {
  loaded ??= (async () => {
    try {
      const [transport, jetstream, kv] = await Promise.all([
        import('@nats-io/transport-node'),
        import('@nats-io/jetstream'),
        import('@nats-io/kv'),
      ])
      return { transport, jetstream, kv }
    } catch (cause) {
      loaded = undefined
      const missing = (cause as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND'
      throw new RxrnnError(
        'bad_config',
        missing
          ? `Scaling out on NATS needs the NATS clients, which are not installed: ${NATS_INSTALL}`
          : `Could not load the NATS clients (${(cause as Error).message}); reinstall them: ${NATS_INSTALL}`,
      )
    }
  })()
  return loaded
}

/**
 * Connects to NATS as `name`; a refusal becomes RxrnnError('bad_config') that says what to do.
 */
export async function connectNats(
  clients: NatsClients,
  servers: string | string[],
  name: string,
): Promise<import('@nats-io/transport-node').NatsConnection> {
  try {
    return await clients.transport.connect({ servers, name })
  } catch (error) {
    throw new RxrnnError(
      'bad_config',
      `Cannot connect to NATS at ${String(servers)} (${(error as Error).message}): start nats-server -js, or check --nats`,
    )
  }
}
