/*
 * decode_json.c: OTLP/JSON request bodies (SPEC-FACTS §1.6) into the same protobuf-c structs the binary
 * path produces, allocated in the request arena, so nothing downstream knows which encoding arrived.
 *
 * Decisions:
 * - One pass over the body with the pull lexer (json_lex.c), writing each field into its struct as it
 *   is read (the field readers are in json_values.c): no document model. Memory is the structs and
 *   strings the request keeps, all in the arena and under its cap; unknown fields are skipped (checked,
 *   never stored).
 * - Field names are lowerCamelCase; the snake_case proto names are accepted too (lenient, §1.6 [U]),
 *   the camelCase one winning when both come, in any order, as before. Unknown fields are ignored and
 *   null means "absent" (a null resets what an earlier key set). A key given twice: the last wins.
 *   Several AnyValue keys in one object: the last in the body wins.
 * - ids are hex (case-insensitive), not base64; an empty id is zero bytes (length checks are for later
 *   stages, as on the binary path). bytesValue is base64, standard or URL-safe, padding optional.
 * - 64-bit integers come as decimal strings or JSON numbers; other integers are accepted either way too.
 *   Enums are numbers (§1.6), or their proto names ("SPAN_KIND_CLIENT"), as proto3 JSON and the
 *   Collector accept. An integer past 64 bits is "out of range" (json-c used to clamp it silently).
 * - A wrong JSON type for a known field is a DECODE error naming the field's path by index
 *   ("resourceSpans[0].scopeSpans[0].spans[3].traceId: not hex"); keys and values never appear in it.
 *   Syntax errors give the offset and the path being read. The first error stops the decode.
 * - Depth: AnyValue nesting is checked against max_depth on entering each value; any JSON nesting
 *   (skipped values too) stops at 4 * max_depth + 16 levels, which every request within max_depth fits.
 * The AnyValue / KeyValue / Resource / Scope readers take no trace-specific state, for the logs decoder.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/metrics.h"
#include "decode/decode.h"
#include "decode/decode_int.h"

#define N2(c, s) {c, s, sizeof c - 1, sizeof s - 1}
#define N1(c) {c, NULL, sizeof c - 1, 0}

#define INIT_FN(name, type, init)                                                                             \
  static void name(void *m) { init((type *)m); }

/* ---- common.v1: AnyValue, KeyValue; reused by the logs decoder ---- */

static gw_rc any_value(struct gw_json *j, GwAnyValue *av, uint32_t depth);

/* A repeated KeyValue member (attributes, kvlistValue.values); depth is that of the values. */
static gw_rc key_values(struct gw_json *j, const struct gw_json_fld *fd, GwKeyValue ***out, size_t *n_out,
                        uint32_t depth);

enum { AV_STRING, AV_BOOL, AV_INT, AV_DOUBLE, AV_BYTES, AV_ARRAY, AV_KVLIST, AV__N };
static const struct gw_json_name av_names[] = {
  [AV_STRING] = N2("stringValue", "string_value"), [AV_BOOL] = N2("boolValue", "bool_value"),
  [AV_INT] = N2("intValue", "int_value"),          [AV_DOUBLE] = N2("doubleValue", "double_value"),
  [AV_BYTES] = N2("bytesValue", "bytes_value"),    [AV_ARRAY] = N2("arrayValue", "array_value"),
  [AV_KVLIST] = N2("kvlistValue", "kvlist_value"),
};

enum { ARR_VALUES, ARR__N };
static const struct gw_json_name values_names[] = {[ARR_VALUES] = N1("values")};

/* {"values": [AnyValue...]}, at its '{'. */
static gw_rc array_value(struct gw_json *j, GwArrayValue *arr, uint32_t depth)
{
  uint32_t seen = 0;
  int r, st = 0;
  const char *k;
  size_t kn;
  gw_json_obj_begin(j);
  while ((r = gw_json_obj_next(j, &st, &k, &kn)) == 1) {
    bool camel = true;
    gw_rc rc;
    if (gw_json_lookup(values_names, ARR__N, k, kn, &camel) < 0) {
      if ((rc = gw_json_skip(j)))
        return rc;
      continue;
    }
    struct gw_json_fld fd = {&seen, ARR_VALUES, true, "values"};
    if (gw_json_take(j, &fd, &rc) == GW_JSON_NULL) {
      if (rc)
        return rc;
      arr->values = NULL;
      arr->n_values = 0;
      continue;
    }
    gw_json_push_name(j, "values");
    enum gw_jt t = gw_json_peek(j);
    struct gw_json_vec v = {0};
    int ast = 0;
    if (t != GW_JT_ARR)
      return gw_json_want(j, t, "want an array");
    gw_json_arr_begin(j);
    while ((r = gw_json_arr_next(j, &ast)) == 1) {
      gw_json_push_idx(j, v.n);
      GwAnyValue *av = gw_json_new_obj(j, sizeof *av, &rc);
      if (!av || (rc = any_value(j, av, depth)) || (rc = gw_json_vec_push(j, &v, av)))
        return rc;
      gw_json_pop(j);
    }
    if (r < 0)
      return r;
    if ((rc = gw_json_vec_finish(j, &v, (void ***)&arr->values, &arr->n_values)))
      return rc;
    gw_json_pop(j);
  }
  return r;
}

/* AnyValue, at its '{': one of stringValue, boolValue, intValue, doubleValue, arrayValue, kvlistValue,
 * bytesValue; none is an empty value (valid since OTLP 1.9). depth: this value's nesting level, 1 for an
 * attribute. */
static gw_rc any_value(struct gw_json *j, GwAnyValue *av, uint32_t depth)
{
  gw_pb_any_value_init(av);
  if (depth > j->max_depth) {
    char msg[64];
    snprintf(msg, sizeof msg, "value nested deeper than %u levels", j->max_depth);
    return gw_json_fail(j, GW_ERR(TOO_DEEP), msg);
  }
  int r, st = 0;
  const char *k;
  size_t kn;
  gw_json_obj_begin(j);
  while ((r = gw_json_obj_next(j, &st, &k, &kn)) == 1) {
    bool camel = true;
    gw_rc rc = GW_OK;
    int f = gw_json_lookup(av_names, AV__N, k, kn, &camel);
    if (f < 0) {
      if ((rc = gw_json_skip(j)))
        return rc;
      continue;
    }
    enum gw_jt t = gw_json_peek(j);
    if (t == GW_JT_NULL) {
      if ((rc = gw_json_null(j)))
        return rc;
      continue;
    }
    gw_json_push_name(j, camel ? av_names[f].camel : av_names[f].snake);
    switch (f) {
    case AV_STRING:
      av->value_case = GW_AV_STRING;
      rc = gw_json_str_value(j, &av->string_value);
      break;
    case AV_BOOL:
      av->value_case = GW_AV_BOOL;
      rc = gw_json_bool_value(j, &av->bool_value);
      break;
    case AV_INT:
      av->value_case = GW_AV_INT;
      rc = gw_json_i64_value(j, INT64_MIN, INT64_MAX, &av->int_value);
      break;
    case AV_DOUBLE:
      av->value_case = GW_AV_DOUBLE;
      rc = gw_json_double_value(j, &av->double_value);
      break;
    case AV_BYTES:
      av->value_case = GW_AV_BYTES;
      rc = gw_json_b64_value(j, &av->bytes_value);
      break;
    case AV_ARRAY: {
      GwArrayValue *arr = gw_json_new_obj(j, sizeof *arr, &rc);
      if (arr) {
        gw_pb_array_value_init(arr);
        av->value_case = GW_AV_ARRAY;
        av->array_value = arr;
        rc = array_value(j, arr, depth + 1);
      }
      break;
    }
    case AV_KVLIST: {
      GwKeyValueList *kl = gw_json_new_obj(j, sizeof *kl, &rc);
      if (kl) {
        gw_pb_kvlist_init(kl);
        av->value_case = GW_AV_KVLIST;
        av->kvlist_value = kl;
        uint32_t seen = 0;
        int kst = 0;
        gw_json_obj_begin(j);
        while ((r = gw_json_obj_next(j, &kst, &k, &kn)) == 1) {
          struct gw_json_fld fd = {&seen, 0, true, "values"};
          if (gw_json_lookup(values_names, ARR__N, k, kn, &camel) < 0)
            rc = gw_json_skip(j);
          else
            rc = key_values(j, &fd, &kl->values, &kl->n_values, depth + 1);
          if (rc)
            return rc;
        }
        rc = r;
      }
      break;
    }
    }
    if (rc)
      return rc;
    gw_json_pop(j);
  }
  return r;
}

/* An AnyValue member (KeyValue.value, LogRecord.body) at depth: NULL when null or absent, as on the wire. */
static gw_rc any_value_member(struct gw_json *j, const struct gw_json_fld *fd, GwAnyValue **out, uint32_t depth)
{
  GW_JSON_TAKE_OR_RETURN(j, fd, *out = NULL);
  gw_json_push_name(j, fd->name);
  gw_rc rc;
  if ((*out = gw_json_new_obj(j, sizeof **out, &rc)))
    rc = any_value(j, *out, depth);
  gw_json_pop(j);
  return rc;
}

enum { KV_KEY, KV_VALUE, KV__N };
static const struct gw_json_name kv_names[] = {[KV_KEY] = N1("key"), [KV_VALUE] = N1("value")};

/* {"key": "...", "value": AnyValue}, at its '{'; value stays NULL when absent, as on the wire. */
static gw_rc key_value(struct gw_json *j, GwKeyValue *kv, uint32_t depth)
{
  uint32_t seen = 0;
  int r, st = 0;
  const char *k;
  size_t kn;
  gw_pb_key_value_init(kv);
  gw_json_obj_begin(j);
  while ((r = gw_json_obj_next(j, &st, &k, &kn)) == 1) {
    bool camel = true;
    gw_rc rc;
    int f = gw_json_lookup(kv_names, KV__N, k, kn, &camel);
    struct gw_json_fld fd = {&seen, f, camel, f >= 0 ? kv_names[f].camel : NULL};
    if (f == KV_KEY) {
      rc = gw_json_get_str(j, &fd, &kv->key);
    } else if (f == KV_VALUE) {
      rc = any_value_member(j, &fd, &kv->value, depth);
    } else {
      rc = gw_json_skip(j);
    }
    if (rc)
      return rc;
  }
  return r;
}

/*
 * The attribute as the SDKs write it, compact: {"key":"K","value":{"stringValue":"S"}} (or intValue as a
 * string or a number, boolValue true or false, doubleValue as a number, or arrayValue holding up to 16 such
 * scalars), read by matching those bytes instead of walking members.
 * Anything else (whitespace, other members or order, NaN, Infinity or a double in a string, longer or
 * nested arrays, kvlists, bytes, null, a string to repair, more than 18 digits, depth at the limit) rewinds
 * the position and the arena and answers false: key_value reads the same bytes as before, errors
 * included. What this takes, key_value makes the same of (test_json_kv_fast: trees, errors, repair
 * counts).
 */
bool gw_json_kv_fast = true;

static inline bool lit(struct gw_json *j, const char *s, size_t n)
{
  if ((size_t)(j->end - j->p) < n || memcmp(j->p, s, n))
    return false;
  j->p += n;
  return true;
}

/* A string: an arena copy, valid UTF-8 (what gw_json_str_value gives when it repairs nothing). */
static bool fast_str(struct gw_json *j, char **out)
{
  char *s;
  size_t n;
  bool ascii; /* seen whole on the copy */
  if (j->p >= j->end || *j->p != '"' || gw_json_string_ascii(j, &s, &n, &ascii) || (!ascii && !gw_utf8_valid(s, n)))
    return false;
  *out = s;
  return true;
}

/* An integer as "digits" or digits, an optional '-', at most 18 digits (leading zeros read as the member
 * walk reads them). */
static bool fast_int(struct gw_json *j, int64_t *v)
{
  const char *p = j->p, *e = j->end;
  bool quoted = p < e && *p == '"';
  p += quoted;
  bool neg = p < e && *p == '-';
  p += neg;
  const char *d = p;
  uint64_t m = 0;
  while (p < e && *p >= '0' && *p <= '9' && p - d < 18)
    m = m * 10 + (uint64_t)(*p++ - '0');
  if (p == d || (p < e && *p >= '0' && *p <= '9'))
    return false; /* no digit, or more than 18 (the member walk checks the range) */
  if (quoted && (p >= e || *p++ != '"'))
    return false;
  *v = neg ? -(int64_t)m : (int64_t)m;
  j->p = p;
  return true;
}

/* Whether a JSON number starts here (a sign or a digit; not NaN or Infinity, which the walk reads). */
static inline bool number_next(const struct gw_json *j)
{
  return j->p < j->end && (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'));
}

/* A compact scalar AnyValue's member name, after its '{': "stringValue": "intValue": "boolValue":true
 * "boolValue":false "doubleValue": (a JSON number following). Consumed when it is one (its type), else
 * nothing consumed (F_NONE). */
enum fast_t { F_NONE, F_STR, F_INT, F_TRUE, F_FALSE, F_DBL };

static enum fast_t fast_type(struct gw_json *j)
{
  if (lit(j, "\"stringValue\":", 14))
    return F_STR;
  if (lit(j, "\"intValue\":", 11))
    return F_INT;
  if (lit(j, "\"boolValue\":true", 16))
    return F_TRUE;
  if (lit(j, "\"boolValue\":false", 17))
    return F_FALSE;
  const char *at = j->p;
  if (lit(j, "\"doubleValue\":", 14)) {
    if (number_next(j))
      return F_DBL;
    j->p = at; /* NaN, Infinity, a string...: the walk's */
  }
  return F_NONE;
}

/* The value of a scalar fast_type matched, into av (initialized); false: the walk's to read. */
static bool fast_scalar(struct gw_json *j, enum fast_t t, GwAnyValue *av)
{
  switch (t) {
  case F_STR:
    av->value_case = GW_AV_STRING;
    return fast_str(j, &av->string_value);
  case F_INT:
    av->value_case = GW_AV_INT;
    return fast_int(j, &av->int_value);
  case F_DBL: {
    /* read with the walk's own gw_json_number; its errors are the walk's to report, with their path */
    struct gw_jnum num;
    av->value_case = GW_AV_DOUBLE;
    if (gw_json_number(j, &num))
      return false;
    av->double_value = num.d;
    return true;
  }
  case F_TRUE:
  case F_FALSE:
    av->value_case = GW_AV_BOOL;
    av->bool_value = t == F_TRUE;
    return true;
  default: return false;
  }
}

/* An array value's elements, compact scalars ({"stringValue":"S"}, {"intValue":N}, ...) separated by
 * commas, at most GW_JSON_VEC_INLINE of them, from the byte after the first element's '{' to the end of
 * the array's object ("]}"). */
static bool fast_array(struct gw_json *j, GwArrayValue *arr)
{
  GwAnyValue *v[GW_JSON_VEC_INLINE];
  size_t n = 0;
  for (;;) {
    enum fast_t t = fast_type(j);
    GwAnyValue *av;
    if (t == F_NONE || n == GW_JSON_VEC_INLINE || !(av = gw_arena_alloc(j->a, sizeof *av)))
      return false;
    gw_pb_any_value_init(av);
    if (!fast_scalar(j, t, av))
      return false;
    v[n++] = av;
    if (lit(j, "},{", 3))
      continue;
    if (!lit(j, "}]}", 3))
      return false;
    break;
  }
  gw_pb_array_value_init(arr);
  if (!(arr->values = gw_arena_alloc(j->a, n * sizeof *arr->values)))
    return false;
  memcpy(arr->values, v, n * sizeof *v);
  arr->n_values = n;
  return true;
}

static bool kv_fast(struct gw_json *j, GwKeyValue *kv, uint32_t depth)
{
  if (!gw_json_kv_fast || depth > j->max_depth || j->lvl + 2 >= j->max_lvl)
    return false;
  const char *start = j->p, *k;
  size_t kn;
  /* nothing allocated until the value's type is one read here: most misses (kvlists, bytes, NaN) cost no
   * rewind of the arena */
  if (!lit(j, "{\"key\":", 7) || j->p >= j->end || *j->p != '"' || gw_json_string_raw(j, &k, &kn) || !k ||
      !gw_utf8_valid(k, kn) || !lit(j, ",\"value\":{", 10))
    goto no;
  enum fast_t t = fast_type(j);
  /* an array's values are one level deeper, each an object within two more */
  bool array = t == F_NONE && depth + 1 <= j->max_depth && j->lvl + 5 < j->max_lvl &&
               lit(j, "\"arrayValue\":{\"values\":[{", 25);
  if (t == F_NONE && !array)
    goto no;
  struct gw_arena_mark mark;
  gw_arena_mark(j->a, &mark);
  gw_pb_key_value_init(kv);
  GwAnyValue *av = gw_arena_alloc(j->a, sizeof *av);
  char *key = gw_arena_alloc(j->a, kn + 1);
  if (!av || !key)
    goto rewind;
  memcpy(key, k, kn);
  key[kn] = 0;
  kv->key = key;
  gw_pb_any_value_init(av);
  if (array) {
    GwArrayValue *arr = gw_arena_alloc(j->a, sizeof *arr);
    if (!arr || !fast_array(j, arr))
      goto rewind;
    av->array_value = arr;
    av->value_case = GW_AV_ARRAY;
  } else if (!fast_scalar(j, t, av)) {
    goto rewind;
  }
  if (!lit(j, "}}", 2))
    goto rewind;
  kv->value = av;
  return true;
rewind:
  gw_arena_rewind(j->a, &mark);
no:
  j->p = start;
  return false;
}

static gw_rc key_values(struct gw_json *j, const struct gw_json_fld *fd, GwKeyValue ***out, size_t *n_out,
                        uint32_t depth)
{
  GW_JSON_TAKE_OR_RETURN(j, fd, (*out = NULL, *n_out = 0));
  gw_json_push_name(j, fd->name);
  gw_rc rc;
  int r, st = 0;
  enum gw_jt t = gw_json_peek(j);
  struct gw_json_vec v = {0};
  if (t != GW_JT_ARR) {
    rc = gw_json_want(j, t, "want an array");
    goto out;
  }
  gw_json_arr_begin(j);
  while ((r = gw_json_arr_next(j, &st)) == 1) {
    gw_json_push_idx(j, v.n);
    GwKeyValue *kv = gw_json_new_obj(j, sizeof *kv, &rc);
    if (kv && !kv_fast(j, kv, depth))
      rc = key_value(j, kv, depth);
    gw_json_pop(j);
    if (rc || (rc = gw_json_vec_push(j, &v, kv)))
      goto out;
  }
  rc = r < 0 ? r : gw_json_vec_finish(j, &v, (void ***)out, n_out);
out:
  gw_json_pop(j);
  return rc;
}

static gw_rc attributes(struct gw_json *j, const struct gw_json_fld *fd, GwKeyValue ***out, size_t *n)
{
  return key_values(j, fd, out, n, 1);
}

/* resource.v1.Resource; entityRefs (Development) are ignored. */
enum { RES_ATTRS, RES_DROPPED, RES__N };
static const struct gw_json_name res_names[] = {
  [RES_ATTRS] = N1("attributes"),
  [RES_DROPPED] = N2("droppedAttributesCount", "dropped_attributes_count"),
};

static gw_rc resource_member(struct gw_json *j, void *m, const struct gw_json_fld *fd)
{
  GwResource *r = m;
  if (fd->f == RES_ATTRS)
    return attributes(j, fd, &r->attributes, &r->n_attributes);
  return gw_json_get_u32(j, fd, &r->dropped_attributes_count);
}

static gw_rc resource(struct gw_json *j, void *m)
{
  uint64_t at = j->fixed;
  gw_rc rc = gw_json_members(j, res_names, RES__N, m, resource_member);
  j->res_fixed |= j->fixed != at;
  return rc;
}
INIT_FN(init_resource, GwResource, gw_pb_resource_init)

/* common.v1.InstrumentationScope */
enum { SC_NAME, SC_VERSION, SC_ATTRS, SC_DROPPED, SC__N };
static const struct gw_json_name scope_names[] = {
  [SC_NAME] = N1("name"),
  [SC_VERSION] = N1("version"),
  [SC_ATTRS] = N1("attributes"),
  [SC_DROPPED] = N2("droppedAttributesCount", "dropped_attributes_count"),
};

static gw_rc scope_member(struct gw_json *j, void *m, const struct gw_json_fld *fd)
{
  GwScope *s = m;
  switch (fd->f) {
  case SC_NAME: return gw_json_get_str(j, fd, &s->name);
  case SC_VERSION: return gw_json_get_str(j, fd, &s->version);
  case SC_ATTRS: return attributes(j, fd, &s->attributes, &s->n_attributes);
  default: return gw_json_get_u32(j, fd, &s->dropped_attributes_count);
  }
}

static gw_rc scope(struct gw_json *j, void *m)
{
  uint64_t at = j->fixed;
  gw_rc rc = gw_json_members(j, scope_names, SC__N, m, scope_member);
  j->scope_fixed |= j->fixed != at;
  return rc;
}
INIT_FN(init_scope, GwScope, gw_pb_scope_init)

/* ---- trace.v1 ---- */

enum { EV_TIME, EV_NAME, EV_ATTRS, EV_DROPPED, EV__N };
static const struct gw_json_name event_names[] = {
  [EV_TIME] = N2("timeUnixNano", "time_unix_nano"),
  [EV_NAME] = N1("name"),
  [EV_ATTRS] = N1("attributes"),
  [EV_DROPPED] = N2("droppedAttributesCount", "dropped_attributes_count"),
};

static gw_rc event_member(struct gw_json *j, void *m, const struct gw_json_fld *fd)
{
  GwSpanEvent *ev = m;
  switch (fd->f) {
  case EV_TIME: return gw_json_get_u64(j, fd, &ev->time_unix_nano);
  case EV_NAME: return gw_json_get_str(j, fd, &ev->name);
  case EV_ATTRS: return attributes(j, fd, &ev->attributes, &ev->n_attributes);
  default: return gw_json_get_u32(j, fd, &ev->dropped_attributes_count);
  }
}

static gw_rc span_event(struct gw_json *j, void *m) { return gw_json_members(j, event_names, EV__N, m, event_member); }
INIT_FN(init_event, GwSpanEvent, gw_pb_span_event_init)

enum { LK_TRACE_ID, LK_SPAN_ID, LK_STATE, LK_ATTRS, LK_DROPPED, LK_FLAGS, LK__N };
static const struct gw_json_name link_names[] = {
  [LK_TRACE_ID] = N2("traceId", "trace_id"),
  [LK_SPAN_ID] = N2("spanId", "span_id"),
  [LK_STATE] = N2("traceState", "trace_state"),
  [LK_ATTRS] = N1("attributes"),
  [LK_DROPPED] = N2("droppedAttributesCount", "dropped_attributes_count"),
  [LK_FLAGS] = N1("flags"),
};

static gw_rc link_member(struct gw_json *j, void *m, const struct gw_json_fld *fd)
{
  GwSpanLink *l = m;
  switch (fd->f) {
  case LK_TRACE_ID: return gw_json_get_hex(j, fd, &l->trace_id);
  case LK_SPAN_ID: return gw_json_get_hex(j, fd, &l->span_id);
  case LK_STATE: return gw_json_get_str(j, fd, &l->trace_state);
  case LK_ATTRS: return attributes(j, fd, &l->attributes, &l->n_attributes);
  case LK_DROPPED: return gw_json_get_u32(j, fd, &l->dropped_attributes_count);
  default: return gw_json_get_u32(j, fd, &l->flags);
  }
}

static gw_rc span_link(struct gw_json *j, void *m) { return gw_json_members(j, link_names, LK__N, m, link_member); }
INIT_FN(init_link, GwSpanLink, gw_pb_span_link_init)

enum { ST_MESSAGE, ST_CODE, ST__N };
static const struct gw_json_name status_names[] = {[ST_MESSAGE] = N1("message"), [ST_CODE] = N1("code")};

static gw_rc status_member(struct gw_json *j, void *m, const struct gw_json_fld *fd)
{
  GwStatus *st = m;
  if (fd->f == ST_MESSAGE)
    return gw_json_get_str(j, fd, &st->message);
  int code = (int)st->code;
  gw_rc rc = gw_json_get_enum(j, fd, &opentelemetry__proto__trace__v1__status__status_code__descriptor, &code);
  st->code = code;
  return rc;
}

static gw_rc span_status(struct gw_json *j, void *m)
{
  return gw_json_members(j, status_names, ST__N, m, status_member);
}
INIT_FN(init_status, GwStatus, gw_pb_status_init)

enum {
  SP_TRACE_ID, SP_SPAN_ID, SP_STATE, SP_PARENT, SP_FLAGS, SP_NAME, SP_KIND, SP_START, SP_END, SP_ATTRS,
  SP_DROPPED_ATTRS, SP_EVENTS, SP_DROPPED_EVENTS, SP_LINKS, SP_DROPPED_LINKS, SP_STATUS, SP__N
};
static const struct gw_json_name span_names[] = {
  [SP_TRACE_ID] = N2("traceId", "trace_id"),
  [SP_SPAN_ID] = N2("spanId", "span_id"),
  [SP_STATE] = N2("traceState", "trace_state"),
  [SP_PARENT] = N2("parentSpanId", "parent_span_id"),
  [SP_FLAGS] = N1("flags"),
  [SP_NAME] = N1("name"),
  [SP_KIND] = N1("kind"),
  [SP_START] = N2("startTimeUnixNano", "start_time_unix_nano"),
  [SP_END] = N2("endTimeUnixNano", "end_time_unix_nano"),
  [SP_ATTRS] = N1("attributes"),
  [SP_DROPPED_ATTRS] = N2("droppedAttributesCount", "dropped_attributes_count"),
  [SP_EVENTS] = N1("events"),
  [SP_DROPPED_EVENTS] = N2("droppedEventsCount", "dropped_events_count"),
  [SP_LINKS] = N1("links"),
  [SP_DROPPED_LINKS] = N2("droppedLinksCount", "dropped_links_count"),
  [SP_STATUS] = N1("status"),
};

static gw_rc span_member(struct gw_json *j, void *m, const struct gw_json_fld *fd)
{
  GwSpan *s = m;
  switch (fd->f) {
  case SP_TRACE_ID: return gw_json_get_hex(j, fd, &s->trace_id);
  case SP_SPAN_ID: return gw_json_get_hex(j, fd, &s->span_id);
  case SP_STATE: return gw_json_get_str(j, fd, &s->trace_state);
  case SP_PARENT: return gw_json_get_hex(j, fd, &s->parent_span_id);
  case SP_FLAGS: return gw_json_get_u32(j, fd, &s->flags);
  case SP_NAME: return gw_json_get_str(j, fd, &s->name);
  case SP_KIND: {
    int kind = (int)s->kind;
    gw_rc rc = gw_json_get_enum(j, fd, &opentelemetry__proto__trace__v1__span__span_kind__descriptor, &kind);
    s->kind = kind;
    return rc;
  }
  case SP_START: return gw_json_get_u64(j, fd, &s->start_time_unix_nano);
  case SP_END: return gw_json_get_u64(j, fd, &s->end_time_unix_nano);
  case SP_ATTRS: return attributes(j, fd, &s->attributes, &s->n_attributes);
  case SP_DROPPED_ATTRS: return gw_json_get_u32(j, fd, &s->dropped_attributes_count);
  case SP_EVENTS:
    return gw_json_get_repeated(j, fd, sizeof(GwSpanEvent), init_event, span_event, (void ***)&s->events, &s->n_events);
  case SP_DROPPED_EVENTS: return gw_json_get_u32(j, fd, &s->dropped_events_count);
  case SP_LINKS:
    return gw_json_get_repeated(j, fd, sizeof(GwSpanLink), init_link, span_link, (void ***)&s->links, &s->n_links);
  case SP_DROPPED_LINKS: return gw_json_get_u32(j, fd, &s->dropped_links_count);
  default:
    return gw_json_get_msg(j, fd, sizeof(GwStatus), init_status, span_status, (void **)&s->status);
  }
}

/* A repair marks its span, or every span of its resource or scope (either may come after the spans). */
static gw_rc mark(struct gw_json *j, const void *span)
{
  if (!gw_decode_repaired_add(j->a, j->rep, span))
    return gw_err_set(j->err, GW_ERR(TOO_LARGE), "request needs more memory than the per-request limit");
  return GW_OK;
}

static gw_rc span(struct gw_json *j, void *m)
{
  uint64_t at = j->fixed;
  gw_rc rc = gw_json_members(j, span_names, SP__N, m, span_member);
  if (!rc && j->rep && j->fixed != at)
    rc = mark(j, m);
  return rc;
}
INIT_FN(init_span, GwSpan, gw_pb_span_init)

enum { SS_SCOPE, SS_SCHEMA, SS_SPANS, SS__N };
static const struct gw_json_name scope_spans_names[] = {
  [SS_SCOPE] = N1("scope"),
  [SS_SCHEMA] = N2("schemaUrl", "schema_url"),
  [SS_SPANS] = N1("spans"),
};

static gw_rc scope_spans_member(struct gw_json *j, void *m, const struct gw_json_fld *fd)
{
  GwScopeSpans *ss = m;
  switch (fd->f) {
  case SS_SCOPE: return gw_json_get_msg(j, fd, sizeof(GwScope), init_scope, scope, (void **)&ss->scope);
  case SS_SCHEMA: return gw_json_get_str(j, fd, &ss->schema_url);
  default: return gw_json_get_repeated(j, fd, sizeof(GwSpan), init_span, span, (void ***)&ss->spans, &ss->n_spans);
  }
}

static gw_rc scope_spans(struct gw_json *j, void *m)
{
  j->scope_fixed = false;
  gw_rc rc = gw_json_members(j, scope_spans_names, SS__N, m, scope_spans_member);
  const GwScopeSpans *ss = m;
  for (size_t k = 0; !rc && j->rep && j->scope_fixed && k < ss->n_spans; k++)
    rc = mark(j, ss->spans[k]);
  return rc;
}
INIT_FN(init_scope_spans, GwScopeSpans, gw_pb_scope_spans_init)

enum { RS_RESOURCE, RS_SCHEMA, RS_SCOPE_SPANS, RS__N };
static const struct gw_json_name resource_spans_names[] = {
  [RS_RESOURCE] = N1("resource"),
  [RS_SCHEMA] = N2("schemaUrl", "schema_url"),
  [RS_SCOPE_SPANS] = N2("scopeSpans", "scope_spans"),
};

static gw_rc resource_spans_member(struct gw_json *j, void *m, const struct gw_json_fld *fd)
{
  GwResourceSpans *rs = m;
  switch (fd->f) {
  case RS_RESOURCE: return gw_json_get_msg(j, fd, sizeof(GwResource), init_resource, resource, (void **)&rs->resource);
  case RS_SCHEMA: return gw_json_get_str(j, fd, &rs->schema_url);
  default:
    return gw_json_get_repeated(j, fd, sizeof(GwScopeSpans), init_scope_spans, scope_spans, (void ***)&rs->scope_spans,
                        &rs->n_scope_spans);
  }
}

static gw_rc resource_spans(struct gw_json *j, void *m)
{
  j->res_fixed = false;
  gw_rc rc = gw_json_members(j, resource_spans_names, RS__N, m, resource_spans_member);
  const GwResourceSpans *rs = m;
  for (size_t i = 0; !rc && j->rep && j->res_fixed && i < rs->n_scope_spans; i++)
    for (size_t k = 0; !rc && k < rs->scope_spans[i]->n_spans; k++)
      rc = mark(j, rs->scope_spans[i]->spans[k]);
  return rc;
}
INIT_FN(init_resource_spans, GwResourceSpans, gw_pb_resource_spans_init)

enum { TR_RESOURCE_SPANS, TR__N };
static const struct gw_json_name trace_request_names[] = {[TR_RESOURCE_SPANS] = N2("resourceSpans", "resource_spans")};

static gw_rc trace_request_member(struct gw_json *j, void *m, const struct gw_json_fld *fd)
{
  GwTraceRequest *req = m;
  return gw_json_get_repeated(j, fd, sizeof(GwResourceSpans), init_resource_spans, resource_spans,
                      (void ***)&req->resource_spans, &req->n_resource_spans);
}

static gw_rc trace_request(struct gw_json *j, void *m)
{
  return gw_json_members(j, trace_request_names, TR__N, m, trace_request_member);
}
INIT_FN(init_trace_request, GwTraceRequest, gw_pb_trace_request_init)

/* ---- logs.v1 ---- */

enum {
  LR_TIME, LR_OBSERVED, LR_SEVERITY, LR_SEVERITY_TEXT, LR_ATTRS, LR_DROPPED, LR_FLAGS, LR_TRACE_ID, LR_SPAN_ID,
  LR_EVENT_NAME, LR_BODY, LR__N
};
static const struct gw_json_name log_record_names[] = {
  [LR_TIME] = N2("timeUnixNano", "time_unix_nano"),
  [LR_OBSERVED] = N2("observedTimeUnixNano", "observed_time_unix_nano"),
  [LR_SEVERITY] = N2("severityNumber", "severity_number"),
  [LR_SEVERITY_TEXT] = N2("severityText", "severity_text"),
  [LR_ATTRS] = N1("attributes"),
  [LR_DROPPED] = N2("droppedAttributesCount", "dropped_attributes_count"),
  [LR_FLAGS] = N1("flags"),
  [LR_TRACE_ID] = N2("traceId", "trace_id"),
  [LR_SPAN_ID] = N2("spanId", "span_id"),
  [LR_EVENT_NAME] = N2("eventName", "event_name"),
  [LR_BODY] = N1("body"),
};

static gw_rc log_record_member(struct gw_json *j, void *m, const struct gw_json_fld *fd)
{
  GwLogRecord *l = m;
  switch (fd->f) {
  case LR_TIME: return gw_json_get_u64(j, fd, &l->time_unix_nano);
  case LR_OBSERVED: return gw_json_get_u64(j, fd, &l->observed_time_unix_nano);
  case LR_SEVERITY: {
    int sev = (int)l->severity_number;
    gw_rc rc = gw_json_get_enum(j, fd, &opentelemetry__proto__logs__v1__severity_number__descriptor, &sev);
    l->severity_number = sev;
    return rc;
  }
  case LR_SEVERITY_TEXT: return gw_json_get_str(j, fd, &l->severity_text);
  case LR_ATTRS: return attributes(j, fd, &l->attributes, &l->n_attributes);
  case LR_DROPPED: return gw_json_get_u32(j, fd, &l->dropped_attributes_count);
  case LR_FLAGS: return gw_json_get_u32(j, fd, &l->flags);
  case LR_TRACE_ID: return gw_json_get_hex(j, fd, &l->trace_id);
  case LR_SPAN_ID: return gw_json_get_hex(j, fd, &l->span_id);
  case LR_EVENT_NAME: return gw_json_get_str(j, fd, &l->event_name);
  default: return any_value_member(j, fd, &l->body, 1);
  }
}

static gw_rc log_record(struct gw_json *j, void *m)
{
  return gw_json_members(j, log_record_names, LR__N, m, log_record_member);
}
INIT_FN(init_log_record, GwLogRecord, gw_pb_log_record_init)

enum { SL_SCOPE, SL_SCHEMA, SL_RECORDS, SL__N };
static const struct gw_json_name scope_logs_names[] = {
  [SL_SCOPE] = N1("scope"),
  [SL_SCHEMA] = N2("schemaUrl", "schema_url"),
  [SL_RECORDS] = N2("logRecords", "log_records"),
};

static gw_rc scope_logs_member(struct gw_json *j, void *m, const struct gw_json_fld *fd)
{
  GwScopeLogs *sl = m;
  switch (fd->f) {
  case SL_SCOPE: return gw_json_get_msg(j, fd, sizeof(GwScope), init_scope, scope, (void **)&sl->scope);
  case SL_SCHEMA: return gw_json_get_str(j, fd, &sl->schema_url);
  default:
    return gw_json_get_repeated(j, fd, sizeof(GwLogRecord), init_log_record, log_record, (void ***)&sl->log_records,
                        &sl->n_log_records);
  }
}

static gw_rc scope_logs(struct gw_json *j, void *m)
{
  return gw_json_members(j, scope_logs_names, SL__N, m, scope_logs_member);
}
INIT_FN(init_scope_logs, GwScopeLogs, gw_pb_scope_logs_init)

enum { RL_RESOURCE, RL_SCHEMA, RL_SCOPE_LOGS, RL__N };
static const struct gw_json_name resource_logs_names[] = {
  [RL_RESOURCE] = N1("resource"),
  [RL_SCHEMA] = N2("schemaUrl", "schema_url"),
  [RL_SCOPE_LOGS] = N2("scopeLogs", "scope_logs"),
};

static gw_rc resource_logs_member(struct gw_json *j, void *m, const struct gw_json_fld *fd)
{
  GwResourceLogs *rl = m;
  switch (fd->f) {
  case RL_RESOURCE: return gw_json_get_msg(j, fd, sizeof(GwResource), init_resource, resource, (void **)&rl->resource);
  case RL_SCHEMA: return gw_json_get_str(j, fd, &rl->schema_url);
  default:
    return gw_json_get_repeated(j, fd, sizeof(GwScopeLogs), init_scope_logs, scope_logs, (void ***)&rl->scope_logs,
                        &rl->n_scope_logs);
  }
}

static gw_rc resource_logs(struct gw_json *j, void *m)
{
  return gw_json_members(j, resource_logs_names, RL__N, m, resource_logs_member);
}
INIT_FN(init_resource_logs, GwResourceLogs, gw_pb_resource_logs_init)

enum { LQ_RESOURCE_LOGS, LQ__N };
static const struct gw_json_name logs_request_names[] = {[LQ_RESOURCE_LOGS] = N2("resourceLogs", "resource_logs")};

static gw_rc logs_request_member(struct gw_json *j, void *m, const struct gw_json_fld *fd)
{
  GwLogsRequest *req = m;
  return gw_json_get_repeated(j, fd, sizeof(GwResourceLogs), init_resource_logs, resource_logs,
                      (void ***)&req->resource_logs, &req->n_resource_logs);
}

static gw_rc logs_request(struct gw_json *j, void *m)
{
  return gw_json_members(j, logs_request_names, LQ__N, m, logs_request_member);
}
INIT_FN(init_logs_request, GwLogsRequest, gw_pb_logs_request_init)

/* ---- the request ---- */

/* Read the request object of `size` bytes, init it and fill it with fn: one shape for both signals. */
static gw_rc decode_request(struct gw_arena *a, const char *body, size_t len, const struct gw_decode_limits *lim,
                            size_t size, void (*init)(void *), gw_json_msg_fn fn, void **out, struct gw_err *err)
{
  struct gw_json j;
  uint32_t depth = lim->max_depth < GW_JSON_MAX_DEPTH ? lim->max_depth : GW_JSON_MAX_DEPTH;
  gw_rc rc;
  memset(&j, 0, offsetof(struct gw_json, path));
  j.spare = NULL;
  j.start = j.p = body;
  j.end = body + len;
  j.a = a;
  j.err = err;
  j.max_depth = depth;
  j.max_lvl = 4 * depth + 16;
  j.rep = lim->repaired;
  *out = NULL;

  enum gw_jt t = gw_json_peek(&j);
  if (t == GW_JT_END || t == GW_JT_BAD) {
    rc = gw_json_bad(&j);
    goto out;
  }
  if (t != GW_JT_OBJ) {
    rc = gw_err_set(err, GW_ERR(DECODE), "JSON: the request is not an object");
    goto out;
  }
  void *req = gw_arena_alloc(a, size);
  if (!req) {
    rc = gw_json_oom(&j);
    goto out;
  }
  init(req);
  if ((rc = fn(&j, req)))
    goto out;
  /* After the request: only whitespace and comments (json-c read those too). */
  if (gw_json_peek(&j) != GW_JT_END) {
    if (j.rc) {
      rc = j.rc;
      goto out;
    }
    rc = gw_err_set(err, GW_ERR(DECODE), "JSON: unexpected data after the request at offset %zu",
                    (size_t)(j.p - j.start));
    goto out;
  }
  *out = req;
out:
  if (j.fixed)
    gw_metric_add(GW_M_UTF8_FIXED, (int64_t)j.fixed);
  return rc;
}

gw_rc gw_decode_json_traces(struct gw_arena *a, const char *body, size_t len, const struct gw_decode_limits *lim,
                            GwTraceRequest **out, struct gw_err *err)
{
  void *req;
  gw_rc rc = decode_request(a, body, len, lim, sizeof **out, init_trace_request, trace_request, &req, err);
  *out = req;
  return rc;
}

gw_rc gw_decode_json_logs(struct gw_arena *a, const char *body, size_t len, const struct gw_decode_limits *lim,
                          GwLogsRequest **out, struct gw_err *err)
{
  void *req;
  gw_rc rc = decode_request(a, body, len, lim, sizeof **out, init_logs_request, logs_request, &req, err);
  *out = req;
  return rc;
}
