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
 * A batch of trace requests decoded for a transform, in the exporter thread's arena. Spans that will be
 * sent are in reqs (genai_only filtering and id validation already done); recs are the interaction
 * records of those requests, each with ->span pointing at its span (NULL when the span was filtered out).
 * A transform may add attributes (gw_export_add_attr) or change values; it must not remove spans.
 */
struct gw_export_batch {
  struct gw_arena *arena;
  GwTraceRequest **reqs;
  size_t nreqs;
  struct gw_record *recs;
  size_t nrecs;
  /* With wants_events: the GenAI events (redacted messages from OTLP log records, normalize/record.h) of
   * the batch's logs entries, in spool order, even though the backend does not take logs. */
  const struct gw_event *events;
  size_t nevents;
};

struct gw_exporter_type {
  const char *name;                  /* metric label and thread name; = gw_conf_exporter_names[conf_id] */
  enum gw_conf_exporter_id conf_id;  /* its section exporters.<name> */
  unsigned signals;                  /* GW_EXPORT_*: entries of other signals are passed over, committed */
  const char *traces_path;           /* appended to an HTTP endpoint, e.g. "/v1/traces" */
  const char *logs_path;             /* NULL when the backend takes no logs */
  bool otlp_http_response;           /* HTTP answers are OTLP Export*ServiceResponse (partial_success read);
                                      * false: another body (Langfuse's JSON), only the status counts */
  bool wants_events;                 /* transform also gets the GenAI events of the batch's logs entries */
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

/* The attribute `key` of a span, or NULL. */
const GwKeyValue *gw_export_span_attr(const GwSpan *sp, const char *key);
/* Append a string / int attribute to a span (strings copied into the arena). NOMEM over the arena cap. */
gw_rc gw_export_add_attr_str(struct gw_arena *a, GwSpan *sp, const char *key, const char *value);

#endif
