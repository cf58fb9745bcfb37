/*
 * admin.c: /healthz, /readyz and /metrics on their own small libmicrohttpd daemon. Spool bytes and
 * per-consumer lag are rendered here, next to the process counters from core/metrics.c.
 *
 * Probes must be answered while the receivers are saturated or attacked, or a liveness probe restarts a
 * pod that is merely busy. So the daemon shares nothing with the receivers but the metrics' atomics and
 * the spool's short lock: its own epoll thread (a slow client costs a descriptor, never the thread), read
 * deadlines of a couple of seconds (core/httpd.h; probes send a few hundred bytes), a small idle timeout,
 * and a small per-address limit under a total that stays far below what the probes need.
 */
#include "admin/admin.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/httpd.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/net.h"

/* Kubelet probes and a Prometheus scrape send a few hundred bytes and read a few KiB. */
#define ADMIN_MAX_CONNECTIONS 512
#define ADMIN_MAX_PER_IP 16
#define ADMIN_IDLE_MS 5000
#define ADMIN_HEADER_MS 2000
#define ADMIN_BODY_MS 2000

struct gw_admin {
  struct MHD_Daemon *d;
  struct gw_httpd_guard *guard;
  struct gw_spool *spool;
  atomic_bool *ready;
};

static void render_spool(struct gw_sb *out, void *ctx)
{
  struct gw_spool *s = ctx;
  gw_sb_printf(out,
               "# HELP genai_gateway_spool_bytes Bytes held in the spool\n# TYPE genai_gateway_spool_bytes gauge\n"
               "genai_gateway_spool_bytes %zu\n"
               "# HELP genai_gateway_spool_max_bytes Spool capacity\n# TYPE genai_gateway_spool_max_bytes gauge\n"
               "genai_gateway_spool_max_bytes %zu\n",
               gw_spool_bytes(s), gw_spool_max_bytes(s));
  uint64_t no_space, io;
  gw_spool_disk_write_errors(&no_space, &io);
  gw_sb_printf(out,
               "# HELP genai_gateway_spool_write_errors_total Disk spool appends refused because the disk was full "
               "(no_space) or refused the write or the sync (io); the client got backpressure\n"
               "# TYPE genai_gateway_spool_write_errors_total counter\n"
               "genai_gateway_spool_write_errors_total{reason=\"no_space\"} %llu\n"
               "genai_gateway_spool_write_errors_total{reason=\"io\"} %llu\n"
               "# HELP genai_gateway_spool_disk 1 when the spool is on disk (survives restarts), 0 in memory\n"
               "# TYPE genai_gateway_spool_disk gauge\n"
               "genai_gateway_spool_disk %d\n",
               (unsigned long long)no_space, (unsigned long long)io, gw_spool_is_disk(s) ? 1 : 0);
  gw_sb_puts(out, "# HELP genai_gateway_spool_lag_entries Entries a consumer has not finished yet\n"
                  "# TYPE genai_gateway_spool_lag_entries gauge\n");
  int n = gw_spool_consumer_count(s);
  for (int i = 0; i < n; i++) {
    uint64_t e;
    size_t b;
    gw_spool_lag(s, i, &e, &b);
    gw_sb_printf(out, "genai_gateway_spool_lag_entries{consumer=\"%s\"} %llu\n", gw_spool_consumer_name(s, i),
                 (unsigned long long)e);
  }
  gw_sb_puts(out, "# HELP genai_gateway_spool_lag_bytes Bytes a consumer has not finished yet\n"
                  "# TYPE genai_gateway_spool_lag_bytes gauge\n");
  for (int i = 0; i < n; i++) {
    uint64_t e;
    size_t b;
    gw_spool_lag(s, i, &e, &b);
    gw_sb_printf(out, "genai_gateway_spool_lag_bytes{consumer=\"%s\"} %zu\n", gw_spool_consumer_name(s, i), b);
  }
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *ctype, const char *body,
                                 size_t len)
{
  struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (!r)
    return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
  (void)cls, (void)con_cls, (void)toe;
  gw_httpd_guard_phase(c, GW_HTTPD_ANSWERED);
}

/*
 * /readyz: the checks "receivers" (listening) and "spool" (below its high-water mark, its disk writes not
 * failing: gw_spool_ready), all of which must pass. As the Kubernetes API server's: ?exclude=NAME leaves a
 * check out (repeated or comma-separated; an unknown name is a 400, so a typo in a probe shows instead of
 * silently checking everything), ?verbose lists each check. A sidecar's probe excludes the spool: its
 * readiness is its pod's, and a full spool must not take the application out of its Service (the app's
 * exporter gets 429/503 and retries); a tier's keeps it, so that its Service sends to the other replicas.
 */
enum { CHECK_RECEIVERS, CHECK_SPOOL, NCHECKS };
static const char *const check_names[NCHECKS] = {"receivers", "spool"};

struct ready_args {
  bool excluded[NCHECKS], verbose;
  char unknown[64];
};

static enum MHD_Result ready_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
  (void)kind;
  struct ready_args *r = cls;
  if (strcmp(key, "verbose") == 0) {
    r->verbose = true;
    return MHD_YES;
  }
  if (strcmp(key, "exclude") != 0 || !value)
    return MHD_YES;
  for (const char *p = value; *p;) {
    size_t n = strcspn(p, ",");
    bool known = false;
    for (int i = 0; i < NCHECKS; i++)
      if (strlen(check_names[i]) == n && strncmp(p, check_names[i], n) == 0)
        r->excluded[i] = known = true;
    if (!known && n && !r->unknown[0])
      snprintf(r->unknown, sizeof r->unknown, "%.*s", (int)(n < 48 ? n : 48), p);
    p += n + (p[n] == ',');
  }
  return MHD_YES;
}

static enum MHD_Result readyz(struct gw_admin *a, struct MHD_Connection *c)
{
  struct ready_args r = {0};
  MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, ready_arg, &r);
  char body[1024];
  if (r.unknown[0]) {
    int n = snprintf(body, sizeof body, "unknown check in exclude: '%s' (checks: receivers, spool)\n", r.unknown);
    return send_text(c, 400, "text/plain", body, (size_t)n);
  }
  char why[NCHECKS][320] = {{0}};
  bool ok[NCHECKS];
  ok[CHECK_RECEIVERS] = r.excluded[CHECK_RECEIVERS] || atomic_load(a->ready);
  if (!ok[CHECK_RECEIVERS])
    snprintf(why[CHECK_RECEIVERS], sizeof why[0], "receivers not listening");
  ok[CHECK_SPOOL] = r.excluded[CHECK_SPOOL] || gw_spool_ready(a->spool, why[CHECK_SPOOL], sizeof why[0]);
  bool ready = ok[CHECK_RECEIVERS] && ok[CHECK_SPOOL];
  size_t n = 0;
  if (r.verbose) {
    /* (each reason is at most 320 bytes, so the lines fit; n is clamped all the same) */
    for (int i = 0; i < NCHECKS && n < sizeof body - 1; i++)
      n += (size_t)snprintf(body + n, sizeof body - n, "[%c]%s %s%s\n", ok[i] ? '+' : '-', check_names[i],
                            r.excluded[i] ? "excluded" : ok[i] ? "ok" : "failed: ", ok[i] ? "" : why[i]);
    if (n < sizeof body - 1)
      n += (size_t)snprintf(body + n, sizeof body - n, "%s\n", ready ? "ready" : "not ready");
  } else if (ready) {
    n = (size_t)snprintf(body, sizeof body, "ready\n");
  } else {
    n = (size_t)snprintf(body, sizeof body, "not ready: %s\n", why[ok[CHECK_RECEIVERS] ? CHECK_SPOOL : CHECK_RECEIVERS]);
  }
  if (n >= sizeof body)
    n = sizeof body - 1;
  return send_text(c, ready ? 200 : 503, "text/plain", body, n);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
  (void)version, (void)upload;
  struct gw_admin *a = cls;
  if (!*con_cls) { /* headers complete: a body, if any, is read and ignored */
    gw_httpd_guard_phase(c, GW_HTTPD_HEADERS_DONE);
    *con_cls = a;
    return MHD_YES;
  }
  if (*upload_size) {
    *upload_size = 0;
    return MHD_YES;
  }
  gw_httpd_guard_phase(c, GW_HTTPD_BODY_DONE);
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
    return send_text(c, 405, "text/plain", "method not allowed\n", 19);
  if (strcmp(url, "/healthz") == 0) {
    char body[160];
    int n = snprintf(body, sizeof body, "{\"status\":\"ok\",\"postgres_connected\":%s,\"spool_bytes\":%zu}\n",
                     gw_metric_get(GW_M_PG_CONNECTED) ? "true" : "false", gw_spool_bytes(a->spool));
    return send_text(c, 200, "application/json", body, (size_t)n);
  }
  if (strcmp(url, "/readyz") == 0)
    return readyz(a, c);
  if (strcmp(url, "/metrics") == 0) {
    struct gw_arena *ar = gw_arena_create(16 << 20);
    struct gw_sb sb;
    gw_sb_init(&sb, ar);
    gw_metrics_render(&sb);
    char *s = gw_sb_finish(&sb);
    enum MHD_Result ret = s ? send_text(c, 200, "text/plain; version=0.0.4", s, sb.len)
                            : send_text(c, 500, "text/plain", "metrics too large\n", 18);
    gw_arena_destroy(ar);
    return ret;
  }
  return send_text(c, 404, "text/plain", "not found: try /healthz, /readyz, /metrics\n", 43);
}

struct gw_admin *gw_admin_start(const char *addr, struct gw_spool *spool, atomic_bool *ready, struct gw_err *err)
{
  struct sockaddr_storage ss;
  socklen_t sl;
  if (gw_net_parse_addr(addr, &ss, &sl, err))
    return NULL;
  struct gw_admin *a = gw_calloc(1, sizeof *a);
  a->spool = spool;
  a->ready = ready;
  a->guard = gw_httpd_guard_create("admin", ADMIN_IDLE_MS, ADMIN_HEADER_MS, ADMIN_BODY_MS);
  unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC;
  if (ss.ss_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  a->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, a, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                          MHD_OPTION_CONNECTION_LIMIT, (unsigned)ADMIN_MAX_CONNECTIONS,
                          MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)ADMIN_MAX_PER_IP,
                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(ADMIN_IDLE_MS / 1000),
                          MHD_OPTION_NOTIFY_COMPLETED, completed, a,
                          MHD_OPTION_NOTIFY_CONNECTION, gw_httpd_guard_notify, a->guard,
                          MHD_OPTION_URI_LOG_CALLBACK, gw_httpd_guard_uri, a->guard, MHD_OPTION_END);
  if (!a->d) {
    gw_httpd_guard_destroy(a->guard);
    gw_err_set(err, GW_ERR(IO), "admin: cannot listen on %s (address in use or not permitted)", addr);
    free(a);
    return NULL;
  }
  gw_metrics_register(render_spool, spool);
  gw_info("admin", "admin endpoints on http://%s (/healthz /readyz /metrics)", addr);
  return a;
}

void gw_admin_stop(struct gw_admin *a)
{
  if (!a)
    return;
  MHD_stop_daemon(a->d);
  gw_httpd_guard_destroy(a->guard);
  free(a);
}
