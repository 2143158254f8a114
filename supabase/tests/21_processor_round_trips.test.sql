-- The processor's joined calls (issue 23): the claim with its context and the typing indicator's slot, the
-- reply row with its first send slot, and the completion with the send's record and the outcome's count keep
-- what the calls they join guarantee.
begin;
select plan(17);

create function pg_temp.t(p_time text) returns timestamptz language sql immutable as $$
  select ('2026-01-01 ' || p_time || '+00')::timestamptz
$$;
create function pg_temp.say(p_wamid text, p_wa_id text, p_phone text) returns void language sql as $$
  select wa.ingest_webhook(tests.webhook(tests.change(jsonb_build_object(
    'contacts', jsonb_build_array(tests.contact(p_wa_id, 'Rita')),
    'messages', jsonb_build_array(tests.msg(p_wamid, 'text', '{"body": "hola"}', p_wa_id,
                                            extract(epoch from pg_temp.t('00:00:00'))::bigint))), p_phone)),
    pg_temp.t('00:00:00'))
$$;
create function pg_temp.replied(p_phone text) returns integer language sql as $$
  select coalesce(sum(batches), 0)::integer from wa.bot_daily_stats
  where phone_number_id = p_phone and outcome = 'replied'
$$;

-- ---------------------------------------------------------------------------------------------
-- wa.claim_batch
-- ---------------------------------------------------------------------------------------------
select is((select count(*)::integer from wa.claim_batch('worker-rt', interval '60 seconds', 5, pg_temp.t('00:00:01'))),
  0, 'claim_batch: no row while nothing is due');
select pg_temp.say('wamid.RT1', '5215500000071', 'PN-RT');
create temp table claimed as
select * from wa.claim_batch('worker-rt', interval '60 seconds', 5, pg_temp.t('00:01:00'));
select results_eq(
  $$select c.message_count, c.context -> 'batch' -> 'messages' -> 0 ->> 'wamid', (c.context ->> 'batch')::jsonb ->> 'fence'
    from claimed c$$,
  $$values (1, 'wamid.RT1', (select fence::text from claimed))$$,
  'claim_batch claims the due batch and returns its context under the new fence');
select is((select context from claimed),
  wa.agent_context_with_session((select fence from claimed), 5),
  'the context is wa.agent_context_with_session''s');
select results_eq($$select typing_granted, typing_wait_ms is not null from claimed$$, $$values (true, true)$$,
  'and the typing indicator''s slot is booked with it');
select is((select count(*)::integer from wa.send_governor where phone_number_id = 'PN-RT'), 1,
  'on the number''s governor row');

select pg_temp.say('wamid.RT2', '5215500000072', 'PN-RT2');
update wa.phone_numbers set typing_indicator = false where phone_number_id = 'PN-RT2';
select results_eq(
  $$select typing_granted, context is not null
    from wa.claim_batch('worker-rt', interval '60 seconds', 5, pg_temp.t('00:01:00'))$$,
  $$values (null::boolean, true)$$,
  'a number without the typing indicator: context, and no slot booked');
select is((select count(*)::integer from wa.send_governor where phone_number_id = 'PN-RT2'), 0,
  'its governor is untouched');

-- ---------------------------------------------------------------------------------------------
-- wa.begin_agent_reply_slot
-- ---------------------------------------------------------------------------------------------
create temp table governor_before as select next_slot_at from wa.send_governor where phone_number_id = 'PN-RT';
create temp table reply as
select * from wa.begin_agent_reply_slot((select fence from claimed), (select up_to_seq from claimed), 'text',
  '{"text": {"body": "¡Hola!"}}', interval '60 seconds', 'PN-RT', '5215500000071',
  (select next_slot_at from governor_before), pg_temp.t('00:01:01'));
select results_eq($$select status, ours, granted, wait_ms from reply$$, $$values ('pending', true, true, 0)$$,
  'begin_agent_reply_slot writes the reply pending, ours, with its send slot granted');
select is((select next_slot_at from wa.send_governor where phone_number_id = 'PN-RT'),
  (select next_slot_at + interval '12.5 milliseconds' from governor_before),
  'the slot is booked on the number''s schedule (80 mps)');
select is((select count(*)::integer from wa.send_pairs where phone_number_id = 'PN-RT' and recipient = '5215500000071'),
  1, 'and on the pair''s');
select results_eq(
  $$select ours, granted, wait_ms from wa.begin_agent_reply_slot((select fence from claimed),
      (select up_to_seq from claimed), 'text', '{"text": {"body": "otra"}}', interval '60 seconds', 'PN-RT',
      '5215500000071', pg_temp.t('00:01:02'), pg_temp.t('00:01:02'))$$,
  $$values (false, null::boolean, null::integer)$$,
  'asked again: the reply is not ours to send, and no slot is booked');
select is((select next_slot_at from wa.send_governor where phone_number_id = 'PN-RT'),
  (select next_slot_at + interval '12.5 milliseconds' from governor_before), 'the schedule did not move');
select throws_ok(
  $$select * from wa.begin_agent_reply_slot(-1, 1, 'text', '{"text": {"body": "x"}}', interval '60 seconds',
      'PN-RT', '5215500000071', pg_temp.t('00:01:03'), pg_temp.t('00:01:03'))$$,
  'P0410', null, 'a stale fence writes nothing and books nothing: P0410');

-- ---------------------------------------------------------------------------------------------
-- wa.complete_reply
-- ---------------------------------------------------------------------------------------------
select results_eq(
  $$select * from wa.complete_reply(-1, 1, (select message_id from reply), 'unknown', null, '{"error": "t"}',
                                    (select conversation_id from claimed), 'unknown')$$,
  $$values ('unknown', 'P0410', 'stale fence -1: the batch was re-claimed or already finished', null::text)$$,
  'a completion under a stale fence fails alone: the send''s outcome is recorded, the P0410 returned');
select results_eq(
  $$select (select count(*)::integer from wa.buffers where fence = (select fence from claimed)),
           (select coalesce(sum(batches), 0)::integer from wa.bot_daily_stats where phone_number_id = 'PN-RT')$$,
  $$values (1, 0)$$, 'the buffer is still claimed and no outcome was counted');
select results_eq(
  $$select * from wa.complete_reply((select fence from claimed), (select up_to_seq from claimed),
      (select message_id from reply), 'sent', 'wamid.RT-OUT', null, (select conversation_id from claimed),
      'replied')$$,
  $$values ('sent', null::text, null::text, null::text)$$, 'the claim''s own completion records the send as sent');
select results_eq(
  $$select (select count(*)::integer from wa.buffers b join claimed c using (conversation_id)),
           (select wamid from public.messages where id = (select message_id from reply)), pg_temp.replied('PN-RT')$$,
  $$values (0, 'wamid.RT-OUT', 1)$$,
  'and completes the batch: the buffer is gone, the wamid recorded, the outcome counted once');

select * from finish();
rollback;
