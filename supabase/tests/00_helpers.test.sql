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

select plan(4);
select has_function('tests', 'webhook', array['jsonb'], 'tests.webhook exists');
select has_function('tests', 'change', array['jsonb', 'text'], 'tests.change exists');
select has_function('tests', 'msg', array['text', 'text', 'jsonb', 'text', 'bigint'], 'tests.msg exists');
select has_function('tests', 'contact', array['text', 'text', 'text'], 'tests.contact exists');
select * from finish();
commit;
