/* sha256.c: SHA-256 with the x86 SHA extensions, two messages in lockstep (sha256.h). */
#include "core/sha256.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define SHA_NI 1
#endif

bool gw_sha256_no_ni;

static EVP_MD *evp_md;
static bool have_ni;

static void init(void)
{
  evp_md = EVP_MD_fetch(NULL, "SHA256", NULL);
#ifdef SHA_NI
  unsigned a, b, c, d;
  bool ssse3_41 = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSSE3) && (c & bit_SSE4_1);
  have_ni = ssse3_41 && __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_SHA);
#endif
}

static bool use_ni(void)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, init);
  return have_ni && !gw_sha256_no_ni;
}

static void evp(const void *p, size_t n, unsigned char out[GW_SHA256_LEN])
{
  unsigned int len = 0;
  if (!EVP_Digest(p, n, out, &len, evp_md ? evp_md : EVP_sha256(), NULL) || len != GW_SHA256_LEN)
    memset(out, 0, GW_SHA256_LEN); /* (an OpenSSL without SHA-256: not one the gateway starts with) */
}

#ifdef SHA_NI
static const uint32_t K[64] = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

/* A message as a sequence of 64-byte blocks: its whole blocks in place, then the rest with the padding
 * (0x80, zeros, the length in bits big-endian) in one or two blocks of its own. */
struct msg {
  const unsigned char *p;
  size_t whole, blocks;
  unsigned char tail[128];
};

static void msg_init(struct msg *m, const void *p, size_t n)
{
  size_t r = n % 64;
  m->p = p;
  m->whole = n / 64;
  size_t nt = r + 9 <= 64 ? 64 : 128;
  m->blocks = m->whole + nt / 64;
  memset(m->tail, 0, sizeof m->tail);
  if (r)
    memcpy(m->tail, m->p + 64 * m->whole, r);
  m->tail[r] = 0x80;
  uint64_t bits = (uint64_t)n * 8;
  for (int i = 0; i < 8; i++)
    m->tail[nt - 1 - i] = (unsigned char)(bits >> (8 * i));
}

static const unsigned char *msg_block(const struct msg *m, size_t i)
{
  return i < m->whole ? m->p + 64 * i : m->tail + 64 * (i - m->whole);
}

#define NI_TARGET __attribute__((target("sha,sse4.1,ssse3")))
#define NI_INLINE NI_TARGET inline __attribute__((always_inline))

/* The state as the SHA instructions hold it: (A, B, E, F) and (C, D, G, H), most significant word first. */
NI_INLINE static void ni_load(const uint32_t h[8], __m128i *abef, __m128i *cdgh)
{
  __m128i abcd = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)(const void *)h), 0xb1); /* B A D C */
  __m128i efgh = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)(const void *)(h + 4)), 0x1b); /* H G F E */
  *abef = _mm_alignr_epi8(abcd, efgh, 8);
  *cdgh = _mm_blend_epi16(efgh, abcd, 0xf0);
}

NI_INLINE static void ni_digest(__m128i abef, __m128i cdgh, unsigned char out[GW_SHA256_LEN])
{
  __m128i feba = _mm_shuffle_epi32(abef, 0x1b), dchg = _mm_shuffle_epi32(cdgh, 0xb1);
  __m128i abcd = _mm_blend_epi16(feba, dchg, 0xf0), efgh = _mm_alignr_epi8(dchg, feba, 8);
  const __m128i swap = _mm_set_epi64x(0x0c0d0e0f08090a0bll, 0x0405060700010203ll); /* each word big-endian */
  _mm_storeu_si128((__m128i *)(void *)out, _mm_shuffle_epi8(abcd, swap));
  _mm_storeu_si128((__m128i *)(void *)(out + 16), _mm_shuffle_epi8(efgh, swap));
}

/* One block of each of the first `lanes` states (1 or 2), the lanes' instructions interleaved. */
NI_INLINE static void ni_block(__m128i *abef, __m128i *cdgh, const unsigned char *const *blk, int lanes)
{
  const __m128i swap = _mm_set_epi64x(0x0c0d0e0f08090a0bll, 0x0405060700010203ll);
  __m128i w[2][4], s0[2], s1[2];
  for (int l = 0; l < lanes; l++) {
    s0[l] = abef[l];
    s1[l] = cdgh[l];
  }
#pragma GCC unroll 16
  for (int g = 0; g < 16; g++) { /* four rounds a step */
    __m128i k = _mm_loadu_si128((const __m128i *)(const void *)(K + 4 * g));
#pragma GCC unroll 2
    for (int l = 0; l < lanes; l++) {
      __m128i m;
      if (g < 4)
        m = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(blk[l] + 16 * g)), swap);
      else { /* W[t-16] + s0(W[t-15]), + W[t-7], + s1(W[t-2]) */
        m = _mm_sha256msg1_epu32(w[l][g & 3], w[l][(g + 1) & 3]);
        m = _mm_add_epi32(m, _mm_alignr_epi8(w[l][(g + 3) & 3], w[l][(g + 2) & 3], 4));
        m = _mm_sha256msg2_epu32(m, w[l][(g + 3) & 3]);
      }
      w[l][g & 3] = m;
      __m128i t = _mm_add_epi32(m, k);
      s1[l] = _mm_sha256rnds2_epu32(s1[l], s0[l], t);
      s0[l] = _mm_sha256rnds2_epu32(s0[l], s1[l], _mm_shuffle_epi32(t, 0x0e));
    }
  }
  for (int l = 0; l < lanes; l++) {
    abef[l] = _mm_add_epi32(abef[l], s0[l]);
    cdgh[l] = _mm_add_epi32(cdgh[l], s1[l]);
  }
}

NI_INLINE static void ni_store(__m128i abef, __m128i cdgh, struct gw_sha256_mid *m)
{
  _mm_storeu_si128((__m128i *)(void *)m->s, abef);
  _mm_storeu_si128((__m128i *)(void *)(m->s + 16), cdgh);
}

/* The jobs' digests, the lanes in lockstep from their own first blocks, the longer one going on alone;
 * each lane's checkpoints stored as its blocks pass them. */
NI_TARGET static void ni_jobs(struct gw_sha256_job **j, int lanes)
{
  struct msg m[2];
  __m128i abef[2], cdgh[2];
  size_t at[2], left[2];
  const size_t per_ck = GW_SHA256_CK / 64;
  for (int l = 0; l < lanes; l++) {
    msg_init(&m[l], j[l]->p, j[l]->n);
    if (j[l]->from) {
      abef[l] = _mm_loadu_si128((const __m128i *)(const void *)j[l]->start->s);
      cdgh[l] = _mm_loadu_si128((const __m128i *)(const void *)(j[l]->start->s + 16));
    } else
      ni_load(H0, &abef[l], &cdgh[l]);
    at[l] = j[l]->from / 64;
    left[l] = m[l].blocks - at[l];
  }
  size_t both = lanes == 2 ? (left[0] < left[1] ? left[0] : left[1]) : 0;
  for (size_t i = 0; i < both; i++) {
    const unsigned char *blk[2] = {msg_block(&m[0], at[0]), msg_block(&m[1], at[1])};
    ni_block(abef, cdgh, blk, 2);
    for (int l = 0; l < 2; l++) {
      at[l]++;
      if (j[l]->ck && at[l] % per_ck == 0 && at[l] <= m[l].whole)
        ni_store(abef[l], cdgh[l], &j[l]->ck[at[l] / per_ck - 1]);
    }
  }
  for (int l = 0; l < lanes; l++) {
    for (; at[l] < m[l].blocks; ) {
      const unsigned char *blk[1] = {msg_block(&m[l], at[l])};
      ni_block(&abef[l], &cdgh[l], blk, 1);
      at[l]++;
      if (j[l]->ck && at[l] % per_ck == 0 && at[l] <= m[l].whole)
        ni_store(abef[l], cdgh[l], &j[l]->ck[at[l] / per_ck - 1]);
    }
    ni_digest(abef[l], cdgh[l], j[l]->out);
  }
}

#endif

bool gw_sha256_resumable(void)
{
#ifdef SHA_NI
  return use_ni();
#else
  return false;
#endif
}

void gw_sha256_jobs(struct gw_sha256_job *a, struct gw_sha256_job *b)
{
#ifdef SHA_NI
  if (use_ni()) {
    struct gw_sha256_job *j[2] = {a, b};
    ni_jobs(j, b ? 2 : 1);
    return;
  }
#endif
  use_ni();
  evp(a->p, a->n, a->out);
  if (b)
    evp(b->p, b->n, b->out);
}

void gw_sha256(const void *p, size_t n, unsigned char out[GW_SHA256_LEN])
{
  struct gw_sha256_job j = {.p = p, .n = n};
  gw_sha256_jobs(&j, NULL);
  memcpy(out, j.out, GW_SHA256_LEN);
}

void gw_sha256_pair(const void *a, size_t na, unsigned char out_a[GW_SHA256_LEN], const void *b, size_t nb,
                    unsigned char out_b[GW_SHA256_LEN])
{
  struct gw_sha256_job ja = {.p = a, .n = na}, jb = {.p = b, .n = nb};
  gw_sha256_jobs(&ja, &jb);
  memcpy(out_a, ja.out, GW_SHA256_LEN);
  memcpy(out_b, jb.out, GW_SHA256_LEN);
}
