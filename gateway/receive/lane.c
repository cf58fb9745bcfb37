/*
 * lane.c: the large-request lane (lane.h). A FIFO of jobs and a few threads; the jobs' memory is the
 * requests' own, already counted in flight by the receivers before they hand a request over.
 */
#include "receive/lane.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <snappy-c.h>
#include <zstd.h>

#include "core/log.h"
#include "core/metrics.h"

#define LANE_MAX_THREADS 64

struct job {
  struct job *next;
  void (*fn)(void *arg);
  void *arg;
};

struct gw_lane {
  pthread_mutex_t mu;
  pthread_cond_t work, idle;
  struct job *head, *tail;
  unsigned busy; /* jobs queued or running */
  bool stop;
  unsigned nice, n;
  pthread_t th[LANE_MAX_THREADS];
};

static void *lane_main(void *arg)
{
  struct gw_lane *l = arg;
  pthread_setname_np(pthread_self(), "gw-large");
  if (l->nice) {
    /* per thread on Linux: only this thread yields the CPU to the receivers */
    pid_t tid = (pid_t)syscall(SYS_gettid);
    errno = 0;
    int cur = getpriority(PRIO_PROCESS, (id_t)tid);
    if ((cur == -1 && errno) || setpriority(PRIO_PROCESS, (id_t)tid, cur + (int)l->nice) != 0)
      gw_warn("lane", "cannot lower the large-request threads' CPU priority: %s", strerror(errno));
  }
  pthread_mutex_lock(&l->mu);
  for (;;) {
    while (!l->head && !l->stop)
      pthread_cond_wait(&l->work, &l->mu);
    struct job *j = l->head;
    if (!j)
      break; /* stopping, nothing left */
    l->head = j->next;
    if (!l->head)
      l->tail = NULL;
    pthread_mutex_unlock(&l->mu);
    j->fn(j->arg);
    free(j);
    pthread_mutex_lock(&l->mu);
    l->busy--;
    gw_metric_set(GW_M_LARGE_PENDING, (int64_t)l->busy);
    if (!l->busy)
      pthread_cond_broadcast(&l->idle);
  }
  pthread_mutex_unlock(&l->mu);
  return NULL;
}

struct gw_lane *gw_lane_start(unsigned threads, unsigned nice)
{
  struct gw_lane *l = gw_calloc(1, sizeof *l);
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->work, NULL);
  pthread_cond_init(&l->idle, NULL);
  l->nice = nice;
  l->n = threads < 1 ? 1 : threads > LANE_MAX_THREADS ? LANE_MAX_THREADS : threads;
  for (unsigned i = 0; i < l->n; i++)
    pthread_create(&l->th[i], NULL, lane_main, l);
  return l;
}

void gw_lane_submit(struct gw_lane *l, void (*fn)(void *arg), void *arg)
{
  struct job *j = gw_calloc(1, sizeof *j);
  j->fn = fn;
  j->arg = arg;
  pthread_mutex_lock(&l->mu);
  if (l->tail)
    l->tail->next = j;
  else
    l->head = j;
  l->tail = j;
  l->busy++;
  gw_metric_add(GW_M_LARGE_REQUESTS, 1);
  gw_metric_set(GW_M_LARGE_PENDING, (int64_t)l->busy);
  pthread_cond_signal(&l->work);
  pthread_mutex_unlock(&l->mu);
}

void gw_lane_drain(struct gw_lane *l)
{
  if (!l)
    return;
  pthread_mutex_lock(&l->mu);
  while (l->busy)
    pthread_cond_wait(&l->idle, &l->mu);
  pthread_mutex_unlock(&l->mu);
}

void gw_lane_stop(struct gw_lane *l)
{
  if (!l)
    return;
  pthread_mutex_lock(&l->mu);
  l->stop = true;
  pthread_cond_broadcast(&l->work);
  pthread_mutex_unlock(&l->mu);
  for (unsigned i = 0; i < l->n; i++)
    pthread_join(l->th[i], NULL);
  pthread_cond_destroy(&l->work);
  pthread_cond_destroy(&l->idle);
  pthread_mutex_destroy(&l->mu);
  free(l);
}

uint64_t gw_lane_size(const unsigned char *head, size_t head_len, const unsigned char *tail, size_t len,
                      enum gw_coding coding)
{
  if (head_len > len)
    head_len = len; /* the head is the body's first bytes: never more than it */
  if (coding == GW_CODING_ZSTD) {
    unsigned long long n = ZSTD_getFrameContentSize(head, head_len);
    return n != ZSTD_CONTENTSIZE_UNKNOWN && n != ZSTD_CONTENTSIZE_ERROR && n > len ? (uint64_t)n : len;
  }
  if (coding == GW_CODING_SNAPPY) { /* a block states its length first; framed chunks are at most 64 KiB */
    size_t n;
    if (gw_snappy_framed(head, head_len))
      return len;
    return snappy_uncompressed_length((const char *)head, head_len, &n) == SNAPPY_OK &&
                   n > len
             ? (uint64_t)n
             : len;
  }
  if (coding == GW_CODING_LZ4) { /* a first frame's content size, when its header has one (FLG bit 3) */
    static const unsigned char magic[4] = {0x04, 0x22, 0x4d, 0x18};
    if (head_len < 14 || memcmp(head, magic, 4) || !(head[4] & 0x08))
      return len;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
      n = n << 8 | head[6 + i];
    return n > len ? n : len;
  }
  if (coding != GW_CODING_DEFLATE || len < 18 || head_len < 2 || head[0] != 0x1f || head[1] != 0x8b)
    return len;
  uint64_t isize = (uint64_t)tail[0] | (uint64_t)tail[1] << 8 | (uint64_t)tail[2] << 16 | (uint64_t)tail[3] << 24;
  return isize > len ? isize : len;
}
