// The one send path: every message to the Graph API (bot replies, operator sends, campaign messages, read
// receipts) first books a slot from the SQL send governor (wa.take_send_slot: the number's throughput and the
// pair rate, WHATSAPP.md 4.2-4.3), waits for it, and when Meta still answers 130429 or 131056 tells the
// governor (wa.note_send_throttled) and sends the same message again after the backoff. Nothing was sent on
// those answers, so the retry never doubles a message; the caller's exactly-once bookkeeping is unchanged.
import type { Sql } from "./db.ts";
import { type GraphClient, type SendOutcome, type SendPayload, THROTTLE_CODES } from "./graph.ts";

/** interactive: bot replies, operator sends, receipts (first); campaign: follow-up campaigns (last). */
export type SendPriority = "interactive" | "campaign";

export interface GovernorOptions {
  priority: SendPriority;
  /** The longest a send waits in all for its slots; past it the send fails as retryable (nothing was sent). */
  maxWaitMs: number;
  /** Waits; tests move `clock` instead. */
  sleep?: (ms: number) => Promise<void>;
  /** The time the governor books at (epoch ms); default the database's clock. */
  clock?: () => number;
}

/** A wa.take_send_slot answer. */
export interface Slot {
  granted: boolean;
  wait_ms: number;
}

/** A governed Graph API client; a send may come with its first slot booked already. */
export interface GovernedGraph extends GraphClient {
  /** As GraphClient.send; `booked`: the first slot, taken in the caller's own round trip (a bot reply's). */
  send(phoneNumberId: string, payload: SendPayload, booked?: Slot): Promise<SendOutcome>;
  /** As GraphClient.markRead; `booked`: its slot, taken in the caller's own round trip (a batch's claim). */
  markRead(
    phoneNumberId: string,
    wamid: string,
    options?: { typing?: boolean; timeoutMs?: number; booked?: Slot },
  ): Promise<boolean>;
}

/** Bot replies and operator sends: a user waits, so at most 10 s for a slot, then a retryable failure. */
export const INTERACTIVE: GovernorOptions = { priority: "interactive", maxWaitMs: 10_000 };

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The pair-rate key of a message: the wa_id (digits of `to`) or the BSUID (`recipient`). */
export function pairKey(payload: SendPayload): string | null {
  if (typeof payload.to === "string") return payload.to.replace(/\D/g, "");
  if (typeof payload.recipient === "string") return payload.recipient;
  return null;
}

/** Thrown inside a governed send when no slot comes within maxWaitMs. */
class NoSlotError extends Error {
  constructor(readonly waitMs: number) {
    super(`send governor: no slot within the wait allowed (next in ${waitMs} ms)`);
  }
}

/** `graph` with every call passing the send governor on `sql` at `options.priority`. */
export function governed(graph: GraphClient, sql: Sql, options: GovernorOptions): GovernedGraph {
  const sleep = options.sleep ?? realSleep;
  // null: the database's clock_timestamp(), so every isolate books on one clock.
  const now = () => options.clock === undefined ? null : new Date(options.clock()).toISOString();

  /**
   * Waits for a slot of this number (and pair), starting from `booked` if given; throws NoSlotError past the
   * allowed wait.
   */
  async function slot(
    phoneNumberId: string,
    recipient: string | null,
    budget: { waited: number },
    booked?: Slot,
  ) {
    for (;;) {
      const [row] = booked === undefined
        ? await sql<Slot[]>`
        select granted, wait_ms
        from wa.take_send_slot(${phoneNumberId}, ${recipient}, ${options.priority}, coalesce(${now()}::timestamptz, clock_timestamp()))`
        : [booked];
      booked = undefined;
      if (row === undefined) throw new Error("wa.take_send_slot returned no row");
      if (!row.granted && budget.waited + row.wait_ms > options.maxWaitMs) throw new NoSlotError(row.wait_ms);
      if (row.wait_ms > 0) {
        budget.waited += row.wait_ms;
        await sleep(row.wait_ms);
      }
      if (row.granted) return;
    }
  }

  return {
    async send(phoneNumberId, payload, booked): Promise<SendOutcome> {
      const recipient = pairKey(payload);
      const budget = { waited: 0 };
      for (;;) {
        try {
          await slot(phoneNumberId, recipient, budget, booked);
          booked = undefined;
        } catch (error) {
          if (!(error instanceof NoSlotError)) throw error;
          return {
            kind: "failed",
            retryable: true,
            retryAfterMs: error.waitMs,
            error: { code: null, message: error.message, http_status: null },
          };
        }
        const result = await graph.send(phoneNumberId, payload);
        if (
          result.kind !== "failed" || result.error.code === null || !THROTTLE_CODES.has(result.error.code)
        ) {
          return result;
        }
        await sql`select wa.note_send_throttled(${phoneNumberId}, ${recipient}, ${result.error.code},
                                                coalesce(${now()}::timestamptz, clock_timestamp()))`;
      }
    },
    async markRead(phoneNumberId, wamid, options = {}) {
      const { booked, ...rest } = options;
      // A receipt (with or without the typing indicator) counts against the number's throughput, not against
      // any pair.
      await slot(phoneNumberId, null, { waited: 0 }, booked);
      return await graph.markRead(phoneNumberId, wamid, rest);
    },
  };
}
