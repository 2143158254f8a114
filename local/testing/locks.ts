// Forcing an interleaving of transactions on the real database, never by timing: each step waits until
// Postgres reports a backend waiting for a lock (pg_blocking_pids), or its call has returned.
import type postgres from "postgres";

type Sql = postgres.Sql;

/** A connection of its own, with its backend's pid; release it in the test's `finally`. */
export interface Session {
  sql: postgres.ReservedSql;
  pid: number;
}

export async function session(sql: Sql): Promise<Session> {
  const reserved = await sql.reserve();
  const [row] = await reserved<{ pid: number }[]>`select pg_backend_pid() as pid`;
  return { sql: reserved, pid: row!.pid };
}

/** A transaction left open on its own connection: the "second connection holding a lock" of a test. */
export interface Held extends Session {
  commit(): Promise<void>;
  /** Rolls back if still open, and gives the connection back. */
  release(): Promise<void>;
}

export async function hold(sql: Sql): Promise<Held> {
  const own = await session(sql);
  await own.sql`begin`;
  let open = true;
  return {
    ...own,
    async commit() {
      await own.sql`commit`;
      open = false;
    },
    async release() {
      if (open) await own.sql`rollback`;
      open = false;
      own.sql.release();
    },
  };
}

const POLLS = 20_000;

/**
 * Resolves once backend `pid` waits for a lock held by another backend, and by none of `notBy` (a step that
 * must see a waiter move on from one holder to the next); rejects if `call` settles first or never waits.
 */
export async function blocked(
  sql: Sql,
  pid: number,
  options: { notBy?: number[]; call?: Promise<unknown> } = {},
): Promise<void> {
  let settled = false;
  options.call?.then(() => settled = true, () => settled = true);
  const notBy = options.notBy ?? [];
  for (let poll = 0; poll < POLLS; poll++) {
    const [row] = await sql<{ blockers: number[] }[]>`select pg_blocking_pids(${pid}::int) as blockers`;
    const blockers = row?.blockers ?? [];
    if (blockers.length > 0 && !blockers.some((holder) => notBy.includes(holder))) return;
    if (settled) throw new Error(`backend ${pid} finished without waiting for a lock`);
  }
  throw new Error(`backend ${pid} never waited for a lock (other than ${notBy.join(", ") || "none"})`);
}

/** Resolves once `call` has settled or backend `pid` waits for a lock, whichever the code under test does. */
export async function settledOrBlocked(sql: Sql, pid: number, call: Promise<unknown>): Promise<void> {
  let settled = false;
  call.then(() => settled = true, () => settled = true);
  for (let poll = 0; poll < POLLS; poll++) {
    const [row] = await sql<{ waiting: boolean }[]>`
      select cardinality(pg_blocking_pids(${pid}::int)) > 0 as waiting`;
    if (settled || row?.waiting) return;
  }
  throw new Error(`backend ${pid} neither finished nor waited for a lock`);
}

/** Whether `error` is Postgres's deadlock_detected (40P01). */
export function isDeadlock(error: unknown): boolean {
  return typeof error === "object" && error !== null && (error as { code?: string }).code === "40P01";
}
