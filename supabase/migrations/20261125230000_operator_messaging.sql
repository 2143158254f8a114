-- wabase operator messaging: human replies from the live-chat UI (idempotent by client id, within WhatsApp's
-- 24-hour customer-service window unless a template), bot handoff (pause/resume, auto-pause after an operator
-- reply), and read state with a single read receipt per message.

-- ============================================================================================
-- Columns
-- ============================================================================================
alter table wa.phone_numbers
  -- How long the bot stays quiet after an operator replies in a conversation.
  add column bot_auto_pause interval not null default interval '30 minutes' check (bot_auto_pause >= interval '0');

alter table public.conversations
  -- The agent does not answer while this is in the future ('infinity': until resumed).
  add column bot_paused_until timestamptz,
  add column bot_paused_by uuid references public.profiles (id);

alter table public.messages
  -- The operator who sent an outbound message (null: the bot).
  add column sent_by uuid references public.profiles (id),
  -- When an operator read this inbound message, and when WhatsApp was told (once).
  add column read_at timestamptz,
  add column read_by uuid references public.profiles (id),
  add column read_receipt_sent_at timestamptz;
create index messages_unread_idx on public.messages (conversation_id) where direction = 'inbound' and read_at is null;

-- ============================================================================================
-- Who may act on a conversation: the same rules as its RLS policy, for one user and one conversation
-- ============================================================================================
create function wa.require_conversation_access(p_user_id uuid, p_conversation_id uuid)
returns public.conversations
language plpgsql
stable
set search_path = ''
as $$
declare
  v_conversation public.conversations;
begin
  select * into v_conversation from public.conversations where id = p_conversation_id;
  if not found then
    raise exception 'no conversation %', p_conversation_id using errcode = 'PT404', hint = 'conversation_not_found';
  end if;
  if authz.role_of(p_user_id) is null then
    raise exception 'the caller has no active profile' using errcode = 'PT403', hint = 'no_profile';
  end if;
  -- The conversations policy's predicate, for this user: the rules themselves live in the authz helpers.
  if v_conversation.assigned_executive_id = any (authz.visible_executives_of(p_user_id))
     or (v_conversation.assigned_executive_id is null
         and v_conversation.team_id = any (authz.visible_teams_of(p_user_id)))
     or (v_conversation.assigned_executive_id is null and v_conversation.team_id is null
         and authz.role_of(p_user_id) = 'admin') then
    return v_conversation;
  end if;
  raise exception 'you may not act on conversation %', p_conversation_id using errcode = 'PT403', hint = 'forbidden';
end;
$$;
comment on function wa.require_conversation_access(uuid, uuid) is
  'The conversation if p_user_id may act on it under the same rules as its RLS policy (assigned executive, their '
  'backup, the team''s coordinator, admins); PT403 forbidden otherwise, PT404 conversation_not_found. Caller: '
  'send-message and the bot pause RPCs.';

-- ============================================================================================
-- Operator sends
-- ============================================================================================
create function wa.begin_operator_send(
  p_actor_id uuid, p_conversation_id uuid, p_client_id uuid, p_type text, p_body jsonb,
  p_now timestamptz default now()
)
returns table (message_id uuid, status text, wamid text, body jsonb, error jsonb, created boolean)
language plpgsql
set search_path = ''
as $$
declare
  v_conversation public.conversations;
  v_key text := 'operator:' || p_conversation_id || ':' || p_client_id;
  v_message_id uuid;
  v_auto_pause interval;
begin
  -- The conversation before its message, as the ingest takes them (docs/locking.md): a resend locks the
  -- message below, and the conversation is updated last. Read after the lock: a customer's message that
  -- committed meanwhile (its last_inbound_at) counts.
  perform from public.conversations c where c.id = p_conversation_id for no key update;
  v_conversation := wa.require_conversation_access(p_actor_id, p_conversation_id);
  -- The same client id again: the first result, never a second message. A definite failure may be resent,
  -- by exactly one of any number of concurrent retries.
  update public.messages m set status = 'pending', error = null
  where m.idempotency_key = v_key and m.status = 'failed'
  returning m.id into v_message_id;
  if v_message_id is null and exists (select from public.messages m where m.idempotency_key = v_key) then
    return query select m.id, m.status, m.wamid, m.body, m.error, false
                 from public.messages m where m.idempotency_key = v_key;
    return;
  end if;
  -- WhatsApp accepts free-form messages only within 24 h of the customer's last message (error 131047):
  -- refuse before any API call.
  if v_message_id is null and p_type <> 'template'
     and (v_conversation.last_inbound_at is null or v_conversation.last_inbound_at <= p_now - interval '24 hours') then
    raise exception 'the 24-hour customer service window is closed: only an approved template can be sent'
      using errcode = 'P0422', hint = 'outside_service_window';
  end if;
  if v_message_id is null then
    insert into public.messages (conversation_id, direction, type, body, content_text, sent_at, status,
                                 idempotency_key, sent_by)
    values (p_conversation_id, 'outbound', p_type, p_body,
            wa.message_text(p_body || jsonb_build_object('type', p_type)), p_now, 'pending', v_key, p_actor_id)
    on conflict (idempotency_key) do nothing
    returning id into v_message_id;
    if v_message_id is null then
      -- A concurrent request with the same client id inserted first.
      return query select m.id, m.status, m.wamid, m.body, m.error, false
                   from public.messages m where m.idempotency_key = v_key;
      return;
    end if;
  end if;
  -- A human took over: the bot stays quiet for the number's auto-pause (never shortening a longer pause).
  select n.bot_auto_pause into v_auto_pause from wa.phone_numbers n where n.phone_number_id = v_conversation.phone_number_id;
  update public.conversations
  set last_message_at = greatest(last_message_at, p_now),
      bot_paused_until = greatest(coalesce(bot_paused_until, p_now), p_now + v_auto_pause),
      bot_paused_by = case when coalesce(bot_paused_until, p_now) < p_now + v_auto_pause then p_actor_id
                           else bot_paused_by end,
      updated_at = now()
  where id = p_conversation_id;
  return query select m.id, m.status, m.wamid, m.body, m.error, true
               from public.messages m where m.id = v_message_id;
end;
$$;
comment on function wa.begin_operator_send(uuid, uuid, uuid, text, jsonb, timestamptz) is
  'Writes an operator''s outbound message as pending before the send, keyed by (conversation, client id): a repeat '
  'returns the first message with created = false (a definitely failed one is handed back for one resend). '
  'Refuses free-form messages outside the 24-hour window (P0422 outside_service_window) and callers who may not '
  'act on the conversation (PT403/PT404); auto-pauses the bot. Locks the conversation before the message '
  '(docs/locking.md). Caller: send-message.';

create function wa.conversation_recipient(p_conversation_id uuid)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_strip_nulls(jsonb_build_object('phone_number_id', c.phone_number_id, 'wa_id', k.wa_id,
                                              'user_id', k.user_id))
  from public.conversations c join public.contacts k on k.id = c.contact_id
  where c.id = p_conversation_id
$$;
comment on function wa.conversation_recipient(uuid) is
  'Where messages of a conversation go: the business number and the contact''s wa_id and/or BSUID. Caller: '
  'send-message.';

-- ============================================================================================
-- Read state
-- ============================================================================================
create function wa.mark_conversation_read(p_actor_id uuid, p_conversation_id uuid, p_now timestamptz default now())
returns table (marked integer, receipt_wamid text, phone_number_id text)
language plpgsql
set search_path = ''
as $$
declare
  v_conversation public.conversations := wa.require_conversation_access(p_actor_id, p_conversation_id);
  v_marked integer;
  v_latest uuid;
  v_wamid text;
begin
  -- Locked in wamid order, as the ingest takes inbound rows (docs/locking.md); an UPDATE alone takes its plan's.
  with unread as materialized (
    select m.id from public.messages m
    where m.conversation_id = p_conversation_id and m.direction = 'inbound' and m.read_at is null
    order by m.wamid
    for no key update
  )
  update public.messages m
  set read_at = p_now, read_by = p_actor_id
  from unread u
  where m.id = u.id;
  get diagnostics v_marked = row_count;
  -- Telling WhatsApp about the newest inbound message marks every earlier one read too; claim the receipt
  -- atomically so it is sent once, whoever marks the conversation read concurrently.
  select m.id into v_latest from public.messages m
  where m.conversation_id = p_conversation_id and m.direction = 'inbound'
  order by m.sent_at desc, m.received_at desc limit 1;
  update public.messages set read_receipt_sent_at = p_now
  where id = v_latest and read_receipt_sent_at is null
  returning wamid into v_wamid;
  return query select v_marked, v_wamid, v_conversation.phone_number_id;
end;
$$;
comment on function wa.mark_conversation_read(uuid, uuid, timestamptz) is
  'Marks a conversation''s inbound messages read by the operator and claims the WhatsApp read receipt of the newest '
  'one (returned as receipt_wamid only to the one caller that must send it). Same access rules as '
  'send-message. Caller: send-message.';

-- ============================================================================================
-- Bot pause and resume, callable by the frontend
-- ============================================================================================
create function public.pause_bot(conversation_id uuid, until timestamptz default null)
returns timestamptz
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_until timestamptz := coalesce(until, 'infinity'::timestamptz);
begin
  perform wa.require_conversation_access(auth.uid(), conversation_id);
  update public.conversations c set bot_paused_until = v_until, bot_paused_by = auth.uid(), updated_at = now()
  where c.id = pause_bot.conversation_id;
  return v_until;
end;
$$;
comment on function public.pause_bot(uuid, timestamptz) is
  'Pauses the AI agent in a conversation until a time (or until resumed): inbound messages are still stored and '
  'shown, the bot sends nothing. Same access rules as the conversation (PT403 otherwise). Caller: the frontend.';

create function public.resume_bot(conversation_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform wa.require_conversation_access(auth.uid(), conversation_id);
  -- A handoff the agent asked for is answered too (docs/conversation.md); the history stays.
  update public.conversations c set bot_paused_until = null, bot_paused_by = null, handoff_requested_at = null,
                                    handoff_reason = null, updated_at = now()
  where c.id = resume_bot.conversation_id;
end;
$$;
comment on function public.resume_bot(uuid) is
  'Lets the AI agent answer a conversation again and clears a handoff the agent asked for; the history stays. Same '
  'access rules as the conversation. Caller: the frontend.';

revoke all on function wa.require_conversation_access(uuid, uuid),
  wa.begin_operator_send(uuid, uuid, uuid, text, jsonb, timestamptz), wa.conversation_recipient(uuid),
  wa.mark_conversation_read(uuid, uuid, timestamptz)
  from public, anon, authenticated, service_role;
revoke all on function public.pause_bot(uuid, timestamptz), public.resume_bot(uuid) from public, anon, service_role;
grant execute on function public.pause_bot(uuid, timestamptz), public.resume_bot(uuid) to authenticated;

-- ============================================================================================
-- The processor respects the pause: the context says so, and the reply cannot be written while paused
-- ============================================================================================
create function wa.agent_context_with_session(p_fence bigint, p_history integer default 20)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
  v_context jsonb := wa.agent_context(p_fence, p_history);
  v_conversation_id uuid := (v_context -> 'conversation' ->> 'id')::uuid;
begin
  if v_context is null then
    return null;
  end if;
  return v_context || jsonb_build_object(
    'session', (select jsonb_build_object('state', s.state, 'data', s.data, 'version', s.version)
                from wa.get_chat_session(v_conversation_id) s),
    'bot_paused', (select coalesce(c.bot_paused_until > now(), false) from public.conversations c
                   where c.id = v_conversation_id),
    'typing_indicator', (select n.typing_indicator from wa.phone_numbers n
                         where n.phone_number_id = v_context -> 'conversation' ->> 'phone_number_id'));
end;
$$;
comment on function wa.agent_context_with_session(bigint, integer) is
  'wa.agent_context plus the conversation''s chat session (state, data, version; version 0 when none) and whether '
  'the bot is paused there and whether its number shows the typing indicator, still one round trip. Null for a '
  'stale fence. Caller: buffer-processor.';
revoke all on function wa.agent_context_with_session(bigint, integer) from public, anon, authenticated, service_role;

create function wa.refuse_reply_while_paused()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.sent_by is null and new.idempotency_key like 'agent-reply:%'
     and exists (select from public.conversations c where c.id = new.conversation_id and c.bot_paused_until > now())
  then
    raise exception 'the bot is paused in conversation %', new.conversation_id
      using errcode = 'P0423', hint = 'bot_paused';
  end if;
  return new;
end;
$$;
comment on function wa.refuse_reply_while_paused() is
  'Trigger on public.messages: an agent reply cannot be written while the bot is paused in its conversation '
  '(P0423 bot_paused), so a pause that lands while the agent is thinking still wins.';
revoke all on function wa.refuse_reply_while_paused() from public, anon, authenticated, service_role;
create trigger messages_refuse_reply_while_paused before insert on public.messages
  for each row when (new.direction = 'outbound') execute function wa.refuse_reply_while_paused();
