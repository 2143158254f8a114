import assert from "node:assert/strict";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { localEnvDefaults } from "../../../local/env.ts";
import { createVerifier, requireServiceRole, requireUser } from "./auth.ts";
import { ConfigError } from "./env.ts";
import { HttpError } from "./http.ts";

const SECRET = "a-test-secret-that-is-long-enough-for-hs256";
// The verifier's clock is the test's: expiry is decided against this instant, never the wall clock.
const NOW = new Date("2026-11-25T12:00:00Z");
const nowSeconds = NOW.getTime() / 1000;
const verify = createVerifier({ JWT_SECRET: SECRET }, () => NOW);
const userId = "9f1f3a52-4a55-4d3e-8f6a-0c1f2b3c4d5e";

/** An HS256 token issued at NOW, expiring `expiresIn` seconds later (null: no exp claim at all). */
function hs256(claims: Record<string, unknown>, secret = SECRET, expiresIn: number | null = 3600) {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" }).setIssuedAt(nowSeconds);
  if (expiresIn !== null) jwt.setExpirationTime(nowSeconds + expiresIn);
  return jwt.sign(new TextEncoder().encode(secret));
}
const user = { sub: userId, role: "authenticated", aud: "authenticated" };

function b64url(value: unknown): string {
  return btoa(JSON.stringify(value)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error) => {
    assert.ok(error instanceof HttpError, `expected HttpError, got ${error}`);
    assert.equal(error.code, code);
    assert.equal(error.status, code.endsWith("_required") ? 403 : 401);
    return true;
  });
}

const withBearer = (token: string) =>
  new Request("http://x/", { headers: { authorization: `Bearer ${token}` } });

Deno.test("accepts a valid HS256 user token and returns its claims", async () => {
  const claims = await verify(await hs256({ ...user, email: "a@b.c" }));
  assert.equal(claims.sub, userId);
  assert.equal(claims.role, "authenticated");
  assert.equal(claims.email, "a@b.c");
});

Deno.test("rejects an expired token; the clock tolerance is 5 s", async () => {
  await rejectsWith(verify(await hs256(user, SECRET, -6)), "token_expired");
  assert.equal((await verify(await hs256(user, SECRET, -4))).sub, userId);
});

Deno.test("rejects a token without exp, whatever its role: no signed token lives forever", async () => {
  await rejectsWith(verify(await hs256(user, SECRET, null)), "invalid_token");
  await rejectsWith(verify(await hs256({ role: "service_role" }, SECRET, null)), "invalid_token");
});

Deno.test("rejects a token signed with another secret", async () => {
  await rejectsWith(
    verify(await hs256({ role: "authenticated" }, "another-secret-that-is-also-long-enough")),
    "invalid_token",
  );
});

Deno.test("rejects alg none, even with valid-looking claims", async () => {
  const exp = nowSeconds + 3600;
  const unsigned = `${b64url({ alg: "none", typ: "JWT" })}.${
    b64url({ sub: userId, role: "service_role", exp })
  }.`;
  await rejectsWith(verify(unsigned), "invalid_token");
});

Deno.test("rejects garbage and tokens without a role", async () => {
  await rejectsWith(verify("not-a-jwt"), "invalid_token");
  await rejectsWith(verify(await hs256({ sub: userId })), "invalid_token");
});

Deno.test("requireUser wants an authenticated role with a uuid sub; requireServiceRole the service role", async () => {
  const token = await hs256(user);
  const service = await hs256({ role: "service_role" });
  assert.equal((await requireUser(withBearer(token), verify)).sub, userId);
  await rejectsWith(requireUser(withBearer(service), verify), "user_required");
  assert.equal((await requireServiceRole(withBearer(service), verify)).role, "service_role");
  await rejectsWith(requireServiceRole(withBearer(token), verify), "service_role_required");
  await rejectsWith(requireUser(new Request("http://x/"), verify), "missing_token");
  await rejectsWith(
    requireUser(new Request("http://x/", { headers: { authorization: `Basic ${token}` } }), verify),
    "missing_token",
  );
});

Deno.test("requireUser wants aud authenticated, as GoTrue issues it", async () => {
  const { aud: _, ...withoutAud } = user;
  await rejectsWith(requireUser(withBearer(await hs256(withoutAud)), verify), "invalid_token");
  await rejectsWith(requireUser(withBearer(await hs256({ ...user, aud: "other" })), verify), "invalid_token");
  const both = await hs256({ ...user, aud: ["other", "authenticated"] });
  assert.equal((await requireUser(withBearer(both), verify)).sub, userId);
});

Deno.test("verifies asymmetric tokens against a JWKS, and HS256 alongside during a key migration", async () => {
  const { privateKey, publicKey } = await generateKeyPair("ES256");
  const jwk = { ...(await exportJWK(publicKey)), kid: "key-1", alg: "ES256", use: "sig" };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => Response.json({ keys: [jwk] }),
  );
  try {
    const both = createVerifier({
      JWT_SECRET: SECRET,
      SUPABASE_JWKS_URL: `http://127.0.0.1:${server.addr.port}/auth/v1/.well-known/jwks.json`,
    }, () => NOW);
    const es256 = await new SignJWT(user)
      .setProtectedHeader({ alg: "ES256", kid: "key-1" }).setExpirationTime(nowSeconds + 3600).sign(
        privateKey,
      );
    assert.equal((await both(es256)).sub, userId);
    assert.equal((await both(await hs256({ role: "anon" }))).role, "anon");
    const { privateKey: otherKey } = await generateKeyPair("ES256");
    const forged = await new SignJWT({ role: "service_role" })
      .setProtectedHeader({ alg: "ES256", kid: "key-1" }).setExpirationTime(nowSeconds + 3600).sign(otherKey);
    await rejectsWith(both(forged), "invalid_token");
    await rejectsWith(verify(es256), "invalid_token");
  } finally {
    await server.shutdown();
  }
});

Deno.test("a verifier with no key source is a configuration error", () => {
  assert.throws(() => createVerifier({}), ConfigError);
});

Deno.test("the local anon and service_role keys are minted from the local JWT secret", async () => {
  const defaults = await localEnvDefaults();
  const local = createVerifier({ JWT_SECRET: defaults.JWT_SECRET }, () => NOW);
  assert.equal((await local(defaults.SUPABASE_ANON_KEY ?? "")).role, "anon");
  assert.equal((await local(defaults.SUPABASE_SERVICE_ROLE_KEY ?? "")).role, "service_role");
});
