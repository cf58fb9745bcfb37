/*
 * store.h: the PostgreSQL layer (DESIGN §6): the migration runner and the Postgres writer, the first
 * spool consumer, declared as a sink (gw_store_pg_sink) so the generic loop in sink.c does the cursor,
 * batching, backoff and retry.
 */
#ifndef GW_STORE_H
#define GW_STORE_H

#include <libpq-fe.h>
#include <stdint.h>

#include "core/gw.h"
#include "sink/sink.h"

/* Batching the writer is tuned for (DESIGN §6: by size and time); main passes them in gw_sink_conf. */
#define GW_STORE_BATCH_SPANS 1000
#define GW_STORE_BATCH_WAIT_MS 200

/* The writer's config. Strings are copied by create. */
struct gw_store_conf {
  const char *dsn;            /* libpq connection string or URI; may hold a password: never logged */
  const char *migrations_dir; /* applied on the first successful connection; NULL: don't migrate */
  uint32_t retention_days;    /* for partition maintenance; the receiver rejects spans outside it */
};

/*
 * The Postgres writer sink ("postgres"). create(const struct gw_store_conf *) never connects: the
 * connection is opened lazily by send (and re-opened after it breaks), so the gateway starts while
 * Postgres is down. send stores the interaction records of traces entries, idempotently:
 *   OK    every record is stored, was already there, or was refused by Postgres for its data and
 *         written to ai_interaction_rejects;
 *   RETRY the connection failed or broke (or the database is not usable yet): send the batch again.
 * It never answers DROP for a database problem; only an entry whose records blob does not decode
 * (a bug, not a Postgres condition) is skipped, logged and counted as dropped.
 * Runs on the sink thread only; the state (its PGconn) belongs to that thread.
 */
extern const struct gw_sink_type gw_store_pg_sink;

/*
 * Apply the migrations in dir (files NNNN_name.sql, in version order) that conn's database lacks, each
 * in its own transaction, recorded in schema_migrations(version, name, applied_at). Serialized across
 * gateways by a session advisory lock. Idempotent. Errors (err filled, nothing logged):
 *   GW_ERR(DB_CONN)  the connection failed;
 *   GW_ERR(CONFIG)   the database schema is newer than the newest file, a file name is malformed or
 *                    duplicated, or a migration failed (its SQLSTATE and message are in err);
 *   GW_ERR(IO)       dir or a file cannot be read.
 */
gw_rc gw_store_migrate(PGconn *conn, const char *dir, struct gw_err *err);

#endif
