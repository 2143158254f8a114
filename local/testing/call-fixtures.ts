// Builders for the Calling API's webhooks, written from Meta's documentation ("Calling API: webhook
// reference", and the user-initiated and business-initiated call guides of the WhatsApp Cloud API): a `calls`
// change whose value holds `calls[]` (event connect with the SDP session, terminate with status, start_time,
// end_time and duration) or `statuses[]` of type call (RINGING, ACCEPTED, REJECTED), the customer in
// `contacts[]`. Plain records, so a test can add or drop any field.
import { DEMO_DISPLAY_NUMBER, DEMO_PHONE_NUMBER_ID, DEMO_WABA_ID } from "./whatsapp-fixtures.ts";

type Json = Record<string, unknown>;

export const CALLER_WA_ID = "16505550199";

/** A fresh call id: Meta's are `wacid.` and base64. */
export function newCallId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return `wacid.${btoa(String.fromCharCode(...bytes)).replaceAll("/", "_")}`;
}

export interface CallOptions {
  /** inbound: USER_INITIATED (the customer is `from`); outbound: BUSINESS_INITIATED (the customer is `to`). */
  direction?: "inbound" | "outbound";
  customer?: string;
  /** Unix seconds of the event. */
  at: number;
}

function parties(opts: CallOptions): Json {
  const customer = opts.customer ?? CALLER_WA_ID;
  return opts.direction === "outbound"
    ? { from: DEMO_DISPLAY_NUMBER, to: customer, direction: "BUSINESS_INITIATED" }
    : { from: customer, to: DEMO_DISPLAY_NUMBER, direction: "USER_INITIATED" };
}

/** A `connect` event: the call is set up (an SDP offer from a calling customer, an answer to the business). */
export function callConnect(callId: string, opts: CallOptions): Json {
  return {
    id: callId,
    ...parties(opts),
    event: "connect",
    timestamp: String(opts.at),
    session: { sdp_type: opts.direction === "outbound" ? "answer" : "offer", sdp: "v=0 (RFC 8866 SDP)" },
  };
}

/** A `terminate` event: COMPLETED with the talk time, or FAILED; `startedAt` is when the call began. */
export function callTerminate(
  callId: string,
  opts: CallOptions & { startedAt: number; durationSeconds?: number; status?: "COMPLETED" | "FAILED" },
): Json {
  const event: Json = {
    id: callId,
    ...parties(opts),
    event: "terminate",
    timestamp: String(opts.at),
    status: opts.status ?? "COMPLETED",
    start_time: String(opts.startedAt),
    end_time: String(opts.at),
  };
  if (opts.durationSeconds !== undefined) event.duration = opts.durationSeconds;
  return event;
}

/** A call status (business-initiated calls only): RINGING, ACCEPTED or REJECTED. */
export function callStatus(callId: string, status: string, opts: CallOptions): Json {
  return {
    id: callId,
    timestamp: String(opts.at),
    type: "call",
    status,
    recipient_id: opts.customer ?? CALLER_WA_ID,
  };
}

/** A `calls` change on the demo number: events under `calls`, statuses under `statuses`, the customer named. */
export function callsChange(
  items: { calls?: Json[]; statuses?: Json[] },
  opts: { customer?: string; name?: string; phoneNumberId?: string } = {},
): Json {
  const value: Json = {
    messaging_product: "whatsapp",
    metadata: {
      display_phone_number: DEMO_DISPLAY_NUMBER,
      phone_number_id: opts.phoneNumberId ?? DEMO_PHONE_NUMBER_ID,
    },
    contacts: [{ profile: { name: opts.name ?? "Caller" }, wa_id: opts.customer ?? CALLER_WA_ID }],
    ...items,
  };
  return { field: "calls", value };
}

/** A whole POST holding one `calls` change. */
export function callsWebhook(...changes: Json[]): Json {
  return { object: "whatsapp_business_account", entry: [{ id: DEMO_WABA_ID, changes }] };
}
