-- Team, profiles and backups: what each role reads (impersonated exactly as PostgREST does), the batch
-- backup RPCs, and the audited assign/remove/update functions.
begin;
select plan(49);

-- ---------------------------------------------------------------------------------------------
-- A small organisation: two teams, an admin, a coordinator per team, two executives in T1, one in T2
-- ---------------------------------------------------------------------------------------------
insert into public.teams (id, name) values ('10000000-0000-0000-0000-000000000001', 'T1'),
                                          ('10000000-0000-0000-0000-000000000002', 'T2');
create temp table u (name text primary key, id uuid not null);
grant select on u to authenticated;
insert into u values
  ('admin', tests.create_user('admin@x.test', 'admin', null, '+100')),
  ('c1', tests.create_user('c1@x.test', 'coordinator', '10000000-0000-0000-0000-000000000001', '+101')),
  ('c2', tests.create_user('c2@x.test', 'coordinator', '10000000-0000-0000-0000-000000000002', '+102')),
  ('e1', tests.create_user('e1@x.test', 'executive', '10000000-0000-0000-0000-000000000001', '+111')),
  ('e2', tests.create_user('e2@x.test', 'executive', '10000000-0000-0000-0000-000000000001', '+112')),
  ('e3', tests.create_user('e3@x.test', 'executive', '10000000-0000-0000-0000-000000000002', '+113')),
  ('sneaky', tests.create_user('sneaky@x.test', 'executive', '10000000-0000-0000-0000-000000000002', '+114',
                               '{"role": "admin", "team": "T1"}'));
create function pg_temp.id(p_name text) returns uuid language sql stable as $$ select id from u where name = p_name $$;
grant execute on function pg_temp.id(text) to anon, authenticated;

-- One conversation (with a message) and one prospect per executive; one unassigned conversation.
select wa.ingest_webhook(tests.webhook(tests.change(jsonb_build_object(
  'contacts', jsonb_build_array(tests.contact('5215500000001', 'A'), tests.contact('5215500000002', 'B'),
                                tests.contact('5215500000003', 'C'), tests.contact('5215500000004', 'D')),
  'messages', jsonb_build_array(tests.msg('wamid.R1', 'text', '{"body":"1"}', '5215500000001'),
                                tests.msg('wamid.R2', 'text', '{"body":"2"}', '5215500000002'),
                                tests.msg('wamid.R3', 'text', '{"body":"3"}', '5215500000003'),
                                tests.msg('wamid.R4', 'text', '{"body":"4"}', '5215500000004'))))));
update public.conversations c set assigned_executive_id = pg_temp.id(x.owner), team_id = p.team_id
from (values ('5215500000001', 'e1'), ('5215500000002', 'e2'), ('5215500000003', 'e3')) x (wa_id, owner)
join public.contacts k on k.wa_id = x.wa_id
join public.profiles p on p.id = (select id from u where name = x.owner)
where c.contact_id = k.id;
insert into public.prospects (id, team_id, executive_id, name)
select ('20000000-0000-0000-0000-00000000000' || n)::uuid, p.team_id, p.id, 'lead of ' || x.owner
from (values (1, 'e1'), (2, 'e2'), (3, 'e3')) x (n, owner) join public.profiles p on p.id = pg_temp.id(x.owner);

create function pg_temp.visible(p_name text) returns text language plpgsql as $$
declare
  v text;
begin
  perform tests.authenticate_as(pg_temp.id(p_name));
  select format('conversations=%s messages=%s prospects=%s contacts=%s profiles=%s teams=%s',
    (select count(*) from public.conversations), (select count(*) from public.messages),
    (select count(*) from public.prospects), (select count(*) from public.contacts),
    (select count(*) from public.profiles), (select count(*) from public.teams)) into v;
  perform tests.clear_authentication();
  return v;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Profiles are server-owned
-- ---------------------------------------------------------------------------------------------
select results_eq($$select role, team_id, email from public.profiles where id = pg_temp.id('sneaky')$$,
  $$values ('executive', '10000000-0000-0000-0000-000000000002'::uuid, 'sneaky@x.test')$$,
  'user metadata claiming admin and team T1 changes nothing: the profile is server-owned');
select tests.authenticate_as(pg_temp.id('sneaky'));
select is(authz.my_role(), 'executive', 'the sneaky user''s role comes from the profile');
select throws_ok($$update public.profiles set role = 'admin' where id = auth.uid()$$, '42501', null,
  'a user cannot update their own profile (no update grant)');
select throws_ok($$insert into public.teams (name) values ('mine')$$, '42501', null, 'nor create teams');
select tests.clear_authentication();
select is(pg_temp.visible('sneaky'), 'conversations=0 messages=0 prospects=0 contacts=0 profiles=3 teams=1',
  'the sneaky user sees only T2 profiles and nothing of T1');
update auth.users set email = 'e1+new@x.test' where id = pg_temp.id('e1');
select is((select email from public.profiles where id = pg_temp.id('e1')), 'e1+new@x.test',
  'the profile email follows auth.users');
insert into auth.users (id, email, raw_user_meta_data) values ('30000000-0000-0000-0000-000000000009', 'new@x.test',
                                                             '{"role":"admin"}');
select results_eq($$select role, team_id, email from public.profiles where id = '30000000-0000-0000-0000-000000000009'$$,
  $$values ('executive', null::uuid, 'new@x.test')$$,
  'a new user (even one whose metadata says admin) starts as an executive without team');

-- ---------------------------------------------------------------------------------------------
-- What each role reads
-- ---------------------------------------------------------------------------------------------
select is(pg_temp.visible('e1'), 'conversations=1 messages=1 prospects=1 contacts=1 profiles=3 teams=1',
  'an executive reads their own conversation, message, prospect and contact, and their team''s profiles');
select is(pg_temp.visible('c1'), 'conversations=2 messages=2 prospects=2 contacts=2 profiles=3 teams=1',
  'a coordinator reads their team''s work');
select is(pg_temp.visible('c2'), 'conversations=1 messages=1 prospects=1 contacts=1 profiles=3 teams=1',
  'the other team''s coordinator reads only theirs');
select is(pg_temp.visible('admin'),
  format('conversations=%s messages=%s prospects=%s contacts=%s profiles=%s teams=%s',
    (select count(*) from public.conversations), (select count(*) from public.messages),
    (select count(*) from public.prospects), (select count(*) from public.contacts),
    (select count(*) from public.profiles), (select count(*) from public.teams)),
  'an admin reads everything (as much as the table owner sees), the unassigned conversation included');
set local role anon;
select set_config('request.jwt.claims', '{"role":"anon"}', true);
select throws_ok($$select count(*) from public.conversations$$, '42501', null, 'anon reads nothing');
select throws_ok($$select * from public.get_backup_info(array[gen_random_uuid()])$$, '42501', null,
  'and cannot call the batch RPCs');
select tests.clear_authentication();
select tests.authenticate_as(pg_temp.id('e1'));
select is_empty($$select 1 from public.conversations c join public.contacts k on k.id = c.contact_id
                  where k.wa_id = '5215500000003'$$, 'e1 cannot read a T2 conversation');
select throws_ok($$select wa.assign_backup(auth.uid(), auth.uid(), auth.uid())$$, '42501', null,
  'nor call internal functions');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------------------------
-- Backups: assign, idempotency, what the backup reads, the batch RPCs, remove
-- ---------------------------------------------------------------------------------------------
select is((wa.assign_backup(pg_temp.id('e2'), pg_temp.id('e2'), pg_temp.id('e1')) ->> 'phone'), '+111',
  'an executive assigns their own backup from their team: calls route to the backup''s phone');
select results_eq($$select backup_id, phone, original_phone from public.profiles where id = pg_temp.id('e2')$$,
  $$values (pg_temp.id('e1'), '+111', '+112')$$, 'the executive''s own phone is kept as original phone');
select wa.assign_backup(pg_temp.id('c1'), pg_temp.id('e2'), pg_temp.id('e1'));
select results_eq($$select backup_id, phone, original_phone from public.profiles where id = pg_temp.id('e2')$$,
  $$values (pg_temp.id('e1'), '+111', '+112')$$, 'assigning the same backup again never loses the original phone');
select is((select count(*)::int from wa.profile_audit where target_id = pg_temp.id('e2')), 1,
  'and is audited once: the repeat changed nothing');
select results_eq($$select actor_id, action, before ->> 'phone', after ->> 'phone' from wa.profile_audit
                    where target_id = pg_temp.id('e2')$$,
  $$values (pg_temp.id('e2'), 'assign_backup', '+112', '+111')$$, 'the audit row holds actor, before and after');
select is(pg_temp.visible('e1'), 'conversations=2 messages=2 prospects=2 contacts=2 profiles=3 teams=1',
  'the backup now reads the executive''s conversations and prospects too');
select tests.authenticate_as(pg_temp.id('e1'));
select results_eq(
  $$select prospect_id, handled_as_backup from public.prospects_handled_as_backup(array[
      '20000000-0000-0000-0000-000000000002', '20000000-0000-0000-0000-000000000003',
      '20000000-0000-0000-0000-000000000001', gen_random_uuid(), '20000000-0000-0000-0000-000000000002']::uuid[])$$,
  $$values ('20000000-0000-0000-0000-000000000002'::uuid, true), ('20000000-0000-0000-0000-000000000001'::uuid, false)$$,
  'prospects_handled_as_backup: in order, invisible and unknown ids omitted, duplicates once');
select results_eq(
  $$select user_id, has_backup, backup_name, backup_phone
    from public.get_backup_info(array[pg_temp.id('e2'), pg_temp.id('e3'), gen_random_uuid(), pg_temp.id('e1')])$$,
  $$values (pg_temp.id('e2'), true, 'e1', '+111'), (pg_temp.id('e1'), false, null, null)$$,
  'get_backup_info: in the order asked, other teams and unknown ids omitted');
select is((select count(*)::int from public.get_backup_info(
            array(select gen_random_uuid() from generate_series(1, 4998)) || array[pg_temp.id('e1'), pg_temp.id('e2')])),
  2, 'get_backup_info answers 5,000 ids in one call');
select tests.clear_authentication();
select is((select count(*)::int from public.prospects_handled_as_backup(array['20000000-0000-0000-0000-000000000002']::uuid[])
           where handled_as_backup), 0, 'for the executive themselves, their own prospect is not handled as backup');

select throws_ok($$select wa.assign_backup(pg_temp.id('e1'), pg_temp.id('e1'), pg_temp.id('e1'))$$, 'P0409',
  'an executive cannot be their own backup', 'self-backup is refused');
select throws_ok($$select wa.assign_backup(pg_temp.id('c1'), pg_temp.id('e1'), pg_temp.id('e2'))$$, 'P0409',
  null, 'a cycle (e1 backs up e2, e2 would back up e1) is refused');
select throws_ok($$select wa.assign_backup(pg_temp.id('admin'), pg_temp.id('c1'), pg_temp.id('e2'))$$, 'P0409',
  null, 'a chain (the backup is away themselves) is refused');
select throws_ok($$select wa.assign_backup(pg_temp.id('c1'), pg_temp.id('e1'), pg_temp.id('e3'))$$, 'P0409',
  'the backup must be from the executive''s team', 'a coordinator cannot pick a backup from another team');
select throws_ok($$select wa.assign_backup(pg_temp.id('c2'), pg_temp.id('e1'), pg_temp.id('e3'))$$, 'PT403',
  'you may not manage user ' || pg_temp.id('e1'), 'a coordinator cannot touch another team''s executive');
select throws_ok($$select wa.assign_backup(pg_temp.id('e3'), pg_temp.id('e1'), pg_temp.id('c2'))$$, 'PT403', null,
  'an executive cannot assign someone else''s backup');
select throws_ok($$select wa.assign_backup(pg_temp.id('e3'), pg_temp.id('e3'), pg_temp.id('e2'))$$, 'P0409', null,
  'an executive cannot pick a backup from another team');
select throws_ok($$select wa.assign_backup(pg_temp.id('admin'), gen_random_uuid(), pg_temp.id('e2'))$$, 'PT404',
  null, 'an unknown executive is PT404');
update public.profiles set active = false where id = pg_temp.id('sneaky');
select throws_ok($$select wa.assign_backup(pg_temp.id('c2'), pg_temp.id('e3'), pg_temp.id('sneaky'))$$, 'P0409',
  'deactivated users can neither have nor be a backup', 'a deactivated user cannot be a backup');
select throws_ok($$select wa.assign_backup(pg_temp.id('sneaky'), pg_temp.id('sneaky'), pg_temp.id('e3'))$$, 'PT403',
  'the caller has no active profile', 'and a deactivated user cannot act');
select is((wa.assign_backup(pg_temp.id('admin'), pg_temp.id('e3'), pg_temp.id('c1')) ->> 'backup_id')::uuid,
  pg_temp.id('c1'), 'an admin may assign across teams');

select is((wa.remove_backup(pg_temp.id('c1'), pg_temp.id('e2')) ->> 'phone'), '+112',
  'removing the backup restores the original phone');
select results_eq($$select backup_id, original_phone from public.profiles where id = pg_temp.id('e2')$$,
  $$values (null::uuid, null::text)$$, 'and clears backup and original phone');
select is((wa.remove_backup(pg_temp.id('c1'), pg_temp.id('e2')) ->> 'phone'), '+112', 'removing again is a no-op');
select is((select count(*)::int from wa.profile_audit where target_id = pg_temp.id('e2')), 2,
  'assign and remove are audited once each');
select is(pg_temp.visible('e1'), 'conversations=1 messages=1 prospects=1 contacts=1 profiles=3 teams=1',
  'the former backup no longer reads the executive''s work');

-- ---------------------------------------------------------------------------------------------
-- update_profile
-- ---------------------------------------------------------------------------------------------
select is(wa.update_profile(pg_temp.id('e1'), pg_temp.id('e1'), '{"full_name":"Eve One","phone":"+119"}') ->> 'phone',
  '+119', 'users change their own name and phone');
select throws_ok($$select wa.update_profile(pg_temp.id('e1'), pg_temp.id('e1'), '{"role":"admin"}')$$, 'PT403',
  'you may not change role', 'but not their own role');
select throws_ok($$select wa.update_profile(pg_temp.id('c1'), pg_temp.id('e1'), '{"team_id":null}')$$, 'PT403',
  'you may not change team_id', 'coordinators cannot move people between teams');
select is(wa.update_profile(pg_temp.id('c1'), pg_temp.id('e2'), '{"active":false}') ->> 'active', 'false',
  'coordinators deactivate their team''s executives');
select throws_ok($$select wa.update_profile(pg_temp.id('c1'), pg_temp.id('e3'), '{"active":false}')$$, 'PT403',
  null, 'but not another team''s');
select is(wa.update_profile(pg_temp.id('admin'), pg_temp.id('e3'), '{"role":"coordinator"}') ->> 'role',
  'coordinator', 'admins change roles');
select throws_ok($$select wa.update_profile(pg_temp.id('admin'), pg_temp.id('e3'), '{"role":"owner"}')$$, '22023',
  'unknown role owner', 'an unknown role is refused');
select throws_ok($$select wa.update_profile(pg_temp.id('admin'), pg_temp.id('e3'),
                                            '{"team_id":"30000000-0000-0000-0000-000000000000"}')$$, 'PT404',
  null, 'an unknown team is PT404');

select * from finish();
rollback;
