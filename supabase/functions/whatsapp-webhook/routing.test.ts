// Routing under real concurrency: many webhook POSTs for new customers arrive at once on separate connections,
// and two executives claim one conversation with the second forced to wait for the first (pg_blocking_pids).
import assert from "node:assert/strict";
import { createTeam, createUser, type TestUser } from "../../../local/testing/auth.ts";
import { testSql } from "../../../local/testing/db.ts";
import {
  contact,
  inboundMessage,
  messagesChange,
  webhook,
} from "../../../local/testing/whatsapp-fixtures.ts";

type Sql = ReturnType<typeof testSql>;

/** A team of `size` executives, a business number routed to it by `strategy`, and the number's id. */
async function routedTeam(sql: Sql, size: number, strategy: string, capacity: number | null) {
  const teamId = await createTeam(sql);
  const executives: TestUser[] = [];
  for (let i = 0; i < size; i++) executives.push(await createUser(sql, { teamId }));
  const number = `PN-${crypto.randomUUID()}`;
  await sql`insert into wa.phone_numbers (phone_number_id) values (${number})`;
  await sql`insert into wa.routing_rules (phone_number_id, team_id, strategy, capacity)
            values (${number}, ${teamId}, ${strategy}, ${capacity})`;
  return { teamId, executives, number };
}

/** `count` POSTs, each from a new customer, all sent at once over the pool's connections. */
async function arriveAtOnce(sql: Sql, number: string, count: number): Promise<void> {
  const prefix = String(Math.floor(Math.random() * 1e6)).padStart(6, "0");
  await Promise.all(Array.from({ length: count }, (_, i) => {
    const from = `52155${prefix}${String(i).padStart(3, "0")}`;
    const body = webhook(messagesChange({
      phoneNumberId: number,
      contacts: [contact(from, `Cliente ${i}`)],
      messages: [inboundMessage("text", { from })],
    }));
    return sql`select wa.ingest_webhook(${JSON.stringify(body)}::text::jsonb)`;
  }));
}

/** Open conversations per executive on `number` (queued ones under "queue"). */
async function owners(sql: Sql, number: string): Promise<Map<string, number>> {
  const rows = await sql<{ owner: string; n: number }[]>`
    select coalesce(assigned_executive_id::text, 'queue') as owner, count(*)::int as n
    from public.conversations where phone_number_id = ${number} group by 1`;
  return new Map(rows.map((r) => [r.owner, r.n]));
}

Deno.test("routing: 100 conversations arriving at once for a team of 5 with round robin give 20 each", async () => {
  const sql = testSql(20);
  try {
    const { executives, number } = await routedTeam(sql, 5, "round_robin", null);
    await arriveAtOnce(sql, number, 100);
    const counts = await owners(sql, number);
    assert.deepEqual(executives.map((e) => counts.get(e.id)), [20, 20, 20, 20, 20]);
    assert.equal(counts.get("queue"), undefined);
  } finally {
    await sql.end();
  }
});

Deno.test("routing: balanced with capacity 3 never gives anyone more than 3; the rest wait in the queue", async () => {
  const sql = testSql(20);
  try {
    const { executives, number } = await routedTeam(sql, 5, "balanced", 3);
    await arriveAtOnce(sql, number, 100);
    const counts = await owners(sql, number);
    assert.deepEqual(executives.map((e) => counts.get(e.id)), [3, 3, 3, 3, 3]);
    assert.equal(counts.get("queue"), 85);
  } finally {
    await sql.end();
  }
});

Deno.test("routing: round robin with capacity 3 never gives anyone more than 3; the rest wait in the queue", async () => {
  const sql = testSql(20);
  try {
    const { executives, number } = await routedTeam(sql, 5, "round_robin", 3);
    await arriveAtOnce(sql, number, 100);
    const counts = await owners(sql, number);
    assert.deepEqual(executives.map((e) => counts.get(e.id)), [3, 3, 3, 3, 3]);
    assert.equal(counts.get("queue"), 85);
  } finally {
    await sql.end();
  }
});

/** Resolves once backend `pid` waits for a lock that backend `holder` holds. */
async function waitUntilBlocked(sql: Sql, pid: number, holder: number): Promise<void> {
  for (let attempt = 0; attempt < 10_000; attempt++) {
    const [row] = await sql<{ blocked: boolean }[]>`
      select ${holder}::int = any (pg_blocking_pids(${pid}::int)) as blocked`;
    if (row?.blocked) return;
  }
  throw new Error(`backend ${pid} never waited for backend ${holder}`);
}

Deno.test("routing: two executives claiming one queued conversation: one wins, the other gets PT409", async () => {
  const sql = testSql(4);
  const first = await sql.reserve();
  const second = await sql.reserve();
  let open = false;
  try {
    const { executives: [ana, beto], number } = await routedTeam(sql, 2, "queue", null);
    await arriveAtOnce(sql, number, 1);
    const [conversation] = await sql<{ id: string }[]>`
      select id from public.conversations where phone_number_id = ${number}`;
    const claim = (connection: typeof first, user: TestUser) =>
      connection`select set_config('request.jwt.claims', ${
        JSON.stringify({ sub: user.id, role: "authenticated" })
      },
                                   true),
                        set_config('role', 'authenticated', true),
                        public.claim_conversation(${conversation!.id}) ->> 'assigned_executive_id' as owner`;
    await first`begin`;
    open = true;
    const [won] = await claim(first, ana!);
    assert.equal(won!.owner, ana!.id);
    const [firstPid] = await first<{ pid: number }[]>`select pg_backend_pid() as pid`;
    const [secondPid] = await second<{ pid: number }[]>`select pg_backend_pid() as pid`;
    await second`begin`;
    const lost = claim(second, beto!).execute().then(() => null, (error: { code?: string }) => error.code);
    await waitUntilBlocked(sql, secondPid!.pid, firstPid!.pid);
    await first`commit`;
    open = false;
    assert.equal(await lost, "PT409");
    await second`rollback`;
    const [after] = await sql<{ owner: string }[]>`
      select assigned_executive_id::text as owner from public.conversations where id = ${conversation!.id}`;
    assert.equal(after!.owner, ana!.id);
  } finally {
    if (open) await first`rollback`;
    first.release();
    second.release();
    await sql.end();
  }
});

/** One POST with one text message `wamid` from `from` on `number`. */
function textFrom(number: string, from: string, wamid: string): string {
  return JSON.stringify(webhook(messagesChange({
    phoneNumberId: number,
    contacts: [contact(from, "Cliente")],
    messages: [inboundMessage("text", { from, wamid })],
  })));
}

Deno.test("routing: a known customer's first two messages on a number, in concurrent POSTs, take one turn", async () => {
  const sql = testSql(4);
  const first = await sql.reserve();
  const second = await sql.reserve();
  let open = false;
  try {
    const { executives, number } = await routedTeam(sql, 2, "round_robin", null);
    const [turn1, turn2] = executives.map((e) => e.id).sort();
    // The customer is known (from another number), so neither POST waits for the other at the contact.
    const from = `52155${String(Math.floor(Math.random() * 1e8)).padStart(8, "0")}`;
    await sql`select wa.ingest_webhook(${
      textFrom(`PN-${crypto.randomUUID()}`, from, `wamid.${from}.0`)
    }::text::jsonb)`;
    const [secondPid] = await second<{ pid: number }[]>`select pg_backend_pid() as pid`;
    const [firstPid] = await first<{ pid: number }[]>`select pg_backend_pid() as pid`;
    await first`begin`;
    open = true;
    await first`select wa.ingest_webhook(${textFrom(number, from, `wamid.${from}.1`)}::text::jsonb)`;
    const racing = second`select wa.ingest_webhook(${textFrom(number, from, `wamid.${from}.2`)}::text::jsonb)`
      .execute();
    await waitUntilBlocked(sql, secondPid!.pid, firstPid!.pid);
    await first`commit`;
    open = false;
    await racing;
    // The next new customer gets the second turn: the racing POST spent none.
    const next = `52155${String(Math.floor(Math.random() * 1e8)).padStart(8, "0")}`;
    await sql`select wa.ingest_webhook(${textFrom(number, next, `wamid.${next}`)}::text::jsonb)`;
    const rows = await sql<{ wa_id: string; owner: string; messages: number }[]>`
      select k.wa_id, c.assigned_executive_id::text as owner,
             (select count(*)::int from public.messages m where m.conversation_id = c.id) as messages
      from public.conversations c join public.contacts k on k.id = c.contact_id
      where c.phone_number_id = ${number} order by k.wa_id = ${from} desc`;
    assert.deepEqual([...rows], [
      { wa_id: from, owner: turn1, messages: 2 },
      { wa_id: next, owner: turn2, messages: 1 },
    ]);
  } finally {
    if (open) await first`rollback`;
    first.release();
    second.release();
    await sql.end();
  }
});
