// Batching and deduplication for per-row lookups (seed 000: 2,146 components each asking for the same backup
// info before the first answer arrived). DataLoader does the batching: every load of one tick goes into one
// fetchMany call (split at maxBatch), and a key already asked shares the cached promise. What is added here is
// the freshness policy: answers expire after a TTL, failures are never cached, and keys can be invalidated
// when Realtime says a row changed.
import DataLoader from "dataloader";

/**
 * Fetches many keys in one request: a Map by key, or an array in the order of `keys`. A key missing from the
 * answer (or null/undefined in the array) resolves to null; an Error in the array rejects only that key.
 */
export type FetchMany<K, V> = (
  keys: readonly K[],
) => Promise<Map<K, V> | ReadonlyArray<V | Error | null | undefined>>;

export interface BatchLoaderOptions<K> {
  /** The most keys in one fetchMany call (default 100). */
  maxBatch?: number;
  /** How long an answer is reused, counted from its arrival (default 30 000 ms; 0 shares in-flight only). */
  ttlMs?: number;
  /** The cache identity of a key, for keys that are not primitives (default: the key itself). */
  cacheKey?: (key: K) => string;
  /** The clock, in milliseconds (tests inject one; default Date.now). */
  now?: () => number;
}

export interface BatchLoader<K, V> {
  /** The value of `key`, or null when fetchMany did not answer it. Rejects only for this key's failures. */
  load(key: K): Promise<V | null>;
  /** The values of `keys` in order; a failed key is its Error in the array instead of a rejection. */
  loadMany(keys: readonly K[]): Promise<Array<V | null | Error>>;
  /** Forgets `key` (every key when omitted): the next load fetches again. */
  invalidate(key?: K): void;
  /** Stores a value known from elsewhere (a Realtime row, a write's answer), replacing any cached one. */
  prime(key: K, value: V | null): void;
}

export const DEFAULT_MAX_BATCH = 100;
export const DEFAULT_TTL_MS = 30_000;

// Sweeping expired entries on every write would cost O(n) per load; every this many writes it is amortised.
const SWEEP_EVERY = 256;

interface Entry<P> {
  promise: P;
  /** Infinity while the answer has not arrived: an in-flight request is always shared, whatever its age. */
  expiresAt: number;
}

/**
 * DataLoader's cache, with expiry. `get` drops an entry whose answer is older than the TTL, so the next load
 * fetches again; `settle` starts the clock when the answer arrives.
 */
class TtlCacheMap<C, P> implements DataLoader.CacheMap<C, P> {
  readonly #entries = new Map<C, Entry<P>>();
  #writes = 0;

  constructor(private readonly ttlMs: number, private readonly now: () => number) {}

  get(key: C): P | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (this.now() >= entry.expiresAt) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.promise;
  }

  set(key: C, promise: P): void {
    this.#entries.set(key, { promise, expiresAt: Infinity });
    if (++this.#writes % SWEEP_EVERY === 0) this.#sweep();
  }

  delete(key: C): void {
    this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }

  /** The answer for `key` arrived: it is reused for the TTL from now on. */
  settle(key: C): void {
    const entry = this.#entries.get(key);
    if (entry !== undefined) entry.expiresAt = this.now() + this.ttlMs;
  }

  #sweep(): void {
    const now = this.now();
    for (const [key, entry] of this.#entries) {
      if (now >= entry.expiresAt) this.#entries.delete(key);
    }
  }
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`);
  return value;
}

/** A batching, deduplicating, expiring loader over `fetchMany` (see BatchLoaderOptions for the defaults). */
export function createBatchLoader<K, V>(
  fetchMany: FetchMany<K, V>,
  options: BatchLoaderOptions<K> = {},
): BatchLoader<K, V> {
  const maxBatch = positiveInteger("maxBatch", options.maxBatch ?? DEFAULT_MAX_BATCH);
  const ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
  if (!(ttlMs >= 0)) throw new RangeError("ttlMs must be zero or more");
  const cacheKey: (key: K) => unknown = options.cacheKey ?? ((key) => key);
  const cache = new TtlCacheMap<unknown, Promise<V | null>>(ttlMs, options.now ?? Date.now);

  const batch = async (keys: readonly K[]): Promise<Array<V | null | Error>> => {
    const answer = await fetchMany(keys);
    let values: Array<V | null | Error>;
    if (answer instanceof Map) {
      // Looked up by cache key, so an answer keyed by equal-but-not-identical keys still matches.
      const byCacheKey = new Map<unknown, V>();
      for (const [key, value] of answer) byCacheKey.set(cacheKey(key), value);
      values = keys.map((key) => byCacheKey.get(cacheKey(key)) ?? null);
    } else {
      if (answer.length !== keys.length) {
        throw new TypeError(`fetchMany answered ${answer.length} values for ${keys.length} keys`);
      }
      values = keys.map((_, i) => answer[i] ?? null);
    }
    keys.forEach((key, i) => {
      // DataLoader forgets the keys of a failed batch itself, but keeps a key's own Error cached: forget it
      // too, so the next load retries instead of replaying the failure for a whole TTL.
      if (values[i] instanceof Error) loader.clear(key);
      else cache.settle(cacheKey(key));
    });
    return values;
  };

  const loader: DataLoader<K, V | null, unknown> = new DataLoader<K, V | null, unknown>(batch, {
    maxBatchSize: maxBatch,
    cacheKeyFn: cacheKey,
    cacheMap: cache,
  });

  return {
    load(key) {
      try {
        return loader.load(key);
      } catch (error) {
        // A null or undefined key: DataLoader throws synchronously; callers expect a promise either way.
        return Promise.reject(error);
      }
    },
    loadMany(keys) {
      return loader.loadMany(keys);
    },
    invalidate(key) {
      if (key === undefined) loader.clearAll();
      else loader.clear(key);
    },
    prime(key, value) {
      loader.clear(key).prime(key, value);
      cache.settle(cacheKey(key));
    },
  };
}
