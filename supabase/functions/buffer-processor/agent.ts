// The AI agent behind the bot: `webhook` POSTs the batch JSON to AGENT_URL (an n8n workflow, a gateway) with
// an Idempotency-Key per batch; `openai` maps the conversation to an OpenAI-compatible chat completion. Both
// answer with a reply text or null (stay silent).
import { z } from "zod";
import type { Resilient } from "../_shared/resilience.ts";
import type { ProcessorEnv } from "./config.ts";
import { bodyLimit, type InteractiveReply, interactiveReply } from "./interactive.ts";
import type { AgentContext } from "./store.ts";
import { type Toolbox, type ToolCallRecord, toolContent } from "./tools.ts";

export interface AgentAnswer {
  text: string | null;
  /** Reply buttons or a list sent with `text` as their body (docs/conversation.md). */
  interactive?: InteractiveReply;
  /** The agent asks for a human: the bot pauses and the team is told. */
  handoff?: { reason: string };
  /** The session the agent wants next; its data is merged over the stored data. */
  session?: { state: string; data: Record<string, unknown> };
}

/** The agent answered something we cannot use, or failed in a way a retry will not fix. */
export class AgentError extends Error {
  constructor(message: string, readonly retryable: boolean) {
    super(message);
    this.name = "AgentError";
  }
}

const WHATSAPP_TEXT_LIMIT = 4096;

const webhookAnswer = z.object({
  reply: z.object({ text: z.string().max(WHATSAPP_TEXT_LIMIT), interactive: interactiveReply.optional() })
    .loose()
    .refine((reply) => reply.interactive === undefined || reply.text.trim() !== "", {
      error: "an interactive reply needs its text (the body)",
    })
    .refine((reply) => reply.interactive === undefined || reply.text.length <= bodyLimit(reply.interactive), {
      error: "the text is too long for the body of this interactive reply",
    })
    .nullable(),
  handoff: z.object({ reason: z.string().trim().min(1).max(500) }).loose().optional(),
  session: z.object({ state: z.string().min(1), data: z.record(z.string(), z.unknown()).default({}) })
    .optional(),
}).loose();

const toolCall = z.object({
  id: z.string(),
  function: z.object({ name: z.string(), arguments: z.string() }).loose(),
}).loose();

const chatCompletion = z.object({
  choices: z.array(
    z.object({
      message: z.object({ content: z.string().nullable(), tool_calls: z.array(toolCall).nullish() }).loose(),
    }).loose(),
  ).min(1),
}).loose();

/** The request body of the webhook kind: the documented agent contract (README). */
export function agentRequest(context: AgentContext): Record<string, unknown> {
  return {
    conversation: context.conversation,
    contact: context.contact,
    batch: context.batch,
    history: context.history,
    session: context.session,
  };
}

function messageLine(
  message: { type: string; text?: string | null; media?: { transcript?: string } },
): string {
  // A voice note reads as what was said.
  const text = message.media?.transcript ?? message.text;
  return message.type === "text" ? text ?? "" : `[${message.type}] ${text ?? ""}`.trim();
}

/** Chat messages for the openai kind: history as user/assistant turns, then the batch as one user turn. */
export function chatMessages(
  context: AgentContext,
  systemPrompt: string,
): { role: string; content: string }[] {
  const name = context.contact.name === undefined ? "" : ` The customer's name is ${context.contact.name}.`;
  return [
    { role: "system", content: systemPrompt + name },
    ...context.history.map((turn) => ({
      role: turn.direction === "inbound" ? "user" : "assistant",
      content: messageLine(turn),
    })),
    { role: "user", content: context.batch.messages.map(messageLine).join("\n") },
  ];
}

async function postJson(url: string, body: unknown, headers: Record<string, string>, signal: AbortSignal) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
    signal,
  });
  const text = await res.text();
  if (res.status >= 500 || res.status === 429) {
    throw new AgentError(`agent answered HTTP ${res.status}`, true);
  }
  if (!res.ok) throw new AgentError(`agent answered HTTP ${res.status}: ${text.slice(0, 200)}`, false);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new AgentError("agent answered a body that is not JSON", false);
  }
}

export type Agent = (context: AgentContext) => Promise<AgentAnswer>;

/**
 * The configured agent, its calls under `policy` (timeout, retries, breaker). The openai kind offers the
 * toolbox's tools and runs the model's calls, at most AGENT_TOOL_ROUNDS rounds (then it must answer), all inside
 * the policy's timeout: the agent's deadline holds whatever the tools do.
 */
export function createAgent(env: ProcessorEnv, policy: Resilient, toolbox?: Toolbox): Agent {
  const auth: Record<string, string> = env.AGENT_API_KEY
    ? { authorization: `Bearer ${env.AGENT_API_KEY}` }
    : {};
  if (env.AGENT_KIND === "openai") {
    return (context) =>
      policy.execute(async (signal) => {
        const tools = toolbox === undefined ? [] : await toolbox.definitions();
        const offered = tools.map((tool) => ({
          type: "function",
          function: { name: tool.name, description: tool.description, parameters: tool.parameters },
        }));
        const messages: Record<string, unknown>[] = chatMessages(context, env.AGENT_SYSTEM_PROMPT);
        const calls: ToolCallRecord[] = [];
        try {
          for (let round = 1;; round++) {
            const last = round > env.AGENT_TOOL_ROUNDS;
            const body = {
              model: env.AGENT_MODEL,
              messages,
              ...(offered.length > 0 ? { tools: offered, tool_choice: last ? "none" : "auto" } : {}),
            };
            const parsed = chatCompletion.safeParse(
              await postJson(`${env.AGENT_URL}/chat/completions`, body, auth, signal),
            );
            if (!parsed.success) throw new AgentError("chat completion without choices[0].message", false);
            const message = parsed.data.choices[0]!.message;
            const requested = message.tool_calls ?? [];
            if (requested.length === 0 || last || toolbox === undefined) {
              const content = message.content?.trim() ?? "";
              return { text: content === "" ? null : content.slice(0, WHATSAPP_TEXT_LIMIT) };
            }
            messages.push({ role: "assistant", content: message.content, tool_calls: requested });
            const answered = await Promise.all(requested.map((call) =>
              toolbox.call(tools, call.function.name, call.function.arguments, round, signal)
            ));
            calls.push(...answered);
            answered.forEach((record, i) =>
              messages.push({ role: "tool", tool_call_id: requested[i]!.id, content: toolContent(record) })
            );
          }
        } finally {
          if (calls.length > 0) {
            await toolbox?.audit(context, calls);
          }
        }
      });
  }
  return (context) =>
    policy.execute(async (signal) => {
      const headers = { ...auth, "idempotency-key": context.reply_key };
      const parsed = webhookAnswer.safeParse(
        await postJson(env.AGENT_URL, agentRequest(context), headers, signal),
      );
      if (!parsed.success) {
        throw new AgentError(
          `agent answer is not {reply: {text, interactive?} | null, handoff?, session?}: ${
            parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`).join("; ")
          }`,
          false,
        );
      }
      const { reply, handoff, session } = parsed.data;
      return {
        text: reply?.text.trim() || null,
        ...(reply?.interactive === undefined ? {} : { interactive: reply.interactive }),
        ...(handoff === undefined ? {} : { handoff: { reason: handoff.reason } }),
        ...(session === undefined ? {} : { session }),
      };
    });
}

/** Agent failures worth retrying inside one attempt: server errors and dropped connections. */
export function agentRetryable(error: unknown): boolean {
  return error instanceof AgentError ? error.retryable : error instanceof TypeError;
}
