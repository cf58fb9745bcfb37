/* simhash.c: the 64-bit SimHash of prompt text (simhash.h documents the algorithm). */
#include "normalize/simhash.h"

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

static uint64_t fnv1a64(uint64_t h, const unsigned char *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

#define FNV_OFFSET 0xcbf29ce484222325ull

static void add(int64_t acc[64], uint64_t h)
{
  for (int b = 0; b < 64; b++)
    acc[b] += (h >> b & 1u) ? 1 : -1;
}

static bool word_byte(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80; }

bool gw_simhash(const char *text, size_t n, uint64_t *out)
{
  int64_t acc[64] = {0};
  unsigned char prev[TOKEN_MAX], cur[TOKEN_MAX];
  size_t prevn = 0, curn = 0;
  bool have_prev = false, any = false;
  const unsigned char *p = (const unsigned char *)text;
  for (size_t i = 0; i <= n; i++) {
    unsigned char c = i < n ? p[i] : ' ';
    if (c >= 'A' && c <= 'Z')
      c = (unsigned char)(c - 'A' + 'a');
    bool w = word_byte(c);
    if (w) {
      if (curn < TOKEN_MAX)
        cur[curn] = c;
      curn++;
      continue;
    }
    if (!curn)
      continue;
    size_t len = curn < TOKEN_MAX ? curn : TOKEN_MAX;
    add(acc, fmix64(fnv1a64(FNV_OFFSET, cur, len)));
    if (have_prev) {
      uint64_t h = fnv1a64(FNV_OFFSET, prev, prevn);
      h = fnv1a64(h, (const unsigned char *)" ", 1);
      add(acc, fmix64(fnv1a64(h, cur, len)));
    }
    memcpy(prev, cur, len);
    prevn = len;
    have_prev = any = true;
    curn = 0;
  }
  if (!any)
    return false;
  uint64_t h = 0;
  for (int b = 0; b < 64; b++)
    if (acc[b] > 0)
      h |= 1ull << b;
  *out = h;
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
