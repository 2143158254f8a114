// `npm run types`: writes client/database.types.ts, supabase-js's `Database` type, from the live schema with
// Supabase's own generator, postgres-meta (pinned in package.json), run the way `supabase gen types typescript
// --local` runs its container: PG_META_GENERATE_TYPES=typescript over config.toml's [api] schemas, with the
// PostgREST version the local stack serves. Reads SUPABASE_DB_URL (default: `npm start`'s database).
// `--check` (npm test) writes nothing and fails when the committed file differs from what the schema gives.
import { loadLocalEnv } from "./env.ts";
import { apiConfig, POSTGREST_BINARY } from "./postgrest.ts";

const repoRoot = new URL("../", import.meta.url);
const target = new URL("client/database.types.ts", repoRoot);
const generator = new URL("node_modules/@supabase/postgres-meta/dist/server/server.js", repoRoot).pathname;

async function postgrestVersion(): Promise<string> {
  const { stdout } = await new Deno.Command(POSTGREST_BINARY, { args: ["--version"] }).output();
  return new TextDecoder().decode(stdout).replace("PostgREST", "").trim();
}

/** The generator's output for the database at `dbUrl`. */
export async function generateTypes(dbUrl: string): Promise<string> {
  const { schemas } = await apiConfig();
  const output = await new Deno.Command("node", {
    args: [generator],
    env: {
      PG_META_DB_URL: dbUrl,
      PG_META_GENERATE_TYPES: "typescript",
      PG_META_GENERATE_TYPES_INCLUDED_SCHEMAS: schemas.join(","),
      PG_META_GENERATE_TYPES_DETECT_ONE_TO_ONE_RELATIONSHIPS: "true",
      PG_META_POSTGREST_VERSION: await postgrestVersion(),
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) {
    throw new Error(`postgres-meta failed (${output.code}): ${new TextDecoder().decode(output.stderr)}`);
  }
  return new TextDecoder().decode(output.stdout);
}

if (import.meta.main) {
  await loadLocalEnv();
  const dbUrl = Deno.env.get("SUPABASE_DB_URL") ?? "";
  const generated = await generateTypes(dbUrl);
  if (Deno.args.includes("--check")) {
    const committed = await Deno.readTextFile(target).catch(() => "");
    if (committed !== generated) {
      const fresh = await Deno.makeTempFile({ suffix: ".ts" });
      await Deno.writeTextFile(fresh, generated);
      await new Deno.Command("diff", { args: ["-u", target.pathname, fresh], stdout: "inherit" }).output();
      await Deno.remove(fresh);
      console.error(
        "client/database.types.ts is stale: the schema changed. Run `npm run types` against a migrated database " +
          "(npm start) and commit the result.",
      );
      Deno.exit(1);
    }
  } else {
    await Deno.writeTextFile(target, generated);
    console.error(`wrote ${target.pathname}`);
  }
}
