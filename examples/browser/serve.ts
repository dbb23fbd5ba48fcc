/**
 * `npm run example:browser`: bundles the example once and serves this folder on 127.0.0.1 (a
 * plain static server; any other works too, e.g. `python3 -m http.server -d examples/browser`
 * after `npm run example:browser -- --build-only`).
 */
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'
import { bundleBrowserExample } from './build.js'

const here = new URL('./', import.meta.url)
const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript' }

await bundleBrowserExample(fileURLToPath(new URL('app.js', here)))
if (!process.argv.includes('--build-only')) {
  const port = Number(process.env.PORT ?? 5173)
  createServer(async (request, response) => {
    const name = request.url === '/' ? 'index.html' : (request.url ?? '').slice(1)
    const type = types[name.slice(name.lastIndexOf('.'))]
    if (!type || name.includes('/')) {
      response.writeHead(404).end()
      return
    }
    response.writeHead(200, { 'content-type': type }).end(await readFile(new URL(name, here)))
  }).listen(port, '127.0.0.1', () => console.log(`open http://127.0.0.1:${port}/ and move the pointer`))
}
