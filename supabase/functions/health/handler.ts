// Liveness and readiness: is the database reachable, is pg_cron there, which migration is applied.
// 200 when all hold, 503 otherwise, always with the facts as JSON.
import { timeout, TimeoutStrategy } from "cockatiel";
import { z } from "zod";
import { db } from "../_shared/db.ts";
import { postgresUrl } from "../_shared/env.ts";
import { createHandler, HttpError, json } from "../_shared/http.ts";
import { errorMessage } from "../_shared/log.ts";

export const env = z.object({ SUPABASE_DB_URL: postgresUrl });

interface HealthFacts {
  server_time: string;
  pg_cron: { installed: boolean; version: string } | null;
  migration_version: string | null;
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
    const checks = {
      database: { ok: true, server_time: facts.server_time },
      pg_cron: { ok: facts.pg_cron !== null, version: facts.pg_cron?.version ?? null },
      migrations: { ok: facts.migration_version !== null, version: facts.migration_version },
    };
    const healthy = Object.values(checks).every((check) => check.ok);
    return json({ status: healthy ? "ok" : "degraded", checks }, healthy ? 200 : 503);
  },
});
