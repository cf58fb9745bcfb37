/*
 * decode_pb.c: binary OTLP into protobuf-c structs allocated in the request arena.
 *
 * protobuf-c recurses once per nested message and has no depth limit: a request with AnyValue nested a
 * few thousand deep overflows the stack inside libprotobuf-c. So a pre-scan walks the wire format first,
 * following only the fields the OTLP schema declares as messages, and refuses input deeper than the
 * configured limit or malformed at the wire level, before protobuf-c sees it.
 *
 * After unpacking, every string of the request is made valid UTF-8 (gw_utf8_fix) and the repairs are
 * counted. protobuf-c hands strings over NUL-terminated, so a string with an embedded NUL byte arrives
 * already cut at it: the tail is lost rather than the NUL removed (the JSON path, which knows lengths,
 * removes only the NUL). Accepted: NUL has no place in text and senders do not send it on purpose.
 */
#include <string.h>

#include "core/metrics.h"
#include "decode/decode.h"

/* Schema nodes for the pre-scan: which field numbers of which message are sub-messages. */
enum node {
  N_TRACE_REQ, N_LOGS_REQ, N_RESOURCE_SPANS, N_RESOURCE_LOGS, N_RESOURCE, N_SCOPE_SPANS, N_SCOPE_LOGS, N_SCOPE,
  N_SPAN, N_EVENT, N_LINK, N_STATUS, N_LOG_RECORD, N_KEY_VALUE, N_ANY_VALUE, N_ARRAY, N_KVLIST, N_LEAF
};

/* Child node for field `field` of message `n`, or N_LEAF for scalars / strings / unknown fields. */
static enum node child(enum node n, uint32_t field)
{
  switch (n) {
  case N_TRACE_REQ: return field == 1 ? N_RESOURCE_SPANS : N_LEAF;
  case N_LOGS_REQ: return field == 1 ? N_RESOURCE_LOGS : N_LEAF;
  case N_RESOURCE_SPANS: return field == 1 ? N_RESOURCE : field == 2 ? N_SCOPE_SPANS : N_LEAF;
  case N_RESOURCE_LOGS: return field == 1 ? N_RESOURCE : field == 2 ? N_SCOPE_LOGS : N_LEAF;
  case N_RESOURCE: return field == 1 ? N_KEY_VALUE : N_LEAF;
  case N_SCOPE_SPANS: return field == 1 ? N_SCOPE : field == 2 ? N_SPAN : N_LEAF;
  case N_SCOPE_LOGS: return field == 1 ? N_SCOPE : field == 2 ? N_LOG_RECORD : N_LEAF;
  case N_SCOPE: return field == 3 ? N_KEY_VALUE : N_LEAF;
  case N_SPAN:
    return field == 9 ? N_KEY_VALUE : field == 11 ? N_EVENT : field == 13 ? N_LINK : field == 15 ? N_STATUS : N_LEAF;
  case N_EVENT: return field == 3 ? N_KEY_VALUE : N_LEAF;
  case N_LINK: return field == 4 ? N_KEY_VALUE : N_LEAF;
  case N_LOG_RECORD: return field == 5 ? N_ANY_VALUE : field == 6 ? N_KEY_VALUE : N_LEAF;
  case N_KEY_VALUE: return field == 2 ? N_ANY_VALUE : N_LEAF;
  case N_ANY_VALUE: return field == 5 ? N_ARRAY : field == 6 ? N_KVLIST : N_LEAF;
  case N_ARRAY: return field == 1 ? N_ANY_VALUE : N_LEAF;
  case N_KVLIST: return field == 1 ? N_KEY_VALUE : N_LEAF;
  default: return N_LEAF;
  }
}

bool gw_pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
  uint64_t r = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*p >= end)
      return false;
    uint8_t b = *(*p)++;
    r |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = r;
      return true;
    }
  }
  return false;
}

/* Iterative walk with an explicit stack: no recursion on attacker input. */
struct frame {
  enum node n;
  uint32_t any_depth; /* AnyValue nesting at this frame */
  const uint8_t *end;
};

/* The pre-scan's stack is fixed, so max_depth is clamped here (config allows far less in practice). */
#define PRESCAN_MAX_DEPTH 256
/* Frames per AnyValue level: AnyValue, KeyValueList, KeyValue (ArrayValue needs only two). Above the first
 * AnyValue at most request, ResourceSpans, ScopeSpans, Span, Event or Link, KeyValue: 6; below the deepest
 * allowed AnyValue its KeyValueList and KeyValue: 2. */
#define PRESCAN_FRAMES (3 * PRESCAN_MAX_DEPTH + 8)

gw_rc gw_pb_prescan(enum gw_pb_kind kind, const void *buf, size_t len, uint32_t max_depth, struct gw_err *err)
{
  static const uint8_t empty[1];
  struct frame stack[PRESCAN_FRAMES];
  if (max_depth > PRESCAN_MAX_DEPTH)
    max_depth = PRESCAN_MAX_DEPTH;
  const uint8_t *p = len ? buf : empty;
  const uint8_t *start = p;
  int top = 0;
  stack[0].n = kind == GW_PB_TRACES_REQUEST ? N_TRACE_REQ : N_LOGS_REQ;
  stack[0].any_depth = 0;
  stack[0].end = p + len;

  for (;;) {
    if (p == stack[top].end) {
      if (top == 0)
        return GW_OK;
      top--;
      continue;
    }
    uint64_t key;
    if (!gw_pb_varint(&p, stack[top].end, &key))
      return gw_err_set(err, GW_ERR(DECODE), "protobuf: truncated or malformed field key at byte %zu",
                        (size_t)(p - start));
    /* Field numbers are 29 bits (protobuf encoding spec); a larger key would alias a real field below. */
    if (key >> 32)
      return gw_err_set(err, GW_ERR(DECODE), "protobuf: field number out of range at byte %zu", (size_t)(p - start));
    uint32_t field = (uint32_t)(key >> 3), wt = (uint32_t)(key & 7);
    if (field == 0)
      return gw_err_set(err, GW_ERR(DECODE), "protobuf: field number 0 at byte %zu", (size_t)(p - start));
    uint64_t v;
    switch (wt) {
    case 0:
      if (!gw_pb_varint(&p, stack[top].end, &v))
        goto truncated;
      break;
    case 1:
      if (stack[top].end - p < 8)
        goto truncated;
      p += 8;
      break;
    case 5:
      if (stack[top].end - p < 4)
        goto truncated;
      p += 4;
      break;
    case 2: {
      if (!gw_pb_varint(&p, stack[top].end, &v))
        goto truncated;
      if (v > (uint64_t)(stack[top].end - p))
        goto truncated;
      enum node c = child(stack[top].n, field);
      if (c == N_LEAF) {
        p += v;
        break;
      }
      uint32_t d = stack[top].any_depth + (c == N_ANY_VALUE ? 1 : 0);
      if (d > max_depth || top + 1 >= PRESCAN_FRAMES)
        return gw_err_set(err, GW_ERR(TOO_DEEP), "protobuf: attribute value nested deeper than %u levels", max_depth);
      top++;
      stack[top].n = c;
      stack[top].any_depth = d;
      stack[top].end = p + v;
      break;
    }
    default:
      return gw_err_set(err, GW_ERR(DECODE), "protobuf: unsupported wire type %u at byte %zu", wt,
                        (size_t)(p - start));
    }
  }
truncated:
  return gw_err_set(err, GW_ERR(DECODE), "protobuf: truncated message at byte %zu (of %zu)", (size_t)(p - start),
                    len);
}

/* ---- UTF-8 repair of every string protobuf-c produced ---- */

struct fixer {
  struct gw_arena *a;
  uint64_t fixed;
  bool oom;
};

static void fix_str(struct fixer *f, char **s)
{
  if (!*s || !**s)
    return; /* NULL or protobuf_c_empty_string, which must not be written */
  bool changed;
  char *r = gw_utf8_fix(f->a, *s, strlen(*s), &changed);
  if (!r) {
    f->oom = true;
    return;
  }
  *s = r;
  f->fixed += changed;
}

static void fix_kvs(struct fixer *f, GwKeyValue **kvs, size_t n);

/* Recursion depth is bounded by the pre-scan's max_depth. */
static void fix_any(struct fixer *f, GwAnyValue *v)
{
  if (!v)
    return;
  switch (v->value_case) {
  case GW_AV_STRING:
    fix_str(f, &v->string_value);
    break;
  case GW_AV_ARRAY:
    if (v->array_value)
      for (size_t i = 0; i < v->array_value->n_values; i++)
        fix_any(f, v->array_value->values[i]);
    break;
  case GW_AV_KVLIST:
    if (v->kvlist_value)
      fix_kvs(f, v->kvlist_value->values, v->kvlist_value->n_values);
    break;
  default:
    break;
  }
}

static void fix_kvs(struct fixer *f, GwKeyValue **kvs, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    fix_str(f, &kvs[i]->key);
    fix_any(f, kvs[i]->value);
  }
}

static void fix_resource(struct fixer *f, GwResource *r)
{
  if (!r)
    return;
  fix_kvs(f, r->attributes, r->n_attributes);
  for (size_t i = 0; i < r->n_entity_refs; i++) {
    Opentelemetry__Proto__Common__V1__EntityRef *e = r->entity_refs[i];
    fix_str(f, &e->schema_url);
    fix_str(f, &e->type);
    for (size_t j = 0; j < e->n_id_keys; j++)
      fix_str(f, &e->id_keys[j]);
    for (size_t j = 0; j < e->n_description_keys; j++)
      fix_str(f, &e->description_keys[j]);
  }
}

static void fix_scope(struct fixer *f, GwScope *s)
{
  if (!s)
    return;
  fix_str(f, &s->name);
  fix_str(f, &s->version);
  fix_kvs(f, s->attributes, s->n_attributes);
}

static void fix_span(struct fixer *f, GwSpan *s)
{
  fix_str(f, &s->trace_state);
  fix_str(f, &s->name);
  fix_kvs(f, s->attributes, s->n_attributes);
  for (size_t i = 0; i < s->n_events; i++) {
    fix_str(f, &s->events[i]->name);
    fix_kvs(f, s->events[i]->attributes, s->events[i]->n_attributes);
  }
  for (size_t i = 0; i < s->n_links; i++) {
    fix_str(f, &s->links[i]->trace_state);
    fix_kvs(f, s->links[i]->attributes, s->links[i]->n_attributes);
  }
  if (s->status)
    fix_str(f, &s->status->message);
}

static gw_rc fix_trace_request(struct gw_arena *a, GwTraceRequest *req, struct gw_err *err)
{
  struct fixer f = {.a = a};
  for (size_t i = 0; i < req->n_resource_spans; i++) {
    GwResourceSpans *rs = req->resource_spans[i];
    fix_resource(&f, rs->resource);
    fix_str(&f, &rs->schema_url);
    for (size_t j = 0; j < rs->n_scope_spans; j++) {
      GwScopeSpans *ss = rs->scope_spans[j];
      fix_scope(&f, ss->scope);
      fix_str(&f, &ss->schema_url);
      for (size_t k = 0; k < ss->n_spans; k++)
        fix_span(&f, ss->spans[k]);
    }
  }
  if (f.fixed)
    gw_metric_add(GW_M_UTF8_FIXED, (int64_t)f.fixed);
  if (f.oom)
    return gw_err_set(err, GW_ERR(TOO_LARGE), "request needs more memory than the per-request limit");
  return GW_OK;
}

gw_rc gw_decode_traces(struct gw_arena *a, enum gw_encoding enc, const void *body, size_t len,
                       const struct gw_decode_limits *lim, GwTraceRequest **out, struct gw_err *err)
{
  *out = NULL;
  if (len > lim->max_bytes)
    return gw_err_set(err, GW_ERR(TOO_LARGE), "request body is %zu bytes, over the limit of %zu", len, lim->max_bytes);
  if (enc == GW_ENC_JSON)
    return gw_decode_json_traces(a, body, len, lim, out, err);
  gw_rc rc = gw_pb_prescan(GW_PB_TRACES_REQUEST, body, len, lim->max_depth, err);
  if (rc)
    return rc;
  GwTraceRequest *req = gw_pb_trace_request_unpack(gw_arena_pb_allocator(a), len, body);
  if (!req) {
    if (gw_arena_exhausted(a))
      return gw_err_set(err, GW_ERR(TOO_LARGE), "request needs more memory than the per-request limit");
    return gw_err_set(err, GW_ERR(DECODE), "protobuf: body is not a valid ExportTraceServiceRequest");
  }
  if ((rc = fix_trace_request(a, req, err)))
    return rc;
  *out = req;
  return GW_OK;
}

static gw_rc fix_logs_request(struct gw_arena *a, GwLogsRequest *req, struct gw_err *err)
{
  struct fixer f = {.a = a};
  for (size_t i = 0; i < req->n_resource_logs; i++) {
    GwResourceLogs *rl = req->resource_logs[i];
    fix_resource(&f, rl->resource);
    fix_str(&f, &rl->schema_url);
    for (size_t j = 0; j < rl->n_scope_logs; j++) {
      GwScopeLogs *sl = rl->scope_logs[j];
      fix_scope(&f, sl->scope);
      fix_str(&f, &sl->schema_url);
      for (size_t k = 0; k < sl->n_log_records; k++) {
        GwLogRecord *l = sl->log_records[k];
        fix_str(&f, &l->severity_text);
        fix_str(&f, &l->event_name);
        fix_any(&f, l->body);
        fix_kvs(&f, l->attributes, l->n_attributes);
      }
    }
  }
  if (f.fixed)
    gw_metric_add(GW_M_UTF8_FIXED, (int64_t)f.fixed);
  if (f.oom)
    return gw_err_set(err, GW_ERR(TOO_LARGE), "request needs more memory than the per-request limit");
  return GW_OK;
}

gw_rc gw_decode_logs(struct gw_arena *a, enum gw_encoding enc, const void *body, size_t len,
                     const struct gw_decode_limits *lim, GwLogsRequest **out, struct gw_err *err)
{
  *out = NULL;
  if (len > lim->max_bytes)
    return gw_err_set(err, GW_ERR(TOO_LARGE), "request body is %zu bytes, over the limit of %zu", len, lim->max_bytes);
  if (enc == GW_ENC_JSON)
    return gw_decode_json_logs(a, body, len, lim, out, err);
  gw_rc rc = gw_pb_prescan(GW_PB_LOGS_REQUEST, body, len, lim->max_depth, err);
  if (rc)
    return rc;
  GwLogsRequest *req = gw_pb_logs_request_unpack(gw_arena_pb_allocator(a), len, body);
  if (!req) {
    if (gw_arena_exhausted(a))
      return gw_err_set(err, GW_ERR(TOO_LARGE), "request needs more memory than the per-request limit");
    return gw_err_set(err, GW_ERR(DECODE), "protobuf: body is not a valid ExportLogsServiceRequest");
  }
  if ((rc = fix_logs_request(a, req, err)))
    return rc;
  *out = req;
  return GW_OK;
}
