/**
 * Partition leases, so that two workers never consume one partition: a KV entry per partition
 * names its owner (the host and the absolute --checkpoint-dir, which is what makes a worker that
 * worker), and the owner rewrites it every `heartbeatMs`. Clock-free: a worker that finds the
 * partition held by another owner watches the entry for `leaseMs`; if its revision moved, the
 * owner is alive and the claim is refused; if not, the owner is gone and the claim takes over.
 * The same owner restarting (after SIGKILL, the lease still there) takes its partitions back at
 * once. Every heartbeat is a compare-and-set on the revision, so a worker whose lease was taken
 * learns it at its next beat.
 */
import type { KV } from '@nats-io/kv'
import { RxrnnError } from '../../../src/index.js'

export interface LeaseOptions {
  /** Who claims: the same string on a restart of the same worker. */
  owner: string
  heartbeatMs?: number
  /** How long a lease held by someone else must stay unchanged before it is taken over. */
  leaseMs?: number
  /** Called when a held lease is lost (taken over, or the KV refused the beat). */
  onLost: (partition: number, reason: string) => void
}

/** The leases one worker holds. */
export class PartitionLeases {
  private readonly revisions = new Map<number, number>()
  private timer: NodeJS.Timeout | undefined
  private beating = false
  private readonly heartbeatMs: number
  private readonly leaseMs: number

  constructor(
    private readonly kv: KV,
    private readonly options: LeaseOptions,
  ) {
    this.heartbeatMs = options.heartbeatMs ?? 1000
    this.leaseMs = options.leaseMs ?? 3 * this.heartbeatMs
  }

  /**
   * Claims every partition in `partitions` (in parallel), or throws RxrnnError('bad_config')
   * naming those another live worker owns; on refusal none is kept.
   */
  async claim(partitions: readonly number[]): Promise<void> {
    const results = await Promise.allSettled(partitions.map((p) => this.claimOne(p)))
    const refused = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []))
    if (refused.length > 0) {
      await this.release()
      throw new RxrnnError(
        'bad_config',
        `Cannot own these partitions: ${refused.join('; ')}, and it is running. ` +
          'Give each worker its own --own list, or stop the other worker first',
      )
    }
    this.timer = setInterval(() => void this.beat(), this.heartbeatMs)
    this.timer.unref()
  }

  private async claimOne(partition: number): Promise<void> {
    const key = `partition.${partition}`
    for (;;) {
      const entry = await this.kv.get(key)
      if (entry === null || entry.operation !== 'PUT') {
        try {
          this.revisions.set(partition, await this.kv.create(key, this.options.owner))
          return
        } catch {
          continue // someone claimed it meanwhile: look again
        }
      }
      const holder = entry.string()
      if (holder !== this.options.owner) {
        await new Promise((resolve) => setTimeout(resolve, this.leaseMs))
        const later = await this.kv.get(key)
        if (later !== null && later.revision !== entry.revision && later.operation === 'PUT') {
          throw new Error(`partition ${partition} is owned by ${later.string()}`)
        }
        if (later !== null && later.revision !== entry.revision) continue
      }
      try {
        this.revisions.set(partition, await this.kv.update(key, this.options.owner, entry.revision))
        return
      } catch {
        // It moved between our look and our claim: look again.
      }
    }
  }

  private async beat(): Promise<void> {
    if (this.beating) return
    this.beating = true
    try {
      await Promise.all(
        [...this.revisions].map(async ([partition, revision]) => {
          try {
            this.revisions.set(
              partition,
              await this.kv.update(`partition.${partition}`, this.options.owner, revision),
            )
          } catch (error) {
            this.revisions.delete(partition)
            this.options.onLost(partition, (error as Error).message)
          }
        }),
      )
    } finally {
      this.beating = false
    }
  }

  /** Stops the heartbeats and deletes the leases still held, so the next owner need not wait. */
  async release(): Promise<void> {
    clearInterval(this.timer)
    const held = [...this.revisions]
    this.revisions.clear()
    await Promise.all(
      held.map(([partition, revision]) =>
        this.kv.delete(`partition.${partition}`, { previousSeq: revision }).catch(() => {}),
      ),
    )
  }
}
