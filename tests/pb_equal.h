/*
 * pb_equal.h: deep comparison of two protobuf-c message trees, walking the descriptors generically so that
 * every field of every message is covered (tests and fuzz targets: the one-pass unpack against protobuf-c).
 * Compared: descriptors, every field (scalars by value, strings byte for byte and whether each is NULL, the
 * shared empty string or a copy, bytes by length and content and whether data is NULL), array lengths and
 * elements, oneof cases and the member they select, has_ flags (and the value only when set), unknown
 * fields (count, tag, wire type, bytes). pb_equal returns true when equal, else false with the path of the
 * first difference in why.
 */
#ifndef GW_TEST_PB_EQUAL_H
#define GW_TEST_PB_EQUAL_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

static bool pb_equal_msg(const ProtobufCMessage *a, const ProtobufCMessage *b, char *why, size_t wn,
                         const char *path);

static size_t pb_equal_elt(ProtobufCType t)
{
  switch (t) {
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
  case PROTOBUF_C_TYPE_DOUBLE: return 8;
  case PROTOBUF_C_TYPE_STRING:
  case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
  case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
  case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
  default: return 4;
  }
}

static int pb_equal_str_kind(const char *s)
{
  return !s ? 0 : s == protobuf_c_empty_string ? 1 : 2;
}

/* One value of field f at va and vb. */
static bool pb_equal_value(const ProtobufCFieldDescriptor *f, const void *va, const void *vb, char *why, size_t wn,
                           const char *path)
{
  switch (f->type) {
  case PROTOBUF_C_TYPE_STRING: {
    const char *sa = *(char *const *)va, *sb = *(char *const *)vb;
    if (pb_equal_str_kind(sa) != pb_equal_str_kind(sb) || (sa && strcmp(sa, sb))) {
      snprintf(why, wn, "%s: string \"%.40s\" (kind %d) vs \"%.40s\" (kind %d)", path, sa ? sa : "(null)",
               pb_equal_str_kind(sa), sb ? sb : "(null)", pb_equal_str_kind(sb));
      return false;
    }
    return true;
  }
  case PROTOBUF_C_TYPE_BYTES: {
    const ProtobufCBinaryData *ba = va, *bb = vb;
    if (ba->len != bb->len || !ba->data != !bb->data || (ba->len && memcmp(ba->data, bb->data, ba->len))) {
      snprintf(why, wn, "%s: bytes of %zu vs %zu (data %s vs %s)", path, ba->len, bb->len, ba->data ? "set" : "NULL",
               bb->data ? "set" : "NULL");
      return false;
    }
    return true;
  }
  case PROTOBUF_C_TYPE_MESSAGE:
    return pb_equal_msg(*(ProtobufCMessage *const *)va, *(ProtobufCMessage *const *)vb, why, wn, path);
  default:
    if (memcmp(va, vb, pb_equal_elt(f->type))) {
      snprintf(why, wn, "%s: scalar differs", path);
      return false;
    }
    return true;
  }
}

static bool pb_equal_msg(const ProtobufCMessage *a, const ProtobufCMessage *b, char *why, size_t wn,
                         const char *path)
{
  if (!a || !b) {
    if (a == b)
      return true;
    snprintf(why, wn, "%s: message %s vs %s", path, a ? "set" : "NULL", b ? "set" : "NULL");
    return false;
  }
  const ProtobufCMessageDescriptor *d = a->descriptor;
  if (d != b->descriptor) {
    snprintf(why, wn, "%s: descriptor %s vs %s", path, d ? d->name : "NULL", b->descriptor ? b->descriptor->name : "NULL");
    return false;
  }
  if (a->n_unknown_fields != b->n_unknown_fields) {
    snprintf(why, wn, "%s: %u vs %u unknown fields", path, a->n_unknown_fields, b->n_unknown_fields);
    return false;
  }
  for (unsigned i = 0; i < a->n_unknown_fields; i++) {
    const ProtobufCMessageUnknownField *ua = &a->unknown_fields[i], *ub = &b->unknown_fields[i];
    if (ua->tag != ub->tag || ua->wire_type != ub->wire_type || ua->len != ub->len ||
        (ua->len && memcmp(ua->data, ub->data, ua->len))) {
      snprintf(why, wn, "%s: unknown field %u differs", path, i);
      return false;
    }
  }
  const char *ba = (const char *)a, *bb = (const char *)b;
  char sub[1024];
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = d->fields + i;
    snprintf(sub, sizeof sub, "%.900s.%s", path, f->name);
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t na = *(const size_t *)(const void *)(ba + f->quantifier_offset);
      size_t nb = *(const size_t *)(const void *)(bb + f->quantifier_offset);
      if (na != nb) {
        snprintf(why, wn, "%s: %zu vs %zu elements", sub, na, nb);
        return false;
      }
      const char *aa = *(char *const *)(const void *)(ba + f->offset), *ab = *(char *const *)(const void *)(bb + f->offset);
      if (!na)
        continue;
      if (!aa || !ab) {
        snprintf(why, wn, "%s: array NULL", sub);
        return false;
      }
      size_t step = pb_equal_elt(f->type);
      for (size_t k = 0; k < na; k++) {
        char el[1100];
        snprintf(el, sizeof el, "%s[%zu]", sub, k);
        if (!pb_equal_value(f, aa + k * step, ab + k * step, why, wn, el))
          return false;
      }
      continue;
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
      uint32_t ca = *(const uint32_t *)(const void *)(ba + f->quantifier_offset);
      uint32_t cb = *(const uint32_t *)(const void *)(bb + f->quantifier_offset);
      if (ca != cb) {
        snprintf(why, wn, "%s: oneof case %u vs %u", sub, ca, cb);
        return false;
      }
      if (ca != f->id)
        continue;
    } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
               f->type != PROTOBUF_C_TYPE_MESSAGE) {
      protobuf_c_boolean ha = *(const protobuf_c_boolean *)(const void *)(ba + f->quantifier_offset);
      protobuf_c_boolean hb = *(const protobuf_c_boolean *)(const void *)(bb + f->quantifier_offset);
      if (ha != hb) {
        snprintf(why, wn, "%s: has_ %d vs %d", sub, ha, hb);
        return false;
      }
      if (!ha)
        continue;
    }
    if (!pb_equal_value(f, ba + f->offset, bb + f->offset, why, wn, sub))
      return false;
  }
  return true;
}

static inline bool pb_equal(const ProtobufCMessage *a, const ProtobufCMessage *b, char *why, size_t wn)
{
  why[0] = 0;
  return pb_equal_msg(a, b, why, wn, a && a->descriptor ? a->descriptor->short_name : "message");
}

#endif
