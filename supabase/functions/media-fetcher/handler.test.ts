// The fetcher's HTTP entry, as pg_cron + pg_net call it on Supabase: service role only.
import assert from "node:assert/strict";
import { localEnvDefaults } from "../../../local/env.ts";
import { testDbUrl, testSql } from "../../../local/testing/db.ts";
import { clearMedia, MEDIA_TEST_TOKEN, mediaWebhook, startMediaRig } from "../../../local/testing/media.ts";
import { spawnServer } from "../../../local/testing/server.ts";

Deno.test("media-fetcher stores due media for the service role only", async () => {
  const defaults = await localEnvDefaults();
  const rig = await startMediaRig();
  const sql = testSql();
  const server = await spawnServer({
    SUPABASE_DB_URL: testDbUrl(),
    SUPABASE_URL: rig.supabaseUrl,
    WHATSAPP_API_BASE: `${rig.graph.url}/v25.0`,
    WHATSAPP_ACCESS_TOKEN: MEDIA_TEST_TOKEN,
  });
  const call = (key?: string) =>
    fetch(`${server.url}media-fetcher`, {
      method: "POST",
      headers: key === undefined ? {} : { authorization: `Bearer ${key}` },
    });
  try {
    await clearMedia(sql);
    const { payload, mediaIds } = mediaWebhook([{ type: "image" }, {
      type: "sticker",
      mimeType: "image/webp",
    }]);
    // A static sticker: WebP under 100 KB.
    await rig.graph.media.register(mediaIds[1]!, { mimeType: "image/webp", size: 30_000 });
    await sql`select wa.ingest_webhook(${JSON.stringify(payload)}::text::jsonb)`;
    const anonymous = await call();
    assert.equal(anonymous.status, 401);
    await anonymous.body?.cancel();
    const anon = await call(defaults.SUPABASE_ANON_KEY);
    assert.equal(anon.status, 403);
    assert.equal((await anon.json()).error.code, "service_role_required");
    assert.equal(rig.graph.received.length, 0);

    const res = await call(defaults.SUPABASE_SERVICE_ROLE_KEY);
    const summary = await res.json();
    assert.equal(res.status, 200);
    assert.equal(summary.jobs, 2);
    assert.deepEqual(summary.outcomes, { stored: 2 });
  } finally {
    await server.stop();
    await sql.end();
    await rig.close();
  }
});
