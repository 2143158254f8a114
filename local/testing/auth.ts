// Users and their access tokens for tests, as GoTrue would create and sign them.
import type postgres from "postgres";
import { SignJWT } from "jose";
import { localEnvDefaults } from "../env.ts";

export interface TestUser {
  id: string;
  email: string;
}

/** Inserts an auth user (its profile comes from the trigger), then sets the profile's server-owned fields. */
export async function createUser(
  sql: postgres.Sql,
  profile: { role?: string; teamId?: string | null; phone?: string; userMetadata?: Record<string, unknown> } =
    {},
): Promise<TestUser> {
  const id = crypto.randomUUID();
  const email = `${id.slice(0, 8)}@wabase.test`;
  await sql`insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at,
                                    updated_at, confirmation_token, recovery_token, email_change_token_new,
                                    email_change)
            values (${id}, 'authenticated', 'authenticated', ${email}, '{"provider":"email"}',
                    ${
    JSON.stringify(profile.userMetadata ?? {})
  }::text::jsonb, now(), now(), '', '', '', '')`;
  await sql`update public.profiles set role = ${profile.role ?? "executive"}, team_id = ${
    profile.teamId ?? null
  },
                                       phone = ${profile.phone ?? null}, full_name = ${email}
            where id = ${id}`;
  return { id, email };
}

export async function createTeam(sql: postgres.Sql): Promise<string> {
  const [row] = await sql<{ id: string }[]>`insert into public.teams (name) values (${crypto.randomUUID()})
                                            returning id`;
  return row!.id;
}

export interface TokenOptions {
  /** Seconds until expiry; negative for an expired token. */
  expiresIn?: number;
  secret?: string;
  userMetadata?: Record<string, unknown>;
  role?: string;
}

/** An access token like GoTrue's for `user` (HS256 with the local JWT secret unless told otherwise). */
export async function accessToken(user: TestUser, options: TokenOptions = {}): Promise<string> {
  const secret = options.secret ?? (await localEnvDefaults()).JWT_SECRET ?? "";
  const now = Math.floor(Date.now() / 1000);
  return await new SignJWT({
    sub: user.id,
    role: options.role ?? "authenticated",
    aud: "authenticated",
    email: user.email,
    app_metadata: { provider: "email" },
    user_metadata: options.userMetadata ?? {},
  }).setProtectedHeader({ alg: "HS256", typ: "JWT" }).setIssuedAt(now)
    .setExpirationTime(now + (options.expiresIn ?? 3600)).sign(new TextEncoder().encode(secret));
}
