/*
 * decode_pb.c: binary OTLP into protobuf-c structs allocated in the request arena.
 *
 * protobuf-c recurses once per nested message and has no depth limit: a request with AnyValue nested a
 * few thousand deep overflows the stack inside libprotobuf-c. So a pre-scan walks the wire format first,
 * following only the fields the OTLP schema declares as messages, and refuses input deeper than the
 * configured limit or malformed at the wire level, before protobuf-c sees it.
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

static bool varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
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

/* Iterative walk with an explicit stack bounded by max_depth: no recursion on attacker input. */
struct frame {
  enum node n;
  const uint8_t *end;
};

gw_rc gw_pb_prescan(enum gw_pb_kind kind, const void *buf, size_t len, uint32_t max_depth, struct gw_err *err)
{
  /* Message levels above the first AnyValue: request, ResourceSpans, ScopeSpans, Span, KeyValue = 5. */
  uint32_t limit = max_depth * 2 + 8;
  struct frame stack[256];
  if (limit > sizeof stack / sizeof stack[0])
    limit = sizeof stack / sizeof stack[0];
  const uint8_t *p = buf;
  int top = 0;
  stack[0].n = kind == GW_PB_TRACES_REQUEST ? N_TRACE_REQ : N_LOGS_REQ;
  stack[0].end = p + len;
  uint32_t any_depth = 0; /* AnyValue nesting on the current path */
  uint32_t any_at[256];   /* any_depth at each frame */
  any_at[0] = 0;

  for (;;) {
    if (p == stack[top].end) {
      if (top == 0)
        return GW_OK;
      top--;
      any_depth = any_at[top];
      continue;
    }
    uint64_t key;
    if (!varint(&p, stack[top].end, &key))
      return gw_err_set(err, GW_ERR(DECODE), "protobuf: truncated or malformed field key at byte %zu",
                        (size_t)(p - (const uint8_t *)buf));
    uint32_t field = (uint32_t)(key >> 3), wt = (uint32_t)(key & 7);
    if (field == 0)
      return gw_err_set(err, GW_ERR(DECODE), "protobuf: field number 0 at byte %zu", (size_t)(p - (const uint8_t *)buf));
    uint64_t v;
    switch (wt) {
    case 0:
      if (!varint(&p, stack[top].end, &v))
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
      if (!varint(&p, stack[top].end, &v))
        goto truncated;
      if (v > (uint64_t)(stack[top].end - p))
        goto truncated;
      enum node c = child(stack[top].n, field);
      if (c == N_LEAF) {
        p += v;
        break;
      }
      uint32_t d = any_depth + (c == N_ANY_VALUE ? 1 : 0);
      if (d > max_depth || (uint32_t)top + 1 >= limit)
        return gw_err_set(err, GW_ERR(TOO_DEEP), "protobuf: attribute value nested deeper than %u levels", max_depth);
      top++;
      stack[top].n = c;
      stack[top].end = p + v;
      any_at[top] = d;
      any_depth = d;
      break;
    }
    default:
      return gw_err_set(err, GW_ERR(DECODE), "protobuf: unsupported wire type %u at byte %zu", wt,
                        (size_t)(p - (const uint8_t *)buf));
    }
  }
truncated:
  return gw_err_set(err, GW_ERR(DECODE), "protobuf: truncated message at byte %zu (of %zu)",
                    (size_t)(p - (const uint8_t *)buf), len);
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
  *out = req;
  return GW_OK;
}
