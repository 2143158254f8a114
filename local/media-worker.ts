// The media fetcher as a long-running local worker: the same fetcher the media-fetcher Edge Function runs, woken
// by LISTEN wa_media_due (a webhook wrote jobs) and by a timer set to the next job's time (a backoff or a lease
// running out), so a photo is in the bucket a moment after its webhook. `npm start` runs it beside the buffer
// worker; run alone (`deno run -A local/media-worker.ts`) it reads the stack's environment.
import postgres from "postgres";
import { createFetcher, type MediaDrainSummary } from "../supabase/functions/media-fetcher/fetcher.ts";
import { type FetcherEnv, fetcherEnv } from "../supabase/functions/media-fetcher/config.ts";
import { parseEnv } from "../supabase/functions/_shared/env.ts";
import { errorMessage, log } from "../supabase/functions/_shared/log.ts";
import { runAsProcess } from "./worker-process.ts";

export interface MediaWorkerOptions {
  env?: FetcherEnv;
  workerId?: string;
  signal: AbortSignal;
  onDrain?: (summary: MediaDrainSummary) => void;
}

/** Runs until `signal` aborts. */
export async function runMediaWorker(options: MediaWorkerOptions): Promise<void> {
  const env = options.env ?? parseEnv(fetcherEnv);
  const workerId = options.workerId ?? `local-media-${Deno.pid}`;
  const sql = postgres(env.SUPABASE_DB_URL, { max: env.MEDIA_CONCURRENCY + 1, onnotice: () => {} });
  const fetcher = createFetcher(env, sql, workerId);
  // A notification that arrives mid-drain must not be lost: it marks the next sleep as skipped.
  let woken = false;
  let wake = () => {
    woken = true;
  };
  const listener = await sql.listen("wa_media_due", () => wake());
  options.signal.addEventListener("abort", () => wake());
  try {
    while (!options.signal.aborted) {
      woken = false;
      try {
        const summary = await fetcher.drain({ budgetMs: Number.POSITIVE_INFINITY, signal: options.signal });
        if (summary.jobs > 0 || summary.removed > 0) options.onDrain?.(summary);
      } catch (error) {
        log("error", {
          function: "media-worker",
          worker: workerId,
          outcome: "failed",
          error: errorMessage(error),
        });
      }
      const [next] = await sql<{ wait_ms: number | null }[]>`
        select extract(epoch from wa.next_media_job_at() - now()) * 1000 as wait_ms`;
      // At most 30 s, for the retention policy and a notification lost to a reconnect.
      const waitMs = Math.min(30_000, Math.max(0, Number(next?.wait_ms ?? 30_000)));
      if (options.signal.aborted || woken) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, waitMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = () => {
        woken = true;
      };
    }
  } finally {
    await listener.unlisten();
    await sql.end({ timeout: 5 });
  }
}

if (import.meta.main) {
  await runAsProcess("media-worker", (signal) => runMediaWorker({ signal }));
}
