/*
 * fuzz_unzstd.c: zstd request bodies through gw_unzstd with its caps (unzstd.c). Input: one selector byte
 * choosing the cap (2^(sel % 21) bytes, 1 B to 1 MiB, so the growing buffer's steps and the one-byte probe
 * past a full output are reached by small inputs) and the ratio cap (bits 5, 6), then the zstd frames.
 * Checks what the contract promises: a success is never over either cap, all of its bytes are readable (the
 * checksum touches each one under ASan) and NUL-terminated.
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
  struct gw_decode_limits lim = {.max_bytes = cap,
                                 .max_ratio = (data[0] & 0x20) ? 200u : 0u,
                                 .ratio_min_bytes = (data[0] & 0x40) ? 1024u : (1u << 20)};
  struct gw_arena *a = gw_arena_create(16 << 20);
  struct gw_err err;
  void *out;
  size_t len;
  if (gw_unzstd(a, data + 1, size - 1, &lim, &out, &len, &err) == GW_OK) {
    if (len > cap || ((const char *)out)[len] != 0)
      abort();
    if (lim.max_ratio && len > lim.ratio_min_bytes && len > (size_t)lim.max_ratio * (size - 1))
      abort();
    volatile uLong sum = crc32(0, out, (uInt)len);
    (void)sum;
  }
  gw_arena_destroy(a);
  return 0;
}
