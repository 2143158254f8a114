-- Stand-in for pg_net, implementing exactly the subset wabase uses: the `net` schema with net.http_post and
-- net.http_get (pg_net's signatures and defaults: timeout 5000 ms since 0.8, POST bodies JSON only), the
-- net.http_request_queue and net._http_response tables (unlogged, as in pg_net) and nothing else. Source:
-- supabase/pg_net, sql/pg_net.sql and its upgrade scripts (see also the design's PLATFORM.md 5.2). pg_net's
-- background worker is local/pg-net/sender.ts: like it, it sends only what committed, asynchronously, and
-- records each answer in net._http_response. pg_net is not packaged for Debian, hence this file; applied by
-- the bootstrap superuser after local/platform.sql, so `net` belongs to the platform here as on hosted.
-- Idempotent.

\set ON_ERROR_STOP on
set client_min_messages = error;

create schema if not exists net authorization supabase_admin;
grant usage on schema net to postgres, anon, authenticated, service_role;

create unlogged table if not exists net.http_request_queue (
  id bigserial primary key,
  method text not null check (method in ('GET', 'POST', 'DELETE')),
  url text not null,
  headers jsonb not null,
  body bytea,
  timeout_milliseconds integer not null
);

create unlogged table if not exists net._http_response (
  id bigint,
  status_code integer,
  content_type text,
  headers jsonb,
  content text,
  timed_out boolean,
  error_msg text,
  created timestamptz not null default now()
);
create index if not exists _http_response_created_idx on net._http_response (created);

-- The sender LISTENs on this channel: a NOTIFY is delivered at commit, never for a rolled-back transaction,
-- which is when pg_net's worker would see the row.
create or replace function net._notify_sender()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  perform pg_notify('wabase_pg_net', '');
  return null;
end;
$$;
drop trigger if exists notify_sender on net.http_request_queue;
create trigger notify_sender after insert on net.http_request_queue
  for each statement execute function net._notify_sender();

-- wabase sends no query parameters: the stand-in refuses them rather than encode them half right.
create or replace function net._url_with_params(url text, params jsonb)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  if params is not null and params <> '{}'::jsonb then
    raise exception 'the local pg_net stand-in does not support params' using errcode = '0A000';
  end if;
  return url;
end;
$$;

create or replace function net.http_get(
  url text,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{}'::jsonb,
  timeout_milliseconds integer default 5000
)
returns bigint
language sql
volatile
set search_path = ''
as $$
  insert into net.http_request_queue (method, url, headers, timeout_milliseconds)
  values ('GET', net._url_with_params(url, params), coalesce(headers, '{}'::jsonb), timeout_milliseconds)
  returning id
$$;

create or replace function net.http_post(
  url text,
  body jsonb default '{}'::jsonb,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
  timeout_milliseconds integer default 5000
)
returns bigint
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_content_type text;
  v_id bigint;
begin
  select h.value into v_content_type from jsonb_each_text(coalesce(headers, '{}'::jsonb)) h
  where lower(h.key) = 'content-type' limit 1;
  if v_content_type is null then
    headers := coalesce(headers, '{}'::jsonb) || '{"Content-Type": "application/json"}'::jsonb;
  elsif v_content_type <> 'application/json' then
    raise exception 'Content-Type header must be "application/json"';
  end if;
  if body is null then
    raise exception 'body must not be null';
  end if;
  insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
  values ('POST', net._url_with_params(url, params), headers, convert_to(body::text, 'UTF8'), timeout_milliseconds)
  returning id into v_id;
  return v_id;
end;
$$;

-- Grants as after the image's 20250220051611_pg_net_perms_fix: invoker functions, EXECUTE to PUBLIC; postgres reads
-- and clears both tables.
grant execute on function net.http_get(text, jsonb, jsonb, integer), net.http_post(text, jsonb, jsonb, jsonb, integer)
  to public;
grant all on net.http_request_queue, net._http_response to postgres;
grant usage on sequence net.http_request_queue_id_seq to postgres;
-- Callers of net.http_* insert into the queue as themselves.
grant insert on net.http_request_queue to public;
grant usage on sequence net.http_request_queue_id_seq to public;
