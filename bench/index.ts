/**
 * The rxrnn benchmark harness: one run, one machine, one model (LSTM 8 → 64 → 1, float32) and one
 * set of weights for every library, printed as tables with ratios and targets.
 *
 *   node --expose-gc --import tsx bench/index.ts [--quick] [--only 1,3] [--json out.json] [--long]
 *
 * Sections: 1 inference latency, 2 training cost, 3 many keys, 4 end to end over WebSocket,
 * 5 memory, 6 allocation. Peer libraries live in bench/node_modules (installed here on first run
 * with `npm --prefix bench ci`); a peer that cannot load is reported as unavailable, with why.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, platform, release, totalmem } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { header, note, printTable, type SummaryRow } from './report.js'
import { runAllocation } from './sections/allocation.js'
import { type Context, DESCRIBE_MODEL, findGc, probeBackends } from './sections/common.js'
import { runE2e } from './sections/e2e.js'
import { message, runInference } from './sections/inference.js'
import { runKeys } from './sections/keys.js'
import { runMemory } from './sections/memory.js'
import { runTraining } from './sections/training.js'

const benchDir = dirname(fileURLToPath(import.meta.url))

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    json: { type: 'string' },
    long: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (args.help) {
  console.log(
    'usage: node --expose-gc --import tsx bench/index.ts [--quick] [--only 1,3] [--json out.json] [--long]\n' +
      '  sections: 1 inference, 2 training, 3 many keys, 4 end to end, 5 memory, 6 allocation\n' +
      '  --quick: short runs (a smoke test); --long: lift the time caps of sections 5 and 6',
  )
  process.exit(0)
}

const SECTIONS = {
  1: { name: 'inference', run: runInference },
  2: { name: 'training', run: runTraining },
  3: { name: 'keys', run: runKeys },
  4: { name: 'e2e', run: runE2e },
  5: { name: 'memory', run: runMemory },
  6: { name: 'allocation', run: runAllocation },
} as const
type SectionNumber = keyof typeof SECTIONS

const selected: SectionNumber[] = (() => {
  if (!args.only) return [1, 2, 3, 4, 5, 6]
  const picked = args.only.split(',').map((s) => Number(s.trim()))
  const bad = picked.filter((n) => !(n in SECTIONS))
  if (bad.length > 0) {
    console.error(`--only ${args.only}: no section ${bad.join(', ')}; sections are 1 to 6, e.g. --only 1,3`)
    process.exit(2)
  }
  return [...new Set(picked)].sort() as SectionNumber[]
})()

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
const { gc, exposed } = findGc()
const backends = probeBackends()
const ctx: Context = { quick: args.quick, long: args.long, backends, gc, gcExposed: exposed }

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
if (!exposed) console.log('gc: not exposed (run node with --expose-gc); enabled at run time instead')

const started = performance.now()
const results: Record<string, unknown> = {}
const summary: SummaryRow[] = []
for (const n of selected) {
  const section = SECTIONS[n]
  const t0 = performance.now()
  try {
    const result = await section.run(ctx)
    summary.push(...result.summary)
    results[section.name] = { ...result, seconds: (performance.now() - t0) / 1000 }
  } catch (error) {
    // A section that fails is reported and the run goes on to the next.
    console.log(`   section ${n} (${section.name}) FAILED: ${error instanceof Error ? error.stack : error}`)
    results[section.name] = { status: 'failed', reason: message(error) }
    summary.push({
      measure: `section ${n} ${section.name}`,
      rxrnn: 'FAILED',
      versus: '',
      ratio: '',
      target: '',
    })
  }
  note(`(section ${n}: ${((performance.now() - t0) / 1000).toFixed(1)} s)`)
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
        results,
        summary,
        totalSeconds,
      },
      (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v),
      2,
    )}\n`,
  )
  console.log(`results written to ${path}`)
}
// ONNX Runtime and tfjs can keep handles open; the run is over.
process.exit(0)
