/*
 * fuzz_traces.c: ExportTraceServiceRequest decoding, as the receivers call it (gw_decode_traces).
 * Input: one selector byte (bit 0: 0 protobuf, 1 OTLP/JSON), then the body. Limits are small so deep or
 * large inputs reach them. Whatever decodes must pack again: protobuf-c walks every pointer the decoder
 * left in the arena, so a dangling or half-built message is found here rather than in an exporter, and the
 * gateway's own packer (gw_pb_pack) must give the same bytes.
 * Every outcome other than a crash, a sanitizer report, a leak, a slow input or a packer mismatch is fine.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
  enum gw_encoding enc = data[0] & 1 ? GW_ENC_JSON : GW_ENC_PROTOBUF;
  if (gw_decode_traces(a, enc, data + 1, size - 1, &lim, &req, &err) == GW_OK) {
    size_t n = gw_pb_trace_request_size(req);
    uint8_t *buf = gw_arena_alloc(a, n + 1);
    if (buf) {
      gw_pb_trace_request_pack(req, buf);
      /* the gateway's own packer (pb_pack.c, what the exporters forward) gives protobuf-c's bytes exactly */
      size_t m = 0;
      const uint8_t *own = gw_pb_pack(a, (const ProtobufCMessage *)req, &m);
      if (own && (m != n || memcmp(own, buf, n) != 0))
        abort();
    }
  }
  gw_arena_destroy(a);
  return 0;
}
