/*
 * exporters.c: the set of running exporters: one sink per exporter the configuration turns on, each
 * under its own name (thread gw-sink-<name>, spool consumer <name>), with its lag cap, and their
 * Prometheus figures. libcurl's global state is set up here, once, before any exporter thread exists.
 */
#include "exporters.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/metrics.h"
#include "export_int.h"

struct running {
  const struct gw_exporter_type *type;
  struct gw_sink_type ops; /* gw_export_sink_ops under this exporter's name */
  struct gw_sink *sink;
  struct gw_export_stats stats;
};

struct gw_exporters {
  struct gw_spool *spool;
  size_t n;
  struct running r[GW_CONF_NEXPORTERS];
  bool registered;
};

static const char *const signal_names[GW_XS__COUNT] = {"traces", "logs"};
static const char *const result_names[GW_XR__COUNT] = {"ok", "retry", "drop"};
static const char *const drop_labels[GW_XD__COUNT] = {
#define GW_XD_LABEL(id, label) label,
  GW_EXPORT_DROP_REASONS(GW_XD_LABEL)
#undef GW_XD_LABEL
};

const char *gw_export_drop_label(enum gw_export_drop d) { return drop_labels[d]; }

static void head(struct gw_sb *out, const char *name, const char *type, const char *help)
{
  gw_sb_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void per_signal(struct gw_sb *out, const struct gw_exporters *x, const char *name, const char *help, size_t off)
{
  head(out, name, "counter", help);
  for (size_t i = 0; i < x->n; i++)
    for (int s = 0; s < GW_XS__COUNT; s++) {
      const _Atomic uint64_t *v = (const _Atomic uint64_t *)((const char *)&x->r[i].stats + off) + s;
      gw_sb_printf(out, "%s{exporter=\"%s\",signal=\"%s\"} %llu\n", name, x->r[i].type->name, signal_names[s],
                   (unsigned long long)atomic_load(v));
    }
}

static void render(struct gw_sb *out, void *ctx)
{
  struct gw_exporters *x = ctx;
  per_signal(out, x, "genai_gateway_exporter_spans_sent_total",
             "Spans (signal=traces) or log records (signal=logs) the receiver accepted",
             offsetof(struct gw_export_stats, sent));
  per_signal(out, x, "genai_gateway_exporter_spans_failed_total",
             "Spans or log records in requests that failed, every attempt counted",
             offsetof(struct gw_export_stats, failed));
  per_signal(out, x, "genai_gateway_exporter_spans_retried_total",
             "Spans or log records in requests that failed retryably and are sent again",
             offsetof(struct gw_export_stats, retried));
  per_signal(out, x, "genai_gateway_exporter_spans_filtered_total",
             "Spans or log records not forwarded because of genai_only", offsetof(struct gw_export_stats, filtered));

  head(out, "genai_gateway_exporter_spans_dropped_total", "counter",
       "Spans or log records given up for this exporter, by reason (rejected: a non-retryable answer; "
       "partial_success: refused by the receiver; invalid_id; too_large; lag_cap: skipped past the lag cap)");
  for (size_t i = 0; i < x->n; i++) {
    const struct running *r = &x->r[i];
    struct gw_sink_stats ss = {0};
    gw_sink_stats(r->sink, &ss);
    for (int s = 0; s < GW_XS__COUNT; s++) {
      for (int d = 0; d < GW_XD__COUNT; d++)
        gw_sb_printf(out, "genai_gateway_exporter_spans_dropped_total{exporter=\"%s\",signal=\"%s\",reason=\"%s\"} %llu\n",
                     r->type->name, signal_names[s], drop_labels[d], (unsigned long long)atomic_load(&r->stats.dropped[s][d]));
      gw_sb_printf(out, "genai_gateway_exporter_spans_dropped_total{exporter=\"%s\",signal=\"%s\",reason=\"lag_cap\"} %llu\n",
                   r->type->name, signal_names[s],
                   (unsigned long long)(s == GW_XS_LOGS ? ss.skipped_log_records : ss.skipped_spans));
    }
  }

  head(out, "genai_gateway_exporter_requests_total", "counter", "Export requests, by how they ended");
  for (size_t i = 0; i < x->n; i++)
    for (int k = 0; k < GW_XR__COUNT; k++)
      gw_sb_printf(out, "genai_gateway_exporter_requests_total{exporter=\"%s\",result=\"%s\"} %llu\n", x->r[i].type->name,
                   result_names[k], (unsigned long long)atomic_load(&x->r[i].stats.requests[k]));

  head(out, "genai_gateway_exporter_batch_seconds", "histogram", "Time to deliver one batch (all its requests)");
  for (size_t i = 0; i < x->n; i++) {
    const struct gw_export_stats *st = &x->r[i].stats;
    uint64_t cum = 0;
    for (int b = 0; b <= GW_EXPORT_LATENCY_BUCKETS; b++) {
      cum += atomic_load(&st->batch_hist[b]);
      if (b < GW_EXPORT_LATENCY_BUCKETS)
        gw_sb_printf(out, "genai_gateway_exporter_batch_seconds_bucket{exporter=\"%s\",le=\"%g\"} %llu\n",
                     x->r[i].type->name, gw_export_latency_bounds_ms[b] / 1000.0, (unsigned long long)cum);
      else
        gw_sb_printf(out, "genai_gateway_exporter_batch_seconds_bucket{exporter=\"%s\",le=\"+Inf\"} %llu\n",
                     x->r[i].type->name, (unsigned long long)cum);
    }
    gw_sb_printf(out, "genai_gateway_exporter_batch_seconds_sum{exporter=\"%s\"} %.6f\n", x->r[i].type->name,
                 (double)atomic_load(&st->batch_ns) / 1e9);
    gw_sb_printf(out, "genai_gateway_exporter_batch_seconds_count{exporter=\"%s\"} %llu\n", x->r[i].type->name,
                 (unsigned long long)atomic_load(&st->batch_count));
  }

  head(out, "genai_gateway_exporter_lag_entries", "gauge", "Spool entries this exporter has not finished");
  for (size_t i = 0; i < x->n; i++) {
    struct gw_spool_lag l;
    gw_spool_lag_get(x->spool, gw_sink_consumer(x->r[i].sink), &l);
    gw_sb_printf(out, "genai_gateway_exporter_lag_entries{exporter=\"%s\"} %llu\n", x->r[i].type->name,
                 (unsigned long long)l.entries);
  }
  head(out, "genai_gateway_exporter_lag_bytes", "gauge", "Spool bytes this exporter has not finished");
  for (size_t i = 0; i < x->n; i++) {
    struct gw_spool_lag l;
    gw_spool_lag_get(x->spool, gw_sink_consumer(x->r[i].sink), &l);
    gw_sb_printf(out, "genai_gateway_exporter_lag_bytes{exporter=\"%s\"} %llu\n", x->r[i].type->name,
                 (unsigned long long)l.bytes);
  }
  head(out, "genai_gateway_exporter_lag_seconds", "gauge",
       "Age of the oldest spool entry this exporter has not finished (0 when caught up)");
  for (size_t i = 0; i < x->n; i++) {
    struct gw_spool_lag l;
    gw_spool_lag_get(x->spool, gw_sink_consumer(x->r[i].sink), &l);
    gw_sb_printf(out, "genai_gateway_exporter_lag_seconds{exporter=\"%s\"} %.3f\n", x->r[i].type->name,
                 (double)l.age_ns / 1e9);
  }
  bool joins = false;
  for (size_t i = 0; i < x->n; i++)
    joins |= x->r[i].type->wants_events;
  if (joins) {
    head(out, "genai_gateway_exporter_join_held_total", "counter",
         "GenAI spans held back to wait for the log records carrying their message content");
    for (size_t i = 0; i < x->n; i++)
      if (x->r[i].type->wants_events)
        gw_sb_printf(out, "genai_gateway_exporter_join_held_total{exporter=\"%s\"} %llu\n", x->r[i].type->name,
                     (unsigned long long)atomic_load(&x->r[i].stats.join_held));
    head(out, "genai_gateway_exporter_join_incomplete_total", "counter",
         "GenAI spans sent without the log content they waited for, by why (wait: join_wait_ms passed; memory: "
         "join_max_bytes full; stop: shutdown)");
    for (size_t i = 0; i < x->n; i++)
      for (int w = 0; w < GW_XJ__COUNT && x->r[i].type->wants_events; w++)
        gw_sb_printf(out, "genai_gateway_exporter_join_incomplete_total{exporter=\"%s\",reason=\"%s\"} %llu\n",
                     x->r[i].type->name, gw_export_join_why_labels[w],
                     (unsigned long long)atomic_load(&x->r[i].stats.join_incomplete[w]));
    head(out, "genai_gateway_exporter_join_events_dropped_total", "counter",
         "Messages from log records dropped unused: their span did not come within join_events_ms, or memory ran short");
    for (size_t i = 0; i < x->n; i++)
      if (x->r[i].type->wants_events)
        gw_sb_printf(out, "genai_gateway_exporter_join_events_dropped_total{exporter=\"%s\"} %llu\n", x->r[i].type->name,
                     (unsigned long long)atomic_load(&x->r[i].stats.join_events_dropped));
    head(out, "genai_gateway_exporter_join_held_spans", "gauge", "GenAI spans held now");
    for (size_t i = 0; i < x->n; i++)
      if (x->r[i].type->wants_events)
        gw_sb_printf(out, "genai_gateway_exporter_join_held_spans{exporter=\"%s\"} %llu\n", x->r[i].type->name,
                     (unsigned long long)atomic_load(&x->r[i].stats.join_held_now));
    head(out, "genai_gateway_exporter_join_bytes", "gauge", "Memory of held spans and kept log content");
    for (size_t i = 0; i < x->n; i++)
      if (x->r[i].type->wants_events)
        gw_sb_printf(out, "genai_gateway_exporter_join_bytes{exporter=\"%s\"} %llu\n", x->r[i].type->name,
                     (unsigned long long)atomic_load(&x->r[i].stats.join_bytes_now));
  }
  head(out, "genai_gateway_exporter_auth_failures_total", "counter",
       "Export requests the receiver refused for their credentials (HTTP 401/403, gRPC UNAUTHENTICATED/"
       "PERMISSION_DENIED); with token_file their data stays in the spool and is retried");
  for (size_t i = 0; i < x->n; i++)
    gw_sb_printf(out, "genai_gateway_exporter_auth_failures_total{exporter=\"%s\"} %llu\n", x->r[i].type->name,
                 (unsigned long long)atomic_load(&x->r[i].stats.auth_refused));
  bool tokens = false;
  for (size_t i = 0; i < x->n; i++)
    tokens |= x->r[i].stats.has_token;
  if (tokens) {
    head(out, "genai_gateway_exporter_token_reloads_total", "counter",
         "Re-reads of exporters.<name>.token_file (SIGHUP or a change); failed ones keep the token read before");
    for (size_t i = 0; i < x->n; i++)
      if (x->r[i].stats.has_token)
        gw_sb_printf(out,
                     "genai_gateway_exporter_token_reloads_total{exporter=\"%s\",result=\"ok\"} %llu\n"
                     "genai_gateway_exporter_token_reloads_total{exporter=\"%s\",result=\"failed\"} %llu\n",
                     x->r[i].type->name, (unsigned long long)atomic_load(&x->r[i].stats.token_reloads[0]),
                     x->r[i].type->name, (unsigned long long)atomic_load(&x->r[i].stats.token_reloads[1]));
  }
  head(out, "genai_gateway_exporter_up", "gauge",
       "1 when the last export request was accepted, 0 when it failed, -1 before the first");
  for (size_t i = 0; i < x->n; i++)
    gw_sb_printf(out, "genai_gateway_exporter_up{exporter=\"%s\"} %d\n", x->r[i].type->name,
                 atomic_load(&x->r[i].stats.up));
}

struct gw_exporters *gw_exporters_start(const struct gw_conf *conf, const struct gw_exporter_type *const *types,
                                        size_t n, struct gw_spool *spool, struct gw_err *err)
{
  struct gw_exporters *x = gw_calloc(1, sizeof *x);
  x->spool = spool;
  bool any = false;
  for (size_t i = 0; i < n; i++)
    any |= gw_conf_exporter_on(&conf->exporters[types[i]->conf_id]);
  if (!any)
    return x;
  static bool curl_ready;
  if (!curl_ready) {
    /* Not thread-safe by contract: done once, here, while main is the only thread that uses curl. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      gw_err_set(err, GW_ERR(INTERNAL), "exporters: cannot initialise libcurl");
      free(x);
      return NULL;
    }
    curl_ready = true;
  }
  for (size_t i = 0; i < n && x->n < GW_CONF_NEXPORTERS; i++) {
    const struct gw_conf_exporter *c = &conf->exporters[types[i]->conf_id];
    if (!gw_conf_exporter_on(c))
      continue;
    struct running *r = &x->r[x->n];
    r->type = types[i];
    r->ops = gw_export_sink_ops;
    r->ops.name = types[i]->name;
    struct gw_export_setup s = {types[i], c, &r->stats};
    void *self = gw_export_create(&s, err);
    if (!self)
      goto fail;
    struct gw_sink_conf sc = {
      .batch_spans = c->batch_spans,
      .batch_wait_ms = c->batch_wait_ms,
      .max_entries = 1024,
      .backoff_min_ms = 200,
      .backoff_max_ms = 30000,
      .drain_ms = conf->shutdown_grace_ms,
      .max_lag_bytes = gw_conf_exporter_lag_bytes(conf, c),
      .max_lag_ms = c->max_lag_ms,
      .nice = c->nice,
    };
    r->sink = gw_sink_start(&r->ops, self, spool, &sc, err);
    if (!r->sink)
      goto fail;
    x->n++;
  }
  gw_metrics_register(render, x);
  x->registered = true;
  return x;
fail:
  gw_exporters_stop(x);
  return NULL;
}

size_t gw_exporters_count(const struct gw_exporters *x) { return x ? x->n : 0; }

void gw_exporters_request_stop(struct gw_exporters *x)
{
  for (size_t i = 0; x && i < x->n; i++)
    gw_sink_request_stop(x->r[i].sink);
}

void gw_exporters_stop(struct gw_exporters *x)
{
  if (!x)
    return;
  if (x->registered)
    gw_metrics_unregister(render, x);
  gw_exporters_request_stop(x);
  for (size_t i = 0; i < x->n; i++)
    gw_sink_stop(x->r[i].sink);
  free(x);
}
