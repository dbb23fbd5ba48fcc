import { describe, expect, it } from 'vitest'
import { RxrnnError } from '../../src/errors.js'
import { KeyStore } from '../../src/key-store.js'

function store(options: { maxKeys?: number; idleMs?: number } = {}) {
  const evicted: [string, { key: string; hits: number }][] = []
  const keys = new KeyStore({
    ...options,
    create: (key: string) => ({ key, hits: 0 }),
    onEvict: (key, value) => evicted.push([key, value]),
  })
  return { keys, evicted }
}

describe('KeyStore', () => {
  it('creates a value the first time a key is seen and returns the same value after', () => {
    const { keys } = store()
    const a = keys.touch('a', 0)
    a.hits++
    expect(keys.touch('a', 1)).toBe(a)
    expect(keys.get('a')).toEqual({ key: 'a', hits: 1 })
    expect(keys.size).toBe(1)
    expect(keys.has('b')).toBe(false)
    expect(keys.get('b')).toBeUndefined()
  })

  it('evicts the least recently seen key past maxKeys, with its value, and counts it', () => {
    const { keys, evicted } = store({ maxKeys: 2 })
    keys.touch('a', 0)
    keys.touch('b', 1)
    keys.touch('a', 2) // b is now the least recently seen
    keys.touch('c', 3)
    expect([...keys.keys()]).toEqual(['a', 'c'])
    expect(evicted).toEqual([['b', { key: 'b', hits: 0 }]])
    expect(keys.evicted).toBe(1)
  })

  it('evicts idle keys, oldest first, and stops at the first fresh one', () => {
    const { keys, evicted } = store({ idleMs: 10 })
    keys.touch('a', 0)
    keys.touch('b', 5)
    keys.touch('c', 8)
    keys.touch('a', 9)
    expect(keys.evictIdle(15)).toEqual(['b'])
    expect(keys.evictIdle(18)).toEqual(['c'])
    expect([...keys.keys()]).toEqual(['a'])
    expect(evicted.map(([key]) => key)).toEqual(['b', 'c'])
    expect(keys.lastSeen('a')).toBe(9)
    expect(keys.evicted).toBe(2)
  })

  it('deletes and clears without calling onEvict', () => {
    const { keys, evicted } = store()
    keys.touch('a', 0)
    keys.touch('b', 0)
    keys.touch('c', 0)
    expect(keys.delete('b')).toBe(true)
    expect(keys.delete('b')).toBe(false)
    expect([...keys.keys()]).toEqual(['a', 'c'])
    keys.clear()
    expect(keys.size).toBe(0)
    expect([...keys.keys()]).toEqual([])
    keys.touch('d', 0)
    expect([...keys.keys()]).toEqual(['d'])
    expect(evicted).toEqual([])
  })

  it('lets keys be deleted or seen while iterating', () => {
    const { keys } = store()
    for (const key of ['a', 'b', 'c', 'd']) keys.touch(key, 0)
    const seen: string[] = []
    for (const key of keys.keys()) {
      seen.push(key)
      if (key === 'a') keys.delete('a')
      if (key === 'b') keys.touch('b', 1)
    }
    // A key seen during the walk moves to the newest end, so the walk meets it again there.
    expect(seen).toEqual(['a', 'b', 'c', 'd', 'b'])
    expect([...keys.keys()]).toEqual(['c', 'd', 'b'])
    expect(keys.entries().map((e) => [e.key, e.lastSeen])).toEqual([
      ['c', 0],
      ['d', 0],
      ['b', 1],
    ])
  })

  it('keeps the recency order under a random mix of touches and deletes, like a reference list', () => {
    const { keys } = store({ maxKeys: 5 })
    const reference: string[] = []
    let seed = 7
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed / 2 ** 31
    }
    for (let step = 0; step < 2_000; step++) {
      const key = `k${Math.floor(random() * 8)}`
      if (random() < 0.2) {
        expect(keys.delete(key)).toBe(reference.includes(key))
        if (reference.includes(key)) reference.splice(reference.indexOf(key), 1)
      } else {
        if (reference.includes(key)) reference.splice(reference.indexOf(key), 1)
        else if (reference.length === 5) reference.shift()
        reference.push(key)
        keys.touch(key, step)
      }
      expect([...keys.keys()]).toEqual(reference)
    }
  })

  it('refuses bad limits with one bad_config error listing both', () => {
    let error: unknown
    try {
      new KeyStore({ maxKeys: 0, idleMs: -1, create: () => 0 })
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(RxrnnError)
    expect((error as RxrnnError).problems).toHaveLength(2)
  })
})
