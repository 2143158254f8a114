// The table `npm run bench` prints (benchmark, metric, ours, baseline, ratio, target) and the JSON file each
// benchmark leaves in bench/results/.
import type { Environment } from "./machine.ts";
import type { BenchResult, Row } from "./lib.ts";

export const resultsDir = new URL("./results/", import.meta.url);

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

export function ratio(row: Row): number | undefined {
  if (row.baseline === undefined) return undefined;
  if (row.baseline === 0) return row.value === 0 ? 1 : Number.POSITIVE_INFINITY;
  return row.value / row.baseline;
}

function formatRatio(value: number | undefined): string {
  if (value === undefined) return "—";
  if (!Number.isFinite(value)) return "∞";
  return `${value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)}×`;
}

function align(rows: string[][], markdown: boolean): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => [...(row[c] ?? "")].length)));
  // Figures right-aligned, names left-aligned.
  const right = (c: number) => c >= 2 && c <= 4;
  const cell = (text: string, c: number) => right(c) ? text.padStart(widths[c]!) : text.padEnd(widths[c]!);
  const [head, ...body] = rows;
  if (markdown) {
    const line = (row: string[]) => `| ${row.map(cell).join(" | ")} |`;
    const rule = `|${
      widths.map((w, c) => right(c) ? ` ${"-".repeat(w - 1)}: ` : ` ${"-".repeat(w)} `).join("|")
    }|`;
    return [line(head!), rule, ...body.map(line)].join("\n");
  }
  const line = (row: string[]) => row.map(cell).join("  ").trimEnd();
  return [line(head!), widths.map((w) => "─".repeat(w)).join("  "), ...body.map(line)].join("\n");
}

/** The table of every result; `markdown` for the README. */
export function table(results: BenchResult[], markdown = false): string {
  const rows: string[][] = [["benchmark", "metric", "ours", "baseline", "ratio", "target"]];
  for (const res of results) {
    if (res.skipped !== undefined) rows.push([res.name, `skipped: ${res.skipped}`, "—", "—", "—", "—"]);
    for (const row of res.rows) {
      rows.push([
        res.name,
        row.metric,
        format(row.value, row.unit),
        format(row.baseline, row.unit),
        formatRatio(ratio(row)),
        row.target ?? "",
      ]);
    }
  }
  return align(rows, markdown);
}

/** Baselines, notes and checks under the table; returns how many checks failed. */
export function printDetails(results: BenchResult[]): number {
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
  return failed;
}

/** bench/results/<name>.json: the result with its ratios, the mode, the machine and versions, the timing. */
export async function writeResult(
  res: BenchResult,
  meta: { mode: "quick" | "full"; env: Environment; seconds: number },
): Promise<void> {
  await Deno.mkdir(resultsDir, { recursive: true });
  const { samples, ...rest } = res;
  await Deno.writeTextFile(
    new URL(`${res.name}.json`, resultsDir),
    JSON.stringify(
      {
        ...rest,
        rows: res.rows.map((row) => ({ ...row, ratio: ratio(row) ?? null })),
        mode: meta.mode,
        ran_at: new Date().toISOString(),
        duration_s: Math.round(meta.seconds * 10) / 10,
        ...meta.env,
        samples,
      },
      null,
      2,
    ) + "\n",
  );
}
