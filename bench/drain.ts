// SPEC 8.2 — buffer drain. 2,000 due buffers drained by 1, 2, 4 and 8 processors (createProcessor, one lane
// each) against the fake Graph API and the demo agent: batches/s, and double processing (a conversation the
// fake Graph API got more than one send for: must be 0). Baseline: pg-boss on the same database (its own
// schema `pgboss`): 2,000 jobs, then fetch+complete loops with the same worker counts. pg-boss's loop only
// moves jobs, so wabase's own claim+complete loop (no agent, no send) is measured too, for the like-for-like
// queue cost.
import postgres from "postgres";
import { PgBoss } from "npm:pg-boss@12.38.0";
import { createProcessor, type DrainSummary } from "../supabase/functions/buffer-processor/processor.ts";
import { clearBuffers, processorTestEnv, seedDueBuffers, startFakes } from "../local/testing/processor.ts";
import { type BenchContext, type BenchResult, check, result } from "./lib.ts";

const BUFFERS = 2_000;
const WORKER_COUNTS = [1, 2, 4, 8];
const QUEUE = "wabase-bench";
const BUDGET_MS = 60_000;

interface Run {
  workers: number;
  batches: number;
  seconds: number;
  perSecond: number;
  /** Conversations (or jobs) handled more than once, counted once per extra time. */
  doubles: number;
  outcomes?: Record<string, number>;
}

/** The whole processor: claim, context, agent, reply row, Graph send, record, complete. */
async function processorRun(ctx: BenchContext, workers: number): Promise<Run> {
  const fakes = await startFakes();
  const admin = postgres(ctx.dbUrl, { max: 2, onnotice: () => {} });
  const pools = Array.from({ length: workers }, () => postgres(ctx.dbUrl, { max: 2, onnotice: () => {} }));
  try {
    await clearBuffers(admin);
    const { phoneNumberId } = await seedDueBuffers(admin, BUFFERS);
    const env = processorTestEnv(fakes, { PROCESSOR_CONCURRENCY: "1" });
    const processors = await Promise.all(pools.map((sql, i) => createProcessor(env, sql, `bench-${i}`)));
    const started = performance.now();
    const summaries: DrainSummary[] = await Promise.all(
      processors.map((processor) => processor.drain({ budgetMs: BUDGET_MS })),
    );
    const seconds = (performance.now() - started) / 1000;
    const outcomes: Record<string, number> = {};
    for (const summary of summaries) {
      for (const [outcome, n] of Object.entries(summary.outcomes)) {
        outcomes[outcome] = (outcomes[outcome] ?? 0) + n!;
      }
    }
    const batches = summaries.reduce((sum, s) => sum + s.batches, 0);
    // Sends the fake Graph API accepted, per recipient (one conversation per recipient here).
    const perRecipient = new Map<string, number>();
    for (const sent of fakes.graph.sent) {
      if (sent.phoneNumberId !== phoneNumberId) continue;
      const to = String(sent.body.to ?? sent.body.recipient).replace(/^\+/, "");
      perRecipient.set(to, (perRecipient.get(to) ?? 0) + 1);
    }
    const doubles = [...perRecipient.values()].reduce((sum, n) => sum + Math.max(0, n - 1), 0);
    outcomes.sends = fakes.graph.sent.length;
    outcomes.recipients = perRecipient.size;
    return { workers, batches, seconds, perSecond: batches / seconds, doubles, outcomes };
  } finally {
    await Promise.all(pools.map((sql) => sql.end()));
    await clearBuffers(admin);
    await admin.end();
    await fakes.close();
  }
}

/** wabase's queue alone: wa.claim_buffers + wa.complete_buffer, nothing in between. */
async function claimCompleteRun(ctx: BenchContext, workers: number): Promise<Run> {
  const admin = postgres(ctx.dbUrl, { max: 2, onnotice: () => {} });
  const sql = postgres(ctx.dbUrl, { max: workers, onnotice: () => {} });
  try {
    await clearBuffers(admin);
    await seedDueBuffers(admin, BUFFERS);
    const seen = new Map<string, number>();
    let batches = 0;
    const started = performance.now();
    await Promise.all(Array.from({ length: workers }, async (_, w) => {
      for (;;) {
        const [claim] = await sql<{ conversation_id: string; fence: string; up_to_seq: string }[]>`
          select conversation_id, fence, up_to_seq from wa.claim_buffers(${`bench-q-${w}`}, 1)`;
        if (claim === undefined) return;
        seen.set(claim.conversation_id, (seen.get(claim.conversation_id) ?? 0) + 1);
        await sql`select wa.complete_buffer(${claim.fence}, ${claim.up_to_seq})`;
        batches++;
      }
    }));
    const seconds = (performance.now() - started) / 1000;
    const doubles = [...seen.values()].reduce((sum, n) => sum + n - 1, 0);
    return { workers, batches, seconds, perSecond: batches / seconds, doubles };
  } finally {
    await clearBuffers(admin);
    await Promise.all([admin.end(), sql.end()]);
  }
}

/** pg-boss: insert the jobs, then each worker fetches one job and completes it until none is left. */
async function pgBossRun(ctx: BenchContext, workers: number): Promise<Run> {
  const boss = new PgBoss({
    connectionString: ctx.dbUrl,
    schema: "pgboss",
    // Room for its own bookkeeping queries besides the workers' fetch and complete.
    max: workers + 2,
    supervise: false,
    schedule: false,
    registerInstance: false,
  });
  const errors: unknown[] = [];
  boss.on("error", (error: unknown) => void errors.push(error));
  await boss.start();
  try {
    await boss.createQueue(QUEUE);
    await boss.insert(QUEUE, Array.from({ length: BUFFERS }, (_, i) => ({ data: { conversation: i } })));
    const seen = new Map<string, number>();
    let batches = 0;
    const started = performance.now();
    await Promise.all(Array.from({ length: workers }, async () => {
      for (;;) {
        const [job] = await boss.fetch(QUEUE, { batchSize: 1 });
        if (job === undefined) return;
        seen.set(job.id, (seen.get(job.id) ?? 0) + 1);
        await boss.complete(QUEUE, job.id);
        batches++;
      }
    }));
    const seconds = (performance.now() - started) / 1000;
    if (errors.length > 0) throw errors[0];
    const doubles = [...seen.values()].reduce((sum, n) => sum + n - 1, 0);
    return { workers, batches, seconds, perSecond: batches / seconds, doubles };
  } finally {
    await boss.deleteQueue(QUEUE).catch(() => {});
    await boss.stop({ graceful: false, close: true });
  }
}

export async function drain(ctx: BenchContext): Promise<BenchResult> {
  const res = result("drain");
  const full: Run[] = [];
  const queue: Run[] = [];
  const boss: Run[] = [];
  let bossError: string | undefined;
  for (const workers of WORKER_COUNTS) {
    full.push(await processorRun(ctx, workers));
    queue.push(await claimCompleteRun(ctx, workers));
    if (bossError === undefined) {
      try {
        boss.push(await pgBossRun(ctx, workers));
      } catch (error) {
        bossError = error instanceof Error ? error.message : String(error);
      }
    }
  }
  const label = "pg-boss fetch+complete";
  for (const [i, run] of full.entries()) {
    const baseline = boss[i];
    res.rows.push({
      metric: `batches/s, ${run.workers} worker${run.workers > 1 ? "s" : ""} (full processor)`,
      value: run.perSecond,
      unit: "/s",
      ...(baseline ? { baseline: baseline.perSecond, baselineLabel: label } : {}),
    });
  }
  for (const [i, run] of queue.entries()) {
    const baseline = boss[i];
    res.rows.push({
      metric: `claim+complete/s, ${run.workers} worker${run.workers > 1 ? "s" : ""} (queue only)`,
      value: run.perSecond,
      unit: "/s",
      ...(baseline ? { baseline: baseline.perSecond, baselineLabel: label } : {}),
    });
  }
  const doubles = full.reduce((sum, run) => sum + run.doubles, 0);
  res.rows.push({
    metric: "double processing (all runs)",
    value: doubles,
    unit: "",
    ...(boss.length > 0
      ? { baseline: boss.reduce((sum, run) => sum + run.doubles, 0), baselineLabel: label }
      : {}),
  });
  for (const run of full) {
    check(res, `${run.workers} workers: batches`, run.batches, BUFFERS);
    check(res, `${run.workers} workers: replies sent`, run.outcomes?.sends ?? 0, BUFFERS);
    check(res, `${run.workers} workers: conversations sent more than once`, run.doubles, 0);
  }
  for (const run of queue) {
    check(res, `queue only, ${run.workers} workers: claims`, run.batches, BUFFERS);
    check(res, `queue only, ${run.workers} workers: double claims`, run.doubles, 0);
  }
  res.notes.push(
    `${BUFFERS} due buffers per run (one message each), processors with PROCESSOR_CONCURRENCY=1 and their own ` +
      "2-connection pool; the full processor calls the demo agent and the fake Graph API (a new connection per " +
      "send) and makes about 7 SQL round trips per batch, pg-boss's loop 2 (fetch, complete).",
  );
  if (bossError !== undefined) res.notes.push(`pg-boss failed, baseline incomplete: ${bossError}`);
  res.details = { processor: full, claim_complete: queue, pg_boss: boss };
  return res;
}
