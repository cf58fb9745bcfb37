#!/usr/bin/env bash
# bench/steady.sh: steady memory and open-loop latency (issue 15 items 3 and 4; bench/README.md, "Steady
# memory and latency"). Prints figures; never fails on a target.
#
# Builds Release into build-bench/ (as run.sh), starts its own PostgreSQL (scripts/pg.sh, fsync on) and the
# gateway on free ports (disk spool, spool.fsync interval, the other settings at their defaults unless
# BENCH_YAML adds some), then:
#   1. capacity: wrk (closed loop, BENCH_CONNS connections, fresh ids) for BENCH_SECONDS; the landed rate
#      (first request -> last row stored) is the sustainable rate R;
#   2. full load: bench/openloop.mjs at 0.9 R over OTLP/HTTP (Postgres keeps up), VmRSS sampled;
#   3. half load: open loop at R / 2 over OTLP/HTTP, then over OTLP/gRPC: p50 / p99 / p999 latency;
#      then the spool's disk alone at that rate (bench_spool: entries of the size the gateway wrote, each
#      synced): the floor under those latencies on this disk;
#   4. Postgres stopped: wrk again for BENCH_SECONDS; the spool fills and clients get 429; VmRSS sampled;
#      and the bound of README.md's formula ("Memory at rest and under load") for this configuration.
# VmRSS is sampled every 100 ms during each phase (median and max printed); VmHWM is reset before each
# phase (/proc/PID/clear_refs) and read after it.
# Environment: BENCH_SECONDS (10), BENCH_CONNS (4), BENCH_RATE (skip phase 1 and use this landed rate, spans/s),
# BENCH_YAML (extra gateway YAML, top-level keys), BENCH_KEEP=1 keeps the temp dir, BENCH_BIN (run this gateway
# binary instead of building one: before/after comparisons), BENCH_PHASES ("full half down": the phases to run),
# BENCH_SPOOL (interval: spool.fsync of the disk spool, or always, never; memory: the memory spool),
# BENCH_FSYNC_INTERVAL (spool.fsync_interval_ms, e.g. 2ms; its default when unset),
# BENCH_PG_SETTINGS (Postgres settings applied with ALTER SYSTEM after its start, e.g. "max_wal_size=8GB":
# its checkpoints write to the disk the spool syncs on; each phase prints how many began during it),
# BENCH_SPANS (100: spans per request; the bodies are gen_payload's, about 2.7 KB a span),
# BENCH_PG_DIR (a directory on another file system for Postgres' data, e.g. /dev/shm: Postgres no longer
# shares the spool's disk, as when it runs on its own host or volume; a fresh subdirectory is made and removed).
# Each open-loop phase also prints the gateway's own view of its requests over the phase
# (genai_gateway_request_stage_seconds: upload, process, append, durable; the spool's fsyncs).
set -euo pipefail

# shellcheck source=../scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

SECS=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNS:-4}
NBODIES=8
BUILD=$GW_ROOT/build-bench

GW_APT_PKGS="$GW_APT_PKGS wrk curl"
gw_ensure_packages
command -v node >/dev/null || gw_die "node (20 or newer) is needed for bench/openloop.mjs"
[ -x /usr/lib/postgresql/15/bin/initdb ] || gw_die "PostgreSQL 15 server binaries not found (apt-get install postgresql-15)"

PHASES=${BENCH_PHASES:-full half down}
SPOOL=${BENCH_SPOOL:-interval}
gw_say "building Release into $BUILD"
cmake -S "$GW_ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGW_TESTS=OFF >/dev/null || gw_die "cmake configure failed"
cmake --build "$BUILD" -j 2 --target genai-gateway gen_payload bench_spool >/dev/null 2>"$BUILD/bench-build.log" ||
  { cat "$BUILD/bench-build.log" >&2; gw_die "build failed"; }
GW_BIN=${BENCH_BIN:-$BUILD/genai-gateway}

WORK=$(mktemp -d /tmp/genai-steady.XXXXXX)
chmod 755 "$WORK"
GW_PID=
SAMPLER=
PG_DIR=$WORK/pg
PG_BASE=
PG_WHERE="on the spool's disk"
if [ -n "${BENCH_PG_DIR:-}" ]; then
  PG_BASE=$(mktemp -d "$BENCH_PG_DIR/genai-steady-pg.XXXXXX") || gw_die "cannot make a directory in BENCH_PG_DIR=$BENCH_PG_DIR"
  chmod 755 "$PG_BASE"
  PG_DIR=$PG_BASE/pg
  PG_WHERE="in $BENCH_PG_DIR ($(df --output=fstype "$BENCH_PG_DIR" | tail -1)), off the spool's disk"
fi
cleanup() {
  local rc=$?
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true
  if [ -n "$GW_PID" ] && kill -0 "$GW_PID" 2>/dev/null; then
    kill -TERM "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
  fi
  if [ -f "$PG_DIR/PG_VERSION" ]; then
    "$GW_ROOT/scripts/pg.sh" stop "$PG_DIR" 2>/dev/null || true
  fi
  [ -n "${PG_BASE:-}" ] && rm -rf "$PG_BASE"
  if [ "${BENCH_KEEP:-0}" = 1 ]; then gw_say "kept $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
now() { date +%s.%N; }
metric() { curl -fsS "http://$ADMIN/metrics" | awk -v m="$1" '$1 == m { v = $2 } END { print (v == "" ? 0 : v) }'; }
calc() { awk "BEGIN { printf \"%.${2:-0}f\", ($1) }"; }
kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$GW_PID/status"; }
mib() { calc "$(kib "$1") / 1024" 1; }
reset_hwm() { echo 5 >"/proc/$GW_PID/clear_refs" 2>/dev/null || true; }
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$GW_PID/stat"; }
# sampler FILE: VmRSS (MiB) every 100 ms into FILE until stopped; stats FILE: "median max" of it.
sampler_start() {
  : >"$1"
  (while kill -0 "$GW_PID" 2>/dev/null; do
    awk '$1 == "VmRSS:" { printf "%.1f\n", $2 / 1024 }' "/proc/$GW_PID/status" >>"$1" 2>/dev/null || true
    sleep 0.1
  done) &
  SAMPLER=$!
}
sampler_stop() { kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; SAMPLER=; }
stats() { sort -n "$1" | awk '{ v[NR] = $1 } END { if (!NR) { print "n/a n/a"; exit } printf "%.1f %.1f\n", v[int((NR + 1) / 2)], v[NR] }'; }

# wait_landed WANT S0: poll until WANT rows beyond S0 are stored (or nothing moved for 30 s). Sets T_LAST, LANDED.
wait_landed() {
  local want=$1 s0=$2 s last=-1 t_move
  t_move=$(now)
  T_LAST=$t_move
  while :; do
    s=$(($(metric genai_gateway_records_stored_total) + $(metric genai_gateway_records_duplicate_total) - s0))
    if [ "$s" != "$last" ]; then last=$s; t_move=$(now); T_LAST=$t_move; fi
    [ "$s" -ge "$want" ] && break
    [ "$(calc "$(now) - $t_move > 30")" = 1 ] && { gw_say "WARNING: only $s of $want spans stored"; break; }
    sleep 0.1
  done
  LANDED=$s
}
stored() { echo $(($(metric genai_gateway_records_stored_total) + $(metric genai_gateway_records_duplicate_total))); }
# hist_snap FILE: the request's stage histograms now; hist_diff BEFORE AFTER: per series over the phase, the
# count, the mean, and the bucket bounds under which half / 99 % of it fell (the buckets are 0.25, 0.5, 1,
# 1.5, 2, 3, 4, 5, 7.5, 10, 15, 25, 50, 100 ms...).
hist_snap() {
  curl -fsS "http://$ADMIN/metrics" |
    grep -E '^genai_gateway_(request_stage_seconds|spool_fsync_duration_seconds|request_duration_seconds)_' >"$1" || true
}
hist_diff() {
  awk '
    function key(s) { sub(/,?le="[^"]*"/, "", s); return s }
    FNR == NR { before[$1] = $2; next }
    {
      v = $2 - (($1 in before) ? before[$1] : 0)
      if ($1 ~ /_bucket\{/) {
        k = $1; le = $1; sub(/.*le="/, "", le); sub(/".*/, "", le); k = key(k); sub(/_bucket/, "", k); sub(/\{\}$/, "", k)
        n[k]++; bl[k, n[k]] = le; bc[k, n[k]] = v
      } else if ($1 ~ /_sum/) { k = $1; sub(/_sum/, "", k); sum[k] = v }
      else if ($1 ~ /_count/) { k = $1; sub(/_count/, "", k); cnt[k] = v }
    }
    END {
      for (k in cnt) {
        if (cnt[k] <= 0) continue
        p50 = p99 = ""
        for (i = 1; i <= n[k]; i++) {
          if (p50 == "" && bc[k, i] >= 0.5 * cnt[k]) p50 = bl[k, i]
          if (p99 == "" && bc[k, i] >= 0.99 * cnt[k]) p99 = bl[k, i]
        }
        name = k; sub(/^genai_gateway_/, "", name); gsub(/[{}"]/, "", name)
        printf "  %-60s n %5d  mean %7.2f ms  p50 <= %s s  p99 <= %s s\n", name, cnt[k], 1000 * sum[k] / cnt[k], p50, p99
      }
    }' "$1" "$2" | sort
}

gw_say "starting PostgreSQL in $PG_DIR"
DSN=$("$GW_ROOT/scripts/pg.sh" start "$PG_DIR" 2>"$WORK/pg-start.log") || { cat "$WORK/pg-start.log" >&2; gw_die "PostgreSQL did not start"; }
for kv in ${BENCH_PG_SETTINGS:-}; do
  psql "$DSN" -qAtc "ALTER SYSTEM SET ${kv%%=*} = '${kv#*=}'" >/dev/null || gw_die "cannot set $kv in PostgreSQL"
done
[ -n "${BENCH_PG_SETTINGS:-}" ] && psql "$DSN" -qAtc "SELECT pg_reload_conf()" >/dev/null
checkpoints() { psql "$DSN" -qAtc "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter" 2>/dev/null || echo 0; }
GRPC=127.0.0.1:$(free_port)
HTTP=127.0.0.1:$(free_port)
ADMIN=127.0.0.1:$(free_port)
{
  printf 'log:\n  level: warn\npostgres:\n  migrations_dir: "%s"\n' "$GW_ROOT/migrations"
  if [ "$SPOOL" = memory ]; then
    printf 'spool:\n  mode: memory\n'
  else
    printf 'spool:\n  mode: disk\n  dir: "%s"\n  fsync: %s\n' "$WORK/spool" "$SPOOL"
    [ -n "${BENCH_FSYNC_INTERVAL:-}" ] && printf '  fsync_interval_ms: %s\n' "$BENCH_FSYNC_INTERVAL"
  fi
  [ -n "${BENCH_YAML:-}" ] && printf '%b\n' "$BENCH_YAML"
} >"$WORK/gateway.yaml"
DATABASE_URL=$DSN GENAI_GW_GRPC_ADDR=$GRPC GENAI_GW_HTTP_ADDR=$HTTP GENAI_GW_ADMIN_ADDR=$ADMIN \
  "$GW_BIN" --config "$WORK/gateway.yaml" >"$WORK/gateway.log" 2>&1 &
GW_PID=$!
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://$ADMIN/readyz" 2>/dev/null && break
  kill -0 "$GW_PID" 2>/dev/null || { cat "$WORK/gateway.log" >&2; gw_die "the gateway exited at start"; }
  sleep 0.1
done
curl -fsS -o /dev/null "http://$ADMIN/readyz" || gw_die "the gateway is not ready after 10 s (log: $WORK/gateway.log)"
"$GW_BIN" --config "$WORK/gateway.yaml" --print-config >"$WORK/effective.yaml" 2>/dev/null || true
RSS_IDLE=$(mib VmRSS)

mkdir -p "$WORK/bodies"
SPANS=${BENCH_SPANS:-100}
"$BUILD/bench/gen_payload" -n "$NBODIES" -s "$SPANS" "$WORK/bodies" >/dev/null
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- 1. capacity ----
if [ -n "${BENCH_RATE:-}" ]; then
  RATE=$BENCH_RATE
  CAP_LINE="given: BENCH_RATE=$RATE"
else
  gw_say "capacity: wrk, ${SECS}s, $CONNS connections, fresh ids"
  S0=$(stored)
  A0=$(metric genai_gateway_spans_accepted_total)
  reset_hwm
  sampler_start "$WORK/rss-capacity"
  T0=$(now)
  wrk -t 2 -c "$CONNS" -d "${SECS}s" --latency -s "$GW_ROOT/bench/otlp_http.lua" "http://$HTTP/v1/traces" \
    -- "$WORK/bodies" "$NBODIES" >"$WORK/wrk-capacity.out" 2>&1 || { cat "$WORK/wrk-capacity.out" >&2; gw_die "wrk failed"; }
  ACC=$(($(metric genai_gateway_spans_accepted_total) - A0))
  wait_landed "$ACC" "$S0"
  sampler_stop
  RATE=$(calc "$LANDED / ($T_LAST - $T0)")
  read -r CAP_MED CAP_MAX < <(stats "$WORK/rss-capacity")
  CAP_HWM=$(mib VmHWM)
  CAP_LINE="wrk $CONNS conns: $ACC spans accepted, $LANDED landed in $(calc "$T_LAST - $T0" 1) s; VmRSS median $CAP_MED / max $CAP_MAX MiB, VmHWM $CAP_HWM MiB"
fi
gw_say "sustainable landed rate R = $RATE spans/s ($CAP_LINE)"

# openloop NAME PROTO RATE: one open-loop phase with VmRSS sampling; waits until its rows are stored.
TAG=16
openloop() {
  local name=$1 proto=$2 rate=$3 addr=$HTTP s0 c0 c1 a0 k0 acc out
  [ "$proto" = grpc ] && addr=$GRPC
  TAG=$((TAG + 1))
  out=$WORK/openloop-$TAG.json
  s0=$(stored)
  a0=$(metric genai_gateway_spans_accepted_total)
  reset_hwm
  hist_snap "$out.h0"
  k0=$(checkpoints)
  w0=$(metric genai_gateway_spool_written_bytes_total)
  c0=$(cpu_s)
  node "$GW_ROOT/bench/openloop.mjs" --proto "$proto" --addr "$addr" --bodies "$WORK/bodies" --nbodies "$NBODIES" \
    --rate "$rate" --spans "$SPANS" --seconds "$SECS" --warmup 1 --tag "$TAG" --rss "$GW_PID" --json >"$out"
  acc=$(($(metric genai_gateway_spans_accepted_total) - a0))
  wait_landed "$acc" "$s0"
  c1=$(cpu_s)
  # what the spool's disk got a request, and the requests a second: the disk floor below replays them
  LAST_ENTRY=$(node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(Math.round(process.argv[2] / Math.max(1, r.ok)))' "$out" "$(($(metric genai_gateway_spool_written_bytes_total) - w0))")
  LAST_REQ_RATE=$(calc "$rate / $SPANS" 1)
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const f = (x) => x.toFixed(2);
    console.log(`${process.argv[2].padEnd(22)} ${String(r.rate_spans_per_s).padStart(6)} spans/s  ok ${r.ok}/${r.requests}  ` +
      `p50 ${f(r.p50_ms)}  p99 ${f(r.p99_ms)}  p999 ${f(r.p999_ms)}  max ${f(r.max_ms)} ms  ` +
      `VmRSS ${r.rss_mib.median.toFixed(1)} / ${r.rss_mib.max.toFixed(1)} MiB  codes ${JSON.stringify(r.codes)}`);
  ' "$out" "$name" | tee -a "$WORK/summary"
  printf '%-22s VmHWM %s MiB, gateway CPU %s us per span, largest client send lag %s ms, Postgres checkpoints begun %s\n' \
    "" "$(mib VmHWM)" "$(calc "1000000 * ($c1 - $c0) / ($acc > 0 ? $acc : 1)" 1)" \
    "$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).max_send_lag_ms.toFixed(1))' "$out")" \
    "$(($(checkpoints) - k0))" | tee -a "$WORK/summary"
  hist_snap "$out.h1"
  hist_diff "$out.h0" "$out.h1" | tee -a "$WORK/summary"
}

: >"$WORK/summary"
FULL=$(calc "$RATE * 0.9")
HALF=$(calc "$RATE / 2")
if [[ " $PHASES " == *" full "* ]]; then
  gw_say "full load: open loop at 0.9 R = $FULL spans/s over OTLP/HTTP"
  openloop "full, HTTP (0.9 R)" http "$FULL"
fi
if [[ " $PHASES " == *" half "* ]]; then
  gw_say "half load: open loop at R / 2 = $HALF spans/s, OTLP/HTTP then OTLP/gRPC"
  openloop "half, HTTP (R/2)" http "$HALF"
  openloop "half, gRPC (R/2)" grpc "$HALF"
  if [ "$SPOOL" != memory ] && [ "$SPOOL" != never ] && [ "${LAST_ENTRY:-0}" -gt 0 ]; then
    # The floor under item 4's latency: the spool's own disk, with nothing else running, appending and
    # syncing entries of the size the gateway wrote, as often as it got requests, latency from when each was
    # due. A request can answer no sooner than its sync, so the disk's p99 bounds the gateway's from below.
    gw_say "disk floor: bench_spool on the spool's file system, $LAST_ENTRY-byte entries, $LAST_REQ_RATE a second"
    mkdir -p "$WORK/spool-floor"
    "$BUILD/bench/bench_spool" -t 1 -s "$LAST_ENTRY" -d "$SECS" -m always -r "$LAST_REQ_RATE" "$WORK/spool-floor" \
      >"$WORK/spool-floor.out" 2>&1 || { cat "$WORK/spool-floor.out" >&2; gw_die "bench_spool failed"; }
    rm -rf "$WORK/spool-floor"
    awk -v e="$LAST_ENTRY" -v r="$LAST_REQ_RATE" '$1 == "always" {
      printf "%-22s %s-byte entries, %s a second: p50 %.2f  p99 %.2f  max %.2f ms (bench_spool, fsync always, the gateway idle)\n",
        "spool disk alone", e, r, $4, $5, $6 }' "$WORK/spool-floor.out" | tee -a "$WORK/summary"
  fi
fi
RSS_AFTER=$(mib VmRSS)

# ---- 4. Postgres stopped ----
DOWN_ACC=n/a DOWN_NON2XX=n/a SPOOL_HELD=n/a DOWN_MED=n/a DOWN_MAX=n/a DOWN_HWM=n/a
if [[ " $PHASES " == *" down "* ]]; then
  gw_say "Postgres stopped: wrk, ${SECS}s, $CONNS connections (the spool fills, 429)"
  "$GW_ROOT/scripts/pg.sh" stop "$PG_DIR" >/dev/null 2>&1 || true
  A0=$(metric genai_gateway_spans_accepted_total)
  reset_hwm
  sampler_start "$WORK/rss-pgdown"
  wrk -t 2 -c "$CONNS" -d "${SECS}s" --latency -s "$GW_ROOT/bench/otlp_http.lua" "http://$HTTP/v1/traces" \
    -- "$WORK/bodies" "$NBODIES" >"$WORK/wrk-pgdown.out" 2>&1 || true
  sampler_stop
  DOWN_ACC=$(($(metric genai_gateway_spans_accepted_total) - A0))
  read -r DOWN_MED DOWN_MAX < <(stats "$WORK/rss-pgdown")
  DOWN_HWM=$(mib VmHWM)
  DOWN_NON2XX=$(awk '/Non-2xx/ { print $NF }' "$WORK/wrk-pgdown.out")
  SPOOL_HELD=$(calc "$(metric genai_gateway_spool_bytes) / 1048576" 1)
  kill -0 "$GW_PID" 2>/dev/null || gw_die "the gateway died with Postgres stopped (log: $WORK/gateway.log)"
fi

# README.md's bound at rest and under ordinary load ("Memory at rest and under load"), for this configuration:
# idle + T x (4 MiB kept + the request in progress) + 32 MiB writer + one spool segment + 16 MiB, where the
# request in progress is taken as this payload's measured 16 x body (arena + body), T the receiver threads.
HT=$(awk '/^  http:/ { h = 1 } h && /threads:/ { print $2; exit }' "$WORK/effective.yaml")
GT=$(awk '/^  grpc:/ { g = 1 } g && /threads:/ { print $2; exit }' "$WORK/effective.yaml")
HT=${HT:-2}
GT=${GT:-2}
BODY_MIB=$(calc "$(stat -c %s "$WORK/bodies/body-000.pb") / 1048576" 3)
SEG_MIB=16
BOUND=$(calc "$RSS_IDLE + ($HT + $GT) * (4 + 16 * $BODY_MIB) + 32 + $SEG_MIB + 16" 1)
BOUND_LINE="$BOUND MiB = idle $RSS_IDLE + ($HT + $GT threads) x (4 + 16 x $BODY_MIB) + 32 (writer) + $SEG_MIB (spool segment) + 16"

cat <<EOF

================ genai-gateway steady memory and latency, $(date -u +%Y-%m-%d) ($(nproc) cores; load average before $LOAD0, after $(cut -d' ' -f1-3 /proc/loadavg))
payload: $SPANS GenAI chat spans per request (gen_payload), spool: $SPOOL${BENCH_FSYNC_INTERVAL:+ $BENCH_FSYNC_INTERVAL} (disk with that fsync, or memory), Postgres with fsync on, $PG_WHERE
sustainable landed rate R: $RATE spans/s ($CAP_LINE)
idle VmRSS (after start): $RSS_IDLE MiB

open loop (latency from when each request was due)     spans/s   answered   p50 / p99 / p999 / max   VmRSS median / max
$(cat "$WORK/summary")
VmRSS after the open-loop phases: $RSS_AFTER MiB

Postgres stopped, wrk $CONNS connections ${SECS}s: $DOWN_ACC spans accepted, ${DOWN_NON2XX:-0} non-2xx; spool holds $SPOOL_HELD MiB
  VmRSS median $DOWN_MED / max $DOWN_MAX MiB, VmHWM $DOWN_HWM MiB
README bound: $BOUND_LINE
EOF
