// HTTP entry of the media fetcher: pg_cron (through pg_net, wa.invoke_media_fetcher) POSTs here every few
// seconds on Supabase with the service role key, as it does to buffer-processor. Each call drains due media jobs
// within a time budget; locally the same fetcher runs as a long-running worker (local/media-worker.ts).
import { authEnv, createVerifier, requireServiceRole, type Verifier } from "../_shared/auth.ts";
import { db } from "../_shared/db.ts";
import { createHandler, HttpError, json } from "../_shared/http.ts";
import { fetcherEnv } from "./config.ts";
import { createFetcher, type MediaFetcher } from "./fetcher.ts";

// The fetcher needs SUPABASE_URL (Storage), which authEnv leaves optional: its schema wins.
export const env = authEnv.extend(fetcherEnv.shape);

let fetcher: MediaFetcher | undefined;
let verifier: Verifier | undefined;

export const handler = createHandler({
  name: "media-fetcher",
  env,
  async handle(req, { env, subpath, logFields }) {
    if (subpath !== "/") throw new HttpError(404, "not_found", `no media-fetcher route ${subpath}`);
    if (req.method !== "POST") {
      throw new HttpError(405, "method_not_allowed", "use POST", undefined, { allow: "POST" });
    }
    verifier ??= createVerifier(env);
    await requireServiceRole(req, verifier);
    fetcher ??= createFetcher(env, db(env.SUPABASE_DB_URL), `edge-${crypto.randomUUID().slice(0, 8)}`);
    const summary = await fetcher.drain();
    logFields.counts = { jobs: summary.jobs, removed: summary.removed, ...summary.outcomes };
    return json(summary);
  },
});
