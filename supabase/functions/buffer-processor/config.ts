// The processor's configuration, from the environment (validated once per isolate).
import { z } from "zod";
import { httpUrl, postgresUrl, secret } from "../_shared/env.ts";

const milliseconds = (fallback: number) => z.coerce.number().int().positive().default(fallback);

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
  GRAPH_TIMEOUT_MS: milliseconds(10_000),
  // Consecutive failures that open the agent's or the Graph API's circuit breaker, and how long it stays open.
  BREAKER_THRESHOLD: z.coerce.number().int().min(1).max(100).default(5),
  BREAKER_HALF_OPEN_MS: milliseconds(30_000),
  BUFFER_LEASE_SECONDS: z.coerce.number().int().min(5).max(900).default(60),
  BUFFER_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(50).default(5),
  // Wall-clock budget of one HTTP invocation: well inside the Edge Functions limit (150 s on the free plan).
  PROCESSOR_TIME_BUDGET_MS: z.coerce.number().int().min(1_000).max(140_000).default(100_000),
  PROCESSOR_CONCURRENCY: z.coerce.number().int().min(1).max(32).default(4),
});

export type ProcessorEnv = z.infer<typeof processorEnv>;
