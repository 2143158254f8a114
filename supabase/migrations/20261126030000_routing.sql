-- wabase routing: every conversation gets an owner when it arrives (the prospect's executive, else the business
-- number's rule: round robin, balanced load or the team's queue, with a per-executive capacity), and the audited
-- RPCs that assign, claim, release, close and reopen it, mark executives away and edit the rules. Decided in the
-- database, in the transaction that creates or reopens the conversation; locks follow docs/locking.md.

-- ============================================================================================
-- Columns and tables
-- ============================================================================================
alter table public.conversations
  -- Closed conversations leave their executive's open count; a new customer message reopens and re-routes.
  add column status text not null default 'open' check (status in ('open', 'closed')),
  add column closed_at timestamptz,
  -- How the current owner was decided (null: not routed, e.g. before a rule existed).
  add column routed_via text check (routed_via in ('prospect', 'round_robin', 'balanced', 'queue', 'assigned',
                                                   'claimed', 'released', 'deactivated'));
-- The open load of each executive: counted under the team's routing lock.
create index conversations_open_owner_idx on public.conversations (assigned_executive_id)
  where status = 'open' and assigned_executive_id is not null;

create table wa.routing_rules (
  phone_number_id text primary key references wa.phone_numbers (phone_number_id),
  team_id uuid not null references public.teams (id),
  strategy text not null check (strategy in ('round_robin', 'balanced', 'queue')),
  -- Open conversations an executive may hold before routing skips them (null: no limit).
  capacity integer check (capacity > 0),
  updated_at timestamptz not null default now()
);
create index routing_rules_team_id_idx on wa.routing_rules (team_id);
comment on table wa.routing_rules is
  'How conversations on a business number without a matching prospect are routed: a team and a strategy.';

create table wa.executive_availability (
  executive_id uuid primary key references public.profiles (id) on delete cascade,
  away boolean not null default false,
  -- Overrides the rule's capacity for this executive (null: the rule's).
  capacity integer check (capacity > 0),
  updated_at timestamptz not null default now()
);
comment on table wa.executive_availability is
  'Per executive: away (no new routed conversations) and a capacity overriding the rule''s. Its row lock '
  'serialises assignments to the executive under a capacity (routing, claims, manual assignment), so '
  'capacities are exact; rows are created on first use.';

create table wa.conversation_audit (
  id bigint generated always as identity primary key,
  actor_id uuid not null,
  action text not null,
  target_id uuid not null,
  before jsonb,
  after jsonb,
  at timestamptz not null default now()
);
create index conversation_audit_target_idx on wa.conversation_audit (target_id, at desc);
comment on table wa.conversation_audit is
  'Every assignment, claim, release, close, reopen, availability and rule change made through the routing '
  'RPCs: actor, action, target (conversation, user or team), before, after, time.';

revoke all on table wa.routing_rules, wa.executive_availability, wa.conversation_audit
  from public, anon, authenticated, service_role;

-- Executives see their team's queue (they claim from it); coordinators and admins already see it.
create policy "executives read their team's queue" on public.conversations
  for select to authenticated
  using (assigned_executive_id is null and team_id = (select authz.my_team()));

-- ============================================================================================
-- Prospect matching
-- ============================================================================================
create function wa.digits(p_phone text)
returns text
language sql
immutable
parallel safe
as $$
  select nullif(regexp_replace(p_phone, '\D', '', 'g'), '')
$$;
comment on function wa.digits(text) is 'A phone number as WhatsApp ids write it: digits only; null when none.';

create function wa.e164(p_phone text)
returns text
language sql
immutable
parallel safe
as $$
  select '+' || wa.digits(p_phone)
$$;
comment on function wa.e164(text) is
  'A phone number as E.164 (+ and digits; separators dropped), null without digits. WhatsApp wa_ids are the '
  'digits, so ''+'' || wa_id compares with it.';
create index prospects_e164_idx on public.prospects (wa.e164(phone)) where executive_id is not null;
create index prospects_contact_id_idx on public.prospects (contact_id) where executive_id is not null;

-- ============================================================================================
-- The routing decision
-- ============================================================================================
create function wa.open_count(p_executive_id uuid)
returns integer
language sql
stable
set search_path = ''
as $$
  select count(*)::integer from public.conversations c
  where c.assigned_executive_id = p_executive_id and c.status = 'open'
$$;
comment on function wa.open_count(uuid) is 'Open conversations an executive holds (the load capacity limits).';

create function wa.turn_sequence(p_team_id uuid)
returns text
language sql
immutable
set search_path = ''
as $$
  select 'wa.routing_turns_' || replace(p_team_id::text, '-', '')
$$;
comment on function wa.turn_sequence(uuid) is
  'The name of a team''s round-robin turn sequence (created with the team''s first rule).';

create function wa.create_turn_sequence()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  execute format('create sequence if not exists %s', wa.turn_sequence(new.team_id));
  return null;
end;
$$;
comment on function wa.create_turn_sequence() is
  'AFTER INSERT/UPDATE trigger on wa.routing_rules: the rule''s team has its round-robin turn sequence. Turns '
  'come from a sequence because nextval is not transactional: concurrent arrivals take consecutive turns at '
  'once, where a turn kept in a row would make each wait for the previous one''s commit.';
create trigger routing_rules_turn_sequence after insert or update of team_id on wa.routing_rules
  for each row execute function wa.create_turn_sequence();

create function wa.pick_executive(p_team_id uuid, p_strategy text, p_capacity integer)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_candidates uuid[];
  v_turn bigint;
  v_pick uuid;
  v_full uuid[] := '{}'::uuid[];
  v_attempt integer;
begin
  if p_strategy = 'queue' then
    return null;
  end if;
  if p_strategy = 'round_robin' then
    v_turn := nextval(wa.turn_sequence(p_team_id)::regclass);
  else
    perform wa.ensure_routing_rows(p_team_id);
  end if;
  -- Each retry follows another transaction's choice or a full executive: many mean a stampede, not a bug.
  for v_attempt in 1 .. 1000 loop
    -- Each attempt is a subtransaction: a lock that does not end in a choice is released when it is rolled
    -- back (WARTR), so a transaction holds only the executives it routed to.
    begin
      if p_strategy = 'round_robin' then
        -- The turn's candidate among the active executives not away or full, in id order (wrapping).
        v_candidates := array(select p.id from public.profiles p
                              left join wa.executive_availability a on a.executive_id = p.id
                              where p.team_id = p_team_id and p.role = 'executive' and p.active
                                and not coalesce(a.away, false) and p.id <> all (v_full)
                              order by p.id);
        if cardinality(v_candidates) = 0 then
          return null;
        end if;
        v_pick := v_candidates[1 + ((v_turn - 1) % cardinality(v_candidates))];
        -- Without a capacity nothing else decides: no lock.
        if p_capacity is null
           and (select a.capacity from wa.executive_availability a where a.executive_id = v_pick) is null then
          return v_pick;
        end if;
        perform wa.lock_executive(v_pick);
      else
        -- Balanced: the least loaded candidate nobody else is routing to right now (SKIP LOCKED; rows this
        -- transaction holds count as free); when everyone is, wait for the least loaded, then choose again.
        select a.executive_id into v_pick
        from wa.executive_availability a
        join public.profiles p on p.id = a.executive_id
        where p.team_id = p_team_id and p.role = 'executive' and p.active and not a.away
          and a.executive_id <> all (v_full)
        order by wa.open_count(a.executive_id), a.executive_id
        for no key update of a skip locked
        limit 1;
        if not found then
          perform from wa.executive_availability a
          join public.profiles p on p.id = a.executive_id
          where p.team_id = p_team_id and p.role = 'executive' and p.active and not a.away
            and a.executive_id <> all (v_full)
          order by wa.open_count(a.executive_id), a.executive_id
          for no key update of a
          limit 1;
          if not found then
            return null;
          end if;
          raise exception 'choose again' using errcode = 'WARTR';
        end if;
      end if;
      -- Held now: its load is read with a new snapshot, so a conversation committed meanwhile counts.
      if wa.open_count(v_pick) >= coalesce((select a.capacity from wa.executive_availability a
                                             where a.executive_id = v_pick), p_capacity) then
        v_full := v_full || v_pick;
        raise exception 'full' using errcode = 'WARTR';
      end if;
      return v_pick;
    exception when sqlstate 'WARTR' then
      null;
    end;
  end loop;
  raise exception 'no executive of team % could be chosen after % attempts', p_team_id, v_attempt
    using errcode = '40001', hint = 'retry the transaction';
end;
$$;
comment on function wa.pick_executive(uuid, text, integer) is
  'The executive a rule gives the next conversation of a team. round_robin: the team''s next turn '
  '(wa.turn_sequence) over the active executives not away or full, in id order; balanced: the one with fewest '
  'open conversations (ties by id), skipping those other transactions are routing to (SKIP LOCKED). With a '
  'capacity the executive is locked (step 6b of docs/locking.md) until commit and their load counted once '
  'held, so a capacity is never exceeded. Null when every candidate is away, inactive or full, or for queue.';

create function wa.ensure_routing_rows(p_team_id uuid)
returns void
language sql
set search_path = ''
as $$
  insert into wa.executive_availability (executive_id)
  select p.id from public.profiles p
  where p.team_id = p_team_id and p.role = 'executive' and p.active
    and not exists (select from wa.executive_availability a where a.executive_id = p.id)
  on conflict do nothing;
$$;
comment on function wa.ensure_routing_rows(uuid) is
  'Creates the missing wa.executive_availability rows of a team''s active executives (balanced routing locks them).';

create function wa.route_decision(p_phone_number_id text, p_contact_id uuid,
                                   out team_id uuid, out executive_id uuid, out routed_via text)
language plpgsql
set search_path = ''
as $$
declare
  v_prospect public.prospects;
  v_rule wa.routing_rules;
  v_executive public.profiles;
  v_away boolean;
begin
  select pr.* into v_prospect
  from public.prospects pr
  where pr.executive_id is not null
    and (pr.contact_id = p_contact_id
         or wa.e164(pr.phone) = (select '+' || k.wa_id from public.contacts k where k.id = p_contact_id))
  order by pr.created_at, pr.id
  limit 1;
  if found then
    -- The prospect's executive owns it; while a backup covers them the backup handles it (RLS and the
    -- executive's topic reach the backup). An inactive or away executive without a backup: the team's queue.
    select * into v_executive from public.profiles e where e.id = v_prospect.executive_id;
    select a.away into v_away from wa.executive_availability a where a.executive_id = v_executive.id;
    team_id := coalesce(v_prospect.team_id, v_executive.team_id);
    executive_id := case when v_executive.active and (v_executive.backup_id is not null or not coalesce(v_away, false))
                         then v_executive.id end;
    routed_via := 'prospect';
    return;
  end if;
  select * into v_rule from wa.routing_rules r where r.phone_number_id = p_phone_number_id;
  if not found then
    return;
  end if;
  team_id := v_rule.team_id;
  executive_id := wa.pick_executive(v_rule.team_id, v_rule.strategy, v_rule.capacity);
  routed_via := case when executive_id is null then 'queue' else v_rule.strategy end;
end;
$$;
comment on function wa.route_decision(text, uuid) is
  'The owner of a conversation arriving for (number, contact): the matching prospect''s (by contact, or phone '
  'as E.164) executive and team; else the number''s rule under its team''s lock (wa.pick_executive; nobody free: '
  'the team''s queue); else nothing (the admins'' unassigned queue).';

create function wa.route_arrival()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  -- The ingest upserts: a row meeting an existing conversation becomes its update and routes nothing. Two
  -- POSTs creating the same conversation (a customer's first two messages) take turns on its key, so the
  -- second sees the first's row and no executive's turn is spent on a row that will not be inserted.
  if exists (select from public.conversations c
             where c.phone_number_id = new.phone_number_id and c.contact_id = new.contact_id) then
    return new;
  end if;
  -- Class 2002873707 (the wamid locks are 2002873705-6), hashtext of the conversation's key.
  perform pg_advisory_xact_lock(2002873707, hashtext(new.phone_number_id || ':' || new.contact_id));
  if exists (select from public.conversations c
             where c.phone_number_id = new.phone_number_id and c.contact_id = new.contact_id) then
    return new;
  end if;
  select d.team_id, d.executive_id, d.routed_via into new.team_id, new.assigned_executive_id, new.routed_via
  from wa.route_decision(new.phone_number_id, new.contact_id) d;
  return new;
end;
$$;
comment on function wa.route_arrival() is
  'BEFORE INSERT trigger on conversations: a new conversation without an owner is written already routed '
  '(wa.route_decision), so its arrival is one row version and one broadcast to its owners.';

create function wa.reopen_on_customer_message()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.last_inbound_at > old.last_inbound_at then
    new.status := 'open';
    new.closed_at := null;
    select d.team_id, d.executive_id, d.routed_via into new.team_id, new.assigned_executive_id, new.routed_via
    from wa.route_decision(new.phone_number_id, new.contact_id) d;
  end if;
  return new;
end;
$$;
comment on function wa.reopen_on_customer_message() is
  'BEFORE UPDATE trigger on closed conversations: a newer customer message reopens it and routes it again '
  '(wa.route_decision), in the same row version.';

create trigger conversations_route before insert on public.conversations
  for each row when (new.assigned_executive_id is null and new.team_id is null and new.status = 'open')
  execute function wa.route_arrival();
create trigger conversations_reopen before update on public.conversations
  for each row when (old.status = 'closed') execute function wa.reopen_on_customer_message();

-- Deactivating a user hands their open conversations back to their team's queue.
create function wa.release_on_deactivation()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  -- Lock order: conversations by (number, contact), as the ingest takes them, before changing any.
  perform from public.conversations c
  where c.assigned_executive_id = new.id and c.status = 'open'
  order by c.phone_number_id, c.contact_id
  for no key update;
  update public.conversations c
  set assigned_executive_id = null, team_id = coalesce(c.team_id, new.team_id), routed_via = 'deactivated',
      updated_at = now()
  where c.assigned_executive_id = new.id and c.status = 'open';
  return null;
end;
$$;
comment on function wa.release_on_deactivation() is
  'AFTER UPDATE trigger on profiles: a user made inactive leaves their open conversations in their team''s queue.';
create trigger profiles_release_on_deactivation after update of active on public.profiles
  for each row when (old.active and not new.active) execute function wa.release_on_deactivation();

revoke all on function wa.digits(text), wa.e164(text), wa.open_count(uuid),
  wa.pick_executive(uuid, text, integer),
  wa.turn_sequence(uuid), wa.create_turn_sequence(), wa.ensure_routing_rows(uuid),
  wa.route_decision(text, uuid), wa.route_arrival(), wa.reopen_on_customer_message(), wa.release_on_deactivation()
  from public, anon, authenticated, service_role;

-- ============================================================================================
-- Assignment RPCs (the frontend, through PostgREST). Refusals: PT403 forbidden, PT404 not found (or not
-- visible), PT409 conflict, PT422 invalid input; PostgREST answers the HTTP status of the code, the HINT
-- carries the machine-readable reason. Each change is audited in wa.conversation_audit.
-- ============================================================================================
create function wa.conversation_for_update(p_actor public.profiles, p_conversation_id uuid)
returns public.conversations
language plpgsql
set search_path = ''
as $$
declare
  v_conversation public.conversations;
begin
  select * into v_conversation from public.conversations c where c.id = p_conversation_id for no key update;
  -- Not visible is not found: the caller learns nothing about conversations they may not see.
  if not found or not (
       p_actor.role = 'admin'
       or v_conversation.assigned_executive_id = any (authz.visible_executives_of(p_actor.id))
       or (v_conversation.assigned_executive_id is null and v_conversation.team_id = p_actor.team_id)) then
    raise exception 'no conversation %', p_conversation_id using errcode = 'PT404', hint = 'conversation_not_found';
  end if;
  return v_conversation;
end;
$$;
comment on function wa.conversation_for_update(public.profiles, uuid) is
  'A conversation the actor may see, locked (step 5 of docs/locking.md); PT404 conversation_not_found otherwise '
  '(admins: any; others: their own, backed-up and, coordinators, their team''s; their team''s queue).';

create function wa.lock_executive(p_executive_id uuid)
returns void
language sql
set search_path = ''
as $$
  -- Step 6b of docs/locking.md: taken after the conversation, as routing takes it.
  insert into wa.executive_availability (executive_id) values (p_executive_id) on conflict do nothing;
  select from wa.executive_availability a where a.executive_id = p_executive_id for no key update;
$$;
comment on function wa.lock_executive(uuid) is
  'Locks (creating it if needed) an executive''s routing row: assignments to an executive serialise on it.';

create function wa.change_owner(p_actor public.profiles, p_action text, p_before public.conversations,
                                p_executive_id uuid, p_team_id uuid, p_status text)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_after public.conversations;
begin
  update public.conversations c
  set assigned_executive_id = p_executive_id, team_id = p_team_id, status = p_status,
      closed_at = case when p_status = 'closed' then coalesce(c.closed_at, now()) end,
      routed_via = case p_action when 'assign' then 'assigned' when 'claim' then 'claimed'
                                 when 'release' then 'released' else c.routed_via end,
      updated_at = now()
  where c.id = p_before.id
  returning * into v_after;
  insert into wa.conversation_audit (actor_id, action, target_id, before, after)
  values (p_actor.id, p_action || '_conversation', p_before.id,
          jsonb_build_object('assigned_executive_id', p_before.assigned_executive_id, 'team_id', p_before.team_id,
                             'status', p_before.status),
          jsonb_build_object('assigned_executive_id', v_after.assigned_executive_id, 'team_id', v_after.team_id,
                             'status', v_after.status));
  return jsonb_build_object('conversation_id', v_after.id, 'assigned_executive_id', v_after.assigned_executive_id,
                            'team_id', v_after.team_id, 'status', v_after.status, 'routed_via', v_after.routed_via);
end;
$$;
comment on function wa.change_owner(public.profiles, text, public.conversations, uuid, uuid, text) is
  'Writes a conversation''s new owner, team and status and audits the change; returns the new state.';

create function public.assign_conversation(conversation_id uuid, executive_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_actor public.profiles := wa.actor(auth.uid());
  v_conversation public.conversations;
  v_executive public.profiles;
begin
  if v_actor.role not in ('admin', 'coordinator') then
    raise exception 'only coordinators and admins assign conversations' using errcode = 'PT403', hint = 'forbidden';
  end if;
  v_conversation := wa.conversation_for_update(v_actor, assign_conversation.conversation_id);
  select * into v_executive from public.profiles p where p.id = assign_conversation.executive_id;
  if not found or (v_actor.role = 'coordinator' and v_executive.team_id is distinct from v_actor.team_id) then
    raise exception 'no user %', assign_conversation.executive_id using errcode = 'PT404', hint = 'user_not_found';
  end if;
  if v_actor.role = 'coordinator' and v_conversation.team_id is distinct from v_actor.team_id then
    raise exception 'the conversation is not your team''s' using errcode = 'PT403', hint = 'other_team';
  end if;
  if not v_executive.active or v_executive.team_id is null then
    raise exception 'user % is inactive or has no team', v_executive.id using errcode = 'PT409', hint = 'inactive_user';
  end if;
  perform wa.lock_executive(v_executive.id);
  return wa.change_owner(v_actor, 'assign', v_conversation, v_executive.id, v_executive.team_id, 'open');
end;
$$;
comment on function public.assign_conversation(uuid, uuid) is
  'Gives a conversation to an executive (and their team), open; capacity does not apply to a deliberate choice. '
  'Coordinators within their team, admins anywhere. Audited. Raises PT403 forbidden/other_team/no_profile, '
  'PT404 conversation_not_found/user_not_found, PT409 inactive_user. Caller: the frontend.';

create function public.claim_conversation(conversation_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_actor public.profiles := wa.actor(auth.uid());
  v_conversation public.conversations;
  v_capacity integer;
begin
  -- The row lock makes a second claimer wait, then read the winner's owner: a conversation of the caller's
  -- team taken meanwhile is a conflict (409), not a disappearance (404).
  select * into v_conversation from public.conversations c where c.id = claim_conversation.conversation_id
  for no key update;
  if found and v_conversation.assigned_executive_id is not null and v_conversation.team_id = v_actor.team_id
     and v_conversation.assigned_executive_id <> v_actor.id then
    raise exception 'the conversation is already assigned' using errcode = 'PT409', hint = 'already_assigned';
  end if;
  v_conversation := wa.conversation_for_update(v_actor, claim_conversation.conversation_id);
  if v_conversation.assigned_executive_id is not null then
    raise exception 'the conversation is already assigned' using errcode = 'PT409', hint = 'already_assigned';
  end if;
  if v_conversation.team_id is distinct from v_actor.team_id or v_actor.team_id is null then
    raise exception 'only the team''s queue can be claimed' using errcode = 'PT403', hint = 'other_team';
  end if;
  perform wa.lock_executive(v_actor.id);
  v_capacity := coalesce((select a.capacity from wa.executive_availability a where a.executive_id = v_actor.id),
                         (select r.capacity from wa.routing_rules r
                          where r.phone_number_id = v_conversation.phone_number_id));
  if v_capacity is not null and wa.open_count(v_actor.id) >= v_capacity then
    raise exception 'you hold % open conversations already', v_capacity using errcode = 'PT409', hint = 'at_capacity';
  end if;
  return wa.change_owner(v_actor, 'claim', v_conversation, v_actor.id, v_actor.team_id, 'open');
end;
$$;
comment on function public.claim_conversation(uuid) is
  'The caller takes a conversation from their team''s queue (reopening it if closed), within their capacity. '
  'Two claiming one: the first wins, the other gets PT409 already_assigned. Audited. Raises PT403 '
  'other_team/no_profile, PT404 conversation_not_found, PT409 already_assigned/at_capacity. Caller: the frontend.';

create function public.release_conversation(conversation_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_actor public.profiles := wa.actor(auth.uid());
  v_conversation public.conversations := wa.conversation_for_update(v_actor, release_conversation.conversation_id);
begin
  if v_conversation.assigned_executive_id is null then
    raise exception 'the conversation is in a queue already' using errcode = 'PT409', hint = 'not_assigned';
  end if;
  if v_conversation.team_id is null then
    raise exception 'the conversation has no team queue to go back to' using errcode = 'PT409', hint = 'no_team';
  end if;
  return wa.change_owner(v_actor, 'release', v_conversation, null, v_conversation.team_id, v_conversation.status);
end;
$$;
comment on function public.release_conversation(uuid) is
  'Puts a conversation back in its team''s queue: its executive, those backing them up, their coordinator or an '
  'admin. Audited. Raises PT403 no_profile, PT404 conversation_not_found, PT409 not_assigned/no_team. '
  'Caller: the frontend.';

create function public.close_conversation(conversation_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_actor public.profiles := wa.actor(auth.uid());
  v_conversation public.conversations := wa.conversation_for_update(v_actor, close_conversation.conversation_id);
begin
  return wa.change_owner(v_actor, 'close', v_conversation, v_conversation.assigned_executive_id,
                         v_conversation.team_id, 'closed');
end;
$$;
comment on function public.close_conversation(uuid) is
  'Closes a conversation the caller may see (idempotent): it leaves its executive''s open count; a new customer '
  'message reopens it and routes it again. Audited. Raises PT403 no_profile, PT404 conversation_not_found. '
  'Caller: the frontend.';

create function public.reopen_conversation(conversation_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_actor public.profiles := wa.actor(auth.uid());
  v_conversation public.conversations := wa.conversation_for_update(v_actor, reopen_conversation.conversation_id);
begin
  return wa.change_owner(v_actor, 'reopen', v_conversation, v_conversation.assigned_executive_id,
                         v_conversation.team_id, 'open');
end;
$$;
comment on function public.reopen_conversation(uuid) is
  'Reopens a closed conversation with its owner kept (idempotent). Audited. Raises PT403 no_profile, PT404 '
  'conversation_not_found. Caller: the frontend.';

-- ============================================================================================
-- Availability, capacity and rules
-- ============================================================================================
create function wa.require_manages_user(p_actor public.profiles, p_user_id uuid)
returns public.profiles
language plpgsql
stable
set search_path = ''
as $$
declare
  v_target public.profiles;
begin
  select * into v_target from public.profiles p where p.id = p_user_id;
  if not found or not (p_actor.role = 'admin' or p_actor.id = p_user_id
                       or (p_actor.role = 'coordinator' and v_target.team_id = p_actor.team_id)) then
    raise exception 'no user % you manage', p_user_id using errcode = 'PT404', hint = 'user_not_found';
  end if;
  return v_target;
end;
$$;
comment on function wa.require_manages_user(public.profiles, uuid) is
  'The user the actor may set availability for (themselves; coordinators their team; admins anyone); PT404 '
  'user_not_found otherwise.';

create function public.set_availability(executive_id uuid, away boolean)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_actor public.profiles := wa.actor(auth.uid());
  v_target public.profiles := wa.require_manages_user(v_actor, set_availability.executive_id);
  v_before wa.executive_availability;
  v_after wa.executive_availability;
begin
  if set_availability.away is null then
    raise exception 'away must be true or false' using errcode = 'PT422', hint = 'invalid_away';
  end if;
  select * into v_before from wa.executive_availability a where a.executive_id = v_target.id;
  insert into wa.executive_availability as a (executive_id, away) values (v_target.id, set_availability.away)
  on conflict on constraint executive_availability_pkey do update set away = excluded.away, updated_at = now()
  returning * into v_after;
  insert into wa.conversation_audit (actor_id, action, target_id, before, after)
  values (v_actor.id, 'set_availability', v_target.id, to_jsonb(v_before), to_jsonb(v_after));
  return jsonb_build_object('executive_id', v_after.executive_id, 'away', v_after.away,
                            'capacity', v_after.capacity);
end;
$$;
comment on function public.set_availability(uuid, boolean) is
  'Marks an executive away (no new routed conversations; what they hold stays theirs) or back. Themselves, their '
  'coordinator or an admin. Audited. Raises PT403 no_profile, PT404 user_not_found, PT422 invalid_away. '
  'Caller: the frontend.';

create function public.set_executive_capacity(executive_id uuid, capacity integer)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_actor public.profiles := wa.actor(auth.uid());
  v_target public.profiles;
  v_before wa.executive_availability;
  v_after wa.executive_availability;
begin
  if v_actor.role not in ('admin', 'coordinator') then
    raise exception 'only coordinators and admins set capacity' using errcode = 'PT403', hint = 'forbidden';
  end if;
  v_target := wa.require_manages_user(v_actor, set_executive_capacity.executive_id);
  if set_executive_capacity.capacity is not null and set_executive_capacity.capacity not between 1 and 1000 then
    raise exception 'capacity must be between 1 and 1000, or null for the rule''s'
      using errcode = 'PT422', hint = 'invalid_capacity';
  end if;
  select * into v_before from wa.executive_availability a where a.executive_id = v_target.id;
  insert into wa.executive_availability as a (executive_id, capacity)
  values (v_target.id, set_executive_capacity.capacity)
  on conflict on constraint executive_availability_pkey do update set capacity = excluded.capacity, updated_at = now()
  returning * into v_after;
  insert into wa.conversation_audit (actor_id, action, target_id, before, after)
  values (v_actor.id, 'set_executive_capacity', v_target.id, to_jsonb(v_before), to_jsonb(v_after));
  return jsonb_build_object('executive_id', v_after.executive_id, 'away', v_after.away,
                            'capacity', v_after.capacity);
end;
$$;
comment on function public.set_executive_capacity(uuid, integer) is
  'Sets an executive''s own capacity (1..1000 open conversations; null: the rule''s). Coordinators for their '
  'team, admins anyone. Audited. Raises PT403 forbidden/no_profile, PT404 user_not_found, PT422 '
  'invalid_capacity. Caller: the frontend.';

create function public.set_routing_rule(phone_number_id text, team_id uuid, strategy text,
                                        capacity integer default null)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_actor public.profiles := wa.actor(auth.uid());
  v_before wa.routing_rules;
  v_after wa.routing_rules;
begin
  if v_actor.role not in ('admin', 'coordinator') then
    raise exception 'only coordinators and admins edit routing rules' using errcode = 'PT403', hint = 'forbidden';
  end if;
  if set_routing_rule.strategy is null or set_routing_rule.strategy not in ('round_robin', 'balanced', 'queue') then
    raise exception 'strategy must be round_robin, balanced or queue' using errcode = 'PT422', hint = 'invalid_strategy';
  end if;
  if set_routing_rule.capacity is not null and set_routing_rule.capacity not between 1 and 1000 then
    raise exception 'capacity must be between 1 and 1000, or null for no limit'
      using errcode = 'PT422', hint = 'invalid_capacity';
  end if;
  if not exists (select from public.teams t where t.id = set_routing_rule.team_id) then
    raise exception 'no team %', set_routing_rule.team_id using errcode = 'PT422', hint = 'team_not_found';
  end if;
  if not exists (select from wa.phone_numbers n where n.phone_number_id = set_routing_rule.phone_number_id) then
    raise exception 'no business number %', set_routing_rule.phone_number_id
      using errcode = 'PT422', hint = 'number_not_found';
  end if;
  select * into v_before from wa.routing_rules r where r.phone_number_id = set_routing_rule.phone_number_id
  for update;
  -- A coordinator edits only rules of their team, and only to their team.
  if v_actor.role = 'coordinator' and (set_routing_rule.team_id is distinct from v_actor.team_id
                                       or (v_before.phone_number_id is not null
                                           and v_before.team_id is distinct from v_actor.team_id)) then
    raise exception 'coordinators edit their own team''s rules' using errcode = 'PT403', hint = 'other_team';
  end if;
  insert into wa.routing_rules as r (phone_number_id, team_id, strategy, capacity)
  values (set_routing_rule.phone_number_id, set_routing_rule.team_id, set_routing_rule.strategy,
          set_routing_rule.capacity)
  on conflict on constraint routing_rules_pkey do update
    set team_id = excluded.team_id, strategy = excluded.strategy, capacity = excluded.capacity, updated_at = now()
  returning * into v_after;
  insert into wa.conversation_audit (actor_id, action, target_id, before, after)
  values (v_actor.id, 'set_routing_rule', v_after.team_id, to_jsonb(v_before), to_jsonb(v_after));
  return jsonb_build_object('phone_number_id', v_after.phone_number_id, 'team_id', v_after.team_id,
                            'strategy', v_after.strategy, 'capacity', v_after.capacity);
end;
$$;
comment on function public.set_routing_rule(text, uuid, text, integer) is
  'Sets how a business number routes conversations without a matching prospect: a team, a strategy '
  '(round_robin, balanced, queue) and an optional capacity per executive (1..1000). Admins any number; '
  'coordinators to and from their own team. Audited. Raises PT403 forbidden/other_team/no_profile, PT422 '
  'invalid_strategy/invalid_capacity/team_not_found/number_not_found. Caller: the frontend.';

create function public.delete_routing_rule(phone_number_id text)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_actor public.profiles := wa.actor(auth.uid());
  v_before wa.routing_rules;
begin
  select * into v_before from wa.routing_rules r where r.phone_number_id = delete_routing_rule.phone_number_id
  for update;
  if not found then
    raise exception 'no rule for %', delete_routing_rule.phone_number_id using errcode = 'PT404', hint = 'rule_not_found';
  end if;
  if not (v_actor.role = 'admin' or (v_actor.role = 'coordinator' and v_before.team_id = v_actor.team_id)) then
    raise exception 'coordinators delete their own team''s rules' using errcode = 'PT403', hint = 'forbidden';
  end if;
  delete from wa.routing_rules r where r.phone_number_id = delete_routing_rule.phone_number_id;
  insert into wa.conversation_audit (actor_id, action, target_id, before, after)
  values (v_actor.id, 'delete_routing_rule', v_before.team_id, to_jsonb(v_before), null);
end;
$$;
comment on function public.delete_routing_rule(text) is
  'Removes a business number''s rule: its new conversations go to the admins'' unassigned queue. Admins, or '
  'the coordinator of the rule''s team. Audited. Raises PT403 forbidden/no_profile, PT404 rule_not_found. '
  'Caller: the frontend.';

revoke all on function wa.conversation_for_update(public.profiles, uuid),
  wa.lock_executive(uuid), wa.change_owner(public.profiles, text, public.conversations, uuid, uuid, text),
  wa.require_manages_user(public.profiles, uuid)
  from public, anon, authenticated, service_role;
revoke all on function public.assign_conversation(uuid, uuid), public.claim_conversation(uuid),
  public.release_conversation(uuid), public.close_conversation(uuid), public.reopen_conversation(uuid),
  public.set_availability(uuid, boolean), public.set_executive_capacity(uuid, integer),
  public.set_routing_rule(text, uuid, text, integer), public.delete_routing_rule(text)
  from public, anon, service_role;
grant execute on function public.assign_conversation(uuid, uuid), public.claim_conversation(uuid),
  public.release_conversation(uuid), public.close_conversation(uuid), public.reopen_conversation(uuid),
  public.set_availability(uuid, boolean), public.set_executive_capacity(uuid, integer),
  public.set_routing_rule(text, uuid, text, integer), public.delete_routing_rule(text)
  to authenticated;
