/* testutil.h: helpers shared by the unit tests (reading fixture files). */
#ifndef GW_TESTUTIL_H
#define GW_TESTUTIL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "pb.h"

/* Read a whole file (path relative to tests/fixtures unless absolute) into a malloc'd buffer, NUL-terminated.
 * Fails the test when the file cannot be read. */
char *tu_read_file(const char *path, size_t *len);

/* OTLP values built by hand in an arena (fail the test when it is full). */
void *tu_alloc(struct gw_arena *a, size_t n);
GwAnyValue *tu_av_str(struct gw_arena *a, const char *s);
GwAnyValue *tu_av_int(struct gw_arena *a, int64_t i);
GwAnyValue *tu_av_dbl(struct gw_arena *a, double d);
GwAnyValue *tu_av_bool(struct gw_arena *a, bool b);
GwKeyValue *tu_kv(struct gw_arena *a, const char *k, GwAnyValue *v);

#endif
