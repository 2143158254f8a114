// Account-level webhooks through the webhook's store: template updates and marketing preferences are applied
// after the ingest, and a redelivery applies them again without harm.
import assert from "node:assert/strict";
import { testSql } from "../../../local/testing/db.ts";
import { DEMO_WABA_ID, otherChange, webhook } from "../../../local/testing/whatsapp-fixtures.ts";
import { ingest } from "./store.ts";

Deno.test("template and user_preferences webhooks reach the catalogue and the contact, redeliveries too", async () => {
  const sql = testSql(2);
  try {
    const templateId = String(Math.floor(Math.random() * 1e15));
    const waId = `52155${String(Math.floor(Math.random() * 1e8)).padStart(8, "0")}`;
    const body = JSON.stringify(webhook(
      otherChange("message_template_status_update", {
        event: "REJECTED",
        message_template_id: templateId,
        message_template_name: "oferta",
        message_template_language: "es_MX",
        reason: "INCORRECT_CATEGORY",
      }),
      otherChange("user_preferences", {
        messaging_product: "whatsapp",
        contacts: [{ wa_id: waId, profile: { name: "Ana" } }],
        user_preferences: [{
          wa_id: waId,
          detail: "User requested to stop marketing messages",
          category: "marketing_messages",
          value: "stop",
          timestamp: "1767225600",
        }],
      }),
    ));
    for (let delivery = 0; delivery < 2; delivery++) {
      assert.equal((await ingest(sql, body)).kind, "ingested");
      const [template] = await sql`select status, reason from wa.message_templates
                                   where waba_id = ${DEMO_WABA_ID} and template_id = ${templateId}`;
      assert.deepEqual(template, { status: "REJECTED", reason: "INCORRECT_CATEGORY" });
      const [contact] = await sql`select marketing_opt_out_source from public.contacts where wa_id = ${waId}`;
      assert.equal(contact?.marketing_opt_out_source, "user_preferences");
    }
  } finally {
    await sql.end();
  }
});
