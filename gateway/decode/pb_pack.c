/*
 * pb_pack.c: the forwarded request packed with each sub-message's size computed once.
 *
 * protobuf_c_message_pack writes a sub-message after a one-byte length and, when the length needs more
 * bytes, moves the whole sub-message up: a span of a few KB is moved once for its own length, again for
 * its ScopeSpans' and its ResourceSpans', and every AnyValue and KeyValue past 127 bytes once more. Here a
 * size pass keeps every sub-message's size and string's length, in the order the pack pass meets them, so
 * each byte is written once, in place, and no string is measured twice; KeyValue and AnyValue, most of a request's messages, skip the walk of their descriptors
 * (an AnyValue has eight oneof members to try). The bytes are protobuf-c 1.4's: fields in descriptor order, proto3 fields left out when
 * zero or empty as field_is_zeroish says, a oneof's member when selected (a string or message one unless it
 * is NULL or the field's default), repeated fields one tag per value, unknown fields last as unpacked.
 * Labels and types our .proto files do not use (required, optional, packed, sint, sfixed, float) make the
 * size pass say no, and the caller packs with protobuf-c.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "decode/decode.h"

static inline size_t varint_size(uint64_t v)
{
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static inline uint8_t *varint(uint64_t v, uint8_t *out)
{
  while (v >= 0x80) {
    *out++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *out++ = (uint8_t)v;
  return out;
}

/* protobuf-c's field_is_zeroish (1.4): a proto3 field at its zero value is not written. */
static bool zeroish(const ProtobufCFieldDescriptor *f, const void *member)
{
  switch (f->type) {
  case PROTOBUF_C_TYPE_BOOL: return *(const protobuf_c_boolean *)member == 0;
  case PROTOBUF_C_TYPE_ENUM:
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32: return *(const uint32_t *)member == 0;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_FIXED64: return *(const uint64_t *)member == 0;
  case PROTOBUF_C_TYPE_DOUBLE: return *(const double *)member == 0;
  case PROTOBUF_C_TYPE_STRING: {
    const char *s = *(const char *const *)member;
    return !s || !*s;
  }
  case PROTOBUF_C_TYPE_BYTES: return ((const ProtobufCBinaryData *)member)->len == 0;
  case PROTOBUF_C_TYPE_MESSAGE: return *(const void *const *)member == NULL;
  default: return true; /* not reached: schema_supported() refused the type */
  }
}

/* The types this packer writes (those of our .proto files); the size pass refuses a message whose schema
 * holds another, or another label than proto3's none and repeated, or a packed field. */
static bool supported(const ProtobufCFieldDescriptor *f)
{
  if (f->label != PROTOBUF_C_LABEL_NONE && f->label != PROTOBUF_C_LABEL_REPEATED)
    return false;
  if (f->flags & PROTOBUF_C_FIELD_FLAG_PACKED)
    return false;
  switch (f->type) {
  case PROTOBUF_C_TYPE_BOOL:
  case PROTOBUF_C_TYPE_ENUM:
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_FIXED64:
  case PROTOBUF_C_TYPE_DOUBLE:
  case PROTOBUF_C_TYPE_STRING:
  case PROTOBUF_C_TYPE_BYTES:
  case PROTOBUF_C_TYPE_MESSAGE: return true;
  default: return false;
  }
}

/* How many values of field f message m writes: 0, 1, or a repeated field's count. */
static size_t held(const ProtobufCFieldDescriptor *f, const ProtobufCMessage *m)
{
  const char *base = (const char *)m;
  const void *member = base + f->offset;
  if (f->label == PROTOBUF_C_LABEL_REPEATED)
    return *(const size_t *)(base + f->quantifier_offset);
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
    if (*(const uint32_t *)(base + f->quantifier_offset) != f->id)
      return 0;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING) {
      const void *p = *(const void *const *)member;
      return p && p != f->default_value;
    }
    return 1;
  }
  return !zeroish(f, member);
}

static size_t element_size(ProtobufCType t)
{
  switch (t) {
  case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
  case PROTOBUF_C_TYPE_ENUM:
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32: return 4;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_FIXED64:
  case PROTOBUF_C_TYPE_DOUBLE: return 8;
  case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
  default: return sizeof(void *);
  }
}

/* Room on the tape for `need` entries in all. */
static bool grow(struct gw_pb_sizes *s, size_t need)
{
  if (need > s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 1024;
    while (cap < need)
      cap *= 2;
    uint32_t *v;
    if (s->a) { /* the request's arena: its pages are warm, a malloc'd tape of 100+ KB may be mapped afresh */
      if ((v = gw_arena_alloc(s->a, cap * sizeof *v)) && s->n)
        memcpy(v, s->v, s->n * sizeof *v);
    } else {
      v = realloc(s->v, cap * sizeof *v);
    }
    if (!v)
      return false;
    s->v = v;
    s->cap = cap;
  }
  return true;
}

static bool push(struct gw_pb_sizes *s)
{
  if (!grow(s, s->n + 1))
    return false;
  s->n++;
  return true;
}

/* A string's length, kept for the pack pass in the order it meets the string (it is not measured twice). */
static bool keep_len(struct gw_pb_sizes *s, size_t n)
{
  if (n > UINT32_MAX || !push(s))
    return false;
  s->v[s->n - 1] = (uint32_t)n;
  return true;
}

static bool msg_size(struct gw_pb_sizes *s, const ProtobufCMessage *m, size_t *len);
static uint8_t *msg_pack(struct gw_pb_sizes *s, const ProtobufCMessage *m, uint8_t *out);
static bool sub_size(struct gw_pb_sizes *s, const ProtobufCMessage *m, size_t *len);
static uint8_t *sub_pack(struct gw_pb_sizes *s, const ProtobufCMessage *m, uint8_t *out);
static uint8_t *value_pack(struct gw_pb_sizes *s, const ProtobufCFieldDescriptor *f, const void *v, uint8_t *out);

/* One value of field f at v, without its tag. */
static bool value_size(struct gw_pb_sizes *s, const ProtobufCFieldDescriptor *f, const void *v, size_t *len)
{
  switch (f->type) {
  case PROTOBUF_C_TYPE_BOOL: *len = 1; return true;
  case PROTOBUF_C_TYPE_ENUM:
  case PROTOBUF_C_TYPE_INT32: *len = varint_size((uint64_t)(int64_t) * (const int32_t *)v); return true;
  case PROTOBUF_C_TYPE_UINT32: *len = varint_size(*(const uint32_t *)v); return true;
  case PROTOBUF_C_TYPE_INT64: *len = varint_size(*(const uint64_t *)v); return true;
  case PROTOBUF_C_TYPE_FIXED32: *len = 4; return true;
  case PROTOBUF_C_TYPE_FIXED64:
  case PROTOBUF_C_TYPE_DOUBLE: *len = 8; return true;
  case PROTOBUF_C_TYPE_STRING: {
    const char *str = *(const char *const *)v;
    size_t n = str ? strlen(str) : 0;
    if (!keep_len(s, n))
      return false;
    *len = varint_size(n) + n;
    return true;
  }
  case PROTOBUF_C_TYPE_BYTES: {
    size_t n = ((const ProtobufCBinaryData *)v)->len;
    *len = varint_size(n) + n;
    return true;
  }
  case PROTOBUF_C_TYPE_MESSAGE: {
    const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)v;
    if (!sub) {
      *len = 1; /* a NULL message is written as an empty one */
      return true;
    }
    return sub_size(s, sub, len);
  }
  default: return false;
  }
}

/* ---- KeyValue and AnyValue, nine in ten of a request's messages, written without the descriptor loop ----
 * Used only when their descriptors are the ones this code was written for (same fields, numbers, types
 * and offsets: kv_shape, any_shape), else they go the generic way. */

#define KV_DESC opentelemetry__proto__common__v1__key_value__descriptor
#define ANY_DESC opentelemetry__proto__common__v1__any_value__descriptor

static bool field_is(const ProtobufCFieldDescriptor *f, uint32_t id, ProtobufCType t, size_t off, bool oneof)
{
  return f->id == id && f->type == t && f->label == PROTOBUF_C_LABEL_NONE && f->offset == off &&
         !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) == !oneof &&
         (!oneof || f->quantifier_offset == offsetof(GwAnyValue, value_case));
}

static bool kv_shape(const ProtobufCMessageDescriptor *d)
{
  return d->n_fields == 3 && field_is(&d->fields[0], 1, PROTOBUF_C_TYPE_STRING, offsetof(GwKeyValue, key), false) &&
         field_is(&d->fields[1], 2, PROTOBUF_C_TYPE_MESSAGE, offsetof(GwKeyValue, value), false) &&
         field_is(&d->fields[2], 3, PROTOBUF_C_TYPE_INT32, offsetof(GwKeyValue, key_strindex), false);
}

static bool any_shape(const ProtobufCMessageDescriptor *d)
{
  static const ProtobufCType t[] = {PROTOBUF_C_TYPE_STRING,  PROTOBUF_C_TYPE_BOOL,    PROTOBUF_C_TYPE_INT64,
                                    PROTOBUF_C_TYPE_DOUBLE,  PROTOBUF_C_TYPE_MESSAGE, PROTOBUF_C_TYPE_MESSAGE,
                                    PROTOBUF_C_TYPE_BYTES,   PROTOBUF_C_TYPE_INT32};
  static const size_t off[] = {offsetof(GwAnyValue, string_value), offsetof(GwAnyValue, bool_value),
                               offsetof(GwAnyValue, int_value),    offsetof(GwAnyValue, double_value),
                               offsetof(GwAnyValue, array_value),  offsetof(GwAnyValue, kvlist_value),
                               offsetof(GwAnyValue, bytes_value),  offsetof(GwAnyValue, string_value_strindex)};
  if (d->n_fields != 8)
    return false;
  for (unsigned i = 0; i < 8; i++)
    if (!field_is(&d->fields[i], i + 1, t[i], off[i], true))
      return false;
  return true;
}

static inline bool str_size(struct gw_pb_sizes *s, const char *str, size_t *len)
{
  size_t n = strlen(str);
  if (!keep_len(s, n))
    return false;
  *len = 1 + varint_size(n) + n;
  return true;
}

/* A oneof member is written when selected, a string or message one unless NULL or the default (protobuf-c's
 * oneof_field_get_packed_size). */
static bool any_size(struct gw_pb_sizes *s, const GwAnyValue *v, size_t *len)
{
  size_t rv = 0, n;
  switch (v->value_case) {
  case GW_AV_STRING:
    if (v->string_value && v->string_value != ANY_DESC.fields[0].default_value && !str_size(s, v->string_value, &rv))
      return false;
    break;
  case GW_AV_BOOL: rv = 2; break;
  case GW_AV_INT: rv = 1 + varint_size((uint64_t)v->int_value); break;
  case GW_AV_DOUBLE: rv = 9; break;
  case GW_AV_ARRAY:
  case GW_AV_KVLIST:
    if (v->array_value) { /* the same union member as kvlist_value: both messages */
      if (!sub_size(s, v->value_case == GW_AV_ARRAY ? &v->array_value->base : &v->kvlist_value->base, &n))
        return false;
      rv = 1 + n;
    }
    break;
  case GW_AV_BYTES: rv = 1 + varint_size(v->bytes_value.len) + v->bytes_value.len; break;
  case GW_AV_STRINDEX: rv = 1 + varint_size((uint64_t)(int64_t)v->string_value_strindex); break;
  default: break;
  }
  *len = rv;
  return true;
}

static bool kv_size(struct gw_pb_sizes *s, const GwKeyValue *kv, size_t *len)
{
  size_t rv = 0, n;
  if (kv->key && kv->key[0]) {
    if (!str_size(s, kv->key, &n))
      return false;
    rv += n;
  }
  if (kv->value) {
    if (!sub_size(s, &kv->value->base, &n))
      return false;
    rv += 1 + n;
  }
  if (kv->key_strindex)
    rv += 1 + varint_size((uint64_t)(int64_t)kv->key_strindex);
  *len = rv;
  return true;
}

static inline uint8_t *str_pack(struct gw_pb_sizes *s, uint8_t tag, const char *str, uint8_t *out)
{
  size_t n = s->v[s->next++];
  *out++ = tag;
  out = varint(n, out);
  memcpy(out, str, n);
  return out + n;
}

static uint8_t *any_pack(struct gw_pb_sizes *s, const GwAnyValue *v, uint8_t *out)
{
  switch (v->value_case) {
  case GW_AV_STRING:
    if (v->string_value && v->string_value != ANY_DESC.fields[0].default_value)
      out = str_pack(s, 1 << 3 | PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED, v->string_value, out);
    break;
  case GW_AV_BOOL:
    *out++ = 2 << 3 | PROTOBUF_C_WIRE_TYPE_VARINT;
    *out++ = v->bool_value ? 1 : 0;
    break;
  case GW_AV_INT:
    *out++ = 3 << 3 | PROTOBUF_C_WIRE_TYPE_VARINT;
    out = varint((uint64_t)v->int_value, out);
    break;
  case GW_AV_DOUBLE:
    *out++ = 4 << 3 | PROTOBUF_C_WIRE_TYPE_64BIT;
    memcpy(out, &v->double_value, 8);
    out += 8;
    break;
  case GW_AV_ARRAY:
  case GW_AV_KVLIST:
    if (v->array_value) {
      *out++ = (uint8_t)(v->value_case << 3 | PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED);
      out = sub_pack(s, v->value_case == GW_AV_ARRAY ? &v->array_value->base : &v->kvlist_value->base, out);
    }
    break;
  case GW_AV_BYTES:
    *out++ = 7 << 3 | PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
    out = varint(v->bytes_value.len, out);
    if (v->bytes_value.len)
      memcpy(out, v->bytes_value.data, v->bytes_value.len);
    out += v->bytes_value.len;
    break;
  case GW_AV_STRINDEX:
    *out++ = 8 << 3 | PROTOBUF_C_WIRE_TYPE_VARINT;
    out = varint((uint64_t)(int64_t)v->string_value_strindex, out);
    break;
  default: break;
  }
  return out;
}

static uint8_t *kv_pack(struct gw_pb_sizes *s, const GwKeyValue *kv, uint8_t *out)
{
  if (kv->key && kv->key[0])
    out = str_pack(s, 1 << 3 | PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED, kv->key, out);
  if (kv->value) {
    *out++ = 2 << 3 | PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
    out = sub_pack(s, &kv->value->base, out);
  }
  if (kv->key_strindex) {
    *out++ = 3 << 3 | PROTOBUF_C_WIRE_TYPE_VARINT;
    out = varint((uint64_t)(int64_t)kv->key_strindex, out);
  }
  return out;
}

/* ---- arrays of KeyValue (attributes), the bulk of a packed span ----
 * The usual attribute (a key, a value that is a string, an int, a bool or a double, no unknown fields)
 * goes straight to the tape with the entries the generic path would push, in its order: the KeyValue's
 * size, the key's length, the AnyValue's size, the string's length. Anything else goes through sub_size /
 * sub_pack, so the two ways can alternate within one array. Field numbers up to 15 (one-byte tags) are
 * what kv_shape and any_shape checked. */

static inline bool kv_plain(const GwKeyValue *kv)
{
  const GwAnyValue *v = kv->value;
  return v && !kv->base.n_unknown_fields && !v->base.n_unknown_fields && !kv->key_strindex &&
         (v->value_case == GW_AV_STRING || v->value_case == GW_AV_INT || v->value_case == GW_AV_BOOL ||
          v->value_case == GW_AV_DOUBLE);
}

static bool kvs_size(struct gw_pb_sizes *s, const GwKeyValue *const *kv, size_t n, size_t *len)
{
  size_t rv = 0;
  for (size_t k = 0; k < n; k++) {
    const GwKeyValue *e = kv[k];
    size_t one;
    if (!e) {
      rv += 1; /* a NULL message is written as an empty one */
      continue;
    }
    if (!kv_plain(e)) {
      if (!sub_size(s, &e->base, &one))
        return false;
      rv += one;
      continue;
    }
    if (!grow(s, s->n + 4)) /* the entries below are written without a check each */
      return false;
    uint32_t *t = s->v + s->n;
    size_t at = 0, kvlen = 0, vlen;
    t[at++] = 0; /* the KeyValue's size, filled below */
    if (e->key && e->key[0]) {
      size_t klen = strlen(e->key);
      if (klen > UINT32_MAX)
        return false;
      t[at++] = (uint32_t)klen;
      kvlen = 1 + varint_size(klen) + klen;
    }
    const GwAnyValue *v = e->value;
    size_t ai = at++; /* the AnyValue's size */
    switch (v->value_case) {
    case GW_AV_STRING:
      vlen = 0;
      if (v->string_value && v->string_value != ANY_DESC.fields[0].default_value) {
        size_t sl = strlen(v->string_value);
        if (sl > UINT32_MAX)
          return false;
        t[at++] = (uint32_t)sl;
        vlen = 1 + varint_size(sl) + sl;
      }
      break;
    case GW_AV_BOOL: vlen = 2; break;
    case GW_AV_INT: vlen = 1 + varint_size((uint64_t)v->int_value); break;
    default: vlen = 9; break; /* GW_AV_DOUBLE: kv_plain took no other case */
    }
    t[ai] = (uint32_t)vlen;
    kvlen += 1 + varint_size(vlen) + vlen;
    if (kvlen > UINT32_MAX)
      return false;
    t[0] = (uint32_t)kvlen;
    s->n += at;
    rv += varint_size(kvlen) + kvlen;
  }
  *len = rv;
  return true;
}

static uint8_t *kvs_pack(struct gw_pb_sizes *s, uint8_t tag, const GwKeyValue *const *kv, size_t n, uint8_t *out)
{
  for (size_t k = 0; k < n; k++) {
    const GwKeyValue *e = kv[k];
    *out++ = tag;
    if (!e) {
      *out++ = 0;
      continue;
    }
    if (!kv_plain(e)) {
      out = sub_pack(s, &e->base, out);
      continue;
    }
    out = varint(s->v[s->next++], out);
    if (e->key && e->key[0])
      out = str_pack(s, 1 << 3 | PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED, e->key, out);
    *out++ = 2 << 3 | PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
    out = varint(s->v[s->next++], out);
    out = any_pack(s, e->value, out);
  }
  return out;
}

/* ---- spans copied from the body (gw_pb_pack_spliced) ---- */

#define SPAN_DESC opentelemetry__proto__trace__v1__span__descriptor
#define SPAN_ATTRS 9 /* Span.attributes */

bool gw_pb_splice = true;

/* raw's entry of sp at or after *at (spans come in tree order; rejected ones were only taken out), or NULL
 * with *at unchanged. */
static struct gw_pb_span_raw *raw_find(const struct gw_pb_raw *raw, size_t *at, const GwSpan *sp)
{
  for (size_t i = *at; i < raw->n; i++)
    if (raw->v[i].span == sp) {
      *at = i + 1;
      return &raw->v[i];
    }
  return NULL;
}

void gw_pb_raw_changed(struct gw_pb_raw *raw, size_t *cursor, const GwSpan *sp)
{
  struct gw_pb_span_raw *r = raw ? raw_find(raw, cursor, sp) : NULL;
  if (r)
    r->changed = true;
}

/* Whether sp can be copied from the body: unchanged but for attributes appended after the decoded ones. */
static bool span_intact(const struct gw_pb_span_raw *r, const GwSpan *sp)
{
  if (r->changed || sp->n_attributes < r->nattr || sp->base.n_unknown_fields)
    return false;
  if (sp->attributes != r->attrs)
    for (uint32_t k = 0; k < r->nattr; k++)
      if (sp->attributes[k] != r->attrs[k])
        return false;
  return true;
}

/* The size pass of a span when s->raw is set: the tape gets 1 + raw's index when the span is copied, else 0
 * (and *done false: the caller sizes it field by field). */
static bool span_size(struct gw_pb_sizes *s, const GwSpan *sp, size_t *len, bool *done)
{
  size_t at = s->n;
  *done = false;
  if (!push(s))
    return false;
  s->v[at] = 0;
  size_t cur = s->raw_at;
  const struct gw_pb_span_raw *r = raw_find(s->raw, &cur, sp);
  if (!r)
    return true;
  s->raw_at = cur;
  if (!span_intact(r, sp))
    return true;
  const ProtobufCFieldDescriptor *fa = protobuf_c_message_descriptor_get_field(&SPAN_DESC, SPAN_ATTRS);
  size_t rv = r->len, one;
  for (size_t k = r->nattr; k < sp->n_attributes; k++) {
    if (!value_size(s, fa, &sp->attributes[k], &one))
      return false;
    rv += 1 + one; /* the tag: one byte */
  }
  s->v[at] = (uint32_t)(r - s->raw->v) + 1;
  *len = rv;
  *done = true;
  return true;
}

/* The pack pass of a span the size pass chose to copy: its bytes up to the end of its attributes, the
 * appended attributes, the rest of its bytes. */
static uint8_t *span_copy(struct gw_pb_sizes *s, const GwSpan *sp, const struct gw_pb_span_raw *r, uint8_t *out)
{
  const ProtobufCFieldDescriptor *fa = protobuf_c_message_descriptor_get_field(&SPAN_DESC, SPAN_ATTRS);
  memcpy(out, r->p, r->attr_end);
  out += r->attr_end;
  for (size_t k = r->nattr; k < sp->n_attributes; k++)
    out = value_pack(s, fa, &sp->attributes[k], out);
  memcpy(out, r->p + r->attr_end, r->len - r->attr_end);
  return out + (r->len - r->attr_end);
}

/* ---- any message ---- */

/* A sub-message's length prefix and body: its size kept in s at the position the pack pass will read it. */
static bool sub_size(struct gw_pb_sizes *s, const ProtobufCMessage *m, size_t *len)
{
  size_t at = s->n, n;
  if (!push(s) || !msg_size(s, m, &n) || n > UINT32_MAX)
    return false;
  s->v[at] = (uint32_t)n;
  *len = varint_size(n) + n;
  return true;
}

static uint8_t *sub_pack(struct gw_pb_sizes *s, const ProtobufCMessage *m, uint8_t *out)
{
  out = varint(s->v[s->next++], out);
  return msg_pack(s, m, out);
}

static bool msg_size(struct gw_pb_sizes *s, const ProtobufCMessage *m, size_t *len)
{
  const ProtobufCMessageDescriptor *d = m->descriptor;
  size_t rv = 0;
  size_t one;
  if (d == &KV_DESC && s->kv_ok) {
    if (!kv_size(s, (const GwKeyValue *)m, &rv))
      return false;
    goto unknown;
  }
  if (d == &ANY_DESC && s->any_ok) {
    if (!any_size(s, (const GwAnyValue *)m, &rv))
      return false;
    goto unknown;
  }
  if (d == &SPAN_DESC && s->raw) {
    bool done;
    if (!span_size(s, (const GwSpan *)m, &rv, &done))
      return false;
    if (done) {
      *len = rv;
      return true;
    }
  }
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = d->fields + i;
    size_t n = held(f, m);
    if (!n)
      continue;
    size_t tag = varint_size((uint64_t)f->id << 3);
    if (f->label != PROTOBUF_C_LABEL_REPEATED) {
      if (!value_size(s, f, (const char *)m + f->offset, &one))
        return false;
      rv += tag + one;
      continue;
    }
    const char *arr = *(const char *const *)((const char *)m + f->offset);
    if (f->type == PROTOBUF_C_TYPE_MESSAGE && f->descriptor == &KV_DESC && f->id < 16 && s->kv_ok && s->any_ok) {
      if (!kvs_size(s, (const GwKeyValue *const *)arr, n, &one))
        return false;
      rv += tag * n + one;
      continue;
    }
    size_t step = element_size(f->type);
    for (size_t k = 0; k < n; k++) {
      if (!value_size(s, f, arr + k * step, &one))
        return false;
      rv += tag + one;
    }
  }
unknown:
  for (size_t i = 0; i < m->n_unknown_fields; i++)
    rv += varint_size((uint64_t)m->unknown_fields[i].tag << 3) + m->unknown_fields[i].len;
  *len = rv;
  return true;
}

/* Whether every field of d and of the messages below it is one supported() takes: checked once per
 * message packed, over the descriptors (a few dozen fields), not per value. seen[] holds the descriptors
 * already walked (the schema's messages recurse: AnyValue, ArrayValue, KeyValueList, KeyValue). KeyValue
 * and AnyValue take their own paths when their descriptors have the shape those were written for. */
#define MAX_DESCS 64
static bool schema_supported(struct gw_pb_sizes *s, const ProtobufCMessageDescriptor *d,
                             const ProtobufCMessageDescriptor **seen, unsigned *nseen)
{
  for (unsigned i = 0; i < *nseen; i++)
    if (seen[i] == d)
      return true;
  if (*nseen == MAX_DESCS)
    return false;
  seen[(*nseen)++] = d;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = d->fields + i;
    if (!supported(f) ||
        (f->type == PROTOBUF_C_TYPE_MESSAGE && !schema_supported(s, f->descriptor, seen, nseen)))
      return false;
  }
  if (d == &KV_DESC)
    s->kv_ok = kv_shape(d);
  if (d == &ANY_DESC)
    s->any_ok = any_shape(d);
  return true;
}

bool gw_pb_size(struct gw_pb_sizes *s, const ProtobufCMessage *m, size_t *len)
{
  const ProtobufCMessageDescriptor *seen[MAX_DESCS];
  unsigned nseen = 0;
  s->n = 0;
  s->next = 0;
  s->kv_ok = s->any_ok = false;
  s->raw_at = 0;
  return schema_supported(s, m->descriptor, seen, &nseen) && msg_size(s, m, len);
}

static uint8_t *value_pack(struct gw_pb_sizes *s, const ProtobufCFieldDescriptor *f, const void *v, uint8_t *out)
{
  switch (f->type) {
  case PROTOBUF_C_TYPE_BOOL:
    out = varint((uint64_t)f->id << 3 | PROTOBUF_C_WIRE_TYPE_VARINT, out);
    *out++ = *(const protobuf_c_boolean *)v ? 1 : 0;
    return out;
  case PROTOBUF_C_TYPE_ENUM:
  case PROTOBUF_C_TYPE_INT32:
    out = varint((uint64_t)f->id << 3 | PROTOBUF_C_WIRE_TYPE_VARINT, out);
    return varint((uint64_t)(int64_t) * (const int32_t *)v, out);
  case PROTOBUF_C_TYPE_UINT32:
    out = varint((uint64_t)f->id << 3 | PROTOBUF_C_WIRE_TYPE_VARINT, out);
    return varint(*(const uint32_t *)v, out);
  case PROTOBUF_C_TYPE_INT64:
    out = varint((uint64_t)f->id << 3 | PROTOBUF_C_WIRE_TYPE_VARINT, out);
    return varint(*(const uint64_t *)v, out);
  case PROTOBUF_C_TYPE_FIXED32:
    out = varint((uint64_t)f->id << 3 | PROTOBUF_C_WIRE_TYPE_32BIT, out);
    memcpy(out, v, 4); /* little-endian hosts only, as the rest of the gateway */
    return out + 4;
  case PROTOBUF_C_TYPE_FIXED64:
  case PROTOBUF_C_TYPE_DOUBLE:
    out = varint((uint64_t)f->id << 3 | PROTOBUF_C_WIRE_TYPE_64BIT, out);
    memcpy(out, v, 8);
    return out + 8;
  case PROTOBUF_C_TYPE_STRING: {
    out = varint((uint64_t)f->id << 3 | PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED, out);
    const char *str = *(const char *const *)v;
    size_t n = s->v[s->next++];
    out = varint(n, out);
    if (n)
      memcpy(out, str, n);
    return out + n;
  }
  case PROTOBUF_C_TYPE_BYTES: {
    out = varint((uint64_t)f->id << 3 | PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED, out);
    const ProtobufCBinaryData *b = v;
    out = varint(b->len, out);
    if (b->len)
      memcpy(out, b->data, b->len);
    return out + b->len;
  }
  default: { /* PROTOBUF_C_TYPE_MESSAGE: the size pass refused every other type */
    out = varint((uint64_t)f->id << 3 | PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED, out);
    const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)v;
    if (!sub) {
      *out++ = 0;
      return out;
    }
    return sub_pack(s, sub, out);
  }
  }
}

static uint8_t *msg_pack(struct gw_pb_sizes *s, const ProtobufCMessage *m, uint8_t *out)
{
  const ProtobufCMessageDescriptor *d = m->descriptor;
  if (d == &KV_DESC && s->kv_ok) {
    out = kv_pack(s, (const GwKeyValue *)m, out);
    goto unknown;
  }
  if (d == &ANY_DESC && s->any_ok) {
    out = any_pack(s, (const GwAnyValue *)m, out);
    goto unknown;
  }
  if (d == &SPAN_DESC && s->raw) {
    uint32_t e = s->v[s->next++];
    if (e)
      return span_copy(s, (const GwSpan *)m, &s->raw->v[e - 1], out);
  }
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = d->fields + i;
    size_t n = held(f, m);
    if (!n)
      continue;
    if (f->label != PROTOBUF_C_LABEL_REPEATED) {
      out = value_pack(s, f, (const char *)m + f->offset, out);
      continue;
    }
    const char *arr = *(const char *const *)((const char *)m + f->offset);
    if (f->type == PROTOBUF_C_TYPE_MESSAGE && f->descriptor == &KV_DESC && f->id < 16 && s->kv_ok && s->any_ok) {
      out = kvs_pack(s, (uint8_t)(f->id << 3 | PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED), (const GwKeyValue *const *)arr, n,
                     out);
      continue;
    }
    size_t step = element_size(f->type);
    for (size_t k = 0; k < n; k++)
      out = value_pack(s, f, arr + k * step, out);
  }
unknown:
  for (size_t i = 0; i < m->n_unknown_fields; i++) {
    const ProtobufCMessageUnknownField *u = &m->unknown_fields[i];
    out = varint((uint64_t)u->tag << 3 | u->wire_type, out);
    if (u->len)
      memcpy(out, u->data, u->len);
    out += u->len;
  }
  return out;
}

size_t gw_pb_pack_sized(struct gw_pb_sizes *s, const ProtobufCMessage *m, uint8_t *out)
{
  s->next = 0;
  return (size_t)(msg_pack(s, m, out) - out);
}

void gw_pb_sizes_free(struct gw_pb_sizes *s)
{
  if (!s->a)
    free(s->v);
  memset(s, 0, sizeof *s);
}

static uint8_t *pack(struct gw_arena *a, const ProtobufCMessage *m, const struct gw_pb_raw *raw, size_t *len)
{
  struct gw_pb_sizes s = {.a = a, .raw = raw};
  size_t n;
  bool sized = gw_pb_size(&s, m, &n);
  if (!sized)
    n = protobuf_c_message_get_packed_size(m);
  uint8_t *out = gw_arena_alloc(a, n ? n : 1);
  if (out) {
    if (sized)
      gw_pb_pack_sized(&s, m, out);
    else
      protobuf_c_message_pack(m, out);
    *len = n;
  }
  gw_pb_sizes_free(&s);
  return out;
}

uint8_t *gw_pb_pack(struct gw_arena *a, const ProtobufCMessage *m, size_t *len) { return pack(a, m, NULL, len); }

uint8_t *gw_pb_pack_spliced(struct gw_arena *a, const GwTraceRequest *req, const struct gw_pb_raw *raw, size_t *len)
{
  return pack(a, &req->base, gw_pb_splice && raw && raw->n ? raw : NULL, len);
}
