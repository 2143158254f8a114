// The hosted path as the benchmarks run it (WABASE_TRIGGER=cron, local/trigger.ts): the functions server as
// its own OS process (the edge runtime), the Vault secrets pointing at it, the pg_net stand-in's sender and
// the keepalive tick. As a WorkerPool (bench/workers.ts) it is the chaos benchmark's victim in cron mode: a
// kill SIGKILLs the edge runtime mid-invocation and starts another on a new port (the Vault secret follows),
// so the next tick's invocation has to take over the dead holder's slot once its heartbeat lease runs out.
import postgres from "postgres";
import { localEnvDefaults } from "../local/env.ts";
import { setVaultSecrets, startTrigger, type Trigger } from "../local/trigger.ts";
import { readLines, type WorkerPool } from "./workers.ts";

const serverPath = new URL("../local/functions-server.ts", import.meta.url).pathname;

interface Runtime {
  child: Deno.ChildProcess;
  /** The project URL: functions at <url>/functions/v1/<name>. */
  url: string;
  killed: boolean;
  done: Promise<void>;
}

export interface HostedPool extends WorkerPool {
  /** The edge runtime's process id (to read its CPU time). */
  pid(): number;
  /** The current project URL. */
  url(): string;
}

/** Starts the edge runtime with `env` on top of the real environment, and the hosted trigger pointing at it. */
export async function startHosted(dbUrl: string, env: Record<string, string>): Promise<HostedPool> {
  const outcomes: Record<string, number> = {};
  const unexpectedExits: string[] = [];
  const serviceRoleKey = (await localEnvDefaults()).SUPABASE_SERVICE_ROLE_KEY ?? "";
  const sql = postgres(dbUrl, { max: 1, onnotice: () => {} });
  let kills = 0;
  let stopping = false;
  let current: Runtime;

  const spawn = async (): Promise<Runtime> => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", serverPath],
      env: { ...env, SUPABASE_DB_URL: dbUrl, FUNCTIONS_PORT: "0" },
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const { promise: listening, resolve } = Promise.withResolvers<string>();
    const runtime: Runtime = { child, url: "", killed: false, done: Promise.resolve() };
    runtime.done = (async () => {
      await readLines(child.stdout, (line) => {
        if (line.includes('"functions server listening"')) {
          resolve(String(JSON.parse(line).url).replace(/\/functions\/v1\/$/, ""));
        } else if (line.includes('"job":"batch"')) {
          const outcome = String(JSON.parse(line).outcome);
          outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
        }
      });
      const status = await child.status;
      resolve("");
      if (runtime.killed || stopping) return;
      unexpectedExits.push(`edge runtime exited with ${status.code}`);
      current = await spawn();
      await setVaultSecrets(sql, current.url, serviceRoleKey);
    })();
    runtime.url = await listening;
    if (runtime.url === "") throw new Error("the functions server exited before listening");
    return runtime;
  };

  current = await spawn();
  const trigger: Trigger = await startTrigger("cron", { dbUrl, projectUrl: current.url, serviceRoleKey });
  return {
    outcomes,
    unexpectedExits,
    get kills() {
      return kills;
    },
    pid: () => current.child.pid,
    url: () => current.url,
    async killOne() {
      const victim = current;
      victim.killed = true;
      kills++;
      victim.child.kill("SIGKILL");
      await victim.done;
      current = await spawn();
      await setVaultSecrets(sql, current.url, serviceRoleKey);
    },
    async stop() {
      stopping = true;
      await trigger.stop();
      current.killed = true;
      current.child.kill("SIGTERM");
      await current.done;
      await sql`update wa.keepalive set holder = null, lease_until = null, ends_at = null, requested_at = null`;
      await sql.end();
    },
  };
}

/** CPU time (user + system) a process has used so far, in ms, from /proc (Linux). */
export async function cpuMs(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticksPerSecond = 100;
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond;
}

/** The keepalive slot's counters: invocations requested through pg_net and invocations that held it. */
export async function keepaliveCounts(sql: postgres.Sql): Promise<{ requests: number; holders: number }> {
  const [row] = await sql<{ requests: number; holders: number }[]>`
    select requests::int, holders::int from wa.keepalive where function_name = 'buffer-processor'`;
  return row ?? { requests: 0, holders: 0 };
}
