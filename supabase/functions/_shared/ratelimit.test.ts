// Rate limits on the real database: the token bucket is atomic under real concurrency (50 connections), and
// takeToken turns an empty bucket into a 429 with Retry-After. Each test uses its own random subject.
import assert from "node:assert/strict";
import { testSql } from "../../../local/testing/db.ts";
import { isDataException } from "./db.ts";
import { errorResponse, HttpError } from "./http.ts";
import { type RateCategory, takeToken } from "./ratelimit.ts";

const subject = () => `test-${crypto.randomUUID()}`;

Deno.test("50 concurrent takes on one fresh auth bucket, each on its own connection: exactly 10 allowed", async () => {
  const sql = testSql(55);
  const connections: Awaited<ReturnType<typeof sql.reserve>>[] = [];
  try {
    // Connect all 50 first, so the takes themselves race.
    for (let i = 0; i < 50; i++) connections.push(await sql.reserve());
    const who = subject();
    const results = await Promise.all(connections.map(async (connection) => {
      const [row] = await connection<{ allowed: boolean; retry_after_ms: number; pid: number }[]>`
        select t.allowed, t.retry_after_ms, pg_backend_pid() as pid
        from wa.take_rate_limit_token(${who}, 'auth') t`;
      return row!;
    }));
    assert.equal(new Set(results.map((r) => r.pid)).size, 50, "50 distinct server connections");
    const allowed = results.filter((r) => r.allowed);
    const refused = results.filter((r) => !r.allowed);
    console.log(`50 concurrent auth takes: ${allowed.length} allowed, ${refused.length} refused`);
    assert.equal(allowed.length, 10);
    assert.equal(refused.length, 40);
    assert.ok(refused.every((r) => r.retry_after_ms > 0 && r.retry_after_ms <= 6000));
    const [bucket] = await sql<{ tokens: number }[]>`
      select tokens from wa.rate_limit_buckets where subject = ${who} and category = 'auth'`;
    assert.ok(bucket!.tokens >= 0 && bucket!.tokens < 1, `bucket left with ${bucket!.tokens} tokens`);
  } finally {
    for (const connection of connections) connection.release();
    await sql.end();
  }
});

Deno.test("takeToken resolves while tokens remain, then throws a 429 rate_limited with Retry-After", async () => {
  const sql = testSql();
  try {
    const who = subject();
    for (let i = 0; i < 10; i++) await takeToken(sql, who, "auth");
    await assert.rejects(takeToken(sql, who, "auth"), (error) => {
      assert.ok(error instanceof HttpError);
      assert.equal(error.status, 429);
      assert.equal(error.code, "rate_limited");
      assert.match(error.message, /auth/);
      const details = error.details as { category: string; retry_after_ms: number };
      assert.equal(details.category, "auth");
      assert.ok(details.retry_after_ms > 0 && details.retry_after_ms <= 6000, `${details.retry_after_ms}`);
      const retryAfter = Number(new Headers(error.headers).get("retry-after"));
      assert.ok(
        Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 6,
        `Retry-After ${retryAfter}`,
      );
      // As answered by the functions: the envelope, the status and the header.
      const response = errorResponse(error);
      assert.equal(response.status, 429);
      assert.equal(response.headers.get("retry-after"), String(retryAfter));
      return true;
    });
  } finally {
    await sql.end();
  }
});

Deno.test("takeToken with a cost takes that many tokens; other categories and subjects are untouched", async () => {
  const sql = testSql();
  try {
    const who = subject();
    await takeToken(sql, who, "media", 50);
    await assert.rejects(takeToken(sql, who, "media"), (error) => {
      assert.ok(error instanceof HttpError);
      const details = error.details as { category: string; retry_after_ms: number };
      assert.equal(details.category, "media");
      // One media token refills every 1.2 s; the header is the wait rounded up to whole seconds.
      assert.ok(details.retry_after_ms > 0 && details.retry_after_ms <= 1200, `${details.retry_after_ms}`);
      assert.equal(
        new Headers(error.headers).get("retry-after"),
        String(Math.ceil(details.retry_after_ms / 1000)),
      );
      return true;
    });
    await takeToken(sql, who, "chat");
    await takeToken(sql, subject(), "media", 50);
  } finally {
    await sql.end();
  }
});

Deno.test("a category the database does not know is a data exception (SQLSTATE 22023), not a 429", async () => {
  const sql = testSql();
  try {
    await assert.rejects(takeToken(sql, subject(), "nope" as RateCategory), (error) => {
      assert.ok(isDataException(error));
      assert.match(String((error as Error).message), /unknown rate-limit category/);
      return true;
    });
  } finally {
    await sql.end();
  }
});
