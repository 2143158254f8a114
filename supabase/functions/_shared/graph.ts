// Sending through the WhatsApp Cloud API, with every outcome classified: sent (Meta returned a wamid),
// failed (Meta said no, or nothing left this machine: safe to try again later), or unknown (the request may
// have been executed: never resent automatically, since /messages has no idempotency key).
import { BrokenCircuitError, TaskCancelledError } from "cockatiel";
import { z } from "zod";
import type { Resilient, RetryAfterHint } from "./resilience.ts";
/** The Graph API request body of a message (`messaging_product`, recipient, `type` and its object). */
export type SendPayload = Record<string, unknown> & { type: string };

export type SendOutcome =
  | { kind: "sent"; wamid: string }
  | { kind: "failed"; retryable: boolean; error: GraphErrorBody; retryAfterMs?: number }
  | { kind: "unknown"; error: string };

export interface GraphErrorBody {
  code: number | null;
  message: string;
  http_status: number | null;
  details?: string;
}

// Codes Meta documents as transient (WHATSAPP.md §3.2): overload, rate limits, maintenance.
export const RETRYABLE_CODES: ReadonlySet<number> = new Set([
  1,
  2,
  4,
  80007,
  130429,
  131000,
  131016,
  131056,
  131057,
  133004,
]);
/** Meta's "too fast" codes (number throughput, pair rate): paced by the send governor (governor.ts), not here. */
export const THROTTLE_CODES: ReadonlySet<number> = new Set([130429, 131056]);

/** The body of a Graph API error answer. */
export const graphError = z.object({
  error: z.object({
    code: z.number().optional(),
    message: z.string().optional(),
    error_data: z.object({ details: z.string().optional() }).loose().optional(),
  }).loose(),
}).loose();

const sendResponse = z.object({ messages: z.array(z.object({ id: z.string().min(1) }).loose()).min(1) })
  .loose();

/** A failure that did not execute the send: retrying is safe. */
export class GraphRetryableError extends Error implements RetryAfterHint {
  constructor(readonly body: GraphErrorBody, readonly retryAfterMs?: number) {
    super(`Graph API: ${body.message}`);
    this.name = "GraphRetryableError";
  }
}

class GraphRejectedError extends Error {
  constructor(readonly body: GraphErrorBody) {
    super(`Graph API: ${body.message}`);
    this.name = "GraphRejectedError";
  }
}

/**
 * The request may have been executed: a timeout or broken connection after it left, an unreadable 200, a 5xx
 * without a Graph error code.
 */
class AmbiguousSendError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AmbiguousSendError";
  }
}

/** A Retry-After header (seconds or an HTTP date) as milliseconds from now. */
export function retryAfterMs(res: Response): number | undefined {
  const value = res.headers.get("retry-after");
  if (value === null) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** Whether a fetch failure proves the request never reached the server (so it cannot have been executed). */
function neverConnected(error: unknown): boolean {
  const text = String(error instanceof Error ? `${error.message} ${error.cause ?? ""}` : error).toLowerCase();
  return /connection refused|os error 111|dns error|failed to lookup|name or service not known/.test(text);
}

/** A Graph API answer's body as text, and as JSON when it parses. */
export async function readGraphBody(res: Response): Promise<{ text: string; json: unknown }> {
  const text = await res.text();
  try {
    return { text, json: JSON.parse(text) };
  } catch {
    return { text, json: undefined };
  }
}

async function classify(res: Response): Promise<{ wamid: string }> {
  const { json } = await readGraphBody(res);
  if (res.ok) {
    const parsed = sendResponse.safeParse(json);
    if (parsed.success) return { wamid: parsed.data.messages[0]!.id };
    // A 200 we cannot read may still have sent the message.
    throw new AmbiguousSendError(`HTTP ${res.status} without a message id`);
  }
  const parsed = graphError.safeParse(json);
  const body: GraphErrorBody = {
    code: parsed.success ? parsed.data.error.code ?? null : null,
    message: parsed.success ? parsed.data.error.message ?? `HTTP ${res.status}` : `HTTP ${res.status}`,
    http_status: res.status,
    ...(parsed.success && parsed.data.error.error_data?.details
      ? { details: parsed.data.error.error_data.details }
      : {}),
  };
  // A 5xx without a Graph error code came from something in front of the API (a gateway, a proxy), maybe after
  // the request had left for Meta: it may have been sent, and /messages cannot be deduplicated.
  if (body.code === null && res.status >= 500) {
    throw new AmbiguousSendError(`HTTP ${res.status} without a Graph error code`);
  }
  const transient = body.code === null ? res.status === 429 : RETRYABLE_CODES.has(body.code);
  if (transient) throw new GraphRetryableError(body, retryAfterMs(res));
  throw new GraphRejectedError(body);
}

// A connection reused from the pool that the server closes without answering makes the HTTP client send the
// same request again on a fresh connection, unseen by us: for /messages that is a second message to the
// customer. Sends therefore never reuse a connection (where the runtime lets us choose).
const noReuse = typeof Deno.createHttpClient === "function"
  ? Deno.createHttpClient({ poolMaxIdlePerHost: 0 })
  : undefined;

/** Who a message goes to: the phone when known (always with +, as Meta advises), else the BSUID. */
export function recipientOf(
  contact: { wa_id?: string | null; user_id?: string | null },
): Record<string, string> {
  if (contact.wa_id) return { to: `+${contact.wa_id}` };
  if (contact.user_id) return { recipient: contact.user_id };
  throw new Error("a contact has a wa_id or a user_id");
}

export interface GraphClient {
  send(phoneNumberId: string, payload: SendPayload): Promise<SendOutcome>;
  /**
   * Tells WhatsApp the customer's message was read (blue ticks), with `typing` the typing indicator too (§2.4);
   * resolves to whether Meta accepted it. One attempt, no retry.
   */
  markRead(
    phoneNumberId: string,
    wamid: string,
    options?: { typing?: boolean; timeoutMs?: number },
  ): Promise<boolean>;
}

/** A Graph API client whose calls run under `policy` (timeout, retries of retryable errors, breaker). */
export function createGraphClient(apiBase: string, accessToken: string, policy: Resilient): GraphClient {
  return {
    async send(phoneNumberId, payload) {
      try {
        const { wamid } = await policy.execute(async (signal) => {
          let res: Response;
          try {
            res = await fetch(`${apiBase}/${encodeURIComponent(phoneNumberId)}/messages`, {
              method: "POST",
              headers: { authorization: `Bearer ${accessToken}`, "content-type": "application/json" },
              body: JSON.stringify(payload),
              signal,
              ...(noReuse === undefined ? {} : { client: noReuse }),
            });
          } catch (error) {
            if (signal.aborted) throw error;
            if (neverConnected(error)) {
              throw new GraphRetryableError({ code: null, message: String(error), http_status: null });
            }
            throw new AmbiguousSendError(`connection failed mid-request: ${error}`);
          }
          return await classify(res);
        });
        return { kind: "sent", wamid };
      } catch (error) {
        if (error instanceof GraphRetryableError) {
          return { kind: "failed", retryable: true, error: error.body, retryAfterMs: error.retryAfterMs };
        }
        if (error instanceof GraphRejectedError) {
          return { kind: "failed", retryable: false, error: error.body };
        }
        if (error instanceof TaskCancelledError) {
          return { kind: "unknown", error: "timed out after the request left" };
        }
        if (error instanceof AmbiguousSendError) return { kind: "unknown", error: error.message };
        // The breaker is open: nothing was sent.
        if (error instanceof BrokenCircuitError) {
          return {
            kind: "failed",
            retryable: true,
            error: { code: null, message: "Graph API circuit open", http_status: null },
          };
        }
        return { kind: "unknown", error: String(error) };
      }
    },
    async markRead(phoneNumberId, wamid, options = {}) {
      const res = await fetch(`${apiBase}/${encodeURIComponent(phoneNumberId)}/messages`, {
        method: "POST",
        headers: { authorization: `Bearer ${accessToken}`, "content-type": "application/json" },
        body: JSON.stringify({
          messaging_product: "whatsapp",
          status: "read",
          message_id: wamid,
          ...(options.typing ? { typing_indicator: { type: "text" } } : {}),
        }),
        signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
      });
      await res.body?.cancel();
      return res.ok;
    },
  };
}

/** Failures that count against the Graph API breaker: the service misbehaving, not a rejected request. */
export function graphBreaks(error: unknown): boolean {
  return (error instanceof GraphRetryableError && !throttled(error)) || error instanceof TaskCancelledError ||
    error instanceof AmbiguousSendError;
}

function throttled(error: GraphRetryableError): boolean {
  return error.body.code !== null && THROTTLE_CODES.has(error.body.code);
}

/** Failures worth an immediate retry inside one attempt: transient, and not asking us to wait long. */
export function graphRetryable(maxWaitMs: number) {
  return (error: unknown) =>
    error instanceof GraphRetryableError && !throttled(error) &&
    (error.retryAfterMs === undefined || error.retryAfterMs <= maxWaitMs);
}
