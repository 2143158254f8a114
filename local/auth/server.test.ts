// The Auth stand-in as supabase-js's auth client uses it through the gateway: admin user management with the
// service key, password sign-in with GoTrue's claims, refresh-token rotation, get user, sign-out, and GoTrue's
// error bodies. The clock-dependent rules (expiry, the refresh token reuse interval) run on an injected clock.
import assert from "node:assert/strict";
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { decodeJwt } from "jose";
import { localEnvDefaults } from "../env.ts";
import { startTestApi, type TestApi } from "../testing/api.ts";
import { testDbUrl, testSql } from "../testing/db.ts";
import { createAuthServer } from "./server.ts";

const env = await localEnvDefaults();
const noStorage = { auth: { persistSession: false, autoRefreshToken: false } } as const;

async function withApi(fn: (api: TestApi, admin: SupabaseClient) => Promise<void>) {
  const api = await startTestApi({ functions: () => new Response(null, { status: 404 }) });
  try {
    await fn(api, createClient(api.url, api.serviceRoleKey, noStorage));
  } finally {
    await api.close();
  }
}

function email(): string {
  return `${crypto.randomUUID().slice(0, 8)}@auth.wabase.test`;
}

Deno.test("auth: a user created with the service key signs in and gets GoTrue's claims", async () => {
  await withApi(async (api, admin) => {
    const address = email();
    const created = await admin.auth.admin.createUser({
      email: address,
      password: "correct horse",
      email_confirm: true,
      user_metadata: { full_name: "Ana" },
    });
    assert.equal(created.error, null);
    const user = created.data.user!;
    assert.equal(user.email, address);
    assert.deepEqual(user.app_metadata, { provider: "email", providers: ["email"] });
    assert.equal(user.identities?.[0]?.provider, "email");

    const sql = testSql(1);
    try {
      const [row] = await sql`select encrypted_password from auth.users where id = ${user.id}`;
      assert.match(row!.encrypted_password, /^\$2a\$10\$/, "bcrypt at cost 10, as GoTrue stores it");
      const [profile] = await sql`select role from public.profiles where id = ${user.id}`;
      assert.equal(profile!.role, "executive", "the auth.users trigger made its profile");
    } finally {
      await sql.end();
    }

    const client = createClient(api.url, api.anonKey, noStorage);
    const { data, error } = await client.auth.signInWithPassword({
      email: address,
      password: "correct horse",
    });
    assert.equal(error, null);
    const claims = decodeJwt(data.session!.access_token);
    assert.equal(claims.sub, user.id);
    assert.equal(claims.role, "authenticated");
    assert.equal(claims.aud, "authenticated");
    assert.equal(claims.email, address);
    assert.equal(claims.aal, "aal1");
    assert.equal(claims.iss, `${api.url}/auth/v1`);
    assert.equal(claims.exp! - claims.iat!, 3600);
    assert.match(String(claims.session_id), /^[0-9a-f-]{36}$/);
    assert.deepEqual(claims.user_metadata, { full_name: "Ana" });
    assert.equal(data.session!.expires_in, 3600);
    assert.equal(data.user!.id, user.id);

    const me = await client.auth.getUser();
    assert.equal(me.data.user?.id, user.id);
    assert.ok(me.data.user?.last_sign_in_at);
  });
});

Deno.test("auth: a wrong password is 400 invalid_credentials, in both of GoTrue's error formats", async () => {
  await withApi(async (api, admin) => {
    const address = email();
    await admin.auth.admin.createUser({ email: address, password: "right-password", email_confirm: true });
    const client = createClient(api.url, api.anonKey, noStorage);
    const { error } = await client.auth.signInWithPassword({ email: address, password: "wrong-password" });
    assert.equal(error?.status, 400);
    assert.equal(error?.code, "invalid_credentials");
    assert.equal(error?.message, "Invalid login credentials");

    const raw = (version?: string) =>
      fetch(`${api.url}/auth/v1/token?grant_type=password`, {
        method: "POST",
        headers: {
          apikey: api.anonKey,
          "content-type": "application/json",
          ...(version === undefined ? {} : { "x-supabase-api-version": version }),
        },
        body: JSON.stringify({ email: "nobody@auth.wabase.test", password: "x" }),
      });
    const legacy = await raw();
    assert.equal(legacy.status, 400);
    assert.equal(legacy.headers.get("x-sb-error-code"), "invalid_credentials");
    assert.deepEqual(await legacy.json(), {
      code: 400,
      error_code: "invalid_credentials",
      msg: "Invalid login credentials",
    });
    const dated = await raw("2024-01-01");
    assert.deepEqual(await dated.json(), {
      code: "invalid_credentials",
      message: "Invalid login credentials",
    });

    const unconfirmed = email();
    await admin.auth.admin.createUser({ email: unconfirmed, password: "right-password" });
    const notYet = await client.auth.signInWithPassword({ email: unconfirmed, password: "right-password" });
    assert.equal(notYet.error?.code, "email_not_confirmed");
  });
});

Deno.test("auth: refresh rotates the token, sign-out ends the session", async () => {
  await withApi(async (api, admin) => {
    const address = email();
    await admin.auth.admin.createUser({ email: address, password: "pw-123456", email_confirm: true });
    const client = createClient(api.url, api.anonKey, noStorage);
    const first = (await client.auth.signInWithPassword({ email: address, password: "pw-123456" })).data
      .session!;
    const refreshed = await client.auth.refreshSession({ refresh_token: first.refresh_token });
    assert.equal(refreshed.error, null);
    const second = refreshed.data.session!;
    assert.notEqual(second.refresh_token, first.refresh_token);
    assert.equal(decodeJwt(second.access_token).session_id, decodeJwt(first.access_token).session_id);

    assert.equal((await client.auth.signOut()).error, null);
    const afterSignOut = await client.auth.refreshSession({ refresh_token: second.refresh_token });
    assert.equal(afterSignOut.error?.code, "refresh_token_not_found");
    const stale = await fetch(`${api.url}/auth/v1/user`, {
      headers: { apikey: api.anonKey, authorization: `Bearer ${second.access_token}` },
    });
    assert.equal(stale.status, 403, "the access token names a session that no longer exists");
    assert.equal(stale.headers.get("x-sb-error-code"), "session_not_found");
    await stale.body?.cancel();
  });
});

Deno.test("auth: admin list and delete need the service role", async () => {
  await withApi(async (api, admin) => {
    const created = await Promise.all(
      [email(), email(), email()].map((address) => admin.auth.admin.createUser({ email: address })),
    );
    const ids = created.map((result) => result.data.user!.id);
    const page = await admin.auth.admin.listUsers({ page: 1, perPage: 2 });
    assert.equal(page.error, null);
    assert.equal(page.data.users.length, 2);
    assert.ok((page.data as { total: number }).total >= 3);
    assert.equal((page.data as { nextPage: number | null }).nextPage, 2);

    const deleted = await admin.auth.admin.deleteUser(ids[0]!);
    assert.equal(deleted.error, null);
    const gone = await admin.auth.admin.getUserById(ids[0]!);
    assert.equal(gone.error?.status, 404);
    assert.equal((await admin.auth.admin.getUserById(ids[1]!)).data.user?.id, ids[1]);

    const asAnon = createClient(api.url, api.anonKey, noStorage);
    const refused = await asAnon.auth.admin.listUsers();
    assert.equal(refused.error?.status, 403);
    assert.equal(refused.error?.code, "not_admin");
    const unsigned = await fetch(`${api.url}/auth/v1/admin/users`, { headers: { apikey: api.anonKey } });
    assert.equal(unsigned.status, 403, "the gateway turns the bare apikey into the anon bearer");
    await unsigned.body?.cancel();
    const other = await fetch(`${api.url}/auth/v1/signup`, {
      method: "POST",
      headers: { apikey: api.anonKey },
    });
    assert.equal(other.status, 501);
    assert.equal(other.headers.get("x-sb-error-code"), "not_implemented");
    await other.body?.cancel();
  });
});

Deno.test("auth: tokens expire and a reused refresh token is honoured only within GoTrue's 10 s", async () => {
  let clock = new Date("2026-03-01T12:00:00Z");
  const server = createAuthServer({ dbUrl: testDbUrl(), jwtSecret: env.JWT_SECRET!, now: () => clock });
  const admin = createClient("http://auth.test", env.SUPABASE_SERVICE_ROLE_KEY!, {
    ...noStorage,
    global: { fetch: (input, init) => server.handle(new Request(input, init)) },
  });
  try {
    const address = email();
    await admin.auth.admin.createUser({ email: address, password: "pw-123456", email_confirm: true });
    const token = (grant: string, body: object) =>
      server.handle(
        new Request(`http://auth.test/auth/v1/token?grant_type=${grant}`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-supabase-api-version": "2024-01-01" },
          body: JSON.stringify(body),
        }),
      );
    const session = await (await token("password", { email: address, password: "pw-123456" })).json();
    assert.equal(session.expires_at, clock.getTime() / 1000 + 3600);

    const rotated = await (await token("refresh_token", { refresh_token: session.refresh_token })).json();
    clock = new Date(clock.getTime() + 9_000);
    const again = await (await token("refresh_token", { refresh_token: session.refresh_token })).json();
    assert.equal(again.refresh_token, rotated.refresh_token, "within the interval: the current token again");

    clock = new Date(clock.getTime() + 2_000);
    const reused = await token("refresh_token", { refresh_token: session.refresh_token });
    assert.equal(reused.status, 400);
    assert.equal((await reused.json()).code, "refresh_token_already_used");
    const family = await token("refresh_token", { refresh_token: rotated.refresh_token });
    assert.equal((await family.json()).code, "refresh_token_not_found", "reuse ended the whole session");

    const fresh = await (await token("password", { email: address, password: "pw-123456" })).json();
    const user = (at: Date) => {
      clock = at;
      return server.handle(
        new Request("http://auth.test/auth/v1/user", {
          headers: { authorization: `Bearer ${fresh.access_token}` },
        }),
      );
    };
    assert.equal((await user(new Date(fresh.expires_at * 1000 - 1000))).status, 200);
    const expired = await user(new Date(fresh.expires_at * 1000 + 1000));
    assert.equal(expired.status, 403);
    assert.equal(expired.headers.get("x-sb-error-code"), "bad_jwt");
    await expired.body?.cancel();
  } finally {
    await server.close();
  }
});

Deno.test("auth: the seeded demo users sign in with WABASE_DEMO_PASSWORD of supabase/.env.local", async () => {
  const sql = testSql(1);
  try {
    const seed = await Deno.readTextFile(new URL("../../supabase/seed.sql", import.meta.url));
    // Applied inside a transaction that is rolled back, so no other test sees the demo data.
    const rollBack = new Error("roll back the seed");
    await assert.rejects(
      sql.begin(async (tx) => {
        await tx.unsafe(seed);
        const rows = await tx<{ email: string; ok: boolean }[]>`
          select email, encrypted_password = extensions.crypt(${env
          .WABASE_DEMO_PASSWORD!}, encrypted_password) as ok
          from auth.users where email like '%@demo.wabase.local' order by email`;
        assert.deepEqual(rows.map((row) => row.email), [
          "admin@demo.wabase.local",
          "ana@demo.wabase.local",
          "beto@demo.wabase.local",
          "coordinacion@demo.wabase.local",
        ]);
        assert.ok(rows.every((row) => row.ok), "every demo user's hash matches the documented password");
        throw rollBack;
      }),
      (error) => error === rollBack,
    );
  } finally {
    await sql.end();
  }
});
