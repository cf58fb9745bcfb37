/*
 * metrics.c: lock-free counters and histograms, the process metrics (read from /proc when scraped), the
 * build info, and the Prometheus text renderer.
 */
#include "core/metrics.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifndef GW_COMMIT
#define GW_COMMIT "unknown"
#endif

static _Atomic int64_t values[GW_M__COUNT];
static _Atomic int64_t rejected[GW_E__COUNT];
static _Atomic int64_t body_bytes[GW_BODY__COUNT][2]; /* [coding][decompressed] */
static const char *const body_label[GW_BODY__COUNT] = {"identity", "gzip", "deflate", "zstd", "snappy", "lz4"};

static const struct {
  const char *name, *type, *help;
} defs[] = {
#define GW_METRIC_DEF(id, name, type, help) {name, type, help},
  GW_METRICS(GW_METRIC_DEF)
#undef GW_METRIC_DEF
};

static struct {
  gw_metrics_render_fn fn;
  void *ctx;
} extra[16];
static int n_extra;
static pthread_mutex_t extra_mu = PTHREAD_MUTEX_INITIALIZER; /* renderers come and go while /metrics is served */

/* Upper bounds in ns; the last bucket is +Inf. Fine from 1 to 10 ms, where a request's answer, a stage or an
 * fsync usually falls: histogram_quantile interpolates linearly inside a bucket, so a p99 between 5 and 10
 * ms read off a single (5, 10] bucket could be off by most of 5 ms. */
#define MS 1000000ull
static const uint64_t bounds_ns[] = {MS / 4,   MS / 2,   MS,        3 * MS / 2, 2 * MS,     3 * MS,      4 * MS,
                                     5 * MS,   15 * MS / 2, 10 * MS, 15 * MS,   25 * MS,    50 * MS,     100 * MS,
                                     250 * MS, 500 * MS, 1000 * MS, 2500 * MS, 5000 * MS, 10000 * MS};
#undef MS
#define NBOUNDS (sizeof bounds_ns / sizeof bounds_ns[0])

static const struct {
  const char *name, *labels, *help;
} hdefs[] = {
#define GW_HIST_DEF(id, name, labels, help) {name, labels, help},
  GW_HISTS(GW_HIST_DEF)
#undef GW_HIST_DEF
};

static struct {
  _Atomic uint64_t bucket[NBOUNDS + 1]; /* not cumulative; +Inf last */
  _Atomic uint64_t sum_ns, count;
} hists[GW_H__COUNT];

void gw_hist_observe(enum gw_hist h, uint64_t ns)
{
  size_t i = 0;
  while (i < NBOUNDS && ns > bounds_ns[i])
    i++;
  atomic_fetch_add_explicit(&hists[h].bucket[i], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&hists[h].sum_ns, ns, memory_order_relaxed);
  atomic_fetch_add_explicit(&hists[h].count, 1, memory_order_relaxed);
}

static void render_hists(struct gw_sb *out)
{
  for (int h = 0; h < GW_H__COUNT; h++) {
    if (h == 0 || strcmp(hdefs[h - 1].name, hdefs[h].name) != 0) {
      const char *help = NULL;
      for (int k = h; k < GW_H__COUNT && !strcmp(hdefs[k].name, hdefs[h].name) && !help; k++)
        help = hdefs[k].help;
      for (int k = h; k >= 0 && !strcmp(hdefs[k].name, hdefs[h].name) && !help; k--)
        help = hdefs[k].help;
      gw_sb_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", hdefs[h].name, help ? help : "", hdefs[h].name);
    }
    const char *l = hdefs[h].labels, *sep = *l ? "," : "";
    uint64_t cum = 0;
    for (size_t i = 0; i <= NBOUNDS; i++) {
      cum += atomic_load_explicit(&hists[h].bucket[i], memory_order_relaxed);
      if (i < NBOUNDS)
        gw_sb_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", hdefs[h].name, l, sep, (double)bounds_ns[i] / 1e9,
                     (unsigned long long)cum);
      else
        gw_sb_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", hdefs[h].name, l, sep, (unsigned long long)cum);
    }
    /* the count is the +Inf bucket, so the two agree in one scrape */
    gw_sb_printf(out, "%s_sum%s%s%s %.9f\n%s_count%s%s%s %llu\n", hdefs[h].name, *l ? "{" : "", l, *l ? "}" : "",
                 (double)atomic_load_explicit(&hists[h].sum_ns, memory_order_relaxed) / 1e9, hdefs[h].name,
                 *l ? "{" : "", l, *l ? "}" : "", (unsigned long long)cum);
  }
}

/* process_* as the Prometheus client libraries name them, from /proc/self. */
static void render_process(struct gw_sb *out)
{
  long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
  char buf[2048];
  FILE *f = fopen("/proc/self/stat", "r");
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f)
    fclose(f);
  buf[n] = 0;
  /* fields after the command, which may hold spaces: from the last ')' */
  char *p = strrchr(buf, ')');
  unsigned long long utime = 0, stime = 0, start = 0, vsize = 0;
  long long rss = 0;
  if (p && tick > 0 &&
      sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu %llu %lld",
             &utime, &stime, &start, &vsize, &rss) == 5) {
    unsigned long long btime = 0;
    FILE *s = fopen("/proc/stat", "r");
    char line[256];
    while (s && fgets(line, sizeof line, s))
      if (sscanf(line, "btime %llu", &btime) == 1)
        break;
    if (s)
      fclose(s);
    /* CPU time from the process clock (nanoseconds), not the stat ticks: at 10 ms a tick a gateway
     * taking light traffic between two scrapes could show no CPU at all */
    double cpu = (double)(utime + stime) / (double)tick;
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0)
      cpu = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    gw_sb_printf(out,
                 "# HELP process_cpu_seconds_total User and system CPU time spent, in seconds\n"
                 "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.6f\n"
                 "# HELP process_resident_memory_bytes Resident memory size in bytes\n"
                 "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %lld\n"
                 "# HELP process_virtual_memory_bytes Virtual memory size in bytes\n"
                 "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %llu\n"
                 "# HELP process_start_time_seconds Start time of the process since the Unix epoch, in seconds\n"
                 "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.2f\n",
                 cpu, rss * (long long)page, vsize,
                 (double)btime + (double)start / (double)tick);
  }
  long long fds = 0;
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
      fds += de->d_name[0] != '.';
    closedir(d);
    fds--; /* the directory's own descriptor */
    gw_sb_printf(out, "# HELP process_open_fds Number of open file descriptors\n# TYPE process_open_fds gauge\n"
                      "process_open_fds %lld\n", fds);
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
    gw_sb_printf(out, "# HELP process_max_fds Maximum number of open file descriptors\n# TYPE process_max_fds gauge\n"
                      "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
}

void gw_metric_add(enum gw_metric m, int64_t n) { atomic_fetch_add_explicit(&values[m], n, memory_order_relaxed); }
void gw_metric_set(enum gw_metric m, int64_t v) { atomic_store_explicit(&values[m], v, memory_order_relaxed); }
int64_t gw_metric_get(enum gw_metric m) { return atomic_load_explicit(&values[m], memory_order_relaxed); }

void gw_metric_body_received(enum gw_body_coding c, uint64_t bytes)
{
  atomic_fetch_add_explicit(&body_bytes[c][0], (int64_t)bytes, memory_order_relaxed);
}

void gw_metric_body_decompressed(enum gw_body_coding c, uint64_t bytes)
{
  atomic_fetch_add_explicit(&body_bytes[c][1], (int64_t)bytes, memory_order_relaxed);
}

int64_t gw_metric_body_get(enum gw_body_coding c, bool decompressed)
{
  return atomic_load_explicit(&body_bytes[c][decompressed], memory_order_relaxed);
}

/* Every coding's series, zero or not: a rate over them works from the first scrape. */
static void render_bodies(struct gw_sb *out)
{
  static const char *const name[2] = {"genai_gateway_request_body_bytes_total",
                                      "genai_gateway_request_body_decompressed_bytes_total"};
  static const char *const help[2] = {
    "OTLP request body bytes as received, by content coding (Content-Encoding or grpc-encoding)",
    "OTLP request body bytes after decompression, of the bodies that decompressed, by content coding (identity: "
    "the bytes received)"};
  for (int d = 0; d < 2; d++) {
    gw_sb_printf(out, "# HELP %s %s\n# TYPE %s counter\n", name[d], help[d], name[d]);
    for (int c = 0; c < GW_BODY__COUNT; c++)
      gw_sb_printf(out, "%s{encoding=\"%s\"} %lld\n", name[d], body_label[c],
                   (long long)atomic_load_explicit(&body_bytes[c][d], memory_order_relaxed));
  }
}

void gw_metric_rejected(gw_rc reason, int64_t n)
{
  int code = -reason;
  if (code <= 0 || code >= GW_E__COUNT)
    code = GW_E_INTERNAL;
  atomic_fetch_add_explicit(&rejected[code], n, memory_order_relaxed);
}

int64_t gw_metric_rejected_get(gw_rc reason)
{
  int code = -reason;
  if (code <= 0 || code >= GW_E__COUNT)
    code = GW_E_INTERNAL;
  return atomic_load_explicit(&rejected[code], memory_order_relaxed);
}

void gw_metrics_register(gw_metrics_render_fn fn, void *ctx)
{
  pthread_mutex_lock(&extra_mu);
  if (n_extra < (int)(sizeof extra / sizeof extra[0])) {
    extra[n_extra].fn = fn;
    extra[n_extra].ctx = ctx;
    n_extra++;
  }
  pthread_mutex_unlock(&extra_mu);
}

void gw_metrics_unregister(gw_metrics_render_fn fn, void *ctx)
{
  pthread_mutex_lock(&extra_mu);
  for (int i = 0; i < n_extra; i++) {
    if (extra[i].fn == fn && extra[i].ctx == ctx) {
      memmove(&extra[i], &extra[i + 1], (size_t)(n_extra - i - 1) * sizeof extra[0]);
      n_extra--;
      break;
    }
  }
  pthread_mutex_unlock(&extra_mu);
}

void gw_metrics_render(struct gw_sb *out)
{
  for (int i = 0; i < GW_M__COUNT; i++) {
    gw_sb_printf(out, "# HELP %s %s\n# TYPE %s %s\n", defs[i].name, defs[i].help, defs[i].name, defs[i].type);
    if (i == GW_M_PG_BATCH_SECONDS || i == GW_M_SPOOL_FSYNC_SECONDS)
      gw_sb_printf(out, "%s %.6f\n", defs[i].name, (double)gw_metric_get(i) / 1e9);
    else
      gw_sb_printf(out, "%s %lld\n", defs[i].name, (long long)gw_metric_get(i));
  }
  gw_sb_printf(out, "# HELP genai_gateway_build_info The running gateway's version and source commit (always 1)\n"
                   "# TYPE genai_gateway_build_info gauge\ngenai_gateway_build_info{version=\"%s\",commit=\"%s\"} 1\n",
               GW_VERSION, GW_COMMIT);
  render_hists(out);
  render_bodies(out);
  render_process(out);
  gw_sb_puts(out, "# HELP genai_gateway_spans_rejected_total Spans rejected, by reason\n"
                  "# TYPE genai_gateway_spans_rejected_total counter\n");
  for (int c = 1; c < GW_E__COUNT; c++) {
    int64_t v = atomic_load_explicit(&rejected[c], memory_order_relaxed);
    if (v)
      gw_sb_printf(out, "genai_gateway_spans_rejected_total{reason=\"%s\"} %lld\n", gw_err_label(-c), (long long)v);
  }
  pthread_mutex_lock(&extra_mu);
  for (int i = 0; i < n_extra; i++)
    extra[i].fn(out, extra[i].ctx);
  pthread_mutex_unlock(&extra_mu);
}
