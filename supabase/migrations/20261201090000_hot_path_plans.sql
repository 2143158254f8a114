-- wabase hot paths, planned once per connection: the functions every batch and every webhook call become
-- PL/pgSQL, bodies and results unchanged.
--
-- Why: a SQL-language function with a SET clause (every one here pins search_path = '') is never inlined, and
-- Postgres 15 then parses and plans its body on every call, with the parameters unknown (a generic plan). For
-- wa.claim_buffers that plan assumed a third of the buffers due and hash-joined the whole of wa.buffers and
-- wa.buffer_messages on each claim: a claim cost grew with the backlog (5 ms at 10,000 buffers), exactly when
-- a team needs the drain fastest, after an outage. PL/pgSQL caches each statement's plan per connection and
-- keeps a generic one only when it is no worse than those made for the actual values. The claim also names
-- its buffers by primary key (= any (array(...))), which every plan serves by index.

create or replace function wa.claim_buffers(
  p_worker text, p_limit integer default 1, p_lease interval default interval '60 seconds',
  p_max_attempts integer default 5, p_now timestamptz default now()
)
returns table (conversation_id uuid, fence bigint, first_seq bigint, up_to_seq bigint, message_count integer,
               attempts integer)
language plpgsql
set search_path = ''
as $$
#variable_conflict use_column
declare
  v_due uuid[];
begin
  v_due := array(
    select b.conversation_id
    from wa.buffers b
    where b.due_at <= p_now
      and (b.lease_until is null or (b.lease_until <= p_now and b.attempts < p_max_attempts))
    order by b.due_at
    for update skip locked
    limit p_limit);
  if cardinality(v_due) = 0 then
    return;
  end if;
  return query
  with claimed as (
    update wa.buffers b
    set fence = nextval('wa.buffer_fence_seq'),
        lease_until = p_now + p_lease,
        claimed_by = p_worker,
        claimed_at = p_now,
        attempts = b.attempts + 1,
        -- A lease still set here expired: its worker died or hung without completing or failing.
        errors = case when b.lease_until is null then b.errors
                      else b.errors || jsonb_build_array(jsonb_build_object(
                        'at', p_now, 'fence', b.fence, 'attempt', b.attempts,
                        'error', 'lease expired: worker ' || coalesce(b.claimed_by, '?') || ' lost the batch'))
                 end
    where b.conversation_id = any (v_due)
    returning b.conversation_id, b.fence, b.attempts
  ),
  marked as (
    update wa.buffer_messages m
    set fence = c.fence
    from claimed c
    where m.conversation_id = any (v_due) and m.conversation_id = c.conversation_id
    returning m.conversation_id, m.seq
  )
  select c.conversation_id, c.fence, min(m.seq), max(m.seq), count(m.seq)::integer, c.attempts
  from claimed c
  left join marked m on m.conversation_id = c.conversation_id
  group by c.conversation_id, c.fence, c.attempts;
end;
$$;
comment on function wa.claim_buffers(text, integer, interval, integer, timestamptz) is
  'Claims up to p_limit due buffers for p_worker, atomically under any number of concurrent workers (FOR UPDATE '
  'SKIP LOCKED): each gets a lease, a new fencing token and its batch (every message visible now, first_seq .. '
  'up_to_seq). An expired lease is claimable again unless its batch used max_attempts (the sweep dead-letters '
  'those). Cost independent of the backlog: every step goes by index. Caller: buffer-processor.';

create or replace function wa.batch_reply_key(p_conversation_id uuid, p_fence bigint)
returns text
language plpgsql
stable
set search_path = ''
as $$
begin
  -- Keyed by the batch's first message, not by the claim: a re-claim after a crash (new fence, maybe more
  -- messages) finds the reply already written for the same burst instead of answering it again.
  return (select 'agent-reply:' || p_conversation_id || ':' || min(m.seq)
          from wa.buffer_messages m
          where m.conversation_id = p_conversation_id and m.fence = p_fence);
end;
$$;
comment on function wa.batch_reply_key(uuid, bigint) is
  'Idempotency key of the agent reply to a batch: conversation and first buffered message. Null for an empty '
  'batch. Caller: wa.agent_context, wa.begin_agent_reply.';

create or replace function wa.agent_context(p_fence bigint, p_history integer default 20)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
  v_conversation_id uuid;
  v_reply_key text;
begin
  select b.conversation_id into v_conversation_id from wa.buffers b where b.fence = p_fence;
  if not found then
    return null;
  end if;
  v_reply_key := wa.batch_reply_key(v_conversation_id, p_fence);
  return (
    with batch as (
      select m.seq, pm.*
      from wa.buffer_messages m
      join public.messages pm on pm.id = m.message_id
      where m.conversation_id = v_conversation_id and m.fence = p_fence
    ),
    history as (
      select pm.*
      from public.messages pm
      where pm.conversation_id = v_conversation_id and pm.id not in (select id from batch)
      order by pm.sent_at desc
      limit p_history
    )
    select jsonb_build_object(
      'reply_key', v_reply_key,
      'conversation', jsonb_build_object('id', c.id, 'phone_number_id', c.phone_number_id,
                                         'display_phone_number', n.display_phone_number),
      'contact', jsonb_strip_nulls(jsonb_build_object('id', k.id, 'wa_id', k.wa_id, 'user_id', k.user_id,
                                                      'name', k.profile_name)),
      'batch', jsonb_build_object(
        'fence', p_fence,
        'first_seq', (select min(seq) from batch),
        'up_to_seq', (select max(seq) from batch),
        'messages', (select coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
            'id', bm.id, 'wamid', bm.wamid, 'type', bm.type, 'text', bm.content_text, 'sent_at', bm.sent_at,
            'context_wamid', bm.context_wamid,
            'media', case when bm.type in ('image', 'audio', 'video', 'document', 'sticker') then jsonb_strip_nulls(
                       jsonb_build_object('id', bm.body -> bm.type ->> 'id', 'mime_type', bm.body -> bm.type ->> 'mime_type',
                                          'caption', bm.body -> bm.type ->> 'caption',
                                          'filename', bm.body -> bm.type ->> 'filename')) end
          )) order by bm.seq), '[]'::jsonb) from batch bm)),
      'history', (select coalesce(jsonb_agg(jsonb_build_object('direction', h.direction, 'type', h.type,
                                                                'text', h.content_text, 'sent_at', h.sent_at)
                                            order by h.sent_at), '[]'::jsonb) from history h),
      'existing_reply', (select jsonb_build_object('message_id', pm.id, 'status', pm.status, 'body', pm.body,
                                                   'up_to_seq', r.up_to_seq)
                         from wa.agent_replies r join public.messages pm on pm.id = r.message_id
                         where r.idempotency_key = v_reply_key)
    )
    from public.conversations c
    join public.contacts k on k.id = c.contact_id
    join wa.phone_numbers n on n.phone_number_id = c.phone_number_id
    where c.id = v_conversation_id);
end;
$$;
comment on function wa.agent_context(bigint, integer) is
  'Everything the processor needs for one claimed batch, in one round trip: conversation, contact (wa_id and/or '
  'BSUID to send to), the batch''s messages with media metadata (never the media), the last p_history other '
  'messages, and the reply already written for this burst, if any. Null for a stale fence. Caller: '
  'buffer-processor.';

create or replace function wa.get_chat_session(p_conversation_id uuid)
returns table (state text, data jsonb, version bigint, updated_at timestamptz, expires_at timestamptz)
language plpgsql
stable
set search_path = ''
as $$
begin
  return query
  select s.state, s.data, s.version, s.updated_at, s.expires_at
  from wa.chat_sessions s where s.conversation_id = p_conversation_id;
  if not found then
    return query select 'start'::text, '{}'::jsonb, 0::bigint, null::timestamptz, null::timestamptz;
  end if;
end;
$$;
comment on function wa.get_chat_session(uuid) is
  'The session of a conversation; a conversation without one reads as state start, empty data, version 0 (the '
  'version a first write must name). Caller: buffer-processor and other session writers.';

create or replace function wa.agent_context_with_session(p_fence bigint, p_history integer default 20)
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
                   where c.id = v_conversation_id));
end;
$$;
comment on function wa.agent_context_with_session(bigint, integer) is
  'wa.agent_context plus the conversation''s chat session (state, data, version; version 0 when none) and whether '
  'the bot is paused there, still one round trip. Null for a stale fence. Caller: buffer-processor.';

create or replace function wa.note_batch_outcome(p_conversation_id uuid, p_outcome text, p_now timestamptz default now())
returns void
language plpgsql
set search_path = ''
as $$
begin
  update public.conversations set bot_last_activity_at = p_now where id = p_conversation_id;
  insert into wa.bot_daily_stats as s (day, phone_number_id, outcome, batches)
  select (p_now at time zone 'utc')::date, c.phone_number_id, p_outcome, 1
  from public.conversations c where c.id = p_conversation_id
  on conflict (day, phone_number_id, outcome) do update set batches = s.batches + 1;
end;
$$;
comment on function wa.note_batch_outcome(uuid, text, timestamptz) is
  'Non-critical bookkeeping after a batch: the conversation''s bot activity stamp and the daily counters. '
  'Called with settled semantics: its failure is logged and counted, never fails or repeats a batch. Caller: '
  'buffer-processor.';

create or replace function wa.apply_message_statuses(p_wamids text[])
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_changed integer;
begin
  with best as (
    select s.wamid,
           (array_agg(s.status order by wa.status_rank(s.status) desc nulls last))[1] as status,
           (array_agg(s.status_at order by wa.status_rank(s.status) desc nulls last))[1] as status_at,
           (array_agg(s.payload -> 'errors' order by s.status_at desc) filter (where s.status = 'failed'))[1] as error
    from wa.message_statuses s
    where s.wamid = any (p_wamids)
    group by s.wamid
  ),
  changed as (
    update public.messages m
    set status = case when wa.status_rank(b.status) > wa.status_rank(m.status) then b.status else m.status end,
        status_at = case when wa.status_rank(b.status) > wa.status_rank(m.status) then b.status_at
                         else m.status_at end,
        error = coalesce(b.error, m.error)
    from best b
    -- The row as it was before this update, to count status changes apart from error-only updates.
    join public.messages prior on prior.wamid = b.wamid
    where m.wamid = b.wamid
      and m.direction = 'outbound'
      and (wa.status_rank(b.status) > wa.status_rank(m.status)
           or b.error is not null and b.error is distinct from m.error)
    returning wa.status_rank(m.status) > wa.status_rank(prior.status) as status_changed
  )
  select count(*) filter (where status_changed)::integer into v_changed from changed;
  return v_changed;
end;
$$;
comment on function wa.apply_message_statuses(text[]) is
  'Derives the status of these outbound messages from every status event recorded for them: the highest rank '
  'wins, so arrival order never matters and a late lower status never regresses a higher one; a failure''s '
  'errors are kept even when delivery wins. Returns how many messages changed. Called by the ingest and by '
  'whatever records a wamid on an outbound message (its earlier statuses then apply).';
