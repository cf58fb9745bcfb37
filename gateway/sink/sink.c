/*
 * sink.c: the generic consumer loop shared by the Postgres writer and every exporter.
 * One thread per sink; each has its own spool cursor, so a slow or failing sink never blocks
 * ingestion or the other sinks. A failed batch is re-read from the spool (rewind) and sent again after
 * an exponential backoff with full jitter, or after the delay the peer asked for, whichever is longer.
 * Repeated failures log one summary line per 10 s instead of one line per attempt. While stopping, a failure
 * with the disk spool ends the drain at once: what is left is kept for the next start, so waiting out the
 * grace for a peer that is down would only delay the exit.
 * A sink may keep some of what it has read (gw_sink_outcome.keep_from, the Langfuse exporter's join): the
 * cursor is then committed only up to what it keeps, while the read position moves on; a failed batch is
 * read again from its first unfinished entry, not from the commit point; and while the sink says it holds
 * data, an idle loop still calls it (n == 0) so it can deliver what it holds, also once more when drained
 * at stop.
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
  /* Several workers (gw_sink_start_n, n > 1): worker i sends with selves[i] on threads[i]. read_mu makes a
   * peek and the registration of its batch one step, so flights[] is in read order; state_mu guards
   * flights[] and the commits. */
  size_t nworkers;
  void **selves;
  pthread_t *threads;
  struct worker *workers;
  pthread_mutex_t read_mu, state_mu;
  struct flight {
    uint64_t last; /* the batch's last entry */
    bool done;     /* delivered or dropped: nothing of it is needed any more */
  } *flights;     /* the batches read and not yet committed, oldest first (flight_finished bounds them) */
  size_t nflights;
  uint64_t flights_upto; /* the last entry of the finished batches before every unfinished one */
  uint64_t committed;    /* the cursor as committed */
};

struct worker {
  struct gw_sink *s;
  size_t index;
  uint64_t keep_from; /* what its sink said it keeps (gw_sink_outcome.keep_from), under state_mu */
  bool holding;       /* its sink holds data: ticks (send with n == 0) instead of idle */
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

/* Commit what the sink has finished, but not what it still keeps (keep_from, 0: nothing). */
static void commit(struct gw_sink *s, uint64_t read_done, uint64_t keep_from)
{
  uint64_t upto = keep_from && keep_from - 1 < read_done ? keep_from - 1 : read_done;
  if (upto)
    gw_spool_commit(s->spool, s->consumer, upto);
}

/* A failed delivery that will be retried: counted, and logged at most every 10 s with the failures since. */
static void note_retry(struct gw_sink *s, const struct gw_sink_outcome *out, uint64_t *fails_since_log,
                       uint64_t *last_log)
{
  atomic_fetch_add(&s->batches_retried, 1);
  atomic_store(&s->last_error_ns, gw_now_ns());
  (*fails_since_log)++;
  if (gw_mono_ns() - *last_log > 10ull * 1000000000ull) {
    gw_warn(s->type->name, "delivery failed, will retry (%llu failures since last report): %s",
            (unsigned long long)*fails_since_log,
            out->error[0] ? out->error : "no detail");
    *last_log = gw_mono_ns();
    *fails_since_log = 0;
  }
}

/* A delivery went through after failures: say so once, and start the failure report afresh. */
static void note_recovered(struct gw_sink *s, uint64_t *fails_since_log, uint64_t *last_log)
{
  if (!*fails_since_log && !*last_log)
    return;
  if (*fails_since_log)
    gw_info(s->type->name, "delivery recovered after %llu more failures", (unsigned long long)*fails_since_log);
  *fails_since_log = 0;
  *last_log = 0;
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

  /* read_done: the last entry send has finished (delivered, given up, or kept by the sink itself);
   * holding / keep_from: what the sink said it keeps (gw_sink_outcome). */
  uint64_t read_done = 0, keep_from = 0;
  bool holding = false;
  for (;;) {
    bool stopping = atomic_load(&s->stopping);
    if (stopping && gw_mono_ns() >= s->stop_deadline) {
      /* Out of time: what the sink still keeps holds the cursor for the next start; the memory spool has
       * none, so it goes (as when drained, below). */
      if (keep_from && !gw_spool_is_disk(s->spool))
        commit(s, read_done, 0);
      break;
    }
    lag_cap(s);
    uint64_t deadline = gw_mono_ns() + 200 * 1000000ull;
    size_t n = gw_spool_peek(s->spool, s->consumer, batch, cap, s->conf.batch_spans,
                             stopping ? 0 : s->conf.batch_wait_ms * 1000000ull, deadline);
    if (n == 0 && !holding) {
      if (stopping) {
        /* Drained. What the sink still keeps (keep_from: the Langfuse join's log content waiting for its
         * span) holds the cursor so that the next start reads it again; the memory spool has no next start,
         * so it goes now: else the entries behind it, delivered, would be counted lost at exit. */
        if (keep_from && !gw_spool_is_disk(s->spool))
          commit(s, read_done, 0);
        break;
      }
      if (s->type->idle)
        s->type->idle(s->self);
      continue;
    }
    /* n == 0 while holding: a tick, so that what the sink keeps can go without new entries (paced: a
     * closed spool answers at once) */
    if (n == 0 && !stopping && gw_mono_ns() < deadline) {
      struct timespec ts = {0, 20 * 1000000L};
      nanosleep(&ts, NULL);
    }
    struct gw_sink_outcome out;
    memset(&out, 0, sizeof out);
    enum gw_sink_result r = s->type->send(s->self, n ? batch : NULL, n, &out);
    holding = out.holding;
    keep_from = out.keep_from;
    if (r == GW_SINK_RETRY) {
      if (out.done > n)
        out.done = n;
      /* the first out.done entries are finished: commit them (up to what the sink keeps), and read again
       * only what follows them */
      if (n)
        read_done = out.done ? batch[out.done - 1].seq : batch[0].seq - 1;
      commit(s, read_done, keep_from);
      atomic_fetch_add(&s->delivered, out.delivered);
      atomic_fetch_add(&s->dropped, out.dropped);
      gw_spool_rewind_to(s->spool, s->consumer, read_done);
      note_retry(s, &out, &fails_since_log, &last_log);
      if (atomic_load(&s->stopping) && gw_spool_is_disk(s->spool))
        break; /* stopping and the peer fails: the disk spool keeps the rest for the next start */
      uint64_t wait = jitter(backoff, &seed);
      if (out.retry_after_ms > wait)
        wait = out.retry_after_ms;
      backoff = backoff * 2 > s->conf.backoff_max_ms ? s->conf.backoff_max_ms : backoff * 2;
      sleep_ms_interruptible(s, wait);
      continue;
    }
    note_recovered(s, &fails_since_log, &last_log);
    backoff = s->conf.backoff_min_ms;
    if (r == GW_SINK_DROP) {
      atomic_fetch_add(&s->batches_dropped, 1);
      gw_warn(s->type->name, "dropped a batch of %zu entries: %s", n, out.error[0] ? out.error : "no detail");
    } else if (n) {
      atomic_fetch_add(&s->batches_ok, 1);
    }
    atomic_fetch_add(&s->delivered, out.delivered);
    atomic_fetch_add(&s->dropped, out.dropped);
    if (n)
      read_done = batch[n - 1].seq;
    commit(s, read_done, keep_from);
  }
  if (s->skip_pending.entries)
    gw_warn(s->type->name, "skipped %llu more spans and %llu more log records past its lag cap since the last report (not delivered)",
            (unsigned long long)s->skip_pending.spans, (unsigned long long)s->skip_pending.log_records);
  free(batch);
  return NULL;
}

/*
 * Several workers, each with its own self (the Postgres writer's connection): a worker peeks the next batch,
 * registers it as in flight (in read order, under read_mu, so no two workers ever hold the same entry),
 * and sends it until it is delivered or dropped, backing off on its own between attempts. The cursor is
 * committed only up to the last entry of the oldest batches that are all finished: a batch finished
 * before an older one still in flight waits for it, so a crash never loses an entry read earlier than an
 * acknowledged one; after a restart everything from the first unfinished batch is sent again (the sink
 * must be idempotent, as the Postgres writer is). A worker's sink may keep what it has read (keep_from,
 * holding, as with one worker): the cursor then stays before the oldest entry any worker's sink keeps, and
 * a worker whose sink holds gets ticks (send with n == 0) instead of idle calls. No lag cap, and a send
 * must not finish part of a batch (done): main uses it for the Postgres writer only.
 */
static void flight_finished(struct gw_sink *s, uint64_t last, struct worker *wk, uint64_t keep_from)
{
  pthread_mutex_lock(&s->state_mu);
  wk->keep_from = keep_from;
  size_t i = 0;
  for (; last && i < s->nflights; i++)
    if (s->flights[i].last == last)
      s->flights[i].done = true;
  for (i = 0; i < s->nflights && s->flights[i].done; i++)
    s->flights_upto = s->flights[i].last;
  if (i) {
    memmove(s->flights, s->flights + i, sizeof *s->flights * (s->nflights - i));
    s->nflights -= i;
  }
  /* not past what any worker's sink keeps (the cursor only moves forward: under state_mu) */
  uint64_t upto = s->flights_upto;
  for (size_t w = 0; w < s->nworkers; w++)
    if (s->workers[w].keep_from && s->workers[w].keep_from - 1 < upto)
      upto = s->workers[w].keep_from - 1;
  if (upto > s->committed) {
    gw_spool_commit(s->spool, s->consumer, upto);
    s->committed = upto;
  }
  /* Finished batches waiting behind an older one merge into one: at most one unfinished batch per worker
   * and one finished run after each, so flights[] never holds more than 2 * nworkers + 1. */
  size_t k = 0;
  for (i = 0; i < s->nflights; i++) {
    if (k && s->flights[i].done && s->flights[k - 1].done)
      s->flights[k - 1].last = s->flights[i].last;
    else
      s->flights[k++] = s->flights[i];
  }
  s->nflights = k;
  pthread_mutex_unlock(&s->state_mu);
}

static void *run_worker(void *arg)
{
  struct worker *wk = arg;
  struct gw_sink *s = wk->s;
  void *self = s->selves[wk->index];
  char tname[16];
  snprintf(tname, sizeof tname, "gw-sink-%.4s-%zu", s->type->name, wk->index);
  pthread_setname_np(pthread_self(), tname);
  size_t cap = s->conf.max_entries ? s->conf.max_entries : 256;
  struct gw_spool_entry *batch = gw_calloc(cap, sizeof *batch);
  unsigned seed = (unsigned)gw_mono_ns() ^ (unsigned)wk->index;
  uint64_t fails_since_log = 0, last_log = 0;
  for (;;) {
    bool stopping = atomic_load(&s->stopping);
    if (stopping && gw_mono_ns() >= s->stop_deadline)
      break;
    uint64_t deadline = gw_mono_ns() + 200 * 1000000ull;
    pthread_mutex_lock(&s->read_mu);
    size_t n = gw_spool_peek(s->spool, s->consumer, batch, cap, s->conf.batch_spans,
                             stopping ? 0 : s->conf.batch_wait_ms * 1000000ull, deadline);
    if (n) {
      pthread_mutex_lock(&s->state_mu);
      s->flights[s->nflights++] = (struct flight){batch[n - 1].seq, false};
      pthread_mutex_unlock(&s->state_mu);
    }
    pthread_mutex_unlock(&s->read_mu);
    if (n == 0) {
      if (wk->holding) { /* a tick, so that what its sink keeps can go without new entries */
        struct gw_sink_outcome tick;
        memset(&tick, 0, sizeof tick);
        s->type->send(self, NULL, 0, &tick);
        wk->holding = tick.holding;
        flight_finished(s, 0, wk, tick.keep_from);
        if (!stopping && gw_mono_ns() < deadline) {
          struct timespec ts = {0, 20 * 1000000L};
          nanosleep(&ts, NULL);
        }
        continue;
      }
      if (stopping)
        break; /* drained */
      if (s->type->idle)
        s->type->idle(self);
      continue;
    }
    uint64_t backoff = s->conf.backoff_min_ms;
    bool given_up = false;
    enum gw_sink_result r;
    struct gw_sink_outcome out;
    for (;;) {
      memset(&out, 0, sizeof out);
      r = s->type->send(self, batch, n, &out);
      if (r != GW_SINK_RETRY)
        break;
      note_retry(s, &out, &fails_since_log, &last_log);
      /* Stopping: with the disk spool the batch stays there for the next start; the memory spool tries
       * until the drain deadline. Either way the batch stays uncommitted, and so does all after it. */
      if (atomic_load(&s->stopping) && (gw_spool_is_disk(s->spool) || gw_mono_ns() >= s->stop_deadline)) {
        given_up = true;
        break;
      }
      uint64_t wait = jitter(backoff, &seed);
      if (out.retry_after_ms > wait)
        wait = out.retry_after_ms;
      backoff = backoff * 2 > s->conf.backoff_max_ms ? s->conf.backoff_max_ms : backoff * 2;
      sleep_ms_interruptible(s, wait);
    }
    if (given_up)
      break;
    note_recovered(s, &fails_since_log, &last_log);
    if (r == GW_SINK_DROP) {
      atomic_fetch_add(&s->batches_dropped, 1);
      gw_warn(s->type->name, "dropped a batch of %zu entries: %s", n, out.error[0] ? out.error : "no detail");
    } else {
      atomic_fetch_add(&s->batches_ok, 1);
    }
    atomic_fetch_add(&s->delivered, out.delivered);
    atomic_fetch_add(&s->dropped, out.dropped);
    wk->holding = out.holding;
    flight_finished(s, batch[n - 1].seq, wk, out.keep_from);
  }
  /* What its sink still keeps holds the cursor for the next start; the memory spool has none, so it goes
   * (as with one worker). */
  if (!gw_spool_is_disk(s->spool))
    flight_finished(s, 0, wk, 0);
  free(batch);
  return NULL;
}

struct gw_sink *gw_sink_start_n(const struct gw_sink_type *type, void *const *selves, size_t n,
                                struct gw_spool *spool, const struct gw_sink_conf *conf, struct gw_err *err)
{
  if (n <= 1)
    return gw_sink_start(type, selves[0], spool, conf, err);
  struct gw_sink *s = gw_calloc(1, sizeof *s);
  s->type = type;
  s->self = selves[0];
  s->spool = spool;
  s->conf = *conf;
  s->nworkers = n;
  s->selves = gw_calloc(n, sizeof *s->selves);
  memcpy(s->selves, selves, sizeof *s->selves * n);
  s->threads = gw_calloc(n, sizeof *s->threads);
  s->workers = gw_calloc(n, sizeof *s->workers);
  s->flights = gw_calloc(2 * n + 2, sizeof *s->flights);
  pthread_mutex_init(&s->read_mu, NULL);
  pthread_mutex_init(&s->state_mu, NULL);
  if (!s->conf.backoff_min_ms)
    s->conf.backoff_min_ms = 100;
  if (s->conf.backoff_max_ms < s->conf.backoff_min_ms)
    s->conf.backoff_max_ms = 30000;
  size_t started = 0;
  if (conf->max_lag_bytes || conf->max_lag_ms) {
    gw_err_set(err, GW_ERR(CONFIG), "sink %s: several workers cannot have a lag cap", type->name);
    goto fail;
  }
  s->consumer = gw_spool_add_consumer(spool, type->name);
  if (s->consumer < 0) {
    gw_err_set(err, GW_ERR(CONFIG), "sink %s: too many spool consumers", type->name);
    goto fail;
  }
  for (; started < n; started++) {
    s->workers[started] = (struct worker){s, started, 0, false};
    if (pthread_create(&s->threads[started], NULL, run_worker, &s->workers[started]) != 0) {
      gw_err_set(err, GW_ERR(INTERNAL), "sink %s: cannot start thread", type->name);
      goto fail;
    }
  }
  return s;
fail:
  if (started) {
    s->stop_deadline = gw_mono_ns();
    atomic_store(&s->stopping, true);
    gw_spool_wake(spool);
    for (size_t i = 0; i < started; i++)
      pthread_join(s->threads[i], NULL);
  }
  for (size_t i = 0; i < n; i++)
    type->destroy(selves[i]);
  pthread_mutex_destroy(&s->read_mu);
  pthread_mutex_destroy(&s->state_mu);
  free(s->selves);
  free(s->threads);
  free(s->workers);
  free(s->flights);
  free(s);
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
    for (size_t i = 0; i < (s->nworkers ? s->nworkers : 1); i++)
      s->type->stopping(s->nworkers ? s->selves[i] : s->self, s->stop_deadline);
  gw_spool_wake(s->spool);
}

void gw_sink_stop(struct gw_sink *s)
{
  if (!s)
    return;
  gw_sink_request_stop(s);
  if (s->nworkers) {
    for (size_t i = 0; i < s->nworkers; i++)
      pthread_join(s->threads[i], NULL);
    for (size_t i = 0; i < s->nworkers; i++)
      s->type->destroy(s->selves[i]);
    pthread_mutex_destroy(&s->read_mu);
    pthread_mutex_destroy(&s->state_mu);
    free(s->selves);
    free(s->threads);
    free(s->workers);
    free(s->flights);
  } else {
    pthread_join(s->thread, NULL);
    s->type->destroy(s->self);
  }
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
