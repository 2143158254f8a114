-- Edges of the team rules: a user without a team belongs to no team (no backup to or from them, a coordinator
-- without a team manages nobody).
begin;
select plan(13);

insert into public.teams (id, name) values ('15000000-0000-0000-0000-000000000001', 'E1');
create temp table u (name text primary key, id uuid not null);
grant select on u to authenticated;
insert into u values
  -- As every sign-up starts: an executive without a team.
  ('newcomer', tests.create_user('newcomer@x.test', 'executive', null, null)),
  ('admin', tests.create_user('edge-admin@x.test', 'admin', null, '+1500')),
  ('lone_coordinator', tests.create_user('lone-c@x.test', 'coordinator', null, '+1501')),
  ('lone_executive', tests.create_user('lone-e@x.test', 'executive', null, '+1502')),
  ('e1', tests.create_user('edge-e1@x.test', 'executive', '15000000-0000-0000-0000-000000000001', '+1511')),
  ('e2', tests.create_user('edge-e2@x.test', 'executive', '15000000-0000-0000-0000-000000000001', '+1512'));
create function pg_temp.id(p_name text) returns uuid language sql stable as $$ select id from u where name = p_name $$;
grant execute on function pg_temp.id(text) to authenticated;

-- ---------------------------------------------------------------------------------------------
-- No backup to or from a user without a team
-- ---------------------------------------------------------------------------------------------
select throws_ok($$select wa.assign_backup(pg_temp.id('newcomer'), pg_temp.id('newcomer'), pg_temp.id('admin'))$$,
  'P0409', 'a user without a team can neither have nor be a backup',
  'a new user cannot take a team-less admin as their backup');
select is((select phone from public.profiles where id = pg_temp.id('newcomer')), null,
  'and does not get the admin''s phone');
select throws_ok($$select wa.assign_backup(pg_temp.id('lone_executive'), pg_temp.id('lone_executive'),
                                           pg_temp.id('newcomer'))$$,
  'P0409', 'a user without a team can neither have nor be a backup',
  'two team-less executives are not one team');
select throws_ok($$select wa.assign_backup(pg_temp.id('admin'), pg_temp.id('e1'), pg_temp.id('lone_executive'))$$,
  'P0409', 'a user without a team can neither have nor be a backup',
  'not even an admin makes a team-less user someone''s backup');
select throws_ok($$select wa.assign_backup(pg_temp.id('admin'), pg_temp.id('lone_executive'), pg_temp.id('e1'))$$,
  'P0409', 'a user without a team can neither have nor be a backup',
  'nor gives a team-less user a backup');
select is((wa.assign_backup(pg_temp.id('e1'), pg_temp.id('e1'), pg_temp.id('e2')) ->> 'phone'), '+1512',
  'within a team a backup still works');

-- Taking the team away from someone in a backup would leave a backup without a team.
select throws_ok($$select wa.update_profile(pg_temp.id('admin'), pg_temp.id('e1'), '{"team_id":null}')$$,
  'P0409', 'a user without a team can neither have nor be a backup',
  'the team of an executive who has a backup cannot be taken away');
select throws_ok($$select wa.update_profile(pg_temp.id('admin'), pg_temp.id('e2'), '{"team_id":null}')$$,
  'P0409', 'a user without a team can neither have nor be a backup',
  'nor the team of their backup');
select is((wa.update_profile(pg_temp.id('admin'), pg_temp.id('lone_executive'),
                             '{"team_id":"15000000-0000-0000-0000-000000000001"}') ->> 'team_id')::uuid,
  '15000000-0000-0000-0000-000000000001'::uuid, 'an admin still moves people into and out of teams');

-- ---------------------------------------------------------------------------------------------
-- A coordinator without a team manages nobody
-- ---------------------------------------------------------------------------------------------
select throws_ok($$select wa.update_profile(pg_temp.id('lone_coordinator'), pg_temp.id('newcomer'),
                                            '{"active":false}')$$,
  'PT403', 'you may not manage user ' || pg_temp.id('newcomer'),
  'a team-less coordinator cannot deactivate a team-less executive');
select throws_ok($$select wa.remove_backup(pg_temp.id('lone_coordinator'), pg_temp.id('newcomer'))$$,
  'PT403', 'you may not manage user ' || pg_temp.id('newcomer'), 'nor manage their backup');
select is(authz.visible_executives_of(pg_temp.id('lone_coordinator')), array[pg_temp.id('lone_coordinator')],
  'and sees no one''s work but their own');
select tests.authenticate_as(pg_temp.id('lone_coordinator'));
select is((select array_agg(id) from public.profiles), array[pg_temp.id('lone_coordinator')],
  'nor any other profile');
select tests.clear_authentication();

select * from finish();
rollback;
