import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { firstValueFrom, toArray, VirtualTimeScheduler } from 'rxjs'
import { describe, expect, it, vi } from 'vitest'
import { RxrnnError } from '../../../src/errors.js'
import { loadSeattleHourly, loadSp500Daily, vegaDataPath } from '../../../streams/demo/datasets.js'
import { csvLineOf, csvRows$, readCsv, selectColumns } from '../../../streams/server/feeds/csv.js'

/** Writes a table as RFC 4180 CSV, quoting only the fields that need it. */
function writeCsv(columns: string[], rows: string[][], newline: string): string {
  const field = (s: string) => (/[",\r\n]/.test(s) || s === '' ? `"${s.replaceAll('"', '""')}"` : s)
  return [columns, ...rows].map((r) => r.map(field).join(',')).join(newline) + newline
}

function thrown(f: () => unknown): RxrnnError {
  try {
    f()
  } catch (e) {
    if (e instanceof RxrnnError) return e
    throw e
  }
  throw new Error('expected an RxrnnError')
}

describe('readCsv', () => {
  it('reads a header and rows, with quoted commas, doubled quotes and line breaks in fields', () => {
    const text = 'name,note,value\r\n"Smith, J.","said ""hi""\r\nthen left",3\r\nplain,,-1.5\r\n'
    const { columns, rows } = readCsv(text)
    expect(columns).toEqual(['name', 'note', 'value'])
    expect(rows).toEqual([
      { name: 'Smith, J.', note: 'said "hi"\r\nthen left', value: '3' },
      { name: 'plain', note: '', value: '-1.5' },
    ])
    // The quoted line break moves the third record to line 4.
    expect(rows.map((r) => csvLineOf(r))).toEqual([2, 4])
  })

  it('accepts LF and lone CR line breaks, a missing final line break, a BOM and blank lines', () => {
    expect(readCsv('\ufeffa,b\n1,2\n\n3,4').rows).toEqual([
      { a: '1', b: '2' },
      { a: '3', b: '4' },
    ])
    expect(readCsv('a,b\r1,2\r3,4\r').rows).toEqual([
      { a: '1', b: '2' },
      { a: '3', b: '4' },
    ])
    const spaced = readCsv('a\n\n\n5\n')
    expect(spaced.rows).toEqual([{ a: '5' }])
    expect(csvLineOf(spaced.rows[0]!)).toBe(4)
  })

  it('keeps fields untrimmed, a quoted empty field as a row, and a trailing comma as an empty field', () => {
    expect(readCsv('a,b\n 1 , x\n').rows).toEqual([{ a: ' 1 ', b: ' x' }])
    expect(readCsv('a\n""\n').rows).toEqual([{ a: '' }])
    expect(readCsv('a,b\n1,\n').rows).toEqual([{ a: '1', b: '' }])
  })

  it('reads empty text as no columns and no rows, and a header alone as no rows', () => {
    expect(readCsv('')).toEqual({ columns: [], rows: [] })
    expect(readCsv('x,y\r\n')).toEqual({ columns: ['x', 'y'], rows: [] })
  })

  it('keeps a column named __proto__ as an ordinary column', () => {
    const { rows } = readCsv('__proto__,b\n1,2\n')
    expect(Object.keys(rows[0]!)).toEqual(['__proto__', 'b'])
    expect(Object.getOwnPropertyDescriptor(rows[0]!, '__proto__')?.value).toBe('1')
    expect(Object.getPrototypeOf(rows[0]!)).toBe(Object.prototype)
  })

  it('names the line of an unterminated quote', () => {
    const e = thrown(() => readCsv('a,b\n1,2\n3,"open\n4,5\n'))
    expect(e.code).toBe('bad_input')
    expect(e.message).toContain('line 3')
    expect(e.message).toContain('never closed')
  })

  it('rejects text after a closing quote, duplicate columns and ragged rows, listing every one', () => {
    expect(thrown(() => readCsv('a,b\n"x"y,2\n')).message).toContain('line 2: text after the closing quote')
    expect(thrown(() => readCsv('a,a\n1,2\n')).message).toContain('column "a" appears twice')
    const ragged = thrown(() => readCsv('a,b\n1,2\n3\n4,5,6\n'))
    expect(ragged.problems).toEqual([
      'line 3: 1 fields, but the header has 2',
      'line 4: 3 fields, but the header has 2',
    ])
  })

  it('reads back any table written as RFC 4180 CSV', () => {
    const text = fc.string({ unit: fc.constantFrom('a', 'b', ',', '"', '\r', '\n', ' ', 'é') })
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 4 })
          .chain((width) =>
            fc.tuple(
              fc.uniqueArray(text, { minLength: width, maxLength: width }),
              fc.array(fc.array(text, { minLength: width, maxLength: width }), { maxLength: 6 }),
              fc.constantFrom('\r\n', '\n'),
            ),
          ),
        ([columns, rows, newline]) => {
          const table = readCsv(writeCsv(columns, rows, newline))
          expect(table.columns).toEqual(columns)
          expect(table.rows.map((row) => columns.map((c) => row[c]))).toEqual(rows)
        },
      ),
    )
  })
})

describe('selectColumns', () => {
  const { rows } = readCsv('date,open,close,note\n2020-01-02, 3244.5 ,1e3,x\n2020-01-03,n/a,,y\n')

  it('reads numeric cells into a Float64Array, in the order asked, reusing `out`', () => {
    expect(Array.from(selectColumns(rows[0]!, ['close', 'open']))).toEqual([1000, 3244.5])
    const out = new Float64Array(1)
    expect(selectColumns(rows[0]!, ['open'], out)).toBe(out)
    expect(out[0]).toBe(3244.5)
  })

  it('names a missing column and lists the columns there are', () => {
    const e = thrown(() => selectColumns(rows[0]!, ['clsoe']))
    expect(e.code).toBe('bad_input')
    expect(e.message).toContain('column "clsoe" is missing (the columns are: date, open, close, note)')
  })

  it('names every non-numeric cell with its line number', () => {
    const e = thrown(() => selectColumns(rows[1]!, ['open', 'close']))
    expect(e.code).toBe('bad_input')
    expect(e.problems).toEqual([
      'line 3, column "open": "n/a" is not a number',
      'line 3, column "close": "" is not a number',
    ])
    for (const cell of ['NaN', 'Infinity', '0x10', '1,5', '-', '.']) {
      expect(() => selectColumns({ v: cell }, ['v'])).toThrow(/is not a number/)
    }
    for (const [cell, value] of [
      ['+.5', 0.5],
      ['-2.', -2],
      ['6E-2', 0.06],
    ] as const) {
      expect(selectColumns({ v: cell }, ['v'])[0]).toBe(value)
    }
  })
})

describe('csvRows$', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rxrnn-csv-'))
  const path = join(dir, 'ticks.csv')
  writeFileSync(path, 't,price\n1,10.5\n2,10.75\n3,"11"\n')

  it('emits the rows of a file', async () => {
    const rows = await firstValueFrom(csvRows$(path).pipe(toArray()))
    expect(rows).toEqual([
      { t: '1', price: '10.5' },
      { t: '2', price: '10.75' },
      { t: '3', price: '11' },
    ])
    expect(csvLineOf(rows[2]!)).toBe(4)
  })

  it('paces rows at ratePerSecond, the first at once', async () => {
    const scheduler = new VirtualTimeScheduler()
    const seen: [number, string][] = []
    let done = false
    csvRows$(path, { ratePerSecond: 4, scheduler }).subscribe({
      next: (row) => seen.push([scheduler.now(), row.t!]),
      complete: () => {
        done = true
      },
    })
    // The file is read asynchronously; then the virtual clock runs the pacing timer.
    await vi.waitFor(() => expect(scheduler.actions.length).toBeGreaterThan(0))
    scheduler.flush()
    expect(seen).toEqual([
      [0, '1'],
      [250, '2'],
      [500, '3'],
    ])
    expect(done).toBe(true)
  })

  it('errors with bad_input for a missing file, and bad_config for a bad rate', async () => {
    await expect(firstValueFrom(csvRows$(join(dir, 'absent.csv')))).rejects.toMatchObject({
      code: 'bad_input',
    })
    expect(() => csvRows$(path, { ratePerSecond: 0 })).toThrow(RxrnnError)
  })
})

describe('datasets', () => {
  it('resolves files inside the installed vega-datasets package', () => {
    expect(vegaDataPath('sp500-2000.csv')).toMatch(/vega-datasets[\\/]data[\\/]sp500-2000\.csv$/)
  })

  it('loads 5105 S&P 500 trading days from 2000-01-03 to 2020-04-17, sorted, finite and consistent', async () => {
    const days = await loadSp500Daily()
    expect(days.length).toBe(5105)
    expect(Object.keys(days[0]!)).toEqual(['date', 'open', 'high', 'low', 'close', 'volume'])
    expect(days[0]).toEqual({
      date: '2000-01-03',
      open: 1469.25,
      high: 1478,
      low: 1438.359985,
      close: 1455.219971,
      volume: 931800000,
    })
    expect(days.at(-1)!.date).toBe('2020-04-17')
    for (let i = 0; i < days.length; i++) {
      const d = days[i]!
      expect(d.date).toMatch(/^\d{4}-\d{2}-\d{2}$/)
      if (i > 0) expect(d.date > days[i - 1]!.date).toBe(true)
      for (const v of [d.open, d.high, d.low, d.close, d.volume])
        expect(Number.isFinite(v) && v > 0).toBe(true)
      expect(d.low <= Math.min(d.open, d.close) && d.high >= Math.max(d.open, d.close)).toBe(true)
    }
  })

  it('loads 8759 Seattle hourly normals for 2010, sorted one hour apart, finite and in range', async () => {
    const hours = await loadSeattleHourly()
    expect(hours.length).toBe(8759)
    expect(Object.keys(hours[0]!)).toEqual(['date', 'pressure', 'temperature', 'wind'])
    expect(hours[0]).toEqual({ date: '2010-01-01T01:00:00', pressure: 1016.6, temperature: 4, wind: 3.8 })
    expect(hours.at(-1)!.date).toBe('2010-12-31T23:00:00')
    for (let i = 0; i < hours.length; i++) {
      const h = hours[i]!
      if (i > 0) expect(Date.parse(`${h.date}Z`) - Date.parse(`${hours[i - 1]!.date}Z`)).toBe(3_600_000)
      expect(h.pressure).toBeGreaterThan(1010)
      expect(h.pressure).toBeLessThan(1025)
      expect(h.temperature).toBeGreaterThan(0)
      expect(h.temperature).toBeLessThan(30)
      expect(h.wind).toBeGreaterThan(0)
      expect(h.wind).toBeLessThan(10)
    }
  })
})
