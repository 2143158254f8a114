// The campaign sender as a long-running local worker: the same sender the outbound function runs, draining
// whatever is due and sleeping until the database says the next send (or lease expiry) is due, at most 1 s
// (send hours and new campaigns are noticed within that). Benchmarks start several and kill some.
import postgres from "postgres";
import { parseEnv } from "../supabase/functions/_shared/env.ts";
import { errorMessage, log } from "../supabase/functions/_shared/log.ts";
import { runAsProcess } from "./worker-process.ts";
import { campaignSenderFrom } from "../supabase/functions/outbound/campaigns.ts";
import { type OutboundEnv, outboundEnv } from "../supabase/functions/outbound/config.ts";

/** Runs until `signal` aborts. */
export async function runCampaignWorker(
  options: { env?: OutboundEnv; workerId?: string; signal: AbortSignal },
) {
  const env = options.env ?? parseEnv(outboundEnv);
  const workerId = options.workerId ?? `campaigns-${Deno.pid}`;
  const sql = postgres(env.SUPABASE_DB_URL, { max: env.CAMPAIGN_CONCURRENCY + 1, onnotice: () => {} });
  const sender = campaignSenderFrom(env, sql, workerId);
  try {
    while (!options.signal.aborted) {
      try {
        const summary = await sender.drain({ budgetMs: Number.POSITIVE_INFINITY, signal: options.signal });
        if (summary.sends > 0) log("info", { function: "campaign-worker", job: "drain", ...summary });
      } catch (error) {
        log("error", {
          function: "campaign-worker",
          job: "drain",
          worker: workerId,
          error: errorMessage(error),
        });
      }
      const [next] = await sql<{ wait_ms: number | null }[]>`
        select extract(epoch from wa.next_campaign_send_at() - now()) * 1000 as wait_ms`;
      const wait = next?.wait_ms == null ? 1000 : Math.min(1000, Math.max(10, Number(next.wait_ms)));
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}

if (import.meta.main) {
  await runAsProcess("campaign-worker", (signal) => runCampaignWorker({ signal }));
}
