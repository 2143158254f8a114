-- The contract of rate limits: a token bucket per (subject, category) with continuous refill, the 22023
-- refusals, configuration changes, the purge of full buckets and its pg_cron job. Concurrency is proven with
-- real connections in supabase/functions/_shared/ratelimit.test.ts.
begin;
select plan(34);

-- A fixed clock: t(0) is the first take, t(n) n seconds later.
create function pg_temp.t(p_seconds numeric) returns timestamptz language sql immutable as $$
  select '2026-01-01 00:00:00+00'::timestamptz + p_seconds * interval '1 second'
$$;
create function pg_temp.take(p_subject text, p_category text, p_seconds numeric, p_cost integer default 1)
returns table (allowed boolean, remaining double precision, retry_after_ms integer) language sql as $$
  select * from wa.take_rate_limit_token(p_subject, p_category, p_cost, pg_temp.t(p_seconds))
$$;
-- p_n takes one after the other at the same instant, in order.
create function pg_temp.takes(p_n integer, p_subject text, p_category text, p_seconds numeric)
returns table (n integer, allowed boolean, remaining double precision, retry_after_ms integer)
language plpgsql as $$
begin
  for i in 1..p_n loop
    return query select i, r.* from pg_temp.take(p_subject, p_category, p_seconds) r;
  end loop;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Defaults
-- ---------------------------------------------------------------------------------------------
select results_eq($$select category, capacity, refill_per_minute from wa.rate_limit_config order by category$$,
  $$values ('auth', 10, 10::numeric), ('chat', 100, 100::numeric), ('media', 50, 50::numeric)$$,
  'auth 10/min, chat 100/min and media 50/min are seeded, capacity = the per-minute amount');

-- ---------------------------------------------------------------------------------------------
-- The bucket
-- ---------------------------------------------------------------------------------------------
select results_eq(
  $$select allowed, remaining from pg_temp.takes(10, 'u1', 'auth', 0) order by n$$,
  $$select true, (10 - g)::double precision from generate_series(1, 10) g order by g$$,
  'a new subject starts full: 10 auth takes at the same instant are allowed, counting down to 0');
select results_eq($$select * from pg_temp.take('u1', 'auth', 0)$$, $$values (false, 0::double precision, 6000)$$,
  'the 11th is refused with retry_after_ms 6000 (one token every 60 s / 10)');
select results_eq($$select tokens, updated_at from wa.rate_limit_buckets where subject = 'u1' and category = 'auth'$$,
  $$values (0::double precision, pg_temp.t(0))$$, 'a refusal takes nothing');
select results_eq($$select * from pg_temp.take('u1', 'auth', 3)$$, $$values (false, 0.5::double precision, 3000)$$,
  'half-way, half a token has refilled and the wait is the other half');
select results_eq($$select * from pg_temp.take('u1', 'auth', 6)$$, $$values (true, 0::double precision, 0)$$,
  'after 6 s exactly one more take is allowed');
select results_eq($$select * from pg_temp.take('u1', 'auth', 6)$$, $$values (false, 0::double precision, 6000)$$,
  'and only one');
select results_eq($$select * from pg_temp.take('u1', 'auth', 5)$$, $$values (false, 0::double precision, 6000)$$,
  'a take that read the clock before a later one refills nothing (no negative refill)');
select is((select updated_at from wa.rate_limit_buckets where subject = 'u1' and category = 'auth'), pg_temp.t(6),
  'and does not move the bucket''s clock back');
select results_eq($$select * from pg_temp.take('u1', 'auth', 3606)$$, $$values (true, 9::double precision, 0)$$,
  'after an hour idle the refill is capped at the capacity: 10 tokens, 9 left');
select results_eq($$select * from pg_temp.take('u1', 'auth', 3606, 5)$$, $$values (true, 4::double precision, 0)$$,
  'a cost of 5 takes 5 tokens');
select results_eq($$select * from pg_temp.take('u1', 'auth', 3606, 5)$$, $$values (false, 4::double precision, 6000)$$,
  'a cost of 5 with 4 tokens is refused, waiting for the 1 missing token');
select results_eq($$select * from pg_temp.take('u1', 'auth', 3606, 4)$$, $$values (true, 0::double precision, 0)$$,
  'a cost equal to the tokens left is allowed');
select results_eq($$select * from pg_temp.take('u1', 'auth', 3606, 10)$$, $$values (false, 0::double precision, 60000)$$,
  'a cost of the whole capacity waits for the whole bucket to refill');

-- ---------------------------------------------------------------------------------------------
-- Independence
-- ---------------------------------------------------------------------------------------------
select results_eq($$select * from pg_temp.take('u2', 'auth', 0)$$, $$values (true, 9::double precision, 0)$$,
  'another subject has its own full bucket');
select results_eq($$select * from pg_temp.take('u1', 'chat', 0)$$, $$values (true, 99::double precision, 0)$$,
  'another category of the same subject has its own full bucket');
select results_eq($$select * from pg_temp.take('u1', 'media', 0, 50)$$, $$values (true, 0::double precision, 0)$$,
  'media holds 50');
select results_eq($$select * from pg_temp.take('u1', 'media', 0)$$, $$values (false, 0::double precision, 1200)$$,
  'and refills one token every 1.2 s');
select results_eq($$select allowed, remaining from wa.take_rate_limit_token('u-now', 'chat')$$,
  $$values (true, 99::double precision)$$, 'the clock defaults to clock_timestamp()');

-- ---------------------------------------------------------------------------------------------
-- Refusals
-- ---------------------------------------------------------------------------------------------
select throws_ok($$select * from wa.take_rate_limit_token('u1', 'nope')$$, '22023',
  'unknown rate-limit category ''nope''', 'an unknown category is refused with 22023');
select throws_ok($$select * from wa.take_rate_limit_token('u1', 'auth', 0)$$, '22023',
  'a rate-limit cost must be at least 1 token, not 0', 'a cost of 0 is refused with 22023');
select throws_ok($$select * from wa.take_rate_limit_token('u1', 'auth', 11)$$, '22023',
  'a rate-limit cost of 11 exceeds the capacity 10 of category auth',
  'a cost above the capacity, which could never be allowed, is refused with 22023');
select throws_ok($$select * from wa.take_rate_limit_token('', 'auth')$$, '22023',
  'a rate-limit subject must be a non-empty text', 'an empty subject is refused with 22023');
select throws_ok($$select * from wa.take_rate_limit_token(null, 'auth')$$, '22023',
  'a rate-limit subject must be a non-empty text', 'a null subject is refused with 22023');

-- ---------------------------------------------------------------------------------------------
-- Configuration changes apply to the next take
-- ---------------------------------------------------------------------------------------------
update wa.rate_limit_config set capacity = 2, refill_per_minute = 1 where category = 'auth';
select results_eq($$select * from pg_temp.take('u2', 'auth', 7200)$$, $$values (true, 1::double precision, 0)$$,
  'a lower capacity caps the tokens an existing bucket had');
select results_eq(
  $$select allowed, remaining, retry_after_ms from pg_temp.takes(3, 'u3', 'auth', 0) order by n$$,
  $$values (true, 1::double precision, 0), (true, 0::double precision, 0), (false, 0::double precision, 60000)$$,
  'a new subject gets the new capacity (2) and waits for the new refill (1/min)');

-- ---------------------------------------------------------------------------------------------
-- Purge
-- ---------------------------------------------------------------------------------------------
delete from wa.rate_limit_buckets;
select pg_temp.take('p-one', 'chat', 0);        -- 99 of 100: full again after 0.6 s
select pg_temp.take('p-all', 'chat', 0, 100);   -- 0 of 100: full again after 60 s
select pg_temp.take('p-auth', 'auth', 10);      -- 1 of 2 at 1/min: full again at t(70)
select is(wa.purge_rate_limit_buckets(pg_temp.t(30)), 1, 'the purge deletes only the buckets full again');
select results_eq($$select subject from wa.rate_limit_buckets order by subject$$, $$values ('p-all'), ('p-auth')$$,
  'buckets still refilling are kept');
select is(wa.purge_rate_limit_buckets(pg_temp.t(60)), 1, 'a bucket is purged once its refill reaches capacity');
select is((select result from wa.job_runs where job = 'rate-limit-purge' and ran_at = pg_temp.t(60)),
  '{"purged": 1}'::jsonb, 'each run is recorded with its count');
select results_eq($$select * from pg_temp.take('p-all', 'chat', 60)$$, $$values (true, 99::double precision, 0)$$,
  'a purged subject starts full again, as it would have been');

-- ---------------------------------------------------------------------------------------------
-- Scheduling and privileges
-- ---------------------------------------------------------------------------------------------
select ok(exists (select from cron.job where jobname = 'wabase-rate-limit-purge' and schedule = '*/10 * * * *'
                  and command = 'select wa.purge_rate_limit_buckets()'),
  'the purge is scheduled by pg_cron every 10 minutes');
select is_empty(
  $$select f::text || ' by ' || r.rolname
    from unnest(array['wa.take_rate_limit_token(text, text, integer, timestamptz)',
                      'wa.purge_rate_limit_buckets(timestamptz)']::regprocedure[]) f
    cross join (values ('anon'), ('authenticated'), ('service_role')) as r (rolname)
    where has_function_privilege(r.rolname, f, 'execute')$$,
  'no rate-limit function is executable by the API roles');
select is_empty(
  $$select t::text || ' by ' || r.rolname
    from unnest(array['wa.rate_limit_config', 'wa.rate_limit_buckets']::regclass[]) t
    cross join (values ('anon'), ('authenticated'), ('service_role')) as r (rolname)
    where has_table_privilege(r.rolname, t, 'select, insert, update, delete')$$,
  'no rate-limit table is reachable by the API roles');

select * from finish();
rollback;
