import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { RxrnnErrorCode } from '../../../src/errors.js'
import {
  CHANNELS,
  CLIENT_FRAME_TYPES,
  type ClientFrameValidation,
  DEFAULT_MAX_KEY_LENGTH,
  errorFrame,
  type FrameExpectations,
  SERVER_FRAME_TYPES,
  validateClientFrame,
} from '../../../streams/transport/protocol.js'

const WIRE_CODES: readonly RxrnnErrorCode[] = [
  'bad_frame',
  'unknown_type',
  'missing_key',
  'bad_key',
  'bad_input',
  'bad_target',
]

function rejected(result: ClientFrameValidation) {
  if (result.ok) throw new Error(`expected a rejection, got ${JSON.stringify(result.frame)}`)
  return result.error
}

function accepted(result: ClientFrameValidation) {
  if (!result.ok) throw new Error(`expected acceptance, got ${result.error.code}: ${result.error.message}`)
  return result.frame
}

/**
 * The protocol's rules, written out independently of the implementation: a value is a valid
 * client frame exactly when this says so.
 */
function isValidReference(value: unknown, model: FrameExpectations = {}): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value)
  if (proto !== Object.prototype && proto !== null) return false
  if (Object.hasOwn(value, '__proto__')) return false
  const get = (name: string): unknown =>
    Object.hasOwn(value, name) ? (value as Record<string, unknown>)[name] : undefined
  const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v)
  const absent = (v: unknown) => v === undefined || v === null
  const maxKeyLength = model.maxKeyLength ?? DEFAULT_MAX_KEY_LENGTH
  const isKey = (k: unknown) => typeof k === 'string' && k.length >= 1 && k.length <= maxKeyLength
  const isVector = (v: unknown): v is ArrayLike<unknown> =>
    (Array.isArray(v) || v instanceof Float32Array || v instanceof Float64Array) &&
    v.length > 0 &&
    Array.from(v as ArrayLike<unknown>).every(finite)

  const id = get('id')
  if (!absent(id) && !finite(id)) return false
  switch (get('type')) {
    case 'tick': {
      if (!isKey(get('key'))) return false
      const x = get('x')
      if (!isVector(x) || (model.inputSize !== undefined && x.length !== model.inputSize)) return false
      const y = get('y')
      if (absent(y)) return true
      if (model.task === 'classification') {
        return (
          Number.isInteger(y) &&
          (y as number) >= 0 &&
          (model.outputSize === undefined || (y as number) < model.outputSize)
        )
      }
      if (typeof y === 'number') {
        return (
          finite(y) &&
          !(model.task === 'regression' && model.outputSize !== undefined && model.outputSize !== 1)
        )
      }
      return isVector(y) && (model.outputSize === undefined || y.length === model.outputSize)
    }
    case 'subscribe': {
      const channels = get('channels')
      if (!Array.isArray(channels) || channels.length === 0) return false
      if (!Array.from(channels).every((c) => (CHANNELS as readonly unknown[]).includes(c))) return false
      const keys = get('keys')
      return absent(keys) || (Array.isArray(keys) && keys.length > 0 && Array.from(keys).every(isKey))
    }
    case 'reset':
      return isKey(get('key'))
    case 'unsubscribe':
    case 'hello':
      return true
    default:
      return false
  }
}

/** The id an error frame about `value` must carry. */
function expectedErrorId(value: unknown): number | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  const proto = Object.getPrototypeOf(value)
  if ((proto !== Object.prototype && proto !== null) || Object.hasOwn(value, '__proto__')) return undefined
  const id = Object.hasOwn(value, 'id') ? (value as { id: unknown }).id : undefined
  return typeof id === 'number' && Number.isFinite(id) ? id : undefined
}

function checkAgainstReference(value: unknown, model?: FrameExpectations): void {
  const result = validateClientFrame(value, model)
  expect(result.ok).toBe(isValidReference(value, model))
  if (result.ok) {
    expect(result.frame.type).toBe((value as { type: unknown }).type)
    if (result.frame.type === 'tick') expect(result.frame.x).toBe((value as { x: unknown }).x)
  } else {
    expect(result.error.type).toBe('error')
    expect(WIRE_CODES).toContain(result.error.code)
    expect(typeof result.error.message).toBe('string')
    expect(result.error.message.length).toBeGreaterThan(0)
    const id = expectedErrorId(value)
    if (id === undefined) expect(result.error).not.toHaveProperty('id')
    else expect(result.error.id).toBe(id)
  }
}

describe('validateClientFrame: accepted frames', () => {
  it('returns a tick with x as the very array received, plain or typed', () => {
    const plain = [0.5, -1, 2]
    const f32 = new Float32Array([1, 2, 3])
    const f64 = new Float64Array([1, 2, 3])
    for (const x of [plain, f32, f64]) {
      const frame = accepted(validateClientFrame({ type: 'tick', key: 'a', x, id: 7 }, { inputSize: 3 }))
      expect(frame).toEqual({ type: 'tick', key: 'a', x, id: 7 })
      if (frame.type === 'tick') expect(frame.x).toBe(x)
    }
  })

  it('accepts y as a number or an array, and leaves out a null or absent y and id', () => {
    const withScalar = accepted(validateClientFrame({ type: 'tick', key: 'k', x: [1], y: 2, id: 0.5 }))
    expect(withScalar).toEqual({ type: 'tick', key: 'k', x: [1], y: 2, id: 0.5 })
    const y = new Float64Array([1, 2])
    const withArray = accepted(validateClientFrame({ type: 'tick', key: 'k', x: [1], y }, { outputSize: 2 }))
    expect(withArray.type === 'tick' && withArray.y).toBe(y)
    const nulls = accepted(validateClientFrame({ type: 'tick', key: 'k', x: [1], y: null, id: null }))
    expect(nulls).toStrictEqual({ type: 'tick', key: 'k', x: [1] })
  })

  it('keeps only protocol fields and never modifies the input', () => {
    const input = { type: 'tick', key: 'k', x: [1, 2], extra: { deep: [1] }, id: 3 }
    const before = structuredClone(input)
    const frame = accepted(validateClientFrame(input))
    expect(frame).toStrictEqual({ type: 'tick', key: 'k', x: [1, 2], id: 3 })
    expect(frame).not.toBe(input)
    expect(input).toStrictEqual(before)
  })

  it('accepts the other client frames, with their ids', () => {
    expect(accepted(validateClientFrame({ type: 'hello', id: 1 }))).toStrictEqual({ type: 'hello', id: 1 })
    expect(accepted(validateClientFrame({ type: 'unsubscribe' }))).toStrictEqual({ type: 'unsubscribe' })
    expect(accepted(validateClientFrame({ type: 'reset', key: 'k' }))).toStrictEqual({
      type: 'reset',
      key: 'k',
    })
    const sub = validateClientFrame({
      type: 'subscribe',
      channels: ['updates', 'metrics', 'updates'],
      keys: ['a'],
    })
    expect(accepted(sub)).toStrictEqual({ type: 'subscribe', channels: ['updates', 'metrics'], keys: ['a'] })
  })

  it('accepts a null-prototype object', () => {
    const value = Object.assign(Object.create(null), { type: 'tick', key: 'k', x: [1] })
    expect(accepted(validateClientFrame(value))).toStrictEqual({ type: 'tick', key: 'k', x: [1] })
  })

  it('checks class indices when the task is classification', () => {
    const expect3 = { task: 'classification', outputSize: 3 } as const
    expect(validateClientFrame({ type: 'tick', key: 'k', x: [1], y: 2 }, expect3).ok).toBe(true)
    for (const y of [3, -1, 1.5, [0, 1, 0]]) {
      const error = rejected(validateClientFrame({ type: 'tick', key: 'k', x: [1], y }, expect3))
      expect(error.code).toBe('bad_target')
      expect(error.message).toMatch(/a classification target is a class index, an integer from 0 to 2/)
    }
  })

  it('takes a single regression target only when the model has one output', () => {
    expect(
      validateClientFrame({ type: 'tick', key: 'k', x: [1], y: 0.3 }, { task: 'regression', outputSize: 1 })
        .ok,
    ).toBe(true)
    const error = rejected(
      validateClientFrame({ type: 'tick', key: 'k', x: [1], y: 0.3 }, { task: 'regression', outputSize: 3 }),
    )
    expect(error.code).toBe('bad_target')
    expect(error.message).toMatch(
      /y is a single number but the model has 3 outputs; send an array of 3 numbers/,
    )
  })
})

describe('validateClientFrame: error cases', () => {
  const tick = (fields: Record<string, unknown>) => ({ type: 'tick', key: 'k', x: [1, 2, 3], ...fields })
  const cases: [string, unknown, FrameExpectations, RxrnnErrorCode, RegExp][] = [
    [
      'NaN at an index',
      tick({ x: [1, 2, 3, Number.NaN] }),
      {},
      'bad_input',
      /^x\[3\] is NaN; every value in x must be a finite number/,
    ],
    [
      'NaN in a Float32Array',
      tick({ x: new Float32Array([1, 2, Number.NaN]) }),
      {},
      'bad_input',
      /^x\[2\] is NaN/,
    ],
    [
      'Infinity',
      tick({ x: [Number.NEGATIVE_INFINITY] }),
      {},
      'bad_input',
      /^x\[0\] is -Infinity; .*clip or rescale/,
    ],
    [
      'wrong length',
      tick({ x: [1, 2, 3, 4] }),
      { inputSize: 3 },
      'bad_input',
      /^x has 4 values but the model takes 3 inputs$/,
    ],
    ['empty x', tick({ x: [] }), {}, 'bad_input', /^x is empty; send x: an array/],
    [
      'no x',
      { type: 'tick', key: 'k' },
      { inputSize: 2 },
      'bad_input',
      /^the tick has no x; send x: an array .* of 2 finite numbers/,
    ],
    [
      'missing key',
      { type: 'tick', x: [1] },
      {},
      'missing_key',
      /^tick has no key; send key: a non-empty string/,
    ],
    ['empty key', tick({ key: '' }), {}, 'missing_key', /^key is empty/],
    ['numeric key', tick({ key: 42 }), {}, 'bad_key', /^key is 42; send key: a non-empty string/],
    [
      'long key',
      tick({ key: 'k'.repeat(9) }),
      { maxKeyLength: 8 },
      'bad_key',
      /^key is 9 characters long; .*at most 8/,
    ],
    [
      'unknown type',
      { type: 'tock' },
      {},
      'unknown_type',
      /^unknown frame type "tock"; send one of tick, subscribe/,
    ],
    ['no type', { key: 'k' }, {}, 'unknown_type', /^the frame has no type; send type: one of tick/],
    [
      'server type',
      { type: 'prediction' },
      {},
      'unknown_type',
      /^"prediction" frames are sent by the server/,
    ],
    [
      'non-numeric element',
      tick({ x: [1, true] }),
      {},
      'bad_input',
      /^x\[1\] is the boolean true, not a number/,
    ],
    [
      'null element',
      tick({ x: [1, null] }),
      {},
      'bad_input',
      /^x\[1\] is null, not a number; .*JSON writes NaN and Infinity as null/,
    ],
    [
      'string element',
      tick({ x: ['1'] }),
      {},
      'bad_input',
      /^x\[0\] is the string "1", not a number; .*parse strings/,
    ],
    [
      'string instead of x',
      tick({ x: '1,2,3' }),
      {},
      'bad_input',
      /^x is the string "1,2,3"; send x: an array/,
    ],
    ['object instead of x', tick({ x: { 0: 1 } }), {}, 'bad_input', /^x is an object; send x: an array/],
    [
      'bytes instead of x',
      tick({ x: new Uint8Array(4) }),
      {},
      'bad_input',
      /^x is a Uint8Array; .*msgpack bin/,
    ],
    ['Int32Array x', tick({ x: new Int32Array(2) }), {}, 'bad_input', /^x is an Int32Array/],
    [
      'string instead of y',
      tick({ y: '1' }),
      {},
      'bad_target',
      /^y is the string "1"; send y: a finite number or an array/,
    ],
    ['NaN y', tick({ y: Number.NaN }), {}, 'bad_target', /^y is NaN/],
    [
      'y wrong length',
      tick({ y: [1, 2] }),
      { outputSize: 3 },
      'bad_target',
      /^y has 2 values but the model has 3 outputs$/,
    ],
    ['y null element', tick({ y: [1, null] }), {}, 'bad_target', /^y\[1\] is null, not a number/],
    ['string id', tick({ id: '7' }), {}, 'bad_frame', /^id is the string "7"; an id must be a finite number/],
    ['NaN id', tick({ id: Number.NaN }), {}, 'bad_frame', /^id is NaN/],
    ['not an object', 5, {}, 'bad_frame', /^a frame must be an object .*, not 5$/],
    ['an array', [{ type: 'tick' }], {}, 'bad_frame', /^a frame must be an object .*, not an array$/],
    ['null', null, {}, 'bad_frame', /not null$/],
    ['a string', 'tick', {}, 'bad_frame', /not the string "tick"$/],
    ['a Map', new Map([['type', 'tick']]), {}, 'bad_frame', /must be a plain object .*, not a Map$/],
    [
      '__proto__ field',
      JSON.parse('{"type":"hello","__proto__":{"polluted":1}}'),
      {},
      'bad_frame',
      /"__proto__" field/,
    ],
    [
      'no channels',
      { type: 'subscribe' },
      {},
      'bad_frame',
      /^subscribe has no channels; send channels: a list of "predictions"/,
    ],
    ['empty channels', { type: 'subscribe', channels: [] }, {}, 'bad_frame', /^channels is empty/],
    [
      'unknown channel',
      { type: 'subscribe', channels: ['metrics', 'logs'] },
      {},
      'bad_frame',
      /^channels\[1\] is the string "logs"/,
    ],
    [
      'bad keys',
      { type: 'subscribe', channels: ['updates'], keys: 'a' },
      {},
      'bad_key',
      /^keys is the string "a"/,
    ],
    [
      'empty key in keys',
      { type: 'subscribe', channels: ['updates'], keys: ['a', ''] },
      {},
      'bad_key',
      /^keys\[1\] is empty/,
    ],
    ['reset without key', { type: 'reset' }, {}, 'missing_key', /^reset has no key/],
  ]
  it.each(cases)('%s', (_name, value, expectations, code, message) => {
    const error = rejected(validateClientFrame(value, expectations))
    expect(error.type).toBe('error')
    expect(error.code).toBe(code)
    expect(error.message).toMatch(message)
  })

  it('puts a valid id on the error frame, and no id when the id itself is bad', () => {
    expect(rejected(validateClientFrame({ type: 'tick', key: 'k', x: [Number.NaN], id: 9 })).id).toBe(9)
    expect(rejected(validateClientFrame({ type: 'tock', id: -2.5 })).id).toBe(-2.5)
    expect(rejected(validateClientFrame({ type: 'subscribe', id: 0 })).id).toBe(0)
    expect(
      rejected(validateClientFrame({ type: 'tick', x: [Number.NaN], id: Number.POSITIVE_INFINITY })),
    ).not.toHaveProperty('id')
  })

  it('does not touch the prototype chain', () => {
    const value = JSON.parse('{"type":"tick","key":"k","x":[1],"__proto__":{"polluted":true}}')
    validateClientFrame(value)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype)
  })

  it('reports a frame whose fields throw instead of throwing', () => {
    const getter = Object.defineProperty({ type: 'tick' }, 'key', {
      enumerable: true,
      get() {
        throw new Error('boom')
      },
    })
    expect(rejected(validateClientFrame(getter))).toMatchObject({
      code: 'bad_frame',
      message: /could not be read \(boom\)/,
    })
    const { proxy, revoke } = Proxy.revocable({}, {})
    revoke()
    expect(rejected(validateClientFrame(proxy)).code).toBe('bad_frame')
  })

  it('errorFrame leaves out an absent id', () => {
    expect(errorFrame('bad_frame', 'm')).toStrictEqual({ type: 'error', code: 'bad_frame', message: 'm' })
    expect(errorFrame('bad_input', 'm', 0)).toStrictEqual({
      type: 'error',
      code: 'bad_input',
      message: 'm',
      id: 0,
    })
  })
})

describe('validateClientFrame: properties', () => {
  const expectations = fc.record(
    {
      inputSize: fc.integer({ min: 1, max: 2 }),
      outputSize: fc.integer({ min: 1, max: 2 }),
      maxKeyLength: fc.integer({ min: 4, max: 300 }),
      task: fc.constantFrom('classification' as const, 'regression' as const),
    },
    { requiredKeys: [] },
  )

  it('never throws on anything, and is ok exactly when the reference says so', () => {
    const anything = fc.anything({
      withBigInt: true,
      withBoxedValues: true,
      withDate: true,
      withMap: true,
      withSet: true,
      withNullPrototype: true,
      withObjectString: true,
      withSparseArray: true,
      withTypedArray: true,
    })
    fc.assert(
      fc.property(anything, expectations, (value, model) => checkAgainstReference(value, model)),
      { numRuns: 2000 },
    )
  })

  const poison = fc.constantFrom<unknown>(
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    null,
    undefined,
    '1',
    true,
    10n,
    {},
    [],
  )
  const finite = fc.double({ noNaN: true, noDefaultInfinity: true })
  const numbers = fc.array(finite, { maxLength: 5 })
  const poisoned = fc.tuple(numbers, poison, fc.nat()).map(([values, bad, at]) => {
    const copy: unknown[] = [...values]
    copy.splice(at % (copy.length + 1), 0, bad)
    return copy
  })
  // Weighted towards valid parts, so that every frame type is often accepted and each rule is
  // often the only one broken.
  const weighted = (...arbitraries: [fc.Arbitrary<unknown>, number][]) =>
    fc.oneof(...arbitraries.map(([arbitrary, weight]) => ({ arbitrary, weight })))
  const vector = weighted(
    [fc.array(finite, { minLength: 1, maxLength: 2 }), 12],
    [fc.float32Array({ minLength: 1, maxLength: 2, noNaN: true, noDefaultInfinity: true }), 3],
    [fc.float64Array({ minLength: 1, maxLength: 2, noNaN: true, noDefaultInfinity: true }), 3],
    [numbers, 1],
    [poisoned, 4],
    [fc.float32Array({ maxLength: 4 }), 1],
    [fc.float64Array({ maxLength: 4 }), 1],
    [fc.int32Array({ maxLength: 3 }), 1],
    [fc.uint8Array({ maxLength: 3 }), 1],
    [fc.constant(Object.assign([1, 2], { 3: 4 })), 1],
    [fc.anything(), 1],
  )
  const key = weighted(
    [fc.string({ minLength: 1, maxLength: 6 }), 12],
    [fc.constant(''), 1],
    [fc.string({ minLength: 290, maxLength: 300 }), 1],
    [fc.constant(null), 1],
    [fc.anything(), 1],
  )
  const nearValid = fc.record(
    {
      type: weighted(
        [fc.constant('tick'), 12],
        [fc.constantFrom(...CLIENT_FRAME_TYPES), 12],
        [fc.constantFrom(...SERVER_FRAME_TYPES, 'Tick', ''), 1],
        [fc.anything(), 1],
      ),
      key,
      x: vector,
      y: weighted([finite, 3], [fc.nat({ max: 4 }), 3], [fc.constant(null), 1], [vector, 6], [poison, 2]),
      id: weighted(
        [fc.integer(), 16],
        [fc.double(), 2],
        [fc.constant(null), 1],
        [fc.string(), 1],
        [fc.anything(), 1],
      ),
      channels: weighted(
        [fc.subarray([...CHANNELS], { minLength: 1 }), 8],
        [fc.array(fc.constantFrom<unknown>(...CHANNELS, 'logs', null)), 2],
        [fc.anything(), 1],
      ),
      keys: weighted([fc.array(key, { maxLength: 3 }), 3], [fc.constant(null), 1], [fc.anything(), 1]),
    },
    { requiredKeys: ['type'] },
  )
  // Some frames also get an own "__proto__" field, as JSON.parse makes one.
  const withProtoField = fc.tuple(nearValid, fc.nat({ max: 9 }), fc.anything()).map(([frame, dice, value]) =>
    dice === 0
      ? Object.defineProperty({ ...frame }, '__proto__', {
          value,
          enumerable: true,
          writable: true,
          configurable: true,
        })
      : frame,
  )

  it('judges near-valid frames exactly like the reference, without modifying them', () => {
    fc.assert(
      fc.property(withProtoField, expectations, (value, model) => {
        // structuredClone gives every object Object.prototype, so compare prototypes apart.
        const before = structuredClone(value)
        const proto = Object.getPrototypeOf(value)
        checkAgainstReference(value, model)
        expect(value).toEqual(before)
        expect(Object.getPrototypeOf(value)).toBe(proto)
      }),
      { numRuns: 5000 },
    )
  })

  it('accepts well-formed ticks of the expected shape', () => {
    const wellFormed = fc
      .record({ inputSize: fc.integer({ min: 1, max: 6 }), outputSize: fc.integer({ min: 1, max: 4 }) })
      .chain(({ inputSize, outputSize }) =>
        fc.record({
          model: fc.constant({ inputSize, outputSize }),
          frame: fc.record(
            {
              type: fc.constant('tick'),
              key: fc.string({ minLength: 1, maxLength: 20 }),
              x: fc.oneof(
                fc.array(finite, { minLength: inputSize, maxLength: inputSize }),
                fc.float64Array({
                  minLength: inputSize,
                  maxLength: inputSize,
                  noNaN: true,
                  noDefaultInfinity: true,
                }),
              ),
              y: fc.oneof(finite, fc.array(finite, { minLength: outputSize, maxLength: outputSize })),
              id: fc.double({ noNaN: true, noDefaultInfinity: true }),
            },
            { requiredKeys: ['type', 'key', 'x'] },
          ),
        }),
      )
    fc.assert(
      fc.property(wellFormed, ({ model, frame }) => {
        const result = validateClientFrame(frame, model)
        expect(result.ok).toBe(true)
        checkAgainstReference(frame, model)
      }),
    )
  })
})
