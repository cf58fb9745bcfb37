/*
 * inflate.c: gzip request bodies (HTTP Content-Encoding: gzip, gRPC per-message compression) into the
 * request arena, with the decompressed-size cap enforced while inflating.
 *
 * A small body can inflate to gigabytes, so output goes into arena chunks, the first near a typical
 * ratio and each next one twice as big, together never more than max_bytes; once they are full a one-byte
 * probe tells "done" from "more", and more is TOO_LARGE at once. A bomb therefore costs at most max_bytes
 * of output memory whatever the ratio; a success with several chunks is copied once into one contiguous
 * buffer (at most twice the output). zlib's own state is arena memory too.
 * windowBits 15+32 lets zlib detect gzip or zlib headers; concatenated members (RFC 1952 §2.2) are
 * inflated one after another; anything else after a member, a truncated stream or a bad checksum is
 * BAD_GZIP. Messages give positions, never content.
 */
#include <limits.h>
#include <string.h>
#include <zlib.h>

#include "decode/decode.h"

#define FIRST_OUT (64 * 1024)

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

gw_rc gw_inflate(struct gw_arena *a, const void *in, size_t in_len, size_t max_bytes, void **out, size_t *out_len,
                 struct gw_err *err)
{
  gw_rc result = GW_ERR(BAD_GZIP);
  z_stream zs = {.zalloc = z_alloc, .zfree = z_free, .opaque = a};
  const unsigned char *next = in;
  size_t left = in_len;
  /* Output chunks, each twice the previous, together never more than max_bytes: at most 64 of them. */
  unsigned char *chunk[64];
  size_t chunk_len[64];
  int n_chunks = 0;
  size_t cap = 0, used = 0, total_cap = 0;
  bool started = false;

  *out = NULL;
  *out_len = 0;
  if (in_len == 0)
    return gw_err_set(err, GW_ERR(BAD_GZIP), "gzip: empty body");
  if (inflateInit2(&zs, 15 + 32) != Z_OK)
    return gw_err_set(err, GW_ERR(TOO_LARGE), "gzip: request needs more memory than the per-request limit");
  started = true;

  for (;;) {
    feed(&zs, &next, &left);
    if (used == cap) {
      if (n_chunks)
        chunk_len[n_chunks - 1] = used;
      if (total_cap == max_bytes) {
        /* Full at the cap: one more byte of output means the body is too large. */
        unsigned char probe;
        zs.next_out = &probe;
        zs.avail_out = 1;
        int pr = inflate(&zs, Z_NO_FLUSH);
        if (zs.avail_out == 0) {
          result = gw_err_set(err, GW_ERR(TOO_LARGE), "gzip: body inflates to more than %zu bytes", max_bytes);
          goto out;
        }
        if (pr == Z_STREAM_END)
          goto member_end;
        if (pr != Z_OK && pr != Z_BUF_ERROR)
          goto zerr;
        if (zs.avail_in == 0 && left == 0) {
          result = gw_err_set(err, GW_ERR(BAD_GZIP), "gzip: truncated after %zu input bytes", in_len);
          goto out;
        }
        continue;
      }
      if (n_chunks == 0) {
        cap = in_len > SIZE_MAX / 4 ? SIZE_MAX : in_len * 4; /* near a typical ratio */
        if (cap < FIRST_OUT)
          cap = FIRST_OUT;
      } else {
        cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
      }
      if (cap > max_bytes - total_cap)
        cap = max_bytes - total_cap;
      /* +1: room for the terminating NUL when this ends up the only chunk. */
      unsigned char *c = gw_arena_alloc(a, cap + 1);
      if (!c)
        goto oom;
      chunk[n_chunks] = c;
      chunk_len[n_chunks++] = 0;
      total_cap += cap;
      used = 0;
    }
    size_t room = cap - used;
    zs.next_out = chunk[n_chunks - 1] + used;
    zs.avail_out = room > UINT_MAX ? UINT_MAX : (uInt)room;
    uInt before = zs.avail_out;
    int r = inflate(&zs, Z_NO_FLUSH);
    used += before - zs.avail_out;
    if (r == Z_STREAM_END)
      goto member_end;
    if (r == Z_BUF_ERROR || (r == Z_OK && zs.avail_in == 0)) {
      /* No progress possible without more input (or more room, handled above). */
      if (zs.avail_in == 0 && left == 0 && zs.avail_out != 0) {
        result = gw_err_set(err, GW_ERR(BAD_GZIP), "gzip: truncated after %zu input bytes", in_len);
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

  if (n_chunks)
    chunk_len[n_chunks - 1] = used;
  size_t total = 0;
  for (int i = 0; i < n_chunks; i++)
    total += chunk_len[i];
  unsigned char *buf;
  if (n_chunks == 1) {
    buf = chunk[0];
  } else {
    /* Several chunks: one contiguous copy, so a success holds at most twice the output. */
    buf = gw_arena_alloc(a, total + 1);
    if (!buf)
      goto oom;
    size_t o = 0;
    for (int i = 0; i < n_chunks; i++) {
      if (chunk_len[i])
        memcpy(buf + o, chunk[i], chunk_len[i]);
      o += chunk_len[i];
    }
  }
  buf[total] = 0;
  *out = buf;
  *out_len = total;
  result = GW_OK;
  goto out;

zerr:
  if (gw_arena_exhausted(a))
    goto oom;
  result = gw_err_set(err, GW_ERR(BAD_GZIP), "gzip: %s at input byte %zu", zs.msg ? zs.msg : "corrupt data",
                      in_len - left - zs.avail_in);
  goto out;
oom:
  result = gw_err_set(err, GW_ERR(TOO_LARGE), "gzip: request needs more memory than the per-request limit");
out:
  if (started)
    inflateEnd(&zs);
  return result;
}
