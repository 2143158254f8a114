// The Realtime stand-in against the real @supabase/supabase-js: private channels authorized by wabase's RLS
// policies on realtime.messages (supabase/migrations/20261126000000_realtime.sql), rows written by
// realtime.send and the broadcast triggers delivered, heartbeats, token refresh, leave, client broadcasts.
import assert from "node:assert/strict";
import { createClient, type RealtimeChannel, type SupabaseClient } from "@supabase/supabase-js";
import type postgres from "postgres";
import { localEnvDefaults } from "../env.ts";
import { accessToken, createTeam, createUser, type TestUser } from "../testing/auth.ts";
import { testDbUrl, testSql } from "../testing/db.ts";
import { createRealtimeServer } from "./server.ts";

const env = await localEnvDefaults();
const JWT_SECRET = env.JWT_SECRET ?? "";
const ANON_KEY = env.SUPABASE_ANON_KEY ?? "";

type Status = "SUBSCRIBED" | "CHANNEL_ERROR" | "TIMED_OUT" | "CLOSED";

/** A channel and everything it received: broadcasts, system messages, subscription statuses. */
interface Tap {
  channel: RealtimeChannel;
  broadcasts: { event: string; payload: Record<string, unknown> }[];
  system: { status: string; message: string; extension: string }[];
  statuses: { status: Status; error?: Error }[];
  /** Resolves with the first item of `list` that matches, already there or still to come. */
  next<T>(list: T[], match: (item: T) => boolean, what: string): Promise<T>;
}

function tap(
  supabase: SupabaseClient,
  topic: string,
  config: Record<string, unknown> = { private: true },
): Tap {
  const channel = supabase.channel(topic, { config });
  const waiters = new Set<() => void>();
  const wake = () => waiters.forEach((waiter) => waiter());
  const t: Tap = {
    channel,
    broadcasts: [],
    system: [],
    statuses: [],
    next(list, match, what) {
      return new Promise((resolve, reject) => {
        const timeout = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out waiting for ${what} on ${topic}`));
        }, 5000);
        const check = () => {
          const found = list.find(match);
          if (found === undefined) return;
          clearTimeout(timeout);
          waiters.delete(check);
          resolve(found);
        };
        waiters.add(check);
        check();
      });
    },
  };
  channel.on("broadcast", { event: "*" }, (message) => {
    t.broadcasts.push({ event: message.event, payload: message.payload });
    wake();
  });
  channel.on("system", {}, (payload) => {
    t.system.push(payload);
    wake();
  });
  channel.subscribe((status, error) => {
    t.statuses.push({ status, error });
    wake();
  });
  return t;
}

function settled(t: Tap): Promise<{ status: Status; error?: Error }> {
  return t.next(t.statuses, () => true, "a subscription status");
}

interface Fixture {
  sql: postgres.Sql;
  url: string;
  teamId: string;
  coordinator: TestUser;
  executive: TestUser;
  /** A supabase-js client signed in as `user`; `setToken` changes the token its callback returns. */
  client(user: TestUser | "anon", options?: { vsn?: string }): Promise<SupabaseClient>;
  setToken(client: SupabaseClient, token: string): void;
}

async function withStack(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const sql = testSql();
  const server = createRealtimeServer({ dbUrl: testDbUrl(), jwtSecret: JWT_SECRET });
  const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => server.handle(req));
  const clients: SupabaseClient[] = [];
  const tokens = new Map<SupabaseClient, { token: string }>();
  try {
    const teamId = await createTeam(sql);
    const coordinator = await createUser(sql, { role: "coordinator", teamId });
    const executive = await createUser(sql, { role: "executive", teamId });
    await fn({
      sql,
      url: `http://127.0.0.1:${http.addr.port}`,
      teamId,
      coordinator,
      executive,
      async client(user, options = {}) {
        // Without a session supabase-js joins with the anon key.
        const slot = { token: user === "anon" ? ANON_KEY : await accessToken(user) };
        const supabase = createClient(`http://127.0.0.1:${http.addr.port}`, ANON_KEY, {
          accessToken: () => Promise.resolve(slot.token),
          realtime: { heartbeatIntervalMs: 60_000, ...options } as Record<string, unknown>,
        });
        tokens.set(supabase, slot);
        clients.push(supabase);
        return supabase;
      },
      setToken(client, token) {
        tokens.get(client)!.token = token;
      },
    });
  } finally {
    for (const client of clients) {
      await client.removeAllChannels();
      client.realtime.disconnect();
    }
    await server.close();
    await http.shutdown();
    await sql.end();
  }
}

const send = (
  sql: postgres.Sql | postgres.TransactionSql,
  topic: string,
  event: string,
  payload: object,
  isPrivate = true,
) => sql`select realtime.send(${sql.json(payload as postgres.JSONValue)}, ${event}, ${topic}, ${isPrivate})`;

// How fast (p50/p99 against a bare LISTEN/NOTIFY) is measured by `npm run bench` (bench/realtime.ts).
Deno.test("realtime: a private channel receives what realtime.send writes, in order", async () => {
  await withStack(async ({ sql, teamId, coordinator, client }) => {
    const team = tap(await client(coordinator), `team:${teamId}`);
    assert.equal((await settled(team)).status, "SUBSCRIBED");
    for (let i = 0; i < 20; i++) {
      await send(sql, `team:${teamId}`, "ping", { n: i });
      await team.next(team.broadcasts, (b) => b.payload.n === i, `ping ${i}`);
    }
    assert.deepEqual(team.broadcasts.filter((b) => b.event === "ping").map((b) => b.payload.n), [
      ...Array(20).keys(),
    ]);
    assert.equal(typeof team.broadcasts[0]!.payload.id, "string", "realtime.send adds the message id");
  });
});

Deno.test("realtime: rows committed together are all delivered, also after one for a topic nobody joined", async () => {
  await withStack(async ({ sql, teamId, coordinator, client }) => {
    const team = tap(await client(coordinator), `team:${teamId}`);
    assert.equal((await settled(team)).status, "SUBSCRIBED");
    // One commit: both notifications reach the server in one read, the first for a topic without channels.
    await sql.begin(async (tx) => {
      await send(tx, `team:${crypto.randomUUID()}`, "unheard", { n: 0 });
      await send(tx, `team:${teamId}`, "heard", { n: 1 });
    });
    const got = await team.next(team.broadcasts, (b) => b.event === "heard", "the second row of the commit");
    assert.equal(got.payload.n, 1);
  });
});

Deno.test("realtime: RLS on realtime.messages decides who may join a private topic", async () => {
  await withStack(async ({ teamId, coordinator, executive, client }) => {
    const supabase = await client(executive);
    const own = tap(supabase, `executive:${executive.id}`);
    const team = tap(supabase, `team:${teamId}`);
    const other = tap(supabase, `executive:${coordinator.id}`);
    assert.equal((await settled(own)).status, "SUBSCRIBED");
    const refused = await settled(team);
    assert.equal(refused.status, "CHANNEL_ERROR");
    assert.equal(
      refused.error?.message,
      `You do not have permissions to read from this Channel topic: team:${teamId}`,
    );
    assert.equal((await settled(other)).status, "CHANNEL_ERROR");
    // The anon key's role passes no wabase policy.
    const anon = tap(await client("anon"), `executive:${executive.id}`);
    assert.equal((await settled(anon)).status, "CHANNEL_ERROR");
  });
});

Deno.test("realtime: the broadcast triggers reach the team and executive topics, and only private channels", async () => {
  await withStack(async ({ sql, teamId, coordinator, executive, client }) => {
    const team = tap(await client(coordinator), `team:${teamId}`);
    const own = tap(await client(executive), `executive:${executive.id}`);
    const publicTeam = tap(await client(coordinator), `team:${teamId}`, { private: false });
    for (const t of [team, own, publicTeam]) assert.equal((await settled(t)).status, "SUBSCRIBED");

    await sql`update public.profiles set full_name = 'Renamed' where id = ${executive.id}`;
    for (const t of [team, own]) {
      const change = await t.next(
        t.broadcasts,
        (b) => (b.payload.record as { full_name?: string } | null)?.full_name === "Renamed",
        "the profile UPDATE",
      );
      assert.equal(change.event, "UPDATE");
      assert.equal(change.payload.table, "profiles");
      assert.equal((change.payload.old_record as { id: string }).id, executive.id);
    }
    // A public channel of the same name gets only public messages.
    await send(sql, `team:${teamId}`, "public-ping", {}, false);
    await publicTeam.next(publicTeam.broadcasts, (b) => b.event === "public-ping", "the public message");
    assert.deepEqual(publicTeam.broadcasts.map((b) => b.event), ["public-ping"]);
    assert.equal(team.broadcasts.some((b) => b.event === "public-ping"), false);
  });
});

Deno.test("realtime: heartbeats are answered, and a left channel can be joined again", async () => {
  await withStack(async ({ sql, teamId, coordinator, client }) => {
    const supabase = await client(coordinator);
    const team = tap(supabase, `team:${teamId}`);
    assert.equal((await settled(team)).status, "SUBSCRIBED");
    const answered = new Promise<string>((resolve) =>
      supabase.realtime.onHeartbeat((status) => status !== "sent" && resolve(status))
    );
    await supabase.realtime.sendHeartbeat();
    assert.equal(await answered, "ok");

    assert.equal(await supabase.removeChannel(team.channel), "ok", "the server answers phx_leave");
    const again = tap(supabase, `team:${teamId}`);
    assert.equal((await settled(again)).status, "SUBSCRIBED");
    await send(sql, `team:${teamId}`, "after-rejoin", {});
    await again.next(again.broadcasts, (b) => b.event === "after-rejoin", "the broadcast after rejoining");
    assert.equal(
      team.broadcasts.some((b) => b.event === "after-rejoin"),
      false,
      "the left channel gets nothing",
    );
  });
});

Deno.test("realtime: a refreshed access token is authorized again; one the policies refuse closes the channel", async () => {
  await withStack(async ({ sql, teamId, coordinator, executive, client, setToken }) => {
    const supabase = await client(coordinator);
    const team = tap(supabase, `team:${teamId}`);
    assert.equal((await settled(team)).status, "SUBSCRIBED");

    setToken(supabase, await accessToken(coordinator, { expiresIn: 7200 }));
    await supabase.realtime.setAuth();
    await send(sql, `team:${teamId}`, "still-here", {});
    await team.next(team.broadcasts, (b) => b.event === "still-here", "a broadcast after a valid refresh");

    setToken(supabase, await accessToken(executive));
    await supabase.realtime.setAuth();
    const refusal = await team.next(team.system, (m) => m.status === "error", "the refusal");
    assert.equal(
      refusal.message,
      `You do not have permissions to read from this Channel topic: team:${teamId}`,
    );
    await team.next(team.statuses, (s) => s.status === "CLOSED", "the channel closing");

    const own = tap(supabase, `executive:${executive.id}`);
    assert.equal((await settled(own)).status, "SUBSCRIBED");
    setToken(supabase, await accessToken(executive, { expiresIn: -30 }));
    await supabase.realtime.setAuth();
    const expired = await own.next(own.system, (m) => m.status === "error", "the expiry");
    assert.match(expired.message, /^Token has expired \d+ seconds ago$/);
    await own.next(own.statuses, (s) => s.status === "CLOSED", "the channel closing");
  });
});

Deno.test("realtime: client broadcasts reach the topic's other channels; private ones need an INSERT policy", async () => {
  await withStack(async ({ sql, teamId, coordinator, client }) => {
    const room = `room:${crypto.randomUUID()}`;
    const policy = `wabase test ${room}`;
    // Policies for this test's topic only, dropped afterwards.
    await sql.unsafe(`create policy "${policy} read" on realtime.messages for select to authenticated
                      using ((select realtime.topic()) = '${room}')`);
    await sql.unsafe(`create policy "${policy} write" on realtime.messages for insert to authenticated
                      with check ((select realtime.topic()) = '${room}')`);
    try {
      const colleague = await createUser(sql, { role: "coordinator", teamId });
      const config = { private: true, broadcast: { ack: true } };
      const [senderClient, receiverClient] = [await client(coordinator), await client(colleague)];
      for (const topic of [room, `team:${teamId}`]) {
        const sender = tap(senderClient, topic, config);
        const receiver = tap(receiverClient, topic, config);
        for (const t of [sender, receiver]) assert.equal((await settled(t)).status, "SUBSCRIBED");
        assert.equal(
          await sender.channel.send({ type: "broadcast", event: "typing", payload: { who: 1 } }),
          "ok",
        );
        await send(sql, topic, "from-db", {});
        await receiver.next(
          receiver.broadcasts,
          (b) => b.event === "from-db",
          `the database message on ${topic}`,
        );
        // The sender does not hear itself (broadcast.self is false); the receiver hears it only with the policy.
        assert.equal(sender.broadcasts.some((b) => b.event === "typing"), false);
        assert.deepEqual(
          receiver.broadcasts.filter((b) => b.event === "typing").map((b) => b.payload),
          topic === room ? [{ who: 1 }] : [],
        );
      }
      // A public channel needs no policy (supabase-js keeps one channel per name, hence another name).
      const lobby = `lobby:${crypto.randomUUID()}`;
      const pub = [
        tap(senderClient, lobby, { private: false }),
        tap(receiverClient, lobby, { private: false }),
      ];
      for (const t of pub) assert.equal((await settled(t)).status, "SUBSCRIBED");
      await pub[0]!.channel.send({ type: "broadcast", event: "public-typing", payload: {} });
      await pub[1]!.next(pub[1]!.broadcasts, (b) => b.event === "public-typing", "a public client broadcast");
    } finally {
      await sql.unsafe(`drop policy "${policy} read" on realtime.messages`);
      await sql.unsafe(`drop policy "${policy} write" on realtime.messages`);
    }
  });
});

Deno.test("realtime: Postgres Changes and Presence answer that they are not supported", async () => {
  await withStack(async ({ teamId, coordinator, client }) => {
    const supabase = await client(coordinator);
    const changes = supabase.channel(`team:${teamId}`, { config: { private: true } });
    const refused = new Promise<Error | undefined>((resolve) =>
      changes.on("postgres_changes", { event: "*", schema: "public", table: "messages" }, () => {})
        .subscribe((status, error) => status === "CHANNEL_ERROR" && resolve(error))
    );
    assert.match(
      (await refused)?.message ?? "",
      /^Postgres Changes is not supported by the local Realtime stand-in/,
    );
    await supabase.removeChannel(changes);

    const presence = tap(supabase, `executive:${coordinator.id}`, {
      private: true,
      presence: { key: "me", enabled: true },
    });
    assert.equal((await settled(presence)).status, "SUBSCRIBED");
    const notice = await presence.next(
      presence.system,
      (m) => m.extension === "presence",
      "the presence notice",
    );
    assert.equal(notice.message, "Presence is not supported by the local Realtime stand-in");
    assert.equal(await presence.channel.track({ online: true }), "error");
  });
});

Deno.test("realtime: the vsn 1.0.0 serializer works too, and a socket with a bad apikey is refused", async () => {
  await withStack(async ({ sql, url, teamId, coordinator, client }) => {
    const team = tap(await client(coordinator, { vsn: "1.0.0" }), `team:${teamId}`);
    assert.equal((await settled(team)).status, "SUBSCRIBED");
    await send(sql, `team:${teamId}`, "v1", { ok: true });
    const got = await team.next(team.broadcasts, (b) => b.event === "v1", "a vsn 1.0.0 broadcast");
    assert.equal(got.payload.ok, true);

    const refused = await fetch(`${url}/realtime/v1/websocket?apikey=not-a-jwt&vsn=2.0.0`, {
      headers: { upgrade: "websocket", connection: "upgrade" },
    });
    assert.equal(refused.status, 403);
    assert.deepEqual(await refused.json(), { error: "Failed to validate JWT signature" });
  });
});

Deno.test("realtime: a heartbeat is answered while a join waits for the database", async () => {
  await withStack(async ({ sql, teamId, coordinator, client }) => {
    const supabase = await client(coordinator);
    const holder = await sql.reserve();
    try {
      // A second connection locks realtime.messages, so the join's policy check waits on it.
      await holder`begin`;
      await holder`lock table realtime.messages in access exclusive mode`;
      const team = tap(supabase, `team:${teamId}`);
      const joinWaits = async () => {
        const [row] = await sql<{ waiting: boolean }[]>`
          select exists (select from pg_locks where not granted and relation = 'realtime.messages'::regclass)
            as waiting`;
        return row!.waiting;
      };
      while (!(await joinWaits())) { /* the join has not reached its policy check yet */ }
      const answered = new Promise<string>((resolve, reject) => {
        const timeout = setTimeout(() => reject(new Error("the heartbeat waited for the join")), 5000);
        supabase.realtime.onHeartbeat((status) => {
          if (status === "sent") return;
          clearTimeout(timeout);
          resolve(status);
        });
      });
      await supabase.realtime.sendHeartbeat();
      assert.equal(await answered, "ok");
      assert.deepEqual(team.statuses, [], "the join is still waiting");
      await holder`commit`;
      assert.equal((await settled(team)).status, "SUBSCRIBED");
    } finally {
      await holder`rollback`.catch(() => {});
      holder.release();
    }
  });
});
