-- The contract of outbound (issue 20): the send governor (slots at the number's rate, the campaign horizon
-- and bot/operator priority, the pair rate with bursts, 130429 and 131056 backoff). Concurrency and the Graph
-- API path are in supabase/functions/_shared/governor.test.ts and bench/campaigns.ts.
begin;
select plan(44);

create function pg_temp.t(p_ms numeric) returns timestamptz language sql immutable as $$
  select '2026-01-01 00:00:00+00'::timestamptz + p_ms * interval '1 millisecond'
$$;
create function pg_temp.slot(p_number text, p_recipient text, p_priority text, p_ms numeric)
returns table (granted boolean, wait_ms integer) language sql as $$
  select * from wa.take_send_slot(p_number, p_recipient, p_priority, pg_temp.t(p_ms))
$$;
insert into wa.phone_numbers (phone_number_id) values ('gov-80'), ('gov-fast'), ('gov-coex');
update wa.phone_numbers set send_rate_mps = 1000000 where phone_number_id = 'gov-fast';
update wa.phone_numbers set throughput_level = 'COEXISTENCE' where phone_number_id = 'gov-coex';

-- ---------------------------------------------------------------------------------------------
-- The number's rate and the priorities
-- ---------------------------------------------------------------------------------------------
select results_eq(
  $$select s.granted, s.wait_ms from generate_series(1, 3) g, pg_temp.slot('gov-80', 'r' || g, 'campaign', 0) s$$,
  $$values (true, 0), (true, 13), (true, 25)$$,
  'at STANDARD (80 mps) campaign sends get slots 12.5 ms apart');
select is((select count(*)::integer from generate_series(4, 30) g, pg_temp.slot('gov-80', 'r' || g, 'campaign', 0) s
           where s.granted), 18,
  'campaign slots are booked at most campaign_horizon (250 ms) ahead: 21 in all');
select results_eq($$select * from pg_temp.slot('gov-80', 'r31', 'campaign', 0)$$, $$values (false, 13)$$,
  'the next campaign send is told to come back when a slot is within the horizon, booking nothing');
select results_eq($$select * from pg_temp.slot('gov-80', 'bot', 'interactive', 0)$$, $$values (true, 13)$$,
  'a bot reply behind a running campaign waits one interval at most');
select results_eq($$select * from pg_temp.slot('gov-80', null, 'interactive', 1000)$$, $$values (true, 0)$$,
  'once the schedule is past, a send (a read receipt: no recipient) goes at once');
select results_eq(
  $$select s.wait_ms from generate_series(1, 2) g, pg_temp.slot('gov-coex', 'r' || g, 'campaign', 0) s$$,
  $$values (0), (50)$$, 'a coexistence number runs at 20 mps');

-- ---------------------------------------------------------------------------------------------
-- The pair rate
-- ---------------------------------------------------------------------------------------------
select is((select count(*)::integer from generate_series(1, 45) g, pg_temp.slot('gov-fast', 'ana' || left(g::text, 0), 'interactive', 0) s
           where s.granted and s.wait_ms = 0), 45, 'a burst of 45 messages to one user goes at once');
select results_eq($$select * from pg_temp.slot('gov-fast', 'ana', 'interactive', 0)$$, $$values (false, 6000)$$,
  'the 46th waits for the borrowed time to be paid back: one pair interval (6 s)');
select results_eq($$select * from pg_temp.slot('gov-fast', 'beto', 'interactive', 0)$$, $$values (true, 0)$$,
  'other recipients are unaffected');
select results_eq($$select * from pg_temp.slot('gov-fast', 'ana', 'interactive', 6000)$$, $$values (true, 0)$$,
  'after 6 s one more message to her goes');

-- ---------------------------------------------------------------------------------------------
-- Meta's throttling codes
-- ---------------------------------------------------------------------------------------------
select is(wa.note_send_throttled('gov-80', null, 130429, pg_temp.t(2000)), 1000, '130429 pauses the number 1 s');
select results_eq($$select * from pg_temp.slot('gov-80', 'r40', 'campaign', 2000)$$, $$values (false, 750)$$,
  'no campaign slot until the pause is within the horizon');
select is((select round(wa.send_rate(n, g, pg_temp.t(2000)))::integer from wa.phone_numbers n
           join wa.send_governor g using (phone_number_id) where n.phone_number_id = 'gov-80'), 64,
  'and its rate drops by a fifth (80 to 64 mps)...');
select is((select round(wa.send_rate(n, g, pg_temp.t(62000)))::integer from wa.phone_numbers n
           join wa.send_governor g using (phone_number_id) where n.phone_number_id = 'gov-80'), 80,
  '...recovering within a minute');
select results_eq(
  $$select wa.note_send_throttled('gov-fast', 'carla', 131056, pg_temp.t(g * 100)) from generate_series(0, 2) g$$,
  $$values (1000), (4000), (16000)$$, '131056 in a row backs the pair off 4^X s: 1, 4, 16 s');
select throws_ok($$select * from pg_temp.slot('gov-80', 'x', 'urgent', 0)$$, '22023', null,
  'an unknown priority is refused');

-- ---------------------------------------------------------------------------------------------
-- Templates: the catalogue, its webhooks, list_templates
-- ---------------------------------------------------------------------------------------------
select is(wa.upsert_templates('WABA1', $$[
  {"id": "T1", "name": "seguimiento", "language": "es_MX", "status": "APPROVED", "category": "MARKETING",
   "quality_score": {"score": "GREEN"},
   "components": [{"type": "HEADER", "format": "IMAGE"}, {"type": "BODY", "text": "Hola {{1}}, {{2}}"},
                  {"type": "BUTTONS", "buttons": [{"type": "URL", "url": "https://x.mx/{{1}}"}]}]},
  {"id": "T2", "name": "cita", "language": "es_MX", "status": "PENDING", "category": "UTILITY",
   "parameter_format": "named", "components": [{"type": "BODY", "text": "Tu cita {{fecha}}"}]}]$$::jsonb), 2,
  'a page of the Graph API''s templates is stored');
select is((select parameters from wa.message_templates where template_id = 'T1'),
  $$[{"component": "header", "name": "header", "type": "image"},
     {"component": "body", "name": "1", "type": "text"}, {"component": "body", "name": "2", "type": "text"},
     {"component": "button", "index": 0, "name": "1", "type": "text"}]$$::jsonb,
  'its parameters are derived from the components: media header, body placeholders, URL button suffix');
select is(wa.apply_account_changes(tests.webhook(jsonb_build_array(jsonb_build_object(
  'field', 'message_template_status_update', 'value', jsonb_build_object('event', 'APPROVED',
  'message_template_id', 'T2', 'message_template_name', 'cita', 'message_template_language', 'es_MX',
  'reason', 'NONE'))))), 1, 'message_template_status_update is applied');
select is((select status from wa.message_templates where template_id = 'T2'), 'APPROVED',
  'the template is APPROVED by its status webhook');
select wa.apply_account_changes(tests.webhook(jsonb_build_array(jsonb_build_object(
  'field', 'message_template_quality_update', 'value', jsonb_build_object('previous_quality_score', 'GREEN',
  'new_quality_score', 'YELLOW', 'message_template_id', 'T1', 'message_template_name', 'seguimiento',
  'message_template_language', 'es_MX')))));
select is((select quality from wa.message_templates where template_id = 'T1'), 'YELLOW',
  'message_template_quality_update sets the quality');
select wa.apply_account_changes(tests.webhook(jsonb_build_array(jsonb_build_object(
  'field', 'template_category_update', 'value', jsonb_build_object('previous_category', 'UTILITY',
  'new_category', 'MARKETING', 'message_template_id', 'T2', 'message_template_name', 'cita',
  'message_template_language', 'es_MX')))));
select is((select category from wa.message_templates where template_id = 'T2'), 'MARKETING',
  'template_category_update sets the category');
select wa.apply_account_changes(tests.webhook(jsonb_build_array(jsonb_build_object(
  'field', 'message_template_status_update', 'value', jsonb_build_object('event', 'PAUSED',
  'message_template_id', 'T9', 'message_template_name', 'nueva', 'message_template_language', 'en_US')))));
select is((select status from wa.message_templates where template_id = 'T9'), 'PAUSED',
  'a webhook about a template the catalogue lacks adds it');

insert into wa.phone_numbers (phone_number_id, waba_id) values ('tpl-pn', 'WABA1');
select tests.create_user('tpl-exec@wabase.test');
select tests.authenticate_as((select id from auth.users where email = 'tpl-exec@wabase.test'));
select results_eq($$select name, language, status from public.list_templates('tpl-pn')$$,
  $$values ('cita', 'es_MX', 'APPROVED'), ('seguimiento', 'es_MX', 'APPROVED')$$,
  'list_templates gives a user the approved templates of a number''s account');
select results_eq($$select name from public.list_templates(p_status => null, p_language => 'en_US')$$,
  $$values ('nueva')$$, 'and filters by language and status');
select tests.clear_authentication();
select throws_ok($$select wa.check_template_send('tpl-pn', '{"name": "seguimiento", "language": {"code": "es_MX"},
  "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}]}')$$, 'P0422', null,
  'a template send with the wrong parameters is refused');

-- ---------------------------------------------------------------------------------------------
-- Campaigns: who creates them, opt-outs skipped, pause/resume/cancel, progress on the team's topic
-- ---------------------------------------------------------------------------------------------
insert into public.teams (id, name) values ('00000000-0000-0000-0000-0000000000c1', 'camp-north'),
  ('00000000-0000-0000-0000-0000000000c2', 'camp-south');
select tests.create_user('camp-coord@wabase.test', 'coordinator', '00000000-0000-0000-0000-0000000000c1');
select tests.create_user('camp-exec@wabase.test', 'executive', '00000000-0000-0000-0000-0000000000c1');
insert into public.contacts (wa_id, marketing_opted_out_at) values ('5215599990002', now());
create function pg_temp.user_id(p_email text) returns uuid language sql as $$
  select id from auth.users where email = p_email
$$;
create function pg_temp.recipients() returns jsonb language sql as $$
  select jsonb_agg(jsonb_build_object('phone', '+52 1 55 9999 000' || g, 'components', jsonb_build_array(
    jsonb_build_object('type', 'header', 'parameters', jsonb_build_array(jsonb_build_object('type', 'image',
      'image', jsonb_build_object('id', 'm1')))),
    jsonb_build_object('type', 'body', 'parameters', jsonb_build_array(jsonb_build_object('type', 'text', 'text', 'a'),
      jsonb_build_object('type', 'text', 'text', 'b'))),
    jsonb_build_object('type', 'button', 'index', 0, 'parameters',
      jsonb_build_array(jsonb_build_object('type', 'text', 'text', 'x'))))))
  from generate_series(1, 3) g
$$;
select set_config('test.recipients', pg_temp.recipients()::text, false),
       set_config('test.coord', pg_temp.user_id('camp-coord@wabase.test')::text, false);
select tests.authenticate_as(pg_temp.user_id('camp-exec@wabase.test'));
select throws_ok($$select public.create_campaign('c', 'tpl-pn', 'seguimiento', 'es_MX',
  current_setting('test.recipients')::jsonb)$$,
  'PT403', null, 'an executive cannot create a campaign');
select tests.clear_authentication();
select tests.authenticate_as(current_setting('test.coord')::uuid);
select throws_ok($$select public.create_campaign('c', 'tpl-pn', 'seguimiento', 'es_MX',
  current_setting('test.recipients')::jsonb,
  team_id => '00000000-0000-0000-0000-0000000000c2')$$, 'PT403', null,
  'a coordinator cannot create one for another team');
select throws_ok($$select public.create_campaign('c', 'tpl-pn', 'seguimiento', 'es_MX', '[{"phone": "+5215599990001"}]')$$,
  'PT422', null, 'recipients whose components do not fit the template are refused');
select lives_ok($$select set_config('test.campaign', public.create_campaign('Seguimiento', 'tpl-pn', 'seguimiento',
  'es_MX', current_setting('test.recipients')::jsonb)::text, false)$$, 'a coordinator creates one for their team');
select tests.clear_authentication();
select results_eq($$select k.wa_id, r.state, r.reason from wa.campaign_recipients r join public.contacts k on k.id = r.contact_id
  where r.campaign_id = current_setting('test.campaign')::uuid order by k.wa_id$$,
  $$values ('5215599990001', 'queued', null::text), ('5215599990002', 'skipped', 'opted_out'),
           ('5215599990003', 'queued', null)$$,
  'recipients are contacts by phone; one who stopped marketing messages is skipped');
select tests.authenticate_as(current_setting('test.coord')::uuid);
select is(public.set_campaign_status(current_setting('test.campaign')::uuid, 'pause'), 'paused', 'paused');
select tests.clear_authentication();
select is((select count(*)::integer from wa.claim_campaign_send('w', p_now => now() + interval '1 minute')), 0,
  'a paused campaign sends nothing');
select tests.authenticate_as(current_setting('test.coord')::uuid);
select public.set_campaign_status(current_setting('test.campaign')::uuid, 'cancel');
select throws_ok($$select public.set_campaign_status(current_setting('test.campaign')::uuid, 'resume')$$, 'PT409', null,
  'a cancelled campaign cannot be resumed');
select tests.clear_authentication();
select is((select public.campaign_progress(current_setting('test.campaign')::uuid) - 'campaign_id' - 'failed_by_code'),
  '{"status": "cancelled", "recipients": 3, "queued": 0, "sent": 0, "delivered": 0, "read": 0, "replied": 0,
    "skipped": 1, "cancelled": 2, "failed": 0}'::jsonb,
  'cancelling cancels the recipients not sent; progress counts them');
select ok(exists (select from realtime.messages m where m.topic = 'team:00000000-0000-0000-0000-0000000000c1'
                  and m.event = 'campaign_progress' and m.payload ->> 'status' = 'cancelled'),
  'the progress is broadcast on the team''s topic');

-- ---------------------------------------------------------------------------------------------
-- Opt-outs: Meta's user_preferences webhook and the operator action
-- ---------------------------------------------------------------------------------------------
create function pg_temp.preference(p_wa_id text, p_value text, p_ts bigint) returns jsonb language sql as $$
  select tests.webhook(jsonb_build_array(jsonb_build_object('field', 'user_preferences', 'value', jsonb_build_object(
    'messaging_product', 'whatsapp', 'contacts', jsonb_build_array(tests.contact(p_wa_id, 'Ana')),
    'user_preferences', jsonb_build_array(jsonb_build_object('wa_id', p_wa_id, 'detail', 'User requested to stop',
      'category', 'marketing_messages', 'value', p_value, 'timestamp', p_ts::text))))))
$$;
select is(wa.apply_account_changes(pg_temp.preference('5215577770001', 'stop', 1767225600)), 1,
  'a user who stops marketing messages (user_preferences) is marked');
select results_eq($$select marketing_opted_out_at, marketing_opt_out_source from public.contacts where wa_id = '5215577770001'$$,
  $$values (to_timestamp(1767225600), 'user_preferences')$$, 'with the time of the event and its source');
select is(wa.apply_account_changes(pg_temp.preference('5215577770001', 'resume', 1767225000)), 0,
  'an older resume delivered late changes nothing');
select wa.apply_account_changes(pg_temp.preference('5215577770001', 'resume', 1767226000));
select is((select marketing_opted_out_at from public.contacts where wa_id = '5215577770001'), null,
  'a newer resume clears it');
insert into public.conversations (phone_number_id, contact_id, team_id)
select 'tpl-pn', id, '00000000-0000-0000-0000-0000000000c1' from public.contacts where wa_id = '5215577770001';
select tests.authenticate_as(current_setting('test.coord')::uuid);
select isnt(public.set_marketing_opt_out((select c.id from public.conversations c join public.contacts k on k.id = c.contact_id
  where k.wa_id = '5215577770001'), true), null, 'an operator who may act on the conversation opts its contact out');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------------------------
-- Send hours
-- ---------------------------------------------------------------------------------------------
update public.campaigns set window_start_hour = 9, window_end_hour = 18, time_zone = 'America/Mexico_City'
where id = current_setting('test.campaign')::uuid;
select ok((select wa.in_send_window(c, '2026-01-05 15:00:00+00') from public.campaigns c
           where c.id = current_setting('test.campaign')::uuid), 'at 09:00 in Mexico City the window is open');
select ok((select not wa.in_send_window(c, '2026-01-05 14:59:00+00') from public.campaigns c
           where c.id = current_setting('test.campaign')::uuid), 'at 08:59 it is not');
update public.campaigns set window_start_hour = 20, window_end_hour = 8 where id = current_setting('test.campaign')::uuid;
select ok((select wa.in_send_window(c, '2026-01-05 08:00:00+00') from public.campaigns c
           where c.id = current_setting('test.campaign')::uuid), 'a window across midnight: 02:00 local is in it');

select * from finish();
rollback;
