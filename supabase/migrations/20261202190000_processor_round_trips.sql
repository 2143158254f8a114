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
-- Claiming a batch with its context and the typing indicator's slot
-- ============================================================================================
create function wa.claim_batch(p_worker text, p_lease interval, p_history integer, p_now timestamptz default now())
returns table (conversation_id uuid, fence bigint, first_seq bigint, up_to_seq bigint, message_count integer,
               attempts integer, context jsonb, typing_granted boolean, typing_wait_ms integer)
language plpgsql
set search_path = ''
as $$
declare
  v_claim record;
  v_context jsonb;
  v_granted boolean;
  v_wait_ms integer;
begin
  select * into v_claim from wa.claim_buffers(p_worker, 1, p_lease, p_now) c;
  if not found then
    return;
  end if;
  if v_claim.message_count > 0 and v_claim.up_to_seq is not null then
    -- A statement of its own: it sees the claim's fence.
    v_context := wa.agent_context_with_session(v_claim.fence, p_history);
    -- The agent will be asked (no reply written yet, the bot not paused) and the number shows the typing
    -- indicator: its slot now, as the processor would book it right after (buffer-processor/processor.ts).
    if v_context -> 'existing_reply' = 'null'::jsonb and not (v_context ->> 'bot_paused')::boolean
       and coalesce((v_context ->> 'typing_indicator')::boolean, true)
       and jsonb_array_length(v_context -> 'batch' -> 'messages') > 0 then
      select s.granted, s.wait_ms into v_granted, v_wait_ms
      from wa.take_send_slot(v_context -> 'conversation' ->> 'phone_number_id', null, 'interactive',
                             clock_timestamp()) s;
    end if;
  end if;
  return query select v_claim.conversation_id, v_claim.fence, v_claim.first_seq, v_claim.up_to_seq,
                      v_claim.message_count, v_claim.attempts, v_context, v_granted, v_wait_ms;
end;
$$;
comment on function wa.claim_batch(text, interval, integer, timestamptz) is
  'One round trip where three were: wa.claim_buffers for one batch, its wa.agent_context_with_session (null '
  'for an empty batch), and, when the agent will be asked and the number shows the typing indicator, the send '
  'governor''s slot for that indicator (interactive, no pair; typing_granted and typing_wait_ms null when none '
  'was booked). No row when nothing is due. Locks as the claim, then the governor''s number row, which no holder '
  'waits behind (docs/locking.md). Caller: buffer-processor.';

-- ============================================================================================
-- Completing a batch, recording its send and counting its outcome
-- ============================================================================================
create function wa.complete_reply(
  p_fence bigint, p_up_to_seq bigint, p_message_id uuid, p_outcome text, p_wamid text default null,
  p_error jsonb default null, p_conversation_id uuid default null, p_batch_outcome text default null
)
returns table (status text, complete_sqlstate text, complete_error text, note_error text)
language plpgsql
set search_path = ''
as $$
declare
  v_step text;
  v_sqlstate text;
  v_error text;
  v_note_error text;
begin
  -- The conversation (step 5), the buffer (step 6), then the send's wamid and message (steps 7 and 9).
  begin
    if p_batch_outcome is not null then
      v_step := 'note';
      perform wa.note_batch_outcome(p_conversation_id, p_batch_outcome);
    end if;
    v_step := 'complete';
    perform wa.complete_buffer(p_fence, p_up_to_seq);
  exception when others then
    -- A completion that fails (a stale fence) is undone with the outcome counted for it; what the send did is
    -- recorded all the same.
    if v_step = 'note' then
      get stacked diagnostics v_note_error = message_text;
    else
      get stacked diagnostics v_sqlstate = returned_sqlstate, v_error = message_text;
    end if;
  end;
  if v_note_error is not null then
    -- The counting is bookkeeping: its failure never keeps the batch from completing.
    begin
      perform wa.complete_buffer(p_fence, p_up_to_seq);
    exception when others then
      get stacked diagnostics v_sqlstate = returned_sqlstate, v_error = message_text;
    end;
  end if;
  return query select wa.record_send_result(p_message_id, p_outcome, p_wamid, p_error), v_sqlstate, v_error,
                      v_note_error;
end;
$$;
comment on function wa.complete_reply(bigint, bigint, uuid, text, text, jsonb, uuid, text) is
  'For a reply just sent (or found pending, or unknown), in one round trip where three were: '
  'wa.note_batch_outcome(p_conversation_id, p_batch_outcome) when an outcome is given, wa.complete_buffer and '
  'wa.record_send_result. The counting and the completion run in a subtransaction: when the completion fails '
  '(P0410 for a stale fence) both are undone, the send''s outcome is still recorded, and the completion''s '
  'SQLSTATE and message are returned for the caller to raise. A failed counting is returned in note_error and '
  'the completion runs without it. Returns the message''s resulting status. Locks the conversation, the buffer, '
  'then the wamid and the message, in the order of docs/locking.md. Caller: buffer-processor.';

revoke all on function
  wa.begin_agent_reply_slot(bigint, bigint, text, jsonb, interval, text, text, timestamptz, timestamptz),
  wa.claim_batch(text, interval, integer, timestamptz),
  wa.complete_reply(bigint, bigint, uuid, text, text, jsonb, uuid, text)
  from public, anon, authenticated, service_role;
