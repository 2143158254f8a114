// The campaign sender: lanes that each claim one recipient (wa.claim_campaign_send: skip locked, leased, its
// message written before the send), send it through the governor at campaign priority, and record the
// outcome (wa.record_campaign_send). Exactly once per (campaign, contact) is decided in SQL: the claim's
// attempt is a fence, renewed between the governor's slot and the HTTP call, and a lane that dies mid-send
// leaves a lease the next claim settles from Meta's statuses.
import type { Sql } from "../_shared/db.ts";
import { governed } from "../_shared/governor.ts";
import {
  createGraphClient,
  graphBreaks,
  type GraphClient,
  graphRetryable,
  type SendPayload,
} from "../_shared/graph.ts";
import { errorMessage, log } from "../_shared/log.ts";
import { resilient } from "../_shared/resilience.ts";
import { checkLease, type OutboundEnv } from "./config.ts";

export interface CampaignSenderOptions {
  workerId: string;
  /** Lanes sending at once: enough to keep the number's rate with a Graph API round trip in flight per lane. */
  concurrency: number;
  /** Longer than a send's HTTP calls (timeout × attempts): the lease is renewed right before them. */
  leaseSeconds: number;
  /** How long a send whose outcome is unknown waits for Meta's statuses before it is sent again. */
  unknownGraceSeconds: number;
  /** Retryable failures before a recipient is failed. */
  maxAttempts: number;
}

export interface CampaignDrain {
  worker: string;
  sends: number;
  outcomes: Record<string, number>;
  duration_ms: number;
}

interface ClaimedSend {
  recipient_id: string;
  campaign_id: string;
  message_id: string;
  phone_number_id: string;
  body: SendPayload;
  /** The claim's fence. */
  attempt: number;
}

/** Backoff of a retryable failure Meta gave no wait for: 2^attempt seconds, at most 5 minutes. */
function backoffMs(attempt: number): number {
  return Math.min(300_000, 1000 * 2 ** attempt);
}

/** The claim's lease went to a later claim while the governor made it wait: nothing was sent. */
class LeaseLostError extends Error {
  constructor(recipientId: string) {
    super(`campaign recipient ${recipientId}: lease taken over before the send`);
  }
}

/**
 * `graph` with the claim's lease renewed (fenced by its attempt) right before the HTTP call: a claim whose lease
 * ran out during the governor's wait never sends what a later claim sends.
 */
function fencedSends(sql: Sql, graph: GraphClient, claim: ClaimedSend, leaseSeconds: number): GraphClient {
  return {
    async send(phoneNumberId, payload) {
      const [row] = await sql<{ ours: boolean }[]>`
        select wa.renew_campaign_lease(${claim.recipient_id}::bigint, ${claim.attempt},
                                       make_interval(secs => ${leaseSeconds})) as ours`;
      if (!row?.ours) throw new LeaseLostError(claim.recipient_id);
      return await graph.send(phoneNumberId, payload);
    },
    markRead: (phoneNumberId, wamid) => graph.markRead(phoneNumberId, wamid),
  };
}

/**
 * The sender. `graph` is the raw client (its retries and breaker); `governor` puts a client behind the send
 * governor at campaign priority.
 */
export function createCampaignSender(
  sql: Sql,
  graph: GraphClient,
  governor: (client: GraphClient) => GraphClient,
  options: CampaignSenderOptions,
) {
  async function record(
    claim: ClaimedSend,
    outcome: string,
    wamid: string | null,
    error: unknown,
    retryMs?: number,
  ) {
    const [row] = await sql<{ state: string }[]>`
      select wa.record_campaign_send(${claim.recipient_id}::bigint, ${claim.attempt}, ${outcome}, ${wamid},
                                     ${error === null ? null : JSON.stringify(error)}::text::jsonb,
                                     ${retryMs === undefined ? null : `${retryMs} milliseconds`}::interval,
                                     ${options.maxAttempts}) as state`;
    return row?.state ?? "gone";
  }

  async function sendOne(claim: ClaimedSend): Promise<string> {
    const result = await governor(fencedSends(sql, graph, claim, options.leaseSeconds))
      .send(claim.phone_number_id, claim.body);
    switch (result.kind) {
      case "sent":
        return await record(claim, "sent", result.wamid, null);
      case "unknown":
        return await record(claim, "unknown", null, { error: result.error });
      case "failed":
        return await record(
          claim,
          "failed",
          null,
          result.error,
          result.retryable ? result.retryAfterMs ?? backoffMs(claim.attempt) : undefined,
        );
    }
  }

  async function drain(drainOptions: { budgetMs: number; signal?: AbortSignal }): Promise<CampaignDrain> {
    const started = performance.now();
    const outcomes: Record<string, number> = {};
    let sends = 0;
    const lane = async () => {
      while (!drainOptions.signal?.aborted && performance.now() - started < drainOptions.budgetMs) {
        const [claim] = await sql<ClaimedSend[]>`
          select * from wa.claim_campaign_send(${options.workerId}, make_interval(secs => ${options.leaseSeconds}),
                                               make_interval(secs => ${options.unknownGraceSeconds}))`;
        if (claim === undefined) return;
        let state: string;
        try {
          state = await sendOne(claim);
        } catch (error) {
          // The lease runs out and the next claim settles it from Meta's statuses: never a blind resend.
          state = error instanceof LeaseLostError ? "lease_lost" : "error";
          log("warn", {
            function: "outbound",
            job: "campaign-send",
            worker: options.workerId,
            error: errorMessage(error),
          });
        }
        outcomes[state] = (outcomes[state] ?? 0) + 1;
        sends++;
      }
    };
    await Promise.all(Array.from({ length: options.concurrency }, lane));
    return {
      worker: options.workerId,
      sends,
      outcomes,
      duration_ms: Math.round(performance.now() - started),
    };
  }

  return { drain };
}

/** The sender configured from the environment: its own Graph API breaker, the governor at campaign priority. */
export function campaignSenderFrom(env: OutboundEnv, sql: Sql, workerId: string) {
  checkLease(env);
  const graph = createGraphClient(
    env.WHATSAPP_API_BASE,
    env.WHATSAPP_ACCESS_TOKEN,
    resilient({
      timeoutMs: env.GRAPH_TIMEOUT_MS,
      maxAttempts: 2,
      baseDelayMs: 300,
      retryable: graphRetryable(3_000),
      breaks: graphBreaks,
      breakerThreshold: 5,
      halfOpenAfterMs: 30_000,
    }),
  );
  const governor = (client: GraphClient) =>
    governed(client, sql, { priority: "campaign", maxWaitMs: 30_000 });
  return createCampaignSender(sql, graph, governor, {
    workerId,
    concurrency: env.CAMPAIGN_CONCURRENCY,
    leaseSeconds: env.CAMPAIGN_LEASE_SECONDS,
    unknownGraceSeconds: env.CAMPAIGN_UNKNOWN_GRACE_SECONDS,
    maxAttempts: env.CAMPAIGN_MAX_ATTEMPTS,
  });
}
