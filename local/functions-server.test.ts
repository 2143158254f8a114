import assert from "node:assert/strict";
import { createRouter } from "./functions-server.ts";
import { createVerifier } from "../supabase/functions/_shared/auth.ts";
import { subpathOf } from "../supabase/functions/_shared/http.ts";
import { localEnvDefaults } from "./env.ts";
import { testDbUrl } from "./testing/db.ts";
import { runServerToExit, spawnServer } from "./testing/server.ts";

Deno.test("serves each function at /functions/v1/<name>, and 404 for an unknown one", async () => {
  const server = await spawnServer({ SUPABASE_DB_URL: testDbUrl() });
  try {
    const res = await fetch(`${server.url}health`);
    assert.equal(res.status, 200);
    assert.equal((await res.json()).status, "alive");
    const unknownFunction = await fetch(`${server.url}no-such-function`);
    assert.equal(unknownFunction.status, 404);
    assert.equal((await unknownFunction.json()).error.code, "function_not_found");
  } finally {
    await server.stop();
  }
});

Deno.test("the server refuses to start when a function's env is malformed, naming the variable", async () => {
  const output = await runServerToExit({ SUPABASE_DB_URL: "not-a-url" });
  assert.equal(output.code, 1);
  assert.match(
    new TextDecoder().decode(output.stderr),
    /health: SUPABASE_DB_URL must be a postgres:\/\/ connection URL/,
  );
});

Deno.test("like the gateway, verify_jwt functions need a valid JWT of any role; others pass through", async () => {
  const defaults = await localEnvDefaults();
  const seen: string[] = [];
  const echo = (req: Request) => {
    seen.push(new URL(req.url).pathname);
    return Response.json({ ok: true });
  };
  const router = createRouter([
    { name: "guarded", handler: echo, verifyJwt: true },
    { name: "open", handler: echo, verifyJwt: false },
  ], createVerifier({ JWT_SECRET: defaults.JWT_SECRET }));
  const call = (path: string, init: RequestInit = {}) =>
    router(new Request(`http://x/functions/v1/${path}`, init));

  const missing = await call("guarded");
  assert.equal(missing.status, 401);
  assert.equal((await missing.json()).error.code, "missing_token");
  const forged = await call("guarded", { headers: { authorization: "Bearer a.b.c" } });
  assert.equal(forged.status, 401);
  const anon = await call("guarded/sub/path", {
    headers: { authorization: `Bearer ${defaults.SUPABASE_ANON_KEY}` },
  });
  assert.equal(anon.status, 200);
  assert.equal((await call("guarded", { method: "OPTIONS" })).status, 200);
  assert.equal((await call("open")).status, 200);
  // Passed on unchanged; each function finds its subpath below /functions/v1/<name>.
  assert.deepEqual(seen, ["/functions/v1/guarded/sub/path", "/functions/v1/guarded", "/functions/v1/open"]);
  assert.deepEqual(seen.map((path) => subpathOf(new URL(path, "http://x"), path.split("/")[3]!)), [
    "/sub/path",
    "/",
    "/",
  ]);
});
