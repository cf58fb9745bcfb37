/*
 * bench_spool.c: what the spool's durability costs an append. T appender threads (receivers) append entries
 * of S bytes as fast as they can for D seconds while one consumer (the Postgres writer's place) reads and
 * commits everything; printed per mode: appends/s, MB/s, append latency p50/p99/max (what a client's answer
 * waits for), fsyncs and the appends each one covered.
 *
 *   bench_spool [-t THREADS] [-s ENTRY_BYTES] [-d SECONDS] [-m MODES] [-i INTERVAL_MS] [-r RATE] DIR
 *   MODES: comma list of memory, never, interval, always (default: all four)
 *   -r RATE: an open loop instead: RATE appends per second in all, at random (Poisson) times spread over the
 *   threads, the latency taken from when each append was due (as clients arriving independently)
 * DIR should be on the disk the gateway would use (not tmpfs: fsync there is free).
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/metrics.h"
#include "spool/spool.h"

static struct {
  int threads;
  size_t entry;
  double seconds;
  const char *modes;
  unsigned interval_ms;
  double rate; /* 0: closed loop */
  const char *dir;
} opt = {16, 16384, 5.0, "memory,never,interval,always", 10, 0, NULL};

struct worker {
  struct gw_spool *s;
  pthread_t th;
  uint64_t until;
  uint64_t n, full;
  uint64_t *lat; /* ns, one per append (bounded) */
  size_t nlat, caplat;
};

static atomic_bool stop_consumer;

static void *appender(void *arg)
{
  struct worker *w = arg;
  unsigned char *buf = malloc(opt.entry);
  memset(buf, 'a', opt.entry);
  struct gw_spool_in in = {GW_SIGNAL_TRACES, GW_ENTRY_HAS_GENAI, 100, 100, buf, opt.entry * 3 / 4,
                           buf + opt.entry * 3 / 4, opt.entry - opt.entry * 3 / 4, false};
  unsigned seed = (unsigned)(uintptr_t)w ^ (unsigned)gw_mono_ns();
  uint64_t due = gw_mono_ns();
  while (gw_mono_ns() < w->until) {
    uint64_t t0 = gw_mono_ns();
    if (opt.rate > 0) { /* the next arrival: exponential gaps of mean threads / rate */
      double u = ((double)rand_r(&seed) + 1.0) / ((double)RAND_MAX + 2.0);
      due += (uint64_t)(-log(u) * (double)opt.threads / opt.rate * 1e9);
      if (due >= w->until)
        break;
      uint64_t now = gw_mono_ns();
      if (due > now) {
        struct timespec ts = {(time_t)((due - now) / 1000000000ull), (long)((due - now) % 1000000000ull)};
        nanosleep(&ts, NULL);
      }
      t0 = due;
    }
    gw_rc rc = gw_spool_append(w->s, &in);
    uint64_t dt = gw_mono_ns() - t0;
    if (rc == GW_ERR(FULL)) {
      w->full++;
      gw_spool_wait_room(w->s, gw_mono_ns() + 10000000ull);
      continue;
    }
    if (rc) {
      fprintf(stderr, "append: %s\n", gw_err_message(rc));
      break;
    }
    w->n++;
    if (w->nlat < w->caplat)
      w->lat[w->nlat++] = dt;
  }
  free(buf);
  return NULL;
}

static void *consumer(void *arg)
{
  struct gw_spool *s = arg;
  struct gw_spool_entry e[256];
  while (!atomic_load(&stop_consumer)) {
    size_t n = gw_spool_peek(s, 0, e, 256, 1000, 1000000ull, gw_mono_ns() + 50000000ull);
    if (n)
      gw_spool_commit(s, 0, e[n - 1].seq);
  }
  return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void run(const char *mode)
{
  char dir[600];
  snprintf(dir, sizeof dir, "%s/bench-spool-%s", opt.dir, mode);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    return;
  bool disk = strcmp(mode, "memory") != 0;
  struct gw_spool_conf c = {.mode = disk ? "disk" : "memory", .dir = dir, .max_bytes = 512u << 20, .high_water = 0.9,
                            .fsync = disk ? mode : NULL, .fsync_interval_ms = opt.interval_ms};
  struct gw_err err = {0};
  struct gw_spool *s = gw_spool_create(&c, &err);
  if (!s) {
    fprintf(stderr, "%s: %s\n", mode, err.msg);
    exit(1);
  }
  gw_spool_add_consumer(s, "postgres");
  atomic_store(&stop_consumer, false);
  pthread_t ct;
  pthread_create(&ct, NULL, consumer, s);
  struct worker *w = calloc((size_t)opt.threads, sizeof *w);
  int64_t f0 = gw_metric_get(GW_M_SPOOL_FSYNCS), fs0 = gw_metric_get(GW_M_SPOOL_FSYNC_SECONDS);
  uint64_t t0 = gw_mono_ns(), until = t0 + (uint64_t)(opt.seconds * 1e9);
  for (int i = 0; i < opt.threads; i++) {
    w[i].s = s;
    w[i].until = until;
    w[i].caplat = 1u << 20;
    w[i].lat = malloc(w[i].caplat * sizeof(uint64_t));
    pthread_create(&w[i].th, NULL, appender, &w[i]);
  }
  uint64_t n = 0, full = 0, nlat = 0;
  for (int i = 0; i < opt.threads; i++) {
    pthread_join(w[i].th, NULL);
    n += w[i].n;
    full += w[i].full;
    nlat += w[i].nlat;
  }
  double secs = (double)(gw_mono_ns() - t0) / 1e9;
  uint64_t *all = malloc((nlat ? nlat : 1) * sizeof *all), k = 0;
  for (int i = 0; i < opt.threads; i++) {
    memcpy(all + k, w[i].lat, w[i].nlat * sizeof *all);
    k += w[i].nlat;
    free(w[i].lat);
  }
  qsort(all, nlat, sizeof *all, cmp_u64);
  atomic_store(&stop_consumer, true);
  gw_spool_wake(s);
  pthread_join(ct, NULL);
  int64_t fsyncs = gw_metric_get(GW_M_SPOOL_FSYNCS) - f0;
  double fsync_ms = fsyncs ? (double)(gw_metric_get(GW_M_SPOOL_FSYNC_SECONDS) - fs0) / 1e6 / (double)fsyncs : 0;
  printf("%-9s %10.0f %9.1f %10.3f %10.3f %10.3f %8lld %10.1f %9.3f %6llu\n", mode, (double)n / secs,
         (double)n * (double)opt.entry / secs / 1e6, nlat ? (double)all[nlat / 2] / 1e6 : 0,
         nlat ? (double)all[nlat * 99 / 100] / 1e6 : 0, nlat ? (double)all[nlat - 1] / 1e6 : 0, (long long)fsyncs,
         fsyncs ? (double)n / (double)fsyncs : 0, fsync_ms, (unsigned long long)full);
  fflush(stdout);
  free(all);
  free(w);
  gw_spool_destroy(s);
  if (system(cmd) != 0)
    return;
}

int main(int argc, char **argv)
{
  int ch;
  while ((ch = getopt(argc, argv, "t:s:d:m:i:r:")) != -1) {
    switch (ch) {
    case 't': opt.threads = atoi(optarg); break;
    case 's': opt.entry = (size_t)atol(optarg); break;
    case 'd': opt.seconds = atof(optarg); break;
    case 'm': opt.modes = optarg; break;
    case 'i': opt.interval_ms = (unsigned)atoi(optarg); break;
    case 'r': opt.rate = atof(optarg); break;
    default:
      fprintf(stderr, "usage: bench_spool [-t THREADS] [-s ENTRY_BYTES] [-d SECONDS] [-m MODES] [-i INTERVAL_MS] [-r RATE] DIR\n");
      return 2;
    }
  }
  if (optind >= argc || opt.threads < 1 || opt.entry < 64) {
    fprintf(stderr, "usage: bench_spool [-t THREADS] [-s ENTRY_BYTES] [-d SECONDS] [-m MODES] [-i INTERVAL_MS] [-r RATE] DIR\n");
    return 2;
  }
  opt.dir = argv[optind];
  printf("bench_spool: %d appenders, %zu-byte entries, %.1f s per mode, interval %u ms, %s, dir %s\n", opt.threads,
         opt.entry, opt.seconds, opt.interval_ms, opt.rate > 0 ? "open loop" : "closed loop", opt.dir);
  if (opt.rate > 0)
    printf("open loop: %.1f appends/s in all at random times; latency from when each was due\n", opt.rate);
  printf("%-9s %10s %9s %10s %10s %10s %8s %10s %9s %6s\n", "mode", "appends/s", "MB/s", "p50_ms", "p99_ms", "max_ms",
         "fsyncs", "per_fsync", "fsync_ms", "full");
  char *modes = strdup(opt.modes), *save = NULL;
  for (char *m = strtok_r(modes, ",", &save); m; m = strtok_r(NULL, ",", &save))
    run(m);
  free(modes);
  return 0;
}
