/*
 * fuzz_traces.c: ExportTraceServiceRequest decoding, as the receivers call it (gw_decode_traces).
 * Input: one selector byte (bit 0: 0 protobuf, 1 OTLP/JSON), then the body. Limits are small so deep or
 * large inputs reach them. Whatever decodes must pack again: protobuf-c walks every pointer the decoder
 * left in the arena, so a dangling or half-built message is found here rather than in an exporter, and the
 * gateway's own packer (gw_pb_pack) must give the same bytes.
 * A protobuf body is decoded twice: by gw_decode_traces (the one-pass unpack, pb_unpack.c, with its fallback)
 * and by the generic path alone (pre-scan, protobuf-c, UTF-8 repair): the same code and message, and equal
 * trees (tests/pb_equal.h), else abort. The one exception, by design: the one-pass unpack needs less memory
 * than the generic path's estimate, so it may accept what the estimate refused as TOO_LARGE.
 * An OTLP/JSON body is decoded twice too: with attributes in the SDKs' compact form matched as bytes
 * (gw_json_kv_fast) and strings scanned and unescaped 64 bytes a step, then with every attribute walked
 * member by member and strings read byte by byte (gw_json_lex_no_avx512): the same code, message and tree.
 * Every outcome other than a crash, a sanitizer report, a leak, a slow input, a packer mismatch or a
 * mismatch of the two decoders is fine.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../pb_equal.h"
#include "decode/decode.h"
#include "decode/decode_int.h"

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
  gw_rc rc = gw_decode_traces(a, enc, data + 1, size - 1, &lim, &req, &err);
  if (rc == GW_OK) {
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
  if (enc == GW_ENC_PROTOBUF) {
    struct gw_arena *b = gw_arena_create(8 << 20);
    struct gw_err err2;
    GwTraceRequest *req2;
    gw_rc r2 = gw_decode_pb_traces_generic(b, data + 1, size - 1, &lim, &req2, &err2);
    char why[2048];
    if (rc == GW_OK && r2 == GW_ERR(TOO_LARGE)) {
      /* accepted in less memory than the estimate asked for */
    } else if (rc != r2 || (rc && strcmp(err.msg, err2.msg)) ||
               (!rc && !pb_equal((const ProtobufCMessage *)req, (const ProtobufCMessage *)req2, why, sizeof why))) {
      fprintf(stderr, "one-pass unpack and generic path differ: %d \"%s\" vs %d \"%s\"; %s\n", rc,
              rc ? err.msg : "", r2, r2 ? err2.msg : "", rc || r2 ? "" : why);
      abort();
    }
    gw_arena_destroy(b);
  }
  if (enc == GW_ENC_JSON) {
    /* attributes in the compact form read by matching bytes, and by the member walk; strings by 64-byte
     * steps and by the byte loops: the same outcome */
    struct gw_arena *b = gw_arena_create(8 << 20);
    struct gw_err err2;
    GwTraceRequest *req2;
    gw_json_kv_fast = false;
    gw_json_lex_no_avx512 = true;
    gw_rc r2 = gw_decode_traces(b, enc, data + 1, size - 1, &lim, &req2, &err2);
    gw_json_kv_fast = true;
    gw_json_lex_no_avx512 = false;
    char why[2048];
    if (rc != r2 || (rc && strcmp(err.msg, err2.msg)) ||
        (!rc && !pb_equal((const ProtobufCMessage *)req, (const ProtobufCMessage *)req2, why, sizeof why))) {
      fprintf(stderr, "compact attributes and the member walk differ: %d \"%s\" vs %d \"%s\"; %s\n", rc,
              rc ? err.msg : "", r2, r2 ? err2.msg : "", rc || r2 ? "" : why);
      abort();
    }
    gw_arena_destroy(b);
  }
  gw_arena_destroy(a);
  return 0;
}
