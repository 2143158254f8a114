-- wabase team: server-owned profiles (role, team, phone routing, backup), teams, prospects, row-level security
-- for what each role may read, the batch backup RPCs (one round trip for any number of ids), and the audited
-- backup and profile writes the auth-admin-proxy function calls.

-- ============================================================================================
-- Tables
-- ============================================================================================
create table public.teams (
  id uuid primary key default gen_random_uuid(),
  name text not null unique check (name <> ''),
  created_at timestamptz not null default now()
);
comment on table public.teams is 'Sales/support teams; a coordinator sees and manages their team.';

-- Server-owned: written only by the functions below (through auth-admin-proxy), never by the user. Supabase's
-- user metadata is user-editable (auth.updateUser), so nothing here is ever read from it.
create table public.profiles (
  id uuid primary key references auth.users (id) on delete cascade,
  email text,
  full_name text,
  role text not null default 'executive' check (role in ('admin', 'coordinator', 'executive')),
  team_id uuid references public.teams (id),
  -- The number customers are routed to: the executive's own, or their backup's while one is assigned.
  phone text,
  -- The executive's own number, kept while a backup's number is routed instead.
  original_phone text,
  backup_id uuid references public.profiles (id),
  active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint profiles_no_self_backup check (backup_id is distinct from id)
);
create index profiles_team_id_idx on public.profiles (team_id);
create index profiles_backup_id_idx on public.profiles (backup_id) where backup_id is not null;
comment on table public.profiles is 'Server-owned profile of each user: role, team, phone routing and backup.';

create table public.prospects (
  id uuid primary key default gen_random_uuid(),
  team_id uuid references public.teams (id),
  executive_id uuid references public.profiles (id),
  contact_id uuid references public.contacts (id),
  name text,
  phone text,
  created_at timestamptz not null default now()
);
create index prospects_executive_id_idx on public.prospects (executive_id);
create index prospects_team_id_idx on public.prospects (team_id);
comment on table public.prospects is 'Leads, each owned by an executive of a team.';

create index conversations_assigned_executive_id_idx on public.conversations (assigned_executive_id);
create index conversations_team_id_idx on public.conversations (team_id);

create table wa.profile_audit (
  id bigint generated always as identity primary key,
  actor_id uuid not null,
  action text not null,
  target_id uuid not null,
  before jsonb,
  after jsonb,
  at timestamptz not null default now()
);
create index profile_audit_target_idx on wa.profile_audit (target_id, at desc);
comment on table wa.profile_audit is 'Every change made through the admin proxy: actor, action, before, after, time.';

-- New users get a least-privilege profile; email follows auth.users. Runs as the auth server's role, hence
-- security definer (owned by postgres).
create function wa.sync_profile_from_auth()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.profiles (id, email) values (new.id, new.email)
  on conflict (id) do update set email = excluded.email, updated_at = now()
  where public.profiles.email is distinct from excluded.email;
  return new;
end;
$$;
comment on function wa.sync_profile_from_auth() is
  'Trigger on auth.users: creates an executive profile without team for a new user and keeps its email in sync. '
  'Never reads user metadata.';
revoke all on function wa.sync_profile_from_auth() from public, anon, authenticated, service_role;
create trigger wabase_sync_profile after insert or update of email on auth.users
  for each row execute function wa.sync_profile_from_auth();

-- ============================================================================================
-- Authorization helpers for RLS, in a schema the API roles can use but PostgREST does not expose
-- ============================================================================================
create schema authz;
revoke all on schema authz from public;
grant usage on schema authz to authenticated;
comment on schema authz is 'RLS predicate helpers; usable by authenticated, not exposed through the Data API.';

-- Each rule is written once, for any user (`*_of`, internal), and exposed to RLS for the caller only (the
-- argument-less wrappers), so a session cannot ask what another user may see. The same rules decide what the
-- Edge Functions let a user do (wa.require_conversation_access).
create function authz.role_of(p_user_id uuid)
returns text
language sql
stable
set search_path = ''
as $$
  select p.role from public.profiles p where p.id = p_user_id and p.active
$$;
comment on function authz.role_of(uuid) is
  'A user''s role from their server-owned profile (null when they have none or are deactivated).';

create function authz.my_role()
returns text
language sql
stable
security definer
set search_path = ''
as $$
  select authz.role_of(auth.uid())
$$;
comment on function authz.my_role() is 'The caller''s authz.role_of. Used by RLS.';

create function authz.my_team()
returns uuid
language sql
stable
security definer
set search_path = ''
as $$
  select p.team_id from public.profiles p where p.id = auth.uid() and p.active
$$;
comment on function authz.my_team() is 'The caller''s team, or null. Used by RLS.';

create function authz.visible_executives_of(p_user_id uuid)
returns uuid[]
language sql
stable
set search_path = ''
as $$
  -- Executives: themselves and those they currently back up. Coordinators: their team. Admins: everyone.
  select coalesce(array_agg(p.id), '{}')
  from public.profiles me
  join public.profiles p
    on me.role = 'admin'
    or (me.role = 'coordinator' and p.team_id = me.team_id)
    or p.id = me.id
    or p.backup_id = me.id
  where me.id = p_user_id and me.active
$$;
comment on function authz.visible_executives_of(uuid) is
  'The users whose work p_user_id sees: themselves and those they back up (executives), their team '
  '(coordinators), everyone (admins); empty for a deactivated user.';

create function authz.visible_executives()
returns uuid[]
language sql
stable
security definer
set search_path = ''
as $$
  select authz.visible_executives_of(auth.uid())
$$;
comment on function authz.visible_executives() is
  'The caller''s authz.visible_executives_of. Used by RLS as (select authz.visible_executives()), evaluated once '
  'per query, so an indexed "= any" replaces per-row checks.';

create function authz.backed_up_executives()
returns uuid[]
language sql
stable
security definer
set search_path = ''
as $$
  select coalesce(array_agg(p.id), '{}') from public.profiles p where p.backup_id = auth.uid()
$$;
comment on function authz.backed_up_executives() is 'The executives the caller currently backs up.';

create function authz.visible_teams_of(p_user_id uuid)
returns uuid[]
language sql
stable
set search_path = ''
as $$
  select coalesce(array_agg(t.id), '{}')
  from public.profiles me
  join public.teams t on me.role = 'admin' or (me.role = 'coordinator' and t.id = me.team_id)
  where me.id = p_user_id and me.active
$$;
comment on function authz.visible_teams_of(uuid) is
  'The teams whose work p_user_id sees as a whole: their own for coordinators, all for admins, none for '
  'executives.';

create function authz.visible_teams()
returns uuid[]
language sql
stable
security definer
set search_path = ''
as $$
  select authz.visible_teams_of(auth.uid())
$$;
comment on function authz.visible_teams() is 'The caller''s authz.visible_teams_of. Used by RLS.';

revoke all on function authz.role_of(uuid), authz.visible_executives_of(uuid), authz.visible_teams_of(uuid)
  from public, anon, authenticated, service_role;
revoke all on function authz.my_role(), authz.my_team(), authz.visible_executives(), authz.visible_teams(),
  authz.backed_up_executives() from public, anon, service_role;
grant execute on function authz.my_role(), authz.my_team(), authz.visible_executives(), authz.visible_teams(),
  authz.backed_up_executives() to authenticated;

-- ============================================================================================
-- Row-level security (one policy per table and command; every helper wrapped in a scalar subquery so the
-- planner evaluates it once per query, never per row)
-- ============================================================================================
alter table public.teams enable row level security;
alter table public.profiles enable row level security;
alter table public.prospects enable row level security;

create policy "members read their team; admins read all" on public.teams
  for select to authenticated
  using ((select authz.my_role()) = 'admin' or id = (select authz.my_team()));

create policy "users read themselves, their team, and admins read all" on public.profiles
  for select to authenticated
  using ((select authz.my_role()) = 'admin' or id = (select auth.uid()) or team_id = (select authz.my_team()));

-- Each arm is indexable and selective (= any on an array evaluated once; the owner column is null only for
-- unassigned work), so the planner uses the owner index instead of filtering every row. Coordinators and admins
-- see assigned work through authz.visible_executives() (their team / everyone), unassigned work by team, and
-- admins also work that has neither owner nor team.
create policy "executives read their own and backed-up prospects, coordinators their team's, admins all"
  on public.prospects for select to authenticated
  using (executive_id = any ((select authz.visible_executives())::uuid[])
         or (executive_id is null and team_id = any ((select authz.visible_teams())::uuid[]))
         or (executive_id is null and team_id is null and (select authz.my_role()) = 'admin'));

create policy "executives read their own and backed-up conversations, coordinators their team's, admins all"
  on public.conversations for select to authenticated
  using (assigned_executive_id = any ((select authz.visible_executives())::uuid[])
         or (assigned_executive_id is null and team_id = any ((select authz.visible_teams())::uuid[]))
         or (assigned_executive_id is null and team_id is null and (select authz.my_role()) = 'admin'));

create policy "messages are readable with their conversation" on public.messages
  for select to authenticated
  using (exists (select from public.conversations c where c.id = messages.conversation_id));

create policy "contacts are readable through a visible conversation" on public.contacts
  for select to authenticated
  using (exists (select from public.conversations c where c.contact_id = contacts.id));

grant select on public.teams, public.profiles, public.prospects, public.conversations, public.messages,
  public.contacts to authenticated;

-- ============================================================================================
-- The frontend's view of the team
-- ============================================================================================
create view public.team_members with (security_invoker = true) as
  select p.id, p.email, p.full_name, p.role, p.team_id, t.name as team_name, p.phone, p.backup_id,
         p.backup_id is not null as has_backup, p.active
  from public.profiles p
  left join public.teams t on t.id = p.team_id;
comment on view public.team_members is
  'Team members the caller may see (RLS of profiles applies): id, email, full name, role, team, routed phone, '
  'backup id, has_backup.';
revoke all on public.team_members from anon, authenticated, service_role;
grant select on public.team_members to authenticated;

-- ============================================================================================
-- Batch RPCs: one round trip for any number of ids (seed 000's 2,146 identical requests)
-- ============================================================================================
create function public.get_backup_info(user_ids uuid[])
returns table (user_id uuid, backup_id uuid, has_backup boolean, backup_name text, backup_phone text, phone text,
               original_phone text)
language sql
stable
set search_path = ''
as $$
  select x.user_id, x.backup_id, x.has_backup, x.backup_name, x.backup_phone, x.phone, x.original_phone
  from (
    select distinct on (p.id) p.id as user_id, p.backup_id, p.backup_id is not null as has_backup,
           b.full_name as backup_name, b.phone as backup_phone, p.phone, p.original_phone, ids.position
    from unnest(user_ids) with ordinality as ids (id, position)
    join public.profiles p on p.id = ids.id
    left join public.profiles b on b.id = p.backup_id
    order by p.id, ids.position
  ) x
  order by x.position
$$;
comment on function public.get_backup_info(uuid[]) is
  'Backup information for any number of users in one call, in the order asked (duplicates once, by first '
  'position); ids the caller may not see (RLS of profiles) or that do not exist are omitted, not errors. '
  'Caller: the frontend (authenticated).';

create function public.prospects_handled_as_backup(prospect_ids uuid[])
returns table (prospect_id uuid, executive_id uuid, handled_as_backup boolean)
language sql
stable
set search_path = ''
as $$
  select x.prospect_id, x.executive_id, x.handled_as_backup
  from (
    select distinct on (pr.id) pr.id as prospect_id, pr.executive_id,
           coalesce(pr.executive_id = any ((select authz.backed_up_executives())::uuid[]), false)
             as handled_as_backup,
           ids.position
    from unnest(prospect_ids) with ordinality as ids (id, position)
    join public.prospects pr on pr.id = ids.id
    order by pr.id, ids.position
  ) x
  order by x.position
$$;
comment on function public.prospects_handled_as_backup(uuid[]) is
  'For any number of prospects in one call, in the order asked: whether the caller handles each as the backup of '
  'its executive. Prospects the caller may not see (RLS) or that do not exist are omitted. Caller: the frontend.';

revoke all on function public.get_backup_info(uuid[]), public.prospects_handled_as_backup(uuid[])
  from public, anon, service_role;
grant execute on function public.get_backup_info(uuid[]), public.prospects_handled_as_backup(uuid[])
  to authenticated;

-- ============================================================================================
-- Audited writes (called by auth-admin-proxy on the service connection, with the verified caller as actor).
-- Expected refusals raise stable SQLSTATEs the function maps to HTTP: PT403 forbidden, PT404 not found,
-- P0409 conflict; the HINT carries the machine-readable code.
-- ============================================================================================
create function wa.profile_for_update(p_id uuid)
returns public.profiles
language plpgsql
set search_path = ''
as $$
declare
  v_profile public.profiles;
begin
  select * into v_profile from public.profiles where id = p_id for update;
  if not found then
    raise exception 'no user %', p_id using errcode = 'PT404', hint = 'user_not_found';
  end if;
  return v_profile;
end;
$$;
comment on function wa.profile_for_update(uuid) is 'A profile locked for update; PT404 user_not_found when absent.';

create function wa.actor(p_actor_id uuid)
returns public.profiles
language plpgsql
stable
set search_path = ''
as $$
declare
  v_actor public.profiles;
begin
  select * into v_actor from public.profiles where id = p_actor_id and active;
  if not found then
    raise exception 'the caller has no active profile' using errcode = 'PT403', hint = 'no_profile';
  end if;
  return v_actor;
end;
$$;
comment on function wa.actor(uuid) is
  'The acting user''s active profile (authorization is decided from it, never from JWT metadata); PT403 '
  'no_profile otherwise.';

create function wa.require_manages(p_actor public.profiles, p_target public.profiles)
returns void
language plpgsql
stable
set search_path = ''
as $$
begin
  if p_actor.role = 'admin' then
    return;
  end if;
  -- "=", never "is not distinct from": a user without a team belongs to no team, so a coordinator without one
  -- manages nobody.
  if p_actor.role = 'coordinator' and p_target.team_id = p_actor.team_id and p_target.role <> 'admin' then
    return;
  end if;
  raise exception 'you may not manage user %', p_target.id using errcode = 'PT403', hint = 'forbidden';
end;
$$;
comment on function wa.require_manages(public.profiles, public.profiles) is
  'Raises PT403 forbidden unless the actor may manage the target: admins anyone, coordinators non-admins of their '
  'own team (a coordinator without a team: nobody).';

create function wa.assign_backup(p_actor_id uuid, p_executive_id uuid, p_backup_id uuid)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_actor public.profiles := wa.actor(p_actor_id);
  v_executive public.profiles;
  v_backup public.profiles;
  v_after public.profiles;
begin
  if p_executive_id = p_backup_id then
    raise exception 'an executive cannot be their own backup' using errcode = 'P0409', hint = 'self_backup';
  end if;
  -- Lock both rows in id order, so concurrent assignments never deadlock.
  if p_executive_id < p_backup_id then
    v_executive := wa.profile_for_update(p_executive_id);
    v_backup := wa.profile_for_update(p_backup_id);
  else
    v_backup := wa.profile_for_update(p_backup_id);
    v_executive := wa.profile_for_update(p_executive_id);
  end if;
  if v_actor.id <> v_executive.id then
    perform wa.require_manages(v_actor, v_executive);
  end if;
  if not v_executive.active or not v_backup.active then
    raise exception 'deactivated users can neither have nor be a backup' using errcode = 'P0409', hint = 'inactive_user';
  end if;
  -- Every sign-up starts without a team: were team-less users one team, a newcomer could take a team-less
  -- admin as backup and be routed their phone.
  if v_executive.team_id is null or v_backup.team_id is null then
    raise exception 'a user without a team can neither have nor be a backup'
      using errcode = 'P0409', hint = 'no_team';
  end if;
  if v_backup.team_id <> v_executive.team_id and v_actor.role <> 'admin' then
    raise exception 'the backup must be from the executive''s team' using errcode = 'P0409', hint = 'cross_team';
  end if;
  if v_executive.backup_id = p_backup_id then
    -- Idempotent: assigning the same backup again changes nothing, not even the saved original phone.
    return to_jsonb(v_executive);
  end if;
  if v_backup.backup_id is not null or exists (select from public.profiles p where p.backup_id = p_executive_id) then
    -- The backup is away themselves, or the executive is someone's backup: a chain (or, closed, a cycle).
    raise exception 'backups cannot be chained: one of the two is away or covering someone'
      using errcode = 'P0409', hint = 'backup_chain';
  end if;
  update public.profiles
  set backup_id = p_backup_id,
      original_phone = coalesce(original_phone, phone),
      phone = v_backup.phone,
      updated_at = now()
  where id = p_executive_id
  returning * into v_after;
  insert into wa.profile_audit (actor_id, action, target_id, before, after)
  values (p_actor_id, 'assign_backup', p_executive_id, to_jsonb(v_executive), to_jsonb(v_after));
  return to_jsonb(v_after);
end;
$$;
comment on function wa.assign_backup(uuid, uuid, uuid) is
  'Makes p_backup_id the backup of p_executive_id in one transaction: saves the executive''s phone as original '
  'phone (once: assigning twice never loses it) and routes to the backup''s phone; audited. Executives may '
  'assign their own backup from their team, coordinators within their team, admins across teams; both users '
  'need a team. Raises PT403 forbidden/no_profile, PT404 user_not_found, P0409 '
  'self_backup/inactive_user/no_team/cross_team/backup_chain. '
  'Returns the executive''s profile. Caller: auth-admin-proxy.';

create function wa.remove_backup(p_actor_id uuid, p_executive_id uuid)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_actor public.profiles := wa.actor(p_actor_id);
  v_executive public.profiles := wa.profile_for_update(p_executive_id);
  v_after public.profiles;
begin
  if v_actor.id <> v_executive.id then
    perform wa.require_manages(v_actor, v_executive);
  end if;
  if v_executive.backup_id is null then
    return to_jsonb(v_executive);
  end if;
  update public.profiles
  set backup_id = null, phone = coalesce(original_phone, phone), original_phone = null, updated_at = now()
  where id = p_executive_id
  returning * into v_after;
  insert into wa.profile_audit (actor_id, action, target_id, before, after)
  values (p_actor_id, 'remove_backup', p_executive_id, to_jsonb(v_executive), to_jsonb(v_after));
  return to_jsonb(v_after);
end;
$$;
comment on function wa.remove_backup(uuid, uuid) is
  'Ends an executive''s backup and restores their original phone; idempotent (no backup: no change); audited. '
  'Same authorization as wa.assign_backup. Returns the executive''s profile. Caller: auth-admin-proxy.';

create function wa.update_profile(p_actor_id uuid, p_user_id uuid, p_changes jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_actor public.profiles := wa.actor(p_actor_id);
  v_target public.profiles := wa.profile_for_update(p_user_id);
  v_after public.profiles;
  v_fields text[] := array(select jsonb_object_keys(p_changes));
  v_allowed text[];
begin
  -- What each role may change: themselves only name and phone; coordinators also activity within their team;
  -- admins everything.
  if v_actor.role = 'admin' then
    v_allowed := array['full_name', 'phone', 'role', 'team_id', 'active'];
  elsif v_actor.id = v_target.id then
    v_allowed := array['full_name', 'phone'];
  else
    perform wa.require_manages(v_actor, v_target);
    v_allowed := array['full_name', 'phone', 'active'];
  end if;
  if not v_fields <@ v_allowed then
    raise exception 'you may not change %', array_to_string(array(select unnest(v_fields) except
                                                                 select unnest(v_allowed)), ', ')
      using errcode = 'PT403', hint = 'forbidden_field';
  end if;
  if p_changes ? 'role' and p_changes ->> 'role' not in ('admin', 'coordinator', 'executive') then
    raise exception 'unknown role %', p_changes ->> 'role' using errcode = '22023', hint = 'invalid_role';
  end if;
  if p_changes ? 'team_id' and p_changes ->> 'team_id' is not null
     and not exists (select from public.teams t where t.id = (p_changes ->> 'team_id')::uuid) then
    raise exception 'no team %', p_changes ->> 'team_id' using errcode = 'PT404', hint = 'team_not_found';
  end if;
  -- The row lock on the target orders this against a concurrent wa.assign_backup naming them, so the check
  -- sees any backup committed before it.
  if p_changes ? 'team_id' and p_changes ->> 'team_id' is null
     and (v_target.backup_id is not null or exists (select from public.profiles p where p.backup_id = p_user_id)) then
    raise exception 'a user without a team can neither have nor be a backup'
      using errcode = 'P0409', hint = 'no_team';
  end if;
  update public.profiles p
  set full_name = case when p_changes ? 'full_name' then p_changes ->> 'full_name' else p.full_name end,
      -- While a backup is assigned the routed phone is the backup's: a new own number waits in original_phone.
      phone = case when p_changes ? 'phone' and p.backup_id is null then p_changes ->> 'phone' else p.phone end,
      original_phone = case when p_changes ? 'phone' and p.backup_id is not null then p_changes ->> 'phone'
                            else p.original_phone end,
      role = case when p_changes ? 'role' then p_changes ->> 'role' else p.role end,
      team_id = case when p_changes ? 'team_id' then (p_changes ->> 'team_id')::uuid else p.team_id end,
      active = case when p_changes ? 'active' then (p_changes ->> 'active')::boolean else p.active end,
      updated_at = now()
  where p.id = p_user_id
  returning * into v_after;
  if to_jsonb(v_after) - 'updated_at' is distinct from to_jsonb(v_target) - 'updated_at' then
    insert into wa.profile_audit (actor_id, action, target_id, before, after)
    values (p_actor_id, 'update_profile', p_user_id, to_jsonb(v_target), to_jsonb(v_after));
  end if;
  return to_jsonb(v_after);
end;
$$;
comment on function wa.update_profile(uuid, uuid, jsonb) is
  'Changes profile fields in one transaction, audited when something changed. Users may change their own name '
  'and phone; coordinators also activate/deactivate their team''s non-admins; admins any field (role, team). '
  'Taking the team away from a user who has or is a backup is refused (P0409 no_team: remove the backup first). '
  'Raises PT403 forbidden/forbidden_field/no_profile, PT404 user_not_found/team_not_found, 22023 invalid_role. '
  'Returns the profile. Caller: auth-admin-proxy.';

revoke all on function wa.profile_for_update(uuid), wa.actor(uuid),
  wa.require_manages(public.profiles, public.profiles), wa.assign_backup(uuid, uuid, uuid),
  wa.remove_backup(uuid, uuid), wa.update_profile(uuid, uuid, jsonb)
  from public, anon, authenticated, service_role;
