-- The whole conversation (docs/conversation.md), on Meta's documented payloads (webhook references
-- smb_message_echoes, history, smb_app_state_sync, messages/reaction, messages/edit, messages/revoke; the
-- examples are Meta's, only wamids and times adapted): echoes stored as the business's messages and pausing the
-- bot, the chat history, the address book, reactions added, changed and removed, edits with their history,
-- revokes, a button choice as structured input, the handoff.
begin;
select plan(44);

-- Meta's example number; time is injected (p_now) just after the examples' timestamps.
create function pg_temp.t(p_seconds integer) returns timestamptz language sql immutable as $$
  select to_timestamp(1739321024 + p_seconds)
$$;
create function pg_temp.post(p_field text, p_value jsonb, p_at timestamptz) returns jsonb language sql as $$
  select wa.ingest_webhook(jsonb_build_object('object', 'whatsapp_business_account', 'entry', jsonb_build_array(
    jsonb_build_object('id', '102290129340398', 'changes', jsonb_build_array(jsonb_build_object(
      'field', p_field,
      'value', jsonb_build_object('messaging_product', 'whatsapp', 'metadata', jsonb_build_object(
        'display_phone_number', '15550783881', 'phone_number_id', '106540352242922')) || p_value))))), p_at)
$$;
create function pg_temp.customer(p_wamid text, p_type text, p_object jsonb, p_at integer) returns jsonb language sql as $$
  select jsonb_build_object('contacts', jsonb_build_array(tests.contact('16505551234', 'Sheena Nelson')),
                            'messages', jsonb_build_array(jsonb_build_object(
                              'from', '16505551234', 'id', p_wamid, 'timestamp', (1739321024 + p_at)::text,
                              'type', p_type, p_type, p_object)))
$$;
create function pg_temp.msg(p_wamid text) returns public.messages language sql stable as $$
  select * from public.messages where wamid = p_wamid
$$;
create function pg_temp.conv() returns public.conversations language sql stable as $$
  select c.* from public.conversations c join public.contacts k on k.id = c.contact_id
  where c.phone_number_id = '106540352242922' and k.wa_id = '16505551234'
$$;
create function pg_temp.buffered(p_wamid text) returns boolean language sql stable as $$
  select exists (select from wa.buffer_messages b join public.messages m on m.id = b.message_id where m.wamid = p_wamid)
$$;

-- ---------------------------------------------------------------------------------------------
-- smb_message_echoes: a reply typed in the WhatsApp Business app (Meta's example)
-- ---------------------------------------------------------------------------------------------
select pg_temp.post('smb_message_echoes', '{"message_echoes": [{"from": "15550783881", "to": "16505551234",
  "id": "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBIyNDlBOEI5QUQ4NDc0N0FCNjMA", "timestamp": "1739321024", "type": "text",
  "text": {"body": "Here''s the info you requested! https://www.meta.com/quest/quest-3/"}}]}', pg_temp.t(2));
select is((select row(direction, origin, status, type, content_text, sent_by is null)::text
           from pg_temp.msg('wamid.HBgLMTY0NjcwNDM1OTUVAgARGBIyNDlBOEI5QUQ4NDc0N0FCNjMA')),
          row('outbound', 'business_app', 'sent', 'text',
              'Here''s the info you requested! https://www.meta.com/quest/quest-3/', true)::text,
          'an echo is stored as an outbound message sent from the Business app, in the customer''s conversation');
select ok((select not (body ? 'wabase') and body ->> 'to' = '16505551234'
           from pg_temp.msg('wamid.HBgLMTY0NjcwNDM1OTUVAgARGBIyNDlBOEI5QUQ4NDc0N0FCNjMA')),
          'its body is Meta''s message object as delivered');
select is((pg_temp.conv()).bot_paused_until, pg_temp.t(2) + interval '30 minutes',
          'an echo pauses the bot for the number''s auto-pause');
select is((pg_temp.conv()).last_inbound_at, null,
          'an echo does not open the customer service window (only the customer''s messages do)');
select ok(not pg_temp.buffered('wamid.HBgLMTY0NjcwNDM1OTUVAgARGBIyNDlBOEI5QUQ4NDc0N0FCNjMA'), 'an echo never wakes the agent');
select is((pg_temp.post('smb_message_echoes', '{"message_echoes": [{"from": "15550783881", "to": "16505551234",
  "id": "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBIyNDlBOEI5QUQ4NDc0N0FCNjMA", "timestamp": "1739321024", "type": "text",
  "text": {"body": "Here''s the info you requested! https://www.meta.com/quest/quest-3/"}}]}', pg_temp.t(3)))
          ->> 'duplicate', '1', 'a redelivered echo is counted as a duplicate, not stored twice');

-- Per number: echoes may leave the bot alone.
update public.conversations set bot_paused_until = null where id = (pg_temp.conv()).id;
update wa.phone_numbers set echo_pauses_bot = false where phone_number_id = '106540352242922';
select pg_temp.post('smb_message_echoes', '{"message_echoes": [{"from": "15550783881", "to": "16505551234",
  "id": "wamid.ECHO2", "timestamp": "1739321030", "type": "text", "text": {"body": "second"}}]}', pg_temp.t(7));
select is((pg_temp.conv()).bot_paused_until, null, 'with echo_pauses_bot off an echo does not pause the bot');
update wa.phone_numbers set echo_pauses_bot = true where phone_number_id = '106540352242922';

-- The pause wins over a reply the agent is still writing: the customer writes, the batch is claimed, an echo
-- arrives, and the reply can no longer be written.
select pg_temp.post('messages', pg_temp.customer('wamid.Q1', 'text', '{"body": "¿tienen envío?"}', 20), pg_temp.t(20));
create temp table claim as select * from wa.claim_buffers('w1', 1, interval '60 seconds', pg_temp.t(40));
select is((select message_count from claim), 1, 'the customer''s question is claimed by a worker');
-- Live, on the database's clock: the pause the reply meets is checked against now().
select pg_temp.post('smb_message_echoes', jsonb_build_object('message_echoes', jsonb_build_array(jsonb_build_object(
  'from', '15550783881', 'to', '16505551234', 'id', 'wamid.ECHO3', 'timestamp', extract(epoch from now())::bigint::text,
  'type', 'text', 'text', jsonb_build_object('body', 'Sí, a todo el país')))), now());
select throws_ok($$select * from wa.begin_agent_reply((select fence from claim), (select up_to_seq from claim), 'text',
                     '{"type": "text", "text": {"body": "bot"}}')$$,
                 'P0423', null, 'an echo during the agent''s turn refuses the agent''s reply (bot_paused)');

-- ---------------------------------------------------------------------------------------------
-- Reactions (messages/reaction): add, change, remove (Meta sends no emoji), late events, the agent stays asleep
-- ---------------------------------------------------------------------------------------------
select wa.complete_buffer((select fence from claim), (select up_to_seq from claim));
insert into public.messages (conversation_id, wamid, direction, type, body, content_text, sent_at, status)
values ((pg_temp.conv()).id, 'wamid.BOT1', 'outbound', 'text', '{"type": "text", "text": {"body": "Hola"}}', 'Hola',
        pg_temp.t(100), 'delivered');
create function pg_temp.react(p_wamid text, p_emoji text, p_at integer) returns jsonb language sql as $$
  select pg_temp.post('messages', pg_temp.customer(p_wamid, 'reaction',
    jsonb_strip_nulls(jsonb_build_object('message_id', 'wamid.BOT1', 'emoji', p_emoji)), p_at), pg_temp.t(p_at))
$$;
create function pg_temp.reaction() returns text language sql stable as $$
  select coalesce(emoji, '(removed)') from public.message_reactions where message_wamid = 'wamid.BOT1' and reactor = 'customer'
$$;
select pg_temp.react('wamid.R1', '👍', 110);
select is(pg_temp.reaction(), '👍', 'a reaction attaches to the message it reacts to');
select pg_temp.react('wamid.R2', '❤️', 120);
select is(pg_temp.reaction(), '❤️', 'a new emoji changes the reaction');
select pg_temp.react('wamid.R3', null, 130);
select is(pg_temp.reaction(), '(removed)', 'a reaction without emoji (Meta''s removal) removes it');
select pg_temp.react('wamid.R2b', '😮', 125);
select is(pg_temp.reaction(), '(removed)', 'a reaction older than the removal, delivered late, changes nothing');
select pg_temp.react('wamid.R4', '', 140);
select pg_temp.react('wamid.R5', '🔥', 150);
select is(pg_temp.reaction(), '🔥', 'an empty emoji removes too, and a later reaction comes back');
select is((select count(*)::integer from wa.buffers where conversation_id = (pg_temp.conv()).id), 0,
          'reactions wake no agent by default');
select ok(exists (select from realtime.messages where topic = 'unassigned' and payload ->> 'table' = 'message_reactions'
                  and payload -> 'record' ->> 'emoji' = '🔥'),
          'a reaction is broadcast to the conversation''s topic for the operators');
update wa.phone_numbers set react_wakes_agent = true where phone_number_id = '106540352242922';
select pg_temp.react('wamid.R6', '🙏', 160);
select ok(pg_temp.buffered('wamid.R6'), 'with react_wakes_agent a reaction joins the buffer');
update wa.phone_numbers set react_wakes_agent = false where phone_number_id = '106540352242922';
delete from wa.buffer_messages; delete from wa.buffers;
select is((select count(*)::integer from public.message_reactions where message_wamid = 'wamid.BOT1'), 1,
          'one reaction per reactor and message');

-- ---------------------------------------------------------------------------------------------
-- Edits (messages/edit) and revokes (messages/revoke)
-- ---------------------------------------------------------------------------------------------
select pg_temp.post('messages', pg_temp.customer('wamid.E0', 'text', '{"body": "quiero 2 cajas"}', 200), pg_temp.t(200));
select pg_temp.post('messages', pg_temp.customer('wamid.E1', 'edit',
  '{"original_message_id": "wamid.E0", "message": {"type": "text", "text": {"body": "quiero 3 cajas"}}}', 210),
  pg_temp.t(210));
select is((pg_temp.msg('wamid.E0')).content_text, 'quiero 3 cajas', 'an edit shows the new text');
select is((pg_temp.msg('wamid.E0')).edited_at, pg_temp.t(210), 'and when it was edited');
select is((select previous_text from public.message_edits where message_id = (pg_temp.msg('wamid.E0')).id),
          'quiero 2 cajas', 'the earlier text is kept in the edit history');
select ok(not pg_temp.buffered('wamid.E1'), 'the edit event itself is not a message for the agent');
create temp table claim2 as select * from wa.claim_buffers('w1', 1, interval '60 seconds', pg_temp.t(400));
select is(wa.agent_context((select fence from claim2)) -> 'batch' -> 'messages' -> 0 ->> 'text', 'quiero 3 cajas',
          'a message edited while in the buffer reaches the agent in its new form');
select wa.complete_buffer((select fence from claim2), (select up_to_seq from claim2));
select is((pg_temp.post('messages', pg_temp.customer('wamid.E1', 'edit',
  '{"original_message_id": "wamid.E0", "message": {"type": "text", "text": {"body": "quiero 3 cajas"}}}', 210),
  pg_temp.t(211)) ->> 'duplicate'), '1', 'a redelivered edit is a duplicate');
select is((select count(*)::integer from public.message_edits where message_id = (pg_temp.msg('wamid.E0')).id), 1,
          'and adds no second history entry');

select pg_temp.post('messages', pg_temp.customer('wamid.V0', 'text', '{"body": "mi tarjeta es 4111..."}', 500),
                    pg_temp.t(500));
select ok(pg_temp.buffered('wamid.V0'), 'a new message waits in the buffer');
select pg_temp.post('messages', pg_temp.customer('wamid.V1', 'revoke', '{"original_message_id": "wamid.V0"}', 505),
                    pg_temp.t(505));
select is((select row(revoked_at, content_text, body)::text from pg_temp.msg('wamid.V0')),
          row(pg_temp.t(505), null::text, '{"type": "text"}'::jsonb)::text,
          'a revoke marks the message revoked and clears its body');
select ok(not pg_temp.buffered('wamid.V0'), 'a revoked message leaves the buffer: it never reaches the agent');
select pg_temp.post('messages', pg_temp.customer('wamid.V2', 'revoke', '{"original_message_id": "wamid.E0"}', 506),
                    pg_temp.t(506));
select is((select count(*)::integer from public.message_edits where message_id = (pg_temp.msg('wamid.E0')).id), 0,
          'revoking an edited message drops its earlier versions too');
select ok((select payload::text like '%4111%' from wa.webhook_events
           where payload @? '$.entry[*].changes[*].value.messages[*] ? (@.id == "wamid.V0")'),
          'the raw webhook log keeps the body for its retention policy (audit)');

-- The Business app edits its own message (an echo of type edit).
select pg_temp.post('smb_message_echoes', '{"message_echoes": [{"from": "15550783881", "to": "16505551234",
  "id": "wamid.ECHO4", "timestamp": "1739321700", "type": "edit", "edit": {"original_message_id": "wamid.ECHO2",
  "message": {"type": "text", "text": {"body": "second, corrected"}}}}]}', pg_temp.t(700));
select is((pg_temp.msg('wamid.ECHO2')).content_text, 'second, corrected', 'the business app''s edits apply to its echoes');

-- ---------------------------------------------------------------------------------------------
-- history (Meta's example, first thread) and smb_app_state_sync (Meta's example)
-- ---------------------------------------------------------------------------------------------
select pg_temp.post('history', '{"history": [{"metadata": {"phase": 0, "chunk_order": 1, "progress": 55},
  "threads": [{"id": "12125557890", "messages": [
    {"from": "15550783881", "id": "wamid.H1", "timestamp": "1739230955", "type": "text",
     "text": {"body": "Thanks for your order!"}, "history_context": {"status": "READ"}},
    {"from": "12125557890", "id": "wamid.H2", "timestamp": "1739230970", "type": "text",
     "text": {"body": "Thanks!"}, "history_context": {"status": "READ"}}]}]}]}', pg_temp.t(800));
select is((select string_agg(direction || ':' || coalesce(status, '-') || ':' || origin, ',' order by wamid)
           from public.messages where wamid in ('wamid.H1', 'wamid.H2')),
          'outbound:read:history,inbound:-:history', 'history messages are stored with their direction and status');
select ok(not pg_temp.buffered('wamid.H2'), 'a customer''s message from the history never wakes the agent');
select isnt((pg_temp.msg('wamid.H2')).read_at, null, 'nor counts as unread');
select is((select c.bot_paused_until from public.conversations c join public.contacts k on k.id = c.contact_id
           where k.wa_id = '12125557890'), null, 'the history does not pause the bot');

select pg_temp.post('smb_app_state_sync', '{"state_sync": [{"type": "contact", "contact": {"full_name": "Pablo Morales",
  "first_name": "Pablo", "phone_number": "16505551234"}, "action": "add", "metadata": {"timestamp": "1739321024"}}]}',
  pg_temp.t(900));
select is((select full_name from wa.app_contacts where wa_id = '16505551234'), 'Pablo Morales',
          'the app''s address book is applied');
select pg_temp.post('smb_app_state_sync', '{"state_sync": [{"type": "contact", "contact": {"phone_number": "16505551234"},
  "action": "remove", "metadata": {"timestamp": "1739321100"}}]}', pg_temp.t(901));
select is((select row(full_name, removed)::text from wa.app_contacts where wa_id = '16505551234'),
          row(null::text, true)::text, 'a contact removed from it is marked removed');
select is((select count(*)::integer from wa.webhook_events where payload @? '$.entry[*].changes[*] ? (@.field == "history")'),
          1, 'history events stay in the raw log');

-- ---------------------------------------------------------------------------------------------
-- A button choice reaches the agent as structured input
-- ---------------------------------------------------------------------------------------------
select pg_temp.post('messages', pg_temp.customer('wamid.B1', 'interactive',
  '{"type": "button_reply", "button_reply": {"id": "ship-express", "title": "Express"}}', 1000), pg_temp.t(1000));
create temp table claim3 as select * from wa.claim_buffers('w1', 1, interval '60 seconds', pg_temp.t(1100));
select is(wa.agent_context((select fence from claim3)) -> 'batch' -> 'messages' -> 0 -> 'reply',
          '{"kind": "button_reply", "id": "ship-express", "title": "Express"}'::jsonb,
          'a reply button tap reaches the agent with its id and title');

-- ---------------------------------------------------------------------------------------------
-- Handoff
-- ---------------------------------------------------------------------------------------------
select wa.request_handoff((pg_temp.conv()).id, 'wants a refund');
select is((select row(bot_paused_until, handoff_reason)::text from public.conversations where id = (pg_temp.conv()).id),
          row('infinity'::timestamptz, 'wants a refund')::text, 'a handoff pauses the bot until resumed and flags the reason');
select ok(exists (select from realtime.messages where event = 'handoff' and topic = 'unassigned'
                  and payload ->> 'conversation_id' = (pg_temp.conv()).id::text),
          'and a handoff event is broadcast to the conversation''s topic');
create temp table handed as select (pg_temp.conv()).id;
grant select on handed to authenticated;
select tests.authenticate_as(tests.create_user('admin@conv.test', 'admin', null));
select public.resume_bot(id) from handed;
select tests.clear_authentication();
select is((select row(bot_paused_until, handoff_requested_at)::text from public.conversations where id = (pg_temp.conv()).id),
          row(null::timestamptz, null::timestamptz)::text, 'resume clears the pause and the handoff flag');
select is((select count(*)::integer from public.messages where conversation_id = (pg_temp.conv()).id) > 5, true,
          'and keeps the history');

-- ---------------------------------------------------------------------------------------------
-- Cost: the ingest reaches messages and conversations by key, whatever the POST holds (no table scan)
-- ---------------------------------------------------------------------------------------------
insert into public.contacts (wa_id) select '99' || n from generate_series(1, 2000) n;
insert into public.conversations (phone_number_id, contact_id)
  select '106540352242922', id from public.contacts where wa_id like '99%';
insert into public.messages (conversation_id, wamid, direction, type, body, content_text, sent_at)
  select c.id, 'wamid.BULK.' || c.id || '.' || n, 'inbound', 'text', '{}', 'x', now()
  from public.conversations c join public.contacts k on k.id = c.contact_id, generate_series(1, 10) n
  where k.wa_id like '99%';
analyze public.messages, public.conversations, public.contacts, wa.buffer_messages, wa.buffers;
create temp table scans as
  select relname, seq_scan from pg_stat_xact_user_tables where relname in ('messages', 'conversations');
select pg_temp.post('messages', pg_temp.customer('wamid.COST1', 'text', '{"body": "hola"}', 2000), pg_temp.t(2000));
select pg_temp.post('messages', pg_temp.customer('wamid.COST2', 'reaction',
  '{"message_id": "wamid.BOT1", "emoji": "👍"}', 2001), pg_temp.t(2001));
select pg_temp.post('messages', pg_temp.customer('wamid.COST3', 'edit',
  '{"original_message_id": "wamid.COST1", "message": {"type": "text", "text": {"body": "hola!"}}}', 2002),
  pg_temp.t(2002));
select pg_temp.post('smb_message_echoes', '{"message_echoes": [{"from": "15550783881", "to": "16505551234",
  "id": "wamid.COST4", "timestamp": "1739323100", "type": "text", "text": {"body": "hi"}}]}', pg_temp.t(2003));
select is((select coalesce(sum(x.seq_scan - s.seq_scan), 0)::integer from pg_stat_xact_user_tables x
           join scans s using (relname)), 0,
          'texts, reactions, edits and echoes are ingested without scanning messages or conversations');

select * from finish();
rollback;
