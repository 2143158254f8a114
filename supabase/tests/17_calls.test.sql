-- Calls: a call belongs to its conversation (its RLS and its topics); public.live_calls() returns the calls in
-- progress the caller may see and flags one ringing past its number's alert; the status page's figures.
begin;
select plan(17);

insert into public.teams (id, name) values ('17000000-0000-0000-0000-000000000001', 'Calls A'),
                                          ('17000000-0000-0000-0000-000000000002', 'Calls B');
create temp table u (name text primary key, id uuid not null);
grant select on u to authenticated;
insert into u values
  ('ea', tests.create_user('ea@calls.test', 'executive', '17000000-0000-0000-0000-000000000001')),
  ('ca', tests.create_user('ca@calls.test', 'coordinator', '17000000-0000-0000-0000-000000000001')),
  ('eb', tests.create_user('eb@calls.test', 'executive', '17000000-0000-0000-0000-000000000002'));
create function pg_temp.id(p_name text) returns uuid language sql stable as $$ select id from u where name = p_name $$;
grant execute on function pg_temp.id(text) to authenticated;

create function pg_temp.calls(p_phone text, p_calls jsonb, p_statuses jsonb default '[]') returns jsonb
language sql as $$
  select wa.ingest_webhook(tests.webhook(jsonb_build_array(jsonb_build_object('field', 'calls', 'value',
    jsonb_build_object('messaging_product', 'whatsapp',
                       'metadata', jsonb_build_object('display_phone_number', '15550001', 'phone_number_id', 'PNC'),
                       'contacts', jsonb_build_array(tests.contact(p_phone, 'Caller ' || p_phone)),
                       'calls', p_calls, 'statuses', p_statuses)))), timestamptz '2026-12-01 12:00:00+00')
$$;
create function pg_temp.connect(p_id text, p_phone text, p_at bigint) returns jsonb language sql as $$
  select jsonb_build_object('id', p_id, 'from', p_phone, 'to', '15550001', 'event', 'connect',
                            'timestamp', p_at::text, 'direction', 'USER_INITIATED')
$$;
-- 2026-12-01 12:00:00 UTC and minutes after it.
create function pg_temp.t(p_minutes numeric) returns bigint language sql as $$
  select 1796126400 + (p_minutes * 60)::bigint
$$;

insert into wa.phone_numbers (phone_number_id, call_unanswered_alert) values ('PNC', interval '2 minutes');

-- Three customers: two owned by Ana (team A), one by Beto (team B).
select pg_temp.calls('5215570000001', jsonb_build_array(pg_temp.connect('wacid.A1', '5215570000001', pg_temp.t(0))));
select pg_temp.calls('5215570000002', jsonb_build_array(pg_temp.connect('wacid.A2', '5215570000002', pg_temp.t(1))));
select pg_temp.calls('5215570000003', jsonb_build_array(pg_temp.connect('wacid.B1', '5215570000003', pg_temp.t(2))));
update public.conversations c set team_id = '17000000-0000-0000-0000-000000000001', assigned_executive_id = pg_temp.id('ea')
from public.contacts k where k.id = c.contact_id and k.wa_id in ('5215570000001', '5215570000002');
update public.conversations c set team_id = '17000000-0000-0000-0000-000000000002', assigned_executive_id = pg_temp.id('eb')
from public.contacts k where k.id = c.contact_id and k.wa_id = '5215570000003';

select results_eq($$select call_id, state, direction from public.calls where call_id like 'wacid._%' and phone_number_id = 'PNC'
                    order by call_id$$,
  $$values ('wacid.A1', 'ringing', 'inbound'), ('wacid.A2', 'ringing', 'inbound'), ('wacid.B1', 'ringing', 'inbound')$$,
  'each connect of a customer''s call is a ringing inbound call');

-- ---------------------------------------------------------------------------------------------
-- Broadcasts go to the conversation's topics
-- ---------------------------------------------------------------------------------------------
create temp table seen (id uuid primary key);
insert into seen select id from realtime.messages;
select pg_temp.calls('5215570000001', '[]', jsonb_build_array(jsonb_build_object(
  'id', 'wacid.A1', 'timestamp', pg_temp.t(0.5)::text, 'type', 'call', 'status', 'ACCEPTED',
  'recipient_id', '5215570000001')));
select results_eq($$select m.topic, m.payload ->> 'table', m.payload -> 'record' ->> 'state' from realtime.messages m
                    where not exists (select from seen s where s.id = m.id) and m.payload ->> 'table' = 'calls'
                    order by m.topic$$,
  $$values ('executive:' || pg_temp.id('ea'), 'calls', 'connected'),
           ('team:17000000-0000-0000-0000-000000000001', 'calls', 'connected')$$,
  'an accepted call is broadcast to its conversation''s executive and team topics, and nowhere else');

-- ---------------------------------------------------------------------------------------------
-- live_calls and RLS
-- ---------------------------------------------------------------------------------------------
select tests.authenticate_as(pg_temp.id('ea'));
select results_eq($$select call_id, state, unanswered_too_long, waiting_seconds
                    from public.live_calls(timestamptz '2026-12-01 12:01:20+00') order by call_id$$,
  $$values ('wacid.A1', 'connected', false, 80), ('wacid.A2', 'ringing', false, 20)$$,
  'Ana''s monitor: her calls in progress, how long each has waited');
select is((select count(*)::int from public.calls where call_id = 'wacid.B1'), 0, 'another team''s call is invisible');
select tests.authenticate_as(pg_temp.id('eb'));
select results_eq($$select call_id from public.live_calls(timestamptz '2026-12-01 12:02:00+00')$$,
  $$values ('wacid.B1')$$, 'Beto''s monitor holds only his call');
select tests.authenticate_as(pg_temp.id('ca'));
select is((select count(*)::int from public.live_calls(timestamptz '2026-12-01 12:02:00+00')), 2,
  'the coordinator of team A sees the team''s calls');
select tests.clear_authentication();

select tests.authenticate_as(pg_temp.id('ea'));
select is((select unanswered_too_long from public.live_calls(timestamptz '2026-12-01 12:02:30+00')
           where call_id = 'wacid.A2'), false, 'the number''s alert is 2 minutes: a call ringing 1.5 minutes is not flagged');
select is((select unanswered_too_long from public.live_calls(timestamptz '2026-12-01 12:03:30+00')
           where call_id = 'wacid.A2'), true, 'past it, it is');
select tests.clear_authentication();

-- Ended calls leave the monitor.
select pg_temp.calls('5215570000002', jsonb_build_array(jsonb_build_object(
  'id', 'wacid.A2', 'from', '5215570000002', 'to', '15550001', 'event', 'terminate', 'direction', 'USER_INITIATED',
  'timestamp', pg_temp.t(3)::text, 'status', 'COMPLETED', 'start_time', pg_temp.t(1)::text,
  'end_time', pg_temp.t(3)::text)));
select results_eq($$select state, outcome, duration_seconds from public.calls where call_id = 'wacid.A2'$$,
  $$values ('ended', 'missed', null::integer)$$, 'a customer''s call that ends unanswered is missed');
select tests.authenticate_as(pg_temp.id('ea'));
select results_eq($$select call_id from public.live_calls(timestamptz '2026-12-01 12:04:00+00')$$,
  $$values ('wacid.A1')$$, 'an ended call leaves the monitor');
select tests.clear_authentication();

-- Answering a customer's call (no webhook says so: the softphone reports it).
select pg_temp.calls('5215570000001', jsonb_build_array(pg_temp.connect('wacid.A3', '5215570000001', pg_temp.t(5))));
select tests.authenticate_as(pg_temp.id('eb'));
select throws_ok($$select public.answer_call((select id from public.calls where call_id = 'wacid.A3'))$$, 'PT404', null,
  'another team''s executive cannot answer it (not visible is not found)');
select tests.authenticate_as(pg_temp.id('ea'));
select results_eq($$select state, assigned_executive_id, answered_at is not null
                    from public.answer_call((select id from public.calls where call_id = 'wacid.A3'))$$,
  $$values ('connected', pg_temp.id('ea'), true)$$, 'Ana answers it: connected, answered, hers');
select results_eq($$select state from public.answer_call((select id from public.calls where call_id = 'wacid.A3'))$$,
  $$values ('connected')$$, 'answering again is a no-op');
select throws_ok($$select public.answer_call((select id from public.calls where call_id = 'wacid.A2'))$$, 'PT409', null,
  'an ended call cannot be answered');
select tests.clear_authentication();

select ok((select bool_and(not has_function_privilege('anon', p.oid, 'execute'))
           from pg_proc p where p.proname in ('live_calls', 'call_metrics', 'answer_call') and p.pronamespace = 'public'::regnamespace),
  'anon calls none of live_calls, call_metrics, answer_call');

-- ---------------------------------------------------------------------------------------------
-- The status page's figures
-- ---------------------------------------------------------------------------------------------
select is(public.call_metrics(timestamptz '2026-12-01 12:04:00+00') -> 'calls',
  jsonb_build_object('in_progress', (select count(*) from public.calls where state <> 'ended'),
                     'unanswered_too_long', (select count(*) from public.calls k where k.state = 'ringing'
                                              and k.alert_at < '2026-12-01 12:04:00+00'),
                     'answered_today', (select count(*) from public.calls where answered_at is not null
                                          and started_at >= '2026-12-01'),
                     'missed_today', (select count(*) from public.calls where outcome in ('missed', 'rejected')
                                        and started_at >= '2026-12-01')),
  'call_metrics counts calls in progress, flagged, answered and missed today');
select ok((public.call_metrics(timestamptz '2026-12-01 12:04:00+00') -> 'calls' ->> 'missed_today')::int >= 1
          and (public.call_metrics(timestamptz '2026-12-01 12:04:00+00') -> 'calls' ->> 'answered_today')::int >= 1,
  'with this test''s missed and answered calls among them');

select * from finish();
rollback;
