// Stand-in for the Supabase Storage API on the local stack: no Docker-free Storage server exists. It keeps the
// real Postgres objects (storage.buckets, storage.objects, local/platform.sql) and, like Storage, runs every
// bucket and object access in a transaction under the caller's JWT (role, request.jwt.claims, storage.operation
// …; source: supabase/storage src/internal/database/postgres/scope.ts), so the RLS policies on storage.objects
// decide as on hosted. Bytes live on disk under `root` (./files.ts). It serves the subset storage-js 2.119.1
// calls — buckets, upload/update, download (authenticated, public, signed), info, list, remove, signed URLs and
// signed uploads — with Storage's routes, responses and error bodies (./errors.ts); move and copy answer that
// they are not supported. Uploads follow Storage's uploader: the INSERT (or upsert) is tried under the caller's
// policies and rolled back, the bytes are written, then the row is written as the service role.
import postgres from "postgres";
import { jwtVerify, SignJWT } from "jose";
import { type Claims, createVerifier, type Verifier } from "../../supabase/functions/_shared/auth.ts";
import { HttpError } from "../../supabase/functions/_shared/http.ts";
import { errorMessage, log } from "../../supabase/functions/_shared/log.ts";
import { errors, fromDatabase, StorageError } from "./errors.ts";
import { Files } from "./files.ts";
import { boundaryOf, parseMultipart, type Part } from "./multipart.ts";

export interface StorageServer {
  handle(req: Request): Promise<Response>;
  close(): Promise<void>;
}

const PREFIX = "/storage/v1";
/** The Supabase CLI's default `[storage] file_size_limit` (50MiB); a bucket may only lower it. */
const FILE_SIZE_LIMIT = 50 * 1024 * 1024;
/** Storage's default lifetime of a signed upload URL (UPLOAD_SIGNED_URL_EXPIRATION_TIME). */
const UPLOAD_URL_SECONDS = 2 * 60 * 60;
// Storage's key and bucket name alphabets (src/storage/limits.ts).
const VALID_KEY = /^[A-Za-z0-9_/!.*'() &$=@;:+,?-]+$/;
const VALID_BUCKET = /^[A-Za-z0-9_!.*'() &$=@;:+,?-]{1,100}$/;
const VALID_MIME = /^([a-zA-Z0-9\-+.]+)\/([a-zA-Z0-9\-+.]+)(;\s*charset=[a-zA-Z0-9\-]+)?$|\*$/;

/** Who a database call acts as: the request's verified JWT, or the service role for Storage's own writes. */
interface Caller {
  claims: Claims;
  jwt: string;
}

const SERVICE: Caller = { claims: { role: "service_role" }, jwt: "" };

/** The parts of a request a handler needs. */
interface Call {
  req: Request;
  url: URL;
  /** The path below /storage/v1, still percent-encoded. */
  path: string;
  operation: string;
}

type Versions = { version: string | null }[];

interface ObjectRow {
  id: string;
  version: string | null;
  metadata: Record<string, unknown> | null;
}

export function createStorageServer(
  options: {
    dbUrl: string;
    jwtSecret: string;
    root: string;
    /** The project's upload limit, bytes (config.toml [storage] file_size_limit; default the CLI's 50MiB). */
    fileSizeLimit?: number;
  },
): StorageServer {
  const fileSizeLimit = options.fileSizeLimit ?? FILE_SIZE_LIMIT;
  const sql = postgres(options.dbUrl, { max: 4, onnotice: () => {} });
  const verify: Verifier = createVerifier({ JWT_SECRET: options.jwtSecret });
  const signingKey = new TextEncoder().encode(options.jwtSecret);
  const files = new Files(options.root);

  /** Runs `fn` in a transaction scoped to `caller` exactly as Storage scopes its queries. */
  function as<T>(caller: Caller, call: Call, fn: (tx: postgres.TransactionSql) => Promise<T>): Promise<T> {
    const role = String(caller.claims.role);
    const headers = JSON.stringify(Object.fromEntries(call.req.headers));
    return sql.begin(async (tx) => {
      await tx`select set_config('role', ${role}, true),
                      set_config('request.jwt.claim.role', ${role}, true),
                      set_config('request.jwt', ${caller.jwt}, true),
                      set_config('request.jwt.claim.sub', ${caller.claims.sub ?? ""}, true),
                      set_config('request.jwt.claims', ${JSON.stringify(caller.claims)}, true),
                      set_config('request.headers', ${headers}, true),
                      set_config('request.method', ${call.req.method}, true),
                      set_config('request.path', ${call.path}, true),
                      set_config('storage.operation', ${call.operation}, true),
                      set_config('storage.allow_delete_query', 'true', true)`;
      return await fn(tx);
    }) as Promise<T>;
  }

  /** The bearer JWT's claims (Storage's jwt plugin: no valid token, no access). */
  async function authenticate(req: Request): Promise<Caller> {
    const jwt = (req.headers.get("authorization") ?? "").replace(/^Bearer\s+/i, "");
    try {
      return { claims: await verify(jwt), jwt };
    } catch (error) {
      throw errors.accessDenied(
        error instanceof HttpError && error.code === "token_expired" ? "jwt expired" : "invalid signature",
      );
    }
  }

  async function json<T>(req: Request): Promise<T> {
    try {
      return await req.json() as T;
    } catch {
      throw errors.invalidRequest("Body is not valid JSON");
    }
  }

  // ---- buckets -------------------------------------------------------------------------------------------

  const BUCKET_COLUMNS =
    "id, name, owner, public, type, file_size_limit, allowed_mime_types, created_at, updated_at";

  /** A bucket's file_size_limit: bytes, or a string such as "5MB" (Storage's decimal units). */
  function sizeLimit(value: unknown): number | null | undefined {
    if (value === undefined || value === null) return value;
    const match = typeof value === "string" ? /^([0-9]+(?:\.[0-9]+)?)(gb|mb|kb|b)$/i.exec(value) : null;
    const bytes = match === null ? (typeof value === "number" ? value : NaN) : Number(match[1]) *
      ({ gb: 1e9, mb: 1e6, kb: 1e3, b: 1 } as Record<string, number>)[match[2]!.toLowerCase()]!;
    if (!Number.isFinite(bytes) || bytes < 0) throw errors.invalidRequest("Invalid file size format");
    if (bytes > fileSizeLimit) throw errors.entityTooLarge();
    return Math.floor(bytes);
  }

  function mimeTypes(value: unknown): string[] | null | undefined {
    if (value === undefined || value === null) return value;
    if (!Array.isArray(value)) throw errors.invalidRequest("allowed_mime_types must be an array");
    const types = value.filter((type): type is string => typeof type === "string" && type !== "");
    for (const type of types) {
      if (type.length > 1000 || !VALID_MIME.test(type)) throw errors.invalidMimeType(type);
    }
    return types;
  }

  async function listBuckets(call: Call): Promise<Response> {
    const caller = await authenticate(call.req);
    const query = call.url.searchParams;
    const column = ["id", "name", "created_at", "updated_at"].find((c) => c === query.get("sortColumn")) ??
      "name";
    const descending = query.get("sortOrder") === "desc";
    const search = query.get("search") ?? "";
    const limit = query.has("limit") ? Number(query.get("limit")) : null;
    const offset = Number(query.get("offset") ?? 0);
    const rows = await as(
      caller,
      call,
      (tx) =>
        tx`select coalesce(json_agg(b order by n), '[]') as rows from (
           select ${tx.unsafe(BUCKET_COLUMNS)},
                  row_number() over (order by ${tx(column)} ${descending ? tx`desc` : tx`asc`}) n
           from storage.buckets
           where ${search} = '' or strpos(lower(name), lower(${search})) > 0
           order by n limit ${limit} offset ${offset}) b`,
    );
    return Response.json(rows[0]!.rows);
  }

  async function getBucket(call: Call, id: string): Promise<Response> {
    const caller = await authenticate(call.req);
    const [row] = await as(caller, call, (tx) =>
      tx`select row_to_json(b) as bucket from (
           select ${tx.unsafe(BUCKET_COLUMNS)} from storage.buckets where id = ${id}) b`);
    if (row === undefined) throw errors.noSuchBucket();
    return Response.json(row.bucket);
  }

  async function createBucket(call: Call): Promise<Response> {
    const caller = await authenticate(call.req);
    const body = await json<Record<string, unknown>>(call.req);
    const name = body.name;
    if (typeof name !== "string" || name.trim() !== name || !VALID_BUCKET.test(name)) {
      throw errors.invalidBucketName();
    }
    const sub = caller.claims.sub;
    const bucket = {
      id: typeof body.id === "string" && body.id !== "" ? body.id : name,
      name,
      owner: isUuid(sub) ? sub : null,
      owner_id: sub ?? null,
      public: body.public === true,
      file_size_limit: sizeLimit(body.file_size_limit) ?? null,
      allowed_mime_types: mimeTypes(body.allowed_mime_types) ?? null,
    };
    try {
      await as(caller, call, (tx) => tx`insert into storage.buckets ${tx(bucket)}`);
    } catch (error) {
      if (error instanceof StorageError) throw error;
      throw fromDatabase(error, errors.bucketExists);
    }
    return Response.json({ name });
  }

  async function updateBucket(call: Call, id: string): Promise<Response> {
    const caller = await authenticate(call.req);
    const body = await json<Record<string, unknown>>(call.req);
    // Only what the body names changes, as in Storage's updateBucket.
    const changes: Record<string, unknown> = { updated_at: new Date() };
    if (typeof body.public === "boolean") changes.public = body.public;
    if (body.file_size_limit !== undefined) changes.file_size_limit = sizeLimit(body.file_size_limit);
    if (body.allowed_mime_types !== undefined) {
      changes.allowed_mime_types = mimeTypes(body.allowed_mime_types);
    }
    const updated = await as(
      caller,
      call,
      (tx) => tx`update storage.buckets set ${tx(changes)} where id = ${id} returning id`,
    );
    if (updated.length === 0) throw errors.noSuchBucket();
    return Response.json({ message: "Successfully updated" });
  }

  async function deleteBucket(call: Call, id: string): Promise<Response> {
    const caller = await authenticate(call.req);
    // As Storage: the bucket must exist and be empty, then the caller's DELETE policies decide.
    const [bucket] = await as(
      SERVICE,
      call,
      (tx) =>
        tx`select exists (select from storage.objects o where o.bucket_id = b.id) as used
         from storage.buckets b where b.id = ${id}`,
    );
    if (bucket === undefined) throw errors.noSuchBucket();
    if (bucket.used) throw errors.bucketNotEmpty();
    const deleted = await as(
      caller,
      call,
      (tx) => tx`delete from storage.buckets where id = ${id} returning id`,
    )
      .catch((error) => {
        throw fromDatabase(error, errors.bucketNotEmpty);
      });
    if (deleted.length === 0) throw errors.noSuchBucket();
    return Response.json({ message: "Successfully deleted" });
  }

  async function emptyBucket(call: Call, id: string): Promise<Response> {
    const caller = await authenticate(call.req);
    const [visible] = await as(caller, call, (tx) => tx`select id from storage.buckets where id = ${id}`);
    if (visible === undefined) throw errors.noSuchBucket();
    // As Storage's queued job: the caller may see the bucket, the platform empties it.
    const gone = await as(
      SERVICE,
      call,
      (tx) => tx<Versions>`delete from storage.objects where bucket_id = ${id} returning version`,
    );
    await files.remove(gone.map((row) => row.version));
    return Response.json({ message: "Successfully emptied" });
  }

  // ---- objects -------------------------------------------------------------------------------------------

  function validKey(name: string): string {
    if (!VALID_KEY.test(name)) throw errors.invalidKey(name);
    return name;
  }

  /** A bucket as the platform sees it (Storage reads the bucket as super user before an upload). */
  async function bucketFor(call: Call, id: string) {
    const [bucket] = await as(
      SERVICE,
      call,
      (tx) =>
        tx<{ public: boolean; file_size_limit: string | null; allowed_mime_types: string[] | null }[]>`
        select public, file_size_limit, allowed_mime_types from storage.buckets where id = ${id}`,
    );
    if (bucket === undefined) throw errors.noSuchBucket();
    return bucket;
  }

  /** What an upload request carries, multipart (storage-js with a Blob or FormData) or a raw body. */
  async function incoming(req: Request) {
    const contentType = req.headers.get("content-type") ?? "";
    if (contentType.startsWith("multipart/form-data")) {
      let parts: Part[];
      try {
        parts = parseMultipart(new Uint8Array(await req.arrayBuffer()), boundaryOf(contentType) ?? "");
      } catch {
        throw errors.invalidRequest("No content provided");
      }
      const file = parts.find((part) => part.filename !== undefined);
      if (file === undefined) throw errors.invalidRequest("No content provided");
      const field = (name: string) => {
        const part = parts.find((part) => part.filename === undefined && part.name === name);
        return part === undefined ? undefined : new TextDecoder().decode(part.data);
      };
      const cacheTime = field("cacheControl");
      const metadata = field("metadata") ?? field("userMetadata");
      return {
        body: new Blob([file.data]).stream(),
        declaredLength: file.data.length,
        mimeType: field("contentType") || file.contentType || "application/octet-stream",
        cacheControl: cacheTime ? `max-age=${cacheTime}` : "no-cache",
        userMetadata: metadata === undefined ? undefined : parseJson(metadata),
      };
    }
    const length = req.headers.get("content-length");
    const encoded = req.headers.get("x-metadata");
    return {
      body: req.body ?? new Blob([]).stream(),
      declaredLength: length === null ? undefined : Number(length),
      mimeType: contentType || "application/octet-stream",
      cacheControl: req.headers.get("cache-control") ?? "no-cache",
      userMetadata: encoded === null ? undefined : parseJson(new TextDecoder().decode(decodeBase64(encoded))),
    };
  }

  /**
   * Storage's upload: `checkAs` (absent for a signed upload, checked when it was signed) must pass the
   * INSERT — or, for an upsert, the upsert — policies, tried and rolled back; the bytes go to disk; the row is
   * written as the service role, and the version it replaced is removed.
   */
  async function upload(
    call: Call,
    target: { bucket: string; name: string; owner: string | undefined; upsert: boolean },
    checkAs: Caller | undefined,
  ): Promise<{ id: string; key: string }> {
    const { bucket: bucketId, owner, upsert } = target;
    const name = validKey(target.name);
    const bucket = await bucketFor(call, bucketId);
    const file = await incoming(call.req);
    const allowed = bucket.allowed_mime_types ?? [];
    if (allowed.length > 0 && !mimeAllowed(file.mimeType, allowed)) {
      throw errors.invalidMimeType(file.mimeType);
    }
    const limit = Math.min(fileSizeLimit, Number(bucket.file_size_limit ?? fileSizeLimit));
    if ((file.declaredLength ?? 0) > limit) throw errors.entityTooLarge();
    const row = (version: string, metadata: object) => ({
      bucket_id: bucketId,
      name,
      owner: isUuid(owner) ? owner : null,
      owner_id: owner ?? null,
      version,
      metadata: metadata as postgres.JSONValue,
      user_metadata: (file.userMetadata ?? null) as postgres.JSONValue,
    });
    if (checkAs !== undefined) {
      await tryAndRollBack(
        checkAs,
        call,
        (tx) => write(tx, row("1", { mimetype: file.mimeType, contentLength: file.declaredLength }), upsert),
      );
    }
    const version = crypto.randomUUID();
    const written = await files.write(version, file.body, limit);
    const metadata = {
      eTag: written.eTag,
      size: written.size,
      mimetype: file.mimeType,
      cacheControl: file.cacheControl,
      lastModified: new Date().toISOString(),
      contentLength: written.size,
      httpStatusCode: 200,
    };
    let replaced: string | null = null;
    let id: string;
    try {
      id = await as(SERVICE, call, async (tx) => {
        const [previous] = await tx<{ version: string | null }[]>`
          select version from storage.objects where bucket_id = ${bucketId} and name = ${name} for update`;
        if (previous !== undefined && !upsert) throw errors.keyExists();
        replaced = previous?.version ?? null;
        return await write(tx, row(version, metadata), upsert);
      });
    } catch (error) {
      await files.remove([version]);
      throw error instanceof StorageError ? error : fromDatabase(error, errors.keyExists);
    }
    await files.remove([replaced]);
    return { id, key: `${bucketId}/${name}` };
  }

  /** The object row's INSERT, or INSERT … ON CONFLICT DO UPDATE for an upsert; returns its id. */
  async function write(tx: postgres.TransactionSql, row: Record<string, unknown>, upsert: boolean) {
    const [written] = upsert
      ? await tx<{ id: string }[]>`
          insert into storage.objects ${tx(row)}
          on conflict (name, bucket_id) do update set
            metadata = excluded.metadata, user_metadata = excluded.user_metadata, version = excluded.version,
            owner = excluded.owner, owner_id = excluded.owner_id
          returning id`
      : await tx<{ id: string }[]>`insert into storage.objects ${tx(row)} returning id`;
    return written!.id;
  }

  /** Runs `fn` for `caller` and rolls it back: Storage's testPermission. */
  async function tryAndRollBack(
    caller: Caller,
    call: Call,
    fn: (tx: postgres.TransactionSql) => Promise<unknown>,
  ) {
    const rollback = Symbol("rollback");
    try {
      await as(caller, call, async (tx) => {
        await fn(tx);
        throw rollback;
      });
    } catch (error) {
      if (error === rollback) return;
      if (error instanceof StorageError) throw error;
      throw fromDatabase(error, errors.keyExists);
    }
  }

  async function findObject(caller: Caller, call: Call, bucket: string, name: string): Promise<ObjectRow> {
    const [row] = await as(
      caller,
      call,
      (tx) =>
        tx<ObjectRow[]>`select id, version, metadata from storage.objects
                      where bucket_id = ${bucket} and name = ${name}`,
    );
    if (row === undefined) throw errors.noSuchKey();
    return row;
  }

  /** The object's bytes with the headers Storage's renderer sets. */
  async function serve(
    call: Call,
    object: ObjectRow,
    name: string,
    extra: HeadersInit = {},
  ): Promise<Response> {
    const file = await files.open(object.version);
    if (file === undefined) throw errors.noSuchKey();
    const size = (await file.stat()).size;
    const metadata = object.metadata ?? {};
    const headers = new Headers(extra);
    headers.set("content-type", String(metadata.mimetype ?? "application/octet-stream"));
    headers.set("cache-control", String(metadata.cacheControl ?? "no-cache"));
    headers.set("accept-ranges", "bytes");
    if (metadata.eTag !== undefined) headers.set("etag", String(metadata.eTag));
    if (metadata.lastModified !== undefined) {
      headers.set("last-modified", new Date(String(metadata.lastModified)).toUTCString());
    }
    const download = call.url.searchParams.get("download");
    if (download !== null) {
      const filename = download === "" ? name.split("/").at(-1) ?? name : download;
      headers.set("content-disposition", `attachment; filename=${encodeURIComponent(filename)};`);
    }
    // One byte range, as media players ask for (Storage answers them the same way).
    const range = byteRange(call.req.headers.get("range"), size);
    if (range === null || call.req.method === "HEAD") file.close();
    if (range === null) {
      return new Response(null, { status: 416, headers: { "content-range": `bytes */${size}` } });
    }
    headers.set("content-length", String(range === undefined ? size : range.end - range.start + 1));
    if (range !== undefined) headers.set("content-range", `bytes ${range.start}-${range.end}/${size}`);
    const status = range === undefined ? 200 : 206;
    if (call.req.method === "HEAD") return new Response(null, { status, headers });
    if (range === undefined) return new Response(file.readable, { status, headers });
    await file.seek(range.start, Deno.SeekMode.Start);
    return new Response(file.readable.pipeThrough(firstBytes(range.end - range.start + 1)), {
      status,
      headers,
    });
  }

  async function info(call: Call, caller: Caller, bucket: string, name: string): Promise<Response> {
    const [row] = await as(caller, call, (tx) =>
      tx`select json_build_object(
           'id', id, 'name', name, 'version', version, 'bucket_id', bucket_id,
           'size', metadata -> 'size', 'content_type', metadata -> 'mimetype',
           'cache_control', metadata -> 'cacheControl', 'etag', metadata -> 'eTag',
           'metadata', user_metadata, 'last_modified', updated_at, 'created_at', created_at) as info
         from storage.objects where bucket_id = ${bucket} and name = ${name}`);
    if (row === undefined) throw errors.noSuchKey();
    return Response.json(row.info);
  }

  async function list(call: Call, bucket: string): Promise<Response> {
    const caller = await authenticate(call.req);
    const body = await json<{
      prefix?: string;
      limit?: number;
      offset?: number;
      search?: string;
      sortBy?: { column?: string; order?: string };
    }>(call.req);
    if (typeof body.prefix !== "string") {
      throw errors.invalidRequest("body must have required property 'prefix'");
    }
    // As Storage: the prefix is always a folder.
    const prefix = body.prefix === "" || body.prefix.endsWith("/") ? body.prefix : `${body.prefix}/`;
    const search = body.search ?? "";
    const [row] = await as(caller, call, (tx) =>
      tx`select coalesce(json_agg(json_build_object(
           'name', s.name, 'id', s.id, 'updated_at', s.updated_at, 'created_at', s.created_at,
           'last_accessed_at', s.last_accessed_at, 'metadata', s.metadata) order by s.n), '[]') as rows
         from storage.search(${prefix}, ${bucket}, ${body.limit ?? 100},
                             ${(prefix + search).split("/").length}, ${body.offset ?? 0}, ${search},
                             ${body.sortBy?.column ?? "name"}, ${body.sortBy?.order ?? "asc"})
              with ordinality as s (name, id, updated_at, created_at, last_accessed_at, metadata, n)`);
    return Response.json(row!.rows);
  }

  async function removeMany(call: Call, bucket: string): Promise<Response> {
    const caller = await authenticate(call.req);
    const { prefixes } = await json<{ prefixes?: unknown }>(call.req);
    if (!Array.isArray(prefixes) || prefixes.length === 0 || !prefixes.every((p) => typeof p === "string")) {
      throw errors.invalidRequest("body/prefixes must be a non-empty array of strings");
    }
    const [row] = await as(
      caller,
      call,
      (tx) =>
        tx<{ rows: ({ version: string | null } & Record<string, unknown>)[] }[]>`
        with gone as (
          delete from storage.objects where bucket_id = ${bucket} and name = any(${prefixes}::text[]) returning *)
        select coalesce(json_agg(json_build_object(
          'name', name, 'bucket_id', bucket_id, 'owner', owner, 'owner_id', owner_id, 'version', version,
          'id', id, 'updated_at', updated_at, 'created_at', created_at, 'last_accessed_at', last_accessed_at,
          'metadata', metadata, 'user_metadata', user_metadata)), '[]') as rows
        from gone`,
    ).catch((error) => {
      throw fromDatabase(error, errors.keyExists);
    });
    await files.remove(row!.rows.map((object) => object.version));
    return Response.json(row!.rows);
  }

  async function removeOne(call: Call, bucket: string, name: string): Promise<Response> {
    const caller = await authenticate(call.req);
    await findObject(SERVICE, call, bucket, name);
    const gone = await as(caller, call, (tx) =>
      tx<{ version: string | null }[]>`
        delete from storage.objects where bucket_id = ${bucket} and name = ${name} returning version`)
      .catch((error) => {
        throw fromDatabase(error, errors.keyExists);
      });
    if (gone.length === 0) throw errors.accessDenied("Access denied");
    await files.remove(gone.map((row) => row.version));
    return Response.json({ message: "Successfully deleted" });
  }

  // ---- signed URLs ---------------------------------------------------------------------------------------

  function expiresIn(value: unknown): number {
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
      throw errors.invalidRequest("body/expiresIn must be an integer of at least 1");
    }
    return value;
  }

  function sign(claims: Record<string, unknown>, seconds: number): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" }).setIssuedAt(now)
      .setExpirationTime(now + seconds).sign(signingKey);
  }

  /** A signed URL's token, checked for its signature, scope, object and expiry (Storage's verifyObjectSignature). */
  async function verifySigned(token: string | null, scope: "download" | "upload", url: string) {
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token ?? "", signingKey, { algorithms: ["HS256"] }));
    } catch (error) {
      if ((error as { code?: string }).code === "ERR_JWT_EXPIRED") throw errors.expiredSignature();
      throw errors.invalidJwt(errorMessage(error));
    }
    if (payload.scope !== scope) throw errors.invalidSignature(`Token is not scoped for ${scope}`);
    if (payload.url !== url) throw errors.invalidSignature();
    return payload;
  }

  async function signUrl(call: Call, bucket: string, name: string): Promise<Response> {
    const caller = await authenticate(call.req);
    const seconds = expiresIn((await json<{ expiresIn?: unknown }>(call.req)).expiresIn);
    await findObject(caller, call, bucket, name);
    const token = await sign({ url: `${bucket}/${name}`, scope: "download" }, seconds);
    return Response.json({ signedURL: `/object/sign/${bucket}/${name}?token=${token}` });
  }

  async function signUrls(call: Call, bucket: string): Promise<Response> {
    const caller = await authenticate(call.req);
    const body = await json<{ expiresIn?: unknown; paths?: unknown }>(call.req);
    const seconds = expiresIn(body.expiresIn);
    if (!Array.isArray(body.paths) || body.paths.length === 0) {
      throw errors.invalidRequest("body/paths must be a non-empty array");
    }
    const paths = body.paths.map(String);
    const found = new Set(
      (await as(caller, call, (tx) =>
        tx<{ name: string }[]>`select name from storage.objects
                               where bucket_id = ${bucket} and name = any(${paths}::text[])`))
        .map((row) => row.name),
    );
    return Response.json(
      await Promise.all(paths.map(async (path) =>
        found.has(path)
          ? {
            error: null,
            path,
            signedURL: `/object/sign/${bucket}/${path}?token=${await sign(
              { url: `${bucket}/${path}`, scope: "download" },
              seconds,
            )}`,
          }
          : {
            error: "Either the object does not exist or you do not have access to it",
            path,
            signedURL: null,
          }
      )),
    );
  }

  async function getSigned(call: Call, bucket: string, name: string): Promise<Response> {
    const payload = await verifySigned(call.url.searchParams.get("token"), "download", `${bucket}/${name}`);
    const object = await findObject(SERVICE, call, bucket, name);
    return await serve(call, object, name, { expires: new Date(Number(payload.exp) * 1000).toUTCString() });
  }

  async function signUpload(call: Call, bucket: string, name: string): Promise<Response> {
    const caller = await authenticate(call.req);
    validKey(name);
    await bucketFor(call, bucket);
    const upsert = call.req.headers.get("x-upsert") === "true";
    const owner = caller.claims.sub;
    const length = call.req.headers.get("content-length");
    await tryAndRollBack(caller, call, (tx) =>
      write(tx, {
        bucket_id: bucket,
        name,
        owner: isUuid(owner) ? owner : null,
        owner_id: owner ?? null,
        version: "1",
        metadata: { mimetype: call.req.headers.get("content-type"), contentLength: length && Number(length) },
      }, upsert));
    const token = await sign(
      { owner, url: `${bucket}/${name}`, upsert, scope: "upload" },
      UPLOAD_URL_SECONDS,
    );
    return Response.json({ url: `/object/upload/sign/${bucket}/${name}?token=${token}`, token });
  }

  async function uploadSigned(call: Call, bucket: string, name: string): Promise<Response> {
    const payload = await verifySigned(call.url.searchParams.get("token"), "upload", `${bucket}/${name}`);
    const owner = typeof payload.owner === "string" ? payload.owner : undefined;
    const { id, key } = await upload(
      call,
      { bucket, name, owner, upsert: payload.upsert === true },
      undefined,
    );
    return Response.json({ Key: key, Id: id });
  }

  // ---- routing -------------------------------------------------------------------------------------------

  /** [method, path pattern, Storage's operation name, handler]; the first match wins. */
  type Route = [string, RegExp, string, (call: Call, ...params: string[]) => Promise<Response>];
  const object = async (call: Call, bucket: string, name: string, upsert: boolean) => {
    const caller = await authenticate(call.req);
    const upserting = upsert || call.req.headers.get("x-upsert") === "true";
    const { id, key } = await upload(
      call,
      { bucket, name, owner: caller.claims.sub, upsert: upserting },
      caller,
    );
    return Response.json({ Id: id, Key: key });
  };
  const download = async (call: Call, bucket: string, name: string) =>
    await serve(call, await findObject(await authenticate(call.req), call, bucket, name), name);
  const routes: Route[] = [
    ["GET", /^\/bucket\/?$/, "storage.bucket.list", listBuckets],
    ["POST", /^\/bucket\/?$/, "storage.bucket.create", createBucket],
    ["POST", /^\/bucket\/([^/]+)\/empty$/, "storage.bucket.empty", emptyBucket],
    ["GET", /^\/bucket\/([^/]+)$/, "storage.bucket.get", getBucket],
    ["PUT", /^\/bucket\/([^/]+)$/, "storage.bucket.update", updateBucket],
    ["DELETE", /^\/bucket\/([^/]+)$/, "storage.bucket.delete", deleteBucket],
    ["POST", /^\/object\/(move|copy)$/, "storage.object.move", (_call, what) => {
      throw errors.notSupported(`Object ${what}`);
    }],
    ["POST", /^\/object\/list\/([^/]+)$/, "storage.object.list", list],
    ["POST", /^\/object\/sign\/([^/]+)$/, "storage.object.sign_many", signUrls],
    ["POST", /^\/object\/sign\/([^/]+)\/(.+)$/, "storage.object.sign", signUrl],
    ["GET", /^\/object\/sign\/([^/]+)\/(.+)$/, "storage.object.get_signed", getSigned],
    ["POST", /^\/object\/upload\/sign\/([^/]+)\/(.+)$/, "storage.object.sign_upload_url", signUpload],
    ["PUT", /^\/object\/upload\/sign\/([^/]+)\/(.+)$/, "storage.object.upload_signed", uploadSigned],
    ["GET", /^\/object\/public\/([^/]+)\/(.+)$/, "storage.object.get_public", async (call, bucket, name) => {
      if (!(await bucketFor(call, bucket)).public) throw errors.noSuchBucket();
      return await serve(call, await findObject(SERVICE, call, bucket, name), name);
    }],
    [
      "GET",
      /^\/object\/info\/public\/([^/]+)\/(.+)$/,
      "storage.object.info_public",
      async (call, bucket, name) => {
        if (!(await bucketFor(call, bucket)).public) throw errors.noSuchBucket();
        return await info(call, SERVICE, bucket, name);
      },
    ],
    [
      "GET",
      /^\/object\/info\/(?:authenticated\/)?([^/]+)\/(.+)$/,
      "object.get_authenticated_info",
      async (call, bucket, name) => await info(call, await authenticate(call.req), bucket, name),
    ],
    ["GET", /^\/object\/(?:authenticated\/)?([^/]+)\/(.+)$/, "storage.object.get_authenticated", download],
    [
      "POST",
      /^\/object\/([^/]+)\/(.+)$/,
      "storage.object.upload",
      (call, bucket, name) => object(call, bucket, name, false),
    ],
    [
      "PUT",
      /^\/object\/([^/]+)\/(.+)$/,
      "storage.object.upload_update",
      (call, bucket, name) => object(call, bucket, name, true),
    ],
    ["DELETE", /^\/object\/([^/]+)$/, "storage.object.delete_many", removeMany],
    ["DELETE", /^\/object\/([^/]+)\/(.+)$/, "storage.object.delete", removeOne],
  ];

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    if (!url.pathname.startsWith(`${PREFIX}/`)) {
      return errors.routeNotFound(req.method, url.pathname).response();
    }
    const path = url.pathname.slice(PREFIX.length);
    // HEAD is GET without the body, as Fastify serves it.
    const method = req.method === "HEAD" ? "GET" : req.method;
    try {
      for (const [routeMethod, pattern, operation, run] of routes) {
        const match = routeMethod === method ? pattern.exec(path) : null;
        if (match === null) continue;
        const params = match.slice(1).map((part) => {
          try {
            return decodeURIComponent(part);
          } catch {
            throw errors.invalidRequest(`malformed path ${path}`);
          }
        });
        return await run({ req, url, path, operation }, ...params);
      }
      return errors.routeNotFound(req.method, url.pathname).response();
    } catch (error) {
      if (error instanceof StorageError) return error.response();
      log("error", { function: "storage", msg: "request failed", path, error: errorMessage(error) });
      return errors.database(errorMessage(error)).response();
    }
  }

  return {
    handle,
    async close() {
      await sql.end();
    },
  };
}

/**
 * The range a `Range: bytes=…` header asks for within `size` bytes: undefined for the whole object (no header,
 * several ranges, another unit), null when it cannot be satisfied.
 */
function byteRange(header: string | null, size: number): { start: number; end: number } | null | undefined {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header ?? "");
  if (match === null || (match[1] === "" && match[2] === "")) return undefined;
  const [start, end] = match[1] === ""
    ? [Math.max(0, size - Number(match[2])), size - 1]
    : [Number(match[1]), match[2] === "" ? size - 1 : Math.min(Number(match[2]), size - 1)];
  return start > end || start >= size ? null : { start, end };
}

/** Passes on the first `count` bytes of a stream, then ends it (cancelling the rest). */
function firstBytes(count: number): TransformStream<Uint8Array, Uint8Array> {
  let left = count;
  return new TransformStream({
    transform(chunk, controller) {
      controller.enqueue(chunk.subarray(0, left));
      left -= Math.min(left, chunk.length);
      if (left === 0) controller.terminate();
    },
  });
}

function isUuid(value: unknown): value is string {
  return typeof value === "string" &&
    /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value);
}

/**
 * `type/subtype` against a bucket's allowed types, where `type/*` allows the whole type. As in Storage, the
 * whole header value is compared, parameters included: `text/plain;charset=UTF-8` does not match `text/plain`.
 */
function mimeAllowed(mimeType: string, allowed: string[]): boolean {
  const [type, subtype] = mimeType.split("/");
  return subtype !== undefined &&
    allowed.some((entry) => {
      const [allowedType, allowedSubtype] = entry.split("/");
      return allowedType === type && (allowedSubtype === "*" || allowedSubtype === subtype);
    });
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(text);
    return typeof value === "object" && value !== null ? value : undefined;
  } catch {
    return undefined;
  }
}

function decodeBase64(text: string): Uint8Array {
  try {
    return Uint8Array.from(atob(text), (char) => char.charCodeAt(0));
  } catch {
    throw errors.invalidRequest("x-metadata is not base64");
  }
}
