// The profile of one webhook delivery at 1 message per POST (issue 23): first the stages of one delivery at 1
// in flight (the handler's own steps timed in this process on the same body, the SQL call, and the HTTP
// exchange as what is left of the POST's time), then at 16 in flight the webhook server's CPU by module and
// function (V8 inspector) and the database's time by statement, triggers and broadcasts included.
import { localEnvDefaults } from "../../local/env.ts";
import { spawnServer } from "../../local/testing/server.ts";
import {
  replaceUnstorableEscapes,
  validateLeavingOut,
} from "../../supabase/functions/whatsapp-webhook/salvage.ts";
import { verifySignature } from "../../supabase/functions/whatsapp-webhook/signature.ts";
import { type Delivery, workload } from "../ingest.ts";
import { type BenchContext, connect, percentile, runBounded } from "../lib.ts";
import { cpuProfile, cpuTable, freePort, summarise } from "./cpu.ts";
import { statementCosts, statementTable } from "./statements.ts";
import type { ProfileSection } from "./section.ts";

const CONCURRENCY = 16;

/** The median time of `fn` over `count` runs, in ms. */
async function medianMs(count: number, fn: (i: number) => unknown): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await fn(i);
    times.push(performance.now() - t0);
  }
  return percentile(times, 50);
}

/** The handler's steps on each body in turn, each timed alone (median over the bodies). */
async function handlerStages(deliveries: Delivery[], secret: string): Promise<[string, number][]> {
  const bytes = deliveries.map((d) => new TextEncoder().encode(d.body));
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const texts = bytes.map((b) => decoder.decode(b));
  const parsed = texts.map((t) => JSON.parse(t));
  const n = deliveries.length;
  return [
    [
      "signature (HMAC-SHA256 verify)",
      await medianMs(n, (i) => verifySignature(bytes[i]!, deliveries[i]!.signature, secret)),
    ],
    [
      "UTF-8 decode and escape scan",
      await medianMs(n, (i) => replaceUnstorableEscapes(decoder.decode(bytes[i]!))),
    ],
    ["JSON.parse", await medianMs(n, (i) => JSON.parse(texts[i]!))],
    ["zod validation (validateLeavingOut)", await medianMs(n, (i) => validateLeavingOut(parsed[i]))],
  ];
}

export async function profileIngest(ctx: BenchContext): Promise<ProfileSection> {
  const secret = (await localEnvDefaults()).WHATSAPP_APP_SECRET ?? "";
  const count = ctx.quick ? 300 : 2_000;
  const markdown: string[] = [];

  // 1. One delivery at a time: the stages.
  const sequential = await workload(1, Math.min(count, 500), 0, secret, 1);
  const stages = await handlerStages(sequential.deliveries, secret);
  const direct = connect(ctx, 1, { prepare: false });
  const server = await spawnServer({ SUPABASE_DB_URL: ctx.dbUrl });
  const endpoint = `${server.url}whatsapp-webhook`;
  const post = async (url: string, delivery: Delivery) => {
    const response = await fetch(url, {
      method: "POST",
      body: delivery.body,
      headers: { "content-type": "application/json", "x-hub-signature-256": delivery.signature },
    });
    if (response.status !== 200) throw new Error(`the webhook answered ${response.status}`);
    await response.arrayBuffer();
  };
  try {
    const half = Math.floor(sequential.deliveries.length / 2);
    const warm = await workload(1, 50, 0, secret, 1);
    for (const d of warm.deliveries) await post(endpoint, d);
    // Alternately, one SQL call then one POST, so both meet the same load on a shared machine.
    const sqlTimes: number[] = [];
    const postTimes: number[] = [];
    for (let i = 0; i < half; i++) {
      let t0 = performance.now();
      await direct`select wa.ingest_webhook(${sequential.deliveries[i]!.body}::text::jsonb)`;
      sqlTimes.push(performance.now() - t0);
      t0 = performance.now();
      await post(endpoint, sequential.deliveries[half + i]!);
      postTimes.push(performance.now() - t0);
    }
    const [sqlMs, postMs] = [percentile(sqlTimes, 50), percentile(postTimes, 50)];
    const handlerMs = stages.reduce((sum, [, ms]) => sum + ms, 0);
    markdown.push(
      "One delivery at a time (medians; each step timed alone on the same bodies):",
      "",
      "| step | ms | share of the POST |",
      "| --- | ---: | ---: |",
      ...stages.map(([step, ms]) => `| ${step} | ${ms.toFixed(3)} | ${(100 * ms / postMs).toFixed(0)}% |`),
      `| SQL call \`wa.ingest_webhook\` (round trip) | ${sqlMs.toFixed(3)} | ${
        (100 * sqlMs / postMs).toFixed(0)
      }% |`,
      `| HTTP, body read, pool, answer (the rest) | ${(postMs - handlerMs - sqlMs).toFixed(3)} | ${
        (100 * (postMs - handlerMs - sqlMs) / postMs).toFixed(0)
      }% |`,
      `| the POST, sent to answer read | ${postMs.toFixed(3)} | 100% |`,
      "",
    );

    // 2. 16 in flight: where the CPU of the server and of the database goes.
    const load = await workload(1, count, 0, secret, CONCURRENCY);
    let profiled: Awaited<ReturnType<typeof spawnServer>> | undefined;
    const inspectPort = freePort();
    const { value: elapsedMs, statements } = await statementCosts(ctx, async () => {
      // A server started now: its connections carry the tracking setting.
      profiled = await spawnServer({ SUPABASE_DB_URL: ctx.dbUrl }, inspectPort);
      const url = `${profiled.url}whatsapp-webhook`;
      const warm = await workload(1, 50, 0, secret, CONCURRENCY);
      await runBounded(warm.deliveries.length, CONCURRENCY, (i) => post(url, warm.deliveries[i]!));
      return url;
    }, async (url) => {
      const { value, profile } = await cpuProfile(inspectPort, async () => {
        const run = await runBounded(
          load.deliveries.length,
          CONCURRENCY,
          (i) => post(url, load.deliveries[i]!),
        );
        return run.elapsedMs;
      });
      markdown.push(
        `${count} deliveries, ${CONCURRENCY} in flight: ${
          (count / (value / 1000)).toFixed(0)
        }/s. The webhook ` +
          "server's CPU (self time, ms per delivery):",
        "",
        cpuTable(summarise(profile), count),
        "",
      );
      return value;
    });
    await profiled?.stop();
    markdown.push(
      "The database, per delivery (pg_stat_statements, `track = all`; a nested statement's time is inside its " +
        "caller's):",
      "",
      statementTable(statements, count, 25),
    );
    return { title: "ingest: one delivery, 1 message per POST", markdown: markdown.join("\n"), elapsedMs };
  } finally {
    await server.stop();
    await direct.end();
  }
}
