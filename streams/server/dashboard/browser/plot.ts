/**
 * The part of uPlot (loaded by the page as a global, uPlot.iife.min.js) the dashboard uses,
 * typed here: the page ships no bundler, so the global is what there is.
 */

/** Series, axis and scale options: uPlot's own objects, passed through as written. */
export type Options = Record<string, unknown>
export type Data = (number | null)[][]

/** A uPlot chart, as the dashboard drives it. */
export interface Plot {
  readonly width: number
  readonly series: unknown[]
  readonly data: Data
  readonly cursor: { left?: number | null }
  readonly bbox: { left: number; top: number; width: number; height: number }
  readonly ctx: CanvasRenderingContext2D
  setData(data: Data): void
  setSize(size: { width: number; height: number }): void
  setLegend(options: { idx: number }): void
  valToPos(value: number, scale: string, canvasPixels?: boolean): number
}

interface UPlotStatic {
  new (options: Options, data: Data, target: HTMLElement): Plot
  /** Aligns several [x, ...ys] tables on the union of their x values. */
  join(tables: Data[]): Data
  paths: { stepped(options: { align: number }): unknown }
}

export const uPlot = (globalThis as unknown as { uPlot: UPlotStatic }).uPlot
