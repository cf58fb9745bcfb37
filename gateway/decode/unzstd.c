/*
 * unzstd.c: zstd request bodies (HTTP Content-Encoding: zstd, RFC 8878; gRPC grpc-encoding zstd) into the
 * request arena, under the caps gzip and deflate bodies have (inflate.c): max_bytes, and with a ratio cap
 * max(ratio_min_bytes, max_ratio x compressed size).
 *
 * Three ways, chosen by what the frames' headers say:
 * - Every frame states its content size (a compressor that had the whole body: zstd's CLI on a file, Go's
 *   EncodeAll, ZSTD_compress): the sizes are summed from the frame headers and block headers, without
 *   decoding. Past the limit is TOO_LARGE at once, so a bomb costs the time to walk its headers. Within it
 *   the output buffer is that size exactly and the frames are decoded straight into it: no window buffer.
 * - Some frame states no size (a streaming compressor did not know it when it wrote the header), but the
 *   blocks bound the output (at most 128 KiB each: ZSTD_decompressBound) within the limit: decoded the same
 *   way into a buffer of the bound, cut to the output. This is the usual streamed body.
 * - Otherwise (a bomb, or a compressor that ended a block at every small write) the body is decoded as a
 *   stream into a buffer that doubles up to the limit, then a one-byte probe tells "done" from "too
 *   large", as in inflate.c. A streaming decoder keeps a window buffer as large as the frame asks for, up
 *   to 2 GiB in zstd's format: it is capped at GW_ZSTD_WINDOW_MAX (8 MiB), what RFC 9659 lets a sender use
 *   for HTTP content coding, and a frame asking for more is refused (BAD_GZIP, naming the window).
 * The decoder's state and window are arena memory (ZSTD_customMem), so they count against the request's
 * share of the in-flight budget like the output does; the window is given back to the share once the body
 * is decoded, so it is not held through the rest of the request.
 * Frames may be concatenated, skippable frames are skipped, checksums are verified. No dictionary is known:
 * a frame whose data needs one does not decode. A bad checksum, corrupt data, a truncated frame or bytes
 * after the last frame are BAD_GZIP (the error kind for a body that does not decompress); messages give
 * positions and sizes, never content.
 */
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_createDCtx_advanced: the decoder's memory from the arena */
#include <stdio.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "decode/decode.h"

#define FIRST_OUT (64 * 1024)

/* The decoder's memory: small pieces from the arena; its window and buffers (BIG and more) in mappings of
 * their own, shrunk away when the decoder frees them (at the end, or for a later frame's larger window), so
 * the window is not held while the request is decoded and processed. */
#define BIG (256 * 1024)
struct zs_mem {
  struct gw_arena *a;
  void *big[8];
  unsigned nbig;
};

static void *zs_alloc(void *opaque, size_t n)
{
  struct zs_mem *m = opaque;
  if (n < BIG || m->nbig == sizeof m->big / sizeof m->big[0])
    return gw_arena_alloc(m->a, n);
  void *p = gw_arena_alloc_big(m->a, n);
  if (p)
    m->big[m->nbig++] = p;
  return p;
}

static void zs_free(void *opaque, void *p)
{
  struct zs_mem *m = opaque;
  for (unsigned i = 0; p && i < m->nbig; i++)
    if (m->big[i] == p) {
      gw_arena_resize_big(m->a, p, 1); /* (shrinking never fails) */
      m->big[i] = m->big[--m->nbig];
      return;
    }
}

#define NOWHERE SIZE_MAX /* zs_error: a one-pass decode does not say where it stopped */

static gw_rc zs_error(struct gw_err *err, size_t r, size_t at)
{
  char where[48] = "";
  if (at != NOWHERE)
    snprintf(where, sizeof where, " at input byte %zu", at);
  switch (ZSTD_getErrorCode(r)) {
  case ZSTD_error_frameParameter_windowTooLarge:
    return gw_err_set(err, GW_ERR(BAD_GZIP),
                      "zstd: a frame's window is larger than %zu bytes (RFC 9659's limit for HTTP content coding; "
                      "compress with a window of at most 8 MiB)",
                      GW_ZSTD_WINDOW_MAX);
  case ZSTD_error_prefix_unknown:
    return gw_err_set(err, GW_ERR(BAD_GZIP), "zstd: not a zstd frame%s", where);
  case ZSTD_error_memory_allocation:
    return gw_err_set(err, GW_ERR(TOO_LARGE), "zstd: request needs more memory than the per-request limit");
  default:
    return gw_err_set(err, GW_ERR(BAD_GZIP), "zstd: %s%s", ZSTD_getErrorName(r), where);
  }
}

static gw_rc oom(struct gw_err *err)
{
  return gw_err_set(err, GW_ERR(TOO_LARGE), "zstd: request needs more memory than the per-request limit");
}

/* Every frame's size known (total): decoded in one pass into a buffer of that size. */
static gw_rc whole(struct gw_arena *a, ZSTD_DCtx *d, const void *in, size_t in_len, size_t cap, bool exact,
                   unsigned char **out, size_t *out_len, struct gw_err *err)
{
  /* a plain allocation: warm arena memory (the thread arena's kept chunks, the warm pool), where a new
   * mapping's pages would all fault in */
  unsigned char *buf = gw_arena_alloc(a, cap + 1);
  if (!buf)
    return oom(err);
  size_t r = ZSTD_decompressDCtx(d, buf, cap, in, in_len);
  if (ZSTD_isError(r))
    return gw_arena_exhausted(a) ? oom(err) : zs_error(err, r, NOWHERE);
  if (exact && r != cap) /* the frames decoded to less than their headers state */
    return gw_err_set(err, GW_ERR(BAD_GZIP), "zstd: frames decode to %zu bytes, their headers state %zu", r, cap);
  if (r < cap) { /* a bound: what was not used goes back (the buffer is the arena's last allocation) */
    unsigned char *n = gw_arena_grow(a, buf, cap + 1, r + 1);
    if (n)
      buf = n;
  }
  buf[r] = 0;
  *out = buf;
  *out_len = r;
  return GW_OK;
}

/* Some frame's size unknown: decoded as a stream into a buffer grown up to limit. */
static gw_rc stream(struct gw_arena *a, ZSTD_DCtx *d, const void *in, size_t in_len, const struct gw_decode_limits *lim,
                    size_t limit, bool by_ratio, unsigned char **out, size_t *out_len, struct gw_err *err)
{
  size_t cap = in_len > SIZE_MAX / 4 ? SIZE_MAX : in_len * 4, used = 0;
  if (cap < FIRST_OUT)
    cap = FIRST_OUT;
  if (cap > limit)
    cap = limit;
  unsigned char *buf = gw_arena_alloc_big(a, cap + 1); /* +1: room for the terminating NUL */
  if (!buf)
    return oom(err);
  ZSTD_inBuffer ib = {in, in_len, 0};
  for (;;) {
    if (used == cap) {
      if (cap == limit) {
        /* Full at the limit: one more byte of output means the body is too large. */
        unsigned char probe;
        ZSTD_outBuffer pb = {&probe, 1, 0};
        size_t r = ZSTD_decompressStream(d, &pb, &ib);
        if (ZSTD_isError(r))
          return gw_arena_exhausted(a) ? oom(err) : zs_error(err, r, ib.pos);
        if (pb.pos)
          return gw_decompress_too_large(err, "zstd", lim, limit, by_ratio, in_len);
        if (ib.pos == ib.size) {
          if (r == 0)
            break;
          return gw_err_set(err, GW_ERR(BAD_GZIP), "zstd: truncated after %zu input bytes", in_len);
        }
        continue;
      }
      size_t ncap = cap > limit / 2 ? limit : cap * 2;
      unsigned char *n = gw_arena_resize_big(a, buf, ncap + 1);
      if (!n)
        return oom(err);
      buf = n;
      cap = ncap;
    }
    ZSTD_outBuffer ob = {buf, cap, used};
    size_t r = ZSTD_decompressStream(d, &ob, &ib);
    if (ZSTD_isError(r))
      return gw_arena_exhausted(a) ? oom(err) : zs_error(err, r, ib.pos);
    used = ob.pos;
    if (ib.pos == ib.size) {
      if (r == 0) /* all input read and the last frame complete */
        break;
      if (ob.pos < ob.size) /* room left, yet the frame wants more input: the body stops inside it */
        return gw_err_set(err, GW_ERR(BAD_GZIP), "zstd: truncated after %zu input bytes", in_len);
    }
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
  return GW_OK;
}

gw_rc gw_unzstd(struct gw_arena *a, const void *in, size_t in_len, const struct gw_decode_limits *lim, void **out,
                size_t *out_len, struct gw_err *err)
{
  *out = NULL;
  *out_len = 0;
  if (in_len == 0)
    return gw_err_set(err, GW_ERR(BAD_GZIP), "compressed body is empty");
  bool by_ratio;
  size_t limit = gw_decompress_limit(in_len, lim, &by_ratio);
  struct zs_mem mem = {.a = a};
  ZSTD_DCtx *d = ZSTD_createDCtx_advanced((ZSTD_customMem){zs_alloc, zs_free, &mem});
  if (!d)
    return oom(err);
  gw_rc rc;
  size_t r = ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, GW_ZSTD_WINDOW_LOG_MAX);
  if (ZSTD_isError(r)) {
    rc = zs_error(err, r, NOWHERE);
    goto out;
  }
  unsigned char *buf = NULL;
  unsigned long long total = ZSTD_findDecompressedSize(in, in_len), bound;
  if (total == ZSTD_CONTENTSIZE_ERROR) {
    /* malformed (or cut): the stream decode finds out, and where */
    rc = stream(a, d, in, in_len, lim, limit, by_ratio, &buf, out_len, err);
  } else if (total != ZSTD_CONTENTSIZE_UNKNOWN) {
    rc = total > limit ? gw_decompress_too_large(err, "zstd", lim, limit, by_ratio, in_len)
                       : whole(a, d, in, in_len, (size_t)total, true, &buf, out_len, err);
  } else if ((bound = ZSTD_decompressBound(in, in_len)) != ZSTD_CONTENTSIZE_ERROR && bound <= limit) {
    /* a streamed frame's blocks hold at most 128 KiB each: within the limit, decoded in one pass too */
    rc = whole(a, d, in, in_len, (size_t)bound, false, &buf, out_len, err);
  } else {
    rc = stream(a, d, in, in_len, lim, limit, by_ratio, &buf, out_len, err);
  }
  if (!rc)
    *out = buf;
out:
  ZSTD_freeDCtx(d); /* its window and buffers shrunk away, the rest is the arena's */
  return rc;
}
