// The local default AI agent: deterministic demo replies over HTTP, reached like a real agent gateway (an n8n
// webhook, say), so the processor's agent client is exercised for real in `npm start` and in tests. The reply
// is a pure function of the request (no clock, no randomness): the same input always gets the same answer.
// Faults (errors, slow or hung answers, odd bodies) can be queued like in fake-graph.ts.
import { z } from "zod";
import {
  type Http1Handler,
  isRecord,
  parseBody,
  serveHttp1,
  sleep,
  untilAborted,
  waitFor,
} from "./fake-graph.ts";

/** A behaviour applied to one upcoming valid request (see DemoAgent.enqueue). */
export type AgentFault =
  /** Answers `{ error: { code: "injected_fault", message } }` with this HTTP status. */
  | { kind: "error"; status: number }
  /** Waits `ms`, then answers normally. */
  | { kind: "delay"; ms: number }
  /** Never answers; the connection closes unanswered when the agent closes. */
  | { kind: "hang" }
  /** Answers normally once `until` settles: a test releases it after forcing what happens meanwhile. */
  | { kind: "wait"; until: Promise<void> }
  /** Answers exactly this JSON with 200, whatever it is (for contract-violation tests). */
  | { kind: "reply"; body: unknown };

/** A request as it arrived (before any injected delay), valid or not. */
export interface AgentRequestRecord {
  /** The parsed JSON body; the raw text if it is not JSON; null if empty. */
  body: unknown;
  idempotencyKey: string | null;
  at: Date;
}

export interface DemoAgent {
  /** The full endpoint URL, e.g. `http://127.0.0.1:54332/agent`. */
  url: string;
  requests: AgentRequestRecord[];
  /** Queues behaviours for the next valid requests, one each, in order; with none queued, it replies. */
  enqueue: (...faults: AgentFault[]) => void;
  waitFor: (predicate: () => boolean, timeoutMs?: number) => Promise<void>;
  /** Clears requests and the fault queue (the array is emptied in place). */
  reset: () => void;
  close: () => Promise<void>;
}

export interface DemoAgentOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  hostname?: string;
  /** The behaviour of a valid request when no fault is queued (default: reply at once), as in fake-graph.ts. */
  fault?: () => AgentFault | undefined;
}

const id = z.union([z.string(), z.number()]);

/** The request contract; unknown fields are allowed everywhere. */
const agentRequest = z.looseObject({
  conversation: z.looseObject({ id, phone_number_id: z.string() }),
  contact: z.looseObject({
    id,
    wa_id: z.string().nullish(),
    user_id: z.string().nullish(),
    name: z.string().nullish(),
  }),
  batch: z.looseObject({
    fence: z.number(),
    messages: z.array(z.looseObject({
      id: id.optional(),
      wamid: z.string().optional(),
      type: z.string(),
      text: z.string().nullish(),
      media: z.looseObject({
        id: z.string().optional(),
        mime_type: z.string().nullish(),
        caption: z.string().nullish(),
        filename: z.string().nullish(),
      }).nullish(),
      sent_at: z.string().optional(),
    })),
  }),
  history: z.array(z.looseObject({
    direction: z.enum(["inbound", "outbound"]),
    type: z.string().optional(),
    text: z.string().nullish(),
    sent_at: z.string().optional(),
  })).default([]),
  session: z.looseObject({
    state: z.string(),
    data: z.record(z.string(), z.unknown()),
    version: z.number().optional(),
  }).nullish(),
});

export type AgentRequest = z.infer<typeof agentRequest>;

export interface AgentResponse {
  reply: { text: string } | null;
  session?: { state: string; data: Record<string, unknown> };
}

const MAX_REPLY = 4096;

/** Lowercase without accents, so "Cuánto" matches "cuanto". */
function normalize(text: string): string {
  return text.normalize("NFD").replace(/\p{M}/gu, "").toLowerCase();
}

const PRICE = /\b(precio|precios|costo|costos|cuanto cuesta|tarifa|price|prices|pricing|cost|how much)\b/;
const HOURS = /\b(horario|horarios|hora|horas|abren|cierran|hours|opening|open|schedule)\b/;
const HUMAN =
  /\b(humano|humana|agente|asesor|asesora|ejecutivo|ejecutiva|human|agent|representative|operator|person)\b/;
const ENGLISH =
  /\b(hello|hi|hey|good (morning|afternoon|evening)|price|prices|pricing|cost|how much|hours|open|agent|human|representative|please|thanks|thank you|want|need|help|my|order)\b/;
const SPANISH =
  /\b(hola|buenas|buenos|precio|precios|costo|cuanto|horario|horarios|humano|asesor|ejecutivo|gracias|quiero|necesito|ayuda|por favor|mi|pedido)\b/;

const MEDIA_NAMES: Record<string, { es: [string, string]; en: [string, string] }> = {
  image: { es: ["imagen", "imágenes"], en: ["image", "images"] },
  audio: { es: ["audio", "audios"], en: ["audio", "audios"] },
  video: { es: ["video", "videos"], en: ["video", "videos"] },
  document: { es: ["documento", "documentos"], en: ["document", "documents"] },
  sticker: { es: ["sticker", "stickers"], en: ["sticker", "stickers"] },
};

type Lang = "es" | "en";

interface Intents {
  price: boolean;
  hours: boolean;
  human: boolean;
}

function listJoin(items: string[], lang: Lang): string {
  if (items.length <= 1) return items.join("");
  return `${items.slice(0, -1).join(", ")} ${lang === "es" ? "y" : "and"} ${items.at(-1)}`;
}

function quote(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  const chars = [...flat];
  return `“${chars.length > 100 ? `${chars.slice(0, 99).join("")}…` : flat}”`;
}

/**
 * The next session state: start → qualifying on the first turn, qualifying → quoted once prices were asked,
 * and any state → handoff when a human is asked for (handoff then sticks).
 */
export function nextState(state: string, intents: Intents): string {
  if (intents.human || state === "handoff") return "handoff";
  if (state === "qualifying" && intents.price) return "quoted";
  if (state === "quoted") return "quoted";
  return "qualifying";
}

/** The demo reply for a valid request: a pure function of it. */
export function demoReply(request: AgentRequest): AgentResponse {
  const messages = request.batch.messages;
  const texts = messages.flatMap((message) =>
    [message.text, message.media?.caption].filter((text): text is string => typeof text === "string")
  );
  const all = normalize(texts.join("\n"));
  const intents: Intents = { price: PRICE.test(all), hours: HOURS.test(all), human: HUMAN.test(all) };
  const lang: Lang = ENGLISH.test(all) && !SPANISH.test(all) ? "en" : "es";
  const es = lang === "es";
  const session = request.session ?? null;
  const nextSession = session === null ? undefined : {
    state: nextState(session.state, intents),
    data: {
      ...session.data,
      turns: (typeof session.data.turns === "number" ? session.data.turns : 0) + 1,
    },
  };
  // Nothing new to answer: stay silent rather than invent a message.
  if (messages.length === 0) {
    return nextSession === undefined ? { reply: null } : { reply: null, session: nextSession };
  }

  const parts: string[] = [];
  const firstBatch = !request.history.some((entry) => entry.direction === "outbound");
  if (firstBatch) {
    const name = request.contact.name?.trim().split(/\s+/)[0];
    const hello = es ? (name ? `¡Hola, ${name}!` : "¡Hola!") : (name ? `Hi ${name}!` : "Hi!");
    parts.push(
      `${hello} ${es ? "Soy el asistente de demostración de wabase." : "I'm wabase's demo assistant."}`,
    );
  }

  const quoted = messages.filter((message) => message.text?.trim()).slice(0, 5)
    .map((message) => quote(message.text ?? ""));
  const n = messages.length;
  const got = es
    ? (n === 1 ? "Recibí tu mensaje" : `Recibí tus ${n} mensajes`)
    : (n === 1 ? "I got your message" : `I got your ${n} messages`);
  parts.push(quoted.length > 0 ? `${got}: ${quoted.join(" / ")}.` : `${got}.`);

  const mediaCounts = new Map<string, number>();
  for (const message of messages) {
    if (MEDIA_NAMES[message.type] !== undefined) {
      mediaCounts.set(message.type, (mediaCounts.get(message.type) ?? 0) + 1);
    }
  }
  if (mediaCounts.size > 0) {
    const seen = [...mediaCounts].map(([type, count]) => {
      const [one, many] = MEDIA_NAMES[type]?.[lang] ?? [type, type];
      return `${count} ${count === 1 ? one : many}`;
    });
    parts.push(
      es
        ? `Vi ${listJoin(seen, lang)} (en esta demo no descargo archivos).`
        : `I saw ${listJoin(seen, lang)} (this demo does not download files).`,
    );
  }

  if (intents.price) {
    parts.push(
      es
        ? "Precios de demostración: plan Básico USD 29/mes y plan Pro USD 79/mes."
        : "Demo prices: Basic plan USD 29/month and Pro plan USD 79/month.",
    );
  }
  if (intents.hours) {
    parts.push(
      es
        ? "Nuestro horario es de lunes a viernes, de 9:00 a 18:00."
        : "Our hours are Monday to Friday, 9:00 to 18:00.",
    );
  }
  if (intents.human) {
    parts.push(
      es
        ? "Te comunico con un ejecutivo: una persona del equipo tomará la conversación en breve."
        : "I'm handing you over to an executive: a person from the team will take over shortly.",
    );
  } else if (session?.state === "handoff") {
    parts.push(
      es
        ? "Un ejecutivo ya tiene tu conversación y te responderá pronto."
        : "An executive already has your conversation and will reply soon.",
    );
  } else if (!intents.price && !intents.hours && mediaCounts.size === 0) {
    parts.push(
      es
        ? "¿En qué te ayudo? Puedo contarte precios y horarios, o pasarte con un asesor."
        : "How can I help? I can tell you about prices and hours, or hand you to an agent.",
    );
  }

  let text = parts.join(" ");
  if ([...text].length > MAX_REPLY) text = `${[...text].slice(0, MAX_REPLY - 1).join("")}…`;
  return nextSession === undefined ? { reply: { text } } : { reply: { text }, session: nextSession };
}

function errorJson(status: number, code: string, message: string, headers: HeadersInit = {}): Response {
  return Response.json({ error: { code, message } }, { status, headers });
}

function issuesMessage(error: z.ZodError): string {
  return error.issues.slice(0, 3)
    .map((issue) => `${issue.path.length > 0 ? issue.path.join(".") : "body"}: ${issue.message}`)
    .join("; ");
}

/** Starts the demo agent on a free port (by default); resolves once listening. */
export function startDemoAgent(options: DemoAgentOptions = {}): Promise<DemoAgent> {
  const requests: AgentRequestRecord[] = [];
  const queue: AgentFault[] = [];

  const handle: Http1Handler = async (req, closing) => {
    const at = new Date();
    const path = new URL(req.url).pathname;
    const body = parseBody(await req.text());
    requests.push({ body, idempotencyKey: req.headers.get("idempotency-key"), at });

    if (path !== "/agent" && path !== "/agent/") return errorJson(404, "not_found", `no route at ${path}`);
    if (req.method !== "POST") {
      return errorJson(405, "method_not_allowed", "POST a JSON request", { allow: "POST" });
    }
    if (!isRecord(body)) return errorJson(400, "invalid_request", "the body must be a JSON object");
    const parsed = agentRequest.safeParse(body);
    if (!parsed.success) return errorJson(400, "invalid_request", issuesMessage(parsed.error));

    // Like fake-graph.ts, only a valid request meets a fault.
    const fault = queue.shift() ?? options.fault?.();
    switch (fault?.kind) {
      case undefined:
        return Response.json(demoReply(parsed.data));
      case "error":
        return errorJson(fault.status, "injected_fault", `demo agent fault: HTTP ${fault.status}`);
      case "delay":
        return (await sleep(fault.ms, closing)) ? Response.json(demoReply(parsed.data)) : "drop";
      case "hang":
        await untilAborted(closing);
        return "drop";
      case "wait":
        await Promise.race([fault.until, untilAborted(closing)]);
        return closing.aborted ? "drop" : Response.json(demoReply(parsed.data));
      case "reply":
        return Response.json(fault.body);
    }
  };

  const server = serveHttp1({ hostname: options.hostname ?? "127.0.0.1", port: options.port ?? 0 }, handle);
  return Promise.resolve({
    url: `${server.url}/agent`,
    requests,
    enqueue: (...faults) => void queue.push(...faults),
    waitFor,
    reset: () => {
      requests.length = 0;
      queue.length = 0;
    },
    close: server.close,
  });
}

if (import.meta.main) {
  const agent = await startDemoAgent({ port: Number(Deno.env.get("DEMO_AGENT_PORT") ?? 54332) });
  console.log(JSON.stringify({
    ts: new Date().toISOString(),
    level: "info",
    msg: "demo agent listening",
    url: agent.url,
  }));
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => agent.close().then(() => Deno.exit(0)));
  }
}
