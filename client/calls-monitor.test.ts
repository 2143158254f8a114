// The live call monitor with the real @supabase/supabase-js on the local stack (gateway, real PostgREST,
// Realtime stand-in, the webhook function, the test database): it draws once from live_calls(), then only
// listens. Signed `calls` webhooks (Calling API shapes) make a call connected and end another; each change
// reaches the executive's topic within 1 s; a call Ana answers through answer_call reaches it too; and the
// coordinator of another team, listening to hers, receives her own team's call and never Ana's.
import assert from "node:assert/strict";
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { localEnvDefaults } from "../local/env.ts";
import { startTestApi, type TestApi } from "../local/testing/api.ts";
import { accessToken, createTeam, createUser, type TestUser } from "../local/testing/auth.ts";
import {
  callConnect,
  callsChange,
  callStatus,
  callsWebhook,
  callTerminate,
  newCallId,
} from "../local/testing/call-fixtures.ts";
import { testSql } from "../local/testing/db.ts";
import { signBody } from "../local/testing/whatsapp-fixtures.ts";
import { within } from "../local/testing/within.ts";
import { createRealtimeHub, type RealtimeHub, realtimeOptions, type StatusEvent } from "./realtime-hub.ts";
import type { CallRow, Database, RowChange } from "./types.ts";

const env = await localEnvDefaults();

function joined(hub: RealtimeHub, topic: string): Promise<StatusEvent> {
  return new Promise((resolve) => {
    const off = hub.onStatus((event) => {
      if (event.topic !== topic || event.status !== "SUBSCRIBED") return;
      off();
      resolve(event);
    });
  });
}

async function clientOf(api: TestApi, user: TestUser): Promise<SupabaseClient<Database>> {
  const token = await accessToken(user);
  return createClient<Database>(api.url, api.anonKey, {
    accessToken: () => Promise.resolve(token),
    realtime: realtimeOptions,
  });
}

async function post(api: TestApi, payload: unknown): Promise<void> {
  const body = JSON.stringify(payload);
  const res = await fetch(`${api.url}/functions/v1/whatsapp-webhook`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-hub-signature-256": await signBody(body, env.WHATSAPP_APP_SECRET!),
    },
    body,
  });
  assert.equal(res.status, 200, await res.clone().text());
  await res.body?.cancel();
}

Deno.test("monitor: live_calls() once, then connected and ended calls by broadcast within 1 s; no other team's", async () => {
  const sql = testSql(2);
  const api = await startTestApi();
  const hubs: RealtimeHub[] = [];
  const clients: SupabaseClient<Database>[] = [];
  try {
    // Ana (team A) owns two customers' conversations; Carla coordinates team B, which owns a third.
    const teamA = await createTeam(sql), teamB = await createTeam(sql);
    const ana = await createUser(sql, { role: "executive", teamId: teamA });
    const carla = await createUser(sql, { role: "coordinator", teamId: teamB });
    const number = `${Date.now()}`;
    const digits = () => `52155${String(Math.floor(Math.random() * 1e8)).padStart(8, "0")}`;
    const [first, second, theirs] = [digits(), digits(), digits()];
    await sql`insert into wa.phone_numbers (phone_number_id) values (${number})`;
    const owners: [string, string, string | null][] = [
      [first, teamA, ana.id],
      [second, teamA, ana.id],
      [theirs, teamB, null],
    ];
    for (const [waId, team, owner] of owners) {
      const [contact] = await sql`insert into public.contacts (wa_id) values (${waId}) returning id`;
      await sql`insert into public.conversations (phone_number_id, contact_id, team_id, assigned_executive_id)
                values (${number}, ${contact!.id}, ${team}, ${owner})`;
    }
    const at = Math.floor(Date.now() / 1000);
    const change = (customer: string, items: Parameters<typeof callsChange>[0]) =>
      callsWebhook(callsChange(items, { customer, phoneNumberId: number }));

    // Two calls already in progress when the monitor opens: an outbound one ringing, an inbound one.
    const outbound = newCallId(), inbound = newCallId();
    await post(
      api,
      change(first, { calls: [callConnect(outbound, { customer: first, direction: "outbound", at })] }),
    );
    await post(api, change(second, { calls: [callConnect(inbound, { customer: second, at })] }));

    // Draw once.
    const supabase = await clientOf(api, ana);
    clients.push(supabase);
    const drawn = await supabase.rpc("live_calls", {});
    assert.equal(drawn.error, null);
    assert.deepEqual(drawn.data?.map((row) => row.call_id).sort(), [inbound, outbound].sort());

    // Then only listen.
    const hub = createRealtimeHub(supabase);
    hubs.push(hub);
    const topic = `executive:${ana.id}`;
    const waiting = new Map<string, (change: RowChange<CallRow>) => void>();
    const arrival = (callId: string, state: CallRow["state"]) =>
      new Promise<RowChange<CallRow>>((resolve) => waiting.set(`${callId}:${state}`, resolve));
    hub.subscribe({ topic, table: "calls" }, (change) => {
      const record = change.record as CallRow | null;
      if (record !== null) waiting.get(`${record.call_id}:${record.state}`)?.(change as RowChange<CallRow>);
    });
    const other = await clientOf(api, carla);
    clients.push(other);
    const otherHub = createRealtimeHub(other);
    hubs.push(otherHub);
    const otherTopic = `team:${teamB}`;
    const otherReceived: string[] = [];
    let otherArrived: (() => void) | undefined;
    const theirCall = newCallId();
    const otherDone = new Promise<void>((resolve) => (otherArrived = resolve));
    otherHub.subscribe({ topic: otherTopic, table: "calls" }, (change) => {
      const record = change.record as CallRow | null;
      if (record === null) return;
      otherReceived.push(record.call_id);
      if (record.call_id === theirCall) otherArrived?.();
    });
    await within(Promise.all([joined(hub, topic), joined(otherHub, otherTopic)]), 10_000, "the joins");

    // The customer accepts the business's call: connected, on Ana's topic within 1 s.
    const connected = arrival(outbound, "connected");
    let sentAt = performance.now();
    await post(
      api,
      change(first, { statuses: [callStatus(outbound, "ACCEPTED", { customer: first, at: at + 4 })] }),
    );
    const accepted = await within(connected, 10_000, "the connected call's broadcast");
    let latencyMs = performance.now() - sentAt;
    assert.ok(latencyMs < 1000, `the connected call took ${Math.round(latencyMs)} ms`);
    assert.equal(accepted.operation, "UPDATE");
    assert.equal(accepted.old_record?.state, "ringing");

    // The inbound call ends unanswered: ended (missed), within 1 s.
    const ended = arrival(inbound, "ended");
    sentAt = performance.now();
    await post(
      api,
      change(second, { calls: [callTerminate(inbound, { customer: second, at: at + 30, startedAt: at })] }),
    );
    const end = await within(ended, 10_000, "the ended call's broadcast");
    latencyMs = performance.now() - sentAt;
    assert.ok(latencyMs < 1000, `the ended call took ${Math.round(latencyMs)} ms`);
    assert.equal(end.record?.outcome, "missed");

    // A customer calls again and Ana picks up: her softphone reports it (no webhook does), and it is on the
    // monitor at once.
    const answered = newCallId();
    const ringing = arrival(answered, "ringing");
    await post(api, change(second, { calls: [callConnect(answered, { customer: second, at: at + 35 })] }));
    const rang = await within(ringing, 10_000, "the new call's broadcast");
    const picked = arrival(answered, "connected");
    const pick = await supabase.rpc("answer_call", { call_id: rang.record!.id });
    assert.equal(pick.error, null);
    assert.equal(
      (await within(picked, 10_000, "the answered call's broadcast")).record?.assigned_executive_id,
      ana.id,
    );

    // Team B's call reaches Carla; by then Ana's changes were delivered before it, and none reached her.
    await post(api, change(theirs, { calls: [callConnect(theirCall, { customer: theirs, at: at + 40 })] }));
    await within(otherDone, 10_000, "team B's call on team B's topic");
    assert.deepEqual(otherReceived, [theirCall]);
    const afterwards = await supabase.rpc("live_calls", {});
    assert.deepEqual(afterwards.data?.map((row) => [row.call_id, row.state]), [
      [outbound, "connected"],
      [answered, "connected"],
    ]);
  } finally {
    for (const hub of hubs) await hub.cleanup();
    for (const client of clients) await client.realtime.disconnect();
    await api.close();
    await sql.end();
  }
});
