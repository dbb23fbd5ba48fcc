/** The server's small units on their own: origins and hosts, the token gate, and the limits. */
import type { IncomingMessage } from 'node:http'
import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { ConnectionLimits, formatBytes, memoryProblem, RateBucket } from '../../../streams/server/limits.js'
import {
  hostProblem,
  isLoopbackHost,
  originPolicy,
  originProblem,
  requestTarget,
} from '../../../streams/server/origins.js'
import { FastHistogram } from '../../../streams/server/prometheus.js'
import { readCookie, TokenGate, tokenProblem } from '../../../streams/server/tokens.js'

const TOKEN = 'unit-token-0123456789'
const req = (headers: Record<string, string> = {}) => ({ headers }) as unknown as IncomingMessage

describe('origins', () => {
  it('requestTarget reads origin-form and absolute-form targets and refuses the rest without throwing', () => {
    expect(requestTarget('/metrics?x=1')?.pathname).toBe('/metrics')
    expect(requestTarget('/?token=abc')?.searchParams.get('token')).toBe('abc')
    expect(requestTarget('http://127.0.0.1:8080/a')?.pathname).toBe('/a')
    for (const bad of ['//999.999.999.999/', 'http://[/', '*', 'javascript:alert(1)', '', undefined]) {
      expect(requestTarget(bad)).toBeNull()
    }
  })

  it('loopback names', () => {
    for (const h of ['localhost', 'LOCALHOST', 'a.localhost', '127.0.0.1', '127.1.2.3', '::1', '[::1]']) {
      expect(isLoopbackHost(h)).toBe(true)
    }
    for (const h of ['evil.example', '10.0.0.1', '0.0.0.0', '128.0.0.1', '127.0.0.1.evil.example', '[::2]']) {
      expect(isLoopbackHost(h)).toBe(false)
    }
  })

  it('hostProblem: loopback listeners take loopback Hosts and allowed names; public listeners take any', () => {
    const loop = originPolicy('127.0.0.1', ['Proxy.Example'])
    expect(hostProblem(loop, '127.0.0.1:8080')).toBeUndefined()
    expect(hostProblem(loop, '[::1]:8080')).toBeUndefined()
    expect(hostProblem(loop, 'proxy.example:443')).toBeUndefined()
    expect(hostProblem(loop, 'evil.example')).toMatch(/not a loopback name/)
    expect(hostProblem(loop, undefined)).toMatch(/no Host/)
    expect(hostProblem(originPolicy('0.0.0.0'), 'anything.example')).toBeUndefined()
  })

  it("originProblem: no Origin passes; the server's own and listed origins pass; others and 'null' do not", () => {
    const policy = originPolicy('127.0.0.1', [], ['https://App.Example.com:443/'])
    expect(originProblem(policy, undefined, '127.0.0.1:8080')).toBeUndefined()
    expect(originProblem(policy, 'http://127.0.0.1:8080', '127.0.0.1:8080')).toBeUndefined()
    expect(originProblem(policy, 'https://app.example.com', '127.0.0.1:8080')).toBeUndefined()
    expect(originProblem(policy, 'http://127.0.0.1:9999', '127.0.0.1:8080')).toMatch(/not this server's own/)
    expect(originProblem(policy, 'https://evil.example', '127.0.0.1:8080')).toMatch(/--allow-origin/)
    expect(originProblem(policy, 'null', '127.0.0.1:8080')).toBeDefined()
  })
})

describe('tokens', () => {
  it('tokenProblem refuses short tokens and says how to make one', () => {
    expect(tokenProblem('s3cret')).toMatch(/6 characters; use at least 16.*node -e/)
    expect(tokenProblem('has a space in it, long enough')).toMatch(/whitespace/)
    expect(tokenProblem(TOKEN)).toBeUndefined()
  })

  it('authorize: bearer, ?token= and session cookie; wrong tokens lock the address out (others are not)', () => {
    let now = 1_000
    const gate = new TokenGate(TOKEN, { maxFailures: 3, lockoutMs: 10_000, now: () => now })
    const url = (q = '') => new URL(`http://x/${q}`)
    expect(gate.authorize('a', req({ authorization: `Bearer ${TOKEN}` }), url())).toBe('ok')
    expect(gate.authorize('a', req(), url(`?token=${TOKEN}`))).toBe('ok')
    expect(gate.authorize('a', req(), url())).toBe('refused')
    for (let i = 0; i < 3; i++)
      expect(gate.authorize('a', req({ authorization: 'Bearer no' }), url())).toBe('refused')
    expect(gate.authorize('a', req({ authorization: `Bearer ${TOKEN}` }), url())).toBe('limited')
    expect(gate.retryAfter('a')).toBe(10)
    expect(gate.authorize('b', req({ authorization: `Bearer ${TOKEN}` }), url())).toBe('ok')
    now += 10_001
    expect(gate.authorize('a', req({ authorization: `Bearer ${TOKEN}` }), url())).toBe('ok')
  })

  it('login gives a random session id in an HttpOnly SameSite=Strict cookie; sessions expire', () => {
    let now = 0
    const gate = new TokenGate(TOKEN, { sessionMs: 1000, secure: true, now: () => now })
    expect(gate.login('a', 'wrong').verdict).toBe('refused')
    const { verdict, cookie } = gate.login('a', TOKEN)
    expect(verdict).toBe('ok')
    expect(cookie).toMatch(
      /^rxrnn_session=[\w-]{40,}; HttpOnly; SameSite=Strict; Path=\/; Max-Age=1; Secure$/,
    )
    const session = cookie!.split(';')[0]!
    expect(gate.hasSession(req({ cookie: `other=1; ${session}` }))).toBe(true)
    expect(gate.authorize('z', req({ cookie: session }), null)).toBe('ok')
    now = 1001
    expect(gate.hasSession(req({ cookie: session }))).toBe(false)
    expect(readCookie('a=1; b = 2', 'b')).toBe('2')
  })

  it('without a token everything is ok', () => {
    const gate = new TokenGate(undefined)
    expect(gate.required).toBe(false)
    expect(gate.authorize('a', req(), null)).toBe('ok')
  })
})

describe('limits', () => {
  it('ConnectionLimits counts in all and per address, and gives places back', () => {
    const limits = new ConnectionLimits(3, 2)
    expect(limits.admit('a')).toBeUndefined()
    expect(limits.admit('a')).toBeUndefined()
    expect(limits.admit('a')).toMatch(/--max-connections-per-address/)
    expect(limits.admit('b')).toBeUndefined()
    expect(limits.admit('c')).toMatch(/--max-connections/)
    limits.release('a')
    expect(limits.admit('c')).toBeUndefined()
    expect(limits.size).toBe(3)
    expect(limits.refused).toBe(2)
  })

  it('RateBucket allows a burst of `rate`, then `rate` per second', () => {
    const bucket = new RateBucket(5)
    let taken = 0
    for (let i = 0; i < 20; i++) if (bucket.take(1000)) taken++
    expect(taken).toBe(5)
    expect(bucket.take(1100)).toBe(false)
    expect(bucket.take(1200)).toBe(true)
    taken = 0
    for (let i = 0; i < 20; i++) if (bucket.take(5000)) taken++
    expect(taken).toBe(5)
  })

  it('memoryProblem names --max-keys, the per-key figure and the total', () => {
    expect(memoryProblem(1000, 1000, 2_000_000)).toBeUndefined()
    expect(memoryProblem(4 << 20, 100_000, 8 * 2 ** 30)).toMatch(
      /^--max-keys 100000 × 4\.0 MiB per key .* = 391 GiB, over --max-memory 8\.0 GiB: lower --max-keys \(at most 2048 fit\)/,
    )
    expect(formatBytes(512)).toBe('512 bytes')
  })
})

describe('FastHistogram', () => {
  it('prints cumulative buckets, +Inf, sum and count in the Prometheus text format', async () => {
    const registry = new Registry()
    const h = new FastHistogram('t_seconds', 'Time.', [0.1, 1])
    registry.registerMetric(h as never)
    for (const v of [0.05, 0.5, 0.7, 3, Number.NaN]) h.observe(v)
    const text = await registry.metrics()
    expect(text).toContain('# TYPE t_seconds histogram')
    expect(text).toMatch(/^t_seconds_bucket\{le="0\.1"\} 1$/m)
    expect(text).toMatch(/^t_seconds_bucket\{le="1"\} 3$/m)
    expect(text).toMatch(/^t_seconds_bucket\{le="\+Inf"\} 4$/m)
    expect(text).toMatch(/^t_seconds_sum 4\.25$/m)
    expect(text).toMatch(/^t_seconds_count 4$/m)
  })
})
