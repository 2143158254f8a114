// The processor's HTTP entry, as pg_cron + pg_net call it on Supabase: service role only.
import assert from "node:assert/strict";
import { localEnvDefaults } from "../../../local/env.ts";
import { testDbUrl, testSql } from "../../../local/testing/db.ts";
import {
  clearBuffers,
  seedDueBuffers,
  startFakes,
  TEST_ACCESS_TOKEN,
} from "../../../local/testing/processor.ts";
import { spawnServer } from "../../../local/testing/server.ts";

Deno.test("buffer-processor drains due buffers for the service role only", async () => {
  const defaults = await localEnvDefaults();
  const fakes = await startFakes();
  const sql = testSql();
  await clearBuffers(sql);
  const server = await spawnServer({
    SUPABASE_DB_URL: testDbUrl(),
    WHATSAPP_API_BASE: `${fakes.graph.url}/v25.0`,
    WHATSAPP_ACCESS_TOKEN: TEST_ACCESS_TOKEN,
    AGENT_URL: fakes.agent.url,
  });
  const call = (key?: string) =>
    fetch(`${server.url}buffer-processor`, {
      method: "POST",
      headers: key === undefined ? {} : { authorization: `Bearer ${key}` },
    });
  try {
    await seedDueBuffers(sql, 3);
    const anonymous = await call();
    assert.equal(anonymous.status, 401);
    await anonymous.body?.cancel();
    const anon = await call(defaults.SUPABASE_ANON_KEY);
    assert.equal(anon.status, 403);
    assert.equal((await anon.json()).error.code, "service_role_required");
    assert.equal(fakes.agent.requests.length, 0);

    const res = await call(defaults.SUPABASE_SERVICE_ROLE_KEY);
    const summary = await res.json();
    assert.equal(res.status, 200);
    assert.equal(summary.batches, 3);
    assert.deepEqual(summary.outcomes, { replied: 3 });
    assert.equal(fakes.graph.sent.length, 3);
  } finally {
    await server.stop();
    await sql.end();
    await fakes.close();
  }
});
