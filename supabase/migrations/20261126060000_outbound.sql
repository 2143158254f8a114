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

-- ============================================================================================
-- Templates: the catalogue per WhatsApp Business account, synced from GET /{waba-id}/message_templates and
-- kept current by the template webhooks
-- ============================================================================================
alter table wa.phone_numbers
  -- The language whose templates a send outside the window suggests when the conversation never had one.
  add column template_language text;

create table wa.message_templates (
  waba_id text not null,
  -- Meta's template id.
  template_id text not null,
  name text not null,
  language text not null,
  category text,
  -- APPROVED, PENDING, REJECTED, PAUSED, DISABLED, ... and DELETED once a sync no longer finds it.
  status text not null,
  -- GREEN, YELLOW, RED or UNKNOWN.
  quality text,
  parameter_format text not null default 'POSITIONAL',
  components jsonb not null default '[]'::jsonb,
  -- What a send must fill, derived from the components: [{component, index?, name, type}].
  parameters jsonb not null default '[]'::jsonb,
  -- The last status change's reason, from the webhook.
  reason text,
  synced_at timestamptz,
  updated_at timestamptz not null default now(),
  primary key (waba_id, template_id),
  unique (waba_id, name, language)
);
comment on table wa.message_templates is
  'Message templates per WhatsApp Business account as Meta last told us (sync or webhook); '
  'public.list_templates reads them for the frontend.';
revoke all on table wa.message_templates from public, anon, authenticated, service_role;

create function wa.template_parameters(p_components jsonb)
returns jsonb
language sql
immutable
set search_path = ''
as $$
  -- Placeholders are {{1}}, {{2}}... (positional) or {{name}} (named); media headers take one media object;
  -- a URL button takes its {{1}} suffix (WHATSAPP.md 2.2).
  select coalesce(jsonb_agg(p.parameter order by p.ord, p.pos), '[]'::jsonb)
  from (
    select c.ord, 0 as pos,
           jsonb_build_object('component', 'header', 'name', 'header', 'type', lower(c.value ->> 'format')) as parameter
    from jsonb_array_elements(p_components) with ordinality c(value, ord)
    where upper(c.value ->> 'type') = 'HEADER' and upper(c.value ->> 'format') in ('IMAGE', 'VIDEO', 'DOCUMENT')
    union all
    select c.ord, m.pos, jsonb_build_object('component', lower(c.value ->> 'type'), 'name', m.match[1], 'type', 'text')
    from jsonb_array_elements(p_components) with ordinality c(value, ord)
    cross join lateral regexp_matches(coalesce(c.value ->> 'text', ''), '\{\{\s*([A-Za-z0-9_]+)\s*\}\}', 'g')
      with ordinality m(match, pos)
    where upper(c.value ->> 'type') in ('HEADER', 'BODY')
    union all
    select c.ord, b.pos, jsonb_build_object('component', 'button', 'index', b.pos - 1, 'name', '1', 'type', 'text')
    from jsonb_array_elements(p_components) with ordinality c(value, ord)
    cross join lateral jsonb_array_elements(c.value -> 'buttons') with ordinality b(value, pos)
    where upper(c.value ->> 'type') = 'BUTTONS' and upper(b.value ->> 'type') = 'URL'
      and b.value ->> 'url' ~ '\{\{\s*1\s*\}\}'
  ) p
$$;
comment on function wa.template_parameters(jsonb) is
  'The parameters a template''s components ask for, in order: a media header (image/video/document), text '
  'placeholders of the header and body ({{1}} or {{name}}), and the suffix of each dynamic URL button.';

create function wa.upsert_templates(p_waba_id text, p_templates jsonb, p_now timestamptz default now())
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_count integer;
begin
  insert into wa.message_templates as t (waba_id, template_id, name, language, category, status, quality,
                                         parameter_format, components, parameters, synced_at, updated_at)
  select p_waba_id, x.value ->> 'id', x.value ->> 'name', x.value ->> 'language', x.value ->> 'category',
         x.value ->> 'status', x.value -> 'quality_score' ->> 'score',
         coalesce(upper(x.value ->> 'parameter_format'), 'POSITIONAL'),
         coalesce(x.value -> 'components', '[]'::jsonb),
         wa.template_parameters(coalesce(x.value -> 'components', '[]'::jsonb)), p_now, p_now
  from jsonb_array_elements(p_templates) x
  where x.value ->> 'id' is not null and x.value ->> 'name' is not null and x.value ->> 'language' is not null
  on conflict (waba_id, template_id) do update
  set name = excluded.name, language = excluded.language, category = excluded.category, status = excluded.status,
      quality = excluded.quality, parameter_format = excluded.parameter_format, components = excluded.components,
      parameters = excluded.parameters, synced_at = excluded.synced_at, updated_at = excluded.updated_at;
  get diagnostics v_count = row_count;
  return v_count;
end;
$$;
comment on function wa.upsert_templates(text, jsonb, timestamptz) is
  'Stores one page of GET /{waba-id}/message_templates (data[]: id, name, language, category, status, '
  'quality_score, parameter_format, components) for p_waba_id, stamped synced_at = p_now. Returns how many. '
  'Caller: the template sync (_shared/templates.ts).';

create function wa.finish_template_sync(p_waba_id text, p_started_at timestamptz)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_deleted integer;
begin
  -- Every page was stored at p_started_at or later: what the sync did not see was deleted at Meta.
  update wa.message_templates t set status = 'DELETED', updated_at = p_started_at
  where t.waba_id = p_waba_id and (t.synced_at is null or t.synced_at < p_started_at) and t.status <> 'DELETED';
  get diagnostics v_deleted = row_count;
  insert into wa.job_runs (job, ran_at, result)
  values ('template-sync', p_started_at,
          jsonb_build_object('waba_id', p_waba_id, 'deleted', v_deleted,
                             'templates', (select count(*) from wa.message_templates t where t.waba_id = p_waba_id)));
  return v_deleted;
end;
$$;
comment on function wa.finish_template_sync(text, timestamptz) is
  'Ends a complete sync of p_waba_id begun at p_started_at: templates no page carried are marked DELETED. '
  'Records the run in wa.job_runs. Caller: the template sync.';

create function wa.apply_template_changes(p_payload jsonb, p_now timestamptz default now())
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_change record;
  v_count integer := 0;
begin
  -- Meta's webhooks name the template by id, name and language (webhooks reference:
  -- message_template_status_update, message_template_quality_update, template_category_update). A template
  -- the catalogue does not hold yet is added from what the webhook says; the next sync completes it.
  for v_change in
    select e.value ->> 'id' as waba_id, c.value ->> 'field' as field, c.value -> 'value' as v
    from jsonb_array_elements(p_payload -> 'entry') e
    cross join lateral jsonb_array_elements(e.value -> 'changes') c
    where c.value ->> 'field' in ('message_template_status_update', 'message_template_quality_update',
                                  'template_category_update')
      and e.value ->> 'id' is not null and c.value -> 'value' ->> 'message_template_id' is not null
      and c.value -> 'value' ->> 'message_template_name' is not null
      and c.value -> 'value' ->> 'message_template_language' is not null
  loop
    insert into wa.message_templates (waba_id, template_id, name, language, status, updated_at)
    values (v_change.waba_id, v_change.v ->> 'message_template_id', v_change.v ->> 'message_template_name',
            v_change.v ->> 'message_template_language', 'PENDING', p_now)
    on conflict (waba_id, template_id) do nothing;
    update wa.message_templates t
    set status = case when v_change.field = 'message_template_status_update'
                      then coalesce(upper(v_change.v ->> 'event'), t.status) else t.status end,
        reason = case when v_change.field = 'message_template_status_update' then v_change.v ->> 'reason'
                      else t.reason end,
        quality = case when v_change.field = 'message_template_quality_update'
                       then coalesce(v_change.v ->> 'new_quality_score', t.quality) else t.quality end,
        category = case when v_change.field = 'template_category_update'
                        then coalesce(v_change.v ->> 'new_category', t.category)
                        else coalesce(t.category, v_change.v ->> 'message_template_category') end,
        updated_at = p_now
    where t.waba_id = v_change.waba_id and t.template_id = v_change.v ->> 'message_template_id';
    v_count := v_count + 1;
  end loop;
  return v_count;
end;
$$;
comment on function wa.apply_template_changes(jsonb, timestamptz) is
  'Applies the template webhooks of a payload to the catalogue: message_template_status_update (status from '
  'event, with its reason), message_template_quality_update (new_quality_score), template_category_update '
  '(new_category). Returns how many changes it applied. Caller: whatsapp-webhook, after the ingest.';

create function public.list_templates(p_phone_number_id text default null, p_language text default null,
                                      p_status text default 'APPROVED')
returns table (waba_id text, template_id text, name text, language text, category text, status text,
               quality text, parameter_format text, parameters jsonb, components jsonb)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  perform wa.actor(auth.uid());
  return query
  select t.waba_id, t.template_id, t.name, t.language, t.category, t.status, t.quality, t.parameter_format,
         t.parameters, t.components
  from wa.message_templates t
  where (p_phone_number_id is null
         or t.waba_id = (select n.waba_id from wa.phone_numbers n where n.phone_number_id = p_phone_number_id))
    and (p_language is null or t.language = p_language)
    and (p_status is null or t.status = p_status)
  order by t.name, t.language;
end;
$$;
comment on function public.list_templates(text, text, text) is
  'The message templates the frontend may offer: of p_phone_number_id''s WhatsApp Business account (all when '
  'null), in p_language (all when null), with p_status (APPROVED by default; null for all): name, language, '
  'category, status, quality, parameter format, the parameters a send fills and the components. Any active '
  'user (PT403 no_profile otherwise). Caller: the frontend.';

create function wa.check_template_send(p_phone_number_id text, p_template jsonb, p_errcode text default 'P0422')
returns wa.message_templates
language plpgsql
stable
set search_path = ''
as $$
declare
  v_template wa.message_templates;
  v_name text := p_template ->> 'name';
  v_language text := p_template -> 'language' ->> 'code';
  v_expected jsonb;
  v_given jsonb;
begin
  select t.* into v_template
  from wa.message_templates t join wa.phone_numbers n on n.waba_id = t.waba_id
  where n.phone_number_id = p_phone_number_id and t.name = v_name and t.language = v_language;
  if not found then
    raise exception 'no template % in % for this number''s WhatsApp Business account', v_name, v_language
      using errcode = p_errcode, hint = 'template_not_found';
  end if;
  if v_template.status <> 'APPROVED' then
    raise exception 'template % (%) is %, not APPROVED', v_name, v_language, v_template.status
      using errcode = p_errcode, hint = 'template_not_approved';
  end if;
  -- What the send gives, in the catalogue's terms: per component (and button index), the parameter types.
  select coalesce(jsonb_agg(jsonb_build_object('component', k.component, 'index', k.idx, 'type', k.type)
                            order by k.component, k.idx, k.ord), '[]'::jsonb)
  into v_given
  from (
    select lower(c.value ->> 'type') as component, (c.value ->> 'index')::integer as idx, p.ord,
           lower(p.value ->> 'type') as type
    from jsonb_array_elements(coalesce(p_template -> 'components', '[]'::jsonb)) c
    cross join lateral jsonb_array_elements(coalesce(c.value -> 'parameters', '[]'::jsonb)) with ordinality p(value, ord)
  ) k;
  select coalesce(jsonb_agg(jsonb_build_object('component', k.component, 'index', k.idx, 'type', k.type)
                            order by k.component, k.idx, k.ord), '[]'::jsonb)
  into v_expected
  from (
    select p.value ->> 'component' as component, (p.value ->> 'index')::integer as idx, p.ord,
           p.value ->> 'type' as type
    from jsonb_array_elements(v_template.parameters) with ordinality p(value, ord)
  ) k;
  if v_given is distinct from v_expected then
    raise exception 'template % (%) takes % parameter(s), the send gives % that do not match', v_name, v_language,
      jsonb_array_length(v_expected), jsonb_array_length(v_given)
      using errcode = p_errcode, hint = 'template_parameters',
            detail = jsonb_build_object('expected', v_template.parameters)::text;
  end if;
  return v_template;
end;
$$;
comment on function wa.check_template_send(text, jsonb, text) is
  'Checks a template send (the Cloud API''s template object) from p_phone_number_id against the catalogue of '
  'its WhatsApp Business account before any API call: P0422 template_not_found (no such name and language), '
  'template_not_approved (status other than APPROVED), template_parameters (count or types per component do '
  'not match; DETAIL holds the expected parameters); p_errcode PT422 for public RPCs (PostgREST''s 422). '
  'Returns the template. Callers: send-message, campaigns.';

create function wa.window_templates(p_conversation_id uuid)
returns jsonb
language sql
stable
set search_path = ''
as $$
  -- The conversation's language: its last template's, else its number's template_language, else any.
  with c as (
    select c.phone_number_id, n.waba_id,
           coalesce((select m.body -> 'template' -> 'language' ->> 'code' from public.messages m
                     where m.conversation_id = c.id and m.type = 'template'
                     order by m.sent_at desc limit 1), n.template_language) as language
    from public.conversations c join wa.phone_numbers n on n.phone_number_id = c.phone_number_id
    where c.id = p_conversation_id
  )
  select coalesce(jsonb_agg(jsonb_build_object('name', t.name, 'language', t.language, 'category', t.category,
                                               'parameters', t.parameters) order by t.name), '[]'::jsonb)
  from c join wa.message_templates t on t.waba_id = c.waba_id
  where t.status = 'APPROVED' and (c.language is null or t.language = c.language)
$$;
comment on function wa.window_templates(uuid) is
  'The approved templates to offer when the 24-hour window of a conversation is closed: in its language (its '
  'last template''s, else its number''s template_language; all when neither), as [{name, language, category, '
  'parameters}]. Caller: send-message''s 422 outside_service_window.';

revoke all on function wa.template_parameters(jsonb), wa.upsert_templates(text, jsonb, timestamptz),
  wa.finish_template_sync(text, timestamptz), wa.apply_template_changes(jsonb, timestamptz),
  wa.check_template_send(text, jsonb, text), wa.window_templates(uuid)
  from public, anon, authenticated, service_role;
revoke all on function public.list_templates(text, text, text) from public, anon, service_role;
grant execute on function public.list_templates(text, text, text) to authenticated;

-- ============================================================================================
-- Account-level webhooks (templates; marketing preferences below), applied in the ingest's statement
-- ============================================================================================
create function wa.apply_user_preferences(p_payload jsonb, p_now timestamptz default now())
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_count integer;
  v_prefs jsonb;
begin
  -- user_preferences webhook (Meta's reference): value.user_preferences[] = {wa_id, detail, category
  -- marketing_messages, value stop | resume, timestamp}. The latest event per contact wins, whatever the
  -- delivery order; contacts are created by wa_id as the ingest would, and locked in id order.
  v_prefs := (
    select coalesce(jsonb_agg(jsonb_build_object('wa_id', x.wa_id, 'value', x.value, 'at', x.at)), '[]'::jsonb)
    from (
      select distinct on (p.value ->> 'wa_id') p.value ->> 'wa_id' as wa_id, lower(p.value ->> 'value') as value,
             coalesce(wa.unix_time(p.value ->> 'timestamp'), p_now) as at
      from jsonb_array_elements(p_payload -> 'entry') e
      cross join lateral jsonb_array_elements(e.value -> 'changes') c
      cross join lateral jsonb_array_elements(coalesce(c.value -> 'value' -> 'user_preferences', '[]'::jsonb)) p
      where c.value ->> 'field' = 'user_preferences' and p.value ->> 'category' = 'marketing_messages'
        and lower(p.value ->> 'value') in ('stop', 'resume') and p.value ->> 'wa_id' is not null
      order by p.value ->> 'wa_id', coalesce(wa.unix_time(p.value ->> 'timestamp'), p_now) desc
    ) x);
  insert into public.contacts (wa_id) select f.value ->> 'wa_id' from jsonb_array_elements(v_prefs) f order by 1
  on conflict (wa_id) do nothing;
  with locked as materialized (
    select k.id, f.value ->> 'value' as value, (f.value ->> 'at')::timestamptz as at
    from public.contacts k join jsonb_array_elements(v_prefs) f on f.value ->> 'wa_id' = k.wa_id
    order by k.id for no key update of k
  ),
  changed as (
    update public.contacts k
    set marketing_opted_out_at = case when l.value = 'stop' then l.at end,
        marketing_opt_out_source = case when l.value = 'stop' then 'user_preferences' end,
        updated_at = p_now
    from locked l
    where k.id = l.id
      -- An older event than the one recorded changes nothing.
      and (k.marketing_opted_out_at is null or l.at >= k.marketing_opted_out_at)
    returning 1
  )
  select count(*)::integer into v_count from changed;
  return v_count;
end;
$$;
comment on function wa.apply_user_preferences(jsonb, timestamptz) is
  'Applies Meta''s user_preferences webhook: a user who stops marketing messages is marked opted out '
  '(source user_preferences), one who resumes is cleared; an event older than the recorded opt-out changes '
  'nothing. Creates unknown contacts by wa_id; locks contacts in id order. Returns how many contacts changed. '
  'Caller: wa.apply_account_changes.';

create function public.set_marketing_opt_out(conversation_id uuid, opted_out boolean)
returns timestamptz
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_conversation public.conversations := wa.require_conversation_access(auth.uid(), conversation_id);
  v_at timestamptz;
begin
  update public.contacts k
  set marketing_opted_out_at = case when opted_out then coalesce(k.marketing_opted_out_at, now()) end,
      marketing_opt_out_source = case when opted_out then coalesce(k.marketing_opt_out_source, 'operator:' || auth.uid())
                                 end,
      updated_at = now()
  where k.id = v_conversation.contact_id
  returning k.marketing_opted_out_at into v_at;
  return v_at;
end;
$$;
comment on function public.set_marketing_opt_out(uuid, boolean) is
  'An operator marks the contact of a conversation as opted out of marketing messages (or clears it): campaigns '
  'skip them and send-message refuses a marketing template to them. Same access rules as the conversation '
  '(PT403/PT404). Returns the opt-out time (null when cleared). Caller: the frontend.';

create function wa.check_template_send_to(p_actor_id uuid, p_conversation_id uuid, p_template jsonb)
returns void
language plpgsql
stable
set search_path = ''
as $$
declare
  v_template wa.message_templates;
  v_opted_out timestamptz;
begin
  -- Nothing about a conversation (its templates, its contact's preferences) to whoever may not act on it.
  perform wa.require_conversation_access(p_actor_id, p_conversation_id);
  select k.marketing_opted_out_at into v_opted_out
  from public.conversations c join public.contacts k on k.id = c.contact_id
  where c.id = p_conversation_id;
  v_template := wa.check_template_send((select c.phone_number_id from public.conversations c
                                        where c.id = p_conversation_id), p_template);
  if v_template.category = 'MARKETING' and v_opted_out is not null then
    raise exception 'this contact stopped marketing messages on %', v_opted_out
      using errcode = 'P0422', hint = 'contact_opted_out';
  end if;
end;
$$;
comment on function wa.check_template_send_to(uuid, uuid, jsonb) is
  'wa.check_template_send for a conversation''s number, and P0422 contact_opted_out for a MARKETING template to '
  'a contact who stopped marketing messages; PT403/PT404 first for a caller who may not act on the '
  'conversation. Caller: send-message.';

revoke all on function wa.apply_user_preferences(jsonb, timestamptz), wa.check_template_send_to(uuid, uuid, jsonb)
  from public, anon, authenticated, service_role;
revoke all on function public.set_marketing_opt_out(uuid, boolean) from public, anon, service_role;
grant execute on function public.set_marketing_opt_out(uuid, boolean) to authenticated;

create function wa.apply_account_changes(p_payload jsonb, p_now timestamptz default now())
returns integer
language plpgsql
set search_path = ''
as $$
begin
  return wa.apply_template_changes(p_payload, p_now) + wa.apply_user_preferences(p_payload, p_now);
end;
$$;
comment on function wa.apply_account_changes(jsonb, timestamptz) is
  'Applies the account-level changes of a webhook payload that the message ingest stores raw only: the '
  'template webhooks (wa.apply_template_changes) and marketing preferences (wa.apply_user_preferences). '
  'Idempotent. Returns how many it applied. Caller: whatsapp-webhook, after the ingest, in a transaction of '
  'its own (it locks contacts, which the ingest''s lock order takes before what it holds at its end).';
revoke all on function wa.apply_account_changes(jsonb, timestamptz) from public, anon, authenticated, service_role;

-- ============================================================================================
-- Opt-outs: a contact who stopped marketing messages (Meta's user_preferences webhook, 131050, or an
-- operator) gets no campaign message and no manual marketing template until resumed
-- ============================================================================================
alter table public.contacts
  add column marketing_opted_out_at timestamptz,
  -- user_preferences webhook, graph 131050, or operator:<profile id>.
  add column marketing_opt_out_source text;

-- ============================================================================================
-- Campaigns: a template sent to many contacts, each recipient a durable row sent once through the governor
-- ============================================================================================
create table public.campaigns (
  id uuid primary key default gen_random_uuid(),
  -- The team whose topic hears its progress; null: an admin's campaign for no team.
  team_id uuid references public.teams (id),
  phone_number_id text not null references wa.phone_numbers (phone_number_id),
  name text not null check (name <> ''),
  template_name text not null,
  template_language text not null,
  -- running (sends from starts_at), paused, cancelled, completed.
  status text not null default 'running' check (status in ('running', 'paused', 'cancelled', 'completed')),
  starts_at timestamptz not null,
  -- Local hours [window_start_hour, window_end_hour) in time_zone when sends may go; null: any time.
  window_start_hour smallint check (window_start_hour between 0 and 23),
  window_end_hour smallint check (window_end_hour between 1 and 24),
  time_zone text not null default 'UTC',
  created_by uuid references public.profiles (id),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- When progress was last broadcast (at most once a second).
  progress_at timestamptz,
  constraint campaigns_window check ((window_start_hour is null) = (window_end_hour is null))
);
create index campaigns_team_id_idx on public.campaigns (team_id);
comment on table public.campaigns is
  'Follow-up campaigns: one approved template to many contacts from one business number, sent by the campaign '
  'workers through the send governor after every other message of that number.';
alter table public.campaigns enable row level security;
revoke all on public.campaigns from anon, authenticated;
grant select on public.campaigns to authenticated;
create policy "team members read their team's campaigns, admins all" on public.campaigns
  for select to authenticated
  using (team_id = any ((select authz.visible_teams())::uuid[]) or (select authz.my_role()) = 'admin');

create table wa.campaign_recipients (
  id bigint generated always as identity primary key,
  campaign_id uuid not null references public.campaigns (id) on delete cascade,
  contact_id uuid not null references public.contacts (id),
  -- The template's components for this recipient, as the Cloud API takes them.
  components jsonb not null default '[]'::jsonb,
  -- queued -> sending (leased) -> sent | failed | queued again (retryable); skipped (opted out); cancelled.
  state text not null default 'queued'
    check (state in ('queued', 'sending', 'sent', 'failed', 'skipped', 'cancelled')),
  due_at timestamptz not null,
  lease_until timestamptz,
  claimed_by text,
  attempts integer not null default 0,
  message_id uuid references public.messages (id),
  error_code integer,
  reason text,
  updated_at timestamptz not null default now(),
  constraint campaign_recipients_once unique (campaign_id, contact_id)
);
create index campaign_recipients_due_idx on wa.campaign_recipients (due_at) where state = 'queued';
create index campaign_recipients_lease_idx on wa.campaign_recipients (lease_until) where state = 'sending';
create index campaign_recipients_campaign_state_idx on wa.campaign_recipients (campaign_id, state);
create index campaign_recipients_message_id_idx on wa.campaign_recipients (message_id);
comment on table wa.campaign_recipients is
  'One row per (campaign, contact): its components and send state. The outbound message is written under '
  'the key campaign:<id> before the send, so whatever crashes, one message per (campaign, contact).';
revoke all on table wa.campaign_recipients from public, anon, authenticated, service_role;

-- A campaign message tells its recipient row in biz_opaque_callback_data, which Meta echoes on its statuses:
-- a send whose worker died before recording the answer is recognised by its `sent` status.
create index message_statuses_callback_idx on wa.message_statuses ((payload ->> 'biz_opaque_callback_data'))
  where payload ? 'biz_opaque_callback_data';

create function wa.in_send_window(p_campaign public.campaigns, p_now timestamptz)
returns boolean
language sql
stable
set search_path = ''
as $$
  select p_campaign.window_start_hour is null
    or case when p_campaign.window_start_hour < p_campaign.window_end_hour
            then extract(hour from p_now at time zone p_campaign.time_zone)
                 between p_campaign.window_start_hour and p_campaign.window_end_hour - 1
            -- A window across midnight (e.g. 20 to 8).
            else extract(hour from p_now at time zone p_campaign.time_zone) >= p_campaign.window_start_hour
                 or extract(hour from p_now at time zone p_campaign.time_zone) < p_campaign.window_end_hour end
$$;
comment on function wa.in_send_window(public.campaigns, timestamptz) is
  'Whether p_now falls in the campaign''s local send hours (always when it has none).';

create function wa.campaign_payload(p_campaign public.campaigns, p_recipient wa.campaign_recipients)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_build_object('messaging_product', 'whatsapp', 'recipient_type', 'individual')
    || (select case when k.wa_id is not null then jsonb_build_object('to', '+' || k.wa_id)
                    else jsonb_build_object('recipient', k.user_id) end
        from public.contacts k where k.id = p_recipient.contact_id)
    || jsonb_build_object(
         'type', 'template',
         'template', jsonb_build_object('name', p_campaign.template_name,
                                        'language', jsonb_build_object('code', p_campaign.template_language))
                     || case when jsonb_array_length(p_recipient.components) > 0
                             then jsonb_build_object('components', p_recipient.components) else '{}'::jsonb end,
         'biz_opaque_callback_data', 'campaign:' || p_recipient.id)
$$;
comment on function wa.campaign_payload(public.campaigns, wa.campaign_recipients) is
  'The Graph API request of a campaign message: the template with the recipient''s components, and '
  'biz_opaque_callback_data campaign:<recipient id> so its statuses identify it.';

create function wa.create_campaign(
  p_actor_id uuid, p_name text, p_phone_number_id text, p_template_name text, p_template_language text,
  p_recipients jsonb default null, p_prospect_ids uuid[] default null, p_components jsonb default '[]'::jsonb,
  p_starts_at timestamptz default now(), p_window jsonb default null, p_team_id uuid default null
)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_actor public.profiles := wa.actor(p_actor_id);
  v_team_id uuid := coalesce(p_team_id, case when v_actor.role = 'coordinator' then v_actor.team_id end);
  v_campaign_id uuid;
  v_template wa.message_templates;
  v_entry record;
  v_input jsonb;
begin
  if v_actor.role not in ('admin', 'coordinator')
     or (v_actor.role = 'coordinator' and v_team_id is distinct from v_actor.team_id) then
    raise exception 'only admins, and coordinators for their own team, create campaigns'
      using errcode = 'PT403', hint = 'forbidden';
  end if;
  if (p_recipients is null) = (p_prospect_ids is null) then
    raise exception 'give either recipients or prospect_ids' using errcode = 'PT422', hint = 'invalid_recipients';
  end if;
  v_template := wa.check_template_send(p_phone_number_id, jsonb_build_object(
    'name', p_template_name, 'language', jsonb_build_object('code', p_template_language),
    'components', coalesce(p_recipients -> 0 -> 'components', p_components)), 'PT422');
  insert into public.campaigns (team_id, phone_number_id, name, template_name, template_language, starts_at,
                                window_start_hour, window_end_hour, time_zone, created_by)
  values (v_team_id, p_phone_number_id, p_name, v_template.name, v_template.language, p_starts_at,
          (p_window ->> 'start_hour')::smallint, (p_window ->> 'end_hour')::smallint,
          coalesce(p_window ->> 'time_zone', 'UTC'), p_actor_id)
  returning id into v_campaign_id;

  -- The recipients: {phone, components} from the list, or each prospect with the shared components where
  -- {{name}} becomes the prospect's name.
  if p_prospect_ids is not null and v_actor.role <> 'admin'
     and exists (select from public.prospects p where p.id = any (p_prospect_ids)
                 and p.team_id is distinct from v_actor.team_id) then
    raise exception 'a coordinator''s campaign takes only their team''s prospects'
      using errcode = 'PT403', hint = 'forbidden';
  end if;
  v_input := coalesce(case when p_recipients is not null then
      (select jsonb_agg(jsonb_build_object('phone', wa.e164(r.value ->> 'phone'), 'contact_id', r.value ->> 'contact_id',
                                           'components', coalesce(r.value -> 'components', '[]'::jsonb)))
       from jsonb_array_elements(p_recipients) r)
    else
      (select jsonb_agg(jsonb_build_object('phone', wa.e164(p.phone), 'contact_id', p.contact_id,
                                           'components', replace(p_components::text, '{{name}}',
                                                                 coalesce(p.name, ''))::jsonb))
       from public.prospects p where p.id = any (p_prospect_ids))
    end, '[]'::jsonb);
  if exists (select from jsonb_array_elements(v_input) i
             where i.value ->> 'contact_id' is null and i.value ->> 'phone' is null) then
    raise exception 'every recipient needs a phone or a contact' using errcode = 'PT422', hint = 'invalid_recipients';
  end if;
  -- New phones become contacts, as the ingest would create them (in key order, locking no existing row).
  insert into public.contacts (wa_id)
  select distinct substr(i.value ->> 'phone', 2) from jsonb_array_elements(v_input) i
  where i.value ->> 'contact_id' is null order by 1
  on conflict (wa_id) do nothing;
  -- Every recipient's components must fit the template (checked once per distinct shape).
  for v_entry in select distinct i.value -> 'components' as components from jsonb_array_elements(v_input) i loop
    perform wa.check_template_send(p_phone_number_id, jsonb_build_object(
      'name', p_template_name, 'language', jsonb_build_object('code', p_template_language),
      'components', v_entry.components), 'PT422');
  end loop;
  insert into wa.campaign_recipients (campaign_id, contact_id, components, due_at, state, reason)
  select distinct on (k.id) v_campaign_id, k.id, i.value -> 'components', p_starts_at,
         case when k.marketing_opted_out_at is not null and v_template.category = 'MARKETING' then 'skipped'
              else 'queued' end,
         case when k.marketing_opted_out_at is not null and v_template.category = 'MARKETING' then 'opted_out' end
  from jsonb_array_elements(v_input) i
  join public.contacts k on k.id = coalesce((i.value ->> 'contact_id')::uuid,
                                            (select c.id from public.contacts c
                                             where c.wa_id = substr(i.value ->> 'phone', 2)))
  order by k.id;
  return v_campaign_id;
end;
$$;
comment on function wa.create_campaign(uuid, text, text, text, text, jsonb, uuid[], jsonb, timestamptz, jsonb, uuid) is
  'Creates a campaign and its recipients: p_recipients [{phone | contact_id, components}] or p_prospect_ids '
  '(the shared p_components, {{name}} replaced by each prospect''s name). Contacts are created for new phones; '
  'a contact twice is one recipient; contacts opted out of marketing are skipped (for a MARKETING template). '
  'The template must be approved and every recipient''s components must fit it (PT422 template_*). Admins for '
  'any team, coordinators for their own (PT403); PT422 invalid_recipients. p_window: {start_hour, end_hour, '
  'time_zone}. Caller: public.create_campaign.';

create function public.create_campaign(
  name text, phone_number_id text, template_name text, template_language text, recipients jsonb default null,
  prospect_ids uuid[] default null, components jsonb default '[]'::jsonb, starts_at timestamptz default now(),
  send_window jsonb default null, team_id uuid default null
)
returns uuid
language sql
security definer
set search_path = ''
as $$
  select wa.create_campaign(auth.uid(), name, phone_number_id, template_name, template_language, recipients,
                            prospect_ids, components, starts_at, send_window, team_id)
$$;
comment on function public.create_campaign(text, text, text, text, jsonb, uuid[], jsonb, timestamptz, jsonb, uuid) is
  'Creates a follow-up campaign (wa.create_campaign) as the caller: a template, recipients from an explicit '
  'list [{phone, components}] or from prospects, a start time and optional local send hours '
  '{start_hour, end_hour, time_zone}. Returns its id. Caller: the frontend (admins, coordinators).';

create function wa.campaign_for_update(p_actor_id uuid, p_campaign_id uuid)
returns public.campaigns
language plpgsql
set search_path = ''
as $$
declare
  v_actor public.profiles := wa.actor(p_actor_id);
  v_campaign public.campaigns;
begin
  select * into v_campaign from public.campaigns c where c.id = p_campaign_id for update;
  if not found then
    raise exception 'no campaign %', p_campaign_id using errcode = 'PT404', hint = 'campaign_not_found';
  end if;
  if not (v_actor.role = 'admin' or (v_actor.role = 'coordinator' and v_campaign.team_id = v_actor.team_id)) then
    raise exception 'you may not manage campaign %', p_campaign_id using errcode = 'PT403', hint = 'forbidden';
  end if;
  return v_campaign;
end;
$$;
comment on function wa.campaign_for_update(uuid, uuid) is
  'The campaign, locked, if p_actor_id manages it (admins, its team''s coordinator); PT403/PT404 otherwise.';

create function public.set_campaign_status(campaign_id uuid, action text)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_campaign public.campaigns := wa.campaign_for_update(auth.uid(), campaign_id);
  v_status text;
begin
  if v_campaign.status in ('cancelled', 'completed') then
    raise exception 'campaign % is %', campaign_id, v_campaign.status using errcode = 'PT409', hint = 'campaign_over';
  end if;
  v_status := case action when 'pause' then 'paused' when 'resume' then 'running' when 'cancel' then 'cancelled' end;
  if v_status is null then
    raise exception 'action must be pause, resume or cancel' using errcode = 'PT422', hint = 'invalid_action';
  end if;
  update public.campaigns c set status = v_status, updated_at = now() where c.id = set_campaign_status.campaign_id;
  if v_status = 'cancelled' then
    -- A recipient being sent right now finishes (its message may be on its way); the rest never go.
    update wa.campaign_recipients r set state = 'cancelled', updated_at = now()
    where r.campaign_id = set_campaign_status.campaign_id and r.state = 'queued';
  end if;
  perform wa.broadcast_campaign_progress(set_campaign_status.campaign_id, true);
  return v_status;
end;
$$;
comment on function public.set_campaign_status(uuid, text) is
  'Pauses, resumes or cancels a campaign (action pause | resume | cancel): workers claim recipients of running '
  'campaigns only; cancelling also cancels the recipients not yet claimed. Returns the new status. Admins and '
  'the team''s coordinator (PT403/PT404); PT409 campaign_over once cancelled or completed; PT422 '
  'invalid_action. Broadcasts the progress. Caller: the frontend.';

create function public.campaign_progress(campaign_id uuid)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  if not exists (select from public.campaigns c where c.id = campaign_progress.campaign_id
                 and (c.team_id = any (authz.visible_teams_of(auth.uid())) or authz.role_of(auth.uid()) = 'admin'))
     and auth.uid() is not null then
    raise exception 'no campaign %', campaign_id using errcode = 'PT404', hint = 'campaign_not_found';
  end if;
  return (
    with r as (
      select r.state, r.error_code, m.status,
             -- Replied: the customer wrote after the campaign message.
             exists (select from public.messages i where i.conversation_id = m.conversation_id
                     and i.direction = 'inbound' and i.sent_at > m.sent_at) as replied
      from wa.campaign_recipients r left join public.messages m on m.id = r.message_id
      where r.campaign_id = campaign_progress.campaign_id
    )
    select jsonb_build_object(
      'campaign_id', campaign_id,
      'status', (select c.status from public.campaigns c where c.id = campaign_progress.campaign_id),
      'recipients', count(*),
      'queued', count(*) filter (where r.state in ('queued', 'sending')),
      'sent', count(*) filter (where r.state = 'sent'),
      'delivered', count(*) filter (where r.state = 'sent' and r.status in ('delivered', 'read', 'played')),
      'read', count(*) filter (where r.state = 'sent' and r.status in ('read', 'played')),
      'replied', count(*) filter (where r.replied),
      'skipped', count(*) filter (where r.state = 'skipped'),
      'cancelled', count(*) filter (where r.state = 'cancelled'),
      'failed', count(*) filter (where r.state = 'failed' or r.status = 'failed'),
      'failed_by_code', coalesce((select jsonb_object_agg(x.code, x.n) from (
          select coalesce(r2.error_code::text, 'unknown') as code, count(*) as n from r r2
          where r2.state = 'failed' or r2.status = 'failed' group by 1) x), '{}'::jsonb))
    from r);
end;
$$;
comment on function public.campaign_progress(uuid) is
  'A campaign''s progress from its recipients and their messages'' statuses: recipients, queued, sent, '
  'delivered, read, replied, skipped, cancelled, failed and failed_by_code. Team members and admins (PT404 '
  'otherwise). Callers: the frontend, and wa.broadcast_campaign_progress.';

create function wa.broadcast_campaign_progress(p_campaign_id uuid, p_force boolean default false)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_team_id uuid;
begin
  -- At most once a second per campaign, whoever records sends concurrently.
  update public.campaigns c set progress_at = clock_timestamp()
  where c.id = p_campaign_id and (p_force or c.progress_at is null or c.progress_at < clock_timestamp() - interval '1 second')
  returning c.team_id into v_team_id;
  if not found then
    return false;
  end if;
  perform realtime.send(public.campaign_progress(p_campaign_id), 'campaign_progress',
                        coalesce('team:' || v_team_id, 'unassigned'), true);
  return true;
end;
$$;
comment on function wa.broadcast_campaign_progress(uuid, boolean) is
  'Broadcasts public.campaign_progress as event campaign_progress on the campaign''s team topic (unassigned '
  'without a team), at most once a second unless p_force. Returns whether it did. Callers: the campaign '
  'workers, set_campaign_status.';

create function wa.complete_campaigns(p_now timestamptz default now())
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_campaign_id uuid;
  v_count integer := 0;
begin
  -- Run by a claim that found nothing, after every recording transaction it could race has committed its
  -- recipient; idempotent, so concurrent workers may all run it.
  for v_campaign_id in
    update public.campaigns c set status = 'completed', updated_at = p_now
    where c.status = 'running'
      and not exists (select from wa.campaign_recipients r where r.campaign_id = c.id
                      and r.state in ('queued', 'sending'))
    returning c.id
  loop
    perform wa.broadcast_campaign_progress(v_campaign_id, true);
    v_count := v_count + 1;
  end loop;
  return v_count;
end;
$$;
comment on function wa.complete_campaigns(timestamptz) is
  'Marks running campaigns with no recipient queued or being sent as completed and broadcasts their final '
  'progress. Returns how many. Caller: wa.claim_campaign_send when it finds nothing to send.';

create function wa.claim_campaign_send(
  p_worker text, p_lease interval default interval '60 seconds', p_unknown_grace interval default interval '2 minutes',
  p_now timestamptz default now()
)
returns table (recipient_id bigint, campaign_id uuid, message_id uuid, phone_number_id text, body jsonb,
               attempt integer)
language plpgsql
set search_path = ''
as $$
declare
  v_recipient wa.campaign_recipients;
  v_campaign public.campaigns;
  v_contact public.contacts;
  v_conversation_id uuid;
  v_message public.messages;
  v_wamid text;
begin
  loop
    -- A lease that ran out first (its worker died mid-send), then the next due recipient of a running campaign
    -- in its send hours. Recipient rows come first in the lock order (docs/locking.md).
    select r.* into v_recipient from wa.campaign_recipients r
    where r.state = 'sending' and r.lease_until <= p_now
    order by r.lease_until for update skip locked limit 1;
    if not found then
      select r.* into v_recipient from wa.campaign_recipients r join public.campaigns c on c.id = r.campaign_id
      where r.state = 'queued' and r.due_at <= p_now and c.status = 'running' and c.starts_at <= p_now
        and wa.in_send_window(c, p_now)
      order by r.due_at, r.id for update of r skip locked limit 1;
      if not found then
        -- Holding nothing: campaigns whose every recipient is settled are complete.
        perform wa.complete_campaigns(p_now);
        return;
      end if;
    end if;
    select * into v_campaign from public.campaigns c where c.id = v_recipient.campaign_id;
    select * into v_contact from public.contacts k where k.id = v_recipient.contact_id for key share;
    if v_contact.marketing_opted_out_at is not null and v_recipient.message_id is null
       and exists (select from wa.message_templates t join wa.phone_numbers n on n.waba_id = t.waba_id
                   where n.phone_number_id = v_campaign.phone_number_id and t.name = v_campaign.template_name
                     and t.language = v_campaign.template_language and t.category = 'MARKETING') then
      update wa.campaign_recipients r set state = 'skipped', reason = 'opted_out', lease_until = null,
                                          updated_at = p_now
      where r.id = v_recipient.id;
      continue;
    end if;
    if v_recipient.message_id is not null then
      -- Read, not locked: wa.record_send_result takes the wamid's locks before the message (docs/locking.md).
      select * into v_message from public.messages m where m.id = v_recipient.message_id;
      if v_message.status = 'pending' or v_message.status = 'unknown' then
        -- A worker died (or timed out) after writing it: did Meta accept it? Its statuses carry our callback.
        select s.wamid into v_wamid from wa.message_statuses s
        where s.payload ->> 'biz_opaque_callback_data' = 'campaign:' || v_recipient.id limit 1;
        if v_wamid is not null then
          perform wa.record_send_result(v_message.id, 'sent', v_wamid, null, p_now);
          update wa.campaign_recipients r set state = 'sent', lease_until = null, updated_at = p_now
          where r.id = v_recipient.id;
          continue;
        end if;
        if v_recipient.updated_at > p_now - p_unknown_grace then
          -- Not yet provably lost: Meta reports every accepted message within seconds; ask again later.
          update wa.campaign_recipients r set state = 'sending', lease_until = p_now + p_unknown_grace
          where r.id = v_recipient.id;
          continue;
        end if;
      elsif v_message.status <> 'failed' then
        update wa.campaign_recipients r set state = 'sent', lease_until = null, updated_at = p_now
        where r.id = v_recipient.id;
        continue;
      end if;
      perform wa.record_send_result(v_message.id, 'pending', null, null, p_now);
    else
      -- The conversation (created for a contact who never wrote to this number; routed like any new one).
      insert into public.conversations (phone_number_id, contact_id, last_message_at)
      values (v_campaign.phone_number_id, v_recipient.contact_id, p_now)
      on conflict on constraint conversations_number_contact_key do nothing;
      select c.id into v_conversation_id from public.conversations c
      where c.phone_number_id = v_campaign.phone_number_id and c.contact_id = v_recipient.contact_id;
      insert into public.messages (conversation_id, direction, type, body, content_text, sent_at, status,
                                   idempotency_key, sent_by)
      values (v_conversation_id, 'outbound', 'template', wa.campaign_payload(v_campaign, v_recipient),
              v_campaign.name, p_now, 'pending', 'campaign:' || v_recipient.id, v_campaign.created_by)
      returning * into v_message;
    end if;
    update wa.campaign_recipients r
    set state = 'sending', lease_until = p_now + p_lease, claimed_by = p_worker, attempts = r.attempts + 1,
        message_id = v_message.id, updated_at = p_now
    where r.id = v_recipient.id;
    return query select v_recipient.id, v_recipient.campaign_id, v_message.id, v_campaign.phone_number_id,
                        v_message.body, v_recipient.attempts + 1;
    return;
  end loop;
end;
$$;
comment on function wa.claim_campaign_send(text, interval, interval, timestamptz) is
  'Claims one campaign send for p_worker (SKIP LOCKED, lease p_lease, attempt = the fence of this claim): an '
  'expired lease first, else the '
  'earliest due recipient of a running campaign within its send hours. Writes its message (pending, key '
  'campaign:<recipient id>, creating the conversation if needed) before the send and returns what to send. '
  'Settles without sending: opted-out contacts (skipped), a message already sent, and a message whose worker '
  'died mid-send that Meta''s statuses show accepted (matched by biz_opaque_callback_data); one with no status '
  'after p_unknown_grace is sent again (Meta reports every accepted message). Locks the recipient, then the '
  'contact (key share), the conversation and the message (docs/locking.md). Caller: the campaign workers.';

create function wa.record_campaign_send(
  p_recipient_id bigint, p_attempt integer, p_outcome text, p_wamid text default null, p_error jsonb default null,
  p_retry_after interval default null, p_max_attempts integer default 5, p_now timestamptz default now()
)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_recipient wa.campaign_recipients;
  v_code integer := (p_error ->> 'code')::integer;
  v_state text;
begin
  select * into v_recipient from wa.campaign_recipients r where r.id = p_recipient_id for update;
  if not found or v_recipient.state <> 'sending' or v_recipient.attempts <> p_attempt then
    -- Another worker took it over after our lease ran out: its outcome stands.
    return coalesce(v_recipient.state, 'gone');
  end if;
  if v_code = 131050 then
    -- Meta says this user stopped marketing messages from us: honour it everywhere. The contact before the
    -- message (docs/locking.md).
    update public.contacts k set marketing_opted_out_at = coalesce(k.marketing_opted_out_at, p_now),
                                 marketing_opt_out_source = coalesce(k.marketing_opt_out_source, 'graph 131050')
    where k.id = v_recipient.contact_id;
  end if;
  perform wa.record_send_result(v_recipient.message_id, p_outcome, p_wamid, p_error, p_now);
  v_state := case
    when p_outcome = 'sent' then 'sent'
    -- Ambiguous: stays leased; the next claim after the lease settles it from Meta's statuses.
    when p_outcome = 'unknown' then 'sending'
    when p_retry_after is not null and v_recipient.attempts < p_max_attempts then 'queued'
    else 'failed' end;
  update wa.campaign_recipients r
  set state = v_state,
      lease_until = case when v_state = 'sending' then r.lease_until end,
      due_at = case when v_state = 'queued' then p_now + p_retry_after else r.due_at end,
      error_code = coalesce(v_code, r.error_code),
      reason = case when v_state = 'failed' then coalesce(p_error ->> 'message', r.reason) else r.reason end,
      updated_at = p_now
  where r.id = p_recipient_id;
  perform wa.broadcast_campaign_progress(v_recipient.campaign_id);
  return v_state;
end;
$$;
comment on function wa.record_campaign_send(bigint, integer, text, text, jsonb, interval, integer, timestamptz) is
  'Records what a campaign send did: sent (wamid), failed (p_retry_after: queued again after it, up to '
  'p_max_attempts; else failed with the error code and reason: 131049/131050 and every definite refusal), '
  'unknown (left leased for the claim to settle from Meta''s statuses). 131050 marks the contact opted out. '
  'Broadcasts the progress (at most once a second). A recipient no longer ours (another claim, another '
  'p_attempt) is left alone. Caller: the '
  'campaign workers.';

create function wa.renew_campaign_lease(p_recipient_id bigint, p_attempt integer, p_lease interval)
returns boolean
language plpgsql
set search_path = ''
as $$
begin
  -- The fence: a claim after ours (its lease ran out while the governor made us wait) bumped attempts.
  -- updated_at marks the send's start: a lost answer is sent again only p_unknown_grace after it.
  update wa.campaign_recipients r set lease_until = clock_timestamp() + p_lease, updated_at = clock_timestamp()
  where r.id = p_recipient_id and r.attempts = p_attempt and r.state = 'sending';
  return found;
end;
$$;
comment on function wa.renew_campaign_lease(bigint, integer, interval) is
  'Right before the HTTP call of a campaign send: extends the lease if the claim p_attempt still holds the '
  'recipient, so no later claim sends it too; false when another claim took it over (nothing may be sent). '
  'Caller: the campaign workers.';

create function wa.next_campaign_send_at()
returns timestamptz
language sql
stable
set search_path = ''
as $$
  select least((select min(r.lease_until) from wa.campaign_recipients r where r.state = 'sending'),
               (select min(greatest(r.due_at, c.starts_at)) from wa.campaign_recipients r
                join public.campaigns c on c.id = r.campaign_id
                where r.state = 'queued' and c.status = 'running'))
$$;
comment on function wa.next_campaign_send_at() is
  'When a campaign worker may next find work (a due recipient, a lease running out); null when none waits. '
  'Send hours are not looked at: a worker outside them polls. Caller: local/campaign-worker.ts.';

revoke all on function wa.in_send_window(public.campaigns, timestamptz),
  wa.campaign_payload(public.campaigns, wa.campaign_recipients),
  wa.create_campaign(uuid, text, text, text, text, jsonb, uuid[], jsonb, timestamptz, jsonb, uuid),
  wa.campaign_for_update(uuid, uuid), wa.broadcast_campaign_progress(uuid, boolean), wa.complete_campaigns(timestamptz),
  wa.claim_campaign_send(text, interval, interval, timestamptz),
  wa.record_campaign_send(bigint, integer, text, text, jsonb, interval, integer, timestamptz),
  wa.renew_campaign_lease(bigint, integer, interval),
  wa.next_campaign_send_at()
  from public, anon, authenticated, service_role;
revoke all on function public.create_campaign(text, text, text, text, jsonb, uuid[], jsonb, timestamptz, jsonb, uuid),
  public.set_campaign_status(uuid, text), public.campaign_progress(uuid)
  from public, anon, service_role;
grant execute on function public.create_campaign(text, text, text, text, jsonb, uuid[], jsonb, timestamptz, jsonb, uuid),
  public.set_campaign_status(uuid, text), public.campaign_progress(uuid) to authenticated;

create function wa.invoke_campaign_sender()
returns bigint
language plpgsql
set search_path = ''
as $$
begin
  if wa.next_campaign_send_at() > now() or wa.next_campaign_send_at() is null then
    return null;
  end if;
  return wa.invoke_edge_function('outbound/campaigns');
end;
$$;
comment on function wa.invoke_campaign_sender() is
  'pg_cron job on Supabase: when a campaign send is due, POSTs to the outbound function''s /campaigns '
  '(wa.invoke_edge_function). Returns the pg_net request id or null.';
revoke all on function wa.invoke_campaign_sender() from public, anon, authenticated, service_role;

insert into wa.jobs (name, schedule, command, seconds_schedule, needs_pg_net) values
  ('wabase-template-sync', '17 * * * *', 'select wa.invoke_edge_function(''outbound/templates/sync'')', null, true),
  ('wabase-campaigns', '* * * * *', 'select wa.invoke_campaign_sender()', '5 seconds', true);
select wa.schedule_jobs();
