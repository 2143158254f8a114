// The Phoenix channel wire format as realtime-js speaks it (source: @supabase/realtime-js 2.119.1
// lib/serializer.js and lib/constants.js). vsn 1.0.0 frames are JSON objects; vsn 2.0.0 (realtime-js's
// default) frames are JSON arrays `[join_ref, ref, topic, event, payload]`, plus binary frames for user
// broadcasts: kind 3 from the client (`channel.send`), kind 4 to the client.

export type Vsn = "1.0.0" | "2.0.0";
export const VSNS: readonly Vsn[] = ["1.0.0", "2.0.0"];

export interface Message {
  joinRef: string | null;
  ref: string | null;
  topic: string;
  event: string;
  payload: Record<string, unknown>;
}

/** A client broadcast: the user's event, metadata and payload, which is JSON or raw bytes. */
export interface UserBroadcast {
  event: string;
  meta?: Record<string, unknown>;
  payload: unknown;
  /** Set when the payload is raw bytes (realtime-js's binary encoding) rather than JSON. */
  binary?: Uint8Array;
}

const USER_BROADCAST_PUSH = 3;
const USER_BROADCAST = 4;
const BINARY_ENCODING = 0;
const JSON_ENCODING = 1;

/** Decodes a client frame; throws on anything that is not one. */
export function decode(data: string | ArrayBuffer, vsn: Vsn): Message {
  if (typeof data !== "string") return decodeUserBroadcastPush(new Uint8Array(data));
  const parsed = JSON.parse(data);
  if (vsn === "2.0.0") {
    if (!Array.isArray(parsed) || parsed.length !== 5) {
      throw new Error("a vsn 2.0.0 frame is a 5-element array");
    }
    const [joinRef, ref, topic, event, payload] = parsed;
    return check({ joinRef, ref, topic, event, payload });
  }
  return check({
    joinRef: parsed?.join_ref ?? null,
    ref: parsed?.ref ?? null,
    topic: parsed?.topic,
    event: parsed?.event,
    payload: parsed?.payload,
  });
}

function check(message: Message): Message {
  if (typeof message.topic !== "string" || typeof message.event !== "string") {
    throw new Error("a frame needs a topic and an event");
  }
  if (typeof message.payload !== "object" || message.payload === null) message.payload = {};
  return message;
}

/** `[kind, join_ref, ref, topic, event, metadata lengths…, encoding]` then the parts, then the payload. */
function decodeUserBroadcastPush(bytes: Uint8Array): Message {
  if (bytes[0] !== USER_BROADCAST_PUSH) throw new Error(`unexpected binary frame kind ${bytes[0]}`);
  const lengths = Array.from(bytes.subarray(1, 6));
  const encoding = bytes[6];
  const text = new TextDecoder();
  let offset = 7;
  const [joinRef, ref, topic, event, meta] = lengths.map((length) => {
    const part = text.decode(bytes.subarray(offset, offset + length));
    offset += length;
    return part;
  }) as [string, string, string, string, string];
  const rest = bytes.slice(offset);
  const broadcast: UserBroadcast = encoding === JSON_ENCODING
    ? { event, payload: JSON.parse(text.decode(rest)) }
    : { event, payload: null, binary: rest };
  if (meta !== "") broadcast.meta = JSON.parse(meta);
  return {
    joinRef: joinRef === "" ? null : joinRef,
    ref: ref === "" ? null : ref,
    topic,
    event: "broadcast",
    payload: { type: "broadcast", ...broadcast },
  };
}

/** Encodes a server frame as text in the connection's serializer. */
export function encode(message: Message, vsn: Vsn): string {
  const { joinRef, ref, topic, event, payload } = message;
  return JSON.stringify(
    vsn === "2.0.0"
      ? [joinRef, ref, topic, event, payload]
      : { join_ref: joinRef, ref, topic, event, payload },
  );
}

/** A kind 4 frame carrying a broadcast's raw bytes (vsn 2.0.0 only; JSON payloads go as text frames). */
export function encodeUserBroadcast(topic: string, event: string, payload: Uint8Array): Uint8Array {
  const encoder = new TextEncoder();
  const parts = [encoder.encode(topic), encoder.encode(event), new Uint8Array(0)];
  const header = [USER_BROADCAST, ...parts.map((part) => part.length), BINARY_ENCODING];
  const frame = new Uint8Array(
    header.length + parts.reduce((sum, part) => sum + part.length, 0) + payload.length,
  );
  frame.set(header);
  let offset = header.length;
  for (const part of [...parts, payload]) {
    frame.set(part, offset);
    offset += part.length;
  }
  return frame;
}
