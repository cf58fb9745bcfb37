#!/usr/bin/env bash
# bench/export.sh: the exporters' benchmark (bench/README.md, "Exporters"). Prints figures; never fails on
# a target.
#
# Builds Release into build-bench/, starts otlp_sink (the cheapest local OTLP receiver, HTTP and gRPC) and,
# for the ingestion runs, its own PostgreSQL (scripts/pg.sh, durable settings), then:
#   1. bench_export: each exporter alone draining a backlog of 300 requests x 100 spans into otlp_sink,
#      gzip on (the default) and off: spans/s over the wall clock and over the exporter's busy time;
#   2. ingestion with the exporters off, then with Langfuse (HTTP, its transform) and SigNoz (gRPC) both
#      on, sending to otlp_sink: wrk posts OTLP/HTTP protobuf for BENCH_SECONDS, fresh ids per request.
#      Once with Postgres (the production set-up: spans/s accepted and landed), once without (the receive
#      path alone is the limit, so the exporters' CPU shows; there also with SigNoz over HTTP, whose gzip
#      is ours, not gRPC's). With exporters on, it also waits until they have caught up and reports what
#      they sent and what their lag caps skipped.
# Each ingestion figure is run BENCH_ROUNDS times (default 2), off and on interleaved, each run with a
# fresh gateway and database; the table shows every round (the spread on a shared 2-core machine is large).
# Environment: BENCH_SECONDS (10), BENCH_CONNS (4), BENCH_ENTRIES (300), BENCH_ROUNDS (2),
# BENCH_SPOOL_BYTES (the gateway's default, 256 MiB), BENCH_KEEP=1 keeps the temp dir.
set -euo pipefail

# shellcheck source=../scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

SECS=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNS:-4}
ENTRIES=${BENCH_ENTRIES:-300}
NBODIES=8
SPOOL_BYTES=${BENCH_SPOOL_BYTES:-268435456}
ROUNDS=${BENCH_ROUNDS:-2}
BUILD=$GW_ROOT/build-bench

GW_APT_PKGS="$GW_APT_PKGS wrk curl"
gw_ensure_packages
[ -x /usr/lib/postgresql/15/bin/initdb ] || gw_die "PostgreSQL 15 server binaries not found (apt-get install postgresql-15)"

gw_say "building Release into $BUILD"
cmake -S "$GW_ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGW_TESTS=OFF >/dev/null || gw_die "cmake configure failed"
cmake --build "$BUILD" -j "$(nproc)" --target genai-gateway gen_payload bench_export otlp_sink >/dev/null 2>"$BUILD/bench-build.log" ||
  { cat "$BUILD/bench-build.log" >&2; gw_die "build failed"; }

WORK=$(mktemp -d /tmp/genai-export-bench.XXXXXX)
chmod 755 "$WORK"
GW_PID=
SINK_PID=
PG_DIR=$WORK/pg
cleanup() {
  local rc=$?
  for p in $GW_PID $SINK_PID; do
    if kill -0 "$p" 2>/dev/null; then
      kill -TERM "$p" 2>/dev/null || true
      wait "$p" 2>/dev/null || true
    fi
  done
  if [ -f "$PG_DIR/PG_VERSION" ]; then
    "$GW_ROOT/scripts/pg.sh" stop "$PG_DIR" 2>/dev/null || true
  fi
  if [ "${BENCH_KEEP:-0}" = 1 ]; then gw_say "kept $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT INT TERM

# free_ports N: N distinct TCP ports that were free a moment ago (bound together, so never the same twice).
free_ports() {
  python3 -c 'import socket, sys; ss = [socket.socket() for _ in range(int(sys.argv[1]))]; [s.bind(("127.0.0.1", 0)) for s in ss]; print(*[s.getsockname()[1] for s in ss])' "$1"
}
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.${2:-0}f\", ($1) }"; }
# metric NAME [LABELS]: a series from the admin endpoint, e.g. metric genai_gateway_exporter_up 'exporter="signoz"'.
metric() {
  local key=$1
  [ -n "${2:-}" ] && key="$1{$2}"
  curl -fsS "http://$ADMIN/metrics" | awk -v m="$key" '$1 == m { v = $2 } END { print (v == "" ? 0 : v) }'
}

mkdir -p "$WORK/bodies"
"$BUILD/bench/gen_payload" -n "$NBODIES" -j "$WORK/bodies"
read -r SINK_HTTP SINK_GRPC < <(free_ports 2)
"$BUILD/bench/otlp_sink" "$SINK_HTTP" "$SINK_GRPC" >"$WORK/sink.out" 2>"$WORK/sink.log" &
SINK_PID=$!
sleep 0.5

# ---- 1. export throughput, in process ----
gw_say "bench_export: $ENTRIES requests x 100 spans per exporter, gzip on and off"
"$BUILD/bench/bench_export" -n "$ENTRIES" -z 1 "$SINK_HTTP" "$SINK_GRPC" "$WORK/bodies/body-000.pb" | tee "$WORK/export.out"
"$BUILD/bench/bench_export" -n "$ENTRIES" -z 0 "$SINK_HTTP" "$SINK_GRPC" "$WORK/bodies/body-000.pb" | tee -a "$WORK/export.out"
ex() { awk -v x="$1" -v z="gzip=$2" -v f="$3=" '$1 == x && $3 == z { for (i = 1; i <= NF; i++) if (index($i, f) == 1) { sub(f, "", $i); print $i } }' "$WORK/export.out"; }

# ---- 2. ingestion with exporters off and on ----
gw_say "starting PostgreSQL in $PG_DIR"
DSN=$("$GW_ROOT/scripts/pg.sh" start "$PG_DIR" 2>"$WORK/pg-start.log") || { cat "$WORK/pg-start.log" >&2; gw_die "PostgreSQL did not start"; }
psql_q() { PGOPTIONS='-c client_min_messages=warning' psql "$DSN" -v ON_ERROR_STOP=1 -qAt "$@"; }

# ingest NAME PG(0|1) EXPORTERS(0|1) [NICE]: one gateway, one wrk run; sets ACC_RATE, LAND_RATE,
# SENT_LF, SENT_SZ, SKIP, CATCHUP. NICE: the exporters' exporters.<name>.nice (default: the gateway's default).
ingest() {
  local name=$1 pg=$2 exp=$3 nice=${4:-} db dsn=""
  local p1 p2 p3
  read -r p1 p2 p3 < <(free_ports 3)
  GRPC=127.0.0.1:$p1 HTTP=127.0.0.1:$p2 ADMIN=127.0.0.1:$p3
  {
    echo "log: {level: warn}"
    echo "postgres: {migrations_dir: \"$GW_ROOT/migrations\", batch_rows: 1000}"
    echo "spool: {max_bytes: $SPOOL_BYTES}"
    if [ "$exp" = 1 ]; then
      echo "exporters:"
      local n=""
      [ -n "$nice" ] && n=", nice: $nice"
      echo "  langfuse: {endpoint: \"http://127.0.0.1:$SINK_HTTP\", public_key: pk-lf-bench, secret_key: sk-lf-bench$n}"
      echo "  signoz: {endpoint: \"127.0.0.1:$SINK_GRPC\"$n}"
    fi
  } >"$WORK/$name.yaml"
  if [ "$pg" = 1 ]; then
    db="bench_$name"
    psql_q -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
    dsn=$(python3 -c 'import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(p._replace(path="/" + sys.argv[2]).geturl())' "$DSN" "$db")
  fi
  DATABASE_URL=$dsn GENAI_GW_GRPC_ADDR=$GRPC GENAI_GW_HTTP_ADDR=$HTTP GENAI_GW_ADMIN_ADDR=$ADMIN \
    "$BUILD/genai-gateway" --config "$WORK/$name.yaml" >"$WORK/$name.log" 2>&1 &
  GW_PID=$!
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://$ADMIN/readyz" 2>/dev/null && break
    kill -0 "$GW_PID" 2>/dev/null || { cat "$WORK/$name.log" >&2; gw_die "the gateway exited at start ($name)"; }
    sleep 0.1
  done
  gw_say "$name: wrk ${SECS}s, $CONNS connections (Postgres: $pg, exporters: $exp)"
  local a0 t0 t1 acc
  a0=$(metric genai_gateway_spans_accepted_total)
  t0=$(now)
  wrk -t 2 -c "$CONNS" -d "${SECS}s" -s "$GW_ROOT/bench/otlp_http.lua" "http://$HTTP/v1/traces" -- "$WORK/bodies" "$NBODIES" \
    >"$WORK/$name.wrk" 2>&1 || { cat "$WORK/$name.wrk" >&2; gw_die "wrk failed"; }
  t1=$(now)
  acc=$(($(metric genai_gateway_spans_accepted_total) - a0))
  ACC_RATE=$(calc "$acc / ($t1 - $t0)")
  # After the load: poll until Postgres has every accepted span (when on) and the exporters have nothing
  # left (when on), noting when each happened.
  LAND_RATE=n/a SENT_LF=n/a SENT_SZ=n/a SKIP=n/a CATCHUP=n/a
  local s=0 last=-1 tm t_land="" t_exp="" lf=0 sz=0
  tm=$(now)
  while :; do
    if [ "$pg" = 1 ] && [ -z "$t_land" ]; then
      s=$(($(metric genai_gateway_records_stored_total) + $(metric genai_gateway_records_duplicate_total)))
      [ "$s" != "$last" ] && { last=$s; tm=$(now); }
      if [ "$s" -ge "$acc" ]; then
        t_land=$tm
      elif [ "$(calc "$(now) - $tm > 30")" = 1 ]; then
        gw_say "WARNING: $s of $acc spans landed"
        t_land=$tm
      fi
    fi
    if [ "$exp" = 1 ] && [ -z "$t_exp" ]; then
      if [ "$(metric genai_gateway_exporter_lag_entries 'exporter="langfuse"')" = 0 ] &&
        [ "$(metric genai_gateway_exporter_lag_entries 'exporter="signoz"')" = 0 ]; then
        t_exp=$(now)
        lf=$(metric genai_gateway_exporter_spans_sent_total 'exporter="langfuse",signal="traces"')
        sz=$(metric genai_gateway_exporter_spans_sent_total 'exporter="signoz",signal="traces"')
      elif [ "$(calc "$(now) - $t1 > 120")" = 1 ]; then
        gw_say "WARNING: the exporters did not catch up within 120 s"
        t_exp=$(now)
      fi
    fi
    { [ "$pg" = 0 ] || [ -n "$t_land" ]; } && { [ "$exp" = 0 ] || [ -n "$t_exp" ]; } && break
    sleep 0.1
  done
  [ "$pg" = 1 ] && LAND_RATE=$(calc "$s / ($t_land - $t0)")
  if [ "$exp" = 1 ]; then
    SKIP=$(($(metric genai_gateway_exporter_spans_dropped_total 'exporter="langfuse",signal="traces",reason="lag_cap"') +
      $(metric genai_gateway_exporter_spans_dropped_total 'exporter="signoz",signal="traces",reason="lag_cap"')))
    SENT_LF=$(calc "$lf / ($t_exp - $t0)")
    SENT_SZ=$(calc "$sz / ($t_exp - $t0)")
    CATCHUP=$(calc "$t_exp - $t1" 1)
  fi
  # The gateway's own CPU time (user + system, all threads) for the whole run, load and catch-up, per
  # accepted span: unlike the rates, it hardly moves with whatever else shares the machine.
  local ticks
  ticks=$(awk '{ print $14 + $15 }' "/proc/$GW_PID/stat")
  CPU_US=$(calc "$ticks / $(getconf CLK_TCK) * 1000000 / $acc" 1)
  kill -TERM "$GW_PID"
  wait "$GW_PID" || true
  GW_PID=
}

PG_OFF_ACC= PG_OFF_LAND= PG_ON_ACC= PG_ON_LAND= NOPG_OFF_ACC= NOPG_ON_ACC= PG_ON_EXP= NOPG_ON_EXP=
CPU_PG_OFF= CPU_PG_ON= CPU_NOPG_OFF= CPU_NOPG_ON= CPU_NOPG_ONNICE0=
for r in $(seq 1 "$ROUNDS"); do
  ingest "pg_off_$r" 1 0
  PG_OFF_ACC="$PG_OFF_ACC $ACC_RATE" PG_OFF_LAND="$PG_OFF_LAND $LAND_RATE" CPU_PG_OFF="$CPU_PG_OFF $CPU_US"
  ingest "pg_on_$r" 1 1
  PG_ON_ACC="$PG_ON_ACC $ACC_RATE" PG_ON_LAND="$PG_ON_LAND $LAND_RATE" CPU_PG_ON="$CPU_PG_ON $CPU_US"
  PG_ON_EXP="$PG_ON_EXP
  round $r: sent/s Langfuse $SENT_LF, SigNoz $SENT_SZ; lag-cap skips $SKIP; caught up ${CATCHUP}s after the load"
done
for r in $(seq 1 "$ROUNDS"); do
  ingest "nopg_off_$r" 0 0
  NOPG_OFF_ACC="$NOPG_OFF_ACC $ACC_RATE" CPU_NOPG_OFF="$CPU_NOPG_OFF $CPU_US"
  ingest "nopg_on_$r" 0 1
  NOPG_ON_ACC="$NOPG_ON_ACC $ACC_RATE" CPU_NOPG_ON="$CPU_NOPG_ON $CPU_US"
  NOPG_ON_EXP="$NOPG_ON_EXP
  round $r: sent/s Langfuse $SENT_LF, SigNoz $SENT_SZ; lag-cap skips $SKIP; caught up ${CATCHUP}s after the load"
  ingest "nopg_onnice0_$r" 0 1 0
  NOPG_ONNICE0_ACC="${NOPG_ONNICE0_ACC:-} $ACC_RATE" CPU_NOPG_ONNICE0="$CPU_NOPG_ONNICE0 $CPU_US"
  NOPG_ON_EXP="$NOPG_ON_EXP
  round $r, exporters at nice 0: sent/s Langfuse $SENT_LF, SigNoz $SENT_SZ; lag-cap skips $SKIP; caught up ${CATCHUP}s after the load"
done

ratio() { calc "100 * $1 / $2" 0; }
sum() { local t=0 x; for x in "$@"; do t=$(calc "$t + $x"); done; echo "$t"; }
# shellcheck disable=SC2086
cat <<EOF

================ genai-gateway exporter benchmark, $(date -u +%Y-%m-%d) ($(nproc) cores, shared with wrk, otlp_sink and Postgres)
payload: 100 gen_ai chat spans per request, $(stat -c %s "$WORK/bodies/body-000.pb") bytes protobuf

export throughput, one exporter draining $ENTRIES requests into otlp_sink (spans/s: wall clock / busy time)
                                 gzip on                 gzip off
  otlp (HTTP, byte for byte)     $(ex otlp 1 spans_per_s) / $(ex otlp 1 busy_spans_per_s)        $(ex otlp 0 spans_per_s) / $(ex otlp 0 busy_spans_per_s)
  signoz (gRPC)                  $(ex signoz 1 spans_per_s) / $(ex signoz 1 busy_spans_per_s)        $(ex signoz 0 spans_per_s) / $(ex signoz 0 busy_spans_per_s)
  langfuse (HTTP, transformed)   $(ex langfuse 1 spans_per_s) / $(ex langfuse 1 busy_spans_per_s)        $(ex langfuse 0 spans_per_s) / $(ex langfuse 0 busy_spans_per_s)

ingestion, wrk ${SECS}s x $CONNS connections, $ROUNDS rounds (off/on interleaved)
                                      exporters off (each round)   Langfuse + SigNoz on (each round)   retained (sums)
  with Postgres: spans/s accepted    $PG_OFF_ACC         $PG_ON_ACC           $(ratio "$(sum $PG_ON_ACC)" "$(sum $PG_OFF_ACC)") %   (target >= 90 %)
  with Postgres: spans/s landed      $PG_OFF_LAND         $PG_ON_LAND           $(ratio "$(sum $PG_ON_LAND)" "$(sum $PG_OFF_LAND)") %
  without Postgres: spans/s accepted $NOPG_OFF_ACC         $NOPG_ON_ACC           $(ratio "$(sum $NOPG_ON_ACC)" "$(sum $NOPG_OFF_ACC)") %
    ... exporters at nice 0 (same CPU priority as ingestion)    $NOPG_ONNICE0_ACC           $(ratio "$(sum $NOPG_ONNICE0_ACC)" "$(sum $NOPG_OFF_ACC)") %
gateway CPU time per accepted span, microseconds (each round)
  with Postgres                      off:$CPU_PG_OFF   on:$CPU_PG_ON
  without Postgres                   off:$CPU_NOPG_OFF   on:$CPU_NOPG_ON   on, nice 0:$CPU_NOPG_ONNICE0
exporters on, with Postgres:$PG_ON_EXP
exporters on, without Postgres:$NOPG_ON_EXP
EOF
