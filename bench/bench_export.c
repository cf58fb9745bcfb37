/*
 * bench_export.c: exporter throughput, in process: how many spans per second one exporter delivers to a
 * local receiver (bench/otlp_sink.c) when it has a backlog. Not part of the gateway.
 *
 *   bench_export [-n ENTRIES] [-x EXPORTER] [-z 0|1] HTTP_PORT GRPC_PORT BODY.pb
 *
 * BODY.pb (gen_payload's, 100 GenAI spans) is run once through the receive pipeline (decode, normalize,
 * cost, redact, encode: gw_request_traces) into a memory spool; its entry is then appended ENTRIES times
 * more (default 300; bytes copied, as the receivers append), and the clock runs from the first append
 * until the exporter's sink has delivered every span. One line per run:
 *   "<exporter> protocol=<http|grpc> gzip=<0|1> spans=N seconds=S spans_per_s=R batches=B busy_seconds=S
 *    busy_spans_per_s=R"
 * busy is the time the exporter spent in its sends (genai_gateway_exporter_batch_seconds_sum): its own cost
 * per span, apart from the appends and the batch window.
 * EXPORTER: langfuse (HTTP, with its transform), signoz (gRPC), otlp (HTTP, forwarded byte for byte), or
 * all (each in turn). Uses the exporters' default batching (512 spans, 1 s) and gzip as -z says (default on).
 */
#include <getopt.h>
#include <grpc/grpc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/conf.h"
#include "core/log.h"
#include "core/metrics.h"
#include "cost/cost.h"
#include "exporters.h"
#include "normalize/normalize.h"
#include "receive/request.h"
#include "redact/redact.h"
#include "sink/sink.h"

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned char *read_all(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *p = malloc((size_t)n);
  *len = fread(p, 1, (size_t)n, f);
  fclose(f);
  return p;
}

static void set_str(char **slot, const char *v)
{
  free(*slot);
  *slot = strdup(v);
}

static int run(const char *which, int gzip, size_t entries, unsigned http_port, unsigned grpc_port,
               const unsigned char *body, size_t body_len)
{
  struct gw_err err = {0};
  struct gw_conf *conf = NULL;
  if (gw_conf_load(NULL, &conf, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  conf->spool.max_bytes = 2ull << 30;
  char url[64], addr[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u", http_port);
  snprintf(addr, sizeof addr, "127.0.0.1:%u", grpc_port);
  const struct gw_exporter_type *types[] = {&gw_exporter_langfuse, &gw_exporter_signoz, &gw_exporter_otlp};
  const struct gw_exporter_type *type = NULL;
  for (size_t i = 0; i < 3; i++)
    if (!strcmp(types[i]->name, which))
      type = types[i];
  if (!type) {
    fprintf(stderr, "unknown exporter %s\n", which);
    return 2;
  }
  struct gw_conf_exporter *e = &conf->exporters[type->conf_id];
  set_str(&e->endpoint, type == &gw_exporter_signoz ? addr : url);
  e->gzip = gzip != 0;
  set_str(&e->public_key, "pk-lf-bench");
  set_str(&e->secret_key, "sk-lf-bench");

  struct gw_spool_conf sc = {.mode = "memory", .max_bytes = conf->spool.max_bytes, .high_water = 0.9};
  struct gw_spool *spool = gw_spool_create(&sc, &err);
  struct gw_prices *prices = gw_prices_load(NULL, NULL, &err);
  struct gw_redactor *red = gw_redactor_from_conf(conf, &err);
  if (!spool || !prices || !red) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  /* One pass of the real pipeline into a scratch spool gives the entry the exporter will read. */
  struct gw_spool *scratch = gw_spool_create(&sc, &err);
  int sc_id = gw_spool_add_consumer(scratch, "scratch");
  struct gw_pipeline p;
  gw_pipeline_init(&p, conf, scratch);
  p.forward = true; /* the entry an exporter reads carries the re-packed request */
  p.prices = prices;
  p.redactor = red;
  struct gw_arena *a = gw_arena_create(0);
  struct gw_request_outcome o;
  if (gw_request_traces(&p, a, GW_ENC_PROTOBUF, GW_CODING_NONE, body, body_len, &o)) {
    fprintf(stderr, "pipeline: %s\n", o.err.msg);
    return 1;
  }
  struct gw_spool_entry ent;
  if (gw_spool_peek(scratch, sc_id, &ent, 1, 1, 0, 0) != 1)
    return 1;

  struct gw_exporters *x = gw_exporters_start(conf, &type, 1, spool, &err);
  if (!x) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  struct gw_spool_in in = {ent.signal, ent.flags, ent.nspans, ent.nrecords, ent.otlp, ent.otlp_len, ent.records, ent.records_len, false};
  double t0 = now_s();
  for (size_t i = 0; i < entries; i++)
    if (gw_spool_append(spool, &in)) {
      fprintf(stderr, "spool full at entry %zu\n", i);
      return 1;
    }
  uint64_t want = (uint64_t)entries * ent.nspans;
  /* Delivered = the sink's count; read it through the exporter's /metrics renderer. */
  double t1 = 0;
  for (;;) {
    struct gw_arena *ma = gw_arena_create(1 << 20);
    struct gw_sb sb;
    gw_sb_init(&sb, ma);
    gw_metrics_render(&sb);
    char *txt = gw_sb_finish(&sb);
    char key[128];
    snprintf(key, sizeof key, "genai_gateway_exporter_spans_sent_total{exporter=\"%s\",signal=\"traces\"} ", which);
    const char *at = txt ? strstr(txt, key) : NULL;
    unsigned long long sent = at ? strtoull(at + strlen(key), NULL, 10) : 0;
    snprintf(key, sizeof key, "genai_gateway_exporter_batch_seconds_count{exporter=\"%s\"} ", which);
    at = txt ? strstr(txt, key) : NULL;
    unsigned long long batches = at ? strtoull(at + strlen(key), NULL, 10) : 0;
    snprintf(key, sizeof key, "genai_gateway_exporter_batch_seconds_sum{exporter=\"%s\"} ", which);
    at = txt ? strstr(txt, key) : NULL;
    double busy = at ? strtod(at + strlen(key), NULL) : 0;
    gw_arena_destroy(ma);
    if (sent >= want) {
      t1 = now_s();
      printf("%s protocol=%s gzip=%d spans=%llu seconds=%.3f spans_per_s=%.0f batches=%llu busy_seconds=%.3f "
             "busy_spans_per_s=%.0f\n",
             which, type == &gw_exporter_signoz ? "grpc" : "http", gzip, (unsigned long long)want, t1 - t0,
             (double)want / (t1 - t0), batches, busy, busy > 0 ? (double)want / busy : 0);
      break;
    }
    if (now_s() - t0 > 300) {
      fprintf(stderr, "%s: only %llu of %llu spans delivered after 300 s\n", which, sent, (unsigned long long)want);
      break;
    }
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
  }
  gw_spool_close(spool);
  gw_exporters_stop(x);
  gw_spool_destroy(spool);
  gw_spool_destroy(scratch);
  gw_arena_destroy(a);
  gw_prices_destroy(prices);
  gw_redactor_destroy(red);
  gw_conf_destroy(conf);
  return t1 > 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
  size_t entries = 300;
  const char *which = "all";
  int gzip = 1, c;
  while ((c = getopt(argc, argv, "n:x:z:")) != -1) {
    if (c == 'n')
      entries = strtoul(optarg, NULL, 10);
    else if (c == 'x')
      which = optarg;
    else if (c == 'z')
      gzip = atoi(optarg);
    else
      return 2;
  }
  if (argc - optind != 3) {
    fprintf(stderr, "usage: bench_export [-n ENTRIES] [-x langfuse|signoz|otlp|all] [-z 0|1] HTTP_PORT GRPC_PORT BODY.pb\n");
    return 2;
  }
  unsigned hp = (unsigned)atoi(argv[optind]), gp = (unsigned)atoi(argv[optind + 1]);
  size_t len = 0;
  unsigned char *body = read_all(argv[optind + 2], &len);
  if (!body) {
    fprintf(stderr, "cannot read %s\n", argv[optind + 2]);
    return 1;
  }
  gw_log_set_level(GW_LOG_WARN);
  grpc_init();
  gw_normalize_init();
  int rc = 0;
  static const char *const all[] = {"otlp", "signoz", "langfuse"};
  for (size_t i = 0; i < 3; i++)
    if (!strcmp(which, "all") || !strcmp(which, all[i]))
      rc |= run(all[i], gzip, entries, hp, gp, body, len);
  free(body);
  grpc_shutdown();
  return rc;
}
