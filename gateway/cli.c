/*
 * cli.c: the gateway's one-shot database commands, for operators and cron jobs:
 *   genai-gateway rollup --rebuild --from TS --to TS [--config FILE]
 *       recompute trace_metrics_hourly for the whole UTC hours overlapping [from, to) from the raw rows
 *       (after a manual fix of raw rows, or to rebuild rollups lost with a restore);
 *   genai-gateway maintain [--now TS] [--config FILE]
 *       one partition/retention pass (what the gateway's loop does every postgres.maintenance_interval),
 *       at the real time or at --now.
 * The database comes from the same configuration as the daemon (postgres.dsn or DATABASE_URL), and the
 * migrations are applied first when postgres.migrate is on, so the commands work on a fresh database.
 * Exit codes: 0 done, 1 database or configuration error, 2 bad usage. Output: one summary line on stdout.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/conf.h"
#include "store/store.h"

static int usage(const char *msg)
{
  if (msg)
    fprintf(stderr, "genai-gateway: %s\n", msg);
  fprintf(stderr, "usage: genai-gateway rollup --rebuild --from TS --to TS [--config FILE]\n"
                  "       genai-gateway maintain [--now TS] [--config FILE]\n"
                  "  TS is an ISO 8601 timestamp (2026-11-01T00:00:00Z); without a zone it is UTC.\n");
  return 2;
}

/* Config, connection and migrations shared by the commands. NULL after printing why. */
static PGconn *open_db(const char *config, struct gw_conf **confp)
{
  struct gw_err err = {0};
  if (gw_conf_load(config, confp, &err) != GW_OK) {
    fprintf(stderr, "genai-gateway: configuration error: %s\n", err.msg);
    return NULL;
  }
  struct gw_conf *conf = *confp;
  if (!conf->postgres.dsn || !*conf->postgres.dsn) {
    fprintf(stderr, "genai-gateway: no database: set DATABASE_URL or postgres.dsn\n");
    return NULL;
  }
  char why[200];
  PGconn *c = gw_pg_connect(conf->postgres.dsn, "genai-gateway cli", why, sizeof why);
  if (!c) {
    fprintf(stderr, "genai-gateway: cannot connect to Postgres: %s\n", why);
    return NULL;
  }
  if (conf->postgres.migrate && gw_store_migrate(c, conf->postgres.migrations_dir, &err) != GW_OK) {
    fprintf(stderr, "genai-gateway: %s\n", err.msg);
    PQfinish(c);
    return NULL;
  }
  return c;
}

/* now as ns since the epoch, parsed by Postgres like the other timestamps. */
static gw_rc parse_now(PGconn *c, const char *ts, uint64_t *ns, struct gw_err *err)
{
  const char *p[] = {ts};
  PGresult *r = PQexecParams(c, "SELECT (extract(epoch FROM $1::timestamptz) * 1000000)::bigint", 1, NULL, p, NULL,
                             NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    bool bad_value = state && strncmp(state, "22", 2) == 0; /* data exception: the value, not the database */
    PQclear(r);
    if (bad_value)
      return gw_err_set(err, GW_ERR(INVALID), "--now '%.40s' is not a timestamp (use ISO 8601, e.g. 2026-11-01T00:00:00Z)",
                        ts);
    /* exit 1 (the database), not 2 (usage): the connection went, or the server failed the query */
    return gw_err_set(err, PQstatus(c) == CONNECTION_OK ? GW_ERR(DB_DATA) : GW_ERR(DB_CONN),
                      "cannot read --now in Postgres: %s", PQstatus(c) == CONNECTION_OK ? "the query failed" : "connection lost");
  }
  long long us = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  PQclear(r);
  if (us < 0)
    return gw_err_set(err, GW_ERR(INVALID), "--now must be after 1970");
  if ((uint64_t)us > UINT64_MAX / 1000u) /* past 2554-07-21: ns since the epoch no longer fit in 64 bits */
    return gw_err_set(err, GW_ERR(INVALID), "--now must be before 2554-07-21");
  *ns = (uint64_t)us * 1000u;
  return GW_OK;
}

int gw_cli_main(int argc, char **argv)
{
  const char *cmd = argv[1], *config = NULL, *from = NULL, *to = NULL, *now = NULL;
  bool rebuild = false;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    const char **dst = strcmp(a, "--config") == 0 ? &config
                       : strcmp(a, "--from") == 0 ? &from
                       : strcmp(a, "--to") == 0   ? &to
                       : strcmp(a, "--now") == 0  ? &now
                                                  : NULL;
    if (dst) {
      if (i + 1 >= argc) {
        char m[64];
        snprintf(m, sizeof m, "%s needs a value", a);
        return usage(m);
      }
      *dst = argv[++i];
    } else if (strcmp(a, "--rebuild") == 0) {
      rebuild = true;
    } else {
      char m[96];
      snprintf(m, sizeof m, "%s: unknown argument '%.40s'", cmd, a);
      return usage(m);
    }
  }
  bool is_rollup = strcmp(cmd, "rollup") == 0;
  if (is_rollup && (!rebuild || now))
    return usage(rebuild ? "rollup: --now is for maintain" : "rollup: say --rebuild");
  if (is_rollup && (!from || !to))
    return usage("rollup --rebuild: --from and --to are required");
  if (!is_rollup && (rebuild || from || to))
    return usage("maintain: takes only --now and --config");

  struct gw_conf *conf = NULL;
  PGconn *c = open_db(config, &conf);
  int rc = 1;
  struct gw_err err = {0};
  if (!c)
    goto out;
  if (is_rollup) {
    long long rows = 0;
    char kept[32];
    if (gw_rollup_rebuild(c, from, to, conf->postgres.retention_days, kept, &rows, &err) != GW_OK)
      goto fail;
    if (kept[0])
      printf("rollups before %s are older than the raw rows kept (postgres.retention_days %d) and are left as "
             "they are\n", kept, conf->postgres.retention_days);
    printf("rollups rebuilt from %s to %s: %lld rollup rows written\n", kept[0] ? kept : from, to, rows);
  } else {
    uint64_t ns = gw_now_ns();
    if (now && parse_now(c, now, &ns, &err) != GW_OK)
      goto fail;
    struct gw_maint_conf mc = {conf->postgres.dsn, conf->postgres.retention_days, conf->postgres.rollup_retention_days,
                               conf->postgres.partitions_ahead_days, conf->postgres.maintenance_interval_ms};
    struct gw_maint_result res;
    if (gw_maint_run(c, &mc, ns, &res, &err) != GW_OK)
      goto fail;
    if (!res.ran)
      printf("maintenance skipped: another session is running it\n");
    else
      printf("maintenance done: partitions created=%lld dropped=%lld, rollup rows expired=%lld, rejects expired=%lld\n",
             res.partitions_created, res.partitions_dropped, res.rollup_rows_deleted, res.rejects_deleted);
  }
  rc = 0;
  goto out;
fail:
  fprintf(stderr, "genai-gateway: %s\n", err.msg);
  rc = err.rc == GW_ERR(INVALID) ? 2 : 1;
out:
  PQfinish(c);
  gw_conf_destroy(conf);
  return rc;
}
