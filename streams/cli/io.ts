/**
 * What a CLI command reads and writes, so that the same code runs in `rxrnn` and in tests: the
 * output streams, whether stdout is a terminal, and the signal that asks a long-running command
 * (serve, tail, replay) to stop.
 */

/** The part of a writable stream the CLI uses. */
export interface CliOutput {
  write(chunk: string): unknown
  /** True on a terminal: progress becomes one line redrawn in place. */
  isTTY?: boolean
  /** Terminal width; a redrawn line is cut to it so that it never wraps. */
  columns?: number
}

/**
 * The world of one CLI run.
 *
 * @example
 * const code = await runCli(['tail', '--channels', 'metrics'], {
 *   stdout: process.stdout,
 *   stderr: process.stderr,
 *   signal: AbortSignal.timeout(10_000),
 * })
 */
export interface CliIo {
  stdout: CliOutput
  stderr: CliOutput
  /** Aborted on SIGINT or SIGTERM (by `cli.ts`): serve closes its connections, tail and replay stop. */
  signal?: AbortSignal
}

/**
 * A wrong flag or config: printed as `error: …` and answered with exit code 2, like the flag
 * errors commander reports itself.
 *
 * @example
 * throw new UsageError("--x: column \"open\" is not in prices.csv (its columns: date, close)")
 */
export class UsageError extends Error {
  override readonly name = 'UsageError'
  readonly problems: readonly string[]

  constructor(message: string, problems: readonly string[] = []) {
    super(problems.length > 0 ? `${message}:\n  - ${problems.join('\n  - ')}` : message)
    this.problems = problems
  }
}

/**
 * Live progress: on a terminal, one status line redrawn in place with `\r`; elsewhere (a pipe, a
 * file, a log collector) each status becomes a plain line of its own. Log lines written through
 * `log` never get mixed into the status line.
 *
 * @example
 * const status = new StatusLine(process.stdout)
 * status.update('sent 10/100')
 * status.log('reconnecting…')
 * status.end()
 */
export class StatusLine {
  private shown = ''
  readonly tty: boolean

  constructor(
    private readonly out: CliOutput,
    tty = out.isTTY === true,
  ) {
    this.tty = tty
  }

  /** Shows `text` as the current status. */
  update(text: string): void {
    if (!this.tty) {
      this.out.write(`${text}\n`)
      return
    }
    const width = this.out.columns ?? 0
    const line = width > 1 && text.length >= width ? `${text.slice(0, width - 2)}…` : text
    this.shown = line
    // \x1b[K clears what a longer previous status left at the end of the line.
    this.out.write(`\r${line}\x1b[K`)
  }

  /** Writes a whole line to `to` (default the status stream), keeping the status line below it. */
  log(line: string, to: CliOutput = this.out): void {
    if (this.tty && this.shown !== '') {
      this.out.write('\r\x1b[K')
      to.write(`${line}\n`)
      this.out.write(`\r${this.shown}\x1b[K`)
      return
    }
    to.write(`${line}\n`)
  }

  /** Leaves the status line as it is and moves below it. */
  end(): void {
    if (this.tty && this.shown !== '') this.out.write('\n')
    this.shown = ''
  }
}

/** Resolves when `signal` aborts (never without one). */
export function aborted(signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return new Promise(() => {})
  if (signal.aborted) return Promise.resolve()
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))
}

/** Waits `ms`, or less when `signal` aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve()
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, Math.max(0, ms))
    signal?.addEventListener('abort', done, { once: true })
  })
}

/**
 * A wake-up call: `wait()` resolves at the next `notify()`. What replay's send loop sleeps on while
 * too many ticks wait for their predictions.
 */
export class Notifier {
  private waiters: (() => void)[] = []

  wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve))
  }

  notify(): void {
    const waiters = this.waiters
    this.waiters = []
    for (const resolve of waiters) resolve()
  }
}
