/**
 * The browser example: an LSTM learns online, in the page, where the pointer goes next.
 *
 *   npm run example:browser        # bundles this file and serves the page on 127.0.0.1
 *
 * Every animation frame turns the pointer's position into a step (its movement since the last
 * frame, scaled, and where it is on the canvas). The model reads them and predicts how the next one differs from it
 * (the pointer's acceleration): `learn` predicts before the next movement is seen
 * (test-then-train) and learns from it with TBPTT. Predicting the change, not the movement, makes
 * "it keeps moving as it just did" (persistence) the model's zero, which it must then beat. The prediction is drawn ahead of the pointer, and the header shows
 * the prequential error against persistence ("it keeps moving as it just did"). Leave the pointer
 * still and an autopilot traces a Lissajous curve, so the page learns something at once.
 *
 * Nothing here is Node: `rxrnn` and `rxrnn/streams` bundle for the browser as they are.
 */
import { animationFrames, Subject } from 'rxjs'
import { createModel } from 'rxrnn'
import { learn } from 'rxrnn/streams'

/** Pixels of movement per unit of the model's input: keeps inputs near [-1, 1]. */
const SCALE = 12
/** The change of movement is small: scaled up so the model's targets are near [-1, 1] too. */
const ACCELERATION_SCALE = 20
/** Frames without pointer movement before the autopilot takes over. */
const IDLE_FRAMES = 90

const params = new URLSearchParams(location.search)
/** Steps per animation frame (the test raises it to learn quickly). */
const stepsPerFrame = Math.max(1, Number(params.get('steps') ?? 1))

const canvas = document.getElementById('board') as HTMLCanvasElement
const stats = document.getElementById('stats') as HTMLElement
const context = canvas.getContext('2d') as CanvasRenderingContext2D

const model = createModel({ cell: 'lstm', inputSize: 4, hiddenSize: 16, outputSize: 2, seed: 1 })

interface Step {
  /** The movement that just happened, and where the pointer is (canvas in [-1, 1]²). */
  x: [number, number, number, number]
  /** How the next movement differs from it. */
  target: [number, number]
  /** The next movement itself, and where the pointer was before it. */
  next: [number, number]
  position: [number, number]
}

/** The pointer, or the autopilot when the pointer rests. */
const pointer = { x: 0, y: 0, lastMove: -Infinity }
canvas.addEventListener('pointermove', (event) => {
  pointer.x = event.offsetX
  pointer.y = event.offsetY
  pointer.lastMove = tick
})

let tick = 0
let previous: [number, number] = [0, 0]
let previousMove: [number, number] = [0, 0]

function autopilot(t: number): [number, number] {
  const w = canvas.clientWidth
  const h = canvas.clientHeight
  return [w / 2 + 0.35 * w * Math.sin(t / 37), h / 2 + 0.35 * h * Math.sin(t / 23 + 0.5)]
}

/** One step: the movement that just happened is the target of the previous step's input. */
function nextStep(): Step {
  tick++
  const position: [number, number] =
    tick - pointer.lastMove < IDLE_FRAMES ? [pointer.x, pointer.y] : autopilot(tick)
  const move: [number, number] = [(position[0] - previous[0]) / SCALE, (position[1] - previous[1]) / SCALE]
  const step: Step = {
    x: [
      previousMove[0],
      previousMove[1],
      (2 * previous[0]) / canvas.clientWidth - 1,
      (2 * previous[1]) / canvas.clientHeight - 1,
    ],
    target: [
      (move[0] - previousMove[0]) * ACCELERATION_SCALE,
      (move[1] - previousMove[1]) * ACCELERATION_SCALE,
    ],
    next: move,
    position: previous,
  }
  previous = position
  previousMove = move
  return step
}

const trail: [number, number][] = []
let predicted: [number, number] = [0, 0]
/** Squared errors of the model and of persistence, over the latest WINDOW steps. */
const WINDOW = 300
const recent = { model: new Float64Array(WINDOW), persistence: new Float64Array(WINDOW), n: 0 }
const state = { steps: 0, updates: 0, error: Number.NaN, persistence: Number.NaN }
// Read by the example's browser test (test/examples/browser.test.ts).
;(window as unknown as { rxrnnExample: typeof state }).rxrnnExample = state

/** The step being learned: `learn` answers each event synchronously, in order. */
let current: Step | undefined
const steps$ = new Subject<Step>()

steps$
  .pipe(learn(model, { k1: 4, k2: 16, loss: 'mse', optimizer: { type: 'adam', lr: 0.003 }, clipNorm: 1 }))
  .subscribe((result) => {
    const step = current
    if (!step) return
    const px = step.x[0] + (result.prediction[0] ?? 0) / ACCELERATION_SCALE
    const py = step.x[1] + (result.prediction[1] ?? 0) / ACCELERATION_SCALE
    const slot = recent.n++ % WINDOW
    recent.model[slot] = (px - step.next[0]) ** 2 + (py - step.next[1]) ** 2
    recent.persistence[slot] = (step.x[0] - step.next[0]) ** 2 + (step.x[1] - step.next[1]) ** 2
    predicted = [step.position[0] + px * SCALE, step.position[1] + py * SCALE]
    state.steps++
    if (result.update) state.updates++
  })

function draw(): void {
  const ratio = window.devicePixelRatio || 1
  if (canvas.width !== canvas.clientWidth * ratio) {
    canvas.width = canvas.clientWidth * ratio
    canvas.height = canvas.clientHeight * ratio
  }
  context.setTransform(ratio, 0, 0, ratio, 0, 0)
  context.clearRect(0, 0, canvas.clientWidth, canvas.clientHeight)
  context.strokeStyle = '#88c0d0'
  context.beginPath()
  for (const [x, y] of trail) context.lineTo(x, y)
  context.stroke()
  if (trail.length > 0) {
    context.fillStyle = '#ebcb8b'
    context.beginPath()
    context.arc(predicted[0], predicted[1], 5, 0, 2 * Math.PI)
    context.fill()
  }
}

const mean = (values: Float64Array) => values.reduce((a, b) => a + b, 0) / Math.min(WINDOW, recent.n)

animationFrames().subscribe(() => {
  for (let i = 0; i < stepsPerFrame; i++) {
    current = nextStep()
    trail.push(current.position)
    if (trail.length > 200) trail.shift()
    // The first step jumps from the origin: not a movement worth learning.
    if (tick > 2) steps$.next(current)
  }
  if (recent.n >= WINDOW) {
    state.error = Math.sqrt(mean(recent.model))
    state.persistence = Math.sqrt(mean(recent.persistence))
    stats.textContent =
      `${state.steps} steps, ${state.updates} updates · RMSE of the last ${WINDOW} steps: ` +
      `model ${state.error.toFixed(3)}, persistence ${state.persistence.toFixed(3)} ` +
      `(${((100 * state.error) / state.persistence).toFixed(0)} %)`
  }
  draw()
})
