// The conversation as customer and operator live it (docs/conversation.md), through the real processor, the
// real ingest, the fake Graph API and the demo agent: an echo from the WhatsApp Business app beats a reply in
// flight, the typing indicator, reactions, button replies, interactive answers and the handoff.
import assert from "node:assert/strict";
import type postgres from "postgres";
import { buttonReply, echoChange, reaction } from "../../../local/testing/coexistence-fixtures.ts";
import { processorTest, processorTestEnv, seedDueBuffers } from "../../../local/testing/processor.ts";
import {
  contact,
  inboundMessage,
  messagesChange,
  webhook,
} from "../../../local/testing/whatsapp-fixtures.ts";
import { ingest } from "../whatsapp-webhook/store.ts";
import { createProcessor } from "./processor.ts";

type Sql = postgres.Sql;
type Json = Record<string, unknown>;

/** Ingests `payload` as if it had arrived `secondsAgo` ago (a minute: its buffers are due). */
async function ingestAgo(sql: Sql, payload: Json, secondsAgo = 60) {
  await sql`select wa.ingest_webhook(${JSON.stringify(payload)}::text::jsonb,
                                    now() - make_interval(secs => ${secondsAgo}::double precision))`;
}

async function conversationOf(sql: Sql, phoneNumberId: string, waId: string) {
  const [row] = await sql<{ id: string; paused: boolean; handoff_reason: string | null }[]>`
    select c.id, coalesce(c.bot_paused_until > now(), false) as paused, c.handoff_reason
    from public.conversations c join public.contacts k on k.id = c.contact_id
    where c.phone_number_id = ${phoneNumberId} and k.wa_id = ${waId}`;
  assert.ok(row, `a conversation of ${waId} on ${phoneNumberId}`);
  return row;
}

async function agentReplies(sql: Sql, conversationId: string) {
  const [row] = await sql<{ n: number }[]>`
    select count(*)::integer as n from public.messages
    where conversation_id = ${conversationId} and idempotency_key like 'agent-reply:%'`;
  return row!.n;
}

processorTest(
  "an echo arriving while the agent answers: the reply is never sent (20 forced interleavings)",
  async (fakes, sql) => {
    const processor = await createProcessor(processorTestEnv(fakes), sql, "echo-worker");
    // Control: without an echo the same set-up answers, so the checks below would see a reply if one went out.
    const control = await seedDueBuffers(sql, 1);
    assert.deepEqual((await processor.drain()).outcomes, { replied: 1 });
    assert.equal(fakes.graph.sent.filter((m) => m.body.to === `+${control.waIds[0]}`).length, 1);

    for (let round = 0; round < 20; round++) {
      const { phoneNumberId, waIds: [customer] } = await seedDueBuffers(sql, 1);
      let release!: () => void;
      fakes.agent.enqueue({ kind: "wait", until: new Promise<void>((resolve) => release = resolve) });
      const asked = fakes.agent.requests.length;
      const drained = processor.drain();
      // The agent holds the request: the batch is claimed and its reply not written yet.
      await fakes.agent.waitFor(() => fakes.agent.requests.length > asked);
      // Meanwhile the human answers from the phone and Meta delivers the echo, on another connection.
      const echoed = await ingest(sql, JSON.stringify(webhook(echoChange(customer!, { phoneNumberId }))));
      assert.equal(echoed.kind, "ingested");
      release();
      const summary = await drained;
      assert.deepEqual(summary.outcomes, { paused: 1 }, `round ${round}`);
      const conversation = await conversationOf(sql, phoneNumberId, customer!);
      assert.equal(await agentReplies(sql, conversation.id), 0, `round ${round}: no agent reply written`);
      assert.equal(fakes.graph.sent.filter((m) => m.body.to === `+${customer}`).length, 0, `round ${round}`);
      const [echo] = await sql<{ origin: string; direction: string }[]>`
      select origin, direction from public.messages where conversation_id = ${conversation.id} and origin is not null`;
      assert.deepEqual(echo, { origin: "business_app", direction: "outbound" });
      assert.ok(conversation.paused, "the echo paused the bot");
    }
  },
);

processorTest(
  "one typing indicator per replied batch, none for a paused one, none where turned off",
  async (fakes, sql) => {
    const processor = await createProcessor(processorTestEnv(fakes), sql, "typing-worker");
    const { phoneNumberId, waIds } = await seedDueBuffers(sql, 3, 2);
    await sql`update public.conversations c set bot_paused_until = 'infinity'
            from public.contacts k where k.id = c.contact_id and k.wa_id = ${waIds[2]!}`;
    const quiet = await seedDueBuffers(sql, 1);
    await sql`update wa.phone_numbers set typing_indicator = false where phone_number_id = ${quiet.phoneNumberId}`;
    const summary = await processor.drain();
    assert.deepEqual(summary.outcomes, { replied: 3, paused: 1 });
    // Each on the customer's last message of the batch.
    const last = await sql<{ wamid: string }[]>`
    select distinct on (m.conversation_id) m.wamid from public.messages m
    join public.conversations c on c.id = m.conversation_id join public.contacts k on k.id = c.contact_id
    where c.phone_number_id = ${phoneNumberId} and m.direction = 'inbound' and k.wa_id <> ${waIds[2]!}
    order by m.conversation_id, m.sent_at desc, m.wamid desc`;
    assert.deepEqual([...fakes.graph.typingIndicators].sort(), last.map((row) => row.wamid).sort());

    // Best effort: refused once, not retried, and the batch is answered all the same.
    fakes.graph.reset();
    await seedDueBuffers(sql, 1);
    fakes.graph.enqueueTyping({ kind: "error", status: 500, code: 131000 });
    assert.deepEqual((await processor.drain()).outcomes, { replied: 1 });
    assert.equal(fakes.graph.typingRequests.length, 1, "refused once, not retried");
    assert.equal(fakes.graph.typingIndicators.length, 0);
    assert.equal(fakes.graph.sent.length, 1);
  },
);

processorTest(
  "five reactions to a bot message wake no agent and appear on the message",
  async (fakes, sql) => {
    const processor = await createProcessor(processorTestEnv(fakes), sql, "reaction-worker");
    const { phoneNumberId, waIds: [customer] } = await seedDueBuffers(sql, 1);
    assert.deepEqual((await processor.drain()).outcomes, { replied: 1 });
    const conversation = await conversationOf(sql, phoneNumberId, customer!);
    const [bot] = await sql<{ wamid: string }[]>`
    select wamid from public.messages where conversation_id = ${conversation.id} and direction = 'outbound'`;
    const asked = fakes.agent.requests.length;
    // Five POSTs at once, as Meta delivers them: concurrently, in any order; the newest emoji wins.
    const emojis = ["👍", "❤️", "😂", "😮", "🙏"];
    const base = Math.floor(Date.now() / 1000);
    await Promise.all(emojis.map((emoji, i) =>
      ingestAgo(
        sql,
        webhook(messagesChange({
          phoneNumberId,
          contacts: [contact(customer!)],
          messages: [reaction(customer!, bot!.wamid, emoji, base + i)],
        })),
      )
    ));
    const [buffered] = await sql<{ n: number }[]>`
    select count(*)::integer as n from wa.buffers where conversation_id = ${conversation.id}`;
    assert.equal(buffered!.n, 0, "no buffer: nothing for the agent");
    assert.deepEqual((await processor.drain()).outcomes, {});
    assert.equal(fakes.agent.requests.length, asked);
    const reactions = await sql<{ emoji: string; reactor: string }[]>`
    select emoji, reactor from public.message_reactions where message_wamid = ${bot!.wamid}`;
    assert.deepEqual([...reactions], [{ emoji: "🙏", reactor: "customer" }]);
    const [stored] = await sql<{ n: number }[]>`
    select count(*)::integer as n from public.messages where conversation_id = ${conversation.id} and type = 'reaction'`;
    assert.equal(stored!.n, 5);
  },
);

processorTest(
  "a button reply reaches the agent with its id; the agent answers with buttons",
  async (fakes, sql) => {
    const processor = await createProcessor(processorTestEnv(fakes), sql, "button-worker");
    const phoneNumberId = "106540352242999";
    const customer = "5215599990001";
    await ingestAgo(
      sql,
      webhook(messagesChange({
        phoneNumberId,
        contacts: [contact(customer)],
        messages: [buttonReply(customer, "ship-express", "Express")],
      })),
    );
    fakes.agent.enqueue({
      kind: "reply",
      body: {
        reply: {
          text: "¿A qué ciudad?",
          interactive: {
            type: "button",
            buttons: [{ id: "gdl", title: "Guadalajara" }, { id: "cdmx", title: "CDMX" }],
          },
        },
      },
    });
    assert.deepEqual((await processor.drain()).outcomes, { replied: 1 });
    const request = fakes.agent.requests.at(-1)!.body as { batch: { messages: Json[] } };
    assert.deepEqual(request.batch.messages[0]!.reply, {
      kind: "button_reply",
      id: "ship-express",
      title: "Express",
    });
    const sent = fakes.graph.sent.at(-1)!.body;
    assert.equal(sent.type, "interactive");
    assert.deepEqual(sent.interactive, {
      type: "button",
      body: { text: "¿A qué ciudad?" },
      action: {
        buttons: [
          { type: "reply", reply: { id: "gdl", title: "Guadalajara" } },
          { type: "reply", reply: { id: "cdmx", title: "CDMX" } },
        ],
      },
    });
    const [stored] = await sql<{ content_text: string }[]>`
    select m.content_text from public.messages m join public.conversations c on c.id = m.conversation_id
    where c.phone_number_id = ${phoneNumberId} and m.direction = 'outbound'`;
    assert.equal(stored!.content_text, "¿A qué ciudad?", "the history shows the body the customer read");
  },
);

processorTest(
  "a handoff: the reply goes out, then the bot pauses and the conversation is flagged",
  async (fakes, sql) => {
    const processor = await createProcessor(processorTestEnv(fakes), sql, "handoff-worker");
    const { phoneNumberId, waIds: [customer] } = await seedDueBuffers(sql, 1);
    fakes.agent.enqueue({
      kind: "reply",
      body: { reply: { text: "Te paso con un asesor" }, handoff: { reason: "wants a refund" } },
    });
    assert.deepEqual((await processor.drain()).outcomes, { replied: 1 });
    assert.deepEqual(fakes.graph.sent.at(-1)!.body.text, {
      preview_url: false,
      body: "Te paso con un asesor",
    });
    const conversation = await conversationOf(sql, phoneNumberId, customer!);
    assert.deepEqual({ paused: conversation.paused, reason: conversation.handoff_reason }, {
      paused: true,
      reason: "wants a refund",
    });
    // The customer writes again: nothing goes out until a human resumes the bot.
    await seedDueBuffersFor(sql, phoneNumberId, customer!);
    assert.deepEqual((await processor.drain()).outcomes, { paused: 1 });
  },
);

/** One more due text message from `customer` on `phoneNumberId`. */
async function seedDueBuffersFor(sql: Sql, phoneNumberId: string, customer: string) {
  await ingestAgo(
    sql,
    webhook(messagesChange({
      phoneNumberId,
      contacts: [contact(customer)],
      messages: [inboundMessage("text", { from: customer, content: { body: "¿hola?" } })],
    })),
  );
}
