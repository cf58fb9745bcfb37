/*
 * fuzz_decode.c: libFuzzer target for the decode layer. The first input byte picks the decoder
 * (protobuf traces, OTLP/JSON traces, gzip then either), the rest is the body. Every outcome other than a
 * crash, a sanitizer report or a leak is fine; limits are small so deep or large inputs hit them.
 * Build (clang, after configuring with CC=clang -DGW_SANITIZE=ON and building gw_decode in BUILD):
 *   clang -g -fsanitize=fuzzer,address,undefined -I gateway -I BUILD/proto/gen tests/fuzz/fuzz_decode.c \
 *     BUILD/gateway/libgw_decode.a BUILD/gateway/libgw_core.a BUILD/proto/libgw_proto.a \
 *     $(pkg-config --libs libprotobuf-c zlib) -lm -lpthread -o fuzz_decode
 *   ./fuzz_decode tests/fuzz/corpus
 * The seed corpus is tests/fixtures/sdk (copy the non-logs bodies in, prefixed with a selector byte).
 */
#include <stddef.h>
#include <stdint.h>

#include "decode/decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  struct gw_decode_limits lim = {.max_bytes = 1 << 20, .max_depth = 16};
  struct gw_arena *a = gw_arena_create(8 << 20);
  struct gw_err err;
  GwTraceRequest *req;
  const void *body = data + 1;
  size_t len = size - 1;
  uint8_t sel = data[0] % 4;
  if (sel >= 2) {
    void *out;
    if (gw_inflate(a, body, len, &lim, &out, &len, &err))
      goto out;
    body = out;
  }
  if (gw_decode_traces(a, sel % 2 ? GW_ENC_JSON : GW_ENC_PROTOBUF, body, len, &lim, &req, &err) == GW_OK) {
    /* Whatever decoded must pack again (protobuf-c walks every pointer). */
    size_t n = gw_pb_trace_request_size(req);
    uint8_t *buf = gw_arena_alloc(a, n + 1);
    if (buf)
      gw_pb_trace_request_pack(req, buf);
  }
out:
  gw_arena_destroy(a);
  return 0;
}
