/* test_memtrim.c: when the heap is trimmed after large requests (gateway/core/memtrim.h): soon after a
 * single one, once for a burst, and never more often than GW_MEMTRIM_INTERVAL_MS under a stream of them (a
 * trim makes the next large message fault its pages in again). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <cmocka.h>

#include "core/arena.h"
#include "core/gw.h"
#include "core/memtrim.h"

#define MS 1000000ull

/* The due time, from the three instants it depends on. */
static void test_due(void **st)
{
  (void)st;
  const uint64_t t = 1000000 * MS;
  /* one large request, none trimmed before: the quiet delay after it */
  assert_int_equal(gw_memtrim_due(t, t, 0), t + GW_MEMTRIM_QUIET_MS * MS);
  /* a burst: the quiet delay after its last request */
  assert_int_equal(gw_memtrim_due(t, t + 100 * MS, 0), t + 100 * MS + GW_MEMTRIM_QUIET_MS * MS);
  /* a stream that never goes quiet: no later than the interval after its first untrimmed request */
  assert_int_equal(gw_memtrim_due(t, t + 5000 * MS, 0), t + GW_MEMTRIM_INTERVAL_MS * MS);
  /* right after a trim: not before the interval has passed since it */
  assert_int_equal(gw_memtrim_due(t, t, t - 10 * MS), t - 10 * MS + GW_MEMTRIM_INTERVAL_MS * MS);
  /* a trim long ago does not delay the next */
  assert_int_equal(gw_memtrim_due(t, t, t - 10 * GW_MEMTRIM_INTERVAL_MS * MS), t + GW_MEMTRIM_QUIET_MS * MS);
}

static void sleep_ms(unsigned ms)
{
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* The thread: a note under GW_MEMTRIM_MIN does nothing, one large request is trimmed after, and a stream of
 * them is not trimmed after each (at most once per interval: scheduling delays only make fewer). */
static void test_thread(void **st)
{
  (void)st;
  gw_memtrim_start();
  unsigned long c0 = gw_memtrim_count();
  gw_memtrim_note(GW_MEMTRIM_MIN - 1);
  gw_memtrim_note(GW_MEMTRIM_MIN);
  for (int i = 0; i < 500 && gw_memtrim_count() == c0; i++)
    sleep_ms(10);
  assert_int_equal(gw_memtrim_count(), c0 + 1);

  /* a request every 5 ms for 300 ms: at most one trim per interval begun (a trim after each, as before,
   * made about ten) */
  unsigned long c1 = gw_memtrim_count();
  uint64_t t0 = gw_mono_ns();
  while (gw_mono_ns() - t0 < 300 * MS) {
    gw_memtrim_note(GW_MEMTRIM_MIN);
    sleep_ms(5);
  }
  unsigned long during = gw_memtrim_count() - c1;
  uint64_t elapsed = gw_mono_ns() - t0;
  assert_true(during <= 1 + elapsed / (GW_MEMTRIM_INTERVAL_MS * MS));
  /* and the stream's memory is still trimmed once it ends */
  for (int i = 0; i < 500 && gw_memtrim_count() == c1; i++)
    sleep_ms(10);
  assert_true(gw_memtrim_count() > c1);
  gw_memtrim_stop();
}

/* The warm pool above its size at rest is cut back once chunks stop coming back to it, not while they keep
 * coming (a cut makes the next large request fault its memory in again). */
static void test_pool(void **st)
{
  (void)st;
  gw_arena_set_warm(64 << 20);
  gw_memtrim_start();
  unsigned long p0 = gw_memtrim_pool_count();
  /* a request of 24 MiB in mapped chunks every 100 ms for twice the quiet delay */
  uint64_t t0 = gw_mono_ns();
  while (gw_mono_ns() - t0 < 2 * GW_MEMTRIM_POOL_QUIET_MS * MS) {
    struct gw_arena *a = gw_arena_thread(64 << 20);
    for (int i = 0; i < 8; i++)
      assert_non_null(gw_arena_alloc(a, 3 << 20));
    gw_arena_reset(a);
    assert_true(gw_arena_warm_bytes() > GW_ARENA_WARM_REST);
    sleep_ms(100);
  }
  assert_int_equal(gw_memtrim_pool_count(), p0);
  /* then quiet: back to the size at rest */
  for (int i = 0; i < 500 && gw_memtrim_pool_count() == p0; i++)
    sleep_ms(10);
  assert_int_equal(gw_memtrim_pool_count(), p0 + 1);
  assert_true(gw_arena_warm_bytes() <= GW_ARENA_WARM_REST);
  gw_memtrim_stop();
  gw_arena_set_warm(GW_ARENA_WARM_MAX);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_due),
    cmocka_unit_test(test_thread),
    cmocka_unit_test(test_pool),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
