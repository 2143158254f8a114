// Meta signs each webhook POST: X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>.
// The check runs on the bytes as received (re-serialised JSON would differ on escaped non-ASCII) and
// through Web Crypto's verify, which compares in constant time.
import { HttpError } from "../_shared/http.ts";

const keys = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (key === undefined) {
    key = crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      [
        "verify",
      ],
    );
    keys.set(secret, key);
  }
  return key;
}

const SIGNATURE = /^sha256=([0-9a-fA-F]{64})$/;

function rejected(code: string, message: string): HttpError {
  return new HttpError(401, code, message);
}

/** Throws a 401 unless `header` is a valid signature of `body` under `appSecret`. */
export async function verifySignature(
  body: Uint8Array<ArrayBuffer>,
  header: string | null,
  appSecret: string,
): Promise<void> {
  if (header === null || header === "") {
    throw rejected("missing_signature", "the X-Hub-Signature-256 header is required");
  }
  const hex = SIGNATURE.exec(header.trim())?.[1];
  if (hex === undefined) {
    throw rejected("malformed_signature", "X-Hub-Signature-256 must be sha256=<64 hex digits>");
  }
  const signature = new Uint8Array(32);
  for (let i = 0; i < 32; i++) signature[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  const valid = await crypto.subtle.verify("HMAC", await hmacKey(appSecret), signature, body);
  if (!valid) throw rejected("invalid_signature", "the signature does not match the body");
}
