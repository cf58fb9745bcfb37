/*
 * redact_metrics.c: genai_gateway_redactions_total{kind="..."} on /metrics. Process-wide atomic counters,
 * one per built-in kind, one for deny-listed keys and one per user pattern name (interned at redactor
 * creation, at most RD_MAX_SLOTS names for the process lifetime); and genai_gateway_redaction_limited_total
 * by reason (redact_limits.c). The renderer is registered once.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "core/metrics.h"
#include "redact/redact_int.h"

#define RD_MAX_SLOTS 80

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t slot_lock = PTHREAD_MUTEX_INITIALIZER;
static char *slot_names[RD_MAX_SLOTS];
static _Atomic int nslots;
static _Atomic int64_t counts[RD_MAX_SLOTS];

/* genai_gateway_redaction_limited_total{reason}: values replaced whole because a limit was hit. */
static _Atomic int64_t limited[RD_LIM__COUNT];

void rd_metric_limited(enum rd_limit why)
{
  if (why > RD_LIM_NONE && why < RD_LIM__COUNT)
    atomic_fetch_add(&limited[why], 1);
}

int64_t rd_metric_limited_get(enum rd_limit why)
{
  return why > RD_LIM_NONE && why < RD_LIM__COUNT ? atomic_load(&limited[why]) : 0;
}

static void render(struct gw_sb *out, void *ctx)
{
  (void)ctx;
  gw_sb_puts(out, "# HELP genai_gateway_redactions_total Values redacted, by detector kind\n"
                  "# TYPE genai_gateway_redactions_total counter\n");
  int n = atomic_load(&nslots);
  for (int i = 0; i < n; i++) {
    gw_sb_puts(out, "genai_gateway_redactions_total{kind=");
    gw_sb_json_str(out, slot_names[i], strlen(slot_names[i]));
    gw_sb_printf(out, "} %lld\n", (long long)atomic_load(&counts[i]));
  }
  gw_sb_puts(out, "# HELP genai_gateway_redaction_limited_total Values replaced whole because a limit was hit "
                  "(a user pattern's pcre2 limit, a request's scan or CPU budget)\n"
                  "# TYPE genai_gateway_redaction_limited_total counter\n");
  for (int i = RD_LIM_NONE + 1; i < RD_LIM__COUNT; i++)
    gw_sb_printf(out, "genai_gateway_redaction_limited_total{reason=\"%s\"} %lld\n", rd_limit_names[i],
                 (long long)atomic_load(&limited[i]));
}

static void init_once(void)
{
  for (int i = 0; i < GW_RK__COUNT; i++)
    slot_names[i] = gw_strdup(rd_kind_names[i]);
  slot_names[GW_RK__COUNT] = gw_strdup("deny_list");
  atomic_store(&nslots, GW_RK__COUNT + 1);
  gw_metrics_register(render, NULL);
}

void rd_metrics_init(void) { pthread_once(&once, init_once); }

int rd_metric_slot_deny(void) { return GW_RK__COUNT; }

int rd_metric_slot(const char *kind)
{
  rd_metrics_init();
  pthread_mutex_lock(&slot_lock);
  int n = atomic_load(&nslots), found = -1;
  for (int i = 0; i < n && found < 0; i++)
    if (!strcmp(slot_names[i], kind))
      found = i;
  if (found < 0 && n < RD_MAX_SLOTS) {
    slot_names[n] = gw_strdup(kind);
    found = n;
    atomic_store(&nslots, n + 1);
  }
  pthread_mutex_unlock(&slot_lock);
  return found;
}

void rd_metric_add(int slot, uint32_t n)
{
  if (slot >= 0 && slot < RD_MAX_SLOTS && n)
    atomic_fetch_add(&counts[slot], (int64_t)n);
}

int64_t gw_redact_metric_get(const char *kind)
{
  rd_metrics_init();
  int n = atomic_load(&nslots);
  for (int i = 0; i < n; i++)
    if (!strcmp(slot_names[i], kind))
      return atomic_load(&counts[i]);
  return 0;
}

