// The WhatsApp Cloud API webhook: the GET handshake, and POSTs checked by signature on the raw bytes,
// validated, and stored in one database round trip before the 200. No other network I/O happens here, so
// the answer stays far below Meta's latency targets and a slow agent can never hold a delivery open.
import { z } from "zod";
import { db } from "../_shared/db.ts";
import { postgresUrl, secret } from "../_shared/env.ts";
import { createHandler, HttpError, json, readBody } from "../_shared/http.ts";
import { answerHandshake } from "./handshake.ts";
import { replaceUnstorableEscapes, validateLeavingOut } from "./salvage.ts";
import { verifySignature } from "./signature.ts";
import { ingest, recordRejected, type StoreOutcome } from "./store.ts";

export const env = z.object({
  SUPABASE_DB_URL: postgresUrl,
  // App Dashboard > App settings > Basic > App secret: the key Meta signs with.
  WHATSAPP_APP_SECRET: secret(16),
  // The string typed into the webhook's "Verify token" field.
  WHATSAPP_VERIFY_TOKEN: secret(8),
});

/** Meta's stated maximum payload size. */
export const MAX_BODY_BYTES = 3 * 1024 * 1024;

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const lenientUtf8 = new TextDecoder("utf-8");

/**
 * Validates a signed body and stores it: ingested when it is a Cloud API webhook (all of it Postgres can
 * store), kept raw otherwise, and kept raw beside what was ingested whenever that had to differ.
 */
async function store(dbUrl: string, bytes: Uint8Array<ArrayBuffer>): Promise<StoreOutcome> {
  const sql = db(dbUrl);
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    // Postgres text cannot hold NUL or invalid UTF-8: keep a readable copy and say so.
    const readable = lenientUtf8.decode(bytes).replaceAll("\u0000", "\uFFFD");
    return await recordRejected(sql, readable, null, "the body is not valid UTF-8 (invalid bytes replaced)");
  }
  const storable = replaceUnstorableEscapes(text);
  let parsed: unknown;
  try {
    parsed = JSON.parse(storable.text);
  } catch (error) {
    const raw = text.replaceAll("\u0000", "\uFFFD");
    return await recordRejected(
      sql,
      raw,
      null,
      `not JSON: ${error instanceof Error ? error.message : error}`,
    );
  }
  const validation = validateLeavingOut(parsed);
  if (!validation.ok) {
    return await recordRejected(sql, text, storable.text, `not a Cloud API webhook: ${validation.reason}`);
  }
  const repairs: string[] = [];
  if (storable.replaced > 0) {
    repairs.push(
      `escapes Postgres cannot store (\\u0000, lone surrogates) replaced by U+FFFD: ${storable.replaced}`,
    );
  }
  if (validation.leftOut !== null) repairs.push(`left out: ${validation.leftOut}`);
  if (repairs.length === 0) return await ingest(sql, text);
  const payload = validation.leftOut === null ? storable.text : JSON.stringify(validation.payload);
  return await ingest(sql, payload, { rawBody: text, reason: repairs.join("; ") });
}

export const handler = createHandler({
  name: "whatsapp-webhook",
  env,
  async handle(req, { env, subpath, logFields }) {
    if (subpath !== "/") throw new HttpError(404, "not_found", `no webhook route ${subpath}`);
    if (req.method === "GET") return await answerHandshake(new URL(req.url), env.WHATSAPP_VERIFY_TOKEN);
    if (req.method !== "POST") {
      throw new HttpError(405, "method_not_allowed", "use GET (handshake) or POST", undefined, {
        allow: "GET, POST",
      });
    }
    const bytes = await readBody(req, MAX_BODY_BYTES);
    await verifySignature(bytes, req.headers.get("x-hub-signature-256"), env.WHATSAPP_APP_SECRET);
    const outcome = await store(env.SUPABASE_DB_URL, bytes);
    if (outcome.kind === "rejected") {
      // 200 all the same: Meta would otherwise redeliver an unusable body for a week.
      logFields.event_id = outcome.eventId;
      logFields.rejected = outcome.reason;
      return json({ received: true, event_id: outcome.eventId, rejected: outcome.reason });
    }
    logFields.counts = outcome.counts;
    if (outcome.repaired === null) return json({ received: true, ...outcome.counts });
    logFields.repaired = outcome.repaired;
    return json({ received: true, ...outcome.counts, repaired: outcome.repaired });
  },
});
