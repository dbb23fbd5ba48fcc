import { RxrnnError } from './errors.js'
import { isForwardMode } from './gradients/algorithm.js'
import { field, restoreArray } from './snapshot.js'
import type { OnlineTrainer } from './trainer.js'
import type { TrainerOptions } from './trainer-options.js'

/**
 * The body of a trainer's snapshot: model config, options, weights, optimizer state, random
 * generator, the sequence (window, state, sensitivities), clip history and the divergence guard.
 */
export function exportTrainerState(trainer: OnlineTrainer): Record<string, unknown> {
  const o = trainer.options
  const forwardMode = isForwardMode(o.algorithm)
  const options: TrainerOptions = {
    ...(o.algorithm === 'tbptt' ? {} : { algorithm: o.algorithm }),
    k1: o.k1,
    ...(forwardMode ? {} : { k2: o.k2 }),
    ...(o.algorithm === 'rtrl' ? { rtrlBudget: { ...o.rtrlBudget } } : {}),
    loss: o.loss,
    huberDelta: o.huberDelta,
    // While a schedule or a drift raise sets the rate at each update, the base rate is the setting.
    optimizer: {
      ...trainer.optimizer.config,
      ...(trainer.learningRate.engaged ? { lr: trainer.learningRate.base } : {}),
    },
    diagnosticsEvery: o.diagnosticsEvery,
    ...(forwardMode ? {} : { dropout: { input: o.inputDropout, recurrent: o.recurrentDropout } }),
    ...(o.clipNorm === undefined ? {} : { clipNorm: o.clipNorm }),
    ...(o.clipValue === undefined ? {} : { clipValue: o.clipValue }),
    ...(o.seed === undefined ? {} : { seed: o.seed }),
    ...(o.rollback === undefined ? {} : { rollback: o.rollback }),
    ...(o.horizon === 1 ? {} : { horizon: o.horizon }),
    ...(o.lrSchedule === undefined ? {} : { lrSchedule: o.lrSchedule }),
  }
  return {
    model: trainer.model.config,
    options,
    params: trainer.model.params.values.slice(),
    optimizer: {
      t: trainer.optimizer.t,
      state: Object.fromEntries(Object.entries(trainer.optimizer.state).map(([k, v]) => [k, v.slice()])),
    },
    rng: trainer.rng.getState(),
    sequence: trainer.sequence.exportState(),
    clipHistory: trainer.clipHistory.recent.slice(),
    updatesSeen: trainer.clipHistory.updatesSeen,
    // A drift response's raise of the learning rate still in force.
    ...(trainer.learningRate.raiseLeft > 0 ? { lrRaise: trainer.learningRate.exportState() } : {}),
    ...trainer.guard.exportState(),
  }
}

/** Restores `exportTrainerState`'s body into a trainer made from its model config and options. */
export function restoreTrainerState(trainer: OnlineTrainer, body: Record<string, unknown>): void {
  const isObject = (v: unknown) => v !== null && typeof v === 'object'
  restoreArray(trainer.model.params.values, body.params, 'params')
  const opt = field<{ t: unknown; state: Record<string, unknown> }>(
    body,
    'optimizer',
    isObject,
    'optimizer state',
  )
  if (typeof opt.t !== 'number' || !Number.isInteger(opt.t) || opt.t < 0 || !isObject(opt.state)) {
    throw new RxrnnError('bad_snapshot', 'Cannot restore this snapshot: optimizer state is malformed')
  }
  for (const [k, v] of Object.entries(trainer.optimizer.state))
    restoreArray(v, opt.state[k], `optimizer.${k}`)
  trainer.optimizer.t = opt.t
  const rng = field<number[]>(body, 'rng', (v) => Array.isArray(v) && v.length === 5, 'a generator state')
  trainer.rng.setState(rng)
  trainer.sequence.importState(field(body, 'sequence', isObject, 'a window'))
  restoreArray(trainer.clipHistory.recent, body.clipHistory, 'clipHistory')
  trainer.clipHistory.updatesSeen = field<number>(body, 'updatesSeen', Number.isInteger, 'an integer')
  trainer.guard.importState(body)
  trainer.learningRate.importState(body.lrRaise ?? null)
}
