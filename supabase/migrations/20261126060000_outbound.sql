-- wabase outbound: every message to WhatsApp passes one send governor (the number's throughput and the pair
-- rate of WHATSAPP.md 4.2-4.3, with priorities and Meta's throttling codes as backoff); the template catalogue
-- per WhatsApp Business account; follow-up campaigns with durable recipients; marketing opt-outs.

-- ============================================================================================
-- The send governor: per business number, a schedule of slots at the number's rate; per (number, recipient),
-- the pair rate (one message every 6 s on average, bursts allowed and paid back afterwards)
-- ============================================================================================
alter table wa.phone_numbers
  -- Meta's throughput level for the number (GET /{phone-number-id}?fields=throughput): STANDARD 80 messages a
  -- second, HIGH 1,000 (after the automatic upgrade), COEXISTENCE 20 (the Business app on the same number).
  add column throughput_level text not null default 'STANDARD'
    check (throughput_level in ('STANDARD', 'HIGH', 'COEXISTENCE')),
  -- Overrides the level's rate (a lower ceiling for a shared number, a faster fake in tests).
  add column send_rate_mps numeric check (send_rate_mps > 0),
  -- The pair rate: one message per pair_interval to a user on average, bursts of pair_burst.
  add column pair_interval interval not null default interval '6 seconds' check (pair_interval > interval '0'),
  add column pair_burst integer not null default 45 check (pair_burst > 0),
  -- How far ahead campaign sends may book slots; bot and operator messages may book that much before them,
  -- so they never queue behind more than one slot of campaign traffic.
  add column campaign_horizon interval not null default interval '250 milliseconds'
    check (campaign_horizon >= interval '0');

create table wa.send_governor (
  phone_number_id text primary key references wa.phone_numbers (phone_number_id) on delete cascade,
  -- The next free slot (GCRA's theoretical arrival time): each booking moves it one interval on.
  next_slot_at timestamptz not null,
  -- After a 130429 the rate drops to rate * throttle_factor and climbs back to full within a minute.
  throttle_factor double precision not null default 1 check (throttle_factor > 0 and throttle_factor <= 1),
  throttled_at timestamptz,
  -- No send of any priority before this (the pause after a 130429).
  paused_until timestamptz
)
with (fillfactor = 80);
comment on table wa.send_governor is
  'Per business number: the next free send slot and the throttling Meta asked for (130429). Written only by '
  'wa.take_send_slot and wa.note_send_throttled.';

create table wa.send_pairs (
  phone_number_id text not null references wa.phone_numbers (phone_number_id) on delete cascade,
  -- The recipient as sent: wa_id or BSUID.
  recipient text not null,
  -- GCRA's theoretical arrival time for the pair: a send is allowed while it is at most
  -- (pair_burst - 1) * pair_interval ahead of now.
  next_slot_at timestamptz not null,
  -- Consecutive 131056 answers: the next retry waits 4^(strikes - 1) s (WHATSAPP.md 4.3).
  strikes integer not null default 0,
  struck_at timestamptz,
  primary key (phone_number_id, recipient)
)
with (fillfactor = 80);
create index send_pairs_next_slot_at_idx on wa.send_pairs (next_slot_at);
comment on table wa.send_pairs is
  'Per (business number, recipient): the pair rate''s schedule and its 131056 strikes. Purged once idle.';

revoke all on table wa.send_governor, wa.send_pairs from public, anon, authenticated, service_role;

create function wa.send_rate(p_number wa.phone_numbers, p_governor wa.send_governor, p_now timestamptz)
returns double precision
language sql
stable
set search_path = ''
as $$
  select coalesce(p_number.send_rate_mps,
                  case p_number.throughput_level when 'HIGH' then 1000 when 'COEXISTENCE' then 20 else 80 end)
         -- A throttled number climbs back linearly to its full rate within 60 s of the last 130429.
         * least(1, coalesce(p_governor.throttle_factor, 1)
                    + greatest(0, extract(epoch from p_now - coalesce(p_governor.throttled_at, p_now))) / 60)
$$;
comment on function wa.send_rate(wa.phone_numbers, wa.send_governor, timestamptz) is
  'Messages a second the governor allows a number now: send_rate_mps or its throughput level''s rate (80, '
  '1,000, 20), lowered after a 130429 and recovering within a minute.';

create function wa.take_send_slot(
  p_phone_number_id text, p_recipient text, p_priority text, p_now timestamptz default clock_timestamp()
)
returns table (granted boolean, wait_ms integer)
language plpgsql
set search_path = ''
as $$
declare
  v_number wa.phone_numbers;
  v_governor wa.send_governor;
  v_pair wa.send_pairs;
  v_interval interval;
  v_send_at timestamptz;
  v_pair_allowed_at timestamptz;
begin
  if p_priority not in ('interactive', 'campaign') then
    raise exception 'unknown send priority %', coalesce(quote_literal(p_priority), 'null') using errcode = '22023';
  end if;
  select * into v_number from wa.phone_numbers n where n.phone_number_id = p_phone_number_id;
  if not found then
    raise exception 'no business number %', p_phone_number_id using errcode = 'P0002';
  end if;
  -- The number's row, then the pair's: the only locks this transaction takes (docs/locking.md).
  insert into wa.send_governor (phone_number_id, next_slot_at) values (p_phone_number_id, p_now)
  on conflict (phone_number_id) do nothing;
  select * into v_governor from wa.send_governor g where g.phone_number_id = p_phone_number_id for update;
  v_interval := make_interval(secs => 1 / wa.send_rate(v_number, v_governor, p_now));

  if p_recipient is not null then
    insert into wa.send_pairs (phone_number_id, recipient, next_slot_at) values (p_phone_number_id, p_recipient, p_now)
    on conflict (phone_number_id, recipient) do nothing;
    select * into v_pair from wa.send_pairs p
    where p.phone_number_id = p_phone_number_id and p.recipient = p_recipient for update;
    v_pair_allowed_at := v_pair.next_slot_at - (v_number.pair_burst - 1) * v_number.pair_interval;
    if v_pair_allowed_at > p_now then
      -- The recipient's quota is borrowed: no number slot is booked for a send that cannot go yet.
      return query select false, ceil(extract(epoch from v_pair_allowed_at - p_now) * 1000)::integer;
      return;
    end if;
  end if;

  -- Bot and operator messages book up to campaign_horizon before the next free slot, which is at most that far
  -- ahead while only campaigns book: they wait one interval at most behind a running campaign.
  v_send_at := greatest(p_now, v_governor.next_slot_at
                               - case when p_priority = 'interactive' then v_number.campaign_horizon
                                      else interval '0' end);
  v_send_at := greatest(v_send_at, v_governor.paused_until);
  if p_priority = 'campaign' and v_send_at > p_now + v_number.campaign_horizon then
    return query select false,
      greatest(1, ceil(extract(epoch from v_send_at - v_number.campaign_horizon - p_now) * 1000))::integer;
    return;
  end if;
  update wa.send_governor g set next_slot_at = greatest(g.next_slot_at, v_send_at) + v_interval
  where g.phone_number_id = p_phone_number_id;
  if p_recipient is not null then
    update wa.send_pairs p set next_slot_at = greatest(p.next_slot_at, v_send_at) + v_number.pair_interval
    where p.phone_number_id = p_phone_number_id and p.recipient = p_recipient;
  end if;
  return query select true, ceil(extract(epoch from v_send_at - p_now) * 1000)::integer;
end;
$$;
comment on function wa.take_send_slot(text, text, text, timestamptz) is
  'The send governor. Books a slot for one message from p_phone_number_id to p_recipient (null for read '
  'receipts and typing indicators: no pair rate) at p_priority (interactive: bot replies, operator sends, '
  'receipts; campaign: last). Returns granted true and wait_ms, the time to wait before sending; or granted '
  'false and wait_ms until asking again (the pair''s quota is used up, or campaign slots are booked beyond the '
  'number''s campaign_horizon), booking nothing. No slot before a 130429''s pause ends. Slots are spaced at the number''s rate (wa.send_rate); the '
  'pair rate lets pair_burst messages go at once, then one per pair_interval. Locks the number''s governor '
  'row, then the pair''s, nothing else. Raises 22023 for an unknown priority, P0002 for an unknown number. '
  'Callers: the Edge Functions through _shared/governor.ts.';

create function wa.note_send_throttled(
  p_phone_number_id text, p_recipient text, p_code integer, p_now timestamptz default clock_timestamp()
)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_number wa.phone_numbers;
  v_governor wa.send_governor;
  v_strikes integer;
begin
  select * into v_number from wa.phone_numbers n where n.phone_number_id = p_phone_number_id;
  if not found then
    raise exception 'no business number %', p_phone_number_id using errcode = 'P0002';
  end if;
  if p_code = 130429 then
    insert into wa.send_governor (phone_number_id, next_slot_at) values (p_phone_number_id, p_now)
    on conflict (phone_number_id) do nothing;
    select * into v_governor from wa.send_governor g where g.phone_number_id = p_phone_number_id for update;
    -- Meta says: retry after a short pause and lower the rate (WHATSAPP.md 3.2). A second's pause, and a
    -- fifth off the rate per 130429, down to a quarter.
    update wa.send_governor g
    set throttle_factor = greatest(0.25, 0.8 * wa.send_rate(v_number, v_governor, p_now)
                                         / wa.send_rate(v_number, null, p_now)),
        throttled_at = p_now,
        paused_until = greatest(g.paused_until, p_now + interval '1 second')
    where g.phone_number_id = p_phone_number_id;
    return 1000;
  elsif p_code = 131056 and p_recipient is not null then
    -- Retry that recipient only, after 4^X s, X counting the strikes in a row (WHATSAPP.md 4.3): a strike
    -- long after the last backoff ended starts again at 1 s.
    insert into wa.send_pairs as p (phone_number_id, recipient, next_slot_at, strikes, struck_at)
    values (p_phone_number_id, p_recipient, p_now, 1, p_now)
    on conflict (phone_number_id, recipient) do update
    set strikes = case when p.struck_at > p_now - make_interval(secs => 4 ^ (p.strikes - 1) + 60)
                       then p.strikes + 1 else 1 end,
        struck_at = p_now
    returning p.strikes into v_strikes;
    -- Meta's backoff replaces the pair's schedule: the refused send's booking is void, and the next one may
    -- go after 4^X s exactly.
    update wa.send_pairs p
    set next_slot_at = p_now + make_interval(secs => 4 ^ (v_strikes - 1))
                       + (v_number.pair_burst - 1) * v_number.pair_interval
    where p.phone_number_id = p_phone_number_id and p.recipient = p_recipient;
    return (1000 * 4 ^ (v_strikes - 1))::integer;
  end if;
  raise exception 'not a throttling code: %', p_code using errcode = '22023';
end;
$$;
comment on function wa.note_send_throttled(text, text, integer, timestamptz) is
  'Meta refused a send for going too fast. 130429 (the number''s throughput): the number pauses 1 s and its '
  'rate drops by a fifth (to a quarter at most), recovering within a minute. 131056 (the pair rate): that '
  'recipient alone waits 4^X s, X = 0, 1, 2... for strikes in a row. Returns the backoff in ms. Nothing was '
  'sent, so the caller asks wa.take_send_slot again and sends the same message: never dropped, never doubled. '
  'Raises 22023 for another code. Callers: the Edge Functions through _shared/governor.ts.';

create function wa.purge_send_pairs(p_now timestamptz default now())
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_purged integer;
begin
  -- A pair whose schedule is in the past and whose backoff strikes have expired is a new pair again.
  delete from wa.send_pairs p
  where p.next_slot_at < p_now and (p.struck_at is null or p.struck_at < p_now - interval '1 hour');
  get diagnostics v_purged = row_count;
  insert into wa.job_runs (job, ran_at, result) values ('send-pairs-purge', p_now, jsonb_build_object('purged', v_purged));
  return v_purged;
end;
$$;
comment on function wa.purge_send_pairs(timestamptz) is
  'Governor purge (pg_cron, every 10 minutes): deletes pair rows that changed no outcome any more (schedule in '
  'the past, no recent 131056). Records the count in wa.job_runs.';

revoke all on function wa.send_rate(wa.phone_numbers, wa.send_governor, timestamptz),
  wa.take_send_slot(text, text, text, timestamptz), wa.note_send_throttled(text, text, integer, timestamptz),
  wa.purge_send_pairs(timestamptz)
  from public, anon, authenticated, service_role;

insert into wa.jobs (name, schedule, command) values
  ('wabase-send-pairs-purge', '*/10 * * * *', 'select wa.purge_send_pairs()');
select wa.schedule_jobs();
