import { readFileSync } from 'node:fs'

/**
 * The installed package's version. Read from the nearest package.json named `rxrnn` above this
 * file, so it is the same from the sources (streams/cli/) and from the build (dist/streams/cli/).
 */
export function packageVersion(): string {
  for (let dir = new URL('./', import.meta.url); ; dir = new URL('../', dir)) {
    try {
      const manifest = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as {
        name?: string
        version?: string
      }
      if (manifest.name === 'rxrnn' && manifest.version) return manifest.version
    } catch {
      // no package.json here: keep walking up
    }
    if (dir.pathname === '/') return 'unknown'
  }
}
