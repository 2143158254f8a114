// The interactive reply contract against WhatsApp's limits (WHATSAPP.md §2.2), and the webhook agent's answer
// carrying it and a handoff.
import assert from "node:assert/strict";
import { resilient } from "../_shared/resilience.ts";
import { parseEnv } from "../_shared/env.ts";
import { createAgent } from "./agent.ts";
import { processorEnv } from "./config.ts";
import { interactiveObject, interactiveReply } from "./interactive.ts";
import type { AgentContext } from "./store.ts";

const button = (id: string, title = id) => ({ id, title });
const row = (id: string) => ({ id, title: id });

Deno.test("reply buttons: 1 to 3, titles of at most 20 characters, unique", () => {
  const ok = { type: "button", buttons: [button("a"), button("b"), button("c")] };
  assert.ok(interactiveReply.safeParse(ok).success);
  for (
    const bad of [
      { type: "button", buttons: [] },
      { type: "button", buttons: [button("a"), button("b"), button("c"), button("d")] },
      { type: "button", buttons: [button("a", "x".repeat(21))] },
      { type: "button", buttons: [button("a", "Sí"), button("b", "Sí")] },
      { type: "button", buttons: [button("x".repeat(257))] },
      { type: "button", buttons: [button("a")], footer: "x".repeat(61) },
    ]
  ) assert.ok(!interactiveReply.safeParse(bad).success, JSON.stringify(bad).slice(0, 80));
});

Deno.test("lists: at most 10 rows in all, 24-character row titles, 72-character descriptions", () => {
  const rows = Array.from({ length: 10 }, (_, i) => row(`r${i}`));
  assert.ok(interactiveReply.safeParse({ type: "list", button: "Ver", sections: [{ rows }] }).success);
  for (
    const bad of [
      { type: "list", button: "Ver", sections: [{ rows: [...rows, row("r10")] }] },
      {
        type: "list",
        button: "Ver",
        sections: [{ title: "A", rows: rows.slice(0, 6) }, { title: "B", rows }],
      },
      { type: "list", button: "x".repeat(21), sections: [{ rows: [row("a")] }] },
      { type: "list", button: "Ver", sections: [{ rows: [{ id: "a", title: "x".repeat(25) }] }] },
      {
        type: "list",
        button: "Ver",
        sections: [{ rows: [{ id: "a", title: "a", description: "x".repeat(73) }] }],
      },
      { type: "list", button: "Ver", sections: [{ rows: [row("a")] }, { rows: [row("b")] }] },
      { type: "list", button: "Ver", sections: [{ rows: [row("a"), row("a")] }] },
    ]
  ) assert.ok(!interactiveReply.safeParse(bad).success, JSON.stringify(bad).slice(0, 80));
});

Deno.test("the Graph API object: header, body, footer and the action Meta documents", () => {
  const list = interactiveReply.parse({
    type: "list",
    header: "Envíos",
    button: "Opciones",
    sections: [{ title: "Rápido", rows: [{ id: "x", title: "Express", description: "24 h" }] }],
  });
  assert.deepEqual(interactiveObject("¿Cuál?", list), {
    type: "list",
    header: { type: "text", text: "Envíos" },
    body: { text: "¿Cuál?" },
    action: {
      button: "Opciones",
      sections: [{ title: "Rápido", rows: [{ id: "x", title: "Express", description: "24 h" }] }],
    },
  });
});

const context = {
  reply_key: "agent-reply:c1:1",
  conversation: { id: "c1", phone_number_id: "1", display_phone_number: null },
  contact: { id: "k1", wa_id: "5215512345678" },
  batch: { fence: 1, first_seq: 1, up_to_seq: 1, messages: [] },
  history: [],
  existing_reply: null,
  session: { state: "start", data: {}, version: 0 },
  bot_paused: false,
} satisfies AgentContext;

Deno.test("webhook agent: interactive and handoff pass through; interactive without text is refused", async () => {
  const answers: unknown[] = [
    {
      reply: { text: "Elige", interactive: { type: "button", buttons: [button("a", "Uno")] } },
      handoff: { reason: "asks for a human" },
    },
    { reply: { text: " ", interactive: { type: "button", buttons: [button("a")] } } },
    { reply: { text: "x".repeat(1025), interactive: { type: "button", buttons: [button("a")] } } },
  ];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => Response.json(answers.shift()),
  );
  try {
    const env = parseEnv(processorEnv, {
      SUPABASE_DB_URL: "postgresql://x@127.0.0.1/postgres",
      WHATSAPP_ACCESS_TOKEN: "token-for-tests",
      AGENT_URL: `http://127.0.0.1:${server.addr.port}/agent`,
    });
    const policy = resilient({
      timeoutMs: 2000,
      maxAttempts: 1,
      baseDelayMs: 10,
      retryable: () => false,
      breaks: () => false,
      breakerThreshold: 5,
      halfOpenAfterMs: 1000,
    });
    const agent = createAgent(env, policy);
    assert.deepEqual(await agent(context), {
      text: "Elige",
      interactive: { type: "button", buttons: [button("a", "Uno")] },
      handoff: { reason: "asks for a human" },
    });
    await assert.rejects(agent(context), /interactive reply needs its text/);
    await assert.rejects(agent(context), /too long for the body/);
  } finally {
    await server.shutdown();
  }
});
