// `npm run bench` (through bench/run.sh, which starts and removes a throwaway cluster): runs each benchmark
// of SPEC 8 in turn, prints one table (value, the baseline measured in the same run, value / baseline) and
// writes bench/results/<name>.json. Exits non-zero when a benchmark fails or one of its checks (no lost
// message, no double send, no lost update, ...) does not hold. `deno run -A bench/main.ts drain herd` runs
// only the benchmarks named.
import postgres from "postgres";
import { type Benchmark, type BenchResult, muted, type Row } from "./lib.ts";
import { ingest } from "./ingest.ts";
import { drain } from "./drain.ts";
import { debounce } from "./debounce.ts";
import { herd } from "./herd.ts";
import { contention } from "./contention.ts";

const BENCHMARKS: Record<string, Benchmark> = { ingest, drain, debounce, herd, contention };
const resultsDir = new URL("./results/", import.meta.url);

function format(value: number | undefined, unit = ""): string {
  if (value === undefined) return "—";
  if (!Number.isFinite(value)) return String(value);
  const digits = Number.isInteger(value) || Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  const number = value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
  return unit === ""
    ? number
    : unit.startsWith("/") && unit !== "/s"
    ? `${number}${unit}`
    : `${number} ${unit}`;
}

function ratio(row: Row): number | undefined {
  if (row.baseline === undefined) return undefined;
  if (row.baseline === 0) return row.value === 0 ? 1 : Number.POSITIVE_INFINITY;
  return row.value / row.baseline;
}

function formatRatio(value: number | undefined): string {
  if (value === undefined) return "—";
  if (!Number.isFinite(value)) return "∞";
  return `${value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(3)}×`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => [...(row[c] ?? "")].length)));
  const line = (row: string[]) =>
    row.map((cell, c) => (c >= 2 ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join("  ").trimEnd();
  const [head, ...body] = rows;
  return [line(head!), widths.map((w) => "─".repeat(w)).join("  "), ...body.map(line)].join("\n");
}

async function runOne(name: string, benchmark: Benchmark, dbUrl: string): Promise<BenchResult> {
  const started = performance.now();
  console.error(`[bench] ${name} ...`);
  let res: BenchResult;
  try {
    const { value, output } = await muted(() => benchmark({ dbUrl }));
    res = value;
    if (output.problems > 0) {
      res.notes.push(
        `${output.problems} warn/error log line(s) while running, first: ${output.firstProblems.join(" | ")}`,
      );
    }
  } catch (error) {
    res = {
      name,
      rows: [],
      checks: [{ name: "ran to completion", actual: 0, expected: 1, ok: false }],
      notes: [`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`],
    };
  }
  const seconds = (performance.now() - started) / 1000;
  console.error(`[bench] ${name} done in ${seconds.toFixed(1)} s`);
  await Deno.mkdir(resultsDir, { recursive: true });
  const file = new URL(`${name}.json`, resultsDir);
  await Deno.writeTextFile(
    file,
    JSON.stringify(
      {
        ...res,
        rows: res.rows.map((row) => ({ ...row, ratio: ratio(row) ?? null })),
        ran_at: new Date().toISOString(),
        duration_s: Math.round(seconds * 10) / 10,
        deno: Deno.version.deno,
      },
      null,
      2,
    ) + "\n",
  );
  return res;
}

/** The server and the settings that change the figures (the throwaway cluster trades durability for speed). */
async function databaseSettings(dbUrl: string): Promise<string> {
  const sql = postgres(dbUrl, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<{ version: string; fsync: string; sync: string }[]>`
      select current_setting('server_version') as version, current_setting('fsync') as fsync,
             current_setting('synchronous_commit') as sync`;
    return `Postgres ${row?.version} (fsync=${row?.fsync}, synchronous_commit=${row?.sync}), ` +
      `${navigator.hardwareConcurrency} CPU(s), Deno ${Deno.version.deno}`;
  } finally {
    await sql.end();
  }
}

async function main(): Promise<number> {
  const dbUrl = Deno.env.get("SUPABASE_DB_URL");
  if (dbUrl === undefined || dbUrl.includes(":54322/")) {
    console.error(
      "bench/main.ts runs through `npm run bench`, which points SUPABASE_DB_URL at a throwaway cluster",
    );
    return 2;
  }
  const wanted = Deno.args.length > 0 ? Deno.args : Object.keys(BENCHMARKS);
  const unknown = wanted.filter((name) => !(name in BENCHMARKS));
  if (unknown.length > 0) {
    console.error(
      `unknown benchmark(s): ${unknown.join(", ")}; known: ${Object.keys(BENCHMARKS).join(", ")}`,
    );
    return 2;
  }
  const settings = await databaseSettings(dbUrl);
  const results: BenchResult[] = [];
  for (const name of wanted) results.push(await runOne(name, BENCHMARKS[name]!, dbUrl));

  const rows: string[][] = [["benchmark", "metric", "value", "baseline", "ratio"]];
  for (const res of results) {
    if (res.skipped !== undefined) rows.push([res.name, `skipped: ${res.skipped}`, "—", "—", "—"]);
    for (const row of res.rows) {
      rows.push([
        res.name,
        row.metric,
        format(row.value, row.unit),
        format(row.baseline, row.unit),
        formatRatio(ratio(row)),
      ]);
    }
  }
  console.log(table(rows));
  console.log(
    "\nratio = value / baseline (throughput: higher is better; latency, requests, losses: lower is better)",
  );
  let failed = 0;
  for (const res of results) {
    console.log(`\n${res.name}${res.skipped !== undefined ? " (skipped)" : ""}`);
    const baselines = [...new Set(res.rows.map((row) => row.baselineLabel).filter(Boolean))];
    if (baselines.length > 0) console.log(`  baseline: ${baselines.join("; ")}`);
    for (const note of res.notes) console.log(`  ${note}`);
    for (const c of res.checks) {
      if (!c.ok) failed++;
      console.log(
        `  ${c.ok ? "ok  " : "FAIL"} ${c.name}: ${c.actual}${c.ok ? "" : ` (expected ${c.expected})`}`,
      );
    }
  }
  const checks = results.reduce((sum, res) => sum + res.checks.length, 0);
  console.log(`\nchecks: ${checks - failed} passed, ${failed} failed`);
  console.log(`database: ${settings}`);
  console.log(`results: ${resultsDir.pathname}`);
  return failed === 0 ? 0 : 1;
}

Deno.exit(await main());
