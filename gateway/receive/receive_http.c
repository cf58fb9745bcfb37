/*
 * receive_http.c: OTLP/HTTP 1.1 on libmicrohttpd, thread per connection (the fastest and steadiest mode
 * measured here; DESIGN §10). POST /v1/traces or /v1/logs with application/x-protobuf or application/json, optional
 * Content-Encoding: gzip. libmicrohttpd hands the body over in chunks of at most 32 KiB: they are
 * accumulated under the request size cap and the global in-flight budget, so a slow or huge upload can
 * pin neither unbounded memory nor more than its share. Status codes follow OTLP §"HTTP status codes".
 */
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/net.h"
#include "receive/receive.h"

struct gw_http_receiver {
  struct MHD_Daemon *d;
  struct gw_pipeline *p;
};

/* One request's state, from the first handler call to the completion callback. */
struct conn_req {
  uint64_t start_mono; /* the request's headers arrived */
  enum gw_encoding enc;
  bool gzip, logs;
  char *body;
  size_t len, cap, reserved;
  gw_rc early; /* a failure found while receiving (too large, busy): answered when the upload ends */
  char early_msg[200];
};

static void req_free(struct gw_http_receiver *r, struct conn_req *q)
{
  if (!q)
    return;
  if (q->reserved)
    gw_pipeline_release(r->p, q->reserved);
  free(q->body);
  free(q);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
  (void)c, (void)toe;
  struct conn_req *q = *con_cls;
  if (q) /* answered (or the client went away): the request's whole time, upload to reply */
    gw_hist_observe(q->logs ? GW_H_REQ_HTTP_LOGS : GW_H_REQ_HTTP_TRACES, gw_mono_ns() - q->start_mono);
  req_free(cls, *con_cls);
  *con_cls = NULL;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *ctype, const void *body, size_t len,
                             uint32_t retry_after)
{
  struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (!resp)
    return MHD_NO;
  if (ctype)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  if (retry_after && (status == 429 || status == 503)) {
    char ra[16];
    snprintf(ra, sizeof ra, "%u", retry_after);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
  }
  if (status == 405)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "POST");
  enum MHD_Result ret = MHD_queue_response(c, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* Answer an error before or without a pipeline run (routing, content type, size). */
static enum MHD_Result reply_error(struct gw_http_receiver *r, struct MHD_Connection *c, bool json, gw_rc rc,
                                   const char *msg)
{
  struct gw_arena *a = gw_arena_create(64 * 1024);
  struct gw_request_outcome o;
  memset(&o, 0, sizeof o);
  gw_err_set(&o.err, rc, "%s", msg);
  uint32_t ra = r->p->conf->receivers.retry_after_s;
  const void *body;
  size_t len;
  gw_receive_encode_response(a, json, &o, ra, &body, &len);
  enum MHD_Result ret = reply(c, (unsigned)gw_err_http_status(rc), json ? "application/json" : "application/x-protobuf",
                              body, len, ra);
  gw_arena_destroy(a);
  return ret;
}

/* Media type without parameters, case-insensitive. */
static bool media_is(const char *ct, const char *want)
{
  size_t n = strlen(want);
  if (strncasecmp(ct, want, n) != 0)
    return false;
  return ct[n] == 0 || ct[n] == ';' || ct[n] == ' ';
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
  (void)version;
  struct gw_http_receiver *r = cls;
  const struct gw_conf *conf = r->p->conf;
  struct conn_req *q = *con_cls;

  if (!q) {
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    bool json = ct && media_is(ct, "application/json");
    bool logs = strcmp(url, "/v1/logs") == 0;
    if (!logs && strcmp(url, "/v1/traces") != 0) {
      char msg[180];
      snprintf(msg, sizeof msg, "unknown path '%.100s': OTLP traces are POSTed to /v1/traces, logs to /v1/logs", url);
      return reply_error(r, c, json, GW_ERR(NOT_FOUND), msg);
    }
    if (strcmp(method, "POST") != 0)
      return reply_error(r, c, json, GW_ERR(METHOD), "method not allowed: use POST");
    if (!ct || (!json && !media_is(ct, "application/x-protobuf")))
      return reply_error(r, c, false, GW_ERR(UNSUPPORTED_MEDIA),
                         "unsupported Content-Type: use application/x-protobuf or application/json");
    const char *ce = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING);
    bool gzip = false;
    if (ce && strcasecmp(ce, "gzip") == 0)
      gzip = true;
    else if (ce && strcasecmp(ce, "identity") != 0)
      return reply_error(r, c, json, GW_ERR(UNSUPPORTED_MEDIA), "unsupported Content-Encoding: use gzip or none");
    q = gw_calloc(1, sizeof *q);
    q->start_mono = gw_mono_ns();
    q->enc = json ? GW_ENC_JSON : GW_ENC_PROTOBUF;
    q->gzip = gzip;
    q->logs = logs;
    *con_cls = q;
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long declared = cl ? strtoull(cl, NULL, 10) : 0;
    if (declared > conf->receivers.max_request_bytes) {
      char msg[160];
      snprintf(msg, sizeof msg, "request body of %llu bytes is over the limit of %llu", declared,
               (unsigned long long)conf->receivers.max_request_bytes);
      /* Answering before the body is read makes most clients see a broken pipe, not the 413: a body up
       * to a few times the limit is read and discarded (no memory kept), a larger one is refused at once
       * and the connection closed. */
      if (declared > conf->receivers.max_request_bytes * 4)
        return reply_error(r, c, json, GW_ERR(TOO_LARGE), msg);
      q->early = GW_ERR(TOO_LARGE);
      snprintf(q->early_msg, sizeof q->early_msg, "%s", msg);
    }
    return MHD_YES;
  }

  if (*upload_size) {
    size_t n = *upload_size;
    *upload_size = 0;
    if (q->early)
      return MHD_YES; /* discard the rest; answered at the end */
    if (q->len + n > conf->receivers.max_request_bytes) {
      q->early = GW_ERR(TOO_LARGE);
      snprintf(q->early_msg, sizeof q->early_msg, "request body is over the limit of %llu bytes",
               (unsigned long long)conf->receivers.max_request_bytes);
      free(q->body);
      q->body = NULL;
      q->len = q->cap = 0;
      return MHD_YES;
    }
    if (q->len + n > q->cap) {
      size_t ncap = q->cap ? q->cap * 2 : 64 * 1024;
      while (ncap < q->len + n)
        ncap *= 2;
      if (ncap > conf->receivers.max_request_bytes)
        ncap = conf->receivers.max_request_bytes;
      if (gw_pipeline_reserve(r->p, ncap - q->cap) != GW_OK) {
        q->early = GW_ERR(BUSY);
        snprintf(q->early_msg, sizeof q->early_msg, "too many request bytes in flight: retry later");
        return MHD_YES;
      }
      q->reserved += ncap - q->cap;
      q->body = gw_realloc(q->body, ncap);
      q->cap = ncap;
    }
    memcpy(q->body + q->len, upload, n);
    q->len += n;
    return MHD_YES;
  }

  bool json = q->enc == GW_ENC_JSON;
  if (q->early)
    return reply_error(r, c, json, q->early, q->early_msg);

  /* The decoded request usually takes a few times the wire size; the arena cap bounds it. */
  size_t cap = conf->receivers.max_request_bytes * 4 + (1u << 20);
  struct gw_arena *a = gw_arena_thread(cap);
  struct gw_request_outcome o;
  if (q->logs)
    gw_request_logs(r->p, a, q->enc, q->gzip, q->body ? q->body : "", q->len, &o);
  else
    gw_request_traces(r->p, a, q->enc, q->gzip, q->body ? q->body : "", q->len, &o);
  uint32_t ra = conf->receivers.retry_after_s;
  const void *body;
  size_t len;
  gw_receive_encode_response(a, json, &o, ra, &body, &len);
  unsigned status = o.err.rc ? (unsigned)gw_err_http_status(o.err.rc) : 200;
  if (o.err.rc && !gw_err_retryable(o.err.rc))
    gw_debug("http", "request refused: %s", o.err.msg);
  enum MHD_Result ret = reply(c, status, json ? "application/json" : "application/x-protobuf", body, len, ra);
  gw_arena_reset(a); /* the thread keeps a few MiB for its next request, not a large request's worth */
  return ret;
}

struct gw_http_receiver *gw_http_receiver_start(struct gw_pipeline *p, struct gw_err *err)
{
  struct sockaddr_storage ss;
  socklen_t sl;
  if (gw_net_parse_addr(p->conf->receivers.http_addr, &ss, &sl, err))
    return NULL;
  struct gw_http_receiver *r = gw_calloc(1, sizeof *r);
  r->p = p;
  unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC;
  if (ss.ss_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  r->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, r, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                          MHD_OPTION_CONNECTION_LIMIT, (unsigned)p->conf->receivers.http_max_connections,
                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_NOTIFY_COMPLETED, completed, r, MHD_OPTION_END);
  if (!r->d) {
    gw_err_set(err, GW_ERR(IO), "OTLP/HTTP receiver: cannot listen on %s (address in use or not permitted)",
               p->conf->receivers.http_addr);
    free(r);
    return NULL;
  }
  gw_info("http", "OTLP/HTTP receiver listening on %s", p->conf->receivers.http_addr);
  return r;
}

void gw_http_receiver_stop(struct gw_http_receiver *r)
{
  if (!r)
    return;
  MHD_stop_daemon(r->d);
  free(r);
}
