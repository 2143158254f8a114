-- Routing on arrival (prospect, backup, round robin, balanced with capacity, queue, away, no rule), the
-- assignment RPCs (assign, claim, release, close, reopen) with their refusals and audit, deactivation handing
-- conversations back, rule validation, and the inbox's owner/queue/status fields and filters.
begin;
select plan(35);

insert into public.teams (id, name) values ('16000000-0000-0000-0000-000000000001', 'R1'),
                                           ('16000000-0000-0000-0000-000000000002', 'R2');
create temp table u (name text primary key, id uuid not null);
grant select on u to authenticated;
insert into u values
  ('admin', tests.create_user('admin@routing.test', 'admin')),
  ('coord', tests.create_user('coord@routing.test', 'coordinator', '16000000-0000-0000-0000-000000000001')),
  ('coord2', tests.create_user('coord2@routing.test', 'coordinator', '16000000-0000-0000-0000-000000000002')),
  ('ana', tests.create_user('ana@routing.test', 'executive', '16000000-0000-0000-0000-000000000001')),
  ('beto', tests.create_user('beto@routing.test', 'executive', '16000000-0000-0000-0000-000000000001')),
  ('other', tests.create_user('other@routing.test', 'executive', '16000000-0000-0000-0000-000000000002'));
create function pg_temp.id(p_name text) returns uuid language sql stable as $$ select id from u where name = p_name $$;
grant execute on function pg_temp.id(text) to authenticated;
-- The team's executives in round-robin order (by id).
create temp table rr as select name, row_number() over (order by id) as turn from u where name in ('ana', 'beto');
create function pg_temp.nth(p_turn integer) returns text language sql stable as $$
  select name from rr where turn = p_turn $$;
grant select on rr to authenticated;
grant execute on function pg_temp.nth(integer) to authenticated;

insert into public.prospects (team_id, executive_id, name, phone)
values ('16000000-0000-0000-0000-000000000001', pg_temp.id('ana'), 'Prospecta', '+52 1 55 1600 0001');

-- One POST from `p_from` on number `p_number`, as the webhook stores it.
create function pg_temp.arrive(p_number text, p_from text, p_wamid text, p_ts bigint default 1767225600)
returns void language sql as $$
  select wa.ingest_webhook(tests.webhook(tests.change(jsonb_build_object(
    'contacts', jsonb_build_array(tests.contact(p_from, 'Cliente ' || p_from)),
    'messages', jsonb_build_array(tests.msg(p_wamid, 'text', '{"body":"hola"}', p_from, p_ts))), p_number)));
$$;
create function pg_temp.owner(p_number text, p_from text) returns text language sql stable as $$
  select coalesce((select name from u where id = c.assigned_executive_id), 'queue:' || coalesce(t.name, 'none'))
  from public.conversations c join public.contacts k on k.id = c.contact_id
  left join public.teams t on t.id = c.team_id
  where c.phone_number_id = p_number and k.wa_id = p_from $$;
create function pg_temp.conv(p_number text, p_from text) returns uuid language sql stable as $$
  select c.id from public.conversations c join public.contacts k on k.id = c.contact_id
  where c.phone_number_id = p_number and k.wa_id = p_from $$;
grant execute on function pg_temp.conv(text, text) to authenticated;

-- 1. No rule, no prospect: the admins' unassigned queue, as before.
select pg_temp.arrive('R-NONE', '5215516000099', 'wamid.R0');
select is(pg_temp.owner('R-NONE', '5215516000099'), 'queue:none', 'no rule and no prospect: unassigned');

-- 2. The prospect's phone (normalised to E.164) decides, whatever the number's rule.
insert into wa.phone_numbers (phone_number_id) values ('R-RR'), ('R-BAL'), ('R-Q');
insert into wa.routing_rules (phone_number_id, team_id, strategy, capacity)
values ('R-RR', '16000000-0000-0000-0000-000000000001', 'round_robin', null),
       ('R-BAL', '16000000-0000-0000-0000-000000000001', 'balanced', 1),
       ('R-Q', '16000000-0000-0000-0000-000000000001', 'queue', null);
select pg_temp.arrive('R-RR', '5215516000001', 'wamid.R1');
select is(pg_temp.owner('R-RR', '5215516000001'), 'ana', 'the prospect''s executive owns it');
select is((select routed_via from public.conversations where id = pg_temp.conv('R-RR', '5215516000001')), 'prospect',
          'routed by prospect');

-- 3. Round robin: turns in id order, kept across POSTs, several conversations of one POST in order.
select pg_temp.arrive('R-RR', '5215516000011', 'wamid.R11');
select pg_temp.arrive('R-RR', '5215516000012', 'wamid.R12');
select wa.ingest_webhook(tests.webhook(tests.change(jsonb_build_object(
  'contacts', jsonb_build_array(tests.contact('5215516000013', 'c13'), tests.contact('5215516000014', 'c14')),
  'messages', jsonb_build_array(tests.msg('wamid.R13', 'text', '{"body":"a"}', '5215516000013'),
                                tests.msg('wamid.R14', 'text', '{"body":"b"}', '5215516000014'))), 'R-RR')));
-- Within one POST conversations are routed in (number, contact id) order: one each, whichever comes first.
select results_eq($$select pg_temp.owner('R-RR', w) from unnest(array['5215516000011', '5215516000012']) w
                   union all
                   (select pg_temp.owner('R-RR', w) from unnest(array['5215516000013', '5215516000014']) w order by 1)$$,
  $$values (pg_temp.nth(1)), (pg_temp.nth(2)), ('ana'), ('beto')$$,
  'round robin alternates in a stable order, across and within POSTs');

-- 4. Away executives get nothing new routed.
select tests.authenticate_as(pg_temp.id(pg_temp.nth(1)));
select is((public.set_availability(pg_temp.id(pg_temp.nth(1)), true)) ->> 'away', 'true', 'an executive marks themselves away');
select tests.clear_authentication();
select pg_temp.arrive('R-RR', '5215516000015', 'wamid.R15');
select pg_temp.arrive('R-RR', '5215516000016', 'wamid.R16');
select results_eq($$select pg_temp.owner('R-RR', w) from unnest(array['5215516000015', '5215516000016']) w$$,
  $$values (pg_temp.nth(2)), (pg_temp.nth(2))$$, 'the away executive is skipped');
select tests.authenticate_as(pg_temp.id('coord'));
select is((public.set_availability(pg_temp.id(pg_temp.nth(1)), false)) ->> 'away', 'false',
          'their coordinator marks them back');
select throws_ok($$select public.set_availability(pg_temp.id('other'), true)$$, 'PT404', null,
                 'a coordinator cannot mark another team''s executive');
select tests.clear_authentication();

-- 5. Balanced with capacity 1 per executive: fewest open first, then the queue (load counts every number, so
-- everything so far is closed first).
update public.conversations set status = 'closed' where assigned_executive_id in (pg_temp.id('ana'), pg_temp.id('beto'));
select pg_temp.arrive('R-BAL', '5215516000021', 'wamid.R21');
select pg_temp.arrive('R-BAL', '5215516000022', 'wamid.R22');
select pg_temp.arrive('R-BAL', '5215516000023', 'wamid.R23');
select results_eq($$select pg_temp.owner('R-BAL', w) from unnest(array['5215516000021', '5215516000022',
                    '5215516000023']) w order by 1$$,
  $$values ('ana'), ('beto'), ('queue:R1')$$, 'balanced: one each, then the team queue');
select is((select routed_via from public.conversations where id = pg_temp.conv('R-BAL', '5215516000023')), 'queue',
          'queued because everyone is full');

-- 6. The queue strategy: straight to the team queue, which executives of the team see (RLS) and claim.
select pg_temp.arrive('R-Q', '5215516000031', 'wamid.R31');
select is(pg_temp.owner('R-Q', '5215516000031'), 'queue:R1', 'queue strategy: the team''s queue');
create temp table queued as select pg_temp.conv('R-Q', '5215516000031') as id;
grant select on queued to authenticated;
select tests.authenticate_as(pg_temp.id('ana'));
select is((select count(*)::integer from public.conversations where id = pg_temp.conv('R-Q', '5215516000031')), 1,
          'an executive of the team sees the queued conversation');
select results_eq($$select in_queue, status from public.list_conversations(null, null, 200, 'queue')
                   where conversation_id = pg_temp.conv('R-Q', '5215516000031')$$,
  $$values (true, 'open')$$, 'the inbox shows it in the team queue, open');
select tests.clear_authentication();
select tests.authenticate_as(pg_temp.id('coord'));
select is(public.set_executive_capacity(pg_temp.id('ana'), 1) ->> 'capacity', '1', 'the coordinator sets Ana''s capacity');
select tests.clear_authentication();
select tests.authenticate_as(pg_temp.id('ana'));
select throws_ok($$select public.claim_conversation((select id from queued))$$, 'PT409',
                 'you hold 1 open conversations already', 'claiming past her capacity is refused');
select tests.clear_authentication();
select tests.authenticate_as(pg_temp.id('coord'));
select is(public.set_executive_capacity(pg_temp.id('ana'), 5) ->> 'capacity', '5', 'the coordinator raises Ana''s capacity');
select tests.clear_authentication();
select tests.authenticate_as(pg_temp.id('ana'));
select is(public.claim_conversation(pg_temp.conv('R-Q', '5215516000031')) ->> 'assigned_executive_id',
          pg_temp.id('ana')::text, 'Ana claims it');
select tests.clear_authentication();
select tests.authenticate_as(pg_temp.id('beto'));
select throws_ok($$select public.claim_conversation((select id from queued))$$, 'PT409',
                 'the conversation is already assigned', 'a teammate claiming it afterwards gets a conflict');
select tests.clear_authentication();
select tests.authenticate_as(pg_temp.id('other'));
select throws_ok($$select public.claim_conversation(pg_temp.conv('R-BAL', '5215516000023'))$$, 'PT404', null,
                 'another team''s queue is not visible');
select tests.clear_authentication();
select tests.authenticate_as(pg_temp.id('ana'));
select results_eq($$select count(*)::integer from public.list_conversations(null, null, 200, 'mine')
                   where assigned_executive_id is distinct from pg_temp.id('ana')$$,
  $$values (0)$$, 'mine lists only the caller''s');
select tests.clear_authentication();

-- 7. Assign, release, close; a customer message reopens a closed one and routes it again.
select tests.authenticate_as(pg_temp.id('coord'));
select is(public.assign_conversation(pg_temp.conv('R-BAL', '5215516000023'), pg_temp.id('beto')) ->> 'routed_via',
          'assigned', 'the coordinator assigns within the team');
select throws_ok($$select public.assign_conversation(pg_temp.conv('R-BAL', '5215516000023'), pg_temp.id('other'))$$,
                 'PT404', null, 'not to another team''s executive');
select tests.clear_authentication();
select tests.authenticate_as(pg_temp.id('coord2'));
select throws_ok($$select public.assign_conversation(pg_temp.conv('R-BAL', '5215516000023'), pg_temp.id('other'))$$,
                 'PT404', null, 'another team''s coordinator cannot see it');
select tests.clear_authentication();
select tests.authenticate_as(pg_temp.id('ana'));
select throws_ok($$select public.assign_conversation(pg_temp.conv('R-Q', '5215516000031'), pg_temp.id('beto'))$$,
                 'PT403', null, 'executives do not assign');
select is(public.release_conversation(pg_temp.conv('R-Q', '5215516000031')) ->> 'assigned_executive_id', null,
          'Ana releases hers back to the queue');
select is(public.close_conversation(pg_temp.conv('R-RR', '5215516000001')) ->> 'status', 'closed', 'Ana closes one');
select tests.clear_authentication();
select is(wa.open_count(pg_temp.id('ana')), (select count(*)::integer from public.conversations
          where assigned_executive_id = pg_temp.id('ana') and status = 'open'), 'closed ones leave the open count');
select pg_temp.arrive('R-RR', '5215516000001', 'wamid.R1b', 1767229200);
select results_eq($$select status, routed_via, assigned_executive_id from public.conversations
                   where id = pg_temp.conv('R-RR', '5215516000001')$$,
  $$values ('open', 'prospect', pg_temp.id('ana'))$$, 'a new customer message reopens and routes it again');
select is((select count(*)::integer from wa.conversation_audit where actor_id in (pg_temp.id('ana'), pg_temp.id('coord'))
           and action in ('claim_conversation', 'assign_conversation', 'release_conversation', 'close_conversation')), 4,
          'assignments are audited');

-- 8. Deactivation hands open conversations back to the team queue.
update public.profiles set active = false where id = pg_temp.id('beto');
select is((select count(*)::integer from public.conversations where assigned_executive_id = pg_temp.id('beto')
           and status = 'open'), 0, 'a deactivated executive holds nothing open');
select is((select routed_via from public.conversations where id = pg_temp.conv('R-BAL', '5215516000023')),
          'deactivated', 'their conversations wait in the team queue');

-- 9. Rules: validation and who may edit them.
select tests.authenticate_as(pg_temp.id('coord'));
select throws_ok($$select public.set_routing_rule('R-Q', '16000000-0000-0000-0000-000000000001', 'random')$$,
                 'PT422', 'strategy must be round_robin, balanced or queue', 'an unknown strategy is refused');
select throws_ok($$select public.set_routing_rule('R-Q', '16000000-0000-0000-0000-000000000001', 'balanced', 0)$$,
                 'PT422', null, 'a capacity below 1 is refused');
select throws_ok($$select public.set_routing_rule('R-Q', '16000000-0000-0000-0000-000000000002', 'balanced')$$,
                 'PT403', null, 'a coordinator cannot route to another team');
select tests.clear_authentication();
select tests.authenticate_as(pg_temp.id('ana'));
select throws_ok($$select public.set_routing_rule('R-Q', '16000000-0000-0000-0000-000000000001', 'balanced')$$,
                 'PT403', null, 'executives do not edit rules');
select tests.clear_authentication();

select * from finish();
rollback;
