// The template sync against the fake Graph API's paged GET /{waba-id}/message_templates, directly and
// through the outbound function as the service role (what pg_cron does) and as an executive (refused).
import assert from "node:assert/strict";
import { startFakeGraph } from "../../../local/fake-graph.ts";
import type { FakeTemplate } from "../../../local/fake-templates.ts";
import { accessToken, createUser } from "../../../local/testing/auth.ts";
import { testDbUrl, testSql } from "../../../local/testing/db.ts";
import { spawnServer } from "../../../local/testing/server.ts";
import { syncTemplates } from "./templates.ts";

const TOKEN = "templates-test-token";

function catalogue(waba: string, count: number): FakeTemplate[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `${waba}${i}`,
    name: `plantilla_${String(i).padStart(3, "0")}`,
    language: i % 2 === 0 ? "es_MX" : "en_US",
    status: "APPROVED",
    category: "MARKETING",
    quality_score: { score: "GREEN" },
    components: [{ type: "BODY", text: "Hola {{1}}, tu pedido {{2}}" }],
  }));
}

Deno.test("template sync follows paging.next over every page, then marks what vanished DELETED", async () => {
  const waba = String(Math.floor(Math.random() * 1e15));
  const templates = { [waba]: catalogue(waba, 250) };
  const graph = await startFakeGraph({ accessToken: TOKEN, templates });
  const sql = testSql(2);
  try {
    const first = await syncTemplates(sql, `${graph.url}/v25.0`, TOKEN, waba, 100);
    assert.deepEqual(first, { waba_id: waba, pages: 3, templates: 250, deleted: 0 });
    const [row] = await sql`select status, quality, category, parameters from wa.message_templates
                            where waba_id = ${waba} and name = 'plantilla_007'`;
    assert.deepEqual(row, {
      status: "APPROVED",
      quality: "GREEN",
      category: "MARKETING",
      parameters: [{ component: "body", name: "1", type: "text" }, {
        component: "body",
        name: "2",
        type: "text",
      }],
    });
    templates[waba] = templates[waba]!.slice(0, 240);
    const second = await syncTemplates(sql, `${graph.url}/v25.0`, TOKEN, waba, 100);
    assert.deepEqual(second, { waba_id: waba, pages: 3, templates: 240, deleted: 10 });
    const [deleted] = await sql`select count(*)::int as n from wa.message_templates
                                where waba_id = ${waba} and status = 'DELETED'`;
    assert.equal(deleted?.n, 10);
  } finally {
    await sql.end();
    await graph.close();
  }
});

Deno.test("POST /outbound/templates/sync: the service role syncs, an executive is refused", async () => {
  const waba = String(Math.floor(Math.random() * 1e15));
  const graph = await startFakeGraph({ accessToken: TOKEN, templates: { [waba]: catalogue(waba, 30) } });
  const sql = testSql(2);
  const server = await spawnServer({
    SUPABASE_DB_URL: testDbUrl(),
    WHATSAPP_API_BASE: `${graph.url}/v25.0`,
    WHATSAPP_ACCESS_TOKEN: TOKEN,
  });
  try {
    const executive = await createUser(sql, {});
    const post = async (token: string) => {
      const res = await fetch(`${server.url}outbound/templates/sync`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ waba_id: waba }),
      });
      return { status: res.status, body: await res.json() };
    };
    assert.equal((await post(await accessToken(executive))).status, 403);
    const synced = await post(await accessToken(executive, { role: "service_role" }));
    assert.equal(synced.status, 200);
    assert.deepEqual(synced.body.accounts, [{ waba_id: waba, pages: 1, templates: 30, deleted: 0 }]);
  } finally {
    await server.stop();
    await sql.end();
    await graph.close();
  }
});
