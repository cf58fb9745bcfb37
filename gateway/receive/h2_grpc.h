/*
 * h2_grpc.h: OTLP/gRPC calls on the OTLP/HTTP port (receivers.http.grpc), as Fluent Bit serves HTTP/1.1,
 * HTTP/2 and gRPC on one port, and on the OTLP/gRPC port (receivers.grpc.engine nghttp2, the default). h2.c owns the HTTP/2 session and the stream; these steps judge and answer a
 * stream whose content type is application/grpc the way the gRPC receiver (receive_grpc.c) answers the
 * same call on its own port: the same credentials, limits, pipeline, status codes, messages and
 * grpc-status-details-bin, so the same request bytes give the same answer and the same stored rows.
 * Private to receive/.
 *
 * The wire (gRPC "PROTOCOL-HTTP2"): a unary call's body is one length-prefixed message (1 byte compressed
 * flag, 4 bytes big-endian length); grpc-encoding says how a compressed one is compressed (gzip, deflate or
 * zstd here; another is refused with UNIMPLEMENTED naming it and grpc-accept-encoding listing ours); grpc-timeout is
 * the call's deadline. The answer is HEADERS (:status 200, content-type application/grpc), DATA (the framed
 * Export*ServiceResponse, never compressed: identity is acceptable to every client), then trailers
 * (grpc-status, grpc-message percent-encoded); an error is one HEADERS frame holding the trailers too
 * ("Trailers-Only").
 *
 * Steps, as for OTLP/HTTP (http_req.h): begin (head), body (chunks), finish (worker thread), submit (the
 * session's thread). A stream is driven by one thread at a time, except gone, which the session's thread
 * sets when the client resets a stream a worker holds.
 */
#ifndef GW_H2_GRPC_H
#define GW_H2_GRPC_H

#include <nghttp2/nghttp2.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "receive/http_req.h"

struct gw_h2grpc {
  bool on;   /* the stream is a gRPC call */
  bool logs; /* LogsService/Export (else TraceService/Export) */
  char timeout[16], encoding[32]; /* grpc-timeout, grpc-encoding as received ("" when absent) */
  uint64_t deadline_ns;           /* gw_mono_ns clock; 0: none */
  uint64_t start_ns;              /* the head arrived (an Export call that passed begin); 0: not timed */
  /* framing of the request body */
  unsigned char prefix[5];
  uint8_t prefix_got;
  bool have_msg;   /* a whole prefix arrived */
  bool compressed; /* its compressed flag (grpc-encoding says how) */
  uint32_t msg_len, msg_left;
  int early_status;   /* a framing error found while receiving: answered when the body is complete */
  char early_msg[200];
  atomic_bool gone;   /* the client reset the stream while a worker held it */
  /* the answer: status 0 with the framed response in resp->body, or an error (Trailers-Only) */
  int status;
  char *message; /* percent-encoded grpc-message, heap; NULL: none */
  char *details; /* base64 google.rpc.Status for grpc-status-details-bin, heap; NULL: none */
};

/* Whether a content type is gRPC's: application/grpc, alone or with a +subtype or parameters. */
bool gw_h2grpc_is(const char *content_type);

/* How the call's message is compressed: none, or as its grpc-encoding says (checked at its prefix). */
enum gw_coding gw_h2grpc_coding(const struct gw_h2grpc *g);

/* A request header: keeps grpc-timeout and grpc-encoding. Names are lowercase (HTTP/2). */
void gw_h2grpc_header(struct gw_h2grpc *g, const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen);

/* Judge the head of a gRPC call (h->path is the method; receivers.auth failures counted under listener). true: read its body into q; false: the call is
 * answered now (g holds the status, resp the HTTP part), its body is not read. */
bool gw_h2grpc_begin(struct gw_pipeline *p, const char *listener, struct gw_h2grpc *g, const struct gw_http_head *h,
                     struct gw_http_req *q, struct gw_http_resp *resp);

/* The next chunk of the body: the message's prefix is taken apart here, its payload kept in q (under
 * receivers.max_request_bytes and the in-flight budget). true: the call is answered now (a message longer
 * than receivers.max_request_bytes: RESOURCE_EXHAUSTED), q is released and the rest of the body dropped. */
bool gw_h2grpc_body(struct gw_pipeline *p, struct gw_h2grpc *g, struct gw_http_req *q, const void *data, size_t n,
                    struct gw_http_resp *resp);

/* The body is complete: check its framing, run the pipeline, fill the answer (q is released). Returns
 * true when the answer waits for the spool: done(arg, rc) says when the entry is durable, as
 * gw_http_finish does; the answer is then gw_h2grpc_durable_failed's if rc is not OK. */
bool gw_h2grpc_finish(struct gw_pipeline *p, struct gw_h2grpc *g, struct gw_http_req *q,
                      void (*done)(void *arg, gw_rc rc), void *arg, struct gw_http_resp *resp);

/* The body's deadline in the front's milliseconds (gw_mono_ns / 1e6): the earlier of body_ms and the
 * call's deadline. */
uint64_t gw_h2grpc_body_deadline_ms(const struct gw_h2grpc *g, uint64_t body_ms);

/* Whether the call's own deadline (not the body timeout) has passed. */
bool gw_h2grpc_expired(const struct gw_h2grpc *g);

/* The call's deadline passed while its message was still arriving: DEADLINE_EXCEEDED, counted as on the
 * gRPC port; q is released. */
void gw_h2grpc_deadline(struct gw_pipeline *p, struct gw_h2grpc *g, struct gw_http_req *q, struct gw_http_resp *resp);

/* An error answer for rc with msg (google.rpc.Status with RetryInfo in grpc-status-details-bin when it is
 * retryable), replacing any answer g and resp held. */
void gw_h2grpc_fail(struct gw_pipeline *p, struct gw_h2grpc *g, gw_rc rc, const char *msg, struct gw_http_resp *resp);

/* The answer for an accepted entry the spool could not make durable (rc from done). */
void gw_h2grpc_durable_failed(struct gw_pipeline *p, struct gw_h2grpc *g, gw_rc rc, struct gw_http_resp *resp);

/* Submit the answer on stream id: Trailers-Only for an error; else HEADERS and DATA from dp, whose read
 * callback calls gw_h2grpc_trailers at the end of the data (with NGHTTP2_DATA_FLAG_NO_END_STREAM). */
void gw_h2grpc_submit(nghttp2_session *s, int32_t id, struct gw_h2grpc *g, nghttp2_data_provider *dp);
void gw_h2grpc_trailers(nghttp2_session *s, int32_t id, struct gw_h2grpc *g);

void gw_h2grpc_fini(struct gw_h2grpc *g);

#endif
