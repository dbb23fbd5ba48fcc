/**
 * `rxrnn` as a real child process, run from the TypeScript sources with tsx (no build):
 * `node --import tsx streams/cli/index.ts ARGS`. For tests that kill it (SIGKILL, SIGTERM) and start it
 * again.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const repoRoot = fileURLToPath(new URL('../../', import.meta.url))
const cliPath = fileURLToPath(new URL('../../streams/cli/index.ts', import.meta.url))

export interface CliProcess {
  readonly child: ChildProcess
  /** The `ws://…` the server printed once listening. */
  readonly url: string
  /** Everything written so far. */
  stdout(): string
  stderr(): string
  /** Resolves with the exit code and signal once the process is gone. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/** Starts `rxrnn serve ARGS` and resolves once it prints `listening on ws://…`. */
export function startServeProcess(args: string[], ms = 15_000): Promise<CliProcess> {
  return startCliProcess(['serve', ...args], /listening on (wss?:\/\/\S+)/, ms)
}

/**
 * Starts `rxrnn ARGS` and resolves once stdout matches `ready` (its first group, or the whole
 * match, becomes `url`); rejects when it exits first.
 */
export async function startCliProcess(args: string[], ready: RegExp, ms = 15_000): Promise<CliProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', cliPath, ...args], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk
  })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  )
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`rxrnn ${args[0]} did not start within ${ms} ms; stderr: ${err}`))
    }, ms)
    const check = (): void => {
      const match = ready.exec(out)
      if (match) {
        clearTimeout(timer)
        child.stdout!.off('data', check)
        resolve(match[1] ?? match[0])
      }
    }
    child.stdout!.on('data', check)
    void exited.then(({ code, signal }) => {
      clearTimeout(timer)
      reject(new Error(`rxrnn ${args[0]} exited (${code ?? signal}) before it was ready; stderr: ${err}`))
    })
  })
  return { child, url, stdout: () => out, stderr: () => err, exited }
}

/** Kills the process (if still running) and waits for it to be gone. */
export async function stopProcess(p: CliProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill(signal)
  await p.exited
}
