// Who may use a channel, decided the way Realtime decides it, so the policies on realtime.messages mean here
// what they mean on a project (source: supabase/realtime lib/realtime/tenants/authorization.ex and
// lib/realtime_web/channels/realtime_channel.ex, confirm_token; PLATFORM.md 4.3):
// - the token needs a valid signature, `role` and an `exp` in the future;
// - read: in one transaction, insert a probe row per extension for the topic as the admin connection, set the
//   caller's role, realtime.topic, request.jwt.claims and request.headers (transaction-local), select the
//   probes back: the broadcast probe visible means broadcasts may be read; roll back;
// - write: the same settings, then insert a broadcast row in a savepoint: success means the caller may
//   broadcast; roll back.
import type postgres from "postgres";
import { decodeJwt } from "jose";
import type { Claims, Verifier } from "../../supabase/functions/_shared/auth.ts";
import { HttpError } from "../../supabase/functions/_shared/http.ts";

/** Why a channel or socket is refused, in Realtime's words. */
export class Refusal {
  constructor(readonly reason: string) {}
}

/** The verified claims, or the reason Realtime gives for refusing the token. */
export async function checkToken(verify: Verifier, token: string): Promise<Claims | Refusal> {
  let claims: Claims;
  try {
    claims = await verify(token);
  } catch (error) {
    if (error instanceof HttpError && error.code === "token_expired") return expired(decodeJwt(token).exp);
    return new Refusal("Failed to validate JWT signature");
  }
  if (typeof claims.exp !== "number") return new Refusal("Fields `role` and `exp` are required in JWT");
  // The verifier tolerates a few seconds of clock skew; Realtime does not.
  if (claims.exp <= Date.now() / 1000) return expired(claims.exp);
  return claims;
}

function expired(exp: number | undefined): Refusal {
  return new Refusal(
    `Token has expired ${Math.max(0, Math.floor(Date.now() / 1000 - (exp ?? 0)))} seconds ago`,
  );
}

/** The settings Realtime gives a policy check: the caller's role and claims, the topic, the headers. */
export interface Caller {
  topic: string;
  claims: Claims;
  headers: Record<string, string>;
}

const rollback = Symbol("rollback");

/** Runs `fn` in a transaction that is always rolled back, returning what `fn` returned. */
async function inRolledBackTransaction<T>(
  sql: postgres.Sql,
  fn: (tx: postgres.TransactionSql) => Promise<T>,
) {
  let result: T | undefined;
  try {
    await sql.begin(async (tx) => {
      result = await fn(tx);
      throw rollback;
    });
  } catch (error) {
    if (error !== rollback) throw error;
  }
  return result as T;
}

async function impersonate(tx: postgres.TransactionSql, caller: Caller): Promise<void> {
  await tx`select set_config('role', ${caller.claims.role}, true),
                  set_config('realtime.topic', ${caller.topic}, true),
                  set_config('request.jwt.claims', ${JSON.stringify(caller.claims)}, true),
                  set_config('request.headers', ${JSON.stringify(caller.headers)}, true)`;
}

/** Whether the caller's SELECT policies on realtime.messages let them receive the topic's broadcasts. */
export function canRead(sql: postgres.Sql, caller: Caller): Promise<boolean> {
  return inRolledBackTransaction(sql, async (tx) => {
    const probes = await tx<{ id: string; extension: string }[]>`
      insert into realtime.messages (topic, extension)
      values (${caller.topic}, 'broadcast'), (${caller.topic}, 'presence')
      returning id, extension`;
    const broadcast = probes.find((probe) => probe.extension === "broadcast")?.id;
    const presence = probes.find((probe) => probe.extension === "presence")?.id;
    await impersonate(tx, caller);
    const visible = await tx<{ id: string }[]>`
      select id from realtime.messages
      where topic = ${caller.topic}
        and ((extension = 'broadcast' and id = ${broadcast ?? null})
          or (extension = 'presence' and id = ${presence ?? null}))`;
    return visible.some((row) => row.id === broadcast);
  });
}

/** Whether the caller's INSERT policies on realtime.messages let them broadcast on the topic. */
export function canWrite(sql: postgres.Sql, caller: Caller): Promise<boolean> {
  return inRolledBackTransaction(sql, async (tx) => {
    await impersonate(tx, caller);
    try {
      await tx.savepoint((sp) =>
        sp`insert into realtime.messages (topic, extension) values (${caller.topic}, 'broadcast')`
      );
      return true;
    } catch (error) {
      if ((error as { code?: string }).code === "42501") return false;
      throw error;
    }
  });
}
