/*
 * fuzz_simhash.c: the prompt SimHash (normalize/simhash.c) on its AVX-512 path against its portable one.
 * The 64-byte path tokenizes with masks, hashes eight tokens a lane group and four groups at once, reads
 * tokens through a 128-byte window or a gather with a padded copy of the text's tail, and counts features
 * eight at a time; the portable path is the algorithm byte by byte. On any text both must say the same:
 * whether there is a feature at all, and the hash. (On a CPU without AVX-512 both calls take the portable
 * path and the check holds trivially.) The text cut at its '\n's and hashed part by part (gw_simhash_part,
 * joined: normalize's memo of a conversation's repeated turns) must give the same hash too, on either path
 * (the parts alternate between them, since a request's memo may hold parts from both). Input: the text, as
 * is (the SimHash takes any bytes).
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
  struct gw_simhash_join j;
  gw_simhash_join_init(&j);
  size_t from = 0;
  unsigned k = 0;
  for (size_t i = 0; i <= size; i++)
    if (i == size || data[i] == '\n') {
      struct gw_simhash_part part;
      gw_simhash_no_avx512 = k++ & 1;
      bool any = gw_simhash_part((const char *)data + from, i - from, &part);
      if (any != part.any)
        abort();
      gw_simhash_join_add(&j, &part);
      from = i + 1;
    }
  gw_simhash_no_avx512 = false;
  uint64_t joined = 3;
  bool jn = gw_simhash_join_end(&j, &joined);
  if (jn != f || (f && joined != fast))
    abort();
  return 0;
}
