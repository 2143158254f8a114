// The typed RPC wrappers on a real supabase-js client: the request each one makes, the data it returns, and
// PostgREST errors surfacing as WabaseRpcError.
import assert from "node:assert/strict";
import { WabaseRpcError } from "./errors.ts";
import { rpc } from "./rpc.ts";
import { fakePostgrest, type RpcAnswer } from "./testing/fake-postgrest.ts";

const CONVERSATION = "7f1c2e3d-4b5a-4c6d-8e9f-0a1b2c3d4e5f";

Deno.test("rpc: the batch RPCs send every id in one request and return the rows", async () => {
  const { requests, supabase } = fakePostgrest((fn) =>
    fn === "get_backup_info"
      ? {
        body: [{
          user_id: "u1",
          backup_id: "u2",
          has_backup: true,
          backup_name: "Beto",
          backup_phone: "1",
          phone: "1",
          original_phone: "2",
        }],
      }
      : { body: [{ prospect_id: "p1", executive_id: "u1", handled_as_backup: true }] }
  );
  const rows = await rpc.getBackupInfo(supabase, ["u1", "u3"]);
  assert.deepEqual(rows.map((row) => [row.user_id, row.backup_name]), [["u1", "Beto"]]);
  const flags = await rpc.prospectsHandledAsBackup(supabase, ["p1"]);
  assert.equal(flags[0]?.handled_as_backup, true);
  assert.deepEqual(requests.map(({ fn, args }) => ({ fn, args })), [
    { fn: "get_backup_info", args: { user_ids: ["u1", "u3"] } },
    { fn: "prospects_handled_as_backup", args: { prospect_ids: ["p1"] } },
  ]);
});

Deno.test("rpc: pauseBot sends the end of the pause only when given and returns Postgres's timestamp", async () => {
  const { requests, supabase } = fakePostgrest((_fn, args) => ({ body: args.until ?? "infinity" }));
  assert.equal(await rpc.pauseBot(supabase, CONVERSATION), "infinity");
  assert.equal(await rpc.pauseBot(supabase, CONVERSATION, null), "infinity");
  const until = new Date("2026-03-01T12:00:00Z");
  assert.equal(await rpc.pauseBot(supabase, CONVERSATION, until), "2026-03-01T12:00:00.000Z");
  assert.deepEqual(requests.map((request) => request.args), [
    { conversation_id: CONVERSATION },
    { conversation_id: CONVERSATION },
    { conversation_id: CONVERSATION, until: "2026-03-01T12:00:00.000Z" },
  ]);
  assert.ok(requests.every((request) => request.fn === "pause_bot"));
});

Deno.test("rpc: resumeBot resolves on PostgREST's empty answer", async () => {
  const { requests, supabase } = fakePostgrest(() => ({}));
  assert.equal(await rpc.resumeBot(supabase, CONVERSATION), undefined);
  assert.deepEqual(requests.map(({ fn, args }) => ({ fn, args })), [
    { fn: "resume_bot", args: { conversation_id: CONVERSATION } },
  ]);
});

Deno.test("rpc: refusals throw WabaseRpcError with PostgREST's code, details and hint", async () => {
  const refusal: RpcAnswer = {
    status: 403,
    body: {
      code: "P0403",
      message: `you may not act on conversation ${CONVERSATION}`,
      details: null,
      hint: "forbidden",
    },
  };
  const { supabase } = fakePostgrest(() => refusal);
  for (
    const call of [() => rpc.pauseBot(supabase, CONVERSATION), () => rpc.resumeBot(supabase, CONVERSATION)]
  ) {
    await assert.rejects(call(), (error: unknown) => {
      assert.ok(error instanceof WabaseRpcError);
      assert.equal(error.code, "P0403");
      assert.equal(error.hint, "forbidden");
      assert.equal(error.details, null);
      assert.equal(error.status, 403);
      assert.match(error.message, /you may not act on conversation/);
      return true;
    });
  }
});

Deno.test("rpc: an answer of the wrong shape is an error, not empty data", async () => {
  const { supabase } = fakePostgrest(() => ({ body: { not: "rows" } }));
  await assert.rejects(rpc.getBackupInfo(supabase, ["u1"]), {
    name: "WabaseRpcError",
    code: "unexpected_response",
  });
  await assert.rejects(rpc.pauseBot(supabase, CONVERSATION), { code: "unexpected_response" });
});
