/*
 * decode_json.c: OTLP/JSON request bodies (SPEC-FACTS §1.6) into the same protobuf-c structs the binary
 * path produces, allocated in the request arena, so nothing downstream knows which encoding arrived.
 *
 * Decisions:
 * - json-c builds a DOM with malloc (it has no allocator hook). The body is already capped by max_bytes,
 *   the tokener's depth is capped, and the DOM is freed before returning: every string the request keeps
 *   is copied into the arena and made valid UTF-8 (json-c gives lengths, so NUL bytes are seen and
 *   removed, unlike the binary path).
 * - Field names are lowerCamelCase; the snake_case proto names are accepted too (lenient, §1.6 [U]).
 *   Unknown fields are ignored and null means "absent", as proto3 JSON says. Duplicate keys: json-c keeps
 *   the last. Several AnyValue keys in one object: the last wins, as for a repeated oneof on the wire.
 * - ids are hex (case-insensitive), not base64; an empty id is zero bytes (length checks are for later
 *   stages, as on the binary path). bytesValue is base64, standard or URL-safe, padding optional.
 * - 64-bit integers come as decimal strings or JSON numbers; other integers are accepted either way too.
 *   A wrong JSON type for a known field is a DECODE error naming the field's path by index
 *   ("resourceSpans[0].scopeSpans[0].spans[3].traceId: not hex"); keys and values never appear in it.
 * - Depth: an AnyValue nested via kvlistValue costs 4 JSON levels (object, kvlistValue, values[], the
 *   KeyValue) and the first one sits at level 12 at most (under span events), so the tokener gets
 *   4*max_depth+16 levels, enough for every request within max_depth; AnyValue nesting itself is checked
 *   against max_depth here. Deeper JSON anywhere is TOO_DEEP, found by json-c before any DOM recursion.
 * The AnyValue / KeyValue / Resource / Scope helpers take no trace-specific state, for the logs decoder.
 */
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"
#include "decode/decode.h"

struct jctx {
  struct gw_arena *a;
  uint32_t max_depth;
  struct gw_err *err;
  uint64_t fixed;  /* strings repaired by gw_utf8_fix */
  size_t plen;     /* path length; may exceed sizeof path - 1 when truncated */
  char path[160];  /* "resourceSpans[0].scopeSpans[1]..." for error messages */
};

/* Path helpers: push returns the mark to pop back to. */
static size_t path_push(struct jctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t path_push(struct jctx *c, const char *fmt, ...)
{
  size_t mark = c->plen;
  if (c->plen < sizeof c->path - 1) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->path + c->plen, sizeof c->path - c->plen, fmt, ap);
    va_end(ap);
    if (n > 0)
      c->plen += (size_t)n;
  }
  return mark;
}

static size_t path_field(struct jctx *c, const char *name)
{
  return c->plen ? path_push(c, ".%s", name) : path_push(c, "%s", name);
}

static void path_pop(struct jctx *c, size_t mark)
{
  c->plen = mark;
  if (mark < sizeof c->path)
    c->path[mark] = 0;
}

static gw_rc fail(struct jctx *c, gw_rc rc, const char *what)
{
  bool cut = c->plen >= sizeof c->path - 1;
  return gw_err_set(c->err, rc, "%s%s: %s", c->plen ? c->path : "request", cut ? "..." : "", what);
}

static gw_rc oom(struct jctx *c)
{
  return gw_err_set(c->err, GW_ERR(TOO_LARGE), "request needs more memory than the per-request limit");
}

/* A field by its lowerCamelCase name, or by the proto's snake_case name; NULL when absent or null. */
static struct json_object *field(struct json_object *o, const char *camel, const char *snake)
{
  struct json_object *v = NULL;
  if (!json_object_object_get_ex(o, camel, &v) && snake)
    json_object_object_get_ex(o, snake, &v);
  return v;
}

/* ---- scalars: the value v is already located and the path points at it ---- */

static gw_rc str_value(struct jctx *c, struct json_object *v, char **out)
{
  if (!json_object_is_type(v, json_type_string))
    return fail(c, GW_ERR(DECODE), "want a string");
  int n = json_object_get_string_len(v);
  char *s = gw_arena_strndup(c->a, json_object_get_string(v), (size_t)n);
  if (!s)
    return oom(c);
  bool fixed;
  s = gw_utf8_fix(c->a, s, (size_t)n, &fixed);
  if (!s)
    return oom(c);
  c->fixed += fixed;
  *out = s;
  return GW_OK;
}

/* Decimal digits only (an optional leading '-' when neg_ok): no spaces, no '+', no exponent. */
static bool dec_string(const char *s, bool neg_ok)
{
  const char *p = s;
  if (neg_ok && *p == '-')
    p++;
  if (!*p)
    return false;
  for (; *p; p++)
    if (*p < '0' || *p > '9')
      return false;
  return true;
}

/* An unsigned integer up to max: a JSON integer, an integral double, or a decimal string. */
static gw_rc u64_value(struct jctx *c, struct json_object *v, uint64_t max, uint64_t *out)
{
  uint64_t u;
  switch (json_object_get_type(v)) {
  case json_type_int:
    if (json_object_get_int64(v) < 0)
      return fail(c, GW_ERR(DECODE), "negative");
    u = json_object_get_uint64(v);
    break;
  case json_type_double: {
    double d = json_object_get_double(v);
    if (!isfinite(d) || d != floor(d) || d < 0 || d >= 18446744073709551616.0)
      return fail(c, GW_ERR(DECODE), "not an unsigned integer");
    u = (uint64_t)d;
    break;
  }
  case json_type_string: {
    const char *s = json_object_get_string(v);
    if (!dec_string(s, false) || (size_t)json_object_get_string_len(v) != strlen(s))
      return fail(c, GW_ERR(DECODE), "not a decimal integer");
    errno = 0;
    u = strtoull(s, NULL, 10);
    if (errno)
      return fail(c, GW_ERR(DECODE), "out of range");
    break;
  }
  default:
    return fail(c, GW_ERR(DECODE), "want an integer");
  }
  if (u > max)
    return fail(c, GW_ERR(DECODE), "out of range");
  *out = u;
  return GW_OK;
}

/* A signed integer in [min, max], same encodings as u64_value. */
static gw_rc i64_value(struct jctx *c, struct json_object *v, int64_t min, int64_t max, int64_t *out)
{
  int64_t i;
  switch (json_object_get_type(v)) {
  case json_type_int:
    i = json_object_get_int64(v);
    if (i == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX)
      return fail(c, GW_ERR(DECODE), "out of range");
    break;
  case json_type_double: {
    double d = json_object_get_double(v);
    if (!isfinite(d) || d != floor(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0)
      return fail(c, GW_ERR(DECODE), "not an integer");
    i = (int64_t)d;
    break;
  }
  case json_type_string: {
    const char *s = json_object_get_string(v);
    if (!dec_string(s, true) || (size_t)json_object_get_string_len(v) != strlen(s))
      return fail(c, GW_ERR(DECODE), "not a decimal integer");
    errno = 0;
    long long ll = strtoll(s, NULL, 10);
    if (errno)
      return fail(c, GW_ERR(DECODE), "out of range");
    i = ll;
    break;
  }
  default:
    return fail(c, GW_ERR(DECODE), "want an integer");
  }
  if (i < min || i > max)
    return fail(c, GW_ERR(DECODE), "out of range");
  *out = i;
  return GW_OK;
}

/* A double: a JSON number, or a string holding a number or "NaN" / "Infinity" / "-Infinity" (proto3 JSON). */
static gw_rc double_value(struct jctx *c, struct json_object *v, double *out)
{
  json_type t = json_object_get_type(v);
  if (t == json_type_double || t == json_type_int) {
    *out = json_object_get_double(v);
    return GW_OK;
  }
  if (t != json_type_string)
    return fail(c, GW_ERR(DECODE), "want a number");
  const char *s = json_object_get_string(v);
  if (!strcmp(s, "NaN")) {
    *out = NAN;
  } else if (!strcmp(s, "Infinity")) {
    *out = INFINITY;
  } else if (!strcmp(s, "-Infinity")) {
    *out = -INFINITY;
  } else {
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (!*s || *end || errno || s[0] == ' ' || !isfinite(d))
      return fail(c, GW_ERR(DECODE), "not a number");
    *out = d;
  }
  return GW_OK;
}

static int hexval(unsigned char ch)
{
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  ch |= 0x20;
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  return -1;
}

/* trace/span ids: case-insensitive hex (§1.6), not base64. */
static gw_rc hex_value(struct jctx *c, struct json_object *v, ProtobufCBinaryData *out)
{
  if (!json_object_is_type(v, json_type_string))
    return fail(c, GW_ERR(DECODE), "want a hex string");
  size_t n = (size_t)json_object_get_string_len(v);
  const unsigned char *s = (const unsigned char *)json_object_get_string(v);
  if (n % 2)
    return fail(c, GW_ERR(DECODE), "not hex (odd length)");
  out->len = n / 2;
  out->data = NULL;
  if (!n)
    return GW_OK;
  uint8_t *d = gw_arena_alloc(c->a, n / 2);
  if (!d)
    return oom(c);
  for (size_t i = 0; i < n; i += 2) {
    int hi = hexval(s[i]), lo = hexval(s[i + 1]);
    if (hi < 0 || lo < 0)
      return fail(c, GW_ERR(DECODE), "not hex");
    d[i / 2] = (uint8_t)(hi << 4 | lo);
  }
  out->data = d;
  return GW_OK;
}

static int b64val(unsigned char ch)
{
  if (ch >= 'A' && ch <= 'Z')
    return ch - 'A';
  if (ch >= 'a' && ch <= 'z')
    return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9')
    return ch - '0' + 52;
  if (ch == '+' || ch == '-')
    return 62;
  if (ch == '/' || ch == '_')
    return 63;
  return -1;
}

/* bytesValue: base64 (RFC 4648 §4 or the URL-safe §5 alphabet), '=' padding optional. */
static gw_rc b64_value(struct jctx *c, struct json_object *v, ProtobufCBinaryData *out)
{
  if (!json_object_is_type(v, json_type_string))
    return fail(c, GW_ERR(DECODE), "want a base64 string");
  size_t n = (size_t)json_object_get_string_len(v);
  const unsigned char *s = (const unsigned char *)json_object_get_string(v);
  if (n % 4 == 0 && n >= 1 && s[n - 1] == '=')
    n--;
  if (n % 4 == 3 && n >= 1 && s[n - 1] == '=')
    n--;
  if (n % 4 == 1)
    return fail(c, GW_ERR(DECODE), "not base64");
  out->len = 0;
  out->data = NULL;
  if (!n)
    return GW_OK;
  uint8_t *d = gw_arena_alloc(c->a, n / 4 * 3 + 2);
  if (!d)
    return oom(c);
  uint32_t acc = 0;
  int bits = 0;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    int x = b64val(s[i]);
    if (x < 0)
      return fail(c, GW_ERR(DECODE), "not base64");
    acc = acc << 6 | (uint32_t)x;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      d[o++] = (uint8_t)(acc >> bits);
    }
  }
  out->data = d;
  out->len = o;
  return GW_OK;
}

/* ---- field accessors: look the field up in object o, push its name on the path, convert ---- */

static gw_rc get_str(struct jctx *c, struct json_object *o, const char *camel, const char *snake, char **out)
{
  struct json_object *v = field(o, camel, snake);
  if (!v)
    return GW_OK;
  size_t mark = path_field(c, camel);
  gw_rc rc = str_value(c, v, out);
  path_pop(c, mark);
  return rc;
}

static gw_rc get_u64(struct jctx *c, struct json_object *o, const char *camel, const char *snake, uint64_t *out)
{
  struct json_object *v = field(o, camel, snake);
  if (!v)
    return GW_OK;
  size_t mark = path_field(c, camel);
  gw_rc rc = u64_value(c, v, UINT64_MAX, out);
  path_pop(c, mark);
  return rc;
}

static gw_rc get_u32(struct jctx *c, struct json_object *o, const char *camel, const char *snake, uint32_t *out)
{
  struct json_object *v = field(o, camel, snake);
  if (!v)
    return GW_OK;
  size_t mark = path_field(c, camel);
  uint64_t u = 0;
  gw_rc rc = u64_value(c, v, UINT32_MAX, &u);
  if (!rc)
    *out = (uint32_t)u;
  path_pop(c, mark);
  return rc;
}

/* Enums are integers in OTLP/JSON (§1.6); unknown values are kept, as proto3 open enums are. */
static gw_rc get_enum(struct jctx *c, struct json_object *o, const char *camel, const char *snake, int *out)
{
  struct json_object *v = field(o, camel, snake);
  if (!v)
    return GW_OK;
  size_t mark = path_field(c, camel);
  int64_t i = 0;
  gw_rc rc = i64_value(c, v, INT32_MIN, INT32_MAX, &i);
  if (!rc)
    *out = (int)i;
  path_pop(c, mark);
  return rc;
}

static gw_rc get_hex(struct jctx *c, struct json_object *o, const char *camel, const char *snake,
                     ProtobufCBinaryData *out)
{
  struct json_object *v = field(o, camel, snake);
  if (!v)
    return GW_OK;
  size_t mark = path_field(c, camel);
  gw_rc rc = hex_value(c, v, out);
  path_pop(c, mark);
  return rc;
}

/* An optional object field: *out is NULL when absent, else the object; wrong type is an error. The path
 * is left pointing at the field (pop with *mark) when *out is set. */
static gw_rc get_obj(struct jctx *c, struct json_object *o, const char *camel, const char *snake,
                     struct json_object **out, size_t *mark)
{
  struct json_object *v = field(o, camel, snake);
  *out = NULL;
  if (!v)
    return GW_OK;
  *mark = path_field(c, camel);
  if (!json_object_is_type(v, json_type_object)) {
    gw_rc rc = fail(c, GW_ERR(DECODE), "want an object");
    path_pop(c, *mark);
    return rc;
  }
  *out = v;
  return GW_OK;
}

/* An optional array field, same contract as get_obj; *n is its length (0 when absent). */
static gw_rc get_arr(struct jctx *c, struct json_object *o, const char *camel, const char *snake,
                     struct json_object **out, size_t *n, size_t *mark)
{
  struct json_object *v = field(o, camel, snake);
  *out = NULL;
  *n = 0;
  if (!v)
    return GW_OK;
  *mark = path_field(c, camel);
  if (!json_object_is_type(v, json_type_array)) {
    gw_rc rc = fail(c, GW_ERR(DECODE), "want an array");
    path_pop(c, *mark);
    return rc;
  }
  *out = v;
  *n = json_object_array_length(v);
  return GW_OK;
}

/* Pointer array plus element storage for n messages of size sz, in the arena (n counts parsed
 * elements, never a number the client declared). */
static void **alloc_msgs(struct jctx *c, size_t n, size_t sz)
{
  void **ptrs = gw_arena_alloc(c->a, n * sizeof *ptrs);
  unsigned char *items = gw_arena_alloc(c->a, n * sz);
  if (!ptrs || !items)
    return NULL;
  for (size_t i = 0; i < n; i++)
    ptrs[i] = items + i * sz;
  return ptrs;
}

/* Element i of array arr must be an object: returns it with the path at "[i]" (pop with *mark). */
static gw_rc elem_obj(struct jctx *c, struct json_object *arr, size_t i, struct json_object **out, size_t *mark)
{
  *mark = path_push(c, "[%zu]", i);
  struct json_object *e = json_object_array_get_idx(arr, i);
  if (!json_object_is_type(e, json_type_object)) {
    gw_rc rc = fail(c, GW_ERR(DECODE), "want an object");
    path_pop(c, *mark);
    return rc;
  }
  *out = e;
  return GW_OK;
}

/* ---- common.v1: AnyValue, KeyValue; reused by the logs decoder ---- */

static gw_rc key_values(struct jctx *c, struct json_object *o, const char *camel, const char *snake, size_t *n_out,
                        GwKeyValue ***out, uint32_t depth);
static gw_rc any_value(struct jctx *c, struct json_object *o, GwAnyValue *av, uint32_t depth);

/* {"values": [AnyValue...]} */
static gw_rc array_value(struct jctx *c, struct json_object *o, GwArrayValue **out, uint32_t depth)
{
  GwArrayValue *arr = gw_arena_alloc(c->a, sizeof *arr);
  if (!arr)
    return oom(c);
  gw_pb_array_value_init(arr);
  struct json_object *vals;
  size_t n, mark;
  gw_rc rc = get_arr(c, o, "values", NULL, &vals, &n, &mark);
  if (rc || !vals)
    goto done;
  arr->values = (GwAnyValue **)alloc_msgs(c, n, sizeof(GwAnyValue));
  if (n && !arr->values) {
    rc = oom(c);
    goto pop;
  }
  for (size_t i = 0; i < n; i++) {
    size_t emark;
    struct json_object *e = NULL;
    if ((rc = elem_obj(c, vals, i, &e, &emark)))
      goto pop;
    rc = any_value(c, e, arr->values[i], depth);
    path_pop(c, emark);
    if (rc)
      goto pop;
    arr->n_values = i + 1;
  }
pop:
  path_pop(c, mark);
done:
  *out = arr;
  return rc;
}

/* AnyValue: one of stringValue, boolValue, intValue, doubleValue, arrayValue, kvlistValue, bytesValue;
 * none is an empty value (valid since OTLP 1.9). depth: this value's nesting level, 1 for an attribute. */
static gw_rc any_value(struct jctx *c, struct json_object *o, GwAnyValue *av, uint32_t depth)
{
  gw_rc rc = GW_OK;
  gw_pb_any_value_init(av);
  if (depth > c->max_depth) {
    char msg[64];
    snprintf(msg, sizeof msg, "value nested deeper than %u levels", c->max_depth);
    return fail(c, GW_ERR(TOO_DEEP), msg);
  }
  json_object_object_foreach(o, key, v)
  {
    if (!v)
      continue;
    size_t mark = path_field(c, key);
    if (!strcmp(key, "stringValue") || !strcmp(key, "string_value")) {
      av->value_case = GW_AV_STRING;
      rc = str_value(c, v, &av->string_value);
    } else if (!strcmp(key, "boolValue") || !strcmp(key, "bool_value")) {
      if (!json_object_is_type(v, json_type_boolean)) {
        rc = fail(c, GW_ERR(DECODE), "want a boolean");
      } else {
        av->value_case = GW_AV_BOOL;
        av->bool_value = json_object_get_boolean(v);
      }
    } else if (!strcmp(key, "intValue") || !strcmp(key, "int_value")) {
      av->value_case = GW_AV_INT;
      rc = i64_value(c, v, INT64_MIN, INT64_MAX, &av->int_value);
    } else if (!strcmp(key, "doubleValue") || !strcmp(key, "double_value")) {
      av->value_case = GW_AV_DOUBLE;
      rc = double_value(c, v, &av->double_value);
    } else if (!strcmp(key, "bytesValue") || !strcmp(key, "bytes_value")) {
      av->value_case = GW_AV_BYTES;
      rc = b64_value(c, v, &av->bytes_value);
    } else if (!strcmp(key, "arrayValue") || !strcmp(key, "array_value")) {
      if (!json_object_is_type(v, json_type_object)) {
        rc = fail(c, GW_ERR(DECODE), "want an object");
      } else {
        av->value_case = GW_AV_ARRAY;
        rc = array_value(c, v, &av->array_value, depth + 1);
      }
    } else if (!strcmp(key, "kvlistValue") || !strcmp(key, "kvlist_value")) {
      if (!json_object_is_type(v, json_type_object)) {
        rc = fail(c, GW_ERR(DECODE), "want an object");
      } else {
        GwKeyValueList *kl = gw_arena_alloc(c->a, sizeof *kl);
        if (!kl) {
          rc = oom(c);
        } else {
          gw_pb_kvlist_init(kl);
          av->value_case = GW_AV_KVLIST;
          av->kvlist_value = kl;
          rc = key_values(c, v, "values", NULL, &kl->n_values, &kl->values, depth + 1);
        }
      }
    }
    path_pop(c, mark);
    if (rc)
      return rc;
  }
  return GW_OK;
}

/* {"key": "...", "value": AnyValue}; value stays NULL when absent, as on the wire. */
static gw_rc key_value(struct jctx *c, struct json_object *o, GwKeyValue *kv, uint32_t depth)
{
  gw_pb_key_value_init(kv);
  gw_rc rc = get_str(c, o, "key", NULL, &kv->key);
  if (rc)
    return rc;
  struct json_object *v;
  size_t mark;
  if ((rc = get_obj(c, o, "value", NULL, &v, &mark)) || !v)
    return rc;
  kv->value = gw_arena_alloc(c->a, sizeof *kv->value);
  rc = kv->value ? any_value(c, v, kv->value, depth) : oom(c);
  path_pop(c, mark);
  return rc;
}

/* A repeated KeyValue field of o (attributes, kvlistValue.values); depth is that of the values. */
static gw_rc key_values(struct jctx *c, struct json_object *o, const char *camel, const char *snake, size_t *n_out,
                        GwKeyValue ***out, uint32_t depth)
{
  struct json_object *arr;
  size_t n, mark;
  gw_rc rc = get_arr(c, o, camel, snake, &arr, &n, &mark);
  if (rc || !arr)
    return rc;
  GwKeyValue **kvs = (GwKeyValue **)alloc_msgs(c, n, sizeof(GwKeyValue));
  if (n && !kvs) {
    rc = oom(c);
    goto pop;
  }
  *out = kvs;
  for (size_t i = 0; i < n; i++) {
    size_t emark;
    struct json_object *e = NULL;
    if ((rc = elem_obj(c, arr, i, &e, &emark)))
      goto pop;
    rc = key_value(c, e, kvs[i], depth);
    path_pop(c, emark);
    if (rc)
      goto pop;
    *n_out = i + 1;
  }
pop:
  path_pop(c, mark);
  return rc;
}

static gw_rc attributes(struct jctx *c, struct json_object *o, size_t *n, GwKeyValue ***out)
{
  return key_values(c, o, "attributes", NULL, n, out, 1);
}

/* resource.v1.Resource; entityRefs (Development) are ignored. */
static gw_rc resource(struct jctx *c, struct json_object *o, GwResource **out)
{
  struct json_object *v;
  size_t mark;
  gw_rc rc = get_obj(c, o, "resource", NULL, &v, &mark);
  if (rc || !v)
    return rc;
  GwResource *r = gw_arena_alloc(c->a, sizeof *r);
  if (!r) {
    rc = oom(c);
    goto pop;
  }
  gw_pb_resource_init(r);
  *out = r;
  if ((rc = attributes(c, v, &r->n_attributes, &r->attributes)))
    goto pop;
  rc = get_u32(c, v, "droppedAttributesCount", "dropped_attributes_count", &r->dropped_attributes_count);
pop:
  path_pop(c, mark);
  return rc;
}

/* common.v1.InstrumentationScope */
static gw_rc scope(struct jctx *c, struct json_object *o, GwScope **out)
{
  struct json_object *v;
  size_t mark;
  gw_rc rc = get_obj(c, o, "scope", NULL, &v, &mark);
  if (rc || !v)
    return rc;
  GwScope *s = gw_arena_alloc(c->a, sizeof *s);
  if (!s) {
    rc = oom(c);
    goto pop;
  }
  gw_pb_scope_init(s);
  *out = s;
  if ((rc = get_str(c, v, "name", NULL, &s->name)) || (rc = get_str(c, v, "version", NULL, &s->version)) ||
      (rc = attributes(c, v, &s->n_attributes, &s->attributes)))
    goto pop;
  rc = get_u32(c, v, "droppedAttributesCount", "dropped_attributes_count", &s->dropped_attributes_count);
pop:
  path_pop(c, mark);
  return rc;
}

/* ---- trace.v1 ---- */

static gw_rc span_event(struct jctx *c, struct json_object *o, GwSpanEvent *ev)
{
  gw_rc rc;
  gw_pb_span_event_init(ev);
  if ((rc = get_u64(c, o, "timeUnixNano", "time_unix_nano", &ev->time_unix_nano)) ||
      (rc = get_str(c, o, "name", NULL, &ev->name)) || (rc = attributes(c, o, &ev->n_attributes, &ev->attributes)))
    return rc;
  return get_u32(c, o, "droppedAttributesCount", "dropped_attributes_count", &ev->dropped_attributes_count);
}

static gw_rc span_link(struct jctx *c, struct json_object *o, GwSpanLink *l)
{
  gw_rc rc;
  gw_pb_span_link_init(l);
  if ((rc = get_hex(c, o, "traceId", "trace_id", &l->trace_id)) ||
      (rc = get_hex(c, o, "spanId", "span_id", &l->span_id)) ||
      (rc = get_str(c, o, "traceState", "trace_state", &l->trace_state)) ||
      (rc = attributes(c, o, &l->n_attributes, &l->attributes)) ||
      (rc = get_u32(c, o, "droppedAttributesCount", "dropped_attributes_count", &l->dropped_attributes_count)))
    return rc;
  return get_u32(c, o, "flags", NULL, &l->flags);
}

static gw_rc span_status(struct jctx *c, struct json_object *o, GwStatus **out)
{
  struct json_object *v;
  size_t mark;
  gw_rc rc = get_obj(c, o, "status", NULL, &v, &mark);
  if (rc || !v)
    return rc;
  GwStatus *st = gw_arena_alloc(c->a, sizeof *st);
  if (!st) {
    rc = oom(c);
    goto pop;
  }
  gw_pb_status_init(st);
  *out = st;
  int code = 0;
  if ((rc = get_str(c, v, "message", NULL, &st->message)) || (rc = get_enum(c, v, "code", NULL, &code)))
    goto pop;
  st->code = code;
pop:
  path_pop(c, mark);
  return rc;
}

/* Decode the repeated message field camel of o with fn into *items / *n_items. */
#define REPEATED(c, o, camel, snake, type, init_fn, items, n_items, fn)                                       \
  do {                                                                                                        \
    struct json_object *arr_;                                                                                 \
    size_t n_, mark_;                                                                                         \
    if ((rc = get_arr(c, o, camel, snake, &arr_, &n_, &mark_)) || !arr_)                                      \
      break;                                                                                                  \
    type **v_ = (type **)alloc_msgs(c, n_, sizeof(type));                                                     \
    if (n_ && !v_) {                                                                                          \
      rc = oom(c);                                                                                            \
      path_pop(c, mark_);                                                                                     \
      break;                                                                                                  \
    }                                                                                                         \
    (items) = v_;                                                                                             \
    for (size_t i_ = 0; i_ < n_; i_++) {                                                                      \
      size_t emark_;                                                                                          \
      struct json_object *e_ = NULL;                                                                          \
      init_fn(v_[i_]);                                                                                        \
      if ((rc = elem_obj(c, arr_, i_, &e_, &emark_)))                                                         \
        break;                                                                                                \
      rc = fn(c, e_, v_[i_]);                                                                                 \
      path_pop(c, emark_);                                                                                    \
      if (rc)                                                                                                 \
        break;                                                                                                \
      (n_items) = i_ + 1;                                                                                     \
    }                                                                                                         \
    path_pop(c, mark_);                                                                                       \
  } while (0)

static gw_rc span(struct jctx *c, struct json_object *o, GwSpan *s)
{
  gw_rc rc;
  int kind = 0;
  if ((rc = get_hex(c, o, "traceId", "trace_id", &s->trace_id)) ||
      (rc = get_hex(c, o, "spanId", "span_id", &s->span_id)) ||
      (rc = get_str(c, o, "traceState", "trace_state", &s->trace_state)) ||
      (rc = get_hex(c, o, "parentSpanId", "parent_span_id", &s->parent_span_id)) ||
      (rc = get_u32(c, o, "flags", NULL, &s->flags)) || (rc = get_str(c, o, "name", NULL, &s->name)) ||
      (rc = get_enum(c, o, "kind", NULL, &kind)) ||
      (rc = get_u64(c, o, "startTimeUnixNano", "start_time_unix_nano", &s->start_time_unix_nano)) ||
      (rc = get_u64(c, o, "endTimeUnixNano", "end_time_unix_nano", &s->end_time_unix_nano)) ||
      (rc = attributes(c, o, &s->n_attributes, &s->attributes)) ||
      (rc = get_u32(c, o, "droppedAttributesCount", "dropped_attributes_count", &s->dropped_attributes_count)))
    return rc;
  s->kind = kind;
  REPEATED(c, o, "events", NULL, GwSpanEvent, gw_pb_span_event_init, s->events, s->n_events, span_event);
  if (rc || (rc = get_u32(c, o, "droppedEventsCount", "dropped_events_count", &s->dropped_events_count)))
    return rc;
  REPEATED(c, o, "links", NULL, GwSpanLink, gw_pb_span_link_init, s->links, s->n_links, span_link);
  if (rc || (rc = get_u32(c, o, "droppedLinksCount", "dropped_links_count", &s->dropped_links_count)))
    return rc;
  return span_status(c, o, &s->status);
}

static gw_rc scope_spans(struct jctx *c, struct json_object *o, GwScopeSpans *ss)
{
  gw_rc rc;
  if ((rc = scope(c, o, &ss->scope)) || (rc = get_str(c, o, "schemaUrl", "schema_url", &ss->schema_url)))
    return rc;
  REPEATED(c, o, "spans", NULL, GwSpan, gw_pb_span_init, ss->spans, ss->n_spans, span);
  return rc;
}

static gw_rc resource_spans(struct jctx *c, struct json_object *o, GwResourceSpans *rs)
{
  gw_rc rc;
  if ((rc = resource(c, o, &rs->resource)) || (rc = get_str(c, o, "schemaUrl", "schema_url", &rs->schema_url)))
    return rc;
  REPEATED(c, o, "scopeSpans", "scope_spans", GwScopeSpans, gw_pb_scope_spans_init, rs->scope_spans,
           rs->n_scope_spans, scope_spans);
  return rc;
}

static gw_rc trace_request(struct jctx *c, struct json_object *o, GwTraceRequest *req)
{
  gw_rc rc = GW_OK;
  REPEATED(c, o, "resourceSpans", "resource_spans", GwResourceSpans, gw_pb_resource_spans_init,
           req->resource_spans, req->n_resource_spans, resource_spans);
  return rc;
}

static gw_rc log_record(struct jctx *c, struct json_object *o, GwLogRecord *l)
{
  gw_rc rc;
  int sev = 0;
  size_t mark = 0;
  struct json_object *body = NULL;
  if ((rc = get_u64(c, o, "timeUnixNano", "time_unix_nano", &l->time_unix_nano)) ||
      (rc = get_u64(c, o, "observedTimeUnixNano", "observed_time_unix_nano", &l->observed_time_unix_nano)) ||
      (rc = get_enum(c, o, "severityNumber", "severity_number", &sev)) ||
      (rc = get_str(c, o, "severityText", "severity_text", &l->severity_text)) ||
      (rc = attributes(c, o, &l->n_attributes, &l->attributes)) ||
      (rc = get_u32(c, o, "droppedAttributesCount", "dropped_attributes_count", &l->dropped_attributes_count)) ||
      (rc = get_u32(c, o, "flags", NULL, &l->flags)) || (rc = get_hex(c, o, "traceId", "trace_id", &l->trace_id)) ||
      (rc = get_hex(c, o, "spanId", "span_id", &l->span_id)) ||
      (rc = get_str(c, o, "eventName", "event_name", &l->event_name)) ||
      (rc = get_obj(c, o, "body", NULL, &body, &mark)))
    return rc;
  l->severity_number = sev;
  if (body) {
    GwAnyValue *av = gw_arena_alloc(c->a, sizeof *av);
    if (!av)
      return oom(c);
    gw_pb_any_value_init(av);
    if ((rc = any_value(c, body, av, 1)))
      return rc;
    l->body = av;
    path_pop(c, mark);
  }
  return GW_OK;
}

static gw_rc scope_logs(struct jctx *c, struct json_object *o, GwScopeLogs *sl)
{
  gw_rc rc;
  if ((rc = scope(c, o, &sl->scope)) || (rc = get_str(c, o, "schemaUrl", "schema_url", &sl->schema_url)))
    return rc;
  REPEATED(c, o, "logRecords", "log_records", GwLogRecord, gw_pb_log_record_init, sl->log_records, sl->n_log_records,
           log_record);
  return rc;
}

static gw_rc resource_logs(struct jctx *c, struct json_object *o, GwResourceLogs *rl)
{
  gw_rc rc;
  if ((rc = resource(c, o, &rl->resource)) || (rc = get_str(c, o, "schemaUrl", "schema_url", &rl->schema_url)))
    return rc;
  REPEATED(c, o, "scopeLogs", "scope_logs", GwScopeLogs, gw_pb_scope_logs_init, rl->scope_logs, rl->n_scope_logs,
           scope_logs);
  return rc;
}

static gw_rc logs_request(struct jctx *c, struct json_object *o, GwLogsRequest *req)
{
  gw_rc rc = GW_OK;
  REPEATED(c, o, "resourceLogs", "resource_logs", GwResourceLogs, gw_pb_resource_logs_init, req->resource_logs,
           req->n_resource_logs, resource_logs);
  return rc;
}

/* ---- the DOM ---- */

/* Parse body into a json-c DOM (caller puts it), or fail with DECODE / TOO_DEEP / TOO_LARGE. */
static gw_rc parse(const char *body, size_t len, uint32_t max_depth, struct json_object **out, struct gw_err *err)
{
  gw_rc result = GW_ERR(DECODE);
  struct json_object *root = NULL;
  *out = NULL;
  if (len > INT_MAX)
    return gw_err_set(err, GW_ERR(TOO_LARGE), "JSON: body of %zu bytes is too large", len);
  uint64_t depth = (uint64_t)max_depth * 4 + 16;
  if (depth > 65536)
    depth = 65536;
  struct json_tokener *tok = json_tokener_new_ex((int)depth);
  if (!tok)
    return gw_err_set(err, GW_ERR(NOMEM), "JSON: cannot allocate a parser");
  root = json_tokener_parse_ex(tok, body, (int)len);
  enum json_tokener_error jerr = json_tokener_get_error(tok);
  size_t end = json_tokener_get_parse_end(tok);
  if (!root) {
    if (jerr == json_tokener_continue || jerr == json_tokener_success)
      result = gw_err_set(err, GW_ERR(DECODE), "JSON: unexpected end of input at offset %zu", len);
    else if (jerr == json_tokener_error_depth)
      result = gw_err_set(err, GW_ERR(TOO_DEEP), "JSON: nested deeper than %u levels at offset %zu",
                          (unsigned)depth, end);
    else
      result = gw_err_set(err, GW_ERR(DECODE), "JSON: %s at offset %zu", json_tokener_error_desc(jerr), end);
    goto out;
  }
  for (size_t i = end; i < len; i++) {
    char ch = body[i];
    if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n') {
      result = gw_err_set(err, GW_ERR(DECODE), "JSON: unexpected data after the request at offset %zu", i);
      goto out;
    }
  }
  if (!json_object_is_type(root, json_type_object)) {
    result = gw_err_set(err, GW_ERR(DECODE), "JSON: the request is not an object");
    goto out;
  }
  *out = root;
  root = NULL;
  result = GW_OK;
out:
  json_object_put(root);
  json_tokener_free(tok);
  return result;
}

/* Parse, allocate the request message of `size` bytes, init it and fill it with `fill`: one shape for both
 * signals. */
static gw_rc decode_request(struct gw_arena *a, const char *body, size_t len, const struct gw_decode_limits *lim,
                            size_t size, void (*init)(void *), gw_rc (*fill)(struct jctx *, struct json_object *, void *),
                            void **out, struct gw_err *err)
{
  struct json_object *root = NULL;
  struct jctx c = {.a = a, .max_depth = lim->max_depth, .err = err};
  *out = NULL;
  gw_rc result = parse(body, len, lim->max_depth, &root, err);
  if (result)
    return result;
  void *req = gw_arena_alloc(a, size);
  if (!req) {
    result = oom(&c);
    goto out;
  }
  init(req);
  if ((result = fill(&c, root, req)))
    goto out;
  *out = req;
out:
  if (c.fixed)
    gw_metric_add(GW_M_UTF8_FIXED, (int64_t)c.fixed);
  json_object_put(root);
  return result;
}

static void init_traces(void *m) { gw_pb_trace_request_init(m); }
static gw_rc fill_traces(struct jctx *c, struct json_object *o, void *m) { return trace_request(c, o, m); }
static void init_logs(void *m) { gw_pb_logs_request_init(m); }
static gw_rc fill_logs(struct jctx *c, struct json_object *o, void *m) { return logs_request(c, o, m); }

gw_rc gw_decode_json_dom_traces(struct gw_arena *a, const char *body, size_t len, const struct gw_decode_limits *lim,
                            GwTraceRequest **out, struct gw_err *err)
{
  void *req;
  gw_rc rc = decode_request(a, body, len, lim, sizeof **out, init_traces, fill_traces, &req, err);
  *out = req;
  return rc;
}

gw_rc gw_decode_json_dom_logs(struct gw_arena *a, const char *body, size_t len, const struct gw_decode_limits *lim,
                          GwLogsRequest **out, struct gw_err *err)
{
  void *req;
  gw_rc rc = decode_request(a, body, len, lim, sizeof **out, init_logs, fill_logs, &req, err);
  *out = req;
  return rc;
}
