-- Demo data for `npm start`: a team, its people and a prospect. Fixed ids so the README's commands work;
-- idempotent (the CLI applies a seed file once, and `npm run db:reset` starts over).
insert into public.teams (id, name) values ('d0000000-0000-4000-8000-000000000001', 'Ventas Norte')
on conflict do nothing;

-- Every demo user signs in with WABASE_DEMO_PASSWORD of supabase/.env.local (a test signs in with that value,
-- so the two cannot drift); bcrypt at GoTrue's cost of 10, as GoTrue stores it.
insert into auth.users (instance_id, id, aud, role, email, encrypted_password, raw_app_meta_data,
                        raw_user_meta_data, created_at, updated_at, email_confirmed_at, confirmation_token,
                        recovery_token, email_change_token_new, email_change)
select '00000000-0000-0000-0000-000000000000', id::uuid, 'authenticated', 'authenticated', email,
       extensions.crypt('wabase-demo-password', extensions.gen_salt('bf', 10)),
       '{"provider":"email","providers":["email"]}', '{}', now(), now(), now(), '', '', '', ''
from (values ('d0000000-0000-4000-8000-0000000000a1', 'admin@demo.wabase.local'),
             ('d0000000-0000-4000-8000-0000000000c1', 'coordinacion@demo.wabase.local'),
             ('d0000000-0000-4000-8000-0000000000e1', 'ana@demo.wabase.local'),
             ('d0000000-0000-4000-8000-0000000000e2', 'beto@demo.wabase.local')) as demo (id, email)
-- A database seeded before demo users had passwords gets them on its next start.
on conflict (id) do update set encrypted_password = excluded.encrypted_password
where auth.users.encrypted_password is null;

-- The auth.users trigger created least-privilege profiles; give them their roles, team and phones.
update public.profiles p
set role = demo.role, team_id = 'd0000000-0000-4000-8000-000000000001', full_name = demo.full_name,
    phone = demo.phone
from (values ('d0000000-0000-4000-8000-0000000000a1', 'admin', 'Admin Demo', '+5215550000001'),
             ('d0000000-0000-4000-8000-0000000000c1', 'coordinator', 'Carla Coordinadora', '+5215550000002'),
             ('d0000000-0000-4000-8000-0000000000e1', 'executive', 'Ana Ejecutiva', '+5215550000003'),
             ('d0000000-0000-4000-8000-0000000000e2', 'executive', 'Beto Ejecutivo', '+5215550000004'))
  as demo (id, role, full_name, phone)
where p.id = demo.id::uuid;

insert into public.prospects (id, team_id, executive_id, name, phone)
values ('d0000000-0000-4000-8000-0000000000f1', 'd0000000-0000-4000-8000-000000000001',
        'd0000000-0000-4000-8000-0000000000e1', 'Sheena Nelson', '+16505551234')
on conflict do nothing;

-- Ana's first conversation: the customer and business number the printed demo webhook uses, so her inbox
-- (`rpc("list_conversations")`) has a row right after `npm start` and the demo message lands in it.
insert into wa.phone_numbers (phone_number_id, waba_id, display_phone_number)
values ('106540352242922', '102290129340398', '15550783881')
on conflict do nothing;

insert into public.contacts (wa_id, profile_name) values ('16505551234', 'Sheena Nelson')
on conflict do nothing;

-- Other customers of the demo number go round robin to Ana and Beto (docs/routing.md).
insert into wa.routing_rules (phone_number_id, team_id, strategy)
values ('106540352242922', 'd0000000-0000-4000-8000-000000000001', 'round_robin')
on conflict do nothing;

-- No owner given: routing finds Sheena's prospect by her phone and gives the conversation to Ana.
insert into public.conversations (phone_number_id, contact_id, last_message_at, last_inbound_at)
select '106540352242922', k.id, now(), now()
from public.contacts k where k.wa_id = '16505551234'
on conflict do nothing;

insert into public.messages (conversation_id, wamid, direction, type, body, content_text, sent_at)
select c.id, 'wamid.demo-seed-0001', 'inbound', 'text',
       '{"from":"16505551234","id":"wamid.demo-seed-0001","type":"text","text":{"body":"Hola, ¿siguen abiertos?"}}',
       'Hola, ¿siguen abiertos?', now()
from public.conversations c join public.contacts k on k.id = c.contact_id
where c.phone_number_id = '106540352242922' and k.wa_id = '16505551234'
on conflict do nothing;

update public.prospects p set contact_id = k.id
from public.contacts k
where p.id = 'd0000000-0000-4000-8000-0000000000f1' and p.contact_id is null and k.wa_id = '16505551234';
