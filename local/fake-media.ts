// The media side of the fake Graph API. GET /{media-id} resolves any id (by default to deterministic bytes of a
// plausible type and size derived from the id, so a webhook naming any id is stored end to end) to a download
// URL valid 5 minutes, with Meta's answer shape {messaging_product, url, mime_type, sha256, file_size, id}
// (WHATSAPP.md §1.1, §1.6). The download host is a server of its own, as Meta's lookaside host is, streaming up
// to 100 MB without holding it, and it injects the faults a fetcher must survive: expired URLs and ids, error
// statuses, slow, stalled, truncated and corrupted downloads.
import { createHash } from "node:crypto";

export type MediaFault =
  /** The download answers 404, as a URL past its 5 minutes. */
  | { kind: "expire_url" }
  /** The download answers this status. */
  | { kind: "error"; status: number }
  /** Sends the first `atByte` bytes (default half), then cuts the connection. */
  | { kind: "truncate"; atByte?: number }
  /** Waits `chunkDelayMs` before each 64 KiB chunk. */
  | { kind: "slow"; chunkDelayMs: number }
  /** Sends the first `atByte` bytes (default half), then waits until release() (or the fake closes). */
  | { kind: "stall"; atByte?: number }
  /** One byte differs from the bytes whose sha256 was declared. */
  | { kind: "corrupt" };

export interface MediaSpec {
  mimeType: string;
  size: number;
}

export interface MediaDownload {
  id: string;
  /** Bytes handed to the connection so far. */
  bytes: number;
  status: number;
  completed: boolean;
}

/** A file uploaded with POST /{phone-number-id}/media. */
export interface MediaUpload {
  id: string;
  type: string;
  filename: string;
  size: number;
  sha256: string;
}

export interface FakeMedia {
  /** Answers GET /{media-id} (the fake Graph API routes it here after its token check). */
  resolve(mediaId: string): Promise<Response>;
  /** Answers POST /{phone-number-id}/media: multipart messaging_product=whatsapp, file, type; {id}. */
  upload(req: Request): Promise<Response>;
  uploads: MediaUpload[];
  /** Gives an id a type and size instead of the ones derived from it; returns its declared sha256 (hex). */
  register(mediaId: string, spec: MediaSpec): Promise<string>;
  /** What GET /{media-id} declares for an id. */
  describe(mediaId: string): Promise<MediaSpec & { sha256: string }>;
  /** From now on GET /{media-id} answers Meta's error for an id that no longer exists (7 days passed). */
  expireId(mediaId: string): void;
  /** Every URL issued so far answers 404 from now on. */
  expireUrls(): void;
  /** Queues faults for the next downloads of an id, one each, in order. */
  fail(mediaId: string, ...faults: MediaFault[]): void;
  /** Lets stalled downloads go on. */
  release(): void;
  downloads: MediaDownload[];
  /** GET /{media-id} calls, by id. */
  resolves: Map<string, number>;
  close(): Promise<void>;
}

const URL_LIFETIME_MS = 5 * 60 * 1000;
const CHUNK = 64 * 1024;

const DEFAULT_TYPES: MediaSpec["mimeType"][] = [
  "image/jpeg",
  "audio/ogg",
  "application/pdf",
  "image/png",
  "video/mp4",
];

const MAGIC: Record<string, number[]> = {
  "image/jpeg": [0xff, 0xd8, 0xff, 0xe0],
  "image/png": [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
  "image/webp": [0x52, 0x49, 0x46, 0x46, 0, 0, 0, 0, 0x57, 0x45, 0x42, 0x50],
  "audio/ogg": [0x4f, 0x67, 0x67, 0x53],
  "application/pdf": [0x25, 0x50, 0x44, 0x46, 0x2d, 0x31, 0x2e, 0x37, 0x0a],
  "video/mp4": [0, 0, 0, 0x18, 0x66, 0x74, 0x79, 0x70],
};

/** FNV-1a: a stable 32-bit number per id. */
function fnv(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return hash || 1;
}

/** The file's bytes in 64 KiB chunks, generated (xorshift32 seeded by the id), never held whole. */
function* fileChunks(mediaId: string, spec: MediaSpec): Generator<Uint8Array> {
  let state = fnv(mediaId);
  const magic = MAGIC[spec.mimeType] ?? [];
  for (let offset = 0; offset < spec.size; offset += CHUNK) {
    const length = Math.min(CHUNK, spec.size - offset);
    const words = new Uint32Array(Math.ceil(length / 4));
    for (let i = 0; i < words.length; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      words[i] = state >>> 0;
    }
    const chunk = new Uint8Array(words.buffer, 0, length);
    if (offset === 0) chunk.set(magic.slice(0, length));
    yield chunk;
  }
}

export function startFakeMedia(options: { accessToken: string; clock?: () => number }): FakeMedia {
  const clock = options.clock ?? Date.now;
  const specs = new Map<string, MediaSpec>();
  const hashes = new Map<string, Promise<string>>();
  const expiredIds = new Set<string>();
  const faults = new Map<string, MediaFault[]>();
  const downloads: MediaDownload[] = [];
  const resolves = new Map<string, number>();
  const uploads: MediaUpload[] = [];
  let urlsValidAfter = 0;
  let released: () => void = () => {};
  let releasing = new Promise<void>((resolve) => (released = resolve));
  const closing = new AbortController();

  const specOf = (id: string): MediaSpec => {
    const known = specs.get(id);
    if (known !== undefined) return known;
    const hash = fnv(id);
    return { mimeType: DEFAULT_TYPES[hash % DEFAULT_TYPES.length]!, size: 2048 + (hash % (256 * 1024)) };
  };
  const sha256Of = (id: string): Promise<string> => {
    let hash = hashes.get(id);
    if (hash === undefined) {
      const spec = specOf(id);
      hash = (async () => {
        const digest = createHash("sha256");
        let n = 0;
        for (const chunk of fileChunks(id, spec)) {
          digest.update(chunk);
          // Yield now and then: a 100 MB file must not stall the fake's other answers.
          if (++n % 64 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
        }
        return digest.digest("hex");
      })();
      hashes.set(id, hash);
    }
    return hash;
  };

  function body(id: string, spec: MediaSpec, fault: MediaFault | undefined, record: MediaDownload) {
    const chunks = fileChunks(id, spec);
    let carry: Uint8Array | undefined;
    let stopAt = fault?.kind === "truncate" || fault?.kind === "stall"
      ? fault.atByte ?? Math.floor(spec.size / 2)
      : Infinity;
    let corrupt = fault?.kind === "corrupt";
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (fault?.kind === "slow") await new Promise((resolve) => setTimeout(resolve, fault.chunkDelayMs));
        if (record.bytes >= stopAt) {
          if (fault?.kind === "stall") {
            await Promise.race([
              releasing,
              new Promise((resolve) => closing.signal.addEventListener("abort", resolve, { once: true })),
            ]);
            stopAt = Infinity;
          }
          if (fault?.kind === "truncate" || closing.signal.aborted) {
            controller.error(new Error("fake media: connection cut"));
            return;
          }
        }
        let chunk = carry ?? chunks.next().value;
        carry = undefined;
        if (chunk === undefined) {
          record.completed = true;
          controller.close();
          return;
        }
        if (record.bytes + chunk.length > stopAt) {
          carry = chunk.subarray(stopAt - record.bytes);
          chunk = chunk.subarray(0, stopAt - record.bytes);
        }
        if (corrupt) {
          chunk = chunk.slice();
          chunk[chunk.length - 1]! ^= 0xff;
          corrupt = false;
        }
        record.bytes += chunk.length;
        controller.enqueue(chunk);
      },
    });
  }

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const url = new URL(req.url);
    const id = decodeURIComponent(url.pathname.replace(/^\/media\//, ""));
    const issued = Number(url.searchParams.get("issued") ?? 0);
    if (req.headers.get("authorization") !== `Bearer ${options.accessToken}`) {
      return new Response("missing or wrong access token", { status: 401 });
    }
    const queue = faults.get(id) ?? [];
    const fault = queue.shift();
    const record: MediaDownload = { id, bytes: 0, status: 200, completed: false };
    downloads.push(record);
    const expired = issued < urlsValidAfter || clock() > issued + URL_LIFETIME_MS ||
      fault?.kind === "expire_url";
    if (expired || fault?.kind === "error") {
      record.status = fault?.kind === "error" ? fault.status : 404;
      return new Response(expired ? "URL signature expired" : "fake media error", { status: record.status });
    }
    const spec = specOf(id);
    return new Response(body(id, spec, fault, record), {
      headers: { "content-type": spec.mimeType, "content-length": String(spec.size) },
    });
  });
  const downloadBase = `http://127.0.0.1:${server.addr.port}`;

  return {
    async resolve(mediaId) {
      resolves.set(mediaId, (resolves.get(mediaId) ?? 0) + 1);
      if (expiredIds.has(mediaId)) {
        return Response.json({
          error: {
            message:
              `Unsupported get request. Object with ID '${mediaId}' does not exist, cannot be loaded due ` +
              "to missing permissions, or does not support this operation.",
            type: "GraphMethodException",
            code: 100,
            error_subcode: 33,
            fbtrace_id: "AfakeMediaTrace",
          },
        }, { status: 400 });
      }
      const spec = specOf(mediaId);
      return Response.json({
        messaging_product: "whatsapp",
        url: `${downloadBase}/media/${encodeURIComponent(mediaId)}?issued=${clock()}`,
        mime_type: spec.mimeType,
        sha256: await sha256Of(mediaId),
        file_size: spec.size,
        id: mediaId,
      });
    },
    async upload(req) {
      const invalid = (message: string) =>
        Response.json({
          error: { message, type: "OAuthException", code: 100, fbtrace_id: "AfakeMediaTrace" },
        }, {
          status: 400,
        });
      let form: FormData;
      try {
        form = await req.formData();
      } catch {
        return invalid("(#100) The parameter file is required.");
      }
      const file = form.get("file");
      if (form.get("messaging_product") !== "whatsapp") {
        return invalid("(#100) The parameter messaging_product is required.");
      }
      if (!(file instanceof File)) return invalid("(#100) The parameter file is required.");
      const type = String(form.get("type") ?? file.type);
      const id = String(2_000_000_000_000_000 + uploads.length);
      const bytes = new Uint8Array(await file.arrayBuffer());
      uploads.push({
        id,
        type,
        filename: file.name,
        size: bytes.length,
        sha256: createHash("sha256").update(bytes).digest("hex"),
      });
      return Response.json({ id });
    },
    uploads,
    register(mediaId, spec) {
      specs.set(mediaId, spec);
      hashes.delete(mediaId);
      return sha256Of(mediaId);
    },
    async describe(mediaId) {
      return { ...specOf(mediaId), sha256: await sha256Of(mediaId) };
    },
    expireId: (mediaId) => void expiredIds.add(mediaId),
    expireUrls: () => {
      urlsValidAfter = clock() + 1;
    },
    fail: (mediaId, ...more) => void faults.set(mediaId, [...(faults.get(mediaId) ?? []), ...more]),
    release: () => {
      released();
      releasing = new Promise<void>((resolve) => (released = resolve));
    },
    downloads,
    resolves,
    close: async () => {
      closing.abort();
      await server.shutdown();
    },
  };
}
