import { readFile } from 'node:fs/promises'
import {
  asyncScheduler,
  defer,
  from,
  map,
  mergeMap,
  type Observable,
  type SchedulerLike,
  take,
  timer,
} from 'rxjs'
import { RxrnnError } from '../../../src/errors.js'

/** A parsed CSV file: the header row, and one record per data row keyed by header name. */
export interface CsvTable {
  /** Column names, from the header row, in file order. */
  columns: string[]
  /** Data rows; every row has every column (ragged rows are rejected). */
  rows: Record<string, string>[]
}

/** Options for {@link csvRows$}. */
export interface CsvRowsOptions {
  /**
   * Emit this many rows per second (the first row at once), to replay a recorded file as a live
   * feed. Omitted: emit every row as fast as the subscriber takes them.
   */
  ratePerSecond?: number
  /** Scheduler for the pacing timer; a `VirtualTimeScheduler` replays without waiting. */
  scheduler?: SchedulerLike
}

// The 1-based line where each row read by `readCsv` starts, so that later errors can point at it.
const rowLines = new WeakMap<object, number>()

/**
 * Parses CSV text (RFC 4180): a header row, then data rows; fields separated by commas; quoted
 * fields may hold commas, line breaks and doubled quotes (`""`). Line breaks may be CRLF, LF or
 * CR; a leading byte-order mark and blank lines are skipped; a final line break is optional.
 * Fields are not trimmed. A stray quote inside an unquoted field is kept as text.
 *
 * @throws RxrnnError `bad_input` for an unterminated quote, text after a closing quote, a
 * duplicate column name, or rows with a different number of fields than the header, naming the
 * line of each.
 *
 * @example
 * const { columns, rows } = readCsv('date,close\r\n2020-01-02,"3,257.85"\r\n')
 * // columns: ['date', 'close'], rows: [{ date: '2020-01-02', close: '3,257.85' }]
 */
export function readCsv(text: string): CsvTable {
  const records = parseRecords(text)
  const header = records[0]
  if (header === undefined) return { columns: [], rows: [] }
  const columns = header.fields
  const problems: string[] = []
  const seen = new Set<string>()
  for (const name of columns) {
    if (seen.has(name)) problems.push(`line ${header.line}: column "${name}" appears twice in the header`)
    seen.add(name)
  }
  const rows: Record<string, string>[] = []
  for (let r = 1; r < records.length; r++) {
    const { fields, line } = records[r]!
    if (fields.length !== columns.length) {
      problems.push(`line ${line}: ${fields.length} fields, but the header has ${columns.length}`)
      continue
    }
    // fromEntries defines own properties, so a column named "__proto__" stays a plain column.
    const row: Record<string, string> = Object.fromEntries(columns.map((name, k) => [name, fields[k]!]))
    rowLines.set(row, line)
    rows.push(row)
  }
  if (problems.length > 0) throw csvError(problems)
  return { columns, rows }
}

/**
 * The 1-based line of the file where `row` starts, for a row returned by {@link readCsv} or
 * {@link csvRows$}; `undefined` for rows built elsewhere.
 *
 * @example
 * const { rows } = readCsv('a\n1\n2\n')
 * csvLineOf(rows[1]!) // 3
 */
export function csvLineOf(row: Record<string, string>): number | undefined {
  return rowLines.get(row)
}

/**
 * Reads the numeric cells `columns` of `row` into `out` (a new array when omitted; pass one to
 * allocate nothing per row). A cell is numeric when it is a decimal number such as `12`, `-0.5`
 * or `1e-3`, surrounding spaces allowed; empty cells, `NaN`, `Infinity` and hex are not.
 *
 * @throws RxrnnError `bad_input` naming every missing column and every non-numeric cell, with
 * the row's line number when the row came from {@link readCsv}.
 *
 * @example
 * const { rows } = readCsv('date,open,close\n2020-01-02,3244.67,3257.85\n')
 * const x = selectColumns(rows[0]!, ['open', 'close']) // Float64Array [3244.67, 3257.85]
 */
export function selectColumns(
  row: Record<string, string>,
  columns: readonly string[],
  out: Float64Array = new Float64Array(columns.length),
): Float64Array {
  if (out.length !== columns.length) {
    throw new RxrnnError(
      'bad_config',
      `selectColumns: out has length ${out.length} but ${columns.length} columns were asked for; pass an array of length ${columns.length}`,
    )
  }
  let problems: string[] | undefined
  for (let k = 0; k < columns.length; k++) {
    const name = columns[k]!
    const cell = Object.hasOwn(row, name) ? row[name] : undefined
    if (cell === undefined) {
      ;(problems ??= []).push(`column "${name}" is missing (the columns are: ${Object.keys(row).join(', ')})`)
    } else if (!NUMBER.test(cell)) {
      const line = rowLines.get(row)
      const where = line === undefined ? '' : `line ${line}, `
      ;(problems ??= []).push(`${where}column "${name}": ${JSON.stringify(cell)} is not a number`)
    } else {
      out[k] = Number(cell)
    }
  }
  if (problems !== undefined) {
    const hint = 'check the column names and clean or filter the rows before selecting them'
    const message =
      problems.length === 1
        ? `Cannot read numeric CSV columns: ${problems[0]}; ${hint}`
        : `Cannot read numeric CSV columns (${hint})`
    throw new RxrnnError('bad_input', message, problems)
  }
  return out
}

/**
 * Reads the CSV file at `path` and emits its data rows (see {@link readCsv}), optionally paced at
 * `ratePerSecond` to replay a recording as a live feed. Cold: each subscription reads the file
 * again. The whole file is read before the first row; this suits files up to some hundreds of MB.
 *
 * @example
 * // Replay the S&P 500 file at 20 trading days per second, as a vector [open, close] per day.
 * csvRows$(vegaDataPath('sp500-2000.csv'), { ratePerSecond: 20 })
 *   .pipe(map((row) => selectColumns(row, ['open', 'close'])))
 *   .subscribe((x) => console.log(x))
 */
export function csvRows$(
  path: string | URL,
  options: CsvRowsOptions = {},
): Observable<Record<string, string>> {
  const { ratePerSecond, scheduler = asyncScheduler } = options
  if (ratePerSecond !== undefined && !(Number.isFinite(ratePerSecond) && ratePerSecond > 0)) {
    throw new RxrnnError(
      'bad_config',
      `csvRows$: ratePerSecond must be a positive number, got ${ratePerSecond}; omit it to emit rows unpaced`,
    )
  }
  return defer(async () => {
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (e) {
      throw new RxrnnError('bad_input', `Cannot read CSV file ${String(path)}: ${(e as Error).message}`)
    }
    return readCsv(text).rows
  }).pipe(
    mergeMap((rows) =>
      ratePerSecond === undefined
        ? from(rows)
        : timer(0, 1000 / ratePerSecond, scheduler).pipe(
            take(rows.length),
            map((i) => rows[i]!),
          ),
    ),
  )
}

const NUMBER = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/

interface CsvRecord {
  fields: string[]
  line: number
}

function parseRecords(text: string): CsvRecord[] {
  const records: CsvRecord[] = []
  const n = text.length
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0
  let line = 1
  const problems: string[] = []
  while (i < n) {
    const recordLine = line
    const fields: string[] = []
    let quoted = false
    for (;;) {
      if (text.charCodeAt(i) === QUOTE) {
        quoted = true
        const quoteLine = line
        let value = ''
        let start = ++i
        for (;;) {
          const q = text.indexOf('"', i)
          if (q < 0) throw csvError([`line ${quoteLine}: a quoted field is never closed`])
          line += countLineBreaks(text, i, q)
          if (text.charCodeAt(q + 1) === QUOTE) {
            value += text.slice(start, q + 1)
            i = start = q + 2
          } else {
            value += text.slice(start, q)
            i = q + 1
            break
          }
        }
        fields.push(value)
        const c = text.charCodeAt(i)
        if (i < n && c !== COMMA && c !== LF && c !== CR) {
          problems.push(`line ${line}: text after the closing quote of a field (quote a quote as "")`)
          while (i < n && text.charCodeAt(i) !== COMMA && !isLineBreak(text.charCodeAt(i))) i++
        }
      } else {
        let j = i
        while (j < n) {
          const c = text.charCodeAt(j)
          if (c === COMMA || c === LF || c === CR) break
          j++
        }
        fields.push(text.slice(i, j))
        i = j
      }
      if (i < n && text.charCodeAt(i) === COMMA) {
        i++
        continue
      }
      if (text.charCodeAt(i) === CR) i++
      if (text.charCodeAt(i) === LF) i++
      line++
      break
    }
    const blank = fields.length === 1 && fields[0] === '' && !quoted
    if (!blank) records.push({ fields, line: recordLine })
  }
  if (problems.length > 0) throw csvError(problems)
  return records
}

function countLineBreaks(text: string, from: number, to: number): number {
  let count = 0
  for (let k = from; k < to; k++) {
    const c = text.charCodeAt(k)
    if (c === LF || (c === CR && text.charCodeAt(k + 1) !== LF)) count++
  }
  return count
}

function isLineBreak(c: number): boolean {
  return c === LF || c === CR
}

function csvError(problems: string[]): RxrnnError {
  const shown =
    problems.length > 20 ? [...problems.slice(0, 20), `and ${problems.length - 20} more`] : problems
  const hint = 'fix the file (RFC 4180: quote fields holding commas, quotes or line breaks)'
  return new RxrnnError(
    'bad_input',
    shown.length === 1 ? `Malformed CSV: ${shown[0]}; ${hint}` : `Malformed CSV (${hint})`,
    shown,
  )
}

const QUOTE = 34
const COMMA = 44
const LF = 10
const CR = 13
