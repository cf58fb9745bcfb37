/*
 * fuzz_simhash.c: the prompt SimHash (normalize/simhash.c) on its AVX-512 path against its portable one.
 * The 64-byte path tokenizes with masks, hashes eight tokens a lane group and four groups at once, reads
 * tokens through a 128-byte window or a gather with a padded copy of the text's tail, and counts features
 * eight at a time; the portable path is the algorithm byte by byte. On any text both must say the same:
 * whether there is a feature at all, and the hash. (On a CPU without AVX-512 both calls take the portable
 * path and the check holds trivially.) Input: the text, as is (the SimHash takes any bytes).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "normalize/simhash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  uint64_t fast = 1, slow = 2;
  gw_simhash_no_avx512 = false;
  bool f = gw_simhash((const char *)data, size, &fast);
  gw_simhash_no_avx512 = true;
  bool s = gw_simhash((const char *)data, size, &slow);
  gw_simhash_no_avx512 = false;
  if (f != s || (f && fast != slow))
    abort();
  return 0;
}
