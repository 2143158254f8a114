// Prints a curl command that POSTs a correctly signed demo text message to the local webhook, signed with
// WHATSAPP_APP_SECRET (real env, else supabase/.env.local). Each run uses a fresh wamid; re-running the
// same printed line shows duplicate handling.
import { localEnvDefaults } from "./env.ts";
import { signBody, textWebhook } from "./testing/whatsapp-fixtures.ts";

const defaults = await localEnvDefaults();
const secret = Deno.env.get("WHATSAPP_APP_SECRET") ?? defaults.WHATSAPP_APP_SECRET ?? "";
const base = Deno.env.get("FUNCTIONS_URL") ?? "http://127.0.0.1:54321/functions/v1";
const body = JSON.stringify(textWebhook({ body: "Hola, quiero información" }));
const signature = await signBody(body, secret);
console.log(
  `curl -sS ${base}/whatsapp-webhook -H 'content-type: application/json' ` +
    `-H 'x-hub-signature-256: ${signature}' --data '${body}'`,
);
