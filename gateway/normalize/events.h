/*
 * events.h: GenAI events from OTLP log records (events.c; DESIGN §3).
 */
#ifndef GW_EVENTS_H
#define GW_EVENTS_H

#include "core/arena.h"
#include "core/gw.h"
#include "normalize/normalize.h"
#include "normalize/record.h"
#include "pb.h"

struct gw_logs_result {
  struct gw_event *events; /* arena array, one per message (see record.h) */
  size_t nevents;
  uint32_t nlogs;        /* log records seen */
  uint32_t nrejected;    /* rejected (bad ids, GenAI event outside the time window) and removed */
  uint32_t ngenai;       /* accepted log records with a gen_ai.* event name */
  uint32_t nunjoinable;  /* of those, without a trace_id/span_id: forwarded, not stored */
  char reject_msg[256];  /* the first rejection, for partial_success.error_message */
  bool has_genai;
};

/* The event name of a log record: its event_name field, else its event.name attribute; NULL if none. */
const char *gw_log_event_name(const GwLogRecord *l);

/*
 * Validate every log record of req and turn the GenAI ones into events. Rejected records are removed from
 * req (the forwarded copy holds only accepted ones). opts gives the storable time window (may be NULL).
 * Event content is the unredacted message; redact it (and the request) before anything leaves.
 * Returns TOO_LARGE when the arena is exhausted.
 */
gw_rc gw_normalize_logs(GwLogsRequest *req, struct gw_arena *a, const struct gw_normalize_opts *opts,
                        struct gw_logs_result *res, struct gw_err *err);

/* After the request was redacted: render each event's attributes from its (now redacted) log record. */
gw_rc gw_events_finish(struct gw_event *evs, size_t n, struct gw_arena *a);

#endif
