// What a result was measured on: the machine (cores, memory, CPU), the database server and its settings that
// change the figures, and the versions of everything compared. Written into every bench/results/<name>.json.
import importMap from "../import_map.json" with { type: "json" };
import { type BenchContext, connect } from "./lib.ts";

export interface Environment {
  machine: { cores: number; memory_bytes: number; cpu: string; os: string; kernel: string };
  database: { server_version: string; pg_cron: string | null; fsync: string; synchronous_commit: string };
  versions: Record<string, string>;
}

async function cpuModel(): Promise<string> {
  try {
    const info = await Deno.readTextFile("/proc/cpuinfo");
    return /^model name\s*:\s*(.+)$/m.exec(info)?.[1]?.trim() ?? "unknown";
  } catch {
    return "unknown";
  }
}

async function gitCommit(): Promise<string> {
  try {
    const out = await new Deno.Command("git", {
      args: ["rev-parse", "--short", "HEAD"],
      cwd: new URL("..", import.meta.url),
      stdout: "piped",
      stderr: "null",
    }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : "unknown";
  } catch {
    return "unknown";
  }
}

/** The version pinned in the import map for `name` ("npm:pg-boss@10.4.2" → "10.4.2"). */
function pinned(name: keyof typeof importMap.imports): string {
  return importMap.imports[name].replace(/^npm:(@[^/]+\/)?[^@]+@/, "");
}

export async function environment(ctx: BenchContext): Promise<Environment> {
  const sql = connect(ctx, 1);
  try {
    const [db] = await sql<Environment["database"][]>`
      select current_setting('server_version') as server_version,
             (select extversion from pg_extension where extname = 'pg_cron') as pg_cron,
             current_setting('fsync') as fsync, current_setting('synchronous_commit') as synchronous_commit`;
    return {
      machine: {
        cores: navigator.hardwareConcurrency,
        memory_bytes: Deno.systemMemoryInfo().total,
        cpu: await cpuModel(),
        os: `${Deno.build.os} ${Deno.build.arch}`,
        kernel: Deno.osRelease(),
      },
      database: db!,
      versions: {
        wabase: await gitCommit(),
        deno: Deno.version.deno,
        postgres_js: pinned("postgres"),
        "graphile-worker": pinned("graphile-worker"),
        "pg-boss": pinned("pg-boss"),
      },
    };
  } finally {
    await sql.end();
  }
}

/** One line for the foot of the table. */
export function describe(env: Environment): string {
  const gib = (env.machine.memory_bytes / 2 ** 30).toFixed(1);
  return `${env.machine.cores} CPU(s) (${env.machine.cpu}), ${gib} GiB; Postgres ${env.database.server_version} ` +
    `(fsync=${env.database.fsync}, synchronous_commit=${env.database.synchronous_commit}), pg_cron ` +
    `${env.database.pg_cron ?? "none"}; Deno ${env.versions.deno}; wabase ${env.versions.wabase}`;
}
