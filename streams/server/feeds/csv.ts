/**
 * CSV files as rows, on csv-parse: `readCsv` for text in memory, `openCsv` and `csvRows$` for files
 * of any size, read as a stream (chunk by chunk, at the pace of the consumer).
 */
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { CsvError, type Info, type Options, parse } from 'csv-parse'
import { parse as parseText } from 'csv-parse/sync'
import { asyncScheduler, Observable, type SchedulerAction, type SchedulerLike } from 'rxjs'
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

/**
 * An open CSV file: its header, and its data rows read on demand (the file is read a chunk at a
 * time as the rows are pulled, so its size does not matter). Close it when you stop early.
 */
export interface CsvFile {
  /** Column names, from the header row, in file order (empty for an empty file). */
  readonly columns: string[]
  /** The data rows, in order, each pulled when asked for. Throws `bad_input` at a malformed row. */
  readonly rows: AsyncIterableIterator<Record<string, string>>
  /** The file's size in bytes. */
  readonly size: number
  /** Bytes read from the file so far (ahead of the rows pulled by at most a chunk or two). */
  bytesRead(): number
  /** Stops reading and closes the file; idempotent. */
  close(): void
}

// The 1-based line where each row read by `readCsv` or `openCsv` starts, so later errors can point at it.
const rowLines = new WeakMap<object, number>()

// RFC 4180, strict about quotes; blank lines and a byte-order mark are skipped; ragged rows are
// let through to be reported with their line by `Rows`.
const parserOptions: Options = {
  bom: true,
  skip_empty_lines: true,
  relax_column_count: true,
  info: true,
}

/** A record from csv-parse with `info: true`. */
interface ParsedRecord {
  record: string[]
  info: Info
}

/**
 * Turns csv-parse's records into rows: the header, each row's starting line, and the problems.
 * csv-parse's `info.lines` is the line a record ends on, except that it counts a CRLF inside a
 * quoted field twice; the CRLFs inside fields are counted here and taken off.
 */
class Rows {
  columns: string[] | null = null
  /** No column name that plain assignment would treat specially. */
  private plainColumns = true
  /** Line of the end of the last record, corrected. */
  private endLine = 0
  private emptyLines = 0
  private innerCrlf = 0

  /** The row for a record, or null for the header; throws `bad_input` for a ragged row. */
  accept(parsed: ParsedRecord): Record<string, string> | null {
    const { record, info } = parsed
    const line = this.startLine(info.empty_lines)
    for (const field of record) this.innerCrlf += countCrlf(field)
    this.endLine = info.lines - this.innerCrlf
    this.emptyLines = info.empty_lines
    if (this.columns === null) {
      this.columns = record
      this.plainColumns = !record.includes('__proto__')
      const seen = new Set<string>()
      const problems: string[] = []
      for (const name of record) {
        if (seen.has(name)) problems.push(`line ${line}: column "${name}" appears twice in the header`)
        seen.add(name)
      }
      if (problems.length > 0) throw csvError(problems)
      return null
    }
    const columns = this.columns
    if (record.length !== columns.length) {
      throw csvError([`line ${line}: ${record.length} fields, but the header has ${columns.length}`])
    }
    let row: Record<string, string>
    if (this.plainColumns) {
      // Same keys in the same order: every row shares one object shape.
      row = {}
      for (let k = 0; k < columns.length; k++) row[columns[k]!] = record[k]!
    } else {
      // fromEntries defines own properties, so a column named "__proto__" stays a plain column.
      row = Object.fromEntries(columns.map((name, k) => [name, record[k]!]))
    }
    rowLines.set(row, line)
    return row
  }

  /** csv-parse's error, with the line of the problem and what to do. */
  explain(error: unknown): unknown {
    if (!(error instanceof CsvError)) return error
    const { lines, empty_lines } = error as CsvError & Partial<Info>
    const at = lines === undefined ? '' : `line ${lines - this.innerCrlf}: `
    switch (error.code) {
      case 'CSV_QUOTE_NOT_CLOSED':
        return csvError([
          `line ${this.startLine(empty_lines ?? this.emptyLines)}: a quoted field is never closed`,
        ])
      case 'CSV_INVALID_CLOSING_QUOTE':
        return csvError([`${at}text after the closing quote of a field (quote a quote as "")`])
      case 'INVALID_OPENING_QUOTE':
        return csvError([
          `${at}a quote inside an unquoted field (quote the field and double the quote: "x""y")`,
        ])
      default:
        return csvError([`${at}${error.message}`])
    }
  }

  private startLine(emptyLines: number): number {
    return this.endLine + (emptyLines - this.emptyLines) + 1
  }
}

function countCrlf(field: string): number {
  let count = 0
  for (let k = field.indexOf('\r\n'); k >= 0; k = field.indexOf('\r\n', k + 2)) count++
  return count
}

/**
 * Parses CSV text (RFC 4180) with csv-parse: a header row, then data rows; fields separated by
 * commas; quoted fields may hold commas, line breaks and doubled quotes (`""`). Line breaks may be
 * CRLF, LF or CR (one kind per file); a leading byte-order mark and blank lines are skipped; a
 * final line break is optional. Fields are not trimmed.
 *
 * @throws RxrnnError `bad_input` for an unterminated quote, text after a closing quote, a quote
 * inside an unquoted field, a duplicate column name, or rows with a different number of fields
 * than the header (every one of those is listed), naming the line of each.
 *
 * @example
 * const { columns, rows } = readCsv('date,close\r\n2020-01-02,"3,257.85"\r\n')
 * // columns: ['date', 'close'], rows: [{ date: '2020-01-02', close: '3,257.85' }]
 */
export function readCsv(text: string): CsvTable {
  const reader = new Rows()
  const rows: Record<string, string>[] = []
  const problems: string[] = []
  const onRecord = (parsed: ParsedRecord): undefined => {
    try {
      const row = reader.accept(parsed)
      if (row !== null) rows.push(row)
    } catch (error) {
      if (!(error instanceof RxrnnError)) throw error
      problems.push(...error.problems)
    }
  }
  try {
    // Each record goes to `reader` as it is parsed, so an error later on knows where it is.
    parseText(text, { ...parserOptions, on_record: onRecord as unknown as Options['on_record'] })
  } catch (error) {
    throw reader.explain(error)
  }
  if (problems.length > 0) throw csvError(problems)
  return { columns: reader.columns ?? [], rows }
}

/**
 * Opens a CSV file and reads its header; the rows follow on demand from `rows`, parsed by
 * csv-parse as the file streams in, so a file larger than memory reads in constant memory.
 *
 * @throws RxrnnError `bad_input` when the file cannot be read or its header is malformed.
 *
 * @example
 * const csv = await openCsv('ticks.csv')
 * for await (const row of csv.rows) console.log(row.price)
 */
export async function openCsv(path: string | URL): Promise<CsvFile> {
  const file = createReadStream(path, { highWaterMark: 256 * 1024 })
  const opened = new Promise<number>((resolve, reject) => {
    file.once('error', reject)
    file.once('open', (fd: number) => resolve(fd))
  })
  let size: number
  try {
    await opened
    size = (await stat(path)).size
  } catch (e) {
    file.destroy()
    throw new RxrnnError('bad_input', `Cannot read CSV file ${String(path)}: ${(e as Error).message}`)
  }
  const parser = parse(parserOptions)
  file.on('error', (e) =>
    parser.destroy(new RxrnnError('bad_input', `Cannot read CSV file ${String(path)}: ${e.message}`)),
  )
  file.pipe(parser)
  const reader = new Rows()
  // Records are taken from the parser in paused mode, all that it holds at a time: the stream's
  // own async iterator costs a promise chain per record, which is most of the time on big files.
  // Taking nothing leaves the parser's buffer full, which pauses the file (backpressure).
  const batch: ParsedRecord[] = []
  let index = 0
  let ended = false
  let failure: unknown
  let wake: (() => void) | null = null
  const wakeUp = (): void => {
    const resolve = wake
    wake = null
    resolve?.()
  }
  parser.on('readable', wakeUp)
  parser.on('end', () => {
    ended = true
    wakeUp()
  })
  parser.on('error', (error) => {
    failure = error
    wakeUp()
  })
  let closed = false
  const close = (): void => {
    if (closed) return
    closed = true
    file.destroy()
    parser.destroy()
    // A read waiting for the parser ends now (with no more rows).
    wakeUp()
  }
  const nextRecord = async (): Promise<ParsedRecord | undefined> => {
    for (;;) {
      if (closed) return undefined
      if (index < batch.length) return batch[index++]
      if (failure !== undefined) throw reader.explain(failure)
      batch.length = 0
      index = 0
      for (let record = parser.read(); record !== null; record = parser.read()) batch.push(record)
      if (batch.length > 0) continue
      if (ended) return undefined
      await new Promise<void>((resolve) => {
        wake = resolve
      })
    }
  }
  const nextRow = async (): Promise<Record<string, string> | undefined> => {
    try {
      for (let parsed = await nextRecord(); parsed !== undefined; parsed = await nextRecord()) {
        const row = reader.accept(parsed)
        if (row !== null) return row
      }
    } catch (error) {
      close()
      throw error
    }
    close()
    return undefined
  }
  const header = await nextRecord().catch((error) => {
    close()
    throw error
  })
  if (header !== undefined) reader.accept(header)
  const rows: AsyncIterableIterator<Record<string, string>> = {
    [Symbol.asyncIterator]() {
      return this
    },
    async next() {
      const row = await nextRow()
      return row === undefined ? { done: true, value: undefined } : { done: false, value: row }
    },
    async return() {
      close()
      return { done: true, value: undefined }
    },
  }
  return { columns: reader.columns ?? [], rows, size, bytesRead: () => file.bytesRead, close }
}

/**
 * The 1-based line of the file where `row` starts, for a row returned by {@link readCsv},
 * {@link openCsv} or {@link csvRows$}; `undefined` for rows built elsewhere.
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

/** Rows read ahead of the subscriber: enough to ride out a read, few enough to stay small. */
const READ_AHEAD = 512

/**
 * Reads the CSV file at `path` and emits its data rows (see {@link readCsv}), optionally paced at
 * `ratePerSecond` to replay a recording as a live feed. Cold: each subscription reads the file
 * again. The file streams through csv-parse: at most a few hundred rows are read ahead of the
 * subscriber, and more are read only once it has taken those (synchronously, or at the pace), so
 * a file of any size replays in constant memory. A malformed row errors the stream at that row.
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
  return new Observable<Record<string, string>>((subscriber) => {
    let csv: CsvFile | undefined
    let queue: Record<string, string>[] = []
    let head = 0
    let done = false
    let filling: Promise<void> | null = null
    /** Reads rows until READ_AHEAD wait (or the file ends); one read at a time. */
    const fill = (): Promise<void> => {
      filling ??= (async () => {
        if (head > 0) {
          queue = queue.slice(head)
          head = 0
        }
        while (!done && queue.length < READ_AHEAD && !subscriber.closed) {
          const next = await csv!.rows.next()
          if (next.done) done = true
          else queue.push(next.value)
        }
      })().finally(() => {
        filling = null
      })
      return filling
    }
    const fail = (error: unknown): void => {
      if (!subscriber.closed) subscriber.error(error)
    }

    const unpaced = async (): Promise<void> => {
      for (;;) {
        await fill()
        while (head < queue.length) {
          if (subscriber.closed) return
          subscriber.next(queue[head++]!)
        }
        if (done) {
          subscriber.complete()
          return
        }
      }
    }

    const period = ratePerSecond === undefined ? 0 : 1000 / ratePerSecond
    const tick = function (this: SchedulerAction<undefined> | undefined): void {
      if (subscriber.closed) return
      if (head === queue.length) {
        if (done) subscriber.complete()
        // The reader fell behind the pace: go on as soon as it has rows.
        else fill().then(() => scheduler.schedule(tick), fail)
        return
      }
      subscriber.next(queue[head++]!)
      if (head === queue.length && done) {
        subscriber.complete()
        return
      }
      if (!done && queue.length - head < READ_AHEAD / 2) fill().catch(fail)
      if (this) this.schedule(undefined, period)
      else scheduler.schedule(tick, period)
    }

    openCsv(path)
      .then(async (opened) => {
        csv = opened
        if (subscriber.closed) return opened.close()
        if (ratePerSecond === undefined) return unpaced()
        await fill()
        if (!subscriber.closed) scheduler.schedule(tick)
      })
      .catch(fail)
    return () => csv?.close()
  })
}

const NUMBER = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/

function csvError(problems: string[]): RxrnnError {
  const shown =
    problems.length > 20 ? [...problems.slice(0, 20), `and ${problems.length - 20} more`] : problems
  const hint =
    'fix the file (RFC 4180: quote fields holding commas, quotes or line breaks, and double the quotes in them)'
  return new RxrnnError(
    'bad_input',
    shown.length === 1 ? `Malformed CSV: ${shown[0]}; ${hint}` : `Malformed CSV (${hint})`,
    shown,
  )
}
