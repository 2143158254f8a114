// What a queue-drain run of any implementation reports, so wabase and the baselines share one shape.
export interface QueueRun {
  system: string;
  workers: number;
  /** Jobs (buffers) taken per fetch (claim). */
  batchSize: number;
  jobs: number;
  seconds: number;
  perSecond: number;
  /** Jobs handed out more than once, counted once per extra time: must be 0. */
  doubles: number;
}

/** Counts how often each id was handed out and turns that into a QueueRun. */
export class Tally {
  #seen = new Map<string, number>();
  #started = performance.now();

  see(id: string): void {
    this.#seen.set(id, (this.#seen.get(id) ?? 0) + 1);
  }

  run(system: string, workers: number, batchSize: number): QueueRun {
    const seconds = (performance.now() - this.#started) / 1000;
    const jobs = [...this.#seen.values()].reduce((sum, n) => sum + n, 0);
    return {
      system,
      workers,
      batchSize,
      jobs,
      seconds,
      perSecond: jobs / seconds,
      doubles: jobs - this.#seen.size,
    };
  }
}
