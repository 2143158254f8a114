// Prints a local access token for a seeded demo user, signed like GoTrue's with the local JWT secret, so the
// README's curl lines can call the user-facing functions: `deno run -A local/token.ts ana@demo.wabase.local`.
import postgres from "postgres";
import { SignJWT } from "jose";
import { loadLocalEnv } from "./env.ts";

await loadLocalEnv();
const email = Deno.args[0] ?? "admin@demo.wabase.local";
const sql = postgres(Deno.env.get("SUPABASE_DB_URL") ?? "", { max: 1, onnotice: () => {} });
const [user] = await sql<{ id: string }[]>`select id from auth.users where email = ${email}`;
await sql.end();
if (user === undefined) {
  console.error(`no user ${email} (the seeded ones end in @demo.wabase.local)`);
  Deno.exit(1);
}
const now = Math.floor(Date.now() / 1000);
console.log(
  await new SignJWT({ sub: user.id, role: "authenticated", aud: "authenticated", email })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" }).setIssuedAt(now).setExpirationTime(now + 3600)
    .sign(new TextEncoder().encode(Deno.env.get("JWT_SECRET") ?? "")),
);
