-- The inbox RPC: newest first, keyset pages without gaps or repeats, search by name or number, RLS, and the
-- per-row facts (last message, unread count, backup, bot pause) that spare the UI any follow-up request.
begin;
select plan(14);

insert into public.teams (id, name) values ('10000000-0000-0000-0000-000000000001', 'T1');
create temp table u (name text primary key, id uuid not null);
grant select on u to authenticated;
insert into u values
  ('admin', tests.create_user('admin@inbox.test', 'admin')),
  ('e1', tests.create_user('e1@inbox.test', 'executive', '10000000-0000-0000-0000-000000000001')),
  ('e2', tests.create_user('e2@inbox.test', 'executive', '10000000-0000-0000-0000-000000000001'));
create function pg_temp.id(p_name text) returns uuid language sql stable as $$ select id from u where name = p_name $$;
grant execute on function pg_temp.id(text) to authenticated;

-- Five customers write at 10:00, 10:01, ... on number INBOX; e1 owns the first three, e2 the rest.
select wa.ingest_webhook(tests.webhook(tests.change(jsonb_build_object(
  'contacts', jsonb_build_array(tests.contact('5215511110001', 'Ana Torres'), tests.contact('5215511110002', 'Beto Ruiz'),
                                tests.contact('5215511110003', 'Carla Díaz'), tests.contact('5215511110004', 'Dante Gil'),
                                tests.contact('5215511110005', 'Elena Mora')),
  'messages', (select jsonb_agg(tests.msg('wamid.IB' || n, 'text', jsonb_build_object('body', 'mensaje ' || n),
                                          '521551111000' || n, 1767261600 + n * 60) order by n)
               from generate_series(1, 5) n)), 'INBOX')));
update public.conversations c set assigned_executive_id = pg_temp.id(case when k.wa_id < '5215511110004' then 'e1' else 'e2' end),
                                  team_id = '10000000-0000-0000-0000-000000000001'
from public.contacts k where k.id = c.contact_id and c.phone_number_id = 'INBOX';
create function pg_temp.page(p_user text, p_search text, p_cursor text, p_limit integer)
returns table (name text, cursor text) language plpgsql as $$
begin
  perform tests.authenticate_as(pg_temp.id(p_user));
  return query select l.contact_name, l.cursor from public.list_conversations(p_search, p_cursor, p_limit) l
               where l.conversation_id in (select id from public.conversations where phone_number_id = 'INBOX');
  perform tests.clear_authentication();
end;
$$;

select results_eq($$select name from pg_temp.page('admin', null, null, 200)$$,
  $$values ('Elena Mora'), ('Dante Gil'), ('Carla Díaz'), ('Beto Ruiz'), ('Ana Torres')$$,
  'newest first');
create temp table p1 as select * from pg_temp.page('admin', null, null, 2);
select results_eq($$select name from p1$$, $$values ('Elena Mora'), ('Dante Gil')$$, 'a page of two');
select results_eq($$select name from pg_temp.page('admin', null, (select cursor from p1 offset 1), 2)$$,
  $$values ('Carla Díaz'), ('Beto Ruiz')$$, 'the next page continues after the last row''s cursor, no gap, no repeat');
select results_eq($$select name from pg_temp.page('e1', null, null, 50)$$,
  $$values ('Carla Díaz'), ('Beto Ruiz'), ('Ana Torres')$$, 'an executive lists only what RLS lets them read');
select results_eq($$select name from pg_temp.page('admin', 'carla', null, 50)$$, $$values ('Carla Díaz')$$,
  'search by part of the name, any case');
select results_eq($$select name from pg_temp.page('admin', 'Elena Moora', null, 50)$$, $$values ('Elena Mora')$$,
  'search tolerates a typo (trigram similarity)');
select results_eq($$select name from pg_temp.page('admin', '+52 155 1111 0004', null, 50)$$, $$values ('Dante Gil')$$,
  'search by number, formatting ignored');

select tests.authenticate_as(pg_temp.id('e1'));
select results_eq(
  $$select contact_number, last_message_text, last_message_direction, unread_count, handled_as_backup, bot_paused
    from public.list_conversations(null, null, 1)$$,
  $$values ('5215511110003', 'mensaje 3', 'inbound', 1, false, false)$$,
  'each row carries the number, last message, unread count, backup and pause facts');
select tests.clear_authentication();
select wa.mark_conversation_read(pg_temp.id('e1'), (select c.id from public.conversations c join public.contacts k
                                                     on k.id = c.contact_id where k.wa_id = '5215511110003'));
select wa.assign_backup(pg_temp.id('e2'), pg_temp.id('e2'), pg_temp.id('e1'));
update public.conversations set bot_paused_until = 'infinity'
where contact_id = (select id from public.contacts where wa_id = '5215511110005');
select tests.authenticate_as(pg_temp.id('e1'));
select results_eq($$select contact_number, unread_count, handled_as_backup, bot_paused
                    from public.list_conversations(null, null, 3)$$,
  $$values ('5215511110005', 1, true, true), ('5215511110004', 1, true, false), ('5215511110003', 0, false, false)$$,
  'after a backup assignment the backup sees the covered conversations flagged; read and paused state show');
select throws_ok($$select * from public.list_conversations(null, 'not-a-cursor', 10)$$, '22023', 'invalid cursor',
  'a garbled cursor is refused with 22023');
select throws_ok($$select * from public.list_conversations(null, null, 0)$$, '22023', null,
  'a limit outside 1..200 is refused');
select tests.clear_authentication();
set local role anon;
select throws_ok($$select * from public.list_conversations()$$, '42501', null, 'anon cannot call it');
reset role;
select has_index('public', 'contacts', 'contacts_profile_name_trgm_idx', 'names are trigram-indexed');
select has_index('public', 'conversations', 'conversations_inbox_idx', 'the inbox order is indexed');

select * from finish();
rollback;
