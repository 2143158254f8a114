// The processor's configuration, from the environment (validated once per isolate).
import { z } from "zod";
import { httpUrl, postgresUrl, secret } from "../_shared/env.ts";

const milliseconds = (fallback: number) => z.coerce.number().int().positive().default(fallback);

/** First retry delay of agent and Graph API calls (doubling per attempt, jittered ×0.5–1.5). */
export const RETRY_BASE_DELAY_MS = 500;
/** Agent calls per batch, the first included. */
export const AGENT_ATTEMPTS = 2;
/** Graph API calls per send, the first included (retryable errors only). */
export const GRAPH_ATTEMPTS = 3;

/** The longest the agent can take for one batch: every attempt timing out, the longest backoffs between. */
export function agentWorstCaseMs(agentTimeoutMs: number): number {
  let total = AGENT_ATTEMPTS * agentTimeoutMs;
  for (let retry = 1; retry < AGENT_ATTEMPTS; retry++) total += 1.5 * RETRY_BASE_DELAY_MS * 2 ** (retry - 1);
  return total;
}

export const processorEnv = z.object({
  SUPABASE_DB_URL: postgresUrl,
  // Graph API base including the version, e.g. https://graph.facebook.com/v25.0.
  WHATSAPP_API_BASE: httpUrl.default("https://graph.facebook.com/v25.0"),
  // A system-user token with whatsapp_business_messaging.
  WHATSAPP_ACCESS_TOKEN: secret(8),
  // webhook: POST the batch JSON to AGENT_URL (e.g. an n8n workflow). openai: chat completions at AGENT_URL.
  AGENT_KIND: z.enum(["webhook", "openai"]).default("webhook"),
  AGENT_URL: httpUrl,
  AGENT_API_KEY: z.string().optional(),
  AGENT_MODEL: z.string().default("gpt-4o-mini"),
  AGENT_SYSTEM_PROMPT: z.string().default(
    "You are the first-line WhatsApp assistant of a sales and support team. Answer briefly and politely in " +
      "the customer's language. If they ask for a person, say an executive will take over.",
  ),
  AGENT_TIMEOUT_MS: milliseconds(20_000),
  // Sent once per batch when the agent times out or its breaker is open; "off" fails the batch instead.
  AGENT_FALLBACK_REPLY: z.string().default("Gracias por tu mensaje. En un momento te atendemos."),
  AGENT_HISTORY_MESSAGES: z.coerce.number().int().min(0).max(200).default(20),
  // Rounds of tool calls (wa.agent_tools) the openai agent may make before it must answer.
  AGENT_TOOL_ROUNDS: z.coerce.number().int().min(0).max(10).default(3),
  GRAPH_TIMEOUT_MS: milliseconds(10_000),
  // Consecutive failures that open the agent's or the Graph API's circuit breaker, and how long it stays open.
  BREAKER_THRESHOLD: z.coerce.number().int().min(1).max(100).default(5),
  BREAKER_HALF_OPEN_MS: milliseconds(30_000),
  // Longer than the agent's worst case (checked below). How often a batch is tried is a rule of its business
  // number in the database (wa.phone_numbers.buffer_max_attempts), like its due times.
  BUFFER_LEASE_SECONDS: z.coerce.number().int().min(5).max(900).default(60),
  // Wall-clock budget of one HTTP invocation: well inside the Edge Functions limit (150 s on the free plan).
  PROCESSOR_TIME_BUDGET_MS: z.coerce.number().int().min(1_000).max(140_000).default(100_000),
  PROCESSOR_CONCURRENCY: z.coerce.number().int().min(1).max(32).default(4),
  // Storage, for the signed URLs of a batch's media (set by the platform on Supabase); without them the agent
  // gets each file's state but no URL.
  SUPABASE_URL: httpUrl.optional(),
  SUPABASE_SERVICE_ROLE_KEY: z.string().min(1).optional(),
  // Voice notes transcribed by any OpenAI-compatible /audio/transcriptions endpoint under this base URL.
  TRANSCRIBE_URL: httpUrl.optional(),
  TRANSCRIBE_API_KEY: z.string().optional(),
  TRANSCRIBE_MODEL: z.string().default("whisper-1"),
  // Keepalive invocations (hosted, keepalive.ts): lanes grow to this under a backlog; the invocation hands over
  // to a successor after this many batches (its share of the 2 s CPU limit, docs/processor.md); between
  // drains it polls the next due time this often (keep it below the shortest buffer_quiet_period).
  PROCESSOR_MAX_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(128),
  PROCESSOR_INVOCATION_BATCHES: z.coerce.number().int().min(1).max(100_000).default(250),
  KEEPALIVE_POLL_MS: z.coerce.number().int().min(50).max(10_000).default(500),
}).superRefine((env, ctx) => {
  // A lease that runs out while the agent is still answering lets a second worker claim the batch and ask the
  // agent again: refuse to start rather than let every slow answer do that. (The send is covered: the lease is
  // extended before it, and a send that outlives it anyway is recorded unknown, never repeated.)
  const worstMs = agentWorstCaseMs(env.AGENT_TIMEOUT_MS);
  if (env.BUFFER_LEASE_SECONDS * 1000 <= worstMs) {
    ctx.addIssue({
      code: "custom",
      path: ["BUFFER_LEASE_SECONDS"],
      message: `must exceed the agent's worst case, ${worstMs} ms (${AGENT_ATTEMPTS} attempts of ` +
        `AGENT_TIMEOUT_MS and the backoff between them)`,
    });
  }
});

export type ProcessorEnv = z.infer<typeof processorEnv>;
