#!/usr/bin/env node
/**
 * The `rxrnn` binary: `rxrnn serve | replay | tail | demo`, see `rxrnn --help`. SIGINT and
 * SIGTERM ask the running command to stop (serve closes its connections with 1001 and exits 0);
 * a second signal exits at once.
 */
import { runCli } from './program.js'

const controller = new AbortController()
const onSignal = (signal: NodeJS.Signals): void => {
  if (controller.signal.aborted) process.exit(130)
  controller.abort(signal)
}
process.on('SIGINT', onSignal)
// `rxrnn tail | head` closes the pipe early: that ends the command, it is not a crash.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0)
    throw error
  })
}
process.on('SIGTERM', onSignal)

const code = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  signal: controller.signal,
})
// Exit once the output is flushed, whatever timers or sockets a command left behind.
process.stdout.write('', () => process.stderr.write('', () => process.exit(code)))
