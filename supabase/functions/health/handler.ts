// Liveness and readiness: the database, pg_cron and wabase's jobs, the applied migration, whether buffers
// are being drained, and the outbound circuit breakers. 200 when all hold, 503 otherwise, always with the
// facts. Routes: /health (full JSON report), /health/ready (status only, for load balancers),
// /health/metrics (Prometheus), /health/status (an HTML page for people).
import { timeout, TimeoutStrategy } from "cockatiel";
import { z } from "zod";
import { db } from "../_shared/db.ts";
import { postgresUrl } from "../_shared/env.ts";
import { createHandler, HttpError, json } from "../_shared/http.ts";
import { errorMessage } from "../_shared/log.ts";
import { type HealthFacts, type HealthReport, prometheus, reportFrom, statusPage } from "./report.ts";

export const env = z.object({
  SUPABASE_DB_URL: postgresUrl,
  // A due buffer older than this means no worker (or no pg_cron invocation) is draining buffers.
  HEALTH_MAX_OVERDUE_SECONDS: z.coerce.number().int().positive().default(120),
});

// A probe that hangs is as bad as one that fails: answer 503 within this budget.
const probeTimeout = timeout(3_000, TimeoutStrategy.Aggressive);

async function healthReport(dbUrl: string, maxOverdueSeconds: number): Promise<HealthReport> {
  try {
    const facts = await probeTimeout.execute(async () => {
      const [row] = await db(dbUrl)<{ health: HealthFacts }[]>`select wa.health() as health`;
      if (row === undefined) throw new Error("wa.health() returned no row");
      return row.health;
    });
    return reportFrom(facts, maxOverdueSeconds);
  } catch (error) {
    return { status: "unavailable", checks: { database: { ok: false, error: errorMessage(error) } } };
  }
}

export const handler = createHandler({
  name: "health",
  env,
  async handle(req, { env, subpath }) {
    if (req.method !== "GET" && req.method !== "HEAD") {
      throw new HttpError(405, "method_not_allowed", "use GET", undefined, { allow: "GET, HEAD" });
    }
    if (!["/", "/ready", "/metrics", "/status"].includes(subpath)) {
      throw new HttpError(404, "not_found", `no health route ${subpath}`);
    }
    const report = await healthReport(env.SUPABASE_DB_URL, env.HEALTH_MAX_OVERDUE_SECONDS);
    const status = report.status === "ok" ? 200 : 503;
    switch (subpath) {
      case "/ready":
        return json({ status: report.status }, status);
      case "/metrics":
        // Scrapers want the numbers even when unhealthy: wabase_up says the rest.
        return new Response(prometheus(report), { headers: { "content-type": "text/plain; version=0.0.4" } });
      case "/status":
        return new Response(statusPage(report), {
          status,
          headers: { "content-type": "text/html; charset=utf-8" },
        });
      default:
        return json({ status: report.status, checks: report.checks }, status);
    }
  },
});
