// The chaos benchmark's end state, checked against the database (with bench/audit.ts's record of every
// message that left a buffer, and under which claim) and the fake Graph API's record of what it accepted:
//  - every inbound message is in exactly one completed batch or in wa.dead_letters, never both, never twice;
//  - every completed batch has its reply row, sent or of unknown outcome (never resent, by design);
//  - every reply the fake accepted belongs to exactly one reply row, and no row was sent twice.
// Replies are matched to their rows by text: the demo agent quotes the batch's messages, whose texts are
// unique in this workload (and the fallback reply, the same for every batch, is off).
import type postgres from "postgres";
import type { SentMessage } from "../../local/fake-graph.ts";

export interface InvariantCounts {
  wamids_sent: number;
  inbound_stored: number;
  missing_from_storage: number;
  in_one_completed_batch: number;
  in_dead_letters: number;
  in_no_batch: number;
  in_two_places: number;
  batches_completed: number;
  batches_dead_lettered: number;
  completed_without_reply: number;
  completed_reply_sent: number;
  completed_reply_unknown: number;
  completed_reply_other: number;
  replies_accepted_by_graph: number;
  unknown_accepted_by_graph: number;
  unknown_never_arrived: number;
  double_sends: number;
  sends_matching_no_row: number;
  sent_rows_not_received: number;
  reply_texts_shared: number;
  buffers_left: number;
}

export async function invariantCounts(
  sql: postgres.Sql,
  phoneNumberId: string,
  wamidsSent: Set<string>,
  graphSent: readonly SentMessage[],
): Promise<InvariantCounts> {
  const [messages] = await sql<
    {
      stored: number;
      stored_sent: number;
      one_completed: number;
      dead: number;
      none: number;
      twice: number;
      batches: number;
      dead_batches: number;
      buffers_left: number;
    }[]
  >`
    with conv as (select id from public.conversations where phone_number_id = ${phoneNumberId}),
    inbound as (
      select m.id, m.wamid from public.messages m
      where m.conversation_id in (select id from conv) and m.direction = 'inbound'),
    dead_fences as (select fence from wa.dead_letters where conversation_id in (select id from conv)),
    dead as (
      select (x ->> 'message_id')::uuid as message_id
      from wa.dead_letters d, jsonb_array_elements(d.messages) x
      where d.conversation_id in (select id from conv)),
    completed as (
      select * from bench.removed r
      where r.conversation_id in (select id from conv) and r.fence not in (select fence from dead_fences)),
    places as (
      select i.id,
             (select count(*) from completed c where c.message_id = i.id) as c,
             (select count(*) from dead d where d.message_id = i.id) as d
      from inbound i)
    select (select count(*)::int from inbound) as stored,
           (select count(*)::int from inbound where wamid = any(${[...wamidsSent]}::text[])) as stored_sent,
           count(*) filter (where c = 1 and d = 0)::int as one_completed,
           count(*) filter (where c = 0 and d = 1)::int as dead,
           count(*) filter (where c + d = 0)::int as none,
           count(*) filter (where c + d > 1)::int as twice,
           (select count(distinct fence)::int from completed) as batches,
           (select count(*)::int from dead_fences) as dead_batches,
           (select count(*)::int from wa.buffers where phone_number_id = ${phoneNumberId}) as buffers_left
    from places`;

  // The reply row of each completed batch: keyed by its conversation and first message (wa.batch_reply_key).
  const batches = await sql<{ fence: string; status: string | null }[]>`
    with conv as (select id from public.conversations where phone_number_id = ${phoneNumberId}),
    completed as (
      select r.fence, r.conversation_id, min(r.seq) as first_seq from bench.removed r
      where r.conversation_id in (select id from conv)
        and r.fence not in (select fence from wa.dead_letters)
      group by r.fence, r.conversation_id)
    select c.fence::text, m.status
    from completed c
    left join wa.agent_replies a on a.idempotency_key = 'agent-reply:' || c.conversation_id || ':' || c.first_seq
    left join public.messages m on m.id = a.message_id`;

  const rows = await sql<{ status: string; text: string | null; wamid: string | null }[]>`
    select m.status, m.body -> 'text' ->> 'body' as text, m.wamid
    from wa.agent_replies a
    join public.messages m on m.id = a.message_id
    join public.conversations c on c.id = a.conversation_id
    where c.phone_number_id = ${phoneNumberId}`;

  const received = new Map<string, number>();
  const receivedWamids = new Set<string>();
  let accepted = 0;
  for (const sent of graphSent) {
    if (sent.phoneNumberId !== phoneNumberId) continue;
    accepted++;
    receivedWamids.add(sent.wamid);
    const text = String((sent.body.text as { body?: string } | undefined)?.body);
    received.set(text, (received.get(text) ?? 0) + 1);
  }
  const texts = new Map<string, number>();
  for (const row of rows) texts.set(row.text ?? "", (texts.get(row.text ?? "") ?? 0) + 1);
  let doubles = 0;
  let unknownAccepted = 0;
  let unknownNever = 0;
  let sentNotReceived = 0;
  let matched = 0;
  for (const row of rows) {
    const n = received.get(row.text ?? "") ?? 0;
    matched += Math.min(n, 1);
    doubles += Math.max(0, n - 1);
    if (row.status === "unknown") n === 0 ? unknownNever++ : unknownAccepted++;
    if (row.status === "sent" && (n === 0 || row.wamid === null || !receivedWamids.has(row.wamid))) {
      sentNotReceived++;
    }
  }
  const count = (status: string | null) => batches.filter((batch) => batch.status === status).length;
  const m = messages!;
  return {
    wamids_sent: wamidsSent.size,
    inbound_stored: m.stored,
    missing_from_storage: wamidsSent.size - m.stored_sent,
    in_one_completed_batch: m.one_completed,
    in_dead_letters: m.dead,
    in_no_batch: m.none,
    in_two_places: m.twice,
    batches_completed: m.batches,
    batches_dead_lettered: m.dead_batches,
    completed_without_reply: count(null),
    completed_reply_sent: count("sent"),
    completed_reply_unknown: count("unknown"),
    completed_reply_other: batches.length - count(null) - count("sent") - count("unknown"),
    replies_accepted_by_graph: accepted,
    unknown_accepted_by_graph: unknownAccepted,
    unknown_never_arrived: unknownNever,
    double_sends: doubles,
    sends_matching_no_row: accepted - matched - doubles,
    sent_rows_not_received: sentNotReceived,
    reply_texts_shared: [...texts.values()].reduce((sum, n) => sum + Math.max(0, n - 1), 0),
    buffers_left: m.buffers_left,
  };
}

/** The counts that must be 0 for the invariant to hold. */
export function violations(c: InvariantCounts): Record<string, number> {
  return {
    missing_from_storage: c.missing_from_storage,
    in_no_batch: c.in_no_batch,
    in_two_places: c.in_two_places,
    completed_without_reply: c.completed_without_reply,
    completed_reply_other: c.completed_reply_other,
    double_sends: c.double_sends,
    sends_matching_no_row: c.sends_matching_no_row,
    sent_rows_not_received: c.sent_rows_not_received,
    reply_texts_shared: c.reply_texts_shared,
    buffers_left: c.buffers_left,
    // Replies sent = batches completed, less the unknown outcomes that never reached the API.
    replies_sent_minus_batches: c.replies_accepted_by_graph - (c.batches_completed - c.unknown_never_arrived),
  };
}
