// The fake Graph API and demo agent with a standing behaviour (a fixed latency, a fault rate), in the shape
// the processor test helpers take.
import { type AgentFault, startDemoAgent } from "../local/demo-agent.ts";
import { type Fault, startFakeGraph } from "../local/fake-graph.ts";
import { type Fakes, TEST_ACCESS_TOKEN } from "../local/testing/processor.ts";
import type postgres from "postgres";

export interface FakeBehaviour {
  graph?: () => Fault | undefined;
  agent?: () => AgentFault | undefined;
  /** The fake Graph API keeps connections open between requests, as Meta does (default: one per request). */
  keepAlive?: boolean;
}

export async function startBenchFakes(behaviour: FakeBehaviour = {}): Promise<Fakes> {
  const graph = await startFakeGraph({
    accessToken: TEST_ACCESS_TOKEN,
    fault: behaviour.graph,
    keepAlive: behaviour.keepAlive,
  });
  const agent = await startDemoAgent({ fault: behaviour.agent });
  return { graph, agent, close: async () => void await Promise.all([graph.close(), agent.close()]) };
}

/**
 * Both fakes answer after `ms` (0: at once), over kept-alive connections as Meta's API and an agent service do
 * (no dropped connection here for a reused one to hide).
 */
export function latency(ms: number): FakeBehaviour {
  return ms === 0
    ? { keepAlive: true }
    : { graph: () => ({ kind: "delay", ms }), agent: () => ({ kind: "delay", ms }), keepAlive: true };
}

/** The environment of a processor process (worker or functions server) pointed at `fakes`. */
export function processorEnvVars(
  dbUrl: string,
  fakes: Fakes,
  overrides: Record<string, string> = {},
): Record<string, string> {
  return {
    SUPABASE_DB_URL: dbUrl,
    WHATSAPP_API_BASE: `${fakes.graph.url}/v25.0`,
    WHATSAPP_ACCESS_TOKEN: TEST_ACCESS_TOKEN,
    AGENT_KIND: "webhook",
    AGENT_URL: fakes.agent.url,
    ...overrides,
  };
}

/**
 * Lifts the send governor's pacing of `phoneNumberId` (its 80 messages a second, WHATSAPP.md 4.2, would cap a
 * one-number drain at 40 batches/s: a typing indicator and a reply each) to the fakes' speed, which enforce no
 * limit; every send still books its slot.
 */
export async function unthrottled(sql: postgres.Sql, phoneNumberId: string): Promise<void> {
  await sql`update wa.phone_numbers set send_rate_mps = 1000000 where phone_number_id = ${phoneNumberId}`;
}
