/*
 * http_req.h: one OTLP/HTTP request, whatever carries it: HTTP/1.1 through libmicrohttpd
 * (receive_http.c) or HTTP/2 through nghttp2 (h2.c). Private to receive/.
 *
 * Both transports call the same three steps, so a request is judged the same way on both (OTLP §"OTLP/HTTP"):
 *  - begin: the head (credentials first, then path, method, media type, content encoding, declared size);
 *  - body: the chunks as they come, kept under receivers.max_request_bytes and the in-flight budget;
 *  - finish: the pipeline (request.h) and the answer's status, content type and body.
 * An answer is a struct gw_http_resp the transport sends as it likes. Not thread-safe per request (one
 * request is driven by one thread at a time); any number of requests run at once.
 */
#ifndef GW_HTTP_REQ_H
#define GW_HTTP_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "receive/request.h"

/* What the transport read of the request head; NULL for an absent header. */
struct gw_http_head {
  const char *path, *method, *content_type, *content_encoding, *content_length;
  const char *authorization, *api_key;
  size_t authorization_len, api_key_len;
  bool expect_continue; /* Expect: 100-continue: the client sends its body only once told to */
};

struct gw_http_req {
  enum gw_encoding enc;
  enum gw_coding coding; /* Content-Encoding */
  bool json, logs;
  char *body;
  size_t len, cap, reserved;
  size_t mapped, declared; /* the body's mapping (cap or more); Content-Length within the limit, or 0 */
  size_t expect; /* the body's length when known otherwise (a gRPC message's prefix): sizes its mapping only */
  gw_rc early; /* a failure found while receiving (too large, busy): answered when the body is complete */
  char early_msg[200];
};

struct gw_http_resp {
  unsigned status;
  const char *content_type;
  void *body; /* malloc'd, owned; may be NULL when len is 0 */
  size_t len;
  uint32_t retry_after; /* seconds for Retry-After (429/503), 0: none */
  const char *hname;    /* one extra header (WWW-Authenticate, Allow), or NULL */
  const char *hvalue;
};

/* Judge a request head. true: read its body into q (q->early may already say how it will be refused);
 * false: resp is the answer to give now, without reading the body. listener names the metrics label. */
bool gw_http_begin(struct gw_pipeline *p, const char *listener, const struct gw_http_head *h,
                   struct gw_http_req *q, struct gw_http_resp *resp);

/* The next chunk of the body. */
void gw_http_body(struct gw_pipeline *p, struct gw_http_req *q, const void *data, size_t n);

/* The body is complete: run the pipeline (or refuse with q->early) and fill resp. The body's memory and
 * budget are given back here. Returns true when the answer waits for the spool: done(arg, rc) is called
 * once the entry is durable (possibly before this returns); send resp then if rc is OK, else the answer
 * gw_http_resp_durable_failed gives. False with resp->status 0: the client hung up (see gw_request_limit), send
 * nothing and close. */
bool gw_http_finish(struct gw_pipeline *p, struct gw_http_req *q, void (*done)(void *arg, gw_rc rc), void *arg,
                    struct gw_http_resp *resp);

/* The answer for an accepted entry the spool could not make durable (rc from done). */
void gw_http_resp_durable_failed(struct gw_pipeline *p, bool json, gw_rc rc, struct gw_http_resp *resp);

/* An error answer (google.rpc.Status in the request's encoding) for rc with msg. */
void gw_http_resp_error(struct gw_pipeline *p, bool json, gw_rc rc, const char *msg, struct gw_http_resp *resp);

void gw_http_req_fini(struct gw_pipeline *p, struct gw_http_req *q); /* frees the body, gives its budget back */
void gw_http_resp_fini(struct gw_http_resp *resp);

#endif
