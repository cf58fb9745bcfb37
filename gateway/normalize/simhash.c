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
 * The per-bit sums, kept as bit-sliced counters: plane i holds bit i of the count of features that have
 * each of the 64 bits set (64 counters added in parallel, a ripple carry that stops after about two planes
 * on average), instead of 64 additions per feature. A bit's sum in the algorithm is ones - (n - ones), so
 * it is > 0 exactly when ones > n - ones.
 */
struct votes {
  uint64_t plane[64];
  int used;
  uint64_t n;
};

static void vote(struct votes *v, uint64_t h)
{
  v->n++;
  for (int i = 0; h; i++) {
    uint64_t carry = v->plane[i] & h;
    v->plane[i] ^= h;
    h = carry;
    if (i >= v->used)
      v->used = i + 1;
  }
}

static uint64_t tally(const struct votes *v)
{
  uint64_t out = 0;
  for (int b = 0; b < 64; b++) {
    uint64_t ones = 0;
    for (int i = 0; i < v->used; i++)
      ones |= (v->plane[i] >> b & 1u) << i;
    if (ones > v->n - ones)
      out |= 1ull << b;
  }
  return out;
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

bool gw_simhash(const char *text, size_t n, uint64_t *out)
{
  struct votes v = {{0}, 0, 0};
  /* FNV-1a of the current token (cut to TOKEN_MAX bytes), and of "previous token + ' ' + current token",
   * both carried along byte by byte as the token is read. */
  uint64_t uni = FNV_OFFSET, bi = FNV_OFFSET;
  size_t curn = 0;
  bool have_prev = false;
  const unsigned char *p = (const unsigned char *)text;
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, token_table);
  for (size_t i = 0; i <= n; i++) {
    unsigned char c = i < n ? token_byte[p[i]] : 0;
    if (c) {
      if (curn < TOKEN_MAX) {
        uni = (uni ^ c) * FNV_PRIME;
        bi = (bi ^ c) * FNV_PRIME;
      }
      curn++;
      continue;
    }
    if (!curn)
      continue;
    vote(&v, fmix64(uni));
    if (have_prev)
      vote(&v, fmix64(bi));
    have_prev = true;
    bi = (uni ^ (unsigned char)' ') * FNV_PRIME; /* the next pair starts with this token and a space */
    uni = FNV_OFFSET;
    curn = 0;
  }
  if (!have_prev)
    return false;
  *out = tally(&v);
  return true;
}

void gw_simhash_bits(uint64_t h, char out[65])
{
  for (int i = 0; i < 64; i++)
    out[i] = (h >> (63 - i) & 1u) ? '1' : '0';
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
