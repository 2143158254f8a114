// The governed send path against the fake Graph API enforcing Meta's limits: throttled sends are sent again,
// once, after the governor's backoff; concurrent senders on real connections share one schedule. Waits are
// counted through the injected sleep, never timed.
import assert from "node:assert/strict";
import { startFakeGraph } from "../../../local/fake-graph.ts";
import { testSql } from "../../../local/testing/db.ts";
import { governed, pairKey } from "./governor.ts";
import { createGraphClient, graphRetryable } from "./graph.ts";
import { resilient } from "./resilience.ts";

const TOKEN = "governor-test-token";

async function setup(limits?: { mps: number; pairBurst?: number }) {
  const graph = await startFakeGraph({ accessToken: TOKEN, limits });
  const sql = testSql(8);
  const number = String(300000000000000 + Math.floor(Math.random() * 1e13));
  await sql`insert into wa.phone_numbers (phone_number_id) values (${number})`;
  const client = createGraphClient(
    `${graph.url}/v25.0`,
    TOKEN,
    resilient({
      timeoutMs: 2000,
      maxAttempts: 3,
      baseDelayMs: 10,
      retryable: graphRetryable(3000),
      breaks: () => false,
      breakerThreshold: 100,
      halfOpenAfterMs: 1000,
    }),
  );
  // A virtual clock the governor books at, moved by its sleeps.
  let clock = Date.parse("2026-06-01T00:00:00Z");
  const waits: number[] = [];
  const send = (priority: "interactive" | "campaign", maxWaitMs = 60_000) =>
    governed(client, sql, {
      priority,
      maxWaitMs,
      clock: () => clock,
      sleep: (ms) => {
        waits.push(ms);
        clock += ms;
        return Promise.resolve();
      },
    });
  return {
    graph,
    sql,
    number,
    waits,
    send,
    close: async () => {
      await sql`delete from wa.phone_numbers where phone_number_id = ${number}`;
      await sql.end();
      await graph.close();
    },
  };
}

const text = (to: string) => ({
  messaging_product: "whatsapp",
  to: `+${to}`,
  type: "text",
  text: { body: "hola" },
});

Deno.test("pairKey: the wa_id digits of `to`, else the BSUID", () => {
  assert.equal(pairKey(text("5215512345678")), "5215512345678");
  assert.equal(pairKey({ type: "text", recipient: "MX.abc" }), "MX.abc");
  assert.equal(pairKey({ type: "text" }), null);
});

Deno.test("a 130429 slows the number and the same message is sent again, once", async () => {
  const t = await setup();
  try {
    t.graph.enqueue({ kind: "rate_limit" });
    const result = await t.send("interactive").send(t.number, text("5215500000001"));
    assert.equal(result.kind, "sent");
    assert.equal(t.graph.received.length, 2, "refused once, then sent");
    assert.equal(t.graph.sent.length, 1, "never doubled");
    assert.deepEqual(t.waits, [1000], "waited the 1 s pause");
    const [governor] = await t.sql<{ throttle_factor: number }[]>`
      select throttle_factor from wa.send_governor where phone_number_id = ${t.number}`;
    assert.equal(governor?.throttle_factor, 0.8);
  } finally {
    await t.close();
  }
});

Deno.test("131056 backs off that recipient 1 s, then 4 s, and the message goes once", async () => {
  const t = await setup();
  try {
    const pair = { kind: "error" as const, status: 400, code: 131056 };
    t.graph.enqueue(pair, pair);
    const result = await t.send("interactive").send(t.number, text("5215500000002"));
    assert.equal(result.kind, "sent");
    assert.equal(t.graph.sent.length, 1);
    assert.deepEqual(t.waits.filter((ms) => ms >= 900), [1000, 4000]);
  } finally {
    await t.close();
  }
});

Deno.test("a slot further away than the allowed wait fails retryable, sending nothing", async () => {
  const t = await setup();
  try {
    await t.sql`update wa.phone_numbers set pair_burst = 1 where phone_number_id = ${t.number}`;
    assert.equal((await t.send("interactive").send(t.number, text("5215500000003"))).kind, "sent");
    const second = await t.send("interactive", 1000).send(t.number, text("5215500000003"));
    assert.equal(second.kind, "failed");
    assert.ok(second.kind === "failed" && second.retryable && second.retryAfterMs === 6000);
    assert.equal(t.graph.received.length, 1);
  } finally {
    await t.close();
  }
});

Deno.test("concurrent senders on real connections never exceed the fake's limits", async () => {
  // 400 messages to 400 recipients from 8 concurrent senders at 2,000 mps: the fake enforces the same rate.
  const t = await setup({ mps: 2000 });
  try {
    await t.sql`update wa.phone_numbers set send_rate_mps = 2000 where phone_number_id = ${t.number}`;
    const real = governed(
      createGraphClient(
        `${t.graph.url}/v25.0`,
        TOKEN,
        resilient({
          timeoutMs: 2000,
          maxAttempts: 1,
          baseDelayMs: 10,
          retryable: () => false,
          breaks: () => false,
          breakerThreshold: 100,
          halfOpenAfterMs: 1000,
        }),
      ),
      t.sql,
      { priority: "campaign", maxWaitMs: 60_000 },
    );
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < 400) {
        const i = next++;
        const result = await real.send(t.number, text(`52155${String(i).padStart(8, "0")}`));
        assert.equal(result.kind, "sent");
      }
    }));
    assert.equal(t.graph.sent.length, 400);
    assert.deepEqual(t.graph.throttled, { 130429: 0, 131056: 0 });
  } finally {
    await t.close();
  }
});

Deno.test("a slot booked with the caller's own call is waited for, not booked again", async () => {
  const t = await setup();
  try {
    const governor = t.send("interactive");
    assert.equal(
      (await governor.send(t.number, text("5215500000004"), { granted: true, wait_ms: 40 })).kind,
      "sent",
    );
    assert.equal(
      await governor.markRead(t.number, "wamid.R", { booked: { granted: true, wait_ms: 30 } }),
      true,
    );
    assert.deepEqual(t.waits, [40, 30], "the booked waits, and nothing else");
    const [booked] = await t.sql<{ n: number }[]>`
      select count(*)::int as n from wa.send_governor where phone_number_id = ${t.number}`;
    assert.equal(booked?.n, 0, "no slot was taken from the governor");
    // A booking the governor refused (the pair's quota used up) is asked again after its wait.
    const refused = await governor.send(t.number, text("5215500000005"), { granted: false, wait_ms: 500 });
    assert.equal(refused.kind, "sent");
    assert.deepEqual(t.waits.slice(2), [500]);
    const [asked] = await t.sql<{ n: number }[]>`
      select count(*)::int as n from wa.send_governor where phone_number_id = ${t.number}`;
    assert.equal(asked?.n, 1, "then booked its own");
  } finally {
    await t.close();
  }
});
