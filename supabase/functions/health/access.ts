// Who may read what the health function knows. Liveness and a terse readiness (ready or not, nothing else)
// are for anyone: load balancers and uptime checks call them without a JWT. The figures (/metrics, /status) and
// readiness's reasons (driver and cron error text) need HEALTH_TOKEN, unless they are open: HEALTH_PUBLIC=true,
// or the local stack (SUPABASE_URL on a loopback address) with no token set. Off the local stack an unset token
// therefore closes them rather than opening them.
import { timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { httpUrl } from "../_shared/env.ts";
import { HttpError } from "../_shared/http.ts";

export const accessEnv = z.object({
  // Required (Authorization: Bearer <token>, or ?token=<token> for the page) for the figures and the reasons.
  HEALTH_TOKEN: z.string().min(16, "HEALTH_TOKEN must be at least 16 characters").optional(),
  // true: the figures and the reasons are open to anyone, token or not.
  HEALTH_PUBLIC: z.stringbool().default(false),
  // Where the project is served; a loopback address means the local stack.
  SUPABASE_URL: httpUrl.optional(),
});
export type AccessEnv = z.infer<typeof accessEnv>;

/** Whether `url` names this machine (127.0.0.0/8, ::1, localhost). */
export function isLoopback(url: string | undefined): boolean {
  if (url === undefined) return false;
  const host = new URL(url).hostname;
  return host === "localhost" || host === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Whether the figures and reasons are open to anyone. */
export function isOpen(env: AccessEnv): boolean {
  return env.HEALTH_PUBLIC || (env.HEALTH_TOKEN === undefined && isLoopback(env.SUPABASE_URL));
}

const sha256 = async (text: string) =>
  new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));

/** Whether the request carries HEALTH_TOKEN (compared in constant time). */
async function carriesToken(req: Request, token: string): Promise<boolean> {
  const bearer = req.headers.get("authorization")?.match(/^Bearer\s+(.+)$/i)?.[1];
  const given = bearer ?? new URL(req.url).searchParams.get("token") ?? "";
  return timingSafeEqual(await sha256(given), await sha256(token));
}

/** Whether this request may read the figures and the reasons. */
export async function mayReadDetails(req: Request, env: AccessEnv): Promise<boolean> {
  return isOpen(env) || (env.HEALTH_TOKEN !== undefined && await carriesToken(req, env.HEALTH_TOKEN));
}

/** Refuses the request unless it may read the figures: 401 without the token, 403 when none is configured. */
export async function requireDetails(req: Request, env: AccessEnv): Promise<void> {
  if (await mayReadDetails(req, env)) return;
  if (env.HEALTH_TOKEN === undefined) {
    throw new HttpError(
      403,
      "health_token_required",
      "off the local stack this route needs HEALTH_TOKEN to be set (or HEALTH_PUBLIC=true)",
    );
  }
  throw new HttpError(401, "unauthorized", "this route needs the HEALTH_TOKEN (Bearer or ?token=)");
}
