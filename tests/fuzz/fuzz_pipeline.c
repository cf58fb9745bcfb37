/*
 * fuzz_pipeline.c: one export request through the whole receive pipeline, as both receivers run it
 * (gw_request_traces / gw_request_logs in receive/request.c, then the reply encoding): inflate, decode,
 * normalize, cost (the shipped price table), redaction (the default policy), records or GenAI events
 * encoded, one spool entry (a memory spool). No sockets. Then the entry is read as its consumers read it:
 * the forwarded request must decode again and the records (events) must decode, else abort.
 *
 * A trace request is also normalized twice on its own, with message attributes already in the rendered
 * form stored as they are (nz_reuse_raw) and with every message array rendered: the content columns, the
 * prompt hash and SimHash must be the same, else abort. Each prompt hash must be its prompt's SHA-256 as
 * OpenSSL gives it (prompts sharing a prefix resume from each other's state: normalize.c's prompt_hashes).
 *
 * Input: one selector byte, then the rest.
 *   sel & 4 clear: the rest is a request body: sel & 1 OTLP/JSON (else protobuf), sel & 2 logs.
 *   sel & 4 set:   the rest builds a request (fuzzutil.c) whose spans or log records all have valid ids and
 *                  recent start times and carry GenAI attributes (genai.dict) with fuzzed values, so every
 *                  input reaches the normalizer's dialects, cost and redaction; sel & 2 logs.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cost/cost.h"
#include "fuzzutil.h"
#include "normalize/normalize_int.h"
#include "receive/receive.h"
#include "receive/request.h"
#include "redact/redact.h"

static struct gw_conf *conf;
static struct gw_spool *spool;
static struct gw_prices *prices;
static struct gw_redactor *redactor;
static struct gw_pipeline pipe;
static int consumer;
static struct gw_hist_cache *shc; /* kept across inputs, small: entries met again and entries evicted */

static void init(void)
{
  struct gw_err err = {0};
  if (gw_conf_load(NULL, &conf, &err))
    abort();
  conf->receivers.max_request_bytes = 1 << 20; /* small caps: inputs reach them */
  conf->spool.full_wait_ms = 0;               /* a full spool refuses at once */
  struct gw_spool_conf sc = {.mode = "memory", .max_bytes = 64u << 20, .high_water = 0.9};
  if (!(spool = gw_spool_create(&sc, &err)) || (consumer = gw_spool_add_consumer(spool, "fuzz")) < 0)
    abort();
  if (!(prices = gw_prices_load(NULL, NULL, &err)) || !(redactor = gw_redactor_from_conf(conf, &err)))
    abort();
  gw_pipeline_init(&pipe, conf, spool);
  pipe.forward = true; /* entries carry the re-packed request, which consume() reads back */
  pipe.prices = prices;
  pipe.redactor = redactor;
  if (!(shc = gw_hist_cache_create(64u << 10)))
    abort();
  pipe.history_cache = shc;
}

static bool same_text(const char *x, const char *y) { return (!x && !y) || (x && y && !strcmp(x, y)); }

/* The body normalized with and without the reuse of rendered message arrays (the second pass also through
 * the history cache kept across inputs): the same columns. */
static void reuse_differential(enum gw_encoding enc, const void *body, size_t len)
{
  struct gw_decode_limits lim = {.max_bytes = conf->receivers.max_request_bytes,
                                 .max_depth = conf->receivers.max_depth};
  struct gw_arena *a[2];
  struct gw_normalize_result res[2];
  gw_rc rc[2];
  for (int pass = 0; pass < 2; pass++) {
    struct gw_err err;
    GwTraceRequest *req;
    a[pass] = gw_arena_create(conf->receivers.max_request_bytes * 4 + (1u << 20));
    nz_reuse_raw = pass == 0;
    struct gw_normalize_opts o = {.history_cache = pass ? shc : NULL}; /* (no time window) */
    rc[pass] = gw_decode_traces(a[pass], enc, body, len, &lim, &req, &err);
    if (!rc[pass])
      rc[pass] = gw_normalize_traces(req, a[pass], &o, &res[pass], &err);
  }
  nz_reuse_raw = true;
  if (rc[0] != rc[1])
    abort();
  for (size_t i = 0; !rc[0] && i < res[0].nrecords; i++) {
    const struct gw_record *x = &res[0].records[i], *y = &res[1].records[i];
    if (res[0].nrecords != res[1].nrecords || !same_text(x->prompt_content, y->prompt_content) ||
        !same_text(x->response_content, y->response_content) || strcmp(x->prompt_hash, y->prompt_hash) ||
        strcmp(x->prompt_simhash, y->prompt_simhash)) {
      fprintf(stderr, "record %zu: reused and rendered message arrays differ\n", i);
      abort();
    }
    if (x->prompt_content) {
      unsigned char md[EVP_MAX_MD_SIZE];
      unsigned int mdlen = 0;
      char want[17];
      if (!EVP_Digest(x->prompt_content, gw_record_text_len(x, GW_RT_PROMPT_CONTENT), md, &mdlen, EVP_sha256(), NULL))
        abort();
      gw_hex(want, md, 8);
      if (strcmp(want, x->prompt_hash)) {
        fprintf(stderr, "record %zu: prompt_hash %s, its prompt's SHA-256 begins %s\n", i, x->prompt_hash, want);
        abort();
      }
    }
  }
  gw_arena_destroy(a[0]);
  gw_arena_destroy(a[1]);
}

/* The forwarded request of the last traces entry consume() read, packed again from its decoded tree
 * (gw_pb_pack: canonical bytes, equal for equal trees); malloc'd, NULL when none. */
static uint8_t *fwd;
static size_t fwd_len;

/* Read back and release what the request appended, as the Postgres writer and the exporters do. */
static void consume(void)
{
  struct gw_spool_entry e;
  struct gw_decode_limits lim = {.max_bytes = conf->receivers.max_request_bytes,
                                 .max_depth = conf->receivers.max_depth};
  while (gw_spool_peek(spool, consumer, &e, 1, 0, 0, gw_mono_ns()) == 1) {
    struct gw_arena *a = gw_arena_create(0);
    struct gw_err err;
    size_t n;
    gw_rc rc;
    if (e.signal == GW_SIGNAL_LOGS) {
      GwLogsRequest *req;
      struct gw_event *evs;
      rc = gw_decode_logs(a, GW_ENC_PROTOBUF, e.otlp, e.otlp_len, &lim, &req, &err);
      if (!rc)
        rc = gw_events_decode(e.records, e.records_len, a, &evs, &n);
    } else {
      GwTraceRequest *req;
      struct gw_record *recs;
      rc = gw_decode_traces(a, GW_ENC_PROTOBUF, e.otlp, e.otlp_len, &lim, &req, &err);
      if (!rc)
        rc = gw_records_decode(e.records, e.records_len, a, &recs, &n);
      size_t cl;
      const uint8_t *c = rc ? NULL : gw_pb_pack(a, &req->base, &cl);
      if (c) {
        free(fwd);
        if (!(fwd = malloc(cl ? cl : 1)))
          abort();
        memcpy(fwd, c, cl);
        fwd_len = cl;
      }
    }
    if (rc || n != e.nrecords)
      abort(); /* the pipeline spooled what its own consumers cannot read */
    gw_spool_commit(spool, consumer, e.seq);
    gw_arena_destroy(a);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!conf)
    init();
  if (size < 1)
    return 0;
  uint8_t sel = data[0];
  bool logs = sel & 2, json = sel & 1 && !(sel & 4);
  const void *body = data + 1;
  size_t len = size - 1;
  struct gw_arena *build = gw_arena_create(16 << 20);
  if (sel & 4) {
    struct fz f = {data + 1, data + size};
    uint8_t *out;
    if (!(logs ? fz_build_logs(&f, build, &out, &len) : fz_build_traces(&f, build, &out, &len)))
      goto out;
    body = out;
  }
  struct gw_arena *a = gw_arena_create(conf->receivers.max_request_bytes * 4 + (1u << 20));
  struct gw_request_outcome o;
  enum gw_encoding enc = json ? GW_ENC_JSON : GW_ENC_PROTOBUF;
  if (!logs) {
    /* The forwarded request with every span packed from its tree, then with the unchanged ones copied
     * from the body (gw_pb_pack_spliced): the same tree, else abort. */
    free(fwd);
    fwd = NULL;
    gw_pb_splice = false;
    gw_request_traces(&pipe, a, enc, GW_CODING_NONE, body, len, &o);
    gw_pb_splice = true;
    gw_arena_reset(a);
    consume();
    uint8_t *packed = fwd;
    size_t packed_len = fwd_len;
    fwd = NULL;
    gw_request_traces(&pipe, a, enc, GW_CODING_NONE, body, len, &o);
    gw_arena_reset(a);
    consume();
    if (!packed != !fwd || (packed && (packed_len != fwd_len || memcmp(packed, fwd, fwd_len)))) {
      fprintf(stderr, "the forwarded request with unchanged spans copied is another than the one packed\n");
      abort();
    }
    free(packed);
  }
  if (logs)
    gw_request_logs(&pipe, a, enc, GW_CODING_NONE, body, len, &o);
  else
    gw_request_traces(&pipe, a, enc, GW_CODING_NONE, body, len, &o);
  if (!logs)
    reuse_differential(enc, body, len);
  const void *reply;
  size_t reply_len;
  gw_receive_encode_response(a, json, &o, conf->receivers.retry_after_s, &reply, &reply_len);
  gw_arena_destroy(a);
  consume();
out:
  gw_arena_destroy(build);
  return 0;
}
