// Baseline: graphile-worker 0.17 on the same database (its own schema), as documented for Node: a drain of
// no-op jobs by N runners (batch size 1, or its local queue of 50 with batched completion: its fastest
// setting), and the delay from a debounced job's run_at to its start.
import { Logger, makeWorkerUtils, run, type Runner, type WorkerUtils } from "graphile-worker";
import { type QueueRun, Tally } from "./queue.ts";

const silent = new Logger(() => () => {});

async function withUtils<T>(dbUrl: string, fn: (utils: WorkerUtils) => Promise<T>): Promise<T> {
  const utils = await makeWorkerUtils({ connectionString: dbUrl, logger: silent });
  try {
    await utils.migrate();
    return await fn(utils);
  } finally {
    await utils.release();
  }
}

/** Adds `jobs` no-op jobs, awaits `settle`, then `workers` runners (one job at a time each) run them all. */
export function graphileDrain(
  dbUrl: string,
  jobs: number,
  workers: number,
  batchSize: number,
  settle: () => Promise<void>,
): Promise<QueueRun> {
  return withUtils(dbUrl, async (utils) => {
    for (let i = 0; i < jobs; i += 1_000) {
      await utils.addJobs(
        Array.from({ length: Math.min(1_000, jobs - i) }, () => ({ identifier: "noop", payload: {} })),
      );
    }
    await settle();
    const tally = new Tally();
    let done = 0;
    let finish: () => void = () => {};
    const finished = new Promise<void>((resolve) => finish = resolve);
    const runners: Runner[] = [];
    try {
      for (let w = 0; w < workers; w++) {
        runners.push(
          await run({
            connectionString: dbUrl,
            concurrency: 1,
            noHandleSignals: true,
            logger: silent,
            preset: {
              worker: batchSize > 1
                ? { localQueue: { size: batchSize }, completeJobBatchDelay: 0 }
                : { localQueue: { size: -1 }, completeJobBatchDelay: -1 },
            },
            taskList: {
              noop: (_payload, helpers) => {
                tally.see(helpers.job.id);
                if (++done === jobs) finish();
                return Promise.resolve();
              },
            },
          }),
        );
      }
      await finished;
      return tally.run("graphile-worker", workers, batchSize);
    } finally {
      await Promise.all(runners.map((runner) => runner.stop()));
    }
  });
}

export interface DebounceProbe {
  /** Adds (or pushes back) the job of `key`, due `delayMs` from now: one call per message of a burst. */
  touch(key: string, delayMs: number): Promise<void>;
  /** Resolves once `count` jobs started; the delays from run_at to start, in ms. */
  delays(count: number): Promise<number[]>;
  stop(): Promise<void>;
}

/** A runner with `concurrency` slots and `pollInterval`, whose "reply" jobs record their start delay. */
export async function graphileDebounce(
  dbUrl: string,
  concurrency: number,
  pollInterval: number,
): Promise<DebounceProbe> {
  const utils = await makeWorkerUtils({ connectionString: dbUrl, logger: silent });
  await utils.migrate();
  const delays: number[] = [];
  let waiting: { count: number; resolve: () => void } | undefined;
  const runner = await run({
    connectionString: dbUrl,
    concurrency,
    pollInterval,
    noHandleSignals: true,
    logger: silent,
    taskList: {
      reply: (_payload, helpers) => {
        delays.push(Date.now() - helpers.job.run_at.getTime());
        if (waiting !== undefined && delays.length >= waiting.count) waiting.resolve();
        return Promise.resolve();
      },
    },
  });
  return {
    async touch(key, delayMs) {
      await utils.addJob("reply", {}, {
        jobKey: key,
        jobKeyMode: "replace",
        runAt: new Date(Date.now() + delayMs),
      });
    },
    async delays(count) {
      if (delays.length < count) await new Promise<void>((resolve) => waiting = { count, resolve });
      return delays;
    },
    async stop() {
      await runner.stop();
      await utils.release();
    },
  };
}
