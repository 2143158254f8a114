// The buffer processor as a long-running local worker (SPEC 3): the same processor the Edge Function runs,
// woken by LISTEN wa_buffer_due and by a timer set to the next due time, so a buffer is claimed within a
// fraction of a second of becoming due. (Hosted Supabase has no long-running workers: pg_cron invokes the
// function instead, and its transaction pooler would not keep a LISTEN.)
import postgres from "postgres";
import { createProcessor, type DrainSummary } from "../supabase/functions/buffer-processor/processor.ts";
import { type ProcessorEnv, processorEnv } from "../supabase/functions/buffer-processor/config.ts";
import { parseEnv } from "../supabase/functions/_shared/env.ts";
import { errorMessage, log } from "../supabase/functions/_shared/log.ts";
import { runAsProcess } from "./worker-process.ts";

export interface WorkerOptions {
  /** The processor's settings; read from the environment by default. */
  env?: ProcessorEnv;
  workerId?: string;
  signal: AbortSignal;
  /** Called after every drain that processed something (tests and the demo await these). */
  onDrain?: (summary: DrainSummary) => void;
}

/** Runs until `signal` aborts. */
export async function runWorker(options: WorkerOptions): Promise<void> {
  const env = options.env ?? parseEnv(processorEnv);
  const workerId = options.workerId ?? `local-${Deno.pid}`;
  const sql = postgres(env.SUPABASE_DB_URL, { max: env.PROCESSOR_CONCURRENCY + 1, onnotice: () => {} });
  let wake: () => void = () => {};
  let plannedAt = Infinity;
  // Database clock minus ours: due times come from the database.
  let clockOffset = 0;
  // Only a due time earlier than the one we sleep towards is worth waking for.
  const listener = await sql.listen("wa_buffer_due", (payload) => {
    if (Number(payload) - clockOffset <= plannedAt) wake();
  });
  options.signal.addEventListener("abort", () => wake());
  try {
    const processor = await createProcessor(env, sql, workerId);
    while (!options.signal.aborted) {
      try {
        const summary = await processor.drain({ budgetMs: Number.POSITIVE_INFINITY, signal: options.signal });
        if (summary.batches > 0) {
          // One line per drain that did something, like the function's one line per invocation.
          const { worker: _, duration_ms, ...counts } = summary;
          log("info", {
            function: "buffer-worker",
            job: "drain",
            worker: workerId,
            outcome: "ok",
            duration_ms,
            counts,
          });
          options.onDrain?.(summary);
        }
      } catch (error) {
        log("error", {
          function: "buffer-worker",
          job: "drain",
          worker: workerId,
          outcome: "failed",
          error_code: "drain_failed",
          error: errorMessage(error),
        });
      }
      // Sleep until a claim can act again (a buffer due, a lease run out), at most 30 s. The database decides,
      // by the claim's own rules: a time in the past always finds work, so this loop never spins.
      const [next] = await sql<{ db_now: number; next_at: number | null }[]>`
        select extract(epoch from now()) * 1000 as db_now,
               extract(epoch from wa.next_claim_at()) * 1000 as next_at`;
      clockOffset = Number(next?.db_now ?? Date.now()) - Date.now();
      const nextAt = next?.next_at === null || next?.next_at === undefined
        ? Date.now() + 30_000
        : Math.min(Number(next.next_at) - clockOffset, Date.now() + 30_000);
      plannedAt = nextAt;
      if (options.signal.aborted) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, nextAt - Date.now()));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    await listener.unlisten();
    await sql.end({ timeout: 5 });
  }
}

if (import.meta.main) {
  await runAsProcess("buffer-worker", (signal) => runWorker({ signal }));
}
