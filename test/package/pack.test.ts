/**
 * The package as a user meets it: `npm pack`, installed with rxjs into an empty project, then a
 * first program in plain node, a strict TypeScript consumer (NodeNext, no skipLibCheck), and a
 * browser bundle of `rxrnn` + `rxrnn/streams` that learns a sine wave online in Chromium.
 *
 * Slow by nature (a build, an install, a browser): one file, everything shared in beforeAll.
 */
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { build, type Metafile } from 'esbuild'
import { chromium } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const run = promisify(execFile)
const repoRoot = fileURLToPath(new URL('../../', import.meta.url))
const chromiumPath = '/usr/bin/chromium'
const MB = 1024 * 1024

let work = ''
let project = ''
let tarball = ''

/** Bytes under a folder, following no links. */
function folderBytes(path: string): number {
  let total = 0
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const full = join(path, entry.name)
    if (entry.isDirectory()) total += folderBytes(full)
    else if (entry.isFile()) total += statSync(full).size
  }
  return total
}

function versionOf(name: string): string {
  const manifest = JSON.parse(readFileSync(join(repoRoot, 'node_modules', name, 'package.json'), 'utf8'))
  return manifest.version as string
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'rxrnn-pack-'))
  // npm pack runs prepack (the build) and prints the tarball's name last.
  const packed = await run('npm', ['pack', '--silent', '--pack-destination', work], {
    cwd: repoRoot,
    maxBuffer: 16 * MB,
  })
  tarball = join(work, packed.stdout.trim().split('\n').at(-1) ?? '')
  project = join(work, 'app')
  await run('mkdir', ['-p', project])
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }))
  // The versions the repository was tested with, from npm's cache where it has them.
  await run(
    'npm',
    [
      'install',
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      tarball,
      `rxjs@${versionOf('rxjs')}`,
      `@types/node@${versionOf('@types/node')}`,
    ],
    { cwd: project, maxBuffer: 16 * MB },
  )
}, 300_000)

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true })
})

describe('the packed tarball', () => {
  it('holds the build, the license and the changelog, and no tests or sources', async () => {
    const listing = await run('tar', ['-tzf', tarball])
    const files = listing.stdout.trim().split('\n')
    for (const required of [
      'package/LICENSE',
      'package/README.md',
      'package/CHANGELOG.md',
      'package/dist/src/index.js',
      'package/dist/streams/index.js',
      'package/dist/streams/server/index.js',
      'package/dist/streams/cli/index.js',
    ]) {
      expect(files).toContain(required)
    }
    expect(files.filter((f) => f.startsWith('package/test/') || f.endsWith('.test.js'))).toEqual([])
    const manifest = JSON.parse(readFileSync(join(project, 'node_modules/rxrnn/package.json'), 'utf8'))
    expect(manifest.scripts?.prepare).toBeUndefined()
    expect(manifest.peerDependencies.rxjs).toMatch(/^\^7\./)
  })

  it('installs in at most 15 MB besides rxjs', () => {
    const modules = join(project, 'node_modules')
    const total = folderBytes(modules)
    const rxjs = folderBytes(join(modules, 'rxjs'))
    // @types/node is the consumer's own choice for the type check below, not rxrnn's weight.
    const typesNode = folderBytes(join(modules, '@types/node'))
    const weight = total - rxjs - typesNode
    console.log(`installed weight besides rxjs: ${(weight / MB).toFixed(1)} MB`)
    expect(weight).toBeLessThan(15 * MB)
  })

  it('source maps carry their sources', () => {
    const map = JSON.parse(readFileSync(join(project, 'node_modules/rxrnn/dist/src/model.js.map'), 'utf8'))
    expect(map.sourcesContent?.[0]).toContain('export class Model')
  })

  it('runs a first program in plain node, from all three entry points', async () => {
    writeFileSync(
      join(project, 'first.js'),
      `import { createModel, OnlineTrainer } from 'rxrnn'
import { learn } from 'rxrnn/streams'
import { serve } from 'rxrnn/server'
import { from, lastValueFrom, toArray } from 'rxjs'

const model = createModel({ cell: 'gru', inputSize: 1, hiddenSize: 8, outputSize: 1, seed: 1 })
const events = Array.from({ length: 400 }, (_, t) => ({ x: [Math.sin(t / 4)], target: [Math.sin((t + 1) / 4)] }))
const results = await lastValueFrom(
  from(events).pipe(learn(model, { k1: 8, k2: 8, loss: 'mse', optimizer: { type: 'adam', lr: 0.02 } }), toArray()),
)
const err = (slice, offset) => slice.reduce((s, r, i) => s + (r.prediction[0] - events[offset + i].target[0]) ** 2, 0) / slice.length
console.log(JSON.stringify({
  first: err(results.slice(0, 100), 0),
  last: err(results.slice(300), 300),
  trainer: typeof OnlineTrainer,
  serve: typeof serve,
}))
`,
    )
    const { stdout } = await run(process.execPath, ['first.js'], { cwd: project })
    const result = JSON.parse(stdout)
    expect(result.trainer).toBe('function')
    expect(result.serve).toBe('function')
    expect(result.last).toBeLessThan(result.first * 0.2)
    const version = await run(process.execPath, [join(project, 'node_modules/.bin/rxrnn'), '--version'])
    expect(version.stdout.trim()).toBe(
      JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')).version,
    )
  })

  it('type-checks a strict NodeNext consumer without skipLibCheck', async () => {
    writeFileSync(
      join(project, 'consumer.ts'),
      `import { createModel, type ModelConfig, OnlineTrainer, type UpdateReport } from 'rxrnn'
import { learn, type LearnResult, Monitor, webSocketSource } from 'rxrnn/streams'
import { type ServeOptions, serve } from 'rxrnn/server'
import { from, type Observable } from 'rxjs'

const config: ModelConfig = { cell: 'lstm', inputSize: 2, hiddenSize: 4, outputSize: 1 }
const trainer = new OnlineTrainer(createModel(config), { k1: 4, k2: 4, loss: 'mse', optimizer: { type: 'sgd', lr: 0.1 } })
const results: Observable<LearnResult> = from([{ x: [1, 2], target: [3] }]).pipe(learn(trainer))
const report: UpdateReport | undefined = trainer.observe([1, 2], [3]).update
const options: Partial<ServeOptions> = { port: 0 }
export { Monitor, report, results, options, serve, webSocketSource }
`,
    )
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noUncheckedIndexedAccess: true,
          exactOptionalPropertyTypes: true,
          skipLibCheck: false,
          noEmit: true,
          types: ['node'],
        },
        files: ['consumer.ts'],
      }),
    )
    const tsc = join(repoRoot, 'node_modules/typescript/bin/tsc')
    const result = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: project }).catch(
      (error: { stdout: string }) => ({ stdout: error.stdout, failed: true }),
    )
    expect(result.stdout).toBe('')
  })

  it.skipIf(!existsSync(chromiumPath))(
    'bundles rxrnn + rxrnn/streams for the browser with no Node built-in, and learns a sine wave in Chromium',
    async () => {
      writeFileSync(
        join(project, 'browser.js'),
        `import { createModel } from 'rxrnn'
import { learn, Monitor } from 'rxrnn/streams'
import { lastValueFrom, map, range, toArray } from 'rxjs'

const model = createModel({ cell: 'lstm', inputSize: 1, hiddenSize: 12, outputSize: 1, seed: 3 })
const monitor = new Monitor()
const wave = (t) => Math.sin(t / 5)
const results = await lastValueFrom(
  range(0, 1500).pipe(
    map((t) => ({ x: [wave(t)], target: [wave(t + 1)] })),
    learn(model, { k1: 8, k2: 16, loss: 'mse', optimizer: { type: 'adam', lr: 0.01 }, clipNorm: 1 }, { monitor }),
    toArray(),
  ),
)
const error = (from, to) => {
  let sum = 0
  for (let t = from; t < to; t++) sum += (results[t].prediction[0] - wave(t + 1)) ** 2
  return sum / (to - from)
}
const persistence = (from, to) => {
  let sum = 0
  for (let t = from; t < to; t++) sum += (wave(t) - wave(t + 1)) ** 2
  return sum / (to - from)
}
window.result = { first: error(0, 300), last: error(1200, 1500), persistence: persistence(1200, 1500), backend: model.backend }
`,
      )
      const bundle = await build({
        absWorkingDir: project,
        entryPoints: ['browser.js'],
        bundle: true,
        platform: 'browser',
        format: 'esm',
        write: false,
        metafile: true,
        logLevel: 'silent',
      })
      const inputs = Object.keys((bundle.metafile as Metafile).inputs)
      expect(inputs.filter((input) => input.startsWith('node:') || /node_modules\/ws\//.test(input))).toEqual(
        [],
      )
      const code = bundle.outputFiles[0]?.text ?? ''
      const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] })
      try {
        const page = await browser.newPage()
        const errors: string[] = []
        page.on('pageerror', (error) => errors.push(error.message))
        await page.setContent('<!doctype html><title>rxrnn</title>')
        await page.addScriptTag({ content: code, type: 'module' })
        await page.waitForFunction(() => 'result' in globalThis, undefined, { timeout: 60_000 })
        expect(errors).toEqual([])
        const result = (await page.evaluate(() => (globalThis as unknown as { result: unknown }).result)) as {
          first: number
          last: number
          persistence: number
          backend: string
        }
        console.log(`browser: ${JSON.stringify(result)}`)
        expect(result.last).toBeLessThan(result.first * 0.1)
        expect(result.last).toBeLessThan(result.persistence)
      } finally {
        await browser.close()
      }
    },
    120_000,
  )
})
