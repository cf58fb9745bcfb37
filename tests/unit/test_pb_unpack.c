/*
 * test_pb_unpack.c: the one-pass protobuf unpack (decode/pb_unpack.c) against the generic path it replaces
 * (gw_pb_prescan + protobuf-c + the UTF-8 repair walk, gw_decode_pb_*_generic). The contract: for every
 * body, the same return code and error message, and when it decodes an equal struct tree (tests/pb_equal.h
 * compares every field generically) and the same count of repaired strings. Inputs: the captured SDK
 * bodies cut at every byte (or every 7th) and with hundreds of random byte flips each, random requests of
 * both signals from the descriptors, re-encoded with unknown fields, fields twice, bad strings (NUL,
 * invalid UTF-8, both, 0xff and 0xfe beside NUL), non-canonical varints; AnyValue nesting at and past the
 * limit; arenas too small.
 * Also the arena's mark and rewind.
 * GW_SHARED_FIXTURES=DIR adds another directory of captured bodies (an index.jsonl like tests/fixtures/sdk's);
 * GW_UNPACK_INPUTS="FILE..." replays inputs the decode fuzzers saved (selector byte first).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "../pb_equal.h"
#include "core/metrics.h"
#include "decode/decode.h"
#include "testutil.h"

/* ---- random numbers, a byte builder ---- */

static uint64_t rnd_s = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void)
{
  rnd_s ^= rnd_s << 13;
  rnd_s ^= rnd_s >> 7;
  rnd_s ^= rnd_s << 17;
  return rnd_s;
}

struct wb {
  uint8_t *b;
  size_t n, cap;
};

static void wb_put(struct wb *w, const void *p, size_t n)
{
  if (w->n + n > w->cap) {
    w->cap = (w->n + n) * 2 + 64;
    w->b = realloc(w->b, w->cap);
    assert_non_null(w->b);
  }
  if (n)
    memcpy(w->b + w->n, p, n);
  w->n += n;
}

static void wb_varint(struct wb *w, uint64_t v)
{
  uint8_t t[10];
  size_t n = 0;
  do {
    t[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v);
  wb_put(w, t, n);
}

/* A varint of at least min bytes (non-canonical: padded with continuation bytes of zero). */
static void wb_varint_min(struct wb *w, uint64_t v, size_t min)
{
  uint8_t t[10];
  size_t n = 0;
  do {
    t[n] = (uint8_t)(v & 0x7f);
    v >>= 7;
    n++;
  } while ((v || n < min) && n < 10);
  for (size_t i = 0; i + 1 < n; i++)
    t[i] |= 0x80;
  wb_put(w, t, n);
}

/* A length-delimited field holding in's bytes (in is freed). */
static void wb_field(struct wb *w, uint32_t field, struct wb *in)
{
  wb_varint(w, (uint64_t)field << 3 | 2);
  wb_varint(w, in->n);
  wb_put(w, in->b, in->n);
  free(in->b);
  *in = (struct wb){0};
}

/* ---- the comparison ---- */

static size_t n_fast, n_error, n_fallback, n_cases;

/* Both paths on one body (an exact-size copy, so a read past it is caught by valgrind): the same code and
 * message, equal trees, the same repairs counted. Then the fast path alone: what it answered (GW_OK,
 * an error, or a fallback) is tallied, and an error must be the generic path's. */
static void same(enum gw_pb_kind kind, const uint8_t *buf, size_t len, uint32_t max_depth, const char *what)
{
  uint8_t *copy = malloc(len ? len : 1);
  if (len)
    memcpy(copy, buf, len);
  struct gw_decode_limits lim = {.max_bytes = 64 << 20, .max_depth = max_depth};
  struct gw_arena *a1 = gw_arena_create(0), *a2 = gw_arena_create(0), *a3 = gw_arena_create(0);
  struct gw_err e1 = {0}, e2 = {0}, e3 = {0};
  ProtobufCMessage *m1 = NULL, *m2 = NULL, *m3 = NULL;
  gw_rc r1, r2;
  int64_t f0 = gw_metric_get(GW_M_UTF8_FIXED);
  if (kind == GW_PB_TRACES_REQUEST) {
    r1 = gw_decode_traces(a1, GW_ENC_PROTOBUF, copy, len, &lim, (GwTraceRequest **)(void *)&m1, &e1);
  } else {
    r1 = gw_decode_logs(a1, GW_ENC_PROTOBUF, copy, len, &lim, (GwLogsRequest **)(void *)&m1, &e1);
  }
  int64_t f1 = gw_metric_get(GW_M_UTF8_FIXED);
  if (kind == GW_PB_TRACES_REQUEST)
    r2 = gw_decode_pb_traces_generic(a2, copy, len, &lim, (GwTraceRequest **)(void *)&m2, &e2);
  else
    r2 = gw_decode_pb_logs_generic(a2, copy, len, &lim, (GwLogsRequest **)(void *)&m2, &e2);
  int64_t f2 = gw_metric_get(GW_M_UTF8_FIXED);
  char why[2048] = "";
  if (r1 != r2 || strcmp(e1.msg, e2.msg) || (!r1 && !pb_equal(m1, m2, why, sizeof why)) || f1 - f0 != f2 - f1)
    fail_msg("%s (%zu bytes, depth %u): decode %d \"%s\", generic %d \"%s\"; %s; repairs %lld vs %lld", what, len,
             max_depth, r1, e1.msg, r2, e2.msg, why, (long long)(f1 - f0), (long long)(f2 - f1));
  int r3 = gw_pb_unpack(kind, a3, copy, len, max_depth, &m3, &e3);
  if (r3 == GW_OK) {
    n_fast++;
    if (r2 || !pb_equal(m3, m2, why, sizeof why))
      fail_msg("%s: fast path OK, generic %d \"%s\"; %s", what, r2, e2.msg, why);
  } else if (r3 == GW_PB_FALLBACK) {
    n_fallback++;
  } else {
    n_error++;
    if (r3 != r2 || strcmp(e3.msg, e2.msg))
      fail_msg("%s: fast path %d \"%s\", generic %d \"%s\"", what, r3, e3.msg, r2, e2.msg);
  }
  n_cases++;
  gw_arena_destroy(a1);
  gw_arena_destroy(a2);
  gw_arena_destroy(a3);
  free(copy);
}

static const uint32_t DEPTHS[] = {0, 1, 2, 32, 1000};

/* Cuts at every step-th byte, then random flips of one to three bytes. */
static void edits(enum gw_pb_kind kind, const uint8_t *body, size_t len, size_t step, int flips, const char *what)
{
  for (size_t cut = 0; cut < len; cut += step)
    same(kind, body, cut, 32, what);
  uint8_t *m = malloc(len ? len : 1);
  for (int i = 0; i < flips && len; i++) {
    memcpy(m, body, len);
    for (int k = 1 + (int)(rnd() % 3); k > 0; k--) {
      size_t at = rnd() % len;
      m[at] = rnd() % 4 ? (uint8_t)(m[at] ^ (1u << (rnd() % 8))) : (uint8_t)rnd();
    }
    same(kind, m, len, DEPTHS[rnd() % 5], what);
  }
  free(m);
}

/* ---- re-encoding a valid body with the unusual in it ---- */

/* A string for a string field: mostly valid (ASCII, multi-byte), sometimes NUL, invalid UTF-8, empty. */
static void bad_string(struct wb *w)
{
#define S(lit) {lit, sizeof lit - 1}
  static const struct {
    const char *s;
    size_t n;
  } t[] = {
    S(""), S("plain"), S("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), S("nul\0inside"), S("\0"), S("bad \xff byte"),
    S("\xff\0\xfe nul among 0xff and 0xfe"), S("cut by nul \xe2\x82\0\xac"), S("\0\0\xff"),
    S("cut \xe2\x82"), S("over \xc0\xaf long"), S("surrogate \xed\xa0\x80"), S("high \xf4\x90\x80\x80"), S("tail \xc3"),
  };
#undef S
  size_t i = rnd() % (sizeof t / sizeof t[0]);
  wb_put(w, t[i].s, t[i].n);
}

/* An unknown field (a number the message does not declare) of a random wire type. */
static void unknown_field(struct wb *w)
{
  uint32_t field = 18 + (uint32_t)(rnd() % 40);
  static const uint8_t fixed[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  switch (rnd() % 4) {
  case 0: wb_varint(w, (uint64_t)field << 3); wb_varint(w, rnd() % 1000); break;
  case 1: wb_varint(w, (uint64_t)field << 3 | 1); wb_put(w, fixed, 8); break;
  case 2: wb_varint(w, (uint64_t)field << 3 | 2); wb_varint(w, 3); wb_put(w, "abc", 3); break;
  default: wb_varint(w, (uint64_t)field << 3 | 5); wb_put(w, fixed, 4); break;
  }
}

/* The fields of message d in [p, end) into w, each with small odds of: an unknown field before it, being
 * written twice, a bad string in place of its value, a non-canonical (padded) key or length. Sub-messages
 * are re-encoded the same way. */
static void remix(const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end, struct wb *w, int odds)
{
  while (p < end) {
    const uint8_t *rec = p;
    uint64_t key, v = 0;
    assert_true(gw_pb_varint(&p, end, &key));
    uint32_t field = (uint32_t)(key >> 3), wt = (uint32_t)(key & 7);
    const uint8_t *val = p;
    switch (wt) {
    case 0: assert_true(gw_pb_varint(&p, end, &v)); break;
    case 1: p += 8; break;
    case 5: p += 4; break;
    case 2:
      assert_true(gw_pb_varint(&p, end, &v));
      val = p;
      p += v;
      break;
    default: fail_msg("remix: wire type %u", wt);
    }
    if (rnd() % odds == 0)
      unknown_field(w);
    int times = rnd() % odds == 0 ? 2 : 1;
    const ProtobufCFieldDescriptor *f = d ? protobuf_c_message_descriptor_get_field(d, field) : NULL;
    for (int t = 0; t < times; t++) {
      bool pad = rnd() % (4 * odds) == 0;
      if (wt == 2 && f && (f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING)) {
        struct wb in = {0};
        if (f->type == PROTOBUF_C_TYPE_MESSAGE)
          remix(f->descriptor, val, val + v, &in, odds);
        else if (rnd() % odds == 0)
          bad_string(&in);
        else
          wb_put(&in, val, v);
        if (pad) { /* key and length padded to 2 to 7 bytes (protobuf-c reads neither past 5) */
          wb_varint_min(w, key, 2 + rnd() % 6);
          wb_varint_min(w, in.n, 2 + rnd() % 6);
          wb_put(w, in.b, in.n);
          free(in.b);
        } else {
          wb_field(w, field, &in);
        }
      } else if (wt == 0 && rnd() % odds == 0) {
        /* another varint: non-canonical (padded), past 32 bits, 10 bytes, or a bool of 2 */
        static const uint8_t vs[][10] = {{0x02}, {0x80, 0x00}, {0x81, 0x80, 0x00}, {0x80, 0x80, 0x80, 0x80, 0x10},
                                         {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
                                         {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7e}};
        static const size_t vn[] = {1, 2, 3, 5, 10, 10};
        size_t k = rnd() % 6;
        wb_put(w, rec, (size_t)(val - rec));
        wb_put(w, vs[k], vn[k]);
      } else {
        wb_put(w, rec, (size_t)(p - rec));
      }
    }
  }
}

/* ---- random requests from the descriptors (as test_decode.c's, strings of valid text) ---- */

static char *str_of(struct gw_arena *a, size_t n, char c)
{
  char *s = gw_arena_alloc(a, n + 1);
  memset(s, c, n);
  s[n] = 0;
  return s;
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
      default: step = 8; break;
      }
      char *arr = n ? gw_arena_alloc(a, n * step) : NULL;
      for (size_t k = 0; k < n; k++)
        rnd_value(a, f, arr + k * step, depth - 1, true);
      *(size_t *)(base + f->quantifier_offset) = n;
      *(char **)(base + f->offset) = arr;
      continue;
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
      if (rnd() % 4)
        continue;
      *(uint32_t *)(base + f->quantifier_offset) = f->id;
    } else if (rnd() % 3 == 0) {
      continue;
    }
    rnd_value(a, f, base + f->offset, depth - 1, false);
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
  case PROTOBUF_C_TYPE_STRING:
    switch (rnd() % 5) {
    case 0: *(char **)v = (char *)protobuf_c_empty_string; break;
    case 1: *(char **)v = str_of(a, 100 + rnd() % 300, 's'); break;
    default: *(char **)v = str_of(a, rnd() % 40, (char)('a' + rnd() % 26)); break;
    }
    break;
  case PROTOBUF_C_TYPE_BYTES: {
    ProtobufCBinaryData *b = v;
    b->len = rnd() % 3 == 0 ? 0 : rnd() % 200;
    b->data = b->len ? (uint8_t *)str_of(a, b->len, 'b') : NULL;
    break;
  }
  case PROTOBUF_C_TYPE_MESSAGE:
    *(ProtobufCMessage **)v = depth > 0 ? rnd_message(a, f->descriptor, depth)
                              : repeated ? rnd_message(a, f->descriptor, 0) : NULL;
    break;
  default: fail_msg("a type our schema does not use: %d", (int)f->type);
  }
}

static const ProtobufCMessageDescriptor *desc_of(enum gw_pb_kind kind)
{
  return kind == GW_PB_LOGS_REQUEST ? &opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor
                                    : &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor;
}

/* ---- the tests ---- */

static void fixture(const char *path, const char *name)
{
  size_t len;
  uint8_t *body = (uint8_t *)tu_read_file(path, &len);
  enum gw_pb_kind kind = strstr(name, "logs") ? GW_PB_LOGS_REQUEST : GW_PB_TRACES_REQUEST;
  /* an SDK body takes the fast path whole */
  struct gw_arena *a = gw_arena_create(0);
  struct gw_err err;
  ProtobufCMessage *m;
  int rc = gw_pb_unpack(kind, a, body, len, 32, &m, &err);
  if (rc != GW_OK)
    fail_msg("%s: the fast path said %d", name, rc);
  gw_arena_destroy(a);
  same(kind, body, len, 32, name);
  same(kind == GW_PB_LOGS_REQUEST ? GW_PB_TRACES_REQUEST : GW_PB_LOGS_REQUEST, body, len, 32, name);
  edits(kind, body, len, strncmp(name, "otel-grpc", 9) ? 7 : 1, 400, name);
  /* re-encoded with the unusual in it, then edited */
  for (int r = 0; r < 40; r++) {
    struct wb w = {0};
    remix(desc_of(kind), body, body + len, &w, 4 + (int)(rnd() % 40));
    same(kind, w.b, w.n, 32, name);
    edits(kind, w.b, w.n, w.n / 20 + 1, 10, name);
    free(w.b);
  }
  free(body);
}

static void each_fixture_dir(const char *dir, size_t *files)
{
  char path[1024];
  snprintf(path, sizeof path, "%s/index.jsonl", dir);
  FILE *f = fopen(path, "r");
  if (!f)
    return;
  fclose(f);
  char *index = tu_read_file(path, NULL);
  for (char *line = strtok(index, "\n"); line; line = strtok(NULL, "\n")) {
    struct json_object *e = json_tokener_parse(line), *fo;
    assert_non_null(e);
    assert_true(json_object_object_get_ex(e, "file", &fo));
    const char *name = json_object_get_string(fo);
    if (strstr(name, ".pb")) {
      snprintf(path, sizeof path, "%s/%s", dir, name);
      fixture(path, name);
      (*files)++;
    }
    json_object_put(e);
  }
  free(index);
}

/* Every captured protobuf body (tests/fixtures/sdk, and GW_SHARED_FIXTURES when set): as its own signal and
 * as the other, cut, flipped, re-encoded. */
static void test_unpack_fixtures(void **state)
{
  (void)state;
  n_fast = n_error = n_fallback = n_cases = 0;
  size_t files = 0;
  each_fixture_dir(GW_FIXTURES "/sdk", &files);
  const char *shared = getenv("GW_SHARED_FIXTURES");
  if (shared)
    each_fixture_dir(shared, &files);
  assert_true(files >= 8);
  print_message("fixtures: %zu files, %zu bodies: %zu fast, %zu errors from the fast path, %zu fallbacks\n", files,
                n_cases, n_fast, n_error, n_fallback);
  assert_true(n_fast > 500 && n_error > 5000 && n_fallback > 1000);
}

/* Random requests of both signals: as packed, re-encoded, edited. */
static void test_unpack_random(void **state)
{
  (void)state;
  n_fast = n_error = n_fallback = n_cases = 0;
  for (int r = 0; r < 400; r++) {
    struct gw_arena *a = gw_arena_create(0);
    enum gw_pb_kind kind = r % 2 ? GW_PB_LOGS_REQUEST : GW_PB_TRACES_REQUEST;
    ProtobufCMessage *m = rnd_message(a, desc_of(kind), 7);
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    assert_int_equal(protobuf_c_message_pack(m, buf), len);
    char what[64];
    snprintf(what, sizeof what, "random request %d", r);
    /* every field of both schemas is one the fast path takes: a request packed by protobuf-c never falls back */
    struct gw_arena *fa = gw_arena_create(0);
    ProtobufCMessage *fm;
    struct gw_err ferr;
    if (gw_pb_unpack(kind, fa, buf, len, 32, &fm, &ferr) != GW_OK)
      fail_msg("%s: the fast path did not take a packed request", what);
    gw_arena_destroy(fa);
    same(kind, buf, len, 32, what);
    same(kind, buf, len, 2, what);
    for (int k = 0; k < 6; k++) {
      struct wb w = {0};
      remix(desc_of(kind), buf, buf + len, &w, 2 + (int)(rnd() % 20));
      same(kind, w.b, w.n, DEPTHS[rnd() % 5], what);
      edits(kind, w.b, w.n, w.n / 10 + 1, 5, what);
      free(w.b);
    }
    edits(kind, buf, len, len / 40 + 1, 20, what);
    free(buf);
    gw_arena_destroy(a);
  }
  print_message("random: %zu bodies: %zu fast, %zu errors from the fast path, %zu fallbacks\n", n_cases, n_fast,
                n_error, n_fallback);
  assert_true(n_fast > 1000 && n_error > 1000 && n_fallback > 1000);
}

/* A span whose one attribute's value is AnyValue nested depth deep (through arrays, or key-value lists
 * when kv), the innermost a string. */
static void deep_request(struct wb *out, uint32_t depth, bool kv)
{
  struct wb v = {0};
  wb_varint(&v, 1 << 3 | 2); /* AnyValue.string_value */
  wb_varint(&v, 4);
  wb_put(&v, "leaf", 4);
  for (uint32_t d = 1; d < depth; d++) {
    struct wb c = {0}, av = {0};
    if (kv) { /* KeyValueList { values: KeyValue { key, value } } */
      struct wb kvb = {0};
      wb_varint(&kvb, 1 << 3 | 2);
      wb_varint(&kvb, 1);
      wb_put(&kvb, "k", 1);
      wb_field(&kvb, 2, &v);
      wb_field(&c, 1, &kvb);
      wb_field(&av, 6, &c);
    } else { /* ArrayValue { values: AnyValue } */
      wb_field(&c, 1, &v);
      wb_field(&av, 5, &c);
    }
    v = av;
  }
  struct wb kvb = {0}, span = {0}, ss = {0}, rs = {0};
  wb_varint(&kvb, 1 << 3 | 2);
  wb_varint(&kvb, 4);
  wb_put(&kvb, "attr", 4);
  wb_field(&kvb, 2, &v);
  wb_field(&span, 9, &kvb);
  wb_field(&ss, 2, &span);
  wb_field(&rs, 2, &ss);
  wb_field(out, 1, &rs);
}

static void test_unpack_deep(void **state)
{
  (void)state;
  n_fast = n_error = n_fallback = n_cases = 0;
  static const uint32_t depths[] = {1, 2, 31, 32, 33, 100, 255, 256, 257, 300, 600};
  static const uint32_t limits[] = {0, 1, 32, 256, 1000};
  for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++)
    for (int kv = 0; kv < 2; kv++) {
      struct wb w = {0};
      deep_request(&w, depths[i], kv);
      for (size_t l = 0; l < sizeof limits / sizeof limits[0]; l++) {
        char what[64];
        snprintf(what, sizeof what, "AnyValue %u deep (%s), limit %u", depths[i], kv ? "kvlist" : "array", limits[l]);
        same(GW_PB_TRACES_REQUEST, w.b, w.n, limits[l], what);
      }
      edits(GW_PB_TRACES_REQUEST, w.b, w.n, w.n / 50 + 1, 30, "deep");
      free(w.b);
    }
  assert_true(n_fast > 10 && n_error > 10);
}

/* Hand-made bodies for each fallback reason and each wire error: which way the fast path goes. */
static void test_unpack_cases(void **state)
{
  (void)state;
  static const struct {
    const char *name;
    const char *bytes;
    size_t len;
    int fast; /* GW_OK, GW_PB_FALLBACK, or < 0: that error from the fast path itself */
  } cases[] = {
    {"empty", "", 0, GW_OK},
    {"one empty ResourceSpans", "\x0a\x00", 2, GW_OK},
    {"unknown field", "\x10\x01", 2, GW_PB_FALLBACK},
    {"field 31 unknown", "\xf8\x01\x01", 3, GW_PB_FALLBACK},
    {"field 40 unknown", "\xc0\x02\x01", 3, GW_PB_FALLBACK},
    {"wrong wire type", "\x08\x01", 2, GW_PB_FALLBACK},
    {"resource twice", "\x0a\x04\x0a\x00\x0a\x00", 6, GW_PB_FALLBACK},
    {"status twice", "\x0a\x0c\x12\x0a\x12\x08\x7a\x02\x18\x01\x7a\x02\x18\x02", 14, GW_PB_FALLBACK},
    /* a string with NUL or invalid UTF-8: repaired here, as the generic path repairs it */
    {"scope name with NUL", "\x0a\x09\x12\x07\x0a\x05\x0a\x03\x61\x00\x62", 11, GW_OK},
    {"scope name invalid", "\x0a\x08\x12\x06\x0a\x04\x0a\x02\x61\xff", 10, GW_OK},
    {"scope name with NUL and 0xff", "\x0a\x0a\x12\x08\x0a\x06\x0a\x04\xff\x00\x61\xfe", 12, GW_OK},
    {"scope name twice", "\x0a\x0b\x12\x09\x0a\x07\x0a\x01\x61\x0a\x02\x62\x63", 13, GW_OK},
    {"padded key", "\x8a\x00\x00", 3, GW_OK},
    {"key 6 bytes", "\x8a\x80\x80\x80\x80\x00\x00", 7, GW_PB_FALLBACK},
    {"length 6 bytes", "\x0a\x80\x80\x80\x80\x80\x00", 7, GW_PB_FALLBACK},
    /* scope name "a" with its length in 6 bytes, its key in 5 and 6 */
    {"string length 6 bytes", "\x0a\x0c\x12\x0a\x0a\x08\x0a\x81\x80\x80\x80\x80\x00\x61", 14, GW_PB_FALLBACK},
    {"string key 5 bytes", "\x0a\x0b\x12\x09\x0a\x07\x8a\x80\x80\x80\x00\x01\x61", 13, GW_OK},
    {"string key 6 bytes", "\x0a\x0c\x12\x0a\x0a\x08\x8a\x80\x80\x80\x80\x00\x01\x61", 14, GW_PB_FALLBACK},
    /* AnyValue.bool_value (attribute of a span) of 2, padded false, padded true, 10 bytes of high bits only */
    {"bool 2", "\x0a\x0a\x12\x08\x12\x06\x4a\x04\x12\x02\x10\x02", 12, GW_OK},
    {"oneof twice", "\x0a\x0c\x12\x0a\x12\x08\x4a\x06\x12\x04\x10\x02\x18\x05", 14, GW_PB_FALLBACK},
    /* a span attribute of the usual shape (key, string value) with a NUL in its key or its value: left by the
     * usual shape's reading to the member walk, which repairs it */
    {"attribute key with NUL", "\x0a\x12\x12\x10\x12\x0e\x4a\x0c\x0a\x03" "a\x00" "b\x12\x05\x0a\x03" "xzy", 20,
     GW_OK},
    {"attribute value with NUL", "\x0a\x12\x12\x10\x12\x0e\x4a\x0c\x0a\x03" "abc\x12\x05\x0a\x03" "x\x00" "y", 20,
     GW_OK},
    {"attribute of the usual shape", "\x0a\x12\x12\x10\x12\x0e\x4a\x0c\x0a\x03" "abc\x12\x05\x0a\x03" "xzy", 20, GW_OK},
    {"bool padded false", "\x0a\x0b\x12\x09\x12\x07\x4a\x05\x12\x03\x10\x80\x00", 13, GW_OK},
    {"bool padded true", "\x0a\x0b\x12\x09\x12\x07\x4a\x05\x12\x03\x10\x80\x01", 13, GW_OK},
    {"bool of bit 64", "\x0a\x13\x12\x11\x12\x0f\x4a\x0d\x12\x0b\x10\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02", 21, GW_OK},
    /* Span.kind (enum) and dropped_attributes_count (uint32) past 32 bits */
    {"enum past 32 bits", "\x0a\x0c\x12\x0a\x12\x08\x30\x81\x80\x80\x80\x80\x80\x01", 14, GW_OK},
    {"uint32 past 32 bits", "\x0a\x0c\x12\x0a\x12\x08\x50\xff\xff\xff\xff\xff\xff\x01", 14, GW_OK},
    {"truncated key", "\x8a", 1, GW_ERR(DECODE)},
    {"field 0", "\x02\x00", 2, GW_ERR(DECODE)},
    {"wire type 6", "\x0e", 1, GW_ERR(DECODE)},
    {"wire type 3", "\x0b", 1, GW_ERR(DECODE)},
    {"key over 32 bits", "\x8a\x80\x80\x80\x80\x01", 6, GW_ERR(DECODE)},
    {"length past the end", "\x0a\x05\x0a\x00", 4, GW_ERR(DECODE)},
    {"fixed64 cut", "\x0a\x0c\x12\x0a\x12\x08\x39\x01\x02\x03\x04\x05\x06\x07", 14, GW_ERR(DECODE)},
    {"varint cut", "\x0a\x05\x12\x03\x12\x01\x40", 7, GW_ERR(DECODE)},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct gw_arena *a = gw_arena_create(0);
    struct gw_err err = {0};
    ProtobufCMessage *m;
    int rc = gw_pb_unpack(GW_PB_TRACES_REQUEST, a, cases[i].bytes, cases[i].len, 32, &m, &err);
    if (rc != cases[i].fast)
      fail_msg("%s: fast path %d (%s), want %d", cases[i].name, rc, err.msg, cases[i].fast);
    gw_arena_destroy(a);
    same(GW_PB_TRACES_REQUEST, (const uint8_t *)cases[i].bytes, cases[i].len, 32, cases[i].name);
  }
}

/* A budget that counts. */
static size_t budget_held, budget_limit = SIZE_MAX;
static bool b_take(void *ctx, size_t n)
{
  (void)ctx;
  if (budget_held + n > budget_limit)
    return false;
  budget_held += n;
  return true;
}
static void b_give(void *ctx, size_t n)
{
  (void)ctx;
  budget_held -= n;
}

/* Rewind forgets the allocations, the cap's count and the budget taken since the mark, and the flags. */
/* The same cases and random bodies with the strings read without AVX-512 (the one-pass unpack copies short
 * ASCII strings with masked loads and stores where the CPU has it; valgrind runs see only this path). */
static void test_unpack_no_avx512(void **state)
{
  gw_utf8_no_avx512 = true;
  test_unpack_cases(state);
  test_unpack_random(state);
  gw_utf8_no_avx512 = false;
}

static void test_arena_rewind(void **state)
{
  (void)state;
  struct gw_arena_budget b = {b_take, b_give, NULL};
  struct gw_arena *a = gw_arena_create(8 << 20);
  assert_true(gw_arena_set_budget(a, &b));
  char *x = gw_arena_alloc(a, 100);
  memset(x, 'x', 100);
  size_t used = gw_arena_used(a), held = budget_held;
  struct gw_arena_mark mk;
  gw_arena_mark(a, &mk);
  for (int i = 0; i < 200; i++)
    assert_non_null(gw_arena_alloc(a, 10000 + (size_t)i * 100));
  assert_non_null(gw_arena_alloc(a, 3 << 20));
  assert_null(gw_arena_alloc(a, 7 << 20)); /* over the cap: exhausted */
  assert_true(gw_arena_exhausted(a));
  assert_true(gw_arena_used(a) > used && budget_held > held);
  gw_arena_rewind(a, &mk);
  assert_int_equal(gw_arena_used(a), used);
  assert_int_equal(budget_held, held);
  assert_false(gw_arena_exhausted(a));
  /* the allocation before the mark still grows in place, and memory is handed out again */
  assert_ptr_equal(gw_arena_grow(a, x, 100, 200), x);
  assert_non_null(gw_arena_alloc(a, 5 << 20));
  /* refused by the budget, then rewound: no longer refused */
  gw_arena_mark(a, &mk);
  budget_limit = budget_held;
  assert_null(gw_arena_alloc(a, 2 << 20));
  assert_true(gw_arena_refused(a));
  gw_arena_rewind(a, &mk);
  assert_false(gw_arena_refused(a) || gw_arena_exhausted(a));
  budget_limit = SIZE_MAX;
  gw_arena_destroy(a);
  assert_int_equal(budget_held, 0);
}

/* Arenas of every size around what a body needs, with and without a budget: the fast path runs out, falls
 * back, and the answer (and the arena's count and the budget afterwards) is the generic path's alone. */
static void test_unpack_small_arena(void **state)
{
  (void)state;
  size_t len;
  uint8_t *body = (uint8_t *)tu_read_file("sdk/otel-http-protobuf-1.pb", &len);
  struct gw_decode_limits lim = {.max_bytes = 64 << 20, .max_depth = 32};
  struct gw_arena_budget b = {b_take, b_give, NULL};
  size_t ok = 0, refused = 0;
  for (size_t cap = 1024; cap < 400 * 1024; cap += cap / 16) {
    for (int budget = 0; budget < 2; budget++) {
      struct gw_arena *a1 = gw_arena_create(cap), *a2 = gw_arena_create(cap);
      struct gw_err e1 = {0}, e2 = {0};
      GwTraceRequest *m1, *m2;
      size_t limit = budget ? cap / 2 : SIZE_MAX;
      budget_limit = SIZE_MAX;
      if (budget) {
        assert_true(gw_arena_set_budget(a1, &b));
        assert_true(gw_arena_set_budget(a2, &b));
      }
      budget_limit = budget_held + limit;
      gw_rc r2 = gw_decode_pb_traces_generic(a2, body, len, &lim, &m2, &e2);
      size_t held2 = budget_held;
      budget_limit = budget_held + limit;
      gw_rc r1 = gw_decode_traces(a1, GW_ENC_PROTOBUF, body, len, &lim, &m1, &e1);
      char why[2048] = "";
      if (r1 == GW_OK) {
        /* accepted: the generic path accepted too (equal trees), or refused by its estimate only */
        if (r2 == GW_OK && !pb_equal(&m1->base, &m2->base, why, sizeof why))
          fail_msg("cap %zu: %s", cap, why);
        if (r2 != GW_OK && r2 != GW_ERR(TOO_LARGE))
          fail_msg("cap %zu: generic %d \"%s\"", cap, r2, e2.msg);
        ok++;
      } else {
        /* refused: as the generic path refuses, the same memory counted */
        if (r1 != r2 || strcmp(e1.msg, e2.msg) || gw_arena_refused(a1) != gw_arena_refused(a2))
          fail_msg("cap %zu budget %d: %d \"%s\" vs generic %d \"%s\"", cap, budget, r1, e1.msg, r2, e2.msg);
        (void)held2;
        refused++;
      }
      gw_arena_destroy(a1);
      gw_arena_destroy(a2);
      budget_limit = SIZE_MAX;
      assert_int_equal(budget_held, 0);
    }
  }
  print_message("small arenas: %zu accepted, %zu refused\n", ok, refused);
  assert_true(ok > 5 && refused > 5);
  free(body);
}

/* Inputs saved by the decode fuzzers (GW_UNPACK_INPUTS: files, space-separated; a selector byte first, bit 0
 * JSON, skipped): both paths, as traces and as logs. */
static void test_unpack_inputs(void **state)
{
  (void)state;
  const char *list = getenv("GW_UNPACK_INPUTS");
  if (!list)
    skip();
  char *dup = strdup(list);
  for (char *f = strtok(dup, " "); f; f = strtok(NULL, " ")) {
    size_t len;
    uint8_t *body = (uint8_t *)tu_read_file(f, &len);
    if (len && !(body[0] & 1)) {
      same(GW_PB_TRACES_REQUEST, body + 1, len - 1, 16, f);
      same(GW_PB_LOGS_REQUEST, body + 1, len - 1, 16, f);
    }
    free(body);
  }
  free(dup);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_unpack_cases),
      cmocka_unit_test(test_unpack_fixtures),
      cmocka_unit_test(test_unpack_random),
      cmocka_unit_test(test_unpack_deep),
      cmocka_unit_test(test_unpack_no_avx512),
      cmocka_unit_test(test_arena_rewind),
      cmocka_unit_test(test_unpack_small_arena),
      cmocka_unit_test(test_unpack_inputs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
