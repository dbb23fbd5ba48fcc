/**
 * CSV files larger than memory: a child process whose heap is capped at 64 MiB reads a generated
 * ~150 MB file to the end through `csvRows$` (csv-parse on a file stream), which it could not do
 * if the file were read whole. Rows are wide (about 400 bytes) so the file is big in few rows and
 * the test stays within seconds.
 */
import { spawn } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openCsv } from '../../../streams/server/feeds/csv.js'

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url))
const csvModule = fileURLToPath(new URL('../../../streams/server/feeds/csv.ts', import.meta.url))
const HEAP_MB = 64
const BLOCK_ROWS = 1_000
const BLOCKS = 375

let dir = ''
let path = ''

/** `BLOCKS` × `BLOCK_ROWS` rows of about 420 bytes, written a block at a time. */
function writeBigCsv(file: string): void {
  const note = 'abcdefghij'.repeat(40)
  const lines: string[] = []
  for (let i = 0; i < BLOCK_ROWS; i++) lines.push(`k${i % 7},${i},${(i / 100).toFixed(2)},${note}\n`)
  const block = Buffer.from(lines.join(''))
  const fd = openSync(file, 'w')
  try {
    writeSync(fd, 'key,t,x,note\n')
    for (let b = 0; b < BLOCKS; b++) writeSync(fd, block)
  } finally {
    closeSync(fd)
  }
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rxrnn-csv-large-'))
  path = join(dir, 'big.csv')
  writeBigCsv(path)
})

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true })
})

function runChild(script: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(
    process.execPath,
    [`--max-old-space-size=${HEAP_MB}`, '--import', 'tsx', '--input-type=module', '-e', script],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk
  })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk
  })
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })))
}

describe('CSV larger than the heap', () => {
  it(`csvRows$ reads a file over twice the ${HEAP_MB} MiB heap to its end in a capped process`, async () => {
    const size = statSync(path).size
    expect(size).toBeGreaterThan(2 * HEAP_MB * 1024 * 1024)
    const script = [
      `const { csvRows$ } = await import(${JSON.stringify(csvModule)})`,
      'let rows = 0',
      'let lastT = ""',
      'let peak = 0',
      `csvRows$(${JSON.stringify(path)}).subscribe({`,
      '  next: (row) => { rows++; lastT = row.t; if (rows % 10000 === 0) peak = Math.max(peak, process.memoryUsage().heapUsed) },',
      '  error: (e) => { console.error(e); process.exit(2) },',
      '  complete: () => console.log(JSON.stringify({ rows, lastT, peakMb: peak / 2 ** 20 })),',
      '})',
    ].join('\n')
    const { code, stdout, stderr } = await runChild(script)
    expect(stderr).toBe('')
    expect(code).toBe(0)
    const result = JSON.parse(stdout) as { rows: number; lastT: string; peakMb: number }
    expect(result.rows).toBe(BLOCKS * BLOCK_ROWS)
    expect(result.lastT).toBe(String(BLOCK_ROWS - 1))
    // Far below the file's size: what is held is a few chunks and a few hundred rows.
    expect(result.peakMb).toBeLessThan(HEAP_MB)
  })

  it('openCsv reads only as far as the rows pulled', async () => {
    const csv = await openCsv(path)
    try {
      expect(csv.columns).toEqual(['key', 't', 'x', 'note'])
      for (let i = 0; i < 10; i++) await csv.rows.next()
      // Give the stream a chance to read on if it did not wait for us.
      await new Promise((resolve) => setTimeout(resolve, 50))
      expect(csv.bytesRead()).toBeLessThan(4 * 1024 * 1024)
      expect(csv.size).toBeGreaterThan(100 * 1024 * 1024)
    } finally {
      csv.close()
    }
  })
})

describe('openCsv', () => {
  it('refuses a quote inside an unquoted field, naming its line (RFC 4180 wants the field quoted)', async () => {
    const quoted = join(dir, 'quote.csv')
    writeFileSync(quoted, 'a,b\n1,2\n3,x"y\n')
    const csv = await openCsv(quoted)
    expect(await csv.rows.next()).toEqual({ done: false, value: { a: '1', b: '2' } })
    await expect(csv.rows.next()).rejects.toMatchObject({
      code: 'bad_input',
      problems: ['line 3: a quote inside an unquoted field (quote the field and double the quote: "x""y")'],
    })
  })

  it('has no more rows once closed, even those already parsed', async () => {
    const csv = await openCsv(path)
    await csv.rows.next()
    csv.close()
    expect(await csv.rows.next()).toEqual({ done: true, value: undefined })
  })

  it('reports a malformed row with its line, after the rows before it', async () => {
    const small = join(dir, 'small.csv')
    writeFileSync(small, 'a,b\n1,2\n3\n')
    const csv = await openCsv(small)
    expect(await csv.rows.next()).toEqual({ done: false, value: { a: '1', b: '2' } })
    await expect(csv.rows.next()).rejects.toMatchObject({
      code: 'bad_input',
      problems: ['line 3: 1 fields, but the header has 2'],
    })
  })
})
