-- Demo data for `npm start`: a team, its people and a prospect. Fixed ids so the README's commands work;
-- idempotent (the CLI applies a seed file once, and `npm run db:reset` starts over).
insert into public.teams (id, name) values ('d0000000-0000-4000-8000-000000000001', 'Ventas Norte')
on conflict do nothing;

insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at,
                        updated_at, email_confirmed_at, confirmation_token, recovery_token, email_change_token_new,
                        email_change)
select '00000000-0000-0000-0000-000000000000', id::uuid, 'authenticated', 'authenticated', email,
       '{"provider":"email","providers":["email"]}', '{}', now(), now(), now(), '', '', '', ''
from (values ('d0000000-0000-4000-8000-0000000000a1', 'admin@demo.wabase.local'),
             ('d0000000-0000-4000-8000-0000000000c1', 'coordinacion@demo.wabase.local'),
             ('d0000000-0000-4000-8000-0000000000e1', 'ana@demo.wabase.local'),
             ('d0000000-0000-4000-8000-0000000000e2', 'beto@demo.wabase.local')) as demo (id, email)
on conflict do nothing;

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
