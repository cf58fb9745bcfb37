/*
 * memtrim.c: see memtrim.h. One thread, woken by gw_memtrim_note; it waits TRIM_DELAY_MS so the call's
 * last buffers are freed and a burst of large requests is covered by one trim, then trims every arena.
 */
#include "core/memtrim.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#define TRIM_DELAY_MS 20

static pthread_mutex_t lk = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static pthread_t thr;
static atomic_bool running;
static bool pending, stopping;
static atomic_ulong trims;

static void *trimmer(void *arg)
{
  (void)arg;
  pthread_setname_np(pthread_self(), "gw-memtrim");
  pthread_mutex_lock(&lk);
  for (;;) {
    while (!pending && !stopping)
      pthread_cond_wait(&cv, &lk);
    if (stopping)
      break;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += TRIM_DELAY_MS * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    while (!stopping && pthread_cond_timedwait(&cv, &lk, &until) == 0)
      ; /* notes during the delay join this trim */
    if (stopping)
      break;
    pending = false;
    pthread_mutex_unlock(&lk);
    malloc_trim(0);
    atomic_fetch_add(&trims, 1);
    pthread_mutex_lock(&lk);
  }
  pthread_mutex_unlock(&lk);
  return NULL;
}

void gw_memtrim_start(void)
{
  if (atomic_load(&running))
    return;
  stopping = false;
  pending = false;
  if (pthread_create(&thr, NULL, trimmer, NULL) == 0)
    atomic_store(&running, true);
}

void gw_memtrim_stop(void)
{
  if (!atomic_load(&running))
    return;
  pthread_mutex_lock(&lk);
  stopping = true;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&lk);
  pthread_join(thr, NULL);
  atomic_store(&running, false);
}

void gw_memtrim_note(size_t bytes)
{
  if (bytes < GW_MEMTRIM_MIN || !atomic_load(&running))
    return;
  pthread_mutex_lock(&lk);
  if (!pending) {
    pending = true;
    pthread_cond_signal(&cv);
  }
  pthread_mutex_unlock(&lk);
}

unsigned long gw_memtrim_count(void) { return atomic_load(&trims); }
