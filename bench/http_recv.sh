#!/usr/bin/env bash
# bench/http_recv.sh: the OTLP/HTTP receiver alone, no Postgres: what one gateway binary accepts with wrk
# (HTTP/1.1) or h2load (HTTP/2), to compare receiver designs (bench/README.md, "Receiver").
#
#   bench/http_recv.sh BIN [LABEL]
#
# Starts BIN on free ports with the spool of BENCH_SPOOL (interval: disk spool with spool.fsync interval,
# as deployed; memory), no consumer (entries are dropped once durable, so the spool never fills), then for
# each connection count in BENCH_CONNS_LIST (default "4 64") runs BENCH_TOOL (wrk | h2load | wrk-tls |
# h2load-tls; h2load-grpc: OTLP/gRPC calls on the OTLP/HTTP port, h2load-grpc-port: the same on the gRPC
# port) for BENCH_SECONDS (10) with gen_payload's bodies (BENCH_SPANS GenAI spans each, default 100: ~270 KB). Prints one line per
# run: requests/s, spans/s accepted, p50 and p99 latency, and the gateway's CPU time per 1000 spans (user +
# system, from /proc): on a machine shared with other work the rates swing with the neighbours' load, the
# CPU cost per span much less, so compare designs by it. Extra YAML for the gateway: BENCH_YAML (appended
# under receivers:, e.g. "  http:\n    threads: 4"). TLS tools generate a throw-away certificate.
# BENCH_ENC=json: wrk posts the same requests as OTLP/JSON (application/json) instead of protobuf;
# BENCH_ENC=gzip: as protobuf gzipped (gzip -6, Content-Encoding: gzip), as most Collectors send them.
# BENCH_CONVO=1: conversations (gen_payload -c: each call resends the earlier turns; ~545 KB a request).
set -euo pipefail

BIN=${1:?usage: bench/http_recv.sh BIN [LABEL]}
LABEL=${2:-$(basename "$(dirname "$(dirname "$BIN")")")}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=${BENCH_SECONDS:-10}
CONNS_LIST=${BENCH_CONNS_LIST:-4 64}
TOOL=${BENCH_TOOL:-wrk}
SPOOL=${BENCH_SPOOL:-interval}
GEN=${BENCH_GEN:-$ROOT/build/bench/gen_payload}
[ -x "$GEN" ] || { echo "http_recv.sh: $GEN not built (cmake --build build --target gen_payload)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/gw-http-recv.XXXXXX)
GW_PID=
cleanup() {
  [ -n "$GW_PID" ] && kill "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
HTTP=127.0.0.1:$(free_port)
ADMIN=127.0.0.1:$(free_port)
GRPC=127.0.0.1:$(free_port)
mkdir -p "$WORK/bodies"
ENC=${BENCH_ENC:-protobuf}
CONVO=()
[ "${BENCH_CONVO:-0}" = 1 ] && CONVO=(-c)
case $ENC in
protobuf) "$GEN" -n 8 -s "${BENCH_SPANS:-100}" "${CONVO[@]}" "$WORK/bodies" >/dev/null ;;
json)
  [ "$TOOL" = wrk ] || [ "$TOOL" = wrk-tls ] || { echo "BENCH_ENC=json: wrk or wrk-tls only" >&2; exit 2; }
  "$GEN" -n 8 -s "${BENCH_SPANS:-100}" "${CONVO[@]}" -j "$WORK/bodies" >/dev/null
  ;;
gzip)
  [ "$TOOL" = wrk ] || [ "$TOOL" = wrk-tls ] || { echo "BENCH_ENC=gzip: wrk or wrk-tls only" >&2; exit 2; }
  "$GEN" -n 8 -s "${BENCH_SPANS:-100}" "${CONVO[@]}" "$WORK/bodies" >/dev/null
  for f in "$WORK"/bodies/body-*.pb; do gzip -6 -n -c "$f" >"$f.gz"; done
  ;;
*) echo "BENCH_ENC=$ENC: protobuf, json or gzip" >&2; exit 2 ;;
esac

SCHEME=http
{
  printf 'log:\n  level: warn\n'
  if [ "$SPOOL" = memory ]; then
    printf 'spool:\n  mode: memory\n'
  else
    printf 'spool:\n  mode: disk\n  dir: "%s"\n  fsync: interval\n' "$WORK/spool"
  fi
  printf 'receivers:\n'
  case $TOOL in
  *-tls)
    SCHEME=https
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
      -days 1 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 2>/dev/null
    printf '  tls:\n    cert_file: "%s"\n    key_file: "%s"\n' "$WORK/cert.pem" "$WORK/key.pem"
    ;;
  esac
  [ -n "${BENCH_YAML:-}" ] && printf '%b\n' "$BENCH_YAML"
} >"$WORK/gw.yaml"

GENAI_GW_HTTP_ADDR=$HTTP GENAI_GW_ADMIN_ADDR=$ADMIN GENAI_GW_GRPC_ADDR=$GRPC "$BIN" --config "$WORK/gw.yaml" \
  >"$WORK/gw.log" 2>&1 &
GW_PID=$!
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://$ADMIN/readyz" 2>/dev/null && break
  kill -0 "$GW_PID" 2>/dev/null || { cat "$WORK/gw.log" >&2; exit 1; }
  sleep 0.1
done
accepted() { curl -fsS "http://$ADMIN/metrics" | awk '$1 == "genai_gateway_spans_accepted_total" { print $2 }'; }
# The gateway's user + system CPU time in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$GW_PID/stat"; }
TCK=$(getconf CLK_TCK)

for C in $CONNS_LIST; do
  A0=$(accepted)
  C0=$(cpu_ticks)
  case $TOOL in
  wrk | wrk-tls)
    wrk -t 2 -c "$C" -d "${SECS}s" --latency -s "$ROOT/bench/otlp_http.lua" "$SCHEME://$HTTP/v1/traces" \
      -- "$WORK/bodies" 8 0 "$ENC" >"$WORK/out" 2>&1
    RPS=$(awk '/^Requests\/sec/ { print $2 }' "$WORK/out")
    P50=$(awk '$1 == "50%" { print $2 }' "$WORK/out")
    P99=$(awk '$1 == "99%" { print $2 }' "$WORK/out")
    ERR=$(awk '/Non-2xx|Socket errors/ { printf "%s ", $0 }' "$WORK/out")
    ;;
  h2load | h2load-tls)
    h2load -t 2 -c "$C" -m 1 -D "$SECS" -d "$WORK/bodies/body-000.pb" -H 'content-type: application/x-protobuf' \
      --log-file="$WORK/h2.log" "$SCHEME://$HTTP/v1/traces" >"$WORK/out" 2>&1 || true
    RPS=$(awk '/^finished in/ { for (i = 1; i <= NF; i++) if ($i ~ /req\/s/) { print $(i - 1); exit } }' "$WORK/out")
    read -r P50 P99 < <(awk '{ print $3 }' "$WORK/h2.log" | sort -n | awk '{ v[NR] = $1 } END {
      if (NR == 0) { print "n/a n/a"; exit } i50 = int(NR * .5); i99 = int(NR * .99); if (i50 < 1) i50 = 1;
      if (i99 < 1) i99 = 1; printf "%.2fms %.2fms\n", v[i50] / 1000, v[i99] / 1000 }')
    ERR=$(awk '/^status codes/ { print }' "$WORK/out")
    ;;
  h2load-grpc | h2load-grpc-port)
    # one fixed body, re-sent (no consumer here, so nothing dedups or fills): gRPC calls, HTTP/2 h2c
    TARGET=$HTTP
    [ "$TOOL" = h2load-grpc-port ] && TARGET=$GRPC
    h2load -t 2 -c "$C" -m 1 -D "$SECS" -d "$WORK/bodies/body-000.grpc" -H 'content-type: application/grpc' \
      -H 'te: trailers' --log-file="$WORK/h2.log" \
      "http://$TARGET/opentelemetry.proto.collector.trace.v1.TraceService/Export" >"$WORK/out" 2>&1 || true
    RPS=$(awk '/^finished in/ { for (i = 1; i <= NF; i++) if ($i ~ /req\/s/) { print $(i - 1); exit } }' "$WORK/out")
    read -r P50 P99 < <(awk '{ print $3 }' "$WORK/h2.log" | sort -n | awk '{ v[NR] = $1 } END {
      if (NR == 0) { print "n/a n/a"; exit } i50 = int(NR * .5); i99 = int(NR * .99); if (i50 < 1) i50 = 1;
      if (i99 < 1) i99 = 1; printf "%.2fms %.2fms\n", v[i50] / 1000, v[i99] / 1000 }')
    ERR=$(awk '/^status codes/ { print }' "$WORK/out")
    ;;
  *) echo "BENCH_TOOL=$TOOL: wrk, h2load, wrk-tls, h2load-tls, h2load-grpc or h2load-grpc-port" >&2; exit 2 ;;
  esac
  A1=$(accepted)
  C1=$(cpu_ticks)
  CPU=$(awk -v c=$((C1 - C0)) -v t="$TCK" -v a=$((A1 - A0)) 'BEGIN { if (a > 0) printf "%.1f", 1000 * c / t / a * 1000; else print "n/a" }')
  printf '%-14s %-10s %-6s conns=%-4s req/s=%-8s spans/s=%-8s p50=%-9s p99=%-9s cpu_ms/1k_spans=%-6s %s\n' "$LABEL" \
    "$TOOL" "$SPOOL" "$C" "$RPS" "$(( (A1 - A0) / SECS ))" "$P50" "$P99" "$CPU" "$ERR"
done
