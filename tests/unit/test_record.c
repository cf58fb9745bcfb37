/* test_record.c: the spool codec of the canonical record round-trips every field type and refuses
 * truncated or lying input; the arena and string builder it is built with. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "normalize/record.h"

static void test_round_trip(void **st)
{
  (void)st;
  struct gw_arena *a = gw_arena_create(0);
  struct gw_record r[2];
  memset(r, 0, sizeof r);
  strcpy(r[0].trace_id, "0123456789abcdef0123456789abcdef");
  strcpy(r[0].span_id, "0123456789abcdef");
  r[0].service_name = "svc \"quoted\"\n";
  r[0].input_tokens = (struct gw_opt_i64){27, true};
  r[0].total_cost_nusd = (struct gw_opt_i64){-5, true};
  r[0].duration_ms = (struct gw_opt_f64){12.5, true};
  r[0].streaming = 1;
  r[0].start_ns = 1763884610000000000ull;
  const char *fr[] = {"stop", "length"};
  r[0].finish_reasons = (struct gw_strv){fr, 2};
  gw_record_set_flag(&r[0], GW_FLAG_TOTAL_DERIVED);
  r[1].streaming = -1;
  strcpy(r[1].trace_id, "ffffffffffffffffffffffffffffffff");

  struct gw_sb sb;
  gw_sb_init(&sb, a);
  assert_int_equal(gw_records_encode(r, 2, &sb), GW_OK);
  assert_int_equal(sb.cap, sb.len + 1); /* sized exactly, once */

  struct gw_record *out;
  size_t n;
  assert_int_equal(gw_records_decode(sb.buf, sb.len, a, &out, &n), GW_OK);
  assert_int_equal(n, 2);
  assert_string_equal(out[0].trace_id, r[0].trace_id);
  assert_string_equal(out[0].service_name, r[0].service_name);
  assert_null(out[0].operation);
  assert_true(out[0].input_tokens.set);
  assert_int_equal(out[0].input_tokens.v, 27);
  assert_false(out[0].output_tokens.set);
  assert_int_equal(out[0].total_cost_nusd.v, -5);
  assert_true(out[0].duration_ms.v == 12.5);
  assert_int_equal(out[0].streaming, 1);
  assert_int_equal(out[1].streaming, -1);
  assert_int_equal(out[0].start_ns, r[0].start_ns);
  assert_int_equal(out[0].finish_reasons.n, 2);
  assert_string_equal(out[0].finish_reasons.v[1], "length");
  assert_true(gw_record_has_flag(&out[0], GW_FLAG_TOTAL_DERIVED));
  assert_false(gw_record_has_flag(&out[0], GW_FLAG_TOKENS_MISSING));
  assert_string_equal(out[1].trace_id, r[1].trace_id);

  /* Every truncation of a valid buffer is refused, never read past. */
  for (size_t cut = 0; cut < sb.len; cut++)
    assert_int_equal(gw_records_decode(sb.buf, cut, a, &out, &n), GW_ERR(DECODE));
  gw_arena_destroy(a);
}

/* Trace facts ride after the records: round trip, none when not written (an entry from before them, or a
 * request without any), and a cut or foreign trailer refused. */
static void test_trace_facts(void **st)
{
  (void)st;
  struct gw_arena *a = gw_arena_create(0);
  struct gw_record r;
  memset(&r, 0, sizeof r);
  strcpy(r.trace_id, "0123456789abcdef0123456789abcdef");
  r.streaming = -1;
  struct gw_trace_fact f[2] = {
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 1763884610000000000ull, "sess \"1\"", NULL, "0102030405060708"},
    {"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 1763884611000000000ull, NULL, "user@x", "1112131415161718"},
  };
  struct gw_sb sb;
  gw_sb_init(&sb, a);
  assert_int_equal(gw_records_encode(&r, 1, &sb), GW_OK);
  size_t plain = sb.len;
  assert_int_equal(gw_trace_facts_encode(f, 0, &sb), GW_OK);
  assert_int_equal(sb.len, plain); /* nothing when none */
  struct gw_record *out;
  struct gw_trace_fact *fo;
  size_t n, nf;
  assert_int_equal(gw_records_decode_facts(sb.buf, sb.len, a, &out, &n, &fo, &nf), GW_OK);
  assert_int_equal(n, 1);
  assert_int_equal(nf, 0);
  assert_null(fo);
  assert_int_equal(gw_trace_facts_encode(f, 2, &sb), GW_OK);
  assert_int_equal(gw_records_decode_facts(sb.buf, sb.len, a, &out, &n, &fo, &nf), GW_OK);
  assert_int_equal(n, 1);
  assert_string_equal(out[0].trace_id, r.trace_id);
  assert_int_equal(nf, 2);
  assert_string_equal(fo[0].trace_id, f[0].trace_id);
  assert_string_equal(fo[0].span_id, "0102030405060708");
  assert_string_equal(fo[1].span_id, "1112131415161718");
  assert_int_equal(fo[0].start_ns, f[0].start_ns);
  assert_string_equal(fo[0].session_id, "sess \"1\"");
  assert_null(fo[0].user_id);
  assert_null(fo[1].session_id);
  assert_string_equal(fo[1].user_id, "user@x");
  /* a reader of records alone stops where they end */
  assert_int_equal(gw_records_decode(sb.buf, sb.len, a, &out, &n), GW_OK);
  assert_int_equal(n, 1);
  for (size_t cut = plain + 1; cut < sb.len; cut++)
    assert_int_equal(gw_records_decode_facts(sb.buf, cut, a, &out, &n, &fo, &nf), GW_ERR(DECODE));
  char *bad = gw_arena_alloc(a, sb.len);
  memcpy(bad, sb.buf, sb.len);
  memcpy(bad + plain, "GWX1", 4);
  assert_int_equal(gw_records_decode_facts(bad, sb.len, a, &out, &n, &fo, &nf), GW_ERR(DECODE));
  /* facts after an empty record list (a request whose spans gave no row) */
  gw_sb_init(&sb, a);
  assert_int_equal(gw_records_encode(NULL, 0, &sb), GW_OK);
  assert_int_equal(gw_trace_facts_encode(f + 1, 1, &sb), GW_OK);
  assert_int_equal(gw_records_decode_facts(sb.buf, sb.len, a, &out, &n, &fo, &nf), GW_OK);
  assert_int_equal(n, 0);
  assert_int_equal(nf, 1);
  assert_string_equal(fo[0].user_id, "user@x");
  gw_arena_destroy(a);
}

static void test_lying_count(void **st)
{
  (void)st;
  struct gw_arena *a = gw_arena_create(1 << 20);
  const unsigned char buf[] = {'G', 'W', 'R', '1', 0xff, 0xff, 0xff, 0x7f};
  struct gw_record *out;
  size_t n;
  assert_int_equal(gw_records_decode(buf, sizeof buf, a, &out, &n), GW_ERR(DECODE));
  assert_int_equal(gw_records_decode("XXXX\0\0\0\0", 8, a, &out, &n), GW_ERR(DECODE));
  gw_arena_destroy(a);
}

static void test_arena_cap(void **st)
{
  (void)st;
  struct gw_arena *a = gw_arena_create(64 * 1024);
  assert_non_null(gw_arena_alloc(a, 1000));
  assert_null(gw_arena_alloc(a, 128 * 1024));
  assert_true(gw_arena_exhausted(a));
  gw_arena_destroy(a);
}

/* A reset arena reuses the chunks it already has (no new mapping per request), keeps at most a few MiB,
 * and still enforces its cap. */
static void test_arena_reset_reuses_chunks(void **st)
{
  (void)st;
  struct gw_arena *a = gw_arena_create(64 << 20);
  void *p1 = gw_arena_alloc(a, 100000);
  assert_non_null(p1);
  gw_arena_reset(a);
  void *p2 = gw_arena_alloc(a, 100000);
  assert_ptr_equal(p1, p2);
  /* A large request's chunks are not all kept. */
  for (int i = 0; i < 40; i++)
    assert_non_null(gw_arena_alloc(a, 1 << 20));
  gw_arena_reset(a);
  assert_true(gw_arena_used(a) == 0);
  gw_arena_destroy(a);

  struct gw_arena *t = gw_arena_thread(1 << 20);
  assert_non_null(gw_arena_alloc(t, 512 * 1024));
  assert_ptr_equal(gw_arena_thread(1 << 20), t);
  assert_null(gw_arena_alloc(t, 2 << 20)); /* the cap set by gw_arena_thread holds */
  assert_true(gw_arena_exhausted(t));
  assert_false(gw_arena_exhausted(gw_arena_thread(1 << 20)));
}

/* The receiver threads' warm pool (issue 12): a thread arena's mapped chunks outlive its request in one
 * pool shared by all threads and bounded in size, the next request on any thread gets the same memory
 * back instead of faulting fresh pages in, and a mapping the pool cannot give first unmaps pooled chunks
 * of at least its size. Arenas of their own (gw_arena_create) never use it. */
static void *warm_other_thread(void *arg)
{
  struct gw_arena *t = gw_arena_thread(64 << 20);
  *(void **)arg = gw_arena_alloc(t, 3 << 20);
  gw_arena_reset(t);
  return NULL;
}

static size_t warm_hook_calls;
static void count_warm_hook(void) { warm_hook_calls++; }

static void test_arena_warm_pool(void **st)
{
  (void)st;
  gw_arena_set_warm(8 << 20);
  assert_int_equal(gw_arena_warm_bytes(), 0);
  struct gw_arena *t = gw_arena_thread(64 << 20);
  void *p = gw_arena_alloc(t, 3 << 20);
  assert_non_null(p);
  memset(p, 1, 3 << 20);
  gw_arena_reset(t);
  assert_int_equal(gw_arena_warm_bytes(), 3 << 20);

  pthread_t th;
  void *q = NULL;
  assert_int_equal(pthread_create(&th, NULL, warm_other_thread, &q), 0);
  pthread_join(th, NULL);
  assert_ptr_equal(q, p); /* the other thread's request got the same (resident) memory */
  assert_int_equal(gw_arena_warm_bytes(), 3 << 20);

  /* 5 MiB: nothing pooled is large enough, so the pool's 3 MiB go before 5 new MiB are mapped */
  t = gw_arena_thread(64 << 20);
  assert_non_null(gw_arena_alloc(t, 5 << 20));
  assert_int_equal(gw_arena_warm_bytes(), 0);
  assert_non_null(gw_arena_alloc(t, 4 << 20));
  gw_arena_reset(t);
  assert_true(gw_arena_warm_bytes() <= 8u << 20); /* 5 + 4 MiB: one of them did not fit */
  assert_true(gw_arena_warm_bytes() >= 4u << 20);

  /* an arena of its own keeps its chunks to itself */
  size_t before = gw_arena_warm_bytes();
  struct gw_arena *a = gw_arena_create(0);
  assert_non_null(gw_arena_alloc(a, 2 << 20));
  gw_arena_destroy(a);
  assert_int_equal(gw_arena_warm_bytes(), before);

  /* a big buffer (inflate's output) is new memory too: it replaces pooled memory, growing or not */
  t = gw_arena_thread(64 << 20);
  void *big = gw_arena_alloc_big(t, 1 << 20);
  assert_non_null(big);
  assert_true(gw_arena_warm_bytes() + (1u << 20) <= before);
  assert_non_null(gw_arena_resize_big(t, big, 8 << 20));
  assert_int_equal(gw_arena_warm_bytes(), 0);
  gw_arena_reset(t);

  /* One large allocation a request (the encoded records), a few bytes larger each time: its chunk, rounded
   * up, is the next request's too. Sized exactly, every larger one missed the pool and was mapped afresh. */
  gw_arena_set_warm(16 << 20);
  t = gw_arena_thread(64 << 20);
  void *r1 = gw_arena_alloc(t, 2788 * 1024 + 17);
  assert_non_null(r1);
  gw_arena_reset(t);
  t = gw_arena_thread(64 << 20);
  assert_ptr_equal(gw_arena_alloc(t, 2791 * 1024 + 5), r1);
  gw_arena_reset(t);
  t = gw_arena_thread(64 << 20);
  assert_ptr_equal(gw_arena_alloc(t, 2750 * 1024), r1);
  gw_arena_reset(t);

  /* The pool grows to GW_ARENA_WARM_MAX while requests use it and gw_arena_warm_trim cuts it back to
   * GW_ARENA_WARM_REST, telling the hook each time a chunk leaves it above that size. */
  gw_arena_set_warm(64 << 20); /* more than the pool may hold: GW_ARENA_WARM_MAX */
  warm_hook_calls = 0;
  gw_arena_set_warm_hook(count_warm_hook);
  struct gw_arena *u = gw_arena_thread(64 << 20);
  for (int i = 0; i < 12; i++)
    assert_non_null(gw_arena_alloc(u, 3 << 20));
  gw_arena_reset(u);
  assert_int_equal(gw_arena_warm_bytes(), 30u << 20); /* ten of the 3 MiB chunks: past 16, up to 32 MiB */
  assert_true(warm_hook_calls >= 5);                   /* each chunk that left it above 16 MiB */
  assert_int_equal(gw_arena_warm_trim(), 15u << 20);
  assert_int_equal(gw_arena_warm_bytes(), 15u << 20); /* at most GW_ARENA_WARM_REST */
  assert_int_equal(gw_arena_warm_trim(), 0);
  size_t calls = warm_hook_calls;
  u = gw_arena_thread(64 << 20);
  assert_non_null(gw_arena_alloc(u, 1 << 20));
  gw_arena_reset(u);
  assert_int_equal(warm_hook_calls, calls); /* back within the size at rest: no call */
  gw_arena_set_warm(8 << 20);               /* a pool set smaller rests at that size */
  u = gw_arena_thread(64 << 20);
  for (int i = 0; i < 3; i++)
    assert_non_null(gw_arena_alloc(u, 2 << 20));
  gw_arena_reset(u);
  assert_int_equal(gw_arena_warm_bytes(), 6u << 20);
  assert_int_equal(warm_hook_calls, calls);
  gw_arena_set_warm_hook(NULL);

  gw_arena_set_warm(0); /* no pool: what it held is unmapped, nothing is kept */
  assert_int_equal(gw_arena_warm_bytes(), 0);
  t = gw_arena_thread(64 << 20);
  assert_non_null(gw_arena_alloc(t, 2 << 20));
  gw_arena_reset(t);
  assert_int_equal(gw_arena_warm_bytes(), 0);
  gw_arena_set_warm(GW_ARENA_WARM_MAX);
}

/* Request bodies' mappings go through the same warm pool: a body given back is the next body's memory
 * (on any thread) when its size is within the same 64 KiB and at most twice as large, grows in place or by
 * mremap with its bytes kept, is unmapped when the pool is full, and a body the pool cannot serve first
 * unmaps pooled memory of at least its size, so the peak stays what it was. */
static void test_warm_bodies(void **st)
{
  (void)st;
  gw_arena_set_warm(1 << 20);
  assert_int_equal(gw_arena_warm_bytes(), 0);
  size_t m1, m2, m3;
  unsigned char *b1 = gw_warm_map(273201, &m1);
  assert_non_null(b1);
  assert_true(m1 >= 273201 && m1 < 273201 + 64 * 1024);
  memset(b1, 0xab, 273201);
  gw_warm_unmap(b1, m1);
  assert_int_equal(gw_arena_warm_bytes(), m1);

  unsigned char *b2 = gw_warm_map(270000, &m2); /* another body of about that size: the same pages */
  assert_ptr_equal(b2, b1);
  assert_int_equal(m2, m1);
  assert_int_equal(b2[100], 0xab);
  assert_int_equal(gw_arena_warm_bytes(), 0);

  /* grown past its mapping: the bytes written stay */
  b2[0] = 1;
  b2[m2 - 1] = 2;
  unsigned char *g = gw_warm_remap(b2, m2, 700000, &m3);
  assert_non_null(g);
  assert_true(m3 >= 700000);
  assert_int_equal(g[0], 1);
  assert_int_equal(g[m2 - 1], 2);
  g[699999] = 3;
  assert_ptr_equal(gw_warm_remap(g, m3, 600000, &m2), g); /* within its mapping: unchanged */
  assert_int_equal(m2, m3);
  gw_warm_unmap(g, m3);
  assert_int_equal(gw_arena_warm_bytes(), m3);

  /* a small body takes any pooled mapping up to 1 MiB (a body of unknown size grows from 64 KiB) */
  unsigned char *s = gw_warm_map(64 * 1024, &m1);
  assert_ptr_equal(s, g);
  assert_int_equal(m1, m3);
  gw_warm_unmap(s, m1);
  /* a larger body does not take a mapping more than twice its size: the pooled one goes, a new one comes */
  unsigned char *l = gw_warm_map(3 << 20, &m2);
  assert_non_null(l);
  assert_int_equal(gw_arena_warm_bytes(), 0);
  gw_arena_set_warm(8 << 20);
  gw_warm_unmap(l, m2);
  assert_int_equal(gw_arena_warm_bytes(), m2);
  s = gw_warm_map(1 << 20, &m1);
  assert_ptr_not_equal(s, l);
  assert_true(m1 < m2);
  assert_int_equal(gw_arena_warm_bytes(), 0);
  gw_arena_set_warm(1 << 20);
  /* the pool holds 1 MiB: two bodies of 700 KB do not both fit */
  unsigned char *x = gw_warm_map(700000, &m2), *y = gw_warm_map(700000, &m3);
  assert_non_null(x);
  assert_non_null(y);
  gw_warm_unmap(x, m2);
  gw_warm_unmap(y, m3);
  gw_warm_unmap(s, m1); /* over 1 MiB itself */
  assert_int_equal(gw_arena_warm_bytes(), m2);
  gw_warm_unmap(NULL, 0);

  gw_arena_set_warm(0); /* no pool: a body given back is unmapped */
  x = gw_warm_map(1000, &m1);
  assert_non_null(x);
  gw_warm_unmap(x, m1);
  assert_int_equal(gw_arena_warm_bytes(), 0);
  gw_arena_set_warm(GW_ARENA_WARM_MAX);
}

/* An arena told to keep more (the Postgres writer's, whose batches pass 4 MiB) reuses all of it. */
static void test_arena_keep(void **st)
{
  (void)st;
  for (int keep = 0; keep < 2; keep++) {
    struct gw_arena *a = gw_arena_create(0);
    if (keep)
      gw_arena_keep(a, 16 << 20);
    for (int i = 0; i < 8; i++)
      assert_non_null(gw_arena_alloc(a, 1 << 20));
    gw_arena_reset(a);
    if (keep)
      assert_true(gw_arena_kept(a) >= 8u << 20);
    else
      assert_true(gw_arena_kept(a) <= 4u << 20);
    gw_arena_destroy(a);
  }
}

/* A budget shared by arenas (the receivers' in-flight bytes): what an arena holds is taken from it as the
 * arena grows, all of it is given back at reset, and a refusal fails the allocation with refused set,
 * where the cap fails it without (issue 12). */
struct budget {
  size_t left, taken;
};

static bool budget_take(void *ctx, size_t n)
{
  struct budget *b = ctx;
  if (n > b->left)
    return false;
  b->left -= n;
  b->taken += n;
  return true;
}

static void budget_give(void *ctx, size_t n)
{
  struct budget *b = ctx;
  assert_true(n <= b->taken);
  b->left += n;
  b->taken -= n;
}

static void test_arena_budget(void **st)
{
  (void)st;
  struct budget b = {.left = 3 << 20};
  const struct gw_arena_budget ab = {budget_take, budget_give, &b};
  struct gw_arena *a = gw_arena_create(64 << 20);
  assert_true(gw_arena_set_budget(a, &ab));
  for (int i = 0; i < 2; i++)
    assert_non_null(gw_arena_alloc(a, 1 << 20));
  assert_int_equal(b.taken, gw_arena_used(a)); /* every chunk byte, taken before it was allocated */
  assert_null(gw_arena_alloc(a, 2 << 20));     /* the budget, not the cap, says no */
  assert_true(gw_arena_exhausted(a));
  assert_true(gw_arena_refused(a));
  gw_arena_reset(a);
  assert_int_equal(b.taken, 0); /* all given back, and the budget dropped */
  assert_non_null(gw_arena_alloc(a, 8 << 20));
  assert_int_equal(b.taken, 0);

  /* Taken up front (a decode's known cost), then drawn on; the cap still wins and is not "refused". */
  assert_true(gw_arena_set_budget(a, &ab) == false); /* it already holds 8 MiB, more than the 3 left */
  gw_arena_reset(a);
  assert_true(gw_arena_set_budget(a, &ab));
  assert_int_equal(gw_arena_expect(a, 2 << 20), 0);
  assert_int_equal(b.taken, 2 << 20);
  assert_non_null(gw_arena_alloc(a, 1 << 20));
  assert_int_equal(b.taken, 2 << 20); /* drew on what was taken */
  assert_int_equal(gw_arena_expect(a, 4 << 20), -2);
  assert_true(gw_arena_refused(a));
  assert_int_equal(gw_arena_expect(a, 100 << 20), -1);
  assert_false(gw_arena_refused(a));
  assert_true(gw_arena_room(a) < 64 << 20);

  /* Memory held outside the arena (a json-c document) borrowed against both, then returned. */
  size_t used = gw_arena_used(a);
  assert_true(gw_arena_borrow(a, 512 * 1024));
  assert_int_equal(gw_arena_used(a), used + 512 * 1024);
  assert_false(gw_arena_borrow(a, 2 << 20));
  assert_true(gw_arena_refused(a));
  gw_arena_unborrow(a, 512 * 1024);
  assert_int_equal(gw_arena_used(a), used);
  gw_arena_destroy(a);
  assert_int_equal(b.taken, 0); /* destroy gives back too */
}

/* Big buffers grow and shrink in place or by remapping, keep their content, and obey cap and budget. */
static void test_arena_big(void **st)
{
  (void)st;
  struct budget b = {.left = 16 << 20};
  const struct gw_arena_budget ab = {budget_take, budget_give, &b};
  struct gw_arena *a = gw_arena_create(12 << 20);
  assert_true(gw_arena_set_budget(a, &ab));
  char *small = gw_arena_alloc(a, 100);
  memset(small, 's', 100);
  unsigned char *p = gw_arena_alloc_big(a, 64 * 1024);
  assert_non_null(p);
  for (size_t i = 0; i < 64 * 1024; i++)
    p[i] = (unsigned char)i;
  for (size_t n = 128 * 1024; n <= 8u << 20; n *= 2) {
    p = gw_arena_resize_big(a, p, n);
    assert_non_null(p);
    for (size_t i = 0; i < 64 * 1024; i += 4093)
      assert_int_equal(p[i], (unsigned char)i);
    p[n - 1] = 1;
  }
  assert_null(gw_arena_resize_big(a, p, 16u << 20)); /* past the cap: NULL, p still valid */
  assert_false(gw_arena_refused(a));
  assert_int_equal(p[100], 100);
  size_t before = gw_arena_used(a);
  p = gw_arena_resize_big(a, p, 1000); /* cut to the output */
  assert_non_null(p);
  assert_true(gw_arena_used(a) < before - (7u << 20));
  assert_int_equal(p[999], (unsigned char)999);
  /* small allocations still go to the chunk they were using */
  char *small2 = gw_arena_alloc(a, 100);
  assert_true(small2 > small && small2 < small + 16 * 1024);
  assert_int_equal(small[99], 's');
  gw_arena_reset(a);
  assert_int_equal(b.taken, 0);
  assert_int_equal(gw_arena_kept(a) < (1u << 20), 1); /* big buffers are never kept */
  gw_arena_destroy(a);
}

static void test_json_escaping(void **st)
{
  (void)st;
  struct gw_arena *a = gw_arena_create(0);
  struct gw_sb sb;
  gw_sb_init(&sb, a);
  gw_sb_json_str(&sb, "a\"b\\c\n\x01", 7);
  assert_string_equal(gw_sb_finish(&sb), "\"a\\\"b\\\\c\\n\\u0001\"");
  gw_arena_destroy(a);
}

/* The escaping RFC 8259 asks for, one byte at a time: what gw_sb_json_str must produce. */
static size_t ref_escape(char *out, const unsigned char *s, size_t n)
{
  size_t o = 0;
  out[o++] = '"';
  for (size_t i = 0; i < n; i++) {
    unsigned char c = s[i];
    if (c == '"' || c == '\\') {
      out[o++] = '\\';
      out[o++] = (char)c;
    } else if (c == '\n' || c == '\r' || c == '\t') {
      out[o++] = '\\';
      out[o++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
    } else if (c < 0x20) {
      o += (size_t)sprintf(out + o, "\\u%04x", c);
    } else {
      out[o++] = (char)c;
    }
  }
  out[o++] = '"';
  out[o] = 0;
  return o;
}

/* Runs of plain bytes are copied a word at a time: every byte value at every position of the first
 * words is still escaped exactly, and strings made only of escapes grow the builder as they must. */
static void test_json_escaping_positions(void **st)
{
  (void)st;
  unsigned char in[40];
  char want[40 * 6 + 3];
  for (int c = 1; c < 256; c++) {
    for (size_t pos = 0; pos < 20; pos++) {
      memset(in, 'a', sizeof in);
      in[pos] = (unsigned char)c;
      in[pos + 9] = (unsigned char)c; /* a second one in the next word */
      struct gw_arena *a = gw_arena_create(0);
      struct gw_sb sb;
      gw_sb_init(&sb, a);
      gw_sb_putc(&sb, '>');
      gw_sb_json_str(&sb, (const char *)in, sizeof in);
      const char *got = gw_sb_finish(&sb);
      ref_escape(want, in, sizeof in);
      if (!got || got[0] != '>' || strcmp(got + 1, want))
        fail_msg("byte 0x%02x at %zu: got %s", c, pos, got ? got : "(null)");
      gw_arena_destroy(a);
    }
  }
  /* Only escapes, long enough to outgrow the builder several times. */
  static unsigned char ctl[5000];
  static char want_ctl[5000 * 6 + 3];
  for (size_t i = 0; i < sizeof ctl; i++)
    ctl[i] = (unsigned char)(i % 3 == 0 ? 0x01 : i % 3 == 1 ? '"' : 'x');
  struct gw_arena *a = gw_arena_create(0);
  struct gw_sb sb;
  gw_sb_init(&sb, a);
  gw_sb_json_str(&sb, (const char *)ctl, sizeof ctl);
  size_t wl = ref_escape(want_ctl, ctl, sizeof ctl);
  assert_int_equal(sb.len, wl);
  assert_string_equal(gw_sb_finish(&sb), want_ctl);
  gw_arena_destroy(a);
  /* Out of room half way through the escapes: the builder fails, it does not overflow. */
  a = gw_arena_create(8192);
  gw_sb_init(&sb, a);
  gw_sb_json_str(&sb, (const char *)ctl, sizeof ctl);
  assert_true(sb.oom);
  assert_null(gw_sb_finish(&sb));
  gw_arena_destroy(a);
}

/* gw_json_plain as a byte-at-a-time loop. */
static size_t ref_plain(const unsigned char *s, size_t n, bool ascii)
{
  size_t i = 0;
  while (i < n && s[i] >= 0x20 && s[i] != '"' && s[i] != '\\' && !(ascii && s[i] >= 0x80))
    i++;
  return i;
}

/* One string through gw_sb_json_str (after text already in the builder) and gw_json_plain, from a heap
 * copy of exactly its length (so valgrind and ASan see any read past it), against the references. */
static struct gw_arena *escape_arena;

static void check_escape_once(const unsigned char *in, size_t n, const char *what)
{
  unsigned char *s = malloc(n ? n : 1);
  char *want = malloc(n * 6 + 3);
  assert_non_null(s);
  assert_non_null(want);
  memcpy(s, in, n);
  struct gw_arena *a = escape_arena;
  gw_arena_reset(a);
  struct gw_sb sb;
  gw_sb_init(&sb, a);
  gw_sb_putc(&sb, '>');
  gw_sb_json_str(&sb, (const char *)s, n);
  const char *got = gw_sb_finish(&sb);
  size_t wl = ref_escape(want, s, n);
  if (!got || got[0] != '>' || sb.len != wl + 1 || memcmp(got + 1, want, wl))
    fail_msg("%s, %zu bytes: got %s want %s", what, n, got ? got : "(null)", want);
  for (int ascii = 0; ascii < 2; ascii++)
    if (gw_json_plain((const char *)s, n, ascii) != ref_plain(s, n, ascii))
      fail_msg("%s, %zu bytes, ascii %d: plain run %zu, want %zu", what, n, ascii,
               gw_json_plain((const char *)s, n, ascii), ref_plain(s, n, ascii));
  free(want);
  free(s);
}

/* Both ways: the 64-byte AVX-512 steps where the CPU has them, and the 16-byte ones. */
static void check_escape(const unsigned char *in, size_t n, const char *what)
{
  check_escape_once(in, n, what);
  gw_json_no_avx512 = true;
  check_escape_once(in, n, what);
  gw_json_no_avx512 = false;
}

/* The 16-byte blocks, the overlapping last 8 or 4 bytes of a tail and the bytes after an escape: every
 * byte value at every offset of strings of every length up to 48 (so every tail length after 0, 1 and 2
 * blocks); after the byte values at the edges of the tests (0, 1, 0x1f, '"', '\\', 0x7f, 0x80, 0xff) a
 * second escape 1, 3, 8 or 15 bytes further (the same half of a tail, its overlap, its second half or the
 * next block); and random strings of every byte value at offsets taken modulo 32; all against the
 * byte-at-a-time references. */
static void test_json_escaping_every_offset(void **st)
{
  (void)st;
  unsigned char in[200];
  char what[64];
  escape_arena = gw_arena_create(0);
  for (size_t n = 0; n <= 48; n++) {
    memset(in, 'a', n);
    check_escape(in, n, "plain");
    for (size_t pos = 0; pos < n; pos++)
      for (int c = 0; c < 256; c++) {
        memset(in, 'a', n);
        in[pos] = (unsigned char)c;
        snprintf(what, sizeof what, "0x%02x at %zu", c, pos);
        check_escape(in, n, what);
        static const size_t dist[] = {1, 3, 8, 15};
        if (c > 0x01 && c != 0x1f && c != '"' && c != '\\' && c != 0x7f && c != 0x80 && c != 0xff)
          continue; /* a second escape after the bytes nearest the edges of the tests only */
        for (size_t k = 0; k < 4 && pos + dist[k] < n; k++) {
          /* a quote, a control byte or c with its top bit flipped (>= 0x80 after a plain one) */
          in[pos + dist[k]] = (unsigned char)(k == 0 ? '"' : k == 1 ? 0x1f : c ^ 0x80);
          snprintf(what, sizeof what, "0x%02x at %zu, more at %zu", c, pos, pos + dist[k]);
          check_escape(in, n, what);
          in[pos + dist[k]] = 'a';
        }
      }
  }
  /* The 64-byte steps and their halves of 32: the bytes at the edges at every offset of every length to
   * 140 (two steps and a tail), alone and with a second one 1, 31, 32 or 33 bytes further; and a half of
   * nothing but escapes (the widest expand) next to a plain one and to one with a six-byte escape. */
  static const unsigned char edge[] = {0x00, 0x01, 0x0a, 0x0d, 0x09, 0x1f, '"', '\\', 0x7f, 0x80, 0xff};
  for (size_t n = 49; n <= 140; n++)
    for (size_t pos = 0; pos < n; pos++)
      for (size_t e = 0; e < sizeof edge; e++) {
        memset(in, 'a', n);
        in[pos] = edge[e];
        snprintf(what, sizeof what, "0x%02x at %zu", edge[e], pos);
        check_escape(in, n, what);
        static const size_t dist2[] = {1, 31, 32, 33};
        for (size_t k = 0; k < 4 && pos + dist2[k] < n; k++) {
          in[pos + dist2[k]] = edge[(e + k + 1) % sizeof edge];
          snprintf(what, sizeof what, "0x%02x at %zu, more at %zu", edge[e], pos, pos + dist2[k]);
          check_escape(in, n, what);
          in[pos + dist2[k]] = 'a';
        }
      }
  for (int shape = 0; shape < 3; shape++) {
    memset(in, 'a', 128);
    for (size_t i = 32; i < 64; i++)
      in[i] = i % 2 ? '"' : '\n';
    if (shape == 1)
      in[70] = 0x02;
    if (shape == 2)
      memset(in + 64, '\\', 32);
    snprintf(what, sizeof what, "a half of escapes, shape %d", shape);
    check_escape(in, 128, what);
  }
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (int round = 0; round < 20000; round++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    size_t n = x % 200;
    /* mostly plain text, an escape or a byte >= 0x80 now and then, or dense in them */
    unsigned dense = (unsigned)(x >> 40) % 4;
    for (size_t i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      unsigned r = (unsigned)(x >> 20) % 64;
      in[i] = r < 16 * dense ? (unsigned char)(x >> 32) : (unsigned char)('a' + r % 26);
    }
    snprintf(what, sizeof what, "random string %d", round);
    check_escape(in, n, what);
  }
  gw_arena_destroy(escape_arena);
}

/* gw_sb_i64 writes what printf's %lld writes, at the extremes too. */
static void test_sb_i64(void **st)
{
  (void)st;
  const int64_t vals[] = {0, 1, -1, 9, 10, -10, 1234567890, INT64_MAX, INT64_MIN, INT64_MIN + 1, 1000000000000000000};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    struct gw_arena *a = gw_arena_create(0);
    struct gw_sb sb;
    gw_sb_init(&sb, a);
    gw_sb_putc(&sb, '[');
    gw_sb_i64(&sb, vals[i]);
    gw_sb_putc(&sb, ']');
    char want[32];
    snprintf(want, sizeof want, "[%lld]", (long long)vals[i]);
    assert_string_equal(gw_sb_finish(&sb), want);
    gw_arena_destroy(a);
  }
}

/* The 0006 columns travel since format GWR2, span_links since GWR3; GWR1 and GWR2 entries (a disk spool
 * kept across an upgrade) still decode, with the later columns NULL / empty. */
static void test_gwr1_still_decodes(void **st)
{
  (void)st;
  struct gw_arena *a = gw_arena_create(0);
  struct gw_record r[2];
  memset(r, 0, sizeof r);
  strcpy(r[0].trace_id, "0123456789abcdef0123456789abcdef");
  strcpy(r[0].span_id, "0123456789abcdef");
  r[0].start_ns = 1763884610000000000ull;
  r[1] = r[0];
  r[1].agent_name = "planner";
  r[1].workflow_name = "trip";
  r[1].prompt_name = "greeting";
  r[1].prompt_version = "3";
  memset(r[1].prompt_simhash, '1', 64);
  const char *links[] = {"1111111111111111:2222222222222222", "3333333333333333:1111111111111111"};
  r[1].span_links = (struct gw_strv){links, 2};
  struct gw_sb sb;
  gw_sb_init(&sb, a);
  assert_int_equal(gw_records_encode(r, 2, &sb), GW_OK);
  assert_memory_equal(sb.buf, "GWR3", 4);
  struct gw_record *out;
  size_t n;
  assert_int_equal(gw_records_decode(sb.buf, sb.len, a, &out, &n), GW_OK);
  assert_int_equal(n, 2);
  assert_null(out[0].agent_name);
  assert_int_equal(out[0].span_links.n, 0);
  assert_string_equal(out[1].agent_name, "planner");
  assert_string_equal(out[1].workflow_name, "trip");
  assert_string_equal(out[1].prompt_name, "greeting");
  assert_string_equal(out[1].prompt_version, "3");
  assert_int_equal(strlen(out[1].prompt_simhash), 64);
  assert_int_equal(out[1].span_links.n, 2);
  assert_string_equal(out[1].span_links.v[1], links[1]);

  /* The first record alone, as GWR2 wrote it (without the empty span_links count at its end) and as GWR1
   * did (also without the 0006 fields: four absent strings and an empty fixed string). */
  gw_sb_init(&sb, a);
  assert_int_equal(gw_records_encode(r, 1, &sb), GW_OK);
  static const char tail[13] = {0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0};
  assert_memory_equal(sb.buf + sb.len - 13, tail, 13);
  char *v2 = gw_arena_alloc(a, sb.len);
  memcpy(v2, sb.buf, sb.len - 4);
  memcpy(v2, "GWR2", 4);
  assert_int_equal(gw_records_decode(v2, sb.len - 4, a, &out, &n), GW_OK);
  assert_int_equal(n, 1);
  assert_string_equal(out[0].span_id, "0123456789abcdef");
  assert_int_equal(out[0].span_links.n, 0);
  char *v1 = gw_arena_alloc(a, sb.len);
  memcpy(v1, sb.buf, sb.len - 13);
  memcpy(v1, "GWR1", 4);
  assert_int_equal(gw_records_decode(v1, sb.len - 13, a, &out, &n), GW_OK);
  assert_int_equal(n, 1);
  assert_string_equal(out[0].span_id, "0123456789abcdef");
  assert_null(out[0].agent_name);
  assert_null(out[0].prompt_version);
  assert_string_equal(out[0].prompt_simhash, "");
  assert_int_equal(out[0].span_links.n, 0);
  /* but a body of one format is not taken for another */
  assert_int_equal(gw_records_decode(v1, sb.len - 13 - 1, a, &out, &n), GW_ERR(DECODE));
  memcpy(v1, "GWR2", 4);
  assert_int_equal(gw_records_decode(v1, sb.len - 13, a, &out, &n), GW_ERR(DECODE));
  memcpy(v2, "GWR3", 4);
  assert_int_equal(gw_records_decode(v2, sb.len - 4, a, &out, &n), GW_ERR(DECODE));
  gw_arena_destroy(a);
}

/* An event's prompt_simhash travels in format GWE2; a GWE1 entry (a disk spool kept across the upgrade)
 * still decodes, without it. */
static void test_gwe1_still_decodes(void **st)
{
  (void)st;
  struct gw_arena *a = gw_arena_create(0);
  struct gw_event e[2];
  memset(e, 0, sizeof e);
  strcpy(e[0].trace_id, "0123456789abcdef0123456789abcdef");
  strcpy(e[0].span_id, "0123456789abcdef");
  e[0].time_ns = 1763884610000000000ull;
  e[0].seq = (struct gw_opt_i64){1, true};
  strcpy(e[0].prompt_hash, "0123456789abcdef");
  e[1] = e[0];
  memset(e[1].prompt_simhash, '1', 64);
  struct gw_sb sb;
  gw_sb_init(&sb, a);
  assert_int_equal(gw_events_encode(e, 2, &sb), GW_OK);
  assert_memory_equal(sb.buf, "GWE2", 4);
  struct gw_event *out;
  size_t n;
  assert_int_equal(gw_events_decode(sb.buf, sb.len, a, &out, &n), GW_OK);
  assert_int_equal(n, 2);
  assert_string_equal(out[0].prompt_simhash, "");
  assert_int_equal(strlen(out[1].prompt_simhash), 64);
  assert_string_equal(out[1].prompt_hash, "0123456789abcdef");

  /* The first event alone, as GWE1 wrote it: without the empty fixed string at its end. */
  gw_sb_init(&sb, a);
  assert_int_equal(gw_events_encode(e, 1, &sb), GW_OK);
  static const char tail[5] = {1, 0, 0, 0, 0};
  assert_memory_equal(sb.buf + sb.len - 5, tail, 5);
  char *v1 = gw_arena_alloc(a, sb.len);
  memcpy(v1, sb.buf, sb.len - 5);
  memcpy(v1, "GWE1", 4);
  assert_int_equal(gw_events_decode(v1, sb.len - 5, a, &out, &n), GW_OK);
  assert_int_equal(n, 1);
  assert_string_equal(out[0].prompt_hash, "0123456789abcdef");
  assert_string_equal(out[0].prompt_simhash, "");
  memcpy(v1, "GWE2", 4);
  assert_int_equal(gw_events_decode(v1, sb.len - 5, a, &out, &n), GW_ERR(DECODE));
  gw_arena_destroy(a);
}

/* The spool format written the plain way, from the field table, one byte at a time: the reference the
 * encoder (which measures each text once and writes through a cursor) must match byte for byte. */
static void ref_bytes(FILE *f, const void *p, size_t n) { fwrite(p, 1, n, f); }
static void ref_u32(FILE *f, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    fputc((int)(v >> (8 * i) & 0xff), f);
}
static void ref_u64(FILE *f, uint64_t v)
{
  ref_u32(f, (uint32_t)v);
  ref_u32(f, (uint32_t)(v >> 32));
}
static void ref_str(FILE *f, const char *s)
{
  fputc(s != NULL, f);
  if (s) {
    ref_u32(f, (uint32_t)strlen(s));
    ref_bytes(f, s, strlen(s));
  }
}

static char *ref_encode(const char *magic, const struct gw_field *fields, size_t nf, const void *rows, size_t stride,
                        size_t n, size_t *len)
{
  char *buf = NULL;
  FILE *f = open_memstream(&buf, len);
  ref_bytes(f, magic, 4);
  ref_u32(f, (uint32_t)n);
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < nf; k++) {
      const void *p = (const char *)rows + i * stride + fields[k].offset;
      switch (fields[k].type) {
      case GW_FT_CHARS: ref_str(f, p); break;
      case GW_FT_TEXT:
      case GW_FT_JSON: ref_str(f, *(const char *const *)p); break;
      case GW_FT_I64:
      case GW_FT_NUSD:
        fputc(((const struct gw_opt_i64 *)p)->set, f);
        if (((const struct gw_opt_i64 *)p)->set)
          ref_u64(f, (uint64_t)((const struct gw_opt_i64 *)p)->v);
        break;
      case GW_FT_F64:
        fputc(((const struct gw_opt_f64 *)p)->set, f);
        if (((const struct gw_opt_f64 *)p)->set)
          ref_bytes(f, &((const struct gw_opt_f64 *)p)->v, 8); /* little-endian host */
        break;
      case GW_FT_TIME: ref_u64(f, *(const uint64_t *)p); break;
      case GW_FT_BOOL: fputc((unsigned char)*(const gw_tribool *)p, f); break;
      case GW_FT_FLAGS: ref_u32(f, *(const uint32_t *)p); break;
      case GW_FT_STRV: {
        const struct gw_strv *v = p;
        ref_u32(f, v->n);
        for (uint32_t j = 0; j < v->n; j++)
          ref_str(f, v->v[j]);
        break;
      }
      }
    }
  fclose(f);
  return buf;
}

/* Every field of every row set from the table (texts of 0 to a few thousand bytes, NULL, strv of 0, 1 and
 * 300 elements, set and unset numbers), several rows, appended after bytes already in the builder: the
 * encoding equals the reference's, for records and events, and the builder is sized exactly once. */
static void test_encode_matches_reference(void **st)
{
  (void)st;
  struct gw_arena *a = gw_arena_create(0);
  enum { NR = 7 };
  struct gw_record r[NR];
  struct gw_event ev[NR];
  memset(r, 0, sizeof r);
  memset(ev, 0, sizeof ev);
  static char big[5000];
  memset(big, 'x', sizeof big - 1);
  static const char *many[300];
  for (int i = 0; i < 300; i++)
    many[i] = i % 7 ? big + sizeof big - 1 - (size_t)i : "";
  unsigned seed = 1;
  for (int pass = 0; pass < 2; pass++) {
    const struct gw_field *fields = pass ? gw_event_fields : gw_record_fields;
    size_t nf = pass ? gw_event_nfields : gw_record_nfields;
    size_t stride = pass ? sizeof ev[0] : sizeof r[0];
    char *rows = pass ? (char *)ev : (char *)r;
    for (int i = 0; i < NR; i++)
      for (size_t k = 0; k < nf; k++) {
        void *p = rows + (size_t)i * stride + fields[k].offset;
        seed = seed * 1103515245u + 12345u;
        unsigned x = seed >> 8;
        switch (fields[k].type) {
        case GW_FT_CHARS: memset(p, 'a' + (int)(x % 26), x % fields[k].size); break;
        case GW_FT_TEXT:
        case GW_FT_JSON: *(const char **)p = x % 5 == 0 ? NULL : big + sizeof big - 1 - x % (sizeof big); break;
        case GW_FT_I64:
        case GW_FT_NUSD: *(struct gw_opt_i64 *)p = (struct gw_opt_i64){(int64_t)x * -977, x % 3 != 0}; break;
        case GW_FT_F64: *(struct gw_opt_f64 *)p = (struct gw_opt_f64){x / 7.0, x % 3 != 0}; break;
        case GW_FT_TIME: *(uint64_t *)p = (uint64_t)x << 20; break;
        case GW_FT_BOOL: *(gw_tribool *)p = (gw_tribool)(x % 3) - 1; break;
        case GW_FT_FLAGS: *(uint32_t *)p = x; break;
        case GW_FT_STRV: {
          uint32_t cnt = x % 3 == 0 ? 0 : x % 3 == 1 ? 1 : 300;
          *(struct gw_strv *)p = (struct gw_strv){many + (cnt == 1 ? x % 300 : 0), cnt};
          break;
        }
        }
      }
    struct gw_sb sb;
    gw_sb_init(&sb, a);
    gw_sb_puts(&sb, "prefix");
    assert_int_equal(pass ? gw_events_encode(ev, NR, &sb) : gw_records_encode(r, NR, &sb), GW_OK);
    assert_int_equal(sb.cap, sb.len + 1);
    size_t rlen;
    char *ref = ref_encode(pass ? "GWE2" : "GWR3", fields, nf, rows, stride, NR, &rlen);
    assert_int_equal(sb.len, 6 + rlen);
    assert_memory_equal(sb.buf, "prefix", 6);
    assert_memory_equal(sb.buf + 6, ref, rlen);
    free(ref);
    /* No rows: the header alone. */
    gw_sb_init(&sb, a);
    assert_int_equal(pass ? gw_events_encode(ev, 0, &sb) : gw_records_encode(r, 0, &sb), GW_OK);
    assert_int_equal(sb.len, 8);
  }
  gw_arena_destroy(a);
}

/* The long texts carry their lengths (gw_record_set_text), and a length holds only while its field points
 * at the text it was kept for: a field rewritten without the setter, to a shorter, longer, empty, NULL or
 * non-ASCII text, is measured again, so gw_record_text_len and the codec give what strlen gives, and the
 * encoding equals the reference's (which measures every text itself). */
static void test_text_lengths_follow_the_field(void **st)
{
  (void)st;
  static char big[3000];
  memset(big, 'y', sizeof big - 1);
  static const char *const texts[] = {"[{\"role\":\"user\",\"parts\":[]}]", "ab", "",
                                      "h\xc3\xa9llo w\xc3\xb6rld \xe2\x82\xac", big, NULL};
  enum { NT = sizeof texts / sizeof texts[0] };
  for (int t = 0; t < GW_RT__COUNT; t++)
    for (int i = 0; i < NT; i++) {
      struct gw_record r;
      memset(&r, 0, sizeof r);
      size_t n = texts[i] ? strlen(texts[i]) : 0;
      gw_record_set_text(&r, (enum gw_rtext)t, texts[i], n);
      assert_ptr_equal(gw_record_text(&r, (enum gw_rtext)t), texts[i]);
      assert_int_equal(gw_record_text_len(&r, (enum gw_rtext)t), n);
      for (int j = 0; j < NT; j++) { /* rewritten directly: measured again */
        const char **fp = NULL;
        for (size_t f = 0; f < gw_record_nfields; f++)
          if (gw_record_fields[f].rtext == t + 1)
            fp = (const char **)(void *)((char *)&r + gw_record_fields[f].offset);
        assert_non_null(fp);
        *fp = texts[j];
        assert_ptr_equal(gw_record_text(&r, (enum gw_rtext)t), texts[j]);
        assert_int_equal(gw_record_text_len(&r, (enum gw_rtext)t), texts[j] ? strlen(texts[j]) : 0);
        *fp = texts[i];
        assert_int_equal(gw_record_text_len(&r, (enum gw_rtext)t), n);
      }
    }
  /* Each long text of every field the table marks is kept, then some rewritten directly; the encoding is
   * the reference's, which measures every text. */
  size_t marked = 0;
  for (size_t f = 0; f < gw_record_nfields; f++)
    if (gw_record_fields[f].rtext) {
      assert_true(gw_record_fields[f].type == GW_FT_TEXT || gw_record_fields[f].type == GW_FT_JSON);
      marked++;
    }
  assert_int_equal(marked, GW_RT__COUNT);
  struct gw_arena *a = gw_arena_create(0);
  enum { NR = NT * NT };
  struct gw_record r[NR];
  memset(r, 0, sizeof r);
  for (int i = 0; i < NR; i++)
    for (int t = 0; t < GW_RT__COUNT; t++) {
      const char *kept = texts[(i + t) % NT], *now = texts[(i / NT + t) % NT];
      gw_record_set_text(&r[i], (enum gw_rtext)t, kept, kept ? strlen(kept) : 0);
      if (now != kept)
        for (size_t f = 0; f < gw_record_nfields; f++)
          if (gw_record_fields[f].rtext == t + 1)
            *(const char **)(void *)((char *)&r[i] + gw_record_fields[f].offset) = now;
    }
  r[1] = r[NR - 1]; /* a copy keeps its lengths with its pointers */
  struct gw_sb sb;
  gw_sb_init(&sb, a);
  assert_int_equal(gw_records_encode(r, NR, &sb), GW_OK);
  size_t rlen;
  char *ref = ref_encode("GWR3", gw_record_fields, gw_record_nfields, r, sizeof r[0], NR, &rlen);
  assert_int_equal(sb.len, rlen);
  assert_memory_equal(sb.buf, ref, rlen);
  free(ref);
  gw_arena_destroy(a);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_round_trip),
    cmocka_unit_test(test_encode_matches_reference),
    cmocka_unit_test(test_text_lengths_follow_the_field),
    cmocka_unit_test(test_gwr1_still_decodes),
    cmocka_unit_test(test_gwe1_still_decodes),
    cmocka_unit_test(test_trace_facts),
    cmocka_unit_test(test_lying_count),
    cmocka_unit_test(test_arena_cap),
    cmocka_unit_test(test_arena_reset_reuses_chunks),
    cmocka_unit_test(test_arena_keep),
    cmocka_unit_test(test_arena_warm_pool),
    cmocka_unit_test(test_warm_bodies),
    cmocka_unit_test(test_arena_budget),
    cmocka_unit_test(test_arena_big),
    cmocka_unit_test(test_json_escaping),
    cmocka_unit_test(test_json_escaping_positions),
    cmocka_unit_test(test_json_escaping_every_offset),
    cmocka_unit_test(test_sb_i64),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
