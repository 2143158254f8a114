import assert from "node:assert/strict";
import {
  contact,
  inboundMessage,
  messagesChange,
  newWamid,
  statusUpdate,
  webhook,
} from "../../../local/testing/whatsapp-fixtures.ts";
import { MAX_IDENTIFIER_LENGTH } from "./payload.ts";
import { replaceUnstorableEscapes, validateLeavingOut } from "./salvage.ts";

type Json = Record<string, unknown>;

Deno.test("NUL and lone surrogate escapes become \\ufffd; pairs, other escapes and escaped backslashes stay", () => {
  const cases: [string, string, number][] = [
    [String.raw`"a\u0000b"`, String.raw`"a\ufffdb"`, 1],
    [String.raw`"\ud83d"`, String.raw`"\ufffd"`, 1],
    [String.raw`"\uDE00 low"`, String.raw`"\ufffd low"`, 1],
    [String.raw`"\ud83d\u0041"`, String.raw`"\ufffd\u0041"`, 1],
    [String.raw`"\ud83d\ud83d\ude00"`, String.raw`"\ufffd\ud83d\ude00"`, 1],
    [String.raw`{"\u0000key":"\ud83d\ude00"}`, String.raw`{"\ufffdkey":"\ud83d\ude00"}`, 1],
    [String.raw`"\\u0000 is text, \\\u0000 is not"`, String.raw`"\\u0000 is text, \\\ufffd is not"`, 1],
    [String.raw`"\n\"\/\u00e9\u0001"`, String.raw`"\n\"\/\u00e9\u0001"`, 0],
  ];
  for (const [json, expected, replaced] of cases) {
    assert.deepEqual(replaceUnstorableEscapes(json), { text: expected, replaced }, json);
  }
});

/** The wamids of the messages and statuses left in the first change of a validated payload. */
function remaining(payload: unknown): { messages: string[]; statuses: string[] } {
  const value = (payload as { entry: { changes: { value: Json }[] }[] }).entry[0]!.changes[0]!.value;
  const ids = (items: unknown) => ((items ?? []) as { id: string }[]).map((item) => item.id);
  return { messages: ids(value.messages), statuses: ids(value.statuses) };
}

Deno.test("items the schema refuses are left out one by one, named at their path as received", () => {
  const tooLong = "x".repeat(MAX_IDENTIFIER_LENGTH + 1);
  const [a, b, c, s] = [newWamid(), newWamid(), newWamid(), newWamid()];
  const body = webhook(messagesChange({
    contacts: [contact(tooLong), contact()],
    messages: [
      inboundMessage("text", { wamid: tooLong }),
      inboundMessage("text", { wamid: a }),
      inboundMessage("text", { wamid: b, from: tooLong }),
      inboundMessage("text", { wamid: c }),
    ],
    statuses: [statusUpdate(s, "read"), statusUpdate(tooLong, "read")],
  }));
  const result = validateLeavingOut(body);
  assert.ok(result.ok);
  assert.deepEqual(remaining(result.payload), { messages: [a, c], statuses: [s] });
  const value = "entry.0.changes.0.value";
  assert.equal(
    result.leftOut?.replaceAll(/: Too big[^;]*/g, ""),
    [
      `${value}.contacts.0.wa_id`,
      `${value}.messages.0.id`,
      `${value}.messages.2.from`,
      `${value}.statuses.1.id`,
    ]
      .join("; "),
  );
});

Deno.test("a change or an entry the schema refuses is left out whole; a wrong envelope refuses the body", () => {
  const good = messagesChange({ contacts: [contact()], messages: [inboundMessage("text")] });
  const noNumber = messagesChange({ messages: [inboundMessage("text")] });
  delete (noNumber.value as { metadata: Json }).metadata.phone_number_id;
  const body = {
    object: "whatsapp_business_account",
    entry: [{ id: 7, changes: [good] }, { id: "WABA", changes: [noNumber, good] }],
  };
  const result = validateLeavingOut(body);
  assert.ok(result.ok);
  assert.deepEqual(result.payload, {
    object: "whatsapp_business_account",
    entry: [{ id: "WABA", changes: [good] }],
  });
  assert.match(
    result.leftOut ?? "",
    /^entry\.0\.id: .*; entry\.1\.changes\.0\.value\.metadata\.phone_number_id: /,
  );

  const envelope = validateLeavingOut({ object: "page", entry: [] });
  assert.ok(!envelope.ok);
  assert.match(envelope.reason, /^object: /);
});

Deno.test("a valid body is returned as is, with nothing left out", () => {
  const body = webhook(messagesChange({ contacts: [contact()], messages: [inboundMessage("text")] }));
  assert.deepEqual(validateLeavingOut(body), { ok: true, payload: body, leftOut: null });
});
