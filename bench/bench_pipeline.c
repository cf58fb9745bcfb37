/*
 * bench_pipeline.c: the receive path's CPU cost, in process, on one thread. Not part of the gateway.
 *
 *   bench_pipeline [-n ITERATIONS] [-s STAGE] [-w] [-p] [-u] [-c] [-m K] [-g USEC] BODY.pb [BODY.json]
 *
 * Runs the stages gw_request_traces runs for one request (gateway/receive/request.c), minus the spool
 * append and the network, over the same body ITERATIONS times (default 2000), and prints spans per second
 * on this one core for:
 *   unpack_malloc     protobuf-c unpack with its default allocator (+ free_unpacked): the baseline
 *   unpack_arena      protobuf-c unpack into the arena: the arena's gain over malloc/free
 *   decode            gw_decode_traces (the one-pass unpack into the arena, pb_unpack.c; with -u the generic
 *                     path: pre-scan for depth + protobuf-c unpack into the arena + UTF-8 repair)
 *   normalize         gw_normalize_traces alone (timed around the call; decode runs untimed before it)
 *   decode_normalize  decode + normalize: the receive + decode + normalize line, minus the network
 *   cost              gw_cost_apply + gw_cost_annotate_spans alone (shipped price table)
 *   redact            gw_redact_request + gw_redact_records alone (default policy, all detectors); its
 *                     MB_per_s counts the text it scans (string attribute values of the request and the
 *                     records' text fields), not the body
 *   repack            the re-pack of the forwarded request alone (gw_pb_pack; the stages before it untimed)
 *   receive           decode + normalize + cost + redact + gw_records_encode + re-pack of the accepted
 *                     spans: the whole receive path with one reused arena (gw_arena_reset between requests)
 *   receive_gzip      receive on the body as a gzip client sends it (level 6), decompressed first (gw_decompress
 *                     with the receivers' default caps); MB_per_s counts its compressed bytes
 *   receive_zstd      the same with a streamed zstd frame (level 3, no size stated)
 *   receive_fresh     receive with an arena created and destroyed per request: the cost of memory that is
 *                     not warm (a receiver thread's arena keeps its chunks and uses the warm pool)
 *   decode_json       gw_decode_traces on the OTLP/JSON body, when one is given
 *   normalize_json, cost_json, redact_json, repack_json
 *                     the stages above on the tree decoded from the OTLP/JSON body (what OTLP/JSON costs past
 *                     its decode: no span bytes to copy in the re-pack, for one)
 *   receive_json      receive on the OTLP/JSON body (decoded from JSON, re-packed as protobuf)
 *   receive_turns     with -m K: receive over the K bodies BODY.pb names with its "000" counted up (000,
 *                     001, ...) in turn, with the chat history kept between requests
 *                     (receivers.history_cache_bytes, default 4 MiB) and emptied before each round of the K
 *                     (untimed): `gen_payload -n 4 -t` writes a chat's four calls into four bodies, as its
 *                     turns reach the gateway in separate exports. The stages above run without that cache.
 *   receive_turns_nocache  the same without the cache: what it saves, in one run
 * -s STAGE runs that one stage only (to profile it with perf record); -s A,B those stages.
 * -w walks every record's attributes JSON as text in the redact stages, as before they were rendered from the
 *    request pass's results (gw_redact_walk_attributes): the same binary times both. Either way the two are
 *    checked to give the same bytes on the payload first.
 * -p re-packs with protobuf-c's size pass and pack (as before gw_pb_pack), in repack and the receive stages;
 *    gw_pb_pack is checked to give protobuf-c's bytes on the payload first.
 * -c packs every span of the forwarded request (gw_pb_splice off) instead of copying the unchanged ones from
 *    the body, as before gw_pb_pack_spliced; the copy is checked to give gw_pb_pack's bytes on the payload.
 * -u decodes protobuf with the generic path only (gw_decode_pb_fast off: pre-scan + protobuf-c + UTF-8 repair,
 *    as before the one-pass unpack), in decode and the receive stages; the one-pass unpack is checked to give
 *    the generic path's tree on the payload first.
 * -g USEC sleeps USEC microseconds between iterations (not timed): a request that meets an idle core, as a
 *    gateway receiving a request every few milliseconds does, instead of one that follows the last at once
 *    with its caches and clock warm (bench/README.md, "Measured again after the receive-line work, and a
 *    request on an idle core").
 * Time is this thread's CPU time, and each figure is the best of three rounds (less noise from the load
 * tool or Postgres sharing the cores).
 * Output lines are "name spans_per_s=N us_per_req=N MB_per_s=N" so bench/run.sh can pick them up.
 */
#include <errno.h>
#include <getopt.h>
#include <zlib.h>
#include <zstd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../tests/pb_equal.h"
#include "core/arena.h"
#include "cost/cost.h"
#include "decode/decode.h"
#include "normalize/normalize.h"
#include "normalize/record.h"
#include "redact/redact.h"

static struct gw_prices *prices;
static unsigned gap_us; /* -g USEC: a pause between iterations (untimed) */
static struct gw_redactor *redactor;
static size_t scanned_bytes; /* text the redactor scans per request (see the top comment) */

#define ROUNDS 3
#define ARENA_CAP ((size_t)256 << 20)

struct body {
  unsigned char *p;
  size_t len;
  uint32_t spans;
  enum gw_encoding enc;
  enum gw_coding coding; /* p is compressed so (receive stages only: they decompress it first) */
};

/* This thread's CPU time: spans per second of one core, whatever else runs on the machine (time spent
 * descheduled does not count; caches shared with other work still do). */
static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
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

static const struct gw_decode_limits limits = {.max_bytes = 64u << 20, .max_depth = 32};

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

static bool pack_protobuf_c; /* -p: re-pack with protobuf-c's size pass and pack, as before gw_pb_pack */

static uint8_t *repack(struct gw_arena *a, const GwTraceRequest *req, const struct gw_pb_raw *raw, size_t *plen)
{
  if (!pack_protobuf_c)
    return gw_pb_pack_spliced(a, req, raw, plen);
  *plen = gw_pb_trace_request_size(req);
  uint8_t *pb = gw_arena_alloc(a, *plen ? *plen : 1);
  if (pb)
    gw_pb_trace_request_pack(req, pb);
  return pb;
}

struct receive_out {
  const char *recs;
  size_t rlen, plen;
  const uint8_t *pb;
};

/* One request through decode -> normalize -> encode records -> re-pack; returns records built (and what
 * it produced, when out is given). */
static size_t receive_run(struct gw_arena *a, const struct body *b, const struct gw_normalize_opts *no,
                          struct receive_out *out)
{
  struct gw_err err = {0};
  GwTraceRequest *req;
  struct gw_pb_raw raw;
  const void *body = b->p;
  size_t len = b->len;
  if (b->coding) { /* as request.c does, with the receivers' default caps */
    const struct gw_decode_limits dl = {.max_bytes = 64u << 20, .max_ratio = 200, .ratio_min_bytes = 1u << 20};
    void *plain;
    gw_rc zr = gw_decompress(a, b->coding, b->p, b->len, &dl, &plain, &len, &err);
    if (zr)
      die_rc("decompress", zr, &err);
    body = plain;
  }
  gw_rc rc = gw_decode_traces_raw(a, b->enc, body, len, &limits, &req, &raw, &err);
  if (rc)
    die_rc("decode", rc, &err);
  struct gw_normalize_result res;
  memset(&res, 0, sizeof res);
  rc = gw_normalize_traces(req, a, no, &res, &err);
  if (rc)
    die_rc("normalize", rc, &err);
  if (res.nrejected)
    die_rc("normalize (spans rejected: check the payload's start times)", GW_ERR(INVALID), &err);
  gw_cost_apply(prices, res.records, res.nrecords);
  if ((rc = gw_cost_annotate_spans(a, res.records, res.nrecords)))
    die_rc("cost annotate", rc, NULL);
  struct gw_redact_memo *memo = gw_redact_memo_create(a);
  gw_redact_memo_limit(memo, redactor, len, NULL, NULL);
  if ((rc = gw_redact_request_raw(redactor, req, a, memo, &raw)) ||
      (rc = gw_redact_records(redactor, res.records, res.nrecords, a, memo)))
    die_rc("redact", rc, NULL);
  struct gw_sb sb;
  gw_sb_init(&sb, a);
  rc = gw_records_encode(res.records, res.nrecords, &sb);
  if (rc)
    die_rc("records_encode", rc, NULL);
  size_t plen;
  uint8_t *pb = repack(a, req, &raw, &plen);
  if (!pb)
    die_rc("re-pack", GW_ERR(TOO_LARGE), NULL);
  if (out)
    *out = (struct receive_out){sb.buf, sb.len, plen, pb};
  return res.nrecords;
}

static size_t receive_once(struct gw_arena *a, const struct body *b, const struct gw_normalize_opts *no)
{
  return receive_run(a, b, no, NULL);
}

/* The records' attributes JSON rendered from the request pass (the default) and walked as text (-w) must
 * give the same bytes: checked once on the payload before timing. */
static int check_rendered_same(const struct body *b, const struct gw_normalize_opts *no)
{
  struct gw_arena *a1 = gw_arena_create(ARENA_CAP), *a2 = gw_arena_create(ARENA_CAP);
  bool walk = gw_redact_walk_attributes;
  struct receive_out o1, o2;
  gw_redact_walk_attributes = true;
  receive_run(a1, b, no, &o1);
  gw_redact_walk_attributes = false;
  receive_run(a2, b, no, &o2);
  gw_redact_walk_attributes = walk;
  int rc = o1.rlen == o2.rlen && !memcmp(o1.recs, o2.recs, o1.rlen) && o1.plen == o2.plen &&
               !memcmp(o1.pb, o2.pb, o1.plen)
             ? 0
             : -1;
  if (rc)
    fprintf(stderr, "bench_pipeline: the rendered attributes differ from the walked ones on this payload\n");
  gw_arena_destroy(a1);
  gw_arena_destroy(a2);
  return rc;
}

/* Decode, normalize, cost and redaction of b, untimed: the request as it is re-packed; dies on failure. */
static GwTraceRequest *stages(struct gw_arena *a, const struct body *b, const struct gw_normalize_opts *no,
                              struct gw_pb_raw *raw)
{
  struct gw_err err = {0};
  GwTraceRequest *req;
  gw_rc rc = gw_decode_traces_raw(a, b->enc, b->p, b->len, &limits, &req, raw, &err);
  struct gw_normalize_result res;
  memset(&res, 0, sizeof res);
  if (!rc)
    rc = gw_normalize_traces(req, a, no, &res, &err);
  if (rc)
    die_rc("decode/normalize", rc, &err);
  gw_cost_apply(prices, res.records, res.nrecords);
  struct gw_redact_memo *memo = gw_redact_memo_create(a);
  gw_redact_memo_limit(memo, redactor, b->len, NULL, NULL);
  if ((rc = gw_cost_annotate_spans(a, res.records, res.nrecords)) ||
      (rc = gw_redact_request_raw(redactor, req, a, memo, raw)) ||
      (rc = gw_redact_records(redactor, res.records, res.nrecords, a, memo)))
    die_rc("cost/redact", rc, NULL);
  return req;
}

/* The one-pass unpack must take the payload whole (no fallback) and give the generic path's tree: checked
 * once before timing. */
static int check_unpack_same(const struct body *b)
{
  struct gw_arena *a = gw_arena_create(ARENA_CAP);
  struct gw_err e1 = {0}, e2 = {0};
  GwTraceRequest *r1, *r2;
  int rc1 = gw_pb_unpack_traces(a, b->p, b->len, limits.max_depth, &r1, &e1);
  gw_rc rc2 = gw_decode_pb_traces_generic(a, b->p, b->len, &limits, &r2, &e2);
  char why[2048] = "";
  int same = rc1 == GW_OK && rc2 == GW_OK && pb_equal(&r1->base, &r2->base, why, sizeof why) ? 0 : -1;
  if (same)
    fprintf(stderr, "bench_pipeline: the one-pass unpack (%d) and the generic path (%d) differ on this payload%s%s\n",
            rc1, rc2, *why ? ": " : "", why);
  gw_arena_destroy(a);
  return same;
}

/* The re-pack (gw_pb_pack) must give protobuf-c's bytes for the request as the stages leave it: checked
 * once on the payload before timing. */
static int check_pack_same(const struct body *b, const struct gw_normalize_opts *no)
{
  struct gw_arena *a = gw_arena_create(ARENA_CAP);
  struct gw_pb_raw raw;
  GwTraceRequest *req = stages(a, b, no, &raw);
  size_t n = gw_pb_trace_request_size(req), plen, slen;
  uint8_t *want = gw_arena_alloc(a, n ? n : 1), *pb = gw_pb_pack(a, &req->base, &plen),
          *sp = gw_pb_pack_spliced(a, req, &raw, &slen);
  if (!want || !pb || !sp)
    die_rc("re-pack", GW_ERR(TOO_LARGE), NULL);
  gw_pb_trace_request_pack(req, want);
  int same = n == plen && !memcmp(want, pb, n) ? 0 : -1;
  if (same)
    fprintf(stderr, "bench_pipeline: gw_pb_pack's bytes differ from protobuf-c's on this payload\n");
  /* the payload is written in field order without defaults (gen_payload packs it with protobuf-c), so the
   * spans copied from the body must give the very same bytes */
  if (b->enc == GW_ENC_PROTOBUF && (slen != plen || memcmp(sp, pb, plen))) {
    fprintf(stderr, "bench_pipeline: the re-pack copying unchanged spans differs from gw_pb_pack on this payload\n");
    same = -1;
  }
  if (b->enc == GW_ENC_PROTOBUF && gw_pb_splice && !raw.n) {
    fprintf(stderr, "bench_pipeline: the decode recorded no span to copy on this payload\n");
    same = -1;
  }
  gw_arena_destroy(a);
  return same;
}

enum stage { S_UNPACK_MALLOC, S_UNPACK_ARENA, S_DECODE, S_NORMALIZE, S_DECODE_NORMALIZE, S_COST, S_REDACT, S_REPACK,
             S_RECEIVE, S_RECEIVE_FRESH, S_DECODE_JSON, S_RECEIVE_JSON, S_RECEIVE_TURNS, S_RECEIVE_TURNS_NOCACHE };

/* -m K: the bodies of a chat's successive turns, and the cache receive_turns keeps between them. */
#define MAX_TURNS 16
static struct body turns[MAX_TURNS];
static int nturns;
static struct gw_hist_cache *turns_cache;

static size_t kv_text(GwKeyValue *const *kv, size_t n)
{
  size_t t = 0;
  for (size_t i = 0; i < n; i++)
    if (kv[i]->value && kv[i]->value->value_case == GW_AV_STRING)
      t += strlen(kv[i]->value->string_value);
  return t;
}

/* String attribute bytes of the request plus the records' text fields: what redaction reads. */
static size_t text_bytes(const GwTraceRequest *req, const struct gw_record *r, size_t n)
{
  size_t t = 0;
  for (size_t i = 0; i < req->n_resource_spans; i++) {
    const GwResourceSpans *rs = req->resource_spans[i];
    if (rs->resource)
      t += kv_text(rs->resource->attributes, rs->resource->n_attributes);
    for (size_t j = 0; j < rs->n_scope_spans; j++)
      for (size_t k = 0; k < rs->scope_spans[j]->n_spans; k++) {
        const GwSpan *sp = rs->scope_spans[j]->spans[k];
        t += kv_text(sp->attributes, sp->n_attributes);
        for (size_t e = 0; e < sp->n_events; e++)
          t += kv_text(sp->events[e]->attributes, sp->events[e]->n_attributes);
      }
  }
  for (size_t i = 0; i < n; i++) {
    const char *f[] = {r[i].prompt_content, r[i].response_content, r[i].system_prompt, r[i].attributes, r[i].resource};
    for (size_t k = 0; k < sizeof f / sizeof f[0]; k++)
      t += f[k] ? strlen(f[k]) : 0;
  }
  return t;
}

/* Decode b and normalize it, both untimed apart from the caller's clock; dies on failure. */
static void decode_normalize(struct gw_arena *a, const struct body *b, const struct gw_normalize_opts *no,
                             GwTraceRequest **req, struct gw_normalize_result *res)
{
  struct gw_err err = {0};
  gw_rc rc = gw_decode_traces(a, b->enc, b->p, b->len, &limits, req, &err);
  if (rc)
    die_rc("decode", rc, &err);
  memset(res, 0, sizeof *res);
  if ((rc = gw_normalize_traces(*req, a, no, res, &err)))
    die_rc("normalize", rc, &err);
}

/* Seconds spent in the timed part of stage st over n requests. */
static double run_stage(enum stage st, const struct body *b, int n)
{
  struct gw_arena *a = gw_arena_create(ARENA_CAP);
  /* as a receiver thread's arena with the warm pool (gw_arena_thread): a request's memory is faulted in
   * once, not on every request, also when it takes more than reset's default 4 MiB */
  gw_arena_keep(a, GW_ARENA_WARM_MAX);
  struct gw_normalize_opts no;
  normalize_opts(&no);
  struct gw_err err = {0};
  double timed = 0, untimed = 0, t0 = now_s();
  if (st == S_RECEIVE_TURNS || st == S_RECEIVE_TURNS_NOCACHE)
    n = (n + nturns - 1) / nturns * nturns; /* whole rounds */
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
      rc = gw_decode_traces(a, b->enc, b->p, b->len, &limits, &req, &err);
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
    case S_DECODE_NORMALIZE: {
      struct gw_normalize_result res;
      decode_normalize(a, b, &no, &req, &res);
      break;
    }
    case S_COST:
    case S_REDACT: {
      struct gw_normalize_result res;
      decode_normalize(a, b, &no, &req, &res);
      double s = now_s();
      if (st == S_COST) {
        gw_cost_apply(prices, res.records, res.nrecords);
        rc = gw_cost_annotate_spans(a, res.records, res.nrecords);
      } else {
        struct gw_redact_memo *memo = gw_redact_memo_create(a);
        gw_redact_memo_limit(memo, redactor, b->len, NULL, NULL);
        rc = gw_redact_request(redactor, req, a, memo);
        if (!rc)
          rc = gw_redact_records(redactor, res.records, res.nrecords, a, memo);
      }
      timed += now_s() - s;
      if (rc)
        die_rc(st == S_COST ? "cost" : "redact", rc, NULL);
      break;
    }
    case S_REPACK: {
      struct gw_pb_raw raw;
      req = stages(a, b, &no, &raw);
      size_t plen;
      double s = now_s();
      uint8_t *pb = repack(a, req, &raw, &plen);
      timed += now_s() - s;
      if (!pb)
        die_rc("re-pack", GW_ERR(TOO_LARGE), NULL);
      break;
    }
    case S_RECEIVE:
    case S_RECEIVE_JSON:
      receive_once(a, b, &no);
      break;
    case S_RECEIVE_TURNS:
    case S_RECEIVE_TURNS_NOCACHE: {
      if (i % nturns == 0) {
        double s = now_s();
        gw_hist_cache_clear(turns_cache);
        untimed += now_s() - s;
      }
      struct gw_normalize_opts to = no;
      to.history_cache = st == S_RECEIVE_TURNS ? turns_cache : NULL;
      receive_once(a, &turns[i % nturns], &to);
      break;
    }
    case S_RECEIVE_FRESH: {
      struct gw_arena *fresh = gw_arena_create(ARENA_CAP);
      receive_once(fresh, b, &no);
      gw_arena_destroy(fresh);
      break;
    }
    }
    gw_arena_reset(a);
    if (gap_us) { /* the clock is this thread's CPU time: the pause itself adds none */
      struct timespec ts = {.tv_sec = gap_us / 1000000, .tv_nsec = (long)(gap_us % 1000000) * 1000};
      nanosleep(&ts, NULL);
    }
  }
  double total = now_s() - t0 - untimed;
  gw_arena_destroy(a);
  return st == S_NORMALIZE || st == S_COST || st == S_REDACT || st == S_REPACK ? timed : total;
}

static const char *only; /* -s NAME[,NAME...]: run those stages alone (for perf record) */

static bool selected(const char *name)
{
  if (!only)
    return true;
  size_t n = strlen(name);
  for (const char *p = only; *p;) {
    size_t k = strcspn(p, ",");
    if (k == n && !strncmp(p, name, n))
      return true;
    p += k + (p[k] == ',');
  }
  return false;
}

static void report(const char *name, enum stage st, const struct body *b, int n)
{
  if (!selected(name))
    return;
  double best = 0;
  run_stage(st, b, n / 10 + 1); /* warm caches and the allocator */
  for (int r = 0; r < ROUNDS; r++) {
    double s = run_stage(st, b, n);
    if (r == 0 || s < best)
      best = s;
  }
  if (st == S_RECEIVE_TURNS || st == S_RECEIVE_TURNS_NOCACHE)
    n = (n + nturns - 1) / nturns * nturns;
  double reqs = n / best;
  size_t bytes = st == S_REDACT ? scanned_bytes : b->len;
  printf("%-16s spans_per_s=%.0f us_per_req=%.1f MB_per_s=%.1f\n", name, reqs * b->spans, 1e6 / reqs,
         reqs * (double)bytes / 1e6);
  fflush(stdout);
}

int main(int argc, char **argv)
{
  int n = 2000, opt;
  while ((opt = getopt(argc, argv, "n:s:wpucm:g:")) != -1) {
    if (opt == 'm' && atoi(optarg) > 1 && atoi(optarg) <= MAX_TURNS) {
      nturns = atoi(optarg);
    } else if (opt == 'g' && atoi(optarg) >= 0) {
      gap_us = (unsigned)atoi(optarg);
    } else if (opt == 'n' && atoi(optarg) > 0) {
      n = atoi(optarg);
    } else if (opt == 'w') {
      gw_redact_walk_attributes = true;
    } else if (opt == 'u') {
      gw_decode_pb_fast = false;
    } else if (opt == 'p') {
      pack_protobuf_c = true;
    } else if (opt == 'c') {
      gw_pb_splice = false;
    } else if (opt == 's') {
      only = optarg;
    } else {
      fprintf(stderr, "usage: bench_pipeline [-n ITERATIONS] [-s STAGE] [-w] [-p] [-u] [-c] [-m K] [-g USEC] BODY.pb "
                    "[BODY.json]\n");
      return 2;
    }
  }
  if (optind >= argc || argc - optind > 2) {
    fprintf(stderr, "usage: bench_pipeline [-n ITERATIONS] [-s STAGE] [-w] [-p] [-u] [-c] [-m K] [-g USEC] BODY.pb "
                    "[BODY.json]\n");
    return 2;
  }
  gw_normalize_init();
  struct gw_err perr = {0};
  prices = gw_prices_load(NULL, NULL, &perr);
  struct gw_redact_policy pol;
  gw_redact_policy_defaults(&pol);
  redactor = prices ? gw_redactor_create(&pol, &perr) : NULL;
  if (!prices || !redactor) {
    fprintf(stderr, "bench_pipeline: %s\n", perr.msg);
    return 1;
  }
  struct body pb = {.enc = GW_ENC_PROTOBUF}, js = {.enc = GW_ENC_JSON};
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
  if (check_unpack_same(&pb))
    return 1;
  {
    struct gw_normalize_result res;
    memset(&res, 0, sizeof res);
    if ((rc = gw_normalize_traces(req, a, &no, &res, &err)))
      die_rc("normalize", rc, &err);
    scanned_bytes = text_bytes(req, res.records, res.nrecords);
  }
  gw_arena_destroy(a);
  a = gw_arena_create(ARENA_CAP); /* arena_bytes: what one request's receive takes */
  size_t nrec = receive_once(a, &pb, &no);
  printf("payload        bytes=%zu spans=%u records=%zu arena_bytes=%zu iterations=%d\n", pb.len, pb.spans, nrec,
         gw_arena_used(a), n);
  gw_arena_destroy(a);
  if (check_rendered_same(&pb, &no) || check_pack_same(&pb, &no))
    return 1;
  if (nrec != pb.spans) {
    fprintf(stderr, "bench_pipeline: %zu records from %u spans: the payload is not all GenAI spans\n", nrec,
            pb.spans);
    return 1;
  }

  report("unpack_malloc", S_UNPACK_MALLOC, &pb, n);
  report("unpack_arena", S_UNPACK_ARENA, &pb, n);
  report("decode", S_DECODE, &pb, n);
  report("normalize", S_NORMALIZE, &pb, n);
  report("decode_normalize", S_DECODE_NORMALIZE, &pb, n);
  report("cost", S_COST, &pb, n);
  report("redact", S_REDACT, &pb, n);
  report("repack", S_REPACK, &pb, n);
  report("receive", S_RECEIVE, &pb, n);
  {
    /* the same request as clients compress it: gzip level 6 (zlib's default, the SDKs' and the
     * Collector's), zstd level 3 streamed (the Collector's zstd); decompressed first, as request.c does */
    struct body gz = pb, zs = pb;
    uLongf glen = compressBound(pb.len) + 32;
    z_stream zst = {0};
    gz.p = malloc(glen);
    if (deflateInit2(&zst, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      return 1;
    zst.next_in = pb.p;
    zst.avail_in = (uInt)pb.len;
    zst.next_out = gz.p;
    zst.avail_out = (uInt)glen;
    if (deflate(&zst, Z_FINISH) != Z_STREAM_END)
      return 1;
    gz.len = zst.total_out;
    deflateEnd(&zst);
    gz.coding = GW_CODING_DEFLATE;
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    size_t zcap = ZSTD_compressBound(pb.len);
    zs.p = malloc(zcap);
    ZSTD_inBuffer ib = {pb.p, pb.len, 0};
    ZSTD_outBuffer ob = {zs.p, zcap, 0};
    while (ib.pos < ib.size) /* input before the end: no size stated, as a streaming encoder writes it */
      ZSTD_compressStream2(cc, &ob, &ib, ZSTD_e_continue);
    while (ZSTD_compressStream2(cc, &ob, &ib, ZSTD_e_end))
      ;
    ZSTD_freeCCtx(cc);
    zs.len = ob.pos;
    zs.coding = GW_CODING_ZSTD;
    report("receive_gzip", S_RECEIVE, &gz, n);
    report("receive_zstd", S_RECEIVE, &zs, n);
    free(gz.p);
    free(zs.p);
  }
  report("receive_fresh", S_RECEIVE_FRESH, &pb, n);
  if (nturns) {
    const char *path = argv[optind], *at = strstr(path, "000");
    if (!at) {
      fprintf(stderr, "bench_pipeline: -m: %s has no 000 to count up\n", path);
      return 1;
    }
    for (const char *more; (more = strstr(at + 1, "000"));)
      at = more;
    for (int t = 0; t < nturns; t++) {
      char name[4096];
      snprintf(name, sizeof name, "%.*s%03d%s", (int)(at - path), path, t, at + 3);
      if (read_body(name, &turns[t]))
        return 1;
      turns[t].enc = GW_ENC_PROTOBUF;
      turns[t].spans = pb.spans;
    }
    turns_cache = gw_hist_cache_create(4u << 20);
    report("receive_turns", S_RECEIVE_TURNS, &turns[0], n);
    report("receive_turns_nocache", S_RECEIVE_TURNS_NOCACHE, &turns[0], n);
    struct gw_hist_cache_stats cs;
    gw_hist_cache_stats(turns_cache, &cs);
    printf("history_cache    simhash_hits=%llu simhash_misses=%llu prefix_hits=%llu evictions=%llu parts=%zu "
           "prefixes=%zu bytes=%zu\n",
           (unsigned long long)cs.hits, (unsigned long long)cs.misses, (unsigned long long)cs.prefix_hits,
           (unsigned long long)cs.evictions, cs.entries, cs.prefixes, cs.bytes);
    gw_hist_cache_destroy(turns_cache);
    for (int t = 0; t < nturns; t++)
      free(turns[t].p);
  }
  if (optind + 1 < argc) {
    if (read_body(argv[optind + 1], &js))
      return 1;
    js.spans = pb.spans;
    js.enc = GW_ENC_JSON;
    if (check_rendered_same(&js, &no) || check_pack_same(&js, &no))
      return 1;
    report("decode_json", S_DECODE_JSON, &js, n / 4 + 1);
    report("normalize_json", S_NORMALIZE, &js, n / 4 + 1);
    report("cost_json", S_COST, &js, n / 4 + 1);
    report("redact_json", S_REDACT, &js, n / 4 + 1);
    report("repack_json", S_REPACK, &js, n / 4 + 1);
    report("receive_json", S_RECEIVE_JSON, &js, n / 4 + 1);
  }
  free(pb.p);
  free(js.p);
  gw_redactor_destroy(redactor);
  gw_prices_destroy(prices);
  return 0;
}
