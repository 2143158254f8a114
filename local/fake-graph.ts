// A fake of the WhatsApp Cloud API's send endpoint, POST /v{X.Y}/{phone_number_id}/messages, for tests and
// `npm start`. It validates like Meta, answers Meta's exact shapes (WHATSAPP.md §2.3, §2.4, §3.1) and injects
// the faults a sender must survive: Graph errors, throttling, slow or lost answers, dropped connections.
//
// It speaks HTTP/1.1 over a raw TCP listener rather than Deno.serve: Deno.serve always answers (a thrown
// handler becomes a 500), so it cannot drop a connection, and its shutdown waits for a hung handler. Here a
// dropped or hung request ends as the client would see it from Meta: a connection closed with no answer.
import { type FakeMedia, startFakeMedia } from "./fake-media.ts";
import { createLimiter, type FakeLimits } from "./fake-limits.ts";
import { type FakeTemplate, templatesPage } from "./fake-templates.ts";
import { newWamid } from "./testing/whatsapp-fixtures.ts";

// ---------------------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 server, shared with demo-agent.ts.

/** A handler's verdict for one request: an answer, or closing the connection without one. */
export type Outcome = Response | "drop";

/** Answers one request; `closing` aborts when the server starts closing, so waits must end then. */
export type Http1Handler = (req: Request, closing: AbortSignal) => Promise<Outcome>;

export interface Http1Server {
  /** `http://host:port`, no trailing slash. */
  url: string;
  /** Closes the listener and every connection (pending requests end unanswered); resolves when all ended. */
  close: () => Promise<void>;
}

const HEAD_LIMIT = 64 * 1024;
const BODY_LIMIT = 4 * 1024 * 1024;
const CRLF = new Uint8Array([13, 10]);
const CRLFCRLF = new Uint8Array([13, 10, 13, 10]);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A request so malformed it is answered at the HTTP level, before any handler sees it. */
class MalformedRequest extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
}

/** Buffered reads from a connection. */
class ConnReader {
  #buffer: Uint8Array = new Uint8Array(0);

  constructor(private readonly conn: Deno.Conn) {}

  /** Reads more bytes into the buffer; false at end of stream. */
  async #fill(): Promise<boolean> {
    const chunk = new Uint8Array(16 * 1024);
    const n = await this.conn.read(chunk);
    if (n === null) return false;
    this.#buffer = concat(this.#buffer, chunk.subarray(0, n));
    return true;
  }

  /** The bytes before `delimiter` (which is consumed), or null when the stream ends before any byte. */
  async readUntil(delimiter: Uint8Array, limit: number): Promise<Uint8Array | null> {
    for (;;) {
      const at = indexOf(this.#buffer, delimiter);
      if (at >= 0) {
        const found = this.#buffer.slice(0, at);
        this.#buffer = this.#buffer.slice(at + delimiter.length);
        return found;
      }
      if (this.#buffer.length > limit) throw new MalformedRequest(431, "request head too large");
      if (!(await this.#fill())) {
        if (this.#buffer.length === 0) return null;
        throw new MalformedRequest(400, "connection ended inside a request");
      }
    }
  }

  async readExactly(length: number): Promise<Uint8Array> {
    while (this.#buffer.length < length) {
      if (!(await this.#fill())) throw new MalformedRequest(400, "connection ended inside a body");
    }
    const found = this.#buffer.slice(0, length);
    this.#buffer = this.#buffer.slice(length);
    return found;
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}

async function readChunkedBody(reader: ConnReader): Promise<Uint8Array> {
  let body: Uint8Array = new Uint8Array(0);
  for (;;) {
    const line = await reader.readUntil(CRLF, HEAD_LIMIT);
    const size = parseInt(decoder.decode(line ?? new Uint8Array()).split(";")[0] ?? "", 16);
    if (!Number.isFinite(size) || size < 0) throw new MalformedRequest(400, "bad chunk size");
    if (size === 0) {
      // Trailers, if any, end with an empty line.
      while ((await reader.readUntil(CRLF, HEAD_LIMIT))?.length) { /* skip trailer */ }
      return body;
    }
    if (body.length + size > BODY_LIMIT) throw new MalformedRequest(413, "body too large");
    body = concat(body, await reader.readExactly(size));
    await reader.readExactly(2);
  }
}

interface ParsedRequest {
  request: Request;
  keepAlive: boolean;
}

/** Reads one request off the connection; null when the peer closed an idle connection. */
async function readRequest(reader: ConnReader, conn: Deno.Conn, base: string): Promise<ParsedRequest | null> {
  const head = await reader.readUntil(CRLFCRLF, HEAD_LIMIT);
  if (head === null) return null;
  const [requestLine = "", ...headerLines] = decoder.decode(head).split("\r\n");
  const [method, target, version] = requestLine.split(" ");
  if (method === undefined || target === undefined || !version?.startsWith("HTTP/1.")) {
    throw new MalformedRequest(400, "bad request line");
  }
  const headers = new Headers();
  for (const line of headerLines) {
    const colon = line.indexOf(":");
    if (colon <= 0) throw new MalformedRequest(400, "bad header line");
    try {
      headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    } catch {
      throw new MalformedRequest(400, "bad header");
    }
  }
  // curl sends Expect: 100-continue for bodies over 1 KiB and waits a second for this before sending them.
  if (headers.get("expect")?.toLowerCase() === "100-continue") {
    await writeAll(conn, encoder.encode("HTTP/1.1 100 Continue\r\n\r\n"));
  }
  let body: Uint8Array = new Uint8Array(0);
  if (headers.get("transfer-encoding")?.toLowerCase().includes("chunked")) {
    body = await readChunkedBody(reader);
  } else if (headers.has("content-length")) {
    const length = Number(headers.get("content-length"));
    if (!Number.isSafeInteger(length) || length < 0) throw new MalformedRequest(400, "bad content-length");
    if (length > BODY_LIMIT) throw new MalformedRequest(413, "body too large");
    body = await reader.readExactly(length);
  }
  const connection = headers.get("connection")?.toLowerCase() ?? "";
  const keepAlive = version === "HTTP/1.1"
    ? !connection.includes("close")
    : connection.includes("keep-alive");
  const withBody = method !== "GET" && method !== "HEAD" && body.length > 0;
  let url: URL;
  try {
    url = new URL(target, base);
  } catch {
    throw new MalformedRequest(400, "bad request target");
  }
  const request = new Request(url, { method, headers, body: withBody ? body.slice() : undefined });
  return { request, keepAlive };
}

const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Content Too Large",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

async function writeResponse(conn: Deno.Conn, response: Response, keepAlive: boolean): Promise<void> {
  const body = new Uint8Array(await response.arrayBuffer());
  let head = `HTTP/1.1 ${response.status} ${REASONS[response.status] ?? "Status"}\r\n`;
  for (const [name, value] of response.headers) {
    if (!["content-length", "transfer-encoding", "connection"].includes(name)) {
      head += `${name}: ${value}\r\n`;
    }
  }
  head += `content-length: ${body.length}\r\ndate: ${new Date().toUTCString()}\r\n`;
  head += `connection: ${keepAlive ? "keep-alive" : "close"}\r\n\r\n`;
  await writeAll(conn, concat(encoder.encode(head), body));
}

function closeQuietly(closer: { close: () => void }): void {
  try {
    closer.close();
  } catch {
    // Already closed: by the peer, by close(), or by a drop.
  }
}

export interface Http1Options {
  hostname: string;
  port: number;
  /**
   * Keep connections open between requests (default false: answer `connection: close`). Off by default so a
   * dropped connection always reaches the client as an error: Deno's fetch silently re-sends a request once,
   * on a new connection, when a *reused* keep-alive connection closes without an answer.
   */
  keepAlive?: boolean;
}

/** Serves `handler` over HTTP/1.1 (optional keep-alive, chunked bodies, 100-continue) on a TCP listener. */
export function serveHttp1(options: Http1Options, handler: Http1Handler): Http1Server {
  const listener = Deno.listen({ hostname: options.hostname, port: options.port, transport: "tcp" });
  const url = `http://${listener.addr.hostname}:${listener.addr.port}`;
  const closing = new AbortController();
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();

  const serveConnection = async (conn: Deno.Conn): Promise<void> => {
    const reader = new ConnReader(conn);
    try {
      while (!closing.signal.aborted) {
        let parsed: ParsedRequest | null;
        try {
          parsed = await readRequest(reader, conn, url);
        } catch (error) {
          if (!(error instanceof MalformedRequest)) throw error;
          await writeResponse(conn, new Response(error.message, { status: error.status }), false);
          return;
        }
        if (parsed === null) return;
        let outcome: Outcome;
        try {
          outcome = await handler(parsed.request, closing.signal);
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          outcome = Response.json({ error: { message: `fake server bug: ${message}` } }, { status: 500 });
        }
        // A request still waiting when close() began ends unanswered, like one cut off by a restart.
        if (outcome === "drop" || closing.signal.aborted) return;
        const keepAlive = parsed.keepAlive && options.keepAlive === true;
        await writeResponse(conn, outcome, keepAlive);
        if (!keepAlive) return;
      }
    } catch {
      // The peer went away (e.g. a client timeout) or close() closed the socket: nobody to answer.
    } finally {
      conns.delete(conn);
      closeQuietly(conn);
    }
  };

  const accepting = (async () => {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return; // The listener was closed.
      }
      conns.add(conn);
      const task = serveConnection(conn);
      tasks.add(task);
      task.finally(() => tasks.delete(task));
    }
  })();

  let closed: Promise<void> | undefined;
  return {
    url,
    close: () => {
      closed ??= (async () => {
        closing.abort();
        closeQuietly(listener);
        await accepting;
        for (const conn of conns) closeQuietly(conn);
        await Promise.all(tasks);
      })();
      return closed;
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Helpers shared with demo-agent.ts.

/** Resolves once `predicate()` holds, checking every 10 ms; rejects after `timeoutMs` naming the predicate. */
export async function waitFor(predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!predicate()) {
    if (performance.now() >= deadline) {
      throw new Error(`waitFor: condition still false after ${timeoutMs} ms: ${predicate.toString()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Waits `ms`, or less if `signal` aborts first (the server is closing); true when the full wait elapsed. */
export function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Resolves when `signal` aborts (at once if it already has). */
export function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
}

/** The body parsed as JSON; the raw text when it is not JSON; null when empty. */
export function parseBody(text: string): unknown {
  if (text === "") return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------------------------------------------------
// The fake Graph API.

/** A behaviour applied to one upcoming valid request (see FakeGraph.enqueue). */
export type Fault =
  /** Answers the Graph error envelope with this HTTP status and code (and a Retry-After header if given). */
  | {
    kind: "error";
    status: number;
    code: number;
    /** Verbatim `error.message`; default "(#code) <Meta's title for the code>". */
    message?: string;
    /** `error.error_data.details`; default the code's title. */
    details?: string;
    /** `error.error_subcode` (deprecated by Meta, still seen). */
    subcode?: number;
    retryAfterSeconds?: number;
  }
  /** Waits `ms`, then succeeds. */
  | { kind: "delay"; ms: number }
  /** Executes the request at once (it is in `sent`), then waits `ms` before answering 200. */
  | { kind: "accept_then_delay"; ms: number }
  /** Never answers; the connection closes unanswered when the fake closes. */
  | { kind: "hang" }
  /** HTTP 400, code 130429 "Rate limit hit", Retry-After: 1: Meta throttles with 400, not 429. */
  | { kind: "rate_limit" }
  /** Closes the connection without answering; the request is not executed. */
  | { kind: "drop_connection" }
  /**
   * Executes the request, then a gateway in front of the API answers this 5xx with its own HTML page, no Graph
   * error body: what a proxy says when the upstream timed out after the request had left.
   */
  | { kind: "gateway_error"; status: number };

/** A request the fake accepted (answered 200 for, or will, for accept_then_delay). */
export interface SentMessage {
  wamid: string;
  phoneNumberId: string;
  /** The parsed JSON body, as sent. */
  body: Record<string, unknown>;
  at: Date;
}

/**
 * Any request that reached the fake, recorded on arrival (before an injected delay); valid typing indicators
 * are kept apart (`typingRequests`), so counts of sends and receipts do not depend on them.
 */
export interface ReceivedRequest {
  /** null when the path is not a messages endpoint. */
  phoneNumberId: string | null;
  method: string;
  path: string;
  /** The parsed JSON body; the raw text if it is not JSON; null if empty. */
  body: unknown;
  /** The status answered or about to be (after a delay); null for a hang or a dropped connection. */
  status: number | null;
  at: Date;
}

export interface FakeGraph {
  /** Base URL without a trailing slash; append `/v25.0/{phone_number_id}/messages`. */
  url: string;
  accessToken: string;
  sent: SentMessage[];
  received: ReceivedRequest[];
  /** Message ids of accepted mark-as-read requests, in order. */
  readReceipts: string[];
  /** Requests refused by the `limits` (not by injected faults), by code: 130429 and 131056. */
  throttled: Record<130429 | 131056, number>;
  /** Message ids of accepted mark-as-read requests that carried the typing indicator (§2.4), in order. */
  typingIndicators: string[];
  /** Message ids of every valid typing indicator request, accepted or refused, in order. */
  typingRequests: string[];
  /** Queues Graph errors for the next typing indicators, one each; they never meet the `enqueue` queue. */
  enqueueTyping: (...faults: Extract<Fault, { kind: "error" }>[]) => void;
  /** Queues behaviours for the next valid requests, one each, in order; with none queued, requests succeed. */
  enqueue: (...faults: Fault[]) => void;
  waitFor: (predicate: () => boolean, timeoutMs?: number) => Promise<void>;
  /** GET /{media-id}, its download host and POST /{phone-number-id}/media (local/fake-media.ts). */
  media: FakeMedia;
  /** Clears sent, received, readReceipts, the typing lists and the fault queues (emptied in place). */
  reset: () => void;
  close: () => Promise<void>;
}

export interface FakeGraphOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  hostname?: string;
  accessToken?: string;
  /**
   * Keep-alive connections, as Meta has (default false). With it on, a `drop_connection` on a reused
   * connection is re-sent once by Deno's fetch on a new connection, which meets the next fault (or succeeds)
   * instead of failing; see Http1Options.keepAlive.
   */
  keepAlive?: boolean;
  /** Called for every message the fake accepts (the local stack logs them, so the demo is visible). */
  onSent?: (message: SentMessage) => void;
  /**
   * The behaviour of a valid request when no fault is queued (default: succeed at once); benchmarks use it
   * for a fixed latency or a random fault rate.
   */
  fault?: () => Fault | undefined;
  /** The media download URLs' clock, epoch ms (default Date.now): they expire 5 minutes after issue. */
  clock?: () => number;
  /** Enforce the number's throughput and the pair rate as Meta does (see fake-limits.ts); default: none. */
  limits?: FakeLimits;
  /** Templates by WABA id, served paged by GET /{waba-id}/message_templates (the object may change). */
  templates?: Record<string, FakeTemplate[]>;
}

export const DEFAULT_ACCESS_TOKEN = "local-whatsapp-access-token";

const MESSAGE_TYPES = [
  "text",
  "image",
  "audio",
  "video",
  "document",
  "sticker",
  "location",
  "contacts",
  "interactive",
  "template",
  "reaction",
] as const;
type MessageType = typeof MESSAGE_TYPES[number];
const MEDIA_TYPES: readonly string[] = ["image", "audio", "video", "document", "sticker"];

const MESSAGES_PATH = /^\/v\d+\.\d+\/([^/]+)\/messages\/?$/;
const MEDIA_ID_PATH = /^\/v\d+\.\d+\/([^/]+)\/?$/;
const MEDIA_UPLOAD_PATH = /^\/v\d+\.\d+\/(\d+)\/media\/?$/;
const TEMPLATES_PATH = /^\/v\d+\.\d+\/(\d+)\/message_templates\/?$/;
// `+`, spaces, dashes and parentheses are accepted by Meta (WHATSAPP.md §2.1); wa_id keeps the digits.
const PHONE = /^\+?[\d\s()-]+$/;
// ISO country code, optional ENT (parent BSUID), then up to 128 alphanumerics (§1.10).
const BSUID = /^[A-Z]{2}(\.ENT)?\.[A-Za-z0-9]{1,128}$/;

/** Meta's titles for the codes a fault is likely to use, for the default `(#code) Title` message. */
const TITLES: Record<number, string> = {
  1: "API Unknown",
  2: "API Service",
  4: "API Too Many Calls",
  10: "Permission Denied",
  100: "Invalid parameter",
  130429: "Rate limit hit",
  131000: "Something went wrong",
  131005: "Access denied",
  131008: "Required parameter is missing",
  131009: "Parameter value is not valid",
  131016: "Service unavailable",
  131026: "Message undeliverable",
  131047: "Re-engagement message",
  131048: "Spam rate limit hit",
  131051: "Unsupported message type",
  131056: "(Business Account, Consumer Account) pair rate limit hit",
  131057: "Account in maintenance mode",
  131062: "BSUID recipient not supported for this message",
  132000: "Number of parameters does not match the expected number of params",
  132001: "Template name does not exist in the translation",
  133004: "Server temporarily unavailable",
  80007: "Rate limit issues",
};

/** A request refused with the Graph error envelope. */
class GraphError extends Error {
  constructor(
    readonly status: number,
    readonly code: number,
    message: string,
    readonly details?: string,
    readonly extra: { subcode?: number; headers?: HeadersInit } = {},
  ) {
    super(message);
  }
}

function titled(code: number, title = TITLES[code] ?? "Injected error"): string {
  return `(#${code}) ${title}`;
}

const invalid = (details: string) => new GraphError(400, 100, titled(100), details);
const missing = (details: string) => new GraphError(400, 131008, titled(131008), details);
const notValid = (details: string) => new GraphError(400, 131009, titled(131009), details);

function fbtraceId(): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
  return Array.from(crypto.getRandomValues(new Uint8Array(17)), (byte) => alphabet[byte % 64]).join("");
}

function graphErrorResponse(error: GraphError): Response {
  const body = {
    error: {
      message: error.message,
      type: "OAuthException",
      code: error.code,
      ...(error.extra.subcode === undefined ? {} : { error_subcode: error.extra.subcode }),
      ...(error.details === undefined
        ? {}
        : { error_data: { messaging_product: "whatsapp", details: error.details } }),
      fbtrace_id: fbtraceId(),
    },
  };
  const headers = new Headers(error.extra.headers);
  return Response.json(body, { status: error.status, headers });
}

function faultError(fault: Extract<Fault, { kind: "error" }>): GraphError {
  const headers: Record<string, string> = {};
  if (fault.retryAfterSeconds !== undefined) headers["retry-after"] = String(fault.retryAfterSeconds);
  const title = TITLES[fault.code] ?? "Injected error";
  return new GraphError(
    fault.status,
    fault.code,
    fault.message ?? titled(fault.code),
    fault.details ?? title,
    {
      subcode: fault.subcode,
      headers,
    },
  );
}

function nonEmptyString(value: unknown): value is string {
  return typeof value === "string" && value.length > 0;
}

/** What the success answer needs to know about a valid send. */
interface ValidSend {
  kind: "send";
  contact: Record<string, string>;
  template: boolean;
}

interface ValidRead {
  kind: "read";
  messageId: string;
  typing: boolean;
}

function validateTypeObject(type: MessageType, content: unknown): void {
  if (type === "contacts") {
    if (!Array.isArray(content) || content.length === 0) throw missing("The parameter contacts is required.");
    return;
  }
  if (!isRecord(content)) throw missing(`The parameter ${type} is required.`);
  switch (type) {
    case "text": {
      if (typeof content.body !== "string") throw missing("The parameter text['body'] is required.");
      const length = [...content.body].length;
      if (length < 1 || length > 4096) {
        throw notValid(`Param text['body'] must be between 1 and 4096 characters long, got ${length}.`);
      }
      return;
    }
    case "template": {
      if (!nonEmptyString(content.name)) throw missing("The parameter template['name'] is required.");
      const language = content.language;
      if (!isRecord(language) || !nonEmptyString(language.code)) {
        throw missing("The parameter template['language']['code'] is required.");
      }
      if (content.components !== undefined && !Array.isArray(content.components)) {
        throw invalid("Param template['components'] must be an array.");
      }
      return;
    }
    case "reaction":
      if (!nonEmptyString(content.message_id)) {
        throw missing("The parameter reaction['message_id'] is required.");
      }
      // An empty emoji removes the reaction (§2.2), so only its absence is an error.
      if (typeof content.emoji !== "string") throw missing("The parameter reaction['emoji'] is required.");
      return;
    case "location":
      for (const field of ["latitude", "longitude"]) {
        const value = content[field];
        if (value === undefined) throw missing(`The parameter location['${field}'] is required.`);
        if (!Number.isFinite(Number(value))) throw invalid(`Param location['${field}'] must be a number.`);
      }
      return;
    case "interactive":
      if (!nonEmptyString(content.type)) throw missing("The parameter interactive['type'] is required.");
      if (!isRecord(content.action)) throw missing("The parameter interactive['action'] is required.");
      return;
    default:
      break;
  }
  if (MEDIA_TYPES.includes(type)) {
    if (!nonEmptyString(content.id) && !nonEmptyString(content.link)) {
      throw missing(`The parameter ${type}['id'] or ${type}['link'] is required.`);
    }
    if (content.link !== undefined && !/^https?:\/\/\S+$/.test(String(content.link))) {
      throw invalid(`Param ${type}['link'] must be a valid http(s) URL.`);
    }
    if (typeof content.caption === "string" && [...content.caption].length > 1024) {
      throw notValid(`Param ${type}['caption'] must be at most 1024 characters long.`);
    }
  }
}

/** Checks a /messages body the way Meta does; throws the GraphError Meta would answer. */
function validateBody(body: unknown): ValidSend | ValidRead {
  if (!isRecord(body)) throw invalid("The request body must be a JSON object.");
  if (body.messaging_product === undefined) {
    throw new GraphError(400, 100, "(#100) The parameter messaging_product is required.");
  }
  if (body.messaging_product !== "whatsapp") {
    throw invalid(`Param messaging_product must be one of {WHATSAPP} - got "${body.messaging_product}".`);
  }
  if (body.status !== undefined) {
    if (body.status !== "read") throw invalid(`Param status must be one of {READ} - got "${body.status}".`);
    if (!nonEmptyString(body.message_id)) throw missing("The parameter message_id is required.");
    const typing = body.typing_indicator;
    if (typing !== undefined && (!isRecord(typing) || typing.type !== "text")) {
      throw invalid(`Param typing_indicator['type'] must be one of {TEXT}.`);
    }
    return { kind: "read", messageId: body.message_id, typing: typing !== undefined };
  }
  if (
    body.recipient_type !== undefined && body.recipient_type !== "individual" &&
    body.recipient_type !== "group"
  ) {
    throw invalid(`Param recipient_type must be one of {INDIVIDUAL, GROUP} - got "${body.recipient_type}".`);
  }
  const { to, recipient } = body;
  if (to === undefined && recipient === undefined) throw missing("The parameter to is required.");
  if (to !== undefined && (typeof to !== "string" || !PHONE.test(to) || !/\d/.test(to))) {
    throw invalid("Param to must be a phone number.");
  }
  if (recipient !== undefined && (typeof recipient !== "string" || !BSUID.test(recipient))) {
    throw invalid("Param recipient must be a business-scoped user id.");
  }
  const type = body.type ?? "text";
  if (typeof type !== "string" || !(MESSAGE_TYPES as readonly string[]).includes(type)) {
    throw invalid(`Param type must be one of {${MESSAGE_TYPES.join(", ")}} - got "${String(type)}".`);
  }
  if (body.context !== undefined && (!isRecord(body.context) || !nonEmptyString(body.context.message_id))) {
    throw invalid("Param context['message_id'] must be a message id.");
  }
  validateTypeObject(type as MessageType, body[type]);
  // `to` wins when both are given (§1.10); wa_id only for a phone, user_id only for a BSUID.
  const contact: Record<string, string> = typeof to === "string"
    ? { input: to, wa_id: to.replace(/\D/g, "") }
    : { input: String(recipient), user_id: String(recipient) };
  return { kind: "send", contact, template: type === "template" };
}

/** Starts the fake on a free port (by default); resolves once listening. */
export function startFakeGraph(options: FakeGraphOptions = {}): Promise<FakeGraph> {
  const accessToken = options.accessToken ?? DEFAULT_ACCESS_TOKEN;
  const sent: SentMessage[] = [];
  const received: ReceivedRequest[] = [];
  const readReceipts: string[] = [];
  const typingIndicators: string[] = [];
  const typingRequests: string[] = [];
  const typingQueue: Extract<Fault, { kind: "error" }>[] = [];
  const queue: Fault[] = [];
  const media = startFakeMedia({ accessToken, clock: options.clock });
  const throttled = { 130429: 0, 131056: 0 };
  const limiter = options.limits && createLimiter(options.limits);

  const handle: Http1Handler = async (req, closing) => {
    const at = new Date();
    const path = new URL(req.url).pathname;
    if (req.method === "POST" && MEDIA_UPLOAD_PATH.test(path)) {
      const answer = req.headers.get("authorization") === `Bearer ${accessToken}`
        ? await media.upload(req)
        : graphErrorResponse(
          new GraphError(401, 190, "Invalid OAuth access token - Cannot parse access token"),
        );
      received.push({
        phoneNumberId: MEDIA_UPLOAD_PATH.exec(path)![1]!,
        method: "POST",
        path,
        body: null,
        status: answer.status,
        at,
      });
      return answer;
    }
    const match = MESSAGES_PATH.exec(path);
    const body = parseBody(await req.text());
    const phoneNumberId = match?.[1] ?? null;
    const record = (status: number | null) => {
      received.push({ phoneNumberId, method: req.method, path, body, status, at });
    };

    const mediaId = req.method === "GET" ? MEDIA_ID_PATH.exec(path)?.[1] : undefined;
    if (mediaId !== undefined && req.headers.get("authorization") === `Bearer ${accessToken}`) {
      const answer = await media.resolve(mediaId);
      record(answer.status);
      return answer;
    }

    const templates = TEMPLATES_PATH.exec(path)?.[1];
    if (req.method === "GET" && templates !== undefined && options.templates !== undefined) {
      const authorized = req.headers.get("authorization") === `Bearer ${accessToken}`;
      record(authorized ? 200 : 401);
      return authorized
        ? templatesPage(options.templates[templates] ?? [], new URL(req.url))
        : graphErrorResponse(
          new GraphError(401, 190, "Invalid OAuth access token - Cannot parse access token"),
        );
    }
    let valid: ValidSend | ValidRead;
    try {
      if (phoneNumberId === null) {
        throw new GraphError(404, 100, `Unknown path components: ${path}`);
      }
      if (!/^\d+$/.test(phoneNumberId)) {
        throw new GraphError(
          404,
          100,
          `Unsupported ${req.method.toLowerCase()} request. Object with ID '${phoneNumberId}' does not exist, ` +
            "cannot be loaded due to missing permissions, or does not support this operation.",
        );
      }
      const authorization = /^Bearer\s+(\S+)$/i.exec(req.headers.get("authorization") ?? "");
      if (authorization?.[1] !== accessToken) {
        throw new GraphError(
          401,
          190,
          authorization === null
            ? "Invalid OAuth access token - Cannot parse access token"
            : "Malformed access token",
          undefined,
          {
            headers: {
              "www-authenticate": 'OAuth "Facebook Platform" "invalid_token" "Invalid OAuth access token"',
            },
          },
        );
      }
      if (req.method !== "POST") {
        throw new GraphError(400, 100, `Unsupported ${req.method.toLowerCase()} request.`);
      }
      valid = validateBody(body);
    } catch (error) {
      if (!(error instanceof GraphError)) throw error;
      record(error.status);
      return graphErrorResponse(error);
    }

    const verdict = limiter?.check(
      phoneNumberId,
      valid.kind === "send" ? valid.contact.wa_id ?? valid.contact.user_id ?? null : null,
      Date.now(),
    ) ?? "ok";
    if (verdict !== "ok") {
      throttled[verdict]++;
      record(400);
      return graphErrorResponse(new GraphError(400, verdict, titled(verdict)));
    }
    if (valid.kind === "read" && valid.typing) {
      typingRequests.push(valid.messageId);
      const refusal = typingQueue.shift();
      if (refusal !== undefined) return graphErrorResponse(faultError(refusal));
      readReceipts.push(valid.messageId);
      typingIndicators.push(valid.messageId);
      return Response.json({ success: true });
    }
    // Only requests Meta would accept meet a fault: a malformed one is refused before anything else.
    const fault = queue.shift() ?? options.fault?.();
    const accept = (): Response => {
      if (valid.kind === "read") {
        readReceipts.push(valid.messageId);
        return Response.json({ success: true });
      }
      const wamid = newWamid();
      const message = { wamid, phoneNumberId, body: body as Record<string, unknown>, at: new Date() };
      sent.push(message);
      options.onSent?.(message);
      return Response.json({
        messaging_product: "whatsapp",
        contacts: [valid.contact],
        messages: [valid.template ? { id: wamid, message_status: "accepted" } : { id: wamid }],
      });
    };
    switch (fault?.kind) {
      case undefined:
        record(200);
        return accept();
      case "error": {
        const error = faultError(fault);
        record(error.status);
        return graphErrorResponse(error);
      }
      case "rate_limit":
        record(400);
        return graphErrorResponse(
          new GraphError(400, 130429, titled(130429), "Cloud API message throughput has been reached.", {
            headers: { "retry-after": "1" },
          }),
        );
      case "delay":
        record(200);
        return (await sleep(fault.ms, closing)) ? accept() : "drop";
      case "accept_then_delay": {
        record(200);
        const answer = accept();
        return (await sleep(fault.ms, closing)) ? answer : "drop";
      }
      case "hang":
        record(null);
        await untilAborted(closing);
        return "drop";
      case "drop_connection":
        record(null);
        return "drop";
      case "gateway_error":
        record(fault.status);
        await accept().body?.cancel();
        return new Response(`<html><body><h1>${fault.status} gateway error</h1></body></html>`, {
          status: fault.status,
          headers: { "content-type": "text/html" },
        });
    }
  };

  const server = serveHttp1({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
    keepAlive: options.keepAlive,
  }, handle);
  return Promise.resolve({
    url: server.url,
    accessToken,
    sent,
    received,
    readReceipts,
    throttled,
    typingIndicators,
    typingRequests,
    enqueueTyping: (...faults) => void typingQueue.push(...faults),
    enqueue: (...faults) => void queue.push(...faults),
    waitFor,
    media,
    reset: () => {
      sent.length = 0;
      received.length = 0;
      readReceipts.length = 0;
      typingIndicators.length = 0;
      typingRequests.length = 0;
      typingQueue.length = 0;
      queue.length = 0;
      throttled[130429] = throttled[131056] = 0;
    },
    close: async () => {
      await Promise.all([server.close(), media.close()]);
    },
  });
}

if (import.meta.main) {
  const graph = await startFakeGraph({
    port: Number(Deno.env.get("FAKE_GRAPH_PORT") ?? 54331),
    accessToken: Deno.env.get("WHATSAPP_ACCESS_TOKEN") || undefined,
  });
  console.log(JSON.stringify({
    ts: new Date().toISOString(),
    level: "info",
    msg: "fake graph api listening",
    url: graph.url,
  }));
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => graph.close().then(() => Deno.exit(0)));
  }
}
