// Health of a wabase deployment (SPEC 7). Routes:
//   /health          liveness: this function answers (no database query; a restart would not fix a database)
//   /health/ready    readiness: 200 or 503 with the reasons (database, migrations, pg_cron jobs, overdue
//                    buffers, circuit breakers), for load balancers and uptime checks
//   /health/metrics  the figures of public.ops_metrics() as JSON, or Prometheus text for `Accept: text/plain`
//   /health/status   an HTML page for people that refreshes itself from /health/metrics
import { timingSafeEqual } from "node:crypto";
import { timeout, TimeoutStrategy } from "cockatiel";
import { z } from "zod";
import { db } from "../_shared/db.ts";
import { postgresUrl } from "../_shared/env.ts";
import { createHandler, HttpError, json } from "../_shared/http.ts";
import { errorMessage } from "../_shared/log.ts";
import { prometheus, PROMETHEUS_CONTENT_TYPE, wantsPrometheus } from "./prometheus.ts";
import { type OpsMetrics, type Readiness, readinessFrom, unreachable } from "./readiness.ts";
import { EXPECTED_MIGRATION } from "./schema.ts";
import { statusPage } from "./status-page.ts";

export const env = z.object({
  SUPABASE_DB_URL: postgresUrl,
  // A due buffer waiting longer than this means no worker (or no pg_cron invocation) is draining buffers.
  HEALTH_MAX_OVERDUE_SECONDS: z.coerce.number().positive().default(120),
  // When set, /metrics and /status need it (Authorization: Bearer <token>, or ?token=<token> for the page):
  // the health function is reachable without a JWT so that uptime checks can probe readiness.
  HEALTH_TOKEN: z.string().min(16, "HEALTH_TOKEN must be at least 16 characters").optional(),
});

const ROUTES = ["/", "/ready", "/metrics", "/status"];
const startedAt = Date.now();
// A probe that hangs is as bad as one that fails: answer within this budget.
const probeTimeout = timeout(3_000, TimeoutStrategy.Aggressive);

async function probe(
  dbUrl: string,
  maxOverdueSeconds: number,
): Promise<{ readiness: Readiness; metrics: OpsMetrics | null }> {
  try {
    const metrics = await probeTimeout.execute(async () => {
      const [row] = await db(dbUrl)<{ metrics: OpsMetrics }[]>`select public.ops_metrics() as metrics`;
      if (row === undefined) throw new Error("ops_metrics() returned no row");
      return row.metrics;
    });
    return { readiness: readinessFrom(metrics, maxOverdueSeconds), metrics };
  } catch (error) {
    return { readiness: unreachable(errorMessage(error)), metrics: null };
  }
}

const sha256 = async (text: string) =>
  new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));

/** Refuses the request unless it carries HEALTH_TOKEN (compared in constant time), when one is set. */
async function authorize(req: Request, token: string | undefined): Promise<void> {
  if (token === undefined) return;
  const bearer = req.headers.get("authorization")?.match(/^Bearer\s+(.+)$/i)?.[1];
  const given = bearer ?? new URL(req.url).searchParams.get("token") ?? "";
  if (!timingSafeEqual(await sha256(given), await sha256(token))) {
    throw new HttpError(401, "unauthorized", "this route needs the HEALTH_TOKEN (Bearer or ?token=)");
  }
}

export const handler = createHandler({
  name: "health",
  env,
  async handle(req, { env, subpath, logFields }) {
    if (req.method !== "GET" && req.method !== "HEAD") {
      throw new HttpError(405, "method_not_allowed", "use GET", undefined, { allow: "GET, HEAD" });
    }
    if (!ROUTES.includes(subpath)) throw new HttpError(404, "not_found", `no health route ${subpath}`);
    if (subpath === "/") {
      return json({
        status: "alive",
        expected_migration: EXPECTED_MIGRATION,
        uptime_seconds: Math.round((Date.now() - startedAt) / 1000),
      });
    }
    if (subpath === "/status") {
      await authorize(req, env.HEALTH_TOKEN);
      return new Response(statusPage(), {
        headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
      });
    }
    if (subpath === "/metrics") await authorize(req, env.HEALTH_TOKEN);
    const { readiness, metrics } = await probe(env.SUPABASE_DB_URL, env.HEALTH_MAX_OVERDUE_SECONDS);
    logFields.ready = readiness.ready;
    if (!readiness.ready) logFields.reasons = readiness.reasons;
    if (subpath === "/ready") {
      const { ready, reasons, checks } = readiness;
      return json({ status: ready ? "ready" : "not_ready", reasons, checks }, ready ? 200 : 503);
    }
    if (wantsPrometheus(req.headers.get("accept"))) {
      // Scrapers want the figures even when not ready: wabase_ready says the rest.
      return new Response(prometheus(readiness, metrics), {
        headers: { "content-type": PROMETHEUS_CONTENT_TYPE },
      });
    }
    return json({ ...readiness, metrics }, metrics === null ? 503 : 200);
  },
});
