// SPEC 6's contract on a real supabase-js client against the real PostgREST of the local stack, whose fetch
// counts HTTP requests: 2,146 lookups of one id make exactly 1 request, 2,146 distinct ids make
// ceil(2146 / maxBatch), and Realtime events make changed rows fetched again.
import assert from "node:assert/strict";
import { startTestApi, type TestApi } from "../local/testing/api.ts";
import { accessToken, createTeam, createUser } from "../local/testing/auth.ts";
import { testSql } from "../local/testing/db.ts";
import { BackupService } from "./backup-service.ts";
import { WabaseRpcError } from "./errors.ts";
import type { RealtimeHub, ResyncEvent } from "./realtime-hub.ts";
import { teamFixture } from "./testing/fixtures.ts";
import { recordingClient } from "./testing/postgrest.ts";
import type { ProfileRow, ProspectRow, RowChange } from "./types.ts";

const TEAM = "team:0d9c4a56-8d7e-4a8b-9f43-3f1f3b7f0a01";

async function withApi(fn: (api: TestApi, sql: ReturnType<typeof testSql>) => Promise<void>) {
  const api = await startTestApi({ functions: () => new Response(null, { status: 404 }) });
  const sql = testSql(2);
  try {
    await fn(api, sql);
  } finally {
    await sql.end();
    await api.close();
  }
}

/** A hub stand-in that lets the test deliver row changes and resyncs by hand. */
function fakeHub() {
  const listeners = new Set<
    { topic: string; table?: string; listener: (change: RowChange<never>) => void }
  >();
  const resyncs = new Set<{ topic: string | undefined; listener: (event: ResyncEvent) => void }>();
  const hub: Pick<RealtimeHub, "subscribe" | "onResync"> = {
    subscribe(options: { topic: string; table?: string }, listener: (change: RowChange<never>) => void) {
      const entry = { topic: options.topic, table: options.table, listener };
      listeners.add(entry);
      return () => listeners.delete(entry);
    },
    onResync(
      topicOrListener: string | ((event: ResyncEvent) => void),
      listener?: (event: ResyncEvent) => void,
    ) {
      const entry = typeof topicOrListener === "string"
        ? { topic: topicOrListener, listener: listener! }
        : { topic: undefined, listener: topicOrListener };
      resyncs.add(entry);
      return () => resyncs.delete(entry);
    },
  };
  return {
    hub,
    listeners,
    emit<T>(topic: string, change: Omit<RowChange<T>, "topic" | "schema">) {
      const full = { ...change, topic, schema: "public" } as RowChange<never>;
      for (const entry of [...listeners]) {
        if (entry.topic === topic && (entry.table === undefined || entry.table === full.table)) {
          entry.listener(full);
        }
      }
    },
    resync(topic: string) {
      for (const entry of [...resyncs]) {
        if (entry.topic === undefined || entry.topic === topic) entry.listener({ topic });
      }
    },
  };
}

function profileRow(id: string, backupId: string | null): ProfileRow {
  return {
    id,
    email: null,
    full_name: id,
    role: "executive",
    team_id: "team",
    phone: null,
    original_phone: null,
    backup_id: backupId,
    active: true,
    created_at: "2026-01-01T00:00:00Z",
    updated_at: "2026-01-01T00:00:00Z",
  };
}

Deno.test("backup service: 2,146 concurrent lookups of one id make exactly 1 HTTP request", async () => {
  await withApi(async (api, sql) => {
    const team = await teamFixture(sql);
    const { requests, supabase } = recordingClient(api, () => team.tokens.beto);
    const service = new BackupService(supabase);
    const answers = await Promise.all(Array.from({ length: 2146 }, () => service.getBackupInfo(team.ana.id)));
    assert.equal(requests.length, 1);
    assert.deepEqual(requests[0]!.args, { user_ids: [team.ana.id] });
    assert.equal(requests[0]!.headers.get("authorization"), `Bearer ${team.tokens.beto}`);
    assert.ok(
      answers.every((answer) => answer?.user_id === team.ana.id && answer.backup_id === team.beto.id),
    );
    assert.equal(await service.getBackupInfo(team.ana.id).then((answer) => answer?.has_backup), true);
    assert.equal(requests.length, 1, "cached afterwards");
  });
});

Deno.test("backup service: 2,146 distinct ids make ceil(2146 / maxBatch) requests, each id its own row", async () => {
  await withApi(async (api, sql) => {
    // 2,146 users of one new team, every second one backed up by the first; an admin reads them all.
    const teamId = await createTeam(sql);
    const ids = Array.from({ length: 2146 }, () => crypto.randomUUID());
    await sql`insert into auth.users (id, aud, role, email, created_at, updated_at)
              select id, 'authenticated', 'authenticated', id || '@herd.wabase.test', now(), now()
              from unnest(${ids}::uuid[]) as id`;
    await sql`update public.profiles p
              set team_id = ${teamId}, backup_id = case when x.n % 2 = 0 then ${ids[0]!}::uuid end
              from unnest(${ids}::uuid[]) with ordinality as x (id, n)
              where p.id = x.id`;
    const admin = await createUser(sql, { role: "admin" });
    const token = await accessToken(admin);
    const { requests, supabase } = recordingClient(api, () => token);
    const service = new BackupService(supabase, { maxBatch: 100 });
    const answers = await Promise.all(ids.map((id) => service.getBackupInfo(id)));
    assert.equal(requests.length, 22);
    assert.equal(requests.length, Math.ceil(2146 / 100));
    assert.ok(requests.every((request) => (request.args.user_ids as string[]).length <= 100));
    answers.forEach((answer, i) => {
      assert.equal(answer?.user_id, ids[i]);
      assert.equal(answer?.has_backup, i % 2 === 1);
    });

    const wide = recordingClient(api, () => token);
    const defaults = new BackupService(wide.supabase);
    await Promise.all(ids.map((id) => defaults.getBackupInfo(id)));
    assert.equal(wide.requests.length, 22, "maxBatch defaults to 100");
  });
});

Deno.test("backup service: unknown or invisible ids resolve to null, unknown prospects to false", async () => {
  await withApi(async (api, sql) => {
    const team = await teamFixture(sql);
    const stranger = await createUser(sql, { role: "executive", teamId: null });
    const { requests, supabase } = recordingClient(api, () => team.tokens.beto);
    const service = new BackupService(supabase);
    const [known, unknown, invisible] = await Promise.all([
      service.getBackupInfo(team.ana.id),
      service.getBackupInfo(crypto.randomUUID()),
      service.getBackupInfo(stranger.id),
    ]);
    assert.equal(known?.user_id, team.ana.id);
    assert.equal(unknown, null);
    assert.equal(invisible, null, "RLS hides users of other teams");
    const prospects = [team.anaProspect, team.betoProspect, crypto.randomUUID()];
    const flags = await Promise.all(prospects.map((id) => service.isHandledAsBackup(id)));
    assert.deepEqual(flags, [true, false, false]);
    assert.deepEqual(requests.map((request) => request.fn), [
      "get_backup_info",
      "prospects_handled_as_backup",
    ]);
    assert.deepEqual(requests[1]!.args, { prospect_ids: prospects });
  });
});

Deno.test("backup service: a refused RPC rejects the batch's keys with WabaseRpcError, and is retried", async () => {
  await withApi(async (api, sql) => {
    const team = await teamFixture(sql);
    // Signed out first: PostgREST refuses the anon role; then signed in, the same lookups succeed.
    let token: string | null = null;
    const { requests, supabase } = recordingClient(api, () => token);
    const service = new BackupService(supabase);
    const results = await Promise.allSettled([
      service.getBackupInfo(team.ana.id),
      service.getBackupInfo(team.beto.id),
    ]);
    for (const result of results) {
      assert.equal(result.status, "rejected");
      const error = (result as PromiseRejectedResult).reason;
      assert.ok(error instanceof WabaseRpcError);
      assert.equal(error.code, "42501");
      assert.equal(error.status, 401);
      assert.equal(error.fn, "get_backup_info");
    }
    token = team.tokens.beto;
    assert.equal((await service.getBackupInfo(team.ana.id))?.user_id, team.ana.id);
    assert.equal(requests.length, 2);
  });
});

Deno.test("backup service: Realtime changes and resyncs make the affected rows fetched again", async () => {
  await withApi(async (api, sql) => {
    const team = await teamFixture(sql);
    const carla = await createUser(sql, { role: "executive", teamId: team.teamId });
    const [ana, beto] = [team.ana.id, team.beto.id];
    const { requests, supabase } = recordingClient(api, () => team.tokens.beto);
    const fake = fakeHub();
    const service = new BackupService(supabase, { hub: fake.hub, teamTopic: TEAM });
    const lookups = () => Promise.all([ana, beto, carla.id].map((id) => service.getBackupInfo(id)));
    const prospects = [team.anaProspect, team.betoProspect];
    const flags = () => Promise.all(prospects.map((id) => service.isHandledAsBackup(id)));
    const count = (fn: string) => requests.filter((request) => request.fn === fn).length;
    const lastIds = () => requests.at(-1)!.args.user_ids ?? requests.at(-1)!.args.prospect_ids;

    await lookups();
    await flags();
    assert.equal(requests.length, 2);

    // A profile update: that user's info is fetched again, the others stay cached.
    await sql`update public.profiles set phone = '5215511111111' where id = ${carla.id}`;
    fake.emit<ProfileRow>(TEAM, {
      table: "profiles",
      operation: "UPDATE",
      record: { ...profileRow(carla.id, null), phone: "5215511111111" },
      old_record: profileRow(carla.id, null),
    });
    assert.equal((await service.getBackupInfo(carla.id))?.phone, "5215511111111");
    await lookups();
    assert.equal(count("get_backup_info"), 2);
    assert.deepEqual(lastIds(), [carla.id]);
    assert.equal(count("prospects_handled_as_backup"), 1, "no backup changed: the prospect flags stay");

    // The backup's own profile changed (name, phone): whoever they back up shows stale backup_name too.
    await sql`update public.profiles set full_name = 'Beto B.' where id = ${beto}`;
    fake.emit<ProfileRow>(TEAM, {
      table: "profiles",
      operation: "UPDATE",
      record: { ...profileRow(beto, null), full_name: "Beto B." },
      old_record: profileRow(beto, null),
    });
    await lookups();
    assert.deepEqual(new Set(lastIds() as string[]), new Set([ana, beto]));
    assert.equal((await service.getBackupInfo(ana))?.backup_name, "Beto B.");

    // A backup assigned: which prospects the caller handles as backup may change for any of them.
    fake.emit<ProfileRow>(TEAM, {
      table: "profiles",
      operation: "UPDATE",
      record: profileRow(carla.id, beto),
      old_record: profileRow(carla.id, null),
    });
    await flags();
    assert.equal(count("prospects_handled_as_backup"), 2);

    // A prospect change: that prospect's flag only.
    const prospect: ProspectRow = {
      id: team.betoProspect,
      team_id: null,
      executive_id: beto,
      contact_id: null,
      name: null,
      phone: null,
      created_at: "2026-01-01T00:00:00Z",
    };
    fake.emit<ProspectRow>(TEAM, {
      table: "prospects",
      operation: "DELETE",
      record: null,
      old_record: prospect,
    });
    await flags();
    assert.equal(count("prospects_handled_as_backup"), 3);
    assert.deepEqual(lastIds(), [team.betoProspect]);

    // A resync: anything may have been missed, so everything is fetched again, in one request per loader.
    const before = requests.length;
    fake.resync(TEAM);
    await lookups();
    await flags();
    assert.equal(requests.length, before + 2);

    // Other topics' changes are not this service's business.
    fake.emit<ProfileRow>("team:other", {
      table: "profiles",
      operation: "DELETE",
      record: null,
      old_record: profileRow(ana, null),
    });
    await lookups();
    assert.equal(requests.length, before + 2);

    // dispose: no more listeners, nothing cached.
    service.dispose();
    assert.equal(fake.listeners.size, 0);
    await lookups();
    assert.equal(requests.length, before + 3);
  });
});

Deno.test("backup service: an insert forgets a null cached before the profile existed", async () => {
  await withApi(async (api, sql) => {
    const team = await teamFixture(sql);
    const { requests, supabase } = recordingClient(api, () => team.tokens.beto);
    const fake = fakeHub();
    const service = new BackupService(supabase, { hub: fake.hub, teamTopic: TEAM });
    const dana = crypto.randomUUID();
    assert.equal(await service.getBackupInfo(dana), null);
    await sql`insert into auth.users (id, aud, role, email, created_at, updated_at)
              values (${dana}, 'authenticated', 'authenticated', ${`${dana}@wabase.test`}, now(), now())`;
    await sql`update public.profiles set team_id = ${team.teamId} where id = ${dana}`;
    fake.emit<ProfileRow>(TEAM, {
      table: "profiles",
      operation: "INSERT",
      record: profileRow(dana, null),
      old_record: null,
    });
    assert.equal((await service.getBackupInfo(dana))?.user_id, dana);
    assert.equal(requests.length, 2);
  });
});

Deno.test("backup service: answers expire after ttlMs", async () => {
  await withApi(async (api, sql) => {
    const team = await teamFixture(sql);
    let now = 0;
    const { requests, supabase } = recordingClient(api, () => team.tokens.beto);
    const service = new BackupService(supabase, { ttlMs: 10_000, now: () => now });
    await service.getBackupInfo(team.ana.id);
    now = 9_999;
    await service.getBackupInfo(team.ana.id);
    now = 10_000;
    await service.getBackupInfo(team.ana.id);
    assert.equal(requests.length, 2);
  });
});
