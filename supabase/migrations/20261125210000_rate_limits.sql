-- wabase rate limits: a token bucket per (subject, category) in Postgres, so every function instance and every
-- isolate shares one count, and a burst of identical requests (thousands of browser retries) is refused with a
-- wait instead of reaching the handlers.

-- ============================================================================================
-- Configuration and buckets
-- ============================================================================================
create table wa.rate_limit_config (
  category text primary key check (category <> ''),
  -- The burst a subject may spend at once; a new subject starts with a full bucket.
  capacity integer not null check (capacity > 0),
  -- Tokens added back per minute, continuously (refill_per_minute / 60 per second), up to capacity.
  refill_per_minute numeric not null check (refill_per_minute > 0),
  comment text
);
comment on table wa.rate_limit_config is
  'Rate-limit categories: bucket capacity and continuous refill per minute. Changes apply to the next take of '
  'every bucket (a lower capacity caps stored tokens).';
insert into wa.rate_limit_config (category, capacity, refill_per_minute, comment) values
  ('auth', 10, 10, 'authentication attempts (sign-in, OTP, token exchange): 10 per minute'),
  ('chat', 100, 100, 'chat actions (sending, reading, claiming conversations): 100 per minute'),
  ('media', 50, 50, 'media uploads and downloads: 50 per minute');

create table wa.rate_limit_buckets (
  -- Whatever the caller limits: a user id, an IP, a phone number... prefixed by the caller if needed.
  subject text not null check (subject <> ''),
  category text not null references wa.rate_limit_config (category) on delete cascade,
  -- Tokens as of updated_at (the refill since then is applied by the next take).
  tokens double precision not null,
  updated_at timestamptz not null,
  primary key (subject, category)
)
-- Every take updates its row: leave room for HOT updates (no indexed column changes).
with (fillfactor = 80);
comment on table wa.rate_limit_buckets is
  'One token bucket per (subject, category): tokens as of updated_at. A missing row is a full bucket; '
  'wa.purge_rate_limit_buckets deletes the rows that are full again.';

revoke all on table wa.rate_limit_config, wa.rate_limit_buckets from public, anon, authenticated, service_role;

-- ============================================================================================
-- Taking tokens
-- ============================================================================================
create function wa.take_rate_limit_token(
  p_subject text, p_category text, p_cost integer default 1, p_now timestamptz default clock_timestamp()
)
returns table (allowed boolean, remaining double precision, retry_after_ms integer)
language plpgsql
set search_path = ''
as $$
declare
  v_config wa.rate_limit_config;
  v_bucket wa.rate_limit_buckets;
  v_tokens double precision;
begin
  if p_subject is null or p_subject = '' then
    raise exception 'a rate-limit subject must be a non-empty text' using errcode = '22023';
  end if;
  if p_cost is null or p_cost < 1 then
    raise exception 'a rate-limit cost must be at least 1 token, not %', coalesce(p_cost::text, 'null')
      using errcode = '22023';
  end if;
  if p_now is null then
    raise exception 'a rate-limit take needs a time' using errcode = '22023';
  end if;
  select * into v_config from wa.rate_limit_config c where c.category = p_category;
  if not found then
    raise exception 'unknown rate-limit category %', coalesce(quote_literal(p_category), 'null')
      using errcode = '22023',
            hint = (select 'known categories: ' || string_agg(c.category, ', ' order by c.category)
                    from wa.rate_limit_config c);
  end if;
  if p_cost > v_config.capacity then
    -- It could never be allowed: an error, not a wait.
    raise exception 'a rate-limit cost of % exceeds the capacity % of category %', p_cost, v_config.capacity,
      p_category using errcode = '22023';
  end if;

  -- The bucket's row lock serialises every take on it: concurrent takes queue here, each seeing the tokens
  -- the previous one left. A missing bucket is created full; the loop covers a purge deleting the row
  -- between our insert and our lock (the next pass inserts it again).
  loop
    select * into v_bucket from wa.rate_limit_buckets b
    where b.subject = p_subject and b.category = p_category
    for update;
    exit when found;
    insert into wa.rate_limit_buckets (subject, category, tokens, updated_at)
    values (p_subject, p_category, v_config.capacity, p_now)
    on conflict (subject, category) do nothing;
  end loop;

  -- Continuous refill since the last take, capped at capacity. A p_now earlier than updated_at (a take that
  -- read the clock before queueing behind a later one) refills nothing and leaves updated_at where it is.
  v_tokens := least(
    v_config.capacity::double precision,
    v_bucket.tokens
      + greatest(0, extract(epoch from p_now - v_bucket.updated_at))::double precision
        * v_config.refill_per_minute::double precision / 60);

  allowed := v_tokens >= p_cost;
  if allowed then
    v_tokens := v_tokens - p_cost;
    retry_after_ms := 0;
  else
    -- Time until p_cost tokens are there, rounded up to the millisecond (the rounding to 1e-6 ms first keeps
    -- float noise from adding a millisecond to an exact wait).
    retry_after_ms := least(2147483647, greatest(1, ceil(round(
      ((p_cost - v_tokens) * 60000 / v_config.refill_per_minute::double precision)::numeric, 6))))::integer;
  end if;
  remaining := v_tokens;

  update wa.rate_limit_buckets b
  set tokens = v_tokens, updated_at = greatest(b.updated_at, p_now)
  where b.subject = p_subject and b.category = p_category;
  if not allowed then
    -- A refusal is counted for ops_metrics; an allowed take is not an event worth a row.
    insert into wa.ops_events (kind) values ('rate_limited');
  end if;
  return next;
end;
$$;
comment on function wa.take_rate_limit_token(text, text, integer, timestamptz) is
  'Token bucket per (p_subject, p_category), refilled continuously at refill_per_minute/60 per second up to '
  'capacity (wa.rate_limit_config); a new subject starts full. With at least p_cost tokens: takes them and '
  'returns allowed true, the tokens left and retry_after_ms 0. Otherwise returns allowed false, the tokens '
  'there and retry_after_ms = the wait until p_cost tokens are (rounded up, >= 1), leaving the bucket as it '
  'was but for the refill. Atomic under any concurrency (row lock on the bucket). Raises 22023 for an empty '
  'subject, an unknown category, a cost below 1 or above the capacity. Counts a refusal for ops_metrics. '
  'Caller: Edge Functions via takeToken (_shared/ratelimit.ts), which answers 429 with Retry-After.';

-- ============================================================================================
-- Purging full buckets
-- ============================================================================================
create function wa.purge_rate_limit_buckets(p_now timestamptz default now())
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_purged integer;
begin
  -- A bucket refilled to capacity is indistinguishable from a missing one (a new subject starts full). A
  -- take holding the row lock makes this delete wait and re-check the row as that take left it.
  delete from wa.rate_limit_buckets b
  using wa.rate_limit_config c
  where c.category = b.category
    and b.tokens + greatest(0, extract(epoch from p_now - b.updated_at))::double precision
        * c.refill_per_minute::double precision / 60 >= c.capacity;
  get diagnostics v_purged = row_count;
  insert into wa.job_runs (job, ran_at, result)
  values ('rate-limit-purge', p_now, jsonb_build_object('purged', v_purged));
  return v_purged;
end;
$$;
comment on function wa.purge_rate_limit_buckets(timestamptz) is
  'Rate-limit purge (pg_cron, every 10 minutes): deletes the buckets idle long enough to be full again '
  '(at the latest capacity/refill_per_minute minutes after their last take), which changes no outcome since a '
  'missing bucket starts full. Records the count in wa.job_runs and returns it.';

revoke all on function wa.take_rate_limit_token(text, text, integer, timestamptz),
  wa.purge_rate_limit_buckets(timestamptz)
  from public, anon, authenticated, service_role;

-- ============================================================================================
-- Scheduling
-- ============================================================================================
insert into wa.jobs (name, schedule, command) values
  ('wabase-rate-limit-purge', '*/10 * * * *', 'select wa.purge_rate_limit_buckets()');
select wa.schedule_jobs();
