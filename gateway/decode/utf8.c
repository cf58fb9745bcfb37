/*
 * utf8.c: make decoded strings valid UTF-8 before anything downstream (Postgres text columns, JSON
 * encoders, exporters) sees them.
 *
 * Validation follows RFC 3629 / Unicode §3.9 table 3-7: overlong forms, surrogates (U+D800..DFFF) and
 * code points above U+10FFFF are invalid. Each maximal ill-formed subpart becomes one U+FFFD (the
 * "substitution of maximal subparts" practice of Unicode §3.9, also what WHATWG decoders do), and NUL
 * bytes are dropped because Postgres text cannot hold them.
 * The common case, a valid string, is one read-only pass and no copy. A repair is done in place when it
 * never writes more bytes than it has read (every bad subpart is at least 3 bytes, or only NULs are
 * removed); otherwise the result is a new arena string.
 */
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define U8_512 1 /* 64 bytes a step with AVX-512 BW, chosen at run time */
#endif

#include "decode/decode.h"
#include "decode/decode_int.h"

/* Length of the well-formed sequence at s[0..n), or 0 if s[0] starts an ill-formed one; for an
 * ill-formed one *bad is the length of its maximal subpart (at least 1). */
static size_t seq(const unsigned char *s, size_t n, size_t *bad)
{
  unsigned char b = s[0];
  size_t want;
  unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
  if (b < 0x80)
    return 1;
  if (b >= 0xc2 && b <= 0xdf) {
    want = 2;
  } else if (b >= 0xe0 && b <= 0xef) {
    want = 3;
    if (b == 0xe0)
      lo = 0xa0; /* overlong */
    else if (b == 0xed)
      hi = 0x9f; /* surrogates */
  } else if (b >= 0xf0 && b <= 0xf4) {
    want = 4;
    if (b == 0xf0)
      lo = 0x90; /* overlong */
    else if (b == 0xf4)
      hi = 0x8f; /* above U+10FFFF */
  } else {
    *bad = 1; /* continuation byte, C0/C1 (overlong), F5..FF */
    return 0;
  }
  size_t i = 1;
  for (; i < want; i++) {
    if (i >= n)
      break;
    unsigned char c = s[i];
    if (i == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xbf))
      break;
  }
  if (i == want)
    return want;
  *bad = i;
  return 0;
}

/* Length of the leading run of ASCII bytes other than NUL. Most text is ASCII, so this is nearly all of
 * the validation. With SSE2 (every x86-64), 32 then 16 bytes a step: a byte is ASCII and not NUL exactly
 * when, read as a signed byte, it is > 0. Then (and elsewhere) eight bytes a step: a byte is NUL or has
 * its high bit set exactly when (b - 1) | b has the high bit set, and a word without such a byte has no
 * borrow between its bytes. */
bool gw_utf8_no_avx512;

#ifdef U8_512
/* Bit 0: AVX-512 F and BW; bit 1: VBMI and VBMI2 as well. Asked once. */
static int decode_avx512(void)
{
  static int have = -1;
  int h = __atomic_load_n(&have, __ATOMIC_RELAXED);
  if (h < 0) {
    __builtin_cpu_init();
    h = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
    h |= h && __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vbmi2") ? 2 : 0;
    __atomic_store_n(&have, h, __ATOMIC_RELAXED);
  }
  return h;
}

bool gw_decode_avx512bw(void) { return decode_avx512() & 1; }
bool gw_decode_avx512vbmi2(void) { return decode_avx512() & 2; }

static bool u8_512(void) { return gw_decode_avx512bw() && !gw_utf8_no_avx512; }

/* ascii_run 64 bytes a step; the last step (and a short string) is one masked load, which reads nothing
 * past the string. */
__attribute__((target("avx512f,avx512bw"))) static size_t ascii_run64(const unsigned char *s, size_t len)
{
  const __m512i zero = _mm512_setzero_si512();
  size_t i = 0;
  for (; i + 64 <= len; i += 64) {
    uint64_t ok = _mm512_cmpgt_epi8_mask(_mm512_loadu_si512(s + i), zero);
    if (~ok)
      return i + (size_t)__builtin_ctzll(~ok);
  }
  if (i == len)
    return len;
  __mmask64 in = ((__mmask64)1 << (len - i)) - 1;
  uint64_t stop = ~_mm512_mask_cmpgt_epi8_mask(in, _mm512_maskz_loadu_epi8(in, s + i), zero) & in;
  return stop ? i + (size_t)__builtin_ctzll(stop) : len;
}
#endif

static size_t ascii_run(const unsigned char *s, size_t len)
{
  size_t i = 0;
#ifdef U8_512
  if (u8_512())
    return ascii_run64(s, len);
#endif
#if defined(__SSE2__)
  const __m128i zero = _mm_setzero_si128();
  for (; i + 32 <= len; i += 32) {
    __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
    __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(s + i + 16));
    unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpgt_epi8(a, zero)) |
                 (unsigned)_mm_movemask_epi8(_mm_cmpgt_epi8(b, zero)) << 16;
    if (m != 0xffffffffu)
      return i + (size_t)__builtin_ctz(~m);
  }
  for (; i + 16 <= len; i += 16) {
    __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
    unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpgt_epi8(a, zero));
    if (m != 0xffffu)
      return i + (size_t)__builtin_ctz(~m);
  }
#endif
  const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy(&w, s + i, 8);
    if (((w - ones) | w) & highs)
      break;
  }
  while (i < len && s[i] >= 0x01 && s[i] < 0x80)
    i++;
  return i;
}

/* First pass: the output length, and whether any replacement is shorter than the U+FFFD it becomes. */
static bool scan(const unsigned char *s, size_t len, size_t *out_len, bool *grows)
{
  size_t i = ascii_run(s, len), out = i;
  bool changed = false;
  *grows = false;
  while (i < len) {
    if (s[i] >= 0x01 && s[i] < 0x80) {
      size_t r = ascii_run(s + i, len - i);
      out += r;
      i += r;
      continue;
    }
    if (s[i] == 0) {
      changed = true;
      i++;
      continue;
    }
    size_t bad = 0, n = seq(s + i, len - i, &bad);
    if (n) {
      out += n;
      i += n;
      continue;
    }
    changed = true;
    if (bad < 3)
      *grows = true;
    out += 3;
    i += bad;
  }
  *out_len = out;
  return changed;
}

/* Second pass; dst may equal src when the scan said nothing grows (writes then never overtake reads). */
static void repair(unsigned char *dst, const unsigned char *src, size_t len)
{
  size_t o = 0, i = 0;
  while (i < len) {
    if (src[i] == 0) {
      i++;
      continue;
    }
    size_t bad = 0, n = seq(src + i, len - i, &bad);
    if (n) {
      memmove(dst + o, src + i, n);
      o += n;
      i += n;
      continue;
    }
    dst[o++] = 0xef;
    dst[o++] = 0xbf;
    dst[o++] = 0xbd;
    i += bad;
  }
  dst[o] = 0;
}

char *gw_utf8_fix(struct gw_arena *a, char *s, size_t len, bool *fixed)
{
  size_t out_len;
  bool grows;
  *fixed = false;
  if (!scan((const unsigned char *)s, len, &out_len, &grows))
    return s;
  *fixed = true;
  if (!grows) {
    repair((unsigned char *)s, (const unsigned char *)s, len);
    return s;
  }
  unsigned char *d = gw_arena_alloc(a, out_len + 1);
  if (!d)
    return NULL;
  repair(d, (const unsigned char *)s, len);
  return (char *)d;
}

bool gw_utf8_valid(const char *s, size_t len)
{
  const unsigned char *u = (const unsigned char *)s;
  size_t i = ascii_run(u, len);
  while (i < len) {
    if (u[i] >= 0x01 && u[i] < 0x80) {
      i += ascii_run(u + i, len - i);
      continue;
    }
    size_t bad = 0, n = u[i] ? seq(u + i, len - i, &bad) : 0;
    if (!n)
      return false;
    i += n;
  }
  return true;
}
