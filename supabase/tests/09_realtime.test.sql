-- Realtime: the publication holds exactly the declared tables; row changes are broadcast to the private topics
-- of their team and executive; RLS on realtime.messages lets a user receive only topics they may read
-- (checked the way Realtime does: as the user, with realtime.topic set).
begin;
select plan(22);

insert into public.teams (id, name) values ('10000000-0000-0000-0000-000000000001', 'T1'),
                                          ('10000000-0000-0000-0000-000000000002', 'T2');
create temp table u (name text primary key, id uuid not null);
grant select on u to authenticated, anon;
insert into u values
  ('admin', tests.create_user('admin@rt.test', 'admin')),
  ('c1', tests.create_user('c1@rt.test', 'coordinator', '10000000-0000-0000-0000-000000000001')),
  ('e1', tests.create_user('e1@rt.test', 'executive', '10000000-0000-0000-0000-000000000001')),
  ('e2', tests.create_user('e2@rt.test', 'executive', '10000000-0000-0000-0000-000000000001')),
  ('e3', tests.create_user('e3@rt.test', 'executive', '10000000-0000-0000-0000-000000000002'));
create function pg_temp.id(p_name text) returns uuid language sql stable as $$ select id from u where name = p_name $$;
grant execute on function pg_temp.id(text) to authenticated, anon;

-- ---------------------------------------------------------------------------------------------
-- The publication
-- ---------------------------------------------------------------------------------------------
select is(array(select schemaname || '.' || tablename from pg_publication_tables where pubname = 'supabase_realtime'),
  array(select t::text from unnest(wa.realtime_publication_tables()) t),
  'supabase_realtime holds exactly the declared tables');
select is(cardinality(wa.realtime_publication_tables()), 0,
  'which are none: the UI gets row changes by broadcast, so no table needs WAL decoding for Postgres Changes');
alter publication supabase_realtime add table public.teams;
select is(wa.sync_realtime_publication(), '{}'::text[], 'a table added by hand is removed again by the sync');
select is(wa.sync_realtime_publication(), '{}'::text[], 'the sync is idempotent');

-- ---------------------------------------------------------------------------------------------
-- Broadcasts: topics and payloads. (Hosted Supabase gives postgres no DELETE on realtime.messages, so
-- each step looks only at the rows it produced.)
-- ---------------------------------------------------------------------------------------------
create temp table seen (id uuid primary key);
create function pg_temp.mark_seen() returns void language sql as $$
  insert into seen select id from realtime.messages on conflict do nothing
$$;
create temp view fresh as select * from realtime.messages m where not exists (select from seen s where s.id = m.id);
select pg_temp.mark_seen();
select wa.ingest_webhook(tests.webhook(tests.change(jsonb_build_object(
  'contacts', jsonb_build_array(tests.contact('5215500000001', 'Ana')),
  'messages', jsonb_build_array(tests.msg('wamid.RT1', 'text', '{"body":"hola"}', '5215500000001'))))));
select results_eq($$select topic, event, payload ->> 'table' from fresh order by payload ->> 'table'$$,
  $$values ('unassigned', 'INSERT', 'conversations'), ('unassigned', 'INSERT', 'messages')$$,
  'a new conversation and its message, owned by nobody yet, go to the unassigned topic');
select ok((select bool_and(private and extension = 'broadcast') from fresh), 'as private broadcasts');
select pg_temp.mark_seen();
update public.conversations set assigned_executive_id = pg_temp.id('e1'), team_id = '10000000-0000-0000-0000-000000000001'
where phone_number_id = 'PN1' and contact_id = (select id from public.contacts where wa_id = '5215500000001');
select results_eq($$select topic from fresh where event = 'UPDATE' order by topic$$,
  $$values ('executive:' || pg_temp.id('e1')), ('team:10000000-0000-0000-0000-000000000001'), ('unassigned')$$,
  'an assignment reaches the new executive, the team, and the topic the row left');
select results_eq($$select payload -> 'record' ->> 'assigned_executive_id', payload -> 'old_record' ->> 'assigned_executive_id',
                           payload ->> 'operation', payload ->> 'schema'
                    from fresh where topic = 'executive:' || pg_temp.id('e1')$$,
  $$values (pg_temp.id('e1')::text, null::text, 'UPDATE', 'public')$$,
  'the payload carries record, old_record, operation and schema');
select pg_temp.mark_seen();
select wa.ingest_webhook(tests.webhook(tests.change(jsonb_build_object(
  'contacts', jsonb_build_array(tests.contact('5215500000001', 'Ana')),
  'messages', jsonb_build_array(tests.msg('wamid.RT2', 'text', '{"body":"otra"}', '5215500000001'))))));
select results_eq($$select topic from fresh where payload ->> 'table' = 'messages' order by topic$$,
  $$values ('executive:' || pg_temp.id('e1')), ('team:10000000-0000-0000-0000-000000000001')$$,
  'a message goes to its conversation''s executive and team');
select pg_temp.mark_seen();
select wa.ingest_webhook(tests.webhook(tests.change(jsonb_build_object(
  'contacts', jsonb_build_array(tests.contact('5215500000001', 'Ana')),
  'messages', jsonb_build_array(tests.msg('wamid.RT5', 'text', '{"body":"c"}', '5215500000001'),
                                tests.msg('wamid.RT3', 'text', '{"body":"a"}', '5215500000001'),
                                tests.msg('wamid.RT4', 'text', '{"body":"b"}', '5215500000001'))))));
select results_eq($$select topic, payload -> 'record', jsonb_path_query_array(payload, '$.changes[*].record.wamid')
                    from fresh where payload ->> 'table' = 'messages' order by topic$$,
  $$values ('executive:' || pg_temp.id('e1'), null::jsonb, '["wamid.RT3", "wamid.RT4", "wamid.RT5"]'::jsonb),
           ('team:10000000-0000-0000-0000-000000000001', null, '["wamid.RT3", "wamid.RT4", "wamid.RT5"]')$$,
  'a statement''s rows go out as one broadcast per topic, with the rows in `changes` in the order written');
select is((select count(*)::integer from fresh f, jsonb_array_elements(f.payload -> 'changes') c
           where f.payload ->> 'table' = 'messages' and c -> 'old_record' = 'null' and c ? 'record'),
  6, 'each batched change carries record and old_record, like a single one');
select pg_temp.mark_seen();
select wa.assign_backup(pg_temp.id('e1'), pg_temp.id('e1'), pg_temp.id('e2'));
select results_eq($$select topic from fresh where payload ->> 'table' = 'profiles' order by topic$$,
  $$values ('executive:' || pg_temp.id('e1')), ('team:10000000-0000-0000-0000-000000000001')$$,
  'a profile change (a backup assignment) goes to the person and their team');

-- ---------------------------------------------------------------------------------------------
-- Who may receive what (Realtime joins as the user with realtime.topic set, then reads its probe row)
-- ---------------------------------------------------------------------------------------------
create function pg_temp.can_receive(p_user text, p_topic text) returns boolean language plpgsql as $$
declare
  v boolean;
begin
  insert into realtime.messages (topic, extension, payload, event, private) values (p_topic, 'broadcast', '{}', 'probe', true);
  perform tests.authenticate_as(pg_temp.id(p_user));
  perform set_config('realtime.topic', p_topic, true);
  select exists (select from realtime.messages where topic = p_topic and event = 'probe') into v;
  perform tests.clear_authentication();
  return v;
end;
$$;
select ok(pg_temp.can_receive('e1', 'executive:' || pg_temp.id('e1')), 'an executive receives their own topic');
select ok(not pg_temp.can_receive('e2', 'executive:' || pg_temp.id('e3')),
  'an executive cannot read another executive''s topic');
select ok(pg_temp.can_receive('e2', 'executive:' || pg_temp.id('e1')), 'the backup receives the topic of who they cover');
select ok(not pg_temp.can_receive('e1', 'executive:' || pg_temp.id('e2')), 'but not the other way round');
select ok(not pg_temp.can_receive('e1', 'team:10000000-0000-0000-0000-000000000001'),
  'an executive cannot read the whole team''s topic');
select ok(pg_temp.can_receive('c1', 'team:10000000-0000-0000-0000-000000000001'), 'the coordinator reads their team''s');
select ok(not pg_temp.can_receive('c1', 'team:10000000-0000-0000-0000-000000000002'), 'but not another team''s');
select ok(pg_temp.can_receive('c1', 'executive:' || pg_temp.id('e2')), 'and their executives'' topics');
select ok(pg_temp.can_receive('admin', 'unassigned') and not pg_temp.can_receive('c1', 'unassigned'),
  'unassigned work is for admins');
select ok(not authz.can_read_topic('anything') and not pg_temp.can_receive('admin', 'room-1'),
  'unknown topics are readable by no one');

select * from finish();
rollback;
