-- wabase foundation: privileges baseline, the internal schema `wa`, and the event counts operations reads.

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
-- Event counts for operations (public.ops_metrics): insert-only, so counting never makes concurrent
-- workers queue on a shared counter row. Here because the capabilities that follow each count their own.
-- ============================================================================================
create table wa.ops_events (
  at timestamptz not null default now(),
  kind text not null check (kind in ('claim', 'completion', 'duplicate', 'rate_limited')),
  n integer not null default 1 check (n > 0)
);
create index ops_events_at_idx on wa.ops_events (at);
comment on table wa.ops_events is
  'Counts behind the per-minute figures of ops_metrics: batches claimed and completed, duplicate deliveries '
  'suppressed, requests refused by a rate limit. One row per statement that did any, never updated.';
revoke all on table wa.ops_events from public, anon, authenticated, service_role;
