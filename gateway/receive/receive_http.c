/*
 * receive_http.c: OTLP/HTTP 1.1 on libmicrohttpd. POST /v1/traces or /v1/logs with application/x-protobuf or
 * application/json, optional Content-Encoding: gzip. Status codes follow OTLP §"HTTP status codes".
 *
 * Connections: libmicrohttpd's epoll thread pool (receivers.http.threads), not a thread per connection, so
 * thousands of idle or slow clients cost descriptors and a little memory, not threads; a connection limit
 * in total and per client address; read deadlines for the headers and the body (core/httpd.h), because
 * libmicrohttpd's own timeout is an idle timeout a slowloris client never trips.
 * Bodies: libmicrohttpd hands the body over in chunks of at most 32 KiB: they are accumulated under the
 * request size cap and the global in-flight budget, so a slow or huge upload can pin neither unbounded
 * memory nor more than its share.
 * Answers: a request the disk spool must sync first is not answered from a pool thread that waits for the
 * sync (one slow fsync would stall every connection of that thread): the connection is suspended and
 * resumed by the spool once its entry is durable (gw_request_defer), as the gRPC receiver does.
 */
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/auth.h"
#include "core/httpd.h"
#include "core/log.h"
#include "core/metrics.h"
#include "receive/front.h"
#include "receive/receive.h"

struct gw_http_receiver {
  struct MHD_Daemon *d;
  struct gw_front *front; /* accepts the port, TLS and HTTP/2; hands HTTP/1.1 to d */
  struct gw_pipeline *p;
  struct gw_httpd_guard *guard;
  _Atomic int suspended; /* connections waiting for the spool's sync */
};

/* One request's state, from the first handler call to the completion callback. */
struct conn_req {
  enum gw_encoding enc;
  bool gzip, logs;
  char *body;
  size_t len, cap, reserved;
  gw_rc early; /* a failure found while receiving (too large, busy): answered when the upload ends */
  char early_msg[200];
  /* An answer waiting for the spool's sync: the handler prepares it and suspends the connection, the
   * spool says the entry is durable; whichever comes second resumes the connection, and libmicrohttpd calls
   * the handler again, which sends it. */
  struct gw_http_receiver *r;
  struct MHD_Connection *c;
  bool waiting;
  atomic_int left; /* 2: the handler's part and the spool's */
  gw_rc durable_rc;
  unsigned status;
  void *resp;
  size_t resp_len;
};

static void req_free(struct gw_http_receiver *r, struct conn_req *q)
{
  if (!q)
    return;
  if (q->reserved)
    gw_pipeline_release(r->p, q->reserved);
  if (q->waiting) /* the client left while its answer waited */
    atomic_fetch_sub(&r->suspended, 1);
  free(q->body);
  free(q->resp);
  free(q);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
  (void)toe;
  struct gw_http_receiver *r = cls;
  req_free(r, *con_cls);
  *con_cls = NULL;
  gw_httpd_guard_phase(c, GW_HTTPD_ANSWERED);
}

/* Why an accepted entry could not be acknowledged after all. */
static const char *durable_failure(gw_rc rc)
{
  return rc == GW_ERR(SHUTDOWN) ? "the gateway is shutting down: retry" : "the spool's fsync failed: retry later";
}

/* libmicrohttpd's connection notifications: the read deadlines, and the address slot the front took. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
  struct gw_http_receiver *r = cls;
  gw_httpd_guard_notify(r->guard, c, socket_context, code);
  if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci)
      gw_front_release(r->front, ci->client_addr);
  }
}

static void on_durable(void *arg, gw_rc rc)
{
  struct conn_req *q = arg;
  q->durable_rc = rc;
  if (atomic_fetch_sub(&q->left, 1) == 1)
    MHD_resume_connection(q->c);
}

static enum MHD_Result reply_hdr(struct MHD_Connection *c, unsigned status, const char *ctype, const void *body,
                                 size_t len, uint32_t retry_after, const char *hname, const char *hvalue)
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
  if (hname)
    MHD_add_response_header(resp, hname, hvalue);
  enum MHD_Result ret = MHD_queue_response(c, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *ctype, const void *body, size_t len,
                             uint32_t retry_after)
{
  return reply_hdr(c, status, ctype, body, len, retry_after, NULL, NULL);
}

/* Answer an error before or without a pipeline run (routing, content type, size, credentials). */
static enum MHD_Result reply_error_hdr(struct gw_http_receiver *r, struct MHD_Connection *c, bool json, gw_rc rc,
                                       const char *msg, const char *hname, const char *hvalue)
{
  struct gw_arena *a = gw_arena_create(64 * 1024);
  struct gw_request_outcome o;
  memset(&o, 0, sizeof o);
  gw_err_set(&o.err, rc, "%s", msg);
  uint32_t ra = r->p->conf->receivers.retry_after_s;
  const void *body;
  size_t len;
  gw_receive_encode_response(a, json, &o, ra, &body, &len);
  enum MHD_Result ret = reply_hdr(c, (unsigned)gw_err_http_status(rc), json ? "application/json" : "application/x-protobuf",
                                  body, len, ra, hname, hvalue);
  gw_arena_destroy(a);
  return ret;
}

static enum MHD_Result reply_error(struct gw_http_receiver *r, struct MHD_Connection *c, bool json, gw_rc rc,
                                   const char *msg)
{
  return reply_error_hdr(r, c, json, rc, msg, NULL, NULL);
}

/* receivers.auth: 401 with the RFC 6750 challenge, before the body is read. The token is never echoed. */
static enum MHD_Result check_auth(struct gw_http_receiver *r, struct MHD_Connection *c, bool json, bool *refused)
{
  *refused = false;
  if (!r->p->auth)
    return MHD_YES;
  const char *az = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-api-key");
  enum gw_auth_result res =
    gw_auth_verify(r->p->auth, "otlp_http", az, az ? strlen(az) : 0, key, key ? strlen(key) : 0);
  if (res == GW_AUTH_OK)
    return MHD_YES;
  *refused = true;
  gw_metric_add(GW_M_REQUESTS_FAILED, 1);
  if (res == GW_AUTH_MISSING)
    return reply_error_hdr(r, c, json, GW_ERR(UNAUTHENTICATED),
                           "missing credentials: send Authorization: Bearer <token> (or x-api-key)",
                           MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"genai-gateway\"");
  return reply_error_hdr(r, c, json, GW_ERR(UNAUTHENTICATED), "invalid token", MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                         "Bearer realm=\"genai-gateway\", error=\"invalid_token\"");
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
    gw_httpd_guard_phase(c, GW_HTTPD_HEADERS_DONE);
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    bool json = ct && media_is(ct, "application/json");
    bool refused;
    enum MHD_Result ar = check_auth(r, c, json, &refused);
    if (refused)
      return ar;
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
    q->r = r;
    q->c = c;
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
  const char *ctype = json ? "application/json" : "application/x-protobuf";
  uint32_t ra = conf->receivers.retry_after_s;
  if (q->waiting) { /* resumed: the spool has synced the entry (or failed to) */
    q->waiting = false;
    atomic_fetch_sub(&r->suspended, 1);
    if (q->durable_rc) {
      gw_metric_add(GW_M_REQUESTS_FAILED, 1);
      return reply_error(r, c, json, q->durable_rc, durable_failure(q->durable_rc));
    }
    return reply(c, q->status, ctype, q->resp, q->resp_len, ra);
  }
  gw_httpd_guard_phase(c, GW_HTTPD_BODY_DONE);
  if (q->early)
    return reply_error(r, c, json, q->early, q->early_msg);

  /* The decoded request usually takes a few times the wire size; the arena cap bounds it. */
  size_t cap = conf->receivers.max_request_bytes * 4 + (1u << 20);
  struct gw_arena *a = gw_arena_thread(cap);
  struct gw_request_outcome o;
  atomic_init(&q->left, 2);
  gw_request_defer(on_durable, q);
  if (q->logs)
    gw_request_logs(r->p, a, q->enc, q->gzip, q->body ? q->body : "", q->len, &o);
  else
    gw_request_traces(r->p, a, q->enc, q->gzip, q->body ? q->body : "", q->len, &o);
  /* The body is no longer needed: give its share of the in-flight budget back now, not when the answer
   * has gone out. */
  if (q->reserved)
    gw_pipeline_release(r->p, q->reserved);
  q->reserved = 0;
  free(q->body);
  q->body = NULL;
  const void *body;
  size_t len;
  gw_receive_encode_response(a, json, &o, ra, &body, &len);
  unsigned status = o.err.rc ? (unsigned)gw_err_http_status(o.err.rc) : 200;
  if (o.err.rc && !gw_err_retryable(o.err.rc))
    gw_debug("http", "request refused: %s", o.err.msg);
  enum MHD_Result ret;
  if (o.deferred && atomic_load(&q->left) == 1) {
    /* Durable already (memory spool, spool.fsync never, or a sync that was quick): answer at once. */
    if (q->durable_rc) {
      gw_metric_add(GW_M_REQUESTS_FAILED, 1);
      ret = reply_error(r, c, json, q->durable_rc, durable_failure(q->durable_rc));
    } else {
      ret = reply(c, status, ctype, body, len, ra);
    }
  } else if (o.deferred) {
    q->status = status;
    q->resp = gw_malloc(len ? len : 1);
    memcpy(q->resp, body, len);
    q->resp_len = len;
    q->waiting = true;
    atomic_fetch_add(&r->suspended, 1);
    MHD_suspend_connection(c);
    if (atomic_fetch_sub(&q->left, 1) == 1) /* already durable */
      MHD_resume_connection(c);
    ret = MHD_YES;
  } else {
    ret = reply(c, status, ctype, body, len, ra);
  }
  gw_arena_reset(a); /* the thread keeps a few MiB for its next request, not a large request's worth */
  return ret;
}

struct gw_http_receiver *gw_http_receiver_start(struct gw_pipeline *p, struct gw_err *err)
{
  const struct gw_conf *conf = p->conf;
  struct gw_http_receiver *r = gw_calloc(1, sizeof *r);
  r->p = p;
  atomic_init(&r->suspended, 0);
  r->guard = gw_httpd_guard_create("otlp_http", conf->receivers.http_idle_ms, conf->receivers.http_header_ms,
                                   conf->receivers.http_body_ms);
  /* The front (front.c) owns the port and both connection limits; libmicrohttpd's own limit is per pool
   * thread here, so it is set high enough never to refuse what the front admitted. */
  unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_NO_LISTEN_SOCKET;
  unsigned idle_s = (conf->receivers.http_idle_ms + 999) / 1000;
  r->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, r,
                          MHD_OPTION_THREAD_POOL_SIZE, (unsigned)conf->receivers.http_threads,
                          MHD_OPTION_CONNECTION_LIMIT, (unsigned)conf->receivers.http_max_connections *
                                                         (unsigned)conf->receivers.http_threads,
                          MHD_OPTION_CONNECTION_TIMEOUT, idle_s, MHD_OPTION_NOTIFY_COMPLETED, completed, r,
                          MHD_OPTION_NOTIFY_CONNECTION, on_connection, r,
                          MHD_OPTION_URI_LOG_CALLBACK, gw_httpd_guard_uri, r->guard, MHD_OPTION_END);
  if (!r->d) {
    gw_err_set(err, GW_ERR(IO), "OTLP/HTTP receiver: libmicrohttpd did not start");
    goto fail;
  }
  if (!(r->front = gw_front_start(p, r->d, err)))
    goto fail;
  gw_info("http", "OTLP/HTTP receiver listening on %s (%s, %u threads, at most %u connections, %u per address)",
          conf->receivers.http_addr,
          !p->tls ? "plaintext" : conf->receivers.tls_client_ca[0] ? "TLS, client certificates required" : "TLS",
          conf->receivers.http_threads, conf->receivers.http_max_connections, conf->receivers.http_max_per_ip);
  return r;
fail:
  if (r->d)
    MHD_stop_daemon(r->d);
  gw_httpd_guard_destroy(r->guard);
  free(r);
  return NULL;
}

void gw_http_receiver_stop(struct gw_http_receiver *r)
{
  if (!r)
    return;
  /* Stop accepting, then let the answers waiting for the spool's sync go out: libmicrohttpd must not be
   * stopped with a suspended connection. The spool is still open, so they come within a sync. */
  gw_front_stop_accepting(r->front);
  uint64_t until = gw_mono_ns() + 30000000000ull;
  while (atomic_load(&r->suspended) > 0 && gw_mono_ns() < until) {
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
  }
  if (atomic_load(&r->suspended) > 0)
    gw_error("http", "%d answers still wait for the spool after 30 s", atomic_load(&r->suspended));
  MHD_stop_daemon(r->d);
  gw_front_stop(r->front);
  gw_httpd_guard_destroy(r->guard);
  free(r);
}
