/**
 * Streaming keyword spotting: a client streams microphone-like PCM over WebSocket; the server
 * cuts it into 25 ms frames every 10 ms, computes log-mel features, and a GRU classifies every
 * frame as silence, "yes", "no", "stop" or "go", learning online with cross-entropy.
 *
 *   npx tsx examples/audio.ts        (needs espeak-ng: apt-get install espeak-ng)
 *
 * Why the server frames the audio: a microphone delivers chunks of samples whose size has
 * nothing to do with the analysis frames, and the feature settings belong with the model, so
 * the client sends raw Int16 PCM (20 ms chunks in msgpack frames) and `pcmFrames` reassembles
 * exact 25 ms / 10 ms frames on arrival, whatever the chunking.
 *
 * The speech is synthesised by espeak-ng in several voices (SPEECH_VOICES: accents, sexes,
 * speeds), each word in a few speed/pitch variants, with a little background noise; "silence"
 * utterances are that noise alone. The model trains on some voices and is tested on a voice it
 * never heard. Frame labels come from the recording session: the client says which word it
 * recorded, and the server marks a frame as that word when it is louder than -45 dBFS, else as
 * silence (the pauses around a word). The hidden state is reset at every utterance.
 *
 * Reported: frame accuracy on the unseen voice (every frame, and speech frames only) and
 * utterance accuracy by majority vote of the non-silence frames, next to chance.
 */
import { fileURLToPath } from 'node:url'
import { filter, firstValueFrom, lastValueFrom, map, Subject, toArray } from 'rxjs'
import type { FloatArray } from 'rxrnn'
import { createModel, OnlineScaler, OnlineTrainer, Rng } from 'rxrnn'
import {
  decodeFrame,
  encodeFrame,
  learn,
  recurrent,
  type WebSocketConnection,
  webSocketConnection,
} from 'rxrnn/streams'
import { WebSocketServer } from 'ws'
import { createFeatureExtractor } from './audio/features.js'
import { pcmFrames } from './audio/frames.js'
import { SPEECH_VOICES, type SpeechVoice, synthesize } from './audio/speech.js'

export const CLASSES = ['silence', 'yes', 'no', 'stop', 'go'] as const
const SILENCE = 0
const SAMPLE_RATE = 16000
/** A frame this loud (RMS, dB re full scale) or louder is speech. */
const SPEECH_DBFS = -45
const BANDS = 24

export interface AudioOptions {
  /** Voices trained on: the first n of SPEECH_VOICES other than the test voice. Default 5 (all). */
  trainVoices?: number
  /** The voice held out for testing. Default: the last of SPEECH_VOICES. */
  testVoice?: string
  /** Speed/pitch variants of each word per voice. Default 3. */
  variants?: number
  /** Passes over the training recordings. Default 4. */
  epochs?: number
  seed?: number
  log?: (line: string) => void
}

export interface AudioResult {
  testVoice: string
  trainVoices: string[]
  trainUtterances: number
  testUtterances: number
  /** On the unseen voice. */
  frameAccuracy: number
  speechFrameAccuracy: number
  utteranceAccuracy: number
  /** Always answering the test frames' most frequent class; guessing one of the classes. */
  chanceFrameAccuracy: number
  chanceUtteranceAccuracy: number
  /** Frame accuracy on the training voices in the last pass (while learning, test-then-train). */
  lastPassFrameAccuracy: number
}

/** One recording, as the client sends it. */
interface Utterance {
  id: number
  voice: string
  label: number
  pcm: Int16Array
}

/** Client → server frames. */
type ClientMessage =
  | { type: 'start'; id: number; label: number; learn: boolean }
  | { type: 'pcm'; id: number; samples: Int16Array }
  | { type: 'end'; id: number }

/** Server → client: the verdict on one utterance. */
interface UtteranceResult {
  type: 'result'
  id: number
  /** Majority vote of the frames classified as a word (silence when none was). */
  predicted: number
  frames: number
  correctFrames: number
  speechFrames: number
  correctSpeechFrames: number
  /** Frames per true class (for chance). */
  labelCounts: number[]
}

export async function main(options: AudioOptions = {}): Promise<AudioResult> {
  const { variants = 3, epochs = 4, seed = 1, log = console.log } = options
  const testVoice = SPEECH_VOICES.find((v) => v.name === options.testVoice) ?? SPEECH_VOICES.at(-1)!
  const trainVoices = SPEECH_VOICES.filter((v) => v !== testVoice).slice(0, options.trainVoices ?? 5)
  const rng = new Rng(seed)

  const started = performance.now()
  const train = await record(trainVoices, variants, rng)
  const test = await record([testVoice], variants, rng, train.length)
  log(
    `synthesised ${train.length} training utterances (${trainVoices.map((v) => v.name).join(', ')}) and ` +
      `${test.length} test utterances (${testVoice.name}) in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  )

  const server = await startRecognizer(seed)
  const microphone = webSocketConnection(server.url, { reconnect: false })
  try {
    let lastPass: UtteranceResult[] = []
    for (let epoch = 1; epoch <= epochs; epoch++) {
      lastPass = []
      const passStarted = performance.now()
      for (const u of shuffled(train, rng)) lastPass.push(await stream(microphone, u, true))
      log(
        `pass ${epoch}/${epochs}: frame accuracy while learning ${(100 * frameAccuracy(lastPass)).toFixed(1)}% ` +
          `(${((performance.now() - passStarted) / 1000).toFixed(1)} s)`,
      )
    }
    const results: UtteranceResult[] = []
    for (const u of test) results.push(await stream(microphone, u, false))

    const counts = CLASSES.map((_, c) => results.reduce((s, r) => s + r.labelCounts[c]!, 0))
    const frames = results.reduce((s, r) => s + r.frames, 0)
    const result: AudioResult = {
      testVoice: testVoice.name,
      trainVoices: trainVoices.map((v) => v.name),
      trainUtterances: train.length,
      testUtterances: test.length,
      frameAccuracy: frameAccuracy(results),
      speechFrameAccuracy:
        results.reduce((s, r) => s + r.correctSpeechFrames, 0) /
        results.reduce((s, r) => s + r.speechFrames, 0),
      utteranceAccuracy: results.filter((r, i) => r.predicted === test[i]!.label).length / results.length,
      chanceFrameAccuracy: Math.max(...counts) / frames,
      chanceUtteranceAccuracy: 1 / CLASSES.length,
      lastPassFrameAccuracy: frameAccuracy(lastPass),
    }
    const pct = (x: number) => `${(100 * x).toFixed(1)}%`
    log(`unseen voice ${testVoice.name}, ${test.length} utterances, ${frames} frames:`)
    log(
      `  frame accuracy      ${pct(result.frameAccuracy)}  ` +
        `(chance: ${pct(result.chanceFrameAccuracy)}, always "${CLASSES[counts.indexOf(Math.max(...counts))]}")`,
    )
    log(
      `  speech frames only  ${pct(result.speechFrameAccuracy)}  (chance: ${pct(1 / (CLASSES.length - 1))}, guessing a word)`,
    )
    log(
      `  utterance accuracy  ${pct(result.utteranceAccuracy)}  (chance: ${pct(result.chanceUtteranceAccuracy)})`,
    )
    for (const [i, r] of results.entries()) {
      if (r.predicted !== test[i]!.label) {
        log(`  missed: "${CLASSES[test[i]!.label]}" heard as "${CLASSES[r.predicted]}"`)
      }
    }
    return result
  } finally {
    microphone.close()
    await server.close()
  }
}

/**
 * The server: one WebSocket per microphone; per utterance, PCM chunks → frames → log-mel →
 * scaled → the GRU. Training utterances are learned from (test-then-train); test utterances
 * are only classified. When an utterance ends, the client gets the verdict.
 */
async function startRecognizer(seed: number): Promise<{ url: string; close: () => Promise<void> }> {
  const model = createModel({
    cell: 'gru',
    inputSize: BANDS,
    hiddenSize: 32,
    outputSize: CLASSES.length,
    seed,
  })
  const trainer = new OnlineTrainer(model, {
    k1: 8,
    k2: 24,
    loss: 'cross_entropy',
    optimizer: { type: 'adam', lr: 3e-3 },
    clipNorm: 1,
    diagnosticsEvery: 0, // no gradient-flow probes: nobody watches them here
  })
  const logMel = createFeatureExtractor({ sampleRate: SAMPLE_RATE, kind: 'logmel', size: BANDS })
  // Feature statistics come from the training audio only; test audio is scaled with them.
  const scaler = new OnlineScaler(BANDS)

  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise<void>((resolve) => wss.once('listening', resolve))
  wss.on('connection', (socket) => {
    let chunks: Subject<Int16Array> | undefined
    socket.on('message', (data, isBinary) => {
      const decoded = decodeFrame(data as Buffer, isBinary)
      if (!decoded.ok) return
      const message = decoded.value as ClientMessage
      if (message.type === 'pcm') chunks?.next(message.samples)
      else if (message.type === 'end') chunks?.complete()
      else if (message.type === 'start') {
        const { id, label: word, learn: training } = message
        const labels: number[] = []
        chunks = new Subject<Int16Array>()
        const features$ = chunks.pipe(
          pcmFrames({ sampleRate: SAMPLE_RATE }),
          map((frame) => {
            labels.push(dbfs(frame) >= SPEECH_DBFS ? word : SILENCE)
            return logMel(frame)
          }),
        )
        const outputs$ = training
          ? features$.pipe(
              map((x, i) => ({
                x: scaler.update(x).transform(x),
                target: labels[i]!,
                reset: i === 0, // a new utterance: zero hidden state, empty window
              })),
              learn(trainer),
              map((r) => r.prediction),
            )
          : features$.pipe(
              map((x) => scaler.transform(x)),
              recurrent(model), // a fresh hidden state per subscription, i.e. per utterance
            )
        lastValueFrom(outputs$.pipe(map(argmax), toArray())).then(
          (classes) => socket.send(encodeFrame(verdict(id, labels, classes), 'msgpack')),
          (error) => socket.close(1011, String(error).slice(0, 120)),
        )
      }
    })
  })
  const { port } = wss.address() as { port: number }
  return {
    url: `ws://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => wss.close(() => resolve())),
  }
}

/** The client side: streams one recording in 20 ms chunks, then waits for the verdict. */
async function stream(
  microphone: WebSocketConnection,
  u: Utterance,
  training: boolean,
): Promise<UtteranceResult> {
  const verdict = firstValueFrom(
    microphone.messages$.pipe(
      filter(
        (m): m is UtteranceResult =>
          (m as UtteranceResult).type === 'result' && (m as UtteranceResult).id === u.id,
      ),
    ),
  )
  const chunk = (SAMPLE_RATE * 20) / 1000
  microphone.send({ type: 'start', id: u.id, label: u.label, learn: training })
  for (let i = 0; i < u.pcm.length; i += chunk) {
    microphone.send({ type: 'pcm', id: u.id, samples: u.pcm.slice(i, i + chunk) })
  }
  microphone.send({ type: 'end', id: u.id })
  return verdict
}

/** Each word in `variants` speed/pitch variants per voice, plus as many silences, with a little noise. */
async function record(
  voices: readonly SpeechVoice[],
  variants: number,
  rng: Rng,
  firstId = 0,
): Promise<Utterance[]> {
  const jobs: { voice: SpeechVoice; label: number; speed: number; pitch: number }[] = []
  for (const voice of voices) {
    for (let v = 0; v < variants; v++) {
      // Variant 0 is the voice as it is; the others are slower/lower and faster/higher.
      const sign = v === 0 ? 0 : v % 2 === 1 ? -1 : 1
      const step = Math.ceil(v / 2)
      const speed = clamp(Math.round(voice.speed * (1 + 0.12 * sign * step)), 80, 450)
      const pitch = clamp(voice.pitch + 8 * sign * step, 0, 99)
      for (let label = 0; label < CLASSES.length; label++) jobs.push({ voice, label, speed, pitch })
    }
  }
  // espeak-ng runs as a child process: a few at a time.
  const pcm: Int16Array[] = new Array(jobs.length)
  let next = 0
  const worker = async () => {
    for (let j = next++; j < jobs.length; j = next++) {
      const { voice, label, speed, pitch } = jobs[j]!
      pcm[j] =
        label === SILENCE
          ? new Int16Array(Math.round(SAMPLE_RATE * 0.6))
          : (await synthesize(CLASSES[label]!, { voice: voice.voice, speed, pitch, sampleRate: SAMPLE_RATE }))
              .pcm
    }
  }
  await Promise.all(Array.from({ length: 6 }, worker))
  return jobs.map((job, j) => ({
    id: firstId + j,
    voice: job.voice.name,
    label: job.label,
    pcm: addNoise(pcm[j]!, rng),
  }))
}

/** Background noise at about -60 dBFS, so that silence is not digital zero. */
function addNoise(pcm: Int16Array, rng: Rng): Int16Array {
  const out = new Int16Array(pcm.length)
  for (let i = 0; i < pcm.length; i++) out[i] = clamp(Math.round(pcm[i]! + 30 * rng.normal()), -32768, 32767)
  return out
}

function verdict(id: number, labels: number[], classes: number[]): UtteranceResult {
  const votes = new Array<number>(CLASSES.length).fill(0)
  const labelCounts = new Array<number>(CLASSES.length).fill(0)
  let correctFrames = 0
  let speechFrames = 0
  let correctSpeechFrames = 0
  for (const [i, c] of classes.entries()) {
    const label = labels[i]!
    votes[c]!++
    labelCounts[label]!++
    if (c === label) correctFrames++
    if (label !== SILENCE) {
      speechFrames++
      if (c === label) correctSpeechFrames++
    }
  }
  // Majority vote among the frames heard as a word; silence only when no frame was.
  let predicted = SILENCE
  for (let c = 1; c < CLASSES.length; c++)
    if (votes[c]! > (predicted === SILENCE ? 0 : votes[predicted]!)) predicted = c
  return {
    type: 'result',
    id,
    predicted,
    frames: classes.length,
    correctFrames,
    speechFrames,
    correctSpeechFrames,
    labelCounts,
  }
}

function frameAccuracy(results: UtteranceResult[]): number {
  return results.reduce((s, r) => s + r.correctFrames, 0) / results.reduce((s, r) => s + r.frames, 0)
}

/** RMS level of a frame of samples in [-1, 1), in dB re full scale. */
function dbfs(frame: Float32Array): number {
  let sum = 0
  for (const v of frame) sum += v * v
  return 10 * Math.log10(sum / frame.length + 1e-12)
}

function argmax(y: FloatArray): number {
  let best = 0
  for (let k = 1; k < y.length; k++) if (y[k]! > y[best]!) best = k
  return best
}

function shuffled<T>(items: readonly T[], rng: Rng): T[] {
  const out = items.slice()
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v))
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main()
