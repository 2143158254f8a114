// Stand-in for Supabase Realtime on the local stack: no Docker-free Realtime server exists. It keeps the real
// Postgres objects, so the database decides as on a project: private channels are authorized by the RLS
// policies on realtime.messages under the caller's JWT (./authorize.ts), and what realtime.send and
// realtime.broadcast_changes insert into realtime.messages reaches the subscribers of its topic. Hosted
// Realtime decodes those rows from the WAL; here a local-only trigger (local/platform.sql) announces each one
// with NOTIFY after commit, and the row is read by id. It speaks the Phoenix channel protocol of realtime-js
// (./protocol.ts) at /realtime/v1/websocket: join with access_token, heartbeats, access_token refresh, leave,
// broadcast between clients. Presence and Postgres Changes answer that they are not supported.
// Replies and system messages follow supabase/realtime lib/realtime_web/channels/realtime_channel.ex.
import postgres from "postgres";
import { type Claims, createVerifier, type Verifier } from "../../supabase/functions/_shared/auth.ts";
import { errorMessage, log } from "../../supabase/functions/_shared/log.ts";
import { createAnnouncementQueue } from "./announcements.ts";
import { canRead, canWrite, checkToken, Refusal } from "./authorize.ts";
import { decode, encode, encodeUserBroadcast, type Message, type Vsn, VSNS } from "./protocol.ts";

export interface RealtimeServer {
  handle(req: Request): Response | Promise<Response>;
  close(): Promise<void>;
}

const PATH = "/realtime/v1/websocket";
const CHANNEL = "realtime_messages";
/** Realtime re-checks a joined channel's token and policies this often, and when the token expires. */
const RECONFIRM_MS = 5 * 60 * 1000;
const NOT_SUPPORTED = "is not supported by the local Realtime stand-in";

interface Connection {
  socket: WebSocket;
  vsn: Vsn;
  /** The connection's apikey: the access token of joins that bring none. */
  apikey: string;
  headers: Record<string, string>;
  channels: Map<string, Channel>;
  /** Client frames are handled one after another, as a Phoenix channel process handles its mailbox. */
  queue: Promise<void>;
}

interface Channel {
  connection: Connection;
  /** As on the wire: `realtime:<name>`. */
  topic: string;
  /** The name policies see through realtime.topic(). */
  name: string;
  joinRef: string | null;
  private: boolean;
  self: boolean;
  ack: boolean;
  token: string;
  claims: Claims;
  /** Whether its INSERT policies allow client broadcasts; checked on the first one, reset by a new token. */
  write?: Promise<boolean>;
  timer?: ReturnType<typeof setTimeout>;
}

/** A row of realtime.messages to deliver. */
interface BroadcastRow {
  id: string;
  topic: string;
  event: string;
  payload: unknown;
  private: boolean | null;
}

/** A row announced by the NOTIFY trigger. */
interface Announcement {
  id: string;
  inserted_at: string;
  topic: string | null;
}

export function createRealtimeServer(options: { dbUrl: string; jwtSecret: string }): RealtimeServer {
  const sql = postgres(options.dbUrl, { max: 4, onnotice: () => {} });
  const verify: Verifier = createVerifier({ JWT_SECRET: options.jwtSecret });
  const connections = new Set<Connection>();
  /** Joined channels by privacy and name: a database broadcast reaches only channels of its own privacy. */
  const subscribers = new Map<string, Set<Channel>>();
  const key = (isPrivate: boolean, name: string) => `${isPrivate ? "private" : "public"}:${name}`;

  const announcements = createAnnouncementQueue<Announcement>(deliver);
  const listening = sql.listen(CHANNEL, (payload) => announcements.push(JSON.parse(payload)));
  listening.catch((error) =>
    log("error", { function: "realtime", msg: `LISTEN ${CHANNEL} failed`, error: errorMessage(error) })
  );

  /** Reads the announced rows somebody listens to, in one query per batch, and sends them in order. */
  async function deliver(announced: Announcement[]): Promise<void> {
    const batch = announced.filter((row) =>
      row.topic === null || subscribers.has(key(true, row.topic)) || subscribers.has(key(false, row.topic))
    );
    if (batch.length === 0) return;
    // Both as text: postgres.js would turn timestamps into Dates and drop their microseconds.
    const ids = batch.map((row) => row.id);
    const times = batch.map((row) => row.inserted_at);
    try {
      const rows = await sql<BroadcastRow[]>`
        select m.id, m.topic, m.event, m.payload, m.private
        from unnest(${ids}::text[], ${times}::text[]) with ordinality as a (id, inserted_at, n)
        join realtime.messages m on m.id = a.id::uuid and m.inserted_at = a.inserted_at::timestamp
        where m.extension = 'broadcast' and m.payload is not null and m.event is not null
        order by a.n`;
      for (const row of rows) {
        for (const channel of subscribers.get(key(row.private ?? false, row.topic)) ?? []) {
          send(channel.connection, {
            joinRef: null,
            ref: null,
            topic: channel.topic,
            event: "broadcast",
            payload: { type: "broadcast", event: row.event, payload: row.payload, meta: { id: row.id } },
          });
        }
      }
    } catch (error) {
      log("error", {
        function: "realtime",
        msg: "broadcast rows not delivered",
        error: errorMessage(error),
      });
    }
  }

  function send(connection: Connection, message: Message): void {
    if (connection.socket.readyState === WebSocket.OPEN) {
      connection.socket.send(encode(message, connection.vsn));
    }
  }

  function reply(connection: Connection, message: Message, status: "ok" | "error", response: object): void {
    send(connection, { ...message, event: "phx_reply", payload: { status, response } });
  }

  /** A message to the client about its channel, like Realtime's push_system_message. */
  function system(channel: Channel, extension: string, status: "ok" | "error", message: string): void {
    send(channel.connection, {
      joinRef: channel.joinRef,
      ref: null,
      topic: channel.topic,
      event: "system",
      payload: { extension, status, message, channel: channel.name },
    });
  }

  function remove(channel: Channel): void {
    clearTimeout(channel.timer);
    channel.connection.channels.delete(channel.topic);
    const group = subscribers.get(key(channel.private, channel.name));
    group?.delete(channel);
    if (group?.size === 0) subscribers.delete(key(channel.private, channel.name));
  }

  /** The server ends a channel: the reason as a system message, then phx_close (Realtime's shutdown_response). */
  function shutdown(channel: Channel, reason?: string): void {
    remove(channel);
    if (reason !== undefined) system(channel, "system", "error", reason);
    send(channel.connection, {
      joinRef: channel.joinRef,
      ref: channel.joinRef,
      topic: channel.topic,
      event: "phx_close",
      payload: {},
    });
  }

  /** The token's claims when it is valid and, on a private channel, the policies let it read; else why not. */
  async function authorize(connection: Connection, name: string, isPrivate: boolean, token: string) {
    const claims = await checkToken(verify, token);
    if (claims instanceof Refusal) return claims;
    if (!isPrivate) return claims;
    try {
      if (await canRead(sql, { topic: name, claims, headers: connection.headers })) return claims;
    } catch (error) {
      log("warn", {
        function: "realtime",
        msg: "policy check failed",
        topic: name,
        error: errorMessage(error),
      });
      if ((error as { code?: string }).code === undefined) {
        return new Refusal("Realtime was unable to connect to the project database");
      }
    }
    return new Refusal(`You do not have permissions to read from this Channel topic: ${name}`);
  }

  /** Re-checks the token and policies when the token expires and every few minutes, as Realtime does. */
  function schedule(channel: Channel): void {
    clearTimeout(channel.timer);
    const expiresInMs = ((channel.claims.exp ?? 0) - Date.now() / 1000) * 1000;
    channel.timer = setTimeout(() => {
      enqueue(channel.connection, async () => {
        if (channel.connection.channels.get(channel.topic) !== channel) return;
        const result = await authorize(channel.connection, channel.name, channel.private, channel.token);
        if (result instanceof Refusal) return shutdown(channel, result.reason);
        channel.claims = result;
        schedule(channel);
      });
    }, Math.max(0, Math.min(RECONFIRM_MS, expiresInMs)));
  }

  async function join(connection: Connection, message: Message): Promise<void> {
    const name = message.topic.replace(/^realtime:/, "");
    if (!message.topic.startsWith("realtime:") || name === "") {
      return reply(connection, message, "error", { reason: "You must provide a topic name" });
    }
    const config = (message.payload.config ?? {}) as {
      broadcast?: { self?: boolean; ack?: boolean };
      presence?: { enabled?: boolean };
      postgres_changes?: unknown[];
      private?: boolean;
    };
    if ((config.postgres_changes ?? []).length > 0) {
      return reply(connection, message, "error", {
        reason: `Postgres Changes ${NOT_SUPPORTED}: broadcast row changes from the database ` +
          "(realtime.broadcast_changes) and listen to them on a private channel",
      });
    }
    // Joining a topic again replaces the channel, as Phoenix closes the previous join of a topic.
    const previous = connection.channels.get(message.topic);
    if (previous !== undefined) shutdown(previous);
    const token = [message.payload.access_token, message.payload.user_token]
      .find((value): value is string => typeof value === "string") ?? connection.apikey;
    const isPrivate = config.private === true;
    const result = await authorize(connection, name, isPrivate, token);
    if (result instanceof Refusal) return reply(connection, message, "error", { reason: result.reason });
    // Until LISTEN is in place a broadcast committed after the join's reply could be missed.
    if (!(await listening.then(() => true, () => false))) {
      return reply(connection, message, "error", {
        reason: "Realtime was unable to connect to the project database",
      });
    }
    const channel: Channel = {
      connection,
      topic: message.topic,
      name,
      joinRef: message.joinRef,
      private: isPrivate,
      self: config.broadcast?.self === true,
      ack: config.broadcast?.ack === true,
      token,
      claims: result,
    };
    connection.channels.set(channel.topic, channel);
    const group = subscribers.get(key(isPrivate, name)) ?? new Set();
    subscribers.set(key(isPrivate, name), group.add(channel));
    reply(connection, message, "ok", { postgres_changes: [] });
    schedule(channel);
    if (config.presence?.enabled === true) system(channel, "presence", "error", `Presence ${NOT_SUPPORTED}`);
  }

  /** A new token for a joined channel: verified and authorized again, or the channel is shut down. */
  async function refresh(channel: Channel, token: unknown): Promise<void> {
    if (typeof token !== "string" || token === channel.token) return;
    const result = await authorize(channel.connection, channel.name, channel.private, token);
    if (result instanceof Refusal) return shutdown(channel, result.reason);
    Object.assign(channel, { token, claims: result, write: undefined });
    schedule(channel);
  }

  /** A client broadcast: relayed to the topic's channels of the same privacy when the policies allow it. */
  async function broadcast(channel: Channel, message: Message): Promise<void> {
    if (channel.private) {
      channel.write ??= canWrite(sql, {
        topic: channel.name,
        claims: channel.claims,
        headers: channel.connection.headers,
      })
        .catch(() => false);
    }
    if (!channel.private || await channel.write) {
      const { binary, event, payload, meta } = message.payload as {
        binary?: Uint8Array;
        event?: unknown;
        payload?: unknown;
        meta?: unknown;
      };
      for (const other of subscribers.get(key(channel.private, channel.name)) ?? []) {
        if (other === channel && !channel.self) continue;
        if (binary === undefined) {
          send(other.connection, {
            joinRef: null,
            ref: null,
            topic: other.topic,
            event: "broadcast",
            payload: { type: "broadcast", event, payload, ...(meta === undefined ? {} : { meta }) },
          });
        } else if (
          other.connection.vsn === "2.0.0" && other.connection.socket.readyState === WebSocket.OPEN
        ) {
          other.connection.socket.send(encodeUserBroadcast(other.topic, String(event), binary));
        }
      }
    }
    if (channel.ack && message.ref !== null) reply(channel.connection, message, "ok", {});
  }

  async function receive(connection: Connection, message: Message): Promise<void> {
    if (message.event === "phx_join") return await join(connection, message);
    const channel = connection.channels.get(message.topic);
    if (channel === undefined || (message.joinRef !== null && message.joinRef !== channel.joinRef)) {
      if (message.ref !== null) reply(connection, message, "error", { reason: "unmatched topic" });
      return;
    }
    switch (message.event) {
      case "phx_leave":
        remove(channel);
        reply(connection, message, "ok", {});
        send(connection, {
          joinRef: channel.joinRef,
          ref: channel.joinRef,
          topic: channel.topic,
          event: "phx_close",
          payload: {},
        });
        return;
      case "access_token":
        return await refresh(channel, message.payload.access_token);
      case "broadcast":
        return await broadcast(channel, message);
      case "presence":
        return reply(connection, message, "error", { reason: `Presence ${NOT_SUPPORTED}` });
      default:
        log("info", { function: "realtime", msg: "unexpected client message ignored", event: message.event });
    }
  }

  function enqueue(connection: Connection, task: () => Promise<void> | void): void {
    connection.queue = connection.queue.then(task).catch((error) =>
      log("error", { function: "realtime", msg: "client message failed", error: errorMessage(error) })
    );
  }

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    if (url.pathname.replace(/\/$/, "") !== PATH) {
      return Response.json({ error: `${url.pathname} ${NOT_SUPPORTED}; the websocket is at ${PATH}` }, {
        status: 404,
      });
    }
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return Response.json({ error: "expected a websocket upgrade" }, { status: 400 });
    }
    const vsn = (url.searchParams.get("vsn") ?? "1.0.0") as Vsn;
    if (!VSNS.includes(vsn)) return Response.json({ error: `unsupported vsn ${vsn}` }, { status: 400 });
    // The socket's own key, as Realtime's UserSocket checks it before any channel is joined.
    const apikey = req.headers.get("x-api-key") ?? url.searchParams.get("apikey") ?? "";
    const claims = await checkToken(verify, apikey);
    if (claims instanceof Refusal) return Response.json({ error: claims.reason }, { status: 403 });

    const headers = Object.fromEntries(req.headers);
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.binaryType = "arraybuffer";
    const connection: Connection = {
      socket,
      vsn,
      apikey,
      headers,
      channels: new Map(),
      queue: Promise.resolve(),
    };
    connections.add(connection);
    socket.onmessage = (event) => {
      let message: Message;
      try {
        message = decode(event.data, vsn);
      } catch (error) {
        log("warn", { function: "realtime", msg: "malformed frame ignored", error: errorMessage(error) });
        return;
      }
      // Heartbeats are the socket's, not a channel's: answered at once, even while a join is being authorized.
      if (message.topic === "phoenix" && message.event === "heartbeat") reply(connection, message, "ok", {});
      else enqueue(connection, () => receive(connection, message));
    };
    socket.onclose = () => {
      connections.delete(connection);
      for (const channel of [...connection.channels.values()]) remove(channel);
    };
    return response;
  }

  return {
    handle,
    async close() {
      const pending = [...connections].map((connection) => connection.queue);
      for (const connection of connections) {
        for (const channel of [...connection.channels.values()]) remove(channel);
        connection.socket.close(1001, "server shutting down");
      }
      connections.clear();
      await Promise.all(pending);
      await listening.then(({ unlisten }) => unlisten(), () => {});
      await announcements.idle();
      await sql.end();
    },
  };
}
