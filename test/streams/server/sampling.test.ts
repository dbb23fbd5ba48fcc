import { afterEach, describe, expect, it } from 'vitest'
import type { RxrnnServer } from '../../../streams/server/index.js'
import { serve } from '../../../streams/server/index.js'
import { FrameClient } from '../../helpers/wire-client.js'

// A subscriber that cannot draw every tick (the dashboard) asks the server for at most maxRate
// prediction and hidden frames per second; the rest are sampled out at the server, not queued.
describe('subscriber sampling (maxRate)', () => {
  let server: RxrnnServer | undefined
  const clients: FrameClient[] = []
  afterEach(async () => {
    for (const c of clients.splice(0)) c.socket.terminate()
    await server?.close()
    server = undefined
  })

  it('sends at most maxRate predictions and hidden states per second and counts the rest', async () => {
    server = await serve({
      model: { cell: 'gru', inputSize: 2, hiddenSize: 8, outputSize: 1, seed: 1 },
      trainer: { k1: 8, loss: 'mse', optimizer: { type: 'adam', lr: 1e-3 } },
    })
    const watcher = await FrameClient.open(server.url)
    const full = await FrameClient.open(server.url)
    const producer = await FrameClient.open(server.url)
    clients.push(watcher, full, producer)
    watcher.send({ type: 'subscribe', channels: ['predictions', 'hidden'], maxRate: 20, id: 1 })
    full.send({ type: 'subscribe', channels: ['predictions'], id: 2 })
    await watcher.waitFor((f) => f.type === 'subscribed')
    await full.waitFor((f) => f.type === 'subscribed')

    const ticks = 1000
    const started = Date.now()
    for (let i = 0; i < ticks; i++)
      producer.send({ type: 'tick', key: `k${i % 4}`, x: [i / ticks, 1], y: 0.5, id: i })
    await producer.waitFor((f) => f.id === ticks - 1)
    await full.waitFor((f) => f.type === 'prediction' && f.id === ticks - 1)
    const seconds = Math.floor(Date.now() / 1000) - Math.floor(started / 1000) + 1
    // A ping round trip: everything the server sent the watcher before it has arrived.
    watcher.send({ type: 'hello', id: 99 })
    await watcher.waitFor((f) => f.type === 'welcome')

    const predictions = watcher.frames.filter((f) => f.type === 'prediction').length
    const hidden = watcher.frames.filter((f) => f.type === 'hidden').length
    expect(predictions).toBeGreaterThan(0)
    expect(predictions).toBeLessThanOrEqual(20 * seconds)
    expect(hidden).toBeLessThanOrEqual(20 * seconds)
    expect(full.frames.filter((f) => f.type === 'prediction')).toHaveLength(ticks)
    expect(server.metrics().sampledOut).toBe(2 * ticks - predictions - hidden)
  })

  it('refuses a maxRate that is not a positive number', async () => {
    server = await serve({
      model: { cell: 'gru', inputSize: 2, hiddenSize: 4, outputSize: 1, seed: 1 },
      trainer: { k1: 8, loss: 'mse', optimizer: { type: 'sgd', lr: 0.01 } },
    })
    const client = await FrameClient.open(server.url)
    clients.push(client)
    client.send({ type: 'subscribe', channels: ['predictions'], maxRate: -5, id: 3 })
    const i = await client.waitFor((f) => f.type === 'error')
    expect(client.frames[i]).toMatchObject({ code: 'bad_frame', id: 3 })
    expect(String(client.frames[i]!.message)).toMatch(/maxRate/)
  })
})
