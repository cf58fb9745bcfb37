#!/usr/bin/env bash
# Install what is missing, build, start an embedded PostgreSQL when DATABASE_URL is unset, apply the
# migrations and run the gateway on 127.0.0.1:4317 (gRPC) and 127.0.0.1:4318 (HTTP).
#   GW_DATA_DIR   where the embedded PostgreSQL lives (default: ./data, or /var/lib/genai-gateway when the
#                 checkout is not reachable by the postgres user)
#   GW_PG_PORT    its port (default 5433)
# The spool is on disk, in $GW_DATA_DIR/spool (unless GENAI_GW_SPOOL_DIR says otherwise): what the gateway
# acknowledged survives a crash or a restart and is stored once PostgreSQL can take it.
# Any argument is passed to the gateway (e.g. --config deploy/gateway.example.yaml).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

gw_ensure_packages
gw_build "$GW_ROOT/build"

data=${GW_DATA_DIR:-$GW_ROOT/data}
export GENAI_GW_SPOOL_DIR=${GENAI_GW_SPOOL_DIR:-$data/spool}
mkdir -p "$GENAI_GW_SPOOL_DIR"
gw_say "disk spool in $GENAI_GW_SPOOL_DIR"

if [ -z "${DATABASE_URL:-}" ]; then
  if ! gw_pg_reachable "$data"; then
    [ -z "${GW_DATA_DIR:-}" ] || gw_die "GW_DATA_DIR=$data is not reachable by the postgres user"
    data=/var/lib/genai-gateway
    gw_say "the checkout is not reachable by the postgres user; using $data for the embedded PostgreSQL"
  fi
  DATABASE_URL=$("$GW_ROOT/scripts/pg.sh" start "$data/pg" "${GW_PG_PORT:-5433}")
  export DATABASE_URL
  gw_say "embedded PostgreSQL in $data/pg: $DATABASE_URL (stop it with: scripts/pg.sh stop $data/pg)"
fi

gw_say "send OTLP traces to grpc://127.0.0.1:4317 or http://127.0.0.1:4318/v1/traces; admin on http://127.0.0.1:8888"
exec "$GW_ROOT/build/genai-gateway" "$@"
