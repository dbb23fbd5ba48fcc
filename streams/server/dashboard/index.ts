import { existsSync, readFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { RxrnnError } from '../../../src/errors.js'
import { requestTarget } from '../origins.js'
import { TokenGate } from '../tokens.js'
import { dashboardCss, dashboardHtml } from './page.js'

/** Options of `dashboardRoutes`. */
export interface DashboardOptions {
  /**
   * The server's token, when it has one: the page then asks for it once, logs in at
   * `/dashboard/auth` and holds a session cookie (HttpOnly, SameSite=Strict) that its WebSocket
   * carries: the token never goes into a URL. The page itself and its assets are public; the
   * data behind the WebSocket is not.
   */
  token?: string
  /** The server's token gate (what `serve()` passes); built from `token` when omitted. */
  gate?: TokenGate
}

/** A route handler for `serve({ http })`: true when it answered the request. */
export type HttpRoute = (req: IncomingMessage, res: ServerResponse) => boolean

interface Asset {
  body: Buffer
  type: string
}

// The page lets the browser reach its own origin only: scripts and styles from these routes,
// the WebSocket back to the server. uPlot styles elements through the CSSOM, which CSP allows.
const contentSecurityPolicy = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ')

/**
 * The live dashboard: GET `/` serves a page that subscribes to the server's predictions,
 * updates and metrics over the same WebSocket and charts them (prediction against target,
 * loss and prequential error against persistence, gradient norms and clipping, gradient flow
 * through the TBPTT window, spectral radius, the hidden state as a heatmap, throughput).
 * `serve()` mounts it by default; mount it yourself on another HTTP server with a WebSocket
 * proxy to the rxrnn server at the same address.
 *
 * Routes: `/` and `/index.html` (the page), `/dashboard/app.js` and the modules it imports,
 * `/dashboard/style.css`,
 * `/dashboard/uPlot.iife.min.js`, `/dashboard/uPlot.min.css`, and `/dashboard/auth`: with
 * `Authorization: Bearer <token>` the page logs in (on the right token the answer sets the
 * session cookie), without it the page asks whether its cookie is still good; the answer is
 * `{ "ok": true | false }`, or 429 after too many wrong tokens from one address.
 *
 * @example
 * import { createServer } from 'node:http'
 * import { dashboardRoutes } from 'rxrnn/streams'
 * // serve() mounts the dashboard by default; this is for an HTTP server of your own that also
 * // proxies WebSocket upgrades to the rxrnn server.
 * const dashboard = dashboardRoutes({ token: process.env.RXRNN_TOKEN })
 * createServer((req, res) => dashboard(req, res) || res.writeHead(404).end()).listen(8081)
 */
export function dashboardRoutes(options: DashboardOptions = {}): HttpRoute {
  const gate = options.gate ?? new TokenGate(options.token)
  const auth = gate.required
  const uplot = uplotDist()
  const assets = new Map<string, Asset>([
    ['/', { body: Buffer.from(dashboardHtml({ auth })), type: 'text/html; charset=utf-8' }],
    ['/dashboard/style.css', { body: Buffer.from(dashboardCss), type: 'text/css; charset=utf-8' }],
    [
      '/dashboard/uPlot.iife.min.js',
      { body: readFileSync(join(uplot, 'uPlot.iife.min.js')), type: 'text/javascript; charset=utf-8' },
    ],
    [
      '/dashboard/uPlot.min.css',
      { body: readFileSync(join(uplot, 'uPlot.min.css')), type: 'text/css; charset=utf-8' },
    ],
  ])
  assets.set('/index.html', assets.get('/')!)
  for (const name of BROWSER_MODULES) {
    assets.set(`/dashboard/${name}.js`, { body: browserModule(name), type: 'text/javascript; charset=utf-8' })
  }

  return (req, res) => {
    const path = requestTarget(req.url)?.pathname
    if (path === undefined) return false
    if (path === '/dashboard/auth') {
      const header = req.headers.authorization
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        'cache-control': 'no-store',
      }
      let ok: boolean
      if (header?.startsWith('Bearer ')) {
        const { verdict, cookie } = gate.login(req.socket.remoteAddress ?? 'unknown', header.slice(7))
        if (verdict === 'limited') {
          res
            .writeHead(429, headers)
            .end(JSON.stringify({ ok: false, error: 'too many wrong tokens; try again later' }))
          return true
        }
        ok = verdict === 'ok'
        if (cookie) headers['set-cookie'] = cookie
      } else ok = !gate.required || gate.hasSession(req)
      // 200 either way: a browser logs every 401 to the console, and the page only needs the verdict.
      res.writeHead(200, headers).end(JSON.stringify({ ok }))
      return true
    }
    const asset = assets.get(path)
    if (!asset) return false
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('GET only\n')
      return true
    }
    res.writeHead(200, {
      'content-type': asset.type,
      'content-length': asset.body.byteLength,
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
      'content-security-policy': contentSecurityPolicy,
      'referrer-policy': 'no-referrer',
    })
    res.end(req.method === 'HEAD' ? undefined : asset.body)
    return true
  }
}

/** The page's modules (browser/*.ts), served as /dashboard/<name>.js; app imports the others. */
const BROWSER_MODULES = [
  'app',
  'state',
  'plot',
  'frames',
  'charts',
  'heatmap',
  'header',
  'connection',
] as const

/** Compiled modules, shared by every server in the process. */
const compiled = new Map<string, Buffer>()

/**
 * A browser module as JavaScript: browser/<name>.js when running from dist (tsc compiled it,
 * see browser/tsconfig.build.json), else browser/<name>.ts with its types stripped by esbuild
 * (a development dependency, present wherever the sources run under tsx or vitest).
 */
function browserModule(name: string): Buffer {
  const cached = compiled.get(name)
  if (cached) return cached
  const js = fileURLToPath(new URL(`browser/${name}.js`, import.meta.url))
  const ts = fileURLToPath(new URL(`browser/${name}.ts`, import.meta.url))
  let body: Buffer
  if (existsSync(js)) body = readFileSync(js)
  else if (existsSync(ts)) {
    const require = createRequire(import.meta.url)
    let esbuild: { transformSync(code: string, options: object): { code: string } }
    try {
      esbuild = require('esbuild')
    } catch {
      throw new RxrnnError(
        'internal',
        `The dashboard's page script is TypeScript here (${ts}) and esbuild is not installed to compile it: run npm install, or npm run build and use dist, or serve with dashboard: false`,
      )
    }
    body = Buffer.from(
      esbuild.transformSync(readFileSync(ts, 'utf8'), { loader: 'ts', format: 'esm', target: 'es2022' }).code,
    )
  } else {
    throw new RxrnnError(
      'internal',
      `The dashboard's module ${name} is missing next to ${fileURLToPath(import.meta.url)}; reinstall rxrnn, or serve with dashboard: false`,
    )
  }
  compiled.set(name, body)
  return body
}

/** uPlot's dist folder, found through Node's resolution from here, whatever its package exports allow. */
function uplotDist(): string {
  const require = createRequire(import.meta.url)
  const candidates: (() => string)[] = [
    () => dirname(require.resolve('uplot/dist/uPlot.iife.min.js')),
    () => join(dirname(require.resolve('uplot/package.json')), 'dist'),
    // `main` is dist/uPlot.cjs.js; a package whose exports hide both paths above still resolves it.
    () => dirname(require.resolve('uplot')),
  ]
  for (const candidate of candidates) {
    try {
      const dir = candidate()
      if (existsSync(join(dir, 'uPlot.iife.min.js')) && existsSync(join(dir, 'uPlot.min.css'))) return dir
    } catch {
      // try the next way
    }
  }
  throw new RxrnnError(
    'bad_config',
    'The dashboard needs the uplot package (uPlot.iife.min.js and uPlot.min.css): run npm install uplot, or serve with dashboard: false',
  )
}
