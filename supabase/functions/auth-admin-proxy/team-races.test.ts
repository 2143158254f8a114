// A team taken away while a backup is assigned, on the real database. Each interleaving is forced, never timed:
// a first connection changes one of the two users in a transaction it leaves open, a second starts the other
// change and is seen waiting for it (pg_blocking_pids), and only then does the first commit. Whichever commits
// first, nobody without a team ends up with or as a backup.
import assert from "node:assert/strict";
import postgres from "postgres";
import { createTeam, createUser, type TestUser } from "../../../local/testing/auth.ts";
import { testSql } from "../../../local/testing/db.ts";
import { blocked, hold, session } from "../../../local/testing/locks.ts";

type Sql = ReturnType<typeof testSql>;

/** Runs `fn` with a connection, a team-less admin and two executives of one team. */
function raceTest(
  name: string,
  fn: (sql: Sql, users: Record<"admin" | "e1" | "e2", TestUser>) => Promise<void>,
) {
  Deno.test(name, async () => {
    const sql = testSql(6);
    try {
      const teamId = await createTeam(sql);
      await fn(sql, {
        admin: await createUser(sql, { role: "admin", phone: "+5215500000900" }),
        e1: await createUser(sql, { teamId, phone: "+5215500000901" }),
        e2: await createUser(sql, { teamId, phone: "+5215500000902" }),
      });
    } finally {
      await sql.end();
    }
  });
}

/** Runs `first` in a transaction left open, `second` on another connection until it waits, then commits. */
async function overlap(
  sql: Sql,
  first: (tx: postgres.ReservedSql) => Promise<unknown>,
  second: (tx: postgres.ReservedSql) => Promise<unknown>,
): Promise<PromiseSettledResult<unknown>> {
  const held = await hold(sql);
  const waiter = await session(sql);
  try {
    await first(held.sql);
    const call = second(waiter.sql);
    await blocked(sql, waiter.pid, { call });
    await held.commit();
    return (await Promise.allSettled([call]))[0]!;
  } finally {
    await held.release();
    waiter.sql.release();
  }
}

const refusedNoTeam = (result: PromiseSettledResult<unknown>) => {
  assert.equal(result.status, "rejected");
  const error = (result as PromiseRejectedResult).reason;
  assert.ok(error instanceof postgres.PostgresError, String(error));
  assert.deepEqual([error.code, error.hint], ["P0409", "no_team"]);
};

raceTest("a team taken away first: the backup assignment waiting for it is refused", async (sql, u) => {
  const result = await overlap(
    sql,
    (tx) => tx`select wa.update_profile(${u.admin.id}, ${u.e2.id}, '{"team_id":null}')`,
    (tx) => tx`select wa.assign_backup(${u.admin.id}, ${u.e1.id}, ${u.e2.id})`,
  );
  refusedNoTeam(result);
  const [e1] = await sql`select backup_id, phone from public.profiles where id = ${u.e1.id}`;
  assert.deepEqual(e1, { backup_id: null, phone: "+5215500000901" });
});

raceTest("a backup assigned first: taking a team away while it commits is refused", async (sql, u) => {
  const result = await overlap(
    sql,
    (tx) => tx`select wa.assign_backup(${u.admin.id}, ${u.e1.id}, ${u.e2.id})`,
    (tx) => tx`select wa.update_profile(${u.admin.id}, ${u.e2.id}, '{"team_id":null}')`,
  );
  refusedNoTeam(result);
  const [e2] = await sql<{ has_team: boolean }[]>`
    select team_id is not null as has_team from public.profiles where id = ${u.e2.id}`;
  assert.equal(e2?.has_team, true);
});
