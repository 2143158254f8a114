// Drains due media jobs: claim one, resolve its id, stream the file from the Graph API through the size and
// sha256 check into Storage (upsert at its one path, so a refetch after a crash replaces instead of adding),
// then record it on the message. Permanent errors fail the message with their reason; others back off.
import { errorMessage, log } from "../_shared/log.ts";
import { baseMime, isMediaType, maxBytes, MEDIA_BUCKET, mediaPath } from "../_shared/media.ts";
import { createStorageClient, type StorageClient, StorageRequestError } from "../_shared/storage.ts";
import type { Sql } from "../_shared/db.ts";
import type { FetcherEnv } from "./config.ts";
import { downloadMedia, MediaFetchError, resolveMedia, verifier } from "./download.ts";
import { createMediaStore, type MediaJob, type MediaStore, StaleMediaFenceError } from "./store.ts";

export type MediaOutcome = "stored" | "failed" | "retry" | "stale";

export interface MediaDrainSummary {
  worker: string;
  jobs: number;
  outcomes: Partial<Record<MediaOutcome, number>>;
  /** Objects removed by the retention policy. */
  removed: number;
  duration_ms: number;
}

export interface MediaFetcher {
  drain(options?: { budgetMs?: number; signal?: AbortSignal }): Promise<MediaDrainSummary>;
  fetchJob(job: MediaJob): Promise<MediaOutcome>;
}

/** Stores one job's file; throws MediaFetchError (or anything unexpected, treated as transient). */
async function store(env: FetcherEnv, storage: StorageClient, job: MediaJob, signal: AbortSignal) {
  if (!isMediaType(job.type)) throw new MediaFetchError(`not a media message: ${job.type}`, true);
  const declared = await resolveMedia(
    env.WHATSAPP_API_BASE,
    env.WHATSAPP_ACCESS_TOKEN,
    job.media_id,
    job.phone_number_id,
    AbortSignal.any([signal, AbortSignal.timeout(env.GRAPH_TIMEOUT_MS)]),
  );
  const mimeType = baseMime(declared.mimeType ?? job.mime_type ?? "application/octet-stream");
  const limit = maxBytes(job.type, job.animated);
  const limitReason = `${job.type} over WhatsApp's limit of ${limit} bytes`;
  if (declared.size !== null && declared.size > limit) {
    throw new MediaFetchError(`${limitReason} (declared ${declared.size})`, true);
  }
  const res = await downloadMedia(declared.url, env.WHATSAPP_ACCESS_TOKEN, signal);
  const check = verifier(declared, limit, limitReason);
  const path = mediaPath(job.conversation_id, job.wamid, mimeType);
  try {
    await storage.upload(MEDIA_BUCKET, path, res.body!.pipeThrough(check.stream), mimeType, signal);
  } catch (error) {
    // The check's own verdict first: it is why the upload was aborted.
    const verdict = check.failure();
    if (verdict !== undefined) throw verdict;
    // Over the project's Storage limit (the Free plan's 50 MB): no retry will fit it.
    if (error instanceof StorageRequestError && error.status === 413) {
      throw new MediaFetchError(`over the Storage file size limit: ${error.message}`, true);
    }
    throw error;
  }
  const verified = check.result();
  if (verified === undefined) {
    throw check.failure() ?? new MediaFetchError("upload ended before the file", false);
  }
  return { path, size: verified.size, sha256: verified.sha256, mimeType };
}

function fetcherFrom(env: FetcherEnv, mediaStore: MediaStore, storage: StorageClient, workerId: string) {
  async function fetchJob(job: MediaJob): Promise<MediaOutcome> {
    const started = performance.now();
    // Give up a little before the lease ends, so a slow download never overlaps the next claim's.
    const signal = AbortSignal.timeout(Math.max(1_000, env.MEDIA_LEASE_SECONDS * 1000 - 5_000));
    let outcome: MediaOutcome;
    let error: string | undefined;
    try {
      const stored = await store(env, storage, job, signal);
      await mediaStore.complete(job, stored);
      outcome = "stored";
    } catch (failure) {
      error = errorMessage(failure);
      const known = failure instanceof MediaFetchError ? failure : undefined;
      try {
        outcome = failure instanceof StaleMediaFenceError
          ? "stale"
          : await mediaStore.fail(job, error, known?.permanent ?? false, known?.retryAfterMs);
      } catch (failError) {
        if (!(failError instanceof StaleMediaFenceError)) throw failError;
        outcome = "stale";
      }
    }
    log(outcome === "stored" ? "info" : "warn", {
      function: "media-fetcher",
      job: "fetch",
      worker: workerId,
      message_id: job.message_id,
      type: job.type,
      attempt: job.attempts,
      outcome,
      duration_ms: Math.round(performance.now() - started),
      ...(error === undefined ? {} : { error }),
    });
    return outcome;
  }

  /** The retention policy: stored media past their number's media_retention leave the bucket. */
  async function removeExpired(): Promise<number> {
    const expired = await mediaStore.expired(100);
    if (expired.length === 0) return 0;
    await storage.remove(MEDIA_BUCKET, expired.map((row) => row.path));
    await mediaStore.removed(expired.map((row) => row.message_id));
    return expired.length;
  }

  async function drain(
    options: { budgetMs?: number; signal?: AbortSignal } = {},
  ): Promise<MediaDrainSummary> {
    const started = performance.now();
    const budget = options.budgetMs ?? env.MEDIA_TIME_BUDGET_MS;
    const outcomes: Partial<Record<MediaOutcome, number>> = {};
    let jobs = 0;
    const lane = async () => {
      while (!options.signal?.aborted && performance.now() - started < budget) {
        const [job] = await mediaStore.claim(workerId, 1);
        if (job === undefined) return;
        const outcome = await fetchJob(job);
        outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
        jobs++;
      }
    };
    await Promise.all(Array.from({ length: env.MEDIA_CONCURRENCY }, lane));
    const removed = await removeExpired();
    return {
      worker: workerId,
      jobs,
      outcomes,
      removed,
      duration_ms: Math.round(performance.now() - started),
    };
  }

  return { drain, fetchJob };
}

export function createFetcher(env: FetcherEnv, sql: Sql, workerId: string): MediaFetcher {
  return fetcherFrom(
    env,
    createMediaStore(sql, { leaseSeconds: env.MEDIA_LEASE_SECONDS, maxAttempts: env.MEDIA_MAX_ATTEMPTS }),
    createStorageClient(env.SUPABASE_URL, env.SUPABASE_SERVICE_ROLE_KEY),
    workerId,
  );
}
