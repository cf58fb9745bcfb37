/*
 * test_decode.c: the decode layer: OTLP/JSON and protobuf into the same structs, the nesting limits of
 * both, gzip with its size cap, and UTF-8 repair. Captured SDK fixtures must decode with the spans and
 * ids their manifests list.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <zlib.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_decompressBound */
#include <lz4frame.h>
#include <snappy-c.h>
#include <zstd.h>

#include "decode/decode_int.h"

#include "core/metrics.h"
#include "decode/decode.h"
#include "testutil.h"
#include "../pb_equal.h"

static const struct gw_decode_limits LIM = {.max_bytes = 64 << 20, .max_depth = 32};

/* ---- helpers ---- */

static gw_rc dec_json(struct gw_arena *a, const char *json, GwTraceRequest **req, struct gw_err *err)
{
  return gw_decode_traces(a, GW_ENC_JSON, json, strlen(json), &LIM, req, err);
}

static uint8_t *pack(const GwTraceRequest *req, size_t *len)
{
  *len = gw_pb_trace_request_size(req);
  uint8_t *buf = malloc(*len ? *len : 1);
  assert_int_equal(gw_pb_trace_request_pack(req, buf), *len);
  return buf;
}

static void hex2bin(const char *hex, uint8_t *out, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
    out[i] = (uint8_t)v;
  }
}

static size_t count_spans(const GwTraceRequest *req)
{
  size_t n = 0;
  for (size_t i = 0; i < req->n_resource_spans; i++)
    for (size_t j = 0; j < req->resource_spans[i]->n_scope_spans; j++)
      n += req->resource_spans[i]->scope_spans[j]->n_spans;
  return n;
}

static GwSpan *first_span(const GwTraceRequest *req)
{
  assert_true(req->n_resource_spans >= 1);
  assert_true(req->resource_spans[0]->n_scope_spans >= 1);
  assert_true(req->resource_spans[0]->scope_spans[0]->n_spans >= 1);
  return req->resource_spans[0]->scope_spans[0]->spans[0];
}

static bool has_span(const GwTraceRequest *req, const uint8_t tid[16], const uint8_t sid[8])
{
  for (size_t i = 0; i < req->n_resource_spans; i++)
    for (size_t j = 0; j < req->resource_spans[i]->n_scope_spans; j++) {
      GwScopeSpans *ss = req->resource_spans[i]->scope_spans[j];
      for (size_t k = 0; k < ss->n_spans; k++) {
        GwSpan *s = ss->spans[k];
        if (s->trace_id.len == 16 && s->span_id.len == 8 && !memcmp(s->trace_id.data, tid, 16) &&
            !memcmp(s->span_id.data, sid, 8))
          return true;
      }
    }
  return false;
}

/* in compressed by zlib (malloc'd): wbits 15 the zlib format, 15 + 16 gzip (with header h's fields when not
 * NULL). */
static uint8_t *zcomp(const void *in, size_t n, int level, int strategy, int wbits, gz_header *h, size_t *out_len)
{
  z_stream zs = {0};
  assert_int_equal(deflateInit2(&zs, level, Z_DEFLATED, wbits, 8, strategy), Z_OK);
  if (h)
    assert_int_equal(deflateSetHeader(&zs, h), Z_OK);
  size_t cap = deflateBound(&zs, n) + 64;
  uint8_t *out = malloc(cap);
  zs.next_in = (Bytef *)in;
  zs.avail_in = (uInt)n;
  zs.next_out = out;
  zs.avail_out = (uInt)cap;
  assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
  *out_len = zs.total_out;
  deflateEnd(&zs);
  return out;
}

/* A gzip member of in (malloc'd). */
static uint8_t *gz(const void *in, size_t n, size_t *out_len)
{
  return zcomp(in, n, 6, Z_DEFAULT_STRATEGY, 15 + 16, NULL, out_len);
}

/* n bytes of letters that compress about as OTLP does (malloc'd). */
static char *letters(size_t n)
{
  char *t = malloc(n);
  for (size_t i = 0; i < n; i++)
    t[i] = (char)('a' + (i * 2654435761u >> 13) % 26);
  return t;
}

/* A decompression that must have given exactly plain[0, n), NUL-terminated. */
#define assert_decoded(rc, out, out_len, plain, n)                                                           \
  do {                                                                                                       \
    assert_int_equal((rc), GW_OK);                                                                           \
    assert_int_equal((out_len), (n));                                                                        \
    assert_memory_equal((out), (plain), (n));                                                                \
    assert_int_equal(((const char *)(out))[n], 0);                                                           \
  } while (0)

/* gw_inflate with only the size cap (no ratio cap). */
static gw_rc inflate_max(struct gw_arena *a, const void *in, size_t n, size_t max, void **out, size_t *out_len,
                         struct gw_err *err)
{
  struct gw_decode_limits lim = {.max_bytes = max, .max_depth = 32};
  return gw_inflate(a, in, n, &lim, out, out_len, err);
}

/* Reverse builder for hand-made protobuf: bytes are prepended, so nesting is built inside out. */
struct rb {
  uint8_t *buf;
  size_t cap, pos; /* data is buf[pos..cap) */
};

static void rb_init(struct rb *b, size_t cap)
{
  b->buf = malloc(cap);
  b->cap = cap;
  b->pos = cap;
}

static void rb_prepend(struct rb *b, const void *p, size_t n)
{
  assert_true(b->pos >= n);
  b->pos -= n;
  memcpy(b->buf + b->pos, p, n);
}

static void rb_varint(struct rb *b, uint64_t v)
{
  uint8_t tmp[10];
  size_t n = 0;
  do {
    tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v);
  rb_prepend(b, tmp, n);
}

/* Make the bytes [pos, end_mark) the body of length-delimited field `field`. */
static void rb_wrap(struct rb *b, size_t end_mark, uint32_t field)
{
  rb_varint(b, end_mark - b->pos);
  rb_varint(b, (uint64_t)field << 3 | 2);
}

static size_t rb_len(const struct rb *b) { return b->cap - b->pos; }
static const uint8_t *rb_data(const struct rb *b) { return b->buf + b->pos; }

/* A trace request whose single span carries one attribute whose value nests `depth` AnyValues, via
 * ArrayValue (kvlist false) or KeyValueList (kvlist true). */
static void pb_deep_request(struct rb *b, uint32_t depth, bool kvlist)
{
  rb_init(b, (size_t)depth * 32 + 256);
  size_t end = b->cap;
  rb_prepend(b, "x", 1); /* innermost AnyValue { string_value: "x" } */
  rb_wrap(b, end, 1);
  for (uint32_t d = 1; d < depth; d++) {
    if (kvlist) {
      rb_wrap(b, end, 2);        /* KeyValue.value */
      rb_prepend(b, "k", 1);
      rb_varint(b, 1);
      rb_varint(b, 1 << 3 | 2);  /* KeyValue.key */
      rb_wrap(b, end, 1);        /* KeyValueList.values */
      rb_wrap(b, end, 6);        /* AnyValue.kvlist_value */
    } else {
      rb_wrap(b, end, 1); /* ArrayValue.values */
      rb_wrap(b, end, 5); /* AnyValue.array_value */
    }
  }
  rb_wrap(b, end, 2); /* KeyValue.value */
  rb_prepend(b, "k", 1);
  rb_varint(b, 1);
  rb_varint(b, 1 << 3 | 2);
  rb_wrap(b, end, 9); /* Span.attributes */
  rb_wrap(b, end, 2); /* ScopeSpans.spans */
  rb_wrap(b, end, 2); /* ResourceSpans.scope_spans */
  rb_wrap(b, end, 1); /* request.resource_spans */
}

/* The same shape in OTLP/JSON (malloc'd). */
static char *json_deep_request(uint32_t depth, bool kvlist)
{
  size_t cap = (size_t)depth * 64 + 512, n = 0;
  char *s = malloc(cap);
  n += (size_t)sprintf(s + n, "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"attributes\":[{\"key\":\"k\","
                              "\"value\":");
  for (uint32_t d = 1; d < depth; d++)
    n += (size_t)sprintf(s + n, kvlist ? "{\"kvlistValue\":{\"values\":[{\"key\":\"k\",\"value\":" : "{\"arrayValue\":{\"values\":[");
  n += (size_t)sprintf(s + n, "{\"stringValue\":\"x\"}");
  for (uint32_t d = 1; d < depth; d++)
    n += (size_t)sprintf(s + n, kvlist ? "}]}}" : "]}}");
  n += (size_t)sprintf(s + n, "}]}]}]}]}");
  assert_true(n < cap);
  return s;
}

/* ---- fixtures ---- */

static void check_fixture(const char *file, const char *manifest)
{
  size_t len;
  char *body = tu_read_file(file, &len);
  char path[512];
  snprintf(path, sizeof path, "sdk/%s", manifest);
  char *mtext = tu_read_file(path, NULL);
  struct json_object *m = json_tokener_parse(mtext);
  assert_non_null(m);
  bool json = strstr(file, ".json") != NULL;

  struct gw_arena *a = gw_arena_create(0);
  GwTraceRequest *req;
  struct gw_err err = {0};
  gw_rc rc = gw_decode_traces(a, json ? GW_ENC_JSON : GW_ENC_PROTOBUF, body, len, &LIM, &req, &err);
  if (rc)
    fail_msg("%s: %s", file, err.msg);

  struct json_object *exp, *spans, *calls;
  assert_true(json_object_object_get_ex(m, "export", &exp));
  assert_true(json_object_object_get_ex(exp, "spans_exported", &spans));
  assert_int_equal(count_spans(req), json_object_get_int(spans));

  assert_true(json_object_object_get_ex(m, "calls", &calls));
  size_t checked = 0;
  for (size_t i = 0; i < json_object_array_length(calls); i++) {
    struct json_object *call = json_object_array_get_idx(calls, i), *v, *tid, *sid;
    if (!json_object_object_get_ex(call, "expect_span_exported", &v) || !json_object_get_boolean(v))
      continue;
    assert_true(json_object_object_get_ex(call, "trace_id", &tid));
    assert_true(json_object_object_get_ex(call, "span_id", &sid));
    uint8_t t[16], s[8];
    hex2bin(json_object_get_string(tid), t, 16);
    hex2bin(json_object_get_string(sid), s, 8);
    if (!has_span(req, t, s))
      fail_msg("%s: call %zu span %s not decoded", file, i, json_object_get_string(sid));
    checked++;
  }
  assert_true(checked > 0);

  json_object_put(m);
  free(mtext);
  free(body);
  gw_arena_destroy(a);
}

static void test_sdk_fixtures(void **state)
{
  (void)state;
  char *index = tu_read_file("sdk/index.jsonl", NULL);
  size_t n = 0, n_json = 0;
  for (char *line = strtok(index, "\n"); line; line = strtok(NULL, "\n")) {
    struct json_object *e = json_tokener_parse(line), *f, *man;
    assert_non_null(e);
    assert_true(json_object_object_get_ex(e, "file", &f));
    const char *file = json_object_get_string(f);
    if (!strstr(file, "-logs-") && json_object_object_get_ex(e, "manifest", &man)) {
      char path[512];
      snprintf(path, sizeof path, "sdk/%s", file);
      check_fixture(path, json_object_get_string(man));
      n++;
      n_json += strstr(file, ".json") != NULL;
    }
    json_object_put(e);
  }
  free(index);
  assert_true(n >= 9);
  assert_true(n_json >= 3);
}

/* ---- JSON equals protobuf ---- */

static const char *FULL_JSON =
    "{\"resourceSpans\":[{"
    " \"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"svc\"}}],"
    "               \"droppedAttributesCount\":2},"
    " \"schemaUrl\":\"https://opentelemetry.io/schemas/1.30.0\","
    " \"scopeSpans\":[{"
    "  \"scope\":{\"name\":\"lib\",\"version\":\"1.2\",\"attributes\":[{\"key\":\"s\",\"value\":{\"boolValue\":true}}]},"
    "  \"schema_url\":\"u2\","
    "  \"spans\":[{"
    "   \"traceId\":\"5B8EFFF798038103D269B633813FC60C\",\"spanId\":\"eee19b7ec3c1b174\","
    "   \"parentSpanId\":\"eee19b7ec3c1b173\",\"traceState\":\"k=v\",\"flags\":257,"
    "   \"name\":\"chat gpt\",\"kind\":3,\"startTimeUnixNano\":\"1544712660000000000\","
    "   \"endTimeUnixNano\":1544712661000000000,"
    "   \"attributes\":["
    "    {\"key\":\"i\",\"value\":{\"intValue\":\"-42\"}},"
    "    {\"key\":\"d\",\"value\":{\"doubleValue\":0.25}},"
    "    {\"key\":\"b\",\"value\":{\"bytesValue\":\"AQID/w==\"}},"
    "    {\"key\":\"a\",\"value\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"x\"},{\"intValue\":7}]}}},"
    "    {\"key\":\"kv\",\"value\":{\"kvlistValue\":{\"values\":[{\"key\":\"in\",\"value\":{\"stringValue\":\"y\"}}]}}},"
    "    {\"key\":\"empty\",\"value\":{}}"
    "   ],"
    "   \"dropped_attributes_count\":1,"
    "   \"events\":[{\"timeUnixNano\":\"5\",\"name\":\"ev\",\"attributes\":[{\"key\":\"e\",\"value\":{\"stringValue\":\"z\"}}],"
    "              \"droppedAttributesCount\":3}],"
    "   \"droppedEventsCount\":4,"
    "   \"links\":[{\"traceId\":\"00000000000000000000000000000001\",\"spanId\":\"0000000000000002\","
    "             \"traceState\":\"t\",\"attributes\":[],\"droppedAttributesCount\":5,\"flags\":1}],"
    "   \"droppedLinksCount\":6,"
    "   \"status\":{\"code\":2,\"message\":\"boom\"},"
    "   \"unknownField\":{\"ignored\":[1,2,3]}"
    "  }]"
    " }]"
    "}]}";

static GwAnyValue *av_str(GwAnyValue *v, const char *s)
{
  gw_pb_any_value_init(v);
  v->value_case = GW_AV_STRING;
  v->string_value = (char *)s;
  return v;
}

static GwKeyValue *kv(GwKeyValue *k, const char *key, GwAnyValue *v)
{
  gw_pb_key_value_init(k);
  k->key = (char *)key;
  k->value = v;
  return k;
}

static void test_json_equals_protobuf(void **state)
{
  (void)state;
  /* The content of FULL_JSON, built with protobuf-c. */
  uint8_t tid[16] = {0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c};
  uint8_t sid[8] = {0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74}, pid[8] = {0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x73};
  uint8_t ltid[16] = {[15] = 1}, lsid[8] = {[7] = 2}, bytes[4] = {1, 2, 3, 0xff};
  GwAnyValue v_svc, v_s, v_i, v_d, v_b, v_a, v_ax, v_a7, v_kv, v_in, v_empty, v_e;
  GwKeyValue k_svc, k_s, k_i, k_d, k_b, k_a, k_kv, k_in, k_empty, k_e;
  GwResource res;
  gw_pb_resource_init(&res);
  GwKeyValue *res_attrs[] = {kv(&k_svc, "service.name", av_str(&v_svc, "svc"))};
  res.attributes = res_attrs;
  res.n_attributes = 1;
  res.dropped_attributes_count = 2;

  GwScope sc;
  gw_pb_scope_init(&sc);
  sc.name = "lib";
  sc.version = "1.2";
  gw_pb_any_value_init(&v_s);
  v_s.value_case = GW_AV_BOOL;
  v_s.bool_value = 1;
  GwKeyValue *sc_attrs[] = {kv(&k_s, "s", &v_s)};
  sc.attributes = sc_attrs;
  sc.n_attributes = 1;

  gw_pb_any_value_init(&v_i);
  v_i.value_case = GW_AV_INT;
  v_i.int_value = -42;
  gw_pb_any_value_init(&v_d);
  v_d.value_case = GW_AV_DOUBLE;
  v_d.double_value = 0.25;
  gw_pb_any_value_init(&v_b);
  v_b.value_case = GW_AV_BYTES;
  v_b.bytes_value.data = bytes;
  v_b.bytes_value.len = 4;
  GwArrayValue arr;
  gw_pb_array_value_init(&arr);
  gw_pb_any_value_init(&v_a7);
  v_a7.value_case = GW_AV_INT;
  v_a7.int_value = 7;
  GwAnyValue *arr_vals[] = {av_str(&v_ax, "x"), &v_a7};
  arr.values = arr_vals;
  arr.n_values = 2;
  gw_pb_any_value_init(&v_a);
  v_a.value_case = GW_AV_ARRAY;
  v_a.array_value = &arr;
  GwKeyValueList kl;
  gw_pb_kvlist_init(&kl);
  GwKeyValue *kl_vals[] = {kv(&k_in, "in", av_str(&v_in, "y"))};
  kl.values = kl_vals;
  kl.n_values = 1;
  gw_pb_any_value_init(&v_kv);
  v_kv.value_case = GW_AV_KVLIST;
  v_kv.kvlist_value = &kl;
  gw_pb_any_value_init(&v_empty);
  GwKeyValue *span_attrs[] = {kv(&k_i, "i", &v_i),    kv(&k_d, "d", &v_d),   kv(&k_b, "b", &v_b),
                              kv(&k_a, "a", &v_a),    kv(&k_kv, "kv", &v_kv), kv(&k_empty, "empty", &v_empty)};

  GwSpanEvent ev;
  gw_pb_span_event_init(&ev);
  ev.time_unix_nano = 5;
  ev.name = "ev";
  GwKeyValue *ev_attrs[] = {kv(&k_e, "e", av_str(&v_e, "z"))};
  ev.attributes = ev_attrs;
  ev.n_attributes = 1;
  ev.dropped_attributes_count = 3;
  GwSpanEvent *evs[] = {&ev};

  GwSpanLink ln;
  gw_pb_span_link_init(&ln);
  ln.trace_id = (ProtobufCBinaryData){16, ltid};
  ln.span_id = (ProtobufCBinaryData){8, lsid};
  ln.trace_state = "t";
  ln.dropped_attributes_count = 5;
  ln.flags = 1;
  GwSpanLink *lns[] = {&ln};

  GwStatus st;
  gw_pb_status_init(&st);
  st.code = GW_SPAN_STATUS_ERROR;
  st.message = "boom";

  GwSpan sp;
  gw_pb_span_init(&sp);
  sp.trace_id = (ProtobufCBinaryData){16, tid};
  sp.span_id = (ProtobufCBinaryData){8, sid};
  sp.parent_span_id = (ProtobufCBinaryData){8, pid};
  sp.trace_state = "k=v";
  sp.flags = 257;
  sp.name = "chat gpt";
  sp.kind = 3;
  sp.start_time_unix_nano = 1544712660000000000ull;
  sp.end_time_unix_nano = 1544712661000000000ull;
  sp.attributes = span_attrs;
  sp.n_attributes = 6;
  sp.dropped_attributes_count = 1;
  sp.events = evs;
  sp.n_events = 1;
  sp.dropped_events_count = 4;
  sp.links = lns;
  sp.n_links = 1;
  sp.dropped_links_count = 6;
  sp.status = &st;
  GwSpan *sps[] = {&sp};

  GwScopeSpans ss;
  gw_pb_scope_spans_init(&ss);
  ss.scope = &sc;
  ss.schema_url = "u2";
  ss.spans = sps;
  ss.n_spans = 1;
  GwScopeSpans *sss[] = {&ss};
  GwResourceSpans rs;
  gw_pb_resource_spans_init(&rs);
  rs.resource = &res;
  rs.schema_url = "https://opentelemetry.io/schemas/1.30.0";
  rs.scope_spans = sss;
  rs.n_scope_spans = 1;
  GwResourceSpans *rss[] = {&rs};
  GwTraceRequest want;
  gw_pb_trace_request_init(&want);
  want.resource_spans = rss;
  want.n_resource_spans = 1;

  size_t want_len, got_len, rt_len;
  uint8_t *want_buf = pack(&want, &want_len);

  struct gw_arena *a = gw_arena_create(0);
  GwTraceRequest *got, *rt;
  struct gw_err err = {0};
  if (dec_json(a, FULL_JSON, &got, &err))
    fail_msg("%s", err.msg);
  uint8_t *got_buf = pack(got, &got_len);
  assert_int_equal(got_len, want_len);
  assert_memory_equal(got_buf, want_buf, want_len);

  /* And the binary path gives the same request back. */
  assert_int_equal(gw_decode_traces(a, GW_ENC_PROTOBUF, want_buf, want_len, &LIM, &rt, &err), GW_OK);
  uint8_t *rt_buf = pack(rt, &rt_len);
  assert_int_equal(rt_len, want_len);
  assert_memory_equal(rt_buf, want_buf, want_len);

  free(want_buf);
  free(got_buf);
  free(rt_buf);
  gw_arena_destroy(a);
}

/* ---- JSON scalars ---- */

#define ONE_ATTR(value) \
  "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"attributes\":[{\"key\":\"k\",\"value\":" value "}]}]}]}]}"

static void test_json_int_value(void **state)
{
  (void)state;
  static const struct {
    const char *json;
    int64_t want;
  } cases[] = {
      {ONE_ATTR("{\"intValue\":43739}"), 43739},
      {ONE_ATTR("{\"intValue\":\"43739\"}"), 43739},
      {ONE_ATTR("{\"intValue\":-7}"), -7},
      {ONE_ATTR("{\"intValue\":\"-7\"}"), -7},
      {ONE_ATTR("{\"intValue\":\"9223372036854775807\"}"), INT64_MAX},
      {ONE_ATTR("{\"intValue\":-9223372036854775808}"), INT64_MIN},
      {ONE_ATTR("{\"intValue\":1e3}"), 1000},
      {ONE_ATTR("{\"int_value\":5}"), 5},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct gw_arena *a = gw_arena_create(0);
    GwTraceRequest *req;
    struct gw_err err = {0};
    if (dec_json(a, cases[i].json, &req, &err))
      fail_msg("case %zu: %s", i, err.msg);
    GwAnyValue *v = first_span(req)->attributes[0]->value;
    assert_int_equal(v->value_case, GW_AV_INT);
    assert_true(v->int_value == cases[i].want);
    gw_arena_destroy(a);
  }
}

static void test_json_other_values(void **state)
{
  (void)state;
  struct gw_arena *a = gw_arena_create(0);
  GwTraceRequest *req;
  struct gw_err err = {0};
  const char *json = "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{"
                     "\"startTimeUnixNano\":1795423010637000000,\"endTimeUnixNano\":\"18446744073709551615\","
                     "\"attributes\":[{\"key\":\"n\",\"value\":{\"doubleValue\":\"NaN\"}},"
                     "{\"key\":\"i\",\"value\":{\"doubleValue\":3}},"
                     "{\"key\":\"u\",\"value\":{\"bytesValue\":\"-_8\"}},"
                     "{\"key\":\"nv\"},{\"key\":\"nl\",\"value\":null}],"
                     "\"status\":null}]}]}]}";
  if (dec_json(a, json, &req, &err))
    fail_msg("%s", err.msg);
  GwSpan *s = first_span(req);
  assert_true(s->start_time_unix_nano == 1795423010637000000ull);
  assert_true(s->end_time_unix_nano == UINT64_MAX);
  assert_true(s->attributes[0]->value->double_value != s->attributes[0]->value->double_value);
  assert_true(s->attributes[1]->value->double_value == 3.0);
  assert_int_equal(s->attributes[2]->value->bytes_value.len, 2);
  assert_memory_equal(s->attributes[2]->value->bytes_value.data, "\xfb\xff", 2);
  assert_null(s->attributes[3]->value);
  assert_null(s->attributes[4]->value);
  assert_null(s->status);
  gw_arena_destroy(a);
}

static void test_json_ids(void **state)
{
  (void)state;
  struct gw_arena *a = gw_arena_create(0);
  GwTraceRequest *req;
  struct gw_err err = {0};
  const char *json = "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"5B8EFFF798038103D269B633813FC60C\","
                     "\"spanId\":\"EEE19b7ec3c1b174\",\"parentSpanId\":\"\"}]}]}]}";
  if (dec_json(a, json, &req, &err))
    fail_msg("%s", err.msg);
  GwSpan *s = first_span(req);
  assert_int_equal(s->trace_id.len, 16);
  assert_memory_equal(s->trace_id.data, "\x5b\x8e\xff\xf7\x98\x03\x81\x03\xd2\x69\xb6\x33\x81\x3f\xc6\x0c", 16);
  assert_int_equal(s->span_id.len, 8);
  assert_memory_equal(s->span_id.data, "\xee\xe1\x9b\x7e\xc3\xc1\xb1\x74", 8);
  assert_int_equal(s->parent_span_id.len, 0);
  gw_arena_destroy(a);
}

/* Hex ids are read 16 digits a step where the CPU allows, the rest (and any block holding a non-digit) a
 * digit pair at a time: every printable byte at every place of a trace id, and ids of every even length up
 * to 48 digits in mixed case, against the digits' values taken one by one. */
static int ref_hexval(int c)
{
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static void hex_id_case(const char *id, size_t n)
{
  char json[256];
  snprintf(json, sizeof json, "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"%.*s\"}]}]}]}", (int)n,
           id);
  bool valid = true;
  unsigned char want[32];
  for (size_t i = 0; i < n; i += 2) {
    int hi = ref_hexval((unsigned char)id[i]), lo = ref_hexval((unsigned char)id[i + 1]);
    valid &= hi >= 0 && lo >= 0;
    want[i / 2] = hi >= 0 && lo >= 0 ? (unsigned char)(hi << 4 | lo) : 0;
  }
  struct gw_arena *a = gw_arena_create(0);
  GwTraceRequest *req;
  struct gw_err err = {0};
  gw_rc rc = dec_json(a, json, &req, &err);
  if (!valid) {
    if (rc != GW_ERR(DECODE) || strcmp(err.msg, "resourceSpans[0].scopeSpans[0].spans[0].traceId: not hex"))
      fail_msg("\"%.*s\": rc %d \"%s\", want not hex", (int)n, id, rc, err.msg);
  } else {
    if (rc)
      fail_msg("\"%.*s\": %s", (int)n, id, err.msg);
    GwSpan *s = first_span(req);
    assert_int_equal(s->trace_id.len, n / 2);
    if (n)
      assert_memory_equal(s->trace_id.data, want, n / 2);
  }
  gw_arena_destroy(a);
}

static void test_json_hex_ids_every_byte(void **state)
{
  (void)state;
  const char *base = "5B8EFFF798038103d269b633813fc60c";
  char id[49];
  for (size_t at = 0; at < 32; at++)
    for (int c = 0x20; c < 0x7f; c++) {
      if (c == '"' || c == '\\')
        continue;
      memcpy(id, base, 32);
      id[at] = (char)c;
      hex_id_case(id, 32);
    }
  uint64_t seed = 42;
  static const char digits[] = "0123456789abcdefABCDEF";
  for (size_t n = 0; n <= 48; n += 2)
    for (int round = 0; round < 20; round++) {
      for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        id[i] = digits[(seed >> 33) % 22];
      }
      hex_id_case(id, n);
      if (n) { /* and one non-digit at a random place */
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        id[(seed >> 33) % n] = 'g';
        hex_id_case(id, n);
      }
    }
}

#define SPANS(x) "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":" x "}]}]}"
#define SPAN_PATH "resourceSpans[0].scopeSpans[0].spans"

/* Bad input: the code and the exact message (or its prefix, for json-c's wording). */
static void test_json_errors(void **state)
{
  (void)state;
  static const struct {
    const char *json;
    gw_rc rc;
    const char *msg;
  } cases[] = {
      {SPANS("[{},{},{},{\"traceId\":\"5B8EFFF798038103D269B633813FC6ZZ\"}]"), GW_ERR(DECODE),
       SPAN_PATH "[3].traceId: not hex"},
      {SPANS("[{\"spanId\":\"abc\"}]"), GW_ERR(DECODE), SPAN_PATH "[0].spanId: not hex (odd length)"},
      {SPANS("[{\"spanId\":12}]"), GW_ERR(DECODE), SPAN_PATH "[0].spanId: want a hex string"},
      {SPANS("[{\"links\":[{\"traceId\":\"0g\"}]}]"), GW_ERR(DECODE), SPAN_PATH "[0].links[0].traceId: not hex"},
      {SPANS("{\"name\":\"x\"}"), GW_ERR(DECODE), SPAN_PATH ": want an array"},
      {SPANS("[\"x\"]"), GW_ERR(DECODE), SPAN_PATH "[0]: want an object"},
      {SPANS("[{\"name\":5}]"), GW_ERR(DECODE), SPAN_PATH "[0].name: want a string"},
      {SPANS("[{\"kind\":\"CLIENT\"}]"), GW_ERR(DECODE), SPAN_PATH "[0].kind: not a decimal integer or SpanKind name"},
      {SPANS("[{\"startTimeUnixNano\":\"12a\"}]"), GW_ERR(DECODE), SPAN_PATH "[0].startTimeUnixNano: not a decimal integer"},
      {SPANS("[{\"startTimeUnixNano\":-1}]"), GW_ERR(DECODE), SPAN_PATH "[0].startTimeUnixNano: negative"},
      {SPANS("[{\"flags\":4294967296}]"), GW_ERR(DECODE), SPAN_PATH "[0].flags: out of range"},
      {SPANS("[{\"status\":[]}]"), GW_ERR(DECODE), SPAN_PATH "[0].status: want an object"},
      {SPANS("[{\"attributes\":[{\"key\":\"k\",\"value\":{\"boolValue\":1}}]}]"), GW_ERR(DECODE),
       SPAN_PATH "[0].attributes[0].value.boolValue: want a boolean"},
      {SPANS("[{\"attributes\":[{\"key\":\"k\",\"value\":{\"intValue\":\"9223372036854775808\"}}]}]"),
       GW_ERR(DECODE), SPAN_PATH "[0].attributes[0].value.intValue: out of range"},
      {SPANS("[{\"attributes\":[{\"key\":\"k\",\"value\":{\"intValue\":1.5}}]}]"), GW_ERR(DECODE),
       SPAN_PATH "[0].attributes[0].value.intValue: not an integer"},
      {SPANS("[{\"attributes\":[{\"key\":\"k\",\"value\":{\"bytesValue\":\"a*==\"}}]}]"), GW_ERR(DECODE),
       SPAN_PATH "[0].attributes[0].value.bytesValue: not base64"},
      {SPANS("[{\"attributes\":[{\"key\":\"k\",\"value\":{\"arrayValue\":{\"values\":[{\"kvlistValue\":{\"values\":7}}]}}}]}]"),
       GW_ERR(DECODE), SPAN_PATH "[0].attributes[0].value.arrayValue.values[0].kvlistValue.values: want an array"},
      {"{\"resourceSpans\":{}}", GW_ERR(DECODE), "resourceSpans: want an array"},
      {"[]", GW_ERR(DECODE), "JSON: the request is not an object"},
      {"{\"resourceSpans\":[]} x", GW_ERR(DECODE), "JSON: unexpected data after the request at offset 21"},
      {"{\"resourceSpans\":[{\"scopeSpans\":[", GW_ERR(DECODE), "JSON: unexpected end of input at offset 33"},
      {"", GW_ERR(DECODE), "JSON: unexpected end of input at offset 0"},
      {"{\"resourceSpans\":[}", GW_ERR(DECODE), "JSON: "},
      {"\x01\x02garbage", GW_ERR(DECODE), "JSON: "},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct gw_arena *a = gw_arena_create(0);
    GwTraceRequest *req = (GwTraceRequest *)1;
    struct gw_err err = {0};
    gw_rc rc = dec_json(a, cases[i].json, &req, &err);
    if (rc != cases[i].rc || strncmp(err.msg, cases[i].msg, strlen(cases[i].msg)))
      fail_msg("case %zu: rc %d msg \"%s\", want \"%s\"", i, rc, err.msg, cases[i].msg);
    assert_int_equal(err.rc, cases[i].rc);
    assert_null(req);
    gw_arena_destroy(a);
  }
}

/* json-c's own wording for garbage, with the offset where it stopped. */
static void test_json_garbage_offset(void **state)
{
  (void)state;
  struct gw_arena *a = gw_arena_create(0);
  GwTraceRequest *req;
  struct gw_err err = {0};
  assert_int_equal(dec_json(a, "{\"a\":1,,}", &req, &err), GW_ERR(DECODE));
  assert_non_null(strstr(err.msg, "at offset 7"));
  gw_arena_destroy(a);
}

/* ---- OTLP/JSON cases and fixtures with stored expected results (issue 12) ---- */

struct jcase {
  bool logs;
  char *body;
  size_t len;
};

/* The cases of tests/fixtures/json/<file> (see its header): *n of them, malloc'd. */
static struct jcase *load_cases(const char *file, size_t *n)
{
  char path[256];
  snprintf(path, sizeof path, "json/%s", file);
  char *text = tu_read_file(path, NULL);
  size_t cap = 1024;
  struct jcase *cs = malloc(cap * sizeof *cs);
  *n = 0;
  for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    if (l[0] == '#')
      continue;
    assert_true((l[0] == 'T' || l[0] == 'L') && l[1] == '\t');
    assert_true(*n < cap);
    struct jcase *c = &cs[(*n)++];
    c->logs = l[0] == 'L';
    c->body = malloc(strlen(l));
    size_t o = 0;
    for (const char *p = l + 2; *p; p++) {
      unsigned v;
      if (*p == '^') {
        assert_int_equal(sscanf(p + 1, "%2x", &v), 1);
        c->body[o++] = (char)v;
        p += 2;
      } else {
        c->body[o++] = *p;
      }
    }
    c->len = o;
  }
  free(text);
  return cs;
}

static void free_cases(struct jcase *cs, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free(cs[i].body);
  free(cs);
}

typedef gw_rc (*json_traces_fn)(struct gw_arena *, const char *, size_t, const struct gw_decode_limits *,
                                GwTraceRequest **, struct gw_err *);
typedef gw_rc (*json_logs_fn)(struct gw_arena *, const char *, size_t, const struct gw_decode_limits *,
                              GwLogsRequest **, struct gw_err *);

/* What a decoder makes of a body: "ok <protobuf in hex>" or "<ERROR_NAME> <message>", malloc'd. */
static char *outcome(json_traces_fn traces, json_logs_fn logs, bool is_logs, const char *body, size_t len)
{
  struct gw_arena *a = gw_arena_create(0);
  struct gw_err err = {0};
  void *req = NULL;
  gw_rc rc = is_logs ? logs(a, body, len, &LIM, (GwLogsRequest **)&req, &err)
                     : traces(a, body, len, &LIM, (GwTraceRequest **)&req, &err);
  char *out;
  if (rc) {
    assert_null(req);
    assert_int_equal(err.rc, rc);
    assert_true(err.msg[0] != 0);
    size_t n = strlen(err.msg) + 32;
    out = malloc(n);
    snprintf(out, n, "%s %s", gw_err_name(rc), err.msg);
  } else {
    size_t n = is_logs ? gw_pb_logs_request_size(req) : gw_pb_trace_request_size(req);
    uint8_t *pb = malloc(n + 1);
    if (is_logs)
      gw_pb_logs_request_pack(req, pb);
    else
      gw_pb_trace_request_pack(req, pb);
    out = malloc(2 * n + 4);
    memcpy(out, "ok ", 3);
    gw_hex(out + 3, pb, n);
    free(pb);
  }
  gw_arena_destroy(a);
  return out;
}

static bool update_expected(void) { return getenv("GW_UPDATE_EXPECTED") && atoi(getenv("GW_UPDATE_EXPECTED")); }

static FILE *open_fixture(const char *path, const char *mode)
{
  char full[512];
  snprintf(full, sizeof full, "%s/%s", GW_FIXTURES, path);
  FILE *f = fopen(full, mode);
  if (!f)
    fail_msg("cannot open %s", full);
  return f;
}

/* Every case of file decodes to the outcome on the same line of its .expected file: the protobuf bytes
 * of a success, the error code and the whole message of a failure. */
static void check_cases(const char *file)
{
  size_t n;
  struct jcase *cs = load_cases(file, &n);
  char exp_path[256];
  snprintf(exp_path, sizeof exp_path, "json/%.*s.expected", (int)(strlen(file) - 4), file);
  if (update_expected()) {
    FILE *f = open_fixture(exp_path, "w");
    for (size_t i = 0; i < n; i++) {
      char *got = outcome(gw_decode_json_traces, gw_decode_json_logs, cs[i].logs, cs[i].body, cs[i].len);
      fprintf(f, "%s\n", got);
      free(got);
    }
    fclose(f);
  }
  char *text = tu_read_file(exp_path, NULL);
  char *save = NULL, *line = strtok_r(text, "\n", &save);
  for (size_t i = 0; i < n; i++, line = strtok_r(NULL, "\n", &save)) {
    if (!line)
      fail_msg("%s: %zu expected outcomes for %zu cases", exp_path, i, n);
    char *got = outcome(gw_decode_json_traces, gw_decode_json_logs, cs[i].logs, cs[i].body, cs[i].len);
    if (strcmp(got, line))
      fail_msg("%s case %zu (%.*s):\n got  %.300s\n want %.300s", file, i + 1, (int)(cs[i].len > 200 ? 200 : cs[i].len),
               cs[i].body, got, line);
    free(got);
  }
  assert_null(line);
  free(text);
  free_cases(cs, n);
}

/* An OTLP/JSON traces body decoded with the 64-byte string steps (pass 0) and with the byte loops (pass 1):
 * each pass's code, error message, and the string pick takes from the request ("" when it failed; "(null)"
 * for a NULL), malloc'ed. */
static void json_two_ways(const char *body, size_t n, const char *(*pick)(const GwTraceRequest *), gw_rc rc[2],
                          char msg[2][256], char *val[2])
{
  struct gw_decode_limits lim = {.max_bytes = 1 << 20, .max_depth = 16};
  for (int pass = 0; pass < 2; pass++) {
    gw_json_lex_no_avx512 = pass == 1;
    struct gw_arena *a = gw_arena_create(0);
    struct gw_err err = {0};
    GwTraceRequest *req = NULL;
    rc[pass] = gw_decode_traces(a, GW_ENC_JSON, body, n, &lim, &req, &err);
    snprintf(msg[pass], 256, "%s", rc[pass] ? err.msg : "");
    const char *v = rc[pass] ? "" : pick(req);
    val[pass] = strdup(v ? v : "(null)");
    gw_arena_destroy(a);
  }
  gw_json_lex_no_avx512 = false;
}

static const char *first_span_name(const GwTraceRequest *req)
{
  return req->n_resource_spans && req->resource_spans[0]->n_scope_spans && req->resource_spans[0]->scope_spans[0]->n_spans
           ? req->resource_spans[0]->scope_spans[0]->spans[0]->name
           : "";
}

static const char *first_attribute_value(const GwTraceRequest *req)
{
  const GwSpan *sp = req->resource_spans[0]->scope_spans[0]->spans[0];
  assert_int_equal(sp->n_attributes, 1);
  return sp->attributes[0]->value->string_value;
}

/* Strings with escapes, quotes, NUL bytes and a backslash at the very end, of every length to 200 at several
 * offsets, inside an OTLP/JSON span name in either quote: the 64-byte search for a string's end and the
 * 16-byte one give the same outcome (the same name, or the same error at the same offset). */
static void test_json_string_ends(void **state)
{
  (void)state;
  static const char alphabet[] = {'a', 'b', '\\', '\\', '"', '\'', 'n', 'u', '0', '/', ' ', 0};
  uint64_t seed = 0x2545f4914f6cdd1dull;
  char body[512];
  for (int round = 0; round < 6000; round++) {
    size_t len = (size_t)round % 201, pad = (size_t)(round / 201) % 7;
    char q = round % 2 ? '\'' : '"';
    size_t n = (size_t)snprintf(body, sizeof body, "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{%*s\"name\":%c",
                                (int)pad, "", q);
    for (size_t i = 0; i < len; i++) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      unsigned r = (unsigned)(seed >> 40);
      /* mostly letters, escapes in runs now and then, a stray quote or NUL rarely */
      body[n++] = r % 4 ? (r & 0x100 ? 'a' : '\\') : alphabet[(r >> 3) % sizeof alphabet];
    }
    if (round % 5 == 0) {
      body[n++] = q;
      n += (size_t)snprintf(body + n, sizeof body - n, "}]}]}]}");
    } /* else the body ends inside the string */
    gw_rc rc[2];
    char msg[2][256], *name[2];
    json_two_ways(body, n, first_span_name, rc, msg, name);
    if (rc[0] != rc[1] || strcmp(msg[0], msg[1]) || strcmp(name[0], name[1]))
      fail_msg("round %d (%zu bytes): 64-byte search %d \"%s\" \"%s\", 16-byte %d \"%s\" \"%s\"", round, len, rc[0],
               msg[0], name[0], rc[1], msg[1], name[1]);
    free(name[0]);
    free(name[1]);
  }
}

/* String values made of escapes of every kind (the one-byte ones, runs of backslashes, \u escapes and
 * surrogates, invalid ones) and raw UTF-8 bytes (valid, cut short, invalid) among letters, up to 300 bytes
 * at every offset from a 64-byte boundary, as an attribute value: the 64-byte copy and unescape (which
 * also tell an all-ASCII string, left unrepaired) and the byte loops give the same value or the same
 * error. Rounds of valid escapes only must decode; rounds of raw bytes only take the no-escape copy. */
static void test_json_unescape_blocks(void **state)
{
  (void)state;
  static const char *const pieces[] = {"\\\"",       "\\\\",          "\\/",    "\\b",    "\\f",
                                       "\\n",        "\\r",           "\\t",    "\\u00e9", "\\ud83d\\ude00",
                                       "\\ud83d",    "\\x",           "\\u12",  "\\\\\\\\", "\xc3\xa9",
                                       "\xff",       "\xc3",          "\xed\xa0\x80"};
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  static char body[2048];
  for (int round = 0; round < 9000; round++) {
    int mode = round % 3; /* 0: every piece, 1: valid one-byte escapes, 2: raw bytes, no escape */
    size_t n = (size_t)snprintf(body, sizeof body,
                                "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"attributes\":[{\"key\":\"k\","
                                "\"value\":{\"stringValue\":\"%.*s",
                                round % 64, "................................................................");
    size_t want = (size_t)round % 300;
    while (n < sizeof body - 64 && want) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      unsigned r = (unsigned)(seed >> 33);
      if (r % (mode == 2 ? 16 : 3)) {
        body[n++] = (char)('a' + r % 26);
        want--;
        continue;
      }
      size_t np = sizeof pieces / sizeof pieces[0];
      const char *pc = mode == 1 ? pieces[(r >> 4) % 8] : mode == 2 ? pieces[14 + (r >> 4) % 4] : pieces[(r >> 4) % np];
      size_t pl = strlen(pc);
      memcpy(body + n, pc, pl);
      n += pl;
      want = want > pl ? want - pl : 0;
    }
    n += (size_t)snprintf(body + n, sizeof body - n, "\"}}]}]}]}]}");
    gw_rc rc[2];
    char msg[2][256], *got[2];
    json_two_ways(body, n, first_attribute_value, rc, msg, got);
    if (mode && rc[0])
      fail_msg("round %d: refused: %s", round, msg[0]);
    if (rc[0] != rc[1] || strcmp(msg[0], msg[1]) || strcmp(got[0], got[1]))
      fail_msg("round %d: 64-byte steps %d \"%s\" \"%.200s\", byte loops %d \"%s\" \"%.200s\"", round, rc[0],
               msg[0], got[0], rc[1], msg[1], got[1]);
    free(got[0]);
    free(got[1]);
  }
}

static void test_json_cases(void **state)
{
  (void)state;
  check_cases("cases.txt");
  check_cases("cases-changed.txt");
}

/* The OTLP/JSON fixtures: every captured SDK body (tests/fixtures/sdk/index.jsonl) and the hand-written
 * ones of tests/fixtures/json, with the protobuf each must decode to (json/expected/<name>.pb). */
struct jfixture {
  const char *path, *expected;
  bool logs;
};
static const struct jfixture JSON_FIXTURES[] = {
  {"sdk/otel-http-json-1.json", "json/expected/otel-http-json-1.pb", false},
  {"sdk/otel-http-json-logs-1.json", "json/expected/otel-http-json-logs-1.pb", true},
  {"sdk/traceloop-http-json-1.json", "json/expected/traceloop-http-json-1.pb", false},
  {"sdk/openinference-http-json-1.json", "json/expected/openinference-http-json-1.pb", false},
  {"json/traces-all-fields.json", "json/expected/traces-all-fields.pb", false},
  {"json/logs-all-fields.json", "json/expected/logs-all-fields.pb", true},
};

static void test_json_fixtures_expected(void **state)
{
  (void)state;
  /* Every JSON body of the SDK index is in the list above. */
  char *index = tu_read_file("sdk/index.jsonl", NULL);
  size_t listed = 0;
  for (char *save = NULL, *line = strtok_r(index, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    struct json_object *e = json_tokener_parse(line), *f;
    assert_true(json_object_object_get_ex(e, "file", &f));
    const char *file = json_object_get_string(f);
    if (strstr(file, ".json")) {
      bool found = false;
      for (size_t i = 0; i < sizeof JSON_FIXTURES / sizeof JSON_FIXTURES[0]; i++)
        found |= !strcmp(JSON_FIXTURES[i].path + 4, file);
      if (!found)
        fail_msg("sdk/%s has no expected protobuf in JSON_FIXTURES", file);
      listed++;
    }
    json_object_put(e);
  }
  free(index);
  assert_true(listed >= 4);

  for (size_t i = 0; i < sizeof JSON_FIXTURES / sizeof JSON_FIXTURES[0]; i++) {
    const struct jfixture *fx = &JSON_FIXTURES[i];
    size_t len, want_len;
    char *body = tu_read_file(fx->path, &len);
    char *got = outcome(gw_decode_json_traces, gw_decode_json_logs, fx->logs, body, len);
    if (strncmp(got, "ok ", 3))
      fail_msg("%s: %s", fx->path, got);
    if (update_expected()) {
      size_t n = strlen(got + 3) / 2;
      FILE *f = open_fixture(fx->expected, "wb");
      for (size_t k = 0; k < n; k++) {
        unsigned v;
        sscanf(got + 3 + 2 * k, "%2x", &v);
        fputc((int)v, f);
      }
      fclose(f);
    }
    char *want = tu_read_file(fx->expected, &want_len);
    char *want_hex = malloc(2 * want_len + 1);
    gw_hex(want_hex, want, want_len);
    if (strcmp(got + 3, want_hex))
      fail_msg("%s does not decode to %s", fx->path, fx->expected);
    free(want_hex);
    free(want);
    free(got);
    free(body);
  }
}

/* Random edits of every fixture (fixed seed): a few bytes deleted, inserted or replaced, or the body cut.
 * Each edit decodes or fails with a code and a message; none crashes or leaks (valgrind / ASan runs). */
static void test_json_random_edits(void **state)
{
  (void)state;
  static const char ins[] = "{}[],:\"'\\/*0-.eE+nNtTfFiIuU \n\t\x01\xff";
  uint32_t seed = 12;
  size_t ok = 0, failed = 0;
  for (size_t i = 0; i < sizeof JSON_FIXTURES / sizeof JSON_FIXTURES[0]; i++) {
    size_t len;
    char *orig = tu_read_file(JSON_FIXTURES[i].path, &len);
    char *m = malloc(len + 8);
    for (int it = 0; it < 1500; it++) {
      size_t ml = len;
      memcpy(m, orig, len);
      for (int e = 0, edits = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 8) % 3; e < edits; e++) {
        uint32_t r = (seed = seed * 1103515245u + 12345u) >> 8;
        size_t pos = ml ? r % ml : 0;
        char c = ins[(r >> 4) % (sizeof ins - 1)];
        switch ((r >> 12) % 4) {
        case 0:
          if (ml) {
            memmove(m + pos, m + pos + 1, ml - pos - 1);
            ml--;
          }
          break;
        case 1:
          memmove(m + pos + 1, m + pos, ml - pos);
          m[pos] = c;
          ml++;
          break;
        case 2:
          if (ml)
            m[pos] = c;
          break;
        default: ml = pos; break;
        }
      }
      char *got = outcome(gw_decode_json_traces, gw_decode_json_logs, JSON_FIXTURES[i].logs, m, ml);
      if (!strncmp(got, "ok ", 3))
        ok++;
      else
        failed++;
      free(got);
    }
    free(m);
    free(orig);
  }
  /* Both outcomes are common: the edits are neither all harmless nor all fatal. */
  assert_true(ok > 1000 && failed > 1000);
}

/* ---- the OTLP/JSON lexer: escapes, json-c's lenient forms, limits ---- */

/* A span name written as the JSON string literal lit (quotes included) decodes to want. */
static void check_name(const char *lit, const char *want)
{
  char json[512];
  snprintf(json, sizeof json, SPANS("[{\"name\":%s}]"), lit);
  struct gw_arena *a = gw_arena_create(0);
  GwTraceRequest *req;
  struct gw_err err = {0};
  if (dec_json(a, json, &req, &err))
    fail_msg("%s: %s", lit, err.msg);
  if (strcmp(first_span(req)->name, want))
    fail_msg("%s: got \"%s\"", lit, first_span(req)->name);
  gw_arena_destroy(a);
}

static void test_json_escapes(void **state)
{
  (void)state;
  static const struct {
    const char *lit, *want;
  } cases[] = {
      {"\"a\\\"b\"", "a\"b"},
      {"\"a\\\\b\"", "a\\b"},
      {"\"a\\/b\"", "a/b"},
      {"\"\\b\\f\\n\\r\\t\"", "\b\f\n\r\t"},
      {"\"\\u0041\\u00e9\\u20AC\"", "A\xc3\xa9\xe2\x82\xac"},         /* 1, 2 and 3 bytes, hex in any case */
      {"\"\\u07ff\\u0800\\uffff\"", "\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf"}, /* the edges of each length */
      {"\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80"},                      /* a surrogate pair: one code point */
      {"\"\\ud800\\udc00\\udbff\\udfff\"", "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf"},
      {"\"a\\ud83db\"", "a\xef\xbf\xbd" "b"},                          /* a high surrogate alone */
      {"\"a\\ude00b\"", "a\xef\xbf\xbd" "b"},                          /* a low one alone */
      {"\"\\ud83d\"", "\xef\xbf\xbd"},                                 /* a high one at the end */
      {"\"\\ud83d\\u0041\"", "\xef\xbf\xbd" "A"},                      /* high, then not a low one */
      {"\"\\ud83d\\ud83d\\ude00\"", "\xef\xbf\xbd\xf0\x9f\x98\x80"},   /* high, then a pair */
      {"\"\\udc00\\ud83d\"", "\xef\xbf\xbd\xef\xbf\xbd"},
      {"\"\\ud83d\\n\"", "\xef\xbf\xbd\n"},
      {"\"a\\u0000b\\u0000\"", "ab"},                                  /* NUL removed by the UTF-8 repair */
      {"\"raw\ttab\x01\"", "raw\ttab\x01"},                            /* raw control bytes pass */
      {"\"bad\xff\xc3\"", "bad\xef\xbf\xbd\xef\xbf\xbd"},               /* invalid UTF-8 repaired */
      {"'single \"quoted\"'", "single \"quoted\""},
      {"\"\"", ""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    check_name(cases[i].lit, cases[i].want);
  /* Long strings, with an escape at every position of a 16-byte block (the SSE2 scan). */
  char lit[128], want[128];
  for (int pos = 0; pos < 40; pos++) {
    memset(lit, 'x', 60);
    memcpy(lit + 1 + pos, "\\n", 2);
    lit[0] = '"';
    lit[59] = '"';
    lit[60] = 0;
    memset(want, 'x', 57);
    want[pos] = '\n';
    want[57] = 0;
    check_name(lit, want);
  }
}

/* Malformed JSON: a syntax error with the offset and the path being read. */
static void test_json_syntax_errors(void **state)
{
  (void)state;
  static const struct {
    const char *json, *msg;
  } cases[] = {
      {SPANS("[{\"name\":\"a\\xb\"}]"), "JSON: invalid escape in a string at offset 54, in " SPAN_PATH "[0].name"},
      {SPANS("[{\"name\":\"a\\'b\"}]"), "JSON: invalid escape in a string at offset 54, in " SPAN_PATH "[0].name"},
      {SPANS("[{\"name\":\"\\u12G4\"}]"), "JSON: invalid \\u escape (want 4 hex digits) at offset 54, in " SPAN_PATH "[0].name"},
      {SPANS("[{\"name\":\"\\u12\"}]"), "JSON: invalid \\u escape (want 4 hex digits) at offset 54, in " SPAN_PATH "[0].name"},
      {SPANS("[{\"name\":\"\\ud83d\\u12\"}]"), "JSON: invalid \\u escape (want 4 hex digits) at offset 60, in " SPAN_PATH "[0].name"},
      {SPANS("[{\"name\":\"abc"), "JSON: unexpected end of input at offset 60, in " SPAN_PATH "[0].name"},
      {SPANS("[{\"x\":\"a\\"), "JSON: invalid escape in a string at offset 51, in " SPAN_PATH "[0]"},
      {SPANS("[{\"x\":tru}]"), "JSON: invalid literal (want true) at offset 51, in " SPAN_PATH "[0]"},
      {SPANS("[{\"name\":x}]"), "JSON: unexpected character 'x' at offset 51, in " SPAN_PATH "[0].name"},
      {SPANS("[{\"kind\":1-2}]"), "JSON: malformed number at offset 52, in " SPAN_PATH "[0].kind"},
      {SPANS("[{\"kind\":-}]"), "JSON: malformed number at offset 52, in " SPAN_PATH "[0].kind"},
      {SPANS("[{\"x\":[1 2]}]"), "JSON: want ',' or ']' after an array element at offset 51, in " SPAN_PATH "[0]"},
      {SPANS("[{\"x\":1 \"y\":2}]"), "JSON: want ',' or '}' after an object member at offset 50, in " SPAN_PATH "[0]"},
      {SPANS("[{\"x\" 1}]"), "JSON: want ':' after a property name at offset 48, in " SPAN_PATH "[0]"},
      {SPANS("[{x:1}]"), "JSON: want a quoted property name at offset 44, in " SPAN_PATH "[0]"},
      {SPANS("[{,}]"), "JSON: want a quoted property name at offset 44, in " SPAN_PATH "[0]"},
      {SPANS("[,]"), "JSON: unexpected character ',' at offset 43, in " SPAN_PATH "[0]"},
      {SPANS("[{} /x ]"), "JSON: malformed comment (want /* or //) at offset 47, in " SPAN_PATH},
      {"{} /* open", "JSON: unexpected end of input at offset 10"},
      {"{} // no newline", "JSON: unexpected end of input at offset 16"},
      {"{\"a\":1}\x01", "JSON: unexpected data after the request at offset 7"},
      {"\xef\xbb\xbf{}", "JSON: unexpected byte 0xef at offset 0"},
      {"{\"a\":\"x\x01\x00\"}", "JSON: unexpected end of input at offset 8"}, /* strlen stops at the NUL */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct gw_arena *a = gw_arena_create(0);
    GwTraceRequest *req = (GwTraceRequest *)1;
    struct gw_err err = {0};
    gw_rc rc = dec_json(a, cases[i].json, &req, &err);
    if (rc != GW_ERR(DECODE) || strncmp(err.msg, cases[i].msg, strlen(cases[i].msg)))
      fail_msg("case %zu: rc %d \"%s\", want \"%s\"", i, rc, err.msg, cases[i].msg);
    assert_null(req);
    gw_arena_destroy(a);
  }
  /* A NUL byte inside a string, and one between tokens. */
  static const char nul_str[] = "{\"resourceSpans\":[{\"x\":\"a\0b\"}]}", nul_ws[] = "{\"resourceSpans\":\0[]}";
  struct gw_arena *a = gw_arena_create(0);
  GwTraceRequest *req;
  struct gw_err err = {0};
  assert_int_equal(gw_decode_traces(a, GW_ENC_JSON, nul_str, sizeof nul_str - 1, &LIM, &req, &err), GW_ERR(DECODE));
  assert_non_null(strstr(err.msg, "NUL byte in a string at offset 25"));
  assert_int_equal(gw_decode_traces(a, GW_ENC_JSON, nul_ws, sizeof nul_ws - 1, &LIM, &req, &err), GW_ERR(DECODE));
  assert_non_null(strstr(err.msg, "unexpected byte 0x00 at offset 17"));
  gw_arena_destroy(a);
}

/* json-c's non-strict forms, which senders may rely on: all accepted, with the values they mean. */
static void test_json_lenient(void **state)
{
  (void)state;
  const char *json =
      "/* lead */ {'resourceSpans': [ // line comment\n"
      "  {\"scopeSpans\":[{\"spans\":[{\"name\":'n', \"flags\":00257, \"kind\":\"SPAN_KIND_SERVER\",\n"
      "   \"attributes\":[{\"key\":\"t\",\"value\":{\"boolValue\":TRUE}},{\"key\":\"d\",\"value\":{\"doubleValue\":-infinity}},\n"
      "                 {\"key\":\"e\",\"value\":{\"doubleValue\":1.e}},{\"key\":\"n\",\"value\":{\"doubleValue\":NaN},},],\n"
      "   \"status\":{\"code\":\"STATUS_CODE_ERROR\", \"message\":Null},}]}]},\n"
      "]} /* trailing **/ \n";
  struct gw_arena *a = gw_arena_create(0);
  GwTraceRequest *req;
  struct gw_err err = {0};
  if (dec_json(a, json, &req, &err))
    fail_msg("%s", err.msg);
  GwSpan *s = first_span(req);
  assert_string_equal(s->name, "n");
  assert_int_equal(s->flags, 257);
  assert_int_equal(s->kind, 2);
  assert_int_equal(s->n_attributes, 4);
  assert_true(s->attributes[0]->value->bool_value);
  assert_true(isinf(s->attributes[1]->value->double_value) && s->attributes[1]->value->double_value < 0);
  assert_true(s->attributes[2]->value->double_value == 1.0);
  assert_true(isnan(s->attributes[3]->value->double_value));
  assert_int_equal(s->status->code, GW_SPAN_STATUS_ERROR);
  assert_string_equal(s->status->message, "");
  gw_arena_destroy(a);
}

/* Enum names (proto3 JSON, accepted by the Collector) and integers past 64 bits. */
static void test_json_enums_and_big_numbers(void **state)
{
  (void)state;
  struct gw_arena *a = gw_arena_create(0);
  GwTraceRequest *req;
  GwLogsRequest *logs;
  struct gw_err err = {0};
  if (dec_json(a, SPANS("[{\"kind\":\"SPAN_KIND_CONSUMER\",\"status\":{\"code\":\"STATUS_CODE_OK\"}}]"), &req, &err))
    fail_msg("%s", err.msg);
  assert_int_equal(first_span(req)->kind, 5);
  assert_int_equal(first_span(req)->status->code, GW_SPAN_STATUS_OK);
  const char *lj = "{\"resourceLogs\":[{\"scopeLogs\":[{\"logRecords\":[{\"severityNumber\":\"SEVERITY_NUMBER_WARN3\"},"
                   "{\"severity_number\":\"17\"}]}]}]}";
  assert_int_equal(gw_decode_logs(a, GW_ENC_JSON, lj, strlen(lj), &LIM, &logs, &err), GW_OK);
  assert_int_equal(logs->resource_logs[0]->scope_logs[0]->log_records[0]->severity_number, 15);
  assert_int_equal(logs->resource_logs[0]->scope_logs[0]->log_records[1]->severity_number, 17);
  static const struct {
    const char *json, *msg;
  } bad[] = {
      {SPANS("[{\"kind\":\"SPAN_KIND_NOPE\"}]"), SPAN_PATH "[0].kind: not a decimal integer or SpanKind name"},
      {SPANS("[{\"status\":{\"code\":\"OK\"}}]"), SPAN_PATH "[0].status.code: not a decimal integer or StatusCode name"},
      {SPANS("[{\"startTimeUnixNano\":18446744073709551616}]"), SPAN_PATH "[0].startTimeUnixNano: out of range"},
      {ONE_ATTR("{\"intValue\":-9223372036854775809}"), SPAN_PATH "[0].attributes[0].value.intValue: out of range"},
      {ONE_ATTR("{\"intValue\":\"-9223372036854775809\"}"), SPAN_PATH "[0].attributes[0].value.intValue: out of range"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(dec_json(a, bad[i].json, &req, &err), GW_ERR(DECODE));
    if (strcmp(err.msg, bad[i].msg))
      fail_msg("case %zu: \"%s\"", i, err.msg);
  }
  /* The largest of each still fits; a huge integer still makes a double. */
  if (dec_json(a, SPANS("[{\"startTimeUnixNano\":18446744073709551615,\"attributes\":[{\"key\":\"i\",\"value\":"
                        "{\"intValue\":-9223372036854775808}},{\"key\":\"d\",\"value\":{\"doubleValue\":1"
                        "00000000000000000000000000000}}]}]"),
               &req, &err))
    fail_msg("%s", err.msg);
  assert_true(first_span(req)->start_time_unix_nano == UINT64_MAX);
  assert_true(first_span(req)->attributes[0]->value->int_value == INT64_MIN);
  assert_true(first_span(req)->attributes[1]->value->double_value == 1e29);
  gw_arena_destroy(a);
}

/* Many elements (the pointer blocks), unknown members of every kind skipped, keys with escapes, the path
 * cut at 159 characters, and the arena cap met mid-array. */
static void test_json_limits(void **state)
{
  (void)state;
  size_t n = 5000, cap = n * 64 + 256, o = 0;
  char *json = malloc(cap);
  o += (size_t)snprintf(json + o, cap - o, "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"x\":{\"a\":[1,{\"b\":null}],\"c\":'s'},"
                                           "\"attr\\u0069butes\":[");
  for (size_t i = 0; i < n; i++)
    o += (size_t)snprintf(json + o, cap - o, "%s{\"key\":\"k%zu\",\"value\":{\"intValue\":%zu}}", i ? "," : "", i, i);
  o += (size_t)snprintf(json + o, cap - o, "]}]}]}]}");
  struct gw_arena *a = gw_arena_create(0);
  GwTraceRequest *req;
  struct gw_err err = {0};
  if (dec_json(a, json, &req, &err))
    fail_msg("%s", err.msg);
  GwSpan *s = first_span(req);
  assert_int_equal(s->n_attributes, n);
  for (size_t i = 0; i < n; i += 997)
    assert_int_equal(s->attributes[i]->value->int_value, (int64_t)i);
  gw_arena_destroy(a);

  /* the same request in an arena too small for it: TOO_LARGE, no crash */
  a = gw_arena_create(64 * 1024);
  assert_int_equal(dec_json(a, json, &req, &err), GW_ERR(TOO_LARGE));
  assert_string_equal(err.msg, "request needs more memory than the per-request limit");
  gw_arena_destroy(a);
  free(json);

  /* an error 30 levels down: the path is cut with "..." */
  char *deep = json_deep_request(30, true);
  char *bad = strstr(deep, "{\"stringValue\":\"x\"}");
  memcpy(bad, "{\"stringValue\": 5 }", 19);
  a = gw_arena_create(0);
  assert_int_equal(dec_json(a, deep, &req, &err), GW_ERR(DECODE));
  assert_int_equal(strlen(err.msg), 159 + strlen("...: want a string"));
  assert_non_null(strstr(err.msg, "...: want a string"));
  gw_arena_destroy(a);
  free(deep);

  /* nesting inside an unknown member counts too: with max_depth 32 a value may sit 143 levels down
   * (4 * 32 + 16 levels, the json-c tokener depth used before); here "x" is level 1, its k-th '[' level k */
  for (size_t levels = 143; levels <= 144; levels++) {
    char *skip = malloc(levels * 2 + 64);
    o = (size_t)sprintf(skip, "{\"x\":");
    for (size_t i = 0; i < levels; i++)
      skip[o++] = '[';
    for (size_t i = 0; i < levels; i++)
      skip[o++] = ']';
    strcpy(skip + o, "}");
    a = gw_arena_create(0);
    gw_rc rc = dec_json(a, skip, &req, &err);
    if (levels == 143) {
      assert_int_equal(rc, GW_OK);
    } else {
      assert_int_equal(rc, GW_ERR(TOO_DEEP));
      assert_string_equal(err.msg, "JSON: nested deeper than 144 levels at offset 148");
    }
    gw_arena_destroy(a);
    free(skip);
  }
}

/* ---- nesting ---- */

static void test_json_too_deep(void **state)
{
  (void)state;
  static const struct {
    uint32_t depth;
    bool kvlist;
    gw_rc rc;
  } cases[] = {
      {20000, false, GW_ERR(TOO_DEEP)}, /* json-c's limit, before any DOM recursion */
      {20000, true, GW_ERR(TOO_DEEP)},
      {32, true, GW_OK}, /* exactly max_depth through kvlists fits the tokener's depth */
      {32, false, GW_OK},
      {33, true, GW_ERR(TOO_DEEP)}, /* within json-c's limit: our AnyValue count */
      {33, false, GW_ERR(TOO_DEEP)},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *json = json_deep_request(cases[i].depth, cases[i].kvlist);
    struct gw_arena *a = gw_arena_create(0);
    GwTraceRequest *req;
    struct gw_err err = {0};
    gw_rc rc = dec_json(a, json, &req, &err);
    if (rc != cases[i].rc)
      fail_msg("case %zu: rc %d (%s)", i, rc, err.msg);
    if (cases[i].depth == 33)
      assert_non_null(strstr(err.msg, "value nested deeper than 32 levels"));
    free(json);
    gw_arena_destroy(a);
  }
}

static void test_pb_too_deep(void **state)
{
  (void)state;
  static const struct {
    uint32_t depth;
    bool kvlist;
    gw_rc rc;
  } cases[] = {
      {20000, false, GW_ERR(TOO_DEEP)}, {20000, true, GW_ERR(TOO_DEEP)}, {32, true, GW_OK},
      {32, false, GW_OK},               {33, true, GW_ERR(TOO_DEEP)},    {33, false, GW_ERR(TOO_DEEP)},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct rb b;
    pb_deep_request(&b, cases[i].depth, cases[i].kvlist);
    struct gw_arena *a = gw_arena_create(0);
    GwTraceRequest *req;
    struct gw_err err = {0};
    gw_rc rc = gw_decode_traces(a, GW_ENC_PROTOBUF, rb_data(&b), rb_len(&b), &LIM, &req, &err);
    if (rc != cases[i].rc)
      fail_msg("case %zu: rc %d (%s)", i, rc, err.msg);
    if (!rc) {
      /* Walk down to the innermost value: the structure is really that deep. */
      GwAnyValue *v = first_span(req)->attributes[0]->value;
      for (uint32_t d = 1; d < cases[i].depth; d++)
        v = cases[i].kvlist ? v->kvlist_value->values[0]->value : v->array_value->values[0];
      assert_string_equal(v->string_value, "x");
    }
    free(b.buf);
    gw_arena_destroy(a);
  }
}

/* ---- malformed protobuf ---- */

static void test_pb_truncated(void **state)
{
  (void)state;
  size_t len;
  char *body = tu_read_file("sdk/otel-http-protobuf-1.pb", &len);
  size_t cuts[] = {len - 1, len / 2, 7, 2};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    struct gw_arena *a = gw_arena_create(0);
    GwTraceRequest *req;
    struct gw_err err = {0};
    assert_int_equal(gw_decode_traces(a, GW_ENC_PROTOBUF, body, cuts[i], &LIM, &req, &err), GW_ERR(DECODE));
    assert_non_null(strstr(err.msg, "protobuf: "));
    gw_arena_destroy(a);
  }
  free(body);
}

static void test_pb_not_a_request(void **state)
{
  (void)state;
  /* Random bytes (fixed seeds), a gRPC frame prefix left on, a JSON body sent as protobuf, a group. */
  static const struct {
    const char *bytes;
    size_t len;
  } fixed[] = {
      {"\x00\x00\x00\x00\x05\x0a\x03\x0a\x01\x00", 10},
      {"{\"resourceSpans\":[]}", 20},
      {"\x0b\x0c", 2},
      {"\x0a\x05\x12\x03\x0a\x01", 6},
  };
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
    struct gw_arena *a = gw_arena_create(0);
    GwTraceRequest *req;
    struct gw_err err = {0};
    assert_int_equal(gw_decode_traces(a, GW_ENC_PROTOBUF, fixed[i].bytes, fixed[i].len, &LIM, &req, &err),
                     GW_ERR(DECODE));
    gw_arena_destroy(a);
  }
  for (uint32_t seed = 1; seed <= 64; seed++) {
    uint8_t buf[512];
    uint32_t x = seed * 2654435761u;
    for (size_t i = 0; i < sizeof buf; i++) {
      x = x * 1103515245u + 12345u;
      buf[i] = (uint8_t)(x >> 16);
    }
    struct gw_arena *a = gw_arena_create(0);
    GwTraceRequest *req;
    struct gw_err err = {0};
    gw_rc rc = gw_decode_traces(a, GW_ENC_PROTOBUF, buf, sizeof buf, &LIM, &req, &err);
    if (rc != GW_ERR(DECODE))
      fail_msg("seed %u: rc %d", seed, rc);
    gw_arena_destroy(a);
  }
}

static void test_pb_empty_and_too_large(void **state)
{
  (void)state;
  struct gw_arena *a = gw_arena_create(0);
  GwTraceRequest *req;
  struct gw_err err = {0};
  /* An empty body is an empty export (proto3: every field absent). */
  assert_int_equal(gw_decode_traces(a, GW_ENC_PROTOBUF, NULL, 0, &LIM, &req, &err), GW_OK);
  assert_int_equal(req->n_resource_spans, 0);
  struct gw_decode_limits small = {.max_bytes = 4, .max_depth = 8};
  assert_int_equal(gw_decode_traces(a, GW_ENC_JSON, "{    }", 6, &small, &req, &err), GW_ERR(TOO_LARGE));
  gw_arena_destroy(a);
}

/* ---- gzip ---- */

static void test_gzip_round_trip(void **state)
{
  (void)state;
  size_t len, zlen;
  char *body = tu_read_file("sdk/otel-http-json-1.json", &len);
  uint8_t *z = gz(body, len, &zlen);
  struct gw_arena *a = gw_arena_create(0);
  void *out;
  size_t out_len;
  struct gw_err err = {0};
  assert_int_equal(inflate_max(a, z, zlen, 64 << 20, &out, &out_len, &err), GW_OK);
  assert_int_equal(out_len, len);
  assert_memory_equal(out, body, len);
  GwTraceRequest *req;
  assert_int_equal(gw_decode_traces(a, GW_ENC_JSON, out, out_len, &LIM, &req, &err), GW_OK);
  assert_int_equal(count_spans(req), 11);
  gw_arena_destroy(a);
  free(z);
  free(body);
}

static void test_gzip_exact_limit(void **state)
{
  (void)state;
  size_t n = 300000, zlen;
  char *plain = malloc(n);
  for (size_t i = 0; i < n; i++)
    plain[i] = (char)('a' + i % 23);
  uint8_t *z = gz(plain, n, &zlen);
  struct gw_arena *a = gw_arena_create(0);
  void *out;
  size_t out_len;
  struct gw_err err = {0};
  assert_int_equal(inflate_max(a, z, zlen, n, &out, &out_len, &err), GW_OK);
  assert_int_equal(out_len, n);
  assert_memory_equal(out, plain, n);
  assert_int_equal(inflate_max(a, z, zlen, n - 1, &out, &out_len, &err), GW_ERR(TOO_LARGE));
  assert_null(out);
  gw_arena_destroy(a);
  free(z);
  free(plain);
}

static void test_gzip_bomb(void **state)
{
  (void)state;
  /* 200 MB of zeros, compressed in a stream so the test itself stays small. */
  z_stream zs = {0};
  assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY), Z_OK);
  static uint8_t zeros[1 << 20];
  size_t cap = 1 << 20, zlen = 0;
  uint8_t *z = malloc(cap);
  for (int i = 0; i < 200; i++) {
    zs.next_in = zeros;
    zs.avail_in = sizeof zeros;
    int flush = i == 199 ? Z_FINISH : Z_NO_FLUSH;
    do {
      if (cap - zlen < 65536) {
        cap *= 2;
        z = realloc(z, cap);
      }
      zs.next_out = z + zlen;
      zs.avail_out = (uInt)(cap - zlen);
      deflate(&zs, flush);
      zlen = zs.total_out;
    } while (zs.avail_in || (flush == Z_FINISH && zs.avail_out == 0));
  }
  deflateEnd(&zs);
  assert_true(zlen < 400 * 1024);

  size_t max = 8 << 20;
  struct gw_arena *a = gw_arena_create(0);
  void *out;
  size_t out_len;
  struct gw_err err = {0};
  uint64_t t0 = gw_mono_ns();
  assert_int_equal(inflate_max(a, z, zlen, max, &out, &out_len, &err), GW_ERR(TOO_LARGE));
  uint64_t ms = (gw_mono_ns() - t0) / 1000000;
  assert_true(ms < 10000);
  assert_non_null(strstr(err.msg, "more than 8388608 bytes"));
  /* Bounded memory: the output buffer never passes max; zlib's state is tens of KB. */
  assert_true(gw_arena_used(a) <= max + (1 << 20));
  gw_arena_destroy(a);
  free(z);
}

/* The ratio cap (issue 12): a body that inflates more than max_ratio times its size, once past
 * ratio_min_bytes, is TOO_LARGE as soon as its output reaches that, long before max_bytes; real bodies
 * pass. Output is one buffer that grows without copies and never past the limit. */
static void test_gzip_ratio(void **state)
{
  (void)state;
  size_t n = 4 << 20, zlen;
  char *zeros = calloc(1, n);
  uint8_t *z = gz(zeros, n, &zlen); /* about 1000 to 1 */
  struct gw_decode_limits lim = {.max_bytes = 64 << 20, .max_depth = 32, .max_ratio = 100,
                                 .ratio_min_bytes = 1 << 20};
  struct gw_arena *a = gw_arena_create(0);
  void *out;
  size_t out_len;
  struct gw_err err = {0};
  assert_int_equal(gw_inflate(a, z, zlen, &lim, &out, &out_len, &err), GW_ERR(TOO_LARGE));
  char want[160];
  snprintf(want, sizeof want, "gzip: body inflates to more than 100 times its %zu compressed bytes "
                              "(receivers.max_inflate_ratio)", zlen);
  assert_string_equal(err.msg, want);
  assert_null(out);
  /* It stopped at the limit: ratio_min_bytes, not max_bytes, of output was ever held. */
  assert_true(gw_arena_used(a) <= (1 << 20) + 256 * 1024);
  gw_arena_destroy(a);

  /* The same body with room for its ratio, or no ratio cap: inflated whole. */
  lim.max_ratio = 2000;
  a = gw_arena_create(0);
  assert_int_equal(gw_inflate(a, z, zlen, &lim, &out, &out_len, &err), GW_OK);
  assert_int_equal(out_len, n);
  assert_int_equal(((char *)out)[n], 0);
  assert_memory_equal(out, zeros, n);
  gw_arena_destroy(a);
  lim.max_ratio = 0;
  a = gw_arena_create(0);
  assert_int_equal(gw_inflate(a, z, zlen, &lim, &out, &out_len, &err), GW_OK);
  assert_int_equal(out_len, n);
  gw_arena_destroy(a);

  /* Below ratio_min_bytes any ratio is fine: 1 MiB of zeros with a ratio cap of 2. */
  free(z);
  z = gz(zeros, 1 << 20, &zlen);
  lim.max_ratio = 2;
  a = gw_arena_create(0);
  assert_int_equal(gw_inflate(a, z, zlen, &lim, &out, &out_len, &err), GW_OK);
  assert_int_equal(out_len, 1 << 20);
  gw_arena_destroy(a);

  /* A real body at the default cap (200): its ratio is far below it. */
  size_t len;
  char *body = tu_read_file("sdk/openinference-http-json-1.json", &len);
  free(z);
  z = gz(body, len, &zlen);
  lim.max_ratio = 200;
  lim.ratio_min_bytes = 0;
  a = gw_arena_create(0);
  assert_int_equal(gw_inflate(a, z, zlen, &lim, &out, &out_len, &err), GW_OK);
  assert_int_equal(out_len, len);
  /* The output buffer was cut to the body: the arena holds little more than it. */
  assert_true(gw_arena_used(a) < len + 128 * 1024);
  gw_arena_destroy(a);
  free(body);
  free(z);
  free(zeros);
}

/* gw_deflate_size reads the size from the codes: exact for every block type zlib writes (stored, fixed,
 * dynamic; every strategy), gzip and zlib wrappers and concatenated members; "more than limit" exactly
 * when the size passes it; "cannot tell" for truncated or foreign bodies. */
static void test_deflate_size(void **state)
{
  (void)state;
  size_t n = 320000;
  uint8_t *data = malloc(n);
  uint32_t x = 12345;
  for (size_t i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    /* text-like runs, repeats and random bytes */
    data[i] = (i / 4096) % 3 == 0 ? (uint8_t)("the quick brown fox "[i % 20]) : (i / 4096) % 3 == 1 ? (uint8_t)'0' + (i & 1) : (uint8_t)(x >> 24);
  }
  const size_t sizes[] = {0, 1, 100, 4095, 70000, 300000};
  const int levels[] = {0, 1, 6, 9};
  const int strategies[] = {Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY, Z_RLE, Z_FIXED};
  for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
    for (size_t li = 0; li < 4; li++)
      for (size_t st = 0; st < 5; st++)
        for (int w = 0; w < 2; w++) {
          size_t zlen, got;
          uint8_t *z = zcomp(data, sizes[si], levels[li], strategies[st], w ? 15 : 15 + 16, NULL, &zlen);
          int rc = gw_deflate_size(z, zlen, SIZE_MAX, &got);
          if (rc != 0 || got != sizes[si])
            fail_msg("size %zu level %d strategy %d %s: rc %d, %zu", sizes[si], levels[li], strategies[st],
                     w ? "zlib" : "gzip", rc, got);
          assert_int_equal(gw_deflate_size(z, zlen, sizes[si], &got), 0);
          if (sizes[si]) {
            assert_int_equal(gw_deflate_size(z, zlen, sizes[si] - 1, &got), 1);
            assert_true(got > sizes[si] - 1);
          }
          /* truncated: cannot tell */
          if (zlen > 12)
            assert_int_equal(gw_deflate_size(z, zlen - 9, SIZE_MAX, &got), -1);
          free(z);
        }
  /* two gzip members: the sum; something else after a member: cannot tell */
  size_t l1, l2, got;
  uint8_t *z1 = zcomp(data, 5000, 6, Z_DEFAULT_STRATEGY, 15 + 16, NULL, &l1);
  uint8_t *z2 = zcomp(data + 7000, 300000, 9, Z_DEFAULT_STRATEGY, 15 + 16, NULL, &l2);
  uint8_t *both = malloc(l1 + l2 + 1);
  memcpy(both, z1, l1);
  memcpy(both + l1, z2, l2);
  assert_int_equal(gw_deflate_size(both, l1 + l2, SIZE_MAX, &got), 0);
  assert_int_equal(got, 305000);
  assert_int_equal(gw_deflate_size(both, l1 + l2, 304999, &got), 1);
  both[l1 + l2] = 'x';
  assert_int_equal(gw_deflate_size(both, l1 + l2 + 1, SIZE_MAX, &got), -1);
  assert_int_equal(gw_deflate_size("{\"resourceSpans\":[]}", 20, SIZE_MAX, &got), -1);
  assert_int_equal(gw_deflate_size("", 0, SIZE_MAX, &got), -1);
  free(both);
  free(z1);
  free(z2);
  free(data);
}

/* The receivers' default limits for the bomb tests: 64 MiB, ratio 200 past 1 MiB. */
#define BOMB_LIMITS {.max_bytes = 64u << 20, .max_depth = 32, .max_ratio = 200, .ratio_min_bytes = 1 << 20}

/* gw_inflate of a bomb under BOMB_LIMITS: refused with the ratio message; returns the arena bytes it held. */
static size_t bomb_refused_held(const void *z, size_t zlen)
{
  struct gw_decode_limits lim = BOMB_LIMITS;
  struct gw_arena *a = gw_arena_create(0);
  void *out;
  size_t out_len;
  struct gw_err err = {0};
  assert_int_equal(gw_inflate(a, z, zlen, &lim, &out, &out_len, &err), GW_ERR(TOO_LARGE));
  assert_non_null(strstr(err.msg, "(receivers.max_inflate_ratio)"));
  size_t held = gw_arena_used(a);
  gw_arena_destroy(a);
  return held;
}

/* A gzip bomb within max_request_bytes but past the ratio cap (issue 12's OTLP/JSON body of [0,0,...], here
 * 16 KB inflating to 16 MiB) is refused with the ratio message after its codes are read: the output it ever
 * held is what was inflated before the count (256 KiB, 16 times its size), not the 3.2 MB the ratio allowed. */
static void test_gzip_bomb_counted(void **state)
{
  (void)state;
  size_t n = 16u << 20, zlen;
  char *plain = malloc(n);
  plain[0] = '[';
  for (size_t i = 1; i + 1 < n; i += 2) {
    plain[i] = '0';
    plain[i + 1] = ',';
  }
  plain[n - 1] = ']';
  uint8_t *z = zcomp(plain, n, 9, Z_DEFAULT_STRATEGY, 15 + 16, NULL, &zlen);
  free(plain);
  struct gw_decode_limits lim = BOMB_LIMITS;
  assert_true(zlen * 200 > (2u << 20)); /* the ratio allows more than the bound below */
  assert_true(bomb_refused_held(z, zlen) < (1 << 20));
  /* the same body with room for it: inflated whole and exact (the count sized the buffer) */
  void *out;
  size_t out_len;
  struct gw_err err = {0};
  lim.max_ratio = 0;
  struct gw_arena *a = gw_arena_create(0);
  assert_int_equal(gw_inflate(a, z, zlen, &lim, &out, &out_len, &err), GW_OK);
  assert_int_equal(out_len, n);
  assert_int_equal(((char *)out)[0], '[');
  assert_int_equal(((char *)out)[n - 1], ']');
  assert_int_equal(((char *)out)[n], 0);
  gw_arena_destroy(a);
  free(z);
}

/* The count starts once the output is 16 times the input read so far, not the whole body: a 32 KB bomb (32 MiB
 * of zeros) is counted and refused after 256 KiB of output; measured against its whole size it would first
 * inflate 512 KiB (64 KB bombs, as clients send them back to back: 1 MiB). A real body whose start compresses
 * well is counted early too, and still inflated whole and exact. */
static void test_gzip_bomb_counted_early(void **state)
{
  (void)state;
  size_t n = 32u << 20, zlen;
  char *plain = calloc(1, n);
  uint8_t *z = zcomp(plain, n, 1, Z_RLE, 15 + 16, NULL, &zlen);
  assert_true(zlen * 16 > (384u << 10)); /* counted against the whole body, the output would pass 384 KiB */
  assert_true(bomb_refused_held(z, zlen) < (384u << 10));
  /* 600 KB of zeros, then text that compresses as OTLP does: counted early, inflated exactly */
  size_t head = 600u << 10, m = head + (256u << 10);
  for (size_t i = head; i < m; i++)
    plain[i] = (char)('a' + (i * 2654435761u >> 13) % 26);
  free(z);
  z = zcomp(plain, m, 6, Z_DEFAULT_STRATEGY, 15 + 16, NULL, &zlen);
  struct gw_decode_limits lim = BOMB_LIMITS;
  void *out;
  size_t out_len;
  struct gw_err err = {0};
  struct gw_arena *a = gw_arena_create(0);
  assert_int_equal(gw_inflate(a, z, zlen, &lim, &out, &out_len, &err), GW_OK);
  assert_int_equal(out_len, m);
  assert_memory_equal(out, plain, m);
  gw_arena_destroy(a);
  free(z);
  free(plain);
}

/* The zlib format (HTTP Content-Encoding deflate or zlib, gRPC's deflate): inflated as gzip is, with the
 * same caps, and errors named by the body's format. */
static void test_zlib_bodies(void **state)
{
  (void)state;
  const char *text = "{\"resourceSpans\":[]} and some more text to make the stream longer than a header";
  uLongf zlen = compressBound(strlen(text));
  uint8_t *z = malloc(zlen);
  assert_int_equal(compress2(z, &zlen, (const Bytef *)text, strlen(text), 6), Z_OK);
  struct gw_arena *a = gw_arena_create(0);
  void *out;
  size_t out_len;
  struct gw_err err = {0};
  assert_int_equal(inflate_max(a, z, zlen, 1 << 20, &out, &out_len, &err), GW_OK);
  assert_int_equal(out_len, strlen(text));
  assert_memory_equal(out, text, out_len);
  /* a flipped byte in the stream or the Adler-32 trailer; a cut stream */
  uint8_t *bad = malloc(zlen);
  for (size_t at = 2; at < zlen; at += zlen / 5) {
    memcpy(bad, z, zlen);
    bad[at] ^= 0x55;
    gw_rc rc = inflate_max(a, bad, zlen, 1 << 20, &out, &out_len, &err);
    if (rc != GW_ERR(BAD_GZIP) || strncmp(err.msg, "deflate: ", 9))
      fail_msg("flip at %zu: %d %s", at, rc, err.msg);
  }
  assert_int_equal(inflate_max(a, z, zlen - 3, 1 << 20, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  assert_non_null(strstr(err.msg, "deflate: truncated"));
  /* neither gzip nor zlib: named as neither */
  assert_int_equal(inflate_max(a, text, strlen(text), 1 << 20, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  assert_non_null(strstr(err.msg, "gzip or deflate body: incorrect header check"));
  /* a zlib bomb meets the same output cap */
  size_t n = 4 << 20;
  char *zeros = calloc(1, n);
  uLongf blen = compressBound(n);
  uint8_t *bomb = malloc(blen);
  assert_int_equal(compress2(bomb, &blen, (const Bytef *)zeros, n, 9), Z_OK);
  assert_int_equal(inflate_max(a, bomb, blen, 1 << 20, &out, &out_len, &err), GW_ERR(TOO_LARGE));
  assert_string_equal(err.msg, "deflate: body inflates to more than 1048576 bytes");
  /* within the limit: a stream inflating less than 32 times its size (decoded whole at once) and one
   * inflating more (zeros: the zlib way), both exact, at the limit and one byte under it */
  size_t m = 300000;
  char *varied = malloc(m);
  uint32_t x = 12345;
  for (size_t i = 0; i < m; i++) { /* words of random letters: about 2 to 1 */
    x = x * 1103515245u + 12345u;
    varied[i] = (char)(i % 8 == 7 ? ' ' : 'a' + (x >> 16) % 26);
  }
  const char *plain[2] = {varied, zeros};
  for (int k = 0; k < 2; k++) {
    uLongf vlen = compressBound(m);
    uint8_t *v = malloc(vlen);
    assert_int_equal(compress2(v, &vlen, (const Bytef *)plain[k], m, 6), Z_OK);
    assert_true(k ? vlen * 32 < m : vlen * 32 > m);
    assert_decoded(inflate_max(a, v, vlen, 1 << 20, &out, &out_len, &err), out, out_len, plain[k], m);
    assert_int_equal(inflate_max(a, v, vlen, m, &out, &out_len, &err), GW_OK);
    assert_int_equal(inflate_max(a, v, vlen, m - 1, &out, &out_len, &err), GW_ERR(TOO_LARGE));
    assert_string_equal(err.msg, "deflate: body inflates to more than 299999 bytes");
    free(v);
  }
  /* a zlib stream past 256 KiB is not decoded into a guess of 32 times its size (which the request would
   * hold until it ends): the arena holds about its output */
  size_t big = 1200000;
  char *words = malloc(big);
  for (size_t i = 0; i < big; i++) {
    x = x * 1103515245u + 12345u;
    words[i] = (char)(i % 8 == 7 ? ' ' : 'a' + (x >> 16) % 26);
  }
  uLongf wlen = compressBound(big);
  uint8_t *w = malloc(wlen);
  assert_int_equal(compress2(w, &wlen, (const Bytef *)words, big, 6), Z_OK);
  assert_true(wlen > (256u << 10));
  struct gw_arena *b = gw_arena_create(0);
  assert_decoded(inflate_max(b, w, wlen, 64u << 20, &out, &out_len, &err), out, out_len, words, big);
  assert_true(gw_arena_used(b) < 2 * big);
  gw_arena_destroy(b);
  free(w);
  free(words);
  free(varied);
  free(bomb);
  free(zeros);
  free(bad);
  free(z);
  gw_arena_destroy(a);
}

/* A zstd frame of in (malloc'd): level, checksum, windowLog (0: the level's), and whether the content size
 * is stated in the header (a one-shot compressor) or not (a streaming one that was not told the size). */
static uint8_t *zst(const void *in, size_t n, int level, bool checksum, int window_log, bool sized, size_t *out_len)
{
  ZSTD_CCtx *c = ZSTD_createCCtx();
  assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level)));
  assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, checksum)));
  if (window_log)
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, window_log)));
  size_t cap = ZSTD_compressBound(n) + 64;
  uint8_t *out = malloc(cap);
  if (sized) {
    *out_len = ZSTD_compress2(c, out, cap, in, n);
  } else {
    /* the input handed over before the end is signalled: the header cannot state its size */
    ZSTD_inBuffer ib = {in, n, 0};
    ZSTD_outBuffer ob = {out, cap, 0};
    while (ib.pos < ib.size)
      assert_false(ZSTD_isError(ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_continue)));
    size_t left;
    do {
      left = ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_end);
      assert_false(ZSTD_isError(left));
    } while (left);
    *out_len = ob.pos;
  }
  assert_false(ZSTD_isError(*out_len));
  ZSTD_freeCCtx(c);
  assert_true(ZSTD_getFrameContentSize(out, *out_len) == (sized ? n : ZSTD_CONTENTSIZE_UNKNOWN));
  return out;
}

static gw_rc unzstd_max(struct gw_arena *a, const void *in, size_t n, size_t max, void **out, size_t *out_len,
                        struct gw_err *err)
{
  struct gw_decode_limits lim = {.max_bytes = max, .max_depth = 32};
  return gw_decompress(a, GW_CODING_ZSTD, in, n, &lim, out, out_len, err);
}

/* zstd bodies (Content-Encoding / grpc-encoding zstd): frames with and without their size stated, several
 * frames and skippable ones, and every way a body can be bad, each named. */
static void test_zstd_bodies(void **state)
{
  (void)state;
  size_t n = 300000;
  char *text = letters(n);
  struct gw_arena *a = gw_arena_create(0);
  void *out;
  size_t out_len, zlen;
  struct gw_err err = {0};
  for (int sized = 0; sized < 2; sized++)
    for (int level = 1; level <= 19; level += 9) {
      uint8_t *z = zst(text, n, level, level > 1, 0, sized, &zlen);
      assert_decoded(unzstd_max(a, z, zlen, 1 << 20, &out, &out_len, &err), out, out_len, text, n);
      /* exactly at the limit passes, one byte under it does not */
      assert_int_equal(unzstd_max(a, z, zlen, n, &out, &out_len, &err), GW_OK);
      assert_int_equal(unzstd_max(a, z, zlen, n - 1, &out, &out_len, &err), GW_ERR(TOO_LARGE));
      assert_string_equal(err.msg, "zstd: body inflates to more than 299999 bytes");
      /* cut anywhere: truncated */
      for (size_t cut = 1; cut < zlen; cut += zlen / 7 + 1) {
        gw_rc rc = unzstd_max(a, z, cut, 1 << 20, &out, &out_len, &err);
        if (rc != GW_ERR(BAD_GZIP) || strncmp(err.msg, "zstd: ", 6))
          fail_msg("sized %d level %d cut at %zu: %d %s", sized, level, cut, rc, err.msg);
      }
      free(z);
    }
  /* with a checksum, a flipped byte anywhere after the magic is found */
  uint8_t *z = zst(text, 5000, 3, true, 0, true, &zlen);
  uint8_t *bad = malloc(zlen + 16);
  for (size_t at = 4; at < zlen; at++) {
    memcpy(bad, z, zlen);
    bad[at] ^= 0x55;
    gw_rc rc = unzstd_max(a, bad, zlen, 1 << 20, &out, &out_len, &err);
    if (rc != GW_ERR(BAD_GZIP) || strncmp(err.msg, "zstd: ", 6))
      fail_msg("flip at %zu of %zu: %d %s", at, zlen, rc, err.msg);
  }
  memcpy(bad, z, zlen);
  bad[zlen - 1] ^= 1;
  assert_int_equal(unzstd_max(a, bad, zlen, 1 << 20, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  assert_string_equal(err.msg, "zstd: Restored data doesn't match checksum"); /* one pass: no position */
  /* bytes after the last frame; not zstd at all; nothing */
  memcpy(bad, z, zlen);
  memcpy(bad + zlen, "{\"resourceSpans\"", 16);
  assert_int_equal(unzstd_max(a, bad, zlen + 16, 1 << 20, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  char want[80];
  snprintf(want, sizeof want, "zstd: not a zstd frame at input byte %zu", zlen);
  assert_string_equal(err.msg, want);
  assert_int_equal(unzstd_max(a, "{\"resourceSpans\":[]}", 20, 1 << 20, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  assert_string_equal(err.msg, "zstd: not a zstd frame at input byte 0");
  assert_int_equal(unzstd_max(a, "", 0, 1 << 20, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  assert_string_equal(err.msg, "compressed body is empty");
  free(z);
  free(bad);

  /* frames one after another (one sized, one streamed) with a skippable frame between: their contents joined */
  size_t l1, l2;
  uint8_t *z1 = zst(text, 1000, 3, false, 0, true, &l1), *z2 = zst(text + 1000, 70000, 3, true, 0, false, &l2);
  uint8_t skip[12] = {0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 'a', 'b', 'c', 'd'}; /* magic 0x184D2A50, 4 bytes */
  uint8_t *all = malloc(l1 + l2 + sizeof skip);
  memcpy(all, z1, l1);
  memcpy(all + l1, skip, sizeof skip);
  memcpy(all + l1 + sizeof skip, z2, l2);
  assert_decoded(unzstd_max(a, all, l1 + l2 + sizeof skip, 1 << 20, &out, &out_len, &err), out, out_len, text,
                 71000);
  /* only skippable: nothing */
  assert_int_equal(unzstd_max(a, skip, sizeof skip, 1 << 20, &out, &out_len, &err), GW_OK);
  assert_int_equal(out_len, 0);
  free(all);
  free(z1);
  free(z2);

  /* A streamed frame's blocks bound its size (3 blocks of at most 128 KiB here): within the limit it is
   * decoded in one pass, whatever window it declares. Past the limit (not the output: its bound) it is
   * decoded as a stream, where its window may be up to 8 MiB (RFC 9659), not more. */
  for (int wl = 23; wl <= 24; wl++) {
    z = zst(text, n, 3, false, wl, false, &zlen);
    assert_true(ZSTD_decompressBound(z, zlen) == 3 * 128 * 1024);
    assert_decoded(unzstd_max(a, z, zlen, 1 << 20, &out, &out_len, &err), out, out_len, text, n);
    gw_rc rc = unzstd_max(a, z, zlen, 350000, &out, &out_len, &err);
    if (wl == 23) {
      assert_decoded(rc, out, out_len, text, n);
    } else {
      assert_int_equal(rc, GW_ERR(BAD_GZIP));
      assert_non_null(strstr(err.msg, "zstd: a frame's window is larger than 8388608 bytes"));
    }
    free(z);
  }
  gw_arena_destroy(a);
  free(text);
}

/* zstd bombs under the receivers' default caps: a frame stating its size is refused before decoding (the
 * arena holds little more than the decoder's state); a streamed one stops at the ratio cap, and once
 * refused holds at most that output (its window given back). */
static void test_zstd_bombs(void **state)
{
  (void)state;
  size_t n = 48u << 20, zlen;
  char *zeros = calloc(1, n);
  struct gw_decode_limits lim = {.max_bytes = 64u << 20, .max_depth = 32, .max_ratio = 200, .ratio_min_bytes = 1 << 20};
  void *out;
  size_t out_len;
  struct gw_err err = {0};
  for (int sized = 0; sized < 2; sized++) {
    uint8_t *z = zst(zeros, n, 3, false, 20, sized, &zlen);
    struct gw_arena *a = gw_arena_create(0);
    assert_int_equal(gw_decompress(a, GW_CODING_ZSTD, z, zlen, &lim, &out, &out_len, &err), GW_ERR(TOO_LARGE));
    assert_non_null(strstr(err.msg, "zstd: body inflates to more than 200 times its"));
    assert_non_null(strstr(err.msg, "(receivers.max_inflate_ratio)"));
    size_t held = gw_arena_used(a);
    if (sized ? held > (512u << 10) : held > (1u << 20) + (512u << 10)) /* output and state: the window went back */
      fail_msg("sized %d: the arena held %zu bytes", sized, held);
    /* without the ratio cap the size cap still holds */
    struct gw_decode_limits big = lim;
    big.max_ratio = 0;
    big.max_bytes = 32u << 20;
    assert_int_equal(gw_decompress(a, GW_CODING_ZSTD, z, zlen, &big, &out, &out_len, &err), GW_ERR(TOO_LARGE));
    assert_string_equal(err.msg, "zstd: body inflates to more than 33554432 bytes");
    /* with room for it: whole and exact */
    big.max_bytes = 64u << 20;
    assert_decoded(gw_decompress(a, GW_CODING_ZSTD, z, zlen, &big, &out, &out_len, &err), out, out_len, zeros, n);
    gw_arena_destroy(a);
    free(z);
  }
  free(zeros);
}

/* ---- snappy ---- */

static uint8_t *snap(const void *in, size_t n, size_t *zlen)
{
  size_t cap = snappy_max_compressed_length(n);
  uint8_t *z = malloc(cap);
  *zlen = cap;
  assert_int_equal(snappy_compress(in, n, (char *)z, zlen), SNAPPY_OK);
  return z;
}

/* A body in the snappy framing format, built chunk by chunk. */
struct framed {
  uint8_t *p;
  size_t n, cap;
};

static void fr_chunk(struct framed *f, unsigned type, const void *data, size_t len)
{
  if (f->n + 4 + len > f->cap) {
    f->cap = (f->n + 4 + len) * 2;
    f->p = realloc(f->p, f->cap);
  }
  f->p[f->n] = (uint8_t)type;
  f->p[f->n + 1] = (uint8_t)len;
  f->p[f->n + 2] = (uint8_t)(len >> 8);
  f->p[f->n + 3] = (uint8_t)(len >> 16);
  if (len)
    memcpy(f->p + f->n + 4, data, len);
  f->n += 4 + len;
}

static void fr_stream_id(struct framed *f) { fr_chunk(f, 0xff, "sNaPpY", 6); }

static uint32_t fr_mask(uint32_t c) { return ((c >> 15) | (c << 17)) + 0xa282ead8u; }

/* data in chunks of at most `size` bytes (64 KiB at most), compressed or stored as they come */
static void fr_data(struct framed *f, const void *data, size_t n, size_t size, bool compress)
{
  for (size_t at = 0; at < n; at += size) {
    size_t k = n - at < size ? n - at : size, zlen = 0;
    uint8_t *z = compress ? snap((const char *)data + at, k, &zlen) : NULL;
    size_t body = compress ? zlen : k;
    uint8_t *c = malloc(4 + body);
    uint32_t m = fr_mask(gw_crc32c((const char *)data + at, k));
    c[0] = (uint8_t)m, c[1] = (uint8_t)(m >> 8), c[2] = (uint8_t)(m >> 16), c[3] = (uint8_t)(m >> 24);
    memcpy(c + 4, compress ? (const void *)z : (const char *)data + at, body);
    fr_chunk(f, compress ? 0x00 : 0x01, c, 4 + body);
    free(c);
    free(z);
  }
}

static gw_rc unsnap(struct gw_arena *a, const void *in, size_t n, void **out, size_t *out_len, struct gw_err *err)
{
  struct gw_decode_limits lim = {.max_bytes = 16u << 20, .max_depth = 32};
  return gw_decompress(a, GW_CODING_SNAPPY, in, n, &lim, out, out_len, err);
}

/* CRC-32C as the framing format checks it: the check value of the Castagnoli polynomial, and the SSE 4.2
 * path (one lane, and three lanes joined past 6 KiB) equal to the table at every length and alignment. */
static void test_crc32c(void **state)
{
  (void)state;
  assert_int_equal(gw_crc32c("123456789", 9), 0xe3069283u);
  assert_int_equal(gw_crc32c("", 0), 0);
  char *t = letters(20000);
  for (size_t off = 0; off < 8; off++)
    for (size_t n = 0; n + off <= 20000; n += n < 600 ? 7 : 997) {
      gw_crc32c_portable_only = true;
      uint32_t slow = gw_crc32c(t + off, n);
      gw_crc32c_portable_only = false;
      assert_int_equal(gw_crc32c(t + off, n), slow);
    }
  free(t);
}

/* snappy bodies, both formats the name covers: the block format and the framing format (stream identifier,
 * compressed, stored, padding and skippable chunks, repeated identifiers as in concatenated streams), and
 * every way a body can be bad, each named. */
static void test_snappy_bodies(void **state)
{
  (void)state;
  struct gw_arena *a = gw_arena_create(0);
  size_t n = 300000, zlen, out_len;
  char *text = letters(n);
  void *out;
  struct gw_err err = {0};

  uint8_t *z = snap(text, n, &zlen);
  assert_true(zlen < n);
  assert_decoded(unsnap(a, z, zlen, &out, &out_len, &err), out, out_len, text, n);
  /* a trailing byte, a cut body, a length that says more or less than the data */
  uint8_t *z2 = malloc(zlen + 1);
  memcpy(z2, z, zlen);
  z2[zlen] = 0;
  assert_int_equal(unsnap(a, z2, zlen + 1, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  assert_non_null(strstr(err.msg, "snappy: corrupt body"));
  assert_int_equal(unsnap(a, z, zlen / 2, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  size_t small;
  uint8_t *zs = snap("hello", 5, &small);
  zs[0] = 6; /* states 6 bytes for 5 */
  assert_int_equal(unsnap(a, zs, small, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  assert_string_equal(err.msg, "snappy: corrupt body (7 bytes stating 6)");
  zs[0] = 4;
  assert_int_equal(unsnap(a, zs, small, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  static const uint8_t nolen[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  assert_int_equal(unsnap(a, nolen, sizeof nolen, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  assert_string_equal(err.msg, "snappy: no valid length at the start of the body");
  assert_int_equal(unsnap(a, z, 0, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  assert_string_equal(err.msg, "compressed body is empty");
  /* an empty body compressed */
  free(zs);
  zs = snap("", 0, &small);
  assert_decoded(unsnap(a, zs, small, &out, &out_len, &err), out, out_len, "", 0);

  /* framed: every kind of chunk */
  struct framed f = {0};
  fr_stream_id(&f);
  fr_data(&f, text, 100000, 65536, true);
  fr_chunk(&f, 0xfe, "\0\0\0", 3);        /* padding */
  fr_chunk(&f, 0x80, "skip me", 7);       /* reserved skippable */
  fr_data(&f, text + 100000, 50000, 20000, false);
  fr_stream_id(&f);                       /* a second stream concatenated */
  fr_data(&f, text + 150000, n - 150000, 65536, true);
  assert_true(gw_snappy_framed(f.p, f.n));
  assert_decoded(unsnap(a, f.p, f.n, &out, &out_len, &err), out, out_len, text, n);
  /* each byte of a small framed body flipped: refused (its CRC, or its framing) or, where only a skipped
   * chunk's byte changed, the same text, or where a data chunk's type became a skippable one, the text
   * without that chunk (four chunks of 100 bytes); never another */
  struct framed g = {0};
  fr_stream_id(&g);
  fr_data(&g, text, 300, 100, true);
  fr_chunk(&g, 0x90, "xx", 2);
  fr_data(&g, text + 300, 100, 100, false);
  for (size_t i = 0; i < g.n; i++)
    for (int bit = 0; bit < 8; bit++) {
      g.p[i] ^= (uint8_t)(1u << bit);
      gw_rc rc = unsnap(a, g.p, g.n, &out, &out_len, &err);
      bool same = rc == GW_OK && out_len == 400 && !memcmp(out, text, 400);
      for (size_t drop = 0; rc == GW_OK && !same && out_len == 300 && drop < 4; drop++)
        same = !memcmp(out, text, drop * 100) &&
               !memcmp((char *)out + drop * 100, text + (drop + 1) * 100, 300 - drop * 100);
      if (rc == GW_OK && !same)
        fail_msg("byte %zu bit %d flipped gave other text", i, bit);
      if (rc != GW_OK)
        assert_int_equal(rc, GW_ERR(BAD_GZIP));
      g.p[i] ^= (uint8_t)(1u << bit);
    }
  assert_decoded(unsnap(a, g.p, g.n, &out, &out_len, &err), out, out_len, text, 400);
  /* each cut */
  for (size_t k = 1; k < g.n; k++)
    if (unsnap(a, g.p, k, &out, &out_len, &err) == GW_OK)
      assert_true(k == 10 || out_len < 400); /* only whole chunks: at a chunk's end the text so far */
  /* named errors */
  size_t crc_at = 10 + 4; /* the first data chunk's checksum */
  g.p[crc_at] ^= 1;
  assert_int_equal(unsnap(a, g.p, g.n, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  assert_string_equal(err.msg, "snappy (framed): checksum mismatch at input byte 10");
  g.p[crc_at] ^= 1;
  struct framed h = {0};
  fr_stream_id(&h);
  fr_chunk(&h, 0x02, "x", 1);
  assert_int_equal(unsnap(a, h.p, h.n, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  assert_string_equal(err.msg, "snappy (framed): reserved unskippable chunk 0x02 at input byte 10");
  h.n = 10;
  fr_chunk(&h, 0x00, "abc", 3);
  assert_int_equal(unsnap(a, h.p, h.n, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  assert_string_equal(err.msg, "snappy (framed): chunk shorter than its checksum at input byte 10");
  h.n = 10;
  fr_data(&h, text, 1000, 1000, true);
  assert_int_equal(unsnap(a, h.p, h.n - 1, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  assert_string_equal(err.msg, "snappy (framed): truncated chunk at input byte 10");
  assert_int_equal(unsnap(a, h.p, 12, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  assert_string_equal(err.msg, "snappy (framed): truncated chunk header at input byte 10");
  h.p[4 + 5] = 'z'; /* sNaPpz */
  assert_false(gw_snappy_framed(h.p, h.n)); /* then it is read as a block, and is not one */
  assert_int_equal(unsnap(a, h.p, h.n, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  /* a stored chunk over 64 KiB */
  struct framed big = {0};
  fr_stream_id(&big);
  fr_data(&big, text, 70000, 70000, false);
  assert_int_equal(unsnap(a, big.p, big.n, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  assert_string_equal(err.msg, "snappy (framed): chunk holds more than 64 KiB at input byte 10");
  /* a second identifier that is wrong */
  struct framed w = {0};
  fr_stream_id(&w);
  fr_chunk(&w, 0xff, "sNaPpY!", 7);
  assert_int_equal(unsnap(a, w.p, w.n, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  assert_string_equal(err.msg, "snappy (framed): bad stream identifier at input byte 10");
  free(f.p);
  free(g.p);
  free(h.p);
  free(big.p);
  free(w.p);
  free(zs);
  free(z);
  free(z2);
  free(text);
  gw_arena_destroy(a);
}

/* A bomb (n zero bytes compressed as z, by a coding that reads its output's size before decoding): past
 * 32 MiB, or past `ratio` times its size, TOO_LARGE naming `name` with the arena still empty; with room, the
 * zeros exactly. */
static void assert_bomb_unread(enum gw_coding coding, const uint8_t *z, size_t zlen, const char *zeros, size_t n,
                               const char *name, uint32_t ratio)
{
  void *out;
  size_t out_len;
  struct gw_err err = {0};
  char want[128];
  struct gw_decode_limits lim = {.max_bytes = 32u << 20, .max_depth = 32, .ratio_min_bytes = 1 << 20};
  struct gw_arena *a = gw_arena_create(0);
  assert_int_equal(gw_decompress(a, coding, z, zlen, &lim, &out, &out_len, &err), GW_ERR(TOO_LARGE));
  snprintf(want, sizeof want, "%s: body inflates to more than 33554432 bytes", name);
  assert_string_equal(err.msg, want);
  assert_int_equal(gw_arena_used(a), 0);
  lim.max_bytes = 64u << 20;
  lim.max_ratio = ratio;
  assert_int_equal(gw_decompress(a, coding, z, zlen, &lim, &out, &out_len, &err), GW_ERR(TOO_LARGE));
  snprintf(want, sizeof want, "%s: body inflates to more than %u times its %zu compressed bytes", name, ratio, zlen);
  assert_non_null(strstr(err.msg, want));
  assert_int_equal(gw_arena_used(a), 0);
  lim.max_ratio = 0;
  assert_decoded(gw_decompress(a, coding, z, zlen, &lim, &out, &out_len, &err), out, out_len, zeros, n);
  gw_arena_destroy(a);
}

/* snappy bombs: the size is read before anything is decoded, from the block's length or the chunks' headers,
 * so a body past the size or ratio cap is refused with the arena still empty; within the caps, exact. */
static void test_snappy_bombs(void **state)
{
  (void)state;
  size_t n = 48u << 20, zlen;
  char *zeros = calloc(1, n);
  uint8_t *z = snap(zeros, n, &zlen);
  struct framed f = {0};
  fr_stream_id(&f);
  fr_data(&f, zeros, n, 65536, true);
  /* snappy compresses zeros about 21 times: a ratio cap of 10 is what they pass */
  assert_bomb_unread(GW_CODING_SNAPPY, z, zlen, zeros, n, "snappy", 10);
  assert_bomb_unread(GW_CODING_SNAPPY, f.p, f.n, zeros, n, "snappy (framed)", 10);
  free(f.p);
  free(z);
  free(zeros);
}

/* ---- lz4 ---- */

/* An LZ4 frame of in: block size id (4: 64 KiB .. 7: 4 MiB), linked blocks, content size stated, block
 * and content checksums. */
static uint8_t *lz4f(const void *in, size_t n, int bsid, bool linked, bool sized, bool checks, size_t *zlen)
{
  LZ4F_preferences_t p;
  memset(&p, 0, sizeof p);
  p.frameInfo.blockSizeID = (LZ4F_blockSizeID_t)bsid;
  p.frameInfo.blockMode = linked ? LZ4F_blockLinked : LZ4F_blockIndependent;
  p.frameInfo.contentSize = sized ? n : 0;
  p.frameInfo.contentChecksumFlag = checks ? LZ4F_contentChecksumEnabled : LZ4F_noContentChecksum;
  p.frameInfo.blockChecksumFlag = checks ? LZ4F_blockChecksumEnabled : LZ4F_noBlockChecksum;
  size_t cap = LZ4F_compressFrameBound(n, &p);
  uint8_t *z = malloc(cap);
  *zlen = LZ4F_compressFrame(z, cap, in, n, &p);
  assert_false(LZ4F_isError(*zlen));
  return z;
}

static gw_rc unlz4(struct gw_arena *a, const void *in, size_t n, void **out, size_t *out_len, struct gw_err *err)
{
  struct gw_decode_limits lim = {.max_bytes = 16u << 20, .max_depth = 32};
  return gw_decompress(a, GW_CODING_LZ4, in, n, &lim, out, out_len, err);
}

/* lz4 bodies (the LZ4 frame format): every block size, linked and independent blocks, the size stated or
 * not, checksums, concatenated and skippable frames; and every way a body can be bad, each named. */
static void test_lz4_bodies(void **state)
{
  (void)state;
  struct gw_arena *a = gw_arena_create(0);
  size_t n = 1300000, zlen, out_len;
  char *text = letters(n);
  void *out;
  struct gw_err err = {0};
  for (int bsid = 4; bsid <= 7; bsid++)
    for (int mode = 0; mode < 8; mode++) {
      uint8_t *z = lz4f(text, n, bsid, mode & 1, mode & 2, mode & 4, &zlen);
      assert_decoded(unlz4(a, z, zlen, &out, &out_len, &err), out, out_len, text, n);
      free(z);
    }
  /* two frames with a skippable one between, and a skippable one first */
  size_t z1len, z2len;
  uint8_t *z1 = lz4f(text, 1000, 4, false, true, true, &z1len), *z2 = lz4f(text + 1000, 2000, 4, true, false, false, &z2len);
  static const uint8_t skip[] = {0x53, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 'a', 'b', 'c'};
  uint8_t *cat = malloc(sizeof skip + z1len + sizeof skip + z2len);
  size_t at = 0;
  memcpy(cat, skip, sizeof skip), at += sizeof skip;
  memcpy(cat + at, z1, z1len), at += z1len;
  memcpy(cat + at, skip, sizeof skip), at += sizeof skip;
  memcpy(cat + at, z2, z2len), at += z2len;
  assert_decoded(unlz4(a, cat, at, &out, &out_len, &err), out, out_len, text, 3000);
  /* an empty body compressed */
  uint8_t *ze = lz4f("", 0, 4, false, false, true, &zlen);
  assert_decoded(unlz4(a, ze, zlen, &out, &out_len, &err), out, out_len, "", 0);
  free(ze);

  /* errors, named */
  assert_int_equal(unlz4(a, z1, 0, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  assert_string_equal(err.msg, "compressed body is empty");
  assert_int_equal(unlz4(a, "not lz4 at all", 14, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  assert_string_equal(err.msg, "lz4: not an lz4 frame at input byte 0");
  assert_int_equal(unlz4(a, z1, z1len - 3, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  char want[96];
  snprintf(want, sizeof want, "lz4: truncated after %zu input bytes", z1len - 3);
  assert_string_equal(err.msg, want);
  uint8_t *z1b = malloc(z1len + 4);
  memcpy(z1b, z1, z1len);
  z1b[z1len - 1] ^= 1; /* the content checksum */
  assert_int_equal(unlz4(a, z1b, z1len, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  assert_string_equal(err.msg, "lz4: content checksum mismatch at input byte 0");
  z1b[z1len - 1] ^= 1;
  memcpy(z1b + z1len, "junk", 4); /* bytes after the frame that are not one */
  assert_int_equal(unlz4(a, z1b, z1len + 4, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  assert_non_null(strstr(err.msg, "lz4: "));
  /* a size stated that the data does not have */
  uint8_t *zs = lz4f(text, 500, 4, false, true, false, &zlen);
  zs[6] = (uint8_t)(zs[6] + 1); /* content size 501: the header checksum no longer matches either */
  assert_int_equal(unlz4(a, zs, zlen, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  assert_string_equal(err.msg, "lz4: frame header checksum mismatch at input byte 0");
  free(zs);
  /* XXH32's value for no input (its other values are checked by every frame here: liblz4 wrote their
   * header, block and content checksums) */
  assert_int_equal(gw_xxh32("", 0, 0), 0x02cc5d05u);
  /* a block checksum, the legacy format, a dictionary, a reserved bit, a stated size the data does not have */
  uint8_t *zb = lz4f(text, 2000, 4, false, false, true, &zlen);
  zb[7 + 4 + 5] ^= 0x40; /* in the first block's data (header 7 bytes, block size 4) */
  assert_int_equal(unlz4(a, zb, zlen, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  assert_string_equal(err.msg, "lz4: block checksum mismatch at input byte 7");
  free(zb);
  static const uint8_t legacy[] = {0x02, 0x21, 0x4c, 0x18, 0, 0, 0, 0};
  assert_int_equal(unlz4(a, legacy, sizeof legacy, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  assert_string_equal(err.msg, "lz4: legacy lz4 format (use the frame format) at input byte 0");
  uint8_t hd[11] = {0x04, 0x22, 0x4d, 0x18, 0x61, 0x40};
  memset(hd + 6, 0, 4); /* a dictionary id */
  hd[10] = (uint8_t)(gw_xxh32(hd + 4, 6, 0) >> 8);
  assert_int_equal(unlz4(a, hd, sizeof hd, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  assert_string_equal(err.msg, "lz4: frame needs a dictionary at input byte 0");
  uint8_t rs[7] = {0x04, 0x22, 0x4d, 0x18, 0x62, 0x40};
  rs[6] = (uint8_t)(gw_xxh32(rs + 4, 2, 0) >> 8);
  assert_int_equal(unlz4(a, rs, sizeof rs, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  assert_string_equal(err.msg, "lz4: reserved flag set in the frame header at input byte 0");
  /* a frame whose header states 400 bytes (its checksum right) for 500 of data, and 600 */
  for (int more = 0; more < 2; more++) {
    uint8_t *zl = lz4f(text, 500, 4, false, true, false, &zlen);
    zl[6] = (uint8_t)(more ? 600 & 0xff : 400 & 0xff);
    zl[7] = (uint8_t)(more ? 600 >> 8 : 400 >> 8);
    zl[14] = (uint8_t)(gw_xxh32(zl + 4, 10, 0) >> 8);
    assert_int_equal(unlz4(a, zl, zlen, &out, &out_len, &err), GW_ERR(BAD_GZIP));
    if (more)
      assert_string_equal(err.msg, "lz4: frame decodes to another size than its header states at input byte 0");
    else
      assert_string_equal(err.msg, "lz4: corrupt block, or more than the frame's header states at input byte 15");
    free(zl);
  }
  /* each byte of a small checked frame flipped: refused or the same text (never another), never a crash */
  uint8_t *zc = lz4f(text, 400, 4, false, true, true, &zlen);
  for (size_t i = 0; i < zlen; i++)
    for (int bit = 0; bit < 8; bit++) {
      zc[i] ^= (uint8_t)(1u << bit);
      gw_rc rc = unlz4(a, zc, zlen, &out, &out_len, &err);
      if (rc == GW_OK && !(out_len == 400 && !memcmp(out, text, 400)))
        fail_msg("byte %zu bit %d flipped gave other text", i, bit);
      zc[i] ^= (uint8_t)(1u << bit);
    }
  /* each cut of it */
  for (size_t k = 1; k < zlen; k++)
    assert_int_equal(unlz4(a, zc, k, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  free(zc);
  free(z1b);
  free(cat);
  free(z1);
  free(z2);
  free(text);
  gw_arena_destroy(a);
}

/* lz4 bombs: a frame stating its size past the cap is refused from its header, one that does not from its
 * blocks' sequences walked: either way nothing is decoded and the arena stays empty; with room, exact. */
static void test_lz4_bombs(void **state)
{
  (void)state;
  size_t n = 48u << 20, zlen;
  char *zeros = calloc(1, n);
  for (int sized = 0; sized < 2; sized++) {
    uint8_t *z = lz4f(zeros, n, 7, false, sized, false, &zlen);
    assert_bomb_unread(GW_CODING_LZ4, z, zlen, zeros, n, "lz4", 200); /* lz4 compresses zeros about 250 times */
    free(z);
  }
  free(zeros);
}

/* A gzip member's trailer states its size (ISIZE): a body stating its size within the limit is decoded whole
 * at once (libdeflate), one whose trailer lies is not taken that way and gets zlib's error, as does a size
 * stated past the limit for a body that is really within it. Header fields (name, extra, comment, header
 * CRC) are read either way. */
static void test_gzip_trailer(void **state)
{
  (void)state;
  size_t n = 200000;
  char *text = letters(n);
  struct gw_arena *a = gw_arena_create(0);
  void *out;
  size_t out_len, zlen;
  struct gw_err err = {0};
  uint8_t *z = gz(text, n, &zlen);
  assert_decoded(inflate_max(a, z, zlen, 1 << 20, &out, &out_len, &err), out, out_len, text, n);
  /* exactly at the limit, and one byte under it */
  assert_int_equal(inflate_max(a, z, zlen, n, &out, &out_len, &err), GW_OK);
  assert_int_equal(inflate_max(a, z, zlen, n - 1, &out, &out_len, &err), GW_ERR(TOO_LARGE));
  assert_string_equal(err.msg, "gzip: body inflates to more than 199999 bytes");
  /* a trailer stating less, more, nothing, or past any limit */
  uint32_t lies[] = {(uint32_t)n - 1, (uint32_t)n + 1, 0, 0xffffffffu};
  uint8_t *bad = malloc(zlen);
  for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
    memcpy(bad, z, zlen);
    for (int k = 0; k < 4; k++)
      bad[zlen - 4 + k] = (uint8_t)(lies[i] >> (8 * k));
    gw_rc rc = inflate_max(a, bad, zlen, 1 << 20, &out, &out_len, &err);
    if (rc != GW_ERR(BAD_GZIP) || !strstr(err.msg, "gzip: incorrect length check at input byte "))
      fail_msg("ISIZE %u: %d %s", lies[i], rc, err.msg);
  }
  /* a trailer stating much less than a bomb inflates to: the bomb is still caught */
  size_t bn = 16u << 20, blen;
  char *zeros = calloc(1, bn);
  uint8_t *bomb = gz(zeros, bn, &blen);
  bomb[blen - 4] = 100, bomb[blen - 3] = bomb[blen - 2] = bomb[blen - 1] = 0;
  assert_int_equal(inflate_max(a, bomb, blen, 1 << 20, &out, &out_len, &err), GW_ERR(TOO_LARGE));
  free(bomb);
  free(zeros);
  /* header fields: a name, an extra field, a comment and a header CRC */
  gz_header h = {0};
  h.name = (Bytef *)"body.pb";
  h.comment = (Bytef *)"otlp";
  h.extra = (Bytef *)"ab\x02\x00xy";
  h.extra_len = 6;
  h.hcrc = 1;
  size_t zhlen;
  uint8_t *zh = zcomp(text, n, 9, Z_DEFAULT_STRATEGY, 15 + 16, &h, &zhlen);
  assert_decoded(inflate_max(a, zh, zhlen, 1 << 20, &out, &out_len, &err), out, out_len, text, n);
  free(zh);
  free(bad);
  free(z);
  free(text);
  gw_arena_destroy(a);
}

static void test_gzip_bad(void **state)
{
  (void)state;
  const char *text = "{\"resourceSpans\":[]} and some more text to make the stream longer than a header";
  size_t zlen;
  uint8_t *z = gz(text, strlen(text), &zlen);
  uint8_t *bad = malloc(zlen + 4);
  struct {
    const char *name;
    size_t len;
  } cases[] = {
      {"truncated", zlen - 5},
      {"header only", 10},
      {"empty", 0},
  };
  struct gw_arena *a = gw_arena_create(0);
  void *out;
  size_t out_len;
  struct gw_err err = {0};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    memcpy(bad, z, zlen);
    if (inflate_max(a, bad, cases[i].len, 1 << 20, &out, &out_len, &err) != GW_ERR(BAD_GZIP))
      fail_msg("%s: %s", cases[i].name, err.msg);
  }
  /* A flipped byte in the compressed data or in the CRC. */
  memcpy(bad, z, zlen);
  bad[zlen - 6] ^= 0x55;
  assert_int_equal(inflate_max(a, bad, zlen, 1 << 20, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  assert_non_null(strstr(err.msg, "gzip: "));
  memcpy(bad, z, zlen);
  bad[12] ^= 0xff;
  assert_int_equal(inflate_max(a, bad, zlen, 1 << 20, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  /* Not gzip at all, and trailing garbage after a good member. */
  assert_int_equal(inflate_max(a, text, strlen(text), 1 << 20, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  memcpy(bad, z, zlen);
  memcpy(bad + zlen, "\0\0\0\0", 4);
  assert_int_equal(inflate_max(a, bad, zlen + 4, 1 << 20, &out, &out_len, &err), GW_ERR(BAD_GZIP));
  gw_arena_destroy(a);
  free(bad);
  free(z);
}

static void test_gzip_concatenated(void **state)
{
  (void)state;
  size_t l1, l2;
  uint8_t *z1 = gz("hello ", 6, &l1), *z2 = gz("world", 5, &l2);
  uint8_t *both = malloc(l1 + l2);
  memcpy(both, z1, l1);
  memcpy(both + l1, z2, l2);
  struct gw_arena *a = gw_arena_create(0);
  void *out;
  size_t out_len;
  struct gw_err err = {0};
  assert_int_equal(inflate_max(a, both, l1 + l2, 1 << 20, &out, &out_len, &err), GW_OK);
  assert_int_equal(out_len, 11);
  assert_memory_equal(out, "hello world", 11);
  assert_int_equal(inflate_max(a, both, l1 + l2, 10, &out, &out_len, &err), GW_ERR(TOO_LARGE));
  gw_arena_destroy(a);
  free(both);
  free(z1);
  free(z2);
}

/* ---- UTF-8 ---- */

static void test_utf8_fix(void **state)
{
  (void)state;
  static const struct {
    const char *in;
    size_t len;
    const char *want; /* NULL: unchanged */
  } cases[] = {
      {"plain ascii", 11, NULL},
      {"\xe2\x82\xac \xf0\x9f\x98\x80 \xc3\xa9", 11, NULL}, /* euro, emoji, e-acute */
      {"\xef\xbf\xbf\xf4\x8f\xbf\xbf", 7, NULL},          /* U+FFFF, U+10FFFF */
      {"a\xff" "b", 3, "a\xef\xbf\xbd" "b"},
      {"\xc0\x80", 2, "\xef\xbf\xbd\xef\xbf\xbd"},                      /* overlong NUL */
      {"\xe0\x80\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},      /* overlong */
      {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},      /* surrogate U+D800 */
      {"\xf4\x90\x80\x80", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* > U+10FFFF */
      {"\xf5\x80", 2, "\xef\xbf\xbd\xef\xbf\xbd"},
      {"a\xe2\x82", 3, "a\xef\xbf\xbd"},          /* truncated at the end: one U+FFFD */
      {"\xe2\x82z", 3, "\xef\xbf\xbdz"},
      {"\xf0\x9f\x98x", 4, "\xef\xbf\xbdx"},      /* 3-byte maximal subpart */
      {"\x80\xbf", 2, "\xef\xbf\xbd\xef\xbf\xbd"}, /* lone continuations */
      {"a\0b\0", 4, "ab"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct gw_arena *a = gw_arena_create(0);
    char *s = gw_arena_strndup(a, cases[i].in, cases[i].len);
    bool fixed = true;
    char *r = gw_utf8_fix(a, s, cases[i].len, &fixed);
    if (!cases[i].want) {
      assert_false(fixed);
      assert_ptr_equal(r, s);
    } else {
      if (!fixed || strcmp(r, cases[i].want))
        fail_msg("case %zu: got \"%s\"", i, r);
    }
    gw_arena_destroy(a);
  }
}

/* Long ASCII runs are checked many bytes at a time (64 with AVX-512; else 32, then 16, then 8 or 1): a bad
 * byte, a NUL or a valid multi-byte character at every position of a string long enough for each step, and
 * at the very end, is still seen, by gw_utf8_fix and gw_utf8_valid alike; DEL (0x7f) and 0x01, the edges of
 * the ASCII range, are not bytes to repair. Run on both paths. */
static void utf8_positions(void);

static void test_utf8_fix_positions(void **state)
{
  (void)state;
  utf8_positions();
  gw_utf8_no_avx512 = true;
  utf8_positions();
  gw_utf8_no_avx512 = false;
}

static void utf8_positions(void)
{
  static const struct {
    const char *ins, *want; /* want NULL: unchanged */
  } kinds[] = {
      {"\xff", "\xef\xbf\xbd"},
      {"\x80", "\xef\xbf\xbd"},
      {"\xc3\xa9", NULL},
      {"\xf0\x9f\x98\x80", NULL},
      {"\xe2\x82", "\xef\xbf\xbd"},
      {"\x7f", NULL},
      {"\x01", NULL},
  };
  enum { RUN = 140 };
  char in[RUN + 8], want[RUN + 8];
  for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
    for (size_t pos = 0; pos <= RUN; pos++) {
      size_t il = strlen(kinds[k].ins);
      memset(in, 'x', pos);
      memcpy(in + pos, kinds[k].ins, il);
      memset(in + pos + il, 'y', RUN - pos);
      size_t len = RUN + il;
      struct gw_arena *a = gw_arena_create(0);
      char *s = gw_arena_strndup(a, in, len);
      if (gw_utf8_valid(s, len) != !kinds[k].want)
        fail_msg("kind %zu at %zu: gw_utf8_valid says %d", k, pos, !kinds[k].want);
      bool fixed = true;
      char *r = gw_utf8_fix(a, s, len, &fixed);
      if (!kinds[k].want) {
        if (fixed || r != s)
          fail_msg("kind %zu at %zu: a valid string was changed", k, pos);
      } else {
        size_t wl = strlen(kinds[k].want);
        memset(want, 'x', pos);
        memcpy(want + pos, kinds[k].want, wl);
        memset(want + pos + wl, 'y', RUN - pos);
        want[RUN + wl] = 0;
        if (!fixed || strcmp(r, want))
          fail_msg("kind %zu at %zu: got \"%s\"", k, pos, r);
      }
      gw_arena_destroy(a);
    }
  }
  /* NUL bytes inside long ASCII runs are removed wherever they are. */
  for (size_t pos = 0; pos < RUN; pos++) {
    memset(in, 'z', RUN);
    in[pos] = 0;
    struct gw_arena *a = gw_arena_create(0);
    char *s = gw_arena_strndup(a, in, RUN);
    assert_false(gw_utf8_valid(s, RUN));
    bool fixed = false;
    char *r = gw_utf8_fix(a, s, RUN, &fixed);
    assert_true(fixed);
    assert_int_equal(strlen(r), RUN - 1);
    assert_int_equal(strspn(r, "z"), RUN - 1);
    gw_arena_destroy(a);
  }
}

/* A repair that does not grow the string is done in place; one that grows gets a copy. */
static void test_utf8_in_place(void **state)
{
  (void)state;
  struct gw_arena *a = gw_arena_create(0);
  bool fixed;
  char *s = gw_arena_strdup(a, "\xf0\x9f\x98x");
  assert_ptr_equal(gw_utf8_fix(a, s, 4, &fixed), s);
  char *t = gw_arena_strdup(a, "\xffx");
  char *r = gw_utf8_fix(a, t, 2, &fixed);
  assert_ptr_not_equal(r, t);
  assert_string_equal(r, "\xef\xbf\xbdx");
  gw_arena_destroy(a);
}

static void test_utf8_in_requests(void **state)
{
  (void)state;
  struct gw_arena *a = gw_arena_create(0);
  GwTraceRequest *req;
  struct gw_err err = {0};

  /* JSON: raw invalid bytes and an escaped NUL. */
  int64_t before = gw_metric_get(GW_M_UTF8_FIXED);
  const char *json = ONE_ATTR("{\"stringValue\":\"bad\xff\xfe end\"}");
  if (dec_json(a, json, &req, &err))
    fail_msg("%s", err.msg);
  assert_string_equal(first_span(req)->attributes[0]->value->string_value, "bad\xef\xbf\xbd\xef\xbf\xbd end");
  assert_int_equal(gw_metric_get(GW_M_UTF8_FIXED), before + 1);
  json = "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"name\":\"a\\u0000b\",\"attributes\":[{\"key\":\"k\\u0000\","
         "\"value\":{\"stringValue\":\"x\\u0000y\\u0000\"}}]}]}]}]}";
  if (dec_json(a, json, &req, &err))
    fail_msg("%s", err.msg);
  GwSpan *s = first_span(req);
  assert_string_equal(s->name, "ab");
  assert_string_equal(s->attributes[0]->key, "k");
  assert_string_equal(s->attributes[0]->value->string_value, "xy");
  assert_int_equal(gw_metric_get(GW_M_UTF8_FIXED), before + 4);

  /* Protobuf: invalid UTF-8 in a nested attribute value, a key, the span name and the status message. */
  GwAnyValue inner, outer;
  av_str(&inner, "bad\xff\xfe end");
  GwArrayValue arr;
  gw_pb_array_value_init(&arr);
  GwAnyValue *vals[] = {&inner};
  arr.values = vals;
  arr.n_values = 1;
  gw_pb_any_value_init(&outer);
  outer.value_case = GW_AV_ARRAY;
  outer.array_value = &arr;
  GwKeyValue k;
  GwKeyValue *attrs[] = {kv(&k, "key\xc0", &outer)};
  GwStatus st;
  gw_pb_status_init(&st);
  st.message = "\xed\xa0\x80";
  GwSpan sp;
  gw_pb_span_init(&sp);
  sp.name = "ok name";
  sp.attributes = attrs;
  sp.n_attributes = 1;
  sp.status = &st;
  GwSpan *sps[] = {&sp};
  GwScopeSpans ss;
  gw_pb_scope_spans_init(&ss);
  ss.spans = sps;
  ss.n_spans = 1;
  GwScopeSpans *sss[] = {&ss};
  GwResourceSpans rs;
  gw_pb_resource_spans_init(&rs);
  rs.scope_spans = sss;
  rs.n_scope_spans = 1;
  GwResourceSpans *rss[] = {&rs};
  GwTraceRequest want;
  gw_pb_trace_request_init(&want);
  want.resource_spans = rss;
  want.n_resource_spans = 1;
  size_t len;
  uint8_t *buf = pack(&want, &len);
  before = gw_metric_get(GW_M_UTF8_FIXED);
  assert_int_equal(gw_decode_traces(a, GW_ENC_PROTOBUF, buf, len, &LIM, &req, &err), GW_OK);
  s = first_span(req);
  assert_string_equal(s->name, "ok name");
  assert_string_equal(s->attributes[0]->key, "key\xef\xbf\xbd");
  assert_string_equal(s->attributes[0]->value->array_value->values[0]->string_value, "bad\xef\xbf\xbd\xef\xbf\xbd end");
  assert_string_equal(s->status->message, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
  assert_int_equal(gw_metric_get(GW_M_UTF8_FIXED), before + 3);
  free(buf);
  gw_arena_destroy(a);
}

/* Whether span name `name` of req is among rep's spans. */
static bool marked(const GwTraceRequest *req, const struct gw_decode_repaired *rep, const char *name)
{
  for (size_t i = 0; i < req->n_resource_spans; i++)
    for (size_t j = 0; j < req->resource_spans[i]->n_scope_spans; j++)
      for (size_t k = 0; k < req->resource_spans[i]->scope_spans[j]->n_spans; k++) {
        const GwSpan *sp = req->resource_spans[i]->scope_spans[j]->spans[k];
        if (!strncmp(sp->name, name, 2))
          for (size_t m = 0; m < rep->n; m++)
            if (rep->spans[m] == sp)
              return true;
      }
  return false;
}

/* The spans a repair concerns (for their rows' invalid_utf8 flag, DESIGN §3): their own strings, their
 * resource's (which JSON may give after the spans) or their scope's; both decoders say the same. */
static void test_utf8_repaired_spans(void **state)
{
  (void)state;
  struct gw_arena *a = gw_arena_create(0);
  GwTraceRequest *req;
  struct gw_err err = {0};
  const char *json =
    "{\"resourceSpans\":["
    "{\"scopeSpans\":[{\"spans\":[{\"name\":\"a1\"},{\"name\":\"a2\"}]}],"
    "\"resource\":{\"attributes\":[{\"key\":\"host\",\"value\":{\"stringValue\":\"h\xff\"}}]}},"
    "{\"resource\":{\"attributes\":[]},\"scopeSpans\":["
    "{\"scope\":{\"name\":\"ok\"},\"spans\":[{\"name\":\"b1\xfe\"},{\"name\":\"b2\"}]},"
    "{\"spans\":[{\"name\":\"b3\"}],\"scope\":{\"name\":\"s\xc0\"}}]}]}";
  struct gw_decode_repaired rep = {0};
  struct gw_decode_limits lim = LIM;
  lim.repaired = &rep;
  assert_int_equal(gw_decode_traces(a, GW_ENC_JSON, json, strlen(json), &lim, &req, &err), GW_OK);
  const char *yes[] = {"a1", "a2", "b1", "b3"};
  for (size_t i = 0; i < 4; i++)
    if (!marked(req, &rep, yes[i]))
      fail_msg("JSON: span %s not marked", yes[i]);
  assert_false(marked(req, &rep, "b2"));

  /* The same request as protobuf (the strings made invalid again after the JSON decode repaired them). */
  GwResourceSpans *r0 = req->resource_spans[0], *r1 = req->resource_spans[1];
  r0->resource->attributes[0]->value->string_value = "h\xff";
  r1->scope_spans[0]->spans[0]->name = "b1\xfe";
  r1->scope_spans[1]->scope->name = "s\xc0";
  size_t len;
  uint8_t *buf = pack(req, &len);
  struct gw_decode_repaired rep2 = {0};
  lim.repaired = &rep2;
  assert_int_equal(gw_decode_traces(a, GW_ENC_PROTOBUF, buf, len, &lim, &req, &err), GW_OK);
  for (size_t i = 0; i < 4; i++)
    if (!marked(req, &rep2, yes[i]))
      fail_msg("protobuf: span %s not marked", yes[i]);
  assert_false(marked(req, &rep2, "b2"));
  free(buf);

  /* nothing repaired, nothing marked */
  struct gw_decode_repaired rep3 = {0};
  lim.repaired = &rep3;
  json = "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"name\":\"c1\"}]}]}]}";
  assert_int_equal(gw_decode_traces(a, GW_ENC_JSON, json, strlen(json), &lim, &req, &err), GW_OK);
  assert_int_equal(rep3.n, 0);
  gw_arena_destroy(a);
}

/* A NUL byte inside a protobuf string is removed and the rest of the string kept, as OTLP/JSON's \u0000 is,
 * on the one-pass unpack, on the generic path (the body patched before protobuf-c, which would cut the
 * string at the NUL) and on a fallback to it; the repairs are counted and their spans marked; the re-packed
 * request forwards the repaired strings, not the client's bytes. */
static const char *span_attr(const GwTraceRequest *req, size_t rs, size_t sp, const char *key)
{
  const GwSpan *s = req->resource_spans[rs]->scope_spans[0]->spans[sp];
  for (size_t i = 0; i < s->n_attributes; i++)
    if (!strcmp(s->attributes[i]->key, key))
      return s->attributes[i]->value->string_value;
  return NULL;
}

static void check_nul_repaired(const GwTraceRequest *req, const struct gw_decode_repaired *rep, const char *what)
{
  const GwResourceSpans *r0 = req->resource_spans[0], *r1 = req->resource_spans[1];
  if (strcmp(span_attr(req, 0, 0, "note"), "x@@y@@\xef\xbf\xbdz@@\xef\xbf\xbdw"))
    fail_msg("%s: note is \"%s\"", what, span_attr(req, 0, 0, "note"));
  assert_string_equal(r0->resource->attributes[0]->value->string_value, "h@@");
  assert_string_equal(r1->scope_spans[0]->spans[0]->name, "b1@@tail");
  assert_string_equal(r1->scope_spans[0]->scope->name, "scope");
  assert_string_equal(span_attr(req, 1, 1, "k"), "\xef\xbf\xbd@@@@\xef\xbf\xbd"); /* 0xff, NUL, 0xfe */
  assert_string_equal(span_attr(req, 1, 2, "cut"), "@@\xef\xbf\xbd\xef\xbf\xbd"); /* E2 82 cut by NUL, AC */
  const char *yes[] = {"a1", "a2", "b1", "b2", "b3"};
  for (size_t i = 0; i < 5; i++)
    if (!marked(req, rep, yes[i]))
      fail_msg("%s: span %s not marked", what, yes[i]);
  assert_false(marked(req, rep, "b4"));
}

static void test_nul_in_protobuf_strings(void **state)
{
  (void)state;
  struct gw_arena *a = gw_arena_create(0);
  GwTraceRequest *req;
  struct gw_err err = {0};
  /* The strings that will hold NUL, 0xff and 0xfe bytes are set after the JSON decode (protobuf-c packs
   * C strings: each is packed as a NUL-free stand-in of its length, whose bytes are then written over). */
  const char *json =
    "{\"resourceSpans\":["
    "{\"resource\":{\"attributes\":[{\"key\":\"host\",\"value\":{\"stringValue\":\"-\"}}]},"
    "\"scopeSpans\":[{\"spans\":[{\"name\":\"a1\",\"attributes\":[{\"key\":\"note\",\"value\":{\"stringValue\":"
    "\"-\"}}]},{\"name\":\"a2\"}]}]},"
    "{\"scopeSpans\":[{\"scope\":{\"name\":\"scope\"},\"spans\":[{\"name\":\"-\"},"
    "{\"name\":\"b2\",\"attributes\":[{\"key\":\"k\",\"value\":{\"stringValue\":\"-\"}}]},"
    "{\"name\":\"b3\",\"attributes\":[{\"key\":\"cut\",\"value\":{\"stringValue\":\"-\"}}]},"
    "{\"name\":\"b4\",\"attributes\":[{\"key\":\"fine\",\"value\":{\"stringValue\":\"ok\"}}]}]}]}]}";
  assert_int_equal(dec_json(a, json, &req, &err), GW_OK);
  GwResourceSpans *r0 = req->resource_spans[0], *r1 = req->resource_spans[1];
  static const char note[] = "x@@\0y@@\xffz@@\xfew", host[] = "h@@\0", b1[] = "b1@@\0tail", k[] = "\xff@@\0@@\xfe",
                    cut[] = "@@\xe2\x82\0\xac";
  const struct {
    char **dst;
    const char *bytes;
    size_t n;
  } subst[] = {{&r0->scope_spans[0]->spans[0]->attributes[0]->value->string_value, note, sizeof note - 1},
               {&r0->resource->attributes[0]->value->string_value, host, sizeof host - 1},
               {&r1->scope_spans[0]->spans[0]->name, b1, sizeof b1 - 1},
               {&r1->scope_spans[0]->spans[1]->attributes[0]->value->string_value, k, sizeof k - 1},
               {&r1->scope_spans[0]->spans[2]->attributes[0]->value->string_value, cut, sizeof cut - 1}};
  char *stand[5];
  for (size_t i = 0; i < 5; i++) {
    stand[i] = gw_arena_alloc(a, subst[i].n + 1);
    memset(stand[i], 'Q', subst[i].n);
    stand[i][subst[i].n] = 0;
    stand[i][0] = (char)('V' + i); /* each stand-in found once */
    *subst[i].dst = stand[i];
  }
  size_t len;
  uint8_t *buf = pack(req, &len);
  for (size_t i = 0; i < 5; i++) {
    uint8_t *at = memmem(buf, len, stand[i], subst[i].n);
    assert_non_null(at);
    memcpy(at, subst[i].bytes, subst[i].n);
  }

  struct gw_decode_limits lim = LIM;
  for (int path = 0; path < 3; path++) {
    /* 0: the one-pass unpack; 1: the generic path; 2: a fallback to it (an unknown field at the end) */
    size_t blen = len + (path == 2 ? 2 : 0);
    uint8_t *body = malloc(blen);
    memcpy(body, buf, len);
    if (path == 2)
      body[len] = 9 << 3 | 0, body[len + 1] = 1; /* field 9 of the request: not declared */
    struct gw_decode_repaired rep = {0};
    lim.repaired = &rep;
    int64_t before = gw_metric_get(GW_M_UTF8_FIXED);
    GwTraceRequest *got;
    if (path == 1)
      assert_int_equal(gw_decode_pb_traces_generic(a, body, blen, &lim, &got, &err), GW_OK);
    else
      assert_int_equal(gw_decode_traces(a, GW_ENC_PROTOBUF, body, blen, &lim, &got, &err), GW_OK);
    const char *what[] = {"one-pass", "generic", "fallback"};
    check_nul_repaired(got, &rep, what[path]);
    assert_int_equal(gw_metric_get(GW_M_UTF8_FIXED) - before, 5);
    if (path == 0) {
      /* the forwarded request: the repaired spans re-packed, not copied from the body */
      struct gw_pb_raw raw;
      lim.repaired = NULL;
      assert_int_equal(gw_decode_traces_raw(a, GW_ENC_PROTOBUF, body, blen, &lim, &got, &raw, &err), GW_OK);
      assert_true(raw.n == 6);
      size_t flen;
      uint8_t *fwd = gw_pb_pack_spliced(a, got, &raw, &flen);
      assert_non_null(fwd);
      assert_null(memmem(fwd, flen, "@@\0", 3));
      GwTraceRequest *again;
      struct gw_decode_repaired rep2 = {0};
      lim.repaired = &rep2;
      assert_int_equal(gw_decode_traces(a, GW_ENC_PROTOBUF, fwd, flen, &lim, &again, &err), GW_OK);
      assert_int_equal(rep2.n, 0); /* nothing left to repair */
      assert_string_equal(span_attr(again, 0, 0, "note"), "x@@y@@\xef\xbf\xbdz@@\xef\xbf\xbdw");
      assert_string_equal(again->resource_spans[1]->scope_spans[0]->spans[0]->name, "b1@@tail");
      assert_string_equal(span_attr(again, 1, 3, "fine"), "ok");
    }
    free(body);
  }
  free(buf);

  /* The resource written after the spans: the repair walk (resource first) meets the repaired strings in
   * another order than the wire gave them; the same counts and marks on both paths. */
  static const uint8_t late_resource[] = {
    0x0a, 0x26,                                                       /* ResourceSpans, 38 bytes */
    0x12, 0x15, 0x12, 0x13,                                           /* ScopeSpans { Span, 19 bytes */
    0x2a, 0x02, 's', '1',                                             /*   name "s1" */
    0x4a, 0x0d, 0x0a, 0x04, 'n', 'o', 't', 'e', 0x12, 0x05, 0x0a, 0x03, 'a', 0x00, 'b', /* note "a\0b" } */
    0x0a, 0x0d, 0x0a, 0x0b, 0x0a, 0x04, 'h', 'o', 's', 't', 0x12, 0x03, 0x0a, 0x01, 0x00, /* Resource: host "\0" */
  };
  for (int path = 0; path < 2; path++) {
    struct gw_decode_repaired rep = {0};
    lim.repaired = &rep;
    int64_t before = gw_metric_get(GW_M_UTF8_FIXED);
    GwTraceRequest *got;
    gw_rc rc = path ? gw_decode_pb_traces_generic(a, late_resource, sizeof late_resource, &lim, &got, &err)
                    : gw_decode_traces(a, GW_ENC_PROTOBUF, late_resource, sizeof late_resource, &lim, &got, &err);
    assert_int_equal(rc, GW_OK);
    assert_int_equal(gw_metric_get(GW_M_UTF8_FIXED) - before, 2);
    assert_string_equal(got->resource_spans[0]->resource->attributes[0]->value->string_value, "");
    assert_string_equal(span_attr(got, 0, 0, "note"), "ab");
    assert_true(marked(got, &rep, "s1"));
  }
  gw_arena_destroy(a);
}

/* The arena cap is a request error (TOO_LARGE), never a crash, on both paths. */
static void test_arena_cap(void **state)
{
  (void)state;
  size_t len;
  char *body = tu_read_file("sdk/otel-http-json-1.json", &len);
  struct gw_arena *a = gw_arena_create(4096);
  GwTraceRequest *req;
  struct gw_err err = {0};
  assert_int_equal(gw_decode_traces(a, GW_ENC_JSON, body, len, &LIM, &req, &err), GW_ERR(TOO_LARGE));
  gw_arena_destroy(a);
  free(body);
  body = tu_read_file("sdk/otel-http-protobuf-1.pb", &len);
  a = gw_arena_create(4096);
  assert_int_equal(gw_decode_traces(a, GW_ENC_PROTOBUF, body, len, &LIM, &req, &err), GW_ERR(TOO_LARGE));
  gw_arena_destroy(a);
  free(body);
}


/* ---- the forwarded request packed with cached sizes (gw_pb_pack) against protobuf-c ---- */

/* m packed by gw_pb_size + gw_pb_pack_sized, and by gw_pb_pack into an arena, must be protobuf-c's bytes,
 * and with our own packer (not its protobuf-c fallback). */
static void same_pack(const ProtobufCMessage *m, const char *what)
{
  size_t want_len = protobuf_c_message_get_packed_size(m);
  uint8_t *want = malloc(want_len + 1);
  assert_int_equal(protobuf_c_message_pack(m, want), want_len);
  struct gw_pb_sizes s = {0};
  size_t len = 0;
  if (!gw_pb_size(&s, m, &len))
    fail_msg("%s: gw_pb_size refused a message of our schema", what);
  assert_true(s.kv_ok && s.any_ok); /* KeyValue and AnyValue went their own paths */
  if (len != want_len)
    fail_msg("%s: gw_pb_size says %zu bytes, protobuf-c %zu", what, len, want_len);
  uint8_t *got = malloc(len + 1);
  assert_int_equal(gw_pb_pack_sized(&s, m, got), len);
  if (memcmp(got, want, len)) {
    size_t i = 0;
    while (got[i] == want[i])
      i++;
    fail_msg("%s: packed bytes differ from protobuf-c's at byte %zu of %zu", what, i, len);
  }
  assert_int_equal(s.next, s.n); /* the pack used every size the size pass kept */
  gw_pb_sizes_free(&s);
  struct gw_arena *a = gw_arena_create(0);
  size_t alen = 0;
  uint8_t *ab = gw_pb_pack(a, m, &alen);
  assert_non_null(ab);
  assert_int_equal(alen, want_len);
  assert_memory_equal(ab, want, want_len);
  gw_arena_destroy(a);
  free(got);
  free(want);
}

static void pack_file(const char *file)
{
  size_t len;
  char *body = tu_read_file(file, &len);
  bool json = strstr(file, ".json") != NULL, logs = strstr(file, "logs") != NULL;
  struct gw_arena *a = gw_arena_create(0);
  struct gw_err err = {0};
  gw_rc rc;
  const ProtobufCMessage *m;
  if (logs) {
    GwLogsRequest *req;
    rc = gw_decode_logs(a, json ? GW_ENC_JSON : GW_ENC_PROTOBUF, body, len, &LIM, &req, &err);
    m = rc ? NULL : &req->base;
  } else {
    GwTraceRequest *req;
    rc = gw_decode_traces(a, json ? GW_ENC_JSON : GW_ENC_PROTOBUF, body, len, &LIM, &req, &err);
    m = rc ? NULL : &req->base;
  }
  if (rc)
    fail_msg("%s: %s", file, err.msg);
  same_pack(m, file);
  gw_arena_destroy(a);
  free(body);
}

/* fn(file name, ctx) for every captured SDK body listed in tests/fixtures/sdk/index.jsonl; returns how many. */
static size_t each_sdk_fixture(void (*fn)(const char *file, void *ctx), void *ctx)
{
  char *index = tu_read_file("sdk/index.jsonl", NULL);
  size_t n = 0;
  for (char *line = strtok(index, "\n"); line; line = strtok(NULL, "\n")) {
    struct json_object *e = json_tokener_parse(line), *f;
    assert_non_null(e);
    assert_true(json_object_object_get_ex(e, "file", &f));
    fn(json_object_get_string(f), ctx);
    n++;
    json_object_put(e);
  }
  free(index);
  return n;
}

static void pack_sdk_fixture(const char *file, void *ctx)
{
  (void)ctx;
  char path[512];
  snprintf(path, sizeof path, "sdk/%s", file);
  pack_file(path);
}

/* Every captured SDK body (traces and logs, protobuf and OTLP/JSON) and the every-field JSON fixtures. */
static void test_pb_pack_fixtures(void **state)
{
  (void)state;
  assert_true(each_sdk_fixture(pack_sdk_fixture, NULL) >= 9);
  pack_file("json/traces-all-fields.json");
  pack_file("json/logs-all-fields.json");
}

static char *str_of(struct gw_arena *a, size_t n, char c)
{
  char *s = gw_arena_alloc(a, n + 1);
  memset(s, c, n);
  s[n] = 0;
  return s;
}

/* What the stages do to a request before it is forwarded, on the every-field fixture: values replaced
 * by shorter and longer ones (redaction; lengths crossing the 127- and 16 383-byte varint steps), attributes
 * appended (cost annotation) and dropped, the empty string as a fresh pointer and as protobuf-c's default,
 * NULL sub-messages, an empty span, negative numbers and -0.0, unknown fields at every level. */
static void test_pb_pack_edits(void **state)
{
  (void)state;
  size_t len;
  char *body = tu_read_file("json/traces-all-fields.json", &len);
  struct gw_arena *a = gw_arena_create(0);
  struct gw_err err = {0};
  GwTraceRequest *req;
  if (gw_decode_traces(a, GW_ENC_JSON, body, len, &LIM, &req, &err))
    fail_msg("%s", err.msg);
  same_pack(&req->base, "as decoded");
  GwSpan *sp = first_span(req);
  assert_true(sp->n_attributes >= 2);
  for (size_t i = 0; i < sp->n_attributes; i++)
    if (sp->attributes[i]->value && sp->attributes[i]->value->value_case == GW_AV_STRING)
      sp->attributes[i]->value->string_value = str_of(a, i % 2 ? 3 : 200, 'x');
  same_pack(&req->base, "values redacted");
  sp->name = str_of(a, 20000, 'n'); /* a three-byte length inside a span inside two wrappers */
  same_pack(&req->base, "long name");
  GwKeyValue **kv = gw_arena_alloc(a, (sp->n_attributes + 3) * sizeof *kv);
  memcpy(kv, sp->attributes, sp->n_attributes * sizeof *kv);
  for (int k = 0; k < 3; k++) {
    GwKeyValue *x = gw_arena_alloc(a, sizeof *x);
    GwAnyValue *v = gw_arena_alloc(a, sizeof *v);
    gw_pb_key_value_init(x);
    gw_pb_any_value_init(v);
    x->key = str_of(a, 25, 'k');
    x->value = v;
    v->value_case = k == 0 ? GW_AV_INT : k == 1 ? GW_AV_DOUBLE : GW_AV_STRING;
    if (k == 0)
      v->int_value = -5;
    else if (k == 1)
      v->double_value = -0.0;
    else
      v->string_value = str_of(a, 0, 0); /* a fresh "": written, unlike the default pointer */
    kv[sp->n_attributes + (size_t)k] = x;
  }
  sp->attributes = kv;
  sp->n_attributes += 3;
  same_pack(&req->base, "attributes appended");
  kv[sp->n_attributes - 1]->value->string_value = (char *)protobuf_c_empty_string;
  kv[sp->n_attributes - 2]->key = (char *)protobuf_c_empty_string;
  kv[sp->n_attributes - 3]->value = NULL;
  same_pack(&req->base, "defaults and NULL values");
  sp->n_attributes = 1; /* attributes dropped */
  sp->status = NULL;
  sp->kind = -1;
  same_pack(&req->base, "dropped, no status, negative kind");
  gw_pb_span_init(sp); /* an empty span */
  same_pack(&req->base, "empty span");
  req->resource_spans[0]->resource = NULL;
  same_pack(&req->base, "no resource");
  gw_arena_destroy(a);
  free(body);

  /* Unknown fields (kept by protobuf-c, written after the known ones) in the request, ResourceSpans,
   * Resource, ScopeSpans, Span, KeyValue and AnyValue, of every wire type. */
  static const uint8_t any[] = {0x0a, 0x01, 'v', 0xa8, 0x06, 0x07, 0x7a, 0x02, 'u', 'a'}; /* string, f101, f15 */
  uint8_t kvb[64], span[256], ss[320], rs[400], wire[512];
  size_t n = 0;
  kvb[n++] = 0x0a, kvb[n++] = 1, kvb[n++] = 'k';
  kvb[n++] = 0x12, kvb[n++] = sizeof any;
  memcpy(kvb + n, any, sizeof any), n += sizeof any;
  kvb[n++] = 0xf9, kvb[n++] = 0x07; /* field 127, 64-bit */
  memset(kvb + n, 0x11, 8), n += 8;
  size_t kvlen = n;
  n = 0;
  span[n++] = 0x0a, span[n++] = 16;
  memset(span + n, 1, 16), n += 16;
  span[n++] = 0x12, span[n++] = 8;
  memset(span + n, 2, 8), n += 8;
  span[n++] = 0x4a, span[n++] = (uint8_t)kvlen;
  memcpy(span + n, kvb, kvlen), n += kvlen;
  span[n++] = 0xc5, span[n++] = 0x3e; /* field 1000, 32-bit */
  memset(span + n, 0x22, 4), n += 4;
  size_t spanlen = n;
  n = 0;
  ss[n++] = 0x12, ss[n++] = (uint8_t)spanlen;
  memcpy(ss + n, span, spanlen), n += spanlen;
  ss[n++] = 0xa0, ss[n++] = 0x1f, ss[n++] = 0x2a; /* field 500, varint */
  size_t sslen = n;
  n = 0;
  rs[n++] = 0x0a, rs[n++] = 5, rs[n++] = 0xb2, rs[n++] = 0x01, rs[n++] = 2, rs[n++] = 'r', rs[n++] = 'x'; /* Resource{f22} */
  rs[n++] = 0x12, rs[n++] = 0x80 | (uint8_t)(sslen & 0x7f), rs[n++] = (uint8_t)(sslen >> 7);
  memcpy(rs + n, ss, sslen), n += sslen;
  rs[n++] = 0x48, rs[n++] = 0x01; /* field 9 */
  size_t rslen = n;
  n = 0;
  wire[n++] = 0x0a, wire[n++] = 0x80 | (uint8_t)(rslen & 0x7f), wire[n++] = (uint8_t)(rslen >> 7);
  memcpy(wire + n, rs, rslen), n += rslen;
  wire[n++] = 0x9a, wire[n++] = 0x05, wire[n++] = 1, wire[n++] = 'z'; /* field 83, bytes */
  a = gw_arena_create(0);
  if (gw_decode_traces(a, GW_ENC_PROTOBUF, wire, n, &LIM, &req, &err))
    fail_msg("%s", err.msg);
  sp = first_span(req);
  assert_true(req->base.n_unknown_fields == 1 && req->resource_spans[0]->base.n_unknown_fields == 1 &&
              req->resource_spans[0]->resource->base.n_unknown_fields == 1 &&
              req->resource_spans[0]->scope_spans[0]->base.n_unknown_fields == 1 && sp->base.n_unknown_fields == 1 &&
              sp->attributes[0]->base.n_unknown_fields == 1 && sp->attributes[0]->value->base.n_unknown_fields == 2);
  same_pack(&req->base, "unknown fields");
  sp->attributes[0]->value->string_value = str_of(a, 300, 'r');
  same_pack(&req->base, "unknown fields, value redacted");
  gw_arena_destroy(a);
}

/* ---- random messages of our schema, built from the descriptors ---- */

static uint64_t rnd_s = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
  rnd_s ^= rnd_s << 13;
  rnd_s ^= rnd_s >> 7;
  rnd_s ^= rnd_s << 17;
  return rnd_s;
}

static char *rnd_str(struct gw_arena *a, bool may_be_null)
{
  switch (rnd() % 8) {
  case 0: return may_be_null ? NULL : str_of(a, 0, 0);
  case 1: return (char *)protobuf_c_empty_string;
  case 2: return str_of(a, 0, 0);
  case 3: return str_of(a, 100 + rnd() % 300, 's'); /* across the 127-byte step */
  case 4: return str_of(a, rnd() % 20000, 'L');
  default: return str_of(a, rnd() % 40, 'a' + (char)(rnd() % 26));
  }
}

static void rnd_value(struct gw_arena *a, const ProtobufCFieldDescriptor *f, void *v, int depth, bool repeated);

static ProtobufCMessage *rnd_message(struct gw_arena *a, const ProtobufCMessageDescriptor *d, int depth)
{
  ProtobufCMessage *m = gw_arena_alloc(a, d->sizeof_message);
  d->message_init(m);
  char *base = (char *)m;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = d->fields + i;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = f->type == PROTOBUF_C_TYPE_MESSAGE && depth <= 0 ? 0 : rnd() % 4, step;
      switch (f->type) {
      case PROTOBUF_C_TYPE_BYTES: step = sizeof(ProtobufCBinaryData); break;
      case PROTOBUF_C_TYPE_STRING:
      case PROTOBUF_C_TYPE_MESSAGE: step = sizeof(void *); break;
      case PROTOBUF_C_TYPE_INT64:
      case PROTOBUF_C_TYPE_FIXED64:
      case PROTOBUF_C_TYPE_DOUBLE: step = 8; break;
      default: step = 4; break;
      }
      char *arr = n ? gw_arena_alloc(a, n * step) : NULL;
      for (size_t k = 0; k < n; k++)
        rnd_value(a, f, arr + k * step, depth - 1, true);
      *(size_t *)(base + f->quantifier_offset) = n;
      *(char **)(base + f->offset) = arr;
      continue;
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
      if (rnd() % 4) /* one member in four is set: the last one set wins, as in the union */
        continue;
      *(uint32_t *)(base + f->quantifier_offset) = f->id;
    } else if (rnd() % 3 == 0) {
      continue; /* left at its default */
    }
    rnd_value(a, f, base + f->offset, depth - 1, false);
  }
  if (rnd() % 4 == 0) { /* unknown fields: what protobuf-c kept is copied whatever it holds */
    size_t n = 1 + rnd() % 2;
    m->unknown_fields = gw_arena_alloc(a, n * sizeof *m->unknown_fields);
    for (size_t k = 0; k < n; k++) {
      ProtobufCMessageUnknownField *u = &m->unknown_fields[k];
      static const ProtobufCWireType wt[] = {PROTOBUF_C_WIRE_TYPE_VARINT, PROTOBUF_C_WIRE_TYPE_64BIT,
                                             PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED, PROTOBUF_C_WIRE_TYPE_32BIT};
      u->tag = 100 + (uint32_t)(rnd() % 5000);
      u->wire_type = wt[rnd() % 4];
      u->len = 1 + rnd() % 12;
      u->data = (uint8_t *)str_of(a, u->len, 'u');
    }
    m->n_unknown_fields = (unsigned)n;
  }
  return m;
}

static void rnd_value(struct gw_arena *a, const ProtobufCFieldDescriptor *f, void *v, int depth, bool repeated)
{
  static const int64_t ints[] = {0, 1, -1, 127, 128, 16384, -300, INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN};
  int64_t i = rnd() % 2 ? ints[rnd() % (sizeof ints / sizeof ints[0])] : (int64_t)rnd();
  switch (f->type) {
  case PROTOBUF_C_TYPE_BOOL: *(protobuf_c_boolean *)v = rnd() % 2; break;
  case PROTOBUF_C_TYPE_ENUM:
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32: *(int32_t *)v = (int32_t)i; break;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_FIXED64: *(int64_t *)v = i; break;
  case PROTOBUF_C_TYPE_DOUBLE: *(double *)v = rnd() % 3 == 0 ? -0.0 : (double)i / 7; break;
  case PROTOBUF_C_TYPE_STRING: *(char **)v = rnd_str(a, !repeated); break;
  case PROTOBUF_C_TYPE_BYTES: {
    ProtobufCBinaryData *b = v;
    b->len = rnd() % 3 == 0 ? 0 : rnd() % 200;
    b->data = b->len ? (uint8_t *)str_of(a, b->len, 'b') : NULL;
    break;
  }
  case PROTOBUF_C_TYPE_MESSAGE:
    *(ProtobufCMessage **)v = depth > 0 ? rnd_message(a, f->descriptor, depth) : repeated ? rnd_message(a, f->descriptor, 0) : NULL;
    break;
  default: fail_msg("a type our schema does not use: %d", (int)f->type);
  }
}

/* Random requests of both signals, every field of the schema set or not, values at the varint steps. */
static void test_pb_pack_random(void **state)
{
  (void)state;
  for (int r = 0; r < 400; r++) {
    struct gw_arena *a = gw_arena_create(0);
    const ProtobufCMessageDescriptor *d =
        r % 2 ? &opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor
              : &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor;
    char what[64];
    snprintf(what, sizeof what, "random request %d", r);
    same_pack(rnd_message(a, d, 7), what);
    gw_arena_destroy(a);
  }
}

/* ---- unchanged spans copied from the body (gw_pb_pack_spliced) ---- */

static size_t spans_of(const GwTraceRequest *req, GwSpan **out, size_t max)
{
  size_t n = 0;
  for (size_t i = 0; i < req->n_resource_spans; i++)
    for (size_t j = 0; j < req->resource_spans[i]->n_scope_spans; j++)
      for (size_t k = 0; k < req->resource_spans[i]->scope_spans[j]->n_spans; k++)
        if (n < max)
          out[n++] = req->resource_spans[i]->scope_spans[j]->spans[k];
        else
          n++;
  return n;
}

/* got decodes to the tree gw_pb_pack packed as want (the same canonical bytes once packed again). */
static GwTraceRequest *same_tree(struct gw_arena *a, const uint8_t *got, size_t glen, const uint8_t *want,
                                 size_t wlen, const char *what)
{
  GwTraceRequest *r;
  struct gw_err err = {0};
  if (gw_decode_traces(a, GW_ENC_PROTOBUF, got, glen, &LIM, &r, &err))
    fail_msg("%s: the spliced request does not decode: %s", what, err.msg);
  size_t n;
  uint8_t *c = gw_pb_pack(a, &r->base, &n);
  if (n != wlen || memcmp(c, want, n))
    fail_msg("%s: the spliced request is another tree than the packed one (%zu / %zu bytes)", what, n, wlen);
  return r;
}

static GwKeyValue *new_kv(struct gw_arena *a, const char *key, int64_t i) { return tu_kv(a, key, tu_av_int(a, i)); }

/*
 * One protobuf traces body through the splice: as decoded (the same tree as gw_pb_pack's); with every span
 * name changed in place behind the marking's back (the copy keeps the client's names: the spans really are
 * copied; a span marked changed gets its new name); then edited as the stages edit (attributes appended in
 * a new array, an attribute dropped in place, a span rewritten and marked): the same tree as gw_pb_pack's.
 * canonical: the body is protobuf-c's, so the bytes must be gw_pb_pack's too. Returns the spans copied.
 */
static size_t splice_body(const uint8_t *body, size_t len, bool canonical, const char *what)
{
  struct gw_arena *a = gw_arena_create(0);
  struct gw_err err = {0};
  GwTraceRequest *req;
  struct gw_pb_raw raw;
  if (gw_decode_traces_raw(a, GW_ENC_PROTOBUF, body, len, &LIM, &req, &raw, &err))
    fail_msg("%s: %s", what, err.msg);
  GwSpan *sp[256];
  size_t n = spans_of(req, sp, 256);
  assert_true(n <= 256);
  assert_true(raw.n == 0 || raw.n == n); /* the one-pass unpack records every span, or the generic path none */
  size_t plen, slen;
  uint8_t *pb = gw_pb_pack(a, &req->base, &plen), *sb = gw_pb_pack_spliced(a, req, &raw, &slen);
  same_tree(a, sb, slen, pb, plen, what);
  if (canonical && (slen != plen || memcmp(sb, pb, plen)))
    fail_msg("%s: spliced bytes differ from gw_pb_pack's on a protobuf-c body", what);

  char *names[256];
  for (size_t i = 0; i < n; i++) {
    names[i] = sp[i]->name;
    if (sp[i]->name && sp[i]->name[0]) {
      sp[i]->name = gw_arena_strdup(a, names[i]);
      sp[i]->name[0] = sp[i]->name[0] == '#' ? '$' : '#'; /* in the tree only */
    }
  }
  size_t cur = 0;
  if (n > 1) /* the first marked changed (a lone span stays unmarked: it must be copied) */
    gw_pb_raw_changed(&raw, &cur, sp[0]);
  size_t marked = n > 1 ? 0 : SIZE_MAX;
  sb = gw_pb_pack_spliced(a, req, &raw, &slen);
  GwTraceRequest *back;
  assert_int_equal(gw_decode_traces(a, GW_ENC_PROTOBUF, sb, slen, &LIM, &back, &err), GW_OK);
  GwSpan *bsp[256];
  assert_int_equal(spans_of(back, bsp, 256), n);
  size_t copied = 0;
  for (size_t i = 0; i < n; i++) {
    if (!names[i] || !names[i][0])
      continue;
    bool as_sent = !strcmp(bsp[i]->name, names[i]);
    if (raw.n && i != marked && !as_sent)
      fail_msg("%s: span %zu was packed from its tree though nothing marked it", what, i);
    if ((!raw.n || i == marked) && strcmp(bsp[i]->name, sp[i]->name))
      fail_msg("%s: span %zu was copied though %s", what, i, raw.n ? "marked changed" : "nothing was recorded");
    copied += as_sent;
  }
  for (size_t i = 0; i < n; i++)
    sp[i]->name = names[i];
  raw.v && n ? (void)(raw.v[0].changed = false) : (void)0;

  if (n) { /* cost annotations: a new array, the decoded attributes first */
    GwKeyValue **kv = gw_arena_alloc(a, (sp[0]->n_attributes + 2) * sizeof *kv);
    if (sp[0]->n_attributes)
      memcpy(kv, sp[0]->attributes, sp[0]->n_attributes * sizeof *kv);
    kv[sp[0]->n_attributes] = new_kv(a, "genai_gateway.cost.total_usd", 5);
    kv[sp[0]->n_attributes + 1] = new_kv(a, "gen_ai.usage.cost", -7);
    sp[0]->attributes = kv;
    sp[0]->n_attributes += 2;
  }
  if (n > 1 && sp[1]->n_attributes) { /* an attribute dropped in place, not marked */
    memmove(sp[1]->attributes, sp[1]->attributes + 1, (sp[1]->n_attributes - 1) * sizeof *sp[1]->attributes);
    sp[1]->n_attributes--;
  }
  if (n > 2 && sp[2]->n_attributes) { /* a stamp replacing a decoded attribute, in a new array */
    GwKeyValue **kv = gw_arena_alloc(a, sp[2]->n_attributes * sizeof *kv);
    memcpy(kv, sp[2]->attributes + 1, (sp[2]->n_attributes - 1) * sizeof *kv);
    kv[sp[2]->n_attributes - 1] = new_kv(a, "genai_gateway.prompt_hash", 1);
    sp[2]->attributes = kv;
  }
  if (n > 3) { /* rewritten and marked */
    sp[3]->name = gw_arena_strdup(a, "[REDACTED]");
    cur = 0;
    gw_pb_raw_changed(&raw, &cur, sp[3]);
  }
  pb = gw_pb_pack(a, &req->base, &plen);
  sb = gw_pb_pack_spliced(a, req, &raw, &slen);
  same_tree(a, sb, slen, pb, plen, what);
  if (canonical && (slen != plen || memcmp(sb, pb, plen)))
    fail_msg("%s: edited, spliced bytes differ from gw_pb_pack's on a protobuf-c body", what);
  gw_arena_destroy(a);
  return copied;
}

static void splice_sdk_fixture(const char *file, void *ctx)
{
  if (!strstr(file, ".pb") || strstr(file, "logs"))
    return;
  char path[512];
  snprintf(path, sizeof path, "sdk/%s", file);
  size_t len;
  char *body = tu_read_file(path, &len);
  *(size_t *)ctx += splice_body((const uint8_t *)body, len, false, file);
  free(body);
}

/* m without its unknown fields, at every level (rnd_message's are random bytes, seldom a valid body). */
static void strip_unknown(ProtobufCMessage *m)
{
  if (!m)
    return;
  m->n_unknown_fields = 0;
  const ProtobufCMessageDescriptor *d = m->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE)
      continue;
    char *member = (char *)m + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(size_t *)(void *)((char *)m + f->quantifier_offset);
      for (size_t k = 0; k < n; k++)
        strip_unknown((*(ProtobufCMessage ***)(void *)member)[k]);
    } else if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ||
               *(uint32_t *)(void *)((char *)m + f->quantifier_offset) == f->id) {
      strip_unknown(*(ProtobufCMessage **)(void *)member);
    }
  }
}

static void test_pb_pack_spliced(void **state)
{
  (void)state;
  size_t copied = 0;
  assert_true(each_sdk_fixture(splice_sdk_fixture, &copied) >= 9);
  assert_true(copied > 0); /* the SDKs' bodies are copied span by span */

  /* every field, as protobuf-c writes it: byte for byte */
  size_t len;
  char *json = tu_read_file("json/traces-all-fields.json", &len);
  struct gw_arena *a = gw_arena_create(0);
  struct gw_err err = {0};
  GwTraceRequest *req;
  assert_int_equal(gw_decode_traces(a, GW_ENC_JSON, json, len, &LIM, &req, &err), GW_OK);
  size_t blen = gw_pb_trace_request_size(req);
  uint8_t *body = gw_arena_alloc(a, blen);
  gw_pb_trace_request_pack(req, body);
  assert_true(splice_body(body, blen, true, "traces-all-fields") > 0);

  /* a span written out of field order, with a default value written, and a trailing attribute: the copy
   * keeps the client's bytes, decodes to the same tree, and the appended attributes follow the decoded ones */
  GwSpan *sp = first_span(req);
  size_t slen = protobuf_c_message_get_packed_size(&sp->base);
  uint8_t *sbytes = gw_arena_alloc(a, slen + 64), *w = sbytes;
  static const uint8_t zero_dropped[] = {10 << 3 | 0, 0}; /* dropped_attributes_count = 0 */
  static const uint8_t kind_server[] = {6 << 3 | 0, 2};   /* kind again, after it */
  memcpy(w, zero_dropped, 2);
  w += 2;
  w += protobuf_c_message_pack(&sp->base, w);
  memcpy(w, kind_server, 2);
  w += 2;
  slen = (size_t)(w - sbytes);
  /* the request around it, by hand: ResourceSpans { ScopeSpans { Span } } */
  uint8_t *frame = gw_arena_alloc(a, slen + 32), *f = frame;
  size_t ss_len = 1 + (slen < 128 ? 1 : slen < 16384 ? 2 : 3) + slen;
  size_t rs_len = 1 + (ss_len < 128 ? 1 : ss_len < 16384 ? 2 : 3) + ss_len;
  uint8_t tmp[3][8];
  size_t lens[3] = {rs_len, ss_len, slen};
  uint8_t tags[3] = {1 << 3 | 2, 2 << 3 | 2, 2 << 3 | 2};
  for (int lv = 0; lv < 3; lv++) {
    *f++ = tags[lv];
    size_t v = lens[lv], k = 0;
    while (v >= 0x80) {
      tmp[lv][k++] = (uint8_t)(v | 0x80);
      v >>= 7;
    }
    tmp[lv][k++] = (uint8_t)v;
    memcpy(f, tmp[lv], k);
    f += k;
  }
  memcpy(f, sbytes, slen);
  f += slen;
  size_t flen = (size_t)(f - frame);
  GwTraceRequest *odd;
  struct gw_pb_raw raw;
  assert_int_equal(gw_decode_traces_raw(a, GW_ENC_PROTOBUF, frame, flen, &LIM, &odd, &raw, &err), GW_OK);
  assert_int_equal(raw.n, 1);
  GwSpan *osp = first_span(odd);
  assert_int_equal(osp->kind, 2);
  GwKeyValue **kv = gw_arena_alloc(a, (osp->n_attributes + 1) * sizeof *kv);
  memcpy(kv, osp->attributes, osp->n_attributes * sizeof *kv);
  kv[osp->n_attributes] = new_kv(a, "appended", 42);
  osp->attributes = kv;
  osp->n_attributes++;
  size_t plen, splen;
  uint8_t *pb = gw_pb_pack(a, &odd->base, &plen), *spb = gw_pb_pack_spliced(a, odd, &raw, &splen);
  GwTraceRequest *back = same_tree(a, spb, splen, pb, plen, "out of field order");
  /* the client's bytes, default and all (its last field numbered 9 or less is its last: the appended
   * attribute follows them) */
  assert_non_null(memmem(spb, splen, sbytes, slen));
  assert_null(memmem(pb, plen, sbytes, slen));
  GwSpan *bsp = first_span(back);
  assert_string_equal(bsp->attributes[bsp->n_attributes - 1]->key, "appended");
  gw_pb_splice = false; /* the switch: every span packed */
  spb = gw_pb_pack_spliced(a, odd, &raw, &splen);
  gw_pb_splice = true;
  assert_int_equal(splen, plen);
  assert_memory_equal(spb, pb, plen);
  gw_arena_destroy(a);
  free(json);

  /* random requests (unknown fields and all: the one-pass unpack may refuse them, then nothing is copied) */
  int decoded = 0;
  size_t copied_random = 0;
  for (int r = 0; r < 200; r++) {
    struct gw_arena *ra = gw_arena_create(0);
    ProtobufCMessage *m =
        rnd_message(ra, &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor, 7);
    if (r % 4)
      strip_unknown(m);
    size_t mlen = protobuf_c_message_get_packed_size(m);
    uint8_t *mb = gw_arena_alloc(ra, mlen + 1);
    protobuf_c_message_pack(m, mb);
    char what[64];
    snprintf(what, sizeof what, "random request %d", r);
    GwTraceRequest *rq;
    struct gw_err rerr = {0};
    if (gw_decode_traces(ra, GW_ENC_PROTOBUF, mb, mlen, &LIM, &rq, &rerr) == GW_OK) /* (random unknown fields
                                                                                          may not be valid) */
      copied_random += splice_body(mb, mlen, false, what), decoded++;
    gw_arena_destroy(ra);
  }
  assert_true(decoded >= 100);
  assert_true(copied_random > 0);
  print_message("random requests: %d decoded, %zu spans copied\n", decoded, copied_random);
}

/* ---- OTLP/JSON attributes in the SDKs' compact form (gw_json_kv_fast) against the member walk ---- */

/* body decoded with the compact reading and without: the same rc, message, tree and repair count. */
static void kvf_same(const char *body, size_t len, bool logs, const char *what, size_t *taken)
{
  struct gw_arena *a[2];
  gw_rc rc[2];
  struct gw_err err[2];
  ProtobufCMessage *m[2];
  int64_t fixed[2];
  for (int pass = 0; pass < 2; pass++) {
    gw_json_kv_fast = pass == 0;
    a[pass] = gw_arena_create(64u << 20);
    memset(&err[pass], 0, sizeof err[pass]);
    int64_t f0 = gw_metric_get(GW_M_UTF8_FIXED);
    m[pass] = NULL;
    if (logs) {
      GwLogsRequest *r = NULL;
      rc[pass] = gw_decode_logs(a[pass], GW_ENC_JSON, body, len, &LIM, &r, &err[pass]);
      m[pass] = r ? &r->base : NULL;
    } else {
      GwTraceRequest *r = NULL;
      rc[pass] = gw_decode_traces(a[pass], GW_ENC_JSON, body, len, &LIM, &r, &err[pass]);
      m[pass] = r ? &r->base : NULL;
    }
    fixed[pass] = gw_metric_get(GW_M_UTF8_FIXED) - f0;
  }
  gw_json_kv_fast = true;
  char why[512] = "";
  if (rc[0] != rc[1] || strcmp(err[0].msg, err[1].msg) || fixed[0] != fixed[1] ||
      (!rc[0] && !pb_equal(m[0], m[1], why, sizeof why)))
    fail_msg("%s: compact %d \"%s\" (%lld repaired), member walk %d \"%s\" (%lld repaired) %s", what, rc[0], err[0].msg,
             (long long)fixed[0], rc[1], err[1].msg, (long long)fixed[1], why);
  *taken += !rc[0];
  gw_arena_destroy(a[0]);
  gw_arena_destroy(a[1]);
}

static void kvf_body(const char *body, size_t len, bool logs, const char *name)
{
  char what[160];
  size_t ok = 0;
  kvf_same(body, len, logs, name, &ok);
  assert_int_equal(ok, 1);
  char *b = malloc(len + 1);
  size_t step = len / 400 + 1;
  for (size_t cut = 0; cut < len; cut += step) { /* every prefix (or every step-th) */
    snprintf(what, sizeof what, "%s cut at %zu", name, cut);
    memcpy(b, body, cut);
    kvf_same(b, cut, logs, what, &ok);
  }
  static const char bytes[] = {'"', '\\', '}', '{', ' ', '0', '1', '-', 'x', ',', ':', 'n', 't', (char)0x80,
                               (char)0xff, 0, 'e', '.', 'u', ']'};
  for (int r = 0; r < 600; r++) { /* a byte or two changed, near the attributes most times */
    memcpy(b, body, len);
    size_t at = rnd() % len;
    if (r % 3) {
      const char *k = memmem(body + at, len - at, "\"key\"", 5);
      if (k)
        at = (size_t)(k - body) + rnd() % 60;
      if (at >= len)
        at = len - 1;
    }
    b[at] = bytes[rnd() % sizeof bytes];
    if (r % 5 == 0 && at + 1 < len)
      b[at + 1] = bytes[rnd() % sizeof bytes];
    snprintf(what, sizeof what, "%s with byte %zu changed (round %d)", name, at, r);
    kvf_same(b, len, logs, what, &ok);
  }
  free(b);
}

static void kvf_fixture(const char *file, void *ctx)
{
  if (!strstr(file, ".json"))
    return;
  char path[512];
  snprintf(path, sizeof path, "sdk/%s", file);
  size_t len;
  char *body = tu_read_file(path, &len);
  kvf_body(body, len, strstr(file, "logs") != NULL, file);
  (*(int *)ctx)++;
  free(body);
}

static void test_json_kv_fast(void **state)
{
  (void)state;
  int n = 0;
  each_sdk_fixture(kvf_fixture, &n);
  assert_true(n >= 4);
  size_t len;
  char *body = tu_read_file("json/traces-all-fields.json", &len);
  kvf_body(body, len, false, "traces-all-fields.json");
  free(body);
  body = tu_read_file("json/logs-all-fields.json", &len);
  kvf_body(body, len, true, "logs-all-fields.json");
  free(body);
  /* the shapes it takes and the near misses it must leave to the member walk */
  static const char *const attrs[] = {
    "{\"key\":\"s\",\"value\":{\"stringValue\":\"plain\"}}",
    "{\"key\":\"e\",\"value\":{\"stringValue\":\"esc \\\"q\\\" \\u00e9 \\\\ \\n\"}}",
    "{\"key\":\"\",\"value\":{\"stringValue\":\"\"}}",
    "{\"key\":\"k\\u0041\",\"value\":{\"stringValue\":\"x\"}}",
    "{\"key\":\"bad\",\"value\":{\"stringValue\":\"\\ud800\"}}",
    "{\"key\":\"bad2\",\"value\":{\"stringValue\":\"\xc3\x28\"}}",
    "{\"key\":\"\xff\",\"value\":{\"stringValue\":\"k\"}}",
    "{\"key\":\"i\",\"value\":{\"intValue\":\"-42\"}}",
    "{\"key\":\"i\",\"value\":{\"intValue\":42}}",
    "{\"key\":\"i\",\"value\":{\"intValue\":-0}}",
    "{\"key\":\"i\",\"value\":{\"intValue\":\"007\"}}",
    "{\"key\":\"i\",\"value\":{\"intValue\":007}}",
    "{\"key\":\"i\",\"value\":{\"intValue\":\"999999999999999999\"}}",
    "{\"key\":\"i\",\"value\":{\"intValue\":\"9223372036854775808\"}}",
    "{\"key\":\"i\",\"value\":{\"intValue\":\"-9223372036854775808\"}}",
    "{\"key\":\"i\",\"value\":{\"intValue\":1.5}}",
    "{\"key\":\"i\",\"value\":{\"intValue\":1e3}}",
    "{\"key\":\"i\",\"value\":{\"intValue\":\"\"}}",
    "{\"key\":\"i\",\"value\":{\"intValue\":\"-\"}}",
    "{\"key\":\"b\",\"value\":{\"boolValue\":true}}",
    "{\"key\":\"b\",\"value\":{\"boolValue\":false}}",
    "{\"key\":\"b\",\"value\":{\"boolValue\":TRUE}}",
    "{\"key\":\"b\",\"value\":{\"boolValue\":truex}}",
    "{\"key\":\"d\",\"value\":{\"doubleValue\":0.25}}",
    "{\"key\":\"d\",\"value\":{\"doubleValue\":-0}}",
    "{\"key\":\"d\",\"value\":{\"doubleValue\":7}}",
    "{\"key\":\"d\",\"value\":{\"doubleValue\":-1.5e-3}}",
    "{\"key\":\"d\",\"value\":{\"doubleValue\":1E+2}}",
    "{\"key\":\"d\",\"value\":{\"doubleValue\":1e400}}",
    "{\"key\":\"d\",\"value\":{\"doubleValue\":99999999999999999999999}}",
    "{\"key\":\"d\",\"value\":{\"doubleValue\":0.1000000000000000000000000000000000000000000000000000000000000000001}}",
    "{\"key\":\"d\",\"value\":{\"doubleValue\":1e}}",
    "{\"key\":\"d\",\"value\":{\"doubleValue\":1.2.3}}",
    "{\"key\":\"d\",\"value\":{\"doubleValue\":-}}",
    "{\"key\":\"d\",\"value\":{\"doubleValue\":1x}}",
    "{\"key\":\"d\",\"value\":{\"doubleValue\":.5}}",
    "{\"key\":\"d\",\"value\":{\"doubleValue\":-Infinity}}",
    "{\"key\":\"d\",\"value\":{\"doubleValue\":NaN}}",
    "{\"key\":\"d\",\"value\":{\"doubleValue\":\"1.5\"}}",
    "{\"key\":\"d\",\"value\":{\"doubleValue\":\"NaN\"}}",
    "{\"key\":\"d\",\"value\":{\"doubleValue\":0.5 }}",
    "{\"key\":\"d\",\"value\":{\"doubleValue\":arrayValue\":{\"values\":[{\"stringValue\":\"x\"}]}}}",
    "{\"key\":\"d\",\"value\":{\"doubleValue\":\"stringValue\":\"x\"}}",
    "{\"key\":\"d\",\"value\":{\"doubleValue\":\"arrayValue\":{\"values\":[{\"stringValue\":\"x\"}]}}}",
    "{\"key\":\"n\",\"value\":{\"stringValue\":null}}",
    "{\"key\":\"n\",\"value\":null}",
    "{\"key\":\"w\", \"value\":{\"stringValue\":\"x\"}}",
    "{\"value\":{\"stringValue\":\"x\"},\"key\":\"o\"}",
    "{\"key\":\"2\",\"value\":{\"stringValue\":\"x\",\"intValue\":\"1\"}}",
    "{\"key\":\"t\",\"value\":{\"stringValue\":\"x\"},\"key\":\"t2\"}",
    "{\"key\":\"u\",\"value\":{\"stringValue\":\"x\"},\"other\":1}",
    "{\"key\":\"a\",\"value\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"x\"}]}}}",
    "{\"key\":\"a\",\"value\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"stop\"},{\"intValue\":\"7\"},{\"intValue\":-3},{\"boolValue\":true},{\"boolValue\":false},{\"doubleValue\":2.5}]}}}",
    "{\"key\":\"a\",\"value\":{\"arrayValue\":{\"values\":[]}}}",
    "{\"key\":\"a\",\"value\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"x\"} ]}}}",
    "{\"key\":\"a\",\"value\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"x\"},]}}}",
    "{\"key\":\"a\",\"value\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"x\"}}}}",
    "{\"key\":\"a\",\"value\":{\"arrayValue\":{\"values\":[{\"arrayValue\":{\"values\":[{\"stringValue\":\"in\"}]}}]}}}",
    "{\"key\":\"a\",\"value\":{\"arrayValue\":{\"values\":[{\"kvlistValue\":{\"values\":[]}}]}}}",
    "{\"key\":\"a\",\"value\":{\"arrayValue\":{\"values\":[{\"doubleValue\":NaN}]}}}",
    "{\"key\":\"a\",\"value\":{\"arrayValue\":{\"values\":[{\"doubleValue\":-}]}}}",
    "{\"key\":\"a\",\"value\":{\"arrayValue\":{\"values\":[{\"intValue\":1.5}]}}}",
    "{\"key\":\"a\",\"value\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"\\ud800\"}]}}}",
    "{\"key\":\"a\",\"value\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"x\",\"intValue\":\"1\"}]}}}",
    "{\"key\":\"a\",\"value\":{\"arrayValue\":{\"values\":[{}]}}}",
    "{\"key\":\"a\",\"value\":{\"arrayValue\":{\"values\":[null]}}}",
    "{\"key\":\"a\",\"value\":{\"arrayValue\":{\"values\":[{\"stringValue\":null}]}}}",
    "{\"key\":\"a\",\"value\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"x\"}],\"other\":1}}}",
    "{\"key\":\"a\",\"value\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"x\"}]},\"intValue\":\"1\"}}",
    "{\"key\":\"l\",\"value\":{\"kvlistValue\":{\"values\":[{\"key\":\"in\",\"value\":{\"intValue\":\"5\"}}]}}}",
    "{\"key\":\"y\",\"value\":{\"bytesValue\":\"aGk=\"}}",
    "{\"key\":\"s\",\"value\":{\"string_value\":\"snake\"}}",
    "{\"key\":\"q\",\"value\":{\"stringValue\":\"x\"}",
  };
  size_t ok = 0;
  /* arrays of 16 compact elements (taken whole) and 17 (left to the walk) */
  for (int cnt = 15; cnt <= 17; cnt++) {
    char b[2048], el[1024] = "";
    for (int e = 0; e < cnt; e++)
      strcat(el, e ? ",{\"intValue\":\"1\"}" : "{\"stringValue\":\"s\"}");
    int n2 = snprintf(b, sizeof b,
                      "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\","
                      "\"spanId\":\"0102030405060708\",\"attributes\":[{\"key\":\"a\",\"value\":{\"arrayValue\":"
                      "{\"values\":[%s]}}}]}]}]}]}",
                      el);
    kvf_same(b, (size_t)n2, false, "array of 15-17 elements", &ok);
  }
  for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
    char b[1024];
    int n2 = snprintf(b, sizeof b,
                      "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\","
                      "\"spanId\":\"0102030405060708\",\"name\":\"s\",\"attributes\":[%s,%s]}]}]}]}",
                      attrs[i], attrs[0]);
    kvf_same(b, (size_t)n2, false, attrs[i], &ok);
    for (uint32_t d = 0; d < 3; d++) { /* nesting limits at and around the attribute */
      struct gw_decode_limits lim = LIM;
      lim.max_depth = d;
      for (int pass = 0; pass < 2; pass++) {
        gw_json_kv_fast = pass == 0;
        struct gw_arena *a = gw_arena_create(0);
        struct gw_err e = {0};
        GwTraceRequest *r;
        gw_rc rc = gw_decode_traces(a, GW_ENC_JSON, b, (size_t)n2, &lim, &r, &e);
        static gw_rc want;
        static char want_msg[256];
        if (!pass) {
          want = rc;
          snprintf(want_msg, sizeof want_msg, "%s", e.msg);
        } else if (rc != want || strcmp(e.msg, want_msg)) {
          fail_msg("%s at max_depth %u: %d \"%s\" against %d \"%s\"", attrs[i], d, want, want_msg, rc, e.msg);
        }
        gw_arena_destroy(a);
      }
      gw_json_kv_fast = true;
    }
  }
  assert_true(ok >= 20);
}

/* A schema with a type the packer does not write: gw_pb_size says no and gw_pb_pack gives protobuf-c's
 * bytes. */
static void test_pb_pack_fallback(void **state)
{
  (void)state;
  ProtobufCMessageDescriptor d = opentelemetry__proto__trace__v1__status__descriptor;
  ProtobufCFieldDescriptor f[8];
  assert_true(d.n_fields <= 8);
  memcpy(f, d.fields, d.n_fields * sizeof *f);
  for (unsigned i = 0; i < d.n_fields; i++)
    if (f[i].type == PROTOBUF_C_TYPE_ENUM)
      f[i].type = PROTOBUF_C_TYPE_SINT32; /* zigzag: not ours */
  d.fields = f;
  GwStatus st;
  gw_pb_status_init(&st);
  st.base.descriptor = &d;
  st.code = -3;
  st.message = "m";
  struct gw_pb_sizes s = {0};
  size_t len;
  assert_false(gw_pb_size(&s, &st.base, &len));
  gw_pb_sizes_free(&s);
  uint8_t want[32];
  size_t want_len = protobuf_c_message_pack(&st.base, want);
  assert_int_equal(want_len, 5);
  assert_int_equal(want[4], 5); /* zigzag(-3) after message "m": protobuf-c did write a sint32 */
  struct gw_arena *a = gw_arena_create(0);
  uint8_t *got = gw_pb_pack(a, &st.base, &len);
  assert_non_null(got);
  assert_int_equal(len, want_len);
  assert_memory_equal(got, want, len);
  gw_arena_destroy(a);
}

/* ---- the pre-scan's estimate against the per-field descriptor look-up it replaced ---- */

/* ref_prescan is gw_pb_prescan as it was before its per-process field table (bench/README.md, lever 8d):
 * every field's cost from protobuf_c_message_descriptor_get_field, every message's from its descriptor's
 * field list, varints through gw_pb_varint alone. Both must give the same answer, estimate and refusal,
 * for any input. */
enum ref_node {
  R_TRACE_REQ, R_LOGS_REQ, R_RESOURCE_SPANS, R_RESOURCE_LOGS, R_RESOURCE, R_SCOPE_SPANS, R_SCOPE_LOGS, R_SCOPE,
  R_SPAN, R_EVENT, R_LINK, R_STATUS, R_LOG_RECORD, R_KEY_VALUE, R_ANY_VALUE, R_ARRAY, R_KVLIST, R_ENTITY_REF,
  R_LEAF
};

static const ProtobufCMessageDescriptor *const ref_desc[R_LEAF] = {
  [R_TRACE_REQ] = &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor,
  [R_LOGS_REQ] = &opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor,
  [R_RESOURCE_SPANS] = &opentelemetry__proto__trace__v1__resource_spans__descriptor,
  [R_RESOURCE_LOGS] = &opentelemetry__proto__logs__v1__resource_logs__descriptor,
  [R_RESOURCE] = &opentelemetry__proto__resource__v1__resource__descriptor,
  [R_SCOPE_SPANS] = &opentelemetry__proto__trace__v1__scope_spans__descriptor,
  [R_SCOPE_LOGS] = &opentelemetry__proto__logs__v1__scope_logs__descriptor,
  [R_SCOPE] = &opentelemetry__proto__common__v1__instrumentation_scope__descriptor,
  [R_SPAN] = &opentelemetry__proto__trace__v1__span__descriptor,
  [R_EVENT] = &opentelemetry__proto__trace__v1__span__event__descriptor,
  [R_LINK] = &opentelemetry__proto__trace__v1__span__link__descriptor,
  [R_STATUS] = &opentelemetry__proto__trace__v1__status__descriptor,
  [R_LOG_RECORD] = &opentelemetry__proto__logs__v1__log_record__descriptor,
  [R_KEY_VALUE] = &opentelemetry__proto__common__v1__key_value__descriptor,
  [R_ANY_VALUE] = &opentelemetry__proto__common__v1__any_value__descriptor,
  [R_ARRAY] = &opentelemetry__proto__common__v1__array_value__descriptor,
  [R_KVLIST] = &opentelemetry__proto__common__v1__key_value_list__descriptor,
  [R_ENTITY_REF] = &opentelemetry__proto__common__v1__entity_ref__descriptor,
};

static enum ref_node ref_child(enum ref_node n, uint32_t field)
{
  switch (n) {
  case R_TRACE_REQ: return field == 1 ? R_RESOURCE_SPANS : R_LEAF;
  case R_LOGS_REQ: return field == 1 ? R_RESOURCE_LOGS : R_LEAF;
  case R_RESOURCE_SPANS: return field == 1 ? R_RESOURCE : field == 2 ? R_SCOPE_SPANS : R_LEAF;
  case R_RESOURCE_LOGS: return field == 1 ? R_RESOURCE : field == 2 ? R_SCOPE_LOGS : R_LEAF;
  case R_RESOURCE: return field == 1 ? R_KEY_VALUE : field == 3 ? R_ENTITY_REF : R_LEAF;
  case R_SCOPE_SPANS: return field == 1 ? R_SCOPE : field == 2 ? R_SPAN : R_LEAF;
  case R_SCOPE_LOGS: return field == 1 ? R_SCOPE : field == 2 ? R_LOG_RECORD : R_LEAF;
  case R_SCOPE: return field == 3 ? R_KEY_VALUE : R_LEAF;
  case R_SPAN:
    return field == 9 ? R_KEY_VALUE : field == 11 ? R_EVENT : field == 13 ? R_LINK : field == 15 ? R_STATUS : R_LEAF;
  case R_EVENT: return field == 3 ? R_KEY_VALUE : R_LEAF;
  case R_LINK: return field == 4 ? R_KEY_VALUE : R_LEAF;
  case R_LOG_RECORD: return field == 5 ? R_ANY_VALUE : field == 6 ? R_KEY_VALUE : R_LEAF;
  case R_KEY_VALUE: return field == 2 ? R_ANY_VALUE : R_LEAF;
  case R_ANY_VALUE: return field == 5 ? R_ARRAY : field == 6 ? R_KVLIST : R_LEAF;
  case R_ARRAY: return field == 1 ? R_ANY_VALUE : R_LEAF;
  case R_KVLIST: return field == 1 ? R_KEY_VALUE : R_LEAF;
  default: return R_LEAF;
  }
}

#define RR16(n) (((uint64_t)(n) + 15) & ~(uint64_t)15)

static uint64_t ref_message_cost(enum ref_node n)
{
  const ProtobufCMessageDescriptor *d = ref_desc[n];
  uint64_t c = RR16(d->sizeof_message);
  for (unsigned i = 0; i < d->n_fields; i++)
    if (d->fields[i].label == PROTOBUF_C_LABEL_REPEATED)
      c += 16;
  return c;
}

static uint64_t ref_slab_cost(uint32_t fields)
{
  uint64_t c = 0, have = 16;
  for (unsigned k = 1; have < fields; k++) {
    uint64_t slab = (uint64_t)1 << (k + 4);
    c += RR16(slab * 32);
    have += slab;
  }
  return c;
}

static uint64_t ref_field_cost(enum ref_node n, uint32_t field, uint32_t wt, uint64_t v, uint64_t raw)
{
  const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(ref_desc[n], field);
  if (!fd)
    return 24 + RR16(raw);
  uint64_t c = 0;
  if (fd->label == PROTOBUF_C_LABEL_REPEATED)
    c += fd->type == PROTOBUF_C_TYPE_BYTES ? sizeof(ProtobufCBinaryData) : 8;
  if (wt == 2) {
    if (fd->type == PROTOBUF_C_TYPE_STRING)
      c += RR16(v + 1);
    else if (fd->type == PROTOBUF_C_TYPE_BYTES && v)
      c += RR16(v);
    else if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
      c += RR16(v);
  }
  return c;
}

static gw_rc ref_prescan(enum gw_pb_kind kind, const void *buf, size_t len, uint32_t max_depth, size_t *need,
                         struct gw_err *err)
{
  enum { MAXD = 256, FRAMES = 3 * MAXD + 8 };
  static const uint8_t empty[1];
  struct {
    enum ref_node n;
    uint32_t any_depth, fields;
    const uint8_t *end;
  } stack[FRAMES];
  if (max_depth > MAXD)
    max_depth = MAXD;
  const uint8_t *p = len ? buf : empty, *start = p;
  int top = 0;
  stack[0].n = kind == GW_PB_TRACES_REQUEST ? R_TRACE_REQ : R_LOGS_REQ;
  stack[0].any_depth = 0;
  stack[0].fields = 0;
  stack[0].end = p + len;
  uint64_t cost = ref_message_cost(stack[0].n);
  for (;;) {
    if (p == stack[top].end) {
      cost += ref_slab_cost(stack[top].fields);
      if (top == 0) {
        *need = cost > SIZE_MAX ? SIZE_MAX : (size_t)cost;
        return GW_OK;
      }
      top--;
      continue;
    }
    const uint8_t *field_start = p;
    uint64_t key;
    if (!gw_pb_varint(&p, stack[top].end, &key))
      return gw_err_set(err, GW_ERR(DECODE), "protobuf: truncated or malformed field key at byte %zu",
                        (size_t)(p - start));
    if (key >> 32)
      return gw_err_set(err, GW_ERR(DECODE), "protobuf: field number out of range at byte %zu", (size_t)(p - start));
    uint32_t field = (uint32_t)(key >> 3), wt = (uint32_t)(key & 7);
    if (field == 0)
      return gw_err_set(err, GW_ERR(DECODE), "protobuf: field number 0 at byte %zu", (size_t)(p - start));
    stack[top].fields++;
    uint64_t v = 0;
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
      enum ref_node c = ref_child(stack[top].n, field);
      if (c == R_LEAF) {
        p += v;
        break;
      }
      uint32_t d = stack[top].any_depth + (c == R_ANY_VALUE ? 1 : 0);
      if (d > max_depth || top + 1 >= FRAMES)
        return gw_err_set(err, GW_ERR(TOO_DEEP), "protobuf: attribute value nested deeper than %u levels", max_depth);
      cost += ref_field_cost(stack[top].n, field, wt, v, 0) + ref_message_cost(c);
      top++;
      stack[top].n = c;
      stack[top].any_depth = d;
      stack[top].fields = 0;
      stack[top].end = p + v;
      continue;
    }
    default:
      return gw_err_set(err, GW_ERR(DECODE), "protobuf: unsupported wire type %u at byte %zu", wt,
                        (size_t)(p - start));
    }
    cost += ref_field_cost(stack[top].n, field, wt, v, (uint64_t)(p - field_start));
  }
truncated:
  return gw_err_set(err, GW_ERR(DECODE), "protobuf: truncated message at byte %zu (of %zu)", (size_t)(p - start),
                    len);
}

static size_t prescan_ok, prescan_refused;

/* Both pre-scans on one input: the same code, message and estimate. */
static void same_prescan(enum gw_pb_kind kind, const uint8_t *buf, size_t len, uint32_t max_depth, const char *what)
{
  /* an exact-size copy, so that a read past len is caught by valgrind and ASan */
  uint8_t *copy = malloc(len ? len : 1);
  if (len)
    memcpy(copy, buf, len);
  struct gw_err e1 = {0}, e2 = {0};
  size_t n1 = 0, n2 = 0;
  gw_rc r1 = gw_pb_prescan(kind, copy, len, max_depth, &n1, &e1);
  gw_rc r2 = ref_prescan(kind, copy, len, max_depth, &n2, &e2);
  if (r1 != r2 || strcmp(e1.msg, e2.msg) || (!r1 && n1 != n2))
    fail_msg("%s (%zu bytes, depth %u): pre-scan %d \"%s\" need %zu, reference %d \"%s\" need %zu", what, len,
             max_depth, (int)r1, e1.msg, n1, (int)r2, e2.msg, n2);
  if (r1)
    prescan_refused++;
  else
    prescan_ok++;
  free(copy);
}

/* Cuts at every byte (or every step-th), then random flips of one to three bytes. */
static void prescan_edits(enum gw_pb_kind kind, const uint8_t *body, size_t len, size_t step, int flips,
                          const char *what)
{
  for (size_t cut = 0; cut < len; cut += step)
    same_prescan(kind, body, cut, 32, what);
  uint8_t *m = malloc(len ? len : 1);
  for (int i = 0; i < flips && len; i++) {
    memcpy(m, body, len);
    for (int k = 1 + (int)(rnd() % 3); k > 0; k--) {
      size_t at = rnd() % len;
      m[at] = rnd() % 4 ? (uint8_t)(m[at] ^ (1u << (rnd() % 8))) : (uint8_t)rnd();
    }
    static const uint32_t depths[] = {0, 1, 2, 32, 1000};
    same_prescan(kind, m, len, depths[rnd() % 5], what);
  }
  free(m);
}

/* One protobuf SDK body through both pre-scans, as its own signal and as the other, then edited. */
static void prescan_sdk_fixture(const char *file, void *ctx)
{
  if (!strstr(file, ".pb"))
    return;
  char path[512];
  snprintf(path, sizeof path, "sdk/%s", file);
  size_t len;
  uint8_t *body = (uint8_t *)tu_read_file(path, &len);
  enum gw_pb_kind kind = strstr(file, "logs") ? GW_PB_LOGS_REQUEST : GW_PB_TRACES_REQUEST;
  same_prescan(kind, body, len, 32, file);
  /* the wrong signal's pre-scan too: other messages behind the same field numbers */
  same_prescan(kind == GW_PB_LOGS_REQUEST ? GW_PB_TRACES_REQUEST : GW_PB_LOGS_REQUEST, body, len, 32, file);
  prescan_edits(kind, body, len, strncmp(file, "otel-grpc", 9) ? 7 : 1, 300, file);
  free(body);
  (*(size_t *)ctx)++;
}

/* Every captured protobuf body (cut at every byte for one of each signal), random requests of both signals
 * from the descriptors (unknown fields at numbers 100 and up), fields on both sides of the table's end, and
 * random edits of all of them: accepted and refused alike, the estimate and the message are the same. */
static void test_pb_prescan_same_as_descriptors(void **state)
{
  (void)state;
  prescan_ok = prescan_refused = 0;
  size_t files = 0;
  each_sdk_fixture(prescan_sdk_fixture, &files);
  assert_true(files >= 8);

  for (int r = 0; r < 300; r++) {
    struct gw_arena *a = gw_arena_create(0);
    bool logs = r % 2;
    const ProtobufCMessageDescriptor *d =
        logs ? &opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor
             : &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor;
    ProtobufCMessage *m = rnd_message(a, d, 7);
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    assert_int_equal(protobuf_c_message_pack(m, buf), len);
    char what[64];
    snprintf(what, sizeof what, "random request %d", r);
    enum gw_pb_kind kind = logs ? GW_PB_LOGS_REQUEST : GW_PB_TRACES_REQUEST;
    same_prescan(kind, buf, len, 32, what);
    same_prescan(kind, buf, len, 3, what);
    prescan_edits(kind, buf, len, len / 40 + 1, 20, what);
    free(buf);
    gw_arena_destroy(a);
  }

  /* A span with unknown fields of every wire type at the numbers around the table's end (FIELD_TABLE, 32)
   * and a declared field (9, attributes) after them: each its own cost. */
  for (uint32_t field = 16; field <= 40; field++) {
    struct rb b;
    rb_init(&b, 256);
    size_t span_end = b.pos;
    rb_prepend(&b, "\x4a\x00", 2); /* attributes: one empty KeyValue */
    uint8_t fixed[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    rb_prepend(&b, fixed, 4);
    rb_varint(&b, (uint64_t)field << 3 | 5);
    rb_prepend(&b, fixed, 8);
    rb_varint(&b, (uint64_t)field << 3 | 1);
    rb_prepend(&b, "abc", 3);
    rb_varint(&b, 3);
    rb_varint(&b, (uint64_t)field << 3 | 2);
    rb_varint(&b, 300);
    rb_varint(&b, (uint64_t)field << 3 | 0);
    rb_wrap(&b, span_end, 2);  /* ScopeSpans.spans */
    rb_wrap(&b, span_end, 2);  /* ResourceSpans.scope_spans */
    rb_wrap(&b, span_end, 1);  /* request.resource_spans */
    char what[64];
    snprintf(what, sizeof what, "span with unknown field %u", field);
    same_prescan(GW_PB_TRACES_REQUEST, rb_data(&b), rb_len(&b), 32, what);
    same_prescan(GW_PB_LOGS_REQUEST, rb_data(&b), rb_len(&b), 32, what);
    prescan_edits(GW_PB_TRACES_REQUEST, rb_data(&b), rb_len(&b), 1, 50, what);
    free(b.buf);
  }
  /* both outcomes were seen plenty: the comparison is not all refusals */
  assert_true(prescan_ok > 1000);
  assert_true(prescan_refused > 10000);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sdk_fixtures),
      cmocka_unit_test(test_json_equals_protobuf),
      cmocka_unit_test(test_json_int_value),
      cmocka_unit_test(test_json_other_values),
      cmocka_unit_test(test_json_ids),
      cmocka_unit_test(test_json_hex_ids_every_byte),
      cmocka_unit_test(test_json_errors),
      cmocka_unit_test(test_json_garbage_offset),
      cmocka_unit_test(test_json_escapes),
      cmocka_unit_test(test_json_syntax_errors),
      cmocka_unit_test(test_json_lenient),
      cmocka_unit_test(test_json_enums_and_big_numbers),
      cmocka_unit_test(test_json_limits),
      cmocka_unit_test(test_json_cases),
      cmocka_unit_test(test_json_fixtures_expected),
      cmocka_unit_test(test_json_random_edits),
      cmocka_unit_test(test_json_too_deep),
      cmocka_unit_test(test_pb_too_deep),
      cmocka_unit_test(test_pb_truncated),
      cmocka_unit_test(test_pb_not_a_request),
      cmocka_unit_test(test_pb_empty_and_too_large),
      cmocka_unit_test(test_gzip_round_trip),
      cmocka_unit_test(test_gzip_exact_limit),
      cmocka_unit_test(test_gzip_bomb),
      cmocka_unit_test(test_gzip_ratio),
      cmocka_unit_test(test_deflate_size),
      cmocka_unit_test(test_gzip_bomb_counted),
      cmocka_unit_test(test_gzip_bomb_counted_early),
      cmocka_unit_test(test_gzip_bad),
      cmocka_unit_test(test_zlib_bodies),
      cmocka_unit_test(test_gzip_trailer),
      cmocka_unit_test(test_zstd_bodies),
      cmocka_unit_test(test_zstd_bombs),
      cmocka_unit_test(test_crc32c),
      cmocka_unit_test(test_snappy_bodies),
      cmocka_unit_test(test_snappy_bombs),
      cmocka_unit_test(test_lz4_bodies),
      cmocka_unit_test(test_lz4_bombs),
      cmocka_unit_test(test_gzip_concatenated),
      cmocka_unit_test(test_utf8_fix),
      cmocka_unit_test(test_utf8_fix_positions),
      cmocka_unit_test(test_json_string_ends),
      cmocka_unit_test(test_json_unescape_blocks),
      cmocka_unit_test(test_utf8_in_place),
      cmocka_unit_test(test_utf8_in_requests),

      cmocka_unit_test(test_utf8_repaired_spans),
      cmocka_unit_test(test_nul_in_protobuf_strings),
      cmocka_unit_test(test_arena_cap),
      cmocka_unit_test(test_pb_pack_fixtures),
      cmocka_unit_test(test_pb_pack_edits),
      cmocka_unit_test(test_pb_pack_random),
      cmocka_unit_test(test_pb_pack_fallback),
      cmocka_unit_test(test_pb_pack_spliced),
      cmocka_unit_test(test_json_kv_fast),
      cmocka_unit_test(test_pb_prescan_same_as_descriptors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
