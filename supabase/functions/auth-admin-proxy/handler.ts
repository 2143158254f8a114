// Privileged profile and backup writes for the frontend. The caller is the verified JWT's subject; what they
// may do is decided by the SQL functions from server-owned profiles (never from user-editable metadata); each
// action is one transaction, audited, and rate limited per user (auth category).
import { authEnv, createVerifier, requireUser, type Verifier } from "../_shared/auth.ts";
import { db } from "../_shared/db.ts";
import { postgresUrl } from "../_shared/env.ts";
import { createHandler, HttpError, json, readJson } from "../_shared/http.ts";
import { takeToken } from "../_shared/ratelimit.ts";
import { adminAction, runAction } from "./actions.ts";

export const env = authEnv.extend({ SUPABASE_DB_URL: postgresUrl });

let verifier: Verifier | undefined;

export const handler = createHandler({
  name: "auth-admin-proxy",
  env,
  async handle(req, { env, subpath, logFields }) {
    if (subpath !== "/") throw new HttpError(404, "not_found", `no route ${subpath}`);
    if (req.method !== "POST") {
      throw new HttpError(405, "method_not_allowed", "use POST", undefined, { allow: "POST" });
    }
    verifier ??= createVerifier(env);
    const caller = await requireUser(req, verifier);
    const sql = db(env.SUPABASE_DB_URL);
    await takeToken(sql, `user:${caller.sub}`, "auth");
    const action = await readJson(req, adminAction);
    Object.assign(logFields, { actor: caller.sub, action: action.action });
    return json({ profile: await runAction(sql, caller.sub, action) });
  },
});
