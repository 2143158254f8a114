-- The contract of chat sessions: optimistic locking by version (SQLSTATE 40001 on conflict), idle expiry by
-- pg_cron, the settled bookkeeping, and the session in the agent's context.
begin;
select plan(24);

create function pg_temp.t(p_time text) returns timestamptz language sql immutable as $$
  select ('2026-01-01 ' || p_time || '+00')::timestamptz
$$;
select wa.ingest_webhook(tests.webhook(tests.change(jsonb_build_object(
  'contacts', jsonb_build_array(tests.contact('5215500000001', 'Ana'), tests.contact('5215500000002', 'Beto')),
  'messages', jsonb_build_array(tests.msg('wamid.S1', 'text', '{"body":"hola"}', '5215500000001'),
                                tests.msg('wamid.S2', 'text', '{"body":"buenas"}', '5215500000002'))))),
  pg_temp.t('00:00:00'));
create function pg_temp.conv(p_wa_id text) returns uuid language sql stable as $$
  select c.id from public.conversations c join public.contacts k on k.id = c.contact_id where k.wa_id = p_wa_id
$$;

-- ---------------------------------------------------------------------------------------------
-- Optimistic locking
-- ---------------------------------------------------------------------------------------------
select results_eq($$select state, data, version from wa.get_chat_session(pg_temp.conv('5215500000001'))$$,
  $$values ('start', '{}'::jsonb, 0::bigint)$$, 'a conversation without a session reads as start, {}, version 0');
select is(wa.update_chat_session(pg_temp.conv('5215500000001'), 0, 'qualifying', '{"turns":1}', pg_temp.t('00:01:00')),
  1::bigint, 'the first write names version 0, creates the session and returns version 1');
select results_eq($$select state, data, version, expires_at from wa.get_chat_session(pg_temp.conv('5215500000001'))$$,
  $$values ('qualifying', '{"turns":1}'::jsonb, 1::bigint, pg_temp.t('00:16:00'))$$,
  'it expires after the default 15 minutes of idleness');
select throws_ok($$select wa.update_chat_session(pg_temp.conv('5215500000001'), 0, 'other', '{}')$$, '40001',
  'version conflict', 'a second "first write" is a version conflict');
select throws_ok($$select wa.update_chat_session(pg_temp.conv('5215500000001'), 7, 'other', '{}')$$, '40001',
  'version conflict', 'a wrong expected version is a version conflict');
select results_eq($$select state, version from wa.get_chat_session(pg_temp.conv('5215500000001'))$$,
  $$values ('qualifying', 1::bigint)$$, 'and a conflict writes nothing');
update wa.phone_numbers set session_idle_timeout = interval '5 minutes' where phone_number_id = 'PN1';
select is(wa.update_chat_session(pg_temp.conv('5215500000001'), 1, 'quoted', '{"turns":2}', pg_temp.t('00:02:00')),
  2::bigint, 'the right expected version writes and returns the next version');
select is((select expires_at from wa.chat_sessions where conversation_id = pg_temp.conv('5215500000001')),
  pg_temp.t('00:07:00'), 'the idle timeout is the business number''s, pushed forward by each write');
select throws_ok($$select wa.update_chat_session(pg_temp.conv('5215500000001'), 2, '', '{}')$$, '22023',
  'a session needs a non-empty state and an object as data', 'an empty state is refused with 22023');
select throws_ok($$select wa.update_chat_session(pg_temp.conv('5215500000001'), 2, 'x', '[1]')$$, '22023',
  'a session needs a non-empty state and an object as data', 'non-object data is refused with 22023');
select throws_ok($$select wa.update_chat_session('00000000-0000-0000-0000-000000000000', 0, 'x', '{}')$$, 'P0002',
  null, 'an unknown conversation is refused with P0002');

-- ---------------------------------------------------------------------------------------------
-- Idle expiry
-- ---------------------------------------------------------------------------------------------
select wa.update_chat_session(pg_temp.conv('5215500000002'), 0, 'qualifying', '{"turns":1}', pg_temp.t('00:06:30'));
select is(wa.expire_idle_sessions(pg_temp.t('00:08:00')), 1, 'the expiry job expires only the idle session');
select results_eq($$select state, data, version from wa.get_chat_session(pg_temp.conv('5215500000001'))$$,
  $$values ('expired', '{"turns":2}'::jsonb, 3::bigint)$$, 'it keeps the data and bumps the version');
select results_eq($$select state, version from wa.get_chat_session(pg_temp.conv('5215500000002'))$$,
  $$values ('qualifying', 1::bigint)$$, 'the active session is untouched');
select throws_ok($$select wa.update_chat_session(pg_temp.conv('5215500000001'), 2, 'late', '{}')$$, '40001',
  'version conflict', 'a handler still holding the pre-expiry version conflicts instead of overwriting');
select is((select result from wa.job_runs where job = 'session-expiry' and ran_at = pg_temp.t('00:08:00')),
  '{"expired": 1}'::jsonb, 'the run is recorded with its count');
select is(wa.expire_idle_sessions(pg_temp.t('00:08:30')), 0, 'an expired session is not expired again');
select is(wa.update_chat_session(pg_temp.conv('5215500000001'), 3, 'start', '{}', pg_temp.t('00:09:00')), 4::bigint,
  'a new conversation turn writes over an expired session with its current version');

-- ---------------------------------------------------------------------------------------------
-- Bookkeeping and the agent's context
-- ---------------------------------------------------------------------------------------------
select wa.note_batch_outcome(pg_temp.conv('5215500000001'), 'replied', pg_temp.t('00:10:00'));
select wa.note_batch_outcome(pg_temp.conv('5215500000002'), 'replied', pg_temp.t('00:10:05'));
select is((select batches from wa.bot_daily_stats where day = '2026-01-01' and phone_number_id = 'PN1'
           and outcome = 'replied'), 2, 'daily counters add up per number and outcome');
select is((select bot_last_activity_at from public.conversations where id = pg_temp.conv('5215500000002')),
  pg_temp.t('00:10:05'), 'the conversation gets its bot activity stamp');

create temp table claimed as select * from wa.claim_buffers('w', 10, interval '60 seconds', pg_temp.t('00:20:00'));
select is((select wa.agent_context_with_session(c.fence) -> 'session' from claimed c
           where c.conversation_id = pg_temp.conv('5215500000001')),
  '{"state": "start", "data": {}, "version": 4}'::jsonb, 'the agent''s context carries the session and its version');
select is(wa.agent_context_with_session(-1), null, 'no context for an unknown fence');
select ok(exists (select from cron.job where jobname = 'wabase-session-expiry' and command = 'select wa.expire_idle_sessions()'),
  'the expiry job is scheduled by pg_cron');
select is_empty(
  $$select f::text || ' by ' || r.rolname
    from unnest(array['wa.get_chat_session(uuid)', 'wa.update_chat_session(uuid, bigint, text, jsonb, timestamptz)',
                      'wa.expire_idle_sessions(timestamptz)', 'wa.note_batch_outcome(uuid, text, timestamptz)',
                      'wa.agent_context_with_session(bigint, integer)']::regprocedure[]) f
    cross join (values ('anon'), ('authenticated'), ('service_role')) as r (rolname)
    where has_function_privilege(r.rolname, f, 'execute')$$,
  'no session function is executable by the API roles');

select * from finish();
rollback;
