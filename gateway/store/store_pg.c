/*
 * store_pg.c: the Postgres writer, the first spool consumer (DESIGN §1, §6), declared as a sink.
 *
 * One thread (sink.c's) owns one PGconn (per writer, see the end of this comment), opened lazily and re-opened after it breaks, so the gateway
 * starts and keeps accepting while Postgres is away: send answers RETRY and sink.c backs off.
 * A batch of spool entries becomes one transaction, first by the direct path:
 *   COPY (text format, rendered generically from gw_record_fields) straight into ai_interaction_traces
 *   -> upsert the hourly rollups (trace_metrics_hourly_agents; trace_metrics_hourly is its view by the
 *   five keys) of the batch's rows (all new: the COPY went through), aggregated per group in C and sent as the groups only -> fill session_id/user_id across each trace of the new rows (DESIGN §3) -> merge stored
 *   GenAI events into them -> COMMIT -> in autocommit, for every row of the batch: the events' merge and
 *   the session/user fill again, agent/workflow inheritance and trace summaries (fill_after_commit,
 *   migrations/0006 and 0007); a failure there is logged and run again (after_commit, pay_owed).
 * COPY cannot skip a row already stored: one re-sent span fails it with a unique violation (23505), and
 * only then is the batch, in a new transaction, stored by the staging path:
 *   COPY into a temp staging table -> INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING (the new
 *   rows; a re-sent span is a conflict, so storage is exactly-once in effect), in the same statement
 *   upserting the rollups from exactly those new rows -> the same fill and merge -> COMMIT.
 * Replays are rare (a crash before the spool learnt of a commit, a client re-sending), so most batches
 * pass through Postgres once instead of twice. A rolled-back batch (a bad row, a lost connection) leaves
 * no rollup counted; the split halves each count their own new rows.
 * The staging table is made, when missing, by the transaction's first statement, not once per connection:
 * through PgBouncer in transaction pooling each transaction may run on another server connection, and
 * only what a transaction does itself is sure to be there. It is emptied at commit and kept by the
 * server connection, so the check is all a batch pays on a direct connection. Its name carries a hash
 * of the column list, so gateways of two versions sharing a pool never COPY into each other's shape.
 * Nothing else the writer relies on outlives a transaction (the session time zone is a parameter
 * PgBouncer tracks and sets again per client).
 * Daily partitions for every UTC day of the batch are created first, each in a transaction of its own,
 * through gw_ensure_partition: CREATE TABLE ... PARTITION OF locks the parent exclusively, and holding that
 * lock for a whole data transaction would stall every reader and other writer; its wait for the lock is
 * bounded too (ensure_partition).
 * Before anything is sent, each row is checked against its columns (see "what no column can hold"): a
 * row with a value no column can hold goes to ai_interaction_rejects at once, the rest of the batch on.
 * Errors are sorted by SQLSTATE. Connection failures (class 08, 57P01-57P03, or a dead socket) and a
 * server that takes no writes (25006: a standby, after a failover) reset the connection and answer RETRY. Data errors (classes 22, 23, 54) split the batch in halves, each in its own
 * transaction, down to single rows; a single bad row goes to ai_interaction_rejects as jsonb with its
 * error, so nothing is retried forever. Anything else (lock timeouts, serialization failures, a missing
 * table) is the database's state, not the row's: RETRY, never reject.
 * A connection lost on the COMMIT loses its answer, not always the commit: the transaction's fate is asked
 * on a new connection (commit_txn, txid_status), and a committed batch is done, not written again.
 * Error texts and logs carry SQLSTATEs, constraint names and counts, never the DSN or row content.
 * With postgres.writers > 1 there is one store per connection, each on a worker thread of its own
 * (gw_sink_start_n), writing disjoint batches. Their COPYs run at once; from the rollup upsert (or the
 * staging insert, or the events' merge) to the commit a writer holds the gateway's writers lock
 * (gw_store_conf.writers), and the fills after commit take it too, so what reads other rows (the
 * fill of session/user across a trace, the merge, the attribution that moves rollups) runs one writer at
 * a time and sees what the others committed, as with one writer; and the rollups, upserted in key order
 * under that lock, never deadlock between writers. A span in two batches written at once makes the second
 * COPY wait for the first transaction and then fail with 23505 (the staging path skips it), or deadlock
 * with it (40P01: RETRY, then the staging path).
 */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "core/log.h"
#include "core/metrics.h"
#include "normalize/record.h"
#include "store/store.h"

#define MOD "postgres"
#define TRACES_TABLE "ai_interaction_traces"
#define STAGING_PREFIX "gw_staging_traces_"
#define EVENTS_TABLE "ai_interaction_events"
#define DAY_NS (86400ull * 1000000000ull)
#define DAYS_CACHED 128
#define COPY_CHUNK (256u << 10)
#define ARENA_KEEP (32u << 20) /* a batch's decoded records: kept faulted in for the next batch */
#define IDLE_CHECK_NS (5ull * 1000000000ull)
/* The session/user fill looks this far around the batch's span start times for a trace's other rows,
 * which bounds the scan to a few daily partitions. */
#define FILL_WINDOW_NS DAY_NS

struct store {
  char *dsn, *migrations_dir;
  uint32_t retention_days;
  char *columns; /* "trace_id, span_id, ..." in gw_record_fields order */
  char staging[40];   /* gw_staging_traces_<hash of columns> */
  char *begin_sql;    /* BEGIN, make the staging table when this server connection lacks it, the transaction id */
  char *begin_plain;  /* BEGIN (and the statement timeout) */
  char *begin_xid;    /* the same, then the transaction's id (begin_store) */
  char *copy_sql, *insert_sql;
  char *direct_copy_sql; /* COPY straight into the table */
  char *rollup_sql;      /* the rollup upsert fed from the batch's groups, aggregated here */
  bool replaying; /* the last batch held re-sent spans: the next one tries the staging path first */
  char *lock_sql; /* several writers: take their transaction lock (gw_store_conf.writers); NULL: one */
  bool counted;   /* counted in GW_M_PG_CONNECTED */
  char xid[24];   /* the id of the storing transaction open (begin_store), "" when unknown */
  PGconn *conn;
  /* Stopping (gw_sink_type.stopping): a watcher thread that, at the drain deadline, asks the server to
   * cancel the writer's statement (cancel: a copy of the connection's cancel key, taken by whoever uses it
   * first) and, a moment later, shuts the connection's socket down so that a writer blocked on a server
   * that does not answer returns too. sock and the PQfinish that closes it are under stop_mu, so the
   * watcher never shuts down a descriptor number reused by something else. */
  pthread_mutex_t stop_mu;
  pthread_cond_t stop_cv;
  PGcancel *cancel;
  int sock;
  bool watching, destroying;
  uint64_t stop_deadline;
  pthread_t watcher;
  bool migrated;
  uint64_t last_attempt_mono; /* the last connection attempt */
  uint64_t last_used_mono;    /* the last time the connection was seen working */
  int64_t days[DAYS_CACHED]; /* UTC days (since the epoch) whose partition exists */
  size_t ndays, days_next;
  struct gw_arena *arena; /* per batch */
  struct gw_sb copy_buf;  /* COPY text being sent, in the batch arena */
  /* The work after commit that failed (after_commit), owed to these spans: run again (pay_owed) before
   * the next batch and when idle, until it passes. */
  struct owed_span *owed;
  size_t nowed, owed_cap;
  uint64_t owed_tmin, owed_tmax;
  uint64_t owed_next_mono; /* no try before then (a backoff after a failed one) */
  uint64_t batch_seq;      /* the first spool entry of the batch being written, 0 between batches */
  uint64_t owed_seq;       /* the first spool entry of the oldest batch owed to, 0: none held */
  uint64_t owed_since_mono;
  bool stop_tried;         /* stopping: the one last try to pay is made */
};

/* A span whose runs after commit are owed: the merge of its events and the fills of its trace. */
struct owed_span {
  char tid[33], sid[17];
};
#define OWED_MAX 16384               /* spans; past it the oldest are given up (logged) */
#define OWED_RETRY_NS (5ull * 1000000000ull)
#define OWED_HOLD_NS (60ull * 1000000000ull) /* the spool keeps a batch owed to this long at most */

/* One record of the batch; its COPY line is rendered when a transaction sends it. */
struct row {
  const struct gw_record *rec;
};

struct batch {
  struct row *rows;
  size_t n;
  uint64_t stored, duplicate, rejected;
};

/* The trace facts of a batch's entries (record.h, migrations/0012_trace_ids.sql). */
struct fact_batch {
  const struct gw_trace_fact **v;
  size_t n;
};

enum wr { WR_OK, WR_CONN, WR_DATA, WR_OTHER };

/* --- rendering ------------------------------------------------------------------------------------ */

/* Length of the leading run of s holding no backslash, tab, newline or carriage return; 16 bytes at a
 * time with SSE2 (JSON columns hold a backslash every few bytes, long texts none for hundreds). */
static size_t copy_plain(const char *s, size_t n)
{
  size_t i = 0;
#ifdef __SSE2__
  const __m128i bs = _mm_set1_epi8('\\'), tab = _mm_set1_epi8('\t'), nl = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r');
  for (; i + 16 <= n; i += 16) {
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
    __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, bs), _mm_cmpeq_epi8(x, tab)),
                             _mm_or_si128(_mm_cmpeq_epi8(x, nl), _mm_cmpeq_epi8(x, cr)));
    unsigned mask = (unsigned)_mm_movemask_epi8(m);
    if (mask)
      return i + (size_t)__builtin_ctz(mask);
  }
#endif
  while (i < n && s[i] != '\\' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
    i++;
  return i;
}

/* COPY text format: backslash, tab, newline and carriage return are escaped; everything else is literal. */
static void copy_str(struct gw_sb *sb, const char *s, size_t n)
{
  size_t i = 0;
  for (;;) {
    size_t run = copy_plain(s + i, n - i);
    gw_sb_putn(sb, s + i, run);
    i += run;
    if (i == n)
      return;
    char e[2] = {'\\', s[i] == '\\' ? '\\' : s[i] == '\t' ? 't' : s[i] == '\n' ? 'n' : 'r'};
    gw_sb_putn(sb, e, 2);
    i++;
  }
}

/* A text[] literal {"a","b"} (elements quoted, " and \ backslash-escaped), itself COPY-escaped. */
static void copy_array(struct gw_sb *sb, const char *const *v, size_t n)
{
  gw_sb_putc(sb, '{');
  for (size_t i = 0; i < n; i++) {
    if (i)
      gw_sb_putc(sb, ',');
    if (!v[i]) {
      gw_sb_puts(sb, "NULL");
      continue;
    }
    gw_sb_putc(sb, '"');
    for (const char *p = v[i]; *p; p++) {
      if (*p == '"' || *p == '\\')
        gw_sb_puts(sb, "\\\\"); /* the array escape, doubled by COPY */
      copy_str(sb, p, 1);
    }
    gw_sb_putc(sb, '"');
  }
  gw_sb_putc(sb, '}');
}

/* ns since the epoch as ISO-8601 UTC with microseconds (Postgres keeps microseconds; truncated). */
static void put_time(struct gw_sb *sb, uint64_t ns)
{
  time_t secs = (time_t)(ns / 1000000000ull);
  unsigned us = (unsigned)(ns % 1000000000ull / 1000u);
  struct tm tm;
  gmtime_r(&secs, &tm);
  gw_sb_printf(sb, "%04d-%02d-%02d %02d:%02d:%02d.%06u+00", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
               tm.tm_min, tm.tm_sec, us);
}

/* nano-USD as an exact decimal with 9 places. */
static void put_nusd(struct gw_sb *sb, int64_t v)
{
  uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  gw_sb_printf(sb, "%s%llu.%09llu", v < 0 ? "-" : "", (unsigned long long)(mag / 1000000000ull),
               (unsigned long long)(mag % 1000000000ull));
}

static void put_f64(struct gw_sb *sb, double d, bool json)
{
  if (isnan(d))
    gw_sb_puts(sb, json ? "\"NaN\"" : "NaN");
  else if (isinf(d))
    gw_sb_puts(sb, d > 0 ? (json ? "\"Infinity\"" : "Infinity") : (json ? "\"-Infinity\"" : "-Infinity"));
  else
    gw_sb_printf(sb, "%.17g", d);
}

/* The names of the set flag bits. */
static size_t flag_names(uint32_t bits, const char *names[GW_FLAG__COUNT])
{
  size_t n = 0;
  for (int f = 0; f < GW_FLAG__COUNT; f++)
    if (bits >> f & 1u)
      names[n++] = gw_flag_name((enum gw_flag)f);
  return n;
}

static void copy_field(struct gw_sb *sb, const struct gw_record *r, const struct gw_field *fd)
{
  const void *p = (const char *)r + fd->offset;
  switch (fd->type) {
  case GW_FT_CHARS: {
    const char *s = p;
    if (!*s)
      gw_sb_puts(sb, "\\N");
    else
      copy_str(sb, s, strnlen(s, fd->size));
    break;
  }
  case GW_FT_TEXT:
  case GW_FT_JSON: {
    const char *s = *(const char *const *)p;
    if (!s)
      gw_sb_puts(sb, "\\N");
    else
      copy_str(sb, s, strlen(s));
    break;
  }
  case GW_FT_I64: {
    const struct gw_opt_i64 *v = p;
    if (v->set)
      gw_sb_printf(sb, "%lld", (long long)v->v);
    else
      gw_sb_puts(sb, "\\N");
    break;
  }
  case GW_FT_NUSD: {
    const struct gw_opt_i64 *v = p;
    if (v->set)
      put_nusd(sb, v->v);
    else
      gw_sb_puts(sb, "\\N");
    break;
  }
  case GW_FT_F64: {
    const struct gw_opt_f64 *v = p;
    if (v->set)
      put_f64(sb, v->v, false);
    else
      gw_sb_puts(sb, "\\N");
    break;
  }
  case GW_FT_TIME: {
    uint64_t ns = *(const uint64_t *)p;
    if (ns)
      put_time(sb, ns);
    else
      gw_sb_puts(sb, "\\N");
    break;
  }
  case GW_FT_BOOL: {
    gw_tribool b = *(const gw_tribool *)p;
    gw_sb_puts(sb, b < 0 ? "\\N" : b ? "t" : "f");
    break;
  }
  case GW_FT_STRV: {
    const struct gw_strv *v = p;
    /* No values is unknown: NULL, never an invented empty list. */
    if (v->n == 0)
      gw_sb_puts(sb, "\\N");
    else
      copy_array(sb, v->v, v->n);
    break;
  }
  case GW_FT_FLAGS: {
    /* Flags are always known: no flag is the empty array. */
    const char *names[GW_FLAG__COUNT];
    size_t n = flag_names(*(const uint32_t *)p, names);
    copy_array(sb, names, n);
    break;
  }
  }
}

static void copy_row(struct gw_sb *sb, const struct gw_record *r)
{
  for (size_t f = 0; f < gw_record_nfields; f++) {
    if (f)
      gw_sb_putc(sb, '\t');
    copy_field(sb, r, &gw_record_fields[f]);
  }
  gw_sb_putc(sb, '\n');
}

static void json_strv(struct gw_sb *sb, const char *const *v, size_t n)
{
  gw_sb_putc(sb, '[');
  for (size_t i = 0; i < n; i++) {
    if (i)
      gw_sb_putc(sb, ',');
    if (v[i])
      gw_sb_json_str(sb, v[i], strlen(v[i]));
    else
      gw_sb_puts(sb, "null");
  }
  gw_sb_putc(sb, ']');
}

/* One field of r as a JSON value (what jsonb_populate_record reads back into its column). */
static void json_field(struct gw_sb *sb, const struct gw_record *r, const struct gw_field *fd)
{
  const void *p = (const char *)r + fd->offset;
  switch (fd->type) {
  case GW_FT_CHARS: {
    const char *s = p;
    if (*s)
      gw_sb_json_str(sb, s, strnlen(s, fd->size));
    else
      gw_sb_puts(sb, "null");
    break;
  }
  case GW_FT_TEXT:
  case GW_FT_JSON: {
    const char *s = *(const char *const *)p;
    if (s)
      gw_sb_json_str(sb, s, strlen(s));
    else
      gw_sb_puts(sb, "null");
    break;
  }
  case GW_FT_I64:
  case GW_FT_NUSD: {
    const struct gw_opt_i64 *v = p;
    if (!v->set)
      gw_sb_puts(sb, "null");
    else if (fd->type == GW_FT_NUSD)
      put_nusd(sb, v->v);
    else
      gw_sb_printf(sb, "%lld", (long long)v->v);
    break;
  }
  case GW_FT_F64: {
    const struct gw_opt_f64 *v = p;
    if (v->set)
      put_f64(sb, v->v, true);
    else
      gw_sb_puts(sb, "null");
    break;
  }
  case GW_FT_TIME: {
    uint64_t ns = *(const uint64_t *)p;
    if (ns) {
      gw_sb_putc(sb, '"');
      put_time(sb, ns);
      gw_sb_putc(sb, '"');
    } else {
      gw_sb_puts(sb, "null");
    }
    break;
  }
  case GW_FT_BOOL: {
    gw_tribool b = *(const gw_tribool *)p;
    gw_sb_puts(sb, b < 0 ? "null" : b ? "true" : "false");
    break;
  }
  case GW_FT_STRV: {
    const struct gw_strv *v = p;
    json_strv(sb, v->v, v->n);
    break;
  }
  case GW_FT_FLAGS: {
    const char *names[GW_FLAG__COUNT];
    size_t n = flag_names(*(const uint32_t *)p, names);
    json_strv(sb, names, n);
    break;
  }
  }
}

/* The record as a JSON object keyed by column, for ai_interaction_rejects. JSON columns are kept as
 * strings: the text may be what Postgres refused. */
static char *record_json(struct gw_arena *a, const struct gw_record *r)
{
  struct gw_sb sb;
  gw_sb_init(&sb, a);
  gw_sb_putc(&sb, '{');
  for (size_t f = 0; f < gw_record_nfields; f++) {
    const struct gw_field *fd = &gw_record_fields[f];
    if (f)
      gw_sb_putc(&sb, ',');
    gw_sb_json_str(&sb, fd->column, strlen(fd->column));
    gw_sb_putc(&sb, ':');
    json_field(&sb, r, fd);
  }
  gw_sb_putc(&sb, '}');
  return gw_sb_finish(&sb);
}

/* --- connection and errors ------------------------------------------------------------------------ */

static void set_error(struct gw_sink_outcome *out, const char *fmt, const char *detail)
{
  if (out)
    snprintf(out->error, sizeof out->error, fmt, detail);
}

static void close_conn(struct store *s)
{
  pthread_mutex_lock(&s->stop_mu);
  PGcancel *c = s->cancel;
  s->cancel = NULL;
  s->sock = -1;
  PQfinish(s->conn);
  pthread_mutex_unlock(&s->stop_mu);
  PQfreeCancel(c);
  s->conn = NULL;
  s->ndays = s->days_next = 0;
  if (s->counted)
    gw_metric_add(GW_M_PG_CONNECTED, -1);
  s->counted = false;
}

/* Sort a failed result: connection gone, the row's data, or something else the database must fix. */
static enum wr classify(PGconn *c, const PGresult *r, char *msg, size_t msglen)
{
  const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  if (msg)
    snprintf(msg, msglen, "%s: %s", state ? state : "connection", primary ? primary : "connection lost");
  if (PQstatus(c) != CONNECTION_OK || !state)
    return WR_CONN;
  /* 25006 (read_only_sql_transaction): the connection reached a server that takes no writes, a standby
   * after a failover or a primary set read-only. That connection stays so (a standby stays one, a
   * session reads its default_transaction_read_only once, at its start): only a new connection can find
   * the writable server (DNS moved, target_session_attrs), so it is dropped, as a lost one is. */
  if (strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 || strcmp(state, "57P02") == 0 ||
      strcmp(state, "57P03") == 0 || strcmp(state, "25006") == 0)
    return WR_CONN;
  if (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0 || strncmp(state, "54", 2) == 0)
    return WR_DATA;
  return WR_OTHER;
}

/* Run a command expecting COMMAND_OK or TUPLES_OK; on failure classify it (and fill msg). */
static enum wr run(struct store *s, const char *sql, int nparams, const char *const *params, PGresult **res,
                   char *msg, size_t msglen)
{
  PGresult *r = nparams ? PQexecParams(s->conn, sql, nparams, NULL, params, NULL, NULL, 0) : PQexec(s->conn, sql);
  ExecStatusType st = PQresultStatus(r);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    if (res)
      *res = r;
    else
      PQclear(r);
    return WR_OK;
  }
  enum wr w = classify(s->conn, r, msg, msglen);
  PQclear(r);
  return w;
}

static void rollback(struct store *s)
{
  if (s->conn && PQstatus(s->conn) == CONNECTION_OK && PQtransactionStatus(s->conn) != PQTRANS_IDLE)
    PQclear(PQexec(s->conn, "ROLLBACK"));
}

/* Several writers: wait for their transaction lock (held to this transaction's end). */
static enum wr writers_lock(struct store *s, char *msg, size_t msglen)
{
  return s->lock_sql ? run(s, s->lock_sql, 0, NULL, NULL, msg, msglen) : WR_OK;
}

/* Open a transaction, its statements limited to postgres.statement_timeout (SET LOCAL: it holds behind a
 * transaction-pooling pgbouncer too). */
static enum wr begin(struct store *s, char *msg, size_t msglen)
{
  return run(s, s->begin_plain, 0, NULL, NULL, msg, msglen);
}

/* begin() (sql: begin_xid, or begin_sql for the staging path) for a transaction that stores: its id
 * (txid_current, in the same round trip) is kept in s->xid for commit_txn. */
static enum wr begin_store(struct store *s, const char *sql, char *msg, size_t msglen)
{
  PGresult *r = NULL;
  s->xid[0] = 0;
  enum wr w = run(s, sql, 0, NULL, &r, msg, msglen);
  if (w == WR_OK && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
    snprintf(s->xid, sizeof s->xid, "%s", PQgetvalue(r, 0, 0));
  PQclear(r);
  return w;
}

/* Whether the sink is stopping (stopping() was called). */
static bool is_stopping(struct store *s)
{
  pthread_mutex_lock(&s->stop_mu);
  bool stopping = s->stop_deadline != 0;
  pthread_mutex_unlock(&s->stop_mu);
  return stopping;
}

static bool open_conn(struct store *s, struct gw_sink_outcome *out);

#define COMMIT_ASK_TRIES 20                    /* "in progress": asked again this many times ... */
#define COMMIT_ASK_PAUSE_NS (100ull * 1000000ull) /* ... this long apart */

/* COMMIT the storing transaction begin_store opened. When the connection fails on the COMMIT, its answer
 * is lost, not necessarily the commit: the server may have committed before the connection broke. Then
 * a new connection asks Postgres the transaction's fate (txid_status): committed, it is WR_OK as if the
 * answer had come, and the batch is counted stored instead of being written again and counted as
 * duplicates of itself; aborted, still unknown, or no new connection: the error, and the batch is written
 * again as before (exactly once either way: that replay skips what is stored). Not while stopping: a new
 * connection could outlast the drain deadline (the batch stays in the spool). On an error the
 * connection may be the new one. */
static enum wr commit_txn(struct store *s, char *msg, size_t msglen)
{
  enum wr w = run(s, "COMMIT", 0, NULL, NULL, msg, msglen);
  if (w != WR_CONN || !s->xid[0] || is_stopping(s))
    return w;
  char xid[24], why[256];
  snprintf(xid, sizeof xid, "%s", s->xid);
  s->xid[0] = 0;
  close_conn(s);
  if (!open_conn(s, NULL))
    return w;
  const char *params[1] = {xid};
  for (int i = 0; i < COMMIT_ASK_TRIES; i++) {
    PGresult *r = NULL;
    if (run(s, "SELECT txid_status($1::bigint)", 1, params, &r, why, sizeof why) != WR_OK)
      return w;
    const char *st = PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) ? PQgetvalue(r, 0, 0) : "";
    bool committed = strcmp(st, "committed") == 0, running = strcmp(st, "in progress") == 0;
    PQclear(r);
    if (committed) {
      gw_warn(MOD, "the COMMIT's answer was lost with the connection (%.60s); the transaction committed (asked "
              "on a new connection): its rows are stored, not written again", msg);
      return WR_OK;
    }
    if (!running)
      return w;
    struct timespec ts = {0, (long)COMMIT_ASK_PAUSE_NS};
    nanosleep(&ts, NULL);
  }
  return w;
}

/* Connect, migrate (once per process), create the staging table. false: RETRY with out->error set. */
static bool open_conn(struct store *s, struct gw_sink_outcome *out)
{
  char msg[200];
  s->last_attempt_mono = gw_mono_ns();
  s->conn = gw_pg_connect(s->dsn, "genai-gateway", msg, sizeof msg);
  if (!s->conn) {
    set_error(out, "cannot connect to Postgres: %s", msg);
    close_conn(s);
    return false;
  }
  if (s->migrations_dir && !s->migrated) {
    struct gw_err err = {0};
    gw_rc rc = gw_store_migrate(s->conn, s->migrations_dir, &err);
    if (rc != GW_OK) {
      set_error(out, "%s", err.msg);
      if (rc != GW_ERR(DB_CONN))
        gw_error(MOD, "%s", err.msg);
      close_conn(s);
      return false;
    }
    s->migrated = true;
  }
  pthread_mutex_lock(&s->stop_mu);
  s->cancel = PQgetCancel(s->conn);
  s->sock = PQsocket(s->conn);
  pthread_mutex_unlock(&s->stop_mu);
  s->last_used_mono = gw_mono_ns();
  if (!s->counted)
    gw_metric_add(GW_M_PG_CONNECTED, 1);
  s->counted = true;
  gw_info(MOD, "connected");
  return true;
}

/* --- partitions ----------------------------------------------------------------------------------- */

static bool day_known(struct store *s, int64_t day)
{
  for (size_t i = 0; i < s->ndays; i++)
    if (s->days[i] == day)
      return true;
  return false;
}

static void day_remember(struct store *s, int64_t day)
{
  s->days[s->days_next] = day;
  s->days_next = (s->days_next + 1) % DAYS_CACHED;
  if (s->ndays < DAYS_CACHED)
    s->ndays++;
}

/* Create the partition of table for date (YYYY-MM-DD) if missing, waiting at most PARTITION_LOCK_WAIT for
 * the parent's lock. CREATE TABLE ... PARTITION OF takes it exclusively, so it waits for every query
 * reading the table (a dashboard's long one), and while it waits every new reader queues behind it: the
 * dashboards would stop with it. Past the wait it gives up (55P03: lock_not_available, retried with backoff
 * as any database-state error) and the readers go on; the next try comes after the batch's backoff. */
#define PARTITION_LOCK_WAIT "3s"
static enum wr ensure_partition(struct store *s, const char *table, const char *date, char *msg, size_t msglen)
{
  const char *params[2] = {table, date};
  enum wr w = begin(s, msg, msglen);
  if (w == WR_OK)
    w = run(s, "SET LOCAL lock_timeout = '" PARTITION_LOCK_WAIT "'", 0, NULL, NULL, msg, msglen);
  if (w == WR_OK)
    w = run(s, "SELECT gw_ensure_partition($1, $2::date)", 2, params, NULL, msg, msglen);
  if (w == WR_OK)
    w = run(s, "COMMIT", 0, NULL, NULL, msg, msglen);
  if (w != WR_OK)
    rollback(s);
  return w;
}

/* Create the partition of every UTC day among rows[lo, hi) not known to exist (ensure_partition). */
static enum wr ensure_days(struct store *s, const struct batch *b, size_t lo, size_t hi, char *msg, size_t msglen)
{
  for (size_t i = lo; i < hi; i++) {
    uint64_t ns = b->rows[i].rec->start_ns;
    if (!ns)
      continue; /* no start time: the row fails NOT NULL and is rejected */
    int64_t day = (int64_t)(ns / DAY_NS);
    if (day_known(s, day))
      continue;
    time_t t = (time_t)(day * 86400);
    struct tm tm;
    char date[32];
    gmtime_r(&t, &tm);
    snprintf(date, sizeof date, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    enum wr w = ensure_partition(s, TRACES_TABLE, date, msg, msglen);
    if (w != WR_OK)
      return w;
    day_remember(s, day);
  }
  return WR_OK;
}

/* --- one transaction ------------------------------------------------------------------------------ */

/* The rows are rendered as they are sent, a chunk at a time into one reused buffer: Postgres parses a
 * chunk while the next is rendered, and the batch never exists whole as text. */
static bool unique_violation(const PGresult *r)
{
  const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  return state && strcmp(state, "23505") == 0;
}

/* *unique (when not NULL) is set when Postgres refused the rows for a key already stored. */
static enum wr copy_rows(struct store *s, const char *sql, const struct batch *b, size_t lo, size_t hi, bool *unique,
                         char *msg, size_t msglen)
{
  PGresult *r = PQexec(s->conn, sql);
  if (PQresultStatus(r) != PGRES_COPY_IN) {
    enum wr w = classify(s->conn, r, msg, msglen);
    PQclear(r);
    return w;
  }
  PQclear(r);
  struct gw_sb *sb = &s->copy_buf;
  for (size_t i = lo; i < hi; i++) {
    copy_row(sb, b->rows[i].rec);
    if (sb->oom) {
      PQputCopyEnd(s->conn, "out of memory rendering the batch");
      while ((r = PQgetResult(s->conn)) != NULL)
        PQclear(r);
      snprintf(msg, msglen, "out of memory rendering the batch");
      return WR_OTHER;
    }
    if (sb->len >= COPY_CHUNK || i + 1 == hi) {
      if (PQputCopyData(s->conn, sb->buf, (int)sb->len) != 1)
        return classify(s->conn, NULL, msg, msglen);
      sb->len = 0;
    }
  }
  if (PQputCopyEnd(s->conn, NULL) != 1)
    return classify(s->conn, NULL, msg, msglen);
  enum wr w = WR_OK;
  while ((r = PQgetResult(s->conn)) != NULL) {
    if (w == WR_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
      w = classify(s->conn, r, msg, msglen);
      if (unique)
        *unique = unique_violation(r);
    }
    PQclear(r);
  }
  return w;
}

/* The (trace_id, span_id) of the rows a transaction inserted. */
struct ids {
  const char **tids, **sids;
  size_t n;
};

/* From the staging insert's RETURNING trace_id, span_id. */
static bool ids_from_result(struct gw_arena *a, const PGresult *r, struct ids *out)
{
  size_t n = (size_t)PQntuples(r);
  out->n = 0;
  out->tids = gw_arena_alloc(a, sizeof *out->tids * (n ? n : 1));
  out->sids = gw_arena_alloc(a, sizeof *out->sids * (n ? n : 1));
  if (!out->tids || !out->sids)
    return false;
  for (size_t i = 0; i < n; i++) {
    out->tids[i] = PQgetvalue(r, (int)i, 0);
    out->sids[i] = PQgetvalue(r, (int)i, 1);
  }
  out->n = n;
  return true;
}

/* From the records themselves: the direct COPY stored every one of rows[lo, hi) or none. */
static bool ids_from_rows(struct gw_arena *a, const struct batch *b, size_t lo, size_t hi, struct ids *out)
{
  size_t n = hi - lo;
  out->n = 0;
  out->tids = gw_arena_alloc(a, sizeof *out->tids * (n ? n : 1));
  out->sids = gw_arena_alloc(a, sizeof *out->sids * (n ? n : 1));
  if (!out->tids || !out->sids)
    return false;
  for (size_t i = 0; i < n; i++) {
    out->tids[i] = b->rows[lo + i].rec->trace_id;
    out->sids[i] = b->rows[lo + i].rec->span_id;
  }
  out->n = n;
  return true;
}

/* The first and last start of rows[lo, hi) (0 and 0 when none is known: tmax 0). */
static void rows_window(const struct batch *b, size_t lo, size_t hi, uint64_t *tmin, uint64_t *tmax)
{
  *tmin = UINT64_MAX;
  *tmax = 0;
  for (size_t i = lo; i < hi; i++) {
    uint64_t t = b->rows[i].rec->start_ns;
    if (t && t < *tmin)
      *tmin = t;
    if (t > *tmax)
      *tmax = t;
  }
}

/* The window the fills look at around spans starting in [tmin, tmax]: FILL_WINDOW_NS either side, as
 * timestamptz literals (NULL when out of memory). */
static void fill_window(struct store *s, uint64_t tmin, uint64_t tmax, const char **from, const char **to)
{
  struct gw_sb a, b;
  gw_sb_init(&a, s->arena);
  gw_sb_init(&b, s->arena);
  put_time(&a, tmin > FILL_WINDOW_NS ? tmin - FILL_WINDOW_NS : 1);
  put_time(&b, tmax + FILL_WINDOW_NS);
  *from = gw_sb_finish(&a);
  *to = gw_sb_finish(&b);
}

/* Fill session_id/user_id into this trace's rows lacking them from any row of the trace that has them, or
 * from the ids spans of no row carried for it (ai_trace_ids; DESIGN §3), for the traces tids (those of
 * the rows just inserted, in the transaction; of every row of the batch, after its commit), within
 * FILL_WINDOW_NS of the batch's spans. */
static int cmp_str(const void *x, const void *y) { return strcmp(*(const char *const *)x, *(const char *const *)y); }

static enum wr fill_trace_ids(struct store *s, uint64_t tmin, uint64_t tmax, const char *const *tids, size_t n,
                              char *msg, size_t msglen)
{
  if (n == 0)
    return WR_OK;
  /* Each trace once: the planner sizes its plan from the array, and a batch holds many spans per trace. */
  const char **tv = gw_arena_alloc(s->arena, sizeof *tv * n);
  if (!tv) {
    snprintf(msg, msglen, "out of memory building the trace list");
    return WR_OTHER;
  }
  memcpy(tv, tids, sizeof *tv * n);
  qsort(tv, n, sizeof *tv, cmp_str);
  struct gw_sb ids;
  gw_sb_init(&ids, s->arena);
  gw_sb_putc(&ids, '{');
  for (size_t i = 0; i < n; i++) {
    if (i && strcmp(tv[i], tv[i - 1]) == 0)
      continue;
    if (ids.len > 1)
      gw_sb_putc(&ids, ',');
    gw_sb_putc(&ids, '"');
    for (const char *p = tv[i]; *p; p++) {
      if (*p == '"' || *p == '\\')
        gw_sb_putc(&ids, '\\');
      gw_sb_putc(&ids, *p);
    }
    gw_sb_putc(&ids, '"');
  }
  gw_sb_putc(&ids, '}');
  const char *from, *to;
  fill_window(s, tmin, tmax, &from, &to);
  const char *params[3] = {gw_sb_finish(&ids), from, to};
  if (!params[0] || !params[1] || !params[2]) {
    snprintf(msg, msglen, "out of memory building the trace list");
    return WR_OTHER;
  }
  return run(s,
             /* The rows of each trace are read through the (trace_id, span_id, start_time) key, one trace
              * at a time (the OFFSET 0 keeps the lookup per trace): with `trace_id = ANY(list)` the
              * planner, on a day's partition not yet analyzed (every new day, and the minutes before
              * autovacuum gets to it), took the time window as the selective condition and read every
              * row of the window, so each batch cost grew with the partition (110 ms at 20 000 rows, and
              * on). Each row gets its trace's ids in the same pass (a window over the trace): joined to a
              * per-trace aggregate instead, the planner, which guesses a CTE's `IS NULL` filters keep
              * 1 % of its rows, re-ran the aggregate for every row lacking an id (every row, where
              * spans carry no user id: 170 ms a 1000-row batch once the partition was analyzed, against
              * under 1 ms). Then only the rows that gain an id are updated, by their full key. The ids kept
              * for the trace (ai_trace_ids, which grows with the traces) are read the same way, one key
              * lookup per trace, never joined to the rows as a whole. */
             "WITH r AS (SELECT x.*, f.fs, f.fu FROM unnest($1::text[]) AS k(tid) CROSS JOIN LATERAL "
             "(SELECT a.trace_id, a.span_id, a.start_time, a.session_id, a.user_id FROM " TRACES_TABLE " a "
             "WHERE a.trace_id = k.tid AND a.start_time >= $2::timestamptz AND a.start_time < $3::timestamptz "
             "OFFSET 0) x LEFT JOIN LATERAL (SELECT t.session_id AS fs, t.user_id AS fu FROM ai_trace_ids t "
             "WHERE t.trace_id = k.tid OFFSET 0) f ON true), "
             "todo AS (SELECT trace_id, span_id, start_time, coalesce(session_id, t_session) AS session_id, "
             "coalesce(user_id, t_user) AS user_id FROM (SELECT r.*, "
             "greatest(max(r.session_id) OVER w, r.fs) AS t_session, "
             "greatest(max(r.user_id) OVER w, r.fu) AS t_user "
             "FROM r WINDOW w AS (PARTITION BY r.trace_id)) y "
             "WHERE (session_id IS NULL AND t_session IS NOT NULL) OR (user_id IS NULL AND t_user IS NOT NULL)) "
             "UPDATE " TRACES_TABLE " a SET session_id = todo.session_id, user_id = todo.user_id FROM todo "
             "WHERE a.trace_id = todo.trace_id AND a.span_id = todo.span_id AND a.start_time = todo.start_time "
             "AND a.start_time >= $2::timestamptz AND a.start_time < $3::timestamptz",
             3, params, NULL, msg, msglen);
}

/*
 * The hourly rollup upsert (DESIGN §6, migrations/0002_rollups.sql), fed by the CTE `ins`: the rows this
 * statement inserted, never the conflicting re-sent ones. Same aggregates as gw_rollup_rebuild in the
 * migration. Groups are upserted in key order so concurrent writers lock rollup rows in the same order.
 */
#define ROLLUP_INPUT                                                                                     \
  "trace_id, start_time, service_name, provider, model_id, operation, status, input_tokens, "           \
  "output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, total_cost_usd, duration_ms, " \
  "first_token_latency_ms, agent_name, workflow_name, prompt_name, prompt_version"
/* Histogram element i of a group, counted natively (an aggregate over per-row arrays costs ~100x more). */
#define HB(i) "count(*) FILTER (WHERE gw_duration_bucket(duration_ms) = " #i ")"
#define ROLLUP_UPSERT                                                                                    \
  "INSERT INTO trace_metrics_hourly_agents AS t (hour_bucket, service_name, provider, model_id, operation, "    \
  "agent_name, workflow_name, prompt_name, prompt_version, total_requests, successful_requests, error_requests, total_input_tokens, total_output_tokens, "       \
  "total_cache_read_tokens, total_cache_write_tokens, total_reasoning_tokens, total_cost, "               \
  "sum_duration_ms, sum_first_token_latency_ms, first_token_count, duration_histogram, updated_at) "      \
  "SELECT date_trunc('hour', start_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', "                        \
  "coalesce(service_name, ''), coalesce(provider, ''), coalesce(model_id, ''), coalesce(operation, ''), " \
  "coalesce(agent_name, ''), coalesce(workflow_name, ''), coalesce(prompt_name, ''), "                   \
  "coalesce(prompt_version, ''), count(*), count(*) FILTER (WHERE coalesce(status, '') <> 'error'), "                                  \
  "count(*) FILTER (WHERE status = 'error'), coalesce(sum(input_tokens), 0), "                           \
  "coalesce(sum(output_tokens), 0), coalesce(sum(cache_read_tokens), 0), "                               \
  "coalesce(sum(cache_write_tokens), 0), coalesce(sum(reasoning_tokens), 0), "                           \
  "coalesce(sum(total_cost_usd), 0), coalesce(sum(duration_ms), 0), "                                    \
  "coalesce(sum(first_token_latency_ms), 0), count(first_token_latency_ms), "                            \
  "ARRAY[" HB(1) ", " HB(2) ", " HB(3) ", " HB(4) ", " HB(5) ", " HB(6) ", " HB(7) ", " HB(8) ", "        \
  HB(9) ", " HB(10) ", " HB(11) ", " HB(12) ", " HB(13) ", " HB(14) ", " HB(15) "], now() "                \
  "FROM ins GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9 " ROLLUP_ON_CONFLICT
#define ROLLUP_ON_CONFLICT                                                                               \
  "ON CONFLICT (hour_bucket, service_name, provider, model_id, operation, agent_name, workflow_name, "   \
  "prompt_name, prompt_version) DO UPDATE SET "                                                          \
  "total_requests = t.total_requests + EXCLUDED.total_requests, "                                        \
  "successful_requests = t.successful_requests + EXCLUDED.successful_requests, "                         \
  "error_requests = t.error_requests + EXCLUDED.error_requests, "                                        \
  "total_input_tokens = t.total_input_tokens + EXCLUDED.total_input_tokens, "                            \
  "total_output_tokens = t.total_output_tokens + EXCLUDED.total_output_tokens, "                         \
  "total_cache_read_tokens = t.total_cache_read_tokens + EXCLUDED.total_cache_read_tokens, "             \
  "total_cache_write_tokens = t.total_cache_write_tokens + EXCLUDED.total_cache_write_tokens, "          \
  "total_reasoning_tokens = t.total_reasoning_tokens + EXCLUDED.total_reasoning_tokens, "                \
  "total_cost = t.total_cost + EXCLUDED.total_cost, "                                                    \
  "sum_duration_ms = t.sum_duration_ms + EXCLUDED.sum_duration_ms, "                                     \
  "sum_first_token_latency_ms = t.sum_first_token_latency_ms + EXCLUDED.sum_first_token_latency_ms, "    \
  "first_token_count = t.first_token_count + EXCLUDED.first_token_count, "                               \
  "duration_histogram = gw_hist_add(t.duration_histogram, EXCLUDED.duration_histogram), "                \
  "updated_at = now()"
/* The same upsert fed by groups aggregated in C (rollup_groups_json), in the same key order. */
#define ROLLUP_GROUPS_UPSERT                                                                             \
  "INSERT INTO trace_metrics_hourly_agents AS t (hour_bucket, service_name, provider, model_id, operation, "    \
  "agent_name, workflow_name, prompt_name, prompt_version, total_requests, successful_requests, "        \
  "error_requests, total_input_tokens, total_output_tokens, total_cache_read_tokens, "                   \
  "total_cache_write_tokens, total_reasoning_tokens, total_cost, sum_duration_ms, "                      \
  "sum_first_token_latency_ms, first_token_count, duration_histogram, updated_at) "                      \
  "SELECT hour_bucket, service_name, provider, model_id, operation, agent_name, workflow_name, "         \
  "prompt_name, prompt_version, total_requests, successful_requests, error_requests, total_input_tokens, " \
  "total_output_tokens, total_cache_read_tokens, total_cache_write_tokens, total_reasoning_tokens, "     \
  "total_cost, sum_duration_ms, sum_first_token_latency_ms, first_token_count, duration_histogram, now() " \
  "FROM jsonb_to_recordset($1::jsonb) AS x(hour_bucket timestamptz, service_name text, provider text, "  \
  "model_id text, operation text, agent_name text, workflow_name text, prompt_name text, "                \
  "prompt_version text, total_requests bigint, successful_requests bigint, error_requests bigint, "       \
  "total_input_tokens bigint, total_output_tokens bigint, total_cache_read_tokens bigint, "              \
  "total_cache_write_tokens bigint, total_reasoning_tokens bigint, total_cost numeric, "                 \
  "sum_duration_ms double precision, sum_first_token_latency_ms double precision, "                      \
  "first_token_count bigint, duration_histogram bigint[]) "                                              \
  "ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9 " ROLLUP_ON_CONFLICT


/* A Postgres text[] literal of the given strings (ids: hex only, so no escaping is needed beyond quotes). */
static const char *id_array(struct gw_arena *a, const char *const *v, size_t n)
{
  struct gw_sb sb;
  gw_sb_init(&sb, a);
  gw_sb_putc(&sb, '{');
  for (size_t i = 0; i < n; i++) {
    if (i)
      gw_sb_putc(&sb, ',');
    gw_sb_putc(&sb, '"');
    gw_sb_puts(&sb, v[i]);
    gw_sb_putc(&sb, '"');
  }
  gw_sb_putc(&sb, '}');
  return gw_sb_finish(&sb);
}

/* Fill content from stored GenAI events into the rows of these spans (migrations/0004_events.sql), for
 * rows and events within a day of [tmin, tmax]. if_any: first ask whether any event is stored in that
 * window, and merge nothing when none is (the rows' path: most deployments send no logs, and events that
 * arrive after their rows merge themselves into them, events_txn). */
static enum wr merge_events(struct store *s, const char *const *tids, const char *const *sids, size_t n, uint64_t tmin,
                            uint64_t tmax, bool if_any, char *msg, size_t msglen)
{
  if (!n)
    return WR_OK;
  tmin = tmin > DAY_NS ? tmin - DAY_NS : 1;
  tmax += DAY_NS;
  struct gw_sb from, to;
  gw_sb_init(&from, s->arena);
  gw_sb_init(&to, s->arena);
  put_time(&from, tmin);
  put_time(&to, tmax);
  const char *window[2] = {gw_sb_finish(&from), gw_sb_finish(&to)};
  if (!window[0] || !window[1]) {
    snprintf(msg, msglen, "out of memory building the span list");
    return WR_OTHER;
  }
  if (if_any) {
    PGresult *r = NULL;
    enum wr w = run(s,
                    "SELECT EXISTS (SELECT 1 FROM " EVENTS_TABLE " WHERE time >= $1::timestamptz "
                    "AND time < $2::timestamptz)",
                    2, window, &r, msg, msglen);
    bool any = w == WR_OK && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (w != WR_OK || !any)
      return w;
  }
  const char *params[4] = {id_array(s->arena, tids, n), id_array(s->arena, sids, n), window[0], window[1]};
  if (!params[0] || !params[1]) {
    snprintf(msg, msglen, "out of memory building the span list");
    return WR_OTHER;
  }
  return run(s, "SELECT gw_merge_event_content($1::text[], $2::text[], $3::timestamptz, $4::timestamptz)", 4, params,
             NULL, msg, msglen);
}

/* The rows this transaction inserted may have events that arrived before them. */
static enum wr merge_new_rows(struct store *s, const struct batch *b, size_t lo, size_t hi, const struct ids *new_rows,
                              char *msg, size_t msglen)
{
  if (!new_rows->n)
    return WR_OK;
  uint64_t tmin, tmax;
  rows_window(b, lo, hi, &tmin, &tmax);
  if (tmax == 0)
    return WR_OK;
  return merge_events(s, new_rows->tids, new_rows->sids, new_rows->n, tmin, tmax, true, msg, msglen);
}

/*
 * The merge of events into rows runs in the transaction that stores either, and once more right after
 * its commit. A span's row and its events may be stored at the same moment by two gateways (a tier's
 * replicas behind one Service): under READ COMMITTED neither transaction sees the other's uncommitted
 * data, so neither merge finds anything. Run again after commit, the merge of whichever commits second
 * sees both. The fill of session/user ids across a trace (fill_trace_ids, gw_trace_ids_apply) is run
 * again after commit for the same reason, and so are the agent fill and the summaries (which run only
 * then).
 * A failure of these runs (the connection lost right after COMMIT, a deadlock 40P01 between two gateways'
 * fills) does not fail the batch: it is stored and acknowledged (answering RETRY would replay a stored
 * batch to redo them, and a stop before that replay would count its stored spans as lost with the memory
 * spool). The writer keeps the spans the runs were for and runs them again (owe, pay_owed) before its
 * next batch and when idle, until they pass; the trace's next batch would run them too. What is owed
 * lives in the writer's memory; the spool keeps the batch it is owed to meanwhile (keep_owed:
 * gw_sink_outcome.keep_from, with any number of writers), so a crash or a stop before it is paid leaves
 * the batch in the disk spool, and its replay at the next start finds the rows stored and runs the work
 * again. That hold lasts OWED_HOLD_NS at most (a fill that keeps failing must not stop the spool's
 * reclaim), and a stop tries once more before it ends. w: what the run returned; what: what it was.
 * true: it failed.
 */
static bool after_commit(struct store *s, enum wr w, const char *what, const char *msg)
{
  if (w == WR_OK)
    return false;
  rollback(s);
  gw_warn(MOD, "%s after commit failed (%.60s): run again before the next batch", what, msg);
  return true;
}

/* Keep n spans (their trace and span ids, their times within [tmin, tmax]) as owed. Past OWED_MAX the
 * oldest are given up, said once per call. */
static void owe(struct store *s, const char *const *tids, const char *const *sids, size_t n, uint64_t tmin,
                uint64_t tmax)
{
  if (!n || !tmax)
    return;
  if (n > OWED_MAX) {
    tids += n - OWED_MAX;
    sids += n - OWED_MAX;
    n = OWED_MAX;
  }
  if (s->nowed + n > OWED_MAX) {
    size_t drop = s->nowed + n - OWED_MAX;
    gw_warn(MOD, "%zu spans' runs after commit given up (more than %d owed): their rows wait for their trace's "
            "next batch", drop, OWED_MAX);
    memmove(s->owed, s->owed + drop, (s->nowed - drop) * sizeof *s->owed);
    s->nowed -= drop;
  }
  if (s->nowed + n > s->owed_cap) {
    size_t cap = s->owed_cap ? s->owed_cap : 1024;
    while (cap < s->nowed + n)
      cap *= 2;
    s->owed = gw_realloc(s->owed, cap * sizeof *s->owed);
    s->owed_cap = cap;
  }
  if (!s->nowed) {
    s->owed_tmin = UINT64_MAX;
    s->owed_tmax = 0;
  }
  for (size_t i = 0; i < n; i++) {
    snprintf(s->owed[s->nowed].tid, sizeof s->owed[0].tid, "%s", tids[i]);
    snprintf(s->owed[s->nowed].sid, sizeof s->owed[0].sid, "%s", sids[i]);
    s->nowed++;
  }
  if (tmin < s->owed_tmin)
    s->owed_tmin = tmin;
  if (tmax > s->owed_tmax)
    s->owed_tmax = tmax;
  if (!s->owed_seq && s->batch_seq) {
    s->owed_seq = s->batch_seq;
    s->owed_since_mono = gw_mono_ns();
  }
}

/* owe() the rows rows[lo, hi). */
static void owe_rows(struct store *s, const struct batch *b, size_t lo, size_t hi)
{
  const char **tids = gw_arena_alloc(s->arena, sizeof *tids * (hi - lo + 1));
  const char **sids = gw_arena_alloc(s->arena, sizeof *sids * (hi - lo + 1));
  if (!tids || !sids) {
    gw_warn(MOD, "out of memory keeping %zu spans' runs after commit: their rows wait for their trace's next "
            "batch", hi - lo);
    return;
  }
  for (size_t i = lo; i < hi; i++) {
    tids[i - lo] = b->rows[i].rec->trace_id;
    sids[i - lo] = b->rows[i].rec->span_id;
  }
  uint64_t tmin, tmax;
  rows_window(b, lo, hi, &tmin, &tmax);
  owe(s, tids, sids, hi - lo, tmin, tmax);
}

/* Session and user ids (fill_trace_ids), agent and workflow attribution (migrations/0006_agents.sql) and
 * the summaries (migrations/0007_trace_summaries.sql) of the traces of rows[lo, hi) (inserted or re-sent),
 * within FILL_WINDOW_NS of the batch's spans, right after the batch's commit, in autocommit (each
 * statement is atomic): the ids of the trace's rows, the agent names from each row's nearest ancestor
 * (moving their rollups with them), then the summaries of those traces from the filled rows. As the
 * events' merge, the run after the later of two commits sees both, so a trace whose spans two gateways
 * store at the same moment ends complete. A crash between the commit and this leaves the batch
 * unacknowledged in the spool: its replay finds the rows stored and runs this for its traces (re-sent
 * rows count), so nothing stays unfilled. The agent fill is not also run inside the transaction: it
 * would only make the fill visible with the rows, at the cost of reading every trace of the batch once
 * more (the ids' fill is, so that a trace's ids in one batch are seen with its rows). */
static enum wr fill_traces(struct store *s, const char **tv, size_t n, uint64_t tmin, uint64_t tmax, bool named,
                           char *msg, size_t msglen);

static enum wr fill_after_commit(struct store *s, const struct batch *b, size_t lo, size_t hi, char *msg,
                                 size_t msglen)
{
  if (hi <= lo)
    return WR_OK;
  const char **tv = gw_arena_alloc(s->arena, sizeof *tv * (hi - lo));
  if (!tv) {
    snprintf(msg, msglen, "out of memory building the trace list");
    return WR_OTHER;
  }
  for (size_t i = lo; i < hi; i++)
    tv[i - lo] = b->rows[i].rec->trace_id;
  uint64_t tmin, tmax;
  rows_window(b, lo, hi, &tmin, &tmax);
  bool named = false;
  for (size_t i = lo; i < hi && !named; i++)
    named = b->rows[i].rec->agent_name || b->rows[i].rec->workflow_name;
  return fill_traces(s, tv, hi - lo, tmin, tmax, named, msg, msglen);
}

/* fill_after_commit's runs for the traces tv[0, n) (any order, repeats allowed: sorted and made unique
 * here) of spans starting within [tmin, tmax]; named: a span among them names an agent or workflow. */
static enum wr fill_traces(struct store *s, const char **tv, size_t n_in, uint64_t tmin, uint64_t tmax, bool named,
                           char *msg, size_t msglen)
{
  if (!tmax || !n_in)
    return WR_OK;
  qsort(tv, n_in, sizeof *tv, cmp_str);
  size_t n = 0;
  for (size_t i = 0; i < n_in; i++)
    if (!n || strcmp(tv[i], tv[n - 1]))
      tv[n++] = tv[i];
  const char *from, *to;
  fill_window(s, tmin, tmax, &from, &to);
  const char *params[3] = {id_array(s->arena, tv, n), from, to};
  if (!params[0] || !params[1] || !params[2]) {
    snprintf(msg, msglen, "out of memory building the trace list");
    return WR_OTHER;
  }
  /* Every name the fill gives comes from a row of the trace. A batch naming nobody asks first whether any
   * stored row of its traces has a name (migrations/0011_named_rows.sql: an index descent per trace instead of the walk
   * over every row), without the writers' lock: this runs after the batch's commit, so a name committed
   * by another writer is seen here, or that writer's own fill, run after its commit, sees this batch. */
  enum wr w = WR_OK;
  if (!named) {
    PGresult *r = NULL;
    w = run(s, "SELECT gw_agents_named($1::text[], $2::timestamptz, $3::timestamptz)", 3, params, &r, msg, msglen);
    named = w == WR_OK && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (w == WR_OK && !named)
      gw_metric_add(GW_M_PG_AGENT_FILLS_SKIPPED, 1);
  }
  /* Several writers: the fills (the agents' moves rollups; both update rows another writer's fill may be
   * updating, in another order) under their lock, in one transaction of their own. */
  if (w == WR_OK && s->lock_sql)
    w = begin(s, msg, msglen);
  if (w == WR_OK)
    w = writers_lock(s, msg, msglen);
  if (w == WR_OK)
    w = fill_trace_ids(s, tmin, tmax, tv, n, msg, msglen);
  if (w == WR_OK && named)
    w = run(s, "SELECT gw_fill_agents($1::text[], $2::timestamptz, $3::timestamptz)", 3, params, NULL, msg, msglen);
  if (w == WR_OK && s->lock_sql)
    w = run(s, "COMMIT", 0, NULL, NULL, msg, msglen);
  if (w == WR_OK)
    w = run(s, "SELECT gw_summarize_traces($1::text[], $2::timestamptz, $3::timestamptz)", 3, params, NULL, msg,
            msglen);
  return w;
}

/* The rows' trace ids filled across their traces, and their events merged, in the open transaction; then
 * COMMIT, the counts, and the runs after commit (after_commit) over every row of rows[lo, hi). */
static enum wr finish_txn(struct store *s, struct batch *b, size_t lo, size_t hi, const struct ids *new_rows,
                          char *msg, size_t msglen)
{
  enum wr w;
  uint64_t tmin, tmax;
  rows_window(b, lo, hi, &tmin, &tmax);
  if ((w = fill_trace_ids(s, tmin, tmax, new_rows->tids, new_rows->n, msg, msglen)) != WR_OK)
    return w;
  if ((w = merge_new_rows(s, b, lo, hi, new_rows, msg, msglen)) != WR_OK)
    return w;
  if ((w = commit_txn(s, msg, msglen)) != WR_OK)
    return w;
  /* Stored from here, whatever follows: a replay counts these rows as duplicates. */
  uint64_t stored = new_rows->n;
  b->stored += stored;
  b->duplicate += (hi - lo) - stored;
  gw_metric_add(GW_M_RECORDS_STORED, (int64_t)stored);
  gw_metric_add(GW_M_RECORDS_DUPLICATE, (int64_t)((hi - lo) - stored));
  struct ids all;
  bool failed;
  if (ids_from_rows(s->arena, b, lo, hi, &all))
    failed = after_commit(s, merge_new_rows(s, b, lo, hi, &all, msg, msglen), "merging GenAI events into rows", msg);
  else
    failed = after_commit(s, WR_OTHER, "merging GenAI events into rows", "out of memory building the span list");
  failed |= after_commit(s, fill_after_commit(s, b, lo, hi, msg, msglen),
                         "the session/user and agent fills or the trace summaries", msg);
  if (failed)
    owe_rows(s, b, lo, hi);
  return WR_OK;
}

/* rows[lo, hi) through the staging table: COPY into it, INSERT ... ON CONFLICT DO NOTHING from it with
 * the rollups of exactly the rows inserted, in one transaction. Any re-sent span is skipped. */
static enum wr staging_txn(struct store *s, struct batch *b, size_t lo, size_t hi, char *msg, size_t msglen)
{
  PGresult *ins = NULL;
  struct ids new_rows;
  enum wr w = begin_store(s, s->begin_sql, msg, msglen);
  if (w != WR_OK)
    goto out;
  if ((w = copy_rows(s, s->copy_sql, b, lo, hi, NULL, msg, msglen)) != WR_OK)
    goto out;
  if ((w = writers_lock(s, msg, msglen)) != WR_OK)
    goto out;
  if ((w = run(s, s->insert_sql, 0, NULL, &ins, msg, msglen)) != WR_OK)
    goto out;
  if (!ids_from_result(s->arena, ins, &new_rows)) {
    snprintf(msg, msglen, "out of memory building the span list");
    w = WR_OTHER;
    goto out;
  }
  w = finish_txn(s, b, lo, hi, &new_rows, msg, msglen);
out:
  PQclear(ins);
  if (w != WR_OK)
    rollback(s);
  return w;
}

/*
 * The rollups of rows[lo, hi), aggregated here per (hour, dimensions) as ROLLUP_UPSERT's GROUP BY does,
 * and sent as one JSON array of those groups (a batch of 1000 rows holds a few dozen): Postgres then
 * parses and upserts the groups instead of re-reading every row. Each aggregate is the one of the SQL
 * (and of gw_rollup_rebuild), value for value:
 *   hour        the start time truncated to microseconds (as stored) and then to the hour, UTC;
 *   dimensions  NULL counts as '' (coalesce); groups are told apart byte for byte, as text equality is;
 *   requests    count(*); successful: status is not 'error' (NULL included); error: status = 'error';
 *   tokens      sums of the set values, 0 when none is set (coalesce(sum, 0));
 *   cost        the exact sum of nano-USD (numeric in Postgres), rendered with 9 places, or 0 when no row
 *               of the group has one (coalesce(sum, 0) is then the integer 0);
 *   durations   float8 sums of the set values in the rows' order (sum(float8) adds in input order, and the
 *               SQL path read the rows in this order), sent with 17 digits, so bit for bit;
 *   histogram   per gw_duration_bucket: 1 + the number of bounds the duration is above (NaN is above
 *               nothing, as width_bucket sorts NaN last); an unset duration is in no bucket.
 * The upsert orders the groups by key, as ROLLUP_UPSERT does, so writers lock rollup rows in one order.
 */
#define ROLLUP_DIMS 8
#define HIST_BUCKETS 15
#define HOUR_NS 3600000000000ull

struct rgroup {
  int64_t hour;
  const char *dim[ROLLUP_DIMS];
  uint64_t hash;
  int64_t requests, ok, errors, tokens[5], ftl_count, hist[HIST_BUCKETS];
  __int128 cost;
  bool cost_set;
  double duration, ftl;
};

static const char *dim_of(const struct gw_record *r, int d)
{
  const char *v = NULL;
  switch (d) {
  case 0: v = r->service_name; break;
  case 1: v = r->provider; break;
  case 2: v = r->model_id; break;
  case 3: v = r->operation; break;
  case 4: v = r->agent_name; break;
  case 5: v = r->workflow_name; break;
  case 6: v = r->prompt_name; break;
  default: v = r->prompt_version; break;
  }
  return v ? v : "";
}

static int duration_bucket(double ms)
{
  static const double bounds[HIST_BUCKETS - 1] = {10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10240,
                                                  20480, 40960, 81920};
  int b = 1;
  for (int i = 0; i < HIST_BUCKETS - 1; i++)
    b += ms > bounds[i];
  return b;
}

/* A __int128 nano-USD sum as an exact decimal with 9 places. */
static void put_nusd128(struct gw_sb *sb, __int128 v)
{
  unsigned __int128 mag = v < 0 ? (unsigned __int128)0 - (unsigned __int128)v : (unsigned __int128)v;
  unsigned __int128 whole = mag / 1000000000u;
  char digits[48];
  size_t n = 0;
  do {
    digits[n++] = (char)('0' + (int)(whole % 10u));
    whole /= 10u;
  } while (whole);
  if (v < 0)
    gw_sb_putc(sb, '-');
  while (n)
    gw_sb_putc(sb, digits[--n]);
  gw_sb_printf(sb, ".%09llu", (unsigned long long)(mag % 1000000000u));
}

static void put_f64_str(struct gw_sb *sb, double d)
{
  gw_sb_putc(sb, '"');
  put_f64(sb, d, false);
  gw_sb_putc(sb, '"');
}

static uint64_t group_hash(const struct gw_record *r, int64_t hour, const char *dim[ROLLUP_DIMS])
{
  uint64_t h = 14695981039346656037ull ^ (uint64_t)hour;
  for (int d = 0; d < ROLLUP_DIMS; d++) {
    dim[d] = dim_of(r, d);
    for (const unsigned char *p = (const unsigned char *)dim[d]; *p; p++)
      h = (h ^ *p) * 1099511628211ull;
    h = (h ^ 0xffu) * 1099511628211ull; /* a separator no UTF-8 text holds */
  }
  return h;
}

static bool group_is(const struct rgroup *g, uint64_t hash, int64_t hour, const char *const dim[ROLLUP_DIMS])
{
  if (g->hash != hash || g->hour != hour)
    return false;
  for (int d = 0; d < ROLLUP_DIMS; d++)
    if (strcmp(g->dim[d], dim[d]) != 0)
      return false;
  return true;
}

static void group_add(struct rgroup *g, const struct gw_record *r)
{
  g->requests++;
  if (r->status && strcmp(r->status, "error") == 0)
    g->errors++;
  else
    g->ok++;
  const struct gw_opt_i64 *tok[5] = {&r->input_tokens, &r->output_tokens, &r->cache_read_tokens,
                                     &r->cache_write_tokens, &r->reasoning_tokens};
  for (int k = 0; k < 5; k++)
    if (tok[k]->set)
      g->tokens[k] += tok[k]->v;
  if (r->total_cost_nusd.set) {
    g->cost += r->total_cost_nusd.v;
    g->cost_set = true;
  }
  if (r->duration_ms.set) {
    g->duration += r->duration_ms.v;
    g->hist[duration_bucket(r->duration_ms.v) - 1]++;
  }
  if (r->first_token_latency_ms.set) {
    g->ftl += r->first_token_latency_ms.v;
    g->ftl_count++;
  }
}

static void group_json(struct gw_sb *sb, const struct rgroup *g)
{
  static const char *const dim_names[ROLLUP_DIMS] = {"service_name", "provider",      "model_id",    "operation",
                                                     "agent_name",   "workflow_name", "prompt_name", "prompt_version"};
  gw_sb_puts(sb, "{\"hour_bucket\":\"");
  put_time(sb, (uint64_t)g->hour * HOUR_NS);
  gw_sb_putc(sb, '"');
  for (int d = 0; d < ROLLUP_DIMS; d++) {
    gw_sb_printf(sb, ",\"%s\":", dim_names[d]);
    gw_sb_json_str(sb, g->dim[d], strlen(g->dim[d]));
  }
  gw_sb_printf(sb,
               ",\"total_requests\":%lld,\"successful_requests\":%lld,\"error_requests\":%lld,"
               "\"total_input_tokens\":%lld,\"total_output_tokens\":%lld,\"total_cache_read_tokens\":%lld,"
               "\"total_cache_write_tokens\":%lld,\"total_reasoning_tokens\":%lld,\"total_cost\":\"",
               (long long)g->requests, (long long)g->ok, (long long)g->errors, (long long)g->tokens[0],
               (long long)g->tokens[1], (long long)g->tokens[2], (long long)g->tokens[3], (long long)g->tokens[4]);
  if (g->cost_set)
    put_nusd128(sb, g->cost);
  else
    gw_sb_putc(sb, '0');
  gw_sb_puts(sb, "\",\"sum_duration_ms\":");
  put_f64_str(sb, g->duration);
  gw_sb_puts(sb, ",\"sum_first_token_latency_ms\":");
  put_f64_str(sb, g->ftl);
  gw_sb_printf(sb, ",\"first_token_count\":%lld,\"duration_histogram\":\"{", (long long)g->ftl_count);
  for (int k = 0; k < HIST_BUCKETS; k++)
    gw_sb_printf(sb, k ? ",%lld" : "%lld", (long long)g->hist[k]);
  gw_sb_puts(sb, "}\"}");
}

/* The groups of rows[lo, hi) as the JSON array ROLLUP_GROUPS_UPSERT reads; NULL when out of memory. */
static const char *rollup_groups_json(struct store *s, const struct batch *b, size_t lo, size_t hi)
{
  size_t n = hi - lo, cap = 16;
  while (cap < 2 * n)
    cap *= 2;
  struct rgroup **slot = gw_arena_calloc(s->arena, sizeof *slot * cap);
  struct rgroup **order = gw_arena_alloc(s->arena, sizeof *order * (n ? n : 1));
  if (!slot || !order)
    return NULL;
  size_t ngroups = 0;
  for (size_t i = lo; i < hi; i++) {
    const struct gw_record *r = b->rows[i].rec;
    int64_t hour = (int64_t)(r->start_ns / 1000u * 1000u / HOUR_NS);
    const char *dim[ROLLUP_DIMS];
    uint64_t h = group_hash(r, hour, dim);
    size_t at = (size_t)h & (cap - 1);
    while (slot[at] && !group_is(slot[at], h, hour, dim))
      at = (at + 1) & (cap - 1);
    if (!slot[at]) {
      struct rgroup *g = gw_arena_calloc(s->arena, sizeof *g);
      if (!g)
        return NULL;
      g->hour = hour;
      g->hash = h;
      memcpy(g->dim, dim, sizeof g->dim);
      slot[at] = order[ngroups++] = g;
    }
    group_add(slot[at], r);
  }
  struct gw_sb sb;
  gw_sb_init(&sb, s->arena);
  gw_sb_putc(&sb, '[');
  for (size_t k = 0; k < ngroups; k++) {
    if (k)
      gw_sb_putc(&sb, ',');
    group_json(&sb, order[k]);
  }
  gw_sb_putc(&sb, ']');
  return gw_sb_finish(&sb);
}

/*
 * rows[lo, hi) straight into ai_interaction_traces: one COPY, no staging table, no second pass over the
 * rows. COPY has no ON CONFLICT: one span already stored (a batch replayed after a crash or a lost
 * acknowledgement, a client re-sending) fails the whole COPY with 23505, and *unique tells the caller
 * to store the batch again through the staging table, which skips exactly the stored spans. When the
 * COPY succeeds every row is new, so the rollups are those of the batch itself, aggregated here
 * (rollup_groups_json) and upserted as groups.
 */
static enum wr direct_txn(struct store *s, struct batch *b, size_t lo, size_t hi, bool *unique, char *msg,
                          size_t msglen)
{
  struct ids new_rows;
  enum wr w = begin_store(s, s->begin_xid, msg, msglen);
  if (w != WR_OK)
    goto out;
  if ((w = copy_rows(s, s->direct_copy_sql, b, lo, hi, unique, msg, msglen)) != WR_OK)
    goto out;
  const char *params[1] = {rollup_groups_json(s, b, lo, hi)};
  if (!params[0] || !ids_from_rows(s->arena, b, lo, hi, &new_rows)) {
    snprintf(msg, msglen, "out of memory rendering the rollup input");
    w = WR_OTHER;
    goto out;
  }
  if ((w = writers_lock(s, msg, msglen)) != WR_OK)
    goto out;
  if ((w = run(s, s->rollup_sql, 1, params, NULL, msg, msglen)) != WR_OK)
    goto out;
  w = finish_txn(s, b, lo, hi, &new_rows, msg, msglen);
out:
  if (w != WR_OK)
    rollback(s);
  return w;
}

/* rows[lo, hi) in one transaction; counts stored and duplicate rows once committed. The direct COPY
 * first; the staging path when it met a span already stored. Re-sent spans come in runs (a spool replayed
 * after a crash, a client re-sending its backlog): once a fallback found some, the following batches go
 * through the staging path first, each sparing a COPY bound to fail, until one finds none. */
static enum wr write_txn(struct store *s, struct batch *b, size_t lo, size_t hi, char *msg, size_t msglen)
{
  uint64_t dup0 = b->duplicate;
  enum wr w;
  if (!s->replaying) {
    bool unique = false;
    w = direct_txn(s, b, lo, hi, &unique, msg, msglen);
    if (w != WR_DATA || !unique)
      return w;
    gw_metric_add(GW_M_PG_COPY_FALLBACKS, 1);
  }
  w = staging_txn(s, b, lo, hi, msg, msglen);
  if (w == WR_OK)
    s->replaying = b->duplicate > dup0;
  return w;
}

/* The rows an INSERT wrote (ON CONFLICT DO NOTHING: those not there already). */
static uint64_t rows_written(const PGresult *r) { return strtoull(PQcmdTuples((PGresult *)r), NULL, 10); }

/* Something Postgres refused for its data, or would (json: its JSON, NULL when it could not be rendered):
 * keep it, with the reason, in ai_interaction_rejects. WR_OK once given up on, kept or not; a connection
 * or database-state error is returned for the caller to retry. what names it in the log line; quiet: the
 * caller logs one line for many. *kept: it was written now, not kept already by an earlier attempt at
 * its batch (kept once, migrations/0014; counted once). */
static enum wr keep_reject(struct store *s, const char *what, const char *trace_id, const char *span_id,
                           const char *json, const char *why, bool quiet, bool *kept, char *msg, size_t msglen)
{
  const char *params[4] = {trace_id, span_id, json, why};
  PGresult *res = NULL;
  enum wr w = json ? run(s,
                         "INSERT INTO ai_interaction_rejects (trace_id, span_id, record, error) "
                         "VALUES ($1, $2, $3::jsonb, $4) ON CONFLICT DO NOTHING", /* kept once (0014) */
                         4, params, &res, msg, msglen)
                   : WR_DATA;
  *kept = w == WR_OK && rows_written(res) > 0;
  PQclear(res);
  if (w == WR_CONN || w == WR_OTHER)
    return w;
  if (w == WR_DATA)
    gw_error(MOD, "a %s refused by Postgres could not be kept in ai_interaction_rejects either (%.5s)", what,
             json ? msg : "out of memory");
  else if (!quiet && *kept) /* (kept before: a replay of its batch, said then) */
    gw_warn(MOD, "a %s refused by Postgres was kept in ai_interaction_rejects (%.5s)", what, why);
  return WR_OK;
}

/* A row Postgres refused for its data: kept in ai_interaction_rejects, counted (in the metric when kept
 * now: a replay of its batch finds it kept and does not count it again). */
static enum wr reject_row(struct store *s, struct batch *b, size_t i, const char *why, char *msg, size_t msglen)
{
  const struct gw_record *r = b->rows[i].rec;
  bool kept;
  enum wr w =
    keep_reject(s, "record", r->trace_id, r->span_id, record_json(s->arena, r), why, false, &kept, msg, msglen);
  if (w != WR_OK)
    return w;
  b->rejected++;
  if (kept)
    gw_metric_add(GW_M_RECORDS_REJECTED_DB, 1);
  return WR_OK;
}

/* Store rows[lo, hi); on a data error, halve until the bad rows stand alone and reject those.
 * On failure msg says why (SQLSTATE and primary message of a connection or database-state error, which
 * name objects, not row values). */
static enum wr write_split(struct store *s, struct batch *b, size_t lo, size_t hi, char *msg, size_t msglen)
{
  enum wr w = write_txn(s, b, lo, hi, msg, msglen);
  if (w != WR_DATA)
    return w;
  if (hi - lo == 1) {
    char why[256];
    snprintf(why, sizeof why, "%s", msg);
    return reject_row(s, b, lo, why, msg, msglen);
  }
  gw_metric_add(GW_M_PG_SPLITS, 1);
  size_t mid = lo + (hi - lo) / 2;
  if ((w = write_split(s, b, lo, mid, msg, msglen)) != WR_OK)
    return w;
  return write_split(s, b, mid, hi, msg, msglen);
}

static enum wr write_range(struct store *s, struct batch *b, size_t lo, size_t hi, char *msg, size_t msglen)
{
  enum wr w = write_txn(s, b, lo, hi, msg, msglen);
  if (w != WR_DATA)
    return w;
  /* A partition dropped behind our back (retention, an operator) also looks like a data error (no
   * partition for the row): forget what we know, check the days again and retry once before blaming rows,
   * even a batch of one. */
  s->ndays = s->days_next = 0;
  if ((w = ensure_days(s, b, lo, hi, msg, msglen)) != WR_OK)
    return w == WR_DATA ? WR_OTHER : w;
  return write_split(s, b, lo, hi, msg, msglen);
}

/* --- GenAI events (migrations/0004_events.sql) ------------------------------------------------------ */

#define EVENTS_INSERT                                                                                      \
  "WITH ins AS (INSERT INTO " EVENTS_TABLE " (trace_id, span_id, time, event_name, seq, role, content, "     \
  "attributes, redaction_count, direction, text_content, prompt_hash, redacted_kinds, service_name, "        \
  "prompt_simhash) "                                                                                       \
  "SELECT trace_id, span_id, time, event_name, seq, role, content, attributes, redaction_count, direction, " \
  "text_content, nullif(prompt_hash, ''), redacted_kinds, service_name, "                                  \
  "nullif(prompt_simhash, '')::bit(64) FROM jsonb_to_recordset($1::jsonb) "                                \
  "AS x(trace_id text, span_id text, time timestamptz, event_name text, seq int, role text, content text, "  \
  "attributes jsonb, redaction_count int, direction text, text_content text, prompt_hash text, "            \
  "redacted_kinds text[], service_name text, prompt_simhash text) "                                        \
  "ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*) FROM ins"

struct ev_batch {
  const struct gw_event **v;
  size_t n;
  uint64_t stored, duplicate, rejected;
};

static void json_opt(struct gw_sb *sb, const char *s)
{
  if (s)
    gw_sb_json_str(sb, s, strlen(s));
  else
    gw_sb_puts(sb, "null");
}

/* One event as a jsonb_to_recordset element. */
static void event_json(struct gw_sb *sb, const struct gw_event *e)
{
  gw_sb_puts(sb, "{\"trace_id\":");
  json_opt(sb, e->trace_id);
  gw_sb_puts(sb, ",\"span_id\":");
  json_opt(sb, e->span_id);
  gw_sb_puts(sb, ",\"time\":\"");
  put_time(sb, e->time_ns);
  gw_sb_puts(sb, "\",\"event_name\":");
  json_opt(sb, e->event_name);
  gw_sb_printf(sb, ",\"seq\":%lld,\"role\":", (long long)(e->seq.set ? e->seq.v : 0));
  json_opt(sb, e->role);
  gw_sb_puts(sb, ",\"content\":");
  json_opt(sb, e->content);
  gw_sb_puts(sb, ",\"attributes\":");
  gw_sb_puts(sb, e->attributes && e->attributes[0] ? e->attributes : "null");
  if (e->redaction_count.set)
    gw_sb_printf(sb, ",\"redaction_count\":%lld", (long long)e->redaction_count.v);
  gw_sb_puts(sb, ",\"direction\":");
  json_opt(sb, e->direction);
  gw_sb_puts(sb, ",\"text_content\":");
  json_opt(sb, e->text_content);
  gw_sb_puts(sb, ",\"prompt_hash\":");
  json_opt(sb, e->prompt_hash);
  gw_sb_puts(sb, ",\"prompt_simhash\":"); /* migrations/0009 */
  json_opt(sb, e->prompt_simhash);
  gw_sb_puts(sb, ",\"redacted_kinds\":");
  if (e->redacted_kinds.n) {
    gw_sb_putc(sb, '[');
    for (uint32_t i = 0; i < e->redacted_kinds.n; i++) {
      if (i)
        gw_sb_putc(sb, ',');
      json_opt(sb, e->redacted_kinds.v[i]);
    }
    gw_sb_putc(sb, ']');
  } else {
    gw_sb_puts(sb, "null");
  }
  gw_sb_puts(sb, ",\"service_name\":");
  json_opt(sb, e->service_name);
  gw_sb_putc(sb, '}');
}

static const char *events_json(struct gw_arena *a, const struct gw_event *const *v, size_t n)
{
  struct gw_sb sb;
  gw_sb_init(&sb, a);
  gw_sb_putc(&sb, '[');
  for (size_t i = 0; i < n; i++) {
    if (i)
      gw_sb_putc(&sb, ',');
    event_json(&sb, v[i]);
  }
  gw_sb_putc(&sb, ']');
  return gw_sb_finish(&sb);
}

/* Decode the logs entries' events. */
static gw_rc collect_events(struct store *s, const struct gw_spool_entry *entries, size_t n, struct ev_batch *eb,
                            uint64_t *undecodable)
{
  size_t total = 0;
  for (size_t i = 0; i < n; i++)
    if (entries[i].signal == GW_SIGNAL_LOGS)
      total += entries[i].nrecords;
  eb->v = gw_arena_alloc(s->arena, sizeof *eb->v * (total ? total : 1));
  if (!eb->v)
    return GW_ERR(NOMEM);
  for (size_t i = 0; i < n; i++) {
    const struct gw_spool_entry *e = &entries[i];
    if (e->signal != GW_SIGNAL_LOGS || e->nrecords == 0 || !e->records)
      continue;
    struct gw_event *evs;
    size_t k;
    gw_rc rc = gw_events_decode(e->records, e->records_len, s->arena, &evs, &k);
    if (rc == GW_ERR(NOMEM))
      return rc;
    if (rc != GW_OK || eb->n + k > total) {
      gw_error(MOD, "spool entry %llu: events do not decode, %u events skipped", (unsigned long long)e->seq,
               e->nrecords);
      *undecodable += e->nrecords;
      continue;
    }
    for (size_t j = 0; j < k; j++)
      eb->v[eb->n++] = &evs[j];
  }
  return GW_OK;
}

/* The partitions of the events' days, in autocommit (as for the interactions). */
static enum wr ensure_event_days(struct store *s, const struct ev_batch *eb, char *msg, size_t msglen)
{
  int64_t seen[16];
  size_t nseen = 0;
  for (size_t i = 0; i < eb->n; i++) {
    int64_t day = (int64_t)(eb->v[i]->time_ns / DAY_NS);
    bool known = false;
    for (size_t k = 0; k < nseen && !known; k++)
      known = seen[k] == day;
    if (known)
      continue;
    if (nseen < sizeof seen / sizeof seen[0])
      seen[nseen++] = day;
    time_t t = (time_t)(day * 86400);
    struct tm tm;
    char date[32];
    gmtime_r(&t, &tm);
    snprintf(date, sizeof date, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    enum wr w = ensure_partition(s, EVENTS_TABLE, date, msg, msglen);
    if (w != WR_OK)
      return w;
  }
  return WR_OK;
}

/* The spans of events[lo, hi) that carry content, into arena arrays (*k of them, their times within
 * [*tmin, *tmax]). false: out of memory. */
static bool event_spans(struct store *s, const struct ev_batch *eb, size_t lo, size_t hi, const char ***tids,
                        const char ***sids, size_t *k, uint64_t *tmin, uint64_t *tmax)
{
  *tids = gw_arena_alloc(s->arena, sizeof **tids * (hi - lo + 1));
  *sids = gw_arena_alloc(s->arena, sizeof **sids * (hi - lo + 1));
  if (!*tids || !*sids)
    return false;
  *tmin = UINT64_MAX;
  *tmax = 0;
  *k = 0;
  for (size_t i = lo; i < hi; i++) {
    const struct gw_event *e = eb->v[i];
    if (!e->direction)
      continue;
    (*tids)[*k] = e->trace_id;
    (*sids)[(*k)++] = e->span_id;
    if (e->time_ns < *tmin)
      *tmin = e->time_ns;
    if (e->time_ns > *tmax)
      *tmax = e->time_ns;
  }
  return true;
}

/* Merge every span of events[lo, hi) (its stored events, old and new) into its row. */
static enum wr merge_event_spans(struct store *s, const struct ev_batch *eb, size_t lo, size_t hi, char *msg,
                                 size_t msglen)
{
  const char **tids, **sids;
  size_t k;
  uint64_t tmin, tmax;
  if (!event_spans(s, eb, lo, hi, &tids, &sids, &k, &tmin, &tmax)) {
    snprintf(msg, msglen, "out of memory building the span list");
    return WR_OTHER;
  }
  if (!k)
    return WR_OK;
  return merge_events(s, tids, sids, k, tmin, tmax, false, msg, msglen);
}

/* owe() the spans of events[lo, hi) that carry content. */
static void owe_events(struct store *s, const struct ev_batch *eb, size_t lo, size_t hi)
{
  const char **tids, **sids;
  size_t k;
  uint64_t tmin, tmax;
  if (!event_spans(s, eb, lo, hi, &tids, &sids, &k, &tmin, &tmax)) {
    gw_warn(MOD, "out of memory keeping %zu events' merge after commit: it waits for their rows' next batch",
            hi - lo);
    return;
  }
  owe(s, tids, sids, k, tmin, tmax);
}

/* events[lo, hi) and their merge in one transaction. */
static enum wr events_txn(struct store *s, struct ev_batch *eb, size_t lo, size_t hi, char *msg, size_t msglen)
{
  const char *json = events_json(s->arena, eb->v + lo, hi - lo);
  if (!json) {
    snprintf(msg, msglen, "out of memory rendering events");
    return WR_OTHER;
  }
  PGresult *res = NULL;
  enum wr w = begin_store(s, s->begin_xid, msg, msglen);
  if (w != WR_OK)
    return w;
  const char *params[1] = {json};
  if ((w = run(s, EVENTS_INSERT, 1, params, &res, msg, msglen)) != WR_OK)
    goto out;
  if ((w = writers_lock(s, msg, msglen)) != WR_OK)
    goto out;
  if ((w = merge_event_spans(s, eb, lo, hi, msg, msglen)) != WR_OK)
    goto out;
  if ((w = commit_txn(s, msg, msglen)) != WR_OK)
    goto out;
  uint64_t stored = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
  eb->stored += stored;
  eb->duplicate += (hi - lo) - stored;
  gw_metric_add(GW_M_EVENTS_STORED, (int64_t)stored);
  /* (every event of the range, stored now or re-sent: a replay merges them again) */
  if (after_commit(s, merge_event_spans(s, eb, lo, hi, msg, msglen), "merging GenAI events into rows", msg))
    owe_events(s, eb, lo, hi);
out:
  PQclear(res);
  if (w != WR_OK)
    rollback(s);
  return w;
}

/* Store events[lo, hi); on a data error halve down to single events and keep a refused one in
 * ai_interaction_rejects, as for interaction rows. */
static enum wr write_events(struct store *s, struct ev_batch *eb, size_t lo, size_t hi, char *msg, size_t msglen)
{
  enum wr w = events_txn(s, eb, lo, hi, msg, msglen);
  if (w != WR_DATA)
    return w;
  if (hi - lo == 1) {
    char why[256];
    snprintf(why, sizeof why, "%s", msg);
    const struct gw_event *e = eb->v[lo];
    struct gw_sb sb;
    gw_sb_init(&sb, s->arena);
    event_json(&sb, e);
    bool kept;
    if ((w = keep_reject(s, "GenAI event", e->trace_id, e->span_id, gw_sb_finish(&sb), why, false, &kept, msg,
                         msglen)) != WR_OK)
      return w;
    eb->rejected++;
    return WR_OK;
  }
  gw_metric_add(GW_M_PG_SPLITS, 1);
  size_t mid = lo + (hi - lo) / 2;
  if ((w = write_events(s, eb, lo, mid, msg, msglen)) != WR_OK)
    return w;
  return write_events(s, eb, mid, hi, msg, msglen);
}

/* --- what no column can hold ----------------------------------------------------------------------- */

/*
 * Each row is checked against its columns (migrations/0001_init.sql, 0002_rollups.sql, 0004_events.sql)
 * before it is sent: a value no column can hold then costs its own row, kept in ai_interaction_rejects
 * at once, not a rolled-back transaction and a split of its whole batch (issue 11: 5000 such rows took
 * 30 times as long as good ones, and one client could fill the spool for everyone). Per column type:
 * - int (GW_FT_I64: token counts, redaction_count, seq): [-2^31, 2^31 - 1]. normalize keeps token counts
 *   inside it (tokens_out_of_range); this is the net behind it.
 * - timestamptz: uint64 ns since 1970 end in 2554, far inside Postgres' range (4713 BC .. 294276 AD);
 *   start_time is NOT NULL, so a record without one (0) is refused here.
 * - numeric (the costs, unconstrained): every int64 nano-USD amount is exact in it.
 * - double precision: every double, NaN and the infinities included.
 * - text: decode made every string valid UTF-8 without NUL (DESIGN §3), and a C string holds no NUL.
 * - btree index entries hold at most 2704 bytes, and a longer text key that does not compress is refused
 *   (54000): model_id, service_name, session_id and user_id each lead an index of the interactions, their
 *   rollups are keyed on (service_name, provider, model_id, operation) together, and event_name is in the
 *   events' key. KEY_BYTES_MAX leaves room for the entry header and the other key columns.
 * What remains (CHECK constraints on values the gateway makes, jsonb our own renderer writes) is still
 * found by Postgres and the split.
 */
#define KEY_BYTES_MAX 2600
#define BEFORE_SENDING " (found before sending the row)"

/* The first GW_FT_I64 field outside int4, with its reason in why; NULL when all fit. */
static const char *int_overflow(const void *row, const struct gw_field *fields, size_t n, char *why, size_t len)
{
  for (size_t f = 0; f < n; f++) {
    if (fields[f].type != GW_FT_I64)
      continue;
    const struct gw_opt_i64 *v = (const void *)((const char *)row + fields[f].offset);
    if (v->set && (v->v < INT32_MIN || v->v > INT32_MAX)) {
      snprintf(why, len, "22003: %s %lld is out of range for type integer" BEFORE_SENDING, fields[f].column,
               (long long)v->v);
      return fields[f].column;
    }
  }
  return NULL;
}

static size_t slen(const char *s) { return s ? strlen(s) : 0; }

/* A text key longer than an index entry holds: its reason in why, true. */
static bool key_too_long(const char *column, const char *s, char *why, size_t len)
{
  size_t n = slen(s);
  if (n <= KEY_BYTES_MAX)
    return false;
  snprintf(why, len, "54000: %s is %zu bytes, more than the %d an index entry holds" BEFORE_SENDING, column, n,
           KEY_BYTES_MAX);
  return true;
}

/* The column of r that Postgres could not take, with the reason in why; NULL when the row fits. */
static const char *record_unfit(const struct gw_record *r, char *why, size_t len)
{
  const char *col = int_overflow(r, gw_record_fields, gw_record_nfields, why, len);
  if (col)
    return col;
  if (!r->start_ns) {
    snprintf(why, len, "23502: start_time is missing and the column is NOT NULL" BEFORE_SENDING);
    return "start_time";
  }
  static const struct {
    const char *column;
    size_t off;
  } keys[] = {
    {"model_id", offsetof(struct gw_record, model_id)},
    {"service_name", offsetof(struct gw_record, service_name)},
    {"session_id", offsetof(struct gw_record, session_id)},
    {"user_id", offsetof(struct gw_record, user_id)},
  };
  for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
    if (key_too_long(keys[k].column, *(const char *const *)(const void *)((const char *)r + keys[k].off), why, len))
      return keys[k].column;
  size_t roll = slen(r->service_name) + slen(r->provider) + slen(r->model_id) + slen(r->operation) +
                slen(r->agent_name) + slen(r->workflow_name) + slen(r->prompt_name) + slen(r->prompt_version);
  if (roll > KEY_BYTES_MAX) {
    snprintf(why, len,
             "54000: service_name, provider, model_id, operation, agent_name, workflow_name, prompt_name and "
             "prompt_version are %zu bytes together, more than the %d the rollups' key holds" BEFORE_SENDING,
             roll, KEY_BYTES_MAX);
    return "rollup key";
  }
  return NULL;
}

/* One row or event no column can hold, on its way to ai_interaction_rejects. */
struct unfit {
  const char *trace_id, *span_id, *json, *column;
  char why[256];
};

/* Keep v[0, n) in ai_interaction_rejects with one statement (one round trip and one commit for all: a
 * reject must not cost more than a stored row). Should that statement fail for its data, each is kept on
 * its own, as the split path does. one / many name them in log lines. *kept: how many were written now
 * (the others were kept by an earlier attempt at their batch). */
static enum wr keep_unfit(struct store *s, const char *one, const char *many, struct unfit *v, size_t n,
                          uint64_t *kept, char *msg, size_t msglen)
{
  *kept = 0;
  if (!n)
    return WR_OK;
  struct gw_sb sb;
  gw_sb_init(&sb, s->arena);
  gw_sb_putc(&sb, '[');
  for (size_t i = 0; i < n; i++) {
    gw_sb_puts(&sb, i ? ",{\"trace_id\":" : "{\"trace_id\":");
    json_opt(&sb, v[i].trace_id);
    gw_sb_puts(&sb, ",\"span_id\":");
    json_opt(&sb, v[i].span_id);
    gw_sb_puts(&sb, ",\"record\":");
    gw_sb_puts(&sb, v[i].json ? v[i].json : "null");
    gw_sb_puts(&sb, ",\"error\":");
    json_opt(&sb, v[i].why);
    gw_sb_putc(&sb, '}');
  }
  gw_sb_putc(&sb, ']');
  const char *params[1] = {gw_sb_finish(&sb)};
  PGresult *res = NULL;
  enum wr w = WR_DATA;
  if (params[0])
    w = run(s,
            "INSERT INTO ai_interaction_rejects (trace_id, span_id, record, error) SELECT trace_id, span_id, record, "
            "error FROM jsonb_to_recordset($1::jsonb) AS x(trace_id text, span_id text, record jsonb, error text) "
            "ON CONFLICT DO NOTHING",
            1, params, &res, msg, msglen);
  if (w == WR_OK)
    *kept = rows_written(res);
  PQclear(res);
  if (w == WR_DATA) /* each on its own; keep_reject logs one it cannot keep */
    for (size_t i = 0; i < n; i++) {
      bool one_kept;
      if ((w = keep_reject(s, one, v[i].trace_id, v[i].span_id, v[i].json, v[i].why, true, &one_kept, msg,
                           msglen)) != WR_OK)
        return w;
      *kept += one_kept;
    }
  if (w == WR_OK && *kept) /* (none kept now: a replay of their batch, said then) */
    gw_warn(MOD, "%s with a value no column can hold: %llu kept in ai_interaction_rejects without being sent (the "
                 "first: %s)", many, (unsigned long long)*kept, v[0].column);
  return w;
}

/* Take the rows no column can hold out of the batch and keep them in ai_interaction_rejects. */
static enum wr reject_unfit_rows(struct store *s, struct batch *b, char *msg, size_t msglen)
{
  struct unfit *v = NULL;
  size_t keep = 0, nbad = 0;
  for (size_t i = 0; i < b->n; i++) {
    const struct gw_record *r = b->rows[i].rec;
    char why[256];
    const char *col = record_unfit(r, why, sizeof why);
    if (!col) {
      b->rows[keep++] = b->rows[i];
      continue;
    }
    if (!v && !(v = gw_arena_alloc(s->arena, sizeof *v * b->n))) {
      snprintf(msg, msglen, "out of memory setting rejected rows aside");
      return WR_OTHER;
    }
    v[nbad] = (struct unfit){r->trace_id, r->span_id, record_json(s->arena, r), col, ""};
    snprintf(v[nbad++].why, sizeof v->why, "%s", why);
  }
  uint64_t kept;
  enum wr w = keep_unfit(s, "record", "records", v, nbad, &kept, msg, msglen);
  if (w != WR_OK)
    return w;
  b->n = keep;
  b->rejected += nbad;
  gw_metric_add(GW_M_RECORDS_REJECTED_DB, (int64_t)kept);
  return WR_OK;
}

/* The same for GenAI events (their int columns, and event_name in their key). */
static enum wr reject_unfit_events(struct store *s, struct ev_batch *eb, char *msg, size_t msglen)
{
  struct unfit *v = NULL;
  size_t keep = 0, nbad = 0;
  for (size_t i = 0; i < eb->n; i++) {
    const struct gw_event *e = eb->v[i];
    char why[256];
    const char *col = int_overflow(e, gw_event_fields, gw_event_nfields, why, sizeof why);
    if (!col && key_too_long("event_name", e->event_name, why, sizeof why))
      col = "event_name";
    if (!col) {
      eb->v[keep++] = e;
      continue;
    }
    if (!v && !(v = gw_arena_alloc(s->arena, sizeof *v * eb->n))) {
      snprintf(msg, msglen, "out of memory setting rejected events aside");
      return WR_OTHER;
    }
    struct gw_sb sb;
    gw_sb_init(&sb, s->arena);
    event_json(&sb, e);
    v[nbad] = (struct unfit){e->trace_id, e->span_id, gw_sb_finish(&sb), col, ""};
    snprintf(v[nbad++].why, sizeof v->why, "%s", why);
  }
  uint64_t kept;
  enum wr w = keep_unfit(s, "GenAI event", "GenAI events", v, nbad, &kept, msg, msglen);
  if (w != WR_OK)
    return w;
  eb->n = keep;
  eb->rejected += nbad;
  return WR_OK;
}

/* --- trace ids from spans of no row (migrations/0012_trace_ids.sql) --------------------------------- */

/* s as an element of a Postgres array literal: NULL, or quoted with '"' and '\\' escaped. */
static void array_elem(struct gw_sb *sb, const char *s)
{
  if (!s) {
    gw_sb_puts(sb, "NULL");
    return;
  }
  gw_sb_putc(sb, '"');
  for (const char *p = s; *p; p++) {
    if (*p == '"' || *p == '\\')
      gw_sb_putc(sb, '\\');
    gw_sb_putc(sb, *p);
  }
  gw_sb_putc(sb, '"');
}

/* The batch's facts kept, and filled into their traces' stored rows that lack them (in a transaction under
 * the writers' lock when there are several writers: the rows' fill of another writer then runs before or
 * after, seeing these or seen by them). Run after the rows: a row of this batch is then filled too. */
static enum wr write_facts(struct store *s, const struct fact_batch *fb, char *msg, size_t msglen)
{
  if (!fb->n)
    return WR_OK;
  struct gw_sb col[4];
  for (int k = 0; k < 4; k++) {
    gw_sb_init(&col[k], s->arena);
    gw_sb_putc(&col[k], '{');
  }
  uint64_t tmin = UINT64_MAX, tmax = 0;
  for (size_t i = 0; i < fb->n; i++) {
    const struct gw_trace_fact *f = fb->v[i];
    for (int k = 0; k < 4 && i; k++)
      gw_sb_putc(&col[k], ',');
    /* an id longer than an index entry holds could never fill a row (record_unfit): not kept */
    array_elem(&col[0], f->trace_id);
    array_elem(&col[1], slen(f->session_id) <= KEY_BYTES_MAX ? f->session_id : NULL);
    array_elem(&col[2], slen(f->user_id) <= KEY_BYTES_MAX ? f->user_id : NULL);
    gw_sb_putc(&col[3], '"');
    put_time(&col[3], f->start_ns);
    gw_sb_putc(&col[3], '"');
    if (f->start_ns < tmin)
      tmin = f->start_ns;
    if (f->start_ns > tmax)
      tmax = f->start_ns;
  }
  const char *from, *to;
  fill_window(s, tmin, tmax, &from, &to);
  const char *params[6];
  for (int k = 0; k < 4; k++) {
    gw_sb_putc(&col[k], '}');
    params[k] = gw_sb_finish(&col[k]);
  }
  params[4] = from;
  params[5] = to;
  for (int k = 0; k < 6; k++)
    if (!params[k]) {
      snprintf(msg, msglen, "out of memory building the trace ids");
      return WR_OTHER;
    }
  /* Twice: the first run keeps the ids and fills the rows it sees; the second, once the first committed,
   * fills the rows it could not see. A row another gateway stores at the same moment is not seen by the
   * first run if uncommitted when it reads, and that gateway's fill after its own commit (fill_after_commit)
   * does not see these ids if the first run has not committed by then; the second run, reading after
   * both commits, does (as the rows' fill after commit does). Idempotent: the ids are kept already, and
   * only rows lacking them are filled. A failure of the first is answered RETRY (the ids are not kept yet),
   * of the second only logged (as the rows' fill after commit). */
  enum wr w = WR_OK;
  for (int pass = 0; pass < 2 && w == WR_OK; pass++) {
    if (s->lock_sql)
      w = begin(s, msg, msglen);
    if (w == WR_OK)
      w = writers_lock(s, msg, msglen);
    if (w == WR_OK)
      w = run(s,
              "SELECT gw_trace_ids_apply($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz, "
              "$6::timestamptz)",
              6, params, NULL, msg, msglen);
    if (w == WR_OK && s->lock_sql)
      w = run(s, "COMMIT", 0, NULL, NULL, msg, msglen);
    if (w != WR_OK)
      rollback(s);
    else if (pass == 0)
      gw_metric_add(GW_M_PG_TRACE_IDS, (int64_t)fb->n);
    if (w != WR_OK && pass == 1) { /* the ids are kept (first pass): as the rows' fill after commit */
      gw_warn(MOD, "the session/user fill after commit failed (%.60s): some rows may lag until their trace's next "
                   "batch", msg);
      w = WR_OK;
    }
  }
  return w;
}

/* --- the sink ------------------------------------------------------------------------------------- */

/* Decode the traces entries' records and render each as a COPY line; and their trace facts. */
static gw_rc collect(struct store *s, const struct gw_spool_entry *entries, size_t n, struct batch *b,
                     struct fact_batch *fb, uint64_t *undecodable)
{
  struct gw_record **recs = gw_arena_calloc(s->arena, sizeof *recs * (n ? n : 1));
  size_t *counts = gw_arena_calloc(s->arena, sizeof *counts * (n ? n : 1));
  struct gw_trace_fact **facts = gw_arena_calloc(s->arena, sizeof *facts * (n ? n : 1));
  size_t *nfacts = gw_arena_calloc(s->arena, sizeof *nfacts * (n ? n : 1));
  size_t total = 0, ftotal = 0;
  if (!recs || !counts || !facts || !nfacts)
    return GW_ERR(NOMEM);
  for (size_t i = 0; i < n; i++) {
    const struct gw_spool_entry *e = &entries[i];
    /* (an entry without records may still carry facts after its empty list) */
    if (e->signal != GW_SIGNAL_TRACES || !e->records || (e->nrecords == 0 && e->records_len <= 8))
      continue;
    gw_rc rc = gw_records_decode_facts(e->records, e->records_len, s->arena, &recs[i], &counts[i], &facts[i],
                                       &nfacts[i]);
    if (rc == GW_ERR(NOMEM))
      return rc;
    if (rc != GW_OK) {
      /* A corrupt entry is a bug upstream, not a Postgres condition: retrying cannot fix it. */
      gw_error(MOD, "spool entry %llu: records do not decode, %u records skipped", (unsigned long long)e->seq,
               e->nrecords);
      *undecodable += e->nrecords;
      counts[i] = nfacts[i] = 0;
      continue;
    }
    total += counts[i];
    ftotal += nfacts[i];
  }
  b->rows = gw_arena_alloc(s->arena, sizeof *b->rows * (total ? total : 1));
  fb->v = gw_arena_alloc(s->arena, sizeof *fb->v * (ftotal ? ftotal : 1));
  if (!b->rows || !fb->v)
    return GW_ERR(NOMEM);
  for (size_t i = 0; i < n; i++) {
    for (size_t k = 0; k < counts[i]; k++)
      b->rows[b->n++].rec = &recs[i][k];
    for (size_t k = 0; k < nfacts[i]; k++)
      fb->v[fb->n++] = &facts[i][k];
  }
  return GW_OK;
}

/* Run again what after_commit could not (owe): the events' merge for the owed spans, then the fills and
 * summaries of their traces, over the window of all of them. Connected only; at most every OWED_RETRY_NS
 * after a failure. A lost connection is closed here (the caller opens a new one). */
static void pay_owed(struct store *s)
{
  if (!s->nowed || !s->conn || gw_mono_ns() < s->owed_next_mono)
    return;
  size_t n = s->nowed;
  const char **tids = gw_arena_alloc(s->arena, sizeof *tids * n);
  const char **sids = gw_arena_alloc(s->arena, sizeof *sids * n);
  char msg[256] = "out of memory building the span list";
  enum wr w = tids && sids ? WR_OK : WR_OTHER;
  if (w == WR_OK) {
    for (size_t i = 0; i < n; i++) {
      tids[i] = s->owed[i].tid;
      sids[i] = s->owed[i].sid;
    }
    w = merge_events(s, tids, sids, n, s->owed_tmin, s->owed_tmax, true, msg, sizeof msg);
  }
  if (w == WR_OK)
    w = fill_traces(s, tids, n, s->owed_tmin, s->owed_tmax, false, msg, sizeof msg);
  if (w == WR_OK) {
    gw_info(MOD, "the runs after commit owed to %zu spans are done", n);
    s->nowed = 0;
    s->owed_next_mono = 0;
    s->owed_seq = 0;
    return;
  }
  rollback(s);
  if (w == WR_CONN) { /* tried again as soon as a new connection is open */
    gw_warn(MOD, "the runs after commit owed to %zu spans failed again (%.60s): tried again on a new connection",
            n, msg);
    close_conn(s);
    return;
  }
  s->owed_next_mono = gw_mono_ns() + OWED_RETRY_NS;
  gw_warn(MOD, "the runs after commit owed to %zu spans failed again (%.60s): tried again in %llu s", n, msg,
          (unsigned long long)(OWED_RETRY_NS / 1000000000ull));
}

static enum gw_sink_result write_batch(struct store *s, const struct gw_spool_entry *entries, size_t n,
                                       struct gw_sink_outcome *out)
{
  struct batch b = {0};
  struct ev_batch eb = {0};
  struct fact_batch fb = {0};
  uint64_t undecodable = 0, t0 = gw_mono_ns();
  char msg[256];
  enum wr w;

  gw_arena_reset(s->arena);
  gw_sb_init(&s->copy_buf, s->arena);
  if (collect(s, entries, n, &b, &fb, &undecodable) != GW_OK ||
      collect_events(s, entries, n, &eb, &undecodable) != GW_OK) {
    set_error(out, "%s", "out of memory rendering the batch");
    gw_metric_add(GW_M_PG_ERRORS, 1);
    return GW_SINK_RETRY;
  }
  out->dropped = undecodable;
  if (b.n == 0 && eb.n == 0 && fb.n == 0)
    return GW_SINK_OK;
  if (s->conn && PQstatus(s->conn) != CONNECTION_OK)
    close_conn(s);
  if (!s->conn && !open_conn(s, out))
    goto retry;
  pay_owed(s);
  if (!s->conn && !open_conn(s, out))
    goto retry;
  if ((w = reject_unfit_rows(s, &b, msg, sizeof msg)) != WR_OK ||
      (w = reject_unfit_events(s, &eb, msg, sizeof msg)) != WR_OK)
    goto failed;
  /* Interactions first, then events: whichever order they came in, the events' merge then sees the rows
   * of this batch, and the rows' merge saw the events of earlier batches. */
  if (b.n) {
    if ((w = ensure_days(s, &b, 0, b.n, msg, sizeof msg)) != WR_OK)
      goto failed;
    if ((w = write_range(s, &b, 0, b.n, msg, sizeof msg)) != WR_OK)
      goto failed;
  }
  if (eb.n) {
    if ((w = ensure_event_days(s, &eb, msg, sizeof msg)) != WR_OK)
      goto failed;
    if ((w = write_events(s, &eb, 0, eb.n, msg, sizeof msg)) != WR_OK)
      goto failed;
  }
  if ((w = write_facts(s, &fb, msg, sizeof msg)) != WR_OK)
    goto failed;
  out->delivered = b.stored + b.duplicate + eb.stored + eb.duplicate;
  out->dropped += b.rejected + eb.rejected;
  gw_metric_add(GW_M_PG_BATCHES, 1);
  s->last_used_mono = gw_mono_ns();
  gw_metric_add(GW_M_PG_BATCH_SECONDS, (int64_t)(s->last_used_mono - t0));
  gw_hist_observe(GW_H_PG_BATCH, s->last_used_mono - t0);
  return GW_SINK_OK;
failed:
  set_error(out, "Postgres batch failed: %s", msg);
  if (w == WR_CONN)
    close_conn(s);
retry:
  gw_metric_add(GW_M_PG_ERRORS, 1);
  return GW_SINK_RETRY;
}

static void idle(void *self);

/* sink.c calls send with nothing (not idle) while the store says it holds something: idle() then (a lost
 * connection reopened at its pace, pay_owed). Stopping: one last try, at once. */
static void owed_tick(struct store *s)
{
  if (is_stopping(s)) {
    if (s->stop_tried)
      return;
    s->stop_tried = true;
    s->owed_next_mono = 0;
    s->last_attempt_mono = gw_mono_ns() - IDLE_CHECK_NS; /* (reopened now if lost) */
  }
  idle(s);
}

/* The oldest batch still owed to stays in the spool (keep_from), so that a crash or a stop
 * before it is paid replays it; holding, so that sink.c calls again (owed_tick) while idle. Past
 * OWED_HOLD_NS the batch is let go (what is owed is still tried while the gateway runs); stopping, after
 * the last try, the drain may end: the disk spool keeps the batch for the next start. */
static void keep_owed(struct store *s, struct gw_sink_outcome *out)
{
  if (!s->nowed || !s->owed_seq) {
    s->owed_seq = 0;
    return;
  }
  bool stopping = is_stopping(s);
  if (!stopping && gw_mono_ns() - s->owed_since_mono >= OWED_HOLD_NS) {
    gw_warn(MOD, "the runs after commit owed to %zu spans still fail after %llu s: the spool no longer keeps their "
            "batch for them (still tried while the gateway runs)", s->nowed,
            (unsigned long long)(OWED_HOLD_NS / 1000000000ull));
    s->owed_seq = 0;
    return;
  }
  out->keep_from = s->owed_seq;
  out->holding = !(stopping && s->stop_tried);
}

/* The sink's send: write_batch, or (n == 0) a tick for what is owed; then what the spool keeps. */
static enum gw_sink_result send_batch(void *self, const struct gw_spool_entry *entries, size_t n,
                                      struct gw_sink_outcome *out)
{
  struct store *s = self;
  enum gw_sink_result r = GW_SINK_OK;
  if (n) {
    s->batch_seq = entries[0].seq;
    r = write_batch(s, entries, n, out);
    s->batch_seq = 0;
  } else if (s->nowed) {
    owed_tick(s);
  }
  keep_owed(s, out);
  return r;
}

/* While idle: check every IDLE_CHECK_NS that the connection still works (so the gauge tells the truth
 * before the next batch arrives), and try to bring a lost one back at the same pace. */
static void idle(void *self)
{
  struct store *s = self;
  uint64_t now = gw_mono_ns();
  if (s->conn && PQstatus(s->conn) != CONNECTION_OK) {
    gw_warn(MOD, "connection lost");
    close_conn(s);
  }
  if (s->conn && now - s->last_used_mono >= IDLE_CHECK_NS) {
    s->last_used_mono = now;
    PGresult *r = PQexec(s->conn, "");
    ExecStatusType st = PQresultStatus(r);
    PQclear(r);
    if (st != PGRES_EMPTY_QUERY || PQstatus(s->conn) != CONNECTION_OK) {
      gw_warn(MOD, "connection lost while idle");
      close_conn(s);
    }
  }
  if (!s->conn && now - s->last_attempt_mono >= IDLE_CHECK_NS)
    open_conn(s, NULL);
  if (s->nowed && s->conn) {
    gw_arena_reset(s->arena); /* (between batches: nothing of a batch is kept) */
    pay_owed(s);
  }
}

/* Wait on stop_cv (stop_mu held) until the monotonic time `until` or destroy; false: destroying. */
static bool watch_until(struct store *s, uint64_t until)
{
  while (!s->destroying) {
    uint64_t now = gw_mono_ns();
    if (now >= until)
      return true;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* the condition's clock */
    uint64_t wait = until - now;
    if (wait > 100000000ull)
      wait = 100000000ull; /* in slices: CLOCK_REALTIME may jump */
    ts.tv_sec += (time_t)(wait / 1000000000ull);
    ts.tv_nsec += (long)(wait % 1000000000ull);
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&s->stop_cv, &s->stop_mu, &ts);
  }
  return false;
}

#define STOP_SOCKET_AFTER_NS (1000ull * 1000000ull) /* past the deadline: cancel, then this long for it */

static void *watch(void *arg)
{
  struct store *s = arg;
  pthread_mutex_lock(&s->stop_mu);
  if (watch_until(s, s->stop_deadline)) {
    PGcancel *c = s->cancel;
    s->cancel = NULL;
    pthread_mutex_unlock(&s->stop_mu);
    if (c) {
      char why[256];
      if (!PQcancel(c, why, sizeof why))
        gw_warn(MOD, "stopping: cannot cancel the statement in flight: %s", why);
      PQfreeCancel(c);
    }
    pthread_mutex_lock(&s->stop_mu);
    if (watch_until(s, s->stop_deadline + STOP_SOCKET_AFTER_NS) && s->sock >= 0) {
      gw_warn(MOD, "stopping: the statement in flight did not end within the grace; closing the connection "
              "(what it was writing stays in the spool)");
      shutdown(s->sock, SHUT_RDWR);
    }
  }
  pthread_mutex_unlock(&s->stop_mu);
  return NULL;
}

/* The sink starts stopping: a statement still running at the drain deadline (a lock wait, a server that
 * stopped answering) must not hold the exit beyond it. Nothing is lost: a batch not committed stays in
 * the spool. */
static void stopping(void *self, uint64_t deadline)
{
  struct store *s = self;
  pthread_mutex_lock(&s->stop_mu);
  if (!s->watching) {
    s->stop_deadline = deadline;
    s->watching = pthread_create(&s->watcher, NULL, watch, s) == 0;
  }
  pthread_mutex_unlock(&s->stop_mu);
}

static void destroy(void *self)
{
  struct store *s = self;
  if (!s)
    return;
  pthread_mutex_lock(&s->stop_mu);
  s->destroying = true;
  pthread_cond_broadcast(&s->stop_cv);
  bool watching = s->watching;
  pthread_mutex_unlock(&s->stop_mu);
  if (watching)
    pthread_join(s->watcher, NULL);
  if (s->conn)
    close_conn(s);
  gw_arena_destroy(s->arena);
  free(s->dsn);
  free(s->migrations_dir);
  free(s->columns);
  free(s->begin_sql);
  free(s->begin_plain);
  free(s->begin_xid);
  free(s->copy_sql);
  free(s->insert_sql);
  free(s->direct_copy_sql);
  free(s->rollup_sql);
  free(s->lock_sql);
  free(s->owed);
  PQfreeCancel(s->cancel);
  pthread_cond_destroy(&s->stop_cv);
  pthread_mutex_destroy(&s->stop_mu);
  free(s);
}

static char *join_columns(void)
{
  size_t len = 1;
  for (size_t f = 0; f < gw_record_nfields; f++)
    len += strlen(gw_record_fields[f].column) + 2;
  char *cols = gw_malloc(len);
  cols[0] = 0;
  for (size_t f = 0; f < gw_record_nfields; f++) {
    if (f)
      strcat(cols, ", ");
    strcat(cols, gw_record_fields[f].column);
  }
  return cols;
}

static char *sql_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *sql_printf(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *s = gw_malloc((size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

/* FNV-1a, for the staging table's name. */
static uint32_t fnv1a(const char *p)
{
  uint32_t h = 2166136261u;
  for (; *p; p++)
    h = (h ^ (uint8_t)*p) * 16777619u;
  return h;
}

static void *create(const void *conf, struct gw_err *err)
{
  const struct gw_store_conf *c = conf;
  if (!c || !c->dsn) {
    gw_err_set(err, GW_ERR(CONFIG), "postgres: dsn is required");
    return NULL;
  }
  struct store *s = gw_calloc(1, sizeof *s);
  s->dsn = gw_strdup(c->dsn);
  s->migrations_dir = c->migrations_dir ? gw_strdup(c->migrations_dir) : NULL;
  s->retention_days = c->retention_days;
  s->columns = join_columns();
  snprintf(s->staging, sizeof s->staging, STAGING_PREFIX "%08x", fnv1a(s->columns));
  pthread_mutex_init(&s->stop_mu, NULL);
  pthread_cond_init(&s->stop_cv, NULL);
  s->sock = -1;
  char timeout[64] = "";
  if (c->statement_timeout_ms)
    snprintf(timeout, sizeof timeout, "; SET LOCAL statement_timeout = %u", c->statement_timeout_ms);
  s->begin_plain = sql_printf("BEGIN%s", timeout);
  s->begin_xid = sql_printf("BEGIN%s; SELECT txid_current()", timeout);
  /* One round trip: BEGIN, then the table if this server connection has none (to_regclass sends no
   * NOTICE, unlike CREATE ... IF NOT EXISTS). */
  s->begin_sql = sql_printf("BEGIN%s; DO $gw$ BEGIN IF to_regclass('pg_temp.%s') IS NULL THEN "
                            "CREATE TEMP TABLE %s (LIKE " TRACES_TABLE " INCLUDING DEFAULTS) ON COMMIT DELETE ROWS; "
                            "END IF; END $gw$; SELECT txid_current()",
                            timeout, s->staging, s->staging);
  s->copy_sql = sql_printf("COPY %s (%s) FROM STDIN", s->staging, s->columns);
  s->insert_sql = sql_printf("WITH ins AS (INSERT INTO " TRACES_TABLE " (%s) SELECT %s FROM %s"
                             " ON CONFLICT DO NOTHING RETURNING span_id, " ROLLUP_INPUT "), "
                             "roll AS (" ROLLUP_UPSERT ") SELECT trace_id, span_id FROM ins",
                             s->columns, s->columns, s->staging);
  s->direct_copy_sql = sql_printf("COPY " TRACES_TABLE " (%s) FROM STDIN", s->columns);
  s->rollup_sql = gw_strdup(ROLLUP_GROUPS_UPSERT);
  s->arena = gw_arena_create(0);
  gw_arena_keep(s->arena, ARENA_KEEP);
  s->last_attempt_mono = gw_mono_ns() - IDLE_CHECK_NS;
  if (c->writers > 1)
    s->lock_sql = sql_printf("SELECT pg_advisory_xact_lock(%d, %d)", GW_WRITERS_LOCK, (int)c->writers_lock);
  return s;
}

const struct gw_sink_type gw_store_pg_sink = {
  .name = "postgres",
  .create = create,
  .send = send_batch,
  .idle = idle,
  .stopping = stopping,
  .destroy = destroy,
};
