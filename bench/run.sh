#!/usr/bin/env bash
# `npm run bench`: the benchmarks of SPEC 8 and issue 10 on a throwaway cluster (never the data of a running
# `npm start`), migrated with the Supabase CLI like `npm test` does, then bench/main.ts against it (`--quick`
# for the small workloads; benchmark names to run only those). Prints the table on stdout, writes
# bench/results/, and removes the cluster whatever happened: nothing is left running.
set -euo pipefail
# shellcheck source=local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../local/lib.sh"
cd "$ROOT"

ensure_dependencies

# selected NAME ARGS...: whether the benchmark NAME runs with these arguments (named, or none named: all).
selected() {
  local name=$1 arg named=0
  shift
  for arg in "$@"; do
    [ "$arg" = "$name" ] && return 0
    [[ $arg == --* ]] || named=1
  done
  [ "$named" -eq 0 ]
}

started=$SECONDS
start_throwaway_cluster bench "${WABASE_BENCH_DB_PORT:-54340}"
port=$THROWAWAY_PORT
pgdata=$THROWAWAY_DIR/db
# The durable benchmark's second cluster, with fsync, synchronous_commit and full_page_writes on.
durable_url=
if selected durable "$@"; then
  start_throwaway_cluster bench-durable "$((port + 1))" durable
  durable_url=$(db_url "$THROWAWAY_PORT")
fi

# The chaos benchmark restarts the first cluster once.
status=0
SUPABASE_DB_URL=$(db_url "$port") WABASE_BENCH_PGDATA="$pgdata" WABASE_BENCH_DURABLE_DB_URL="$durable_url" \
  "$DENO" run -A bench/main.ts "$@" || status=$?
say "── npm run bench took $((SECONDS - started)) s"
exit "$status"
