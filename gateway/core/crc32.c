/* crc32.c: zlib's CRC-32, folded with carry-less multiplication where the CPU has it (crc32.h). */
#include "core/crc32.h"

#include <pthread.h>
#include <stdbool.h>
#include <zlib.h>

uint32_t gw_crc32_portable(uint32_t crc, const void *buf, size_t len)
{
  return (uint32_t)crc32_z(crc, buf, len);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define CLMUL __attribute__((target("pclmul,sse4.1")))

/* The folding constants of the paper for the reflected polynomial 0x104C11DB7: x^(4*128+32) mod P and
 * x^(4*128-32) mod P (fold 512 bits), x^(128+32) and x^(128-32) mod P (fold 128 bits), x^64 mod P (128 to
 * 64 bits), then P itself and floor(x^64 / P) for the Barrett reduction, all bit-reflected. */
static const uint64_t k1k2[2] __attribute__((aligned(16))) = {0x0154442bd4ull, 0x01c6e41596ull};
static const uint64_t k3k4[2] __attribute__((aligned(16))) = {0x01751997d0ull, 0x00ccaa009eull};
static const uint64_t k5k0[2] __attribute__((aligned(16))) = {0x0163cd6124ull, 0};
static const uint64_t poly[2] __attribute__((aligned(16))) = {0x01db710641ull, 0x01f7011641ull};

/* One 128-bit lane folded forward over the next 128 bits (or 512, with k1k2) and the data there xored in. */
CLMUL static inline __m128i fold(__m128i x, __m128i k, __m128i data)
{
  __m128i lo = _mm_clmulepi64_si128(x, k, 0x00), hi = _mm_clmulepi64_si128(x, k, 0x11);
  return _mm_xor_si128(_mm_xor_si128(hi, lo), data);
}

static inline __m128i load(const unsigned char *p) { return _mm_loadu_si128((const __m128i *)(const void *)p); }

/* The CRC register (not inverted: the caller inverts) after len bytes, len >= 64 and a multiple of 16. */
CLMUL static uint32_t clmul_crc(uint32_t reg, const unsigned char *p, size_t len)
{
  __m128i x1 = _mm_xor_si128(load(p), _mm_cvtsi32_si128((int)reg)), x2 = load(p + 16), x3 = load(p + 32),
          x4 = load(p + 48);
  p += 64;
  len -= 64;
  __m128i k = _mm_load_si128((const __m128i *)(const void *)k1k2);
  for (; len >= 64; p += 64, len -= 64) { /* four lanes, each folded 512 bits forward */
    x1 = fold(x1, k, load(p));
    x2 = fold(x2, k, load(p + 16));
    x3 = fold(x3, k, load(p + 32));
    x4 = fold(x4, k, load(p + 48));
  }
  k = _mm_load_si128((const __m128i *)(const void *)k3k4); /* the four lanes into one */
  x1 = fold(x1, k, x2);
  x1 = fold(x1, k, x3);
  x1 = fold(x1, k, x4);
  for (; len >= 16; p += 16, len -= 16)
    x1 = fold(x1, k, load(p));
  /* 128 bits to 64 */
  __m128i mask32 = _mm_setr_epi32(-1, 0, -1, 0);
  __m128i x2b = _mm_clmulepi64_si128(x1, k, 0x10);
  x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x2b);
  k = _mm_loadl_epi64((const __m128i *)(const void *)k5k0);
  x2b = _mm_srli_si128(x1, 4);
  x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, mask32), k, 0x00), x2b);
  /* Barrett reduction to 32 bits */
  k = _mm_load_si128((const __m128i *)(const void *)poly);
  __m128i t = _mm_and_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, mask32), k, 0x10), mask32);
  t = _mm_clmulepi64_si128(t, k, 0x00);
  x1 = _mm_xor_si128(x1, t);
  return (uint32_t)_mm_extract_epi32(x1, 1);
}

static bool have_clmul;

static void cpu_check(void)
{
  __builtin_cpu_init();
  have_clmul = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
}

uint32_t gw_crc32(uint32_t crc, const void *buf, size_t len)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, cpu_check);
  const unsigned char *p = buf;
  if (have_clmul && len >= 64) {
    size_t n = len & ~(size_t)15;
    crc = ~clmul_crc(~crc, p, n);
    p += n;
    len -= n;
  }
  return len ? gw_crc32_portable(crc, p, len) : crc;
}

#else

uint32_t gw_crc32(uint32_t crc, const void *buf, size_t len) { return gw_crc32_portable(crc, buf, len); }

#endif
