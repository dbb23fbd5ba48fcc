import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import type { ModelConfig, TrainerOptions } from '../../../src/index.js'
import { runCli } from '../../../streams/cli/program.js'
import { type RxrnnServer, type ServeOptions, serve } from '../../../streams/server/server.js'
import { decodeFrame, encodeFrame } from '../../../streams/transport/codec.js'
import { until } from '../../helpers/streams.js'

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url))

const MODEL: ModelConfig = { cell: 'gru', inputSize: 2, hiddenSize: 6, outputSize: 1, seed: 3 }
const TRAINER: TrainerOptions = { k1: 2, loss: 'mse', optimizer: { type: 'adam', lr: 1e-2 }, clipNorm: 1 }

const cleanups: (() => unknown)[] = []
let dir: string

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rxrnn-cli-'))
  cleanups.push(() => rm(dir, { recursive: true, force: true }))
})

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function start(options: Partial<ServeOptions> = {}): Promise<RxrnnServer> {
  const server = await serve({ model: MODEL, trainer: TRAINER, port: 0, ...options })
  cleanups.push(() => server.close())
  return server
}

/** Captured output of an in-process run. */
interface Run {
  code: Promise<number>
  stdout: () => string
  stderr: () => string
  abort: () => void
}

function cli(argv: string[], options: { tty?: boolean } = {}): Run {
  let stdout = ''
  let stderr = ''
  const controller = new AbortController()
  const code = runCli(argv, {
    stdout: { write: (s: string) => (stdout += s), isTTY: options.tty === true, columns: 200 },
    stderr: { write: (s: string) => (stderr += s) },
    signal: controller.signal,
  })
  cleanups.push(async () => {
    controller.abort()
    await code
  })
  return { code, stdout: () => stdout, stderr: () => stderr, abort: () => controller.abort() }
}

/** Runs the real binary (through tsx) to its end. */
async function binary(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'streams/cli/index.ts', ...args], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  cleanups.push(() => child.exitCode === null && child.kill('SIGKILL'))
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const [code] = (await once(child, 'exit')) as [number | null]
  return { code, stdout, stderr }
}

async function csv(name: string, text: string): Promise<string> {
  const path = join(dir, name)
  await writeFile(path, text)
  return path
}

/** A raw client that subscribes to `channels` and keeps what it receives. */
async function subscriber(url: string, channels: string[]): Promise<Record<string, unknown>[]> {
  const ws = new WebSocket(url)
  cleanups.push(() => ws.terminate())
  const frames: Record<string, unknown>[] = []
  ws.on('message', (data: Buffer, isBinary) => {
    const decoded = decodeFrame(data, isBinary)
    if (decoded.ok) frames.push(decoded.value as Record<string, unknown>)
  })
  await once(ws, 'open')
  ws.send(encodeFrame({ type: 'subscribe', channels }, 'msgpack'))
  await until('subscribed', () => frames.some((f) => f.type === 'subscribed'))
  return frames
}

describe('rxrnn --help', () => {
  const contract: Record<string, string[]> = {
    serve: [
      '--config',
      '--port',
      '--host',
      '--cell',
      '--input-size',
      '--hidden-size',
      '--output-size',
      '--layers',
      '--k1',
      '--k2',
      '--loss',
      '--optimizer',
      '--lr',
      '--clip-norm',
      '--token',
      '--max-payload',
      '--idle-ms',
      '--max-keys',
      '--metrics-interval',
      '--seed',
      '--dtype',
      '--checkpoint',
      '--checkpoint-every',
      '--allow-origin',
      '--allowed-host',
      '--max-connections',
      '--max-connections-per-address',
      '--ping-interval',
      '--idle-timeout',
      '--headers-timeout',
      '--request-timeout',
      '--max-subscribe-keys',
      '--max-new-keys-per-second',
      '--max-memory',
      '--max-buffered-total',
      '--slow-reader-grace',
      '--tls-cert',
      '--tls-key',
    ],
    replay: [
      '<file.csv>',
      '--url',
      '--x',
      '--y',
      '--key',
      '--key-value',
      '--rate',
      '--target',
      '--encoding',
      '--token',
      '--limit',
    ],
    tail: ['--channels', '--keys', '--url', '--token', '--json'],
    demo: ['--keep-serving', '--port', '--quick'],
  }

  it.each(Object.keys(contract))('%s --help describes the command and lists its flags', async (command) => {
    const run = cli([command, '--help'])
    expect(await run.code).toBe(0)
    const help = run.stdout()
    expect(help).toContain(`Usage: rxrnn ${command}`)
    for (const flag of contract[command]!) expect(help).toContain(flag)
  })

  it('rxrnn --help lists the commands', async () => {
    const run = cli(['--help'])
    expect(await run.code).toBe(0)
    for (const command of Object.keys(contract)) expect(run.stdout()).toMatch(new RegExp(`\\n  ${command} `))
  })
})

describe('bad flags exit 2 with a message naming the flag', () => {
  it.each([
    [
      ['serve', '--cell', 'foo', '--input-size', '1', '--output-size', '1'],
      /--cell.*rnn_tanh, rnn_relu, lstm, gru/,
    ],
    [['serve', '--port', 'eighty'], /--port <n>' argument 'eighty' is invalid/],
    [
      ['serve', '--hidden-size', '0'],
      /--hidden-size <n>' argument '0' is invalid\. Expected a whole number >= 1/,
    ],
    [['serve', '--lr', '-1'], /--lr <rate>' argument '-1' is invalid/],
    [['serve', '--loss', 'l1'], /--loss.*mse, cross_entropy, bce, huber/],
    [['serve', '--idle-ms', 'soon'], /--idle-ms <duration>' argument 'soon' is invalid/],
    [['serve', '--bogus'], /unknown option '--bogus'/],
    [['replay', 'data.csv'], /required option '--x <cols>' not specified/],
    [
      ['replay', 'data.csv', '--x', 'a', '--key', 'k', '--key-value', 'v'],
      /--key.*cannot be used with.*--key-value/,
    ],
    [['replay', 'data.csv', '--x', 'a', '--target', 'later'], /--target.*same, next/],
    [['replay', 'data.csv', '--x', 'a', '--url', 'ftp://x'], /--url <url>' argument 'ftp:\/\/x' is invalid/],
    [
      ['tail', '--channels', 'metrics,gossip'],
      /--channels <list>' argument 'metrics,gossip' is invalid\. "gossip" is not one of/,
    ],
    [['launch'], /unknown command 'launch'/],
  ])('%j', async (argv, message) => {
    const run = cli(argv)
    expect(await run.code).toBe(2)
    expect(run.stderr()).toMatch(message)
  })

  it('serve without the model sizes names both flags', async () => {
    const run = cli(['serve', '--port', '0'])
    expect(await run.code).toBe(2)
    expect(run.stderr()).toMatch(/inputSize is missing: pass --input-size/)
    expect(run.stderr()).toMatch(/outputSize is missing: pass --output-size/)
  })

  it('a config file with errors: every problem is listed, with the flag or field that sets it', async () => {
    const config = join(dir, 'bad.json')
    await writeFile(
      config,
      JSON.stringify({
        model: { cell: 'lstm', inputSize: 2, hiddenSize: -4, outputSize: 1 },
        trainer: { k1: 8, k2: 4, loss: 'mse', optimizer: { type: 'adam', lr: 1e-3, beta1: 2 } },
      }),
    )
    const run = cli(['serve', '--config', config])
    expect(await run.code).toBe(2)
    const stderr = run.stderr()
    expect(stderr).toMatch(
      /hiddenSize is -4; it must be a positive integer \(--hidden-size, or model\.hiddenSize\)/,
    )
    expect(stderr).toMatch(/k2 \(4\) is smaller than k1 \(8\).*\(--k2, or trainer\.k2\)/)
    expect(stderr).toMatch(/optimizer\.beta1 is 2/)
  })

  it('serve refuses a short token, and keys that may not fit in --max-memory, naming the figures (exit 2)', async () => {
    const short = cli([
      'serve',
      '--input-size',
      '2',
      '--output-size',
      '1',
      '--port',
      '0',
      '--token',
      'secret',
    ])
    expect(await short.code).toBe(2)
    expect(short.stderr()).toMatch(/at least 16 characters.*node -e/)
    const big = ['--cell', 'lstm', '--hidden-size', '1024', '--k1', '256', '--max-memory', '1gb']
    const run = cli(['serve', '--input-size', '4', '--output-size', '1', '--port', '0', ...big])
    expect(await run.code).toBe(2)
    expect(run.stderr()).toMatch(
      /--max-keys 100000 × [\d.]+ MiB per key .* = [\d.]+ GiB, over --max-memory 1\.0 GiB/,
    )
  })

  it('a config file with the server limits, origins and hosts is read; a bad one names the field', async () => {
    const config = join(dir, 'limits.json')
    await writeFile(
      config,
      JSON.stringify({ allowOrigins: 'https://a.example', maxConnections: 0, tls: { cert: 1 } }),
    )
    const run = cli(['serve', '--config', config, '--input-size', '2', '--output-size', '1'])
    expect(await run.code).toBe(2)
    expect(run.stderr()).toMatch(/allowOrigins must be a list of non-empty strings/)
    expect(run.stderr()).toMatch(/maxConnections is 0/)
    expect(run.stderr()).toMatch(/tls must be an object/)
  })

  it('a config file with unknown fields or bad JSON is refused', async () => {
    const typo = join(dir, 'typo.json')
    await writeFile(typo, JSON.stringify({ modle: {}, port: 'eighty' }))
    const run = cli(['serve', '--config', typo])
    expect(await run.code).toBe(2)
    expect(run.stderr()).toMatch(/unknown field "modle"/)
    expect(run.stderr()).toMatch(/port is "eighty"/)
    const broken = join(dir, 'broken.json')
    await writeFile(broken, '{ "model": ')
    const second = cli(['serve', '--config', broken])
    expect(await second.code).toBe(2)
    expect(second.stderr()).toMatch(/--config: .*broken\.json is not valid JSON/)
  })

  it('the binary: --help exits 0, a bad flag exits 2', async () => {
    const [help, bad] = await Promise.all([binary(['serve', '--help']), binary(['serve', '--cell', 'foo'])])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('--input-size <n>')
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain("error: option '--cell <kind>' argument 'foo' is invalid")
  })
})

describe('rxrnn serve', () => {
  it('takes the model from --config, lets flags override it, and closes with 1001 when stopped', async () => {
    const config = join(dir, 'model.json')
    await writeFile(
      config,
      JSON.stringify({
        model: { cell: 'lstm', inputSize: 2, hiddenSize: 5, outputSize: 1, seed: 4 },
        trainer: { k1: 3, loss: 'huber', optimizer: { type: 'sgd', lr: 0.1, momentum: 0.9 } },
        metricsIntervalMs: 50,
      }),
    )
    const run = cli(['serve', '--config', config, '--port', '0', '--hidden-size', '7', '--lr', '0.05'])
    await until('the listening line', () => run.stdout().includes('\n'))
    const line = run.stdout().split('\n')[0]!
    expect(line).toMatch(/^listening on ws:\/\/127\.0\.0\.1:\d+$/)

    const ws = new WebSocket(line.slice('listening on '.length))
    cleanups.push(() => ws.terminate())
    const frames: Record<string, unknown>[] = []
    ws.on('message', (data: Buffer, isBinary) => {
      const decoded = decodeFrame(data, isBinary)
      if (decoded.ok) frames.push(decoded.value as Record<string, unknown>)
    })
    await once(ws, 'open')
    ws.send(JSON.stringify({ type: 'hello', id: 1 }))
    await until('welcome', () => frames.some((f) => f.type === 'welcome'))
    expect(frames[0]!.model).toMatchObject({
      cell: 'lstm',
      hiddenSize: 7,
      inputSize: 2,
      k1: 3,
      loss: 'huber',
      optimizer: 'sgd',
      lr: 0.05,
      clipNorm: 1,
    })
    const closed = once(ws, 'close')
    run.abort()
    expect(await run.code).toBe(0)
    const [code] = (await closed) as [number]
    expect(code).toBe(1001)
    expect(run.stderr()).toMatch(
      /model: lstm 2 → 7 → 1 \(1 layer, float32, seed 4\); trainer: tbptt k1 3, k2 3, huber, sgd lr 0\.05/,
    )
  })

  it('--algorithm rtrl learns without truncation over the socket; k2 is refused with it, naming the flag', async () => {
    const refused = cli([
      'serve',
      '--input-size',
      '1',
      '--output-size',
      '1',
      '--algorithm',
      'uoro',
      '--k2',
      '8',
    ])
    expect(await refused.code).toBe(2)
    expect(refused.stderr()).toMatch(/k2 is 8, but algorithm 'uoro' has no window.*\(--k2, or trainer\.k2\)/)

    const run = cli([
      ...['serve', '--port', '0', '--input-size', '1', '--output-size', '1', '--cell', 'rnn_tanh'],
      ...['--hidden-size', '4', '--algorithm', 'rtrl', '--k1', '2', '--seed', '1'],
    ])
    await until('the listening line', () => run.stdout().includes('\n'))
    const ws = new WebSocket(run.stdout().split('\n')[0]!.slice('listening on '.length))
    cleanups.push(() => ws.terminate())
    const frames: Record<string, unknown>[] = []
    ws.on('message', (data: Buffer, isBinary) => {
      const decoded = decodeFrame(data, isBinary)
      if (decoded.ok) frames.push(decoded.value as Record<string, unknown>)
    })
    await once(ws, 'open')
    ws.send(JSON.stringify({ type: 'hello', id: 1 }))
    ws.send(JSON.stringify({ type: 'subscribe', channels: ['updates'] }))
    for (let t = 0; t < 20; t++)
      ws.send(JSON.stringify({ type: 'tick', key: 'a', x: [Math.sin(t)], y: [Math.sin(t + 1)], id: t }))
    await until('20 predictions', () => frames.filter((f) => f.type === 'prediction').length === 20)
    expect(frames.find((f) => f.type === 'welcome')!.model).toMatchObject({ algorithm: 'rtrl', k1: 2 })
    await until('an update', () => frames.some((f) => f.type === 'update'))
    run.abort()
    expect(await run.code).toBe(0)
    expect(run.stderr()).toMatch(/trainer: rtrl k1 2, mse/)
  })

  it('--checkpoint saves on exit and the next serve resumes from it', async () => {
    const checkpoint = join(dir, 'model.ckpt')
    const args = ['serve', '--port', '0', '--input-size', '2', '--output-size', '1', '--k1', '2']
    const first = cli([...args, '--checkpoint', checkpoint, '--checkpoint-every', '1h'])
    await until('the listening line', () => first.stdout().includes('\n'))
    const ws = new WebSocket(first.stdout().split('\n')[0]!.slice('listening on '.length))
    cleanups.push(() => ws.terminate())
    await once(ws, 'open')
    let answers = 0
    ws.on('message', () => answers++)
    for (let t = 0; t < 4; t++) ws.send(JSON.stringify({ type: 'tick', key: 'k', x: [t, 1], y: t }))
    await until('the predictions', () => answers === 4)
    first.abort()
    expect(await first.code).toBe(0)

    const second = cli([...args, '--checkpoint', checkpoint])
    await until('the listening line', () => second.stdout().includes('\n'))
    expect(second.stderr()).toMatch(/resumed from .*model\.ckpt/)
  })

  it('shows progress as one line redrawn in place on a terminal', async () => {
    const run = cli(
      ['serve', '--port', '0', '--input-size', '2', '--output-size', '1', '--progress-interval', '20ms'],
      { tty: true },
    )
    await until('the listening line', () => run.stdout().includes('\n'))
    const url = run.stdout().split('\n')[0]!.slice('listening on '.length)
    const ws = new WebSocket(url)
    cleanups.push(() => ws.terminate())
    await once(ws, 'open')
    ws.send(JSON.stringify({ type: 'tick', key: 'a', x: [1, 2], y: 1 }))
    await until('a progress line with the tick', () => run.stdout().includes('\revents 1 '))
    run.abort()
    expect(await run.code).toBe(0)
    const progress = run.stdout().split('\n')[1]!
    expect(progress.startsWith('\r')).toBe(true)
    expect(progress).toMatch(/loss .* grad norm .* clip /)
  })
})

describe('rxrnn replay', () => {
  const rows = [
    'a,b,c,key',
    '0.1,0.2,1,s1',
    '0.2,0.3,2,s2',
    '0.3,0.4,3,s1',
    '0.4,0.5,4,s2',
    '0.5,0.6,5,s1',
    '0.6,0.7,6,s2',
  ]

  it('sends every row of a CSV file and gets a prediction for each', async () => {
    const server = await start()
    const file = await csv('feed.csv', `${rows.join('\n')}\n`)
    const run = cli(['replay', file, '--url', server.url, '--x', 'a,b', '--y', 'c', '--rate', '0'])
    expect(await run.code).toBe(0)
    expect(run.stdout()).toMatch(/6\/6 ticks sent, 6 predictions received, 0 errors/)
    expect(server.metrics()).toMatchObject({ events: 6, keys: 1, rejected: 0, updates: 3 })
    expect(server.keyed.has('feed')).toBe(true)
  })

  it('--target next --key: each row learns the next row of its key; --rate paces, --encoding json, --limit', async () => {
    const server = await start()
    const shared = await subscriber(server.url, ['predictions'])
    const file = await csv('keys.csv', `${rows.join('\n')}\n`)
    const run = cli([
      'replay',
      file,
      '--url',
      server.url,
      '--x',
      'a,b',
      '--y',
      'c',
      '--key',
      'key',
      '--target',
      'next',
      '--rate',
      '400',
      '--encoding',
      'json',
      '--limit',
      '5',
    ])
    expect(await run.code).toBe(0)
    expect(run.stdout()).toMatch(/5\/5 ticks sent, 5 predictions received/)
    await until('the shared predictions', () => shared.filter((f) => f.type === 'prediction').length === 5)
    const seen = shared
      .filter((f) => f.type === 'prediction')
      .map((f) => ({ key: f.key, id: f.id, target: f.target }))
    expect(seen).toEqual([
      { key: 's1', id: 0, target: [3] },
      { key: 's2', id: 1, target: [4] },
      { key: 's1', id: 2, target: [5] },
      // The last row of each key (within --limit) has no next row: a prediction without a target.
      { key: 's2', id: 3, target: undefined },
      { key: 's1', id: 4, target: undefined },
    ])
    expect([...server.keyed.keys()].sort()).toEqual(['s1', 's2'])
  })

  it('reports error frames and non-numeric rows, and exits 1', async () => {
    const server = await start()
    const file = await csv('mixed.csv', 'a,b,c,key\n1,2,3,k\n1,oops,3,k\n4,5,6,\n7,8,9,k\n')
    const run = cli(['replay', file, '--url', server.url, '--x', 'a,b', '--y', 'c', '--key', 'key'])
    expect(await run.code).toBe(1)
    expect(run.stderr()).toMatch(/skipping a row: line 3, column "b": "oops" is not a number/)
    expect(run.stderr()).toMatch(/error \(line 4, key \): missing_key: key is empty/)
    expect(run.stdout()).toMatch(/3\/3 ticks sent, 2 predictions received, 1 errors, 1 row skipped/)
  })

  it('refuses columns that do not fit the model before sending anything', async () => {
    const server = await start()
    const file = await csv('narrow.csv', `${rows.join('\n')}\n`)
    const wrongSize = cli(['replay', file, '--url', server.url, '--x', 'a', '--y', 'b,c'])
    expect(await wrongSize.code).toBe(2)
    expect(wrongSize.stderr()).toMatch(/--x names 1 column but the model takes 2 inputs/)
    expect(wrongSize.stderr()).toMatch(/--y names 2 columns but the model has 1 outputs/)
    const unknown = cli(['replay', file, '--url', server.url, '--x', 'a,z'])
    expect(await unknown.code).toBe(2)
    expect(unknown.stderr()).toMatch(/--x: column "z" is not in .*narrow\.csv/)
    expect(server.metrics().events).toBe(0)
  })

  it('a refused token exits 2 with the HTTP status', async () => {
    const server = await start({ token: 'right-token-0123456789' })
    const file = await csv('t.csv', `${rows.join('\n')}\n`)
    const run = cli(['replay', file, '--url', server.url, '--x', 'a,b', '--token', 'wrong'])
    expect(await run.code).toBe(2)
    expect(run.stderr()).toMatch(/HTTP 401/)
    const ok = cli(['replay', file, '--url', server.url, '--x', 'a,b', '--token', 'right-token-0123456789'])
    expect(await ok.code).toBe(0)
  })
})

describe('rxrnn tail', () => {
  it('prints metrics lines', async () => {
    const server = await start({ metricsIntervalMs: 20 })
    const run = cli(['tail', '--url', server.url, '--channels', 'metrics', '--limit', '3'])
    expect(await run.code).toBe(0)
    const lines = run.stdout().trimEnd().split('\n')
    expect(lines).toHaveLength(3)
    for (const line of lines) expect(line).toMatch(/^metrics +events 0 .*loss – .*subscribers 1/)
    expect(run.stderr()).toContain(`following metrics on ${server.url}`)
  })

  it('--json prints one JSON object per line', async () => {
    const server = await start({ metricsIntervalMs: 20 })
    const run = cli(['tail', '--url', server.url, '--channels', 'metrics', '--json', '--limit', '2'])
    expect(await run.code).toBe(0)
    const frames = run
      .stdout()
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line))
    expect(frames.map((f) => f.type)).toEqual(['metrics', 'metrics'])
  })

  it('prints the predictions and updates of the followed keys until interrupted', async () => {
    const server = await start()
    const run = cli(['tail', '--url', server.url, '--channels', 'predictions,updates', '--keys', 'a'])
    await until('the subscription', () => run.stderr().includes('following'))
    expect(run.stderr()).toContain('following predictions, updates for keys a')
    const producer = new WebSocket(server.url)
    cleanups.push(() => producer.terminate())
    await once(producer, 'open')
    producer.send(JSON.stringify({ type: 'tick', key: 'a', x: [1, 2], y: 0.5, id: 1 }))
    producer.send(JSON.stringify({ type: 'tick', key: 'b', x: [1, 2], y: 0.5, id: 1 }))
    producer.send(JSON.stringify({ type: 'tick', key: 'a', x: [2, 3], y: 0.25, id: 2 }))
    await until('three lines', () => run.stdout().split('\n').length > 3)
    run.abort()
    expect(await run.code).toBe(0)
    const lines = run.stdout().trimEnd().split('\n')
    expect(lines).toHaveLength(3)
    // The second tick (k1 = 2) completes a's window: answered first, then learned from.
    expect(lines[0]).toMatch(/^prediction +a #1 +y \[.+\] +target \[0\.5\]$/)
    expect(lines[1]).toMatch(/^prediction +a #2 +y \[.+\] +target \[0\.25\]$/)
    expect(lines[2]).toMatch(/^update +a +step 2 +loss \d.* +grad norm \d/)
  })
})
