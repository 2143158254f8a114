#!/usr/bin/env bash
# `npm run bench`: the benchmarks of SPEC 8 on a throwaway cluster (never the data of a running `npm start`),
# migrated with the Supabase CLI like `npm test` does, then bench/main.ts against it. Prints the table on
# stdout, writes bench/results/<name>.json, and removes the cluster whatever happened: nothing is left running.
set -euo pipefail
# shellcheck source=local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../local/lib.sh"
cd "$ROOT"

ensure_dependencies

start_throwaway_cluster bench "${WABASE_BENCH_DB_PORT:-54340}"
port=$THROWAWAY_PORT

SUPABASE_DB_URL=$(db_url "$port") "$DENO" run -A bench/main.ts "$@"
