/** Which of the last 100 updates were clipped: the report's clip rate. */
export class ClipHistory {
  readonly recent = new Uint8Array(100)
  /** Updates seen so far (applied or refused). */
  updatesSeen = 0

  /** Records one update; returns the fraction of the last 100 that were clipped. */
  record(clipped: boolean): number {
    this.recent[this.updatesSeen % this.recent.length] = clipped ? 1 : 0
    this.updatesSeen++
    const seen = Math.min(this.updatesSeen, this.recent.length)
    let sum = 0
    for (let i = 0; i < seen; i++) sum += this.recent[i]!
    return sum / seen
  }
}
