// SPEC 8.1 — webhook ingest. Signed deliveries through the real functions server (child process, as
// `npm start` runs it) with 10% duplicates (identical bodies re-sent, some while the original is still in
// flight), against the same payloads through `select wa.ingest_webhook(...)` on a postgres.js pool with the
// same concurrency: the database's own limit. Every distinct wamid must be stored once and every re-sent
// body counted as a duplicate.
import postgres from "postgres";
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
  percentile,
  result,
  runBounded,
  shuffle,
} from "./lib.ts";

const REQUESTS = 2_000;
const DUPLICATE_SHARE = 0.1;
const CONCURRENCY = 16;
const CONTACTS = 200;
const WARMUP = 50;

interface Delivery {
  body: string;
  signature: string;
}

interface Workload {
  phoneNumberId: string;
  deliveries: Delivery[];
  wamids: string[];
  duplicatesSent: number;
}

function freshPhoneNumberId(): string {
  return String(200000000000000 + Math.floor(Math.random() * 1e13));
}

/**
 * `unique` single-message deliveries from `contacts` customers of a fresh business number, plus re-sends of
 * random earlier bodies placed shortly after their original (within the in-flight window half the time).
 */
async function workload(total: number, duplicateShare: number, secret: string): Promise<Workload> {
  const phoneNumberId = freshPhoneNumberId();
  const duplicates = Math.round(total * duplicateShare);
  const unique = total - duplicates;
  const wamids: string[] = [];
  const bodies: string[] = [];
  for (let i = 0; i < unique; i++) {
    const from = `8${phoneNumberId.slice(-6)}${String(i % CONTACTS).padStart(5, "0")}`;
    const message = inboundMessage("text", { from, content: { body: `bench ${i}` } });
    wamids.push(String(message.id));
    bodies.push(JSON.stringify(webhook(messagesChange({
      phoneNumberId,
      contacts: [contact(from, `Bench ${i % CONTACTS}`)],
      messages: [message],
    }))));
  }
  const order = shuffle(bodies.map((_, i) => i));
  for (let d = 0; d < duplicates; d++) {
    const original = Math.floor(Math.random() * unique);
    const at = order.indexOf(original);
    const gap = 1 + Math.floor(Math.random() * CONCURRENCY * 2);
    order.splice(Math.min(order.length, at + gap), 0, original);
  }
  const signatures = await Promise.all(bodies.map((body) => signBody(body, secret)));
  const deliveries = order.map((i) => ({ body: bodies[i]!, signature: signatures[i]! }));
  return { phoneNumberId, deliveries, wamids, duplicatesSent: duplicates };
}

interface IngestCounts {
  new: number;
  duplicate: number;
  errors?: number;
}

interface RunFigures {
  perSecond: number;
  p50: number;
  p99: number;
  reportedNew: number;
  reportedDuplicates: number;
  failures: number;
  stored: number;
}

async function storedCount(sql: postgres.Sql, wamids: string[]): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    select count(*)::int as n from public.messages where wamid = any(${wamids}::text[])`;
  return row?.n ?? 0;
}

async function measure(
  sql: postgres.Sql,
  load: Workload,
  send: (delivery: Delivery) => Promise<IngestCounts | null>,
): Promise<RunFigures> {
  let reportedNew = 0;
  let reportedDuplicates = 0;
  let failures = 0;
  const { latencies, elapsedMs } = await runBounded(load.deliveries.length, CONCURRENCY, async (i) => {
    const counts = await send(load.deliveries[i]!);
    if (counts === null) {
      failures++;
      return;
    }
    reportedNew += counts.new;
    reportedDuplicates += counts.duplicate;
  });
  return {
    perSecond: load.deliveries.length / (elapsedMs / 1000),
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    reportedNew,
    reportedDuplicates,
    failures,
    stored: await storedCount(sql, load.wamids),
  };
}

export async function ingest(ctx: BenchContext): Promise<BenchResult> {
  const res = result("ingest");
  const secret = (await localEnvDefaults()).WHATSAPP_APP_SECRET ?? "";
  const sql = postgres(ctx.dbUrl, { max: 4, onnotice: () => {} });
  // The baseline's pool: as many connections as deliveries in flight, unprepared like the function's.
  const direct = postgres(ctx.dbUrl, { max: CONCURRENCY, prepare: false, onnotice: () => {} });
  const server = await spawnServer({ SUPABASE_DB_URL: ctx.dbUrl });
  try {
    const endpoint = `${server.url}whatsapp-webhook`;
    const viaFunction = async (delivery: Delivery): Promise<IngestCounts | null> => {
      const response = await fetch(endpoint, {
        method: "POST",
        body: delivery.body,
        headers: { "content-type": "application/json", "x-hub-signature-256": delivery.signature },
      });
      const body = await response.json();
      return response.status === 200 && typeof body.new === "number" ? body : null;
    };
    const viaSql = async (delivery: Delivery): Promise<IngestCounts | null> => {
      const [row] = await direct<{ counts: IngestCounts }[]>`
        select wa.ingest_webhook(${delivery.body}::text::jsonb) as counts`;
      return row?.counts ?? null;
    };

    // Warm both paths (JIT, pools, the function's imports) on their own throwaway numbers.
    for (const send of [viaFunction, viaSql]) {
      const warm = await workload(WARMUP, 0, secret);
      await runBounded(warm.deliveries.length, CONCURRENCY, (i) => send(warm.deliveries[i]!).then(() => {}));
    }

    const baselineLoad = await workload(REQUESTS, DUPLICATE_SHARE, secret);
    const functionLoad = await workload(REQUESTS, DUPLICATE_SHARE, secret);
    const base = await measure(sql, baselineLoad, viaSql);
    const fn = await measure(sql, functionLoad, viaFunction);

    const label = "wa.ingest_webhook on a pool";
    res.rows.push(
      {
        metric: "deliveries/s",
        value: fn.perSecond,
        unit: "/s",
        baseline: base.perSecond,
        baselineLabel: label,
      },
      { metric: "latency p50", value: fn.p50, unit: "ms", baseline: base.p50, baselineLabel: label },
      { metric: "latency p99", value: fn.p99, unit: "ms", baseline: base.p99, baselineLabel: label },
      {
        metric: "messages lost",
        value: functionLoad.wamids.length - fn.stored,
        unit: "",
        baseline: baselineLoad.wamids.length - base.stored,
        baselineLabel: label,
      },
      {
        metric: "duplicates reported / sent",
        value: fn.reportedDuplicates,
        unit: `/${functionLoad.duplicatesSent}`,
        baseline: base.reportedDuplicates,
        baselineLabel: label,
      },
    );
    for (
      const [who, load, figures] of [["function", functionLoad, fn], ["sql", baselineLoad, base]] as const
    ) {
      check(res, `${who}: non-200 answers`, figures.failures, 0);
      check(res, `${who}: distinct wamids stored`, figures.stored, load.wamids.length);
      check(res, `${who}: reported new`, figures.reportedNew, load.wamids.length);
      check(res, `${who}: reported duplicates`, figures.reportedDuplicates, load.duplicatesSent);
    }
    res.notes.push(
      `${REQUESTS} signed deliveries (${functionLoad.wamids.length} distinct wamids from ${CONTACTS} contacts + ` +
        `${functionLoad.duplicatesSent} identical re-sends), ${CONCURRENCY} in flight; the function's own pool ` +
        `holds 5 connections, the baseline's ${CONCURRENCY}.`,
    );
    res.details = { function: fn, sql: base, requests: REQUESTS, concurrency: CONCURRENCY };
  } finally {
    await server.stop();
    // The ingested buffers are 10 s from due: later benchmarks must not drain them.
    await clearBuffers(sql);
    await Promise.all([sql.end(), direct.end()]);
  }
  return res;
}
