// End to end: the real functions server (child process) in front of the test database.
import assert from "node:assert/strict";
import { localEnvDefaults } from "../../../local/env.ts";
import { testDbUrl, testSql } from "../../../local/testing/db.ts";
import { spawnServer } from "../../../local/testing/server.ts";
import {
  contact,
  inboundMessage,
  messagesChange,
  newWamid,
  oversizedIdentifier,
  signBody,
  statusUpdate,
  textWebhook,
  webhook,
} from "../../../local/testing/whatsapp-fixtures.ts";
import { MAX_BODY_BYTES } from "./handler.ts";

const defaults = await localEnvDefaults();
const APP_SECRET = defaults.WHATSAPP_APP_SECRET ?? "";
const VERIFY_TOKEN = defaults.WHATSAPP_VERIFY_TOKEN ?? "";

/** Runs `fn` with a server and a database connection, both closed afterwards. */
function e2e(name: string, fn: (ctx: Context) => Promise<void>) {
  Deno.test(name, async () => {
    const server = await spawnServer({ SUPABASE_DB_URL: testDbUrl() });
    const sql = testSql();
    const endpoint = `${server.url}whatsapp-webhook`;
    const post: Poster = async (body, headers = {}) => {
      const res = await fetch(endpoint, { method: "POST", body, headers });
      const text = await res.text();
      return { status: res.status, body: text.startsWith("{") ? JSON.parse(text) : text };
    };
    const get: Getter = async (query) => {
      const res = await fetch(`${endpoint}?${query}`);
      return { status: res.status, body: await res.text() };
    };
    try {
      await fn({ post, get, sql, endpoint });
    } finally {
      await sql.end();
      await server.stop();
    }
  });
}
type Reply = { status: number; body: Record<string, unknown> | string };
type Poster = (body: BodyInit, headers?: Record<string, string>) => Promise<Reply>;
type Getter = (query: string) => Promise<{ status: number; body: string }>;
interface Context {
  post: Poster;
  get: Getter;
  sql: ReturnType<typeof testSql>;
  endpoint: string;
}

async function signed(payload: unknown, secret = APP_SECRET): Promise<[string, Record<string, string>]> {
  const body = typeof payload === "string" ? payload : JSON.stringify(payload);
  return [body, { "content-type": "application/json", "x-hub-signature-256": await signBody(body, secret) }];
}

/** Row counts of every table a webhook can write. */
async function rowCounts(sql: ReturnType<typeof testSql>) {
  const [row] = await sql`select (select count(*) from wa.webhook_events)::int as events,
                                 (select count(*) from wa.inbound_receipts)::int as receipts,
                                 (select count(*) from wa.message_statuses)::int as statuses,
                                 (select count(*) from wa.phone_numbers)::int as numbers,
                                 (select count(*) from public.contacts)::int as contacts,
                                 (select count(*) from public.conversations)::int as conversations,
                                 (select count(*) from public.messages)::int as messages,
                                 (select count(*) from wa.buffers)::int as buffers,
                                 (select count(*) from wa.buffer_messages)::int as buffered`;
  return row;
}

e2e("the GET handshake answers the challenge for the right token only", async ({ get }) => {
  const ok = await get(`hub.mode=subscribe&hub.verify_token=${VERIFY_TOKEN}&hub.challenge=1158201444`);
  assert.deepEqual(ok, { status: 200, body: "1158201444" });
  const wrong = await get("hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1158201444");
  assert.equal(wrong.status, 403);
  assert.equal(JSON.parse(wrong.body).error.code, "invalid_verify_token");
  assert.equal((await get(`hub.verify_token=${VERIFY_TOKEN}&hub.challenge=1`)).status, 400);
});

e2e("unsigned, wrongly signed or tampered POSTs get 401 and leave no row anywhere", async ({ post, sql }) => {
  const before = await rowCounts(sql);
  const [body, headers] = await signed(textWebhook());
  const [, otherSecret] = await signed(body, "not-the-app-secret-at-all");
  const cases: [string, Record<string, string>, BodyInit][] = [
    ["missing_signature", { "content-type": "application/json" }, body],
    ["invalid_signature", otherSecret, body],
    ["invalid_signature", headers, body.replace("Is my order", "Is my 0rder")],
    ["malformed_signature", {
      "x-hub-signature-256": headers["x-hub-signature-256"]!.replace("sha256=", "sha1="),
    }, body],
    ["malformed_signature", { "x-hub-signature-256": "sha256=zz" }, body],
  ];
  for (const [code, caseHeaders, caseBody] of cases) {
    const reply = await post(caseBody, caseHeaders);
    assert.equal(reply.status, 401, code);
    assert.equal((reply.body as { error: { code: string } }).error.code, code);
  }
  assert.deepEqual(await rowCounts(sql), before);
});

e2e("a signed body that is not JSON is kept raw with the reason, and answered 200", async ({ post, sql }) => {
  const reply = await post(...await signed("{this is not json"));
  assert.equal(reply.status, 200);
  const eventId = (reply.body as { event_id: number }).event_id;
  const [event] =
    await sql`select raw_body, payload, signature_valid, error from wa.webhook_events where id = ${eventId}`;
  assert.equal(event?.raw_body, "{this is not json");
  assert.equal(event?.payload, null);
  assert.equal(event?.signature_valid, true);
  assert.match(event?.error, /^not JSON/);
});

e2e(
  "a message the schema refuses is left out with the reason, a body that is no Cloud API webhook is kept whole",
  async ({ post, sql }) => {
    const kept = newWamid();
    const payload = webhook(messagesChange({
      contacts: [contact()],
      messages: [{ ...inboundMessage("text"), text: undefined }, inboundMessage("text", { wamid: kept })],
    }));
    const reply = await post(...await signed(payload));
    assert.equal(reply.status, 200);
    assert.equal((reply.body as { new: number }).new, 1);
    assert.match(String((reply.body as { repaired: string }).repaired), /messages\.0\.text/);
    const [event] = await sql`select raw_body, payload, error from wa.webhook_events
                            where id = ${(reply.body as { event_id: number }).event_id}`;
    assert.equal(event?.raw_body, JSON.stringify(payload));
    assert.deepEqual(event?.payload.entry[0].changes[0].value.messages.map((m: { id: string }) => m.id), [
      kept,
    ]);
    assert.match(event?.error, /^left out: entry\.0\.changes\.0\.value\.messages\.0\.text/);
    const garbage = await post(...await signed({ hello: "world" }));
    assert.equal(garbage.status, 200);
    assert.match(String((garbage.body as { rejected: string }).rejected), /object/);
    const [rejected] = await sql`select raw_body, payload, error, result from wa.webhook_events
                               where id = ${(garbage.body as { event_id: number }).event_id}`;
    assert.deepEqual(rejected, {
      raw_body: '{"hello":"world"}',
      payload: { hello: "world" },
      error: rejected?.error,
      result: null,
    });
    assert.match(rejected?.error, /^not a Cloud API webhook: object/);
  },
);

e2e("a body over 3 MiB gets 413 and is not stored", async ({ post, sql }) => {
  const before = await rowCounts(sql);
  const padding = "x".repeat(MAX_BODY_BYTES);
  const reply = await post(...await signed(JSON.stringify({ object: "whatsapp_business_account", padding })));
  assert.equal(reply.status, 413);
  assert.deepEqual(await rowCounts(sql), before);
});

e2e("non-UTF-8 bytes are kept with the invalid bytes replaced", async ({ post, sql }) => {
  const bytes = new Uint8Array([0x7b, 0xff, 0x00, 0x7d]);
  const reply = await post(bytes, { "x-hub-signature-256": await signBody(bytes, APP_SECRET) });
  assert.equal(reply.status, 200);
  const [event] = await sql`select raw_body, error from wa.webhook_events
                            where id = ${(reply.body as { event_id: number }).event_id}`;
  assert.equal(event?.raw_body, "{\uFFFD\uFFFD}");
  assert.match(event?.error, /UTF-8/);
});

e2e(
  "a \\u0000 escape or a lone surrogate drops nothing: all is ingested with U+FFFD, the raw body kept",
  async ({ post, sql }) => {
    const [nul, lone, plain] = [newWamid(), newWamid(), newWamid()];
    const payload = webhook(messagesChange({
      contacts: [contact()],
      messages: [
        inboundMessage("text", { wamid: nul, content: { body: "before\u0000after" } }),
        inboundMessage("text", { wamid: lone, content: { body: "half an emoji \ud83d" } }),
        inboundMessage("text", { wamid: plain, content: { body: "untouched \u{1F600}" } }),
      ],
    }));
    const [body, headers] = await signed(payload);
    assert.match(body, /before\\u0000after.*emoji \\ud83d"/, "JSON.stringify escapes both");
    const reply = await post(body, headers);
    assert.equal(reply.status, 200);
    assert.equal((reply.body as { new: number }).new, 3);
    const texts =
      await sql`select wamid, content_text from public.messages where wamid in (${nul}, ${lone}, ${plain})`;
    assert.deepEqual(
      Object.fromEntries(texts.map((row) => [row.wamid, row.content_text])),
      { [nul]: "before\uFFFDafter", [lone]: "half an emoji \uFFFD", [plain]: "untouched \u{1F600}" },
    );
    const [event] = await sql`select raw_body, error, result is not null as ingested from wa.webhook_events
                              where id = ${(reply.body as { event_id: number }).event_id}`;
    assert.equal(event?.raw_body, body);
    assert.equal(event?.ingested, true);
    assert.equal(
      event?.error,
      "escapes Postgres cannot store (\\u0000, lone surrogates) replaced by U+FFFD: 2",
    );
  },
);

e2e(
  "an identifier too long for an index leaves out only its item: the rest is ingested, the raw body kept",
  async ({ post, sql }) => {
    const huge = oversizedIdentifier();
    const [kept, keptStatus] = [newWamid(), newWamid()];
    const payload = webhook(messagesChange({
      contacts: [contact()],
      messages: [
        inboundMessage("text", { wamid: huge }),
        inboundMessage("text", { from: huge }),
        inboundMessage("text", { wamid: kept }),
      ],
      statuses: [statusUpdate(huge, "read"), statusUpdate(keptStatus, "delivered")],
    }));
    const reply = await post(...await signed(payload));
    assert.equal(reply.status, 200);
    const counts = reply.body as { new: number; statuses_recorded: number; event_id: number };
    assert.deepEqual([counts.new, counts.statuses_recorded], [1, 1]);
    const [row] = await sql`select (select count(*) from public.messages where wamid = ${kept})::int as kept,
                                   (select count(*) from wa.message_statuses where wamid = ${keptStatus})::int
                                     as kept_status`;
    assert.deepEqual(row, { kept: 1, kept_status: 1 });
    const [event] = await sql`select raw_body, error from wa.webhook_events where id = ${counts.event_id}`;
    assert.equal(event?.raw_body, JSON.stringify(payload));
    for (const item of ["messages.0.id", "messages.1.from", "statuses.0.id"]) {
      assert.ok(event?.error.includes(`entry.0.changes.0.value.${item}`), `${item} in ${event?.error}`);
    }
  },
);

e2e("a 1,000-message payload is stored whole in one POST", async ({ post, sql }) => {
  const contacts = Array.from(
    { length: 100 },
    (_, i) => contact(`52155${String(i).padStart(8, "0")}`, `User ${i}`),
  );
  const messages = Array.from(
    { length: 1000 },
    (_, i) =>
      inboundMessage("text", { from: String(contacts[i % 100]?.wa_id), content: { body: `message ${i}` } }),
  );
  const reply = await post(...await signed(webhook(messagesChange({ contacts, messages }))));
  assert.equal(reply.status, 200);
  assert.equal((reply.body as { new: number }).new, 1000);
  const wamids = messages.map((m) => String(m.id));
  const [row] =
    await sql`select count(distinct m.conversation_id)::int as conversations, count(*)::int as messages,
                                 count(bm.seq)::int as buffered
                          from public.messages m left join wa.buffer_messages bm on bm.message_id = m.id
                          where m.wamid = any(${wamids})`;
  assert.deepEqual(row, { conversations: 100, messages: 1000, buffered: 1000 });
});

e2e(
  "50 concurrent identical deliveries: 1 message, delivery count 50, 1 buffer entry",
  async ({ post, sql }) => {
    const wamid = newWamid();
    const request = await signed(textWebhook({ wamid, body: "only once, please" }));
    const replies = await Promise.all(Array.from({ length: 50 }, () => post(...request)));
    assert.ok(replies.every((reply) => reply.status === 200));
    const totals = replies.map((reply) => reply.body as { new: number; duplicate: number });
    assert.equal(totals.reduce((sum, counts) => sum + counts.new, 0), 1);
    assert.equal(totals.reduce((sum, counts) => sum + counts.duplicate, 0), 49);
    const [row] =
      await sql`select (select count(*) from public.messages where wamid = ${wamid})::int as messages,
                                 (select delivery_count from wa.inbound_receipts where wamid = ${wamid}) as deliveries,
                                 (select count(*) from wa.buffer_messages bm join public.messages m
                                    on m.id = bm.message_id where m.wamid = ${wamid})::int as buffered`;
    assert.deepEqual(row, { messages: 1, deliveries: 50, buffered: 1 });
  },
);

e2e(
  "statuses arriving out of order never regress: delivered after read leaves read",
  async ({ post, sql }) => {
    const inbound = newWamid();
    await post(...await signed(textWebhook({ wamid: inbound })));
    const outbound = newWamid();
    await sql`insert into public.messages (conversation_id, wamid, direction, type, body, sent_at, status)
            select conversation_id, ${outbound}, 'outbound', 'text', '{}', now(), 'sent'
            from public.messages where wamid = ${inbound}`;
    const read = await post(
      ...await signed(webhook(messagesChange({ statuses: [statusUpdate(outbound, "read")] }))),
    );
    assert.equal((read.body as { statuses_applied: number }).statuses_applied, 1);
    const late = await post(
      ...await signed(webhook(messagesChange({ statuses: [statusUpdate(outbound, "delivered")] }))),
    );
    assert.equal((late.body as { statuses_applied: number }).statuses_applied, 0);
    const [row] = await sql`select status from public.messages where wamid = ${outbound}`;
    assert.equal(row?.status, "read");
  },
);

e2e("other methods get 405 with Allow", async ({ endpoint }) => {
  const res = await fetch(endpoint, { method: "PUT", body: "{}" });
  assert.equal(res.status, 405);
  assert.equal(res.headers.get("allow"), "GET, POST");
  assert.equal((await res.json()).error.code, "method_not_allowed");
});
