// Issue 15 §4-5 on the real database: mixed deliveries never deadlock, and a status racing the send it
// describes ends applied. Each interleaving is forced (connections holding transactions and row locks, seen
// waiting through pg_blocking_pids), never timed. The lock order they rely on is docs/locking.md.
import assert from "node:assert/strict";
import { createUser } from "../../../local/testing/auth.ts";
import { testSql } from "../../../local/testing/db.ts";
import {
  blocked,
  type Held,
  hold,
  isDeadlock,
  type Session,
  session,
  settledOrBlocked,
} from "../../../local/testing/locks.ts";
import {
  contact,
  inboundMessage,
  messagesChange,
  newWamid,
  statusUpdate,
  webhook,
} from "../../../local/testing/whatsapp-fixtures.ts";

type Sql = ReturnType<typeof testSql>;
type Json = Record<string, unknown>;

function freshNumber(): string {
  return String(100000000000000 + Math.floor(Math.random() * 1e13));
}

function freshWaId(): string {
  return `52${Math.floor(Math.random() * 1e11)}`;
}

/** Runs wa.ingest_webhook on `sql` (a pool or one connection of its own); the query starts at once. */
function ingest(sql: Sql, payload: Json) {
  return sql<{ counts: Json }[]>`select wa.ingest_webhook(${JSON.stringify(payload)}::text::jsonb) as counts`
    .execute();
}

/** A customer's text on `phoneNumberId`, which creates the contact and the conversation (and its buffer). */
async function newConversation(sql: Sql, phoneNumberId = freshNumber(), waId = freshWaId(), name = "Ana") {
  await ingest(
    sql,
    webhook(messagesChange({
      phoneNumberId,
      contacts: [contact(waId, name)],
      messages: [inboundMessage("text", { from: waId })],
    })),
  );
  const [row] = await sql<{ id: string }[]>`
    select c.id from public.conversations c join public.contacts k on k.id = c.contact_id
    where c.phone_number_id = ${phoneNumberId} and k.wa_id = ${waId}`;
  return { phoneNumberId, waId, conversationId: row!.id };
}

/** Outbound messages with these wamids (null: not sent yet), stored one after the other in this order. */
async function outbound(
  sql: Sql,
  conversationId: string,
  rows: { wamid: string | null; status: string; key?: string; sentBy?: string }[],
): Promise<string[]> {
  const ids: string[] = [];
  for (const row of rows) {
    const [inserted] = await sql<{ id: string }[]>`
      insert into public.messages (conversation_id, wamid, direction, type, body, sent_at, status, idempotency_key,
                                   sent_by)
      values (${conversationId}, ${row.wamid}, 'outbound', 'text', '{"text":{"body":"hola"}}', now(), ${row.status},
              ${row.key ?? null}, ${row.sentBy ?? null})
      returning id`;
    ids.push(inserted!.id);
  }
  return ids;
}

function statusesPost(phoneNumberId: string, statuses: Json[]): Json {
  return webhook(messagesChange({ phoneNumberId, statuses }));
}

async function statusOf(sql: Sql, id: string) {
  const [row] = await sql<{ status: string; error_code: string | null }[]>`
    select status, error -> 0 ->> 'code' as error_code from public.messages where id = ${id}`;
  return row;
}

interface Ctx {
  sql: Sql;
  /** A transaction left open on a connection of its own. */
  hold(): Promise<Held>;
  /** A connection of its own. */
  session(): Promise<Session>;
}

/** A test with a pool; the connections it holds are rolled back and released afterwards, whatever happened. */
function lockTest(name: string, fn: (ctx: Ctx) => Promise<void>) {
  Deno.test(name, async () => {
    const sql = testSql(10);
    const releases: (() => Promise<void>)[] = [];
    try {
      await fn({
        sql,
        async hold() {
          const held = await hold(sql);
          releases.push(() => held.release());
          return held;
        },
        async session() {
          const own = await session(sql);
          releases.push(() => Promise.resolve(own.sql.release()));
          return own;
        },
      });
    } finally {
      for (const release of releases.reverse()) await release();
      await sql.end();
    }
  });
}

/** Both calls settled without a deadlock; the reasons of any other failure are rethrown. */
async function noDeadlock(calls: Promise<unknown>[]): Promise<void> {
  const outcomes = await Promise.allSettled(calls);
  const deadlocks = outcomes.filter((o) => o.status === "rejected" && isDeadlock(o.reason)).length;
  assert.equal(deadlocks, 0, "deadlock detected (40P01)");
  for (const outcome of outcomes) if (outcome.status === "rejected") throw outcome.reason;
}

// ---------------------------------------------------------------------------------------------
// §4: no deadlocks between mixed deliveries
// ---------------------------------------------------------------------------------------------

lockTest(
  "two status POSTs over the same two messages lock them in wamid order whatever their plans: no deadlock",
  async (ctx) => {
    const { sql } = ctx;
    const { phoneNumberId, conversationId } = await newConversation(sql);
    const [low, high] = [newWamid(), newWamid()].sort() as [string, string];
    // The higher wamid stored first: a sequential scan meets it first, an index scan on wamid last.
    await outbound(sql, conversationId, [{ wamid: high, status: "sent" }, { wamid: low, status: "sent" }]);
    const [first] = await sql<{ wamid: string }[]>`
      select wamid from public.messages where wamid in (${low}, ${high}) order by ctid limit 1`;
    assert.equal(first?.wamid, high, "set-up: the higher wamid is stored first");

    const lowHolder = await ctx.hold();
    const highHolder = await ctx.hold();
    await lowHolder.sql`select from public.messages where wamid = ${low} for update`;
    await highHolder.sql`select from public.messages where wamid = ${high} for update`;
    // Planner settings stand in for what picks a plan in production (statistics, a cached generic plan).
    const bySeqScan = await ctx.session();
    const byIndex = await ctx.session();
    await bySeqScan.sql`set enable_indexscan = off`;
    await bySeqScan.sql`set enable_bitmapscan = off`;
    await byIndex.sql`set enable_seqscan = off`;
    await byIndex.sql`set enable_hashjoin = off`;
    await byIndex.sql`set enable_mergejoin = off`;

    const post = (status: string) =>
      statusesPost(phoneNumberId, [statusUpdate(low, status), statusUpdate(high, status)]);
    const delivered = ingest(bySeqScan.sql, post("delivered"));
    await blocked(sql, bySeqScan.pid, { call: delivered });
    const read = ingest(byIndex.sql, post("read"));
    await blocked(sql, byIndex.pid, { call: read });
    await highHolder.commit();
    await blocked(sql, bySeqScan.pid, { notBy: [highHolder.pid], call: delivered });
    await lowHolder.commit();
    await noDeadlock([delivered, read]);

    const rows = await sql<
      { status: string }[]
    >`select status from public.messages where wamid in (${low}, ${high})`;
    assert.deepEqual(rows.map((row) => row.status), ["read", "read"]);
  },
);

lockTest(
  "attaching BSUIDs to two contacts while each POST opens a conversation with the other: no deadlock",
  async (ctx) => {
    const { sql } = ctx;
    const [waOne, waTwo] = [freshWaId(), freshWaId()];
    const setupNumber = freshNumber();
    await newConversation(sql, setupNumber, waOne, "Uno");
    await newConversation(sql, setupNumber, waTwo, "Dos");
    const [numberOne, numberTwo] = [freshNumber(), freshNumber()];
    await sql`insert into wa.phone_numbers (phone_number_id) values (${numberOne}), (${numberTwo})`;

    // Each POST brings one contact's new BSUID and a first message from both customers on its number.
    const post = (number: string, attach: [string, string, string], plain: [string, string]) =>
      webhook(messagesChange({
        phoneNumberId: number,
        contacts: [contact(...attach), contact(...plain)],
        messages: [inboundMessage("text", { from: attach[0] }), inboundMessage("text", { from: plain[0] })],
      }));
    // The number's row held: the second POST stops at its conversations' foreign-key checks, after its contacts.
    const numberHolder = await ctx.hold();
    await numberHolder.sql`select from wa.phone_numbers where phone_number_id = ${numberTwo} for update`;
    const first = await ctx.session();
    const second = await ctx.session();

    const [bsuidOne, bsuidTwo] = [`MX.${freshWaId()}`, `MX.${freshWaId()}`];
    const two = ingest(second.sql, post(numberTwo, [waTwo, "Dos", bsuidTwo], [waOne, "Uno"]));
    await blocked(sql, second.pid, { call: two });
    const one = ingest(first.sql, post(numberOne, [waOne, "Uno", bsuidOne], [waTwo, "Dos"]));
    await blocked(sql, first.pid, { call: one });
    await numberHolder.commit();
    await noDeadlock([one, two]);

    const contacts = await sql<{ user_id: string; conversations: number }[]>`
      select k.user_id, (select count(*)::int from public.conversations c where c.contact_id = k.id) as conversations
      from public.contacts k where k.wa_id in (${waOne}, ${waTwo}) order by k.wa_id = ${waTwo}`;
    assert.deepEqual([...contacts], [
      { user_id: bsuidOne, conversations: 3 },
      { user_id: bsuidTwo, conversations: 3 },
    ]);
  },
);

lockTest(
  "an operator resends a failed message while a POST brings the customer's reply and the message's status: " +
    "no deadlock",
  async (ctx) => {
    const { sql } = ctx;
    const admin = await createUser(sql, { role: "admin" });
    const { phoneNumberId, waId, conversationId } = await newConversation(sql);
    const wamid = newWamid();
    const clientId = crypto.randomUUID();
    const [messageId] = await outbound(sql, conversationId, [{
      wamid,
      status: "failed",
      key: `operator:${conversationId}:${clientId}`,
      sentBy: admin.id,
    }]);

    // The buffer held: the POST stops after locking the conversation, before its statuses.
    const bufferHolder = await ctx.hold();
    await bufferHolder.sql`select from wa.buffers where conversation_id = ${conversationId} for update`;
    const webhookSession = await ctx.session();
    const operator = await ctx.session();

    const posted = ingest(
      webhookSession.sql,
      webhook(messagesChange({
        phoneNumberId,
        contacts: [contact(waId, "Ana")],
        messages: [inboundMessage("text", { from: waId })],
        statuses: [statusUpdate(wamid, "delivered")],
      })),
    );
    await blocked(sql, webhookSession.pid, { call: posted });
    const resent = operator.sql<{ status: string; created: boolean }[]>`
      select status, created from wa.begin_operator_send(${admin.id}, ${conversationId}, ${clientId}, 'text',
                                                          '{"text":{"body":"hola"}}')`.execute();
    await blocked(sql, operator.pid, { call: resent });
    await bufferHolder.commit();
    await noDeadlock([posted, resent]);

    // The delivery won the race: nothing is left to resend.
    assert.deepEqual((await resent)[0], { status: "delivered", created: false });
    assert.equal((await statusOf(sql, messageId!))?.status, "delivered");
  },
);

// ---------------------------------------------------------------------------------------------
// §5: a status racing the send it describes
// ---------------------------------------------------------------------------------------------

/** A conversation and one outbound message written before its send: pending, no wamid yet. */
async function pendingSend(sql: Sql) {
  const { phoneNumberId, conversationId } = await newConversation(sql);
  const [messageId] = await outbound(sql, conversationId, [{ wamid: null, status: "pending" }]);
  return { phoneNumberId, messageId: messageId!, wamid: newWamid() };
}

lockTest(
  "a failed status whose POST commits while the send's result is recorded: the message ends failed",
  async (ctx) => {
    const { sql } = ctx;
    const { phoneNumberId, messageId, wamid } = await pendingSend(sql);
    const statusPost = await ctx.hold();
    await ingest(statusPost.sql, statusesPost(phoneNumberId, [statusUpdate(wamid, "failed")]));
    const sender = await ctx.session();
    const recorded = sender.sql<{ status: string }[]>`
      select wa.record_send_result(${messageId}, 'sent', ${wamid}) as status`.execute();
    await settledOrBlocked(sql, sender.pid, recorded);
    await statusPost.commit();
    assert.equal((await recorded)[0]?.status, "failed");
    assert.deepEqual(await statusOf(sql, messageId), { status: "failed", error_code: "131026" });
  },
);

lockTest(
  "a send's result that commits while a delivered status is ingested: the message ends delivered",
  async (ctx) => {
    const { sql } = ctx;
    const { phoneNumberId, messageId, wamid } = await pendingSend(sql);
    const send = await ctx.hold();
    await send.sql`select wa.record_send_result(${messageId}, 'sent', ${wamid})`;
    const webhookSession = await ctx.session();
    const posted = ingest(
      webhookSession.sql,
      statusesPost(phoneNumberId, [statusUpdate(wamid, "delivered")]),
    );
    await settledOrBlocked(sql, webhookSession.pid, posted);
    await send.commit();
    await posted;
    assert.deepEqual(await statusOf(sql, messageId), { status: "delivered", error_code: null });
  },
);
