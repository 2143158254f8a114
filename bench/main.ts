// `npm run bench` (through bench/run.sh, which starts and removes a throwaway cluster): runs each benchmark
// of SPEC 8 and issue 10 in turn, prints one table (metric, ours, the baseline measured in the same run,
// ours / baseline, target), writes bench/results/<name>.json (and table.md, the table as Markdown) and exits
// non-zero when a benchmark fails or one of its checks (no lost message, no double send, the chaos
// invariant, ...) does not hold. `--quick` runs small workloads (the smoke run at the end of `npm test`);
// `deno run -A bench/main.ts drain herd` runs only the benchmarks named.
import { type BenchContext, type Benchmark, type BenchResult, muted, settle } from "./lib.ts";
import { describe, type Environment, environment } from "./machine.ts";
import { printDetails, resultsDir, table, writeResult } from "./report.ts";
import { ingest } from "./ingest.ts";
import { drain } from "./drain.ts";
import { debounce } from "./debounce.ts";
import { chaos } from "./chaos.ts";
import { herd } from "./herd.ts";
import { contention } from "./contention.ts";
import { deadlocks } from "./deadlocks.ts";
import { realtime } from "./realtime.ts";
import { routing } from "./routing.ts";
import { media } from "./media.ts";
import { campaigns } from "./campaigns.ts";
import { conversation } from "./conversation.ts";
import { calls } from "./calls.ts";
import { burst } from "./burst.ts";
import { profile } from "./profile.ts";
import { durable } from "./durable.ts";

const BENCHMARKS: Record<string, Benchmark> = {
  ingest,
  drain,
  debounce,
  chaos,
  herd,
  contention,
  deadlocks,
  realtime,
  routing,
  media,
  campaigns,
  conversation,
  calls,
  burst,
  profile,
  durable,
};

async function runOne(
  name: string,
  benchmark: Benchmark,
  ctx: BenchContext,
  env: Environment,
): Promise<BenchResult> {
  const started = performance.now();
  console.error(`[bench] ${name} ...`);
  let res: BenchResult;
  try {
    const { value, output } = await muted(() => benchmark(ctx));
    res = value;
    if (output.problems > 0) {
      res.notes.push(
        `${output.problems} warn/error log line(s) while running (expected where faults are injected), first: ` +
          output.firstProblems.join(" | "),
      );
    }
  } catch (error) {
    res = {
      name,
      rows: [],
      checks: [{ name: "ran to completion", actual: 0, expected: 1, ok: false }],
      notes: [`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`],
      parameters: {},
      samples: {},
    };
  }
  const seconds = (performance.now() - started) / 1000;
  console.error(`[bench] ${name} done in ${seconds.toFixed(1)} s`);
  // Settled after, not before: the next benchmark starts clean, and the first one on the fresh cluster does
  // not start from statistics taken of empty tables (plans cached then would not fit the tables it fills).
  await settle(ctx);
  await writeResult(res, { mode: ctx.quick ? "quick" : "full", env, seconds });
  return res;
}

async function main(): Promise<number> {
  const dbUrl = Deno.env.get("SUPABASE_DB_URL");
  if (dbUrl === undefined || dbUrl.includes(":54322/")) {
    console.error(
      "bench/main.ts runs through `npm run bench` (or `npm test`), which point SUPABASE_DB_URL at a throwaway " +
        "cluster",
    );
    return 2;
  }
  const quick = Deno.args.includes("--quick");
  const names = Deno.args.filter((arg) => !arg.startsWith("--"));
  const wanted = names.length > 0 ? names : Object.keys(BENCHMARKS);
  const unknown = wanted.filter((name) => !(name in BENCHMARKS));
  if (unknown.length > 0) {
    console.error(
      `unknown benchmark(s): ${unknown.join(", ")}; known: ${Object.keys(BENCHMARKS).join(", ")}`,
    );
    return 2;
  }
  const ctx: BenchContext = {
    dbUrl,
    quick,
    pgData: Deno.env.get("WABASE_BENCH_PGDATA") || undefined,
    durableDbUrl: Deno.env.get("WABASE_BENCH_DURABLE_DB_URL") || undefined,
  };
  const env = await environment(ctx);
  const started = performance.now();
  const results: BenchResult[] = [];
  for (const name of wanted) results.push(await runOne(name, BENCHMARKS[name]!, ctx, env));
  const minutes = (performance.now() - started) / 60_000;

  console.log(table(results));
  console.log(
    "\nratio = ours / baseline (throughput: higher is better; latency, requests, losses: lower is better)",
  );
  const failed = printDetails(results);
  const checks = results.reduce((sum, res) => sum + res.checks.length, 0);
  const footer = `${quick ? "quick" : "full"} mode, ${minutes.toFixed(1)} min on ${describe(env)}`;
  console.log(`\nchecks: ${checks - failed} passed, ${failed} failed`);
  console.log(footer);
  await Deno.writeTextFile(new URL("table.md", resultsDir), `${table(results, true)}\n\n${footer}\n`);
  return failed === 0 ? 0 : 1;
}

Deno.exit(await main());
