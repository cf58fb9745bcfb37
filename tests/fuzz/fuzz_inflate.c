/*
 * fuzz_inflate.c: compressed request bodies through gw_decompress with its caps: gzip and zlib streams
 * (inflate.c: libdeflate's whole-body way, then zlib's), zstd frames (unzstd.c: sizes stated, bounded by
 * blocks, streamed), snappy (unsnappy.c: block and framed) and lz4 frames (unlz4.c).
 * Input: one selector byte, then the compressed body. Selector bits 0-4, i: 0-20, the cap is 2^i bytes (1 B
 * to 1 MiB, so the growing buffer's steps and the one-byte probe past a full output are reached by small
 * inputs) and bit 7 chooses zstd instead of gzip/zlib; 21-31, a cap of 2^(i - 11) bytes (1 KiB to 1 MiB)
 * and bit 7 chooses lz4 instead of snappy. Bit 5: the ratio cap (200) on; bit 6: its floor 1 KiB instead
 * of 1 MiB.
 * Checks what the contract promises: a success is never over either cap, and all of its bytes are readable
 * (the checksum touches each one under ASan) and NUL-terminated.
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
  unsigned i = data[0] & 0x1f;
  size_t cap = (size_t)1 << (i <= 20 ? i : i - 11);
  struct gw_decode_limits lim = {.max_bytes = cap,
                                 .max_ratio = (data[0] & 0x20) ? 200u : 0u,
                                 .ratio_min_bytes = (data[0] & 0x40) ? 1024u : (1u << 20)};
  bool b7 = data[0] & 0x80;
  enum gw_coding coding = i > 20 ? (b7 ? GW_CODING_LZ4 : GW_CODING_SNAPPY) : b7 ? GW_CODING_ZSTD : GW_CODING_DEFLATE;
  struct gw_arena *a = gw_arena_create(16 << 20);
  struct gw_err err;
  void *out;
  size_t len;
  if (gw_decompress(a, coding, data + 1, size - 1, &lim, &out, &len, &err) == GW_OK) {
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
