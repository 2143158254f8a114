// The Supabase API of the local stack (gateway, real PostgREST, Auth stand-in, functions) on a free port
// against the test database, for tests that talk to it with supabase-js or fetch as a frontend would.
import { authEnv, createVerifier } from "../../supabase/functions/_shared/auth.ts";
import { loadEnv } from "../../supabase/functions/_shared/env.ts";
import { loadLocalEnv, localEnvDefaults } from "../env.ts";
import { createRouter, loadFunctions } from "../functions-server.ts";
import type { Handler } from "../gateway.ts";
import { type Api, apiKeys, startApi } from "../gateway-server.ts";
import { testDbUrl } from "./db.ts";

export interface TestApi {
  /** http://127.0.0.1:<port>, what createClient is given. */
  url: string;
  anonKey: string;
  serviceRoleKey: string;
  postgrestVersion: string;
  close(): Promise<void>;
}

/** Starts the API; `functions` replaces the real functions router (which imports every function). */
export async function startTestApi(options: { functions?: Handler } = {}): Promise<TestApi> {
  await loadLocalEnv();
  const defaults = await localEnvDefaults();
  const functions = options.functions ??
    createRouter(await loadFunctions(), createVerifier(loadEnv(authEnv)));
  let api: Api | undefined;
  const storageRoot = await Deno.makeTempDir({ prefix: "wabase-storage-" });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) => api === undefined ? new Response("starting", { status: 503 }) : api.handler(req),
  );
  const url = `http://127.0.0.1:${server.addr.port}`;
  try {
    api = await startApi({
      dbUrl: testDbUrl(),
      jwtSecret: defaults.JWT_SECRET ?? "",
      keys: apiKeys(defaults),
      functions,
      publicUrl: url,
      storageRoot,
    });
  } catch (error) {
    await server.shutdown();
    throw error;
  }
  const started = api;
  return {
    url,
    anonKey: defaults.SUPABASE_ANON_KEY ?? "",
    serviceRoleKey: defaults.SUPABASE_SERVICE_ROLE_KEY ?? "",
    postgrestVersion: started.postgrestVersion,
    close: async () => {
      await server.shutdown();
      await started.close();
      await Deno.remove(storageRoot, { recursive: true });
    },
  };
}
