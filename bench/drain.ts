// Issue 10 §3 / SPEC 8.2 — buffer drain. 10,000 due buffers (one message each) drained by 1, 2, 4 and 8
// processors (createProcessor, each on its own pool) against the demo agent and the fake Graph API, once with
// both answering at once and once with both taking 200 ms: batches/s, sends/s, and double processing (a
// conversation the agent was asked about twice) and double sends (a customer who got two replies), both 0.
// Each worker count drains for a fixed window from the same deep queue (the last one, at 0 ms, to empty: the
// whole 10,000 are accounted for); at 200 ms a run is latency-bound, so each worker gets 4 lanes (the default)
// and the runs stop after their window. Baselines on the same database in the same run, with the same worker
// counts and batch sizes 1 and 50: pg-boss (fetch+complete loop) and graphile-worker (no-op jobs), against
// wabase's own claim+complete with nothing in between.
import type postgres from "postgres";
import { createProcessor, type DrainSummary } from "../supabase/functions/buffer-processor/processor.ts";
import { clearBuffers, type Fakes, processorTestEnv, seedDueBuffers } from "../local/testing/processor.ts";
import { latency, startBenchFakes, unthrottled } from "./fakes.ts";
import { type BenchContext, type BenchResult, check, connect, result, type Row, settle } from "./lib.ts";
import { type QueueRun, Tally } from "./baselines/queue.ts";
import { pgBossDrain } from "./baselines/pg-boss.ts";
import { graphileDrain } from "./baselines/graphile-worker.ts";

const FULL = { buffers: 10_000, workers: [1, 2, 4, 8], windowMs: 8_000 };
const QUICK = { buffers: 1_000, workers: [1, 4], windowMs: 2_000 };
const LATENCIES_MS = [0, 200];
const BATCH_SIZES = [1, 50];
const LANES_AT_LATENCY = 4;

export type Plan = typeof FULL;

interface ProcessorRun {
  latencyMs: number;
  workers: number;
  lanes: number;
  batches: number;
  sends: number;
  seconds: number;
  batchesPerSecond: number;
  sendsPerSecond: number;
  outcomes: Record<string, number>;
}

interface ProcessorSeries {
  latencyMs: number;
  runs: ProcessorRun[];
  /** Buffers left when the series ended (0 when it drained to empty). */
  left: number;
  batches: number;
  sends: number;
  /** Conversations the agent was asked about more than once, counted once per extra time. */
  doubleProcessing: number;
  /** Customers sent more than one reply, counted once per extra send. */
  doubleSends: number;
  /** Batches settled with any outcome but "replied". */
  notReplied: number;
}

function extras(counts: Iterable<number>): number {
  let sum = 0;
  for (const n of counts) sum += Math.max(0, n - 1);
  return sum;
}

/** `workers` processors drain until `signal` aborts or nothing is due. */
async function processorRun(
  ctx: BenchContext,
  fakes: Fakes,
  latencyMs: number,
  workers: number,
  signal: AbortSignal | undefined,
): Promise<ProcessorRun> {
  const lanes = latencyMs === 0 ? 1 : LANES_AT_LATENCY;
  const env = processorTestEnv(fakes, {
    SUPABASE_DB_URL: ctx.dbUrl,
    PROCESSOR_CONCURRENCY: String(lanes),
  });
  const pools = Array.from({ length: workers }, () => connect(ctx, lanes + 1));
  try {
    const processors = await Promise.all(pools.map((sql, i) => createProcessor(env, sql, `bench-${i}`)));
    const sendsBefore = fakes.graph.sent.length;
    const started = performance.now();
    const summaries: DrainSummary[] = await Promise.all(
      processors.map((processor) => processor.drain({ budgetMs: Number.POSITIVE_INFINITY, signal })),
    );
    const seconds = (performance.now() - started) / 1000;
    const outcomes: Record<string, number> = {};
    for (const summary of summaries) {
      for (const [outcome, n] of Object.entries(summary.outcomes)) {
        outcomes[outcome] = (outcomes[outcome] ?? 0) + n!;
      }
    }
    const batches = summaries.reduce((sum, s) => sum + s.batches, 0);
    const sends = fakes.graph.sent.length - sendsBefore;
    return {
      latencyMs,
      workers,
      lanes,
      batches,
      sends,
      seconds,
      batchesPerSecond: batches / seconds,
      sendsPerSecond: sends / seconds,
      outcomes,
    };
  } finally {
    await Promise.all(pools.map((sql) => sql.end()));
  }
}

/** One deep queue, drained by each worker count in turn for `windowMs`; at 0 ms the last one empties it. */
async function processorSeries(ctx: BenchContext, plan: Plan, latencyMs: number): Promise<ProcessorSeries> {
  const fakes = await startBenchFakes(latency(latencyMs));
  const admin = connect(ctx, 2);
  try {
    await clearBuffers(admin);
    const { phoneNumberId } = await seedDueBuffers(admin, plan.buffers);
    await unthrottled(admin, phoneNumberId);
    await settle(ctx);
    const runs: ProcessorRun[] = [];
    for (const [i, workers] of plan.workers.entries()) {
      const toEmpty = latencyMs === 0 && i === plan.workers.length - 1;
      runs.push(
        await processorRun(
          ctx,
          fakes,
          latencyMs,
          workers,
          toEmpty ? undefined : AbortSignal.timeout(plan.windowMs),
        ),
      );
    }
    const [left] = await admin<{ n: number }[]>`
      select count(*)::int as n from wa.buffers where phone_number_id = ${phoneNumberId}`;
    const asked = new Map<string, number>();
    for (const request of fakes.agent.requests) {
      const id = String((request.body as { conversation?: { id?: string } }).conversation?.id);
      asked.set(id, (asked.get(id) ?? 0) + 1);
    }
    const perRecipient = new Map<string, number>();
    for (const sent of fakes.graph.sent) {
      const to = String(sent.body.to);
      perRecipient.set(to, (perRecipient.get(to) ?? 0) + 1);
    }
    const batches = runs.reduce((sum, run) => sum + run.batches, 0);
    return {
      latencyMs,
      runs,
      left: left!.n,
      batches,
      sends: fakes.graph.sent.length,
      doubleProcessing: extras(asked.values()),
      doubleSends: extras(perRecipient.values()),
      notReplied: batches - runs.reduce((sum, run) => sum + (run.outcomes.replied ?? 0), 0),
    };
  } finally {
    await clearBuffers(admin);
    await admin.end();
    await fakes.close();
  }
}

/** wabase's queue run, plus its speed with a deep backlog and with a shallow one. */
interface WabaseQueueRun extends QueueRun {
  /** Jobs/s over the second tenth of the jobs (backlog 90% .. 80%; the first tenth warms connections and
   * plans up), and over the last (10% .. 0%). */
  deepPerSecond: number;
  shallowPerSecond: number;
}

/**
 * One fetch+complete step of wabase's queue alone: claims up to `batchSize` due buffers and completes them
 * all in one more round trip (one statement, like a baseline's batched completion). Returns the claims.
 */
export async function claimAndComplete(
  sql: postgres.Sql,
  worker: string,
  batchSize: number,
): Promise<{ conversation_id: string }[]> {
  const claims = await sql<{ conversation_id: string; fence: string; up_to_seq: string }[]>`
    select conversation_id, fence, up_to_seq from wa.claim_buffers(${worker}, ${batchSize})`;
  if (claims.length === 0) return claims;
  await sql`
    select wa.complete_buffer(f, s)
    from unnest(${claims.map((c) => c.fence)}::bigint[], ${
    claims.map((c) => c.up_to_seq)
  }::bigint[]) as t(f, s)`;
  return claims;
}

/** wabase's queue alone: wa.claim_buffers + wa.complete_buffer, nothing in between. */
async function claimCompleteDrain(
  ctx: BenchContext,
  buffers: number,
  workers: number,
  batchSize: number,
): Promise<WabaseQueueRun> {
  const admin = connect(ctx, 2);
  const sql = connect(ctx, workers);
  try {
    await clearBuffers(admin);
    await seedDueBuffers(admin, buffers);
    await settle(ctx);
    const tally = new Tally();
    const tenth = buffers / 10;
    // When the completed count first reached each tenth of the queue (index 0: the start).
    const tenths = [performance.now()];
    let completed = 0;
    await Promise.all(Array.from({ length: workers }, async (_, w) => {
      for (;;) {
        const claims = await claimAndComplete(sql, `bench-q-${w}`, batchSize);
        if (claims.length === 0) return;
        for (const claim of claims) tally.see(claim.conversation_id);
        completed += claims.length;
        while (completed >= tenths.length * tenth) tenths.push(performance.now());
      }
    }));
    const rate = (from: number) => tenth / ((tenths[from + 1]! - tenths[from]!) / 1000);
    return {
      ...tally.run("wabase", workers, batchSize),
      deepPerSecond: rate(1),
      shallowPerSecond: rate(9),
    };
  } finally {
    await clearBuffers(admin);
    await Promise.all([admin.end(), sql.end()]);
  }
}

const plural = (n: number) => `${n} worker${n > 1 ? "s" : ""}`;

/** The drain benchmark; `plan` and `latencies` pick other workloads (the durable benchmark's). */
export async function drain(
  ctx: BenchContext,
  plan: Plan = ctx.quick ? QUICK : FULL,
  latencies: number[] = LATENCIES_MS,
): Promise<BenchResult> {
  const res = result("drain", {
    buffers: plan.buffers,
    workers: plan.workers,
    window_ms: plan.windowMs,
    fake_latency_ms: latencies,
    lanes: { "0": 1, "200": LANES_AT_LATENCY },
    batch_sizes: BATCH_SIZES,
  });
  const series: ProcessorSeries[] = [];
  for (const latencyMs of latencies) series.push(await processorSeries(ctx, plan, latencyMs));
  const queues: QueueRun[] = [];
  const ownQueues: WabaseQueueRun[] = [];
  const failures: string[] = [];
  for (const batchSize of BATCH_SIZES) {
    for (const workers of plan.workers) {
      const own = await claimCompleteDrain(ctx, plan.buffers, workers, batchSize);
      ownQueues.push(own);
      queues.push(own);
      for (const baseline of [pgBossDrain, graphileDrain]) {
        try {
          queues.push(await baseline(ctx.dbUrl, plan.buffers, workers, batchSize, () => settle(ctx)));
        } catch (error) {
          failures.push(`${baseline.name} (${workers} workers, batch ${batchSize}): ${error}`);
        }
      }
    }
  }
  const queue = (system: string, workers: number, batchSize: number) =>
    queues.find((q) => q.system === system && q.workers === workers && q.batchSize === batchSize);

  for (const s of series) {
    for (const run of s.runs) {
      const boss = queue("pg-boss", run.workers, 1);
      res.rows.push({
        metric: `full processor, ${s.latencyMs} ms fakes, ${plural(run.workers)}` +
          `${run.lanes > 1 ? ` × ${run.lanes} lanes` : ""}: batches/s`,
        value: run.batchesPerSecond,
        unit: "/s",
        ...(s.latencyMs === 0 && boss
          ? { baseline: boss.perSecond, baselineLabel: "pg-boss fetch+complete, no-op jobs" }
          : {}),
      });
    }
    const last = s.runs.at(-1)!;
    res.rows.push({
      metric: `full processor, ${s.latencyMs} ms fakes, ${plural(last.workers)}: sends/s`,
      value: last.sendsPerSecond,
      unit: "/s",
    });
  }
  res.rows.push(
    {
      metric: "double processing (agent asked twice), all runs",
      value: series.reduce((sum, s) => sum + s.doubleProcessing, 0),
      unit: "",
      target: "0",
    },
    {
      metric: "double sends (two replies to one burst), all runs",
      value: series.reduce((sum, s) => sum + s.doubleSends, 0),
      unit: "",
      target: "0",
    },
  );
  const shown = [plan.workers[0]!, plan.workers.at(-1)!];
  for (const batchSize of BATCH_SIZES) {
    for (const workers of shown) {
      const ours = queue("wabase", workers, batchSize);
      for (const system of ["pg-boss", "graphile-worker"]) {
        const theirs = queue(system, workers, batchSize);
        if (ours === undefined) continue;
        const row: Row = {
          metric: `claim+complete, ${plural(workers)}, batch ${batchSize}: jobs/s vs ${system}`,
          value: ours.perSecond,
          unit: "/s",
          target: "≥ 1×",
        };
        if (theirs) {
          Object.assign(row, { baseline: theirs.perSecond, baselineLabel: `${system} (no-op jobs)` });
        }
        res.rows.push(row);
      }
    }
  }
  for (const own of ownQueues.filter((q) => q.workers === 1)) {
    res.rows.push({
      metric: `claim+complete, 1 worker, batch ${own.batchSize}: jobs/s, backlog ${
        (plan.buffers * 9) / 10
      } vs ≤ ${plan.buffers / 10}`,
      value: own.deepPerSecond,
      unit: "/s",
      baseline: own.shallowPerSecond,
      baselineLabel: "the same run's last tenth of the queue",
      target: "≈ 1× (independent of backlog)",
    });
  }
  res.rows.push({
    metric: "jobs handed out twice, all queue runs",
    value: queues.filter((q) => q.system === "wabase").reduce((sum, q) => sum + q.doubles, 0),
    unit: "",
    baseline: queues.filter((q) => q.system !== "wabase").reduce((sum, q) => sum + q.doubles, 0),
    baselineLabel: "pg-boss + graphile-worker",
    target: "0",
  });

  for (const s of series) {
    const name = `${s.latencyMs} ms fakes`;
    check(res, `${name}: conversations asked about twice`, s.doubleProcessing, 0);
    check(res, `${name}: customers sent two replies`, s.doubleSends, 0);
    check(res, `${name}: sends = batches`, s.sends, s.batches);
    check(res, `${name}: batches settled other than replied`, s.notReplied, 0);
    if (s.latencyMs === 0) {
      check(res, `${name}: buffers left after the drain`, s.left, 0);
      check(res, `${name}: batches = due buffers`, s.batches, plan.buffers);
    }
  }
  for (const q of queues) {
    check(res, `${q.system}, ${plural(q.workers)}, batch ${q.batchSize}: jobs run`, q.jobs, plan.buffers);
    check(res, `${q.system}, ${plural(q.workers)}, batch ${q.batchSize}: handed out twice`, q.doubles, 0);
  }
  check(res, "baselines that failed to run", failures.length, 0);
  res.notes.push(
    `${plan.buffers} due buffers (one message each) per series; each worker count drains for ` +
      `${
        plan.windowMs / 1000
      } s from the same queue, the last one at 0 ms until it is empty. A worker is a ` +
      "processor with its own pool; at 0 ms it runs 1 lane (one claim loop, like each baseline worker), at " +
      `200 ms ${LANES_AT_LATENCY} (the default). A batch is claim, context, agent call, reply row, send, record, ` +
      "complete: about 7 round trips and 2 HTTP calls, against 2 round trips for a baseline's no-op job. Queue " +
      "rows: batch 50 = one claim (fetch) of 50 and one statement completing them; graphile-worker's batch 50 " +
      "is its local queue of 50 with batched completion. Every worker count of the queue runs is in the JSON.",
    ...failures.map((failure) => `baseline failed: ${failure}`),
  );
  res.samples = { processor: series, queues };
  return res;
}
