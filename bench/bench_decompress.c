/*
 * bench_decompress.c: what decompressing a request body costs, per coding (bench/README.md, "Compressed
 * bodies"). Usage: bench_decompress [-n ITERATIONS] BODY...
 * Each body (a gen_payload request, protobuf or OTLP/JSON) is compressed here as clients send it: gzip
 * level 6 (zlib's default, what the OTel SDKs and the Collector use), the zlib format (HTTP's "deflate")
 * at level 6, zstd level 3 (the zstd default) with
 * its size stated (a one-shot compressor) and streamed (no size stated: the Collector's and Fluent Bit's
 * streaming encoders), snappy as one block and in the framing format's 64 KiB chunks (the Collector's
 * compression: snappy, either format), LZ4 frames (compression: lz4) with liblz4's defaults and as the
 * Collector writes them, then decompressed ITERATIONS times through gw_decompress with the receivers'
 * default caps into an arena reset after each and keeping its chunks, as a receiver thread's does. Prints
 * the compressed size and microseconds per body.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include "decode/decode.h"

static double now(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static unsigned char *slurp(const char *path, size_t *n)
{
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    exit(1);
  }
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  rewind(f);
  unsigned char *b = malloc((size_t)len + 1);
  if (fread(b, 1, (size_t)len, f) != (size_t)len) {
    fprintf(stderr, "%s: short read\n", path);
    exit(1);
  }
  fclose(f);
  *n = (size_t)len;
  return b;
}

static unsigned char *gzip_of(const unsigned char *b, size_t n, size_t *out)
{
  z_stream zs = {0};
  size_t cap = compressBound(n) + 32;
  unsigned char *g = malloc(cap);
  if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    exit(1);
  zs.next_in = (Bytef *)b;
  zs.avail_in = (uInt)n;
  zs.next_out = g;
  zs.avail_out = (uInt)cap;
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
    exit(1);
  *out = zs.total_out;
  deflateEnd(&zs);
  return g;
}

static unsigned char *zstd_of(const unsigned char *b, size_t n, int streamed, size_t *out)
{
  size_t cap = ZSTD_compressBound(n);
  unsigned char *z = malloc(cap);
  ZSTD_CCtx *c = ZSTD_createCCtx();
  ZSTD_inBuffer ib = {b, n, 0};
  ZSTD_outBuffer ob = {z, cap, 0};
  if (streamed) /* input handed over before the end: the header cannot state the size */
    while (ib.pos < ib.size)
      if (ZSTD_isError(ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_continue)))
        exit(1);
  size_t left;
  do {
    left = ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_end);
    if (ZSTD_isError(left))
      exit(1);
  } while (left);
  ZSTD_freeCCtx(c);
  *out = ob.pos;
  return z;
}

static void put32(unsigned char *p, uint32_t v)
{
  p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8), p[2] = (unsigned char)(v >> 16), p[3] = (unsigned char)(v >> 24);
}

/* snappy's block format (framed: 0), or its framing format in 64 KiB chunks, as a Collector sends it */
static unsigned char *snappy_of(const unsigned char *b, size_t n, int framed, size_t *out)
{
  size_t cap = snappy_max_compressed_length(n) + 10 + (n / 65536 + 1) * 8, at = 0;
  unsigned char *z = malloc(cap);
  if (!framed) {
    *out = cap;
    if (snappy_compress((const char *)b, n, (char *)z, out) != SNAPPY_OK)
      exit(1);
    return z;
  }
  memcpy(z, "\xff\x06\x00\x00sNaPpY", 10);
  at = 10;
  for (size_t off = 0; off < n; off += 65536) {
    size_t k = n - off < 65536 ? n - off : 65536, zl = cap - at - 8;
    if (snappy_compress((const char *)b + off, k, (char *)z + at + 8, &zl) != SNAPPY_OK)
      exit(1);
    uint32_t c = gw_crc32c(b + off, k);
    put32(z + at, (uint32_t)(4 + zl) << 8); /* type 0 (compressed) and the 3-byte length */
    put32(z + at + 4, ((c >> 15) | (c << 17)) + 0xa282ead8u);
    at += 8 + zl;
  }
  *out = at;
  return z;
}

/* an LZ4 frame: no content size, independent blocks; liblz4's defaults (64 KiB blocks, no checksum), or as
 * the Collector's writer makes it (4 MiB blocks, the content checksum) */
static unsigned char *lz4_of(const unsigned char *b, size_t n, int collector, size_t *out)
{
  LZ4F_preferences_t p;
  memset(&p, 0, sizeof p);
  p.frameInfo.blockMode = LZ4F_blockIndependent;
  if (collector) {
    p.frameInfo.blockSizeID = LZ4F_max4MB;
    p.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
  }
  size_t cap = LZ4F_compressFrameBound(n, &p);
  unsigned char *z = malloc(cap);
  *out = LZ4F_compressFrame(z, cap, b, n, &p);
  if (LZ4F_isError(*out))
    exit(1);
  return z;
}

int main(int argc, char **argv)
{
  int iters = 1000, opt;
  while ((opt = getopt(argc, argv, "n:")) != -1)
    if (opt == 'n')
      iters = atoi(optarg);
  if (optind >= argc || iters < 1) {
    fprintf(stderr, "usage: bench_decompress [-n ITERATIONS] BODY...\n");
    return 2;
  }
  /* the receivers' defaults: 64 MiB, ratio 200 past 1 MiB */
  const struct gw_decode_limits lim = {.max_bytes = 64u << 20, .max_ratio = 200, .ratio_min_bytes = 1u << 20};
  for (int fi = optind; fi < argc; fi++) {
    size_t n;
    unsigned char *b = slurp(argv[fi], &n);
    struct {
      const char *name;
      enum gw_coding coding;
      unsigned char *z;
      size_t len;
    } c[8] = {{"gzip-6", GW_CODING_DEFLATE, NULL, 0},
              {"deflate-6", GW_CODING_DEFLATE, NULL, 0},
              {"zstd-3-sized", GW_CODING_ZSTD, NULL, 0},
              {"zstd-3-streamed", GW_CODING_ZSTD, NULL, 0},
              {"snappy-block", GW_CODING_SNAPPY, NULL, 0},
              {"snappy-framed", GW_CODING_SNAPPY, NULL, 0},
              {"lz4-64K", GW_CODING_LZ4, NULL, 0},
              {"lz4-4M-checked", GW_CODING_LZ4, NULL, 0}};
    c[0].z = gzip_of(b, n, &c[0].len);
    uLongf zl = compressBound(n);
    c[1].z = malloc(zl);
    if (compress2(c[1].z, &zl, b, n, 6) != Z_OK)
      return 1;
    c[1].len = zl;
    c[2].z = zstd_of(b, n, 0, &c[2].len);
    c[3].z = zstd_of(b, n, 1, &c[3].len);
    c[4].z = snappy_of(b, n, 0, &c[4].len);
    c[5].z = snappy_of(b, n, 1, &c[5].len);
    c[6].z = lz4_of(b, n, 0, &c[6].len);
    c[7].z = lz4_of(b, n, 1, &c[7].len);
    printf("body %s bytes=%zu iterations=%d\n", argv[fi], n, iters);
    for (int k = 0; k < 8; k++) {
      struct gw_arena *a = gw_arena_create(0);
      gw_arena_keep(a, GW_ARENA_WARM_MAX); /* keeps its chunks across resets, as a receiver thread's arena */
      double t0 = now();
      for (int i = 0; i < iters; i++) {
        void *o;
        size_t ol;
        struct gw_err e = {0};
        if (gw_decompress(a, c[k].coding, c[k].z, c[k].len, &lim, &o, &ol, &e) || ol != n) {
          fprintf(stderr, "%s: %s\n", c[k].name, e.msg);
          return 1;
        }
        gw_arena_reset(a);
      }
      double t = (now() - t0) / iters;
      printf("%-16s compressed=%zu us_per_body=%.1f MB_per_s=%.0f\n", c[k].name, c[k].len, t * 1e6, (double)n / t / 1e6);
      gw_arena_destroy(a);
      free(c[k].z);
    }
    free(b);
  }
  return 0;
}
