/* crc32.c: zlib's CRC-32, folded with carry-less multiplication where the CPU has it (crc32.h). */
#include "core/crc32.h"

#include <pthread.h>
#include <stdbool.h>
#include <zlib.h>

#include "core/crc32_int.h"

uint32_t gw_crc32_portable(uint32_t crc, const void *buf, size_t len)
{
  return (uint32_t)crc32_z(crc, buf, len);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>

#define CLMUL __attribute__((target("pclmul,sse4.1")))
#define VCLMUL __attribute__((target("avx512f,avx512bw,avx512vl,vpclmulqdq,pclmul,sse4.1")))

/* The folding constants of the paper for the reflected polynomial 0x104C11DB7: x^(4*128+32) mod P and
 * x^(4*128-32) mod P (fold 512 bits), x^(128+32) and x^(128-32) mod P (fold 128 bits), x^64 mod P (128 to
 * 64 bits), then P itself and floor(x^64 / P) for the Barrett reduction, all bit-reflected. A 128-bit lane
 * folded D bits forward takes x^(D+32) for its low 64 bits and x^(D-32) for its high ones; tests derive each
 * listed constant again from P (gw_crc32_consts). */
static const uint64_t k1k2[2] __attribute__((aligned(16))) = {0x0154442bd4ull, 0x01c6e41596ull};
static const uint64_t k3k4[2] __attribute__((aligned(16))) = {0x01751997d0ull, 0x00ccaa009eull};
static const uint64_t k5k0[2] __attribute__((aligned(16))) = {0x0163cd6124ull, 0};
static const uint64_t poly[2] __attribute__((aligned(16))) = {0x01db710641ull, 0x01f7011641ull};
/* The AVX-512 path: x^(4*512+32) and x^(4*512-32) mod P fold each of four 512-bit lanes 2048 bits forward
 * (k1k2 then folds them into one, 512 bits at a time); the first three 128-bit lanes of the last 512 bits
 * go 384, 256 and 128 bits forward, onto the fourth, with x^(384+-32), x^(256+-32) and k3k4. */
static const uint64_t k2048[2] __attribute__((aligned(16))) = {0x011542778aull, 0x01322d1430ull};
static const uint64_t klanes[8] __attribute__((aligned(64))) = {0x003db1ecdcull, 0x0174359406ull, 0x00f1da05aaull,
                                                                0x015a546366ull, 0x01751997d0ull, 0x00ccaa009eull};

const struct gw_crc32_const gw_crc32_consts[] = {
  {544, &k1k2[0]},    {480, &k1k2[1]},    {160, &k3k4[0]},    {96, &k3k4[1]},     {64, &k5k0[0]},
  {2080, &k2048[0]},  {2016, &k2048[1]},  {416, &klanes[0]},  {352, &klanes[1]},  {288, &klanes[2]},
  {224, &klanes[3]},  {160, &klanes[4]},  {96, &klanes[5]},
};
const size_t gw_crc32_nconsts = sizeof gw_crc32_consts / sizeof gw_crc32_consts[0];

/* One 128-bit lane folded forward over the next 128 bits (or 512, with k1k2) and the data there xored in. */
CLMUL static inline __m128i fold(__m128i x, __m128i k, __m128i data)
{
  __m128i lo = _mm_clmulepi64_si128(x, k, 0x00), hi = _mm_clmulepi64_si128(x, k, 0x11);
  return _mm_xor_si128(_mm_xor_si128(hi, lo), data);
}

static inline __m128i load(const unsigned char *p) { return _mm_loadu_si128((const __m128i *)(const void *)p); }

/* The CRC register from one 128-bit lane x1 and the len bytes after it, len a multiple of 16. */
CLMUL static inline uint32_t clmul_tail(__m128i x1, const unsigned char *p, size_t len)
{
  __m128i k = _mm_load_si128((const __m128i *)(const void *)k3k4);
  for (; len >= 16; p += 16, len -= 16)
    x1 = fold(x1, k, load(p));
  /* 128 bits to 64 */
  __m128i mask32 = _mm_setr_epi32(-1, 0, -1, 0);
  __m128i x2 = _mm_clmulepi64_si128(x1, k, 0x10);
  x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x2);
  k = _mm_loadl_epi64((const __m128i *)(const void *)k5k0);
  x2 = _mm_srli_si128(x1, 4);
  x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, mask32), k, 0x00), x2);
  /* Barrett reduction to 32 bits */
  k = _mm_load_si128((const __m128i *)(const void *)poly);
  __m128i t = _mm_and_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, mask32), k, 0x10), mask32);
  t = _mm_clmulepi64_si128(t, k, 0x00);
  x1 = _mm_xor_si128(x1, t);
  return (uint32_t)_mm_extract_epi32(x1, 1);
}

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
  return clmul_tail(x1, p, len);
}

/* fold() on four 128-bit lanes at once, the three-way xor in one instruction. */
VCLMUL static inline __m512i vfold(__m512i x, __m512i k, __m512i data)
{
  return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, k, 0x00), _mm512_clmulepi64_epi128(x, k, 0x11), data,
                                   0x96);
}

VCLMUL static inline __m512i vload(const unsigned char *p) { return _mm512_loadu_si512((const void *)p); }

/* clmul_crc with 512-bit lanes, len >= 256 and a multiple of 16: four lanes, then one taking 64 bytes a
 * step, then its four 128-bit lanes into one for clmul_tail. */
VCLMUL static uint32_t vclmul_crc(uint32_t reg, const unsigned char *p, size_t len)
{
  __m512i z1 = _mm512_xor_si512(vload(p), _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)reg))), z2 = vload(p + 64),
          z3 = vload(p + 128), z4 = vload(p + 192);
  p += 256;
  len -= 256;
  __m512i k = _mm512_broadcast_i32x4(_mm_load_si128((const __m128i *)(const void *)k2048));
  for (; len >= 256; p += 256, len -= 256) { /* four lanes, each folded 2048 bits forward */
    z1 = vfold(z1, k, vload(p));
    z2 = vfold(z2, k, vload(p + 64));
    z3 = vfold(z3, k, vload(p + 128));
    z4 = vfold(z4, k, vload(p + 192));
  }
  k = _mm512_broadcast_i32x4(_mm_load_si128((const __m128i *)(const void *)k1k2)); /* into one, 512 bits */
  z1 = vfold(z1, k, z2);
  z1 = vfold(z1, k, z3);
  z1 = vfold(z1, k, z4);
  for (; len >= 64; p += 64, len -= 64)
    z1 = vfold(z1, k, vload(p));
  /* Lanes 0-2 folded onto lane 3 (klanes has zeros for lane 3, which is kept as it is), then all four xored. */
  k = _mm512_load_si512((const void *)klanes);
  z1 = _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(z1, k, 0x00), _mm512_clmulepi64_epi128(z1, k, 0x11),
                                 _mm512_maskz_mov_epi64(0xc0, z1), 0x96);
  __m256i y = _mm256_xor_si256(_mm512_castsi512_si256(z1), _mm512_extracti64x4_epi64(z1, 1));
  return clmul_tail(_mm_xor_si128(_mm256_castsi256_si128(y), _mm256_extracti128_si256(y, 1)), p, len);
}

/* Whether the OS saves the AVX-512 state on a context switch, which the CPUID feature bits do not say:
 * CPUID.1:ECX.OSXSAVE (XGETBV usable), then XCR0 bits 1-2 (SSE, AVX) and 5-7 (opmask, ZMM0-15 upper
 * halves, ZMM16-31). It is checked here rather than left to __builtin_cpu_supports("avx512f"), whose
 * runtime (libgcc or compiler-rt, by version) is not relied on to have looked at XCR0. */
static bool os_saves_zmm(void)
{
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE))
    return false;
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (lo & 0xe6) == 0xe6;
}

static enum gw_crc32_path best;

static void cpu_check(void)
{
  __builtin_cpu_init();
  if (__builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1"))
    best = GW_CRC32_CLMUL;
  if (best == GW_CRC32_CLMUL && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("vpclmulqdq") && os_saves_zmm())
    best = GW_CRC32_AVX512;
}

enum gw_crc32_path gw_crc32_best(void)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, cpu_check);
  return best;
}

uint32_t gw_crc32_via(enum gw_crc32_path path, uint32_t crc, const void *buf, size_t len)
{
  const unsigned char *p = buf;
  if (path >= GW_CRC32_CLMUL && len >= 64) {
    size_t n = len & ~(size_t)15;
    crc = ~(path >= GW_CRC32_AVX512 && n >= GW_CRC32_AVX512_MIN ? vclmul_crc : clmul_crc)(~crc, p, n);
    p += n;
    len -= n;
  }
  return len ? gw_crc32_portable(crc, p, len) : crc;
}

uint32_t gw_crc32(uint32_t crc, const void *buf, size_t len) { return gw_crc32_via(gw_crc32_best(), crc, buf, len); }

#else

const struct gw_crc32_const gw_crc32_consts[] = {{0, NULL}};
const size_t gw_crc32_nconsts = 0;

enum gw_crc32_path gw_crc32_best(void) { return GW_CRC32_PORTABLE; }

uint32_t gw_crc32_via(enum gw_crc32_path path, uint32_t crc, const void *buf, size_t len)
{
  (void)path;
  return gw_crc32_portable(crc, buf, len);
}

uint32_t gw_crc32(uint32_t crc, const void *buf, size_t len) { return gw_crc32_portable(crc, buf, len); }

#endif
