// The processor against the real test database, the fake Graph API and the demo agent, in process.
import assert from "node:assert/strict";
import { testSql } from "../../../local/testing/db.ts";
import {
  type Fakes,
  processorTest,
  processorTestEnv,
  seedDueBuffers,
} from "../../../local/testing/processor.ts";
import {
  contact,
  inboundMessage,
  messagesChange,
  webhook,
} from "../../../local/testing/whatsapp-fixtures.ts";
import { createProcessor, type Processor } from "./processor.ts";
import { createStore, StaleFenceError } from "./store.ts";

type Sql = ReturnType<typeof testSql>;

/** Runs `fn` with the fakes and a database connection, and an empty set of buffers. */

async function processor(fakes: Fakes, sql: Sql, overrides: Record<string, string> = {}, id = "test-worker") {
  return await createProcessor(processorTestEnv(fakes, overrides), sql, id);
}

async function outbound(sql: Sql, phoneNumberId: string) {
  return await sql<{ status: string; wamid: string | null; body: { text?: { body: string } } }[]>`
    select m.status, m.wamid, m.body from public.messages m join public.conversations c on c.id = m.conversation_id
    where c.phone_number_id = ${phoneNumberId} and m.direction = 'outbound'`;
}

async function makeDue(sql: Sql) {
  await sql`update wa.buffers set due_at = now() - interval '1 second', retry_not_before = null where lease_until is null`;
}

processorTest(
  "8 concurrent workers over 1,000 due buffers: every batch processed exactly once",
  async (fakes, sql) => {
    const { phoneNumberId, waIds } = await seedDueBuffers(sql, 1000);
    const workers: Processor[] = await Promise.all(
      Array.from({ length: 8 }, (_, i) => processor(fakes, sql, {}, `worker-${i}`)),
    );
    const summaries = await Promise.all(workers.map((worker) => worker.drain({ budgetMs: 600_000 })));
    assert.equal(summaries.reduce((sum, s) => sum + s.batches, 0), 1000);
    assert.ok(summaries.filter((s) => s.batches > 0).length > 1, "the work was shared between workers");
    assert.equal(fakes.agent.requests.length, 1000);
    const recipients = fakes.graph.sent.map((sent) => String((sent.body as { to: string }).to));
    assert.equal(recipients.length, 1000);
    assert.deepEqual([...new Set(recipients)].sort(), waIds.map((id) => `+${id}`).sort());
    const rows = await outbound(sql, phoneNumberId);
    assert.equal(rows.length, 1000);
    assert.ok(rows.every((row) => row.status === "sent" && row.wamid?.startsWith("wamid.")));
    const [left] = await sql`select count(*)::int as n from wa.buffers`;
    assert.equal(left?.n, 0);
  },
);

processorTest(
  "messages arriving while a batch is in flight are answered in the next batch",
  async (fakes, sql) => {
    const { phoneNumberId, waIds } = await seedDueBuffers(sql, 1);
    const worker = await processor(fakes, sql);
    fakes.agent.enqueue({ kind: "delay", ms: 500 });
    const first = worker.drain();
    await fakes.agent.waitFor(() => fakes.agent.requests.length === 1);
    const late = inboundMessage("text", { from: waIds[0], content: { body: "one more thing" } });
    const payload = webhook(
      messagesChange({ phoneNumberId, contacts: [contact(waIds[0]!)], messages: [late] }),
    );
    await sql`select wa.ingest_webhook(${JSON.stringify(payload)}::text::jsonb)`;
    assert.equal((await first).batches, 1);
    const [buffer] = await sql`select message_count, lease_until from wa.buffers`;
    assert.deepEqual(buffer, { message_count: 1, lease_until: null });
    await makeDue(sql);
    assert.equal((await worker.drain()).batches, 1);
    const batches = fakes.agent.requests.map((request) =>
      (request.body as { batch: { messages: { text: string }[] } }).batch.messages.map((m) => m.text)
    );
    assert.deepEqual(batches, [["hola 0"], ["one more thing"]]);
    assert.equal(fakes.graph.sent.length, 2);
    assert.equal((await outbound(sql, phoneNumberId)).length, 2);
  },
);

processorTest("agent down: one fallback per batch, the breaker opens, then recovers", async (fakes, sql) => {
  const { phoneNumberId } = await seedDueBuffers(sql, 4);
  // The breakers' clock stands still until the test moves it: the open breaker stays open through the retries
  // and the later batches however long they take, so the request count depends on nothing but the code.
  const halfOpenMs = 30_000;
  let now = Date.UTC(2026, 10, 25, 12);
  const env = processorTestEnv(fakes, {
    AGENT_FALLBACK_REPLY: "We will be right with you.",
    BREAKER_HALF_OPEN_MS: String(halfOpenMs),
  });
  const worker = await createProcessor(env, sql, "test-worker", () => now);
  fakes.agent.enqueue(...Array.from({ length: 20 }, () => ({ kind: "error" as const, status: 503 })));
  const summary = await worker.drain();
  assert.deepEqual(summary.outcomes, { fallback: 4 });
  // 2 attempts per batch; cockatiel's ConsecutiveBreaker(5) opens on the fifth failure (the third batch's
  // first attempt), so that batch's retry and the fourth batch never reach the agent.
  assert.equal(fakes.agent.requests.length, 5);
  assert.equal(worker.breakers().agent, "open");
  const [saved] = await sql`select state from wa.circuit_breakers where name = 'agent'`;
  assert.equal(saved?.state, "open");
  const replies = await outbound(sql, phoneNumberId);
  assert.equal(replies.length, 4);
  assert.ok(replies.every((reply) => reply.body.text?.body === "We will be right with you."));
  assert.equal(fakes.graph.sent.length, 4);

  fakes.agent.reset();
  now += halfOpenMs - 1;
  await seedDueBuffers(sql, 1);
  assert.deepEqual((await worker.drain()).outcomes, { fallback: 1 }, "still open a millisecond before");
  assert.equal(fakes.agent.requests.length, 0);
  now += 1;
  const recovered = await seedDueBuffers(sql, 1);
  assert.deepEqual((await worker.drain()).outcomes, { replied: 1 });
  assert.equal(worker.breakers().agent, "closed");
  const [reply] = await outbound(sql, recovered.phoneNumberId);
  assert.notEqual(reply?.body.text?.body, "We will be right with you.");
});

processorTest("Graph API 500 then 200: one send", async (fakes, sql) => {
  const { phoneNumberId } = await seedDueBuffers(sql, 1);
  fakes.graph.enqueue({ kind: "error", status: 500, code: 131000, message: "Something went wrong" });
  const worker = await processor(fakes, sql);
  assert.deepEqual((await worker.drain()).outcomes, { replied: 1 });
  assert.equal(fakes.graph.received.length, 2);
  assert.equal(fakes.graph.sent.length, 1);
  assert.equal((await outbound(sql, phoneNumberId))[0]?.status, "sent");
});

processorTest("Graph API 429 with Retry-After: the retry waits as asked", async (fakes, sql) => {
  await seedDueBuffers(sql, 1);
  fakes.graph.enqueue({
    kind: "error",
    status: 429,
    code: 130429,
    message: "Rate limit hit",
    retryAfterSeconds: 1,
  });
  const worker = await processor(fakes, sql);
  assert.deepEqual((await worker.drain()).outcomes, { replied: 1 });
  const [first, second] = fakes.graph.received;
  assert.ok(second!.at.getTime() - first!.at.getTime() >= 950, "waited for Retry-After");
});

processorTest("Graph API timeout after the request left: unknown, never resent", async (fakes, sql) => {
  const { phoneNumberId } = await seedDueBuffers(sql, 1);
  fakes.graph.enqueue({ kind: "accept_then_delay", ms: 3000 });
  const worker = await processor(fakes, sql, { GRAPH_TIMEOUT_MS: "300" });
  assert.deepEqual((await worker.drain()).outcomes, { unknown: 1 });
  assert.equal((await outbound(sql, phoneNumberId))[0]?.status, "unknown");
  await makeDue(sql);
  assert.equal((await worker.drain()).batches, 0, "the batch was completed, nothing left to retry");
  assert.equal(fakes.graph.received.length, 1);
});

processorTest("a non-retryable Graph API error dead-letters the batch with the error", async (fakes, sql) => {
  const { phoneNumberId } = await seedDueBuffers(sql, 1);
  fakes.graph.enqueue({ kind: "error", status: 400, code: 131026, message: "Message undeliverable" });
  const worker = await processor(fakes, sql);
  assert.deepEqual((await worker.drain()).outcomes, { dead_letter: 1 });
  const [reply] = await outbound(sql, phoneNumberId);
  assert.equal(reply?.status, "failed");
  const [dead] = await sql`select errors, jsonb_array_length(messages) as messages from wa.dead_letters
                           order by id desc limit 1`;
  assert.equal(dead?.messages, 1);
  assert.match(JSON.stringify(dead?.errors), /Message undeliverable/);
});

processorTest("retries exhausted: the dead letter holds the messages and every error", async (fakes, sql) => {
  const { phoneNumberId } = await seedDueBuffers(sql, 1, 2);
  await sql`update wa.phone_numbers set buffer_max_attempts = 2 where phone_number_id = ${phoneNumberId}`;
  const worker = await processor(fakes, sql, { AGENT_FALLBACK_REPLY: "off" });
  fakes.agent.enqueue(...Array.from({ length: 4 }, () => ({ kind: "error" as const, status: 500 })));
  assert.deepEqual((await worker.drain()).outcomes, { retry: 1 });
  await makeDue(sql);
  assert.deepEqual((await worker.drain()).outcomes, { dead_letter: 1 });
  const [dead] = await sql<{ attempts: number; errors: unknown[]; messages: { wamid: string }[] }[]>`
    select d.attempts, d.errors, d.messages from wa.dead_letters d
    join public.conversations c on c.id = d.conversation_id where c.phone_number_id = ${phoneNumberId}`;
  assert.equal(dead?.attempts, 2);
  assert.equal(dead?.errors.length, 2);
  assert.equal(dead?.messages.length, 2);
  assert.equal(fakes.graph.sent.length, 0);
  const [left] = await sql`select count(*)::int as n from wa.buffers`;
  assert.equal(left?.n, 0);
});

processorTest("a stale fence cannot complete: the batch belongs to the newer claim", async (fakes, sql) => {
  await seedDueBuffers(sql, 1);
  const store = createStore(sql, { leaseSeconds: 60, history: 20 });
  const [first] = await store.claim("a", 1);
  await sql`update wa.buffers set lease_until = now() - interval '1 second'`;
  const [second] = await store.claim("b", 1);
  assert.ok(first && second && BigInt(second.fence) > BigInt(first.fence));
  await assert.rejects(store.complete(first.fence, first.up_to_seq!), StaleFenceError);
  assert.equal(await store.complete(second.fence, second.up_to_seq!), 0);
  assert.equal(fakes.graph.sent.length, 0);
});

processorTest(
  "a connection dropped mid-send is never silently re-sent: the outcome is unknown",
  async (fakes, sql) => {
    await seedDueBuffers(sql, 2);
    fakes.graph.enqueue({ kind: "delay", ms: 0 }, { kind: "drop_connection" });
    const worker = await processor(fakes, sql);
    assert.deepEqual((await worker.drain()).outcomes, { replied: 1, unknown: 1 });
    assert.equal(fakes.graph.received.length, 2, "the dropped request was not repeated behind our back");
  },
  true,
);

processorTest(
  "two batches of one conversation cannot race: the claim serialises them, the session stays consistent",
  async (fakes, sql) => {
    const { phoneNumberId, waIds } = await seedDueBuffers(sql, 1);
    const first = await processor(fakes, sql, {}, "worker-a");
    const second = await processor(fakes, sql, {}, "worker-b");
    fakes.agent.enqueue({ kind: "delay", ms: 400 });
    const inFlight = first.drain();
    await fakes.agent.waitFor(() => fakes.agent.requests.length === 1);
    // A second burst arrives and is due while the first batch is still with the agent.
    const late = inboundMessage("text", { from: waIds[0], content: { body: "quiero hablar con un humano" } });
    const payload = webhook(
      messagesChange({ phoneNumberId, contacts: [contact(waIds[0]!)], messages: [late] }),
    );
    await sql`select wa.ingest_webhook(${JSON.stringify(payload)}::text::jsonb)`;
    await makeDue(sql);
    assert.equal((await second.drain()).batches, 0, "the conversation's buffer is leased: no second claim");
    assert.equal((await inFlight).batches, 1);
    await makeDue(sql);
    assert.equal((await second.drain()).batches, 1);
    const sessions = fakes.agent.requests.map((request) =>
      (request.body as { session: { version: number } }).session
    );
    assert.deepEqual(
      sessions.map((session) => session.version),
      [0, 1],
      "the second batch saw the first one's write",
    );
    const [session] = await sql`select s.state, s.data, s.version::int from wa.chat_sessions s
                              join public.conversations c on c.id = s.conversation_id
                              where c.phone_number_id = ${phoneNumberId}`;
    assert.deepEqual(session, { state: "handoff", data: { turns: 2 }, version: 2 });
  },
);

processorTest(
  "session writes conflicting with another writer are retried; bookkeeping never fails a batch",
  async (fakes, sql) => {
    const { phoneNumberId } = await seedDueBuffers(sql, 1);
    const [conversation] = await sql<{ id: string }[]>`select id from public.conversations
                                                      where phone_number_id = ${phoneNumberId}`;
    const worker = await processor(fakes, sql);
    fakes.agent.enqueue({ kind: "delay", ms: 300 });
    const drained = worker.drain();
    await fakes.agent.waitFor(() => fakes.agent.requests.length === 1);
    // Another writer (an operator, another handler) changes the session the agent was given.
    await sql`select wa.update_chat_session(${conversation!.id}, 0, 'operator', '{"note":"vip"}')`;
    await sql`alter table wa.bot_daily_stats rename to bot_daily_stats_moved`;
    try {
      const summary = await drained;
      assert.deepEqual(summary.outcomes, { replied: 1 });
      assert.equal(summary.session_retries, 1);
      assert.equal(summary.bookkeeping_failures, 1);
    } finally {
      await sql`alter table wa.bot_daily_stats_moved rename to bot_daily_stats`;
    }
    const [session] = await sql`select state, data, version::int from wa.chat_sessions
                              where conversation_id = ${conversation!.id}`;
    assert.equal(session?.version, 2);
    assert.equal(
      session?.data.note,
      "vip",
      "the agent's data was merged over the concurrent write, not over it",
    );
    assert.equal(fakes.graph.sent.length, 1);
  },
);
