/* test_httpd.c: the HTTP connection guards' metrics (gateway/core/httpd.h): rendered once while guards
 * live, gone after, and guards created and destroyed on several threads while /metrics renders neither
 * deadlock (render runs under the metrics registry's lock and takes the guards' lock, so a guard must not
 * enter the registry under the guards' lock) nor leave the render registered twice or not at all. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/arena.h"
#include "core/httpd.h"
#include "core/metrics.h"

/* How many times needle is in what /metrics renders now. */
static int rendered_count(const char *needle)
{
  struct gw_arena *a = gw_arena_create(1u << 20);
  struct gw_sb sb;
  gw_sb_init(&sb, a);
  gw_metrics_render(&sb);
  int n = 0;
  size_t nl = strlen(needle);
  for (const char *p = sb.buf, *end = sb.buf + sb.len; p && (p = memmem(p, (size_t)(end - p), needle, nl)); p += nl)
    n++;
  gw_arena_destroy(a);
  return n;
}

static bool rendered_has(const char *needle) { return rendered_count(needle) > 0; }

#define HELP "# HELP genai_gateway_http_connections "

static void test_guard_metrics(void **st)
{
  (void)st;
  const char *line = "genai_gateway_http_connections{listener=\"guard_test\"} 0";
  assert_false(rendered_has(line));
  assert_int_equal(rendered_count(HELP), 0);
  struct gw_httpd_guard *g = gw_httpd_guard_create("guard_test", 1000, 1000, 1000);
  assert_true(rendered_has(line));
  assert_true(rendered_has("genai_gateway_http_read_timeouts_total{listener=\"guard_test\",phase=\"headers\"} 0"));
  struct gw_httpd_guard *g2 = gw_httpd_guard_create("guard_two", 1000, 1000, 1000);
  assert_int_equal(rendered_count(HELP), 1); /* one family, both listeners */
  assert_true(rendered_has("genai_gateway_http_connections{listener=\"guard_two\"} 0"));
  gw_httpd_guard_destroy(g);
  assert_false(rendered_has(line));
  assert_int_equal(rendered_count(HELP), 1);
  gw_httpd_guard_destroy(g2);
  assert_int_equal(rendered_count(HELP), 0);
}

#define CYCLES 1000
#define DEADLINE_S 60

static atomic_int churning = 2;
static atomic_int finished;

/* Guards created and destroyed one after the other, on two threads at once: the first guard alive
 * registers the render and the last one gone unregisters it, so these cross. */
static void *churn(void *arg)
{
  (void)arg;
  for (int i = 0; i < CYCLES; i++)
    gw_httpd_guard_destroy(gw_httpd_guard_create("churn", 1000, 1000, 1000));
  atomic_fetch_sub(&churning, 1);
  atomic_fetch_add(&finished, 1);
  return NULL;
}

/* /metrics rendered over and over meanwhile. */
static void *scrape(void *arg)
{
  (void)arg;
  struct gw_arena *a = gw_arena_create(1u << 20);
  while (atomic_load(&churning) > 0) {
    struct gw_sb sb;
    gw_sb_init(&sb, a);
    gw_metrics_render(&sb);
    gw_arena_reset(a);
  }
  gw_arena_destroy(a);
  atomic_fetch_add(&finished, 1);
  return NULL;
}

static void test_guards_while_rendering(void **st)
{
  (void)st;
  pthread_t t1, t2, t3;
  assert_int_equal(pthread_create(&t1, NULL, churn, NULL), 0);
  assert_int_equal(pthread_create(&t2, NULL, churn, NULL), 0);
  assert_int_equal(pthread_create(&t3, NULL, scrape, NULL), 0);
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    if (atomic_load(&finished) == 3)
      break;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec - start.tv_sec > DEADLINE_S) {
      /* the two threads hold each other's lock: nothing can end them but the process's end */
      fprintf(stderr, "guards created while /metrics renders: deadlocked after %d s\n", DEADLINE_S);
      fflush(stderr);
      _exit(1);
    }
    usleep(10000);
  }
  pthread_join(t1, NULL);
  pthread_join(t2, NULL);
  pthread_join(t3, NULL);
  /* registered exactly while a guard lives */
  assert_int_equal(rendered_count(HELP), 0);
  struct gw_httpd_guard *g = gw_httpd_guard_create("after", 1000, 1000, 1000);
  assert_int_equal(rendered_count(HELP), 1);
  gw_httpd_guard_destroy(g);
  assert_int_equal(rendered_count(HELP), 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_guard_metrics),
    cmocka_unit_test(test_guards_while_rendering),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
