/*
 * store.h: the PostgreSQL layer (DESIGN §6): the migration runner and the Postgres writer, the first
 * spool consumer, declared as a sink (gw_store_pg_sink) so the generic loop in sink.c does the cursor,
 * batching, backoff and retry.
 */
#ifndef GW_STORE_H
#define GW_STORE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
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
  /* > 1: this writer is one of several of one gateway (postgres.writers, gw_sink_start_n). Their
   * transactions then COPY at the same time, but take the transaction advisory lock (GW_WRITERS_LOCK,
   * writers_lock) before anything that reads other rows (the rollup upsert, the session/user fill, the
   * events' merge) and hold it to their commit, and the agent fill after commit takes it too: these parts
   * run one writer at a time, each seeing what the one before committed, as with one writer. */
  uint32_t writers;
  int32_t writers_lock; /* the lock's second key: the same for the writers of one gateway (main picks it) */
  /* The longest a statement of the writer's transactions may run, a lock wait included (SET LOCAL
   * statement_timeout; 0: no limit). Past it Postgres cancels it and the batch is sent again after the
   * backoff: a stuck writer shows in the log and the retry counter instead of waiting silently. */
  uint32_t statement_timeout_ms;
};
#define GW_WRITERS_LOCK 1735882411

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

/* Open a connection as every part of the gateway wants it (connect timeout, application_name app,
 * keepalives, UTC session, notices silenced). NULL on failure with why filled; why never quotes the DSN. */
PGconn *gw_pg_connect(const char *dsn, const char *app, char *why, size_t whylen);
/* Why conn failed to connect, without quoting the connection string. */
void gw_pg_conn_reason(PGconn *conn, char *buf, size_t len);

/*
 * Partition upkeep and retention (DESIGN §6), migrations/0003_retention.sql's gw_maintain run from C:
 * partitions created for today (UTC) and days_ahead days after, partitions whose day ended before
 * now - retention_days dropped, rollup rows older than rollup_retention_days deleted.
 */
struct gw_maint_conf {
  const char *dsn;               /* copied by gw_maint_start */
  uint32_t retention_days;        /* >= 1 */
  uint32_t rollup_retention_days; /* >= retention_days */
  uint32_t days_ahead;
  uint64_t interval_ms;           /* the loop's period (> 0) */
};
struct gw_maint_result {
  bool ran; /* false: another session held the maintenance lock, nothing was done */
  long long partitions_created, partitions_dropped, rollup_rows_deleted, rejects_deleted;
};
/* One maintenance pass as if the time were now_unix_ns (a fake clock in tests). Errors: GW_ERR(DB_CONN)
 * when the connection broke, GW_ERR(DB_DATA) otherwise (SQLSTATE and message in err). Counts the metrics. */
gw_rc gw_maint_run(PGconn *conn, const struct gw_maint_conf *mc, uint64_t now_unix_ns, struct gw_maint_result *res,
                   struct gw_err *err);

/* The maintenance loop: a thread with its own connection running gw_maint_run at start and then every
 * interval_ms on the real clock; it reconnects and retries (sooner) after a failure and never stops the
 * gateway. Several gateways on one database are fine: one runs, the others find the lock taken. */
struct gw_maint;
struct gw_maint *gw_maint_start(const struct gw_maint_conf *mc, struct gw_err *err);
/* Stop and join; NULL is fine. */
void gw_maint_stop(struct gw_maint *m);

/* Recompute trace_metrics_hourly for every whole UTC hour overlapping [from, to) (timestamps as Postgres
 * reads them; without a zone they are UTC) from the raw rows; *rows = rollup rows written. GW_ERR(INVALID)
 * names the bad argument; GW_ERR(DB_CONN) / GW_ERR(DB_DATA) as above. */
/* Hours older than the raw rows postgres.retention_days keeps (from the start of the day gw_maintain keeps
 * whole) are left alone: their rollups are all that is left of them. kept_from (at least 32 bytes) gets that
 * start when --from was before it ("" otherwise); a range wholly before it is INVALID. */
gw_rc gw_rollup_rebuild(PGconn *conn, const char *from, const char *to, int retention_days, char *kept_from,
                        long long *rows, struct gw_err *err);

#endif
