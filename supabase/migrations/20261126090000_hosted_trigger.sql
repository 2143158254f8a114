-- wabase hosted trigger: on Supabase there are no long-running workers, so one invocation of each keepalive
-- Edge Function (buffer-processor; any other that registers a row) runs at a time, draining and then
-- waiting for the next due time until its budget ends, and hands over to a successor it requests through
-- pg_net before it stops claiming. pg_cron's job (every second where pg_cron >= 1.5) is the safety net: it
-- requests an invocation whenever the slot has no live holder. A slot is a row (heartbeat and end), never a
-- session advisory lock: the transaction pooler edge code connects through would not keep one.

-- ============================================================================================
-- Slots
-- ============================================================================================
create table wa.keepalive (
  -- The Edge Function, invoked at <project url>/functions/v1/<function_name>.
  function_name text primary key check (function_name ~ '^[a-z0-9][a-z0-9_-]*$'),
  -- The body that asks the function for a keepalive invocation.
  body jsonb not null default '{"keepalive": true}'::jsonb,
  -- pg_net's timeout for the request: the invocation answers when its budget ends, within the Edge Functions
  -- request idle timeout (150 s).
  timeout_ms integer not null default 150000 check (timeout_ms between 1000 and 400000),
  -- The invocation holding the slot; dead once lease_until passes without a heartbeat renewing it.
  holder text,
  lease_until timestamptz,
  -- When the holder stops claiming (its budget less what in-flight batches need): the successor is requested
  -- wa.keepalive_handoff() before, and may take the slot from then on.
  ends_at timestamptz,
  heartbeat_at timestamptz,
  -- The last invocation requested through pg_net and not yet arrived (cleared when one takes the slot).
  requested_at timestamptz,
  request_id bigint,
  -- Cost figures: invocations requested through pg_net, and invocations that took the slot.
  requests bigint not null default 0,
  holders bigint not null default 0
);
comment on table wa.keepalive is
  'One row per Edge Function kept running on hosted Supabase (buffer-processor; other work adds its own row): '
  'the invocation holding the slot, its heartbeat lease and end, and the pending pg_net request for the next.';
insert into wa.keepalive (function_name) values ('buffer-processor');

create function wa.keepalive_handoff()
returns interval
language sql
immutable
set search_path = ''
as $$ select interval '5 seconds' $$;
comment on function wa.keepalive_handoff() is
  'How long before a holder''s end its successor is requested (and may take the slot): more than an Edge '
  'Function cold start, so the next invocation is waiting before the last one stops claiming.';

create function wa.keepalive_request_grace()
returns interval
language sql
immutable
set search_path = ''
as $$ select interval '10 seconds' $$;
comment on function wa.keepalive_request_grace() is
  'How long a requested invocation may take to arrive before it is requested again (a lost request, a cold '
  'start that failed).';

-- ============================================================================================
-- Requests
-- ============================================================================================
create function wa.keep_functions_alive(p_now timestamptz default now())
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_slot wa.keepalive;
  v_request_id bigint;
  v_requested integer := 0;
begin
  -- Skip locked: a holder renewing its heartbeat, or a concurrent tick, is never waited for.
  for v_slot in select * from wa.keepalive k order by k.function_name for update skip locked loop
    continue when v_slot.holder is not null and v_slot.lease_until > p_now
                  and v_slot.ends_at > p_now + wa.keepalive_handoff();
    continue when v_slot.requested_at > p_now - wa.keepalive_request_grace();
    v_request_id := wa.invoke_edge_function(v_slot.function_name, v_slot.body, v_slot.timeout_ms);
    continue when v_request_id is null;
    update wa.keepalive k
    set requested_at = p_now, request_id = v_request_id, requests = k.requests + 1
    where k.function_name = v_slot.function_name;
    v_requested := v_requested + 1;
  end loop;
  return v_requested;
end;
$$;
comment on function wa.keep_functions_alive(timestamptz) is
  'For every wa.keepalive slot without a live holder, or whose holder ends within wa.keepalive_handoff(), '
  'requests one invocation through pg_net, unless one was requested within wa.keepalive_request_grace(). '
  'Returns how many it requested. Callers: wa.invoke_buffer_processor() (pg_cron) and the holders themselves '
  '(handoff, release).';

-- ============================================================================================
-- Holders (the Edge Function's side)
-- ============================================================================================
create function wa.acquire_keepalive(
  p_function text, p_holder text, p_claim_for interval, p_lease interval, p_now timestamptz default now()
)
returns boolean
language plpgsql
set search_path = ''
as $$
begin
  update wa.keepalive k
  set holder = p_holder,
      ends_at = p_now + p_claim_for,
      lease_until = least(p_now + p_lease, p_now + p_claim_for),
      heartbeat_at = p_now,
      requested_at = null,
      request_id = null,
      holders = k.holders + 1
  where k.function_name = p_function
    and (k.holder is null or k.lease_until <= p_now or k.ends_at <= p_now + wa.keepalive_handoff());
  return found;
end;
$$;
comment on function wa.acquire_keepalive(text, text, interval, interval, timestamptz) is
  'Makes p_holder the slot''s holder if it has none, its holder is dead (lease run out) or ends within the '
  'handoff: it claims for p_claim_for, its heartbeat lease p_lease renewed by wa.keepalive_beat. False when a '
  'live holder keeps it (the caller then helps with one drain and returns). Caller: buffer-processor.';

create function wa.keepalive_beat(
  p_function text, p_holder text, p_lease interval, p_backlog_limit integer, p_now timestamptz default now()
)
returns table (holder boolean, db_now timestamptz, next_at timestamptz, backlog integer)
language plpgsql
set search_path = ''
as $$
declare
  v_ends_at timestamptz;
begin
  update wa.keepalive k
  set lease_until = least(p_now + p_lease, k.ends_at), heartbeat_at = p_now
  where k.function_name = p_function and k.holder = p_holder and k.ends_at > p_now
  returning k.ends_at into v_ends_at;
  holder := found;
  if holder and v_ends_at <= p_now + wa.keepalive_handoff() then
    -- The successor is requested now, so it is waiting when this holder stops claiming.
    perform wa.keep_functions_alive(p_now);
  end if;
  db_now := p_now;
  next_at := wa.next_claim_at();
  -- Claimable now (as wa.claim_buffers sees it, up to p_backlog_limit): how many lanes the next drain needs.
  select count(*)::integer into backlog from (
    select from wa.buffers b
    where b.due_at <= p_now and (b.lease_until is null or b.lease_until <= p_now)
    limit p_backlog_limit) due;
  return next;
end;
$$;
comment on function wa.keepalive_beat(text, text, interval, integer, timestamptz) is
  'The holder''s heartbeat between drains, one round trip: renews its lease while it still holds the slot '
  '(holder false: a successor took it, or its end passed), requests the successor once the end is within the '
  'handoff, and returns the database clock, the next time a claim can act (wa.next_claim_at) and the number '
  'of buffers claimable now (at most p_backlog_limit). Caller: buffer-processor.';

create function wa.release_keepalive(p_function text, p_holder text, p_now timestamptz default now())
returns boolean
language plpgsql
set search_path = ''
as $$
begin
  update wa.keepalive k set holder = null, lease_until = null, ends_at = null
  where k.function_name = p_function and k.holder = p_holder;
  if not found then
    return false;
  end if;
  -- Still the holder at its end (no successor arrived yet, or it stopped early at its CPU share): request one
  -- now rather than at the next pg_cron tick.
  perform wa.keep_functions_alive(p_now);
  return true;
end;
$$;
comment on function wa.release_keepalive(text, text, timestamptz) is
  'Frees the slot if p_holder still holds it and requests its successor at once (within the request grace, a '
  'pending request is not repeated). False when a successor already holds it. Caller: buffer-processor.';

revoke all on function wa.keepalive_handoff(), wa.keepalive_request_grace(),
  wa.keep_functions_alive(timestamptz),
  wa.acquire_keepalive(text, text, interval, interval, timestamptz),
  wa.keepalive_beat(text, text, interval, integer, timestamptz),
  wa.release_keepalive(text, text, timestamptz)
  from public, anon, authenticated, service_role;

-- A cluster that gained pg_net after the buffer_processor migration ran gets the keepalive tick now.
select wa.schedule_jobs();
