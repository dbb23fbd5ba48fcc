import { clipByGlobalNorm, clipByValue } from './clip.js'
import { ClipHistory } from './clip-history.js'
import type { ModelConfig } from './config.js'
import { fitLogGain, spectralRadius } from './diagnostics.js'
import type { FloatArray, FloatArrayConstructor } from './dtype.js'
import { arrayTypeOf } from './dtype.js'
import { RxrnnError } from './errors.js'
import { HorizonTargets } from './forecasting/horizon.js'
import { LearningRateController } from './forecasting/lr-schedule.js'
import type { GradientAlgorithm, WindowLoss } from './gradients/algorithm.js'
import { createGradientAlgorithm } from './gradients/index.js'
import type { Loss } from './losses.js'
import { createLoss } from './losses.js'
import type { Model } from './model.js'
import { createModel } from './model.js'
import type { Optimizer } from './optimizers.js'
import { createOptimizer } from './optimizers.js'
import { Rng } from './rng.js'
import { decodeSnapshot, encodeSnapshot, field } from './snapshot.js'
import { forwardStack } from './stack.js'
import type { RecurrentState } from './state.js'
import type { ResolvedTrainerOptions, TrainerOptions } from './trainer-options.js'
import { resolveTrainerOptions } from './trainer-options.js'
import { exportTrainerState, restoreTrainerState } from './trainer-snapshot.js'
import { DivergenceGuard } from './update-guard.js'
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
  /**
   * Steps with a target in the loss, and steps the gradient was taken over: TBPTT's window (the
   * steps backpropagated through), or for the forward-mode algorithms the steps summed since the
   * last update (their gradient reaches back to the start of the sequence).
   */
  lossSteps: number
  windowSteps: number
  lr: number
  /** Fraction of the last 100 updates that were clipped. */
  clipRate: number
  /** Gradient norm per parameter tensor (PyTorch names), before clipping. */
  paramGradNorms: Record<string, number>
  /**
   * ‖∂L_t/∂s_{t−k}‖ (s: the top layer's state, h and for the LSTM also c; the newest step's loss) for k = 0, 1, … back through the window,
   * and the fitted slope of its logarithm per step: < 0 vanishing, > 0 exploding. TBPTT only: the
   * forward-mode algorithms keep no window to follow back.
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
 * Learns online from a stream. With the default algorithm, truncated backpropagation through
 * time, TBPTT(k1, k2): after every k1 observed steps the loss of those steps is backpropagated
 * through the last k2 steps, the gradient is clipped, and the optimizer takes one step; the
 * hidden state carries on, detached. With `algorithm: 'rtrl' | 'snap1' | 'uoro'` the gradient
 * is carried forward instead (no truncation; see the README's "Learning without truncation").
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
  /** How the gradient of an update is taken (options.algorithm). */
  readonly algorithm: GradientAlgorithm
  /** The sequence `observe` and `reset` act on. */
  readonly sequence: SequenceWindow
  /** @internal Draws dropout and zoneout masks, and UORO's random signs. */
  readonly rng: Rng
  /** @internal */
  readonly clipHistory = new ClipHistory()
  /** @internal */
  readonly guard: DivergenceGuard
  /** Multi-horizon targets (options.horizon > 1), else null: the hook that delays targets into the window. */
  readonly horizonTargets: HorizonTargets | null
  /** The learning rate per update: schedule and drift raises. */
  readonly learningRate: LearningRateController
  private readonly ArrayType: FloatArrayConstructor
  // Per-step inputs are validated into these before any state is written.
  private readonly xIn: FloatArray
  private readonly targetIn: FloatArray
  private readonly yScratch: FloatArray
  /** Where a step's layers write their activations when the window does not store them. */
  private readonly stepCaches: readonly FloatArray[]
  /** States of a step of a window outside the kernels' memory (see forwardStep). */
  private readonly stateScratch: FloatArray[]
  /** The loss of the update being taken. */
  private readonly windowLoss: WindowLoss = { loss: Number.NaN, lossSteps: 0, windowSteps: 0, scale: 0 }
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
    this.horizonTargets =
      o.horizon > 1 ? new HorizonTargets(o.horizon, c.outputSize, o.loss, o.huberDelta, this.ArrayType) : null
    this.learningRate = new LearningRateController(o.optimizer.lr, o.lrSchedule)
    // Scratch the kernels read and write lives in their memory (no staging copies).
    const alloc = (n: number) => model.kernels.alloc(n)
    this.xIn = alloc(c.inputSize)
    this.targetIn = alloc(this.loss.targetSize)
    this.yScratch = alloc(c.outputSize)
    this.stateScratch = model.layers.map(() => alloc(model.stateSize))
    this.algorithm = createGradientAlgorithm(
      o,
      model,
      this.loss,
      this.rng,
      alloc,
      () => this.clipHistory.updatesSeen,
    )
    // Forward-mode algorithms read every layer's activations after the step; TBPTT recomputes
    // them at update time when the window does not store them, so one scratch serves all layers.
    const cache = alloc(model.cell.cacheSize)
    this.stepCaches =
      this.algorithm.carriedFloats > 0
        ? model.layers.map(() => alloc(model.cell.cacheSize))
        : model.layers.map(() => cache)
    // The trainer's own window lives in the kernels' memory when there is room (one sequence,
    // stepped on every event); keyed sequences stay in ordinary arrays.
    this.sequence = this.createSequence({ storeActivations: true }, alloc)
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
    this.guard = new DivergenceGuard(o.rollback, model.params.values, this.optimizer)
  }

  /**
   * A new sequence with its own hidden state and truncation window (and, for the forward-mode
   * algorithms, its own sensitivities), learning into this trainer's model and optimizer: one per
   * key when many streams share one model. `storeActivations: false` keeps only inputs and states
   * (a few KB per key) and recomputes the window's forward pass at update time.
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
        carriedFloats: this.algorithm.carriedFloats,
      },
      this.ArrayType,
      alloc,
    )
  }

  /**
   * Everything this trainer is, as msgpack bytes: config, weights, optimizer state, hidden
   * state, TBPTT window or forward-mode sensitivities, random generator, counters, format
   * version and a checksum. `OnlineTrainer.fromSnapshot` resumes it exactly: the same next
   * events give bit-identical predictions and updates, even when taken mid-window.
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
    return exportTrainerState(this)
  }

  /** @internal */
  static fromState(body: Record<string, unknown>): OnlineTrainer {
    const isObject = (v: unknown) => v !== null && typeof v === 'object'
    const config = field<ModelConfig>(body, 'model', isObject, 'a model config')
    const options = field<TrainerOptions>(body, 'options', isObject, 'trainer options')
    const trainer = new OnlineTrainer(createModel(config), options)
    restoreTrainerState(trainer, body)
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

  /** Writes the validated step into the ring, runs the training forward pass, and lets the algorithm see it. */
  private forwardStep(seq: SequenceWindow, hasTarget: boolean): FloatArray {
    const model = this.model
    if (seq.carried.length !== this.algorithm.carriedFloats) {
      throw new RxrnnError(
        'bad_config',
        `This sequence carries ${seq.carried.length} floats for its gradient algorithm; algorithm '${this.options.algorithm}' needs ${this.algorithm.carriedFloats}. Make sequences with trainer.createSequence()`,
      )
    }
    if (seq.sinceUpdate === 0) this.drawWindowMasks(seq)
    const prev = seq.slots[seq.newest]!
    const next = (seq.newest + 1) % seq.capacity
    const slot = seq.slots[next]!
    slot.x.set(this.xIn)
    slot.hasTarget = hasTarget
    if (hasTarget) slot.target.set(this.targetIn)
    this.copyStepMasks(seq, slot)
    const store = seq.layout.storeActivations
    const caches = store ? slot.caches : this.stepCaches
    let top: FloatArray
    if (seq.placed) top = forwardStack(model.layers, slot.states, caches, slot.x, prev.states, slot.masks)
    else {
      // A window in ordinary memory (a key of a keyed stream) steps through the trainer's scratch,
      // which the kernels reach in place: one copy of each state in and out, instead of the
      // kernels staging every operand of every call.
      const states = this.stateScratch
      for (let l = 0; l < states.length; l++) states[l]!.set(prev.states[l]!)
      top = forwardStack(model.layers, states, caches, this.xIn, states, slot.masks)
      for (let l = 0; l < states.length; l++) slot.states[l]!.set(states[l]!)
    }
    const y = store ? slot.y : this.yScratch
    model.head.forward(y, top)
    seq.newest = next
    seq.observed++
    seq.sinceUpdate++
    if (seq.filled < this.options.k2) seq.filled++
    this.horizonTargets?.write(seq, hasTarget)
    this.algorithm.afterStep(seq, slot, prev, caches, y)
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

  /** One weight update: loss, zero gradients, gradient, (diagnostics), guard, clip, optimizer step, report. */
  private update(seq: SequenceWindow): UpdateReport | undefined {
    seq.sinceUpdate = 0
    const window = this.windowLoss
    if (!this.algorithm.windowLoss(seq, window)) return undefined
    const params = this.model.params
    params.zeroGrads()
    this.algorithm.gradient(seq, window)
    const report = this.measure(seq, window)
    // Diagnose before the step, so the probe's Jacobians use the weights the gradient was taken at.
    if (this.diagnosticsDue()) this.diagnose(seq, window)
    // The guard looks at the gradient as taken: clipping would hide the blow-up it is there to catch.
    const refusal = this.guard.refusal(window.loss, report.gradNorm)
    if (refusal) return this.refuse(seq, report, refusal)
    this.clip(report)
    this.guard.beforeStep()
    if (this.learningRate.engaged) {
      this.optimizer.setLearningRate(this.learningRate.rateAt(this.optimizer.t))
      report.lr = this.optimizer.config.lr
    }
    this.optimizer.step(params.values, params.grads)
    this.guard.accepted(window.loss)
    report.update = this.optimizer.t
    report.clipRate = this.clipHistory.record(report.clipped)
    return report
  }

  /** Gradient flow and spectral radii are measured on every diagnosticsEvery-th update. */
  private diagnosticsDue(): boolean {
    const every = this.options.diagnosticsEvery
    return every > 0 && (this.clipHistory.updatesSeen + 1) % every === 0
  }

  /** The report of the gradient just taken: loss, norms, and the fields the later steps fill in. */
  private measure(seq: SequenceWindow, window: WindowLoss): UpdateReport {
    const params = this.model.params
    const k = this.model.kernels
    const gradNorm = Math.sqrt(k.sumSquares(params.grads))
    const report = this.report
    const paramGradNorms = report.paramGradNorms
    for (let i = 0; i < params.specs.length; i++) {
      paramGradNorms[params.specs[i]!.name] = Math.sqrt(k.sumSquares(this.gradViews[i]!))
    }
    report.step = seq.observed
    report.update = this.optimizer.t
    report.loss = window.loss
    report.gradNorm = gradNorm
    report.clippedGradNorm = gradNorm
    report.clipped = false
    report.skipped = false
    report.reason = undefined
    report.rolledBack = false
    report.lossSteps = window.lossSteps
    report.windowSteps = window.windowSteps
    report.lr = this.optimizer.config.lr
    report.clipRate = 0
    report.gradientFlow = undefined
    report.spectralRadius = undefined
    return report
  }

  /** A refused update: weights untouched, or rolled back to the last good copy. */
  private refuse(seq: SequenceWindow, report: UpdateReport, reason: string): UpdateReport {
    report.skipped = true
    report.reason = reason
    if (this.guard.rollsBack) {
      this.guard.restoreGoodWeights()
      report.rolledBack = true
      report.reason += '; rolled back to the last good weights'
    }
    // A state that overflowed would poison every later window: start this sequence afresh.
    if (!allFinite(seq.state.data)) {
      seq.reset()
      report.reason += '; the hidden state was not finite and was reset'
    } else if (!allFinite(seq.carried)) {
      // So would sensitivities that overflowed (forward mode): the state is fine, so only they restart.
      seq.carried.fill(0)
      report.reason += '; the sensitivities were not finite and were reset'
    }
    report.clipRate = this.clipHistory.record(false)
    return report
  }

  /** clip_grad_value_, then clip_grad_norm_, as the options ask; the report gets the clipped norm. */
  private clip(report: UpdateReport): void {
    const o = this.options
    const grads = this.model.params.grads
    const k = this.model.kernels
    let norm = report.gradNorm
    if (o.clipValue !== undefined && clipByValue(grads, o.clipValue) > 0) {
      norm = Math.sqrt(k.sumSquares(grads))
      report.clipped = true
    }
    if (o.clipNorm !== undefined && clipByGlobalNorm(grads, norm, o.clipNorm, k) < 1) {
      report.clipped = true
      norm = Math.sqrt(k.sumSquares(grads))
    }
    report.clippedGradNorm = norm
  }

  /** Fills the report's gradient flow and spectral radii (in place: reused buffers, no allocation). */
  private diagnose(seq: SequenceWindow, window: WindowLoss): void {
    const report = this.report
    const flow = this.flow
    if (this.algorithm.probeGradientFlow(seq, window, flow.norms)) {
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
