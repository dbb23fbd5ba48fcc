import type { CellKind } from '../config.js'
import type { Cell } from './cell.js'
import { gruCell } from './gru.js'
import { lstmCell } from './lstm.js'
import { rnnCell } from './rnn.js'

export type { Cell } from './cell.js'

export function createCell(kind: CellKind, hiddenSize: number): Cell {
  switch (kind) {
    case 'rnn_tanh':
      return rnnCell(hiddenSize, 'tanh')
    case 'rnn_relu':
      return rnnCell(hiddenSize, 'relu')
    case 'lstm':
      return lstmCell(hiddenSize)
    case 'gru':
      return gruCell(hiddenSize)
  }
}
