import { existsSync, readFileSync } from 'node:fs'
import { chromium } from 'playwright-core'
import { describe, expect, it } from 'vitest'
import { bundleBrowserExample } from '../../examples/browser/build.js'

const chromiumPath = '/usr/bin/chromium'
const hasChromium = existsSync(chromiumPath)
if (!hasChromium) console.warn(`skipping the browser example's test: no Chromium at ${chromiumPath}`)

interface ExampleState {
  steps: number
  updates: number
  error: number
  persistence: number
}

describe('examples/browser', () => {
  it.skipIf(!hasChromium)(
    'learns online in Chromium where the autopilot pointer goes next, better than persistence',
    async () => {
      const code = await bundleBrowserExample()
      const html = readFileSync(
        new URL('../../examples/browser/index.html', import.meta.url),
        'utf8',
      ).replace('<script type="module" src="./app.js"></script>', '')
      const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] })
      try {
        const page = await browser.newPage({ viewport: { width: 900, height: 600 } })
        const errors: string[] = []
        page.on('pageerror', (error) => errors.push(error.message))
        // 40 steps per frame: a few seconds of frames teach it what minutes of pointer would.
        await page.goto('about:blank?steps=40')
        await page.setContent(html)
        await page.addScriptTag({ content: code, type: 'module' })
        await page.waitForFunction(
          () => ((globalThis as unknown as { rxrnnExample?: ExampleState }).rxrnnExample?.steps ?? 0) >= 6000,
          undefined,
          { timeout: 60_000 },
        )
        const state = (await page.evaluate(
          () => (globalThis as unknown as { rxrnnExample: ExampleState }).rxrnnExample,
        )) as ExampleState
        console.log(`browser example: ${JSON.stringify(state)}`)
        expect(errors).toEqual([])
        expect(state.updates).toBeGreaterThan(1000)
        expect(state.error).toBeLessThan(0.5 * state.persistence)
        expect(await page.textContent('#stats')).toMatch(/RMSE of the last 300 steps/)
      } finally {
        await browser.close()
      }
    },
    90_000,
  )
})
