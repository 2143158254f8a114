// The typed RPC wrappers on a real supabase-js client against the real PostgREST of the local stack: the
// request each one makes, the data the database answers, and PostgREST's refusals surfacing as
// WabaseRpcError.
import assert from "node:assert/strict";
import { createClient } from "@supabase/supabase-js";
import { startTestApi, type TestApi } from "../local/testing/api.ts";
import { testSql } from "../local/testing/db.ts";
import { WabaseRpcError } from "./errors.ts";
import { rpc } from "./rpc.ts";
import { teamFixture } from "./testing/fixtures.ts";
import { recordingClient } from "./testing/postgrest.ts";
import type { Database } from "./types.ts";

async function withApi(fn: (api: TestApi) => Promise<void>) {
  const api = await startTestApi({ functions: () => new Response(null, { status: 404 }) });
  try {
    await fn(api);
  } finally {
    await api.close();
  }
}

async function fixture() {
  const sql = testSql(1);
  try {
    return await teamFixture(sql);
  } finally {
    await sql.end();
  }
}

Deno.test("rpc: the batch RPCs send every id in one request and return the rows", async () => {
  const team = await fixture();
  await withApi(async (api) => {
    const { requests, supabase } = recordingClient(api, () => team.tokens.beto);
    const unknown = crypto.randomUUID();
    const rows = await rpc.getBackupInfo(supabase, [team.ana.id, unknown, team.beto.id]);
    assert.deepEqual(rows.map((row) => [row.user_id, row.has_backup, row.backup_phone]), [
      [team.ana.id, true, "5215500000002"],
      [team.beto.id, false, null],
    ]);
    assert.equal(rows[0]!.original_phone, "5215500000001");
    const flags = await rpc.prospectsHandledAsBackup(supabase, [team.anaProspect, team.betoProspect]);
    assert.deepEqual(flags.map((flag) => [flag.prospect_id, flag.handled_as_backup]), [
      [team.anaProspect, true],
      [team.betoProspect, false],
    ]);
    assert.deepEqual(requests.map(({ fn, args }) => ({ fn, args })), [
      { fn: "get_backup_info", args: { user_ids: [team.ana.id, unknown, team.beto.id] } },
      { fn: "prospects_handled_as_backup", args: { prospect_ids: [team.anaProspect, team.betoProspect] } },
    ]);
    assert.equal(requests[0]!.headers.get("authorization"), `Bearer ${team.tokens.beto}`);
  });
});

Deno.test("rpc: pauseBot sends the end of the pause only when given and returns Postgres's timestamp", async () => {
  const team = await fixture();
  await withApi(async (api) => {
    const { requests, supabase } = recordingClient(api, () => team.tokens.ana);
    assert.equal(await rpc.pauseBot(supabase, team.anaConversation), "infinity");
    assert.equal(await rpc.pauseBot(supabase, team.anaConversation, null), "infinity");
    const until = new Date("2099-03-01T12:00:00Z");
    assert.equal(await rpc.pauseBot(supabase, team.anaConversation, until), "2099-03-01T12:00:00+00:00");
    assert.deepEqual(requests.map((request) => request.args), [
      { conversation_id: team.anaConversation },
      { conversation_id: team.anaConversation },
      { conversation_id: team.anaConversation, until: "2099-03-01T12:00:00.000Z" },
    ]);
    assert.ok(requests.every((request) => request.fn === "pause_bot"));
  });
});

Deno.test("rpc: resumeBot resolves on PostgREST's empty answer", async () => {
  const team = await fixture();
  await withApi(async (api) => {
    const { requests, supabase } = recordingClient(api, () => team.tokens.ana);
    await rpc.pauseBot(supabase, team.anaConversation);
    assert.equal(await rpc.resumeBot(supabase, team.anaConversation), undefined);
    assert.deepEqual(requests.map(({ fn }) => fn), ["pause_bot", "resume_bot"]);
    const sql = testSql(1);
    try {
      const [row] =
        await sql`select bot_paused_until from public.conversations where id = ${team.anaConversation}`;
      assert.equal(row!.bot_paused_until, null);
    } finally {
      await sql.end();
    }
  });
});

Deno.test("rpc: refusals throw WabaseRpcError with PostgREST's status, code and hint", async () => {
  const team = await fixture();
  await withApi(async (api) => {
    // Beto backs Ana up, not the other way round: Ana may not act on Beto's conversation.
    const ana = recordingClient(api, () => team.tokens.ana).supabase;
    for (
      const call of [
        () => rpc.pauseBot(ana, team.betoConversation),
        () => rpc.resumeBot(ana, team.betoConversation),
      ]
    ) {
      await assert.rejects(call(), (error: unknown) => {
        assert.ok(error instanceof WabaseRpcError);
        assert.equal(error.code, "PT403");
        assert.equal(error.hint, "forbidden");
        // PostgREST answers SQLSTATE PTnnn with HTTP status nnn.
        assert.equal(error.status, 403);
        assert.match(error.message, /you may not act on conversation/);
        return true;
      });
    }
    const signedOut = recordingClient(api, () => null).supabase;
    await assert.rejects(rpc.getBackupInfo(signedOut, [team.ana.id]), (error: unknown) => {
      assert.ok(error instanceof WabaseRpcError);
      assert.equal(error.code, "42501");
      assert.equal(error.status, 401);
      assert.equal(error.fn, "get_backup_info");
      return true;
    });
  });
});

Deno.test("rpc: an answer of the wrong shape (a misbehaving proxy) is an error, not empty data", async () => {
  const proxy = createClient<Database>("http://proxy.test", "anon-key", {
    accessToken: () => Promise.resolve("user-jwt"),
    global: { fetch: () => Promise.resolve(Response.json({ not: "rows" })) },
  });
  await assert.rejects(rpc.getBackupInfo(proxy, ["u1"]), {
    name: "WabaseRpcError",
    code: "unexpected_response",
  });
  await assert.rejects(rpc.pauseBot(proxy, crypto.randomUUID()), { code: "unexpected_response" });
});
