-- Guards that keep every migration honest. Each guard is a view listing violations; the test first plants
-- one violation of each kind and checks the guard sees it (so a guard cannot silently rot into a query that
-- finds nothing), then rolls the plants back and checks the real schema has none.
begin;
select plan(12);

-- Our schemas: the ones the migration role owns (plus public), minus platform and tooling schemas.
create temp view our_schemas as
select n.oid, n.nspname
from pg_namespace n
where (pg_get_userbyid(n.nspowner) = 'postgres' or n.nspname = 'public')
  and n.nspname not in ('extensions', 'supabase_migrations');

create temp view guard_tables_without_rls as
select c.oid::regclass::text as name
from pg_class c
where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p') and not c.relrowsecurity;

create temp view guard_definer_without_empty_search_path as
select p.oid::regprocedure::text as name
from pg_proc p join our_schemas s on s.oid = p.pronamespace
where p.prosecdef and not coalesce('search_path=""' = any (p.proconfig), false);

create temp view guard_definer_callable_by_anon as
select p.oid::regprocedure::text as name
from pg_proc p join our_schemas s on s.oid = p.pronamespace
where p.prosecdef and has_function_privilege('anon', p.oid, 'execute');

create temp view guard_internal_functions_callable_by_api as
select p.oid::regprocedure::text || ' by ' || r.rolname as name
from pg_proc p cross join (values ('anon'), ('authenticated')) as r (rolname)
where p.pronamespace = 'wa'::regnamespace and has_function_privilege(r.rolname, p.oid, 'execute');

create temp view guard_public_objects_granted_to_anon as
select c.oid::regclass::text as name
from pg_class c
where c.relnamespace = 'public'::regnamespace
  and (has_table_privilege('anon', c.oid, 'select, insert, update, delete, truncate, references, trigger'))
union all
select p.oid::regprocedure::text
from pg_proc p
where p.pronamespace = 'public'::regnamespace and has_function_privilege('anon', p.oid, 'execute');

-- ---------------------------------------------------------------------------------------------
-- The guards see planted violations (new objects also prove the default privileges: the plain
-- `create` statements below grant nothing to anon on their own).
-- ---------------------------------------------------------------------------------------------
savepoint plants;
create table public.guard_plant_no_rls (id int);
create function wa.guard_plant_definer() returns int language sql security definer as 'select 1';
create function public.guard_plant_definer_pinned() returns int language sql security definer
  set search_path = '' as 'select 1';
grant execute on function public.guard_plant_definer_pinned() to anon;
create function wa.guard_plant_internal() returns int language sql as 'select 1';
grant execute on function wa.guard_plant_internal() to authenticated;

select results_eq('select name from guard_tables_without_rls',
  array['guard_plant_no_rls'], 'RLS guard finds a public table without RLS');
select results_eq('select name from guard_definer_without_empty_search_path',
  array['wa.guard_plant_definer()'], 'search_path guard finds a definer function without search_path = ''''');
select results_eq('select name from guard_definer_callable_by_anon',
  array['guard_plant_definer_pinned()'], 'anon guard finds a definer function granted to anon');
select results_eq('select name from guard_internal_functions_callable_by_api',
  array['wa.guard_plant_internal() by authenticated'], 'internal guard finds a wa function granted to an API role');
select results_eq('select name from guard_public_objects_granted_to_anon',
  array['guard_plant_definer_pinned()'], 'public grant guard finds an explicit grant to anon');
create function public.guard_plant_plain() returns int language sql as 'select 1';
select ok(
  not exists (select from aclexplode((select proacl from pg_proc where oid = 'public.guard_plant_plain()'::regprocedure))
              where grantee = 0)
  and not has_function_privilege('authenticated', 'public.guard_plant_plain()', 'execute')
  and not has_function_privilege('service_role', 'public.guard_plant_plain()', 'execute')
  and not has_table_privilege('authenticated', 'public.guard_plant_no_rls', 'select, insert, update, delete, truncate')
  and not has_table_privilege('service_role', 'public.guard_plant_no_rls', 'select, insert, update, delete, truncate'),
  'new public functions and tables grant nothing to PUBLIC or the API roles until granted');
rollback to savepoint plants;

-- ---------------------------------------------------------------------------------------------
-- The real schema is clean.
-- ---------------------------------------------------------------------------------------------
select is_empty('select name from guard_tables_without_rls', 'every table in public has RLS enabled');
select is_empty('select name from guard_definer_without_empty_search_path',
  'every security definer function sets search_path = ''''');
select is_empty('select name from guard_definer_callable_by_anon',
  'no security definer function is executable by anon');
select is_empty('select name from guard_internal_functions_callable_by_api',
  'no function in wa is executable by anon or authenticated');
select is_empty('select name from guard_public_objects_granted_to_anon', 'public grants nothing to anon');
select ok(not has_schema_privilege('anon', 'wa', 'usage') and not has_schema_privilege('authenticated', 'wa', 'usage'),
  'the internal schema is not usable by the API roles');

select * from finish();
rollback;
