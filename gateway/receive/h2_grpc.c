/*
 * h2_grpc.c: OTLP/gRPC calls on h2.c's HTTP/2 (see h2_grpc.h). Every status and message below is the one
 * gRPC core's receiver gives for the same call (receive_grpc.c), so a client cannot tell them apart:
 *  - receivers.auth first (UNAUTHENTICATED, counted under the port's listener), then the method
 *    (UNIMPLEMENTED for anything but the two Export methods);
 *  - a message longer than receivers.max_request_bytes is RESOURCE_EXHAUSTED, answered as soon as its
 *    prefix says so; its bytes are never kept;
 *  - no message, a truncated one, or more than one: INVALID_ARGUMENT (a unary call carries exactly one);
 *  - a compressed message needs grpc-encoding gzip, deflate (the zlib format; gRPC core's receiver takes
 *    both), zstd, snappy (named by gRPC's protocol spec; the Collector's gRPC exporters send the framing
 *    format, either is read) or lz4 (none of these three does gRPC core's receiver take): another encoding
 *    is UNIMPLEMENTED naming it, none at all is INTERNAL (the gRPC spec's words for
 *    both);
 *  - grpc-timeout is the deadline the pipeline stops at (DEADLINE_EXCEEDED, as on the gRPC port), and a
 *    client resetting the stream stops it too (CANCELLED, counted; nothing is answered);
 *  - the pipeline's own errors carry google.rpc.Status (with RetryInfo when retryable) in
 *    grpc-status-details-bin.
 * The request duration is observed as protocol="grpc", the wire protocol, whichever port carried it.
 */
#include "receive/h2_grpc.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/auth.h"
#include "core/log.h"
#include "core/metrics.h"
#include "receive/receive.h"

#define TRACES_METHOD "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
#define LOGS_METHOD "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
#define ACCEPT_ENCODING "identity,deflate,gzip,zstd,snappy,lz4"
#define FAR_NS (10ull * 365 * 86400 * 1000000000ull)

/* gRPC status codes used here by name (grpc/status.h's values; the rest come from the error table). */
enum { ST_OK = 0, ST_INVALID_ARGUMENT = 3, ST_RESOURCE_EXHAUSTED = 8, ST_UNIMPLEMENTED = 12, ST_INTERNAL = 13,
       ST_UNAUTHENTICATED = 16 };

bool gw_h2grpc_is(const char *ct)
{
  static const char want[] = "application/grpc";
  if (!ct || strncasecmp(ct, want, sizeof want - 1) != 0)
    return false;
  char c = ct[sizeof want - 1];
  return c == '\0' || c == '+' || c == ';';
}

static void keep(char *dst, size_t cap, const uint8_t *v, size_t n)
{
  if (n >= cap)
    n = cap - 1;
  memcpy(dst, v, n);
  dst[n] = '\0';
}

void gw_h2grpc_header(struct gw_h2grpc *g, const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen)
{
  if (nlen == 12 && memcmp(name, "grpc-timeout", 12) == 0)
    keep(g->timeout, sizeof g->timeout, value, vlen);
  else if (nlen == 13 && memcmp(name, "grpc-encoding", 13) == 0)
    keep(g->encoding, sizeof g->encoding, value, vlen);
}

/* grpc-message: bytes outside printable ASCII, and '%', as %XX (gRPC PROTOCOL-HTTP2 "Percent-Encoded"). */
static char *percent_encode(const char *msg)
{
  static const char hex[] = "0123456789ABCDEF";
  size_t n = strlen(msg);
  char *out = gw_malloc(n * 3 + 1), *o = out;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)msg[i];
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      *o++ = (char)c;
    } else {
      *o++ = '%';
      *o++ = hex[c >> 4];
      *o++ = hex[c & 15];
    }
  }
  *o = '\0';
  return out;
}

static void answer_clear(struct gw_h2grpc *g, struct gw_http_resp *resp)
{
  free(g->message);
  free(g->details);
  g->message = g->details = NULL;
  g->status = ST_OK;
  gw_http_resp_fini(resp);
  memset(resp, 0, sizeof *resp);
  resp->status = 200;
  resp->content_type = "application/grpc";
}

/* An error answer: code, message, and the google.rpc.Status bytes for grpc-status-details-bin (or none). */
static void answer_error(struct gw_h2grpc *g, struct gw_http_resp *resp, int code, const char *msg,
                         const void *details, size_t dlen)
{
  answer_clear(g, resp);
  g->status = code;
  g->message = percent_encode(msg);
  if (details && dlen) {
    g->details = gw_malloc(4 * ((dlen + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)g->details, details, (int)dlen);
  }
}

void gw_h2grpc_fail(struct gw_pipeline *p, struct gw_h2grpc *g, gw_rc rc, const char *msg, struct gw_http_resp *resp)
{
  struct gw_arena *a = gw_arena_create(64 * 1024);
  struct gw_request_outcome o;
  memset(&o, 0, sizeof o);
  gw_err_set(&o.err, rc, "%s", msg);
  const void *body;
  size_t len;
  gw_receive_encode_response(a, false, &o, p->conf->receivers.retry_after_s, &body, &len);
  answer_error(g, resp, gw_err_grpc_status(rc), o.err.msg, body, len);
  gw_arena_destroy(a);
}

void gw_h2grpc_durable_failed(struct gw_pipeline *p, struct gw_h2grpc *g, gw_rc rc, struct gw_http_resp *resp)
{
  gw_metric_add(GW_M_REQUESTS_FAILED, 1);
  /* with its google.rpc.Status and RetryInfo, as the OTLP/HTTP answer to the same failure */
  gw_h2grpc_fail(p, g, rc,
                 rc == GW_ERR(SHUTDOWN) ? "the gateway is shutting down: retry" : "the spool's fsync failed: retry later",
                 resp);
}

/* grpc-timeout: 1 to 8 digits and a unit (H, M, S, m, u, n), in nanoseconds; false when malformed. */
static bool parse_timeout(const char *s, uint64_t *ns)
{
  size_t n = strlen(s);
  if (n < 2 || n > 9)
    return false;
  uint64_t v = 0;
  for (size_t i = 0; i + 1 < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  uint64_t unit;
  switch (s[n - 1]) {
  case 'H': unit = 3600000000000ull; break;
  case 'M': unit = 60000000000ull; break;
  case 'S': unit = 1000000000ull; break;
  case 'm': unit = 1000000ull; break;
  case 'u': unit = 1000ull; break;
  case 'n': unit = 1ull; break;
  default: return false;
  }
  *ns = v > UINT64_MAX / unit ? UINT64_MAX : v * unit;
  return true;
}

bool gw_h2grpc_begin(struct gw_pipeline *p, const char *listener, struct gw_h2grpc *g, const struct gw_http_head *h,
                     struct gw_http_req *q, struct gw_http_resp *resp)
{
  memset(q, 0, sizeof *q);
  g->on = true;
  answer_clear(g, resp);
  /* receivers.auth before anything else, as on the gRPC port: an unauthenticated client learns nothing. */
  if (p->auth) {
    enum gw_auth_result res = gw_auth_verify(p->auth, listener, h->authorization, h->authorization_len,
                                             h->api_key, h->api_key_len);
    if (res != GW_AUTH_OK) {
      gw_metric_add(GW_M_REQUESTS_FAILED, 1);
      gw_h2grpc_fail(p, g, GW_ERR(UNAUTHENTICATED),
                     res == GW_AUTH_MISSING ? "missing credentials: send authorization: Bearer <token> (or x-api-key) metadata"
                                            : "invalid token",
                     resp);
      return false;
    }
  }
  const char *path = h->path ? h->path : "";
  bool logs = strcmp(path, LOGS_METHOD) == 0;
  if (!logs && strcmp(path, TRACES_METHOD) != 0) {
    char msg[400];
    size_t ml = strlen(path);
    snprintf(msg, sizeof msg, "unknown method %.*s: this gateway serves %s and %s", (int)(ml > 150 ? 150 : ml), path,
             TRACES_METHOD, LOGS_METHOD);
    gw_h2grpc_fail(p, g, GW_ERR(NOT_FOUND), msg, resp); /* UNIMPLEMENTED */
    return false;
  }
  const char *sub = h->content_type + strlen("application/grpc");
  if (*sub == '+' && strncasecmp(sub, "+proto", 6) != 0) {
    char msg[200];
    snprintf(msg, sizeof msg, "content-type '%.60s' is not supported: use application/grpc or application/grpc+proto",
             h->content_type);
    gw_h2grpc_fail(p, g, GW_ERR(NOT_FOUND), msg, resp); /* UNIMPLEMENTED */
    return false;
  }
  uint64_t timeout = 0;
  if (g->timeout[0] && !parse_timeout(g->timeout, &timeout)) {
    char msg[160];
    snprintf(msg, sizeof msg, "malformed grpc-timeout '%s': 1 to 8 digits and a unit (H, M, S, m, u, n)", g->timeout);
    gw_h2grpc_fail(p, g, GW_ERR(INVALID), msg, resp);
    return false;
  }
  g->logs = logs;
  g->start_ns = gw_mono_ns();
  /* a deadline years away is none (as on the gRPC port); 0 has passed already */
  g->deadline_ns = !g->timeout[0] || timeout > FAR_NS ? 0 : g->start_ns + (timeout ? timeout : 1);
  return true;
}

static void early(struct gw_h2grpc *g, int code, const char *msg)
{
  if (!g->early_status) {
    g->early_status = code;
    snprintf(g->early_msg, sizeof g->early_msg, "%s", msg);
  }
}

enum gw_coding gw_h2grpc_coding(const struct gw_h2grpc *g)
{
  if (!g->compressed)
    return GW_CODING_NONE;
  if (strcasecmp(g->encoding, "zstd") == 0)
    return GW_CODING_ZSTD;
  if (strcasecmp(g->encoding, "snappy") == 0)
    return GW_CODING_SNAPPY;
  if (strcasecmp(g->encoding, "lz4") == 0)
    return GW_CODING_LZ4;
  return GW_CODING_DEFLATE;
}

/* A compressed message is only understood with grpc-encoding gzip, deflate, zstd, snappy or lz4. */
static void check_compression(struct gw_h2grpc *g)
{
  if (!g->compressed || strcasecmp(g->encoding, "gzip") == 0 || strcasecmp(g->encoding, "deflate") == 0 ||
      strcasecmp(g->encoding, "zstd") == 0 || strcasecmp(g->encoding, "snappy") == 0 ||
      strcasecmp(g->encoding, "lz4") == 0)
    return;
  char msg[200];
  if (!g->encoding[0] || strcasecmp(g->encoding, "identity") == 0) {
    early(g, ST_INTERNAL, "the message's compressed flag is set but the call has no grpc-encoding");
    return;
  }
  snprintf(msg, sizeof msg, "grpc-encoding '%s' is not supported: use gzip, deflate, zstd, snappy, lz4 or identity (grpc-accept-encoding: %s)",
           g->encoding, ACCEPT_ENCODING);
  early(g, ST_UNIMPLEMENTED, msg);
}

bool gw_h2grpc_body(struct gw_pipeline *p, struct gw_h2grpc *g, struct gw_http_req *q, const void *data, size_t n,
                    struct gw_http_resp *resp)
{
  const unsigned char *d = data;
  while (n && !g->early_status) {
    if (!g->have_msg) {
      size_t want = 5u - g->prefix_got;
      size_t take = want < n ? want : n;
      memcpy(g->prefix + g->prefix_got, d, take);
      g->prefix_got += (uint8_t)take;
      d += take;
      n -= take;
      if (g->prefix_got < 5)
        break;
      g->have_msg = true;
      g->msg_len = g->msg_left = (uint32_t)g->prefix[1] << 24 | (uint32_t)g->prefix[2] << 16 |
                                 (uint32_t)g->prefix[3] << 8 | g->prefix[4];
      if (g->prefix[0] > 1) {
        early(g, ST_INVALID_ARGUMENT, "malformed message prefix: the compressed flag is neither 0 nor 1");
        break;
      }
      g->compressed = g->prefix[0] == 1;
      check_compression(g);
      uint64_t max = p->conf->receivers.max_request_bytes;
      if (g->msg_len > max) {
        char msg[200];
        snprintf(msg, sizeof msg, "message of %u bytes is over the limit of %llu (receivers.max_request_bytes)",
                 g->msg_len, (unsigned long long)max);
        gw_http_req_fini(p, q);
        gw_h2grpc_fail(p, g, GW_ERR(TOO_LARGE), msg, resp); /* RESOURCE_EXHAUSTED, no RetryInfo: it never fits */
        return true;
      }
      q->expect = g->msg_len; /* the body's mapping is sized once (what is counted in flight still grows) */
    } else if (g->msg_left) {
      size_t take = g->msg_left < n ? g->msg_left : n;
      gw_http_body(p, q, d, take);
      g->msg_left -= (uint32_t)take;
      d += take;
      n -= take;
    } else {
      early(g, ST_INVALID_ARGUMENT, "more than one message in a unary call: send one Export request per call");
    }
  }
  return false;
}

uint64_t gw_h2grpc_body_deadline_ms(const struct gw_h2grpc *g, uint64_t body_ms)
{
  uint64_t call = g->deadline_ns ? (g->deadline_ns + 999999) / 1000000 : 0;
  return call && call < body_ms ? call : body_ms;
}

bool gw_h2grpc_expired(const struct gw_h2grpc *g) { return g->deadline_ns && gw_mono_ns() >= g->deadline_ns; }

void gw_h2grpc_deadline(struct gw_pipeline *p, struct gw_h2grpc *g, struct gw_http_req *q, struct gw_http_resp *resp)
{
  char msg[200];
  unsigned long long ms = (unsigned long long)((gw_mono_ns() - (g->start_ns ? g->start_ns : gw_mono_ns())) / 1000000u);
  if (g->have_msg)
    snprintf(msg, sizeof msg, "the call's deadline passed %llu ms into the request, while its message was still "
             "arriving (%u of %u bytes): abandoned", ms, g->msg_len - g->msg_left, g->msg_len);
  else
    snprintf(msg, sizeof msg, "the call's deadline passed %llu ms into the request, before its message arrived: "
             "abandoned", ms);
  gw_metric_add(GW_M_REQUESTS, 1);
  gw_metric_add(GW_M_REQUESTS_FAILED, 1);
  gw_metric_add(GW_M_REQUESTS_DEADLINE, 1);
  gw_http_req_fini(p, q);
  gw_h2grpc_fail(p, g, GW_ERR(DEADLINE), msg, resp);
}

/* The client reset the stream: nobody waits for the answer (gw_request_limit). */
static gw_rc gone(void *arg)
{
  struct gw_h2grpc *g = arg;
  return atomic_load(&g->gone) ? GW_ERR(CANCELLED) : GW_OK;
}

bool gw_h2grpc_finish(struct gw_pipeline *p, struct gw_h2grpc *g, struct gw_http_req *q,
                      void (*done)(void *arg, gw_rc rc), void *arg, struct gw_http_resp *resp)
{
  const char *what = g->logs ? "ExportLogsServiceRequest" : "ExportTraceServiceRequest";
  if (g->early_status) {
    gw_http_req_fini(p, q);
    answer_error(g, resp, g->early_status, g->early_msg, NULL, 0);
    return false;
  }
  if (!g->have_msg || g->msg_left) {
    /* as the gRPC port: a call without a well-framed message is refused, never taken as an empty export */
    char msg[240];
    if (!g->have_msg && !g->prefix_got)
      snprintf(msg, sizeof msg, "no request message: the call carried no well-framed %s", what);
    else if (!g->have_msg)
      snprintf(msg, sizeof msg, "no request message: the call carried no well-framed %s (the body ended inside the "
               "5-byte message prefix)", what);
    else
      snprintf(msg, sizeof msg, "no request message: the call carried no well-framed %s (the body ended %u bytes "
               "into a message of %u)", what, g->msg_len - g->msg_left, g->msg_len);
    gw_metric_add(GW_M_REQUESTS, 1);
    gw_metric_add(GW_M_REQUESTS_FAILED, 1);
    gw_http_req_fini(p, q);
    gw_h2grpc_fail(p, g, GW_ERR(DECODE), msg, resp);
    return false;
  }
  if (q->early) {
    if (q->early == GW_ERR(BUSY)) { /* counted as on the gRPC port */
      gw_metric_add(GW_M_BACKPRESSURE, 1);
      gw_metric_add(GW_M_REQUESTS_FAILED, 1);
    }
    gw_h2grpc_fail(p, g, q->early, q->early_msg, resp);
    gw_http_req_fini(p, q);
    return false;
  }
  struct gw_arena *a = gw_pipeline_arena(p, q->reserved);
  struct gw_request_outcome o;
  if (done)
    gw_request_defer(done, arg);
  gw_request_limit(g->deadline_ns, gone, g);
  if (g->logs)
    gw_request_logs(p, a, GW_ENC_PROTOBUF, gw_h2grpc_coding(g), q->body ? q->body : "", q->len, &o);
  else
    gw_request_traces(p, a, GW_ENC_PROTOBUF, gw_h2grpc_coding(g), q->body ? q->body : "", q->len, &o);
  gw_http_req_fini(p, q); /* the body's share of the in-flight budget goes back now */
  if (o.err.rc)
    gw_arena_reset(a); /* an arena that ran out still has room for the error body */
  const void *body;
  size_t len;
  gw_receive_encode_response(a, false, &o, p->conf->receivers.retry_after_s, &body, &len);
  if (o.err.rc) {
    answer_error(g, resp, gw_err_grpc_status(o.err.rc), o.err.msg, body, len);
    if (!gw_err_retryable(o.err.rc))
      gw_debug("http", "gRPC call refused: %s", o.err.msg);
  } else {
    answer_clear(g, resp);
    unsigned char *framed = gw_malloc(len + 5);
    framed[0] = 0; /* answers go uncompressed: identity is acceptable to every client */
    framed[1] = (unsigned char)(len >> 24);
    framed[2] = (unsigned char)(len >> 16);
    framed[3] = (unsigned char)(len >> 8);
    framed[4] = (unsigned char)len;
    memcpy(framed + 5, body, len);
    resp->body = framed;
    resp->len = len + 5;
  }
  gw_arena_reset(a); /* the thread keeps a few MiB for its next request, not a large request's worth */
  return o.deferred;
}

#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NO_COPY_NAME}

void gw_h2grpc_submit(nghttp2_session *s, int32_t id, struct gw_h2grpc *g, nghttp2_data_provider *dp)
{
  if (g->start_ns) { /* arrival to answer, as the gRPC port counts it */
    gw_hist_observe(g->logs ? GW_H_REQ_GRPC_LOGS : GW_H_REQ_GRPC_TRACES, gw_mono_ns() - g->start_ns);
    g->start_ns = 0;
  }
  char code[12];
  snprintf(code, sizeof code, "%d", g->status);
  nghttp2_nv nva[7] = {NV(":status", "200"), NV("content-type", "application/grpc"),
                       NV("grpc-accept-encoding", ACCEPT_ENCODING)};
  size_t n = 3;
  if (g->status == ST_OK) {
    nghttp2_submit_response(s, id, nva, n, dp);
    return;
  }
  nva[n++] = (nghttp2_nv)NV("grpc-status", code);
  if (g->message)
    nva[n++] = (nghttp2_nv)NV("grpc-message", g->message);
  if (g->details)
    nva[n++] = (nghttp2_nv)NV("grpc-status-details-bin", g->details);
  nghttp2_submit_response(s, id, nva, n, NULL); /* Trailers-Only */
}

void gw_h2grpc_trailers(nghttp2_session *s, int32_t id, struct gw_h2grpc *g)
{
  (void)g;
  nghttp2_nv nva[1] = {NV("grpc-status", "0")};
  nghttp2_submit_trailer(s, id, nva, 1);
}

void gw_h2grpc_fini(struct gw_h2grpc *g)
{
  free(g->message);
  free(g->details);
  g->message = g->details = NULL;
}
