// The outbound function's settings (also read by local/campaign-worker.ts), validated at cold start.
import { z } from "zod";
import { httpUrl, postgresUrl, secret } from "../_shared/env.ts";

export const outboundEnv = z.object({
  SUPABASE_DB_URL: postgresUrl,
  WHATSAPP_API_BASE: httpUrl.default("https://graph.facebook.com/v25.0"),
  WHATSAPP_ACCESS_TOKEN: secret(8),
  GRAPH_TIMEOUT_MS: z.coerce.number().int().positive().default(10_000),
  // Lanes per worker: at 80 mps and a ~50 ms Graph API round trip, 4 keep the rate; 8 leave room.
  CAMPAIGN_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(8),
  CAMPAIGN_LEASE_SECONDS: z.coerce.number().int().min(1).default(60),
  // Meta sends a `sent` status for every accepted message within seconds; after this long without one, a send
  // whose answer was lost (worker killed, timeout) is sent again.
  CAMPAIGN_UNKNOWN_GRACE_SECONDS: z.coerce.number().min(1).default(120),
  CAMPAIGN_MAX_ATTEMPTS: z.coerce.number().int().min(1).default(5),
  // One invocation's budget, inside the Edge Functions wall-clock limit.
  CAMPAIGN_TIME_BUDGET_MS: z.coerce.number().int().positive().default(50_000),
});
export type OutboundEnv = z.infer<typeof outboundEnv>;

/** A lease renewed right before a send must outlast its HTTP calls (two attempts and a retry delay). */
export function checkLease(env: OutboundEnv): OutboundEnv {
  if (env.CAMPAIGN_LEASE_SECONDS * 1000 <= 2 * env.GRAPH_TIMEOUT_MS + 1000) {
    throw new Error("CAMPAIGN_LEASE_SECONDS must exceed two GRAPH_TIMEOUT_MS and a second");
  }
  return env;
}
