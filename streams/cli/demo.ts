/** `rxrnn demo`: the guided tour (`../demo.ts`), run from the command line. */
import type { Command } from 'commander'
import { aborted, type CliIo, StatusLine, sleep } from './io.js'
import { integer } from './parse.js'

/** How long an interrupted demo may take to close its servers. */
const DEMO_GRACE_MS = 2_000

interface DemoFlags {
  keepServing?: boolean
  port?: number
  quick?: boolean
}

export function registerDemo(program: Command, io: CliIo, done: (code: number) => void): void {
  program
    .command('demo')
    .summary('run the demo: recorded feeds learned online, live')
    .description(
      'Run the demo: recorded feeds replayed live into rxrnn servers, learned online while they are forecast, ' +
        'with live loss, gradient norm and clipping, then scored against naive baselines; with --keep-serving ' +
        'the servers stay up afterwards for your own producers and the dashboard, until interrupted.',
    )
    .option('--keep-serving', 'keep the servers running after the demo, until interrupted')
    .option('--port <n>', 'port of the (first) demo server (default: any free port)', integer(0, 65535))
    .option('--quick', 'a short run (seconds), e.g. to check an install')
    .action(async (flags: DemoFlags) => {
      // Loaded on demand: the other commands do not pay for the demo's data and examples.
      const { runDemo } = await import('../demo/index.js')
      const status = new StatusLine(io.stdout, false)
      const options: Parameters<typeof runDemo>[0] = {}
      // On the terminal the demo draws its own progress line; anywhere else its lines go through io.
      if (!(io.stdout === process.stdout && process.stdout.isTTY)) options.log = (line) => status.log(line)
      if (flags.keepServing === true) options.keepServing = true
      if (flags.port !== undefined) options.port = flags.port
      if (flags.quick === true) options.quick = true
      // The demo closes its servers itself on SIGINT / SIGTERM once it is serving; give it a moment to
      // do so, and end the command anyway after that (cli.ts then exits, a second signal at once).
      const interrupted = aborted(io.signal).then(() => sleep(DEMO_GRACE_MS))
      await Promise.race([runDemo(options), interrupted])
      done(0)
    })
}
