// Issue 22 §3 — a burst on the hosted path. 500 conversations become due at once while the keepalive
// invocation is waiting (WABASE_TRIGGER=cron as bench/hosted.ts runs it); the agent answers after a
// log-normal delay with p50 2 s and p99 8 s (seeded, so every run asks the same). Measured: the time from
// the burst's commit to the last reply sent, against the slowest single agent answer of the burst (what
// unlimited lanes would take: the baseline column), the edge runtime's CPU per batch, and how many
// invocations held the slot. Checks: every conversation answered once, nobody asked about or sent twice.
import { clearBuffers, seedDueBuffers } from "../local/testing/processor.ts";
import { processorEnvVars, startBenchFakes } from "./fakes.ts";
import { cpuMs, keepaliveCounts, startHosted } from "./hosted.ts";
import { type BenchContext, type BenchResult, check, connect, quantiles, result, until } from "./lib.ts";

const FULL = { conversations: 500, p50Ms: 2_000, p99Ms: 8_000, targetS: 30 };
// Quick: a fifth of the burst, the agent ten times faster.
const QUICK = { conversations: 100, p50Ms: 200, p99Ms: 800, targetS: 30 };
const Z99 = 2.3263;

/** mulberry32: a small seeded generator, so each run samples the same delays. */
function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Log-normal delays with the given median and 99th percentile. */
function agentDelays(p50Ms: number, p99Ms: number): () => number {
  const random = seeded(22);
  const sigma = Math.log(p99Ms / p50Ms) / Z99;
  return () => {
    const z = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    return Math.round(p50Ms * Math.exp(sigma * z));
  };
}

export async function burst(ctx: BenchContext): Promise<BenchResult> {
  const plan = ctx.quick ? QUICK : FULL;
  const res = result("burst", { ...plan, trigger: "hosted (keepalive invocation, bench/hosted.ts)" });
  const next = agentDelays(plan.p50Ms, plan.p99Ms);
  const delays: number[] = [];
  const fakes = await startBenchFakes({
    agent: () => {
      const ms = next();
      delays.push(ms);
      return { kind: "delay", ms };
    },
  });
  const sql = connect(ctx, 4);
  await clearBuffers(sql);
  await sql`update wa.keepalive set requests = 0, holders = 0`;
  const hosted = await startHosted(ctx.dbUrl, processorEnvVars(ctx.dbUrl, fakes));
  try {
    const probe = await seedDueBuffers(sql, 1);
    await until("the keepalive invocation answered a probe", async () => {
      const [row] = await sql<{ n: number }[]>`
        select count(*)::int as n from wa.buffers where phone_number_id = ${probe.phoneNumberId}`;
      return row?.n === 0;
    }, 60_000);
    fakes.agent.reset();
    fakes.graph.reset();
    delays.length = 0;
    const before = await keepaliveCounts(sql);
    const cpuBefore = await cpuMs(hosted.pid());
    const started = performance.now();
    const { waIds } = await seedDueBuffers(sql, plan.conversations);
    await until(
      "every conversation of the burst answered",
      () => Promise.resolve(fakes.graph.sent.length >= plan.conversations),
      120_000,
      50,
    );
    const seconds = (performance.now() - started) / 1000;
    const cpu = await cpuMs(hosted.pid()) - cpuBefore;
    const after = await keepaliveCounts(sql);
    const asked = new Map<string, number>();
    for (const request of fakes.agent.requests) {
      const id = String((request.body as { conversation?: { id?: string } }).conversation?.id);
      asked.set(id, (asked.get(id) ?? 0) + 1);
    }
    const recipients = new Set(fakes.graph.sent.map((sent) => String(sent.body.to).replace(/^\+/, "")));
    const slowest = Math.max(...delays) / 1000;
    res.rows.push(
      {
        metric:
          `${plan.conversations} due at once, agent ${plan.p50Ms} ms p50 / ${plan.p99Ms} ms p99: drained in`,
        value: Math.round(seconds * 10) / 10,
        unit: "s",
        baseline: Math.round(slowest * 10) / 10,
        baselineLabel: "the slowest agent answer (unlimited lanes)",
        target: `≤ ${plan.targetS} s`,
      },
      {
        metric: "edge runtime CPU per batch",
        value: Math.round((cpu / plan.conversations) * 100) / 100,
        unit: "ms",
        target: "× batches per invocation ≪ 2 s",
      },
      {
        metric: "invocations that drained the burst (the waiting one included)",
        value: after.holders - before.holders + 1,
        unit: "",
      },
    );
    check(res, `drained within ${plan.targetS} s`, seconds <= plan.targetS ? 1 : 0, 1);
    check(res, "replies sent", fakes.graph.sent.length, plan.conversations);
    check(
      res,
      "customers answered",
      [...recipients].filter((to) => waIds.includes(to)).length,
      plan.conversations,
    );
    check(res, "conversations asked about twice", [...asked.values()].filter((n) => n > 1).length, 0);
    res.notes.push(
      `agent delays sampled: ${
        JSON.stringify(quantiles(delays))
      } ms, slowest ${slowest} s; edge runtime CPU ` +
        `${Math.round(cpu)} ms for ${plan.conversations} batches; keepalive ${JSON.stringify(after)}`,
    );
  } finally {
    await hosted.stop();
    await clearBuffers(sql);
    await sql.end();
    await fakes.close();
  }
  return res;
}
