-- wabase agent tools: the HTTP tools the openai agent may call (an ERP's inventory lookup, say), declared here
-- and offered to the model as function tools; their answers cached by (tool, arguments) so a slow or failing
-- backend costs a stale answer instead of a hung reply (seed 002, section 2.3: 30 s SOAP timeouts hung the
-- socket; the plan was 10 s timeouts, retries, a breaker, a 60 s cache and cached fallbacks); and every call
-- kept with its batch for audit. The processor runs the calls (supabase/functions/buffer-processor/tools.ts).

-- ============================================================================================
-- Tables
-- ============================================================================================
create table wa.agent_tools (
  -- The function name the model calls (OpenAI's rule: letters, digits, _ and -, at most 64).
  name text primary key check (name ~ '^[A-Za-z0-9_-]{1,64}$'),
  description text not null check (description <> ''),
  -- JSON schema of the arguments object, given to the model as is.
  parameters jsonb not null default '{"type": "object", "properties": {}}'
    check (jsonb_typeof(parameters) = 'object' and parameters ->> 'type' = 'object'),
  -- POSTed the arguments as JSON; answers JSON.
  endpoint text not null check (endpoint ~ '^https?://'),
  -- Per attempt; a tool never holds the agent longer than this (seed 002: 10 s, not 30).
  timeout_ms integer not null default 5000 check (timeout_ms between 100 and 10000),
  -- How long an answer is served from the cache without calling the tool (0: never cached).
  cache_ttl interval not null default interval '60 seconds' check (cache_ttl >= interval '0'),
  -- When the tool fails (timeout, error, open breaker): answer with the last cached value however old.
  serve_stale boolean not null default false,
  enabled boolean not null default true,
  updated_at timestamptz not null default now()
);
comment on table wa.agent_tools is
  'HTTP tools offered to the openai agent as function tools: name, description, JSON schema of the arguments, '
  'endpoint, timeout (at most 10 s), cache TTL, whether a stale cached answer may stand in when it fails.';

create table wa.agent_tool_cache (
  tool text not null references wa.agent_tools (name) on delete cascade,
  -- md5 of the arguments' jsonb text: jsonb normalises key order and spacing, so equal arguments share a key,
  -- and a key stays small whatever the arguments hold.
  arguments_key text not null,
  arguments jsonb not null,
  result jsonb not null,
  fetched_at timestamptz not null,
  primary key (tool, arguments_key)
);
comment on table wa.agent_tool_cache is 'The last answer of each tool per arguments, with when it was fetched.';

create table wa.agent_tool_calls (
  id bigint generated always as identity primary key,
  -- The batch (conversation and claim fence) whose agent round made the call.
  conversation_id uuid not null,
  fence bigint not null,
  round integer not null check (round > 0),
  tool text not null,
  arguments jsonb,
  -- What the model was answered.
  result jsonb,
  -- live: the tool answered; cache: a fresh cached answer; stale: a cached answer past its TTL, the tool failing;
  -- error: the tool failed and nothing could stand in; unknown: no such tool or unusable arguments.
  source text not null check (source in ('live', 'cache', 'stale', 'error', 'unknown')),
  error text,
  duration_ms integer not null check (duration_ms >= 0),
  called_at timestamptz not null
);
create index agent_tool_calls_batch_idx on wa.agent_tool_calls (conversation_id, fence);
create index agent_tool_calls_called_at_idx on wa.agent_tool_calls (called_at);
comment on table wa.agent_tool_calls is
  'Every tool call the agent made, with its batch (conversation, fence), round, arguments, what the model was '
  'answered and where that came from: the audit of what the bot looked up before answering.';

revoke all on table wa.agent_tools, wa.agent_tool_cache, wa.agent_tool_calls
  from public, anon, authenticated, service_role;

-- ============================================================================================
-- Functions (the processor's service connection)
-- ============================================================================================
create function wa.enabled_agent_tools()
returns jsonb
language sql
stable
set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object(
           'name', t.name, 'description', t.description, 'parameters', t.parameters, 'endpoint', t.endpoint,
           'timeout_ms', t.timeout_ms, 'cache_ttl_ms', (extract(epoch from t.cache_ttl) * 1000)::bigint,
           'serve_stale', t.serve_stale, 'updated_at', t.updated_at) order by t.name), '[]')
  from wa.agent_tools t
  where t.enabled
$$;
comment on function wa.enabled_agent_tools() is
  'The enabled tools as [{name, description, parameters, endpoint, timeout_ms, cache_ttl_ms, serve_stale, '
  'updated_at}], by name. Caller: buffer-processor, once per batch.';

create function wa.agent_tool_cached(p_tool text, p_arguments jsonb, p_now timestamptz default now())
returns table (result jsonb, fetched_at timestamptz, fresh boolean)
language sql
stable
set search_path = ''
as $$
  select c.result, c.fetched_at, p_now - c.fetched_at < t.cache_ttl
  from wa.agent_tool_cache c
  join wa.agent_tools t on t.name = c.tool
  where c.tool = p_tool and c.arguments_key = md5(p_arguments::text)
$$;
comment on function wa.agent_tool_cached(text, jsonb, timestamptz) is
  'The cached answer of a tool for these arguments (jsonb-equal), when fetched, and whether it is still within '
  'the tool''s cache_ttl at p_now; no row when never cached. Caller: buffer-processor.';

create function wa.cache_agent_tool_result(p_tool text, p_arguments jsonb, p_result jsonb,
                                           p_now timestamptz default now())
returns void
language sql
set search_path = ''
as $$
  insert into wa.agent_tool_cache as c (tool, arguments_key, arguments, result, fetched_at)
  values (p_tool, md5(p_arguments::text), p_arguments, p_result, p_now)
  on conflict (tool, arguments_key) do update
    set result = excluded.result, fetched_at = excluded.fetched_at
    where c.fetched_at <= excluded.fetched_at
$$;
comment on function wa.cache_agent_tool_result(text, jsonb, jsonb, timestamptz) is
  'Keeps a tool''s answer for these arguments as of p_now (an older answer never overwrites a newer one). '
  'Caller: buffer-processor.';

create function wa.record_agent_tool_calls(p_conversation_id uuid, p_fence bigint, p_calls jsonb)
returns integer
language sql
set search_path = ''
as $$
  with inserted as (
    insert into wa.agent_tool_calls (conversation_id, fence, round, tool, arguments, result, source, error,
                                     duration_ms, called_at)
    select p_conversation_id, p_fence, c.round, c.tool, c.arguments, c.result, c.source, c.error, c.duration_ms,
           c.called_at
    from jsonb_to_recordset(p_calls)
      as c (round integer, tool text, arguments jsonb, result jsonb, source text, error text, duration_ms integer,
            called_at timestamptz)
    returning 1
  )
  select count(*)::integer from inserted
$$;
comment on function wa.record_agent_tool_calls(uuid, bigint, jsonb) is
  'Keeps the tool calls of one agent answer with its batch: [{round, tool, arguments, result, source, error, '
  'duration_ms, called_at}]. Returns how many. Caller: buffer-processor, once per batch that called tools.';

revoke all on function wa.enabled_agent_tools(), wa.agent_tool_cached(text, jsonb, timestamptz),
  wa.cache_agent_tool_result(text, jsonb, jsonb, timestamptz), wa.record_agent_tool_calls(uuid, bigint, jsonb)
  from public, anon, authenticated, service_role;
