// The throughput rules the fake Graph API enforces when asked (WHATSAPP.md 4.2-4.3): per business number a
// token bucket of `mps` messages a second holding one second's burst (130429 past it), and per (number,
// recipient) the pair rate, one message per `pairIntervalMs` with bursts of `pairBurst` paid back afterwards
// (131056 past it). Meta does not publish its exact algorithm; these are the documented rates, with the burst
// a sender could reasonably expect, so a sender that paces itself never meets them.

export interface FakeLimits {
  /** Messages a second per business number (Meta: 80, 1,000 upgraded, 20 coexistence). */
  mps: number;
  /** Default 6,000 ms. */
  pairIntervalMs?: number;
  /** Default 45. */
  pairBurst?: number;
}

/** What the limiter decided for one request: allowed, or refused with Meta's code. */
export type LimitVerdict = "ok" | 130429 | 131056;

export interface Limiter {
  /** Counts one request of `phoneNumberId` (to `recipient`, null for a read receipt) at `nowMs`. */
  check(phoneNumberId: string, recipient: string | null, nowMs: number): LimitVerdict;
}

export function createLimiter(limits: FakeLimits): Limiter {
  const pairInterval = limits.pairIntervalMs ?? 6_000;
  const pairTolerance = ((limits.pairBurst ?? 45) - 1) * pairInterval;
  const buckets = new Map<string, { tokens: number; at: number }>();
  const pairs = new Map<string, number>();
  return {
    check(phoneNumberId, recipient, nowMs) {
      const bucket = buckets.get(phoneNumberId) ?? { tokens: limits.mps, at: nowMs };
      bucket.tokens = Math.min(limits.mps, bucket.tokens + (nowMs - bucket.at) * limits.mps / 1000);
      bucket.at = nowMs;
      buckets.set(phoneNumberId, bucket);
      if (bucket.tokens < 1) return 130429;
      if (recipient !== null) {
        const key = `${phoneNumberId}:${recipient}`;
        const next = pairs.get(key) ?? nowMs;
        if (next - pairTolerance > nowMs) return 131056;
        pairs.set(key, Math.max(next, nowMs) + pairInterval);
      }
      bucket.tokens -= 1;
      return "ok";
    },
  };
}
