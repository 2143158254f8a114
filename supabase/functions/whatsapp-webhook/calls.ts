// The value of a `calls` change (the Calling API's webhooks, Meta's "Calling API: webhook reference"): call
// events under `calls[]` (connect, terminate) and call statuses under `statuses[]` (RINGING, ACCEPTED, REJECTED).
// Loose, as the messages schema is: an unknown event, status or field passes and is kept raw by the ingest
// (wa.ingest_calls); only what the ingest keys or computes on is checked, so a bad item is left out alone.
import { z } from "zod";

const unixSeconds = z.string().regex(/^\d{1,12}$/, "must be Unix seconds as a digit string");
const identifier = z.string().min(1).max(256);

/** One `calls[]` entry: `connect` carries the SDP session, `terminate` the outcome and talk time. */
const callEvent = z.looseObject({
  id: identifier,
  event: identifier,
  timestamp: unixSeconds,
  direction: z.string().optional(),
  from: z.string().max(256).optional(),
  to: z.string().max(256).optional(),
  status: z.string().optional(),
  start_time: unixSeconds.optional(),
  end_time: unixSeconds.optional(),
  duration: z.number().nonnegative().optional(),
  biz_opaque_callback_data: z.string().optional(),
});

/** One `statuses[]` entry of a business-initiated call. */
const callStatus = z.looseObject({
  id: identifier,
  status: identifier,
  timestamp: unixSeconds,
  type: z.string().optional(),
  recipient_id: z.string().max(256).optional(),
});

export const callsValue = z.looseObject({
  metadata: z.looseObject({ phone_number_id: identifier, display_phone_number: z.string().optional() }),
  calls: z.array(callEvent).optional(),
  statuses: z.array(callStatus).optional(),
});
