// The openai agent's tools through the whole processor (claim, agent, tools, reply, send) against the fake
// ERP and a fake chat model that calls its tool: a hanging ERP costs a stale answer, not the reply; repeated
// failures open the tool's breaker, after which the tool is answered at once without a request; the tool
// rounds are bounded. Time (cache freshness, the breaker's half-open delay) is the test's clock.
import assert from "node:assert/strict";
import type postgres from "postgres";
import { startFakeChat } from "../../../local/fake-chat.ts";
import { startFakeErp } from "../../../local/fake-erp.ts";
import {
  type Fakes,
  processorTest,
  processorTestEnv,
  seedDueBuffers,
} from "../../../local/testing/processor.ts";
import { createProcessor } from "./processor.ts";

const TOOL = "inventory_lookup";

interface Setup {
  serveStale: boolean;
  rounds?: number;
  persistent?: boolean;
}

/** The tool, the fakes and a processor on a clock the test moves; everything removed afterwards. */
function toolTest(name: string, setup: Setup, fn: (t: ToolTest) => Promise<void>) {
  processorTest(name, async (fakes, sql) => {
    const erp = startFakeErp();
    const chat = startFakeChat({ persistent: setup.persistent });
    let now = Date.parse("2026-12-01T12:00:00Z");
    try {
      await sql`insert into wa.agent_tools (name, description, parameters, endpoint, timeout_ms, cache_ttl,
                                            serve_stale)
                values (${TOOL}, 'Units available of a SKU in the ERP',
                        '{"type":"object","properties":{"sku":{"type":"string"}},"required":["sku"]}',
                        ${erp.url}, 300, interval '60 seconds', ${setup.serveStale})`;
      const env = processorTestEnv(fakes, {
        AGENT_KIND: "openai",
        AGENT_URL: chat.url,
        AGENT_TIMEOUT_MS: "3000",
        BREAKER_THRESHOLD: "4",
        AGENT_TOOL_ROUNDS: String(setup.rounds ?? 3),
      });
      const processor = await createProcessor(env, sql, "tools-test", () => now);
      const batch = async () => {
        await seedDueBuffers(sql, 1);
        const summary = await processor.drain();
        assert.equal(summary.batches, 1);
        return Object.keys(summary.outcomes)[0];
      };
      await fn({
        fakes,
        sql,
        erp,
        chat,
        batch,
        advance: (ms) => void (now += ms),
        lastReply: () => (fakes.graph.sent.at(-1)?.body as { text: { body: string } }).text.body,
        audit: () =>
          sql<{ source: string; error: string | null; round: number }[]>`
            select source, error, round from wa.agent_tool_calls where tool = ${TOOL} order by id`,
      });
    } finally {
      await sql`delete from wa.agent_tool_calls where tool = ${TOOL}`;
      await sql`delete from wa.agent_tools where name = ${TOOL}`;
      await chat.close();
      await erp.close();
    }
  });
}

interface ToolTest {
  fakes: Fakes;
  sql: postgres.Sql;
  erp: ReturnType<typeof startFakeErp>;
  chat: ReturnType<typeof startFakeChat>;
  batch: () => Promise<string | undefined>;
  advance: (ms: number) => void;
  lastReply: () => string;
  audit: () => Promise<{ source: string; error: string | null; round: number }[]>;
}

toolTest("the ERP hangs: the reply still goes out inside the agent's timeout, from the stale cache", {
  serveStale: true,
}, async (t) => {
  assert.equal(await t.batch(), "replied");
  assert.equal(t.lastReply(), 'Inventario: {"sku":"A-100","available":12,"warehouse":"CDMX-1"}');
  const offered = t.chat.requests[0]?.tools as { function: { name: string } }[];
  assert.deepEqual(offered.map((tool) => tool.function.name), [TOOL], "the tool is offered as a function");

  // A minute later the cached answer is stale, the stock changed, and the ERP hangs.
  t.erp.stock.set("A-100", 3);
  t.erp.setMode({ kind: "hanging" });
  t.advance(61_000);
  assert.equal(await t.batch(), "replied", "the agent answered: no fallback, so inside its timeout");
  assert.equal(
    t.lastReply(),
    'Inventario: {"stale":true,"as_of":"2026-12-01T12:00:00.000Z","result":' +
      '{"sku":"A-100","available":12,"warehouse":"CDMX-1"}}',
  );
  assert.deepEqual(t.erp.requests, ["A-100", "A-100"], "one hung request: a timeout is not retried");
  assert.deepEqual((await t.audit()).map((row) => [row.source, row.error]), [
    ["live", null],
    ["stale", "no answer within 300 ms"],
  ]);

  // Within the TTL the cache answers without asking the ERP at all.
  t.advance(-61_000 + 30_000);
  assert.equal(await t.batch(), "replied");
  assert.equal(t.erp.requests.length, 2);
  assert.equal((await t.audit()).at(-1)?.source, "cache");
});

toolTest("failures open the tool's breaker, which then answers at once without a request; it closes again", {
  serveStale: false,
}, async (t) => {
  t.erp.setMode({ kind: "failing", status: 503 });
  // Two batches of two attempts each (a 5xx is retried once): four consecutive failures open the breaker.
  for (let i = 0; i < 2; i++) {
    assert.equal(await t.batch(), "replied");
    assert.equal(t.lastReply(), `Inventario: {"error":"${TOOL} is unavailable: HTTP 503"}`);
  }
  assert.equal(t.erp.requests.length, 4);
  t.erp.setMode({ kind: "hanging" });
  assert.equal(await t.batch(), "replied");
  assert.equal(t.erp.requests.length, 4, "the open breaker answered without asking the ERP");
  assert.equal(
    t.lastReply(),
    `Inventario: {"error":"${TOOL} is unavailable: its circuit breaker is open after repeated failures"}`,
  );
  assert.deepEqual((await t.audit()).map((row) => row.source), ["error", "error", "error"]);

  // Past the half-open delay (300 ms on the test's clock) one trial call goes through and closes it.
  t.erp.setMode({ kind: "ok" });
  t.advance(301);
  assert.equal(await t.batch(), "replied");
  assert.equal(t.erp.requests.length, 5);
  assert.equal((await t.audit()).at(-1)?.source, "live");
});

toolTest("a model that keeps calling tools gets AGENT_TOOL_ROUNDS rounds, then must answer", {
  serveStale: false,
  rounds: 2,
  persistent: true,
}, async (t) => {
  assert.equal(await t.batch(), "replied");
  assert.deepEqual(t.chat.requests.map((request) => request.tool_choice), ["auto", "auto", "none"]);
  assert.deepEqual((await t.audit()).map((row) => [row.round, row.source]), [[1, "live"], [2, "cache"]]);
  assert.ok(t.lastReply().startsWith("Inventario: "));
});

toolTest("a slow ERP inside the tool's timeout answers live; slower than it, the model gets a clear error", {
  serveStale: false,
}, async (t) => {
  t.erp.setMode({ kind: "slow", ms: 100 });
  assert.equal(await t.batch(), "replied");
  assert.equal(t.lastReply(), 'Inventario: {"sku":"A-100","available":12,"warehouse":"CDMX-1"}');
  t.erp.setMode({ kind: "slow", ms: 1_000 });
  t.advance(61_000);
  assert.equal(await t.batch(), "replied");
  assert.equal(t.lastReply(), `Inventario: {"error":"${TOOL} is unavailable: no answer within 300 ms"}`);
  assert.deepEqual((await t.audit()).map((row) => row.source), ["live", "error"]);
});
