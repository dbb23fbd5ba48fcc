/**
 * `--weights shared`: one model across every partition of every worker. Each partition learns on
 * a local copy; every `syncEvery` of its updates it adds its change since its last exchange
 * (local − base) to the shared weights in a JetStream KV entry, by compare-and-set on the entry's
 * revision (the version), and continues from the sum. A change made while k changes of other
 * partitions were added is scaled by 1 / (1 + k): partitions that take turns add up as if one
 * process had applied every change; partitions that all moved at once from the same weights are
 * averaged, instead of adding up to one oversized step. Optimizer moments stay local.
 *
 * The KV value also counts each partition's contributions, so that after a crash the changes a
 * partition pushes again while replaying the log past its checkpoint are recognised and not
 * added twice. The checkpoint records the version and the base the partition started from.
 */
import type { KV } from '@nats-io/kv'
import { Packr } from 'msgpackr'
import type { ModelConfig } from '../../../src/index.js'
import { createModel, RxrnnError } from '../../../src/index.js'
import type { SharedWeightsState } from './partition-checkpoint.js'
import type { PartitionProcessor } from './partition-processor.js'

const KEY = 'weights'
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: true, structuredClone: false })

interface SharedValue {
  params: Float64Array
  /** Changes added so far, by every partition. */
  added: number
  /** Per partition (as a string), how many changes it has contributed. */
  contributions: Record<string, number>
}

/** A partition's side of the exchange. */
export interface SharedAttachment {
  readonly processor: PartitionProcessor
  base: Float64Array
  /** The shared weights' `added` when `base` was taken. */
  baseAdded: number
  version: number
  published: number
  updatesSinceSync: number
}

export interface SharedWeightsOptions {
  /** The model every partition starts from (its seed decides the first weights). */
  model: ModelConfig
  /** Exchange after this many updates of a partition. */
  syncEvery: number
}

export class SharedWeights {
  /** The newest version this worker has seen. */
  version = 0
  /** Exchanges done, and compare-and-set retries they needed. */
  exchanges = 0
  conflicts = 0

  private constructor(
    private readonly kv: KV,
    private readonly syncEvery: number,
    private readonly size: number,
  ) {}

  /** Opens the shared weights, creating them from `model` when no worker has yet. */
  static async open(kv: KV, options: SharedWeightsOptions): Promise<SharedWeights> {
    if (!Number.isInteger(options.syncEvery) || options.syncEvery < 1) {
      throw new RxrnnError('bad_config', 'syncEvery must be a whole number >= 1')
    }
    const params = Float64Array.from(createModel(options.model).params.values)
    const shared = new SharedWeights(kv, options.syncEvery, params.length)
    try {
      shared.version = await kv.create(KEY, packr.pack({ params, added: 0, contributions: {} }))
    } catch {
      // Another worker created them first.
      const { version } = await shared.read()
      shared.version = version
    }
    return shared
  }

  private async read(): Promise<{ value: SharedValue; version: number }> {
    const entry = await this.kv.get(KEY)
    if (entry === null || entry.operation !== 'PUT') {
      throw new RxrnnError(
        'bad_config',
        'The shared weights are missing from the KV bucket; restart the workers',
      )
    }
    const value = packr.unpack(entry.value) as SharedValue
    if (!(value.params instanceof Float64Array) || value.params.length !== this.size) {
      throw new RxrnnError(
        'bad_config',
        `The shared weights hold ${value.params?.length} values but this model has ${this.size}: every worker must run the same model`,
      )
    }
    return { value, version: entry.revision }
  }

  /**
   * Joins a partition: resumes its checkpointed state, or starts it from the current shared
   * weights. Counts its updates from now on.
   */
  async attach(processor: PartitionProcessor, saved?: SharedWeightsState): Promise<SharedAttachment> {
    let attachment: SharedAttachment
    if (saved) {
      attachment = {
        processor,
        base: saved.base,
        baseAdded: saved.baseAdded,
        version: saved.version,
        published: saved.published,
        updatesSinceSync: 0,
      }
    } else {
      const { value, version } = await this.read()
      processor.keyed.trainer.model.params.values.set(value.params)
      attachment = {
        processor,
        base: value.params,
        baseAdded: value.added ?? 0,
        version,
        published: 0,
        updatesSinceSync: 0,
      }
    }
    processor.onUpdate = () => {
      attachment.updatesSinceSync++
    }
    return attachment
  }

  /** Exchanges when the partition has made `syncEvery` updates since its last exchange. */
  async maybeSync(a: SharedAttachment): Promise<void> {
    if (a.updatesSinceSync < this.syncEvery) return
    a.updatesSinceSync = 0
    await this.exchange(a)
  }

  /** Adds this partition's change to the shared weights and continues from the sum. */
  async exchange(a: SharedAttachment): Promise<void> {
    const local = a.processor.keyed.trainer.model.params.values
    const delta = new Float64Array(local.length)
    for (let i = 0; i < local.length; i++) delta[i] = local[i]! - a.base[i]!
    const partition = String(a.processor.partition)
    const count = a.published + 1
    for (;;) {
      const { value, version } = await this.read()
      let params = value.params
      let next = version
      const added = value.added ?? 0
      // Already counted: a replay after a crash pushes what it pushed before the crash again.
      if ((value.contributions[partition] ?? 0) < count) {
        // A change made while k others were added is scaled by 1 / (1 + k): partitions that take
        // turns sum their changes; partitions that all moved at once from the same weights average.
        const scale = 1 / (1 + Math.max(0, added - a.baseAdded))
        params = new Float64Array(params.length)
        for (let i = 0; i < params.length; i++) params[i] = value.params[i]! + delta[i]! * scale
        value.contributions[partition] = count
        try {
          next = await this.kv.update(
            KEY,
            packr.pack({ params, added: added + 1, contributions: value.contributions }),
            version,
          )
        } catch {
          this.conflicts++
          continue
        }
      }
      // One synchronous block: a checkpoint sees the state before the exchange or after it.
      local.set(params)
      a.base = params
      a.baseAdded = params === value.params ? added : added + 1
      a.version = next
      a.published = count
      if (next > this.version) this.version = next
      this.exchanges++
      return
    }
  }

  stateOf(a: SharedAttachment): SharedWeightsState {
    return { version: a.version, base: a.base.slice(), baseAdded: a.baseAdded, published: a.published }
  }
}
