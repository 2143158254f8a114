// Optimistic locking for the bot's chat sessions: read the session with its version, compute the next
// state, write it naming the version read. If another handler wrote first the database answers SQLSTATE
// 40001 and the whole read-apply-write is repeated after a short jittered backoff (50/100/200 ms by default).
// Only version conflicts are retried; the last one surfaces as a VersionConflictError.
import { DelegateBackoff, handleWhen, type IRetryBackoffContext, retry } from "cockatiel";
import postgres from "postgres";

/** The write lost to a concurrent one every time it was tried. */
export class VersionConflictError extends Error {
  constructor(readonly attempts: number) {
    super(`version conflict: the session changed under ${attempts} attempts in a row`);
    this.name = "VersionConflictError";
  }
}

/** Whether `error` is the database's "version conflict" (SQLSTATE 40001). */
export function isVersionConflict(error: unknown): boolean {
  return error instanceof postgres.PostgresError && error.code === "40001";
}

export interface VersionRetryOptions {
  /** Retries after the first attempt (default 3: waits of about 50, 100 and 200 ms). */
  retries?: number;
  /** The first wait; doubles per retry, each multiplied by a random 0.5..1.5 (default 50 ms). */
  baseDelayMs?: number;
  /** The longest wait before jitter (default 200 ms), however many retries are allowed. */
  maxDelayMs?: number;
  /** Called before each retry (for counting). */
  onRetry?: (attempt: number) => void;
}

export interface VersionedStep<S extends { version: number }, N, R> {
  /** Reads the current state and its version (0 when none exists yet). */
  read: () => Promise<S>;
  /** Computes the next state from the current one; runs again after every conflict. */
  apply: (current: S) => N;
  /** Writes `next` if the stored version is still `expectedVersion`, else throws SQLSTATE 40001. */
  write: (next: N, expectedVersion: number) => Promise<R>;
}

/** Read, apply, write; on a version conflict, all three again. Resolves to the write's result. */
export async function withVersionRetry<S extends { version: number }, N, R>(
  step: VersionedStep<S, N, R>,
  options: VersionRetryOptions = {},
): Promise<R> {
  const retries = options.retries ?? 3;
  const base = options.baseDelayMs ?? 50;
  const cap = options.maxDelayMs ?? 200;
  const backoff = new DelegateBackoff<IRetryBackoffContext<unknown>>((context) =>
    Math.min(cap, base * 2 ** (context.attempt - 1)) * (0.5 + Math.random())
  );
  const policy = retry(handleWhen(isVersionConflict), { maxAttempts: retries, backoff });
  if (options.onRetry !== undefined) {
    const onRetry = options.onRetry;
    policy.onRetry(({ attempt }) => onRetry(attempt));
  }
  try {
    return await policy.execute(async () => {
      const current = await step.read();
      return await step.write(step.apply(current), current.version);
    });
  } catch (error) {
    if (isVersionConflict(error)) throw new VersionConflictError(retries + 1);
    throw error;
  }
}
