/*
 * httpd.c: read deadlines for libmicrohttpd daemons (see httpd.h for the why).
 *
 * Each connection gets a small record at MHD_CONNECTION_NOTIFY_STARTED, kept in a list under one mutex
 * until MHD_CONNECTION_NOTIFY_CLOSED. libmicrohttpd calls the CLOSED notification before it closes the
 * socket, and the watchdog shuts sockets down only while it holds the same mutex, so it can never touch a
 * descriptor number that was closed and reused. Deadlines are atomics written by the connection's own
 * thread; the watchdog reads them every tick (a quarter of the shortest timeout, at most 250 ms).
 * What is closed, and in which phase, is counted on /metrics.
 */
#include "core/httpd.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "core/log.h"
#include "core/metrics.h"

enum { PH_FIRST, PH_HEADERS, PH_BODY, PH_WORK, PH_KEEPALIVE, PH_KEEPALIVE_LINE, NPHASES };

/* The phase a deadline belongs to, as /metrics names it. */
static const char *const phase_label[NPHASES] = {"headers", "headers", "body", "", "keepalive", "headers"};

struct gw_httpd_guard;

struct conn {
  struct conn *prev, *next;
  struct gw_httpd_guard *g;
  int fd;
  bool shut;
  _Atomic int phase;
  _Atomic uint64_t deadline_ms; /* monotonic; 0 = none */
};

struct gw_httpd_guard {
  char listener[32];
  uint32_t idle_ms, header_ms, body_ms;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct conn *head;
  bool stop;
  pthread_t thread;
  _Atomic uint64_t open, closed_late[3]; /* headers, body, keepalive */
};

static uint64_t now_ms(void) { return gw_mono_ns() / 1000000u; }

static struct conn *conn_of(struct MHD_Connection *c)
{
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

static void *watch(void *arg)
{
  struct gw_httpd_guard *g = arg;
  char name[16];
  snprintf(name, sizeof name, "gw-guard-%.6s", g->listener);
  pthread_setname_np(pthread_self(), name);
  uint32_t shortest = g->header_ms < g->body_ms ? g->header_ms : g->body_ms;
  uint64_t tick = shortest / 4 < 250 ? shortest / 4 : 250;
  if (tick < 10)
    tick = 10;
  pthread_mutex_lock(&g->mu);
  while (!g->stop) {
    uint64_t now = now_ms();
    for (struct conn *k = g->head; k; k = k->next) {
      uint64_t d = atomic_load(&k->deadline_ms);
      if (k->shut || !d || now < d)
        continue;
      int ph = atomic_load(&k->phase);
      /* Counted first, so whoever sees the connection end sees it counted. */
      int slot = ph == PH_BODY ? 1 : ph == PH_KEEPALIVE ? 2 : 0;
      atomic_fetch_add(&g->closed_late[slot], 1);
      /* Both directions: libmicrohttpd's next read sees the end and closes the connection itself. */
      shutdown(k->fd, SHUT_RDWR);
      k->shut = true;
      gw_debug("httpd", "%s: closed a connection whose %s did not arrive in time", g->listener, phase_label[ph]);
    }
    uint64_t until = gw_mono_ns() + tick * 1000000u;
    struct timespec ts = {(time_t)(until / 1000000000u), (long)(until % 1000000000u)};
    pthread_cond_timedwait(&g->cv, &g->mu, &ts);
  }
  pthread_mutex_unlock(&g->mu);
  return NULL;
}

/* The guards alive now, rendered as one metric family each (Prometheus wants one HELP per family).
 * render runs under the metrics registry's lock and takes guards_mu, so the registry is never entered
 * under guards_mu; reg_mu keeps "the first guard registers, the last unregisters" whole when guards come
 * and go on several threads (order: reg_mu, then guards_mu or the registry's lock). */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t guards_mu = PTHREAD_MUTEX_INITIALIZER;
static struct gw_httpd_guard *guards[4];
static int nguards;

static void render(struct gw_sb *out, void *ctx)
{
  (void)ctx;
  static const char *const phases[3] = {"headers", "body", "keepalive"};
  pthread_mutex_lock(&guards_mu);
  gw_sb_puts(out, "# HELP genai_gateway_http_connections HTTP connections open now, per listener\n"
                  "# TYPE genai_gateway_http_connections gauge\n");
  for (int i = 0; i < nguards; i++)
    gw_sb_printf(out, "genai_gateway_http_connections{listener=\"%s\"} %llu\n", guards[i]->listener,
                 (unsigned long long)atomic_load(&guards[i]->open));
  gw_sb_puts(out, "# HELP genai_gateway_http_read_timeouts_total Connections closed because a request's headers or "
                  "body, or the next request on a kept-alive connection, did not arrive in time (slow clients, "
                  "slowloris)\n"
                  "# TYPE genai_gateway_http_read_timeouts_total counter\n");
  for (int i = 0; i < nguards; i++)
    for (int p = 0; p < 3; p++)
      gw_sb_printf(out, "genai_gateway_http_read_timeouts_total{listener=\"%s\",phase=\"%s\"} %llu\n",
                   guards[i]->listener, phases[p], (unsigned long long)atomic_load(&guards[i]->closed_late[p]));
  pthread_mutex_unlock(&guards_mu);
}

struct gw_httpd_guard *gw_httpd_guard_create(const char *listener, uint32_t idle_ms, uint32_t header_ms,
                                             uint32_t body_ms)
{
  struct gw_httpd_guard *g = gw_calloc(1, sizeof *g);
  snprintf(g->listener, sizeof g->listener, "%s", listener);
  g->idle_ms = idle_ms;
  g->header_ms = header_ms;
  g->body_ms = body_ms;
  pthread_mutex_init(&g->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&g->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_create(&g->thread, NULL, watch, g);
  pthread_mutex_lock(&reg_mu);
  pthread_mutex_lock(&guards_mu);
  bool first = nguards == 0;
  if (nguards < (int)(sizeof guards / sizeof guards[0]))
    guards[nguards++] = g;
  pthread_mutex_unlock(&guards_mu);
  if (first)
    gw_metrics_register(render, NULL);
  pthread_mutex_unlock(&reg_mu);
  return g;
}

void gw_httpd_guard_destroy(struct gw_httpd_guard *g)
{
  if (!g)
    return;
  pthread_mutex_lock(&reg_mu);
  pthread_mutex_lock(&guards_mu);
  for (int i = 0; i < nguards; i++) {
    if (guards[i] == g) {
      guards[i] = guards[--nguards];
      break;
    }
  }
  bool last = nguards == 0;
  pthread_mutex_unlock(&guards_mu);
  if (last)
    gw_metrics_unregister(render, NULL);
  pthread_mutex_unlock(&reg_mu);
  pthread_mutex_lock(&g->mu);
  g->stop = true;
  pthread_cond_signal(&g->cv);
  pthread_mutex_unlock(&g->mu);
  pthread_join(g->thread, NULL);
  /* libmicrohttpd notified every close before MHD_stop_daemon returned: the list is empty. */
  pthread_cond_destroy(&g->cv);
  pthread_mutex_destroy(&g->mu);
  free(g);
}

void gw_httpd_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                           enum MHD_ConnectionNotificationCode code)
{
  struct gw_httpd_guard *g = cls;
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct conn *k = gw_calloc(1, sizeof *k);
    k->g = g;
    k->fd = ci ? ci->connect_fd : -1;
    atomic_init(&k->phase, PH_FIRST);
    /* The TLS handshake, the request line and the headers of the first request, all within header_ms. */
    atomic_init(&k->deadline_ms, k->fd >= 0 ? now_ms() + g->header_ms : 0);
    pthread_mutex_lock(&g->mu);
    k->next = g->head;
    if (g->head)
      g->head->prev = k;
    g->head = k;
    pthread_mutex_unlock(&g->mu);
    atomic_fetch_add(&g->open, 1);
    *socket_context = k;
    return;
  }
  struct conn *k = *socket_context;
  if (!k)
    return;
  pthread_mutex_lock(&g->mu);
  if (k->prev)
    k->prev->next = k->next;
  else
    g->head = k->next;
  if (k->next)
    k->next->prev = k->prev;
  pthread_mutex_unlock(&g->mu);
  atomic_fetch_sub(&g->open, 1);
  *socket_context = NULL;
  free(k);
}

void *gw_httpd_guard_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
  (void)uri;
  struct gw_httpd_guard *g = cls;
  struct conn *k = conn_of(c);
  if (k && atomic_load(&k->phase) == PH_KEEPALIVE) {
    atomic_store(&k->phase, PH_KEEPALIVE_LINE);
    atomic_store(&k->deadline_ms, now_ms() + g->header_ms);
  }
  return NULL;
}

void gw_httpd_guard_phase(struct MHD_Connection *c, enum gw_httpd_phase p)
{
  struct conn *k = conn_of(c);
  if (!k)
    return;
  switch (p) {
  case GW_HTTPD_HEADERS_DONE:
    if (atomic_load(&k->phase) == PH_BODY || atomic_load(&k->phase) == PH_WORK)
      return; /* a later call of the same request */
    atomic_store(&k->phase, PH_BODY);
    atomic_store(&k->deadline_ms, now_ms() + k->g->body_ms);
    break;
  case GW_HTTPD_BODY_DONE:
    atomic_store(&k->phase, PH_WORK);
    atomic_store(&k->deadline_ms, 0);
    break;
  case GW_HTTPD_ANSWERED:
    atomic_store(&k->phase, PH_KEEPALIVE);
    atomic_store(&k->deadline_ms, now_ms() + k->g->idle_ms + k->g->header_ms);
    break;
  }
}

uint64_t gw_httpd_guard_open(const struct gw_httpd_guard *g) { return atomic_load(&g->open); }

void gw_httpd_guard_count(struct gw_httpd_guard *g, enum gw_httpd_timeout t)
{
  atomic_fetch_add(&g->closed_late[t], 1);
}
