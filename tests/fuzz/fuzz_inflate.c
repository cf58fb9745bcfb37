/*
 * fuzz_inflate.c: gzip request bodies through gw_inflate with its decompressed-size cap (inflate.c).
 * Input: one selector byte choosing the cap (2^(sel % 21) bytes, 1 B to 1 MiB, so chunk boundaries and
 * the one-byte probe past a full output are reached by small inputs), then the gzip stream.
 * Checks what the contract promises: a success is never over the cap, and all of its bytes are readable
 * (the checksum touches each one under ASan).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <zlib.h>

#include "decode/decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  size_t cap = (size_t)1 << (data[0] % 21);
  /* bit 5..7 of the selector: the ratio cap on or off, and its floor */
  struct gw_decode_limits lim = {.max_bytes = cap,
                                 .max_ratio = (data[0] & 0x20) ? 200u : 0u,
                                 .ratio_min_bytes = (data[0] & 0x40) ? 1024u : (1u << 20)};
  struct gw_arena *a = gw_arena_create(8 << 20);
  struct gw_err err;
  void *out;
  size_t len;
  if (gw_inflate(a, data + 1, size - 1, &lim, &out, &len, &err) == GW_OK) {
    if (len > cap)
      abort();
    if (lim.max_ratio && len > lim.ratio_min_bytes && len > (size_t)lim.max_ratio * (size - 1))
      abort();
    volatile uLong sum = crc32(0, out, (uInt)len);
    (void)sum;
  }
  gw_arena_destroy(a);
  return 0;
}
