// The database deno tests run against: the throwaway cluster `npm test` starts, never `npm start`'s.
import postgres from "postgres";

/** SUPABASE_DB_URL as set by `npm test`; refuses to guess so a test can never hit the dev database. */
export function testDbUrl(): string {
  const url = Deno.env.get("SUPABASE_DB_URL");
  if (url === undefined || url.includes(":54322/")) {
    throw new Error(
      "database tests run through `npm test`, which points SUPABASE_DB_URL at a throwaway cluster",
    );
  }
  return url;
}

/** A connection to the test database; end it in the test's `finally`. */
export function testSql(max = 4): postgres.Sql {
  return postgres(testDbUrl(), { max, onnotice: () => {} });
}
