/**
 * How many values a frame holds, counted before it is decoded: a 1 MB frame of empty arrays
 * decodes into a million objects (over 100 ms of one core), so a frame with more values than
 * the server could want is refused unread. Both counts are one pass over the bytes and stop at
 * the limit.
 */

/** msgpackr's extension for integers wider than 64 bits. */
const BIGINT_EXTENSION = 0x42

/**
 * What `msgpackValueCount` returns for a frame holding an integer wider than 64 bits: no field
 * takes one, and decoding a megabyte of it (then describing it) would cost tens of ms.
 */
export const WIDE_INTEGER = -1

/**
 * Values in the first msgpack item of `bytes` (every array element, map key and map value,
 * nested or not, counts one), or `limit + 1` once past `limit`, or `WIDE_INTEGER`. Malformed or
 * truncated input returns what it counted so far: the decoder then reports it.
 *
 * @example
 * msgpackValueCount(pack({ type: 'tick', key: 'a', x: [1, 2] }), 10_000) // 7
 */
export function msgpackValueCount(bytes: Uint8Array, limit: number): number {
  const n = bytes.length
  let pos = 0
  let pending = 1
  let count = 0
  while (pending > 0 && pos < n) {
    pending--
    if (++count > limit) return limit + 1
    const b = bytes[pos]!
    if (b <= 0x7f || b >= 0xe0) pos += 1
    else if (b <= 0x8f) {
      pending += 2 * (b & 0x0f)
      pos += 1
    } else if (b <= 0x9f) {
      pending += b & 0x0f
      pos += 1
    } else if (b <= 0xbf) pos += 1 + (b & 0x1f)
    else {
      switch (b) {
        case 0xc4:
        case 0xd9:
          pos += 2 + (bytes[pos + 1] ?? 0)
          break
        case 0xc5:
        case 0xda:
          pos += 3 + u16(bytes, pos + 1)
          break
        case 0xc6:
        case 0xdb:
          pos += 5 + u32(bytes, pos + 1)
          break
        case 0xc7: {
          const size = bytes[pos + 1] ?? 0
          if (bytes[pos + 2] === BIGINT_EXTENSION && size > 8) return WIDE_INTEGER
          pos += 3 + size
          break
        }
        case 0xc8: {
          const size = u16(bytes, pos + 1)
          if (bytes[pos + 3] === BIGINT_EXTENSION && size > 8) return WIDE_INTEGER
          pos += 4 + size
          break
        }
        case 0xc9: {
          const size = u32(bytes, pos + 1)
          if (bytes[pos + 5] === BIGINT_EXTENSION && size > 8) return WIDE_INTEGER
          pos += 6 + size
          break
        }
        case 0xca:
        case 0xce:
        case 0xd2:
          pos += 5
          break
        case 0xcb:
        case 0xcf:
        case 0xd3:
          pos += 9
          break
        case 0xcc:
        case 0xd0:
          pos += 2
          break
        case 0xcd:
        case 0xd1:
          pos += 3
          break
        case 0xd4:
          pos += 3
          break
        case 0xd5:
          pos += 4
          break
        case 0xd6:
          pos += 6
          break
        case 0xd7:
          pos += 10
          break
        case 0xd8:
          pos += 18
          break
        case 0xdc:
          pending += u16(bytes, pos + 1)
          pos += 3
          break
        case 0xdd:
          pending += u32(bytes, pos + 1)
          pos += 5
          break
        case 0xde:
          pending += 2 * u16(bytes, pos + 1)
          pos += 3
          break
        case 0xdf:
          pending += 2 * u32(bytes, pos + 1)
          pos += 5
          break
        default:
          // nil, booleans, 0xc1 (reserved: the decoder refuses it).
          pos += 1
      }
    }
  }
  return count
}

/**
 * An upper bound on the values in a JSON text: one more than its `[`, `{`, `,` and `:`
 * characters (those inside strings count too, so it may overcount, never undercount), or
 * `limit + 1` once past `limit`.
 *
 * @example
 * jsonValueBound('{"type":"tick","x":[1,2]}', 10_000) // 7
 */
export function jsonValueBound(text: string, limit: number): number {
  let count = 1
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    // , : [ {
    if (c === 0x2c || c === 0x3a || c === 0x5b || c === 0x7b) {
      if (++count > limit) return limit + 1
    }
  }
  return count
}

function u16(bytes: Uint8Array, at: number): number {
  return ((bytes[at] ?? 0) << 8) | (bytes[at + 1] ?? 0)
}

function u32(bytes: Uint8Array, at: number): number {
  return (
    (bytes[at] ?? 0) * 2 ** 24 +
    (bytes[at + 1] ?? 0) * 2 ** 16 +
    (bytes[at + 2] ?? 0) * 2 ** 8 +
    (bytes[at + 3] ?? 0)
  )
}
