// Tests of the local fakes: the WhatsApp Graph API send endpoint (fake-graph.ts) and the demo AI agent
// (demo-agent.ts), over real HTTP, faults included.
import assert from "node:assert/strict";
import { type FakeGraph, startFakeGraph } from "./fake-graph.ts";
import { type DemoAgent, startDemoAgent } from "./demo-agent.ts";

const PHONE_NUMBER_ID = "106540352242922";
const TOKEN = "local-whatsapp-access-token";

type Json = Record<string, unknown>;

async function withGraph(run: (graph: FakeGraph) => Promise<void>, keepAlive = false): Promise<void> {
  const graph = await startFakeGraph({ keepAlive });
  try {
    await run(graph);
  } finally {
    await graph.close();
  }
}

async function withAgent(run: (agent: DemoAgent) => Promise<void>): Promise<void> {
  const agent = await startDemoAgent();
  try {
    await run(agent);
  } finally {
    await agent.close();
  }
}

function messagesUrl(graph: FakeGraph, version = "v25.0", phoneNumberId = PHONE_NUMBER_ID): string {
  return `${graph.url}/${version}/${phoneNumberId}/messages`;
}

function textSend(body = "Hola, ¿en qué te ayudo?"): Json {
  return { messaging_product: "whatsapp", to: "+16505551234", type: "text", text: { body } };
}

interface Answer {
  status: number;
  headers: Headers;
  body: Json;
}

/** POSTs to the fake graph and reads the whole answer (so no body is left unconsumed). */
async function send(
  graph: FakeGraph,
  body: unknown,
  init: { token?: string | null; url?: string; method?: string; signal?: AbortSignal } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  const token = init.token === undefined ? TOKEN : init.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const res = await fetch(init.url ?? messagesUrl(graph), {
    method: init.method ?? "POST",
    headers,
    body: init.method === "GET" ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    signal: init.signal,
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text === "" ? {} : JSON.parse(text) };
}

/** Asserts Meta's error envelope with this code, and returns the error object. */
function assertGraphError(answer: Answer, status: number, code: number): Json {
  assert.equal(answer.status, status);
  const error = answer.body.error as Json;
  assert.equal(error.code, code);
  assert.equal(error.type, "OAuthException");
  assert.equal(typeof error.message, "string");
  assert.match(String(error.fbtrace_id), /^[A-Za-z0-9_-]{10,}$/);
  return error;
}

/** Tracks whether a promise has settled, to prove a request is still pending. */
function track<T>(promise: Promise<T>): { promise: Promise<T>; settled: () => boolean } {
  let settled = false;
  const tracked = promise.finally(() => {
    settled = true;
  });
  return { promise: tracked, settled: () => settled };
}

// ----- fake graph: success -------------------------------------------------------------------------------

Deno.test("fake graph: a text send answers Meta's success shape and is recorded in sent", async () => {
  await withGraph(async (graph) => {
    const body = textSend();
    const answer = await send(graph, body);
    assert.equal(answer.status, 200);
    assert.deepEqual(Object.keys(answer.body).sort(), ["contacts", "messages", "messaging_product"]);
    assert.equal(answer.body.messaging_product, "whatsapp");
    assert.deepEqual(answer.body.contacts, [{ input: "+16505551234", wa_id: "16505551234" }]);
    const [message] = answer.body.messages as Json[];
    assert.match(String(message?.id), /^wamid\.[A-Za-z0-9+/=]+$/);
    assert.equal(message?.message_status, undefined, "only template sends carry message_status");

    assert.equal(graph.sent.length, 1);
    assert.equal(graph.sent[0]?.wamid, message?.id);
    assert.equal(graph.sent[0]?.phoneNumberId, PHONE_NUMBER_ID);
    assert.deepEqual(graph.sent[0]?.body, body);
    assert.ok(graph.sent[0]?.at instanceof Date);
    assert.equal(graph.received.length, 1);
    assert.equal(graph.received[0]?.status, 200);
  });
});

Deno.test("fake graph: any version, a formatted phone, no type (text) and a BSUID recipient", async () => {
  await withGraph(async (graph) => {
    const formatted = await send(graph, {
      messaging_product: "whatsapp",
      to: "+1 (650) 555-1234",
      text: { body: "hi" },
    }, { url: messagesUrl(graph, "v26.0") });
    assert.equal(formatted.status, 200);
    assert.deepEqual(formatted.body.contacts, [{ input: "+1 (650) 555-1234", wa_id: "16505551234" }]);

    const bsuid = await send(graph, {
      messaging_product: "whatsapp",
      recipient: "US.13491208655302741918",
      type: "text",
      text: { body: "hi" },
    });
    assert.equal(bsuid.status, 200);
    assert.deepEqual(bsuid.body.contacts, [
      { input: "US.13491208655302741918", user_id: "US.13491208655302741918" },
    ]);

    const reaction = await send(graph, {
      messaging_product: "whatsapp",
      to: "16505551234",
      type: "reaction",
      reaction: { message_id: "wamid.abc", emoji: "" },
    });
    assert.equal(reaction.status, 200, "an empty emoji removes a reaction and is valid");
    assert.equal(graph.sent.length, 3);
  });
});

Deno.test("fake graph: a template send answers message_status accepted", async () => {
  await withGraph(async (graph) => {
    const answer = await send(graph, {
      messaging_product: "whatsapp",
      to: "+16505551234",
      type: "template",
      template: { name: "order_confirmation", language: { code: "es_MX" } },
    });
    assert.equal(answer.status, 200);
    const [message] = answer.body.messages as Json[];
    assert.equal(message?.message_status, "accepted");
    assert.match(String(message?.id), /^wamid\./);
  });
});

Deno.test("fake graph: a missing or wrong bearer token answers 401 code 190", async () => {
  await withGraph(async (graph) => {
    const missing = await send(graph, textSend(), { token: null });
    assertGraphError(missing, 401, 190);
    const wrong = await send(graph, textSend(), { token: "not-the-token" });
    assertGraphError(wrong, 401, 190);
    assert.equal(graph.sent.length, 0);
    assert.deepEqual(graph.received.map((request) => request.status), [401, 401]);
  });
});

Deno.test("fake graph: invalid requests answer the Graph error envelope and are never sent", async () => {
  await withGraph(async (graph) => {
    const { messaging_product: _, ...noProduct } = textSend();
    assertGraphError(await send(graph, noProduct), 400, 100);
    assertGraphError(await send(graph, { ...textSend(), messaging_product: "sms" }), 400, 100);
    assertGraphError(await send(graph, "{not json"), 400, 100);

    const tooLong = assertGraphError(await send(graph, textSend("x".repeat(4097))), 400, 131009);
    assert.equal((tooLong.error_data as Json).messaging_product, "whatsapp");
    assert.equal(typeof (tooLong.error_data as Json).details, "string");
    assertGraphError(await send(graph, textSend("")), 400, 131009);

    const { to: _to, ...noRecipient } = textSend();
    assertGraphError(await send(graph, noRecipient), 400, 131008);
    assertGraphError(await send(graph, { ...textSend(), to: "not a phone" }), 400, 100);
    assertGraphError(await send(graph, { ...textSend(), type: "carousel" }), 400, 100);
    assertGraphError(
      await send(graph, {
        messaging_product: "whatsapp",
        to: "+16505551234",
        type: "template",
        template: { name: "order_confirmation" },
      }),
      400,
      131008,
    );
    assertGraphError(
      await send(graph, { messaging_product: "whatsapp", to: "+16505551234", type: "image", image: {} }),
      400,
      131008,
    );
    assertGraphError(
      await send(graph, {
        messaging_product: "whatsapp",
        to: "+16505551234",
        type: "reaction",
        reaction: { message_id: "wamid.abc" },
      }),
      400,
      131008,
    );
    assertGraphError(await send(graph, textSend(), { method: "GET" }), 400, 100);
    assertGraphError(
      // (media uploads are served: local/fake-media.ts)
      await send(graph, textSend(), { url: `${graph.url}/v25.0/${PHONE_NUMBER_ID}/settings` }),
      404,
      100,
    );
    assertGraphError(
      await send(graph, textSend(), { url: `${graph.url}/${PHONE_NUMBER_ID}/messages` }),
      404,
      100,
    );
    assertGraphError(await send(graph, textSend(), { url: messagesUrl(graph, "v25.0", "me") }), 404, 100);

    assert.equal(graph.sent.length, 0);
    assert.equal(graph.received.length, 15);
    assert.ok(graph.received.every((request) => request.status !== 200));

    // The longest valid text is fine.
    assert.equal((await send(graph, textSend("x".repeat(4096)))).status, 200);
  });
});

Deno.test("fake graph: a chunked request body is read like any other", async () => {
  await withGraph(async (graph) => {
    const bytes = new TextEncoder().encode(JSON.stringify(textSend()));
    const res = await fetch(messagesUrl(graph), {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: new ReadableStream({
        start(controller) {
          controller.enqueue(bytes.slice(0, 10));
          controller.enqueue(bytes.slice(10));
          controller.close();
        },
      }),
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    assert.deepEqual(graph.sent[0]?.body, textSend());
  });
});

// ----- fake graph: faults -------------------------------------------------------------------------------

Deno.test("fake graph: an error fault answers its status, code and Retry-After, once", async () => {
  await withGraph(async (graph) => {
    graph.enqueue({ kind: "error", status: 503, code: 133004, retryAfterSeconds: 7 });
    const failed = await send(graph, textSend());
    const error = assertGraphError(failed, 503, 133004);
    assert.equal(error.message, "(#133004) Server temporarily unavailable");
    assert.equal(failed.headers.get("retry-after"), "7");

    graph.enqueue({ kind: "error", status: 400, code: 131056, message: "custom", subcode: 2494055 });
    const custom = assertGraphError(await send(graph, textSend()), 400, 131056);
    assert.equal(custom.message, "custom");
    assert.equal(custom.error_subcode, 2494055);

    const next = await send(graph, textSend());
    assert.equal(next.status, 200, "a fault applies to one request only");
    assert.equal(next.headers.get("retry-after"), null);
    assert.equal(graph.sent.length, 1);
    assert.deepEqual(graph.received.map((request) => request.status), [503, 400, 200]);
  });
});

Deno.test("fake graph: the fault option applies when nothing is queued; queued faults come first", async () => {
  let calls = 0;
  const graph = await startFakeGraph({
    fault: () => (++calls % 2 === 0 ? { kind: "rate_limit" } : undefined),
  });
  try {
    graph.enqueue({ kind: "error", status: 500, code: 131000 });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await send(graph, textSend())).status);
    assert.deepEqual(statuses, [500, 200, 400]);
    assert.equal(calls, 2, "consulted only for requests with no queued fault");
  } finally {
    await graph.close();
  }
});

Deno.test("fake graph: rate_limit answers HTTP 400 code 130429 with Retry-After: 1", async () => {
  await withGraph(async (graph) => {
    graph.enqueue({ kind: "rate_limit" });
    const answer = await send(graph, textSend());
    const error = assertGraphError(answer, 400, 130429);
    assert.equal(error.message, "(#130429) Rate limit hit");
    assert.equal(answer.headers.get("retry-after"), "1");
    assert.equal(graph.sent.length, 0);
  });
});

Deno.test("fake graph: faults do not apply to invalid requests", async () => {
  await withGraph(async (graph) => {
    graph.enqueue({ kind: "rate_limit" });
    assertGraphError(await send(graph, textSend(), { token: "wrong" }), 401, 190);
    assertGraphError(await send(graph, textSend()), 400, 130429);
  });
});

Deno.test("fake graph: delay records the request on arrival and succeeds after the wait", async () => {
  await withGraph(async (graph) => {
    graph.enqueue({ kind: "delay", ms: 300 });
    const started = performance.now();
    const request = track(send(graph, textSend()));
    await graph.waitFor(() => graph.received.length === 1);
    assert.equal(graph.sent.length, 0, "not executed before the delay ends");
    assert.equal(request.settled(), false);
    const answer = await request.promise;
    assert.equal(answer.status, 200);
    assert.ok(performance.now() - started >= 250);
    assert.equal(graph.sent[0]?.wamid, (answer.body.messages as Json[])[0]?.id);
  });
});

Deno.test("fake graph: accept_then_delay records the send before the answer arrives", async () => {
  await withGraph(async (graph) => {
    graph.enqueue({ kind: "accept_then_delay", ms: 500 });
    const request = track(send(graph, textSend()));
    await graph.waitFor(() => graph.sent.length === 1);
    assert.equal(request.settled(), false, "the answer is still on its way");
    const answer = await request.promise;
    assert.equal(answer.status, 200);
    assert.equal((answer.body.messages as Json[])[0]?.id, graph.sent[0]?.wamid);
  });
});

Deno.test("fake graph: accept_then_delay + client timeout = executed but unanswered", async () => {
  await withGraph(async (graph) => {
    graph.enqueue({ kind: "accept_then_delay", ms: 2_000 });
    await assert.rejects(send(graph, textSend(), { signal: AbortSignal.timeout(200) }), {
      name: "TimeoutError",
    });
    assert.equal(graph.sent.length, 1, "the message went out although the client saw a timeout");
  });
});

Deno.test("fake graph: hang never answers, is received but not sent, and close still resolves", async () => {
  const graph = await startFakeGraph();
  let pending: Promise<unknown> | undefined;
  try {
    graph.enqueue({ kind: "hang" });
    await assert.rejects(send(graph, textSend(), { signal: AbortSignal.timeout(200) }), {
      name: "TimeoutError",
    });
    assert.equal(graph.received.length, 1);
    assert.equal(graph.received[0]?.status, null);
    assert.equal(graph.sent.length, 0);

    // A request still hanging when the fake closes ends as a closed connection.
    graph.enqueue({ kind: "hang" });
    pending = send(graph, textSend()).then(() => "answered", (error: Error) => error.name);
    await graph.waitFor(() => graph.received.length === 2);
  } finally {
    await graph.close();
  }
  assert.equal(await pending, "TypeError");
  assert.equal(graph.sent.length, 0);
});

Deno.test("fake graph: drop_connection closes the connection without answering", async () => {
  await withGraph(async (graph) => {
    graph.enqueue({ kind: "drop_connection" });
    await assert.rejects(send(graph, textSend()), TypeError);
    assert.equal(graph.received.length, 1);
    assert.equal(graph.received[0]?.status, null);
    assert.equal(graph.sent.length, 0);
    assert.equal((await send(graph, textSend())).status, 200, "the next request succeeds");
  });
});

Deno.test("fake graph: gateway_error executes the send, then answers a 5xx with no Graph error body", async () => {
  await withGraph(async (graph) => {
    graph.enqueue({ kind: "gateway_error", status: 502 });
    const res = await fetch(messagesUrl(graph), {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify(textSend()),
    });
    assert.equal(res.status, 502);
    assert.match(await res.text(), /^<html>/, "a gateway's page, not the Graph error envelope");
    assert.equal(graph.sent.length, 1, "the message went out");
    assert.equal(graph.received[0]?.status, 502);
  });
});

Deno.test("fake graph (keepAlive): Deno's fetch silently re-sends a request dropped on a reused connection", async () => {
  // Documents a real hazard, not the fake: against Meta, a send whose keep-alive connection drops may be
  // POSTed twice by fetch itself. The fake's default (no keep-alive) makes drops reach the client instead.
  await withGraph(async (graph) => {
    assert.equal((await send(graph, textSend())).status, 200);
    graph.enqueue({ kind: "drop_connection" });
    const retried = await send(graph, textSend());
    assert.equal(retried.status, 200);
    assert.deepEqual(graph.received.map((request) => request.status), [200, null, 200]);
  }, true);
});

Deno.test("fake graph: mark as read answers success and is not a sent message", async () => {
  await withGraph(async (graph) => {
    const read = await send(graph, {
      messaging_product: "whatsapp",
      status: "read",
      message_id: "wamid.in1",
    });
    assert.equal(read.status, 200);
    assert.deepEqual(read.body, { success: true });
    const typing = await send(graph, {
      messaging_product: "whatsapp",
      status: "read",
      message_id: "wamid.in2",
      typing_indicator: { type: "text" },
    });
    assert.deepEqual(typing.body, { success: true });
    assertGraphError(await send(graph, { messaging_product: "whatsapp", status: "read" }), 400, 131008);
    assert.deepEqual(graph.readReceipts, ["wamid.in1", "wamid.in2"]);
    assert.equal(graph.sent.length, 0);
    // Typing indicators are counted apart, so tests of sends and receipts do not depend on them.
    assert.equal(graph.received.length, 2);
    assert.deepEqual(graph.typingIndicators, ["wamid.in2"]);
    const wrong = { messaging_product: "whatsapp", status: "read", message_id: "wamid.in3" };
    assertGraphError(await send(graph, { ...wrong, typing_indicator: { type: "audio" } }), 400, 100);
    graph.enqueueTyping({ kind: "error", status: 500, code: 131000 });
    assertGraphError(await send(graph, { ...wrong, typing_indicator: { type: "text" } }), 500, 131000);
    assert.deepEqual(graph.typingRequests, ["wamid.in2", "wamid.in3"]);
    assert.deepEqual(graph.typingIndicators, ["wamid.in2"]);
  });
});

Deno.test("fake graph: reset clears records and faults; waitFor rejects clearly on timeout", async () => {
  await withGraph(async (graph) => {
    await send(graph, textSend());
    graph.enqueue({ kind: "rate_limit" });
    const sent = graph.sent;
    graph.reset();
    assert.equal(sent.length, 0, "emptied in place");
    assert.equal(graph.received.length, 0);
    assert.equal((await send(graph, textSend())).status, 200, "the queued fault is gone");
    await assert.rejects(graph.waitFor(() => false, 50), /waitFor: condition still false after 50 ms/);
  });
});

// ----- demo agent ---------------------------------------------------------------------------------------

interface BatchMessage {
  type?: string;
  text?: string | null;
  media?: Json;
}

function agentRequest(
  messages: BatchMessage[],
  extra: { history?: Json[]; session?: Json | null; name?: string } = {},
): Json {
  return {
    conversation: { id: "c0ffee00-0000-4000-8000-000000000001", phone_number_id: PHONE_NUMBER_ID },
    contact: { id: "contact-1", wa_id: "16505551234", name: extra.name ?? "Sheena Nelson" },
    batch: {
      fence: 3,
      messages: messages.map((message, index) => ({
        id: `m${index}`,
        wamid: `wamid.in${index}`,
        type: message.type ?? "text",
        text: message.text === undefined ? null : message.text,
        ...(message.media === undefined ? {} : { media: message.media }),
        sent_at: "2026-08-20T12:00:00Z",
      })),
    },
    history: extra.history ?? [],
    ...(extra.session === undefined ? {} : { session: extra.session }),
  };
}

const OUTBOUND_HISTORY = [
  { direction: "inbound", type: "text", text: "hola", sent_at: "2026-08-20T11:00:00Z" },
  { direction: "outbound", type: "text", text: "¡Hola!", sent_at: "2026-08-20T11:00:05Z" },
];

/** POSTs to the demo agent and reads the whole answer. */
async function ask(
  agent: DemoAgent,
  body: unknown,
  init: { idempotencyKey?: string; signal?: AbortSignal } = {},
): Promise<{ status: number; body: Json }> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (init.idempotencyKey !== undefined) headers["idempotency-key"] = init.idempotencyKey;
  const res = await fetch(agent.url, {
    method: "POST",
    headers,
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal: init.signal,
  });
  return { status: res.status, body: await res.json() };
}

function replyText(answer: { body: Json }): string {
  const reply = answer.body.reply as { text: string } | null;
  assert.ok(reply !== null, "expected a reply");
  return reply.text;
}

Deno.test("demo agent: the same request gets the same reply", async () => {
  await withAgent(async (agent) => {
    const request = agentRequest([{ text: "Hola" }, { text: "¿precio?" }], {
      session: { state: "start", data: {}, version: 1 },
    });
    const first = await ask(agent, request);
    const second = await ask(agent, request);
    assert.equal(first.status, 200);
    assert.deepEqual(first.body, second.body);
    assert.ok(agent.url.endsWith("/agent"));
  });
});

Deno.test("demo agent: greets by name on the first batch only, and echoes what it read", async () => {
  await withAgent(async (agent) => {
    const first = replyText(
      await ask(agent, agentRequest([{ text: "Hola" }, { text: "buenas" }, { text: "?" }])),
    );
    assert.match(first, /^¡Hola, Sheena!/);
    assert.match(first, /Recibí tus 3 mensajes: “Hola” \/ “buenas” \/ “\?”/);

    const later = replyText(
      await ask(agent, agentRequest([{ text: "sigo aquí" }], { history: OUTBOUND_HISTORY })),
    );
    assert.doesNotMatch(later, /Hola/);
    assert.match(later, /Recibí tu mensaje: “sigo aquí”/);
  });
});

Deno.test("demo agent: answers price, hours and human keywords in Spanish and English", async () => {
  await withAgent(async (agent) => {
    const history = { history: OUTBOUND_HISTORY };
    assert.match(
      replyText(await ask(agent, agentRequest([{ text: "¿Cuál es el PRECIO?" }], history))),
      /USD 29/,
    );
    assert.match(
      replyText(await ask(agent, agentRequest([{ text: "¿Qué horario tienen?" }], history))),
      /lunes a viernes/,
    );
    assert.match(
      replyText(await ask(agent, agentRequest([{ text: "quiero hablar con un asesor" }], history))),
      /ejecutivo/,
    );
    const english = replyText(
      await ask(agent, agentRequest([{ text: "Hi, what are your hours and prices?" }], { name: "Ann Lee" })),
    );
    assert.match(english, /^Hi Ann!/);
    assert.match(english, /Monday to Friday/);
    assert.match(english, /USD 29/);
    assert.match(
      replyText(await ask(agent, agentRequest([{ text: "I want a human agent please" }], history))),
      /executive/,
    );
  });
});

Deno.test("demo agent: mentions media by type without downloading it", async () => {
  await withAgent(async (agent) => {
    const text = replyText(
      await ask(
        agent,
        agentRequest([
          { type: "image", media: { id: "media-1", mime_type: "image/jpeg", caption: "la caja" } },
          { type: "image", media: { id: "media-2", mime_type: "image/jpeg" } },
          { type: "document", media: { id: "media-3", filename: "factura.pdf" } },
        ]),
      ),
    );
    assert.match(text, /Recibí tus 3 mensajes\./);
    assert.match(text, /Vi 2 imágenes y 1 documento/);
    assert.equal(agent.requests.length, 1, "the agent fetched nothing else");
  });
});

Deno.test("demo agent: never silent for a non-empty batch, silent for an empty one, replies ≤ 4096", async () => {
  await withAgent(async (agent) => {
    const batches: BatchMessage[][] = [
      [{ type: "reaction", text: null }],
      [{ type: "sticker", media: { id: "s1" } }],
      [{ type: "unsupported" }],
      [{ type: "location" }, { type: "contacts" }],
      [{ text: "x".repeat(10_000) }],
      Array.from({ length: 60 }, () => ({ text: "precio horario asesor ".repeat(200) })),
    ];
    for (const messages of batches) {
      const text = replyText(await ask(agent, agentRequest(messages)));
      assert.ok(text.length > 0 && [...text].length <= 4096, `reply length ${text.length}`);
    }
    const empty = await ask(agent, agentRequest([]));
    assert.equal(empty.status, 200);
    assert.equal(empty.body.reply, null);
  });
});

Deno.test("demo agent: advances the session state machine and counts turns", async () => {
  await withAgent(async (agent) => {
    const turn = async (text: string, session: Json) =>
      (await ask(agent, agentRequest([{ text }], { session }))).body;

    const first = await turn("hola", { state: "start", data: { lead: "x" }, version: 1 });
    assert.deepEqual(first.session, { state: "qualifying", data: { lead: "x", turns: 1 } });
    const second = await turn("¿precio?", { state: "qualifying", data: { lead: "x", turns: 1 }, version: 2 });
    assert.deepEqual(second.session, { state: "quoted", data: { lead: "x", turns: 2 } });
    const third = await turn("quiero un humano", { state: "quoted", data: { turns: 2 }, version: 3 });
    assert.deepEqual(third.session, { state: "handoff", data: { turns: 3 } });
    const fourth = await turn("¿hola?", { state: "handoff", data: { turns: 3 }, version: 4 });
    assert.equal((fourth.session as Json).state, "handoff");
    assert.match((fourth.reply as Json).text as string, /ya tiene tu conversación/);

    const stateless = await ask(agent, agentRequest([{ text: "hola" }]));
    assert.equal("session" in stateless.body, false, "no session in, no session out");
    const nullSession = await ask(agent, agentRequest([{ text: "hola" }], { session: null }));
    assert.equal("session" in nullSession.body, false);
  });
});

Deno.test("demo agent: invalid JSON or a missing batch answers 400 invalid_request", async () => {
  await withAgent(async (agent) => {
    const notJson = await ask(agent, "{oops");
    assert.equal(notJson.status, 400);
    assert.equal((notJson.body.error as Json).code, "invalid_request");

    const { batch: _, ...noBatch } = agentRequest([{ text: "hola" }]);
    const missing = await ask(agent, noBatch);
    assert.equal(missing.status, 400);
    assert.equal((missing.body.error as Json).code, "invalid_request");
    assert.match(String((missing.body.error as Json).message), /batch/);

    const extra = await ask(agent, { ...agentRequest([{ text: "hola" }]), unknown_field: { x: 1 } });
    assert.equal(extra.status, 200, "unknown fields are allowed");
  });
});

Deno.test("demo agent: error, reply and delay faults", async () => {
  await withAgent(async (agent) => {
    const request = agentRequest([{ text: "hola" }]);
    agent.enqueue({ kind: "error", status: 503 }, { kind: "reply", body: { reply: { text: 42 } } });
    const failed = await ask(agent, request);
    assert.equal(failed.status, 503);
    assert.equal((failed.body.error as Json).code, "injected_fault");
    const odd = await ask(agent, request);
    assert.equal(odd.status, 200);
    assert.deepEqual(odd.body, { reply: { text: 42 } });

    agent.enqueue({ kind: "delay", ms: 300 });
    const slow = track(ask(agent, request));
    await agent.waitFor(() => agent.requests.length === 3);
    assert.equal(slow.settled(), false, "recorded on arrival, before the delay");
    const answer = await slow.promise;
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, (await ask(agent, request)).body, "a delay changes nothing but timing");
  });
});

Deno.test("demo agent: a wait fault answers normally once the test releases it", async () => {
  await withAgent(async (agent) => {
    const request = agentRequest([{ text: "hola" }]);
    let release!: () => void;
    agent.enqueue({ kind: "wait", until: new Promise<void>((resolve) => (release = resolve)) });
    const held = track(ask(agent, request));
    await agent.waitFor(() => agent.requests.length === 1);
    assert.equal(held.settled(), false, "recorded on arrival, held until released");
    release();
    assert.deepEqual((await held.promise).body, (await ask(agent, request)).body);
  });
});

Deno.test("demo agent: the fault option applies when nothing is queued", async () => {
  const agent = await startDemoAgent({ fault: () => ({ kind: "error", status: 502 }) });
  try {
    agent.enqueue({ kind: "delay", ms: 0 });
    assert.equal((await ask(agent, agentRequest([{ text: "hola" }]))).status, 200);
    assert.equal((await ask(agent, agentRequest([{ text: "hola" }]))).status, 502);
  } finally {
    await agent.close();
  }
});

Deno.test("demo agent: hang never answers and close still resolves", async () => {
  const agent = await startDemoAgent();
  let pending: Promise<unknown> | undefined;
  try {
    agent.enqueue({ kind: "hang" });
    await assert.rejects(
      ask(agent, agentRequest([{ text: "hola" }]), { signal: AbortSignal.timeout(200) }),
      { name: "TimeoutError" },
    );
    assert.equal(agent.requests.length, 1);
    agent.enqueue({ kind: "hang" });
    pending = ask(agent, agentRequest([{ text: "hola" }])).then(
      () => "answered",
      (error: Error) => error.name,
    );
    await agent.waitFor(() => agent.requests.length === 2);
  } finally {
    await agent.close();
  }
  assert.equal(await pending, "TypeError");
});

Deno.test("demo agent: records the Idempotency-Key header, null when absent; reset clears", async () => {
  await withAgent(async (agent) => {
    await ask(agent, agentRequest([{ text: "hola" }]), { idempotencyKey: "conv-1:fence-3" });
    await ask(agent, agentRequest([{ text: "hola" }]));
    assert.deepEqual(agent.requests.map((request) => request.idempotencyKey), ["conv-1:fence-3", null]);
    assert.equal((agent.requests[0]?.body as Json).conversation !== undefined, true);
    agent.enqueue({ kind: "error", status: 500 });
    agent.reset();
    assert.equal(agent.requests.length, 0);
    assert.equal((await ask(agent, agentRequest([{ text: "hola" }]))).status, 200);
  });
});
