import { clipByValue } from './clip.js'
import type { ModelConfig } from './config.js'
import { fitLogGain, spectralRadius } from './diagnostics.js'
import type { FloatArray, FloatArrayConstructor } from './dtype.js'
import { arrayTypeOf } from './dtype.js'
import { RxrnnError } from './errors.js'
import { HorizonTargets } from './forecasting/horizon.js'
import { LearningRateController } from './forecasting/lr-schedule.js'
import { LayerWindowGrads } from './layer.js'
import type { Loss } from './losses.js'
import { createLoss } from './losses.js'
import type { Model } from './model.js'
import { createModel } from './model.js'
import type { Optimizer } from './optimizers.js'
import { createOptimizer } from './optimizers.js'
import { Rng } from './rng.js'
import { decodeSnapshot, encodeSnapshot, field, restoreArray } from './snapshot.js'
import type { RecurrentState } from './state.js'
import type { ResolvedTrainerOptions, TrainerOptions } from './trainer-options.js'
import { resolveTrainerOptions } from './trainer-options.js'
import { copyFiniteVector } from './validate.js'
import type { Slot } from './window.js'
import { SequenceWindow } from './window.js'

/** What one weight update did, with the diagnostics of vanishing and exploding gradients. */
export interface UpdateReport {
  /** Observed steps of this sequence when the update ran (1-based: the step that triggered it). */
  step: number
  /** Updates applied by the optimizer so far (its step counter). */
  update: number
  /** Mean loss over the steps with a target among the last k1 (PyTorch's reduction='mean'). */
  loss: number
  /** Global L2 norm of all gradients before clipping. */
  gradNorm: number
  /** The norm after clipping (equal to gradNorm when nothing was clipped). */
  clippedGradNorm: number
  clipped: boolean
  /** True when the update was refused (non-finite gradient or divergence); weights and optimizer state are untouched. */
  skipped: boolean
  /** Why it was skipped, or that it rolled back. */
  reason?: string
  /** True when the divergence guard restored the last good weights. */
  rolledBack: boolean
  /** Steps with a target in the loss, and steps backpropagated through. */
  lossSteps: number
  windowSteps: number
  lr: number
  /** Fraction of the last 100 updates that were clipped. */
  clipRate: number
  /** Gradient norm per parameter tensor (PyTorch names), before clipping. */
  paramGradNorms: Record<string, number>
  /**
   * ‖∂L_t/∂s_{t−k}‖ (s: the top layer's state, h and for the LSTM also c; the newest step's loss) for k = 0, 1, … back through the window,
   * and the fitted slope of its logarithm per step: < 0 vanishing, > 0 exploding.
   */
  gradientFlow?: { norms: number[]; logGainPerStep: number }
  /** Estimated spectral radius of each layer's recurrent matrix (W_hh; the g / n block for gated cells). */
  spectralRadius?: number[]
}

/** What `observeSequence` returns: one object per trainer, reused by every call. */
export interface SequenceObservation {
  prediction: FloatArray
  update: UpdateReport | undefined
}

/** What `observe` returns. */
export interface Observation {
  /** y_t, made with the weights as they were before any update this step triggers. A copy: yours to keep. */
  prediction: FloatArray
  /** Present on the steps where an update ran. */
  update?: UpdateReport
}

/**
 * Learns online with truncated backpropagation through time, TBPTT(k1, k2): after every k1
 * observed steps the loss of those steps is backpropagated through the last k2 steps, the
 * gradient is clipped, and the optimizer takes one step; the hidden state carries on, detached.
 *
 * @example
 * import { createModel, OnlineTrainer } from 'rxrnn'
 * const model = createModel({ cell: 'lstm', inputSize: 1, hiddenSize: 32, outputSize: 1, seed: 1 })
 * const trainer = new OnlineTrainer(model, { k1: 8, k2: 16, loss: 'mse', optimizer: { type: 'adam', lr: 1e-3 }, clipNorm: 1 })
 * for (let t = 0; t < 1000; t++) {
 *   const { prediction, update } = trainer.observe([Math.sin(t / 10)], [Math.sin((t + 1) / 10)])
 *   if (update) console.log(update.step, update.loss, update.gradNorm)
 * }
 */
export class OnlineTrainer {
  readonly model: Model
  readonly options: ResolvedTrainerOptions
  readonly loss: Loss
  readonly optimizer: Optimizer
  /** The sequence `observe` and `reset` act on. */
  readonly sequence: SequenceWindow
  private readonly ArrayType: FloatArrayConstructor
  private readonly rng: Rng
  // Per-step inputs are validated into these before any state is written.
  private readonly xIn: FloatArray
  private readonly targetIn: FloatArray
  // Backward scratch.
  private readonly carry: FloatArray[]
  private readonly dOut: FloatArray[]
  private readonly dX: FloatArray
  private readonly dY: FloatArray
  private readonly yScratch: FloatArray
  private readonly cacheScratch: FloatArray
  /** States of a step of a window outside the kernels' memory (see forwardStep). */
  private readonly stateInScratch: FloatArray
  private readonly stateOutScratch: FloatArray[]
  /** Per layer: the window's gate gradients and inputs, step by step, for one product per weight matrix. */
  private readonly windowGrads: LayerWindowGrads[]
  /** Recomputed activations, when k2 > k1 or a sequence does not store its own. */
  private readonly workspace: Slot[]
  private readonly trajectory: Slot[]
  private readonly activations: Slot[]
  private readonly probeNorms: Float64Array
  /** One view per parameter tensor's gradient, made once. */
  private readonly gradViews: FloatArray[]
  private readonly result: SequenceObservation
  /** The update report of the allocation-free path, rewritten by every update. */
  private readonly report: UpdateReport
  private readonly flow: { norms: number[]; logGainPerStep: number }
  private readonly radii: number[]
  private readonly powerScratch: { v: FloatArray; next: FloatArray; zeros: FloatArray }
  /** The H×H block of each layer's W_hh whose spectral radius is reported. */
  private readonly recurrentBlocks: FloatArray[]
  // Running statistics.
  private readonly clipHistory = new Uint8Array(100)
  private updatesSeen = 0
  private lossAverage = Number.NaN
  private readonly goodParams: FloatArray | null
  private readonly goodOptimizerState: Record<string, FloatArray> | null
  private goodOptimizerT = 0
  /** Multi-horizon targets (options.horizon > 1), else null: the hook that delays targets into the window. */
  readonly horizonTargets: HorizonTargets | null
  /** The learning rate per update: schedule and drift raises. */
  readonly learningRate: LearningRateController

  constructor(model: Model, options: TrainerOptions) {
    this.model = model
    this.options = resolveTrainerOptions(options)
    const o = this.options
    const c = model.config
    this.ArrayType = arrayTypeOf(c.dtype)
    this.loss = createLoss(o.loss, c.outputSize, o.huberDelta)
    this.optimizer = createOptimizer(
      o.optimizer,
      model.params.values,
      (n) => model.kernels.alloc(n),
      model.kernels,
    )
    this.rng = new Rng(o.seed ?? c.seed + 1)
    const A = this.ArrayType
    this.horizonTargets =
      o.horizon > 1 ? new HorizonTargets(o.horizon, c.outputSize, o.loss, o.huberDelta, A) : null
    this.learningRate = new LearningRateController(o.optimizer.lr, o.lrSchedule)
    // Scratch the kernels read and write lives in their memory (no staging copies).
    const alloc = (n: number) => model.kernels.alloc(n)
    this.xIn = alloc(c.inputSize)
    this.targetIn = alloc(this.loss.targetSize)
    this.carry = model.layers.map(() => alloc(model.stateSize))
    this.dOut = model.layers.map(() => alloc(model.stateSize))
    this.dX = alloc(c.hiddenSize)
    this.dY = alloc(c.outputSize)
    this.yScratch = alloc(c.outputSize)
    this.cacheScratch = alloc(model.cell.cacheSize)
    this.stateInScratch = alloc(model.stateSize)
    this.stateOutScratch = model.layers.map(() => alloc(model.stateSize))
    // The trainer's own window and its workspace live in the kernels' memory when there is
    // room (one sequence, stepped on every event); keyed sequences stay in ordinary arrays.
    this.sequence = this.createSequence({ storeActivations: true }, alloc)
    const ws = new SequenceWindow({ ...this.sequence.layout, k2: o.k2, storeActivations: true }, A, alloc)
    this.workspace = [...ws.slots]
    this.windowGrads = model.layers.map((layer) => new LayerWindowGrads(layer, o.k2, alloc))
    this.trajectory = new Array<Slot>(o.k2)
    this.activations = new Array<Slot>(o.k2)
    this.probeNorms = new Float64Array(o.k2)
    this.gradViews = model.params.specs.map((spec) => model.params.grad(spec.name))
    this.result = { prediction: this.yScratch, update: undefined }
    this.flow = { norms: [], logGainPerStep: Number.NaN }
    this.radii = model.layers.map(() => Number.NaN)
    this.report = {
      step: 0,
      update: 0,
      loss: Number.NaN,
      gradNorm: Number.NaN,
      clippedGradNorm: Number.NaN,
      clipped: false,
      skipped: false,
      reason: undefined,
      rolledBack: false,
      lossSteps: 0,
      windowSteps: 0,
      lr: 0,
      clipRate: 0,
      paramGradNorms: Object.fromEntries(model.params.specs.map((spec) => [spec.name, Number.NaN])),
      gradientFlow: undefined,
      spectralRadius: undefined,
    }
    this.powerScratch = { v: alloc(c.hiddenSize), next: alloc(c.hiddenSize), zeros: alloc(c.hiddenSize) }
    // The block that carries h into the new content: g (rows 2H..3H) for the LSTM, n for the GRU.
    const block = c.cell === 'lstm' || c.cell === 'gru' ? 2 : 0
    const HH = c.hiddenSize * c.hiddenSize
    this.recurrentBlocks = model.layers.map((layer) => layer.wHh.subarray(block * HH, (block + 1) * HH))
    if (o.rollback) {
      this.goodParams = model.params.values.slice()
      this.goodOptimizerState = Object.fromEntries(
        Object.entries(this.optimizer.state).map(([k, v]) => [k, v.slice()]),
      )
    } else {
      this.goodParams = null
      this.goodOptimizerState = null
    }
  }

  /**
   * A new sequence with its own hidden state and truncation window, learning into this
   * trainer's model and optimizer: one per key when many streams share one model.
   * `storeActivations: false` keeps only inputs and states (a few KB per key) and recomputes
   * the window's forward pass at update time.
   */
  createSequence(
    options: { storeActivations?: boolean } = {},
    alloc?: (n: number) => FloatArray,
  ): SequenceWindow {
    const c = this.model.config
    const o = this.options
    return new SequenceWindow(
      {
        k2: o.k2,
        inputSize: c.inputSize,
        hiddenSize: c.hiddenSize,
        numLayers: c.numLayers,
        stateSize: this.model.stateSize,
        layerInputSizes: this.model.layers.map((l) => l.inputSize),
        cacheSize: this.model.cell.cacheSize,
        outputSize: c.outputSize,
        targetSize: this.loss.targetSize,
        storeActivations: options.storeActivations ?? true,
        inputDropout: o.inputDropout > 0,
        recurrentDropout: o.recurrentDropout > 0,
        zoneout: c.zoneout > 0,
      },
      this.ArrayType,
      alloc,
    )
  }

  /**
   * Everything this trainer is, as msgpack bytes: config, weights, optimizer state, hidden
   * state, TBPTT window, random generator, counters, format version and a checksum.
   * `OnlineTrainer.fromSnapshot` resumes it exactly: the same next events give bit-identical
   * predictions and updates, even when taken mid-window.
   *
   * @example
   * writeFileSync('model.rxrnn', trainer.snapshot())
   * const resumed = OnlineTrainer.fromSnapshot(readFileSync('model.rxrnn'))
   */
  snapshot(): Uint8Array {
    return encodeSnapshot('trainer', this.exportState())
  }

  /** A trainer (with its own model) from `snapshot()`'s bytes; refuses damaged or foreign bytes with RxrnnError('bad_snapshot'). */
  static fromSnapshot(bytes: Uint8Array): OnlineTrainer {
    return OnlineTrainer.fromState(decodeSnapshot(bytes, 'trainer'))
  }

  /** @internal The snapshot body (shared by the keyed trainer's snapshot). */
  exportState(): Record<string, unknown> {
    const o = this.options
    const options: TrainerOptions = {
      k1: o.k1,
      k2: o.k2,
      loss: o.loss,
      huberDelta: o.huberDelta,
      optimizer: { ...this.optimizer.config },
      diagnosticsEvery: o.diagnosticsEvery,
      dropout: { input: o.inputDropout, recurrent: o.recurrentDropout },
      ...(o.clipNorm === undefined ? {} : { clipNorm: o.clipNorm }),
      ...(o.clipValue === undefined ? {} : { clipValue: o.clipValue }),
      ...(o.seed === undefined ? {} : { seed: o.seed }),
      ...(o.rollback === undefined ? {} : { rollback: o.rollback }),
      ...(o.horizon === 1 ? {} : { horizon: o.horizon }),
      ...(o.lrSchedule === undefined ? {} : { lrSchedule: o.lrSchedule }),
    }
    return {
      model: this.model.config,
      options,
      params: this.model.params.values.slice(),
      optimizer: {
        t: this.optimizer.t,
        state: Object.fromEntries(Object.entries(this.optimizer.state).map(([k, v]) => [k, v.slice()])),
      },
      rng: this.rng.getState(),
      sequence: this.sequence.exportState(),
      clipHistory: this.clipHistory.slice(),
      updatesSeen: this.updatesSeen,
      lossAverage: this.lossAverage,
      good: this.goodParams
        ? { params: this.goodParams.slice(), state: this.goodOptimizerState, t: this.goodOptimizerT }
        : null,
    }
  }

  /** @internal */
  static fromState(body: Record<string, unknown>): OnlineTrainer {
    const isObject = (v: unknown) => v !== null && typeof v === 'object'
    const config = field<ModelConfig>(body, 'model', isObject, 'a model config')
    const options = field<TrainerOptions>(body, 'options', isObject, 'trainer options')
    const trainer = new OnlineTrainer(createModel(config), options)
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
    restoreArray(trainer.clipHistory, body.clipHistory, 'clipHistory')
    trainer.updatesSeen = field<number>(body, 'updatesSeen', Number.isInteger, 'an integer')
    trainer.lossAverage = field<number>(body, 'lossAverage', (v) => typeof v === 'number', 'a number')
    const good = body.good as { params: unknown; state: Record<string, unknown>; t: number } | null
    if (trainer.goodParams && good) {
      restoreArray(trainer.goodParams, good.params, 'good.params')
      for (const [k, v] of Object.entries(trainer.goodOptimizerState!))
        restoreArray(v, good.state?.[k], `good.${k}`)
      trainer.goodOptimizerT = good.t
    }
    return trainer
  }

  /** The hidden state after the latest step. */
  get state(): RecurrentState {
    return this.sequence.state
  }

  /**
   * One event: predicts y_t from x_t, stores the step, and every k1 steps updates the weights.
   * A step without `target` adds no loss. Throws RxrnnError ('bad_input' / 'bad_target')
   * before touching any state when x or target is malformed or not finite.
   */
  observe(x: ArrayLike<number>, target?: number | ArrayLike<number> | null): Observation {
    const { prediction, update } = this.observeSequence(this.sequence, x, target)
    return update
      ? { prediction: prediction.slice(), update: copyReport(update) }
      : { prediction: prediction.slice() }
  }

  /**
   * `observe` on any sequence, without allocating: the result object, its prediction and its
   * update report are reused by the next call (copy what you keep: `prediction.slice()`,
   * `copyReport(update)`). The keyed operators use this path.
   */
  observeSequence(
    seq: SequenceWindow,
    x: ArrayLike<number>,
    target?: number | ArrayLike<number> | null,
  ): SequenceObservation {
    return this.observeChecked(seq, this.check(x, target))
  }

  /**
   * @internal `observeSequence` for the x and target the last `check` accepted (it left them in
   * the trainer's input buffers), so a caller that must validate first does not validate twice.
   */
  observeChecked(seq: SequenceWindow, hasTarget: boolean): SequenceObservation {
    const result = this.result
    result.prediction = this.forwardStep(seq, hasTarget)
    result.update = this.updateDue(seq) ? this.update(seq) : undefined
    return result
  }

  /**
   * @internal The forward half of `observeChecked`: the step's prediction (reused), with the
   * window's update, when this step completes it, left for `updateSequence` (see
   * KeyedTrainer.observeDeferred). Run a due update before the sequence's next step.
   */
  forwardChecked(seq: SequenceWindow, hasTarget: boolean): FloatArray {
    return this.forwardStep(seq, hasTarget)
  }

  /** @internal Whether the sequence's window is complete (k1 steps since its last update). */
  updateDue(seq: SequenceWindow): boolean {
    return seq.sinceUpdate >= this.options.k1
  }

  /** @internal The sequence's due update, now; the report is reused by the next update. */
  updateSequence(seq: SequenceWindow): UpdateReport | undefined {
    return this.updateDue(seq) ? this.update(seq) : undefined
  }

  /**
   * Throws the RxrnnError `observe` would throw for this x and target, touching no state;
   * returns whether there is a target.
   */
  check(x: ArrayLike<number>, target?: number | ArrayLike<number> | null): boolean {
    copyFiniteVector(this.xIn, x, 'x', 'bad_input', 'inputSize')
    if (this.horizonTargets) return this.horizonTargets.read(target)
    const hasTarget = target !== undefined && target !== null
    if (hasTarget) {
      const problem = this.loss.readTarget(this.targetIn, target)
      if (problem) throw new RxrnnError('bad_target', problem)
    }
    return hasTarget
  }

  /** A sequence boundary: zero the hidden state and forget the window; weights and optimizer state stay. */
  reset(): void {
    this.sequence.reset()
  }

  /** Writes the validated step into the ring and runs the training forward pass. */
  private forwardStep(seq: SequenceWindow, hasTarget: boolean): FloatArray {
    const model = this.model
    if (seq.sinceUpdate === 0) this.drawWindowMasks(seq)
    const prev = seq.slots[seq.newest]!
    const next = (seq.newest + 1) % seq.capacity
    const slot = seq.slots[next]!
    slot.x.set(this.xIn)
    slot.hasTarget = hasTarget
    if (hasTarget) slot.target.set(this.targetIn)
    this.copyStepMasks(seq, slot)
    const store = seq.layout.storeActivations
    const placed = seq.placed
    // A window in ordinary memory (a key of a keyed stream) steps through the trainer's scratch,
    // which the kernels reach in place: one copy of each state in and out, instead of the
    // kernels staging every operand of every call.
    let input = placed ? slot.x : this.xIn
    for (let l = 0; l < model.layers.length; l++) {
      const cache = store ? slot.caches[l]! : this.cacheScratch
      const masks = slot.masks[l] ?? null
      if (placed) {
        model.layers[l]!.forward(slot.states[l]!, cache, input, prev.states[l]!, masks)
        input = slot.states[l]!
      } else {
        const stateIn = this.stateInScratch
        const stateOut = this.stateOutScratch[l]!
        stateIn.set(prev.states[l]!)
        model.layers[l]!.forward(stateOut, cache, input, stateIn, masks)
        slot.states[l]!.set(stateOut)
        input = stateOut
      }
    }
    const y = store ? slot.y : this.yScratch
    model.head.forward(y, input)
    seq.newest = next
    seq.observed++
    seq.sinceUpdate++
    if (seq.filled < this.options.k2) seq.filled++
    this.horizonTargets?.write(seq, hasTarget)
    if (seq.cleanState) return model.stepValidated(slot.x, seq.cleanState)
    return y
  }

  private drawWindowMasks(seq: SequenceWindow): void {
    const { inputDropout, recurrentDropout } = this.options
    for (const m of seq.windowMasks) {
      if (m?.x) this.fillDropoutMask(m.x, inputDropout)
      if (m?.h) this.fillDropoutMask(m.h, recurrentDropout)
    }
  }

  /** Inverted dropout: kept units are scaled by 1/(1 − p) so predictions need no rescaling. */
  private fillDropoutMask(mask: FloatArray, p: number): void {
    const scale = 1 / (1 - p)
    for (let i = 0; i < mask.length; i++) mask[i] = this.rng.uniform() < p ? 0 : scale
  }

  private copyStepMasks(seq: SequenceWindow, slot: Slot): void {
    const zoneout = this.model.config.zoneout
    for (let l = 0; l < slot.masks.length; l++) {
      const m = slot.masks[l]
      if (!m) continue
      const w = seq.windowMasks[l]!
      if (m.x) m.x.set(w.x!)
      if (m.h) m.h.set(w.h!)
      // Zoneout draws afresh each step: a unit keeps its old value with probability p.
      if (m.zone) for (let k = 0; k < m.zone.length; k++) m.zone[k] = this.rng.uniform() < zoneout ? 1 : 0
    }
  }

  /** Loss, backward through the window, clipping and one optimizer step. */
  private update(seq: SequenceWindow): UpdateReport | undefined {
    const o = this.options
    const k1 = o.k1
    const n = seq.filled
    seq.sinceUpdate = 0
    const trajectory = this.trajectory
    for (let i = 0; i < n; i++) trajectory[i] = seq.slotBack(n - 1 - i)
    const entering = seq.slotBack(n)
    let lossSteps = 0
    // The loss covers the last k1 steps, or fewer in a sequence's first, shortened window; with a
    // horizon H, the k1 steps that ended H − 1 steps ago (the newer ones await targets).
    const lossStart = Math.max(0, n - k1 - o.horizon + 1)
    for (let i = lossStart; i < n; i++) if (trajectory[i]!.hasTarget) lossSteps++
    if (lossSteps === 0) return undefined

    // With k2 > k1 the window's older steps ran on older weights: re-run it with the current
    // ones so the gradient is exactly that of the window's loss.
    const recompute = !seq.layout.storeActivations || (n > k1 && this.updatesSeen > 0 && o.k2 > o.k1)
    const act = this.activations
    if (recompute) this.recomputeWindow(entering, n)
    else for (let i = 0; i < n; i++) act[i] = trajectory[i]!

    const model = this.model
    const params = model.params
    params.zeroGrads()
    const scale = 1 / (lossSteps * this.loss.elementsPerStep)
    let lossSum = 0
    for (let i = lossStart; i < n; i++) {
      const s = trajectory[i]!
      if (s.hasTarget) lossSum += this.loss.lossAndGrad(this.dY, act[i]!.y, s.target, scale)
    }
    this.backward(entering, n, scale, true)
    const loss = lossSum * scale
    // Diagnose before the step, so the probe's Jacobians use the weights the gradient was taken at.
    const report = this.report
    report.gradientFlow = undefined
    report.spectralRadius = undefined
    if (o.diagnosticsEvery > 0 && (this.updatesSeen + 1) % o.diagnosticsEvery === 0)
      this.diagnose(entering, n, scale)
    return this.applyGradients(seq, loss, lossSteps, n)
  }

  /** Re-runs the forward pass of the last n steps from the entering state into the workspace. */
  private recomputeWindow(entering: Slot, n: number): void {
    const model = this.model
    const act = this.activations
    for (let i = 0; i < n; i++) {
      const src = this.trajectory[i]!
      const dst = this.workspace[i]!
      const prevStates = i === 0 ? entering.states : this.workspace[i - 1]!.states
      let input = src.x
      for (let l = 0; l < model.layers.length; l++) {
        model.layers[l]!.forward(dst.states[l]!, dst.caches[l]!, input, prevStates[l]!, src.masks[l] ?? null)
        input = dst.states[l]!
      }
      model.head.forward(dst.y, input)
      act[i] = dst
    }
  }

  /**
   * Backpropagates through the n steps of `activations`, newest first. With `accumulate` the
   * loss gradients of the last k1 steps enter at the head and parameter gradients add up;
   * without, only the newest step's loss enters and ∂L/∂h is followed back (the flow probe).
   */
  private backward(entering: Slot, n: number, scale: number, accumulate: boolean): void {
    const model = this.model
    const layers = model.layers
    const L = layers.length
    const top = L - 1
    const H = model.config.hiddenSize
    const act = this.activations
    const firstLossStep = accumulate ? n - this.options.k1 - this.options.horizon + 1 : n - 1
    for (const c of this.carry) c.fill(0)
    for (let i = n - 1; i >= 0; i--) {
      const s = act[i]!
      const src = this.trajectory[i]!
      const prevStates = i === 0 ? entering.states : act[i - 1]!.states
      const dTop = this.dOut[top]!
      dTop.set(this.carry[top]!)
      if (i >= firstLossStep && src.hasTarget) {
        this.loss.lossAndGrad(this.dY, s.y, src.target, scale)
        if (accumulate) model.head.backward(dTop, this.dY, s.states[top]!)
        else headBackwardInput(dTop, model.head.weight, this.dY, model.config.outputSize, H)
      }
      if (!accumulate) {
        let sq = 0
        for (let k = 0; k < dTop.length; k++) sq += dTop[k]! * dTop[k]!
        this.probeNorms[n - 1 - i] = Math.sqrt(sq)
      }
      for (let l = top; l >= 0; l--) {
        const x = l === 0 ? src.x : s.states[l - 1]!
        const dX = l > 0 ? this.dX : null
        layers[l]!.backward(
          dX,
          this.carry[l]!,
          this.dOut[l]!,
          x,
          prevStates[l]!,
          s.caches[l]!,
          src.masks[l] ?? null,
          accumulate ? this.windowGrads[l]! : null,
          i,
        )
        if (l > 0) {
          const below = this.dOut[l - 1]!
          below.set(this.carry[l - 1]!)
          for (let k = 0; k < H; k++) below[k] = below[k]! + this.dX[k]!
        }
      }
    }
    if (accumulate) for (let l = 0; l < L; l++) layers[l]!.accumulateWindow(this.windowGrads[l]!, n)
  }

  private applyGradients(seq: SequenceWindow, loss: number, lossSteps: number, n: number): UpdateReport {
    const o = this.options
    const params = this.model.params
    const grads = params.grads
    const k = this.model.kernels
    const gradNorm = Math.sqrt(k.sumSquares(grads))
    const report = this.report
    const paramGradNorms = report.paramGradNorms
    for (let i = 0; i < params.specs.length; i++) {
      paramGradNorms[params.specs[i]!.name] = Math.sqrt(k.sumSquares(this.gradViews[i]!))
    }
    report.step = seq.observed
    report.update = this.optimizer.t
    report.loss = loss
    report.gradNorm = gradNorm
    report.clippedGradNorm = gradNorm
    report.clipped = false
    report.skipped = false
    report.reason = undefined
    report.rolledBack = false
    report.lossSteps = lossSteps
    report.windowSteps = n
    report.lr = this.optimizer.config.lr
    report.clipRate = 0
    const diverged = this.divergence(loss, gradNorm)
    if (diverged) {
      report.skipped = true
      report.reason = diverged
      // Weights that already make the loss blow up are not trusted either: back to the last good copy.
      if (o.rollback) {
        this.restoreGoodWeights()
        report.rolledBack = true
        report.reason += '; rolled back to the last good weights'
      }
      // A state that overflowed would poison every later window: start this sequence afresh.
      if (!allFinite(seq.state.data)) {
        seq.reset()
        report.reason += '; the hidden state was not finite and was reset'
      }
      this.recordClip(report, false)
      return report
    }
    let norm = gradNorm
    if (o.clipValue !== undefined && clipByValue(grads, o.clipValue) > 0) {
      norm = Math.sqrt(k.sumSquares(grads))
      report.clipped = true
    }
    // clip_grad_norm_: scale by clipNorm / (norm + 1e-6) when that is below 1.
    const factor = o.clipNorm === undefined ? 1 : o.clipNorm / (norm + 1e-6)
    if (factor < 1) {
      k.scale(grads, factor)
      report.clipped = true
      norm = Math.sqrt(k.sumSquares(grads))
    }
    report.clippedGradNorm = norm
    // The good copy is the weights whose loss was just accepted, saved before the step: weights
    // saved after it are vouched for by no loss yet, and rolling back to them would undo nothing.
    if (o.rollback && this.optimizer.t % o.rollback.every === 0) this.saveGoodWeights()
    if (this.learningRate.engaged) this.optimizer.setLearningRate(this.learningRate.rateAt(this.optimizer.t))
    report.lr = this.optimizer.config.lr
    this.optimizer.step(params.values, grads)
    report.update = this.optimizer.t
    this.lossAverage = Number.isNaN(this.lossAverage) ? loss : 0.9 * this.lossAverage + 0.1 * loss
    this.recordClip(report, report.clipped)
    return report
  }

  /** Why this update must not be applied, or null. */
  private divergence(loss: number, gradNorm: number): string | null {
    if (!Number.isFinite(gradNorm))
      return `non-finite gradient norm (${gradNorm}); update skipped, weights unchanged`
    if (!Number.isFinite(loss)) return `non-finite loss (${loss}); update skipped, weights unchanged`
    const rb = this.options.rollback
    if (rb && this.lossAverage > 0 && loss > rb.lossFactor * this.lossAverage) {
      return `loss ${loss.toPrecision(4)} is over ${rb.lossFactor}× the running loss ${this.lossAverage.toPrecision(4)}: diverging`
    }
    return null
  }

  private saveGoodWeights(): void {
    this.goodParams!.set(this.model.params.values)
    for (const [k, v] of Object.entries(this.optimizer.state)) this.goodOptimizerState![k]!.set(v)
    this.goodOptimizerT = this.optimizer.t
  }

  private restoreGoodWeights(): void {
    this.model.params.values.set(this.goodParams!)
    for (const [k, v] of Object.entries(this.optimizer.state)) v.set(this.goodOptimizerState![k]!)
    this.optimizer.t = this.goodOptimizerT
  }

  private recordClip(report: UpdateReport, clipped: boolean): void {
    this.clipHistory[this.updatesSeen % this.clipHistory.length] = clipped ? 1 : 0
    this.updatesSeen++
    const seen = Math.min(this.updatesSeen, this.clipHistory.length)
    let sum = 0
    for (let i = 0; i < seen; i++) sum += this.clipHistory[i]!
    report.clipRate = sum / seen
  }

  /** Gradient flow of the newest step's loss back through the window, and spectral radii. */
  /** Fills the report's gradient flow and spectral radii (in place: reused buffers, no allocation). */
  private diagnose(entering: Slot, n: number, scale: number): void {
    const report = this.report
    // The newest step whose loss is complete: with a horizon H, the one H − 1 steps back.
    const m = n - this.options.horizon + 1
    const newest = m > 0 ? this.trajectory[m - 1]! : undefined
    if (newest?.hasTarget) {
      this.probeNorms.fill(0)
      this.backward(entering, m, scale, false)
      const flow = this.flow
      flow.norms.length = m
      for (let i = 0; i < m; i++) flow.norms[i] = this.probeNorms[i]!
      flow.logGainPerStep = fitLogGain(flow.norms)
      report.gradientFlow = flow
    }
    const H = this.model.config.hiddenSize
    const radii = this.radii
    for (let l = 0; l < radii.length; l++) {
      radii[l] = spectralRadius(this.recurrentBlocks[l]!, H, this.model.kernels, this.powerScratch)
    }
    report.spectralRadius = radii
  }
}

function allFinite(values: FloatArray): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i]!)) return false
  return true
}

/** A deep copy of an update report, for keeping one from the allocation-free path. */
export function copyReport(report: UpdateReport): UpdateReport {
  const copy: UpdateReport = { ...report, paramGradNorms: { ...report.paramGradNorms } }
  if (report.gradientFlow) {
    copy.gradientFlow = {
      norms: report.gradientFlow.norms.slice(),
      logGainPerStep: report.gradientFlow.logGainPerStep,
    }
  } else delete copy.gradientFlow
  if (report.spectralRadius) copy.spectralRadius = report.spectralRadius.slice()
  else delete copy.spectralRadius
  if (report.reason === undefined) delete copy.reason
  return copy
}

/** dH[0:H] += Wᵀ·dY without touching the head's gradients. */
function headBackwardInput(
  dH: FloatArray,
  w: FloatArray,
  dY: FloatArray,
  outputSize: number,
  H: number,
): void {
  for (let o = 0; o < outputSize; o++) {
    const d = dY[o]!
    for (let k = 0; k < H; k++) dH[k] = dH[k]! + w[o * H + k]! * d
  }
}
