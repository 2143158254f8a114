// Shared pieces of `npm run bench`: the result shape every benchmark returns, percentiles, a bounded
// concurrency runner, and a console that stays quiet while a benchmark runs (the processor logs a JSON
// line per batch; thousands of them would bury the table).

/** One line of the table: a figure of wabase, and the baseline measured (or implied) in the same run. */
export interface Row {
  metric: string;
  value: number;
  unit: string;
  /** The baseline's figure for the same metric; absent when the row has none. */
  baseline?: number;
  /** What the baseline is (pg-boss, direct SQL, naive client, ...). */
  baselineLabel?: string;
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
  /** Anything else worth keeping in bench/results/<name>.json (raw samples, per-run details). */
  details?: Record<string, unknown>;
}

export interface BenchContext {
  /** The throwaway cluster `bench/run.sh` started. */
  dbUrl: string;
}

export type Benchmark = (ctx: BenchContext) => Promise<BenchResult>;

/** A new, empty result to fill in. */
export function result(name: string): BenchResult {
  return { name, rows: [], checks: [], notes: [] };
}

/** Records that `actual` must equal `expected`. */
export function check(res: BenchResult, name: string, actual: number, expected: number): void {
  res.checks.push({ name, actual, expected, ok: actual === expected });
}

/** The p-th percentile (0..100) of `samples`, nearest-rank; NaN for no samples. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] ?? Number.NaN;
}

export function mean(samples: readonly number[]): number {
  return samples.length === 0 ? Number.NaN : samples.reduce((sum, x) => sum + x, 0) / samples.length;
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

export function sleepMs(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
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
