-- The contract of operations: ops_metrics on crafted data (buffers, the last hour's counts per minute,
-- duplicates, rate-limit refusals, dead letters, unknown sends, expired sessions, pg_cron job runs), its
-- privileges, and retention by wa.retention_policies. In one transaction now() is fixed, so every time below
-- is relative to it.
begin;
select plan(27);

-- A clean slate inside this transaction: pg_cron may have recorded runs, and other files' data is rolled back.
delete from cron.job_run_details;
delete from wa.ops_events;
delete from wa.job_runs;

create function pg_temp.m() returns jsonb language sql as $$ select public.ops_metrics() $$;
create function pg_temp.say(p_wamids text[], p_from text, p_at timestamptz) returns jsonb language sql as $$
  select wa.ingest_webhook(tests.webhook(tests.change(jsonb_build_object(
    'contacts', jsonb_build_array(tests.contact(p_from, 'C ' || p_from)),
    'messages', (select jsonb_agg(tests.msg(w, 'text', jsonb_build_object('body', 'hola'), p_from))
                 from unnest(p_wamids) w)), 'PN-OPS')), p_at)
$$;

-- ---------------------------------------------------------------------------------------------
-- Buffers and duplicates
-- ---------------------------------------------------------------------------------------------
-- Ana wrote a minute ago (due 50 s ago with the 10 s quiet period); Ben writes now (due in 10 s).
select pg_temp.say(array['wamid.OPS1', 'wamid.OPS2'], '5215500000101', now() - interval '1 minute');
select pg_temp.say(array['wamid.OPS1', 'wamid.OPS2'], '5215500000101', now() - interval '1 minute');
select pg_temp.say(array['wamid.OPS1', 'wamid.OPS2'], '5215500000101', now() - interval '1 minute');
-- Ben's one message delivered twice in the same POST.
select pg_temp.say(array['wamid.OPS3', 'wamid.OPS3'], '5215500000102', now());

select results_eq(
  $$select (b ->> 'buffers')::int, (b ->> 'messages')::int, (b ->> 'due_now')::int, (b ->> 'in_flight')::int,
           (b ->> 'oldest_overdue_seconds')::numeric
    from (select pg_temp.m() -> 'buffers' as b) x$$,
  $$values (2, 3, 1, 0, 50.000)$$,
  'buffers: two buffers, three messages, Ana''s due for 50 s, Ben''s not yet due, none in flight');
select is((pg_temp.m() -> 'last_hour' ->> 'duplicates_suppressed')::int, 5,
  'duplicates: two redeliveries of two messages plus one in-POST duplicate');

-- ---------------------------------------------------------------------------------------------
-- Claims, completions, dead letters, per minute
-- ---------------------------------------------------------------------------------------------
create temp table ana_claim as select * from wa.claim_buffers('w1', 5);
select results_eq(
  $$select (b ->> 'due_now')::int, (b ->> 'in_flight')::int from (select pg_temp.m() -> 'buffers' as b) x$$,
  $$values (0, 1)$$, 'a claimed buffer is in flight, not due');
select wa.complete_buffer(fence, up_to_seq) from ana_claim;
-- Ben's buffer: claimed as if due, then dead-lettered by a permanent failure.
create temp table ben_claim as select * from wa.claim_buffers('w1', 5, p_now => now() + interval '11 seconds');
select wa.fail_buffer(fence, 'bad request', p_permanent => true) from ben_claim;
-- Older activity: 4 claims ten minutes ago, 7 completions half an hour ago, 9 claims 61 minutes ago (outside
-- the hour), a dead letter two hours ago.
insert into wa.ops_events (at, kind, n) values
  (now() - interval '10 minutes', 'claim', 4), (now() - interval '30 minutes', 'completion', 7),
  (now() - interval '61 minutes', 'claim', 9);
insert into wa.dead_letters (conversation_id, fence, attempts, errors, messages, created_at)
select conversation_id, 0, 5, '[]', '[]', now() - interval '2 hours' from ana_claim;

select results_eq(
  $$select (h ->> 'claims')::int, (h ->> 'completions')::int, (h ->> 'dead_letters')::int,
           (h ->> 'claims_per_minute')::numeric, (h ->> 'completions_per_minute')::numeric
    from (select pg_temp.m() -> 'last_hour' as h) x$$,
  $$values (6, 8, 1, 0.10, 0.13)$$,
  'last hour: 2 + 4 claims, 1 + 7 completions, 1 dead letter; the 61-minute-old claims are out');
select is((pg_temp.m() ->> 'dead_letters')::int, 2, 'dead letters in all include the two-hour-old one');
select results_eq(
  $$select jsonb_array_length(p -> 'minutes'), (p -> 'minutes' ->> 59)::timestamptz,
           (p -> 'minutes' ->> 0)::timestamptz
    from (select pg_temp.m() -> 'per_minute' as p) x$$,
  $$values (60, date_trunc('minute', now()), date_trunc('minute', now()) - interval '59 minutes')$$,
  'per minute: sixty minutes, oldest first, ending with the current one');
select results_eq(
  $$select (p -> 'claims' ->> 59)::int, (p -> 'claims' ->> 49)::int, (p -> 'completions' ->> 29)::int,
           (p -> 'completions' ->> 59)::int, (p -> 'dead_letters' ->> 59)::int,
           (select sum(v::int) from jsonb_array_elements_text(p -> 'claims') v)
    from (select pg_temp.m() -> 'per_minute' as p) x$$,
  $$values (2, 4, 7, 1, 1, 6::bigint)$$,
  'per minute: each count sits in its minute');

-- ---------------------------------------------------------------------------------------------
-- Rate limits, unknown sends, sessions
-- ---------------------------------------------------------------------------------------------
select count(*) from generate_series(1, 12) g
  cross join lateral wa.take_rate_limit_token('ops-subject', 'auth', 1, now() + g * interval '1 microsecond') t;
select is((pg_temp.m() -> 'last_hour' ->> 'rate_limit_rejections')::int, 2,
  'rate limit: 12 auth takes against a bucket of 10 count 2 refusals');

insert into public.messages (conversation_id, direction, type, body, sent_at, status)
select conversation_id, 'outbound', 'text', '{}', now(), s
from ana_claim, unnest(array['unknown', 'unknown', 'sent']) s;
select is((pg_temp.m() ->> 'outbound_unknown')::int, 2, 'outbound_unknown counts sends of unknown outcome');

insert into wa.chat_sessions (conversation_id, state, version, updated_at, expires_at)
select conversation_id, 'expired', 2, now(), now() from ana_claim
union all select conversation_id, 'greeting', 1, now(), now() + interval '15 minutes' from ben_claim;
insert into wa.job_runs (job, ran_at, result) values
  ('session-expiry', now() - interval '5 minutes', '{"expired": 3}'),
  ('session-expiry', now() - interval '2 hours', '{"expired": 4}');
select results_eq(
  $$select (pg_temp.m() ->> 'sessions_expired')::int, (pg_temp.m() -> 'last_hour' ->> 'sessions_expired')::int$$,
  $$values (1, 3)$$, 'sessions: one expired now, three expired by the job within the hour');
select is(pg_temp.m() -> 'job_results' -> 'session-expiry' -> 'result', '{"expired": 3}'::jsonb,
  'job_results holds each job''s latest result');

-- ---------------------------------------------------------------------------------------------
-- pg_cron jobs
-- ---------------------------------------------------------------------------------------------
insert into cron.job_run_details (jobid, job_pid, database, username, command, status, return_message,
                                  start_time, end_time)
select j.jobid, 1, 'postgres', 'postgres', j.command, r.status, r.message,
       now() - r.ago, now() - r.ago + interval '1 second'
from cron.job j,
     (values ('succeeded', 'SELECT 1', interval '2 minutes'), ('failed', 'ERROR:  boom', interval '1 minute'))
       as r (status, message, ago)
where j.jobname = 'wabase-orphan-sweep';
select results_eq(
  $$select c ->> 'schedule', (c ->> 'active')::boolean, c -> 'last_run' ->> 'status', c -> 'last_run' ->> 'message',
           (c -> 'last_run' ->> 'started_at')::timestamptz
    from (select pg_temp.m() -> 'cron_jobs' -> 'wabase-orphan-sweep' as c) x$$,
  $$values ('* * * * *', true, 'failed', 'ERROR:  boom', now() - interval '1 minute')$$,
  'cron jobs: each with its schedule and its latest run from cron.job_run_details');
select is(pg_temp.m() -> 'cron_jobs' -> 'wabase-retention' -> 'last_run', 'null'::jsonb,
  'a job that never ran has a null last run');
select is(pg_temp.m() -> 'missing_cron_jobs', '[]'::jsonb, 'every wabase job is scheduled');
select cron.unschedule('wabase-session-expiry');
select is(pg_temp.m() -> 'missing_cron_jobs', '["wabase-session-expiry"]'::jsonb,
  'an unscheduled job is reported missing');
select is(pg_temp.m() ->> 'migration_version', (select max(version) from supabase_migrations.schema_migrations),
  'the latest applied migration is reported');

-- ---------------------------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------------------------
select results_eq(
  $$select r, has_function_privilege(r, 'public.ops_metrics()', 'execute')
    from unnest(array['anon', 'authenticated', 'service_role']) r$$,
  $$values ('anon', false), ('authenticated', false), ('service_role', true)$$,
  'ops_metrics is for the service role only');
set local role service_role;
select ok(public.ops_metrics() ? 'buffers', 'the service role reads the figures through the security definer');
reset role;

-- ---------------------------------------------------------------------------------------------
-- Readiness: only what it decides from, the same figures as ops_metrics
-- ---------------------------------------------------------------------------------------------
select is((select array_agg(k order by k) from jsonb_object_keys(public.ops_readiness()) k),
  array['buffers', 'circuit_breakers', 'cron_jobs', 'migration_version', 'missing_cron_jobs', 'pg_cron_version'],
  'ops_readiness holds the readiness figures only');
select is(public.ops_readiness() -> 'buffers',
  jsonb_build_object('oldest_overdue_seconds', pg_temp.m() #> '{buffers,oldest_overdue_seconds}'),
  'its oldest overdue age is the one ops_metrics reports');
select ok(pg_temp.m() @> (public.ops_readiness() - 'buffers'), 'ops_metrics holds the readiness figures');
select results_eq(
  $$select r, has_function_privilege(r, 'public.ops_readiness()', 'execute')
    from unnest(array['anon', 'authenticated', 'service_role']) r$$,
  $$values ('anon', false), ('authenticated', false), ('service_role', true)$$,
  'ops_readiness is for the service role only');
select is_empty(
  $$select f::text || ' by ' || r.rolname
    from unnest(array['wa.purge_history(timestamptz)',
                      'wa.take_rate_limit_token(text, text, integer, timestamptz)']::regprocedure[]) f
    cross join (values ('anon'), ('authenticated'), ('service_role')) as r (rolname)
    where has_function_privilege(r.rolname, f, 'execute')$$,
  'no operations internal is executable by anon, authenticated or service_role');

-- ---------------------------------------------------------------------------------------------
-- Retention
-- ---------------------------------------------------------------------------------------------
insert into wa.ops_events (at, kind) values (now() - interval '8 days', 'claim');
insert into cron.job_run_details (jobid, database, username, command, status, start_time, end_time)
select j.jobid, 'postgres', 'postgres', j.command, 'succeeded',
       now() - interval '8 days', now() - interval '8 days'
from cron.job j where j.jobname = 'wabase-orphan-sweep';
insert into wa.webhook_events (payload, signature_valid, received_at)
values ('{"old": 1}', true, now() - interval '2 days'), ('{"old": 2}', true, now() - interval '2 days');
update wa.retention_policies set keep = '1 day' where target = 'webhook_events';
delete from wa.retention_policies where target = 'job_runs';
insert into wa.job_runs (job, ran_at, result) values ('ancient', now() - interval '1 year', '{}');

select results_eq(
  $$select (r ->> 'ops_events')::int, (r ->> 'cron_job_run_details')::int, (r ->> 'webhook_events')::int,
           (r ->> 'job_runs')::int
    from (select wa.purge_history() as r) x$$,
  $$values (1, 1, 2, 0)$$,
  'retention removes 8-day-old ops events and cron runs, events past a changed policy, and reports it');
select ok(not exists (select from wa.webhook_events where payload ? 'old')
          and (select count(*) from cron.job_run_details) = 2,
  'the old rows are gone; the recent cron runs stay');
select ok(exists (select from wa.job_runs where job = 'ancient'), 'a target without a policy is kept');
select is((select count(*)::int from wa.job_runs where job = 'retention'), 1, 'the run is recorded as a job run');

select * from finish();
rollback;
