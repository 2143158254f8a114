// Everything behind the local gateway on :54321: the real PostgREST, the Auth stand-in, the Storage and
// Realtime stand-ins, and the functions router, assembled into one request handler. `npm start`
// (local/stack-server.ts) serves it on 54321; tests serve it on a free port against their throwaway cluster.
import { createAuthServer } from "./auth/server.ts";
import { type ApiKeys, createGateway, type Handler } from "./gateway.ts";
import { startPostgrest } from "./postgrest.ts";
import { createRealtimeServer } from "./realtime/server.ts";
import { createStorageServer } from "./storage/server.ts";
import { parse as parseToml } from "smol-toml";

export interface ApiOptions {
  dbUrl: string;
  jwtSecret: string;
  keys: ApiKeys;
  /** The /functions/v1/ router (local/functions-server.ts createRouter). */
  functions: Handler;
  /** The URL clients use, for the OpenAPI document and the `iss` of user tokens. */
  publicUrl: string;
  /** Access token lifetime in seconds (config.toml [auth] jwt_expiry). */
  jwtExpiry?: number;
  storageRoot: string;
  /** PostgREST's own log lines. */
  onPostgrestLog?: (line: string) => void;
}

export interface Api {
  handler: Handler;
  /** The PostgREST version serving /rest/v1/. */
  postgrestVersion: string;
  close(): Promise<void>;
}

export async function startApi(options: ApiOptions): Promise<Api> {
  const postgrest = await startPostgrest({
    dbUrl: options.dbUrl,
    jwtSecret: options.jwtSecret,
    publicUrl: options.publicUrl,
    onLog: options.onPostgrestLog,
  });
  const auth = createAuthServer({
    dbUrl: options.dbUrl,
    jwtSecret: options.jwtSecret,
    jwtExpiry: options.jwtExpiry,
    issuer: `${options.publicUrl.replace(/\/$/, "")}/auth/v1`,
  });
  const storage = createStorageServer({
    dbUrl: options.dbUrl,
    jwtSecret: options.jwtSecret,
    root: options.storageRoot,
    fileSizeLimit: await configuredFileSizeLimit(),
  });
  const realtime = createRealtimeServer({ dbUrl: options.dbUrl, jwtSecret: options.jwtSecret });
  const handler = createGateway({
    rest: postgrest.fetch,
    auth: auth.handle,
    functions: options.functions,
    storage: storage.handle,
    realtime: realtime.handle,
  }, options.keys);
  return {
    handler,
    postgrestVersion: postgrest.version,
    close: async () => {
      await Promise.all([postgrest.close(), auth.close(), storage.close(), realtime.close()]);
    },
  };
}

const UNITS: Record<string, number> = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  KIB: 1024,
  MIB: 1024 ** 2,
  GIB: 1024 ** 3,
};

/** config.toml's [storage] file_size_limit ("100MiB", the CLI's units), or undefined for the CLI's default. */
async function configuredFileSizeLimit(): Promise<number | undefined> {
  const config = parseToml(await Deno.readTextFile(new URL("../supabase/config.toml", import.meta.url)));
  const value = (config.storage as { file_size_limit?: unknown } | undefined)?.file_size_limit;
  const match = typeof value === "string" ? /^([0-9]+)\s*([KMG]i?B|B)?$/i.exec(value) : null;
  return match === null ? undefined : Number(match[1]) * UNITS[(match[2] ?? "B").toUpperCase()]!;
}

/** The four keys from the environment (supabase/.env.local holds the CLI's local ones). */
export function apiKeys(env: Record<string, string | undefined>): ApiKeys {
  const need = (name: string) => {
    const value = env[name];
    if (value === undefined || value === "") throw new Error(`${name} is missing (see supabase/.env.local)`);
    return value;
  };
  return {
    anon: need("SUPABASE_ANON_KEY"),
    serviceRole: need("SUPABASE_SERVICE_ROLE_KEY"),
    publishable: need("SUPABASE_PUBLISHABLE_KEY"),
    secret: need("SUPABASE_SECRET_KEY"),
  };
}
