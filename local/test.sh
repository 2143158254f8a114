#!/usr/bin/env bash
# `npm test`: format, lint and type checks, one definition per database object, the docs' shape, then a
# throwaway cluster (never the data of a running `npm start`) migrated with the Supabase CLI, plpgsql_check
# through `supabase db lint`, the generated client types against its schema, pgTAP through pg_prove, deno test
# (which starts the real PostgREST and the stand-ins behind the gateway on free ports), the benchmarks'
# quick mode against that cluster, then the processor and chaos tests again on the hosted path
# (WABASE_TRIGGER=cron: pg_cron, pg_net and Vault stand-ins, the function over HTTP). Exits non-zero on the
# first failure; leaves nothing running.
set -euo pipefail
# shellcheck source=local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

step() { say "── $*"; }

# The status page test renders the page in headless Chromium (driven by playwright-core).
APT_PACKAGES+=(chromium)
ensure_dependencies

step "deno fmt --check"
"$DENO" fmt --check
step "deno lint"
"$DENO" lint
step "deno check"
"$DENO" check .
step "migrations: every object created once (local/check-migrations.ts)"
"$DENO" run --allow-read local/check-migrations.ts
step "docs: README front door, narrow tables (local/check-docs.ts)"
"$DENO" run --allow-read local/check-docs.ts

start_throwaway_cluster test "${WABASE_TEST_DB_PORT:-54330}"
port=$THROWAWAY_PORT

step "supabase db lint (plpgsql_check)"
schemas=$(psql -X -At "$(db_url "$port")" -c "
  select string_agg(nspname, ',' order by nspname) from pg_namespace
  where (pg_get_userbyid(nspowner) = 'postgres' or nspname = 'public')
    and nspname not in ('extensions', 'supabase_migrations')")
"$SUPABASE" db lint --db-url "$(db_url "$port")" --schema "$schemas" --level warning --fail-on warning

step "types: client/database.types.ts is what postgres-meta generates from the migrations (npm run types)"
SUPABASE_DB_URL=$(db_url "$port") "$DENO" run -A local/types.ts --check

step "pgTAP (pg_prove supabase/tests)"
pg_prove -h 127.0.0.1 -p "$port" -U postgres -d postgres --failures supabase/tests/*.test.sql

step "deno test"
SUPABASE_DB_URL=$(db_url "$port") "$DENO" test -A --permit-no-files

step "benchmarks, quick mode (npm run bench -- --quick), durable on a second cluster with fsync on"
pgdata=$THROWAWAY_DIR/db
start_throwaway_cluster test-durable "$((port + 1))" durable
durable_url=$(db_url "$THROWAWAY_PORT")
SUPABASE_DB_URL=$(db_url "$port") WABASE_BENCH_PGDATA="$pgdata" WABASE_BENCH_DURABLE_DB_URL="$durable_url" \
  "$DENO" run -A bench/main.ts --quick

step "hosted path (WABASE_TRIGGER=cron): processor tests and quick chaos through pg_cron, pg_net and Vault"
WABASE_TRIGGER=cron SUPABASE_DB_URL=$(db_url "$port") "$DENO" test -A supabase/functions/buffer-processor/ \
  local/buffer-worker.test.ts local/pg-net/
WABASE_TRIGGER=cron SUPABASE_DB_URL=$(db_url "$port") WABASE_BENCH_PGDATA="$pgdata" \
  "$DENO" run -A bench/main.ts --quick chaos
