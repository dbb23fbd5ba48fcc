import { describe, expect, it } from 'vitest'
import { fnv1a32, parsePartitionList, partitionOf } from '../../../streams/transport/partition.js'

/** FNV-1a 32 by the book, over TextEncoder's bytes: the reference the fast version must match. */
function reference(text: string): number {
  let hash = 0x811c9dc5
  for (const b of new TextEncoder().encode(text)) hash = Math.imul(hash ^ b, 0x01000193) >>> 0
  return hash
}

describe('partitionOf', () => {
  it('hashes with FNV-1a 32 (published test vectors)', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5)
    expect(fnv1a32('a')).toBe(0xe40c292c)
    expect(fnv1a32('foobar')).toBe(0xbf9cf968)
  })

  it("hashes the key's UTF-8 bytes, surrogate pairs and lone surrogates included", () => {
    for (const key of ['é', 'ü-sensor', '日本株', '😀', 'a😀b', '\ud800', 'x\udc00y', 'AAPL', 'sensor-17']) {
      expect(fnv1a32(key)).toBe(reference(key))
    }
  })

  it('is the hash modulo the number of partitions', () => {
    expect(partitionOf('a', 16)).toBe(0xe40c292c % 16)
    expect(partitionOf('foobar', 7)).toBe(0xbf9cf968 % 7)
    expect(partitionOf('anything', 1)).toBe(0)
    const counts = new Array(4).fill(0)
    for (let i = 0; i < 4000; i++) counts[partitionOf(`key-${i}`, 4)]++
    for (const c of counts) expect(c).toBeGreaterThan(800)
    expect(() => partitionOf('a', 0)).toThrow(/partitions is 0/)
  })
})

describe('parsePartitionList (--own)', () => {
  it('reads ranges and lists, sorted and without repeats', () => {
    expect(parsePartitionList('0-7', 16)).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
    expect(parsePartitionList('0,2,4-6', 16)).toEqual([0, 2, 4, 5, 6])
    expect(parsePartitionList('5, 1-2, 2', 8)).toEqual([1, 2, 5])
  })

  it('names what is wrong', () => {
    expect(() => parsePartitionList('16', 16)).toThrow(/partition 16 does not exist: there are 16 partitions/)
    expect(() => parsePartitionList('7-3', 16)).toThrow(/runs backwards; write it as 3-7/)
    expect(() => parsePartitionList('a', 16)).toThrow(/"a" is not a partition or a range/)
    expect(() => parsePartitionList('1,,2', 16)).toThrow(/"" is not a partition/)
  })
})
