// The fetcher's database calls: thin wrappers over the SQL functions of the media migration, which own the
// claim, the lease, the fence and the backoff.
import postgres from "postgres";
import type { Sql } from "../_shared/db.ts";

/** A claimed media job (fences are bigints, kept as strings). */
export interface MediaJob {
  message_id: string;
  fence: string;
  conversation_id: string;
  wamid: string;
  phone_number_id: string;
  media_id: string;
  type: string;
  /** What the webhook declared; the Graph API's answer wins. */
  mime_type: string | null;
  animated: boolean;
  attempts: number;
}

export interface StoredMedia {
  path: string;
  size: number;
  sha256: string;
  mimeType: string;
}

/** Another claim took the job over (this one's lease ran out) or it was settled already. */
export class StaleMediaFenceError extends Error {
  constructor(fence: string) {
    super(`stale media fence ${fence}`);
    this.name = "StaleMediaFenceError";
  }
}

async function fenced<T>(fence: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof postgres.PostgresError && error.code === "P0410") {
      throw new StaleMediaFenceError(fence);
    }
    throw error;
  }
}

export function createMediaStore(sql: Sql, options: { leaseSeconds: number; maxAttempts: number }) {
  const lease = `${options.leaseSeconds} seconds`;
  return {
    claim: (worker: string, limit: number) =>
      sql<MediaJob[]>`select message_id, fence::text, conversation_id, wamid, phone_number_id, media_id, type,
                             mime_type, animated, attempts
                      from wa.claim_media_jobs(${worker}, ${limit}, ${lease}::interval)`,
    complete: (job: MediaJob, stored: StoredMedia) =>
      fenced(job.fence, async () => {
        await sql`select wa.complete_media_job(${job.message_id}, ${job.fence}::bigint, ${stored.path},
                                               ${stored.size}, ${stored.sha256}, ${stored.mimeType})`;
      }),
    fail: (job: MediaJob, error: string, permanent: boolean, retryAfterMs?: number) =>
      fenced(job.fence, async () => {
        const retryAfter = retryAfterMs === undefined ? null : `${Math.ceil(retryAfterMs)} milliseconds`;
        const [row] = await sql<{ outcome: "failed" | "retry" }[]>`
          select wa.fail_media_job(${job.message_id}, ${job.fence}::bigint, ${error}, ${permanent},
                                   ${retryAfter}::interval, ${options.maxAttempts}) as outcome`;
        return row!.outcome;
      }),
    expired: (limit: number) =>
      sql<{ message_id: string; path: string }[]>`select message_id, path from wa.expired_media(${limit})`,
    removed: (ids: string[]) => sql`select wa.record_media_removed(${ids}::uuid[])`,
  };
}

export type MediaStore = ReturnType<typeof createMediaStore>;
