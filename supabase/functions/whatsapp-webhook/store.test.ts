// store.ts on the real database: what the schema lets through and Postgres still refuses is kept, never a 500.
import assert from "node:assert/strict";
import { testSql } from "../../../local/testing/db.ts";
import { oversizedIdentifier, textWebhook } from "../../../local/testing/whatsapp-fixtures.ts";
import { ingest, recordRejected } from "./store.ts";

Deno.test("an identifier past btree's entry size that reaches the ingest is kept raw with the reason", async () => {
  const sql = testSql();
  try {
    const body = JSON.stringify(textWebhook({ wamid: oversizedIdentifier() }));
    const outcome = await ingest(sql, body);
    assert.equal(outcome.kind, "rejected");
    if (outcome.kind !== "rejected") return;
    assert.match(outcome.reason, /^data error: index row size \d+ exceeds/);
    const [event] = await sql`select raw_body, payload is not null as has_payload, result
                              from wa.webhook_events where id = ${outcome.eventId}`;
    assert.deepEqual(event, { raw_body: body, has_payload: true, result: null });
  } finally {
    await sql.end();
  }
});

Deno.test("JSON that jsonb refuses (a number beyond numeric's range) is kept as raw text alone", async () => {
  const sql = testSql();
  try {
    const body = '{"n":1e1000000}';
    const outcome = await recordRejected(sql, body, body, "not a Cloud API webhook: object: ...");
    assert.equal(outcome.kind, "rejected");
    if (outcome.kind !== "rejected") return;
    const [event] = await sql`select raw_body, payload from wa.webhook_events where id = ${outcome.eventId}`;
    assert.deepEqual(event, { raw_body: body, payload: null });
  } finally {
    await sql.end();
  }
});
