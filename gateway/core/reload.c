/*
 * reload.c: the file watcher behind reload.h. One process-wide table under one mutex; the reload functions
 * run with the mutex held, so a watch is never removed while its function runs and two reloads of the
 * same files never overlap (SIGHUP during a poll waits for it).
 */
#include "core/reload.h"

#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/gw.h"

#define MAX_WATCHES 8
#define MAX_PATHS 4

struct sig {
  int err; /* stat's errno, 0 when the file is there */
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
};

struct watch {
  int handle;
  char paths[MAX_PATHS][512];
  struct sig sigs[MAX_PATHS];
  size_t n;
  gw_reload_fn fn;
  void *arg;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;
static struct watch watches[MAX_WATCHES];
static size_t nwatches;
static int next_handle = 1;
static bool running, stopping;
static uint32_t interval;
static pthread_t thread;

static struct sig look(const char *path)
{
  struct sig s;
  memset(&s, 0, sizeof s);
  struct stat st;
  if (stat(path, &st) != 0) {
    s.err = errno ? errno : ENOENT;
    return s;
  }
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.size = st.st_size;
  s.mtime = st.st_mtim;
  return s;
}

static bool same(const struct sig *a, const struct sig *b)
{
  return a->err == b->err && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
         a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

int gw_reload_add(const char *const *paths, size_t n, gw_reload_fn fn, void *arg)
{
  pthread_mutex_lock(&mu);
  if (nwatches == MAX_WATCHES) {
    pthread_mutex_unlock(&mu);
    return 0;
  }
  struct watch *w = &watches[nwatches++];
  memset(w, 0, sizeof *w);
  w->handle = next_handle++;
  w->fn = fn;
  w->arg = arg;
  for (size_t i = 0; i < n && w->n < MAX_PATHS; i++) {
    if (!paths[i] || !paths[i][0])
      continue;
    snprintf(w->paths[w->n], sizeof w->paths[w->n], "%s", paths[i]);
    w->sigs[w->n] = look(paths[i]);
    w->n++;
  }
  int h = w->handle;
  pthread_mutex_unlock(&mu);
  return h;
}

void gw_reload_remove(int handle)
{
  pthread_mutex_lock(&mu);
  for (size_t i = 0; i < nwatches; i++) {
    if (watches[i].handle == handle) {
      watches[i] = watches[--nwatches];
      break;
    }
  }
  pthread_mutex_unlock(&mu);
}

static void *watcher(void *unused)
{
  (void)unused;
  pthread_setname_np(pthread_self(), "gw-reload");
  pthread_mutex_lock(&mu);
  while (!stopping) {
    for (size_t i = 0; i < nwatches; i++) {
      struct watch *w = &watches[i];
      bool changed = false;
      for (size_t j = 0; j < w->n; j++) {
        struct sig s = look(w->paths[j]);
        if (!same(&s, &w->sigs[j])) {
          w->sigs[j] = s;
          changed = true;
        }
      }
      if (changed)
        w->fn(w->arg, 0);
    }
    uint64_t until = gw_mono_ns() + (uint64_t)interval * 1000000u;
    struct timespec ts = {(time_t)(until / 1000000000u), (long)(until % 1000000000u)};
    pthread_cond_timedwait(&cv, &mu, &ts);
  }
  pthread_mutex_unlock(&mu);
  return NULL;
}

void gw_reload_start(uint32_t interval_ms)
{
  pthread_mutex_lock(&mu);
  if (running) {
    pthread_mutex_unlock(&mu);
    return;
  }
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&cv, &ca);
  pthread_condattr_destroy(&ca);
  interval = interval_ms ? interval_ms : 1000;
  stopping = false;
  running = true;
  pthread_create(&thread, NULL, watcher, NULL);
  pthread_mutex_unlock(&mu);
}

void gw_reload_stop(void)
{
  pthread_mutex_lock(&mu);
  if (!running) {
    pthread_mutex_unlock(&mu);
    return;
  }
  stopping = true;
  pthread_cond_signal(&cv);
  pthread_mutex_unlock(&mu);
  pthread_join(thread, NULL);
  pthread_mutex_lock(&mu);
  running = false;
  pthread_cond_destroy(&cv);
  pthread_mutex_unlock(&mu);
}

void gw_reload_now(void)
{
  pthread_mutex_lock(&mu);
  for (size_t i = 0; i < nwatches; i++) {
    struct watch *w = &watches[i];
    for (size_t j = 0; j < w->n; j++)
      w->sigs[j] = look(w->paths[j]);
    w->fn(w->arg, 1);
  }
  pthread_mutex_unlock(&mu);
}
