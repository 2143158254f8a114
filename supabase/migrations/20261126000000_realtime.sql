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

create function wa.change_topics(p_table text, p_operation text, p_change jsonb)
returns text[]
language plpgsql
stable
set search_path = ''
as $$
declare
  v_row jsonb := coalesce(p_change -> 'record', p_change -> 'old_record');
  v_executive_key text := case p_table when 'conversations' then 'assigned_executive_id'
                                       when 'prospects' then 'executive_id' else 'id' end;
  v_team_id uuid := (v_row ->> 'team_id')::uuid;
  v_executive_id uuid := (v_row ->> v_executive_key)::uuid;
  v_topics text[];
begin
  -- A message, reaction or call belongs where its conversation does.
  if p_table in ('messages', 'message_reactions', 'calls') then
    select c.team_id, c.assigned_executive_id into v_team_id, v_executive_id
    from public.conversations c where c.id = (v_row ->> 'conversation_id')::uuid;
  end if;
  v_topics := wa.owner_topics(v_team_id, v_executive_id);
  -- A reassignment is also news for whoever the row left.
  if p_operation = 'UPDATE' and p_table in ('conversations', 'prospects') then
    v_topics := v_topics || wa.owner_topics((p_change -> 'old_record' ->> 'team_id')::uuid,
                                            (p_change -> 'old_record' ->> v_executive_key)::uuid);
  end if;
  return array(select distinct t from unnest(v_topics) t);
end;
$$;
comment on function wa.change_topics(text, text, jsonb) is
  'The topics one row change ({record, old_record}) of a broadcast table goes to: its owner''s (a message''s, '
  'reaction''s or call''s: its conversation''s), and for a reassignment of a conversation or prospect the '
  'previous owner''s too. Caller: wa.broadcast_changes.';

-- One broadcast per topic per statement, not per row: a webhook POST of 100 messages to 100 conversations
-- wrote 200 rows of realtime.messages (each inside realtime.send's subtransaction), more than half of the
-- ingest's time. A broadcast holds at most wa.broadcast_batch_rows() rows; one row keeps the payload of
-- Supabase's realtime.broadcast_changes, several carry them in `changes` (docs/realtime-and-client.md).
create function wa.broadcast_batch_rows()
returns integer
language sql
immutable
as $$
  select 50
$$;
comment on function wa.broadcast_batch_rows() is
  'Most rows one broadcast carries (a statement that changes more sends several): keeps each payload well under '
  'Realtime''s message size limit.';

create function wa.broadcast_changes()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_changes jsonb;
  v_topic text;
  v_batch record;
begin
  -- The statement's rows as {record, old_record}, in the order they were written; an update's old and new
  -- versions paired by key (the reactions' key is the message and the reactor).
  if tg_op = 'INSERT' then
    select jsonb_agg(jsonb_build_object('record', to_jsonb(n), 'old_record', null)) into v_changes from new_rows n;
  elsif tg_op = 'DELETE' then
    select jsonb_agg(jsonb_build_object('record', null, 'old_record', to_jsonb(o))) into v_changes from old_rows o;
  else
    with new_versions as (
      select to_jsonb(n) as r, row_number() over () as ordinality from new_rows n
    ),
    old_versions as (
      select to_jsonb(o) as r from old_rows o
    )
    select jsonb_agg(jsonb_build_object('record', nv.r, 'old_record', ov.r) order by nv.ordinality) into v_changes
    from new_versions nv
    join old_versions ov
      on coalesce(ov.r ->> 'id', (ov.r ->> 'message_wamid') || '|' || (ov.r ->> 'reactor'))
       = coalesce(nv.r ->> 'id', (nv.r ->> 'message_wamid') || '|' || (nv.r ->> 'reactor'));
  end if;
  if v_changes is null then
    return null;
  end if;

  -- One row (a webhook POST's conversation and message, most writes): sent as it is, without the grouping
  -- below, whose plan costs more than the row's own broadcast.
  if jsonb_array_length(v_changes) = 1 then
    foreach v_topic in array wa.change_topics(tg_table_name, tg_op, v_changes -> 0) loop
      perform realtime.send(v_changes -> 0 || jsonb_build_object('operation', tg_op, 'table', tg_table_name,
                                                                 'schema', tg_table_schema), tg_op, v_topic);
    end loop;
    return null;
  end if;

  -- Several: each row to its topics, then one broadcast per topic and batch, the rows in write order.
  for v_batch in
    with routed as (
      select c.ordinality as position, c.value as change, t.topic
      from jsonb_array_elements(v_changes) with ordinality c
      cross join lateral unnest(wa.change_topics(tg_table_name, tg_op, c.value)) t (topic)
    ),
    numbered as (
      select r.*, (row_number() over (partition by r.topic order by r.position) - 1) / wa.broadcast_batch_rows()
               as batch
      from routed r
    )
    select n.topic, jsonb_agg(n.change order by n.position) as changes
    from numbered n
    group by n.topic, n.batch
    order by n.topic, n.batch
  loop
    perform realtime.send(
      case when jsonb_array_length(v_batch.changes) = 1 then v_batch.changes -> 0
           else jsonb_build_object('changes', v_batch.changes) end
        || jsonb_build_object('operation', tg_op, 'table', tg_table_name, 'schema', tg_table_schema),
      tg_op, v_batch.topic);
  end loop;
  return null;
end;
$$;
comment on function wa.broadcast_changes() is
  'AFTER statement trigger (one per operation: transition tables new_rows/old_rows): broadcasts the statement''s '
  'row changes with realtime.send to the private topics of each row''s team and executive (a message, reaction '
  'or call: its conversation''s; a reassignment: the previous owners'' too; nothing owned: unassigned), one '
  'broadcast per topic and wa.broadcast_batch_rows() rows. One row: realtime.broadcast_changes'' payload '
  '(record, old_record, operation, table, schema); several: operation, table, schema and changes '
  '[{record, old_record}] in write order. Security definer so any writer may emit it; RLS on realtime.messages '
  'decides who receives it.';
revoke all on function wa.broadcast_changes(), wa.owner_topics(uuid, uuid), wa.broadcast_batch_rows(),
  wa.change_topics(text, text, jsonb) from public, anon, authenticated, service_role;

create trigger messages_broadcast_insert after insert on public.messages
  referencing new table as new_rows for each statement execute function wa.broadcast_changes();
create trigger messages_broadcast_update after update on public.messages
  referencing old table as old_rows new table as new_rows for each statement execute function wa.broadcast_changes();
create trigger messages_broadcast_delete after delete on public.messages
  referencing old table as old_rows for each statement execute function wa.broadcast_changes();
create trigger conversations_broadcast_insert after insert on public.conversations
  referencing new table as new_rows for each statement execute function wa.broadcast_changes();
create trigger conversations_broadcast_update after update on public.conversations
  referencing old table as old_rows new table as new_rows for each statement execute function wa.broadcast_changes();
create trigger conversations_broadcast_delete after delete on public.conversations
  referencing old table as old_rows for each statement execute function wa.broadcast_changes();
create trigger prospects_broadcast_insert after insert on public.prospects
  referencing new table as new_rows for each statement execute function wa.broadcast_changes();
create trigger prospects_broadcast_update after update on public.prospects
  referencing old table as old_rows new table as new_rows for each statement execute function wa.broadcast_changes();
create trigger prospects_broadcast_delete after delete on public.prospects
  referencing old table as old_rows for each statement execute function wa.broadcast_changes();
create trigger profiles_broadcast_insert after insert on public.profiles
  referencing new table as new_rows for each statement execute function wa.broadcast_changes();
create trigger profiles_broadcast_update after update on public.profiles
  referencing old table as old_rows new table as new_rows for each statement execute function wa.broadcast_changes();
create trigger profiles_broadcast_delete after delete on public.profiles
  referencing old table as old_rows for each statement execute function wa.broadcast_changes();
