// HTTP entry of the processor: on Supabase pg_cron, through pg_net, keeps one keepalive invocation running
// (keepalive.ts), with the service role key; any other POST drains due buffers once. Both stay within a time
// budget well inside the Edge Functions limits; locally the same processor can also run as a long-running
// worker (local/buffer-worker.ts).
import { authEnv, createVerifier, requireServiceRole, type Verifier } from "../_shared/auth.ts";
import { db } from "../_shared/db.ts";
import { createHandler, HttpError, json } from "../_shared/http.ts";
import { processorEnv } from "./config.ts";
import { createProcessor, type Processor } from "./processor.ts";
import { keepAlive } from "./keepalive.ts";

export const env = processorEnv.safeExtend(authEnv.shape);

let processor: Promise<Processor> | undefined;
let verifier: Verifier | undefined;

export const handler = createHandler({
  name: "buffer-processor",
  env,
  async handle(req, { env, subpath, logFields }) {
    if (subpath !== "/") throw new HttpError(404, "not_found", `no processor route ${subpath}`);
    if (req.method !== "POST") {
      throw new HttpError(405, "method_not_allowed", "use POST", undefined, { allow: "POST" });
    }
    verifier ??= createVerifier(env);
    await requireServiceRole(req, verifier);
    // One processor per isolate: its circuit breakers carry over between invocations.
    processor ??= createProcessor(env, db(env.SUPABASE_DB_URL), `edge-${crypto.randomUUID().slice(0, 8)}`)
      .catch((error) => {
        processor = undefined;
        throw error;
      });
    // {"keepalive": true}: the hosted trigger's invocation (keepalive.ts); anything else drains once.
    const body = await req.json().catch(() => ({}));
    const sql = db(env.SUPABASE_DB_URL);
    const summary = body?.keepalive === true
      ? await keepAlive(await processor, sql, env, `edge-${crypto.randomUUID().slice(0, 13)}`, req.signal)
      : await (await processor).drain();
    logFields.counts = {
      batches: summary.batches,
      ...summary.outcomes,
      session_retries: summary.session_retries,
    };
    return json(summary);
  },
});
