/*
 * reply.c: how an exporter reads the answer to one OTLP request, by the protocol's rules (SPEC-FACTS
 * §1.3-1.5) and the same for every backend: retryable or not, how long the peer asked us to wait
 * (Retry-After is parsed by the HTTP transport; RetryInfo in google.rpc.Status here), and partial_success,
 * which is read and counted but never retried (OTLP: a client MUST NOT retry it).
 * Texts taken from a reply for a log line are cut short and made printable: a peer's message is never
 * trusted to be either.
 */
#include <stdlib.h>
#include <string.h>

#include "export_int.h"

void gw_export_reply_reset(struct gw_export_reply *r)
{
  free(r->body);
  memset(r, 0, sizeof *r);
}

void gw_export_printable(char *dst, size_t n, const void *src, size_t len)
{
  const unsigned char *s = src;
  size_t o = 0;
  if (!n)
    return;
  for (size_t i = 0; i < len && o + 1 < n; i++)
    dst[o++] = (s[i] >= 0x20 && s[i] < 0x7f) ? (char)s[i] : (s[i] == '\n' || s[i] == '\t' ? ' ' : '?');
  dst[o] = '\0';
}

enum gw_export_result gw_export_classify(enum gw_export_transport t, const struct gw_export_reply *r)
{
  if (!r->connected)
    return GW_XR_RETRY; /* disconnected without an answer: retry with backoff (SPEC-FACTS §1.5) */
  if (t == GW_XT_HTTP) {
    long s = r->http_status;
    if (s >= 200 && s < 300)
      return GW_XR_OK;
    if (s == 429 || s == 502 || s == 503 || s == 504)
      return GW_XR_RETRY;
    return GW_XR_DROP;
  }
  switch (r->grpc_code) {
  case 0:
    return GW_XR_OK;
  case 1:  /* CANCELLED */
  case 4:  /* DEADLINE_EXCEEDED */
  case 10: /* ABORTED */
  case 11: /* OUT_OF_RANGE */
  case 14: /* UNAVAILABLE */
  case 15: /* DATA_LOSS */
    return GW_XR_RETRY;
  case 8: /* RESOURCE_EXHAUSTED: retryable only when the server says when (RetryInfo) */
    return r->retry_info ? GW_XR_RETRY : GW_XR_DROP;
  default:
    return GW_XR_DROP;
  }
}

bool gw_export_auth_refused(enum gw_export_transport t, const struct gw_export_reply *r)
{
  if (!r->connected)
    return false;
  if (t == GW_XT_HTTP)
    return r->http_status == 401 || r->http_status == 403;
  return r->grpc_code == 16 || r->grpc_code == 7;
}

int64_t gw_export_partial_rejected(enum gw_signal sig, const void *body, size_t len, char *msg, size_t msg_len)
{
  int64_t rejected = 0;
  const char *m = NULL;
  if (msg_len)
    msg[0] = '\0';
  if (!len)
    return 0;
  if (sig == GW_SIGNAL_LOGS) {
    Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceResponse *r =
      opentelemetry__proto__collector__logs__v1__export_logs_service_response__unpack(NULL, len, body);
    if (!r)
      return 0;
    if (r->partial_success) {
      rejected = r->partial_success->rejected_log_records;
      m = r->partial_success->error_message;
      if (m)
        gw_export_printable(msg, msg_len, m, strlen(m));
    }
    opentelemetry__proto__collector__logs__v1__export_logs_service_response__free_unpacked(r, NULL);
  } else {
    GwTraceResponse *r = opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(NULL, len, body);
    if (!r)
      return 0;
    if (r->partial_success) {
      rejected = r->partial_success->rejected_spans;
      m = r->partial_success->error_message;
      if (m)
        gw_export_printable(msg, msg_len, m, strlen(m));
    }
    opentelemetry__proto__collector__trace__v1__export_trace_service_response__free_unpacked(r, NULL);
  }
  return rejected > 0 ? rejected : 0;
}

bool gw_export_parse_status(const void *buf, size_t len, char *msg, size_t msg_len, uint64_t *retry_ms, bool *found)
{
  *retry_ms = 0;
  *found = false;
  if (msg_len)
    msg[0] = '\0';
  GwRpcStatus *st = google__rpc__status__unpack(NULL, len, buf);
  if (!st)
    return false;
  if (st->message)
    gw_export_printable(msg, msg_len, st->message, strlen(st->message));
  for (size_t i = 0; i < st->n_details; i++) {
    const GwRpcAny *any = st->details[i];
    if (!any || !any->type_url || strcmp(any->type_url, "type.googleapis.com/google.rpc.RetryInfo") != 0)
      continue;
    GwRpcRetryInfo *ri = google__rpc__retry_info__unpack(NULL, any->value.len, any->value.data);
    if (!ri)
      continue;
    *found = true;
    if (ri->retry_delay) {
      int64_t s = ri->retry_delay->seconds, ns = ri->retry_delay->nanos;
      if (s < 0 || ns < 0)
        s = 0, ns = 0;
      if (s > 86400)
        s = 86400;
      *retry_ms = (uint64_t)s * 1000u + (uint64_t)ns / 1000000u;
    }
    google__rpc__retry_info__free_unpacked(ri, NULL);
    break;
  }
  google__rpc__status__free_unpacked(st, NULL);
  return true;
}
