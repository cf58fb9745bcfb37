/*
 * migrate.c: the schema migration runner (DESIGN §6).
 *
 * migrations/NNNN_name.sql files are applied in version order at start, each in its own transaction
 * together with its row in schema_migrations, so a failed migration leaves nothing half-applied.
 * Several gateways starting at once serialize on a transaction advisory lock, taken again by every
 * transaction of the run (a session lock would not survive PgBouncer's transaction pooling, where each
 * transaction may run on another server connection); whoever waits re-reads schema_migrations under
 * the lock and finds the work done. A database that already holds a version newer than every file here belongs to a newer gateway:
 * that is an error, because this binary would write rows the newer schema may not accept.
 * Files are read whole (capped) and sent as one simple query, so a migration may hold many statements
 * but must not contain its own BEGIN/COMMIT.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/store.h"

/* "gw-migr" as a number: the advisory lock key every gateway uses for migrations. */
#define MIGRATE_LOCK_KEY "7456343051642738"
#define MIGRATION_MAX_BYTES (16u << 20)
#define MIGRATIONS_MAX 10000

struct migration {
  int version;
  char name[128];
  char file[256];
};

static int by_version(const void *a, const void *b)
{
  const struct migration *x = a, *y = b;
  return (x->version > y->version) - (x->version < y->version);
}

/* NNNN_name.sql with name in [A-Za-z0-9_-]; fills version and name. */
static bool parse_name(const char *f, struct migration *m)
{
  size_t len = strlen(f);
  if (len < 10 || len >= sizeof m->file || strcmp(f + len - 4, ".sql") != 0)
    return false;
  for (int i = 0; i < 4; i++)
    if (!isdigit((unsigned char)f[i]))
      return false;
  if (f[4] != '_')
    return false;
  size_t nlen = len - 9;
  if (nlen == 0 || nlen >= sizeof m->name)
    return false;
  for (size_t i = 5; i < len - 4; i++)
    if (!isalnum((unsigned char)f[i]) && f[i] != '_' && f[i] != '-')
      return false;
  m->version = (f[0] - '0') * 1000 + (f[1] - '0') * 100 + (f[2] - '0') * 10 + (f[3] - '0');
  memcpy(m->name, f + 5, nlen);
  m->name[nlen] = 0;
  memcpy(m->file, f, len + 1);
  return true;
}

/* The migration files of dir, sorted; *out is malloc'd (NULL when there are none). */
static gw_rc list_dir(const char *dir, struct migration **out, size_t *n, struct gw_err *err)
{
  *out = NULL;
  *n = 0;
  gw_rc rc = GW_ERR(IO);
  struct migration *v = NULL;
  size_t cnt = 0, cap = 0;
  DIR *d = opendir(dir);
  if (!d)
    return gw_err_set(err, rc, "migrations: cannot open %s: %s", dir, strerror(errno));
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    struct migration m;
    if (de->d_name[0] == '.' || strlen(de->d_name) < 4 || strcmp(de->d_name + strlen(de->d_name) - 4, ".sql") != 0)
      continue;
    if (!parse_name(de->d_name, &m)) {
      rc = gw_err_set(err, GW_ERR(CONFIG), "migrations: %s/%s: name must be NNNN_name.sql", dir, de->d_name);
      goto out_free;
    }
    if (cnt == MIGRATIONS_MAX) {
      rc = gw_err_set(err, GW_ERR(CONFIG), "migrations: more than %d files in %s", MIGRATIONS_MAX, dir);
      goto out_free;
    }
    if (cnt == cap) {
      cap = cap ? cap * 2 : 16;
      v = gw_realloc(v, cap * sizeof *v);
    }
    v[cnt++] = m;
  }
  qsort(v, cnt, sizeof *v, by_version);
  for (size_t i = 1; i < cnt; i++)
    if (v[i].version == v[i - 1].version) {
      rc = gw_err_set(err, GW_ERR(CONFIG), "migrations: %s and %s have the same version", v[i - 1].file, v[i].file);
      goto out_free;
    }
  *out = v;
  *n = cnt;
  v = NULL;
  rc = GW_OK;
out_free:
  free(v);
  closedir(d);
  return rc;
}

static char *read_file(const char *dir, const char *file, struct gw_err *err)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  FILE *f = fopen(path, "rb");
  if (!f) {
    gw_err_set(err, GW_ERR(IO), "migrations: cannot open %s: %s", path, strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || st.st_size < 0 || (uint64_t)st.st_size > MIGRATION_MAX_BYTES) {
    gw_err_set(err, GW_ERR(IO), "migrations: %s: not a readable file of at most 16 MiB", path);
    fclose(f);
    return NULL;
  }
  size_t want = (size_t)st.st_size;
  char *buf = gw_malloc(want + 1);
  size_t len = fread(buf, 1, want, f);
  bool bad = ferror(f) != 0 || len != want;
  fclose(f);
  if (bad) {
    gw_err_set(err, GW_ERR(IO), "migrations: %s: read error", path);
    free(buf);
    return NULL;
  }
  buf[len] = 0;
  return buf;
}

/* Run one command; on failure fill err with the SQLSTATE and primary message. */
static gw_rc exec_ok(PGconn *c, const char *sql, const char *what, struct gw_err *err)
{
  PGresult *r = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  gw_rc rc = GW_OK;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    rc = gw_err_set(err, PQstatus(c) == CONNECTION_OK ? GW_ERR(CONFIG) : GW_ERR(DB_CONN), "migrations: %s: %s %s",
                    what, state ? state : "(no sqlstate)", msg ? msg : "connection lost");
  }
  PQclear(r);
  return rc;
}

static int max_applied(PGconn *c, struct gw_err *err, gw_rc *rc)
{
  PGresult *r = PQexec(c, "SELECT coalesce(max(version), 0) FROM schema_migrations");
  int v = -1;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
    v = atoi(PQgetvalue(r, 0, 0));
    *rc = GW_OK;
  } else {
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    *rc = gw_err_set(err, PQstatus(c) == CONNECTION_OK ? GW_ERR(CONFIG) : GW_ERR(DB_CONN),
                     "migrations: reading schema_migrations: %s", msg ? msg : "connection lost");
  }
  PQclear(r);
  return v;
}

static bool applied(PGconn *c, int version, struct gw_err *err, gw_rc *rc)
{
  char v[16];
  snprintf(v, sizeof v, "%d", version);
  const char *params[1] = {v};
  PGresult *r = PQexecParams(c, "SELECT 1 FROM schema_migrations WHERE version = $1::int", 1, NULL, params, NULL,
                             NULL, 0);
  bool yes = false;
  if (PQresultStatus(r) == PGRES_TUPLES_OK) {
    yes = PQntuples(r) > 0;
    *rc = GW_OK;
  } else {
    *rc = gw_err_set(err, PQstatus(c) == CONNECTION_OK ? GW_ERR(CONFIG) : GW_ERR(DB_CONN),
                     "migrations: reading schema_migrations failed");
  }
  PQclear(r);
  return yes;
}

#define BEGIN_LOCKED "BEGIN; SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ")"

/* Apply m unless another gateway did while we waited for the lock. */
static gw_rc apply_one(PGconn *c, const char *dir, const struct migration *m, struct gw_err *err)
{
  gw_rc rc;
  char *sql = read_file(dir, m->file, err);
  if (!sql)
    return GW_ERR(IO);
  if ((rc = exec_ok(c, BEGIN_LOCKED, "BEGIN", err)) != GW_OK)
    goto out_rollback;
  bool done = applied(c, m->version, err, &rc);
  if (rc != GW_OK)
    goto out_rollback;
  if (done) {
    rc = exec_ok(c, "COMMIT", "COMMIT", err);
    goto out_free;
  }
  if ((rc = exec_ok(c, sql, m->file, err)) != GW_OK)
    goto out_rollback;
  char v[16];
  snprintf(v, sizeof v, "%d", m->version);
  const char *params[2] = {v, m->name};
  PGresult *r = PQexecParams(c, "INSERT INTO schema_migrations (version, name) VALUES ($1::int, $2)", 2, NULL,
                             params, NULL, NULL, 0);
  bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  if (!ok) {
    rc = gw_err_set(err, PQstatus(c) == CONNECTION_OK ? GW_ERR(CONFIG) : GW_ERR(DB_CONN),
                    "migrations: recording %s failed", m->file);
    goto out_rollback;
  }
  rc = exec_ok(c, "COMMIT", "COMMIT", err);
  goto out_free;
out_rollback:
  PQclear(PQexec(c, "ROLLBACK"));
out_free:
  free(sql);
  return rc;
}

gw_rc gw_store_migrate(PGconn *conn, const char *dir, struct gw_err *err)
{
  struct migration *files = NULL;
  size_t nfiles = 0;
  gw_rc rc;
  if (!conn || PQstatus(conn) != CONNECTION_OK)
    return gw_err_set(err, GW_ERR(DB_CONN), "migrations: not connected");
  if ((rc = list_dir(dir, &files, &nfiles, err)) != GW_OK)
    return rc;
  if ((rc = exec_ok(conn, BEGIN_LOCKED, "advisory lock", err)) != GW_OK)
    goto out_unlock;
  /* Created only when missing (we hold the lock): IF NOT EXISTS would send a NOTICE on every start. */
  PGresult *r = PQexec(conn, "SELECT to_regclass('schema_migrations') IS NULL");
  bool missing = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
  PQclear(r);
  if (missing && (rc = exec_ok(conn,
                               "CREATE TABLE schema_migrations (version int PRIMARY KEY, name text NOT NULL, "
                               "applied_at timestamptz NOT NULL DEFAULT now())",
                               "creating schema_migrations", err)) != GW_OK)
    goto out_unlock;
  int newest = nfiles ? files[nfiles - 1].version : 0;
  int have = max_applied(conn, err, &rc);
  if (rc != GW_OK)
    goto out_unlock;
  if (have > newest) {
    rc = gw_err_set(err, GW_ERR(CONFIG), "database schema version %d is newer than this gateway knows (%d)", have,
                    newest);
    goto out_unlock;
  }
  if ((rc = exec_ok(conn, "COMMIT", "COMMIT", err)) != GW_OK)
    goto out_unlock;
  for (size_t i = 0; i < nfiles; i++) {
    bool done = applied(conn, files[i].version, err, &rc);
    if (rc != GW_OK)
      goto out_free;
    if (done)
      continue;
    if ((rc = apply_one(conn, dir, &files[i], err)) != GW_OK)
      goto out_free;
  }
  rc = GW_OK;
  goto out_free;
out_unlock: /* the transaction lock goes with the transaction */
  PQclear(PQexec(conn, "ROLLBACK"));
out_free:
  free(files);
  return rc;
}
