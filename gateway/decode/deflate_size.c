/*
 * deflate_size.c: how many bytes a gzip or zlib body inflates to, found by reading its deflate codes
 * (RFC 1951) without writing any output: literals count one, a match counts its length. The work is
 * proportional to the compressed size, not to the output, so a gzip bomb (matches of 258 bytes at a
 * distance of 1 or 2, about 1000 output bytes per input byte) is told in about the time its wire bytes
 * take to read, where inflating it up to the request's cap took tens of ms of CPU and page faults.
 *
 * Key decisions:
 * - It only answers "exactly N bytes" or "more than limit", and says "cannot tell" for anything it does
 *   not fully check (a preset dictionary, truncated input, bad code tables, a distance before the start,
 *   trailing bytes that are not another gzip member): gw_inflate then inflates as before and gives zlib's
 *   error. "More than limit" is only said once matches and literals already counted pass the limit, so a
 *   valid body within the limit is never refused by it. Checksums are not verified (zlib does that).
 * - Canonical Huffman codes are decoded a bit at a time (puff-style count/symbol tables): simple to
 *   check, and fast enough since it runs only on bodies that already inflate at a high ratio.
 */
#include <string.h>

#include "decode/decode.h"

#define MAXBITS 15
#define MAXLCODES 286
#define MAXDCODES 30
#define FIXLCODES 288

struct in {
  const unsigned char *p;
  size_t len, pos;
  uint32_t bitbuf;
  int bitcnt;
  bool eof;
};

struct huff {
  short count[MAXBITS + 1];
  short symbol[FIXLCODES];
};

static uint32_t bits(struct in *s, int need)
{
  uint64_t val = s->bitbuf;
  while (s->bitcnt < need) {
    if (s->pos == s->len) {
      s->eof = true;
      return 0;
    }
    val |= (uint64_t)s->p[s->pos++] << s->bitcnt;
    s->bitcnt += 8;
  }
  s->bitbuf = (uint32_t)(val >> need);
  s->bitcnt -= need;
  return (uint32_t)(val & ((1u << need) - 1));
}

/* A symbol, or -1 (no such code, or end of input). */
static int decode(struct in *s, const struct huff *h)
{
  int code = 0, first = 0, index = 0;
  for (int len = 1; len <= MAXBITS; len++) {
    code |= (int)bits(s, 1);
    if (s->eof)
      return -1;
    int count = h->count[len];
    if (code - count < first)
      return h->symbol[index + (code - first)];
    index += count;
    first += count;
    first <<= 1;
    code <<= 1;
  }
  return -1;
}

/* Build the tables from code lengths. 0 for a complete code, > 0 incomplete, < 0 over-subscribed. */
static int construct(struct huff *h, const short *length, int n)
{
  short offs[MAXBITS + 1];
  memset(h->count, 0, sizeof h->count);
  for (int i = 0; i < n; i++)
    h->count[length[i]]++;
  if (h->count[0] == n)
    return 0;
  int left = 1;
  for (int len = 1; len <= MAXBITS; len++) {
    left <<= 1;
    left -= h->count[len];
    if (left < 0)
      return left;
  }
  offs[1] = 0;
  for (int len = 1; len < MAXBITS; len++)
    offs[len + 1] = (short)(offs[len] + h->count[len]);
  for (int i = 0; i < n; i++)
    if (length[i])
      h->symbol[offs[length[i]]++] = (short)i;
  return left;
}

static const short LBASE[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const short LEXT[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const short DBASE[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
                                257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const short DEXT[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

enum { DONE = 0, OVER = 1, UNKNOWN = -1 };

/* The codes of one block: *member counts this member's output (distances may not reach before it), *total
 * the whole body's. */
static int codes(struct in *s, const struct huff *lc, const struct huff *dc, size_t *member, size_t *total, size_t limit)
{
  for (;;) {
    int sym = decode(s, lc);
    if (sym < 0)
      return UNKNOWN;
    if (sym < 256) {
      (*member)++;
      if (++*total > limit)
        return OVER;
      continue;
    }
    if (sym == 256)
      return DONE;
    sym -= 257;
    if (sym >= 29)
      return UNKNOWN;
    size_t len = (size_t)LBASE[sym] + bits(s, LEXT[sym]);
    int ds = decode(s, dc);
    if (ds < 0 || ds >= 30)
      return UNKNOWN;
    size_t dist = (size_t)DBASE[ds] + bits(s, DEXT[ds]);
    if (s->eof || dist > *member)
      return UNKNOWN;
    *member += len;
    *total += len;
    if (*total > limit)
      return OVER;
  }
}

static int fixed(struct in *s, size_t *member, size_t *total, size_t limit)
{
  /* the fixed tables (RFC 1951 §3.2.6), built once per thread */
  static _Thread_local bool built;
  static _Thread_local struct huff tl_lc, tl_dc;
  if (!built) {
    short lengths[FIXLCODES];
    int i = 0;
    for (; i < 144; i++)
      lengths[i] = 8;
    for (; i < 256; i++)
      lengths[i] = 9;
    for (; i < 280; i++)
      lengths[i] = 7;
    for (; i < FIXLCODES; i++)
      lengths[i] = 8;
    construct(&tl_lc, lengths, FIXLCODES);
    for (i = 0; i < MAXDCODES; i++)
      lengths[i] = 5;
    construct(&tl_dc, lengths, MAXDCODES);
    built = true;
  }
  return codes(s, &tl_lc, &tl_dc, member, total, limit);
}

static int dynamic(struct in *s, size_t *member, size_t *total, size_t limit)
{
  static const short order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
  short lengths[MAXLCODES + MAXDCODES];
  struct huff lc, dc;
  int nlen = (int)bits(s, 5) + 257;
  int ndist = (int)bits(s, 5) + 1;
  int ncode = (int)bits(s, 4) + 4;
  if (s->eof || nlen > MAXLCODES || ndist > MAXDCODES)
    return UNKNOWN;
  int i = 0;
  for (; i < ncode; i++)
    lengths[order[i]] = (short)bits(s, 3);
  for (; i < 19; i++)
    lengths[order[i]] = 0;
  if (s->eof || construct(&lc, lengths, 19) != 0)
    return UNKNOWN;
  for (i = 0; i < nlen + ndist;) {
    int sym = decode(s, &lc);
    if (sym < 0)
      return UNKNOWN;
    if (sym < 16) {
      lengths[i++] = (short)sym;
      continue;
    }
    short len = 0;
    int rep;
    if (sym == 16) {
      if (i == 0)
        return UNKNOWN;
      len = lengths[i - 1];
      rep = 3 + (int)bits(s, 2);
    } else if (sym == 17) {
      rep = 3 + (int)bits(s, 3);
    } else {
      rep = 11 + (int)bits(s, 7);
    }
    if (s->eof || i + rep > nlen + ndist)
      return UNKNOWN;
    while (rep--)
      lengths[i++] = len;
  }
  if (lengths[256] == 0)
    return UNKNOWN;
  /* zlib refuses incomplete codes except a single one-bit code */
  int err = construct(&lc, lengths, nlen);
  if (err < 0 || (err > 0 && nlen - lc.count[0] != 1))
    return UNKNOWN;
  err = construct(&dc, lengths + nlen, ndist);
  if (err < 0 || (err > 0 && ndist - dc.count[0] != 1))
    return UNKNOWN;
  return codes(s, &lc, &dc, member, total, limit);
}

/* One raw deflate stream from s->pos. */
static int stream(struct in *s, size_t *total, size_t limit)
{
  size_t member = 0;
  s->bitbuf = 0;
  s->bitcnt = 0;
  for (;;) {
    uint32_t last = bits(s, 1);
    uint32_t type = bits(s, 2);
    if (s->eof)
      return UNKNOWN;
    int r;
    if (type == 0) {
      s->bitbuf = 0;
      s->bitcnt = 0;
      if (s->len - s->pos < 4)
        return UNKNOWN;
      size_t n = s->p[s->pos] | (size_t)s->p[s->pos + 1] << 8;
      size_t nn = s->p[s->pos + 2] | (size_t)s->p[s->pos + 3] << 8;
      s->pos += 4;
      if (n != (~nn & 0xffff) || s->len - s->pos < n)
        return UNKNOWN;
      s->pos += n;
      member += n;
      *total += n;
      r = *total > limit ? OVER : DONE;
    } else if (type == 1) {
      r = fixed(s, &member, total, limit);
    } else if (type == 2) {
      r = dynamic(s, &member, total, limit);
    } else {
      return UNKNOWN;
    }
    if (r != DONE || last)
      return r;
  }
}

/* A gzip member's header (RFC 1952 §2.3); false when it is not one. */
static bool gzip_header(struct in *s)
{
  const unsigned char *p = s->p + s->pos;
  size_t left = s->len - s->pos;
  if (left < 10 || p[0] != 0x1f || p[1] != 0x8b || p[2] != 8 || (p[3] & 0xe0))
    return false;
  unsigned flg = p[3];
  size_t i = 10;
  if (flg & 4) {
    if (left - i < 2)
      return false;
    i += 2 + (p[i] | (size_t)p[i + 1] << 8);
  }
  for (unsigned f = 8; f <= 16; f <<= 1)
    if (flg & f) {
      while (i < left && p[i])
        i++;
      i++;
    }
  if (flg & 2)
    i += 2;
  if (i > left)
    return false;
  s->pos += i;
  return true;
}

int gw_deflate_size(const void *body, size_t len, size_t limit, size_t *out)
{
  struct in s = {.p = body, .len = len};
  size_t total = 0;
  int r;
  *out = 0;
  if (len >= 2 && s.p[0] != 0x1f && (s.p[0] & 0x0f) == 8 && (s.p[0] >> 4) <= 7 && ((s.p[0] << 8) | s.p[1]) % 31 == 0) {
    /* zlib (RFC 1950), as windowBits 15+32 takes it: one stream, no preset dictionary */
    if (s.p[1] & 0x20)
      return UNKNOWN;
    s.pos = 2;
    r = stream(&s, &total, limit);
    *out = total;
    return r == DONE && s.len - s.pos == 4 ? DONE : r == OVER ? OVER : UNKNOWN;
  }
  do {
    if (!gzip_header(&s))
      return UNKNOWN;
    r = stream(&s, &total, limit);
    *out = total;
    if (r != DONE)
      return r;
    if (s.len - s.pos < 8)
      return UNKNOWN;
    s.pos += 8; /* CRC32 and ISIZE: zlib checks them */
  } while (s.pos < s.len);
  return DONE;
}
