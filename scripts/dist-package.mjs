// Writes dist/package.json after `tsc -p tsconfig.build.json`. The root package.json maps the
// `#websocket` import to the TypeScript sources (./streams/...: tsc, tsx and esbuild find the .ts
// beside the .js name), while the built files need the same map over dist/. Node and bundlers
// resolve a `#` import from the nearest package.json, which for dist/streams/**/*.js is this one;
// dist/ mirrors the root, so the map is copied as it is. `type` and `sideEffects` must be repeated
// because the nearest package.json also decides those for the files under it.
import { readFileSync, writeFileSync } from 'node:fs'

const root = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
const dist = {
  type: root.type,
  sideEffects: root.sideEffects,
  imports: root.imports,
}
writeFileSync(new URL('../dist/package.json', import.meta.url), `${JSON.stringify(dist, null, 2)}\n`)
