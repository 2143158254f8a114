// Supabase Storage's HTTP API as the service role: streamed uploads, removals and signed URLs. fetch rather than
// storage-js: an upload must stream its body (a 100 MB document never sits in memory), which storage-js only
// does for a ReadableStream with its own `duplex` handling, and the errors must carry the HTTP status.

export class StorageRequestError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "StorageRequestError";
  }
}

export interface StorageClient {
  /** Streams `body` to `bucket/path`, replacing an object already there (a refetch never makes a second). */
  upload(
    bucket: string,
    path: string,
    body: ReadableStream<Uint8Array>,
    contentType: string,
    signal?: AbortSignal,
  ): Promise<void>;
  /** A URL anyone holding it may GET for `expiresInSeconds`. */
  signedUrl(bucket: string, path: string, expiresInSeconds: number): Promise<string>;
  /** The object's bytes, streamed. */
  download(bucket: string, path: string, signal?: AbortSignal): Promise<Response>;
  remove(bucket: string, paths: string[]): Promise<void>;
}

function objectPath(bucket: string, path: string): string {
  return `${encodeURIComponent(bucket)}/${path.split("/").map(encodeURIComponent).join("/")}`;
}

async function failure(res: Response, what: string): Promise<StorageRequestError> {
  const text = await res.text().catch(() => "");
  return new StorageRequestError(res.status, `storage ${what}: HTTP ${res.status} ${text.slice(0, 200)}`);
}

/** A client of the Storage API at `${supabaseUrl}/storage/v1`, authenticated with the service role key. */
export function createStorageClient(supabaseUrl: string, serviceRoleKey: string): StorageClient {
  const base = `${supabaseUrl.replace(/\/+$/, "")}/storage/v1`;
  const auth = { authorization: `Bearer ${serviceRoleKey}`, apikey: serviceRoleKey };
  return {
    async upload(bucket, path, body, contentType, signal) {
      const res = await fetch(`${base}/object/${objectPath(bucket, path)}`, {
        method: "POST",
        headers: {
          ...auth,
          "content-type": contentType,
          "x-upsert": "true",
          "cache-control": "max-age=3600",
        },
        body,
        signal,
        // A streamed request body (fetch's half duplex): the bytes flow through, never buffered.
        duplex: "half",
      } as RequestInit);
      if (!res.ok) throw await failure(res, "upload");
      await res.body?.cancel();
    },
    async signedUrl(bucket, path, expiresInSeconds) {
      const res = await fetch(`${base}/object/sign/${objectPath(bucket, path)}`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({ expiresIn: Math.max(1, Math.ceil(expiresInSeconds)) }),
      });
      if (!res.ok) throw await failure(res, "sign");
      const { signedURL } = await res.json() as { signedURL: string };
      return `${base}${signedURL}`;
    },
    async download(bucket, path, signal) {
      const res = await fetch(`${base}/object/authenticated/${objectPath(bucket, path)}`, {
        headers: auth,
        signal,
      });
      if (!res.ok) throw await failure(res, "download");
      return res;
    },
    async remove(bucket, paths) {
      const res = await fetch(`${base}/object/${encodeURIComponent(bucket)}`, {
        method: "DELETE",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({ prefixes: paths }),
      });
      if (!res.ok) throw await failure(res, "remove");
      await res.body?.cancel();
    },
  };
}
