/*
 * receive_http.c: OTLP/HTTP 1.1 on libmicrohttpd. POST /v1/traces or /v1/logs with application/x-protobuf or
 * application/json, optional Content-Encoding: gzip; the request rules themselves are in http_req.c,
 * shared with HTTP/2 (h2.c). The port is accepted by front.c, which hands HTTP/1.1 connections here.
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
 * A client that closes its connection while its request is processed is seen between stages and inside
 * redaction (its socket polled for a hang-up, as nginx does for proxied requests): the work stops and no
 * answer is sent. A client that only half-closes (shuts down its sending side) after its request looks
 * the same and is treated as gone. OTLP/HTTP has no deadline header, so there is no deadline here.
 */
#include <microhttpd.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/httpd.h"
#include "core/log.h"
#include "core/metrics.h"
#include "receive/front.h"
#include "receive/http_req.h"
#include "receive/lane.h"
#include "receive/receive.h"

struct gw_http_receiver {
  struct MHD_Daemon *d;
  struct gw_front *front; /* accepts the port, TLS and HTTP/2; hands HTTP/1.1 to d */
  struct gw_pipeline *p;
  struct gw_httpd_guard *guard;
  _Atomic int suspended; /* connections waiting for the spool's sync */
  _Atomic int active;    /* handler calls under way: one may be about to suspend its connection */
  atomic_bool stopping;  /* set by gw_http_receiver_stop: a request not yet processed gets 503 */
};

/* One request's state, from the first handler call to the completion callback. */
struct conn_req {
  struct gw_http_req q;
  uint64_t start_mono; /* the request's headers arrived */
  uint64_t durable_mono; /* its entry was durable (0: not appended) */
  uint64_t body_mono;    /* its whole body was in */
  /* An answer waiting for the spool's sync: the handler prepares it and suspends the connection, the
   * spool says the entry is durable; whichever comes second resumes the connection, and libmicrohttpd calls
   * the handler again, which sends it. */
  struct gw_http_receiver *r;
  struct MHD_Connection *c;
  int fd;       /* the connection's socket, polled for a hang-up while the request is processed */
  bool waiting;
  atomic_int left; /* 2: the handler's part and the spool's */
  gw_rc durable_rc;
  struct gw_http_resp resp;
};

static void req_free(struct gw_http_receiver *r, struct conn_req *q)
{
  if (!q)
    return;
  gw_http_req_fini(r->p, &q->q);
  if (q->waiting) /* the client left while its answer waited */
    atomic_fetch_sub(&r->suspended, 1);
  gw_http_resp_fini(&q->resp);
  free(q);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
  (void)toe;
  struct gw_http_receiver *r = cls;
  struct conn_req *q = *con_cls;
  if (q) { /* answered (or the client went away): the request's whole time, upload to reply */
    uint64_t now = gw_mono_ns();
    gw_hist_observe(q->q.logs ? GW_H_REQ_HTTP_LOGS : GW_H_REQ_HTTP_TRACES, now - q->start_mono);
    if (q->durable_mono)
      gw_hist_observe(GW_H_STAGE_ANSWER, now - q->durable_mono);
  }
  req_free(r, *con_cls);
  *con_cls = NULL;
  gw_httpd_guard_phase(c, GW_HTTPD_ANSWERED);
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
  q->durable_mono = gw_mono_ns();
  if (atomic_fetch_sub(&q->left, 1) == 1)
    MHD_resume_connection(q->c);
}

static enum MHD_Result send_resp(struct gw_http_receiver *r, struct MHD_Connection *c, const struct gw_http_resp *rs)
{
  struct MHD_Response *resp = MHD_create_response_from_buffer(rs->len, rs->body ? rs->body : (void *)"",
                                                              MHD_RESPMEM_MUST_COPY);
  if (!resp)
    return MHD_NO;
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, rs->content_type);
  if (rs->status == 429 || rs->status == 503) {
    char ra[16];
    snprintf(ra, sizeof ra, "%u", r->p->conf->receivers.retry_after_s);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
  }
  if (rs->hname)
    MHD_add_response_header(resp, rs->hname, rs->hvalue);
  enum MHD_Result ret = MHD_queue_response(c, rs->status, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* Send an answer made on the spot and free it. */
static enum MHD_Result send_now(struct gw_http_receiver *r, struct MHD_Connection *c, struct gw_http_resp *rs)
{
  enum MHD_Result ret = send_resp(r, c, rs);
  gw_http_resp_fini(rs);
  return ret;
}

/* The client hung up (or shut down its side): nobody will read the answer. */
static gw_rc client_gone(void *arg)
{
  struct pollfd pfd = {.fd = *(const int *)arg, .events = POLLRDHUP};
  if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)))
    return GW_ERR(CANCELLED);
  return GW_OK;
}

/* The headers that say where the body ends (RFC 9112 §6), as the client sent them. */
struct framing {
  const char *clen; /* the first Content-Length */
  bool clen_differ; /* another Content-Length with a different value */
  bool chunked;     /* a Transfer-Encoding */
};

static enum MHD_Result framing_of(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
  (void)kind;
  struct framing *fr = cls;
  if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
    if (!fr->clen)
      fr->clen = value ? value : "";
    else if (strcmp(fr->clen, value ? value : "") != 0)
      fr->clen_differ = true;
  } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
    fr->chunked = true;
  }
  return MHD_YES;
}

/* A request whose body length is ambiguous: Content-Length headers that disagree, or Content-Length beside
 * Transfer-Encoding. libmicrohttpd frames the body by one of them and the gateway would judge it by the
 * first Content-Length; a proxy in front may frame it by another, and the bytes left over become a
 * "request" of somebody else's (request smuggling). RFC 9112 §6.3 makes the first an unrecoverable error
 * and §6.1 lets a server reject the second: both are 400, and the connection is closed. NULL: unambiguous. */
static const char *ambiguous_framing(struct MHD_Connection *c)
{
  struct framing fr = {0};
  MHD_get_connection_values(c, MHD_HEADER_KIND, framing_of, &fr);
  if (fr.clen_differ)
    return "conflicting Content-Length headers: send one";
  if (fr.clen && fr.chunked)
    return "both Content-Length and Transfer-Encoding: send one of them";
  return NULL;
}

/* A large request on the large-request lane (lane.h), its connection suspended meanwhile: the pipeline runs
 * here, and the connection is resumed (on_request then sends the answer) once the answer is ready and, when
 * it waits for the spool, the entry is durable. */
static void lane_finish(void *arg)
{
  struct conn_req *q = arg;
  gw_hist_observe(GW_H_STAGE_QUEUE, gw_mono_ns() - q->body_mono);
  if (q->fd >= 0)
    gw_request_limit(0, client_gone, &q->fd);
  if (!gw_http_finish(q->r->p, &q->q, on_durable, q, &q->resp)) {
    MHD_resume_connection(q->c); /* answered now (or the client is gone: status 0) */
    return;
  }
  if (atomic_fetch_sub(&q->left, 1) == 1) /* durable already */
    MHD_resume_connection(q->c);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
  (void)version;
  struct gw_http_receiver *r = cls;
  struct conn_req *q = *con_cls;
  struct gw_http_resp rs;

  if (!q) {
    gw_httpd_guard_phase(c, GW_HTTPD_HEADERS_DONE);
    const char *ambiguous = ambiguous_framing(c);
    if (ambiguous) {
      gw_metric_add(GW_M_REQUESTS_FAILED, 1);
      const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
      bool json = ct && strncasecmp(ct, "application/json", 16) == 0;
      gw_http_resp_error(r->p, json, GW_ERR(INVALID), ambiguous, &rs);
      rs.hname = "Connection"; /* what follows on this connection cannot be told apart from the body */
      rs.hvalue = "close";
      return send_now(r, c, &rs);
    }
    struct gw_http_head h = {
      .path = url,
      .method = method,
      .content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
      .content_encoding = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING),
      .content_length = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH),
      .authorization = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
      .api_key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-api-key"),
    };
    h.authorization_len = h.authorization ? strlen(h.authorization) : 0;
    h.api_key_len = h.api_key ? strlen(h.api_key) : 0;
    const char *expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
    h.expect_continue = expect && strcasecmp(expect, "100-continue") == 0;
    q = gw_calloc(1, sizeof *q);
    q->start_mono = gw_mono_ns();
    if (!gw_http_begin(r->p, "otlp_http", &h, &q->q, &rs)) {
      free(q);
      return send_now(r, c, &rs);
    }
    q->r = r;
    q->c = c;
    *con_cls = q;
    return MHD_YES;
  }

  if (*upload_size) {
    gw_http_body(r->p, &q->q, upload, *upload_size);
    *upload_size = 0;
    return MHD_YES;
  }

  if (q->waiting) { /* resumed: the spool has synced the entry (or failed to), or the large-request lane is done */
    q->waiting = false;
    atomic_fetch_sub(&r->suspended, 1);
    if (q->resp.status == 0) { /* the client went away while the lane processed its request */
      gw_http_resp_fini(&q->resp);
      return MHD_NO;
    }
    if (q->durable_rc) {
      gw_http_resp_fini(&q->resp);
      gw_http_resp_durable_failed(r->p, q->q.json, q->durable_rc, &q->resp);
    }
    return send_resp(r, c, &q->resp);
  }
  gw_httpd_guard_phase(c, GW_HTTPD_BODY_DONE);
  if (atomic_load(&r->stopping)) {
    /* The receiver is stopping (gw_http_receiver_stop): this request on an open keep-alive connection is not
     * processed, so it cannot suspend its connection after the stop's last look. The client retries. */
    gw_http_resp_durable_failed(r->p, q->q.json, GW_ERR(SHUTDOWN), &q->resp);
    return send_resp(r, c, &q->resp);
  }
  q->body_mono = gw_mono_ns();
  gw_hist_observe(GW_H_STAGE_UPLOAD, q->body_mono - q->start_mono);
  atomic_init(&q->left, 2);
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  int fd = ci ? ci->connect_fd : -1;
  const struct gw_conf *conf = r->p->conf;
  if (r->p->lane && conf->receivers.large_bytes && !q->q.early && q->q.body && q->q.len &&
      gw_lane_size((const unsigned char *)q->q.body, q->q.len,
                   (const unsigned char *)q->q.body + (q->q.len >= 4 ? q->q.len - 4 : 0), q->q.len, q->q.coding) >=
        conf->receivers.large_bytes) {
    /* Large: processed on the lane, this thread goes on serving the other connections. */
    q->fd = fd;
    q->waiting = true;
    atomic_fetch_add(&r->suspended, 1);
    MHD_suspend_connection(c);
    gw_lane_submit(r->p->lane, lane_finish, q);
    return MHD_YES;
  }
  if (fd >= 0)
    gw_request_limit(0, client_gone, &fd);
  if (!gw_http_finish(r->p, &q->q, on_durable, q, &q->resp)) {
    if (q->resp.status == 0) { /* the client is gone: nobody to answer, close the connection */
      gw_http_resp_fini(&q->resp);
      return MHD_NO;
    }
    return send_resp(r, c, &q->resp);
  }
  if (atomic_load(&q->left) == 1) {
    /* Durable already (memory spool, spool.fsync never, or a sync that was quick): answer at once. */
    if (q->durable_rc) {
      gw_http_resp_fini(&q->resp);
      gw_http_resp_durable_failed(r->p, q->q.json, q->durable_rc, &q->resp);
    }
    return send_resp(r, c, &q->resp);
  }
  q->waiting = true;
  atomic_fetch_add(&r->suspended, 1);
  MHD_suspend_connection(c);
  if (atomic_fetch_sub(&q->left, 1) == 1) /* durable meanwhile */
    MHD_resume_connection(c);
  return MHD_YES;
}

/* Every handler call is counted while it runs, so the stop sees a request that is about to suspend its
 * connection: `active` covers it until it returns, `suspended` from before then (see gw_http_receiver_stop). */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
  struct gw_http_receiver *r = cls;
  atomic_fetch_add(&r->active, 1);
  enum MHD_Result res = handle(cls, c, url, method, version, upload, upload_size, con_cls);
  atomic_fetch_sub(&r->active, 1);
  return res;
}

struct gw_http_receiver *gw_http_receiver_start(struct gw_pipeline *p, struct gw_err *err)
{
  const struct gw_conf *conf = p->conf;
  struct gw_http_receiver *r = gw_calloc(1, sizeof *r);
  r->p = p;
  atomic_init(&r->suspended, 0);
  atomic_init(&r->active, 0);
  atomic_init(&r->stopping, false);
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
  const struct gw_front_port port = {
    .addr = conf->receivers.http_addr,
    .listener = "otlp_http",
    .threads = conf->receivers.http_threads,
    .max_conns = conf->receivers.http_max_connections,
    .per_ip = conf->receivers.http_max_per_ip,
    .header_ms = conf->receivers.http_header_ms,
    .idle_ms = conf->receivers.http_idle_ms,
    .body_ms = conf->receivers.http_body_ms,
    .max_streams = conf->receivers.http_max_streams,
    .grpc = conf->receivers.http_grpc,
  };
  if (!(r->front = gw_front_start(p, &port, r->d, r->guard, err)))
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
   * stopped with a suspended connection (it aborts). The spool is still open, so they come within a sync.
   * A keep-alive connection may still bring a request: once `stopping` is set, a request not yet processed
   * is answered 503 instead of suspending, and one already past that check is counted in `active` until it
   * has either answered or counted itself in `suspended`, so both at zero means none can suspend any more. */
  gw_front_stop_accepting(r->front);
  atomic_store(&r->stopping, true);
  uint64_t until = gw_mono_ns() + 30000000000ull;
  while ((atomic_load(&r->suspended) > 0 || atomic_load(&r->active) > 0) && gw_mono_ns() < until) {
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
