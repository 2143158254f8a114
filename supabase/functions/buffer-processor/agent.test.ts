// The two agent kinds against local HTTP fakes: the webhook contract and an OpenAI-compatible endpoint.
import assert from "node:assert/strict";
import { resilient } from "../_shared/resilience.ts";
import { parseEnv } from "../_shared/env.ts";
import { createAgent } from "./agent.ts";
import { processorEnv } from "./config.ts";
import type { AgentContext } from "./store.ts";

const context: AgentContext = {
  reply_key: "agent-reply:c1:7",
  conversation: { id: "c1", phone_number_id: "106540352242922", display_phone_number: "15550783881" },
  contact: { id: "k1", wa_id: "5215512345678", name: "Ana" },
  batch: {
    fence: 3,
    first_seq: 7,
    up_to_seq: 8,
    messages: [
      { id: "m7", wamid: "wamid.7", type: "text", text: "hola", sent_at: "2026-01-01T00:00:00Z" },
      { id: "m8", wamid: "wamid.8", type: "image", text: "mi auto", sent_at: "2026-01-01T00:00:01Z" },
    ],
  },
  history: [
    { direction: "inbound", type: "text", text: "buenas", sent_at: "2025-12-31T00:00:00Z" },
    { direction: "outbound", type: "text", text: "¡Hola!", sent_at: "2025-12-31T00:00:05Z" },
  ],
  existing_reply: null,
  session: { state: "qualifying", data: { turns: 1 }, version: 3 },
  bot_paused: false,
};

const policy = () =>
  resilient({
    timeoutMs: 2000,
    maxAttempts: 1,
    baseDelayMs: 10,
    retryable: () => false,
    breaks: () => true,
    breakerThreshold: 5,
    halfOpenAfterMs: 1000,
  });

/** A local endpoint answering `answers` in turn and recording what it was sent. */
function endpoint(answers: unknown[]) {
  const seen: { path: string; headers: Headers; body: Record<string, unknown> }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    seen.push({ path: new URL(req.url).pathname, headers: req.headers, body: await req.json() });
    return Response.json(answers.shift());
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, seen, close: () => server.shutdown() };
}

const env = (overrides: Record<string, string>) =>
  parseEnv(processorEnv, {
    SUPABASE_DB_URL: "postgresql://x@127.0.0.1/postgres",
    WHATSAPP_ACCESS_TOKEN: "token-for-tests",
    ...overrides,
  });

Deno.test("webhook kind: posts the documented request with the batch's idempotency key", async () => {
  const fake = endpoint([
    { reply: { text: "  ¡Hola Ana!  " }, session: { state: "quoted", data: { plan: "pro" } } },
    { reply: null },
  ]);
  try {
    const agent = createAgent(env({ AGENT_URL: `${fake.url}/agent`, AGENT_API_KEY: "k-123" }), policy());
    assert.deepEqual(await agent(context), {
      text: "¡Hola Ana!",
      session: { state: "quoted", data: { plan: "pro" } },
    });
    assert.deepEqual(await agent(context), { text: null });
    const [first] = fake.seen;
    assert.equal(first?.path, "/agent");
    assert.equal(first?.headers.get("idempotency-key"), "agent-reply:c1:7");
    assert.equal(first?.headers.get("authorization"), "Bearer k-123");
    assert.deepEqual(Object.keys(first?.body ?? {}).sort(), [
      "batch",
      "contact",
      "conversation",
      "history",
      "session",
    ]);
    assert.deepEqual(first?.body.session, { state: "qualifying", data: { turns: 1 }, version: 3 });
  } finally {
    await fake.close();
  }
});

Deno.test("openai kind: history as chat turns, the batch as one user turn, empty content is silence", async () => {
  const fake = endpoint([
    { choices: [{ message: { role: "assistant", content: "Claro, te ayudo." } }] },
    { choices: [{ message: { role: "assistant", content: "" } }] },
  ]);
  try {
    const agent = createAgent(
      env({
        AGENT_KIND: "openai",
        AGENT_URL: fake.url,
        AGENT_MODEL: "demo-model",
        AGENT_SYSTEM_PROMPT: "Be kind.",
      }),
      policy(),
    );
    assert.deepEqual(await agent(context), { text: "Claro, te ayudo." });
    assert.deepEqual(await agent(context), { text: null });
    const body = fake.seen[0]?.body as { model: string; messages: { role: string; content: string }[] };
    assert.equal(fake.seen[0]?.path, "/chat/completions");
    assert.equal(body.model, "demo-model");
    assert.deepEqual(body.messages, [
      { role: "system", content: "Be kind. The customer's name is Ana." },
      { role: "user", content: "buenas" },
      { role: "assistant", content: "¡Hola!" },
      { role: "user", content: "hola\n[image] mi auto" },
    ]);
  } finally {
    await fake.close();
  }
});

Deno.test("an answer outside the contract is an error (the processor then sends the fallback)", async () => {
  const fake = endpoint([{ text: "wrong shape" }]);
  try {
    const agent = createAgent(env({ AGENT_URL: `${fake.url}/agent` }), policy());
    await assert.rejects(agent(context), /not \{reply/);
  } finally {
    await fake.close();
  }
});
