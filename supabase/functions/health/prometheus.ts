// The figures in Prometheus' text exposition format (version 0.0.4), for scrapers that send
// `Accept: text/plain` (Prometheus itself asks for it, after OpenMetrics, in every scrape).
import type { OpsMetrics, Readiness } from "./readiness.ts";

export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** True when the Accept header prefers the text format (or OpenMetrics, a superset we answer as text). */
export function wantsPrometheus(accept: string | null): boolean {
  return accept !== null && /\b(text\/plain|application\/openmetrics-text)\b/.test(accept) &&
    !/^\s*application\/json/.test(accept);
}

type Labels = Record<string, string>;
type Sample = [Labels, number];

// The exposition format escapes backslash, double quote and newline in label values.
const escapeLabel = (value: string) =>
  value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

function family(name: string, help: string, samples: Sample[]): string[] {
  return [
    `# HELP ${name} ${help}`,
    `# TYPE ${name} gauge`,
    ...samples.map(([labels, value]) => {
      const text = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",");
      return `${name}${text === "" ? "" : `{${text}}`} ${Number.isFinite(value) ? value : "NaN"}`;
    }),
  ];
}

const seconds = (iso: string) => Date.parse(iso) / 1000;

/** Renders readiness and, when the database answered, every figure of ops_metrics. */
export function prometheus(readiness: Readiness, metrics: OpsMetrics | null): string {
  const lines = [
    ...family("wabase_ready", "1 when every readiness check passes", [[{}, readiness.ready ? 1 : 0]]),
    ...family(
      "wabase_check_ok",
      "1 per passing readiness check",
      Object.entries(readiness.checks).map(([check, c]) => [{ check }, c.ok ? 1 : 0]),
    ),
  ];
  if (metrics !== null) {
    const { oldest_overdue_seconds, ...buffers } = metrics.buffers;
    const { claims_per_minute: _, completions_per_minute: __, ...lastHour } = metrics.last_hour;
    const jobs = Object.entries(metrics.cron_jobs);
    lines.push(
      ...family(
        "wabase_buffers",
        "conversation buffers (and the messages they hold) by state",
        Object.entries(buffers).map(([state, n]) => [{ state }, n]),
      ),
      ...family("wabase_buffer_oldest_overdue_seconds", "how long the oldest due buffer has waited", [
        [{}, oldest_overdue_seconds],
      ]),
      ...family(
        "wabase_last_hour",
        "events over the last hour (a sliding window)",
        Object.entries(lastHour).map(([event, n]) => [{ event }, n]),
      ),
      ...family("wabase_dead_letters", "batches in wa.dead_letters", [[{}, metrics.dead_letters]]),
      ...family("wabase_outbound_unknown", "outbound messages whose send outcome is unknown", [
        [{}, metrics.outbound_unknown],
      ]),
      ...family(
        "wabase_calls",
        "WhatsApp calls: in progress, ringing past their alert, answered and missed today",
        Object.entries(metrics.calls).map(([figure, n]) => [{ figure }, n]),
      ),
      ...family("wabase_sessions_expired", "chat sessions in the expired state", [[
        {},
        metrics.sessions_expired,
      ]]),
      ...family(
        "wabase_cron_job_last_run_ok",
        "1 when the job's last pg_cron run succeeded (or is running)",
        jobs.filter(([, job]) => job.last_run !== null)
          .map(([job, j]) => [{ job }, j.last_run?.status === "failed" ? 0 : 1]),
      ),
      ...family(
        "wabase_cron_job_last_run_timestamp_seconds",
        "when the job's last pg_cron run started",
        jobs.flatMap(([job, j]) =>
          j.last_run === null ? [] : [[{ job }, seconds(j.last_run.started_at)] as Sample]
        ),
      ),
      ...family(
        "wabase_circuit_breaker_open",
        "1 while an outbound circuit breaker is open",
        Object.entries(metrics.circuit_breakers).map((
          [breaker, b],
        ) => [{ breaker }, b.state === "open" ? 1 : 0]),
      ),
    );
  }
  return lines.join("\n") + "\n";
}
