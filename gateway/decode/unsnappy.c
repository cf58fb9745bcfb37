/*
 * unsnappy.c: snappy request bodies (HTTP Content-Encoding: snappy or x-snappy-framed) into the request
 * arena, under the caps gzip, deflate and zstd bodies have (inflate.c): max_bytes, and the ratio cap
 * max(ratio_min_bytes, max_ratio x compressed size).
 *
 * Two formats go by the name. The block format (one varint stating the uncompressed length, then the
 * elements) is what "snappy" means in HTTP elsewhere; the framing format (google/snappy's
 * framing_format.txt: a stream identifier chunk, then chunks of at most 64 KiB each with a masked CRC-32C
 * of their data) is what the OpenTelemetry Collector's exporters sent as "snappy" until its
 * confighttp.framedSnappy change, and what "x-snappy-framed" names. The Collector's receivers tell them
 * apart by the stream identifier's 10 bytes at the start of the body, and so does this file, for both
 * names: a sender of either kind is understood.
 *
 * Sizes come first, decoding second. A block states its length; the framed chunks' lengths are summed from
 * their headers (a compressed chunk's from its block's varint) without decoding. Past the limit is
 * TOO_LARGE at once, so a bomb costs the time to read its headers and no memory. Within it the output is
 * one arena buffer of exactly that size, decoded into in one pass: snappy needs no window of its own.
 * Corrupt data, a length that does not match the data, a bad CRC, a missing stream identifier, a reserved
 * unskippable chunk, a truncated chunk or bytes after the block are BAD_GZIP (the error kind for a body that
 * does not decompress); messages give positions and sizes, never content.
 */
#include <pthread.h>
#include <snappy-c.h>
#include <stdio.h>
#include <string.h>

#include "decode/decode.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <nmmintrin.h>
#define SN_HW 1
#endif

/* ---- CRC-32C (Castagnoli), which the framing format checks each chunk's data with ---- */

static uint32_t crc_table[256];
static bool crc_hw;

/* The SSE 4.2 path runs three lanes of LANE bytes at once (the instruction's latency is three times its
 * throughput) and joins them: the raw CRC is linear, raw(c, A B) = shift(raw(c, A)) ^ raw(0, B), shift being
 * the state after LANE zero bytes, a linear map kept as four byte tables (built once from the 32 states of
 * one set bit). */
#define LANE 2048
static uint32_t shift_tab[4][256];

static inline uint32_t shift(uint32_t c)
{
  return shift_tab[0][c & 0xff] ^ shift_tab[1][c >> 8 & 0xff] ^ shift_tab[2][c >> 16 & 0xff] ^ shift_tab[3][c >> 24];
}

static void crc_init(void)
{
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++)
      c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    crc_table[i] = c;
  }
  uint32_t basis[32];
  for (int i = 0; i < 32; i++) {
    uint32_t c = 1u << i;
    for (int k = 0; k < LANE; k++)
      c = crc_table[c & 0xff] ^ (c >> 8);
    basis[i] = c;
  }
  for (int k = 0; k < 4; k++)
    for (unsigned b = 0; b < 256; b++) {
      uint32_t v = 0;
      for (int j = 0; j < 8; j++)
        if (b >> j & 1)
          v ^= basis[8 * k + j];
      shift_tab[k][b] = v;
    }
#ifdef SN_HW
  unsigned a, b, c, d;
  crc_hw = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_2);
#endif
}

static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

#ifdef SN_HW
__attribute__((target("sse4.2"))) static uint32_t crc_sse42(uint32_t crc, const unsigned char *p, size_t n)
{
  for (; n >= 3 * LANE; p += 3 * LANE, n -= 3 * LANE) {
    uint64_t a = crc, b = 0, d = 0, x, y, z;
    for (size_t i = 0; i < LANE; i += 8) {
      memcpy(&x, p + i, 8);
      memcpy(&y, p + LANE + i, 8);
      memcpy(&z, p + 2 * LANE + i, 8);
      a = _mm_crc32_u64(a, x);
      b = _mm_crc32_u64(b, y);
      d = _mm_crc32_u64(d, z);
    }
    crc = shift(shift((uint32_t)a) ^ (uint32_t)b) ^ (uint32_t)d;
  }
  uint64_t c = crc;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
  }
  uint32_t c32 = (uint32_t)c;
  for (; n; p++, n--)
    c32 = _mm_crc32_u8(c32, *p);
  return c32;
}
#endif

/* The CRC-32C of [p, p + n) (the framing format's checksum before masking). */
bool gw_crc32c_portable_only;

uint32_t gw_crc32c(const void *p, size_t n)
{
  pthread_once(&crc_once, crc_init);
  const unsigned char *b = p;
  uint32_t c = 0xffffffffu;
#ifdef SN_HW
  if (crc_hw && !gw_crc32c_portable_only)
    return ~crc_sse42(c, b, n);
#endif
  for (size_t i = 0; i < n; i++)
    c = crc_table[(c ^ b[i]) & 0xff] ^ (c >> 8);
  return ~c;
}

static uint32_t masked_crc(const void *p, size_t n)
{
  uint32_t c = gw_crc32c(p, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

/* ---- the framing format ---- */

static const unsigned char stream_id[10] = {0xff, 0x06, 0x00, 0x00, 's', 'N', 'a', 'P', 'p', 'Y'};

bool gw_snappy_framed(const void *in, size_t in_len)
{
  return in_len >= sizeof stream_id && memcmp(in, stream_id, sizeof stream_id) == 0;
}

#define CHUNK_MAX 65536 /* a chunk's uncompressed data, at most */

enum { CH_COMPRESSED = 0x00, CH_PLAIN = 0x01, CH_PADDING = 0xfe, CH_STREAM = 0xff };

static gw_rc bad(struct gw_err *err, const char *what, size_t at)
{
  return gw_err_set(err, GW_ERR(BAD_GZIP), "snappy (framed): %s at input byte %zu", what, at);
}

/* One pass over the chunks: checks their framing and, when out is NULL, sums their uncompressed sizes into
 * *total (stopping past limit: *total is then over it); when out is set, decodes them into it (room for
 * *total bytes, as the first pass found). */
static gw_rc framed_pass(const unsigned char *in, size_t in_len, size_t limit, unsigned char *out, size_t *total,
                         struct gw_err *err)
{
  size_t at = 0, got = 0;
  bool seen_id = false;
  while (at < in_len) {
    if (in_len - at < 4)
      return bad(err, "truncated chunk header", at);
    unsigned type = in[at];
    size_t len = (size_t)in[at + 1] | (size_t)in[at + 2] << 8 | (size_t)in[at + 3] << 16;
    size_t data = at + 4;
    if (len > in_len - data)
      return bad(err, "truncated chunk", at);
    if (type == CH_STREAM) {
      if (len != 6 || memcmp(in + data, stream_id + 4, 6))
        return bad(err, "bad stream identifier", at);
      seen_id = true;
    } else if (!seen_id) {
      return bad(err, "no stream identifier", at);
    } else if (type == CH_COMPRESSED || type == CH_PLAIN) {
      if (len < 4)
        return bad(err, "chunk shorter than its checksum", at);
      const unsigned char *d = in + data + 4;
      size_t dlen = len - 4, n = dlen;
      if (type == CH_COMPRESSED &&
          (snappy_uncompressed_length((const char *)d, dlen, &n) != SNAPPY_OK || n > CHUNK_MAX))
        return bad(err, n > CHUNK_MAX ? "chunk states more than 64 KiB" : "corrupt chunk", at);
      if (type == CH_PLAIN && n > CHUNK_MAX)
        return bad(err, "chunk holds more than 64 KiB", at);
      if (!out) {
        got += n;
        if (got > limit) {
          *total = got;
          return GW_OK;
        }
      } else {
        unsigned char *o = out + got;
        if (n > *total - got)
          return bad(err, "chunk sizes changed", at); /* (the body is read once each pass; never reached) */
        if (type == CH_PLAIN) {
          memcpy(o, d, n);
        } else {
          size_t m = n;
          if (snappy_uncompress((const char *)d, dlen, (char *)o, &m) != SNAPPY_OK || m != n)
            return bad(err, "corrupt chunk", at);
        }
        uint32_t want = (uint32_t)in[data] | (uint32_t)in[data + 1] << 8 | (uint32_t)in[data + 2] << 16 |
                        (uint32_t)in[data + 3] << 24;
        if (masked_crc(o, n) != want)
          return bad(err, "checksum mismatch", at);
        got += n;
      }
    } else if (type >= 0x02 && type <= 0x7f) {
      char what[48];
      snprintf(what, sizeof what, "reserved unskippable chunk 0x%02x", type);
      return bad(err, what, at);
    } /* padding and reserved skippable chunks (0x80-0xfe): skipped */
    at = data + len;
  }
  if (!seen_id)
    return bad(err, "no stream identifier", 0);
  *total = got;
  return GW_OK;
}

/* ---- both ---- */

static gw_rc oom(struct gw_err *err)
{
  return gw_err_set(err, GW_ERR(TOO_LARGE), "snappy: request needs more memory than the per-request limit");
}

gw_rc gw_unsnappy(struct gw_arena *a, const void *in, size_t in_len, const struct gw_decode_limits *lim, void **out,
                  size_t *out_len, struct gw_err *err)
{
  bool by_ratio;
  size_t limit = gw_decompress_limit(in_len, lim, &by_ratio), n;
  *out = NULL;
  *out_len = 0;
  if (in_len == 0)
    return gw_err_set(err, GW_ERR(BAD_GZIP), "compressed body is empty");
  bool framed = gw_snappy_framed(in, in_len);
  const char *fmt = framed ? "snappy (framed)" : "snappy";
  if (framed) {
    gw_rc rc = framed_pass(in, in_len, limit, NULL, &n, err);
    if (rc)
      return rc;
  } else if (snappy_uncompressed_length(in, in_len, &n) != SNAPPY_OK) {
    return gw_err_set(err, GW_ERR(BAD_GZIP), "snappy: no valid length at the start of the body");
  }
  if (n > limit)
    return gw_decompress_too_large(err, fmt, lim, limit, by_ratio, in_len);
  unsigned char *buf = gw_arena_alloc(a, n + 1); /* + 1: the NUL the decoders' output ends with */
  if (!buf)
    return oom(err);
  if (framed) {
    gw_rc rc = framed_pass(in, in_len, limit, buf, &n, err);
    if (rc)
      return rc;
  } else {
    size_t m = n;
    if (snappy_uncompress(in, in_len, (char *)buf, &m) != SNAPPY_OK || m != n) /* (safe on any input) */
      return gw_err_set(err, GW_ERR(BAD_GZIP), "snappy: corrupt body (%zu bytes stating %zu)", in_len, n);
  }
  buf[n] = 0;
  *out = buf;
  *out_len = n;
  return GW_OK;
}
