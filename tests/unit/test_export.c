/*
 * test_export.c: the exporters module (exporters/): answers judged by OTLP's rules, google.rpc.Status /
 * RetryInfo and partial_success parsing, gzip, payloads (byte-for-byte forwarding, the Langfuse transform
 * with usage/cost details and trace-level ids, genai_only, malformed ids), and the generic exporter against
 * an in-process HTTP server (libmicrohttpd) that answers as scripted: requests cut by size and signal,
 * retry from the failed request on with Retry-After, drops counted, partial_success counted, headers and
 * gzip as sent, a hung peer given up at the shutdown deadline. The gRPC transport is tested against the
 * gateway's own gRPC receiver.
 * Spool entries are made the real way: OTLP/JSON through gw_request_traces (decode, normalize, cost,
 * redact, encode) into a memory spool.
 */
#include <grpc/grpc.h>
#include <math.h>
#include <microhttpd.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include <cmocka.h>

#include "core/conf.h"
#include "cost/cost.h"
#include "export_int.h"
#include "langfuse/langfuse_int.h"
#include "exporters.h"
#include "normalize/normalize.h"
#include "receive/receive.h"
#include "receive/request.h"
#include "redact/redact.h"
#include "testutil.h"

/* ---- entries made by the real pipeline ---- */

struct env {
  struct gw_conf *conf;
  struct gw_spool *spool;
  struct gw_prices *prices;
  struct gw_redactor *redactor;
  struct gw_pipeline p;
  int consumer;
};

static void env_init(struct env *e)
{
  struct gw_err err = {0};
  memset(e, 0, sizeof *e);
  assert_int_equal(gw_conf_load(NULL, &e->conf, &err), GW_OK);
  struct gw_spool_conf sc = {.mode = "memory", .max_bytes = 64u << 20, .high_water = 0.9};
  e->spool = gw_spool_create(&sc, &err);
  e->prices = gw_prices_load(NULL, NULL, &err);
  assert_non_null(e->prices);
  e->redactor = gw_redactor_from_conf(e->conf, &err);
  assert_non_null(e->redactor);
  gw_pipeline_init(&e->p, e->conf, e->spool);
  e->p.forward = true; /* as with an exporter configured: entries carry the re-packed request */
  e->p.prices = e->prices;
  e->p.redactor = e->redactor;
  e->consumer = gw_spool_add_consumer(e->spool, "test");
}

static void env_fini(struct env *e)
{
  gw_spool_destroy(e->spool);
  gw_prices_destroy(e->prices);
  gw_redactor_destroy(e->redactor);
  gw_conf_destroy(e->conf);
}

static void append_json(struct env *e, const char *json)
{
  struct gw_arena *a = gw_arena_create(0);
  struct gw_request_outcome o;
  gw_rc rc = gw_request_traces(&e->p, a, GW_ENC_JSON, GW_CODING_NONE, json, strlen(json), &o);
  if (rc)
    print_error("append: %s\n", o.err.msg);
  assert_int_equal(rc, GW_OK);
  assert_int_equal(o.rejected, 0);
  gw_arena_destroy(a);
}

static void append_logs_json(struct env *e, const char *json)
{
  struct gw_arena *a = gw_arena_create(0);
  struct gw_request_outcome o;
  gw_rc rc = gw_request_logs(&e->p, a, GW_ENC_JSON, GW_CODING_NONE, json, strlen(json), &o);
  if (rc)
    print_error("append logs: %s\n", o.err.msg);
  assert_int_equal(rc, GW_OK);
  gw_arena_destroy(a);
}

/* An OTLP/JSON logs request with the official instrumentation's records for one chat call: a user message
 * (when user) and a choice (when reply). */
static char *chat_logs(const char *trace, const char *span, const char *user, const char *reply)
{
  uint64_t now = gw_now_ns() - 9500000000ull;
  char *out = NULL;
  char u[512] = "", r[512] = "";
  if (user)
    snprintf(u, sizeof u,
             "{\"timeUnixNano\":\"%llu\",\"traceId\":\"%s\",\"spanId\":\"%s\",\"attributes\":[{\"key\":\"event.name\","
             "\"value\":{\"stringValue\":\"gen_ai.user.message\"}}],\"body\":{\"kvlistValue\":{\"values\":[{\"key\":"
             "\"content\",\"value\":{\"stringValue\":\"%s\"}}]}}}",
             (unsigned long long)now, trace, span, user);
  if (reply)
    snprintf(r, sizeof r,
             "{\"timeUnixNano\":\"%llu\",\"traceId\":\"%s\",\"spanId\":\"%s\",\"attributes\":[{\"key\":\"event.name\","
             "\"value\":{\"stringValue\":\"gen_ai.choice\"}}],\"body\":{\"kvlistValue\":{\"values\":[{\"key\":"
             "\"index\",\"value\":{\"intValue\":\"0\"}},{\"key\":\"finish_reason\",\"value\":{\"stringValue\":\"stop\"}},"
             "{\"key\":\"message\",\"value\":{\"kvlistValue\":{\"values\":[{\"key\":\"content\",\"value\":{\"stringValue\":"
             "\"%s\"}}]}}}]}}}",
             (unsigned long long)now + 1000, trace, span, reply);
  assert_true(asprintf(&out,
                       "{\"resourceLogs\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{"
                       "\"stringValue\":\"svc\"}}]},\"scopeLogs\":[{\"scope\":{\"name\":\"s\"},\"logRecords\":[%s%s%s]}]}]}",
                       u, user && reply ? "," : "", r) >= 0);
  return out;
}

static size_t take(struct env *e, struct gw_spool_entry *out, size_t max)
{
  size_t n = gw_spool_peek(e->spool, e->consumer, out, max, 100000, 0, gw_mono_ns() + 1000000000ull);
  return n;
}

static void done(struct env *e, const struct gw_spool_entry *last) { gw_spool_commit(e->spool, e->consumer, last->seq); }

/* Start times must be inside the retention window: now - 10 s. */
static char *json_request(const char *spans_fmt, ...)
{
  char *spans = NULL;
  va_list ap;
  va_start(ap, spans_fmt);
  assert_true(vasprintf(&spans, spans_fmt, ap) >= 0);
  va_end(ap);
  char *out = malloc(strlen(spans) + 512);
  sprintf(out,
          "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":"
          "\"svc\"}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"s\"},\"spans\":[%s]}]}]}",
          spans);
  free(spans);
  return out;
}

#define T1 "0af7651916cd43dd8448eb211c80319c"
#define T2 "1bf7651916cd43dd8448eb211c80319c"

static char *span_json(const char *trace, const char *span, const char *parent, const char *attrs)
{
  uint64_t now = gw_now_ns();
  char *s = malloc(strlen(attrs) + 512);
  sprintf(s,
          "{\"traceId\":\"%s\",\"spanId\":\"%s\"%s%s%s,\"name\":\"n\",\"kind\":3,\"startTimeUnixNano\":\"%llu\","
          "\"endTimeUnixNano\":\"%llu\",\"attributes\":[%s]}",
          trace, span, parent ? ",\"parentSpanId\":\"" : "", parent ? parent : "", parent ? "\"" : "",
          (unsigned long long)(now - 10000000000ull), (unsigned long long)(now - 9000000000ull), attrs);
  return s;
}

#define A_STR(k, v) "{\"key\":\"" k "\",\"value\":{\"stringValue\":\"" v "\"}}"
#define A_INT(k, v) "{\"key\":\"" k "\",\"value\":{\"intValue\":" #v "}}"

/* A GenAI chat span with cache and reasoning tokens (inclusive, as semconv counts them). */
static char *chat_span(const char *trace, const char *span, const char *parent, const char *extra)
{
  char attrs[2048];
  snprintf(attrs, sizeof attrs,
           A_STR("gen_ai.operation.name", "chat") "," A_STR("gen_ai.provider.name", "openai") "," A_STR(
             "gen_ai.request.model", "gpt-4o") "," A_STR("gen_ai.response.model", "gpt-4o") "," A_INT("gen_ai.usage.input_tokens", 100) "," A_INT("gen_ai.usage.output_tokens", 50) "," A_INT("gen_ai.usage.cache_read.input_tokens", 30) "," A_INT("gen_ai.usage.reasoning.output_tokens", 20) "%s%s",
           extra ? "," : "", extra ? extra : "");
  return span_json(trace, span, parent, attrs);
}

/* ---- reading what an exporter produced ---- */

static GwTraceRequest *unpack(const void *buf, size_t len)
{
  GwTraceRequest *r = gw_pb_trace_request_unpack(NULL, len, buf);
  assert_non_null(r);
  return r;
}

static GwSpan *find_span(GwTraceRequest *r, const char *span_hex)
{
  for (size_t i = 0; i < r->n_resource_spans; i++)
    for (size_t j = 0; j < r->resource_spans[i]->n_scope_spans; j++)
      for (size_t k = 0; k < r->resource_spans[i]->scope_spans[j]->n_spans; k++) {
        GwSpan *sp = r->resource_spans[i]->scope_spans[j]->spans[k];
        char h[17];
        for (int b = 0; b < 8; b++)
          sprintf(h + 2 * b, "%02x", sp->span_id.data[b]);
        if (!strcmp(h, span_hex))
          return sp;
      }
  return NULL;
}

static size_t count_spans(GwTraceRequest *r)
{
  size_t n = 0;
  for (size_t i = 0; i < r->n_resource_spans; i++)
    for (size_t j = 0; j < r->resource_spans[i]->n_scope_spans; j++)
      n += r->resource_spans[i]->scope_spans[j]->n_spans;
  return n;
}

static int attr_count(const GwSpan *sp, const char *key)
{
  int n = 0;
  for (size_t i = 0; i < sp->n_attributes; i++)
    n += !strcmp(sp->attributes[i]->key, key);
  return n;
}

static const char *attr_str(const GwSpan *sp, const char *key)
{
  const GwKeyValue *kv = gw_export_span_attr(sp, key);
  return kv && kv->value->value_case == GW_AV_STRING ? kv->value->string_value : NULL;
}

/* ---- OTLP's rules ---- */

static void test_classify(void **st)
{
  (void)st;
  struct gw_export_reply r = {.connected = true};
  static const struct {
    long status;
    enum gw_export_result want;
  } http[] = {{200, GW_XR_OK}, {202, GW_XR_OK}, {429, GW_XR_RETRY}, {502, GW_XR_RETRY}, {503, GW_XR_RETRY},
              {504, GW_XR_RETRY}, {400, GW_XR_DROP}, {401, GW_XR_DROP}, {403, GW_XR_DROP}, {404, GW_XR_DROP},
              {413, GW_XR_DROP}, {500, GW_XR_DROP}, {501, GW_XR_DROP}, {301, GW_XR_DROP}};
  for (size_t i = 0; i < sizeof http / sizeof http[0]; i++) {
    r.http_status = http[i].status;
    assert_int_equal(gw_export_classify(GW_XT_HTTP, &r), http[i].want);
  }
  static const struct {
    int code;
    bool retry_info;
    enum gw_export_result want;
  } grpc[] = {{0, false, GW_XR_OK},    {1, false, GW_XR_RETRY},  {4, false, GW_XR_RETRY}, {10, false, GW_XR_RETRY},
              {11, false, GW_XR_RETRY}, {14, false, GW_XR_RETRY}, {15, false, GW_XR_RETRY}, {8, false, GW_XR_DROP},
              {8, true, GW_XR_RETRY},   {2, false, GW_XR_DROP},   {3, false, GW_XR_DROP},  {5, false, GW_XR_DROP},
              {6, false, GW_XR_DROP},   {7, false, GW_XR_DROP},   {9, false, GW_XR_DROP},  {12, false, GW_XR_DROP},
              {13, false, GW_XR_DROP},  {16, false, GW_XR_DROP}};
  for (size_t i = 0; i < sizeof grpc / sizeof grpc[0]; i++) {
    r.grpc_code = grpc[i].code;
    r.retry_info = grpc[i].retry_info;
    assert_int_equal(gw_export_classify(GW_XT_GRPC, &r), grpc[i].want);
  }
  /* No answer at all: retry, whatever the transport. */
  struct gw_export_reply none = {.connected = false};
  assert_int_equal(gw_export_classify(GW_XT_HTTP, &none), GW_XR_RETRY);
  assert_int_equal(gw_export_classify(GW_XT_GRPC, &none), GW_XR_RETRY);
}

static size_t pack_status(uint8_t *buf, const char *msg, int64_t retry_s, int32_t retry_ns)
{
  GwRpcRetryInfo ri;
  GwRpcDuration d;
  GwRpcAny any, *anys[1] = {&any};
  uint8_t ribuf[64];
  gw_pb_rpc_retry_info_init(&ri);
  gw_pb_rpc_duration_init(&d);
  gw_pb_rpc_any_init(&any);
  d.seconds = retry_s;
  d.nanos = retry_ns;
  ri.retry_delay = &d;
  any.type_url = (char *)"type.googleapis.com/google.rpc.RetryInfo";
  any.value.len = gw_pb_rpc_retry_info_pack(&ri, ribuf);
  any.value.data = ribuf;
  GwRpcStatus s;
  gw_pb_rpc_status_init(&s);
  s.code = 14;
  s.message = (char *)msg;
  if (retry_s >= 0) {
    s.n_details = 1;
    s.details = anys;
  }
  return gw_pb_rpc_status_pack(&s, buf);
}

static void test_status_and_partial(void **st)
{
  (void)st;
  uint8_t buf[512];
  char msg[64];
  uint64_t ms;
  bool found;
  size_t n = pack_status(buf, "busy\nnow\x01", 5, 500000000);
  assert_true(gw_export_parse_status(buf, n, msg, sizeof msg, &ms, &found));
  assert_true(found);
  assert_int_equal(ms, 5500);
  assert_string_equal(msg, "busy now?"); /* printable only */
  n = pack_status(buf, "plain", -1, 0);
  assert_true(gw_export_parse_status(buf, n, msg, sizeof msg, &ms, &found));
  assert_false(found);
  assert_int_equal(ms, 0);
  assert_false(gw_export_parse_status("\xff\xff\xff", 3, msg, sizeof msg, &ms, &found));

  GwTraceResponse resp;
  GwTracePartial ps;
  gw_pb_trace_response_init(&resp);
  gw_pb_trace_partial_init(&ps);
  ps.rejected_spans = 3;
  ps.error_message = (char *)"3 spans too old";
  resp.partial_success = &ps;
  n = gw_pb_trace_response_pack(&resp, buf);
  assert_int_equal(gw_export_partial_rejected(GW_SIGNAL_TRACES, buf, n, msg, sizeof msg), 3);
  assert_string_equal(msg, "3 spans too old");
  assert_int_equal(gw_export_partial_rejected(GW_SIGNAL_TRACES, "", 0, msg, sizeof msg), 0); /* full success */
  assert_int_equal(gw_export_partial_rejected(GW_SIGNAL_TRACES, "{}", 2, msg, sizeof msg), 0); /* not OTLP */
  Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceResponse lr;
  Opentelemetry__Proto__Collector__Logs__V1__ExportLogsPartialSuccess lps;
  opentelemetry__proto__collector__logs__v1__export_logs_service_response__init(&lr);
  opentelemetry__proto__collector__logs__v1__export_logs_partial_success__init(&lps);
  lps.rejected_log_records = 2;
  lr.partial_success = &lps;
  n = opentelemetry__proto__collector__logs__v1__export_logs_service_response__pack(&lr, buf);
  assert_int_equal(gw_export_partial_rejected(GW_SIGNAL_LOGS, buf, n, msg, sizeof msg), 2);
}

static void test_gzip_round_trip(void **st)
{
  (void)st;
  struct gw_arena *a = gw_arena_create(0);
  char src[20000];
  for (size_t i = 0; i < sizeof src; i++)
    src[i] = "abcdefgh"[i % 8];
  void *z;
  size_t zl;
  struct gw_export_gzip *gz = gw_export_gzip_create();
  assert_int_equal(gw_export_gzip(gz, a, src, sizeof src, &z, &zl), GW_OK);
  gw_export_gzip_destroy(gz);
  assert_true(zl < sizeof src / 10);
  assert_int_equal(((uint8_t *)z)[0], 0x1f); /* gzip magic, not zlib or raw deflate */
  assert_int_equal(((uint8_t *)z)[1], 0x8b);
  char back[20000];
  z_stream s;
  memset(&s, 0, sizeof s);
  assert_int_equal(inflateInit2(&s, 15 + 16), Z_OK);
  s.next_in = z;
  s.avail_in = (uInt)zl;
  s.next_out = (Bytef *)back;
  s.avail_out = sizeof back;
  assert_int_equal(inflate(&s, Z_FINISH), Z_STREAM_END);
  assert_int_equal(s.total_out, sizeof src);
  inflateEnd(&s);
  assert_memory_equal(back, src, sizeof src);
  gw_arena_destroy(a);
}

/* ---- payloads ---- */

/* Without a transform the entry's bytes go as they are, and concatenated entries decode as one request. */
static void test_payload_pass_through(void **st)
{
  (void)st;
  struct env e;
  env_init(&e);
  char *s1 = chat_span(T1, "1111111111111111", NULL, NULL), *s2 = chat_span(T2, "2222222222222222", NULL, NULL);
  char *r1 = json_request("%s", s1), *r2 = json_request("%s", s2);
  append_json(&e, r1);
  append_json(&e, r2);
  struct gw_spool_entry ent[4];
  size_t n = take(&e, ent, 4);
  assert_int_equal(n, 2);
  struct gw_arena *a = gw_arena_create(0);
  struct gw_export_piece pc[4];
  struct gw_export_payload_opts o = {&gw_exporter_otlp, NULL, false, NULL};
  assert_int_equal(gw_export_build(&o, a, ent, n, pc), GW_OK);
  assert_ptr_equal(pc[0].bytes, ent[0].otlp); /* not copied, not re-encoded */
  assert_int_equal(pc[0].len, ent[0].otlp_len);
  assert_int_equal(pc[0].items, 1);
  uint8_t *cat = malloc(pc[0].len + pc[1].len);
  memcpy(cat, pc[0].bytes, pc[0].len);
  memcpy(cat + pc[0].len, pc[1].bytes, pc[1].len);
  GwTraceRequest *req = unpack(cat, pc[0].len + pc[1].len);
  assert_int_equal(req->n_resource_spans, 2);
  assert_non_null(find_span(req, "1111111111111111"));
  assert_non_null(find_span(req, "2222222222222222"));
  /* The cost attributes were put on the span by the pipeline, before the spool. */
  assert_non_null(gw_export_span_attr(find_span(req, "1111111111111111"), "genai_gateway.cost.total_usd"));
  opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(req, NULL);
  free(cat);
  /* Langfuse takes no logs: a log entry gives nothing to send and counts nothing. */
  struct gw_spool_entry logs = ent[0];
  logs.signal = GW_SIGNAL_LOGS;
  struct gw_export_payload_opts lo = {&gw_exporter_langfuse, gw_exporter_langfuse.create(NULL), false, NULL};
  assert_int_equal(gw_export_build(&lo, a, &logs, 1, pc), GW_OK);
  assert_int_equal(pc[0].len, 0);
  assert_int_equal(pc[0].items, 0);
  /* The generic exporter forwards it as it is. */
  assert_int_equal(gw_export_build(&o, a, &logs, 1, pc), GW_OK);
  assert_ptr_equal(pc[0].bytes, logs.otlp);
  assert_int_equal(pc[0].signal, GW_SIGNAL_LOGS);
  gw_exporter_langfuse.destroy(lo.priv);
  gw_arena_destroy(a);
  free(s1), free(s2), free(r1), free(r2);
  env_fini(&e);
}

/* An entry written while no exporter was configured holds its rows only (its spans were accepted, its
 * request not kept): an exporter configured later finds nothing of it to send and counts its spans as
 * filtered, the pass-through and the transforming exporters alike, whatever entries share the batch. */
static void test_payload_rows_only_entry(void **st)
{
  (void)st;
  struct env e;
  env_init(&e);
  e.p.forward = false; /* as with no exporter configured */
  char *s1 = chat_span(T1, "1111111111111111", NULL, NULL), *r1 = json_request("%s", s1);
  append_json(&e, r1);
  e.p.forward = true;
  char *s2 = chat_span(T2, "2222222222222222", NULL, NULL), *r2 = json_request("%s", s2);
  append_json(&e, r2);
  struct gw_spool_entry ent[4];
  size_t n = take(&e, ent, 4);
  assert_int_equal(n, 2);
  assert_int_equal(ent[0].otlp_len, 0);
  assert_true(ent[0].records_len > 0);
  assert_true(ent[1].otlp_len > 0);
  struct gw_arena *a = gw_arena_create(0);
  void *lf = gw_exporter_langfuse.create(NULL);
  const struct gw_export_payload_opts opts[] = {{&gw_exporter_otlp, NULL, false, NULL},
                                                {&gw_exporter_otlp, NULL, true, NULL},
                                                {&gw_exporter_langfuse, lf, false, NULL}};
  for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) {
    struct gw_export_piece pc[2];
    assert_int_equal(gw_export_build(&opts[k], a, ent, n, pc), GW_OK);
    assert_int_equal(pc[0].len, 0);
    assert_int_equal(pc[0].items, 0);
    assert_int_equal(pc[0].filtered, 1);
    assert_true(pc[1].len > 0);
    assert_int_equal(pc[1].items, 1);
    GwTraceRequest *req = unpack(pc[1].bytes, pc[1].len);
    assert_non_null(find_span(req, "2222222222222222"));
    assert_null(find_span(req, "1111111111111111"));
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(req, NULL);
  }
  gw_exporter_langfuse.destroy(lf);
  gw_arena_destroy(a);
  free(s1), free(s2), free(r1), free(r2);
  env_fini(&e);
}

/* Langfuse's copy: usage in its exclusive buckets, our cost, ids on every span of the trace (also in a
 * later batch), a client's own value never overwritten. */
static void test_langfuse_transform(void **st)
{
  (void)st;
  struct env e;
  env_init(&e);
  char *agent = span_json(T1, "aaaaaaaaaaaaaaaa", NULL,
                          A_STR("gen_ai.operation.name", "invoke_agent") "," A_STR("session.id", "sess-42") "," A_STR(
                            "user.id", "user-7"));
  char *chat = chat_span(T1, "bbbbbbbbbbbbbbbb", "aaaaaaaaaaaaaaaa", NULL);
  char *own = chat_span(T1, "cccccccccccccccc", "aaaaaaaaaaaaaaaa",
                        A_STR("langfuse.observation.cost_details", "{\\\"total\\\":1}"));
  char *http = span_json(T1, "dddddddddddddddd", "aaaaaaaaaaaaaaaa", A_STR("http.method", "POST"));
  char *req = json_request("%s,%s,%s,%s", agent, chat, own, http);
  append_json(&e, req);
  struct gw_spool_entry ent[4];
  size_t n = take(&e, ent, 4);
  assert_int_equal(n, 1);
  struct gw_arena *a = gw_arena_create(0);
  void *priv = gw_exporter_langfuse.create(NULL);
  struct gw_export_payload_opts o = {&gw_exporter_langfuse, priv, false, NULL};
  struct gw_export_piece pc[1];
  assert_int_equal(gw_export_build(&o, a, ent, 1, pc), GW_OK);
  assert_int_equal(pc[0].items, 4);
  assert_ptr_not_equal(pc[0].bytes, ent[0].otlp); /* re-encoded */
  GwTraceRequest *r = unpack(pc[0].bytes, pc[0].len);
  GwSpan *sc = find_span(r, "bbbbbbbbbbbbbbbb");
  assert_non_null(sc);
  /* input 100 inclusive of 30 cached -> 70; output 50 inclusive of 20 reasoning -> 30 */
  assert_string_equal(attr_str(sc, "langfuse.observation.usage_details"),
                      "{\"input\":70,\"output\":30,\"total\":150,\"input_cached_tokens\":30,\"output_reasoning_tokens\":20}");
  const char *cd = attr_str(sc, "langfuse.observation.cost_details");
  assert_non_null(cd);
  const GwKeyValue *total = gw_export_span_attr(sc, "genai_gateway.cost.total_usd");
  assert_non_null(total);
  char want[64];
  snprintf(want, sizeof want, "\"total\":%.9g", total->value->double_value);
  double parsed = 0;
  assert_non_null(strstr(cd, "\"input\":"));
  assert_non_null(strstr(cd, "\"output\":"));
  assert_int_equal(sscanf(strstr(cd, "\"total\":") + 8, "%lf", &parsed), 1);
  assert_true(parsed > 0 && parsed == total->value->double_value);
  /* every span of the trace carries the ids, the one that had them keeps its own keys only */
  for (const char *const *id = (const char *const[]){"bbbbbbbbbbbbbbbb", "cccccccccccccccc", "dddddddddddddddd", NULL}; *id;
       id++) {
    GwSpan *sp = find_span(r, *id);
    assert_string_equal(attr_str(sp, "langfuse.session.id"), "sess-42");
    assert_string_equal(attr_str(sp, "langfuse.user.id"), "user-7");
  }
  GwSpan *sa = find_span(r, "aaaaaaaaaaaaaaaa");
  assert_int_equal(attr_count(sa, "langfuse.session.id"), 0);
  assert_int_equal(attr_count(sa, "session.id"), 1);
  /* the client's own cost_details loses to the computed cost Postgres holds (issue 14, item 6): replaced,
   * not duplicated, and kept as a note */
  GwSpan *so = find_span(r, "cccccccccccccccc");
  assert_int_equal(attr_count(so, "langfuse.observation.cost_details"), 1);
  assert_string_equal(attr_str(so, "langfuse.observation.cost_details"), cd);
  assert_string_equal(attr_str(so, "langfuse.observation.metadata.gateway_client_cost_details"), "{\"total\":1}");
  assert_string_equal(attr_str(so, "langfuse.observation.metadata.gateway_cost_source"), "computed");
  assert_non_null(attr_str(so, "langfuse.observation.metadata.gateway_reported_cost_usd")); /* its total, 1 USD */
  assert_string_equal(attr_str(so, "langfuse.observation.metadata.gateway_reported_cost_usd"), "1.0");
  /* the span's other attributes are all still there, once */
  assert_int_equal(attr_count(so, "gen_ai.request.model"), 1);
  assert_int_equal(attr_count(so, "genai_gateway.cost.total_usd"), 1);
  /* no usage on the non-GenAI span */
  assert_null(gw_export_span_attr(find_span(r, "dddddddddddddddd"), "langfuse.observation.usage_details"));
  opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(r, NULL);
  done(&e, &ent[0]);

  /* A later batch with another span of the same trace: the ids come from the exporter's memory. */
  char *late = chat_span(T1, "eeeeeeeeeeeeeeee", "aaaaaaaaaaaaaaaa", NULL);
  char *req2 = json_request("%s", late);
  append_json(&e, req2);
  n = take(&e, ent, 4);
  gw_arena_reset(a);
  assert_int_equal(gw_export_build(&o, a, ent, n, pc), GW_OK);
  r = unpack(pc[0].bytes, pc[0].len);
  GwSpan *se = find_span(r, "eeeeeeeeeeeeeeee");
  assert_string_equal(attr_str(se, "langfuse.session.id"), "sess-42");
  assert_string_equal(attr_str(se, "langfuse.user.id"), "user-7");
  opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(r, NULL);

  /* The other keys ids are read from, in Langfuse's order: enduser.id and gen_ai.conversation.id when
   * nothing earlier names them; langfuse.user.id before user.id. */
  char *t2a = span_json(T2, "1111111111111111", NULL,
                        A_STR("gen_ai.conversation.id", "conv-9") "," A_STR("enduser.id", "eu-1"));
  char *t2b = span_json(T2, "2222222222222222", "1111111111111111",
                        A_STR("user.id", "other") "," A_STR("langfuse.user.id", "own"));
  char *t2c = span_json(T2, "3333333333333333", "1111111111111111", A_STR("http.method", "GET"));
  char *req3 = json_request("%s,%s,%s", t2a, t2b, t2c);
  done(&e, &ent[0]);
  append_json(&e, req3);
  n = take(&e, ent, 4);
  assert_int_equal(n, 1);
  gw_arena_reset(a);
  assert_int_equal(gw_export_build(&o, a, ent, n, pc), GW_OK);
  r = unpack(pc[0].bytes, pc[0].len);
  GwSpan *s1 = find_span(r, "1111111111111111"), *s2 = find_span(r, "2222222222222222"),
         *s3 = find_span(r, "3333333333333333");
  assert_string_equal(attr_str(s3, "langfuse.session.id"), "conv-9");
  assert_string_equal(attr_str(s3, "langfuse.user.id"), "eu-1"); /* the first span of the trace named it */
  assert_string_equal(attr_str(s2, "langfuse.session.id"), "conv-9");
  assert_int_equal(attr_count(s2, "langfuse.user.id"), 1); /* its own, not overwritten */
  assert_string_equal(attr_str(s2, "langfuse.user.id"), "own");
  assert_int_equal(attr_count(s1, "langfuse.session.id"), 0); /* it carries one itself */
  assert_int_equal(attr_count(s1, "langfuse.user.id"), 0);
  opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(r, NULL);
  done(&e, &ent[0]);
  free(t2a), free(t2b), free(t2c), free(req3);

  gw_exporter_langfuse.destroy(priv);
  gw_arena_destroy(a);
  free(agent), free(chat), free(own), free(http), free(req), free(late), free(req2);
  env_fini(&e);
}

/* Issue 14, items 2-6: what Langfuse shows besides content. Cost details per usage bucket adding up to
 * the stored cost; explicit zero usage for a failed call without usage; a stream without usage left to
 * Langfuse's estimate with its messages in the plain form; the model from model_id for every dialect; a
 * reported cost with no price is what goes, and says so. */
static void test_langfuse_observation(void **st)
{
  (void)st;
  struct env e;
  env_init(&e);
  /* cache write too: claude prices it apart */
  char *cached = span_json(T1, "1111111111111111", NULL,
                           A_STR("gen_ai.operation.name", "chat") "," A_STR("gen_ai.provider.name", "anthropic") "," A_STR(
                             "gen_ai.request.model", "claude-sonnet-4-5") "," A_INT("gen_ai.usage.input_tokens", 1000) "," A_INT(
                             "gen_ai.usage.output_tokens", 200) "," A_INT("gen_ai.usage.cache_read.input_tokens", 300) "," A_INT(
                             "gen_ai.usage.cache_creation.input_tokens", 100));
  char *failed = span_json(T1, "2222222222222222", NULL,
                           A_STR("gen_ai.operation.name", "chat") "," A_STR("gen_ai.request.model", "gpt-4o-mini") "," A_STR(
                             "error.type", "429"));
  char *stream = span_json(T1, "3333333333333333", NULL,
                           A_STR("gen_ai.operation.name", "chat") "," A_STR("gen_ai.request.model", "gpt-4o-mini") ","
                           "{\"key\":\"gen_ai.request.stream\",\"value\":{\"boolValue\":true}},"
                           A_STR("gen_ai.input.messages", "[{\\\"role\\\":\\\"user\\\",\\\"parts\\\":[{\\\"type\\\":\\\"text\\\",\\\"content\\\":\\\"hi there\\\"}]}]"));
  char *embed = span_json(T1, "4444444444444444", NULL,
                          A_STR("openinference.span.kind", "EMBEDDING") "," A_STR("embedding.model_name", "text-embedding-3-small") "," A_INT(
                            "llm.token_count.prompt", 8) "," A_INT("llm.token_count.total", 8));
  char *reported = span_json(T1, "5555555555555555", NULL,
                             A_STR("gen_ai.operation.name", "chat") "," A_STR("gen_ai.request.model", "house-model-7") "," A_INT(
                               "gen_ai.usage.input_tokens", 10) ",{\"key\":\"gen_ai.usage.cost\",\"value\":{\"doubleValue\":0.25}}");
  char *req = json_request("%s,%s,%s,%s,%s", cached, failed, stream, embed, reported);
  /* the failed span: status ERROR */
  char *p = strstr(req, "\"spanId\":\"2222222222222222\"");
  assert_non_null(p);
  char *fixed = malloc(strlen(req) + 64);
  size_t at = (size_t)(strchr(p, ',') - req);
  memcpy(fixed, req, at);
  strcpy(fixed + at, ",\"status\":{\"code\":2}");
  strcat(fixed, req + at);
  append_json(&e, fixed);
  struct gw_spool_entry ent[2];
  assert_int_equal(take(&e, ent, 2), 1);
  struct gw_arena *a = gw_arena_create(0);
  void *priv = gw_exporter_langfuse.create(NULL);
  struct gw_export_payload_opts o = {&gw_exporter_langfuse, priv, false, NULL};
  struct gw_export_piece pc[1];
  assert_int_equal(gw_export_build(&o, a, ent, 1, pc), GW_OK);
  GwTraceRequest *r = unpack(pc[0].bytes, pc[0].len);

  /* 5: buckets named as the usage buckets, adding up to the stored input and output cost */
  GwSpan *sc = find_span(r, "1111111111111111");
  assert_string_equal(attr_str(sc, "langfuse.observation.usage_details"),
                      "{\"input\":600,\"output\":200,\"total\":1200,\"input_cached_tokens\":300,\"input_cache_creation\":100}");
  double in_usd = gw_export_span_attr(sc, "genai_gateway.cost.input_usd")->value->double_value;
  double out_usd = gw_export_span_attr(sc, "genai_gateway.cost.output_usd")->value->double_value;
  double tot_usd = gw_export_span_attr(sc, "genai_gateway.cost.total_usd")->value->double_value;
  double ci, cc, cw, co, ct;
  const char *cd = attr_str(sc, "langfuse.observation.cost_details");
  assert_int_equal(sscanf(cd, "{\"input\":%lf,\"input_cached_tokens\":%lf,\"input_cache_creation\":%lf,\"output\":%lf,\"total\":%lf}",
                          &ci, &cc, &cw, &co, &ct), 5);
  /* claude-sonnet-4-5: 3 / 15 per M, cache read 0.30, cache write 3.75 */
  assert_true(fabs(ci - 600 * 3e-6) < 1e-12);
  assert_true(fabs(cc - 300 * 0.3e-6) < 1e-12);
  assert_true(fabs(cw - 100 * 3.75e-6) < 1e-12);
  assert_true(fabs(ci + cc + cw - in_usd) < 1e-12);
  assert_true(fabs(co - out_usd) < 1e-12);
  assert_true(fabs(ct - tot_usd) < 1e-12);
  assert_string_equal(attr_str(sc, "langfuse.observation.model.name"), "claude-sonnet-4-5");
  assert_string_equal(attr_str(sc, "langfuse.observation.metadata.gateway_cost_source"), "computed");
  assert_null(attr_str(sc, "langfuse.observation.metadata.gateway_usage"));

  /* 2: a failed call without usage: explicit zeros, said so; no cost (Postgres has NULL) */
  GwSpan *sf = find_span(r, "2222222222222222");
  assert_string_equal(attr_str(sf, "langfuse.observation.usage_details"), "{\"input\":0,\"output\":0,\"total\":0}");
  assert_string_equal(attr_str(sf, "langfuse.observation.metadata.gateway_usage"), "zero_failed_call");
  assert_null(attr_str(sf, "langfuse.observation.cost_details"));
  assert_null(attr_str(sf, "langfuse.observation.input"));

  /* 3: a stream without usage: no usage sent, Langfuse estimates from the plain form */
  GwSpan *ss = find_span(r, "3333333333333333");
  assert_null(attr_str(ss, "langfuse.observation.usage_details"));
  assert_string_equal(attr_str(ss, "langfuse.observation.metadata.gateway_usage"), "estimated_by_langfuse");
  assert_string_equal(attr_str(ss, "langfuse.observation.input"), "[{\"role\":\"user\",\"content\":\"hi there\"}]");

  /* 4: OpenInference embeddings name their model only in embedding.model_name */
  GwSpan *se = find_span(r, "4444444444444444");
  assert_string_equal(attr_str(se, "langfuse.observation.model.name"), "text-embedding-3-small");
  assert_string_equal(attr_str(se, "langfuse.observation.usage_details"), "{\"input\":8,\"total\":8}");
  assert_non_null(strstr(attr_str(se, "langfuse.observation.cost_details"), "\"input\":0.00000016"));

  /* 6: no price, a reported cost: that is what Postgres holds and what goes, said so */
  GwSpan *sr = find_span(r, "5555555555555555");
  assert_string_equal(attr_str(sr, "langfuse.observation.cost_details"), "{\"total\":0.25}");
  assert_string_equal(attr_str(sr, "langfuse.observation.metadata.gateway_cost_source"), "reported");
  assert_null(attr_str(sr, "langfuse.observation.metadata.gateway_reported_cost_usd"));
  assert_string_equal(attr_str(sr, "langfuse.observation.model.name"), "house-model-7");
  opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(r, NULL);

  /* the plain form: text parts joined, tool calls as OpenAI's, tool results with their call id */
  const char *pm = gw_lf_plain_messages(
    a, "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"a\"},{\"type\":\"text\",\"content\":\"b\"},"
       "{\"type\":\"tool_call\",\"id\":\"c1\",\"name\":\"f\",\"arguments\":{\"x\":1}}]},"
       "{\"role\":\"tool\",\"parts\":[{\"type\":\"tool_call_response\",\"id\":\"c1\",\"response\":\"42\"}]}]", 0);
  assert_null(pm); /* len 0: nothing to parse */
  const char *src = "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"a\"},{\"type\":\"text\",\"content\":\"b\"},"
                    "{\"type\":\"tool_call\",\"id\":\"c1\",\"name\":\"f\",\"arguments\":{\"x\":1}}]},"
                    "{\"role\":\"tool\",\"parts\":[{\"type\":\"tool_call_response\",\"id\":\"c1\",\"response\":\"42\"}]}]";
  pm = gw_lf_plain_messages(a, src, strlen(src));
  assert_string_equal(pm, "[{\"role\":\"assistant\",\"content\":\"a\\nb\",\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
                          "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\":1}\"}}]},"
                          "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"42\"}]");
  assert_null(gw_lf_plain_messages(a, "not json", 8));

  gw_exporter_langfuse.destroy(priv);
  gw_arena_destroy(a);
  free(cached), free(failed), free(stream), free(embed), free(reported), free(req), free(fixed);
  env_fini(&e);
}

/* What a join holds in its tests: a trace entry's spans are read and held with the real build. */
static struct gw_export_join *mk_join(uint64_t wait_ms, size_t max_bytes, struct gw_export_stats *st)
{
  struct gw_export_join_conf jc = {.wait_ms = wait_ms, .events_ms = 60000, .max_bytes = max_bytes, .read_lag_ms = 0};
  return gw_export_join_create(&jc, st);
}

static const char *sent_attr(const struct gw_export_piece *p, const char *span_hex, const char *key, char *buf, size_t n)
{
  GwTraceRequest *r = unpack(p->bytes, p->len);
  GwSpan *sp = find_span(r, span_hex);
  const char *v = sp ? attr_str(sp, key) : NULL;
  snprintf(buf, n, "%s", v ? v : "");
  opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(r, NULL);
  return v ? buf : NULL;
}

/* Issue 14: a span whose log records have not come is held (left out, its trace's ids still learned) and
 * released with its content once the logs come; content that comes first is kept for its span; reading an
 * entry again adds nothing twice; the cursor is kept before what the join keeps. */
static void test_langfuse_join(void **st)
{
  (void)st;
  struct env e;
  env_init(&e);
  struct gw_export_stats stats;
  memset(&stats, 0, sizeof stats);
  struct gw_export_join *j = mk_join(60000, 1u << 20, &stats);
  void *priv = gw_exporter_langfuse.create(NULL);
  struct gw_export_payload_opts o = {&gw_exporter_langfuse, priv, false, j};
  struct gw_arena *a = gw_arena_create(0);
  char buf[1024];

  /* 1. a chat span without content, its agent parent with the user id */
  char *agent = span_json(T1, "aaaaaaaaaaaaaaaa", NULL, A_STR("gen_ai.operation.name", "invoke_agent") "," A_STR("user.id", "u-1"));
  char *chat = chat_span(T1, "bbbbbbbbbbbbbbbb", "aaaaaaaaaaaaaaaa", NULL);
  char *req = json_request("%s,%s", agent, chat);
  append_json(&e, req);
  struct gw_spool_entry ent[4];
  assert_int_equal(take(&e, ent, 4), 1);
  struct gw_export_piece pc[4];
  assert_int_equal(gw_export_join_add(j, a, ent, 1), GW_OK);
  assert_int_equal(gw_export_build(&o, a, ent, 1, pc), GW_OK);
  assert_int_equal(pc[0].items, 1); /* the agent goes */
  assert_int_equal(pc[0].held, 1);  /* the chat waits */
  assert_null(sent_attr(&pc[0], "bbbbbbbbbbbbbbbb", "gen_ai.request.model", buf, sizeof buf));
  assert_int_equal(gw_export_join_held(j), 1);
  assert_int_equal(gw_export_join_keep_from(j), ent[0].seq);
  assert_int_equal(atomic_load(&stats.join_held), 1);
  /* read again (a retried batch): held already, left out, not held twice */
  gw_arena_reset(a);
  assert_int_equal(gw_export_build(&o, a, ent, 1, pc), GW_OK);
  assert_int_equal(pc[0].held, 1);
  assert_int_equal(gw_export_join_held(j), 1);
  assert_int_equal(atomic_load(&stats.join_held), 1);
  struct gw_spool_entry *rel;
  struct gw_export_join_now now = {gw_now_ns(), ent[0].appended_ns, true, false};
  assert_int_equal(gw_export_join_release(j, a, &now, &rel), 0); /* nothing came, the wait is not over */
  gw_export_join_done(j, 0);
  done(&e, &ent[0]);

  /* 2. its logs come (in two records, twice: a re-sent request) */
  char *logs = chat_logs(T1, "bbbbbbbbbbbbbbbb", "what is 2+2", "4");
  append_logs_json(&e, logs);
  append_logs_json(&e, logs);
  assert_int_equal(take(&e, ent, 4), 2);
  gw_arena_reset(a);
  assert_int_equal(gw_export_join_add(j, a, ent, 2), GW_OK);
  now.wall_ns = gw_now_ns();
  assert_int_equal(gw_export_join_release(j, a, &now, &rel), 1);
  assert_true(rel[0].flags & GW_EXPORT_ENTRY_RELEASED);
  assert_int_equal(gw_export_build(&o, a, rel, 1, pc), GW_OK);
  assert_int_equal(pc[0].items, 1);
  assert_int_equal(pc[0].held, 0); /* never held again */
  const char *in = sent_attr(&pc[0], "bbbbbbbbbbbbbbbb", "gen_ai.input.messages", buf, sizeof buf);
  assert_non_null(in);
  assert_string_equal(in, "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"what is 2+2\"}]}]");
  assert_non_null(strstr(sent_attr(&pc[0], "bbbbbbbbbbbbbbbb", "gen_ai.output.messages", buf, sizeof buf), "\"4\""));
  assert_string_equal(sent_attr(&pc[0], "bbbbbbbbbbbbbbbb", "langfuse.user.id", buf, sizeof buf), "u-1");
  assert_non_null(sent_attr(&pc[0], "bbbbbbbbbbbbbbbb", "langfuse.observation.usage_details", buf, sizeof buf));
  /* delivered: its content claimed (the span's ids point into the held copy: before done), forgotten,
   * the cursor free */
  for (size_t k = 0; k < pc[0].nspans; k++)
    gw_export_join_claim(j, pc[0].spans[k].trace_id, pc[0].spans[k].span_id);
  gw_export_join_done(j, 1);
  assert_int_equal(gw_export_join_held(j), 0);
  assert_int_equal(gw_export_join_keep_from(j), 0);
  assert_int_equal(atomic_load(&stats.join_incomplete[GW_XJ_WAIT]), 0);
  done(&e, &ent[1]);

  /* 3. content first, then its span: the span is not held and goes with it */
  char *logs2 = chat_logs(T2, "cccccccccccccccc", "first the logs", "then the span");
  append_logs_json(&e, logs2);
  char *chat2 = chat_span(T2, "cccccccccccccccc", NULL, NULL);
  char *req2 = json_request("%s", chat2);
  append_json(&e, req2);
  assert_int_equal(take(&e, ent, 4), 2);
  gw_arena_reset(a);
  assert_int_equal(gw_export_join_add(j, a, ent, 1), GW_OK);
  assert_int_equal(gw_export_join_keep_from(j), ent[0].seq); /* the logs entry is kept uncommitted */
  assert_int_equal(gw_export_build(&o, a, ent + 1, 1, pc), GW_OK);
  assert_int_equal(pc[0].held, 0);
  assert_non_null(strstr(sent_attr(&pc[0], "cccccccccccccccc", "gen_ai.input.messages", buf, sizeof buf), "first the logs"));

  /* 4. a span whose logs never come: due once the exporter has read what was spooled wait_ms after it */
  gw_export_join_destroy(j);
  memset(&stats, 0, sizeof stats);
  j = mk_join(1000, 1u << 20, &stats);
  o.join = j;
  done(&e, &ent[1]);
  char *chat3 = chat_span(T2, "dddddddddddddddd", NULL, NULL);
  char *req3 = json_request("%s", chat3);
  append_json(&e, req3);
  assert_int_equal(take(&e, ent, 4), 1);
  gw_arena_reset(a);
  assert_int_equal(gw_export_build(&o, a, ent, 1, pc), GW_OK);
  assert_int_equal(pc[0].held, 1);
  uint64_t t = ent[0].appended_ns;
  struct gw_export_join_now backlog = {t + 5000000000ull, t + 500000000ull, false, false};
  assert_int_equal(gw_export_join_release(j, a, &backlog, &rel), 0); /* reading a backlog: not yet */
  gw_export_join_done(j, 0);
  backlog.read_ns = t + 1000000000ull;
  assert_int_equal(gw_export_join_release(j, a, &backlog, &rel), 1);
  gw_export_join_done(j, 0); /* not sent (a retry): held on, released again */
  assert_int_equal(gw_export_join_held(j), 1);
  struct gw_export_join_now idle = {t + 1000000000ull, t, true, false};
  assert_int_equal(gw_export_join_release(j, a, &idle, &rel), 1);
  gw_export_join_done(j, 1);
  assert_int_equal(atomic_load(&stats.join_incomplete[GW_XJ_WAIT]), 1);
  done(&e, &ent[0]);

  /* 5. no room: not held, counted */
  gw_export_join_destroy(j);
  memset(&stats, 0, sizeof stats);
  j = mk_join(1000, 64, &stats);
  o.join = j;
  char *chat4 = chat_span(T2, "eeeeeeeeeeeeeeee", NULL, NULL);
  char *req4 = json_request("%s", chat4);
  append_json(&e, req4);
  assert_int_equal(take(&e, ent, 4), 1);
  gw_arena_reset(a);
  assert_int_equal(gw_export_build(&o, a, ent, 1, pc), GW_OK);
  assert_int_equal(pc[0].held, 0);
  assert_int_equal(pc[0].items, 1);
  assert_int_equal(atomic_load(&stats.join_incomplete[GW_XJ_MEMORY]), 1);

  /* 6. at stop, final: everything held goes */
  gw_export_join_destroy(j);
  j = mk_join(600000, 1u << 20, NULL);
  o.join = j;
  gw_arena_reset(a);
  assert_int_equal(gw_export_build(&o, a, ent, 1, pc), GW_OK);
  assert_int_equal(pc[0].held, 1);
  struct gw_export_join_now fin = {gw_now_ns(), 0, true, true};
  assert_int_equal(gw_export_join_release(j, a, &fin, &rel), 1);
  gw_export_join_done(j, 1);
  assert_int_equal(gw_export_join_held(j), 0);

  gw_export_join_destroy(j);
  gw_exporter_langfuse.destroy(priv);
  gw_arena_destroy(a);
  free(agent), free(chat), free(req), free(logs), free(logs2), free(chat2), free(req2), free(chat3), free(req3);
  free(chat4), free(req4);
  env_fini(&e);
}

/* genai_only keeps the spans that have an interaction record, and empty envelopes go. */
static void test_genai_only(void **st)
{
  (void)st;
  struct env e;
  env_init(&e);
  char *chat = chat_span(T1, "1111111111111111", NULL, NULL);
  char *plain = span_json(T1, "2222222222222222", "1111111111111111", A_STR("http.method", "GET"));
  char *req = json_request("%s,%s", chat, plain);
  char *plain_only = json_request("%s", plain);
  append_json(&e, req);
  append_json(&e, plain_only);
  struct gw_spool_entry ent[4];
  size_t n = take(&e, ent, 4);
  assert_int_equal(n, 2);
  struct gw_arena *a = gw_arena_create(0);
  struct gw_export_payload_opts o = {&gw_exporter_otlp, NULL, true, NULL};
  struct gw_export_piece pc[2];
  assert_int_equal(gw_export_build(&o, a, ent, n, pc), GW_OK);
  assert_int_equal(pc[0].items, 1);
  assert_int_equal(pc[0].filtered, 1);
  GwTraceRequest *r = unpack(pc[0].bytes, pc[0].len);
  assert_int_equal(count_spans(r), 1);
  assert_non_null(find_span(r, "1111111111111111"));
  opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(r, NULL);
  assert_int_equal(pc[1].len, 0); /* nothing left: no empty ResourceSpans sent */
  assert_int_equal(pc[1].items, 0);
  assert_int_equal(pc[1].filtered, 1);
  /* Logs: entries without GenAI events are passed over. */
  struct gw_spool_entry logs = ent[1];
  logs.signal = GW_SIGNAL_LOGS;
  logs.flags = 0;
  assert_int_equal(gw_export_build(&o, a, &logs, 1, pc), GW_OK);
  assert_int_equal(pc[0].len, 0);
  logs.flags = GW_ENTRY_HAS_GENAI;
  assert_int_equal(gw_export_build(&o, a, &logs, 1, pc), GW_OK);
  assert_ptr_equal(pc[0].bytes, logs.otlp);
  gw_arena_destroy(a);
  free(chat), free(plain), free(req), free(plain_only);
  env_fini(&e);
}

/* A span with a malformed id never reaches a transform's output (Langfuse 400s the whole request). */
/* The wire-level rewrite changes nothing but what it must: a request with two resources (attributes,
 * schema URLs), scopes with attributes, spans with events, links, status, flags and parents, spans with
 * bad ids, an empty scope and a resource of bad spans only. What the Langfuse exporter writes, decoded by
 * protobuf-c, must equal the original message for message, except that the bad spans and the envelopes
 * they leave empty are gone and each kept span has attributes appended after its own. */
static size_t msg_pack(const void *m, uint8_t **out)
{
  size_t n = protobuf_c_message_get_packed_size((const ProtobufCMessage *)m);
  *out = malloc(n ? n : 1);
  protobuf_c_message_pack((const ProtobufCMessage *)m, *out);
  return n;
}

static void assert_same_msg(const void *a, const void *b)
{
  uint8_t *pa, *pb;
  size_t na = msg_pack(a, &pa), nb = msg_pack(b, &pb);
  assert_int_equal(na, nb);
  assert_memory_equal(pa, pb, na);
  free(pa);
  free(pb);
}

/* req packed into a spool entry of nspans spans (*buf: its bytes, to free) and built for Langfuse into pc[0];
 * returns the exporter's private state (destroy it). */
static void *langfuse_build(struct gw_arena *a, const GwTraceRequest *req, uint32_t nspans, struct gw_spool_entry *ent,
                            uint8_t **buf, struct gw_export_piece *pc)
{
  size_t len = msg_pack(req, buf);
  *ent = (struct gw_spool_entry){.seq = 1, .format = GW_SPOOL_FORMAT, .signal = GW_SIGNAL_TRACES, .nspans = nspans,
                                 .otlp = *buf, .otlp_len = len};
  void *priv = gw_exporter_langfuse.create(NULL);
  struct gw_export_payload_opts o = {&gw_exporter_langfuse, priv, false, NULL};
  assert_int_equal(gw_export_build(&o, a, ent, 1, pc), GW_OK);
  return priv;
}

static void test_wire_rewrite_keeps_everything(void **st)
{
  (void)st;
  struct gw_arena *a = gw_arena_create(0);
  uint8_t tid[16], sid[4][8], par[8], zeros[16] = {0};
  memset(tid, 0x5a, sizeof tid);
  memset(par, 0x11, sizeof par);
  for (int i = 0; i < 4; i++)
    memset(sid[i], 0x21 + i, sizeof sid[i]);
  /* attributes */
  GwAnyValue v_user, v_svc, v_int, v_scope;
  GwKeyValue kv_user, kv_svc, kv_int, kv_scope;
  GwAnyValue *vals[4] = {&v_user, &v_svc, &v_int, &v_scope};
  GwKeyValue *kvs[4] = {&kv_user, &kv_svc, &kv_int, &kv_scope};
  const char *keys[4] = {"user.id", "service.name", "http.status_code", "scope.attr"};
  for (int i = 0; i < 4; i++) {
    gw_pb_any_value_init(vals[i]);
    gw_pb_key_value_init(kvs[i]);
    kvs[i]->key = (char *)keys[i];
    kvs[i]->value = vals[i];
    vals[i]->value_case = GW_AV_STRING;
  }
  v_user.string_value = (char *)"u-77";
  v_svc.string_value = (char *)"svc-a";
  v_scope.string_value = (char *)"x";
  v_int.value_case = GW_AV_INT;
  v_int.int_value = 200;
  GwKeyValue *span_attrs[2] = {&kv_user, &kv_int}, *res_attrs[1] = {&kv_svc}, *scope_attrs[1] = {&kv_scope};
  /* spans: A full, B bad span id, C plain child, D zero trace id */
  GwSpan A, B, C, D;
  GwSpan *all[4] = {&A, &B, &C, &D};
  for (int i = 0; i < 4; i++) {
    gw_pb_span_init(all[i]);
    all[i]->trace_id = (ProtobufCBinaryData){16, tid};
    all[i]->span_id = (ProtobufCBinaryData){8, sid[i]};
    all[i]->name = (char *)"op";
    all[i]->start_time_unix_nano = 1000 + (uint64_t)i;
    all[i]->end_time_unix_nano = 2000 + (uint64_t)i;
  }
  B.span_id.len = 7;
  D.trace_id.data = zeros;
  C.parent_span_id = (ProtobufCBinaryData){8, par};
  A.kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT;
  A.trace_state = (char *)"k=v";
  A.flags = 0x301;
  A.n_attributes = 2;
  A.attributes = span_attrs;
  A.dropped_attributes_count = 3;
  GwSpanEvent ev;
  gw_pb_span_event_init(&ev);
  ev.name = (char *)"exception";
  ev.time_unix_nano = 1500;
  ev.n_attributes = 1;
  ev.attributes = &span_attrs[1];
  GwSpanEvent *evp = &ev;
  A.n_events = 1;
  A.events = &evp;
  GwSpanLink ln;
  gw_pb_span_link_init(&ln);
  ln.trace_id = (ProtobufCBinaryData){16, tid};
  ln.span_id = (ProtobufCBinaryData){8, par};
  GwSpanLink *lnp = &ln;
  A.n_links = 1;
  A.links = &lnp;
  GwStatus stt;
  gw_pb_status_init(&stt);
  stt.code = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
  stt.message = (char *)"boom";
  A.status = &stt;
  /* envelopes */
  Opentelemetry__Proto__Common__V1__InstrumentationScope sc1;
  gw_pb_scope_init(&sc1);
  sc1.name = (char *)"lib";
  sc1.version = (char *)"1.2";
  sc1.n_attributes = 1;
  sc1.attributes = scope_attrs;
  GwScopeSpans s1, s2, s3, s4;
  GwScopeSpans *r1_scopes[3] = {&s1, &s2, &s3}, *r2_scopes[1] = {&s4};
  GwSpan *s1_spans[3] = {&A, &B, &C}, *s2_spans[1] = {&D}, *s4_spans[2] = {&B, &D};
  gw_pb_scope_spans_init(&s1);
  gw_pb_scope_spans_init(&s2);
  gw_pb_scope_spans_init(&s3);
  gw_pb_scope_spans_init(&s4);
  s1.scope = &sc1;
  s1.schema_url = (char *)"https://opentelemetry.io/schemas/1.30.0";
  s1.n_spans = 3;
  s1.spans = s1_spans;
  s2.n_spans = 1;
  s2.spans = s2_spans;
  s4.n_spans = 2;
  s4.spans = s4_spans;
  Opentelemetry__Proto__Resource__V1__Resource res1;
  gw_pb_resource_init(&res1);
  res1.n_attributes = 1;
  res1.attributes = res_attrs;
  res1.dropped_attributes_count = 1;
  GwResourceSpans r1, r2;
  gw_pb_resource_spans_init(&r1);
  gw_pb_resource_spans_init(&r2);
  r1.resource = &res1;
  r1.schema_url = (char *)"https://example.com/r1";
  r1.n_scope_spans = 3;
  r1.scope_spans = r1_scopes;
  r2.n_scope_spans = 1;
  r2.scope_spans = r2_scopes;
  GwResourceSpans *rsp[2] = {&r1, &r2};
  GwTraceRequest req;
  gw_pb_trace_request_init(&req);
  req.n_resource_spans = 2;
  req.resource_spans = rsp;
  uint8_t *buf;
  struct gw_spool_entry ent;
  struct gw_export_piece pc[1];
  void *priv = langfuse_build(a, &req, 6, &ent, &buf, pc);
  assert_int_equal(pc[0].items, 2);
  assert_int_equal(pc[0].invalid, 4);
  GwTraceRequest *out = unpack(pc[0].bytes, pc[0].len);
  assert_int_equal(out->n_resource_spans, 1); /* r2 held bad spans only */
  GwResourceSpans *o1 = out->resource_spans[0];
  assert_same_msg(o1->resource, &res1);
  assert_string_equal(o1->schema_url, r1.schema_url);
  assert_int_equal(o1->n_scope_spans, 1); /* s2 (bad only) and s3 (empty) are gone */
  GwScopeSpans *os = o1->scope_spans[0];
  assert_same_msg(os->scope, &sc1);
  assert_string_equal(os->schema_url, s1.schema_url);
  assert_int_equal(os->n_spans, 2);
  /* A and C: their own fields as they were; C then gets the trace's user that A carries itself (A, which
   * names it, gets nothing added) */
  GwSpan *want[2] = {&A, &C};
  for (int i = 0; i < 2; i++) {
    GwSpan *got = os->spans[i];
    size_t own = want[i]->n_attributes;
    assert_int_equal(got->n_attributes, own + (i == 1));
    for (size_t k = own; k < got->n_attributes; k++)
      assert_string_equal(got->attributes[k]->key, "langfuse.user.id");
    if (i == 1)
      assert_string_equal(attr_str(got, "langfuse.user.id"), "u-77");
    size_t n = got->n_attributes;
    got->n_attributes = own;
    assert_same_msg(got, want[i]);
    got->n_attributes = n; /* for free_unpacked */
  }
  opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(out, NULL);
  /* genai_only without a transform keeps nothing here (no records), and says so */
  struct gw_export_payload_opts og = {&gw_exporter_signoz, NULL, true, NULL};
  gw_arena_reset(a);
  assert_int_equal(gw_export_build(&og, a, &ent, 1, pc), GW_OK);
  assert_int_equal(pc[0].len, 0);
  assert_int_equal(pc[0].items, 0);
  assert_int_equal(pc[0].filtered, 2);
  gw_exporter_langfuse.destroy(priv);
  free(buf);
  gw_arena_destroy(a);
}

static void test_bad_ids_left_out(void **st)
{
  (void)st;
  struct gw_arena *a = gw_arena_create(0);
  GwSpan good, bad, zero;
  uint8_t tid[16], sid[8], zeros[16] = {0};
  memset(tid, 7, sizeof tid);
  memset(sid, 9, sizeof sid);
  GwSpan *spans[3] = {&good, &bad, &zero};
  for (int i = 0; i < 3; i++) {
    gw_pb_span_init(spans[i]);
    spans[i]->trace_id = (ProtobufCBinaryData){16, tid};
    spans[i]->span_id = (ProtobufCBinaryData){8, sid};
    spans[i]->name = (char *)"x";
  }
  bad.span_id.len = 7;
  zero.trace_id.data = zeros;
  GwScopeSpans ss;
  gw_pb_scope_spans_init(&ss);
  ss.n_spans = 3;
  ss.spans = spans;
  GwScopeSpans *ssp = &ss;
  GwResourceSpans rs;
  gw_pb_resource_spans_init(&rs);
  rs.n_scope_spans = 1;
  rs.scope_spans = &ssp;
  GwResourceSpans *rsp = &rs;
  GwTraceRequest req;
  gw_pb_trace_request_init(&req);
  req.n_resource_spans = 1;
  req.resource_spans = &rsp;
  uint8_t *buf;
  struct gw_spool_entry ent;
  struct gw_export_piece pc[1];
  void *priv = langfuse_build(a, &req, 3, &ent, &buf, pc);
  assert_int_equal(pc[0].items, 1);
  assert_int_equal(pc[0].invalid, 2);
  GwTraceRequest *r = unpack(pc[0].bytes, pc[0].len);
  assert_int_equal(count_spans(r), 1);
  opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(r, NULL);
  gw_exporter_langfuse.destroy(priv);
  free(buf);
  gw_arena_destroy(a);
}

/* ---- the generic exporter against a scripted HTTP server ---- */

struct script {
  unsigned status;
  const char *retry_after;
  const uint8_t *body;
  size_t body_len;
  const char *ctype;
  unsigned delay_ms;
};

struct seen {
  char url[128], auth[256], encoding[32], version[16], ctype[64];
  uint8_t *body;
  size_t len;
  uint64_t at_mono;
};

static struct fake_http {
  pthread_mutex_t mu;
  struct MHD_Daemon *d;
  unsigned port;
  struct script script[16];
  size_t nscript, next;
  struct seen seen[16];
  size_t nseen;
} H = {.mu = PTHREAD_MUTEX_INITIALIZER};

struct upload {
  uint8_t *buf;
  size_t len;
};

static void copy_header(struct MHD_Connection *c, const char *name, char *dst, size_t n)
{
  const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
  snprintf(dst, n, "%s", v ? v : "");
}

static enum MHD_Result on_req(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *data, size_t *data_size, void **con_cls)
{
  struct upload *u = *con_cls;
  if (!u) {
    *con_cls = calloc(1, sizeof *u);
    return MHD_YES;
  }
  if (*data_size) {
    u->buf = realloc(u->buf, u->len + *data_size);
    memcpy(u->buf + u->len, data, *data_size);
    u->len += *data_size;
    *data_size = 0;
    return MHD_YES;
  }
  pthread_mutex_lock(&H.mu);
  struct script sc = H.nscript ? H.script[H.next < H.nscript ? H.next : H.nscript - 1] : (struct script){.status = 200};
  H.next++;
  if (H.nseen < 16) {
    struct seen *s = &H.seen[H.nseen++];
    snprintf(s->url, sizeof s->url, "%s", url);
    copy_header(c, "Authorization", s->auth, sizeof s->auth);
    copy_header(c, "Content-Encoding", s->encoding, sizeof s->encoding);
    copy_header(c, "x-langfuse-ingestion-version", s->version, sizeof s->version);
    copy_header(c, "Content-Type", s->ctype, sizeof s->ctype);
    s->body = u->buf;
    s->len = u->len;
    s->at_mono = gw_mono_ns();
    u->buf = NULL;
  }
  pthread_mutex_unlock(&H.mu);
  if (sc.delay_ms) {
    struct timespec ts = {sc.delay_ms / 1000, (long)(sc.delay_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  struct MHD_Response *r = MHD_create_response_from_buffer(sc.body_len, (void *)sc.body, MHD_RESPMEM_MUST_COPY);
  if (sc.retry_after)
    MHD_add_response_header(r, "Retry-After", sc.retry_after);
  MHD_add_response_header(r, "Content-Type", sc.ctype ? sc.ctype : "application/x-protobuf");
  enum MHD_Result ret = MHD_queue_response(c, sc.status, r);
  MHD_destroy_response(r);
  return ret;
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
  struct upload *u = *con_cls;
  if (u) {
    free(u->buf);
    free(u);
  }
  *con_cls = NULL;
}

static void http_start(const struct script *s, size_t n)
{
  pthread_mutex_lock(&H.mu);
  memcpy(H.script, s, n * sizeof *s);
  H.nscript = n;
  H.next = 0;
  H.nseen = 0;
  pthread_mutex_unlock(&H.mu);
  H.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL, 0, NULL,
                         NULL, on_req, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL, MHD_OPTION_SOCK_ADDR, NULL,
                         MHD_OPTION_END);
  assert_non_null(H.d);
  H.port = MHD_get_daemon_info(H.d, MHD_DAEMON_INFO_BIND_PORT)->port;
}

static void http_stop(void)
{
  MHD_stop_daemon(H.d);
  for (size_t i = 0; i < H.nseen; i++)
    free(H.seen[i].body);
  H.nseen = 0;
}

/* A config for an exporter to the fake server. */
static void conf_for(struct gw_conf_exporter *c, const char *endpoint)
{
  memset(c, 0, sizeof *c);
  c->enabled = true;
  c->endpoint = (char *)endpoint;
  c->protocol = (char *)"http";
  c->ca_file = (char *)"";
  c->timeout_ms = 2000;
  c->gzip = true;
  c->batch_spans = 512;
  c->max_request_bytes = 4u << 20;
  c->public_key = (char *)"pk-lf-1";
  c->secret_key = (char *)"sk-lf-secret";
  c->ingestion_key = (char *)"";
}

static uint8_t *gunzip(const uint8_t *z, size_t zl, size_t *out_len)
{
  size_t cap = 1 << 22;
  uint8_t *out = malloc(cap);
  z_stream s;
  memset(&s, 0, sizeof s);
  assert_int_equal(inflateInit2(&s, 15 + 16), Z_OK);
  s.next_in = (Bytef *)z;
  s.avail_in = (uInt)zl;
  s.next_out = out;
  s.avail_out = (uInt)cap;
  assert_int_equal(inflate(&s, Z_FINISH), Z_STREAM_END);
  *out_len = s.total_out;
  inflateEnd(&s);
  return out;
}

/* n trace entries of one span each, ~size bytes each. */
static size_t make_entries(struct env *e, size_t n, size_t size, struct gw_spool_entry *out)
{
  for (size_t i = 0; i < n; i++) {
    char sid[17], *pad = malloc(size + 1);
    snprintf(sid, sizeof sid, "%016zx", i + 1);
    memset(pad, 'p', size);
    pad[size] = '\0';
    char *attrs = malloc(size + 128);
    sprintf(attrs, A_STR("gen_ai.operation.name", "chat") ",{\"key\":\"app.pad\",\"value\":{\"stringValue\":\"%s\"}}", pad);
    char *sp = span_json(T1, sid, NULL, attrs), *req = json_request("%s", sp);
    append_json(e, req);
    free(pad), free(attrs), free(sp), free(req);
  }
  return take(e, out, n);
}

static void test_exporter_over_http(void **st)
{
  (void)st;
  struct env e;
  env_init(&e);
  struct gw_spool_entry ent[8];
  size_t n = make_entries(&e, 3, 40000, ent);
  assert_int_equal(n, 3);

  /* 1. Requests are cut by size: 3 entries of ~40 KB with a 64 KiB cap are 3 requests; the second
   * answers 503 with Retry-After: 2, so the first is done and the retry starts at the second. */
  struct script s1[] = {{.status = 200}, {.status = 503, .retry_after = "2"}, {.status = 200}};
  http_start(s1, 3);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u/base/", H.port);
  struct gw_conf_exporter c;
  conf_for(&c, url);
  c.max_request_bytes = 64 * 1024;
  struct gw_export_stats stats;
  memset(&stats, 0, sizeof stats);
  struct gw_export_setup setup = {&gw_exporter_otlp, &c, &stats};
  struct gw_err err = {0};
  void *x = gw_export_create(&setup, &err);
  assert_non_null(x);
  struct gw_sink_outcome out;
  memset(&out, 0, sizeof out);
  assert_int_equal(gw_export_sink_ops.send(x, ent, n, &out), GW_SINK_RETRY);
  assert_int_equal(out.done, 1);
  assert_int_equal(out.retry_after_ms, 2000);
  assert_int_equal(out.delivered, 1);
  assert_int_equal(H.nseen, 2);
  assert_string_equal(H.seen[0].url, "/base/v1/traces");
  assert_string_equal(H.seen[0].encoding, "gzip");
  assert_string_equal(H.seen[0].ctype, "application/x-protobuf");
  size_t plen;
  uint8_t *plain = gunzip(H.seen[0].body, H.seen[0].len, &plen);
  GwTraceRequest *r = unpack(plain, plen);
  assert_non_null(find_span(r, "0000000000000001"));
  opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(r, NULL);
  free(plain);
  assert_int_equal(atomic_load(&stats.sent[GW_XS_TRACES]), 1);
  assert_int_equal(atomic_load(&stats.retried[GW_XS_TRACES]), 1);
  assert_int_equal(atomic_load(&stats.requests[GW_XR_RETRY]), 1);
  assert_int_equal(atomic_load(&stats.up), 0);
  /* the retry, as the sink loop does it: from entry 1 on */
  memset(&out, 0, sizeof out);
  assert_int_equal(gw_export_sink_ops.send(x, ent + 1, 2, &out), GW_SINK_OK);
  assert_int_equal(out.delivered, 2);
  assert_int_equal(atomic_load(&stats.sent[GW_XS_TRACES]), 3);
  assert_int_equal(atomic_load(&stats.up), 1);
  gw_export_sink_ops.destroy(x);
  http_stop();

  /* 2. 400 on the first request: dropped and counted, the next one still goes; partial_success counted. */
  GwTraceResponse resp;
  GwTracePartial ps;
  gw_pb_trace_response_init(&resp);
  gw_pb_trace_partial_init(&ps);
  ps.rejected_spans = 1;
  ps.error_message = (char *)"one span refused";
  resp.partial_success = &ps;
  uint8_t pbuf[128];
  size_t pn = gw_pb_trace_response_pack(&resp, pbuf);
  uint8_t sbuf[256];
  size_t sn = pack_status(sbuf, "bad request: resourceSpans[0]", -1, 0);
  struct script s2[] = {{.status = 400, .body = sbuf, .body_len = sn, .ctype = "application/x-protobuf"},
                        {.status = 200, .body = pbuf, .body_len = pn}};
  http_start(s2, 2);
  snprintf(url, sizeof url, "http://127.0.0.1:%u", H.port);
  conf_for(&c, url);
  c.max_request_bytes = 64 * 1024;
  c.gzip = false;
  memset(&stats, 0, sizeof stats);
  x = gw_export_create(&setup, &err);
  memset(&out, 0, sizeof out);
  assert_int_equal(gw_export_sink_ops.send(x, ent, 2, &out), GW_SINK_DROP);
  assert_non_null(strstr(out.error, "HTTP 400"));
  assert_non_null(strstr(out.error, "bad request: resourceSpans[0]")); /* the server's Status message */
  assert_int_equal(atomic_load(&stats.dropped[GW_XS_TRACES][GW_XD_REJECTED]), 1);
  assert_int_equal(atomic_load(&stats.dropped[GW_XS_TRACES][GW_XD_PARTIAL]), 1);
  assert_int_equal(atomic_load(&stats.sent[GW_XS_TRACES]), 0);
  assert_int_equal(atomic_load(&stats.failed[GW_XS_TRACES]), 1);
  assert_int_equal(H.nseen, 2);
  assert_string_equal(H.seen[1].encoding, ""); /* gzip off */
  gw_export_sink_ops.destroy(x);
  http_stop();

  /* 3. Langfuse: its path, Basic auth of public:secret exactly, the ingestion version; its JSON answer is
   * not read as OTLP. */
  struct script s3[] = {{.status = 207, .body = (const uint8_t *)"{\"id\":\"job\"}", .body_len = 12, .ctype = "application/json"}};
  http_start(s3, 1);
  snprintf(url, sizeof url, "http://127.0.0.1:%u", H.port);
  conf_for(&c, url);
  memset(&stats, 0, sizeof stats);
  struct gw_export_setup lsetup = {&gw_exporter_langfuse, &c, &stats};
  x = gw_export_create(&lsetup, &err);
  assert_non_null(x);
  memset(&out, 0, sizeof out);
  assert_int_equal(gw_export_sink_ops.send(x, ent, 1, &out), GW_SINK_OK);
  assert_string_equal(H.seen[0].url, "/api/public/otel/v1/traces");
  assert_string_equal(H.seen[0].auth, "Basic cGstbGYtMTpzay1sZi1zZWNyZXQ="); /* base64("pk-lf-1:sk-lf-secret") */
  assert_string_equal(H.seen[0].version, "4");
  assert_int_equal(atomic_load(&stats.sent[GW_XS_TRACES]), 1);
  gw_export_sink_ops.destroy(x);
  http_stop();

  /* 4. A peer that hangs: the request times out and is retried; at shutdown a request in flight is given
   * up at the deadline instead of running out its timeout. */
  struct script s4[] = {{.status = 200, .delay_ms = 3000}};
  http_start(s4, 1);
  snprintf(url, sizeof url, "http://127.0.0.1:%u", H.port);
  conf_for(&c, url);
  c.timeout_ms = 300;
  memset(&stats, 0, sizeof stats);
  x = gw_export_create(&setup, &err);
  uint64_t t0 = gw_mono_ns();
  memset(&out, 0, sizeof out);
  assert_int_equal(gw_export_sink_ops.send(x, ent, 1, &out), GW_SINK_RETRY);
  uint64_t took = gw_mono_ns() - t0;
  assert_true(took >= 250000000ull && took < 2000000000ull);
  if (!strstr(out.error, "timed out"))
    print_error("%s\n", out.error);
  assert_non_null(strstr(out.error, "timed out")); /* curl: "Operation timed out after ..." */
  gw_export_sink_ops.destroy(x);
  c.timeout_ms = 60000;
  x = gw_export_create(&setup, &err);
  t0 = gw_mono_ns();
  gw_export_sink_ops.stopping(x, t0 + 400000000ull);
  memset(&out, 0, sizeof out);
  assert_int_equal(gw_export_sink_ops.send(x, ent, 1, &out), GW_SINK_RETRY);
  took = gw_mono_ns() - t0;
  assert_true(took < 2000000000ull);
  assert_non_null(strstr(out.error, "given up at shutdown"));
  gw_export_sink_ops.destroy(x);
  http_stop();

  /* 5. Nobody listening: retryable, no answer. */
  conf_for(&c, "http://127.0.0.1:1");
  x = gw_export_create(&setup, &err);
  memset(&out, 0, sizeof out);
  assert_int_equal(gw_export_sink_ops.send(x, ent, 1, &out), GW_SINK_RETRY);
  gw_export_sink_ops.destroy(x);
  env_fini(&e);
}

/* The gRPC transport against the gateway's own OTLP/gRPC receiver: gzip by the channel, the receiver
 * inflates; an unknown method is UNIMPLEMENTED (not retryable). */
static void test_exporter_over_grpc(void **st)
{
  (void)st;
  struct env src, dst;
  env_init(&src);
  env_init(&dst);
  struct gw_spool_entry ent[4];
  size_t n = make_entries(&src, 2, 100, ent);
  assert_int_equal(n, 2);
  /* The receiver listens on a port we pick from a throw-away socket. */
  free(dst.conf->receivers.grpc_addr);
  struct MHD_Daemon *probe = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, on_req, NULL,
                                              MHD_OPTION_END);
  unsigned port = MHD_get_daemon_info(probe, MHD_DAEMON_INFO_BIND_PORT)->port;
  MHD_stop_daemon(probe);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%u", port);
  dst.conf->receivers.grpc_addr = strdup(addr);
  struct gw_err err = {0};
  struct gw_grpc_receiver *rcv = gw_grpc_receiver_start(&dst.p, &err);
  assert_non_null(rcv);

  struct gw_conf_exporter c;
  conf_for(&c, addr);
  c.protocol = (char *)"grpc";
  c.timeout_ms = 10000; /* a first gRPC connect under valgrind on a busy machine can take seconds */
  struct gw_export_stats stats;
  memset(&stats, 0, sizeof stats);
  struct gw_export_setup setup = {&gw_exporter_signoz, &c, &stats};
  c.ingestion_key = (char *)"k";
  void *x = gw_export_create(&setup, &err);
  assert_non_null(x);
  struct gw_sink_outcome out;
  memset(&out, 0, sizeof out);
  assert_int_equal(gw_export_sink_ops.send(x, ent, n, &out), GW_SINK_OK);
  assert_int_equal(out.delivered, 2);
  assert_int_equal(atomic_load(&stats.sent[GW_XS_TRACES]), 2);
  struct gw_spool_entry got[4];
  size_t m = take(&dst, got, 4);
  assert_int_equal(m, 1);
  assert_int_equal(got[0].nspans, 2);
  gw_export_sink_ops.destroy(x);

  /* Logs: a well-formed logs request is taken by the receiver's LogsService ... */
  struct gw_spool_entry logs = ent[0];
  logs.signal = GW_SIGNAL_LOGS;
  logs.otlp = "";
  logs.otlp_len = 0; /* an empty ExportLogsServiceRequest */
  logs.nspans = 1;
  memset(&stats, 0, sizeof stats);
  x = gw_export_create(&setup, &err);
  memset(&out, 0, sizeof out);
  assert_int_equal(gw_export_sink_ops.send(x, &logs, 1, &out), GW_SINK_OK);
  gw_export_sink_ops.destroy(x);
  /* ... and one it cannot decode (trace bytes sent as logs) is INVALID_ARGUMENT: dropped and counted, never
   * retried. */
  logs = ent[0];
  logs.signal = GW_SIGNAL_LOGS;
  memset(&stats, 0, sizeof stats);
  x = gw_export_create(&setup, &err);
  memset(&out, 0, sizeof out);
  assert_int_equal(gw_export_sink_ops.send(x, &logs, 1, &out), GW_SINK_DROP);
  assert_int_equal(atomic_load(&stats.dropped[GW_XS_LOGS][GW_XD_REJECTED]), ent[0].nspans);
  assert_non_null(strstr(out.error, "status 3"));
  gw_export_sink_ops.destroy(x);

  gw_grpc_receiver_stop(rcv);
  env_fini(&src);
  env_fini(&dst);
}

int main(void)
{
  grpc_init();
  gw_normalize_init();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_classify),
    cmocka_unit_test(test_status_and_partial),
    cmocka_unit_test(test_gzip_round_trip),
    cmocka_unit_test(test_payload_pass_through),
    cmocka_unit_test(test_payload_rows_only_entry),
    cmocka_unit_test(test_langfuse_transform),
    cmocka_unit_test(test_langfuse_join),
    cmocka_unit_test(test_langfuse_observation),
    cmocka_unit_test(test_genai_only),
    cmocka_unit_test(test_bad_ids_left_out),
    cmocka_unit_test(test_wire_rewrite_keeps_everything),
    cmocka_unit_test(test_exporter_over_http),
    cmocka_unit_test(test_exporter_over_grpc),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  grpc_shutdown();
  return rc;
}
