/**
 * A real nats-server with JetStream for tests: on a free loopback port, with a temporary store
 * that is removed afterwards. `natsServerPath` is null when nats-server is not installed; tests
 * then skip and say so (`apt-get install nats-server`).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'

function findNatsServer(): string | null {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/bin', '/usr/bin']
  for (const dir of dirs) {
    const candidate = join(dir, 'nats-server')
    if (dir !== '' && existsSync(candidate)) return candidate
  }
  return null
}

export const natsServerPath = findNatsServer()
export const natsSkipMessage =
  'nats-server is not installed (apt-get install nats-server): NATS tests skipped'

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port
      server.close(() => resolve(port))
    })
  })
}

export interface NatsServer {
  readonly url: string
  readonly storeDir: string
  /** The server's process id (for its CPU time). */
  readonly pid: number | undefined
  stop(): Promise<void>
}

/** Starts `nats-server -js -sd <tmp> -a 127.0.0.1 -p <free port>` and waits until it is ready. */
export async function startNatsServer(): Promise<NatsServer> {
  if (natsServerPath === null) throw new Error(natsSkipMessage)
  const storeDir = await mkdtemp(join(tmpdir(), 'rxrnn-nats-'))
  const port = await freePort()
  const child: ChildProcess = spawn(
    natsServerPath,
    ['-js', '-sd', storeDir, '-a', '127.0.0.1', '-p', String(port)],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let log = ''
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nats-server did not start in 10 s: ${log}`)), 10_000)
    const onData = (chunk: Buffer): void => {
      log += chunk.toString('utf8')
      if (log.includes('Server is ready')) {
        clearTimeout(timer)
        resolve()
      }
    }
    child.stderr!.on('data', onData)
    child.stdout!.on('data', onData)
    void exited.then(() => reject(new Error(`nats-server exited: ${log}`)))
  })
  return {
    url: `nats://127.0.0.1:${port}`,
    storeDir,
    pid: child.pid,
    async stop() {
      child.kill('SIGTERM')
      await exited
      await rm(storeDir, { recursive: true, force: true })
    },
  }
}
