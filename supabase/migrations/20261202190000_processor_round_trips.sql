-- wabase processor round trips (issue 23): the steps of a batch that always follow each other, joined in one
-- call each, so a batch costs fewer round trips and statements (docs/processor.md). Each joined call keeps the
-- guarantees of the functions it calls, in the lock order of docs/locking.md.

-- ============================================================================================
-- The reply row and its send slot
-- ============================================================================================
create function wa.begin_agent_reply_slot(
  p_fence bigint, p_up_to_seq bigint, p_type text, p_body jsonb, p_lease interval,
  p_phone_number_id text, p_recipient text, p_slot_at timestamptz default null, p_now timestamptz default now()
)
returns table (message_id uuid, status text, body jsonb, up_to_seq bigint, ours boolean, granted boolean,
               wait_ms integer)
language plpgsql
set search_path = ''
as $$
declare
  v_reply record;
  v_granted boolean;
  v_wait_ms integer;
begin
  select * into v_reply from wa.begin_agent_reply(p_fence, p_up_to_seq, p_type, p_body, p_lease, p_now) r;
  -- Only a reply this claim sends books a slot; one another claim may have sent books nothing.
  if v_reply.ours and v_reply.status = 'pending' then
    select s.granted, s.wait_ms into v_granted, v_wait_ms
    from wa.take_send_slot(p_phone_number_id, p_recipient, 'interactive', coalesce(p_slot_at, clock_timestamp())) s;
  end if;
  return query select v_reply.message_id, v_reply.status, v_reply.body, v_reply.up_to_seq, v_reply.ours,
                      v_granted, v_wait_ms;
end;
$$;
comment on function
  wa.begin_agent_reply_slot(bigint, bigint, text, jsonb, interval, text, text, timestamptz, timestamptz) is
  'wa.begin_agent_reply, then, when the caller sends the reply (ours and pending), the send governor''s first '
  'slot for it (wa.take_send_slot at interactive priority, at p_slot_at or the database''s clock): one round '
  'trip where two were. granted and wait_ms are null when no slot was booked. Locks as begin_agent_reply, then '
  'the governor''s number and pair rows, which no holder waits behind (docs/locking.md). Raises as both. '
  'Caller: buffer-processor.';

-- ============================================================================================
-- Completing a batch and recording its send
-- ============================================================================================
create function wa.complete_reply(
  p_fence bigint, p_up_to_seq bigint, p_message_id uuid, p_outcome text, p_wamid text default null,
  p_error jsonb default null
)
returns table (status text, complete_sqlstate text, complete_error text)
language plpgsql
set search_path = ''
as $$
declare
  v_sqlstate text;
  v_error text;
begin
  -- The buffer first (step 6), then the send's wamid and message (steps 7 and 9).
  begin
    perform wa.complete_buffer(p_fence, p_up_to_seq);
  exception when others then
    -- A completion that fails (a stale fence) is undone alone: what the send did is recorded all the same.
    get stacked diagnostics v_sqlstate = returned_sqlstate, v_error = message_text;
  end;
  return query select wa.record_send_result(p_message_id, p_outcome, p_wamid, p_error), v_sqlstate, v_error;
end;
$$;
comment on function wa.complete_reply(bigint, bigint, uuid, text, text, jsonb) is
  'wa.complete_buffer and wa.record_send_result for a reply just sent (or found pending, or unknown) in one '
  'round trip: the completion in a subtransaction of its own, so when it fails (P0410 for a stale fence) the '
  'send''s outcome is still recorded and the completion''s SQLSTATE and message are returned for the caller to '
  'raise. Returns the message''s resulting status. Locks the buffer, then the wamid and the message, in the '
  'order of docs/locking.md. Caller: buffer-processor.';

revoke all on function
  wa.begin_agent_reply_slot(bigint, bigint, text, jsonb, interval, text, text, timestamptz, timestamptz),
  wa.complete_reply(bigint, bigint, uuid, text, text, jsonb)
  from public, anon, authenticated, service_role;
