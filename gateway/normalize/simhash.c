/* simhash.c: the 64-bit SimHash of prompt text (simhash.h documents the algorithm). */
#include "normalize/simhash.h"

#include <pthread.h>
#include <string.h>

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

bool gw_simhash(const char *text, size_t n, uint64_t *out)
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
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, token_table);
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
  *out = tally(&v);
  return true;
}

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
