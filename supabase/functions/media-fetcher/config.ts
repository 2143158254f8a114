// The media fetcher's configuration, from the environment (validated once per isolate).
import { z } from "zod";
import { httpUrl, postgresUrl, secret } from "../_shared/env.ts";

export const fetcherEnv = z.object({
  SUPABASE_DB_URL: postgresUrl,
  // The project's API (Storage at /storage/v1), and the key Storage accepts as the service role.
  SUPABASE_URL: httpUrl,
  SUPABASE_SERVICE_ROLE_KEY: z.string().min(1),
  WHATSAPP_API_BASE: httpUrl.default("https://graph.facebook.com/v25.0"),
  WHATSAPP_ACCESS_TOKEN: secret(8),
  // Resolving a media id (GET /{media-id}).
  GRAPH_TIMEOUT_MS: z.coerce.number().int().positive().default(10_000),
  // A claim's lease: a download still running then is abandoned, and the job is claimable again.
  MEDIA_LEASE_SECONDS: z.coerce.number().int().min(10).max(900).default(300),
  // Fetches of one job before its message records failed (a permanent error fails at once).
  MEDIA_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(50).default(8),
  MEDIA_CONCURRENCY: z.coerce.number().int().min(1).max(32).default(4),
  // Wall-clock budget of one HTTP invocation, well inside the Edge Functions limit.
  MEDIA_TIME_BUDGET_MS: z.coerce.number().int().min(1_000).max(140_000).default(100_000),
});

export type FetcherEnv = z.infer<typeof fetcherEnv>;
