// The local stand-in for Supabase Auth (GoTrue), which has no Docker-free distribution. It serves exactly the
// endpoints supabase-js uses for password sessions, with GoTrue's request and response shapes
// (supabase/auth internal/api: token.go, user.go, logout.go, admin.go, errors.go; internal/tokens/service.go):
//
//   POST   /auth/v1/token?grant_type=password        email + password -> session
//   POST   /auth/v1/token?grant_type=refresh_token   rotates the refresh token -> session
//   GET    /auth/v1/user                             the signed-in user
//   POST   /auth/v1/logout?scope=global|local|others ends sessions (204)
//   POST   /auth/v1/admin/users                      service role: create a user
//   GET    /auth/v1/admin/users?page=&per_page=      service role: list users (X-Total-Count, Link)
//   GET    /auth/v1/admin/users/<id>                 service role: one user
//   DELETE /auth/v1/admin/users/<id>                 service role: delete a user
//   GET    /auth/v1/health
//
// Everything else answers 501 not_implemented. Like GoTrue it keeps users in auth.users (bcrypt
// encrypted_password, cost 10), sessions in auth.sessions and rotating refresh tokens in auth.refresh_tokens,
// connected as supabase_auth_admin; access tokens carry GoTrue's claims, signed HS256 with the JWT secret.
import bcrypt from "bcryptjs";
import { errors as joseErrors, jwtVerify, SignJWT } from "jose";
import postgres from "postgres";
import { z } from "zod";

export interface AuthServerOptions {
  /** Any URL of the database; the server logs in as supabase_auth_admin with its password. */
  dbUrl: string;
  jwtSecret: string;
  /** Access token lifetime in seconds (config.toml [auth] jwt_expiry). */
  jwtExpiry?: number;
  /** The `iss` claim: the API URL + /auth/v1, as the CLI's GoTrue sets it. */
  issuer?: string;
  /** The clock, injectable so tests decide when tokens expire. */
  now?: () => Date;
}

export interface AuthServer {
  /** Serves a request whose path starts with /auth/v1/. */
  handle(req: Request): Promise<Response>;
  close(): Promise<void>;
}

const AUDIENCE = "authenticated";
// GoTrue's GOTRUE_JWT_ADMIN_ROLES on the CLI stack.
const ADMIN_ROLES = ["service_role", "supabase_admin"];
// security.refresh_token_reuse_interval: a revoked token still answers for this long (concurrent tabs).
const REUSE_INTERVAL_MS = 10_000;
const BCRYPT_COST = 10;
const API_VERSION = "2024-01-01";

/** A GoTrue error: the HTTP status, its error_code and message. */
class AuthError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

const invalidCredentials = () => new AuthError(400, "invalid_credentials", "Invalid login credentials");

/**
 * GoTrue's error body: `{code, message}` for clients that send X-Supabase-Api-Version >= 2024-01-01 (supabase-js
 * does), else the initial `{code: status, error_code, msg}`; x-sb-error-code either way.
 */
function errorResponse(req: Request, error: AuthError): Response {
  const headers = new Headers({ "x-sb-error-code": error.code });
  const version = req.headers.get("x-supabase-api-version");
  if (version !== null && /^\d{4}-\d{2}-\d{2}$/.test(version) && version >= API_VERSION) {
    headers.set("x-supabase-api-version", API_VERSION);
    return Response.json({ code: error.code, message: error.message }, { status: error.status, headers });
  }
  return Response.json({ code: error.status, error_code: error.code, msg: error.message }, {
    status: error.status,
    headers,
  });
}

interface UserRow {
  id: string;
  aud: string | null;
  role: string | null;
  email: string | null;
  encrypted_password: string | null;
  email_confirmed_at: Date | null;
  phone: string | null;
  phone_confirmed_at: Date | null;
  confirmed_at: Date | null;
  last_sign_in_at: Date | null;
  raw_app_meta_data: Record<string, unknown> | null;
  raw_user_meta_data: Record<string, unknown> | null;
  created_at: Date | null;
  updated_at: Date | null;
  banned_until: Date | null;
  deleted_at: Date | null;
  is_anonymous: boolean;
}

interface IdentityRow {
  id: string;
  provider_id: string;
  user_id: string;
  identity_data: Record<string, unknown>;
  provider: string;
  last_sign_in_at: Date | null;
  created_at: Date | null;
  updated_at: Date | null;
  email: string | null;
}

const iso = (date: Date | null) => date?.toISOString();

/** models.User as GoTrue marshals it (omitempty fields left out when unset). */
function userJson(user: UserRow, identities: IdentityRow[]): Record<string, unknown> {
  const json: Record<string, unknown> = {
    id: user.id,
    aud: user.aud ?? "",
    role: user.role ?? "",
    email: user.email ?? "",
    email_confirmed_at: iso(user.email_confirmed_at),
    phone: user.phone ?? "",
    phone_confirmed_at: iso(user.phone_confirmed_at),
    confirmed_at: iso(user.confirmed_at),
    last_sign_in_at: iso(user.last_sign_in_at),
    app_metadata: user.raw_app_meta_data ?? {},
    user_metadata: user.raw_user_meta_data ?? {},
    identities: identities.map((identity) => ({
      identity_id: identity.id,
      id: identity.provider_id,
      user_id: identity.user_id,
      identity_data: identity.identity_data,
      provider: identity.provider,
      last_sign_in_at: iso(identity.last_sign_in_at),
      created_at: iso(identity.created_at),
      updated_at: iso(identity.updated_at),
      email: identity.email ?? undefined,
    })),
    created_at: iso(user.created_at),
    updated_at: iso(user.updated_at),
    banned_until: iso(user.banned_until),
    deleted_at: iso(user.deleted_at),
    is_anonymous: user.is_anonymous,
  };
  return JSON.parse(JSON.stringify(json));
}

/** A random alphanumeric string, as GoTrue's crypto.SecureAlphanumeric makes its refresh tokens. */
function secureAlphanumeric(length: number): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  return Array.from(bytes, (byte) => alphabet[byte % alphabet.length]).join("");
}

/** bcrypt as GoTrue stores it: Go's bcrypt writes `$2a$`, the same algorithm as bcryptjs's `$2b$`. */
async function hashPassword(password: string): Promise<string> {
  if (new TextEncoder().encode(password).length > 72) {
    throw new AuthError(400, "validation_failed", "bcrypt: password length exceeds 72 bytes");
  }
  return (await bcrypt.hash(password, BCRYPT_COST)).replace(/^\$2b\$/, "$2a$");
}

async function readJson(req: Request): Promise<Record<string, unknown>> {
  const text = await req.text();
  if (text.trim() === "") return {};
  try {
    const value = JSON.parse(text);
    if (value !== null && typeof value === "object" && !Array.isArray(value)) return value;
  } catch (error) {
    throw new AuthError(400, "bad_json", `Could not parse request body as JSON: ${(error as Error).message}`);
  }
  throw new AuthError(400, "bad_json", "Could not parse request body as JSON: not an object");
}

const passwordGrant = z.object({
  email: z.string().optional(),
  phone: z.string().optional(),
  password: z.string(),
})
  .loose();
const refreshGrant = z.object({ refresh_token: z.string().optional() }).loose();
const adminUserParams = z.object({
  id: z.string().optional(),
  email: z.string().optional(),
  password: z.string().nullable().optional(),
  email_confirm: z.boolean().optional(),
  role: z.string().optional(),
  user_metadata: z.record(z.string(), z.unknown()).nullable().optional(),
  app_metadata: z.record(z.string(), z.unknown()).nullable().optional(),
}).loose();

/** The pool or one of its transactions. */
type Db = postgres.Sql | postgres.TransactionSql;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function createAuthServer(options: AuthServerOptions): AuthServer {
  const url = new URL(options.dbUrl);
  url.username = "supabase_auth_admin";
  const sql = postgres(url.toString(), { max: 4, onnotice: () => {} });
  const key = new TextEncoder().encode(options.jwtSecret);
  const expiry = options.jwtExpiry ?? 3600;
  const issuer = options.issuer ?? "http://127.0.0.1:54321/auth/v1";
  const now = options.now ?? (() => new Date());

  async function loadUser(db: Db, id: string): Promise<UserRow | undefined> {
    const [user] = await db<UserRow[]>`select * from auth.users where id = ${id}`;
    return user;
  }

  async function identitiesOf(db: Db, id: string): Promise<IdentityRow[]> {
    return await db<IdentityRow[]>`select * from auth.identities where user_id = ${id} order by created_at`;
  }

  async function userBody(db: Db, user: UserRow) {
    return userJson(user, await identitiesOf(db, user.id));
  }

  /** GoTrue's AccessTokenClaims for a session, in GoTrue's field order. */
  async function accessToken(
    user: UserRow,
    sessionId: string,
  ): Promise<{ token: string; expiresAt: number }> {
    const issuedAt = Math.floor(now().getTime() / 1000);
    const expiresAt = issuedAt + expiry;
    const token = await new SignJWT({
      iss: issuer,
      sub: user.id,
      aud: user.aud ?? AUDIENCE,
      exp: expiresAt,
      iat: issuedAt,
      email: user.email ?? "",
      phone: user.phone ?? "",
      app_metadata: user.raw_app_meta_data ?? {},
      user_metadata: user.raw_user_meta_data ?? {},
      role: user.role ?? AUDIENCE,
      aal: "aal1",
      amr: [{ method: "password", timestamp: issuedAt }],
      session_id: sessionId,
      is_anonymous: user.is_anonymous,
    }).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(key);
    return { token, expiresAt };
  }

  async function session(db: Db, user: UserRow, sessionId: string, refreshToken: string) {
    const { token, expiresAt } = await accessToken(user, sessionId);
    return {
      access_token: token,
      token_type: "bearer",
      expires_in: expiry,
      expires_at: expiresAt,
      refresh_token: refreshToken,
      user: await userBody(db, user),
    };
  }

  const isBanned = (user: UserRow) => user.banned_until !== null && user.banned_until > now();

  async function signInWithPassword(req: Request) {
    const params = passwordGrant.safeParse(await readJson(req));
    if (!params.success) throw new AuthError(400, "validation_failed", "missing email or phone");
    const { email, password } = params.data;
    if (email === undefined || email === "") {
      // Phone sign-in is not part of the stand-in.
      throw new AuthError(400, "validation_failed", "missing email or phone");
    }
    const [user] = await sql<UserRow[]>`
      select * from auth.users
      where lower(email) = lower(${email}) and aud = ${AUDIENCE} and is_sso_user = false and deleted_at is null`;
    if (user === undefined || user.encrypted_password === null || user.encrypted_password === "") {
      throw invalidCredentials();
    }
    if (isBanned(user)) throw new AuthError(400, "user_banned", "User is banned");
    if (!(await bcrypt.compare(password, user.encrypted_password))) throw invalidCredentials();
    if (user.email_confirmed_at === null) {
      throw new AuthError(400, "email_not_confirmed", "Email not confirmed");
    }
    const at = now();
    return await sql.begin(async (tx) => {
      const sessionId = crypto.randomUUID();
      const refreshToken = secureAlphanumeric(12);
      await tx`insert into auth.sessions (id, user_id, created_at, updated_at, aal, user_agent)
               values (${sessionId}, ${user.id}, ${at}, ${at}, 'aal1', ${req.headers.get("user-agent")})`;
      await tx`insert into auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at,
                                                session_id)
               values ('00000000-0000-0000-0000-000000000000', ${refreshToken}, ${user.id}, false, ${at}, ${at},
                       ${sessionId})`;
      const [signedIn] = await tx<UserRow[]>`
        update auth.users set last_sign_in_at = ${at} where id = ${user.id} returning *`;
      return await session(tx, signedIn!, sessionId, refreshToken);
    });
  }

  async function refresh(req: Request) {
    const params = refreshGrant.parse(await readJson(req));
    if (params.refresh_token === undefined || params.refresh_token === "") {
      throw new AuthError(400, "validation_failed", "refresh_token required");
    }
    const at = now();
    const result = await sql.begin(async (tx) => {
      const [token] = await tx<
        { token: string; revoked: boolean; session_id: string | null; updated_at: Date }[]
      >`
        select token, revoked, session_id, updated_at from auth.refresh_tokens
        where token = ${params.refresh_token!} for update`;
      if (token === undefined) {
        return new AuthError(
          400,
          "refresh_token_not_found",
          "Invalid Refresh Token: Refresh Token Not Found",
        );
      }
      const [owner] = await tx<UserRow[]>`
        select u.* from auth.sessions s join auth.users u on u.id = s.user_id where s.id = ${token.session_id}`;
      if (owner === undefined) {
        return new AuthError(400, "session_not_found", "Invalid Refresh Token: No Valid Session Found");
      }
      if (isBanned(owner)) return new AuthError(400, "user_banned", "Invalid Refresh Token: User Banned");
      let next: string;
      if (token.revoked) {
        const [active] = await tx<{ token: string }[]>`
          select token from auth.refresh_tokens where session_id = ${token.session_id} and not revoked
          order by id desc limit 1`;
        if (active === undefined || at.getTime() > token.updated_at.getTime() + REUSE_INTERVAL_MS) {
          // Reuse of a rotated token past the interval: GoTrue treats it as theft and ends the session.
          await tx`delete from auth.sessions where id = ${token.session_id}`;
          return new AuthError(400, "refresh_token_already_used", "Invalid Refresh Token: Already Used");
        }
        next = active.token;
      } else {
        next = secureAlphanumeric(12);
        await tx`update auth.refresh_tokens set revoked = true, updated_at = ${at} where token = ${token.token}`;
        await tx`insert into auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at,
                                                  parent, session_id)
                 values ('00000000-0000-0000-0000-000000000000', ${next}, ${owner.id}, false, ${at}, ${at},
                         ${token.token}, ${token.session_id})`;
        await tx`update auth.sessions set refreshed_at = ${at}, updated_at = ${at} where id = ${token.session_id}`;
      }
      return await session(tx, owner, token.session_id!, next);
    });
    // The theft case must commit its session deletion, so the error is returned from the transaction.
    if (result instanceof AuthError) throw result;
    return result;
  }

  /** GoTrue's requireAuthentication: a valid bearer JWT whose user (and session, if named) exists. */
  async function authenticated(req: Request) {
    const match = /^Bearer\s+(\S+)$/i.exec(req.headers.get("authorization") ?? "");
    if (match?.[1] === undefined) {
      throw new AuthError(401, "no_authorization", "This endpoint requires a valid Bearer token");
    }
    let claims: Record<string, unknown>;
    try {
      ({ payload: claims } = await jwtVerify(match[1], key, { algorithms: ["HS256"], currentDate: now() }));
    } catch (error) {
      const reason = error instanceof joseErrors.JWTExpired
        ? "token has invalid claims: token is expired"
        : "";
      throw new AuthError(
        403,
        "bad_jwt",
        `invalid JWT: unable to parse or verify signature, ${reason}`.trim(),
      );
    }
    return claims;
  }

  async function currentUser(req: Request) {
    const claims = await authenticated(req);
    const sub = typeof claims.sub === "string" ? claims.sub : "";
    if (sub === "") throw new AuthError(403, "bad_jwt", "invalid claim: missing sub claim");
    if (!UUID.test(sub)) throw new AuthError(400, "bad_jwt", "invalid claim: sub claim must be a UUID");
    const user = await loadUser(sql, sub);
    if (user === undefined) {
      throw new AuthError(403, "user_not_found", "User from sub claim in JWT does not exist");
    }
    const sessionId = typeof claims.session_id === "string" ? claims.session_id : undefined;
    if (sessionId !== undefined) {
      const [found] = await sql`select 1 from auth.sessions where id = ${
        UUID.test(sessionId) ? sessionId : null
      }`;
      if (found === undefined) {
        throw new AuthError(403, "session_not_found", "Session from session_id claim in JWT does not exist");
      }
    }
    if (isBanned(user)) throw new AuthError(403, "user_banned", "User is banned");
    return { user, sessionId };
  }

  async function logout(req: Request, url: URL) {
    const scope = url.searchParams.get("scope") ?? "global";
    if (!["global", "local", "others"].includes(scope)) {
      throw new AuthError(400, "validation_failed", `Unsupported logout scope "${scope}"`);
    }
    const { user, sessionId } = await currentUser(req);
    // Deleting a session deletes its refresh tokens (foreign key on delete cascade), as GoTrue's Logout does.
    if (scope === "local" && sessionId !== undefined) {
      await sql`delete from auth.sessions where id = ${sessionId}`;
    } else if (scope === "others" && sessionId !== undefined) {
      await sql`delete from auth.sessions where user_id = ${user.id} and id <> ${sessionId}`;
    } else {
      await sql`delete from auth.sessions where user_id = ${user.id}`;
    }
    return new Response(null, { status: 204 });
  }

  async function requireAdmin(req: Request) {
    const claims = await authenticated(req);
    if (typeof claims.role !== "string" || !ADMIN_ROLES.includes(claims.role)) {
      throw new AuthError(403, "not_admin", "User not allowed");
    }
  }

  async function createUser(req: Request) {
    const parsed = adminUserParams.safeParse(await readJson(req));
    if (!parsed.success) throw new AuthError(400, "validation_failed", parsed.error.issues[0]?.message ?? "");
    const params = parsed.data;
    const email = params.email?.trim().toLowerCase() ?? "";
    if (email === "") {
      throw new AuthError(400, "validation_failed", "Cannot create a user without either an email or phone");
    }
    if (!/^[^@\s]+@[^@\s]+$/.test(email)) {
      throw new AuthError(400, "validation_failed", "Unable to validate email address: invalid format");
    }
    const id = params.id ?? crypto.randomUUID();
    if (!UUID.test(id)) {
      throw new AuthError(400, "validation_failed", "ID must conform to the uuid v4 format");
    }
    const [taken] = await sql`select 1 from auth.users where lower(email) = ${email} and aud = ${AUDIENCE}`;
    if (taken !== undefined) {
      throw new AuthError(422, "email_exists", "A user with this email address has already been registered");
    }
    // Without a password GoTrue stores a random one, so the user cannot sign in with a password until set.
    const password = params.password === undefined || params.password === null || params.password === ""
      ? secureAlphanumeric(64)
      : params.password;
    const hash = await hashPassword(password);
    const appMetadata = { ...(params.app_metadata ?? {}), provider: "email", providers: ["email"] };
    const at = now();
    return await sql.begin(async (tx) => {
      const [user] = await tx<UserRow[]>`
        insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                                raw_app_meta_data, raw_user_meta_data, created_at, updated_at,
                                confirmation_token, recovery_token, email_change_token_new, email_change)
        values ('00000000-0000-0000-0000-000000000000', ${id}, ${AUDIENCE}, ${params.role ?? AUDIENCE},
                ${email}, ${hash}, ${params.email_confirm === true ? at : null}, ${
        tx.json(appMetadata as never)
      },
                ${tx.json((params.user_metadata ?? {}) as never)}, ${at}, ${at}, '', '', '', '')
        returning *`;
      await tx`insert into auth.identities (provider_id, user_id, identity_data, provider, created_at, updated_at)
               values (${id}, ${id}, ${tx.json({ sub: id, email, email_verified: false } as never)}, 'email',
                       ${at}, ${at})`;
      return await userBody(tx, user!);
    });
  }

  async function listUsers(url: URL) {
    const page = Number(url.searchParams.get("page") ?? 1);
    const perPage = Number(url.searchParams.get("per_page") ?? 50);
    if (!Number.isInteger(page) || page < 1 || !Number.isInteger(perPage) || perPage < 1) {
      throw new AuthError(400, "validation_failed", "Bad Pagination Parameters");
    }
    const [{ count }] = await sql<[{ count: number }]>`
      select count(*)::int as count from auth.users where aud = ${AUDIENCE}`;
    const users = await sql<UserRow[]>`
      select * from auth.users where aud = ${AUDIENCE}
      order by created_at desc, id limit ${perPage} offset ${(page - 1) * perPage}`;
    const body = { users: await Promise.all(users.map((user) => userBody(sql, user))), aud: AUDIENCE };
    // GoTrue's addPaginationHeaders: X-Total-Count and a Link header auth-js reads nextPage/lastPage from.
    const last = Math.max(1, Math.ceil(count / perPage));
    const link = (n: number, rel: string) => {
      const target = new URL(url);
      target.searchParams.set("page", String(n));
      target.searchParams.set("per_page", String(perPage));
      return `<${target.pathname}${target.search}>; rel="${rel}"`;
    };
    const links = [...(page < last ? [link(page + 1, "next")] : []), link(last, "last")];
    return Response.json(body, { headers: { "x-total-count": String(count), link: links.join(", ") } });
  }

  async function adminUser(req: Request, id: string) {
    if (!UUID.test(id)) throw new AuthError(400, "validation_failed", "user_id must be an UUID");
    const user = await loadUser(sql, id);
    if (user === undefined) throw new AuthError(404, "user_not_found", "User not found");
    if (req.method === "GET") return await userBody(sql, user);
    const body = await userBody(sql, user);
    await sql`delete from auth.users where id = ${id}`;
    return body;
  }

  async function route(req: Request): Promise<Response | Record<string, unknown>> {
    const url = new URL(req.url);
    const path = url.pathname.replace(/^\/auth\/v1/, "").replace(/\/$/, "") || "/";
    const at = `${req.method} ${path}`;
    if (at === "GET /health") {
      return {
        version: "wabase-local",
        name: "GoTrue",
        description: "wabase's local stand-in for Supabase Auth",
      };
    }
    if (at === "POST /token") {
      const grant = url.searchParams.get("grant_type");
      if (grant === "password") return await signInWithPassword(req);
      if (grant === "refresh_token") return await refresh(req);
      throw new AuthError(400, "invalid_credentials", "unsupported_grant_type");
    }
    if (at === "GET /user") return await userBody(sql, (await currentUser(req)).user);
    if (at === "POST /logout") return await logout(req, url);
    if (path === "/admin/users" && (req.method === "GET" || req.method === "POST")) {
      await requireAdmin(req);
      return req.method === "GET" ? await listUsers(url) : await createUser(req);
    }
    const adminMatch = /^\/admin\/users\/([^/]+)$/.exec(path);
    if (adminMatch !== null && (req.method === "GET" || req.method === "DELETE")) {
      await requireAdmin(req);
      return await adminUser(req, adminMatch[1]!);
    }
    throw new AuthError(
      501,
      "not_implemented",
      `${req.method} /auth/v1${path} is not part of the local Auth stand-in (see docs/local-stack.md)`,
    );
  }

  return {
    async handle(req) {
      try {
        const result = await route(req);
        return result instanceof Response ? result : Response.json(result);
      } catch (error) {
        if (error instanceof AuthError) return errorResponse(req, error);
        console.error(`auth stand-in: ${error instanceof Error ? error.stack : error}`);
        return errorResponse(req, new AuthError(500, "unexpected_failure", "Internal Server Error"));
      }
    },
    close: () => sql.end(),
  };
}
