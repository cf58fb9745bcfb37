/*
 * test_store_pg.c: the migration runner and the Postgres writer against a real PostgreSQL.
 * GW_TEST_PG_DSN names a server (scripts/pg.sh start prints one); each run creates its own databases
 * (gw_ut_<pid>, gw_ut_<pid>_m) and drops them at the end. Without GW_TEST_PG_DSN the tests fail.
 */
#include <dirent.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/arena.h"
#include "core/metrics.h"
#include "normalize/record.h"
#include "sink/sink.h"
#include "spool/spool.h"
#include "store/store.h"

#define MIGRATIONS GW_SOURCE_DIR "/migrations"
/* 2025-01-01 00:00:00.123456789 UTC */
#define T0 1735689600123456789ull
#define DAY 86400000000000ull

static PGconn *admin, *db;
static char dbname[64], dsn[512], mdbname[64], mdsn[512];
static struct gw_arena *arena;

/* --- helpers -------------------------------------------------------------------------------------- */

static PGconn *connect_or_fail(const char *conninfo)
{
  PGconn *c = PQconnectdb(conninfo);
  if (PQstatus(c) != CONNECTION_OK)
    fail_msg("cannot connect to the test Postgres: %s", PQerrorMessage(c));
  PQclear(PQexec(c, "SET TIME ZONE 'UTC'"));
  PQclear(PQexec(c, "SET client_min_messages = warning"));
  return c;
}

static void exec_or_fail(PGconn *c, const char *sql)
{
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
    fail_msg("%s: %s", sql, PQresultErrorMessage(r));
  PQclear(r);
}

/* The first value of a query as text, "<NULL>" for SQL NULL (rotating static buffers). */
static const char *qv(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *qv(const char *fmt, ...)
{
  static char bufs[8][8192];
  static int next;
  char sql[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sql, sizeof sql, fmt, ap);
  va_end(ap);
  PGresult *r = PQexec(db, sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
    fail_msg("%s: %s", sql, PQresultErrorMessage(r));
  char *out = bufs[next++ % 8];
  snprintf(out, sizeof bufs[0], "%s", PQgetisnull(r, 0, 0) ? "<NULL>" : PQgetvalue(r, 0, 0));
  PQclear(r);
  return out;
}

static long qn(const char *sql) { return atol(qv("%s", sql)); }

static uint64_t mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void hex_id(char *out, size_t len, unsigned long long v) { snprintf(out, len, "%0*llx", (int)len - 1, v); }

static struct gw_record rec(unsigned long long trace, unsigned long long span, uint64_t start_ns)
{
  struct gw_record r;
  memset(&r, 0, sizeof r);
  hex_id(r.trace_id, sizeof r.trace_id, trace);
  hex_id(r.span_id, sizeof r.span_id, span);
  r.trace_version = "v1";
  r.status = "ok";
  r.start_ns = start_ns;
  r.streaming = -1;
  return r;
}

static struct gw_spool_entry entry(const struct gw_record *recs, size_t n, uint64_t seq)
{
  struct gw_sb sb;
  gw_sb_init(&sb, arena);
  assert_int_equal(gw_records_encode(recs, n, &sb), GW_OK);
  struct gw_spool_entry e;
  memset(&e, 0, sizeof e);
  e.seq = seq;
  e.format = GW_SPOOL_FORMAT;
  e.signal = GW_SIGNAL_TRACES;
  e.nspans = e.nrecords = (uint32_t)n;
  e.records_len = sb.len;
  e.records = gw_sb_finish(&sb);
  return e;
}

static void *store_create(const char *conninfo)
{
  struct gw_store_conf conf = {conninfo, MIGRATIONS, 90, 1, 0, 0};
  struct gw_err err = {0};
  void *s = gw_store_pg_sink.create(&conf, &err);
  assert_non_null(s);
  return s;
}

static enum gw_sink_result send1(void *s, const struct gw_record *recs, size_t n, struct gw_sink_outcome *out)
{
  struct gw_spool_entry e = entry(recs, n, 1);
  memset(out, 0, sizeof *out);
  return gw_store_pg_sink.send(s, &e, 1, out);
}

static long rows(void) { return qn("SELECT count(*) FROM ai_interaction_traces"); }
static long rollup_diff(void);

static void *store_create_timeout(const char *conninfo, uint32_t statement_timeout_ms)
{
  struct gw_store_conf conf = {conninfo, MIGRATIONS, 90, 1, 0, statement_timeout_ms};
  struct gw_err err = {0};
  void *s = gw_store_pg_sink.create(&conf, &err);
  assert_non_null(s);
  return s;
}

/* --- setup ---------------------------------------------------------------------------------------- */

static void make_db(const char *name, char *conninfo, size_t len)
{
  char sql[128];
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", name);
  exec_or_fail(admin, sql);
  snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
  exec_or_fail(admin, sql);
  snprintf(conninfo, len, "host=%s port=%s user=%s dbname=%s", PQhost(admin), PQport(admin), PQuser(admin), name);
}

static int teardown_all(void **state)
{
  char sql[128];
  PQfinish(db);
  db = NULL;
  if (admin) {
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
    exec_or_fail(admin, sql);
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", mdbname);
    exec_or_fail(admin, sql);
  }
  PQfinish(admin);
  admin = NULL;
  gw_arena_destroy(arena);
  arena = NULL;
  return 0;
}

static int setup_all(void **state)
{
  const char *base = getenv("GW_TEST_PG_DSN");
  if (!base || !*base) {
    fprintf(stderr, "GW_TEST_PG_DSN is not set: start a server with scripts/pg.sh start DIR and export "
                    "GW_TEST_PG_DSN=<the DSN it prints>\n");
    return -1;
  }
  admin = connect_or_fail(base);
  snprintf(dbname, sizeof dbname, "gw_ut_%d", (int)getpid());
  snprintf(mdbname, sizeof mdbname, "gw_ut_%d_m", (int)getpid());
  make_db(dbname, dsn, sizeof dsn);
  make_db(mdbname, mdsn, sizeof mdsn);
  db = connect_or_fail(dsn);
  struct gw_err err = {0};
  arena = gw_arena_create(0);
  if (gw_store_migrate(db, MIGRATIONS, &err) != GW_OK) {
    fprintf(stderr, "migrate: %s\n", err.msg);
    teardown_all(state); /* cmocka skips the group teardown when setup fails */
    return -1;
  }
  return 0;
}

static int reset_test(void **state)
{
  gw_arena_reset(arena);
  return 0;
}

/* Each test starts from empty tables, whatever the previous one left. */
static int clean_test(void **state)
{
  exec_or_fail(db, "TRUNCATE ai_interaction_traces, ai_interaction_events, ai_interaction_rejects, trace_metrics_hourly_agents, "
                   "ai_trace_ids");
  return 0;
}

/* --- migrations ----------------------------------------------------------------------------------- */

/* The number of NNNN_name.sql files in MIGRATIONS; *newest (when not NULL) the highest NNNN. */
static int migration_files_newest(int *newest)
{
  DIR *d = opendir(MIGRATIONS);
  assert_non_null(d);
  int n = 0, top = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t len = strlen(e->d_name);
    if (len > 9 && strcmp(e->d_name + len - 4, ".sql") == 0 && e->d_name[4] == '_') {
      n++;
      if (atoi(e->d_name) > top)
        top = atoi(e->d_name);
    }
  }
  closedir(d);
  if (newest)
    *newest = top;
  return n;
}
static int migration_files(void) { return migration_files_newest(NULL); }
static const char *newer_schema_msg(int have)
{
  static char buf[128];
  int newest;
  migration_files_newest(&newest);
  snprintf(buf, sizeof buf, "database schema version %d is newer than this gateway knows (%d)", have, newest);
  return buf;
}

/* The gateway's connections speak UTF-8 whatever the environment or the DSN say. */
static void test_connect_forces_utf8(void **state)
{
  (void)state;
  char why[256], d2[1100];
  setenv("PGCLIENTENCODING", "LATIN1", 1);
  snprintf(d2, sizeof d2, "%s%sclient_encoding=SQL_ASCII", dsn, strchr(dsn, '?') ? "&" : (strstr(dsn, "://") ? "?" : " "));
  const char *dsns[] = {dsn, d2};
  for (int i = 0; i < 2; i++) {
    PGconn *c = gw_pg_connect(dsns[i], "test", why, sizeof why);
    if (!c)
      fail_msg("connect: %s", why);
    PGresult *r = PQexec(c, "SHOW client_encoding");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "UTF8");
    PQclear(r);
    PQfinish(c);
  }
  unsetenv("PGCLIENTENCODING");
}

static void test_migrate_idempotent(void **state)
{
  PGconn *m = connect_or_fail(mdsn);
  struct gw_err err = {0};
  assert_int_equal(gw_store_migrate(m, MIGRATIONS, &err), GW_OK);
  char nfiles[16];
  snprintf(nfiles, sizeof nfiles, "%d", migration_files());
  PGresult *r = PQexec(m, "SELECT count(*), min(version), min(name) FROM schema_migrations");
  assert_string_equal(PQgetvalue(r, 0, 0), nfiles);
  assert_string_equal(PQgetvalue(r, 0, 1), "1");
  assert_string_equal(PQgetvalue(r, 0, 2), "agents"); /* min(name) of 0001_init, 0002_rollups, ..., 0006_agents, ... */
  PQclear(r);
  /* Second run: nothing applied again, no error. */
  assert_int_equal(gw_store_migrate(m, MIGRATIONS, &err), GW_OK);
  r = PQexec(m, "SELECT count(*), to_regclass('ai_interaction_traces') IS NOT NULL, "
                "to_regclass('ai_interaction_rejects') IS NOT NULL, to_regclass('ai_interaction_events') IS NOT NULL, "
                "to_regclass('trace_metrics_hourly') IS NOT NULL FROM schema_migrations");
  assert_string_equal(PQgetvalue(r, 0, 0), nfiles);
  for (int i = 1; i <= 4; i++)
    assert_string_equal(PQgetvalue(r, 0, i), "t");
  PQclear(r);
  PQfinish(m);
}

static void test_migrate_newer_schema(void **state)
{
  PGconn *m = connect_or_fail(mdsn);
  struct gw_err err = {0};
  assert_int_equal(gw_store_migrate(m, MIGRATIONS, &err), GW_OK);
  exec_or_fail(m, "INSERT INTO schema_migrations (version, name) VALUES (9999, 'future')");
  assert_int_equal(gw_store_migrate(m, MIGRATIONS, &err), GW_ERR(CONFIG));
  assert_string_equal(err.msg, newer_schema_msg(9999));
  exec_or_fail(m, "DELETE FROM schema_migrations WHERE version = 9999");
  /* The advisory lock was released: another session can take it. */
  PGresult *r = PQexec(m, "SELECT pg_try_advisory_lock(7456343051642738)");
  assert_string_equal(PQgetvalue(r, 0, 0), "t");
  PQclear(r);
  exec_or_fail(m, "SELECT pg_advisory_unlock(7456343051642738)");
  PQfinish(m);
}

static void write_file(const char *dir, const char *name, const char *text)
{
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void remove_dir(const char *dir, const char *const *names)
{
  char path[512];
  for (; *names; names++) {
    snprintf(path, sizeof path, "%s/%s", dir, *names);
    unlink(path);
  }
  rmdir(dir);
}

/* Each migration is its own transaction: a failing one leaves no trace, earlier ones stay applied. */
static void test_migrate_order_and_failure(void **state)
{
  char dir[] = "/tmp/gw_ut_migXXXXXX";
  assert_non_null(mkdtemp(dir));
  PGconn *m = connect_or_fail(mdsn);
  exec_or_fail(m, "DROP SCHEMA public CASCADE; CREATE SCHEMA public");
  write_file(dir, "0002_second.sql", "INSERT INTO t_first VALUES (2);");
  write_file(dir, "0001_first.sql", "CREATE TABLE t_first (x int); INSERT INTO t_first VALUES (1);");
  write_file(dir, "0003_broken.sql", "CREATE TABLE t_broken (x int); SELECT no_such_function();");
  write_file(dir, "notes.txt", "ignored");
  struct gw_err err = {0};
  assert_int_equal(gw_store_migrate(m, dir, &err), GW_ERR(CONFIG));
  assert_non_null(strstr(err.msg, "0003_broken.sql"));
  assert_non_null(strstr(err.msg, "42883"));
  PGresult *r = PQexec(m, "SELECT (SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations), "
                          "(SELECT string_agg(x::text, ',' ORDER BY x) FROM t_first), "
                          "to_regclass('t_broken') IS NULL");
  assert_string_equal(PQgetvalue(r, 0, 0), "1,2");
  assert_string_equal(PQgetvalue(r, 0, 1), "1,2");
  assert_string_equal(PQgetvalue(r, 0, 2), "t");
  PQclear(r);
  /* Fixed file: only 0003 runs now (0002's insert is not repeated). */
  write_file(dir, "0003_broken.sql", "CREATE TABLE t_broken (x int);");
  assert_int_equal(gw_store_migrate(m, dir, &err), GW_OK);
  r = PQexec(m, "SELECT (SELECT count(*) FROM schema_migrations), (SELECT count(*) FROM t_first)");
  assert_string_equal(PQgetvalue(r, 0, 0), "3");
  assert_string_equal(PQgetvalue(r, 0, 1), "2");
  PQclear(r);
  /* Malformed and duplicate names are refused before anything runs. */
  write_file(dir, "4_bad.sql", "SELECT 1;");
  assert_int_equal(gw_store_migrate(m, dir, &err), GW_ERR(CONFIG));
  assert_non_null(strstr(err.msg, "4_bad.sql: name must be NNNN_name.sql"));
  char bad[600];
  snprintf(bad, sizeof bad, "%s/4_bad.sql", dir);
  unlink(bad);
  write_file(dir, "0003_again.sql", "SELECT 1;");
  assert_int_equal(gw_store_migrate(m, dir, &err), GW_ERR(CONFIG));
  assert_non_null(strstr(err.msg, "same version"));
  assert_int_equal(gw_store_migrate(m, "/nonexistent/dir", &err), GW_ERR(IO));
  exec_or_fail(m, "DROP SCHEMA public CASCADE; CREATE SCHEMA public");
  PQfinish(m);
  remove_dir(dir, (const char *const[]){"0001_first.sql", "0002_second.sql", "0003_broken.sql", "0003_again.sql",
                                        "notes.txt", NULL});
}

/* --- the writer ----------------------------------------------------------------------------------- */

static void test_send_exact_values(void **state)
{
  void *s = store_create(dsn);
  static const char *reasons[] = {"stop", "a \"quoted\",\\ {one}"};
  static const char *kinds[] = {"email", "NULL"};
  struct gw_record r[2];
  r[0] = rec(0xa1, 1, T0);
  struct gw_record *f = &r[0];
  hex_id(f->parent_span_id, sizeof f->parent_span_id, 0xfe);
  f->service_name = "svc";
  f->scope_name = "@opentelemetry/instrumentation-openai";
  f->span_name = "chat gpt-4o";
  f->operation = "chat";
  f->provider = "openai";
  f->request_model = "gpt-4o";
  f->response_model = "gpt-4o-2024-08-06";
  f->model_id = "gpt-4o";
  f->session_id = "sess-1";
  f->user_id = "user-1";
  f->input_tokens = (struct gw_opt_i64){120, true};
  f->output_tokens = (struct gw_opt_i64){30, true};
  f->cache_read_tokens = (struct gw_opt_i64){0, true};
  f->total_tokens = (struct gw_opt_i64){150, true};
  f->input_cost_nusd = (struct gw_opt_i64){300000, true};
  f->output_cost_nusd = (struct gw_opt_i64){1234567890123LL, true};
  f->total_cost_nusd = (struct gw_opt_i64){1, true};
  f->reported_cost_nusd = (struct gw_opt_i64){-1500000000LL, true};
  f->cost_source = "computed";
  f->price_id = "gpt-4o@2024-08-06/defaults-2026-11";
  f->dialect = "semconv";
  gw_record_set_flag(f, GW_FLAG_TOTAL_DERIVED);
  gw_record_set_flag(f, GW_FLAG_BAD_ATTRIBUTE);
  f->end_ns = T0 + 1500000000ull;
  f->duration_ms = (struct gw_opt_f64){1500.25, true};
  f->first_token_latency_ms = (struct gw_opt_f64){0.125, true};
  f->streaming = 1;
  f->status = "error";
  f->error_code = "429";
  f->error_message = "rate limited\tretry";
  f->finish_reasons = (struct gw_strv){reasons, 2};
  f->prompt_content = "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"hi\\nthere\"}]}]";
  f->system_prompt = "line1\n\tline2 \\ end\r";
  f->response_content = "[]";
  memcpy(f->prompt_hash, "0123456789abcdef", 17);
  f->parameters = "{\"temperature\": 0.5, \"max_tokens\": 100}";
  f->attributes = "{\"k\": \"v\\\\w\"}";
  f->resource = "{}";
  f->redaction_count = (struct gw_opt_i64){2, true};
  f->redacted_kinds = (struct gw_strv){kinds, 2};
  /* The second record: everything unknown. */
  r[1] = rec(0xa2, 2, T0 + 5);
  r[1].trace_version = NULL;
  r[1].status = NULL;

  int64_t stored0 = gw_metric_get(GW_M_RECORDS_STORED), batches0 = gw_metric_get(GW_M_PG_BATCHES);
  struct gw_sink_outcome out;
  assert_int_equal(send1(s, r, 2, &out), GW_SINK_OK);
  assert_int_equal(out.delivered, 2);
  assert_int_equal(gw_metric_get(GW_M_RECORDS_STORED) - stored0, 2);
  assert_int_equal(gw_metric_get(GW_M_PG_BATCHES) - batches0, 1);
  assert_true(gw_metric_get(GW_M_PG_BATCH_SECONDS) > 0);
  assert_int_equal(gw_metric_get(GW_M_PG_CONNECTED), 1);

  const char *w = "FROM ai_interaction_traces WHERE span_id = '0000000000000001'";
  struct {
    const char *expr, *want;
  } cases[] = {
    {"trace_id", "000000000000000000000000000000a1"},
    {"parent_span_id", "00000000000000fe"},
    {"trace_version", "v1"},
    {"service_name", "svc"},
    {"scope_name", "@opentelemetry/instrumentation-openai"},
    {"span_name", "chat gpt-4o"},
    {"operation", "chat"},
    {"provider", "openai"},
    {"request_model", "gpt-4o"},
    {"response_model", "gpt-4o-2024-08-06"},
    {"model_id", "gpt-4o"},
    {"session_id", "sess-1"},
    {"user_id", "user-1"},
    {"input_tokens", "120"},
    {"output_tokens", "30"},
    {"cache_read_tokens", "0"},
    {"cache_write_tokens", "<NULL>"},
    {"reasoning_tokens", "<NULL>"},
    {"total_tokens", "150"},
    {"input_cost_usd", "0.000300000"},
    {"output_cost_usd", "1234.567890123"},
    {"total_cost_usd", "0.000000001"},
    {"reported_cost_usd", "-1.500000000"},
    {"pg_typeof(input_cost_usd)::text", "numeric"},
    {"cost_source", "computed"},
    {"price_id", "gpt-4o@2024-08-06/defaults-2026-11"},
    {"dialect", "semconv"},
    {"enrichment_flags::text", "{total_derived,bad_attribute}"},
    {"start_time::text", "2025-01-01 00:00:00.123456+00"},
    {"end_time::text", "2025-01-01 00:00:01.623456+00"},
    {"duration_ms::text", "1500.25"},
    {"first_token_latency_ms::text", "0.125"},
    {"streaming_enabled::text", "true"},
    {"status", "error"},
    {"error_code", "429"},
    {"error_message", "rate limited\tretry"},
    {"array_length(finish_reasons, 1)::text", "2"},
    {"finish_reasons[1]", "stop"},
    {"finish_reasons[2]", "a \"quoted\",\\ {one}"},
    {"prompt_content", "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"hi\\nthere\"}]}]"},
    {"system_prompt", "line1\n\tline2 \\ end\r"},
    {"response_content", "[]"},
    {"prompt_hash", "0123456789abcdef"},
    {"parameters->>'temperature'", "0.5"},
    {"parameters::text", "{\"max_tokens\": 100, \"temperature\": 0.5}"},
    {"attributes->>'k'", "v\\w"},
    {"resource::text", "{}"},
    {"redaction_count::text", "2"},
    {"redacted_kinds[2]", "NULL"},
    {"redacted_kinds[2] IS NOT NULL", "t"},
    {"created_at IS NOT NULL", "t"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *got = qv("SELECT %s %s", cases[i].expr, w);
    if (strcmp(got, cases[i].want) != 0)
      fail_msg("%s: got [%s], want [%s]", cases[i].expr, got, cases[i].want);
  }
  /* Every column but the key, start_time, created_at and the always-known flags is NULL when unknown. */
  const char *w2 = "FROM ai_interaction_traces WHERE span_id = '0000000000000002'";
  for (size_t f2 = 0; f2 < gw_record_nfields; f2++) {
    const char *col = gw_record_fields[f2].column;
    if (!strcmp(col, "trace_id") || !strcmp(col, "span_id") || !strcmp(col, "start_time") ||
        !strcmp(col, "enrichment_flags"))
      continue;
    const char *got = qv("SELECT %s IS NULL %s", col, w2);
    if (strcmp(got, "t") != 0)
      fail_msg("%s should be NULL", col);
  }
  assert_string_equal(qv("SELECT enrichment_flags::text %s", w2), "{}");
  assert_string_equal(qv("SELECT start_time::text %s", w2), "2025-01-01 00:00:00.123456+00");
  gw_store_pg_sink.destroy(s);
}

static void test_resend_no_duplicates(void **state)
{
  void *s = store_create(dsn);
  struct gw_record r[3] = {rec(0xb1, 1, T0), rec(0xb1, 2, T0 + 1000), rec(0xb2, 1, T0 + 2000)};
  struct gw_sink_outcome out;
  assert_int_equal(send1(s, r, 3, &out), GW_SINK_OK);
  assert_int_equal(rows(), 3);
  int64_t stored0 = gw_metric_get(GW_M_RECORDS_STORED), dup0 = gw_metric_get(GW_M_RECORDS_DUPLICATE);
  assert_int_equal(send1(s, r, 3, &out), GW_SINK_OK);
  assert_int_equal(out.delivered, 3);
  assert_int_equal(rows(), 3);
  assert_int_equal(gw_metric_get(GW_M_RECORDS_STORED) - stored0, 0);
  assert_int_equal(gw_metric_get(GW_M_RECORDS_DUPLICATE) - dup0, 3);
  /* A mixed batch: one new row, one re-sent. */
  struct gw_record m[2] = {r[0], rec(0xb2, 2, T0 + 3000)};
  assert_int_equal(send1(s, m, 2, &out), GW_SINK_OK);
  assert_int_equal(rows(), 4);
  assert_int_equal(gw_metric_get(GW_M_RECORDS_STORED) - stored0, 1);
  assert_int_equal(gw_metric_get(GW_M_RECORDS_DUPLICATE) - dup0, 4);
  gw_store_pg_sink.destroy(s);
}

static void test_session_user_filled_across_trace(void **state)
{
  void *s = store_create(dsn);
  struct gw_sink_outcome out;
  /* Trace c1: the span with the ids comes first. Trace c2: it comes last. */
  struct gw_record a1 = rec(0xc1, 1, T0), b1 = rec(0xc1, 2, T0 + 1000);
  a1.session_id = "S1";
  a1.user_id = "U1";
  struct gw_record a2 = rec(0xc2, 1, T0 + 50), b2 = rec(0xc2, 2, T0 + 60), c2 = rec(0xc2, 3, T0 + 70);
  b2.session_id = "S2";
  c2.user_id = "U2";
  struct gw_record other = rec(0xc3, 1, T0);
  /* Within one batch too: c4's second span fills its first. */
  struct gw_record d1 = rec(0xc4, 1, T0), d2 = rec(0xc4, 2, T0 + 1);
  d2.user_id = "U4";
  struct gw_record batch1[] = {a1, a2, other, d1, d2};
  assert_int_equal(send1(s, batch1, 5, &out), GW_SINK_OK);
  struct gw_record batch2[] = {b1, b2};
  assert_int_equal(send1(s, batch2, 2, &out), GW_SINK_OK);
  struct gw_record batch3[] = {c2};
  assert_int_equal(send1(s, batch3, 1, &out), GW_SINK_OK);
#define IDS(tr, sp) \
  qv("SELECT coalesce(session_id, '-') || '/' || coalesce(user_id, '-') FROM ai_interaction_traces " \
     "WHERE trace_id = '%032x' AND span_id = '%016x'", tr, sp)
  assert_string_equal(IDS(0xc1, 1), "S1/U1");
  assert_string_equal(IDS(0xc1, 2), "S1/U1");
  assert_string_equal(IDS(0xc2, 1), "S2/U2");
  assert_string_equal(IDS(0xc2, 2), "S2/U2");
  assert_string_equal(IDS(0xc2, 3), "S2/U2");
  assert_string_equal(IDS(0xc3, 1), "-/-");
  assert_string_equal(IDS(0xc4, 1), "-/U4");
  assert_string_equal(IDS(0xc4, 2), "-/U4");
#undef IDS
  gw_store_pg_sink.destroy(s);
}

static void test_bad_rows_rejected_rest_stored(void **state)
{
  void *s = store_create(dsn);
  struct gw_record r[7];
  for (int i = 0; i < 7; i++)
    r[i] = rec(0xd1, (unsigned long long)i + 1, T0 + (uint64_t)i);
  memcpy(r[2].trace_id, "NOT-HEX-NOT-HEX-NOT-HEX-NOT-HEX!", 33); /* violates the trace_id CHECK */
  r[5].attributes = "{\"unterminated\": ";                         /* not JSON */
  r[6].input_tokens = (struct gw_opt_i64){1LL << 40, true};       /* out of int range */
  int64_t rej0 = gw_metric_get(GW_M_RECORDS_REJECTED_DB);
  struct gw_sink_outcome out;
  assert_int_equal(send1(s, r, 7, &out), GW_SINK_OK);
  assert_int_equal(rows(), 4);
  assert_int_equal(out.dropped, 3);
  assert_int_equal(gw_metric_get(GW_M_RECORDS_REJECTED_DB) - rej0, 3);
  assert_int_equal(qn("SELECT count(*) FROM ai_interaction_rejects"), 3);
  assert_string_equal(qv("SELECT error FROM ai_interaction_rejects WHERE trace_id = 'NOT-HEX-NOT-HEX-NOT-HEX-NOT-HEX!'"),
                      "23514: new row for relation \"ai_interaction_traces_p20250101\" violates check constraint "
                      "\"ai_interaction_traces_trace_id_check\"");
  assert_string_equal(qv("SELECT left(error, 6) FROM ai_interaction_rejects WHERE span_id = '0000000000000006'"),
                      "22P02:");
  assert_string_equal(qv("SELECT left(error, 6) FROM ai_interaction_rejects WHERE span_id = '0000000000000007'"),
                      "22003:");
  /* The record is kept whole as jsonb, the refused JSON as a string. */
  assert_string_equal(qv("SELECT record->>'attributes' FROM ai_interaction_rejects WHERE span_id = '0000000000000006'"),
                      "{\"unterminated\": ");
  assert_string_equal(qv("SELECT record->>'start_time' FROM ai_interaction_rejects WHERE span_id = '0000000000000006'"),
                      "2025-01-01 00:00:00.123456+00");
  assert_string_equal(qv("SELECT record->>'input_tokens' FROM ai_interaction_rejects WHERE span_id = '0000000000000007'"),
                      "1099511627776");
  assert_string_equal(qv("SELECT record->'enrichment_flags'::text FROM ai_interaction_rejects "
                         "WHERE span_id = '0000000000000007'"),
                      "[]");
  assert_string_equal(qv("SELECT string_agg(span_id, ',' ORDER BY span_id) FROM ai_interaction_traces"),
                      "0000000000000001,0000000000000002,0000000000000004,0000000000000005");
  /* The rolled-back attempts left nothing in the rollups: the 4 stored rows, counted once. */
  assert_int_equal(qn("SELECT sum(total_requests) FROM trace_metrics_hourly"), 4);
  assert_int_equal(rollup_diff(), 0);
  /* The batch written again (a replay after a restart before the spool's commit): the refused rows are
   * refused again but kept once (migrations/0014), the stored ones are duplicates. */
  assert_int_equal(send1(s, r, 7, &out), GW_SINK_OK);
  assert_int_equal(rows(), 4);
  assert_int_equal(qn("SELECT count(*) FROM ai_interaction_rejects"), 3);
  assert_int_equal(qn("SELECT sum(total_requests) FROM trace_metrics_hourly"), 4);
  gw_store_pg_sink.destroy(s);
}

/* Fd 2 into a file from stderr_capture() to stderr_count(), which puts it back and counts the lines of
 * what was written there that hold needle (the gateway's log lines). */
static int saved_stderr = -1;
static char captured_path[64];

static void stderr_capture(void)
{
  fflush(stderr);
  snprintf(captured_path, sizeof captured_path, "/tmp/gw_ut_stderr_%d", (int)getpid());
  int fd = open(captured_path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
  assert_true(fd >= 0);
  saved_stderr = dup(2);
  assert_true(saved_stderr >= 0);
  assert_true(dup2(fd, 2) == 2);
  close(fd);
}

static long stderr_count(const char *needle)
{
  fflush(stderr);
  dup2(saved_stderr, 2);
  close(saved_stderr);
  FILE *f = fopen(captured_path, "r");
  assert_non_null(f);
  char line[4096];
  long n = 0;
  while (fgets(line, sizeof line, f)) {
    fputs(line, stderr); /* still shown */
    n += strstr(line, needle) != NULL;
  }
  fclose(f);
  unlink(captured_path);
  return n;
}


/* A refused row is counted in genai_gateway_records_rejected_db_total once, as it is kept once
 * (migrations/0014): its batch written again (a later step of it failed and it is retried, or a replay
 * after a restart before the spool's commit) finds it kept already and does not count it again. Both
 * ways a row is refused: by Postgres (found by the split) and before sending (no column can hold it). */
static void test_rejects_counted_once(void **state)
{
  void *s = store_create(dsn);
  struct gw_record r[3];
  for (int i = 0; i < 3; i++)
    r[i] = rec(0x5201, (unsigned long long)i + 1, T0 + (uint64_t)i);
  r[1].status = "bogus";                                          /* violates the status CHECK */
  r[2].input_tokens = (struct gw_opt_i64){3000000000ll, true}; /* no int column holds it */
  struct gw_event ev;
  memset(&ev, 0, sizeof ev);
  memcpy(ev.trace_id, r[0].trace_id, sizeof ev.trace_id);
  memcpy(ev.span_id, r[0].span_id, sizeof ev.span_id);
  ev.time_ns = T0;
  ev.event_name = "gen_ai.user.message";
  ev.seq = (struct gw_opt_i64){0, true};
  ev.direction = "input";
  ev.role = "user";
  ev.content = "{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"hi\"}]}";
  struct gw_spool_entry e[2] = {entry(r, 3, 1)};
  struct gw_sb sb;
  gw_sb_init(&sb, arena);
  assert_int_equal(gw_events_encode(&ev, 1, &sb), GW_OK);
  e[1].seq = 2;
  e[1].format = GW_SPOOL_FORMAT;
  e[1].signal = GW_SIGNAL_LOGS;
  e[1].flags = GW_ENTRY_HAS_GENAI;
  e[1].nspans = e[1].nrecords = 1;
  e[1].records_len = sb.len;
  e[1].records = gw_sb_finish(&sb);
  int64_t rej0 = gw_metric_get(GW_M_RECORDS_REJECTED_DB);
  struct gw_sink_outcome out;
  /* The events cannot be stored yet: the batch is retried after its rows and rejects were written. */
  exec_or_fail(db, "CREATE FUNCTION gw_test_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$BEGIN RAISE EXCEPTION 'refused for the test' USING ERRCODE = '40001'; END$$");
  exec_or_fail(db, "CREATE TRIGGER gw_test_refuse BEFORE INSERT ON ai_interaction_events "
                   "FOR EACH STATEMENT EXECUTE FUNCTION gw_test_refuse()");
  memset(&out, 0, sizeof out);
  enum gw_sink_result res = gw_store_pg_sink.send(s, e, 2, &out);
  exec_or_fail(db, "DROP TRIGGER gw_test_refuse ON ai_interaction_events");
  exec_or_fail(db, "DROP FUNCTION gw_test_refuse()");
  assert_int_equal(res, GW_SINK_RETRY);
  assert_int_equal(qn("SELECT count(*) FROM ai_interaction_rejects"), 2);
  assert_int_equal(gw_metric_get(GW_M_RECORDS_REJECTED_DB) - rej0, 2);
  /* (nor is it said again: the log names the rows kept now) */
  stderr_capture();
  memset(&out, 0, sizeof out);
  enum gw_sink_result res2 = gw_store_pg_sink.send(s, e, 2, &out);
  int64_t rej2 = gw_metric_get(GW_M_RECORDS_REJECTED_DB) - rej0;
  /* And once more, as a replay after a restart. */
  memset(&out, 0, sizeof out);
  enum gw_sink_result res3 = gw_store_pg_sink.send(s, e, 2, &out);
  long said = stderr_count("ai_interaction_rejects");
  assert_int_equal(res2, GW_SINK_OK);
  assert_int_equal(rej2, 2);
  assert_int_equal(res3, GW_SINK_OK);
  assert_int_equal(said, 0);
  assert_int_equal(gw_metric_get(GW_M_RECORDS_REJECTED_DB) - rej0, 2);
  assert_int_equal(qn("SELECT count(*) FROM ai_interaction_rejects"), 2);
  assert_int_equal(rows(), 1);
  assert_int_equal(qn("SELECT count(*) FROM ai_interaction_events"), 1);
  gw_store_pg_sink.destroy(s);
}

/* A GenAI event Postgres refuses (here a direction outside its CHECK) stands alone after the halving and
 * is kept in ai_interaction_rejects with the reason; the other events of the entry are stored. */
static void test_bad_event_rejected_rest_stored(void **state)
{
  void *s = store_create(dsn);
  struct gw_event ev[4];
  memset(ev, 0, sizeof ev);
  for (int i = 0; i < 4; i++) {
    snprintf(ev[i].trace_id, sizeof ev[i].trace_id, "%032x", 0xe1);
    snprintf(ev[i].span_id, sizeof ev[i].span_id, "%016x", i + 1);
    ev[i].time_ns = T0 + (uint64_t)i;
    ev[i].event_name = "gen_ai.user.message";
    ev[i].seq = (struct gw_opt_i64){i, true};
    ev[i].role = "user";
    ev[i].direction = "input";
    ev[i].content = "{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"hi\"}]}";
  }
  ev[2].direction = "sideways"; /* violates the direction CHECK */
  struct gw_sb sb;
  gw_sb_init(&sb, arena);
  assert_int_equal(gw_events_encode(ev, 4, &sb), GW_OK);
  struct gw_spool_entry e;
  memset(&e, 0, sizeof e);
  e.seq = 1;
  e.format = GW_SPOOL_FORMAT;
  e.signal = GW_SIGNAL_LOGS;
  e.flags = GW_ENTRY_HAS_GENAI;
  e.nspans = e.nrecords = 4;
  e.records_len = sb.len;
  e.records = gw_sb_finish(&sb);
  struct gw_sink_outcome out;
  memset(&out, 0, sizeof out);
  assert_int_equal(gw_store_pg_sink.send(s, &e, 1, &out), GW_SINK_OK);
  assert_int_equal(qn("SELECT count(*) FROM ai_interaction_events"), 3);
  assert_int_equal(qn("SELECT count(*) FROM ai_interaction_rejects"), 1);
  assert_string_equal(qv("SELECT span_id FROM ai_interaction_rejects"), "0000000000000003");
  assert_string_equal(qv("SELECT left(error, 6) FROM ai_interaction_rejects"), "23514:");
  assert_string_equal(qv("SELECT record->>'direction' FROM ai_interaction_rejects"), "sideways");
  gw_store_pg_sink.destroy(s);
  exec_or_fail(db, "DROP TABLE ai_interaction_events_p20250101"); /* test_partitions_for_any_day creates it */
}

/* Text of n pseudo-random letters and digits (it does not compress, as a real id would not). */
static char *noise(size_t n, unsigned seed)
{
  char *t = gw_arena_alloc(arena, n + 1);
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    t[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[(x >> 16) % 36];
  }
  t[n] = 0;
  return t;
}

/* Issue 11 item 4: a row with a value no column can hold (an int past 2^31 - 1, no start time, an index
 * key longer than a btree entry holds) used to fail the whole batch's transaction and cost a split down
 * to itself. The writer now checks each row against its columns first: such rows go to
 * ai_interaction_rejects at once, with the reason, and the rest of the batch is written in one go. */
static void test_issue11_unfit_rows_no_split(void **state)
{
  enum { N = 300 };
  void *s = store_create(dsn);
  struct gw_record *r = calloc(N, sizeof *r);
  for (int i = 0; i < N; i++) {
    r[i] = rec(0x1100 + (unsigned)i % 9, (unsigned long long)i + 1, T0 + (uint64_t)i * 1000000ull);
    r[i].service_name = "svc";
    r[i].operation = "chat";
    r[i].model_id = "gpt-4o";
    r[i].input_tokens = (struct gw_opt_i64){100, true};
  }
  r[10].input_tokens = (struct gw_opt_i64){3000000000ll, true};
  r[50].redaction_count = (struct gw_opt_i64){-3000000000ll, true};
  r[100].start_ns = 0;
  r[150].session_id = noise(3000, 1);
  r[200].model_id = noise(2700, 2);
  r[250].service_name = noise(1000, 3); /* each alone fits an index; together not the rollups' key */
  r[250].provider = noise(1000, 4);
  r[250].model_id = noise(700, 5);
  /* The largest keys that fit are stored. */
  r[260].user_id = noise(2600, 6);
  r[270].service_name = noise(1300, 7);
  r[270].provider = noise(1200, 8);
  r[270].model_id = "m";
  r[270].operation = "chat";
  r[280].input_tokens = (struct gw_opt_i64){INT32_MAX, true};
  r[290].cache_read_tokens = (struct gw_opt_i64){INT32_MIN, true};

  int64_t splits0 = gw_metric_get(GW_M_PG_SPLITS), rej0 = gw_metric_get(GW_M_RECORDS_REJECTED_DB);
  struct gw_sink_outcome out;
  assert_int_equal(send1(s, r, N, &out), GW_SINK_OK);
  assert_int_equal(gw_metric_get(GW_M_PG_SPLITS) - splits0, 0);
  assert_int_equal(rows(), N - 6);
  assert_int_equal(out.dropped, 6);
  assert_int_equal(gw_metric_get(GW_M_RECORDS_REJECTED_DB) - rej0, 6);
  assert_string_equal(qv("SELECT string_agg(span_id || ' ' || error, E'\\n' ORDER BY span_id) FROM ai_interaction_rejects"),
                      "000000000000000b 22003: input_tokens 3000000000 is out of range for type integer (found before "
                      "sending the row)\n"
                      "0000000000000033 22003: redaction_count -3000000000 is out of range for type integer (found "
                      "before sending the row)\n"
                      "0000000000000065 23502: start_time is missing and the column is NOT NULL (found before sending "
                      "the row)\n"
                      "0000000000000097 54000: session_id is 3000 bytes, more than the 2600 an index entry holds (found "
                      "before sending the row)\n"
                      "00000000000000c9 54000: model_id is 2700 bytes, more than the 2600 an index entry holds (found "
                      "before sending the row)\n"
                      "00000000000000fb 54000: service_name, provider, model_id, operation, agent_name, workflow_name, "
                      "prompt_name and prompt_version are 2704 bytes together, "
                      "more than the 2600 the rollups' key holds (found before sending the row)");
  /* Kept whole, as the split path keeps a refused row. */
  assert_string_equal(qv("SELECT record->>'input_tokens' FROM ai_interaction_rejects WHERE span_id = '000000000000000b'"),
                      "3000000000");
  assert_string_equal(qv("SELECT length(record->>'session_id') FROM ai_interaction_rejects "
                         "WHERE span_id = '0000000000000097'"),
                      "3000");
  assert_string_equal(qv("SELECT length(user_id) FROM ai_interaction_traces WHERE span_id = '0000000000000105'"), "2600");
  assert_string_equal(qv("SELECT input_tokens FROM ai_interaction_traces WHERE span_id = '0000000000000119'"),
                      "2147483647");
  assert_int_equal(qn("SELECT sum(total_requests) FROM trace_metrics_hourly"), N - 6);
  assert_int_equal(rollup_diff(), 0);
  free(r);
  gw_store_pg_sink.destroy(s);
}

/* The same for GenAI events: seq and redaction_count are int columns, event_name is in their key. */
static void test_issue11_unfit_events_no_split(void **state)
{
  enum { N = 40 };
  void *s = store_create(dsn);
  struct gw_event ev[N];
  memset(ev, 0, sizeof ev);
  for (int i = 0; i < N; i++) {
    snprintf(ev[i].trace_id, sizeof ev[i].trace_id, "%032x", 0xe2);
    snprintf(ev[i].span_id, sizeof ev[i].span_id, "%016x", i + 1);
    ev[i].time_ns = T0 + (uint64_t)i;
    ev[i].event_name = "gen_ai.user.message";
    ev[i].seq = (struct gw_opt_i64){i, true};
    ev[i].role = "user";
    ev[i].direction = "input";
    ev[i].content = "{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"hi\"}]}";
  }
  ev[5].seq = (struct gw_opt_i64){3000000000ll, true};
  ev[15].redaction_count = (struct gw_opt_i64){1ll << 40, true};
  ev[25].event_name = noise(3000, 9);
  struct gw_sb sb;
  gw_sb_init(&sb, arena);
  assert_int_equal(gw_events_encode(ev, N, &sb), GW_OK);
  struct gw_spool_entry e;
  memset(&e, 0, sizeof e);
  e.seq = 1;
  e.format = GW_SPOOL_FORMAT;
  e.signal = GW_SIGNAL_LOGS;
  e.flags = GW_ENTRY_HAS_GENAI;
  e.nspans = e.nrecords = N;
  e.records_len = sb.len;
  e.records = gw_sb_finish(&sb);
  int64_t splits0 = gw_metric_get(GW_M_PG_SPLITS);
  struct gw_sink_outcome out;
  memset(&out, 0, sizeof out);
  assert_int_equal(gw_store_pg_sink.send(s, &e, 1, &out), GW_SINK_OK);
  assert_int_equal(gw_metric_get(GW_M_PG_SPLITS) - splits0, 0);
  assert_int_equal(qn("SELECT count(*) FROM ai_interaction_events"), N - 3);
  assert_int_equal(out.dropped, 3);
  assert_string_equal(qv("SELECT string_agg(span_id || ' ' || split_part(error, ' ', 1) || split_part(error, ' ', 2), "
                         "',' ORDER BY span_id) FROM ai_interaction_rejects"),
                      "0000000000000006 22003:seq,0000000000000010 22003:redaction_count,000000000000001a 54000:event_name");
  assert_string_equal(qv("SELECT record->>'seq' FROM ai_interaction_rejects WHERE span_id = '0000000000000006'"),
                      "3000000000");
  gw_store_pg_sink.destroy(s);
  exec_or_fail(db, "DROP TABLE ai_interaction_events_p20250101"); /* test_partitions_for_any_day creates it */
}

static void test_partitions_for_any_day(void **state)
{
  void *s = store_create(dsn);
  /* 1999-12-31 23:59:59.999999, three consecutive days, 2100-06-01. */
  uint64_t t1999 = 946684799999999000ull, t2100 = 4115491200000000000ull;
  struct gw_record r[] = {rec(0xe1, 1, t1999), rec(0xe1, 2, T0), rec(0xe1, 3, T0 + DAY), rec(0xe1, 4, T0 + 2 * DAY),
                          rec(0xe2, 1, t2100)};
  struct gw_sink_outcome out;
  assert_int_equal(send1(s, r, 5, &out), GW_SINK_OK);
  assert_int_equal(rows(), 5);
  const char *parts[] = {"p19991231", "p20250101", "p20250102", "p20250103", "p21000601"};
  for (size_t i = 0; i < 5; i++) {
    assert_string_equal(qv("SELECT count(*) FROM ai_interaction_traces_%s", parts[i]), "1");
    /* Bounds are UTC midnights. */
    assert_string_equal(qv("SELECT pg_get_expr(relpartbound, oid) LIKE '%%00:00:00+00%%' FROM pg_class "
                           "WHERE relname = 'ai_interaction_traces_%s'",
                           parts[i]),
                        "t");
  }
  assert_string_equal(qv("SELECT start_time::text FROM ai_interaction_traces_p19991231"),
                      "1999-12-31 23:59:59.999999+00");
  /* gw_ensure_partition is idempotent and works for the events table too. */
  assert_string_equal(qv("SELECT gw_ensure_partition('ai_interaction_traces', '2025-01-01')"), "f");
  assert_string_equal(qv("SELECT gw_ensure_partition('ai_interaction_events', '2025-01-01')"), "t");
  assert_string_equal(qv("SELECT gw_ensure_partition('ai_interaction_events', '2025-01-01')"), "f");
  /* A partition dropped behind the writer's back (retention) is created again. */
  exec_or_fail(db, "DROP TABLE ai_interaction_traces_p20250102");
  struct gw_record again[] = {rec(0xe3, 1, T0), rec(0xe3, 2, T0 + DAY)};
  assert_int_equal(send1(s, again, 2, &out), GW_SINK_OK);
  assert_int_equal(qn("SELECT count(*) FROM ai_interaction_traces_p20250102"), 1);
  assert_int_equal(qn("SELECT count(*) FROM ai_interaction_rejects"), 0);
  /* The same for a batch of one row: re-checked and stored, not taken for a bad row. */
  exec_or_fail(db, "DROP TABLE ai_interaction_traces_p20250102");
  struct gw_record one = rec(0xe3, 3, T0 + DAY);
  assert_int_equal(send1(s, &one, 1, &out), GW_SINK_OK);
  assert_int_equal(qn("SELECT count(*) FROM ai_interaction_traces_p20250102"), 1);
  assert_int_equal(qn("SELECT count(*) FROM ai_interaction_rejects"), 0);
  gw_store_pg_sink.destroy(s);
}

static void test_entries_filtered(void **state)
{
  void *s = store_create(dsn);
  struct gw_record r1 = rec(0xf1, 1, T0), r2 = rec(0xf1, 2, T0), r3 = rec(0xf1, 3, T0);
  struct gw_spool_entry e[4];
  e[0] = entry(&r1, 1, 1);
  e[1] = entry(&r2, 1, 2);
  e[1].signal = GW_SIGNAL_LOGS; /* plain log records: no interaction, no GenAI event */
  e[1].nrecords = 0;
  e[2] = entry(&r3, 1, 3);
  e[2].records_len -= 3; /* truncated: does not decode */
  e[3] = entry(NULL, 0, 4);
  e[3].nrecords = 0;
  struct gw_sink_outcome out;
  memset(&out, 0, sizeof out);
  assert_int_equal(gw_store_pg_sink.send(s, e, 4, &out), GW_SINK_OK);
  assert_int_equal(out.dropped, 1);
  assert_int_equal(out.delivered, 1);
  assert_string_equal(qv("SELECT string_agg(span_id, ',') FROM ai_interaction_traces"), "0000000000000001");
  /* A batch without interaction records needs no database at all. */
  void *down = store_create("host=127.0.0.1 port=1 dbname=x");
  assert_int_equal(gw_store_pg_sink.send(down, &e[1], 1, &out), GW_SINK_OK);
  gw_store_pg_sink.destroy(down);
  gw_store_pg_sink.destroy(s);
}

static void test_connection_failure_then_reconnect(void **state)
{
  /* Port 1 on loopback: nothing listens there. */
  void *s = store_create("postgresql://postgres:s3cretpw@127.0.0.1:1/genai?sslmode=disable");
  struct gw_record r = rec(0x101, 1, T0);
  struct gw_sink_outcome out;
  int64_t err0 = gw_metric_get(GW_M_PG_ERRORS);
  assert_int_equal(send1(s, &r, 1, &out), GW_SINK_RETRY);
  assert_int_equal(send1(s, &r, 1, &out), GW_SINK_RETRY);
  assert_int_equal(gw_metric_get(GW_M_PG_ERRORS) - err0, 2);
  assert_int_equal(gw_metric_get(GW_M_PG_CONNECTED), 0);
  assert_non_null(strstr(out.error, "cannot connect to Postgres"));
  assert_null(strstr(out.error, "s3cretpw"));
  assert_null(strstr(out.error, "postgresql://"));
  gw_store_pg_sink.destroy(s);
  /* A malformed DSN: the reason is generic, never the string itself. */
  s = store_create("host=127.0.0.1 password=s3cretpw bogus");
  assert_int_equal(send1(s, &r, 1, &out), GW_SINK_RETRY);
  assert_null(strstr(out.error, "s3cretpw"));
  assert_null(strstr(out.error, "bogus"));
  gw_store_pg_sink.destroy(s);

  /* A working store whose backend is killed: RETRY once, then it reconnects by itself. */
  s = store_create(dsn);
  assert_int_equal(send1(s, &r, 1, &out), GW_SINK_OK);
  assert_int_equal(gw_metric_get(GW_M_PG_CONNECTED), 1);
  exec_or_fail(db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   "WHERE datname = current_database() AND application_name = 'genai-gateway'");
  usleep(100 * 1000);
  struct gw_record r2 = rec(0x101, 2, T0);
  assert_int_equal(send1(s, &r2, 1, &out), GW_SINK_RETRY);
  assert_int_equal(gw_metric_get(GW_M_PG_CONNECTED), 0);
  assert_int_equal(send1(s, &r2, 1, &out), GW_SINK_OK);
  assert_int_equal(gw_metric_get(GW_M_PG_CONNECTED), 1);
  assert_int_equal(rows(), 2);

  /* While idle, a dead connection is noticed and replaced without waiting for data. */
  char pid0[32];
  snprintf(pid0, sizeof pid0, "%s", qv("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                      "AND application_name = 'genai-gateway'"));
  gw_store_pg_sink.idle(s); /* just used: no check yet */
  exec_or_fail(db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   "WHERE datname = current_database() AND application_name = 'genai-gateway'");
  usleep(5100 * 1000);
  gw_store_pg_sink.idle(s);
  assert_int_equal(gw_metric_get(GW_M_PG_CONNECTED), 1);
  const char *pid1 = qv("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND application_name = 'genai-gateway'");
  assert_string_not_equal(pid0, pid1);
  assert_int_equal(send1(s, &r2, 1, &out), GW_SINK_OK);
  gw_store_pg_sink.destroy(s);
}

/* A database that is not usable yet (schema newer than the binary) is a RETRY, never a reject. */
static void test_newer_schema_blocks_writer(void **state)
{
  exec_or_fail(db, "INSERT INTO schema_migrations (version, name) VALUES (9998, 'future')");
  void *s = store_create(dsn);
  struct gw_record r = rec(0x111, 1, T0);
  struct gw_sink_outcome out;
  assert_int_equal(send1(s, &r, 1, &out), GW_SINK_RETRY);
  assert_string_equal(out.error, newer_schema_msg(9998));
  exec_or_fail(db, "DELETE FROM schema_migrations WHERE version = 9998");
  assert_int_equal(send1(s, &r, 1, &out), GW_SINK_OK);
  assert_int_equal(rows(), 1);
  gw_store_pg_sink.destroy(s);
}

/* An error that is the database's state, not the row's (here a missing table), is retried, not rejected. */
static void test_database_state_error_retried(void **state)
{
  void *s = store_create(dsn);
  struct gw_record r = rec(0x121, 1, T0), r2 = rec(0x121, 2, T0);
  struct gw_sink_outcome out;
  assert_int_equal(send1(s, &r, 1, &out), GW_SINK_OK);
  exec_or_fail(db, "ALTER TABLE ai_interaction_traces RENAME TO gw_renamed");
  enum gw_sink_result res = send1(s, &r2, 1, &out);
  exec_or_fail(db, "ALTER TABLE gw_renamed RENAME TO ai_interaction_traces");
  assert_int_equal(res, GW_SINK_RETRY);
  if (!strstr(out.error, "42P01"))
    fail_msg("unexpected error: %s", out.error);
  assert_int_equal(qn("SELECT count(*) FROM ai_interaction_rejects"), 0);
  assert_int_equal(send1(s, &r2, 1, &out), GW_SINK_OK);
  assert_int_equal(rows(), 2);
  gw_store_pg_sink.destroy(s);
}

/* The database refusing every write for its own state, as a platform meets it: disk full, out of memory,
 * a read-only transaction, permission denied, a serialization failure or deadlock, a statement timeout,
 * an overlapping partition (raised here by a trigger on the table). Each is a RETRY naming its SQLSTATE
 * and counted in genai_gateway_pg_errors_total, never a reject; once fixed the same batch is stored. */
static void test_database_state_errors_table(void **state)
{
  static const char *const codes[] = {"53100", "53200", "25006", "42501", "40001", "40P01", "57014", "42P17", "42P07"};
  void *s = store_create(dsn);
  struct gw_record r0 = rec(0x5301, 0x5301, T0);
  struct gw_sink_outcome out;
  assert_int_equal(send1(s, &r0, 1, &out), GW_SINK_OK);
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    char sql[512];
    snprintf(sql, sizeof sql,
             "CREATE FUNCTION gw_test_refuse() RETURNS trigger LANGUAGE plpgsql AS "
             "$$BEGIN RAISE EXCEPTION 'refused for the test' USING ERRCODE = '%s'; END$$",
             codes[i]);
    exec_or_fail(db, sql);
    exec_or_fail(db, "CREATE TRIGGER gw_test_refuse BEFORE INSERT ON ai_interaction_traces "
                     "FOR EACH STATEMENT EXECUTE FUNCTION gw_test_refuse()");
    struct gw_record r = rec(0x5302, i + 1, T0);
    int64_t err0 = gw_metric_get(GW_M_PG_ERRORS);
    enum gw_sink_result res = send1(s, &r, 1, &out);
    exec_or_fail(db, "DROP TRIGGER gw_test_refuse ON ai_interaction_traces");
    exec_or_fail(db, "DROP FUNCTION gw_test_refuse()");
    assert_int_equal(res, GW_SINK_RETRY);
    if (!strstr(out.error, codes[i]) || !strstr(out.error, "refused for the test"))
      fail_msg("%s: the retry's error does not name it: %s", codes[i], out.error);
    assert_int_equal(gw_metric_get(GW_M_PG_ERRORS) - err0, 1);
    assert_int_equal(qn("SELECT count(*) FROM ai_interaction_rejects"), 0);
    assert_int_equal(send1(s, &r, 1, &out), GW_SINK_OK);
    assert_int_equal(rows(), (long)i + 2);
  }
  gw_store_pg_sink.destroy(s);
}

/* The DSN reaching a server that takes no writes (a standby after a failover, or a database set read-only
 * while it is fixed): 25006 on every write. A connection opened then stays read-only whatever the server
 * becomes (a session's defaults are read at its start; a standby stays one): the writer must connect
 * again to find the writable server, not retry forever on the connection it has. */
static void test_read_only_reconnects(void **state)
{
  void *s = store_create(dsn);
  struct gw_record r0 = rec(0x5401, 1, T0), r1 = rec(0x5401, 2, T0);
  struct gw_sink_outcome out;
  char sql[256];
  assert_int_equal(send1(s, &r0, 1, &out), GW_SINK_OK);
  snprintf(sql, sizeof sql, "ALTER DATABASE %s SET default_transaction_read_only = on", dbname);
  exec_or_fail(db, sql);
  /* The writer's connection ends (the failover); its next one is read-only. */
  exec_or_fail(db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   "WHERE datname = current_database() AND application_name = 'genai-gateway'");
  usleep(100 * 1000);
  enum gw_sink_result res = send1(s, &r1, 1, &out);
  if (res == GW_SINK_RETRY && !strstr(out.error, "25006"))
    res = send1(s, &r1, 1, &out); /* the lost connection first */
  snprintf(sql, sizeof sql, "ALTER DATABASE %s RESET default_transaction_read_only", dbname);
  exec_or_fail(db, sql);
  assert_int_equal(res, GW_SINK_RETRY);
  if (!strstr(out.error, "25006"))
    fail_msg("the retry's error does not name the read-only transaction: %s", out.error);
  /* Writable again: the writer recovers by itself within a retry or two. */
  res = send1(s, &r1, 1, &out);
  if (res != GW_SINK_OK)
    res = send1(s, &r1, 1, &out);
  if (res != GW_SINK_OK) {
    gw_store_pg_sink.destroy(s); /* its connection would hold the tests after this one */
    fail_msg("still failing once the database takes writes again: %s", out.error);
  }
  assert_int_equal(rows(), 2);
  assert_int_equal(qn("SELECT count(*) FROM ai_interaction_rejects"), 0);
  gw_store_pg_sink.destroy(s);
}

/* The connection lost in the middle of a batch's transaction: in the COPY (its statement trigger) and
 * after it, in the rollup upsert. RETRY; nothing of the batch is kept, and sent again it is stored and
 * counted in the rollups once. */
static void test_connection_lost_mid_batch(void **state)
{
  static const char *const where[] = {"ai_interaction_traces", "trace_metrics_hourly_agents"};
  void *s = store_create(dsn);
  struct gw_sink_outcome out;
  exec_or_fail(db, "CREATE FUNCTION gw_test_die() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NULL; END$$");
  for (int i = 0; i < 2; i++) {
    struct gw_record r[3];
    for (int k = 0; k < 3; k++)
      r[k] = rec(0x5601 + (unsigned)i, (unsigned long long)k + 1, T0 + (uint64_t)k);
    char sql[256];
    snprintf(sql, sizeof sql, "CREATE TRIGGER gw_test_die BEFORE INSERT ON %s FOR EACH STATEMENT "
             "EXECUTE FUNCTION gw_test_die()", where[i]);
    exec_or_fail(db, sql);
    enum gw_sink_result res = send1(s, r, 3, &out);
    snprintf(sql, sizeof sql, "DROP TRIGGER gw_test_die ON %s", where[i]);
    exec_or_fail(db, sql);
    assert_int_equal(res, GW_SINK_RETRY);
    assert_int_equal(rows(), 3 * i);
    assert_int_equal(send1(s, r, 3, &out), GW_SINK_OK);
    assert_int_equal(rows(), 3 * (i + 1));
    assert_int_equal(qn("SELECT sum(total_requests) FROM trace_metrics_hourly"), 3 * (i + 1));
  }
  exec_or_fail(db, "DROP FUNCTION gw_test_die()");
  assert_int_equal(rollup_diff(), 0);
  gw_store_pg_sink.destroy(s);
}

/* --- a COMMIT whose answer is lost ---------------------------------------------------------------- */

/* A TCP relay between a writer and Postgres. Armed, it passes the client's next COMMIT on (pass) or not,
 * waits a moment (the server commits or, not having it, aborts when the connection goes), and closes
 * both sides without relaying the server's answer: the client sees its connection fail on the COMMIT. */
#define RELAY_CONNS 16

struct relay {
  int lfd;
  int port;
  struct sockaddr_in pg;
  atomic_bool armed, pass, fired, stop;
  pthread_t thread;
  pthread_t conns[RELAY_CONNS]; /* each connection's thread, joined by relay_stop */
  size_t nconns;
};

struct relay_conn {
  struct relay *r;
  int c, s;
};

static bool has_commit(const char *buf, size_t n)
{
  static const char q[] = "COMMIT"; /* the Query message's text, NUL-terminated */
  for (size_t i = 0; i + sizeof q <= n; i++)
    if (memcmp(buf + i, q, sizeof q) == 0)
      return true;
  return false;
}

static void *relay_conn_main(void *arg)
{
  struct relay_conn *rc = arg;
  char buf[65536];
  for (;;) {
    struct pollfd p[2] = {{rc->c, POLLIN, 0}, {rc->s, POLLIN, 0}};
    if (poll(p, 2, 200) < 0 || atomic_load(&rc->r->stop))
      break;
    if (p[0].revents) {
      ssize_t n = read(rc->c, buf, sizeof buf);
      if (n <= 0)
        break;
      if (atomic_load(&rc->r->armed) && has_commit(buf, (size_t)n)) {
        atomic_store(&rc->r->armed, false);
        if (atomic_load(&rc->r->pass) && write(rc->s, buf, (size_t)n) != n)
          break;
        usleep(300000);
        atomic_store(&rc->r->fired, true);
        break;
      }
      if (write(rc->s, buf, (size_t)n) != n)
        break;
    }
    if (p[1].revents) {
      ssize_t n = read(rc->s, buf, sizeof buf);
      if (n <= 0 || write(rc->c, buf, (size_t)n) != n)
        break;
    }
  }
  close(rc->c);
  close(rc->s);
  free(rc);
  return NULL;
}

static void *relay_main(void *arg)
{
  struct relay *r = arg;
  while (!atomic_load(&r->stop)) {
    struct pollfd p = {r->lfd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0)
      continue;
    int c = accept(r->lfd, NULL, NULL);
    if (c < 0)
      continue;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&r->pg, sizeof r->pg) != 0) {
      close(c);
      if (s >= 0)
        close(s);
      continue;
    }
    struct relay_conn *rc = calloc(1, sizeof *rc);
    *rc = (struct relay_conn){r, c, s};
    if (r->nconns == RELAY_CONNS || pthread_create(&r->conns[r->nconns], NULL, relay_conn_main, rc) != 0) {
      close(c);
      close(s);
      free(rc);
      continue;
    }
    r->nconns++;
  }
  return NULL;
}

/* A relay to the test database's server; false when it is not reached over TCP on 127.0.0.1. conninfo:
 * the DSN through the relay. */
static bool relay_start(struct relay *r, char *conninfo, size_t len)
{
  memset(r, 0, sizeof *r);
  const char *host = PQhost(db), *port = PQport(db);
  if (!host || strcmp(host, "127.0.0.1") != 0 || !port)
    return false;
  r->pg.sin_family = AF_INET;
  r->pg.sin_port = htons((uint16_t)atoi(port));
  r->pg.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof a;
  r->lfd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(r->lfd >= 0);
  assert_int_equal(bind(r->lfd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(r->lfd, 16), 0);
  assert_int_equal(getsockname(r->lfd, (struct sockaddr *)&a, &alen), 0);
  r->port = ntohs(a.sin_port);
  const char *pass = PQpass(db);
  snprintf(conninfo, len, "host=127.0.0.1 port=%d user=%s dbname=%s sslmode=disable%s%s", r->port, PQuser(db),
           PQdb(db), pass && *pass ? " password=" : "", pass && *pass ? pass : "");
  assert_int_equal(pthread_create(&r->thread, NULL, relay_main, r), 0);
  return true;
}

static void relay_stop(struct relay *r)
{
  atomic_store(&r->stop, true);
  pthread_join(r->thread, NULL); /* (conns[] is the accept thread's until then) */
  for (size_t i = 0; i < r->nconns; i++)
    pthread_join(r->conns[i], NULL);
  close(r->lfd);
}

/* The connection fails on the COMMIT of a batch, after the server committed it (pass) or without the
 * server ever getting it. Committed: the writer asks the transaction's fate on a new connection, and the
 * batch is done: OK, its rows counted stored (not written again and counted as duplicates). Not
 * committed: RETRY, nothing stored, and the batch sent again lands once. Stopping: nothing is asked (a
 * new connection could outlast the drain): RETRY, the batch left to the spool's replay. */
static void commit_answer_lost(bool pass, bool stopping)
{
  struct relay r;
  char conninfo[512];
  if (!relay_start(&r, conninfo, sizeof conninfo))
    skip();
  void *s = store_create(conninfo);
  unsigned base = pass ? 0x5701 : 0x5711;
  struct gw_record a = rec(base, base, T0), b[3];
  for (int k = 0; k < 3; k++)
    b[k] = rec(base + 1, (unsigned long long)k + 1, T0 + (uint64_t)k);
  struct gw_sink_outcome out;
  assert_int_equal(send1(s, &a, 1, &out), GW_SINK_OK); /* connected, the day's partition made */
  int64_t stored0 = gw_metric_get(GW_M_RECORDS_STORED), dup0 = gw_metric_get(GW_M_RECORDS_DUPLICATE);
  atomic_store(&r.pass, pass);
  atomic_store(&r.armed, true);
  if (stopping)
    gw_store_pg_sink.stopping(s, mono_ns() + 30000000000ull);
  enum gw_sink_result res = send1(s, b, 3, &out);
  bool fired = atomic_load(&r.fired);
  long stored = rows();
  if (stopping) {
    assert_true(fired);
    assert_int_equal(res, GW_SINK_RETRY);
    assert_int_equal(stored, 4);
    assert_int_equal(gw_metric_get(GW_M_RECORDS_STORED) - stored0, 0);
    gw_store_pg_sink.destroy(s);
    relay_stop(&r);
    return;
  }
  if (pass) {
    assert_true(fired);
    assert_int_equal(res, GW_SINK_OK);
    assert_int_equal(out.delivered, 3);
    assert_int_equal(stored, 4);
  } else {
    assert_true(fired);
    assert_int_equal(res, GW_SINK_RETRY);
    assert_int_equal(stored, 1);
    assert_int_equal(send1(s, b, 3, &out), GW_SINK_OK);
    assert_int_equal(rows(), 4);
  }
  assert_int_equal(gw_metric_get(GW_M_RECORDS_STORED) - stored0, 3);
  assert_int_equal(gw_metric_get(GW_M_RECORDS_DUPLICATE) - dup0, 0);
  assert_int_equal(qn("SELECT sum(total_requests) FROM trace_metrics_hourly"), 4);
  assert_int_equal(rollup_diff(), 0);
  gw_store_pg_sink.destroy(s);
  relay_stop(&r);
}

static void test_commit_answer_lost_committed(void **state) { commit_answer_lost(true, false); }
static void test_commit_answer_lost_aborted(void **state) { commit_answer_lost(false, false); }
static void test_commit_answer_lost_stopping(void **state) { commit_answer_lost(true, true); }

/* A batch larger than one COPY chunk, with one bad row at the very end. */
static void test_large_batch(void **state)
{
  enum { N = 1500 };
  void *s = store_create(dsn);
  struct gw_record *r = calloc(N, sizeof *r);
  char *content = malloc(1200);
  memset(content, 'x', 1199);
  content[1199] = 0;
  content[10] = '\t';
  for (int i = 0; i < N; i++) {
    r[i] = rec(0x300 + (unsigned)i % 7, (unsigned long long)i + 1, T0 + (uint64_t)i * 1000000000ull);
    r[i].prompt_content = content;
  }
  r[N - 1].status = "bogus"; /* violates the status CHECK */
  struct gw_sink_outcome out;
  assert_int_equal(send1(s, r, N, &out), GW_SINK_OK);
  assert_int_equal(rows(), N - 1);
  assert_int_equal(out.dropped, 1);
  assert_string_equal(qv("SELECT span_id FROM ai_interaction_rejects"), "00000000000005dc");
  assert_int_equal(qn("SELECT count(*) FROM ai_interaction_traces WHERE length(prompt_content) = 1199 "
                      "AND substr(prompt_content, 11, 1) = E'\\t'"),
                   N - 1);
  free(content);
  free(r);
  gw_store_pg_sink.destroy(s);
}

/* Two writers creating the same day's partition at once: the loser gets false, not an error. */
static void test_partition_race(void **state)
{
  PGconn *a = connect_or_fail(dsn), *b = connect_or_fail(dsn);
  exec_or_fail(a, "BEGIN");
  PGresult *r = PQexec(a, "SELECT gw_ensure_partition('ai_interaction_traces', '2031-03-04')");
  assert_string_equal(PQgetvalue(r, 0, 0), "t");
  PQclear(r);
  /* b cannot see a's uncommitted partition, so it tries to create it too and waits on a's locks. */
  assert_int_equal(PQsendQuery(b, "SELECT gw_ensure_partition('ai_interaction_traces', '2031-03-04')"), 1);
  usleep(200 * 1000);
  exec_or_fail(a, "COMMIT");
  r = PQgetResult(b);
  if (PQresultStatus(r) != PGRES_TUPLES_OK)
    fail_msg("racing gw_ensure_partition failed: %s", PQresultErrorMessage(r));
  assert_string_equal(PQgetvalue(r, 0, 0), "f");
  PQclear(r);
  while ((r = PQgetResult(b)) != NULL)
    PQclear(r);
  PQfinish(a);
  PQfinish(b);
}

/* Days covered by partitions the gateway did not make: an operator's partition of a whole month (a
 * range overlapping the day's, 42P17 for CREATE) and a DEFAULT partition already holding rows of the
 * day (23514 for CREATE). The rows fit where they are routed, so they are stored there: the writer does
 * not retry the day's CREATE forever with ingestion stalled behind it. Events likewise. */
static void test_partition_made_by_someone_else(void **state)
{
  void *s = store_create(dsn);
  struct gw_sink_outcome out;
  exec_or_fail(db, "CREATE TABLE gw_test_feb PARTITION OF ai_interaction_traces "
                   "FOR VALUES FROM ('2025-02-01 00:00:00+00') TO ('2025-03-01 00:00:00+00')");
  struct gw_record r = rec(0x5501, 1, T0 + 40 * DAY); /* 2025-02-10 */
  enum gw_sink_result res = send1(s, &r, 1, &out);
  if (res != GW_SINK_OK) {
    gw_store_pg_sink.destroy(s);
    fail_msg("a day inside an operator's partition: %s", out.error);
  }
  assert_string_equal(qv("SELECT tableoid::regclass::text FROM ai_interaction_traces WHERE trace_id = '%032x'", 0x5501),
                      "gw_test_feb");
  exec_or_fail(db, "CREATE TABLE gw_test_default PARTITION OF ai_interaction_traces DEFAULT");
  exec_or_fail(db, "INSERT INTO ai_interaction_traces (trace_id, span_id, start_time) "
                   "VALUES ('00000000000000000000000000005502', '0000000000000001', '2025-04-05 10:00:00+00')");
  r = rec(0x5502, 2, T0 + 94 * DAY); /* 2025-04-05 */
  res = send1(s, &r, 1, &out);
  if (res != GW_SINK_OK) {
    gw_store_pg_sink.destroy(s);
    fail_msg("a day whose rows are in the default partition: %s", out.error);
  }
  assert_int_equal(qn("SELECT count(*) FROM gw_test_default"), 2);
  assert_int_equal(qn("SELECT count(*) FROM ai_interaction_rejects"), 0);
  exec_or_fail(db, "DROP TABLE gw_test_default");
  /* A partition covering part of a day only: a row outside it has no partition, and is kept as a reject
   * once the days were checked again, rather than holding the batch forever. */
  exec_or_fail(db, "CREATE TABLE gw_test_morning PARTITION OF ai_interaction_traces "
                   "FOR VALUES FROM ('2025-05-01 00:00:00+00') TO ('2025-05-01 12:00:00+00')");
  struct gw_record two[2] = {rec(0x5503, 1, T0 + 120 * DAY), rec(0x5503, 2, T0 + 120 * DAY + 15 * 3600000000000ull)};
  res = send1(s, two, 2, &out);
  if (res != GW_SINK_OK) {
    gw_store_pg_sink.destroy(s);
    fail_msg("a day partly covered: %s", out.error);
  }
  assert_int_equal(qn("SELECT count(*) FROM gw_test_morning"), 1);
  assert_string_equal(qv("SELECT span_id || ' ' || left(error, 6) FROM ai_interaction_rejects"), "0000000000000002 23514:");
  gw_store_pg_sink.destroy(s);
  exec_or_fail(db, "DROP TABLE gw_test_feb, gw_test_morning");
}

/* Through the generic sink loop and a memory spool, as the gateway runs it. */
/* Trace facts (session/user ids of spans that give no row, migrations/0012_trace_ids.sql): an entry with no
 * record and facts only fills the trace's stored rows that lack ids, keeps them for rows stored later,
 * leaves a row's own ids alone, is idempotent, and ids with quotes and backslashes arrive as they were. */
static void test_trace_facts(void **state)
{
  (void)state;
  void *s = store_create(dsn);
  struct gw_sink_outcome out;
  struct gw_record a = rec(0xf1, 1, T0), own = rec(0xf1, 2, T0 + 1000);
  own.session_id = "own-s";
  own.user_id = "own-u";
  struct gw_record both[2] = {a, own};
  assert_int_equal(send1(s, both, 2, &out), GW_SINK_OK);
  assert_string_equal(qv("SELECT coalesce(user_id, '-') FROM ai_interaction_traces WHERE span_id = '%016x'", 1),
                      "own-u"); /* the rows' own fill, as before */
  exec_or_fail(db, "UPDATE ai_interaction_traces SET session_id = NULL, user_id = NULL WHERE span_id = '0000000000000001'");

  struct gw_trace_fact f[2] = {
    {"", T0 - 5, "s \"quoted\" \\ {x,y}", "zed", ""},
    {"", T0 + 7, "sb", NULL, ""},
  };
  hex_id(f[0].trace_id, sizeof f[0].trace_id, 0xf1);
  hex_id(f[1].trace_id, sizeof f[1].trace_id, 0xf2);
  struct gw_sb sb;
  gw_sb_init(&sb, arena);
  assert_int_equal(gw_records_encode(NULL, 0, &sb), GW_OK);
  assert_int_equal(gw_trace_facts_encode(f, 2, &sb), GW_OK);
  struct gw_spool_entry e;
  memset(&e, 0, sizeof e);
  e.seq = 2;
  e.format = GW_SPOOL_FORMAT;
  e.signal = GW_SIGNAL_TRACES;
  e.nspans = 2;
  e.records_len = sb.len;
  e.records = gw_sb_finish(&sb);
  int64_t counted = gw_metric_get(GW_M_PG_TRACE_IDS);
  memset(&out, 0, sizeof out);
  assert_int_equal(gw_store_pg_sink.send(s, &e, 1, &out), GW_SINK_OK);
  assert_int_equal(gw_metric_get(GW_M_PG_TRACE_IDS) - counted, 2);
  /* greatest of the trace's: "zed" over the other row's "own-u"; the session has only the fact's */
  assert_string_equal(qv("SELECT session_id || '|' || user_id FROM ai_interaction_traces WHERE span_id = '%016x'", 1),
                      "s \"quoted\" \\ {x,y}|zed");
  assert_string_equal(qv("SELECT session_id || '|' || user_id FROM ai_interaction_traces WHERE span_id = '%016x'", 2),
                      "own-s|own-u");
  assert_string_equal(qv("SELECT user_id FROM ai_trace_summaries WHERE trace_id = '%032x'", 0xf1), "zed");
  assert_int_equal(qn("SELECT count(*) FROM ai_trace_ids"), 2);
  /* replayed: nothing changes */
  memset(&out, 0, sizeof out);
  assert_int_equal(gw_store_pg_sink.send(s, &e, 1, &out), GW_SINK_OK);
  assert_int_equal(qn("SELECT count(*) FROM ai_trace_ids"), 2);
  assert_int_equal(rows(), 2);
  /* a row of trace f2 stored later takes the kept session */
  struct gw_record b = rec(0xf2, 3, T0 + 2000);
  assert_int_equal(send1(s, &b, 1, &out), GW_SINK_OK);
  assert_string_equal(qv("SELECT session_id || '|' || coalesce(user_id, '-') FROM ai_interaction_traces WHERE span_id = '%016x'", 3),
                      "sb|-");
  gw_store_pg_sink.destroy(s);
}

static void test_sink_end_to_end(void **state)
{
  struct gw_spool_conf sc = {.mode = "memory", .max_bytes = 16u << 20, .high_water = 0.9};
  struct gw_err err = {0};
  struct gw_spool *sp = gw_spool_create(&sc, &err);
  assert_non_null(sp);
  struct gw_sink_conf kc = {.batch_spans = 1000, .batch_wait_ms = 20, .max_entries = 64, .backoff_min_ms = 10,
                            .backoff_max_ms = 100, .drain_ms = 2000};
  struct gw_sink *sink = gw_sink_start(&gw_store_pg_sink, store_create(dsn), sp, &kc, &err);
  assert_non_null(sink);
  for (int i = 0; i < 20; i++) {
    struct gw_record r[5];
    for (int k = 0; k < 5; k++)
      r[k] = rec(0x200 + (unsigned)i, (unsigned long long)k + 1, T0 + (uint64_t)k * DAY / 4);
    struct gw_sb sb;
    gw_sb_init(&sb, arena);
    assert_int_equal(gw_records_encode(r, 5, &sb), GW_OK);
    /* The writer ignores the OTLP bytes; the exporters read them. */
    struct gw_spool_in in = {.signal = GW_SIGNAL_TRACES, .flags = GW_ENTRY_HAS_GENAI, .nspans = 5, .nrecords = 5,
                             .otlp = "\x0a\x00", .otlp_len = 2, .records_len = sb.len};
    in.records = gw_sb_finish(&sb);
    assert_int_equal(gw_spool_append(sp, &in), GW_OK);
  }
  long n = 0;
  for (int tries = 0; tries < 500 && (n = rows()) < 100; tries++)
    usleep(20 * 1000);
  assert_int_equal(n, 100);
  gw_spool_close(sp);
  gw_sink_stop(sink);
  uint64_t lag_entries;
  size_t lag_bytes;
  gw_spool_lag(sp, 0, &lag_entries, &lag_bytes);
  assert_int_equal(lag_entries, 0);
  gw_spool_destroy(sp);
}

/* --- rollups -------------------------------------------------------------------------------------- */

#define HOUR 3600000000000ull
#define ROLLUP_COLS                                                                                            \
  "hour_bucket, service_name, provider, model_id, operation, total_requests, successful_requests, "            \
  "error_requests, total_input_tokens, total_output_tokens, total_cache_read_tokens, total_cache_write_tokens, " \
  "total_reasoning_tokens, total_cost, sum_duration_ms, sum_first_token_latency_ms, first_token_count, "        \
  "duration_histogram"

/* The number of rows that differ between trace_metrics_hourly and a GROUP BY over the raw rows, counted
 * both ways; the histogram is computed here per bucket with gw_duration_bucket, not with gw_hist_sum. */
static long rollup_diff(void)
{
  char hist[2048] = "ARRAY[";
  for (int i = 1; i <= 15; i++)
    snprintf(hist + strlen(hist), sizeof hist - strlen(hist),
             "%scount(*) FILTER (WHERE gw_duration_bucket(duration_ms) = %d)", i > 1 ? ", " : "", i);
  strcat(hist, "]::bigint[]");
  char sql[8192];
  snprintf(sql, sizeof sql,
           "WITH want AS (SELECT date_trunc('hour', start_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', "
           "coalesce(service_name, ''), coalesce(provider, ''), coalesce(model_id, ''), coalesce(operation, ''), "
           "count(*), count(*) FILTER (WHERE status IS DISTINCT FROM 'error'), "
           "count(*) FILTER (WHERE status = 'error'), coalesce(sum(input_tokens), 0), "
           "coalesce(sum(output_tokens), 0), coalesce(sum(cache_read_tokens), 0), "
           "coalesce(sum(cache_write_tokens), 0), coalesce(sum(reasoning_tokens), 0), "
           "coalesce(sum(total_cost_usd), 0), coalesce(sum(duration_ms), 0), "
           "coalesce(sum(first_token_latency_ms), 0), count(first_token_latency_ms), %s "
           "FROM ai_interaction_traces GROUP BY 1, 2, 3, 4, 5), "
           "have AS (SELECT " ROLLUP_COLS " FROM trace_metrics_hourly) "
           "SELECT (SELECT count(*) FROM (TABLE want EXCEPT ALL TABLE have) a) + "
           "(SELECT count(*) FROM (TABLE have EXCEPT ALL TABLE want) b)",
           hist);
  PGresult *r = PQexec(db, sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK)
    fail_msg("rollup comparison: %s", PQresultErrorMessage(r));
  long n = atol(PQgetvalue(r, 0, 0));
  PQclear(r);
  return n;
}

/* The whole rollup table as text (without updated_at), to compare before and after. */
static const char *rollup_snapshot(void)
{
  return qv("SELECT coalesce(string_agg(t::text, ';' ORDER BY t::text), '') FROM (SELECT " ROLLUP_COLS
            " FROM trace_metrics_hourly) t");
}

static struct gw_record rollup_rec(unsigned long long trace, unsigned long long span, uint64_t start_ns,
                                   const char *service, const char *model, double duration_ms)
{
  struct gw_record r = rec(trace, span, start_ns);
  r.service_name = service;
  r.provider = "openai";
  r.model_id = model;
  r.operation = "chat";
  if (duration_ms >= 0)
    r.duration_ms = (struct gw_opt_f64){duration_ms, true};
  return r;
}

/* trace_metrics_hourly is one row per (hour, service, provider, model, operation) whatever agents, workflows
 * and prompts the calls ran under (migrations/0013_rollup_key.sql); those live in trace_metrics_hourly_agents. */
static void test_rollup_one_row_per_model(void **state)
{
  (void)state;
  void *s = store_create(dsn);
  struct gw_record r[4] = {
    rollup_rec(0xd1, 1, T0, "svc-k", "gpt-4o", 5),
    rollup_rec(0xd1, 2, T0 + 1000, "svc-k", "gpt-4o", 50),
    rollup_rec(0xd2, 3, T0 + 2000, "svc-k", "gpt-4o", 500),
    rollup_rec(0xd3, 4, T0 + 3000, "svc-k", "gpt-4o", -1),
  };
  r[0].agent_name = r[1].agent_name = "planner";
  r[1].prompt_name = "book";
  r[2].workflow_name = "trip";
  r[3].status = "error";
  r[3].total_cost_nusd = (struct gw_opt_i64){2500000, true};
  struct gw_sink_outcome out;
  assert_int_equal(send1(s, r, 4, &out), GW_SINK_OK);
  assert_int_equal(qn("SELECT count(*) FROM trace_metrics_hourly_agents WHERE service_name = 'svc-k'"), 4);
  assert_string_equal(qv("SELECT count(*) || '|' || sum(total_requests) || '|' || sum(error_requests) || '|' || "
                         "sum(total_cost) || '|' || (SELECT sum(x) FROM unnest(min(duration_histogram)) x) "
                         "FROM trace_metrics_hourly WHERE service_name = 'svc-k'"),
                      "1|4|1|0.002500000|3");
  assert_string_equal(qv("SELECT total_requests || '|' || p50_duration_ms::int FROM trace_metrics_hourly_v "
                         "WHERE service_name = 'svc-k' AND model_id = 'gpt-4o' AND operation = 'chat'"),
                      qv("SELECT total_requests || '|' || gw_hist_quantile(duration_histogram, 0.5)::int "
                         "FROM trace_metrics_hourly WHERE service_name = 'svc-k'"));
  assert_int_equal(rollup_diff(), 0);
  gw_store_pg_sink.destroy(s);
}

static void test_rollup_batch_equals_group_by(void **state)
{
  void *s = store_create(dsn);
  struct gw_record r[6] = {
    rollup_rec(0xc1, 1, T0, "svc-a", "gpt-4o", 15),
    rollup_rec(0xc1, 2, T0 + 1000, "svc-a", "gpt-4o", 700),
    rollup_rec(0xc2, 1, T0 + 2000, "svc-a", "gpt-4o", -1),
    rollup_rec(0xc3, 1, T0 + HOUR, "svc-a", "gpt-4o", 5),
    rollup_rec(0xc4, 1, T0 + 2 * HOUR, "svc-b", NULL, 90000),
    rollup_rec(0xc4, 2, T0 + 2 * HOUR + 5, NULL, "claude", 81920),
  };
  r[0].input_tokens = (struct gw_opt_i64){100, true};
  r[0].output_tokens = (struct gw_opt_i64){20, true};
  r[0].total_cost_nusd = (struct gw_opt_i64){1500, true};
  r[0].first_token_latency_ms = (struct gw_opt_f64){4.5, true};
  r[1].input_tokens = (struct gw_opt_i64){50, true};
  r[1].cache_read_tokens = (struct gw_opt_i64){30, true};
  r[1].total_cost_nusd = (struct gw_opt_i64){2500, true};
  r[1].status = "error";
  r[2].status = "unset";
  r[2].reasoning_tokens = (struct gw_opt_i64){7, true};
  struct gw_sink_outcome out;
  assert_int_equal(send1(s, r, 6, &out), GW_SINK_OK);
  assert_int_equal(rollup_diff(), 0);
  assert_int_equal(qn("SELECT count(*) FROM trace_metrics_hourly"), 4);
  /* The first hour's group, value by value. */
  assert_string_equal(qv("SELECT concat_ws('|', hour_bucket, total_requests, successful_requests, error_requests, "
                         "total_input_tokens, total_output_tokens, total_cache_read_tokens, total_reasoning_tokens, "
                         "total_cost, sum_duration_ms, first_token_count, duration_histogram) "
                         "FROM trace_metrics_hourly WHERE hour_bucket = '2025-01-01 00:00:00+00'"),
                      "2025-01-01 00:00:00+00|3|2|1|150|20|30|7|0.000004000|715|1|"
                      "{0,1,0,0,0,0,0,1,0,0,0,0,0,0,0}");
  /* Unknown dimensions are '', the top buckets hold 81920 (upper bound inclusive) and 90000 (+Inf). */
  assert_string_equal(qv("SELECT string_agg(concat_ws('|', service_name, model_id, duration_histogram[14], "
                         "duration_histogram[15]), ';' ORDER BY service_name) FROM trace_metrics_hourly "
                         "WHERE hour_bucket = '2025-01-01 02:00:00+00'"),
                      "|claude|1|0;svc-b||0|1");
  /* The view: averages over the rows that had a duration, tokens per request, quantiles. */
  assert_string_equal(qv("SELECT concat_ws('|', avg_duration_ms, avg_first_token_latency_ms, "
                         "round(avg_tokens_per_request::numeric, 3), p50_duration_ms, p99_duration_ms) "
                         "FROM trace_metrics_hourly_v WHERE hour_bucket = '2025-01-01 00:00:00+00'"),
                      "357.5|4.5|56.667|20|1267.2");
  gw_store_pg_sink.destroy(s);
}

static void test_rollup_resend_unchanged(void **state)
{
  void *s = store_create(dsn);
  struct gw_record r[4] = {
    rollup_rec(0xc5, 1, T0, "svc-a", "gpt-4o", 15),
    rollup_rec(0xc5, 2, T0 + 1000, "svc-a", "gpt-4o", 300),
    rollup_rec(0xc6, 1, T0 + HOUR, "svc-b", "gpt-4o", 2000),
    rollup_rec(0xc6, 2, T0 + HOUR, "svc-b", "gpt-4o", -1),
  };
  r[0].input_tokens = (struct gw_opt_i64){10, true};
  r[2].total_cost_nusd = (struct gw_opt_i64){7, true};
  struct gw_sink_outcome out;
  assert_int_equal(send1(s, r, 4, &out), GW_SINK_OK);
  const char *before = rollup_snapshot();
  assert_int_equal(qn("SELECT sum(total_requests) FROM trace_metrics_hourly"), 4);
  assert_int_equal(send1(s, r, 4, &out), GW_SINK_OK);
  assert_int_equal(send1(s, r + 1, 2, &out), GW_SINK_OK);
  assert_string_equal(rollup_snapshot(), before);
  assert_int_equal(rollup_diff(), 0);
  /* One new row among re-sent ones counts just that row. */
  struct gw_record m[2] = {r[0], rollup_rec(0xc7, 1, T0 + 5, "svc-a", "gpt-4o", 30)};
  assert_int_equal(send1(s, m, 2, &out), GW_SINK_OK);
  assert_int_equal(qn("SELECT sum(total_requests) FROM trace_metrics_hourly"), 5);
  assert_int_equal(rollup_diff(), 0);
  gw_store_pg_sink.destroy(s);
}

static long fallbacks(void);

/* As rollup_diff, over all nine dimensions of the key and with every aggregate compared as stored (the
 * cost as text, so a 0 where the SQL has 0.000000000 counts as a difference too). */
static long rollup_diff_all(void)
{
  char hist[2048] = "ARRAY[";
  for (int i = 1; i <= 15; i++)
    snprintf(hist + strlen(hist), sizeof hist - strlen(hist),
             "%scount(*) FILTER (WHERE gw_duration_bucket(duration_ms) = %d)", i > 1 ? ", " : "", i);
  strcat(hist, "]::bigint[]");
  char sql[8192];
  snprintf(sql, sizeof sql,
           "WITH want AS (SELECT date_trunc('hour', start_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', "
           "coalesce(service_name, ''), coalesce(provider, ''), coalesce(model_id, ''), coalesce(operation, ''), "
           "coalesce(agent_name, ''), coalesce(workflow_name, ''), coalesce(prompt_name, ''), "
           "coalesce(prompt_version, ''), count(*), count(*) FILTER (WHERE status IS DISTINCT FROM 'error'), "
           "count(*) FILTER (WHERE status = 'error'), coalesce(sum(input_tokens), 0), "
           "coalesce(sum(output_tokens), 0), coalesce(sum(cache_read_tokens), 0), "
           "coalesce(sum(cache_write_tokens), 0), coalesce(sum(reasoning_tokens), 0), "
           "coalesce(sum(total_cost_usd), 0)::text, coalesce(sum(duration_ms), 0), "
           "coalesce(sum(first_token_latency_ms), 0), count(first_token_latency_ms), %s "
           "FROM ai_interaction_traces GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9), "
           "have AS (SELECT hour_bucket, service_name, provider, model_id, operation, agent_name, workflow_name, "
           "prompt_name, prompt_version, total_requests, successful_requests, error_requests, total_input_tokens, "
           "total_output_tokens, total_cache_read_tokens, total_cache_write_tokens, total_reasoning_tokens, "
           "total_cost::text, sum_duration_ms, sum_first_token_latency_ms, first_token_count, duration_histogram "
           "FROM trace_metrics_hourly_agents) "
           "SELECT (SELECT count(*) FROM (TABLE want EXCEPT ALL TABLE have) a) + "
           "(SELECT count(*) FROM (TABLE have EXCEPT ALL TABLE want) b)",
           hist);
  PGresult *r = PQexec(db, sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK)
    fail_msg("rollup comparison: %s", PQresultErrorMessage(r));
  long n = atol(PQgetvalue(r, 0, 0));
  PQclear(r);
  return n;
}

/* The direct path aggregates each batch's rollups in C and sends only the groups: every aggregate must be
 * the one Postgres computes from the rows, for unknown (NULL) and empty dimensions, several hours, mixed
 * services, models, agents and prompts, every status, costs past int64 together, sums of durations that
 * are not exact in binary (added in the rows' order), NaN and every histogram bound; then after a replayed
 * batch (the staging path's SQL aggregation) and a batch adding to groups already stored. */
static void test_rollup_groups_aggregated_exactly(void **state)
{
  void *s = store_create(dsn);
  enum { N = 64 };
  struct gw_record r[N];
  static const char *const svc[] = {"svc-a", "svc-b", NULL, ""};
  static const char *const model[] = {"gpt-4o", NULL, "claude", "gpt-4o"};
  static const char *const status[] = {"ok", "error", NULL, "unset"};
  static const double dur[] = {0.1, 0.2, 0.3, 10, 10.000001, 20, 81920, 81920.5, 5, 1e-9, 333.3, 2560};
  for (int i = 0; i < N; i++) {
    r[i] = rec(0xe0 + (unsigned long long)i / 4, 1 + (unsigned long long)i % 4, T0 + (uint64_t)(i % 3) * HOUR + (uint64_t)i);
    r[i].service_name = svc[i % 4];
    r[i].model_id = model[(i / 4) % 4];
    r[i].provider = i % 5 ? "openai" : NULL;
    r[i].operation = "chat";
    r[i].status = status[(i / 2) % 4];
    r[i].agent_name = i % 7 == 0 ? "planner" : NULL;
    r[i].prompt_name = i % 11 == 0 ? "greeting" : NULL;
    r[i].prompt_version = i % 11 == 0 ? "3" : NULL;
    /* Sums of values inexact in binary depend on how they are grouped: they go only to groups of their
     * own (svc-frac) within the first batch, summed once in one order on both sides. Later batches add
     * values that sum exactly whichever way. */
    bool frac = i < 30 && i % 6 && (i % 12 < 3 || i % 12 == 4 || i % 12 == 9 || i % 12 == 10);
    if (frac)
      r[i].service_name = "svc-frac";
    if (i % 6)
      r[i].duration_ms = (struct gw_opt_f64){i < 30 || !frac ? dur[i % 12] : 0, true};
    if (i % 12 < 3 || i % 12 == 4 || i % 12 == 9 || i % 12 == 10)
      if (!frac && i % 6)
        r[i].duration_ms = (struct gw_opt_f64){(double)(i % 12) * 0.5, true};
    if (i % 3 == 0)
      r[i].first_token_latency_ms = (struct gw_opt_f64){frac ? 0.1 * i : 0.5 * i, true};
    if (i % 2)
      r[i].input_tokens = (struct gw_opt_i64){1000 + i, true};
    if (i % 5 == 1)
      r[i].cache_write_tokens = (struct gw_opt_i64){i, true};
    if (i % 4 == 3)
      r[i].total_cost_nusd = (struct gw_opt_i64){i % 8 == 3 ? INT64_MAX - i : 123456789 * (int64_t)i, true};
  }
  r[12].duration_ms = (struct gw_opt_f64){NAN, true};
  /* The last nanoseconds of an hour: stored to the microsecond, still in that hour. */
  r[5].start_ns = r[N - 1].start_ns = (T0 / HOUR + 1) * HOUR - 1;
  r[13].total_cost_nusd = (struct gw_opt_i64){-5, true};
  struct gw_sink_outcome out;
  /* The first 40 rows by the direct path. */
  long fb0 = fallbacks();
  assert_int_equal(send1(s, r, 40, &out), GW_SINK_OK);
  assert_int_equal(fallbacks(), fb0);
  assert_true(qn("SELECT count(*) FROM trace_metrics_hourly") > 10);
  assert_int_equal(rollup_diff_all(), 0);
  /* Rows 30..49 again: 10 stored, 10 new (the staging path counts only the new). */
  assert_int_equal(send1(s, r + 30, 20, &out), GW_SINK_OK);
  assert_int_equal(fallbacks(), fb0 + 1);
  assert_int_equal(rollup_diff_all(), 0);
  /* The rest into groups already there, by the direct path again once a batch finds nothing stored. */
  assert_int_equal(send1(s, r + 50, 7, &out), GW_SINK_OK);
  assert_int_equal(send1(s, r + 57, 7, &out), GW_SINK_OK);
  assert_int_equal(fallbacks(), fb0 + 1);
  assert_int_equal(qn("SELECT count(*) FROM ai_interaction_traces"), N);
  assert_int_equal(qn("SELECT sum(total_requests) FROM trace_metrics_hourly"), N);
  assert_int_equal(rollup_diff_all(), 0);
  gw_store_pg_sink.destroy(s);
}

/* --- several writers (postgres.writers, issue 15) --------------------------------------------------- */

struct writer_job {
  void *store;
  struct gw_spool_entry e;
  enum gw_sink_result r;
};

static void *writer_thread(void *arg)
{
  struct writer_job *j = arg;
  struct gw_sink_outcome out;
  memset(&out, 0, sizeof out);
  j->r = gw_store_pg_sink.send(j->store, &j->e, 1, &out);
  return NULL;
}

static long advisory_waiters(void)
{
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = %d AND objid = 77",
           GW_WRITERS_LOCK);
  return qn(sql);
}

/* Two writers of one gateway store two spans of one trace at the same moment, the one with the session and
 * user ids and the one without. Their COPYs run at once; the rest of each transaction waits for the writers
 * lock (held here at first, so that both are sure to be inside their transactions together), and whichever
 * goes second sees the first one's committed row: both rows end with the ids, as with one writer. Without
 * the lock neither transaction would see the other's row and one span would stay without ids. */
static void test_two_writers_fill_across_batches(void **state)
{
  struct gw_store_conf conf = {dsn, MIGRATIONS, 90, 2, 77, 0};
  struct gw_err err = {0};
  void *w0 = gw_store_pg_sink.create(&conf, &err), *w1 = gw_store_pg_sink.create(&conf, &err);
  assert_non_null(w0);
  assert_non_null(w1);
  struct gw_record a = rollup_rec(0xd1, 1, T0, "svc-a", "gpt-4o", 12);
  struct gw_record b = rollup_rec(0xd1, 2, T0 + 1000, "svc-a", "gpt-4o", 30);
  a.session_id = "S9";
  a.user_id = "U9";
  struct writer_job j0 = {w0, entry(&a, 1, 1), GW_SINK_RETRY}, j1 = {w1, entry(&b, 1, 2), GW_SINK_RETRY};
  /* Partitions first, so neither writer stops at a CREATE TABLE the other holds. */
  struct gw_sink_outcome out;
  struct gw_record warm[2] = {rollup_rec(0xd2, 1, T0, "svc-warm", "m", 1), rollup_rec(0xd2, 2, T0, "svc-warm", "m", 1)};
  assert_int_equal(send1(w0, &warm[0], 1, &out), GW_SINK_OK);
  assert_int_equal(send1(w1, &warm[1], 1, &out), GW_SINK_OK);
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%d, 77)", GW_WRITERS_LOCK);
  exec_or_fail(db, sql);
  pthread_t t0, t1;
  assert_int_equal(pthread_create(&t0, NULL, writer_thread, &j0), 0);
  assert_int_equal(pthread_create(&t1, NULL, writer_thread, &j1), 0);
  long waiting = 0;
  for (int i = 0; i < 1000 && (waiting = advisory_waiters()) < 2; i++) {
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%d, 77)", GW_WRITERS_LOCK);
  exec_or_fail(db, sql);
  pthread_join(t0, NULL);
  pthread_join(t1, NULL);
  assert_int_equal(waiting, 2); /* both wrote their rows and waited for the lock at the same time */
  assert_int_equal(j0.r, GW_SINK_OK);
  assert_int_equal(j1.r, GW_SINK_OK);
  assert_string_equal(qv("SELECT string_agg(span_id || ':' || coalesce(session_id, '-') || '/' || coalesce(user_id, '-'), "
                         "',' ORDER BY span_id) FROM ai_interaction_traces WHERE trace_id = '%032x'", 0xd1),
                      "0000000000000001:S9/U9,0000000000000002:S9/U9");
  assert_int_equal(rollup_diff_all(), 0);
  gw_store_pg_sink.destroy(w0);
  gw_store_pg_sink.destroy(w1);
}

/*
 * The agent fill runs only for batches whose traces can gain a name (migrations/0011_named_rows.sql): a batch naming
 * nobody, of traces with no named row stored, skips it (counted) and still gets its trace summaries; a
 * batch naming an agent or only a workflow runs it; and so does a batch naming nobody whose trace has a
 * named row stored by an earlier batch, which its unnamed spans then inherit.
 */
static long agent_fills_skipped(void) { return (long)gw_metric_get(GW_M_PG_AGENT_FILLS_SKIPPED); }

static void test_agent_fill_only_when_named(void **state)
{
  void *s = store_create(dsn);
  struct gw_sink_outcome out;
  long sk0 = agent_fills_skipped();
  /* Trace e1: nobody named, in two batches. */
  struct gw_record e1[3] = {rec(0xe1, 1, T0), rec(0xe1, 2, T0 + 10), rec(0xe1, 3, T0 + 20)};
  snprintf(e1[1].parent_span_id, sizeof e1[1].parent_span_id, "%016x", 1);
  snprintf(e1[2].parent_span_id, sizeof e1[2].parent_span_id, "%016x", 2);
  assert_int_equal(send1(s, e1, 2, &out), GW_SINK_OK);
  assert_int_equal(agent_fills_skipped(), sk0 + 1);
  assert_string_equal(qv("SELECT spans FROM ai_trace_summaries WHERE trace_id = '%032x'", 0xe1), "2");
  /* Trace e2: the agent and a call under it, then a call under that call, naming nobody. */
  struct gw_record e2[3] = {rec(0xe2, 1, T0), rec(0xe2, 2, T0 + 10), rec(0xe2, 3, T0 + 20)};
  e2[0].agent_name = "planner";
  e2[0].workflow_name = "wf2";
  snprintf(e2[1].parent_span_id, sizeof e2[1].parent_span_id, "%016x", 1);
  snprintf(e2[2].parent_span_id, sizeof e2[2].parent_span_id, "%016x", 2);
  assert_int_equal(send1(s, e2, 2, &out), GW_SINK_OK);
  assert_int_equal(agent_fills_skipped(), sk0 + 1);
  assert_int_equal(send1(s, &e2[2], 1, &out), GW_SINK_OK);
  assert_int_equal(agent_fills_skipped(), sk0 + 1);
  /* Trace e3: only a workflow named, then a call naming nobody. */
  struct gw_record e3[2] = {rec(0xe3, 1, T0), rec(0xe3, 2, T0 + 10)};
  e3[0].workflow_name = "wf3";
  snprintf(e3[1].parent_span_id, sizeof e3[1].parent_span_id, "%016x", 1);
  assert_int_equal(send1(s, &e3[0], 1, &out), GW_SINK_OK);
  assert_int_equal(send1(s, &e3[1], 1, &out), GW_SINK_OK);
  assert_int_equal(agent_fills_skipped(), sk0 + 1);
  /* e1's last span: still nobody named. */
  assert_int_equal(send1(s, &e1[2], 1, &out), GW_SINK_OK);
  assert_int_equal(agent_fills_skipped(), sk0 + 2);
#define NAMES(tr)                                                                                            \
  qv("SELECT string_agg(coalesce(agent_name, '-') || '/' || coalesce(workflow_name, '-'), ',' ORDER BY span_id) " \
     "FROM ai_interaction_traces WHERE trace_id = '%032x'", tr)
  assert_string_equal(NAMES(0xe1), "-/-,-/-,-/-");
  assert_string_equal(NAMES(0xe2), "planner/wf2,planner/wf2,planner/wf2");
  assert_string_equal(NAMES(0xe3), "-/wf3,-/wf3");
#undef NAMES
  assert_string_equal(qv("SELECT spans FROM ai_trace_summaries WHERE trace_id = '%032x'", 0xe1), "3");
  assert_int_equal(rollup_diff_all(), 0);
  gw_store_pg_sink.destroy(s);
}

/* --- the direct COPY and its fallback (issue 15) ---------------------------------------------------- */

static long fallbacks(void) { return (long)gw_metric_get(GW_M_PG_COPY_FALLBACKS); }

/* An entry of GenAI events. */
static enum gw_sink_result send_events(void *s, const struct gw_event *ev, size_t n, struct gw_sink_outcome *out)
{
  struct gw_sb sb;
  gw_sb_init(&sb, arena);
  assert_int_equal(gw_events_encode(ev, n, &sb), GW_OK);
  struct gw_spool_entry e;
  memset(&e, 0, sizeof e);
  e.seq = 1;
  e.format = GW_SPOOL_FORMAT;
  e.signal = GW_SIGNAL_LOGS;
  e.flags = GW_ENTRY_HAS_GENAI;
  e.nspans = e.nrecords = (uint32_t)n;
  e.records_len = sb.len;
  e.records = gw_sb_finish(&sb);
  memset(out, 0, sizeof *out);
  return gw_store_pg_sink.send(s, &e, 1, out);
}

/*
 * A new batch goes in by the direct COPY (no fallback, its long values compressed as the table says); a
 * replayed batch (the same spans again, as after a crash before the spool learnt of the commit) fails that
 * COPY on the primary key and is stored through the staging path: no duplicate, no reject, no split, the
 * rollups unchanged. The batch after a replay goes through the staging path first (its long values then
 * keep the staging table's pglz), and once one finds nothing stored the direct COPY is back. A batch mixing
 * stored and new spans, and one carrying the same new span twice, store each new span once and count it
 * once in the rollups, and the session/user fill still runs.
 */
static void test_direct_copy_replay_falls_back(void **state)
{
  void *s = store_create(dsn);
  struct gw_sink_outcome out;
  struct gw_record r[4] = {
    rollup_rec(0xd1, 1, T0, "svc-a", "gpt-4o", 15),
    rollup_rec(0xd1, 2, T0 + 1000, "svc-a", "gpt-4o", 700),
    rollup_rec(0xd2, 1, T0 + HOUR, "svc-b", "claude", 90000),
    rollup_rec(0xd3, 1, T0 + 2 * HOUR, "svc-a", NULL, -1),
  };
  r[0].input_tokens = (struct gw_opt_i64){100, true};
  r[0].total_cost_nusd = (struct gw_opt_i64){1500, true};
  r[1].status = "error";
  r[2].first_token_latency_ms = (struct gw_opt_f64){0.1, true};
  /* Long enough to be compressed (a row past TOAST's 2 KB threshold), and compressible. */
  char *big = gw_arena_alloc(arena, 6000);
  snprintf(big, 6000, "{\"note\":\"%0*d\"}", 5000, 7);
  r[0].attributes = big;
  long f0 = fallbacks(), splits0 = (long)gw_metric_get(GW_M_PG_SPLITS);
  int64_t stored0 = gw_metric_get(GW_M_RECORDS_STORED), dup0 = gw_metric_get(GW_M_RECORDS_DUPLICATE);

  assert_int_equal(send1(s, r, 4, &out), GW_SINK_OK);
  assert_int_equal(out.delivered, 4);
  assert_int_equal(fallbacks() - f0, 0); /* the direct COPY took it */
  assert_int_equal(rows(), 4);
  assert_string_equal(qv("SELECT pg_column_compression(attributes) FROM ai_interaction_traces WHERE span_id = "
                         "'0000000000000001' AND trace_id = '%032x'", 0xd1),
                      "lz4");
  assert_int_equal(rollup_diff(), 0);
  const char *before = rollup_snapshot();

  /* Replayed whole. */
  assert_int_equal(send1(s, r, 4, &out), GW_SINK_OK);
  assert_int_equal(out.delivered, 4);
  assert_int_equal(fallbacks() - f0, 1);
  assert_int_equal(rows(), 4);
  assert_int_equal(gw_metric_get(GW_M_RECORDS_STORED) - stored0, 4);
  assert_int_equal(gw_metric_get(GW_M_RECORDS_DUPLICATE) - dup0, 4);
  assert_int_equal(qn("SELECT count(*) FROM ai_interaction_rejects"), 0);
  assert_int_equal((long)gw_metric_get(GW_M_PG_SPLITS) - splits0, 0);
  assert_string_equal(rollup_snapshot(), before);

  /* After the replay: the staging path first, no COPY bound to fail; it found nothing stored. */
  struct gw_record q = rollup_rec(0xd6, 1, T0 + 7, "svc-a", "gpt-4o", 5);
  q.attributes = big;
  assert_int_equal(send1(s, &q, 1, &out), GW_SINK_OK);
  assert_int_equal(fallbacks() - f0, 1);
  assert_string_equal(qv("SELECT pg_column_compression(attributes) FROM ai_interaction_traces WHERE trace_id = "
                         "'%032x'", 0xd6),
                      "pglz");
  assert_int_equal(rows(), 5);

  /* Stored and new spans together; a new span of trace d2 brings the user id its stored span lacks. */
  struct gw_record m[4] = {r[3], rollup_rec(0xd2, 2, T0 + HOUR + 5, "svc-b", "claude", 40), r[1],
                           rollup_rec(0xd4, 1, T0 + 3 * HOUR, "svc-c", "gpt-4o", 3000)};
  m[1].user_id = "U-d2";
  m[1].output_tokens = (struct gw_opt_i64){9, true};
  assert_int_equal(send1(s, m, 4, &out), GW_SINK_OK);
  assert_int_equal(out.delivered, 4);
  assert_int_equal(fallbacks() - f0, 2);
  assert_int_equal(rows(), 7);
  assert_int_equal(gw_metric_get(GW_M_RECORDS_STORED) - stored0, 7);
  assert_int_equal(gw_metric_get(GW_M_RECORDS_DUPLICATE) - dup0, 6);
  assert_string_equal(qv("SELECT string_agg(span_id || ':' || coalesce(user_id, '-'), ',' ORDER BY span_id) FROM "
                         "ai_interaction_traces WHERE trace_id = '%032x'", 0xd2),
                      "0000000000000001:U-d2,0000000000000002:U-d2");
  assert_int_equal(qn("SELECT sum(total_requests) FROM trace_metrics_hourly"), 7);
  assert_int_equal(rollup_diff(), 0);
  /* A new batch: through the staging path (it found re-sent spans last time), then the direct COPY. */
  struct gw_record q2[2] = {rollup_rec(0xd7, 1, T0 + 8, "svc-a", "gpt-4o", 5),
                            rollup_rec(0xd8, 1, T0 + 9, "svc-a", "gpt-4o", 5)};
  q2[0].attributes = q2[1].attributes = big;
  assert_int_equal(send1(s, q2, 1, &out), GW_SINK_OK);
  assert_int_equal(send1(s, q2 + 1, 1, &out), GW_SINK_OK);
  assert_string_equal(qv("SELECT string_agg(pg_column_compression(attributes), ',' ORDER BY trace_id) FROM "
                         "ai_interaction_traces WHERE trace_id IN ('%032x', '%032x')", 0xd7, 0xd8),
                      "pglz,lz4");
  assert_int_equal(fallbacks() - f0, 2);

  /* One new span twice in a batch: the COPY refuses its second copy, the staging path keeps one. */
  struct gw_record twice[2] = {rollup_rec(0xd5, 1, T0 + 5, "svc-a", "gpt-4o", 25),
                               rollup_rec(0xd5, 1, T0 + 5, "svc-a", "gpt-4o", 25)};
  assert_int_equal(send1(s, twice, 2, &out), GW_SINK_OK);
  assert_int_equal(fallbacks() - f0, 3);
  assert_int_equal(rows(), 10);
  assert_int_equal(gw_metric_get(GW_M_RECORDS_STORED) - stored0, 10);
  assert_int_equal(gw_metric_get(GW_M_RECORDS_DUPLICATE) - dup0, 7);
  assert_int_equal(qn("SELECT sum(total_requests) FROM trace_metrics_hourly"), 10);
  assert_int_equal(rollup_diff(), 0);
  assert_int_equal(qn("SELECT count(*) FROM ai_interaction_rejects"), 0);
  assert_int_equal((long)gw_metric_get(GW_M_PG_SPLITS) - splits0, 0);
  gw_store_pg_sink.destroy(s);
}

/* The content of events stored before their spans is merged into the rows the direct COPY stores, and into
 * the new rows of a replayed batch that falls back; a replay changes no merged row and adds no event. */
static void test_direct_copy_merges_events(void **state)
{
  void *s = store_create(dsn);
  struct gw_sink_outcome out;
  struct gw_event ev[4];
  memset(ev, 0, sizeof ev);
  static const char *const dirs[] = {"input", "output", "input", "output"};
  static const char *const contents[] = {
    "{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"q1\"}]}",
    "{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"a1\"}]}",
    "{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"q3\"}]}",
    "{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"a3\"}]}",
  };
  for (int i = 0; i < 4; i++) {
    snprintf(ev[i].trace_id, sizeof ev[i].trace_id, "%032x", 0xf1);
    snprintf(ev[i].span_id, sizeof ev[i].span_id, "%016x", i < 2 ? 1 : 3);
    ev[i].time_ns = T0 + (uint64_t)i;
    ev[i].event_name = i % 2 ? "gen_ai.choice" : "gen_ai.user.message";
    ev[i].seq = (struct gw_opt_i64){0, true};
    ev[i].role = i % 2 ? "assistant" : "user";
    ev[i].direction = dirs[i];
    ev[i].content = contents[i];
  }
  assert_int_equal(send_events(s, ev, 4, &out), GW_SINK_OK);
  assert_int_equal(qn("SELECT count(*) FROM ai_interaction_events"), 4);
  long f0 = fallbacks();

  struct gw_record r[2] = {rec(0xf1, 1, T0), rec(0xf1, 2, T0 + 10)};
  assert_int_equal(send1(s, r, 2, &out), GW_SINK_OK);
  assert_int_equal(fallbacks() - f0, 0);
#define CONTENT(sp)                                                                                            \
  qv("SELECT coalesce(prompt_content, '-') || ' | ' || coalesce(response_content, '-') FROM ai_interaction_traces " \
     "WHERE trace_id = '%032x' AND span_id = '%016x'", 0xf1, sp)
  const char *want1 = "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"q1\"}]}] | "
                      "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"a1\"}]}]";
  assert_string_equal(CONTENT(1), want1);
  assert_string_equal(CONTENT(2), "- | -");

  /* Replayed with span 3, whose events were stored before it too. */
  struct gw_record m[3] = {r[0], r[1], rec(0xf1, 3, T0 + 20)};
  assert_int_equal(send1(s, m, 3, &out), GW_SINK_OK);
  assert_int_equal(fallbacks() - f0, 1);
  assert_int_equal(rows(), 3);
  assert_string_equal(CONTENT(1), want1);
  assert_string_equal(CONTENT(3), "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"q3\"}]}] | "
                                  "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"a3\"}]}]");
  /* The events replayed after their rows: nothing new, nothing changed. */
  assert_int_equal(send_events(s, ev, 4, &out), GW_SINK_OK);
  assert_int_equal(qn("SELECT count(*) FROM ai_interaction_events"), 4);
  assert_string_equal(CONTENT(1), want1);
  assert_int_equal(qn("SELECT count(*) FROM ai_interaction_rejects"), 0);
#undef CONTENT
  gw_store_pg_sink.destroy(s);
  exec_or_fail(db, "DROP TABLE ai_interaction_events_p20250101"); /* test_partitions_for_any_day creates it */
}

/* Row k of the mixed load: spread over 3 hours, 2 services, 3 providers and 4 models (NULL among them),
 * errors, NULL tokens and durations in every bucket. Durations are exact in binary, so sums added in any
 * order are equal. */
static struct gw_record mixed_rec(int k)
{
  static const char *const services[] = {"svc-a", "svc-b"};
  static const char *const providers[] = {"openai", "anthropic", NULL};
  static const char *const models[] = {"gpt-4o", "claude", NULL, "gpt-4o-mini"};
  static const char *const ops[] = {"chat", "execute_tool", NULL};
  static const double durs[] = {-1, 5, 10, 15.5, 25, 100, 700, 3000, 50000, 90000, 10240, 0.25, 160, 40000};
  struct gw_record r = rec(0xe000 + (unsigned)k / 4, (unsigned long long)k + 1,
                           T0 + (uint64_t)(k / 5 % 3) * HOUR + (uint64_t)k * 1000000);
  r.service_name = services[k % 2];
  r.provider = providers[k % 3];
  r.model_id = models[k % 4];
  r.operation = ops[k % 3];
  r.status = k % 7 == 0 ? "error" : k % 5 == 0 ? "unset" : "ok";
  if (k % 5)
    r.input_tokens = (struct gw_opt_i64){k * 3, true};
  if (k % 6)
    r.output_tokens = (struct gw_opt_i64){k, true};
  if (k % 4 == 0)
    r.cache_read_tokens = (struct gw_opt_i64){k, true};
  if (k % 9 == 2)
    r.cache_write_tokens = (struct gw_opt_i64){k + 1, true};
  if (k % 8 == 1)
    r.reasoning_tokens = (struct gw_opt_i64){2 * k, true};
  if (k % 3)
    r.total_cost_nusd = (struct gw_opt_i64){k * 1000 + 1, true};
  double d = durs[k % (int)(sizeof durs / sizeof durs[0])];
  if (d >= 0)
    r.duration_ms = (struct gw_opt_f64){d, true};
  if (k % 4 == 1)
    r.first_token_latency_ms = (struct gw_opt_f64){k * 2.5, true};
  return r;
}

static void mixed_load(void *s)
{
  struct gw_sink_outcome out;
  for (int b = 0; b < 5; b++) {
    struct gw_record r[40];
    size_t n = 0;
    for (int k = b * 24 - 10; k < b * 24 + 24; k++)
      if (k >= 0)
        r[n++] = mixed_rec(k);
    if (b == 2) { /* a row Postgres refuses: rejected, never counted */
      r[n] = mixed_rec(1000);
      r[n++].input_tokens = (struct gw_opt_i64){1LL << 40, true};
    }
    assert_int_equal(send1(s, r, n, &out), GW_SINK_OK);
  }
  assert_int_equal(rows(), 120);
  assert_int_equal(qn("SELECT count(*) FROM ai_interaction_rejects"), 1);
}

static void test_rollup_mixed_load(void **state)
{
  void *s = store_create(dsn);
  mixed_load(s);
  assert_int_equal(rollup_diff(), 0);
  assert_int_equal(qn("SELECT sum(total_requests) FROM trace_metrics_hourly"), 120);
  assert_int_equal(qn("SELECT sum(error_requests) FROM trace_metrics_hourly"), 18);
  assert_true(qn("SELECT count(*) FROM trace_metrics_hourly") > 20);
  assert_int_equal(qn("SELECT count(*) FROM trace_metrics_hourly WHERE model_id = '' AND provider = '' "
                      "AND operation = ''"),
                   qn("SELECT count(DISTINCT (date_trunc('hour', start_time), service_name)) FROM "
                      "ai_interaction_traces WHERE model_id IS NULL AND provider IS NULL AND operation IS NULL"));
  /* Every histogram counts exactly the rows with a duration. */
  assert_int_equal(qn("SELECT sum(x) FROM trace_metrics_hourly, unnest(duration_histogram) x"),
                   qn("SELECT count(duration_ms) FROM ai_interaction_traces"));
  gw_store_pg_sink.destroy(s);
}

static void test_hist_quantile(void **state)
{
  /* 10 in (10, 20]: linear inside the bucket. */
  assert_string_equal(qv("SELECT gw_hist_quantile('{0,10,0,0,0,0,0,0,0,0,0,0,0,0,0}', 0.5)"), "15");
  assert_string_equal(qv("SELECT gw_hist_quantile('{0,10,0,0,0,0,0,0,0,0,0,0,0,0,0}', 1)"), "20");
  /* 4 in [0, 10], 4 in (40, 80]: p50 ends the first bucket, p75 is half way through (40, 80]. */
  assert_string_equal(qv("SELECT gw_hist_quantile('{4,0,0,4,0,0,0,0,0,0,0,0,0,0,0}', 0.5)"), "10");
  assert_string_equal(qv("SELECT gw_hist_quantile('{4,0,0,4,0,0,0,0,0,0,0,0,0,0,0}', 0.75)"), "60");
  assert_string_equal(qv("SELECT gw_hist_quantile('{4,0,0,4,0,0,0,0,0,0,0,0,0,0,0}', 0.25)"), "5");
  /* The +Inf bucket answers its lower bound. */
  assert_string_equal(qv("SELECT gw_hist_quantile('{1,0,0,0,0,0,0,0,0,0,0,0,0,0,9}', 0.99)"), "81920");
  assert_string_equal(qv("SELECT gw_hist_quantile('{0,0,0,0,0,0,0,0,0,0,0,0,0,0,0}', 0.5) IS NULL"), "t");
  assert_string_equal(qv("SELECT gw_hist_quantile('{1,0,0,0,0,0,0,0,0,0,0,0,0,0,0}', 1.5) IS NULL"), "t");
  /* Buckets: OTel's (lower, upper]; helpers. */
  assert_string_equal(qv("SELECT concat_ws(',', gw_duration_bucket(-3), gw_duration_bucket(10), "
                         "gw_duration_bucket(10.001), gw_duration_bucket(81920), gw_duration_bucket(81920.5), "
                         "gw_duration_bucket(NULL) IS NULL)"),
                      "1,1,2,14,15,t");
  /* Each bound is the inclusive top of its bucket, whatever is just above it starts the next. */
  assert_string_equal(qv("SELECT count(*) FROM unnest(gw_duration_bounds()) WITH ORDINALITY AS b(ms, i) "
                         "WHERE gw_duration_bucket(ms) = i AND gw_duration_bucket(ms + 0.001) = i + 1"),
                      "14");
  assert_string_equal(qv("SELECT gw_hist_add('{1,2,3}', '{10,20,30,40}')::text"), "{11,22,33,40}");
  assert_string_equal(qv("SELECT gw_hist_sum(h)::text FROM (VALUES ('{1,2}'::bigint[]), (NULL), ('{0,5}')) v(h)"),
                      "{1,7}");
}

static void test_rollup_rebuild(void **state)
{
  void *s = store_create(dsn);
  mixed_load(s);
  const char *before = rollup_snapshot();
  long total = qn("SELECT count(*) FROM trace_metrics_hourly");
  /* Lose the middle hour, rebuild from a range that starts inside it: the whole hour comes back. */
  long mid = qn("SELECT count(*) FROM trace_metrics_hourly WHERE hour_bucket = '2025-01-01 01:00:00+00'");
  assert_true(mid > 0);
  exec_or_fail(db, "DELETE FROM trace_metrics_hourly_agents WHERE hour_bucket = '2025-01-01 01:00:00+00'");
  assert_int_equal(qn("SELECT gw_rollup_rebuild('2025-01-01 01:30:00+00', '2025-01-01 01:45:00+00')"), mid);
  assert_string_equal(rollup_snapshot(), before);
  /* Everything, after corrupting a value: the rebuild recomputes rather than adds. */
  exec_or_fail(db, "DELETE FROM trace_metrics_hourly_agents WHERE hour_bucket = '2025-01-01 00:00:00+00'");
  exec_or_fail(db, "UPDATE trace_metrics_hourly_agents SET total_requests = total_requests + 100");
  assert_int_equal(qn("SELECT gw_rollup_rebuild('2025-01-01 00:00:00+00', '2025-01-01 03:00:00+00')"), total);
  assert_string_equal(rollup_snapshot(), before);
  assert_int_equal(rollup_diff(), 0);
  /* An empty or inverted range touches nothing. */
  assert_int_equal(qn("SELECT gw_rollup_rebuild('2025-01-01 03:00:00+00', '2025-01-01 00:00:00+00')"), 0);
  assert_string_equal(rollup_snapshot(), before);
  gw_store_pg_sink.destroy(s);
}

/* --- maintenance and retention -------------------------------------------------------------------- */

/* Daily partitions of tbl, as a comma-separated list of their days (YYYYMMDD), oldest first. */
static const char *partitions(const char *tbl)
{
  return qv("SELECT coalesce(string_agg(right(c.relname, 8), ',' ORDER BY c.relname), '') FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = '%s'::regclass",
            tbl);
}

/* Start from no partitions at all (other tests leave days of their own). */
static void drop_partitions(void)
{
  exec_or_fail(db, "DO $$ DECLARE p text; BEGIN FOR p IN SELECT c.relname FROM pg_inherits i JOIN pg_class c "
                   "ON c.oid = i.inhrelid WHERE i.inhparent IN ('ai_interaction_traces'::regclass, "
                   "'ai_interaction_events'::regclass) LOOP EXECUTE format('DROP TABLE %I', p); END LOOP; END $$");
}

static struct gw_maint_conf maint_conf(uint32_t retention, uint32_t rollup_retention, uint32_t ahead)
{
  struct gw_maint_conf mc = {dsn, retention, rollup_retention, ahead, 3600000};
  return mc;
}

/* Partitions for today and `ahead` days after, in both partitioned tables, at any clock; a second run
 * creates nothing. */
static void test_maint_creates_ahead(void **state)
{
  drop_partitions();
  struct gw_maint_conf mc = maint_conf(90, 400, 3);
  struct gw_maint_result res;
  struct gw_err err = {0};
  int64_t runs = gw_metric_get(GW_M_MAINT_RUNS), created = gw_metric_get(GW_M_PARTITIONS_CREATED);
  /* 2025-01-01 23:59:59 UTC: "today" is the UTC day, whatever the session zone. */
  exec_or_fail(db, "SET TIME ZONE 'Pacific/Kiritimati'");
  assert_int_equal(gw_maint_run(db, &mc, T0 + DAY - 1000000000ull, &res, &err), GW_OK);
  exec_or_fail(db, "SET TIME ZONE 'UTC'");
  assert_true(res.ran);
  assert_int_equal(res.partitions_created, 8);
  assert_int_equal(res.partitions_dropped, 0);
  assert_string_equal(partitions("ai_interaction_traces"), "20250101,20250102,20250103,20250104");
  assert_string_equal(partitions("ai_interaction_events"), "20250101,20250102,20250103,20250104");
  assert_int_equal(gw_metric_get(GW_M_MAINT_RUNS) - runs, 1);
  assert_int_equal(gw_metric_get(GW_M_PARTITIONS_CREATED) - created, 8);
  /* The next day: one more each; nothing dropped inside retention. */
  assert_int_equal(gw_maint_run(db, &mc, T0 + DAY, &res, &err), GW_OK);
  assert_int_equal(res.partitions_created, 2);
  assert_string_equal(partitions("ai_interaction_traces"), "20250101,20250102,20250103,20250104,20250105");
  assert_int_equal(gw_maint_run(db, &mc, T0 + DAY, &res, &err), GW_OK);
  assert_int_equal(res.partitions_created, 0);
}

/* A partition goes when its whole day is older than retention_days, not a moment before; rows of kept
 * days stay; rollups live until rollup_retention_days; old rejects go with the raw retention. */
static void test_maint_drops_expired(void **state)
{
  drop_partitions();
  void *s = store_create(dsn);
  struct gw_record r[3] = {rec(1, 1, T0), rec(1, 2, T0 + DAY), rec(1, 3, T0 + 2 * DAY)};
  struct gw_sink_outcome out;
  assert_int_equal(send1(s, r, 3, &out), GW_SINK_OK);
  exec_or_fail(db, "INSERT INTO ai_interaction_rejects (record, error, created_at) VALUES "
                   "('{\"n\": 1}', 'old', '2025-01-01 10:00+00'), ('{\"n\": 2}', 'new', '2025-01-03 10:00+00')");
  assert_int_equal(qn("SELECT count(*) FROM trace_metrics_hourly"), 3);
  struct gw_maint_conf mc = maint_conf(30, 32, 0);
  struct gw_maint_result res;
  struct gw_err err = {0};
  int64_t dropped = gw_metric_get(GW_M_PARTITIONS_DROPPED);
  /* 2025-02-01 00:00: day 2025-01-01 ended exactly 30 days ago: dropped; 01-02 ended 29 days ago: kept. */
  assert_int_equal(gw_maint_run(db, &mc, T0 - 123456789ull + 31 * DAY, &res, &err), GW_OK);
  assert_int_equal(res.partitions_dropped, 1);
  assert_int_equal(gw_metric_get(GW_M_PARTITIONS_DROPPED) - dropped, 1);
  assert_null(strstr(partitions("ai_interaction_traces"), "20250101"));
  assert_non_null(strstr(partitions("ai_interaction_traces"), "20250102"));
  assert_int_equal(rows(), 2);
  assert_string_equal(qv("SELECT string_agg(span_id, ',' ORDER BY span_id) FROM ai_interaction_traces"),
                      "0000000000000002,0000000000000003");
  assert_int_equal(res.rejects_deleted, 1);
  assert_string_equal(qv("SELECT string_agg(error, ',') FROM ai_interaction_rejects"), "new");
  /* Rollups of the dropped day outlive it ... */
  assert_int_equal(res.rollup_rows_deleted, 0);
  assert_int_equal(qn("SELECT count(*) FROM trace_metrics_hourly"), 3);
  /* ... until rollup_retention_days (32) passes for them: 2025-02-02 00:00:01 expires the 2025-01-01 00:00
   * hour, and day 01-02 has ended 30 days before. */
  assert_int_equal(gw_maint_run(db, &mc, T0 - 123456789ull + 32 * DAY + 1000000000ull, &res, &err), GW_OK);
  assert_int_equal(res.rollup_rows_deleted, 1);
  assert_int_equal(res.partitions_dropped, 1);
  assert_int_equal(qn("SELECT count(*) FROM trace_metrics_hourly WHERE hour_bucket < '2025-01-02'"), 0);
  assert_int_equal(qn("SELECT count(*) FROM trace_metrics_hourly"), 2);
  assert_int_equal(rows(), 1);
  /* The writer still stores a span of a kept day (its partition is there) and re-creates any missing one. */
  struct gw_record late = rec(1, 4, T0 + 3 * DAY);
  assert_int_equal(send1(s, &late, 1, &out), GW_SINK_OK);
  assert_int_equal(rows(), 2);
  /* A trace's summary (migrations/0007_trace_summaries.sql) goes once its last span is past retention. */
  char q[200];
  snprintf(q, sizeof q, "SELECT count(*) FROM ai_trace_summaries WHERE trace_id = '%s'", late.trace_id);
  assert_int_equal(qn(q), 1);
  /* ... as do the ids kept for it (migrations/0012_trace_ids.sql) */
  char qi[200], ins[300];
  snprintf(ins, sizeof ins,
           "INSERT INTO ai_trace_ids (trace_id, user_id, start_time) SELECT trace_id, 'u', min(start_time) "
           "FROM ai_interaction_traces WHERE trace_id = '%s' GROUP BY trace_id", late.trace_id);
  exec_or_fail(db, ins);
  snprintf(qi, sizeof qi, "SELECT count(*) FROM ai_trace_ids WHERE trace_id = '%s'", late.trace_id);
  assert_int_equal(gw_maint_run(db, &mc, T0 + 3 * DAY + 29 * DAY, &res, &err), GW_OK);
  assert_int_equal(qn(q), 1);
  assert_int_equal(qn(qi), 1);
  assert_int_equal(gw_maint_run(db, &mc, T0 + 3 * DAY + 31 * DAY, &res, &err), GW_OK);
  assert_int_equal(qn(q), 0);
  assert_int_equal(qn(qi), 0);
  gw_store_pg_sink.destroy(s);
}

/* Only one session maintains at a time; the others return at once and do nothing. Bad arguments are an
 * error naming them, not a silent no-op. */
static void test_maint_lock_and_args(void **state)
{
  PGconn *other = connect_or_fail(dsn);
  exec_or_fail(other, "BEGIN");
  exec_or_fail(other, "SELECT pg_advisory_xact_lock(1735880052)");
  struct gw_maint_conf mc = maint_conf(1, 1, 2);
  struct gw_maint_result res;
  struct gw_err err = {0};
  assert_int_equal(gw_maint_run(db, &mc, T0 + 400 * DAY, &res, &err), GW_OK);
  assert_false(res.ran);
  assert_int_equal(res.partitions_created + res.partitions_dropped, 0);
  assert_null(strstr(partitions("ai_interaction_traces"), "20260205"));
  exec_or_fail(other, "COMMIT");
  PQfinish(other);
  assert_int_equal(gw_maint_run(db, &mc, T0 + 400 * DAY, &res, &err), GW_OK);
  assert_true(res.ran);
  assert_non_null(strstr(partitions("ai_interaction_traces"), "20260205"));

  int64_t errors = gw_metric_get(GW_M_MAINT_ERRORS);
  mc.rollup_retention_days = 0;
  assert_int_equal(gw_maint_run(db, &mc, T0, &res, &err), GW_ERR(DB_DATA));
  assert_non_null(strstr(err.msg, "rollup_retention_days >= retention_days"));
  assert_int_equal(gw_metric_get(GW_M_MAINT_ERRORS) - errors, 1);
}

/* The loop on its own thread: creates partitions ahead at start, survives an unreachable database, stops
 * promptly. */
static void test_maint_loop(void **state)
{
  struct gw_maint_conf mc = maint_conf(90, 400, 5);
  struct gw_err err = {0};
  int64_t runs = gw_metric_get(GW_M_MAINT_RUNS);
  struct gw_maint *m = gw_maint_start(&mc, &err);
  assert_non_null(m);
  for (int i = 0; i < 200 && gw_metric_get(GW_M_MAINT_RUNS) == runs; i++)
    usleep(50000);
  assert_int_equal(gw_metric_get(GW_M_MAINT_RUNS) - runs, 1);
  char day[16];
  time_t t = time(NULL) + 5 * 86400;
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(day, sizeof day, "%Y%m%d", &tm);
  assert_non_null(strstr(partitions("ai_interaction_traces"), day));
  assert_non_null(strstr(partitions("ai_interaction_events"), day));
  gw_maint_stop(m);

  struct gw_maint_conf down = maint_conf(90, 400, 1);
  down.dsn = "host=127.0.0.1 port=1 user=nobody password=hunter2 connect_timeout=2";
  int64_t errors = gw_metric_get(GW_M_MAINT_ERRORS);
  m = gw_maint_start(&down, &err);
  assert_non_null(m);
  usleep(200000);
  gw_maint_stop(m); /* returns although it never connected */
  assert_int_equal(gw_metric_get(GW_M_MAINT_ERRORS), errors); /* connection failures are not run errors */

  mc.rollup_retention_days = 10;
  assert_null(gw_maint_start(&mc, &err));
  assert_int_equal(err.rc, GW_ERR(CONFIG));
}

/* Content events whose span never arrived: counted by the maintenance query and published as a gauge. */
static void test_orphan_events(void **state)
{
  exec_or_fail(db, "SELECT gw_ensure_partition('ai_interaction_events', (now() AT TIME ZONE 'UTC')::date), "
                   "gw_ensure_partition('ai_interaction_events', (now() AT TIME ZONE 'UTC')::date - 1), "
                   "gw_ensure_partition('ai_interaction_traces', (now() AT TIME ZONE 'UTC')::date), "
                   "gw_ensure_partition('ai_interaction_traces', (now() AT TIME ZONE 'UTC')::date - 1)");
  exec_or_fail(db, "INSERT INTO ai_interaction_traces (trace_id, span_id, start_time) VALUES "
                   "(repeat('a', 32), repeat('1', 16), now() - interval '3 hours')");
  exec_or_fail(db, "INSERT INTO ai_interaction_events (trace_id, span_id, time, event_name, seq, direction, content) VALUES "
                   "(repeat('a', 32), repeat('1', 16), now() - interval '2 hours', 'gen_ai.user.message', 0, 'input', '{}'),"
                   "(repeat('b', 32), repeat('2', 16), now() - interval '2 hours', 'gen_ai.user.message', 0, 'input', '{}'),"
                   "(repeat('b', 32), repeat('2', 16), now() - interval '2 hours', 'gen_ai.choice', 0, 'output', '{}'),"
                   "(repeat('c', 32), repeat('3', 16), now() - interval '10 minutes', 'gen_ai.user.message', 0, 'input', '{}'),"
                   "(repeat('d', 32), repeat('4', 16), now() - interval '2 hours', 'gen_ai.evaluation.result', 0, NULL, '{}')");
  /* b's two events: its span never came. a has its row; c is too recent to judge; d is not content. */
  assert_string_equal(qv("SELECT gw_orphan_event_count(now(), 90)"), "2");
  struct gw_maint_conf mc = maint_conf(90, 400, 0);
  struct gw_err err = {0};
  gw_metric_set(GW_M_EVENTS_ORPHANED, -1);
  struct gw_maint *m = gw_maint_start(&mc, &err);
  assert_non_null(m);
  for (int i = 0; i < 200 && gw_metric_get(GW_M_EVENTS_ORPHANED) == -1; i++)
    usleep(50000);
  gw_maint_stop(m);
  assert_int_equal(gw_metric_get(GW_M_EVENTS_ORPHANED), 2);
}

/* The rebuild command's C side: argument checks name the argument; a rebuild equals the GROUP BY; hours
 * older than the raw rows retention keeps are left alone (their rollups are all that is left of them). */
static void test_rollup_rebuild_cli(void **state)
{
  void *s = store_create(dsn);
  mixed_load(s);
  const char *before = rollup_snapshot();
  exec_or_fail(db, "UPDATE trace_metrics_hourly_agents SET total_cost = total_cost * 3, duration_histogram = '{1}'");
  long long n = -1;
  struct gw_err err = {0};
  char kept[32];
  const int forever = 100000; /* days: the 2025 rows are within retention */
  assert_int_equal(gw_rollup_rebuild(db, "2025-01-01T00:00:00Z", "2025-01-01 03:00", forever, kept, &n, &err), GW_OK);
  assert_string_equal(kept, "");
  assert_int_equal(n, qn("SELECT count(*) FROM trace_metrics_hourly"));
  assert_string_equal(rollup_snapshot(), before);
  assert_int_equal(rollup_diff(), 0);
  assert_int_equal(gw_rollup_rebuild(db, "yesterday-ish", "2025-01-02", forever, kept, &n, &err), GW_ERR(INVALID));
  assert_string_equal(err.msg, "--from 'yesterday-ish' is not a timestamp (use ISO 8601, e.g. 2026-11-01T00:00:00Z)");
  assert_int_equal(gw_rollup_rebuild(db, "2025-01-02", "", forever, kept, &n, &err), GW_ERR(INVALID));
  assert_string_equal(err.msg, "--to is required");
  assert_int_equal(gw_rollup_rebuild(db, "2025-01-02T00:00:00+02:00", "2025-01-01T22:00:00Z", forever, kept, &n, &err),
                   GW_ERR(INVALID));
  assert_string_equal(err.msg, "--to 2025-01-01T22:00:00Z must be after --from 2025-01-01T22:00:00Z");

  /* With 30 days of raw rows kept, the 2025 hours are past retention: a range wholly there is refused,
   * and a range reaching into it rebuilds from the first kept day only, leaving the old rollups as they
   * are (here deliberately wrong, to see that nothing touched them). */
  exec_or_fail(db, "UPDATE trace_metrics_hourly_agents SET total_cost = total_cost * 3");
  const char *tampered = rollup_snapshot();
  assert_int_equal(gw_rollup_rebuild(db, "2025-01-01T00:00:00Z", "2025-01-01 03:00", 30, kept, &n, &err), GW_ERR(INVALID));
  assert_non_null(strstr(err.msg, "--to 2025-01-01T03:00:00Z: the whole range is older than the raw rows kept "
                                  "(postgres.retention_days 30: from "));
  assert_non_null(strstr(err.msg, "on); its rollups are all that is left of it and are kept as they are"));
  assert_int_equal(gw_rollup_rebuild(db, "2025-01-01T00:00:00Z", "2100-01-01", 30, kept, &n, &err), GW_OK);
  assert_string_equal(kept, qv("%s", "SELECT to_char(date_trunc('day', now() - interval '30 days'), "
                               "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"));
  assert_int_equal(n, 0); /* no raw row since then */
  assert_string_equal(rollup_snapshot(), tampered);
  gw_store_pg_sink.destroy(s);
}

/* --- a writer held by a lock ---------------------------------------------------------------------- */

/* Another session holds the traces table exclusively (an operator's ALTER TABLE, a VACUUM FULL): the
 * writer's statement gives up at postgres.statement_timeout (57014), the batch is retried (RETRY, its
 * error saying why), and once the lock is gone it lands. Without the limit the writer would wait silently
 * for as long as the lock is held. */
struct held_send {
  void *store;
  struct gw_spool_entry e;
  struct gw_sink_outcome out;
  enum gw_sink_result res;
  atomic_bool done;
};

static void *held_send_thread(void *arg)
{
  struct held_send *h = arg;
  h->res = gw_store_pg_sink.send(h->store, &h->e, 1, &h->out);
  atomic_store(&h->done, true);
  return NULL;
}

static void test_statement_timeout(void **state)
{
  void *s = store_create_timeout(dsn, 300);
  struct gw_record r0 = rec(0x5101, 0x5101, T0), r1 = rec(0x5102, 0x5102, T0);
  struct gw_sink_outcome out;
  assert_int_equal(send1(s, &r0, 1, &out), GW_SINK_OK); /* connected, the day's partition made */
  PGconn *locker = connect_or_fail(dsn);
  exec_or_fail(locker, "BEGIN");
  exec_or_fail(locker, "LOCK TABLE ai_interaction_traces IN ACCESS EXCLUSIVE MODE");
  struct held_send h = {.store = s, .e = entry(&r1, 1, 2)};
  atomic_init(&h.done, false);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, held_send_thread, &h), 0);
  bool returned = false;
  for (int i = 0; i < 200 && !(returned = atomic_load(&h.done)); i++)
    usleep(50000);
  exec_or_fail(locker, "ROLLBACK"); /* lets a writer still held go, so that the test ends either way */
  PQfinish(locker);
  pthread_join(t, NULL);
  assert_true(returned);
  assert_int_equal(h.res, GW_SINK_RETRY);
  if (!strstr(h.out.error, "57014"))
    fail_msg("the retry's error does not name the timeout: %s", h.out.error);
  assert_int_equal(send1(s, &r1, 1, &out), GW_SINK_OK);
  assert_int_equal(rows(), 2);
  gw_store_pg_sink.destroy(s);
}

/* Stopping while the writer waits on a lock, with no statement limit: at the drain deadline the statement is
 * cancelled, the send returns RETRY (the batch stays in the spool) and the exit is not held by the lock. */
static void test_stopping_cancels_statement(void **state)
{
  void *s = store_create_timeout(dsn, 0);
  struct gw_record r0 = rec(0x5201, 0x5201, T0), r1 = rec(0x5202, 0x5202, T0);
  struct gw_sink_outcome out;
  assert_int_equal(send1(s, &r0, 1, &out), GW_SINK_OK);
  PGconn *locker = connect_or_fail(dsn);
  exec_or_fail(locker, "BEGIN");
  exec_or_fail(locker, "LOCK TABLE ai_interaction_traces IN ACCESS EXCLUSIVE MODE");
  struct held_send h = {.store = s, .e = entry(&r1, 1, 2)};
  atomic_init(&h.done, false);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, held_send_thread, &h), 0);
  /* the writer waiting on the lock */
  for (int i = 0; i < 200 && qn("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                                 "application_name = 'genai-gateway' AND wait_event_type = 'Lock'") == 0; i++)
    usleep(50000);
  bool waiting = qn("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                    "application_name = 'genai-gateway' AND wait_event_type = 'Lock'") > 0;
  gw_store_pg_sink.stopping(s, mono_ns() + 300000000ull);
  bool returned = false;
  for (int i = 0; i < 100 && !(returned = atomic_load(&h.done)); i++)
    usleep(50000);
  exec_or_fail(locker, "ROLLBACK"); /* lets a writer still held go, so that the test ends either way */
  PQfinish(locker);
  pthread_join(t, NULL);
  assert_true(waiting);
  assert_true(returned);
  assert_int_equal(h.res, GW_SINK_RETRY);
  assert_int_equal(rows(), 1);
  gw_store_pg_sink.destroy(s);
}

/* Stopping while the server does not answer at all (its backend stopped: a host frozen, a network gone
 * quiet), where even the cancel cannot take: a moment past the deadline the connection is closed under the
 * writer, which returns RETRY (the batch stays in the spool) instead of waiting for TCP to give up. */
static void test_stopping_silent_server(void **state)
{
  void *s = store_create_timeout(dsn, 0);
  struct gw_record r0 = rec(0x5301, 0x5301, T0), r1 = rec(0x5302, 0x5302, T0);
  struct gw_sink_outcome out;
  assert_int_equal(send1(s, &r0, 1, &out), GW_SINK_OK);
  long pid = qn("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND "
                "application_name = 'genai-gateway'");
  assert_true(pid > 0);
  assert_int_equal(kill((pid_t)pid, SIGSTOP), 0);
  struct held_send h = {.store = s, .e = entry(&r1, 1, 2)};
  atomic_init(&h.done, false);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, held_send_thread, &h), 0);
  usleep(300000);
  bool early = atomic_load(&h.done);
  gw_store_pg_sink.stopping(s, mono_ns() + 200000000ull);
  bool returned = false;
  for (int i = 0; i < 100 && !(returned = atomic_load(&h.done)); i++)
    usleep(50000);
  kill((pid_t)pid, SIGCONT); /* lets a writer still held go, so that the test ends either way */
  pthread_join(t, NULL);
  assert_false(early);
  assert_true(returned);
  assert_int_equal(h.res, GW_SINK_RETRY);
  gw_store_pg_sink.destroy(s);
  assert_int_equal(rows(), 1);
}

/* The summaries' function raising (the runs after commit fail), and back. */
static void break_summaries(void)
{
  exec_or_fail(db, "ALTER FUNCTION gw_summarize_traces(text[], timestamptz, timestamptz) RENAME TO gw_summarize_saved");
  exec_or_fail(db, "CREATE FUNCTION gw_summarize_traces(tids text[], from_ts timestamptz, to_ts timestamptz) "
                   "RETURNS bigint LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'summaries broken for the test'; END $$");
}

static void mend_summaries(void)
{
  exec_or_fail(db, "DROP FUNCTION gw_summarize_traces(text[], timestamptz, timestamptz)");
  exec_or_fail(db, "ALTER FUNCTION gw_summarize_saved(text[], timestamptz, timestamptz) RENAME TO gw_summarize_traces");
}

/* The runs after commit failing (here the summaries' function raising; in life a connection lost right
 * after COMMIT): the batch is stored and acknowledged, and the writer runs them again before its next
 * batch, for the spans they were owed to, even when no other span of that trace ever comes. */
static void test_owed_fills_paid(void **state)
{
  void *s = store_create(dsn);
  break_summaries();
  struct gw_record a = rec(0x6101, 0x6101, T0), b = rec(0x6102, 0x6102, T0);
  struct gw_sink_outcome out;
  enum gw_sink_result r1 = send1(s, &a, 1, &out);
  long stored = rows();
  long summaries = qn("SELECT count(*) FROM ai_trace_summaries WHERE trace_id = '00000000000000000000000000006101'");
  mend_summaries();
  assert_int_equal(r1, GW_SINK_OK);
  assert_int_equal(stored, 1);
  assert_int_equal(summaries, 0);
  /* another trace's batch: the owed run for the first trace goes first */
  assert_int_equal(send1(s, &b, 1, &out), GW_SINK_OK);
  assert_string_equal(qv("SELECT spans FROM ai_trace_summaries WHERE trace_id = '%032x'", 0x6101), "1");
  assert_string_equal(qv("SELECT spans FROM ai_trace_summaries WHERE trace_id = '%032x'", 0x6102), "1");
  gw_store_pg_sink.destroy(s);
}

/* The same, paid while the writer is idle (no batch comes after). */
static void test_owed_fills_paid_when_idle(void **state)
{
  void *s = store_create(dsn);
  break_summaries();
  struct gw_record a = rec(0x6201, 0x6201, T0);
  struct gw_sink_outcome out;
  enum gw_sink_result r1 = send1(s, &a, 1, &out);
  mend_summaries();
  assert_int_equal(r1, GW_SINK_OK);
  assert_int_equal(qn("SELECT count(*) FROM ai_trace_summaries WHERE trace_id = '00000000000000000000000000006201'"), 0);
  gw_store_pg_sink.idle(s);
  assert_string_equal(qv("SELECT spans FROM ai_trace_summaries WHERE trace_id = '%032x'", 0x6201), "1");
  gw_store_pg_sink.destroy(s);
}

/* With one writer, the batch whose runs after commit failed stays in the spool (keep_from) until they are
 * paid, so that a crash or a stop before replays it; holding, so that sink.c gives the writer ticks
 * (send with nothing) in which it pays them. */
static void test_owed_batch_kept(void **state)
{
  void *s = store_create(dsn);
  break_summaries();
  struct gw_record a = rec(0x6301, 0x6301, T0);
  struct gw_spool_entry e = entry(&a, 1, 7);
  struct gw_sink_outcome out, tick;
  memset(&out, 0, sizeof out);
  enum gw_sink_result r1 = gw_store_pg_sink.send(s, &e, 1, &out);
  memset(&tick, 0, sizeof tick);
  gw_store_pg_sink.send(s, NULL, 0, &tick); /* still failing */
  mend_summaries();
  assert_int_equal(r1, GW_SINK_OK);
  assert_int_equal(out.keep_from, 7);
  assert_true(out.holding);
  assert_int_equal(tick.keep_from, 7);
  assert_true(tick.holding);
  assert_int_equal(qn("SELECT count(*) FROM ai_trace_summaries WHERE trace_id = '00000000000000000000000000006301'"), 0);
  /* the next tick past the retry's backoff pays it and lets the batch go */
  bool paid = false;
  for (int i = 0; i < 300 && !paid; i++) {
    memset(&tick, 0, sizeof tick);
    assert_int_equal(gw_store_pg_sink.send(s, NULL, 0, &tick), GW_SINK_OK);
    paid = !tick.keep_from && !tick.holding;
    if (!paid)
      usleep(50000);
  }
  assert_true(paid);
  assert_string_equal(qv("SELECT spans FROM ai_trace_summaries WHERE trace_id = '%032x'", 0x6301), "1");
  gw_store_pg_sink.destroy(s);
}

/* Stopping with the runs still failing: one last try, then no longer holding (the drain may end), the
 * batch still kept (the disk spool replays it at the next start). One of several writers keeps its batch
 * as well (gw_sink_start_n holds the cursor before it). */
static void test_owed_batch_kept_at_stop(void **state)
{
  void *s = store_create(dsn);
  struct gw_store_conf two = {dsn, MIGRATIONS, 90, 2, 79, 0};
  struct gw_err err = {0};
  void *w2 = gw_store_pg_sink.create(&two, &err);
  assert_non_null(w2);
  break_summaries();
  struct gw_record a = rec(0x6401, 0x6401, T0), b = rec(0x6402, 0x6402, T0);
  struct gw_spool_entry ea = entry(&a, 1, 9), eb = entry(&b, 1, 3);
  struct gw_sink_outcome out, o2, tick;
  memset(&out, 0, sizeof out);
  memset(&o2, 0, sizeof o2);
  enum gw_sink_result r1 = gw_store_pg_sink.send(s, &ea, 1, &out);
  enum gw_sink_result r2 = gw_store_pg_sink.send(w2, &eb, 1, &o2);
  gw_store_pg_sink.stopping(s, mono_ns() + 5000000000ull);
  memset(&tick, 0, sizeof tick);
  gw_store_pg_sink.send(s, NULL, 0, &tick);
  mend_summaries();
  assert_int_equal(r1, GW_SINK_OK);
  assert_int_equal(out.keep_from, 9);
  assert_true(out.holding);
  assert_int_equal(tick.keep_from, 9);
  assert_false(tick.holding);
  assert_int_equal(r2, GW_SINK_OK);
  assert_int_equal(o2.keep_from, 3); /* one of several writers keeps its batch too */
  assert_true(o2.holding);
  gw_store_pg_sink.destroy(w2);
  gw_store_pg_sink.destroy(s);
}

struct maint_stopper {
  struct gw_maint *m;
  atomic_bool done;
};

static void *maint_stop_thread(void *arg)
{
  struct maint_stopper *ms = arg;
  gw_maint_stop(ms->m);
  atomic_store(&ms->done, true);
  return NULL;
}

/* Stopping the maintenance loop while its run waits on a server that does not answer (its backend
 * stopped): the run is cancelled, then its connection closed, and the stop returns in seconds. */
static void test_maint_stop_silent_server(void **state)
{
  struct gw_maint_conf mc = maint_conf(90, 400, 1);
  mc.interval_ms = 100;
  struct gw_err err = {0};
  int64_t runs = gw_metric_get(GW_M_MAINT_RUNS);
  struct gw_maint *m = gw_maint_start(&mc, &err);
  assert_non_null(m);
  for (int i = 0; i < 200 && gw_metric_get(GW_M_MAINT_RUNS) == runs; i++)
    usleep(50000);
  long pid = qn("SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE datname = current_database() AND "
                "application_name = 'genai-gateway maintenance'");
  assert_true(pid > 0);
  assert_int_equal(kill((pid_t)pid, SIGSTOP), 0);
  usleep(400000); /* the next run is sent and waits */
  struct maint_stopper ms = {.m = m};
  atomic_init(&ms.done, false);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, maint_stop_thread, &ms), 0);
  bool returned = false;
  for (int i = 0; i < 160 && !(returned = atomic_load(&ms.done)); i++)
    usleep(50000);
  kill((pid_t)pid, SIGCONT); /* lets a loop still held go, so that the test ends either way */
  pthread_join(t, NULL);
  assert_true(returned);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_connect_forces_utf8),
    cmocka_unit_test_setup_teardown(test_migrate_idempotent, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_migrate_newer_schema, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_migrate_order_and_failure, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_send_exact_values, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_rollup_groups_aggregated_exactly, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_two_writers_fill_across_batches, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_agent_fill_only_when_named, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_resend_no_duplicates, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_session_user_filled_across_trace, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_bad_event_rejected_rest_stored, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_bad_rows_rejected_rest_stored, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_rejects_counted_once, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_issue11_unfit_rows_no_split, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_issue11_unfit_events_no_split, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_partitions_for_any_day, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_entries_filtered, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_connection_failure_then_reconnect, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_newer_schema_blocks_writer, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_database_state_error_retried, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_database_state_errors_table, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_read_only_reconnects, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_connection_lost_mid_batch, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_commit_answer_lost_committed, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_commit_answer_lost_aborted, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_commit_answer_lost_stopping, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_large_batch, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_partition_race, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_partition_made_by_someone_else, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_sink_end_to_end, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_trace_facts, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_rollup_batch_equals_group_by, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_rollup_one_row_per_model, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_rollup_resend_unchanged, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_rollup_mixed_load, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_direct_copy_replay_falls_back, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_direct_copy_merges_events, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_hist_quantile, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_rollup_rebuild, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_maint_creates_ahead, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_maint_drops_expired, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_maint_lock_and_args, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_maint_loop, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_rollup_rebuild_cli, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_orphan_events, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_statement_timeout, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_stopping_cancels_statement, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_stopping_silent_server, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_owed_fills_paid, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_owed_fills_paid_when_idle, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_owed_batch_kept, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_owed_batch_kept_at_stop, reset_test, clean_test),
    cmocka_unit_test_setup_teardown(test_maint_stop_silent_server, reset_test, clean_test),
  };
  return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
