// Optimistic locking on the real database, under real concurrency: 50 writers, each on its own connection.
import assert from "node:assert/strict";
import { testSql } from "../../../local/testing/db.ts";
import {
  incrementCounter as increment,
  newConversation,
  storedSession as stored,
} from "../../../local/testing/sessions.ts";
import { isVersionConflict, VersionConflictError, withVersionRetry } from "./session.ts";

Deno.test("50 concurrent writers through withVersionRetry: counter 50, version 50, no lost update", async () => {
  const sql = testSql(55);
  try {
    const conversationId = await newConversation(sql);
    let retries = 0;
    const options = { retries: 200, baseDelayMs: 10, maxDelayMs: 100, onRetry: () => retries++ };
    const versions = await Promise.all(
      Array.from({ length: 50 }, () => increment(sql, conversationId, options)),
    );
    const session = await stored(sql, conversationId);
    console.log(
      `50 concurrent session writers: 0 lost updates, ${retries} retries (${
        (retries / 50).toFixed(2)
      } per write)`,
    );
    assert.deepEqual(session, { state: "counting", data: { counter: 50 }, version: 50 });
    assert.deepEqual([...versions].sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i + 1));
    assert.ok(retries > 0, "50 writers on one row must have conflicted");
  } finally {
    await sql.end();
  }
});

Deno.test("with the default budget, a writer that keeps losing gets a VersionConflictError: never a silent loss", async () => {
  const sql = testSql(55);
  try {
    const conversationId = await newConversation(sql);
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, () => increment(sql, conversationId, {})),
    );
    const won = results.filter((r) => r.status === "fulfilled").length;
    const lost = results.filter((r) => r.status === "rejected");
    assert.ok(lost.every((r) => r.status === "rejected" && r.reason instanceof VersionConflictError));
    assert.equal(won + lost.length, 50);
    const session = await stored(sql, conversationId);
    assert.equal(session.data.counter, won, "every success is counted once, every failure was reported");
    assert.equal(session.version, won);
  } finally {
    await sql.end();
  }
});

Deno.test("a stale expected version is refused with SQLSTATE 40001 and writes nothing", async () => {
  const sql = testSql();
  try {
    const conversationId = await newConversation(sql);
    await sql`select wa.update_chat_session(${conversationId}, 0, 'start', '{"a":1}')`;
    await sql`select wa.update_chat_session(${conversationId}, 1, 'next', '{"a":2}')`;
    await assert.rejects(
      sql`select wa.update_chat_session(${conversationId}, 1, 'other', '{"a":3}')`,
      (error) => {
        assert.ok(isVersionConflict(error));
        assert.match(String((error as Error).message), /version conflict/);
        return true;
      },
    );
    assert.deepEqual(await stored(sql, conversationId), { state: "next", data: { a: 2 }, version: 2 });
  } finally {
    await sql.end();
  }
});

Deno.test("only version conflicts are retried", async () => {
  let writes = 0;
  await assert.rejects(
    withVersionRetry({
      read: () => Promise.resolve({ version: 1 }),
      apply: () => ({}),
      write: () => {
        writes++;
        return Promise.reject(new Error("connection reset"));
      },
    }),
    /connection reset/,
  );
  assert.equal(writes, 1);
});
