/*
 * pb_unpack.c: one pass over a protobuf OTLP request that fills the protobuf-c structs directly in the
 * request arena, instead of gw_pb_prescan (checks and a size estimate) + protobuf-c's generic unpack (a
 * scan of each message into ScannedMember slabs, then a second walk) + a UTF-8 repair walk over every
 * string (strlen and validation). Issue 15 item 1.
 *
 * The contract is exact equivalence with that generic path (decode_pb.c): for every body, either the same
 * struct tree (every field, string bytes, array lengths, oneof cases, no unknown fields) or the same error
 * code and message. Where matching protobuf-c is not simple it does not try: it answers GW_PB_FALLBACK at
 * the first sign of anything unusual, and the caller rewinds the arena and runs the generic path from
 * scratch. So a hostile body costs at most the fast path up to that point plus the generic path.
 * Falls back on:
 *   - a field number the message does not declare, or above 31 (protobuf-c keeps it as an unknown field);
 *   - a declared field with another wire type than its type's (protobuf-c then fails the unpack);
 *   - a non-repeated message field seen twice (protobuf-c merges the two), a oneof set twice;
 *   - a key over 5 bytes or a length prefix over 5 bytes (protobuf-c refuses what the pre-scan accepts);
 *   - a type the OTLP schema does not use (sint, packed or repeated scalars, proto2 labels);
 *   - the arena full (or the in-flight budget refusing): the generic path then answers with its estimate's
 *     TOO_LARGE message (or succeeds: it does not need the memory the fast path had already used).
 * A string with invalid UTF-8 or a NUL byte is copied and repaired here (gw_utf8_fix: U+FFFD for invalid
 * sequences, NUL bytes removed), as the generic path's repair walk does; each repaired string is listed
 * so the caller can tell which spans the repairs concern.
 * Wire-level malformation (truncated, bad key, field number 0 or out of range, wire types 3, 4, 6, 7,
 * nesting too deep) gets exactly the pre-scan's error: the checks are the pre-scan's, made in the same
 * order (depth first, in wire order), at the same byte offsets, and everything before the failing byte
 * passed them (else an earlier error or fallback would have been taken).
 *
 * Memory: the generic path refuses a body up front when the estimate of what protobuf-c will allocate does
 * not fit the arena's room (TOO_LARGE) or the in-flight budget (gw_arena_expect, then 503). This path
 * allocates as it goes, so the arena's cap and the budget are charged allocation by allocation instead of
 * up front. Small allocations come from arena slabs of 8 KiB (1 KiB for a body under 1 KiB), so up to one
 * slab's tail is charged and unused; apart from that it needs less than the estimate (no scan slabs, no
 * unknown-field records, 8-byte rather than 16-byte rounding), so a body near the cap that the estimate
 * refused can now be accepted. A body that does not fit runs out half-way, which is a fallback: rewound,
 * and the generic path decides with its usual estimate and message.
 *
 * Repeated fields: each message that has any is first walked once at its own level (keys only, values
 * skipped) to count them, so every pointer array is allocated at its final size, as protobuf-c does.
 * Depth: recursion, bounded as the pre-scan's stack is (GW_PB_FRAMES messages, max_depth AnyValues).
 */
#include <pthread.h>
#include <string.h>

#include "decode/decode.h"
#include "decode/decode_int.h"

/* What a declared field is, for the unpack. */
enum fk {
  FK_NONE,     /* not declared (or past the table): unknown field, fall back */
  FK_FALLBACK, /* declared, of a type or label this file leaves to protobuf-c */
  FK_STRING,
  FK_BYTES,
  FK_MSG,
  FK_V32,  /* varint kept as its low 32 bits: int32, uint32, enum */
  FK_V64,  /* varint, 64 bits: int64, uint64 */
  FK_BOOL, /* varint, true when any of its 7-bit groups is non-zero (protobuf-c's parse_boolean) */
  FK_F64,  /* fixed64, sfixed64, double */
  FK_F32,  /* fixed32, sfixed32, float */
};

#define FIELDS 32 /* field numbers below this are looked up in a table; the OTLP schema has none above 17 */
#define MAX_REP 6 /* repeated fields of one message (Span has 3) */

struct ufield {
  uint8_t kind;  /* enum fk */
  uint8_t rep;   /* 1 + index into the node's repeated fields, 0: not repeated */
  uint8_t oneof; /* a oneof member: qoff is the case */
  uint8_t child; /* FK_MSG: enum gw_pbn of the sub-message */
  uint32_t off, qoff;
};

struct unode {
  const ProtobufCMessageDescriptor *d;
  unsigned nrep;
  struct {
    uint32_t off, qoff; /* the array pointer, its n_ count */
    size_t elt;         /* bytes per element */
  } rep[MAX_REP];
  struct ufield f[FIELDS];
};

static struct unode nodes[GW_PBN_LEAF];
static pthread_once_t nodes_once = PTHREAD_ONCE_INIT;

static enum gw_pbn node_of(const ProtobufCMessageDescriptor *d)
{
  for (int n = 0; n < GW_PBN_LEAF; n++)
    if (gw_pbn_desc[n] == d)
      return (enum gw_pbn)n;
  return GW_PBN_LEAF;
}

/* The tables, from the generated descriptors. A field the pre-scan's schema (gw_pbn_child) does not see as
 * the same sub-message is left to protobuf-c, so both always walk the same tree. */
static void nodes_init(void)
{
  for (int n = 0; n < GW_PBN_LEAF; n++) {
    struct unode *u = &nodes[n];
    u->d = gw_pbn_desc[n];
    for (uint32_t num = 1; num < FIELDS; num++) {
      const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(u->d, num);
      struct ufield *f = &u->f[num];
      enum gw_pbn c = gw_pbn_child((enum gw_pbn)n, num);
      if (!fd) {
        f->kind = c == GW_PBN_LEAF ? FK_NONE : FK_FALLBACK;
        continue;
      }
      f->kind = FK_FALLBACK;
      f->off = fd->offset;
      f->qoff = fd->quantifier_offset;
      bool oneof = (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0;
      bool rep = fd->label == PROTOBUF_C_LABEL_REPEATED;
      if (fd->label != PROTOBUF_C_LABEL_NONE && !rep)
        continue; /* proto2 labels, proto3 optional: not in the OTLP schema */
      if (rep && (fd->flags & PROTOBUF_C_FIELD_FLAG_PACKED))
        continue;
      enum fk k;
      switch (fd->type) {
      case PROTOBUF_C_TYPE_STRING: k = FK_STRING; break;
      case PROTOBUF_C_TYPE_BYTES: k = FK_BYTES; break;
      case PROTOBUF_C_TYPE_MESSAGE: k = FK_MSG; break;
      case PROTOBUF_C_TYPE_INT32:
      case PROTOBUF_C_TYPE_UINT32:
      case PROTOBUF_C_TYPE_ENUM: k = FK_V32; break;
      case PROTOBUF_C_TYPE_INT64:
      case PROTOBUF_C_TYPE_UINT64: k = FK_V64; break;
      case PROTOBUF_C_TYPE_BOOL: k = FK_BOOL; break;
      case PROTOBUF_C_TYPE_FIXED64:
      case PROTOBUF_C_TYPE_SFIXED64:
      case PROTOBUF_C_TYPE_DOUBLE: k = FK_F64; break;
      case PROTOBUF_C_TYPE_FIXED32:
      case PROTOBUF_C_TYPE_SFIXED32:
      case PROTOBUF_C_TYPE_FLOAT: k = FK_F32; break;
      default: continue; /* sint32, sint64 */
      }
      if (k == FK_MSG) {
        enum gw_pbn sub = node_of(fd->descriptor);
        if (sub == GW_PBN_LEAF || sub != c)
          continue;
        f->child = (uint8_t)sub;
      } else if (c != GW_PBN_LEAF) {
        continue;
      }
      if (rep) {
        if (k != FK_STRING && k != FK_MSG && k != FK_BYTES)
          continue; /* repeated scalars (packed or not): none in the schema */
        if (u->nrep == MAX_REP)
          continue;
        u->rep[u->nrep].off = fd->offset;
        u->rep[u->nrep].qoff = fd->quantifier_offset;
        u->rep[u->nrep].elt = k == FK_BYTES ? sizeof(ProtobufCBinaryData) : sizeof(void *);
        f->rep = (uint8_t)++u->nrep;
      }
      f->oneof = oneof;
      f->kind = (uint8_t)k;
    }
  }
}

struct unpack {
  struct gw_arena *a;
  uint8_t *bump, *bump_end; /* the slab small allocations are cut from */
  size_t slab;              /* its size */
  const uint8_t *start; /* the body, for error offsets */
  size_t len;
  uint32_t max_depth;
  struct gw_err *err;
  bool avx512;             /* short ASCII strings copied with masked loads and stores */
  struct gw_pb_raw *raw;   /* where each span lies (NULL: not recorded) */
  struct gw_decode_repaired *fixed; /* the strings repaired (NULL: not recorded) */
  const uint8_t *span_le9; /* the span being unpacked: past its last field numbered 9 or less */
};

enum { OK = 0, FALLBACK = GW_PB_FALLBACK };

/* Small allocations (structs, pointer arrays, strings: 8-byte aligned) are cut from arena blocks of SLAB
 * bytes (less for a small body), one gw_arena_alloc call per block instead of one per allocation; larger
 * ones go to the arena directly. At most one block's tail is left unused per request. */
#define SLAB 8192

static void *ualloc_slow(struct unpack *u, size_t n)
{
  if (n > u->slab / 4)
    return gw_arena_alloc(u->a, n);
  uint8_t *s = gw_arena_alloc(u->a, u->slab);
  if (!s)
    return NULL;
  u->bump = s + n;
  u->bump_end = s + u->slab;
  return s;
}

static inline void *ualloc(struct unpack *u, size_t n)
{
  n = (n + 7) & ~(size_t)7;
  if ((size_t)(u->bump_end - u->bump) >= n) {
    void *p = u->bump;
    u->bump += n;
    return p;
  }
  return ualloc_slow(u, n);
}

#define AT(p) ((size_t)((p) - u->start))

/* Skip a varint (a count pass: malformation is found, and reported, by the main pass). */
static inline bool skip_varint(const uint8_t **p, const uint8_t *end)
{
  for (int i = 0; i < 10 && *p < end; i++)
    if (!(*(*p)++ & 0x80))
      return true;
  return false;
}

/* How many times each repeated field of node n occurs in [p, end): the keys of this message only, up to
 * the first malformation (the main pass stops there too). */
static void count_repeated(const struct unode *nd, const uint8_t *p, const uint8_t *end, uint32_t *cnt)
{
  while (p < end) {
    uint64_t key;
    if (!gw_pb_varint1(&p, end, &key) || (key >> 32))
      return;
    uint32_t field = (uint32_t)(key >> 3);
    switch (key & 7) {
    case 0:
      if (!skip_varint(&p, end))
        return;
      break;
    case 1:
      if (end - p < 8)
        return;
      p += 8;
      break;
    case 5:
      if (end - p < 4)
        return;
      p += 4;
      break;
    case 2: {
      uint64_t v;
      if (!gw_pb_varint1(&p, end, &v) || v > (uint64_t)(end - p))
        return;
      p += v;
      if (field < FIELDS && nd->f[field].rep)
        cnt[nd->f[field].rep - 1]++;
      break;
    }
    default: return;
    }
  }
}

static int unpack_msg(struct unpack *u, enum gw_pbn n, ProtobufCMessage *m, const uint8_t *p, const uint8_t *end,
                      uint32_t any_depth, int level);

/* The span just unpacked from [p, p + v), for gw_pb_pack_spliced. */
static bool raw_add(struct unpack *u, const GwSpan *sp, const uint8_t *p, uint64_t v)
{
  struct gw_pb_raw *r = u->raw;
  if (v > UINT32_MAX)
    return false;
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 64;
    struct gw_pb_span_raw *nv = gw_arena_alloc(u->a, cap * sizeof *nv);
    if (!nv)
      return false;
    if (r->n)
      memcpy(nv, r->v, r->n * sizeof *nv);
    r->v = nv;
    r->cap = cap;
  }
  r->v[r->n++] = (struct gw_pb_span_raw){.span = sp, .p = p, .attrs = sp->attributes, .len = (uint32_t)v,
                                         .attr_end = (uint32_t)(u->span_le9 - p), .nattr = (uint32_t)sp->n_attributes};
  return true;
}

/* ---- KeyValue and AnyValue, most of a request's messages: their usual shape without the table walk ----
 * A KeyValue of a key then a scalar value (string, bool, int, double), each field once, in that order,
 * with one-byte tags and lengths under 16 KiB: exactly what the generic walk below makes of those bytes.
 * Anything else (arrays, kvlists, bytes, index fields, fields twice or out of order, long lengths, invalid
 * UTF-8, depth at its limit, a truncation) answers NOT_SIMPLE, and the generic walk decides from the same
 * bytes, errors included. */
enum { NOT_SIMPLE = -1 };

static const GwKeyValue kv_init = OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE__INIT;
static const GwAnyValue any_init = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;

/* A length of one or two bytes at *p that fits before end, or false. */
static inline bool short_len(const uint8_t **p, const uint8_t *end, size_t *n)
{
  const uint8_t *q = *p;
  if (q >= end)
    return false;
  size_t v = q[0];
  if (v & 0x80) {
    if (q + 1 >= end || (q[1] & 0x80))
      return false;
    v = (v & 0x7f) | (size_t)q[1] << 7;
    q += 2;
  } else {
    q++;
  }
  if (v > (size_t)(end - q))
    return false;
  *p = q;
  *n = v;
  return true;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* n <= 64 bytes of printable-or-control ASCII without NUL copied with one masked load and store, and
 * NUL-terminated (what the check and copy below give such bytes); false, nothing written, for others. */
__attribute__((target("avx512f,avx512bw"))) static bool ascii_copy64(char *d, const uint8_t *s, size_t n)
{
  __mmask64 k = n >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << n) - 1;
  __m512i x = _mm512_maskz_loadu_epi8(k, s);
  /* 0x01..0x7f: x - 1 below 0x7f as unsigned (a NUL wraps to 0xff) */
  if (_mm512_mask_cmpge_epu8_mask(k, _mm512_sub_epi8(x, _mm512_set1_epi8(1)), _mm512_set1_epi8(0x7f)))
    return false;
  _mm512_mask_storeu_epi8(d, k, x);
  d[n] = 0;
  return true;
}
#define ASCII_COPY 1
#endif

static inline char *short_str(struct unpack *u, const uint8_t *p, size_t n)
{
  char *s = ualloc(u, n + 1);
  if (!s)
    return NULL;
#ifdef ASCII_COPY
  if (n <= 64 && u->avx512 && ascii_copy64(s, p, n))
    return s;
#endif
  if (!gw_utf8_valid((const char *)p, n))
    return NULL; /* not simple: the member walk copies and repairs it */
  memcpy(s, p, n);
  s[n] = 0;
  return s;
}

/* s (n bytes, a copy of the wire's, invalid UTF-8 or holding NUL) repaired and listed; NULL when out of
 * memory. */
static char *repair(struct unpack *u, char *s, size_t n)
{
  bool changed;
  char *r = gw_utf8_fix(u->a, s, n, &changed);
  if (!r)
    return NULL;
  return !u->fixed || gw_decode_repaired_add(u->a, u->fixed, r) ? r : NULL;
}

static int kv_simple(struct unpack *u, GwKeyValue *kv, const uint8_t *p, const uint8_t *end, uint32_t any_depth,
                     int level)
{
  *kv = kv_init;
  size_t n;
  if (p < end && *p == (1 << 3 | 2)) { /* key */
    p++;
    if (!short_len(&p, end, &n) || !(kv->key = short_str(u, p, n)))
      return NOT_SIMPLE;
    p += n;
  }
  if (p < end && *p == (2 << 3 | 2)) { /* value */
    if (any_depth + 1 > u->max_depth || level + 1 >= GW_PB_FRAMES)
      return NOT_SIMPLE;
    p++;
    if (!short_len(&p, end, &n))
      return NOT_SIMPLE;
    const uint8_t *ve = p + n;
    GwAnyValue *v = ualloc(u, sizeof *v);
    if (!v)
      return NOT_SIMPLE;
    *v = any_init;
    if (p < ve) {
      uint8_t tag = *p++;
      uint64_t x;
      const uint8_t *vs = p;
      switch (tag) {
      case 1 << 3 | 2:
        if (!short_len(&p, ve, &n) || !(v->string_value = short_str(u, p, n)))
          return NOT_SIMPLE;
        p += n;
        v->value_case = GW_AV_STRING;
        break;
      case 2 << 3 | 0:
        if (!gw_pb_varint1(&p, ve, &x))
          return NOT_SIMPLE;
        v->bool_value = 0;
        for (const uint8_t *q = vs; q < p; q++)
          v->bool_value |= (*q & 0x7f) != 0;
        v->value_case = GW_AV_BOOL;
        break;
      case 3 << 3 | 0:
        if (!gw_pb_varint1(&p, ve, &x))
          return NOT_SIMPLE;
        v->int_value = (int64_t)x;
        v->value_case = GW_AV_INT;
        break;
      case 4 << 3 | 1:
        if (ve - p < 8)
          return NOT_SIMPLE;
        memcpy(&v->double_value, p, 8);
        p += 8;
        v->value_case = GW_AV_DOUBLE;
        break;
      default: return NOT_SIMPLE;
      }
      if (p != ve)
        return NOT_SIMPLE;
    }
    kv->value = v;
    p = ve;
  }
  return p == end ? OK : NOT_SIMPLE;
}

/* A new sub-message of node c from [p, p + v). */
static int sub_msg(struct unpack *u, enum gw_pbn c, const uint8_t *p, uint64_t v, uint32_t any_depth, int level,
                   ProtobufCMessage **out)
{
  ProtobufCMessage *m = ualloc(u, nodes[c].d->sizeof_message);
  if (!m)
    return FALLBACK;
  *out = m;
  if (c == GW_PBN_KEY_VALUE && kv_simple(u, (GwKeyValue *)m, p, p + v, any_depth, level) == OK)
    return OK;
  if (c != GW_PBN_SPAN || !u->raw)
    return unpack_msg(u, c, m, p, p + v, any_depth, level);
  u->span_le9 = p;
  int rc = unpack_msg(u, c, m, p, p + v, any_depth, level);
  if (rc)
    return rc;
  return raw_add(u, (const GwSpan *)m, p, v) ? OK : FALLBACK;
}

static int unpack_msg(struct unpack *u, enum gw_pbn n, ProtobufCMessage *m, const uint8_t *p, const uint8_t *end,
                      uint32_t any_depth, int level)
{
  const struct unode *nd = &nodes[n];
  char *base = (char *)m;
  nd->d->message_init(m);
  uint32_t cnt[MAX_REP];
  if (nd->nrep) {
    memset(cnt, 0, sizeof cnt);
    count_repeated(nd, p, end, cnt);
    for (unsigned r = 0; r < nd->nrep; r++) {
      if (!cnt[r])
        continue;
      void *arr = ualloc(u, cnt[r] * nd->rep[r].elt);
      if (!arr)
        return FALLBACK;
      *(void **)(base + nd->rep[r].off) = arr;
    }
  }

  while (p < end) {
    /* the key, checked as gw_pb_prescan does */
    const uint8_t *key_start = p;
    uint64_t key;
    if (!gw_pb_varint1(&p, end, &key))
      return gw_err_set(u->err, GW_ERR(DECODE), "protobuf: truncated or malformed field key at byte %zu", AT(p));
    if (key >> 32)
      return gw_err_set(u->err, GW_ERR(DECODE), "protobuf: field number out of range at byte %zu", AT(p));
    uint32_t field = (uint32_t)(key >> 3), wt = (uint32_t)(key & 7);
    if (field == 0)
      return gw_err_set(u->err, GW_ERR(DECODE), "protobuf: field number 0 at byte %zu", AT(p));
    if (field >= FIELDS || p - key_start > 5)
      return FALLBACK; /* unknown to the schema (or a key protobuf-c reads no further than 5 bytes) */
    const struct ufield *f = &nd->f[field];
    if (f->kind == FK_NONE)
      return FALLBACK;
    if (f->oneof && *(uint32_t *)(void *)(base + f->qoff))
      return FALLBACK; /* a second member of a oneof: protobuf-c clears the first in its own way */
    char *dst = base + f->off;

    switch (wt) {
    case 0: {
      const uint8_t *vs = p;
      uint64_t v;
      if (!gw_pb_varint1(&p, end, &v))
        goto truncated;
      if (f->kind == FK_V32) {
        uint32_t x = (uint32_t)v;
        memcpy(dst, &x, 4);
      } else if (f->kind == FK_V64) {
        memcpy(dst, &v, 8);
      } else if (f->kind == FK_BOOL) {
        protobuf_c_boolean b = 0;
        for (const uint8_t *q = vs; q < p; q++)
          b |= (*q & 0x7f) != 0;
        *(protobuf_c_boolean *)(void *)dst = b;
      } else {
        return FALLBACK;
      }
      break;
    }
    case 1:
      if (end - p < 8)
        goto truncated;
      if (f->kind != FK_F64)
        return FALLBACK;
      memcpy(dst, p, 8);
      p += 8;
      break;
    case 5:
      if (end - p < 4)
        goto truncated;
      if (f->kind != FK_F32)
        return FALLBACK;
      memcpy(dst, p, 4);
      p += 4;
      break;
    case 2: {
      const uint8_t *ls = p;
      uint64_t v;
      if (!gw_pb_varint1(&p, end, &v))
        goto truncated;
      if (v > (uint64_t)(end - p))
        goto truncated;
      if (f->kind == FK_MSG) {
        enum gw_pbn c = (enum gw_pbn)f->child;
        uint32_t d = any_depth + (c == GW_PBN_ANY_VALUE ? 1 : 0);
        if (d > u->max_depth || level + 1 >= GW_PB_FRAMES)
          return gw_err_set(u->err, GW_ERR(TOO_DEEP), "protobuf: attribute value nested deeper than %u levels",
                            u->max_depth);
        if (p - ls > 5)
          return FALLBACK;
        ProtobufCMessage *sub;
        if (f->rep) {
          size_t *np = (size_t *)(void *)(base + nd->rep[f->rep - 1].qoff);
          if (*np >= cnt[f->rep - 1])
            return FALLBACK; /* cannot happen: the count pass saw the same keys */
          int rc = sub_msg(u, c, p, v, d, level + 1, &sub);
          if (rc)
            return rc;
          (*(ProtobufCMessage ***)(void *)dst)[(*np)++] = sub;
        } else {
          if (*(ProtobufCMessage **)(void *)dst)
            return FALLBACK; /* protobuf-c merges a message field seen twice */
          int rc = sub_msg(u, c, p, v, d, level + 1, &sub);
          if (rc)
            return rc;
          *(ProtobufCMessage **)(void *)dst = sub;
          if (f->oneof)
            *(uint32_t *)(void *)(base + f->qoff) = field;
        }
        p += v;
        break;
      }
      if (p - ls > 5)
        return FALLBACK;
      if (f->kind == FK_STRING) {
        char *s = ualloc(u, (size_t)v + 1);
        if (!s)
          return FALLBACK;
        memcpy(s, p, (size_t)v);
        s[v] = 0;
        if (!gw_utf8_valid((const char *)p, (size_t)v) && !(s = repair(u, s, (size_t)v)))
          return FALLBACK;
        if (f->rep) {
          size_t *np = (size_t *)(void *)(base + nd->rep[f->rep - 1].qoff);
          if (*np >= cnt[f->rep - 1])
            return FALLBACK;
          (*(char ***)(void *)dst)[(*np)++] = s;
        } else {
          *(char **)(void *)dst = s; /* seen twice: the last wins, as in protobuf-c */
        }
      } else if (f->kind == FK_BYTES) {
        ProtobufCBinaryData b = {.len = (size_t)v, .data = NULL};
        if (v) {
          if (!(b.data = ualloc(u, (size_t)v)))
            return FALLBACK;
          memcpy(b.data, p, (size_t)v);
        }
        if (f->rep) {
          size_t *np = (size_t *)(void *)(base + nd->rep[f->rep - 1].qoff);
          if (*np >= cnt[f->rep - 1])
            return FALLBACK;
          (*(ProtobufCBinaryData **)(void *)dst)[(*np)++] = b;
        } else {
          *(ProtobufCBinaryData *)(void *)dst = b;
        }
      } else {
        return FALLBACK;
      }
      p += v;
      break;
    }
    default:
      return gw_err_set(u->err, GW_ERR(DECODE), "protobuf: unsupported wire type %u at byte %zu", wt, AT(p));
    }
    if (f->oneof && f->kind != FK_MSG)
      *(uint32_t *)(void *)(base + f->qoff) = field;
    if (n == GW_PBN_SPAN && field <= 9)
      u->span_le9 = p;
  }
  for (unsigned r = 0; r < nd->nrep; r++)
    if (*(size_t *)(void *)(base + nd->rep[r].qoff) != cnt[r])
      return FALLBACK; /* cannot happen (count pass): an array with unset slots */
  return OK;
truncated:
  return gw_err_set(u->err, GW_ERR(DECODE), "protobuf: truncated message at byte %zu (of %zu)", AT(p), u->len);
}

int gw_pb_unpack_raw(enum gw_pb_kind kind, struct gw_arena *a, const void *buf, size_t len, uint32_t max_depth,
                     ProtobufCMessage **out, struct gw_pb_raw *raw, struct gw_decode_repaired *fixed, struct gw_err *err)
{
  static const uint8_t empty[1];
  pthread_once(&nodes_once, nodes_init);
  *out = NULL;
  if (raw)
    *raw = (struct gw_pb_raw){0};
  if (fixed)
    *fixed = (struct gw_decode_repaired){0};
  if (max_depth > GW_PB_MAX_DEPTH)
    max_depth = GW_PB_MAX_DEPTH;
  const uint8_t *p = len ? buf : empty;
  struct unpack u = {.a = a, .start = p, .len = len, .max_depth = max_depth, .err = err, .raw = raw, .fixed = fixed,
                     .avx512 = gw_decode_avx512bw() && !gw_utf8_no_avx512};
  u.slab = len < SLAB / 8 ? 1024 : SLAB;
  enum gw_pbn n = kind == GW_PB_TRACES_REQUEST ? GW_PBN_TRACE_REQ : GW_PBN_LOGS_REQ;
  ProtobufCMessage *m = ualloc(&u, nodes[n].d->sizeof_message);
  int rc = m ? unpack_msg(&u, n, m, p, p + len, 0, 0) : FALLBACK;
  if (rc) {
    if (raw)
      *raw = (struct gw_pb_raw){0}; /* its table is in memory the caller rewinds */
    if (fixed)
      *fixed = (struct gw_decode_repaired){0};
    return rc;
  }
  *out = m;
  return OK;
}

int gw_pb_unpack(enum gw_pb_kind kind, struct gw_arena *a, const void *buf, size_t len, uint32_t max_depth,
                 ProtobufCMessage **out, struct gw_err *err)
{
  return gw_pb_unpack_raw(kind, a, buf, len, max_depth, out, NULL, NULL, err);
}
