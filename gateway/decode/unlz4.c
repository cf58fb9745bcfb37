/*
 * unlz4.c: lz4 request bodies (HTTP Content-Encoding: lz4, the OpenTelemetry Collector's compression: lz4,
 * which writes the LZ4 frame format) into the request arena, under the caps the other codings have
 * (inflate.c): max_bytes, and the ratio cap max(ratio_min_bytes, max_ratio x compressed size).
 *
 * The frames are read here (lz4_Frame_format.md: frame descriptor and its checksum, blocks stored or
 * compressed, block and content checksums, skippable frames, frames back to back) and each block is decoded
 * by liblz4's block decoder straight into one output buffer: linked blocks take the frame's output before
 * them as their dictionary, in place. liblz4's own frame decoder was not used: it allocates two buffers of
 * the frame's block size (4 MiB each for the Collector's frames) for every body and copies each block through
 * one of them, which cost more than the decoding (bench/README.md, "Compressed bodies").
 *
 * Sizes come first, decoding second, as for snappy: a first pass over the frames' headers finds the output's
 * size (a frame's stated content size, a stored block's size) or a bound (the block size for each compressed
 * block); when that bound is past the limit or far past the body, the compressed blocks' sequences are
 * walked to add up their exact output without writing it. Past the limit is TOO_LARGE with nothing decoded;
 * within it the body is decoded in one pass into a buffer of that size. A frame needing a dictionary (none
 * is known), a bad checksum, corrupt data, a size that does not match, a truncated frame or bytes that are
 * not a frame are BAD_GZIP (the error kind for a body that does not decompress); messages give positions and
 * sizes, never content.
 */
#include <lz4.h>
#include <stdio.h>
#include <string.h>

#include "decode/decode.h"

/* ---- XXH32, the frame format's checksum ---- */

#define P1 2654435761u
#define P2 2246822519u
#define P3 3266489917u
#define P4 668265263u
#define P5 374761393u

static inline uint32_t rotl(uint32_t x, int r) { return x << r | x >> (32 - r); }

static inline uint32_t rd32(const unsigned char *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint32_t round32(uint32_t acc, uint32_t in) { return rotl(acc + in * P2, 13) * P1; }

uint32_t gw_xxh32(const void *data, size_t len, uint32_t seed)
{
  const unsigned char *p = data, *end = p + len;
  uint32_t h;
  if (len >= 16) {
    uint32_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
    for (; end - p >= 16; p += 16) {
      v1 = round32(v1, rd32(p));
      v2 = round32(v2, rd32(p + 4));
      v3 = round32(v3, rd32(p + 8));
      v4 = round32(v4, rd32(p + 12));
    }
    h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
  } else {
    h = seed + P5;
  }
  h += (uint32_t)len;
  for (; end - p >= 4; p += 4)
    h = rotl(h + rd32(p) * P3, 17) * P4;
  for (; p < end; p++)
    h = rotl(h + *p * P5, 11) * P1;
  h ^= h >> 15;
  h *= P2;
  h ^= h >> 13;
  h *= P3;
  h ^= h >> 16;
  return h;
}

/* ---- frames ---- */

#define MAGIC 0x184d2204u
#define SKIP_MAGIC 0x184d2a50u /* to 0x184d2a5f */
#define LEGACY_MAGIC 0x184c2102u
#define UNCOMPRESSED 0x80000000u

enum { F_DICT = 0x01, F_CCHECK = 0x04, F_CSIZE = 0x08, F_BCHECK = 0x10, F_INDEP = 0x20 };

struct frame {
  unsigned flg;
  size_t block_max;
  bool sized;
  uint64_t size;
  size_t data; /* the first block's offset */
};

static gw_rc bad(struct gw_err *err, const char *what, size_t at)
{
  return gw_err_set(err, GW_ERR(BAD_GZIP), "lz4: %s at input byte %zu", what, at);
}

static gw_rc truncated(struct gw_err *err, size_t in_len)
{
  return gw_err_set(err, GW_ERR(BAD_GZIP), "lz4: truncated after %zu input bytes", in_len);
}

/* The frame descriptor at in + at (after its magic number): checked, into f. */
static gw_rc descriptor(const unsigned char *in, size_t in_len, size_t at, struct frame *f, struct gw_err *err)
{
  size_t d = at + 4;
  if (in_len - d < 3)
    return truncated(err, in_len);
  unsigned flg = in[d], bd = in[d + 1];
  if ((flg >> 6) != 1)
    return bad(err, "unsupported frame version", at);
  if ((flg & 0x02) || (bd & 0x8f))
    return bad(err, "reserved flag set in the frame header", at);
  unsigned id = bd >> 4 & 7;
  if (id < 4)
    return bad(err, "invalid block size in the frame header", at);
  size_t hlen = 2 + (flg & F_CSIZE ? 8 : 0) + (flg & F_DICT ? 4 : 0);
  if (in_len - d < hlen + 1)
    return truncated(err, in_len);
  if ((gw_xxh32(in + d, hlen, 0) >> 8 & 0xff) != in[d + hlen])
    return bad(err, "frame header checksum mismatch", at);
  if (flg & F_DICT)
    return bad(err, "frame needs a dictionary", at);
  f->flg = flg;
  f->block_max = (size_t)1 << (8 + 2 * id); /* 64 KiB, 256 KiB, 1 MiB, 4 MiB */
  f->sized = flg & F_CSIZE;
  f->size = 0;
  for (int i = 7; f->sized && i >= 0; i--)
    f->size = f->size << 8 | in[d + 2 + i];
  f->data = d + hlen + 1;
  return GW_OK;
}

/* The exact output of the compressed block [p, p + n), its sequences walked without writing them; stops
 * past stop. SIZE_MAX: malformed. */
static size_t block_output(const unsigned char *p, size_t n, size_t stop)
{
  const unsigned char *e = p + n;
  size_t out = 0;
  while (p < e) {
    unsigned token = *p++;
    size_t lit = token >> 4, b;
    if (lit == 15)
      do {
        if (p == e)
          return SIZE_MAX;
        lit += b = *p++;
      } while (b == 255);
    if (lit > (size_t)(e - p))
      return SIZE_MAX;
    p += lit;
    out += lit;
    if (p == e)
      break; /* the last sequence: literals only */
    if (e - p < 2)
      return SIZE_MAX;
    p += 2;
    size_t ml = token & 15;
    if (ml == 15)
      do {
        if (p == e)
          return SIZE_MAX;
        ml += b = *p++;
      } while (b == 255);
    out += ml + 4;
    if (out > stop)
      return out;
  }
  return out;
}

/*
 * One pass over the body's frames. Sizing (out NULL): checks the framing and adds up the output into *total,
 * exactly when exact (compressed blocks walked), else as a bound (a compressed block counted as its frame's
 * block size); stops once past stop. Decoding (out set, room for *total bytes): decodes every block into
 * out, checks the checksums and the stated sizes, and sets *total to the output.
 */
static gw_rc pass(const unsigned char *in, size_t in_len, bool exact, size_t stop, unsigned char *out,
                  size_t *total, struct gw_err *err)
{
  size_t at = 0, got = 0, cap = out ? *total : 0;
  while (at < in_len) {
    if (in_len - at < 4)
      return truncated(err, in_len);
    uint32_t magic = rd32(in + at);
    if ((magic & 0xfffffff0u) == SKIP_MAGIC) {
      if (in_len - at < 8 || rd32(in + at + 4) > in_len - at - 8)
        return truncated(err, in_len);
      at += 8 + rd32(in + at + 4);
      continue;
    }
    if (magic != MAGIC)
      return bad(err, magic == LEGACY_MAGIC ? "legacy lz4 format (use the frame format)" : "not an lz4 frame", at);
    struct frame f;
    gw_rc rc = descriptor(in, in_len, at, &f, err);
    if (rc)
      return rc;
    size_t frame_at = at, start = got, p = f.data;
    bool counted = !out && f.sized; /* its size taken from the header */
    if (counted) {
      if (f.size > stop - got) {
        *total = stop + 1;
        return GW_OK;
      }
      got += (size_t)f.size;
    }
    for (;;) {
      if (in_len - p < 4)
        return truncated(err, in_len);
      uint32_t bs = rd32(in + p);
      size_t blk = p;
      p += 4;
      if (!bs)
        break; /* EndMark */
      size_t n = bs & ~UNCOMPRESSED;
      bool stored = bs & UNCOMPRESSED;
      if (n > f.block_max)
        return bad(err, "block larger than the frame's block size", blk);
      size_t need = n + (f.flg & F_BCHECK ? 4 : 0);
      if (in_len - p < need)
        return truncated(err, in_len);
      const unsigned char *d = in + p;
      if (out) {
        if ((f.flg & F_BCHECK) && gw_xxh32(d, n, 0) != rd32(d + n))
          return bad(err, "block checksum mismatch", blk);
        if (stored) {
          if (n > cap - got)
            return bad(err, "frame decodes to more than its sizes state", blk);
          memcpy(out + got, d, n);
          got += n;
        } else {
          size_t room = cap - got < f.block_max ? cap - got : f.block_max, dict = got - start;
          if (dict > 65536)
            dict = 65536;
          int r = (f.flg & F_INDEP) || !dict
                    ? LZ4_decompress_safe((const char *)d, (char *)out + got, (int)n, (int)room)
                    : LZ4_decompress_safe_usingDict((const char *)d, (char *)out + got, (int)n, (int)room,
                                                    (const char *)out + got - dict, (int)dict);
          if (r < 0)
            return bad(err, room < f.block_max ? "corrupt block, or more than the frame's header states" : "corrupt block",
                       blk);
          got += (size_t)r;
        }
      } else if (!counted) {
        size_t add = stored ? n : exact ? block_output(d, n, stop - got) : f.block_max;
        if (add == SIZE_MAX)
          return bad(err, "corrupt block", blk);
        if (add > f.block_max)
          return bad(err, "block decodes to more than the frame's block size", blk);
        if (add > stop - got) {
          *total = stop + 1;
          return GW_OK;
        }
        got += add;
      }
      p += need;
    }
    if (f.flg & F_CCHECK) {
      if (in_len - p < 4)
        return truncated(err, in_len);
      if (out && gw_xxh32(out + start, got - start, 0) != rd32(in + p))
        return bad(err, "content checksum mismatch", frame_at);
      p += 4;
    }
    if (out && f.sized && got - start != f.size)
      return bad(err, "frame decodes to another size than its header states", frame_at);
    at = p;
  }
  *total = got;
  return GW_OK;
}

gw_rc gw_unlz4(struct gw_arena *a, const void *in, size_t in_len, const struct gw_decode_limits *lim, void **out,
               size_t *out_len, struct gw_err *err)
{
  *out = NULL;
  *out_len = 0;
  if (in_len == 0)
    return gw_err_set(err, GW_ERR(BAD_GZIP), "compressed body is empty");
  bool by_ratio;
  size_t limit = gw_decompress_limit(in_len, lim, &by_ratio), n;
  /* a bound first; when it passes the limit, or is far over what the body likely holds (every compressed
   * block counted as 4 MiB), the exact size */
  size_t loose = in_len > (SIZE_MAX - (1u << 20)) / 16 ? SIZE_MAX : in_len * 16 + (1u << 20);
  gw_rc rc = pass(in, in_len, false, limit, NULL, &n, err);
  if (!rc && n > (limit < loose ? limit : loose))
    rc = pass(in, in_len, true, limit, NULL, &n, err);
  if (rc)
    return rc;
  if (n > limit)
    return gw_decompress_too_large(err, "lz4", lim, limit, by_ratio, in_len);
  /* a plain allocation: warm arena memory, not a fresh mapping faulted in */
  unsigned char *buf = gw_arena_alloc(a, n + 1);
  if (!buf)
    return gw_err_set(err, GW_ERR(TOO_LARGE), "lz4: request needs more memory than the per-request limit");
  size_t cap = n;
  if ((rc = pass(in, in_len, false, limit, buf, &n, err)))
    return rc;
  if (n < cap) { /* a bound: what was not used goes back (the buffer is the arena's last allocation) */
    unsigned char *m = gw_arena_grow(a, buf, cap + 1, n + 1);
    if (m)
      buf = m;
  }
  buf[n] = 0;
  *out = buf;
  *out_len = n;
  return GW_OK;
}
