// SPEC 8.5 — contention. 50 concurrent writers increment a counter in one conversation's chat session
// through withVersionRetry (wa.get_chat_session + wa.update_chat_session, as session.test.ts does), each on
// its own connection: lost updates (must be 0), retries per write, writes/s. Baseline: 50 naive
// read-modify-write writers (read the counter, write back read + 1, no version check), whose lost updates
// are exactly what optimistic locking prevents.
import postgres from "postgres";
import { VersionConflictError, type withVersionRetry } from "../supabase/functions/_shared/session.ts";
import { incrementCounter, newConversation, storedSession } from "../local/testing/sessions.ts";
import { type BenchContext, type BenchResult, check, result } from "./lib.ts";

const WRITERS = 50;

type Sql = postgres.Sql;

interface Round {
  succeeded: number;
  surfaced: number;
  retries: number;
  counter: number;
  seconds: number;
}

async function versioned(sql: Sql, options: Parameters<typeof withVersionRetry>[1]): Promise<Round> {
  const conversationId = await newConversation(sql);
  let retries = 0;
  const started = performance.now();
  const outcomes = await Promise.allSettled(
    Array.from(
      { length: WRITERS },
      () => incrementCounter(sql, conversationId, { ...options, onRetry: () => retries++ }),
    ),
  );
  const seconds = (performance.now() - started) / 1000;
  for (const outcome of outcomes) {
    if (outcome.status === "rejected" && !(outcome.reason instanceof VersionConflictError)) {
      throw outcome.reason;
    }
  }
  const succeeded = outcomes.filter((o) => o.status === "fulfilled").length;
  const session = await storedSession(sql, conversationId);
  return {
    succeeded,
    surfaced: WRITERS - succeeded,
    retries,
    counter: session.data.counter ?? 0,
    seconds,
  };
}

async function naive(sql: Sql): Promise<Round> {
  const conversationId = await newConversation(sql);
  await sql`select wa.update_chat_session(${conversationId}, 0, 'counting', '{"counter": 0}'::jsonb)`;
  const started = performance.now();
  await Promise.all(Array.from({ length: WRITERS }, async () => {
    const [row] = await sql<{ counter: number }[]>`
      select (data->>'counter')::int as counter from wa.chat_sessions where conversation_id = ${conversationId}`;
    await sql`
      update wa.chat_sessions
      set data = jsonb_build_object('counter', ${(row?.counter ?? 0) + 1}::int), version = version + 1
      where conversation_id = ${conversationId}`;
  }));
  const seconds = (performance.now() - started) / 1000;
  const session = await storedSession(sql, conversationId);
  return { succeeded: WRITERS, surfaced: 0, retries: 0, counter: session.data.counter ?? 0, seconds };
}

export async function contention(ctx: BenchContext): Promise<BenchResult> {
  const res = result("contention", { writers: WRITERS });
  const sql = postgres(ctx.dbUrl, { max: WRITERS + 5, onnotice: () => {} });
  try {
    // A retry budget large enough that every writer eventually lands (as in session.test.ts).
    const patient = await versioned(sql, { retries: 200, baseDelayMs: 10, maxDelayMs: 100 });
    // The helper's defaults (3 retries, 50/100/200 ms): some writers give up, loudly, never silently.
    const defaults = await versioned(sql, {});
    const base = await naive(sql);
    const label = "naive read-modify-write";
    res.rows.push(
      {
        metric: "lost updates",
        value: patient.succeeded - patient.counter,
        unit: `/${WRITERS}`,
        baseline: base.succeeded - base.counter,
        baselineLabel: label,
        target: "0",
      },
      {
        metric: "writes/s",
        value: patient.succeeded / patient.seconds,
        unit: "/s",
        baseline: base.succeeded / base.seconds,
        baselineLabel: label,
      },
      { metric: "retries per write", value: patient.retries / WRITERS, unit: "" },
      {
        metric: "default policy: conflicts surfaced",
        value: defaults.surfaced,
        unit: `/${WRITERS}`,
      },
      {
        metric: "default policy: lost updates",
        value: defaults.succeeded - defaults.counter,
        unit: `/${WRITERS}`,
        target: "0",
      },
    );
    check(res, "lost updates (200-retry budget)", patient.succeeded - patient.counter, 0);
    check(res, "writers that landed (200-retry budget)", patient.succeeded, WRITERS);
    check(res, "lost updates (default policy)", defaults.succeeded - defaults.counter, 0);
    res.notes.push(
      `${WRITERS} writers on one session, one connection each; the measured rows use a 200-retry budget ` +
        "(10 ms base, 100 ms cap) so every write lands; with the helper's defaults (3 retries) the writers " +
        "that keep losing get a VersionConflictError instead of a silent overwrite.",
    );
    res.samples = { patient, defaults, naive: base };
  } finally {
    await sql.end();
  }
  return res;
}
