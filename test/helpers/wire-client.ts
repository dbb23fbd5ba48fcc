/**
 * Test clients for a real rxrnn server on 127.0.0.1: a WebSocket client that records every frame
 * it gets, a raw TCP WebSocket (handshake and masked frames written by hand, for half-sent frames
 * and readers that never read), a wait-until with a deadline, and the heap after a full GC.
 */
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { pack, unpack } from 'msgpackr'
import { WebSocket } from 'ws'

export type Frame = Record<string, unknown>

/**
 * A WebSocket client that decodes and keeps every frame the server sends (msgpack binary or JSON
 * text), and can wait for one.
 */
export class FrameClient {
  readonly frames: Frame[] = []
  closed = false
  closeCode: number | undefined
  private waiters: (() => void)[] = []

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data, isBinary) => {
      const bytes = data as Buffer
      this.frames.push((isBinary ? unpack(bytes) : JSON.parse(bytes.toString('utf8'))) as Frame)
      this.wake()
    })
    socket.on('close', (code) => {
      this.closed = true
      this.closeCode = code
      this.wake()
    })
    socket.on('error', () => {})
  }

  static async open(url: string): Promise<FrameClient> {
    return FrameClient.openWith(url)
  }

  /** `open` with the `ws` client's options (origin, headers, TLS settings). */
  static async openWith(
    url: string,
    options: ConstructorParameters<typeof WebSocket>[2] = {},
  ): Promise<FrameClient> {
    const socket = new WebSocket(url, options)
    const client = new FrameClient(socket)
    await once(socket, 'open')
    return client
  }

  /** Sends a frame as msgpack (a binary frame) or JSON (a text frame). */
  send(frame: unknown, encoding: 'msgpack' | 'json' = 'msgpack'): void {
    if (encoding === 'json') this.socket.send(JSON.stringify(frame))
    else this.socket.send(pack(frame))
  }

  /** Sends bytes or text as they are. */
  sendRaw(data: Uint8Array | string, binary: boolean): void {
    this.socket.send(data, { binary })
  }

  /**
   * The index of the first frame at or after `from` that satisfies `match`, once it has arrived.
   * Rejects when the connection closes first or nothing matches within `ms`.
   */
  async waitFor(match: (frame: Frame) => boolean, from = 0, ms = 10_000): Promise<number> {
    const deadline = Date.now() + ms
    let i = from
    for (;;) {
      for (; i < this.frames.length; i++) if (match(this.frames[i]!)) return i
      if (this.closed) throw new Error(`connection closed (${this.closeCode}) before the awaited frame`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no awaited frame within ${ms} ms; got ${this.frames.length} frames`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }

  /** Sends a hello with `id` and resolves with the index of its welcome: every earlier reply is in. */
  async fence(id: number, from = 0): Promise<number> {
    this.send({ type: 'hello', id })
    return this.waitFor((f) => f.type === 'welcome' && f.id === id, from)
  }

  async close(): Promise<void> {
    if (this.closed) return
    const closing = once(this.socket, 'close')
    this.socket.close()
    await closing
  }

  private wake(): void {
    const waiters = this.waiters
    this.waiters = []
    for (const w of waiters) w()
  }
}

/** Polls `condition` until it holds; rejects with `what` after `ms`. Not a timing assertion: a deadline. */
export async function waitUntil(condition: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/**
 * A WebSocket over a raw TCP socket, upgraded by hand: the test writes frames byte by byte (a
 * frame cut in half) or never reads what the server sends (pause the socket).
 */
export async function rawWebSocket(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1')
  await once(socket, 'connect')
  const key = randomBytes(16).toString('base64')
  socket.write(
    'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  )
  let head = Buffer.alloc(0)
  while (!head.includes('\r\n\r\n')) {
    const [chunk] = (await once(socket, 'data')) as [Buffer]
    head = Buffer.concat([head, chunk])
  }
  if (!head.toString('latin1').startsWith('HTTP/1.1 101')) {
    socket.destroy()
    throw new Error(`upgrade refused: ${head.toString('latin1').split('\r\n')[0]}`)
  }
  return socket
}

/** A client→server WebSocket frame (FIN set, masked as RFC 6455 requires): opcode 1 text, 2 binary. */
export function maskedFrame(payload: Uint8Array, opcode = 2): Buffer {
  const n = payload.length
  const lengthBytes = n < 126 ? 0 : n < 65536 ? 2 : 8
  const header = Buffer.alloc(2 + lengthBytes + 4)
  header[0] = 0x80 | opcode
  if (lengthBytes === 0) header[1] = 0x80 | n
  else if (lengthBytes === 2) {
    header[1] = 0x80 | 126
    header.writeUInt16BE(n, 2)
  } else {
    header[1] = 0x80 | 127
    header.writeBigUInt64BE(BigInt(n), 2)
  }
  const mask = randomBytes(4)
  mask.copy(header, 2 + lengthBytes)
  const body = Buffer.alloc(n)
  for (let i = 0; i < n; i++) body[i] = payload[i]! ^ mask[i & 3]!
  return Buffer.concat([header, body])
}

let gc: (() => void) | undefined

/** heapUsed after a full garbage collection (gc is exposed at run time, whatever the test runner's flags). */
export function heapAfterGc(): number {
  if (!gc) {
    const global = globalThis as { gc?: () => void }
    if (global.gc) gc = global.gc
    else {
      setFlagsFromString('--expose_gc')
      gc = runInNewContext('gc') as () => void
    }
  }
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

/** Bytes as MB, for messages. */
export const mb = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MB`

/**
 * Writes `request` (raw bytes, e.g. a malformed request line) to 127.0.0.1:`port` and resolves
 * with everything the server answered once it closes the connection (or after `ms`).
 */
export async function rawHttp(port: number, request: string, ms = 5_000): Promise<string> {
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => {})
  await once(socket, 'connect')
  socket.write(request)
  let answer = ''
  socket.setEncoding('latin1').on('data', (chunk: string) => {
    answer += chunk
  })
  await Promise.race([once(socket, 'close'), new Promise((resolve) => setTimeout(resolve, ms))])
  socket.destroy()
  return answer
}

/** The HTTP status a WebSocket upgrade gets: 101 when it opened (then closed again), else the refusal's. */
export async function upgradeStatus(
  url: string,
  options: ConstructorParameters<typeof WebSocket>[2] = {},
): Promise<number> {
  const ws = new WebSocket(url, options)
  ws.on('error', () => {})
  const status = await new Promise<number>((resolve) => {
    ws.on('open', () => resolve(101))
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
    ws.on('close', () => resolve(0))
  })
  ws.terminate()
  return status
}
