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

started=$SECONDS
start_throwaway_cluster bench "${WABASE_BENCH_DB_PORT:-54340}"
port=$THROWAWAY_PORT

# The chaos benchmark restarts this cluster once.
status=0
SUPABASE_DB_URL=$(db_url "$port") WABASE_BENCH_PGDATA="$THROWAWAY_DIR/db" "$DENO" run -A bench/main.ts "$@" || status=$?
say "── npm run bench took $((SECONDS - started)) s"
exit "$status"
