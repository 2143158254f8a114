-- wabase media: every inbound photo, voice note, video, document and sticker is fetched from the Graph API and
-- kept in the private Storage bucket `whatsapp-media` at <conversation_id>/<wamid>.<ext>. The fetch job is
-- written in the transaction that stores the message (triggers on public.messages, never a call from the
-- webhook), claimed with SKIP LOCKED under a lease, retried with backoff, and settled on the message (stored, or
-- failed with its reason). A batch waits for its media (at most the number's media_wait) before it is due.
-- Operators read the objects under RLS policies giving exactly their conversation's visibility.

-- ============================================================================================
-- Columns and tables
-- ============================================================================================
alter table public.messages
  -- Inbound media only: pending until fetched, then stored (path, size, sha256, mime type) or failed (reason).
  add column media_state text check (media_state in ('pending', 'stored', 'failed', 'removed')),
  add column media_path text,
  add column media_size bigint,
  add column media_sha256 text,
  add column media_mime_type text,
  add column media_error text,
  -- A voice note's transcript (TRANSCRIBE_URL), written by the processor before the agent sees the batch.
  add column media_transcript text;
-- The few messages whose media is still on its way: every append to a buffer probes them (the hold below), and
-- a probe by this small index costs the same on a fresh table and on one of millions.
create index messages_media_pending_idx on public.messages (id) where media_state = 'pending';

alter table wa.phone_numbers
  -- How long past its due time a batch waits for its media before it goes without (0: never waits).
  add column media_wait interval not null default interval '15 seconds' check (media_wait >= interval '0'),
  -- Stored media older than this are removed from the bucket (null: kept for good).
  add column media_retention interval check (media_retention > interval '0');

alter table wa.buffers
  -- While media of the buffer are pending: the buffer is not due before this (wa.keep_media_hold).
  add column media_hold_until timestamptz;

create sequence wa.media_fence_seq;
comment on sequence wa.media_fence_seq is 'Fencing tokens of media fetch claims: every claim gets a new one.';

create table wa.media_jobs (
  message_id uuid primary key references public.messages (id) on delete cascade,
  conversation_id uuid not null,
  wamid text not null,
  phone_number_id text not null,
  media_id text not null,
  -- When the job may be claimed next: due, backing off, or (claimed) when its lease runs out. One column, so
  -- the claim is one index range whatever the state.
  run_at timestamptz not null,
  attempts integer not null default 0,
  fence bigint unique,
  claimed_by text,
  last_error text,
  created_at timestamptz not null
);
create index media_jobs_run_at_idx on wa.media_jobs (run_at);
comment on table wa.media_jobs is
  'Media still to fetch, one per inbound media message; deleted once the message records stored or failed.';

-- ============================================================================================
-- Jobs are written with the message
-- ============================================================================================
create function wa.media_type(p_type text)
returns boolean
language sql
immutable
parallel safe
as $$
  select p_type in ('image', 'audio', 'video', 'document', 'sticker')
$$;
comment on function wa.media_type(text) is 'Whether an inbound message of this type carries a file to fetch.';

create function wa.mark_media_pending()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if nullif(new.body -> new.type ->> 'id', '') is null then
    new.media_state := 'failed';
    new.media_error := 'the message carries no media id';
  else
    new.media_state := 'pending';
  end if;
  return new;
end;
$$;
comment on function wa.mark_media_pending() is
  'BEFORE row trigger on inbound media messages (new, or a placeholder replaced by media): media_state pending, '
  'or failed when Meta sent no media id.';

create trigger messages_mark_media_pending before insert on public.messages
  for each row when (new.direction = 'inbound' and wa.media_type(new.type))
  execute function wa.mark_media_pending();
create trigger messages_mark_replaced_media_pending before update of type on public.messages
  for each row when (new.direction = 'inbound' and wa.media_type(new.type) and old.type is distinct from new.type)
  execute function wa.mark_media_pending();

create function wa.enqueue_media_jobs(p_message_ids uuid[])
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_first timestamptz;
begin
  with jobs as (
    insert into wa.media_jobs (message_id, conversation_id, wamid, phone_number_id, media_id, run_at, created_at)
    select m.id, m.conversation_id, m.wamid, c.phone_number_id, m.body -> m.type ->> 'id', m.received_at,
           m.received_at
    from public.messages m
    join public.conversations c on c.id = m.conversation_id
    where m.id = any (p_message_ids) and m.media_state = 'pending'
    order by m.id
    on conflict (message_id) do nothing
    returning run_at
  )
  select min(run_at) into v_first from jobs;
  if v_first is not null then
    perform pg_notify('wa_media_due', (extract(epoch from v_first) * 1000)::bigint::text);
  end if;
end;
$$;
comment on function wa.enqueue_media_jobs(uuid[]) is
  'One fetch job per media-pending message of p_message_ids, then NOTIFY wa_media_due (epoch ms of the first). '
  'New rows lock nothing another writer waits for; a message''s job key is covered by its receipt '
  '(docs/locking.md step 1). Callers: the triggers below, in the transaction that stores the message.';

create function wa.enqueue_media_job()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  perform wa.enqueue_media_jobs(array[new.id]);
  return null;
end;
$$;
comment on function wa.enqueue_media_job() is
  'AFTER row trigger on public.messages, only for a message whose media became pending (its WHEN clauses): a '
  'new media message, or a placeholder replaced by media. Row triggers with WHEN, not a statement trigger over '
  'the inserted rows: texts, statuses and reads pay nothing (a statement trigger''s transition table cost every '
  'webhook POST), and the jobs of a media POST are still written in its transaction.';
create trigger messages_enqueue_media_jobs after insert on public.messages
  for each row when (new.media_state = 'pending') execute function wa.enqueue_media_job();
create trigger messages_enqueue_replaced_media_job after update of type on public.messages
  for each row when (new.media_state = 'pending' and old.media_state is distinct from 'pending')
  execute function wa.enqueue_media_job();

-- ============================================================================================
-- A batch waits for its media, at most media_wait
-- ============================================================================================
create function wa.keep_media_hold()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  -- The ingest re-arms due_at from the quiet-period rules on every new message; a pending photo must still hold.
  if new.media_hold_until is not null and new.due_at < new.media_hold_until then
    new.due_at := new.media_hold_until;
  end if;
  return new;
end;
$$;
comment on function wa.keep_media_hold() is
  'BEFORE row trigger on wa.buffers: a buffer waiting for media is never due before media_hold_until.';
-- The WHEN clause keeps the function call off every update of a buffer that holds for no media.
create trigger buffers_keep_media_hold before update of due_at, media_hold_until on wa.buffers
  for each row when (new.media_hold_until is not null) execute function wa.keep_media_hold();

create function wa.media_hold_of(p_conversation_id uuid)
returns timestamptz
language sql
stable
set search_path = ''
as $$
  select max(bm.appended_at + n.media_wait)
  from wa.buffer_messages bm
  join public.messages m on m.id = bm.message_id
  join public.conversations c on c.id = bm.conversation_id
  join wa.phone_numbers n on n.phone_number_id = c.phone_number_id
  where bm.conversation_id = p_conversation_id and m.media_state = 'pending' and n.media_wait > interval '0'
$$;
comment on function wa.media_hold_of(uuid) is
  'Until when a buffer waits for media: the latest arrival of a still-pending media message plus its number''s '
  'media_wait; null when none is pending.';

create function wa.hold_buffers_for_media()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  -- Most appends carry no pending media: one probe of the new rows by primary key (a join with the transition
  -- table, whose size the planner cannot know, may scan public.messages), and no update.
  if not exists (select from public.messages m
                 where m.id = any (array(select a.message_id from appended a)) and m.media_state = 'pending') then
    return null;
  end if;
  -- Runs after the ingest's statement, which holds these buffers already (locking step 6).
  update wa.buffers b
  set media_hold_until = h.until
  from (select a.conversation_id, max(a.appended_at + n.media_wait) as until
        from appended a
        join public.messages m on m.id = a.message_id
        join public.conversations c on c.id = a.conversation_id
        join wa.phone_numbers n on n.phone_number_id = c.phone_number_id
        where m.media_state = 'pending' and n.media_wait > interval '0'
        group by a.conversation_id) h
  where b.conversation_id = h.conversation_id and (b.media_hold_until is null or b.media_hold_until < h.until);
  return null;
end;
$$;
comment on function wa.hold_buffers_for_media() is
  'AFTER statement trigger on wa.buffer_messages: a buffer that gained a media-pending message holds until the '
  'message''s arrival plus its number''s media_wait (or until the media settles: wa.release_media_hold).';
create trigger buffer_messages_hold_for_media after insert on wa.buffer_messages
  referencing new table as appended for each statement execute function wa.hold_buffers_for_media();

create function wa.release_media_hold(p_conversation_id uuid)
returns void
language plpgsql
set search_path = ''
as $$
begin
  -- Locking step 6 after the message (step 2), as the ingest takes them.
  perform from wa.buffers b where b.conversation_id = p_conversation_id and b.media_hold_until is not null
  for update;
  if not found then
    return;
  end if;
  update wa.buffers b
  set media_hold_until = wa.media_hold_of(p_conversation_id),
      -- A claimed buffer's due time is re-armed when its batch completes.
      due_at = case when b.lease_until is not null then b.due_at
                    else wa.buffer_due_at(b.first_message_at, b.last_message_at, b.message_count,
                                          n.buffer_quiet_period, n.buffer_max_wait, n.buffer_max_messages) end
  from wa.phone_numbers n
  where b.conversation_id = p_conversation_id and n.phone_number_id = b.phone_number_id;
end;
$$;
comment on function wa.release_media_hold(uuid) is
  'After a media message settles: the conversation''s buffer holds only for media still pending, and is due by '
  'its own rules otherwise (at once when they passed). Caller: wa.complete_media_job, wa.fail_media_job.';

-- ============================================================================================
-- Claim, complete, fail (graphile-worker's shape, as the buffers)
-- ============================================================================================
create function wa.claim_media_jobs(
  p_worker text, p_limit integer default 1, p_lease interval default interval '5 minutes',
  p_now timestamptz default now()
)
returns table (message_id uuid, fence bigint, conversation_id uuid, wamid text, phone_number_id text,
               media_id text, type text, mime_type text, animated boolean, attempts integer)
language plpgsql
set search_path = ''
as $$
#variable_conflict use_column
declare
  v_due uuid[];
begin
  v_due := array(
    select j.message_id from wa.media_jobs j
    where j.run_at <= p_now
    order by j.run_at
    for update skip locked
    limit p_limit);
  if cardinality(v_due) = 0 then
    return;
  end if;
  return query
  with claimed as (
    update wa.media_jobs j
    set fence = nextval('wa.media_fence_seq'), run_at = p_now + p_lease, claimed_by = p_worker,
        attempts = j.attempts + 1,
        -- A fence still set here is a lease that ran out: its worker died or hung mid-fetch.
        last_error = case when j.fence is null then j.last_error
                          else 'lease expired: worker ' || coalesce(j.claimed_by, '?') || ' lost the job' end
    where j.message_id = any (v_due)
    returning j.*
  )
  select c.message_id, c.fence, c.conversation_id, c.wamid, c.phone_number_id, c.media_id, m.type,
         m.body -> m.type ->> 'mime_type', coalesce((m.body -> m.type ->> 'animated')::boolean, false), c.attempts
  from claimed c join public.messages m on m.id = c.message_id;
end;
$$;
comment on function wa.claim_media_jobs(text, integer, interval, timestamptz) is
  'Claims up to p_limit due media jobs for p_worker (FOR UPDATE SKIP LOCKED): each gets a new fencing token and '
  'a lease (run_at moves to its end, so a crashed worker''s job is claimable again then). Returns what the fetch '
  'needs: the Graph media id, the business number, the message type and declared mime type. Caller: '
  'media-fetcher, local/media-worker.ts.';

create function wa.next_media_job_at()
returns timestamptz
language sql
stable
set search_path = ''
as $$
  select min(j.run_at) from wa.media_jobs j
$$;
comment on function wa.next_media_job_at() is
  'When wa.claim_media_jobs next finds a job (a time in the past: now); null when none waits. Caller: the media '
  'worker, to sleep until then.';

create function wa.claimed_media_job(p_message_id uuid, p_fence bigint)
returns wa.media_jobs
language plpgsql
set search_path = ''
as $$
declare
  v_job wa.media_jobs;
begin
  select * into v_job from wa.media_jobs j where j.message_id = p_message_id and j.fence = p_fence for update;
  if not found then
    raise exception 'stale media fence %: the job was re-claimed or already settled', p_fence
      using errcode = 'P0410';
  end if;
  return v_job;
end;
$$;
comment on function wa.claimed_media_job(uuid, bigint) is
  'The media job still held under p_fence, locked; raises P0410 (stale fence) when another claim took it over '
  'or it was settled. Caller: wa.complete_media_job, wa.fail_media_job.';

create function wa.complete_media_job(
  p_message_id uuid, p_fence bigint, p_path text, p_size bigint, p_sha256 text, p_mime_type text
)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_job wa.media_jobs := wa.claimed_media_job(p_message_id, p_fence);
begin
  delete from wa.media_jobs where message_id = v_job.message_id;
  update public.messages
  set media_state = 'stored', media_path = p_path, media_size = p_size, media_sha256 = p_sha256,
      media_mime_type = p_mime_type, media_error = null
  where id = v_job.message_id;
  perform wa.release_media_hold(v_job.conversation_id);
end;
$$;
comment on function wa.complete_media_job(uuid, bigint, text, bigint, text, text) is
  'Records a stored file on its message (path in whatsapp-media, size, sha256, mime type), drops the job and '
  'lets a batch waiting for it go. Raises P0410 for a stale fence. Caller: media-fetcher.';

create function wa.fail_media_job(
  p_message_id uuid, p_fence bigint, p_error text, p_permanent boolean default false,
  p_retry_after interval default null, p_max_attempts integer default 8, p_now timestamptz default now()
)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_job wa.media_jobs := wa.claimed_media_job(p_message_id, p_fence);
begin
  if p_permanent or v_job.attempts >= p_max_attempts then
    delete from wa.media_jobs where message_id = v_job.message_id;
    update public.messages
    set media_state = 'failed',
        media_error = case when p_permanent then p_error
                           else 'gave up after ' || v_job.attempts || ' attempts: ' || p_error end
    where id = v_job.message_id;
    perform wa.release_media_hold(v_job.conversation_id);
    return 'failed';
  end if;
  -- Exponential backoff from 2 s, capped at an hour, jittered x0.5-1.5: eight attempts span about three hours
  -- of a media id's seven days.
  update wa.media_jobs
  set fence = null, claimed_by = null, last_error = p_error,
      run_at = p_now + coalesce(p_retry_after,
                                least(interval '1 hour', interval '2 seconds' * power(4, v_job.attempts - 1))
                                  * (0.5 + random()))
  where message_id = v_job.message_id;
  return 'retry';
end;
$$;
comment on function wa.fail_media_job(uuid, bigint, text, boolean, interval, integer, timestamptz) is
  'A fetch failed. Permanent (expired or deleted id, over WhatsApp''s size limit, mismatching hash) or the last '
  'of p_max_attempts: the message records failed with the reason, the job is dropped and never retried. Else the '
  'job backs off (p_retry_after, or exponential with jitter). Returns failed or retry. Raises P0410 for a stale '
  'fence. Caller: media-fetcher.';

-- ============================================================================================
-- The agent's view of a batch's media; transcripts
-- ============================================================================================
create function wa.batch_media(p_fence bigint)
returns table (message_id uuid, type text, state text, path text, mime_type text, size bigint, error text,
               transcript text, voice boolean)
language sql
stable
set search_path = ''
as $$
  select m.id, m.type, m.media_state, m.media_path, coalesce(m.media_mime_type, m.body -> m.type ->> 'mime_type'),
         m.media_size, m.media_error, m.media_transcript,
         m.type = 'audio' and coalesce((m.body -> 'audio' ->> 'voice')::boolean, false)
  from wa.buffers b
  join wa.buffer_messages bm on bm.conversation_id = b.conversation_id and bm.fence = p_fence
  join public.messages m on m.id = bm.message_id
  where b.fence = p_fence and m.media_state is not null
  order by bm.seq
$$;
comment on function wa.batch_media(bigint) is
  'The media messages of a claimed batch with their state (pending: not fetched in time, the batch goes without), '
  'Storage path, mime type, size, reason of a failure, transcript, and whether audio is a voice note. Caller: '
  'buffer-processor.';

create function wa.record_media_transcript(p_message_id uuid, p_transcript text)
returns void
language sql
set search_path = ''
as $$
  update public.messages set media_transcript = p_transcript where id = p_message_id and media_state = 'stored'
$$;
comment on function wa.record_media_transcript(uuid, text) is
  'Stores a voice note''s transcript on its message, where operators see it too. Caller: buffer-processor.';

-- ============================================================================================
-- Retention (default: keep)
-- ============================================================================================
create function wa.expired_media(p_limit integer default 100, p_now timestamptz default now())
returns table (message_id uuid, path text)
language sql
stable
set search_path = ''
as $$
  select m.id, m.media_path
  from public.messages m
  join public.conversations c on c.id = m.conversation_id
  join wa.phone_numbers n on n.phone_number_id = c.phone_number_id
  where n.media_retention is not null and m.media_state = 'stored' and m.received_at < p_now - n.media_retention
  order by m.received_at
  limit p_limit
$$;
comment on function wa.expired_media(integer, timestamptz) is
  'Stored media past their number''s media_retention (none while it is null, the default), oldest first, for the '
  'media worker to remove from the bucket. Caller: media-fetcher.';

create function wa.record_media_removed(p_message_ids uuid[])
returns void
language sql
set search_path = ''
as $$
  update public.messages set media_state = 'removed' where id = any (p_message_ids) and media_state = 'stored'
$$;
comment on function wa.record_media_removed(uuid[]) is
  'Marks media removed by the retention policy (the path is kept, the object is gone). Caller: media-fetcher.';

-- ============================================================================================
-- Scheduling on Supabase: the same pg_cron + pg_net trigger as the buffer processor
-- ============================================================================================
create function wa.invoke_media_fetcher()
returns bigint
language plpgsql
set search_path = ''
as $$
begin
  if not exists (select from wa.media_jobs j where j.run_at <= now())
     and not exists (select from wa.phone_numbers n where n.media_retention is not null) then
    return null;
  end if;
  return wa.invoke_edge_function('media-fetcher');
end;
$$;
comment on function wa.invoke_media_fetcher() is
  'pg_cron job on Supabase: when a media job is due (or a retention policy is set), POSTs to the media-fetcher '
  'Edge Function through pg_net (wa.invoke_edge_function). Returns the pg_net request id or null.';

insert into wa.jobs (name, schedule, command, seconds_schedule, needs_pg_net) values
  ('wabase-media-fetcher', '* * * * *', 'select wa.invoke_media_fetcher()', '5 seconds', true);

revoke all on function wa.media_type(text), wa.mark_media_pending(), wa.enqueue_media_jobs(uuid[]),
  wa.enqueue_media_job(), wa.keep_media_hold(),
  wa.media_hold_of(uuid), wa.hold_buffers_for_media(), wa.release_media_hold(uuid),
  wa.claim_media_jobs(text, integer, interval, timestamptz), wa.next_media_job_at(),
  wa.claimed_media_job(uuid, bigint), wa.complete_media_job(uuid, bigint, text, bigint, text, text),
  wa.fail_media_job(uuid, bigint, text, boolean, interval, integer, timestamptz), wa.batch_media(bigint),
  wa.record_media_transcript(uuid, text), wa.expired_media(integer, timestamptz),
  wa.record_media_removed(uuid[]), wa.invoke_media_fetcher()
  from public, anon, authenticated, service_role;

-- ============================================================================================
-- Storage: the private bucket and who reads it
-- ============================================================================================
-- 100 MB: WhatsApp's largest inbound file (a document). No MIME list: Meta decides what a customer can send.
insert into storage.buckets (id, name, public, file_size_limit)
values ('whatsapp-media', 'whatsapp-media', false, 100 * 1024 * 1024)
on conflict (id) do nothing;

create function authz.media_conversation_id(p_name text)
returns uuid
language sql
immutable
parallel safe
set search_path = ''
as $$
  select case when p_name ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/'
              then left(p_name, 36)::uuid end
$$;
comment on function authz.media_conversation_id(text) is
  'The conversation an object of whatsapp-media belongs to: the first folder of <conversation_id>/<wamid>.<ext>; '
  'null for any other name.';
revoke all on function authz.media_conversation_id(text) from public, anon;
grant execute on function authz.media_conversation_id(text) to authenticated;

-- The conversation subquery runs under the caller's RLS on public.conversations, so an object is readable (and
-- can be signed) exactly when its conversation is: the executive, her backup, her coordinator, admins. In
-- whatsapp-media writes are the media worker's, as the service role; no policy lets a user write there. The
-- outbound bucket (below) is read the same way.
create policy "media are readable with their conversation" on storage.objects
  for select to authenticated
  using (bucket_id in ('whatsapp-media', 'whatsapp-outbox')
         and exists (select from public.conversations c where c.id = authz.media_conversation_id(objects.name)));

-- Operators' outbound files: the frontend uploads to whatsapp-outbox at <conversation_id>/<name>, for a
-- conversation it sees; send-message reads the file as that user (so these policies decide again), checks
-- WhatsApp's types and sizes, uploads it to the Graph API and sends it by id.
insert into storage.buckets (id, name, public, file_size_limit)
values ('whatsapp-outbox', 'whatsapp-outbox', false, 100 * 1024 * 1024)
on conflict (id) do nothing;

create policy "outbound media are uploaded into a visible conversation" on storage.objects
  for insert to authenticated
  with check (bucket_id = 'whatsapp-outbox'
              and exists (select from public.conversations c where c.id = authz.media_conversation_id(objects.name)));

select wa.schedule_jobs();
