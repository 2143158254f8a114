// Operator replies from the live-chat UI. Idempotent by the client's id (a retry returns the first result,
// never a second message), authorized by the same rules as the conversation's RLS, refused outside WhatsApp's
// 24-hour window unless a template (422, before any API call), rate limited (chat), written as outbound before
// the Graph API call; its status then follows the delivery webhooks. POST /read marks a conversation read
// (rate limited like a send).
import { z } from "zod";
import { authEnv, createVerifier, requireUser, type Verifier } from "../_shared/auth.ts";
import { db, type Sql } from "../_shared/db.ts";
import { httpUrl, postgresUrl, secret } from "../_shared/env.ts";
import {
  createGraphClient,
  graphBreaks,
  type GraphClient,
  graphRetryable,
  recipientOf,
} from "../_shared/graph.ts";
import { governed, INTERACTIVE } from "../_shared/governor.ts";
import { createHandler, HttpError, json, readJson } from "../_shared/http.ts";
import { errorMessage, log } from "../_shared/log.ts";
import { takeToken } from "../_shared/ratelimit.ts";
import { resilient } from "../_shared/resilience.ts";
import { messageBody, readRequest, sendRequest } from "./request.ts";
import { uploadOutboundMedia } from "./outbound-media.ts";
import type { MediaType } from "../_shared/media.ts";
import { checkTemplate, withWindowTemplates } from "./templates.ts";

export const env = authEnv.extend({
  SUPABASE_DB_URL: postgresUrl,
  WHATSAPP_API_BASE: httpUrl.default("https://graph.facebook.com/v25.0"),
  WHATSAPP_ACCESS_TOKEN: secret(8),
  GRAPH_TIMEOUT_MS: z.coerce.number().int().positive().default(10_000),
  // Sent beside the user's JWT to Storage (media.path), as the API gateway asks.
  SUPABASE_ANON_KEY: z.string().optional(),
});
type Env = z.infer<typeof env>;

interface StoredMessage {
  message_id: string;
  status: string;
  wamid: string | null;
  body: Record<string, unknown> & { type: string };
  error: unknown;
  created: boolean;
}

let verifier: Verifier | undefined;
let graph: GraphClient | undefined;

function graphClient(env: Env): GraphClient {
  graph ??= createGraphClient(
    env.WHATSAPP_API_BASE,
    env.WHATSAPP_ACCESS_TOKEN,
    resilient({
      timeoutMs: env.GRAPH_TIMEOUT_MS,
      maxAttempts: 3,
      baseDelayMs: 300,
      retryable: graphRetryable(3_000),
      breaks: graphBreaks,
      breakerThreshold: 5,
      halfOpenAfterMs: 30_000,
    }),
  );
  return graph;
}

async function recipient(sql: Sql, conversationId: string) {
  const [row] = await sql<
    { recipient: { phone_number_id: string; wa_id?: string; user_id?: string } | null }[]
  >`
    select wa.conversation_recipient(${conversationId}) as recipient`;
  if (!row?.recipient) {
    throw new HttpError(404, "conversation_not_found", `no conversation ${conversationId}`);
  }
  return row.recipient;
}

async function send(req: Request, env: Env, actor: string, sql: Sql, logFields: Record<string, unknown>) {
  await takeToken(sql, `user:${actor}`, "chat");
  const request = await readJson(req, sendRequest);
  const to = await recipient(sql, request.conversation_id);
  if ("media" in request && request.media.path !== undefined) {
    request.media = { ...request.media, path: undefined, id: await outboundMediaId(req, env, to, request) };
  }
  const payload = {
    messaging_product: "whatsapp",
    recipient_type: "individual",
    ...recipientOf(to),
    ...messageBody(request),
  };
  if (request.type === "template") {
    await checkTemplate(sql, actor, request.conversation_id, messageBody(request).template);
  }
  const [stored] = await withWindowTemplates(
    sql,
    request.conversation_id,
    () =>
      sql<StoredMessage[]>`
    select * from wa.begin_operator_send(${actor}, ${request.conversation_id}, ${request.client_id}, ${request.type},
                                         ${JSON.stringify(payload)}::text::jsonb)`,
  );
  if (stored === undefined) throw new Error("wa.begin_operator_send returned no row");
  Object.assign(logFields, { conversation_id: request.conversation_id, client_id: request.client_id });
  const view = (status: string, wamid: string | null, error: unknown) => ({
    message: {
      id: stored.message_id,
      client_id: request.client_id,
      type: request.type,
      status,
      wamid,
      error,
    },
  });
  if (!stored.created) {
    logFields.duplicate = true;
    return json(view(stored.status, stored.wamid, stored.error));
  }
  const result = await governed(graphClient(env), sql, INTERACTIVE).send(to.phone_number_id, stored.body);
  switch (result.kind) {
    case "sent": {
      const [row] = await sql<{ status: string }[]>`
        select wa.record_send_result(${stored.message_id}, 'sent', ${result.wamid}) as status`;
      return json(view(row?.status ?? "sent", result.wamid, null), 201);
    }
    case "unknown":
      await sql`select wa.record_send_result(${stored.message_id}, 'unknown', null,
                                             ${JSON.stringify({ error: result.error })}::text::jsonb)`;
      return json(view("unknown", null, { error: result.error }), 202);
    case "failed":
      await sql`select wa.record_send_result(${stored.message_id}, 'failed', null,
                                             ${JSON.stringify(result.error)}::text::jsonb)`;
      throw new HttpError(502, "send_failed", `WhatsApp refused the message: ${result.error.message}`, {
        ...view("failed", null, result.error),
        retryable: result.retryable,
      });
  }
}

/** A Storage path's file uploaded to WhatsApp (outbound-media.ts). */
function outboundMediaId(
  req: Request,
  env: Env,
  to: { phone_number_id: string },
  request: { conversation_id: string; type: MediaType; media: { path?: string } },
): Promise<string> {
  if (env.SUPABASE_URL === undefined) {
    throw new HttpError(500, "storage_not_configured", "SUPABASE_URL is needed to send a file from Storage");
  }
  return uploadOutboundMedia({
    supabaseUrl: env.SUPABASE_URL,
    apiKey: env.SUPABASE_ANON_KEY,
    userJwt: (req.headers.get("authorization") ?? "").replace(/^Bearer\s+/i, ""),
    apiBase: env.WHATSAPP_API_BASE,
    accessToken: env.WHATSAPP_ACCESS_TOKEN,
    timeoutMs: env.GRAPH_TIMEOUT_MS,
  }, {
    conversationId: request.conversation_id,
    phoneNumberId: to.phone_number_id,
    type: request.type,
    path: request.media.path!,
  });
}

async function markRead(req: Request, env: Env, actor: string, sql: Sql) {
  // Each mark may cost a read receipt to the Graph API: limited like a send.
  await takeToken(sql, `user:${actor}`, "chat");
  const request = await readJson(req, readRequest);
  const [row] = await sql<{ marked: number; receipt_wamid: string | null; phone_number_id: string }[]>`
    select * from wa.mark_conversation_read(${actor}, ${request.conversation_id})`;
  let receiptSent = false;
  if (row?.receipt_wamid) {
    // Settled: blue ticks are a courtesy; the read state is already stored.
    receiptSent = await governed(graphClient(env), sql, INTERACTIVE).markRead(
      row.phone_number_id,
      row.receipt_wamid,
    ).catch((error) => {
      log("warn", { function: "send-message", job: "read-receipt", error: errorMessage(error) });
      return false;
    });
  }
  return json({ marked: row?.marked ?? 0, read_receipt_sent: receiptSent });
}

export const handler = createHandler({
  name: "send-message",
  env,
  async handle(req, { env, subpath, logFields }) {
    if (req.method !== "POST") {
      throw new HttpError(405, "method_not_allowed", "use POST", undefined, { allow: "POST" });
    }
    verifier ??= createVerifier(env);
    const caller = await requireUser(req, verifier);
    const sql = db(env.SUPABASE_DB_URL);
    logFields.actor = caller.sub;
    if (subpath === "/") return await send(req, env, caller.sub, sql, logFields);
    if (subpath === "/read") return await markRead(req, env, caller.sub, sql);
    throw new HttpError(404, "not_found", `no route ${subpath}`);
  },
});
