// What makes the buffer processor run locally, chosen by WABASE_TRIGGER (docs/local-stack.md):
//  - worker (default): the long-running LISTEN worker (local/buffer-worker.ts), which no hosted project runs;
//  - cron: exactly the hosted path. The Vault secrets hold this stack's URL and service role key, the pg_net
//    stand-in's sender (local/pg-net/sender.ts) sends what the database queues, and the pg_cron job
//    wabase-buffer-processor keeps one keepalive invocation of the buffer-processor function running. Debian's
//    pg_cron 1.4 has no seconds schedules, so where it is older than 1.5 a 1 s timer runs the job's command
//    in its place (the minute job still runs too).
import postgres from "postgres";
import { runWorker } from "./buffer-worker.ts";
import { type NetSender, startNetSender } from "./pg-net/sender.ts";
import type { ProcessorEnv } from "../supabase/functions/buffer-processor/config.ts";

export type TriggerMode = "worker" | "cron";

/** WABASE_TRIGGER, worker by default. */
export function triggerMode(value = Deno.env.get("WABASE_TRIGGER")): TriggerMode {
  if (value === undefined || value === "" || value === "worker") return "worker";
  if (value === "cron") return "cron";
  throw new Error(`WABASE_TRIGGER must be worker or cron, not ${value}`);
}

export interface TriggerOptions {
  dbUrl: string;
  /** The stack's base URL (the Vault secret wabase_project_url): functions at <url>/functions/v1/<name>. */
  projectUrl: string;
  serviceRoleKey: string;
  /** Worker mode: the processor's settings (read from the environment by default). */
  env?: ProcessorEnv;
}

export interface Trigger {
  mode: TriggerMode;
  stop(): Promise<void>;
}

const SECRETS = ["wabase_project_url", "wabase_service_role_key"] as const;

/** Sets the two Vault secrets wa.invoke_edge_function reads, as the deploy guide has a team do once. */
export async function setVaultSecrets(sql: postgres.Sql, projectUrl: string, serviceRoleKey: string) {
  const values = { wabase_project_url: projectUrl, wabase_service_role_key: serviceRoleKey };
  for (const name of SECRETS) {
    await sql`
      select coalesce(
        (select vault.update_secret(s.id, ${
      values[name]
    }) is not null from vault.secrets s where s.name = ${name}),
        vault.create_secret(${values[name]}, ${name}) is not null)`;
  }
}

async function startCron(options: TriggerOptions): Promise<Trigger> {
  const sql = postgres(options.dbUrl, { max: 2, onnotice: () => {} });
  await setVaultSecrets(sql, options.projectUrl, options.serviceRoleKey);
  const sender: NetSender = await startNetSender(options.dbUrl);
  const [cron] = await sql<{ seconds: boolean }[]>`
    select coalesce(wa.pg_cron_version() >= array[1, 5], false) as seconds`;
  const tick = () => sql`select wa.invoke_buffer_processor()`.catch(() => {});
  // The first tick now rather than at the next minute.
  await tick();
  const timer = cron?.seconds ? undefined : setInterval(tick, 1_000);
  return {
    mode: "cron",
    async stop() {
      clearInterval(timer);
      await sender.stop();
      await sql`delete from vault.secrets where name in ${sql([...SECRETS])}`.catch(() => {});
      await sql.end({ timeout: 5 });
    },
  };
}

export async function startTrigger(mode: TriggerMode, options: TriggerOptions): Promise<Trigger> {
  if (mode === "cron") return await startCron(options);
  const controller = new AbortController();
  const worker = runWorker({ signal: controller.signal, env: options.env });
  return {
    mode,
    async stop() {
      controller.abort();
      await worker.catch(() => {});
    },
  };
}
