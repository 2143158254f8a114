// What wa_buffer_due tells a LISTENing worker (local/buffer-worker.ts): a new buffer's due time and a batch's
// buffer re-armed with its new one, never a claim (the row trigger's WHEN clause keeps claims free of it).
// Notifications arrive in commit order, so a marker sent after a statement proves whether it notified.
import assert from "node:assert/strict";
import { testSql } from "./testing/db.ts";
import { clearBuffers, seedDueBuffers } from "./testing/processor.ts";
import { contact, inboundMessage, messagesChange, webhook } from "./testing/whatsapp-fixtures.ts";

const MARKER = "marker";

Deno.test("wa_buffer_due: a new buffer and a re-armed one notify their due times, a claim nothing", async () => {
  const sql = testSql(2);
  const received: string[] = [];
  let marked: () => void = () => {};
  const listener = await sql.listen("wa_buffer_due", (payload) => {
    if (payload === MARKER) marked();
    else received.push(payload);
  });
  /** Runs `statement`, then waits for a marker sent after it: what it notified has arrived by then. */
  const notified = async (statement: () => Promise<unknown>) => {
    received.length = 0;
    await statement();
    const arrived = new Promise<void>((resolve) => marked = resolve);
    await sql`select pg_notify('wa_buffer_due', ${MARKER})`;
    await arrived;
    return [...received];
  };
  const dueMs = async (conversationId: string) => {
    const [row] = await sql<{ ms: string }[]>`
      select (extract(epoch from due_at) * 1000)::bigint::text as ms from wa.buffers
      where conversation_id = ${conversationId}`;
    return row!.ms;
  };
  try {
    await clearBuffers(sql);
    let seeded: Awaited<ReturnType<typeof seedDueBuffers>> | undefined;
    const onInsert = await notified(async () => seeded = await seedDueBuffers(sql, 1));
    const [buffer] = await sql<{ conversation_id: string }[]>`select conversation_id from wa.buffers`;
    assert.deepEqual(onInsert, [await dueMs(buffer!.conversation_id)], "a new buffer notifies its due time");

    // A message joining the waiting buffer starts its quiet period again: a later due time, nothing to wake for.
    const later = webhook(messagesChange({
      phoneNumberId: seeded!.phoneNumberId,
      contacts: [contact(seeded!.waIds[0]!)],
      messages: [inboundMessage("text", { from: seeded!.waIds[0]!, content: { body: "una cosa más" } })],
    }));
    const dueBefore = await dueMs(buffer!.conversation_id);
    const onLater = await notified(() =>
      sql`select wa.ingest_webhook(${JSON.stringify(later)}::text::jsonb)`
    );
    assert.ok(BigInt(await dueMs(buffer!.conversation_id)) > BigInt(dueBefore), "the due time moved later");
    assert.deepEqual(onLater, [], "a due time moved later notifies nothing");
    // Due again now (as seeded), for the claim below: an earlier due time is news.
    const onEarlier = await notified(() =>
      sql`update wa.buffers set due_at = now() - interval '1 second' where conversation_id = ${
        buffer!.conversation_id
      }`
    );
    assert.deepEqual(
      onEarlier,
      [await dueMs(buffer!.conversation_id)],
      "a due time moved earlier notifies it",
    );

    let claim: { fence: string; up_to_seq: string } | undefined;
    const onClaim = await notified(async () => {
      [claim] = await sql<{ fence: string; up_to_seq: string }[]>`
        select fence, up_to_seq from wa.claim_buffers('notify-test', 1)`;
    });
    assert.ok(claim, "the due buffer is claimed");
    assert.deepEqual(onClaim, [], "a claim notifies nothing");

    // A message arriving during the batch joins the leased buffer: nothing to wake for until it is released.
    const payload = webhook(messagesChange({
      phoneNumberId: seeded!.phoneNumberId,
      contacts: [contact(seeded!.waIds[0]!)],
      messages: [inboundMessage("text", { from: seeded!.waIds[0]!, content: { body: "y otra cosa" } })],
    }));
    const onAppend = await notified(() =>
      sql`select wa.ingest_webhook(${JSON.stringify(payload)}::text::jsonb)`
    );
    assert.deepEqual(onAppend, [], "a message joining a claimed buffer notifies nothing");

    const onComplete = await notified(() =>
      sql`select wa.complete_buffer(${claim!.fence}, ${claim!.up_to_seq})`
    );
    assert.deepEqual(
      onComplete,
      [await dueMs(buffer!.conversation_id)],
      "completing re-arms the buffer for the new message and notifies its due time",
    );
  } finally {
    await listener.unlisten();
    await clearBuffers(sql);
    await sql.end();
  }
});
