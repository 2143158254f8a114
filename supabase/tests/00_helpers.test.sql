-- Shared pgTAP helpers: Cloud API payload builders in schema `tests`, created (and committed) before the
-- topic files run. Test databases only: nothing here is part of a migration.
begin;
create schema if not exists tests;
revoke all on schema tests from public;

create or replace function tests.webhook(p_changes jsonb) returns jsonb language sql immutable as $$
  select jsonb_build_object('object', 'whatsapp_business_account',
                            'entry', jsonb_build_array(jsonb_build_object('id', 'WABA1', 'changes', p_changes)))
$$;
comment on function tests.webhook(jsonb) is 'A webhook POST body for WABA1 holding p_changes.';

create or replace function tests.change(p_value jsonb, p_phone text default 'PN1') returns jsonb
language sql immutable as $$
  select jsonb_build_array(jsonb_build_object('field', 'messages', 'value',
    jsonb_build_object('messaging_product', 'whatsapp',
                       'metadata', jsonb_build_object('display_phone_number', '15550001', 'phone_number_id', p_phone))
    || p_value))
$$;
comment on function tests.change(jsonb, text) is 'A one-element changes array: a messages change on p_phone.';

create or replace function tests.msg(p_wamid text, p_type text, p_object jsonb, p_from text default '5215500000001',
                                     p_ts bigint default 1767225600) returns jsonb language sql immutable as $$
  select jsonb_strip_nulls(jsonb_build_object('from', p_from, 'id', p_wamid, 'timestamp', p_ts::text,
                                              'type', p_type, p_type, p_object))
$$;
comment on function tests.msg(text, text, jsonb, text, bigint) is 'An inbound message of p_type carrying p_object.';

create or replace function tests.contact(p_wa_id text, p_name text, p_user_id text default null) returns jsonb
language sql immutable as $$
  select jsonb_strip_nulls(jsonb_build_object('wa_id', p_wa_id, 'user_id', p_user_id,
                                              'profile', jsonb_build_object('name', p_name)))
$$;
comment on function tests.contact(text, text, text) is 'A contacts[] entry (wa_id and/or BSUID).';

-- Impersonation exactly as PostgREST does it: transaction-local role and request.jwt.claims.
create or replace function tests.authenticate_as(p_user_id uuid) returns void language plpgsql as $$
declare
  v_email text;
begin
  -- Back to the test's own role first, so switching from one impersonated user to another works.
  perform set_config('role', 'postgres', true);
  select u.email into v_email from auth.users u where u.id = p_user_id;
  perform set_config('request.jwt.claims', jsonb_build_object(
    'sub', p_user_id, 'role', 'authenticated', 'aud', 'authenticated', 'email', v_email)::text, true);
  perform set_config('role', 'authenticated', true);
end;
$$;
comment on function tests.authenticate_as(uuid) is 'Acts as that signed-in user until tests.clear_authentication().';

create or replace function tests.clear_authentication() returns void language sql as $$
  select set_config('role', 'postgres', true), set_config('request.jwt.claims', '', true)
$$;
comment on function tests.clear_authentication() is 'Back to the postgres role, as the test started.';

create or replace function tests.create_user(p_email text, p_role text default 'executive',
                                             p_team_id uuid default null, p_phone text default null,
                                             p_user_metadata jsonb default '{}') returns uuid
language plpgsql as $$
declare
  v_id uuid := gen_random_uuid();
begin
  insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at,
                          updated_at, confirmation_token, recovery_token, email_change_token_new, email_change)
  values ('00000000-0000-0000-0000-000000000000', v_id, 'authenticated', 'authenticated', p_email,
          '{"provider":"email","providers":["email"]}', p_user_metadata, now(), now(), '', '', '', '');
  update public.profiles set role = p_role, team_id = p_team_id, phone = p_phone, full_name = split_part(p_email, '@', 1)
  where id = v_id;
  return v_id;
end;
$$;
comment on function tests.create_user(text, text, uuid, text, jsonb) is
  'A user as GoTrue would insert it (the profile comes from the auth.users trigger), then given a role and team.';

-- Impersonated tests call these too (and the builders), so the API roles may use them in test databases.
grant usage on schema tests to anon, authenticated;
grant execute on all functions in schema tests to anon, authenticated;

select plan(7);
select has_function('tests', 'webhook', array['jsonb'], 'tests.webhook exists');
select has_function('tests', 'change', array['jsonb', 'text'], 'tests.change exists');
select has_function('tests', 'msg', array['text', 'text', 'jsonb', 'text', 'bigint'], 'tests.msg exists');
select has_function('tests', 'contact', array['text', 'text', 'text'], 'tests.contact exists');
select has_function('tests', 'authenticate_as', array['uuid'], 'tests.authenticate_as exists');
select has_function('tests', 'clear_authentication', 'tests.clear_authentication exists');
select has_function('tests', 'create_user', array['text', 'text', 'uuid', 'text', 'jsonb'], 'tests.create_user exists');
select * from finish();
commit;
