/* test_spool.c: the memory spool: order, per-consumer cursors, reclaim, the byte cap, rewind, close, waiting
 * for room. */
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "spool/spool.h"

static struct gw_spool *mk(size_t max)
{
  struct gw_spool_conf c = {"memory", NULL, max, 0.5};
  struct gw_err err = {0};
  struct gw_spool *s = gw_spool_create(&c, &err);
  assert_non_null(s);
  return s;
}

static gw_rc put(struct gw_spool *s, const char *payload, uint32_t nspans)
{
  struct gw_spool_in in = {GW_SIGNAL_TRACES, 0, nspans, 0, payload, strlen(payload), NULL, 0};
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

static void test_cap_backpressure_and_reclaim(void **st)
{
  (void)st;
  struct gw_spool *s = mk(4096);
  int a = gw_spool_add_consumer(s, "a");
  char big[1500];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  assert_int_equal(put(s, big, 1), GW_OK);
  assert_int_equal(put(s, big, 1), GW_OK);
  assert_int_equal(put(s, big, 1), GW_ERR(FULL)); /* refused, never dropped silently */
  assert_false(gw_spool_below_high_water(s));
  struct gw_spool_entry e[4];
  size_t n = gw_spool_peek(s, a, e, 1, 1, 0, far());
  assert_int_equal(n, 1);
  gw_spool_commit(s, a, e[0].seq);
  assert_int_equal(put(s, big, 1), GW_OK); /* space reclaimed once the only consumer passed it */
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
  struct gw_spool *s = mk(4096);
  int a = gw_spool_add_consumer(s, "a");
  char big[1500];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  assert_int_equal(put(s, big, 1), GW_OK);
  assert_int_equal(put(s, big, 1), GW_OK);
  assert_int_equal(put(s, big, 1), GW_ERR(FULL));
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

static void test_bad_conf(void **st)
{
  (void)st;
  struct gw_spool_conf c = {"memory", NULL, 10, 0.9};
  struct gw_err err = {0};
  assert_null(gw_spool_create(&c, &err));
  assert_non_null(strstr(err.msg, "spool.max_bytes"));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_order_and_independent_cursors), cmocka_unit_test(test_cap_backpressure_and_reclaim),
    cmocka_unit_test(test_rewind_redelivers),            cmocka_unit_test(test_backlog_comes_in_batches),            cmocka_unit_test(test_batch_waits_for_spans_or_time),
    cmocka_unit_test(test_close_refuses_appends_and_drains), cmocka_unit_test(test_wait_room),
    cmocka_unit_test(test_bad_conf),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
