// Operator sends end to end: the real functions server, the fake Graph API, the test database.
import assert from "node:assert/strict";
import { accessToken, createTeam, createUser, type TestUser } from "../../../local/testing/auth.ts";
import { testDbUrl, testSql } from "../../../local/testing/db.ts";
import {
  clearBuffers,
  type Fakes,
  processorTestEnv,
  seedDueBuffers,
  startFakes,
  TEST_ACCESS_TOKEN,
} from "../../../local/testing/processor.ts";
import { spawnServer } from "../../../local/testing/server.ts";
import {
  contact,
  inboundMessage,
  messagesChange,
  webhook,
} from "../../../local/testing/whatsapp-fixtures.ts";
import { createProcessor } from "../buffer-processor/processor.ts";

type Sql = ReturnType<typeof testSql>;
interface Reply {
  status: number;
  body: {
    message?: { id: string; status: string; wamid: string | null };
    error?: { code: string; details?: unknown };
    marked?: number;
    read_receipt_sent?: boolean;
  };
}
interface Ctx {
  sql: Sql;
  fakes: Fakes;
  owner: TestUser;
  outsider: TestUser;
  conversationId: string;
  post: (user: TestUser, body: unknown, path?: string) => Promise<Reply>;
}

/** The number's account gets a catalogue: two approved templates in es_MX (one with a {{1}}), others. */
async function seedTemplates(sql: Sql, phoneNumberId: string) {
  const waba = String(Math.floor(Math.random() * 1e15));
  await sql`update wa.phone_numbers set waba_id = ${waba}, template_language = 'es_MX'
            where phone_number_id = ${phoneNumberId}`;
  const body = (text: string) => [{ type: "BODY", text }];
  const templates = [
    {
      id: `${waba}1`,
      name: "seguimiento",
      language: "es_MX",
      status: "APPROVED",
      category: "MARKETING",
      components: body("Hola"),
    },
    {
      id: `${waba}2`,
      name: "cita",
      language: "es_MX",
      status: "APPROVED",
      components: body("Tu cita es {{1}}"),
    },
    { id: `${waba}3`, name: "seguimiento", language: "en_US", status: "APPROVED", components: body("Hi") },
    { id: `${waba}4`, name: "promo", language: "es_MX", status: "PAUSED", components: body("Oferta") },
  ];
  await sql`select wa.upsert_templates(${waba}, ${JSON.stringify(templates)}::text::jsonb)`;
}

/** A server, the fakes, and a conversation whose customer just wrote, assigned to `owner`. */
function sendTest(name: string, fn: (ctx: Ctx) => Promise<void>) {
  Deno.test(name, async () => {
    const fakes = await startFakes();
    const sql = testSql(25);
    const server = await spawnServer({
      SUPABASE_DB_URL: testDbUrl(),
      WHATSAPP_API_BASE: `${fakes.graph.url}/v25.0`,
      WHATSAPP_ACCESS_TOKEN: TEST_ACCESS_TOKEN,
    });
    try {
      await clearBuffers(sql);
      const teamId = await createTeam(sql);
      const owner = await createUser(sql, { teamId });
      const outsider = await createUser(sql, { teamId: await createTeam(sql) });
      const { phoneNumberId } = await seedDueBuffers(sql, 1);
      const [conversation] = await sql<{ id: string }[]>`
        update public.conversations set assigned_executive_id = ${owner.id}, team_id = ${teamId},
                                        last_inbound_at = now()
        where phone_number_id = ${phoneNumberId} returning id`;
      await clearBuffers(sql);
      await seedTemplates(sql, phoneNumberId);
      const post = async (user: TestUser, body: unknown, path = "") => {
        const res = await fetch(`${server.url}send-message${path}`, {
          method: "POST",
          headers: { authorization: `Bearer ${await accessToken(user)}`, "content-type": "application/json" },
          body: JSON.stringify(body),
        });
        return { status: res.status, body: await res.json() };
      };
      await fn({ sql, fakes, owner, outsider, conversationId: conversation!.id, post });
    } finally {
      await server.stop();
      await sql.end();
      await fakes.close();
    }
  });
}

const text = (conversationId: string, clientId = crypto.randomUUID()) => ({
  conversation_id: conversationId,
  client_id: clientId,
  type: "text",
  text: "Hola, soy tu asesor.",
});

sendTest("the same client_id twice: one message, one Graph API call, the first result", async (ctx) => {
  const body = text(ctx.conversationId);
  const first = await ctx.post(ctx.owner, body);
  const second = await ctx.post(ctx.owner, body);
  assert.equal(first.status, 201);
  assert.equal(first.body.message?.status, "sent");
  assert.equal(second.status, 200);
  assert.deepEqual(second.body.message?.id, first.body.message?.id);
  assert.equal(second.body.message?.wamid, first.body.message?.wamid);
  assert.equal(ctx.fakes.graph.received.length, 1);
  const [row] = await ctx.sql`select count(*)::int as n, min(sent_by::text) as sent_by from public.messages
                              where conversation_id = ${ctx.conversationId} and direction = 'outbound'`;
  assert.deepEqual(row, { n: 1, sent_by: ctx.owner.id });
});

sendTest("20 concurrent submits of one client_id: one message, one Graph API call", async (ctx) => {
  const body = text(ctx.conversationId);
  const replies = await Promise.all(Array.from({ length: 20 }, () => ctx.post(ctx.owner, body)));
  assert.equal(replies.filter((reply) => reply.status === 201).length, 1);
  assert.ok(replies.every((reply) => reply.status === 201 || reply.status === 200));
  assert.equal(new Set(replies.map((reply) => reply.body.message?.id)).size, 1);
  assert.equal(ctx.fakes.graph.received.length, 1);
  const [row] = await ctx.sql`select count(*)::int as n from public.messages
                              where conversation_id = ${ctx.conversationId} and direction = 'outbound'`;
  assert.equal(row?.n, 1);
});

sendTest(
  "the 24-hour window: free-form at 23h59 goes, at 24h01 gets 422 before any API call",
  async (ctx) => {
    const at = (ago: string) =>
      ctx
        .sql`update public.conversations set last_inbound_at = now() - ${ago}::interval where id = ${ctx.conversationId}`;
    await at("23 hours 59 minutes");
    assert.equal((await ctx.post(ctx.owner, text(ctx.conversationId))).status, 201);
    await at("24 hours 1 minute");
    const closed = await ctx.post(ctx.owner, text(ctx.conversationId));
    assert.equal(closed.status, 422);
    assert.equal(closed.body.error?.code, "outside_service_window");
    assert.equal(ctx.fakes.graph.received.length, 1, "the refused message never reached the API");
    const template = await ctx.post(ctx.owner, {
      conversation_id: ctx.conversationId,
      client_id: crypto.randomUUID(),
      type: "template",
      template: { name: "seguimiento", language: "es_MX" },
    });
    assert.equal(template.status, 201, "an approved template may open the conversation again");
    const sent = ctx.fakes.graph.sent.at(-1)?.body as { template: { language: { code: string } } };
    assert.equal(sent.template.language.code, "es_MX");
  },
);

sendTest("an executive cannot send into a conversation it may not read", async (ctx) => {
  const reply = await ctx.post(ctx.outsider, text(ctx.conversationId));
  assert.equal(reply.status, 403);
  assert.equal(reply.body.error?.code, "forbidden");
  const unknown = await ctx.post(ctx.owner, text(crypto.randomUUID()));
  assert.equal(unknown.status, 404);
  assert.equal(ctx.fakes.graph.received.length, 0);
});

sendTest("invalid requests are 400 with the paths at fault", async (ctx) => {
  const missing = await ctx.post(ctx.owner, {
    conversation_id: ctx.conversationId,
    client_id: "x",
    type: "text",
  });
  assert.equal(missing.status, 400);
  const paths = (missing.body.error?.details as { path: string }[]).map((d) => d.path).sort();
  assert.deepEqual(paths, ["client_id", "text"]);
  const both = await ctx.post(ctx.owner, {
    conversation_id: ctx.conversationId,
    client_id: crypto.randomUUID(),
    type: "image",
    media: { id: "123", link: "https://example.com/a.jpg" },
  });
  assert.equal(both.status, 400);
});

sendTest("a definite Graph API failure is 502 and the same client_id can be resent once", async (ctx) => {
  ctx.fakes.graph.enqueue({ kind: "error", status: 400, code: 131026, message: "Message undeliverable" });
  const body = text(ctx.conversationId);
  const failed = await ctx.post(ctx.owner, body);
  assert.equal(failed.status, 502);
  assert.equal(failed.body.error?.code, "send_failed");
  const retried = await ctx.post(ctx.owner, body);
  assert.equal(retried.status, 201);
  assert.equal(ctx.fakes.graph.sent.length, 1);
  const again = await ctx.post(ctx.owner, body);
  assert.equal(again.status, 200);
  assert.equal(ctx.fakes.graph.received.length, 2);
});

sendTest("an operator reply pauses the bot; a paused conversation gets no agent reply", async (ctx) => {
  assert.equal((await ctx.post(ctx.owner, text(ctx.conversationId))).status, 201);
  const [paused] = await ctx
    .sql`select bot_paused_until > now() + interval '29 minutes' as paused, bot_paused_by
                                 from public.conversations where id = ${ctx.conversationId}`;
  assert.deepEqual(paused, { paused: true, bot_paused_by: ctx.owner.id });

  const [target] = await ctx.sql<{ phone_number_id: string; wa_id: string }[]>`
    select c.phone_number_id, k.wa_id from public.conversations c join public.contacts k on k.id = c.contact_id
    where c.id = ${ctx.conversationId}`;
  const message = inboundMessage("text", { from: target!.wa_id, content: { body: "¿sigues ahí?" } });
  const payload = webhook(messagesChange({
    phoneNumberId: target!.phone_number_id,
    contacts: [contact(target!.wa_id)],
    messages: [message],
  }));
  await ctx.sql`select wa.ingest_webhook(${
    JSON.stringify(payload)
  }::text::jsonb, now() - interval '1 minute')`;
  const processor = await createProcessor(processorTestEnv(ctx.fakes), ctx.sql, "paused-test");
  assert.deepEqual((await processor.drain()).outcomes, { paused: 1 });
  assert.equal(ctx.fakes.agent.requests.length, 0, "the agent was never asked");
  const [stored] = await ctx.sql`select count(*)::int as n from public.messages where wamid = ${
    String(message.id)
  }`;
  assert.equal(stored?.n, 1, "the customer's message is stored and shown");
  assert.equal(ctx.fakes.graph.sent.length, 1, "only the operator's message went out");
});

sendTest("marking read takes a chat rate-limit token like a send: an empty bucket is a 429", async (ctx) => {
  // An empty bucket stamped an hour ahead: a take before its stamp refills nothing, whatever the clock says.
  await ctx.sql`insert into wa.rate_limit_buckets (subject, category, tokens, updated_at)
                values (${`user:${ctx.owner.id}`}, 'chat', 0, now() + interval '1 hour')`;
  const read = await ctx.post(ctx.owner, { conversation_id: ctx.conversationId }, "/read");
  assert.equal(read.status, 429);
  assert.deepEqual([read.body.error?.code, (read.body.error?.details as { category: string }).category], [
    "rate_limited",
    "chat",
  ]);
  assert.equal(ctx.fakes.graph.readReceipts.length, 0, "nothing was marked, no receipt sent");
});

sendTest("marking a conversation read sends one read receipt, once", async (ctx) => {
  const first = await ctx.post(ctx.owner, { conversation_id: ctx.conversationId }, "/read");
  assert.deepEqual(first.body, { marked: 1, read_receipt_sent: true });
  const second = await ctx.post(ctx.owner, { conversation_id: ctx.conversationId }, "/read");
  assert.deepEqual(second.body, { marked: 0, read_receipt_sent: false });
  assert.equal(ctx.fakes.graph.readReceipts.length, 1);
  const denied = await ctx.post(ctx.outsider, { conversation_id: ctx.conversationId }, "/read");
  assert.equal(denied.status, 403);
});

const template = (conversationId: string, name: string, components?: unknown[]) => ({
  conversation_id: conversationId,
  client_id: crypto.randomUUID(),
  type: "template",
  template: { name, language: "es_MX", ...(components ? { components } : {}) },
});

sendTest(
  "outside the window the 422 lists the approved templates in the conversation's language",
  async (ctx) => {
    await ctx.sql`update public.conversations set last_inbound_at = now() - interval '2 days'
                where id = ${ctx.conversationId}`;
    const closed = await ctx.post(ctx.owner, text(ctx.conversationId));
    assert.equal(closed.status, 422);
    assert.equal(closed.body.error?.code, "outside_service_window");
    const details = closed.body.error?.details as { templates: { name: string; language: string }[] };
    assert.deepEqual(details.templates.map((t) => `${t.name}/${t.language}`), [
      "cita/es_MX",
      "seguimiento/es_MX",
    ]);
    assert.equal(ctx.fakes.graph.received.length, 0);
  },
);

sendTest("a template send is checked against the catalogue before any API call", async (ctx) => {
  const missing = await ctx.post(ctx.owner, template(ctx.conversationId, "no_such_template"));
  assert.deepEqual([missing.status, missing.body.error?.code], [422, "template_not_found"]);
  const paused = await ctx.post(ctx.owner, template(ctx.conversationId, "promo"));
  assert.deepEqual([paused.status, paused.body.error?.code], [422, "template_not_approved"]);
  const noParameter = await ctx.post(ctx.owner, template(ctx.conversationId, "cita"));
  assert.deepEqual([noParameter.status, noParameter.body.error?.code], [422, "template_parameters"]);
  assert.deepEqual(noParameter.body.error?.details, {
    expected: [{ component: "body", name: "1", type: "text" }],
  });
  assert.equal(ctx.fakes.graph.received.length, 0, "nothing refused reached the API");
  const filled = await ctx.post(
    ctx.owner,
    template(ctx.conversationId, "cita", [{ type: "body", parameters: [{ type: "text", text: "lunes" }] }]),
  );
  assert.equal(filled.status, 201);
  assert.equal(ctx.fakes.graph.sent.length, 1);
});

sendTest("a marketing template to a contact who stopped marketing messages is refused", async (ctx) => {
  await ctx.sql`update public.contacts set marketing_opted_out_at = now()
                where id = (select contact_id from public.conversations where id = ${ctx.conversationId})`;
  const refused = await ctx.post(ctx.owner, template(ctx.conversationId, "seguimiento"));
  assert.deepEqual([refused.status, refused.body.error?.code], [422, "contact_opted_out"]);
  const utility = await ctx.post(
    ctx.owner,
    template(ctx.conversationId, "cita", [{ type: "body", parameters: [{ type: "text", text: "lunes" }] }]),
  );
  assert.equal(utility.status, 201, "a template of another category still goes");
  const outsider = await ctx.post(ctx.outsider, template(ctx.conversationId, "seguimiento"));
  assert.equal(outsider.status, 403, "nothing about the conversation is told to an outsider");
});
sendTest(
  "an operator reacts to the customer's message: sent as Meta's reaction, shown on the message",
  async (ctx) => {
    const [customer] = await ctx.sql<{ wamid: string }[]>`
    select wamid from public.messages where conversation_id = ${ctx.conversationId} and direction = 'inbound'`;
    const react = (emoji: string) =>
      ctx.post(ctx.owner, {
        conversation_id: ctx.conversationId,
        client_id: crypto.randomUUID(),
        type: "reaction",
        reaction: { message_id: customer!.wamid, emoji },
      });
    assert.equal((await react("👍")).status, 201);
    assert.deepEqual(ctx.fakes.graph.sent.at(-1)?.body.reaction, {
      message_id: customer!.wamid,
      emoji: "👍",
    });
    const shown = () =>
      ctx.sql<{ emoji: string | null }[]>`
      select emoji from public.message_reactions where message_wamid = ${
        customer!.wamid
      } and reactor = 'business'`;
    assert.deepEqual([...await shown()], [{ emoji: "👍" }]);
    assert.equal((await react("")).status, 201, "an empty emoji removes the reaction (WHATSAPP.md §2.2)");
    assert.deepEqual([...await shown()], [{ emoji: null }]);
  },
);
