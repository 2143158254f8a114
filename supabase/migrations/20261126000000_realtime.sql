-- wabase realtime: row changes reach the UI through Broadcast from Database on private topics per team and
-- per executive, authorized by RLS on realtime.messages, so Realtime never decodes WAL per subscriber for our
-- tables (seed 001: Postgres Changes on ~20 tables took 57% of the database CPU). The supabase_realtime
-- publication is declared here once and holds exactly what the UI listens to through Postgres Changes.

-- ============================================================================================
-- The publication: declared once, applied idempotently
-- ============================================================================================
create function wa.realtime_publication_tables()
returns regclass[]
language sql
immutable
set search_path = ''
as $$
  -- Empty on purpose: every table the UI follows (messages, conversations, prospects, profiles) is broadcast
  -- by the triggers below, so nothing needs logical decoding for Postgres Changes. Add a table here only for
  -- a client that must use Postgres Changes.
  select '{}'::regclass[]
$$;
comment on function wa.realtime_publication_tables() is
  'The tables the supabase_realtime publication must hold (the UI''s Postgres Changes subscriptions): none, '
  'since row changes are broadcast from the database. Read by wa.sync_realtime_publication().';

create function wa.sync_realtime_publication()
returns text[]
language plpgsql
set search_path = ''
as $$
declare
  v_table regclass;
begin
  for v_table in
    select (quote_ident(p.schemaname) || '.' || quote_ident(p.tablename))::regclass
    from pg_catalog.pg_publication_tables p
    where p.pubname = 'supabase_realtime'
      and (quote_ident(p.schemaname) || '.' || quote_ident(p.tablename))::regclass <> all (wa.realtime_publication_tables())
  loop
    execute format('alter publication supabase_realtime drop table %s', v_table);
  end loop;
  for v_table in
    select t from unnest(wa.realtime_publication_tables()) t
    where not exists (select from pg_catalog.pg_publication_rel r
                      join pg_catalog.pg_publication p on p.oid = r.prpubid
                      where p.pubname = 'supabase_realtime' and r.prrelid = t)
  loop
    execute format('alter publication supabase_realtime add table %s', v_table);
  end loop;
  return array(select p.schemaname || '.' || p.tablename from pg_catalog.pg_publication_tables p
               where p.pubname = 'supabase_realtime' order by 1);
end;
$$;
comment on function wa.sync_realtime_publication() is
  'Makes the supabase_realtime publication hold exactly wa.realtime_publication_tables() (dropping others a '
  'dashboard click may have added); idempotent; returns the resulting list. Run by migrations.';
revoke all on function wa.realtime_publication_tables(), wa.sync_realtime_publication()
  from public, anon, authenticated, service_role;

select wa.sync_realtime_publication();

-- ============================================================================================
-- Topics and who may read them
-- ============================================================================================
create function authz.can_read_topic(p_topic text)
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select case
    when p_topic ~ '^executive:[0-9a-f-]{36}$' then
      substr(p_topic, 11)::uuid = any (authz.visible_executives())
    when p_topic ~ '^team:[0-9a-f-]{36}$' then
      substr(p_topic, 6)::uuid = any (authz.visible_teams())
    when p_topic = 'unassigned' then
      coalesce(authz.my_role() = 'admin', false)
    else false
  end
$$;
comment on function authz.can_read_topic(text) is
  'Whether the caller may receive a wabase topic: executive:<id> for themselves, those they back up, their '
  'team''s coordinator and admins; team:<id> for its coordinator and admins; unassigned for admins. Used by the '
  'RLS policy on realtime.messages (Realtime checks it when a private channel is joined).';
revoke all on function authz.can_read_topic(text) from public, anon, service_role;
grant execute on function authz.can_read_topic(text) to authenticated;

drop policy if exists "wabase topics are readable by who may see them" on realtime.messages;
create policy "wabase topics are readable by who may see them" on realtime.messages
  for select to authenticated
  using (realtime.messages.extension = 'broadcast' and authz.can_read_topic((select realtime.topic())));

-- ============================================================================================
-- Broadcast triggers
-- ============================================================================================
create function wa.owner_topics(p_team_id uuid, p_executive_id uuid)
returns text[]
language sql
immutable
as $$
  select case
    when p_team_id is null and p_executive_id is null then array['unassigned']
    else array_remove(array['team:' || p_team_id, 'executive:' || p_executive_id], null)
  end
$$;
comment on function wa.owner_topics(uuid, uuid) is
  'The topics a row owned by this team and executive is broadcast to (unassigned when neither is set).';

create function wa.broadcast_row_change()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_topic text;
  v_topics text[];
  v_record jsonb := case when tg_op = 'DELETE' then null else to_jsonb(new) end;
  v_old jsonb := case when tg_op = 'INSERT' then null else to_jsonb(old) end;
  v_row jsonb := coalesce(v_record, v_old);
  v_owner jsonb;
  v_payload jsonb;
begin
  -- Where the row belongs: its own team/executive columns, or its conversation's for a message.
  if tg_table_name in ('messages', 'message_reactions', 'calls') then
    select jsonb_build_object('team_id', c.team_id, 'executive_id', c.assigned_executive_id) into v_owner
    from public.conversations c where c.id = (v_row ->> 'conversation_id')::uuid;
  elsif tg_table_name = 'conversations' then
    v_owner := jsonb_build_object('team_id', v_row -> 'team_id', 'executive_id', v_row -> 'assigned_executive_id');
  elsif tg_table_name = 'prospects' then
    v_owner := jsonb_build_object('team_id', v_row -> 'team_id', 'executive_id', v_row -> 'executive_id');
  else
    v_owner := jsonb_build_object('team_id', v_row -> 'team_id', 'executive_id', v_row -> 'id');
  end if;
  v_topics := wa.owner_topics((v_owner ->> 'team_id')::uuid, (v_owner ->> 'executive_id')::uuid);
  -- A reassignment is also news for whoever the row left.
  if tg_op = 'UPDATE' and tg_table_name in ('conversations', 'prospects') then
    v_topics := v_topics || wa.owner_topics(
      (v_old ->> 'team_id')::uuid,
      (v_old ->> case when tg_table_name = 'conversations' then 'assigned_executive_id' else 'executive_id' end)::uuid);
  end if;
  -- realtime.broadcast_changes' payload, sent with realtime.send directly: the row is already jsonb here, and
  -- broadcast_changes would convert it again inside one more subtransaction (its exception block) per topic.
  v_payload := jsonb_build_object('old_record', v_old, 'record', v_record, 'operation', tg_op,
                                  'table', tg_table_name, 'schema', tg_table_schema);
  for v_topic in select distinct t from unnest(v_topics) t loop
    perform realtime.send(v_payload, tg_op, v_topic);
  end loop;
  return null;
end;
$$;
comment on function wa.broadcast_row_change() is
  'AFTER row trigger: broadcasts the change (record, old_record, operation, table, schema: '
  'realtime.broadcast_changes'' payload) with realtime.send to the private topics of the row''s team and executive (a message or a '
  'call: its conversation''s; a reassignment: the previous owners'' too; nothing owned: unassigned). Security definer so '
  'any writer may emit it; RLS on realtime.messages decides who receives it.';
revoke all on function wa.broadcast_row_change(), wa.owner_topics(uuid, uuid)
  from public, anon, authenticated, service_role;

create trigger messages_broadcast after insert or update or delete on public.messages
  for each row execute function wa.broadcast_row_change();
create trigger conversations_broadcast after insert or update or delete on public.conversations
  for each row execute function wa.broadcast_row_change();
create trigger prospects_broadcast after insert or update or delete on public.prospects
  for each row execute function wa.broadcast_row_change();
create trigger profiles_broadcast after insert or update or delete on public.profiles
  for each row execute function wa.broadcast_row_change();
