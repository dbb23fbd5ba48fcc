/**
 * What every peer module hands the harness. A peer whose library cannot be loaded here (not
 * installed, native binary missing, WebAssembly refused) is reported, never dropped: its factory
 * resolves to {@link Unavailable} with the reason instead of throwing.
 */
export type Unavailable = { readonly available: false; readonly reason: string }

/**
 * A stateful one-step-per-event model: feed x (length I), get y (length O); state carries over. The
 * returned array may be reused by the next step: copy it to keep it.
 */
export type StepModel<Y extends Float32Array | Promise<Float32Array> = Float32Array | Promise<Float32Array>> =
  {
    readonly available: true
    /** Shown in the harness's table, e.g. `tfjs (wasm)`. */
    readonly name: string
    step(x: Float32Array): Y
    dispose(): void
  }

/** Turns whatever a failed import or backend start threw into the harness's "unavailable" row. */
export function unavailable(what: string, error: unknown): Unavailable {
  const message = error instanceof Error ? error.message.split('\n')[0] : String(error)
  return { available: false, reason: `${what}: ${message}` }
}

/**
 * Imports a package named at run time. The specifier is a variable on purpose: TypeScript then does
 * not resolve the peer packages, so the root typecheck passes on a clone where `bench/` was never
 * installed; each peer module declares the small part of its library's API that it uses.
 */
export async function importPeer(specifier: string): Promise<unknown> {
  return import(specifier)
}
