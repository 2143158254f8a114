// One Realtime channel per topic per client, however many components listen (seed 001: ~5 channels per
// table per user, each costing the server its own subscription). The database broadcasts row changes with
// realtime.broadcast_changes on private topics (`team:<uuid>`, `executive:<uuid>`); the hub joins a topic on
// its first listener, dispatches each change to the listeners whose table, events and filter match, and
// leaves the topic when its last listener goes.
//
// Reconnection is supabase-js's own: its heartbeat notices a dead socket, it reconnects and rejoins the same
// channel, so the hub never subscribes twice. What the hub adds is the signal caches need: after a topic
// rejoins following an error, a timeout or a close, `onResync` listeners refetch what they may have missed
// while disconnected, once, instead of polling.
import type { RealtimeChannel, SupabaseClient } from "@supabase/supabase-js";
import type { ChangeOperation, RowChange, WabaseTables } from "./types.ts";

/**
 * Realtime options for `createClient(url, key, { realtime: realtimeOptions })`. A heartbeat every 5 s whose
 * reply is awaited for another 5 s notices a dead connection within 10 s (supabase-js's default is 25 s, so up
 * to 50 s of silently missed changes); pushes (joins, leaves) time out after 10 s.
 */
export const realtimeOptions = { heartbeatIntervalMs: 5000, timeout: 10000 } as const;

/** A channel's subscription status, as supabase-js reports it. */
export type ChannelStatus = "SUBSCRIBED" | "CHANNEL_ERROR" | "TIMED_OUT" | "CLOSED";

export interface StatusEvent {
  topic: string;
  status: ChannelStatus;
  error?: Error;
}

export interface ResyncEvent {
  /** The topic that rejoined: changes on it may have been missed. */
  topic: string;
}

export type Unsubscribe = () => void;
export type ChangeListener<T> = (change: RowChange<T>) => void;

export interface SubscribeOptions<T> {
  /** The topic without the `realtime:` prefix: `team:<uuid>` or `executive:<uuid>`. */
  topic: string;
  /** Only changes of this table (default: every table broadcast on the topic). */
  table?: string;
  /** Only these operations (default `"*"`: all). */
  events?: readonly ChangeOperation[] | "*";
  /** Only changes for which this returns true (a row filter, in JS, on the one shared channel). */
  filter?: (change: RowChange<T>) => boolean;
}

export interface HubStats {
  /** Open channels: one per topic with listeners. */
  channels: number;
  /** Row-change listeners across every topic. */
  listeners: number;
  /** Listeners per topic. */
  byTopic: Record<string, number>;
  /** Row changes received since the hub was created. */
  events: number;
  /** Rejoins after an error, timeout or close (each one a resync). */
  reconnects: number;
}

export interface RealtimeHub {
  /** Listens to one table's changes; the row type follows from the table name. */
  subscribe<K extends keyof WabaseTables>(
    options: SubscribeOptions<WabaseTables[K]> & { table: K },
    listener: ChangeListener<WabaseTables[K]>,
  ): Unsubscribe;
  /** Listens to row changes on a topic. */
  subscribe<T extends object = Record<string, unknown>>(
    options: SubscribeOptions<T>,
    listener: ChangeListener<T>,
  ): Unsubscribe;
  /** Status changes of every topic's channel. */
  onStatus(listener: (event: StatusEvent) => void): Unsubscribe;
  /** Called when any topic rejoined after an interruption. */
  onResync(listener: (event: ResyncEvent) => void): Unsubscribe;
  /** Called when `topic` rejoined after an interruption. */
  onResync(topic: string, listener: (event: ResyncEvent) => void): Unsubscribe;
  /** Whether `topic`'s channel is joined on a connected socket; without a topic, whether the socket is. */
  isConnected(topic?: string): boolean;
  stats(): HubStats;
  /** Leaves every topic and forgets every listener (sign-out). The hub stays usable. */
  cleanup(): Promise<void>;
}

export interface RealtimeHubOptions {
  /**
   * Keep a topic joined this long after its last listener left, for a listener that comes back (default 0:
   * until the end of the current task).
   */
  closeDelayMs?: number;
  /** When the server closes a topic that still has listeners, wait this long before joining it again. */
  reopenAfterMs?: (attempt: number) => number;
  /** Where a throwing listener's error goes (default console.error); other listeners still run. */
  onListenerError?: (error: unknown, topic: string) => void;
}

/** What the hub uses of a SupabaseClient. */
export type RealtimeSource = Pick<SupabaseClient, "channel" | "removeChannel" | "realtime">;

interface Registration {
  table: string | undefined;
  events: ReadonlySet<string> | null;
  filter: ((change: RowChange<never>) => boolean) | undefined;
  listener: (change: RowChange<never>) => void;
}

interface Topic {
  readonly name: string;
  readonly listeners: Set<Registration>;
  channel: RealtimeChannel | null;
  status: ChannelStatus | null;
  /** An error, timeout or close happened since the last SUBSCRIBED: the next one is a resync. */
  interrupted: boolean;
  reopenAttempts: number;
  timer: ReturnType<typeof setTimeout> | undefined;
}

const OPERATIONS: ReadonlySet<string> = new Set(["INSERT", "UPDATE", "DELETE"]);

function defaultReopenAfterMs(attempt: number): number {
  return [1000, 2000, 5000][attempt - 1] ?? 10000;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

/**
 * A broadcast message as its RowChanges, in write order: one for a single row (realtime.broadcast_changes'
 * payload), one per element of `changes` for a statement's batch; none when it is not a row change (another
 * broadcast on the topic).
 */
function toRowChanges(topic: string, message: unknown): RowChange<never>[] {
  if (!isRecord(message) || !isRecord(message.payload)) return [];
  const payload = message.payload;
  const operation = typeof payload.operation === "string" ? payload.operation : message.event;
  if (typeof operation !== "string" || !OPERATIONS.has(operation)) return [];
  if (typeof payload.table !== "string") return [];
  const meta = isRecord(message.meta) ? message.meta : {};
  const id = typeof payload.id === "string" ? payload.id : typeof meta.id === "string" ? meta.id : undefined;
  const rows = Array.isArray(payload.changes) ? payload.changes.filter(isRecord) : [payload];
  return rows.map((row) =>
    ({
      topic,
      table: payload.table,
      schema: typeof payload.schema === "string" ? payload.schema : "public",
      operation,
      record: row.record ?? null,
      old_record: row.old_record ?? null,
      ...(id === undefined ? {} : { id }),
    }) as RowChange<never>
  );
}

/** A hub over `supabase`'s Realtime client. Create one per client (per signed-in session). */
export function createRealtimeHub(supabase: RealtimeSource, options: RealtimeHubOptions = {}): RealtimeHub {
  const closeDelayMs = options.closeDelayMs ?? 0;
  const reopenAfterMs = options.reopenAfterMs ?? defaultReopenAfterMs;
  const reportError = options.onListenerError ??
    ((error: unknown, topic: string) => console.error(`wabase realtime listener on ${topic} threw`, error));

  const topics = new Map<string, Topic>();
  // Channels being left, by topic: supabase-js would hand a leaving channel back for the same topic, so a
  // topic joined again waits for its previous channel to be gone.
  const removals = new Map<string, Promise<void>>();
  const statusListeners = new Set<(event: StatusEvent) => void>();
  const resyncListeners = new Map<string | null, Set<(event: ResyncEvent) => void>>();
  let events = 0;
  let reconnects = 0;

  function safely(topic: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      reportError(error, topic);
    }
  }

  function emitStatus(topic: Topic, status: ChannelStatus, error?: Error): void {
    if (topic.status === status) return;
    topic.status = status;
    const event: StatusEvent = error === undefined
      ? { topic: topic.name, status }
      : { topic: topic.name, status, error };
    for (const listener of [...statusListeners]) safely(topic.name, () => listener(event));
  }

  function emitResync(name: string): void {
    reconnects++;
    const event: ResyncEvent = { topic: name };
    const listeners = [...(resyncListeners.get(name) ?? []), ...(resyncListeners.get(null) ?? [])];
    for (const listener of listeners) safely(name, () => listener(event));
  }

  function dispatch(topic: Topic, message: unknown): void {
    for (const change of toRowChanges(topic.name, message)) {
      events++;
      // A snapshot: listeners may unsubscribe (or subscribe) while being called.
      for (const registration of [...topic.listeners]) {
        if (!topic.listeners.has(registration)) continue;
        if (registration.table !== undefined && registration.table !== change.table) continue;
        if (registration.events !== null && !registration.events.has(change.operation)) continue;
        safely(topic.name, () => {
          if (registration.filter === undefined || registration.filter(change)) registration.listener(change);
        });
      }
    }
  }

  function onChannelStatus(topic: Topic, channel: RealtimeChannel, status: string, error?: Error): void {
    // A channel the hub already let go of (its CLOSED after a leave, a late error) says nothing about the topic.
    if (topics.get(topic.name) !== topic || topic.channel !== channel) return;
    if (status === "SUBSCRIBED") {
      topic.reopenAttempts = 0;
      emitStatus(topic, status);
      if (topic.interrupted) {
        topic.interrupted = false;
        emitResync(topic.name);
      }
      return;
    }
    if (status !== "CHANNEL_ERROR" && status !== "TIMED_OUT" && status !== "CLOSED") return;
    topic.interrupted = true;
    emitStatus(topic, status, error);
    if (status === "CLOSED") {
      // Closed by the server (the hub's own leaves were filtered out above): supabase-js does not rejoin a
      // closed channel, so the hub opens a new one while listeners remain, with a growing delay.
      topic.channel = null;
      topic.reopenAttempts++;
      clearTimeout(topic.timer);
      topic.timer = setTimeout(() => {
        topic.timer = undefined;
        open(topic);
      }, reopenAfterMs(topic.reopenAttempts));
    }
  }

  function open(topic: Topic): void {
    if (topics.get(topic.name) !== topic || topic.channel !== null || topic.listeners.size === 0) return;
    const pending = removals.get(topic.name);
    if (pending !== undefined) {
      pending.then(() => open(topic));
      return;
    }
    const channel = supabase.channel(topic.name, { config: { private: true } });
    topic.channel = channel;
    channel.on("broadcast", { event: "*" }, (message) => dispatch(topic, message));
    channel.subscribe((status, error) => onChannelStatus(topic, channel, status, error));
  }

  function close(topic: Topic): Promise<void> {
    clearTimeout(topic.timer);
    topic.timer = undefined;
    if (topics.get(topic.name) === topic) topics.delete(topic.name);
    const channel = topic.channel;
    topic.channel = null;
    if (channel === null) return removals.get(topic.name) ?? Promise.resolve();
    const previous = removals.get(topic.name) ?? Promise.resolve();
    const removal: Promise<void> = previous.then(async () => {
      try {
        await supabase.removeChannel(channel);
      } catch {
        // supabase-js reports a failed leave as a status, not a rejection; a throw means a broken client, and
        // the server drops the subscription with the socket anyway: nothing for the hub to retry.
      } finally {
        if (removals.get(topic.name) === removal) removals.delete(topic.name);
      }
    });
    removals.set(topic.name, removal);
    return removal;
  }

  function release(topic: Topic, registration: Registration): void {
    if (!topic.listeners.delete(registration) || topic.listeners.size > 0) return;
    const closeIfUnused = () => {
      topic.timer = undefined;
      if (topic.listeners.size === 0 && topics.get(topic.name) === topic) void close(topic);
    };
    clearTimeout(topic.timer);
    // Even with no delay, not before the current task ends: a component that unsubscribes and subscribes
    // again in one go (React StrictMode's double effects, a re-keyed row) keeps the joined channel.
    if (closeDelayMs <= 0) queueMicrotask(closeIfUnused);
    else topic.timer = setTimeout(closeIfUnused, closeDelayMs);
  }

  function subscribe<T>(spec: SubscribeOptions<T>, listener: ChangeListener<T>): Unsubscribe {
    let topic = topics.get(spec.topic);
    if (topic === undefined) {
      topic = {
        name: spec.topic,
        listeners: new Set(),
        channel: null,
        status: null,
        interrupted: false,
        reopenAttempts: 0,
        timer: undefined,
      };
      topics.set(spec.topic, topic);
    } else if (topic.channel !== null && topic.listeners.size === 0) {
      // Back within closeDelayMs: the channel is still joined.
      clearTimeout(topic.timer);
      topic.timer = undefined;
    }
    const registration: Registration = {
      table: spec.table,
      events: spec.events === undefined || spec.events === "*" ? null : new Set(spec.events),
      filter: spec.filter as Registration["filter"],
      listener: listener as Registration["listener"],
    };
    topic.listeners.add(registration);
    open(topic);
    const owner = topic;
    return () => release(owner, registration);
  }

  function onResync(
    topicOrListener: string | ((event: ResyncEvent) => void),
    maybeListener?: (event: ResyncEvent) => void,
  ): Unsubscribe {
    const key = typeof topicOrListener === "string" ? topicOrListener : null;
    const listener = typeof topicOrListener === "string" ? maybeListener : topicOrListener;
    if (listener === undefined) throw new TypeError("onResync needs a listener");
    let set = resyncListeners.get(key);
    if (set === undefined) resyncListeners.set(key, set = new Set());
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && resyncListeners.get(key) === set) resyncListeners.delete(key);
    };
  }

  return {
    subscribe,
    onResync,
    onStatus(listener) {
      statusListeners.add(listener);
      return () => statusListeners.delete(listener);
    },
    isConnected(topic) {
      if (!supabase.realtime.isConnected()) return false;
      if (topic === undefined) return true;
      return topics.get(topic)?.channel?.state === "joined";
    },
    stats() {
      const byTopic: Record<string, number> = {};
      let listeners = 0;
      let channels = 0;
      for (const topic of topics.values()) {
        if (topic.channel !== null) channels++;
        if (topic.listeners.size === 0) continue;
        byTopic[topic.name] = topic.listeners.size;
        listeners += topic.listeners.size;
      }
      return { channels, listeners, byTopic, events, reconnects };
    },
    async cleanup() {
      const closing = [...topics.values()].map((topic) => {
        topic.listeners.clear();
        return close(topic);
      });
      statusListeners.clear();
      resyncListeners.clear();
      await Promise.all([...closing, ...removals.values()]);
    },
  };
}
