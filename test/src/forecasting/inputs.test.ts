import { describe, expect, it } from 'vitest'
import { InputAugmenter } from '../../../src/index.js'

describe('irregular time and missing values as inputs', () => {
  it("'last' imputes the key's last observed value and masks it; keys are apart; time is ln(1 + seconds)", () => {
    const inputs = new InputAugmenter({ features: 2, missing: 'last', timeFeature: true })
    expect(inputs.inputSize).toBe(5)
    expect(Array.from(inputs.prepare('a', [1, 2], 0))).toEqual([1, 2, 1, 1, 0])
    inputs.commit()
    expect(Array.from(inputs.prepare('a', [null, 5], 60_000))).toEqual([1, 5, 0, 1, Math.log1p(60)])
    inputs.commit()
    expect(Array.from(inputs.prepare('b', [null, null], 60_000))).toEqual([0, 0, 0, 0, 0])
    inputs.commit()
    expect(Array.from(inputs.prepare('a', [null, null], 61_000))).toEqual([1, 5, 0, 0, Math.log1p(1)])
  })

  it("'zero' imputes 0; without commit a prepared tick leaves no trace", () => {
    const inputs = new InputAugmenter({ features: 1, missing: 'zero' })
    inputs.prepare('a', [7])
    inputs.commit()
    expect(Array.from(inputs.prepare('a', [null]))).toEqual([0, 0])
    const last = new InputAugmenter({ features: 1, missing: 'last' })
    last.prepare('a', [7]) // refused later: not committed
    expect(Array.from(last.prepare('a', [null]))).toEqual([0, 0])
  })

  it('a null without the missing option, a NaN, a bad t or a wrong length are bad_input, naming the fix', () => {
    const plain = new InputAugmenter({ features: 2, timeFeature: true })
    expect(() => plain.prepare('a', [1, null])).toThrow(
      /x\[1\] is null; missing values need the missing option/,
    )
    expect(() => plain.prepare('a', [1, Number.NaN])).toThrow(/x\[1\] is NaN/)
    expect(() => plain.prepare('a', [1, 2], Number.POSITIVE_INFINITY)).toThrow(/t is Infinity/)
    expect(() => plain.prepare('a', [1])).toThrow(/x must hold 2 values/)
  })
})
