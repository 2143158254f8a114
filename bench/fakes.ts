// The fake Graph API and demo agent with a standing behaviour (a fixed latency, a fault rate), in the shape
// the processor test helpers take.
import { type AgentFault, startDemoAgent } from "../local/demo-agent.ts";
import { type Fault, startFakeGraph } from "../local/fake-graph.ts";
import { type Fakes, TEST_ACCESS_TOKEN } from "../local/testing/processor.ts";

export interface FakeBehaviour {
  graph?: () => Fault | undefined;
  agent?: () => AgentFault | undefined;
}

export async function startBenchFakes(behaviour: FakeBehaviour = {}): Promise<Fakes> {
  const graph = await startFakeGraph({ accessToken: TEST_ACCESS_TOKEN, fault: behaviour.graph });
  const agent = await startDemoAgent({ fault: behaviour.agent });
  return { graph, agent, close: async () => void await Promise.all([graph.close(), agent.close()]) };
}

/** Both fakes answer after `ms` (0: at once). */
export function latency(ms: number): FakeBehaviour {
  return ms === 0 ? {} : { graph: () => ({ kind: "delay", ms }), agent: () => ({ kind: "delay", ms }) };
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
