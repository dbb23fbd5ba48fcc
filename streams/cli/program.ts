/**
 * The `rxrnn` command line: its commands, and how errors become exit codes. `runCli` does
 * everything but touch the process, so that tests run it in-process; `cli.ts` is the binary.
 *
 * Exit codes: 0 success (and --help); 1 a runtime failure (the server went away, ticks
 * unanswered); 2 a usage error (an unknown or malformed flag, an invalid config: the message names
 * the flag, or lists every problem); 130 an interrupted replay.
 */
import { Command, CommanderError } from 'commander'
import { RxrnnError } from '../../src/index.js'
import { registerDemo } from './demo.js'
import { type CliIo, UsageError } from './io.js'
import { registerReplay } from './replay.js'
import { registerServe } from './serve.js'
import { registerTail } from './tail.js'
import { packageVersion } from './version.js'
import { registerWorker } from './worker.js'

export const EXIT_OK = 0
export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2

/** The `rxrnn` program; `done` receives the exit code of the command that ran. */
export function createProgram(io: CliIo, done: (code: number) => void = () => {}): Command {
  const program = new Command('rxrnn')
    .description('Recurrent neural networks that learn online from live streams.')
    .usage('<command> [options]')
    .version(packageVersion(), '-V, --version', 'print the version of rxrnn')
    // Set before the commands are added: subcommands copy these settings.
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    .showHelpAfterError('(add --help for the flags)')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  rxrnn serve --input-size 3 --output-size 1 --cell lstm --hidden-size 64\n' +
        '  rxrnn replay prices.csv --x open,close --y close --target next --rate 50\n' +
        '  rxrnn tail --channels updates,metrics\n' +
        '  rxrnn demo --quick\n' +
        '  rxrnn worker --nats nats://127.0.0.1:4222 --own 0-7 --checkpoint-dir ckpt --input-size 3 --output-size 1',
    )
  registerServe(program, io, done)
  registerReplay(program, io, done)
  registerTail(program, io, done)
  registerDemo(program, io, done)
  registerWorker(program, io, done)
  return program
}

/**
 * Runs `rxrnn` with `argv` (the arguments after the program name) and returns the exit code.
 * Errors are printed on `io.stderr`, never thrown.
 *
 * @example
 * const code = await runCli(['replay', 'data.csv', '--x', 'a,b', '--y', 'c', '--rate', '0'], {
 *   stdout: process.stdout,
 *   stderr: process.stderr,
 * })
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let code = EXIT_OK
  const program = createProgram(io, (c) => {
    code = c
  })
  try {
    await program.parseAsync([...argv], { from: 'user' })
    return code
  } catch (error) {
    return report(error, io)
  }
}

function report(error: unknown, io: CliIo): number {
  if (error instanceof CommanderError) {
    // Commander printed the message already; --help and --version are not errors.
    return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE
  }
  if (error instanceof UsageError) {
    io.stderr.write(`error: ${error.message}\n`)
    return EXIT_USAGE
  }
  if (error instanceof RxrnnError) {
    // The message lists every problem when there are several.
    io.stderr.write(`error: ${error.message}\n`)
    return error.code === 'bad_config' ? EXIT_USAGE : EXIT_FAILURE
  }
  io.stderr.write(`error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  return EXIT_FAILURE
}
