// A fake OpenAI-compatible chat completions endpoint that uses tools, for the openai agent's tests: offered
// tools, it calls the first one once with {"sku"} (the first SKU-like word of the customer's last message, else
// A-100); given the tool's answer, it replies quoting it; with tool_choice "none" or no tools, it just replies.
// `persistent` models a model that never stops calling tools. Deterministic: the answer is a function of the
// request.
import { type Http1Handler, isRecord, parseBody, serveHttp1 } from "./fake-graph.ts";

export interface FakeChat {
  /** The base URL the agent appends /chat/completions to. */
  url: string;
  /** Each request's body, in arrival order. */
  requests: Record<string, unknown>[];
  close(): Promise<void>;
}

type Message = { role?: string; content?: unknown };

const SKU = /\b[A-Z]+-\d+\b/;

function completion(message: Record<string, unknown>): Response {
  return Response.json({ id: "chatcmpl-fake", object: "chat.completion", choices: [{ index: 0, message }] });
}

export function startFakeChat(
  options: { port?: number; hostname?: string; persistent?: boolean } = {},
): FakeChat {
  const requests: Record<string, unknown>[] = [];
  const handle: Http1Handler = async (req) => {
    if (new URL(req.url).pathname !== "/chat/completions" || req.method !== "POST") {
      return Response.json({ error: { message: "POST /chat/completions" } }, { status: 404 });
    }
    const body = parseBody(await req.text());
    if (!isRecord(body) || !Array.isArray(body.messages)) {
      return Response.json({ error: { message: "messages are required" } }, { status: 400 });
    }
    requests.push(body);
    const messages = body.messages as Message[];
    const last = messages.at(-1);
    const tools = Array.isArray(body.tools) ? body.tools as { function: { name: string } }[] : [];
    if (last?.role === "tool" && !(options.persistent && body.tool_choice !== "none")) {
      return completion({ role: "assistant", content: `Inventario: ${String(last.content)}` });
    }
    if (tools.length > 0 && body.tool_choice !== "none") {
      const asked = [...messages].reverse().find((m) => m.role === "user");
      const sku = String(asked?.content ?? "").match(SKU)?.[0] ?? "A-100";
      return completion({
        role: "assistant",
        content: null,
        tool_calls: [{
          id: `call_${requests.length}`,
          type: "function",
          function: { name: tools[0]!.function.name, arguments: JSON.stringify({ sku }) },
        }],
      });
    }
    return completion({ role: "assistant", content: "Hola, ¿en qué te ayudo?" });
  };
  const server = serveHttp1({ hostname: options.hostname ?? "127.0.0.1", port: options.port ?? 0 }, handle);
  return { url: server.url, requests, close: server.close };
}
