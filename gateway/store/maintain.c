/*
 * maintain.c: partition upkeep, retention and rollup rebuilds from C (DESIGN §6). The SQL lives in
 * migrations/0003_retention.sql (gw_maintain) and 0002_rollups.sql (gw_rollup_rebuild); this file runs it:
 * once (gw_maint_run, with any clock, for tests and `genai-gateway maintain`), in a loop on its own thread
 * and connection (gw_maint_start), or as the rollup rebuild command.
 *
 * Key decisions:
 * - The loop never touches the writer's connection and never blocks ingestion: a failure is logged
 *   (once per distinct error), counted, and retried after min(interval, 30 s) with a fresh connection.
 * - The schema may not be there yet when the loop starts (Postgres came up after the gateway; the writer
 *   migrates on its first connection): undefined_function is the same "try again soon" as a lost link.
 * - Times go to Postgres as text with an explicit UTC zone, so the session zone never matters.
 * - Stopping never waits on the database: a run still going after STOP_WAIT_MS (a lock wait, a server
 *   that stopped answering) is cancelled, and its socket shut down a second later.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "core/log.h"
#include "core/metrics.h"
#include "store/store.h"

#define MOD "maintain"
#define RETRY_MS 30000u
#define STOP_WAIT_MS 2000u

/* Classify a failed result into err: connection problems are DB_CONN (retry), the rest DB_DATA. */
static gw_rc result_error(PGconn *c, PGresult *r, const char *what, struct gw_err *err)
{
  const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  bool conn = PQstatus(c) != CONNECTION_OK || !state || strncmp(state, "08", 2) == 0 || strncmp(state, "57P0", 4) == 0;
  if (!conn && (strcmp(state, "42883") == 0 || strcmp(state, "42P01") == 0))
    return gw_err_set(err, GW_ERR(DB_DATA), "%s: the database schema is not migrated yet (%s)", what, primary);
  return gw_err_set(err, conn ? GW_ERR(DB_CONN) : GW_ERR(DB_DATA), "%s: %s: %s", what,
                    state ? state : "connection", primary ? primary : "connection lost");
}

static void fmt_utc(uint64_t unix_ns, char *buf, size_t len)
{
  time_t t = (time_t)(unix_ns / 1000000000u);
  struct tm tm;
  gmtime_r(&t, &tm);
  char d[32];
  strftime(d, sizeof d, "%Y-%m-%d %H:%M:%S", &tm);
  snprintf(buf, len, "%s.%06u+00", d, (unsigned)(unix_ns % 1000000000u / 1000u));
}

gw_rc gw_maint_run(PGconn *conn, const struct gw_maint_conf *mc, uint64_t now_unix_ns, struct gw_maint_result *res,
                   struct gw_err *err)
{
  memset(res, 0, sizeof *res);
  char now[48], ahead[16], ret[16], rret[16];
  fmt_utc(now_unix_ns, now, sizeof now);
  snprintf(ahead, sizeof ahead, "%u", mc->days_ahead);
  snprintf(ret, sizeof ret, "%u", mc->retention_days);
  snprintf(rret, sizeof rret, "%u", mc->rollup_retention_days);
  const char *params[] = {now, ahead, ret, rret};
  PGresult *r = PQexecParams(conn,
                             "SELECT ran, partitions_created, partitions_dropped, rollup_rows_deleted, rejects_deleted "
                             "FROM gw_maintain($1::timestamptz, $2::int, $3::int, $4::int)",
                             4, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
    gw_rc rc = result_error(conn, r, "maintenance", err);
    PQclear(r);
    gw_metric_add(GW_M_MAINT_ERRORS, 1);
    return rc;
  }
  res->ran = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
  res->partitions_created = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
  res->partitions_dropped = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
  res->rollup_rows_deleted = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
  res->rejects_deleted = strtoll(PQgetvalue(r, 0, 4), NULL, 10);
  PQclear(r);
  gw_metric_add(GW_M_MAINT_RUNS, 1);
  gw_metric_add(GW_M_PARTITIONS_CREATED, res->partitions_created);
  gw_metric_add(GW_M_PARTITIONS_DROPPED, res->partitions_dropped);
  gw_metric_add(GW_M_ROLLUPS_EXPIRED, res->rollup_rows_deleted);
  return GW_OK;
}

gw_rc gw_rollup_rebuild(PGconn *conn, const char *from, const char *to, int retention_days, char *kept_from,
                        long long *rows, struct gw_err *err)
{
  kept_from[0] = '\0';
  const char *names[] = {"--from", "--to"}, *vals[] = {from, to};
  char ts[2][64];
  for (int i = 0; i < 2; i++) {
    if (!vals[i] || !*vals[i])
      return gw_err_set(err, GW_ERR(INVALID), "%s is required", names[i]);
    /* Postgres parses the timestamp (ISO 8601 and its other input forms); a value without a zone is UTC
     * because gw_pg_connect set the session zone. The value is echoed only when short. */
    const char *p[] = {vals[i]};
    PGresult *r = PQexecParams(conn, "SELECT to_char($1::timestamptz, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')", 1, NULL, p,
                               NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      if (state && strncmp(state, "22", 2) == 0) {
        PQclear(r);
        return gw_err_set(err, GW_ERR(INVALID), "%s '%.40s' is not a timestamp (use ISO 8601, e.g. 2026-11-01T00:00:00Z)",
                          names[i], vals[i]);
      }
      gw_rc rc = result_error(conn, r, "rollup rebuild", err);
      PQclear(r);
      return rc;
    }
    snprintf(ts[i], sizeof ts[i], "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
  }
  if (strcmp(ts[1], ts[0]) <= 0) /* same fixed-width format: text order is time order */
    return gw_err_set(err, GW_ERR(INVALID), "--to %s must be after --from %s", ts[1], ts[0]);
  /* gw_rollup_rebuild deletes the range's rollups and recounts them from the raw rows: where retention has
   * dropped those rows, that would delete rollups meant to outlive them (rollup_retention_days). */
  char days[16], kept[64];
  snprintf(days, sizeof days, "%d", retention_days);
  const char *kp[] = {days};
  PGresult *kr = PQexecParams(conn, "SELECT to_char(date_trunc('day', now() - make_interval(days => $1::int)), "
                                    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')", 1, NULL, kp, NULL, NULL, 0);
  if (PQresultStatus(kr) != PGRES_TUPLES_OK || PQntuples(kr) != 1) {
    gw_rc rc = result_error(conn, kr, "rollup rebuild", err);
    PQclear(kr);
    return rc;
  }
  snprintf(kept, sizeof kept, "%s", PQgetvalue(kr, 0, 0));
  PQclear(kr);
  if (strcmp(ts[1], kept) <= 0)
    return gw_err_set(err, GW_ERR(INVALID),
                      "--to %s: the whole range is older than the raw rows kept (postgres.retention_days %d: from %s "
                      "on); its rollups are all that is left of it and are kept as they are",
                      ts[1], retention_days, kept);
  if (strcmp(ts[0], kept) < 0) {
    snprintf(ts[0], sizeof ts[0], "%s", kept);
    snprintf(kept_from, 32, "%s", kept);
  }
  const char *p[] = {ts[0], ts[1]};
  PGresult *r = PQexecParams(conn, "SELECT gw_rollup_rebuild($1::timestamptz, $2::timestamptz)", 2, NULL, p, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
    gw_rc rc = result_error(conn, r, "rollup rebuild", err);
    PQclear(r);
    return rc;
  }
  *rows = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  PQclear(r);
  return GW_OK;
}

struct gw_maint {
  struct gw_maint_conf conf;
  char *dsn;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop;
  /* the loop's connection, for gw_maint_stop: its cancel key and socket (under mu, with its PQfinish) */
  PGcancel *cancel;
  int sock;
};

/* The loop's connection opened (c) or about to close (NULL, then PQfinish(old) under mu). */
static void maint_conn_set(struct gw_maint *m, PGconn *c, PGconn *old)
{
  pthread_mutex_lock(&m->mu);
  PGcancel *k = m->cancel;
  m->cancel = c ? PQgetCancel(c) : NULL;
  m->sock = c ? PQsocket(c) : -1;
  if (old)
    PQfinish(old);
  pthread_mutex_unlock(&m->mu);
  PQfreeCancel(k);
}

static void *maint_main(void *arg)
{
  struct gw_maint *m = arg;
  PGconn *conn = NULL;
  char last_error[256] = "";
  for (;;) {
    uint64_t wait_ms = m->conf.interval_ms;
    struct gw_err err = {0};
    gw_rc rc = GW_OK;
    if (!conn) {
      char why[200];
      conn = gw_pg_connect(m->dsn, "genai-gateway maintenance", why, sizeof why);
      if (!conn)
        rc = gw_err_set(&err, GW_ERR(DB_CONN), "cannot connect to Postgres: %s", why);
      else
        maint_conn_set(m, conn, NULL);
    }
    if (conn) {
      struct gw_maint_result res;
      rc = gw_maint_run(conn, &m->conf, gw_now_ns(), &res, &err);
      if (rc == GW_OK) {
        last_error[0] = 0;
        char now[48], ret[16];
        fmt_utc(gw_now_ns(), now, sizeof now);
        snprintf(ret, sizeof ret, "%u", m->conf.retention_days);
        const char *params[] = {now, ret};
        PGresult *r = PQexecParams(conn, "SELECT gw_orphan_event_count($1::timestamptz, $2::int)", 2, NULL, params,
                                   NULL, NULL, 0);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
          gw_metric_set(GW_M_EVENTS_ORPHANED, strtoll(PQgetvalue(r, 0, 0), NULL, 10));
        PQclear(r);
        if (res.partitions_created || res.partitions_dropped || res.rollup_rows_deleted || res.rejects_deleted)
          gw_info(MOD, "partitions created=%lld dropped=%lld, rollup rows expired=%lld, rejects expired=%lld",
                  res.partitions_created, res.partitions_dropped, res.rollup_rows_deleted, res.rejects_deleted);
      } else if (rc == GW_ERR(DB_CONN)) {
        maint_conn_set(m, NULL, conn);
        conn = NULL;
      }
    }
    if (rc != GW_OK) {
      if (strcmp(last_error, err.msg) != 0) { /* log each distinct failure once, not every retry */
        gw_warn(MOD, "%s (retrying)", err.msg);
        snprintf(last_error, sizeof last_error, "%s", err.msg);
      }
      if (wait_ms > RETRY_MS)
        wait_ms = RETRY_MS;
    }
    pthread_mutex_lock(&m->mu);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(wait_ms / 1000);
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    while (!m->stop && pthread_cond_timedwait(&m->cv, &m->mu, &until) != ETIMEDOUT) {
    }
    bool stop = m->stop;
    pthread_mutex_unlock(&m->mu);
    if (stop)
      break;
  }
  maint_conn_set(m, NULL, conn);
  return NULL;
}

struct gw_maint *gw_maint_start(const struct gw_maint_conf *mc, struct gw_err *err)
{
  if (!mc->dsn || !*mc->dsn || mc->interval_ms == 0 || mc->retention_days < 1 ||
      mc->rollup_retention_days < mc->retention_days) {
    gw_err_set(err, GW_ERR(CONFIG), "maintenance: needs a dsn, an interval and rollup_retention_days >= retention_days");
    return NULL;
  }
  struct gw_maint *m = calloc(1, sizeof *m);
  if (!m) {
    gw_err_set(err, GW_ERR(NOMEM), "maintenance: out of memory");
    return NULL;
  }
  m->conf = *mc;
  m->sock = -1;
  m->dsn = strdup(mc->dsn);
  m->conf.dsn = m->dsn;
  pthread_mutex_init(&m->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&m->cv, &ca);
  pthread_condattr_destroy(&ca);
  if (!m->dsn || pthread_create(&m->thread, NULL, maint_main, m) != 0) {
    gw_err_set(err, GW_ERR(NOMEM), "maintenance: cannot start its thread");
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    free(m->dsn);
    free(m);
    return NULL;
  }
  pthread_setname_np(m->thread, "gw-maintain");
  return m;
}

/* Join the loop's thread if it ends within ms; false: still running. */
static bool join_within(struct gw_maint *m, unsigned ms)
{
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until); /* pthread_timedjoin_np's clock */
  until.tv_sec += (time_t)(ms / 1000);
  until.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  return pthread_timedjoin_np(m->thread, NULL, &until) == 0;
}

void gw_maint_stop(struct gw_maint *m)
{
  if (!m)
    return;
  pthread_mutex_lock(&m->mu);
  m->stop = true;
  pthread_cond_signal(&m->cv);
  pthread_mutex_unlock(&m->mu);
  if (!join_within(m, STOP_WAIT_MS)) {
    pthread_mutex_lock(&m->mu);
    PGcancel *k = m->cancel;
    m->cancel = NULL;
    pthread_mutex_unlock(&m->mu);
    if (k) {
      char why[256];
      if (!PQcancel(k, why, sizeof why))
        gw_warn(MOD, "stopping: cannot cancel the maintenance run in flight: %s", why);
      PQfreeCancel(k);
    }
    if (!join_within(m, 1000)) {
      gw_warn(MOD, "stopping: the maintenance run did not end; closing its connection");
      pthread_mutex_lock(&m->mu);
      if (m->sock >= 0)
        shutdown(m->sock, SHUT_RDWR);
      pthread_mutex_unlock(&m->mu);
      pthread_join(m->thread, NULL);
    }
  }
  pthread_cond_destroy(&m->cv);
  pthread_mutex_destroy(&m->mu);
  free(m->dsn);
  free(m);
}
