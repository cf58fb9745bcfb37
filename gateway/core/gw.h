/*
 * gw.h: forward declarations and the error codes shared by every module.
 *
 * Every function that can fail returns a gw_rc: 0 is OK, negative is an error from the table in err.c.
 * Detail about a failure travels in a struct gw_err filled where the fact is known. It never carries a
 * secret or prompt content, only positions and sizes ("resourceSpans[0]...traceId: 15 bytes, want 16").
 */
#ifndef GW_H
#define GW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* name, message, HTTP status, gRPC status, retryable, metric label */
#define GW_ERR_MAP(X)                                                                                         \
  X(OK, "ok", 200, 0, 0, "ok")                                                                               \
  X(NOMEM, "out of memory", 500, 13, 1, "nomem")                                                             \
  X(INVALID, "invalid request", 400, 3, 0, "invalid")                                                        \
  X(DECODE, "request does not decode", 400, 3, 0, "decode")                                                  \
  X(TOO_DEEP, "value nested too deep", 400, 3, 0, "too_deep")                                                \
  X(TOO_LARGE, "request too large", 413, 8, 0, "too_large")                                                  \
  X(HEADERS_TOO_LARGE, "request headers too large", 431, 8, 0, "headers_too_large")                          \
  X(BAD_GZIP, "body is not valid gzip, deflate or zstd", 400, 3, 0, "bad_gzip")                                \
  X(UNSUPPORTED_MEDIA, "unsupported content type", 415, 3, 0, "content_type")                               \
  X(NOT_FOUND, "not found", 404, 12, 0, "not_found")                                                         \
  X(METHOD, "method not allowed", 405, 12, 0, "method")                                                      \
  X(UNAUTHENTICATED, "a valid bearer token is required", 401, 16, 0, "unauthenticated")                      \
  X(FULL, "spool full, retry later", 429, 8, 1, "spool_full")                                                \
  X(BUSY, "too many request bytes in flight, retry later", 503, 14, 1, "busy")                               \
  X(SHUTDOWN, "shutting down", 503, 14, 1, "shutdown")                                                       \
  X(DEADLINE, "deadline exceeded before the request was done", 504, 4, 1, "deadline")                         \
  X(CANCELLED, "the client went away before the request was done", 499, 1, 0, "cancelled")                   \
  X(CONFIG, "configuration error", 500, 13, 0, "config")                                                     \
  X(IO, "i/o error", 500, 13, 1, "io")                                                                       \
  X(SPOOL_IO, "spool write failed, retry later", 503, 14, 1, "spool_io")                                     \
  X(DB_CONN, "database unavailable", 503, 14, 1, "db_conn")                                                  \
  X(DB_DATA, "database rejected data", 500, 13, 0, "db_data")                                                \
  X(INTERNAL, "internal error", 500, 13, 0, "internal")

typedef enum {
#define GW_ERR_ENUM(name, msg, http, grpc, retry, label) GW_E_##name,
  GW_ERR_MAP(GW_ERR_ENUM)
#undef GW_ERR_ENUM
  GW_E__COUNT
} gw_code;

/* gw_rc is 0 (OK) or the negated gw_code. */
typedef int gw_rc;
#define GW_OK 0
#define GW_ERR(code) (-(int)GW_E_##code)

/* Failure detail: a code and a message naming the problem (position, sizes), never secrets or content. */
struct gw_err {
  gw_rc rc;
  char msg[512];
  char field[160]; /* the request field the error is about, as a path (OTLP/JSON decode); "" when unknown.
                    * gw_err_set clears it; a 400 names it in its google.rpc.BadRequest details */
};

/* Table lookups for an rc; unknown codes map to INTERNAL. Thread-safe (read-only table). */
const char *gw_err_name(gw_rc rc);
const char *gw_err_message(gw_rc rc);
int gw_err_http_status(gw_rc rc);
int gw_err_grpc_status(gw_rc rc);
bool gw_err_retryable(gw_rc rc);
const char *gw_err_label(gw_rc rc);

/* Fill err (may be NULL) with rc and a printf-style message; returns rc so callers can `return gw_err_set(...)`. */
gw_rc gw_err_set(struct gw_err *err, gw_rc rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Small heap wrappers: abort with a message on OOM (process-lifetime and spool allocations only; request
 * allocations go through the arena, whose cap is a request error). */
void *gw_malloc(size_t n);
void *gw_calloc(size_t n, size_t size);
void *gw_realloc(void *p, size_t n);
char *gw_strdup(const char *s);

/* Lowercase hex of n bytes into dst (2n + 1 bytes, NUL-terminated): ids, digests. */
void gw_hex(char *dst, const void *bytes, size_t n);

/* Monotonic and wall clocks. */
uint64_t gw_now_ns(void);      /* CLOCK_REALTIME, ns since the epoch */
uint64_t gw_mono_ns(void);     /* CLOCK_MONOTONIC */

#endif
