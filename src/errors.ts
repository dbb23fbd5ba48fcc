/**
 * Every error rxrnn throws on purpose. `code` is stable and machine-readable (it is what the
 * server puts in an `error` frame); `problems` lists each thing found wrong, so that one
 * thrown error can report everything at once instead of the first problem only.
 *
 * @example
 * try { model.loadSafetensors(bytes) } catch (e) {
 *   if (e instanceof RxrnnError) for (const p of e.problems) console.error(p)
 * }
 */
export class RxrnnError extends Error {
  override readonly name = 'RxrnnError'
  readonly code: RxrnnErrorCode
  readonly problems: readonly string[]

  constructor(code: RxrnnErrorCode, message: string, problems: readonly string[] = [message]) {
    // A single problem still reaches the message (it is all most users read), unless it is there already.
    super(
      problems.length > 1
        ? `${message}:\n  - ${problems.join('\n  - ')}`
        : problems.length === 1 && !message.includes(problems[0]!)
          ? `${message}: ${problems[0]}`
          : message,
    )
    this.code = code
    this.problems = problems
  }
}

/** Machine-readable error codes, shared by the core, the operators and the wire protocol. */
export type RxrnnErrorCode =
  | 'bad_config'
  | 'bad_input'
  | 'bad_target'
  | 'bad_safetensors'
  | 'bad_snapshot'
  | 'bad_frame'
  | 'unknown_type'
  | 'missing_key'
  | 'bad_key'
  | 'payload_too_large'
  /** A server limit refused the frame (new keys per second); retry later, more slowly. */
  | 'rate_limited'
  | 'internal'

/** Throws `RxrnnError(code, message, problems)` when `problems` is not empty. */
export function throwIfProblems(code: RxrnnErrorCode, message: string, problems: readonly string[]): void {
  if (problems.length > 0) throw new RxrnnError(code, message, problems)
}
