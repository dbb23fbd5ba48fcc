/** The hidden-state heatmap: one row per unit, one column per sampled step, newest on the right. */
import { $, colors, format, HEATMAP_STEPS, type KeyHistory } from './state.js'

export const heat = { columns: 0, offscreen: null as HTMLCanvasElement | null, scale: 1 }

export function drawHeatmap(k: KeyHistory | undefined): void {
  const canvas = $<HTMLCanvasElement>('heatmap')
  const px = devicePixelRatio || 1
  const width = Math.round(canvas.clientWidth * px)
  const height = Math.round(canvas.clientHeight * px)
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width
    canvas.height = height
  }
  const ctx = canvas.getContext('2d')
  if (!ctx) return
  ctx.fillStyle = '#0d1117'
  ctx.fillRect(0, 0, width, height)
  const cols = k ? k.hidden : []
  heat.columns = cols.length
  const margin = { left: 46 * px, right: 8 * px, top: 6 * px, bottom: 22 * px }
  const plotW = width - margin.left - margin.right
  const plotH = height - margin.top - margin.bottom
  ctx.font = `${11 * px}px system-ui, sans-serif`
  ctx.fillStyle = colors.muted
  if (cols.length === 0) {
    ctx.textAlign = 'center'
    ctx.fillText('waiting for hidden states (the hidden channel)…', width / 2, height / 2)
    return
  }
  const units = cols[0]!.length
  let maxAbs = 0
  for (const c of cols) for (let i = 0; i < c.length; i++) maxAbs = Math.max(maxAbs, Math.abs(c[i]!))
  const scale = niceCeil(Math.max(maxAbs, 1e-3))
  heat.scale = scale
  if (!heat.offscreen || heat.offscreen.width !== HEATMAP_STEPS || heat.offscreen.height !== units) {
    heat.offscreen = document.createElement('canvas')
    heat.offscreen.width = HEATMAP_STEPS
    heat.offscreen.height = units
  }
  const off = heat.offscreen.getContext('2d')
  if (!off) return
  const image = off.createImageData(HEATMAP_STEPS, units)
  const pixels = image.data
  const first = HEATMAP_STEPS - cols.length
  for (let x = 0; x < HEATMAP_STEPS; x++) {
    const c = cols[x - first]
    for (let y = 0; y < units; y++) {
      const o = (y * HEATMAP_STEPS + x) * 4
      const [r, g, b] = c ? diverging(c[y]! / scale) : [22, 27, 34]
      pixels[o] = r
      pixels[o + 1] = g
      pixels[o + 2] = b
      pixels[o + 3] = 255
    }
  }
  off.putImageData(image, 0, 0)
  ctx.imageSmoothingEnabled = false
  ctx.drawImage(heat.offscreen, margin.left, margin.top, plotW, plotH)
  // Axes: units down the left, steps along the bottom.
  ctx.fillStyle = colors.muted
  ctx.textAlign = 'right'
  ctx.textBaseline = 'top'
  ctx.fillText('unit 0', margin.left - 6 * px, margin.top)
  ctx.textBaseline = 'bottom'
  ctx.fillText(`${units - 1}`, margin.left - 6 * px, margin.top + plotH)
  ctx.textBaseline = 'top'
  ctx.textAlign = 'left'
  ctx.fillText(`← ${HEATMAP_STEPS} sampled steps (older)`, margin.left, margin.top + plotH + 6 * px)
  ctx.textAlign = 'right'
  ctx.fillText('newest →', margin.left + plotW, margin.top + plotH + 6 * px)
  $('hm-min').textContent = `−${format(scale)}`
  $('hm-max').textContent = `+${format(scale)}`
  $('hm-note').textContent = `${units} units · ${cols.length} steps shown`
}

/** Blue below 0, orange above, dark at 0; |t| ≤ 1. */
function diverging(t: number): [number, number, number] {
  const a = Math.min(1, Math.abs(t)) ** 0.75
  const base = [13, 17, 23] as const
  const end = t < 0 ? ([47, 129, 247] as const) : ([255, 138, 61] as const)
  return [
    base[0] + a * (end[0] - base[0]),
    base[1] + a * (end[1] - base[1]),
    base[2] + a * (end[2] - base[2]),
  ]
}

function niceCeil(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v))
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p
  return 10 * p
}
