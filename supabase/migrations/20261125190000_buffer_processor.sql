-- wabase buffer processor: exactly one reply per burst. Claims with SKIP LOCKED, leases and fencing tokens;
-- complete removes only what a batch claimed; fail backs off with jitter and dead-letters after max attempts;
-- the agent reply is written under an idempotency key before it is sent; pg_cron sweeps orphans, purges old
-- data and (where pg_net exists) invokes the buffer-processor function.

-- ============================================================================================
-- Claim state
-- ============================================================================================
create sequence wa.buffer_fence_seq;
comment on sequence wa.buffer_fence_seq is 'Fencing tokens: every claim gets a new, larger one.';

alter table wa.buffers
  add column fence bigint,
  add column lease_until timestamptz,
  add column claimed_by text,
  add column claimed_at timestamptz,
  -- Claims of the current batch (reset when a batch completes): a batch that keeps crashing or failing is
  -- dead-lettered instead of being retried forever.
  add column attempts integer not null default 0,
  add column errors jsonb not null default '[]'::jsonb,
  -- Set by a failure's backoff: new messages may not make the buffer due before this.
  add column retry_not_before timestamptz;
create unique index buffers_fence_key on wa.buffers (fence);
-- Only leased buffers (one per batch in flight): finding expired leases never scans the backlog.
create index buffers_lease_until_idx on wa.buffers (lease_until) where lease_until is not null;

create function wa.keep_backoff()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  -- The ingest re-arms due_at from the quiet-period rules on every new message; during a backoff that would
  -- retry early (against a Retry-After, or a service that is down).
  if new.retry_not_before is not null and new.due_at < new.retry_not_before then
    new.due_at := new.retry_not_before;
  end if;
  return new;
end;
$$;
comment on function wa.keep_backoff() is
  'Trigger on wa.buffers: a buffer backing off after a failure never becomes due before retry_not_before.';
revoke all on function wa.keep_backoff() from public, anon, authenticated, service_role;
-- The WHEN clause keeps the function call off every update of a buffer that is not backing off.
create trigger buffers_keep_backoff before update of due_at on wa.buffers
  for each row when (new.retry_not_before is not null) execute function wa.keep_backoff();

-- The claim that took a message into its batch. Only messages visible at claim time are marked, so one
-- appended by a transaction still in flight stays unmarked and can never be completed unanswered.
-- Not indexed: every lookup by fence also names the conversation (buffer_messages_conversation_seq_idx), and
-- without an index on it the claim's marking and the release's clearing are HOT updates, which the fill factor
-- leaves room for on the page (no new entry in the table's three indexes per claimed message).
alter table wa.buffer_messages add column fence bigint;
alter table wa.buffer_messages set (fillfactor = 70);

-- Outbound rows are written before the send under a key derived from what they answer.
alter table public.messages add column idempotency_key text unique;

-- The agent reply that answers this message, stamped when the reply is written: any later claim holding the
-- message (after a crash, with more messages, or with an earlier one whose transaction committed late) finds
-- that reply under this key instead of writing a second one.
alter table wa.buffer_messages add column reply_key text;

create table wa.agent_replies (
  idempotency_key text primary key,
  conversation_id uuid not null references public.conversations (id) on delete cascade,
  fence bigint not null,
  -- The reply answers the conversation's buffered messages up to this sequence number.
  up_to_seq bigint not null,
  message_id uuid not null unique references public.messages (id) on delete cascade,
  created_at timestamptz not null default now()
);
comment on table wa.agent_replies is
  'The agent reply written for a batch, before it is sent: at most one per batch, whatever crashes or races.';

create table wa.dead_letters (
  id bigint generated always as identity primary key,
  conversation_id uuid not null references public.conversations (id) on delete cascade,
  fence bigint not null,
  attempts integer not null,
  -- Every failure of the batch: [{at, fence, attempt, error}].
  errors jsonb not null,
  -- The batch's messages: [{seq, message_id, wamid, appended_at}]; the messages themselves stay stored.
  messages jsonb not null,
  created_at timestamptz not null default now()
);
create index dead_letters_created_at_idx on wa.dead_letters (created_at);
comment on table wa.dead_letters is 'Batches that failed max_attempts times, with their error history and messages.';

create table wa.job_runs (
  id bigint generated always as identity primary key,
  job text not null,
  ran_at timestamptz not null default now(),
  result jsonb not null
);
create index job_runs_job_ran_at_idx on wa.job_runs (job, ran_at desc);
comment on table wa.job_runs is 'What each scheduled job found and did (orphan sweep, retention), for health.';

create table wa.circuit_breakers (
  name text primary key,
  state text not null check (state in ('closed', 'open', 'half_open', 'isolated')),
  -- cockatiel's serialised breaker, so a new isolate or worker starts from the last known state.
  snapshot jsonb,
  updated_at timestamptz not null default now()
);
comment on table wa.circuit_breakers is 'Last state of each outbound circuit breaker (agent, graph), for health.';

-- ============================================================================================
-- Wake-ups: a worker LISTENs and sleeps until the earliest due time it was told about
-- ============================================================================================
create function wa.notify_buffer_due()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_due timestamptz;
begin
  select min(c.due_at) into v_due from changed c where c.lease_until is null;
  if v_due is not null then
    perform pg_notify('wa_buffer_due', (extract(epoch from v_due) * 1000)::bigint::text);
  end if;
  return null;
end;
$$;
comment on function wa.notify_buffer_due() is
  'Statement trigger on wa.buffers inserts: NOTIFY wa_buffer_due with the earliest due time (epoch ms) of the '
  'buffers the statement created, so a LISTENing worker re-plans its sleep.';
revoke all on function wa.notify_buffer_due() from public, anon, authenticated, service_role;

create trigger buffers_notify_due_on_insert after insert on wa.buffers
  referencing new table as changed for each statement execute function wa.notify_buffer_due();

-- An update tells a worker something only when it leaves a buffer unclaimed with a due time the worker has not
-- seen: a batch released or re-armed, or a due time moved earlier. A due time moved later (every message that
-- joins a waiting buffer: the quiet period starts again) is not news: a worker that wakes at the earlier time
-- finds nothing due and sleeps until the next one; a NOTIFY per message would make every ingest commit take
-- Postgres' global notification lock (about 1 ms a delivery at 16 in flight, measured for issue 23). A row trigger with that WHEN clause costs a claim
-- (and every other update) nothing, where a statement trigger would capture a transition table and run on
-- every claim to find no unclaimed row (about a tenth of a bare claim, measured for issue 23). No table is read,
-- so no search_path is pinned: pg_notify and the rest are pg_catalog's, always searched first.
create function wa.notify_buffer_rearmed()
returns trigger
language plpgsql
as $$
begin
  perform pg_notify('wa_buffer_due', (extract(epoch from new.due_at) * 1000)::bigint::text);
  return null;
end;
$$;
comment on function wa.notify_buffer_rearmed() is
  'Row trigger on wa.buffers updates that leave a buffer unclaimed with a new, earlier due time (its WHEN clause): '
  'NOTIFY wa_buffer_due with that due time (epoch ms), so a LISTENing worker re-plans its sleep.';
revoke all on function wa.notify_buffer_rearmed() from public, anon, authenticated, service_role;
create trigger buffers_notify_due_on_update after update on wa.buffers
  for each row when (new.lease_until is null
                     and (old.lease_until is not null or new.due_at < old.due_at))
  execute function wa.notify_buffer_rearmed();

-- ============================================================================================
-- Claim, complete, fail
-- ============================================================================================
create function wa.batch_exhausted(p_buffer wa.buffers)
returns boolean
language sql
stable
set search_path = ''
as $$
  select p_buffer.attempts >= n.buffer_max_attempts
  from wa.phone_numbers n where n.phone_number_id = p_buffer.phone_number_id
$$;
comment on function wa.batch_exhausted(wa.buffers) is
  'Whether the buffer''s current batch used its business number''s buffer_max_attempts: the one rule the claim, '
  'fail and the orphan sweep apply.';

create function wa.lost_lease_error(p_buffer wa.buffers, p_now timestamptz)
returns jsonb
language sql
immutable
set search_path = ''
as $$
  select jsonb_build_object(
    'at', p_now, 'fence', p_buffer.fence, 'attempt', p_buffer.attempts,
    'error', 'lease expired: worker ' || coalesce(p_buffer.claimed_by, '?') || ' lost the batch')
$$;
comment on function wa.lost_lease_error(wa.buffers, timestamptz) is
  'The error-history entry of a claim whose lease expired: its worker died or hung without completing or failing.';

-- Hot functions here and in the other capabilities are PL/pgSQL rather than SQL: a SQL-language function with
-- a SET clause (every one pins search_path = '') is never inlined, and Postgres 15 then plans its body on every
-- call with the parameters unknown. For the claim that generic plan assumed a third of the buffers due and
-- hash-joined all of wa.buffers and wa.buffer_messages: a claim cost grew with the backlog (5 ms at 10,000
-- buffers), exactly when a team needs the drain fastest, after an outage. PL/pgSQL caches each statement's plan
-- per connection and keeps a generic one only when it is no worse. The claim names its buffers by primary key
-- (= any of the array of due ids), which every plan serves by index. Those cached plans are generic from the first call
-- (plan_cache_mode): left to choose, PL/pgSQL planned every statement again on every call for parameters it
-- could not tell apart (a quarter of a batch-1 claim and complete's CPU, measured with perf for issue 23), while the generic plans
-- are the same index plans whatever the backlog (the due and lost-lease scans are ordered by their index).
create function wa.claim_buffers(
  p_worker text, p_limit integer default 1, p_lease interval default interval '60 seconds',
  p_now timestamptz default now()
)
returns table (conversation_id uuid, fence bigint, first_seq bigint, up_to_seq bigint, message_count integer,
               attempts integer)
language plpgsql
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
declare
  v_lost wa.buffers;
begin
  -- A lease that ran out on the batch's last attempt is dead-lettered by the next claim, not left to the sweep:
  -- until then the buffer would be due yet unclaimable (a worker planning its wake-up on it would spin) while
  -- the customer's new messages kept joining it. Messages outside the batch are re-armed, claimable below.
  for v_lost in
    select * from wa.buffers b
    where b.lease_until <= p_now and wa.batch_exhausted(b)
    order by b.lease_until
    for update skip locked
  loop
    perform wa.dead_letter_batch(v_lost, v_lost.errors || jsonb_build_array(wa.lost_lease_error(v_lost, p_now)));
  end loop;
  -- One statement: picking, claiming, marking and counting are one plan to start instead of three.
  return query
  with due as (
    select array(
      select b.conversation_id
      from wa.buffers b
      where b.due_at <= p_now
        and (b.lease_until is null or (b.lease_until <= p_now and not wa.batch_exhausted(b)))
      order by b.due_at
      for update skip locked
      limit p_limit) as ids
  ),
  claimed as (
    update wa.buffers b
    set fence = nextval('wa.buffer_fence_seq'),
        lease_until = p_now + p_lease,
        claimed_by = p_worker,
        claimed_at = p_now,
        attempts = b.attempts + 1,
        -- A lease still set here expired: its worker died or hung without completing or failing.
        errors = case when b.lease_until is null then b.errors
                      else b.errors || jsonb_build_array(wa.lost_lease_error(b, p_now)) end
    where b.conversation_id = any ((select d.ids from due d)::uuid[])
    returning b.conversation_id, b.fence, b.attempts
  ),
  marked as (
    update wa.buffer_messages m
    set fence = c.fence
    from claimed c
    where m.conversation_id = any ((select d.ids from due d)::uuid[]) and m.conversation_id = c.conversation_id
    returning m.conversation_id, m.seq
  ),
  -- For ops_metrics: counted here, in the one statement that claims, rather than by a trigger comparing
  -- transition tables on every update of wa.buffers (a seventh of a claim's time, measured for issue 23).
  counted as (
    insert into wa.ops_events (kind, n) select 'claim', count(*) from claimed having count(*) > 0
  )
  -- Each claim's own messages by a lateral aggregate: no hash join and hash aggregate to build per call.
  select c.conversation_id, c.fence, s.first_seq, s.up_to_seq, s.message_count, c.attempts
  from claimed c
  cross join lateral (
    select min(m.seq), max(m.seq), count(m.seq)::integer from marked m where m.conversation_id = c.conversation_id
  ) s (first_seq, up_to_seq, message_count);
end;
$$;
comment on function wa.claim_buffers(text, integer, interval, timestamptz) is
  'Claims up to p_limit due buffers for p_worker, atomically under any number of concurrent workers (FOR UPDATE '
  'SKIP LOCKED): each gets a lease, a new fencing token and its batch (every message visible now, first_seq .. '
  'up_to_seq). An expired lease is claimable again, unless its batch used its number''s buffer_max_attempts: '
  'then the claim dead-letters that batch first (messages outside it stay, re-armed). Cost independent of the '
  'backlog: every step goes by index. Counts the claims for ops_metrics. Caller: buffer-processor.';

create function wa.next_claim_at()
returns timestamptz
language sql
stable
set search_path = ''
as $$
  -- A leased buffer is acted on when its lease runs out: claimed again, or its exhausted batch dead-lettered.
  select min(greatest(b.due_at, coalesce(b.lease_until, b.due_at))) from wa.buffers b
$$;
comment on function wa.next_claim_at() is
  'The earliest time wa.claim_buffers could act on a buffer (claim it, or dead-letter a batch whose lease ran '
  'out on its last attempt); null when no buffer waits. A time in the past means a claim now acts, so a worker '
  'sleeping until then never spins. Caller: local/buffer-worker.ts.';

create function wa.locked_buffer(p_fence bigint)
returns wa.buffers
language plpgsql
set search_path = ''
as $$
declare
  v_buffer wa.buffers;
begin
  select * into v_buffer from wa.buffers b where b.fence = p_fence for update;
  if not found then
    raise exception 'stale fence %: the batch was re-claimed or already finished', p_fence using errcode = 'P0410';
  end if;
  return v_buffer;
end;
$$;
comment on function wa.locked_buffer(bigint) is
  'The buffer whose current claim holds p_fence, locked for update; raises P0410 (stale fence) when the batch '
  'was re-claimed by another worker or already finished. Caller: the batch functions below.';

create function wa.rearm_buffer(p_conversation_id uuid)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_left integer;
  v_first timestamptz;
  v_last timestamptz;
begin
  -- Most batches leave nothing behind: then the buffer goes in one statement, without counting first.
  delete from wa.buffers b
  where b.conversation_id = p_conversation_id
    and not exists (select from wa.buffer_messages m where m.conversation_id = p_conversation_id);
  if found then
    return 0;
  end if;
  select count(*), min(m.appended_at), max(m.appended_at) into v_left, v_first, v_last
  from wa.buffer_messages m where m.conversation_id = p_conversation_id;
  if v_left = 0 then
    delete from wa.buffers where conversation_id = p_conversation_id;
  else
    update wa.buffer_messages set fence = null where conversation_id = p_conversation_id and fence is not null;
    -- The finished claim's fence is retired: anything still holding it is stale from now on.
    update wa.buffers b
    set fence = null, lease_until = null, claimed_by = null, claimed_at = null, attempts = 0, errors = '[]'::jsonb,
        retry_not_before = null,
        message_count = v_left, first_message_at = v_first, last_message_at = v_last,
        due_at = wa.buffer_due_at(v_first, v_last, v_left, n.buffer_quiet_period, n.buffer_max_wait,
                                  n.buffer_max_messages)
    from wa.phone_numbers n
    where b.conversation_id = p_conversation_id and n.phone_number_id = b.phone_number_id;
  end if;
  return v_left;
end;
$$;
comment on function wa.rearm_buffer(uuid) is
  'After a batch leaves a buffer: deletes the buffer when empty, else releases it with due-time rules applied '
  'to the messages that arrived meanwhile. Returns how many are left. Caller: complete and dead-letter, with '
  'the buffer row locked.';

create function wa.complete_buffer(p_fence bigint, p_up_to_seq bigint)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_buffer wa.buffers := wa.locked_buffer(p_fence);
begin
  -- One statement: the reply lookup, the delete and the count for ops_metrics.
  with reply as (
    select max(m.reply_key) as key from wa.buffer_messages m
    where m.conversation_id = v_buffer.conversation_id and m.fence = p_fence
  ),
  counted as (
    insert into wa.ops_events (kind) values ('completion')
  )
  delete from wa.buffer_messages m
  using reply r
  where m.conversation_id = v_buffer.conversation_id and m.fence = p_fence and m.seq <= p_up_to_seq
    -- A batch holding a reply answered exactly the messages stamped with it; a re-claim may hold others too.
    and (r.key is null or m.reply_key = r.key);
  return wa.rearm_buffer(v_buffer.conversation_id);
end;
$$;
comment on function wa.complete_buffer(bigint, bigint) is
  'Finishes a batch: removes only the messages this claim took, up to p_up_to_seq, and when the batch holds a '
  'reply only those the reply answers (stamped with its key); messages that arrived while it was processed '
  'stay and make the buffer due again. Counts the completion for ops_metrics. Returns how many are left. '
  'Raises P0410 for a stale fence. Caller: buffer-processor.';

create function wa.dead_letter_batch(p_buffer wa.buffers, p_errors jsonb)
returns bigint
language plpgsql
set search_path = ''
as $$
declare
  v_id bigint;
begin
  with moved as (
    delete from wa.buffer_messages m
    where m.conversation_id = p_buffer.conversation_id and m.fence = p_buffer.fence
    returning m.seq, m.message_id, m.appended_at
  )
  insert into wa.dead_letters (conversation_id, fence, attempts, errors, messages)
  select p_buffer.conversation_id, p_buffer.fence, p_buffer.attempts, p_errors,
         coalesce(jsonb_agg(jsonb_build_object('seq', mv.seq, 'message_id', mv.message_id, 'wamid', pm.wamid,
                                               'appended_at', mv.appended_at) order by mv.seq), '[]'::jsonb)
  from moved mv join public.messages pm on pm.id = mv.message_id
  returning id into v_id;
  perform wa.rearm_buffer(p_buffer.conversation_id);
  return v_id;
end;
$$;
comment on function wa.dead_letter_batch(wa.buffers, jsonb) is
  'Moves a locked buffer''s current batch to wa.dead_letters with its error history, then re-arms the buffer '
  'for messages outside the batch. Returns the dead letter id. Caller: fail and the orphan sweep.';

create function wa.fail_buffer(
  p_fence bigint, p_error text,
  p_backoff_base interval default interval '5 seconds', p_backoff_cap interval default interval '5 minutes',
  p_retry_after interval default null, p_permanent boolean default false, p_now timestamptz default now()
)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_buffer wa.buffers := wa.locked_buffer(p_fence);
  v_errors jsonb := v_buffer.errors || jsonb_build_array(jsonb_build_object(
    'at', p_now, 'fence', p_fence, 'attempt', v_buffer.attempts, 'error', p_error));
  v_delay interval;
begin
  if p_permanent or wa.batch_exhausted(v_buffer) then
    perform wa.dead_letter_batch(v_buffer, v_errors);
    return 'dead_letter';
  end if;
  -- Exponential backoff with jitter (0.5x .. 1.5x), never sooner than the remote side asked for.
  v_delay := least(p_backoff_cap, p_backoff_base * power(2, v_buffer.attempts - 1)) * (0.5 + random());
  v_delay := greatest(v_delay, coalesce(p_retry_after, interval '0'));
  -- The failed claim's fence is retired too: its worker can no longer write a reply or complete.
  update wa.buffers
  set fence = null, lease_until = null, claimed_by = null, claimed_at = null, errors = v_errors,
      due_at = p_now + v_delay, retry_not_before = p_now + v_delay
  where conversation_id = v_buffer.conversation_id;
  return 'retry';
end;
$$;
comment on function wa.fail_buffer(bigint, text, interval, interval, interval, boolean, timestamptz) is
  'Records a failed batch attempt: exponential backoff with jitter (and at least p_retry_after), or, once the '
  'batch used its number''s buffer_max_attempts or the failure is permanent (retrying cannot help), moves it '
  'to wa.dead_letters with its error history. Returns retry or dead_letter. Raises P0410 for a stale fence. '
  'Caller: buffer-processor.';

-- ============================================================================================
-- The agent request and the reply's idempotency
-- ============================================================================================
create function wa.batch_reply_key(p_conversation_id uuid, p_fence bigint)
returns text
language plpgsql
stable
set search_path = ''
as $$
begin
  -- Not keyed by the claim: a re-claim after a crash (new fence, maybe more messages) must find the reply already
  -- written for the burst. Once written, that reply's key is on the messages it answers, whatever else the
  -- re-claim holds (an earlier message whose transaction committed late changes the batch's first message).
  -- Before that, the batch's first message names it, so a re-claim usually shows the agent the same key.
  return (select coalesce(max(m.reply_key), 'agent-reply:' || p_conversation_id || ':' || min(m.seq))
          from wa.buffer_messages m
          where m.conversation_id = p_conversation_id and m.fence = p_fence);
end;
$$;
comment on function wa.batch_reply_key(uuid, bigint) is
  'Idempotency key of the agent reply to a batch: the key stamped on its messages by the reply written for them, '
  'else conversation and first buffered message. Null for an empty batch. Caller: wa.agent_context, '
  'wa.begin_agent_reply.';

create function wa.agent_context(p_fence bigint, p_history integer default 20)
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
            'context_wamid', bm.context_wamid, 'reply', wa.structured_reply(bm.body),
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

create function wa.begin_agent_reply(
  p_fence bigint, p_up_to_seq bigint, p_type text, p_body jsonb, p_lease interval default interval '60 seconds',
  p_now timestamptz default now()
)
returns table (message_id uuid, status text, body jsonb, up_to_seq bigint, ours boolean)
language plpgsql
set search_path = ''
as $$
declare
  v_buffer wa.buffers := wa.locked_buffer(p_fence);
  v_key text := wa.batch_reply_key(v_buffer.conversation_id, p_fence);
  v_message_id uuid;
  v_ours boolean := true;
begin
  -- Still ours: extend the lease so the send that follows cannot outlive it.
  update wa.buffers set lease_until = p_now + p_lease where conversation_id = v_buffer.conversation_id;
  -- While the bot is paused wa.refuse_reply_while_paused refuses this insert (P0423) even when the reply
  -- exists, as a BEFORE INSERT trigger runs before ON CONFLICT looks: a failed reply is not taken over either.
  insert into public.messages (conversation_id, direction, type, body, content_text, sent_at, status,
                               idempotency_key)
  values (v_buffer.conversation_id, 'outbound', p_type, p_body, wa.message_text(p_body || jsonb_build_object('type', p_type)),
          p_now, 'pending', v_key)
  on conflict (idempotency_key) do nothing
  returning id into v_message_id;
  if v_message_id is not null then
    insert into wa.agent_replies (idempotency_key, conversation_id, fence, up_to_seq, message_id)
    values (v_key, v_buffer.conversation_id, p_fence, p_up_to_seq, v_message_id);
    update wa.buffer_messages m set reply_key = v_key
    where m.conversation_id = v_buffer.conversation_id and m.fence = p_fence and m.seq <= p_up_to_seq;
  else
    -- Written by an earlier claim. Meta refused it (failed) so it is safe to send again, and only this claim,
    -- holding the buffer under the current fence, can take it over; pending or unknown it may have gone out.
    select r.message_id, pm.status = 'failed' into v_message_id, v_ours
    from wa.agent_replies r join public.messages pm on pm.id = r.message_id
    where r.idempotency_key = v_key;
    if v_ours then
      perform wa.record_send_result(p_message_id => v_message_id, p_outcome => 'pending', p_now => p_now);
    end if;
  end if;
  return query
  select pm.id, pm.status, pm.body, r.up_to_seq, v_ours
  from wa.agent_replies r join public.messages pm on pm.id = r.message_id
  where r.idempotency_key = v_key;
end;
$$;
comment on function wa.begin_agent_reply(bigint, bigint, text, jsonb, interval, timestamptz) is
  'Writes the outbound reply to a batch as pending, under the batch''s idempotency key, before any send, stamps '
  'the key on the messages it answers, and extends the lease. If a reply for this burst already exists (a '
  'crashed or racing worker wrote it), returns that one instead: at most one reply per batch. ours says whether '
  'the caller sends it: true when this call wrote it or took over a failed one (set pending again). Raises '
  'P0410 for a stale fence, P0423 while the bot is paused. Caller: buffer-processor.';

create function wa.record_send_result(
  p_message_id uuid, p_outcome text, p_wamid text default null, p_error jsonb default null,
  p_now timestamptz default now()
)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_status text;
begin
  if p_outcome not in ('pending', 'sent', 'failed', 'unknown') then
    raise exception 'unknown send outcome %', p_outcome using errcode = '22023';
  end if;
  if p_wamid is not null then
    -- A status POST for this wamid may be in flight: whichever commits second sees the other's write
    -- (wa.lock_wamids; the wamid's locks before the message, as in the ingest: docs/locking.md).
    perform wa.lock_wamids(array[p_wamid], true);
  end if;
  update public.messages m
  set wamid = coalesce(p_wamid, m.wamid),
      error = coalesce(p_error, m.error),
      -- Only forward from pending/failed/unknown: a status webhook may already have moved it further.
      status = case when m.status in ('pending', 'failed', 'unknown') then p_outcome else m.status end,
      status_at = p_now
  where m.id = p_message_id and m.direction = 'outbound'
  returning m.status into v_status;
  if not found then
    raise exception 'no outbound message %', p_message_id using errcode = 'P0002';
  end if;
  if p_wamid is not null then
    -- Statuses that arrived before the wamid was known apply now.
    perform wa.apply_message_statuses(array[p_wamid]);
    select m.status into v_status from public.messages m where m.id = p_message_id;
  end if;
  return v_status;
end;
$$;
comment on function wa.record_send_result(uuid, text, text, jsonb, timestamptz) is
  'Records what a send did: sent (with the wamid Meta returned), failed (definite error, safe to resend), unknown '
  '(ambiguous: may have been sent; never resent automatically) or pending (about to resend a failed one). '
  'Applies statuses that arrived before the wamid, or while it was being recorded (the wamid''s lock stripe, '
  'exclusive: docs/locking.md). Returns the resulting status. Callers: buffer-processor, send-message.';

-- ============================================================================================
-- Scheduled jobs
-- ============================================================================================
create function wa.sweep_orphaned_buffers(p_now timestamptz default now())
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_buffer wa.buffers;
  v_expired integer := 0;
  v_dead integer := 0;
  v_result jsonb;
begin
  for v_buffer in
    select * from wa.buffers b where b.lease_until <= p_now order by b.conversation_id for update skip locked
  loop
    v_expired := v_expired + 1;
    if wa.batch_exhausted(v_buffer) then
      perform wa.dead_letter_batch(v_buffer,
                                   v_buffer.errors || jsonb_build_array(wa.lost_lease_error(v_buffer, p_now)));
      v_dead := v_dead + 1;
    end if;
  end loop;
  v_result := jsonb_build_object('expired_leases', v_expired, 'dead_lettered', v_dead);
  insert into wa.job_runs (job, ran_at, result) values ('orphan-sweep', p_now, v_result);
  if v_expired > v_dead then
    -- Wake LISTENing workers: these buffers are claimable again now.
    perform pg_notify('wa_buffer_due', (extract(epoch from p_now) * 1000)::bigint::text);
  end if;
  return v_result;
end;
$$;
comment on function wa.sweep_orphaned_buffers(timestamptz) is
  'Orphan sweep (pg_cron, every minute): counts buffers whose lease expired (their worker crashed or hung), '
  'dead-letters those that used their number''s buffer_max_attempts (as the next claim would), wakes workers '
  'for the rest, and records the counts in wa.job_runs.';

create function wa.pg_cron_version()
returns integer[]
language sql
stable
set search_path = ''
as $$
  -- '1.6.4' (Supabase), '1.6' (PGDG), '1.4-1' (Debian): compare the first two numbers only.
  select (regexp_split_to_array(e.extversion, '[.-]'))[1:2]::integer[]
  from pg_catalog.pg_extension e where e.extname = 'pg_cron'
$$;
comment on function wa.pg_cron_version() is 'pg_cron''s major and minor version, or null when it is not installed.';

create function wa.invoke_edge_function(p_path text, p_body jsonb default '{}'::jsonb,
                                        p_timeout_ms integer default 5000)
returns bigint
language plpgsql
set search_path = ''
as $$
declare
  v_url text;
  v_key text;
  v_request_id bigint;
begin
  if to_regprocedure('net.http_post(text,jsonb,jsonb,jsonb,integer)') is null
     or to_regclass('vault.decrypted_secrets') is null then
    raise warning 'wabase: pg_net and Vault are needed to invoke % from the database', p_path;
    return null;
  end if;
  -- Dynamic SQL with the schema as a parameter: neither schema exists on a cluster without them (nor for the
  -- static checks of plpgsql_check), and this function must still be created there.
  execute format('select decrypted_secret from %I.decrypted_secrets where name = $1', 'vault')
    into v_url using 'wabase_project_url';
  execute format('select decrypted_secret from %I.decrypted_secrets where name = $1', 'vault')
    into v_key using 'wabase_service_role_key';
  if v_url is null or v_key is null then
    raise warning 'wabase: create the Vault secrets wabase_project_url and wabase_service_role_key';
    return null;
  end if;
  execute format('select %I.http_post(url := $1, body := $2, headers := $3, timeout_milliseconds := $4)', 'net')
    into v_request_id
    using rtrim(v_url, '/') || '/functions/v1/' || p_path, p_body,
          jsonb_build_object('Content-Type', 'application/json', 'Authorization', 'Bearer ' || v_key),
          p_timeout_ms;
  return v_request_id;
end;
$$;
comment on function wa.invoke_edge_function(text, jsonb, integer) is
  'POSTs p_body to the Edge Function at p_path (e.g. buffer-processor) through pg_net (sent after commit), with '
  'the project URL and service role key read from Vault (secrets wabase_project_url, wabase_service_role_key), '
  'as Supabase documents for scheduled functions. Returns the pg_net request id, or null (with a warning) when '
  'pg_net, Vault or the secrets are missing. Callers: the pg_cron jobs and wa.keep_functions_alive.';

create function wa.invoke_buffer_processor()
returns bigint
language plpgsql
set search_path = ''
as $$
begin
  -- Created by the hosted_trigger migration (a plpgsql body resolves names when it runs).
  return wa.keep_functions_alive();
end;
$$;
comment on function wa.invoke_buffer_processor() is
  'pg_cron job on Supabase (every second where pg_cron >= 1.5): keeps one keepalive invocation of '
  'buffer-processor, and of every other function in wa.keepalive, running, requesting one through pg_net with '
  'the URL and key from Vault whenever none is alive (wa.keep_functions_alive). Returns how many it requested.';

create table wa.jobs (
  name text primary key,
  schedule text not null,
  command text not null,
  -- The schedule to use instead where pg_cron supports seconds (>= 1.5).
  seconds_schedule text,
  -- Jobs that call an Edge Function over HTTP exist only where pg_net does.
  needs_pg_net boolean not null default false
);
comment on table wa.jobs is
  'The pg_cron jobs wabase wants; each migration adds its own, wa.schedule_jobs() makes pg_cron match.';
insert into wa.jobs (name, schedule, command, seconds_schedule, needs_pg_net) values
  ('wabase-orphan-sweep', '* * * * *', 'select wa.sweep_orphaned_buffers()', null, false),
  ('wabase-buffer-processor', '* * * * *', 'select wa.invoke_buffer_processor()', '1 seconds', true);

create function wa.schedule_jobs()
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_version integer[] := wa.pg_cron_version();
  v_seconds boolean;
  v_pg_net boolean := to_regprocedure('net.http_post(text,jsonb,jsonb,jsonb,integer)') is not null;
  v_job wa.jobs;
  v_scheduled jsonb := '{}'::jsonb;
  v_schedule text;
begin
  if v_version is null then
    raise warning 'wabase: pg_cron is not installed; no jobs scheduled (enable it, then select wa.schedule_jobs())';
    return jsonb_build_object('pg_cron', false);
  end if;
  -- Seconds schedules arrived in pg_cron 1.5; older versions run at most every minute.
  v_seconds := v_version >= array[1, 5];
  for v_job in select * from wa.jobs order by name loop
    if v_job.needs_pg_net and not v_pg_net then
      if exists (select from cron.job j where j.jobname = v_job.name) then
        perform cron.unschedule(v_job.name);
      end if;
      continue;
    end if;
    v_schedule := case when v_seconds and v_job.seconds_schedule is not null then v_job.seconds_schedule
                       else v_job.schedule end;
    perform cron.schedule(v_job.name, v_schedule, v_job.command);
    v_scheduled := v_scheduled || jsonb_build_object(v_job.name, v_schedule);
  end loop;
  return jsonb_build_object('pg_cron', true, 'pg_cron_version', array_to_string(v_version, '.'),
                            'seconds_schedules', v_seconds, 'pg_net', v_pg_net, 'scheduled', v_scheduled);
end;
$$;
comment on function wa.schedule_jobs() is
  '(Re)creates the pg_cron jobs listed in wa.jobs, detecting rather than assuming the platform: seconds '
  'schedules only on pg_cron >= 1.5 (the buffer-processor keepalive tick runs every second there, every minute '
  'on older versions), HTTP jobs only where pg_net exists. Idempotent; run it again after enabling pg_net.';

revoke all on function wa.batch_exhausted(wa.buffers), wa.lost_lease_error(wa.buffers, timestamptz),
  wa.claim_buffers(text, integer, interval, timestamptz), wa.next_claim_at(),
  wa.locked_buffer(bigint), wa.rearm_buffer(uuid), wa.complete_buffer(bigint, bigint),
  wa.dead_letter_batch(wa.buffers, jsonb),
  wa.fail_buffer(bigint, text, interval, interval, interval, boolean, timestamptz),
  wa.batch_reply_key(uuid, bigint), wa.agent_context(bigint, integer),
  wa.begin_agent_reply(bigint, bigint, text, jsonb, interval, timestamptz),
  wa.record_send_result(uuid, text, text, jsonb, timestamptz),
  wa.sweep_orphaned_buffers(timestamptz),
  wa.pg_cron_version(), wa.invoke_edge_function(text, jsonb, integer), wa.invoke_buffer_processor(), wa.schedule_jobs()
  from public, anon, authenticated, service_role;

create function wa.save_circuit_breaker(p_name text, p_state text, p_snapshot jsonb)
returns void
language sql
set search_path = ''
as $$
  insert into wa.circuit_breakers as c (name, state, snapshot, updated_at)
  values (p_name, p_state, p_snapshot, now())
  on conflict (name) do update set state = excluded.state, snapshot = excluded.snapshot, updated_at = now()
$$;
comment on function wa.save_circuit_breaker(text, text, jsonb) is
  'Stores a circuit breaker''s state change. Caller: buffer-processor (settled: a failure here never fails a batch).';
revoke all on function wa.save_circuit_breaker(text, text, jsonb) from public, anon, authenticated, service_role;

select wa.schedule_jobs();
