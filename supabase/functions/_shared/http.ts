// HTTP plumbing shared by every function: JSON responses, the error envelope, CORS, request ids and the
// one-log-line-per-request wrapper. Handlers throw HttpError; everything else becomes a logged 500.
import postgres from "postgres";
import { z } from "zod";
import { ConfigError, loadEnv } from "./env.ts";
import { errorMessage, log } from "./log.ts";

/** The JSON error body of every failed request: `{ error: { code, message, details? } }`. */
export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}

/** An error with an HTTP status and a stable machine-readable code, answered as the error envelope. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly headers: HeadersInit = {},
  ) {
    super(message);
    this.name = "HttpError";
  }
}

/** A JSON response. */
export function json(body: unknown, status = 200, headers: HeadersInit = {}): Response {
  const merged = new Headers(headers);
  merged.set("content-type", "application/json; charset=utf-8");
  return new Response(JSON.stringify(body), { status, headers: merged });
}

/** The error envelope as a response. */
export function errorResponse(error: HttpError): Response {
  const body: ErrorBody = { error: { code: error.code, message: error.message } };
  if (error.details !== undefined) body.error.details = error.details;
  return json(body, error.status, error.headers);
}

const corsEnv = z.object({
  // Comma-separated origins allowed to call from a browser, or * for any.
  CORS_ALLOWED_ORIGINS: z.string().default("*"),
});

const CORS_ALLOW_HEADERS =
  "authorization, x-client-info, apikey, content-type, x-request-id, idempotency-key";
const CORS_ALLOW_METHODS = "GET, POST, PATCH, DELETE, OPTIONS";

/** CORS headers for this request's Origin, or null when the origin is not allowed. */
export function corsHeaders(req: Request, allowed: string): Record<string, string> | null {
  const origin = req.headers.get("origin");
  const list = allowed.split(",").map((entry) => entry.trim()).filter(Boolean);
  const headers: Record<string, string> = {
    "access-control-allow-headers": CORS_ALLOW_HEADERS,
    "access-control-allow-methods": CORS_ALLOW_METHODS,
    "access-control-expose-headers": "x-request-id, retry-after",
    "access-control-max-age": "86400",
  };
  if (list.includes("*")) return { ...headers, "access-control-allow-origin": "*" };
  if (origin === null) return headers;
  if (!list.includes(origin)) return null;
  return { ...headers, "access-control-allow-origin": origin, vary: "Origin" };
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The caller's x-request-id when it is a sane token, else a fresh UUID. */
export function requestId(req: Request): string {
  const given = req.headers.get("x-request-id");
  return given !== null && REQUEST_ID.test(given) ? given : crypto.randomUUID();
}

/** What a handler receives besides the request. */
export interface Context<E> {
  env: E;
  requestId: string;
  /** The path below the function's own name: `/health/ready` → `/ready`, `/health` → `/`. */
  subpath: string;
  /** Extra fields for this request's log line. */
  logFields: Record<string, unknown>;
}

export interface FunctionSpec<S extends z.ZodObject> {
  name: string;
  env: S;
  handle: (req: Request, ctx: Context<z.infer<S>>) => Promise<Response>;
}

const GATEWAY_PREFIX = "/functions/v1";

/**
 * The path below `/<name>`: Supabase routes `/functions/v1/<name>/x` to the function as `/<name>/x`; a gateway
 * that passes the request on unchanged (the local one: no second Request around the body) keeps the prefix.
 */
export function subpathOf(url: URL, name: string): string {
  const unprefixed = url.pathname.startsWith(`${GATEWAY_PREFIX}/`)
    ? url.pathname.slice(GATEWAY_PREFIX.length)
    : url.pathname;
  const prefix = `/${name}`;
  const path = unprefixed.startsWith(prefix) ? unprefixed.slice(prefix.length) : unprefixed;
  return path === "" ? "/" : path;
}

/**
 * Wraps a function's logic into a `Deno.serve` handler: request id, CORS (preflight included), env
 * validation (a bad variable → 500 naming it), the error envelope, and one JSON log line per request.
 */
export function createHandler<S extends z.ZodObject>(
  spec: FunctionSpec<S>,
): (req: Request) => Promise<Response> {
  return async (req) => {
    const started = performance.now();
    const id = requestId(req);
    const url = new URL(req.url);
    const logFields: Record<string, unknown> = {};
    let response: Response;
    let failure: HttpError | undefined;
    let cause: unknown;
    let cors: Record<string, string> | null = {};
    try {
      cors = corsHeaders(req, loadEnv(corsEnv).CORS_ALLOWED_ORIGINS);
      if (cors === null) throw new HttpError(403, "origin_not_allowed", "this origin may not call wabase");
      if (req.method === "OPTIONS") {
        response = new Response(null, { status: 204 });
      } else {
        const env = loadEnv(spec.env);
        response = await spec.handle(req, {
          env,
          requestId: id,
          subpath: subpathOf(url, spec.name),
          logFields,
        });
      }
    } catch (error) {
      cause = error;
      failure = asHttpError(error);
      response = errorResponse(failure);
    }
    const extra = { ...cors, "x-request-id": id };
    const final = withHeaders(response, extra);
    log(final.status >= 500 ? "error" : "info", {
      function: spec.name,
      request_id: id,
      method: req.method,
      path: url.pathname,
      status: final.status,
      outcome: final.status < 400 ? "ok" : final.status < 500 ? "rejected" : "failed",
      duration_ms: Math.round((performance.now() - started) * 10) / 10,
      ...logFields,
      ...(failure === undefined ? {} : { error_code: failure.code, error: errorMessage(cause) }),
    });
    return final;
  };
}

/**
 * `response` with `extra` headers set: in place when its headers may change (every response built here), so
 * a body built from a string is sent as is; otherwise (a fetched response's headers are immutable) a copy
 * around the same body.
 */
function withHeaders(response: Response, extra: Record<string, string>): Response {
  try {
    for (const [key, value] of Object.entries(extra)) response.headers.set(key, value);
    return response;
  } catch {
    const headers = new Headers(response.headers);
    for (const [key, value] of Object.entries(extra)) headers.set(key, value);
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
  }
}

// Expected refusals raised by wabase's SQL functions, by SQLSTATE (see the migrations); the HINT, when set,
// is the machine-readable error code.
const STATUS_BY_SQLSTATE: Record<string, [number, string]> = {
  "22023": [400, "invalid_request"],
  "22P02": [400, "invalid_request"],
  "P0002": [404, "not_found"],
  "PT403": [403, "forbidden"],
  "PT404": [404, "not_found"],
  "P0409": [409, "conflict"],
  "P0410": [409, "stale_fence"],
  "P0422": [422, "unprocessable"],
  "P0423": [409, "bot_paused"],
  "40001": [409, "version_conflict"],
};

/** Maps any thrown value to the HttpError answered for it; internals never leak into a 500's message. */
export function asHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof ConfigError) return new HttpError(500, "config_error", error.message);
  if (error instanceof postgres.PostgresError && error.code in STATUS_BY_SQLSTATE) {
    const [status, code] = STATUS_BY_SQLSTATE[error.code]!;
    return new HttpError(status, error.hint || code, error.message);
  }
  return new HttpError(500, "internal_error", "internal error; see the function logs for this request id");
}

/** Reads a JSON body of at most `maxBytes` and validates it; a bad one is a 400 with zod's issues and paths. */
export async function readJson<S extends z.ZodType>(
  req: Request,
  schema: S,
  maxBytes = 64 * 1024,
): Promise<z.infer<S>> {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(await readBody(req, maxBytes)));
  } catch (error) {
    if (error instanceof HttpError) throw error;
    throw new HttpError(400, "invalid_json", "the request body is not valid JSON");
  }
  const result = schema.safeParse(body);
  if (!result.success) {
    const details = result.error.issues.map((issue) => ({
      path: issue.path.join("."),
      message: issue.message,
    }));
    throw new HttpError(
      400,
      "invalid_request",
      "the request body does not match the expected shape",
      details,
    );
  }
  return result.data;
}

/**
 * The request body, refusing more than `maxBytes` with 413 whether or not Content-Length announced it, without
 * buffering more than the limit.
 */
export async function readBody(req: Request, maxBytes: number): Promise<Uint8Array<ArrayBuffer>> {
  const tooLarge = () => new HttpError(413, "payload_too_large", `the body exceeds ${maxBytes} bytes`);
  const length = req.headers.get("content-length");
  const declared = Number(length ?? "0");
  if (declared > maxBytes) throw tooLarge();
  if (req.body === null) return new Uint8Array();
  // A declared length is enforced by the HTTP layer (a longer body is a protocol error): read it in one call,
  // not chunk by chunk through the stream. Without one, count while reading.
  if (length !== null && /^\d+$/.test(length)) {
    const body = new Uint8Array(await req.arrayBuffer());
    if (body.byteLength > maxBytes) throw tooLarge();
    return body;
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of req.body) {
    size += chunk.byteLength;
    if (size > maxBytes) throw tooLarge();
    chunks.push(chunk);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}
