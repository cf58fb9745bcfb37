/*
 * h2.c: OTLP/HTTP over HTTP/2 with nghttp2, on the OTLP/HTTP port (h2c with prior knowledge, or ALPN h2
 * under TLS; front.c decides). /v1/traces and /v1/logs are served exactly as over HTTP/1.1: the head, the
 * body and the answer go through http_req.c, so status codes, content types, gzip, size limits and
 * credentials are the same.
 *
 * A connection's session lives on its front loop; nghttp2 parses into callbacks and serializes into
 * memory (mem_recv / mem_send), so the same code runs over plaintext and TLS. A complete request becomes
 * a job for a worker thread (the pipeline takes milliseconds of CPU and may wait for spool room); the
 * answer comes back to the loop through its completion list and eventfd, after the disk spool's sync
 * when there is one (gw_request_defer), and is submitted on the stream if the stream is still open.
 * Limits: receivers.http.max_concurrent_streams streams at once, a 16 KiB header list, a body within
 * body_timeout_ms of its headers (else RST_STREAM CANCEL, counted), an idle connection closed with
 * GOAWAY after idle_timeout_ms; nothing more is read from a client that does not read its answers.
 * An answer the client does not take (it keeps its flow-control window shut, or does not read its socket)
 * is not kept for it: a stream whose answer is not out within the answer limit (idle_timeout_ms; on the
 * gRPC port max_connection_idle_ms, or the body timeout when that is 0) is reset CANCEL, and a connection
 * whose socket takes no byte of what is queued for that long is closed; both counted.
 * A request refused before its body is complete (401, 404, 405, 415, 413 on its length) is answered at
 * once; when the answer is out and the client has not ended its side, the stream is reset NO_ERROR (RFC
 * 9113 §8.1: stop sending, the answer stands), and one whose answer is not out by the body timeout is reset
 * CANCEL: a refused stream never holds its connection open.
 * A POST whose content type is application/grpc is an OTLP/gRPC call (receivers.http.grpc): the same
 * stream machinery, with the request judged and answered by h2_grpc.c instead of http_req.c.
 *
 * The OTLP/gRPC port (receivers.grpc.engine nghttp2, port.h2_only) is served by the same code, with the
 * connection policing clients of gRPC core's server expect, from the receivers.grpc.* rows:
 *  - idle: no stream for max_connection_idle_ms: GOAWAY NO_ERROR "max_idle", then closed;
 *  - age: at max_connection_age_ms (+-10 %, so a fleet that connected together does not reconnect
 *    together) GOAWAY NO_ERROR "max_age": calls in flight finish, new ones go to a new connection; the
 *    connection closes when its calls are done, or at age + max_connection_age_grace_ms whatever remains;
 *  - keepalive enforcement: a PING sooner than min_ping_interval_ms after the previous one, or within two
 *    hours while no call is open (pings without calls are not permitted), is a strike; the third strike
 *    gets GOAWAY ENHANCE_YOUR_CALM "too_many_pings" and the connection closes. Sending HEADERS or DATA
 *    forgives the strikes, as gRPC core does.
 */
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/log.h"
#include "core/metrics.h"
#include "receive/front_int.h"
#include "receive/h2_grpc.h"
#include "receive/http_req.h"
#include "receive/lane.h"
#include "receive/request.h"

#define HDR_MAX 1024               /* longest header value kept */
#define HDR_LIST_MAX 16384         /* SETTINGS_MAX_HEADER_LIST_SIZE: a request's header list, as RFC 9113 §6.5.2 counts it */
#define STREAM_WINDOW (1 << 20)    /* per stream: a 270 KB body needs no WINDOW_UPDATE round trip */
#define CONN_WINDOW (16 << 20)
#define WORK_QUEUE_MAX 4096

struct h2stream {
  struct h2stream *prev, *next; /* the connection's streams */
  struct h2conn *hc;            /* NULL once the connection is gone */
  int32_t id;
  char path[256], method[16], ctype[128], cenc[32], clen[24];
  char *authz, *apikey;
  bool have_path, begun, refused, dispatched, closed;
  struct gw_http_req q;
  struct gw_http_resp resp;
  struct gw_h2grpc g; /* g.on: a gRPC call */
  size_t resp_off;
  char hname[32];
  size_t hdr_bytes; /* its header list so far (names, values and 32 per field); past HDR_LIST_MAX: refused */
  uint64_t deadline_ms; /* the body must be complete by then; 0: none */
  uint64_t durable_ns;  /* its spool entry was durable (gw_mono_ns; 0: the answer did not wait for it) */
  uint64_t answered_ms; /* its answer was submitted (gw_front_now_ms); 0: not yet, or reset since */
};

struct h2conn {
  struct fconn *fc;
  nghttp2_session *s;
  struct h2stream *streams;
  unsigned char *out; /* serialized frames the socket did not take yet */
  size_t out_off, out_len, out_cap;
  bool want_write; /* TLS wants the socket writable */
  uint64_t stalled_ms; /* out holds bytes the socket did not take since then (its last progress) */
  uint64_t idle_since_ms;
  /* the gRPC port's policing (port.h2_only) */
  uint64_t age_at_ms;        /* GOAWAY max_age then; 0: never */
  bool age_sent;             /* it was sent: closed at age_at_ms + grace */
  bool closing;              /* a GOAWAY that ends the connection was submitted: close once it is flushed */
  uint64_t last_ping_ms;     /* 0: none since the strikes were forgiven */
  uint32_t ping_strikes;
};

struct h2job {
  struct h2job *next;
  struct loop *lp;
  struct h2stream *st;
  atomic_int left; /* deferred: the worker's part and the spool's */
  gw_rc durable_rc;
  uint64_t queued_ns, durable_ns; /* handed to the large-request lane; the entry durable (gw_mono_ns; 0: not) */
};

static struct gw_front *front_of(struct h2conn *hc) { return hc->fc->lp->f; }

/* ---- streams ---- */

static void stream_free(struct h2stream *st, struct gw_pipeline *p)
{
  if (st->hc) {
    struct h2conn *hc = st->hc;
    if (st->prev)
      st->prev->next = st->next;
    else
      hc->streams = st->next;
    if (st->next)
      st->next->prev = st->prev;
    if (!hc->streams)
      hc->idle_since_ms = gw_front_now_ms();
  }
  gw_http_req_fini(p, &st->q);
  gw_http_resp_fini(&st->resp);
  gw_h2grpc_fini(&st->g);
  free(st->authz);
  free(st->apikey);
  free(st);
}

static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *user)
{
  (void)user;
  struct h2stream *st = src->ptr;
  size_t left = st->resp.len - st->resp_off;
  size_t n = left < len ? left : len;
  memcpy(buf, (char *)st->resp.body + st->resp_off, n);
  st->resp_off += n;
  if (st->resp_off == st->resp.len) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (st->g.on) { /* gRPC: the status follows in trailers */
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      gw_h2grpc_trailers(s, id, &st->g);
    }
  }
  return (ssize_t)n;
}

#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NO_COPY_NAME}

/* Submit st->resp on the stream. */
static void respond(struct h2conn *hc, struct h2stream *st)
{
  st->answered_ms = gw_front_now_ms();
  if (st->g.on) {
    nghttp2_data_provider dp = {.source.ptr = st, .read_callback = read_body};
    st->resp_off = 0;
    gw_h2grpc_submit(hc->s, st->id, &st->g, &dp);
    return;
  }
  char status[8], clen[24], ra[16];
  snprintf(status, sizeof status, "%u", st->resp.status);
  snprintf(clen, sizeof clen, "%zu", st->resp.len);
  nghttp2_nv nva[6] = {NV(":status", status), NV("content-type", st->resp.content_type), NV("content-length", clen)};
  size_t n = 3;
  if (st->resp.status == 429 || st->resp.status == 503) {
    snprintf(ra, sizeof ra, "%u", front_of(hc)->p->conf->receivers.retry_after_s);
    nva[n++] = (nghttp2_nv)NV("retry-after", ra);
  }
  if (st->resp.hname) {
    /* HTTP/2 header names are lowercase (RFC 9113 §8.2.1) */
    size_t i = 0;
    for (; st->resp.hname[i] && i + 1 < sizeof st->hname; i++)
      st->hname[i] = (char)tolower((unsigned char)st->resp.hname[i]);
    st->hname[i] = '\0';
    nva[n++] = (nghttp2_nv){(uint8_t *)st->hname, (uint8_t *)st->resp.hvalue, i, strlen(st->resp.hvalue),
                            NGHTTP2_NV_FLAG_NONE};
  }
  nghttp2_data_provider dp = {.source.ptr = st, .read_callback = read_body};
  st->resp_off = 0;
  nghttp2_submit_response(hc->s, st->id, nva, n, &dp);
}

/* ---- workers ---- */

static void job_post(struct h2job *j)
{
  struct loop *lp = j->lp;
  pthread_mutex_lock(&lp->done_mu);
  j->next = lp->done_head;
  lp->done_head = j;
  pthread_mutex_unlock(&lp->done_mu);
  uint64_t one = 1;
  if (write(lp->wake, &one, sizeof one) < 0)
    gw_debug("http", "eventfd: %s", strerror(errno));
}

static void on_durable(void *arg, gw_rc rc)
{
  struct h2job *j = arg;
  j->durable_rc = rc;
  j->durable_ns = gw_mono_ns();
  if (atomic_fetch_sub(&j->left, 1) == 1)
    job_post(j);
}

/* A plain HTTP/2 request whose client reset its stream while it was processed: nobody waits for the answer
 * (gw_request_limit; on_stream_close sets gone for every dispatched stream). */
static gw_rc plain_gone(void *arg)
{
  const struct h2stream *st = arg;
  return atomic_load(&st->g.gone) ? GW_ERR(CANCELLED) : GW_OK;
}

/* Run the pipeline for a dispatched stream (a worker or the large-request lane), then hand the answer back
 * to the stream's loop, after the spool's sync when the answer waits for it. */
static void run_job(struct gw_front *f, struct h2job *j)
{
  atomic_init(&j->left, 2);
  struct h2stream *st = j->st;
  bool deferred;
  if (st->g.on) {
    deferred = gw_h2grpc_finish(f->p, &st->g, &st->q, on_durable, j, &st->resp);
  } else {
    gw_request_limit(0, plain_gone, st);
    deferred = gw_http_finish(f->p, &st->q, on_durable, j, &st->resp);
  }
  if (!deferred || atomic_fetch_sub(&j->left, 1) == 1)
    job_post(j);
}

static void lane_job(void *arg)
{
  struct h2job *j = arg;
  gw_hist_observe(GW_H_STAGE_QUEUE, gw_mono_ns() - j->queued_ns); /* its wait for the lane, as the others count it */
  run_job(j->lp->f, j);
}

static void *worker_main(void *arg)
{
  struct gw_front *f = arg;
  pthread_setname_np(pthread_self(), "gw-http2-work");
  pthread_mutex_lock(&f->work_mu);
  for (;;) {
    while (!f->work_head && !f->workers_stop)
      pthread_cond_wait(&f->work_cv, &f->work_mu);
    if (!f->work_head)
      break;
    struct h2job *j = f->work_head;
    f->work_head = j->next;
    if (!f->work_head)
      f->work_tail = NULL;
    f->work_len--;
    pthread_mutex_unlock(&f->work_mu);
    run_job(f, j);
    pthread_mutex_lock(&f->work_mu);
  }
  pthread_mutex_unlock(&f->work_mu);
  return NULL;
}

void gw_h2_workers_start(struct gw_front *f)
{
  pthread_mutex_init(&f->work_mu, NULL);
  pthread_cond_init(&f->work_cv, NULL);
  f->work_max = WORK_QUEUE_MAX;
  f->nworkers = f->nloops;
  for (int i = 0; i < f->nworkers; i++)
    pthread_create(&f->workers[i], NULL, worker_main, f);
}

void gw_h2_workers_stop(struct gw_front *f)
{
  pthread_mutex_lock(&f->work_mu);
  f->workers_stop = true;
  pthread_cond_broadcast(&f->work_cv);
  pthread_mutex_unlock(&f->work_mu);
  for (int i = 0; i < f->nworkers; i++)
    pthread_join(f->workers[i], NULL);
  pthread_cond_destroy(&f->work_cv);
  pthread_mutex_destroy(&f->work_mu);
}

/* Whether a complete request goes to the large-request lane (lane.h): its body (a gRPC call's message) is
 * receivers.large_request_bytes or more, or inflates to that by its gzip trailer. */
static bool is_large(const struct gw_pipeline *p, const struct h2stream *st)
{
  const struct gw_http_req *q = &st->q;
  size_t large = p->conf->receivers.large_bytes;
  if (!p->lane || !large || q->early || !q->body || !q->len || (st->g.on && st->g.early_status))
    return false;
  const unsigned char *b = (const unsigned char *)q->body;
  enum gw_coding coding = st->g.on ? gw_h2grpc_coding(&st->g) : q->coding;
  return gw_lane_size(b, q->len, b + (q->len >= 4 ? q->len - 4 : 0), q->len, coding) >= large;
}

/* The job that processes a complete stream, counted until its answer is back on the stream's loop. */
static struct h2job *new_job(struct h2conn *hc, struct h2stream *st)
{
  struct h2job *j = gw_calloc(1, sizeof *j);
  j->lp = hc->fc->lp;
  j->st = st;
  st->dispatched = true;
  atomic_fetch_add(&front_of(hc)->jobs, 1);
  return j;
}

/* A job not run after all: the stream is answered at once with rc and msg. */
static void refuse_job(struct h2conn *hc, struct h2stream *st, struct h2job *j, gw_rc rc, const char *msg)
{
  struct gw_front *f = front_of(hc);
  st->dispatched = false;
  atomic_fetch_sub(&f->jobs, 1);
  free(j);
  gw_http_req_fini(f->p, &st->q);
  if (st->g.on)
    gw_h2grpc_fail(f->p, &st->g, rc, msg, &st->resp);
  else
    gw_http_resp_error(f->p, st->q.json, rc, msg, &st->resp);
  respond(hc, st);
}

/* The request's body is complete: hand it to the large-request lane when it is large, else to a worker, or
 * refuse it when the workers are all behind or the front is stopping. */
static void dispatch(struct h2conn *hc, struct h2stream *st)
{
  struct gw_front *f = front_of(hc);
  st->deadline_ms = 0;
  /* Counted in f->jobs before `accepting` is read: gw_front_stop clears `accepting` and then waits for the
   * count, so a job either is waited for or sees the stop and is not run (the workers may be gone). */
  struct h2job *j = new_job(hc, st);
  if (!atomic_load(&f->accepting)) {
    refuse_job(hc, st, j, GW_ERR(SHUTDOWN), "shutting down: retry");
    return;
  }
  if (is_large(f->p, st)) {
    /* its body is counted in flight already (gw_http_body), so the lane's queue is bounded by that budget */
    j->queued_ns = gw_mono_ns();
    gw_lane_submit(f->p->lane, lane_job, j);
    return;
  }
  pthread_mutex_lock(&f->work_mu);
  if (f->work_len >= f->work_max) {
    pthread_mutex_unlock(&f->work_mu);
    gw_metric_add(GW_M_BACKPRESSURE, 1);
    refuse_job(hc, st, j, GW_ERR(BUSY), "too many requests waiting: retry later");
    return;
  }
  if (f->work_tail)
    f->work_tail->next = j;
  else
    f->work_head = j;
  f->work_tail = j;
  f->work_len++;
  pthread_cond_signal(&f->work_cv);
  pthread_mutex_unlock(&f->work_mu);
}

static void flush(struct h2conn *hc);

void gw_h2_completions(struct loop *lp)
{
  pthread_mutex_lock(&lp->done_mu);
  struct h2job *j = lp->done_head;
  lp->done_head = NULL;
  pthread_mutex_unlock(&lp->done_mu);
  while (j) {
    struct h2job *next = j->next;
    struct h2stream *st = j->st;
    struct gw_front *f = lp->f;
    st->dispatched = false;
    st->durable_ns = j->durable_ns;
    if (j->durable_rc && st->g.on) {
      gw_h2grpc_durable_failed(f->p, &st->g, j->durable_rc, &st->resp);
    } else if (j->durable_rc) {
      gw_http_resp_fini(&st->resp);
      gw_http_resp_durable_failed(f->p, st->q.json, j->durable_rc, &st->resp);
    }
    if (st->closed || !st->hc) {
      stream_free(st, f->p); /* the client went away meanwhile */
    } else {
      respond(st->hc, st);
      flush(st->hc);
    }
    atomic_fetch_sub(&f->jobs, 1);
    free(j);
    j = next;
  }
}

/* ---- nghttp2 callbacks ---- */

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *fr, void *user)
{
  struct h2conn *hc = user;
  if (fr->hd.type != NGHTTP2_HEADERS || fr->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  struct h2stream *st = gw_calloc(1, sizeof *st);
  st->hc = hc;
  st->id = fr->hd.stream_id;
  st->deadline_ms = gw_front_now_ms() + front_of(hc)->header_ms;
  st->next = hc->streams;
  if (hc->streams)
    hc->streams->prev = st;
  hc->streams = st;
  nghttp2_session_set_stream_user_data(s, st->id, st);
  atomic_fetch_add(&front_of(hc)->h2_streams, 1);
  return 0;
}

static void keep(char *dst, size_t cap, const uint8_t *v, size_t n)
{
  if (n >= cap)
    n = cap - 1;
  memcpy(dst, v, n);
  dst[n] = '\0';
}

static int on_header(nghttp2_session *s, const nghttp2_frame *fr, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
  (void)flags, (void)user;
  if (fr->hd.type != NGHTTP2_HEADERS)
    return 0;
  struct h2stream *st = nghttp2_session_get_stream_user_data(s, fr->hd.stream_id);
  if (!st)
    return 0;
  /* nghttp2 does not hold the client to the header list size announced in SETTINGS: the fields are
   * counted here, and past the limit nothing more is kept and the request is refused (begin). */
  st->hdr_bytes += nlen + vlen + 32;
  if (st->hdr_bytes > HDR_LIST_MAX)
    return 0;
#define IS(lit) (nlen == sizeof(lit) - 1 && memcmp(name, lit, nlen) == 0)
  if (IS(":path")) {
    keep(st->path, sizeof st->path, value, vlen);
    st->have_path = true;
  } else if (IS(":method")) {
    keep(st->method, sizeof st->method, value, vlen);
  } else if (IS("content-type")) {
    keep(st->ctype, sizeof st->ctype, value, vlen);
  } else if (IS("content-encoding")) {
    keep(st->cenc, sizeof st->cenc, value, vlen);
  } else if (IS("content-length")) {
    keep(st->clen, sizeof st->clen, value, vlen);
  } else if (IS("authorization") && !st->authz && vlen <= HDR_MAX) {
    st->authz = gw_malloc(vlen + 1);
    keep(st->authz, vlen + 1, value, vlen);
  } else if (IS("x-api-key") && !st->apikey && vlen <= HDR_MAX) {
    st->apikey = gw_malloc(vlen + 1);
    keep(st->apikey, vlen + 1, value, vlen);
  } else if (nlen > 5 && memcmp(name, "grpc-", 5) == 0) {
    gw_h2grpc_header(&st->g, name, nlen, value, vlen);
  }
#undef IS
  return 0;
}

/* The head is complete: judge it as HTTP/1.1 would. */
static void begin(struct h2conn *hc, struct h2stream *st)
{
  struct gw_front *f = front_of(hc);
  char path[sizeof st->path];
  snprintf(path, sizeof path, "%s", st->path);
  path[strcspn(path, "?")] = '\0'; /* the query is not part of the route, as libmicrohttpd sees it */
  struct gw_http_head h = {
    .path = path,
    .method = st->method,
    .content_type = st->ctype[0] ? st->ctype : NULL,
    .content_encoding = st->cenc[0] ? st->cenc : NULL,
    .content_length = st->clen[0] ? st->clen : NULL,
    .authorization = st->authz,
    .api_key = st->apikey,
    .authorization_len = st->authz ? strlen(st->authz) : 0,
    .api_key_len = st->apikey ? strlen(st->apikey) : 0,
  };
  bool grpc = f->port.grpc && strcmp(st->method, "POST") == 0 && gw_h2grpc_is(h.content_type);
  bool accepted;
  if (st->hdr_bytes > HDR_LIST_MAX) {
    /* 431 (RFC 9113 §10.5.1); on gRPC RESOURCE_EXHAUSTED, as gRPC core answers metadata over its limit.
     * The fields past the limit were not kept, so neither the route nor the credentials are judged. */
    char msg[160];
    snprintf(msg, sizeof msg, "request headers of %zu bytes or more are over the limit of %u "
             "(SETTINGS_MAX_HEADER_LIST_SIZE)", st->hdr_bytes, HDR_LIST_MAX);
    gw_metric_add(GW_M_REQUESTS_FAILED, 1);
    memset(&st->q, 0, sizeof st->q);
    if (grpc) {
      st->g.on = true;
      gw_h2grpc_fail(f->p, &st->g, GW_ERR(HEADERS_TOO_LARGE), msg, &st->resp);
    } else {
      gw_http_resp_error(f->p, strncasecmp(st->ctype, "application/json", 16) == 0, GW_ERR(HEADERS_TOO_LARGE),
                         msg, &st->resp);
    }
    accepted = false;
  } else {
    accepted = grpc ? gw_h2grpc_begin(f->p, f->port.listener, &st->g, &h, &st->q, &st->resp)
                    : gw_http_begin(f->p, f->port.listener, &h, &st->q, &st->resp);
  }
  if (!accepted) {
    /* Answered now; a body still coming is dropped until the answer is out, then the stream is reset
     * (on_frame_send). The body timeout still bounds it: an answer the client does not take (no window)
     * must not keep the stream, and with it the connection, open. */
    st->refused = true;
    st->deadline_ms = gw_front_now_ms() + f->port.body_ms;
    respond(hc, st);
    return;
  }
  st->begun = true;
  st->deadline_ms = gw_front_now_ms() + f->port.body_ms;
  if (st->g.on) /* a gRPC call's own deadline may come first */
    st->deadline_ms = gw_h2grpc_body_deadline_ms(&st->g, st->deadline_ms);
}

/* The gRPC port: a PING from the client, judged as gRPC core's keepalive enforcement does (top comment). */
static void ping_received(struct h2conn *hc)
{
  struct gw_front *f = front_of(hc);
  uint64_t now = gw_front_now_ms();
  uint64_t interval = hc->streams ? f->port.min_ping_ms : 2 * 3600 * 1000u;
  if (hc->last_ping_ms && now < hc->last_ping_ms + interval)
    hc->ping_strikes++;
  hc->last_ping_ms = now;
  if (hc->ping_strikes > 2 && !hc->closing) {
    static const char why[] = "too_many_pings";
    nghttp2_submit_goaway(hc->s, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(hc->s),
                          NGHTTP2_ENHANCE_YOUR_CALM, (const uint8_t *)why, sizeof why - 1);
    hc->closing = true;
    atomic_fetch_add(&f->closed_pings, 1);
  }
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *fr, void *user)
{
  struct h2conn *hc = user;
  if (fr->hd.type != NGHTTP2_HEADERS && fr->hd.type != NGHTTP2_DATA)
    return 0;
  if (front_of(hc)->port.h2_only) { /* gRPC core forgives pings then */
    hc->ping_strikes = 0;
    hc->last_ping_ms = 0;
  }
  /* The answer is complete while the client's side is still open (a refused request): nothing it sends
   * will be read, and a client that never ends its side would keep the stream, and the connection, open
   * for ever. RST_STREAM NO_ERROR after a complete response asks it to stop without discarding the answer
   * (RFC 9113 §8.1), as gRPC core's server does. */
  int32_t id = fr->hd.stream_id;
  if ((fr->hd.flags & NGHTTP2_FLAG_END_STREAM) && nghttp2_session_get_stream_user_data(s, id) &&
      nghttp2_session_get_stream_remote_close(s, id) == 0)
    nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR);
  return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *fr, void *user)
{
  struct h2conn *hc = user;
  if (fr->hd.type == NGHTTP2_PING && !(fr->hd.flags & NGHTTP2_FLAG_ACK) && front_of(hc)->port.h2_only)
    ping_received(hc);
  if (fr->hd.type != NGHTTP2_HEADERS && fr->hd.type != NGHTTP2_DATA)
    return 0;
  struct h2stream *st = nghttp2_session_get_stream_user_data(s, fr->hd.stream_id);
  if (!st)
    return 0;
  if (fr->hd.type == NGHTTP2_HEADERS && fr->headers.cat == NGHTTP2_HCAT_REQUEST)
    begin(hc, st);
  if ((fr->hd.flags & NGHTTP2_FLAG_END_STREAM) && st->begun && !st->refused && !st->dispatched)
    dispatch(hc, st);
  return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user)
{
  (void)flags;
  struct h2conn *hc = user;
  struct h2stream *st = nghttp2_session_get_stream_user_data(s, id);
  if (!st || !st->begun || st->refused || st->dispatched)
    return 0;
  if (!st->g.on) {
    gw_http_body(front_of(hc)->p, &st->q, data, len);
  } else if (gw_h2grpc_body(front_of(hc)->p, &st->g, &st->q, data, len, &st->resp)) {
    /* a message over the size limit: answered now, the rest dropped, the stream reset once the answer is
     * out (on_frame_send); its body deadline stays, for an answer the client does not take */
    st->refused = true;
    respond(hc, st);
  }
  return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *user)
{
  struct h2conn *hc = user;
  struct h2stream *st = nghttp2_session_get_stream_user_data(s, id);
  if (!st)
    return 0;
  nghttp2_session_set_stream_user_data(s, id, NULL);
  st->closed = true;
  if (st->durable_ns && code == NGHTTP2_NO_ERROR) /* the answer is out: durable to sent, as the other receivers count it */
    gw_hist_observe(GW_H_STAGE_ANSWER, gw_mono_ns() - st->durable_ns);
  if (st->dispatched)
    atomic_store(&st->g.gone, true); /* the client cancelled: its worker stops (gw_request_limit) */
  if (!st->dispatched)
    stream_free(st, front_of(hc)->p);
  if (!hc->streams)
    hc->idle_since_ms = gw_front_now_ms();
  return 0;
}

/* ---- the connection ---- */

static void update_interest(struct h2conn *hc)
{
  struct fconn *c = hc->fc;
  bool pending = hc->out_len > hc->out_off;
  uint32_t want = 0;
  if (nghttp2_session_want_read(hc->s) && !pending)
    want |= EPOLLIN;
  if (pending || hc->want_write)
    want |= EPOLLOUT;
  if ((!want || hc->closing) && !pending && !nghttp2_session_want_write(hc->s)) {
    gw_front_linger(c); /* both sides are done (GOAWAY sent and flushed, or the client left) */
    return;
  }
  gw_front_interest(c, c->fd, &c->tfd, &c->ev_fd, want ? want : EPOLLIN);
}

/* Write what nghttp2 has for the client, as far as the socket takes it. */
static void flush(struct h2conn *hc)
{
  struct fconn *c = hc->fc;
  hc->want_write = false;
  for (;;) {
    if (hc->out_len > hc->out_off) {
      ssize_t n = gw_front_write(c, hc->out + hc->out_off, hc->out_len - hc->out_off, &hc->want_write);
      if (n == -2) {
        gw_front_close(c);
        return;
      }
      if (n < 0)
        break;
      if (n > 0)
        hc->stalled_ms = gw_front_now_ms();
      hc->out_off += (size_t)n;
      if (hc->out_off < hc->out_len)
        continue;
      hc->out_off = hc->out_len = 0;
    }
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(hc->s, &data);
    if (n < 0) {
      gw_front_close(c);
      return;
    }
    if (n == 0)
      break;
    /* Straight to the socket; only what it does not take is copied (nghttp2's buffer is reused). */
    ssize_t w = gw_front_write(c, data, (size_t)n, &hc->want_write);
    if (w == -2) {
      gw_front_close(c);
      return;
    }
    size_t done = w > 0 ? (size_t)w : 0;
    if (done < (size_t)n) {
      size_t rest = (size_t)n - done;
      if (rest > hc->out_cap) {
        hc->out = gw_realloc(hc->out, rest);
        hc->out_cap = rest;
      }
      memcpy(hc->out, data + done, rest);
      hc->out_off = 0;
      hc->out_len = rest;
      hc->stalled_ms = gw_front_now_ms();
      break;
    }
  }
  update_interest(hc);
}

void gw_h2_event(struct fconn *c)
{
  struct h2conn *hc = c->h2;
  unsigned char buf[16384];
  for (int rounds = 0; rounds < 64 && nghttp2_session_want_read(hc->s); rounds++) {
    if (hc->out_len > hc->out_off)
      break; /* the client must read what it was sent before it may send more */
    ssize_t n = gw_front_read(c, buf, sizeof buf, &hc->want_write);
    if (n == -1)
      break;
    if (n == 0 || n == -2) {
      gw_front_close(c);
      return;
    }
    ssize_t used = nghttp2_session_mem_recv(hc->s, buf, (size_t)n);
    if (used < 0) {
      gw_debug("http", "HTTP/2: %s", nghttp2_strerror((int)used));
      nghttp2_session_terminate_session(hc->s, NGHTTP2_PROTOCOL_ERROR);
      break;
    }
    if (c->closed || c->st != FS_H2)
      return;
  }
  flush(hc);
}

void gw_h2_start(struct fconn *c)
{
  struct gw_front *f = c->lp->f;
  struct h2conn *hc = gw_calloc(1, sizeof *hc);
  hc->fc = c;
  c->h2 = hc;
  c->deadline_ms = 0;
  hc->idle_since_ms = gw_front_now_ms();
  nghttp2_session_callbacks *cb;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
  int rc = nghttp2_session_server_new(&hc->s, cb, hc);
  nghttp2_session_callbacks_del(cb);
  if (rc != 0) {
    gw_front_close(c);
    return;
  }
  nghttp2_settings_entry iv[] = {
    {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, f->port.max_streams},
    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, HDR_LIST_MAX},
    {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  nghttp2_submit_settings(hc->s, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
  nghttp2_session_set_local_window_size(hc->s, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
  atomic_fetch_add(&f->h2_conns, 1);
  /* An answer goes out as a few small writes (HEADERS, DATA, trailers): with Nagle's algorithm the second
   * waits for the client's delayed ACK of the first, about 40 ms per call. gRPC core sets this too. */
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (f->port.h2_only && f->port.age_ms) {
    /* +-10 %, from the clock's low bits: connections made together do not all go at once */
    uint64_t span = f->port.age_ms / 5;
    uint64_t jitter = span ? gw_mono_ns() / 1000 % (span + 1) : 0;
    hc->age_at_ms = hc->idle_since_ms + f->port.age_ms - f->port.age_ms / 10 + jitter;
  }
  gw_front_interest(c, c->fd, &c->tfd, &c->ev_fd, EPOLLIN);
  gw_h2_event(c); /* the preface (and maybe more) is already there */
}

static void goaway(struct h2conn *hc, const char *why)
{
  nghttp2_submit_goaway(hc->s, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(hc->s), NGHTTP2_NO_ERROR,
                        (const uint8_t *)why, strlen(why));
}

/* The gRPC port's idle and age limits (top comment). A GOAWAY sent, nghttp2 wants no more once the streams
 * are done, and flush closes the connection. true: closed now (hc is gone). */
static bool police(struct h2conn *hc, uint64_t now)
{
  struct gw_front *f = front_of(hc);
  if (hc->closing)
    return false;
  if (f->idle_ms && !hc->streams && now - hc->idle_since_ms >= f->idle_ms) {
    goaway(hc, "max_idle");
    hc->closing = true;
    atomic_fetch_add(&f->closed_idle, 1);
    return false;
  }
  if (!hc->age_at_ms || now < hc->age_at_ms)
    return false;
  if (!hc->age_sent) {
    goaway(hc, "max_age");
    hc->age_sent = true;
  } else if (now >= hc->age_at_ms + f->port.age_grace_ms) {
    atomic_fetch_add(&f->closed_age, 1);
    gw_front_close(hc->fc); /* the grace is over: calls still open are cut */
    return true;
  }
  return false;
}

/* How long an answer may wait for the client to take it (top comment). */
static uint64_t answer_limit_ms(const struct gw_front *f) { return f->port.idle_ms ? f->port.idle_ms : f->port.body_ms; }

void gw_h2_expire(struct fconn *c, uint64_t now)
{
  struct h2conn *hc = c->h2;
  struct gw_front *f = c->lp->f;
  bool cut = false;
  uint64_t limit = answer_limit_ms(f);
  if (hc->out_len > hc->out_off && limit && now - hc->stalled_ms >= limit) {
    /* the socket took nothing of what was queued: even a reset or a GOAWAY could not go out */
    atomic_fetch_add(&f->untaken_conns, 1);
    gw_debug("http", "HTTP/2: the client took no byte of its answers for %llu ms: connection closed",
             (unsigned long long)limit);
    gw_front_close(c);
    return;
  }
  for (struct h2stream *st = hc->streams; st; st = st->next) {
    if (st->answered_ms && limit && !st->closed && now - st->answered_ms >= limit) {
      /* its answer waits for a flow-control window the client keeps shut: given up (RST_STREAM is not
       * flow-controlled), so the stream and its answer are freed */
      st->answered_ms = 0;
      atomic_fetch_add(&f->untaken_streams, 1);
      nghttp2_submit_rst_stream(hc->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
      cut = true;
      continue;
    }
    if (st->deadline_ms && now >= st->deadline_ms && !st->dispatched && !st->closed) {
      st->deadline_ms = 0;
      if (st->g.on && st->begun && !st->refused && gw_h2grpc_expired(&st->g)) {
        /* the call's deadline, before its body timeout: answered DEADLINE_EXCEEDED, as the gRPC port does */
        gw_h2grpc_deadline(f->p, &st->g, &st->q, &st->resp);
        st->refused = true;
        respond(hc, st);
        cut = true;
        continue;
      }
      if (f->guard) /* a refused stream's head was complete too: what stalled is its body or its answer */
        gw_httpd_guard_count(f->guard, st->begun || st->refused ? GW_HTTPD_TIMEOUT_BODY : GW_HTTPD_TIMEOUT_HEADERS);
      nghttp2_submit_rst_stream(hc->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
      cut = true;
    }
  }
  if (f->port.h2_only) {
    if (police(hc, now))
      return;
    cut = true;
  } else if (!hc->streams && now - hc->idle_since_ms >= f->idle_ms) {
    nghttp2_session_terminate_session(hc->s, NGHTTP2_NO_ERROR); /* GOAWAY, then close once flushed */
    cut = true;
  }
  if (cut)
    flush(hc);
}

void gw_h2_close(struct fconn *c)
{
  struct h2conn *hc = c->h2;
  struct gw_pipeline *p = c->lp->f->p;
  c->h2 = NULL;
  /* Streams a worker still holds are freed when their answer comes back (gw_h2_completions). */
  for (struct h2stream *st = hc->streams, *n; st; st = n) {
    n = st->next;
    st->hc = NULL;
    st->prev = st->next = NULL;
    if (!st->dispatched)
      stream_free(st, p);
  }
  nghttp2_session_del(hc->s);
  free(hc->out);
  free(hc);
}
