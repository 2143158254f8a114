-- wabase conversation: the conversation as the customer and the operator experience it. Replies typed in the
-- WhatsApp Business app (coexistence echoes) are stored as outbound messages and pause the bot; the app's chat
-- history and address book are applied; reactions attach to the message they react to; edits keep a history
-- and revokes hide the body; a customer's button or list choice reaches the agent as structured input; the
-- agent can hand a conversation over to the team. See docs/conversation.md.
--
-- Payload shapes (Meta's webhook references, developers.facebook.com/documentation/business-messaging/whatsapp/
-- webhooks/reference/...): smb_message_echoes (value.message_echoes[] with from = business, to = customer),
-- history (value.history[].threads[].messages[], `to` only on the business's messages, history_context.status),
-- smb_app_state_sync (value.state_sync[] of {type: contact, contact{full_name, first_name, phone_number}, action
-- add|remove, metadata.timestamp}), messages/reaction (no `emoji` when removed), messages/edit
-- (edit{original_message_id, message{...}}) and messages/revoke (revoke{original_message_id}).

-- ============================================================================================
-- Columns
-- ============================================================================================
alter table wa.phone_numbers
  -- A reply typed in the WhatsApp Business app pauses the bot in that conversation (for bot_auto_pause).
  add column echo_pauses_bot boolean not null default true,
  -- A customer's reaction wakes the agent (appended to the buffer like a message).
  add column react_wakes_agent boolean not null default false,
  -- The processor marks the customer's last message read with the typing indicator while the agent answers.
  add column typing_indicator boolean not null default true;

alter table public.messages
  -- Where a message not sent through the Cloud API comes from: typed in the WhatsApp Business app (an echo), or
  -- imported from the app's chat history. Null: the Cloud API (webhook, operator send, bot).
  add column origin text check (origin in ('business_app', 'history')),
  add column edited_at timestamptz,
  -- Deleted for everyone by its sender: the body is cleared (the raw webhook log keeps it for its retention).
  add column revoked_at timestamptz;

alter table public.conversations
  -- The agent asked for a human (the bot is paused until resumed); cleared by resume_bot.
  add column handoff_requested_at timestamptz,
  add column handoff_reason text;

-- ============================================================================================
-- Reactions: one per reactor and message, the newest by WhatsApp's timestamp wins (deliveries are unordered)
-- ============================================================================================
create table public.message_reactions (
  -- The message reacted to, by wamid: a reaction may arrive before the message it names.
  message_wamid text not null,
  -- customer: the contact of the conversation; business: an operator (send-message) or the Business app.
  reactor text not null check (reactor in ('customer', 'business')),
  conversation_id uuid not null references public.conversations (id),
  -- Null once removed: kept as a tombstone so an older "add" delivered late cannot bring it back.
  emoji text,
  reacted_at timestamptz not null,
  reaction_wamid text,
  primary key (message_wamid, reactor)
);
create index message_reactions_conversation_idx on public.message_reactions (conversation_id);
comment on table public.message_reactions is
  'The current reaction of the customer and of the business to each message (emoji null: removed).';

create table public.message_edits (
  id bigint generated always as identity primary key,
  message_id uuid not null references public.messages (id),
  -- The edit's own wamid: a redelivered edit is recorded once.
  edit_wamid text not null unique,
  previous_body jsonb not null,
  previous_text text,
  edited_at timestamptz not null
);
create index message_edits_message_idx on public.message_edits (message_id, edited_at);
comment on table public.message_edits is 'Earlier versions of edited messages: the body each edit replaced.';

alter table public.message_reactions enable row level security;
alter table public.message_edits enable row level security;
revoke all on public.message_reactions, public.message_edits from anon, authenticated;
-- Readable exactly when the conversation is (the conversations policy decides).
create policy "reactions are readable with their conversation" on public.message_reactions
  for select to authenticated
  using (exists (select from public.conversations c where c.id = message_reactions.conversation_id));
create policy "edits are readable with their message" on public.message_edits
  for select to authenticated
  using (exists (select from public.messages m where m.id = message_edits.message_id));
grant select on public.message_reactions, public.message_edits to authenticated;

create table wa.app_contacts (
  phone_number_id text not null references wa.phone_numbers (phone_number_id),
  wa_id text not null,
  full_name text,
  first_name text,
  -- Removed from the app's address book (the names are cleared).
  removed boolean not null default false,
  synced_at timestamptz not null,
  primary key (phone_number_id, wa_id)
);
comment on table wa.app_contacts is
  'The WhatsApp Business app''s address book per business number (smb_app_state_sync), newest event wins.';
revoke all on table wa.app_contacts from public, anon, authenticated, service_role;

create trigger message_reactions_broadcast_insert after insert on public.message_reactions
  referencing new table as new_rows for each statement execute function wa.broadcast_changes();
create trigger message_reactions_broadcast_update after update on public.message_reactions
  referencing old table as old_rows new table as new_rows for each statement execute function wa.broadcast_changes();
create trigger message_reactions_broadcast_delete after delete on public.message_reactions
  referencing old table as old_rows for each statement execute function wa.broadcast_changes();

-- ============================================================================================
-- The ingest's view of a POST: `messages` changes, with echoes and chat history as messages too
-- ============================================================================================
create function wa.conversation_changes(p_payload jsonb)
returns table (waba_id text, value jsonb)
language sql
immutable
parallel safe
as $$
  -- Every message gets, under `wabase`, what the ingest needs beyond Meta's fields: its direction, its origin
  -- and whose conversation it belongs to (an echo's `to`, a history thread's id). The key is stripped before
  -- the message is stored.
  with changes as (
    select e.value ->> 'id' as waba_id, c.value ->> 'field' as field, c.value -> 'value' as value
    from jsonb_array_elements(p_payload -> 'entry') e
    cross join lateral jsonb_array_elements(e.value -> 'changes') c
    where c.value ->> 'field' in ('messages', 'smb_message_echoes', 'history')
  )
  select ch.waba_id,
         case ch.field
           when 'messages' then ch.value
           when 'smb_message_echoes' then ch.value - 'message_echoes' || jsonb_build_object('messages', coalesce(
             (select jsonb_agg(m || jsonb_build_object('wabase', jsonb_build_object(
                       'origin', 'business_app', 'direction', 'outbound', 'contact', wa.digits(m ->> 'to'))))
              from jsonb_array_elements(coalesce(ch.value -> 'message_echoes', '[]')) m), '[]'))
           else ch.value - 'history' || jsonb_build_object('messages', coalesce(
             (select jsonb_agg(h.msg || jsonb_build_object('wabase', jsonb_build_object(
                       'origin', 'history', 'direction', h.direction, 'status', h.msg -> 'history_context' ->> 'status',
                       'contact', case when h.direction = 'outbound' then coalesce(wa.digits(h.msg ->> 'to'), h.thread)
                                       else coalesce(wa.digits(h.msg ->> 'from'), h.thread) end)))
              from (
                -- Threads of past messages, and the follow-up webhooks that carry a media message's content.
                select m.value as msg, wa.digits(t.value ->> 'id') as thread,
                       case when wa.digits(m.value ->> 'from') = wa.digits(ch.value -> 'metadata' ->> 'display_phone_number')
                            then 'outbound' else 'inbound' end as direction
                from jsonb_array_elements(coalesce(ch.value -> 'history', '[]')) hs
                cross join lateral jsonb_array_elements(coalesce(hs.value -> 'threads', '[]')) t
                cross join lateral jsonb_array_elements(coalesce(t.value -> 'messages', '[]')) m
                union all
                select m.value, null,
                       case when wa.digits(m.value ->> 'from') = wa.digits(ch.value -> 'metadata' ->> 'display_phone_number')
                            then 'outbound' else 'inbound' end
                from jsonb_array_elements(coalesce(ch.value -> 'messages', '[]')) m
              ) h), '[]'))
         end
  from changes ch
$$;
comment on function wa.conversation_changes(jsonb) is
  'The message-carrying changes of a webhook POST with their WABA id: `messages` values as delivered, and '
  'smb_message_echoes and history values rewritten to carry their messages in `messages[]`, each marked under '
  '`wabase` with direction, origin (business_app, history), history status and the customer''s number. '
  'Caller: wa.ingest_webhook.';

create function wa.stored_status(p_message jsonb)
returns text
language sql
immutable
parallel safe
as $$
  -- The Business app's own statuses (history_context.status: DELIVERED, ERROR, PENDING, PLAYED, READ, SENT);
  -- an echo was sent by the time Meta tells us about it.
  select case when p_message -> 'wabase' ->> 'direction' = 'outbound' then
    case lower(p_message -> 'wabase' ->> 'status')
      when 'delivered' then 'delivered' when 'read' then 'read' when 'played' then 'played'
      when 'error' then 'failed' when 'pending' then 'pending'
      else 'sent'
    end
  end
$$;
comment on function wa.stored_status(jsonb) is
  'The status an echo or history message is stored with (null for inbound ones). Caller: wa.ingest_webhook.';

create function wa.wakes_agent(p_type text, p_direction text, p_origin text, p_react_wakes_agent boolean)
returns boolean
language sql
immutable
parallel safe
as $$
  -- Only live customer messages: never an echo or history, and a reaction only where the number asks for it.
  select p_direction = 'inbound' and p_origin is null
         and (wa.is_bot_readable(p_type) or (p_type = 'reaction' and p_react_wakes_agent))
$$;
comment on function wa.wakes_agent(text, text, text, boolean) is
  'Whether a new message goes to its conversation''s buffer for the agent. Caller: wa.ingest_webhook.';

create function wa.edit_targets(p_messages jsonb, p_first_seen text[], p_direction text)
returns setof text
language sql
immutable
parallel safe
as $$
  select distinct m -> 'msg' -> (m -> 'msg' ->> 'type') ->> 'original_message_id'
  from jsonb_array_elements(p_messages) m
  where m ->> 'wamid' = any (p_first_seen)
    and m -> 'msg' ->> 'type' in ('edit', 'revoke')
    and coalesce(m -> 'msg' -> 'wabase' ->> 'direction', 'inbound') = p_direction
    and m -> 'msg' -> (m -> 'msg' ->> 'type') ->> 'original_message_id' is not null
$$;
comment on function wa.edit_targets(jsonb, text[], text) is
  'The wamids that the first-seen edits and revokes of a POST (customer''s: inbound; business app''s: '
  'outbound) change. Caller: wa.ingest_webhook, to lock them in its step.';

-- ============================================================================================
-- Edits and revokes
-- ============================================================================================
create function wa.apply_edits(p_messages jsonb, p_first_seen text[], p_direction text)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_event record;
  v_applied integer := 0;
  v_target public.messages;
begin
  -- In WhatsApp's order (timestamp, then wamid): two edits of one message in a POST end with the later text.
  for v_event in
    select m ->> 'wamid' as wamid, m -> 'msg' as msg, m -> 'msg' ->> 'type' as kind,
           m -> 'msg' -> (m -> 'msg' ->> 'type') ->> 'original_message_id' as target,
           wa.unix_time(m -> 'msg' ->> 'timestamp') as at
    from jsonb_array_elements(p_messages) m
    where m ->> 'wamid' = any (p_first_seen)
      and m -> 'msg' ->> 'type' in ('edit', 'revoke')
      and coalesce(m -> 'msg' -> 'wabase' ->> 'direction', 'inbound') = p_direction
    order by 5, 1
  loop
    -- Locked by the caller in wamid order (its step of docs/locking.md).
    select * into v_target from public.messages pm
    where pm.wamid = v_event.target and pm.direction = p_direction;
    continue when not found or v_target.revoked_at is not null;
    if v_event.kind = 'revoke' then
      update public.messages set body = jsonb_build_object('type', type), content_text = null,
                                 revoked_at = v_event.at
      where id = v_target.id;
      -- Earlier versions go too: only the raw webhook log keeps the content, for its retention policy.
      delete from public.message_edits where message_id = v_target.id;
    else
      insert into public.message_edits (message_id, edit_wamid, previous_body, previous_text, edited_at)
      values (v_target.id, v_event.wamid, v_target.body, v_target.content_text, v_event.at)
      on conflict (edit_wamid) do nothing;
      -- The new content, with the original's context (a quoted reply stays one).
      update public.messages
      set body = (v_event.msg -> 'edit' -> 'message') || jsonb_strip_nulls(jsonb_build_object(
                   'id', v_target.wamid, 'from', v_target.body -> 'from', 'timestamp', v_target.body -> 'timestamp',
                   'context', v_target.body -> 'context')),
          type = coalesce(v_event.msg -> 'edit' -> 'message' ->> 'type', v_target.type),
          content_text = wa.message_text(v_event.msg -> 'edit' -> 'message'),
          edited_at = v_event.at
      where id = v_target.id;
    end if;
    v_applied := v_applied + 1;
  end loop;
  return v_applied;
end;
$$;
comment on function wa.apply_edits(jsonb, text[], text) is
  'Applies the first-seen edits and revokes of a POST to the messages they name (inbound ones: the customer''s; '
  'outbound: the business app''s): an edit keeps the replaced body in public.message_edits and shows the new '
  'one; a revoke clears the body and stamps revoked_at. A target not stored (never delivered, or not yet) is '
  'skipped; the event stays stored as a message. The caller holds the targets'' row locks. Returns how many '
  'applied. Caller: wa.ingest_webhook.';

-- ============================================================================================
-- After the ingest's conversation phase: echo pauses, revoked messages leave buffers
-- ============================================================================================
create function wa.after_conversation_phase(p_messages jsonb, p_first_seen text[], p_now timestamptz)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_echoes text[] := array(select m ->> 'wamid' from jsonb_array_elements(p_messages) m
                           where m -> 'msg' -> 'wabase' ->> 'origin' = 'business_app'
                             and m ->> 'wamid' = any (p_first_seen));
  v_revoked text[] := array(select wa.edit_targets(p_messages, p_first_seen, 'inbound'));
begin
  -- Most POSTs have neither: they cost two scans of the POST's own messages, nothing in the tables.
  if cardinality(v_echoes) > 0 then
    -- A human answered from the WhatsApp Business app: the bot stays quiet as after an operator's send. These
    -- conversations were upserted by this transaction (step 5), so no lock is taken here; a reply the agent has
    -- not written yet is then refused (wa.refuse_reply_while_paused), as for pause_bot.
    with echoed as (
      select pm.conversation_id, max(pm.sent_at) as sent_at
      from public.messages pm
      join unnest(v_echoes) as e (wamid) on e.wamid = pm.wamid
      group by pm.conversation_id
    )
    update public.conversations c
    set bot_paused_until = greatest(coalesce(c.bot_paused_until, p_now), p_now + n.bot_auto_pause),
        updated_at = now()
    from echoed e, wa.phone_numbers n
    where c.id = e.conversation_id and n.phone_number_id = c.phone_number_id
      and n.echo_pauses_bot and n.bot_auto_pause > interval '0' and e.sent_at > p_now - n.bot_auto_pause
      and coalesce(c.bot_paused_until, p_now) < p_now + n.bot_auto_pause;
  end if;
  if cardinality(v_revoked) > 0 then
    -- A revoked message waiting in a buffer never reaches the agent (step 6: its buffer row; a claim holding
    -- the batch waits, then completes without it).
    delete from wa.buffer_messages bm
    using public.messages pm
    join unnest(v_revoked) as r (wamid) on r.wamid = pm.wamid
    where pm.id = bm.message_id and pm.revoked_at is not null;
  end if;
end;
$$;
comment on function wa.after_conversation_phase(jsonb, text[], timestamptz) is
  'Ingest step after conversations, messages and buffers: a new echo (a reply from the WhatsApp Business app) '
  'pauses the bot in its conversation for the number''s bot_auto_pause when echo_pauses_bot; revoked messages '
  'leave their buffer. Caller: wa.ingest_webhook.';

-- ============================================================================================
-- At the end of the ingest: reactions, the business app's edits, its address book
-- ============================================================================================
create function wa.apply_message_events(p_payload jsonb, p_messages jsonb, p_first_seen text[],
                                        p_now timestamptz)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_edited text[] := array(select wa.edit_targets(p_messages, p_first_seen, 'outbound'));
begin
  -- The business app's edits and revokes of its own messages (echoes): outbound rows, last in the lock order.
  if cardinality(v_edited) > 0 then
    perform from public.messages pm
    join unnest(v_edited) as t (wamid) on t.wamid = pm.wamid
    where pm.direction = 'outbound'
    order by pm.wamid
    for no key update of pm;
    perform wa.apply_edits(p_messages, p_first_seen, 'outbound');
  end if;

  if exists (select from jsonb_array_elements(p_messages) m
             where m -> 'msg' ->> 'type' = 'reaction' and m ->> 'wamid' = any (p_first_seen)) then
    -- Reactions, in key order; an older event never overwrites a newer one.
    insert into public.message_reactions as r (message_wamid, reactor, conversation_id, emoji, reacted_at,
                                               reaction_wamid)
    select distinct on (e.target, e.reactor) e.target, e.reactor, pm.conversation_id, e.emoji, e.at, e.wamid
    from (
      select m ->> 'wamid' as wamid, m -> 'msg' -> 'reaction' ->> 'message_id' as target,
             case when m -> 'msg' -> 'wabase' ->> 'direction' = 'outbound' then 'business' else 'customer' end
               as reactor,
             nullif(m -> 'msg' -> 'reaction' ->> 'emoji', '') as emoji,
             wa.unix_time(m -> 'msg' ->> 'timestamp') as at
      from jsonb_array_elements(p_messages) m
      where m ->> 'wamid' = any (p_first_seen) and m -> 'msg' ->> 'type' = 'reaction'
        and m -> 'msg' -> 'reaction' ->> 'message_id' is not null
    ) e
    join public.messages pm on pm.wamid = e.wamid
    order by e.target, e.reactor, e.at desc, e.wamid desc
    on conflict (message_wamid, reactor) do update
      set emoji = excluded.emoji, reacted_at = excluded.reacted_at, reaction_wamid = excluded.reaction_wamid
      where excluded.reacted_at >= r.reacted_at;
  end if;

  if p_payload @? '$.entry[*].changes[*] ? (@.field == "smb_app_state_sync")' then
    -- The app's address book: names per number and phone, the newest event wins.
    insert into wa.app_contacts as a (phone_number_id, wa_id, full_name, first_name, removed, synced_at)
    select distinct on (s.phone_number_id, s.wa_id) s.phone_number_id, s.wa_id,
           case when not s.removed then s.full_name end, case when not s.removed then s.first_name end, s.removed, s.at
    from (
      select c.value -> 'value' -> 'metadata' ->> 'phone_number_id' as phone_number_id,
             wa.digits(st.value -> 'contact' ->> 'phone_number') as wa_id,
             st.value -> 'contact' ->> 'full_name' as full_name, st.value -> 'contact' ->> 'first_name' as first_name,
             st.value ->> 'action' = 'remove' as removed,
             coalesce(wa.unix_time(st.value -> 'metadata' ->> 'timestamp'), p_now) as at
      from jsonb_array_elements(p_payload -> 'entry') e
      cross join lateral jsonb_array_elements(e.value -> 'changes') c
      cross join lateral jsonb_array_elements(coalesce(c.value -> 'value' -> 'state_sync', '[]')) st
      where c.value ->> 'field' = 'smb_app_state_sync' and st.value ->> 'type' = 'contact'
    ) s
    join wa.phone_numbers n on n.phone_number_id = s.phone_number_id
    where s.wa_id is not null
    order by s.phone_number_id, s.wa_id, s.at desc
    on conflict (phone_number_id, wa_id) do update
      set full_name = excluded.full_name, first_name = excluded.first_name, removed = excluded.removed,
          synced_at = excluded.synced_at
      where excluded.synced_at >= a.synced_at;
  end if;
end;
$$;
comment on function wa.apply_message_events(jsonb, jsonb, text[], timestamptz) is
  'Ingest step after the statuses: the business app''s edits and revokes of its messages (outbound rows, '
  'locked in wamid order), reactions of the POST (customer''s and business app''s, by target wamid; newest '
  'wins, an empty or missing emoji removes) and the app''s address book (smb_app_state_sync into '
  'wa.app_contacts, for numbers already known). Caller: wa.ingest_webhook.';

-- ============================================================================================
-- Operator reactions (send-message)
-- ============================================================================================
create function wa.record_operator_reaction()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  insert into public.message_reactions as r (message_wamid, reactor, conversation_id, emoji, reacted_at)
  values (new.body -> 'reaction' ->> 'message_id', 'business', new.conversation_id,
          nullif(new.body -> 'reaction' ->> 'emoji', ''), new.sent_at)
  on conflict (message_wamid, reactor) do update
    set emoji = excluded.emoji, reacted_at = excluded.reacted_at, reaction_wamid = null
    where excluded.reacted_at >= r.reacted_at;
  return null;
end;
$$;
comment on function wa.record_operator_reaction() is
  'AFTER INSERT trigger on public.messages for an operator''s reaction: it shows on the message at once (its '
  'outbound row records the send). Locks only the reaction row, after the conversation (docs/locking.md).';
create trigger messages_record_operator_reaction after insert on public.messages
  for each row when (new.direction = 'outbound' and new.type = 'reaction' and new.sent_by is not null
                     and new.body -> 'reaction' ->> 'message_id' is not null)
  execute function wa.record_operator_reaction();

-- ============================================================================================
-- The agent's side: structured replies, handoff
-- ============================================================================================
create function wa.structured_reply(p_body jsonb)
returns jsonb
language sql
immutable
parallel safe
set search_path = ''
as $$
  -- A tapped reply button or list row, or a template's quick-reply button: the id the agent chose, not text.
  select case
    when p_body -> 'interactive' -> 'button_reply' is not null then jsonb_build_object(
      'kind', 'button_reply', 'id', p_body -> 'interactive' -> 'button_reply' ->> 'id',
      'title', p_body -> 'interactive' -> 'button_reply' ->> 'title')
    when p_body -> 'interactive' -> 'list_reply' is not null then jsonb_strip_nulls(jsonb_build_object(
      'kind', 'list_reply', 'id', p_body -> 'interactive' -> 'list_reply' ->> 'id',
      'title', p_body -> 'interactive' -> 'list_reply' ->> 'title',
      'description', p_body -> 'interactive' -> 'list_reply' ->> 'description'))
    when p_body ->> 'type' = 'button' then jsonb_build_object(
      'kind', 'template_button', 'id', p_body -> 'button' ->> 'payload', 'title', p_body -> 'button' ->> 'text')
  end
$$;
comment on function wa.structured_reply(jsonb) is
  'The structured input of a customer''s button or list choice ({kind, id, title[, description]}), null for '
  'other messages. Caller: wa.agent_context.';

create function wa.request_handoff(p_conversation_id uuid, p_reason text, p_now timestamptz default now())
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_conversation public.conversations;
  v_topic text;
begin
  -- One conversation, nothing after it (docs/locking.md, as pause_bot).
  update public.conversations c
  set bot_paused_until = 'infinity', bot_paused_by = null, handoff_requested_at = p_now,
      handoff_reason = left(p_reason, 500), updated_at = now()
  where c.id = p_conversation_id
  returning c.* into v_conversation;
  if not found then
    raise exception 'no conversation %', p_conversation_id using errcode = 'P0002';
  end if;
  -- Besides the row's own broadcast: an event the frontend can alert on without diffing rows.
  for v_topic in select unnest(wa.owner_topics(v_conversation.team_id, v_conversation.assigned_executive_id)) loop
    perform realtime.send(jsonb_build_object('conversation_id', p_conversation_id, 'reason', p_reason,
                                             'requested_at', p_now), 'handoff', v_topic, true);
  end loop;
end;
$$;
comment on function wa.request_handoff(uuid, text, timestamptz) is
  'The agent asked for a human: pauses the bot until resumed, flags the conversation (handoff_requested_at, '
  'handoff_reason) and broadcasts a `handoff` event to its owners'' topics. Resume (resume_bot) clears the flag '
  'and keeps the history. Caller: buffer-processor.';

revoke all on function wa.conversation_changes(jsonb), wa.stored_status(jsonb),
  wa.wakes_agent(text, text, text, boolean), wa.edit_targets(jsonb, text[], text),
  wa.apply_edits(jsonb, text[], text), wa.after_conversation_phase(jsonb, text[], timestamptz),
  wa.apply_message_events(jsonb, jsonb, text[], timestamptz), wa.record_operator_reaction(),
  wa.structured_reply(jsonb), wa.request_handoff(uuid, text, timestamptz)
  from public, anon, authenticated, service_role;
