/*
 * bench_crc.c: the spool's CRC-32 (core/crc32.h) through each path this CPU can run, against zlib's crc32_z:
 * GB/s on each buffer size, the best of R rounds of about 64 MB each (cache-warm: a spool entry is
 * checksummed right after it is written).
 *
 *   bench_crc [-r ROUNDS] [SIZE...]      SIZE in bytes, default 65536 1048576
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "core/crc32.h"
#include "core/crc32_int.h"
#include "core/metrics.h"

static volatile uint32_t sink;

/* GB/s of one path (-1: zlib's crc32_z) on n bytes, the best of rounds. */
static double rate(int path, const unsigned char *buf, size_t n, int rounds)
{
  size_t reps = (64u << 20) / n + 1;
  double best = 0;
  for (int r = 0; r < rounds; r++) {
    uint32_t c = 0;
    uint64_t t0 = gw_mono_ns();
    for (size_t i = 0; i < reps; i++)
      c = path < 0 ? (uint32_t)crc32_z(c, buf, n) : gw_crc32_via((enum gw_crc32_path)path, c, buf, n);
    uint64_t ns = gw_mono_ns() - t0;
    sink = c;
    double gbs = (double)(reps * n) / (double)(ns ? ns : 1);
    if (gbs > best)
      best = gbs;
  }
  return best;
}

int main(int argc, char **argv)
{
  static const char *const name[] = {"portable", "pclmulqdq", "avx512"};
  int rounds = 7, ch;
  while ((ch = getopt(argc, argv, "r:")) != -1) {
    if (ch != 'r' || (rounds = atoi(optarg)) < 1) {
      fprintf(stderr, "usage: bench_crc [-r ROUNDS] [SIZE...]\n");
      return 2;
    }
  }
  size_t sizes[16] = {65536, 1048576}, nsizes = 2;
  if (optind < argc)
    for (nsizes = 0; optind < argc && nsizes < 16; optind++)
      sizes[nsizes++] = strtoull(argv[optind], NULL, 10);
  enum gw_crc32_path best = gw_crc32_best();
  printf("best path here: %s; GB/s, best of %d rounds\n%10s %10s", name[best], rounds, "bytes", "zlib");
  for (int p = GW_CRC32_CLMUL; p <= (int)best; p++)
    printf(" %10s", name[p]);
  printf("\n");
  for (size_t s = 0; s < nsizes; s++) {
    size_t n = sizes[s] ? sizes[s] : 1;
    unsigned char *buf = malloc(n);
    if (!buf)
      return 1;
    for (size_t i = 0; i < n; i++)
      buf[i] = (unsigned char)(i * 131 + (i >> 9));
    printf("%10zu %10.2f", n, rate(-1, buf, n, rounds));
    for (int p = GW_CRC32_CLMUL; p <= (int)best; p++)
      printf(" %10.2f", rate(p, buf, n, rounds));
    printf("\n");
    free(buf);
  }
  return 0;
}
