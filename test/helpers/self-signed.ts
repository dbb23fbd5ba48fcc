/**
 * A self-signed certificate for 127.0.0.1 and localhost, made with openssl in a temporary folder,
 * for tests of `--tls-cert` / `--tls-key`; null when openssl is missing (the test then skips,
 * saying so).
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface SelfSigned {
  cert: string
  key: string
  /** The folder holding cert.pem and key.pem; remove it when done. */
  dir: string
}

export const opensslSkipMessage =
  'skipping the TLS tests: openssl is not on PATH to make a self-signed certificate'

export function selfSigned(): SelfSigned | null {
  const dir = mkdtempSync(join(tmpdir(), 'rxrnn-tls-'))
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
      ],
      { stdio: 'ignore' },
    )
    return {
      cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
      key: readFileSync(join(dir, 'key.pem'), 'utf8'),
      dir,
    }
  } catch {
    rmSync(dir, { recursive: true, force: true })
    return null
  }
}
