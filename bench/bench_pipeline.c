/*
 * bench_pipeline.c: the receive path's CPU cost, in process, on one thread. Not part of the gateway.
 *
 *   bench_pipeline [-n ITERATIONS] BODY.pb [BODY.json]
 *
 * Runs the stages gw_request_traces runs for one request (gateway/receive/request.c), minus the spool
 * append and the network, over the same body ITERATIONS times (default 2000), and prints spans per second
 * on this one core for:
 *   unpack_malloc     protobuf-c unpack with its default allocator (+ free_unpacked): the baseline
 *   unpack_arena      protobuf-c unpack into the arena: the arena's gain over malloc/free
 *   decode            gw_decode_traces (pre-scan for depth + unpack into the arena + UTF-8 repair)
 *   normalize         gw_normalize_traces alone (timed around the call; decode runs untimed before it)
 *   receive           decode + normalize + gw_records_encode + re-pack of the accepted spans: the whole
 *                     receive path with one reused arena (gw_arena_reset between requests)
 *   receive_fresh     the same with an arena created and destroyed per request, as the receivers do today
 *   decode_json       gw_decode_traces on the OTLP/JSON body, when one is given
 * Each figure is the best of three rounds (less noise from the load tool or Postgres sharing the cores).
 * Output lines are "name spans_per_s=N us_per_req=N MB_per_s=N" so bench/run.sh can pick them up.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/arena.h"
#include "decode/decode.h"
#include "normalize/normalize.h"
#include "normalize/record.h"

#define ROUNDS 3
#define ARENA_CAP ((size_t)256 << 20)

struct body {
  unsigned char *p;
  size_t len;
  uint32_t spans;
};

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int read_body(const char *path, struct body *b)
{
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "bench_pipeline: %s: %s\n", path, strerror(errno));
    return -1;
  }
  int rc = -1;
  if (fseek(f, 0, SEEK_END) != 0)
    goto out;
  long n = ftell(f);
  if (n <= 0 || fseek(f, 0, SEEK_SET) != 0)
    goto out;
  b->p = malloc((size_t)n);
  if (!b->p || fread(b->p, 1, (size_t)n, f) != (size_t)n)
    goto out;
  b->len = (size_t)n;
  rc = 0;
out:
  if (rc)
    fprintf(stderr, "bench_pipeline: %s: cannot read\n", path);
  fclose(f);
  return rc;
}

static uint32_t count_spans(const GwTraceRequest *req)
{
  uint32_t n = 0;
  for (size_t i = 0; i < req->n_resource_spans; i++)
    for (size_t j = 0; j < req->resource_spans[i]->n_scope_spans; j++)
      n += (uint32_t)req->resource_spans[i]->scope_spans[j]->n_spans;
  return n;
}

static const struct gw_decode_limits limits = {64u << 20, 32};

static void die_rc(const char *what, gw_rc rc, const struct gw_err *err)
{
  fprintf(stderr, "bench_pipeline: %s failed: %s (%s)\n", what, gw_err_name(rc), err ? err->msg : "");
  exit(1);
}

static void normalize_opts(struct gw_normalize_opts *o)
{
  uint64_t now = gw_now_ns(), day = 86400ull * 1000000000ull;
  memset(o, 0, sizeof *o);
  o->min_start_ns = now - 90 * day;
  o->max_start_ns = now + day;
}

/* One request through decode -> normalize -> encode records -> re-pack; returns records built. */
static size_t receive_once(struct gw_arena *a, const struct body *b, const struct gw_normalize_opts *no)
{
  struct gw_err err = {0};
  GwTraceRequest *req;
  gw_rc rc = gw_decode_traces(a, GW_ENC_PROTOBUF, b->p, b->len, &limits, &req, &err);
  if (rc)
    die_rc("decode", rc, &err);
  struct gw_normalize_result res;
  memset(&res, 0, sizeof res);
  rc = gw_normalize_traces(req, a, no, &res, &err);
  if (rc)
    die_rc("normalize", rc, &err);
  if (res.nrejected)
    die_rc("normalize (spans rejected: check the payload's start times)", GW_ERR(INVALID), &err);
  struct gw_sb sb;
  gw_sb_init(&sb, a);
  rc = gw_records_encode(res.records, res.nrecords, &sb);
  if (rc)
    die_rc("records_encode", rc, NULL);
  size_t plen = gw_pb_trace_request_size(req);
  uint8_t *pb = gw_arena_alloc(a, plen);
  if (!pb)
    die_rc("re-pack", GW_ERR(TOO_LARGE), NULL);
  gw_pb_trace_request_pack(req, pb);
  return res.nrecords;
}

enum stage { S_UNPACK_MALLOC, S_UNPACK_ARENA, S_DECODE, S_NORMALIZE, S_RECEIVE, S_RECEIVE_FRESH, S_DECODE_JSON };

/* Seconds spent in the timed part of stage st over n requests. */
static double run_stage(enum stage st, const struct body *b, int n)
{
  struct gw_arena *a = gw_arena_create(ARENA_CAP);
  struct gw_normalize_opts no;
  normalize_opts(&no);
  struct gw_err err = {0};
  double timed = 0, t0 = now_s();
  for (int i = 0; i < n; i++) {
    GwTraceRequest *req;
    gw_rc rc;
    switch (st) {
    case S_UNPACK_MALLOC:
      req = gw_pb_trace_request_unpack(NULL, b->len, b->p);
      if (!req)
        die_rc("unpack", GW_ERR(DECODE), NULL);
      opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(req, NULL);
      break;
    case S_UNPACK_ARENA:
      req = gw_pb_trace_request_unpack(gw_arena_pb_allocator(a), b->len, b->p);
      if (!req)
        die_rc("unpack", GW_ERR(DECODE), NULL);
      break;
    case S_DECODE:
    case S_DECODE_JSON:
      rc = gw_decode_traces(a, st == S_DECODE ? GW_ENC_PROTOBUF : GW_ENC_JSON, b->p, b->len, &limits, &req, &err);
      if (rc)
        die_rc("decode", rc, &err);
      break;
    case S_NORMALIZE: {
      rc = gw_decode_traces(a, GW_ENC_PROTOBUF, b->p, b->len, &limits, &req, &err);
      if (rc)
        die_rc("decode", rc, &err);
      struct gw_normalize_result res;
      memset(&res, 0, sizeof res);
      double s = now_s();
      rc = gw_normalize_traces(req, a, &no, &res, &err);
      timed += now_s() - s;
      if (rc)
        die_rc("normalize", rc, &err);
      break;
    }
    case S_RECEIVE:
      receive_once(a, b, &no);
      break;
    case S_RECEIVE_FRESH: {
      struct gw_arena *fresh = gw_arena_create(ARENA_CAP);
      receive_once(fresh, b, &no);
      gw_arena_destroy(fresh);
      break;
    }
    }
    gw_arena_reset(a);
  }
  double total = now_s() - t0;
  gw_arena_destroy(a);
  return st == S_NORMALIZE ? timed : total;
}

static void report(const char *name, enum stage st, const struct body *b, int n)
{
  double best = 0;
  run_stage(st, b, n / 10 + 1); /* warm caches and the allocator */
  for (int r = 0; r < ROUNDS; r++) {
    double s = run_stage(st, b, n);
    if (r == 0 || s < best)
      best = s;
  }
  double reqs = n / best;
  printf("%-14s spans_per_s=%.0f us_per_req=%.1f MB_per_s=%.1f\n", name, reqs * b->spans, 1e6 / reqs,
         reqs * (double)b->len / 1e6);
  fflush(stdout);
}

int main(int argc, char **argv)
{
  int n = 2000, opt;
  while ((opt = getopt(argc, argv, "n:")) != -1) {
    if (opt == 'n' && atoi(optarg) > 0) {
      n = atoi(optarg);
    } else {
      fprintf(stderr, "usage: bench_pipeline [-n ITERATIONS] BODY.pb [BODY.json]\n");
      return 2;
    }
  }
  if (optind >= argc || argc - optind > 2) {
    fprintf(stderr, "usage: bench_pipeline [-n ITERATIONS] BODY.pb [BODY.json]\n");
    return 2;
  }
  gw_normalize_init();
  struct body pb = {0}, js = {0};
  if (read_body(argv[optind], &pb))
    return 1;

  /* Sanity: the body decodes, every span is a GenAI span, nothing is rejected. */
  struct gw_arena *a = gw_arena_create(ARENA_CAP);
  struct gw_normalize_opts no;
  normalize_opts(&no);
  struct gw_err err = {0};
  GwTraceRequest *req;
  gw_rc rc = gw_decode_traces(a, GW_ENC_PROTOBUF, pb.p, pb.len, &limits, &req, &err);
  if (rc)
    die_rc("decode", rc, &err);
  pb.spans = count_spans(req);
  size_t nrec = receive_once(a, &pb, &no);
  printf("payload        bytes=%zu spans=%u records=%zu arena_bytes=%zu iterations=%d\n", pb.len, pb.spans, nrec,
         gw_arena_used(a), n);
  gw_arena_destroy(a);
  if (nrec != pb.spans) {
    fprintf(stderr, "bench_pipeline: %zu records from %u spans: the payload is not all GenAI spans\n", nrec,
            pb.spans);
    return 1;
  }

  report("unpack_malloc", S_UNPACK_MALLOC, &pb, n);
  report("unpack_arena", S_UNPACK_ARENA, &pb, n);
  report("decode", S_DECODE, &pb, n);
  report("normalize", S_NORMALIZE, &pb, n);
  report("receive", S_RECEIVE, &pb, n);
  report("receive_fresh", S_RECEIVE_FRESH, &pb, n);
  if (optind + 1 < argc) {
    if (read_body(argv[optind + 1], &js))
      return 1;
    js.spans = pb.spans;
    report("decode_json", S_DECODE_JSON, &js, n / 4 + 1);
  }
  free(pb.p);
  free(js.p);
  return 0;
}
