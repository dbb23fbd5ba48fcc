import { RxrnnError } from '../errors.js'

/** Reads a number field of a saved detector state, or throws RxrnnError('bad_snapshot') naming it. */
export function savedNumber(saved: Record<string, unknown>, name: string): number {
  const v = saved[name]
  if (typeof v !== 'number' || Number.isNaN(v))
    throw new RxrnnError(
      'bad_snapshot',
      `Cannot restore this snapshot: drift.${name} is ${JSON.stringify(v)}`,
    )
  return v
}
