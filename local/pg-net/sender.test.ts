// The pg_net stand-in's sender: only committed requests leave, each once, and answers are recorded as
// pg_net records them (status, content, timeouts).
import assert from "node:assert/strict";
import { testDbUrl, testSql } from "../testing/db.ts";
import { startNetSender } from "./sender.ts";

Deno.test("pg_net stand-in: committed requests are sent once with their body and headers, rolled-back ones never; answers and timeouts are recorded", async () => {
  const received: { path: string; body: string; auth: string | null }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const path = new URL(req.url).pathname;
    received.push({ path, body: await req.text(), auth: req.headers.get("authorization") });
    if (path === "/slow") await new Promise((resolve) => setTimeout(resolve, 2_000));
    return Response.json({ ok: path }, { status: path === "/missing" ? 404 : 200 });
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  const sql = testSql(2);
  await sql`delete from net.http_request_queue`;
  const sender = await startNetSender(testDbUrl());
  try {
    const ids = await sql.begin(async (tx) => {
      const [a] = await tx<{ id: string }[]>`
        select net.http_post(${`${base}/a`}, '{"x": 1}', headers := '{"Authorization": "Bearer k"}')::text as id`;
      const [b] = await tx<{ id: string }[]>`select net.http_get(${`${base}/missing`})::text as id`;
      const [c] = await tx<{ id: string }[]>`
        select net.http_post(${`${base}/slow`}, '{}', timeout_milliseconds := 200)::text as id`;
      // Not visible to the sender until commit: nothing may have left yet.
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(received.length, 0);
      return [a!.id, b!.id, c!.id];
    });
    await sql.begin(async (tx) => {
      await tx`select net.http_post(${`${base}/rolled-back`}, '{}')`;
      throw new Error("roll back");
    }).catch(() => {});
    const responses = async () =>
      await sql<
        { id: string; status_code: number | null; content: string | null; timed_out: boolean | null }[]
      >`
        select id::text, status_code, content, timed_out from net._http_response
        where id = any(${ids}::bigint[]) order by id`;
    for (let i = 0; i < 100 && (await responses()).length < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const answers = await responses();
    assert.deepEqual(answers.map((r) => [r.status_code, r.timed_out]), [[200, false], [404, false], [
      null,
      true,
    ]]);
    assert.equal(answers[0]!.content, JSON.stringify({ ok: "/a" }));
    const first = received.find((r) => r.path === "/a");
    assert.deepEqual(first, { path: "/a", body: '{"x": 1}', auth: "Bearer k" });
    assert.equal(received.filter((r) => r.path === "/rolled-back").length, 0);
    assert.equal(sender.sent, 3);
  } finally {
    await sender.stop();
    await sql.end();
    await server.shutdown();
  }
});
