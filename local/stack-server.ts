// `npm start` / `npm run up`: one process serving the Supabase API on :54321 (the gateway in front of the real
// PostgREST, the Auth, Storage and Realtime stand-ins and the Edge Functions), the fake Graph API, the demo agent,
// the fake transcription endpoint, the buffer processor's trigger (WABASE_TRIGGER), the media worker and the
// campaign sender, so the whole backend runs end to end with no external account. Ports default to the stack's (API 54321 like
// `supabase start`, fake Graph API 54331, demo agent 54332, fake transcription 54333).
import { runMediaWorker } from "./media-worker.ts";
import { runCampaignWorker } from "./campaign-worker.ts";
import { startDemoAgent } from "./demo-agent.ts";
import { loadLocalEnv } from "./env.ts";
import { startFakeGraph } from "./fake-graph.ts";
import { startFakeTranscribe } from "./fake-transcribe.ts";
import { createRouter, loadFunctions } from "./functions-server.ts";
import { type Api, apiKeys, startApi } from "./gateway-server.ts";
import { authEnv, createVerifier } from "../supabase/functions/_shared/auth.ts";
import { loadEnv } from "../supabase/functions/_shared/env.ts";
import { log } from "../supabase/functions/_shared/log.ts";
import { startTrigger, triggerMode } from "./trigger.ts";

const port = (name: string, fallback: number) => Number(Deno.env.get(name) ?? fallback);

await loadLocalEnv();
const graph = await startFakeGraph({
  port: port("FAKE_GRAPH_PORT", 54331),
  accessToken: Deno.env.get("WHATSAPP_ACCESS_TOKEN"),
  onSent: (message) =>
    log("info", {
      function: "fake-graph-api",
      msg: "message sent to WhatsApp (fake)",
      wamid: message.wamid,
      to: message.body.to ?? message.body.recipient,
      type: message.body.type,
      text: (message.body.text as { body?: string } | undefined)?.body,
    }),
});
const agent = await startDemoAgent({ port: port("DEMO_AGENT_PORT", 54332) });
const transcribe = startFakeTranscribe({ port: port("FAKE_TRANSCRIBE_PORT", 54333) });
const apiPort = port("FUNCTIONS_PORT", 54321);
let api: Api;
try {
  const functions = createRouter(await loadFunctions(), createVerifier(loadEnv(authEnv)));
  api = await startApi({
    dbUrl: Deno.env.get("SUPABASE_DB_URL") ?? "",
    jwtSecret: Deno.env.get("JWT_SECRET") ?? "",
    keys: apiKeys(Deno.env.toObject()),
    functions,
    publicUrl: `http://127.0.0.1:${apiPort}`,
    storageRoot: Deno.env.get("WABASE_STORAGE_ROOT") ??
      new URL("../.local/storage", import.meta.url).pathname,
    onPostgrestLog: (line) => log("info", { service: "postgrest", msg: line }),
  });
} catch (error) {
  console.error(`the API refused to start: ${error instanceof Error ? error.message : error}`);
  Deno.exit(1);
}
const server = Deno.serve({ hostname: "127.0.0.1", port: apiPort, onListen() {} }, api.handler);
const controller = new AbortController();
const mediaWorker = runMediaWorker({ signal: controller.signal });
const campaignWorker = runCampaignWorker({ signal: controller.signal });
const base = `http://${server.addr.hostname}:${server.addr.port}`;
// WABASE_TRIGGER: the LISTEN worker, or the hosted path (pg_cron, pg_net, the function with Vault's key).
const trigger = await startTrigger(triggerMode(), {
  dbUrl: Deno.env.get("SUPABASE_DB_URL") ?? "",
  projectUrl: base,
  serviceRoleKey: Deno.env.get("SUPABASE_SERVICE_ROLE_KEY") ?? "",
});

log("info", {
  msg: "Supabase API listening",
  url: `${base}/`,
  rest: `${base}/rest/v1/ (PostgREST ${api.postgrestVersion})`,
  functions: `${base}/functions/v1/`,
  fake_graph_api: graph.url,
  demo_agent: agent.url,
  fake_transcribe: transcribe.url,
  trigger: trigger.mode === "cron"
    ? "WABASE_TRIGGER=cron: pg_cron keeps a buffer-processor invocation running through pg_net"
    : "buffer worker running (LISTEN wa_buffer_due)",
  media_worker: "media worker running (LISTEN wa_media_due)",
  campaign_worker: "campaign sender running (wa.next_campaign_send_at)",
});

async function stop() {
  controller.abort();
  await trigger.stop();
  await mediaWorker.catch(() => {});
  await campaignWorker.catch(() => {});
  await server.shutdown();
  await api.close();
  await graph.close();
  await agent.close();
  await transcribe.close();
  Deno.exit(0);
}
for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, () => void stop());
