// One postgres.js pool per isolate on SUPABASE_DB_URL (role postgres: owner of our objects, BYPASSRLS).
import postgres from "postgres";

export type Sql = postgres.Sql;

let pool: { url: string; sql: Sql } | undefined;

/**
 * The isolate's pool. `prepare: false` because hosted Supabase recommends the transaction-mode pooler for
 * edge code, where a prepared statement may land on another server connection.
 */
export function db(url: string): Sql {
  if (pool && pool.url !== url) throw new Error("db() was already opened on another SUPABASE_DB_URL");
  pool ??= {
    url,
    sql: postgres(url, {
      prepare: false,
      max: 5,
      idle_timeout: 20,
      connect_timeout: 10,
      onnotice: () => {},
      connection: { application_name: "wabase-functions" },
    }),
  };
  return pool.sql;
}

/** Closes the isolate's pool (tests and the local server's shutdown). */
export async function closeDb(): Promise<void> {
  const current = pool;
  pool = undefined;
  await current?.sql.end({ timeout: 5 });
}

/** A Postgres data exception (SQLSTATE class 22): the input, not the database, is at fault. */
export function isDataException(error: unknown): boolean {
  return error instanceof postgres.PostgresError && error.code.startsWith("22");
}
