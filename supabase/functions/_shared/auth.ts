// Supabase JWT verification with jose. Locally (and on projects still on the legacy secret) tokens are
// HS256 with JWT_SECRET; projects on asymmetric signing keys publish a JWKS. The token's own `alg` picks
// the key source, so a project migrating between the two accepts both during the switch. Only the
// signature-checked claims are trusted: roles come from `role`, never from user-editable metadata. Every token
// must carry `exp` (none lives forever), and a user's token `aud: authenticated` as GoTrue issues it.
import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors as joseErrors,
  type JWTPayload,
  jwtVerify,
} from "jose";
import { z } from "zod";
import { ConfigError, httpUrl, secret } from "./env.ts";
import { HttpError } from "./http.ts";

export const authEnv = z.object({
  // HS256 secret (local stack, legacy projects). Hosted reserves the SUPABASE_ prefix for its own secrets.
  JWT_SECRET: secret().optional(),
  // JWKS of asymmetric signing keys; defaults to the project's own endpoint derived from SUPABASE_URL.
  SUPABASE_JWKS_URL: httpUrl.optional(),
  SUPABASE_URL: httpUrl.optional(),
});
export type AuthEnv = z.infer<typeof authEnv>;

/** The verified claims wabase relies on. */
export interface Claims extends JWTPayload {
  role: string;
  sub?: string;
  email?: string;
}

const claimsShape = z.object({ role: z.string().min(1) }).loose();

export type Verifier = (token: string) => Promise<Claims>;

const ASYMMETRIC = ["RS256", "ES256"];

/**
 * Builds the verifier for this environment; a ConfigError when it has no key source. `now` is the clock expiry
 * is checked against (tests inject one).
 */
export function createVerifier(env: AuthEnv, now: () => Date = () => new Date()): Verifier {
  const hmacKey = env.JWT_SECRET === undefined ? undefined : new TextEncoder().encode(env.JWT_SECRET);
  const jwksUrl = env.SUPABASE_JWKS_URL ??
    (env.SUPABASE_URL === undefined ? undefined : `${env.SUPABASE_URL}/auth/v1/.well-known/jwks.json`);
  const jwks = jwksUrl === undefined ? undefined : createRemoteJWKSet(new URL(jwksUrl));
  if (hmacKey === undefined && jwks === undefined) {
    throw new ConfigError(["JWT_SECRET is missing (or set SUPABASE_JWKS_URL or SUPABASE_URL for a JWKS)"]);
  }
  return async (token) => {
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw invalid("the token is not a JWT");
    }
    try {
      let payload: JWTPayload;
      const checks = { clockTolerance: 5, currentDate: now(), requiredClaims: ["exp"] };
      if (alg === "HS256" && hmacKey !== undefined) {
        ({ payload } = await jwtVerify(token, hmacKey, { ...checks, algorithms: ["HS256"] }));
      } else if (alg !== undefined && ASYMMETRIC.includes(alg) && jwks !== undefined) {
        ({ payload } = await jwtVerify(token, jwks, { ...checks, algorithms: ASYMMETRIC }));
      } else {
        throw invalid(`tokens signed with ${alg ?? "no algorithm"} are not accepted`);
      }
      const claims = claimsShape.safeParse(payload);
      if (!claims.success) throw invalid("the token has no role claim");
      return claims.data as Claims;
    } catch (error) {
      if (error instanceof HttpError) throw error;
      if (error instanceof joseErrors.JWTExpired) {
        throw new HttpError(401, "token_expired", "the token has expired");
      }
      throw invalid("the token signature or claims are not valid");
    }
  };
}

function invalid(message: string): HttpError {
  return new HttpError(401, "invalid_token", message, undefined, { "www-authenticate": "Bearer" });
}

/** The bearer token of a request, or a 401. */
export function bearerToken(req: Request): string {
  const header = req.headers.get("authorization") ?? "";
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  if (match?.[1] === undefined) {
    throw new HttpError(
      401,
      "missing_token",
      "an Authorization: Bearer <jwt> header is required",
      undefined,
      {
        "www-authenticate": "Bearer",
      },
    );
  }
  return match[1];
}

/** Verifies the request's bearer token and returns its claims. */
export function authenticate(req: Request, verify: Verifier): Promise<Claims> {
  return verify(bearerToken(req));
}

/** A signed-in user's claims (role authenticated, uuid sub, aud authenticated), or 401/403. */
export async function requireUser(req: Request, verify: Verifier): Promise<Claims & { sub: string }> {
  const claims = await authenticate(req, verify);
  if (claims.role !== "authenticated" || !z.uuid().safeParse(claims.sub).success) {
    throw new HttpError(403, "user_required", "this endpoint needs a signed-in user's token");
  }
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!audiences.includes("authenticated")) throw invalid("a user's token must have aud authenticated");
  return claims as Claims & { sub: string };
}

/** Claims of the service role (cron jobs, trusted servers), or 401/403. */
export async function requireServiceRole(req: Request, verify: Verifier): Promise<Claims> {
  const claims = await authenticate(req, verify);
  if (claims.role !== "service_role") {
    throw new HttpError(403, "service_role_required", "this endpoint is for the service role only");
  }
  return claims;
}
