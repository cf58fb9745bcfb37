/*
 * fuzzutil.h: what several fuzz targets share: a reader over the input, the GenAI key dictionary, and
 * OTLP requests built from input bytes (so that every input is a well-formed request whose spans reach the
 * normalizer, instead of a mutated protobuf body that mostly fails to decode).
 */
#ifndef GW_FUZZUTIL_H
#define GW_FUZZUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "pb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input, consumed front to back; reads past the end give zeros and empty strings. */
struct fz {
  const uint8_t *p, *end;
};
uint8_t fz_u8(struct fz *f);
uint64_t fz_u64(struct fz *f);
/* A length byte, then that many bytes (fewer at the end), as a NUL-terminated arena copy. */
char *fz_str(struct fz *f, struct gw_arena *a);
/* A byte: even picks a key of tests/fuzz/genai.dict by the next byte, odd reads a string (fz_str). */
char *fz_key(struct fz *f, struct gw_arena *a);

/*
 * An ExportTraceServiceRequest (logs: ExportLogsServiceRequest) built from the input and packed: one
 * resource, one scope, spans (log records) with valid ids in two traces and start times a few seconds
 * ago, carrying attributes, span events, status and resource attributes as fuzzutil.c's op table says.
 * *out is arena memory. False when the arena is full.
 */
bool fz_build_traces(struct fz *f, struct gw_arena *a, uint8_t **out, size_t *len);
bool fz_build_logs(struct fz *f, struct gw_arena *a, uint8_t **out, size_t *len);

#endif
