/**
 * The demo (`npm start`), in its quick mode: real servers on 127.0.0.1, real producers over
 * WebSocket, real data; the summary's numbers are read back from its output.
 */
import { get } from 'node:http'
import { firstValueFrom } from 'rxjs'
import { filter } from 'rxjs/operators'
import { describe, expect, it } from 'vitest'
import { runDemo, runDemoUntil } from '../../streams/demo/index.js'
import { webSocketConnection } from '../../streams/transport/ws-source.js'

/** The numbers of the summary row that starts with `name`, in the section titled `title`. */
function row(lines: string[], title: string, name: string): number[] {
  const start = lines.findIndex((l) => l.startsWith(title))
  expect(start).toBeGreaterThanOrEqual(0)
  const line = lines.slice(start).find((l) => l.trimStart().startsWith(name))
  expect(line).toBeDefined()
  return line!.trim().slice(name.length).trim().split(/\s+/).map(Number)
}

function httpStatus(url: string): Promise<{ status: number; type: string }> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      res.resume()
      resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']) })
    }).on('error', reject)
  })
}

describe('runDemo', () => {
  it('replays both feeds over WebSocket and prints an honest summary next to persistence', async () => {
    const lines: string[] = []
    await runDemo({ quick: true, log: (line) => lines.push(line) })
    const text = lines.join('\n')

    expect(text).toMatch(/ws:\/\/127\.0\.0\.1:\d+ +dashboard http:\/\/127\.0\.0\.1:\d+\//)
    expect(text).toContain('persistence')
    expect(text).not.toMatch(/NaN|Infinity/)
    expect(lines.filter((l) => / ticks refused/.test(l)).every((l) => l.includes(' 0 ticks refused'))).toBe(
      true,
    )
    // Progress lines: events, loss, gradient norm, clip rate.
    expect(text).toMatch(/S&P 500 600\/600 days {2}loss [\d.]+ {2}grad [\d.]+ {2}clip \d+%/)
    expect(text).toMatch(/Seattle 1000\/1000 hours/)

    // S&P 500: [RMSE, MAE] in % log return. No better than zero (returns are near random),
    // and persistence, which adds a second day's noise, is far worse than either.
    expect(text).toContain('over 500 days')
    const model = row(lines, 'S&P 500 daily', 'GRU (online)')
    const persistence = row(lines, 'S&P 500 daily', 'persistence')
    const zero = row(lines, 'S&P 500 daily', 'zero')
    expect(model).toHaveLength(2)
    expect(model[0]!).toBeLessThan(zero[0]! * 1.05)
    expect(model[0]!).toBeLessThan(persistence[0]! * 0.8)
    expect(zero[0]!).toBeLessThan(persistence[0]!)

    // Seattle: [temperature RMSE, MAE, pressure RMSE, MAE]; the daily cycle beats persistence on temperature.
    expect(text).toContain('over 800 hours')
    const weather = row(lines, 'Seattle hourly', 'GRU (online)')
    const weatherPersistence = row(lines, 'Seattle hourly', 'persistence')
    expect(weather).toHaveLength(4)
    expect(weather[0]!).toBeLessThan(weatherPersistence[0]!)
    expect(weather[1]!).toBeLessThan(weatherPersistence[1]!)

    // Forecasting lines per feed: 90 % intervals cover within 3 points; six steps ahead, the model
    // beats persistence six steps ahead on temperature (quick run, measured: 1.540 vs 1.796 °C).
    const coverages = [
      ...text.matchAll(/90% intervals \(adaptive conformal, per key\): realised coverage ([\d.]+)%/g),
    ]
    expect(coverages).toHaveLength(2)
    for (const c of coverages) expect(Math.abs(Number(c[1]) - 90)).toBeLessThan(3)
    const sixHours =
      /6 hours ahead \(direct multi-horizon head\): temperature RMSE ([\d.]+) °C vs persistence ([\d.]+) °C/.exec(
        text,
      )
    expect(sixHours).not.toBeNull()
    expect(Number(sixHours![1])).toBeLessThan(Number(sixHours![2]))

    // The servers are closed when it resolves.
    const url = text.match(/ws:\/\/127\.0\.0\.1:\d+/)![0]
    await expect(httpStatus(url.replace('ws:', 'http:'))).rejects.toThrow(/ECONNREFUSED/)
  })

  it('with keepServing, leaves both servers up for other clients until stopped', async () => {
    const lines: string[] = []
    let serving!: () => void
    let release!: () => void
    const up = new Promise<void>((resolve) => (serving = resolve))
    const released = new Promise<void>((resolve) => (release = resolve))
    const demo = runDemoUntil({ quick: true, keepServing: true, log: (line) => lines.push(line) }, () => {
      serving()
      return released
    })
    await up
    const stayUp = lines.slice(lines.findIndex((l) => l.includes('stay up')))
    const urls = stayUp.flatMap((l) => [...l.matchAll(/ws:\/\/127\.0\.0\.1:\d+/g)].map((m) => m[0]))
    expect(urls).toHaveLength(2)

    // Another producer can still send ticks, and the dashboard is served on the same port.
    const connection = webSocketConnection(urls[0]!, { reconnect: false })
    const answer = firstValueFrom(
      connection.messages$.pipe(filter((m) => (m as { type: string }).type === 'prediction')),
    )
    connection.send({ type: 'tick', key: 'another-producer', id: 7, x: [0.1, 0.2, 0.3] })
    expect(await answer).toMatchObject({ type: 'prediction', id: 7, key: 'another-producer' })
    connection.close()
    const page = await httpStatus(`${urls[0]!.replace('ws:', 'http:')}/`)
    expect(page.status).toBe(200)
    expect(page.type).toContain('text/html')

    release()
    await demo
    await expect(httpStatus(urls[1]!.replace('ws:', 'http:'))).rejects.toThrow(/ECONNREFUSED/)
  })
})
