/* test_spool.c: the memory spool: order, per-consumer cursors, reclaim, the byte cap, rewind, close, waiting
 * for room. */
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "spool/spool.h"

static struct gw_spool *mk(size_t max)
{
  struct gw_spool_conf c = {.mode = "memory", .max_bytes = max, .high_water = 0.5};
  struct gw_err err = {0};
  struct gw_spool *s = gw_spool_create(&c, &err);
  assert_non_null(s);
  return s;
}

static gw_rc put(struct gw_spool *s, const char *payload, uint32_t nspans)
{
  struct gw_spool_in in = {GW_SIGNAL_TRACES, 0, nspans, 0, payload, strlen(payload), NULL, 0, false};
  return gw_spool_append(s, &in);
}

static uint64_t far(void) { return gw_mono_ns() + 1000000000ull; }

static void test_order_and_independent_cursors(void **st)
{
  (void)st;
  struct gw_spool *s = mk(1 << 20);
  int a = gw_spool_add_consumer(s, "a"), b = gw_spool_add_consumer(s, "b");
  assert_int_equal(put(s, "one", 1), GW_OK);
  assert_int_equal(put(s, "two", 1), GW_OK);
  struct gw_spool_entry e[4];
  size_t n = gw_spool_peek(s, a, e, 4, 100, 0, far());
  assert_int_equal(n, 2);
  assert_memory_equal(e[0].otlp, "one", 3);
  assert_memory_equal(e[1].otlp, "two", 3);
  assert_true(e[0].seq < e[1].seq);
  gw_spool_commit(s, a, e[1].seq);
  /* b has not read yet: the entries are still there for it. */
  n = gw_spool_peek(s, b, e, 1, 1, 0, far());
  assert_int_equal(n, 1);
  assert_memory_equal(e[0].otlp, "one", 3);
  uint64_t lag;
  size_t lb;
  gw_spool_lag(s, b, &lag, &lb);
  assert_int_equal(lag, 2);
  gw_spool_lag(s, a, &lag, &lb);
  assert_int_equal(lag, 0);
  gw_spool_destroy(s);
}

/* A 4096-byte spool with consumer *a holding two entries of big (filled with 'x'): a third is refused. */
static struct gw_spool *full_spool(char *big, size_t n, int *a)
{
  struct gw_spool *s = mk(4096);
  *a = gw_spool_add_consumer(s, "a");
  memset(big, 'x', n - 1);
  big[n - 1] = 0;
  assert_int_equal(put(s, big, 1), GW_OK);
  assert_int_equal(put(s, big, 1), GW_OK);
  assert_int_equal(put(s, big, 1), GW_ERR(FULL));
  return s;
}

static void test_cap_backpressure_and_reclaim(void **st)
{
  (void)st;
  char big[1500];
  int a;
  struct gw_spool *s = full_spool(big, sizeof big, &a); /* the third refused, never dropped silently */
  assert_false(gw_spool_below_high_water(s));
  char why[200] = "";
  assert_false(gw_spool_ready(s, why, sizeof why)); /* /readyz's spool check, with the figures */
  assert_non_null(strstr(why, "spool above high-water mark: "));
  assert_non_null(strstr(why, "(spool.high_water 0.50)"));
  struct gw_spool_entry e[4];
  size_t n = gw_spool_peek(s, a, e, 1, 1, 0, far());
  assert_int_equal(n, 1);
  gw_spool_commit(s, a, e[0].seq);
  assert_int_equal(put(s, big, 1), GW_OK); /* space reclaimed once the only consumer passed it */
  gw_spool_destroy(s);
}

static void never_called(void *arg, gw_rc rc)
{
  (void)arg;
  (void)rc;
  fail_msg("done called for a refused append");
}

/* An entry larger than the whole spool is TOO_LARGE (413, not to be retried), with a message naming
 * spool.max_bytes, even with the spool empty: FULL (429, retry later) would have clients send it for ever
 * and then drop it. One that fits the empty spool but not the room left is still FULL. */
static void test_entry_larger_than_spool(void **st)
{
  (void)st;
  struct gw_spool *s = mk(4096);
  int a = gw_spool_add_consumer(s, "a");
  char big[5000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  struct gw_spool_in in = {GW_SIGNAL_TRACES, 0, 1, 0, big, strlen(big), NULL, 0, false};
  struct gw_err err = {0};
  assert_int_equal(gw_spool_bytes(s), 0);
  assert_int_equal(gw_spool_append_err(s, &in, &err), GW_ERR(TOO_LARGE));
  assert_int_equal(err.rc, GW_ERR(TOO_LARGE));
  assert_non_null(strstr(err.msg, "more than spool.max_bytes (4096)"));
  assert_int_equal(gw_spool_append(s, &in), GW_ERR(TOO_LARGE)); /* the same without err */
  memset(&err, 0, sizeof err);
  assert_int_equal(gw_spool_append_async(s, &in, never_called, NULL, &err), GW_ERR(TOO_LARGE));
  assert_non_null(strstr(err.msg, "spool.max_bytes"));
  /* the rows alone larger too: what counts is the whole entry */
  struct gw_spool_in rows = {GW_SIGNAL_TRACES, 0, 1, 1, "o", 1, big, strlen(big), false};
  assert_int_equal(gw_spool_append(s, &rows), GW_ERR(TOO_LARGE));
  assert_int_equal(gw_spool_bytes(s), 0); /* nothing held for them */
  assert_int_equal(gw_spool_last_seq(s), 0);
  /* 3000 bytes fit the empty spool; a second does not fit what is left: FULL, retry later */
  big[3000] = 0;
  assert_int_equal(put(s, big, 1), GW_OK);
  assert_int_equal(put(s, big, 1), GW_ERR(FULL));
  struct gw_spool_entry e[2];
  assert_int_equal(gw_spool_peek(s, a, e, 2, 1, 0, far()), 1);
  gw_spool_commit(s, a, e[0].seq);
  assert_int_equal(put(s, big, 1), GW_OK);
  gw_spool_destroy(s);
}

static void test_rewind_redelivers(void **st)
{
  (void)st;
  struct gw_spool *s = mk(1 << 20);
  int a = gw_spool_add_consumer(s, "a");
  put(s, "x", 1);
  put(s, "y", 1);
  struct gw_spool_entry e[4];
  assert_int_equal(gw_spool_peek(s, a, e, 4, 100, 0, far()), 2);
  /* A failed send: nothing committed, the same entries come back. */
  gw_spool_rewind(s, a);
  assert_int_equal(gw_spool_peek(s, a, e, 4, 100, 0, far()), 2);
  assert_memory_equal(e[0].otlp, "x", 1);
  gw_spool_commit(s, a, e[0].seq);
  gw_spool_rewind(s, a);
  assert_int_equal(gw_spool_peek(s, a, e, 4, 1, 0, far()), 1);
  assert_memory_equal(e[0].otlp, "y", 1);
  gw_spool_destroy(s);
}

static void test_batch_waits_for_spans_or_time(void **st)
{
  (void)st;
  struct gw_spool *s = mk(1 << 20);
  int a = gw_spool_add_consumer(s, "a");
  put(s, "x", 3);
  struct gw_spool_entry e[4];
  uint64_t t0 = gw_mono_ns();
  /* Fewer spans than wanted: returns when the oldest entry has waited max_wait (50 ms). */
  size_t n = gw_spool_peek(s, a, e, 4, 100, 50000000ull, far());
  uint64_t waited = gw_mono_ns() - t0;
  assert_int_equal(n, 1);
  assert_true(waited >= 40000000ull);
  gw_spool_destroy(s);
}

/* The caller's deadline ends a wait without a batch; it never cuts the batch window short (an exporter's
 * 200 ms housekeeping tick must not turn a 1.5 s batch window into 200 ms). */
static void test_deadline_does_not_cut_the_window(void **st)
{
  (void)st;
  struct gw_spool *s = mk(1 << 20);
  int a = gw_spool_add_consumer(s, "a");
  put(s, "x", 3);
  struct gw_spool_entry e[4];
  uint64_t t0 = gw_mono_ns();
  assert_int_equal(gw_spool_peek(s, a, e, 4, 100, 2000000000ull, t0 + 50000000ull), 0);
  uint64_t waited = gw_mono_ns() - t0;
  assert_true(waited >= 40000000ull && waited < 1000000000ull);
  put(s, "y", 2);
  /* Still nothing read: the next peek sees both entries once the window of the first has passed. */
  assert_int_equal(gw_spool_peek(s, a, e, 4, 100, 100000000ull, far()), 2);
  assert_int_equal(e[0].otlp_len, 1);
  assert_memory_equal(e[0].otlp, "x", 1);
  gw_spool_destroy(s);
}

/* A large backlog is handed over in batch-sized pieces, not all at once. */
static void test_backlog_comes_in_batches(void **st)
{
  (void)st;
  struct gw_spool *s = mk(1 << 20);
  int a = gw_spool_add_consumer(s, "a");
  for (int i = 0; i < 10; i++)
    put(s, "x", 3);
  struct gw_spool_entry e[16];
  size_t n = gw_spool_peek(s, a, e, 16, 7, 0, far());
  assert_int_equal(n, 3); /* 3 + 3 + 3 >= 7 */
  gw_spool_commit(s, a, e[n - 1].seq);
  n = gw_spool_peek(s, a, e, 16, 7, 0, far());
  assert_int_equal(n, 3);
  gw_spool_destroy(s);
}

static void test_close_refuses_appends_and_drains(void **st)
{
  (void)st;
  struct gw_spool *s = mk(1 << 20);
  int a = gw_spool_add_consumer(s, "a");
  put(s, "x", 1);
  gw_spool_close(s);
  assert_int_equal(put(s, "y", 1), GW_ERR(SHUTDOWN));
  struct gw_spool_entry e[4];
  assert_int_equal(gw_spool_peek(s, a, e, 4, 100, 1000000000ull, far()), 1);
  gw_spool_commit(s, a, e[0].seq);
  assert_int_equal(gw_spool_peek(s, a, e, 4, 1, 0, far()), 0);
  gw_spool_destroy(s);
}

/* Lag is kept as running totals: entries, bytes and the age of the oldest uncommitted entry. */
static void test_lag(void **st)
{
  (void)st;
  struct gw_spool *s = mk(1 << 20);
  int a = gw_spool_add_consumer(s, "a"), b = gw_spool_add_consumer(s, "b");
  struct gw_spool_lag l;
  gw_spool_lag_get(s, a, &l);
  assert_int_equal(l.entries, 0);
  assert_int_equal(l.bytes, 0);
  assert_int_equal(l.age_ns, 0);
  put(s, "one", 1);
  put(s, "two", 2);
  struct timespec ts = {0, 20000000};
  nanosleep(&ts, NULL);
  gw_spool_lag_get(s, a, &l);
  assert_int_equal(l.entries, 2);
  size_t total = gw_spool_bytes(s);
  assert_int_equal(l.bytes, total);
  assert_true(l.age_ns >= 15000000ull);
  struct gw_spool_entry e[4];
  assert_int_equal(gw_spool_peek(s, a, e, 1, 1, 0, far()), 1);
  gw_spool_commit(s, a, e[0].seq);
  gw_spool_lag_get(s, a, &l);
  assert_int_equal(l.entries, 1);
  assert_true(l.bytes > 0 && l.bytes < total);
  gw_spool_lag_get(s, b, &l);
  assert_int_equal(l.entries, 2); /* b's lag is its own */
  uint64_t le;
  size_t lb;
  gw_spool_lag(s, b, &le, &lb);
  assert_int_equal(le, 2);
  assert_int_equal(lb, total);
  gw_spool_destroy(s);
}

/* The lag cap: skip the oldest entries past the byte cap, count them by signal, free their space, and
 * leave the other consumer's entries alone. */
static void test_skip_past_byte_cap(void **st)
{
  (void)st;
  struct gw_spool *s = mk(1 << 20);
  int exp = gw_spool_add_consumer(s, "exporter"), pg = gw_spool_add_consumer(s, "postgres");
  char body[1000];
  memset(body, 'x', sizeof body - 1);
  body[sizeof body - 1] = 0;
  for (int i = 0; i < 10; i++) {
    struct gw_spool_in in = {i % 2 ? GW_SIGNAL_LOGS : GW_SIGNAL_TRACES, 0, 3, 0, body, strlen(body), NULL, 0, false};
    assert_int_equal(gw_spool_append(s, &in), GW_OK);
  }
  struct gw_spool_lag l;
  gw_spool_lag_get(s, exp, &l);
  uint64_t per = l.bytes / 10;
  struct gw_spool_skipped k;
  /* Under the cap: nothing happens. */
  gw_spool_skip(s, exp, l.bytes, 0, &k);
  assert_int_equal(k.entries, 0);
  /* Over the cap, but postgres (which never skips) still needs every entry: they stay in the spool
   * whatever the exporter does, so it keeps them all. */
  gw_spool_skip(s, exp, 4 * per, 0, &k);
  assert_int_equal(k.entries, 0);
  struct gw_spool_entry e[16];
  assert_int_equal(gw_spool_peek(s, pg, e, 16, 100, 0, far()), 10);
  assert_int_equal(e[0].seq, 1);
  /* postgres commits 8: the exporter now holds those alone, 4 entries' worth is its cap, so the 6 oldest
   * go and it keeps 2 of postgres' committed ones plus the 2 postgres still holds. */
  size_t held = gw_spool_bytes(s);
  gw_spool_commit(s, pg, e[7].seq);
  assert_int_equal(gw_spool_bytes(s), held); /* the exporter holds them */
  gw_spool_skip(s, exp, 2 * per, 0, &k);
  assert_int_equal(k.entries, 6);
  assert_int_equal(k.spans, 9);
  assert_int_equal(k.log_records, 9);
  assert_int_equal(k.bytes, 6 * per);
  assert_true(gw_spool_bytes(s) < held); /* and they are reclaimed */
  gw_spool_lag_get(s, exp, &l);
  assert_int_equal(l.entries, 4);
  /* The exporter reads on from the 7th entry. */
  assert_int_equal(gw_spool_peek(s, exp, e, 16, 100, 0, far()), 4);
  assert_int_equal(e[0].seq, 7);
  gw_spool_rewind(s, exp);
  gw_spool_destroy(s);
}

/* Another exporter's backlog does not protect entries from this one's cap: only consumers that never skip
 * do; with none at all the cap counts from the spool head. */
static void test_skip_ignores_other_skippers(void **st)
{
  (void)st;
  struct gw_spool *s = mk(1 << 20);
  int a = gw_spool_add_consumer(s, "a"), b = gw_spool_add_consumer(s, "b");
  gw_spool_consumer_may_skip(s, a);
  gw_spool_consumer_may_skip(s, b);
  char body[1000];
  memset(body, 'x', sizeof body - 1);
  body[sizeof body - 1] = 0;
  for (int i = 0; i < 10; i++)
    assert_int_equal(put(s, body, 1), GW_OK);
  struct gw_spool_lag l;
  gw_spool_lag_get(s, a, &l);
  uint64_t per = l.bytes / 10;
  struct gw_spool_skipped k;
  gw_spool_skip(s, a, 3 * per, 0, &k); /* b, far behind too, does not hold them for a */
  assert_int_equal(k.entries, 7);
  gw_spool_skip(s, b, 5 * per, 0, &k);
  assert_int_equal(k.entries, 5);
  gw_spool_destroy(s);
}

static void test_skip_past_age_cap(void **st)
{
  (void)st;
  struct gw_spool *s = mk(1 << 20);
  int a = gw_spool_add_consumer(s, "a");
  put(s, "old", 2);
  struct timespec ts = {0, 60000000};
  nanosleep(&ts, NULL);
  put(s, "new", 1);
  struct gw_spool_skipped k;
  gw_spool_skip(s, a, 0, 30000000ull, &k); /* 30 ms */
  assert_int_equal(k.entries, 1);
  assert_int_equal(k.spans, 2);
  struct gw_spool_entry e[4];
  assert_int_equal(gw_spool_peek(s, a, e, 4, 100, 0, far()), 1);
  assert_memory_equal(e[0].otlp, "new", 3);
  /* A read-but-unacknowledged batch is skipped too when it ages out (the sink rewinds first). */
  gw_spool_rewind(s, a);
  nanosleep(&ts, NULL);
  gw_spool_skip(s, a, 0, 30000000ull, &k);
  assert_int_equal(k.entries, 1);
  assert_int_equal(gw_spool_peek(s, a, e, 4, 1, 0, gw_mono_ns() + 10000000ull), 0);
  put(s, "later", 1);
  assert_int_equal(gw_spool_peek(s, a, e, 4, 1, 0, far()), 1);
  assert_memory_equal(e[0].otlp, "later", 5);
  gw_spool_destroy(s);
}

/* A consumer that keeps entries uncommitted after reading them (an exporter's join): rewind_to reads again
 * only what follows the entry given; the lag cap commits read entries without counting them as lost. */
static void test_rewind_to_and_skip_read(void **st)
{
  (void)st;
  struct gw_spool *s = mk(1 << 20);
  int a = gw_spool_add_consumer(s, "a");
  put(s, "e1", 1);
  put(s, "e2", 1);
  put(s, "e3", 1);
  struct gw_spool_entry e[4];
  assert_int_equal(gw_spool_peek(s, a, e, 4, 100, 0, far()), 3);
  gw_spool_rewind_to(s, a, 2); /* e1 and e2 finished (kept, not committed), e3 to read again */
  assert_int_equal(gw_spool_peek(s, a, e, 4, 100, 0, far()), 1);
  assert_memory_equal(e[0].otlp, "e3", 2);
  gw_spool_rewind_to(s, a, 0); /* never before the commit point (nothing committed: from e1) */
  assert_int_equal(gw_spool_peek(s, a, e, 4, 100, 0, far()), 3);
  gw_spool_commit(s, a, 1);
  gw_spool_rewind_to(s, a, 0);
  assert_int_equal(gw_spool_peek(s, a, e, 4, 100, 0, far()), 2);
  assert_memory_equal(e[0].otlp, "e2", 2);
  /* e2 and e3 read: over an age cap they are committed, but nothing unread was lost */
  struct timespec ts = {0, 40000000};
  nanosleep(&ts, NULL);
  put(s, "e4", 1);
  gw_spool_rewind_to(s, a, 3);
  nanosleep(&ts, NULL);
  struct gw_spool_skipped k;
  gw_spool_skip(s, a, 0, 30000000ull, &k);
  assert_int_equal(k.entries, 1); /* e4 only: e2 and e3 were read */
  assert_int_equal(k.spans, 1);
  struct gw_spool_lag l;
  gw_spool_lag_get(s, a, &l);
  assert_int_equal(l.entries, 0);
  gw_spool_destroy(s);
}

/* A consumer added after appends starts at the next entry, and its pointers follow later appends. */
static void test_late_consumer(void **st)
{
  (void)st;
  struct gw_spool *s = mk(1 << 20);
  int a = gw_spool_add_consumer(s, "a");
  put(s, "first", 1);
  int b = gw_spool_add_consumer(s, "b");
  put(s, "second", 1);
  struct gw_spool_entry e[4];
  assert_int_equal(gw_spool_peek(s, b, e, 4, 100, 0, far()), 1);
  assert_memory_equal(e[0].otlp, "second", 6);
  gw_spool_commit(s, b, e[0].seq);
  struct gw_spool_lag l;
  gw_spool_lag_get(s, b, &l);
  assert_int_equal(l.entries, 0);
  assert_int_equal(l.bytes, 0);
  assert_int_equal(gw_spool_peek(s, a, e, 4, 100, 0, far()), 2);
  gw_spool_commit(s, a, e[1].seq);
  assert_int_equal(gw_spool_bytes(s), 0);
  gw_spool_destroy(s);
}

/* With no consumer at all (no Postgres, no exporter) entries are not kept: the spool never fills. */
static void test_no_consumer_keeps_nothing(void **st)
{
  (void)st;
  struct gw_spool *s = mk(4096);
  char big[1500];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  for (int i = 0; i < 10; i++)
    assert_int_equal(put(s, big, 1), GW_OK);
  assert_int_equal(gw_spool_bytes(s), 0);
  assert_int_equal(gw_spool_last_seq(s), 10);
  gw_spool_destroy(s);
}

/* An appender waiting for room wakes when a consumer's commit frees some, and when the spool is woken for
 * shutdown; with nothing freed it waits until its deadline. */
struct committer {
  struct gw_spool *s;
  int consumer;
  uint64_t seq;
};

static void *commit_later(void *arg)
{
  struct committer *c = arg;
  struct timespec ts = {0, 50 * 1000000L};
  nanosleep(&ts, NULL);
  gw_spool_commit(c->s, c->consumer, c->seq);
  return NULL;
}

static atomic_bool woken;

static void *wake_later(void *arg)
{
  while (!atomic_load(&woken)) { /* again and again: the waiter may not be waiting yet */
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
    gw_spool_wake(arg);
  }
  return NULL;
}

static void test_wait_room(void **st)
{
  (void)st;
  char big[1500];
  int a;
  struct gw_spool *s = full_spool(big, sizeof big, &a);
  /* nothing frees: the wait lasts until the deadline */
  uint64_t t0 = gw_mono_ns();
  gw_spool_wait_room(s, t0 + 30 * 1000000ull);
  assert_true(gw_mono_ns() - t0 >= 30 * 1000000ull);
  /* a commit frees room: woken long before a far deadline */
  struct gw_spool_entry e[4];
  assert_int_equal(gw_spool_peek(s, a, e, 1, 1, 0, far()), 1);
  struct committer c = {s, a, e[0].seq};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, commit_later, &c), 0);
  uint64_t deadline = gw_mono_ns() + 20 * 1000000000ull;
  while (gw_spool_bytes(s) > 2000 && gw_mono_ns() < deadline)
    gw_spool_wait_room(s, deadline);
  pthread_join(th, NULL);
  assert_true(gw_mono_ns() < deadline);
  assert_int_equal(put(s, big, 1), GW_OK);
  assert_int_equal(put(s, big, 1), GW_ERR(FULL));
  /* woken for shutdown: returns long before a far deadline though nothing was freed */
  assert_int_equal(pthread_create(&th, NULL, wake_later, s), 0);
  t0 = gw_mono_ns();
  gw_spool_wait_room(s, t0 + 20 * 1000000000ull);
  atomic_store(&woken, true);
  pthread_join(th, NULL);
  assert_true(gw_mono_ns() - t0 < 10 * 1000000000ull);
  gw_spool_destroy(s);
}

/* A reclaimed large entry's memory is reused by the next append of a similar size (its pages are already
 * faulted in), the pool never holds more than max_bytes / 8, small entries stay with malloc, and reused
 * memory carries the new entry's bytes exactly. */
static void test_large_entries_recycled(void **st)
{
  (void)st;
  size_t max = 8u << 20, big = 300u * 1024u;
  struct gw_spool *s = mk(max);
  int c = gw_spool_add_consumer(s, "c");
  char *p = malloc(big + 1);
  struct gw_spool_entry e[64];
  /* 1. one large entry, consumed: its node goes to the pool */
  memset(p, 'a', big);
  p[big] = 0;
  assert_int_equal(put(s, p, 1), GW_OK);
  assert_int_equal(gw_spool_peek(s, c, e, 64, 1, 0, far()), 1);
  const void *first = e[0].otlp;
  gw_spool_commit(s, c, e[0].seq);
  assert_int_equal(gw_spool_bytes(s), 0);
  size_t pooled = gw_spool_pooled_bytes(s);
  assert_true(pooled >= big && pooled <= big + 8192);
  /* 2. a slightly smaller one takes that memory back, with its own content */
  memset(p, 'b', big - 100);
  p[big - 100] = 0;
  assert_int_equal(put(s, p, 1), GW_OK);
  assert_int_equal(gw_spool_pooled_bytes(s), 0);
  assert_int_equal(gw_spool_peek(s, c, e, 64, 1, 0, far()), 1);
  assert_ptr_equal(e[0].otlp, first);
  assert_int_equal(e[0].otlp_len, big - 100);
  assert_memory_equal(e[0].otlp, p, big - 100);
  gw_spool_commit(s, c, e[0].seq);
  /* 3. one much smaller than the pooled node does not take it (no more than twice its size) */
  char small[100 * 1024];
  memset(small, 'c', sizeof small - 1);
  small[sizeof small - 1] = 0;
  assert_int_equal(put(s, small, 1), GW_OK);
  assert_true(gw_spool_pooled_bytes(s) >= big - 100);
  assert_int_equal(gw_spool_peek(s, c, e, 64, 1, 0, far()), 1);
  assert_ptr_not_equal(e[0].otlp, first);
  gw_spool_commit(s, c, e[0].seq);
  /* 4. many at once: the pool stops at max_bytes / 8 */
  memset(p, 'd', big);
  p[big] = 0;
  for (int i = 0; i < 20; i++)
    assert_int_equal(put(s, p, 1), GW_OK);
  size_t n = 0;
  while (n < 20) {
    size_t got = gw_spool_peek(s, c, e + n, 64 - n, 1, 0, far());
    assert_true(got > 0);
    n += got;
  }
  assert_int_equal(n, 20);
  gw_spool_commit(s, c, e[n - 1].seq);
  assert_true(gw_spool_pooled_bytes(s) <= max / 8);
  assert_true(gw_spool_pooled_bytes(s) >= max / 8 - (big + 8192));
  /* 5. small entries never go to the pool */
  size_t before = gw_spool_pooled_bytes(s);
  assert_int_equal(put(s, "tiny", 1), GW_OK);
  assert_int_equal(gw_spool_peek(s, c, e, 64, 1, 0, far()), 1);
  gw_spool_commit(s, c, e[0].seq);
  assert_int_equal(gw_spool_pooled_bytes(s), before);
  free(p);
  gw_spool_destroy(s);
}

static void test_bad_conf(void **st)
{
  (void)st;
  struct gw_spool_conf c = {.mode = "memory", .max_bytes = 10, .high_water = 0.9};
  struct gw_err err = {0};
  assert_null(gw_spool_create(&c, &err));
  assert_non_null(strstr(err.msg, "spool.max_bytes"));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_order_and_independent_cursors), cmocka_unit_test(test_cap_backpressure_and_reclaim),
    cmocka_unit_test(test_entry_larger_than_spool),
    cmocka_unit_test(test_rewind_redelivers),            cmocka_unit_test(test_backlog_comes_in_batches),            cmocka_unit_test(test_batch_waits_for_spans_or_time),
    cmocka_unit_test(test_close_refuses_appends_and_drains), cmocka_unit_test(test_wait_room), cmocka_unit_test(test_large_entries_recycled),
    cmocka_unit_test(test_bad_conf),
    cmocka_unit_test(test_lag), cmocka_unit_test(test_skip_past_byte_cap), cmocka_unit_test(test_skip_ignores_other_skippers), cmocka_unit_test(test_skip_past_age_cap),
    cmocka_unit_test(test_late_consumer), cmocka_unit_test(test_no_consumer_keeps_nothing),
    cmocka_unit_test(test_rewind_to_and_skip_read),
    cmocka_unit_test(test_deadline_does_not_cut_the_window),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
