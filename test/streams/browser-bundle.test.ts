/**
 * `rxrnn` and `rxrnn/streams` bundle for the browser: esbuild with platform 'browser' (the `browser`
 * export condition, as Angular's and Vite's builders use it) must reach no Node built-in and not
 * `ws`, and the WebSocket client must be the one on the platform's `WebSocket`. Bundles from the
 * sources, through the same package.json `#websocket` map the built package uses.
 */
import { fileURLToPath } from 'node:url'
import { build, type Metafile } from 'esbuild'
import { describe, expect, it } from 'vitest'

const repoRoot = fileURLToPath(new URL('../../', import.meta.url))

async function bundleInputs(entry: string, platform: 'browser' | 'node'): Promise<string[]> {
  const result = await build({
    absWorkingDir: repoRoot,
    entryPoints: [entry],
    bundle: true,
    platform,
    format: 'esm',
    write: false,
    metafile: true,
    logLevel: 'silent',
    // Node built-ins stay external under platform 'node'; under 'browser' one would fail the build.
    external: platform === 'node' ? ['ws'] : [],
  })
  const metafile = result.metafile as Metafile
  const inputs = Object.keys(metafile.inputs)
  for (const output of Object.values(metafile.outputs)) {
    for (const imported of output.imports) inputs.push(imported.path)
  }
  return inputs
}

function nodeOnly(inputs: readonly string[]): string[] {
  return inputs.filter(
    (path) => path.startsWith('node:') || /(^|\/)node_modules\/ws\//.test(path) || path === 'ws',
  )
}

describe('browser bundle', () => {
  it('rxrnn/streams reaches no node: module and not ws, and takes the browser WebSocket', async () => {
    const inputs = await bundleInputs('streams/index.ts', 'browser')
    expect(nodeOnly(inputs)).toEqual([])
    expect(inputs).toContain('streams/transport/websocket-browser.ts')
    expect(inputs).not.toContain('streams/transport/websocket-node.ts')
    expect(inputs).toContain('streams/operators/learn.ts')
  })

  it('rxrnn (the core) reaches no node: module and not ws', async () => {
    const inputs = await bundleInputs('src/index.ts', 'browser')
    expect(nodeOnly(inputs)).toEqual([])
    expect(inputs).toContain('src/trainer.ts')
  })

  it('the same entry bundled for Node takes the ws client: the check can tell the two apart', async () => {
    const inputs = await bundleInputs('streams/index.ts', 'node')
    expect(inputs).toContain('streams/transport/websocket-node.ts')
    expect(nodeOnly(inputs)).toContain('ws')
  })
})
