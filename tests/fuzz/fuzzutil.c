/*
 * fuzzutil.c: see fuzzutil.h. The request builder reads ops, one byte each, until the input ends:
 *   op & 7  0: new span / log record (name: a key; parent: the previous span when op & 0x10)
 *           1-3: attribute on the current span (on its last event when op & 8), value type (op >> 4) % 7
 *           4: span event (logs: the record's body, a value of type (op >> 4) % 7)
 *           5: resource attribute   6: status code and message (logs: severity)   7: scope attribute
 * Values: string, int, double (raw bits: NaN, inf), bool, array, kvlist (nested up to 3), bytes.
 */
#include "fuzzutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ITEMS 64 /* spans, attributes per list, events per span */

static char **keys;
static size_t nkeys;

/* genai.dict: one "key" per line, # comments. Read once; a missing file leaves only raw keys. */
static void load_keys(void)
{
  static bool loaded;
  if (loaded)
    return;
  loaded = true;
  FILE *f = fopen(GW_FUZZ_DIR "/genai.dict", "r");
  if (!f)
    return;
  char line[256];
  while (fgets(line, sizeof line, f)) {
    char *q = strchr(line, '"'), *e = q ? strrchr(q + 1, '"') : NULL;
    if (line[0] == '#' || !q || !e)
      continue;
    keys = realloc(keys, (nkeys + 1) * sizeof *keys);
    if (!keys)
      abort();
    keys[nkeys++] = strndup(q + 1, (size_t)(e - q - 1));
  }
  fclose(f);
}

uint8_t fz_u8(struct fz *f) { return f->p < f->end ? *f->p++ : 0; }

uint64_t fz_u64(struct fz *f)
{
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | fz_u8(f);
  return v;
}

char *fz_str(struct fz *f, struct gw_arena *a)
{
  size_t n = fz_u8(f), left = (size_t)(f->end - f->p);
  if (n > left)
    n = left;
  char *s = gw_arena_strndup(a, (const char *)f->p, n);
  f->p += n;
  return s;
}

char *fz_key(struct fz *f, struct gw_arena *a)
{
  load_keys();
  if (fz_u8(f) & 1 || !nkeys)
    return fz_str(f, a);
  return keys[fz_u8(f) % nkeys];
}

static void *alloc(struct gw_arena *a, size_t n) { return gw_arena_calloc(a, n); }

static GwAnyValue *value(struct fz *f, struct gw_arena *a, unsigned type, int depth);

static GwKeyValue *kv(struct fz *f, struct gw_arena *a, unsigned type, int depth)
{
  GwKeyValue *kv = alloc(a, sizeof *kv);
  if (!kv)
    return NULL;
  gw_pb_key_value_init(kv);
  kv->key = fz_key(f, a);
  kv->value = value(f, a, type, depth);
  return kv->key && kv->value ? kv : NULL;
}

static GwAnyValue *value(struct fz *f, struct gw_arena *a, unsigned type, int depth)
{
  GwAnyValue *v = alloc(a, sizeof *v);
  if (!v)
    return NULL;
  gw_pb_any_value_init(v);
  if (depth >= 3 && (type == 4 || type == 5))
    type = 0;
  switch (type) {
  case 1:
    v->value_case = GW_AV_INT;
    v->int_value = (int64_t)fz_u64(f);
    break;
  case 2: {
    uint64_t bits = fz_u64(f);
    v->value_case = GW_AV_DOUBLE;
    memcpy(&v->double_value, &bits, sizeof bits);
    break;
  }
  case 3:
    v->value_case = GW_AV_BOOL;
    v->bool_value = fz_u8(f) & 1;
    break;
  case 4:
  case 5: {
    size_t n = fz_u8(f) % 5;
    if (type == 4) {
      GwArrayValue *arr = alloc(a, sizeof *arr);
      GwAnyValue **vals = alloc(a, (n + 1) * sizeof *vals);
      if (!arr || !vals)
        return NULL;
      gw_pb_array_value_init(arr);
      for (size_t i = 0; i < n; i++)
        if (!(vals[i] = value(f, a, fz_u8(f) % 7, depth + 1)))
          return NULL;
      arr->values = vals;
      arr->n_values = n;
      v->value_case = GW_AV_ARRAY;
      v->array_value = arr;
    } else {
      GwKeyValueList *l = alloc(a, sizeof *l);
      GwKeyValue **kvs = alloc(a, (n + 1) * sizeof *kvs);
      if (!l || !kvs)
        return NULL;
      gw_pb_kvlist_init(l);
      for (size_t i = 0; i < n; i++)
        if (!(kvs[i] = kv(f, a, fz_u8(f) % 7, depth + 1)))
          return NULL;
      l->values = kvs;
      l->n_values = n;
      v->value_case = GW_AV_KVLIST;
      v->kvlist_value = l;
    }
    break;
  }
  case 6: {
    char *s = fz_str(f, a);
    if (!s)
      return NULL;
    v->value_case = GW_AV_BYTES;
    v->bytes_value = (ProtobufCBinaryData){strlen(s), (uint8_t *)s};
    break;
  }
  default:
    v->value_case = GW_AV_STRING;
    if (!(v->string_value = fz_str(f, a)))
      return NULL;
  }
  return v;
}

/* Append item to a pointer array in the arena (room for MAX_ITEMS, later items are left out); false when
 * item is NULL or the arena is full. A macro: the arrays have different element types. */
#define PUSH(a, arr, n, item)                                                                              \
  ((n) >= MAX_ITEMS ? (item) != NULL                                                                       \
   : (n) == 0 && !((arr) = alloc((a), MAX_ITEMS * sizeof *(arr))) ? false                                  \
                                                                 : ((arr)[(n)++] = (item)) != NULL)

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* 16-byte trace ids of two traces, 8-byte span ids 1, 2, 3, ... (never all zero). */
static uint8_t *id(struct gw_arena *a, size_t len, uint8_t fill)
{
  uint8_t *b = alloc(a, len);
  if (b)
    memset(b, fill, len);
  return b;
}

bool fz_build_traces(struct fz *f, struct gw_arena *a, uint8_t **out, size_t *len)
{
  GwTraceRequest *req = alloc(a, sizeof *req);
  GwResourceSpans *rs = alloc(a, sizeof *rs);
  GwResource *res = alloc(a, sizeof *res);
  GwScopeSpans *ss = alloc(a, sizeof *ss);
  GwScope *scope = alloc(a, sizeof *scope);
  if (!req || !rs || !res || !ss || !scope)
    return false;
  gw_pb_trace_request_init(req);
  gw_pb_resource_spans_init(rs);
  gw_pb_resource_init(res);
  gw_pb_scope_spans_init(ss);
  gw_pb_scope_init(scope);
  scope->name = "fuzz";
  rs->resource = res;
  ss->scope = scope;
  if (!PUSH(a, req->resource_spans, req->n_resource_spans, rs) || !PUSH(a, rs->scope_spans, rs->n_scope_spans, ss))
    return false;
  uint64_t now = now_ns();
  GwSpan *sp = NULL;
  while (f->p < f->end) {
    uint8_t op = fz_u8(f);
    unsigned kind = op & 7, type = (op >> 4) % 7;
    if (!sp || kind == 0) {
      GwSpan *prev = sp;
      if (!(sp = alloc(a, sizeof *sp)))
        return false;
      gw_pb_span_init(sp);
      sp->trace_id = (ProtobufCBinaryData){16, id(a, 16, 0x10 + (op >> 3 & 1))};
      sp->span_id = (ProtobufCBinaryData){8, id(a, 8, (uint8_t)(ss->n_spans + 1))};
      if (prev && op & 0x10)
        sp->parent_span_id = prev->span_id;
      sp->name = fz_key(f, a);
      sp->kind = (op >> 5) % 6;
      sp->start_time_unix_nano = now - 10000000000ull + fz_u8(f) * 1000000ull;
      sp->end_time_unix_nano = sp->start_time_unix_nano + fz_u8(f) * 10000000ull;
      if (!sp->trace_id.data || !sp->span_id.data || !sp->name || !PUSH(a, ss->spans, ss->n_spans, sp))
        return false;
      if (kind == 0)
        continue;
    }
    switch (kind) {
    case 1:
    case 2:
    case 3:
      if (op & 8 && sp->n_events) {
        GwSpanEvent *ev = sp->events[sp->n_events - 1];
        if (!PUSH(a, ev->attributes, ev->n_attributes, kv(f, a, type, 0)))
          return false;
      } else if (!PUSH(a, sp->attributes, sp->n_attributes, kv(f, a, type, 0))) {
        return false;
      }
      break;
    case 4: {
      GwSpanEvent *ev = alloc(a, sizeof *ev);
      if (!ev)
        return false;
      gw_pb_span_event_init(ev);
      ev->name = fz_key(f, a);
      ev->time_unix_nano = sp->start_time_unix_nano + fz_u8(f);
      if (!ev->name || !PUSH(a, sp->events, sp->n_events, ev))
        return false;
      break;
    }
    case 5:
      if (!PUSH(a, res->attributes, res->n_attributes, kv(f, a, type, 0)))
        return false;
      break;
    case 6: {
      GwStatus *st = alloc(a, sizeof *st);
      if (!st)
        return false;
      gw_pb_status_init(st);
      st->code = fz_u8(f) % 3;
      if (!(st->message = fz_str(f, a)))
        return false;
      sp->status = st;
      break;
    }
    default:
      if (!PUSH(a, scope->attributes, scope->n_attributes, kv(f, a, type, 0)))
        return false;
    }
  }
  *len = gw_pb_trace_request_size(req);
  if (!(*out = gw_arena_alloc(a, *len + 1)))
    return false;
  gw_pb_trace_request_pack(req, *out);
  return true;
}

bool fz_build_logs(struct fz *f, struct gw_arena *a, uint8_t **out, size_t *len)
{
  GwLogsRequest *req = alloc(a, sizeof *req);
  GwResourceLogs *rl = alloc(a, sizeof *rl);
  GwResource *res = alloc(a, sizeof *res);
  GwScopeLogs *sl = alloc(a, sizeof *sl);
  GwScope *scope = alloc(a, sizeof *scope);
  if (!req || !rl || !res || !sl || !scope)
    return false;
  gw_pb_logs_request_init(req);
  gw_pb_resource_logs_init(rl);
  gw_pb_resource_init(res);
  gw_pb_scope_logs_init(sl);
  gw_pb_scope_init(scope);
  scope->name = "fuzz";
  rl->resource = res;
  sl->scope = scope;
  if (!PUSH(a, req->resource_logs, req->n_resource_logs, rl) || !PUSH(a, rl->scope_logs, rl->n_scope_logs, sl))
    return false;
  uint64_t now = now_ns();
  GwLogRecord *lr = NULL;
  while (f->p < f->end) {
    uint8_t op = fz_u8(f);
    unsigned kind = op & 7, type = (op >> 4) % 7;
    if (!lr || kind == 0) {
      if (!(lr = alloc(a, sizeof *lr)))
        return false;
      gw_pb_log_record_init(lr);
      lr->trace_id = (ProtobufCBinaryData){16, id(a, 16, 0x10 + (op >> 3 & 1))};
      lr->span_id = (ProtobufCBinaryData){8, id(a, 8, (uint8_t)(op >> 4 & 3) + 1)};
      lr->event_name = fz_key(f, a);
      lr->time_unix_nano = now - 10000000000ull + fz_u8(f) * 1000000ull;
      if (!lr->trace_id.data || !lr->span_id.data || !lr->event_name ||
          !PUSH(a, sl->log_records, sl->n_log_records, lr))
        return false;
      if (kind == 0)
        continue;
    }
    switch (kind) {
    case 4:
      if (!(lr->body = value(f, a, type, 0)))
        return false;
      break;
    case 5:
      if (!PUSH(a, res->attributes, res->n_attributes, kv(f, a, type, 0)))
        return false;
      break;
    case 6:
      lr->severity_number = fz_u8(f) % 25;
      if (!(lr->severity_text = fz_str(f, a)))
        return false;
      break;
    case 7:
      if (!PUSH(a, scope->attributes, scope->n_attributes, kv(f, a, type, 0)))
        return false;
      break;
    default:
      if (!PUSH(a, lr->attributes, lr->n_attributes, kv(f, a, type, 0)))
        return false;
    }
  }
  *len = gw_pb_logs_request_size(req);
  if (!(*out = gw_arena_alloc(a, *len + 1)))
    return false;
  gw_pb_logs_request_pack(req, *out);
  return true;
}
