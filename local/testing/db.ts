// The database deno tests run against: the throwaway cluster `npm test` starts, never `npm start`'s.

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
