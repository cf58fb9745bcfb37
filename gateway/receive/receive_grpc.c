/*
 * receive_grpc.c: the OTLP/gRPC port (DESIGN §10).
 *
 * receivers.grpc.engine nghttp2 (the default): the port is served by the gateway's own HTTP/2 engine, a
 * second instance of the OTLP/HTTP port's front (front.c, h2.c, h2_grpc.c) configured for gRPC: HTTP/2
 * only, gRPC core's connection policing (idle, age, ping strikes, handshake timeout), connection caps. Its
 * calls get the in-flight budget from the message's length prefix before its bytes are kept and go to the
 * large-request lane when large; gRPC core (below) reads a whole message into memory before the gateway
 * sees it (bench/README.md, "Many large gRPC calls at once").
 *
 * receivers.grpc.engine grpc-core: the gRPC core C API, as follows.
 *
 * One completion queue, served by receivers.grpc.threads threads; each thread decodes and appends the
 * requests it picks up, so CPU work scales with cores. Traps found in the spike, each handled here:
 *  - gRPC's automatic decompression inflates the whole message before any limit: it is switched off
 *    (GRPC_ARG_ENABLE_PER_MESSAGE_DECOMPRESSION = 0) and we inflate ourselves with the request cap;
 *  - calls to unregistered methods hang unless catch-all requests are kept outstanding: they are, and
 *    answered UNIMPLEMENTED;
 *  - the default 4 MB receive limit is replaced by receivers.max_request_bytes;
 *  - a call without a (well-framed) message is refused with INVALID_ARGUMENT, never taken as empty;
 *  - gRPC core sets up every connection it accepts before a byte arrives, with no cap: in plaintext the
 *    port is ours (grpc_front.h) and a connection reaches gRPC core once its preface has arrived.
 * Errors carry google.rpc.Status in grpc-status-details-bin, with RetryInfo when the client should retry.
 * The call's deadline is honoured: a call whose deadline passed while it waited for a thread is answered
 * DEADLINE_EXCEEDED without being decoded, and one that runs past it is stopped between stages (request.c).
 * A client that cancels a call without a deadline is not seen until the answer is sent: seeing it would
 * need a RECV_CLOSE_ON_SERVER batch at the start whose completion a free thread must pick up.
 */
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/auth.h"
#include "core/log.h"
#include "core/memtrim.h"
#include "core/tls.h"
#include "core/metrics.h"
#include "core/net.h"
#include "receive/front.h"
#include "receive/grpc_front.h"
#include "receive/lane.h"
#include "receive/receive.h"

#define OUTSTANDING 16 /* requested calls kept waiting per kind */
#define MAX_THREADS 16

enum call_kind { CALL_EXPORT, CALL_LOGS, CALL_UNKNOWN };
enum call_state { ST_REQUESTED, ST_REPLIED };

struct gw_grpc_receiver;

struct call {
  struct gw_grpc_receiver *r;
  enum call_kind kind;
  enum call_state state;
  grpc_call *call;
  uint64_t start_mono; /* the Export request arrived (0: not an Export call) */
  uint64_t durable_mono; /* its entry was durable (0: not appended) */
  uint64_t queued_mono;  /* it was handed to the large-request lane (0: not) */
  gpr_timespec deadline;
  grpc_call_details details;
  grpc_metadata_array md;
  grpc_byte_buffer *payload;
  size_t reserved; /* in-flight bytes taken for the payload before a hand-over to the large-request lane */
  int cancelled;
  /* reply */
  grpc_byte_buffer *resp;
  grpc_slice status_msg;
  grpc_metadata trailer;
  bool has_trailer;
};

struct gw_grpc_receiver {
  struct gw_pipeline *p;
  grpc_server *server;
  grpc_completion_queue *cq;
  void *export_method, *logs_method;
  pthread_t threads[MAX_THREADS];
  int nthreads;
  atomic_bool stopping;
  atomic_bool shutdown_done;
  _Atomic uint64_t tls_generation; /* the TLS material gRPC was last handed */
  struct gw_grpc_front *front;      /* plaintext: our listener in front of gRPC core (grpc_front.h) */
  grpc_server_credentials *insecure; /* what grpc_server_add_channel_from_fd is given */
  struct gw_front *h2;               /* engine nghttp2: the port is this front's, none of the above is used */
};

static int shutdown_tag; /* address used as the server-shutdown tag */

static void request_one(struct gw_grpc_receiver *r, enum call_kind kind)
{
  struct call *c = gw_calloc(1, sizeof *c);
  c->r = r;
  c->kind = kind;
  c->state = ST_REQUESTED;
  grpc_metadata_array_init(&c->md);
  grpc_call_error e;
  if (kind == CALL_EXPORT || kind == CALL_LOGS) {
    e = grpc_server_request_registered_call(r->server, kind == CALL_LOGS ? r->logs_method : r->export_method, &c->call,
                                            &c->deadline, &c->md, &c->payload, r->cq, r->cq, c);
  } else {
    grpc_call_details_init(&c->details);
    e = grpc_server_request_call(r->server, &c->call, &c->details, &c->md, r->cq, r->cq, c);
  }
  if (e != GRPC_CALL_OK) {
    if (kind == CALL_UNKNOWN)
      grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->md);
    free(c);
  }
}

static void call_free(struct call *c)
{
  if (c->payload)
    grpc_byte_buffer_destroy(c->payload);
  if (c->resp)
    grpc_byte_buffer_destroy(c->resp);
  if (c->kind == CALL_UNKNOWN)
    grpc_call_details_destroy(&c->details);
  grpc_metadata_array_destroy(&c->md);
  if (c->state == ST_REPLIED) {
    grpc_slice_unref(c->status_msg);
    if (c->has_trailer) {
      grpc_slice_unref(c->trailer.key);
      grpc_slice_unref(c->trailer.value);
    }
  }
  if (c->call)
    grpc_call_unref(c->call);
  free(c);
}

/* Send the reply in one batch; the completion frees the call. */
static void reply(struct call *c, grpc_status_code code, const char *msg, const void *status_pb, size_t status_len,
                  const void *resp, size_t resp_len, bool send_message)
{
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[n].data.send_initial_metadata.count = 0;
  n++;
  if (send_message) {
    grpc_slice s = grpc_slice_from_copied_buffer(resp, resp_len);
    c->resp = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = c->resp;
    n++;
  }
  c->status_msg = grpc_slice_from_copied_string(msg);
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = code;
  ops[n].data.send_status_from_server.status_details = &c->status_msg;
  if (status_pb && code != GRPC_STATUS_OK) {
    c->trailer.key = grpc_slice_from_static_string("grpc-status-details-bin");
    c->trailer.value = grpc_slice_from_copied_buffer(status_pb, status_len);
    c->has_trailer = true;
    ops[n].data.send_status_from_server.trailing_metadata_count = 1;
    ops[n].data.send_status_from_server.trailing_metadata = &c->trailer;
  }
  n++;
  ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[n].data.recv_close_on_server.cancelled = &c->cancelled;
  n++;
  c->state = ST_REPLIED;
  if (c->start_mono)
    gw_hist_observe(c->kind == CALL_LOGS ? GW_H_REQ_GRPC_LOGS : GW_H_REQ_GRPC_TRACES, gw_mono_ns() - c->start_mono);
  if (grpc_call_start_batch(c->call, ops, n, c, NULL) != GRPC_CALL_OK) {
    gw_warn("grpc", "cannot start the reply batch");
    call_free(c);
  }
}

/*
 * A reply that waits for the spool's group commit (disk spool): the handler prepares it, the spool's sync
 * thread says the entry is durable; whichever comes second sends it. The gRPC thread is free meanwhile.
 */
struct pending {
  struct call *c;
  atomic_int left; /* 2: the handler's part and the spool's */
  gw_rc durable_rc;
  grpc_status_code code;
  char msg[256];
  void *body;
  size_t len;
};

static void pending_part_done(struct pending *pd)
{
  if (atomic_fetch_sub(&pd->left, 1) != 1)
    return;
  if (pd->durable_rc) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s", pd->durable_rc == GW_ERR(SHUTDOWN) ? "the gateway is shutting down: retry"
                                                                          : "the spool's fsync failed: retry later");
    gw_metric_add(GW_M_REQUESTS_FAILED, 1);
    reply(pd->c, (grpc_status_code)gw_err_grpc_status(pd->durable_rc), msg, NULL, 0, NULL, 0, false);
  } else if (pd->code != GRPC_STATUS_OK) {
    reply(pd->c, pd->code, pd->msg, pd->body, pd->len, NULL, 0, false);
  } else {
    reply(pd->c, GRPC_STATUS_OK, "", NULL, 0, pd->body, pd->len, true);
  }
  free(pd->body);
  free(pd);
}

static void on_durable(void *arg, gw_rc rc)
{
  struct pending *pd = arg;
  pd->durable_rc = rc;
  pd->c->durable_mono = gw_mono_ns();
  pending_part_done(pd);
}

static bool md_is_gzip(const grpc_byte_buffer *bb) { return bb->data.raw.compression != GRPC_COMPRESS_NONE; }

/* The call's deadline on the gw_mono_ns clock: 0 when it has none; 1 when it has passed. */
static uint64_t call_deadline(const struct call *c)
{
  gpr_timespec dl = gpr_convert_clock_type(c->deadline, GPR_CLOCK_MONOTONIC);
  if (gpr_time_cmp(dl, gpr_inf_future(GPR_CLOCK_MONOTONIC)) >= 0)
    return 0;
  gpr_timespec left = gpr_time_sub(dl, gpr_now(GPR_CLOCK_MONOTONIC));
  if (left.tv_sec < 0 || (left.tv_sec == 0 && left.tv_nsec <= 0))
    return 1;
  if (left.tv_sec > 10 * 365 * 86400)
    return 0;
  return gw_mono_ns() + (uint64_t)left.tv_sec * 1000000000ull + (uint64_t)left.tv_nsec;
}

static void handle_export(struct call *c)
{
  struct gw_grpc_receiver *r = c->r;
  const struct gw_conf *conf = r->p->conf;
  struct gw_request_outcome o;
  memset(&o, 0, sizeof o);
  c->start_mono = gw_mono_ns();
  if (c->queued_mono) { /* its time counts from its arrival, the lane's queue included */
    gw_hist_observe(GW_H_STAGE_QUEUE, c->start_mono - c->queued_mono);
    c->start_mono = c->queued_mono;
  }
  struct gw_arena *a = NULL;
  size_t reserved = c->reserved; /* taken already when the call came through the large-request lane */
  c->reserved = 0;
  struct pending *pd = NULL;
  uint64_t deadline = call_deadline(c);

  if (deadline == 1) {
    /* Nobody waits for the answer any more: not worth decoding (gRPC cancels the call on its side too). */
    gw_err_set(&o.err, GW_ERR(DEADLINE), "the call's deadline passed while it waited for a receiver thread");
    gw_metric_add(GW_M_REQUESTS, 1);
    gw_metric_add(GW_M_REQUESTS_FAILED, 1);
    gw_metric_add(GW_M_REQUESTS_DEADLINE, 1);
  } else if (!c->payload) {
    gw_err_set(&o.err, GW_ERR(DECODE), "no request message: the call carried no well-framed %s",
               c->kind == CALL_LOGS ? "ExportLogsServiceRequest" : "ExportTraceServiceRequest");
    gw_metric_add(GW_M_REQUESTS, 1);
    gw_metric_add(GW_M_REQUESTS_FAILED, 1);
  } else if (c->payload->type != GRPC_BB_RAW) {
    gw_err_set(&o.err, GW_ERR(DECODE), "unsupported message buffer");
  } else {
    size_t len = grpc_byte_buffer_length(c->payload);
    if (!reserved && gw_pipeline_reserve(r->p, len) != GW_OK) {
      gw_err_set(&o.err, GW_ERR(BUSY), "too many request bytes in flight: retry later");
      gw_metric_add(GW_M_BACKPRESSURE, 1);
      gw_metric_add(GW_M_REQUESTS_FAILED, 1);
    } else {
      reserved = len;
      /* gRPC core holds the message (len bytes, reserved) while the arena gets the rest of the share. */
      a = gw_pipeline_arena(r->p, reserved);
      /* Copy the raw (possibly compressed) slices: no automatic decompression (see the top comment). */
      uint8_t *buf = gw_arena_alloc(a, len ? len : 1);
      if (!buf) {
        if (gw_arena_refused(a))
          gw_err_set(&o.err, GW_ERR(BUSY), "too many request bytes in flight: retry later");
        else
          gw_err_set(&o.err, GW_ERR(TOO_LARGE), "message of %zu bytes: more than one request may use", len);
      } else {
        size_t off = 0;
        grpc_slice_buffer *sb = &c->payload->data.raw.slice_buffer;
        for (size_t i = 0; i < sb->count; i++) {
          size_t sl = GRPC_SLICE_LENGTH(sb->slices[i]);
          memcpy(buf + off, GRPC_SLICE_START_PTR(sb->slices[i]), sl);
          off += sl;
        }
        pd = gw_calloc(1, sizeof *pd);
        pd->c = c;
        atomic_init(&pd->left, 2);
        gw_request_defer(on_durable, pd);
        gw_request_limit(deadline, NULL, NULL);
        enum gw_coding coding = md_is_gzip(c->payload) ? GW_CODING_DEFLATE : GW_CODING_NONE;
        if (c->kind == CALL_LOGS)
          gw_request_logs(r->p, a, GW_ENC_PROTOBUF, coding, buf, off, &o);
        else
          gw_request_traces(r->p, a, GW_ENC_PROTOBUF, coding, buf, off, &o);
      }
    }
  }

  const void *body;
  size_t len;
  uint32_t ra = conf->receivers.retry_after_s;
  if (!a)
    a = gw_pipeline_arena(r->p, 0);
  else if (o.err.rc)
    gw_arena_reset(a); /* an arena that ran out still has room for the error body */
  gw_receive_encode_response(a, false, &o, ra, &body, &len);
  if (pd && o.deferred) {
    /* accepted: the answer goes out once the spool has the entry on disk */
    pd->code = o.err.rc ? (grpc_status_code)gw_err_grpc_status(o.err.rc) : GRPC_STATUS_OK;
    snprintf(pd->msg, sizeof pd->msg, "%s", o.err.msg);
    pd->body = gw_malloc(len ? len : 1);
    memcpy(pd->body, body, len);
    pd->len = len;
    pending_part_done(pd);
  } else if (o.err.rc) {
    grpc_status_code code = (grpc_status_code)gw_err_grpc_status(o.err.rc);
    reply(c, code, o.err.msg, body, len, NULL, 0, false);
  } else {
    reply(c, GRPC_STATUS_OK, "", NULL, 0, body, len, true);
  }
  if (pd && !o.deferred)
    free(pd);
  if (reserved)
    gw_pipeline_release(r->p, reserved);
  gw_arena_reset(a); /* the thread keeps a few MiB for its next request, not a large request's worth */
  gw_memtrim_note(reserved); /* and gRPC core's buffers of a large message go back too (core/memtrim.h) */
}

/* receivers.auth: the call's credentials from its metadata (keys arrive lowercase). True when it may go on;
 * otherwise it has been answered UNAUTHENTICATED, before its message is looked at. */
static bool authorized(struct call *c)
{
  struct gw_auth *auth = c->r->p->auth;
  if (!auth)
    return true;
  const char *az = NULL, *key = NULL;
  size_t alen = 0, klen = 0;
  for (size_t i = 0; i < c->md.count; i++) {
    const grpc_metadata *m = &c->md.metadata[i];
    const char *k = (const char *)GRPC_SLICE_START_PTR(m->key);
    size_t kl = GRPC_SLICE_LENGTH(m->key);
    if (kl == 13 && memcmp(k, "authorization", 13) == 0) {
      az = (const char *)GRPC_SLICE_START_PTR(m->value);
      alen = GRPC_SLICE_LENGTH(m->value);
    } else if (kl == 9 && memcmp(k, "x-api-key", 9) == 0) {
      key = (const char *)GRPC_SLICE_START_PTR(m->value);
      klen = GRPC_SLICE_LENGTH(m->value);
    }
  }
  enum gw_auth_result res = gw_auth_verify(auth, "otlp_grpc", az, alen, key, klen);
  if (res == GW_AUTH_OK)
    return true;
  gw_metric_add(GW_M_REQUESTS_FAILED, 1);
  reply(c, GRPC_STATUS_UNAUTHENTICATED,
        res == GW_AUTH_MISSING ? "missing credentials: send authorization: Bearer <token> (or x-api-key) metadata"
                               : "invalid token",
        NULL, 0, NULL, 0, false);
  return false;
}

/* The payload's first 2 and last 4 bytes, for gw_lane_size. */
static void payload_ends(grpc_byte_buffer *bb, unsigned char head[2], unsigned char tail[4])
{
  grpc_slice_buffer *sb = &bb->data.raw.slice_buffer;
  size_t want = 0;
  for (size_t i = 0; i < sb->count && want < 2; i++)
    for (size_t k = 0; k < GRPC_SLICE_LENGTH(sb->slices[i]) && want < 2; k++)
      head[want++] = GRPC_SLICE_START_PTR(sb->slices[i])[k];
  size_t got = 0;
  for (size_t i = sb->count; i-- > 0 && got < 4;)
    for (size_t k = GRPC_SLICE_LENGTH(sb->slices[i]); k-- > 0 && got < 4;)
      tail[3 - got++] = GRPC_SLICE_START_PTR(sb->slices[i])[k];
}

static void lane_export(void *arg) { handle_export(arg); }

/* A large Export call goes to the large-request lane (lane.h) with its payload counted in flight, so the
 * lane's queue holds no more than receivers.max_inflight_bytes; true when it went. */
static bool to_lane(struct call *c)
{
  struct gw_pipeline *p = c->r->p;
  const struct gw_conf *conf = p->conf;
  if (!p->lane || !conf->receivers.large_bytes || !c->payload || c->payload->type != GRPC_BB_RAW)
    return false;
  size_t len = grpc_byte_buffer_length(c->payload);
  unsigned char head[2] = {0, 0}, tail[4] = {0, 0, 0, 0};
  bool gzip = md_is_gzip(c->payload);
  if (gzip && len >= 18)
    payload_ends(c->payload, head, tail);
  if (gw_lane_size(head, sizeof head, tail, len, gzip ? GW_CODING_DEFLATE : GW_CODING_NONE) <
      conf->receivers.large_bytes)
    return false;
  if (gw_pipeline_reserve(p, len) != GW_OK)
    return false; /* answered BUSY on this thread, at once */
  c->reserved = len;
  c->queued_mono = gw_mono_ns();
  gw_lane_submit(p->lane, lane_export, c);
  return true;
}

static void handle_unknown(struct call *c)
{
  char msg[400];
  size_t ml = GRPC_SLICE_LENGTH(c->details.method);
  snprintf(msg, sizeof msg, "unknown method %.*s: this gateway serves %s and %s", (int)(ml > 150 ? 150 : ml),
           (const char *)GRPC_SLICE_START_PTR(c->details.method),
           "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
           "/opentelemetry.proto.collector.logs.v1.LogsService/Export");
  reply(c, GRPC_STATUS_UNIMPLEMENTED, msg, NULL, 0, NULL, 0, false);
}

/* gRPC asks before each handshake whether the certificate changed (receivers.tls, re-read by core/tls.c). */
static grpc_ssl_certificate_config_reload_status fetch_certs(void *arg, grpc_ssl_server_certificate_config **config)
{
  struct gw_grpc_receiver *r = arg;
  struct gw_tls_material *m = gw_tls_get(r->p->tls);
  grpc_ssl_certificate_config_reload_status st = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
  if (atomic_load(&r->tls_generation) != m->generation) {
    grpc_ssl_pem_key_cert_pair pair = {m->key_pem, m->cert_pem};
    /* gRPC 1.51 asserts on NULL roots in a fetched config even when no client certificate is asked for:
     * without client CAs, our own chain stands in (never used, client certificates are not requested). */
    *config = grpc_ssl_server_certificate_config_create(m->ca_pem ? m->ca_pem : m->cert_pem, &pair, 1);
    atomic_store(&r->tls_generation, m->generation);
    st = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
  }
  gw_tls_material_unref(m);
  return st;
}

/* A plaintext connection that has sent its preface goes to gRPC core (grpc_front.h). */
static void handoff(void *ctx, int fd)
{
  struct gw_grpc_receiver *r = ctx;
  grpc_server_add_channel_from_fd(r->server, fd, r->insecure);
}

static void render(struct gw_sb *out, void *ctx)
{
  struct gw_grpc_receiver *r = ctx;
  gw_sb_printf(out,
               "# HELP genai_gateway_grpc_connections_closed_total Plaintext OTLP/gRPC connections closed before "
               "their HTTP/2 preface: at the handshake timeout, or as the oldest waiting past the cap\n"
               "# TYPE genai_gateway_grpc_connections_closed_total counter\n"
               "genai_gateway_grpc_connections_closed_total{reason=\"handshake_timeout\"} %llu\n"
               "genai_gateway_grpc_connections_closed_total{reason=\"max_pending\"} %llu\n"
               "# HELP genai_gateway_grpc_connections_total Plaintext OTLP/gRPC connections handed to gRPC core "
               "after their preface\n"
               "# TYPE genai_gateway_grpc_connections_total counter\n"
               "genai_gateway_grpc_connections_total %llu\n",
               (unsigned long long)gw_grpc_front_timeouts(r->front), (unsigned long long)gw_grpc_front_evicted(r->front),
               (unsigned long long)gw_grpc_front_handed(r->front));
}

static void *serve(void *arg)
{
  struct gw_grpc_receiver *r = arg;
  pthread_setname_np(pthread_self(), "gw-recv-grpc");
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(r->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN)
      break;
    if (ev.type != GRPC_OP_COMPLETE)
      continue;
    if (ev.tag == &shutdown_tag) {
      atomic_store(&r->shutdown_done, true);
      continue;
    }
    struct call *c = ev.tag;
    if (c->state == ST_REPLIED) {
      if (c->durable_mono)
        gw_hist_observe(GW_H_STAGE_ANSWER, gw_mono_ns() - c->durable_mono);
      call_free(c);
      continue;
    }
    if (!ev.success) { /* the server is shutting down: the requested call never arrived */
      call_free(c);
      continue;
    }
    if (!atomic_load(&r->stopping))
      request_one(r, c->kind);
    if (atomic_load(&r->stopping) || atomic_load(&r->p->shutting_down)) {
      struct gw_request_outcome o;
      memset(&o, 0, sizeof o);
      gw_err_set(&o.err, GW_ERR(SHUTDOWN), "the gateway is shutting down: retry another instance or later");
      reply(c, GRPC_STATUS_UNAVAILABLE, o.err.msg, NULL, 0, NULL, 0, false);
      continue;
    }
    if (!authorized(c))
      continue;
    if (c->kind != CALL_EXPORT && c->kind != CALL_LOGS)
      handle_unknown(c);
    else if (!to_lane(c))
      handle_export(c);
  }
  return NULL;
}

/* Engine nghttp2: the port's own front, with the receivers.grpc.* rows. */
static struct gw_grpc_receiver *start_h2(struct gw_pipeline *p, struct gw_err *err)
{
  const struct gw_conf *conf = p->conf;
  const struct gw_front_port port = {
    .addr = conf->receivers.grpc_addr,
    .listener = "otlp_grpc",
    .threads = conf->receivers.grpc_threads,
    .max_conns = conf->receivers.grpc_max_connections,
    .per_ip = conf->receivers.grpc_max_per_ip,
    .header_ms = conf->receivers.grpc_handshake_ms,
    .idle_ms = conf->receivers.grpc_idle_ms,
    .body_ms = conf->receivers.http_body_ms,
    .max_streams = conf->receivers.grpc_max_streams,
    .grpc = true,
    .h2_only = true,
    .age_ms = conf->receivers.grpc_age_ms,
    .age_grace_ms = conf->receivers.grpc_age_grace_ms,
    .min_ping_ms = conf->receivers.grpc_min_ping_ms,
  };
  struct gw_front *f = gw_front_start(p, &port, NULL, NULL, err);
  if (!f)
    return NULL;
  struct gw_grpc_receiver *r = gw_calloc(1, sizeof *r);
  r->p = p;
  r->h2 = f;
  gw_info("grpc", "OTLP/gRPC receiver listening on %s (%s, nghttp2, %u threads, at most %u connections, %u per address)",
          conf->receivers.grpc_addr,
          !p->tls ? "plaintext" : conf->receivers.tls_client_ca[0] ? "TLS, client certificates required" : "TLS",
          conf->receivers.grpc_threads, conf->receivers.grpc_max_connections, conf->receivers.grpc_max_per_ip);
  return r;
}

struct gw_grpc_receiver *gw_grpc_receiver_start(struct gw_pipeline *p, struct gw_err *err)
{
  const struct gw_conf *conf = p->conf;
  if (strcmp(conf->receivers.grpc_engine, "grpc-core") != 0)
    return start_h2(p, err);
  struct gw_grpc_receiver *r = gw_calloc(1, sizeof *r);
  r->p = p;
  /* Connections: an untrusted client must not keep one open for free. Idle ones are closed, old ones asked
   * to go (so clients spread again behind a load balancer), ping floods are refused with GOAWAY, and a
   * connection must finish its handshake quickly. */
  const struct {
    const char *key;
    uint32_t v; /* 0: gRPC's "never" (INT_MAX) for the two durations that allow it */
    bool zero_is_never;
  } ints[] = {
    {GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 0, false},
    {GRPC_ARG_ENABLE_PER_MESSAGE_DECOMPRESSION, 0, false},
    {GRPC_ARG_MAX_CONNECTION_IDLE_MS, conf->receivers.grpc_idle_ms, true},
    {GRPC_ARG_MAX_CONNECTION_AGE_MS, conf->receivers.grpc_age_ms, true},
    {GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, conf->receivers.grpc_age_grace_ms, false},
    {GRPC_ARG_MAX_CONCURRENT_STREAMS, conf->receivers.grpc_max_streams, false},
    {GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, conf->receivers.grpc_min_ping_ms, false},
    {GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2, false},
    {GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0, false},
    {GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, conf->receivers.grpc_handshake_ms, false},
  };
  grpc_arg args[sizeof ints / sizeof ints[0]];
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
    args[i].type = GRPC_ARG_INTEGER;
    args[i].key = (char *)ints[i].key;
    args[i].value.integer = ints[i].zero_is_never && ints[i].v == 0 ? INT32_MAX
                            : ints[i].v > INT32_MAX                 ? INT32_MAX
                                                                    : (int)ints[i].v;
  }
  /* The default 4 MB receive limit is replaced by ours; automatic decompression stays off (top comment). */
  args[0].value.integer = conf->receivers.max_request_bytes > INT32_MAX ? INT32_MAX : (int)conf->receivers.max_request_bytes;
  args[1].value.integer = 0;
  grpc_channel_args ch = {sizeof args / sizeof args[0], args};
  r->server = grpc_server_create(&ch, NULL);
  r->cq = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(r->server, r->cq, NULL);
  r->export_method = grpc_server_register_method(r->server, "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                                 NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
  r->logs_method = grpc_server_register_method(r->server, "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                                               NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
  grpc_server_credentials *creds = NULL;
  if (!p->tls) {
    /* Plaintext: the port is ours (grpc_front.h), once gRPC core is started (below). Addresses our parser
     * does not know stay with gRPC core's listener. */
    struct sockaddr_storage ss;
    socklen_t sl;
    struct gw_err perr;
    memset(&perr, 0, sizeof perr);
    if (gw_net_parse_addr(conf->receivers.grpc_addr, &ss, &sl, &perr) == GW_OK)
      r->insecure = grpc_insecure_server_credentials_create();
  }
  if (r->insecure) {
    /* nothing to add to gRPC core: connections come through grpc_server_add_channel_from_fd */
  } else if (p->tls) {
    /* TLS 1.2 at least (gRPC's own minimum); with client CAs, a client certificate is required and verified. */
    grpc_ssl_client_certificate_request_type req = conf->receivers.tls_client_ca[0]
                                                     ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                                     : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
    creds = grpc_ssl_server_credentials_create_with_options(
      grpc_ssl_server_credentials_create_options_using_config_fetcher(req, fetch_certs, r));
  } else {
    creds = grpc_insecure_server_credentials_create();
  }
  int port = 1;
  if (creds) {
    port = grpc_server_add_http2_port(r->server, conf->receivers.grpc_addr, creds);
    grpc_server_credentials_release(creds);
  }
  if (port <= 0) {
    gw_err_set(err, GW_ERR(IO), "OTLP/gRPC receiver: cannot listen on %s (address in use or not permitted)",
               conf->receivers.grpc_addr);
  } else if (r->insecure) {
    grpc_server_start(r->server);
    r->front = gw_grpc_front_start(conf->receivers.grpc_addr, conf->receivers.grpc_handshake_ms,
                                   GW_GRPC_FRONT_PENDING, handoff, r, err);
    if (!r->front) {
      port = 0;
      grpc_server_shutdown_and_notify(r->server, r->cq, &shutdown_tag);
      grpc_server_cancel_all_calls(r->server);
      while (grpc_completion_queue_next(r->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_OP_COMPLETE)
        ;
    }
  }
  if (port <= 0) {
    if (r->insecure)
      grpc_server_credentials_release(r->insecure);
    grpc_server_destroy(r->server);
    grpc_completion_queue_shutdown(r->cq);
    while (grpc_completion_queue_next(r->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN)
      ;
    grpc_completion_queue_destroy(r->cq);
    free(r);
    return NULL;
  }
  if (!r->front)
    grpc_server_start(r->server);
  for (int i = 0; i < OUTSTANDING; i++) {
    request_one(r, CALL_EXPORT);
    request_one(r, CALL_LOGS);
    request_one(r, CALL_UNKNOWN);
  }
  r->nthreads = (int)conf->receivers.grpc_threads;
  if (r->nthreads < 1)
    r->nthreads = 1;
  if (r->nthreads > MAX_THREADS)
    r->nthreads = MAX_THREADS;
  for (int i = 0; i < r->nthreads; i++)
    pthread_create(&r->threads[i], NULL, serve, r);
  if (r->front)
    gw_metrics_register(render, r);
  gw_info("grpc", "OTLP/gRPC receiver listening on %s (%s)", conf->receivers.grpc_addr,
          !p->tls ? "plaintext" : conf->receivers.tls_client_ca[0] ? "TLS, client certificates required" : "TLS");
  return r;
}

void gw_grpc_receiver_stop(struct gw_grpc_receiver *r)
{
  if (!r)
    return;
  if (r->h2) {
    gw_front_stop_accepting(r->h2);
    gw_front_stop(r->h2);
    free(r);
    return;
  }
  atomic_store(&r->stopping, true);
  if (r->front) {
    /* no connection is handed to a server shutting down */
    gw_metrics_unregister(render, r);
    gw_grpc_front_stop(r->front);
    r->front = NULL;
  }
  grpc_server_shutdown_and_notify(r->server, r->cq, &shutdown_tag);
  /* In-flight calls finish on their own; past 5 s they are cancelled. */
  uint64_t until = gw_mono_ns() + 5000000000ull;
  while (!atomic_load(&r->shutdown_done) && gw_mono_ns() < until) {
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  if (!atomic_load(&r->shutdown_done))
    grpc_server_cancel_all_calls(r->server);
  while (!atomic_load(&r->shutdown_done)) {
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  gw_lane_drain(r->p->lane); /* no job of the lane still holds a call of this server */
  grpc_server_destroy(r->server);
  grpc_completion_queue_shutdown(r->cq);
  for (int i = 0; i < r->nthreads; i++)
    pthread_join(r->threads[i], NULL);
  grpc_completion_queue_destroy(r->cq);
  if (r->insecure)
    grpc_server_credentials_release(r->insecure);
  free(r);
}
