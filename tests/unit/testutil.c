#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

char *tu_read_file(const char *path, size_t *len)
{
  char full[4096];
  if (path[0] == '/')
    snprintf(full, sizeof full, "%s", path);
  else
    snprintf(full, sizeof full, "%s/%s", GW_FIXTURES, path);
  FILE *f = fopen(full, "rb");
  if (!f)
    fail_msg("cannot open %s", full);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  if (fread(buf, 1, (size_t)n, f) != (size_t)n)
    fail_msg("short read %s", full);
  buf[n] = 0;
  fclose(f);
  if (len)
    *len = (size_t)n;
  return buf;
}

void *tu_alloc(struct gw_arena *a, size_t n)
{
  void *p = gw_arena_calloc(a, n);
  assert_non_null(p);
  return p;
}

static GwAnyValue *av(struct gw_arena *a, int value_case)
{
  GwAnyValue *v = tu_alloc(a, sizeof *v);
  gw_pb_any_value_init(v);
  v->value_case = value_case;
  return v;
}

GwAnyValue *tu_av_str(struct gw_arena *a, const char *s)
{
  GwAnyValue *v = av(a, GW_AV_STRING);
  v->string_value = gw_arena_strdup(a, s);
  return v;
}

GwAnyValue *tu_av_int(struct gw_arena *a, int64_t i)
{
  GwAnyValue *v = av(a, GW_AV_INT);
  v->int_value = i;
  return v;
}

GwAnyValue *tu_av_dbl(struct gw_arena *a, double d)
{
  GwAnyValue *v = av(a, GW_AV_DOUBLE);
  v->double_value = d;
  return v;
}

GwAnyValue *tu_av_bool(struct gw_arena *a, bool b)
{
  GwAnyValue *v = av(a, GW_AV_BOOL);
  v->bool_value = b;
  return v;
}

GwKeyValue *tu_kv(struct gw_arena *a, const char *k, GwAnyValue *v)
{
  GwKeyValue *x = tu_alloc(a, sizeof *x);
  gw_pb_key_value_init(x);
  x->key = gw_arena_strdup(a, k);
  x->value = v;
  return x;
}
