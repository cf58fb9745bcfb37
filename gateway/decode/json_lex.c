/*
 * json_lex.c: the pull lexer under the OTLP/JSON decoder (decode_int.h). It reads the body in place, one
 * token at a time, and keeps no tree: what a request costs in memory is the structs decode_json.c
 * writes, in the arena, never a document model of the body.
 *
 * Decisions:
 * - The grammar is the one json-c's non-strict tokener accepted, which the gateway used before, so a
 *   sender that worked keeps working: single-quoted strings, / * * / and // comments wherever
 *   whitespace may be, a trailing comma in objects and arrays, true / false / null / NaN / Infinity in
 *   any case, -Infinity, leading zeros, json-c's number forms ("1.", "1e", "-.5"; a trailing e, E, + or
 *   - is dropped), raw control bytes and invalid UTF-8 in strings (repaired later, as before).
 *   Whitespace is space, tab, CR and LF. A NUL byte ends nothing: outside a string it is an unexpected
 *   byte, inside one an error.
 * - \u escapes become UTF-8; a surrogate pair becomes one code point, a lone surrogate U+FFFD, and a
 *   high surrogate followed by another escape gives U+FFFD and that escape read on its own, as json-c
 *   did. \u0000 gives a NUL byte, which the UTF-8 repair removes.
 * - Nesting counts every object and array, known or skipped: a value at level max_lvl (4 * max_depth + 16,
 *   the json-c tokener depth used before) is TOO_DEEP. Skipping is iterative, never recursive.
 * - Strings are found with SSE2 16 bytes at a time (a quote, a backslash or a NUL ends a run); a string
 *   without escapes is one copy.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "decode/decode_int.h"

/* ---- errors ---- */

/* The path as the old decoder printed it: "a.b[3].c", cut at 159 characters. */
static size_t render_path(const struct gw_json *j, char *buf, size_t cap, bool *cut)
{
  size_t plen = 0, n = j->npath < GW_JSON_PATH_STEPS ? j->npath : GW_JSON_PATH_STEPS;
  buf[0] = 0;
  for (size_t i = 0; i < n && plen < cap - 1; i++) {
    const struct gw_json_step *s = &j->path[i];
    int w = s->name ? snprintf(buf + plen, cap - plen, plen ? ".%s" : "%s", s->name)
                    : snprintf(buf + plen, cap - plen, "[%zu]", s->idx);
    if (w > 0)
      plen += (size_t)w;
  }
  *cut = plen >= cap - 1;
  return plen;
}

gw_rc gw_json_fail(struct gw_json *j, gw_rc rc, const char *what)
{
  char path[160];
  bool cut;
  size_t plen = render_path(j, path, sizeof path, &cut);
  gw_err_set(j->err, rc, "%s%s: %s", plen ? path : "request", cut ? "..." : "", what);
  if (j->err && plen && !cut)
    memcpy(j->err->field, path, plen + 1);
  return rc;
}

gw_rc gw_json_syntax(struct gw_json *j, const char *what)
{
  char path[160];
  bool cut;
  size_t plen = render_path(j, path, sizeof path, &cut);
  size_t off = (size_t)(j->p - j->start);
  if (!plen)
    return gw_err_set(j->err, GW_ERR(DECODE), "JSON: %s at offset %zu", what, off);
  gw_err_set(j->err, GW_ERR(DECODE), "JSON: %s at offset %zu, in %s%s", what, off, path, cut ? "..." : "");
  if (j->err && !cut)
    memcpy(j->err->field, path, plen + 1);
  return GW_ERR(DECODE);
}

gw_rc gw_json_oom(struct gw_json *j)
{
  return gw_err_set(j->err, GW_ERR(TOO_LARGE), "request needs more memory than the per-request limit");
}

static gw_rc eof(struct gw_json *j)
{
  j->p = j->end;
  return gw_json_syntax(j, "unexpected end of input");
}

gw_rc gw_json_bad(struct gw_json *j)
{
  if (j->rc)
    return j->rc;
  if (j->p >= j->end)
    return eof(j);
  unsigned char c = (unsigned char)*j->p;
  char what[48];
  if (c > ' ' && c < 0x7f)
    snprintf(what, sizeof what, "unexpected character '%c'", c);
  else
    snprintf(what, sizeof what, "unexpected byte 0x%02x", c);
  return gw_json_syntax(j, what);
}

static gw_rc too_deep(struct gw_json *j)
{
  char what[64];
  snprintf(what, sizeof what, "nested deeper than %u levels", j->max_lvl);
  gw_json_syntax(j, what);
  j->err->rc = GW_ERR(TOO_DEEP);
  return GW_ERR(TOO_DEEP);
}

/* ---- whitespace and comments ---- */

/* A comment at p ("/" seen): p moves past it. */
static gw_rc comment(struct gw_json *j)
{
  const char *p = j->p + 1, *e = j->end;
  if (p >= e)
    return eof(j);
  if (*p == '/') {
    for (p++; p < e && *p != '\n'; p++)
      if (!*p)
        goto nul;
    if (p == e)
      return eof(j);
    j->p = p + 1;
    return GW_OK;
  }
  if (*p != '*') {
    j->p = p;
    return gw_json_syntax(j, "malformed comment (want /* or //)");
  }
  for (p++; p + 1 < e; p++) {
    if (!*p)
      goto nul;
    if (p[0] == '*' && p[1] == '/') {
      j->p = p + 2;
      return GW_OK;
    }
  }
  return eof(j);
nul:
  j->p = p;
  return gw_json_syntax(j, "NUL byte in a comment");
}

static inline bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

static inline gw_rc skip_ws(struct gw_json *j)
{
  for (;;) {
    while (j->p < j->end && is_ws(*j->p))
      j->p++;
    if (j->p == j->end || *j->p != '/')
      return GW_OK;
    gw_rc rc = comment(j);
    if (rc)
      return rc;
  }
}

enum gw_jt gw_json_peek(struct gw_json *j)
{
  if (j->p < j->end && (unsigned char)*j->p > ' ' && *j->p != '/') {
    /* compact JSON: no whitespace to skip */
  } else if ((j->rc = skip_ws(j))) {
    return GW_JT_BAD;
  }
  if (j->p == j->end)
    return GW_JT_END;
  switch (*j->p) {
  case '{': return GW_JT_OBJ;
  case '[': return GW_JT_ARR;
  case '"': case '\'': return GW_JT_STR;
  case '-': case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': case '8': case '9':
  case 'i': case 'I':
    return GW_JT_NUM;
  case 't': case 'T': case 'f': case 'F': return GW_JT_BOOL;
  case 'n': case 'N':
    /* "nan" is a number, anything else that starts with n must be null */
    return j->p + 1 < j->end && (j->p[1] | 0x20) == 'a' ? GW_JT_NUM : GW_JT_NULL;
  default: return GW_JT_BAD;
  }
}

/* ---- literals ---- */

/* The literal word (lower case) at p, in any case: p moves past it. */
static gw_rc literal(struct gw_json *j, const char *word, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    if (j->p + i >= j->end)
      return eof(j);
    if (((unsigned char)j->p[i] | 0x20) != (unsigned char)word[i]) {
      char what[48];
      j->p += i;
      snprintf(what, sizeof what, "invalid literal (want %s)", word);
      return gw_json_syntax(j, what);
    }
  }
  j->p += n;
  return GW_OK;
}

gw_rc gw_json_bool(struct gw_json *j, bool *out)
{
  *out = (*j->p | 0x20) == 't';
  return *out ? literal(j, "true", 4) : literal(j, "false", 5);
}

gw_rc gw_json_null(struct gw_json *j) { return literal(j, "null", 4); }

/* ---- objects and arrays ---- */

gw_rc gw_json_obj_begin(struct gw_json *j)
{
  j->p++;
  j->lvl++;
  return GW_OK;
}

gw_rc gw_json_arr_begin(struct gw_json *j)
{
  j->p++;
  j->lvl++;
  return GW_OK;
}

#ifdef __SSE2__
/* The first quote q, backslash or NUL in [p, e), or e. */
static inline const char *scan_str(const char *p, const char *e, char q)
{
  const __m128i vq = _mm_set1_epi8(q), vb = _mm_set1_epi8('\\'), vz = _mm_setzero_si128();
  for (; e - p >= 16; p += 16) {
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, vq), _mm_cmpeq_epi8(x, vb)), _mm_cmpeq_epi8(x, vz));
    unsigned mask = (unsigned)_mm_movemask_epi8(m);
    if (mask)
      return p + __builtin_ctz(mask);
  }
  for (; p < e; p++)
    if (*p == q || *p == '\\' || !*p)
      return p;
  return e;
}
#else
static inline const char *scan_str(const char *p, const char *e, char q)
{
  for (; p < e; p++)
    if (*p == q || *p == '\\' || !*p)
      return p;
  return e;
}
#endif

/* Four hex digits at p (before e): the code unit, or -1. */
static long hex4(const char *p, const char *e)
{
  if (e - p < 4)
    return -1;
  long v = 0;
  for (int i = 0; i < 4; i++) {
    int h = gw_json_hexval((unsigned char)p[i]);
    if (h < 0)
      return -1;
    v = v << 4 | h;
  }
  return v;
}

#if defined(__x86_64__) && defined(__GNUC__)
#define JL512 1 /* string ends found 64 bytes a step with AVX-512 BW, chosen at run time */
#define JL_TARGET __attribute__((target("avx512f,avx512bw")))

bool gw_json_lex_no_avx512;

static bool jl512(void) { return gw_decode_avx512bw() && !gw_json_lex_no_avx512; }

/* The quotes q, backslashes and NUL bytes among the (at most 64) bytes from p before e, one bit each. */
JL_TARGET static inline uint64_t stops64(const char *p, const char *e, char q)
{
  size_t avail = (size_t)(e - p);
  __mmask64 in = avail >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << avail) - 1;
  __m512i v = _mm512_maskz_loadu_epi8(in, p);
  return (_mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(q)) | _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('\\')) |
          _mm512_testn_epi8_mask(v, v)) &
         in;
}

/* From the backslash at x, the first quote q or NUL byte that no backslash escapes, or e: where the loop of
 * string_end stops, found from one 64-byte mask for all the escapes in it (strings of JSON inside JSON have
 * one every few bytes). */
JL_TARGET static const char *string_end64(const char *x, const char *e, char q)
{
  const char *blk = x;
  uint64_t m = stops64(blk, e, q); /* bit 0: the backslash at x */
  unsigned i = 0;
  for (;;) {
    unsigned next = i + 2; /* past the escaped byte */
    if (next < 64) {
      m &= ~(uint64_t)0 << next;
    } else {
      blk += next;
      if (blk >= e)
        return e;
      m = stops64(blk, e, q);
    }
    while (!m) {
      blk += 64;
      if (blk >= e)
        return e;
      m = stops64(blk, e, q);
    }
    i = (unsigned)__builtin_ctzll(m);
    if (blk[i] != '\\')
      return blk + i;
  }
}
#endif

/* The end (closing quote) of the string whose first escape is at x; s: after the opening quote. NULL
 * with the error set when there is none. */
static const char *string_end(struct gw_json *j, const char *x, char q)
{
  const char *e = j->end;
#ifdef JL512
  if (jl512() && x < e && *x == '\\')
    x = string_end64(x, e, q); /* then at the quote, at a NUL or at e, as the loop below would stop */
#endif
  for (;;) {
    if (x == e) {
      eof(j);
      return NULL;
    }
    if (*x == q)
      return x;
    if (!*x) {
      j->p = x;
      gw_json_syntax(j, "NUL byte in a string");
      return NULL;
    }
    /* a backslash: the byte after it is escaped (checked when decoding) */
    if (x + 1 >= e) {
      eof(j);
      return NULL;
    }
    x = scan_str(x + 2, e, q);
  }
}

static char *put_utf8(char *o, unsigned long cp)
{
  if (cp < 0x80) {
    *o++ = (char)cp;
  } else if (cp < 0x800) {
    *o++ = (char)(0xc0 | cp >> 6);
    *o++ = (char)(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    *o++ = (char)(0xe0 | cp >> 12);
    *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
    *o++ = (char)(0x80 | (cp & 0x3f));
  } else {
    *o++ = (char)(0xf0 | cp >> 18);
    *o++ = (char)(0x80 | (cp >> 12 & 0x3f));
    *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
    *o++ = (char)(0x80 | (cp & 0x3f));
  }
  return o;
}

static char *put_fffd(char *o)
{
  *o++ = (char)0xef;
  *o++ = (char)0xbf;
  *o++ = (char)0xbd;
  return o;
}

#define HIGH_SURROGATE(c) ((c) >= 0xd800 && (c) <= 0xdbff)
#define LOW_SURROGATE(c) ((c) >= 0xdc00 && (c) <= 0xdfff)

#ifdef JL512
#define JU_TARGET __attribute__((target("avx512f,avx512bw,avx512vbmi,avx512vbmi2")))

static bool ju512(void) { return gw_decode_avx512vbmi2() && !gw_json_lex_no_avx512; }

/* What each one-byte escape decodes to, indexed by the escaped byte's low 7 bits; 0: not one (\u, or an
 * invalid escape). */
static const unsigned char esc_to[128] __attribute__((aligned(64))) = {
  ['"'] = '"', ['\\'] = '\\', ['/'] = '/', ['b'] = '\b', ['f'] = '\f', ['n'] = '\n', ['r'] = '\r', ['t'] = '\t'};

/*
 * The escapes of [*sp, e) decoded 64 bytes a step (strings of JSON inside JSON have one every few bytes: a
 * call to memchr and memcpy each was most of the cost). A step starts after a whole escape. Its escaped
 * bytes are found from the mask of backslashes at once: a backslash escapes the next byte unless it is
 * escaped itself, so in a run of backslashes the 2nd, 4th, ... are escaped (a run's parity, as simdjson
 * finds it: the runs starting on odd bits added to the backslashes carry through each run). A step whose
 * last byte starts an escape stops before it. The escaped bytes are translated with one VPERMB of the
 * table, the backslashes that start escapes dropped with VPCOMPRESSB. Returns the bytes written to o;
 * *sp is left at e, or at the start of the step holding a \u or an invalid escape, which the byte loop
 * decodes (and reports). *high: or-ed with the steps' masks of bytes >= 0x80.
 */
JU_TARGET static size_t unescape64(const char **sp, const char *e, char *o, uint64_t *high)
{
  const uint64_t even = 0x5555555555555555ull;
  const __m512i lo = _mm512_load_si512(esc_to), hi = _mm512_load_si512(esc_to + 64);
  const char *s = *sp;
  char *o0 = o;
  while (s < e) {
    size_t avail = (size_t)(e - s);
    uint64_t in = avail >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << avail) - 1;
    __m512i v = _mm512_maskz_loadu_epi8(in, s);
    uint64_t bs = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('\\')) & in;
    *high |= _mm512_movepi8_mask(v); /* (bytes past e load as zero) */
    if (!bs) {
      size_t k = avail >= 64 ? 64 : avail;
      _mm512_mask_storeu_epi8(o, in, v);
      o += k;
      s += k;
      continue;
    }
    uint64_t follows = bs << 1, odd_starts = bs & ~even & ~follows, on_even;
    bool open = __builtin_add_overflow(odd_starts, bs, &on_even); /* the last byte starts an escape */
    uint64_t escaped = (even ^ (on_even << 1)) & follows, starts = bs & ~escaped;
    size_t take = avail >= 64 ? 64 : avail;
    if (open) {
      take = 63;
      in >>= 1;
      starts &= in;
    }
    escaped &= in;
    if (starts & ~(escaped >> 1))
      break; /* an escape whose byte is past the text (e is never escaped: not reached) */
    __m512i t = _mm512_permutex2var_epi8(lo, v, hi);
    if ((_mm512_testn_epi8_mask(t, t) | _mm512_movepi8_mask(v)) & escaped)
      break; /* a \u or an invalid escape in this step: the byte loop from its start */
    uint64_t keep = in & ~starts;
    __m512i w = _mm512_maskz_compress_epi8(keep, _mm512_mask_blend_epi8(escaped, v, t));
    size_t k = (size_t)__builtin_popcountll(keep);
    _mm512_mask_storeu_epi8(o, k >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << k) - 1, w);
    o += k;
    s += take;
  }
  *sp = s;
  return (size_t)(o - o0);
}
#endif

/* Decode the escapes of [s, e) (the inside of a string, e at its closing quote) into out, which has room
 * for e - s bytes: no escape decodes longer than it is written. *n: the length written. */
static gw_rc unescape(struct gw_json *j, const char *s, const char *e, char *out, size_t *n, bool *ascii)
{
  char *o = out;
  *ascii = false;
#ifdef JL512
  if (ju512()) {
    uint64_t high = 0;
    o += unescape64(&s, e, o, &high);
    *ascii = s == e && !high; /* the escapes it decodes are ASCII and never NUL */
  }
#endif
  while (s < e) {
    const char *b = memchr(s, '\\', (size_t)(e - s));
    if (!b) {
      memcpy(o, s, (size_t)(e - s));
      o += e - s;
      break;
    }
    memcpy(o, s, (size_t)(b - s));
    o += b - s;
    s = b + 1; /* the escaped byte, always before e (string_end checked) */
    switch (*s++) {
    case '"': *o++ = '"'; break;
    case '\\': *o++ = '\\'; break;
    case '/': *o++ = '/'; break;
    case 'b': *o++ = '\b'; break;
    case 'f': *o++ = '\f'; break;
    case 'n': *o++ = '\n'; break;
    case 'r': *o++ = '\r'; break;
    case 't': *o++ = '\t'; break;
    case 'u': {
      long cp = hex4(s, e);
      if (cp < 0)
        goto bad_u;
      s += 4;
      for (;;) {
        if (!HIGH_SURROGATE(cp)) {
          o = LOW_SURROGATE(cp) ? put_fffd(o) : put_utf8(o, (unsigned long)cp);
          break;
        }
        if (e - s < 2 || s[0] != '\\' || s[1] != 'u') {
          o = put_fffd(o); /* a high surrogate alone */
          break;
        }
        s += 2;
        long lo = hex4(s, e);
        if (lo < 0)
          goto bad_u;
        s += 4;
        if (LOW_SURROGATE(lo)) {
          o = put_utf8(o, 0x10000 + (((unsigned long)cp - 0xd800) << 10) + ((unsigned long)lo - 0xdc00));
          break;
        }
        o = put_fffd(o); /* not a pair: the high one is replaced, the next read on its own */
        cp = lo;
      }
      break;
    }
    default:
      j->p = s - 1;
      return gw_json_syntax(j, "invalid escape in a string");
    }
  }
  *n = (size_t)(o - out);
  return GW_OK;
bad_u:
  j->p = s;
  return gw_json_syntax(j, "invalid \\u escape (want 4 hex digits)");
}

/* The first step of reading the string at p: *s after its opening quote, *x at its closing quote (no
 * escape in it) or at its first backslash; an error at the end of input or at a NUL byte. */
static inline gw_rc scan_string(struct gw_json *j, const char **s, const char **x)
{
  *s = j->p + 1;
  *x = scan_str(*s, j->end, *j->p);
  if (*x == j->end)
    return eof(j);
  if (!**x) {
    j->p = *x;
    return gw_json_syntax(j, "NUL byte in a string");
  }
  return GW_OK;
}

gw_rc gw_json_string_raw(struct gw_json *j, const char **raw, size_t *n)
{
  const char *s, *x;
  *raw = NULL;
  gw_rc rc = scan_string(j, &s, &x);
  if (rc || *x == '\\')
    return rc;
  *raw = s;
  *n = (size_t)(x - s);
  j->p = x + 1;
  return GW_OK;
}

#ifdef JL512
/* memcpy of a string with no escape, telling whether it is all ASCII (it holds no NUL: scan_string). */
JL_TARGET static bool copy_ascii64(char *d, const char *s, size_t n)
{
  uint64_t high = 0;
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    __m512i v = _mm512_loadu_si512(s + i);
    high |= _mm512_movepi8_mask(v);
    _mm512_storeu_si512(d + i, v);
  }
  if (i < n) {
    __mmask64 in = ((__mmask64)1 << (n - i)) - 1;
    __m512i v = _mm512_maskz_loadu_epi8(in, s + i);
    high |= _mm512_movepi8_mask(v);
    _mm512_mask_storeu_epi8(d + i, in, v);
  }
  return !high;
}
#endif

gw_rc gw_json_string(struct gw_json *j, char **out, size_t *n)
{
  bool ascii;
  return gw_json_string_ascii(j, out, n, &ascii);
}

gw_rc gw_json_string_ascii(struct gw_json *j, char **out, size_t *n, bool *ascii)
{
  char q = *j->p;
  const char *s, *x;
  char *buf;
  *ascii = false;
  gw_rc rc = scan_string(j, &s, &x);
  if (rc)
    return rc;
  if (*x == q) {
    size_t len = (size_t)(x - s);
    if (!(buf = gw_arena_alloc(j->a, len + 1)))
      return gw_json_oom(j);
#ifdef JL512
    if (jl512())
      *ascii = copy_ascii64(buf, s, len);
    else
#endif
      memcpy(buf, s, len);
    buf[len] = 0;
    *out = buf;
    *n = len;
    j->p = x + 1;
    return GW_OK;
  }
  const char *e = string_end(j, x, q);
  if (!e)
    return j->err->rc;
  if (!(buf = gw_arena_alloc(j->a, (size_t)(e - s) + 1)))
    return gw_json_oom(j);
  if ((rc = unescape(j, s, e, buf, n, ascii)))
    return rc;
  buf[*n] = 0;
  *out = buf;
  j->p = e + 1;
  return GW_OK;
}

/* Skip the string at p, checking its escapes. */
static gw_rc skip_string(struct gw_json *j)
{
  char q = *j->p;
  const char *x = scan_str(j->p + 1, j->end, q);
  if (x < j->end && *x == q) {
    j->p = x + 1;
    return GW_OK;
  }
  if (x < j->end && !*x) {
    j->p = x;
    return gw_json_syntax(j, "NUL byte in a string");
  }
  for (;;) {
    if (x == j->end)
      return eof(j);
    if (*x == q) {
      j->p = x + 1;
      return GW_OK;
    }
    if (!*x) {
      j->p = x;
      return gw_json_syntax(j, "NUL byte in a string");
    }
    if (x + 1 >= j->end)
      return eof(j);
    char c = x[1];
    if (c == 'u') {
      if (hex4(x + 2, j->end) < 0) {
        j->p = x + 2;
        return gw_json_syntax(j, "invalid \\u escape (want 4 hex digits)");
      }
      x += 6;
    } else if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't') {
      x += 2;
    } else {
      j->p = x + 1;
      return gw_json_syntax(j, "invalid escape in a string");
    }
    x = scan_str(x, j->end, q);
  }
}

/* A key: raw from the body when it has no escape, else decoded (into j->key when it fits: keys are
 * looked up and dropped before the next one is read), and cut at its first NUL as json-c's C-string keys
 * were. */
static gw_rc key(struct gw_json *j, const char **k, size_t *kn)
{
  char q = *j->p;
  const char *s, *x;
  gw_rc rc = scan_string(j, &s, &x);
  if (rc)
    return rc;
  if (*x == q) {
    *k = s;
    *kn = (size_t)(x - s);
    j->p = x + 1;
    return GW_OK;
  }
  const char *e = string_end(j, x, q);
  if (!e)
    return j->err->rc;
  size_t raw = (size_t)(e - s), n;
  char *buf = raw < sizeof j->key ? j->key : gw_arena_alloc(j->a, raw + 1);
  if (!buf)
    return gw_json_oom(j);
  bool ascii;
  if ((rc = unescape(j, s, e, buf, &n, &ascii)))
    return rc;
  buf[n] = 0;
  *k = buf;
  *kn = strlen(buf);
  j->p = e + 1;
  return GW_OK;
}

/* Whitespace and comments, then a byte that must be there: the end of input is an error. */
static inline gw_rc skip_ws_more(struct gw_json *j)
{
  gw_rc rc = skip_ws(j);
  if (rc)
    return rc;
  return j->p == j->end ? eof(j) : GW_OK;
}

/* The step both containers take before each member or element: the separating ',' after the first one,
 * a trailing comma allowed, or the closing byte (consumed, the level left). 1 at the next item, 0 after
 * the close, or an error. */
static inline int next_item(struct gw_json *j, int *st, char close, const char *want_sep)
{
  gw_rc rc;
  if ((rc = skip_ws_more(j)))
    return rc;
  if (*j->p == close)
    goto close;
  if (*st) {
    if (*j->p != ',')
      return gw_json_syntax(j, want_sep);
    j->p++;
    if ((rc = skip_ws_more(j)))
      return rc;
    if (*j->p == close)
      goto close; /* a trailing comma */
  }
  return 1;
close:
  j->p++;
  j->lvl--;
  return 0;
}

int gw_json_obj_next(struct gw_json *j, int *st, const char **k, size_t *kn)
{
  int r = next_item(j, st, '}', "want ',' or '}' after an object member");
  if (r != 1)
    return r;
  gw_rc rc;
  if (*j->p != '"' && *j->p != '\'')
    return gw_json_syntax(j, "want a quoted property name");
  if ((rc = key(j, k, kn)) || (rc = skip_ws_more(j)))
    return rc;
  if (*j->p != ':')
    return gw_json_syntax(j, "want ':' after a property name");
  j->p++;
  if ((rc = skip_ws_more(j)))
    return rc;
  if (j->lvl >= j->max_lvl)
    return too_deep(j);
  *st = 1;
  return 1;
}

int gw_json_arr_next(struct gw_json *j, int *st)
{
  int r = next_item(j, st, ']', "want ',' or ']' after an array element");
  if (r != 1)
    return r;
  if (j->lvl >= j->max_lvl)
    return too_deep(j);
  *st = 1;
  return 1;
}

/* ---- numbers ---- */

/* Bytes json-c let end a number inside an object or array (anything else right after one is an error). */
static bool ends_number(char c)
{
  return c == ',' || c == ']' || c == '}' || c == '/' || c == 'i' || c == 'I' || c == ' ' || c == '\t' ||
         c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

gw_rc gw_json_number(struct gw_json *j, struct gw_jnum *out)
{
  const char *p = j->p, *e = j->end;
  memset(out, 0, sizeof *out);
  if ((*p | 0x20) == 'n') {
    out->dbl = true;
    out->d = NAN;
    return literal(j, "nan", 3);
  }
  if ((*p | 0x20) == 'i') {
    out->dbl = true;
    out->d = INFINITY;
    return literal(j, "infinity", 8);
  }
  /* json-c's number: digits, one '.', one exponent, a sign first or right after '.' or the exponent. */
  bool neg_ok = true, pos_ok = false, dbl = false, exp = false;
  const char *q = p;
  for (; q < e; q++) {
    char c = *q;
    if (c >= '0' && c <= '9') {
    } else if ((c == 'e' || c == 'E') && !exp) {
      exp = dbl = neg_ok = pos_ok = true;
      continue;
    } else if (c == '.' && !dbl) {
      dbl = neg_ok = pos_ok = true;
      continue;
    } else if (!((c == '-' && neg_ok) || (c == '+' && pos_ok))) {
      break;
    }
    neg_ok = pos_ok = false;
  }
  size_t len = (size_t)(q - p);
  if (len == 1 && *p == '-' && q < e && (*q | 0x20) == 'i') {
    j->p = q;
    out->dbl = true;
    out->d = -INFINITY;
    return literal(j, "infinity", 8);
  }
  if (q < e && !ends_number(*q)) {
    j->p = q;
    return gw_json_syntax(j, "malformed number");
  }
  while (len > 1 && (p[len - 1] == 'e' || p[len - 1] == 'E' || p[len - 1] == '+' || p[len - 1] == '-'))
    len--; /* json-c dropped a trailing exponent mark or sign: "1e" and "1.-" are 1 */
  if (!dbl) {
    const char *d = p + (*p == '-');
    if (d == p + len) {
      j->p = q;
      return gw_json_syntax(j, "malformed number");
    }
    uint64_t m = 0;
    for (; d < p + len; d++) {
      unsigned v = (unsigned)(*d - '0');
      if (m > (UINT64_MAX - v) / 10)
        out->big = true;
      m = m * 10 + v;
    }
    out->neg = *p == '-';
    out->mag = m;
    if (out->neg && m > (uint64_t)1 << 63)
      out->big = true;
    if (!out->big)
      out->d = out->neg ? (m == (uint64_t)1 << 63 ? -9223372036854775808.0 : (double)-(int64_t)m) : (double)m;
  }
  if (dbl || out->big) {
    char small[64], *buf = small, *end;
    if (len >= sizeof small && !(buf = gw_arena_alloc(j->a, len + 1)))
      return gw_json_oom(j);
    memcpy(buf, p, len);
    buf[len] = 0;
    out->dbl = dbl;
    out->d = strtod(buf, &end);
    if (end != buf + len) {
      j->p = q;
      return gw_json_syntax(j, "malformed number");
    }
  }
  j->p = q;
  return GW_OK;
}

/* ---- skipping ---- */

gw_rc gw_json_skip(struct gw_json *j)
{
  /* One byte per level opened here: 'o' or 'a', and whether a member was read ('O' / 'A'). */
  unsigned char open[GW_JSON_MAX_LEVELS + 1];
  uint32_t base = j->lvl, top = 0;
  gw_rc rc;
  int r;
  for (;;) {
    /* a value */
    switch (gw_json_peek(j)) {
    case GW_JT_OBJ:
      gw_json_obj_begin(j);
      open[top++] = 'o';
      break;
    case GW_JT_ARR:
      gw_json_arr_begin(j);
      open[top++] = 'a';
      break;
    case GW_JT_STR:
      if ((rc = skip_string(j)))
        return rc;
      break;
    case GW_JT_NUM: {
      struct gw_jnum n;
      if ((rc = gw_json_number(j, &n)))
        return rc;
      break;
    }
    case GW_JT_BOOL: {
      bool b;
      if ((rc = gw_json_bool(j, &b)))
        return rc;
      break;
    }
    case GW_JT_NULL:
      if ((rc = gw_json_null(j)))
        return rc;
      break;
    default:
      return gw_json_bad(j);
    }
    /* the next member of the innermost open container, closing those that end */
    for (;;) {
      if (j->lvl == base)
        return GW_OK;
      unsigned char *t = &open[top - 1];
      int st = *t == 'O' || *t == 'A';
      if (*t == 'o' || *t == 'O') {
        const char *k;
        size_t kn;
        r = gw_json_obj_next(j, &st, &k, &kn);
      } else {
        r = gw_json_arr_next(j, &st);
      }
      if (r < 0)
        return r;
      if (r == 1) {
        *t = (unsigned char)(*t == 'o' || *t == 'O' ? 'O' : 'A');
        break;
      }
      top--;
    }
  }
}
