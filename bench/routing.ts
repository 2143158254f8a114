// Issue 17 — what routing costs the webhook ingest. Signed deliveries, each from a new customer (so each opens a
// conversation and routing runs), through the real functions server as bench/ingest.ts's main rows: on a number
// with a round_robin rule with capacity for a team of 5 executives (rule on) against the same workload on a
// number without a rule (rule off). The two alternate in rounds of the same run, the order flipped every round,
// so both see the same machine. Every conversation on the ruled number must have an owner, none above capacity.
import { localEnvDefaults } from "../local/env.ts";
import { createTeam, createUser } from "../local/testing/auth.ts";
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
  runBounded,
} from "./lib.ts";

const EXECUTIVES = 5;
const CONCURRENCY = 16;
/** Rounds per side, deliveries per round (each a new customer). */
const FULL = { rounds: 10, perRound: 100 };
const QUICK = { rounds: 4, perRound: 50 };
/** Rule on may cost at most this share of rule off's throughput. */
const MAX_COST = 0.1;

type Side = "on" | "off";

interface Delivery {
  body: string;
  signature: string;
}

/** `count` deliveries of one text message, each from a customer never seen on `phoneNumberId`. */
async function newCustomers(
  phoneNumberId: string,
  first: number,
  count: number,
  secret: string,
): Promise<Delivery[]> {
  return await Promise.all(Array.from({ length: count }, async (_, i) => {
    const from = `7${phoneNumberId.slice(-6)}${String(first + i).padStart(6, "0")}`;
    const body = JSON.stringify(webhook(messagesChange({
      phoneNumberId,
      contacts: [contact(from, `Cliente ${first + i}`)],
      messages: [inboundMessage("text", { from, content: { body: "hola" } })],
    })));
    return { body, signature: await signBody(body, secret) };
  }));
}

export async function routing(ctx: BenchContext): Promise<BenchResult> {
  const plan = ctx.quick ? QUICK : FULL;
  const total = plan.rounds * plan.perRound;
  // Room for every conversation with a margin, so capacity is checked on each pick but never fills up.
  const capacity = Math.ceil(total / EXECUTIVES) + 10;
  const res = result("routing", {
    rounds_per_side: plan.rounds,
    deliveries_per_round: plan.perRound,
    concurrency: CONCURRENCY,
    executives: EXECUTIVES,
    strategy: "round_robin",
    capacity,
    function_pool: 5,
  });
  const secret = (await localEnvDefaults()).WHATSAPP_APP_SECRET ?? "";
  const sql = connect(ctx, 2);
  const server = await spawnServer({ SUPABASE_DB_URL: ctx.dbUrl });
  const numbers: Record<Side, string> = { on: freshPhoneNumberId(3), off: freshPhoneNumberId(4) };
  const elapsedMs: Record<Side, number> = { on: 0, off: 0 };
  const latencies: Record<Side, number[]> = { on: [], off: [] };
  const rounds: { side: Side; deliveriesPerSecond: number }[] = [];
  let failures = 0;
  try {
    const teamId = await createTeam(sql);
    for (let i = 0; i < EXECUTIVES; i++) await createUser(sql, { teamId });
    await sql`insert into wa.phone_numbers (phone_number_id) values (${numbers.on}), (${numbers.off})`;
    await sql`insert into wa.routing_rules (phone_number_id, team_id, strategy, capacity)
              values (${numbers.on}, ${teamId}, 'round_robin', ${capacity})`;
    const endpoint = `${server.url}whatsapp-webhook`;
    const send = async (delivery: Delivery) => {
      const response = await fetch(endpoint, {
        method: "POST",
        body: delivery.body,
        headers: { "content-type": "application/json", "x-hub-signature-256": delivery.signature },
      });
      const body = await response.json();
      if (response.status !== 200 || body.new !== 1) failures++;
    };
    const run = async (deliveries: Delivery[]) =>
      await runBounded(deliveries.length, CONCURRENCY, (i) => send(deliveries[i]!));
    // Warm the function (JIT, pool, imports) and both numbers' paths; these customers are not counted.
    for (const side of ["on", "off"] as const) {
      await run(await newCustomers(numbers[side], total, 2 * CONCURRENCY, secret));
    }
    for (let round = 0; round < plan.rounds; round++) {
      const order: Side[] = round % 2 === 0 ? ["on", "off"] : ["off", "on"];
      for (const side of order) {
        const deliveries = await newCustomers(numbers[side], round * plan.perRound, plan.perRound, secret);
        const measured = await run(deliveries);
        elapsedMs[side] += measured.elapsedMs;
        latencies[side].push(...measured.latencies);
        rounds.push({ side, deliveriesPerSecond: deliveries.length / (measured.elapsedMs / 1000) });
      }
    }
    const [owned] = await sql<{ conversations: number; unowned: number; overCapacity: number }[]>`
      select count(*)::int as conversations,
             count(*) filter (where assigned_executive_id is null)::int as unowned,
             (select count(*)::int from (
                select assigned_executive_id from public.conversations
                where phone_number_id = ${numbers.on} and assigned_executive_id is not null and status = 'open'
                group by 1 having count(*) > ${capacity}) full_executives) as "overCapacity"
      from public.conversations where phone_number_id = ${numbers.on}`;
    const [unruled] = await sql<{ conversations: number; owned: number }[]>`
      select count(*)::int as conversations, count(assigned_executive_id)::int as owned
      from public.conversations where phone_number_id = ${numbers.off}`;
    const warm = 2 * CONCURRENCY;
    check(res, "non-200 answers or messages not new", failures, 0);
    check(res, "rule on: conversations", owned!.conversations, total + warm);
    check(res, "rule on: conversations without an owner", owned!.unowned, 0);
    check(res, "rule on: executives over capacity", owned!.overCapacity, 0);
    check(res, "rule off: conversations", unruled!.conversations, total + warm);
    check(res, "rule off: conversations with an owner", unruled!.owned, 0);
  } finally {
    await server.stop();
    // The ingested buffers become due in 10 s: later benchmarks must not drain them.
    await clearBuffers(sql);
    await sql.end();
  }

  const perSecond = (side: Side) => total / (elapsedMs[side] / 1000);
  const [on, off] = [perSecond("on"), perSecond("off")];
  const label = "same POSTs on a number without a rule";
  res.rows.push({
    metric: `new conversations, ${CONCURRENCY} in flight: deliveries/s`,
    value: on,
    unit: "/s",
    baseline: off,
    baselineLabel: label,
    target: `≥ ${1 - MAX_COST}×`,
  });
  const [qOn, qOff] = [quantiles(latencies.on), quantiles(latencies.off)];
  for (const p of ["p50", "p99"] as const) {
    res.rows.push({
      metric: `new conversations, ${CONCURRENCY} in flight: latency ${p}`,
      value: qOn[p],
      unit: "ms",
      baseline: qOff[p],
      baselineLabel: label,
    });
  }
  // The cost target is a row's target, like every other speed target here: checks are for invariants.
  res.notes.push(
    `${plan.rounds} rounds of ${plan.perRound} deliveries per side, alternating (order flipped each round), ` +
      `each POST one message from a new customer; rule on: round_robin over ${EXECUTIVES} executives, ` +
      `capacity ${capacity}. Rule on ${on.toFixed(0)}/s, rule off ${off.toFixed(0)}/s (${
        ((on / off) * 100).toFixed(1)
      }%).`,
  );
  res.samples = { rounds };
  return res;
}
