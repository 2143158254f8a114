-- wabase foundation: privileges baseline, the internal schema `wa`, and the health probe.

-- ============================================================================================
-- Privileges baseline
-- ============================================================================================
-- pg_cron lives in the `postgres` database (Supabase: Database > Extensions); a no-op where it exists.
create extension if not exists pg_cron with schema pg_catalog;

-- Nothing becomes callable or readable by the API roles by accident: every function, table and sequence
-- gets its grants explicitly in the migration that creates it. The global form is the one that removes
-- PUBLIC's default EXECUTE (a per-schema revoke cannot subtract from the global default).
alter default privileges for role postgres revoke execute on functions from public;
alter default privileges for role postgres in schema public
  revoke all on tables from anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  revoke all on sequences from anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  revoke all on functions from anon, authenticated, service_role;

-- ============================================================================================
-- Internal schema: buffers, receipts, raw events, limits. Not exposed through the Data API; reached only
-- by the Edge Functions' service connection (SUPABASE_DB_URL, role postgres).
-- ============================================================================================
create schema if not exists wa;
revoke all on schema wa from public;
comment on schema wa is 'wabase internals; never exposed through the Data API.';

-- ============================================================================================
-- Health probe
-- ============================================================================================
create or replace function wa.health()
returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_build_object(
    'database', true,
    'server_time', now(),
    'pg_cron', (select jsonb_build_object('installed', true, 'version', e.extversion)
                from pg_catalog.pg_extension e where e.extname = 'pg_cron'),
    'migration_version', (select max(m.version) from supabase_migrations.schema_migrations m)
  )
$$;
comment on function wa.health() is
  'Health facts for the health Edge Function: server time, pg_cron presence and version (null when absent), '
  'and the latest applied migration version. Caller: service connection only.';
revoke all on function wa.health() from public, anon, authenticated, service_role;
