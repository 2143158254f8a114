-- Stand-in for Supabase Vault (supabase_vault 0.3), implementing exactly the subset wabase uses: the
-- vault.secrets table, the vault.decrypted_secrets view and vault.create_secret / vault.update_secret with
-- their hosted signatures and grants (postgres only). Source: supabase/vault, sql/supabase_vault--0.3.0.sql,
-- and the image's 20221207154255_create_vault.sql (the design's PLATFORM.md 5.3). Unlike Vault it stores
-- the secret in plain text (secret = decrypted_secret): local secrets only, never real ones. Applied by the
-- bootstrap superuser after local/platform.sql. Idempotent.

\set ON_ERROR_STOP on
set client_min_messages = error;

create schema if not exists vault authorization supabase_admin;
grant usage on schema vault to postgres with grant option;

create table if not exists vault.secrets (
  id uuid primary key default gen_random_uuid(),
  name text,
  description text not null default '',
  secret text not null,
  key_id uuid,
  nonce bytea,
  created_at timestamptz not null default current_timestamp,
  updated_at timestamptz not null default current_timestamp
);
create unique index if not exists secrets_name_idx on vault.secrets (name) where name is not null;

create or replace view vault.decrypted_secrets as
select s.id, s.name, s.description, s.secret, s.secret as decrypted_secret, s.key_id, s.nonce, s.created_at,
       s.updated_at
from vault.secrets s;

create or replace function vault.create_secret(
  new_secret text, new_name text default null, new_description text default '', new_key_id uuid default null
)
returns uuid
language sql
security definer
set search_path = ''
as $$
  insert into vault.secrets (secret, name, description, key_id)
  values (new_secret, new_name, new_description, new_key_id)
  returning id
$$;

create or replace function vault.update_secret(
  secret_id uuid, new_secret text default null, new_name text default null, new_description text default null,
  new_key_id uuid default null
)
returns void
language sql
security definer
set search_path = ''
as $$
  update vault.secrets s
  set secret = coalesce(new_secret, s.secret), name = coalesce(new_name, s.name),
      description = coalesce(new_description, s.description), key_id = coalesce(new_key_id, s.key_id),
      updated_at = now()
  where s.id = secret_id
$$;

revoke all on function vault.create_secret(text, text, text, uuid), vault.update_secret(uuid, text, text, text, uuid)
  from public;
grant execute on function vault.create_secret(text, text, text, uuid), vault.update_secret(uuid, text, text, text, uuid)
  to postgres with grant option;
grant select, delete on vault.secrets, vault.decrypted_secrets to postgres with grant option;
