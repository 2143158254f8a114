import assert from "node:assert/strict";
import { z } from "zod";
import {
  corsHeaders,
  createHandler,
  type ErrorBody,
  HttpError,
  json,
  readBody,
  requestId,
  subpathOf,
} from "./http.ts";

const noEnv = z.object({});

/** Runs `fn` while collecting the JSON lines it logs. */
async function captureLogs<T>(
  fn: () => Promise<T>,
): Promise<{ result: T; lines: Record<string, unknown>[] }> {
  const lines: Record<string, unknown>[] = [];
  const original = { log: console.log, error: console.error };
  console.log = console.error = (line: string) => lines.push(JSON.parse(line));
  try {
    return { result: await fn(), lines };
  } finally {
    Object.assign(console, original);
  }
}

Deno.test("an HttpError becomes the JSON error envelope with its status, headers and request id", async () => {
  const handler = createHandler({
    name: "demo",
    env: noEnv,
    handle: () => {
      throw new HttpError(409, "conflict_here", "it conflicts", { field: "x" }, { "retry-after": "3" });
    },
  });
  const { result: res, lines } = await captureLogs(() =>
    handler(new Request("http://x/demo", { method: "POST", headers: { "x-request-id": "req-123" } }))
  );
  assert.equal(res.status, 409);
  assert.equal(res.headers.get("content-type"), "application/json; charset=utf-8");
  assert.equal(res.headers.get("retry-after"), "3");
  assert.equal(res.headers.get("x-request-id"), "req-123");
  assert.deepEqual(await res.json(), {
    error: { code: "conflict_here", message: "it conflicts", details: { field: "x" } },
  });
  assert.equal(lines.length, 1);
  assert.equal(lines[0]?.function, "demo");
  assert.equal(lines[0]?.request_id, "req-123");
  assert.equal(lines[0]?.status, 409);
  assert.equal(lines[0]?.outcome, "rejected");
  assert.equal(lines[0]?.error_code, "conflict_here");
  assert.equal(typeof lines[0]?.duration_ms, "number");
});

Deno.test("an unexpected error is a 500 that does not leak its message, but is logged", async () => {
  const handler = createHandler({
    name: "demo",
    env: noEnv,
    handle: () => Promise.reject(new Error("password=hunter2 in a stack trace")),
  });
  const { result: res, lines } = await captureLogs(() => handler(new Request("http://x/demo")));
  const body: ErrorBody = await res.json();
  assert.equal(res.status, 500);
  assert.equal(body.error.code, "internal_error");
  assert.doesNotMatch(body.error.message, /hunter2/);
  assert.equal(lines[0]?.level, "error");
  assert.equal(lines[0]?.error_code, "internal_error");
  assert.match(String(lines[0]?.error), /hunter2/);
});

Deno.test("a missing variable answers 500 config_error naming it", async () => {
  const handler = createHandler({
    name: "demo",
    env: z.object({ WABASE_TEST_NEVER_SET: z.string() }),
    handle: () => Promise.resolve(json({ ok: true })),
  });
  const { result: res } = await captureLogs(() => handler(new Request("http://x/demo")));
  const body: ErrorBody = await res.json();
  assert.equal(res.status, 500);
  assert.equal(body.error.code, "config_error");
  assert.match(body.error.message, /WABASE_TEST_NEVER_SET is missing/);
});

Deno.test("a CORS preflight is answered 204 without running the handler", async () => {
  let ran = false;
  const handler = createHandler({
    name: "demo",
    env: noEnv,
    handle: () => {
      ran = true;
      return Promise.resolve(json({}));
    },
  });
  const { result: res } = await captureLogs(() =>
    handler(new Request("http://x/demo", { method: "OPTIONS", headers: { origin: "http://app.test" } }))
  );
  assert.equal(res.status, 204);
  assert.equal(ran, false);
  assert.equal(res.headers.get("access-control-allow-origin"), "*");
  assert.match(res.headers.get("access-control-allow-headers") ?? "", /authorization/);
  assert.match(res.headers.get("access-control-allow-methods") ?? "", /POST/);
});

Deno.test("corsHeaders allows listed origins only", () => {
  const from = (origin?: string) => new Request("http://x/", { headers: origin ? { origin } : {} });
  const allowed = "http://app.test, https://crm.example";
  assert.equal(
    corsHeaders(from("https://crm.example"), allowed)?.["access-control-allow-origin"],
    "https://crm.example",
  );
  assert.equal(corsHeaders(from("https://crm.example"), allowed)?.vary, "Origin");
  assert.equal(corsHeaders(from("https://evil.example"), allowed), null);
  assert.equal(corsHeaders(from(), allowed)?.["access-control-allow-origin"], undefined);
});

Deno.test("request ids: a sane caller id is kept, anything else replaced by a UUID", () => {
  const withId = (id: string) => new Request("http://x/", { headers: { "x-request-id": id } });
  assert.equal(requestId(withId("abc-1.2:3")), "abc-1.2:3");
  assert.match(requestId(withId("bad id {with} spaces")), /^[0-9a-f-]{36}$/);
  assert.match(requestId(new Request("http://x/")), /^[0-9a-f-]{36}$/);
});

Deno.test("subpathOf strips the function name, and the gateway's /functions/v1 when it was kept", () => {
  assert.equal(subpathOf(new URL("http://x/health"), "health"), "/");
  assert.equal(subpathOf(new URL("http://x/health/ready"), "health"), "/ready");
  assert.equal(subpathOf(new URL("http://x/functions/v1/health"), "health"), "/");
  assert.equal(subpathOf(new URL("http://x/functions/v1/health/ready"), "health"), "/ready");
});

Deno.test("readBody reads a declared length in one call and counts a stream without one, refusing past the limit", async () => {
  const bytes = new TextEncoder().encode("0123456789");
  const declared = new Request("http://x/", {
    method: "POST",
    body: bytes,
    headers: { "content-length": "10" },
  });
  assert.deepEqual(await readBody(declared, 10), bytes);
  const streamed = (size: number) =>
    new Request("http://x/", {
      method: "POST",
      body: new ReadableStream({
        start(controller) {
          for (let i = 0; i < size; i++) controller.enqueue(new Uint8Array([i]));
          controller.close();
        },
      }),
    });
  assert.equal((await readBody(streamed(10), 10)).byteLength, 10);
  await assert.rejects(readBody(streamed(11), 10), (error: HttpError) => error.status === 413);
  const tooLong = new Request("http://x/", {
    method: "POST",
    body: bytes,
    headers: { "content-length": "10" },
  });
  await assert.rejects(readBody(tooLong, 9), (error: HttpError) => error.status === 413);
});
