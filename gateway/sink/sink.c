/*
 * sink.c: the generic consumer loop shared by the Postgres writer and every exporter.
 * One thread per sink; each has its own spool cursor, so a slow or failing sink never blocks
 * ingestion or the other sinks. A failed batch is re-read from the spool (rewind) and sent again after
 * an exponential backoff with full jitter, or after the delay the peer asked for, whichever is longer.
 * Repeated failures log one summary line per 10 s instead of one line per attempt. While stopping, a failure
 * with the disk spool ends the drain at once: what is left is kept for the next start, so waiting out the
 * grace for a peer that is down would only delay the exit.
 * A sink with a lag cap (exporters) checks it before every batch and after every failure: past the cap it
 * skips its oldest entries (gw_spool_skip), counts them and says so once per 10 s, so a dead peer costs
 * that peer its data, never the spool's room for ingestion or the other consumers.
 */
#include "sink/sink.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/metrics.h"

struct gw_sink {
  const struct gw_sink_type *type;
  void *self;
  struct gw_spool *spool;
  struct gw_sink_conf conf;
  int consumer;
  pthread_t thread;
  atomic_bool stopping;
  uint64_t stop_deadline; /* monotonic ns; set on stop */
  _Atomic uint64_t batches_ok, batches_retried, batches_dropped, delivered, dropped, last_error_ns;
  _Atomic uint64_t skipped_entries, skipped_spans, skipped_log_records;
  /* the sink thread's own: what the lag cap skipped since it last said so */
  struct gw_spool_skipped skip_pending;
  uint64_t skip_logged;
};

/* Enforce the lag cap; logs what was skipped at most once per 10 s (the rest is summed into the next line).
 * Sink thread only, between sends (also while backing off, so a long backoff cannot let the lag grow). */
static void lag_cap(struct gw_sink *s)
{
  struct gw_spool_skipped *pending = &s->skip_pending;
  uint64_t *last_log = &s->skip_logged;
  if (!s->conf.max_lag_bytes && !s->conf.max_lag_ms)
    return;
  struct gw_spool_skipped k;
  gw_spool_skip(s->spool, s->consumer, s->conf.max_lag_bytes, s->conf.max_lag_ms * 1000000ull, &k);
  if (k.entries) {
    atomic_fetch_add(&s->skipped_entries, k.entries);
    atomic_fetch_add(&s->skipped_spans, k.spans);
    atomic_fetch_add(&s->skipped_log_records, k.log_records);
    pending->entries += k.entries;
    pending->spans += k.spans;
    pending->log_records += k.log_records;
    pending->bytes += k.bytes;
  }
  if (pending->entries && gw_mono_ns() - *last_log > 10ull * 1000000000ull) {
    gw_warn(s->type->name,
            "more than its lag cap behind the spool head: skipped %llu spans and %llu log records (%llu entries, "
            "%llu bytes) that will not be delivered",
            (unsigned long long)pending->spans, (unsigned long long)pending->log_records,
            (unsigned long long)pending->entries, (unsigned long long)pending->bytes);
    memset(pending, 0, sizeof *pending);
    *last_log = gw_mono_ns();
  }
}

static uint64_t jitter(uint64_t max_ms, unsigned *seed)
{
  if (max_ms == 0)
    return 0;
  return (uint64_t)rand_r(seed) % (max_ms + 1);
}

static void sleep_ms_interruptible(struct gw_sink *s, uint64_t ms)
{
  uint64_t until = gw_mono_ns() + ms * 1000000ull;
  while (gw_mono_ns() < until) {
    if (atomic_load(&s->stopping) && (gw_mono_ns() >= s->stop_deadline || gw_spool_is_disk(s->spool)))
      return;
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
    lag_cap(s);
  }
}

static void *run(void *arg)
{
  struct gw_sink *s = arg;
  char tname[16];
  snprintf(tname, sizeof tname, "gw-sink-%.7s", s->type->name);
  pthread_setname_np(pthread_self(), tname);
  if (s->conf.nice) {
    /* Linux keeps a nice value per thread: this lowers this sink's thread only. Raising one's own nice
     * needs no privilege. */
    id_t tid = (id_t)syscall(SYS_gettid);
    errno = 0;
    int cur = getpriority(PRIO_PROCESS, tid);
    if ((cur == -1 && errno) || setpriority(PRIO_PROCESS, tid, cur + (int)s->conf.nice) != 0)
      gw_warn(s->type->name, "cannot lower the thread's CPU priority by %u: %s; it runs as the receivers do",
              s->conf.nice, strerror(errno));
  }

  size_t cap = s->conf.max_entries ? s->conf.max_entries : 256;
  struct gw_spool_entry *batch = gw_calloc(cap, sizeof *batch);
  unsigned seed = (unsigned)gw_mono_ns();
  uint64_t backoff = s->conf.backoff_min_ms;
  uint64_t fails_since_log = 0, last_log = 0;

  for (;;) {
    bool stopping = atomic_load(&s->stopping);
    if (stopping && gw_mono_ns() >= s->stop_deadline)
      break;
    lag_cap(s);
    uint64_t deadline = gw_mono_ns() + 200 * 1000000ull;
    size_t n = gw_spool_peek(s->spool, s->consumer, batch, cap, s->conf.batch_spans,
                             stopping ? 0 : s->conf.batch_wait_ms * 1000000ull, deadline);
    if (n == 0) {
      if (stopping)
        break; /* drained */
      if (s->type->idle)
        s->type->idle(s->self);
      continue;
    }
    struct gw_sink_outcome out;
    memset(&out, 0, sizeof out);
    enum gw_sink_result r = s->type->send(s->self, batch, n, &out);
    if (r == GW_SINK_RETRY) {
      if (out.done > n)
        out.done = n;
      if (out.done)
        gw_spool_commit(s->spool, s->consumer, batch[out.done - 1].seq);
      atomic_fetch_add(&s->delivered, out.delivered);
      atomic_fetch_add(&s->dropped, out.dropped);
      gw_spool_rewind(s->spool, s->consumer);
      atomic_fetch_add(&s->batches_retried, 1);
      atomic_store(&s->last_error_ns, gw_now_ns());
      fails_since_log++;
      if (gw_mono_ns() - last_log > 10ull * 1000000000ull) {
        gw_warn(s->type->name, "delivery failed, will retry (%llu failures since last report): %s",
                (unsigned long long)fails_since_log, out.error[0] ? out.error : "no detail");
        last_log = gw_mono_ns();
        fails_since_log = 0;
      }
      if (atomic_load(&s->stopping) && gw_spool_is_disk(s->spool))
        break; /* stopping and the peer fails: the disk spool keeps the rest for the next start */
      uint64_t wait = jitter(backoff, &seed);
      if (out.retry_after_ms > wait)
        wait = out.retry_after_ms;
      backoff = backoff * 2 > s->conf.backoff_max_ms ? s->conf.backoff_max_ms : backoff * 2;
      sleep_ms_interruptible(s, wait);
      continue;
    }
    if (fails_since_log || last_log) {
      if (fails_since_log)
        gw_info(s->type->name, "delivery recovered after %llu more failures", (unsigned long long)fails_since_log);
      fails_since_log = 0;
      last_log = 0;
    }
    backoff = s->conf.backoff_min_ms;
    if (r == GW_SINK_DROP) {
      atomic_fetch_add(&s->batches_dropped, 1);
      gw_warn(s->type->name, "dropped a batch of %zu entries: %s", n, out.error[0] ? out.error : "no detail");
    } else {
      atomic_fetch_add(&s->batches_ok, 1);
    }
    atomic_fetch_add(&s->delivered, out.delivered);
    atomic_fetch_add(&s->dropped, out.dropped);
    gw_spool_commit(s->spool, s->consumer, batch[n - 1].seq);
  }
  if (s->skip_pending.entries)
    gw_warn(s->type->name, "skipped %llu more spans and %llu more log records past its lag cap since the last report (not delivered)",
            (unsigned long long)s->skip_pending.spans, (unsigned long long)s->skip_pending.log_records);
  free(batch);
  return NULL;
}

struct gw_sink *gw_sink_start(const struct gw_sink_type *type, void *self, struct gw_spool *spool,
                              const struct gw_sink_conf *conf, struct gw_err *err)
{
  struct gw_sink *s = gw_calloc(1, sizeof *s);
  s->type = type;
  s->self = self;
  s->spool = spool;
  s->conf = *conf;
  if (!s->conf.backoff_min_ms)
    s->conf.backoff_min_ms = 100;
  if (s->conf.backoff_max_ms < s->conf.backoff_min_ms)
    s->conf.backoff_max_ms = 30000;
  s->consumer = gw_spool_add_consumer(spool, type->name);
  if (s->consumer < 0) {
    gw_err_set(err, GW_ERR(CONFIG), "sink %s: too many spool consumers", type->name);
    goto fail;
  }
  if (conf->max_lag_bytes || conf->max_lag_ms)
    gw_spool_consumer_may_skip(spool, s->consumer);
  if (pthread_create(&s->thread, NULL, run, s) != 0) {
    gw_err_set(err, GW_ERR(INTERNAL), "sink %s: cannot start thread", type->name);
    goto fail;
  }
  return s;
fail:
  type->destroy(self);
  free(s);
  return NULL;
}

void gw_sink_request_stop(struct gw_sink *s)
{
  if (!s || atomic_load(&s->stopping))
    return;
  s->stop_deadline = gw_mono_ns() + s->conf.drain_ms * 1000000ull;
  atomic_store(&s->stopping, true);
  if (s->type->stopping)
    s->type->stopping(s->self, s->stop_deadline);
  gw_spool_wake(s->spool);
}

void gw_sink_stop(struct gw_sink *s)
{
  if (!s)
    return;
  gw_sink_request_stop(s);
  pthread_join(s->thread, NULL);
  s->type->destroy(s->self);
  free(s);
}

void gw_sink_stats(struct gw_sink *s, struct gw_sink_stats *o)
{
  o->batches_ok = atomic_load(&s->batches_ok);
  o->batches_retried = atomic_load(&s->batches_retried);
  o->batches_dropped = atomic_load(&s->batches_dropped);
  o->delivered = atomic_load(&s->delivered);
  o->dropped = atomic_load(&s->dropped);
  o->skipped_entries = atomic_load(&s->skipped_entries);
  o->skipped_spans = atomic_load(&s->skipped_spans);
  o->skipped_log_records = atomic_load(&s->skipped_log_records);
  o->last_error_ns = atomic_load(&s->last_error_ns);
}

int gw_sink_consumer(const struct gw_sink *s) { return s->consumer; }
