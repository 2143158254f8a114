import assert from "node:assert/strict";
import {
  contact,
  DEMO_PHONE_NUMBER_ID,
  inboundMessage,
  messagesChange,
  newWamid,
  otherChange,
  signBody,
  statusUpdate,
  textWebhook,
  webhook,
} from "../../../local/testing/whatsapp-fixtures.ts";
import { describeIssues, isMessagesChange, MAX_IDENTIFIER_LENGTH, webhookPayload } from "./payload.ts";

type Json = Record<string, unknown>;

const KNOWN_TYPES = [
  "text",
  "image",
  "audio",
  "video",
  "document",
  "sticker",
  "location",
  "contacts",
  "interactive",
  "button",
  "reaction",
  "order",
  "system",
  "unsupported",
  "request_welcome",
];

const STATUSES = ["sent", "delivered", "read", "played", "failed"];

const MESSAGE = "entry.0.changes.0.value.messages.0";

/** The issue paths of a payload that must be rejected, dot-joined. */
function rejectedPaths(payload: unknown): string[] {
  const result = webhookPayload.safeParse(payload);
  if (result.success) assert.fail("payload was accepted");
  return result.error.issues.map((issue) => issue.path.join("."));
}

/** A webhook holding `message` alone, and that message for the test to break. */
function withMessage(type: string, content?: unknown): { payload: Json; message: Json } {
  const message = inboundMessage(type, content === undefined ? {} : { content });
  return { payload: webhook(messagesChange({ contacts: [contact()], messages: [message] })), message };
}

Deno.test("every fixture the builders produce validates", () => {
  const messages = KNOWN_TYPES.map((type) => inboundMessage(type));
  messages.push(
    inboundMessage("edit", {
      content: { original_message_id: newWamid(), message: { type: "text", text: { body: "fixed" } } },
    }),
    inboundMessage("revoke", { content: { original_message_id: newWamid() } }),
  );
  const wamid = newWamid();
  const payload = webhook(
    messagesChange({ contacts: [contact()], messages }),
    messagesChange({ statuses: STATUSES.map((status) => statusUpdate(wamid, status)) }),
    messagesChange({
      errors: [{
        code: 130429,
        title: "Rate limit hit",
        message: "Rate limit hit",
        error_data: { details: "Cloud API message throughput has been reached." },
      }],
    }),
    otherChange("message_template_status_update", {
      event: "APPROVED",
      message_template_id: 123456789,
      message_template_name: "order_update",
      message_template_language: "en_US",
      reason: null,
    }),
  );
  const parsed = webhookPayload.parse(payload);
  assert.deepEqual(parsed, payload);
  const changes = parsed.entry[0]!.changes;
  assert.deepEqual(changes.map((change) => isMessagesChange(change)), [true, true, true, false]);
  const first = changes[0]!;
  assert.ok(isMessagesChange(first));
  assert.deepEqual(first.value.messages?.map((message) => message.type), [...KNOWN_TYPES, "edit", "revoke"]);
  assert.equal(first.value.metadata.phone_number_id, DEMO_PHONE_NUMBER_ID);
});

Deno.test("textWebhook builds a valid single-message delivery", () => {
  const payload = textWebhook({ wamid: "wamid.abc", from: "491701234567", name: "Ana", body: "hola" });
  const parsed = webhookPayload.parse(payload);
  const change = parsed.entry[0]!.changes[0]!;
  assert.ok(isMessagesChange(change));
  const message = change.value.messages?.[0];
  assert.equal(message?.id, "wamid.abc");
  assert.equal(message?.from, "491701234567");
  assert.deepEqual(message?.text, { body: "hola" });
  assert.deepEqual(change.value.contacts, [{ profile: { name: "Ana" }, wa_id: "491701234567" }]);
});

Deno.test("unknown fields are tolerated and kept at every level", () => {
  const { payload, message } = withMessage("text");
  message.brand_new = { nested: true };
  (message.text as Json).formatting = "markdown";
  const status = statusUpdate(newWamid(), "sent");
  status.recipient_identity_key_hash = "abc";
  (status.pricing as Json).currency = "USD";
  const value = (payload as { entry: [{ changes: [{ value: Json }] }] }).entry[0].changes[0].value;
  value.statuses = [status];
  (value.metadata as Json).future = 1;
  (value.contacts as Json[])[0]!.identity_key_hash = "h";
  payload.extra = "top";
  const parsed = webhookPayload.parse(payload);
  assert.deepEqual(parsed, payload);
});

Deno.test("an unknown message type is accepted as-is", () => {
  const { payload } = withMessage("poll", { question: "Lunch?", options: ["yes", "no"] });
  assert.ok(webhookPayload.safeParse(payload).success);
  // The older form of unsupported: type `unknown`, errors only.
  const legacy = inboundMessage("unknown", { content: undefined });
  legacy.errors = [{
    code: 131051,
    title: "Unsupported message type",
    details: "Message type is not currently supported",
  }];
  assert.ok(webhookPayload.safeParse(webhook(messagesChange({ messages: [legacy] }))).success);
});

Deno.test("interactive and unsupported messages may lack their object", () => {
  const interactive = inboundMessage("interactive", { content: undefined });
  const unsupported = inboundMessage("unsupported", { content: undefined });
  assert.equal("interactive" in interactive, false);
  const payload = webhook(messagesChange({ messages: [interactive, unsupported] }));
  assert.ok(webhookPayload.safeParse(payload).success);
});

Deno.test("a reaction removal passes with no emoji or an empty one", () => {
  const messageId = newWamid();
  const payload = webhook(messagesChange({
    messages: [
      inboundMessage("reaction", { content: { message_id: messageId } }),
      inboundMessage("reaction", { content: { message_id: messageId, emoji: "" } }),
    ],
  }));
  assert.ok(webhookPayload.safeParse(payload).success);
});

Deno.test("a BSUID-only contact and message without wa_id or from are accepted", () => {
  const userId = "US.13491208655302741918";
  const message = inboundMessage("text", { fromUserId: userId });
  delete message.from;
  const payload = webhook(messagesChange({ contacts: [contact(null, "Ana", userId)], messages: [message] }));
  assert.ok(webhookPayload.safeParse(payload).success);
});

Deno.test("other change fields are stored raw, never validated", () => {
  const payload = webhook(
    otherChange("account_update", "not even an object"),
    otherChange("message_template_status_update", null),
  );
  assert.ok(webhookPayload.safeParse(payload).success);
});

Deno.test("a wrong object is rejected at `object`", () => {
  const payload = textWebhook();
  payload.object = "page";
  assert.deepEqual(rejectedPaths(payload), ["object"]);
});

Deno.test("a missing metadata.phone_number_id is rejected at its path", () => {
  const payload = textWebhook();
  const value =
    (payload as { entry: [{ changes: [{ value: { metadata: Json } }] }] }).entry[0].changes[0].value;
  delete value.metadata.phone_number_id;
  assert.deepEqual(rejectedPaths(payload), ["entry.0.changes.0.value.metadata.phone_number_id"]);
});

Deno.test("a text message without `text` is rejected at `text`", () => {
  const { payload, message } = withMessage("text");
  delete message.text;
  assert.deepEqual(rejectedPaths(payload), [`${MESSAGE}.text`]);
});

Deno.test("an image without id is rejected at `image.id`", () => {
  const { payload, message } = withMessage("image");
  delete (message.image as Json).id;
  assert.deepEqual(rejectedPaths(payload), [`${MESSAGE}.image.id`]);
});

Deno.test("a timestamp that is not a digit string is rejected", () => {
  for (const timestamp of ["2026-08-12T10:00:00Z", 1750030073, ""]) {
    const { payload, message } = withMessage("text");
    message.timestamp = timestamp;
    assert.deepEqual(rejectedPaths(payload), [`${MESSAGE}.timestamp`], String(timestamp));
  }
});

Deno.test("a status without id is rejected at `statuses.N.id`", () => {
  const statuses = [statusUpdate(newWamid(), "delivered"), statusUpdate(newWamid(), "read")];
  delete statuses[1]!.id;
  const payload = webhook(messagesChange({ statuses }));
  assert.deepEqual(rejectedPaths(payload), ["entry.0.changes.0.value.statuses.1.id"]);
});

Deno.test("a location with a string latitude is rejected at `location.latitude`", () => {
  const { payload, message } = withMessage("location");
  (message.location as Json).latitude = "37.48";
  assert.deepEqual(rejectedPaths(payload), [`${MESSAGE}.location.latitude`]);
});

Deno.test("identifiers Postgres keys rows by are bounded: 256 characters pass, 257 are rejected at their path", () => {
  const fill = (length: number) => "9".repeat(length);
  const body = (length: number) =>
    webhook(messagesChange({
      phoneNumberId: fill(length),
      contacts: [contact(fill(length), "Ana", fill(length))],
      messages: [
        inboundMessage("text", { wamid: fill(length), from: fill(length), fromUserId: fill(length) }),
      ],
      statuses: [{ ...statusUpdate(fill(length), "read"), status: fill(length) }],
    }));
  assert.ok(webhookPayload.safeParse(body(MAX_IDENTIFIER_LENGTH)).success);
  const value = "entry.0.changes.0.value";
  assert.deepEqual(rejectedPaths(body(MAX_IDENTIFIER_LENGTH + 1)).sort(), [
    `${value}.contacts.0.user_id`,
    `${value}.contacts.0.wa_id`,
    `${value}.messages.0.from`,
    `${value}.messages.0.from_user_id`,
    `${value}.messages.0.id`,
    `${value}.metadata.phone_number_id`,
    `${value}.statuses.0.id`,
    `${value}.statuses.0.status`,
  ]);
});

Deno.test("describeIssues names each path on one line and caps the list", () => {
  const { payload, message } = withMessage("text");
  delete message.text;
  const result = webhookPayload.safeParse(payload);
  assert.ok(!result.success);
  assert.equal(describeIssues(result.error), `${MESSAGE}.text: expected object, received undefined`);

  const statuses = Array.from({ length: 25 }, () => statusUpdate("", "sent"));
  const many = webhookPayload.safeParse(webhook(messagesChange({ statuses })));
  assert.ok(!many.success);
  const summary = describeIssues(many.error);
  assert.ok(!summary.includes("\n"));
  assert.ok(summary.startsWith("entry.0.changes.0.value.statuses.0.id: "), summary);
  assert.ok(summary.endsWith("; and 5 more"), summary);
  assert.equal(summary.split("; ").length, 21);
});

Deno.test("a 1,000-status batch validates", () => {
  const statuses = Array.from(
    { length: 1000 },
    (_, i) => statusUpdate(newWamid(), STATUSES[i % STATUSES.length]!),
  );
  const parsed = webhookPayload.parse(webhook(messagesChange({ statuses })));
  const change = parsed.entry[0]!.changes[0]!;
  assert.ok(isMessagesChange(change));
  assert.equal(change.value.statuses?.length, 1000);
});

Deno.test("fixture helpers: wamids are unique and signatures are lowercase hex HMAC-SHA256", async () => {
  const ids = new Set(Array.from({ length: 100 }, newWamid));
  assert.equal(ids.size, 100);
  for (const id of ids) assert.match(id, /^wamid\.HBgL[A-Za-z0-9+/=]+$/);
  // RFC 4231 test case 2.
  const expected = "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
  assert.equal(await signBody("what do ya want for nothing?", "Jefe"), expected);
  assert.equal(await signBody(new TextEncoder().encode("what do ya want for nothing?"), "Jefe"), expected);
});
