/**
 * A partition's checkpoint: its KeyedTrainer (in `--weights partition` mode the weights and
 * optimizer; always every key's state and window), the last stream sequence applied, and in
 * `--weights shared` mode the shared weights' version and the base its local changes are measured
 * from. One file per partition, `<dir>/partition-<p>.ckpt`, written atomically before the ack.
 */
import { join } from 'node:path'
import { Packr } from 'msgpackr'
import { RxrnnError } from '../../../src/index.js'
import { readCheckpoint, removeStaleTemporaries, writeFileAtomic } from '../checkpoint.js'

/** What a shared-weights partition keeps to resume its part of the exchange. */
export interface SharedWeightsState {
  /** The shared weights' version (KV revision) the local copy last started from. */
  version: number
  /** Those weights: local changes are measured from them. */
  base: Float64Array
  /** How many changes the shared weights had received when `base` was taken. */
  baseAdded: number
  /** Weight changes this partition has published so far (its contributions' count). */
  published: number
}

export interface PartitionCheckpoint {
  partition: number
  partitions: number
  /** The last stream sequence applied; replay resumes at seq + 1. */
  seq: number
  weights: 'partition' | 'shared'
  /** `KeyedTrainer.snapshot()`. */
  keyed: Uint8Array
  /** `ServerForecasting.snapshot()`, when the worker forecasts. */
  forecast?: Uint8Array
  shared?: SharedWeightsState
}

const FORMAT = 'rxrnn-partition-checkpoint'
const VERSION = 1
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: true, structuredClone: false })

export function partitionCheckpointPath(dir: string, partition: number): string {
  return join(dir, `partition-${partition}.ckpt`)
}

/** Encodes a checkpoint; typed arrays keep every bit. */
export function encodePartitionCheckpoint(checkpoint: PartitionCheckpoint): Uint8Array {
  return packr.pack({ format: FORMAT, version: VERSION, ...checkpoint })
}

/** Decodes and checks a checkpoint written for `partition` of `partitions`. */
export function decodePartitionCheckpoint(
  bytes: Uint8Array,
  partition: number,
  partitions: number,
  path: string,
): PartitionCheckpoint {
  let body: Record<string, unknown>
  try {
    body = packr.unpack(bytes) as Record<string, unknown>
  } catch (cause) {
    throw new RxrnnError(
      'bad_snapshot',
      `Checkpoint ${path} cannot be read (${(cause as Error).message}); move it away to start this partition fresh`,
    )
  }
  if (body === null || typeof body !== 'object' || body.format !== FORMAT || body.version !== VERSION) {
    throw new RxrnnError(
      'bad_snapshot',
      `${path} is not a partition checkpoint of this rxrnn version; move it away to start this partition fresh`,
    )
  }
  if (body.partition !== partition || body.partitions !== partitions) {
    throw new RxrnnError(
      'bad_config',
      `${path} holds partition ${String(body.partition)} of ${String(body.partitions)}, but this worker reads partition ${partition} of ${partitions}: ` +
        'start workers with the --partitions the checkpoints were written with, or give a fresh --checkpoint-dir',
    )
  }
  const keyed = body.keyed
  const seq = body.seq
  if (!(keyed instanceof Uint8Array) || !Number.isInteger(seq) || (seq as number) < 0) {
    throw new RxrnnError(
      'bad_snapshot',
      `Checkpoint ${path} is malformed; move it away to start this partition fresh`,
    )
  }
  const weights = body.weights === 'shared' ? 'shared' : 'partition'
  const checkpoint: PartitionCheckpoint = { partition, partitions, seq: seq as number, weights, keyed }
  if (body.forecast !== undefined) {
    if (!(body.forecast instanceof Uint8Array))
      throw new RxrnnError(
        'bad_snapshot',
        `Checkpoint ${path} is malformed; move it away to start this partition fresh`,
      )
    checkpoint.forecast = body.forecast
  }
  const shared = body.shared as SharedWeightsState | undefined
  if (shared !== undefined) {
    checkpoint.shared = {
      version: shared.version,
      base:
        shared.base instanceof Float64Array
          ? shared.base
          : Float64Array.from(shared.base as ArrayLike<number>),
      baseAdded: shared.baseAdded ?? 0,
      published: shared.published,
    }
  }
  return checkpoint
}

/** Reads partition p's checkpoint from `dir`, or null when it has none yet. */
export async function readPartitionCheckpoint(
  dir: string,
  partition: number,
  partitions: number,
): Promise<PartitionCheckpoint | null> {
  const path = partitionCheckpointPath(dir, partition)
  await removeStaleTemporaries(path)
  const bytes = readCheckpoint(path)
  return bytes === null ? null : decodePartitionCheckpoint(bytes, partition, partitions, path)
}

/** Writes partition p's checkpoint atomically (a crash leaves the old one or the new one). */
export function writePartitionCheckpoint(dir: string, checkpoint: PartitionCheckpoint): Promise<void> {
  return writeFileAtomic(
    partitionCheckpointPath(dir, checkpoint.partition),
    encodePartitionCheckpoint(checkpoint),
  )
}
