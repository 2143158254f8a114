// Outbound jobs over HTTP. POST /templates/sync: the template catalogue from the Graph API, every account or
// `{ "waba_id": ... }` (pg_cron hourly with the service role key; on demand by an admin or coordinator).
// POST /campaigns: sends due campaign messages within a time budget (pg_cron every few seconds); locally
// local/campaign-worker.ts runs the same sender as a long-running worker.
import { z } from "zod";
import { authenticate, authEnv, createVerifier, requireServiceRole, type Verifier } from "../_shared/auth.ts";
import { db, type Sql } from "../_shared/db.ts";
import { createHandler, HttpError, json, readJson } from "../_shared/http.ts";
import { campaignSenderFrom } from "./campaigns.ts";
import { outboundEnv } from "./config.ts";
import { knownAccounts, syncTemplates } from "./templates.ts";

export const env = outboundEnv.extend(authEnv.shape);
type Env = z.infer<typeof env>;

const syncRequest = z.strictObject({ waba_id: z.string().regex(/^\d+$/).optional() });

let verifier: Verifier | undefined;

/** The service role, or a signed-in admin or coordinator. */
async function requireManager(req: Request, env: Env, sql: Sql): Promise<void> {
  verifier ??= createVerifier(env);
  const claims = await authenticate(req, verifier);
  if (claims.role === "service_role") return;
  const [row] = await sql<{ role: string | null }[]>`select authz.role_of(${
    claims.sub ?? null
  }::uuid) as role`;
  if (row?.role !== "admin" && row?.role !== "coordinator") {
    throw new HttpError(403, "forbidden", "only admins, coordinators and the service role sync templates");
  }
}

async function sync(req: Request, env: Env, sql: Sql) {
  await requireManager(req, env, sql);
  const request = req.headers.get("content-length") === "0" || req.body === null
    ? {}
    : await readJson(req, syncRequest);
  const accounts = request.waba_id === undefined ? await knownAccounts(sql) : [request.waba_id];
  const results = [];
  for (const waba of accounts) {
    results.push(await syncTemplates(sql, env.WHATSAPP_API_BASE, env.WHATSAPP_ACCESS_TOKEN, waba));
  }
  return json({ accounts: results });
}

export const handler = createHandler({
  name: "outbound",
  env,
  async handle(req, { env, subpath }) {
    if (req.method !== "POST") {
      throw new HttpError(405, "method_not_allowed", "use POST", undefined, { allow: "POST" });
    }
    const sql = db(env.SUPABASE_DB_URL);
    if (subpath === "/templates/sync") return await sync(req, env, sql);
    if (subpath === "/campaigns") {
      verifier ??= createVerifier(env);
      await requireServiceRole(req, verifier);
      const sender = campaignSenderFrom(env, sql, `edge-${crypto.randomUUID().slice(0, 8)}`);
      return json(await sender.drain({ budgetMs: env.CAMPAIGN_TIME_BUDGET_MS }));
    }
    throw new HttpError(404, "not_found", `no route ${subpath}`);
  },
});
