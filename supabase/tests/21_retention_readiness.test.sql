-- Readiness reads each pg_cron job's newest run of the last 90 minutes by start time, found by runid (pg_cron's
-- only index) whatever the size of the history; retention purges the calls' events, the agent's tool calls and
-- its expired cached answers by wa.retention_policies. In one transaction now() is fixed, so every time below
-- is relative to it.
begin;
select plan(13);

-- A clean slate inside this transaction: pg_cron may have recorded runs.
delete from cron.job_run_details;

-- ---------------------------------------------------------------------------------------------
-- Readiness: a time window, not a count of runs
-- ---------------------------------------------------------------------------------------------
select is(wa.first_cron_run_since(now() - interval '90 minutes'), null, 'an empty history has no first run');

-- pg_cron numbers runs as it schedules them, so runids follow start times: insert in start order.
create function pg_temp.run(p_job text, p_status text, p_ago interval) returns bigint language sql as $$
  insert into cron.job_run_details (jobid, database, username, command, status, return_message, start_time,
                                    end_time)
  select j.jobid, 'postgres', 'postgres', j.command, p_status, p_status, now() - p_ago, now() - p_ago
  from cron.job j where j.jobname = p_job
  returning runid
$$;
select pg_temp.run('wabase-send-pairs-purge', 'failed', interval '2 hours');
create temp table window_start as select pg_temp.run('wabase-rate-limit-purge', 'succeeded', interval '80 minutes') as runid;
-- 50,001 runs of another job since: more than the old bound of the last 50,000 runs.
insert into cron.job_run_details (jobid, database, username, command, status, start_time, end_time)
select -1, 'postgres', 'postgres', 'select 1', 'succeeded', now() - interval '1 minute', now() - interval '1 minute'
from generate_series(1, 50001);
select pg_temp.run('wabase-orphan-sweep', 'succeeded', interval '30 seconds');

select is(wa.first_cron_run_since(now() - interval '90 minutes'), (select runid from window_start),
  'the first run of the last 90 minutes is found by runid');
select is(wa.first_cron_run_since(now()), (select max(runid) + 1 from cron.job_run_details),
  'no run since: the newest runid + 1 (an empty window)');
select is(public.ops_readiness() -> 'cron_jobs' -> 'wabase-send-pairs-purge' -> 'last_run', 'null'::jsonb,
  'a run older than 90 minutes is outside the window (its failure no longer decides readiness)');
select is((public.ops_readiness() -> 'cron_jobs' -> 'wabase-rate-limit-purge' -> 'last_run' ->> 'started_at')::timestamptz,
  now() - interval '80 minutes', 'a run 80 minutes ago is inside it, with 50,001 runs of other jobs since');
select is(public.ops_readiness() -> 'cron_jobs' -> 'wabase-orphan-sweep' -> 'last_run' ->> 'status', 'succeeded',
  'the newest run of a frequent job is reported');
insert into cron.job_run_details (jobid, database, username, command, status)
select j.jobid, 'postgres', 'postgres', j.command, 'starting' from cron.job j where j.jobname = 'wabase-orphan-sweep';
select is(wa.first_cron_run_since(now()), (select max(runid) from cron.job_run_details),
  'a run not started yet (no start time) is a recent one');

-- ---------------------------------------------------------------------------------------------
-- Retention of call events, agent tool calls and expired cached tool answers
-- ---------------------------------------------------------------------------------------------
insert into wa.call_events (call_id, event, event_at, payload, applied, first_seen_at, last_seen_at, delivery_count)
values ('call-old', 'connect', now() - interval '40 days', '{}', true, now() - interval '40 days',
        now() - interval '31 days', 2),
       ('call-new', 'connect', now() - interval '1 day', '{}', true, now() - interval '1 day', now() - interval '1 day', 1);
insert into wa.agent_tool_calls (conversation_id, fence, round, tool, source, duration_ms, called_at)
values (gen_random_uuid(), 1, 1, 'erp', 'live', 10, now() - interval '31 days'),
       (gen_random_uuid(), 2, 1, 'erp', 'live', 10, now() - interval '1 day');
insert into wa.agent_tools (name, description, endpoint, cache_ttl)
values ('erp', 'stock', 'http://127.0.0.1:9/erp', interval '60 seconds'),
       ('catalog', 'prices', 'http://127.0.0.1:9/catalog', interval '60 days');
insert into wa.agent_tool_cache (tool, arguments_key, arguments, result, fetched_at)
values ('erp', 'old', '{}', '{}', now() - interval '8 days'),
       ('erp', 'recent', '{}', '{}', now() - interval '1 day'),
       ('catalog', 'fresh', '{}', '{}', now() - interval '10 days');

select throws_ok($$update wa.retention_policies set keep = '7 days' where target = 'call_events'$$, '23514', null,
  'keeping call events less than 8 days is refused (Meta redelivers for 7: a late event would apply twice)');
select results_eq(
  $$select (r ->> 'call_events')::int, (r ->> 'agent_tool_calls')::int, (r ->> 'agent_tool_cache')::int
    from (select wa.purge_history() as r) x$$,
  $$values (1, 1, 1)$$,
  'retention removes and reports a 31-day-old call event, tool call and an expired 8-day-old cached answer');
select results_eq($$select call_id from wa.call_events$$, $$values ('call-new')$$, 'the recent call event stays');
select results_eq($$select fence from wa.agent_tool_calls$$, $$values (2::bigint)$$, 'the recent tool call stays');
select results_eq($$select arguments_key from wa.agent_tool_cache order by arguments_key$$,
  $$values ('fresh'), ('recent')$$,
  'a cached answer younger than the policy stays, and so does an old one still within its tool''s TTL');
update wa.retention_policies set keep = '12 hours' where target = 'agent_tool_cache';
delete from wa.retention_policies where target = 'agent_tool_calls';
insert into wa.agent_tool_calls (conversation_id, fence, round, tool, source, duration_ms, called_at)
values (gen_random_uuid(), 3, 1, 'erp', 'live', 10, now() - interval '1 year');
select results_eq(
  $$select (r ->> 'agent_tool_cache')::int, (r ->> 'agent_tool_calls')::int from (select wa.purge_history() as r) x$$,
  $$values (1, 0)$$, 'a changed policy purges expired answers sooner; a target without a policy is kept');

select * from finish();
rollback;
