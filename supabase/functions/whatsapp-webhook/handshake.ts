// The GET verification handshake Meta performs when the callback URL is saved in the App Dashboard.
import { timingSafeEqual } from "node:crypto";
import { HttpError } from "../_shared/http.ts";

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

/** 200 with the raw hub.challenge when hub.verify_token matches; 403 otherwise. */
export async function answerHandshake(url: URL, verifyToken: string): Promise<Response> {
  const mode = url.searchParams.get("hub.mode");
  const token = url.searchParams.get("hub.verify_token") ?? "";
  const challenge = url.searchParams.get("hub.challenge");
  if (mode !== "subscribe" || challenge === null || challenge === "") {
    throw new HttpError(400, "invalid_handshake", "expected hub.mode=subscribe with hub.challenge");
  }
  // Digests have equal lengths, so the comparison time says nothing about the token.
  if (!timingSafeEqual(await sha256(token), await sha256(verifyToken))) {
    throw new HttpError(403, "invalid_verify_token", "hub.verify_token does not match");
  }
  return new Response(challenge, { status: 200, headers: { "content-type": "text/plain; charset=utf-8" } });
}
