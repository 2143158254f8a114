// Races and edges of the processor (issue 15): each interleaving is forced by the test (a transaction held
// open on a second connection, an agent answer held until released, a lease moved past expiry), never slept for.
import assert from "node:assert/strict";
import type { SendPayload } from "../_shared/graph.ts";
import {
  clearBuffers,
  type Fakes,
  processorTest,
  processorTestEnv,
  seedDueBuffers,
  TEST_ACCESS_TOKEN,
} from "../../../local/testing/processor.ts";
import {
  contact,
  inboundMessage,
  messagesChange,
  webhook,
} from "../../../local/testing/whatsapp-fixtures.ts";
import { createProcessor } from "./processor.ts";
import { createStore } from "./store.ts";
import type postgres from "postgres";

type Sql = postgres.Sql;

async function processor(fakes: Fakes, sql: Sql, overrides: Record<string, string> = {}, id = "test-worker") {
  return await createProcessor(processorTestEnv(fakes, overrides), sql, id);
}

function store(sql: Sql) {
  return createStore(sql, { leaseSeconds: 60, history: 20 });
}

/** A promise and the function that settles it: the test decides when a held step may go on. */
function gate(): { until: Promise<void>; release: () => void } {
  let release!: () => void;
  const until = new Promise<void>((resolve) => (release = resolve));
  return { until, release };
}

/** The customer writes `body`, ingested as received a minute ago (so the buffer is due at once). */
async function say(sql: Sql, phoneNumberId: string, waId: string, body: string) {
  const message = inboundMessage("text", { from: waId, content: { body } });
  const payload = webhook(messagesChange({ phoneNumberId, contacts: [contact(waId)], messages: [message] }));
  await sql`select wa.ingest_webhook(${JSON.stringify(payload)}::text::jsonb, now() - interval '1 minute')`;
}

async function conversationOf(sql: Sql, phoneNumberId: string): Promise<string> {
  const [row] = await sql<{ id: string }[]>`select id from public.conversations
                                            where phone_number_id = ${phoneNumberId}`;
  assert.ok(row);
  return row.id;
}

async function outbound(sql: Sql, phoneNumberId: string) {
  return await sql<{ status: string; text: string }[]>`
    select m.status, m.body -> 'text' ->> 'body' as text
    from public.messages m join public.conversations c on c.id = m.conversation_id
    where c.phone_number_id = ${phoneNumberId} and m.direction = 'outbound' order by m.sent_at, m.id`;
}

function agentBatches(fakes: Fakes): string[][] {
  return fakes.agent.requests.map((request) =>
    (request.body as { batch: { messages: { text: string }[] } }).batch.messages.map((m) => m.text)
  );
}

async function expireLeases(sql: Sql) {
  await sql`update wa.buffers set lease_until = now() - interval '1 second' where lease_until is not null`;
}

processorTest(
  "item 6: a 5xx without a Graph error body (a gateway answered after the request left) is unknown, never resent",
  async (fakes, sql) => {
    const { phoneNumberId } = await seedDueBuffers(sql, 1);
    fakes.graph.enqueue({ kind: "gateway_error", status: 502 });
    const worker = await processor(fakes, sql);
    assert.deepEqual((await worker.drain()).outcomes, { unknown: 1 });
    assert.equal(fakes.graph.received.length, 1, "the ambiguous send was not repeated");
    assert.equal(fakes.graph.sent.length, 1, "and it had reached the customer");
    assert.deepEqual((await outbound(sql, phoneNumberId)).map((row) => row.status), ["unknown"]);
    await sql`update wa.buffers set due_at = now() - interval '1 second'`;
    assert.equal((await worker.drain()).batches, 0, "the batch was completed: nothing left to resend");
  },
);

processorTest(
  "item 7: messages committed out of sequence order: a re-claim after a crash between send and record " +
    "answers nothing twice",
  async (fakes, sql) => {
    const { phoneNumberId, waIds } = await seedDueBuffers(sql, 1);
    const waId = waIds[0]!;
    const conversationId = await conversationOf(sql, phoneNumberId);
    await clearBuffers(sql);
    // A first message takes its sequence number, and its transaction stays open on a second connection...
    const held = gate();
    const appended = gate();
    const committed = sql.begin(async (tx) => {
      const [message] = await tx<{ id: string }[]>`
        insert into public.messages (conversation_id, wamid, direction, type, body, content_text, sent_at)
        values (${conversationId}, ${`wamid.late-${crypto.randomUUID()}`}, 'inbound', 'text',
                '{"type": "text", "text": {"body": "committed late"}}', 'committed late',
                now() - interval '1 minute')
        returning id`;
      await tx`insert into wa.buffer_messages (conversation_id, message_id, appended_at)
               values (${conversationId}, ${message!.id}, now() - interval '1 minute')`;
      appended.release();
      await held.until;
    });
    // (An insert that failed settles `committed` instead, and the test fails there.)
    await Promise.race([appended.until, committed]);
    try {
      // ...while a second one, with a larger sequence number, commits first.
      await say(sql, phoneNumberId, waId, "committed first");
      // Worker A claims the batch it can see, writes its reply and sends it, then dies before recording it.
      const a = store(sql);
      const [claim] = await a.claim("worker-a", 1);
      assert.equal(claim?.message_count, 1);
      const payload: SendPayload = {
        messaging_product: "whatsapp",
        to: `+${waId}`,
        type: "text",
        text: { body: "A" },
      };
      const reply = await a.beginReply(claim.fence, claim.up_to_seq!, payload);
      const sent = await fetch(`${fakes.graph.url}/v25.0/${phoneNumberId}/messages`, {
        method: "POST",
        headers: { authorization: `Bearer ${TEST_ACCESS_TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify(reply.body),
      });
      await sent.body?.cancel();
      assert.equal(fakes.graph.sent.length, 1);
    } finally {
      // The first message commits; A's lease runs out; worker B claims the conversation again.
      held.release();
      await committed;
    }
    await expireLeases(sql);
    const b = await processor(fakes, sql, {}, "worker-b");
    const summary = await b.drain();
    assert.deepEqual(
      agentBatches(fakes),
      [["committed late"]],
      "B asked the agent about the message A never saw, and only about it",
    );
    assert.deepEqual(summary.outcomes, { unknown: 1, replied: 1 });
    assert.equal(fakes.graph.sent.length, 2, "one reply per burst: A's, and B's to the late message");
    assert.deepEqual((await outbound(sql, phoneNumberId)).map((row) => row.status), ["unknown", "sent"]);
    const [left] = await sql`select count(*)::int as n from wa.buffer_messages
                             where conversation_id = ${conversationId}`;
    assert.equal(left?.n, 0);
  },
);

processorTest(
  "item 9: a worker whose lease expired while the agent answered does not advance the session",
  async (fakes, sql) => {
    const { phoneNumberId } = await seedDueBuffers(sql, 1);
    const conversationId = await conversationOf(sql, phoneNumberId);
    const answer = gate();
    fakes.agent.enqueue({ kind: "wait", until: answer.until });
    const a = await processor(fakes, sql, {}, "worker-a");
    const drained = a.drain();
    await fakes.agent.waitFor(() => fakes.agent.requests.length === 1);
    // A's lease runs out while the agent is thinking, and worker B claims the batch.
    await expireLeases(sql);
    const [reclaimed] = await store(sql).claim("worker-b", 1);
    assert.equal(reclaimed?.conversation_id, conversationId);
    answer.release();
    assert.deepEqual((await drained).outcomes, { stale: 1 });
    const [session] = await sql`select state, version::int from wa.get_chat_session(${conversationId})`;
    assert.deepEqual(session, { state: "start", version: 0 }, "A's agent answer did not move the session");
    assert.equal(fakes.graph.sent.length, 0);
  },
);

processorTest(
  "item 9: a lease that ran out while the agent answered, not yet re-claimed, cannot advance the session",
  async (fakes, sql) => {
    const { phoneNumberId } = await seedDueBuffers(sql, 1);
    const conversationId = await conversationOf(sql, phoneNumberId);
    const answer = gate();
    fakes.agent.enqueue({ kind: "wait", until: answer.until });
    const a = await processor(fakes, sql, {}, "worker-a");
    const drained = a.drain();
    await fakes.agent.waitFor(() => fakes.agent.requests.length === 1);
    await expireLeases(sql);
    answer.release();
    // The lane gives up the batch it no longer holds, then claims it afresh and asks the agent again.
    assert.deepEqual((await drained).outcomes, { stale: 1, replied: 1 });
    const shown = fakes.agent.requests.map((request) =>
      (request.body as { session: { version: number } }).session
    );
    assert.deepEqual(
      shown.map((session) => session.version),
      [0, 0],
      "the second ask saw the session unmoved",
    );
    const [after] = await sql`select version::int, (data ->> 'turns')::int as turns
                              from wa.get_chat_session(${conversationId})`;
    assert.deepEqual(after, { version: 1, turns: 1 }, "one turn for one burst");
  },
);

processorTest(
  "item 9: an existing failed bot reply is not resent while the bot is paused",
  async (fakes, sql) => {
    const { phoneNumberId } = await seedDueBuffers(sql, 1);
    const conversationId = await conversationOf(sql, phoneNumberId);
    const unavailable = { kind: "error" as const, status: 500, code: 131000 };
    fakes.graph.enqueue(unavailable, unavailable, unavailable);
    const worker = await processor(fakes, sql);
    assert.deepEqual((await worker.drain()).outcomes, { retry: 1 });
    assert.deepEqual((await outbound(sql, phoneNumberId)).map((row) => row.status), ["failed"]);
    // An operator takes over; the batch's backoff ends.
    await sql`update public.conversations set bot_paused_until = 'infinity' where id = ${conversationId}`;
    await sql`update wa.buffers set due_at = now() - interval '1 second', retry_not_before = null`;
    assert.deepEqual((await worker.drain()).outcomes, { paused: 1 });
    assert.equal(fakes.graph.received.length, 3, "nothing was sent while paused");
    assert.deepEqual((await outbound(sql, phoneNumberId)).map((row) => row.status), ["failed"]);
    const [left] =
      await sql`select count(*)::int as n from wa.buffers where conversation_id = ${conversationId}`;
    assert.equal(left?.n, 0, "the batch is consumed, as any batch while paused");
  },
);
