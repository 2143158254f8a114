// Readiness decided from crafted figures: each check fails alone, with a reason that says what to fix.
import assert from "node:assert/strict";
import { type OpsMetrics, readinessFrom } from "./readiness.ts";
import { EXPECTED_MIGRATION } from "./schema.ts";

const minutes = Array.from({ length: 60 }, () => 0);
const healthy: OpsMetrics = {
  generated_at: "2026-11-25T12:00:00Z",
  migration_version: EXPECTED_MIGRATION,
  pg_cron_version: "1.6",
  buffers: {
    buffers: 1,
    messages: 2,
    due_now: 1,
    in_flight: 0,
    expired_leases: 0,
    backing_off: 0,
    oldest_overdue_seconds: 3,
  },
  last_hour: {
    claims: 0,
    completions: 0,
    dead_letters: 0,
    duplicates_suppressed: 0,
    rate_limit_rejections: 0,
    claims_per_minute: 0,
    completions_per_minute: 0,
    sessions_expired: 0,
  },
  per_minute: { minutes: [], claims: minutes, completions: minutes, dead_letters: minutes },
  dead_letters: 0,
  outbound_unknown: 0,
  sessions_expired: 0,
  cron_jobs: {
    "wabase-orphan-sweep": {
      schedule: "* * * * *",
      active: true,
      last_run: { status: "succeeded", started_at: "2026-11-25T11:59:00Z", ended_at: null, message: "1 row" },
    },
    "wabase-retention": { schedule: "17 3 * * *", active: true, last_run: null },
  },
  missing_cron_jobs: [],
  job_results: {},
  calls: { in_progress: 0, unanswered_too_long: 0, answered_today: 0, missed_today: 0 },
  circuit_breakers: { agent: { state: "half_open", since: "2026-11-25T11:58:00Z" } },
};

const reasons = (changes: Partial<OpsMetrics>) => readinessFrom({ ...healthy, ...changes }, 120).reasons;

Deno.test("healthy figures are ready; a half-open breaker and a job that never ran are fine", () => {
  assert.deepEqual(readinessFrom(healthy, 120), {
    ready: true,
    reasons: [],
    checks: {
      database: { ok: true },
      migrations: { ok: true },
      pg_cron: { ok: true },
      cron_jobs: { ok: true },
      buffers: { ok: true },
      circuit_breakers: { ok: true },
    },
  });
});

Deno.test("each failing check gives its own reason", () => {
  assert.deepEqual(reasons({ migration_version: "20261125170000" }), [
    `the database schema is at migration 20261125170000, the functions expect ${EXPECTED_MIGRATION}: run supabase db push`,
  ]);
  assert.deepEqual(reasons({ migration_version: null, pg_cron_version: null }), [
    `the database schema is at migration none, the functions expect ${EXPECTED_MIGRATION}: run supabase db push`,
    "pg_cron is not installed",
  ]);
  assert.deepEqual(
    reasons({
      missing_cron_jobs: ["wabase-session-expiry"],
      cron_jobs: {
        "wabase-orphan-sweep": {
          schedule: "* * * * *",
          active: true,
          last_run: {
            status: "failed",
            started_at: "2026-11-25T11:59:00Z",
            ended_at: null,
            message: "ERROR: boom",
          },
        },
        "wabase-retention": { schedule: "17 3 * * *", active: false, last_run: null },
      },
    }),
    [
      "cron job wabase-session-expiry is missing (select wa.schedule_jobs()); cron job wabase-retention is " +
      "inactive; cron job wabase-orphan-sweep failed at 2026-11-25T11:59:00Z: ERROR: boom",
    ],
  );
  assert.deepEqual(reasons({ buffers: { ...healthy.buffers, oldest_overdue_seconds: 120.4 } }), [
    "a buffer has been due for 120 s (limit 120 s): nothing is draining buffers",
  ]);
  assert.deepEqual(
    reasons({ circuit_breakers: { graph: { state: "open", since: "2026-11-25T11:00:00Z" } } }),
    [
      "circuit breaker graph open since 2026-11-25T11:00:00Z",
    ],
  );
});

Deno.test("a database ahead of the functions passes the migration check (functions are deployed after db push)", () => {
  assert.deepEqual(reasons({ migration_version: "29991231000000" }), []);
});
