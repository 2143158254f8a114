-- RLS must not cost a check per row: an executive's conversation list over 10,000 conversations is planned
-- with indexes, the authorization helpers evaluated once (InitPlan), never per row (SubPlan).
begin;
select plan(4);

insert into public.teams (id, name) values ('10000000-0000-0000-0000-0000000000aa', 'Big team');
create temp table execs as
  select tests.create_user('exec' || n || '@perf.test', 'executive', '10000000-0000-0000-0000-0000000000aa') as id, n
  from generate_series(0, 99) n;
grant select on execs to authenticated;
insert into wa.phone_numbers (phone_number_id) values ('PERF');
insert into public.contacts (wa_id) select '52199' || lpad(n::text, 8, '0') from generate_series(1, 10000) n;
insert into public.conversations (phone_number_id, contact_id, assigned_executive_id, team_id, last_message_at)
select 'PERF', k.id, e.id, '10000000-0000-0000-0000-0000000000aa', now() - k.n * interval '1 minute'
from (select id, row_number() over () as n from public.contacts where wa_id like '52199%') k
join execs e on e.n = k.n % 100;
analyze public.conversations;
analyze public.profiles;

create function pg_temp.plan_of(p_query text) returns text language plpgsql as $$
declare
  v_plan text;
begin
  execute 'explain (format json) ' || p_query into v_plan;
  return v_plan;
end;
$$;
grant execute on function pg_temp.plan_of(text) to authenticated;

select tests.authenticate_as((select id from execs where n = 7));
create temp table plans as
  select pg_temp.plan_of('select id, last_message_at from public.conversations order by last_message_at desc limit 50')
    as list,
         pg_temp.plan_of('select id from public.conversations where contact_id is not null') as everything;
select is((select count(*)::int from public.conversations where phone_number_id = 'PERF'), 100,
  'the executive sees their 100 of 10,000 conversations');
select tests.clear_authentication();

select ok((select list not like '%"Seq Scan"%' and everything not like '%"Seq Scan"%' from plans),
  'neither the inbox page nor the full list scans the table sequentially');
select ok((select everything like '%conversations_assigned_executive_id_idx%' from plans),
  'the assigned executive index answers the policy');
select ok((select list not like '%SubPlan%' and everything not like '%SubPlan%' from plans),
  'the authorization helpers run once per query (InitPlan), never per row (SubPlan)');

select * from finish();
rollback;
