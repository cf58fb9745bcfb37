/*
 * main.c: flags, config, start in order, wait for a signal, stop in reverse (DESIGN §8).
 *
 * Start: config (fail fast naming file, key and reason) -> signals blocked before gRPC starts its
 * threads -> spool -> sinks (the Postgres writer, then the exporters the configuration turns on) ->
 * receivers -> admin -> ready.
 * Stop on SIGTERM/SIGINT: not ready, refuse new requests (UNAVAILABLE / 503), finish in-flight ones,
 * close the spool, let every sink drain in parallel for up to shutdown_grace_ms, exit 0. What is left stays
 * in the disk spool for the next start; with the memory spool it is lost: said, counted, exit status 3.
 * The export backends, declared once each in exporters/, are listed in `exporter_types` below.
 */
#include <grpc/grpc.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "cli.h"
#include "core/conf.h"
#include "core/auth.h"
#include "core/log.h"
#include "core/net.h"
#include "core/memtrim.h"
#include "core/reload.h"
#include "core/tls.h"
#include "core/metrics.h"
#include "cost/cost.h"
#include "exporters.h"
#include "redact/redact.h"
#include "normalize/normalize.h"
#include "receive/lane.h"
#include "receive/receive.h"
#include "sink/sink.h"
#include "spool/spool.h"
#include "store/store.h"

/* Apply migrations now when Postgres is reachable, so a schema problem (newer than this binary, a failing
 * migration) stops the start with a clear error. Unreachable is not an error: the writer migrates when it
 * first connects, and the spool holds the data meanwhile. */
static gw_rc migrate_at_start(const char *dsn, const char *dir, struct gw_err *err)
{
  /* gw_pg_connect: a connect timeout (a server that accepts and never answers must not hold the start,
   * during which SIGTERM is not yet read), and a reason that never quotes the DSN. */
  char why[256];
  PGconn *c = gw_pg_connect(dsn, "genai-gateway", why, sizeof why);
  if (!c) {
    gw_warn("main", "PostgreSQL is not reachable yet (%s); spans are spooled and stored once it is", why);
    return GW_OK;
  }
  gw_rc rc = gw_store_migrate(c, dir, err);
  PQfinish(c);
  if (rc == GW_ERR(DB_CONN)) {
    gw_warn("main", "PostgreSQL connection lost while migrating; the writer will retry");
    return GW_OK;
  }
  if (rc == GW_OK)
    gw_info("main", "database schema is up to date");
  return rc;
}

/* What makes dsn unusable before any connection is tried (libpq cannot parse it, or an sslmode it does not
 * know, which libpq only says at each connection), or NULL. Not echoed: libpq's reason may quote a password,
 * except for an unknown option's name. */
static const char *dsn_problem(const char *dsn, char *buf, size_t n)
{
  char *perr = NULL;
  PQconninfoOption *opts = PQconninfoParse(dsn, &perr);
  if (!opts) {
    if (perr && strncmp(perr, "invalid connection option", 25) == 0)
      snprintf(buf, n, "%.*s", (int)strcspn(perr, "\n"), perr);
    else
      snprintf(buf, n, "is not a connection string libpq accepts (a URI postgresql://USER@HOST:PORT/DB or "
                       "key=value pairs)");
    PQfreemem(perr);
    return buf;
  }
  PQfreemem(perr);
  const char *bad = NULL;
  static const char *const modes[] = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"};
  for (PQconninfoOption *o = opts; o->keyword; o++) {
    if (strcmp(o->keyword, "sslmode") != 0 || !o->val)
      continue;
    bool ok = false;
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
      ok |= strcmp(o->val, modes[i]) == 0;
    if (!ok) {
      snprintf(buf, n, "sslmode '%.32s' is not one of disable, allow, prefer, require, verify-ca, verify-full", o->val);
      bad = buf;
    }
  }
  PQconninfoFree(opts);
  return bad;
}

/* The export backends (DESIGN §7): each runs when its exporters.<name> section has an endpoint. */
static const struct gw_exporter_type *const exporter_types[] = {
  &gw_exporter_langfuse,
  &gw_exporter_signoz,
  &gw_exporter_otlp,
};

/* After the sinks stopped: what each consumer had not finished. The disk spool keeps it for the next start;
 * the memory spool loses it, which is said (warn), counted and makes the exit status 3. True when lost. */
static bool leftover(struct gw_spool *spool)
{
  bool disk = gw_spool_is_disk(spool);
  uint64_t lost_spans = 0, lost_logs = 0;
  for (int i = 0; i < gw_spool_consumer_count(spool); i++) {
    struct gw_spool_pending p;
    gw_spool_pending(spool, i, &p);
    if (!p.entries)
      continue;
    const char *name = gw_spool_consumer_name(spool, i);
    if (disk) {
      gw_info("main", "%s had not finished %llu spans and %llu log records (%llu entries): kept in the disk spool, "
              "delivered after the next start", name, (unsigned long long)p.spans, (unsigned long long)p.log_records,
              (unsigned long long)p.entries);
      continue;
    }
    gw_warn("main", "%s had not finished %llu spans and %llu log records (%llu entries) within the grace: the memory "
            "spool loses them (spool.mode: disk keeps them for the next start)", name, (unsigned long long)p.spans,
            (unsigned long long)p.log_records, (unsigned long long)p.entries);
    /* Consumers read in one order: the one furthest behind holds every entry another one still holds. */
    if (p.spans > lost_spans)
      lost_spans = p.spans;
    if (p.log_records > lost_logs)
      lost_logs = p.log_records;
  }
  gw_metric_add(GW_M_SHUTDOWN_DROPPED_SPANS, (int64_t)lost_spans);
  gw_metric_add(GW_M_SHUTDOWN_DROPPED_LOGS, (int64_t)lost_logs);
  return lost_spans || lost_logs;
}

/* Every connection takes a descriptor: the soft limit (often 1024) would cap clients long before any limit
 * of ours. Raise it to the hard limit, and say when the HTTP connection limit cannot fit. */
static void raise_nofile(const struct gw_conf *conf)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return;
  if (rl.rlim_cur < rl.rlim_max) {
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
      rl.rlim_cur = was;
  }
  gw_info("main", "open files limit %llu", (unsigned long long)rl.rlim_cur);
  /* Room for the HTTP and gRPC connections plus the admin port, the spool, Postgres and the exporters. */
  rlim_t need = (rlim_t)conf->receivers.http_max_connections + conf->receivers.grpc_max_connections + 1024;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
    gw_warn("main", "open files limit %llu leaves too little room for receivers.http.max_connections %u and "
            "receivers.grpc.max_connections %u (%llu descriptors with the gateway's own): raise it (ulimit -n, "
            "LimitNOFILE=) or lower max_connections",
            (unsigned long long)rl.rlim_cur, conf->receivers.http_max_connections,
            conf->receivers.grpc_max_connections, (unsigned long long)need);
}

/* The defaults listen on loopback only; a receiver others can reach should have TLS and a token. */
static void warn_exposed(const struct gw_conf *conf)
{
  const struct {
    const char *key, *addr;
  } rs[] = {{"receivers.grpc.addr", conf->receivers.grpc_addr}, {"receivers.http.addr", conf->receivers.http_addr}};
  for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) {
    if (gw_net_is_loopback(rs[i].addr))
      continue;
    if (!conf->receivers.tls_cert[0])
      gw_warn("main", "%s %s is reachable from other hosts without TLS: spans%s travel in cleartext (set "
              "receivers.tls.cert_file and key_file)", rs[i].key, rs[i].addr,
              conf->receivers.auth_tokens[0] ? " and bearer tokens" : "");
    if (!conf->receivers.auth_tokens[0] && !conf->receivers.tls_client_ca[0])
      gw_warn("main", "%s %s is reachable from other hosts without authentication: anyone who reaches it can "
              "send spans (set receivers.auth.tokens_file, or receivers.tls.client_ca_file for client "
              "certificates)", rs[i].key, rs[i].addr);
  }
}

static void usage(FILE *f)
{
  fprintf(f, "usage: genai-gateway [--config FILE] [--check-config] [--print-config] [--version]\n"
             "       genai-gateway rollup --rebuild --from TS --to TS [--config FILE]\n"
             "       genai-gateway maintain [--now TS] [--config FILE]\n"
             "  --config FILE    YAML configuration (default: built-in defaults; see docs/config.md)\n"
             "  --check-config   load and validate the configuration, then exit (0 = valid)\n"
             "  --print-config   print the effective configuration, secrets masked, then exit\n"
             "  --version        print the version and exit\n"
             "environment: DATABASE_URL, GENAI_GW_GRPC_ADDR, GENAI_GW_HTTP_ADDR, GENAI_GW_ADMIN_ADDR,\n"
             "             GENAI_GW_LOG_LEVEL, GENAI_GW_SPOOL_DIR, GENAI_GW_DURABILITY, GENAI_GW_REDACTION_HMAC_KEY,\n"
             "             LANGFUSE_HOST, LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY, SIGNOZ_ENDPOINT,\n"
             "             SIGNOZ_INGESTION_KEY\n"
             "             (they win over the file)\n");
}

int main(int argc, char **argv)
{
  const char *config = NULL;
  bool check = false, print = false;
  if (argc > 1 && (strcmp(argv[1], "rollup") == 0 || strcmp(argv[1], "maintain") == 0))
    return gw_cli_main(argc, argv);
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--version") == 0) {
      printf("genai-gateway %s\n", GW_VERSION);
      return 0;
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(argv[i], "--config") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "genai-gateway: --config needs a file\n");
        usage(stderr);
        return 2;
      }
      config = argv[++i];
    } else if (strncmp(argv[i], "--config=", 9) == 0) {
      config = argv[i] + 9;
    } else if (strcmp(argv[i], "--check-config") == 0) {
      check = true;
    } else if (strcmp(argv[i], "--print-config") == 0) {
      print = true;
    } else {
      fprintf(stderr, "genai-gateway: unknown argument '%s'\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }

  struct gw_err err = {0};
  struct gw_conf *conf = NULL;
  if (gw_conf_load(config, &conf, &err) != GW_OK) {
    fprintf(stderr, "genai-gateway: configuration error: %s\n", err.msg);
    return 1;
  }
  char dsn_why[160];
  const char *dsn_bad = conf->postgres.dsn && conf->postgres.dsn[0] ? dsn_problem(conf->postgres.dsn, dsn_why, sizeof dsn_why) : NULL;
  if (dsn_bad) {
    fprintf(stderr, "genai-gateway: configuration error: postgres.dsn (or DATABASE_URL): %s\n", dsn_bad);
    gw_conf_destroy(conf);
    return 1;
  }
  if (print)
    gw_conf_print(conf, stdout);
  if (check || print) {
    int crc = 0;
    if (check) {
      /* The price files are part of the configuration: check them too. */
      struct gw_prices *pp =
        gw_prices_load(conf->pricing.defaults_file[0] ? conf->pricing.defaults_file : NULL, conf->pricing.file, &err);
      if (!pp) {
        fprintf(stderr, "genai-gateway: configuration error: %s\n", err.msg);
        crc = 1;
      } else {
        struct gw_redactor *rr = gw_redactor_from_conf(conf, &err);
        if (!rr) {
          fprintf(stderr, "genai-gateway: configuration error: %s\n", err.msg);
          crc = 1;
        } else {
          printf("configuration OK (%s; price table %s, %zu entries)\n",
                 conf->source ? conf->source : "built-in defaults", gw_prices_version(pp), gw_prices_count(pp));
          gw_redactor_destroy(rr);
        }
        gw_prices_destroy(pp);
      }
    }
    gw_conf_destroy(conf);
    return crc;
  }
  gw_log_set_level((enum gw_log_level)gw_log_parse_level(conf->log.level));
  raise_nofile(conf);

  /* gRPC starts threads in grpc_init: block the signals first so only sigwait sees them. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGPIPE);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  grpc_init();
  gw_normalize_init();

  int rc = 1;
  struct gw_spool *spool = NULL;
  struct gw_prices *prices = NULL;
  struct gw_redactor *redactor = NULL;
  struct gw_sink *store = NULL;
  struct gw_exporters *exporters = NULL;
  struct gw_maint *maint = NULL;
  struct gw_http_receiver *http = NULL;
  struct gw_grpc_receiver *grpc = NULL;
  struct gw_admin *admin = NULL;
  struct gw_tls *tls = NULL;
  struct gw_auth *auth = NULL;
  atomic_bool ready = false;
  struct gw_pipeline pipeline;
  gw_pipeline_init(&pipeline, conf, NULL);

  prices = gw_prices_load(conf->pricing.defaults_file[0] ? conf->pricing.defaults_file : NULL, conf->pricing.file, &err);
  if (!prices)
    goto out;
  pipeline.prices = prices;
  gw_info("main", "price table %s: %zu entries", gw_prices_version(prices), gw_prices_count(prices));

  redactor = gw_redactor_from_conf(conf, &err);
  if (!redactor)
    goto out;
  pipeline.redactor = redactor;
  pipeline.history_cache = gw_hist_cache_create(conf->receivers.history_cache_bytes);
  if (!pipeline.history_cache && conf->receivers.history_cache_bytes)
    gw_warn("main", "receivers.history_cache_bytes: %llu bytes hold no entry (or no memory for them): chat "
            "history is not kept between requests", (unsigned long long)conf->receivers.history_cache_bytes);
  if (pipeline.history_cache)
    gw_metrics_register(gw_hist_cache_render, pipeline.history_cache);

  struct gw_spool_conf sc = {conf->spool.mode,   conf->spool.dir,   conf->spool.max_bytes,
                             conf->spool.high_water, conf->spool.fsync, conf->spool.fsync_interval_ms,
                             conf->spool.segment_bytes};
  spool = gw_spool_create(&sc, &err);
  if (!spool)
    goto out;
  if (gw_spool_is_disk(spool))
    gw_info("main", "spool: disk, in %s (fsync %s), at most %llu bytes", conf->spool.dir, conf->spool.fsync,
            (unsigned long long)conf->spool.max_bytes);
  else
    gw_warn("main", "spool: memory: what Postgres has not stored yet is lost if the process stops or dies "
            "(set spool.dir or GENAI_GW_SPOOL_DIR for the disk spool)");
  if (!pipeline.forward)
    gw_info("main", "no exporter configured: spool entries keep the rows only, not the requests (spans accepted "
                    "now are not forwarded by an exporter configured later)");

  if (conf->postgres.dsn && conf->postgres.dsn[0]) {
    const char *mdir = conf->postgres.migrate ? conf->postgres.migrations_dir : NULL;
    if (mdir && migrate_at_start(conf->postgres.dsn, mdir, &err) != GW_OK)
      goto out;
    /* The writers' lock key: one per gateway process (writers of other gateways do not wait for it). */
    uint32_t nw = conf->postgres.writers ? conf->postgres.writers : 1;
    struct gw_store_conf pc = {conf->postgres.dsn, mdir, conf->postgres.retention_days, nw,
                               (int32_t)((uint32_t)getpid() ^ (uint32_t)gw_now_ns()),
                               conf->postgres.statement_timeout_ms};
    void *selves[8];
    size_t ncreated = 0;
    for (; ncreated < nw && ncreated < sizeof selves / sizeof selves[0]; ncreated++)
      if (!(selves[ncreated] = gw_store_pg_sink.create(&pc, &err)))
        break;
    if (ncreated < nw || nw > sizeof selves / sizeof selves[0]) {
      for (size_t i = 0; i < ncreated; i++)
        gw_store_pg_sink.destroy(selves[i]);
      goto out;
    }
    struct gw_sink_conf skc = {
      .batch_spans = conf->postgres.batch_rows,
      .batch_wait_ms = conf->postgres.batch_wait_ms,
      .max_entries = 1024,
      .backoff_min_ms = 100,
      .backoff_max_ms = 5000,
      .drain_ms = conf->shutdown_grace_ms,
    };
    store = gw_sink_start_n(&gw_store_pg_sink, selves, nw, spool, &skc, &err);
    if (!store)
      goto out;
    if (conf->postgres.maintenance_interval_ms) {
      struct gw_maint_conf mc = {conf->postgres.dsn, conf->postgres.retention_days,
                                 conf->postgres.rollup_retention_days, conf->postgres.partitions_ahead_days,
                                 conf->postgres.maintenance_interval_ms};
      maint = gw_maint_start(&mc, &err);
      if (!maint)
        goto out;
    }
  } else {
    gw_warn("main", "no DATABASE_URL / postgres.dsn: spans are received but not stored");
  }
  for (int i = 0; i < GW_CONF_NEXPORTERS; i++)
    if (gw_conf_exporter_on(&conf->exporters[i]) && conf->exporters[i].cleartext_credentials)
      gw_warn("main", "exporters.%s sends its credentials in cleartext to %s (insecure: true)", gw_conf_exporter_names[i],
              conf->exporters[i].endpoint);
  exporters = gw_exporters_start(conf, exporter_types, sizeof exporter_types / sizeof exporter_types[0], spool, &err);
  if (!exporters)
    goto out;

  pipeline.spool = spool;
  if (conf->receivers.tls_cert[0]) {
    if (!(tls = gw_tls_create(&(struct gw_tls_files){conf->receivers.tls_cert, conf->receivers.tls_key,
                                                      conf->receivers.tls_client_ca},
                              GW_TLS_ALPN_H2, &err)))
      goto out;
    pipeline.tls = tls;
  }
  if (conf->receivers.auth_tokens[0]) {
    if (!(auth = gw_auth_create(conf->receivers.auth_tokens, &err)))
      goto out;
    pipeline.auth = auth;
  }
  warn_exposed(conf);
  gw_reload_start(conf->receivers.reload_ms);
  gw_memtrim_start();
  if (conf->receivers.large_bytes)
    pipeline.lane = gw_lane_start(conf->receivers.large_threads, conf->receivers.large_nice);
  grpc = gw_grpc_receiver_start(&pipeline, &err);
  if (!grpc)
    goto out;
  http = gw_http_receiver_start(&pipeline, &err);
  if (!http)
    goto out;
  admin = gw_admin_start(conf->admin.addr, spool, &ready, &err);
  if (!admin)
    goto out;
  atomic_store(&ready, true);
  gw_info("main", "genai-gateway %s ready: send OTLP to %s://%s or %s://%s/v1/traces", GW_VERSION,
          tls ? "grpcs" : "grpc", conf->receivers.grpc_addr, tls ? "https" : "http", conf->receivers.http_addr);

  int sig = 0;
  for (;;) {
    sigwait(&sigs, &sig);
    if (sig == SIGHUP) {
      gw_info("main", "SIGHUP: re-reading the TLS and token files");
      gw_reload_now();
      continue;
    }
    if (sig != SIGPIPE)
      break;
  }
  gw_info("main", "signal %d: stopping (grace %u ms)", sig, conf->shutdown_grace_ms);
  rc = 0;

out:
  if (rc && err.msg[0])
    gw_error("main", "%s", err.msg);
  atomic_store(&ready, false);
  atomic_store(&pipeline.shutting_down, true);
  if (spool)
    gw_spool_wake(spool); /* requests waiting for room give up now, not at spool.full_wait_ms */
  gw_grpc_receiver_stop(grpc);
  gw_http_receiver_stop(http);
  gw_lane_stop(pipeline.lane);
  gw_reload_stop();
  gw_memtrim_stop();
  gw_tls_destroy(tls);
  gw_auth_destroy(auth);
  if (spool)
    gw_spool_close(spool);
  gw_maint_stop(maint);
  gw_sink_request_stop(store);
  gw_exporters_request_stop(exporters);
  gw_sink_stop(store);
  gw_exporters_stop(exporters);
  if (spool && leftover(spool) && rc == 0)
    rc = 3;
  gw_admin_stop(admin);
  gw_spool_destroy(spool);
  gw_prices_destroy(prices);
  gw_redactor_destroy(redactor);
  if (pipeline.history_cache)
    gw_metrics_unregister(gw_hist_cache_render, pipeline.history_cache);
  gw_hist_cache_destroy(pipeline.history_cache);
  grpc_shutdown();
  gw_conf_destroy(conf);
  gw_info("main", "stopped");
  return rc;
}
