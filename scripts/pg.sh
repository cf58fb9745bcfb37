#!/usr/bin/env bash
# pg.sh: a throw-away PostgreSQL 15 cluster for the tests and for running the gateway locally.
#
#   scripts/pg.sh start DIR [PORT]   initdb DIR if needed, start it on 127.0.0.1:PORT (a free port when
#                                    omitted), create database genai; prints ONLY the DSN on stdout
#   scripts/pg.sh stop DIR           stop the cluster in DIR (fast shutdown)
#   scripts/pg.sh dsn DIR            print the DSN of the cluster in DIR
#
# initdb and postgres refuse to run as root, so the cluster runs as the `postgres` OS user (created when
# absent) and DIR is owned by it. GW_PG_FAST=1 turns fsync off (tests only: a crash loses the cluster).
# Everything except the DSN goes to stderr, so `DSN=$(scripts/pg.sh start /tmp/pg)` just works.
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PGUSER_OS=postgres

die() { echo "pg.sh: $*" >&2; exit 1; }
log() { echo "pg.sh: $*" >&2; }

usage() {
  echo "usage: $0 start DIR [PORT] | stop DIR | dsn DIR" >&2
  exit 2
}

check_bins() {
  local b
  for b in initdb pg_ctl postgres psql; do
    if [ ! -x "$PGBIN/$b" ] && ! { [ "$b" = psql ] && command -v psql >/dev/null; }; then
      die "$PGBIN/$b not found: install PostgreSQL 15 (apt-get install postgresql-15 postgresql-client-15)"
    fi
  done
}

# Run a command as the postgres OS user (we are usually root in CI and containers).
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    if command -v runuser >/dev/null; then
      runuser -u "$PGUSER_OS" -- "$@"
    else
      su "$PGUSER_OS" -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
  else
    "$@"
  fi
}

ensure_user() {
  [ "$(id -u)" -eq 0 ] || return 0
  if ! id "$PGUSER_OS" >/dev/null 2>&1; then
    log "creating OS user $PGUSER_OS"
    useradd --system --home-dir /var/lib/postgresql --shell /bin/sh "$PGUSER_OS" >&2 ||
      die "cannot create the $PGUSER_OS user"
  fi
}

# A port nothing listens on, found by probing 127.0.0.1 from a random start.
free_port() {
  local p
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
    return
  fi
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  die "no free port found"
}

dsn_of() { echo "postgresql://postgres@127.0.0.1:$1/genai"; }

is_running() { [ -f "$1/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$1" status >/dev/null 2>&1; }

abs_dir() {
  case "$1" in
  /*) echo "$1" ;;
  *) echo "$(pwd)/$1" ;;
  esac
}

# DIR and each parent must be traversable by the postgres user.
check_reachable() {
  local d=$1
  [ "$(id -u)" -eq 0 ] || return 0
  if ! as_pg test -x "$(dirname "$d")"; then
    die "$d: its parent directories are not reachable by the $PGUSER_OS user (they need o+x); pick a DIR under /tmp"
  fi
}

cmd_start() {
  local dir port
  [ $# -ge 1 ] || usage
  dir=$(abs_dir "$1")
  port=${2:-}
  check_bins
  ensure_user
  if [ -f "$dir/gw_port" ] && is_running "$dir"; then
    log "already running in $dir"
    dsn_of "$(cat "$dir/gw_port")"
    return 0
  fi
  (umask 022 && mkdir -p "$(dirname "$dir")")
  check_reachable "$dir"
  if [ ! -f "$dir/PG_VERSION" ]; then
    mkdir -p "$dir"
    [ -z "$(ls -A "$dir")" ] || die "$dir is not empty and holds no cluster"
    chmod 700 "$dir"
    [ "$(id -u)" -ne 0 ] || chown "$PGUSER_OS:" "$dir"
    log "initdb $dir"
    as_pg "$PGBIN/initdb" -D "$dir" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >&2 ||
      die "initdb failed"
  fi
  [ -n "$port" ] || port=$(free_port)
  {
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $port"
    echo "unix_socket_directories = '$dir'"
    echo "timezone = 'UTC'"
    echo "log_timezone = 'UTC'"
    if [ "${GW_PG_FAST:-0}" = 1 ]; then
      echo "fsync = off"
      echo "synchronous_commit = off"
      echo "full_page_writes = off"
    fi
  } | as_pg tee "$dir/gw.conf" >/dev/null
  if ! grep -q "^include_if_exists = 'gw.conf'" "$dir/postgresql.conf"; then
    echo "include_if_exists = 'gw.conf'" | as_pg tee -a "$dir/postgresql.conf" >/dev/null
  fi
  echo "$port" | as_pg tee "$dir/gw_port" >/dev/null
  log "starting on 127.0.0.1:$port"
  as_pg "$PGBIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start >&2 ||
    die "pg_ctl start failed, see $dir/server.log"
  local psql=$PGBIN/psql
  [ -x "$psql" ] || psql=psql
  if [ "$(as_pg "$psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atc \
    "select 1 from pg_database where datname = 'genai'")" != 1 ]; then
    as_pg "$psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "create database genai" >&2 ||
      die "cannot create database genai"
  fi
  dsn_of "$port"
}

cmd_stop() {
  local dir
  [ $# -ge 1 ] || usage
  dir=$(abs_dir "$1")
  check_bins
  if is_running "$dir"; then
    as_pg "$PGBIN/pg_ctl" -D "$dir" -m fast -w stop >&2
  else
    log "not running in $dir"
  fi
}

cmd_dsn() {
  local dir
  [ $# -ge 1 ] || usage
  dir=$(abs_dir "$1")
  [ -f "$dir/gw_port" ] || die "no cluster started in $dir"
  dsn_of "$(cat "$dir/gw_port")"
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case "$cmd" in
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
dsn) cmd_dsn "$@" ;;
*) usage ;;
esac
