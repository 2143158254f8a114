// What public.ops_readiness() and public.ops_metrics() return, and readiness decided from them: named checks,
// each with the reason it fails, so a 503 says what to fix rather than only that something is wrong.
import { EXPECTED_MIGRATION } from "./schema.ts";

export interface CronJob {
  schedule: string;
  active: boolean;
  last_run: { status: string; started_at: string; ended_at: string | null; message: string | null } | null;
}

/** What public.ops_readiness() returns: the figures readiness is decided from, and nothing else. */
export interface ReadinessFigures {
  migration_version: string | null;
  pg_cron_version: string | null;
  buffers: { oldest_overdue_seconds: number };
  cron_jobs: Record<string, CronJob>;
  missing_cron_jobs: string[];
  circuit_breakers: Record<string, { state: string; since: string }>;
}

/** What public.ops_metrics() (with public.call_metrics()) returns: the readiness figures and everything a team watches. */
export interface OpsMetrics extends ReadinessFigures {
  generated_at: string;
  buffers: {
    buffers: number;
    messages: number;
    due_now: number;
    in_flight: number;
    expired_leases: number;
    backing_off: number;
    oldest_overdue_seconds: number;
  };
  last_hour: {
    claims: number;
    completions: number;
    dead_letters: number;
    duplicates_suppressed: number;
    rate_limit_rejections: number;
    claims_per_minute: number;
    completions_per_minute: number;
    sessions_expired: number;
  };
  per_minute: { minutes: string[]; claims: number[]; completions: number[]; dead_letters: number[] };
  dead_letters: number;
  outbound_unknown: number;
  sessions_expired: number;
  job_results: Record<string, { ran_at: string; result: unknown }>;
  /** public.call_metrics(): calls in progress, ringing past their alert, answered and missed today. */
  calls: { in_progress: number; unanswered_too_long: number; answered_today: number; missed_today: number };
}

export interface Check {
  ok: boolean;
  /** Why the check fails; absent when it passes. */
  reason?: string;
}

export interface Readiness {
  ready: boolean;
  /** The reasons of the failing checks, in check order. */
  reasons: string[];
  checks: Record<string, Check>;
}

const check = (ok: boolean, reason: string): Check => (ok ? { ok } : { ok, reason });

/** The checks a load balancer or an on-call person needs: can this deployment answer customers now? */
export function readinessFrom(metrics: ReadinessFigures, maxOverdueSeconds: number): Readiness {
  const jobs = Object.entries(metrics.cron_jobs);
  const failingJobs = jobs.filter(([, job]) => job.last_run?.status === "failed");
  const inactiveJobs = jobs.filter(([, job]) => !job.active).map(([name]) => name);
  const openBreakers = Object.entries(metrics.circuit_breakers).filter(([, b]) => b.state === "open");
  const applied = metrics.migration_version;
  const checks: Record<string, Check> = {
    database: { ok: true },
    migrations: check(
      applied !== null && applied >= EXPECTED_MIGRATION,
      `the database schema is at migration ${
        applied ?? "none"
      }, the functions expect ${EXPECTED_MIGRATION}: ` +
        "run supabase db push",
    ),
    pg_cron: check(metrics.pg_cron_version !== null, "pg_cron is not installed"),
    cron_jobs: check(
      metrics.missing_cron_jobs.length === 0 && inactiveJobs.length === 0 && failingJobs.length === 0,
      [
        ...metrics.missing_cron_jobs.map((name) => `cron job ${name} is missing (select wa.schedule_jobs())`),
        ...inactiveJobs.map((name) => `cron job ${name} is inactive`),
        ...failingJobs.map(([name, job]) =>
          `cron job ${name} failed at ${job.last_run?.started_at}: ${job.last_run?.message ?? "no message"}`
        ),
      ].join("; "),
    ),
    buffers: check(
      metrics.buffers.oldest_overdue_seconds <= maxOverdueSeconds,
      `a buffer has been due for ${Math.round(metrics.buffers.oldest_overdue_seconds)} s (limit ` +
        `${maxOverdueSeconds} s): nothing is draining buffers`,
    ),
    circuit_breakers: check(
      openBreakers.length === 0,
      openBreakers.map(([name, b]) => `circuit breaker ${name} open since ${b.since}`).join("; "),
    ),
  };
  const reasons = Object.values(checks).flatMap((c) => (c.reason === undefined ? [] : [c.reason]));
  return { ready: reasons.length === 0, reasons, checks };
}

/** Readiness when the figures could not be read at all. */
export function unreachable(reason: string): Readiness {
  return {
    ready: false,
    reasons: [`database unreachable: ${reason}`],
    checks: { database: { ok: false, reason: `database unreachable: ${reason}` } },
  };
}
