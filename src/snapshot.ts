import { Packr } from 'msgpackr'
import { RxrnnError } from './errors.js'

/** Bumped when a snapshot's layout changes; older readers refuse newer snapshots. */
export const SNAPSHOT_VERSION = 1

/** What a snapshot holds: a trainer, or a keyed trainer with every key's state. */
export type SnapshotKind = 'trainer' | 'keyed-trainer'

// Typed arrays keep their class and bits through msgpackr's typed-array extension.
const packr = new Packr({ useRecords: false, moreTypes: true, mapsAsObjects: true, structuredClone: false })

/**
 * Wraps a body as `{ format: 'rxrnn', kind, version, crc32, body: bytes }`. The CRC over the
 * body's bytes catches damage that would otherwise decode as plausible numbers.
 */
export function encodeSnapshot(kind: SnapshotKind, body: object): Uint8Array {
  const bytes = packr.pack(body)
  const envelope = { format: 'rxrnn', kind, version: SNAPSHOT_VERSION, crc32: crc32(bytes), body: bytes }
  return new Uint8Array(packr.pack(envelope))
}

/** Unwraps and checks a snapshot; throws RxrnnError('bad_snapshot') naming what is wrong. */
export function decodeSnapshot(bytes: Uint8Array, kind: SnapshotKind): Record<string, unknown> {
  const fail = (why: string): never => {
    throw new RxrnnError('bad_snapshot', `Cannot restore this snapshot: ${why}`)
  }
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) fail('it is empty')
  let envelope: Record<string, unknown>
  try {
    envelope = packr.unpack(bytes) as Record<string, unknown>
  } catch (error) {
    return fail(`it is truncated or not a snapshot (${error instanceof Error ? error.message : error})`)
  }
  if (envelope === null || typeof envelope !== 'object' || envelope.format !== 'rxrnn') {
    fail('it is not an rxrnn snapshot')
  }
  if (envelope.version !== SNAPSHOT_VERSION) {
    fail(
      `its format version is ${JSON.stringify(envelope.version)}; this rxrnn reads version ${SNAPSHOT_VERSION}`,
    )
  }
  if (envelope.kind !== kind) fail(`it holds a ${JSON.stringify(envelope.kind)}, not a ${kind}`)
  const body = envelope.body
  if (!(body instanceof Uint8Array)) return fail('its body is missing')
  if (crc32(body) !== envelope.crc32) fail('its checksum does not match: the file is damaged')
  try {
    return packr.unpack(body) as Record<string, unknown>
  } catch (error) {
    return fail(`its body does not decode (${error instanceof Error ? error.message : error})`)
  }
}

/** Reads a field of a snapshot body, checking its type. */
export function field<T>(
  body: Record<string, unknown>,
  name: string,
  check: (v: unknown) => boolean,
  what: string,
): T {
  const v = body[name]
  if (!check(v)) throw new RxrnnError('bad_snapshot', `Cannot restore this snapshot: ${name} is not ${what}`)
  return v as T
}

/** Copies a saved typed array into `into`, checking class and length. */
export function restoreArray(
  into: Float32Array | Float64Array | Uint8Array,
  saved: unknown,
  name: string,
): void {
  if (!(saved instanceof into.constructor) || (saved as ArrayLike<number>).length !== into.length) {
    throw new RxrnnError(
      'bad_snapshot',
      `Cannot restore this snapshot: ${name} should be a ${into.constructor.name} of ${into.length} values`,
    )
  }
  into.set(saved as ArrayLike<number>)
}

const crcTable = (() => {
  const table = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    table[n] = c >>> 0
  }
  return table
})()

/** CRC-32 (IEEE), as zip and PNG use. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}
