/*
 * http_req.c: the OTLP/HTTP request steps both HTTP versions share (see http_req.h). Status codes follow
 * OTLP §"HTTP status codes"; errors carry a google.rpc.Status in the request's encoding.
 */
#include "receive/http_req.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/arena.h"
#include "core/auth.h"
#include "core/log.h"
#include "core/memtrim.h"
#include "core/metrics.h"
#include "receive/receive.h"

/* Media type without parameters, case-insensitive. */
static bool media_is(const char *ct, const char *want)
{
  size_t n = strlen(want);
  if (strncasecmp(ct, want, n) != 0)
    return false;
  return ct[n] == 0 || ct[n] == ';' || ct[n] == ' ';
}

static void resp_body(struct gw_http_resp *resp, const void *body, size_t len)
{
  resp->body = gw_malloc(len ? len : 1);
  memcpy(resp->body, body, len);
  resp->len = len;
}

void gw_http_resp_error(struct gw_pipeline *p, bool json, gw_rc rc, const char *msg, struct gw_http_resp *resp)
{
  memset(resp, 0, sizeof *resp);
  struct gw_arena *a = gw_arena_create(64 * 1024);
  struct gw_request_outcome o;
  memset(&o, 0, sizeof o);
  gw_err_set(&o.err, rc, "%s", msg);
  uint32_t ra = p->conf->receivers.retry_after_s;
  const void *body;
  size_t len;
  gw_receive_encode_response(a, json, &o, ra, &body, &len);
  resp->status = (unsigned)gw_err_http_status(rc);
  resp->content_type = json ? "application/json" : "application/x-protobuf";
  resp->retry_after = gw_err_retryable(rc) ? ra : 0;
  resp_body(resp, body, len);
  if (rc == GW_ERR(METHOD)) {
    resp->hname = "Allow";
    resp->hvalue = "POST";
  }
  gw_arena_destroy(a);
}

bool gw_http_begin(struct gw_pipeline *p, const char *listener, const struct gw_http_head *h,
                   struct gw_http_req *q, struct gw_http_resp *resp)
{
  const struct gw_conf *conf = p->conf;
  memset(q, 0, sizeof *q);
  const char *ct = h->content_type;
  bool json = ct && media_is(ct, "application/json");
  /* receivers.auth first: an unauthenticated client learns nothing else, and its body is never read. */
  if (p->auth) {
    enum gw_auth_result res = gw_auth_verify(p->auth, listener, h->authorization, h->authorization_len,
                                             h->api_key, h->api_key_len);
    if (res != GW_AUTH_OK) {
      gw_metric_add(GW_M_REQUESTS_FAILED, 1);
      bool missing = res == GW_AUTH_MISSING;
      gw_http_resp_error(p, json, GW_ERR(UNAUTHENTICATED),
                         missing ? "missing credentials: send Authorization: Bearer <token> (or x-api-key)"
                                 : "invalid token",
                         resp);
      resp->hname = "WWW-Authenticate"; /* RFC 6750 §3 */
      resp->hvalue = missing ? "Bearer realm=\"genai-gateway\"" : "Bearer realm=\"genai-gateway\", error=\"invalid_token\"";
      return false;
    }
  }
  const char *path = h->path ? h->path : "";
  bool logs = strcmp(path, "/v1/logs") == 0;
  if (!logs && strcmp(path, "/v1/traces") != 0) {
    char msg[180];
    snprintf(msg, sizeof msg, "unknown path '%.100s': OTLP traces are POSTed to /v1/traces, logs to /v1/logs", path);
    gw_http_resp_error(p, json, GW_ERR(NOT_FOUND), msg, resp);
    return false;
  }
  if (!h->method || strcmp(h->method, "POST") != 0) {
    gw_http_resp_error(p, json, GW_ERR(METHOD), "method not allowed: use POST", resp);
    return false;
  }
  if (!ct || (!json && !media_is(ct, "application/x-protobuf"))) {
    gw_http_resp_error(p, false, GW_ERR(UNSUPPORTED_MEDIA),
                       "unsupported Content-Type: use application/x-protobuf or application/json", resp);
    return false;
  }
  /* gzip (x-gzip its old name), or deflate: the zlib format (RFC 9110 §8.4.1.2), which some senders (the
   * OpenTelemetry Collector's compression: zlib) label zlib; gw_inflate reads both formats. zstd: RFC 8878.
   * snappy and x-snappy-framed (the Collector's compression: snappy, either format): gw_unsnappy. lz4 (the
   * Collector's compression: lz4, the LZ4 frame format): gw_unlz4. */
  const char *ce = h->content_encoding;
  enum gw_coding coding = GW_CODING_NONE;
  if (ce && (strcasecmp(ce, "gzip") == 0 || strcasecmp(ce, "x-gzip") == 0 || strcasecmp(ce, "deflate") == 0 ||
             strcasecmp(ce, "zlib") == 0))
    coding = GW_CODING_DEFLATE;
  else if (ce && strcasecmp(ce, "zstd") == 0)
    coding = GW_CODING_ZSTD;
  else if (ce && (strcasecmp(ce, "snappy") == 0 || strcasecmp(ce, "x-snappy-framed") == 0))
    coding = GW_CODING_SNAPPY;
  else if (ce && strcasecmp(ce, "lz4") == 0)
    coding = GW_CODING_LZ4;
  else if (ce && strcasecmp(ce, "identity") != 0) {
    char msg[200];
    snprintf(msg, sizeof msg, "unsupported Content-Encoding '%.64s': use gzip, deflate, zstd, snappy, lz4 or none", ce);
    gw_http_resp_error(p, json, GW_ERR(UNSUPPORTED_MEDIA), msg, resp);
    resp->hname = "Accept-Encoding"; /* the codings a request may use (RFC 9110 §15.5.16, §12.5.3) */
    resp->hvalue = "gzip, deflate, zstd, snappy, lz4";
    return false;
  }
  q->enc = json ? GW_ENC_JSON : GW_ENC_PROTOBUF;
  q->json = json;
  q->coding = coding;
  q->logs = logs;
  unsigned long long declared = h->content_length ? strtoull(h->content_length, NULL, 10) : 0;
  if (declared > conf->receivers.max_request_bytes) {
    char msg[160];
    snprintf(msg, sizeof msg, "request body of %llu bytes is over the limit of %llu", declared,
             (unsigned long long)conf->receivers.max_request_bytes);
    /* Answering before the body is read makes most clients see a broken pipe, not the 413: a body up
     * to a few times the limit is read and discarded (no memory kept), a larger one is refused at once
     * and the connection closed. A client that sent Expect: 100-continue waits to be told before it
     * sends the body: it is refused at once whatever the size (RFC 9110 §10.1.1), not invited to upload
     * a body that will be thrown away. */
    if (declared > conf->receivers.max_request_bytes * 4 || h->expect_continue) {
      gw_http_resp_error(p, json, GW_ERR(TOO_LARGE), msg, resp);
      return false;
    }
    q->early = GW_ERR(TOO_LARGE);
    snprintf(q->early_msg, sizeof q->early_msg, "%s", msg);
  } else {
    q->declared = (size_t)declared;
  }
  return true;
}

/* Bodies up to this size are mapped at their declared length from the first chunk on (half the warm pool's
 * size under load, core/arena.h): a larger one grows from 64 KiB, and each growth first unmaps pooled
 * memory (arena.c), so a stream of 1.4 MB bodies (the OTel SDK's default batch of 512 GenAI spans) emptied
 * the pool four times a request. A declared length costs address space only: pages not written are not
 * resident, and the in-flight budget counts what arrives. */
#define PREMAP_MAX (GW_ARENA_WARM_MAX / 2)

/* The body buffer grown to cap bytes: false when the system has no memory for it, the old buffer then
 * unchanged. An anonymous mapping grown by mremap: growing never holds two copies. It is taken from and
 * given back to the receivers' warm pool (core/arena.h), which bounds what stays resident after a large
 * body: mapping each body anew faulted its pages in again, 8-9 % of the receiver's time. The first mapping
 * covers the declared Content-Length or a gRPC message's length (up to PREMAP_MAX), while cap, what the
 * in-flight budget counts, still grows with what arrives: a 273 KB body grown 64 KiB at a time was moved
 * three times, and each move flushes the TLB of every core running a gateway thread (about 7 % of an
 * OTLP/HTTP receiver thread's time in `perf`). Pages not written are not resident. */
static bool body_grow(struct gw_http_req *q, size_t cap)
{
  if (cap <= q->mapped)
    return true;
  size_t len = cap, got;
  size_t known = q->declared ? q->declared : q->expect;
  if (!q->body && known > len && known <= PREMAP_MAX)
    len = known;
  void *m = gw_warm_remap(q->body, q->mapped, len, &got); /* a first mapping when there is no body yet */
  if (!m)
    return false;
  q->body = m;
  q->mapped = got;
  return true;
}

static void body_free(struct gw_http_req *q)
{
  gw_warm_unmap(q->body, q->mapped);
  q->body = NULL;
  q->len = q->cap = q->mapped = 0;
}

/* The body is refused while it arrives: its memory and its share of the in-flight budget go back now, not
 * when its last byte has come (the rest is read and dropped, and the answer goes out at the end). Held until
 * then, the partial bodies of many concurrent uploads would keep the budget full between them, and none
 * could finish. */
static void refuse_body(struct gw_pipeline *p, struct gw_http_req *q, gw_rc rc, const char *msg)
{
  q->early = rc;
  snprintf(q->early_msg, sizeof q->early_msg, "%s", msg);
  if (q->reserved)
    gw_pipeline_release(p, q->reserved);
  q->reserved = 0;
  gw_memtrim_note(q->cap);
  body_free(q);
}

void gw_http_body(struct gw_pipeline *p, struct gw_http_req *q, const void *data, size_t n)
{
  const struct gw_conf *conf = p->conf;
  if (q->early || n == 0)
    return; /* discard the rest; answered at the end */
  if (q->len + n > conf->receivers.max_request_bytes) {
    char msg[120];
    snprintf(msg, sizeof msg, "request body is over the limit of %llu bytes",
             (unsigned long long)conf->receivers.max_request_bytes);
    refuse_body(p, q, GW_ERR(TOO_LARGE), msg);
    return;
  }
  if (q->len + n > q->cap) {
    size_t ncap = q->cap ? q->cap * 2 : 64 * 1024;
    while (ncap < q->len + n)
      ncap *= 2;
    if (ncap > conf->receivers.max_request_bytes)
      ncap = conf->receivers.max_request_bytes;
    if (q->declared >= q->len + n && ncap > q->declared)
      ncap = q->declared; /* no more than the body said it holds (and within its first mapping) */
    if (gw_pipeline_reserve(p, ncap - q->cap) != GW_OK) {
      refuse_body(p, q, GW_ERR(BUSY), "too many request bytes in flight: retry later");
      return;
    }
    q->reserved += ncap - q->cap;
    if (!body_grow(q, ncap)) {
      refuse_body(p, q, GW_ERR(BUSY), "no memory for the request body: retry later");
      return;
    }
    q->cap = ncap;
  }
  memcpy(q->body + q->len, data, n);
  q->len += n;
}

void gw_http_req_fini(struct gw_pipeline *p, struct gw_http_req *q)
{
  if (q->reserved)
    gw_pipeline_release(p, q->reserved);
  q->reserved = 0;
  gw_memtrim_note(q->cap); /* a large request's malloc'd memory goes back to the system (core/memtrim.h) */
  body_free(q);
}

void gw_http_resp_durable_failed(struct gw_pipeline *p, bool json, gw_rc rc, struct gw_http_resp *resp)
{
  gw_metric_add(GW_M_REQUESTS_FAILED, 1);
  gw_http_resp_error(p, json, rc,
                     rc == GW_ERR(SHUTDOWN) ? "the gateway is shutting down: retry" : "the spool's fsync failed: retry later",
                     resp);
}

bool gw_http_finish(struct gw_pipeline *p, struct gw_http_req *q, void (*done)(void *arg, gw_rc rc), void *arg,
                    struct gw_http_resp *resp)
{
  const struct gw_conf *conf = p->conf;
  if (q->early) {
    gw_http_resp_error(p, q->json, q->early, q->early_msg, resp);
    gw_http_req_fini(p, q);
    return false;
  }
  /* The decoded request usually takes a few times the wire size: the arena gets the rest of the
   * request's share after its body, and its growth counts in flight. */
  struct gw_arena *a = gw_pipeline_arena(p, q->reserved);
  struct gw_request_outcome o;
  if (done)
    gw_request_defer(done, arg);
  if (q->logs)
    gw_request_logs(p, a, q->enc, q->coding, q->body ? q->body : "", q->len, &o);
  else
    gw_request_traces(p, a, q->enc, q->coding, q->body ? q->body : "", q->len, &o);
  /* The body is no longer needed: its share of the in-flight budget goes back now, not when the answer
   * has gone out. */
  gw_http_req_fini(p, q);
  if (o.err.rc)
    gw_arena_reset(a); /* an arena that ran out still has room for the error body */
  uint32_t ra = conf->receivers.retry_after_s;
  const void *body;
  size_t len;
  gw_receive_encode_response(a, q->json, &o, ra, &body, &len);
  memset(resp, 0, sizeof *resp);
  if (o.err.rc == GW_ERR(CANCELLED)) { /* the client hung up (gw_request_limit): status 0, no answer */
    gw_arena_reset(a);
    return false;
  }
  resp->status = o.err.rc ? (unsigned)gw_err_http_status(o.err.rc) : 200;
  resp->content_type = q->json ? "application/json" : "application/x-protobuf";
  resp->retry_after = o.err.rc && gw_err_retryable(o.err.rc) ? ra : 0;
  resp_body(resp, body, len);
  if (o.err.rc && !gw_err_retryable(o.err.rc))
    gw_debug("http", "request refused: %s", o.err.msg);
  gw_arena_reset(a); /* the thread keeps a few MiB for its next request, not a large request's worth */
  return o.deferred;
}

void gw_http_resp_fini(struct gw_http_resp *resp)
{
  free(resp->body);
  resp->body = NULL;
  resp->len = 0;
}
