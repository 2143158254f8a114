// The hosted trigger end to end, whatever WABASE_TRIGGER says: the pg_cron tick's command queues a pg_net
// request with the key from Vault, the pg_net stand-in's sender POSTs it to the function, and the keepalive
// invocation holds the slot, drains, claims later buffers when they become due, and hands over.
import assert from "node:assert/strict";
import { localEnvDefaults } from "../../../local/env.ts";
import { processorTest, seedDueBuffers, TEST_ACCESS_TOKEN } from "../../../local/testing/processor.ts";
import { spawnServer } from "../../../local/testing/server.ts";
import { resetKeepalive, startTestTrigger } from "../../../local/testing/trigger.ts";
import { testDbUrl } from "../../../local/testing/db.ts";
import {
  contact,
  inboundMessage,
  messagesChange,
  webhook,
} from "../../../local/testing/whatsapp-fixtures.ts";

processorTest(
  "hosted path: one keepalive invocation, started through pg_net with Vault's key, drains and then claims a " +
    "buffer once it is due",
  async (fakes, sql) => {
    await seedDueBuffers(sql, 3);
    const trigger = await startTestTrigger(fakes, {}, "cron");
    try {
      await fakes.graph.waitFor(() => fakes.graph.sent.length === 3);
      const phoneNumberId = `78${Date.now()}`;
      await sql`insert into wa.phone_numbers (phone_number_id, buffer_quiet_period)
                values (${phoneNumberId}, interval '1 second')`;
      const payload = webhook(messagesChange({
        phoneNumberId,
        contacts: [contact("5215550002222")],
        messages: [inboundMessage("text", { from: "5215550002222", content: { body: "hola" } })],
      }));
      await sql`select wa.ingest_webhook(${JSON.stringify(payload)}::text::jsonb)`;
      const [buffer] = await sql<{ due_at: string }[]>`
        select b.due_at::text from wa.buffers b join public.conversations c on c.id = b.conversation_id
        where c.phone_number_id = ${phoneNumberId}`;
      await fakes.graph.waitFor(() => fakes.graph.sent.length === 4);
      const [row] = await sql<{ after_due: boolean; holders: number; requests: number }[]>`
        select (select bool_and(m.sent_at >= ${buffer!.due_at}::timestamptz) from public.messages m
                join public.conversations c on c.id = m.conversation_id
                where c.phone_number_id = ${phoneNumberId} and m.direction = 'outbound') as after_due,
               k.holders::int, k.requests::int
        from wa.keepalive k where k.function_name = 'buffer-processor'`;
      // The same invocation that drained the first three waited for the fourth: one request, one holder.
      assert.deepEqual(row, { after_due: true, holders: 1, requests: 1 });
    } finally {
      await trigger.stop();
    }
  },
);

processorTest(
  "a keepalive invocation hands over after its share of batches; every batch is answered exactly once",
  async (fakes, sql) => {
    const { waIds } = await seedDueBuffers(sql, 7);
    const trigger = await startTestTrigger(fakes, { PROCESSOR_INVOCATION_BATCHES: "2" }, "cron");
    try {
      await fakes.graph.waitFor(() => fakes.graph.sent.length === 7, 30_000);
      const [slot] = await sql<{ holders: number }[]>`
        select holders::int from wa.keepalive where function_name = 'buffer-processor'`;
      assert.ok(slot!.holders >= 4, `7 batches at 2 per invocation need 4 holders, had ${slot!.holders}`);
      assert.equal(fakes.agent.requests.length, 7);
      const recipients = fakes.graph.sent.map((message) => String(message.body.to).replace(/^\+/, ""));
      assert.deepEqual(recipients.sort(), [...waIds].sort());
    } finally {
      await trigger.stop();
    }
  },
);

processorTest(
  "an invocation hands over once its share is claimed, while its batches are still in flight",
  async (fakes, sql) => {
    await seedDueBuffers(sql, 4);
    // The first invocation's two batches wait on the agent until the other two have been answered.
    const gate = Promise.withResolvers<void>();
    fakes.agent.enqueue({ kind: "wait", until: gate.promise }, { kind: "wait", until: gate.promise });
    const trigger = await startTestTrigger(fakes, {
      PROCESSOR_INVOCATION_BATCHES: "2",
      // The agent may take 10 s (no fallback meanwhile); claims for 28 s.
      AGENT_TIMEOUT_MS: "10000",
      PROCESSOR_TIME_BUDGET_MS: "40000",
    }, "cron");
    try {
      await fakes.graph.waitFor(() => fakes.graph.sent.length === 2, 8_000);
      gate.resolve();
      await fakes.graph.waitFor(() => fakes.graph.sent.length === 4, 15_000);
      assert.equal(fakes.agent.requests.length, 4);
    } finally {
      gate.resolve();
      await trigger.stop();
    }
  },
);

processorTest(
  "a holder busy longer than its heartbeat lease keeps beating: the tick starts no second holder",
  async (fakes, sql) => {
    await seedDueBuffers(sql, 1);
    // Longer than the 5 s lease, shorter than the agent timeout set below.
    fakes.agent.enqueue({ kind: "delay", ms: 7_000 });
    const trigger = await startTestTrigger(fakes, {
      AGENT_TIMEOUT_MS: "10000",
      // Claims for 28 s: no hand-over while the agent answers.
      PROCESSOR_TIME_BUDGET_MS: "40000",
    }, "cron");
    try {
      await fakes.graph.waitFor(() => fakes.graph.sent.length === 1, 20_000);
      const [slot] = await sql<{ holders: number; requests: number }[]>`
        select holders::int, requests::int from wa.keepalive where function_name = 'buffer-processor'`;
      assert.deepEqual(slot, { holders: 1, requests: 1 });
    } finally {
      await trigger.stop();
    }
  },
);

processorTest(
  "an invocation that finds the slot held by a live invocation drains once and returns",
  async (fakes, sql) => {
    await resetKeepalive();
    await sql`update wa.keepalive set holder = 'another', lease_until = now() + interval '1 minute',
                                      ends_at = now() + interval '1 minute'`;
    const server = await spawnServer({
      SUPABASE_DB_URL: testDbUrl(),
      WHATSAPP_API_BASE: `${fakes.graph.url}/v25.0`,
      WHATSAPP_ACCESS_TOKEN: TEST_ACCESS_TOKEN,
      AGENT_URL: fakes.agent.url,
    });
    try {
      await seedDueBuffers(sql, 2);
      const res = await fetch(`${server.url}buffer-processor`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${(await localEnvDefaults()).SUPABASE_SERVICE_ROLE_KEY}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ keepalive: true }),
      });
      const summary = await res.json();
      assert.equal(res.status, 200);
      assert.deepEqual({ role: summary.role, batches: summary.batches }, { role: "helper", batches: 2 });
      const [slot] = await sql`select holder from wa.keepalive where function_name = 'buffer-processor'`;
      assert.equal(slot?.holder, "another");
    } finally {
      await server.stop();
      await resetKeepalive();
    }
  },
);

processorTest(
  "a budget that leaves under 10 s of claiming never holds the slot (each arrival would request the next)",
  async (fakes, sql) => {
    await resetKeepalive();
    const server = await spawnServer({
      SUPABASE_DB_URL: testDbUrl(),
      WHATSAPP_API_BASE: `${fakes.graph.url}/v25.0`,
      WHATSAPP_ACCESS_TOKEN: TEST_ACCESS_TOKEN,
      AGENT_URL: fakes.agent.url,
      AGENT_TIMEOUT_MS: "2000",
      GRAPH_TIMEOUT_MS: "1000",
      // 12 s less the 4 s in-flight reserve: 8 s of claiming.
      PROCESSOR_TIME_BUDGET_MS: "12000",
    });
    try {
      await seedDueBuffers(sql, 1);
      const res = await fetch(`${server.url}buffer-processor`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${(await localEnvDefaults()).SUPABASE_SERVICE_ROLE_KEY}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ keepalive: true }),
      });
      const summary = await res.json();
      assert.deepEqual({ role: summary.role, batches: summary.batches }, { role: "helper", batches: 1 });
      const [slot] =
        await sql`select holder, holders::int from wa.keepalive where function_name = 'buffer-processor'`;
      assert.deepEqual({ ...slot }, { holder: null, holders: 0 });
    } finally {
      await server.stop();
      await resetKeepalive();
    }
  },
);
