// A keepalive invocation, the hosted trigger (docs/processor.md): Supabase runs no long-lived workers, so the
// invocation that holds the wa.keepalive slot behaves like one for its budget. It drains, then polls the next
// due time (one round trip that is also its heartbeat) and sleeps exactly until it, so a due buffer is claimed
// within milliseconds instead of at the next pg_cron tick; lanes grow with the backlog. Before it stops
// claiming, the database requests its successor through pg_net; after its share of batches (CPU time is
// limited per request) it hands over at once. An invocation that finds the slot held helps with one drain.
// Polling rather than LISTEN: the transaction pooler edge code connects through would not keep a LISTEN, and
// a due time is known when the buffer is written, a quiet period before it matters.
import type { Sql } from "../_shared/db.ts";
import type { ProcessorEnv } from "./config.ts";
import type { BatchOutcome, DrainSummary, Processor } from "./processor.ts";

/** The function's row in wa.keepalive. */
export const KEEPALIVE_FUNCTION = "buffer-processor";
/** A holder whose heartbeat stops this long is presumed dead, and the next pg_cron tick replaces it. */
const LEASE_MS = 5_000;
/**
 * The shortest claim window worth holding the slot for: twice wa.keepalive_handoff(). A shorter one would
 * request its successor on arrival, and each successor the next (a budget too small for the timeouts).
 */
const MIN_CLAIM_MS = 10_000;

export interface KeepaliveSummary extends DrainSummary {
  /** holder: kept the slot until its end or hand-over; helper: found it held, drained once. */
  role: "holder" | "helper";
  /** Heartbeats (each one poll of the next due time). */
  polls: number;
  /** Stopped early after PROCESSOR_INVOCATION_BATCHES, its successor requested. */
  handed_over: boolean;
}

interface Beat {
  holder: boolean;
  db_now_ms: number;
  next_at_ms: number | null;
  backlog: number;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(done, Math.max(0, ms));
    signal?.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}

export async function keepAlive(
  processor: Processor,
  sql: Sql,
  env: ProcessorEnv,
  holder: string,
  /** The request's: the caller (pg_net) gave up, or the server is shutting down. */
  signal?: AbortSignal,
): Promise<KeepaliveSummary> {
  const started = performance.now();
  // What an in-flight batch may still need once claiming stops (as in the processor's drain).
  const reserveMs = env.AGENT_TIMEOUT_MS + 2 * env.GRAPH_TIMEOUT_MS;
  const claimForMs = Math.max(0, env.PROCESSOR_TIME_BUDGET_MS - reserveMs);
  const outcomes: Partial<Record<BatchOutcome, number>> = {};
  let batches = 0;
  let sessionRetries = 0;
  let bookkeepingFailures = 0;
  let polls = 0;
  const beat = async (): Promise<Beat | undefined> => {
    polls++;
    const [row] = await sql<Beat[]>`
      select holder, extract(epoch from db_now) * 1000 as db_now_ms,
             extract(epoch from next_at) * 1000 as next_at_ms, backlog
      from wa.keepalive_beat(${KEEPALIVE_FUNCTION}, ${holder}, ${`${LEASE_MS} milliseconds`}::interval,
                             ${env.PROCESSOR_MAX_CONCURRENCY})`;
    return row;
  };
  const release = () => sql`select wa.release_keepalive(${KEEPALIVE_FUNCTION}, ${holder})`;
  /** A drain; a holder keeps beating through it, so a long one (a burst) is not taken for a dead holder. */
  const drain = async (backlog: number, budgetMs: number, holding: boolean) => {
    const renewing = holding ? setInterval(() => void beat().catch(() => {}), LEASE_MS / 5) : undefined;
    const summary = await processor.drain({
      budgetMs,
      signal,
      lanes: Math.min(Math.max(backlog, 1), env.PROCESSOR_MAX_CONCURRENCY),
      maxLanes: env.PROCESSOR_MAX_CONCURRENCY,
      maxBatches: env.PROCESSOR_INVOCATION_BATCHES - batches,
      // Its share claimed: hand the slot over now, not once the slowest batch in flight has finished.
      onLastClaim: holding ? () => void release().catch(() => {}) : undefined,
    }).finally(() => clearInterval(renewing));
    batches += summary.batches;
    sessionRetries += summary.session_retries;
    bookkeepingFailures += summary.bookkeeping_failures;
    for (const [outcome, n] of Object.entries(summary.outcomes) as [BatchOutcome, number][]) {
      outcomes[outcome] = (outcomes[outcome] ?? 0) + n;
    }
    return summary.batches;
  };
  const summary = (role: KeepaliveSummary["role"], handedOver: boolean): KeepaliveSummary => ({
    worker: holder,
    batches,
    outcomes,
    session_retries: sessionRetries,
    bookkeeping_failures: bookkeepingFailures,
    duration_ms: Math.round(performance.now() - started),
    role,
    polls,
    handed_over: handedOver,
  });

  const [acquired] = claimForMs < MIN_CLAIM_MS ? [{ ok: false }] : await sql<{ ok: boolean }[]>`
    select wa.acquire_keepalive(${KEEPALIVE_FUNCTION}, ${holder}, ${`${claimForMs} milliseconds`}::interval,
                                ${`${LEASE_MS} milliseconds`}::interval) as ok`;
  if (!acquired?.ok) {
    await drain(env.PROCESSOR_CONCURRENCY, env.PROCESSOR_TIME_BUDGET_MS, false);
    return summary("helper", false);
  }
  const deadline = started + claimForMs;
  let handedOver = false;
  try {
    while (performance.now() < deadline && !signal?.aborted) {
      const now = await beat();
      // A successor took the slot (this one is ending) or the end passed.
      if (!now?.holder) break;
      const dbNow = Number(now.db_now_ms);
      const nextAt = now.next_at_ms === null ? null : Number(now.next_at_ms);
      if (now.backlog > 0 || (nextAt !== null && nextAt <= dbNow)) {
        const found = await drain(now.backlog, deadline - performance.now() + reserveMs, true);
        if (batches >= env.PROCESSOR_INVOCATION_BATCHES) {
          handedOver = true;
          break;
        }
        if (found > 0) continue;
      }
      // Sleep until the next due time (on the database clock), the next poll, or the end, whichever is first.
      const untilDue = nextAt === null || nextAt <= dbNow ? Infinity : nextAt - dbNow;
      await sleep(Math.min(untilDue, env.KEEPALIVE_POLL_MS, deadline - performance.now()), signal);
    }
  } finally {
    // Requests the successor at once if none took over yet (pg_net sends it after this commits).
    await release();
  }
  return summary("holder", handedOver);
}
