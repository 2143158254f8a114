-- Agent tools: declarations are bounded (a timeout of at most 10 s), answers are cached by tool and
-- jsonb-equal arguments and fresh within the tool's TTL at the caller's time, an older answer never overwrites
-- a newer one, and tool calls are kept with their batch.
begin;
select plan(10);

insert into wa.agent_tools (name, description, endpoint, timeout_ms, cache_ttl)
values ('pg_inventory', 'stock', 'http://127.0.0.1:9/inventory', 1000, interval '60 seconds');

select throws_ok($$insert into wa.agent_tools (name, description, endpoint, timeout_ms)
                   values ('slow_soap', 'x', 'http://erp/soap', 30000)$$, '23514', null,
  'a tool may not be given more than 10 s (seed 002''s 30 s SOAP timeout is refused)');
select throws_ok($$insert into wa.agent_tools (name, description, endpoint) values ('bad name!', 'x', 'http://x')$$,
  '23514', null, 'names follow the function-name rule of the chat completions API');
select ok((select jsonb_path_exists(wa.enabled_agent_tools(), '$[*] ? (@.name == "pg_inventory" && @.cache_ttl_ms == 60000)')),
  'enabled tools are listed with their TTL in milliseconds');

select wa.cache_agent_tool_result('pg_inventory', '{"sku": "A-1", "site": "MX"}', '{"available": 5}',
                                  timestamptz '2026-12-01 12:00:00+00');
select results_eq($$select result, fresh from wa.agent_tool_cached('pg_inventory', '{"site":"MX","sku":"A-1"}',
                                                                  timestamptz '2026-12-01 12:00:59+00')$$,
  $$values ('{"available": 5}'::jsonb, true)$$, 'the same arguments in another key order hit the cache, fresh');
select results_eq($$select fresh from wa.agent_tool_cached('pg_inventory', '{"sku": "A-1", "site": "MX"}',
                                                          timestamptz '2026-12-01 12:01:00+00')$$,
  $$values (false)$$, 'at the TTL it is stale (still returned, for a stale fallback)');
select is((select count(*)::int from wa.agent_tool_cached('pg_inventory', '{"sku": "A-2"}')), 0,
  'other arguments miss');

select wa.cache_agent_tool_result('pg_inventory', '{"sku": "A-1", "site": "MX"}', '{"available": 1}',
                                  timestamptz '2026-12-01 11:59:00+00');
select is((select result from wa.agent_tool_cached('pg_inventory', '{"sku": "A-1", "site": "MX"}')),
  '{"available": 5}'::jsonb, 'an older answer (a slow call finishing late) does not overwrite a newer one');
select wa.cache_agent_tool_result('pg_inventory', '{"sku": "A-1", "site": "MX"}', '{"available": 4}',
                                  timestamptz '2026-12-01 12:05:00+00');
select is((select result from wa.agent_tool_cached('pg_inventory', '{"sku": "A-1", "site": "MX"}')),
  '{"available": 4}'::jsonb, 'a newer one does');

select is(wa.record_agent_tool_calls('17000000-0000-0000-0000-0000000000aa', 42, jsonb_build_array(
  jsonb_build_object('round', 1, 'tool', 'pg_inventory', 'arguments', '{"sku":"A-1"}'::jsonb,
                     'result', '{"available":4}'::jsonb, 'source', 'cache', 'duration_ms', 2,
                     'called_at', '2026-12-01T12:05:01Z'),
  jsonb_build_object('round', 1, 'tool', 'pg_inventory', 'arguments', '{"sku":"B-2"}'::jsonb,
                     'result', '{"error":"pg_inventory is unavailable: HTTP 503"}'::jsonb, 'source', 'error',
                     'error', 'HTTP 503', 'duration_ms', 310, 'called_at', '2026-12-01T12:05:01Z'))), 2,
  'a batch''s tool calls are recorded in one call');
select results_eq($$select source, error from wa.agent_tool_calls
                    where conversation_id = '17000000-0000-0000-0000-0000000000aa' and fence = 42 order by id$$,
  $$values ('cache', null::text), ('error', 'HTTP 503')$$, 'and found by their batch');

select * from finish();
rollback;
