// Operators see media, with the real @supabase/supabase-js against the local stack's API (gateway, PostgREST,
// Auth and the Storage stand-in deciding by the RLS policies on storage.objects): photos from Ana's and Beto's
// customers are fetched into whatsapp-media; Ana reads her message's media state and path and gets a signed URL
// for her conversation's photo, which serves its bytes; she is refused one for Beto's.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createClient } from "@supabase/supabase-js";
import { startFakeGraph } from "../local/fake-graph.ts";
import { startTestApi } from "../local/testing/api.ts";
import { createTeam } from "../local/testing/auth.ts";
import { testDbUrl, testSql } from "../local/testing/db.ts";
import { freshPhoneNumberId, MEDIA_TEST_TOKEN, mediaWebhook } from "../local/testing/media.ts";
import { parseEnv } from "../supabase/functions/_shared/env.ts";
import { fetcherEnv } from "../supabase/functions/media-fetcher/config.ts";
import { createFetcher } from "../supabase/functions/media-fetcher/fetcher.ts";
import type { Database } from "./types.ts";

const PASSWORD = "media-password-123";

Deno.test("supabase-js: an executive gets a signed URL for her conversation's photo, not for another's", async () => {
  const graph = await startFakeGraph({ accessToken: MEDIA_TEST_TOKEN });
  const api = await startTestApi({ functions: () => new Response("no functions here", { status: 404 }) });
  const sql = testSql();
  try {
    const admin = createClient<Database>(api.url, api.serviceRoleKey, {
      auth: { persistSession: false, autoRefreshToken: false },
    });
    const teamId = await createTeam(sql);
    const [ana, beto] = await Promise.all(["ana", "beto"].map(async (name) => {
      const email = `${name}-${crypto.randomUUID().slice(0, 8)}@media.wabase.test`;
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
    // Each customer is a prospect of one of them, so routing gives each conversation to its executive.
    const phoneNumberId = freshPhoneNumberId();
    const customers = ["1", "2"].map((n) => `52155180${phoneNumberId.slice(-4)}${n}`);
    await sql`insert into public.prospects (team_id, executive_id, name, phone)
              values (${teamId}, ${ana!.id}, 'Cliente Ana', ${"+" + customers[0]}),
                     (${teamId}, ${beto!.id}, 'Cliente Beto', ${"+" + customers[1]})`;
    const deliveries = customers.map((from) => mediaWebhook([{ type: "image" }], { phoneNumberId, from }));
    for (const { payload } of deliveries) {
      await sql`select wa.ingest_webhook(${JSON.stringify(payload)}::text::jsonb)`;
    }
    const env = parseEnv(fetcherEnv, {
      SUPABASE_DB_URL: testDbUrl(),
      SUPABASE_URL: api.url,
      SUPABASE_SERVICE_ROLE_KEY: api.serviceRoleKey,
      WHATSAPP_API_BASE: `${graph.url}/v25.0`,
      WHATSAPP_ACCESS_TOKEN: MEDIA_TEST_TOKEN,
    });
    await createFetcher(env, sql, "media-e2e").drain();

    const supabase = createClient<Database>(api.url, api.anonKey, {
      auth: { persistSession: false, autoRefreshToken: false },
    });
    assert.equal(
      (await supabase.auth.signInWithPassword({ email: ana!.email, password: PASSWORD })).error,
      null,
    );
    const { data: rows, error } = await supabase.from("messages").select("wamid, media_state, media_path")
      .not("media_path", "is", null);
    assert.equal(error, null);
    assert.equal(rows!.length, 1, "she reads only her conversation's message");
    const mine = rows![0]!;
    assert.equal(mine.wamid, deliveries[0]!.wamids[0]);
    assert.equal(mine.media_state, "stored");

    const signed = await supabase.storage.from("whatsapp-media").createSignedUrl(mine.media_path!, 60);
    assert.equal(signed.error, null);
    const res = await fetch(signed.data!.signedUrl);
    assert.equal(res.status, 200);
    const digest = createHash("sha256").update(new Uint8Array(await res.arrayBuffer())).digest("hex");
    assert.equal(digest, (await graph.media.describe(deliveries[0]!.mediaIds[0]!)).sha256);

    const [theirs] = await sql<{ media_path: string }[]>`
      select media_path from public.messages where wamid = ${deliveries[1]!.wamids[0]!}`;
    const refused = await supabase.storage.from("whatsapp-media").createSignedUrl(theirs!.media_path, 60);
    assert.equal(refused.data, null);
    assert.match(String(refused.error?.message), /not found/i, "as Storage answers an object RLS hides");
    await supabase.auth.signOut();
  } finally {
    await sql.end();
    await api.close();
    await graph.close();
  }
});
