/*
 * err.c: the error table (one X-macro in gw.h) and the small heap wrappers.
 * Every status the gateway answers, HTTP or gRPC, and every metric label comes from this table.
 */
#include "core/gw.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct err_row {
  const char *name, *msg;
  int http, grpc;
  bool retry;
  const char *label;
};

static const struct err_row rows[] = {
#define GW_ERR_ROW(name, msg, http, grpc, retry, label) {#name, msg, http, grpc, retry, label},
  GW_ERR_MAP(GW_ERR_ROW)
#undef GW_ERR_ROW
};

static const struct err_row *row(gw_rc rc)
{
  int code = -rc;
  if (code < 0 || code >= GW_E__COUNT)
    code = GW_E_INTERNAL;
  return &rows[code];
}

const char *gw_err_name(gw_rc rc) { return row(rc)->name; }
const char *gw_err_message(gw_rc rc) { return row(rc)->msg; }
int gw_err_http_status(gw_rc rc) { return row(rc)->http; }
int gw_err_grpc_status(gw_rc rc) { return row(rc)->grpc; }
bool gw_err_retryable(gw_rc rc) { return row(rc)->retry; }
const char *gw_err_label(gw_rc rc) { return row(rc)->label; }

gw_rc gw_err_set(struct gw_err *err, gw_rc rc, const char *fmt, ...)
{
  if (err) {
    va_list ap;
    err->rc = rc;
    err->field[0] = '\0';
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return rc;
}

static void oom(size_t n)
{
  fprintf(stderr, "genai-gateway: out of memory allocating %zu bytes\n", n);
  abort();
}

void *gw_malloc(size_t n)
{
  void *p = malloc(n ? n : 1);
  if (!p)
    oom(n);
  return p;
}

void *gw_calloc(size_t n, size_t size)
{
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p)
    oom(n * size);
  return p;
}

void *gw_realloc(void *p, size_t n)
{
  void *q = realloc(p, n ? n : 1);
  if (!q)
    oom(n);
  return q;
}

char *gw_strdup(const char *s)
{
  size_t n = strlen(s) + 1;
  char *p = gw_malloc(n);
  memcpy(p, s, n);
  return p;
}

void gw_hex(char *dst, const void *bytes, size_t n)
{
  static const char digits[] = "0123456789abcdef";
  const unsigned char *b = bytes;
  for (size_t i = 0; i < n; i++) {
    dst[2 * i] = digits[b[i] >> 4];
    dst[2 * i + 1] = digits[b[i] & 15];
  }
  dst[2 * n] = '\0';
}

uint64_t gw_now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t gw_mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
