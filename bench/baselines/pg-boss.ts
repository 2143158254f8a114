// Baseline: pg-boss 10 on the same database (its own schema), drained by a fetch+complete loop per worker:
// its fastest honest setting, since `work()` sleeps a polling interval after every fetch.
import PgBoss from "pg-boss";
import { type QueueRun, Tally } from "./queue.ts";

/**
 * Inserts `jobs` no-op jobs, awaits `settle`, then `workers` loops fetch `batchSize` jobs and complete them
 * until none is left.
 */
export async function pgBossDrain(
  dbUrl: string,
  jobs: number,
  workers: number,
  batchSize: number,
  settle: () => Promise<void>,
): Promise<QueueRun> {
  const boss = new PgBoss({
    connectionString: dbUrl,
    schema: "pgboss",
    // One connection per worker loop, plus room for pg-boss's own bookkeeping.
    max: workers + 2,
    supervise: false,
    schedule: false,
  });
  const errors: unknown[] = [];
  boss.on("error", (error: unknown) => void errors.push(error));
  await boss.start();
  // A queue per run: pg-boss 10 keeps completed jobs in the queue's partition and refuses to delete a queue
  // that still has them (the cluster is thrown away after the run).
  const queue = `wabase-bench-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await boss.createQueue(queue);
    for (let i = 0; i < jobs; i += 1_000) {
      await boss.insert(
        Array.from({ length: Math.min(1_000, jobs - i) }, (_, j) => ({ name: queue, data: { n: i + j } })),
      );
    }
    await settle();
    const tally = new Tally();
    await Promise.all(Array.from({ length: workers }, async () => {
      for (;;) {
        const batch = await boss.fetch(queue, { batchSize });
        if (batch.length === 0) return;
        for (const job of batch) tally.see(job.id);
        await boss.complete(queue, batch.map((job) => job.id));
      }
    }));
    const run = tally.run("pg-boss", workers, batchSize);
    if (errors.length > 0) throw errors[0];
    return run;
  } finally {
    await boss.stop({ graceful: false });
  }
}
