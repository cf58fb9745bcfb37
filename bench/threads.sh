#!/usr/bin/env bash
# bench/threads.sh: receiver-thread scaling (issue 15 item 5; bench/README.md, "Receiver threads").
#
#   bench/threads.sh [BIN]
#
# For each count N in BENCH_THREADS ("1 2 4") starts BIN (default: a Release build in build-bench/) on free
# ports with receivers.http.threads = receivers.grpc.threads = N, the disk spool (fsync interval, as
# deployed) and no Postgres and no exporter (entries are dropped once durable: what is measured is the
# receive path alone, the part the thread counts size), then for BENCH_SECONDS (10) each:
#   - OTLP/HTTP: HTTP/1.1 POSTs to /v1/traces, BENCH_CONNS (8) x 4 connections;
#   - OTLP/gRPC: BENCH_CONNS connections x 4 streams;
# so as many requests are in flight either way (each waits for the spool's sync: a closed loop's rate is
# its requests in flight over their latency). h2load, one process per gRPC connection or four HTTP ones,
# process c sending body c % 8 of gen_payload's 8: both protocols carry the same bodies (wrk's Lua, which
# rewrote ids per request, took a core of its own and capped the HTTP figure at what it could send).
# Prints accepted spans/s, p50 / p99, the gateway's CPU time per accepted span (user + system from /proc:
# it moves much less than the rates when other work shares the machine), the cores the gateway used and
# the cores everything else used meanwhile (the load tools, mostly), with the load average.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${1:-$ROOT/build-bench/genai-gateway}
GEN=${BENCH_GEN:-$(dirname "$BIN")/bench/gen_payload}
SECS=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNS:-8}
COUNTS=${BENCH_THREADS:-1 2 4}
if [ ! -x "$BIN" ] || [ ! -x "$GEN" ]; then
  cmake -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release -DGW_TESTS=OFF >/dev/null
  cmake --build "$ROOT/build-bench" -j 2 --target genai-gateway gen_payload >/dev/null
fi
command -v h2load >/dev/null || { echo "threads.sh: needs h2load (apt-get install nghttp2-client)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/gw-threads.XXXXXX)
GW_PID=
stop_gw() {
  if [ -n "$GW_PID" ]; then kill "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null; GW_PID=; fi
  return 0
}
cleanup() { stop_gw; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
mkdir -p "$WORK/bodies"
"$GEN" -n 8 "$WORK/bodies" >/dev/null
accepted() { curl -fsS "http://$ADMIN/metrics" | awk '$1 == "genai_gateway_spans_accepted_total" { print $2 }'; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$GW_PID/stat"; }
# every CPU's busy ticks (user, nice, system, irq, softirq, steal): less the gateway's, the load tools' share
busy_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
TCK=$(getconf CLK_TCK)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

printf '%-8s %-6s %10s %10s %10s %14s %9s %9s\n' threads proto spans/s p50 p99 "CPU us/span" "gw cores" "others" |
  tee "$WORK/table"
for N in $COUNTS; do
  HTTP=127.0.0.1:$(free_port)
  ADMIN=127.0.0.1:$(free_port)
  GRPC=127.0.0.1:$(free_port)
  rm -rf "$WORK/spool"
  printf 'log:\n  level: warn\nspool:\n  mode: disk\n  dir: "%s"\n  fsync: interval\nreceivers:\n  http:\n    threads: %s\n  grpc:\n    threads: %s\n' \
    "$WORK/spool" "$N" "$N" >"$WORK/gw.yaml"
  GENAI_GW_HTTP_ADDR=$HTTP GENAI_GW_ADMIN_ADDR=$ADMIN GENAI_GW_GRPC_ADDR=$GRPC "$BIN" --config "$WORK/gw.yaml" \
    >"$WORK/gw-$N.log" 2>&1 &
  GW_PID=$!
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://$ADMIN/readyz" 2>/dev/null && break
    kill -0 "$GW_PID" 2>/dev/null || { cat "$WORK/gw-$N.log" >&2; exit 1; }
    sleep 0.1
  done
  for PROTO in http grpc; do
    A0=$(accepted)
    C0=$(cpu_ticks)
    M0=$(busy_ticks)
    # h2load posts one file: one h2load per connection, each with one of the 8 bodies, over HTTP/1.1 to
    # /v1/traces or as gRPC calls (one body re-sent everywhere would keep every cache warm and flatter the
    # figures). Fixed ids: nothing dedups here, there is no Postgres.
    PIDS=()
    rm -f "$WORK"/h2-*.log
    for ((c = 0; c < CONNS; c++)); do
      B=$WORK/bodies/body-$(printf %03d $((c % 8)))
      if [ "$PROTO" = http ]; then
        h2load --h1 -t 1 -c 4 -m 1 -D "$SECS" -d "$B.pb" -H 'content-type: application/x-protobuf' \
          --log-file="$WORK/h2-$c.log" "http://$HTTP/v1/traces" >"$WORK/out-$c" 2>&1 &
      else
        h2load -t 1 -c 1 -m 4 -D "$SECS" -d "$B.grpc" -H 'content-type: application/grpc' -H 'te: trailers' \
          --log-file="$WORK/h2-$c.log" "http://$GRPC/opentelemetry.proto.collector.trace.v1.TraceService/Export" \
          >"$WORK/out-$c" 2>&1 &
      fi
      PIDS+=($!)
    done
    wait "${PIDS[@]}" || true
    read -r P50 P99 < <(cat "$WORK"/h2-*.log | awk '{ print $3 }' | sort -n | awk '{ v[NR] = $1 } END {
      if (NR == 0) { print "n/a n/a"; exit } i50 = int(NR * .5); i99 = int(NR * .99); if (i50 < 1) i50 = 1;
      if (i99 < 1) i99 = 1; printf "%.2fms %.2fms\n", v[i50] / 1000, v[i99] / 1000 }')
    A1=$(accepted)
    C1=$(cpu_ticks)
    M1=$(busy_ticks)
    printf '%-8s %-6s %10s %10s %10s %14s %9s %9s\n' "$N" "$PROTO" "$(((A1 - A0) / SECS))" "$P50" "$P99" \
      "$(awk -v c=$((C1 - C0)) -v t="$TCK" -v a=$((A1 - A0)) 'BEGIN { if (a > 0) printf "%.1f", 1e6 * c / t / a; else print "n/a" }')" \
      "$(awk -v c=$((C1 - C0)) -v t="$TCK" -v s="$SECS" 'BEGIN { printf "%.2f", c / t / s }')" \
      "$(awk -v c=$((M1 - M0 - (C1 - C0))) -v t="$TCK" -v s="$SECS" 'BEGIN { printf "%.2f", c / t / s }')" |
      tee -a "$WORK/table"
  done
  stop_gw
done
echo
echo "receiver threads, $(nproc) cores shared with the load tools; load average before $LOAD0, after $(cut -d' ' -f1-3 /proc/loadavg)"
