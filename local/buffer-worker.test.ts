// The local worker: woken by LISTEN/NOTIFY and its timer, and killed mid-batch as a real process. The tests
// that only need "the processor running" run it the way WABASE_TRIGGER says (local/test.sh runs both).
import assert from "node:assert/strict";
import { createProcessor } from "../supabase/functions/buffer-processor/processor.ts";
import { createStore } from "../supabase/functions/buffer-processor/store.ts";
import { testDbUrl, testSql } from "./testing/db.ts";
import {
  type Fakes,
  processorTest,
  processorTestEnv,
  seedDueBuffers,
  TEST_ACCESS_TOKEN,
} from "./testing/processor.ts";
import { startTestTrigger } from "./testing/trigger.ts";
import { contact, inboundMessage, messagesChange, webhook } from "./testing/whatsapp-fixtures.ts";

type Sql = ReturnType<typeof testSql>;

/** The worker as its own OS process, configured for the fakes, so a test can SIGKILL it mid-batch. */
function spawnWorker(fakes: Fakes): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./buffer-worker.ts", import.meta.url).pathname],
    env: {
      SUPABASE_DB_URL: testDbUrl(),
      WHATSAPP_API_BASE: `${fakes.graph.url}/v25.0`,
      WHATSAPP_ACCESS_TOKEN: TEST_ACCESS_TOKEN,
      AGENT_URL: fakes.agent.url,
      AGENT_TIMEOUT_MS: "30000",
      GRAPH_TIMEOUT_MS: "30000",
      // Longer than two agent attempts of 30 s: the processor refuses a lease the agent could outlive.
      BUFFER_LEASE_SECONDS: "120",
    },
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/**
 * SIGKILLs the worker (no cleanup runs), ends the sessions Postgres still keeps for it (a statement it sent just
 * before dying, a lease renewal say, would otherwise still run and could land after the next line), then moves
 * its lease past expiry rather than waiting for it.
 */
async function kill(worker: Deno.ChildProcess, sql: Sql) {
  worker.kill("SIGKILL");
  await worker.status;
  await sql`select pg_terminate_backend(pid, 10000) from pg_stat_activity
            where application_name = 'wabase-functions' and datname = current_database()`;
  await sql`update wa.buffers set lease_until = now() - interval '1 second'`;
}

processorTest(
  "3 messages within 1 s of each other: one agent call, one reply, after the quiet period",
  async (fakes, sql) => {
    const phoneNumberId = `77${Date.now()}`;
    await sql`insert into wa.phone_numbers (phone_number_id, buffer_quiet_period, buffer_max_wait)
            values (${phoneNumberId}, interval '1 second', interval '10 seconds')`;
    const trigger = await startTestTrigger(fakes);
    try {
      // A customer typing three messages 300 ms apart, the times written into the data (p_now) and committed
      // together: the worker sees the burst whole however slowly the test runs, and learns its due time from
      // the NOTIFY at commit.
      const dueAt = await sql.begin(async (tx) => {
        for (const [i, body] of ["hola", "quiero una cotización", "para mañana"].entries()) {
          const message = inboundMessage("text", { from: "5215550001111", content: { body } });
          const payload = webhook(
            messagesChange({ phoneNumberId, contacts: [contact("5215550001111")], messages: [message] }),
          );
          await tx`select wa.ingest_webhook(${JSON.stringify(payload)}::text::jsonb,
                                            now() + ${i * 300} * interval '1 millisecond')`;
        }
        // Microseconds kept (text): the due time is the last message's arrival plus the quiet period.
        const [buffer] = await tx<{ due_at: string; after_quiet_period: boolean }[]>`
          select b.due_at::text, b.due_at = max(m.received_at) + interval '1 second' as after_quiet_period
          from wa.buffers b join public.messages m on m.conversation_id = b.conversation_id
          join public.conversations c on c.id = b.conversation_id
          where c.phone_number_id = ${phoneNumberId} group by b.due_at`;
        assert.equal(buffer?.after_quiet_period, true);
        return buffer.due_at;
      });
      await fakes.graph.waitFor(() => fakes.graph.sent.length === 1);
      // Causality on the database's clock, not elapsed wall time (how soon is bench/debounce.ts's question):
      // the reply was written after the quiet period that followed the last message.
      const [reply] = await sql<{ after_due: boolean }[]>`
        select m.sent_at >= ${dueAt}::timestamptz as after_due
        from public.messages m join public.conversations c on c.id = m.conversation_id
        where c.phone_number_id = ${phoneNumberId} and m.direction = 'outbound'`;
      assert.deepEqual(reply, { after_due: true });
      assert.equal(fakes.agent.requests.length, 1);
      const batch = (fakes.agent.requests[0]!.body as { batch: { messages: { text: string }[] } }).batch;
      assert.deepEqual(batch.messages.map((m) => m.text), ["hola", "quiero una cotización", "para mañana"]);
    } finally {
      await trigger.stop();
    }
  },
);

processorTest(
  "a worker killed after its claim: another finishes the batch with exactly one reply",
  async (fakes, sql) => {
    const { phoneNumberId } = await seedDueBuffers(sql, 1);
    fakes.agent.enqueue({ kind: "hang" });
    const doomed = spawnWorker(fakes);
    await fakes.agent.waitFor(() => fakes.agent.requests.length === 1, 15_000);
    await kill(doomed, sql);
    const survivor = await createProcessor(processorTestEnv(fakes), sql, "survivor");
    assert.deepEqual((await survivor.drain()).outcomes, { replied: 1 });
    assert.equal(fakes.agent.requests.length, 2);
    assert.equal(fakes.graph.sent.length, 1);
    const [row] = await sql`select m.status from public.messages m join public.conversations c
                          on c.id = m.conversation_id where c.phone_number_id = ${phoneNumberId}
                          and m.direction = 'outbound'`;
    assert.equal(row?.status, "sent");
  },
);

processorTest(
  "a worker killed after its send: the batch is finished without a second send",
  async (fakes, sql) => {
    const { phoneNumberId } = await seedDueBuffers(sql, 1);
    fakes.graph.enqueue({ kind: "accept_then_delay", ms: 60_000 });
    const doomed = spawnWorker(fakes);
    await fakes.graph.waitFor(() => fakes.graph.sent.length === 1, 15_000);
    await kill(doomed, sql);
    const survivor = await createProcessor(processorTestEnv(fakes), sql, "survivor");
    assert.deepEqual((await survivor.drain()).outcomes, { unknown: 1 });
    assert.equal(fakes.graph.sent.length, 1);
    assert.equal(fakes.graph.received.length, 1);
    const [row] = await sql`select m.status, (select count(*) from wa.buffers)::int as buffers
                          from public.messages m join public.conversations c on c.id = m.conversation_id
                          where c.phone_number_id = ${phoneNumberId} and m.direction = 'outbound'`;
    assert.deepEqual(row, { status: "unknown", buffers: 0 });
  },
);

processorTest(
  "item 3: a lease lost on the number's last attempt is dead-lettered at the next claim, and the worker " +
    "answers the messages that joined it instead of spinning",
  async (fakes, sql) => {
    const { phoneNumberId, waIds } = await seedDueBuffers(sql, 1);
    await sql`update wa.phone_numbers set buffer_max_attempts = 1 where phone_number_id = ${phoneNumberId}`;
    // A worker claims the batch on its last attempt and dies.
    const [lost] = await createStore(sql, { leaseSeconds: 60, history: 20 }).claim("dead", 1);
    assert.equal(lost?.attempts, 1);
    // The customer writes again, and the dead worker's lease runs out.
    const late = inboundMessage("text", { from: waIds[0], content: { body: "one more thing" } });
    const payload = webhook(
      messagesChange({ phoneNumberId, contacts: [contact(waIds[0]!)], messages: [late] }),
    );
    await sql`select wa.ingest_webhook(${JSON.stringify(payload)}::text::jsonb, now() - interval '1 minute')`;
    await sql`update wa.buffers set lease_until = now() - interval '1 second'`;
    const trigger = await startTestTrigger(fakes);
    try {
      await fakes.graph.waitFor(() => fakes.graph.sent.length === 1);
    } finally {
      await trigger.stop();
    }
    const batches = fakes.agent.requests.map((request) =>
      (request.body as { batch: { messages: { text: string }[] } }).batch.messages.map((m) => m.text)
    );
    assert.deepEqual(batches, [["one more thing"]], "only the message that joined was asked about");
    const dead = await sql<{ messages: { wamid: string }[]; errors: { error: string }[] }[]>`
      select d.messages, d.errors from wa.dead_letters d join public.conversations c on c.id = d.conversation_id
      where c.phone_number_id = ${phoneNumberId}`;
    assert.equal(dead.length, 1);
    assert.equal(dead[0]!.messages.length, 1);
    assert.match(dead[0]!.errors.at(-1)!.error, /lease expired: worker dead lost the batch/);
  },
);
