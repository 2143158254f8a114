// Calls webhooks (Calling API shapes, local/testing/call-fixtures.ts) through the webhook's validation and store
// on the real database: dedupe by (call id, event), a state that never regresses whatever order events arrive
// in, and what wabase does not know kept raw.
import assert from "node:assert/strict";
import { testSql } from "../../../local/testing/db.ts";
import {
  callConnect,
  callsChange,
  callStatus,
  callsWebhook,
  callTerminate,
  newCallId,
} from "../../../local/testing/call-fixtures.ts";
import {
  contact,
  inboundMessage,
  messagesChange,
  webhook,
} from "../../../local/testing/whatsapp-fixtures.ts";
import { validateLeavingOut } from "./salvage.ts";
import { ingest, type IngestCounts } from "./store.ts";

type Sql = ReturnType<typeof testSql>;

const T0 = 1_780_000_000;

function customer(): string {
  return `1650${String(Math.floor(Math.random() * 1e7)).padStart(7, "0")}`;
}

/** Validates like the handler, then ingests; the counts of the POST. */
async function post(sql: Sql, payload: unknown): Promise<IngestCounts> {
  const validation = validateLeavingOut(structuredClone(payload));
  assert.ok(validation.ok);
  const outcome = await ingest(sql, JSON.stringify(validation.payload));
  assert.equal(outcome.kind, "ingested");
  return outcome.kind === "ingested" ? outcome.counts : assert.fail("not ingested");
}

async function callRow(sql: Sql, callId: string) {
  const [row] = await sql`
    select k.direction, k.state, k.outcome, extract(epoch from k.started_at)::bigint as started,
           extract(epoch from k.answered_at)::bigint as answered, extract(epoch from k.ended_at)::bigint as ended,
           k.duration_seconds, ct.wa_id, ct.profile_name, extract(epoch from c.last_inbound_at)::bigint as window_from
    from public.calls k
    join public.contacts ct on ct.id = k.contact_id
    join public.conversations c on c.id = k.conversation_id
    where k.call_id = ${callId}`;
  return row;
}

function withDb(name: string, fn: (sql: Sql) => Promise<void>) {
  Deno.test(name, async () => {
    const sql = testSql();
    try {
      await fn(sql);
    } finally {
      await sql.end();
    }
  });
}

withDb(
  "a customer's call rings, then ends with its talk time; it creates the contact and opens the window",
  async (sql) => {
    const id = newCallId(), who = customer();
    const counts = await post(
      sql,
      callsWebhook(
        callsChange({ calls: [callConnect(id, { customer: who, at: T0 })] }, { customer: who, name: "Luz" }),
      ),
    );
    assert.equal(counts.calls_recorded, 1);
    assert.equal(counts.calls_applied, 1);
    assert.equal(counts.ignored, 0, "a calls change is not an ignored change");
    assert.deepEqual(await callRow(sql, id), {
      direction: "inbound",
      state: "ringing",
      outcome: null,
      started: String(T0),
      answered: null,
      ended: null,
      duration_seconds: null,
      wa_id: who,
      profile_name: "Luz",
      window_from: String(T0),
    });
    await post(
      sql,
      callsWebhook(callsChange({
        calls: [callTerminate(id, { customer: who, at: T0 + 70, startedAt: T0, durationSeconds: 60 })],
      }, { customer: who })),
    );
    const row = await callRow(sql, id);
    assert.equal(row?.state, "ended");
    assert.equal(row?.outcome, "completed");
    assert.equal(row?.answered, String(T0 + 10), "answered when the talk time began: end minus duration");
    assert.equal(row?.duration_seconds, 60);
  },
);

withDb("a redelivered event, and an event repeated in one POST, is applied once and counted", async (sql) => {
  const id = newCallId(), who = customer();
  const connect = callConnect(id, { customer: who, at: T0 });
  const first = await post(sql, callsWebhook(callsChange({ calls: [connect, connect] }, { customer: who })));
  assert.equal(first.calls_recorded, 1);
  assert.equal(first.calls_duplicate, 1);
  const again = await post(sql, callsWebhook(callsChange({ calls: [connect] }, { customer: who })));
  assert.equal(again.calls_recorded, 0);
  assert.equal(again.calls_duplicate, 1);
  assert.equal(again.calls_applied, 0, "a duplicate changes no call (and broadcasts nothing)");
  const [event] = await sql`select delivery_count, applied from wa.call_events where call_id = ${id}`;
  assert.deepEqual(event, { delivery_count: 3, applied: true });
  const [count] = await sql`select count(*)::int as n from public.calls where call_id = ${id}`;
  assert.equal(count?.n, 1);
});

withDb("concurrent deliveries of one event on two connections record it exactly once", async (sql) => {
  const id = newCallId(), who = customer();
  const body = callsWebhook(
    callsChange({ calls: [callConnect(id, { customer: who, at: T0 })] }, { customer: who }),
  );
  const other = testSql();
  try {
    const results = await Promise.all([post(sql, body), post(other, body)]);
    assert.deepEqual(results.map((r) => r.calls_recorded).sort(), [0, 1]);
    const [event] = await sql`select delivery_count from wa.call_events where call_id = ${id}`;
    assert.equal(event?.delivery_count, 2);
  } finally {
    await other.end();
  }
});

withDb(
  "out of order: the end arrives before the accept and the ringing, and the call stays ended",
  async (sql) => {
    const id = newCallId(), who = customer();
    const call = { customer: who, direction: "outbound" as const };
    const change = (items: Parameters<typeof callsChange>[0]) =>
      callsWebhook(callsChange(items, { customer: who }));
    await post(
      sql,
      change({ calls: [callTerminate(id, { ...call, at: T0 + 50, startedAt: T0, durationSeconds: 40 })] }),
    );
    assert.equal((await callRow(sql, id))?.state, "ended");
    await post(sql, change({ statuses: [callStatus(id, "ACCEPTED", { ...call, at: T0 + 8 })] }));
    await post(sql, change({ statuses: [callStatus(id, "RINGING", { ...call, at: T0 + 2 })] }));
    await post(sql, change({ calls: [callConnect(id, { ...call, at: T0 + 1 })] }));
    assert.deepEqual(await callRow(sql, id), {
      direction: "outbound",
      state: "ended",
      outcome: "completed",
      started: String(T0),
      answered: String(T0 + 8),
      ended: String(T0 + 50),
      duration_seconds: 40,
      wa_id: who,
      profile_name: "Caller",
      window_from: null,
    });
  },
);

withDb(
  "a business call the customer rejects ends rejected; a late ringing does not bring it back",
  async (sql) => {
    const id = newCallId(), who = customer();
    const call = { customer: who, direction: "outbound" as const };
    const change = (items: Parameters<typeof callsChange>[0]) =>
      callsWebhook(callsChange(items, { customer: who }));
    await post(sql, change({ calls: [callConnect(id, { ...call, at: T0 })] }));
    await post(sql, change({ statuses: [callStatus(id, "REJECTED", { ...call, at: T0 + 5 })] }));
    await post(sql, change({ statuses: [callStatus(id, "RINGING", { ...call, at: T0 + 1 })] }));
    const row = await callRow(sql, id);
    assert.equal(row?.state, "ended");
    assert.equal(row?.outcome, "rejected");
    assert.equal(row?.ended, String(T0 + 5));
  },
);

withDb(
  "unknown fields are kept and do not stop an event; an unknown event is kept raw, not applied",
  async (sql) => {
    const id = newCallId(), who = customer();
    const connect = { ...callConnect(id, { customer: who, at: T0 }), future_field: { nested: [1, 2] } };
    const transfer = {
      id,
      event: "transfer",
      timestamp: String(T0 + 3),
      to: "15550001111",
      reason: "new in 2027",
    };
    const counts = await post(
      sql,
      callsWebhook(callsChange({ calls: [connect, transfer] }, { customer: who })),
    );
    assert.equal(counts.calls_recorded, 2);
    assert.equal(counts.calls_unknown, 1);
    const events =
      await sql`select event, applied, payload from wa.call_events where call_id = ${id} order by event`;
    assert.deepEqual(events.map((e) => [e.event, e.applied]), [["connect", true], ["transfer", false]]);
    assert.deepEqual(events[0]?.payload.future_field, { nested: [1, 2] });
    assert.equal(events[1]?.payload.reason, "new in 2027");
    assert.equal((await callRow(sql, id))?.state, "ringing");
  },
);

withDb("a call item the schema refuses is left out alone; the raw body keeps it", async (sql) => {
  const good = newCallId(), who = customer();
  const broken = { ...callConnect(newCallId(), { customer: who, at: T0 }), timestamp: "yesterday" };
  const body = callsWebhook(callsChange({ calls: [broken, callConnect(good, { customer: who, at: T0 })] }, {
    customer: who,
  }));
  const validation = validateLeavingOut(structuredClone(body));
  assert.ok(validation.ok && validation.leftOut?.includes("calls.0.timestamp"));
  const outcome = await ingest(sql, JSON.stringify(validation.payload), {
    rawBody: JSON.stringify(body),
    reason: `left out: ${validation.leftOut}`,
  });
  assert.equal(outcome.kind, "ingested");
  assert.equal((await callRow(sql, good))?.state, "ringing");
});

withDb("a call-permission reply arrives as an interactive message and is stored as one", async (sql) => {
  const who = customer();
  // Meta's shape: interactive.type call_permission_reply, quoting the business's permission request.
  const reply = inboundMessage("interactive", {
    from: who,
    timestamp: T0,
    content: {
      type: "call_permission_reply",
      call_permission_reply: {
        response: "accept",
        expiration_timestamp: T0 + 7 * 86400,
        response_source: "user_action",
      },
    },
  });
  const counts = await post(
    sql,
    webhook(messagesChange({ contacts: [contact(who, "Luz")], messages: [reply] })),
  );
  assert.equal(counts.new, 1);
  const [row] =
    await sql`select type, body -> 'interactive' -> 'call_permission_reply' ->> 'response' as response
                          from public.messages where wamid = ${String(reply.id)}`;
  assert.deepEqual(row, { type: "interactive", response: "accept" });
});
