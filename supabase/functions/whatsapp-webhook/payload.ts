// Schemas for the body Meta POSTs to the WhatsApp webhook (fact sheet WHATSAPP.md §1.4-1.10). They only
// validate: the handler stores the raw body, so every object is loose and unknown keys survive. The rule
// throughout is "reject what we cannot route or store, accept what Meta may add later": a rejected POST is
// retried for 7 days, so a new message type, status or field must never invalidate a whole batch.
import { z } from "zod";
import { callsValue } from "./calls.ts";

/** Unix seconds as Meta sends them: a string of digits. */
const unixSeconds = z.string().regex(/^\d{1,12}$/, "must be Unix seconds as a digit string");

const nonEmpty = z.string().min(1);

/**
 * The most characters of an identifier Postgres keys rows by: a wamid, a phone number, a BSUID, a status, a
 * business number id. Real ones are short (wamids about 60 characters, phones 15 digits at most, BSUIDs about
 * 30); 256 leaves Meta room to grow them while a key stays at most 768 bytes, far below the 2,704 bytes of a
 * btree index entry. A longer one fails its item here, instead of failing the whole POST's insert.
 */
export const MAX_IDENTIFIER_LENGTH = 256;

const identifier = z.string().max(MAX_IDENTIFIER_LENGTH);
const requiredIdentifier = identifier.min(1);

/** An asynchronous error: `value.errors[]`, `messages[].errors[]` (unsupported), `statuses[].errors[]`. */
const metaError = z.looseObject({
  code: z.number().int(),
  title: z.string().optional(),
  message: z.string().optional(),
  error_data: z.looseObject({ details: z.string().optional() }).optional(),
  href: z.string().optional(),
});

/** A `contacts[]` entry of the value or of a status. With BSUIDs `wa_id` may be absent (§1.10). */
const contact = z.looseObject({
  wa_id: identifier.optional(),
  user_id: identifier.optional(),
  parent_user_id: z.string().optional(),
  profile: z.looseObject({ name: z.string().optional(), username: z.string().optional() }).optional(),
});

const context = z.looseObject({
  from: z.string().optional(),
  id: z.string().optional(),
  forwarded: z.boolean().optional(),
  frequently_forwarded: z.boolean().optional(),
  referred_product: z.looseObject({ catalog_id: z.string(), product_retailer_id: z.string() }).optional(),
});

const media = {
  id: nonEmpty,
  mime_type: z.string().optional(),
  sha256: z.string().optional(),
  caption: z.string().optional(),
  url: z.string().optional(),
};

const sharedContact = z.looseObject({
  name: z.looseObject({
    formatted_name: z.string().optional(),
    first_name: z.string().optional(),
    last_name: z.string().optional(),
    middle_name: z.string().optional(),
    prefix: z.string().optional(),
    suffix: z.string().optional(),
  }).optional(),
  phones: z.array(
    z.looseObject({
      phone: z.string().optional(),
      wa_id: z.string().optional(),
      type: z.string().optional(),
    }),
  ).optional(),
  // emails, addresses, org and urls are not read by wabase: whatever shape Meta sends passes.
  birthday: z.string().optional(),
  vcard: z.string().optional(),
  origin: z.string().optional(),
});

/** Quantities and prices have been seen both as JSON numbers and as strings. */
const amount = z.union([z.number(), z.string()], { error: "expected number or string" });

/**
 * The object an inbound message carries under the key named by its `type` (§1.6, §1.7). Types missing
 * here (`request_welcome`, the older `unknown`, anything new) are accepted without a content check.
 */
const contentSchemas = {
  text: z.looseObject({ body: z.string() }),
  image: z.looseObject(media),
  video: z.looseObject(media),
  audio: z.looseObject({ ...media, voice: z.boolean().optional() }),
  document: z.looseObject({ ...media, filename: z.string().optional() }),
  sticker: z.looseObject({ ...media, animated: z.boolean().optional() }),
  location: z.looseObject({
    latitude: z.number(),
    longitude: z.number(),
    name: z.string().optional(),
    address: z.string().optional(),
    url: z.string().optional(),
  }),
  contacts: z.array(sharedContact),
  interactive: z.looseObject({
    type: z.string(),
    button_reply: z.looseObject({ id: z.string(), title: z.string() }).optional(),
    list_reply: z.looseObject({ id: z.string(), title: z.string(), description: z.string().optional() })
      .optional(),
    nfm_reply: z.looseObject({
      name: z.string().optional(),
      body: z.string().optional(),
      response_json: z.string(),
    }).optional(),
  }),
  button: z.looseObject({ text: z.string(), payload: z.string().optional() }),
  // A removed reaction comes without `emoji` (Meta) or with `emoji: ""` (pywa): both pass.
  reaction: z.looseObject({ message_id: z.string(), emoji: z.string().optional() }),
  order: z.looseObject({
    catalog_id: z.string(),
    text: z.string().optional(),
    product_items: z.array(z.looseObject({
      product_retailer_id: z.string(),
      quantity: amount,
      item_price: amount,
      currency: z.string(),
    })),
  }),
  system: z.looseObject({
    body: z.string().optional(),
    wa_id: z.string().optional(),
    user_id: z.string().optional(),
    new_wa_id: z.string().optional(),
    type: z.string().optional(),
  }),
  unsupported: z.looseObject({ type: z.string().optional() }),
  edit: z.looseObject({ original_message_id: z.string().optional() }),
  revoke: z.looseObject({ original_message_id: z.string().optional() }),
} as const;

type ContentType = keyof typeof contentSchemas;

/**
 * Types whose object may be absent: `interactive` arrives without it in real traffic (pywa's
 * `interactive_message_with_err`), and `unsupported` is described by its `errors[]`.
 */
const contentOptional: ReadonlySet<string> = new Set<ContentType>(["interactive", "unsupported"]);

function isContentType(type: string): type is ContentType {
  return Object.hasOwn(contentSchemas, type);
}

const messageBase = z.looseObject({
  id: requiredIdentifier,
  timestamp: unixSeconds,
  type: nonEmpty,
  // `from` may be omitted for users with a username (§1.10); `from_user_id` is the BSUID.
  from: identifier.optional(),
  from_user_id: identifier.optional(),
  from_parent_user_id: z.string().optional(),
  group_id: z.string().optional(),
  context: context.optional(),
  referral: z.looseObject({}).optional(),
  errors: z.array(metaError).optional(),
});

/** An inbound message; the per-type object is typed as optional since only the one named by `type` is set. */
type InboundMessage =
  & z.infer<typeof messageBase>
  & { [K in ContentType]?: z.infer<(typeof contentSchemas)[K]> };

// The content check runs as a refinement rather than a union so that an unknown type still passes and a bad
// object is reported at `<type>.<field>` instead of as "no union member matched".
function checkContent(message: { type: string }, ctx: z.RefinementCtx) {
  const type = message.type;
  if (!isContentType(type)) return;
  const content = (message as Record<string, unknown>)[type];
  if (content === undefined && contentOptional.has(type)) return;
  const result = contentSchemas[type].safeParse(content);
  if (result.success) return;
  for (const issue of result.error.issues) ctx.addIssue({ ...issue, path: [type, ...issue.path] });
}

// the refinement guarantees the per-type fields the base shape leaves open
const inboundMessage = messageBase.superRefine(checkContent) as z.ZodType<InboundMessage>;

/**
 * A message of the coexistence fields (docs/conversation.md): an echo of what the business sent from the
 * WhatsApp Business app (`to` is the customer), or one of the app's chat history. Meta documents their
 * timestamps as integers and shows strings: both pass.
 */
const appMessage = messageBase.extend({
  timestamp: z.union([unixSeconds, z.number().int().nonnegative()]),
  to: identifier.optional(),
}).superRefine(checkContent);

const conversation = z.looseObject({
  id: z.string().optional(),
  // Documented as a string of Unix seconds; a number is tolerated since nothing routes on it.
  expiration_timestamp: z.union([z.string(), z.number()], { error: "expected string or number" }).optional(),
  origin: z.looseObject({ type: z.string().optional() }).optional(),
});

const pricing = z.looseObject({
  billable: z.boolean().optional(),
  pricing_model: z.string().optional(),
  type: z.string().optional(),
  category: z.string().optional(),
});

/** Lifecycle update of an outbound message (§1.8). */
const messageStatus = z.looseObject({
  id: requiredIdentifier,
  // sent | delivered | read | played | failed today; any other string is kept so a new one is not fatal.
  status: requiredIdentifier,
  timestamp: unixSeconds,
  recipient_id: z.string().optional(),
  recipient_user_id: z.string().optional(),
  recipient_type: z.string().optional(),
  biz_opaque_callback_data: z.string().optional(),
  conversation: conversation.optional(),
  pricing: pricing.optional(),
  errors: z.array(metaError).optional(),
  contacts: z.array(contact).optional(),
});

/** The `value` of a `messages` change: inbound messages, statuses and/or errors, each optional. */
const messagesValue = z.looseObject({
  messaging_product: z.literal("whatsapp").optional(),
  metadata: z.looseObject({
    phone_number_id: requiredIdentifier,
    display_phone_number: z.string().optional(),
  }),
  contacts: z.array(contact).optional(),
  messages: z.array(inboundMessage).optional(),
  statuses: z.array(messageStatus).optional(),
  errors: z.array(metaError).optional(),
});

type MessagesValue = z.infer<typeof messagesValue>;

const metadata = z.looseObject({ phone_number_id: requiredIdentifier });

/** The values of the fields the ingest reads beside `messages` (docs/conversation.md). */
const coexistenceValues: Record<string, z.ZodType> = {
  smb_message_echoes: z.looseObject({
    metadata,
    message_echoes: z.array(appMessage.refine((m) => m.to !== undefined, { error: "an echo needs `to`" })),
  }),
  history: z.looseObject({
    metadata,
    history: z.array(z.looseObject({
      threads: z.array(z.looseObject({ id: identifier, messages: z.array(appMessage) })).optional(),
      errors: z.array(metaError).optional(),
    })).optional(),
    // The follow-up webhooks with a media message's content carry it here.
    messages: z.array(appMessage).optional(),
  }),
  smb_app_state_sync: z.looseObject({
    metadata,
    state_sync: z.array(z.looseObject({
      type: z.string(),
      contact: z.looseObject({ phone_number: identifier.optional() }).optional(),
      action: z.string().optional(),
      metadata: z.looseObject({ timestamp: z.union([unixSeconds, z.number().int().nonnegative()]) })
        .optional(),
    })),
  }),
};

// `messages` and `calls` changes and the coexistence fields the ingest reads are validated; other fields
// (template updates, account_update...) are stored raw. A refinement keeps issue paths at `value.<field>`, which a union would bury.
const change = z.looseObject({ field: z.string(), value: z.unknown() }).superRefine((entry, ctx) => {
  const schema = entry.field === "messages"
    ? messagesValue
    : entry.field === "calls"
    ? callsValue
    : coexistenceValues[entry.field];
  if (schema === undefined) return;
  const result = schema.safeParse(entry.value);
  if (result.success) return;
  for (const issue of result.error.issues) ctx.addIssue({ ...issue, path: ["value", ...issue.path] });
});

export type Change = z.infer<typeof change>;

/** A change whose value passed `messagesValue`, as every `messages` change of a parsed payload has. */
export type MessagesChange = Change & { field: "messages"; value: MessagesValue };

/** Narrows a change of a parsed payload to a `messages` change. */
export function isMessagesChange(change: Change): change is MessagesChange {
  return change.field === "messages";
}

/** The webhook POST body. */
export const webhookPayload = z.looseObject({
  object: z.literal("whatsapp_business_account"),
  entry: z.array(z.looseObject({
    id: z.string(), // the WABA id
    changes: z.array(change),
  })),
});

const MAX_DESCRIBED_ISSUES = 20;

/** One line naming each issue by path, e.g. `entry.0.changes.0.value.metadata.phone_number_id: ...; ...`. */
export function describeIssues(error: z.ZodError, limit = MAX_DESCRIBED_ISSUES): string {
  const parts = error.issues.slice(0, limit).map((issue) => {
    const path = issue.path.map(String).join(".") || "(root)";
    return `${path}: ${issue.message.replace(/^Invalid input: /, "")}`;
  });
  const rest = error.issues.length - limit;
  if (rest > 0) parts.push(`and ${rest} more`);
  return parts.join("; ");
}
