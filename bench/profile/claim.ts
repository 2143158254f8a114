// The profile of the bare queue (issue 23): one claim and its complete, with nothing in between, as the
// drain benchmark's queue rows run them. First the round trips one at a time at batch 1 and batch 50, then the
// database's time by statement per claimed buffer (the statements inside wa.claim_buffers, wa.complete_buffer
// and the wa.buffers triggers included), beside graphile-worker's statements per job on the same cluster.
import { graphileDrain } from "../baselines/graphile-worker.ts";
import { claimAndComplete } from "../drain.ts";
import { type BenchContext, connect, percentile, settle } from "../lib.ts";
import { clearBuffers, seedDueBuffers } from "../../local/testing/processor.ts";
import { statementCosts, statementTable } from "./statements.ts";
import type { ProfileSection } from "./section.ts";

const BATCH_SIZES = [1, 50];
const WARM_UP = 50;

/** Median round trips of the claim and of the complete, per claimed buffer, draining `buffers` at `batchSize`. */
async function roundTrips(ctx: BenchContext, buffers: number, batchSize: number): Promise<[number, number]> {
  const sql = connect(ctx, 1);
  try {
    await clearBuffers(sql);
    await seedDueBuffers(sql, buffers);
    await settle(ctx);
    const claimMs: number[] = [];
    const completeMs: number[] = [];
    for (;;) {
      const t0 = performance.now();
      const claims = await sql<{ fence: string; up_to_seq: string }[]>`
        select fence, up_to_seq from wa.claim_buffers('profile', ${batchSize})`;
      if (claims.length === 0) break;
      const t1 = performance.now();
      await sql`
        select wa.complete_buffer(f, s)
        from unnest(${claims.map((c) => c.fence)}::bigint[], ${
        claims.map((c) => c.up_to_seq)
      }::bigint[]) as t(f, s)`;
      claimMs.push((t1 - t0) / claims.length);
      completeMs.push((performance.now() - t1) / claims.length);
    }
    return [percentile(claimMs, 50), percentile(completeMs, 50)];
  } finally {
    await sql.end();
  }
}

/** wabase's statements per claimed buffer, draining `buffers` at `batchSize` on one connection. */
async function ownStatements(ctx: BenchContext, buffers: number, batchSize: number): Promise<string> {
  const admin = connect(ctx, 1);
  try {
    await clearBuffers(admin);
    const { statements, value: claimed } = await statementCosts(ctx, async () => {
      await seedDueBuffers(admin, buffers + WARM_UP * batchSize);
      await settle(ctx);
      // Opened now: its connection carries the tracking setting; warmed up so its plans are cached.
      const sql = connect(ctx, 1);
      for (let i = 0; i < WARM_UP; i++) await claimAndComplete(sql, "profile-warm", batchSize);
      return sql;
    }, async (sql) => {
      let claimed = 0;
      try {
        for (;;) {
          const claims = await claimAndComplete(sql, "profile", batchSize);
          if (claims.length === 0) return claimed;
          claimed += claims.length;
        }
      } finally {
        await sql.end();
      }
    });
    return `wabase, batch ${batchSize}, ${claimed} buffers claimed and completed, per buffer:\n\n${
      statementTable(statements, claimed, 20)
    }`;
  } finally {
    await clearBuffers(admin);
    await admin.end();
  }
}

/** graphile-worker's statements per job, one runner draining `jobs` no-op jobs at `batchSize`. */
async function graphileStatements(ctx: BenchContext, jobs: number, batchSize: number): Promise<string> {
  const { statements } = await statementCosts(
    ctx,
    () => Promise.resolve(),
    () =>
      graphileDrain(ctx.dbUrl, jobs, 1, batchSize, async () => {
        await settle(ctx);
        // Only the drain counts, not adding the jobs (its runners connect after this).
        const sql = connect(ctx, 1);
        await sql`select extensions.pg_stat_statements_reset()`;
        await sql.end();
      }),
  );
  return `graphile-worker, batch ${batchSize}, ${jobs} no-op jobs, per job:\n\n${
    statementTable(statements, jobs, 10)
  }`;
}

export async function profileClaim(ctx: BenchContext): Promise<ProfileSection> {
  const started = performance.now();
  const buffers = ctx.quick ? 500 : 2_000;
  const markdown = [
    "One claim and its complete at a time, one connection (median round trip per claimed buffer, ms):",
    "",
    "| batch | claim | complete |",
    "| ---: | ---: | ---: |",
  ];
  for (const batchSize of BATCH_SIZES) {
    const [claimMs, completeMs] = await roundTrips(ctx, buffers, batchSize);
    markdown.push(`| ${batchSize} | ${claimMs.toFixed(3)} | ${completeMs.toFixed(3)} |`);
  }
  markdown.push(
    "",
    "The database per claimed buffer (pg_stat_statements, `track = all`; a nested statement's time is inside " +
      "its caller's):",
  );
  for (const batchSize of BATCH_SIZES) {
    markdown.push("", await ownStatements(ctx, buffers, batchSize));
    markdown.push("", await graphileStatements(ctx, buffers, batchSize));
  }
  return {
    title: "claim: the bare queue, one claim and its complete",
    markdown: markdown.join("\n"),
    elapsedMs: performance.now() - started,
  };
}
