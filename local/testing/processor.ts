// Shared set-up for buffer-processor tests: the fakes, a processor configuration pointing at them, and due
// buffers created through the real ingest function.
import type postgres from "postgres";
import { parseEnv } from "../../supabase/functions/_shared/env.ts";
import { type ProcessorEnv, processorEnv } from "../../supabase/functions/buffer-processor/config.ts";
import { type DemoAgent, startDemoAgent } from "../demo-agent.ts";
import { type FakeGraph, startFakeGraph } from "../fake-graph.ts";
import { testDbUrl, testSql } from "./db.ts";
import { contact, inboundMessage, messagesChange, webhook } from "./whatsapp-fixtures.ts";

export const TEST_ACCESS_TOKEN = "test-whatsapp-access-token";

export interface Fakes {
  graph: FakeGraph;
  agent: DemoAgent;
  close(): Promise<void>;
}

/** The fakes; `keepAlive` makes the fake Graph API keep connections open like the real one. */
export async function startFakes(keepAlive = false): Promise<Fakes> {
  const graph = await startFakeGraph({ accessToken: TEST_ACCESS_TOKEN, keepAlive });
  const agent = await startDemoAgent();
  return { graph, agent, close: async () => void await Promise.all([graph.close(), agent.close()]) };
}

/** Processor settings pointing at the fakes, with short timeouts so failure paths run fast. */
export function processorTestEnv(fakes: Fakes, overrides: Record<string, string> = {}): ProcessorEnv {
  return parseEnv(processorEnv, {
    SUPABASE_DB_URL: testDbUrl(),
    WHATSAPP_API_BASE: `${fakes.graph.url}/v25.0`,
    WHATSAPP_ACCESS_TOKEN: TEST_ACCESS_TOKEN,
    AGENT_URL: fakes.agent.url,
    AGENT_TIMEOUT_MS: "2000",
    GRAPH_TIMEOUT_MS: "1000",
    BREAKER_HALF_OPEN_MS: "300",
    PROCESSOR_CONCURRENCY: "1",
    ...overrides,
  });
}

/** Empties every buffer (tests share one database and run one at a time). */
export async function clearBuffers(sql: postgres.Sql): Promise<void> {
  await sql`delete from wa.buffer_messages`;
  await sql`delete from wa.buffers`;
  await sql`delete from wa.circuit_breakers`;
}

/**
 * Ingests `count` text messages, one per new contact, on a fresh business number, as if they arrived
 * `receivedSecondsAgo` ago (default a minute: with the 10 s quiet period every buffer is due at once).
 * Returns the number and the contacts' wa_ids.
 */
export async function seedDueBuffers(
  sql: postgres.Sql,
  count: number,
  perContact = 1,
  receivedSecondsAgo = 60,
) {
  const phoneNumberId = String(100000000000000 + Math.floor(Math.random() * 1e13));
  const waIds = Array.from(
    { length: count },
    (_, i) => `9${phoneNumberId.slice(-6)}${String(i).padStart(6, "0")}`,
  );
  const messages = waIds.flatMap((from) =>
    Array.from(
      { length: perContact },
      (_, i) => inboundMessage("text", { from, content: { body: `hola ${i}` } }),
    )
  );
  const payload = webhook(
    messagesChange({ phoneNumberId, contacts: waIds.map((id) => contact(id, `C ${id}`)), messages }),
  );
  await sql`select wa.ingest_webhook(${JSON.stringify(payload)}::text::jsonb,
                                    now() - make_interval(secs => ${receivedSecondsAgo}::double precision))`;
  return { phoneNumberId, waIds };
}

/** A test with the fakes, a database connection and no buffers left by earlier tests; all closed after. */
export function processorTest(
  name: string,
  fn: (fakes: Fakes, sql: postgres.Sql) => Promise<void>,
  keepAlive = false,
): void {
  Deno.test(name, async () => {
    const fakes = await startFakes(keepAlive);
    const sql = testSql(12);
    try {
      await clearBuffers(sql);
      await fn(fakes, sql);
    } finally {
      await sql.end();
      await fakes.close();
    }
  });
}
