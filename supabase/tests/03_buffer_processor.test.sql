-- The contract of the buffer processor's SQL: claims lease due buffers under a new fencing token; complete
-- removes only what its claim took; fail backs off or dead-letters; the agent reply is written once per burst
-- under an idempotency key; scheduled jobs sweep orphans and purge old data (wa.purge_history, from the operations migration). Every time is fixed through
-- p_now, so due times are deterministic. (The wa_buffer_due NOTIFY is covered by a deno test: pgTAP cannot
-- LISTEN.)
begin;
select plan(106);

-- ---------------------------------------------------------------------------------------------
-- Payload builders and lookups (test-only, in pg_temp)
-- ---------------------------------------------------------------------------------------------
create function pg_temp.t(p_time text) returns timestamptz language sql immutable as $$
  select ('2026-01-01 ' || p_time || '+00')::timestamptz
$$;
-- Each contact's wa_id: Ana 5215500000001, Beto ...02, and so on.
create function pg_temp.wa_id(p_name text) returns text language sql immutable as $$
  select '52155000000' || lpad(array_position(array['Ana', 'Beto', 'Caro', 'Dora', 'Eva', 'Fabi', 'Gus'], p_name)::text,
                               2, '0')
$$;
create function pg_temp.status(p_wamid text, p_status text, p_at timestamptz) returns jsonb language sql as $$
  select wa.ingest_webhook(tests.webhook(tests.change(jsonb_build_object('statuses', jsonb_build_array(
    jsonb_build_object('id', p_wamid, 'status', p_status, 'timestamp', extract(epoch from p_at)::bigint::text,
                       'recipient_id', '5215500000006'))))), p_at)
$$;

-- Every buffered message's seq, remembered after its buffer row is gone.
create temp table seqs (wamid text primary key, seq bigint not null);
-- Every claim: a round label and what wa.claim_buffers returned.
create temp table claims (round text not null, conversation_id uuid not null, fence bigint not null,
                          first_seq bigint, up_to_seq bigint, message_count integer, attempts integer);
-- What each wa.begin_agent_reply call returned.
create temp table replies (round text not null, message_id uuid, status text, body jsonb, up_to_seq bigint,
                           ours boolean);

-- Ingests one inbound message from p_name at p_at (Meta's timestamp = p_at) and remembers its seq.
create function pg_temp.inbound(p_wamid text, p_name text, p_type text, p_object jsonb, p_at timestamptz)
returns jsonb language plpgsql as $$
declare
  v_result jsonb;
begin
  v_result := wa.ingest_webhook(tests.webhook(tests.change(jsonb_build_object(
    'contacts', jsonb_build_array(tests.contact(pg_temp.wa_id(p_name), p_name)),
    'messages', jsonb_build_array(tests.msg(p_wamid, p_type, p_object, pg_temp.wa_id(p_name),
                                              extract(epoch from p_at)::bigint))))), p_at);
  insert into seqs
  select m.wamid, bm.seq from wa.buffer_messages bm join public.messages m on m.id = bm.message_id
  where m.wamid = p_wamid;
  return v_result;
end;
$$;
create function pg_temp.say(p_wamid text, p_name text, p_body text, p_at timestamptz) returns jsonb
language sql as $$
  select pg_temp.inbound(p_wamid, p_name, 'text', jsonb_build_object('body', p_body), p_at)
$$;
create function pg_temp.seq(p_wamid text) returns bigint language sql as $$
  select s.seq from seqs s where s.wamid = p_wamid
$$;
create function pg_temp.conv(p_name text) returns uuid language sql as $$
  select c.id from public.conversations c join public.contacts k on k.id = c.contact_id
  where k.wa_id = pg_temp.wa_id(p_name)
$$;
create function pg_temp.who(p_conversation_id uuid) returns text language sql as $$
  select k.profile_name from public.conversations c join public.contacts k on k.id = c.contact_id
  where c.id = p_conversation_id
$$;
create function pg_temp.claim(p_round text, p_at timestamptz, p_limit integer default 5,
                              p_worker text default 'worker-1')
returns integer language sql as $$
  with claimed as (
    insert into claims
    select p_round, c.* from wa.claim_buffers(p_worker, p_limit, interval '60 seconds', p_at) c
    returning 1
  )
  select count(*)::integer from claimed
$$;
create function pg_temp.fence(p_round text, p_name text) returns bigint language sql as $$
  select c.fence from claims c where c.round = p_round and c.conversation_id = pg_temp.conv(p_name)
$$;
create function pg_temp.reply(p_round text) returns uuid language sql as $$
  select r.message_id from replies r where r.round = p_round
$$;
create function pg_temp.outbound(p_name text) returns uuid language sql as $$
  insert into public.messages (conversation_id, direction, type, body, content_text, sent_at, status)
  values (pg_temp.conv(p_name), 'outbound', 'text', '{"text":{"body":"x"}}', 'x', pg_temp.t('00:40:00'), 'pending')
  returning id
$$;

select is(wa.invoke_buffer_processor(), 0::bigint,
  'invoke_buffer_processor requests no invocation without the Vault secrets (17_hosted_trigger covers them)');

-- ---------------------------------------------------------------------------------------------
-- Claim: only due buffers, by due time, leased under a new fence
-- ---------------------------------------------------------------------------------------------
select pg_temp.say('wamid.A1', 'Ana', 'hola', pg_temp.t('00:00:00'));
select pg_temp.say('wamid.B1', 'Beto', 'buenas', pg_temp.t('00:00:00'));
select pg_temp.say('wamid.B2', 'Beto', 'tengo una duda', pg_temp.t('00:00:02'));
select pg_temp.say('wamid.A2', 'Ana', 'quiero un coche', pg_temp.t('00:00:05'));
select results_eq($$select pg_temp.who(conversation_id), due_at from wa.buffers order by due_at$$,
  $$values ('Beto', pg_temp.t('00:00:12')), ('Ana', pg_temp.t('00:00:15'))$$,
  'setup: two buffers, due 10 s after their last message');

select is(pg_temp.claim('early', pg_temp.t('00:00:11')), 0, 'nothing is claimed before its due_at');
select is(pg_temp.claim('r1', pg_temp.t('00:00:20'), 1), 1, 'p_limit 1 claims one of two due buffers');
select results_eq(
  $$select pg_temp.who(conversation_id), first_seq, up_to_seq, message_count, attempts from claims where round = 'r1'$$,
  $$values ('Beto', pg_temp.seq('wamid.B1'), pg_temp.seq('wamid.B2'), 2, 1)$$,
  'the earliest due one, with its whole batch (first_seq .. up_to_seq) and attempts 1');
select is(pg_temp.claim('r2', pg_temp.t('00:00:20'), 5, 'worker-2'), 1,
  'a second claim at the same time gets only the other buffer');
select results_eq(
  $$select pg_temp.who(conversation_id), first_seq, up_to_seq, message_count, attempts from claims where round = 'r2'$$,
  $$values ('Ana', pg_temp.seq('wamid.A1'), pg_temp.seq('wamid.A2'), 2, 1)$$, 'Ana''s batch of two');
select ok(pg_temp.fence('r2', 'Ana') > pg_temp.fence('r1', 'Beto'), 'each claim gets a new, larger fencing token');
select is(pg_temp.claim('r3', pg_temp.t('00:00:20')), 0, 'claiming again at the same time gets nothing: both leased');
select results_eq(
  $$select fence, lease_until, claimed_by, claimed_at, attempts from wa.buffers
    where conversation_id = pg_temp.conv('Ana')$$,
  $$values (pg_temp.fence('r2', 'Ana'), pg_temp.t('00:01:20'), 'worker-2', pg_temp.t('00:00:20'), 1)$$,
  'the buffer holds the fence and a lease of p_lease for the worker');
select results_eq(
  $$select m.wamid, bm.fence from wa.buffer_messages bm join public.messages m on m.id = bm.message_id
    where bm.conversation_id = pg_temp.conv('Ana') order by bm.seq$$,
  $$values ('wamid.A1', pg_temp.fence('r2', 'Ana')), ('wamid.A2', pg_temp.fence('r2', 'Ana'))$$,
  'the batch''s messages are marked with the claim''s fence');

-- ---------------------------------------------------------------------------------------------
-- Complete: only what the claim took, up to up_to_seq; late messages re-arm the buffer
-- ---------------------------------------------------------------------------------------------
select pg_temp.say('wamid.A3', 'Ana', 'rojo, por favor', pg_temp.t('00:00:30'));
select is(wa.complete_buffer(pg_temp.fence('r2', 'Ana'), pg_temp.seq('wamid.A2')), 1,
  'complete returns how many messages are left');
select results_eq(
  $$select m.wamid, bm.fence from wa.buffer_messages bm join public.messages m on m.id = bm.message_id
    where bm.conversation_id = pg_temp.conv('Ana')$$,
  $$values ('wamid.A3', null::bigint)$$,
  'the claimed messages are removed; the one appended after the claim stays, unmarked');
select results_eq(
  $$select lease_until, claimed_by, claimed_at, attempts, errors, message_count, first_message_at, last_message_at,
           due_at
    from wa.buffers where conversation_id = pg_temp.conv('Ana')$$,
  $$values (null::timestamptz, null::text, null::timestamptz, 0, '[]'::jsonb, 1, pg_temp.t('00:00:30'),
            pg_temp.t('00:00:30'), pg_temp.t('00:00:40'))$$,
  'the buffer is re-armed: lease cleared, attempts 0, errors [], count and due time from the remaining message');
select is((select count(*)::int from public.messages where wamid in ('wamid.A1', 'wamid.A2')), 2,
  'completed messages stay in public.messages');
select throws_ok($$select wa.complete_buffer(pg_temp.fence('r2', 'Ana'), pg_temp.seq('wamid.A3'))$$, 'P0410', null,
  'completing a batch again with its fence is refused as stale (the buffer still has messages)');

select is(wa.complete_buffer(pg_temp.fence('r1', 'Beto'), pg_temp.seq('wamid.B1')), 1,
  'complete up to a seq below the batch''s end leaves the rest');
select results_eq(
  $$select m.wamid, bm.fence, b.message_count, b.attempts, b.lease_until, b.due_at
    from wa.buffer_messages bm join public.messages m on m.id = bm.message_id
    join wa.buffers b on b.conversation_id = bm.conversation_id where bm.conversation_id = pg_temp.conv('Beto')$$,
  $$values ('wamid.B2', null::bigint, 1, 0, null::timestamptz, pg_temp.t('00:00:12'))$$,
  'the unanswered message is released, due by its own appended time');

select is(pg_temp.claim('r4', pg_temp.t('00:00:40')), 2, 're-armed buffers are claimable again, at their due time');
select results_eq(
  $$select pg_temp.who(conversation_id), first_seq, up_to_seq, message_count, attempts from claims
    where round = 'r4' order by 1$$,
  $$values ('Ana', pg_temp.seq('wamid.A3'), pg_temp.seq('wamid.A3'), 1, 1),
           ('Beto', pg_temp.seq('wamid.B2'), pg_temp.seq('wamid.B2'), 1, 1)$$,
  'the message appended during the first batch is claimed as its own batch');
select is(wa.complete_buffer(pg_temp.fence('r4', 'Ana'), pg_temp.seq('wamid.A3')), 0,
  'completing the last messages returns 0');
select ok(not exists (select from wa.buffers where conversation_id = pg_temp.conv('Ana')),
  'and deletes the empty buffer');
select throws_ok($$select wa.complete_buffer(pg_temp.fence('r4', 'Ana'), 0)$$, 'P0410', null,
  'a completed batch''s fence is stale: P0410');
select wa.complete_buffer(pg_temp.fence('r4', 'Beto'), pg_temp.seq('wamid.B2'));

-- ---------------------------------------------------------------------------------------------
-- Expired leases: re-claimed under a new fence, swept and dead-lettered at max attempts
-- ---------------------------------------------------------------------------------------------
select pg_temp.say('wamid.C1', 'Caro', 'hola', pg_temp.t('00:10:00'));
select pg_temp.say('wamid.D1', 'Dora', 'hola', pg_temp.t('00:10:01'));
select is(pg_temp.claim('c1', pg_temp.t('00:10:15'), 5, 'worker-dead'), 2,
  'setup: a worker claims two buffers, then dies');
select is(pg_temp.claim('c2', pg_temp.t('00:11:14')), 0, 'a lease is not claimable before it expires');
select is(pg_temp.claim('c3', pg_temp.t('00:11:15'), 1), 1, 'an expired lease is claimable again');
select results_eq(
  $$select pg_temp.who(conversation_id), message_count, attempts, fence > pg_temp.fence('c1', 'Caro')
    from claims where round = 'c3'$$,
  $$values ('Caro', 1, 2, true)$$, 'with a new, larger fence and attempts incremented');
select is((select errors from wa.buffers where conversation_id = pg_temp.conv('Caro')),
  jsonb_build_array(jsonb_build_object('at', pg_temp.t('00:11:15'), 'fence', pg_temp.fence('c1', 'Caro'),
                                       'attempt', 1, 'error', 'lease expired: worker worker-dead lost the batch')),
  'the lost claim is recorded in errors');
select throws_ok($$select wa.complete_buffer(pg_temp.fence('c1', 'Caro'), 9223372036854775807)$$, 'P0410', null,
  'the dead worker''s fence is stale after the re-claim: P0410');

update wa.phone_numbers set buffer_max_attempts = 3 where phone_number_id = 'PN1';
select is(wa.sweep_orphaned_buffers(pg_temp.t('00:12:15')), '{"expired_leases": 2, "dead_lettered": 0}'::jsonb,
  'the sweep counts expired leases and dead-letters none below the number''s buffer_max_attempts');
update wa.phone_numbers set buffer_max_attempts = 2 where phone_number_id = 'PN1';
select is(wa.sweep_orphaned_buffers(pg_temp.t('00:12:15')), '{"expired_leases": 2, "dead_lettered": 1}'::jsonb,
  'the sweep dead-letters an expired lease that used the number''s buffer_max_attempts');
select is(pg_temp.claim('c4', pg_temp.t('00:12:15')), 1,
  'with buffer_max_attempts 2, the other expired lease is claimed');
select results_eq($$select pg_temp.who(conversation_id), attempts from claims where round = 'c4'$$,
  $$values ('Dora', 2)$$, 'the one at attempt 1, now at its last attempt');
select results_eq(
  $$select fence, attempts, jsonb_path_query_array(errors, '$[*].attempt'), errors -> -1 ->> 'error',
           jsonb_path_query_array(messages, '$[*].wamid')
    from wa.dead_letters where conversation_id = pg_temp.conv('Caro')$$,
  $$values (pg_temp.fence('c3', 'Caro'), 2, '[1, 2]'::jsonb, 'lease expired: worker worker-1 lost the batch',
            '["wamid.C1"]'::jsonb)$$,
  'the dead letter holds the fence, attempts, both lost claims and the batch''s message');
select ok(not exists (select from wa.buffers where conversation_id = pg_temp.conv('Caro'))
          and exists (select from public.messages where wamid = 'wamid.C1'),
  'the swept buffer is gone; its message stays stored');
select results_eq(
  $$select result from wa.job_runs where job = 'orphan-sweep' and ran_at = pg_temp.t('00:12:15') order by id$$,
  $$values ('{"expired_leases": 2, "dead_lettered": 0}'::jsonb), ('{"expired_leases": 2, "dead_lettered": 1}'::jsonb)$$,
  'each sweep records its counts in wa.job_runs');
select wa.complete_buffer(pg_temp.fence('c4', 'Dora'), pg_temp.seq('wamid.D1'));
update wa.phone_numbers set buffer_max_attempts = 3 where phone_number_id = 'PN1';

-- ---------------------------------------------------------------------------------------------
-- Fail: backoff with jitter, retry_after, dead letter after max attempts or at once when permanent
-- ---------------------------------------------------------------------------------------------
select pg_temp.say('wamid.E1', 'Eva', 'hola', pg_temp.t('00:20:00'));
select pg_temp.say('wamid.E2', 'Eva', 'me ayudas?', pg_temp.t('00:20:01'));
select is(pg_temp.claim('e1', pg_temp.t('00:20:15')), 1, 'setup: Eva''s batch is claimed');
select is(wa.fail_buffer(pg_temp.fence('e1', 'Eva'), 'agent timeout', p_now => pg_temp.t('00:20:20')),
  'retry', 'a failed first attempt is retried');
select results_eq(
  $$select lease_until, claimed_by, claimed_at, attempts, errors from wa.buffers
    where conversation_id = pg_temp.conv('Eva')$$,
  $$values (null::timestamptz, null::text, null::timestamptz, 1,
            jsonb_build_array(jsonb_build_object('at', pg_temp.t('00:20:20'), 'fence', pg_temp.fence('e1', 'Eva'),
                                                 'attempt', 1, 'error', 'agent timeout')))$$,
  'fail clears the lease and appends {at, fence, attempt, error}');
select ok((select due_at between pg_temp.t('00:20:22.5') and pg_temp.t('00:20:27.5') from wa.buffers
           where conversation_id = pg_temp.conv('Eva')),
  'and backs off 5 s x 2^0, jittered within 0.5x .. 1.5x');
select throws_ok($$select wa.complete_buffer(pg_temp.fence('e1', 'Eva'), pg_temp.seq('wamid.E2'))$$, 'P0410', null,
  'a failed claim''s fence is stale: completing it afterwards is refused');
select throws_ok(
  $$select * from wa.begin_agent_reply(pg_temp.fence('e1', 'Eva'), pg_temp.seq('wamid.E2'), 'text',
                                       '{"text": {"body": "x"}}')$$,
  'P0410', null, 'and so is writing a reply with it');
select is(pg_temp.claim('e2', pg_temp.t('00:20:28')), 1, 'after the backoff the batch is claimed again');
select throws_ok(
  $$select wa.fail_buffer(pg_temp.fence('e1', 'Eva'), 'late', p_now => pg_temp.t('00:20:29'))$$, 'P0410', null,
  'failing with the previous claim''s fence: P0410');
select is(wa.fail_buffer(pg_temp.fence('e2', 'Eva'), 'rate limited',
                         p_retry_after => interval '120 seconds', p_now => pg_temp.t('00:20:30')),
  'retry', 'a failed second attempt is retried');
select is((select due_at from wa.buffers where conversation_id = pg_temp.conv('Eva')), pg_temp.t('00:22:30'),
  'no sooner than p_retry_after (the 10 s backoff is at most 15 s)');
select pg_temp.say('wamid.E3', 'Eva', 'hola??', pg_temp.t('00:20:40'));
select ok((select due_at >= pg_temp.t('00:22:30') from wa.buffers where conversation_id = pg_temp.conv('Eva')),
  'a message arriving during the backoff does not cut p_retry_after short');
select pg_temp.claim('e3', pg_temp.t('00:22:30'));
select results_eq($$select message_count, attempts from claims where round = 'e3'$$, $$values (3, 3)$$,
  'the third claim takes the burst with the message that arrived meanwhile');
select pg_temp.say('wamid.E4', 'Eva', 'sigues ahí?', pg_temp.t('00:22:32'));
select is(wa.fail_buffer(pg_temp.fence('e3', 'Eva'), 'agent 500', p_now => pg_temp.t('00:22:35')),
  'dead_letter', 'the failure of the attempt that used max attempts dead-letters the batch');
select results_eq(
  $$select fence, attempts, jsonb_path_query_array(errors, '$[*].attempt'),
           jsonb_path_query_array(errors, '$[*].error'), jsonb_path_query_array(errors, '$[*].fence')
    from wa.dead_letters where conversation_id = pg_temp.conv('Eva')$$,
  $$values (pg_temp.fence('e3', 'Eva'), 3, '[1, 2, 3]'::jsonb, '["agent timeout", "rate limited", "agent 500"]'::jsonb,
            jsonb_build_array(pg_temp.fence('e1', 'Eva'), pg_temp.fence('e2', 'Eva'), pg_temp.fence('e3', 'Eva')))$$,
  'the dead letter holds the conversation, fence, attempts and the full error history');
select results_eq(
  $$select x ->> 'wamid', (x ->> 'seq')::bigint, (x ->> 'message_id')::uuid = m.id
    from wa.dead_letters d cross join jsonb_array_elements(d.messages) with ordinality as e (x, n)
    join public.messages m on m.wamid = x ->> 'wamid'
    where d.conversation_id = pg_temp.conv('Eva') order by e.n$$,
  $$values ('wamid.E1', pg_temp.seq('wamid.E1'), true), ('wamid.E2', pg_temp.seq('wamid.E2'), true),
           ('wamid.E3', pg_temp.seq('wamid.E3'), true)$$,
  'and the batch''s messages (seq, message_id, wamid), which stay in public.messages');
select results_eq(
  $$select m.wamid, bm.fence, b.message_count, b.attempts, b.errors, b.lease_until, b.due_at
    from wa.buffer_messages bm join public.messages m on m.id = bm.message_id
    join wa.buffers b on b.conversation_id = bm.conversation_id where bm.conversation_id = pg_temp.conv('Eva')$$,
  $$values ('wamid.E4', null::bigint, 1, 0, '[]'::jsonb, null::timestamptz, pg_temp.t('00:22:42'))$$,
  'a message outside the dead-lettered batch stays, in a re-armed buffer');
select pg_temp.claim('e4', pg_temp.t('00:22:45'));
select is(wa.fail_buffer(pg_temp.fence('e4', 'Eva'), 'invalid request', p_permanent => true,
                         p_now => pg_temp.t('00:22:46')),
  'dead_letter', 'a permanent failure dead-letters at the first attempt');
select results_eq(
  $$select attempts, jsonb_array_length(errors), jsonb_path_query_array(messages, '$[*].wamid'),
           exists (select from wa.buffers where conversation_id = pg_temp.conv('Eva'))
    from wa.dead_letters where fence = pg_temp.fence('e4', 'Eva')$$,
  $$values (1, 1, '["wamid.E4"]'::jsonb, false)$$, 'with its one error and message; the empty buffer is gone');

-- ---------------------------------------------------------------------------------------------
-- Agent context and the reply's idempotency
-- ---------------------------------------------------------------------------------------------
select pg_temp.say('wamid.F0', 'Fabi', 'buenos días', pg_temp.t('00:30:00'));
select pg_temp.claim('f0', pg_temp.t('00:30:10'));
select wa.complete_buffer(pg_temp.fence('f0', 'Fabi'), pg_temp.seq('wamid.F0'));
select pg_temp.say('wamid.F1', 'Fabi', 'hola', pg_temp.t('00:31:00'));
select pg_temp.inbound('wamid.F2', 'Fabi', 'image',
  '{"id": "media1", "mime_type": "image/jpeg", "sha256": "abc", "caption": "my car"}', pg_temp.t('00:31:02'));
-- Due at 00:31:12, held for the image's fetch until 00:31:17 (its number's media_wait: docs/media.md).
select is(pg_temp.claim('f1', pg_temp.t('00:31:18')), 1, 'setup: Fabi''s burst of text and image is claimed');

select is(wa.batch_reply_key(pg_temp.conv('Fabi'), pg_temp.fence('f1', 'Fabi')),
  'agent-reply:' || pg_temp.conv('Fabi') || ':' || pg_temp.seq('wamid.F1'),
  'the reply key is the conversation and the batch''s first message');
select is(wa.batch_reply_key(pg_temp.conv('Fabi'), -1), null, 'no reply key for a fence without messages');
select is(wa.agent_context(pg_temp.fence('f1', 'Fabi')) ->> 'reply_key',
  wa.batch_reply_key(pg_temp.conv('Fabi'), pg_temp.fence('f1', 'Fabi')), 'the context carries the reply key');
select is(wa.agent_context(pg_temp.fence('f1', 'Fabi')) -> 'conversation',
  jsonb_build_object('id', pg_temp.conv('Fabi'), 'phone_number_id', 'PN1', 'display_phone_number', '15550001'),
  'the context has the conversation and its business number');
select is(wa.agent_context(pg_temp.fence('f1', 'Fabi')) -> 'contact',
  jsonb_build_object('id', (select contact_id from public.conversations where id = pg_temp.conv('Fabi')),
                     'wa_id', '5215500000006', 'name', 'Fabi'),
  'the contact to answer: id, wa_id and profile name');
select is((wa.agent_context(pg_temp.fence('f1', 'Fabi')) -> 'batch') - 'messages',
  jsonb_build_object('fence', pg_temp.fence('f1', 'Fabi'), 'first_seq', pg_temp.seq('wamid.F1'),
                     'up_to_seq', pg_temp.seq('wamid.F2')),
  'the batch: fence, first_seq, up_to_seq');
select results_eq(
  $$select x ->> 'wamid', x ->> 'type', x ->> 'text', (x ->> 'sent_at')::timestamptz, x -> 'media'
    from jsonb_array_elements(wa.agent_context(pg_temp.fence('f1', 'Fabi')) -> 'batch' -> 'messages')
         with ordinality as e (x, n) order by e.n$$,
  $$values ('wamid.F1', 'text', 'hola', pg_temp.t('00:31:00'), null::jsonb),
           ('wamid.F2', 'image', 'my car', pg_temp.t('00:31:02'),
            '{"id": "media1", "mime_type": "image/jpeg", "caption": "my car"}'::jsonb)$$,
  'the batch''s messages in seq order, with text and the image''s media metadata (never the media)');
select is(wa.agent_context(pg_temp.fence('f1', 'Fabi')) -> 'history',
  jsonb_build_array(jsonb_build_object('direction', 'inbound', 'type', 'text', 'text', 'buenos días',
                                       'sent_at', pg_temp.t('00:30:00'))),
  'the history holds the conversation''s other messages, not the batch''s');
select is(wa.agent_context(pg_temp.fence('f1', 'Fabi')) -> 'existing_reply', 'null'::jsonb, 'no reply written yet');
select is(wa.agent_context(-1), null, 'no context for an unknown fence');

insert into replies
select 'f1', r.* from wa.begin_agent_reply(pg_temp.fence('f1', 'Fabi'), pg_temp.seq('wamid.F2'), 'text',
  '{"text": {"body": "¡Hola! ¿Qué coche buscas?"}}', interval '60 seconds', pg_temp.t('00:31:20')) r;
select results_eq($$select status, body, up_to_seq, ours from replies where round = 'f1'$$,
  $$values ('pending', '{"text": {"body": "¡Hola! ¿Qué coche buscas?"}}'::jsonb, pg_temp.seq('wamid.F2'), true)$$,
  'begin_agent_reply writes a pending reply and says it is the caller''s to send (ours)');
select results_eq(
  $$select conversation_id, direction, type, status, idempotency_key, content_text, sent_at, wamid
    from public.messages where id = pg_temp.reply('f1')$$,
  $$values (pg_temp.conv('Fabi'), 'outbound', 'text', 'pending',
            'agent-reply:' || pg_temp.conv('Fabi') || ':' || pg_temp.seq('wamid.F1'), '¡Hola! ¿Qué coche buscas?',
            pg_temp.t('00:31:20'), null::text)$$,
  'as an outbound message under the reply key, before any send');
select results_eq($$select conversation_id, fence, up_to_seq, message_id from wa.agent_replies$$,
  $$values (pg_temp.conv('Fabi'), pg_temp.fence('f1', 'Fabi'), pg_temp.seq('wamid.F2'), pg_temp.reply('f1'))$$,
  'and records it in wa.agent_replies with up_to_seq');
select is((select lease_until from wa.buffers where conversation_id = pg_temp.conv('Fabi')), pg_temp.t('00:32:20'),
  'it extends the lease to p_now + p_lease');
insert into replies
select 'f1-again', r.* from wa.begin_agent_reply(pg_temp.fence('f1', 'Fabi'), pg_temp.seq('wamid.F2'), 'text',
  '{"text": {"body": "otra cosa"}}', interval '60 seconds', pg_temp.t('00:31:25')) r;
select results_eq($$select message_id, body, ours from replies where round = 'f1-again'$$,
  $$select message_id, body, false from replies where round = 'f1'$$,
  'calling it again returns the same message with ours = false');
select is((select lease_until from wa.buffers where conversation_id = pg_temp.conv('Fabi')), pg_temp.t('00:32:25'),
  'and extends the lease again');

-- The worker crashes after writing the reply; its lease expires and another worker re-claims the burst.
select pg_temp.say('wamid.F3', 'Fabi', 'rojo', pg_temp.t('00:32:00'));
select is(pg_temp.claim('f2', pg_temp.t('00:32:24')), 0, 'the extended lease is not claimable before it expires');
select pg_temp.claim('f2', pg_temp.t('00:32:25'));
select results_eq(
  $$select first_seq, up_to_seq, message_count, attempts, fence > pg_temp.fence('f1', 'Fabi') from claims
    where round = 'f2'$$,
  $$values (pg_temp.seq('wamid.F1'), pg_temp.seq('wamid.F3'), 3, 2, true)$$,
  'setup: the re-claim gets a new fence and the burst plus the message appended meanwhile');
select is(wa.agent_context(pg_temp.fence('f2', 'Fabi')) -> 'existing_reply',
  jsonb_build_object('message_id', pg_temp.reply('f1'), 'status', 'pending',
                     'body', '{"text": {"body": "¡Hola! ¿Qué coche buscas?"}}'::jsonb,
                     'up_to_seq', pg_temp.seq('wamid.F2')),
  'the new claim''s context has the reply already written for the burst');
select is(wa.agent_context(pg_temp.fence('f2', 'Fabi')) ->> 'reply_key',
  (select idempotency_key from wa.agent_replies), 'under the same key: keyed by the burst''s first message');
insert into replies
select 'f2', r.* from wa.begin_agent_reply(pg_temp.fence('f2', 'Fabi'), pg_temp.seq('wamid.F3'), 'text',
  '{"text": {"body": "¡Hola otra vez!"}}', interval '60 seconds', pg_temp.t('00:32:26')) r;
select results_eq($$select message_id, up_to_seq, ours from replies where round = 'f2'$$,
  $$select message_id, up_to_seq, false from replies where round = 'f1'$$,
  'begin_agent_reply with the new fence returns that reply, ours = false');
select is((select count(*)::int from public.messages where conversation_id = pg_temp.conv('Fabi')
                                                        and direction = 'outbound'), 1,
  'at most one reply per burst');
select is((select lease_until from wa.buffers where conversation_id = pg_temp.conv('Fabi')), pg_temp.t('00:33:26'),
  'even then it extends the lease');
select throws_ok(
  $$select * from wa.begin_agent_reply(pg_temp.fence('f1', 'Fabi'), 0, 'text', '{"text": {"body": "x"}}')$$,
  'P0410', null, 'begin_agent_reply with the previous claim''s fence: P0410');
select is(wa.agent_context(pg_temp.fence('f1', 'Fabi')), null, 'and that fence has no context any more');

-- ---------------------------------------------------------------------------------------------
-- Send results
-- ---------------------------------------------------------------------------------------------
select is(pg_temp.status('wamid.OUTF', 'delivered', pg_temp.t('00:32:30')) -> 'statuses_unmatched', '1',
  'setup: a status arrives before the send recorded its wamid');
select is(wa.record_send_result(pg_temp.reply('f1'), 'sent', 'wamid.OUTF', null, pg_temp.t('00:32:31')), 'delivered',
  'recording the send applies the status that arrived earlier');
select results_eq($$select wamid, status from public.messages where id = pg_temp.reply('f1')$$,
  $$values ('wamid.OUTF', 'delivered')$$, 'the reply has its wamid and the delivered status');
select wa.complete_buffer(pg_temp.fence('f2', 'Fabi'), pg_temp.seq('wamid.F3'));

create temp table outs as
select o.outcome, pg_temp.outbound('Fabi') as id from (values ('sent'), ('unknown'), ('failed')) o (outcome);
create function pg_temp.out(p_outcome text) returns uuid language sql as $$
  select o.id from outs o where o.outcome = p_outcome
$$;
select is(wa.record_send_result(pg_temp.out('sent'), 'sent', 'wamid.OUTS', null,
                                pg_temp.t('00:40:01')), 'sent', 'sent returns sent');
select results_eq($$select wamid, status, status_at from public.messages where id = pg_temp.out('sent')$$,
  $$values ('wamid.OUTS', 'sent', pg_temp.t('00:40:01'))$$, 'sent stores the wamid and status');
select is(wa.record_send_result(pg_temp.out('unknown'), 'unknown', null,
                                '{"message": "timeout"}', pg_temp.t('00:40:02')), 'unknown', 'unknown returns unknown');
select results_eq($$select wamid, status, error from public.messages where id = pg_temp.out('unknown')$$,
  $$values (null::text, 'unknown', '{"message": "timeout"}'::jsonb)$$, 'an ambiguous send is unknown, with its error');
select is(wa.record_send_result(pg_temp.out('failed'), 'failed', null,
                                '{"code": 131047}', pg_temp.t('00:40:03')), 'failed', 'failed returns failed');
select results_eq($$select status, error from public.messages where id = pg_temp.out('failed')$$,
  $$values ('failed', '{"code": 131047}'::jsonb)$$, 'a definite failure is failed, with its error');
select throws_ok($$select wa.record_send_result(pg_temp.out('sent'), 'bogus')$$, '22023', null,
  'an invalid outcome raises 22023');
select throws_ok($$select wa.record_send_result(gen_random_uuid(), 'sent')$$, 'P0002', null,
  'an unknown message id raises P0002');
select throws_ok($$select wa.record_send_result((select id from public.messages where wamid = 'wamid.F1'), 'sent')$$,
  'P0002', null, 'so does an inbound message');

-- ---------------------------------------------------------------------------------------------
-- Retention
-- ---------------------------------------------------------------------------------------------
select wa.record_rejected_webhook('{not json', null, 'invalid JSON', pg_temp.t('00:00:00'));
select pg_temp.say('wamid.G1', 'Gus', 'hola', '2026-02-20 00:00:00+00');
-- With p_now 2026-03-01: events and receipts older than 30 days, job runs older than 14 days.
create temp table expected_purge as
select jsonb_build_object(
  'webhook_events', (select count(*) from wa.webhook_events
                     where received_at < '2026-01-30 00:00:00+00' and error is null),
  'inbound_receipts', (select count(*) from wa.inbound_receipts where last_seen_at < '2026-01-30 00:00:00+00'),
  'message_statuses', (select count(*) from wa.message_statuses where last_seen_at < '2026-01-30 00:00:00+00'),
  'job_runs', (select count(*) from wa.job_runs where ran_at < '2026-02-15 00:00:00+00'),
  'ops_events', (select count(*) from wa.ops_events where at < '2026-02-22 00:00:00+00'),
  'cron_job_run_details', (select count(*) from cron.job_run_details
                           where coalesce(end_time, start_time) < '2026-02-22 00:00:00+00'),
  'call_events', (select count(*) from wa.call_events where last_seen_at < '2026-01-30 00:00:00+00'),
  'agent_tool_calls', (select count(*) from wa.agent_tool_calls where called_at < '2026-01-30 00:00:00+00'),
  'agent_tool_cache', (select count(*) from wa.agent_tool_cache c join wa.agent_tools t on t.name = c.tool
                       where c.fetched_at < '2026-02-22 00:00:00+00'
                         and c.fetched_at + t.cache_ttl <= '2026-03-01 00:00:00+00')) as result;
select ok((select (result ->> 'webhook_events')::int = 16 and (result ->> 'inbound_receipts')::int = 15
                  and (result ->> 'message_statuses')::int = 1 and (result ->> 'job_runs')::int >= 2
           from expected_purge),
  'setup: 16 old ingested events, 15 receipts, one status event and the sweeps'' job runs to purge');
select throws_ok($$update wa.retention_policies set keep = '7 days' where target = 'inbound_receipts'$$, '23514',
  null, 'keeping receipts less than 8 days is refused (23514)');
select is(wa.purge_history(p_now => '2026-03-01 00:00:00+00'), (select result from expected_purge),
  'purge_history deletes and counts old events, receipts, status events and job runs');
select results_eq(
  $$select received_at, error from wa.webhook_events where received_at < '2026-03-01 00:00:00+00' order by id$$,
  $$values (pg_temp.t('00:00:00'), 'invalid JSON'), ('2026-02-20 00:00:00+00'::timestamptz, null)$$,
  'the rejected event is kept, and so is the recent one');
select results_eq($$select wamid from wa.inbound_receipts where last_seen_at < '2026-03-01 00:00:00+00'$$,
  $$values ('wamid.G1')$$, 'only the recent receipt is kept');
select ok(not exists (select from wa.message_statuses where wamid = 'wamid.OUTF')
          and not exists (select from wa.job_runs where ran_at < '2026-02-15 00:00:00+00'),
  'old status events and job runs are gone');
select ok((select count(*) from wa.dead_letters) = 3
          and (select count(*) from public.messages where direction = 'inbound' and wamid like 'wamid.%') = 16,
  'messages and dead letters are kept');
select is((select result from wa.job_runs where job = 'retention' and ran_at = '2026-03-01 00:00:00+00'),
  (select result from expected_purge), 'the purge records a retention job run');

-- ---------------------------------------------------------------------------------------------
-- Scheduling, circuit breakers, health
-- ---------------------------------------------------------------------------------------------
select ok(cardinality(wa.pg_cron_version()) = 2 and (wa.pg_cron_version())[1] >= 1,
  'pg_cron_version is the major and minor version');
create temp table scheduled as select wa.schedule_jobs() as result;
select results_eq(
  $$select result -> 'pg_cron', result -> 'pg_net', result -> 'scheduled' ? 'wabase-buffer-processor',
           result ->> 'pg_cron_version'
    from scheduled$$,
  $$values ('true'::jsonb, 'true'::jsonb, true, array_to_string(wa.pg_cron_version(), '.'))$$,
  'schedule_jobs finds pg_cron and pg_net (the local stand-in), so schedules the processor''s keepalive tick');
select results_eq(
  $$select jobname::text collate "default", schedule collate "default", command collate "default" from cron.job
    where jobname in ('wabase-orphan-sweep', 'wabase-retention', 'wabase-buffer-processor') order by jobname$$,
  $$values ('wabase-buffer-processor',
            case when wa.pg_cron_version() >= array[1, 5] then '1 seconds' else '* * * * *' end,
            'select wa.invoke_buffer_processor()'),
           ('wabase-orphan-sweep', '* * * * *', 'select wa.sweep_orphaned_buffers()'),
           ('wabase-retention', '17 3 * * *', 'select wa.purge_history()')$$,
  'the orphan sweep, keepalive tick (every second where pg_cron has seconds) and retention jobs exist');

select wa.save_circuit_breaker('agent', 'open', '{"state": "open"}');
select wa.save_circuit_breaker('agent', 'half_open', null);
select results_eq($$select name, state, snapshot from wa.circuit_breakers$$,
  $$values ('agent', 'half_open', null::jsonb)$$, 'save_circuit_breaker upserts by name');
select results_eq(
  $$select h -> 'circuit_breakers' -> 'agent' ->> 'state', (h ->> 'dead_letters')::int,
           h -> 'cron_jobs' ? 'wabase-orphan-sweep', (h -> 'buffers' ->> 'buffers')::int,
           (h -> 'job_results' -> 'retention' -> 'result') = (select result from expected_purge)
    from (select public.ops_metrics() as h) x$$,
  -- Two buffers wait: Gus's, and Fabi's message that arrived after the reply to her burst was written.
  $$values ('half_open', 3, true, 2, true)$$,
  'ops_metrics reports breakers, dead letters, cron jobs, buffers and the last job results');

-- ---------------------------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------------------------
select is_empty(
  $$select f::text || ' by ' || r.rolname
    from unnest(array['wa.claim_buffers(text, integer, interval, timestamptz)',
                      'wa.batch_exhausted(wa.buffers)', 'wa.lost_lease_error(wa.buffers, timestamptz)',
                      'wa.next_claim_at()',
                      'wa.locked_buffer(bigint)', 'wa.rearm_buffer(uuid)', 'wa.complete_buffer(bigint, bigint)',
                      'wa.dead_letter_batch(wa.buffers, jsonb)',
                      'wa.fail_buffer(bigint, text, interval, interval, interval, boolean, timestamptz)',
                      'wa.batch_reply_key(uuid, bigint)', 'wa.agent_context(bigint, integer)',
                      'wa.begin_agent_reply(bigint, bigint, text, jsonb, interval, timestamptz)',
                      'wa.record_send_result(uuid, text, text, jsonb, timestamptz)',
                      'wa.sweep_orphaned_buffers(timestamptz)',
                      'wa.purge_history(timestamptz)', 'wa.pg_cron_version()',
                      'wa.invoke_buffer_processor()', 'wa.schedule_jobs()', 'wa.notify_buffer_due()',
                      'wa.keep_backoff()',
                      'wa.save_circuit_breaker(text, text, jsonb)']::regprocedure[]) f
    cross join (values ('anon'), ('authenticated'), ('service_role')) as r (rolname)
    where has_function_privilege(r.rolname, f, 'execute')$$,
  'no buffer processor function is executable by anon, authenticated or service_role');

select * from finish();
rollback;
