#!/usr/bin/env bash
# bench/run.sh: the gateway's benchmark (bench/README.md). Prints figures; never fails on a target.
#
# Builds Release into build-bench/, starts its own PostgreSQL (scripts/pg.sh, durable settings: fsync on)
# and the gateway on free ports, then:
#   1. bench_pipeline: the receive path's CPU cost in process, one core;
#   2. wrk: OTLP/HTTP protobuf for BENCH_SECONDS, fresh ids on every request (bench/otlp_http.lua), then
#      waits until every accepted span has landed in Postgres;
#   3. h2load: OTLP/gRPC for BENCH_SECONDS with one body re-sent (h2load posts one fixed file), so those
#      rows dedup in Postgres: gRPC gives an accepted rate and latency, not a landed rate;
#   4. the raw Postgres rate for the same rows: COPY into a temp staging table + INSERT ... SELECT ... ON
#      CONFLICT DO NOTHING into a fresh copy of ai_interaction_traces (the idempotent insert the writer
#      does on a replay), once in one transaction and once in transactions of postgres.batch_rows rows;
#      and COPY straight into such a table (the writer's first attempt) in the same transactions.
# Environment: BENCH_SECONDS (10), BENCH_CONNS (4), BENCH_ITER (200 bench_pipeline iterations),
# BENCH_SPOOL (interval: the disk spool with spool.fsync interval, as deployed; always, never, or memory),
# BENCH_SPOOL_BYTES (64 MiB, see below), BENCH_KEEP=1 keeps the temp dir (gateway log, wrk/h2load output),
# BENCH_WRITERS (1: postgres.writers; a list such as "1 2" runs step 2 once per count, each on a gateway
# restarted with that many writer connections, and prints the landed rate, landed / idempotent insert and
# the writers' Postgres backend CPU per row of each; the other steps use the first count's run),
# BENCH_PG_STATS=1 (Postgres restarted with pg_stat_statements, track = all: each wrk phase writes the
# writers' statements by total time, and the gateway's threads' CPU seconds, to pg_stats.N.txt in the
# temp dir; profiling only, it costs Postgres a few per cent), BENCH_BEFORE=BIN (another build of the
# gateway, e.g. of the branch point: each count's wrk phase runs first on BIN, then on this tree's build,
# on the same Postgres, for before/after figures from one run; both use this tree's migrations, and the
# main summary is the first phase's, so BIN's).
set -euo pipefail

# shellcheck source=../scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

SECS=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNS:-4}
ITER=${BENCH_ITER:-200}
NBODIES=8
BATCH_ROWS=1000
DRAIN_TIMEOUT=120
BUILD=$GW_ROOT/build-bench
# The spool is kept small on purpose (it was first a workaround for problem 1 in bench/README.md, now
# fixed): 64 MiB holds about 75 requests of this payload, so the run reaches a full spool and measures the
# backpressure path and the writer draining under load, not how much memory the spool may take.
SPOOL_BYTES=${BENCH_SPOOL_BYTES:-67108864}
SPOOL_MODE=${BENCH_SPOOL:-interval}
WRITERS_LIST=${BENCH_WRITERS:-1}
for w in $WRITERS_LIST; do
  case $w in
  [1-8]) ;;
  *) gw_die "BENCH_WRITERS=$WRITERS_LIST: expected counts of 1 to 8" ;;
  esac
done
case $SPOOL_MODE in
memory | always | interval | never) ;;
*) gw_die "BENCH_SPOOL=$SPOOL_MODE: expected memory, always, interval or never" ;;
esac

GW_APT_PKGS="$GW_APT_PKGS wrk nghttp2-client curl"
gw_ensure_packages
[ -x /usr/lib/postgresql/15/bin/initdb ] || gw_die "PostgreSQL 15 server binaries not found (apt-get install postgresql-15)"

gw_say "building Release into $BUILD"
cmake -S "$GW_ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGW_TESTS=OFF >/dev/null ||
  gw_die "cmake configure failed"
cmake --build "$BUILD" -j "$(nproc)" --target genai-gateway gen_payload bench_pipeline >/dev/null 2>"$BUILD/bench-build.log" ||
  { cat "$BUILD/bench-build.log" >&2; gw_die "build failed"; }

WORK=$(mktemp -d /tmp/genai-bench.XXXXXX)
chmod 755 "$WORK"
GW_PID=
PG_DIR=$WORK/pg
cleanup() {
  local rc=$?
  if [ -n "$GW_PID" ] && kill -0 "$GW_PID" 2>/dev/null; then
    kill -TERM "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
  fi
  if [ -f "$PG_DIR/PG_VERSION" ]; then
    "$GW_ROOT/scripts/pg.sh" stop "$PG_DIR" 2>/dev/null || true
  fi
  if [ "${BENCH_KEEP:-0}" = 1 ]; then
    gw_say "kept $WORK"
  else
    rm -rf "$WORK"
  fi
  exit $rc
}
trap cleanup EXIT INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
now() { date +%s.%N; }
# metric NAME: the value of an unlabelled metric from the admin endpoint (0 when absent).
metric() {
  curl -fsS "http://$ADMIN/metrics" | awk -v m="$1" '$1 == m { v = $2 } END { print (v == "" ? 0 : v) }'
}
calc() { awk "BEGIN { printf \"%.${2:-0}f\", ($1) }"; }
psql_q() { PGOPTIONS='-c client_min_messages=warning' psql "$DSN" -v ON_ERROR_STOP=1 -qAt "$@"; }
# CPU seconds (user + system) a Postgres backend has used so far; machine load barely moves it, so the
# writer's and the raw loads' Postgres CPU per row compare even when wall-clock rates do not.
pg_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0; }
writer_pids() { psql_q -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'genai-gateway' ORDER BY pid"; }
# CPU seconds of the given backends together.
pg_cpu_sum() {
  local t=0 p
  for p in "$@"; do t=$(calc "$t + $(pg_cpu "$p")" 3); done
  echo "$t"
}
# psql_cpu FILE: run a psql script, printing its output; its backend's CPU seconds go to FILE.cpu.
psql_cpu() {
  { echo "SELECT pg_backend_pid() AS bpid \\gset"
    echo "\\setenv BENCH_BPID :bpid"
    cat "$1"
    echo "\\! awk -v hz=\"\$(getconf CLK_TCK)\" '{ printf \"%.3f\", (\$14 + \$15) / hz }' /proc/\$BENCH_BPID/stat >'$1.cpu'"
  } >"$1.run"
  psql_q -f "$1.run"
}

gw_say "starting PostgreSQL in $PG_DIR"
DSN=$("$GW_ROOT/scripts/pg.sh" start "$PG_DIR" 2>"$WORK/pg-start.log") || { cat "$WORK/pg-start.log" >&2; gw_die "PostgreSQL did not start"; }
if [ "${BENCH_PG_STATS:-0}" = 1 ]; then
  psql_q -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
  "$GW_ROOT/scripts/pg.sh" stop "$PG_DIR" 2>>"$WORK/pg-start.log"
  DSN=$("$GW_ROOT/scripts/pg.sh" start "$PG_DIR" 2>>"$WORK/pg-start.log") || gw_die "PostgreSQL did not restart"
  psql_q -c "CREATE EXTENSION pg_stat_statements" -c "ALTER SYSTEM SET pg_stat_statements.track = 'all'" \
    -c "SELECT pg_reload_conf()" >/dev/null
fi
# The gateway's threads' CPU seconds by thread name (BENCH_PG_STATS).
gw_thread_cpu() {
  local hz t
  hz=$(getconf CLK_TCK)
  for t in /proc/"$GW_PID"/task/*; do
    printf '%s %s\n' "$(cat "$t/comm")" "$(awk '{ print $14 + $15 }' "$t/stat")"
  done | awk -v hz="$hz" '{ c[$1] += $2 } END { for (k in c) printf "%-16s %.2f\n", k, c[k] / hz }' | sort
}
GRPC=127.0.0.1:$(free_port)
HTTP=127.0.0.1:$(free_port)
ADMIN=127.0.0.1:$(free_port)
# start_gateway N: (re)start the gateway with postgres.writers N, and wait until its N writers are connected.
start_gateway() {
  local bin=${2:-$BUILD/genai-gateway}
  if [ -n "$GW_PID" ] && kill -0 "$GW_PID" 2>/dev/null; then
    kill -TERM "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
  fi
  cat >"$WORK/gateway.yaml" <<EOF
log:
  level: warn
postgres:
  migrations_dir: "$GW_ROOT/migrations"
  batch_rows: $BATCH_ROWS
  writers: $1
spool:
  max_bytes: $SPOOL_BYTES
EOF
  if [ "$SPOOL_MODE" = memory ]; then
    printf '  mode: memory\n' >>"$WORK/gateway.yaml"
  else
    printf '  mode: disk\n  dir: "%s"\n  fsync: %s\n' "$WORK/spool" "$SPOOL_MODE" >>"$WORK/gateway.yaml"
  fi
  gw_say "starting the gateway (gRPC $GRPC, HTTP $HTTP, admin $ADMIN, spool $SPOOL_MODE, $1 Postgres writers)"
  DATABASE_URL=$DSN GENAI_GW_GRPC_ADDR=$GRPC GENAI_GW_HTTP_ADDR=$HTTP GENAI_GW_ADMIN_ADDR=$ADMIN \
    "$bin" --config "$WORK/gateway.yaml" >>"$WORK/gateway.log" 2>&1 &
  GW_PID=$!
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://$ADMIN/readyz" 2>/dev/null && break
    kill -0 "$GW_PID" 2>/dev/null || { cat "$WORK/gateway.log" >&2; gw_die "the gateway exited at start"; }
    sleep 0.1
  done
  curl -fsS -o /dev/null "http://$ADMIN/readyz" || gw_die "the gateway is not ready after 10 s (log: $WORK/gateway.log)"
  for _ in $(seq 1 100); do
    [ "$(writer_pids | wc -l)" -ge "$1" ] && break
    sleep 0.1
  done
}
BEFORE_BIN=${BENCH_BEFORE:-}
[ -z "$BEFORE_BIN" ] || [ -x "$BEFORE_BIN" ] || gw_die "BENCH_BEFORE=$BEFORE_BIN: not an executable"
# The wrk phases: label:binary:writers.
PHASES=
THIS_LABEL=this
[ -z "$BEFORE_BIN" ] || THIS_LABEL=after
for nw in $WRITERS_LIST; do
  [ -z "$BEFORE_BIN" ] || PHASES="$PHASES before:$BEFORE_BIN:$nw"
  PHASES="$PHASES $THIS_LABEL:$BUILD/genai-gateway:$nw"
done
FIRST_PHASE=${PHASES# }
FIRST_PHASE=${FIRST_PHASE%% *}
IFS=: read -r _ first_bin first_nw <<<"$FIRST_PHASE"
start_gateway "$first_nw" "$first_bin"

mkdir -p "$WORK/bodies"
"$BUILD/bench/gen_payload" -n "$NBODIES" -j "$WORK/bodies"
BODY_BYTES=$(stat -c %s "$WORK/bodies/body-000.pb")
SPANS_PER_REQ=100

# ---- 1. in process ----
gw_say "bench_pipeline ($ITER iterations per stage, best of 3)"
"$BUILD/bench/bench_pipeline" -n "$ITER" "$WORK/bodies/body-000.pb" "$WORK/bodies/body-000.json" | tee "$WORK/pipeline.out"
pl() { awk -v n="$1" '$1 == n { sub("spans_per_s=", "", $2); print $2 }' "$WORK/pipeline.out"; }
# the same line on conversations (each call resends the earlier turns: gen_payload -c)
mkdir -p "$WORK/convo"
"$BUILD/bench/gen_payload" -n 1 -c -j "$WORK/convo"
"$BUILD/bench/bench_pipeline" -n "$ITER" -s receive "$WORK/convo/body-000.pb" "$WORK/convo/body-000.json" |
  tee "$WORK/convo.out"
CONVO_RATE=$(awk '$1 == "receive" { sub("spans_per_s=", "", $2); print $2 }' "$WORK/convo.out")
# and with a chat's four turns in four requests (gen_payload -t), with and without the chat history kept
# between requests (receivers.history_cache_bytes)
mkdir -p "$WORK/turns"
"$BUILD/bench/gen_payload" -n 4 -t "$WORK/turns"
"$BUILD/bench/bench_pipeline" -n "$ITER" -m 4 -s receive_turns,receive_turns_nocache "$WORK/turns/body-000.pb" |
  tee "$WORK/turns.out"
turns() { awk -v n="$1" '$1 == n { sub("spans_per_s=", "", $2); print $2 }' "$WORK/turns.out"; }
# and a request every 24 ms (-g), as at half load here: the line meeting an idle core's caches and clock
"$BUILD/bench/bench_pipeline" -n "$(((ITER + 1) / 2))" -g 24000 -s receive "$WORK/bodies/body-000.pb" |
  tee "$WORK/idle.out"
IDLE_RATE=$(awk '$1 == "receive" { sub("spans_per_s=", "", $2); print $2 }' "$WORK/idle.out")

# wait_landed ACCEPTED STORED0 DUP0: poll until stored+duplicate rows cover ACCEPTED spans (every span is
# a GenAI span, so one record each), or nothing moved for 30 s. Sets T_LAST (when the count last moved),
# LANDED and DUPS.
wait_landed() {
  local want=$1 s0=$2 d0=$3 s d last_total=-1 t_move t_start
  t_start=$(now)
  t_move=$t_start
  T_LAST=$t_start
  while :; do
    s=$(metric genai_gateway_records_stored_total)
    d=$(metric genai_gateway_records_duplicate_total)
    local total=$((s - s0 + d - d0))
    if [ "$total" != "$last_total" ]; then
      last_total=$total
      t_move=$(now)
      T_LAST=$t_move
    fi
    [ "$total" -ge "$want" ] && break
    if [ "$(calc "$(now) - $t_move > 30")" = 1 ] || [ "$(calc "$(now) - $t_start > $DRAIN_TIMEOUT")" = 1 ]; then
      gw_say "WARNING: only $total of $want accepted spans reached Postgres (see $WORK/gateway.log)"
      break
    fi
    sleep 0.1
  done
  LANDED=$((s - s0))
  DUPS=$((d - d0))
}

# ---- 2. OTLP/HTTP with wrk (once per count in BENCH_WRITERS) ----
http_phase() {
A0=$(metric genai_gateway_spans_accepted_total)
S0=$(metric genai_gateway_records_stored_total)
D0=$(metric genai_gateway_records_duplicate_total)
F0=$(metric genai_gateway_requests_failed_total)
BS0=$(metric genai_gateway_pg_batch_seconds_total)
gw_say "wrk: OTLP/HTTP protobuf, ${SECS}s, $CONNS connections, $NBODIES rotating bodies with fresh ids"
WPIDS=$(writer_pids)
# shellcheck disable=SC2086 # one pid a word
WCPU0=$(pg_cpu_sum $WPIDS)
if [ "${BENCH_PG_STATS:-0}" = 1 ]; then
  psql_q -c "SELECT pg_stat_statements_reset()" >/dev/null
  gw_thread_cpu >"$WORK/threads0.txt"
fi
T0=$(now)
wrk -t 2 -c "$CONNS" -d "${SECS}s" --latency -s "$GW_ROOT/bench/otlp_http.lua" "http://$HTTP/v1/traces" \
  -- "$WORK/bodies" "$NBODIES" "$PHASE" >"$WORK/wrk.out" 2>&1 || { cat "$WORK/wrk.out" >&2; gw_die "wrk failed"; }
T1=$(now)
cat "$WORK/wrk.out"
HTTP_ACC=$(($(metric genai_gateway_spans_accepted_total) - A0))
HTTP_FAILED=$(($(metric genai_gateway_requests_failed_total) - F0))
kill -0 "$GW_PID" 2>/dev/null || gw_die "the gateway died under HTTP load (log: $WORK/gateway.log)"
gw_say "waiting for $HTTP_ACC accepted spans to land in Postgres"
wait_landed "$HTTP_ACC" "$S0" "$D0"
HTTP_LANDED=$LANDED
BS1=$(metric genai_gateway_pg_batch_seconds_total)
# shellcheck disable=SC2086
WCPU1=$(pg_cpu_sum $WPIDS)
if [ "${BENCH_PG_STATS:-0}" = 1 ]; then
  { echo "writers' statements over the wrk phase ($LANDED rows landed): total ms, calls, ms per call, rows, us per landed row"
    psql_q -F ' | ' -c "SELECT round(total_exec_time::numeric, 0), calls, round((total_exec_time / calls)::numeric, 2),
        rows, round((1000 * total_exec_time / greatest($LANDED, 1))::numeric, 1), left(regexp_replace(query, '\s+', ' ', 'g'), 110)
      FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid ORDER BY total_exec_time DESC LIMIT 25"
    echo "gateway threads' CPU seconds over the phase"
    gw_thread_cpu | join -a 1 - "$WORK/threads0.txt" | awk '{ printf "%-16s %.2f\n", $1, $2 - ($3 == "" ? 0 : $3) }'
  } >"$WORK/pg_stats.$PHASE.txt"
  cat "$WORK/pg_stats.$PHASE.txt"
fi
HTTP_DUPS=$DUPS
HTTP_LAND_SECS=$(calc "$T_LAST - $T0" 2)
HTTP_ACC_RATE=$(calc "$HTTP_ACC / ($T1 - $T0)")
HTTP_LAND_RATE=$(calc "$HTTP_LANDED / ($T_LAST - $T0)")
wrk_pct() { awk -v p="$1" '$1 == p { print $2 }' "$WORK/wrk.out"; }
HTTP_P50=$(wrk_pct 50%)
HTTP_P99=$(wrk_pct 99%)
HTTP_NON2XX=$(awk '/Non-2xx/ { print $NF }' "$WORK/wrk.out")
HTTP_NON2XX=${HTTP_NON2XX:-0}
HTTP_SOCKERR=$(awk '/Socket errors/ { print }' "$WORK/wrk.out")
}
# nw:landed rate:landed rows:writers' backend CPU seconds, one per count
PH_SUMMARY=
H1=(HTTP_ACC HTTP_FAILED HTTP_LANDED WCPU0 WCPU1 HTTP_DUPS HTTP_LAND_SECS HTTP_ACC_RATE HTTP_LAND_RATE HTTP_P50
  HTTP_P99 HTTP_NON2XX HTTP_SOCKERR)
first=1
PHASE=0
for ph in $PHASES; do
  IFS=: read -r label bin nw <<<"$ph"
  [ $first = 1 ] || start_gateway "$nw" "$bin"
  [ "$label" = this ] || gw_say "phase $PHASE: $label ($bin)"
  http_phase
  PH_SUMMARY="$PH_SUMMARY $label:$nw:$HTTP_LAND_RATE:$HTTP_LANDED:$(calc "$WCPU1 - $WCPU0" 3):$HTTP_ACC_RATE:$HTTP_NON2XX:$(calc "$BS1 - $BS0" 3)"
  PHASE=$((PHASE + 1))
  if [ $first = 1 ]; then
    first=0
    for v in "${H1[@]}"; do eval "SAVED_$v=\${$v}"; done
    cp "$WORK/wrk.out" "$WORK/wrk.first.out"
  fi
done
for v in "${H1[@]}"; do eval "$v=\${SAVED_$v}"; done
cp "$WORK/wrk.first.out" "$WORK/wrk.out"

# ---- 3. OTLP/gRPC with h2load ----
A0=$(metric genai_gateway_spans_accepted_total)
S0=$(metric genai_gateway_records_stored_total)
D0=$(metric genai_gateway_records_duplicate_total)
F0=$(metric genai_gateway_requests_failed_total)
gw_say "h2load: OTLP/gRPC, ${SECS}s, $CONNS connections x 4 streams, one body re-sent (rows dedup)"
T0=$(now)
h2load -t 2 -c "$CONNS" -m 4 -D "$SECS" -d "$WORK/bodies/body-000.grpc" \
  -H 'content-type: application/grpc' -H 'te: trailers' --log-file="$WORK/h2load.log" \
  "http://$GRPC/opentelemetry.proto.collector.trace.v1.TraceService/Export" >"$WORK/h2load.out" 2>&1 ||
  { cat "$WORK/h2load.out" >&2; gw_die "h2load failed"; }
T1=$(now)
grep -E "^(finished|requests|status codes|traffic|time for request)" "$WORK/h2load.out" || cat "$WORK/h2load.out"
GRPC_ACC=$(($(metric genai_gateway_spans_accepted_total) - A0))
GRPC_FAILED=$(($(metric genai_gateway_requests_failed_total) - F0))
kill -0 "$GW_PID" 2>/dev/null || gw_die "the gateway died under gRPC load (log: $WORK/gateway.log)"
GRPC_ACC_RATE=$(calc "$GRPC_ACC / ($T1 - $T0)")
# h2load's log: start time, status, duration in microseconds, one request a line.
read -r GRPC_P50 GRPC_P99 < <(awk '{ print $3 }' "$WORK/h2load.log" | sort -n |
  awk '{ v[NR] = $1 } END { if (NR == 0) { print "n/a n/a"; exit }
    i50 = int(NR * 0.50); if (i50 < 1) i50 = 1; i99 = int(NR * 0.99); if (i99 < 1) i99 = 1;
    printf "%.2fms %.2fms\n", v[i50] / 1000, v[i99] / 1000 }')
gw_say "waiting for the gRPC spans to drain (duplicates after the first request)"
wait_landed "$GRPC_ACC" "$S0" "$D0"
GRPC_DRAIN_RATE=$(calc "($LANDED + $DUPS) / ($T_LAST - $T0)")
RSS_PEAK=$(awk '/^VmHWM/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$GW_PID/status")

# ---- 4. the raw Postgres rate for the same rows ----
REF_ROWS=$HTTP_LANDED
gw_say "raw Postgres: COPY + INSERT ... ON CONFLICT DO NOTHING of $REF_ROWS rows into a fresh table"
COLS=$(psql_q -c "SELECT string_agg(quote_ident(attname), ',' ORDER BY attnum) FROM pg_attribute
  WHERE attrelid = 'ai_interaction_traces'::regclass AND attnum > 0 AND NOT attisdropped AND attname <> 'created_at'")
psql_q -c "\\copy (SELECT $COLS FROM ai_interaction_traces ORDER BY created_at LIMIT $REF_ROWS) TO '$WORK/rows.copy'"
mkdir -p "$WORK/chunks"
split -l "$BATCH_ROWS" -d -a 5 "$WORK/rows.copy" "$WORK/chunks/c"
DAYS=$(psql_q -c "SELECT string_agg(DISTINCT quote_literal((start_time AT TIME ZONE 'UTC')::date::text), ',')
  FROM ai_interaction_traces")
fresh_table() {
  psql_q -c "DROP TABLE IF EXISTS $1; CREATE TABLE $1 (LIKE ai_interaction_traces INCLUDING ALL)
    PARTITION BY RANGE (start_time)" \
    -c "SELECT gw_ensure_partition('$1', d::date) FROM unnest(ARRAY[$DAYS]) d" >/dev/null
}
insert_sql() {
  echo "INSERT INTO $1 ($COLS) SELECT $COLS FROM bench_stage ON CONFLICT DO NOTHING RETURNING trace_id"
}
# One transaction for all rows.
fresh_table bench_ref_one
{
  echo "BEGIN;"
  echo "CREATE TEMP TABLE bench_stage (LIKE bench_ref_one INCLUDING DEFAULTS) ON COMMIT DROP;"
  echo "\\copy bench_stage ($COLS) FROM '$WORK/rows.copy'"
  echo "WITH ins AS ($(insert_sql bench_ref_one)) SELECT count(*) FROM ins;"
  echo "COMMIT;"
} >"$WORK/ref_one.sql"
R0=$(now)
REF_ONE_N=$(psql_cpu "$WORK/ref_one.sql")
R1=$(now)
REF_ONE_RATE=$(calc "$REF_ONE_N / ($R1 - $R0)")
# One transaction per batch_rows rows, as the writer commits.
fresh_table bench_ref_batch
{
  echo "CREATE TEMP TABLE bench_stage (LIKE bench_ref_batch INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;"
  for f in "$WORK"/chunks/c*; do
    echo "BEGIN;"
    echo "\\copy bench_stage ($COLS) FROM '$f'"
    echo "WITH ins AS ($(insert_sql bench_ref_batch)) SELECT count(*) FROM ins;"
    echo "COMMIT;"
  done
} >"$WORK/ref_batch.sql"
R0=$(now)
REF_BATCH_N=$(psql_cpu "$WORK/ref_batch.sql" | awk '{ s += $1 } END { print s + 0 }')
R1=$(now)
REF_BATCH_RATE=$(calc "$REF_BATCH_N / ($R1 - $R0)")
# COPY straight into the table, transactions of batch_rows rows: what the writer's direct COPY costs alone
# (no rollups, no session fill, no event merge), for reference.
fresh_table bench_ref_copy
{
  for f in "$WORK"/chunks/c*; do
    echo "BEGIN;"
    echo "\\copy bench_ref_copy ($COLS) FROM '$f'"
    echo "COMMIT;"
  done
} >"$WORK/ref_copy.sql"
R0=$(now)
psql_cpu "$WORK/ref_copy.sql" >/dev/null
R1=$(now)
REF_COPY_N=$(psql_q -c "SELECT count(*) FROM bench_ref_copy")
REF_COPY_RATE=$(calc "$REF_COPY_N / ($R1 - $R0)")
ROW_BYTES=$(psql_q -c "SELECT pg_total_relation_size('bench_ref_one_p' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')) / greatest(1, $REF_ONE_N)" 2>/dev/null || echo "?")

ratio() { calc "100 * $1 / $2" 0; }
# Postgres backend CPU microseconds per row.
us_row() { calc "1000000 * ($1) / ($2 > 0 ? $2 : 1)" 1; }
W_US=$(us_row "$WCPU1 - $WCPU0" "$HTTP_LANDED")
ONE_US=$(us_row "$(cat "$WORK/ref_one.sql.cpu" 2>/dev/null || echo 0)" "$REF_ONE_N")
BATCH_US=$(us_row "$(cat "$WORK/ref_batch.sql.cpu" 2>/dev/null || echo 0)" "$REF_BATCH_N")
COPY_US=$(us_row "$(cat "$WORK/ref_copy.sql.cpu" 2>/dev/null || echo 0)" "$REF_COPY_N")
cat <<EOF

================ genai-gateway benchmark, $(date -u +%Y-%m-%d) ($(nproc) cores, shared with the load tools and Postgres)
payload: $SPANS_PER_REQ gen_ai chat spans per request, $BODY_BYTES bytes protobuf; ~$ROW_BYTES bytes per stored row (table + indexes)

in process, one core (bench_pipeline)             spans/s
  protobuf-c unpack, default allocator            $(pl unpack_malloc)
  protobuf-c unpack, arena allocator              $(pl unpack_arena)
  decode (prescan + unpack + UTF-8 repair)        $(pl decode)
  normalize                                       $(pl normalize)
  decode + normalize                              $(pl decode_normalize)   (target >= 160000)
  cost (lookup + compute + span annotation)       $(pl cost)
  redact (all detectors)                          $(pl redact)   ($(awk '$1 == "redact" { sub("MB_per_s=", "", $4); print $4 }' "$WORK/pipeline.out") MB/s of text scanned; target >= 300)
  receive = decode+normalize+cost+redact+encode   $(pl receive)
  receive, arena created per request              $(pl receive_fresh)
  receive, a request every 24 ms (idle core)      $IDLE_RATE
  receive, conversations (gen_payload -c)         $CONVO_RATE
  receive, a chat's turns in separate requests    $(turns receive_turns)   ($(turns receive_turns_nocache) without the history cache; gen_payload -t)
  decode OTLP/JSON                                $(pl decode_json)

end to end                                        HTTP (wrk)        gRPC (h2load)
  spans/s accepted                                $HTTP_ACC_RATE             $GRPC_ACC_RATE
  request latency p50 / p99                       $HTTP_P50 / $HTTP_P99     $GRPC_P50 / $GRPC_P99
  failed requests (gateway metric)                $HTTP_FAILED                 $GRPC_FAILED
  spans accepted                                  $HTTP_ACC            $GRPC_ACC
  spans/s landed in Postgres                      $HTTP_LAND_RATE             (dedup: $GRPC_DRAIN_RATE rows/s drained)
  rows landed / duplicates                        $HTTP_LANDED / $HTTP_DUPS         $LANDED / $DUPS
  first accept -> last row                        ${HTTP_LAND_SECS}s
  wrk non-2xx responses                           $HTTP_NON2XX ${HTTP_SOCKERR}
gateway peak RSS (VmHWM)                          $RSS_PEAK

raw Postgres, same $REF_ROWS rows, COPY -> temp staging -> INSERT ... ON CONFLICT DO NOTHING
  one transaction                                 $REF_ONE_RATE rows/s
  transactions of $BATCH_ROWS rows                      $REF_BATCH_RATE rows/s
raw Postgres, same rows, COPY straight into the table, $BATCH_ROWS-row transactions  $REF_COPY_RATE rows/s
landed / idempotent insert (one transaction)      $(ratio "$HTTP_LAND_RATE" "$REF_ONE_RATE") %   (target >= 130 %)
landed / idempotent insert ($BATCH_ROWS-row transactions)  $(ratio "$HTTP_LAND_RATE" "$REF_BATCH_RATE") %   (target >= 130 %)
landed / direct COPY alone ($BATCH_ROWS-row transactions)   $(ratio "$HTTP_LAND_RATE" "$REF_COPY_RATE") %
Postgres backend CPU per row (us): writer $W_US, idempotent insert $ONE_US (one transaction) / $BATCH_US ($BATCH_ROWS-row), direct COPY $COPY_US
idempotent insert ($BATCH_ROWS-row) CPU / writer CPU per row   $(ratio "$BATCH_US" "$W_US") %   (the ceiling's cost over the writer's, machine load aside)
EOF
if [ "$(echo "$PHASES" | wc -w)" -gt 1 ]; then
  echo "wrk phases (build, postgres.writers)              landed rows/s   landed / idempotent insert (one txn / $BATCH_ROWS-row)   writers' backend CPU per row (us)   accepted spans/s, 429s   writer's batch time per row (us)"
  for ph in $PH_SUMMARY; do
    IFS=: read -r label nw rate landed cpu acc refused bsecs <<<"$ph"
    printf '  %-48s %-15s %s %% / %s %%%-27s %-35s %-24s %s\n' "$label, $nw" "$rate" "$(ratio "$rate" "$REF_ONE_RATE")" \
      "$(ratio "$rate" "$REF_BATCH_RATE")" "" "$(us_row "$cpu" "$landed")" "$acc, $refused" "$(us_row "$bsecs" "$landed")"
  done
fi
if grep -qiE "error|fatal" "$WORK/gateway.log"; then
  gw_say "the gateway logged errors during the run:"
  grep -iE "error|fatal" "$WORK/gateway.log" | sort | uniq -c | sort -rn | head -10 >&2
fi
