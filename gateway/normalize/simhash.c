/* simhash.c: the 64-bit SimHash of prompt text (simhash.h documents the algorithm). */
#include "normalize/simhash.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SH512 1 /* tokens hashed eight at a time with AVX-512, chosen at run time */
#endif

#define TOKEN_MAX 64

static uint64_t fmix64(uint64_t k)
{
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  k ^= k >> 33;
  return k;
}

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

/*
 * The per-bit sums, kept bit-sliced: 64 counters added in parallel, one per bit position. Features are
 * taken 16 at a time through a carry-save adder tree (Harley-Seal: each adder sums three words bit by bit
 * into a sum word and a carry word), which leaves their count in the words ones, twos, fours and eights and
 * one word of carries worth 16; that word is added into the sliced counter of sixteens (plane i holds bit i
 * of each position's count of sixteens), a ripple carry done once per 16 features instead of once per
 * feature. A bit's sum in the algorithm is ones - (n - ones), so it is > 0 exactly when 2 * ones > n.
 */
struct votes {
  uint64_t ones, twos, fours, eights;
  uint64_t plane[64];
  int used;
  uint64_t n;
};

#define CSA(h, l, a, b, c)                                                                                   \
  do {                                                                                                       \
    uint64_t u_ = (a) ^ (b), a_ = (a), b_ = (b), c_ = (c);                                                   \
    (h) = (a_ & b_) | (u_ & c_);                                                                             \
    (l) = u_ ^ c_;                                                                                           \
  } while (0)

static void add16(struct votes *v, const uint64_t *d)
{
  uint64_t twos_a, twos_b, fours_a, fours_b, eights_a, eights_b, sixteens;
  CSA(twos_a, v->ones, v->ones, d[0], d[1]);
  CSA(twos_b, v->ones, v->ones, d[2], d[3]);
  CSA(fours_a, v->twos, v->twos, twos_a, twos_b);
  CSA(twos_a, v->ones, v->ones, d[4], d[5]);
  CSA(twos_b, v->ones, v->ones, d[6], d[7]);
  CSA(fours_b, v->twos, v->twos, twos_a, twos_b);
  CSA(eights_a, v->fours, v->fours, fours_a, fours_b);
  CSA(twos_a, v->ones, v->ones, d[8], d[9]);
  CSA(twos_b, v->ones, v->ones, d[10], d[11]);
  CSA(fours_a, v->twos, v->twos, twos_a, twos_b);
  CSA(twos_a, v->ones, v->ones, d[12], d[13]);
  CSA(twos_b, v->ones, v->ones, d[14], d[15]);
  CSA(fours_b, v->twos, v->twos, twos_a, twos_b);
  CSA(eights_b, v->fours, v->fours, fours_a, fours_b);
  CSA(sixteens, v->eights, v->eights, eights_a, eights_b);
  for (int i = 0; sixteens; i++) {
    uint64_t carry = v->plane[i] & sixteens;
    v->plane[i] ^= sixteens;
    sixteens = carry;
    if (i >= v->used)
      v->used = i + 1;
  }
}

/* The counter at level j: ones, twos, fours, eights, then the planes of sixteens; zero past them. */
static uint64_t level(const struct votes *v, int j)
{
  switch (j) {
  case 0: return v->ones;
  case 1: return v->twos;
  case 2: return v->fours;
  case 3: return v->eights;
  default: return j - 4 < v->used ? v->plane[j - 4] : 0;
  }
}

/* Bit b is set when position b's count of ones is > n / 2 (2 * ones > n, the count being whole). The 64
 * counts are compared with n / 2 at once, bit-sliced, from the most significant level down: gt holds the
 * positions found greater, eq those equal so far. */
static uint64_t tally(const struct votes *v)
{
  uint64_t half = v->n >> 1, gt = 0, eq = ~0ull;
  int top = 63 - __builtin_clzll(half | 1), levels = 4 + v->used;
  for (int j = top > levels - 1 ? top : levels - 1; j >= 0; j--) {
    uint64_t lv = level(v, j);
    if (half >> j & 1)
      eq &= lv;
    else {
      gt |= eq & lv;
      eq &= ~lv;
    }
  }
  return gt;
}

/* Each byte as it enters a token (ASCII letters lowercased), or 0 for a byte that separates tokens. */
static unsigned char token_byte[256];

static void token_table(void)
{
  for (int c = 0; c < 256; c++)
    token_byte[c] = (unsigned char)((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80 ? c
                                    : c >= 'A' && c <= 'Z'                                    ? c - 'A' + 'a'
                                                                                              : 0);
}

static pthread_once_t token_once = PTHREAD_ONCE_INIT;

/* A token ends: its unigram and (after the first token) its bigram are counted, 16 at a time. */
#define TOKEN_END()                                                                                          \
  do {                                                                                                       \
    f[k++] = fmix64(uni);                                                                                    \
    f[k] = fmix64(bi);                                                                                       \
    k += have_prev;                                                                                          \
    if (k >= 16) {                                                                                           \
      add16(&v, f);                                                                                          \
      f[0] = f[16];                                                                                          \
      k -= 16;                                                                                               \
      v.n += 16;                                                                                             \
    }                                                                                                        \
    have_prev = true;                                                                                        \
    bi = (uni ^ (unsigned char)' ') * FNV_PRIME; /* the next pair starts with this token and a space */      \
    uni = FNV_OFFSET;                                                                                        \
    curn = 0;                                                                                                \
  } while (0)

#ifdef SH512
static bool simhash512(const char *text, size_t n, uint64_t *out);
static bool simhash512_part(const char *text, size_t n, struct gw_simhash_part *p);
static bool sh512(void);
#endif

bool gw_simhash_no_avx512;

/* The portable path's votes of text[0, n) (v->n features); *last_bi as in gw_simhash_part. False when the
 * text has no token. */
static bool votes_of(const char *text, size_t n, struct votes *vp, uint64_t *last_bi)
{
  struct votes v;
  memset(&v, 0, sizeof v);
  uint64_t f[17];
  unsigned k = 0;
  /* FNV-1a of the current token (cut to TOKEN_MAX bytes), and of "previous token + ' ' + current token",
   * both carried along byte by byte as the token is read. The text's end closes its last token after the
   * loop, so the loop reads bytes only. */
  uint64_t uni = FNV_OFFSET, bi = FNV_OFFSET;
  size_t curn = 0;
  bool have_prev = false;
  const unsigned char *p = (const unsigned char *)text;
  pthread_once(&token_once, token_table);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = token_byte[p[i]];
    if (c) {
      if (curn < TOKEN_MAX) {
        uni = (uni ^ c) * FNV_PRIME;
        bi = (bi ^ c) * FNV_PRIME;
      }
      curn++;
    } else if (curn)
      TOKEN_END();
  }
  if (curn)
    TOKEN_END();
  if (!have_prev)
    return false;
  v.n += k;
  memset(f + k, 0, (16 - k) * sizeof f[0]); /* the last block filled with zero words: they add nothing */
  add16(&v, f);
  *vp = v;
  *last_bi = bi; /* TOKEN_END left "last token + ' '" there */
  return true;
}

bool gw_simhash(const char *text, size_t n, uint64_t *out)
{
#ifdef SH512
  if (n < UINT32_MAX - 64 && sh512()) /* (token offsets are 32-bit there) */
    return simhash512(text, n, out);
#endif
  struct votes v;
  uint64_t last_bi;
  if (!votes_of(text, n, &v, &last_bi))
    return false;
  *out = tally(&v);
  return true;
}

#ifdef SH512
/*
 * The same SimHash, eight tokens at a time (the sums do not depend on the order features are counted in).
 * - Tokens: 64 bytes a step, a mask of token bytes; its runs' starts and ends are compressed into lists of
 *   offsets (VPCOMPRESSB).
 * - Hashes: a round of up to SH_ROUND tokens is hashed one token a 64-bit lane, eight lanes a group; a lane
 *   reads its token 8 bytes at a time, ASCII upper case lowered in the register: from a 128-byte window of
 *   the text with VPERMI2B when the group's tokens start within it (masked loads: nothing past the text is
 *   read), else with a gather, for which a token ending in the text's last 8 bytes is read from a padded
 *   copy of the text's tail. FNV-1a's multiply is VPMULLQ, each lane stopping where its token (cut to 64
 *   bytes) ends. A bigram's FNV starts from the previous token's unigram ((uni ^ ' ') * prime), so the
 *   bigrams of groups g and g + 1 run beside the unigrams of groups g + 2 and g + 3: four independent
 *   chains (sh_fnv4).
 * - Counts: eight finalized features a step. Their bytes transposed (VPERMB: one word per byte position
 *   holding that byte of each feature), GF2P8AFFINEQB with the matrix of one bit per byte turns each word
 *   into "bit j of the 8 bytes" bytes, whose popcounts are the number of the eight features with each of
 *   the 64 bits set: 64 byte counters, widened to 32 bits before they can overflow. Bit b is set when
 *   2 * count[b] > n, as in tally().
 */
#define SH_TARGET                                                                                            \
  __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vbmi,avx512vbmi2,avx512bitalg,gfni")))
#define SH_INLINE inline __attribute__((always_inline))
#define SH_ROUND 256
#define SH_SLACK 80 /* tokens a block can add past a full round, and the 16-wide stores' overrun */
#define SH_TAIL 72  /* a token read from the tail copy starts at most this far from the text's end */

static bool sh512(void)
{
  static int have = -1;
  int h = __atomic_load_n(&have, __ATOMIC_RELAXED);
  if (h < 0) {
    __builtin_cpu_init();
    h = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vbmi2") &&
        __builtin_cpu_supports("avx512bitalg") && __builtin_cpu_supports("gfni");
    __atomic_store_n(&have, h, __ATOMIC_RELAXED);
  }
  return h && !gw_simhash_no_avx512;
}

struct sh_text {
  const unsigned char *p;
  size_t n;
  const unsigned char *tail; /* text[tail_from, n) then zeros */
  size_t tail_from;
};

struct sh_counts {
  __m512i c8;     /* a byte per bit position, at most 255 features since the last widening */
  __m512i c32[4]; /* 32-bit counts of bit positions 16j .. 16j + 15 */
  unsigned since; /* features in c8 */
  uint64_t n;     /* features counted */
};

SH_TARGET SH_INLINE static void sh_widen(struct sh_counts *c)
{
  c->c32[0] = _mm512_add_epi32(c->c32[0], _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(c->c8, 0)));
  c->c32[1] = _mm512_add_epi32(c->c32[1], _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(c->c8, 1)));
  c->c32[2] = _mm512_add_epi32(c->c32[2], _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(c->c8, 2)));
  c->c32[3] = _mm512_add_epi32(c->c32[3], _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(c->c8, 3)));
  c->c8 = _mm512_setzero_si512();
  c->since = 0;
}

/* The raw FNV values of the lanes in live finalized (fmix64) and counted. */
SH_TARGET SH_INLINE static void sh_count8(struct sh_counts *c, __m512i h, __mmask8 live)
{
  /* byte 8k + i of the transposed register is byte k of lane i */
  static const unsigned char transpose[64] = {
    0, 8,  16, 24, 32, 40, 48, 56, 1, 9,  17, 25, 33, 41, 49, 57, 2, 10, 18, 26, 34, 42, 50, 58,
    3, 11, 19, 27, 35, 43, 51, 59, 4, 12, 20, 28, 36, 44, 52, 60, 5, 13, 21, 29, 37, 45, 53, 61,
    6, 14, 22, 30, 38, 46, 54, 62, 7, 15, 23, 31, 39, 47, 55, 63};
  h = _mm512_xor_si512(h, _mm512_srli_epi64(h, 33));
  h = _mm512_mullo_epi64(h, _mm512_set1_epi64((long long)0xff51afd7ed558ccdull));
  h = _mm512_xor_si512(h, _mm512_srli_epi64(h, 33));
  h = _mm512_mullo_epi64(h, _mm512_set1_epi64((long long)0xc4ceb9fe1a85ec53ull));
  h = _mm512_maskz_xor_epi64(live, h, _mm512_srli_epi64(h, 33));
  unsigned m = (unsigned)__builtin_popcount(live);
  if (c->since + m > 255)
    sh_widen(c);
  __m512i t = _mm512_permutexvar_epi8(_mm512_loadu_si512(transpose), h);
  /* x_j = 1 << j against the word of lane bytes: result byte j, bit i = bit j of the word's byte 7 - i */
  __m512i r = _mm512_gf2p8affine_epi64_epi8(_mm512_set1_epi64((long long)0x8040201008040201ull), t, 0);
  c->c8 = _mm512_add_epi8(c->c8, _mm512_popcnt_epi8(r));
  c->since += m;
  c->n += m;
}

/* A group of up to eight tokens from the offset lists: each lane's address and length (cut to 64 bytes;
 * 0 for dead lanes), a token ending in the last 8 bytes of the text moved to the tail copy. */
struct sh_group {
  __m512i at, len;
  __mmask8 live;
  bool window;         /* the lanes' first bytes lie within 128 bytes: read with VPERMI2B, not a gather */
  __m512i pick;        /* then byte 8i + j is lane i's start - the first lane's start + j */
  const unsigned char *from; /* the first lane's token */
  size_t left;         /* bytes of the text from there */
};

SH_TARGET SH_INLINE static struct sh_group sh_load(const struct sh_text *t, const uint32_t *st, const uint32_t *en, size_t k)
{
  struct sh_group g;
  g.live = (__mmask8)(k >= 8 ? 0xff : (1u << k) - 1);
  __m512i s = _mm512_cvtepu32_epi64(_mm256_maskz_loadu_epi32(g.live, st));
  __m512i e = _mm512_cvtepu32_epi64(_mm256_maskz_loadu_epi32(g.live, en));
  g.len = _mm512_min_epu64(_mm512_sub_epi64(e, s), _mm512_set1_epi64(TOKEN_MAX));
  uint32_t first = k ? st[0] : 0, last = k ? st[(k >= 8 ? 8 : k) - 1] : 0;
  g.window = last - first <= 120;
  g.from = t->p + first;
  g.left = t->n - first;
  g.pick = _mm512_add_epi64(
    _mm512_mullo_epi64(_mm512_sub_epi64(s, _mm512_set1_epi64(first)), _mm512_set1_epi64(0x0101010101010101ll)),
    _mm512_set1_epi64(0x0706050403020100ll));
  g.at = _mm512_add_epi64(s, _mm512_set1_epi64((long long)(uintptr_t)t->p));
  __mmask8 near_end = _mm512_cmpgt_epu64_mask(e, _mm512_set1_epi64((long long)(t->n >= 8 ? t->n - 8 : 0))) &
                      _mm512_cmplt_epu64_mask(g.len, _mm512_set1_epi64(TOKEN_MAX)) & g.live;
  g.at = _mm512_mask_add_epi64(g.at, near_end, g.at,
                               _mm512_set1_epi64((long long)((uintptr_t)t->tail - (uintptr_t)(t->p + t->tail_from))));
  return g;
}

/* 8 bytes of each lane's token from byte w, ASCII upper case lowered (bytes past a token are never used). */
SH_TARGET SH_INLINE static __m512i sh_read(const struct sh_group *g, uint64_t w)
{
  __m512i q;
  if (g->window) { /* masked loads: nothing past the text is read */
    size_t left = g->left > w ? g->left - w : 0;
    __mmask64 lo = left >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << left) - 1;
    __mmask64 hi = left >= 128 ? ~(__mmask64)0 : left <= 64 ? 0 : ((__mmask64)1 << (left - 64)) - 1;
    q = _mm512_permutex2var_epi8(_mm512_maskz_loadu_epi8(lo, g->from + w), g->pick,
                                 _mm512_maskz_loadu_epi8(hi, g->from + w + 64));
  } else {
    __m512i off = _mm512_set1_epi64((long long)w);
    __mmask8 reads = _mm512_cmpgt_epu64_mask(g->len, off);
    q = _mm512_mask_i64gather_epi64(_mm512_setzero_si512(), reads, _mm512_add_epi64(g->at, off), (void *)0, 1);
  }
  __mmask64 up = _mm512_cmple_epu8_mask(_mm512_sub_epi8(q, _mm512_set1_epi8('A')), _mm512_set1_epi8(25));
  return _mm512_mask_blend_epi8(up, q, _mm512_or_si512(q, _mm512_set1_epi8(0x20)));
}

/* FNV-1a over four groups at once: h[j] over g[j]'s tokens, from the value it holds. Four independent
 * multiply chains, because a byte's step waits for the previous byte's VPMULLQ: about 3 cycles on some
 * cores, 15 on others (Intel's), where two chains left the multiplier idle most of the time. A group with no
 * token (len 0) reads nothing and changes nothing. */
SH_TARGET SH_INLINE static void sh_fnv4(const struct sh_group *g, __m512i *h)
{
  /* byte i of each word, zero-extended: VPSHUFB's control for step i (0x80 writes a zero) */
  static const uint64_t byte_at[8][8] __attribute__((aligned(64))) = {
#define SH_B(i) {0xffffffffffffff00ull | (i), 0xffffffffffffff08ull | (i), 0xffffffffffffff00ull | (i),              \
                 0xffffffffffffff08ull | (i), 0xffffffffffffff00ull | (i), 0xffffffffffffff08ull | (i),              \
                 0xffffffffffffff00ull | (i), 0xffffffffffffff08ull | (i)}
    SH_B(0), SH_B(1), SH_B(2), SH_B(3), SH_B(4), SH_B(5), SH_B(6), SH_B(7)
#undef SH_B
  };
  const __m512i prime = _mm512_set1_epi64((long long)FNV_PRIME);
  uint64_t len[4], most = 0;
  __m512i x[4], q[4];
  for (int j = 0; j < 4; j++) {
    len[j] = _mm512_reduce_max_epu64(g[j].len);
    most = len[j] > most ? len[j] : most;
    x[j] = h[j];
  }
  for (uint64_t w = 0; w < most; w += 8) {
    for (int j = 0; j < 4; j++)
      q[j] = w < len[j] ? sh_read(&g[j], w) : _mm512_setzero_si512();
    uint64_t last = most - w < 8 ? most - w : 8;
    for (uint64_t i = 0; i < last; i++) {
      __m512i pos = _mm512_set1_epi64((long long)(w + i)), at = _mm512_load_si512(byte_at[i]);
      for (int j = 0; j < 4; j++)
        x[j] = _mm512_mask_mullo_epi64(x[j], _mm512_cmpgt_epu64_mask(g[j].len, pos),
                                       _mm512_xor_si512(x[j], _mm512_shuffle_epi8(q[j], at)), prime);
    }
  }
  for (int j = 0; j < 4; j++)
    h[j] = x[j];
}

/* One round: the k complete tokens [st[i], en[i]) hashed and counted. u[0] holds the previous round's last
 * unigram (when have_prev) and ends holding this round's; u[1 + i] is token i's. Tokens go 16 a step, two
 * groups of eight: the first step's unigrams alone, then the bigrams of tokens i .. i + 15 beside the
 * unigrams of tokens i + 16 .. i + 31 (a bigram starts from the previous token's unigram, found a step
 * before). */
SH_TARGET static void sh_round(const struct sh_text *t, struct sh_counts *c, const uint32_t *st, const uint32_t *en,
                               size_t k, uint64_t *u, bool have_prev)
{
  const __m512i offset = _mm512_set1_epi64((long long)FNV_OFFSET), prime = _mm512_set1_epi64((long long)FNV_PRIME);
  const __m512i space = _mm512_set1_epi64(' ');
  const struct sh_group none = {.at = _mm512_setzero_si512(), .len = _mm512_setzero_si512(), .window = true};
  struct sh_group g[4] = {sh_load(t, st, en, k), k > 8 ? sh_load(t, st + 8, en + 8, k - 8) : none, none, none};
  __m512i h[4] = {offset, offset, offset, offset};
  sh_fnv4(g, h);
  for (int j = 0; j < 2; j++) {
    _mm512_mask_storeu_epi64(u + 1 + 8 * j, g[j].live, h[j]);
    sh_count8(c, h[j], g[j].live);
  }
  for (size_t i = 0; i < k; i += 16) {
    /* g[0], g[1]: tokens i .. i + 15, whose bigrams are hashed now; g[2], g[3]: the next 16's unigrams */
    for (int j = 0; j < 2; j++)
      h[j] = _mm512_mullo_epi64(_mm512_xor_si512(_mm512_maskz_loadu_epi64(g[j].live, u + i + 8 * j), space), prime);
    size_t more = k > i + 16 ? k - i - 16 : 0;
    g[2] = more ? sh_load(t, st + i + 16, en + i + 16, more) : none;
    g[3] = more > 8 ? sh_load(t, st + i + 24, en + i + 24, more - 8) : none;
    h[2] = h[3] = offset;
    sh_fnv4(g, h);
    for (int j = 2; j < 4; j++)
      if (g[j].live) {
        _mm512_mask_storeu_epi64(u + i + 1 + 8 * j, g[j].live, h[j]);
        sh_count8(c, h[j], g[j].live);
      }
    sh_count8(c, h[0], g[0].live & (i == 0 && !have_prev ? 0xfe : 0xff)); /* the text's first token has no pair */
    if (g[1].live)
      sh_count8(c, h[1], g[1].live);
    g[0] = g[2];
    g[1] = g[3];
  }
  u[0] = u[k];
}

/* The positions of m's set bits, plus base, appended to out (up to 64, written 16 at a time). */
SH_TARGET SH_INLINE static size_t sh_positions(uint32_t *out, uint64_t m, uint32_t base)
{
  static const unsigned char iota[64] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                         16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
                                         32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47,
                                         48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63};
  size_t cnt = (size_t)__builtin_popcountll(m);
  __m512i pos = _mm512_maskz_compress_epi8(m, _mm512_loadu_si512(iota)), b = _mm512_set1_epi32((int)base);
  _mm512_storeu_si512(out, _mm512_add_epi32(_mm512_cvtepu8_epi32(_mm512_castsi512_si128(pos)), b));
  if (cnt > 16) {
    unsigned char tmp[64];
    _mm512_storeu_si512(tmp, pos);
    for (size_t j = 16; j < cnt; j += 16)
      _mm512_storeu_si512(out + j, _mm512_add_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(tmp + j))), b));
  }
  return cnt;
}

/* The token bytes among the n (<= 64) from p: ASCII letters and digits, and bytes >= 0x80. */
SH_TARGET SH_INLINE static uint64_t token_mask(const unsigned char *p, size_t n)
{
  __m512i v = _mm512_maskz_loadu_epi8(n >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << n) - 1, p);
  uint64_t digit = _mm512_cmple_epu8_mask(_mm512_sub_epi8(v, _mm512_set1_epi8('0')), _mm512_set1_epi8(9));
  uint64_t letter = _mm512_cmple_epu8_mask(
    _mm512_sub_epi8(_mm512_or_si512(v, _mm512_set1_epi8(0x20)), _mm512_set1_epi8('a')), _mm512_set1_epi8(25));
  return digit | letter | _mm512_movepi8_mask(v);
}

/* The counts of text[0, n) (widened into c32) and the last token's unigram FNV; false when no token. */
SH_TARGET SH_INLINE static bool sh_counts_of(const char *text, size_t n, struct sh_counts *cp, uint64_t *last_uni)
{
  struct sh_text t = {(const unsigned char *)text, n, NULL, n > SH_TAIL ? n - SH_TAIL : 0};
  unsigned char tail[SH_TAIL + 8];
  memset(tail, 0, sizeof tail);
  memcpy(tail, t.p + t.tail_from, n - t.tail_from);
  t.tail = tail;
  struct sh_counts c;
  memset(&c, 0, sizeof c);
  uint32_t st[SH_ROUND + SH_SLACK], en[SH_ROUND + SH_SLACK];
  uint64_t u[SH_ROUND + SH_SLACK];
  u[0] = 0;
  size_t ns = 0, ne = 0;
  bool have_prev = false;
  uint64_t in = 0; /* the byte before the block is a token byte */
  for (size_t i = 0; i < n; i += 64) {
    size_t m = n - i < 64 ? n - i : 64;
    uint64_t tok = token_mask(t.p + i, m), shifted = tok << 1 | in;
    uint64_t valid = m >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << m) - 1;
    in = tok >> 63;
    ns += sh_positions(st + ns, tok & ~shifted, (uint32_t)i);
    ne += sh_positions(en + ne, ~tok & shifted & valid, (uint32_t)i);
    if (i + m == n && ns > ne)
      en[ne++] = (uint32_t)n; /* the text ends inside a token */
    if (ne >= SH_ROUND || i + m == n) {
      if (ne) {
        sh_round(&t, &c, st, en, ne, u, have_prev);
        have_prev = true;
      }
      if (ns > ne) /* a token still open: the next round's first */
        st[0] = st[ne];
      ns -= ne;
      ne = 0;
    }
  }
  if (!have_prev)
    return false;
  sh_widen(&c);
  *cp = c;
  *last_uni = u[0];
  return true;
}

SH_TARGET static bool simhash512(const char *text, size_t n, uint64_t *out)
{
  struct sh_counts c;
  uint64_t last_uni;
  if (!sh_counts_of(text, n, &c, &last_uni))
    return false;
  uint64_t bits = 0;
  const __m512i half = _mm512_set1_epi32((int)(c.n >> 1));
  /* 2 * count > n, the count being whole: count > n / 2 rounded down */
  for (int j = 0; j < 4; j++)
    bits |= (uint64_t)_mm512_cmpgt_epu32_mask(c.c32[j], half) << (16 * j);
  *out = bits;
  return true;
}

SH_TARGET static bool simhash512_part(const char *text, size_t n, struct gw_simhash_part *p)
{
  struct sh_counts c;
  uint64_t last_uni;
  if (!sh_counts_of(text, n, &c, &last_uni))
    return false;
  for (int j = 0; j < 4; j++)
    _mm512_storeu_si512(p->cnt + 16 * j, c.c32[j]); /* lane i of c32[j]: bit 16j + i */
  p->n = c.n;
  p->last_bi = (last_uni ^ (unsigned char)' ') * FNV_PRIME;
  return true;
}
#endif

/* Four bits at a time (one call a span): a nibble's four characters, most significant bit first. */
static const char nibble_bits[16][4] = {"0000", "0001", "0010", "0011", "0100", "0101", "0110", "0111",
                                        "1000", "1001", "1010", "1011", "1100", "1101", "1110", "1111"};

void gw_simhash_bits(uint64_t h, char out[65])
{
  for (int i = 0; i < 16; i++)
    memcpy(out + 4 * i, nibble_bits[h >> (60 - 4 * i) & 0xf], 4);
  out[64] = 0;
}

bool gw_simhash_parse_bits(const char *s, uint64_t *out)
{
  if (!s || strlen(s) != 64)
    return false;
  uint64_t h = 0;
  for (int i = 0; i < 64; i++) {
    if (s[i] != '0' && s[i] != '1')
      return false;
    h = h << 1 | (uint64_t)(s[i] == '1');
  }
  *out = h;
  return true;
}

bool gw_simhash_part(const char *text, size_t n, struct gw_simhash_part *p)
{
  p->any = false;
  if (!n) /* (text may then be NULL) */
    return false;
  bool ok = false;
#ifdef SH512
  if (n < UINT32_MAX - 64 && sh512())
    ok = simhash512_part(text, n, p);
  else
#endif
  {
    struct votes v;
    ok = votes_of(text, n, &v, &p->last_bi);
    if (ok) {
      /* position b's count of ones from the bit-sliced levels */
      memset(p->cnt, 0, sizeof p->cnt);
      for (int j = 0; j < 4 + v.used; j++) {
        uint64_t lv = level(&v, j);
        for (; lv; lv &= lv - 1)
          p->cnt[__builtin_ctzll(lv)] += 1u << j;
      }
      p->n = v.n;
    }
  }
  if (!ok)
    return false;
  /* the first token, as its bigram with the previous part's last token reads it */
  pthread_once(&token_once, token_table);
  const unsigned char *t = (const unsigned char *)text;
  size_t i = 0;
  while (i < n && !token_byte[t[i]])
    i++;
  uint8_t fl = 0;
  for (; i < n && token_byte[t[i]] && fl < TOKEN_MAX; i++)
    p->first[fl++] = token_byte[t[i]];
  p->first_len = fl;
  p->any = true;
  return true;
}

void gw_simhash_join_init(struct gw_simhash_join *j) { memset(j, 0, sizeof *j); }

void gw_simhash_join_add(struct gw_simhash_join *j, const struct gw_simhash_part *p)
{
  if (!p->any)
    return;
  if (j->any) { /* the bigram across the '\n' */
    uint64_t h = j->last_bi;
    for (unsigned i = 0; i < p->first_len; i++)
      h = (h ^ p->first[i]) * FNV_PRIME;
    h = fmix64(h);
    for (; h; h &= h - 1)
      j->cnt[__builtin_ctzll(h)]++;
    j->n++;
  }
  for (int b = 0; b < 64; b++)
    j->cnt[b] += p->cnt[b];
  j->n += p->n;
  j->last_bi = p->last_bi;
  j->any = true;
}

bool gw_simhash_join_end(const struct gw_simhash_join *j, uint64_t *out)
{
  if (!j->any)
    return false;
  uint64_t bits = 0, half = j->n >> 1;
  for (int b = 0; b < 64; b++)
    bits |= (uint64_t)(j->cnt[b] > half) << b;
  *out = bits;
  return true;
}
