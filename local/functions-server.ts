// The local stand-in for Supabase's edge runtime and API gateway: serves every folder of
// supabase/functions (except _shared) at /functions/v1/<name> by importing its exported handler, so each
// index.ts stays a plain `Deno.serve(handler)` for Supabase. Like the gateway, it enforces a valid JWT
// (any role, the anon key included) for functions whose config.toml block does not say verify_jwt = false,
// and passes the request on as `/<name>/...`.
import { parse as parseToml } from "smol-toml";
import { z } from "zod";
import { authenticate, authEnv, createVerifier, type Verifier } from "../supabase/functions/_shared/auth.ts";
import { ConfigError, loadEnv, parseEnv } from "../supabase/functions/_shared/env.ts";
import { asHttpError, errorResponse, HttpError } from "../supabase/functions/_shared/http.ts";
import { loadLocalEnv } from "./env.ts";

const repoRoot = new URL("../", import.meta.url);
const functionsDir = new URL("supabase/functions/", repoRoot);

type Handler = (req: Request) => Response | Promise<Response>;

interface LocalFunction {
  name: string;
  handler: Handler;
  verifyJwt: boolean;
}

const handlerModule = z.object({
  handler: z.custom<Handler>((value) => typeof value === "function", "handler.ts must export `handler`"),
  env: z.custom<z.ZodObject>(
    (value) => value instanceof z.ZodObject,
    "handler.ts must export its `env` schema",
  ),
});

const functionConfig = z.object({
  functions: z.record(z.string(), z.object({ verify_jwt: z.boolean().optional() }).loose()).optional(),
}).loose();

/** The function folders: every directory except `_shared` and other `_`/`.` prefixed ones. */
async function functionNames(): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(functionsDir)) {
    if (entry.isDirectory && !/^[_.]/.test(entry.name)) names.push(entry.name);
  }
  return names.sort();
}

/**
 * Imports every function and validates its env now, so a misconfigured stack refuses to start with the
 * variables named instead of answering 500s later.
 */
export async function loadFunctions(): Promise<LocalFunction[]> {
  const config = functionConfig.parse(
    parseToml(await Deno.readTextFile(new URL("supabase/config.toml", repoRoot))),
  );
  const loaded: LocalFunction[] = [];
  const problems: string[] = [];
  for (const name of await functionNames()) {
    const module = handlerModule.parse(await import(new URL(`${name}/handler.ts`, functionsDir).href));
    try {
      parseEnv(module.env);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems.push(...error.problems.map((problem) => `${name}: ${problem}`));
    }
    loaded.push({ name, handler: module.handler, verifyJwt: config.functions?.[name]?.verify_jwt ?? true });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return loaded;
}

const ROUTE = /^\/functions\/v1\/([^/]+)(\/.*)?$/;

/** Routes /functions/v1/<name>/rest to the function <name>, enforcing verify_jwt. */
export function createRouter(functions: LocalFunction[], verify: Verifier): Handler {
  const byName = new Map(functions.map((fn) => [fn.name, fn]));
  return async (req) => {
    const url = new URL(req.url);
    const match = ROUTE.exec(url.pathname);
    const fn = match?.[1] === undefined ? undefined : byName.get(match[1]);
    if (fn === undefined) {
      return errorResponse(new HttpError(404, "function_not_found", `no function at ${url.pathname}`));
    }
    if (fn.verifyJwt && req.method !== "OPTIONS") {
      try {
        await authenticate(req, verify);
      } catch (error) {
        return errorResponse(asHttpError(error));
      }
    }
    // Passed on as it came, its signal too (a handler sees its caller disconnect, as on the edge runtime); the
    // function finds its subpath below /functions/v1/<name> as below /<name>. A second Request around the body
    // would make every body a JavaScript stream to pipe.
    return await fn.handler(req);
  };
}

export interface ServerOptions {
  hostname?: string;
  port?: number;
  signal?: AbortSignal;
}

/** Loads env defaults, imports the functions and serves them; resolves once listening. */
export async function startFunctionsServer(
  options: ServerOptions = {},
): Promise<Deno.HttpServer<Deno.NetAddr>> {
  await loadLocalEnv();
  const functions = await loadFunctions();
  const router = createRouter(functions, createVerifier(loadEnv(authEnv)));
  const { promise: listening, resolve } = Promise.withResolvers<void>();
  const server = Deno.serve({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 54321,
    signal: options.signal,
    onListen: () => resolve(),
  }, router);
  await listening;
  return server;
}

if (import.meta.main) {
  try {
    const server = await startFunctionsServer({ port: Number(Deno.env.get("FUNCTIONS_PORT") ?? 54321) });
    const names = await functionNames();
    console.log(JSON.stringify({
      ts: new Date().toISOString(),
      level: "info",
      msg: "functions server listening",
      url: `http://${server.addr.hostname}:${server.addr.port}/functions/v1/`,
      functions: names,
    }));
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(signal, () => server.shutdown().then(() => Deno.exit(0)));
    }
  } catch (error) {
    console.error(
      `functions server refused to start: ${error instanceof Error ? error.message : String(error)}`,
    );
    Deno.exit(1);
  }
}
