-- The lock-order contracts of docs/locking.md that one session can see: the wamid locks a status POST and
-- wa.record_send_result take (issue 15 §5), and the contact phase's locks (issue 15 §4). The
-- interleavings themselves are forced in supabase/functions/whatsapp-webhook/lock-order.test.ts.
begin;
select plan(13);

-- This session's advisory locks of one class (2002873705: a wamid's own lock; 2002873706: a stripe) and mode.
create function pg_temp.held(p_class integer, p_mode text) returns oid[] language sql as $$
  select coalesce(array_agg(l.objid order by l.objid), '{}')
  from pg_locks l
  where l.pid = pg_backend_pid() and l.locktype = 'advisory' and l.classid = p_class::oid and l.objsubid = 2
    and l.mode = p_mode
$$;
create function pg_temp.own(p_wamid text) returns oid[] language sql as $$ select array[hashtext(p_wamid)::oid] $$;
create function pg_temp.stripe(p_wamid text) returns oid[] language sql as $$
  select array[(hashtext(p_wamid) & 63)::oid]
$$;
create function pg_temp.statuses(variadic p_statuses text[]) returns jsonb language sql as $$
  select tests.webhook(tests.change(jsonb_build_object('statuses', (
    select jsonb_agg(jsonb_build_object('id', s, 'status', 'delivered', 'timestamp', '1767225600',
                                        'recipient_id', '5215500000001'))
    from unnest(p_statuses) s))))
$$;
-- Own row versions: xmax is this transaction's when it locked or updated the row.
create function pg_temp.locked_by_me(p_wa_id text) returns boolean language sql as $$
  select c.xmax::text::bigint = pg_current_xact_id()::text::bigint % 4294967296
  from public.contacts c where c.wa_id = p_wa_id
$$;

select wa.ingest_webhook(tests.webhook(tests.change(jsonb_build_object(
  'contacts', jsonb_build_array(tests.contact('5215500000001', 'Ana')),
  'messages', jsonb_build_array(tests.msg('wamid.IN1', 'text', '{"body":"hola"}'))))));
insert into public.messages (conversation_id, wamid, direction, type, body, sent_at, status)
select c.id, w, 'outbound', 'text', '{"text":{"body":"hi"}}', now(), s
from public.conversations c, (values ('wamid.KNOWN', 'sent'), (null, 'pending')) v (w, s)
where c.phone_number_id = 'PN1';

-- ---------------------------------------------------------------------------------------------
-- §5: a wamid's status POSTs and the send that records it take its locks
-- ---------------------------------------------------------------------------------------------
select has_function('wa', 'lock_wamids', array['text[]', 'boolean'], 'wa.lock_wamids exists');
select ok(obj_description('wa.lock_wamids(text[], boolean)'::regprocedure, 'pg_proc') is not null,
  'and says what it is for');

select wa.ingest_webhook(pg_temp.statuses('wamid.KNOWN'));
select is((select count(*)::int from pg_locks where pid = pg_backend_pid() and locktype = 'advisory'
             and classid in (2002873705, 2002873706)), 0,
  'a status for a wamid an outbound message already holds takes no advisory lock: the message row orders it');

select wa.ingest_webhook(pg_temp.statuses('wamid.UNSEEN'));
select ok(pg_temp.held(2002873705, 'ShareLock') = pg_temp.own('wamid.UNSEEN')
          and pg_temp.held(2002873706, 'ShareLock') = '{}',
  'a status for a wamid no outbound message holds yet takes that wamid''s own lock, shared, until commit');

select wa.record_send_result((select id from public.messages where status = 'pending' and direction = 'outbound'),
                             'sent', 'wamid.SENT');
select ok(pg_temp.held(2002873706, 'ExclusiveLock') = pg_temp.stripe('wamid.SENT')
          and pg_temp.held(2002873705, 'ExclusiveLock') = pg_temp.own('wamid.SENT'),
  'recording a send''s wamid takes its stripe and its own lock, exclusive, until commit');
select wa.record_send_result((select id from public.messages where wamid = 'wamid.KNOWN'), 'failed', null,
                             '{"code": 131000}');
select is((select count(*)::int from pg_locks where pid = pg_backend_pid() and locktype = 'advisory'
             and classid in (2002873705, 2002873706)), 3,
  'recording an outcome without a wamid takes none');

select wa.ingest_webhook(pg_temp.statuses(variadic array(select 'wamid.S' || i from generate_series(1, 1000) i)));
select ok(cardinality(pg_temp.held(2002873706, 'ShareLock')) between 2 and 64
          and pg_temp.held(2002873705, 'ShareLock') = pg_temp.own('wamid.UNSEEN'),
  'a POST of 1,000 such statuses takes stripes instead, at most 64 entries of the shared lock table');

-- ---------------------------------------------------------------------------------------------
-- §4: contacts are locked once, in the strongest mode needed, in the contact phase
-- ---------------------------------------------------------------------------------------------
insert into wa.phone_numbers (phone_number_id) values ('PN2');
select wa.upsert_contacts('[{"wa_id": "5215500000002", "profile_name": "Bea"},
                            {"wa_id": "5215500000003", "profile_name": "Cy", "user_id": "MX.3"}]');
create temp table before_lock as select wa_id, ctid::text as version from public.contacts;

select is(wa.upsert_contacts('[{"wa_id": "5215500000001", "profile_name": "Ana", "phone_number_ids": ["PN1"]}]')
            ->> '5215500000001|',
          (select id::text from public.contacts where wa_id = '5215500000001'),
  'a returning contact is found by wa_id');
select is(wa.upsert_contacts('[{"wa_id": "5215500000002", "profile_name": "Bea", "phone_number_ids": ["PN2"]}]')
            ->> '5215500000002|',
          (select id::text from public.contacts where wa_id = '5215500000002'), 'and so is one without a conversation');
select ok(pg_temp.locked_by_me('5215500000002')
          and (select ctid::text from public.contacts where wa_id = '5215500000002')
              = (select version from before_lock where wa_id = '5215500000002'),
  'which the contact phase locks, unwritten, as the conversation''s foreign-key check will (FOR KEY SHARE)');

select is(wa.upsert_contacts('[{"user_id": "MX.3"}]') ->> '|MX.3',
          (select id::text from public.contacts where wa_id = '5215500000003'),
  'an entry with only a BSUID finds the contact that holds it');
select wa.upsert_contacts('[{"wa_id": "5215500000002", "user_id": "MX.3"}]');
select is((select user_id from public.contacts where wa_id = '5215500000002'), null,
  'a BSUID another contact holds is not attached, and the POST does not fail');
select throws_ok($$select wa.upsert_contacts('[{"wa_id": "5215500000004"}, {"username": "nobody"}]')$$, '22023',
  'a contact needs a wa_id or a user_id', 'an entry with neither id is refused with 22023');

select * from finish();
rollback;
