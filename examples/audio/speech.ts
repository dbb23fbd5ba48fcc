import { spawn } from 'node:child_process'
import { RxrnnError } from '../../src/errors.js'

/** Options for {@link synthesize}. */
export interface SynthesizeOptions {
  /** espeak-ng voice, optionally with a variant: `en-us`, `en-gb-scotland`, `en-us+f3`. */
  voice: string
  /** Speaking rate in words per minute, 80 to 450; default 175 (espeak-ng's own default). */
  speed?: number
  /** Voice pitch, 0 to 99; default 50. */
  pitch?: number
  /** Sample rate of the returned PCM; default 16000. espeak-ng speaks at 22050 Hz. */
  sampleRate?: number
}

/** Synthesised speech: mono 16-bit PCM. */
export interface SpeechPcm {
  sampleRate: number
  pcm: Int16Array
}

/** A "speaker" for {@link synthesize}: an espeak-ng voice with its speed and pitch. */
export interface SpeechVoice {
  /** A short name for logs and labels. */
  name: string
  voice: string
  speed: number
  pitch: number
}

/**
 * Six distinct English "speakers" from Debian's espeak-ng 1.51 (`espeak-ng --voices=en`):
 * different accents, `+fN`/`+mN` voice variants, speeds and pitches. All use espeak-ng's own
 * formant synthesis (none needs mbrola).
 *
 * @example
 * for (const speaker of SPEECH_VOICES) {
 *   const { pcm } = await synthesize('yes', speaker)
 *   console.log(speaker.name, pcm.length)
 * }
 */
export const SPEECH_VOICES: readonly SpeechVoice[] = [
  { name: 'us-male', voice: 'en-us', speed: 165, pitch: 45 },
  { name: 'us-female', voice: 'en-us+f3', speed: 180, pitch: 65 },
  { name: 'gb-male', voice: 'en-gb+m3', speed: 150, pitch: 35 },
  { name: 'scotland-male', voice: 'en-gb-scotland+m1', speed: 140, pitch: 50 },
  { name: 'caribbean-female', voice: 'en-029+f2', speed: 170, pitch: 70 },
  { name: 'rp-female', voice: 'en-gb-x-rp+f4', speed: 155, pitch: 55 },
]

const INSTALL_HINT =
  'install it with: apt-get install -y espeak-ng (Debian/Ubuntu), brew install espeak-ng (macOS)'

/**
 * Whether the `espeak-ng` binary can be run. When it cannot, {@link synthesize} throws an
 * RxrnnError whose message says how to install it (`apt-get install -y espeak-ng`).
 *
 * @example
 * const available = await espeakAvailable()
 * it.skipIf(!available)('speaks', async () => { await synthesize('yes', { voice: 'en-us' }) })
 */
export async function espeakAvailable(): Promise<boolean> {
  try {
    await runEspeak(['--version'])
    return true
  } catch {
    return false
  }
}

/**
 * Speaks `text` with espeak-ng (`espeak-ng --stdout -v VOICE -s SPEED -p PITCH -- TEXT`, run
 * without a shell), parses the WAV it writes and resamples it from espeak-ng's 22050 Hz to
 * `sampleRate` with a windowed-sinc filter (see {@link resamplePcm}).
 *
 * @throws RxrnnError `bad_config` when espeak-ng is missing (the message says how to install it),
 * the voice does not exist, or an option is out of range; `bad_input` for empty text.
 *
 * @example
 * const { sampleRate, pcm } = await synthesize('yes', { voice: 'en-us+f3', speed: 160 })
 * // sampleRate === 16000, pcm: Int16Array of about 0.4 s
 */
export async function synthesize(text: string, options: SynthesizeOptions): Promise<SpeechPcm> {
  const { voice, speed = 175, pitch = 50, sampleRate = 16000 } = options
  const problems: string[] = []
  if (typeof voice !== 'string' || !/^[A-Za-z0-9_+-]+$/.test(voice)) {
    problems.push(`voice must be an espeak-ng voice name such as 'en-us' or 'en-us+f3', got ${String(voice)}`)
  }
  if (!(Number.isInteger(speed) && speed >= 80 && speed <= 450)) {
    problems.push(`speed must be an integer from 80 to 450 words per minute, got ${speed}`)
  }
  if (!(Number.isInteger(pitch) && pitch >= 0 && pitch <= 99)) {
    problems.push(`pitch must be an integer from 0 to 99, got ${pitch}`)
  }
  if (!(Number.isInteger(sampleRate) && sampleRate >= 1000 && sampleRate <= 192000)) {
    problems.push(`sampleRate must be an integer from 1000 to 192000, got ${sampleRate}`)
  }
  if (problems.length > 0) {
    throw new RxrnnError(
      'bad_config',
      problems.length === 1 ? `Bad speech options: ${problems[0]}` : 'Bad speech options',
      problems,
    )
  }
  if (typeof text !== 'string' || text.trim() === '') {
    throw new RxrnnError('bad_input', 'synthesize needs some text to speak, got an empty string')
  }
  const wav = await runEspeak(['--stdout', '-v', voice, '-s', String(speed), '-p', String(pitch), '--', text])
  const parsed = parseWav(wav)
  if (parsed.pcm.length === 0) {
    throw new RxrnnError(
      'internal',
      `espeak-ng produced no audio for ${JSON.stringify(text)} with voice ${voice}`,
    )
  }
  if (parsed.sampleRate === sampleRate) return { sampleRate, pcm: parsed.pcm }
  const resampled = resamplePcm(int16ToFloat(parsed.pcm), parsed.sampleRate, sampleRate)
  return { sampleRate, pcm: floatToInt16(resampled) }
}

/**
 * Parses a RIFF/WAVE file of 16-bit integer PCM (format 1, or WAVE_FORMAT_EXTENSIBLE holding
 * PCM), mixing several channels down to mono. A `data` chunk whose declared size is 0, or more
 * than the bytes present (a streamed WAV, as `espeak-ng --stdout` writes, declares 0x7ffff000 or
 * 0xffffffff), is read to the end of the input.
 *
 * @throws RxrnnError `bad_input` when the bytes are not such a WAV.
 *
 * @example
 * const { sampleRate, pcm } = parseWav(await readFile('yes.wav'))
 */
export function parseWav(bytes: Uint8Array): { sampleRate: number; channels: number; pcm: Int16Array } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const tag = (at: number) => String.fromCharCode(...bytes.subarray(at, at + 4))
  const fail = (why: string) => new RxrnnError('bad_input', `Not a 16-bit PCM WAV: ${why}`)
  if (bytes.length < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') throw fail('no RIFF/WAVE header')
  let format: { channels: number; sampleRate: number } | undefined
  let at = 12
  while (at + 8 <= bytes.length) {
    const id = tag(at)
    const declared = view.getUint32(at + 4, true)
    const body = at + 8
    if (id === 'fmt ') {
      if (declared < 16 || body + 16 > bytes.length) throw fail('fmt chunk too short')
      let audioFormat = view.getUint16(body, true)
      if (audioFormat === 0xfffe && declared >= 40 && body + 26 <= bytes.length) {
        audioFormat = view.getUint16(body + 24, true) // the sub-format GUID starts with the format code
      }
      const channels = view.getUint16(body + 2, true)
      const sampleRate = view.getUint32(body + 4, true)
      const bits = view.getUint16(body + 14, true)
      if (audioFormat !== 1) throw fail(`audio format ${audioFormat} is not integer PCM (1)`)
      if (bits !== 16) throw fail(`${bits} bits per sample; only 16 is supported`)
      if (channels < 1 || sampleRate < 1) throw fail(`${channels} channels at ${sampleRate} Hz`)
      format = { channels, sampleRate }
    } else if (id === 'data') {
      if (format === undefined) throw fail('data chunk before the fmt chunk')
      const available = bytes.length - body
      const size = declared === 0 || declared > available ? available : declared
      const frameBytes = 2 * format.channels
      const frames = Math.floor(size / frameBytes)
      const pcm = new Int16Array(frames)
      for (let f = 0; f < frames; f++) {
        let sum = 0
        for (let c = 0; c < format.channels; c++) sum += view.getInt16(body + f * frameBytes + 2 * c, true)
        pcm[f] = Math.round(sum / format.channels)
      }
      return { ...format, pcm }
    }
    at = body + declared + (declared % 2) // chunks are padded to an even size
  }
  throw fail(format === undefined ? 'no fmt chunk' : 'no data chunk')
}

/**
 * Resamples `input` from `fromRate` to `toRate` Hz by band-limited (windowed-sinc) interpolation:
 * each output sample at input time `t = i · fromRate / toRate` is `Σ x[j] · c · sinc(c (t − j)) ·
 * hann((t − j) / r)` over the input samples within `r = halfZeroCrossings / c` of `t`, where the
 * cutoff `c = 0.95 · min(1, toRate / fromRate)` (in units of the input Nyquist) low-passes below
 * the lower Nyquist first, so downsampling does not alias (linear interpolation would). Samples
 * beyond either end count as 0. The output has `floor(n · toRate / fromRate)` samples.
 *
 * @example
 * const at16k = resamplePcm(at22k, 22050, 16000) // Float32Array, 16000/22050 as long
 */
export function resamplePcm(
  input: Float32Array,
  fromRate: number,
  toRate: number,
  halfZeroCrossings = 16,
): Float32Array {
  if (!(fromRate > 0 && toRate > 0 && halfZeroCrossings >= 1)) {
    throw new RxrnnError(
      'bad_config',
      `resamplePcm needs positive rates and halfZeroCrossings ≥ 1, got ${fromRate} → ${toRate}, ${halfZeroCrossings}`,
    )
  }
  if (fromRate === toRate) return input.slice()
  const n = input.length
  const out = new Float32Array(Math.floor((n * toRate) / fromRate))
  const step = fromRate / toRate
  const cutoff = 0.95 * Math.min(1, toRate / fromRate)
  const radius = halfZeroCrossings / cutoff
  for (let i = 0; i < out.length; i++) {
    const t = i * step
    const lo = Math.max(0, Math.ceil(t - radius))
    const hi = Math.min(n - 1, Math.floor(t + radius))
    let sum = 0
    for (let j = lo; j <= hi; j++) {
      const x = t - j
      const px = Math.PI * cutoff * x
      const sinc = px === 0 ? 1 : Math.sin(px) / px
      const window = 0.5 + 0.5 * Math.cos((Math.PI * x) / radius)
      sum += input[j]! * cutoff * sinc * window
    }
    out[i] = sum
  }
  return out
}

function int16ToFloat(pcm: Int16Array): Float32Array {
  const out = new Float32Array(pcm.length)
  for (let i = 0; i < pcm.length; i++) out[i] = pcm[i]! / 32768
  return out
}

function floatToInt16(samples: Float32Array): Int16Array {
  const out = new Int16Array(samples.length)
  for (let i = 0; i < samples.length; i++) {
    out[i] = Math.max(-32768, Math.min(32767, Math.round(samples[i]! * 32768)))
  }
  return out
}

function runEspeak(args: string[]): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const child = spawn('espeak-ng', args, { stdio: ['ignore', 'pipe', 'pipe'], shell: false })
    const out: Buffer[] = []
    let err = ''
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk))
    child.stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString('utf8')
    })
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(
        e.code === 'ENOENT'
          ? new RxrnnError('bad_config', `espeak-ng is not installed or not on PATH; ${INSTALL_HINT}`)
          : new RxrnnError('internal', `Cannot run espeak-ng: ${e.message}`),
      )
    })
    child.on('close', (code, signal) => {
      if (code === 0) {
        resolve(new Uint8Array(Buffer.concat(out)))
        return
      }
      const why = err.trim() || (signal === null ? `exit code ${code}` : `signal ${signal}`)
      const voiceHint = /voice/i.test(why) ? '; list the voices with: espeak-ng --voices=en' : ''
      reject(new RxrnnError('bad_config', `espeak-ng failed: ${why}${voiceHint}`))
    })
  })
}
