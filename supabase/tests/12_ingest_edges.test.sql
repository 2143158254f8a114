-- Edges of wa.ingest_webhook: a body the webhook had to repair is ingested with the original kept beside it, and
-- an "unsupported" placeholder and its real content end as the real content, buffered once, in either order.
-- (The concurrent orders are forced with two connections in whatsapp-webhook/ingest-races.test.ts.)
begin;
select plan(13);

create function pg_temp.text_message(p_wamid text, p_body text) returns jsonb language sql as $$
  select tests.msg(p_wamid, 'text', jsonb_build_object('body', p_body), '5215500000021')
$$;
create function pg_temp.placeholder(p_wamid text) returns jsonb language sql as $$
  select tests.msg(p_wamid, 'unsupported', '{"type":"media_placeholder"}', '5215500000021')
    || '{"errors":[{"code":131060,"title":"This message is currently unavailable."}]}'
$$;
create function pg_temp.post(variadic p_messages jsonb[]) returns jsonb language sql as $$
  select tests.webhook(tests.change(jsonb_build_object(
    'contacts', jsonb_build_array(tests.contact('5215500000021', 'Gil')), 'messages', to_jsonb(p_messages))))
$$;
create function pg_temp.counts(p_result jsonb) returns jsonb language sql as $$
  select jsonb_build_object('new', p_result -> 'new', 'replaced', p_result -> 'replaced',
                            'duplicate', p_result -> 'duplicate')
$$;
-- What the database holds for a wamid: its type, text, delivery count and buffer entries.
create function pg_temp.stored(p_wamid text) returns table (type text, content_text text, deliveries int, buffered int)
language sql as $$
  select m.type, m.content_text, r.delivery_count,
         (select count(*)::int from wa.buffer_messages bm where bm.message_id = m.id)
  from public.messages m join wa.inbound_receipts r on r.wamid = m.wamid
  where m.wamid = p_wamid
$$;

-- ---------------------------------------------------------------------------------------------
-- A repaired body: ingested, and the body as received kept with what was changed
-- ---------------------------------------------------------------------------------------------
create temp table repaired as
select wa.ingest_webhook(pg_temp.post(pg_temp.text_message('wamid.E1', 'a�b')), '2026-01-01 00:00:00+00',
                         p_raw_body => '{"raw":"the body as received, \u0000 and all"}',
                         p_error => 'escapes Postgres cannot store (\u0000, lone surrogates) replaced by U+FFFD: 1')
  as result;
select is((select pg_temp.counts(result) from repaired), '{"new": 1, "replaced": 0, "duplicate": 0}',
  'a repaired body is ingested');
select results_eq(
  $$select e.raw_body, e.error, e.payload -> 'entry' -> 0 -> 'changes' -> 0 -> 'value' -> 'messages' -> 0 -> 'text'
                                  ->> 'body', e.result = r.result - 'event_id'
    from wa.webhook_events e join repaired r on e.id = (r.result ->> 'event_id')::bigint$$,
  $$values ('{"raw":"the body as received, \u0000 and all"}',
            'escapes Postgres cannot store (\u0000, lone surrogates) replaced by U+FFFD: 1', 'a�b', true)$$,
  'its event keeps the body as received and why, beside the payload ingested and the result');
create temp table plain as select wa.ingest_webhook(pg_temp.post(pg_temp.text_message('wamid.E2', 'plain'))) as result;
select results_eq(
  $$select e.raw_body, e.error from wa.webhook_events e join plain p on e.id = (p.result ->> 'event_id')::bigint$$,
  $$values (null::text, null::text)$$, 'a body ingested as received keeps no raw copy and no reason');
select is((select wa.purge_history('2026-06-01 00:00:00+00') is not null), true, 'retention runs');
select ok(exists (select from wa.webhook_events e join repaired r on e.id = (r.result ->> 'event_id')::bigint),
  'and keeps the event of a repaired body, as it keeps rejected ones');

-- ---------------------------------------------------------------------------------------------
-- Placeholder and real content under one wamid, one after the other
-- ---------------------------------------------------------------------------------------------
select is(pg_temp.counts(wa.ingest_webhook(pg_temp.post(pg_temp.placeholder('wamid.E3'))) - 'event_id'),
  '{"new": 1, "replaced": 0, "duplicate": 0}', 'a placeholder first is new');
select is(pg_temp.counts(wa.ingest_webhook(pg_temp.post(pg_temp.placeholder('wamid.E3'))) - 'event_id'),
  '{"new": 0, "replaced": 0, "duplicate": 1}', 'a placeholder redelivered is a duplicate');
select is(pg_temp.counts(wa.ingest_webhook(pg_temp.post(pg_temp.text_message('wamid.E3', 'now readable')))),
  '{"new": 0, "replaced": 1, "duplicate": 0}', 'the real content after it replaces it');
select results_eq($$select * from pg_temp.stored('wamid.E3')$$, $$values ('text', 'now readable', 3, 1)$$,
  'and is stored and buffered once');

select wa.ingest_webhook(pg_temp.post(pg_temp.text_message('wamid.E4', 'real first')));
select is(pg_temp.counts(wa.ingest_webhook(pg_temp.post(pg_temp.placeholder('wamid.E4')))),
  '{"new": 0, "replaced": 0, "duplicate": 1}', 'a placeholder after the real content is a duplicate');
select results_eq($$select * from pg_temp.stored('wamid.E4')$$, $$values ('text', 'real first', 2, 1)$$,
  'and overwrites nothing');

select is(pg_temp.counts(wa.ingest_webhook(pg_temp.post(pg_temp.placeholder('wamid.E5'),
                                                        pg_temp.text_message('wamid.E5', 'same POST')))),
  '{"new": 1, "replaced": 0, "duplicate": 1}', 'both in one POST: one new message');
select results_eq($$select * from pg_temp.stored('wamid.E5')$$, $$values ('text', 'same POST', 2, 1)$$,
  'the real content, buffered once');

select * from finish();
rollback;
