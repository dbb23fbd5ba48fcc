import { readFileSync } from 'node:fs'

/** The PyTorch reference vectors in test/fixtures/pytorch (its README says how they were made). */
export const referenceDir = new URL('../fixtures/pytorch/', import.meta.url)

export interface ReferenceCase {
  name: string
  kind: 'forward' | 'train'
  cell: 'rnn_tanh' | 'rnn_relu' | 'lstm' | 'gru'
  inputSize: number
  hiddenSize: number
  numLayers: number
  outputSize: number
  weights: string
  params?: Record<string, number[] | number[][]>
  initParams?: Record<string, number[] | number[][]>
  x: number[][]
  y?: number[][]
  target?: number[][] | number[]
  final: { h: number[][]; c?: number[][] }
  loss?: 'mse' | 'cross_entropy' | 'bce' | 'huber'
  k1?: number
  k2?: number
  optimizer?: 'sgd' | 'adam'
  lr?: number
  clipNorm?: number
  predictions?: number[][]
  updates?: { step: number; loss: number; gradNorm: number; clipped: boolean }[]
  firstGrads?: Record<string, number[] | number[][]>
  finalParams?: Record<string, number[] | number[][]>
}

export function loadReferenceCases(): ReferenceCase[] {
  const json = JSON.parse(readFileSync(new URL('cases.json', referenceDir), 'utf8')) as {
    cases: ReferenceCase[]
  }
  return json.cases
}

export function loadReferenceWeights(c: ReferenceCase): Uint8Array {
  return new Uint8Array(readFileSync(new URL(c.weights, referenceDir)))
}

/** max |a − b| / max(1, |b|) over two nested arrays. */
export function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Number.POSITIVE_INFINITY
  let worst = 0
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!
    worst = Math.max(worst, Math.abs(actual[i]! - e) / Math.max(1, Math.abs(e)))
  }
  return worst
}

export function flat(nested: number[] | number[][]): number[] {
  return (nested as (number | number[])[]).flat()
}
