/**
 * Bundles the browser example (main.ts → app.js beside index.html) with esbuild. Run it through
 * `npm run example:browser`, which also serves the folder.
 */
import { build } from 'esbuild'

const here = new URL('./', import.meta.url)

/** The example's bundle as text; `outfile` also writes it to disk. */
export async function bundleBrowserExample(outfile?: string): Promise<string> {
  const result = await build({
    entryPoints: [new URL('main.ts', here).pathname],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    write: false,
    logLevel: 'warning',
  })
  const code = result.outputFiles[0]?.text ?? ''
  if (outfile) {
    const { writeFile } = await import('node:fs/promises')
    await writeFile(outfile, code)
  }
  return code
}
