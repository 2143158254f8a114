-- wabase calls: the `calls` webhooks of the Cloud API's Calling feature (a call connects, rings, is accepted or
-- rejected, ends) stored with the guarantees of messages: every event kept once by (call id, event), the call's
-- state advanced monotonically whatever order events arrive in, raw kept for what is not understood. Calls
-- belong to their conversation (its RLS, its topics), and public.live_calls() is what a live monitor draws
-- once before it only listens to the broadcasts (seed 001: polling a view took 34% of the database CPU and
-- Postgres Changes 57%). Payloads: Meta's Calling API webhook reference (user- and business-initiated calls:
-- `calls[]` with event connect/terminate, `statuses[]` of type call RINGING/ACCEPTED/REJECTED).

-- ============================================================================================
-- Tables
-- ============================================================================================
alter table wa.phone_numbers
  -- A ringing call older than this is flagged on the live monitor (nobody has picked it up).
  add column call_unanswered_alert interval not null default interval '30 seconds'
    check (call_unanswered_alert > interval '0');

create table public.calls (
  id uuid primary key default gen_random_uuid(),
  -- Meta's call id (wacid.…).
  call_id text not null unique,
  phone_number_id text not null references wa.phone_numbers (phone_number_id),
  conversation_id uuid not null references public.conversations (id),
  contact_id uuid not null references public.contacts (id),
  -- inbound: the customer called (USER_INITIATED); outbound: the business did.
  direction text not null check (direction in ('inbound', 'outbound')),
  -- Advanced only by rank (wa.call_state_rank): ringing < connected < ended; a late event never regresses it.
  state text not null check (state in ('ringing', 'connected', 'ended')),
  started_at timestamptz not null,
  answered_at timestamptz,
  ended_at timestamptz,
  duration_seconds integer check (duration_seconds >= 0),
  -- Meta's status of the terminate event (COMPLETED, FAILED) and whether the customer rejected the call.
  end_status text,
  rejected boolean not null default false,
  -- How it ended, derived from the facts above whatever order they arrived in.
  outcome text generated always as (
    case when state <> 'ended' then null
         when answered_at is not null then 'completed'
         when rejected then 'rejected'
         when direction = 'inbound' then 'missed'
         when end_status = 'FAILED' then 'failed'
         else 'unanswered' end) stored,
  -- When a call still ringing is flagged on the monitor: its start plus its number's call_unanswered_alert.
  alert_at timestamptz not null,
  -- The conversation's executive when the call arrived: who was expected to pick it up.
  assigned_executive_id uuid references public.profiles (id),
  biz_opaque_callback_data text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint calls_answered_when_connected check (state = 'ringing' or answered_at is not null or state = 'ended')
);
-- The live monitor's one query reads only calls in progress: a partial index stays as small as that set however
-- many calls history holds.
create index calls_live_idx on public.calls (started_at) where state <> 'ended';
create index calls_conversation_idx on public.calls (conversation_id, started_at desc);
create index calls_started_at_idx on public.calls (started_at);
comment on table public.calls is
  'WhatsApp voice calls (Calling API), one row per call id, in their conversation; state advanced monotonically.';

alter table public.calls enable row level security;
revoke all on public.calls from anon, authenticated;
grant select on public.calls to authenticated;

create policy "calls are readable with their conversation" on public.calls
  for select to authenticated
  using (exists (select from public.conversations c where c.id = calls.conversation_id));

create table wa.call_events (
  call_id text not null,
  -- connect, terminate, status:RINGING|ACCEPTED|REJECTED, or whatever else Meta sends (kept, not applied).
  event text not null,
  event_at timestamptz not null,
  -- The call or status object as delivered.
  payload jsonb not null,
  -- Whether the event changed public.calls (false: unknown to wabase, or no customer to attribute it to).
  applied boolean not null,
  first_seen_at timestamptz not null,
  last_seen_at timestamptz not null,
  delivery_count integer not null check (delivery_count > 0),
  primary key (call_id, event)
);
comment on table wa.call_events is
  'Every call webhook event by (call id, event), with its delivery count: the dedupe of calls and their audit.';
revoke all on table wa.call_events from public, anon, authenticated, service_role;

-- ============================================================================================
-- Ingest
-- ============================================================================================
create function wa.call_state_rank(p_state text)
returns integer
language sql
immutable
as $$
  select case p_state when 'ringing' then 1 when 'connected' then 2 when 'ended' then 3 end
$$;
comment on function wa.call_state_rank(text) is 'Order of call states: ringing 1, connected 2, ended 3.';

create function wa.call_events_of(p_payload jsonb)
returns table (call_id text, event text, event_at timestamptz, direction text, wa_id text, user_id text,
               profile_name text, phone_number_id text, waba_id text, display_phone_number text, payload jsonb)
language sql
stable
set search_path = ''
set jit = off
as $$
  with changes as (
    select e.value ->> 'id' as waba_id, c.value -> 'value' as value
    from jsonb_array_elements(p_payload -> 'entry') e
    cross join lateral jsonb_array_elements(e.value -> 'changes') c
    where c.value ->> 'field' = 'calls'
  ),
  events as (
    -- A call object: the customer is `from` when they called, `to` when the business did.
    select ch.waba_id, ch.value, k.value as obj, k.value ->> 'id' as call_id, k.value ->> 'event' as event,
           case k.value ->> 'direction' when 'USER_INITIATED' then 'inbound' when 'BUSINESS_INITIATED' then 'outbound'
           end as direction,
           case when k.value ->> 'direction' = 'BUSINESS_INITIATED' then k.value ->> 'to' else k.value ->> 'from' end
             as wa_id,
           case when k.value ->> 'direction' = 'BUSINESS_INITIATED' then k.value ->> 'to_user_id'
                else k.value ->> 'from_user_id' end as user_id
    from changes ch cross join lateral jsonb_array_elements(coalesce(ch.value -> 'calls', '[]')) k
    union all
    -- A call status: only business-initiated calls have them; the customer is the recipient.
    select ch.waba_id, ch.value, s.value, s.value ->> 'id', 'status:' || upper(s.value ->> 'status'), 'outbound',
           s.value ->> 'recipient_id', s.value ->> 'recipient_user_id'
    from changes ch cross join lateral jsonb_array_elements(coalesce(ch.value -> 'statuses', '[]')) s
  )
  select ev.call_id, ev.event, wa.unix_time(ev.obj ->> 'timestamp'), ev.direction,
         coalesce(ev.wa_id, ct.value ->> 'wa_id'), coalesce(ev.user_id, ct.value ->> 'user_id'),
         ct.value -> 'profile' ->> 'name',
         ev.value -> 'metadata' ->> 'phone_number_id', ev.waba_id, ev.value -> 'metadata' ->> 'display_phone_number',
         ev.obj
  from events ev
  -- The change's contact entry for the customer (by phone, else the only one given).
  left join lateral (
    select x.value from jsonb_array_elements(coalesce(ev.value -> 'contacts', '[]')) with ordinality x
    where x.value ->> 'wa_id' = ev.wa_id or jsonb_array_length(ev.value -> 'contacts') = 1
    order by x.ordinality limit 1
  ) ct on true
  where ev.call_id is not null and ev.event is not null and ev.obj ->> 'timestamp' ~ '^\d{1,12}$'
$$;
comment on function wa.call_events_of(jsonb) is
  'The call events of a webhook body''s `calls` changes, one row each: call id, event (connect, terminate, '
  'status:<STATUS>, or an unknown one), time, direction, the customer (wa_id/BSUID, profile name, from the '
  'change''s contacts when the call omits it), business number, and the object as delivered.';

create function wa.ingest_calls(p_payload jsonb, p_now timestamptz default now())
returns jsonb
language plpgsql
set search_path = ''
set jit = off
as $$
declare
  v_events jsonb;
  v_fresh jsonb;
  v_facts jsonb;
  v_contacts jsonb := '{}'::jsonb;
  v_recorded integer := 0;
  v_duplicate integer := 0;
  v_unknown integer := 0;
  v_unattributed integer := 0;
  v_applied integer := 0;
  v_changes integer;
begin
  -- Most POSTs carry no call: they pay this count, not the events' aggregation below.
  v_changes := (select count(*) from jsonb_array_elements(p_payload -> 'entry') e
                cross join lateral jsonb_array_elements(e.value -> 'changes') c
                where c.value ->> 'field' = 'calls');
  if v_changes = 0 then
    return '{}'::jsonb;
  end if;

  -- One entry per (call id, event); an event repeated inside the POST is one event delivered n times.
  select coalesce(jsonb_agg(to_jsonb(g) order by g.call_id, g.event), '[]') into v_events
  from (
    select e.call_id, e.event, count(*)::integer as deliveries,
           (array_agg(e.event_at))[1] as event_at, (array_agg(e.direction))[1] as direction,
           (array_agg(e.wa_id))[1] as wa_id, (array_agg(e.user_id))[1] as user_id,
           (array_agg(e.profile_name))[1] as profile_name, (array_agg(e.phone_number_id))[1] as phone_number_id,
           (array_agg(e.waba_id))[1] as waba_id, (array_agg(e.display_phone_number))[1] as display_phone_number,
           (array_agg(e.payload))[1] as payload,
           e.event in ('connect', 'terminate', 'status:RINGING', 'status:ACCEPTED', 'status:REJECTED') as known
    from wa.call_events_of(p_payload) e
    group by e.call_id, e.event
  ) g;

  -- Events first, by (call id, event): one atomic insert-or-count, so concurrent deliveries of an event serialise
  -- on its row and exactly one of them applies it. Unknown events and events without a customer are kept only.
  with recorded as (
    insert into wa.call_events as r (call_id, event, event_at, payload, applied, first_seen_at, last_seen_at,
                                     delivery_count)
    select e.call_id, e.event, e.event_at, e.payload,
           e.known and (e.wa_id is not null or e.user_id is not null) and e.phone_number_id is not null,
           p_now, p_now, e.deliveries
    from jsonb_to_recordset(v_events)
      as e (call_id text, event text, event_at timestamptz, payload jsonb, known boolean, wa_id text, user_id text,
            phone_number_id text, deliveries integer)
    order by e.call_id, e.event
    on conflict (call_id, event) do update
      set last_seen_at = excluded.last_seen_at, delivery_count = r.delivery_count + excluded.delivery_count
    returning r.call_id, r.event, r.applied, (r.xmax = 0) as inserted
  )
  select coalesce(jsonb_agg(e order by e ->> 'call_id', e ->> 'event')
                    filter (where r.inserted and r.applied), '[]'),
         count(*) filter (where r.inserted),
         count(*) filter (where r.inserted and not (e ->> 'known')::boolean),
         count(*) filter (where r.inserted and (e ->> 'known')::boolean and not r.applied)
  into v_fresh, v_recorded, v_unknown, v_unattributed
  from recorded r
  join jsonb_array_elements(v_events) e on e ->> 'call_id' = r.call_id and e ->> 'event' = r.event;
  v_duplicate := (select coalesce(sum((e ->> 'deliveries')::integer), 0) from jsonb_array_elements(v_events) e)
                 - v_recorded;

  if jsonb_array_length(v_fresh) > 0 then
    -- Then, as the message ingest (docs/locking.md steps 3-5): business numbers, contacts, conversations.
    insert into wa.phone_numbers (phone_number_id, waba_id, display_phone_number)
    select distinct on (e ->> 'phone_number_id') e ->> 'phone_number_id', e ->> 'waba_id', e ->> 'display_phone_number'
    from jsonb_array_elements(v_fresh) e
    order by e ->> 'phone_number_id'
    on conflict (phone_number_id) do nothing;

    v_contacts := wa.upsert_contacts((
      select jsonb_agg(jsonb_build_object('wa_id', s.wa_id, 'user_id', s.user_id, 'profile_name', s.profile_name,
                                          'phone_number_ids', s.phone_number_ids))
      from (select e ->> 'wa_id' as wa_id, e ->> 'user_id' as user_id,
                   (array_agg(e ->> 'profile_name') filter (where e ->> 'profile_name' is not null))[1] as profile_name,
                   array_agg(distinct e ->> 'phone_number_id') as phone_number_ids
            from jsonb_array_elements(v_fresh) e
            group by e ->> 'wa_id', e ->> 'user_id') s));

    -- Per call, the facts its new events bring; merged below with what is stored, so order never matters.
    select jsonb_agg(to_jsonb(g) order by g.call_id) into v_facts
    from (
      select f.call_id,
             (array_agg(f.phone_number_id))[1] as phone_number_id,
             (array_agg((v_contacts ->> (coalesce(f.wa_id, '') || '|' || coalesce(f.user_id, '')))::uuid))[1]
               as contact_id,
             coalesce((array_agg(f.direction) filter (where f.direction is not null))[1], 'inbound') as direction,
             max(case when f.event in ('terminate', 'status:REJECTED') then 3
                      when f.event = 'status:ACCEPTED' then 2 else 1 end) as rank,
             min(coalesce(wa.unix_time(f.payload ->> 'start_time'), f.event_at)) as started_at,
             -- Answered: accepted, or a terminate reporting talk time (its end minus its duration).
             min(case when f.event = 'status:ACCEPTED' then f.event_at
                      when f.event = 'terminate' and (f.payload ->> 'duration')::numeric > 0
                        then coalesce(wa.unix_time(f.payload ->> 'end_time'), f.event_at)
                             - make_interval(secs => (f.payload ->> 'duration')::numeric) end) as answered_at,
             min(case when f.event = 'terminate' then coalesce(wa.unix_time(f.payload ->> 'end_time'), f.event_at)
                      when f.event = 'status:REJECTED' then f.event_at end) as ended_at,
             max(round((f.payload ->> 'duration')::numeric)::integer) filter (where f.event = 'terminate')
               as duration_seconds,
             max(f.payload ->> 'status') filter (where f.event = 'terminate') as end_status,
             bool_or(f.event = 'status:REJECTED') as rejected,
             max(f.payload ->> 'biz_opaque_callback_data') as opaque,
             min(f.event_at) filter (where f.direction = 'inbound') as customer_called_at
      from jsonb_to_recordset(v_fresh)
        as f (call_id text, event text, event_at timestamptz, direction text, wa_id text, user_id text,
              phone_number_id text, payload jsonb)
      group by f.call_id
    ) g;

    -- Conversations in (number, contact) order; a customer's call opens the customer-service window as a
    -- message does (WHATSAPP.md §2), and a call into a new thread starts it.
    insert into public.conversations as c (phone_number_id, contact_id, last_message_at, last_inbound_at)
    select f.phone_number_id, f.contact_id, min(f.started_at), max(f.customer_called_at)
    from jsonb_to_recordset(v_facts)
      as f (call_id text, phone_number_id text, contact_id uuid, direction text, rank integer, started_at timestamptz,
            answered_at timestamptz, ended_at timestamptz, duration_seconds integer, end_status text,
            rejected boolean, opaque text, customer_called_at timestamptz)
    group by f.phone_number_id, f.contact_id
    order by f.phone_number_id, f.contact_id
    on conflict (phone_number_id, contact_id) do update
      set last_inbound_at = greatest(c.last_inbound_at, excluded.last_inbound_at), updated_at = now()
      where excluded.last_inbound_at > coalesce(c.last_inbound_at, '-infinity');

    -- Calls by call id, merged monotonically: the highest state wins, the earliest time of each fact wins.
    insert into public.calls as k (call_id, phone_number_id, conversation_id, contact_id, direction, state,
                                   started_at, answered_at, ended_at, duration_seconds, end_status, rejected,
                                   alert_at, assigned_executive_id, biz_opaque_callback_data)
    select f.call_id, f.phone_number_id, v.id, f.contact_id, f.direction,
           case f.rank when 1 then 'ringing' when 2 then 'connected' else 'ended' end,
           least(f.started_at, f.answered_at, f.ended_at), f.answered_at, f.ended_at,
           coalesce(f.duration_seconds, extract(epoch from f.ended_at - f.answered_at)::integer),
           f.end_status, f.rejected, least(f.started_at, f.answered_at, f.ended_at) + n.call_unanswered_alert,
           v.assigned_executive_id, f.opaque
    from jsonb_to_recordset(v_facts)
      as f (call_id text, phone_number_id text, contact_id uuid, direction text, rank integer, started_at timestamptz,
            answered_at timestamptz, ended_at timestamptz, duration_seconds integer, end_status text,
            rejected boolean, opaque text, customer_called_at timestamptz)
    join public.conversations v on v.phone_number_id = f.phone_number_id and v.contact_id = f.contact_id
    join wa.phone_numbers n on n.phone_number_id = f.phone_number_id
    order by f.call_id
    on conflict (call_id) do update
      set state = case when wa.call_state_rank(excluded.state) > wa.call_state_rank(k.state) then excluded.state
                       else k.state end,
          started_at = least(k.started_at, excluded.started_at),
          alert_at = least(k.alert_at, excluded.alert_at),
          answered_at = least(k.answered_at, excluded.answered_at),
          ended_at = least(k.ended_at, excluded.ended_at),
          duration_seconds = coalesce(k.duration_seconds, excluded.duration_seconds,
                                      extract(epoch from least(k.ended_at, excluded.ended_at)
                                                         - least(k.answered_at, excluded.answered_at))::integer),
          end_status = coalesce(k.end_status, excluded.end_status),
          rejected = k.rejected or excluded.rejected,
          biz_opaque_callback_data = coalesce(k.biz_opaque_callback_data, excluded.biz_opaque_callback_data),
          updated_at = now();
    get diagnostics v_applied = row_count;
  end if;

  return jsonb_build_object('call_changes', v_changes, 'calls_recorded', v_recorded, 'calls_duplicate', v_duplicate,
                            'calls_unknown', v_unknown, 'calls_unattributed', v_unattributed,
                            'calls_applied', v_applied);
end;
$$;
comment on function wa.ingest_calls(jsonb, timestamptz) is
  'Stores the `calls` changes of a webhook POST: each (call id, event) recorded once with its delivery count '
  '(wa.call_events); new known events with a customer create the business number, contact and conversation as '
  'messages do (a customer''s call opens the service window) and merge into public.calls monotonically: the '
  'state only rises (ringing < connected < ended), each time keeps its earliest value, so a late or repeated '
  'event never regresses a call. Unknown events are kept raw and counted. Returns calls_recorded, '
  'calls_duplicate, calls_unknown, calls_unattributed, calls_applied and call_changes (how many changes were '
  'calls); {} for a POST without calls changes. Caller: wa.ingest_webhook.';

revoke all on function wa.call_state_rank(text), wa.call_events_of(jsonb), wa.ingest_calls(jsonb, timestamptz)
  from public, anon, authenticated, service_role;

-- ============================================================================================
-- Broadcast: every change reaches the conversation's team and executive topics
-- ============================================================================================
create trigger calls_broadcast_insert after insert on public.calls
  referencing new table as new_rows for each statement execute function wa.broadcast_changes();
create trigger calls_broadcast_update after update on public.calls
  referencing old table as old_rows new table as new_rows for each statement execute function wa.broadcast_changes();
create trigger calls_broadcast_delete after delete on public.calls
  referencing old table as old_rows for each statement execute function wa.broadcast_changes();

-- ============================================================================================
-- The live monitor
-- ============================================================================================
create function public.live_calls(p_now timestamptz default now())
returns table (id uuid, call_id text, conversation_id uuid, contact_id uuid, contact_name text,
               phone_number_id text, direction text, state text, started_at timestamptz, answered_at timestamptz,
               assigned_executive_id uuid, alert_at timestamptz, waiting_seconds integer,
               unanswered_too_long boolean)
language sql
stable
security invoker
set search_path = ''
as $$
  -- One query over the partial index of calls in progress; RLS (the conversation's) decides what is visible.
  select k.id, k.call_id, k.conversation_id, k.contact_id, ct.profile_name, k.phone_number_id, k.direction, k.state,
         k.started_at, k.answered_at, k.assigned_executive_id, k.alert_at,
         greatest(0, extract(epoch from p_now - k.started_at))::integer,
         k.state = 'ringing' and p_now > k.alert_at
  from public.calls k
  left join public.contacts ct on ct.id = k.contact_id
  where k.state <> 'ended'
  order by k.started_at
$$;
comment on function public.live_calls(timestamptz) is
  'The calls in progress the caller may see (their conversations'' RLS), oldest first, with how long each has '
  'waited and whether it has been ringing past its alert_at (its start plus its number''s call_unanswered_alert). '
  'A monitor draws this once, then applies the calls broadcasts of its topics (no polling), flagging a call '
  'still ringing when its own clock passes alert_at. p_now: tests pin the clock. '
  'Caller: authenticated users.';
revoke all on function public.live_calls(timestamptz) from public, anon, service_role;
grant execute on function public.live_calls(timestamptz) to authenticated;

-- ============================================================================================
-- Answering a customer's call: Meta sends no webhook when the business accepts (the business's own POST /calls
-- accept does it), so the executive's softphone reports it here once its accept succeeded.
-- ============================================================================================
create function public.answer_call(call_id uuid)
returns public.calls
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_actor public.profiles := wa.actor(auth.uid());
  v_call public.calls;
begin
  select * into v_call from public.calls k where k.id = answer_call.call_id;
  if not found then
    raise exception 'no call %', answer_call.call_id using errcode = 'PT404', hint = 'call_not_found';
  end if;
  -- Visible with its conversation, whose lock comes first (docs/locking.md: step 5, then the call, 6c).
  perform wa.conversation_for_update(v_actor, v_call.conversation_id);
  select * into v_call from public.calls k where k.id = answer_call.call_id for no key update;
  if v_call.direction <> 'inbound' then
    raise exception 'the customer answers the business''s calls' using errcode = 'PT422', hint = 'not_inbound';
  elsif v_call.state = 'ended' then
    raise exception 'the call has ended' using errcode = 'PT409', hint = 'call_ended';
  elsif v_call.state = 'connected' then
    if v_call.assigned_executive_id is distinct from v_actor.id then
      raise exception 'the call was answered by someone else' using errcode = 'PT409', hint = 'already_answered';
    end if;
    return v_call;
  end if;
  update public.calls k
  set state = 'connected', answered_at = now(), assigned_executive_id = v_actor.id, updated_at = now()
  where k.id = v_call.id
  returning * into v_call;
  return v_call;
end;
$$;
comment on function public.answer_call(uuid) is
  'The caller answered this ringing customer call (after their softphone''s accept to the Graph API succeeded): '
  'connected, answered now, assigned to them; broadcast like every change. Answering it again is a no-op. '
  'Raises PT403 no_profile, PT404 call_not_found/conversation_not_found (not visible), PT409 call_ended/'
  'already_answered, PT422 not_inbound. Caller: the frontend.';
revoke all on function public.answer_call(uuid) from public, anon, service_role;
grant execute on function public.answer_call(uuid) to authenticated;

-- ============================================================================================
-- Figures for the status page
-- ============================================================================================
create function public.call_metrics(p_now timestamptz default now())
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select jsonb_build_object('calls', jsonb_build_object(
    'in_progress', (select count(*) from public.calls k where k.state <> 'ended'),
    'unanswered_too_long', (select count(*) from public.calls k where k.state = 'ringing' and p_now > k.alert_at),
    'answered_today', (select count(*) from public.calls k
                       where k.started_at >= date_trunc('day', p_now) and k.answered_at is not null),
    'missed_today', (select count(*) from public.calls k
                     where k.started_at >= date_trunc('day', p_now) and k.outcome in ('missed', 'rejected'))))
$$;
comment on function public.call_metrics(timestamptz) is
  'The calls figures of the status page as {"calls": {in_progress, unanswered_too_long, answered_today, '
  'missed_today}} (today: since midnight in the database time zone; missed: unanswered inbound or rejected). '
  'Merged into public.ops_metrics() by the health function. Caller: the health function (service role).';
revoke all on function public.call_metrics(timestamptz) from public, anon, authenticated;
grant execute on function public.call_metrics(timestamptz) to service_role;
