#!/usr/bin/env bash
# The Docker-free local stack: `npm start` (foreground, Ctrl-C stops everything), `npm run up` / `down`
# (background, idempotent), `npm run db:reset`. `npm test` is local/test.sh.
set -euo pipefail
# shellcheck source=local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DB_PORT=54322
FUNCTIONS_PORT=54321
STATE=$(state_dir)
DATA="$STATE/db"
SERVER_PID="$STATE/functions.pid"
SERVER_LOG="$STATE/functions.log"
FUNCTIONS_URL="http://127.0.0.1:$FUNCTIONS_PORT/functions/v1"

# The local database, created on first use, with the platform shim, migrations and seed applied.
db_up() {
  ensure_dependencies
  mkdir -p "$STATE"
  local fresh=
  [ -f "$DATA/PG_VERSION" ] || fresh=1
  cluster_init "$DATA" "$DB_PORT"
  cluster_start "$DATA" "$DB_PORT"
  apply_platform "$DB_PORT"
  # The CLI records applied migrations and seed files, so re-running applies only what is new.
  push_migrations "$DB_PORT" --include-seed >/dev/null 2>"$STATE/push.log" || {
    cat "$STATE/push.log" >&2
    die "supabase db push failed (see above)"
  }
  [ -n "$fresh" ] && say "created the local database in $DATA"
  return 0
}

server_running() { [ -f "$SERVER_PID" ] && kill -0 "$(cat "$SERVER_PID")" 2>/dev/null; }

# The functions server in its own process group, so `down` stops it with everything it started.
start_server() {
  port_in_use "$FUNCTIONS_PORT" && die "port $FUNCTIONS_PORT is taken by another process"
  : >"$SERVER_LOG"
  (FUNCTIONS_PORT=$FUNCTIONS_PORT WABASE_STORAGE_ROOT="$STATE/storage" \
    exec setsid "$DENO" run -A "$ROOT/local/stack-server.ts" >>"$SERVER_LOG" 2>&1) &
  echo $! >"$SERVER_PID"
}

# Waits until readiness is 200 (database, migrations, cron jobs, worker draining, breakers); on timeout says
# why, from the readiness reasons.
wait_healthy() {
  node -e '
    const url = process.argv[1], deadline = Date.now() + 60_000;
    let last = "the functions server did not answer";
    (async () => {
      while (Date.now() < deadline) {
        try {
          const res = await fetch(url);
          if (res.status === 200) process.exit(0);
          last = (await res.json()).reasons?.join("; ") ?? String(res.status);
        } catch {}
        await new Promise((r) => setTimeout(r, 200));
      }
      console.error(last);
      process.exit(1);
    })();' "$FUNCTIONS_URL/health/ready" || die "wabase did not become ready (above); see $SERVER_LOG"
}

print_urls() {
  local demo api="http://127.0.0.1:$FUNCTIONS_PORT" anon password
  demo=$("$DENO" run -A "$ROOT/local/demo-webhook.ts")
  anon=$(env_value SUPABASE_ANON_KEY)
  password=$(env_value WABASE_DEMO_PASSWORD)
  cat >&2 <<EOF

  wabase is running
  Supabase API $api   (createClient("$api", anonKey) works unchanged)
  REST        $api/rest/v1/   (PostgREST $("$POSTGREST" --version | sed 's/PostgREST //'))
  Auth        $api/auth/v1/   (stand-in: password sign-in, refresh, user, sign-out, admin users)
  Storage     $api/storage/v1/
  Realtime    ws://127.0.0.1:$FUNCTIONS_PORT/realtime/v1/websocket
  anon key    $anon
  service key $(env_value SUPABASE_SERVICE_ROLE_KEY)
  Demo users  ana@, beto@ (executives), coordinacion@, admin@ ...demo.wabase.local
  Password    $password   (WABASE_DEMO_PASSWORD)
  Database    postgresql://postgres:postgres@127.0.0.1:$DB_PORT/postgres
  Functions   $FUNCTIONS_URL/<name>
  Readiness   curl $FUNCTIONS_URL/health/ready
  Status page $FUNCTIONS_URL/health/status
  Webhook     $FUNCTIONS_URL/whatsapp-webhook
  Logs        $SERVER_LOG

  Send a signed demo WhatsApp message:
  $demo

  Sign in as Ana and list her conversations:
  TOKEN=\$(curl -sS '$api/auth/v1/token?grant_type=password' -H "apikey: $anon" \\
    -H 'content-type: application/json' -d '{"email":"ana@demo.wabase.local","password":"$password"}' \\
    | node -pe 'JSON.parse(require("fs").readFileSync(0)).access_token')
  curl -sS -X POST $api/rest/v1/rpc/list_conversations -H "apikey: $anon" -H "authorization: Bearer \$TOKEN" \\
    -H 'content-type: application/json' -d '{}'

EOF
}

cmd_up() {
  db_up
  server_running || start_server
  wait_healthy
  print_urls
}

cmd_down() {
  if server_running; then
    local pid
    pid=$(cat "$SERVER_PID")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$SERVER_PID"
  cluster_stop "$DATA"
  say "stopped"
}

cmd_start() {
  server_running && die "the stack is already running in the background; run 'npm run down' first"
  db_up
  TAIL_PID=
  trap 'trap - INT TERM EXIT; [ -z "$TAIL_PID" ] || kill "$TAIL_PID" 2>/dev/null; cmd_down' INT TERM EXIT
  start_server
  wait_healthy
  print_urls
  say "Ctrl-C stops everything"
  tail -n +1 -f "$SERVER_LOG" &
  TAIL_PID=$!
  wait "$(cat "$SERVER_PID")" || true
}

cmd_reset() {
  local was_running=
  server_running && was_running=1
  cmd_down
  rm -rf "$DATA"
  if [ -n "$was_running" ]; then cmd_up; else db_up && cluster_stop "$DATA"; fi
  say "local database reset: platform, migrations and seed applied afresh"
}

case "${1:-}" in
  start) cmd_start ;;
  up) cmd_up ;;
  down) cmd_down ;;
  reset) cmd_reset ;;
  *) die "usage: local/stack.sh start|up|down|reset" ;;
esac
