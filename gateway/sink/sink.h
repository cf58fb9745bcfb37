/*
 * sink.h: the interface every spool consumer implements (the Postgres writer, each exporter).
 *
 * A sink type is declared once, as one const struct gw_sink_type at the end of its file. Everything
 * generic lives in sink.c, written once: the consumer thread, batching by spans and time, retry with
 * exponential backoff and jitter (honouring a Retry-After the sink reports), the cursor commit, metrics.
 * A sink's send sees a batch of spool entries and answers OK (commit them), RETRY (keep them, back off,
 * send again) or DROP (commit them, count them as dropped: for data that can never be delivered).
 */
#ifndef GW_SINK_H
#define GW_SINK_H

#include <stdint.h>

#include "core/gw.h"
#include "spool/spool.h"

enum gw_sink_result { GW_SINK_OK, GW_SINK_RETRY, GW_SINK_DROP };

/* Filled by send to steer the generic loop. */
struct gw_sink_outcome {
  uint64_t retry_after_ms; /* > 0: the peer asked to wait this long (Retry-After / RetryInfo) */
  size_t done;             /* RETRY only: the first `done` entries are finished (delivered or given up):
                            * they are committed, and only the rest is sent again */
  uint64_t delivered;      /* spans or records delivered, for metrics */
  uint64_t dropped;        /* spans or records given up on, for metrics */
  char error[256];         /* why, for the log line (no secrets, no content) */
  /* A sink that keeps data it has read (the Langfuse exporter's join holds spans until their log records
   * have come): */
  uint64_t keep_from;      /* > 0: the oldest entry it still keeps something of. The cursor is committed
                            * only up to the entry before it, so after a restart that data is read again
                            * (at least once); the read position still moves on. The sink must let go
                            * within a bounded time, and the lag cap still applies */
  bool holding;            /* it keeps data to deliver even if nothing more comes: the loop calls send
                            * with n == 0 when idle (every 200 ms or so) and when drained at stop */
};

struct gw_sink_type {
  const char *name;
  /* Create the sink's private state from its own config; NULL with err filled on failure. */
  void *(*create)(const void *conf, struct gw_err *err);
  /* Deliver a batch. Runs on the sink's own thread only. n == 0 (entries NULL) only after the sink said
   * it is holding data: a chance to deliver it. */
  enum gw_sink_result (*send)(void *self, const struct gw_spool_entry *entries, size_t n,
                              struct gw_sink_outcome *out);
  /* Called on the sink thread when it starts idling for a while (close idle connections, etc.). May be NULL. */
  void (*idle)(void *self);
  /* Called from the stopping thread (not the sink's) with the drain deadline (monotonic ns), so a send in
   * flight can give up by then instead of running out its own timeout. Must be thread-safe. May be NULL. */
  void (*stopping)(void *self, uint64_t deadline_mono_ns);
  void (*destroy)(void *self);
};

struct gw_sink_conf {
  uint32_t batch_spans;    /* send when this many spans are waiting ... */
  uint64_t batch_wait_ms;  /* ... or the oldest has waited this long */
  uint32_t max_entries;    /* entries per send at most */
  uint64_t backoff_min_ms, backoff_max_ms;
  uint64_t drain_ms;       /* on stop: keep delivering for at most this long */
  /* Lag cap (DESIGN §1), for sinks that may lose data (exporters; 0 = never skip, as the Postgres writer):
   * while this sink is more than max_lag_bytes or max_lag_ms behind the spool head, its oldest entries
   * are skipped unsent, counted (gw_sink_stats) and logged. Checked before every batch and every 20 ms
   * of a backoff; a send in flight (bounded by the sink's own timeout) may overshoot it meanwhile. */
  uint64_t max_lag_bytes;
  uint64_t max_lag_ms;
  /* Nice increment of the sink's thread (0: as the receivers): an exporter yields the CPU to ingestion when
   * the CPU is short, and catches up from the spool when it is not. */
  uint32_t nice;
};

struct gw_sink;

/* Start a consumer thread named gw-sink-<type->name>, reading spool from its own cursor. self is owned
 * by the sink from here on (destroyed by gw_sink_stop). NULL on failure (err filled, self destroyed). */
struct gw_sink *gw_sink_start(const struct gw_sink_type *type, void *self, struct gw_spool *spool,
                              const struct gw_sink_conf *conf, struct gw_err *err);
/* The same with n workers (n >= 1; 1 is gw_sink_start): worker i sends with selves[i] (all owned by the
 * sink from here on) on its own thread gw-sink-<name>-<i>, each taking the next batch from the one cursor,
 * so up to n batches are in flight at once. The cursor is committed only past batches that are finished
 * together with every batch read before them, and never past what a worker's send keeps (keep_from,
 * holding: as with one worker): after a crash, everything from the oldest unfinished or kept batch is
 * sent again, so the sink must store idempotently (the Postgres writer does). No lag cap (CONFIG error),
 * and send must not use done. NULL on failure (err filled, every self destroyed). */
struct gw_sink *gw_sink_start_n(const struct gw_sink_type *type, void *const *selves, size_t n,
                                struct gw_spool *spool, const struct gw_sink_conf *conf, struct gw_err *err);
/* Start stopping: from now the sink drains for at most conf->drain_ms (close the spool first), then its
 * thread ends. Returns at once, so several sinks drain in parallel. NULL is fine. */
void gw_sink_request_stop(struct gw_sink *s);
/* Stop (gw_sink_request_stop if not done yet), join the thread, destroy self and free the sink.
 * NULL is fine. */
void gw_sink_stop(struct gw_sink *s);

/* Figures for /metrics. Thread-safe. */
struct gw_sink_stats {
  uint64_t batches_ok, batches_retried, batches_dropped, delivered, dropped;
  uint64_t skipped_entries, skipped_spans, skipped_log_records; /* given up by the lag cap */
  uint64_t last_error_ns;
};
void gw_sink_stats(struct gw_sink *s, struct gw_sink_stats *out);
/* The sink's spool consumer id (for gw_spool_lag_get). */
int gw_sink_consumer(const struct gw_sink *s);

#endif
