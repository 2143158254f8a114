-- wabase operations: the figures a team watches to know replies flow (public.ops_metrics, read by the health
-- function's readiness, metrics and status page), the event counts behind them, and retention of everything
-- that grows without bound.

-- Cheap counts for a probe that runs every few seconds on tables that only grow.
create index messages_unknown_outcome_idx on public.messages (conversation_id)
  where direction = 'outbound' and status = 'unknown';
create index chat_sessions_expired_idx on wa.chat_sessions (conversation_id) where state = 'expired';

-- ============================================================================================
-- The figures
-- ============================================================================================
create function wa.first_cron_run_since(p_since timestamptz)
returns bigint
language plpgsql
stable
set search_path = ''
as $$
declare
  v_low bigint;
  v_high bigint;
  v_mid bigint;
  v_run bigint;
  v_start timestamptz;
begin
  -- cron.job_run_details has no index but its primary key (runid, from a sequence as runs are scheduled), and
  -- wabase cannot add one (pg_cron owns the table). Start times grow with runids, so a binary search over
  -- runids finds the first run since p_since in a few dozen probes by primary key, whatever the history's size.
  select min(d.runid), max(d.runid) + 1 into v_low, v_high from cron.job_run_details d;
  while v_low < v_high loop
    v_mid := v_low + (v_high - v_low) / 2;
    select d.runid, d.start_time into v_run, v_start
    from cron.job_run_details d where d.runid >= v_mid order by d.runid limit 1;
    -- A run not started yet has no start time: it is a recent one.
    if v_start is null or v_start >= p_since then
      v_high := v_mid;
    else
      v_low := v_run + 1;
    end if;
  end loop;
  return v_low;
end;
$$;
comment on function wa.first_cron_run_since(timestamptz) is
  'The first runid of cron.job_run_details started at or after p_since (the newest runid + 1 when none; null '
  'when the history is empty), by binary search over the primary key: runs are numbered as they are scheduled, '
  'so a run a busy pg_cron starts late can fall on the wrong side by those seconds. Caller: public.ops_readiness.';
revoke all on function wa.first_cron_run_since(timestamptz) from public, anon, authenticated, service_role;

-- Readiness alone, for a probe anyone may call often: each figure is read by index (the oldest due time from
-- buffers_due_at_idx, each job's newest run by runid), none of the hour's counts.
create function public.ops_readiness()
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  with
  -- A 1-second job adds 86,400 runs a day to cron.job_run_details: each job's newest run is found walking runid
  -- backwards over the last 90 minutes only (every wabase job but the daily retention runs at least hourly), a
  -- few thousand runs at most, bounded by runid.
  last_runs as (
    select j.jobid, r.status, r.start_time, r.end_time, r.return_message
    from cron.job j
    join lateral (
      select d.status, d.start_time, d.end_time, d.return_message
      from cron.job_run_details d
      where d.jobid = j.jobid and d.runid >= (select wa.first_cron_run_since(now() - interval '90 minutes'))
      order by d.runid desc
      limit 1
    ) r on true
    where j.jobname like 'wabase-%'
  )
  select jsonb_build_object(
    'migration_version', (select max(m.version) from supabase_migrations.schema_migrations m),
    'pg_cron_version', (select e.extversion from pg_catalog.pg_extension e where e.extname = 'pg_cron'),
    'buffers', jsonb_build_object(
                 'oldest_overdue_seconds',
                 (select coalesce(round(extract(epoch from now() - min(b.due_at))::numeric, 3), 0)
                  from wa.buffers b where b.due_at <= now())),
    'cron_jobs', (select coalesce(jsonb_object_agg(j.jobname, jsonb_build_object(
                    'schedule', j.schedule, 'active', j.active,
                    'last_run', case when r.jobid is null then null else jsonb_build_object(
                      'status', r.status, 'started_at', r.start_time, 'ended_at', r.end_time,
                      'message', left(r.return_message, 500)) end)), '{}'::jsonb)
                  from cron.job j left join last_runs r on r.jobid = j.jobid
                  where j.jobname like 'wabase-%'),
    'missing_cron_jobs', (select coalesce(jsonb_agg(w.name order by w.name), '[]'::jsonb)
                          from wa.jobs w
                          where not exists (select from cron.job j where j.jobname = w.name)
                            and (not w.needs_pg_net
                                 or to_regprocedure('net.http_post(text,jsonb,jsonb,jsonb,integer)') is not null)),
    'circuit_breakers', (select coalesce(jsonb_object_agg(c.name, jsonb_build_object('state', c.state,
                                                                                     'since', c.updated_at)),
                                         '{}'::jsonb) from wa.circuit_breakers c)
  )
$$;
comment on function public.ops_readiness() is
  'What readiness is decided from, cheaply (by index, none of the hour''s counts): the latest applied '
  'migration, pg_cron''s version, the oldest overdue buffer''s age, each wabase pg_cron job with its last run '
  'of the last 90 minutes (null: none), missing jobs, circuit breakers. Part of public.ops_metrics. Caller: the '
  'health function''s /ready, or anyone holding the service role key.';
revoke all on function public.ops_readiness() from public, anon, authenticated;
grant execute on function public.ops_readiness() to service_role;

create function public.ops_metrics()
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  with
  minutes as (
    select generate_series(date_trunc('minute', now()) - interval '59 minutes', date_trunc('minute', now()),
                           interval '1 minute') as minute
  ),
  recent as (
    select date_trunc('minute', e.at) as minute, e.kind, e.n
    from wa.ops_events e where e.at >= date_trunc('minute', now()) - interval '59 minutes'
    union all
    select date_trunc('minute', d.created_at), 'dead_letter', 1
    from wa.dead_letters d where d.created_at >= date_trunc('minute', now()) - interval '59 minutes'
  ),
  per_minute as (
    select m.minute,
           coalesce(sum(r.n) filter (where r.kind = 'claim'), 0) as claims,
           coalesce(sum(r.n) filter (where r.kind = 'completion'), 0) as completions,
           coalesce(sum(r.n) filter (where r.kind = 'dead_letter'), 0) as dead_letters,
           coalesce(sum(r.n) filter (where r.kind = 'duplicate'), 0) as duplicates,
           coalesce(sum(r.n) filter (where r.kind = 'rate_limited'), 0) as rate_limited
    from minutes m left join recent r on r.minute = m.minute
    group by m.minute
  ),
  readiness as (
    select public.ops_readiness() as figures
  )
  select (select r.figures from readiness r) || jsonb_build_object(
    'generated_at', now(),
    'buffers', (select jsonb_build_object(
                  'buffers', count(*),
                  'messages', coalesce(sum(b.message_count), 0),
                  'due_now', count(*) filter (where b.due_at <= now() and b.lease_until is null),
                  'in_flight', count(*) filter (where b.lease_until > now()),
                  'expired_leases', count(*) filter (where b.lease_until <= now()),
                  'backing_off', count(*) filter (where b.retry_not_before > now() and b.lease_until is null))
                from wa.buffers b) || (select r.figures -> 'buffers' from readiness r),
    'last_hour', (select jsonb_build_object(
                    'claims', sum(p.claims), 'completions', sum(p.completions),
                    'dead_letters', sum(p.dead_letters), 'duplicates_suppressed', sum(p.duplicates),
                    'rate_limit_rejections', sum(p.rate_limited),
                    'claims_per_minute', round(sum(p.claims) / 60.0, 2),
                    'completions_per_minute', round(sum(p.completions) / 60.0, 2),
                    'sessions_expired', (select coalesce(sum((r.result ->> 'expired')::integer), 0)
                                         from wa.job_runs r
                                         where r.job = 'session-expiry' and r.ran_at > now() - interval '1 hour'))
                  from per_minute p),
    'per_minute', (select jsonb_build_object(
                     'minutes', jsonb_agg(p.minute order by p.minute),
                     'claims', jsonb_agg(p.claims order by p.minute),
                     'completions', jsonb_agg(p.completions order by p.minute),
                     'dead_letters', jsonb_agg(p.dead_letters order by p.minute))
                   from per_minute p),
    'dead_letters', (select count(*) from wa.dead_letters),
    'outbound_unknown', (select count(*) from public.messages m
                         where m.direction = 'outbound' and m.status = 'unknown'),
    'sessions_expired', (select count(*) from wa.chat_sessions s where s.state = 'expired'),
    'job_results', (select coalesce(jsonb_object_agg(r.job, jsonb_build_object('ran_at', r.ran_at,
                                                                               'result', r.result)), '{}'::jsonb)
                    from (select distinct on (jr.job) jr.job, jr.ran_at, jr.result from wa.job_runs jr
                          order by jr.job, jr.ran_at desc) r)
  )
$$;
comment on function public.ops_metrics() is
  'What a team watches to know replies flow, as one JSON object: buffer depth, due now, in flight, oldest '
  'overdue age; claims, completions, dead letters, duplicates suppressed and rate-limit refusals over the last '
  'hour (totals and per minute); dead letters and sends of unknown outcome in all; expired sessions; each '
  'wabase pg_cron job with its last run (cron.job_run_details) and what it last did (wa.job_runs); missing '
  'jobs; circuit breakers; the latest applied migration (the readiness figures: public.ops_readiness). Caller: the '
  'health function, or anyone holding the service role key (it is not granted to anon or authenticated).';
revoke all on function public.ops_metrics() from public, anon, authenticated;
grant execute on function public.ops_metrics() to service_role;

-- ============================================================================================
-- Retention
-- ============================================================================================
create table wa.retention_policies (
  target text primary key check (target in ('webhook_events', 'inbound_receipts', 'message_statuses', 'job_runs',
                                            'ops_events', 'cron_job_run_details', 'call_events',
                                            'agent_tool_calls', 'agent_tool_cache')),
  keep interval not null check (keep > interval '0'),
  -- Meta redelivers for up to 7 days: a shorter memory of wamids (or of call events) would apply a late
  -- redelivery twice.
  constraint retention_policies_keep_redelivery_window
    check (target not in ('inbound_receipts', 'message_statuses', 'call_events') or keep >= interval '8 days')
);
comment on table wa.retention_policies is
  'How long the daily retention job keeps each kind of history; change a row to change the job''s next run.';
revoke all on table wa.retention_policies from public, anon, authenticated, service_role;
insert into wa.retention_policies (target, keep) values
  ('webhook_events', '30 days'), ('inbound_receipts', '30 days'), ('message_statuses', '30 days'),
  ('job_runs', '14 days'), ('ops_events', '7 days'), ('cron_job_run_details', '7 days'),
  ('call_events', '30 days'), ('agent_tool_calls', '30 days'), ('agent_tool_cache', '7 days');

create function wa.purge_history(p_now timestamptz default now())
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_keep jsonb;
  v_events integer;
  v_receipts integer;
  v_statuses integer;
  v_job_runs integer;
  v_ops_events integer;
  v_cron_runs integer;
  v_call_events integer;
  v_tool_calls integer;
  v_tool_cache integer;
  v_result jsonb;
begin
  select jsonb_object_agg(p.target, p.keep) into v_keep from wa.retention_policies p;
  -- A target without a policy is kept, not purged with a guessed age.
  -- Ingested events only: a rejected body stays until someone has looked at it.
  delete from wa.webhook_events
  where received_at < p_now - (v_keep ->> 'webhook_events')::interval and error is null;
  get diagnostics v_events = row_count;
  delete from wa.inbound_receipts where last_seen_at < p_now - (v_keep ->> 'inbound_receipts')::interval;
  get diagnostics v_receipts = row_count;
  delete from wa.message_statuses where last_seen_at < p_now - (v_keep ->> 'message_statuses')::interval;
  get diagnostics v_statuses = row_count;
  delete from wa.job_runs where ran_at < p_now - (v_keep ->> 'job_runs')::interval;
  get diagnostics v_job_runs = row_count;
  delete from wa.ops_events where at < p_now - (v_keep ->> 'ops_events')::interval;
  get diagnostics v_ops_events = row_count;
  -- pg_cron keeps a row per run of every job forever; on hosted Supabase that table is shared by all jobs.
  delete from cron.job_run_details
  where coalesce(end_time, start_time) < p_now - (v_keep ->> 'cron_job_run_details')::interval;
  get diagnostics v_cron_runs = row_count;
  -- The calls (calls migration) and the agent's tools (agent tools migration), created after this one.
  delete from wa.call_events where last_seen_at < p_now - (v_keep ->> 'call_events')::interval;
  get diagnostics v_call_events = row_count;
  delete from wa.agent_tool_calls where called_at < p_now - (v_keep ->> 'agent_tool_calls')::interval;
  get diagnostics v_tool_calls = row_count;
  -- Expired answers only: one still within its tool's cache_ttl is served, however old.
  delete from wa.agent_tool_cache c using wa.agent_tools t
  where t.name = c.tool and c.fetched_at < p_now - (v_keep ->> 'agent_tool_cache')::interval
    and c.fetched_at + t.cache_ttl <= p_now;
  get diagnostics v_tool_cache = row_count;
  v_result := jsonb_build_object('webhook_events', v_events, 'inbound_receipts', v_receipts,
                                 'message_statuses', v_statuses, 'job_runs', v_job_runs,
                                 'ops_events', v_ops_events, 'cron_job_run_details', v_cron_runs,
                                 'call_events', v_call_events, 'agent_tool_calls', v_tool_calls,
                                 'agent_tool_cache', v_tool_cache);
  insert into wa.job_runs (job, ran_at, result) values ('retention', p_now, v_result);
  return v_result;
end;
$$;
comment on function wa.purge_history(timestamptz) is
  'Retention (pg_cron, daily): deletes ingested webhook events, inbound receipts, status events, job runs, '
  'ops events, pg_cron run details, call events, agent tool calls and expired agent tool cache entries older '
  'than their wa.retention_policies row (none: kept); rejected events, messages and dead letters are kept. '
  'Records and returns the counts removed per target.';
revoke all on function wa.purge_history(timestamptz) from public, anon, authenticated, service_role;

insert into wa.jobs (name, schedule, command) values ('wabase-retention', '17 3 * * *', 'select wa.purge_history()');
select wa.schedule_jobs();
