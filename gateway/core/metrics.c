/*
 * metrics.c: lock-free counters and the Prometheus text renderer.
 */
#include "core/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

static _Atomic int64_t values[GW_M__COUNT];
static _Atomic int64_t rejected[GW_E__COUNT];

static const struct {
  const char *name, *type, *help;
} defs[] = {
#define GW_METRIC_DEF(id, name, type, help) {name, type, help},
  GW_METRICS(GW_METRIC_DEF)
#undef GW_METRIC_DEF
};

static struct {
  gw_metrics_render_fn fn;
  void *ctx;
} extra[16];
static int n_extra;
static pthread_mutex_t extra_mu = PTHREAD_MUTEX_INITIALIZER; /* renderers come and go while /metrics is served */

void gw_metric_add(enum gw_metric m, int64_t n) { atomic_fetch_add_explicit(&values[m], n, memory_order_relaxed); }
void gw_metric_set(enum gw_metric m, int64_t v) { atomic_store_explicit(&values[m], v, memory_order_relaxed); }
int64_t gw_metric_get(enum gw_metric m) { return atomic_load_explicit(&values[m], memory_order_relaxed); }

void gw_metric_rejected(gw_rc reason, int64_t n)
{
  int code = -reason;
  if (code <= 0 || code >= GW_E__COUNT)
    code = GW_E_INTERNAL;
  atomic_fetch_add_explicit(&rejected[code], n, memory_order_relaxed);
}

int64_t gw_metric_rejected_get(gw_rc reason)
{
  int code = -reason;
  if (code <= 0 || code >= GW_E__COUNT)
    code = GW_E_INTERNAL;
  return atomic_load_explicit(&rejected[code], memory_order_relaxed);
}

void gw_metrics_register(gw_metrics_render_fn fn, void *ctx)
{
  pthread_mutex_lock(&extra_mu);
  if (n_extra < (int)(sizeof extra / sizeof extra[0])) {
    extra[n_extra].fn = fn;
    extra[n_extra].ctx = ctx;
    n_extra++;
  }
  pthread_mutex_unlock(&extra_mu);
}

void gw_metrics_unregister(gw_metrics_render_fn fn, void *ctx)
{
  pthread_mutex_lock(&extra_mu);
  for (int i = 0; i < n_extra; i++) {
    if (extra[i].fn == fn && extra[i].ctx == ctx) {
      memmove(&extra[i], &extra[i + 1], (size_t)(n_extra - i - 1) * sizeof extra[0]);
      n_extra--;
      break;
    }
  }
  pthread_mutex_unlock(&extra_mu);
}

void gw_metrics_render(struct gw_sb *out)
{
  for (int i = 0; i < GW_M__COUNT; i++) {
    gw_sb_printf(out, "# HELP %s %s\n# TYPE %s %s\n", defs[i].name, defs[i].help, defs[i].name, defs[i].type);
    if (i == GW_M_PG_BATCH_SECONDS || i == GW_M_SPOOL_FSYNC_SECONDS)
      gw_sb_printf(out, "%s %.6f\n", defs[i].name, (double)gw_metric_get(i) / 1e9);
    else
      gw_sb_printf(out, "%s %lld\n", defs[i].name, (long long)gw_metric_get(i));
  }
  gw_sb_puts(out, "# HELP genai_gateway_spans_rejected_total Spans rejected, by reason\n"
                  "# TYPE genai_gateway_spans_rejected_total counter\n");
  for (int c = 1; c < GW_E__COUNT; c++) {
    int64_t v = atomic_load_explicit(&rejected[c], memory_order_relaxed);
    if (v)
      gw_sb_printf(out, "genai_gateway_spans_rejected_total{reason=\"%s\"} %lld\n", gw_err_label(-c), (long long)v);
  }
  pthread_mutex_lock(&extra_mu);
  for (int i = 0; i < n_extra; i++)
    extra[i].fn(out, extra[i].ctx);
  pthread_mutex_unlock(&extra_mu);
}
