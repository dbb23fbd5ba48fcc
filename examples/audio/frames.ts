import { Observable, type OperatorFunction } from 'rxjs'
import { RxrnnError } from '../../src/errors.js'

/** Options for {@link pcmFrames} and {@link frameSignal}. */
export interface PcmFramesOptions {
  /** Samples per second of the incoming PCM, e.g. 16000. */
  sampleRate: number
  /** Frame length in milliseconds; default 25. */
  frameMs?: number
  /** Hop (distance between frame starts) in milliseconds; default 10. */
  hopMs?: number
  /**
   * `'hann'` multiplies each frame by a periodic Hann window (see {@link hannWindow});
   * `'none'` (default) leaves frames rectangular, e.g. for {@link audioFeatures}, which windows
   * frames itself.
   */
  window?: 'none' | 'hann'
}

/** Frame and hop lengths in samples. */
export interface FrameSizes {
  frameLength: number
  hopLength: number
}

/**
 * Frame and hop lengths in samples: `round(sampleRate * ms / 1000)`, so 16 kHz gives 400 and
 * 160, and 22.05 kHz gives 551 and 221 (rounded from 551.25 and 220.5).
 *
 * @throws RxrnnError `bad_config` when a value is not positive or a length rounds to zero.
 *
 * @example
 * frameSizes({ sampleRate: 16000 }) // { frameLength: 400, hopLength: 160 }
 */
export function frameSizes(options: PcmFramesOptions): FrameSizes {
  const { sampleRate, frameMs = 25, hopMs = 10 } = options
  const problems: string[] = []
  for (const [name, value] of [
    ['sampleRate', sampleRate],
    ['frameMs', frameMs],
    ['hopMs', hopMs],
  ] as const) {
    if (!(Number.isFinite(value) && value > 0))
      problems.push(`${name} must be a positive number, got ${value}`)
  }
  const frameLength = Math.round((sampleRate * frameMs) / 1000)
  const hopLength = Math.round((sampleRate * hopMs) / 1000)
  if (problems.length === 0 && (frameLength < 1 || hopLength < 1)) {
    problems.push(`frameMs and hopMs must each span at least one sample at ${sampleRate} Hz`)
  }
  if (problems.length > 0) {
    throw new RxrnnError(
      'bad_config',
      problems.length === 1 ? `Bad audio framing options: ${problems[0]}` : 'Bad audio framing options',
      problems,
    )
  }
  return { frameLength, hopLength }
}

/**
 * The number of whole frames in `sampleCount` samples: `1 + floor((n - frameLength) / hop)`,
 * or 0 when there are fewer samples than one frame. Trailing samples that do not fill a frame
 * are not emitted.
 *
 * @example
 * frameCount(16000, { frameLength: 400, hopLength: 160 }) // 98
 */
export function frameCount(sampleCount: number, sizes: FrameSizes): number {
  if (sampleCount < sizes.frameLength) return 0
  return 1 + Math.floor((sampleCount - sizes.frameLength) / sizes.hopLength)
}

/**
 * A periodic Hann window of `length` samples, `0.5 - 0.5 cos(2πn / length)`, the usual window
 * for short-time spectra (it overlap-adds to a constant at hops of `length / 2`).
 *
 * @example
 * const w = hannWindow(400) // w[0] === 0, w[200] === 1
 */
export function hannWindow(length: number): Float32Array {
  const w = new Float32Array(length)
  for (let n = 0; n < length; n++) w[n] = 0.5 - 0.5 * Math.cos((2 * Math.PI * n) / length)
  return w
}

/**
 * RxJS operator that cuts a stream of PCM chunks of any sizes (as a microphone or a socket
 * delivers them) into overlapping frames, `frameMs` long every `hopMs` (25 ms every 10 ms by
 * default: 400 samples every 160 at 16 kHz). Leftover samples are carried across chunks, so
 * the frames are bit-identical to {@link frameSignal} on the concatenated signal, however it was
 * chunked. Int16 samples are scaled by 1/32768 into [-1, 1); Float32 samples pass unchanged.
 * Each emitted frame is a fresh Float32Array that the subscriber may keep; samples left over at
 * completion (less than a frame) are dropped. Mono only: mix or pick one channel first.
 *
 * @example
 * microphone$ // Observable<Int16Array>, 16 kHz mono
 *   .pipe(pcmFrames({ sampleRate: 16000 }), audioFeatures({ sampleRate: 16000, kind: 'mfcc', size: 13 }))
 *   .subscribe((mfcc) => model.step(mfcc))
 */
export function pcmFrames(
  options: PcmFramesOptions,
): OperatorFunction<Int16Array | Float32Array, Float32Array> {
  const sizes = frameSizes(options)
  const window = options.window === 'hann' ? hannWindow(sizes.frameLength) : undefined
  return (source) =>
    new Observable<Float32Array>((subscriber) => {
      const framer = createFramer(sizes, window, (frame) => subscriber.next(frame))
      return source.subscribe({
        next(chunk) {
          try {
            framer(chunk)
          } catch (e) {
            subscriber.error(e)
          }
        },
        error: (e) => subscriber.error(e),
        complete: () => subscriber.complete(),
      })
    })
}

/**
 * Frames a whole signal at once, exactly as {@link pcmFrames} frames it in chunks.
 *
 * @example
 * const frames = frameSignal(new Float32Array(16000), { sampleRate: 16000 }) // 98 frames of 400
 */
export function frameSignal(signal: Int16Array | Float32Array, options: PcmFramesOptions): Float32Array[] {
  const sizes = frameSizes(options)
  const window = options.window === 'hann' ? hannWindow(sizes.frameLength) : undefined
  const frames: Float32Array[] = []
  createFramer(sizes, window, (frame) => frames.push(frame))(signal)
  return frames
}

function createFramer(
  { frameLength, hopLength }: FrameSizes,
  window: Float32Array | undefined,
  emit: (frame: Float32Array) => void,
): (chunk: Int16Array | Float32Array) => void {
  // `pending` holds the samples of the frame being filled; when hop > frame, `skip` counts the
  // samples between one frame's end and the next frame's start.
  const pending = new Float32Array(frameLength)
  let filled = 0
  let skip = 0
  return (chunk) => {
    const scale = chunkScale(chunk)
    const n = chunk.length
    let i = 0
    while (i < n) {
      if (skip > 0) {
        const k = Math.min(skip, n - i)
        skip -= k
        i += k
        continue
      }
      const k = Math.min(frameLength - filled, n - i)
      if (scale === 1) pending.set(chunk.subarray(i, i + k) as Float32Array, filled)
      else for (let j = 0; j < k; j++) pending[filled + j] = chunk[i + j]! * scale
      filled += k
      i += k
      if (filled < frameLength) break
      const frame = pending.slice()
      if (window !== undefined) for (let j = 0; j < frameLength; j++) frame[j] = frame[j]! * window[j]!
      if (hopLength < frameLength) {
        pending.copyWithin(0, hopLength, frameLength)
        filled = frameLength - hopLength
      } else {
        filled = 0
        skip = hopLength - frameLength
      }
      emit(frame)
    }
  }
}

function chunkScale(chunk: Int16Array | Float32Array): number {
  if (chunk instanceof Float32Array) return 1
  if (chunk instanceof Int16Array) return 1 / 32768
  throw new RxrnnError(
    'bad_input',
    `pcmFrames takes Int16Array or Float32Array chunks of mono PCM, got ${Object.prototype.toString.call(chunk)}; convert the chunk first`,
  )
}
