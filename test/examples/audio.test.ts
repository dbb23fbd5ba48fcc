import { from, lastValueFrom, of, Subject, toArray } from 'rxjs'
import { describe, expect, it } from 'vitest'
import { audioFeatures, createFeatureExtractor, nextPowerOfTwo } from '../../examples/audio/features.js'
import { frameCount, frameSignal, frameSizes, hannWindow, pcmFrames } from '../../examples/audio/frames.js'
import {
  espeakAvailable,
  parseWav,
  resamplePcm,
  SPEECH_VOICES,
  synthesize,
} from '../../examples/audio/speech.js'
import { RxrnnError } from '../../src/errors.js'

/** A deterministic pseudo-random generator (mulberry32), so failures reproduce. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Cuts `signal` into consecutive chunks of random sizes from 0 to `maxChunk`. */
function chunked<T extends Int16Array | Float32Array>(signal: T, maxChunk: number, rand: () => number): T[] {
  const chunks: T[] = []
  for (let at = 0; at < signal.length; ) {
    const size = Math.min(signal.length - at, Math.floor(rand() * (maxChunk + 1)))
    chunks.push(signal.slice(at, at + size) as T)
    at += size
  }
  return chunks
}

function tone(hz: number, sampleRate: number, length: number, amplitude = 0.5): Float32Array {
  const x = new Float32Array(length)
  for (let n = 0; n < length; n++) x[n] = amplitude * Math.sin((2 * Math.PI * hz * n) / sampleRate)
  return x
}

function argmax(values: ArrayLike<number>): number {
  let best = 0
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i
  return best
}

const mel = (hz: number) => 1125 * Math.log(1 + hz / 700)

describe('pcmFrames', () => {
  const rand = random(7)
  const second = new Int16Array(16000)
  for (let i = 0; i < second.length; i++) second[i] = Math.floor(rand() * 65536) - 32768

  it('sizes 25 ms frames every 10 ms: 400 and 160 samples at 16 kHz, 98 frames in a second', () => {
    const sizes = frameSizes({ sampleRate: 16000 })
    expect(sizes).toEqual({ frameLength: 400, hopLength: 160 })
    expect(frameSizes({ sampleRate: 22050 })).toEqual({ frameLength: 551, hopLength: 221 })
    expect(frameCount(16000, sizes)).toBe(98)
    expect(frameCount(399, sizes)).toBe(0)
    expect(frameCount(400, sizes)).toBe(1)
  })

  it('frames 1 s of 16 kHz in random chunk sizes bit-identically to framing it whole', async () => {
    const whole = frameSignal(second, { sampleRate: 16000 })
    expect(whole.length).toBe(98)
    // Against a reference cut straight from the signal.
    for (let f = 0; f < whole.length; f++) {
      const expected = Float32Array.from(second.subarray(f * 160, f * 160 + 400), (s) => s / 32768)
      expect(whole[f]).toEqual(expected)
    }
    for (const maxChunk of [1, 37, 160, 401, 5000]) {
      const frames = await lastValueFrom(
        from(chunked(second, maxChunk, rand)).pipe(pcmFrames({ sampleRate: 16000 }), toArray()),
      )
      expect(frames.length).toBe(98)
      for (let f = 0; f < frames.length; f++) {
        expect(Buffer.from(frames[f]!.buffer).equals(Buffer.from(whole[f]!.buffer))).toBe(true)
      }
    }
  })

  it('emits fresh arrays that the subscriber may keep and change', async () => {
    const frames = await lastValueFrom(of(second).pipe(pcmFrames({ sampleRate: 16000 }), toArray()))
    frames[0]!.fill(0)
    expect(frames[1]![0]).toBe(second[160]! / 32768)
    expect(new Set(frames.map((f) => f.buffer)).size).toBe(frames.length)
  })

  it('passes Float32 samples unchanged, applies a Hann window on request, and handles hop > frame', async () => {
    const signal = Float32Array.from(second, (s) => s / 32768)
    const window = hannWindow(400)
    expect(window[0]).toBe(0)
    expect(window[200]).toBe(1)
    const hann = await lastValueFrom(
      from(chunked(signal, 300, rand)).pipe(pcmFrames({ sampleRate: 16000, window: 'hann' }), toArray()),
    )
    expect(hann.length).toBe(98)
    const expected = Float32Array.from(signal.subarray(320, 720), (s, j) => s * window[j]!)
    expect(hann[2]).toEqual(expected)

    // 10 ms frames every 25 ms: 160 samples, then 240 skipped.
    const sparse = await lastValueFrom(
      from(chunked(signal, 100, rand)).pipe(
        pcmFrames({ sampleRate: 16000, frameMs: 10, hopMs: 25 }),
        toArray(),
      ),
    )
    expect(sparse.length).toBe(frameCount(16000, { frameLength: 160, hopLength: 400 }))
    expect(sparse.length).toBe(40)
    expect(sparse[3]).toEqual(signal.slice(1200, 1360))
  })

  it('keeps separate state per subscription', async () => {
    const source = new Subject<Int16Array>()
    const framed = source.pipe(pcmFrames({ sampleRate: 16000 }), toArray())
    const a = lastValueFrom(framed)
    source.next(second.subarray(0, 300))
    const b = lastValueFrom(framed)
    source.next(second.subarray(300))
    source.complete()
    expect((await a).length).toBe(98)
    expect((await b).length).toBe(frameCount(16000 - 300, { frameLength: 400, hopLength: 160 }))
  })

  it('rejects bad options at once and other array types as a stream error', async () => {
    expect(() => pcmFrames({ sampleRate: 0 })).toThrow(RxrnnError)
    expect(() => pcmFrames({ sampleRate: 16000, hopMs: 0.01 })).toThrow(/at least one sample/)
    const bad = of(new Float64Array(500) as unknown as Float32Array).pipe(pcmFrames({ sampleRate: 16000 }))
    await expect(lastValueFrom(bad)).rejects.toMatchObject({ code: 'bad_input' })
  })
})

describe('audioFeatures', () => {
  const sampleRate = 16000
  const bands = 40
  const step = mel(sampleRate / 2) / (bands + 1)
  // Meyda's band k peaks at mel (k + 1) · step.
  const bandOf = (hz: number) => Math.round(mel(hz) / step) - 1

  async function logmelOf(signal: Float32Array): Promise<Float32Array[]> {
    return lastValueFrom(
      of(signal).pipe(
        pcmFrames({ sampleRate }),
        audioFeatures({ sampleRate, kind: 'logmel', size: bands }),
        toArray(),
      ),
    )
  }

  it('puts a 440 Hz tone and a 3 kHz tone in the mel bands around their frequencies', async () => {
    const low = await logmelOf(tone(440, sampleRate, 8000))
    const high = await logmelOf(tone(3000, sampleRate, 8000))
    expect(low.length).toBe(48)
    const lowBand = bandOf(440)
    const highBand = bandOf(3000)
    expect(highBand - lowBand).toBeGreaterThan(10)
    for (let f = 0; f < low.length; f++) {
      expect(Math.abs(argmax(low[f]!) - lowBand)).toBeLessThanOrEqual(1)
      expect(Math.abs(argmax(high[f]!) - highBand)).toBeLessThanOrEqual(1)
      // Each tone leaves the other's band near silence (ln(1 + E) near 0).
      expect(low[f]![highBand]).toBeLessThan(high[f]![highBand]! - 5)
      expect(high[f]![lowBand]).toBeLessThan(low[f]![lowBand]! - 5)
    }
  })

  it('matches a direct computation: Hann over the frame, zero-padding to 512, ln(1 + mel-weighted |DFT|²)', () => {
    const rand = random(3)
    const frame = Float32Array.from({ length: 400 }, () => rand() - 0.5)
    const got = createFeatureExtractor({ sampleRate, kind: 'logmel', size: bands })(frame)
    const size = nextPowerOfTwo(400)
    expect(size).toBe(512)
    const windowed = new Float64Array(size)
    for (let n = 0; n < 400; n++) windowed[n] = frame[n]! * (0.5 - 0.5 * Math.cos((2 * Math.PI * n) / 400))
    const power = new Float64Array(size / 2)
    for (let k = 0; k < size / 2; k++) {
      let re = 0
      let im = 0
      for (let n = 0; n < size; n++) {
        re += windowed[n]! * Math.cos((2 * Math.PI * k * n) / size)
        im -= windowed[n]! * Math.sin((2 * Math.PI * k * n) / size)
      }
      power[k] = re * re + im * im
    }
    // Triangular filters between mel-spaced bin edges floor((N + 1) f / sampleRate), as meyda builds them.
    const edges = Array.from({ length: bands + 2 }, (_, i) => {
      const hz = 700 * (Math.exp((i * step) / 1125) - 1)
      return Math.floor(((size + 1) * hz) / sampleRate)
    })
    for (let b = 0; b < bands; b++) {
      const [lo, mid, hi] = [edges[b]!, edges[b + 1]!, edges[b + 2]!]
      let energy = 0
      for (let k = lo; k < hi && k < size / 2; k++) {
        energy += power[k]! * (k < mid ? (k - lo) / (mid - lo) : (hi - k) / (hi - mid))
      }
      expect(got[b]).toBeCloseTo(Math.log(1 + energy), 3)
    }
  })

  it('gives finite zeros for silence (no log of zero)', () => {
    const silence = new Float32Array(400)
    const logmel = createFeatureExtractor({ sampleRate, kind: 'logmel', size: bands })(silence)
    const mfcc = createFeatureExtractor({ sampleRate, kind: 'mfcc', size: 13 })(silence)
    expect(Array.from(logmel)).toEqual(new Array(bands).fill(0))
    expect(Array.from(mfcc)).toEqual(new Array(13).fill(0))
  })

  it('gives each extractor its own configuration when they are interleaved (meyda is a singleton)', () => {
    const a = createFeatureExtractor({ sampleRate: 16000, kind: 'logmel', size: 26 })
    const b = createFeatureExtractor({ sampleRate: 8000, kind: 'logmel', size: 26 })
    const c = createFeatureExtractor({ sampleRate: 16000, kind: 'mfcc', size: 20, melBands: 32 })
    const frame16k = tone(1000, 16000, 400)
    const frame8k = tone(1000, 8000, 200)
    const first = [a(frame16k), b(frame8k), c(frame16k)]
    const again = [c(frame16k), b(frame8k), a(frame16k)].reverse()
    expect(again).toEqual(first)
    expect(first[2]!.length).toBe(20)
  })

  it('rejects bad options, frames of another length and non-finite samples', () => {
    expect(() => audioFeatures({ sampleRate, kind: 'mfcc', size: 41 })).toThrow(/from 1 to 40/)
    expect(() => createFeatureExtractor({ sampleRate, kind: 'mfcc', size: 13, melBands: 10 })).toThrow(
      /melBands/,
    )
    expect(() => createFeatureExtractor({ sampleRate: -1, kind: 'logmel', size: 40 })).toThrow(RxrnnError)
    const extract = createFeatureExtractor({ sampleRate, kind: 'mfcc', size: 13 })
    extract(new Float32Array(400))
    expect(() => extract(new Float32Array(401))).toThrow(/401 samples/)
    expect(() => extract(new Float32Array(400).fill(Number.NaN))).toThrow(/non-finite/)
  })
})

describe('parseWav and resamplePcm', () => {
  function wav(
    options: { channels?: number; bits?: number; declared?: number; extra?: Uint8Array },
    samples: number[],
  ) {
    const { channels = 1, bits = 16, declared = samples.length * 2, extra = new Uint8Array(0) } = options
    const bytes = new Uint8Array(44 + extra.length + samples.length * 2)
    const view = new DataView(bytes.buffer)
    const put = (at: number, s: string) => bytes.set(new TextEncoder().encode(s), at)
    put(0, 'RIFF')
    view.setUint32(4, 0xffffffff, true)
    put(8, 'WAVE')
    put(12, 'fmt ')
    view.setUint32(16, 16, true)
    view.setUint16(20, 1, true)
    view.setUint16(22, channels, true)
    view.setUint32(24, 22050, true)
    view.setUint32(28, 22050 * channels * 2, true)
    view.setUint16(32, channels * 2, true)
    view.setUint16(34, bits, true)
    bytes.set(extra, 36)
    put(36 + extra.length, 'data')
    view.setUint32(40 + extra.length, declared, true)
    for (const [i, s] of samples.entries()) view.setInt16(44 + extra.length + 2 * i, s, true)
    return bytes
  }

  it('reads the data chunk to the end when its size is streamed as 0, 0xffffffff or too large', () => {
    for (const declared of [0, 0xffffffff, 0x7ffff000]) {
      const parsed = parseWav(wav({ declared }, [1, -2, 32767, -32768]))
      expect(parsed.sampleRate).toBe(22050)
      expect(Array.from(parsed.pcm)).toEqual([1, -2, 32767, -32768])
    }
    expect(Array.from(parseWav(wav({ declared: 4 }, [5, 6, 7])).pcm)).toEqual([5, 6])
  })

  it('skips other chunks (padded to even sizes) and mixes stereo to mono', () => {
    const list = new Uint8Array([...new TextEncoder().encode('LIST'), 3, 0, 0, 0, 1, 2, 3, 0])
    expect(Array.from(parseWav(wav({ extra: list }, [9, 10])).pcm)).toEqual([9, 10])
    expect(Array.from(parseWav(wav({ channels: 2 }, [100, 200, -50, -51])).pcm)).toEqual([150, -50])
  })

  it('rejects non-WAV bytes and other sample formats', () => {
    expect(() => parseWav(new TextEncoder().encode('hello there, not a wav'))).toThrow(/RIFF/)
    expect(() => parseWav(wav({ bits: 8 }, [0]))).toThrow(/8 bits/)
  })

  it('resamples a 1 kHz tone from 22050 to 16000 Hz accurately and suppresses a 10 kHz tone', () => {
    const input = tone(1000, 22050, 22050)
    const output = resamplePcm(input, 22050, 16000)
    expect(output.length).toBe(16000)
    let worst = 0
    for (let i = 100; i < output.length - 100; i++) {
      worst = Math.max(worst, Math.abs(output[i]! - 0.5 * Math.sin((2 * Math.PI * 1000 * i) / 16000)))
    }
    expect(worst).toBeLessThan(1e-4)
    // 10 kHz is above the 8 kHz Nyquist of the output: it must not alias into it.
    const alias = resamplePcm(tone(10000, 22050, 22050), 22050, 16000)
    let energy = 0
    for (let i = 100; i < alias.length - 100; i++) energy += alias[i]! ** 2
    expect(Math.sqrt(energy / (alias.length - 200))).toBeLessThan(0.01 * 0.5 * Math.SQRT1_2)
    // Upsampling keeps the tone too.
    const up = resamplePcm(tone(1000, 8000, 8000), 8000, 16000)
    expect(up.length).toBe(16000)
    expect(Math.abs(up[4001]! - 0.5 * Math.sin((2 * Math.PI * 1000 * 4001) / 16000))).toBeLessThan(1e-3)
  })
})

const available = await espeakAvailable()

describe('synthesize (espeak-ng)', () => {
  it.skipIf(!available)(
    'speaks "yes" and "no" as 16 kHz PCM whose MFCC frames are finite and differ',
    async () => {
      const mfccs: Float32Array[][] = []
      for (const word of ['yes', 'no']) {
        const { sampleRate, pcm } = await synthesize(word, { voice: 'en-us' })
        expect(sampleRate).toBe(16000)
        expect(pcm.length).toBeGreaterThan(0.2 * 16000)
        expect(Math.max(...Array.from(pcm, Math.abs))).toBeGreaterThan(3000)
        const frames = await lastValueFrom(
          of(pcm).pipe(
            pcmFrames({ sampleRate }),
            audioFeatures({ sampleRate, kind: 'mfcc', size: 13 }),
            toArray(),
          ),
        )
        expect(frames.length).toBe(frameCount(pcm.length, frameSizes({ sampleRate })))
        for (const frame of frames) for (const v of frame) expect(Number.isFinite(v)).toBe(true)
        mfccs.push(frames)
      }
      const mean = (frames: Float32Array[]) =>
        Array.from({ length: 13 }, (_, k) => frames.reduce((s, f) => s + f[k]!, 0) / frames.length)
      const [yes, no] = [mean(mfccs[0]!), mean(mfccs[1]!)]
      const distance = Math.hypot(...yes.map((v, k) => v - no[k]!))
      expect(distance).toBeGreaterThan(1)
    },
  )

  it.skipIf(!available)('has every SPEECH_VOICES speaker, each sounding different', async () => {
    expect(SPEECH_VOICES.length).toBeGreaterThanOrEqual(4)
    expect(SPEECH_VOICES.length).toBeLessThanOrEqual(6)
    const lengths = new Set<number>()
    for (const speaker of SPEECH_VOICES) {
      const { pcm } = await synthesize('hello there', { ...speaker, sampleRate: 8000 })
      expect(pcm.length).toBeGreaterThan(0.3 * 8000)
      lengths.add(pcm.length)
    }
    expect(lengths.size).toBe(SPEECH_VOICES.length)
  })

  it.skipIf(!available)(
    'passes text starting with a dash as text, and returns native 22050 Hz on request',
    async () => {
      const { sampleRate, pcm } = await synthesize('-yes', { voice: 'en-gb', sampleRate: 22050 })
      expect(sampleRate).toBe(22050)
      expect(pcm.length).toBeGreaterThan(0.2 * 22050)
    },
  )

  it.skipIf(!available)('explains an unknown voice, bad options and empty text', async () => {
    await expect(synthesize('yes', { voice: 'xx-nowhere' })).rejects.toThrow(/espeak-ng --voices=en/)
    await expect(synthesize('yes', { voice: 'en-us', speed: 10 })).rejects.toMatchObject({
      code: 'bad_config',
    })
    await expect(synthesize('yes', { voice: 'en us; rm -rf /' })).rejects.toMatchObject({
      code: 'bad_config',
    })
    await expect(synthesize('  ', { voice: 'en-us' })).rejects.toMatchObject({ code: 'bad_input' })
  })

  it('says how to install espeak-ng when the binary is not on PATH', async () => {
    const path = process.env.PATH
    process.env.PATH = '/nonexistent-rxrnn-bin'
    try {
      expect(await espeakAvailable()).toBe(false)
      await expect(synthesize('yes', { voice: 'en-us' })).rejects.toThrow(/apt-get install -y espeak-ng/)
    } finally {
      process.env.PATH = path
    }
  })
})
