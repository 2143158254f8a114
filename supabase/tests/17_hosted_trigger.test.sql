-- The hosted trigger (issue 22): the pg_net and Vault stand-ins keep pg_net's and Vault's surface, the
-- pg_cron tick requests an invocation through pg_net with the key from Vault only when no live holder keeps
-- the slot, holders take over, renew, hand off and release it. Times are injected (p_now).
begin;
select plan(23);

-- ---------------------------------------------------------------------------------------------
-- The stand-ins' surface (what wa.invoke_edge_function detects and calls)
-- ---------------------------------------------------------------------------------------------
select ok(to_regprocedure('net.http_post(text,jsonb,jsonb,jsonb,integer)') is not null
          and to_regprocedure('net.http_get(text,jsonb,jsonb,integer)') is not null,
  'net.http_post and net.http_get have pg_net''s signatures');
create temp table posted as select net.http_post('http://example.test/x', '{"a": 1}') as id;
select is(
  (select jsonb_build_object('method', method, 'url', url, 'headers', headers,
                             'body', convert_from(body, 'UTF8')::jsonb, 'timeout', timeout_milliseconds)
   from net.http_request_queue q join posted p on p.id = q.id),
  '{"method": "POST", "url": "http://example.test/x", "headers": {"Content-Type": "application/json"},
    "body": {"a": 1}, "timeout": 5000}'::jsonb,
  'http_post queues a JSON POST with pg_net''s defaults (content type, 5000 ms timeout)');
select throws_ok($$select net.http_post('http://example.test/x', '{}', headers := '{"content-type": "text/plain"}')$$,
  'Content-Type header must be "application/json"', 'http_post refuses a body that is not JSON, as pg_net does');
select ok(exists (select from information_schema.columns where table_schema = 'net' and table_name = '_http_response'
                  and column_name = 'timed_out'), 'net._http_response has pg_net''s columns');
select lives_ok($$select vault.create_secret('secret-value', 'wabase_test_secret')$$,
  'vault.create_secret stores a secret under a name');
select is((select decrypted_secret from vault.decrypted_secrets where name = 'wabase_test_secret'), 'secret-value',
  'vault.decrypted_secrets returns it');
select throws_ok($$select vault.create_secret('again', 'wabase_test_secret')$$, '23505', null,
  'a second secret with the same name violates the unique name, as in Vault');

-- ---------------------------------------------------------------------------------------------
-- Requests through pg_net with the key from Vault
-- ---------------------------------------------------------------------------------------------
delete from net.http_request_queue;
select is(wa.keep_functions_alive('2026-05-01 10:00:00+00'), 0,
  'without the Vault secrets nothing is requested');
select vault.create_secret('http://127.0.0.1:9/', 'wabase_project_url');
select vault.create_secret('service-role-key', 'wabase_service_role_key');
select is(wa.keep_functions_alive('2026-05-01 10:00:00+00'), 1, 'an empty slot gets one invocation requested');
select is(
  (select jsonb_build_object('url', url, 'authorization', headers ->> 'Authorization',
                             'body', convert_from(body, 'UTF8')::jsonb, 'timeout', timeout_milliseconds)
   from net.http_request_queue),
  '{"url": "http://127.0.0.1:9/functions/v1/buffer-processor", "authorization": "Bearer service-role-key",
    "body": {"keepalive": true}, "timeout": 150000}'::jsonb,
  'the request POSTs {"keepalive": true} to the function with the service role key from Vault');
select is(wa.keep_functions_alive('2026-05-01 10:00:05+00'), 0,
  'a requested invocation is not requested again within the grace');
select is(wa.keep_functions_alive('2026-05-01 10:00:11+00'), 1, 'one that never arrived is requested again');

-- ---------------------------------------------------------------------------------------------
-- Holders
-- ---------------------------------------------------------------------------------------------
select ok(wa.acquire_keepalive('buffer-processor', 'inv-a', '60 seconds', '5 seconds', '2026-05-01 10:00:12+00'),
  'the arriving invocation takes the empty slot');
select ok(not wa.acquire_keepalive('buffer-processor', 'inv-b', '60 seconds', '5 seconds', '2026-05-01 10:00:13+00'),
  'a second one does not while the holder is live');
select is(wa.keep_functions_alive('2026-05-01 10:00:15+00'), 0, 'the tick requests nothing while the holder lives');
select is(
  (select array[holder, next_at is null, backlog = 0]
   from wa.keepalive_beat('buffer-processor', 'inv-a', '5 seconds', 64, '2026-05-01 10:00:16+00')),
  array[true, true, true],
  'a heartbeat renews the lease and reports the next claim time and the backlog');
select is(wa.keep_functions_alive('2026-05-01 10:00:22+00'), 1,
  'a holder whose heartbeat stopped (lease run out) is replaced');
select ok(wa.acquire_keepalive('buffer-processor', 'inv-c', '60 seconds', '5 seconds', '2026-05-01 10:00:23+00'),
  'its replacement takes the slot');
create temp table handoff as
  select * from wa.keepalive_beat('buffer-processor', 'inv-c', '5 seconds', 64, '2026-05-01 10:01:19+00');
select is((select count(*)::integer from handoff where holder) + (select count(*)::integer from net.http_request_queue),
  5, 'a beat within the handoff of its end requests the successor itself (its 4th request)');
select ok(wa.acquire_keepalive('buffer-processor', 'inv-d', '60 seconds', '5 seconds', '2026-05-01 10:01:20+00')
          and not (select holder from wa.keepalive_beat('buffer-processor', 'inv-c', '5 seconds', 64,
                                                         '2026-05-01 10:01:21+00')),
  'the successor takes over within the handoff, and the old holder''s next beat says it no longer holds');
select ok(wa.release_keepalive('buffer-processor', 'inv-d', '2026-05-01 10:01:30+00'),
  'a holder that stops early releases the slot');
select is((select count(*)::integer from net.http_request_queue), 5,
  '... and requests its successor at once');
select ok(not wa.release_keepalive('buffer-processor', 'inv-c', '2026-05-01 10:01:31+00'),
  'a former holder cannot release it');

select * from finish();
rollback;
