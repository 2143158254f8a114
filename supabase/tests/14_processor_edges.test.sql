-- Edges of the buffer processor's SQL (issue 15): one buffer_max_attempts per business number, read by the
-- claim, fail and the orphan sweep alike; the reply key stamped on the messages a reply answers, so a re-claim
-- never writes a second reply even when an earlier message committed late; the agent's session written only
-- under the claim's live lease; a failed reply taken over by one claim, never while the bot is paused. Every
-- time is fixed through p_now.
begin;
select plan(30);

create function pg_temp.t(p_time text) returns timestamptz language sql immutable as $$
  select ('2026-01-01 ' || p_time || '+00')::timestamptz
$$;
-- One inbound text from p_from to the business number PN14 at p_at.
create function pg_temp.say(p_wamid text, p_from text, p_body text, p_at timestamptz) returns jsonb
language sql as $$
  select wa.ingest_webhook(tests.webhook(tests.change(jsonb_build_object(
    'contacts', jsonb_build_array(tests.contact(p_from, 'C' || p_from)),
    'messages', jsonb_build_array(tests.msg(p_wamid, 'text', jsonb_build_object('body', p_body), p_from,
                                            extract(epoch from p_at)::bigint))), 'PN14')), p_at)
$$;
create function pg_temp.conv(p_from text) returns uuid language sql as $$
  select c.id from public.conversations c join public.contacts k on k.id = c.contact_id where k.wa_id = p_from
$$;
create function pg_temp.seq(p_wamid text) returns bigint language sql as $$
  select bm.seq from wa.buffer_messages bm join public.messages m on m.id = bm.message_id where m.wamid = p_wamid
$$;
create temp table claims (round text not null, conversation_id uuid not null, fence bigint not null,
                          first_seq bigint, up_to_seq bigint, message_count integer, attempts integer);
create function pg_temp.claim(p_round text, p_at timestamptz) returns integer language sql as $$
  with claimed as (
    insert into claims select p_round, c.* from wa.claim_buffers('w14', 10, interval '60 seconds', p_at) c
    returning 1
  )
  select count(*)::integer from claimed
$$;
-- The fence of a round's claim (of p_from's conversation when the round claimed several): a scalar subquery,
-- so a round that claimed more than the test means fails instead of picking a fence at random.
create function pg_temp.fence(p_round text, p_from text default null) returns bigint language sql as $$
  select (select c.fence from claims c
          where c.round = p_round and (p_from is null or c.conversation_id = pg_temp.conv(p_from)))
$$;
create function pg_temp.set_max_attempts(p_attempts integer) returns void language sql as $$
  update wa.phone_numbers set buffer_max_attempts = p_attempts where phone_number_id = 'PN14'
$$;

-- ---------------------------------------------------------------------------------------------
-- Item 3: one max_attempts, per business number, for claim, fail and sweep
-- ---------------------------------------------------------------------------------------------
select pg_temp.say('wamid.A1', '5215514000001', 'hola', pg_temp.t('00:00:00'));
select is((select buffer_max_attempts from wa.phone_numbers where phone_number_id = 'PN14'), 5,
  'a business number tries a batch 5 times by default');

select pg_temp.set_max_attempts(2);
select pg_temp.claim('a1', pg_temp.t('00:00:15'));
select is(pg_temp.claim('a2', pg_temp.t('00:01:15')), 1, 'setup: the lost batch is claimed again, its last attempt');
select pg_temp.say('wamid.A2', '5215514000001', 'sigues ahí?', pg_temp.t('00:01:30'));
select is(pg_temp.claim('a3', pg_temp.t('00:02:15')), 1,
  'below 5: once the last attempt''s lease runs out, the next claim takes the buffer again');
select results_eq($$select first_seq, message_count, attempts from claims where round = 'a3'$$,
  $$values (pg_temp.seq('wamid.A2'), 1, 1)$$,
  'with only the message that joined meanwhile, as a first attempt');
select results_eq(
  $$select fence, attempts, jsonb_path_query_array(errors, '$[*].attempt'), errors -> -1 ->> 'error',
           jsonb_path_query_array(messages, '$[*].wamid')
    from wa.dead_letters where conversation_id = pg_temp.conv('5215514000001')$$,
  $$values (pg_temp.fence('a2'), 2, '[1, 2]'::jsonb, 'lease expired: worker w14 lost the batch', '["wamid.A1"]'::jsonb)$$,
  'the claim dead-lettered the exhausted batch with both lost claims, not waiting for the sweep');
select wa.complete_buffer(pg_temp.fence('a3'), pg_temp.seq('wamid.A2'));

select pg_temp.say('wamid.E1', '5215514000005', 'hola', pg_temp.t('00:05:00'));
select pg_temp.set_max_attempts(1);
select pg_temp.claim('e1', pg_temp.t('00:05:15'));
select is(pg_temp.claim('e2', pg_temp.t('00:06:15')), 0, 'setup: a claim once the only attempt''s lease ran out');
select is(wa.next_claim_at(), null,
  'and leaves nothing due in the past that it cannot take: the worker''s next wake-up is not in the past');

select pg_temp.say('wamid.B1', '5215514000002', 'hola', pg_temp.t('00:10:00'));
select pg_temp.set_max_attempts(7);
select pg_temp.claim('b1', pg_temp.t('00:10:15'));
select pg_temp.claim('b2', pg_temp.t('00:11:15'));
select pg_temp.claim('b3', pg_temp.t('00:12:15'));
select pg_temp.claim('b4', pg_temp.t('00:13:15'));
select pg_temp.claim('b5', pg_temp.t('00:14:15'));
select is((select attempts from wa.buffers where conversation_id = pg_temp.conv('5215514000002')), 5,
  'setup: a batch lost on its fifth attempt');
select is(wa.sweep_orphaned_buffers(pg_temp.t('00:15:15')), '{"expired_leases": 1, "dead_lettered": 0}'::jsonb,
  'above 5: the sweep does not dead-letter before the number''s buffer_max_attempts');
select is(pg_temp.claim('b6', pg_temp.t('00:15:15')), 1, 'the claim takes it again');
select is((select attempts from claims where round = 'b6'), 6, 'as its sixth attempt');
select pg_temp.claim('b7', pg_temp.t('00:16:15'));
select is(wa.sweep_orphaned_buffers(pg_temp.t('00:17:15')), '{"expired_leases": 1, "dead_lettered": 1}'::jsonb,
  'the sweep dead-letters it once its seventh lease ran out');

select pg_temp.say('wamid.C1', '5215514000003', 'hola', pg_temp.t('00:20:00'));
select pg_temp.set_max_attempts(1);
select pg_temp.claim('c1', pg_temp.t('00:20:15'));
select is(wa.fail_buffer(pg_temp.fence('c1'), 'agent 500', p_now => pg_temp.t('00:20:16')), 'dead_letter',
  'fail dead-letters by the number''s rule: with 1 attempt, the first failure');
select pg_temp.set_max_attempts(5);

-- ---------------------------------------------------------------------------------------------
-- Item 7: the reply key is stamped on the messages the reply answers
-- ---------------------------------------------------------------------------------------------
-- A transaction takes a sequence number for Fabi's first message and commits only after her second one, whose
-- number is larger, was claimed and answered.
create temp table late (seq bigint);
insert into late select nextval(pg_get_serial_sequence('wa.buffer_messages', 'seq'));
select pg_temp.say('wamid.F2', '5215514000006', 'quiero un coche rojo', pg_temp.t('00:30:00'));
select is(pg_temp.claim('f1', pg_temp.t('00:30:15')), 1, 'setup: the batch holds the message committed first');
create temp table reply as
select * from wa.begin_agent_reply(pg_temp.fence('f1'), pg_temp.seq('wamid.F2'), 'text',
                                   '{"text": {"body": "¿De qué año?"}}', interval '60 seconds', pg_temp.t('00:30:16'));
select is((select reply_key from wa.buffer_messages where seq = pg_temp.seq('wamid.F2')),
  (select idempotency_key from public.messages where id = (select message_id from reply)),
  'writing the reply stamps its key on the message it answers');
with m as (
  insert into public.messages (conversation_id, wamid, direction, type, body, content_text, sent_at)
  values (pg_temp.conv('5215514000006'), 'wamid.F1', 'inbound', 'text', '{"text": {"body": "hola"}}', 'hola',
          pg_temp.t('00:29:59'))
  returning id
)
insert into wa.buffer_messages (seq, conversation_id, message_id, appended_at) overriding system value
select (select seq from late), pg_temp.conv('5215514000006'), m.id, pg_temp.t('00:29:59') from m;
select is(pg_temp.claim('f2', pg_temp.t('00:31:16')), 1, 'setup: the worker died; the burst is claimed again');
select results_eq($$select first_seq, message_count from claims where round = 'f2'$$,
  $$values ((select seq from late), 2)$$, 'setup: now starting with the message that committed late');
select is(wa.batch_reply_key(pg_temp.conv('5215514000006'), pg_temp.fence('f2')),
  (select idempotency_key from public.messages where id = (select message_id from reply)),
  'the re-claim''s reply key is the one stamped, not one from its new first message');
select is(wa.agent_context(pg_temp.fence('f2')) -> 'existing_reply' ->> 'message_id',
  (select message_id::text from reply), 'so its context has the reply already written');
select results_eq(
  $$select message_id, ours from wa.begin_agent_reply(pg_temp.fence('f2'), pg_temp.seq('wamid.F2'), 'text',
      '{"text": {"body": "otra"}}', interval '60 seconds', pg_temp.t('00:31:17'))$$,
  $$select message_id, false from reply$$, 'and writing a reply returns that one, not the caller''s to send');
select is(wa.complete_buffer(pg_temp.fence('f2'), pg_temp.seq('wamid.F2')), 1,
  'complete removes only the message the reply answered');
select results_eq(
  $$select m.wamid, bm.fence, bm.reply_key from wa.buffer_messages bm join public.messages m on m.id = bm.message_id
    where bm.conversation_id = pg_temp.conv('5215514000006')$$,
  $$values ('wamid.F1', null::bigint, null::text)$$,
  'the late message stays, unanswered, for a batch of its own');

-- ---------------------------------------------------------------------------------------------
-- Item 9: the session only under a live lease; a failed reply resent by one claim, never while paused
-- ---------------------------------------------------------------------------------------------
-- F1's batch of its own is due too by now, so these rounds claim two buffers: fences by conversation.
select pg_temp.say('wamid.G1', '5215514000007', 'hola', pg_temp.t('00:40:00'));
select pg_temp.claim('g1', pg_temp.t('00:40:15'));
select is(wa.update_batch_session(pg_temp.fence('g1', '5215514000007'), 0, 'qualifying', '{"turns": 1}', interval '60 seconds',
                                  pg_temp.t('00:40:20')), 1::bigint, 'under a live lease the session is written');
select is((select lease_until from wa.buffers where conversation_id = pg_temp.conv('5215514000007')),
  pg_temp.t('00:41:20'), 'and the lease extended');
select throws_ok(
  $$select wa.update_batch_session(pg_temp.fence('g1', '5215514000007'), 1, 'quoted', '{}', interval '60 seconds',
                                   pg_temp.t('00:41:20'))$$,
  'P0410', null, 'once the lease ran out the write is refused, though no other claim took the batch yet');
select pg_temp.claim('g2', pg_temp.t('00:41:20'));
select throws_ok(
  $$select wa.update_batch_session(pg_temp.fence('g1', '5215514000007'), 1, 'quoted', '{}', interval '60 seconds',
                                   pg_temp.t('00:41:21'))$$,
  'P0410', null, 'and refused with the previous claim''s fence after the re-claim');
select is((select version from wa.get_chat_session(pg_temp.conv('5215514000007'))), 1::bigint,
  'the session stayed as the live claim wrote it');

create temp table g_reply as
select * from wa.begin_agent_reply(pg_temp.fence('g2', '5215514000007'), pg_temp.seq('wamid.G1'), 'text',
                                   '{"text": {"body": "hola"}}', interval '60 seconds', pg_temp.t('00:41:22'));
select wa.record_send_result((select message_id from g_reply), 'failed', null, '{"code": 131000}',
                             pg_temp.t('00:41:23'));
select results_eq(
  $$select message_id, status, ours from wa.begin_agent_reply(pg_temp.fence('g2', '5215514000007'), pg_temp.seq('wamid.G1'), 'text',
      '{"text": {"body": "otra"}}', interval '60 seconds', pg_temp.t('00:41:24'))$$,
  $$select message_id, 'pending', true from g_reply$$,
  'a failed reply (Meta refused it) is taken over: pending again, the caller''s to send');
select wa.record_send_result((select message_id from g_reply), 'failed', null, '{"code": 131000}',
                             pg_temp.t('00:41:25'));
update public.conversations set bot_paused_until = 'infinity' where id = pg_temp.conv('5215514000007');
select throws_ok(
  $$select * from wa.begin_agent_reply(pg_temp.fence('g2', '5215514000007'), pg_temp.seq('wamid.G1'), 'text',
      '{"text": {"body": "otra"}}', interval '60 seconds', pg_temp.t('00:41:26'))$$,
  'P0423', null, 'while the bot is paused a failed reply is not taken over');
select is((select status from public.messages where id = (select message_id from g_reply)), 'failed',
  'and stays failed');

select * from finish();
rollback;
