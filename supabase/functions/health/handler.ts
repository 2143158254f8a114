// Liveness and readiness: the database, pg_cron and wabase's jobs, the applied migration, whether buffers
// are being drained, and the outbound circuit breakers. 200 when all hold, 503 otherwise, always with the
// facts as JSON so a dashboard or an on-call person sees what is wrong.
import { timeout, TimeoutStrategy } from "cockatiel";
import { z } from "zod";
import { db } from "../_shared/db.ts";
import { postgresUrl } from "../_shared/env.ts";
import { createHandler, HttpError, json } from "../_shared/http.ts";
import { errorMessage } from "../_shared/log.ts";

export const env = z.object({
  SUPABASE_DB_URL: postgresUrl,
  // A due buffer older than this means no worker (or no pg_cron invocation) is draining buffers.
  HEALTH_MAX_OVERDUE_SECONDS: z.coerce.number().int().positive().default(120),
});

interface HealthFacts {
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
    oldest_overdue_seconds: number;
  };
  dead_letters: number;
  unknown_sends: number;
  circuit_breakers: Record<string, { state: string; since: string }>;
}

// A probe that hangs is as bad as one that fails: answer 503 within this budget.
const probeTimeout = timeout(3_000, TimeoutStrategy.Aggressive);

export const handler = createHandler({
  name: "health",
  env,
  async handle(req, { env, subpath }) {
    if (subpath !== "/") throw new HttpError(404, "not_found", `no health route ${subpath}`);
    if (req.method !== "GET" && req.method !== "HEAD") {
      throw new HttpError(405, "method_not_allowed", "use GET", undefined, { allow: "GET, HEAD" });
    }
    let facts: HealthFacts;
    try {
      facts = await probeTimeout.execute(async () => {
        const [row] = await db(env.SUPABASE_DB_URL)<{ health: HealthFacts }[]>`select wa.health() as health`;
        if (row === undefined) throw new Error("wa.health() returned no row");
        return row.health;
      });
    } catch (error) {
      return json(
        { status: "unavailable", checks: { database: { ok: false, error: errorMessage(error) } } },
        503,
      );
    }
    const openBreakers = Object.entries(facts.circuit_breakers).filter(([, b]) => b.state === "open");
    const checks = {
      database: { ok: true, server_time: facts.server_time },
      pg_cron: { ok: facts.pg_cron !== null, version: facts.pg_cron?.version ?? null },
      migrations: { ok: facts.migration_version !== null, version: facts.migration_version },
      cron_jobs: {
        ok: facts.missing_jobs.length === 0,
        jobs: facts.cron_jobs,
        missing: facts.missing_jobs,
        last_runs: facts.job_runs,
      },
      buffers: {
        ok: facts.buffers.oldest_overdue_seconds <= env.HEALTH_MAX_OVERDUE_SECONDS,
        ...facts.buffers,
      },
      circuit_breakers: { ok: openBreakers.length === 0, breakers: facts.circuit_breakers },
      dead_letters: { ok: true, count: facts.dead_letters },
      unknown_sends: { ok: true, count: facts.unknown_sends },
    };
    const healthy = Object.values(checks).every((check) => check.ok);
    return json({ status: healthy ? "ok" : "degraded", checks }, healthy ? 200 : 503);
  },
});
