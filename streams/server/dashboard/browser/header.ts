/** The page's header: the model line, the key and output pickers, and the tiles of figures. */
import type { ModelSummary } from '../../../transport/protocol.js'
import { $, format, MAX_OUTPUTS, state } from './state.js'

export function describeModel(m: ModelSummary): string {
  const parts = [
    `${String(m.cell).toUpperCase()} ${m.inputSize} → ${m.hiddenSize}${m.numLayers > 1 ? ` × ${m.numLayers} layers` : ''} → ${m.outputSize}`,
    `${m.loss ?? m.task}`,
    `TBPTT(k1 ${m.k1}, k2 ${m.k2})`,
    `${m.optimizer} lr ${m.lr}`,
    `clip ${m.clipNorm ?? 'off'}`,
  ]
  return parts.join('  ·  ')
}

export function renderKeyPicker(): void {
  state.keysDirty = false
  const select = $<HTMLSelectElement>('key')
  const options = [...state.keys.keys()].map((key) => new Option(key, key, false, key === state.selected))
  if (state.untracked.size > 0) {
    const more = new Option(`+${state.untracked.size} more (not followed)`, '')
    more.disabled = true
    options.push(more)
  }
  if (options.length === 0) options.push(new Option('none yet', ''))
  select.replaceChildren(...options)
  select.disabled = state.keys.size === 0
}

export function buildOutputPicker(): void {
  const outputs = state.classification ? 1 : Math.min(MAX_OUTPUTS, state.model?.outputSize ?? 1)
  $('output-picker').hidden = outputs <= 1
  $('output').replaceChildren(...Array.from({ length: outputs }, (_, i) => new Option(`y[${i}]`, String(i))))
}

export function renderTiles(): void {
  const m = state.lastMetrics
  const set = (id: string, v: string, alert = false): void => {
    const el = $(id)
    el.textContent = v
    el.classList.toggle('alert', alert)
  }
  set('t-rate', m ? format(m.eventsPerSecond) : '–')
  set('t-events', m ? format(m.events) : '–')
  set('t-keys', m ? format(m.keys) : '–')
  set('t-updates', m?.updates == null ? '–' : format(m.updates))
  set('t-cliprate', m?.clipRate == null ? '–' : `${(100 * m.clipRate).toFixed(0)}%`)
  set('t-producers', m ? String(m.producers) : '–')
  set('t-subscribers', m ? String(m.subscribers) : '–')
  set('t-dropped', m ? format(m.dropped) : '–', (m?.dropped ?? 0) > 0)
  set('t-rejected', m ? format(m.rejected) : '–', (m?.rejected ?? 0) > 0)
  set('t-skipped', m ? format(m.skippedUpdates) : '–', (m?.skippedUpdates ?? 0) > 0)
  const coverage = m?.intervalCoverage
  set('t-coverage', typeof coverage === 'number' ? `${(100 * coverage).toFixed(1)}%` : '–')
  set('t-anomalies', typeof m?.anomalies === 'number' ? format(m.anomalies) : '–')
  set('t-drifts', typeof m?.drifts === 'number' ? format(m.drifts) : '–', ((m?.drifts as number) ?? 0) > 0)
}
