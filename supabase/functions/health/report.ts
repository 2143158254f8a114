// The health report: facts from wa.health() turned into named checks, plus the two other renderings the
// routes serve (Prometheus metrics for scrapers, an HTML page for people).
export interface HealthFacts {
  server_time: string;
  pg_cron: { installed: boolean; version: string } | null;
  migration_version: string | null;
  cron_jobs: string[];
  missing_jobs: string[];
  job_runs: Record<string, { ran_at: string; result: unknown }>;
  buffers: {
    buffers: number;
    messages: number;
    due: number;
    claimed: number;
    expired_leases: number;
    oldest_overdue_seconds: number;
  };
  dead_letters: number;
  unknown_sends: number;
  circuit_breakers: Record<string, { state: string; since: string }>;
}

export type Check = { ok: boolean } & Record<string, unknown>;

export interface HealthReport {
  status: "ok" | "degraded" | "unavailable";
  checks: Record<string, Check>;
  facts?: HealthFacts;
}

/** Named checks from the facts; the report is ok only when every check is. */
export function reportFrom(facts: HealthFacts, maxOverdueSeconds: number): HealthReport {
  const openBreakers = Object.entries(facts.circuit_breakers).filter(([, b]) => b.state === "open");
  const checks: Record<string, Check> = {
    database: { ok: true, server_time: facts.server_time },
    pg_cron: { ok: facts.pg_cron !== null, version: facts.pg_cron?.version ?? null },
    migrations: { ok: facts.migration_version !== null, version: facts.migration_version },
    cron_jobs: {
      ok: facts.missing_jobs.length === 0,
      jobs: facts.cron_jobs,
      missing: facts.missing_jobs,
      last_runs: facts.job_runs,
    },
    buffers: { ok: facts.buffers.oldest_overdue_seconds <= maxOverdueSeconds, ...facts.buffers },
    circuit_breakers: { ok: openBreakers.length === 0, breakers: facts.circuit_breakers },
    dead_letters: { ok: true, count: facts.dead_letters },
    unknown_sends: { ok: true, count: facts.unknown_sends },
  };
  const healthy = Object.values(checks).every((check) => check.ok);
  return { status: healthy ? "ok" : "degraded", checks, facts };
}

/** The report in Prometheus' text exposition format. */
export function prometheus(report: HealthReport): string {
  const lines: string[] = [];
  const metric = (name: string, help: string, samples: [Record<string, string>, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    for (const [labels, value] of samples) {
      const text = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, "_")}"`).join(",");
      lines.push(`${name}${text ? `{${text}}` : ""} ${value}`);
    }
  };
  metric("wabase_up", "1 when every health check passes", [[{}, report.status === "ok" ? 1 : 0]]);
  metric(
    "wabase_check_ok",
    "1 per passing health check",
    Object.entries(report.checks).map(([check, c]) => [
      { check },
      c.ok ? 1 : 0,
    ]),
  );
  const facts = report.facts;
  if (facts !== undefined) {
    const { oldest_overdue_seconds, ...counts } = facts.buffers;
    metric(
      "wabase_buffers",
      "conversation buffers by state",
      Object.entries(counts).map(([state, n]) => [{ state }, n]),
    );
    metric("wabase_buffer_oldest_overdue_seconds", "age of the oldest due buffer", [[
      {},
      oldest_overdue_seconds,
    ]]);
    metric("wabase_dead_letters", "batches moved to wa.dead_letters", [[{}, facts.dead_letters]]);
    metric("wabase_unknown_sends", "outbound messages whose send outcome is unknown", [[
      {},
      facts.unknown_sends,
    ]]);
    metric(
      "wabase_circuit_breaker_open",
      "1 while a circuit breaker is open",
      Object.entries(facts.circuit_breakers).map(([breaker, b]) => [{ breaker }, b.state === "open" ? 1 : 0]),
    );
    metric(
      "wabase_job_last_run_timestamp_seconds",
      "when each scheduled job last ran",
      Object.entries(facts.job_runs).map((
        [job, run],
      ) => [{ job }, Math.floor(Date.parse(run.ran_at) / 1000)]),
    );
  }
  return lines.join("\n") + "\n";
}

const escape = (text: string) =>
  text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );

/** A small HTML page for people: overall status and one row per check. */
export function statusPage(report: HealthReport): string {
  const rows = Object.entries(report.checks).map(([name, check]) => {
    const { ok, ...details } = check;
    return `<tr><td>${escape(name)}</td><td class="${ok ? "ok" : "bad"}">${ok ? "ok" : "failing"}</td>` +
      `<td><code>${escape(JSON.stringify(details))}</code></td></tr>`;
  }).join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wabase status: ${report.status}</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem}td{padding:.3rem .8rem;vertical-align:top}
.ok{color:#15803d}.bad{color:#b91c1c;font-weight:bold}code{font-size:.8rem}</style></head>
<body><h1>wabase is <span class="${report.status === "ok" ? "ok" : "bad"}">${report.status}</span></h1>
<table><tr><th>check</th><th>state</th><th>details</th></tr>
${rows}
</table></body></html>
`;
}
