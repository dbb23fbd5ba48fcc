import { createRequire } from 'node:module'
import type MeydaModule from 'meyda'
import { defer, map, type OperatorFunction } from 'rxjs'
import { RxrnnError } from '../../src/errors.js'
import { hannWindow } from './frames.js'

/** Options for {@link audioFeatures} and {@link createFeatureExtractor}. */
export interface AudioFeaturesOptions {
  /** Samples per second of the frames, e.g. 16000. */
  sampleRate: number
  /**
   * `'logmel'`: `size` log mel-band energies. `'mfcc'`: the first `size` mel-frequency cepstral
   * coefficients (DCT-II of the log mel energies).
   */
  kind: 'mfcc' | 'logmel'
  /** Values per frame: mel bands for `'logmel'`, coefficients (1 to 40) for `'mfcc'`. */
  size: number
  /** Mel bands behind the MFCC (`'mfcc'` only); default `max(26, size)`, at least `size`. */
  melBands?: number
  /**
   * `'hann'` (default) applies a periodic Hann window over the frame's own length before
   * zero-padding; use `'none'` when the frames are already windowed, e.g. by
   * `pcmFrames({ window: 'hann' })`.
   */
  window?: 'hann' | 'none'
}

/**
 * Creates a function that turns one PCM frame (samples in [-1, 1]) into a Float32Array of
 * `size` features, with meyda: the frame is windowed, zero-padded to the next power of two (400
 * samples → 512) and Fourier-transformed; triangular mel filters spaced evenly on the mel scale
 * `1125 ln(1 + f / 700)` from 0 Hz to `sampleRate / 2` weight the power spectrum |X|² (unnormalised
 * FFT) into band energies E. The log mel energy is meyda's `ln(1 + E)`: silence gives 0, never
 * `-Infinity` or NaN, and loud bands behave like `ln E`. MFCCs are meyda's unnormalised DCT-II
 * (scale 2) of those log energies. Every frame must have the same length. Output arrays are
 * fresh; the caller may keep them.
 *
 * meyda is a shared, mutable singleton; the extractor sets its fields before every call and
 * drops its cached filter banks when another configuration was used last, so extractors with
 * different options can be interleaved.
 *
 * @throws RxrnnError `bad_config` for bad options or when meyda is not installed; `bad_input`
 * for a frame of another length or holding non-finite samples.
 *
 * @example
 * const mfcc = createFeatureExtractor({ sampleRate: 16000, kind: 'mfcc', size: 13 })
 * const coefficients = mfcc(frame) // Float32Array(13)
 */
export function createFeatureExtractor(options: AudioFeaturesOptions): (frame: Float32Array) => Float32Array {
  const { sampleRate, kind, size } = options
  const melBands = kind === 'logmel' ? size : (options.melBands ?? Math.max(26, size))
  checkOptions(options, melBands)
  const meyda = loadMeyda()
  let padded: Float32Array | undefined
  let window: Float32Array | undefined
  let frameLength = 0
  const feature = kind === 'mfcc' ? 'mfcc' : 'melBands'
  const key = `${sampleRate}/${melBands}/${size}/`
  return (frame) => {
    if (padded === undefined || window === undefined) {
      if (frame.length < 2) {
        throw new RxrnnError('bad_input', `audio frames need at least 2 samples, got ${frame.length}`)
      }
      frameLength = frame.length
      padded = new Float32Array(nextPowerOfTwo(frameLength))
      window = options.window === 'none' ? new Float32Array(frameLength).fill(1) : hannWindow(frameLength)
    }
    if (frame.length !== frameLength) {
      throw new RxrnnError(
        'bad_input',
        `audio frame has ${frame.length} samples but earlier frames had ${frameLength}; frame the signal with one pcmFrames() setting per extractor`,
      )
    }
    for (let n = 0; n < frameLength; n++) padded[n] = frame[n]! * window[n]!
    configure(meyda, `${key}${padded.length}`, {
      bufferSize: padded.length,
      sampleRate,
      melBands,
      numberOfMFCCCoefficients: kind === 'mfcc' ? size : Math.min(size, 13),
      windowingFunction: 'rect',
    })
    const values = meyda.extract(feature, padded) as unknown as ArrayLike<number>
    const out = new Float32Array(size)
    for (let k = 0; k < size; k++) {
      const v = values[k]!
      if (!Number.isFinite(v)) {
        throw new RxrnnError(
          'bad_input',
          `audio frame gave a non-finite ${kind} value; the frame holds NaN or Infinity samples: check the PCM source`,
        )
      }
      out[k] = v
    }
    return out
  }
}

/**
 * RxJS operator mapping each PCM frame (as from `pcmFrames`) to `size` log-mel energies or
 * MFCCs, as {@link createFeatureExtractor} describes.
 *
 * @example
 * pcm$.pipe(
 *   pcmFrames({ sampleRate: 16000 }),
 *   audioFeatures({ sampleRate: 16000, kind: 'logmel', size: 40 }),
 * ).subscribe((bands) => console.log(bands)) // Float32Array(40) every 10 ms of audio
 */
export function audioFeatures(options: AudioFeaturesOptions): OperatorFunction<Float32Array, Float32Array> {
  createFeatureExtractor(options) // fails here, at pipe time, on bad options or a missing meyda
  // One extractor per subscription, since each caches its frame length and buffers.
  return (source) => defer(() => source.pipe(map(createFeatureExtractor(options))))
}

/**
 * The smallest power of two ≥ `n` (meyda's FFT takes power-of-two buffers).
 *
 * @example
 * nextPowerOfTwo(400) // 512
 */
export function nextPowerOfTwo(n: number): number {
  let p = 1
  while (p < n) p *= 2
  return p
}

type Meyda = typeof MeydaModule.default

interface MeydaConfig {
  bufferSize: number
  sampleRate: number
  melBands: number
  numberOfMFCCCoefficients: number
  windowingFunction: string
}

let meydaInstance: Meyda | undefined
let lastConfigKey: string | undefined

function loadMeyda(): Meyda {
  if (meydaInstance !== undefined) return meydaInstance
  let loaded: Meyda & { default?: Meyda }
  try {
    // meyda ships CommonJS for Node (module.exports = Meyda); require avoids interop guesswork.
    loaded = createRequire(import.meta.url)('meyda')
  } catch (e) {
    throw new RxrnnError(
      'bad_config',
      `Audio features need the meyda package, which could not be loaded (${(e as Error).message}); install it with: npm install meyda@^5.6`,
    )
  }
  meydaInstance = loaded.default ?? loaded
  return meydaInstance
}

function configure(meyda: Meyda, key: string, config: MeydaConfig): void {
  Object.assign(meyda, config)
  if (key !== lastConfigKey) {
    // meyda rebuilds its mel filter bank only when the band count changes, not the buffer size
    // or sample rate: clear its caches so that the next extract rebuilds them all.
    const caches = meyda as unknown as Record<string, unknown>
    caches.melFilterBank = undefined
    caches.barkScale = undefined
    caches.chromaFilterBank = undefined
    lastConfigKey = key
  }
}

function checkOptions(options: AudioFeaturesOptions, melBands: number): void {
  const { sampleRate, kind, size } = options
  const problems: string[] = []
  if (!(Number.isFinite(sampleRate) && sampleRate > 0)) {
    problems.push(`sampleRate must be a positive number, got ${sampleRate}`)
  }
  if (kind !== 'mfcc' && kind !== 'logmel')
    problems.push(`kind must be 'mfcc' or 'logmel', got ${String(kind)}`)
  const maxSize = kind === 'mfcc' ? 40 : 256
  if (!(Number.isInteger(size) && size >= 1 && size <= maxSize)) {
    problems.push(`size must be an integer from 1 to ${maxSize} for ${kind}, got ${size}`)
  }
  if (kind === 'mfcc' && !(Number.isInteger(melBands) && melBands >= size && melBands <= 256)) {
    problems.push(`melBands must be an integer from size (${size}) to 256, got ${melBands}`)
  }
  if (options.window !== undefined && options.window !== 'hann' && options.window !== 'none') {
    problems.push(`window must be 'hann' or 'none', got ${String(options.window)}`)
  }
  if (problems.length > 0) {
    throw new RxrnnError(
      'bad_config',
      problems.length === 1 ? `Bad audio feature options: ${problems[0]}` : 'Bad audio feature options',
      problems,
    )
  }
}
