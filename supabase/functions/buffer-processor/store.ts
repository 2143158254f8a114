// The processor's database calls: thin wrappers over the SQL functions of the buffer-processor migration,
// which own every decision about claiming, fencing and idempotency.
import postgres from "postgres";
import type { Sql } from "../_shared/db.ts";
import type { SendPayload } from "../_shared/graph.ts";
import { pairKey, type Slot } from "../_shared/governor.ts";

/** A claimed batch. Fences and sequence numbers are bigints, kept as strings. */
export interface Claim {
  conversation_id: string;
  fence: string;
  first_seq: string | null;
  up_to_seq: string | null;
  message_count: number;
  attempts: number;
}

/** A batch claimed with its context (null for an empty batch) and the typing indicator's slot, if booked. */
export interface ClaimedBatch {
  claim: Claim;
  context: AgentContext | null;
  typingSlot?: Slot;
}

export interface Reply {
  message_id: string;
  status: string;
  body: SendPayload;
  up_to_seq: string;
}

export interface BatchMessage {
  id: string;
  wamid: string;
  type: string;
  text?: string;
  sent_at: string;
  context_wamid?: string;
  /** A tapped reply button or list row (or template quick reply): what the customer chose, by id. */
  reply?: {
    kind: "button_reply" | "list_reply" | "template_button";
    id: string;
    title: string;
    description?: string;
  };
  media?: { id?: string; mime_type?: string; caption?: string; filename?: string } & Partial<MediaAttachment>;
}

/** A media message's file as the agent gets it (buffer-processor/media.ts). */
export interface MediaAttachment {
  state: "pending" | "stored" | "failed" | "removed";
  /** Signed, valid as long as the agent may take. */
  url?: string;
  mime_type?: string;
  size?: number;
  transcript?: string;
  error?: string;
  note?: string;
}

/** The bot's state for a conversation; version 0 means it has never been written. */
export interface ChatSession {
  state: string;
  data: Record<string, unknown>;
  version: number;
}

/** What wa.agent_context_with_session returns for a claimed batch. */
export interface AgentContext {
  reply_key: string;
  conversation: { id: string; phone_number_id: string; display_phone_number: string | null };
  contact: { id: string; wa_id?: string; user_id?: string; name?: string };
  batch: { fence: number; first_seq: number; up_to_seq: number; messages: BatchMessage[] };
  history: { direction: "inbound" | "outbound"; type: string; text: string | null; sent_at: string }[];
  existing_reply: Reply | null;
  session: ChatSession;
  /** An operator paused the bot in this conversation. */
  bot_paused: boolean;
  /** The business number shows the typing indicator while the agent answers (absent: yes). */
  typing_indicator?: boolean;
}

/** The claim behind a fence was lost: the lease expired and another worker took the batch. */
export class StaleFenceError extends Error {
  constructor(fence: string) {
    super(`stale fence ${fence}: the batch belongs to another claim now`);
    this.name = "StaleFenceError";
  }
}

/** An operator paused the bot in the batch's conversation while the agent was answering. */
export class BotPausedError extends Error {
  constructor() {
    super("the bot was paused in this conversation");
    this.name = "BotPausedError";
  }
}

async function fenced<T>(fence: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof postgres.PostgresError && error.code === "P0410") throw new StaleFenceError(fence);
    if (error instanceof postgres.PostgresError && error.code === "P0423") throw new BotPausedError();
    throw error;
  }
}

export interface FailOptions {
  retryAfterMs?: number;
  permanent?: boolean;
}

export type Store = ReturnType<typeof createStore>;

// JSON goes over the wire as text and is cast in SQL, so the driver never double-encodes it.
export function createStore(sql: Sql, settings: { leaseSeconds: number; history: number }) {
  const lease = `${settings.leaseSeconds} seconds`;
  return {
    async claim(worker: string, limit: number): Promise<Claim[]> {
      return await sql<Claim[]>`
        select conversation_id, fence::text, first_seq::text, up_to_seq::text, message_count, attempts
        from wa.claim_buffers(${worker}, ${limit}, ${lease}::interval)`;
    },
    /** claim of one batch, its context and the typing indicator's slot in one round trip (wa.claim_batch). */
    async claimBatch(worker: string): Promise<ClaimedBatch | undefined> {
      const [row] = await sql<
        (Claim & {
          context: AgentContext | null;
          typing_granted: boolean | null;
          typing_wait_ms: number | null;
        })[]
      >`
        select conversation_id, fence::text, first_seq::text, up_to_seq::text, message_count, attempts, context,
               typing_granted, typing_wait_ms
        from wa.claim_batch(${worker}, ${lease}::interval, ${settings.history})`;
      if (row === undefined) return undefined;
      const { context, typing_granted: granted, typing_wait_ms: waitMs, ...claim } = row;
      return granted === null || waitMs === null
        ? { claim, context }
        : { claim, context, typingSlot: { granted, wait_ms: waitMs } };
    },
    async context(fence: string): Promise<AgentContext | null> {
      const [row] = await sql<{ context: AgentContext | null }[]>`
        select wa.agent_context_with_session(${fence}, ${settings.history}) as context`;
      return row?.context ?? null;
    },
    /**
     * Writes the batch's reply (or finds the one written for its messages, taking it over if it failed); `ours`
     * says whether the caller sends it. Throws BotPausedError while the bot is paused.
     */
    beginReply(fence: string, upToSeq: string, payload: SendPayload): Promise<Reply & { ours: boolean }> {
      return fenced(fence, async () => {
        const [row] = await sql<(Reply & { ours: boolean })[]>`
          select message_id, status, body, up_to_seq::text, ours
          from wa.begin_agent_reply(${fence}, ${upToSeq}, ${payload.type}, ${
          JSON.stringify(payload)
        }::text::jsonb, ${lease}::interval)`;
        if (row === undefined) throw new Error("wa.begin_agent_reply returned no row");
        return row;
      });
    },
    /**
     * beginReply and, when the caller sends the reply (ours and pending), the governor's first slot for it (at
     * interactive priority on the database's clock, as the processor's governor books): one round trip.
     */
    beginReplySlot(
      fence: string,
      upToSeq: string,
      payload: SendPayload,
      phoneNumberId: string,
    ): Promise<Reply & { ours: boolean; slot?: Slot }> {
      return fenced(fence, async () => {
        const [row] = await sql<
          (Reply & { ours: boolean; granted: boolean | null; wait_ms: number | null })[]
        >`
          select message_id, status, body, up_to_seq::text, ours, granted, wait_ms
          from wa.begin_agent_reply_slot(${fence}, ${upToSeq}, ${payload.type}, ${
          JSON.stringify(payload)
        }::text::jsonb, ${lease}::interval, ${phoneNumberId}, ${pairKey(payload)})`;
        if (row === undefined) throw new Error("wa.begin_agent_reply_slot returned no row");
        const { granted, wait_ms, ...reply } = row;
        return granted === null || wait_ms === null ? reply : { ...reply, slot: { granted, wait_ms } };
      });
    },
    /**
     * noteOutcome (of `settled.outcome`), complete and recordSend in one round trip (wa.complete_reply): the send
     * is recorded even when the completion fails, which then throws as complete would (StaleFenceError for a
     * stale fence) and counts no outcome. Resolves to the counting's error, if it failed (bookkeeping).
     */
    async completeReply(
      fence: string,
      upToSeq: string,
      send: { messageId: string; outcome: "sent" | "unknown"; wamid?: string; error?: unknown },
      settled: { conversationId: string; outcome: string },
    ): Promise<string | null> {
      const error = send.error === undefined ? null : JSON.stringify(send.error);
      const [row] = await sql<
        { complete_sqlstate: string | null; complete_error: string | null; note_error: string | null }[]
      >`
        select complete_sqlstate, complete_error, note_error
        from wa.complete_reply(${fence}, ${upToSeq}, ${send.messageId}, ${send.outcome}, ${
        send.wamid ?? null
      },
                               ${error}::text::jsonb, ${settled.conversationId}, ${settled.outcome})`;
      if (row?.complete_sqlstate === "P0410") throw new StaleFenceError(fence);
      if (row?.complete_sqlstate != null) {
        throw new Error(`wa.complete_buffer failed (${row.complete_sqlstate}): ${row.complete_error}`);
      }
      return row?.note_error ?? null;
    },
    async recordSend(
      messageId: string,
      outcome: "pending" | "sent" | "failed" | "unknown",
      wamid?: string,
      error?: unknown,
    ): Promise<string> {
      const [row] = await sql<{ status: string }[]>`
        select wa.record_send_result(${messageId}, ${outcome}, ${wamid ?? null},
                                     ${
        error === undefined ? null : JSON.stringify(error)
      }::text::jsonb) as status`;
      return row?.status ?? outcome;
    },
    complete(fence: string, upToSeq: string): Promise<number> {
      return fenced(fence, async () => {
        const [row] = await sql<{ left: number }[]>`select wa.complete_buffer(${fence}, ${upToSeq}) as left`;
        return row?.left ?? 0;
      });
    },
    fail(fence: string, error: string, options: FailOptions = {}): Promise<"retry" | "dead_letter"> {
      const retryAfter = options.retryAfterMs === undefined
        ? null
        : `${Math.ceil(options.retryAfterMs)} milliseconds`;
      return fenced(fence, async () => {
        const [row] = await sql<{ outcome: "retry" | "dead_letter" }[]>`
          select wa.fail_buffer(${fence}, ${error}, p_retry_after => ${retryAfter}::interval,
                                p_permanent => ${options.permanent ?? false}) as outcome`;
        return row?.outcome ?? "retry";
      });
    },
    async session(conversationId: string): Promise<ChatSession> {
      const [row] = await sql<ChatSession[]>`
        select state, data, version::integer from wa.get_chat_session(${conversationId})`;
      if (row === undefined) throw new Error("wa.get_chat_session returned no row");
      return row;
    },
    /**
     * Writes the batch's conversation session if still at `expectedVersion` (else SQLSTATE 40001) and the claim's
     * lease is live (else StaleFenceError), extending the lease.
     */
    writeSession(
      fence: string,
      expectedVersion: number,
      next: Omit<ChatSession, "version">,
    ): Promise<number> {
      const data = JSON.stringify(next.data);
      return fenced(fence, async () => {
        const [row] = await sql<{ version: number }[]>`
          select wa.update_batch_session(${fence}, ${expectedVersion}, ${next.state}, ${data}::text::jsonb,
                                         ${lease}::interval)::integer as version`;
        return row?.version ?? 0;
      });
    },
    /** The agent asked for a human: pause the bot until resumed, flag the conversation, tell the team. */
    async handoff(conversationId: string, reason: string): Promise<void> {
      await sql`select wa.request_handoff(${conversationId}, ${reason})`;
    },
    async noteOutcome(conversationId: string, outcome: string): Promise<void> {
      await sql`select wa.note_batch_outcome(${conversationId}, ${outcome})`;
    },
    async loadBreakers(): Promise<Map<string, unknown>> {
      const rows = await sql<
        { name: string; snapshot: unknown }[]
      >`select name, snapshot from wa.circuit_breakers`;
      return new Map(rows.map((row) => [row.name, row.snapshot]));
    },
    async saveBreaker(name: string, state: string, snapshot: unknown): Promise<void> {
      await sql`select wa.save_circuit_breaker(${name}, ${state}, ${JSON.stringify(snapshot)}::text::jsonb)`;
    },
  };
}
