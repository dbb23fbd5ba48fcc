/**
 * The page's one WebSocket back to the server (JSON text frames, the rxrnn protocol), with
 * reconnects and the login: when the server has a token the page logs in once at
 * dashboard/auth, which sets a session cookie (HttpOnly, SameSite=Strict) that the browser sends
 * with the WebSocket upgrade. The token never goes into a URL.
 */
// Types only from the protocol: the page loads no module but its own.
import type { ServerFrame } from '../../../transport/protocol.js'
import { onFrame } from './frames.js'
import { $, setStatus } from './state.js'

const BACKOFF_MIN_MS = 250
const BACKOFF_MAX_MS = 5000

const needsToken = document.body.dataset.auth === 'token'
let socket: WebSocket | null = null
let attempts = 0
let openedOnce = false

function socketUrl(): string {
  const url = new URL('.', location.href)
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
  url.search = ''
  url.hash = ''
  return url.href
}

export function connect(): void {
  setStatus(attempts === 0 ? 'connecting' : 'reconnecting', attempts === 0 ? 'connecting…' : 'reconnecting…')
  const ws = new WebSocket(socketUrl())
  socket = ws
  let opened = false
  ws.onopen = () => {
    opened = true
    openedOnce = true
    attempts = 0
    ws.send(JSON.stringify({ type: 'hello', id: 1 }))
    ws.send(
      // maxRate: the server samples predictions and hidden states to what the page can draw,
      // updates and hidden states, so a 10,000 ticks/s feed costs the browser at most 400 frames/s of each.
      JSON.stringify({
        type: 'subscribe',
        channels: ['predictions', 'updates', 'metrics', 'hidden'],
        maxRate: 400,
        id: 2,
      }),
    )
  }
  ws.onmessage = (event) => {
    if (typeof event.data !== 'string') return
    let value: unknown
    try {
      value = JSON.parse(event.data)
    } catch {
      return
    }
    // The server speaks the protocol; the frame handlers ignore types they do not know.
    if (value && typeof value === 'object' && typeof (value as { type?: unknown }).type === 'string') {
      onFrame(value as ServerFrame)
    }
  }
  ws.onclose = () => {
    if (socket !== ws) return
    socket = null
    if (!opened && needsToken) void recheckSession()
    else scheduleReconnect()
  }
}

function scheduleReconnect(): void {
  attempts++
  const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (attempts - 1)) * (0.8 + 0.4 * Math.random())
  setStatus('reconnecting', `disconnected · retrying in ${(delay / 1000).toFixed(1)} s`)
  setTimeout(connect, delay)
}

/**
 * 'ok', 'refused', 'limited' or 'unreachable'. With a candidate token it logs in (the answer
 * sets the session cookie); without, it asks whether the cookie is still good. The server
 * answers 200 either way, so a wrong token logs no error.
 */
async function checkToken(candidate: string | null): Promise<'ok' | 'refused' | 'limited' | 'unreachable'> {
  try {
    const response = await fetch('dashboard/auth', {
      headers: candidate === null ? {} : { authorization: `Bearer ${candidate}` },
      cache: 'no-store',
      credentials: 'same-origin',
    })
    if (response.status === 429) return 'limited'
    if (!response.ok) return 'unreachable'
    return ((await response.json()) as { ok?: boolean }).ok ? 'ok' : 'refused'
  } catch {
    return 'unreachable'
  }
}

async function recheckSession(): Promise<void> {
  const verdict = await checkToken(null)
  if (verdict === 'refused') askToken(openedOnce ? 'The session ended; enter the token again.' : '')
  else scheduleReconnect()
}

function askToken(message: string): void {
  setStatus('token', 'token needed')
  $('token-error').textContent = message
  const dialog = $<HTMLDialogElement>('token-dialog')
  if (!dialog.open) dialog.showModal()
  $('token-input').focus()
}

$('token-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const candidate = $<HTMLInputElement>('token-input').value
  const verdict = await checkToken(candidate)
  if (verdict === 'refused' || verdict === 'limited') {
    $('token-error').textContent =
      verdict === 'limited' ? 'Too many wrong tokens; wait a minute.' : 'The server refused that token.'
    return
  }
  $<HTMLInputElement>('token-input').value = ''
  $<HTMLDialogElement>('token-dialog').close()
  connect()
})

/** Connects, after the login when the server wants a token. */
export async function start(): Promise<void> {
  if (!needsToken) {
    connect()
    return
  }
  const verdict = await checkToken(null)
  if (verdict === 'refused') askToken('')
  else connect()
}
