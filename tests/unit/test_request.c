/*
 * test_request.c: the memory a request may use (issue 12). The receivers' in-flight budget counts each
 * request's body and its arena; a request that would pass its own share (4 x max_request_bytes, body
 * included) is 413 / RESOURCE_EXHAUSTED with a message saying so, one that finds the budget held by
 * others is 503 / UNAVAILABLE (retry), and every byte taken is given back when the arena is reset. Gzip
 * and zstd bombs stop at the ratio cap, a zstd decoder's window counts like the rest of the arena, protobuf bombs before unpacking, JSON-in-attribute bombs before json-c
 * builds their document. Runs the real pipeline (gw_request_traces) into a memory spool.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_decompressBound */
#include <zstd.h>

#include <cmocka.h>

#include "core/conf.h"
#include "core/metrics.h"
#include "receive/http_req.h"
#include "receive/request.h"
#include "redact/redact.h"
#include "testutil.h"

#define KiB 1024u
#define MiB (1024u * 1024u)

struct env {
  struct gw_conf *conf;
  struct gw_spool *spool;
  struct gw_redactor *redactor;
  struct gw_pipeline p;
};

static void env_init_spool(struct env *e, size_t max_request, size_t max_inflight, size_t spool_bytes)
{
  struct gw_err err = {0};
  memset(e, 0, sizeof *e);
  assert_int_equal(gw_conf_load(NULL, &e->conf, &err), GW_OK);
  e->conf->receivers.max_request_bytes = max_request;
  e->conf->receivers.max_inflight_bytes = max_inflight;
  struct gw_spool_conf sc = {.mode = "memory", .max_bytes = spool_bytes, .high_water = 0.9};
  e->spool = gw_spool_create(&sc, &err);
  assert_non_null(e->spool);
  e->redactor = gw_redactor_from_conf(e->conf, &err);
  assert_non_null(e->redactor);
  gw_pipeline_init(&e->p, e->conf, e->spool);
  e->p.redactor = e->redactor;
}

static void env_init(struct env *e, size_t max_request, size_t max_inflight)
{
  env_init_spool(e, max_request, max_inflight, 64u << 20);
}

static void env_fini(struct env *e)
{
  assert_int_equal(atomic_load(&e->p.inflight_bytes), 0); /* everything taken was given back */
  gw_spool_destroy(e->spool);
  gw_redactor_destroy(e->redactor);
  gw_conf_destroy(e->conf);
}

/* One request the way a receiver runs it: its body's bytes reserved, the thread's arena from
 * gw_pipeline_arena, reset (and the budget given back) at the end. *arena_used: what the arena held. */
static gw_rc run(struct env *e, enum gw_encoding enc, enum gw_coding coding, const void *body, size_t len,
                 struct gw_request_outcome *o, size_t *arena_used)
{
  assert_int_equal(gw_pipeline_reserve(&e->p, len), GW_OK);
  struct gw_arena *a = gw_pipeline_arena(&e->p, len);
  gw_rc rc = gw_request_traces(&e->p, a, enc, coding, body, len, o);
  if (arena_used)
    *arena_used = gw_arena_used(a);
  gw_arena_reset(a);
  gw_pipeline_release(&e->p, len);
  return rc;
}

/* An OTLP/JSON body of about `size` bytes: spans [{},{},...] (each one a span struct once decoded). */
static char *tiny_spans(size_t size, size_t *len)
{
  const char *open = "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[", *close = "]}]}]}";
  char *b = malloc(size + 64);
  size_t o = (size_t)sprintf(b, "%s{}", open);
  while (o + 3 + strlen(close) < size) {
    memcpy(b + o, ",{}", 3);
    o += 3;
  }
  o += (size_t)sprintf(b + o, "%s", close);
  *len = o;
  return b;
}

/* A GenAI span now, with one extra attribute whose string value is `value`. */
static char *genai_span(const char *key, const char *value, size_t *len)
{
  uint64_t now = gw_now_ns();
  size_t cap = strlen(value) + 1024;
  char *b = malloc(cap);
  *len = (size_t)snprintf(b, cap,
                          "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"5b8efff798038103d269b633813fc60c\","
                          "\"spanId\":\"eee19b7ec3c1b174\",\"name\":\"chat gpt-4o\",\"startTimeUnixNano\":\"%llu\","
                          "\"endTimeUnixNano\":\"%llu\",\"attributes\":[{\"key\":\"gen_ai.request.model\",\"value\":"
                          "{\"stringValue\":\"gpt-4o\"}},{\"key\":\"%s\",\"value\":{\"stringValue\":\"%s\"}}]}]}]}]}",
                          (unsigned long long)now, (unsigned long long)now + 1000000, key, value);
  return b;
}

static void test_share_is_413(void **state)
{
  (void)state;
  struct env e;
  env_init(&e, 256 * KiB, 64 * MiB); /* share: 1 MiB */
  assert_int_equal(gw_pipeline_share(&e.p), 1 * MiB);
  size_t len, used;
  char *body = tiny_spans(250 * KiB, &len); /* some 83 000 spans: far more than 1 MiB decoded */
  struct gw_request_outcome o;
  assert_int_equal(run(&e, GW_ENC_JSON, GW_CODING_NONE, body, len, &o, &used), GW_ERR(TOO_LARGE));
  assert_int_equal(gw_err_http_status(o.err.rc), 413);
  assert_int_equal(gw_err_grpc_status(o.err.rc), 8); /* RESOURCE_EXHAUSTED */
  assert_string_equal(o.err.msg, "request needs more memory than one request may use (1048576 bytes: 4 x "
                                 "receivers.max_request_bytes, its body included)");
  assert_true(used + len <= 1 * MiB); /* body and arena together stayed within the share */
  free(body);

  /* A normal request under the same limits is accepted. */
  body = genai_span("app.note", "hello", &len);
  assert_int_equal(run(&e, GW_ENC_JSON, GW_CODING_NONE, body, len, &o, NULL), GW_OK);
  free(body);
  env_fini(&e);
}

static void test_budget_is_503(void **state)
{
  (void)state;
  struct env e;
  env_init(&e, 256 * KiB, 1536 * KiB); /* share 1 MiB, in flight 1.5 MiB */
  /* Other requests hold 1 MiB: this one finds half a MiB left, less than it needs. */
  assert_int_equal(gw_pipeline_reserve(&e.p, 1 * MiB), GW_OK);
  size_t len;
  char *body = tiny_spans(100 * KiB, &len);
  struct gw_request_outcome o;
  assert_int_equal(run(&e, GW_ENC_JSON, GW_CODING_NONE, body, len, &o, NULL), GW_ERR(BUSY));
  assert_int_equal(gw_err_http_status(o.err.rc), 503);
  assert_int_equal(gw_err_grpc_status(o.err.rc), 14); /* UNAVAILABLE */
  assert_true(gw_err_retryable(o.err.rc));
  assert_string_equal(o.err.msg, "too many request bytes in flight (receivers.max_inflight_bytes 1572864, bodies and "
                                 "their decoded data): retry later");
  assert_int_equal(atomic_load(&e.p.inflight_bytes), 1 * MiB); /* only the others' bytes are left */
  /* Once they are done the same request is decoded (and then meets its own share: 413, not 503). */
  gw_pipeline_release(&e.p, 1 * MiB);
  assert_int_equal(run(&e, GW_ENC_JSON, GW_CODING_NONE, body, len, &o, NULL), GW_ERR(TOO_LARGE));
  free(body);
  env_fini(&e);
}

/* A gzip body of zeros inflating 1000 to 1: stopped at the ratio cap with its message. */
static void test_gzip_ratio_is_413(void **state)
{
  (void)state;
  struct env e;
  env_init(&e, 64 * MiB, 256 * MiB);
  size_t n = 8 * MiB;
  char *zeros = calloc(1, n);
  uLongf zlen = compressBound(n);
  uint8_t *z = malloc(zlen);
  assert_int_equal(compress2(z, &zlen, (const Bytef *)zeros, n, 9), Z_OK); /* zlib framing: also inflated */
  struct gw_request_outcome o;
  size_t used;
  assert_int_equal(run(&e, GW_ENC_PROTOBUF, GW_CODING_DEFLATE, z, zlen, &o, &used), GW_ERR(TOO_LARGE));
  assert_non_null(strstr(o.err.msg, "deflate: body inflates to more than 200 times its")); /* named by its format */
  assert_true(used < 2 * MiB); /* it stopped at ratio_min_bytes (1 MiB) of output */
  free(z);
  free(zeros);
  env_fini(&e);
}

/* body as a zstd frame: one-shot (size stated), or streamed with a window of 2^window_log bytes (malloc'd). */
/* body as a zstd frame: one-shot (size stated), or streamed with a window of 2^window_log bytes, its
 * input handed over in pieces of `piece` bytes each ending a block (a compressor flushing every write: a
 * block per piece, so its blocks bound its size loosely) or all at once (piece 0) (malloc'd). */
static uint8_t *zstd_of(const void *body, size_t n, bool one_shot, int window_log, size_t piece, size_t *zlen)
{
  ZSTD_CCtx *c = ZSTD_createCCtx();
  size_t cap = ZSTD_compressBound(n) + (piece ? n / piece + 1 : 1) * 16 + 64;
  uint8_t *z = malloc(cap);
  if (one_shot) {
    *zlen = ZSTD_compress2(c, z, cap, body, n);
  } else {
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, window_log)));
    ZSTD_outBuffer ob = {z, cap, 0};
    for (size_t at = 0; at < n;) {
      size_t k = piece && n - at > piece ? piece : n - at;
      ZSTD_inBuffer ib = {(const char *)body + at, k, 0};
      while (ib.pos < ib.size)
        assert_false(ZSTD_isError(ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_continue)));
      if (piece)
        while (ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_flush))
          ;
      at += k;
    }
    ZSTD_inBuffer none = {NULL, 0, 0};
    while (ZSTD_compressStream2(c, &ob, &none, ZSTD_e_end))
      ;
    *zlen = ob.pos;
  }
  assert_false(ZSTD_isError(*zlen));
  ZSTD_freeCCtx(c);
  return z;
}

/* A zstd request runs the pipeline like any other. A frame whose size is stated, or bounded within the
 * limit by its blocks, is decoded in one pass without a window; otherwise it is decoded as a stream, and
 * its window is arena memory that counts against the request's share while the body is decoded (an 8 MiB
 * window under a 1 MiB share is 413, not memory nobody counted) and is given back after. */
static void test_zstd_request(void **state)
{
  (void)state;
  struct env e;
  env_init(&e, 64 * MiB, 256 * MiB);
  size_t len, zlen, used;
  char *body = genai_span("app.note", "a note to send compressed with zstd", &len);
  struct gw_request_outcome o;
  uint8_t *z = zstd_of(body, len, true, 0, 0, &zlen);
  int64_t wire0 = gw_metric_body_get(GW_BODY_ZSTD, false), plain0 = gw_metric_body_get(GW_BODY_ZSTD, true);
  assert_int_equal(run(&e, GW_ENC_JSON, GW_CODING_ZSTD, z, zlen, &o, &used), GW_OK);
  assert_int_equal(o.spans, 1);
  assert_int_equal(gw_metric_body_get(GW_BODY_ZSTD, false) - wire0, zlen); /* counted by coding */
  assert_int_equal(gw_metric_body_get(GW_BODY_ZSTD, true) - plain0, len);
  assert_true(used < 2 * MiB); /* the size was stated: decoded in place, no window */
  free(z);
  /* streamed in one block with an 8 MiB window: its bound (128 KiB) is within the limit: one pass */
  z = zstd_of(body, len, false, 23, 0, &zlen);
  assert_int_equal(run(&e, GW_ENC_JSON, GW_CODING_ZSTD, z, zlen, &o, &used), GW_OK);
  assert_int_equal(o.spans, 1);
  free(z);
  /* a block every 16 bytes: bounded past the limit, so decoded as a stream, in its 8 MiB window */
  z = zstd_of(body, len, false, 23, 16, &zlen);
  assert_true(ZSTD_decompressBound(z, zlen) > 1 * MiB);
  assert_int_equal(run(&e, GW_ENC_JSON, GW_CODING_ZSTD, z, zlen, &o, &used), GW_OK);
  assert_int_equal(o.spans, 1);
  assert_true(used < 2 * MiB); /* the window was given back once the body was decoded */
  env_fini(&e);

  env_init(&e, 256 * KiB, 64 * MiB); /* share: 1 MiB */
  assert_int_equal(run(&e, GW_ENC_JSON, GW_CODING_ZSTD, z, zlen, &o, &used), GW_ERR(TOO_LARGE));
  assert_int_equal(gw_err_http_status(o.err.rc), 413);
  assert_string_equal(o.err.msg, "request needs more memory than one request may use (1048576 bytes: 4 x "
                                 "receivers.max_request_bytes, its body included)");
  assert_true(used <= 1 * MiB);
  free(z);
  z = zstd_of(body, len, false, 17, 16, &zlen); /* a 128 KiB window fits */
  assert_int_equal(run(&e, GW_ENC_JSON, GW_CODING_ZSTD, z, zlen, &o, NULL), GW_OK);
  free(z);
  /* a bomb: 8 MiB of zeros, streamed, stops at the ratio cap */
  size_t n = 8 * MiB;
  char *zeros = calloc(1, n);
  env_fini(&e);
  env_init(&e, 64 * MiB, 256 * MiB);
  z = zstd_of(zeros, n, false, 17, 0, &zlen);
  assert_int_equal(run(&e, GW_ENC_PROTOBUF, GW_CODING_ZSTD, z, zlen, &o, &used), GW_ERR(TOO_LARGE));
  assert_non_null(strstr(o.err.msg, "zstd: body inflates to more than 200 times its"));
  assert_true(used < 2 * MiB);
  free(z);
  free(zeros);
  free(body);
  env_fini(&e);
}

/* 4 MiB of empty ResourceSpans (0a 00 ...) unpack to some 300 MiB: refused from the pre-scan's estimate
 * with nothing unpacked. */
static void test_protobuf_bomb_refused_before_unpacking(void **state)
{
  (void)state;
  struct env e;
  env_init(&e, 8 * MiB, 256 * MiB);
  size_t n = 4 * MiB;
  uint8_t *b = malloc(n);
  for (size_t i = 0; i < n; i += 2) {
    b[i] = 0x0a;
    b[i + 1] = 0;
  }
  struct gw_request_outcome o;
  size_t used;
  assert_int_equal(run(&e, GW_ENC_PROTOBUF, GW_CODING_NONE, b, n, &o, &used), GW_ERR(TOO_LARGE));
  assert_non_null(strstr(o.err.msg, "protobuf: the 4194304-byte body unpacks to about "));
  assert_non_null(strstr(o.err.msg, "bytes, more than the "));
  assert_true(used < 1 * MiB);
  free(b);
  env_fini(&e);
}

/* gen_ai.input.messages holding [0,0,...]: json-c would build a document of some 50 times the text;
 * its estimate is refused before parsing, and the request is 413 like any arena exhaustion. */
static void test_message_json_bomb(void **state)
{
  (void)state;
  struct env e;
  env_init(&e, 4 * MiB, 256 * MiB); /* share 16 MiB */
  size_t n = 3 * MiB, len, used;
  char *v = malloc(n + 2);
  v[0] = '[';
  for (size_t i = 1; i < n; i += 2) {
    v[i] = '0';
    v[i + 1] = ',';
  }
  v[n - 1] = ']';
  v[n] = 0;
  char *body = genai_span("gen_ai.input.messages", v, &len);
  struct gw_request_outcome o;
  assert_int_equal(run(&e, GW_ENC_JSON, GW_CODING_NONE, body, len, &o, &used), GW_ERR(TOO_LARGE));
  assert_non_null(strstr(o.err.msg, "request needs more memory than one request may use"));
  assert_true(used + len <= 16 * MiB);
  free(body);
  /* The same attribute with real message JSON is parsed and kept. */
  body = genai_span("gen_ai.input.messages",
                    "[{\\\"role\\\":\\\"user\\\",\\\"parts\\\":[{\\\"type\\\":\\\"text\\\",\\\"content\\\":\\\"hi\\\"}]}]", &len);
  assert_int_equal(run(&e, GW_ENC_JSON, GW_CODING_NONE, body, len, &o, NULL), GW_OK);
  free(body);
  free(v);
  env_fini(&e);
}

/* An OTLP/HTTP body is mapped once at its declared length (up to 1 MiB) and never moved while it arrives in
 * libmicrohttpd's 32 KiB chunks, while the in-flight budget still counts only what has arrived (a client
 * declaring a large body and sending a byte holds 64 KiB of it, as before). A Content-Length that lies
 * (smaller than the body) still gets the whole body, by growing the mapping. */
static void test_http_body_premapped(void **state)
{
  (void)state;
  struct env e;
  env_init(&e, 64 * MiB, 256 * MiB);
  const size_t n = 300000;
  unsigned char *src = malloc(n);
  for (size_t i = 0; i < n; i++)
    src[i] = (unsigned char)(i * 131u + 7u);
  for (int lie = 0; lie < 2; lie++) {
    struct gw_http_head h = {.path = "/v1/traces", .method = "POST", .content_type = "application/x-protobuf",
                             .content_length = lie ? "1000" : "300000"};
    struct gw_http_req q;
    struct gw_http_resp resp = {0};
    assert_true(gw_http_begin(&e.p, "http", &h, &q, &resp));
    gw_http_body(&e.p, &q, src, 32 * KiB);
    const char *first = q.body;
    assert_non_null(first);
    assert_int_equal(q.reserved, 64 * KiB); /* the budget counts what arrived, not what was declared */
    assert_int_equal(atomic_load(&e.p.inflight_bytes), 64 * KiB);
    for (size_t off = 32 * KiB; off < n; off += 32 * KiB)
      gw_http_body(&e.p, &q, src + off, n - off < 32 * KiB ? n - off : 32 * KiB);
    assert_int_equal(q.early, GW_OK);
    assert_int_equal(q.len, n);
    assert_memory_equal(q.body, src, n);
    if (!lie)
      assert_ptr_equal(q.body, first); /* mapped at 300000 bytes from the first chunk: never moved */
    assert_int_equal(q.reserved, q.cap);
    assert_int_equal(atomic_load(&e.p.inflight_bytes), q.cap);
    gw_http_req_fini(&e.p, &q);
    gw_http_resp_fini(&resp);
  }
  free(src);
  env_fini(&e);
}

/* A span with valid ids and a start time now, GenAI (a model attribute) or not. */
static char *one_span(bool genai, size_t *len)
{
  uint64_t now = gw_now_ns();
  char *b = malloc(1024);
  *len = (size_t)snprintf(b, 1024,
                          "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"5b8efff798038103d269b633813fc60c\","
                          "\"spanId\":\"eee19b7ec3c1b174\",\"name\":\"%s\",\"startTimeUnixNano\":\"%llu\","
                          "\"endTimeUnixNano\":\"%llu\",\"attributes\":[{\"key\":\"%s\",\"value\":"
                          "{\"stringValue\":\"gpt-4o\"}}]}]}]}]}",
                          genai ? "chat gpt-4o" : "GET /health", (unsigned long long)now,
                          (unsigned long long)now + 1000000, genai ? "gen_ai.request.model" : "http.route");
  return b;
}

/* With no exporter configured nothing reads a spool entry's re-packed request: a GenAI request's entry holds
 * its rows only, and spans that give no row are accepted without an entry. With an exporter the entry
 * carries the request, which decodes to the accepted span. */
static void test_entries_without_exporter(void **state)
{
  (void)state;
  for (int fwd = 0; fwd < 2; fwd++) {
    struct env e;
    env_init(&e, 4 * MiB, 64 * MiB);
    assert_false(e.p.forward); /* the default configuration has no exporter */
    e.p.forward = fwd;
    int consumer = gw_spool_add_consumer(e.spool, "test");
    for (int genai = 1; genai >= 0; genai--) {
      size_t len;
      char *body = one_span(genai, &len);
      struct gw_request_outcome o;
      assert_int_equal(run(&e, GW_ENC_JSON, GW_CODING_NONE, body, len, &o, NULL), GW_OK);
      assert_int_equal(o.spans, 1);
      struct gw_spool_entry ent;
      int got = gw_spool_peek(e.spool, consumer, &ent, 1, 0, 0, gw_mono_ns());
      if (!fwd && !genai) {
        assert_int_equal(got, 0); /* accepted, nothing kept */
      } else {
        assert_int_equal(got, 1);
        assert_int_equal(ent.nspans, 1);
        assert_int_equal(ent.nrecords, genai ? 1 : 0);
        if (genai)
          assert_true(ent.records_len > 0);
        if (!fwd) {
          assert_int_equal(ent.otlp_len, 0);
        } else {
          struct gw_arena *a = gw_arena_create(0);
          struct gw_err err = {0};
          GwTraceRequest *req = NULL;
          struct gw_decode_limits lim = {.max_bytes = 1 << 20, .max_depth = 16};
          assert_true(ent.otlp_len > 0);
          assert_int_equal(gw_decode_traces(a, GW_ENC_PROTOBUF, ent.otlp, ent.otlp_len, &lim, &req, &err), GW_OK);
          assert_int_equal(req->n_resource_spans, 1);
          assert_int_equal(req->resource_spans[0]->scope_spans[0]->n_spans, 1);
          gw_arena_destroy(a);
        }
        gw_spool_commit(e.spool, consumer, ent.seq);
      }
      free(body);
    }
    env_fini(&e);
  }
}

/* A request whose spool entry is larger than the whole spool (spool.max_bytes) could never be stored: 413 /
 * RESOURCE_EXHAUSTED without RetryInfo (not retryable), naming spool.max_bytes, not 429 "spool full: retry
 * later" for ever with the spool empty. The room a request claims before normalizing is estimated from its
 * body; an estimate larger than the spool refuses nothing by itself: a 2 MiB body whose entry holds its
 * row alone (no exporter) is stored in a 1 MiB spool, whether the spool is empty or holds an entry a
 * consumer has not committed (the wait for room then ends and the append decides). */
static void test_entry_larger_than_spool_is_413(void **state)
{
  (void)state;
  struct env e;
  env_init_spool(&e, 4 * MiB, 64 * MiB, 1 * MiB);
  e.conf->spool.full_wait_ms = 20;
  int consumer = gw_spool_add_consumer(e.spool, "test");
  char *blob = malloc(2 * MiB + 1);
  memset(blob, 'x', 2 * MiB);
  blob[2 * MiB] = '\0';
  size_t len;
  char *body = genai_span("app.blob", blob, &len);
  assert_true(len > 2 * MiB);
  struct gw_request_outcome o;
  for (int held = 0; held < 2; held++) {
    if (held) { /* an entry nobody commits: the spool is never empty again */
      size_t slen;
      char *small = one_span(true, &slen);
      assert_int_equal(run(&e, GW_ENC_JSON, GW_CODING_NONE, small, slen, &o, NULL), GW_OK);
      free(small);
      assert_true(gw_spool_bytes(e.spool) > 0);
    }
    size_t before = gw_spool_bytes(e.spool);
    /* with an exporter the entry carries the request: over 2 MiB */
    e.p.forward = true;
    atomic_store(&e.p.entry_ratio, 256); /* as at start: the estimate is the body, twice the spool */
    assert_int_equal(run(&e, GW_ENC_JSON, GW_CODING_NONE, body, len, &o, NULL), GW_ERR(TOO_LARGE));
    assert_int_equal(gw_err_http_status(o.err.rc), 413);
    assert_int_equal(gw_err_grpc_status(o.err.rc), 8); /* RESOURCE_EXHAUSTED */
    assert_false(gw_err_retryable(o.err.rc));          /* no Retry-After, no RetryInfo */
    assert_non_null(strstr(o.err.msg, "more than spool.max_bytes (1048576)"));
    assert_int_equal(gw_spool_bytes(e.spool), before);
    assert_int_equal(atomic_load(&e.p.pending_bytes), 0); /* no room left promised */
    /* without one the entry is the row alone: stored */
    e.p.forward = false;
    atomic_store(&e.p.entry_ratio, 256);
    assert_int_equal(run(&e, GW_ENC_JSON, GW_CODING_NONE, body, len, &o, NULL), GW_OK);
    assert_true(gw_spool_bytes(e.spool) > before);
    assert_int_equal(atomic_load(&e.p.pending_bytes), 0);
  }
  (void)consumer;
  free(body);
  free(blob);
  env_fini(&e);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_share_is_413),
      cmocka_unit_test(test_budget_is_503),
      cmocka_unit_test(test_gzip_ratio_is_413),
      cmocka_unit_test(test_zstd_request),
      cmocka_unit_test(test_protobuf_bomb_refused_before_unpacking),
      cmocka_unit_test(test_message_json_bomb),
      cmocka_unit_test(test_http_body_premapped),
      cmocka_unit_test(test_entries_without_exporter),
      cmocka_unit_test(test_entry_larger_than_spool_is_413),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
