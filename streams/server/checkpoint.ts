import { existsSync, readFileSync } from 'node:fs'
import { open, readdir, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { RxrnnError } from '../../src/index.js'

/** The temporary `writeFileAtomic` writes beside `path`: `<path>.<pid>.<ms>.tmp`. */
export function temporaryPath(path: string): string {
  return `${path}.${process.pid}.${Date.now()}.tmp`
}

/**
 * Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename over the old
 * one, fsync of the folder. A crash at any moment leaves either the old checkpoint or the new
 * one, never a torn file; a failed write removes its temporary.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const temporary = temporaryPath(path)
  try {
    const file = await open(temporary, 'w')
    try {
      await file.writeFile(bytes)
      await file.sync()
    } finally {
      await file.close()
    }
    await rename(temporary, path)
  } catch (error) {
    await unlink(temporary).catch(() => {})
    throw error
  }
  // The rename itself lives in the folder: sync it too, where the platform allows.
  const folder = await open(dirname(path), 'r').catch(() => null)
  if (folder) {
    await folder.sync().catch(() => {})
    await folder.close()
  }
}

/**
 * Removes the temporaries a crash during `writeFileAtomic(path, …)` left behind: exactly the
 * names `<basename>.<digits>.<digits>.tmp`, nothing else (a user's `notes.important.tmp` stays).
 */
export async function removeStaleTemporaries(path: string): Promise<number> {
  const pattern = new RegExp(`^${escapeRegExp(basename(path))}\\.\\d+\\.\\d+\\.tmp$`)
  const names = await readdir(dirname(path)).catch(() => [] as string[])
  const stale = names.filter((name) => pattern.test(name))
  await Promise.all(stale.map((name) => unlink(join(dirname(path), name)).catch(() => {})))
  return stale.length
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** The checkpoint's bytes, or null when there is none yet. */
export function readCheckpoint(path: string): Uint8Array | null {
  if (!existsSync(path)) return null
  const bytes = readFileSync(path)
  if (bytes.length === 0) {
    throw new RxrnnError('bad_snapshot', `Checkpoint ${path} is empty; move it away to start fresh`)
  }
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/** Parses `30s`, `5m`, `1h`, `500ms` or a plain number of milliseconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(text.trim())
  if (!match) {
    throw new RxrnnError(
      'bad_config',
      `Cannot read the duration ${JSON.stringify(text)}; write e.g. 500ms, 30s, 5m or 1h`,
    )
  }
  const value = Number(match[1])
  const unit = match[2] ?? 'ms'
  return value * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]!
}
