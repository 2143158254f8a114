-- wabase inbox: the conversation list in one request (seed 000's list fired a request per row), newest first,
-- keyset-paginated, searchable by contact name or number with trigram indexes, and limited by RLS.

create extension if not exists pg_trgm with schema extensions;

create index contacts_profile_name_trgm_idx on public.contacts using gin (profile_name extensions.gin_trgm_ops);
create index contacts_wa_id_trgm_idx on public.contacts using gin (wa_id extensions.gin_trgm_ops);
create index conversations_inbox_idx on public.conversations (last_message_at desc, id desc)
  where last_message_at is not null;

create function public.list_conversations(p_search text default null, p_cursor text default null,
                                          p_limit integer default 50, p_filter text default 'all')
returns table (
  conversation_id uuid, contact_id uuid, contact_name text, contact_number text, last_message_text text,
  last_message_at timestamptz, last_message_direction text, assigned_executive_id uuid,
  assigned_executive_name text, team_id uuid, handled_as_backup boolean, bot_paused boolean,
  bot_paused_until timestamptz, unread_count integer, status text, in_queue boolean, cursor text,
  window_closes_at timestamptz
)
language plpgsql
stable
set search_path = ''
as $$
declare
  v_after_at timestamptz;
  v_after_id uuid;
  v_search text := nullif(btrim(p_search), '');
  v_digits text := nullif(regexp_replace(coalesce(p_search, ''), '[^0-9]', '', 'g'), '');
  -- mine: the caller's and those they back up; queue: their team's unassigned open ones.
  v_mine uuid[] := case when p_filter = 'mine' then auth.uid() || authz.backed_up_executives() end;
  v_queue_team uuid := case when p_filter = 'queue' then authz.my_team() end;
begin
  if p_filter is null or p_filter not in ('all', 'mine', 'queue') then
    raise exception 'p_filter must be all, mine or queue' using errcode = '22023', hint = 'invalid_filter';
  end if;
  if p_limit is null or p_limit < 1 or p_limit > 200 then
    raise exception 'p_limit must be between 1 and 200' using errcode = '22023', hint = 'invalid_limit';
  end if;
  if p_cursor is not null then
    begin
      select (c ->> 't')::timestamptz, (c ->> 'i')::uuid into strict v_after_at, v_after_id
      from (select convert_from(decode(p_cursor, 'base64'), 'utf8')::jsonb as c) x;
    exception when others then
      raise exception 'invalid cursor' using errcode = '22023', hint = 'invalid_cursor';
    end;
  end if;
  return query
  select c.id, k.id, k.profile_name, k.wa_id, last.content_text, c.last_message_at, last.direction,
         c.assigned_executive_id, e.full_name, c.team_id,
         coalesce(c.assigned_executive_id = any ((select authz.backed_up_executives())::uuid[]), false),
         coalesce(c.bot_paused_until > now(), false), c.bot_paused_until,
         (select count(*)::integer from public.messages m
          where m.conversation_id = c.id and m.direction = 'inbound' and m.read_at is null),
         c.status, c.assigned_executive_id is null and c.team_id is not null and c.status = 'open',
         translate(encode(convert_to(jsonb_build_object('t', c.last_message_at, 'i', c.id)::text, 'utf8'), 'base64'),
                   E'\n', ''),
         -- WhatsApp's 24-hour customer-service window: free-form sends until then, templates after.
         c.last_inbound_at + interval '24 hours'
  from public.conversations c
  join public.contacts k on k.id = c.contact_id
  left join public.profiles e on e.id = c.assigned_executive_id
  left join lateral (
    select m.content_text, m.direction from public.messages m
    where m.conversation_id = c.id order by m.sent_at desc limit 1
  ) last on true
  where c.last_message_at is not null
    and (p_filter = 'all'
         or (p_filter = 'mine' and c.assigned_executive_id = any (v_mine))
         or (p_filter = 'queue' and c.assigned_executive_id is null and c.team_id = v_queue_team
             and c.status = 'open'))
    and (v_after_at is null or (c.last_message_at, c.id) < (v_after_at, v_after_id))
    and (v_search is null
         or k.profile_name operator(extensions.%) v_search
         or k.profile_name ilike '%' || v_search || '%'
         or (v_digits is not null and k.wa_id like '%' || v_digits || '%'))
  order by c.last_message_at desc, c.id desc
  limit p_limit;
end;
$$;
comment on function public.list_conversations(text, text, integer, text) is
  'The inbox in one request: the conversations the caller may see (RLS), newest first, with contact name and '
  'number, last message text, direction and time, assigned executive (the owner), handled_as_backup, bot pause, '
  'unread count, open/closed status and whether it waits in a team queue. Keyset-paginated: pass the last row''s '
  'cursor to get the next page. p_search matches the contact''s name (trigram similarity or substring) or number '
  '(digits). p_filter: all (everything visible), mine (the caller''s and those they back up), queue (the '
  'caller''s team''s open unassigned ones). window_closes_at: when the 24-hour window closes (null: never '
  'opened). Raises 22023 invalid_limit (1..200), invalid_cursor or '
  'invalid_filter. Caller: the frontend.';
revoke all on function public.list_conversations(text, text, integer, text) from public, anon, service_role;
grant execute on function public.list_conversations(text, text, integer, text) to authenticated;
