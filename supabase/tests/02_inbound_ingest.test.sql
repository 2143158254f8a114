-- The contract of wa.ingest_webhook: one call stores a whole Cloud API webhook; duplicates are counted,
-- never stored twice or re-buffered; statuses only move forward; nothing signed is dropped.
begin;
select plan(51);

-- ---------------------------------------------------------------------------------------------
-- Payload builders (test-only, in pg_temp)
-- ---------------------------------------------------------------------------------------------
create function pg_temp.text_webhook(p_wamid text, p_body text, p_from text default '5215500000001')
returns jsonb language sql as $$
  select tests.webhook(tests.change(jsonb_build_object(
    'contacts', jsonb_build_array(tests.contact(p_from, 'Ana')),
    'messages', jsonb_build_array(tests.msg(p_wamid, 'text', jsonb_build_object('body', p_body), p_from)))))
$$;
create function pg_temp.status_webhook(variadic p_statuses jsonb[]) returns jsonb language sql as $$
  select tests.webhook(tests.change(jsonb_build_object('statuses', to_jsonb(p_statuses))))
$$;
create function pg_temp.status(p_wamid text, p_status text, p_ts bigint default 1767225600) returns jsonb
language sql as $$
  select jsonb_build_object('id', p_wamid, 'status', p_status, 'timestamp', p_ts::text, 'recipient_id', '5215500000001')
    || case when p_status = 'failed' then jsonb_build_object('errors', jsonb_build_array(jsonb_build_object(
         'code', 131026, 'title', 'Message undeliverable', 'message', 'Message undeliverable')))
       else '{}'::jsonb end
$$;
create function pg_temp.outbound(p_wamid text, p_status text default 'pending') returns void language sql as $$
  insert into public.messages (conversation_id, wamid, direction, type, body, sent_at, status)
  select c.id, p_wamid, 'outbound', 'text', '{"text":{"body":"reply"}}', now(), p_status
  from public.conversations c order by c.created_at limit 1
$$;

-- ---------------------------------------------------------------------------------------------
-- A first delivery, then redeliveries
-- ---------------------------------------------------------------------------------------------
select is(wa.ingest_webhook(pg_temp.text_webhook('wamid.T1', 'hola'), '2026-01-01 00:00:00+00') - 'event_id',
  '{"new": 1, "replaced": 0, "duplicate": 0, "unattributed": 0, "statuses_recorded": 0, "statuses_duplicate": 0,
    "statuses_unmatched": 0, "statuses_applied": 0, "ignored": 0, "errors": 0}'::jsonb,
  'a first delivery counts one new message');
select results_eq($$select direction, type, content_text, sent_at from public.messages where wamid = 'wamid.T1'$$,
  $$values ('inbound', 'text', 'hola', '2026-01-01 00:00:00+00'::timestamptz)$$,
  'the message is stored with its type, text and Meta''s timestamp');
select is((select delivery_count from wa.inbound_receipts where wamid = 'wamid.T1'), 1, 'its receipt counts 1 delivery');
select is((select count(*)::int from wa.buffer_messages bm join public.messages m on m.id = bm.message_id
           where m.wamid = 'wamid.T1'), 1, 'it is appended to its conversation buffer');
select results_eq($$select b.message_count, b.due_at from wa.buffers b
                    join public.messages m on m.conversation_id = b.conversation_id where m.wamid = 'wamid.T1'$$,
  $$values (1, '2026-01-01 00:00:10+00'::timestamptz)$$, 'the buffer is due after the 10 s quiet period');
select results_eq($$select c.wa_id, c.profile_name from public.contacts c$$, $$values ('5215500000001', 'Ana')$$,
  'the contact is stored with its profile name');
select results_eq(
  $$select phone_number_id, waba_id, display_phone_number from wa.phone_numbers$$,
  $$values ('PN1', 'WABA1', '15550001')$$, 'the business number is registered');

select is((wa.ingest_webhook(pg_temp.text_webhook('wamid.T1', 'hola'), '2026-01-01 00:00:03+00')
           - 'event_id') -> 'duplicate', '1', 'a redelivery counts as a duplicate');
select is((select delivery_count from wa.inbound_receipts where wamid = 'wamid.T1'), 2, 'the receipt counts 2 deliveries');
select is((select count(*)::int from public.messages where wamid = 'wamid.T1'), 1, 'still one message');
select is((select count(*)::int from wa.buffer_messages), 1, 'still one buffer entry');
select results_eq($$select message_count, due_at from wa.buffers$$,
  $$values (1, '2026-01-01 00:00:10+00'::timestamptz)$$, 'a duplicate neither re-arms nor grows the buffer');

select is((wa.ingest_webhook(tests.webhook(tests.change(jsonb_build_object(
    'contacts', jsonb_build_array(tests.contact('5215500000001', 'Ana')),
    'messages', jsonb_build_array(tests.msg('wamid.T2', 'text', '{"body":"x"}'),
                                  tests.msg('wamid.T2', 'text', '{"body":"x"}'))))),
    '2026-01-01 00:00:05+00') - 'event_id') -> 'new', '1', 'the same wamid twice inside one POST is one new message');
select is((select delivery_count from wa.inbound_receipts where wamid = 'wamid.T2'), 2, 'delivered twice');
select results_eq($$select message_count, due_at from wa.buffers$$,
  $$values (2, '2026-01-01 00:00:15+00'::timestamptz)$$, 'a new message in the quiet period pushes the due time');

-- ---------------------------------------------------------------------------------------------
-- A multi-message, multi-type payload
-- ---------------------------------------------------------------------------------------------
select is(wa.ingest_webhook(tests.webhook(tests.change(jsonb_build_object(
  'contacts', jsonb_build_array(tests.contact('5215500000002', 'Beto'), tests.contact(null, 'Caro', 'MX.123456'),
                                tests.contact('5215500000003', 'Dora')),
  'messages', jsonb_build_array(
    tests.msg('wamid.M1', 'image', '{"id":"media1","mime_type":"image/jpeg","sha256":"x","caption":"my car"}',
                '5215500000002'),
    tests.msg('wamid.M2', 'location', '{"latitude":19.4,"longitude":-99.1,"name":"Office"}', '5215500000002'),
    tests.msg('wamid.M3', 'interactive', null, '5215500000002'),
    tests.msg('wamid.M4', 'reaction', '{"message_id":"wamid.OUT0","emoji":"👍"}', '5215500000002'),
    tests.msg('wamid.M5', 'audio', '{"id":"media2","mime_type":"audio/ogg; codecs=opus","voice":true}', null)
      || '{"from_user_id":"MX.123456"}',
    tests.msg('wamid.M6', 'system', '{"body":"Dora changed her number","type":"user_changed_number"}',
                '5215500000003'),
    tests.msg('wamid.M7', 'request_welcome', null, '5215500000003'),
    tests.msg('wamid.M8', 'unsupported', '{"type":"poll"}', '5215500000003')
      || '{"errors":[{"code":131051,"title":"Message type unknown"}]}',
    tests.msg('wamid.M9', 'text', '{"body":"nobody sent me"}', null))))),
  '2026-01-01 00:01:00+00') -> 'new', '8', 'eight attributable messages of all kinds are new');
select results_eq(
  $$select wamid, content_text from public.messages where wamid like 'wamid.M%' order by wamid$$,
  $$values ('wamid.M1', 'my car'), ('wamid.M2', 'Office'), ('wamid.M3', '[interactive]'), ('wamid.M4', '👍'),
           ('wamid.M5', '[voice note]'), ('wamid.M6', 'Dora changed her number'), ('wamid.M7', '[request_welcome]'),
           ('wamid.M8', '[unsupported]')$$,
  'each type gets a readable text; an interactive message without its object is still stored');
select results_eq(
  $$select m.wamid from wa.buffer_messages bm join public.messages m on m.id = bm.message_id
    where m.wamid like 'wamid.M%' order by bm.seq$$,
  $$values ('wamid.M1'), ('wamid.M2'), ('wamid.M3'), ('wamid.M5'), ('wamid.M7')$$,
  'only messages a bot should read are buffered (not reactions, system notices or placeholders), in wamid order');
select is((select wa_id from public.contacts where user_id = 'MX.123456'), null,
  'a contact known only by its business-scoped id is stored without a wa_id');
select is((select count(*)::int from public.conversations), 4, 'one conversation per contact on the number');
select ok(not exists (select from wa.inbound_receipts where wamid = 'wamid.M9'),
  'a message with no sender identity is not registered');
select is((select result -> 'ignored' from wa.webhook_events order by id desc limit 1), '1',
  'and is counted as ignored');
select is((select last_message_at from public.conversations c join public.contacts k on k.id = c.contact_id
           where k.wa_id = '5215500000002'), '2026-01-01 00:00:00+00'::timestamptz,
  'the conversation''s last message time is the newest message''s timestamp');

-- ---------------------------------------------------------------------------------------------
-- Due-time rules
-- ---------------------------------------------------------------------------------------------
select wa.ingest_webhook(pg_temp.text_webhook('wamid.W1', 'a', '5215500000009'), '2026-01-01 00:10:00+00');
select wa.ingest_webhook(pg_temp.text_webhook('wamid.W2', 'b', '5215500000009'), '2026-01-01 00:10:55+00');
select is((select b.due_at from wa.buffers b join public.conversations c on c.id = b.conversation_id
           join public.contacts k on k.id = c.contact_id where k.wa_id = '5215500000009'),
  '2026-01-01 00:11:00+00'::timestamptz, 'a buffer is due max_wait after its first message at the latest');
update wa.phone_numbers set buffer_max_messages = 3 where phone_number_id = 'PN1';
select wa.ingest_webhook(pg_temp.text_webhook('wamid.W3', 'c', '5215500000009'), '2026-01-01 00:10:56+00');
select results_eq($$select b.message_count, b.due_at from wa.buffers b join public.conversations c
                    on c.id = b.conversation_id join public.contacts k on k.id = c.contact_id
                    where k.wa_id = '5215500000009'$$,
  $$values (3, '2026-01-01 00:10:56+00'::timestamptz)$$, 'a buffer holding max_messages is due at once');

-- ---------------------------------------------------------------------------------------------
-- Statuses: monotonic by rank, failures kept, none lost to an unknown wamid
-- ---------------------------------------------------------------------------------------------
select pg_temp.outbound('wamid.OUT1');
select is(wa.ingest_webhook(pg_temp.status_webhook(pg_temp.status('wamid.OUT1', 'read'))) -> 'statuses_applied', '1',
  'read applies to a pending message (Meta may skip delivered)');
select is(wa.ingest_webhook(pg_temp.status_webhook(pg_temp.status('wamid.OUT1', 'delivered'))) -> 'statuses_applied',
  '0', 'a late delivered is recorded but not applied');
select is((select status from public.messages where wamid = 'wamid.OUT1'), 'read', 'delivered after read leaves read');
select wa.ingest_webhook(pg_temp.status_webhook(pg_temp.status('wamid.OUT1', 'sent')));
select is((select status from public.messages where wamid = 'wamid.OUT1'), 'read', 'sent after read leaves read');
select wa.ingest_webhook(pg_temp.status_webhook(pg_temp.status('wamid.OUT1', 'played')));
select is((select status from public.messages where wamid = 'wamid.OUT1'), 'played', 'played outranks read');

select pg_temp.outbound('wamid.OUT2');
select wa.ingest_webhook(pg_temp.status_webhook(pg_temp.status('wamid.OUT2', 'delivered'),
                                                pg_temp.status('wamid.OUT2', 'failed')));
select results_eq($$select status, error -> 0 ->> 'code' from public.messages where wamid = 'wamid.OUT2'$$,
  $$values ('delivered', '131026')$$, 'failed after delivery keeps delivered but stores the error');

select pg_temp.outbound('wamid.OUT3');
select wa.ingest_webhook(pg_temp.status_webhook(pg_temp.status('wamid.OUT3', 'failed')));
select is((select status from public.messages where wamid = 'wamid.OUT3'), 'failed', 'failed wins before delivery');
select wa.ingest_webhook(pg_temp.status_webhook(pg_temp.status('wamid.OUT3', 'sent')));
select is((select status from public.messages where wamid = 'wamid.OUT3'), 'failed', 'a late sent does not hide a failure');
select wa.ingest_webhook(pg_temp.status_webhook(pg_temp.status('wamid.OUT3', 'delivered')));
select results_eq($$select status, error is not null from public.messages where wamid = 'wamid.OUT3'$$,
  $$values ('delivered', true)$$, 'delivered after failed wins (multi-device) and the error stays');

select is(wa.ingest_webhook(pg_temp.status_webhook(pg_temp.status('wamid.OUT3', 'delivered'))) -> 'statuses_duplicate',
  '1', 'a redelivered status is counted as a duplicate');
select is((select delivery_count from wa.message_statuses where wamid = 'wamid.OUT3' and status = 'delivered'), 2,
  'and its event counts two deliveries');

select is(wa.ingest_webhook(pg_temp.status_webhook(pg_temp.status('wamid.LATE', 'delivered'))) -> 'statuses_unmatched',
  '1', 'a status for a wamid not stored yet is kept as unmatched');
select pg_temp.outbound('wamid.LATE');
select is(wa.apply_message_statuses(array['wamid.LATE']), 1, 'once the outbound row has the wamid, its statuses apply');
select is((select status from public.messages where wamid = 'wamid.LATE'), 'delivered', 'to delivered');
select is(wa.ingest_webhook(pg_temp.status_webhook(pg_temp.status('wamid.T1', 'read'))) -> 'statuses_applied', '0',
  'statuses never touch inbound messages');

-- ---------------------------------------------------------------------------------------------
-- Other changes, errors, placeholders, rejected bodies
-- ---------------------------------------------------------------------------------------------
select is(wa.ingest_webhook(tests.webhook(jsonb_build_array(jsonb_build_object(
  'field', 'message_template_status_update',
  'value', '{"event":"APPROVED","message_template_id":1,"message_template_name":"welcome"}'::jsonb)))) -> 'ignored',
  '1', 'a template status update is ignored');
select ok((select payload -> 'entry' -> 0 -> 'changes' -> 0 ->> 'field' = 'message_template_status_update'
           from wa.webhook_events order by id desc limit 1), 'but kept raw in the event log');
select is(wa.ingest_webhook(tests.webhook(tests.change(
  '{"errors":[{"code":131000,"title":"Something went wrong"}]}'))) -> 'errors', '1', 'an errors-only change is counted');

select wa.ingest_webhook(tests.webhook(tests.change(jsonb_build_object(
  'contacts', jsonb_build_array(tests.contact('5215500000004', 'Eva')),
  'messages', jsonb_build_array(tests.msg('wamid.P1', 'unsupported', '{"type":"media_placeholder"}', '5215500000004')
    || '{"errors":[{"code":131060,"title":"This message is currently unavailable."}]}')))));
select is((wa.ingest_webhook(pg_temp.text_webhook('wamid.P1', 'the real content', '5215500000004')) - 'event_id')
  -> 'replaced', '1', 'real content under a placeholder''s wamid replaces it');
select results_eq($$select m.type, m.content_text, (select count(*)::int from wa.buffer_messages bm
                                                      where bm.message_id = m.id)
                    from public.messages m where m.wamid = 'wamid.P1'$$,
  $$values ('text', 'the real content', 1)$$, 'and is buffered then, once');
select is((wa.ingest_webhook(pg_temp.text_webhook('wamid.P1', 'the real content', '5215500000004')) - 'event_id')
  -> 'duplicate', '1', 'a redelivery of the real content is a duplicate again');

select wa.record_rejected_webhook('{not json', null, 'invalid JSON');
select results_eq($$select raw_body, error, signature_valid from wa.webhook_events order by id desc limit 1$$,
  $$values ('{not json', 'invalid JSON', true)$$, 'a rejected body is kept raw with its reason');
select throws_ok($$select wa.upsert_contacts('[{"profile_name": "x"}]')$$, '22023',
  'a contact needs a wa_id or a user_id', 'a contact without any identity is refused with 22023');

-- A returning customer with nothing new is only read: no write, so no row lock held until the POST commits.
-- (Every write makes a new row version at a new ctid, even inside this one transaction; xmin would not move.)
select wa.upsert_contacts('[{"wa_id": "5215500000009", "profile_name": "Flor"}]');
create temp table flor_before as select ctid::text as version from public.contacts where wa_id = '5215500000009';
select is((wa.upsert_contacts('[{"wa_id": "5215500000009", "profile_name": "Flor"}]') ->> '5215500000009|')::uuid,
          (select id from public.contacts where wa_id = '5215500000009'), 'an unchanged contact is found');
select is((select ctid::text from public.contacts where wa_id = '5215500000009'), (select version from flor_before),
  'and left unwritten');
select wa.upsert_contacts('[{"wa_id": "5215500000009", "user_id": "MX.999", "profile_name": "Flor María"}]');
select results_eq($$select profile_name, user_id from public.contacts where wa_id = '5215500000009'$$,
  $$values ('Flor María', 'MX.999')$$, 'a new name or BSUID is still written');

select * from finish();
rollback;
