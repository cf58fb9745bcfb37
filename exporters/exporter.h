/*
 * exporter.h: what an export backend is (DESIGN §7). Declared once per backend, as one
 * const struct gw_exporter_type at the end of its own file (langfuse/langfuse.c, signoz/signoz.c,
 * otlp/otlp.c), and listed in main.c's registry; a third backend is one more file and one more line.
 *
 * Everything generic lives in otlp/: each running exporter is a spool consumer (a sink, sink/sink.h) with
 * its own cursor, thread and lag cap; it cuts batches into OTLP requests, sends them over OTLP/HTTP
 * protobuf (libcurl) or OTLP/gRPC (gRPC core), and reads the answers (retryable or not, Retry-After,
 * RetryInfo, partial_success). A backend only says where and how: its config section (its row in
 * gw_conf_exporter_names, whose keys conf.c's table declares), which signals it takes, the paths its HTTP
 * endpoint serves, the headers its auth needs, and optionally a transform of its own copy of the spans.
 */
#ifndef GW_EXPORTER_H
#define GW_EXPORTER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"
#include "core/conf.h"
#include "core/gw.h"
#include "normalize/record.h"
#include "pb.h"

enum { GW_EXPORT_TRACES = 1 << 0, GW_EXPORT_LOGS = 1 << 1 };

/* Headers (gRPC metadata) a backend adds to every request; names lowercase. */
#define GW_EXPORT_MAX_HEADERS 32
struct gw_export_headers {
  size_t n;
  char *name[GW_EXPORT_MAX_HEADERS];  /* heap strings, owned by the exporter */
  char *value[GW_EXPORT_MAX_HEADERS]; /* secrets possibly: never logged */
};
/* Append one header (copied). GW_ERR(CONFIG) when the table is full. */
gw_rc gw_export_headers_add(struct gw_export_headers *h, const char *name, const char *value);

/*
 * The spans of a batch for a transform, read from their OTLP wire bytes in the exporter thread's arena
 * (nothing is decoded into protobuf-c messages, nothing re-encoded but what changes). Only spans that will
 * be sent are here (genai_only filtering and id validation already done), in spool order; rec is the
 * span's interaction record, NULL when it has none. Attribute keys and string values point into the wire
 * bytes: they are not NUL-terminated. A transform adds attributes with gw_export_add_attr and leaves
 * existing ones out with gw_export_drop_attr; it cannot change them in place.
 */
struct gw_export_attr {
  const char *key;
  size_t klen;
  const char *str; /* the string value; NULL when the value is not a string */
  size_t slen;
  bool has_dbl;    /* the value is a double (e.g. genai_gateway.cost.*): dbl */
  double dbl;
  /* payload.c's own: the attribute's field in the span's wire bytes */
  const uint8_t *wire;
  size_t wire_len;
};

struct gw_export_add; /* an attribute to append (payload.c's) */

struct gw_export_span {
  const uint8_t *trace_id, *span_id; /* 16 and 8 bytes */
  const struct gw_export_attr *attrs;
  size_t nattrs;
  struct gw_record *rec;
  /* payload.c's own */
  const uint8_t *body;
  size_t len;
  struct gw_export_add *adds;
  size_t nadds, capadds;
  bool *dropped;     /* per attribute: left out (gw_export_drop_attr); NULL when none is */
  size_t dropped_len; /* wire bytes of the dropped ones */
  bool drop;
  bool held; /* kept back by the exporter's join (it goes later): a transform may learn from it (trace-level
              * ids), what it adds is not sent */
};

struct gw_export_batch {
  struct gw_arena *arena;
  struct gw_export_span **spans; /* the kept spans of every trace entry, in order */
  size_t nspans;
  /* With wants_events: the GenAI events (redacted messages from OTLP log records, normalize/record.h) of
   * one span, from the logs entries the exporter has read in this batch or earlier ones (the join keeps
   * them until their span comes), even though the backend does not take logs; sorted as the Postgres merge
   * orders them (time, seq, event name). NULL when the exporter keeps no log content. */
  size_t (*span_events)(void *ctx, const uint8_t *trace_id, const uint8_t *span_id, struct gw_arena *a,
                        const struct gw_event *const **out);
  void *events_ctx;
};

/* Append a string attribute to a span (value copied, the copy in *stored when not NULL; key must outlive
 * the batch, e.g. a literal). NOMEM over the arena cap. */
gw_rc gw_export_add_attr(struct gw_export_batch *b, struct gw_export_span *sp, const char *key, const char *value,
                         size_t len, const char **stored);
/* Leave the span's attribute sp->attrs[i] out of what is sent (to replace a value with gw_export_add_attr:
 * what the gateway stored wins over it). NOMEM over the arena cap. */
gw_rc gw_export_drop_attr(struct gw_export_batch *b, struct gw_export_span *sp, size_t i);

struct gw_exporter_type {
  const char *name;                  /* metric label and thread name; = gw_conf_exporter_names[conf_id] */
  enum gw_conf_exporter_id conf_id;  /* its section exporters.<name> */
  unsigned signals;                  /* GW_EXPORT_*: entries of other signals are passed over, committed */
  const char *traces_path;           /* appended to an HTTP endpoint, e.g. "/v1/traces" */
  const char *logs_path;             /* NULL when the backend takes no logs */
  bool otlp_http_response;           /* HTTP answers are OTLP Export*ServiceResponse (partial_success read);
                                      * false: another body (Langfuse's JSON), only the status counts */
  bool wants_events;                 /* the exporter joins spans with the GenAI events of log entries
                                      * (a join, join.c): transform gets them through span_events */
  /* Add the backend's own headers (auth) from its config. May be NULL. Errors name the key. */
  gw_rc (*headers)(const struct gw_conf_exporter *c, struct gw_export_headers *h, struct gw_err *err);
  /* Per exporter private state for transform (e.g. a cache); may be NULL. destroy(NULL) is not called. */
  void *(*create)(const struct gw_conf_exporter *c);
  void (*destroy)(void *priv);
  /* Transform this exporter's copy of a batch of spans (runs on the exporter's thread). May be NULL: then,
   * unless genai_only, requests are forwarded byte for byte, without decoding. NOMEM / TOO_LARGE when the
   * arena is exhausted (the batch's spans are then dropped and counted). */
  gw_rc (*transform)(void *priv, struct gw_export_batch *b);
};

/* The attribute `key` of a decoded span, or NULL (for tests and tools reading what was sent). */
const GwKeyValue *gw_export_span_attr(const GwSpan *sp, const char *key);

#endif
