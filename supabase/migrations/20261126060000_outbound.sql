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

create function wa.check_template_send(p_phone_number_id text, p_template jsonb)
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
      using errcode = 'P0422', hint = 'template_not_found';
  end if;
  if v_template.status <> 'APPROVED' then
    raise exception 'template % (%) is %, not APPROVED', v_name, v_language, v_template.status
      using errcode = 'P0422', hint = 'template_not_approved';
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
      using errcode = 'P0422', hint = 'template_parameters',
            detail = jsonb_build_object('expected', v_template.parameters)::text;
  end if;
  return v_template;
end;
$$;
comment on function wa.check_template_send(text, jsonb) is
  'Checks a template send (the Cloud API''s template object) from p_phone_number_id against the catalogue of '
  'its WhatsApp Business account before any API call: P0422 template_not_found (no such name and language), '
  'template_not_approved (status other than APPROVED), template_parameters (count or types per component do '
  'not match; DETAIL holds the expected parameters). Returns the template. Callers: send-message, campaigns.';

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
  wa.check_template_send(text, jsonb), wa.window_templates(uuid)
  from public, anon, authenticated, service_role;
revoke all on function public.list_templates(text, text, text) from public, anon, service_role;
grant execute on function public.list_templates(text, text, text) to authenticated;

-- ============================================================================================
-- Account-level webhooks (templates; marketing preferences below), applied in the ingest's statement
-- ============================================================================================
create function wa.apply_account_changes(p_payload jsonb, p_now timestamptz default now())
returns integer
language plpgsql
set search_path = ''
as $$
begin
  return wa.apply_template_changes(p_payload, p_now);
end;
$$;
comment on function wa.apply_account_changes(jsonb, timestamptz) is
  'Applies the account-level changes of a webhook payload that the message ingest stores raw only: the '
  'template webhooks (wa.apply_template_changes). Returns how many it applied. Caller: whatsapp-webhook, in '
  'the statement of wa.ingest_webhook (one transaction).';
revoke all on function wa.apply_account_changes(jsonb, timestamptz) from public, anon, authenticated, service_role;

insert into wa.jobs (name, schedule, command, needs_pg_net) values
  ('wabase-template-sync', '17 * * * *', 'select wa.invoke_edge_function(''outbound/templates/sync'')', true);
select wa.schedule_jobs();
