/*
 * inflate.c: gzip and zlib request bodies (HTTP Content-Encoding: gzip, or deflate / zlib, which mean the
 * zlib format; gRPC per-message compression gzip or deflate) into the request arena, with the
 * decompressed-size cap enforced while inflating. Messages name the format the body starts with (gzip,
 * deflate for a zlib header).
 *
 * A small body can inflate to gigabytes. The limit is known before the first byte: max_bytes, and with a
 * ratio cap max(ratio_min_bytes, max_ratio x compressed size), so real bodies (a few to a few tens of
 * times their compressed size) pass and a bomb stops after ratio x its size instead of inflating up to
 * max_bytes. Output goes into one resizable arena buffer (gw_arena_alloc_big) that starts near a typical
 * ratio and doubles, mremap'd rather than copied, never past the limit; once it is full at the limit a
 * one-byte probe tells "done" from "more", and more is TOO_LARGE at once. At the end the buffer is cut to
 * the output. zlib's own state is arena memory too. Once the output passes 16 times the input read so far
 * (and 256 KiB), gw_deflate_size counts the whole body's output from its codes: past the limit is TOO_LARGE at
 * once (a bomb is refused in the time it takes to read its wire bytes, without inflating up to the cap
 * and faulting its pages in), within it the buffer is sized exactly.
 * windowBits 15+32 lets zlib detect gzip or zlib headers; concatenated members (RFC 1952 §2.2) are
 * inflated one after another; anything else after a member, a truncated stream or a bad checksum is
 * BAD_GZIP. Messages give positions and sizes, never content.
 *
 * The usual body goes a faster way first, about ten times faster than zlib's inflate on OTLP bodies
 * (bench/README.md, "Compressed bodies"): libdeflate decodes it whole into one buffer, a gzip member's
 * into one of the size its trailer states (ISIZE) when that is within the limit, a zlib stream's (which
 * states no size, and is at most 256 KiB) into one of 32 times its size or the limit if less, cut to the
 * output. libdeflate checks
 * the CRC-32 (Adler-32) and ISIZE and never writes past the buffer, so a trailer that lies or a bomb costs
 * at most that much output (it skips a gzip header's CRC without checking it; the data's CRC-32 is what
 * protects the body). Anything it does not take whole (several members, a lying trailer, a zlib stream
 * inflating more than 32 times, corrupt data) is inflated by zlib as above, which gives the error its
 * message.
 */
#include <libdeflate.h>
#include <limits.h>
#include <string.h>
#include <zlib.h>

#include "decode/decode.h"

#define FIRST_OUT (64 * 1024)
/* Output past both of these (or about to grow past SCAN_AT) before the body is counted with gw_deflate_size (real bodies inflate 3 to 30
 * times; a bomb about 1000): from there a bomb costs the time to read its codes, not to inflate it. The
 * ratio is the output's to the input read so far, not to the whole body: a 64 KB bomb shows its ratio after
 * a few hundred bytes, and measured against the whole body it would be inflated to 1 MiB first (four times
 * the work and the page faults, on every bomb of a client sending them back to back). */
#define SCAN_AT (256 * 1024)
#define SCAN_RATIO 16

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
  if (size && items > SIZE_MAX / size)
    return Z_NULL;
  return gw_arena_alloc(opaque, (size_t)items * size);
}

static void z_free(voidpf opaque, voidpf p) { (void)opaque, (void)p; }

/* Hand zlib at most UINT_MAX input bytes at a time (avail_in is a uInt). */
static void feed(z_stream *zs, const unsigned char **in, size_t *left)
{
  if (zs->avail_in == 0 && *left) {
    uInt n = *left > UINT_MAX ? UINT_MAX : (uInt)*left;
    zs->next_in = (Bytef *)*in;
    zs->avail_in = n;
    *in += n;
    *left -= n;
  }
}

size_t gw_decompress_limit(size_t in_len, const struct gw_decode_limits *lim, bool *by_ratio)
{
  size_t limit = lim->max_bytes;
  *by_ratio = false;
  if (lim->max_ratio) {
    size_t r = in_len > SIZE_MAX / lim->max_ratio ? SIZE_MAX : in_len * lim->max_ratio;
    if (r < lim->ratio_min_bytes)
      r = lim->ratio_min_bytes;
    if (r < limit) {
      limit = r;
      *by_ratio = true;
    }
  }
  return limit;
}

gw_rc gw_decompress_too_large(struct gw_err *err, const char *fmt, const struct gw_decode_limits *lim, size_t limit,
                              bool by_ratio, size_t in_len)
{
  if (by_ratio)
    return gw_err_set(err, GW_ERR(TOO_LARGE),
                      "%s: body inflates to more than %u times its %zu compressed bytes (receivers.max_inflate_ratio)",
                      fmt, lim->max_ratio, in_len);
  return gw_err_set(err, GW_ERR(TOO_LARGE), "%s: body inflates to more than %zu bytes", fmt, limit);
}

gw_rc gw_decompress(struct gw_arena *a, enum gw_coding coding, const void *in, size_t in_len,
                    const struct gw_decode_limits *lim, void **out, size_t *out_len, struct gw_err *err)
{
  switch (coding) {
  case GW_CODING_DEFLATE: return gw_inflate(a, in, in_len, lim, out, out_len, err);
  case GW_CODING_ZSTD: return gw_unzstd(a, in, in_len, lim, out, out_len, err);
  case GW_CODING_SNAPPY: return gw_unsnappy(a, in, in_len, lim, out, out_len, err);
  case GW_CODING_LZ4: return gw_unlz4(a, in, in_len, lim, out, out_len, err);
  case GW_CODING_NONE: break;
  }
  *out = (void *)in;
  *out_len = in_len;
  return GW_OK;
}

/* A zlib header (RFC 1950): method 8, window up to 32 KiB, the first two bytes a multiple of 31. */
static bool zlib_header(const unsigned char *in, size_t len)
{
  return len >= 2 && (in[0] & 0x0f) == 8 && (in[0] >> 4) <= 7 && ((unsigned)in[0] << 8 | in[1]) % 31 == 0;
}

/* The name errors give the body's format: "gzip" for gzip's magic, "deflate" for a zlib header, else
 * "gzip or deflate body". */
static const char *format_of(const unsigned char *in, size_t len)
{
  if (len >= 2 && in[0] == 0x1f && in[1] == 0x8b)
    return "gzip";
  return zlib_header(in, len) ? "deflate" : "gzip or deflate body";
}

/* The first way (top comment): one gzip member stating its size within limit, or a zlib stream within
 * GUESS_RATIO times its size, decoded whole by libdeflate into a plain arena allocation: its chunks are warm
 * (kept by the thread's arena, or from the warm pool), where a new mapping's pages would all fault in.
 * The guess for a zlib stream is charged to the in-flight budget until the request ends (an arena gives
 * back at reset), so it is only made up to GUESS_MAX: a larger zlib body takes the zlib way, whose buffer
 * grows with its output. 1 done (*out, *out_len set), 0 not taken (the zlib way decides), -1 a stated size
 * does not fit the arena. */
#define GUESS_RATIO 32
#define GUESS_MAX (8u << 20)
static int whole(struct gw_arena *a, const unsigned char *in, size_t in_len, size_t limit, void **out,
                 size_t *out_len)
{
  bool gzip = in_len >= 18 && in[0] == 0x1f && in[1] == 0x8b;
  size_t cap;
  if (gzip) {
    const unsigned char *t = in + in_len - 4;
    cap = (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 | (size_t)t[3] << 24; /* ISIZE */
    if (cap > limit)
      return 0; /* too large, or lying: the zlib way tells which */
  } else if (in_len >= 6 && zlib_header(in, in_len)) {
    if (in_len > GUESS_MAX / GUESS_RATIO)
      return 0;
    cap = in_len * GUESS_RATIO;
    if (cap > limit)
      cap = limit;
  } else {
    return 0;
  }
  struct gw_arena_mark m;
  gw_arena_mark(a, &m);
  unsigned char *buf = gw_arena_alloc(a, cap + 1);
  if (!buf) {
    if (gzip)
      return -1;
    gw_arena_rewind(a, &m); /* only a guess did not fit: the zlib way may need less */
    return 0;
  }
  struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
  size_t took = 0, got = 0;
  enum libdeflate_result r = LIBDEFLATE_BAD_DATA;
  if (d)
    r = gzip ? libdeflate_gzip_decompress_ex(d, in, in_len, buf, cap, &took, &got)
             : libdeflate_zlib_decompress_ex(d, in, in_len, buf, cap, &took, &got);
  if (d)
    libdeflate_free_decompressor(d);
  if (r != LIBDEFLATE_SUCCESS || took != in_len || (gzip && got != cap)) {
    gw_arena_rewind(a, &m); /* its room goes back to the request before zlib tries */
    return 0;
  }
  if (got < cap) { /* a guess: what was not used goes back (the buffer is the arena's last allocation) */
    unsigned char *n = gw_arena_grow(a, buf, cap + 1, got + 1);
    if (n)
      buf = n;
  }
  buf[got] = 0;
  *out = buf;
  *out_len = got;
  return 1;
}

gw_rc gw_inflate(struct gw_arena *a, const void *in, size_t in_len, const struct gw_decode_limits *lim, void **out,
                 size_t *out_len, struct gw_err *err)
{
  gw_rc result = GW_ERR(BAD_GZIP);
  z_stream zs = {.zalloc = z_alloc, .zfree = z_free, .opaque = a};
  const unsigned char *next = in;
  size_t left = in_len, used = 0, cap;
  bool started = false, by_ratio, scanned = false;
  size_t limit = gw_decompress_limit(in_len, lim, &by_ratio);
  unsigned char *buf = NULL;

  const char *fmt = format_of(in, in_len);
  *out = NULL;
  *out_len = 0;
  if (in_len == 0)
    return gw_err_set(err, GW_ERR(BAD_GZIP), "compressed body is empty");
  int fast = whole(a, in, in_len, limit, out, out_len);
  if (fast > 0)
    return GW_OK;
  if (fast < 0)
    goto oom;
  if (inflateInit2(&zs, 15 + 32) != Z_OK)
    return gw_err_set(err, GW_ERR(TOO_LARGE), "%s: request needs more memory than the per-request limit", fmt);
  started = true;
  cap = in_len > SIZE_MAX / 4 ? SIZE_MAX : in_len * 4; /* near a typical ratio */
  if (cap < FIRST_OUT)
    cap = FIRST_OUT;
  if (cap > limit)
    cap = limit;
  /* +1 everywhere: room for the terminating NUL */
  if (!(buf = gw_arena_alloc_big(a, cap + 1)))
    goto oom;

  for (;;) {
    feed(&zs, &next, &left);
    if (used == cap) {
      if (cap == limit) {
        /* Full at the limit: one more byte of output means the body is too large. */
        unsigned char probe;
        zs.next_out = &probe;
        zs.avail_out = 1;
        int pr = inflate(&zs, Z_NO_FLUSH);
        if (zs.avail_out == 0) {
          result = gw_decompress_too_large(err, fmt, lim, limit, by_ratio, in_len);
          goto out;
        }
        if (pr == Z_STREAM_END)
          goto member_end;
        if (pr != Z_OK && pr != Z_BUF_ERROR)
          goto zerr;
        if (zs.avail_in == 0 && left == 0) {
          result = gw_err_set(err, GW_ERR(BAD_GZIP), "%s: truncated after %zu input bytes", fmt, in_len);
          goto out;
        }
        continue;
      }
      size_t ncap = cap > limit / 2 ? limit : cap * 2;
      if (!scanned && ncap > SCAN_AT && cap / SCAN_RATIO >= in_len - left - zs.avail_in) {
        /* A ratio past real bodies': count what the whole body inflates to before inflating more of it. */
        scanned = true;
        size_t total;
        int sr = gw_deflate_size(in, in_len, limit, &total);
        if (sr > 0) {
          result = gw_decompress_too_large(err, fmt, lim, limit, by_ratio, in_len);
          goto out;
        }
        if (sr == 0 && total > cap)
          ncap = total; /* exact: one resize, and the trailing probe finds the end */
      }
      unsigned char *n = gw_arena_resize_big(a, buf, ncap + 1);
      if (!n)
        goto oom;
      buf = n;
      cap = ncap;
    }
    size_t room = cap - used;
    zs.next_out = buf + used;
    zs.avail_out = room > UINT_MAX ? UINT_MAX : (uInt)room;
    uInt before = zs.avail_out;
    int r = inflate(&zs, Z_NO_FLUSH);
    used += before - zs.avail_out;
    if (r == Z_STREAM_END)
      goto member_end;
    if (r == Z_BUF_ERROR || (r == Z_OK && zs.avail_in == 0)) {
      /* No progress possible without more input (or more room, handled above). */
      if (zs.avail_in == 0 && left == 0 && zs.avail_out != 0) {
        result = gw_err_set(err, GW_ERR(BAD_GZIP), "%s: truncated after %zu input bytes", fmt, in_len);
        goto out;
      }
      continue;
    }
    if (r != Z_OK)
      goto zerr;
    continue;

  member_end:
    feed(&zs, &next, &left);
    if (zs.avail_in == 0)
      break;
    /* Another member follows (RFC 1952 §2.2: a gzip file is a series of members). */
    if (inflateReset(&zs) != Z_OK)
      goto zerr;
  }

  /* Cut the buffer to the output: the pages past it go back now, not when the request ends. */
  if (used < cap) {
    unsigned char *n = gw_arena_resize_big(a, buf, used + 1);
    if (n)
      buf = n;
  }
  buf[used] = 0;
  *out = buf;
  *out_len = used;
  result = GW_OK;
  goto out;

zerr:
  if (gw_arena_exhausted(a))
    goto oom;
  result = gw_err_set(err, GW_ERR(BAD_GZIP), "%s: %s at input byte %zu", fmt, zs.msg ? zs.msg : "corrupt data",
                      in_len - left - zs.avail_in);
  goto out;
oom:
  result = gw_err_set(err, GW_ERR(TOO_LARGE), "%s: request needs more memory than the per-request limit", fmt);
out:
  if (started)
    inflateEnd(&zs);
  return result;
}
