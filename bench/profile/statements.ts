// Where a workload's database time goes, statement by statement, from pg_stat_statements (preloaded on the
// bench cluster as on every Supabase project). Tracking is switched to `all` for the postgres role while the
// workload runs, so the statements inside functions and triggers are counted too, each with its own time;
// pools opened before `track` was switched keep the default (top-level only), so open them in `setup`.
import postgres from "postgres";
import { type BenchContext, superuserUrl } from "../lib.ts";

/** One normalised statement: its calls and its execution time in the workload. */
export interface StatementCost {
  query: string;
  calls: number;
  totalMs: number;
  /** Whether a client sent it (false: it ran inside a function or trigger). */
  topLevel: boolean;
}

/**
 * Runs `setup` (open pools, start servers, warm up: not counted), then `run` with every statement of the
 * postgres role tracked, and returns what each statement cost during `run`.
 */
export async function statementCosts<S, T>(
  ctx: BenchContext,
  setup: () => Promise<S>,
  run: (prepared: S) => Promise<T>,
): Promise<{ value: T; statements: StatementCost[] }> {
  const admin = postgres(superuserUrl(ctx), { max: 1, onnotice: () => {} });
  try {
    await admin`alter role postgres set pg_stat_statements.track = 'all'`;
    let value: T;
    try {
      const prepared = await setup();
      await admin`select extensions.pg_stat_statements_reset()`;
      value = await run(prepared);
    } finally {
      await admin`alter role postgres reset pg_stat_statements.track`;
    }
    const rows = await admin<{ query: string; calls: string; total_ms: number; toplevel: boolean }[]>`
      select regexp_replace(s.query, '[[:space:]]+', ' ', 'g') as query, s.calls, s.total_exec_time as total_ms,
             s.toplevel
      from extensions.pg_stat_statements s
      join pg_roles r on r.oid = s.userid
      where r.rolname = 'postgres' and s.dbid = (select oid from pg_database where datname = current_database())
      order by s.total_exec_time desc`;
    const statements = rows.map((row) => ({
      query: row.query,
      calls: Number(row.calls),
      totalMs: row.total_ms,
      topLevel: row.toplevel,
    }));
    return { value, statements };
  } finally {
    await admin.end();
  }
}

/**
 * The `limit` costliest statements per unit of work (a delivery, a batch, a claim): milliseconds and calls per
 * unit, and the share of the top-level statements' time, as Markdown.
 */
export function statementTable(statements: StatementCost[], units: number, limit = 15): string {
  const topTotal = statements.filter((s) => s.topLevel).reduce((sum, s) => sum + s.totalMs, 0);
  const lines = [
    "| statement (nested ones indented) | ms/unit | calls/unit | share |",
    "| --- | ---: | ---: | ---: |",
  ];
  for (const s of statements.slice(0, limit)) {
    const text = s.query.replaceAll("|", "\\|").slice(0, 90);
    lines.push(
      `| ${s.topLevel ? "" : "↳ "}\`${text}\` | ${(s.totalMs / units).toFixed(3)} | ${
        (s.calls / units).toFixed(2)
      } | ${(100 * s.totalMs / topTotal).toFixed(0)}% |`,
    );
  }
  lines.push(`| all top-level statements | ${(topTotal / units).toFixed(3)} | | 100% |`);
  return lines.join("\n");
}
