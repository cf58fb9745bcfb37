/*
 * response.c: response bodies shared by the receivers.
 * Success: ExportTraceServiceResponse with partial_success left unset (OTLP §"Full success"), or set
 * with rejected_spans and a message when some spans were refused. Failure: google.rpc.Status with the
 * gRPC code, the message naming the problem, and RetryInfo when the client should come back later.
 * JSON follows OTLP/JSON: lowerCamelCase, int64 as a decimal string.
 */
#include <string.h>

#include "decode/decode.h"
#include "receive/receive.h"

/* s as valid UTF-8 (a copy with U+FFFD in the arena when it is not): messages may quote what a client sent
 * (a path, a header, cut to a length that can split a character), and a protobuf string must be UTF-8 (Go's
 * decoder, the Collector's, refuses the whole answer otherwise). */
static char *utf8_text(struct gw_arena *a, const char *s)
{
  size_t n = strlen(s);
  if (gw_utf8_valid(s, n))
    return (char *)s;
  char *c = gw_arena_alloc(a, n + 1);
  bool fixed;
  if (!c)
    return "";
  memcpy(c, s, n + 1);
  c = gw_utf8_fix(a, c, n, &fixed);
  return c ? c : "";
}

/* msg packed into the arena as the Any st's one detail; nothing when the arena is out of room. */
static void one_detail(struct gw_arena *a, GwRpcStatus *st, GwRpcAny *any, GwRpcAny **anys, const char *type_url,
                       const ProtobufCMessage *msg)
{
  size_t n = protobuf_c_message_get_packed_size(msg);
  uint8_t *buf = gw_arena_alloc(a, n ? n : 1);
  if (!buf)
    return;
  gw_pb_rpc_any_init(any);
  any->type_url = (char *)type_url;
  any->value.len = protobuf_c_message_pack(msg, buf);
  any->value.data = buf;
  anys[0] = any;
  st->details = anys;
  st->n_details = 1;
}

static void status_pb(struct gw_arena *a, const struct gw_request_outcome *o, uint32_t retry_after_s, const void **body,
                      size_t *len)
{
  GwRpcStatus st;
  gw_pb_rpc_status_init(&st);
  st.code = gw_err_grpc_status(o->err.rc);
  st.message = utf8_text(a, o->err.msg);
  GwRpcAny any, *anys[1];
  if (gw_err_http_status(o->err.rc) == 400) { /* OTLP: a 400's Status SHOULD carry BadRequest details */
    GwRpcFieldViolation fv, *fvs[1] = {&fv};
    GwRpcBadRequest br;
    gw_pb_rpc_field_violation_init(&fv);
    fv.field = utf8_text(a, o->err.field);
    fv.description = st.message;
    gw_pb_rpc_bad_request_init(&br);
    br.field_violations = fvs;
    br.n_field_violations = 1;
    one_detail(a, &st, &any, anys, "type.googleapis.com/google.rpc.BadRequest", &br.base);
  } else if (gw_err_retryable(o->err.rc) && retry_after_s) {
    GwRpcDuration d;
    GwRpcRetryInfo ri;
    gw_pb_rpc_duration_init(&d);
    d.seconds = retry_after_s;
    gw_pb_rpc_retry_info_init(&ri);
    ri.retry_delay = &d;
    one_detail(a, &st, &any, anys, "type.googleapis.com/google.rpc.RetryInfo", &ri.base);
  }
  size_t n = gw_pb_rpc_status_size(&st);
  uint8_t *buf = gw_arena_alloc(a, n ? n : 1);
  if (!buf) {
    *body = "";
    *len = 0;
    return;
  }
  *len = gw_pb_rpc_status_pack(&st, buf);
  *body = buf;
}

void gw_receive_encode_response(struct gw_arena *a, bool json, const struct gw_request_outcome *o, uint32_t retry_after_s,
                                const void **body, size_t *len)
{
  if (o->err.rc) {
    if (!json) {
      status_pb(a, o, retry_after_s, body, len);
      return;
    }
    struct gw_sb sb;
    gw_sb_init(&sb, a);
    const char *msg = utf8_text(a, o->err.msg), *field = utf8_text(a, o->err.field);
    gw_sb_printf(&sb, "{\"code\":%d,\"message\":", gw_err_grpc_status(o->err.rc));
    gw_sb_json_str(&sb, msg, strlen(msg));
    if (gw_err_http_status(o->err.rc) == 400) {
      gw_sb_puts(&sb, ",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.BadRequest\","
                      "\"fieldViolations\":[{\"field\":");
      gw_sb_json_str(&sb, field, strlen(field));
      gw_sb_puts(&sb, ",\"description\":");
      gw_sb_json_str(&sb, msg, strlen(msg));
      gw_sb_puts(&sb, "}]}]");
    } else if (gw_err_retryable(o->err.rc) && retry_after_s) {
      gw_sb_printf(&sb, ",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"%us\"}]",
                   retry_after_s);
    }
    gw_sb_putc(&sb, '}');
    char *s = gw_sb_finish(&sb);
    *body = s ? s : "{}";
    *len = s ? sb.len : 2;
    return;
  }
  if (!o->rejected) {
    *body = json ? "{}" : "";
    *len = json ? 2 : 0;
    return;
  }
  if (json) {
    struct gw_sb sb;
    gw_sb_init(&sb, a);
    gw_sb_printf(&sb, "{\"partialSuccess\":{\"%s\":\"%u\",\"errorMessage\":",
                 o->logs ? "rejectedLogRecords" : "rejectedSpans", o->rejected);
    const char *rmsg = utf8_text(a, o->reject_msg);
    gw_sb_json_str(&sb, rmsg, strlen(rmsg));
    gw_sb_puts(&sb, "}}");
    char *s = gw_sb_finish(&sb);
    *body = s ? s : "{}";
    *len = s ? sb.len : 2;
    return;
  }
  /* ExportLogsServiceResponse has the same wire shape (partial_success = 1: {rejected_log_records = 1,
   * error_message = 2}), so one encoder serves both signals. */
  GwTraceResponse resp;
  GwTracePartial ps;
  gw_pb_trace_response_init(&resp);
  gw_pb_trace_partial_init(&ps);
  ps.rejected_spans = o->rejected;
  ps.error_message = utf8_text(a, o->reject_msg);
  resp.partial_success = &ps;
  size_t n = gw_pb_trace_response_size(&resp);
  uint8_t *buf = gw_arena_alloc(a, n ? n : 1);
  if (!buf) {
    *body = "";
    *len = 0;
    return;
  }
  *len = gw_pb_trace_response_pack(&resp, buf);
  *body = buf;
}
