// The processor run the way WABASE_TRIGGER says, for tests that must pass both ways (local/test.sh runs them
// in each mode): the LISTEN worker in this process, or the hosted path (the functions server as its own
// process, the Vault secrets pointing at it, the pg_net stand-in's sender and the keepalive tick).
import { runWorker } from "../buffer-worker.ts";
import { localEnvDefaults } from "../env.ts";
import { startTrigger, type TriggerMode, triggerMode } from "../trigger.ts";
import { testDbUrl, testSql } from "./db.ts";
import { type Fakes, processorTestEnv, TEST_ACCESS_TOKEN } from "./processor.ts";
import { spawnServer } from "./server.ts";

export interface TestTrigger {
  mode: TriggerMode;
  stop(): Promise<void>;
}

/** Frees the keepalive slot (an earlier test's holder may still hold it) and zeroes its counters. */
export async function resetKeepalive(): Promise<void> {
  const sql = testSql(1);
  try {
    await sql`
      update wa.keepalive
      set holder = null, lease_until = null, ends_at = null, requested_at = null, requests = 0, holders = 0`;
    await sql`delete from net.http_request_queue`;
  } finally {
    await sql.end();
  }
}

/** `overrides` are processor settings (as environment variables) on top of processorTestEnv's. */
export async function startTestTrigger(
  fakes: Fakes,
  overrides: Record<string, string> = {},
  mode: TriggerMode = triggerMode(),
): Promise<TestTrigger> {
  if (mode === "worker") {
    const controller = new AbortController();
    const worker = runWorker({ env: processorTestEnv(fakes, overrides), signal: controller.signal });
    return {
      mode,
      async stop() {
        controller.abort();
        await worker;
      },
    };
  }
  await resetKeepalive();
  const server = await spawnServer({
    SUPABASE_DB_URL: testDbUrl(),
    WHATSAPP_API_BASE: `${fakes.graph.url}/v25.0`,
    WHATSAPP_ACCESS_TOKEN: TEST_ACCESS_TOKEN,
    AGENT_URL: fakes.agent.url,
    AGENT_TIMEOUT_MS: "2000",
    GRAPH_TIMEOUT_MS: "1000",
    BREAKER_HALF_OPEN_MS: "300",
    // Claims for 15 s (less the 4 s in-flight reserve), so tests see hand-overs too.
    PROCESSOR_TIME_BUDGET_MS: "19000",
    ...overrides,
  });
  const trigger = await startTrigger("cron", {
    dbUrl: testDbUrl(),
    projectUrl: server.url.replace(/\/functions\/v1\/$/, ""),
    serviceRoleKey: (await localEnvDefaults()).SUPABASE_SERVICE_ROLE_KEY ?? "",
  });
  return {
    mode,
    async stop() {
      await trigger.stop();
      await server.stop();
      await resetKeepalive();
    },
  };
}
