// SPEC 6's contract on a real supabase-js client whose fetch counts HTTP requests: 2,146 lookups of one id make
// exactly 1 request, 2,146 distinct ids make ceil(2146 / maxBatch), and Realtime events make changed rows
// fetched again.
import assert from "node:assert/strict";
import { BackupService } from "./backup-service.ts";
import { WabaseRpcError } from "./errors.ts";
import type { RealtimeHub, ResyncEvent } from "./realtime-hub.ts";
import { fakePostgrest } from "./testing/fake-postgrest.ts";
import type { BackupInfo, ProfileRow, ProspectRow, RowChange } from "./types.ts";

const TEAM = "team:0d9c4a56-8d7e-4a8b-9f43-3f1f3b7f0a01";

/** The backup info the fake database holds, by user id; ids without an entry are not visible. */
function database(users: Map<string, BackupInfo>, handled = new Map<string, boolean>()) {
  return fakePostgrest((fn, args) => {
    if (fn === "get_backup_info") {
      const ids = args.user_ids as string[];
      return { body: ids.flatMap((id) => users.get(id) ?? []) };
    }
    if (fn === "prospects_handled_as_backup") {
      const ids = args.prospect_ids as string[];
      return {
        body: ids.filter((id) => handled.has(id)).map((id) => ({
          prospect_id: id,
          executive_id: "exec-1",
          handled_as_backup: handled.get(id),
        })),
      };
    }
    return {
      status: 404,
      body: { code: "PGRST202", message: `no function ${fn}`, details: null, hint: null },
    };
  });
}

function info(userId: string, backupId: string | null = null): BackupInfo {
  return {
    user_id: userId,
    backup_id: backupId,
    has_backup: backupId !== null,
    backup_name: backupId === null ? null : `name of ${backupId}`,
    backup_phone: backupId === null ? null : "5215599999999",
    phone: "5215500000000",
    original_phone: null,
  };
}

function uuid(i: number): string {
  return `00000000-0000-4000-8000-${i.toString().padStart(12, "0")}`;
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
  const ana = uuid(1);
  const { requests, supabase } = database(new Map([[ana, info(ana, uuid(2))]]));
  const service = new BackupService(supabase);
  const answers = await Promise.all(Array.from({ length: 2146 }, () => service.getBackupInfo(ana)));
  assert.equal(requests.length, 1);
  assert.deepEqual(requests[0]!.args, { user_ids: [ana] });
  assert.equal(requests[0]!.headers.get("authorization"), "Bearer user-jwt");
  assert.ok(answers.every((answer) => answer?.user_id === ana && answer.backup_id === uuid(2)));
  assert.equal(await service.getBackupInfo(ana).then((answer) => answer?.has_backup), true);
  assert.equal(requests.length, 1, "cached afterwards");
});

Deno.test("backup service: 2,146 distinct ids make ceil(2146 / maxBatch) requests, each id its own row", async () => {
  const ids = Array.from({ length: 2146 }, (_, i) => uuid(i));
  const { requests, supabase } = database(
    new Map(ids.map((id, i) => [id, info(id, i % 2 ? uuid(9999) : null)])),
  );
  const service = new BackupService(supabase, { maxBatch: 100 });
  const answers = await Promise.all(ids.map((id) => service.getBackupInfo(id)));
  assert.equal(requests.length, 22);
  assert.equal(requests.length, Math.ceil(2146 / 100));
  assert.ok(requests.every((request) => (request.args.user_ids as string[]).length <= 100));
  answers.forEach((answer, i) => {
    assert.equal(answer?.user_id, ids[i]);
    assert.equal(answer?.has_backup, i % 2 === 1);
  });

  const wide = database(new Map(ids.map((id) => [id, info(id)])));
  const defaults = new BackupService(wide.supabase);
  await Promise.all(ids.map((id) => defaults.getBackupInfo(id)));
  assert.equal(wide.requests.length, 22, "maxBatch defaults to 100");
});

Deno.test("backup service: unknown or invisible ids resolve to null, unknown prospects to false", async () => {
  const ana = uuid(1);
  const { requests, supabase } = database(
    new Map([[ana, info(ana)]]),
    new Map([["p-1", true], ["p-2", false]]),
  );
  const service = new BackupService(supabase);
  const [known, unknown] = await Promise.all([service.getBackupInfo(ana), service.getBackupInfo(uuid(404))]);
  assert.equal(known?.user_id, ana);
  assert.equal(unknown, null);
  const flags = await Promise.all(["p-1", "p-2", "p-3"].map((id) => service.isHandledAsBackup(id)));
  assert.deepEqual(flags, [true, false, false]);
  assert.deepEqual(requests.map((request) => request.fn), ["get_backup_info", "prospects_handled_as_backup"]);
  assert.deepEqual(requests[1]!.args, { prospect_ids: ["p-1", "p-2", "p-3"] });
});

Deno.test("backup service: a refused RPC rejects the batch's keys with WabaseRpcError, and is retried", async () => {
  let refuse = true;
  const ana = uuid(1);
  const { requests, supabase } = fakePostgrest(() =>
    refuse
      ? { status: 403, body: { code: "P0403", message: "you may not", details: "team", hint: "forbidden" } }
      : { body: [info(ana)] }
  );
  const service = new BackupService(supabase);
  const results = await Promise.allSettled([service.getBackupInfo(ana), service.getBackupInfo(uuid(2))]);
  for (const result of results) {
    assert.equal(result.status, "rejected");
    const error = (result as PromiseRejectedResult).reason;
    assert.ok(error instanceof WabaseRpcError);
    assert.equal(error.code, "P0403");
    assert.equal(error.hint, "forbidden");
    assert.equal(error.details, "team");
    assert.equal(error.status, 403);
    assert.equal(error.fn, "get_backup_info");
  }
  refuse = false;
  assert.equal((await service.getBackupInfo(ana))?.user_id, ana);
  assert.equal(requests.length, 2);
});

Deno.test("backup service: Realtime changes and resyncs make the affected rows fetched again", async () => {
  const [ana, beto, carla] = [uuid(1), uuid(2), uuid(3)];
  const users = new Map([[ana, info(ana, beto)], [beto, info(beto)], [carla, info(carla)]]);
  const { requests, supabase } = database(users, new Map([["p-1", false], ["p-2", false]]));
  const fake = fakeHub();
  const service = new BackupService(supabase, { hub: fake.hub, teamTopic: TEAM });
  const lookups = () => Promise.all([ana, beto, carla].map((id) => service.getBackupInfo(id)));
  const count = (fn: string) => requests.filter((request) => request.fn === fn).length;
  const lastIds = () => requests.at(-1)!.args.user_ids ?? requests.at(-1)!.args.prospect_ids;

  await lookups();
  await Promise.all(["p-1", "p-2"].map((id) => service.isHandledAsBackup(id)));
  assert.equal(requests.length, 2);

  // A profile update: that user's info is fetched again, the others stay cached.
  users.set(carla, { ...info(carla), phone: "5215511111111" });
  fake.emit<ProfileRow>(TEAM, {
    table: "profiles",
    operation: "UPDATE",
    record: { ...profileRow(carla, null), phone: "5215511111111" },
    old_record: profileRow(carla, null),
  });
  assert.equal((await service.getBackupInfo(carla))?.phone, "5215511111111");
  await lookups();
  assert.equal(count("get_backup_info"), 2);
  assert.deepEqual(lastIds(), [carla]);
  assert.equal(count("prospects_handled_as_backup"), 1, "no backup changed: the prospect flags stay");

  // The backup's own profile changed (name, phone): whoever they back up shows stale backup_name too.
  fake.emit<ProfileRow>(TEAM, {
    table: "profiles",
    operation: "UPDATE",
    record: { ...profileRow(beto, null), full_name: "Beto B." },
    old_record: profileRow(beto, null),
  });
  await lookups();
  assert.deepEqual(new Set(lastIds() as string[]), new Set([ana, beto]));

  // A backup assigned: which prospects the caller handles as backup may change for any of them.
  fake.emit<ProfileRow>(TEAM, {
    table: "profiles",
    operation: "UPDATE",
    record: profileRow(carla, beto),
    old_record: profileRow(carla, null),
  });
  await Promise.all(["p-1", "p-2"].map((id) => service.isHandledAsBackup(id)));
  assert.equal(count("prospects_handled_as_backup"), 2);

  // A prospect change: that prospect's flag only.
  const prospect: ProspectRow = {
    id: "p-2",
    team_id: null,
    executive_id: "exec-1",
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
  await Promise.all(["p-1", "p-2"].map((id) => service.isHandledAsBackup(id)));
  assert.equal(count("prospects_handled_as_backup"), 3);
  assert.deepEqual(lastIds(), ["p-2"]);

  // A resync: anything may have been missed, so everything is fetched again, in one request per loader.
  const before = requests.length;
  fake.resync(TEAM);
  await lookups();
  await Promise.all(["p-1", "p-2"].map((id) => service.isHandledAsBackup(id)));
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

Deno.test("backup service: an insert forgets a null cached before the profile existed", async () => {
  const dana = uuid(4);
  const users = new Map<string, BackupInfo>();
  const { requests, supabase } = database(users);
  const fake = fakeHub();
  const service = new BackupService(supabase, { hub: fake.hub, teamTopic: TEAM });
  assert.equal(await service.getBackupInfo(dana), null);
  users.set(dana, info(dana));
  fake.emit<ProfileRow>(TEAM, {
    table: "profiles",
    operation: "INSERT",
    record: profileRow(dana, null),
    old_record: null,
  });
  assert.equal((await service.getBackupInfo(dana))?.user_id, dana);
  assert.equal(requests.length, 2);
});

Deno.test("backup service: answers expire after ttlMs", async () => {
  let now = 0;
  const ana = uuid(1);
  const { requests, supabase } = database(new Map([[ana, info(ana)]]));
  const service = new BackupService(supabase, { ttlMs: 10_000, now: () => now });
  await service.getBackupInfo(ana);
  now = 9_999;
  await service.getBackupInfo(ana);
  now = 10_000;
  await service.getBackupInfo(ana);
  assert.equal(requests.length, 2);
});
