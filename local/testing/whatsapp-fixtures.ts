// Builders for Meta-shaped WhatsApp webhook payloads, used by tests, benchmarks and the local demo. Written
// from the field lists in the fact sheet (WHATSAPP.md §1.4-1.10), not copied from captured traffic. Results
// are plain records so a test can delete or corrupt any field to build a malformed payload.

type Json = Record<string, unknown>;

export const DEMO_PHONE_NUMBER_ID = "106540352242922";
export const DEMO_DISPLAY_NUMBER = "15550783881";
export const DEMO_WABA_ID = "102290129340398";

const DEMO_USER_WA_ID = "16505551234";
const DEMO_USER_NAME = "Sheena Nelson";

function randomBytes(length: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(length));
}

function base64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function randomDigits(length: number): string {
  return Array.from(randomBytes(length), (byte) => String(byte % 10)).join("");
}

/**
 * A fresh message id. Real wamids are base64 of a binary record starting 0x1c 0x18 0x0b (hence the common
 * `wamid.HBgL` prefix); the rest is random here.
 */
export function newWamid(): string {
  const bytes = new Uint8Array(36);
  bytes.set([0x1c, 0x18, 0x0b]);
  bytes.set(randomBytes(33), 3);
  return `wamid.${base64(bytes)}`;
}

/**
 * An identifier of about 4.5 kB, beyond the 2,704 bytes of a btree index entry. Random, so incompressible:
 * Postgres would compress a repeated character below the limit.
 */
export function oversizedIdentifier(): string {
  return `wamid.${Array.from({ length: 80 }, newWamid).join("")}`;
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function mediaObject(mimeType: string): Json {
  return { id: randomDigits(16), mime_type: mimeType, sha256: base64(randomBytes(32)) };
}

/** A sensible example of the object each known inbound type carries; undefined for types that have none. */
function defaultContent(type: string): unknown {
  switch (type) {
    case "text":
      return { body: "Hi! Is my order on its way?" };
    case "image":
      return { ...mediaObject("image/jpeg"), caption: "The damaged box" };
    case "audio":
      return { ...mediaObject("audio/ogg; codecs=opus"), voice: true };
    case "video":
      return { ...mediaObject("video/mp4"), caption: "Unboxing" };
    case "document":
      return { ...mediaObject("application/pdf"), filename: "invoice-2291.pdf", caption: "My invoice" };
    case "sticker":
      return { ...mediaObject("image/webp"), animated: false };
    case "location":
      return {
        latitude: 37.4847,
        longitude: -122.1477,
        name: "Meta Headquarters",
        address: "1 Hacker Way, Menlo Park, CA 94025",
      };
    case "contacts":
      return [{
        name: { formatted_name: "Jane Doe", first_name: "Jane", last_name: "Doe" },
        phones: [{ phone: "+1 650-555-0100", wa_id: "16505550100", type: "CELL" }],
        emails: [{ email: "jane@example.com", type: "WORK" }],
        org: { company: "Example Inc." },
      }];
    case "interactive":
      return { type: "button_reply", button_reply: { id: "confirm-order", title: "Confirm" } };
    case "button":
      return { payload: "STOP_PROMOTIONS", text: "Stop promotions" };
    case "reaction":
      return { message_id: newWamid(), emoji: "\u{1F44D}" };
    case "order":
      return {
        catalog_id: "194836987003835",
        text: "Please deliver before noon",
        product_items: [{ product_retailer_id: "SKU-1001", quantity: 2, item_price: 12.5, currency: "USD" }],
      };
    case "system":
      return {
        body: `User ${DEMO_USER_NAME} changed from ${DEMO_USER_WA_ID} to 16505550199`,
        wa_id: "16505550199",
        type: "user_changed_number",
      };
    case "unsupported":
      return { type: "edit" };
    default:
      return undefined;
  }
}

export interface InboundOptions {
  wamid?: string;
  from?: string;
  fromUserId?: string;
  /** Unix seconds; now by default. */
  timestamp?: number;
  /** The per-type object. Passing the key with `undefined` omits the object (as a broken interactive). */
  content?: unknown;
  context?: Json;
}

/** An inbound `messages[]` entry of `type`, with a default object for every known type. */
export function inboundMessage(type: string, opts: InboundOptions = {}): Json {
  const message: Json = {
    from: opts.from ?? DEMO_USER_WA_ID,
    id: opts.wamid ?? newWamid(),
    timestamp: String(opts.timestamp ?? nowSeconds()),
    type,
  };
  if (opts.fromUserId !== undefined) message.from_user_id = opts.fromUserId;
  // Interactive answers and template button taps always quote the business message they answer.
  const quotes = type === "interactive" || type === "button";
  const context = opts.context ?? (quotes ? { from: DEMO_DISPLAY_NUMBER, id: newWamid() } : undefined);
  if (context !== undefined) message.context = context;
  if (type === "unsupported") {
    message.errors = [{
      code: 131051,
      title: "Message type unknown",
      message: "Message type unknown",
      error_data: { details: "Message type is currently not supported." },
    }];
  }
  const content = "content" in opts ? opts.content : defaultContent(type);
  if (content !== undefined) message[type] = content;
  return message;
}

/** Meta's 131060 placeholder (§1.7): an `unsupported` message whose content is "currently unavailable". */
export function unavailablePlaceholder(opts: InboundOptions = {}): Json {
  const message = inboundMessage("unsupported", { content: { type: "media_placeholder" }, ...opts });
  message.errors = [{
    code: 131060,
    title: "This message is currently unavailable.",
    message: "This message is currently unavailable.",
  }];
  return message;
}

export interface StatusOptions {
  /** Unix seconds; now by default. */
  timestamp?: number;
  recipientId?: string;
  errors?: Json[];
  pricing?: Json;
}

/** A `statuses[]` entry. `sent` carries conversation and pricing, `failed` a 131026 error by default. */
export function statusUpdate(wamid: string, status: string, opts: StatusOptions = {}): Json {
  const timestamp = opts.timestamp ?? nowSeconds();
  const update: Json = {
    id: wamid,
    status,
    timestamp: String(timestamp),
    recipient_id: opts.recipientId ?? DEMO_USER_WA_ID,
  };
  if (status === "sent") {
    update.conversation = {
      id: Array.from(randomBytes(16), (byte) => byte.toString(16).padStart(2, "0")).join(""),
      expiration_timestamp: String(timestamp + 24 * 60 * 60),
      origin: { type: "service" },
    };
    update.pricing = {
      billable: false,
      pricing_model: "PMP",
      category: "service",
      type: "free_customer_service",
    };
  }
  if (opts.pricing !== undefined) update.pricing = opts.pricing;
  if (status === "failed") {
    update.errors = [{
      code: 131026,
      title: "Message undeliverable",
      message: "Message undeliverable",
      error_data: { details: "Message Undeliverable." },
    }];
  }
  if (opts.errors !== undefined) update.errors = opts.errors;
  return update;
}

/** A `contacts[]` entry. A `null` waId leaves `wa_id` out, as for a user known only by BSUID. */
export function contact(
  waId: string | null = DEMO_USER_WA_ID,
  name: string = DEMO_USER_NAME,
  userId?: string,
): Json {
  const entry: Json = { profile: { name } };
  if (waId !== null) entry.wa_id = waId;
  if (userId !== undefined) entry.user_id = userId;
  return entry;
}

export interface MessagesChangeOptions {
  phoneNumberId?: string;
  contacts?: Json[];
  messages?: Json[];
  statuses?: Json[];
  errors?: Json[];
}

/** A `messages` change; arrays not given are left out, as Meta does. */
export function messagesChange(opts: MessagesChangeOptions = {}): Json {
  const value: Json = {
    messaging_product: "whatsapp",
    metadata: {
      display_phone_number: DEMO_DISPLAY_NUMBER,
      phone_number_id: opts.phoneNumberId ?? DEMO_PHONE_NUMBER_ID,
    },
  };
  for (const key of ["contacts", "messages", "statuses", "errors"] as const) {
    if (opts[key] !== undefined) value[key] = opts[key];
  }
  return { field: "messages", value };
}

/** A change of any other subscription field (template status, account_update, ...). */
export function otherChange(field: string, value: unknown): Json {
  return { field, value };
}

/** The full POST body: one entry for the demo WABA holding `changes`. */
export function webhook(...changes: Json[]): Json {
  return { object: "whatsapp_business_account", entry: [{ id: DEMO_WABA_ID, changes }] };
}

export interface TextWebhookOptions {
  wamid?: string;
  from?: string;
  name?: string;
  body?: string;
}

/** The most common delivery: one text message from one contact. */
export function textWebhook(opts: TextWebhookOptions = {}): Json {
  const from = opts.from ?? DEMO_USER_WA_ID;
  const content = opts.body === undefined ? {} : { content: { body: opts.body } };
  return webhook(messagesChange({
    contacts: [contact(from, opts.name)],
    messages: [inboundMessage("text", { wamid: opts.wamid, from, ...content })],
  }));
}

/** The X-Hub-Signature-256 header Meta would send for `body`: `sha256=` + lowercase hex HMAC-SHA256. */
export async function signBody(body: string | Uint8Array, appSecret: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(appSecret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  // The copy gives Web Crypto the ArrayBuffer-backed view it requires, whatever backs the caller's bytes.
  const bytes = typeof body === "string" ? new TextEncoder().encode(body) : new Uint8Array(body);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, bytes));
  return `sha256=${Array.from(mac, (byte) => byte.toString(16).padStart(2, "0")).join("")}`;
}
