/*
 * test_sink.c: the generic consumer loop (gateway/sink/sink.c) driven by a scripted sink type: partial
 * progress on RETRY, Retry-After, the lag cap (skip, count, never for a sink without a cap), and stopping
 * (the stopping hook, drain bounded by drain_ms), and a sink that keeps what it has read (keep_from:
 * commits held back, read position moving on; holding: ticks while idle and once more at stop).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "sink/sink.h"

/* The scripted sink: answers results[i] for send number i (then the last one again), records what it saw. */
struct fake {
  pthread_mutex_t mu;
  enum gw_sink_result results[8];
  size_t nresults, done_on_retry;
  uint64_t retry_after_ms;
  size_t sends;
  uint64_t first_seq[64];
  size_t batch_len[64];
  uint64_t send_mono[64];
  _Atomic uint64_t stopping_deadline;
  bool destroyed;
};

static void *f_create(const void *conf, struct gw_err *err) { return (void *)conf; }

static enum gw_sink_result f_send(void *self, const struct gw_spool_entry *e, size_t n, struct gw_sink_outcome *out)
{
  struct fake *f = self;
  pthread_mutex_lock(&f->mu);
  size_t i = f->sends < 64 ? f->sends : 63;
  f->first_seq[i] = e[0].seq;
  f->batch_len[i] = n;
  f->send_mono[i] = gw_mono_ns();
  enum gw_sink_result r = f->results[f->sends < f->nresults ? f->sends : f->nresults - 1];
  f->sends++;
  pthread_mutex_unlock(&f->mu);
  if (r == GW_SINK_RETRY) {
    out->done = f->done_on_retry;
    out->retry_after_ms = f->retry_after_ms;
    snprintf(out->error, sizeof out->error, "scripted failure");
  } else {
    out->delivered = n;
  }
  return r;
}

static void f_stopping(void *self, uint64_t deadline) { atomic_store(&((struct fake *)self)->stopping_deadline, deadline); }
static void f_destroy(void *self) { ((struct fake *)self)->destroyed = true; }

static const struct gw_sink_type fake_type = {
  .name = "fake", .create = f_create, .send = f_send, .stopping = f_stopping, .destroy = f_destroy,
};

static struct gw_spool *mk_spool(size_t max)
{
  struct gw_spool_conf c = {.mode = "memory", .max_bytes = max, .high_water = 0.9};
  struct gw_err err = {0};
  struct gw_spool *s = gw_spool_create(&c, &err);
  assert_non_null(s);
  return s;
}

static void put(struct gw_spool *s, uint32_t nspans)
{
  char body[512];
  memset(body, 'b', sizeof body);
  struct gw_spool_in in = {GW_SIGNAL_TRACES, 0, nspans, 0, body, sizeof body, NULL, 0, false};
  assert_int_equal(gw_spool_append(s, &in), GW_OK);
}

static size_t sends(struct fake *f)
{
  pthread_mutex_lock(&f->mu);
  size_t n = f->sends;
  pthread_mutex_unlock(&f->mu);
  return n;
}

static void wait_sends(struct fake *f, size_t want)
{
  for (int i = 0; i < 500 && sends(f) < want; i++) {
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  assert_true(sends(f) >= want);
}

static struct fake *mk_fake(void)
{
  struct fake *f = calloc(1, sizeof *f);
  pthread_mutex_init(&f->mu, NULL);
  return f;
}

static void free_fake(struct fake *f)
{
  pthread_mutex_destroy(&f->mu);
  free(f);
}

/* RETRY with done = 1: the first entry is committed, the retry starts at the second. */
static void test_retry_commits_done_prefix(void **st)
{
  (void)st;
  struct gw_spool *sp = mk_spool(1 << 20);
  struct fake *f = mk_fake();
  f->results[0] = GW_SINK_RETRY;
  f->results[1] = GW_SINK_OK;
  f->nresults = 2;
  f->done_on_retry = 1;
  struct gw_sink_conf c = {.batch_spans = 3, .batch_wait_ms = 0, .max_entries = 8, .backoff_min_ms = 1,
                           .backoff_max_ms = 2, .drain_ms = 1000};
  struct gw_err err = {0};
  struct gw_sink *s = gw_sink_start(&fake_type, f, sp, &c, &err);
  assert_non_null(s);
  put(sp, 1);
  put(sp, 1);
  put(sp, 1);
  wait_sends(f, 2);
  pthread_mutex_lock(&f->mu);
  uint64_t first0 = f->first_seq[0], first1 = f->first_seq[1];
  size_t len0 = f->batch_len[0], len1 = f->batch_len[1];
  pthread_mutex_unlock(&f->mu);
  if (len0 == 3) {
    assert_int_equal(first0, 1);
    assert_int_equal(first1, 2);
    assert_int_equal(len1, 2);
  } else {
    /* The first batch was cut by time before all three arrived: still, the retry skips the done one. */
    assert_int_equal(first1, first0 + 1);
  }
  gw_spool_close(sp);
  gw_sink_stop(s);
  assert_true(f->destroyed);
  gw_spool_destroy(sp);
  free_fake(f);
}

/* The loop waits at least the Retry-After the peer gave before sending again. */
static void test_retry_after_is_honoured(void **st)
{
  (void)st;
  struct gw_spool *sp = mk_spool(1 << 20);
  struct fake *f = mk_fake();
  f->results[0] = GW_SINK_RETRY;
  f->results[1] = GW_SINK_OK;
  f->nresults = 2;
  f->retry_after_ms = 300;
  struct gw_sink_conf c = {.batch_spans = 1, .max_entries = 8, .backoff_min_ms = 1, .backoff_max_ms = 2,
                           .drain_ms = 1000};
  struct gw_err err = {0};
  struct gw_sink *s = gw_sink_start(&fake_type, f, sp, &c, &err);
  put(sp, 1);
  wait_sends(f, 2);
  pthread_mutex_lock(&f->mu);
  uint64_t gap = f->send_mono[1] - f->send_mono[0];
  pthread_mutex_unlock(&f->mu);
  assert_true(gap >= 290000000ull);
  gw_spool_close(sp);
  gw_sink_stop(s);
  gw_spool_destroy(sp);
  free_fake(f);
}

/* A sink that always fails with a lag cap: the spool never holds more than the cap for it, the skipped
 * spans are counted, and a second sink without a cap still gets every entry. */
static void test_lag_cap_skips_and_counts(void **st)
{
  (void)st;
  struct gw_spool *sp = mk_spool(1 << 20);
  struct fake *down = mk_fake(), *ok = mk_fake();
  down->results[0] = GW_SINK_RETRY;
  down->nresults = 1;
  ok->results[0] = GW_SINK_OK;
  ok->nresults = 1;
  struct gw_sink_conf c = {.batch_spans = 1, .max_entries = 64, .backoff_min_ms = 1, .backoff_max_ms = 5,
                           .drain_ms = 100, .max_lag_bytes = 8 * 1024};
  struct gw_sink_conf cok = c;
  cok.max_lag_bytes = 0;
  struct gw_err err = {0};
  struct gw_sink *sd = gw_sink_start(&fake_type, down, sp, &c, &err);
  struct gw_sink *so = gw_sink_start(&fake_type, ok, sp, &cok, &err);
  for (int i = 0; i < 100; i++)
    put(sp, 2);
  struct gw_sink_stats stats = {0};
  for (int i = 0; i < 300; i++) {
    gw_sink_stats(sd, &stats);
    if (stats.skipped_entries >= 80)
      break;
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  assert_true(stats.skipped_entries >= 80);
  assert_int_equal(stats.skipped_spans, 2 * stats.skipped_entries);
  /* The cap counts what the failing sink holds alone: while the other sink (slow on a loaded machine) has
   * not stored everything, part of the lag is not the failing sink's alone; it is within the cap soon after. */
  struct gw_spool_lag l;
  for (int i = 0; i < 300; i++) {
    gw_spool_lag_get(sp, gw_sink_consumer(sd), &l);
    if (l.bytes <= 8 * 1024 + 1024)
      break;
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  assert_true(l.bytes <= 8 * 1024 + 1024);
  gw_sink_stats(so, &stats);
  for (int i = 0; i < 300 && stats.delivered < 100; i++) {
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
    gw_sink_stats(so, &stats);
  }
  assert_int_equal(stats.delivered, 100);
  assert_int_equal(stats.skipped_entries, 0);
  gw_spool_close(sp);
  uint64_t t0 = gw_mono_ns();
  gw_sink_request_stop(sd);
  gw_sink_request_stop(so);
  assert_true(atomic_load(&down->stopping_deadline) >= t0 + 90000000ull);
  gw_sink_stop(sd);
  gw_sink_stop(so);
  /* The failing sink drained for at most drain_ms (plus one backoff step), then gave up. */
  assert_true(gw_mono_ns() - t0 < 2000000000ull);
  gw_spool_destroy(sp);
  free_fake(down);
  free_fake(ok);
}

/* The cap holds while the sink sleeps a long backoff (the peer asked for 5 s), not only between sends. */
static void test_lag_cap_holds_during_backoff(void **st)
{
  (void)st;
  struct gw_spool *sp = mk_spool(1 << 20);
  struct fake *down = mk_fake();
  down->results[0] = GW_SINK_RETRY;
  down->nresults = 1;
  down->retry_after_ms = 5000;
  struct gw_sink_conf c = {.batch_spans = 1, .max_entries = 64, .backoff_min_ms = 1, .backoff_max_ms = 5,
                           .drain_ms = 100, .max_lag_bytes = 4 * 1024};
  struct gw_err err = {0};
  struct gw_sink *sd = gw_sink_start(&fake_type, down, sp, &c, &err);
  put(sp, 1);
  wait_sends(down, 1); /* now sleeping 5 s */
  for (int i = 0; i < 40; i++)
    put(sp, 1);
  struct gw_spool_lag l = {0};
  for (int i = 0; i < 100; i++) {
    gw_spool_lag_get(sp, gw_sink_consumer(sd), &l);
    if (l.bytes <= 4 * 1024)
      break;
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  assert_true(l.bytes <= 4 * 1024);
  assert_int_equal(sends(down), 1); /* still in the backoff: the cap acted without a send */
  gw_spool_close(sp);
  gw_sink_stop(sd);
  gw_spool_destroy(sp);
  free_fake(down);
}

/* A sink that keeps what it reads (as the Langfuse exporter's join holds spans): it keeps every entry it
 * has seen until `release` is set, says it is holding, and records its calls (n == 0: a tick). */
struct keeper {
  pthread_mutex_t mu;
  uint64_t oldest;        /* the oldest entry it keeps (0: none) */
  bool release;           /* let go of everything at the next call */
  bool fail_first;        /* answer RETRY with done = 1 to the first batch */
  size_t calls, ticks, batches;
  uint64_t firsts[16];    /* first seq of each batch */
};

static enum gw_sink_result k_send(void *self, const struct gw_spool_entry *e, size_t n, struct gw_sink_outcome *out)
{
  struct keeper *k = self;
  pthread_mutex_lock(&k->mu);
  k->calls++;
  enum gw_sink_result r = GW_SINK_OK;
  if (!n) {
    k->ticks++;
  } else {
    if (k->batches < 16)
      k->firsts[k->batches] = e[0].seq;
    k->batches++;
    if (!k->oldest)
      k->oldest = e[0].seq;
    if (k->fail_first && k->batches == 1 && n >= 2) {
      out->done = 1;
      r = GW_SINK_RETRY;
    }
  }
  if (k->release)
    k->oldest = 0;
  out->keep_from = k->oldest;
  out->holding = k->oldest != 0;
  pthread_mutex_unlock(&k->mu);
  return r;
}

static void k_destroy(void *self) { (void)self; }

static const struct gw_sink_type keeper_type = {.name = "keeper", .send = k_send, .destroy = k_destroy};

static size_t k_get(struct keeper *k, size_t *field)
{
  pthread_mutex_lock(&k->mu);
  size_t v = *field;
  pthread_mutex_unlock(&k->mu);
  return v;
}

static void sleep_ms(long ms)
{
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* A keeper sink on sp, batches of two entries (batch_wait_ms for the second), drain_ms at stop; two
 * entries put, and their batch taken. */
static struct gw_sink *keeper_two(struct keeper *k, struct gw_spool *sp, uint64_t batch_wait_ms, uint64_t drain_ms)
{
  pthread_mutex_init(&k->mu, NULL);
  struct gw_sink_conf c = {.batch_spans = 2, .batch_wait_ms = batch_wait_ms, .max_entries = 8, .backoff_min_ms = 1,
                           .backoff_max_ms = 2, .drain_ms = drain_ms};
  struct gw_err err = {0};
  struct gw_sink *s = gw_sink_start(&keeper_type, k, sp, &c, &err);
  assert_non_null(s);
  put(sp, 1);
  put(sp, 1);
  for (int i = 0; i < 200 && k_get(k, &k->batches) < 1; i++)
    sleep_ms(5);
  return s;
}

/* keep_from: the cursor stays before what the sink keeps while it reads on; holding: ticks (n == 0) come
 * while nothing new arrives; once it lets go, everything is committed. */
static void test_keep_from_and_ticks(void **st)
{
  (void)st;
  struct gw_spool *sp = mk_spool(1 << 20);
  struct keeper k = {0};
  /* batches of exactly two entries: peek waits (up to 10 s) for the second */
  struct gw_sink *s = keeper_two(&k, sp, 10000, 1000);
  put(sp, 1);
  put(sp, 1);
  for (int i = 0; i < 200 && k_get(&k, &k.batches) < 2; i++)
    sleep_ms(5);
  assert_int_equal(k_get(&k, &k.batches), 2);
  pthread_mutex_lock(&k.mu);
  assert_int_equal(k.firsts[0], 1);
  assert_int_equal(k.firsts[1], 3); /* read on past what it keeps, nothing read twice */
  pthread_mutex_unlock(&k.mu);
  struct gw_spool_lag l;
  gw_spool_lag_get(sp, gw_sink_consumer(s), &l);
  assert_int_equal(l.entries, 4); /* nothing committed: it keeps entry 1 on */
  /* nothing new arrives: it is called anyway, about every 200 ms */
  size_t t0 = k_get(&k, &k.ticks);
  sleep_ms(700);
  assert_true(k_get(&k, &k.ticks) >= t0 + 2);
  /* it lets go: the next tick commits everything */
  pthread_mutex_lock(&k.mu);
  k.release = true;
  pthread_mutex_unlock(&k.mu);
  for (int i = 0; i < 200; i++) {
    gw_spool_lag_get(sp, gw_sink_consumer(s), &l);
    if (!l.entries)
      break;
    sleep_ms(5);
  }
  assert_int_equal(l.entries, 0);
  /* not holding any more: no more ticks */
  size_t t1 = k_get(&k, &k.ticks);
  sleep_ms(500);
  assert_int_equal(k_get(&k, &k.ticks), t1);
  gw_spool_close(sp);
  gw_sink_stop(s);
  gw_spool_destroy(sp);
  pthread_mutex_destroy(&k.mu);
}

/* A retry after a sink that keeps entries reads again only what follows the finished ones, and a sink
 * still holding at stop is called once more after the drain (so it can let go). */
static void test_keep_retry_and_final_tick(void **st)
{
  (void)st;
  struct gw_spool *sp = mk_spool(1 << 20);
  struct keeper k = {.fail_first = true};
  pthread_mutex_init(&k.mu, NULL);
  struct gw_sink_conf c = {.batch_spans = 3, .batch_wait_ms = 50, .max_entries = 8, .backoff_min_ms = 1,
                           .backoff_max_ms = 2, .drain_ms = 2000};
  struct gw_err err = {0};
  struct gw_sink *s = gw_sink_start(&keeper_type, &k, sp, &c, &err);
  put(sp, 1);
  put(sp, 1);
  put(sp, 1);
  for (int i = 0; i < 200 && k_get(&k, &k.batches) < 2; i++)
    sleep_ms(5);
  pthread_mutex_lock(&k.mu);
  assert_int_equal(k.firsts[0], 1);
  assert_int_equal(k.firsts[1], 2); /* entry 1 was finished (kept, uncommitted): not read again */
  pthread_mutex_unlock(&k.mu);
  gw_spool_close(sp);
  size_t c0 = k_get(&k, &k.calls);
  pthread_mutex_lock(&k.mu);
  k.release = true;
  pthread_mutex_unlock(&k.mu);
  gw_sink_stop(s);
  assert_true(k_get(&k, &k.calls) > c0); /* called once more while stopping, drained */
  struct gw_spool_lag l;
  gw_spool_lag_get(sp, 0, &l);
  assert_int_equal(l.entries, 0);
  gw_spool_destroy(sp);
  pthread_mutex_destroy(&k.mu);
}

/* A sink still holding what it keeps when the drain's time is up: the memory spool has no next start, so
 * the cursor goes past it anyway (as when drained), and entries the sink did finish are not left to be
 * counted as lost at exit. */
static void test_keep_at_deadline_memory(void **st)
{
  (void)st;
  struct gw_spool *sp = mk_spool(1 << 20);
  struct keeper k = {0};
  struct gw_sink *s = keeper_two(&k, sp, 50, 300);
  struct gw_spool_lag l;
  gw_spool_lag_get(sp, gw_sink_consumer(s), &l);
  assert_int_equal(l.entries, 2); /* kept: not committed */
  gw_spool_close(sp);
  gw_sink_stop(s); /* still holding at the deadline */
  gw_spool_lag_get(sp, 0, &l);
  assert_int_equal(l.entries, 0);
  gw_spool_destroy(sp);
  pthread_mutex_destroy(&k.mu);
}

/* --- several workers (gw_sink_start_n) ------------------------------------------------------------ */

/* Shared by the workers' selves: a send of entry `block` waits until released; entry `fail_once` fails the
 * first time; every OK is counted per entry. */
struct gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint64_t block, fail_once;
  bool released, failed;
  unsigned ok[64], sends, blocked;
  bool concurrent; /* a send ran while the blocked one waited */
};
struct gate_self {
  struct gate *g;
  bool destroyed;
};

static enum gw_sink_result g_send(void *self, const struct gw_spool_entry *e, size_t n, struct gw_sink_outcome *out)
{
  struct gate *g = ((struct gate_self *)self)->g;
  pthread_mutex_lock(&g->mu);
  g->sends++;
  if (g->blocked)
    g->concurrent = true;
  if (e[0].seq == g->block) {
    g->blocked++;
    pthread_cond_broadcast(&g->cv);
    while (!g->released)
      pthread_cond_wait(&g->cv, &g->mu);
    g->blocked--;
  }
  if (e[0].seq == g->fail_once && !g->failed) {
    g->failed = true;
    pthread_mutex_unlock(&g->mu);
    snprintf(out->error, sizeof out->error, "scripted failure");
    return GW_SINK_RETRY;
  }
  for (size_t i = 0; i < n; i++)
    if (e[i].seq < 64)
      g->ok[e[i].seq]++;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
  out->delivered = n;
  return GW_SINK_OK;
}

static void g_destroy(void *self) { ((struct gate_self *)self)->destroyed = true; }

static const struct gw_sink_type gate_type = {.name = "gate", .send = g_send, .destroy = g_destroy};

static unsigned gate_ok_total(struct gate *g, uint64_t upto)
{
  pthread_mutex_lock(&g->mu);
  unsigned n = 0;
  for (uint64_t i = 1; i <= upto; i++)
    n += g->ok[i] ? 1 : 0;
  pthread_mutex_unlock(&g->mu);
  return n;
}

static uint64_t lag_entries(struct gw_spool *sp, struct gw_sink *s)
{
  uint64_t entries;
  size_t bytes;
  gw_spool_lag(sp, gw_sink_consumer(s), &entries, &bytes);
  return entries;
}

/* Two workers: while one holds batch 1, the other delivers 2..6 (3 after a retry), yet the cursor stays
 * before 1 (after a crash all of it is read again, nothing is lost); once 1 is delivered, everything is
 * committed. Each entry is delivered exactly once. */
static void test_workers_commit_in_order(void **st)
{
  (void)st;
  struct gw_spool *sp = mk_spool(1 << 20);
  struct gate g = {.block = 1, .fail_once = 3};
  pthread_mutex_init(&g.mu, NULL);
  pthread_cond_init(&g.cv, NULL);
  struct gate_self w0 = {&g, false}, w1 = {&g, false};
  void *selves[2] = {&w0, &w1};
  struct gw_sink_conf c = {.batch_spans = 1, .batch_wait_ms = 0, .max_entries = 8, .backoff_min_ms = 1,
                           .backoff_max_ms = 2, .drain_ms = 1000};
  struct gw_err err = {0};
  struct gw_sink *s = gw_sink_start_n(&gate_type, selves, 2, sp, &c, &err);
  assert_non_null(s);
  put(sp, 1);
  pthread_mutex_lock(&g.mu);
  while (!g.blocked)
    pthread_cond_wait(&g.cv, &g.mu);
  pthread_mutex_unlock(&g.mu);
  for (int i = 0; i < 5; i++)
    put(sp, 1);
  for (int i = 0; i < 500 && gate_ok_total(&g, 6) < 5; i++) {
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  assert_int_equal(gate_ok_total(&g, 6), 5); /* 2..6 delivered by the other worker */
  assert_true(g.concurrent);
  assert_int_equal(lag_entries(sp, s), 6); /* ... and none committed: entry 1 is still in flight */
  pthread_mutex_lock(&g.mu);
  g.released = true;
  pthread_cond_broadcast(&g.cv);
  pthread_mutex_unlock(&g.mu);
  for (int i = 0; i < 500 && lag_entries(sp, s) > 0; i++) {
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  assert_int_equal(lag_entries(sp, s), 0);
  for (int i = 1; i <= 6; i++)
    assert_int_equal(g.ok[i], 1);
  struct gw_sink_stats stats;
  gw_sink_stats(s, &stats);
  assert_int_equal(stats.delivered, 6);
  assert_int_equal(stats.batches_retried, 1);
  gw_spool_close(sp);
  gw_sink_stop(s);
  assert_true(w0.destroyed && w1.destroyed);
  pthread_cond_destroy(&g.cv);
  pthread_mutex_destroy(&g.mu);
  gw_spool_destroy(sp);
}

/* Several workers whose sinks keep what they read: the cursor stays before the oldest entry any of them
 * keeps, a worker holding gets ticks, and as each lets go the cursor moves up to what the other keeps,
 * then past everything. */
static void test_workers_keep_from(void **st)
{
  (void)st;
  struct gw_spool *sp = mk_spool(1 << 20);
  struct keeper k[2];
  memset(k, 0, sizeof k);
  pthread_mutex_init(&k[0].mu, NULL);
  pthread_mutex_init(&k[1].mu, NULL);
  void *selves[2] = {&k[0], &k[1]};
  struct gw_sink_conf c = {.batch_spans = 1, .batch_wait_ms = 10, .max_entries = 1, .backoff_min_ms = 1,
                           .backoff_max_ms = 2, .drain_ms = 1000};
  struct gw_err err = {0};
  struct gw_sink *s = gw_sink_start_n(&keeper_type, selves, 2, sp, &c, &err);
  assert_non_null(s);
  for (int i = 0; i < 6; i++)
    put(sp, 1);
  for (int i = 0; i < 400 && k_get(&k[0], &k[0].batches) + k_get(&k[1], &k[1].batches) < 6; i++)
    sleep_ms(5);
  assert_int_equal(k_get(&k[0], &k[0].batches) + k_get(&k[1], &k[1].batches), 6);
  struct gw_spool_lag l;
  gw_spool_lag_get(sp, 0, &l);
  assert_int_equal(l.entries, 6); /* entry 1 is kept by one of them */
  /* both keep something unless one worker took every batch (then the other keeps nothing) */
  pthread_mutex_lock(&k[0].mu);
  int first = k[0].oldest == 1 ? 0 : 1, other = 1 - first;
  pthread_mutex_unlock(&k[0].mu);
  pthread_mutex_lock(&k[other].mu);
  uint64_t other_oldest = k[other].oldest;
  pthread_mutex_unlock(&k[other].mu);
  /* holding: ticks while nothing comes (each worker's peek waits up to 200 ms in turn under read_mu) */
  size_t t0 = k_get(&k[first], &k[first].ticks);
  sleep_ms(1200);
  assert_true(k_get(&k[first], &k[first].ticks) >= t0 + 1);
  pthread_mutex_lock(&k[first].mu);
  k[first].release = true;
  pthread_mutex_unlock(&k[first].mu);
  uint64_t want = other_oldest ? 6 - (other_oldest - 1) : 0;
  for (int i = 0; i < 200; i++) {
    gw_spool_lag_get(sp, 0, &l);
    if (l.entries == want)
      break;
    sleep_ms(5);
  }
  assert_int_equal(l.entries, want); /* up to what the other keeps */
  pthread_mutex_lock(&k[other].mu);
  k[other].release = true;
  pthread_mutex_unlock(&k[other].mu);
  for (int i = 0; i < 200; i++) {
    gw_spool_lag_get(sp, 0, &l);
    if (!l.entries)
      break;
    sleep_ms(5);
  }
  assert_int_equal(l.entries, 0);
  gw_spool_close(sp);
  gw_sink_stop(s);
  gw_spool_destroy(sp);
  pthread_mutex_destroy(&k[0].mu);
  pthread_mutex_destroy(&k[1].mu);
}

/* Several workers and a lag cap do not go together: a config error, every self destroyed. */
static void test_workers_refuse_lag_cap(void **st)
{
  (void)st;
  struct gw_spool *sp = mk_spool(1 << 20);
  struct gate g = {0};
  struct gate_self w0 = {&g, false}, w1 = {&g, false};
  void *selves[2] = {&w0, &w1};
  struct gw_sink_conf c = {.batch_spans = 1, .max_entries = 8, .max_lag_bytes = 1000};
  struct gw_err err = {0};
  assert_null(gw_sink_start_n(&gate_type, selves, 2, sp, &c, &err));
  assert_int_equal(err.rc, GW_ERR(CONFIG));
  assert_true(w0.destroyed && w1.destroyed);
  gw_spool_destroy(sp);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_retry_commits_done_prefix),
    cmocka_unit_test(test_retry_after_is_honoured),
    cmocka_unit_test(test_lag_cap_skips_and_counts),
    cmocka_unit_test(test_lag_cap_holds_during_backoff),
    cmocka_unit_test(test_keep_from_and_ticks),
    cmocka_unit_test(test_keep_at_deadline_memory),
    cmocka_unit_test(test_keep_retry_and_final_tick),
    cmocka_unit_test(test_workers_commit_in_order),
    cmocka_unit_test(test_workers_keep_from),
    cmocka_unit_test(test_workers_refuse_lag_cap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
