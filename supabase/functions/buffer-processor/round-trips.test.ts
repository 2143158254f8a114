// What one batch costs the database (issue 23): the statements a text batch sends, each a round trip, so a step
// that creeps back in (a media query for a batch without media, a slot or a record on their own) fails here.
import assert from "node:assert/strict";
import postgres from "postgres";
import { testDbUrl } from "../../../local/testing/db.ts";
import { processorTest, processorTestEnv, seedDueBuffers } from "../../../local/testing/processor.ts";
import { createProcessor } from "./processor.ts";

processorTest(
  "a text batch: 4 statements (claim with context and typing slot, session, reply with its slot, completion with the record and the count)",
  async (fakes, sql) => {
    const { phoneNumberId } = await seedDueBuffers(sql, 1);
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
      assert.deepEqual(sent, [
        "claim_batch",
        "update_batch_session",
        "begin_agent_reply_slot",
        "complete_reply",
      ]);
      assert.equal(
        fakes.graph.typingIndicators.length,
        1,
        "the typing indicator went out on the claim's slot",
      );
      const [counted] = await sql<{ batches: number }[]>`
        select sum(batches)::int as batches from wa.bot_daily_stats
        where phone_number_id = ${phoneNumberId} and outcome = 'replied'`;
      assert.equal(counted?.batches, 1, "the outcome was counted with the completion");
    } finally {
      await traced.end();
    }
  },
);
