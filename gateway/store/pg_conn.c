/*
 * pg_conn.c: opening a PostgreSQL connection the way every part of the gateway wants it (the writer, the
 * maintenance loop, the command-line tools): a connect timeout, an application_name that shows in
 * pg_stat_activity, TCP keepalives, UTC session time, server notices silenced, and a failure reason that
 * never quotes the DSN (it may hold a password).
 */
#include <stdio.h>
#include <string.h>

#include "store/store.h"

static void quiet_notices(void *arg, const char *msg) {}

void gw_pg_conn_reason(PGconn *c, char *buf, size_t len)
{
  /* libpq's reason follows "failed: " (the socket error or the server's FATAL message); its other messages
   * may quote the connection string, so they are replaced by a generic one. */
  const char *m = c ? PQerrorMessage(c) : NULL;
  const char *p = NULL, *q;
  for (q = m; q && (q = strstr(q, "failed: ")) != NULL; q += 8)
    p = q + 8;
  if (!p) {
    snprintf(buf, len, "%s", c ? "invalid connection string or options" : "out of memory");
    return;
  }
  size_t n = strcspn(p, "\n");
  snprintf(buf, len, "%.*s", (int)n, p);
}

PGconn *gw_pg_connect(const char *dsn, const char *app, char *why, size_t whylen)
{
  /* Defaults first: keywords the DSN itself sets win (expand_dbname processes dbname in order). Then what
   * must hold whatever the DSN or the environment says: client_encoding UTF8, the encoding of every text the
   * gateway sends and of the rollup dimensions it computes (PGCLIENTENCODING=LATIN1 would mangle them). */
  const char *kw[] = {"connect_timeout", "application_name", "keepalives_idle", "dbname", "client_encoding", NULL};
  const char *val[] = {"10", app ? app : "genai-gateway", "30", dsn, "UTF8", NULL};
  PGconn *c = PQconnectdbParams(kw, val, 1);
  if (!c || PQstatus(c) != CONNECTION_OK) {
    gw_pg_conn_reason(c, why, whylen);
    PQfinish(c);
    return NULL;
  }
  PQsetNoticeProcessor(c, quiet_notices, NULL);
  PGresult *r = PQexec(c, "SET TIME ZONE 'UTC'");
  bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  if (!ok) {
    snprintf(why, whylen, "SET TIME ZONE failed: %s", PQstatus(c) == CONNECTION_OK ? "server error" : "connection lost");
    PQfinish(c);
    return NULL;
  }
  return c;
}
