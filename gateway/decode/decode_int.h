/*
 * decode_int.h: what the decode module's files share and nothing else sees: the OTLP/JSON pull lexer
 * (json_lex.c), the field readers built on it (json_values.c), which decode_json.c drives to write
 * straight into protobuf-c structs.
 *
 * The lexer reads one complete body in memory, one token at a time, and builds nothing: the caller asks
 * "what kind of value is next" and then takes it (a string decoded into the arena, a number, a literal),
 * steps into or over it. Its grammar is json-c's lenient (non-strict) one, which the gateway accepted
 * before: single-quoted strings, comments, trailing commas, case-insensitive true / false / null, NaN and
 * [-]Infinity, leading zeros, raw control bytes in strings. Everything else is refused with the offset
 * and the path of the field being read (the path is kept by decode_json.c in struct gw_json).
 * Not thread-safe per struct gw_json; any number of them may run at once.
 */
#ifndef GW_DECODE_INT_H
#define GW_DECODE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "core/arena.h"
#include "core/gw.h"
#include "decode/decode.h"

/* AnyValue nesting is clamped to this (the config allows no more); JSON nesting to 4 times it + 16. */
#define GW_JSON_MAX_DEPTH 256
#define GW_JSON_MAX_LEVELS (4 * GW_JSON_MAX_DEPTH + 16)

/* Error messages cut the path at 159 characters, as before: 80 steps of at least two are always past it. */
#define GW_JSON_PATH_STEPS 80

/* One step of the path of the field being decoded: ".name", or "[idx]" when name is NULL. */
struct gw_json_step {
  const char *name;
  size_t idx;
};

struct gw_json_blk;

struct gw_json {
  const char *start, *p, *end; /* the body; p: the next byte to read */
  struct gw_arena *a;
  struct gw_err *err;
  uint32_t lvl;       /* objects and arrays open: the nesting level of a value read now (the request is 0) */
  uint32_t max_lvl;   /* a value at this level or deeper is TOO_DEEP (json-c's tokener depth before) */
  uint32_t max_depth; /* AnyValue nesting (receivers.max_depth) */
  uint64_t fixed;     /* strings repaired by gw_utf8_fix */
  struct gw_decode_repaired *rep; /* traces: the spans those repairs concern (NULL: not asked) */
  bool res_fixed, scope_fixed;    /* the resource / scope being read had a repair */
  gw_rc rc;           /* a failure peek found (a malformed comment), reported by gw_json_bad */
  uint32_t npath;     /* steps in the path; only the first GW_JSON_PATH_STEPS are kept */
  struct gw_json_step path[GW_JSON_PATH_STEPS];
  struct gw_json_blk *spare; /* pointer blocks of finished arrays, for reuse */
  char key[64];               /* the last key read, when it had escapes and fits */
};

/* What the next value is, from its first byte; nothing is consumed. */
enum gw_jt {
  GW_JT_END,   /* no more input */
  GW_JT_BAD,   /* a byte no value starts with */
  GW_JT_OBJ,
  GW_JT_ARR,
  GW_JT_STR,
  GW_JT_NUM,   /* an integer or a double (NaN and Infinity included): gw_json_number */
  GW_JT_BOOL,
  GW_JT_NULL,
};

/* A number as the old decoder saw it: json-c typed a number without '.', 'e' or 'E' as an integer. */
struct gw_jnum {
  bool dbl;      /* a double (also NaN, Infinity): d; else an integer: neg, mag */
  bool neg;      /* integer: negative */
  bool big;      /* integer: magnitude past 64 bits (or past 2^63 when negative) */
  uint64_t mag;  /* integer: magnitude */
  double d;      /* double value; for an integer its value as a double */
};

/* Fail with a syntax error at the current position: "JSON: <what> at offset N[, in <path>]". */
gw_rc gw_json_syntax(struct gw_json *j, const char *what);
/* The syntax error for the value peek said GW_JT_BAD or GW_JT_END about. */
gw_rc gw_json_bad(struct gw_json *j);
/* Fail with rc and "<path>: <what>" (or "request: <what>" at the top). */
gw_rc gw_json_fail(struct gw_json *j, gw_rc rc, const char *what);
/* The request needs more arena than it may have: TOO_LARGE with the usual message. */
gw_rc gw_json_oom(struct gw_json *j);

/* Skip whitespace and comments; the kind of the value that follows (GW_JT_BAD with err set when a comment
 * is malformed or the input ends inside one: check j->err->rc). */
enum gw_jt gw_json_peek(struct gw_json *j);
/* Tests: the 16-byte scan for a string's end even where the CPU has AVX-512 (both stop at the same byte). */
extern bool gw_json_lex_no_avx512;
/* Whether the CPU has AVX-512 F and BW and the OS saves their state (libgcc checks XCR0); asked once
 * (utf8.c, x86-64 only). */
bool gw_decode_avx512bw(void);
/* The same, with VBMI and VBMI2 too (byte permutes and compress). */
bool gw_decode_avx512vbmi2(void);

/* Objects and arrays. begin consumes the opening byte (the caller has peeked it). next moves to the next
 * member: 1 with the key (decoded; *k valid until the next call) and the position at its value, 0 at the
 * closing byte (consumed), or an error rc < 0. *st is the caller's iteration state, 0 at the start. */
gw_rc gw_json_obj_begin(struct gw_json *j);
int gw_json_obj_next(struct gw_json *j, int *st, const char **k, size_t *kn);
gw_rc gw_json_arr_begin(struct gw_json *j);
int gw_json_arr_next(struct gw_json *j, int *st);

/* The string at p decoded (escapes, surrogates as json-c did), NUL-terminated, in the arena; *n its
 * length (it may hold NUL bytes from \u0000). Not yet UTF-8 repaired. */
gw_rc gw_json_string(struct gw_json *j, char **s, size_t *n);
/* The same; *ascii set when the copy found every byte ASCII (and no NUL), so it needs no UTF-8 repair
 * (false does not say it does: only that it was not checked on the way). */
gw_rc gw_json_string_ascii(struct gw_json *j, char **s, size_t *n, bool *ascii);
/* The raw bytes of the string at p when it holds no escape (*raw set, *n its length, consumed), else
 * nothing is consumed and *raw is NULL. */
gw_rc gw_json_string_raw(struct gw_json *j, const char **raw, size_t *n);
gw_rc gw_json_number(struct gw_json *j, struct gw_jnum *out);
gw_rc gw_json_bool(struct gw_json *j, bool *out);
gw_rc gw_json_null(struct gw_json *j);
/* Skip one value of any kind, checking its syntax and nesting as if it were read. */
gw_rc gw_json_skip(struct gw_json *j);

/* A hex digit's value (either case), or -1: \u escapes (json_lex.c) and hex ids (json_values.c). */
static inline int gw_json_hexval(unsigned char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  c |= 0x20;
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

/* ---- the field readers (json_values.c) ---- */

/* The path of the value being read, for error messages. */
static inline void gw_json_push_name(struct gw_json *j, const char *name)
{
  if (j->npath < GW_JSON_PATH_STEPS)
    j->path[j->npath] = (struct gw_json_step){name, 0};
  j->npath++;
}

static inline void gw_json_push_idx(struct gw_json *j, size_t i)
{
  if (j->npath < GW_JSON_PATH_STEPS)
    j->path[j->npath] = (struct gw_json_step){NULL, i};
  j->npath++;
}

static inline void gw_json_pop(struct gw_json *j) { j->npath--; }

/* A type error ("want a string") for the value peek classified as t; a syntax error when it is no value. */
gw_rc gw_json_want(struct gw_json *j, enum gw_jt t, const char *what);

/* The object at p as a new arena struct of sz bytes (not initialized), or NULL with *rc set: "want an
 * object" when the value is something else, or out of memory. */
static inline void *gw_json_new_obj(struct gw_json *j, size_t sz, gw_rc *rc)
{
  enum gw_jt t = gw_json_peek(j);
  void *m = NULL;
  if (t != GW_JT_OBJ)
    *rc = gw_json_want(j, t, "want an object");
  else if (!(m = gw_arena_alloc(j->a, sz)))
    *rc = gw_json_oom(j);
  else
    *rc = GW_OK;
  return m;
}

/* The pointers of a repeated field being read: the first GW_JSON_VEC_INLINE here, the rest in blocks. */
#define GW_JSON_VEC_INLINE 16
struct gw_json_vec {
  size_t n;
  void *in[GW_JSON_VEC_INLINE];
  struct gw_json_blk *head, *tail;
};
gw_rc gw_json_vec_push(struct gw_json *j, struct gw_json_vec *v, void *p);
/* The collected pointers as one arena array (NULL when empty); the blocks go back for reuse. */
gw_rc gw_json_vec_finish(struct gw_json *j, struct gw_json_vec *v, void ***out, size_t *n);

/* A message's member names. */
struct gw_json_name {
  const char *camel, *snake; /* snake NULL: the proto name is the same */
  uint8_t clen, slen;
};
/* The index of key k in t, or -1; *camel: it was the lowerCamelCase name. */
int gw_json_lookup(const struct gw_json_name *t, int n, const char *k, size_t kn, bool *camel);

/* One member being read: which field, whether its camelCase name was used, the camelCase names already
 * seen in this object (they win over snake_case ones), and the name the path shows. */
struct gw_json_fld {
  uint32_t *seen;
  int f;
  bool camel;
  const char *name;
};

/* What to do with the member's value: skip it (a snake_case name after the camelCase one), reset the
 * field (null, consumed), or read it. */
enum gw_json_take { GW_JSON_SKIP, GW_JSON_NULL, GW_JSON_READ };
enum gw_json_take gw_json_take(struct gw_json *j, const struct gw_json_fld *fd, gw_rc *rc);

/* In a member reader: skip or reset (running on_null) as gw_json_take says, returning; go on to read. */
#define GW_JSON_TAKE_OR_RETURN(j, fd, on_null)                                                                \
  do {                                                                                                        \
    gw_rc trc_;                                                                                               \
    switch (gw_json_take(j, fd, &trc_)) {                                                                     \
    case GW_JSON_SKIP: return gw_json_skip(j);                                                                \
    case GW_JSON_NULL:                                                                                        \
      if (!trc_) {                                                                                            \
        on_null;                                                                                              \
      }                                                                                                       \
      return trc_;                                                                                            \
    case GW_JSON_READ: break;                                                                                 \
    }                                                                                                         \
  } while (0)

/* Values at p, the path naming them. */
gw_rc gw_json_str_value(struct gw_json *j, char **out); /* arena copy, valid UTF-8 */
gw_rc gw_json_i64_value(struct gw_json *j, int64_t min, int64_t max, int64_t *out);
gw_rc gw_json_double_value(struct gw_json *j, double *out);
gw_rc gw_json_bool_value(struct gw_json *j, protobuf_c_boolean *out);
gw_rc gw_json_b64_value(struct gw_json *j, ProtobufCBinaryData *out);

/* Members: null and snake_case handled, the name pushed on the path, the value read into *out. */
gw_rc gw_json_get_str(struct gw_json *j, const struct gw_json_fld *fd, char **out);
gw_rc gw_json_get_u64(struct gw_json *j, const struct gw_json_fld *fd, uint64_t *out);
gw_rc gw_json_get_u32(struct gw_json *j, const struct gw_json_fld *fd, uint32_t *out);
gw_rc gw_json_get_enum(struct gw_json *j, const struct gw_json_fld *fd, const ProtobufCEnumDescriptor *desc,
                       int *out);
gw_rc gw_json_get_hex(struct gw_json *j, const struct gw_json_fld *fd, ProtobufCBinaryData *out);
/* A message-typed member read by fn into a new struct of sz bytes prepared by init (NULL when null). */
typedef gw_rc (*gw_json_msg_fn)(struct gw_json *j, void *msg);
gw_rc gw_json_get_msg(struct gw_json *j, const struct gw_json_fld *fd, size_t sz, void (*init)(void *),
                      gw_json_msg_fn fn, void **out);
/* A repeated message member: an array of objects, each read by fn into a new struct. */
gw_rc gw_json_get_repeated(struct gw_json *j, const struct gw_json_fld *fd, size_t sz, void (*init)(void *),
                           gw_json_msg_fn fn, void ***items, size_t *n_items);
/* Walk the members of the object at p: a known key (in t) goes to member(j, msg, &fd), an unknown one is
 * skipped. */
typedef gw_rc (*gw_json_member_fn)(struct gw_json *j, void *msg, const struct gw_json_fld *fd);
gw_rc gw_json_members(struct gw_json *j, const struct gw_json_name *t, int n, void *msg,
                      gw_json_member_fn member);

/* ---- protobuf (decode_pb.c's pre-scan, pb_unpack.c's one-pass unpack) ---- */

/* Schema nodes: the OTLP messages a request holds, and (gw_pbn_child) which field numbers of which message
 * are sub-messages; gw_pbn_desc: each node's protobuf-c descriptor. */
enum gw_pbn {
  GW_PBN_TRACE_REQ, GW_PBN_LOGS_REQ, GW_PBN_RESOURCE_SPANS, GW_PBN_RESOURCE_LOGS, GW_PBN_RESOURCE,
  GW_PBN_SCOPE_SPANS, GW_PBN_SCOPE_LOGS, GW_PBN_SCOPE, GW_PBN_SPAN, GW_PBN_EVENT, GW_PBN_LINK, GW_PBN_STATUS,
  GW_PBN_LOG_RECORD, GW_PBN_KEY_VALUE, GW_PBN_ANY_VALUE, GW_PBN_ARRAY, GW_PBN_KVLIST, GW_PBN_ENTITY_REF,
  GW_PBN_LEAF
};
extern const ProtobufCMessageDescriptor *const gw_pbn_desc[GW_PBN_LEAF];
/* Child node for field `field` of message `n`, or GW_PBN_LEAF for scalars / strings / unknown fields. */
static inline enum gw_pbn gw_pbn_child(enum gw_pbn n, uint32_t field)
{
  switch (n) {
  case GW_PBN_TRACE_REQ: return field == 1 ? GW_PBN_RESOURCE_SPANS : GW_PBN_LEAF;
  case GW_PBN_LOGS_REQ: return field == 1 ? GW_PBN_RESOURCE_LOGS : GW_PBN_LEAF;
  case GW_PBN_RESOURCE_SPANS: return field == 1 ? GW_PBN_RESOURCE : field == 2 ? GW_PBN_SCOPE_SPANS : GW_PBN_LEAF;
  case GW_PBN_RESOURCE_LOGS: return field == 1 ? GW_PBN_RESOURCE : field == 2 ? GW_PBN_SCOPE_LOGS : GW_PBN_LEAF;
  case GW_PBN_RESOURCE: return field == 1 ? GW_PBN_KEY_VALUE : field == 3 ? GW_PBN_ENTITY_REF : GW_PBN_LEAF;
  case GW_PBN_SCOPE_SPANS: return field == 1 ? GW_PBN_SCOPE : field == 2 ? GW_PBN_SPAN : GW_PBN_LEAF;
  case GW_PBN_SCOPE_LOGS: return field == 1 ? GW_PBN_SCOPE : field == 2 ? GW_PBN_LOG_RECORD : GW_PBN_LEAF;
  case GW_PBN_SCOPE: return field == 3 ? GW_PBN_KEY_VALUE : GW_PBN_LEAF;
  case GW_PBN_SPAN:
    return field == 9 ? GW_PBN_KEY_VALUE : field == 11 ? GW_PBN_EVENT : field == 13 ? GW_PBN_LINK : field == 15 ? GW_PBN_STATUS : GW_PBN_LEAF;
  case GW_PBN_EVENT: return field == 3 ? GW_PBN_KEY_VALUE : GW_PBN_LEAF;
  case GW_PBN_LINK: return field == 4 ? GW_PBN_KEY_VALUE : GW_PBN_LEAF;
  case GW_PBN_LOG_RECORD: return field == 5 ? GW_PBN_ANY_VALUE : field == 6 ? GW_PBN_KEY_VALUE : GW_PBN_LEAF;
  case GW_PBN_KEY_VALUE: return field == 2 ? GW_PBN_ANY_VALUE : GW_PBN_LEAF;
  case GW_PBN_ANY_VALUE: return field == 5 ? GW_PBN_ARRAY : field == 6 ? GW_PBN_KVLIST : GW_PBN_LEAF;
  case GW_PBN_ARRAY: return field == 1 ? GW_PBN_ANY_VALUE : GW_PBN_LEAF;
  case GW_PBN_KVLIST: return field == 1 ? GW_PBN_KEY_VALUE : GW_PBN_LEAF;
  default: return GW_PBN_LEAF;
  }
}

/* max_depth (AnyValue nesting) is clamped to GW_PB_MAX_DEPTH (config allows far less in practice).
 * Frames per AnyValue level: AnyValue, KeyValueList, KeyValue (ArrayValue needs only two). Above the first
 * AnyValue at most request, ResourceSpans, ScopeSpans, Span, Event or Link, KeyValue: 6; below the deepest
 * allowed AnyValue its KeyValueList and KeyValue: 2. Messages nested GW_PB_FRAMES deep are TOO_DEEP. */
#define GW_PB_MAX_DEPTH 256
#define GW_PB_FRAMES (3 * GW_PB_MAX_DEPTH + 8)

/* gw_pb_varint with the one-byte case (most keys and lengths) taken without its loop. */
static inline bool gw_pb_varint1(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
  if (*p < end && **p < 0x80) {
    *v = *(*p)++;
    return true;
  }
  return gw_pb_varint(p, end, v);
}

#endif
