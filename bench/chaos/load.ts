// The chaos benchmark's customers: signed deliveries to the webhook function, bursts of 1-3 messages per
// conversation with unique texts, 10% of deliveries sent twice at once; a delivery that is not answered 200
// (Postgres restarting, a function error) is redelivered until it is, as Meta does.
import {
  contact,
  inboundMessage,
  messagesChange,
  signBody,
  webhook,
} from "../../local/testing/whatsapp-fixtures.ts";
import { sleepMs } from "../lib.ts";

export interface LoadOptions {
  endpoint: string;
  secret: string;
  phoneNumberId: string;
  contacts: number;
  lanes: number;
  durationMs: number;
}

export interface LoadResult {
  wamids: Set<string>;
  deliveries: number;
  duplicates: number;
  /** Deliveries answered other than 200 (or not at all) and redelivered. */
  redeliveries: number;
}

const REDELIVERY_MS = 250;

export async function sendLoad(options: LoadOptions): Promise<LoadResult> {
  const result: LoadResult = { wamids: new Set(), deliveries: 0, duplicates: 0, redeliveries: 0 };
  const end = performance.now() + options.durationMs;
  const inFlight: Promise<void>[] = [];
  let n = 0;

  const deliver = async (body: string, signature: string) => {
    for (;;) {
      try {
        const response = await fetch(options.endpoint, {
          method: "POST",
          body,
          headers: { "content-type": "application/json", "x-hub-signature-256": signature },
        });
        await response.body?.cancel();
        if (response.status === 200) return;
      } catch {
        // Not answered: redelivered like any other failure.
      }
      result.redeliveries++;
      await sleepMs(REDELIVERY_MS);
    }
  };

  const lane = async () => {
    while (performance.now() < end) {
      const i = Math.floor(Math.random() * options.contacts);
      const from = `6${options.phoneNumberId.slice(-6)}${String(i).padStart(5, "0")}`;
      for (let m = Math.floor(Math.random() * 3); m >= 0; m--) {
        const message = inboundMessage("text", { from, content: { body: `chaos ${++n} from ${i}` } });
        result.wamids.add(String(message.id));
        const body = JSON.stringify(webhook(messagesChange({
          phoneNumberId: options.phoneNumberId,
          contacts: [contact(from, `Chaos ${i}`)],
          messages: [message],
        })));
        const signature = await signBody(body, options.secret);
        result.deliveries++;
        if (Math.random() < 0.1) {
          result.duplicates++;
          inFlight.push(deliver(body, signature));
        }
        await deliver(body, signature);
        // Burst spacing: inside the quiet period, so a burst usually lands in one batch.
        await sleepMs(50 + Math.random() * 200);
      }
    }
  };
  await Promise.all(Array.from({ length: options.lanes }, lane));
  await Promise.all(inFlight);
  return result;
}
