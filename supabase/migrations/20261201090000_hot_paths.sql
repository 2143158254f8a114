-- wabase hot paths: the functions every batch and every webhook runs, planned once per connection and linear
-- in the size of a POST. Bodies and results are unchanged except where said.
--
-- Plans: a SQL-language function with a SET clause (every one here pins search_path = '') is never inlined, and
-- Postgres 15 then parses and plans its body on every call, with the parameters unknown (a generic plan). For
-- wa.claim_buffers that plan assumed a third of the buffers due and hash-joined the whole of wa.buffers and
-- wa.buffer_messages on each claim: a claim cost grew with the backlog (5 ms at 10,000 buffers), exactly when
-- a team needs the drain fastest, after an outage. PL/pgSQL caches each statement's plan per connection and
-- keeps a generic one only when it is no worse than those made for the actual values. The claim also names
-- its buffers by primary key (= any (v_due)), which every plan serves by index.
--
-- POST size: wa.ingest_webhook looked each message's sender up by scanning its change's contacts, built the
-- contact map by copying a growing jsonb once per contact, and found each buffer's business number by scanning
-- the appended rows once per buffer: three costs quadratic in the messages of one POST (Meta sends up to
-- 1,000). A 4,000-message POST took 15.8 s; by key and by hash it takes 2.8 s, 1,000 messages 0.9 s.
--
-- Contention: wa.upsert_contact rewrote a returning customer's row on every POST, which locks it until the
-- POST commits, so concurrent POSTs naming the same customers queued behind each other's whole transaction.
-- A contact with nothing new is now only read.

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

create or replace function wa.upsert_contact(p_wa_id text, p_user_id text, p_profile_name text, p_username text)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_id uuid;
begin
  if p_wa_id is null and p_user_id is null then
    raise exception 'a contact needs a wa_id or a user_id' using errcode = '22023';
  end if;
  -- A returning customer with nothing new needs no write, so no row lock: concurrent POSTs that mention the
  -- same customer do not queue behind each other's whole transaction.
  if p_wa_id is not null then
    select c.id into v_id from public.contacts c
    where c.wa_id = p_wa_id and (p_user_id is null or c.user_id = p_user_id)
      and (p_profile_name is null or c.profile_name = p_profile_name)
      and (p_username is null or c.username = p_username);
  else
    select c.id into v_id from public.contacts c
    where c.user_id = p_user_id
      and (p_profile_name is null or c.profile_name = p_profile_name)
      and (p_username is null or c.username = p_username);
  end if;
  if found then
    return v_id;
  end if;
  if p_wa_id is not null then
    insert into public.contacts as c (wa_id, profile_name, username)
    values (p_wa_id, p_profile_name, p_username)
    on conflict (wa_id) do update
      set profile_name = coalesce(excluded.profile_name, c.profile_name),
          username = coalesce(excluded.username, c.username),
          updated_at = now()
    returning c.id into v_id;
    if p_user_id is not null then
      -- Attach the BSUID unless another contact already holds it: a webhook never fails over identity.
      begin
        update public.contacts set user_id = p_user_id
        where id = v_id and user_id is distinct from p_user_id
          and not exists (select from public.contacts o where o.user_id = p_user_id);
      exception when unique_violation then
        null;
      end;
    end if;
  else
    insert into public.contacts as c (user_id, profile_name, username)
    values (p_user_id, p_profile_name, p_username)
    on conflict (user_id) do update
      set profile_name = coalesce(excluded.profile_name, c.profile_name),
          username = coalesce(excluded.username, c.username),
          updated_at = now()
    returning c.id into v_id;
  end if;
  return v_id;
end;
$$;
comment on function wa.upsert_contact(text, text, text, text) is
  'Finds or creates a contact by wa_id (preferred) or BSUID, refreshing its profile name; a contact with '
  'nothing new is only read, never locked. Safe under concurrent calls. Raises 22023 when both ids are null. '
  'Caller: wa.ingest_webhook.';

create or replace function wa.ingest_webhook(p_payload jsonb, p_now timestamptz default now())
returns jsonb
language plpgsql
set search_path = ''
-- Set-returning jsonb functions are estimated at 100 rows each, so nested ones look costly enough to trigger
-- JIT compilation, which takes longer than the whole ingest.
set jit = off
as $$
declare
  v_event_id bigint;
  v_messages jsonb;
  v_fresh jsonb;
  v_new integer := 0;
  v_replaced integer := 0;
  v_duplicate integer := 0;
  v_unattributed integer := 0;
  v_ignored_changes integer := 0;
  v_error_changes integer := 0;
  v_statuses_recorded integer := 0;
  v_statuses_duplicate integer := 0;
  v_statuses_unmatched integer := 0;
  v_statuses_applied integer := 0;
  v_status_wamids text[];
  v_contacts jsonb := '{}'::jsonb;
  v_result jsonb;
begin
  insert into wa.webhook_events (received_at, payload, signature_valid)
  values (p_now, p_payload, true)
  returning id into v_event_id;

  select count(*) - (select count(*) from wa.messages_changes(p_payload)),
         (select count(*) from wa.messages_changes(p_payload) v
          where v.value -> 'messages' is null and v.value -> 'statuses' is null)
  into v_ignored_changes, v_error_changes
  from jsonb_array_elements(p_payload -> 'entry') e
  cross join lateral jsonb_array_elements(e.value -> 'changes') c;

  -- Inbound messages, one entry per wamid (a wamid repeated inside one POST is one message delivered n
  -- times; real content wins over an "unsupported" placeholder), sorted by wamid. Each phase below locks
  -- rows of one table in a global key order, so concurrent overlapping deliveries cannot deadlock.
  with changes as (
    select v.waba_id, v.value, v.n from wa.messages_changes(p_payload) with ordinality v (waba_id, value, n)
  ),
  -- Each change's contacts by wa_id and by BSUID (the first listed wins), joined by hash below: a scan of the
  -- contacts per message would make a 1,000-message POST a million comparisons.
  contacts as (
    select c.n, ct.value as ct, ct.ordinality as position
    from changes c
    cross join lateral jsonb_array_elements(coalesce(c.value -> 'contacts', '[]')) with ordinality ct
  ),
  by_wa_id as (
    select distinct on (k.n, k.ct ->> 'wa_id') k.n, k.ct ->> 'wa_id' as wa_id, k.ct
    from contacts k where k.ct ->> 'wa_id' is not null
    order by k.n, k.ct ->> 'wa_id', k.position
  ),
  by_user_id as (
    select distinct on (k.n, k.ct ->> 'user_id') k.n, k.ct ->> 'user_id' as user_id, k.ct
    from contacts k where k.ct ->> 'user_id' is not null
    order by k.n, k.ct ->> 'user_id', k.position
  ),
  raw as (
    select m.value as msg,
           c.value -> 'metadata' as metadata,
           c.waba_id,
           coalesce(w.ct, u.ct) as sender
    from changes c
    cross join lateral jsonb_array_elements(coalesce(c.value -> 'messages', '[]')) m
    left join by_wa_id w on w.n = c.n and w.wa_id = m.value ->> 'from'
    left join by_user_id u on u.n = c.n and u.user_id = m.value ->> 'from_user_id'
  ),
  attributed as (
    select r.*,
           coalesce(r.msg ->> 'from', r.sender ->> 'wa_id') as wa_id,
           coalesce(r.msg ->> 'from_user_id', r.sender ->> 'user_id') as user_id
    from raw r
  ),
  per_wamid as (
    select a.msg ->> 'id' as wamid,
           count(*) as deliveries,
           (array_agg(a.msg order by (a.msg ->> 'type' = 'unsupported')))[1] as msg,
           (array_agg(a.metadata))[1] as metadata,
           (array_agg(a.waba_id))[1] as waba_id,
           (array_agg(a.wa_id))[1] as wa_id,
           (array_agg(a.user_id))[1] as user_id,
           (array_agg(a.sender -> 'profile' ->> 'name'))[1] as profile_name,
           (array_agg(a.sender -> 'profile' ->> 'username'))[1] as username
    from attributed a
    where a.wa_id is not null or a.user_id is not null
    group by a.msg ->> 'id'
  )
  select coalesce(jsonb_agg(to_jsonb(p) order by p.wamid), '[]'),
         (select count(*) from attributed a where a.wa_id is null and a.user_id is null)
  into v_messages, v_unattributed
  from per_wamid p;

  -- Phase 1: receipts. Insert, or bump the delivery count: one atomic statement, so concurrent duplicates
  -- serialise on the row and exactly one of them sees "inserted".
  with registered as (
    insert into wa.inbound_receipts as r (wamid, first_seen_at, last_seen_at, delivery_count)
    select m.wamid, p_now, p_now, m.deliveries
    from jsonb_to_recordset(v_messages) as m (wamid text, deliveries integer)
    order by m.wamid
    on conflict (wamid) do update
      set last_seen_at = excluded.last_seen_at,
          delivery_count = r.delivery_count + excluded.delivery_count
    returning r.wamid, (r.xmax = 0) as inserted, r.delivery_count
  ),
  -- An "unsupported" placeholder (131060, message unavailable) is replaced when the real content arrives
  -- under the same wamid; the replacement is buffered then, not counted as a duplicate.
  replaced as (
    update public.messages pm
    set type = m.msg ->> 'type', body = m.msg, content_text = wa.message_text(m.msg)
    from registered g
    join jsonb_to_recordset(v_messages) as m (wamid text, msg jsonb) on m.wamid = g.wamid
    where not g.inserted and pm.wamid = g.wamid and pm.direction = 'inbound'
      and pm.type = 'unsupported' and m.msg ->> 'type' <> 'unsupported'
    returning pm.wamid
  )
  select coalesce(jsonb_agg(m order by m ->> 'wamid'), '[]'),
         (select count(*) from registered where inserted),
         (select count(*) from replaced),
         (select count(*) from registered where not inserted) - (select count(*) from replaced)
  into v_fresh, v_new, v_replaced, v_duplicate
  from jsonb_array_elements(v_messages) m
  where m ->> 'wamid' in (select wamid from registered where inserted union all select wamid from replaced);

  -- Duplicates of the same message inside this POST are duplicates too.
  v_duplicate := v_duplicate + (select coalesce(sum((m ->> 'deliveries')::integer - 1), 0)
                                from jsonb_array_elements(v_messages) m);

  if jsonb_array_length(v_fresh) > 0 then
    -- Phase 2: business numbers, then contacts, in key order.
    insert into wa.phone_numbers (phone_number_id, waba_id, display_phone_number)
    select distinct on (m -> 'metadata' ->> 'phone_number_id')
           m -> 'metadata' ->> 'phone_number_id', m ->> 'waba_id', m -> 'metadata' ->> 'display_phone_number'
    from jsonb_array_elements(v_fresh) m
    order by m -> 'metadata' ->> 'phone_number_id'
    on conflict (phone_number_id) do nothing;

    -- Upserted one by one in key order (the subquery's order is the call order), collected in one object.
    select coalesce(jsonb_object_agg(coalesce(s.wa_id, '') || '|' || coalesce(s.user_id, ''),
                                     wa.upsert_contact(s.wa_id, s.user_id, s.profile_name, s.username)), '{}')
    into v_contacts
    from (
      select distinct on (m ->> 'wa_id', m ->> 'user_id')
             m ->> 'wa_id' as wa_id, m ->> 'user_id' as user_id,
             m ->> 'profile_name' as profile_name, m ->> 'username' as username
      from jsonb_array_elements(v_fresh) m
      order by m ->> 'wa_id', m ->> 'user_id'
    ) s;
  end if;

  -- Phases 3-5: conversations, messages, buffers, for first deliveries only (replacements already have
  -- their rows); then the buffer append for first deliveries and replacements alike.
  with fresh as (
    select m ->> 'wamid' as wamid, m -> 'msg' as msg, m -> 'metadata' ->> 'phone_number_id' as phone_number_id,
           (v_contacts ->> (coalesce(m ->> 'wa_id', '') || '|' || coalesce(m ->> 'user_id', '')))::uuid as contact_id,
           wa.unix_time(m -> 'msg' ->> 'timestamp') as sent_at,
           exists (select from public.messages pm where pm.wamid = m ->> 'wamid') as replacement
    from jsonb_array_elements(v_fresh) m
  ),
  conversation_times as (
    select f.phone_number_id, f.contact_id, max(f.sent_at) as last_at
    from fresh f
    where not f.replacement
    group by f.phone_number_id, f.contact_id
  ),
  conversations as (
    insert into public.conversations as c (phone_number_id, contact_id, last_message_at, last_inbound_at)
    select t.phone_number_id, t.contact_id, t.last_at, t.last_at
    from conversation_times t
    order by t.phone_number_id, t.contact_id
    on conflict (phone_number_id, contact_id) do update
      set last_message_at = greatest(c.last_message_at, excluded.last_message_at),
          last_inbound_at = greatest(c.last_inbound_at, excluded.last_inbound_at),
          updated_at = now()
    returning c.id, c.phone_number_id, c.contact_id
  ),
  inserted as (
    insert into public.messages (conversation_id, wamid, direction, type, body, content_text, context_wamid,
                                 sent_at, received_at)
    select c.id, f.wamid, 'inbound', f.msg ->> 'type', f.msg, wa.message_text(f.msg), f.msg -> 'context' ->> 'id',
           f.sent_at, p_now
    from fresh f
    join conversations c on c.phone_number_id = f.phone_number_id and c.contact_id = f.contact_id
    where not f.replacement
    order by f.wamid
    -- Only a receipt purged by retention and then redelivered could meet an existing row: keep that row.
    on conflict (wamid) do nothing
    returning id, conversation_id, type, wamid
  ),
  readable as (
    select i.id as message_id, i.conversation_id, c.phone_number_id, i.wamid
    from inserted i join conversations c on c.id = i.conversation_id
    where wa.is_bot_readable(i.type)
    union all
    select pm.id, pm.conversation_id, pc.phone_number_id, pm.wamid
    from fresh f
    join public.messages pm on pm.wamid = f.wamid
    join public.conversations pc on pc.id = pm.conversation_id
    where f.replacement and wa.is_bot_readable(pm.type)
  ),
  appended as (
    insert into wa.buffer_messages (conversation_id, message_id, appended_at)
    select r.conversation_id, r.message_id, p_now from readable r order by r.wamid
    on conflict (message_id) do nothing
    returning conversation_id
  ),
  per_buffer as (
    select a.conversation_id, count(*)::integer as added, r.phone_number_id
    from appended a
    join (select distinct r.conversation_id, r.phone_number_id from readable r) r
      on r.conversation_id = a.conversation_id
    group by a.conversation_id, r.phone_number_id
  )
  insert into wa.buffers as b (conversation_id, phone_number_id, first_message_at, last_message_at, message_count,
                               due_at)
  select pb.conversation_id, pb.phone_number_id, p_now, p_now, pb.added,
         wa.buffer_due_at(p_now, p_now, pb.added, n.buffer_quiet_period, n.buffer_max_wait, n.buffer_max_messages)
  from per_buffer pb
  join wa.phone_numbers n on n.phone_number_id = pb.phone_number_id
  order by pb.conversation_id
  on conflict (conversation_id) do update
    set last_message_at = excluded.last_message_at,
        message_count = b.message_count + excluded.message_count,
        due_at = (select wa.buffer_due_at(b.first_message_at, excluded.last_message_at,
                                          b.message_count + excluded.message_count,
                                          n.buffer_quiet_period, n.buffer_max_wait, n.buffer_max_messages)
                  from wa.phone_numbers n where n.phone_number_id = b.phone_number_id);

  -- Phase 6: statuses. Every (wamid, status) event is recorded once (redeliveries counted), then the
  -- messages' statuses are derived from all their recorded events.
  with events as (
    select s.value as st
    from wa.messages_changes(p_payload) v
    cross join lateral jsonb_array_elements(coalesce(v.value -> 'statuses', '[]')) s
  ),
  distinct_events as (
    select st ->> 'id' as wamid, st ->> 'status' as status, count(*)::integer as deliveries,
           (array_agg(st))[1] as payload
    from events
    group by st ->> 'id', st ->> 'status'
  ),
  recorded as (
    insert into wa.message_statuses as s (wamid, status, status_at, payload, first_seen_at, last_seen_at,
                                          delivery_count)
    select d.wamid, d.status, wa.unix_time(d.payload ->> 'timestamp'), d.payload, p_now, p_now, d.deliveries
    from distinct_events d
    order by d.wamid, d.status
    on conflict (wamid, status) do update
      set last_seen_at = excluded.last_seen_at,
          delivery_count = s.delivery_count + excluded.delivery_count
    returning s.wamid, (s.xmax = 0) as inserted
  )
  select coalesce(array_agg(distinct r.wamid), '{}'),
         count(*) filter (where r.inserted),
         count(*) filter (where not r.inserted)
           + coalesce((select sum(d.deliveries - 1) from distinct_events d), 0),
         count(*) filter (where not exists (select from public.messages pm where pm.wamid = r.wamid))
  into v_status_wamids, v_statuses_recorded, v_statuses_duplicate, v_statuses_unmatched
  from recorded r;

  if cardinality(v_status_wamids) > 0 then
    v_statuses_applied := wa.apply_message_statuses(v_status_wamids);
  end if;

  v_result := jsonb_build_object(
    'event_id', v_event_id,
    'new', v_new,
    'replaced', v_replaced,
    'duplicate', v_duplicate,
    'unattributed', v_unattributed,
    'statuses_recorded', v_statuses_recorded,
    'statuses_duplicate', v_statuses_duplicate,
    'statuses_unmatched', v_statuses_unmatched,
    'statuses_applied', v_statuses_applied,
    'ignored', v_ignored_changes + v_unattributed,
    'errors', v_error_changes);
  update wa.webhook_events set result = v_result where id = v_event_id;
  return v_result;
end;
$$;
comment on function wa.ingest_webhook(jsonb, timestamptz) is
  'Stores one validated Cloud API webhook POST in one transaction: logs it raw, registers each inbound wamid '
  'atomically (insert or bump its delivery count), upserts business numbers, contacts and conversations, stores '
  'new messages (replacing "unsupported" placeholders), appends bot-readable ones to their conversation buffer '
  'exactly once, records status events and advances outbound statuses monotonically. Returns counts: new, '
  'replaced, duplicate, unattributed, statuses_recorded/duplicate/unmatched/applied, ignored, errors. '
  'Concurrent duplicates are safe without retries. Caller: whatsapp-webhook (service connection).';
