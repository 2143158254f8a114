// Webhook bodies of the coexistence fields (a number on the WhatsApp Business app and the Cloud API at once), in
// the shapes of Meta's webhook references: smb_message_echoes (value.message_echoes[]: from = the business's
// display number, to = the customer) and the messages/reaction, edit and revoke types. See docs/conversation.md.
import { DEMO_DISPLAY_NUMBER, DEMO_PHONE_NUMBER_ID, inboundMessage, newWamid } from "./whatsapp-fixtures.ts";

type Json = Record<string, unknown>;

export interface EchoOptions {
  phoneNumberId?: string;
  wamid?: string;
  /** Unix seconds; now by default. */
  timestamp?: number;
  type?: string;
  content?: unknown;
}

/** A `smb_message_echoes` change: what the business typed in the WhatsApp Business app to `to`. */
export function echoChange(to: string, opts: EchoOptions = {}): Json {
  const type = opts.type ?? "text";
  return {
    field: "smb_message_echoes",
    value: {
      messaging_product: "whatsapp",
      metadata: {
        display_phone_number: DEMO_DISPLAY_NUMBER,
        phone_number_id: opts.phoneNumberId ?? DEMO_PHONE_NUMBER_ID,
      },
      message_echoes: [{
        from: DEMO_DISPLAY_NUMBER,
        to,
        id: opts.wamid ?? newWamid(),
        timestamp: String(opts.timestamp ?? Math.floor(Date.now() / 1000)),
        type,
        [type]: opts.content ?? { body: "Le escribo yo desde el teléfono" },
      }],
    },
  };
}

/** A customer's reaction to `target`; without an emoji it is Meta's removal (no `emoji` field). */
export function reaction(from: string, target: string, emoji?: string, timestamp?: number): Json {
  return inboundMessage("reaction", {
    from,
    timestamp,
    content: emoji === undefined ? { message_id: target } : { message_id: target, emoji },
  });
}

/** A customer's tap on a reply button of a business message. */
export function buttonReply(from: string, id: string, title: string): Json {
  return inboundMessage("interactive", {
    from,
    content: { type: "button_reply", button_reply: { id, title } },
  });
}
