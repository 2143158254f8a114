// What one batch costs the database (issue 23): the statements a text batch sends, each a round trip, so a step
// that creeps back in (a media query for a batch without media, a slot or a record on their own) fails here.
import assert from "node:assert/strict";
import postgres from "postgres";
import { testDbUrl } from "../../../local/testing/db.ts";
import { processorTest, processorTestEnv, seedDueBuffers } from "../../../local/testing/processor.ts";
import { createProcessor } from "./processor.ts";

processorTest(
  "a text batch: claim, context, typing slot, session, reply with slot, complete with record, outcome",
  async (fakes, sql) => {
    await seedDueBuffers(sql, 1);
    const sent: string[] = [];
    const traced = postgres(testDbUrl(), {
      max: 2,
      onnotice: () => {},
      // The first function a statement calls names it (the driver's own type lookup on a new connection is
      // not the batch's).
      debug: (_connection, query) => {
        const called = /wa\.(\w+)/.exec(query)?.[1];
        if (called !== undefined) sent.push(called);
      },
    });
    try {
      const processor = await createProcessor(processorTestEnv(fakes), traced, "round-trips");
      sent.length = 0;
      const summary = await processor.drain({ maxBatches: 1 });
      assert.deepEqual(summary.outcomes, { replied: 1 });
      assert.equal(fakes.graph.sent.length, 1);
      // The typing indicator's slot runs beside the agent call: its place in the order may vary.
      assert.deepEqual(sent.sort(), [
        "agent_context_with_session",
        "begin_agent_reply_slot",
        "claim_buffers",
        "complete_reply",
        "note_batch_outcome",
        "take_send_slot",
        "update_batch_session",
      ]);
    } finally {
      await traced.end();
    }
  },
);
