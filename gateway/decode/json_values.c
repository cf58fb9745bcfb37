/*
 * json_values.c: the OTLP/JSON decoder's field readers (decode_int.h), between the lexer (json_lex.c) and
 * the OTLP schema (decode_json.c): scalars converted as the proto3 JSON mapping and OTLP §1.6 say (64-bit
 * integers as numbers or decimal strings, enums as numbers or names, hex ids, base64 bytes, NaN and
 * Infinity as strings), repeated fields collected into one pointer array, and the member walk with its
 * camelCase-over-snake_case and null rules.
 *
 * Decisions:
 * - A repeated field's elements are allocated one by one as they are read; their pointers wait in
 *   blocks that are recycled from array to array, and are copied once into an exact array at its end.
 *   Nothing is sized from a count the client declares, and the blocks are arena memory (counted).
 * - Errors name the field's path and never its content: "...spans[3].traceId: not hex".
 * - Strings are copied into the arena once and made valid UTF-8 (gw_utf8_fix; NUL bytes removed); ids,
 *   numbers in strings and base64 are read from the body when they hold no escape, with no copy.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "decode/decode.h"
#include "decode/decode_int.h"

#define BLK_N 254
struct gw_json_blk {
  struct gw_json_blk *next;
  size_t n;
  void *v[BLK_N];
};

/* A type error for the value peek classified as t (a syntax error when it is no value at all). */
gw_rc gw_json_want(struct gw_json *j, enum gw_jt t, const char *what)
{
  if (t == GW_JT_BAD || t == GW_JT_END)
    return gw_json_bad(j);
  return gw_json_fail(j, GW_ERR(DECODE), what);
}

/* ---- repeated fields: pointers collected in blocks, then one array ---- */

gw_rc gw_json_vec_push(struct gw_json *j, struct gw_json_vec *v, void *p)
{
  if (v->n < GW_JSON_VEC_INLINE) {
    v->in[v->n++] = p;
    return GW_OK;
  }
  struct gw_json_blk *b = v->tail;
  if (!b || b->n == BLK_N) {
    if ((b = j->spare)) {
      j->spare = b->next;
    } else if (!(b = gw_arena_alloc(j->a, sizeof *b))) {
      return gw_json_oom(j);
    }
    b->next = NULL;
    b->n = 0;
    if (v->tail)
      v->tail->next = b;
    else
      v->head = b;
    v->tail = b;
  }
  b->v[b->n++] = p;
  v->n++;
  return GW_OK;
}

/* The collected pointers as one arena array (NULL when empty); the blocks go back for reuse. */
gw_rc gw_json_vec_finish(struct gw_json *j, struct gw_json_vec *v, void ***out, size_t *n)
{
  void **arr = NULL;
  if (v->n) {
    if (!(arr = gw_arena_alloc(j->a, v->n * sizeof *arr)))
      return gw_json_oom(j);
    size_t k = v->n < GW_JSON_VEC_INLINE ? v->n : GW_JSON_VEC_INLINE;
    memcpy(arr, v->in, k * sizeof *arr);
    for (struct gw_json_blk *b = v->head; b; b = b->next) {
      memcpy(arr + k, b->v, b->n * sizeof *arr);
      k += b->n;
    }
  }
  if (v->tail) {
    v->tail->next = j->spare;
    j->spare = v->head;
  }
  *out = arr;
  *n = v->n;
  return GW_OK;
}

/* ---- field names ---- */

/* The index of key k in t, or -1; *camel: it was the lowerCamelCase name. */
int gw_json_lookup(const struct gw_json_name *t, int n, const char *k, size_t kn, bool *camel)
{
  for (int i = 0; i < n; i++) {
    if (kn == t[i].clen && !memcmp(k, t[i].camel, kn)) {
      *camel = true;
      return i;
    }
    if (t[i].snake && kn == t[i].slen && !memcmp(k, t[i].snake, kn)) {
      *camel = false;
      return i;
    }
  }
  return -1;
}

/* What to do with the member's value: skip it (a snake_case name after the camelCase one), reset the
 * field (null, consumed here), or read it. */
enum gw_json_take gw_json_take(struct gw_json *j, const struct gw_json_fld *fd, gw_rc *rc)
{
  *rc = GW_OK;
  if (fd->camel)
    *fd->seen |= 1u << fd->f;
  else if (*fd->seen >> fd->f & 1)
    return GW_JSON_SKIP;
  if (gw_json_peek(j) == GW_JT_NULL) {
    *rc = gw_json_null(j);
    return GW_JSON_NULL;
  }
  return GW_JSON_READ;
}

/* ---- scalars: the value is next; the path names it ---- */

/* The string value's bytes: raw from the body when it has no escape, else decoded into the arena. */
static gw_rc string_bytes(struct gw_json *j, const char **s, size_t *n, const char *what)
{
  enum gw_jt t = gw_json_peek(j);
  if (t != GW_JT_STR)
    return gw_json_want(j, t, what);
  gw_rc rc = gw_json_string_raw(j, s, n);
  if (rc || *s)
    return rc;
  char *d;
  if ((rc = gw_json_string(j, &d, n)))
    return rc;
  *s = d;
  return GW_OK;
}

/* The same as a NUL-terminated string (a copy when it came raw and small enough for buf). */
static gw_rc cstring(struct gw_json *j, char *buf, size_t cap, const char **s, size_t *n, const char *what)
{
  enum gw_jt t = gw_json_peek(j);
  if (t != GW_JT_STR)
    return gw_json_want(j, t, what);
  const char *raw;
  gw_rc rc = gw_json_string_raw(j, &raw, n);
  if (rc)
    return rc;
  if (raw) {
    char *d = buf;
    if (*n >= cap && !(d = gw_arena_alloc(j->a, *n + 1)))
      return gw_json_oom(j);
    memcpy(d, raw, *n);
    d[*n] = 0;
    *s = d;
    return GW_OK;
  }
  char *d;
  if ((rc = gw_json_string(j, &d, n)))
    return rc;
  *s = d;
  return GW_OK;
}

gw_rc gw_json_str_value(struct gw_json *j, char **out)
{
  enum gw_jt t = gw_json_peek(j);
  if (t != GW_JT_STR)
    return gw_json_want(j, t, "want a string");
  char *s;
  size_t n;
  bool ascii, fixed;
  gw_rc rc = gw_json_string_ascii(j, &s, &n, &ascii);
  if (rc)
    return rc;
  if (ascii) {
    *out = s; /* seen whole on the copy: nothing to repair */
    return GW_OK;
  }
  if (!(s = gw_utf8_fix(j->a, s, n, &fixed)))
    return gw_json_oom(j);
  j->fixed += fixed;
  *out = s;
  return GW_OK;
}

/* Decimal digits only (an optional leading '-' when neg_ok), no NUL: no spaces, no '+', no exponent. */
static bool dec_string(const char *s, size_t n, bool neg_ok)
{
  size_t i = neg_ok && n && s[0] == '-';
  if (i == n)
    return false;
  for (; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return false;
  return true;
}

/* An unsigned integer up to max: a JSON integer, an integral double, or a decimal string. */
static gw_rc u64_value(struct gw_json *j, uint64_t max, uint64_t *out)
{
  enum gw_jt t = gw_json_peek(j);
  uint64_t u = 0;
  gw_rc rc;
  if (t == GW_JT_NUM) {
    struct gw_jnum n;
    if ((rc = gw_json_number(j, &n)))
      return rc;
    if (n.dbl) {
      if (!isfinite(n.d) || n.d != floor(n.d) || n.d < 0 || n.d >= 18446744073709551616.0)
        return gw_json_fail(j, GW_ERR(DECODE), "not an unsigned integer");
      u = (uint64_t)n.d;
    } else if (n.neg && n.mag) {
      return gw_json_fail(j, GW_ERR(DECODE), "negative");
    } else if (n.big) {
      return gw_json_fail(j, GW_ERR(DECODE), "out of range");
    } else {
      u = n.mag;
    }
  } else if (t == GW_JT_STR) {
    const char *s = "";
    size_t n;
    if ((rc = string_bytes(j, &s, &n, "")))
      return rc;
    if (!dec_string(s, n, false))
      return gw_json_fail(j, GW_ERR(DECODE), "not a decimal integer");
    for (size_t i = 0; i < n; i++) {
      unsigned v = (unsigned)(s[i] - '0');
      if (u > (UINT64_MAX - v) / 10)
        return gw_json_fail(j, GW_ERR(DECODE), "out of range");
      u = u * 10 + v;
    }
  } else {
    return gw_json_want(j, t, "want an integer");
  }
  if (u > max)
    return gw_json_fail(j, GW_ERR(DECODE), "out of range");
  *out = u;
  return GW_OK;
}

/* A signed integer in [min, max], same encodings as u64_value. */
gw_rc gw_json_i64_value(struct gw_json *j, int64_t min, int64_t max, int64_t *out)
{
  enum gw_jt t = gw_json_peek(j);
  int64_t i = 0;
  gw_rc rc;
  if (t == GW_JT_NUM) {
    struct gw_jnum n;
    if ((rc = gw_json_number(j, &n)))
      return rc;
    if (n.dbl) {
      if (!isfinite(n.d) || n.d != floor(n.d) || n.d < -9223372036854775808.0 || n.d >= 9223372036854775808.0)
        return gw_json_fail(j, GW_ERR(DECODE), "not an integer");
      i = (int64_t)n.d;
    } else if (n.big || (!n.neg && n.mag > (uint64_t)INT64_MAX)) {
      return gw_json_fail(j, GW_ERR(DECODE), "out of range");
    } else {
      i = n.neg ? (int64_t)(0 - n.mag) : (int64_t)n.mag;
    }
  } else if (t == GW_JT_STR) {
    const char *s = "";
    size_t n;
    if ((rc = string_bytes(j, &s, &n, "")))
      return rc;
    if (!dec_string(s, n, true))
      return gw_json_fail(j, GW_ERR(DECODE), "not a decimal integer");
    bool neg = s[0] == '-';
    uint64_t m = 0, lim = neg ? (uint64_t)1 << 63 : (uint64_t)INT64_MAX;
    for (size_t k = neg; k < n; k++) {
      unsigned v = (unsigned)(s[k] - '0');
      if (m > (lim - v) / 10)
        return gw_json_fail(j, GW_ERR(DECODE), "out of range");
      m = m * 10 + v;
    }
    i = neg ? (int64_t)(0 - m) : (int64_t)m;
  } else {
    return gw_json_want(j, t, "want an integer");
  }
  if (i < min || i > max)
    return gw_json_fail(j, GW_ERR(DECODE), "out of range");
  *out = i;
  return GW_OK;
}

/* A double: a JSON number, or a string holding a number or "NaN" / "Infinity" / "-Infinity" (proto3 JSON). */
gw_rc gw_json_double_value(struct gw_json *j, double *out)
{
  enum gw_jt t = gw_json_peek(j);
  gw_rc rc;
  if (t == GW_JT_NUM) {
    struct gw_jnum n;
    if ((rc = gw_json_number(j, &n)))
      return rc;
    *out = n.d;
    return GW_OK;
  }
  if (t != GW_JT_STR)
    return gw_json_want(j, t, "want a number");
  char buf[64];
  const char *s = "";
  size_t n = 0;
  if ((rc = cstring(j, buf, sizeof buf, &s, &n, "")))
    return rc;
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
      return gw_json_fail(j, GW_ERR(DECODE), "not a number");
    *out = d;
  }
  return GW_OK;
}

gw_rc gw_json_bool_value(struct gw_json *j, protobuf_c_boolean *out)
{
  enum gw_jt t = gw_json_peek(j);
  if (t != GW_JT_BOOL)
    return gw_json_want(j, t, "want a boolean");
  bool b;
  gw_rc rc = gw_json_bool(j, &b);
  *out = b;
  return rc;
}

/* trace/span ids: case-insensitive hex (§1.6), not base64. */
#ifdef __SSE2__
/* 16 hex digits (either case) into 8 bytes; false, writing nothing, when one is not a hex digit (the byte
 * loop then meets it and says so). Bytes >= 0x80 are negative to the signed compares: never a digit. */
static bool hex16(const char *s, uint8_t *d)
{
  __m128i v = _mm_loadu_si128((const __m128i *)(const void *)s);
  __m128i low = _mm_or_si128(v, _mm_set1_epi8(0x20));
  __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)), _mm_cmplt_epi8(v, _mm_set1_epi8('9' + 1)));
  __m128i alpha = _mm_and_si128(_mm_cmpgt_epi8(low, _mm_set1_epi8('a' - 1)), _mm_cmplt_epi8(low, _mm_set1_epi8('f' + 1)));
  if (_mm_movemask_epi8(_mm_or_si128(digit, alpha)) != 0xffff)
    return false;
  /* '0'-'9' & 0xf are 0-9; 'a'-'f' and 'A'-'F' & 0xf are 1-6, plus 9 */
  __m128i nib = _mm_add_epi8(_mm_and_si128(v, _mm_set1_epi8(0x0f)), _mm_and_si128(alpha, _mm_set1_epi8(9)));
  /* a 16-bit lane holds a byte's two digits, the first (high nibble) in its low byte */
  __m128i b = _mm_or_si128(_mm_slli_epi16(_mm_and_si128(nib, _mm_set1_epi16(0xff)), 4), _mm_srli_epi16(nib, 8));
  _mm_storel_epi64((__m128i *)(void *)d, _mm_packus_epi16(b, b));
  return true;
}
#endif

static gw_rc hex_value(struct gw_json *j, ProtobufCBinaryData *out)
{
  const char *s = "";
  size_t n;
  gw_rc rc = string_bytes(j, &s, &n, "want a hex string");
  if (rc)
    return rc;
  if (n % 2)
    return gw_json_fail(j, GW_ERR(DECODE), "not hex (odd length)");
  out->len = n / 2;
  out->data = NULL;
  if (!n)
    return GW_OK;
  uint8_t *d = gw_arena_alloc(j->a, n / 2);
  if (!d)
    return gw_json_oom(j);
  size_t i = 0;
#ifdef __SSE2__
  for (; i + 16 <= n && hex16(s + i, d + i / 2); i += 16) /* trace ids are two blocks, span ids one */
    ;
#endif
  for (; i < n; i += 2) {
    int hi = gw_json_hexval((unsigned char)s[i]), lo = gw_json_hexval((unsigned char)s[i + 1]);
    if (hi < 0 || lo < 0)
      return gw_json_fail(j, GW_ERR(DECODE), "not hex");
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
gw_rc gw_json_b64_value(struct gw_json *j, ProtobufCBinaryData *out)
{
  const char *s = "";
  size_t n;
  gw_rc rc = string_bytes(j, &s, &n, "want a base64 string");
  if (rc)
    return rc;
  if (n % 4 == 0 && n >= 1 && s[n - 1] == '=')
    n--;
  if (n % 4 == 3 && n >= 1 && s[n - 1] == '=')
    n--;
  if (n % 4 == 1)
    return gw_json_fail(j, GW_ERR(DECODE), "not base64");
  out->len = 0;
  out->data = NULL;
  if (!n)
    return GW_OK;
  uint8_t *d = gw_arena_alloc(j->a, n / 4 * 3 + 2);
  if (!d)
    return gw_json_oom(j);
  uint32_t acc = 0;
  int bits = 0;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    int x = b64val((unsigned char)s[i]);
    if (x < 0)
      return gw_json_fail(j, GW_ERR(DECODE), "not base64");
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

/* ---- members: take (null / skip), push the name, read ---- */

gw_rc gw_json_get_str(struct gw_json *j, const struct gw_json_fld *fd, char **out)
{
  GW_JSON_TAKE_OR_RETURN(j, fd, *out = (char *)protobuf_c_empty_string);
  gw_json_push_name(j, fd->name);
  gw_rc rc = gw_json_str_value(j, out);
  gw_json_pop(j);
  return rc;
}

gw_rc gw_json_get_u64(struct gw_json *j, const struct gw_json_fld *fd, uint64_t *out)
{
  GW_JSON_TAKE_OR_RETURN(j, fd, *out = 0);
  gw_json_push_name(j, fd->name);
  gw_rc rc = u64_value(j, UINT64_MAX, out);
  gw_json_pop(j);
  return rc;
}

gw_rc gw_json_get_u32(struct gw_json *j, const struct gw_json_fld *fd, uint32_t *out)
{
  GW_JSON_TAKE_OR_RETURN(j, fd, *out = 0);
  gw_json_push_name(j, fd->name);
  uint64_t u = 0;
  gw_rc rc = u64_value(j, UINT32_MAX, &u);
  if (!rc)
    *out = (uint32_t)u;
  gw_json_pop(j);
  return rc;
}

/* Enums are integers in OTLP/JSON (§1.6) or their proto names; unknown numbers are kept, as proto3 open
 * enums are. */
gw_rc gw_json_get_enum(struct gw_json *j, const struct gw_json_fld *fd, const ProtobufCEnumDescriptor *desc,
                       int *out)
{
  GW_JSON_TAKE_OR_RETURN(j, fd, *out = 0);
  gw_json_push_name(j, fd->name);
  gw_rc rc;
  int64_t i = 0;
  const char *s = "";
  size_t n = 0;
  char buf[64];
  if (gw_json_peek(j) == GW_JT_STR) {
    const char *save = j->p;
    if ((rc = cstring(j, buf, sizeof buf, &s, &n, "")))
      goto out;
    if (!dec_string(s, n, true)) {
      const ProtobufCEnumValue *v = strlen(s) == n ? protobuf_c_enum_descriptor_get_value_by_name(desc, s) : NULL;
      if (!v) {
        char what[96];
        snprintf(what, sizeof what, "not a decimal integer or %s name", desc->short_name);
        rc = gw_json_fail(j, GW_ERR(DECODE), what);
        goto out;
      }
      *out = v->value;
      goto out;
    }
    j->p = save; /* a decimal string: read again as an integer */
  }
  if (!(rc = gw_json_i64_value(j, INT32_MIN, INT32_MAX, &i)))
    *out = (int)i;
out:
  gw_json_pop(j);
  return rc;
}

gw_rc gw_json_get_hex(struct gw_json *j, const struct gw_json_fld *fd, ProtobufCBinaryData *out)
{
  GW_JSON_TAKE_OR_RETURN(j, fd, (out->len = 0, out->data = NULL));
  gw_json_push_name(j, fd->name);
  gw_rc rc = hex_value(j, out);
  gw_json_pop(j);
  return rc;
}

/* A message-typed member: NULL when null; the value must be an object, read by fn into a new struct of
 * size sz that init prepares. */

gw_rc gw_json_get_msg(struct gw_json *j, const struct gw_json_fld *fd, size_t sz, void (*init)(void *),
                      gw_json_msg_fn fn, void **out)
{
  GW_JSON_TAKE_OR_RETURN(j, fd, *out = NULL);
  gw_json_push_name(j, fd->name);
  gw_rc rc;
  void *m = gw_json_new_obj(j, sz, &rc);
  if (m) {
    init(m);
    *out = m;
    rc = fn(j, m);
  }
  gw_json_pop(j);
  return rc;
}

/* A repeated message member: an array of objects, each read by fn into a new struct. */
gw_rc gw_json_get_repeated(struct gw_json *j, const struct gw_json_fld *fd, size_t sz, void (*init)(void *),
                           gw_json_msg_fn fn, void ***items, size_t *n_items)
{
  GW_JSON_TAKE_OR_RETURN(j, fd, (*items = NULL, *n_items = 0));
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
    void *m = gw_json_new_obj(j, sz, &rc);
    if (m) {
      init(m);
      rc = fn(j, m);
    }
    gw_json_pop(j);
    if (rc || (rc = gw_json_vec_push(j, &v, m)))
      goto out;
  }
  rc = r < 0 ? r : gw_json_vec_finish(j, &v, items, n_items);
out:
  gw_json_pop(j);
  return rc;
}

/* Walk the members of the object at p: for each, look its key up in t and call member(j, msg, &fd), or
 * skip an unknown one. */

gw_rc gw_json_members(struct gw_json *j, const struct gw_json_name *t, int n, void *msg,
                      gw_json_member_fn member)
{
  uint32_t seen = 0;
  int r, st = 0;
  const char *k;
  size_t kn;
  gw_json_obj_begin(j);
  while ((r = gw_json_obj_next(j, &st, &k, &kn)) == 1) {
    struct gw_json_fld fd = {&seen, 0, false, NULL};
    gw_rc rc;
    if ((fd.f = gw_json_lookup(t, n, k, kn, &fd.camel)) < 0) {
      rc = gw_json_skip(j);
    } else {
      fd.name = t[fd.f].camel;
      rc = member(j, msg, &fd);
    }
    if (rc)
      return rc;
  }
  return r;
}
