// Shared pieces of `npm run bench`: the result shape every benchmark returns, percentiles, a bounded
// concurrency runner, and a console that stays quiet while a benchmark runs (the processor logs a JSON
// line per batch; thousands of them would bury the table).
import postgres from "postgres";

/** One line of the table: a figure of wabase, and the baseline measured (or implied) in the same run. */
export interface Row {
  metric: string;
  value: number;
  unit: string;
  /** The baseline's figure for the same metric; absent when the row has none. */
  baseline?: number;
  /** What the baseline is (pg-boss, direct SQL, naive client, ...). */
  baselineLabel?: string;
  /** What the figure must be or is expected to be ("0", "≥ 1×", "< 1 s"); shown as is. */
  target?: string;
}

/** Something that must hold (no lost message, no double send, ...): a failed check fails the run. */
export interface Check {
  name: string;
  actual: number;
  expected: number;
  ok: boolean;
}

export interface BenchResult {
  name: string;
  /** When set, the benchmark did not run, and why. */
  skipped?: string;
  rows: Row[];
  checks: Check[];
  /** Free-form remarks printed under the table and kept in the JSON. */
  notes: string[];
  /** The workload (sizes, concurrency, latencies, ...), kept in bench/results/<name>.json. */
  parameters: Record<string, unknown>;
  /** Raw samples and per-run figures, kept in bench/results/<name>.json. */
  samples: Record<string, unknown>;
}

export interface BenchContext {
  /** The throwaway cluster `bench/run.sh` (or `npm test`) started. */
  dbUrl: string;
  /** Smaller workloads, for the smoke run at the end of `npm test`. */
  quick: boolean;
  /** The cluster's data directory, when the benchmarks may restart it (chaos). */
  pgData?: string;
  /** A second throwaway cluster with fsync, synchronous_commit and full_page_writes on, as on a Supabase
   * database (`bench/run.sh` starts it when the `durable` benchmark runs). */
  durableDbUrl?: string;
}

export type Benchmark = (ctx: BenchContext) => Promise<BenchResult>;

/** A new, empty result to fill in. */
export function result(name: string, parameters: Record<string, unknown> = {}): BenchResult {
  return { name, rows: [], checks: [], notes: [], parameters, samples: {} };
}

/** Records that `actual` must equal `expected`. */
export function check(res: BenchResult, name: string, actual: number, expected: number): void {
  res.checks.push({ name, actual, expected, ok: actual === expected });
}

/** The bench cluster's bootstrap superuser (local only): for what only a superuser may switch. */
export function superuserUrl(ctx: BenchContext): string {
  const url = new URL(ctx.dbUrl);
  url.username = "supabase_admin";
  return url.toString();
}

/** A postgres.js pool on the bench database that ignores notices. */
export function connect(ctx: BenchContext, max: number, options: { prepare?: boolean } = {}): postgres.Sql {
  return postgres(ctx.dbUrl, { max, onnotice: () => {}, ...options });
}

/** The p-th percentile (0..100) of `samples`, nearest-rank; NaN for no samples. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] ?? Number.NaN;
}

/** p50, p95 and p99 of `samples`, rounded to 0.1 (for the JSON summaries). */
export function quantiles(samples: readonly number[]): { p50: number; p95: number; p99: number } {
  const at = (p: number) => Math.round(percentile(samples, p) * 10) / 10;
  return { p50: at(50), p95: at(95), p99: at(99) };
}

/** Rounds every sample to 0.1 so the raw samples in the JSON stay readable. */
export function rounded(samples: readonly number[]): number[] {
  return samples.map((x) => Math.round(x * 10) / 10);
}

/**
 * Runs `task(i)` for i in 0..count-1 with at most `concurrency` in flight; resolves to each task's duration
 * in ms (in index order) and the wall-clock time of the whole run.
 */
export async function runBounded(
  count: number,
  concurrency: number,
  task: (index: number) => Promise<void>,
): Promise<{ latencies: number[]; elapsedMs: number }> {
  const latencies = new Array<number>(count).fill(0);
  let next = 0;
  const started = performance.now();
  const lane = async () => {
    for (let i = next++; i < count; i = next++) {
      const t0 = performance.now();
      await task(i);
      latencies[i] = performance.now() - t0;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  return { latencies, elapsedMs: performance.now() - started };
}

/** Fisher-Yates, in place. */
export function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/** A pause that stands for time passing in the workload (a network round trip, a burst's spacing). */
export function sleepMs(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Vacuums and analyzes every table the benchmark role owns, then waits (at most a minute) until no autovacuum
 * worker runs: on two shared cores a measurement must not compete with the clean-up after the rows the
 * previous step wrote, and every system measured starts from the same settled database.
 */
export async function settle(ctx: BenchContext): Promise<void> {
  const sql = connect(ctx, 1);
  try {
    await sql.unsafe("vacuum (analyze)");
    await until("autovacuum to go idle", async () => {
      const [row] = await sql<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity where backend_type = 'autovacuum worker'`;
      return row?.n === 0;
    }, 60_000);
  } finally {
    await sql.end();
  }
}

/** Resolves once `condition()` resolves true, polling every `everyMs`; rejects after `timeoutMs`. */
export async function until(
  what: string,
  condition: () => Promise<boolean>,
  timeoutMs: number,
  everyMs = 100,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`still waiting after ${timeoutMs} ms: ${what}`);
    await sleepMs(everyMs);
  }
}

/** A fresh business phone number id (15 digits) starting with `prefix`, so concurrent runs never share one. */
export function freshPhoneNumberId(prefix: number): string {
  return String(prefix * 1e14 + Math.floor(Math.random() * 1e13));
}

type ConsoleMethod = "log" | "info" | "debug" | "warn" | "error";
const METHODS: ConsoleMethod[] = ["log", "info", "debug", "warn", "error"];

/** What was written to the console while it was muted. */
export interface MutedOutput {
  lines: number;
  /** warn and error lines (the processor's and the worker's problems), the first few kept verbatim. */
  problems: number;
  firstProblems: string[];
}

/** Runs `fn` with console.* swallowed; the problem lines are counted and the first few kept. */
export async function muted<T>(fn: () => Promise<T>): Promise<{ value: T; output: MutedOutput }> {
  const saved = METHODS.map((method) => [method, console[method]] as const);
  const output: MutedOutput = { lines: 0, problems: 0, firstProblems: [] };
  for (const method of METHODS) {
    console[method] = (...args: unknown[]) => {
      output.lines++;
      if (method === "warn" || method === "error") {
        output.problems++;
        if (output.firstProblems.length < 3) {
          output.firstProblems.push(args.map((arg) => String(arg)).join(" ").slice(0, 300));
        }
      }
    };
  }
  try {
    return { value: await fn(), output };
  } finally {
    for (const [method, original] of saved) console[method] = original;
  }
}
