// The admin proxy end to end: the real functions server, the test database, GoTrue-shaped tokens.
import assert from "node:assert/strict";
import { accessToken, createTeam, createUser, type TestUser } from "../../../local/testing/auth.ts";
import { testDbUrl, testSql } from "../../../local/testing/db.ts";
import { spawnServer } from "../../../local/testing/server.ts";

type Sql = ReturnType<typeof testSql>;
// deno-lint-ignore no-explicit-any -- response bodies are asserted field by field
type Reply = { status: number; body: any; headers: Headers };
type Call = (user: TestUser | string | null, body: unknown) => Promise<Reply>;

/** Runs `fn` with a server, a database connection, and a fresh team with a coordinator and two executives. */
function proxyTest(name: string, fn: (ctx: { call: Call; sql: Sql; team: Team }) => Promise<void>) {
  Deno.test(name, async () => {
    const server = await spawnServer({ SUPABASE_DB_URL: testDbUrl() });
    const sql = testSql(25);
    const call: Call = async (user, body) => {
      const token = user === null ? null : typeof user === "string" ? user : await accessToken(user);
      const res = await fetch(`${server.url}auth-admin-proxy`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(token === null ? {} : { authorization: `Bearer ${token}` }),
        },
        body: typeof body === "string" ? body : JSON.stringify(body),
      });
      return { status: res.status, body: await res.json(), headers: res.headers };
    };
    try {
      const teamId = await createTeam(sql);
      const team = {
        id: teamId,
        coordinator: await createUser(sql, { role: "coordinator", teamId, phone: "+5215500000100" }),
        e1: await createUser(sql, { teamId, phone: "+5215500000101" }),
        e2: await createUser(sql, { teamId, phone: "+5215500000102" }),
      };
      await fn({ call, sql, team });
    } finally {
      await sql.end();
      await server.stop();
    }
  });
}
interface Team {
  id: string;
  coordinator: TestUser;
  e1: TestUser;
  e2: TestUser;
}

proxyTest(
  "an executive assigns their own backup: phone routed, original kept, audited",
  async ({ call, sql, team }) => {
    const res = await call(team.e1, {
      action: "assign_backup",
      executive_id: team.e1.id,
      backup_id: team.e2.id,
    });
    assert.equal(res.status, 200);
    assert.equal(res.body.profile.phone, "+5215500000102");
    assert.equal(res.body.profile.original_phone, "+5215500000101");
    const [audit] = await sql`select actor_id, action from wa.profile_audit where target_id = ${team.e1.id}`;
    assert.deepEqual(audit, { actor_id: team.e1.id, action: "assign_backup" });
  },
);

proxyTest(
  "20 concurrent assigns of the same backup: one audit change, original phone intact",
  async ({ call, sql, team }) => {
    const body = { action: "assign_backup", executive_id: team.e1.id, backup_id: team.e2.id };
    const replies = await Promise.all(Array.from({ length: 20 }, () => call(team.coordinator, body)));
    assert.ok(replies.every((reply) => reply.status === 200 || reply.status === 429));
    assert.ok(replies.filter((reply) => reply.status === 200).length >= 10);
    const [row] = await sql`select p.phone, p.original_phone, p.backup_id,
                                 (select count(*)::int from wa.profile_audit a where a.target_id = p.id) as audits
                          from public.profiles p where p.id = ${team.e1.id}`;
    assert.deepEqual(row, {
      phone: "+5215500000102",
      original_phone: "+5215500000101",
      backup_id: team.e2.id,
      audits: 1,
    });
  },
);

proxyTest("every refusal has its status and code", async ({ call, sql, team }) => {
  const other = await createUser(sql, { role: "coordinator", teamId: await createTeam(sql) });
  const cases: [TestUser | string | null, unknown, number, string][] = [
    [null, { action: "remove_backup", executive_id: team.e1.id }, 401, "missing_token"],
    [team.e1, "{not json", 400, "invalid_json"],
    [team.e1, { action: "assign_backup", executive_id: "nope" }, 400, "invalid_request"],
    [team.e1, { action: "fly" }, 400, "invalid_request"],
    [team.e1, { action: "update_profile", user_id: team.e1.id }, 400, "invalid_request"],
    [
      team.e1,
      { action: "assign_backup", executive_id: team.e1.id, backup_id: team.e1.id },
      409,
      "self_backup",
    ],
    [team.e1, { action: "assign_backup", executive_id: team.e2.id, backup_id: team.e1.id }, 403, "forbidden"],
    [other, { action: "remove_backup", executive_id: team.e1.id }, 403, "forbidden"],
    [team.e1, { action: "update_profile", user_id: team.e1.id, role: "admin" }, 403, "forbidden_field"],
    [team.coordinator, { action: "remove_backup", executive_id: crypto.randomUUID() }, 404, "user_not_found"],
  ];
  for (const [user, body, status, code] of cases) {
    const res = await call(user, body);
    assert.equal(res.status, status, `${JSON.stringify(body)} → ${JSON.stringify(res.body)}`);
    assert.equal(res.body.error.code, code);
  }
  const invalid = await call(team.e1, { action: "assign_backup", executive_id: "nope" });
  assert.deepEqual(invalid.body.error.details.map((d: { path: string }) => d.path).sort(), [
    "backup_id",
    "executive_id",
  ]);
});

proxyTest(
  "forged, expired and wrongly signed tokens get 401 and change nothing",
  async ({ call, sql, team }) => {
    const body = { action: "update_profile", user_id: team.e1.id, full_name: "Hacked" };
    const tokens = [
      await accessToken(team.e1, { expiresIn: -60 }),
      await accessToken(team.e1, { secret: "a-different-secret-that-is-long-enough-to-sign" }),
      (await accessToken(team.e1)).replace(/\.[^.]+$/, ".forged-signature"),
    ];
    for (const token of tokens) assert.equal((await call(token, body)).status, 401);
    const [row] = await sql`select full_name from public.profiles where id = ${team.e1.id}`;
    assert.notEqual(row?.full_name, "Hacked");
  },
);

proxyTest("user metadata claiming admin grants nothing", async ({ call, sql, team }) => {
  const sneaky = await createUser(sql, { teamId: team.id, userMetadata: { role: "admin" } });
  // What supabase.auth.updateUser({ data: { role: "admin" } }) would put in the next access token.
  const token = await accessToken(sneaky, { userMetadata: { role: "admin", is_admin: true } });
  const promote = await call(token, { action: "update_profile", user_id: sneaky.id, role: "admin" });
  assert.equal(promote.status, 403);
  const other = await call(token, { action: "update_profile", user_id: team.e1.id, active: false });
  assert.equal(other.status, 403);
  const [row] = await sql`select role from public.profiles where id = ${sneaky.id}`;
  assert.equal(row?.role, "executive");
});

proxyTest("the auth rate limit answers 429 with Retry-After", async ({ call, sql, team }) => {
  // A full bucket stamped an hour ahead: a take before its stamp refills nothing, so the eleventh request is
  // refused however slowly the ten before it ran.
  await sql`insert into wa.rate_limit_buckets (subject, category, tokens, updated_at)
            values (${`user:${team.e2.id}`}, 'auth', 10, now() + interval '1 hour')`;
  const body = { action: "remove_backup", executive_id: team.e2.id };
  const statuses: number[] = [];
  let limited;
  for (let i = 0; i < 11; i++) {
    const res = await call(team.e2, body);
    statuses.push(res.status);
    if (res.status === 429) limited = res;
  }
  assert.deepEqual(statuses, [...Array(10).fill(200), 429]);
  assert.equal(limited?.body.error.code, "rate_limited");
  assert.equal(limited?.headers.get("retry-after"), "6", "one auth token refills in 6 s");
});
