-- wabase chat sessions: the bot's per-conversation state, written with optimistic locking so two handlers
-- that read the same version can never both write (the lost update of seed 003: INICIO -> two next states).

-- ============================================================================================
-- Sessions
-- ============================================================================================
alter table wa.phone_numbers
  add column session_idle_timeout interval not null default interval '15 minutes'
    check (session_idle_timeout > interval '0');

create table wa.chat_sessions (
  conversation_id uuid primary key references public.conversations (id) on delete cascade,
  state text not null check (state <> ''),
  data jsonb not null default '{}'::jsonb check (jsonb_typeof(data) = 'object'),
  -- Incremented by every write; a write names the version it read and fails if another came first.
  version bigint not null check (version > 0),
  updated_at timestamptz not null,
  -- Idle sessions are moved to the `expired` state by a pg_cron job once this passes.
  expires_at timestamptz not null
);
create index chat_sessions_expires_at_idx on wa.chat_sessions (expires_at) where state <> 'expired';
comment on table wa.chat_sessions is 'The bot''s state per conversation, versioned for optimistic locking.';

create function wa.get_chat_session(p_conversation_id uuid)
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

create function wa.update_chat_session(
  p_conversation_id uuid, p_expected_version bigint, p_state text, p_data jsonb, p_now timestamptz default now()
)
returns bigint
language plpgsql
set search_path = ''
as $$
declare
  v_timeout interval;
  v_version bigint;
begin
  select n.session_idle_timeout into v_timeout
  from public.conversations c join wa.phone_numbers n on n.phone_number_id = c.phone_number_id
  where c.id = p_conversation_id;
  if not found then
    raise exception 'no conversation %', p_conversation_id using errcode = 'P0002';
  end if;
  if p_state is null or p_state = '' or p_data is null or jsonb_typeof(p_data) <> 'object' then
    raise exception 'a session needs a non-empty state and an object as data' using errcode = '22023';
  end if;
  if p_expected_version = 0 then
    insert into wa.chat_sessions (conversation_id, state, data, version, updated_at, expires_at)
    values (p_conversation_id, p_state, p_data, 1, p_now, p_now + v_timeout)
    on conflict (conversation_id) do nothing
    returning version into v_version;
  else
    update wa.chat_sessions s
    set state = p_state, data = p_data, version = s.version + 1, updated_at = p_now,
        expires_at = p_now + v_timeout
    where s.conversation_id = p_conversation_id and s.version = p_expected_version
    returning s.version into v_version;
  end if;
  if v_version is null then
    raise exception 'version conflict'
      using errcode = '40001',
            detail = format('session of conversation %s is no longer at version %s', p_conversation_id,
                            p_expected_version);
  end if;
  return v_version;
end;
$$;
comment on function wa.update_chat_session(uuid, bigint, text, jsonb, timestamptz) is
  'Writes a session if it is still at p_expected_version (0: it does not exist yet) and returns the new version; '
  'otherwise raises SQLSTATE 40001 "version conflict" and writes nothing, so the caller re-reads and re-applies '
  '(the withVersionRetry helper). Pushes the idle expiry forward. Raises P0002 for an unknown conversation and '
  '22023 for an empty state or non-object data. Caller: buffer-processor and other session writers.';

create function wa.update_batch_session(
  p_fence bigint, p_expected_version bigint, p_state text, p_data jsonb,
  p_lease interval default interval '60 seconds', p_now timestamptz default now()
)
returns bigint
language plpgsql
set search_path = ''
as $$
declare
  v_buffer wa.buffers := wa.locked_buffer(p_fence);
begin
  -- A lease that ran out may be re-claimed at any moment, and the new claim asks the agent again from the
  -- session: had this write landed, one burst would move the session twice. Only a live lease writes.
  if v_buffer.lease_until <= p_now then
    raise exception 'the lease of fence % expired at %', p_fence, v_buffer.lease_until using errcode = 'P0410';
  end if;
  update wa.buffers set lease_until = p_now + p_lease where conversation_id = v_buffer.conversation_id;
  return wa.update_chat_session(v_buffer.conversation_id, p_expected_version, p_state, p_data, p_now);
end;
$$;
comment on function wa.update_batch_session(bigint, bigint, text, jsonb, interval, timestamptz) is
  'wa.update_chat_session for the agent''s answer to a claimed batch, fenced: only under the claim''s live lease '
  '(P0410 for a stale fence or an expired lease), which it extends. Version conflicts as there (40001). '
  'Caller: buffer-processor.';

create function wa.expire_idle_sessions(p_now timestamptz default now())
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_expired integer;
begin
  -- A version bump like any write: a handler still holding the old version gets a conflict, not a silent
  -- overwrite of the expiry.
  update wa.chat_sessions
  set state = 'expired', version = version + 1, updated_at = p_now
  where expires_at <= p_now and state <> 'expired';
  get diagnostics v_expired = row_count;
  insert into wa.job_runs (job, ran_at, result) values ('session-expiry', p_now, jsonb_build_object('expired', v_expired));
  return v_expired;
end;
$$;
comment on function wa.expire_idle_sessions(timestamptz) is
  'Session expiry (pg_cron, every minute): moves sessions idle past their number''s session_idle_timeout to '
  'state expired (data kept, version bumped) and records the count in wa.job_runs. Returns the count.';

-- ============================================================================================
-- Settled, non-critical bookkeeping around a batch
-- ============================================================================================
alter table public.conversations add column bot_last_activity_at timestamptz;

create table wa.bot_daily_stats (
  day date not null,
  phone_number_id text not null references wa.phone_numbers (phone_number_id),
  outcome text not null,
  batches integer not null default 0,
  primary key (day, phone_number_id, outcome)
);
comment on table wa.bot_daily_stats is 'Batches the bot handled per day, business number and outcome.';

create function wa.note_batch_outcome(p_conversation_id uuid, p_outcome text, p_now timestamptz default now())
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

revoke all on function wa.get_chat_session(uuid), wa.update_chat_session(uuid, bigint, text, jsonb, timestamptz),
  wa.update_batch_session(bigint, bigint, text, jsonb, interval, timestamptz), wa.expire_idle_sessions(timestamptz),
  wa.note_batch_outcome(uuid, text, timestamptz)
  from public, anon, authenticated, service_role;

-- ============================================================================================
-- Scheduling
-- ============================================================================================
insert into wa.jobs (name, schedule, command) values
  ('wabase-session-expiry', '* * * * *', 'select wa.expire_idle_sessions()');
select wa.schedule_jobs();
