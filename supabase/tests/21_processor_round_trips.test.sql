-- The processor's joined calls (issue 23): the reply row with its first send slot, and the completion with the
-- send's record, keep what the calls they join guarantee.
begin;
select plan(10);

create function pg_temp.t(p_time text) returns timestamptz language sql immutable as $$
  select ('2026-01-01 ' || p_time || '+00')::timestamptz
$$;
select wa.ingest_webhook(tests.webhook(tests.change(jsonb_build_object(
  'contacts', jsonb_build_array(tests.contact('5215500000071', 'Rita')),
  'messages', jsonb_build_array(tests.msg('wamid.RT1', 'text', '{"body": "hola"}', '5215500000071',
                                          extract(epoch from pg_temp.t('00:00:00'))::bigint))), 'PN-RT')),
  pg_temp.t('00:00:00'));
create temp table claimed as
select * from wa.claim_buffers('worker-rt', 1, interval '60 seconds', pg_temp.t('00:01:00'));
create temp table reply as
select * from wa.begin_agent_reply_slot((select fence from claimed), (select up_to_seq from claimed), 'text',
  '{"text": {"body": "¡Hola!"}}', interval '60 seconds', 'PN-RT', '5215500000071', pg_temp.t('00:01:01'),
  pg_temp.t('00:01:01'));

select results_eq($$select status, ours, granted, wait_ms from reply$$, $$values ('pending', true, true, 0)$$,
  'the reply is written pending, ours, with its send slot granted at once');
select is((select next_slot_at from wa.send_governor where phone_number_id = 'PN-RT'),
  pg_temp.t('00:01:01') + interval '12.5 milliseconds', 'the slot is booked on the number''s schedule (80 mps)');
select is((select count(*)::integer from wa.send_pairs where phone_number_id = 'PN-RT' and recipient = '5215500000071'),
  1, 'and on the pair''s');

select results_eq(
  $$select ours, granted, wait_ms from wa.begin_agent_reply_slot((select fence from claimed),
      (select up_to_seq from claimed), 'text', '{"text": {"body": "otra"}}', interval '60 seconds', 'PN-RT',
      '5215500000071', pg_temp.t('00:01:02'), pg_temp.t('00:01:02'))$$,
  $$values (false, null::boolean, null::integer)$$,
  'asked again: the reply is not ours to send, and no slot is booked');
select is((select next_slot_at from wa.send_governor where phone_number_id = 'PN-RT'),
  pg_temp.t('00:01:01') + interval '12.5 milliseconds', 'the schedule did not move');
select throws_ok(
  $$select * from wa.begin_agent_reply_slot(-1, 1, 'text', '{"text": {"body": "x"}}', interval '60 seconds',
      'PN-RT', '5215500000071', pg_temp.t('00:01:03'), pg_temp.t('00:01:03'))$$,
  'P0410', null, 'a stale fence writes nothing and books nothing: P0410');

select results_eq(
  $$select * from wa.complete_reply(-1, 1, (select message_id from reply), 'unknown', null, '{"error": "t"}')$$,
  $$values ('unknown', 'P0410', 'stale fence -1: the batch was re-claimed or already finished')$$,
  'a completion under a stale fence fails alone: the send''s outcome is recorded, the P0410 returned');
select is((select count(*)::integer from wa.buffers where fence = (select fence from claimed)), 1,
  'and the buffer is still claimed');

select results_eq(
  $$select * from wa.complete_reply((select fence from claimed), (select up_to_seq from claimed),
      (select message_id from reply), 'sent', 'wamid.RT-OUT')$$,
  $$values ('sent', null::text, null::text)$$, 'the claim''s own completion records the send as sent');
select results_eq(
  $$select (select count(*)::integer from wa.buffers b join claimed c using (conversation_id)),
           (select wamid from public.messages where id = (select message_id from reply))$$,
  $$values (0, 'wamid.RT-OUT')$$, 'and completes the batch: the buffer is gone, the wamid recorded');

select * from finish();
rollback;
