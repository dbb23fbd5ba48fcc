/**
 * The rxrnn benchmark harness: one run, one machine, one model (LSTM 8 → 64 → 1, float32) and one
 * set of weights for every library, printed as tables with ratios and targets.
 *
 *   node --expose-gc --import tsx bench/index.ts [--quick] [--only 1,3] [--json out.json] [--long]
 *
 * Sections: 1 inference latency, 2 training cost, 3 many keys, 4 end to end over WebSocket,
 * 5 memory, 6 allocation, 7 learning without truncation (RTRL, SnAp-1, UORO beside TBPTT), 8 slow readers,
 * 9 NATS (scaling out; needs nats-server).
 * Peer libraries live in bench/node_modules (installed here on first run with `npm --prefix bench ci`); a peer that cannot load is reported as unavailable, with why.
 *
 * Every section runs in a fresh child process (this file again, with `--section N`, started with
 * this process's node flags): what one section loads and leaves behind (tfjs's and ONNX
 * Runtime's threads and heaps, a grown young generation, JIT state) cannot slow the next one or
 * show up in its GC counts. The child prints its section as it goes and hands its result back as
 * JSON in a temporary file; this process prints the summary.
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, platform, release, tmpdir, totalmem } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { header, note, printTable, type SummaryRow } from './report.js'
import { type Context, DESCRIBE_MODEL, findGc, probeBackends } from './sections/common.js'

const benchDir = dirname(fileURLToPath(import.meta.url))
const indexFile = fileURLToPath(import.meta.url)

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    json: { type: 'string' },
    long: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
    // Internal: run one section in this process and write its result to the file `result`.
    section: { type: 'string' },
    result: { type: 'string' },
  },
})
if (args.help) {
  console.log(
    'usage: node --expose-gc --import tsx bench/index.ts [--quick] [--only 1,3] [--json out.json] [--long]\n' +
      '  sections: 1 inference, 2 training, 3 many keys, 4 end to end, 5 memory, 6 allocation,\n' +
      '            7 gradient algorithms (TBPTT, RTRL, SnAp-1, UORO), 8 slow readers, 9 NATS\n' +
      '  --quick: short runs (a smoke test); --long: lift the time caps of sections 5 and 6\n' +
      '  each section runs in a fresh node process started with the same flags',
  )
  process.exit(0)
}

interface SectionResult {
  summary: SummaryRow[]
}
interface Section {
  readonly name: string
  /** Loaded in the section's own process only. */
  load(): Promise<(ctx: Context) => Promise<SectionResult>>
  /** Node flags this section's process gets besides the harness's own. */
  readonly nodeFlags?: readonly string[]
}

const SECTIONS: Record<1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9, Section> = {
  1: { name: 'inference', load: async () => (await import('./sections/inference.js')).runInference },
  2: { name: 'training', load: async () => (await import('./sections/training.js')).runTraining },
  3: { name: 'keys', load: async () => (await import('./sections/keys.js')).runKeys },
  4: { name: 'e2e', load: async () => (await import('./sections/e2e.js')).runE2e },
  5: { name: 'memory', load: async () => (await import('./sections/memory.js')).runMemory },
  6: {
    name: 'allocation',
    load: async () => (await import('./sections/allocation.js')).runAllocation,
    // A young generation pinned small: one scavenge per ~2 MiB allocated, so that a GC count over
    // 200,000 events tells allocating paths (a few bytes per event) from allocation-free ones.
    // Section 6 says so in its output; see sections/allocation.ts.
    nodeFlags: ['--max-semi-space-size=1'],
  },
  7: { name: 'algorithms', load: async () => (await import('./sections/algorithms.js')).runAlgorithms },
  8: { name: 'slow readers', load: async () => (await import('./sections/slow-readers.js')).runSlowReaders },
  9: { name: 'nats', load: async () => (await import('./sections/nats.js')).runNats },
}
type SectionNumber = keyof typeof SECTIONS

function message(error: unknown): string {
  return error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error)
}

const selected: SectionNumber[] = (() => {
  if (!args.only) return [1, 2, 3, 4, 5, 6, 7, 8, 9]
  const picked = args.only.split(',').map((s) => Number(s.trim()))
  const bad = picked.filter((n) => !(n in SECTIONS))
  if (bad.length > 0) {
    console.error(`--only ${args.only}: no section ${bad.join(', ')}; sections are 1 to 9, e.g. --only 1,3`)
    process.exit(2)
  }
  return [...new Set(picked)].sort() as SectionNumber[]
})()

if (args.section !== undefined) await runChild(Number(args.section) as SectionNumber, args.result)

// 0. Setup: the peer libraries, then the machine.
const setup: { peersInstalled: boolean; install?: string } = {
  peersInstalled: existsSync(join(benchDir, 'node_modules')),
}
if (!setup.peersInstalled && selected.some((n) => n === 1 || n === 2)) {
  console.log('bench/node_modules is missing: npm --prefix bench ci --no-audit --no-fund')
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
  const r = spawnSync(npm, ['--prefix', benchDir, 'ci', '--no-audit', '--no-fund'], { stdio: 'inherit' })
  setup.install =
    r.status === 0
      ? 'installed'
      : `npm ci failed (${r.error ? r.error.message : `exit ${r.status}`}); peers will be reported unavailable`
  console.log(setup.install)
}

const cpuList = cpus()
const load = loadavg()
const machine = {
  cpu: cpuList[0]?.model.trim() ?? 'unknown',
  cores: cpuList.length,
  node: process.version,
  os: `${platform()} ${release()}`,
  memoryGiB: Number((totalmem() / 2 ** 30).toFixed(1)),
  loadAverage: load.map((l) => Number(l.toFixed(2))),
}
const { exposed } = findGc()
const backends = probeBackends()
// The children get this process's node flags (e.g. --expose-gc --import tsx, or what `npx tsx`
// put there), with --expose-gc added when it is missing.
const childFlags = process.execArgv.includes('--expose-gc')
  ? [...process.execArgv]
  : [...process.execArgv, '--expose-gc']

console.log(`rxrnn benchmark${args.quick ? ' (--quick: short runs, a smoke test, not for quoting)' : ''}`)
console.log(`machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}`)
console.log(`node ${machine.node}, load average ${machine.loadAverage.join(' / ')} (1 / 5 / 15 min)`)
if (load[0]! > 0.5 * machine.cores)
  console.log(
    `WARNING: load average ${load[0]!.toFixed(1)} on ${machine.cores} cores: other work is running, ` +
      'timings are noisy and slower than this machine can do',
  )
console.log(`model: ${DESCRIBE_MODEL}, the same PyTorch-layout weights in every library`)
for (const [b, s] of Object.entries(backends.status))
  console.log(`rxrnn backend ${b}: ${s === true ? 'available' : `unavailable (${s})`}`)
console.log(`headline rxrnn backend: ${backends.headline}; sections: ${selected.join(', ')}`)
console.log(`each section runs in its own node process (${childFlags.join(' ')})`)
if (!exposed) console.log('gc: not exposed to this process; the sections get --expose-gc')

const started = performance.now()
const results: Record<string, unknown> = {}
const summary: SummaryRow[] = []
const scratch = mkdtempSync(join(tmpdir(), 'rxrnn-bench-'))
try {
  for (const n of selected) {
    const section = SECTIONS[n]
    const t0 = performance.now()
    const outcome = await runInChild(n, join(scratch, `section-${n}.json`))
    if (outcome.ok) {
      summary.push(...outcome.result.summary)
      results[section.name] = { ...outcome.result, seconds: outcome.seconds }
    } else {
      // A section that fails is reported and the run goes on to the next.
      if (!outcome.reported) console.log(`   section ${n} (${section.name}) FAILED: ${outcome.reason}`)
      results[section.name] = { status: 'failed', reason: outcome.reason }
      summary.push({
        measure: `section ${n} ${section.name}`,
        rxrnn: 'FAILED',
        versus: '',
        ratio: '',
        target: '',
      })
    }
    const seconds = outcome.ok ? outcome.seconds : (performance.now() - t0) / 1000
    note(
      `(section ${n}: ${seconds.toFixed(1)} s; ${((performance.now() - t0) / 1000).toFixed(1)} s with its process)`,
    )
  }
} finally {
  rmSync(scratch, { recursive: true, force: true })
}

header('Summary', `${DESCRIBE_MODEL}; headline rxrnn backend: ${backends.headline}`)
printTable(
  ['measure', 'rxrnn', 'compared with', 'ratio', 'target'],
  summary.map((r) => [r.measure, r.rxrnn, r.versus, r.ratio, r.target]),
  [0, 1, 2, 4],
)
console.log('')
for (const r of summary) if (r.claim) note(r.claim)
const totalSeconds = (performance.now() - started) / 1000
console.log(`\ntotal ${totalSeconds.toFixed(1)} s`)

if (args.json) {
  const path = resolve(args.json)
  writeFileSync(
    path,
    `${JSON.stringify(
      {
        date: new Date().toISOString(),
        quick: args.quick,
        sections: selected,
        machine,
        setup,
        rxrnnBackends: backends,
        gcExposed: exposed,
        isolation: { perSectionProcess: true, nodeFlags: childFlags },
        results,
        summary,
        totalSeconds,
      },
      finiteOrNull,
      2,
    )}\n`,
  )
  console.log(`results written to ${path}`)
}
// ONNX Runtime and tfjs can keep handles open; the run is over.
process.exit(0)

function finiteOrNull(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? null : value
}

type ChildOutcome =
  | { ok: true; result: SectionResult & Record<string, unknown>; seconds: number }
  | { ok: false; reason: string; reported: boolean }

/** Runs section n in a fresh node process; its output goes straight to ours. */
async function runInChild(n: SectionNumber, resultFile: string): Promise<ChildOutcome> {
  const childArgs = [
    ...childFlags,
    ...(SECTIONS[n].nodeFlags ?? []),
    indexFile,
    '--section',
    String(n),
    '--result',
    resultFile,
    ...(args.quick ? ['--quick'] : []),
    ...(args.long ? ['--long'] : []),
  ]
  const child = spawn(process.execPath, childArgs, { stdio: ['ignore', 'inherit', 'inherit'] })
  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>(
    (resolveExit) => {
      child.once('error', (error) => resolveExit({ code: null, signal: null, error }))
      child.once('exit', (code, signal) => resolveExit({ code, signal }))
    },
  )
  if (!existsSync(resultFile)) {
    const how = exit.error
      ? exit.error.message
      : exit.signal
        ? `killed by ${exit.signal}`
        : `exit code ${exit.code}`
    return { ok: false, reason: `its process ended without a result (${how})`, reported: false }
  }
  const written = JSON.parse(readFileSync(resultFile, 'utf8')) as
    | { ok: true; result: SectionResult & Record<string, unknown>; seconds: number }
    | { ok: false; reason: string }
  return written.ok ? written : { ok: false, reason: written.reason, reported: true }
}

/** The child: runs one section here and writes its result (or why it failed) to `resultFile`. */
async function runChild(n: SectionNumber, resultFile: string | undefined): Promise<never> {
  const section = SECTIONS[n]
  if (!section || !resultFile) {
    console.error(
      '--section N --result FILE: the harness runs each section this way; run bench/index.ts instead',
    )
    process.exit(2)
  }
  const { gc, exposed } = findGc()
  const ctx: Context = {
    quick: args.quick,
    long: args.long,
    backends: probeBackends(),
    gc,
    gcExposed: exposed,
  }
  const t0 = performance.now()
  let written: unknown
  try {
    const run = await section.load()
    const result = await run(ctx)
    written = { ok: true, result, seconds: (performance.now() - t0) / 1000 }
  } catch (error) {
    console.log(`   section ${n} (${section.name}) FAILED: ${error instanceof Error ? error.stack : error}`)
    written = { ok: false, reason: message(error) }
  }
  writeFileSync(resultFile, JSON.stringify(written, finiteOrNull))
  // ONNX Runtime and tfjs can keep handles open; the section is over.
  process.exit(0)
}
