// Issue 10 §2 / SPEC 8.1 — webhook ingest. Signed Cloud API deliveries of 1, 10 and 100 messages each through
// the real functions server (child process, as `npm start` runs it), 10% of them re-sent identically (some
// while the original is still in flight), at fixed concurrency levels; the same kind of payloads through
// `select wa.ingest_webhook(...)` on a postgres.js pool with the same concurrency: the database's own limit.
// Every distinct wamid must be stored exactly once, and every re-sent message reported as a duplicate.
import { localEnvDefaults } from "../local/env.ts";
import { spawnServer } from "../local/testing/server.ts";
import { clearBuffers } from "../local/testing/processor.ts";
import {
  contact,
  inboundMessage,
  messagesChange,
  signBody,
  webhook,
} from "../local/testing/whatsapp-fixtures.ts";
import {
  type BenchContext,
  type BenchResult,
  check,
  connect,
  freshPhoneNumberId,
  quantiles,
  result,
  rounded,
  runBounded,
  shuffle,
} from "./lib.ts";

const DUPLICATE_SHARE = 0.1;
const CONTACTS = 200;
/** Messages per POST → deliveries per run (about the same number of messages per run for sizes 10 and 100). */
const FULL = { sizes: { 1: 1_000, 10: 200, 100: 30 } as Record<number, number>, concurrency: [1, 16] };
const QUICK = { sizes: { 1: 200, 100: 6 } as Record<number, number>, concurrency: [16] };
export type IngestPlan = typeof FULL;

export interface Delivery {
  body: string;
  signature: string;
}

interface Workload {
  size: number;
  deliveries: Delivery[];
  wamids: string[];
  /** Deliveries re-sent identically. */
  duplicateDeliveries: number;
}

/**
 * `total` deliveries of `size` text messages each (from `CONTACTS` customers of a fresh business number), of
 * which `duplicateShare` are re-sends of a random earlier body placed shortly after it (often still in flight).
 */
export async function workload(
  size: number,
  total: number,
  duplicateShare: number,
  secret: string,
  concurrency: number,
): Promise<Workload> {
  const phoneNumberId = freshPhoneNumberId(2);
  const duplicates = Math.round(total * duplicateShare);
  const unique = total - duplicates;
  const wamids: string[] = [];
  const bodies: string[] = [];
  for (let d = 0; d < unique; d++) {
    const senders = new Map<string, ReturnType<typeof contact>>();
    const messages = Array.from({ length: size }, (_, m) => {
      const n = d * size + m;
      const from = `8${phoneNumberId.slice(-6)}${String(n % CONTACTS).padStart(5, "0")}`;
      senders.set(from, contact(from, `Bench ${n % CONTACTS}`));
      const message = inboundMessage("text", { from, content: { body: `bench ${n}` } });
      wamids.push(String(message.id));
      return message;
    });
    bodies.push(
      JSON.stringify(webhook(messagesChange({ phoneNumberId, contacts: [...senders.values()], messages }))),
    );
  }
  const order = shuffle(bodies.map((_, i) => i));
  for (let d = 0; d < duplicates; d++) {
    const original = Math.floor(Math.random() * unique);
    const gap = 1 + Math.floor(Math.random() * concurrency * 2);
    order.splice(Math.min(order.length, order.indexOf(original) + gap), 0, original);
  }
  const signatures = await Promise.all(bodies.map((body) => signBody(body, secret)));
  const deliveries = order.map((i) => ({ body: bodies[i]!, signature: signatures[i]! }));
  return { size, deliveries, wamids, duplicateDeliveries: duplicates };
}

interface IngestCounts {
  new: number;
  duplicate: number;
}

type Send = (delivery: Delivery) => Promise<IngestCounts | null>;

interface Run {
  path: "function" | "sql";
  size: number;
  concurrency: number;
  deliveries: number;
  deliveriesPerSecond: number;
  messagesPerSecond: number;
  latency: { p50: number; p95: number; p99: number };
  reportedNew: number;
  reportedDuplicates: number;
  expectedNew: number;
  expectedDuplicates: number;
  failures: number;
  /** Distinct wamids of the workload found in public.messages. */
  stored: number;
  /** Rows of public.messages beyond the first for any of the workload's wamids. */
  storedTwice: number;
  latencies_ms: number[];
}

async function measure(
  ctx: BenchContext,
  path: Run["path"],
  load: Workload,
  concurrency: number,
  send: Send,
): Promise<Run> {
  let reportedNew = 0;
  let reportedDuplicates = 0;
  let failures = 0;
  const { latencies, elapsedMs } = await runBounded(load.deliveries.length, concurrency, async (i) => {
    const counts = await send(load.deliveries[i]!);
    if (counts === null) {
      failures++;
      return;
    }
    reportedNew += counts.new;
    reportedDuplicates += counts.duplicate;
  });
  const sql = connect(ctx, 1);
  try {
    const [stored] = await sql<{ distinct: number; rows: number }[]>`
      select count(distinct m.wamid)::int as distinct, count(*)::int as rows
      from public.messages m where m.wamid = any(${load.wamids}::text[])`;
    const seconds = elapsedMs / 1000;
    return {
      path,
      size: load.size,
      concurrency,
      deliveries: load.deliveries.length,
      deliveriesPerSecond: load.deliveries.length / seconds,
      messagesPerSecond: (load.deliveries.length * load.size) / seconds,
      latency: quantiles(latencies),
      reportedNew,
      reportedDuplicates,
      expectedNew: load.wamids.length,
      expectedDuplicates: load.duplicateDeliveries * load.size,
      failures,
      stored: stored!.distinct,
      storedTwice: stored!.rows - stored!.distinct,
      latencies_ms: rounded(latencies),
    };
  } finally {
    await sql.end();
  }
}

/** The ingest benchmark; `plan` picks other sizes and concurrency levels (the durable benchmark's). */
export async function ingest(
  ctx: BenchContext,
  plan: IngestPlan = ctx.quick ? QUICK : FULL,
): Promise<BenchResult> {
  const sizes = Object.keys(plan.sizes).map(Number);
  const top = Math.max(...plan.concurrency);
  const res = result("ingest", {
    messages_per_post: sizes,
    deliveries_per_run: plan.sizes,
    concurrency: plan.concurrency,
    duplicate_share: DUPLICATE_SHARE,
    contacts: CONTACTS,
    function_pool: 5,
  });
  const secret = (await localEnvDefaults()).WHATSAPP_APP_SECRET ?? "";
  // The baseline's pool: as many connections as deliveries in flight, unprepared like the function's.
  const direct = connect(ctx, top, { prepare: false });
  const server = await spawnServer({ SUPABASE_DB_URL: ctx.dbUrl });
  const runs: Run[] = [];
  try {
    const endpoint = `${server.url}whatsapp-webhook`;
    const viaFunction: Send = async (delivery) => {
      const response = await fetch(endpoint, {
        method: "POST",
        body: delivery.body,
        headers: { "content-type": "application/json", "x-hub-signature-256": delivery.signature },
      });
      const body = await response.json();
      return response.status === 200 && typeof body.new === "number" ? body : null;
    };
    const viaSql: Send = async (delivery) => {
      const [row] = await direct<{ counts: IngestCounts }[]>`
        select wa.ingest_webhook(${delivery.body}::text::jsonb) as counts`;
      return row?.counts ?? null;
    };
    // Warm both paths (JIT, pools, the function's imports) on a throwaway number.
    for (const send of [viaFunction, viaSql]) {
      const warm = await workload(1, 50, 0, secret, top);
      await runBounded(warm.deliveries.length, top, (i) => send(warm.deliveries[i]!).then(() => {}));
    }
    for (const size of sizes) {
      for (const concurrency of plan.concurrency) {
        const total = plan.sizes[size]!;
        // The same shape of workload for both paths, each on its own fresh number (no cross-duplicates).
        for (const [path, send] of [["sql", viaSql], ["function", viaFunction]] as const) {
          const load = await workload(size, total, DUPLICATE_SHARE, secret, concurrency);
          runs.push(await measure(ctx, path, load, concurrency, send));
        }
      }
    }
  } finally {
    await server.stop();
    // The ingested buffers become due in 10 s: later benchmarks must not drain them.
    await clearBuffers(direct);
    await direct.end();
  }

  const label = "wa.ingest_webhook called directly, same concurrency";
  const find = (path: Run["path"], size: number, concurrency: number) =>
    runs.find((run) => run.path === path && run.size === size && run.concurrency === concurrency)!;
  for (const size of sizes) {
    const name = `${size} msg/POST`;
    for (const concurrency of plan.concurrency) {
      const [fn, sql] = [find("function", size, concurrency), find("sql", size, concurrency)];
      res.rows.push({
        metric: `${name}, ${concurrency} in flight: deliveries/s`,
        value: fn.deliveriesPerSecond,
        unit: "/s",
        baseline: sql.deliveriesPerSecond,
        baselineLabel: label,
        target: "~1× at best (DB limit)",
      });
    }
    const [fn, sql] = [find("function", size, top), find("sql", size, top)];
    if (size > 1) {
      res.rows.push({
        metric: `${name}, ${top} in flight: messages/s`,
        value: fn.messagesPerSecond,
        unit: "/s",
        baseline: sql.messagesPerSecond,
        baselineLabel: label,
      });
    }
    for (const p of ["p50", "p95", "p99"] as const) {
      res.rows.push({
        metric: `${name}, ${top} in flight: latency ${p}`,
        value: fn.latency[p],
        unit: "ms",
        baseline: sql.latency[p],
        baselineLabel: label,
      });
    }
  }
  const sum = (path: Run["path"], f: (run: Run) => number) =>
    runs.filter((run) => run.path === path).reduce((total, run) => total + f(run), 0);
  const lost = (run: Run) => run.expectedNew - run.stored;
  res.rows.push(
    {
      metric: "messages missing (all runs)",
      value: sum("function", lost),
      unit: "",
      baseline: sum("sql", lost),
      baselineLabel: label,
      target: "0",
    },
    {
      metric: "duplicates stored (all runs)",
      value: sum("function", (run) => run.storedTwice),
      unit: "",
      baseline: sum("sql", (run) => run.storedTwice),
      baselineLabel: label,
      target: "0",
    },
  );
  for (const run of runs) {
    const name = `${run.path}, ${run.size} msg/POST, ${run.concurrency} in flight`;
    check(res, `${name}: non-200 answers`, run.failures, 0);
    check(res, `${name}: messages missing`, lost(run), 0);
    check(res, `${name}: duplicates stored`, run.storedTwice, 0);
    check(res, `${name}: reported new`, run.reportedNew, run.expectedNew);
    check(res, `${name}: reported duplicates`, run.reportedDuplicates, run.expectedDuplicates);
  }
  res.notes.push(
    `deliveries per run by messages per POST: ${JSON.stringify(plan.sizes)}, ${
      DUPLICATE_SHARE * 100
    }% of them ` +
      `identical re-sends; messages from ${CONTACTS} contacts of a fresh number per run; the function's pool ` +
      `holds 5 connections, the baseline's as many as deliveries in flight. Latency: POST sent to answer read.`,
  );
  res.samples = { runs };
  return res;
}
