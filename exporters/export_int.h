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
/* Why a span went to a backend without the log content it waited for (join.c): its wait ended, no memory
 * to hold it, shutdown. */
enum gw_export_join_why { GW_XJ_WAIT, GW_XJ_MEMORY, GW_XJ_STOP, GW_XJ__COUNT };
extern const char *const gw_export_join_why_labels[GW_XJ__COUNT];
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
  _Atomic uint64_t auth_refused; /* requests refused for their credentials (401, 403, UNAUTHENTICATED,
                                  * PERMISSION_DENIED); retried, not dropped, with a token_file */
  _Atomic uint64_t token_reloads[2]; /* token_file re-reads: ok, failed */
  bool has_token;                    /* token_file is set: the reloads are shown */
  /* the join of spans with their log records (join.c) */
  _Atomic uint64_t join_held;                      /* spans held to wait for their log records */
  _Atomic uint64_t join_incomplete[GW_XJ__COUNT];           /* sent without the content they waited for, by why */
  _Atomic uint64_t join_events_dropped;            /* messages whose span did not come in time */
  _Atomic uint64_t join_held_now, join_bytes_now;  /* gauges */
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

/* ---- the bearer token of exporters.<name>.token_file (token.c) ---- */

struct gw_export_token;
/* Read path (fail fast: err names the key, the file and why) and watch it (SIGHUP, file changes); re-reads
 * are counted in reloads[0] (ok) and reloads[1] (failed). */
struct gw_export_token *gw_export_token_create(const char *name, const char *path, _Atomic uint64_t *reloads,
                                               struct gw_err *err);
void gw_export_token_destroy(struct gw_export_token *t); /* NULL is fine */
/* Bumped each time a re-read brings a different token. */
uint64_t gw_export_token_gen(const struct gw_export_token *t);
/* A copy of the current token (heap: wipe before freeing) and its generation. */
char *gw_export_token_get(struct gw_export_token *t, uint64_t *gen);

/* Whether a reply refuses the request's credentials: HTTP 401 or 403, gRPC UNAUTHENTICATED (16) or
 * PERMISSION_DENIED (7). */
bool gw_export_auth_refused(enum gw_export_transport t, const struct gw_export_reply *r);

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
  uint64_t held;        /* spans held by the join (sent later, from the join's own copy) */
  struct gw_export_span *spans; /* a read trace entry's spans (drop: not sent), for the join's claims */
  size_t nspans;
};

struct gw_export_join;
struct gw_export_payload_opts {
  const struct gw_exporter_type *type;
  void *priv;          /* the type's create() result */
  bool genai_only;
  struct gw_export_join *join; /* NULL: no spans held, no log content for the transform */
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

/* ---- the join of GenAI spans with the log records carrying their content (join.c) ---- */

/* A trace entry made by the join from a held span (one span, its record): never held again. */
#define GW_EXPORT_ENTRY_RELEASED (1u << 16)

struct gw_export_join_conf {
  uint64_t wait_ms;     /* how long a span waits for its log records after it was spooled; 0: never held */
  uint64_t events_ms;   /* how long log content waits for its span */
  size_t max_bytes;     /* held spans and kept content together */
  uint32_t release_max; /* held spans released per batch at most (0: 512) */
  uint64_t read_lag_ms; /* the longest an entry sits in the spool before the exporter reads it (batch_wait_ms) */
};
/* Create a join (stats may be NULL: nothing counted). Owned by one exporter thread. */
struct gw_export_join *gw_export_join_create(const struct gw_export_join_conf *c, struct gw_export_stats *st);
void gw_export_join_destroy(struct gw_export_join *j);

/*
 * Keep the GenAI messages of the logs entries among entries[0..n) (copied: an entry may be committed
 * afterwards). Content older than events_ms is dropped first (counted); when max_bytes would be passed the
 * oldest content goes (counted). A message kept already (an entry read again) is not added twice.
 * NOMEM when the arena cannot decode them.
 */
gw_rc gw_export_join_add(struct gw_export_join *j, struct gw_arena *a, const struct gw_spool_entry *entries, size_t n);
/* The kept messages of one span (binary ids), in the order the Postgres merge uses (time, seq, event
 * name), as an arena array of pointers valid until the join is next changed. 0 when none. */
size_t gw_export_join_events(struct gw_export_join *j, const uint8_t *trace_id, const uint8_t *span_id,
                             struct gw_arena *a, const struct gw_event *const **out);
/* A span was delivered (or given up): its kept content is no longer needed. */
void gw_export_join_claim(struct gw_export_join *j, const uint8_t *trace_id, const uint8_t *span_id);

/* Whether a span should wait for its log records: an inference span (chat, text_completion,
 * generate_content) of the semconv dialects that lacks input messages, or output messages without being an
 * error, in its record and in the kept content; never when wait_ms is 0. */
bool gw_export_join_wants(struct gw_export_join *j, const uint8_t *trace_id, const uint8_t *span_id,
                          const struct gw_record *r);
enum gw_export_hold {
  GW_XH_HELD,    /* kept: leave it out of this batch */
  GW_XH_ALREADY, /* held already (its entry is read again): leave it out */
  GW_XH_FULL     /* no room (counted as sent without its content, reason memory): send it now */
};
/* Hold a span: otlp is a one-span ExportTraceServiceRequest, recs its record encoded (both copied);
 * seq and appended_ns are its spool entry's. */
enum gw_export_hold gw_export_join_hold(struct gw_export_join *j, const uint8_t *trace_id, const uint8_t *span_id,
                                        const struct gw_record *r, const void *otlp, size_t otlp_len,
                                        const void *recs, size_t recs_len, uint64_t seq, uint64_t appended_ns);
struct gw_export_join_now {
  uint64_t wall_ns;  /* now */
  uint64_t read_ns;  /* when the newest entry the exporter has read was spooled */
  bool caught_up;    /* the exporter has read everything spooled so far */
  bool final;        /* stopping, drained: everything held goes */
};
/*
 * The held spans to send now, oldest first and at most release_max: those whose content is there, those
 * that have waited wait_ms (the exporter has read what was spooled until wait_ms after them, or it is
 * caught up and wait_ms + read_lag_ms have passed since they were spooled), all when final. Each is a
 * one-span trace entry (flag GW_EXPORT_ENTRY_RELEASED) pointing into the join, for gw_export_build ahead
 * of the batch's own entries. *out is in the arena.
 */
size_t gw_export_join_release(struct gw_export_join *j, struct gw_arena *a, const struct gw_export_join_now *now,
                              struct gw_spool_entry **out);
/* After the send: the first done released spans were delivered or given up (forgotten, and counted when
 * without their content); the others stay held and are released again. The released entries' bytes are
 * freed here: claim their spans (whose ids point into them) before. */
void gw_export_join_done(struct gw_export_join *j, size_t done);
/* The oldest spool entry the join keeps something of (0: none): commit only the entries before it. */
uint64_t gw_export_join_keep_from(const struct gw_export_join *j);
/* Spans held now. */
size_t gw_export_join_held(const struct gw_export_join *j);

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
