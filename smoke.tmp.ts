import { existsSync } from 'node:fs'
import { connect } from '@nats-io/transport-node'
import { collectPredictions, publishTicks, tickFeed, waitFor } from './test/streams/server/nats/nats-test-kit.js'
const nc = await connect({ servers: 'nats://127.0.0.1:14222' })
const live = collectPredictions(nc, 'rxrnn')
const ticks = tickFeed(3000, 24)
await publishTicks(nc, 'rxrnn', 4, ticks.slice(0, 1200), 5)
await waitFor(() => existsSync(process.argv[2] + '/partition-2.ckpt'), 10000, () => 'ck')
console.log('after phase 1', live.answered)
await publishTicks(nc, 'rxrnn', 4, ticks.slice(1200, 1800), 5)
for (let i = 0; i < 10; i++) { await new Promise((r) => setTimeout(r, 500)); console.log('after phase 2', live.answered) }
await nc.close()
