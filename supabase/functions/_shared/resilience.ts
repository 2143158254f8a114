// Timeout + retry with exponential backoff + circuit breaker around a remote call (cockatiel). The retry
// honours a delay the remote asked for (Retry-After); the breaker's state can be restored from and saved to
// the database, so a fresh isolate does not hammer a service an earlier one found down.
import {
  circuitBreaker,
  type CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  DelegateBackoff,
  handleWhen,
  type IBackoff,
  type IRetryBackoffContext,
  retry,
  timeout,
  TimeoutStrategy,
  wrap,
} from "cockatiel";

export type BreakerState = "closed" | "open" | "half_open" | "isolated";

const STATE_NAMES: Record<CircuitState, BreakerState> = {
  [CircuitState.Closed]: "closed",
  [CircuitState.Open]: "open",
  [CircuitState.HalfOpen]: "half_open",
  [CircuitState.Isolated]: "isolated",
};

/** An error that says how long the remote side wants us to wait before trying again. */
export interface RetryAfterHint {
  retryAfterMs?: number;
}

export interface ResilienceOptions {
  /** Per-attempt time limit; the attempt's AbortSignal fires then. */
  timeoutMs: number;
  /** Attempts in total, the first included. */
  maxAttempts: number;
  /** First retry delay; doubles per attempt, with a jitter of ×0.5–1.5. */
  baseDelayMs: number;
  /** Which failures are worth another attempt. */
  retryable: (error: unknown) => boolean;
  /** Which failures count towards opening the breaker. */
  breaks: (error: unknown) => boolean;
  /** Consecutive counted failures that open the breaker. */
  breakerThreshold: number;
  /** How long the breaker stays open before letting one trial call through, on `clock`. */
  halfOpenAfterMs: number;
  /** Milliseconds since the epoch (default `Date.now`): tests pass their own and move it past the delay. */
  clock?: () => number;
  /** A breaker snapshot saved earlier (see `onBreakerChange`). */
  initialState?: unknown;
  /** Called on every breaker state change with a snapshot to persist. */
  onBreakerChange?: (state: BreakerState, snapshot: unknown) => void;
}

export interface Resilient {
  execute<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T>;
  breakerState(): BreakerState;
}

function retryAfterOf(context: IRetryBackoffContext<unknown>): number {
  const result = context.result;
  if (!("error" in result)) return 0;
  const hint = (result.error as RetryAfterHint | undefined)?.retryAfterMs;
  return typeof hint === "number" && hint > 0 ? hint : 0;
}

/** When a saved snapshot's breaker opened (0: it was half-open, so a trial call may go at once). */
function savedOpenedAt(snapshot: unknown): number | undefined {
  const openedAt = (snapshot as { ownState?: { openedAt?: unknown } } | undefined)?.ownState?.openedAt;
  return typeof openedAt === "number" ? openedAt : undefined;
}

/** Builds the policy: retry (outermost) → circuit breaker → timeout (per attempt). */
export function resilient(options: ResilienceOptions): Resilient {
  const clock = options.clock ?? Date.now;
  // Cockatiel lets the trial call through once `Date.now() - openedAt` reaches the half-open backoff's
  // duration, read on every call. This duration is -∞ once the delay has passed on `clock` since the breaker
  // opened and +∞ before, so `clock` alone decides. A restored breaker counts from its saved opening.
  let openedAt = savedOpenedAt(options.initialState) ?? 0;
  let restoring = true;
  const halfOpenAfter = (): IBackoff<unknown> => {
    if (!restoring) openedAt = clock();
    return {
      get duration() {
        return clock() - openedAt >= options.halfOpenAfterMs ? -Infinity : Infinity;
      },
      next: halfOpenAfter,
    };
  };
  const backoff = new DelegateBackoff<IRetryBackoffContext<unknown>>((context) => {
    const exponential = options.baseDelayMs * 2 ** (context.attempt - 1) * (0.5 + Math.random());
    return Math.max(exponential, retryAfterOf(context));
  });
  const retryPolicy = retry(handleWhen(options.retryable), { maxAttempts: options.maxAttempts - 1, backoff });
  const breaker: CircuitBreakerPolicy = circuitBreaker(handleWhen(options.breaks), {
    breaker: new ConsecutiveBreaker(options.breakerThreshold),
    halfOpenAfter: { next: halfOpenAfter },
    initialState: options.initialState,
  });
  restoring = false;
  // Snapshots carry the opening on `clock`, which a restored breaker counts from.
  const snapshot = () => {
    const saved = breaker.toJSON() as { ownState: object };
    return breaker.state === CircuitState.Open
      ? { ...saved, ownState: { ...saved.ownState, openedAt } }
      : saved;
  };
  breaker.onStateChange((state) => options.onBreakerChange?.(STATE_NAMES[state], snapshot()));
  const perAttempt = timeout(options.timeoutMs, TimeoutStrategy.Aggressive);
  const policy = wrap(retryPolicy, breaker, perAttempt);
  return {
    execute: (fn) => policy.execute(({ signal }) => fn(signal)),
    breakerState: () => STATE_NAMES[breaker.state],
  };
}
