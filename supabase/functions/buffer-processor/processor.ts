// Drains due conversation buffers: claim a batch, ask the agent, write the reply under the batch's
// idempotency key, send it, record the outcome, complete. Every step that could duplicate a reply is
// decided in SQL (fences, idempotency keys), so crashes and concurrent workers cost at most a retry.
import { governed, type GovernedGraph, INTERACTIVE, type Slot } from "../_shared/governor.ts";
import { errorMessage, log } from "../_shared/log.ts";
import { type BreakerState, resilient } from "../_shared/resilience.ts";
import { withVersionRetry } from "../_shared/session.ts";
import { type Agent, type AgentAnswer, agentRetryable, createAgent } from "./agent.ts";
import {
  AGENT_ATTEMPTS,
  agentWorstCaseMs,
  GRAPH_ATTEMPTS,
  type ProcessorEnv,
  RETRY_BASE_DELAY_MS,
} from "./config.ts";
import { attachMedia, createTranscriber, type MediaOptions } from "./media.ts";
import { createStorageClient } from "../_shared/storage.ts";
import { interactiveObject, type InteractiveReply } from "./interactive.ts";
import { createToolbox } from "./tools.ts";
import {
  createGraphClient,
  graphBreaks,
  graphRetryable,
  recipientOf,
  type SendPayload,
} from "../_shared/graph.ts";
import {
  type AgentContext,
  BotPausedError,
  type ChatSession,
  type Claim,
  type ClaimedBatch,
  createStore,
  type Reply,
  StaleFenceError,
  type Store,
} from "./store.ts";
import type { Sql } from "../_shared/db.ts";

export type BatchOutcome =
  | "replied" // the agent's reply was sent
  | "fallback" // the agent failed; the fallback reply was sent
  | "silent" // the agent chose not to answer
  | "paused" // an operator paused the bot here: the batch is consumed without a reply
  | "already_replied" // a previous claim had sent (or tried) the reply: completed without a second send
  | "unknown" // the send may or may not have happened: recorded as unknown, never resent
  | "retry" // failed; the buffer backs off and will be claimed again
  | "dead_letter" // failed for the last time (or permanently): the batch is in wa.dead_letters
  | "stale" // another worker owns the batch now
  | "empty";

export interface DrainSummary {
  worker: string;
  batches: number;
  outcomes: Partial<Record<BatchOutcome, number>>;
  /** Session writes that had to be retried after a version conflict. */
  session_retries: number;
  /** Non-critical bookkeeping writes that failed (logged; the batches themselves were unaffected). */
  bookkeeping_failures: number;
  duration_ms: number;
}

export interface DrainOptions {
  budgetMs?: number;
  signal?: AbortSignal;
  /** Lanes to start with (default PROCESSOR_CONCURRENCY). */
  lanes?: number;
  /** Each claim that finds a batch starts another lane, up to this many (default: `lanes`, no growth). */
  maxLanes?: number;
  /** Stop claiming after this many batches (a keepalive invocation's CPU share). */
  maxBatches?: number;
  /** Called once the last of maxBatches claims is made, while batches may still be in flight. */
  onLastClaim?: () => void;
}

export interface Processor {
  drain(options?: DrainOptions): Promise<DrainSummary>;
  processBatch(claim: Claim, claimed?: ClaimedBatch): Promise<BatchOutcome>;
  breakers(): Record<string, BreakerState>;
}

interface Dependencies {
  env: ProcessorEnv;
  store: Store;
  agent: Agent;
  graph: GovernedGraph;
  workerId: string;
  breakers: () => Record<string, BreakerState>;
  media: MediaOptions;
}

/** The Graph API request for a reply: text, or reply buttons / a list with the text as their body. */
function replyPayload(context: AgentContext, text: string, interactive?: InteractiveReply): SendPayload {
  const envelope = {
    messaging_product: "whatsapp",
    recipient_type: "individual",
    ...recipientOf(context.contact),
  };
  if (interactive !== undefined) {
    return { ...envelope, type: "interactive", interactive: interactiveObject(text, interactive) };
  }
  return { ...envelope, type: "text", text: { preview_url: false, body: text } };
}

function processorFrom(deps: Dependencies): Processor {
  const { env, store, agent, graph, workerId } = deps;
  const fallbackText = env.AGENT_FALLBACK_REPLY === "off" ? null : env.AGENT_FALLBACK_REPLY;

  let sessionRetries = 0;
  let bookkeepingFailures = 0;
  /** Fences whose outcome was counted with their completion (wa.complete_reply), not after it. */
  const counted = new Set<string>();
  /** Typing indicators on their way: a drain waits for them before it returns, a batch never does. */
  const typing = new Set<Promise<void>>();

  function warn(job: string, error: unknown, fields: Record<string, unknown> = {}) {
    log("warn", {
      function: "buffer-processor",
      job,
      worker: workerId,
      error: errorMessage(error),
      ...fields,
    });
  }

  /**
   * Marks the customer's last message read with the typing indicator while the agent answers (WHATSAPP.md
   * §2.4): once per batch, best effort (one attempt, never awaited by the batch), unless the number turned it off.
   */
  function showTyping(context: AgentContext, booked?: Slot) {
    const last = context.batch.messages.at(-1);
    if (context.typing_indicator === false || last === undefined) return;
    const call: Promise<void> = graph.markRead(context.conversation.phone_number_id, last.wamid, {
      typing: true,
      timeoutMs: env.GRAPH_TIMEOUT_MS,
      booked,
    }).then(
      (accepted) => void (accepted || warn("typing", "the Graph API refused the typing indicator")),
      (error) => warn("typing", error),
    ).finally(() => typing.delete(call));
    typing.add(call);
  }

  /** The agent asked for a human: settled bookkeeping after the batch, never failing or repeating it. */
  async function handOver(context: AgentContext, handoff: AgentAnswer["handoff"]) {
    if (handoff === undefined) return;
    try {
      await store.handoff(context.conversation.id, handoff.reason);
    } catch (error) {
      bookkeepingFailures++;
      warn("handoff", error, { conversation_id: context.conversation.id });
    }
  }

  /** The agent's answer, or the fallback reply when the agent fails (timeout, open breaker, errors). */
  async function ask(context: AgentContext): Promise<AgentAnswer & { fallback: boolean }> {
    try {
      return { ...(await agent(context)), fallback: false };
    } catch (error) {
      if (fallbackText === null) throw error;
      log("warn", {
        function: "buffer-processor",
        job: "agent",
        worker: workerId,
        error: errorMessage(error),
        fallback: true,
      });
      return { text: fallbackText, fallback: true };
    }
  }

  /** complete and recordSend of a reply, with the batch's outcome counted (critical as complete: it may throw). */
  async function completeReply(
    claim: Claim,
    reply: Reply,
    send: { outcome: "sent" | "unknown"; wamid?: string; error?: unknown },
    outcome: BatchOutcome,
  ): Promise<BatchOutcome> {
    const noteError = await store.completeReply(claim.fence, reply.up_to_seq, {
      messageId: reply.message_id,
      ...send,
    }, { conversationId: claim.conversation_id, outcome });
    counted.add(claim.fence);
    if (noteError !== null) {
      bookkeepingFailures++;
      warn("bookkeeping", noteError);
    }
    return outcome;
  }

  /**
   * Sends a reply this claim owns (`ours`: written or taken over by it; `slot`: its first send slot if booked
   * with it), or finishes one a previous claim started, and settles the batch.
   */
  async function deliver(
    claim: Claim,
    context: AgentContext,
    reply: Reply,
    ours: boolean,
    success: BatchOutcome,
    slot?: Slot,
  ) {
    if (reply.status === "pending" && !ours) {
      // Written by a claim that died or lost its lease mid-send: it may have gone out. Never resend blindly.
      return await completeReply(claim, reply, {
        outcome: "unknown",
        error: { error: "sender lost before recording" },
      }, "unknown");
    }
    if (reply.status !== "pending") {
      await store.complete(claim.fence, reply.up_to_seq);
      return "already_replied";
    }
    const result = await graph.send(context.conversation.phone_number_id, reply.body, slot);
    switch (result.kind) {
      case "sent":
        return await completeReply(claim, reply, { outcome: "sent", wamid: result.wamid }, success);
      case "unknown":
        return await completeReply(claim, reply, {
          outcome: "unknown",
          error: { error: result.error },
        }, "unknown");
      case "failed":
        await store.recordSend(reply.message_id, "failed", undefined, result.error);
        return await store.fail(claim.fence, `graph: ${result.error.message}`, {
          retryAfterMs: result.retryAfterMs,
          permanent: !result.retryable,
        });
    }
  }

  /**
   * Applies the session the agent asked for, under optimistic locking. The first attempt names the version the
   * agent was shown, so a write that happened meanwhile is detected; retries re-read and merge the agent's data
   * over what is stored then. Critical: if it keeps conflicting the batch fails before any reply is written, and
   * its retry asks the agent again with the fresh session.
   */
  async function saveSession(
    claim: Claim,
    context: AgentContext,
    next: NonNullable<AgentAnswer["session"]>,
  ) {
    const conversationId = context.conversation.id;
    let shown: ChatSession | undefined = context.session;
    await withVersionRetry({
      read: async () => {
        const current = shown ?? await store.session(conversationId);
        shown = undefined;
        return current;
      },
      apply: (current) => ({ state: next.state, data: { ...current.data, ...next.data } }),
      // Fenced: a worker whose lease ran out while the agent answered can no longer move the session.
      write: (session, expectedVersion) => store.writeSession(claim.fence, expectedVersion, session),
    }, { onRetry: () => sessionRetries++ });
  }

  async function handle(claim: Claim, claimed?: ClaimedBatch): Promise<BatchOutcome> {
    if (claim.message_count === 0 || claim.up_to_seq === null) {
      await store.complete(claim.fence, "0");
      return "empty";
    }
    const context = claimed === undefined ? await store.context(claim.fence) : claimed.context;
    if (context === null) return "stale";
    await attachMedia(deps.media, claim.fence, context);
    const existing = context.existing_reply;
    // While paused nothing goes out: no new reply, and no failed one sent again.
    if (context.bot_paused && (existing === null || existing.status === "failed")) {
      await store.complete(claim.fence, claim.up_to_seq);
      return "paused";
    }
    if (existing !== null && existing.status !== "failed") {
      return await deliver(claim, context, existing, false, "already_replied");
    }
    if (existing !== null) {
      // Meta refused it: the same reply is sent again (the SQL lets one claim take it over, never while paused).
      return await send(
        claim,
        claim.up_to_seq,
        context,
        existing.up_to_seq,
        existing.body,
        "already_replied",
      );
    }
    showTyping(context, claimed?.typingSlot);
    const answer = await ask(context);
    if (answer.session !== undefined) await saveSession(claim, context, answer.session);
    let outcome: BatchOutcome;
    if (answer.text === null) {
      await store.complete(claim.fence, claim.up_to_seq);
      outcome = "silent";
    } else {
      const payload = replyPayload(context, answer.text, answer.interactive);
      const success = answer.fallback ? "fallback" : "replied";
      outcome = await send(claim, claim.up_to_seq, context, claim.up_to_seq, payload, success);
    }
    await handOver(context, answer.handoff);
    return outcome;
  }

  /**
   * Writes the reply to the messages up to `upToSeq` under the batch's key and delivers it; while the bot is
   * paused the write is refused and the batch (up to `claimedUpTo`) completes without a reply.
   */
  async function send(
    claim: Claim,
    claimedUpTo: string,
    context: AgentContext,
    upToSeq: string,
    payload: SendPayload,
    success: BatchOutcome,
  ): Promise<BatchOutcome> {
    let reply;
    try {
      reply = await store.beginReplySlot(claim.fence, upToSeq, payload, context.conversation.phone_number_id);
    } catch (error) {
      if (!(error instanceof BotPausedError)) throw error;
      await store.complete(claim.fence, claimedUpTo);
      return "paused";
    }
    return await deliver(claim, context, reply, reply.ours, success, reply.slot);
  }

  /** Processes a claimed batch; `claimed`: its context (and typing slot) fetched with the claim. */
  async function processBatch(claim: Claim, claimed?: ClaimedBatch): Promise<BatchOutcome> {
    const started = performance.now();
    let outcome: BatchOutcome;
    let failure: unknown;
    try {
      outcome = await handle(claim, claimed);
    } catch (error) {
      failure = error;
      outcome = "stale";
      if (!(error instanceof StaleFenceError)) {
        try {
          outcome = await store.fail(claim.fence, errorMessage(error));
        } catch (failError) {
          if (!(failError instanceof StaleFenceError)) throw failError;
        }
      }
    }
    if (outcome !== "stale" && outcome !== "empty" && !counted.delete(claim.fence)) {
      // Settled: bookkeeping may fail without failing or repeating the batch, which is already settled.
      const [noted] = await Promise.allSettled([store.noteOutcome(claim.conversation_id, outcome)]);
      if (noted.status === "rejected") {
        bookkeepingFailures++;
        log("warn", {
          function: "buffer-processor",
          job: "bookkeeping",
          worker: workerId,
          error: errorMessage(noted.reason),
        });
      }
    }
    log(outcome === "retry" || outcome === "dead_letter" ? "warn" : "info", {
      function: "buffer-processor",
      job: "batch",
      worker: workerId,
      conversation_id: claim.conversation_id,
      fence: claim.fence,
      messages: claim.message_count,
      attempt: claim.attempts,
      outcome,
      duration_ms: Math.round(performance.now() - started),
      ...(failure === undefined ? {} : { error: errorMessage(failure) }),
    });
    return outcome;
  }

  async function drain(options: DrainOptions = {}): Promise<DrainSummary> {
    const started = performance.now();
    const budget = options.budgetMs ?? env.PROCESSOR_TIME_BUDGET_MS;
    // Stop claiming once a batch could no longer finish inside the budget (agent, then a send and a retry).
    const reserve = env.AGENT_TIMEOUT_MS + 2 * env.GRAPH_TIMEOUT_MS;
    const outcomes: Partial<Record<BatchOutcome, number>> = {};
    const retriesBefore = sessionRetries;
    const failuresBefore = bookkeepingFailures;
    let batches = 0;
    let claims = 0;
    const startLanes = options.lanes ?? env.PROCESSOR_CONCURRENCY;
    const maxLanes = Math.max(startLanes, options.maxLanes ?? startLanes);
    const maxBatches = options.maxBatches ?? Number.POSITIVE_INFINITY;
    const running = new Set<Promise<void>>();
    let failure: { error: unknown } | undefined;
    const lane = async () => {
      while (
        !options.signal?.aborted && performance.now() - started + reserve < budget && claims < maxBatches
      ) {
        if (++claims === maxBatches) options.onLastClaim?.();
        const claimed = await store.claimBatch(workerId);
        if (claimed === undefined) {
          claims--;
          return;
        }
        // A backlog: one more lane per batch found, up to maxLanes.
        if (maxLanes > startLanes && running.size < maxLanes) start();
        const outcome = await processBatch(claimed.claim, claimed);
        outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
        batches++;
      }
    };
    const start = () => {
      const current: Promise<void> = lane().catch((error) => void (failure ??= { error }))
        .finally(() => running.delete(current));
      running.add(current);
    };
    for (let i = 0; i < startLanes; i++) start();
    while (running.size > 0) await Promise.all(running);
    await Promise.allSettled([...typing]);
    if (failure !== undefined) throw failure.error;
    return {
      worker: workerId,
      batches,
      outcomes,
      session_retries: sessionRetries - retriesBefore,
      bookkeeping_failures: bookkeepingFailures - failuresBefore,
      duration_ms: Math.round(performance.now() - started),
    };
  }

  return { drain, processBatch, breakers: deps.breakers };
}

/**
 * A processor on `sql`, with its agent and Graph API breakers restored from the database and saved back on
 * every state change (settled: a failed save is logged, never fails a batch). The breakers' half-open delays
 * are timed on `clock` (epoch milliseconds).
 */
export async function createProcessor(
  env: ProcessorEnv,
  sql: Sql,
  workerId: string,
  clock: () => number = Date.now,
): Promise<Processor> {
  const store = createStore(sql, {
    leaseSeconds: env.BUFFER_LEASE_SECONDS,
    history: env.AGENT_HISTORY_MESSAGES,
  });
  const saved = await store.loadBreakers();
  const persist = (name: string) => (state: BreakerState, snapshot: unknown) => {
    store.saveBreaker(name, state, snapshot).catch((error) =>
      log("warn", {
        function: "buffer-processor",
        job: "breaker",
        breaker: name,
        state,
        error: errorMessage(error),
      })
    );
  };
  const agentRules = {
    timeoutMs: env.AGENT_TIMEOUT_MS,
    maxAttempts: AGENT_ATTEMPTS,
    baseDelayMs: RETRY_BASE_DELAY_MS,
    retryable: agentRetryable,
    breaks: () => true,
    breakerThreshold: env.BREAKER_THRESHOLD,
    halfOpenAfterMs: env.BREAKER_HALF_OPEN_MS,
    clock,
  };
  const agentPolicy = resilient({
    ...agentRules,
    initialState: saved.get("agent"),
    onBreakerChange: persist("agent"),
  });
  const graphPolicy = resilient({
    timeoutMs: env.GRAPH_TIMEOUT_MS,
    maxAttempts: GRAPH_ATTEMPTS,
    baseDelayMs: RETRY_BASE_DELAY_MS,
    retryable: graphRetryable(5_000),
    breaks: graphBreaks,
    breakerThreshold: env.BREAKER_THRESHOLD,
    halfOpenAfterMs: env.BREAKER_HALF_OPEN_MS,
    clock,
    initialState: saved.get("graph"),
    onBreakerChange: persist("graph"),
  });
  const storage = env.SUPABASE_URL !== undefined && env.SUPABASE_SERVICE_ROLE_KEY !== undefined
    ? createStorageClient(env.SUPABASE_URL, env.SUPABASE_SERVICE_ROLE_KEY)
    : undefined;
  // Transcription is part of understanding the batch: the agent's timeout, retries and breaker rules (a breaker
  // of its own, not persisted: a transcription outage must not read as the agent's).
  const transcribePolicy = resilient(agentRules);
  const media: MediaOptions = {
    sql,
    storage,
    urlSeconds: agentWorstCaseMs(env.AGENT_TIMEOUT_MS) / 1000,
    transcriber: env.TRANSCRIBE_URL === undefined || storage === undefined ? undefined : createTranscriber(
      { url: env.TRANSCRIBE_URL, apiKey: env.TRANSCRIBE_API_KEY, model: env.TRANSCRIBE_MODEL, storage },
      transcribePolicy,
    ),
  };
  return processorFrom({
    env,
    store,
    media,
    agent: createAgent(
      env,
      agentPolicy,
      createToolbox(sql, {
        breakerThreshold: env.BREAKER_THRESHOLD,
        halfOpenAfterMs: env.BREAKER_HALF_OPEN_MS,
        clock,
      }),
    ),
    graph: governed(
      createGraphClient(env.WHATSAPP_API_BASE, env.WHATSAPP_ACCESS_TOKEN, graphPolicy),
      sql,
      INTERACTIVE,
    ),
    workerId,
    breakers: () => ({ agent: agentPolicy.breakerState(), graph: graphPolicy.breakerState() }),
  });
}
