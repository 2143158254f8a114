// An operator's file from Storage to WhatsApp: read from the whatsapp-outbox bucket as the operator (so the RLS
// policies on storage.objects decide whether they may use it), checked against WhatsApp's types and sizes
// (WHATSAPP.md §4.6; a clear 422 naming the limit), then streamed to the Graph API's
// POST /{phone-number-id}/media (multipart: messaging_product, file, type), whose media id the send uses.
import { HttpError } from "../_shared/http.ts";
import { baseMime, mediaProblem, type MediaType } from "../_shared/media.ts";

export const OUTBOX_BUCKET = "whatsapp-outbox";

export interface OutboundMediaOptions {
  supabaseUrl: string;
  /** Storage behind the API gateway wants the project's key beside the user's JWT. */
  apiKey?: string;
  userJwt: string;
  apiBase: string;
  accessToken: string;
  timeoutMs: number;
}

/** multipart/form-data around a streamed file: the file never sits in memory whole. */
function multipart(file: ReadableStream<Uint8Array>, filename: string, mimeType: string) {
  const boundary = `wabase-${crypto.randomUUID()}`;
  const encoder = new TextEncoder();
  const field = (name: string, value: string) =>
    `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
  const head = encoder.encode(
    field("messaging_product", "whatsapp") + field("type", mimeType) +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${
        filename.replaceAll('"', "")
      }"\r\n` +
      `Content-Type: ${mimeType}\r\n\r\n`,
  );
  const tail = encoder.encode(`\r\n--${boundary}--\r\n`);
  const reader = file.getReader();
  let stage: "head" | "file" | "done" = "head";
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (stage === "head") {
        stage = "file";
        controller.enqueue(head);
        return;
      }
      if (stage === "file") {
        const { value, done } = await reader.read();
        if (!done) return controller.enqueue(value);
        stage = "done";
        controller.enqueue(tail);
      }
      controller.close();
    },
    cancel: (reason) => reader.cancel(reason),
  });
  return { body, contentType: `multipart/form-data; boundary=${boundary}` };
}

/** Uploads `path` of whatsapp-outbox for a message of `type` in `conversationId`; returns the Graph media id. */
export async function uploadOutboundMedia(
  options: OutboundMediaOptions,
  request: { conversationId: string; phoneNumberId: string; type: MediaType; path: string },
): Promise<string> {
  if (!request.path.startsWith(`${request.conversationId}/`)) {
    throw new HttpError(
      422,
      "media_path_outside_conversation",
      "media.path must be <conversation_id>/<name>",
    );
  }
  const objectUrl = `${options.supabaseUrl}/storage/v1/object/authenticated/${OUTBOX_BUCKET}/` +
    request.path.split("/").map(encodeURIComponent).join("/");
  const file = await fetch(objectUrl, {
    headers: {
      authorization: `Bearer ${options.userJwt}`,
      ...(options.apiKey === undefined ? {} : { apikey: options.apiKey }),
    },
    signal: AbortSignal.timeout(options.timeoutMs),
  });
  if (!file.ok || file.body === null) {
    await file.body?.cancel();
    // Storage answers an object the caller's policies hide as not found, like a missing one.
    throw new HttpError(404, "media_not_found", `no ${request.path} in ${OUTBOX_BUCKET} that you may read`);
  }
  const mimeType = baseMime(file.headers.get("content-type") ?? "application/octet-stream");
  const size = Number(file.headers.get("content-length") ?? NaN);
  const problem = Number.isFinite(size) ? mediaProblem(request.type, mimeType, size) : "the file has no size";
  if (problem !== null) {
    await file.body.cancel();
    throw new HttpError(422, "media_not_allowed", problem, { type: request.type, mime_type: mimeType, size });
  }
  const { body, contentType } = multipart(file.body, request.path.split("/").at(-1)!, mimeType);
  let res: Response;
  try {
    res = await fetch(`${options.apiBase}/${encodeURIComponent(request.phoneNumberId)}/media`, {
      method: "POST",
      headers: { authorization: `Bearer ${options.accessToken}`, "content-type": contentType },
      body,
      signal: AbortSignal.timeout(options.timeoutMs * 6),
      duplex: "half",
    } as RequestInit);
  } catch (error) {
    throw new HttpError(502, "media_upload_failed", `uploading the file to WhatsApp failed: ${error}`, {
      retryable: true,
    });
  }
  const answer = await res.json().catch(() => null) as { id?: string; error?: { message?: string } } | null;
  if (!res.ok || typeof answer?.id !== "string") {
    throw new HttpError(
      502,
      "media_upload_failed",
      `WhatsApp refused the file: ${answer?.error?.message ?? res.status}`,
      {
        retryable: res.status >= 500 || res.status === 429,
      },
    );
  }
  return answer.id;
}
