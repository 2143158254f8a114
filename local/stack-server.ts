// `npm start` / `npm run up`: one process serving the Edge Functions, the fake Graph API, the demo agent
// and the buffer worker, so the whole backend runs end to end with no external account. Ports default to
// the stack's (functions 54321 like `supabase start`, fake Graph API 54331, demo agent 54332).
import { runWorker } from "./buffer-worker.ts";
import { startDemoAgent } from "./demo-agent.ts";
import { loadLocalEnv } from "./env.ts";
import { startFakeGraph } from "./fake-graph.ts";
import { startFunctionsServer } from "./functions-server.ts";
import { log } from "../supabase/functions/_shared/log.ts";

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
let server: Deno.HttpServer<Deno.NetAddr>;
try {
  server = await startFunctionsServer({ port: port("FUNCTIONS_PORT", 54321) });
} catch (error) {
  console.error(`functions server refused to start: ${error instanceof Error ? error.message : error}`);
  Deno.exit(1);
}
const controller = new AbortController();
const worker = runWorker({ signal: controller.signal });

log("info", {
  msg: "functions server listening",
  url: `http://${server.addr.hostname}:${server.addr.port}/functions/v1/`,
  fake_graph_api: graph.url,
  demo_agent: agent.url,
  worker: "buffer worker running (LISTEN wa_buffer_due)",
});

async function stop() {
  controller.abort();
  await worker.catch(() => {});
  await server?.shutdown();
  await graph.close();
  await agent.close();
  Deno.exit(0);
}
for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, () => void stop());
