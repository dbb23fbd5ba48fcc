/**
 * Which partition a key belongs to when ticks are spread over NATS JetStream (see
 * `rxrnn/server`'s workers): FNV-1a 32-bit of the key's UTF-8 bytes, modulo the number of
 * partitions. Pure and browser-safe, so a producer (in a browser, or any language: the hash is
 * stated in the README) publishes each tick straight to `rxrnn.ticks.<partition>`.
 */

const FNV_OFFSET = 0x811c9dc5
const FNV_PRIME = 0x01000193

/**
 * FNV-1a, 32 bits, of a string's UTF-8 bytes, as an unsigned integer.
 *
 * @example
 * fnv1a32('') // 0x811c9dc5
 * fnv1a32('a') // 0xe40c292c
 */
export function fnv1a32(text: string): number {
  let hash = FNV_OFFSET
  // UTF-8 encoded on the fly: no TextEncoder allocation per key.
  for (let i = 0; i < text.length; i++) {
    let code = text.charCodeAt(i)
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const low = text.charCodeAt(i + 1)
      if (low >= 0xdc00 && low <= 0xdfff) {
        code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00)
        i++
      }
    }
    // A lone surrogate is encoded as U+FFFD, as TextEncoder does.
    if (code >= 0xd800 && code <= 0xdfff) code = 0xfffd
    if (code < 0x80) hash = byte(hash, code)
    else if (code < 0x800) {
      hash = byte(hash, 0xc0 | (code >> 6))
      hash = byte(hash, 0x80 | (code & 0x3f))
    } else if (code < 0x10000) {
      hash = byte(hash, 0xe0 | (code >> 12))
      hash = byte(hash, 0x80 | ((code >> 6) & 0x3f))
      hash = byte(hash, 0x80 | (code & 0x3f))
    } else {
      hash = byte(hash, 0xf0 | (code >> 18))
      hash = byte(hash, 0x80 | ((code >> 12) & 0x3f))
      hash = byte(hash, 0x80 | ((code >> 6) & 0x3f))
      hash = byte(hash, 0x80 | (code & 0x3f))
    }
  }
  return hash >>> 0
}

function byte(hash: number, b: number): number {
  return Math.imul(hash ^ b, FNV_PRIME) >>> 0
}

/**
 * The partition of `key` among `partitions`: `fnv1a32(utf8(key)) % partitions`, the same
 * mapping as nats-server's `partition()` subject transform.
 *
 * @example
 * const p = partitionOf('sensor-7', 16)
 * nc.publish(`rxrnn.ticks.${p}`, encodeFrame({ type: 'tick', key: 'sensor-7', x: [0.3] }, 'msgpack'))
 */
export function partitionOf(key: string, partitions: number): number {
  if (!Number.isInteger(partitions) || partitions < 1) {
    throw new RangeError(`partitions is ${partitions}; it must be a whole number >= 1`)
  }
  return fnv1a32(key) % partitions
}

/**
 * Parses a set of partitions as `--own` takes it: ranges and lists such as `0-7` or `0,2,4-6`,
 * each number in [0, partitions). Returns them sorted, without repeats. Throws a RangeError that
 * names the bad part.
 *
 * @example
 * parsePartitionList('0,2,4-6', 16) // [0, 2, 4, 5, 6]
 */
export function parsePartitionList(text: string, partitions: number): number[] {
  const owned = new Set<number>()
  const parts = text.split(',').map((part) => part.trim())
  for (const part of parts) {
    const match = /^(\d+)(?:\s*-\s*(\d+))?$/.exec(part)
    if (match === null) {
      throw new RangeError(
        `"${part}" is not a partition or a range; write numbers and ranges such as 0-7 or 0,2,4-6`,
      )
    }
    const from = Number(match[1])
    const to = match[2] === undefined ? from : Number(match[2])
    if (to < from) throw new RangeError(`the range "${part}" runs backwards; write it as ${to}-${from}`)
    if (to >= partitions) {
      throw new RangeError(
        `partition ${to} does not exist: there are ${partitions} partitions, numbered 0 to ${partitions - 1}`,
      )
    }
    for (let p = from; p <= to; p++) owned.add(p)
  }
  return [...owned].sort((a, b) => a - b)
}
