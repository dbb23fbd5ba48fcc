/**
 * Every NATS name rxrnn uses, from one prefix (`--subject-prefix`, default `rxrnn`): partition p's
 * ticks go to the subject `rxrnn.ticks.<p>`, stored in the JetStream stream `rxrnn_ticks_<p>`;
 * its predictions go to `rxrnn.predictions.<p>`; workers' metrics to `rxrnn.metrics.<worker>`.
 */

export const DEFAULT_SUBJECT_PREFIX = 'rxrnn'

/** The subjects, streams, consumers and KV buckets of one deployment. */
export class NatsNames {
  /** The prefix as stream and bucket names allow it (letters, digits, `_` and `-`). */
  private readonly stem: string

  constructor(readonly prefix: string = DEFAULT_SUBJECT_PREFIX) {
    if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(prefix)) {
      throw new RangeError(
        `subject prefix "${prefix}" is not usable: use letters, digits, _ and -, in dot-separated tokens`,
      )
    }
    this.stem = prefix.replaceAll('.', '_')
  }

  ticksSubject(partition: number): string {
    return `${this.prefix}.ticks.${partition}`
  }

  ticksStream(partition: number): string {
    return `${this.stem}_ticks_${partition}`
  }

  predictionsSubject(partition: number): string {
    return `${this.prefix}.predictions.${partition}`
  }

  /** Every partition's predictions (a wildcard subscription). */
  get allPredictions(): string {
    return `${this.prefix}.predictions.*`
  }

  metricsSubject(worker: string): string {
    return `${this.prefix}.metrics.${worker}`
  }

  get allMetrics(): string {
    return `${this.prefix}.metrics.*`
  }

  /** The durable consumer a worker reads partition p through. */
  consumer(partition: number): string {
    return `${this.stem}_worker_${partition}`
  }

  /** KV bucket of partition leases (which worker owns which partition). */
  get ownersBucket(): string {
    return `${this.stem}_owners`
  }

  /** KV bucket of the shared weights (`--weights shared`). */
  get weightsBucket(): string {
    return `${this.stem}_weights`
  }
}
