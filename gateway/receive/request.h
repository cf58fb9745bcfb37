/*
 * request.h: one OTLP export request, from body bytes to a spool entry (DESIGN §1, §2).
 *
 * Shared by both receivers: inflate (capped) -> decode -> normalize (invalid spans removed and counted)
 * -> encode records and the accepted spans -> spool append. The receiver only maps the outcome to its
 * transport's status. A global cap on request bytes in flight across all connections turns overload into
 * 503 / UNAVAILABLE with Retry-After instead of memory growth.
 * Thread-safe: any number of receiver threads call gw_request_traces concurrently.
 */
#ifndef GW_REQUEST_H
#define GW_REQUEST_H

#include "core/arena.h"
#include "core/conf.h"
#include "core/gw.h"
#include "decode/decode.h"
#include "spool/spool.h"

struct gw_prices;
struct gw_redactor;
struct gw_tls;
struct gw_auth;

struct gw_lane;

struct gw_pipeline {
  const struct gw_conf *conf;
  struct gw_spool *spool;
  const struct gw_prices *prices;      /* NULL: records are not priced */
  const struct gw_redactor *redactor;  /* NULL: nothing redacted (tests only; main always sets one) */
  struct gw_tls *tls;                  /* receivers.tls: NULL = plaintext receivers */
  struct gw_auth *auth;                /* receivers.auth: NULL = no token required */
  struct gw_lane *lane;                /* large requests (lane.h): NULL = all on their receiver thread */
  struct gw_hist_cache *history_cache;   /* prompt history's SimHash parts (normalize.h): NULL = none kept */
  bool forward; /* an exporter reads the spool: entries carry the re-packed request (else only their rows) */
  _Atomic uint64_t inflight_bytes;
  _Atomic bool shutting_down;
  _Atomic uint64_t pending_bytes; /* spool room promised to requests being processed (estimates) */
  _Atomic uint32_t entry_ratio;   /* spool entry bytes per body byte of recent requests, in 1/256 */
};

void gw_pipeline_init(struct gw_pipeline *p, const struct gw_conf *conf, struct gw_spool *spool);

/* Reserve n bytes of the in-flight budget; GW_ERR(BUSY) when it is used up. Release with the same n.
 * The budget (receivers.max_inflight_bytes) counts the bodies receivers hold and every request arena's
 * chunks (gw_pipeline_arena), so memory under load is bounded by it, not only the wire bytes. */
gw_rc gw_pipeline_reserve(struct gw_pipeline *p, size_t n);
void gw_pipeline_release(struct gw_pipeline *p, size_t n);

/* The memory one request may use, its body as received and its arena together: GW_REQUEST_SHARE x
 * receivers.max_request_bytes, or receivers.max_inflight_bytes when that is less (so that a lone request
 * is never refused with "retry later" for what it alone needs). */
#define GW_REQUEST_SHARE 4
size_t gw_pipeline_share(const struct gw_pipeline *p);

/* The calling thread's arena for one request whose body already holds `held` bytes of the budget: capped
 * at the rest of the request's share, its growth charged to the in-flight budget. Valid until the thread
 * asks again; gw_arena_reset it when the request is answered, which gives the budget back. */
struct gw_arena *gw_pipeline_arena(struct gw_pipeline *p, size_t held);

struct gw_request_outcome {
  struct gw_err err;       /* rc != 0: the whole request failed (nothing accepted) */
  uint32_t spans;          /* spans in the request */
  uint32_t rejected;       /* spans rejected (partial_success.rejected_spans) */
  char reject_msg[256];    /* partial_success.error_message */
  bool logs;               /* a logs request: spans/rejected count log records (rejectedLogRecords) */
  bool deferred;           /* the entry is appended, and the done callback given to gw_request_defer will say
                            * when it is durable: answer the client then */
};

/* For the next gw_request_traces / gw_request_logs on this thread only: do not wait for the spool to make the
 * entry durable (disk spool, spool.fsync always/interval); call done(arg, rc) once it is (rc != OK: the
 * sync failed, answer with that error), from another thread or before the request returns. The outcome's
 * deferred says whether done will be called. Lets a few gRPC threads serve many clients while their
 * entries wait for the group commit. */
void gw_request_defer(void (*done)(void *arg, gw_rc rc), void *arg);

/* For the next gw_request_traces / gw_request_logs on this thread only: nobody waits for the answer past
 * deadline_ns (gw_mono_ns clock; 0: no deadline), nor once gone(arg) returns non-zero (the client went
 * away; NULL: never asked). Both are checked between the stages and inside redaction (every 64 to 256 KiB
 * it reads); the request then stops where it is, nothing is appended, and it fails with GW_ERR(DEADLINE)
 * or what gone returned (GW_ERR(CANCELLED)), counted in genai_gateway_requests_deadline_exceeded_total /
 * genai_gateway_requests_cancelled_total. gone is called from this thread only. */
void gw_request_limit(uint64_t deadline_ns, gw_rc (*gone)(void *arg), void *arg);

/* Run the pipeline on one body. coding: how the body is compressed (Content-Encoding / grpc-encoding).
 * Returns the rc also stored in out->err.rc. The arena holds everything and is the caller's. */
gw_rc gw_request_traces(struct gw_pipeline *p, struct gw_arena *a, enum gw_encoding enc, enum gw_coding coding,
                        const void *body, size_t len, struct gw_request_outcome *out);

/* The same for an ExportLogsServiceRequest: out->spans / rejected count log records. GenAI event records
 * become events (stored by the writer, merged into their span's row); all accepted records are forwarded. */
gw_rc gw_request_logs(struct gw_pipeline *p, struct gw_arena *a, enum gw_encoding enc, enum gw_coding coding,
                      const void *body, size_t len, struct gw_request_outcome *out);

#endif
