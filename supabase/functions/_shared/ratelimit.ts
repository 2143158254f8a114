// Rate limiting for the functions: one call to the SQL token bucket (wa.take_rate_limit_token) per action,
// shared by every isolate through Postgres; an empty bucket becomes a 429 with Retry-After.
import type { Sql } from "./db.ts";
import { HttpError } from "./http.ts";

/** The categories seeded in wa.rate_limit_config (auth 10/min, chat 100/min, media 50/min by default). */
export type RateCategory = "auth" | "chat" | "media";

interface TakeResult {
  allowed: boolean;
  remaining: number;
  retry_after_ms: number;
}

/**
 * Takes `cost` tokens from the bucket of `subject` (a user id, an IP...) in `category`; resolves when they were
 * there. Otherwise throws HttpError 429 `rate_limited` with `details: { category, retry_after_ms }` and a
 * `Retry-After` header in whole seconds (at least 1). An empty subject, a cost below 1 or above the category's
 * capacity are programming errors: the database refuses them with SQLSTATE 22023.
 */
export async function takeToken(
  sql: Sql,
  subject: string,
  category: RateCategory,
  cost = 1,
): Promise<void> {
  const [row] = await sql<TakeResult[]>`
    select allowed, remaining, retry_after_ms
    from wa.take_rate_limit_token(${subject}::text, ${category}::text, ${cost}::integer)`;
  if (row === undefined) throw new Error("wa.take_rate_limit_token returned no row");
  if (row.allowed) return;
  const retryAfterMs = row.retry_after_ms;
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  throw new HttpError(
    429,
    "rate_limited",
    `too many ${category} requests: try again in ${seconds} s`,
    { category, retry_after_ms: retryAfterMs },
    { "retry-after": String(seconds) },
  );
}
