// Who may read the figures and the reasons, decided from the server's own configuration.
import assert from "node:assert/strict";
import { HttpError } from "../_shared/http.ts";
import { type AccessEnv, isLoopback, isOpen, mayReadDetails, requireDetails } from "./access.ts";

const TOKEN = "a-long-enough-health-token";
const LOCAL = "http://127.0.0.1:54321";
const HOSTED = "https://abcdefghijklmnopqrst.supabase.co";
const env = (changes: Partial<AccessEnv>): AccessEnv => ({ HEALTH_PUBLIC: false, ...changes });
const request = (headers: HeadersInit = {}, query = "") =>
  new Request(`http://x/health/metrics${query}`, { headers });

Deno.test("the local stack is SUPABASE_URL on a loopback address, and nothing else", () => {
  for (const url of [LOCAL, "http://localhost:54321", "http://[::1]:54321", "http://127.1.2.3"]) {
    assert.equal(isLoopback(url), true, url);
  }
  for (
    const url of [HOSTED, "http://kong:8000", "http://127.0.0.1.example.com", "http://10.0.0.1", undefined]
  ) {
    assert.equal(isLoopback(url), false, String(url));
  }
});

Deno.test("open: HEALTH_PUBLIC=true, or the local stack without a token; closed everywhere else", () => {
  assert.equal(isOpen(env({ SUPABASE_URL: LOCAL })), true);
  assert.equal(isOpen(env({ SUPABASE_URL: LOCAL, HEALTH_TOKEN: TOKEN })), false);
  assert.equal(isOpen(env({ SUPABASE_URL: HOSTED })), false);
  assert.equal(isOpen(env({})), false, "no SUPABASE_URL is not the local stack");
  assert.equal(isOpen(env({ SUPABASE_URL: HOSTED, HEALTH_PUBLIC: true })), true);
});

Deno.test("the token opens the details, as a Bearer or ?token=; a closed deployment without one is a 403", async () => {
  const hosted = env({ SUPABASE_URL: HOSTED, HEALTH_TOKEN: TOKEN });
  assert.equal(await mayReadDetails(request({ authorization: `Bearer ${TOKEN}` }), hosted), true);
  assert.equal(await mayReadDetails(request({}, `?token=${TOKEN}`), hosted), true);
  assert.equal(
    await mayReadDetails(request({ authorization: "Bearer not-the-token-at-all" }), hosted),
    false,
  );
  const refusal = async (access: AccessEnv) => {
    try {
      await requireDetails(request(), access);
    } catch (error) {
      assert.ok(error instanceof HttpError);
      return [error.status, error.code];
    }
    return [200];
  };
  assert.deepEqual(await refusal(hosted), [401, "unauthorized"]);
  assert.deepEqual(await refusal(env({ SUPABASE_URL: HOSTED })), [403, "health_token_required"]);
  assert.deepEqual(await refusal(env({ SUPABASE_URL: LOCAL })), [200]);
});
