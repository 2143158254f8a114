// What the agent gets of a batch's media: per media message its state (pending: not fetched within the number's
// media_wait, the batch went without it; failed with the reason), a signed URL to the stored file valid as long
// as the agent may take, its mime type and size, and a voice note's transcript (TRANSCRIBE_URL, any
// OpenAI-compatible /audio/transcriptions). A failure here never fails the batch: the agent gets less.
import { z } from "zod";
import type { Sql } from "../_shared/db.ts";
import { errorMessage, log } from "../_shared/log.ts";
import { MEDIA_BUCKET } from "../_shared/media.ts";
import type { Resilient } from "../_shared/resilience.ts";
import type { StorageClient } from "../_shared/storage.ts";
import { AgentError } from "./agent.ts";
import type { AgentContext, MediaAttachment } from "./store.ts";

interface BatchMedia {
  message_id: string;
  type: string;
  state: MediaAttachment["state"];
  path: string | null;
  mime_type: string | null;
  size: string | null;
  error: string | null;
  transcript: string | null;
  voice: boolean;
}

export interface MediaOptions {
  sql: Sql;
  /** Storage as the service role; without it the agent gets states but no URLs. */
  storage?: StorageClient;
  /** How long a signed URL stays valid: the agent's worst case. */
  urlSeconds: number;
  transcriber?: Transcriber;
}

/** A stored voice note's text. */
export type Transcriber = (path: string, mimeType: string) => Promise<string>;

const transcription = z.object({ text: z.string() }).loose();

/**
 * Transcribes through `${url}/audio/transcriptions` (multipart: file, model), under `policy` (the agent's
 * timeout, retries and breaker). The file is read whole: WhatsApp caps audio at 16 MB, a voice note is KBs.
 */
export function createTranscriber(
  options: { url: string; apiKey?: string; model: string; storage: StorageClient },
  policy: Resilient,
): Transcriber {
  return (path, mimeType) =>
    policy.execute(async (signal) => {
      const file = await (await options.storage.download(MEDIA_BUCKET, path, signal)).blob();
      const form = new FormData();
      form.append("file", new File([file], path.split("/").at(-1) ?? "voice.ogg", { type: mimeType }));
      form.append("model", options.model);
      const res = await fetch(`${options.url}/audio/transcriptions`, {
        method: "POST",
        headers: options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {},
        body: form,
        signal,
      });
      const text = await res.text();
      if (!res.ok) {
        throw new AgentError(
          `transcription answered HTTP ${res.status}`,
          res.status >= 500 || res.status === 429,
        );
      }
      const parsed = transcription.safeParse((() => {
        try {
          return JSON.parse(text);
        } catch {
          return undefined;
        }
      })());
      if (!parsed.success) throw new AgentError("transcription answer without text", false);
      return parsed.data.text.trim();
    });
}

/** Adds each batch message's media attachment to `context` in place. */
export async function attachMedia(
  options: MediaOptions,
  fence: string,
  context: AgentContext,
): Promise<void> {
  // The context marks every media message: a batch of text alone needs no round trip for files.
  if (!context.batch.messages.some((message) => message.media !== undefined)) return;
  const rows = await options.sql<BatchMedia[]>`
    select message_id, type, state, path, mime_type, size::text, error, transcript, voice
    from wa.batch_media(${fence}::bigint)`;
  if (rows.length === 0) return;
  const byId = new Map(context.batch.messages.map((message) => [message.id, message]));
  await Promise.all(rows.map(async (row) => {
    const message = byId.get(row.message_id);
    if (message === undefined) return;
    const attachment: MediaAttachment = { state: row.state };
    if (row.mime_type !== null) attachment.mime_type = row.mime_type;
    if (row.size !== null) attachment.size = Number(row.size);
    if (row.error !== null) attachment.error = row.error;
    if (row.state === "pending") attachment.note = "not fetched in time: the batch went without it";
    if (row.state === "stored" && row.path !== null) {
      try {
        if (options.storage !== undefined) {
          attachment.url = await options.storage.signedUrl(MEDIA_BUCKET, row.path, options.urlSeconds);
        }
        const transcript = row.transcript ??
          (row.voice && options.transcriber !== undefined
            ? await transcribe(options, row.message_id, row.path, row.mime_type ?? "audio/ogg")
            : null);
        if (transcript !== null) attachment.transcript = transcript;
      } catch (error) {
        log("warn", {
          function: "buffer-processor",
          job: "media",
          message_id: row.message_id,
          error: errorMessage(error),
        });
      }
    }
    message.media = { ...message.media, ...attachment };
  }));
}

async function transcribe(options: MediaOptions, messageId: string, path: string, mimeType: string) {
  try {
    const text = await options.transcriber!(path, mimeType);
    // Kept on the message: operators see it too, and a retried batch does not ask again.
    await options.sql`select wa.record_media_transcript(${messageId}, ${text})`;
    return text;
  } catch (error) {
    log("warn", {
      function: "buffer-processor",
      job: "transcribe",
      message_id: messageId,
      error: errorMessage(error),
    });
    return null;
  }
}
