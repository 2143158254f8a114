// Issue 23 §4 — production durability. The other benchmarks run on a cluster with fsync, synchronous_commit and
// full_page_writes off: the best case, where a commit never waits for the disk. A Supabase database keeps them
// on, so every commit waits for its WAL to be flushed. This benchmark runs the ingest's 1 and 100 msg/POST rows
// at 16 in flight, the full processor with zero-latency fakes and the bare queue (claim+complete, batch 1 and
// 50, beside pg-boss and graphile-worker) again, through bench/ingest.ts and bench/drain.ts themselves, on a
// second throwaway cluster with the three on (bench/run.sh starts it): every baseline runs there too.
import { drain, type Plan as DrainPlan } from "./drain.ts";
import { ingest, type IngestPlan } from "./ingest.ts";
import { type BenchContext, type BenchResult, check, connect, percentile, result, type Row } from "./lib.ts";

interface DurablePlan {
  ingest: IngestPlan;
  drain: DrainPlan;
}

const FULL: DurablePlan = {
  ingest: { sizes: { 1: 1_000, 100: 30 }, concurrency: [16] },
  drain: { buffers: 10_000, workers: [1, 8], windowMs: 8_000 },
};
const QUICK: DurablePlan = {
  ingest: { sizes: { 1: 200, 100: 6 }, concurrency: [16] },
  drain: { buffers: 300, workers: [1, 4], windowMs: 2_000 },
};
/** Zero-latency fakes only: the rows where the database, and so its commits, is the whole cost. */
const LATENCIES_MS = [0];
/** Rows of the two benchmarks left out here: latency tails and the backlog comparison (the fsync-off run's). */
const LEFT_OUT = /p95|backlog/;
/** What makes the cluster durable; each must be on. */
const DURABILITY = ["fsync", "synchronous_commit", "full_page_writes"];

/** The durability settings of the cluster, and how it flushes its WAL. */
async function settings(ctx: BenchContext): Promise<Record<string, string>> {
  const sql = connect(ctx, 1);
  try {
    const rows = await sql<{ name: string; setting: string }[]>`
      select name, setting from pg_settings where name = any(${[...DURABILITY, "wal_sync_method"]}::text[])`;
    return Object.fromEntries(rows.map((row) => [row.name, row.setting]));
  } finally {
    await sql.end();
  }
}

/** One-row inserts, each its own transaction, for the commit's cost. */
const COMMITS = 200;

/**
 * What one commit costs on the durable cluster now: a one-row insert with synchronous_commit on (the commit
 * waits for the WAL flush) against the same with it off, in one session. The disk is shared: its flush time
 * changes with the machine's load, so it is measured in the run whose figures it explains.
 */
async function commitCost(ctx: BenchContext, moment: "before" | "after"): Promise<Row> {
  const sql = connect(ctx, 1);
  try {
    // A logged table: a transaction that wrote only to a temporary one would not wait for a flush.
    await sql`create table commit_probe (id bigint generated always as identity, at timestamptz)`;
    const p50 = async (mode: string) => {
      await sql.unsafe(`set synchronous_commit = ${mode}`);
      const samples: number[] = [];
      for (let i = 0; i < COMMITS; i++) {
        const started = performance.now();
        await sql`insert into commit_probe (at) values (now())`;
        samples.push(performance.now() - started);
      }
      return percentile(samples, 50);
    };
    const on = await p50("on");
    const off = await p50("off");
    await sql`drop table commit_probe`;
    return {
      metric: `a one-row insert's commit, ${moment} the workloads: latency p50`,
      value: on,
      unit: "ms",
      baseline: off,
      baselineLabel: "the same with synchronous_commit off",
    };
  } finally {
    await sql.end();
  }
}

export async function durable(ctx: BenchContext): Promise<BenchResult> {
  const plan = ctx.quick ? QUICK : FULL;
  const res = result("durable", { ...plan, fake_latency_ms: LATENCIES_MS });
  if (ctx.durableDbUrl === undefined) {
    res.skipped = "no cluster with fsync on (npm run bench starts one: WABASE_BENCH_DURABLE_DB_URL)";
    return res;
  }
  const on: BenchContext = { dbUrl: ctx.durableDbUrl, quick: ctx.quick };
  const found = await settings(on);
  for (const name of DURABILITY) check(res, `durable cluster: ${name} on`, found[name] === "on" ? 1 : 0, 1);
  res.notes.push(
    `the durable cluster: ${Object.entries(found).map(([name, value]) => `${name}=${value}`).join(", ")}`,
  );
  // Before and after the workloads: the shared disk's flush time moves with the machine's load.
  res.rows.push(await commitCost(on, "before"));
  const parts = [
    ["ingest", () => ingest(on, plan.ingest)],
    ["drain", () => drain(on, plan.drain, LATENCIES_MS)],
  ] as const;
  for (const [part, run] of parts) {
    const sub = await run();
    const label = `durable ${part}`;
    res.rows.push(
      ...sub.rows.filter((row) => !LEFT_OUT.test(row.metric))
        .map((row) => ({ ...row, metric: `${label}: ${row.metric}` })),
    );
    res.checks.push(...sub.checks.map((c) => ({ ...c, name: `${label}: ${c.name}` })));
    res.notes.push(...sub.notes.map((note) => `${label}: ${note}`));
    res.samples[part] = sub.samples;
  }
  res.rows.push(await commitCost(on, "after"));
  return res;
}
