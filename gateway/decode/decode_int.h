/*
 * decode_int.h: what the decode module's files share and nothing else sees: the OTLP/JSON pull lexer
 * (json_lex.c) that decode_json.c drives to write straight into protobuf-c structs.
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

#include "core/arena.h"
#include "core/gw.h"

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
  gw_rc rc;           /* a failure peek found (a malformed comment), reported by gw_json_bad */
  uint32_t npath;     /* steps in the path; only the first GW_JSON_PATH_STEPS are kept */
  struct gw_json_step path[GW_JSON_PATH_STEPS];
  struct gw_json_blk *spare; /* pointer blocks of finished arrays, for reuse */
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
/* The raw bytes of the string at p when it holds no escape (*raw set, *n its length, consumed), else
 * nothing is consumed and *raw is NULL. */
gw_rc gw_json_string_raw(struct gw_json *j, const char **raw, size_t *n);
gw_rc gw_json_number(struct gw_json *j, struct gw_jnum *out);
gw_rc gw_json_bool(struct gw_json *j, bool *out);
gw_rc gw_json_null(struct gw_json *j);
/* Skip one value of any kind, checking its syntax and nesting as if it were read. */
gw_rc gw_json_skip(struct gw_json *j);

#endif
