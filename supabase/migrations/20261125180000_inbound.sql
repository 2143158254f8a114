-- wabase inbound: the data model of contacts, conversations and messages, the raw webhook log, delivery
-- receipts, status events, the append side of the per-conversation buffers, and `wa.ingest_webhook`, which
-- stores a whole validated Cloud API webhook in one call and one transaction.

-- ============================================================================================
-- Business phone numbers (one row per number the webhook has seen; buffer rules per number)
-- ============================================================================================
create table wa.phone_numbers (
  phone_number_id text primary key,
  waba_id text,
  display_phone_number text,
  -- A buffer is due when quiet this long, when its first message is this old, or when it holds this many.
  buffer_quiet_period interval not null default interval '10 seconds'
    check (buffer_quiet_period > interval '0'),
  buffer_max_wait interval not null default interval '60 seconds'
    check (buffer_max_wait >= buffer_quiet_period),
  buffer_max_messages integer not null default 20 check (buffer_max_messages > 0),
  -- Claims of one batch before it is dead-lettered: the claim, the failure path and the orphan sweep read it.
  buffer_max_attempts integer not null default 5 check (buffer_max_attempts > 0),
  first_seen_at timestamptz not null default now()
);
comment on table wa.phone_numbers is 'Business phone numbers seen by the webhook, with their buffer rules.';

-- ============================================================================================
-- Frontend-facing tables (RLS on; policies arrive with the team issue, so for now only the service
-- connection, which bypasses RLS, reads or writes them)
-- ============================================================================================
create table public.contacts (
  id uuid primary key default gen_random_uuid(),
  -- The phone number as WhatsApp knows it; absent for users Meta only identifies by a business-scoped id.
  wa_id text unique,
  -- Business-scoped user id (BSUID, 2026); regenerated when the user changes number.
  user_id text unique,
  profile_name text,
  username text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint contacts_identified check (wa_id is not null or user_id is not null)
);
comment on table public.contacts is 'WhatsApp users who wrote to a business number, keyed by wa_id and/or BSUID.';

create table public.conversations (
  id uuid primary key default gen_random_uuid(),
  phone_number_id text not null references wa.phone_numbers (phone_number_id),
  contact_id uuid not null references public.contacts (id),
  assigned_executive_id uuid,
  team_id uuid,
  last_message_at timestamptz,
  -- The customer's latest inbound message: opens WhatsApp's 24-hour customer-service window.
  last_inbound_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint conversations_number_contact_key unique (phone_number_id, contact_id)
);
create index conversations_contact_id_idx on public.conversations (contact_id);
create index conversations_last_message_at_idx on public.conversations (last_message_at desc);
comment on table public.conversations is 'One thread per (business phone number, contact).';

create table public.messages (
  id uuid primary key default gen_random_uuid(),
  conversation_id uuid not null references public.conversations (id),
  -- Meta's message id. An outbound row is written before the send and gets its wamid from the response.
  wamid text unique,
  direction text not null check (direction in ('inbound', 'outbound')),
  type text not null,
  -- The message object as Meta delivered it (inbound) or as it was sent (outbound).
  body jsonb not null,
  -- Human-readable text of the message: text body, caption, button or list title, location name.
  content_text text,
  context_wamid text,
  sent_at timestamptz not null,
  received_at timestamptz not null default now(),
  -- Outbound delivery state, advanced only by rank (see wa.status_rank).
  status text check (status in ('pending', 'sent', 'delivered', 'read', 'played', 'failed', 'unknown')),
  status_at timestamptz,
  -- Meta's errors of a failed status, kept even when a later status wins.
  error jsonb,
  constraint messages_inbound_has_wamid check (direction = 'outbound' or wamid is not null),
  constraint messages_inbound_has_no_status check (direction = 'outbound' or status is null),
  constraint messages_outbound_has_status check (direction = 'inbound' or status is not null)
);
create index messages_conversation_sent_at_idx on public.messages (conversation_id, sent_at desc);
comment on table public.messages is 'Every inbound and outbound WhatsApp message, one row per wamid.';

alter table public.contacts enable row level security;
alter table public.conversations enable row level security;
alter table public.messages enable row level security;
revoke all on public.contacts, public.conversations, public.messages from anon, authenticated;

-- ============================================================================================
-- Internals: delivery receipts, status events, the raw webhook log
-- ============================================================================================
create table wa.inbound_receipts (
  wamid text primary key,
  first_seen_at timestamptz not null,
  last_seen_at timestamptz not null,
  -- How many times Meta delivered this message (redeliveries and concurrent duplicates included).
  delivery_count integer not null check (delivery_count > 0)
);
comment on table wa.inbound_receipts is 'One row per inbound wamid ever delivered, with its delivery count.';

create table wa.message_statuses (
  wamid text not null,
  status text not null,
  status_at timestamptz not null,
  -- The status object as delivered: errors, pricing, conversation.
  payload jsonb not null,
  first_seen_at timestamptz not null,
  last_seen_at timestamptz not null,
  delivery_count integer not null check (delivery_count > 0),
  primary key (wamid, status)
);
comment on table wa.message_statuses is
  'Every status event by (wamid, status), kept even before its message is known, so none is lost to a race with '
  'the send that learns the wamid; messages.status is derived from these.';

create table wa.webhook_events (
  id bigint generated always as identity primary key,
  received_at timestamptz not null default now(),
  -- The body when it was JSON; when ingested, what was ingested (characters Postgres cannot store replaced,
  -- unusable items left out).
  payload jsonb,
  -- The body exactly as received, kept whenever it was not ingested exactly as received.
  raw_body text,
  signature_valid boolean not null,
  -- Why the body, or a part of it, was not ingested as received (not JSON, not the Cloud API shape, a data
  -- error; with a result: items left out, characters replaced); null when ingested as received.
  error text,
  -- What the ingest did: counts of new and duplicate messages, statuses, ignored changes (what it returned,
  -- but for event_id, the row's own id).
  result jsonb
);
create index webhook_events_received_at_idx on wa.webhook_events (received_at);
create index webhook_events_failed_idx on wa.webhook_events (id) where error is not null;
comment on table wa.webhook_events is 'Every signed webhook POST, ingested or not: Meta offers no way to fetch past ones.';

-- ============================================================================================
-- Buffers: per conversation, the inbound messages the bot has not answered yet, in arrival order
-- ============================================================================================
create table wa.buffers (
  conversation_id uuid primary key references public.conversations (id) on delete cascade,
  phone_number_id text not null references wa.phone_numbers (phone_number_id),
  first_message_at timestamptz not null,
  last_message_at timestamptz not null,
  message_count integer not null check (message_count > 0),
  due_at timestamptz not null
);
create index buffers_due_at_idx on wa.buffers (due_at);
comment on table wa.buffers is 'Per conversation: when its unanswered inbound messages are due for the bot.';

create table wa.buffer_messages (
  -- Arrival order across all buffers: a batch is "everything up to seq N".
  seq bigint generated always as identity primary key,
  conversation_id uuid not null references public.conversations (id) on delete cascade,
  -- Unique: a message enters a buffer at most once, whatever the redeliveries.
  message_id uuid not null unique references public.messages (id) on delete cascade,
  appended_at timestamptz not null
);
create index buffer_messages_conversation_seq_idx on wa.buffer_messages (conversation_id, seq);
comment on table wa.buffer_messages is 'Message references per buffer, in arrival order (never concatenated text).';

-- ============================================================================================
-- Pure helpers
-- ============================================================================================
-- Pure SQL helpers (no table, only built-in operators and functions, which pg_catalog resolves before any
-- search path) carry no `set search_path`: a SET clause stops the planner from inlining a SQL function, so each
-- call would pay a function call with a GUC save and restore (15-20 µs), and a predicate calling one could not
-- use an index (wa.is_bot_readable was evaluated 1,600 times a delivery on a scan of public.messages).
create function wa.status_rank(p_status text)
returns numeric
language sql
immutable
parallel safe
as $$
  select case p_status
    when 'pending' then 0 when 'unknown' then 0
    when 'sent' then 1
    -- Between sent and delivered: a failure counts only while the message is not known delivered
    -- (a multi-device user can get both), and a late `sent` never hides it.
    when 'failed' then 1.5
    when 'delivered' then 2 when 'read' then 3 when 'played' then 4
  end
$$;
comment on function wa.status_rank(text) is
  'Rank of an outbound status: a status replaces another only with a higher rank. Null for unknown values '
  '(never applied).';

create function wa.is_bot_readable(p_type text)
returns boolean
language sql
immutable
parallel safe
as $$
  select p_type in ('text', 'image', 'audio', 'video', 'document', 'sticker', 'location', 'contacts',
                    'interactive', 'button', 'order', 'request_welcome')
$$;
comment on function wa.is_bot_readable(text) is
  'Whether an inbound message of this type goes to the bot''s buffer (reactions, system notices, edits, '
  'revokes and unsupported placeholders do not).';

create function wa.message_text(p_message jsonb)
returns text
language sql
immutable
parallel safe
as $$
  select case p_message ->> 'type'
    when 'text' then p_message -> 'text' ->> 'body'
    when 'image' then coalesce(p_message -> 'image' ->> 'caption', '[image]')
    when 'video' then coalesce(p_message -> 'video' ->> 'caption', '[video]')
    when 'audio' then case when (p_message -> 'audio' ->> 'voice')::boolean then '[voice note]' else '[audio]' end
    when 'document' then coalesce(p_message -> 'document' ->> 'caption', p_message -> 'document' ->> 'filename',
                                  '[document]')
    when 'sticker' then '[sticker]'
    when 'location' then coalesce(p_message -> 'location' ->> 'name', p_message -> 'location' ->> 'address',
                                  '[location]')
    when 'contacts' then coalesce('[contact] ' || (p_message -> 'contacts' -> 0 -> 'name' ->> 'formatted_name'),
                                  '[contact]')
    when 'interactive' then coalesce(p_message -> 'interactive' -> 'button_reply' ->> 'title',
                                     p_message -> 'interactive' -> 'list_reply' ->> 'title',
                                     p_message -> 'interactive' -> 'nfm_reply' ->> 'body',
                                     p_message -> 'interactive' -> 'body' ->> 'text', '[interactive]')
    when 'button' then p_message -> 'button' ->> 'text'
    when 'reaction' then p_message -> 'reaction' ->> 'emoji'
    when 'order' then coalesce('[order] ' || (p_message -> 'order' ->> 'text'), '[order]')
    when 'system' then p_message -> 'system' ->> 'body'
    else '[' || (p_message ->> 'type') || ']'
  end
$$;
comment on function wa.message_text(jsonb) is
  'Human-readable text of a Cloud API message object (body, caption, title...), for previews and search.';

create function wa.unix_time(p_seconds text)
returns timestamptz
language sql
immutable
parallel safe
as $$
  select to_timestamp(p_seconds::bigint)
$$;
comment on function wa.unix_time(text) is 'Meta''s timestamps: Unix seconds as a string.';

create function wa.buffer_due_at(
  p_first_message_at timestamptz, p_last_message_at timestamptz, p_message_count integer,
  p_quiet_period interval, p_max_wait interval, p_max_messages integer
)
returns timestamptz
language sql
immutable
parallel safe
as $$
  select case
    when p_message_count >= p_max_messages then p_last_message_at
    else least(p_last_message_at + p_quiet_period, p_first_message_at + p_max_wait)
  end
$$;
comment on function wa.buffer_due_at(timestamptz, timestamptz, integer, interval, interval, integer) is
  'When a buffer is due: quiet for the quiet period, or its first message waited max_wait, or it holds '
  'max_messages, whichever comes first.';

create function wa.messages_changes(p_payload jsonb)
returns table (waba_id text, value jsonb)
language sql
immutable
parallel safe
as $$
  select e.value ->> 'id', c.value -> 'value'
  from jsonb_array_elements(p_payload -> 'entry') e
  cross join lateral jsonb_array_elements(e.value -> 'changes') c
  where c.value ->> 'field' = 'messages'
$$;
comment on function wa.messages_changes(jsonb) is
  'The values of a webhook payload''s `messages` changes (inbound messages, statuses, errors), with their WABA id.';

-- ============================================================================================
-- Contacts
-- ============================================================================================
-- Contacts are the one table a POST writes in two identities (wa_id or BSUID) whose order can disagree, so they
-- are locked by id (docs/locking.md). A BSUID attach updates a unique key, which a new conversation's
-- foreign-key check (FOR KEY SHARE) waits for; that check comes after every contact is done, so the lock it
-- takes is taken here, in the same pass.
create function wa.upsert_contacts(p_contacts jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_ids jsonb;
  v_contact record;
  v_entry record;
begin
  if exists (select from jsonb_to_recordset(p_contacts) as e (wa_id text, user_id text)
             where e.wa_id is null and e.user_id is null) then
    raise exception 'a contact needs a wa_id or a user_id' using errcode = '22023';
  end if;
  -- New contacts first, in key order: creating one locks no existing row, and a concurrent creator of the same
  -- key is waited for, then found below.
  insert into public.contacts (wa_id, profile_name, username)
  select distinct on (e.wa_id) e.wa_id, e.profile_name, e.username
  from jsonb_to_recordset(p_contacts) as e (wa_id text, profile_name text, username text)
  where e.wa_id is not null and not exists (select from public.contacts c where c.wa_id = e.wa_id)
  order by e.wa_id
  on conflict (wa_id) do nothing;
  insert into public.contacts (user_id, profile_name, username)
  select distinct on (e.user_id) e.user_id, e.profile_name, e.username
  from jsonb_to_recordset(p_contacts) as e (wa_id text, user_id text, profile_name text, username text)
  where e.wa_id is null and not exists (select from public.contacts c where c.user_id = e.user_id)
  order by e.user_id
  on conflict (user_id) do nothing;

  -- Each entry's contact: by wa_id when it has one, else by BSUID.
  select jsonb_object_agg(
           coalesce(e.wa_id, '') || '|' || coalesce(e.user_id, ''),
           coalesce((select c.id from public.contacts c where c.wa_id = e.wa_id),
                    (select c.id from public.contacts c where e.wa_id is null and c.user_id = e.user_id)))
  into v_ids
  from jsonb_to_recordset(p_contacts) as e (wa_id text, user_id text);

  -- Then each contact once, in id order, locked in the strongest mode any of its entries needs: FOR UPDATE to
  -- attach a BSUID (a unique key), FOR NO KEY UPDATE to refresh the profile, FOR KEY SHARE when a conversation
  -- on one of the numbers will be created (conversations are never deleted, so one that exists stays), none
  -- for a returning customer with nothing new: concurrent POSTs naming the same customer do not queue.
  for v_contact in
    select c.id,
           case when bool_or(e.wa_id is not null and e.user_id is not null and e.user_id is distinct from c.user_id
                             and not exists (select from public.contacts o where o.user_id = e.user_id))
                  then 'update'
                when bool_or((e.profile_name is not null and e.profile_name is distinct from c.profile_name)
                             or (e.username is not null and e.username is distinct from c.username))
                  then 'no key update'
                when bool_or(exists (select from unnest(e.phone_number_ids) n (phone_number_id)
                                     where not exists (select from public.conversations v
                                                       where v.phone_number_id = n.phone_number_id
                                                         and v.contact_id = c.id)))
                  then 'key share'
           end as lock,
           jsonb_agg(jsonb_build_object('wa_id', e.wa_id, 'user_id', e.user_id, 'profile_name', e.profile_name,
                                        'username', e.username) order by e.wa_id, e.user_id) as entries
    from jsonb_to_recordset(p_contacts)
      as e (wa_id text, user_id text, profile_name text, username text, phone_number_ids text[])
    join public.contacts c on c.id = (v_ids ->> (coalesce(e.wa_id, '') || '|' || coalesce(e.user_id, '')))::uuid
    group by c.id
    order by c.id
  loop
    case v_contact.lock
      when 'update' then perform from public.contacts c where c.id = v_contact.id for update;
      when 'no key update' then perform from public.contacts c where c.id = v_contact.id for no key update;
      when 'key share' then perform from public.contacts c where c.id = v_contact.id for key share;
      else null;
    end case;
    continue when v_contact.lock is null or v_contact.lock = 'key share';
    for v_entry in
      select * from jsonb_to_recordset(v_contact.entries) as e (wa_id text, user_id text, profile_name text,
                                                                username text)
    loop
      update public.contacts c
      set profile_name = coalesce(v_entry.profile_name, c.profile_name),
          username = coalesce(v_entry.username, c.username),
          updated_at = now()
      where c.id = v_contact.id
        and ((v_entry.profile_name is not null and v_entry.profile_name is distinct from c.profile_name)
             or (v_entry.username is not null and v_entry.username is distinct from c.username));
      if v_contact.lock = 'update' and v_entry.wa_id is not null and v_entry.user_id is not null then
        -- Attach the BSUID unless another contact already holds it: a webhook never fails over identity.
        begin
          update public.contacts c set user_id = v_entry.user_id, updated_at = now()
          where c.id = v_contact.id and c.user_id is distinct from v_entry.user_id
            and not exists (select from public.contacts o where o.user_id = v_entry.user_id);
        exception when unique_violation then
          null;
        end;
      end if;
    end loop;
  end loop;
  return coalesce(v_ids, '{}'::jsonb);
end;
$$;
comment on function wa.upsert_contacts(jsonb) is
  'Finds or creates the contacts of a POST ([{wa_id, user_id, profile_name, username, phone_number_ids}]) by '
  'wa_id (preferred) or BSUID, refreshing profiles and attaching new BSUIDs; returns {"wa_id|user_id": id}. '
  'New contacts are created in key order, then every contact is locked once in id order, FOR KEY SHARE when a '
  'conversation on one of its numbers is new; a returning contact with nothing new is only read. Safe under '
  'concurrent calls without deadlocks (docs/locking.md). Raises 22023 for an entry with neither id. Caller: '
  'wa.ingest_webhook.';

-- ============================================================================================
-- Statuses
-- ============================================================================================
-- A status POST and the send that records the same wamid cannot find each other's uncommitted write (the
-- message row does not hold the wamid yet; the status row is not visible yet), so each would miss the other.
-- Transaction advisory locks on the wamid order them: whichever commits second reads after the first committed.
create function wa.lock_wamids(p_wamids text[], p_exclusive boolean)
returns void
language plpgsql
set search_path = ''
as $$
declare
  -- A status POST names few wamids, usually: one lock each (class 2002873705, hashtext), so a send waits only
  -- for POSTs naming its own wamid. But a POST may name 1,000, and advisory locks fill Postgres's shared lock
  -- table (max_locks_per_transaction x connections): past 64 it takes stripes instead (class 2002873706,
  -- hashtext & 63), at most 64. The send takes its stripe, then its own lock: it meets either kind of POST.
  v_stripes boolean := p_exclusive or (select count(distinct w) from unnest(p_wamids) w) > 64;
  v_own boolean := p_exclusive or not v_stripes;
  v_key integer;
begin
  if v_stripes then
    for v_key in select distinct hashtext(w) & 63 from unnest(p_wamids) w order by 1 loop
      if p_exclusive then
        perform pg_advisory_xact_lock(2002873706, v_key);
      else
        perform pg_advisory_xact_lock_shared(2002873706, v_key);
      end if;
    end loop;
  end if;
  if v_own then
    for v_key in select distinct hashtext(w) from unnest(p_wamids) w order by 1 loop
      if p_exclusive then
        perform pg_advisory_xact_lock(2002873705, v_key);
      else
        perform pg_advisory_xact_lock_shared(2002873705, v_key);
      end if;
    end loop;
  end if;
end;
$$;
comment on function wa.lock_wamids(text[], boolean) is
  'Takes, until commit and in key order, advisory locks on these wamids: shared by a status POST for the wamids '
  'no outbound message holds yet (one per wamid, class 2002873705 and hashtext(wamid); past 64 wamids one of 64 '
  'stripes instead, class 2002873706 and hashtext(wamid) & 63), exclusive by wa.record_send_result for the '
  'wamid it records (its stripe, then its own lock), so whichever commits second sees the other''s write '
  '(docs/locking.md). Callers: wa.ingest_webhook, wa.record_send_result.';

create function wa.apply_message_statuses(p_wamids text[])
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_changed integer;
begin
  with best as (
    select s.wamid,
           (array_agg(s.status order by wa.status_rank(s.status) desc nulls last))[1] as status,
           (array_agg(s.status_at order by wa.status_rank(s.status) desc nulls last))[1] as status_at,
           (array_agg(s.payload -> 'errors' order by s.status_at desc) filter (where s.status = 'failed'))[1] as error
    from wa.message_statuses s
    where s.wamid = any (p_wamids)
    group by s.wamid
  ),
  -- The rows to change, locked in wamid order before any is written (docs/locking.md): an UPDATE alone locks
  -- rows in whatever order its plan meets them, so two POSTs sharing messages could each hold one the other
  -- needs. Materialized: the lock step runs whole, on top of the sort.
  locked as materialized (
    select m.id, b.status, b.status_at, b.error
    from public.messages m
    join best b on b.wamid = m.wamid
    where m.direction = 'outbound'
      and (wa.status_rank(b.status) > wa.status_rank(m.status)
           or b.error is not null and b.error is distinct from m.error)
    order by m.wamid
    for no key update of m
  ),
  changed as (
    update public.messages m
    set status = case when wa.status_rank(l.status) > wa.status_rank(m.status) then l.status else m.status end,
        status_at = case when wa.status_rank(l.status) > wa.status_rank(m.status) then l.status_at
                         else m.status_at end,
        error = coalesce(l.error, m.error)
    from locked l
    -- The row as it was before this update, to count status changes apart from error-only updates.
    join public.messages prior on prior.id = l.id
    where m.id = l.id
      and (wa.status_rank(l.status) > wa.status_rank(m.status)
           or l.error is not null and l.error is distinct from m.error)
    returning wa.status_rank(m.status) > wa.status_rank(prior.status) as status_changed
  )
  select count(*) filter (where status_changed)::integer into v_changed from changed;
  return v_changed;
end;
$$;
comment on function wa.apply_message_statuses(text[]) is
  'Derives the status of these outbound messages from every status event recorded for them: the highest rank '
  'wins, so arrival order never matters and a late lower status never regresses a higher one; a failure''s '
  'errors are kept even when delivery wins. Locks the rows it changes in wamid order (docs/locking.md). Returns '
  'how many messages changed. Called by the ingest and by whatever records a wamid on an outbound message (its '
  'earlier statuses then apply).';

-- ============================================================================================
-- Ingest
-- ============================================================================================
-- Linear in the size of a POST (Meta sends up to 1,000 updates in one): senders are joined to their change's
-- contacts by key, the contact map is aggregated once, and each buffer finds its business number by hash.
-- Scans per message made a 4,000-message POST take 15.8 s; joined by key it takes 2.8 s (1,000 messages 0.9 s).
create function wa.ingest_webhook(p_payload jsonb, p_now timestamptz default now(), p_raw_body text default null,
                                  p_error text default null)
returns jsonb
language plpgsql
set search_path = ''
-- Set-returning jsonb functions are estimated at 100 rows each, so nested ones look costly enough to trigger
-- JIT compilation, which takes longer than the whole ingest.
set jit = off
as $$
declare
  v_event_id bigint;
  v_messages jsonb;
  v_fresh jsonb;
  v_first_seen text[];
  v_seen_before text[];
  v_replacements text[];
  v_edited text[] := '{}'::text[];
  v_new integer := 0;
  v_replaced integer := 0;
  v_duplicate integer := 0;
  v_unattributed integer := 0;
  v_ignored_changes integer := 0;
  v_error_changes integer := 0;
  v_statuses_recorded integer := 0;
  v_statuses_duplicate integer := 0;
  v_statuses_unmatched integer := 0;
  v_statuses_applied integer := 0;
  v_status_wamids text[];
  v_contacts jsonb := '{}'::jsonb;
  v_calls jsonb;
  v_result jsonb;
  -- What the POST carries beyond plain messages: most carry none of it, and skip its steps.
  v_statuses integer;
  v_state_syncs integer;
  v_has_edits boolean;
  v_has_events boolean;
begin
  -- One pass over the changes: those the ingest does not read (wa.conversation_changes' fields are the ones it
  -- does), `messages` changes with neither messages nor statuses (Meta's error notifications), the statuses,
  -- and the business app's address book syncs.
  select count(*) filter (where coalesce(c.value ->> 'field', '') not in ('messages', 'smb_message_echoes', 'history')),
         count(*) filter (where c.value ->> 'field' = 'messages' and c.value -> 'value' -> 'messages' is null
                            and c.value -> 'value' -> 'statuses' is null),
         coalesce(sum(jsonb_array_length(c.value -> 'value' -> 'statuses'))
                    filter (where c.value ->> 'field' = 'messages'
                              and jsonb_typeof(c.value -> 'value' -> 'statuses') = 'array'), 0),
         count(*) filter (where c.value ->> 'field' = 'smb_app_state_sync')
  into v_ignored_changes, v_error_changes, v_statuses, v_state_syncs
  from jsonb_array_elements(p_payload -> 'entry') e
  cross join lateral jsonb_array_elements(e.value -> 'changes') c;

  -- Inbound messages, one entry per wamid (a wamid repeated inside one POST is one message delivered n
  -- times; real content wins over an "unsupported" placeholder), sorted by wamid. The phases below take their
  -- locks in the one global order of docs/locking.md (tables in phase order, rows in key order), which every
  -- other writer follows too, so concurrent overlapping deliveries, sends and replies cannot deadlock.
  with changes as (
    -- Numbered by row_number, not WITH ORDINALITY, which would stop the planner from inlining the function:
    -- a SQL function that is not inlined has its body parsed and planned again on every call (0.6 ms a POST).
    select v.waba_id, v.value, row_number() over () as n from wa.conversation_changes(p_payload) v
  ),
  -- Each change's contacts by wa_id and by BSUID (the first listed wins), joined by hash below: a scan of the
  -- contacts per message would make a 1,000-message POST a million comparisons.
  contacts as (
    select c.n, ct.value as ct, ct.ordinality as position
    from changes c
    cross join lateral jsonb_array_elements(coalesce(c.value -> 'contacts', '[]')) with ordinality ct
  ),
  by_wa_id as (
    select distinct on (k.n, k.ct ->> 'wa_id') k.n, k.ct ->> 'wa_id' as wa_id, k.ct
    from contacts k where k.ct ->> 'wa_id' is not null
    order by k.n, k.ct ->> 'wa_id', k.position
  ),
  by_user_id as (
    select distinct on (k.n, k.ct ->> 'user_id') k.n, k.ct ->> 'user_id' as user_id, k.ct
    from contacts k where k.ct ->> 'user_id' is not null
    order by k.n, k.ct ->> 'user_id', k.position
  ),
  raw as (
    select m.value as msg,
           c.value -> 'metadata' as metadata,
           c.waba_id,
           coalesce(w.ct, u.ct) as sender
    from changes c
    cross join lateral jsonb_array_elements(coalesce(c.value -> 'messages', '[]')) m
    left join by_wa_id w on w.n = c.n and w.wa_id = m.value ->> 'from'
    left join by_user_id u on u.n = c.n and u.user_id = m.value ->> 'from_user_id'
  ),
  attributed as (
    select r.*,
           -- An echo's or history message's customer is not its `from` (docs/conversation.md).
           coalesce(r.msg -> 'wabase' ->> 'contact', r.msg ->> 'from', r.sender ->> 'wa_id') as wa_id,
           coalesce(r.msg ->> 'from_user_id', r.sender ->> 'user_id') as user_id
    from raw r
  ),
  per_wamid as (
    select a.msg ->> 'id' as wamid,
           count(*) as deliveries,
           (array_agg(a.msg order by (a.msg ->> 'type' = 'unsupported')))[1] as msg,
           (array_agg(a.metadata))[1] as metadata,
           (array_agg(a.waba_id))[1] as waba_id,
           (array_agg(a.wa_id))[1] as wa_id,
           (array_agg(a.user_id))[1] as user_id,
           (array_agg(a.sender -> 'profile' ->> 'name'))[1] as profile_name,
           (array_agg(a.sender -> 'profile' ->> 'username'))[1] as username
    from attributed a
    where a.wa_id is not null or a.user_id is not null
    group by a.msg ->> 'id'
  )
  select coalesce(jsonb_agg(to_jsonb(p) order by p.wamid), '[]'),
         (select count(*) from attributed a where a.wa_id is null and a.user_id is null),
         coalesce(bool_or(p.msg ->> 'type' in ('edit', 'revoke')), false),
         coalesce(bool_or(p.msg ->> 'type' = 'reaction' or p.msg -> 'wabase' ->> 'origin' = 'business_app'), false)
  into v_messages, v_unattributed, v_has_edits, v_has_events
  from per_wamid p;

  -- Phase 1: receipts. Insert, or bump the delivery count: one atomic statement, so concurrent deliveries of a
  -- wamid serialise on its row (locked until commit) and exactly one of them sees "inserted".
  with registered as (
    insert into wa.inbound_receipts as r (wamid, first_seen_at, last_seen_at, delivery_count)
    select m.wamid, p_now, p_now, m.deliveries
    from jsonb_to_recordset(v_messages) as m (wamid text, deliveries integer)
    order by m.wamid
    on conflict (wamid) do update
      set last_seen_at = excluded.last_seen_at,
          delivery_count = r.delivery_count + excluded.delivery_count
    returning r.wamid, (r.xmax = 0) as inserted
  )
  select coalesce(array_agg(g.wamid) filter (where g.inserted), '{}'),
         coalesce(array_agg(g.wamid) filter (where not g.inserted), '{}')
  into v_first_seen, v_seen_before
  from registered g;

  -- An "unsupported" placeholder (131060, message unavailable) is replaced when the real content arrives under
  -- the same wamid, and buffered then, not counted as a duplicate. A statement of its own: in READ COMMITTED it
  -- takes a new snapshot after the receipt rows above were locked, so it sees what an overlapping delivery of
  -- the wamid committed while this one waited (a CTE of the receipt statement would not, and would lose the
  -- content as a duplicate). A placeholder after the content overwrites nothing. The receipt locks serialise
  -- each wamid's deliveries; the placeholders are locked by wamid first (step 2 of docs/locking.md), as mark
  -- read locks them, since an UPDATE locks in plan order. Arrays are joined as sets: `= any` would scan one
  -- per row of a 1,000-message POST.
  -- The messages the customer's edits and revokes change are locked in the same pass (docs/conversation.md).
  if v_has_edits then
    v_edited := array(select wa.edit_targets(v_messages, v_first_seen, 'inbound'));
  end if;
  if cardinality(v_seen_before) > 0 or cardinality(v_edited) > 0 then
    perform
    from public.messages pm
    join (select unnest(v_seen_before) union select unnest(v_edited)) as s (wamid) on s.wamid = pm.wamid
    where pm.direction = 'inbound'
      and (pm.type in ('unsupported', 'media_placeholder') or pm.wamid = any (v_edited))
    order by pm.wamid
    for no key update of pm;
  end if;
  with replaced as (
    update public.messages pm
    set type = m.msg ->> 'type', body = m.msg - 'wabase', content_text = wa.message_text(m.msg)
    from jsonb_to_recordset(v_messages) as m (wamid text, msg jsonb)
    join unnest(v_seen_before) as s (wamid) on s.wamid = m.wamid
    where pm.wamid = m.wamid and pm.direction = 'inbound'
      and pm.type in ('unsupported', 'media_placeholder')
      and m.msg ->> 'type' not in ('unsupported', 'media_placeholder')
    returning pm.wamid
  )
  select coalesce(array_agg(wamid), '{}') into v_replacements from replaced;
  if cardinality(v_edited) > 0 then
    perform wa.apply_edits(v_messages, v_first_seen, 'inbound');
  end if;

  select coalesce(jsonb_agg(m order by m ->> 'wamid'), '[]') into v_fresh
  from jsonb_array_elements(v_messages) m
  where m ->> 'wamid' in (select unnest(v_first_seen || v_replacements));
  v_new := cardinality(v_first_seen);
  v_replaced := cardinality(v_replacements);
  v_duplicate := cardinality(v_seen_before) - v_replaced;

  -- Duplicates of the same message inside this POST are duplicates too.
  v_duplicate := v_duplicate + (select coalesce(sum((m ->> 'deliveries')::integer - 1), 0)
                                from jsonb_array_elements(v_messages) m);
  -- Counted for ops_metrics here, where the figure is known (statement triggers on the receipts cost every
  -- POST two trigger calls and their transition tables).
  if v_duplicate > 0 then
    insert into wa.ops_events (kind, n) values ('duplicate', v_duplicate);
  end if;

  if jsonb_array_length(v_fresh) > 0 then
    -- Phase 2: business numbers in key order, then contacts (created in key order, locked in id order, with
    -- the lock a new conversation's foreign-key check will take: wa.upsert_contacts).
    insert into wa.phone_numbers (phone_number_id, waba_id, display_phone_number)
    select distinct on (m -> 'metadata' ->> 'phone_number_id')
           m -> 'metadata' ->> 'phone_number_id', m ->> 'waba_id', m -> 'metadata' ->> 'display_phone_number'
    from jsonb_array_elements(v_fresh) m
    order by m -> 'metadata' ->> 'phone_number_id'
    on conflict (phone_number_id) do nothing;

    v_contacts := wa.upsert_contacts((
      select jsonb_agg(jsonb_build_object('wa_id', s.wa_id, 'user_id', s.user_id, 'profile_name', s.profile_name,
                                          'username', s.username, 'phone_number_ids', s.phone_number_ids))
      from (
        select m ->> 'wa_id' as wa_id, m ->> 'user_id' as user_id,
               (array_agg(m ->> 'profile_name') filter (where m ->> 'profile_name' is not null))[1] as profile_name,
               (array_agg(m ->> 'username') filter (where m ->> 'username' is not null))[1] as username,
               array_agg(distinct m -> 'metadata' ->> 'phone_number_id') as phone_number_ids
        from jsonb_array_elements(v_fresh) m
        group by m ->> 'wa_id', m ->> 'user_id'
      ) s));
  end if;

  -- Phases 3-5: conversations, messages, buffers, for first deliveries only (replacements already have
  -- their rows); then the buffer append for first deliveries and replacements alike.
  with fresh as (
    select m ->> 'wamid' as wamid, m -> 'msg' as msg, m -> 'metadata' ->> 'phone_number_id' as phone_number_id,
           (v_contacts ->> (coalesce(m ->> 'wa_id', '') || '|' || coalesce(m ->> 'user_id', '')))::uuid as contact_id,
           wa.unix_time(m -> 'msg' ->> 'timestamp') as sent_at,
           coalesce(m -> 'msg' -> 'wabase' ->> 'direction', 'inbound') as direction,
           m ->> 'wamid' in (select unnest(v_replacements)) as replacement
    from jsonb_array_elements(v_fresh) m
  ),
  conversation_times as (
    select f.phone_number_id, f.contact_id, max(f.sent_at) as last_at,
           max(f.sent_at) filter (where f.direction = 'inbound') as last_inbound_at
    from fresh f
    where not f.replacement
    group by f.phone_number_id, f.contact_id
  ),
  conversations as (
    insert into public.conversations as c (phone_number_id, contact_id, last_message_at, last_inbound_at)
    select t.phone_number_id, t.contact_id, t.last_at, t.last_inbound_at
    from conversation_times t
    -- Open conversations first, then closed ones (reopening routes them), then new ones (routed as they are
    -- written): routing locks executives (step 6b of docs/locking.md) only after every conversation lock.
    order by (select case v.status when 'open' then 0 else 1 end from public.conversations v
              where v.phone_number_id = t.phone_number_id and v.contact_id = t.contact_id) nulls last,
             t.phone_number_id, t.contact_id
    on conflict (phone_number_id, contact_id) do update
      set last_message_at = greatest(c.last_message_at, excluded.last_message_at),
          last_inbound_at = greatest(c.last_inbound_at, excluded.last_inbound_at),
          updated_at = now()
    returning c.id, c.phone_number_id, c.contact_id
  ),
  inserted as (
    insert into public.messages (conversation_id, wamid, direction, type, body, content_text, context_wamid,
                                 sent_at, received_at, status, origin, read_at, read_receipt_sent_at)
    select c.id, f.wamid, f.direction, f.msg ->> 'type', f.msg - 'wabase', wa.message_text(f.msg),
           f.msg -> 'context' ->> 'id', f.sent_at, p_now, wa.stored_status(f.msg), f.msg -> 'wabase' ->> 'origin',
           -- The app's chat history was read there: never unread here, and no read receipt owed.
           case when f.msg -> 'wabase' ->> 'origin' = 'history' and f.direction = 'inbound' then p_now end,
           case when f.msg -> 'wabase' ->> 'origin' = 'history' and f.direction = 'inbound' then p_now end
    from fresh f
    join conversations c on c.phone_number_id = f.phone_number_id and c.contact_id = f.contact_id
    where not f.replacement
    order by f.wamid
    -- Only a receipt purged by retention and then redelivered could meet an existing row: keep that row.
    on conflict (wamid) do nothing
    returning id, conversation_id, type, wamid, direction, origin
  ),
  readable as (
    select i.id as message_id, i.conversation_id, c.phone_number_id, i.wamid
    from inserted i join conversations c on c.id = i.conversation_id
    join wa.phone_numbers n on n.phone_number_id = c.phone_number_id
    where wa.wakes_agent(i.type, i.direction, i.origin, n.react_wakes_agent)
    union all
    select pm.id, pm.conversation_id, pc.phone_number_id, pm.wamid
    from fresh f
    join public.messages pm on pm.wamid = f.wamid
    join public.conversations pc on pc.id = pm.conversation_id
    where f.replacement and wa.is_bot_readable(pm.type) and pm.origin is null
  ),
  appended as (
    insert into wa.buffer_messages (conversation_id, message_id, appended_at)
    select r.conversation_id, r.message_id, p_now from readable r order by r.wamid
    on conflict (message_id) do nothing
    returning conversation_id
  ),
  per_buffer as (
    select a.conversation_id, count(*)::integer as added, r.phone_number_id
    from appended a
    join (select distinct r.conversation_id, r.phone_number_id from readable r) r
      on r.conversation_id = a.conversation_id
    group by a.conversation_id, r.phone_number_id
  )
  insert into wa.buffers as b (conversation_id, phone_number_id, first_message_at, last_message_at, message_count,
                               due_at)
  select pb.conversation_id, pb.phone_number_id, p_now, p_now, pb.added,
         wa.buffer_due_at(p_now, p_now, pb.added, n.buffer_quiet_period, n.buffer_max_wait, n.buffer_max_messages)
  from per_buffer pb
  join wa.phone_numbers n on n.phone_number_id = pb.phone_number_id
  order by pb.conversation_id
  on conflict (conversation_id) do update
    set last_message_at = excluded.last_message_at,
        message_count = b.message_count + excluded.message_count,
        due_at = (select wa.buffer_due_at(b.first_message_at, excluded.last_message_at,
                                          b.message_count + excluded.message_count,
                                          n.buffer_quiet_period, n.buffer_max_wait, n.buffer_max_messages)
                  from wa.phone_numbers n where n.phone_number_id = b.phone_number_id);
  if v_has_edits or v_has_events then
    perform wa.after_conversation_phase(v_messages, v_first_seen, p_now);
  end if;

  -- Calls (the calls migration): their own events, then numbers, contacts, conversations and calls.
  v_calls := wa.ingest_calls(p_payload, p_now);

  if v_statuses > 0 then
    -- Phase 6: statuses. Every (wamid, status) event is recorded once (redeliveries counted), then the
    -- messages' statuses are derived from all their recorded events. A wamid that no outbound message holds yet
    -- may be getting it from wa.record_send_result right now: its lock, shared, comes first (wa.lock_wamids).
    perform wa.lock_wamids(array(
      select s.value ->> 'id'
      from wa.messages_changes(p_payload) v
      cross join lateral jsonb_array_elements(coalesce(v.value -> 'statuses', '[]')) s
      where not exists (select from public.messages m where m.wamid = s.value ->> 'id' and m.direction = 'outbound')
    ), false);
    with events as (
      select s.value as st
      from wa.messages_changes(p_payload) v
      cross join lateral jsonb_array_elements(coalesce(v.value -> 'statuses', '[]')) s
    ),
    distinct_events as (
      select st ->> 'id' as wamid, st ->> 'status' as status, count(*)::integer as deliveries,
             (array_agg(st))[1] as payload
      from events
      group by st ->> 'id', st ->> 'status'
    ),
    recorded as (
      insert into wa.message_statuses as s (wamid, status, status_at, payload, first_seen_at, last_seen_at,
                                            delivery_count)
      select d.wamid, d.status, wa.unix_time(d.payload ->> 'timestamp'), d.payload, p_now, p_now, d.deliveries
      from distinct_events d
      order by d.wamid, d.status
      on conflict (wamid, status) do update
        set last_seen_at = excluded.last_seen_at,
            delivery_count = s.delivery_count + excluded.delivery_count
      returning s.wamid, (s.xmax = 0) as inserted
    )
    select coalesce(array_agg(distinct r.wamid), '{}'),
           count(*) filter (where r.inserted),
           count(*) filter (where not r.inserted)
             + coalesce((select sum(d.deliveries - 1) from distinct_events d), 0),
           count(*) filter (where not exists (select from public.messages pm where pm.wamid = r.wamid))
    into v_status_wamids, v_statuses_recorded, v_statuses_duplicate, v_statuses_unmatched
    from recorded r;

    if cardinality(v_status_wamids) > 0 then
      v_statuses_applied := wa.apply_message_statuses(v_status_wamids);
    end if;
  end if;
  if v_has_edits or v_has_events or v_state_syncs > 0 then
    perform wa.apply_message_events(p_payload, v_messages, v_first_seen, p_now);
  end if;

  v_result := jsonb_build_object(
    'new', v_new,
    'replaced', v_replaced,
    'duplicate', v_duplicate,
    'unattributed', v_unattributed,
    'statuses_recorded', v_statuses_recorded,
    'statuses_duplicate', v_statuses_duplicate,
    'statuses_unmatched', v_statuses_unmatched,
    'statuses_applied', v_statuses_applied,
    'ignored', v_ignored_changes - coalesce((v_calls ->> 'call_changes')::integer, 0) + v_unattributed,
    'errors', v_error_changes) || v_calls;
  -- Logged raw last, with its result, in one insert (inserted first and updated, it cost every POST a second row
  -- version); the POST's transaction makes the log and what was ingested one.
  insert into wa.webhook_events (received_at, payload, raw_body, signature_valid, error, result)
  values (p_now, p_payload, p_raw_body, true, p_error, v_result)
  returning id into v_event_id;
  return v_result || jsonb_build_object('event_id', v_event_id);
end;
$$;
comment on function wa.ingest_webhook(jsonb, timestamptz, text, text) is
  'Stores one validated Cloud API webhook POST in one transaction: logs it raw, registers each inbound wamid '
  'atomically (insert or bump its delivery count), upserts business numbers, contacts and conversations, stores '
  'new messages (replacing "unsupported" placeholders), appends bot-readable ones to their conversation buffer '
  'exactly once, records status events and advances outbound statuses monotonically. Returns counts: new, '
  'replaced, duplicate, unattributed, statuses_recorded/duplicate/unmatched/applied, ignored, errors. '
  'Concurrent duplicates are safe without retries; real content replaces a placeholder whichever commits first. '
  'When the caller had to repair the body (p_payload is not the body as received), p_raw_body and p_error keep '
  'the original and why. Business app echoes and chat history are stored as messages too, and reactions, edits, '
  'revokes and the app''s address book applied (docs/conversation.md). Caller: whatsapp-webhook (service '
  'connection).';

create function wa.record_rejected_webhook(p_raw_body text, p_payload jsonb, p_error text,
                                           p_now timestamptz default now())
returns bigint
language sql
set search_path = ''
as $$
  insert into wa.webhook_events (received_at, payload, raw_body, signature_valid, error)
  values (p_now, p_payload, p_raw_body, true, p_error)
  returning id
$$;
comment on function wa.record_rejected_webhook(text, jsonb, text, timestamptz) is
  'Keeps a signed webhook body that could not be ingested (not JSON, not the Cloud API shape, a data error), '
  'raw and with the reason, so nothing signed is ever dropped. Returns the event id. Caller: whatsapp-webhook.';

revoke all on function wa.status_rank(text), wa.is_bot_readable(text), wa.message_text(jsonb),
  wa.messages_changes(jsonb),
  wa.unix_time(text), wa.buffer_due_at(timestamptz, timestamptz, integer, interval, interval, integer),
  wa.upsert_contacts(jsonb), wa.lock_wamids(text[], boolean), wa.apply_message_statuses(text[]),
  wa.ingest_webhook(jsonb, timestamptz, text, text), wa.record_rejected_webhook(text, jsonb, text, timestamptz)
  from public, anon, authenticated, service_role;
