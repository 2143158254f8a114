// What every Supabase frontend does, with the real @supabase/supabase-js against the local stack's API
// (gateway, real PostgREST, Auth, Realtime and the functions, on the test database): an executive signs in,
// lists her conversations through rpc, the hub subscribes to her topic, a signed WhatsApp webhook arrives and
// its broadcast reaches the hub within 1 s, send-message sends through the fake Graph API and pauses the bot;
// another executive cannot join her topic; signing out cleans the hub. The routing demo (docs/routing.md): a
// first webhook from Ana's prospect's phone is routed to her inbox and topic, and Beto sees none of it.
import assert from "node:assert/strict";
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { localEnvDefaults } from "../local/env.ts";
import { startTestApi } from "../local/testing/api.ts";
import { createTeam } from "../local/testing/auth.ts";
import { testDbUrl, testSql } from "../local/testing/db.ts";
import { startFakes, TEST_ACCESS_TOKEN } from "../local/testing/processor.ts";
import { spawnServer } from "../local/testing/server.ts";
import {
  contact,
  inboundMessage,
  messagesChange,
  signBody,
  webhook,
} from "../local/testing/whatsapp-fixtures.ts";
import { within } from "../local/testing/within.ts";
import { createRealtimeHub, type RealtimeHub, realtimeOptions, type StatusEvent } from "./realtime-hub.ts";
import type { ConversationRow, Database, MessageRow, RowChange } from "./types.ts";

const env = await localEnvDefaults();
const PASSWORD = "e2e-password-123";

function nextStatus(hub: RealtimeHub, topic: string, status: StatusEvent["status"]): Promise<StatusEvent> {
  return new Promise((resolve) => {
    const off = hub.onStatus((event) => {
      if (event.topic !== topic || event.status !== status) return;
      off();
      resolve(event);
    });
  });
}

/**
 * The local stack: the functions in their own process, pointed at the fake Graph API, behind the gateway
 * (PostgREST, Auth, Realtime) that forwards /functions/v1 to them.
 */
async function startStack() {
  const fakes = await startFakes();
  const functions = await spawnServer({
    SUPABASE_DB_URL: testDbUrl(),
    WHATSAPP_API_BASE: `${fakes.graph.url}/v25.0`,
    WHATSAPP_ACCESS_TOKEN: TEST_ACCESS_TOKEN,
  });
  const functionsBase = functions.url.replace(/\/functions\/v1\/$/, "");
  const api = await startTestApi({
    functions: (req) => {
      const url = new URL(req.url);
      return fetch(`${functionsBase}${url.pathname}${url.search}`, {
        method: req.method,
        headers: req.headers,
        body: req.body,
      });
    },
  });
  const stop = async () => {
    await api.close();
    await functions.stop();
    await fakes.close();
  };
  return { fakes, api, stop };
}

type Api = Awaited<ReturnType<typeof startStack>>["api"];

/** Ana and Beto, executives of `teamId`, created as an admin backend would, with the service key. */
async function executives(api: Api, sql: ReturnType<typeof testSql>, teamId: string) {
  const admin = createClient<Database>(api.url, api.serviceRoleKey, {
    auth: { persistSession: false, autoRefreshToken: false },
  });
  return await Promise.all(["ana", "beto"].map(async (name) => {
    const email = `${name}-${crypto.randomUUID().slice(0, 8)}@e2e.wabase.test`;
    const { data, error } = await admin.auth.admin.createUser({
      email,
      password: PASSWORD,
      email_confirm: true,
    });
    assert.equal(error, null);
    await sql`update public.profiles set team_id = ${teamId}, full_name = ${name} where id = ${
      data.user!.id
    }`;
    return { id: data.user!.id, email };
  }));
}

/** A signed WhatsApp delivery of one text message from `waId` to the business number, through the gateway. */
async function postWebhook(api: Api, phoneNumberId: string, waId: string, wamid: string, text: string) {
  const body = JSON.stringify(webhook(messagesChange({
    phoneNumberId,
    contacts: [contact(waId, "Cliente E2E")],
    messages: [inboundMessage("text", { wamid, from: waId, content: { body: text } })],
  })));
  const delivery = await fetch(`${api.url}/functions/v1/whatsapp-webhook`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-hub-signature-256": await signBody(body, env.WHATSAPP_APP_SECRET!),
    },
    body,
  });
  assert.equal(delivery.status, 200, await delivery.clone().text());
  await delivery.body?.cancel();
}

function browserClient(url: string, anonKey: string): SupabaseClient<Database> {
  return createClient<Database>(url, anonKey, {
    auth: { persistSession: false, autoRefreshToken: false },
    realtime: realtimeOptions,
  });
}

Deno.test("e2e: sign in, inbox, live broadcast, send-message and pause, topic isolation, sign-out", async () => {
  const sql = testSql(4);
  const { fakes, api, stop } = await startStack();
  const hubs: RealtimeHub[] = [];
  const clients: SupabaseClient<Database>[] = [];
  try {
    const teamId = await createTeam(sql);
    const [ana, beto] = await executives(api, sql, teamId);
    // Ana's conversation with a customer who wrote a minute ago (the 24-hour window is open).
    const phoneNumberId = String(Date.now());
    const waId = `52155${String(Math.floor(Math.random() * 1e8)).padStart(8, "0")}`;
    await sql`insert into wa.phone_numbers (phone_number_id) values (${phoneNumberId})`;
    const [customer] =
      await sql`insert into public.contacts (wa_id, profile_name) values (${waId}, 'Cliente E2E')
                                 returning id`;
    const [conversation] = await sql`
      insert into public.conversations (phone_number_id, contact_id, assigned_executive_id, team_id,
                                        last_message_at, last_inbound_at)
      values (${phoneNumberId}, ${customer!.id}, ${ana!.id}, ${teamId}, now() - interval '1 minute',
              now() - interval '1 minute')
      returning id`;
    const conversationId = conversation!.id as string;

    // 1. Ana signs in with her password.
    const supabase = browserClient(api.url, api.anonKey);
    clients.push(supabase);
    const signIn = await supabase.auth.signInWithPassword({ email: ana!.email, password: PASSWORD });
    assert.equal(signIn.error, null);
    assert.equal(signIn.data.user?.id, ana!.id);

    // 2. Her inbox through rpc.
    const inbox = await supabase.rpc("list_conversations", {});
    assert.equal(inbox.error, null);
    assert.deepEqual(inbox.data?.map((row) => row.conversation_id), [conversationId]);

    // 3. The hub subscribes to her private topic; the cleanup runs on sign-out.
    const hub = createRealtimeHub(supabase);
    hubs.push(hub);
    let cleaned: Promise<void> | undefined;
    supabase.auth.onAuthStateChange((event) => {
      if (event === "SIGNED_OUT") cleaned = hub.cleanup();
    });
    const topic = `executive:${ana!.id}`;
    const wamid = `wamid.e2e-${crypto.randomUUID()}`;
    const arrived = new Promise<RowChange<MessageRow>>((resolve) => {
      hub.subscribe({ topic, table: "messages", events: ["INSERT"] }, (change) => {
        if (change.record?.wamid === wamid) resolve(change as RowChange<MessageRow>);
      });
    });
    await within(nextStatus(hub, topic, "SUBSCRIBED"), 10_000, "Ana's join");

    // 4. A signed webhook from her customer; the broadcast of the new message reaches the hub within 1 s.
    const sentAt = performance.now();
    await postWebhook(api, phoneNumberId, waId, wamid, "¿Tienen envío?");
    const change = await within(arrived, 10_000, "the broadcast of the webhook's message");
    const latencyMs = performance.now() - sentAt;
    assert.ok(latencyMs < 1000, `the broadcast took ${Math.round(latencyMs)} ms`);
    assert.equal(change.operation, "INSERT");
    assert.equal(change.record?.conversation_id, conversationId);
    assert.equal(change.record?.content_text, "¿Tienen envío?");

    // 5. She answers through send-message: it reaches the (fake) Graph API and pauses the bot.
    const sent = await supabase.functions.invoke("send-message", {
      body: { conversation_id: conversationId, client_id: crypto.randomUUID(), type: "text", text: "¡Sí!" },
    });
    assert.equal(sent.error, null, String(sent.error));
    assert.equal(fakes.graph.sent.at(-1)?.body.to, `+${waId}`);
    const after = await supabase.rpc("list_conversations", {});
    const row = after.data?.find((entry) => entry.conversation_id === conversationId);
    assert.equal(row?.bot_paused, true, "an operator's reply pauses the bot");
    assert.equal(row?.last_message_direction, "outbound");

    // 6. Beto, of the same team but not her backup, cannot join her topic.
    const intruder = browserClient(api.url, api.anonKey);
    clients.push(intruder);
    assert.equal(
      (await intruder.auth.signInWithPassword({ email: beto!.email, password: PASSWORD })).error,
      null,
    );
    const intruderHub = createRealtimeHub(intruder);
    hubs.push(intruderHub);
    const refused = nextStatus(intruderHub, topic, "CHANNEL_ERROR");
    intruderHub.subscribe({ topic }, () => assert.fail("Beto received Ana's broadcast"));
    await within(refused, 10_000, "the refusal of Beto's join");
    assert.equal(intruderHub.isConnected(topic), false);

    // 7. Signing out cleans the hub: no channel, no listener left.
    assert.equal((await supabase.auth.signOut()).error, null);
    assert.ok(cleaned !== undefined, "SIGNED_OUT reached the listener");
    await cleaned;
    assert.equal(hub.stats().channels, 0);
    assert.equal(hub.stats().listeners, 0);
    assert.equal(supabase.getChannels().length, 0);
  } finally {
    for (const hub of hubs) await hub.cleanup();
    for (const client of clients) await client.realtime.disconnect();
    await stop();
    await sql.end();
  }
});

Deno.test("e2e demo: Ana's prospect's webhook is routed to her inbox and topic; Beto sees nothing", async () => {
  const sql = testSql(4);
  const { api, stop } = await startStack();
  const hubs: RealtimeHub[] = [];
  const clients: SupabaseClient<Database>[] = [];
  try {
    // The seed's shape: Ana and Beto in a team, Ana's prospect with a phone written as people write it, and
    // the number's round_robin rule with Beto's turn next (Ana served last): only the prospect gives it to Ana.
    const teamId = await createTeam(sql);
    const [ana, beto] = await executives(api, sql, teamId);
    const phoneNumberId = String(Date.now());
    const local = String(Math.floor(Math.random() * 1e8)).padStart(8, "0");
    const waId = `52155${local}`;
    await sql`insert into wa.phone_numbers (phone_number_id) values (${phoneNumberId})`;
    await sql`insert into wa.routing_rules (phone_number_id, team_id, strategy)
              values (${phoneNumberId}, ${teamId}, 'round_robin')`;
    // The next turn is Beto's (turn n goes to the executive ((n - 1) mod 2) + 1 in id order).
    await sql`select setval(wa.turn_sequence(${teamId})::regclass, case when ${beto!.id}::uuid < ${
      ana!.id
    }::uuid
                                                                          then 2 else 1 end)`;
    const written = `+52 155 ${local.slice(0, 4)} ${local.slice(4)}`;
    await sql`insert into public.prospects (team_id, executive_id, name, phone)
              values (${teamId}, ${ana!.id}, 'Prospecto Demo', ${written})`;

    // Ana signs in; her hub joins her topic and waits for the conversation routed to her.
    const supabase = browserClient(api.url, api.anonKey);
    clients.push(supabase);
    assert.equal(
      (await supabase.auth.signInWithPassword({ email: ana!.email, password: PASSWORD })).error,
      null,
    );
    const hub = createRealtimeHub(supabase);
    hubs.push(hub);
    const topic = `executive:${ana!.id}`;
    const routed = new Promise<ConversationRow>((resolve) => {
      hub.subscribe({ topic, table: "conversations" }, ({ record }) => {
        if (record?.phone_number_id === phoneNumberId && record.assigned_executive_id === ana!.id) {
          resolve(record);
        }
      });
    });
    await within(nextStatus(hub, topic, "SUBSCRIBED"), 10_000, "Ana's join");

    // The prospect writes for the first time: a new conversation, routed in the ingest's transaction.
    await postWebhook(
      api,
      phoneNumberId,
      waId,
      `wamid.demo-${crypto.randomUUID()}`,
      "Hola, ¿siguen abiertos?",
    );
    const conversation = await within(routed, 10_000, "the routed conversation on Ana's topic");
    const conversationId = conversation.id;
    assert.equal(conversation.routed_via, "prospect");

    // In her inbox, hers.
    const inbox = await supabase.rpc("list_conversations", {});
    assert.equal(inbox.error, null);
    const row = inbox.data?.find((entry) => entry.conversation_id === conversationId);
    assert.equal(row?.assigned_executive_id, ana!.id);
    assert.equal(row?.contact_number, waId);
    assert.equal(row?.last_message_text, "Hola, ¿siguen abiertos?");

    // Beto: not in his inbox, and his hub cannot join Ana's topic.
    const intruder = browserClient(api.url, api.anonKey);
    clients.push(intruder);
    assert.equal(
      (await intruder.auth.signInWithPassword({ email: beto!.email, password: PASSWORD })).error,
      null,
    );
    const theirs = await intruder.rpc("list_conversations", {});
    assert.equal(theirs.error, null);
    assert.deepEqual(theirs.data?.filter((entry) => entry.conversation_id === conversationId), []);
    const intruderHub = createRealtimeHub(intruder);
    hubs.push(intruderHub);
    const refused = nextStatus(intruderHub, topic, "CHANNEL_ERROR");
    intruderHub.subscribe({ topic }, () => assert.fail("Beto received Ana's broadcast"));
    await within(refused, 10_000, "the refusal of Beto's join");
    assert.equal(intruderHub.isConnected(topic), false);
  } finally {
    for (const hub of hubs) await hub.cleanup();
    for (const client of clients) await client.realtime.disconnect();
    await stop();
    await sql.end();
  }
});
