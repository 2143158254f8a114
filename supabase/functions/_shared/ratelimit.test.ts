// Rate limits on the real database: the token bucket is atomic under real concurrency (50 connections), and
// takeToken turns an empty bucket into a 429 with Retry-After. Each test uses its own random subject. No test
// lets the wall clock refill a bucket: the takes carry one fixed time, or the bucket is stamped an hour ahead
// (a take before a bucket's stamp refills nothing), so the counts are exact however slowly the machine runs.
import assert from "node:assert/strict";
import { testSql } from "../../../local/testing/db.ts";
import { isDataException } from "./db.ts";
import { errorResponse, HttpError } from "./http.ts";
import { type RateCategory, takeToken } from "./ratelimit.ts";

type Sql = ReturnType<typeof testSql>;
const subject = () => `test-${crypto.randomUUID()}`;

/** A full bucket of `category` for `who`, stamped an hour ahead so no take refills it. */
async function fullBucket(sql: Sql, who: string, category: RateCategory): Promise<void> {
  await sql`insert into wa.rate_limit_buckets (subject, category, tokens, updated_at)
            select ${who}, c.category, c.capacity, now() + interval '1 hour'
            from wa.rate_limit_config c where c.category = ${category}`;
}

Deno.test("50 concurrent takes on one fresh auth bucket, each on its own connection: exactly 10 allowed", async () => {
  const sql = testSql(55);
  const connections: Awaited<ReturnType<typeof sql.reserve>>[] = [];
  try {
    // Connect all 50 first, so the takes themselves race.
    for (let i = 0; i < 50; i++) connections.push(await sql.reserve());
    const who = subject();
    const at = new Date("2026-11-25T12:00:00Z");
    const results = await Promise.all(connections.map(async (connection) => {
      const [row] = await connection<{ allowed: boolean; retry_after_ms: number; pid: number }[]>`
        select t.allowed, t.retry_after_ms, pg_backend_pid() as pid
        from wa.take_rate_limit_token(${who}, 'auth', 1, ${at}) t`;
      return row!;
    }));
    assert.equal(new Set(results.map((r) => r.pid)).size, 50, "50 distinct server connections");
    const allowed = results.filter((r) => r.allowed);
    const refused = results.filter((r) => !r.allowed);
    console.log(`50 concurrent auth takes: ${allowed.length} allowed, ${refused.length} refused`);
    assert.equal(allowed.length, 10);
    assert.equal(refused.length, 40);
    assert.ok(refused.every((r) => r.retry_after_ms === 6000), "one auth token refills in 6 s");
    const [bucket] = await sql<{ tokens: number }[]>`
      select tokens from wa.rate_limit_buckets where subject = ${who} and category = 'auth'`;
    assert.equal(bucket!.tokens, 0);
  } finally {
    for (const connection of connections) connection.release();
    await sql.end();
  }
});

Deno.test("takeToken resolves while tokens remain, then throws a 429 rate_limited with Retry-After", async () => {
  const sql = testSql();
  try {
    const who = subject();
    await fullBucket(sql, who, "auth");
    for (let i = 0; i < 10; i++) await takeToken(sql, who, "auth");
    await assert.rejects(takeToken(sql, who, "auth"), (error) => {
      assert.ok(error instanceof HttpError);
      assert.equal(error.status, 429);
      assert.equal(error.code, "rate_limited");
      assert.match(error.message, /auth/);
      const details = error.details as { category: string; retry_after_ms: number };
      assert.equal(details.category, "auth");
      assert.equal(details.retry_after_ms, 6000);
      const retryAfter = Number(new Headers(error.headers).get("retry-after"));
      assert.equal(retryAfter, 6);
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
    await fullBucket(sql, who, "media");
    await takeToken(sql, who, "media", 50);
    await assert.rejects(takeToken(sql, who, "media"), (error) => {
      assert.ok(error instanceof HttpError);
      const details = error.details as { category: string; retry_after_ms: number };
      assert.equal(details.category, "media");
      // One media token refills every 1.2 s; the header is the wait rounded up to whole seconds.
      assert.equal(details.retry_after_ms, 1200);
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
