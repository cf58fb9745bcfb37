/*
 * export_int.h: private to the exporters module: the counters an exporter keeps, the reply of one OTLP
 * request and how it is judged, the two transports, and the payload builder. Declared here so the unit
 * tests (tests/unit/test_export.c) can exercise each piece alone.
 */
#ifndef GW_EXPORT_INT_H
#define GW_EXPORT_INT_H

#include <stdatomic.h>
#include <stdint.h>

#include "exporter.h"
#include "sink/sink.h"
#include "spool/spool.h"

/* ---- counters (one set per running exporter; read by /metrics) ---- */

enum gw_export_signal { GW_XS_TRACES, GW_XS_LOGS, GW_XS__COUNT };
/* Why data was given up (DESIGN §1, §7); the lag cap's losses are counted by the sink. */
#define GW_EXPORT_DROP_REASONS(X)                                                                     \
  X(REJECTED, "rejected")               /* a non-retryable answer (4xx, INVALID_ARGUMENT, ...) */     \
  X(PARTIAL, "partial_success")         /* the receiver refused some in partial_success */            \
  X(INVALID, "invalid_id")              /* a span with a malformed id, never sent (Langfuse 400s a */ \
                                        /* whole batch for one) */                                    \
  X(TOO_LARGE, "too_large")             /* could not be transformed within the memory cap */
enum gw_export_drop {
#define GW_XD_ENUM(id, label) GW_XD_##id,
  GW_EXPORT_DROP_REASONS(GW_XD_ENUM)
#undef GW_XD_ENUM
  GW_XD__COUNT
};
enum gw_export_result { GW_XR_OK, GW_XR_RETRY, GW_XR_DROP, GW_XR__COUNT };
#define GW_EXPORT_LATENCY_BUCKETS 12 /* upper bounds in gw_export_latency_bounds_ms, then +Inf */
extern const double gw_export_latency_bounds_ms[GW_EXPORT_LATENCY_BUCKETS];

struct gw_export_stats {
  _Atomic uint64_t sent[GW_XS__COUNT];    /* accepted by the receiver */
  _Atomic uint64_t failed[GW_XS__COUNT];  /* in requests that failed, every attempt counted */
  _Atomic uint64_t retried[GW_XS__COUNT]; /* in requests that failed and will be sent again */
  _Atomic uint64_t dropped[GW_XS__COUNT][GW_XD__COUNT];
  _Atomic uint64_t filtered[GW_XS__COUNT]; /* left out by genai_only */
  _Atomic uint64_t requests[GW_XR__COUNT];
  _Atomic uint64_t batch_hist[GW_EXPORT_LATENCY_BUCKETS + 1];
  _Atomic uint64_t batch_count, batch_ns;
  _Atomic int up; /* 1 after a request succeeded, 0 after one failed, -1 before any */
};
const char *gw_export_drop_label(enum gw_export_drop d);

/* ---- one request's reply and its judgement (reply.c) ---- */

enum gw_export_transport { GW_XT_HTTP, GW_XT_GRPC };

#define GW_EXPORT_MAX_RESPONSE (4u << 20) /* OTLP: a client SHOULD cap responses at 4 MiB */

struct gw_export_reply {
  bool connected;         /* false: the request never got an answer (refused, timeout, reset, TLS) */
  long http_status;       /* HTTP */
  int grpc_code;          /* gRPC status */
  uint64_t retry_after_ms; /* Retry-After / RetryInfo, 0 when none */
  bool retry_info;        /* gRPC: the status carried RetryInfo */
  uint8_t *body;          /* response body / message (heap, owned by the caller, capped) */
  size_t body_len;
  char error[256];        /* transport error, or the server's message (printable, cut short) */
};
void gw_export_reply_reset(struct gw_export_reply *r);

/*
 * Judge a reply by OTLP's rules (SPEC-FACTS §1.3-1.5): HTTP 2xx OK; 429, 502, 503, 504 and no answer at all
 * RETRY; any other status DROP. gRPC OK; CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE,
 * UNAVAILABLE, DATA_LOSS and no answer RETRY; RESOURCE_EXHAUSTED RETRY only with RetryInfo; the rest DROP.
 */
enum gw_export_result gw_export_classify(enum gw_export_transport t, const struct gw_export_reply *r);

/* partial_success of an Export{Trace,Logs}ServiceResponse body: rejected count (0 when unset or when the
 * body does not decode) and its message (printable, cut to msg_len). */
int64_t gw_export_partial_rejected(enum gw_signal sig, const void *body, size_t len, char *msg, size_t msg_len);

/* A google.rpc.Status (grpc-status-details-bin, or an HTTP error body): its message into msg, and its
 * RetryInfo delay in ms (0 when none; *found tells apart "0 s" from absent). false when it does not decode. */
bool gw_export_parse_status(const void *buf, size_t len, char *msg, size_t msg_len, uint64_t *retry_ms, bool *found);

/* Copy text for a log line: printable ASCII only, cut to n - 1 bytes. */
void gw_export_printable(char *dst, size_t n, const void *src, size_t len);

/* ---- transports (http.c, grpc.c): one client per exporter thread, connections kept open ---- */

struct gw_export_conn_opts {
  const char *name;      /* for logs */
  uint32_t timeout_ms;
  bool gzip;
  bool tls;              /* gRPC */
  const char *ca_file;   /* "" = system roots */
  const struct gw_export_headers *headers;
  _Atomic uint64_t *abort_at; /* monotonic ns, 0 = none: a request in flight gives up then (shutdown) */
};

struct gw_http_client;
struct gw_http_client *gw_http_client_create(const struct gw_export_conn_opts *o, struct gw_err *err);
void gw_http_client_destroy(struct gw_http_client *c);
/* POST body (already gzipped when o->gzip) as application/x-protobuf. Fills r. */
void gw_http_post(struct gw_http_client *c, const char *url, const void *body, size_t len, struct gw_export_reply *r);
/* The HTTP version of the last answer ("1.1", "2"), for tests and logs. */
const char *gw_http_last_version(struct gw_http_client *c);

struct gw_grpc_client;
/* target: host:port. Never connects here (gRPC connects on the first call, and reconnects by itself). */
struct gw_grpc_client *gw_grpc_client_create(const char *target, const struct gw_export_conn_opts *o,
                                             struct gw_err *err);
void gw_grpc_client_destroy(struct gw_grpc_client *c);
/* Unary call of method with a serialized request; gzipped: msg is already gzip (RFC 1952), sent as a
 * compressed message (only on a client created with o->gzip). Fills r (body = the response message). */
void gw_grpc_call(struct gw_grpc_client *c, const char *method, const void *msg, size_t len, bool gzipped,
                  struct gw_export_reply *r);

/* gzip (RFC 1952) of src into the arena, at the fastest level: exporters compress every byte they send.
 * A compressor belongs to one thread. */
struct gw_export_gzip;
struct gw_export_gzip *gw_export_gzip_create(void);
void gw_export_gzip_destroy(struct gw_export_gzip *z);
gw_rc gw_export_gzip(struct gw_export_gzip *z, struct gw_arena *a, const void *src, size_t len, void **out,
                     size_t *out_len);

/* ---- payloads (payload.c) ---- */

/* One entry's contribution, ready to be concatenated: repeated field 1 messages of an Export*Request. */
struct gw_export_piece {
  enum gw_signal signal;
  const uint8_t *bytes; /* the entry's own bytes (pass-through) or the arena (transformed) */
  size_t len;
  uint64_t items;       /* spans or log records in bytes */
  uint64_t invalid;     /* spans left out for bad ids */
  uint64_t filtered;    /* left out by genai_only (not a loss: what was asked for) */
  bool too_large;       /* could not be transformed: items are dropped */
};

struct gw_export_payload_opts {
  const struct gw_exporter_type *type;
  void *priv;          /* the type's create() result */
  bool genai_only;
};

/*
 * Turn entries[0..n) into pieces[0..n) (one per entry; an entry of a signal the type does not take gets
 * len 0, items 0). Entries are forwarded byte for byte when nothing needs changing; otherwise the trace
 * entries are decoded into the arena, filtered (genai_only: spans with an interaction record; every span
 * with a malformed id), transformed by the type and re-encoded. Returns NOMEM only for a failure that
 * is not one entry's alone.
 */
gw_rc gw_export_build(const struct gw_export_payload_opts *o, struct gw_arena *a, const struct gw_spool_entry *entries,
                      size_t n, struct gw_export_piece *pieces);

/* ---- the generic exporter (exporter.c) ---- */

/* Everything a running exporter needs, fixed at start. Strings are copied. */
struct gw_export_setup {
  const struct gw_exporter_type *type;
  const struct gw_conf_exporter *conf; /* must outlive the exporter (the process config does) */
  struct gw_export_stats *stats;       /* owned by the caller, outlives the exporter */
};
/* A sink self for gw_sink_start with gw_export_sink_ops; NULL with err on a bad config (names the key). */
void *gw_export_create(const struct gw_export_setup *s, struct gw_err *err);
/* The sink operations every exporter uses; gw_exporters_start copies them under each exporter's name. */
extern const struct gw_sink_type gw_export_sink_ops;

#endif
