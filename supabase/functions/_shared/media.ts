// WhatsApp's media rules (WHATSAPP.md §4.6, from Meta's media page, updated 2026-04-17) and where wabase keeps
// a file: the private bucket `whatsapp-media`, at `<conversation_id>/<wamid>.<ext>` (SPEC §10).

export const MEDIA_BUCKET = "whatsapp-media";

export type MediaType = "image" | "audio" | "video" | "document" | "sticker";

export const MEDIA_TYPES: readonly MediaType[] = ["image", "audio", "video", "document", "sticker"];

const MB = 1024 * 1024;

/** Each type's MIME types and size limit. Stickers: 100 KB static, 500 KB animated. */
const RULES: Record<MediaType, { mimeTypes: readonly string[]; maxBytes: number }> = {
  audio: { mimeTypes: ["audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"], maxBytes: 16 * MB },
  document: {
    mimeTypes: [
      "text/plain",
      "application/pdf",
      "application/vnd.ms-excel",
      "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
      "application/msword",
      "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
      "application/vnd.ms-powerpoint",
      "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ],
    maxBytes: 100 * MB,
  },
  image: { mimeTypes: ["image/jpeg", "image/png"], maxBytes: 5 * MB },
  sticker: { mimeTypes: ["image/webp"], maxBytes: 500 * 1024 },
  video: { mimeTypes: ["video/mp4", "video/3gpp"], maxBytes: 16 * MB },
};

const STATIC_STICKER_BYTES = 100 * 1024;

const EXTENSIONS: Record<string, string> = {
  "audio/aac": "aac",
  "audio/amr": "amr",
  "audio/mpeg": "mp3",
  "audio/mp4": "m4a",
  "audio/ogg": "ogg",
  "text/plain": "txt",
  "application/pdf": "pdf",
  "application/vnd.ms-excel": "xls",
  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
  "application/msword": "doc",
  "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
  "application/vnd.ms-powerpoint": "ppt",
  "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
  "image/jpeg": "jpg",
  "image/png": "png",
  "image/webp": "webp",
  "video/mp4": "mp4",
  "video/3gpp": "3gp",
};

export function isMediaType(type: string): type is MediaType {
  return (MEDIA_TYPES as readonly string[]).includes(type);
}

/** `audio/ogg; codecs=opus` → `audio/ogg`. */
export function baseMime(mimeType: string): string {
  return mimeType.split(";")[0]!.trim().toLowerCase();
}

/** The largest file WhatsApp allows for a message of this type. */
export function maxBytes(type: MediaType, animated = false): number {
  return type === "sticker" && !animated ? STATIC_STICKER_BYTES : RULES[type].maxBytes;
}

/** Why a file cannot be a WhatsApp message of this type, naming the limit; null when it can. */
export function mediaProblem(
  type: MediaType,
  mimeType: string,
  size: number,
  animated = false,
): string | null {
  const mime = baseMime(mimeType);
  if (!RULES[type].mimeTypes.includes(mime)) {
    return `${type} must be one of ${RULES[type].mimeTypes.join(", ")} (got ${mime})`;
  }
  const limit = maxBytes(type, animated);
  if (size > limit) return `${type} is limited to ${limit} bytes by WhatsApp (got ${size})`;
  return null;
}

/**
 * Where a message's file is kept. A wamid is base64 with a prefix, whose only character a Storage key cannot
 * hold as a name is `/`; `_` is not in base64's alphabet, so replacing one by the other stays one-to-one.
 */
export function mediaPath(conversationId: string, wamid: string, mimeType: string): string {
  return `${conversationId}/${wamid.replaceAll("/", "_")}.${EXTENSIONS[baseMime(mimeType)] ?? "bin"}`;
}
