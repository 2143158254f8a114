// The hub against supabase-js's own RealtimeClient, connected to a small Phoenix-protocol server (vsn 2.0.0,
// the JSON array serializer realtime-js uses): what the server sees proves one channel per topic, the leaves,
// and exactly one rejoin per topic after the connection drops.
import assert from "node:assert/strict";
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { createRealtimeHub, type RealtimeHub, realtimeOptions, type StatusEvent } from "./realtime-hub.ts";
import type { ProfileRow, RowChange } from "./types.ts";

/** A frame as Phoenix's v2 serializer puts it on the wire: `[join_ref, ref, topic, event, payload]`. */
interface Frame {
  joinRef: string | null;
  ref: string | null;
  topic: string;
  event: string;
  payload: Record<string, unknown>;
  /** Which connection (1-based) it arrived on. */
  connection: number;
}

/** A Realtime server stand-in: answers joins, leaves, heartbeats and access tokens, and records every frame. */
class FakeRealtime {
  readonly frames: Frame[] = [];
  readonly #sockets = new Set<WebSocket>();
  readonly #waiters = new Set<{ match: (frame: Frame) => boolean; resolve: (frame: Frame) => void }>();
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  connections = 0;
  /** Connections whose heartbeats go unanswered: open at the TCP level, dead for Phoenix. */
  readonly silent = new Set<number>();

  constructor() {
    this.#server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
      const url = new URL(request.url);
      if (url.pathname !== "/realtime/v1/websocket") return new Response("not found", { status: 404 });
      assert.equal(url.searchParams.get("vsn"), "2.0.0");
      assert.equal(url.searchParams.get("apikey"), "anon-key");
      const { socket, response } = Deno.upgradeWebSocket(request);
      const connection = ++this.connections;
      socket.onopen = () => this.#sockets.add(socket);
      socket.onclose = () => this.#sockets.delete(socket);
      socket.onmessage = (event) => this.#receive(socket, connection, event.data);
      return response;
    });
  }

  get url(): string {
    return `http://127.0.0.1:${this.#server.addr.port}`;
  }

  #receive(socket: WebSocket, connection: number, data: unknown): void {
    assert.equal(typeof data, "string", "the client sends JSON text frames for control messages");
    const [joinRef, ref, topic, event, payload] = JSON.parse(data as string);
    const frame: Frame = { joinRef, ref, topic, event, payload, connection };
    this.frames.push(frame);
    if (event === "heartbeat" && this.silent.has(connection)) return;
    if (ref !== null) {
      const response = event === "phx_join" ? { postgres_changes: [] } : {};
      socket.send(JSON.stringify([joinRef, ref, topic, "phx_reply", { status: "ok", response }]));
    }
    for (const waiter of [...this.#waiters]) {
      if (!waiter.match(frame)) continue;
      this.#waiters.delete(waiter);
      waiter.resolve(frame);
    }
  }

  /** The first frame, already received or still to come, that matches. */
  waitFor(match: (frame: Frame) => boolean): Promise<Frame> {
    const seen = this.frames.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => this.#waiters.add({ match, resolve }));
  }

  received(event: string, topic: string, connection?: number): Frame[] {
    return this.frames.filter((frame) =>
      frame.event === event && frame.topic === `realtime:${topic}` &&
      (connection === undefined || frame.connection === connection)
    );
  }

  /** A row change as the Realtime server relays a realtime.broadcast_changes message, as JSON text. */
  broadcast(topic: string, event: string, payload: Record<string, unknown>): void {
    this.#send(
      JSON.stringify([null, null, `realtime:${topic}`, "broadcast", { type: "broadcast", event, payload }]),
    );
  }

  /**
   * The same in the binary "user broadcast" frame vsn 2.0.0 allows: kind 4, then the lengths of topic, event
   * and metadata, the payload encoding (1 = JSON), and the four parts.
   */
  broadcastBinary(topic: string, event: string, payload: Record<string, unknown>, meta: object): void {
    const encoder = new TextEncoder();
    const parts = [`realtime:${topic}`, event, JSON.stringify(meta), JSON.stringify(payload)].map((part) =>
      encoder.encode(part)
    );
    const header = [4, ...parts.slice(0, 3).map((part) => part.length), 1];
    const frame = new Uint8Array(header.length + parts.reduce((sum, part) => sum + part.length, 0));
    frame.set(header, 0);
    let offset = header.length;
    for (const part of parts) {
      frame.set(part, offset);
      offset += part.length;
    }
    this.#send(frame);
  }

  /** The server closes one channel, as Realtime does when a token expires. */
  closeChannel(topic: string): void {
    const join = this.received("phx_join", topic).at(-1);
    this.#send(JSON.stringify([join?.joinRef ?? null, null, `realtime:${topic}`, "phx_close", {}]));
  }

  /** Drops every connection from the server side. */
  dropConnections(): void {
    for (const socket of this.#sockets) socket.close();
  }

  #send(data: string | Uint8Array): void {
    for (const socket of this.#sockets) socket.send(data);
  }

  async close(): Promise<void> {
    this.dropConnections();
    await this.#server.shutdown();
  }
}

function newClient(
  url: string,
  heartbeatIntervalMs: number = realtimeOptions.heartbeatIntervalMs,
): SupabaseClient {
  return createClient(url, "anon-key", {
    // A fixed user token, so no auth client (and none of its timers) is created.
    accessToken: () => Promise.resolve("user-jwt"),
    realtime: { ...realtimeOptions, heartbeatIntervalMs, reconnectAfterMs: () => 10 },
  });
}

/** Resolves when `condition` holds, checking after every turn of the event loop (for state with no event). */
async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The next status event of `topic` equal to `status`. */
function nextStatus(hub: RealtimeHub, topic: string, status: StatusEvent["status"]): Promise<StatusEvent> {
  return new Promise((resolve) => {
    const off = hub.onStatus((event) => {
      if (event.topic !== topic || event.status !== status) return;
      off();
      resolve(event);
    });
  });
}

function profile(id: string, overrides: Partial<ProfileRow> = {}): ProfileRow {
  return {
    id,
    email: `${id}@example.com`,
    full_name: id,
    role: "executive",
    team_id: "team-1",
    phone: "5215500000000",
    original_phone: null,
    backup_id: null,
    active: true,
    created_at: "2026-01-01T00:00:00Z",
    updated_at: "2026-01-01T00:00:00Z",
    ...overrides,
  };
}

function change(table: string, operation: string, record: object | null, oldRecord: object | null) {
  return { record, old_record: oldRecord, operation, table, schema: "public", id: crypto.randomUUID() };
}

/** A server, a supabase-js client and a hub on it, torn down in order (hub, client socket, server). */
async function withHub(
  fn: (server: FakeRealtime, supabase: SupabaseClient, hub: RealtimeHub) => Promise<void>,
) {
  const server = new FakeRealtime();
  const supabase = newClient(server.url);
  const hub = createRealtimeHub(supabase, { reopenAfterMs: () => 10 });
  try {
    await fn(server, supabase, hub);
  } finally {
    await hub.cleanup();
    await supabase.realtime.disconnect();
    await server.close();
  }
}

const TEAM = "team:0d9c4a56-8d7e-4a8b-9f43-3f1f3b7f0a01";
const EXECUTIVE = "executive:5b0e8a4e-1c1f-4b5c-9a4e-2f0f6e1d2c3b";

Deno.test("hub: 25 listeners on one topic join it once, as a private channel with the user's token", async () => {
  await withHub(async (server, supabase, hub) => {
    const subscribed = nextStatus(hub, TEAM, "SUBSCRIBED");
    const offs = Array.from({ length: 25 }, () => hub.subscribe({ topic: TEAM }, () => {}));
    await subscribed;
    assert.equal(server.received("phx_join", TEAM).length, 1);
    const [join] = server.received("phx_join", TEAM);
    const config = join!.payload.config as { private: boolean };
    assert.equal(config.private, true);
    assert.equal(join!.payload.access_token, "user-jwt");
    assert.equal(supabase.getChannels().length, 1);
    assert.equal(hub.isConnected(TEAM), true);
    assert.equal(hub.isConnected(), true);
    assert.equal(supabase.realtime.heartbeatIntervalMs, 5000, "realtimeOptions reach the RealtimeClient");
    assert.equal(supabase.realtime.timeout, 10000);
    assert.deepEqual(hub.stats(), {
      channels: 1,
      listeners: 25,
      byTopic: { [TEAM]: 25 },
      events: 0,
      reconnects: 0,
    });
    for (const off of offs.slice(1)) off();
    assert.deepEqual(hub.stats().byTopic, { [TEAM]: 1 });
    assert.equal(
      server.received("phx_leave", TEAM).length,
      0,
      "the topic stays joined while a listener remains",
    );
  });
});

Deno.test("hub: a change reaches only the listeners whose table, events and filter match", async () => {
  await withHub(async (server, _supabase, hub) => {
    const got: Record<string, RowChange<unknown>[]> = {
      all: [],
      profiles: [],
      updates: [],
      ana: [],
      other: [],
    };
    const subscribed = nextStatus(hub, TEAM, "SUBSCRIBED");
    hub.subscribe({ topic: TEAM }, (c) => got.all!.push(c));
    hub.subscribe({ topic: TEAM, table: "profiles" }, (c) => got.profiles!.push(c));
    hub.subscribe({ topic: TEAM, table: "profiles", events: ["UPDATE"] }, (c) => got.updates!.push(c));
    hub.subscribe(
      { topic: TEAM, table: "profiles", filter: (c) => (c.record ?? c.old_record).id === "ana" },
      (c) => got.ana!.push(c),
    );
    hub.subscribe({ topic: EXECUTIVE }, (c) => got.other!.push(c));
    await subscribed;
    await nextStatus(hub, EXECUTIVE, "SUBSCRIBED");
    assert.equal(server.received("phx_join", EXECUTIVE).length, 1);

    const delivered = new Promise<void>((resolve) => {
      const off = hub.subscribe({ topic: TEAM, table: "prospects" }, () => {
        off();
        resolve();
      });
    });
    server.broadcast(
      TEAM,
      "UPDATE",
      change("profiles", "UPDATE", profile("ana"), profile("ana", { phone: null })),
    );
    server.broadcastBinary(TEAM, "INSERT", change("profiles", "INSERT", profile("beto"), null), {
      id: "m-2",
    });
    server.broadcast(TEAM, "DELETE", change("profiles", "DELETE", null, profile("ana")));
    server.broadcast(TEAM, "something-else", { hello: "not a row change" });
    server.broadcast(TEAM, "INSERT", change("prospects", "INSERT", { id: "p-1" }, null));
    await delivered;

    assert.deepEqual(got.all!.map((c) => `${c.table}:${c.operation}`), [
      "profiles:UPDATE",
      "profiles:INSERT",
      "profiles:DELETE",
      "prospects:INSERT",
    ]);
    assert.deepEqual(got.profiles!.map((c) => c.operation), ["UPDATE", "INSERT", "DELETE"]);
    assert.deepEqual(got.updates!.map((c) => c.operation), ["UPDATE"]);
    assert.deepEqual(got.ana!.map((c) => c.operation), ["UPDATE", "DELETE"]);
    assert.deepEqual(got.other, [], "another topic's listeners see nothing");

    const [update] = got.updates as RowChange<ProfileRow>[];
    assert.equal(update!.topic, TEAM);
    assert.equal(update!.schema, "public");
    assert.equal(update!.operation === "UPDATE" && update!.old_record.phone, null);
    assert.equal(update!.record?.phone, "5215500000000");
    const binary = got.profiles![1] as RowChange<ProfileRow>;
    assert.equal(binary.record?.id, "beto", "binary user-broadcast frames decode like JSON ones");
    assert.equal(binary.old_record, null);
    assert.equal(hub.stats().events, 4, "the non-row broadcast is not counted");
  });
});

Deno.test("hub: a statement's batch reaches the listeners as one change per row, in write order", async () => {
  await withHub(async (server, _supabase, hub) => {
    const got: RowChange<ProfileRow>[] = [];
    const done = new Promise<void>((resolve) => {
      hub.subscribe({ topic: TEAM, table: "profiles", events: ["UPDATE"] }, (c) => {
        got.push(c);
        if (got.length === 3) resolve();
      });
    });
    await nextStatus(hub, TEAM, "SUBSCRIBED");
    // wa.broadcast_changes: several rows of one statement for a topic travel in `changes`.
    const rows = ["ana", "beto", "caro"].map((id, i) => ({
      record: profile(id, { phone: String(i) }),
      old_record: profile(id),
    }));
    server.broadcast(TEAM, "UPDATE", {
      changes: rows,
      operation: "UPDATE",
      table: "profiles",
      schema: "public",
    });
    await done;
    assert.deepEqual(got.map((c) => [c.record?.id, c.record?.phone, c.old_record?.phone]), [
      ["ana", "0", "5215500000000"],
      ["beto", "1", "5215500000000"],
      ["caro", "2", "5215500000000"],
    ]);
    assert.equal(hub.stats().events, 3, "each row counts as one event");
  });
});

Deno.test("hub: typed subscriptions narrow by operation", async () => {
  await withHub(async (server, _supabase, hub) => {
    const phones: (string | null)[] = [];
    const done = new Promise<void>((resolve) => {
      hub.subscribe({ topic: TEAM, table: "profiles", events: ["UPDATE"] }, (c) => {
        // The table name picks ProfileRow; UPDATE carries both rows.
        if (c.operation === "UPDATE") phones.push(c.old_record.phone, c.record.phone);
        resolve();
      });
    });
    await nextStatus(hub, TEAM, "SUBSCRIBED");
    server.broadcast(
      TEAM,
      "UPDATE",
      change("profiles", "UPDATE", profile("ana"), profile("ana", { phone: "1" })),
    );
    await done;
    assert.deepEqual(phones, ["1", "5215500000000"]);
  });
});

Deno.test("hub: a throwing listener does not stop the others", async () => {
  const errors: unknown[] = [];
  const server = new FakeRealtime();
  const supabase = newClient(server.url);
  const hub = createRealtimeHub(supabase, { onListenerError: (error) => errors.push(error) });
  try {
    const reached = new Promise<void>((resolve) => {
      hub.subscribe({ topic: TEAM }, () => {
        throw new Error("boom");
      });
      hub.subscribe({ topic: TEAM }, () => resolve());
    });
    await nextStatus(hub, TEAM, "SUBSCRIBED");
    server.broadcast(TEAM, "INSERT", change("prospects", "INSERT", { id: "p-1" }, null));
    await reached;
    assert.equal(errors.length, 1);
    assert.equal((errors[0] as Error).message, "boom");
  } finally {
    await hub.cleanup();
    await supabase.realtime.disconnect();
    await server.close();
  }
});

Deno.test("hub: the last unsubscribe leaves the topic and removes the channel; a new listener joins again", async () => {
  await withHub(async (server, supabase, hub) => {
    const subscribed = nextStatus(hub, TEAM, "SUBSCRIBED");
    const a = hub.subscribe({ topic: TEAM }, () => {});
    const b = hub.subscribe({ topic: TEAM }, () => {});
    await subscribed;
    a();
    a();
    assert.equal(server.received("phx_leave", TEAM).length, 0);
    b();
    await server.waitFor((frame) => frame.event === "phx_leave");
    await until(() => supabase.getChannels().length === 0, "the channel to be removed");
    assert.deepEqual(hub.stats(), { channels: 0, listeners: 0, byTopic: {}, events: 0, reconnects: 0 });
    assert.equal(hub.isConnected(TEAM), false);

    // Unsubscribe and subscribe again in the same task (React StrictMode's double effects): one join, no leave.
    const again = nextStatus(hub, TEAM, "SUBSCRIBED");
    const c = hub.subscribe({ topic: TEAM }, () => {});
    await again;
    const channel = supabase.getChannels()[0];
    c();
    const d = hub.subscribe({ topic: TEAM }, () => {});
    await Promise.resolve();
    assert.equal(supabase.getChannels()[0], channel);
    assert.equal(channel!.state, "joined");
    assert.equal(hub.stats().channels, 1);

    // Subscribing while the previous channel is still being removed: supabase-js would hand back the leaving
    // channel, so the hub waits for it to be gone and joins a new one, exactly once.
    d();
    await Promise.resolve();
    assert.equal(hub.stats().channels, 0, "the close has started");
    const third = nextStatus(hub, TEAM, "SUBSCRIBED");
    hub.subscribe({ topic: TEAM }, () => {});
    await third;
    await until(() => server.received("phx_leave", TEAM).length === 2, "the second leave");
    assert.equal(server.received("phx_join", TEAM).length, 3);
    assert.equal(supabase.getChannels().length, 1);
    assert.equal(supabase.getChannels()[0]!.state, "joined");
    assert.equal(hub.isConnected(TEAM), true);
  });
});

Deno.test("hub: closeDelayMs keeps a topic joined for a listener that comes back", async () => {
  const server = new FakeRealtime();
  const supabase = newClient(server.url);
  const hub = createRealtimeHub(supabase, { closeDelayMs: 60_000 });
  try {
    const subscribed = nextStatus(hub, TEAM, "SUBSCRIBED");
    hub.subscribe({ topic: TEAM }, () => {})();
    hub.subscribe({ topic: TEAM }, () => {});
    await subscribed;
    assert.equal(server.received("phx_join", TEAM).length, 1);
    assert.equal(server.received("phx_leave", TEAM).length, 0);
  } finally {
    await hub.cleanup();
    await supabase.realtime.disconnect();
    await server.close();
  }
});

Deno.test("hub: after the connection drops, the client reconnects, rejoins each topic once and resyncs", async () => {
  await withHub(async (server, supabase, hub) => {
    const statuses: string[] = [];
    hub.onStatus((event) => statuses.push(`${event.topic === TEAM ? "team" : "exec"}:${event.status}`));
    const resyncs: string[] = [];
    hub.onResync((event) => resyncs.push(`any:${event.topic === TEAM ? "team" : "exec"}`));
    hub.onResync(TEAM, () => resyncs.push("team"));
    const teamUp = nextStatus(hub, TEAM, "SUBSCRIBED");
    const execUp = nextStatus(hub, EXECUTIVE, "SUBSCRIBED");
    for (let i = 0; i < 10; i++) hub.subscribe({ topic: TEAM }, () => {});
    hub.subscribe({ topic: EXECUTIVE }, () => {});
    await Promise.all([teamUp, execUp]);
    assert.deepEqual(resyncs, [], "the first join is not a resync");

    const teamDown = nextStatus(hub, TEAM, "CHANNEL_ERROR");
    const teamBack = new Promise<void>((resolve) => hub.onResync(TEAM, () => resolve()));
    const execBack = new Promise<void>((resolve) => hub.onResync(EXECUTIVE, () => resolve()));
    server.dropConnections();
    await teamDown;
    await Promise.all([teamBack, execBack]);

    assert.equal(server.connections, 2);
    assert.equal(server.received("phx_join", TEAM, 2).length, 1, "rejoined once on the new connection");
    assert.equal(server.received("phx_join", EXECUTIVE, 2).length, 1);
    assert.equal(supabase.getChannels().length, 2, "still one channel per topic");
    assert.deepEqual(resyncs.sort(), ["any:exec", "any:team", "team"]);
    assert.ok(statuses.includes("team:CHANNEL_ERROR") && statuses.at(-1)?.endsWith(":SUBSCRIBED"));
    assert.equal(hub.stats().reconnects, 2);
    assert.equal(hub.isConnected(TEAM), true);

    // Events flow again on the rejoined channel.
    const delivered = new Promise<void>((resolve) =>
      hub.subscribe({ topic: TEAM, table: "prospects" }, () => resolve())
    );
    server.broadcast(TEAM, "INSERT", change("prospects", "INSERT", { id: "p-1" }, null));
    await delivered;
  });
});

Deno.test("hub: a connection that stops answering heartbeats is noticed within two intervals", async () => {
  // realtimeOptions: a heartbeat every 5 s, declared dead when unanswered by the next one, so within 10 s.
  assert.ok(realtimeOptions.heartbeatIntervalMs * 2 <= 10_000);
  const intervalMs = 200;
  const server = new FakeRealtime();
  const supabase = newClient(server.url, intervalMs);
  const hub = createRealtimeHub(supabase);
  try {
    const up = nextStatus(hub, TEAM, "SUBSCRIBED");
    hub.subscribe({ topic: TEAM }, () => {});
    await up;
    const down = nextStatus(hub, TEAM, "CHANNEL_ERROR");
    const resynced = new Promise<void>((resolve) => hub.onResync(TEAM, () => resolve()));
    const silentFrom = server.frames.length;
    server.silent.add(1);
    await down;
    // Counted in heartbeats, not measured in milliseconds: a heartbeat goes out one interval after the last
    // answer and is given one interval to be answered, so dropping the connection at the first unanswered
    // one is noticing within two intervals, however late the machine runs its timers.
    const unanswered = server.frames.slice(silentFrom)
      .filter((frame) => frame.event === "heartbeat" && frame.connection === 1);
    assert.equal(unanswered.length, 1, "dropped at the first unanswered heartbeat");
    await resynced;
    assert.equal(server.connections, 2);
    assert.equal(server.received("phx_join", TEAM, 2).length, 1);
  } finally {
    await hub.cleanup();
    await supabase.realtime.disconnect();
    await server.close();
  }
});

Deno.test("hub: a channel the server closes is opened again and resyncs", async () => {
  await withHub(async (server, supabase, hub) => {
    const up = nextStatus(hub, TEAM, "SUBSCRIBED");
    hub.subscribe({ topic: TEAM }, () => {});
    await up;
    const closed = nextStatus(hub, TEAM, "CLOSED");
    const resynced = new Promise<void>((resolve) => hub.onResync(TEAM, () => resolve()));
    server.closeChannel(TEAM);
    await closed;
    await resynced;
    assert.equal(server.received("phx_join", TEAM).length, 2);
    assert.equal(supabase.getChannels().length, 1);
    assert.equal(hub.stats().channels, 1);
  });
});

Deno.test("hub: cleanup leaves every topic and forgets every listener", async () => {
  await withHub(async (server, supabase, hub) => {
    const up = Promise.all([nextStatus(hub, TEAM, "SUBSCRIBED"), nextStatus(hub, EXECUTIVE, "SUBSCRIBED")]);
    hub.subscribe({ topic: TEAM }, () => {});
    hub.subscribe({ topic: TEAM, table: "profiles" }, () => {});
    hub.subscribe({ topic: EXECUTIVE }, () => {});
    await up;
    await hub.cleanup();
    assert.equal(supabase.getChannels().length, 0);
    await server.waitFor((frame) => frame.event === "phx_leave" && frame.topic === `realtime:${TEAM}`);
    await server.waitFor((frame) => frame.event === "phx_leave" && frame.topic === `realtime:${EXECUTIVE}`);
    assert.equal(server.received("phx_leave", TEAM).length, 1);
    assert.deepEqual(hub.stats(), { channels: 0, listeners: 0, byTopic: {}, events: 0, reconnects: 0 });
  });
});
