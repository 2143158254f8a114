// One media file from the Graph API: resolve the id (GET /{media-id}: a URL valid 5 minutes, the mime type,
// sha256 and size Meta declares), then stream the URL's bytes, with the bearer token, through a check of size
// and sha256. Every failure says whether trying again can help (WHATSAPP.md §1.6, §4.5).
import { createHash } from "node:crypto";
import { z } from "zod";
import { graphError, readGraphBody, RETRYABLE_CODES, retryAfterMs } from "../_shared/graph.ts";

/** Why a fetch failed, and whether a later attempt can succeed. */
export class MediaFetchError extends Error {
  constructor(message: string, readonly permanent: boolean, readonly retryAfterMs?: number) {
    super(message);
    this.name = "MediaFetchError";
  }
}

export interface Declared {
  url: string;
  mimeType: string | null;
  sha256: string | null;
  size: number | null;
}

const mediaUrl = z.object({
  url: z.string().min(1),
  mime_type: z.string().optional(),
  sha256: z.string().optional(),
  file_size: z.coerce.number().int().nonnegative().optional(),
}).loose();

/** GET /{media-id}: a 4xx naming the object (code 100) means the id expired (7 days) or was deleted. */
export async function resolveMedia(
  apiBase: string,
  accessToken: string,
  mediaId: string,
  phoneNumberId: string,
  signal: AbortSignal,
): Promise<Declared> {
  let res: Response;
  try {
    res = await fetch(
      `${apiBase}/${encodeURIComponent(mediaId)}?phone_number_id=${encodeURIComponent(phoneNumberId)}`,
      { headers: { authorization: `Bearer ${accessToken}` }, signal },
    );
  } catch (error) {
    throw new MediaFetchError(`resolving the media id failed: ${error}`, false);
  }
  const { text, json } = await readGraphBody(res);
  if (res.ok) {
    const parsed = mediaUrl.safeParse(json);
    if (!parsed.success) throw new MediaFetchError(`GET /{media-id} answered without a url`, false);
    const { url, mime_type, sha256, file_size } = parsed.data;
    return { url, mimeType: mime_type ?? null, sha256: sha256 ?? null, size: file_size ?? null };
  }
  const error = graphError.safeParse(json);
  const code = error.success ? error.data.error.code : undefined;
  const message = `GET /{media-id}: HTTP ${res.status}${code === undefined ? "" : ` code ${code}`}: ${
    error.success ? error.data.error.message ?? "" : text.slice(0, 200)
  }`;
  // A bad token (190, 401) is ours to fix: retry with backoff rather than lose the file.
  const transient = res.status >= 500 || res.status === 429 || res.status === 401 ||
    (code !== undefined && (RETRYABLE_CODES.has(code) || code === 190));
  if (transient) throw new MediaFetchError(message, false, retryAfterMs(res));
  throw new MediaFetchError(`media id expired or deleted (${message})`, true);
}

/** The URL's bytes. A 404 is a URL past its 5 minutes: the next attempt resolves the id again. */
export async function downloadMedia(
  url: string,
  accessToken: string,
  signal: AbortSignal,
): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, { headers: { authorization: `Bearer ${accessToken}` }, signal });
  } catch (error) {
    throw new MediaFetchError(`download failed: ${error}`, false);
  }
  if (!res.ok || res.body === null) {
    await res.body?.cancel();
    const what = res.status === 404 || res.status === 410 ? "the media URL expired" : "download failed";
    throw new MediaFetchError(`${what}: HTTP ${res.status}`, false, retryAfterMs(res));
  }
  return res;
}

/** Meta's sha256 as hex (its API) or base64 (seen in webhooks): either matches the same digest. */
function sameDigest(declared: string, digest: Uint8Array): boolean {
  const hex = Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
  const base64 = btoa(String.fromCharCode(...digest));
  return declared.toLowerCase() === hex || declared.replace(/=+$/, "") === base64.replace(/=+$/, "");
}

export interface Verified {
  size: number;
  sha256: string;
}

/**
 * A pass-through that counts and hashes the bytes and refuses, by erroring the stream (which aborts the upload
 * it feeds, so no object is written), a file over `limit`, longer or shorter than declared, or with another
 * sha256. `result()` is the outcome once the stream ended; `failure()` the error that stopped it, if any.
 */
export function verifier(declared: Declared, limit: number, limitReason: string) {
  const hash = createHash("sha256");
  let size = 0;
  let failure: MediaFetchError | undefined;
  let result: Verified | undefined;
  const fail = (error: MediaFetchError) => {
    failure = error;
    throw error;
  };
  const stream = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      size += chunk.length;
      if (size > limit) fail(new MediaFetchError(limitReason, true));
      if (declared.size !== null && size > declared.size) {
        fail(new MediaFetchError(`more bytes than the ${declared.size} declared`, true));
      }
      hash.update(chunk);
      controller.enqueue(chunk);
    },
    flush() {
      // Fewer bytes than declared is a download cut short, not a bad file: try again.
      if (declared.size !== null && size < declared.size) {
        fail(new MediaFetchError(`download truncated at ${size} of ${declared.size} bytes`, false));
      }
      const digest = new Uint8Array(hash.digest());
      if (declared.sha256 !== null && !sameDigest(declared.sha256, digest)) {
        fail(new MediaFetchError(`sha256 mismatch: Meta declared ${declared.sha256}`, true));
      }
      result = { size, sha256: Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("") };
    },
  });
  return { stream, result: () => result, failure: () => failure };
}
