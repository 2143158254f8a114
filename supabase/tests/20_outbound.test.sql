-- The contract of outbound (issue 20): the send governor (slots at the number's rate, the campaign horizon
-- and bot/operator priority, the pair rate with bursts, 130429 and 131056 backoff). Concurrency and the Graph
-- API path are in supabase/functions/_shared/governor.test.ts and bench/campaigns.ts.
begin;
select plan(16);

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

select * from finish();
rollback;
