// The coexistence fields in Meta's documented shapes (webhook references smb_message_echoes, history,
// smb_app_state_sync; docs/conversation.md) validate, and an unusable item is left out alone.
import assert from "node:assert/strict";
import { echoChange } from "../../../local/testing/coexistence-fixtures.ts";
import { otherChange, webhook } from "../../../local/testing/whatsapp-fixtures.ts";
import { webhookPayload } from "./payload.ts";
import { validateLeavingOut } from "./salvage.ts";

const metadata = { display_phone_number: "15550783881", phone_number_id: "106540352242922" };

Deno.test("Meta's echo example validates (its timestamp as Meta documents it, an integer, too)", () => {
  assert.ok(webhookPayload.safeParse(webhook(echoChange("16505551234"))).success);
  const echo = echoChange("16505551234") as { value: { message_echoes: Record<string, unknown>[] } };
  echo.value.message_echoes[0]!.timestamp = 1739321024;
  assert.ok(webhookPayload.safeParse(webhook(echo)).success);
});

Deno.test("an echo without `to` or with a broken text object is left out, the other echoes stay", () => {
  const change = echoChange("16505551234") as { value: { message_echoes: Record<string, unknown>[] } };
  const good = change.value.message_echoes[0]!;
  change.value.message_echoes.push({ ...good, id: "wamid.NO_TO", to: undefined });
  change.value.message_echoes.push({ ...good, id: "wamid.BAD_TEXT", text: { body: 7 } });
  const result = validateLeavingOut(JSON.parse(JSON.stringify(webhook(change))));
  assert.ok(result.ok);
  const kept = (result.payload as { entry: { changes: { value: { message_echoes: { id: string }[] } }[] }[] })
    .entry[0]!.changes[0]!.value.message_echoes.map((e) => e.id);
  assert.deepEqual(kept, [good.id]);
  assert.match(result.leftOut ?? "", /message_echoes\.1/);
});

Deno.test("Meta's history examples (a thread, the media follow-up, sharing declined) and state sync validate", () => {
  const history = otherChange("history", {
    messaging_product: "whatsapp",
    metadata,
    history: [{
      metadata: { phase: 0, chunk_order: 1, progress: 55 },
      threads: [{
        id: "16505551234",
        messages: [
          {
            from: "15550783881",
            id: "wamid.H1",
            timestamp: "1739230955",
            type: "text",
            text: { body: "Here's the info you requested!" },
            history_context: { status: "READ" },
          },
          {
            from: "15550783881",
            id: "wamid.H2",
            timestamp: "1739230970",
            type: "media_placeholder",
            history_context: { status: "PLAYED" },
          },
        ],
      }],
    }],
  });
  const media = otherChange("history", {
    messaging_product: "whatsapp",
    metadata,
    messages: [{
      from: "16505551234",
      id: "wamid.H2",
      timestamp: "1738796547",
      type: "image",
      image: {
        caption: "Black Prince echeveria",
        mime_type: "image/jpeg",
        sha256: "3f9d",
        id: "24230790383178626",
      },
    }],
  });
  const declined = otherChange("history", {
    messaging_product: "whatsapp",
    metadata,
    history: [{ errors: [{ code: 2593109, title: "History sync is turned off by the business" }] }],
  });
  const sync = otherChange("smb_app_state_sync", {
    messaging_product: "whatsapp",
    metadata,
    state_sync: [{
      type: "contact",
      contact: { full_name: "Pablo Morales", first_name: "Pablo", phone_number: "16505551234" },
      action: "add",
      metadata: { timestamp: "1739321024" },
    }],
  });
  for (const change of [history, media, declined, sync]) {
    const result = webhookPayload.safeParse(webhook(change));
    assert.ok(result.success, JSON.stringify(result.error?.issues));
  }
});
