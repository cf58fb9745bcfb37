/*
 * memtrim.c: see memtrim.h. One thread, woken by gw_memtrim_note; it waits until the trim is due
 * (gw_memtrim_due: the call's last buffers freed, a burst covered by one trim, trims spaced out), then trims
 * every arena.
 */
#include "core/memtrim.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "core/arena.h"
#include "core/gw.h"

#define MS 1000000ull
/* Allocations under this come from the arenas and wait for the trimmer: a 1 MiB gRPC message's buffers are
 * reused, not faulted in afresh. Larger ones (a multi-MiB request's) are still mapped and go back at free():
 * at 32 MiB, fragments of a burst of 6 MiB requests kept the rest RSS over README.md's bound at rest. */
#define GW_MEMTRIM_MMAP_MAX (2 * 1024 * 1024)

static pthread_mutex_t lk = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;
static pthread_t thr;
static atomic_bool running;
static bool pending, stopping;
static uint64_t first_note, last_note, last_trim; /* gw_mono_ns; under lk */
static atomic_ulong trims;
/* The receivers' warm pool above its size at rest (core/arena.h): cut back once it has been quiet for
 * GW_MEMTRIM_POOL_QUIET_MS. Under lk. */
static bool pool_pending;
static uint64_t pool_last;
static atomic_ulong pool_trims;

uint64_t gw_memtrim_due(uint64_t first, uint64_t last, uint64_t trimmed)
{
  uint64_t due = last + GW_MEMTRIM_QUIET_MS * MS;
  if (due > first + GW_MEMTRIM_INTERVAL_MS * MS)
    due = first + GW_MEMTRIM_INTERVAL_MS * MS;
  if (trimmed && due < trimmed + GW_MEMTRIM_INTERVAL_MS * MS)
    due = trimmed + GW_MEMTRIM_INTERVAL_MS * MS;
  return due;
}

/* The warm pool's hook: called by whichever thread gave a chunk back. */
static void pool_note(void)
{
  uint64_t now = gw_mono_ns();
  pthread_mutex_lock(&lk);
  pool_last = now;
  if (!pool_pending) {
    pool_pending = true;
    pthread_cond_signal(&cv);
  }
  pthread_mutex_unlock(&lk);
}

static void *trimmer(void *arg)
{
  (void)arg;
  pthread_setname_np(pthread_self(), "gw-memtrim");
  pthread_mutex_lock(&lk);
  for (;;) {
    while (!pending && !pool_pending && !stopping)
      pthread_cond_wait(&cv, &lk);
    if (stopping)
      break;
    /* notes during the wait move the due times (cv runs on CLOCK_MONOTONIC, as gw_mono_ns) */
    uint64_t heap_due = pending ? gw_memtrim_due(first_note, last_note, last_trim) : UINT64_MAX;
    uint64_t pool_due = pool_pending ? pool_last + GW_MEMTRIM_POOL_QUIET_MS * MS : UINT64_MAX;
    uint64_t due = heap_due < pool_due ? heap_due : pool_due, now = gw_mono_ns();
    if (due > now) {
      struct timespec until = {(time_t)(due / 1000000000ull), (long)(due % 1000000000ull)};
      pthread_cond_timedwait(&cv, &lk, &until);
      continue;
    }
    bool heap = heap_due <= now, pool = pool_due <= now;
    if (heap)
      pending = false;
    if (pool)
      pool_pending = false;
    pthread_mutex_unlock(&lk);
    if (pool) {
      gw_arena_warm_trim();
      atomic_fetch_add(&pool_trims, 1);
    }
    if (heap) {
      malloc_trim(0);
      atomic_fetch_add(&trims, 1);
    }
    pthread_mutex_lock(&lk);
    if (heap)
      last_trim = gw_mono_ns();
  }
  pthread_mutex_unlock(&lk);
  return NULL;
}

void gw_memtrim_start(void)
{
  if (atomic_load(&running))
    return;
  /* The trimmer gives the heap back; free() does not. By default free() unmaps chunks past the mmap threshold
   * and shrinks an arena whose top passes the trim threshold, so every 1 MiB message gRPC core reads was
   * read into pages faulted in afresh (about 150 faults a call on its threads); allocations under
   * GW_MEMTRIM_MMAP_MAX now come from the arenas and stay there until the next trim. */
  mallopt(M_MMAP_THRESHOLD, GW_MEMTRIM_MMAP_MAX);
  mallopt(M_TRIM_THRESHOLD, GW_MEMTRIM_MMAP_MAX);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&cv, &ca);
  pthread_condattr_destroy(&ca);
  stopping = false;
  pending = false;
  pool_pending = false;
  last_trim = 0;
  if (pthread_create(&thr, NULL, trimmer, NULL) == 0) {
    atomic_store(&running, true);
    gw_arena_set_warm_hook(pool_note);
  } else {
    pthread_cond_destroy(&cv);
  }
}

void gw_memtrim_stop(void)
{
  if (!atomic_load(&running))
    return;
  gw_arena_set_warm_hook(NULL);
  pthread_mutex_lock(&lk);
  stopping = true;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&lk);
  pthread_join(thr, NULL);
  pthread_cond_destroy(&cv);
  atomic_store(&running, false);
}

void gw_memtrim_note(size_t bytes)
{
  if (bytes < GW_MEMTRIM_MIN || !atomic_load(&running))
    return;
  uint64_t now = gw_mono_ns();
  pthread_mutex_lock(&lk);
  last_note = now;
  if (!pending) {
    pending = true;
    first_note = now;
    pthread_cond_signal(&cv);
  }
  pthread_mutex_unlock(&lk);
}

unsigned long gw_memtrim_count(void) { return atomic_load(&trims); }
unsigned long gw_memtrim_pool_count(void) { return atomic_load(&pool_trims); }
