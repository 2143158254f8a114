// Health of a wabase deployment (SPEC 7). Routes:
//   /health          liveness: this function answers (no database query; a restart would not fix a database)
//   /health/ready    readiness: 200 or 503, for load balancers and uptime checks; with the reasons (database,
//                    migrations, pg_cron jobs, overdue buffers, circuit breakers) for HEALTH_TOKEN holders
//   /health/metrics  the figures of public.ops_metrics() as JSON, or Prometheus text for `Accept: text/plain`
//   /health/status   an HTML page for people that refreshes itself from /health/metrics
// Who may read what: access.ts.
import { z } from "zod";
import { postgresUrl } from "../_shared/env.ts";
import { createHandler, HttpError, json } from "../_shared/http.ts";
import { accessEnv, mayReadDetails, requireDetails } from "./access.ts";
import { probeMetrics, probeReadiness, singleFlight } from "./probe.ts";
import { prometheus, PROMETHEUS_CONTENT_TYPE, wantsPrometheus } from "./prometheus.ts";
import type { Readiness } from "./readiness.ts";
import { EXPECTED_MIGRATION } from "./schema.ts";
import { statusPage } from "./status-page.ts";

export const env = accessEnv.extend({
  SUPABASE_DB_URL: postgresUrl,
  // A due buffer waiting longer than this means no worker (or no pg_cron invocation) is draining buffers.
  HEALTH_MAX_OVERDUE_SECONDS: z.coerce.number().positive().default(120),
});

const ROUTES = ["/", "/ready", "/metrics", "/status"];
const startedAt = Date.now();
let ready: (() => Promise<Readiness>) | undefined;

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
    const log = (readiness: Readiness) => {
      logFields.ready = readiness.ready;
      if (!readiness.ready) logFields.reasons = readiness.reasons;
    };
    if (subpath === "/ready") {
      ready ??= singleFlight(() => probeReadiness(env.SUPABASE_DB_URL, env.HEALTH_MAX_OVERDUE_SECONDS));
      const readiness = await ready();
      log(readiness);
      const status = readiness.ready ? "ready" : "not_ready";
      // Terse for anyone: the reasons carry driver and cron error text.
      const body = (await mayReadDetails(req, env))
        ? { status, reasons: readiness.reasons, checks: readiness.checks }
        : { status };
      return json(body, readiness.ready ? 200 : 503);
    }
    await requireDetails(req, env);
    if (subpath === "/status") {
      return new Response(statusPage(), {
        headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
      });
    }
    const { readiness, metrics } = await probeMetrics(env.SUPABASE_DB_URL, env.HEALTH_MAX_OVERDUE_SECONDS);
    log(readiness);
    if (wantsPrometheus(req.headers.get("accept"))) {
      // Scrapers want the figures even when not ready: wabase_ready says the rest.
      return new Response(prometheus(readiness, metrics), {
        headers: { "content-type": PROMETHEUS_CONTENT_TYPE },
      });
    }
    return json({ ...readiness, metrics }, metrics === null ? 503 : 200);
  },
});
