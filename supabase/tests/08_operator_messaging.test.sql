-- Operator messaging: access by the conversation's rules, idempotent sends by client id, the 24-hour window
-- (time injected through p_now), bot pause/resume and auto-pause, and the read receipt claimed once.
begin;
select plan(22);

create function pg_temp.t(p_time text) returns timestamptz language sql immutable as $$
  select ('2026-01-01 ' || p_time || '+00')::timestamptz
$$;
insert into public.teams (id, name) values ('10000000-0000-0000-0000-000000000001', 'T1'),
                                          ('10000000-0000-0000-0000-000000000002', 'T2');
create temp table u (name text primary key, id uuid not null);
grant select on u to authenticated;
insert into u values
  ('owner', tests.create_user('owner@x.test', 'executive', '10000000-0000-0000-0000-000000000001')),
  ('backup', tests.create_user('backup@x.test', 'executive', '10000000-0000-0000-0000-000000000001')),
  ('coord', tests.create_user('coord@x.test', 'coordinator', '10000000-0000-0000-0000-000000000001')),
  ('other', tests.create_user('other@x.test', 'executive', '10000000-0000-0000-0000-000000000002'));
create function pg_temp.id(p_name text) returns uuid language sql stable as $$ select id from u where name = p_name $$;
grant execute on function pg_temp.id(text) to authenticated;

-- The customer writes at 00:00 on day 1 (Meta's timestamp is what opens the window).
select wa.ingest_webhook(tests.webhook(tests.change(jsonb_build_object(
  'contacts', jsonb_build_array(tests.contact('5215500000001', 'Ana')),
  'messages', jsonb_build_array(tests.msg('wamid.IN1', 'text', '{"body":"hola"}', '5215500000001',
                                          extract(epoch from pg_temp.t('00:00:00'))::bigint))))),
  pg_temp.t('00:00:00'));
create temp table conv as
  select c.id from public.conversations c join public.contacts k on k.id = c.contact_id
  where c.phone_number_id = 'PN1' and k.wa_id = '5215500000001';
grant select on conv to authenticated;
update public.conversations set assigned_executive_id = pg_temp.id('owner'), team_id = '10000000-0000-0000-0000-000000000001'
where id = (select id from conv);
select wa.assign_backup(pg_temp.id('owner'), pg_temp.id('owner'), pg_temp.id('backup'));
create function pg_temp.send(p_actor text, p_client text, p_type text, p_at timestamptz) returns text language sql as $$
  select status || '/' || created from wa.begin_operator_send(pg_temp.id(p_actor), (select id from conv),
    p_client::uuid, p_type, jsonb_build_object('type', p_type, 'text', jsonb_build_object('body', 'hi')), p_at)
$$;

-- ---------------------------------------------------------------------------------------------
-- Access
-- ---------------------------------------------------------------------------------------------
select lives_ok($$select wa.require_conversation_access(pg_temp.id('owner'), (select id from conv))$$,
  'the assigned executive may act');
select lives_ok($$select wa.require_conversation_access(pg_temp.id('backup'), (select id from conv))$$,
  'so may their backup');
select lives_ok($$select wa.require_conversation_access(pg_temp.id('coord'), (select id from conv))$$,
  'and the team''s coordinator');
select throws_ok($$select wa.require_conversation_access(pg_temp.id('other'), (select id from conv))$$, 'PT403',
  null, 'an executive of another team may not');
select throws_ok($$select wa.require_conversation_access(pg_temp.id('owner'), gen_random_uuid())$$, 'PT404', null,
  'an unknown conversation is PT404');

-- ---------------------------------------------------------------------------------------------
-- The 24-hour window and idempotency
-- ---------------------------------------------------------------------------------------------
select is(pg_temp.send('owner', '00000000-0000-0000-0000-00000000000a', 'text', pg_temp.t('23:59:00')), 'pending/true',
  'a free-form message at 23h59 is written as pending');
select is(pg_temp.send('owner', '00000000-0000-0000-0000-00000000000a', 'text', pg_temp.t('23:59:30')), 'pending/false',
  'the same client id again returns the first message, not a second one');
select is((select count(*)::int from public.messages where direction = 'outbound' and conversation_id = (select id from conv)),
  1, 'one outbound message');
select throws_ok(
  $$select pg_temp.send('owner', '00000000-0000-0000-0000-00000000000b', 'text', '2026-01-02 00:01:00+00')$$,
  'P0422', 'the 24-hour customer service window is closed: only an approved template can be sent',
  'a free-form message at 24h01 is refused');
select is(pg_temp.send('owner', '00000000-0000-0000-0000-00000000000c', 'template', '2026-01-02 00:01:00+00'),
  'pending/true', 'a template at 24h01 is accepted');
update public.messages set status = 'failed' where idempotency_key like '%00000000000a';
select is(pg_temp.send('owner', '00000000-0000-0000-0000-00000000000a', 'text', pg_temp.t('23:59:40')), 'pending/true',
  'a definitely failed message is handed back for one resend');
select is(pg_temp.send('owner', '00000000-0000-0000-0000-00000000000a', 'text', pg_temp.t('23:59:41')), 'pending/false',
  'and only once');

-- ---------------------------------------------------------------------------------------------
-- Pause, resume, auto-pause
-- ---------------------------------------------------------------------------------------------
select is((select bot_paused_until from public.conversations where id = (select id from conv)), '2026-01-02 00:31:00+00'::timestamptz,
  'an operator reply pauses the bot for the number''s auto-pause (30 min) after the latest send');
update wa.phone_numbers set bot_auto_pause = interval '5 minutes' where phone_number_id = 'PN1';
select pg_temp.send('backup', '00000000-0000-0000-0000-00000000000d', 'template', '2026-01-02 00:02:00+00');
select is((select bot_paused_until from public.conversations where id = (select id from conv)), '2026-01-02 00:31:00+00'::timestamptz,
  'a shorter auto-pause never shortens a longer pause');
select tests.authenticate_as(pg_temp.id('other'));
select throws_ok($$select public.pause_bot((select id from conv))$$, 'PT403', null,
  'an outsider cannot pause the bot');
select tests.authenticate_as(pg_temp.id('backup'));
select is(public.pause_bot((select id from conv)), 'infinity'::timestamptz, 'the backup pauses the bot until resumed');
select tests.clear_authentication();
select results_eq($$select bot_paused_until, bot_paused_by from public.conversations where id = (select id from conv)$$,
  $$values ('infinity'::timestamptz, pg_temp.id('backup'))$$, 'the pause and who set it are visible');
create temp table claimed as
  select * from wa.claim_buffers('w', 1000, interval '60 seconds', pg_temp.t('00:01:00'))
  where conversation_id = (select id from conv);
select throws_ok($$select wa.begin_agent_reply((select fence from claimed), (select up_to_seq from claimed), 'text',
                                               '{"text":{"body":"bot"}}')$$,
  'P0423', null, 'an agent reply cannot be written while the bot is paused');
select is((select wa.agent_context_with_session(fence) -> 'bot_paused' from claimed), 'true'::jsonb,
  'and the agent context says so');
select tests.authenticate_as(pg_temp.id('owner'));
select public.resume_bot((select id from conv));
select tests.clear_authentication();
select is((select bot_paused_until from public.conversations where id = (select id from conv)), null, 'resume clears the pause');

-- ---------------------------------------------------------------------------------------------
-- Read state
-- ---------------------------------------------------------------------------------------------
select results_eq($$select marked, receipt_wamid from wa.mark_conversation_read(pg_temp.id('coord'), (select id from conv))$$,
  $$values (1, 'wamid.IN1')$$, 'marking read marks the inbound message and claims its read receipt');
select results_eq($$select marked, receipt_wamid from wa.mark_conversation_read(pg_temp.id('owner'), (select id from conv))$$,
  $$values (0, null::text)$$, 'a second call marks nothing and claims no receipt: it is sent once');

select * from finish();
rollback;
