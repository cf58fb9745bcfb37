/*
 * decode.h: OTLP request bodies (protobuf or OTLP/JSON, optionally gzip) into protobuf-c structs that
 * live in the request arena. Both encodings end in the same structs, so everything downstream sees one
 * representation.
 *
 * Bounds, all enforced before or while decoding, never after: the decompressed size (max_bytes), the
 * AnyValue/KeyValueList nesting depth (max_depth: protobuf-c has no limit of its own and overflows the
 * stack on deep input, so a wire-format pre-scan checks depth before unpacking, or the one-pass unpack
 * checks it as it goes), and the arena cap.
 * Errors name the problem and position: GW_E_DECODE / TOO_DEEP / TOO_LARGE / BAD_GZIP.
 * Strings are made valid UTF-8 (invalid sequences replaced by U+FFFD, NUL removed) and counted.
 * Thread-safe: no shared state.
 */
#ifndef GW_DECODE_H
#define GW_DECODE_H

#include "core/arena.h"
#include "core/gw.h"
#include "pb.h"

enum gw_encoding { GW_ENC_PROTOBUF, GW_ENC_JSON };

/* How a body is compressed: none, the deflate family (gzip, or the zlib format that HTTP's and gRPC's
 * "deflate" mean: gw_inflate tells them apart by their header), or zstd (RFC 8878). */
enum gw_coding { GW_CODING_NONE, GW_CODING_DEFLATE, GW_CODING_ZSTD, GW_CODING_SNAPPY, GW_CODING_LZ4 };

/* The spans of a traces request with a string made valid UTF-8 at decode (their own, or their resource's
 * or scope's): DESIGN §3 counts it in their rows' enrichment_flags (invalid_utf8). GwSpan pointers, in the
 * request's arena, a span possibly more than once. (gw_pb_unpack_raw lists the strings it repaired in the
 * same kind of list.) */
struct gw_decode_repaired {
  const void **spans;
  size_t n, cap;
};

struct gw_decode_limits {
  size_t max_bytes;       /* body after decompression */
  uint32_t max_depth;     /* AnyValue nesting */
  uint32_t max_ratio;     /* gzip: output bytes per input byte allowed past ratio_min_bytes; 0: no ratio cap */
  size_t ratio_min_bytes; /* gzip: output any body may reach whatever its ratio */
  struct gw_decode_repaired *repaired; /* traces: filled when not NULL (starts empty) */
};

/* Note span (a GwSpan, or a string) in r; false when the arena is out of room. */
bool gw_decode_repaired_add(struct gw_arena *a, struct gw_decode_repaired *r, const void *span);

/* Inflate gzip (RFC 1952, also concatenated members) or zlib (RFC 1950: what HTTP's and gRPC's "deflate"
 * mean) into one arena buffer that never grows past the limit: max_bytes, and max(ratio_min_bytes,
 * max_ratio x in_len) when max_ratio is set. Output past it is TOO_LARGE at once, so a bomb costs at most
 * that much memory and the time to inflate it. The buffer is a gw_arena_alloc_big one, grown by doubling
 * without copies and cut to the output (NUL-terminated) at the end. */
gw_rc gw_inflate(struct gw_arena *a, const void *in, size_t in_len, const struct gw_decode_limits *lim, void **out,
                 size_t *out_len, struct gw_err *err);

/* zstd (RFC 8878: concatenated and skippable frames too) into the request arena under the same limits as
 * gw_inflate. Frames that state their content size are summed first (past the limit: TOO_LARGE before any
 * decoding) and decoded straight into a buffer of that size, as are frames whose blocks bound their size
 * within the limit; others are decoded as a stream with their window capped at GW_ZSTD_WINDOW_MAX (RFC
 * 9659's limit for HTTP), the decoder's window and state taken from the arena. Corrupt data (or data needing a dictionary), a bad checksum, a truncated frame or trailing bytes:
 * BAD_GZIP. */
#define GW_ZSTD_WINDOW_LOG_MAX 23
#define GW_ZSTD_WINDOW_MAX ((size_t)1 << GW_ZSTD_WINDOW_LOG_MAX)
gw_rc gw_unzstd(struct gw_arena *a, const void *in, size_t in_len, const struct gw_decode_limits *lim, void **out,
                size_t *out_len, struct gw_err *err);

/* snappy, the block format or the framing format (told apart by the stream identifier at the start), into
 * the request arena under the same limits as gw_inflate. The uncompressed size is read from the block's
 * length or summed from the chunks' headers before anything is decoded: past the limit is TOO_LARGE at
 * once; within it the body is decoded in one pass into a buffer of exactly that size. Framed chunks' CRC-32C
 * are checked. Corrupt data, a length that does not match, a bad checksum, a truncated chunk, a reserved
 * unskippable chunk or trailing bytes: BAD_GZIP. */
gw_rc gw_unsnappy(struct gw_arena *a, const void *in, size_t in_len, const struct gw_decode_limits *lim, void **out,
                  size_t *out_len, struct gw_err *err);
/* Whether a body starts with the snappy framing format's stream identifier. */
bool gw_snappy_framed(const void *in, size_t in_len);
/* CRC-32C (Castagnoli) of [p, p + n), with SSE 4.2 where the CPU has it (gw_crc32c_portable_only: never, for
 * tests). */
uint32_t gw_crc32c(const void *p, size_t n);
extern bool gw_crc32c_portable_only;

/* lz4's frame format (concatenated and skippable frames, linked or independent blocks, checksums checked)
 * into the request arena under the same limits as gw_inflate. The output's size is found before anything is
 * decoded (stated sizes, stored blocks, compressed blocks' sequences walked): past the limit is TOO_LARGE at
 * once; within it the body is decoded in one pass into a buffer of that size, blocks straight into it.
 * Corrupt data, a bad checksum, a size that does not match, a truncated frame, a frame needing a dictionary
 * or bytes that are not a frame: BAD_GZIP. */
gw_rc gw_unlz4(struct gw_arena *a, const void *in, size_t in_len, const struct gw_decode_limits *lim, void **out,
               size_t *out_len, struct gw_err *err);
/* XXH32 of [data, data + len) (the LZ4 frame format's checksums). */
uint32_t gw_xxh32(const void *data, size_t len, uint32_t seed);

/* gw_inflate, gw_unzstd, gw_unsnappy or gw_unlz4, as coding says (GW_CODING_NONE: *out is in itself). */
gw_rc gw_decompress(struct gw_arena *a, enum gw_coding coding, const void *in, size_t in_len,
                    const struct gw_decode_limits *lim, void **out, size_t *out_len, struct gw_err *err);

/* The most output in_len compressed bytes may give under lim; *by_ratio: the ratio cap is what sets it. And
 * the TOO_LARGE error for passing it, naming the format (fmt: "gzip", "deflate", "zstd"). */
size_t gw_decompress_limit(size_t in_len, const struct gw_decode_limits *lim, bool *by_ratio);
gw_rc gw_decompress_too_large(struct gw_err *err, const char *fmt, const struct gw_decode_limits *lim, size_t limit,
                              bool by_ratio, size_t in_len);

/* How many bytes a gzip (RFC 1952, concatenated members too) or zlib body inflates to, read from its
 * deflate codes without inflating: work in proportion to len, not to the output. 0 with *out the exact
 * size; 1 once more than limit bytes are counted (*out > limit); -1 when it cannot tell (malformed,
 * truncated, a preset dictionary, trailing bytes): inflating it decides. Checksums are not verified. */
int gw_deflate_size(const void *body, size_t len, size_t limit, size_t *out);

/* Check a protobuf body's nesting without unpacking it: every length-delimited field is walked as the
 * OTLP schema says (known message fields recursed into, others skipped). Fails with TOO_DEEP past max_depth,
 * DECODE on malformed wire data. kind: which top-level message. *need (when not NULL): about what
 * protobuf-c will allocate to unpack it (structs, strings, pointer arrays, unknown fields, scan slabs). */
enum gw_pb_kind { GW_PB_TRACES_REQUEST, GW_PB_LOGS_REQUEST };
/* A protobuf varint at *p (moved past it); false when it runs past end or over 10 bytes. */
bool gw_pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v);
gw_rc gw_pb_prescan(enum gw_pb_kind kind, const void *buf, size_t len, uint32_t max_depth, size_t *need,
                    struct gw_err *err);

/* Pack a message (the forwarded request) as protobuf_c_message_pack does, byte for byte, with each
 * sub-message's size computed once (pb_pack.c): gw_pb_size measures m and keeps its sub-messages' sizes
 * in s (false when m holds a label or type our .proto files do not use, or when out of memory: pack it
 * with protobuf-c then); gw_pb_pack_sized writes it with them. gw_pb_pack does both into the arena, with
 * protobuf-c where gw_pb_size says no; NULL when the arena is out of room. */
struct gw_pb_sizes {
  uint32_t *v; /* sub-message sizes and string lengths, in the order the pack meets them */
  struct gw_arena *a; /* where v grows; NULL: malloc'd (gw_pb_sizes_free) */
  size_t n, cap, next;
  bool kv_ok, any_ok; /* KeyValue, AnyValue: their descriptors are the ones their own paths were written for */
  const struct gw_pb_raw *raw; /* gw_pb_pack_spliced: spans that may be copied (NULL: none) */
  size_t raw_at;               /* where the next span is looked up in raw */
};
bool gw_pb_size(struct gw_pb_sizes *s, const ProtobufCMessage *m, size_t *len);
size_t gw_pb_pack_sized(struct gw_pb_sizes *s, const ProtobufCMessage *m, uint8_t *out);
void gw_pb_sizes_free(struct gw_pb_sizes *s);
uint8_t *gw_pb_pack(struct gw_arena *a, const ProtobufCMessage *m, size_t *len);

/*
 * Where each span of a protobuf request lies in its body, so that the forwarded request can copy a span's
 * bytes rather than pack its tree again (gw_pb_pack_spliced). The one-pass unpack records it; the generic
 * path and OTLP/JSON record nothing (n stays 0: every span is packed).
 * A span is copied only when its tree is still what the bytes say, but for attributes appended after
 * the decoded ones (the cost annotations and stamps, which build new arrays): the decoded attribute
 * pointers still lead sp->attributes, and nothing marked it changed. Whatever rewrites a decoded span in
 * any other way (redaction: gw_redact_request_raw) must call gw_pb_raw_changed for it.
 */
struct gw_pb_span_raw {
  const GwSpan *span;
  const uint8_t *p;         /* its bytes in the body */
  GwKeyValue **attrs;       /* its attributes as decoded */
  uint32_t len, attr_end;   /* bytes; offset past its last field numbered 9 (attributes) or less */
  uint32_t nattr;
  bool changed;
};
struct gw_pb_raw {
  struct gw_pb_span_raw *v;
  size_t n, cap;
};
/* Mark sp changed. *cursor: where the last lookup ended (start at 0; spans are looked up in tree order). */
void gw_pb_raw_changed(struct gw_pb_raw *raw, size_t *cursor, const GwSpan *sp);
/* gw_pb_pack of an ExportTraceServiceRequest, copying the spans raw says are unchanged (with their
 * appended attributes packed in after their decoded ones). The bytes decode to the same tree as
 * gw_pb_pack's; they are gw_pb_pack's own when the client wrote the spans in field order without default
 * values. raw NULL or empty, or gw_pb_splice false: gw_pb_pack. */
uint8_t *gw_pb_pack_spliced(struct gw_arena *a, const GwTraceRequest *req, const struct gw_pb_raw *raw, size_t *len);
/* Tests and bench_pipeline: false packs every span (gw_pb_pack) even when raw says it could be copied. */
extern bool gw_pb_splice;

/* Decode an ExportTraceServiceRequest. *out lives in the arena. */
gw_rc gw_decode_traces(struct gw_arena *a, enum gw_encoding enc, const void *body, size_t len,
                       const struct gw_decode_limits *lim, GwTraceRequest **out, struct gw_err *err);
/* The same, with raw (when not NULL) filled as struct gw_pb_raw says. The body must stay as it is while raw
 * is used. */
gw_rc gw_decode_traces_raw(struct gw_arena *a, enum gw_encoding enc, const void *body, size_t len,
                           const struct gw_decode_limits *lim, GwTraceRequest **out, struct gw_pb_raw *raw,
                           struct gw_err *err);
/* The JSON half, called by gw_decode_traces (decode_json.c). */
gw_rc gw_decode_json_traces(struct gw_arena *a, const char *body, size_t len, const struct gw_decode_limits *lim,
                            GwTraceRequest **out, struct gw_err *err);

/* Decode an ExportLogsServiceRequest, with the same bounds. *out lives in the arena. */
gw_rc gw_decode_logs(struct gw_arena *a, enum gw_encoding enc, const void *body, size_t len,
                     const struct gw_decode_limits *lim, GwLogsRequest **out, struct gw_err *err);
gw_rc gw_decode_json_logs(struct gw_arena *a, const char *body, size_t len, const struct gw_decode_limits *lim,
                          GwLogsRequest **out, struct gw_err *err);

/* Repair a string in place (it is arena memory) or into a new arena copy when it must grow: invalid
 * UTF-8 becomes U+FFFD, NUL bytes are removed. Returns the string to use; *fixed is set when changed.
 * NULL only when the arena is exhausted. */
char *gw_utf8_fix(struct gw_arena *a, char *s, size_t len, bool *fixed);
/* s[0..len) is valid UTF-8 without NUL bytes: what gw_utf8_fix would leave as it is. */
bool gw_utf8_valid(const char *s, size_t len);
/* Tests: the SSE2 scan of ASCII runs even where the CPU has AVX-512 (both find the same bytes). */
extern bool gw_utf8_no_avx512;

/* One-pass protobuf unpack (pb_unpack.c): the body straight into the protobuf-c structs of the request, in
 * the arena, with gw_pb_prescan's checks on the way and every string checked to be valid UTF-8 as it is
 * copied (and repaired with gw_utf8_fix when it is not). GW_OK with *out the request (equal, field for field,
 * to what the generic path, gw_decode_pb_traces_generic / _logs_generic, makes of the body); a gw_pb_prescan
 * error (the same code and message); or GW_PB_FALLBACK when the body holds something it leaves to the
 * generic path (unknown fields, a message field twice, non-canonical framing protobuf-c reads differently,
 * the arena full):
 * the caller rewinds the arena (gw_arena_rewind) and decodes it with the generic path. The arena holds
 * partial results after anything but GW_OK. */
#define GW_PB_FALLBACK 1
int gw_pb_unpack(enum gw_pb_kind kind, struct gw_arena *a, const void *buf, size_t len, uint32_t max_depth,
                 ProtobufCMessage **out, struct gw_err *err);
/* The same, recording where each span lies in buf (raw, when not NULL) and the strings it repaired
 * (fixed, when not NULL: pointers into the tree); both emptied on anything but GW_OK. */
int gw_pb_unpack_raw(enum gw_pb_kind kind, struct gw_arena *a, const void *buf, size_t len, uint32_t max_depth,
                     ProtobufCMessage **out, struct gw_pb_raw *raw, struct gw_decode_repaired *fixed, struct gw_err *err);
static inline int gw_pb_unpack_traces(struct gw_arena *a, const void *buf, size_t len, uint32_t max_depth,
                                      GwTraceRequest **out, struct gw_err *err)
{
  return gw_pb_unpack(GW_PB_TRACES_REQUEST, a, buf, len, max_depth, (ProtobufCMessage **)(void *)out, err);
}
static inline int gw_pb_unpack_logs(struct gw_arena *a, const void *buf, size_t len, uint32_t max_depth,
                                    GwLogsRequest **out, struct gw_err *err)
{
  return gw_pb_unpack(GW_PB_LOGS_REQUEST, a, buf, len, max_depth, (ProtobufCMessage **)(void *)out, err);
}

/* The generic protobuf path alone: gw_pb_prescan, protobuf-c's unpack, the UTF-8 repair walk (what
 * gw_decode_traces / gw_decode_logs fall back to; tests compare the two). */
gw_rc gw_decode_pb_traces_generic(struct gw_arena *a, const void *body, size_t len,
                                  const struct gw_decode_limits *lim, GwTraceRequest **out, struct gw_err *err);
gw_rc gw_decode_pb_logs_generic(struct gw_arena *a, const void *body, size_t len, const struct gw_decode_limits *lim,
                                GwLogsRequest **out, struct gw_err *err);
/* False: gw_decode_traces / gw_decode_logs use the generic path only (bench_pipeline -u). Set it before
 * any decoding starts. */
extern bool gw_decode_pb_fast;
/* False: OTLP/JSON attributes are read member by member even in the SDKs' compact form (tests compare the
 * two). */
extern bool gw_json_kv_fast;

#endif
