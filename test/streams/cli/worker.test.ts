import { describe, expect, it } from 'vitest'
import { runCli } from '../../../streams/cli/program.js'
import { formatPartitionList } from '../../../streams/cli/worker.js'
import { loadNatsClients, NATS_INSTALL } from '../../../streams/server/nats/clients.js'
import { freePort } from '../../helpers/nats-server.js'

async function cli(args: string[]) {
  let out = ''
  let err = ''
  const code = await runCli(args, {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
  })
  return { code, out, err }
}

const MODEL = ['--input-size', '2', '--output-size', '1']

describe('rxrnn worker (flags)', () => {
  it('documents its contract in --help', async () => {
    const { code, out } = await cli(['worker', '--help'])
    expect(code).toBe(0)
    for (const flag of [
      '--nats',
      '--partitions',
      '--own',
      '--checkpoint-dir',
      '--checkpoint-every',
      '--weights',
      '--sync-every',
      '--subject-prefix',
      '--cell',
      '--input-size',
      '--hidden-size',
      '--output-size',
      '--layers',
      '--dtype',
      '--seed',
      '--k1',
      '--k2',
      '--loss',
      '--optimizer',
      '--lr',
      '--clip-norm',
      '--horizon',
      '--coverage',
      '--anomaly-threshold',
      '--drift',
      '--on-drift',
      '--time-feature',
      '--missing',
    ]) {
      expect(out).toContain(flag)
    }
  })

  it('refuses a bad --own, bad model settings and a NATS that is not there, naming each (exit 2)', async () => {
    const base = ['worker', '--nats', 'nats://127.0.0.1:1', '--checkpoint-dir', '/tmp/rxrnn-unused']
    const own = await cli([...base, '--partitions', '8', '--own', '6-2', ...MODEL])
    expect(own.code).toBe(2)
    expect(own.err).toMatch(/--own: the range "6-2" runs backwards/)
    const beyond = await cli([...base, '--partitions', '8', '--own', '0-8', ...MODEL])
    expect(beyond.err).toMatch(/partition 8 does not exist: there are 8 partitions/)
    const model = await cli([...base, '--input-size', '2'])
    expect(model.code).toBe(2)
    expect(model.err).toMatch(/outputSize is missing: pass --output-size/)
    const coverage = await cli([...base, ...MODEL, '--coverage', '1.5'])
    expect(coverage.code).toBe(2)
    expect(coverage.err).toMatch(/--coverage.*between 0 and 1/)
    const age = await cli([...base, '--stream-max-age', '10s', '--checkpoint-every', '30s', ...MODEL])
    expect(age.code).toBe(2)
    expect(age.err).toMatch(/must be at least two checkpoint intervals \(60000 ms\)/)
    const port = await freePort()
    const away = await cli([
      ...base.slice(0, 1),
      '--nats',
      `nats://127.0.0.1:${port}`,
      ...base.slice(3),
      ...MODEL,
    ])
    expect(away.code).toBe(2)
    expect(away.err).toMatch(
      /Cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+ .*start nats-server -js, or check --nats/,
    )
  })

  it('writes partition lists as ranges', () => {
    expect(formatPartitionList([0, 1, 2, 3, 5, 7, 8])).toBe('0-3,5,7-8')
    expect(formatPartitionList([4])).toBe('4')
  })

  it('loads the optional NATS clients, and names the install command when they are missing', async () => {
    expect(NATS_INSTALL).toBe('npm install @nats-io/transport-node @nats-io/jetstream @nats-io/kv')
    const clients = await loadNatsClients()
    expect(typeof clients.transport.connect).toBe('function')
  })
})
