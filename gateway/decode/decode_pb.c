/*
 * decode_pb.c: binary OTLP into protobuf-c structs allocated in the request arena.
 *
 * protobuf-c recurses once per nested message and has no depth limit: a request with AnyValue nested a
 * few thousand deep overflows the stack inside libprotobuf-c. So a pre-scan walks the wire format first,
 * following only the fields the OTLP schema declares as messages, and refuses input deeper than the
 * configured limit or malformed at the wire level, before protobuf-c sees it.
 * The same walk adds up what protobuf-c will allocate (each message struct, string copy, pointer array,
 * unknown-field record and its scan slabs, from the generated descriptors): a body of tiny messages
 * unpacks to 30 or more times its size, so a request whose estimate does not fit its arena (or the
 * in-flight budget) is refused before protobuf-c touches memory, not after it has filled the arena.
 *
 * After unpacking, every string of the request is made valid UTF-8 (gw_utf8_fix) and the repairs are
 * counted. protobuf-c hands strings over NUL-terminated, so a string with an embedded NUL byte would arrive
 * cut at it, its tail lost. So when the pre-scan finds a NUL in a string field, the body is copied and, in
 * the string fields of the copy, each NUL byte becomes 0xff and each 0xff byte 0xfe (two bytes no UTF-8
 * text holds, each repaired alone to U+FFFD); the repair walk turns the 0xff bytes back into NUL before
 * gw_utf8_fix, which removes them. The result is what the one-pass unpack and the JSON path give: NUL
 * bytes removed, the rest of the string kept.
 *
 * That is the generic path. gw_decode_traces and gw_decode_logs first try the one-pass unpack
 * (pb_unpack.c), which gives the same tree or the same error in one walk; on anything it leaves to the
 * generic path (unknown fields, a message field twice, a string to repair, ...) the arena is rewound to
 * where it was and the generic path runs from scratch.
 */
#include <pthread.h>
#include <string.h>

#include "core/metrics.h"
#include "decode/decode.h"
#include "decode/decode_int.h"

/* The schema nodes (enum gw_pbn, decode_int.h): which field numbers of which message are sub-messages. */
const ProtobufCMessageDescriptor *const gw_pbn_desc[GW_PBN_LEAF] = {
  [GW_PBN_TRACE_REQ] = &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor,
  [GW_PBN_LOGS_REQ] = &opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor,
  [GW_PBN_RESOURCE_SPANS] = &opentelemetry__proto__trace__v1__resource_spans__descriptor,
  [GW_PBN_RESOURCE_LOGS] = &opentelemetry__proto__logs__v1__resource_logs__descriptor,
  [GW_PBN_RESOURCE] = &opentelemetry__proto__resource__v1__resource__descriptor,
  [GW_PBN_SCOPE_SPANS] = &opentelemetry__proto__trace__v1__scope_spans__descriptor,
  [GW_PBN_SCOPE_LOGS] = &opentelemetry__proto__logs__v1__scope_logs__descriptor,
  [GW_PBN_SCOPE] = &opentelemetry__proto__common__v1__instrumentation_scope__descriptor,
  [GW_PBN_SPAN] = &opentelemetry__proto__trace__v1__span__descriptor,
  [GW_PBN_EVENT] = &opentelemetry__proto__trace__v1__span__event__descriptor,
  [GW_PBN_LINK] = &opentelemetry__proto__trace__v1__span__link__descriptor,
  [GW_PBN_STATUS] = &opentelemetry__proto__trace__v1__status__descriptor,
  [GW_PBN_LOG_RECORD] = &opentelemetry__proto__logs__v1__log_record__descriptor,
  [GW_PBN_KEY_VALUE] = &opentelemetry__proto__common__v1__key_value__descriptor,
  [GW_PBN_ANY_VALUE] = &opentelemetry__proto__common__v1__any_value__descriptor,
  [GW_PBN_ARRAY] = &opentelemetry__proto__common__v1__array_value__descriptor,
  [GW_PBN_KVLIST] = &opentelemetry__proto__common__v1__key_value_list__descriptor,
  [GW_PBN_ENTITY_REF] = &opentelemetry__proto__common__v1__entity_ref__descriptor,
};

bool gw_pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
  uint64_t r = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*p >= end)
      return false;
    uint8_t b = *(*p)++;
    r |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = r;
      return true;
    }
  }
  return false;
}

#define varint gw_pb_varint1

/* Iterative walk with an explicit stack: no recursion on attacker input. */
struct frame {
  enum gw_pbn n;
  uint32_t any_depth; /* AnyValue nesting at this frame */
  uint32_t fields;    /* fields seen in this message so far */
  const uint8_t *end;
};

#define PRESCAN_MAX_DEPTH GW_PB_MAX_DEPTH
#define PRESCAN_FRAMES GW_PB_FRAMES

/* ---- what protobuf-c will allocate (protobuf-c 1.4, every allocation 16-byte aligned by the arena) ---- */

#define R16(n) (((uint64_t)(n) + 15) & ~(uint64_t)15)
/* protobuf-c's ScannedMember: tag, wire type, prefix length, field, length, data */
#define SCANNED_MEMBER 32
/* ProtobufCMessageUnknownField: tag, wire type, length, data */
#define UNKNOWN_FIELD 24

/* A message's own struct, and the rounding of up to one pointer array per repeated field. */
static uint64_t message_cost_of(const ProtobufCMessageDescriptor *d)
{
  uint64_t c = R16(d->sizeof_message);
  for (unsigned i = 0; i < d->n_fields; i++)
    if (d->fields[i].label == PROTOBUF_C_LABEL_REPEATED)
      c += 16;
  return c;
}

/* The slabs protobuf-c allocates to scan a message of `fields` fields (the first 16 are on its stack;
 * slab k holds 2^(k+4)). */
static uint64_t slab_cost(uint32_t fields)
{
  uint64_t c = 0, have = 16;
  for (unsigned k = 1; have < fields; k++) {
    uint64_t slab = (uint64_t)1 << (k + 4);
    c += R16(slab * SCANNED_MEMBER);
    have += slab;
  }
  return c;
}

/* One field of message n: its value (v bytes for length-delimited ones, counting its length prefix
 * pref bytes for unknown ones) or, for wire types 0/1/5, raw bytes of it. fd is the field's descriptor,
 * NULL for a field the message does not declare. */
static uint64_t field_cost_of(const ProtobufCFieldDescriptor *fd, uint32_t wt, uint64_t v, uint64_t raw)
{
  if (!fd)
    return UNKNOWN_FIELD + R16(raw); /* kept as an unknown field: a record and a copy */
  uint64_t c = 0;
  if (fd->label == PROTOBUF_C_LABEL_REPEATED)
    c += fd->type == PROTOBUF_C_TYPE_BYTES ? sizeof(ProtobufCBinaryData) : 8;
  if (wt == 2) {
    if (fd->type == PROTOBUF_C_TYPE_STRING)
      c += R16(v + 1);
    else if (fd->type == PROTOBUF_C_TYPE_BYTES && v)
      c += R16(v);
    else if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
      c += R16(v); /* packed repeated scalars: at most one element per byte */
  }
  return c;
}

/* The descriptors answer the same questions for every field of every request, and looking a field up in
 * them (protobuf_c_message_descriptor_get_field) was a quarter of the pre-scan. So each node's message
 * cost and, for field numbers below FIELD_TABLE, each field's descriptor are looked up once per process;
 * larger field numbers (none in the OTLP schema today) still ask the descriptor. */
#define FIELD_TABLE 32
static struct {
  uint64_t message_cost[GW_PBN_LEAF];
  const ProtobufCFieldDescriptor *field[GW_PBN_LEAF][FIELD_TABLE];
} schema;
static pthread_once_t schema_once = PTHREAD_ONCE_INIT;

static void schema_init(void)
{
  for (int n = 0; n < GW_PBN_LEAF; n++) {
    schema.message_cost[n] = message_cost_of(gw_pbn_desc[n]);
    for (uint32_t f = 1; f < FIELD_TABLE; f++)
      schema.field[n][f] = protobuf_c_message_descriptor_get_field(gw_pbn_desc[n], f);
  }
}

static inline uint64_t message_cost(enum gw_pbn n) { return schema.message_cost[n]; }

static inline const ProtobufCFieldDescriptor *field_desc(enum gw_pbn n, uint32_t field)
{
  return field < FIELD_TABLE ? schema.field[n][field] : protobuf_c_message_descriptor_get_field(gw_pbn_desc[n], field);
}

static inline uint64_t field_cost(enum gw_pbn n, uint32_t field, uint32_t wt, uint64_t v, uint64_t raw)
{
  return field_cost_of(field_desc(n, field), wt, v, raw);
}

/* The pre-scan; with has_nul, also whether a string field holds a NUL byte; with patch (a copy of buf),
 * the string fields' NUL bytes made 0xff and their 0xff bytes 0xfe in it (see the top of the file). */
static gw_rc prescan(enum gw_pb_kind kind, const void *buf, size_t len, uint32_t max_depth, size_t *need,
                     bool *has_nul, uint8_t *patch, struct gw_err *err)
{
  static const uint8_t empty[1];
  struct frame stack[PRESCAN_FRAMES];
  pthread_once(&schema_once, schema_init);
  if (max_depth > PRESCAN_MAX_DEPTH)
    max_depth = PRESCAN_MAX_DEPTH;
  const uint8_t *p = len ? buf : empty;
  const uint8_t *start = p;
  int top = 0;
  stack[0].n = kind == GW_PB_TRACES_REQUEST ? GW_PBN_TRACE_REQ : GW_PBN_LOGS_REQ;
  stack[0].any_depth = 0;
  stack[0].fields = 0;
  stack[0].end = p + len;
  uint64_t cost = message_cost(stack[0].n);

  for (;;) {
    if (p == stack[top].end) {
      cost += slab_cost(stack[top].fields);
      if (top == 0) {
        if (need)
          *need = cost > SIZE_MAX ? SIZE_MAX : (size_t)cost;
        return GW_OK;
      }
      top--;
      continue;
    }
    const uint8_t *field_start = p;
    uint64_t key;
    if (!varint(&p, stack[top].end, &key))
      return gw_err_set(err, GW_ERR(DECODE), "protobuf: truncated or malformed field key at byte %zu",
                        (size_t)(p - start));
    /* Field numbers are 29 bits (protobuf encoding spec); a larger key would alias a real field below. */
    if (key >> 32)
      return gw_err_set(err, GW_ERR(DECODE), "protobuf: field number out of range at byte %zu", (size_t)(p - start));
    uint32_t field = (uint32_t)(key >> 3), wt = (uint32_t)(key & 7);
    if (field == 0)
      return gw_err_set(err, GW_ERR(DECODE), "protobuf: field number 0 at byte %zu", (size_t)(p - start));
    stack[top].fields++;
    uint64_t v = 0;
    switch (wt) {
    case 0:
      if (!varint(&p, stack[top].end, &v))
        goto truncated;
      break;
    case 1:
      if (stack[top].end - p < 8)
        goto truncated;
      p += 8;
      break;
    case 5:
      if (stack[top].end - p < 4)
        goto truncated;
      p += 4;
      break;
    case 2: {
      if (!varint(&p, stack[top].end, &v))
        goto truncated;
      if (v > (uint64_t)(stack[top].end - p))
        goto truncated;
      enum gw_pbn c = gw_pbn_child(stack[top].n, field);
      if (c == GW_PBN_LEAF) {
        if ((has_nul || patch) && v && field_desc(stack[top].n, field) &&
            field_desc(stack[top].n, field)->type == PROTOBUF_C_TYPE_STRING) {
          if (has_nul && memchr(p, 0, v))
            *has_nul = true;
          if (patch)
            for (uint8_t *q = patch + (p - start), *qe = q + v; q < qe; q++)
              *q = *q == 0 ? 0xff : *q == 0xff ? 0xfe : *q;
        }
        p += v;
        break;
      }
      uint32_t d = stack[top].any_depth + (c == GW_PBN_ANY_VALUE ? 1 : 0);
      if (d > max_depth || top + 1 >= PRESCAN_FRAMES)
        return gw_err_set(err, GW_ERR(TOO_DEEP), "protobuf: attribute value nested deeper than %u levels", max_depth);
      cost += field_cost(stack[top].n, field, wt, v, 0) + message_cost(c);
      top++;
      stack[top].n = c;
      stack[top].any_depth = d;
      stack[top].fields = 0;
      stack[top].end = p + v;
      continue;
    }
    default:
      return gw_err_set(err, GW_ERR(DECODE), "protobuf: unsupported wire type %u at byte %zu", wt,
                        (size_t)(p - start));
    }
    cost += field_cost(stack[top].n, field, wt, v, (uint64_t)(p - field_start));
  }
truncated:
  return gw_err_set(err, GW_ERR(DECODE), "protobuf: truncated message at byte %zu (of %zu)", (size_t)(p - start),
                    len);
}

gw_rc gw_pb_prescan(enum gw_pb_kind kind, const void *buf, size_t len, uint32_t max_depth, size_t *need,
                    struct gw_err *err)
{
  return prescan(kind, buf, len, max_depth, need, NULL, NULL, err);
}

/* ---- UTF-8 repair of every string protobuf-c produced ---- */

struct fixer {
  struct gw_arena *a;
  uint64_t fixed;
  bool oom;
  bool nul_ff;           /* the body was patched: 0xff bytes stand for NUL */
  const void **done;     /* not NULL: nothing is repaired; the strings done[0, ndone) were, in wire order */
  size_t ndone, next;    /* next: the one the walk should meet next (it meets them in wire order) */
  const void **set;      /* done as an open-addressing set (built at the first string met out of that order) */
  size_t mask;
};

static inline size_t ptr_slot(const void *p, size_t mask)
{
  return (size_t)(((uintptr_t)p * 0x9e3779b97f4a7c15ull) >> 20) & mask;
}

/* Whether key is among f->done; false with f->oom when the set does not fit the arena. */
static bool done_has(struct fixer *f, const void *key)
{
  if (!f->set) {
    size_t cap = 16;
    while (cap < 2 * f->ndone)
      cap *= 2;
    if (!(f->set = gw_arena_alloc(f->a, cap * sizeof *f->set))) {
      f->oom = true;
      return false;
    }
    memset(f->set, 0, cap * sizeof *f->set);
    f->mask = cap - 1;
    for (size_t i = 0; i < f->ndone; i++) {
      size_t h = ptr_slot(f->done[i], f->mask);
      while (f->set[h])
        h = (h + 1) & f->mask;
      f->set[h] = f->done[i];
    }
  }
  for (size_t h = ptr_slot(key, f->mask); f->set[h]; h = (h + 1) & f->mask)
    if (f->set[h] == key)
      return true;
  return false;
}

static void fix_str(struct fixer *f, char **s)
{
  if (f->done) {
    const void *key = *s;
    if (f->next < f->ndone && f->done[f->next] == key) {
      f->next++;
      f->fixed++;
    } else if (key && f->next < f->ndone && done_has(f, key)) { /* none left unmet: not one of them */
      f->fixed++;
    }
    return;
  }
  if (!*s || !**s)
    return; /* NULL or protobuf_c_empty_string, which must not be written */
  size_t len = strlen(*s);
  if (f->nul_ff)
    for (char *q = memchr(*s, 0xff, len); q; q = memchr(q + 1, 0xff, len - (size_t)(q + 1 - *s)))
      *q = 0;
  bool changed;
  char *r = gw_utf8_fix(f->a, *s, len, &changed);
  if (!r) {
    f->oom = true;
    return;
  }
  *s = r;
  f->fixed += changed;
}

static void fix_kvs(struct fixer *f, GwKeyValue **kvs, size_t n);

/* Recursion depth is bounded by the pre-scan's max_depth. */
static void fix_any(struct fixer *f, GwAnyValue *v)
{
  if (!v)
    return;
  switch (v->value_case) {
  case GW_AV_STRING:
    fix_str(f, &v->string_value);
    break;
  case GW_AV_ARRAY:
    if (v->array_value)
      for (size_t i = 0; i < v->array_value->n_values; i++)
        fix_any(f, v->array_value->values[i]);
    break;
  case GW_AV_KVLIST:
    if (v->kvlist_value)
      fix_kvs(f, v->kvlist_value->values, v->kvlist_value->n_values);
    break;
  default:
    break;
  }
}

static void fix_kvs(struct fixer *f, GwKeyValue **kvs, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    fix_str(f, &kvs[i]->key);
    fix_any(f, kvs[i]->value);
  }
}

static void fix_resource(struct fixer *f, GwResource *r)
{
  if (!r)
    return;
  fix_kvs(f, r->attributes, r->n_attributes);
  for (size_t i = 0; i < r->n_entity_refs; i++) {
    Opentelemetry__Proto__Common__V1__EntityRef *e = r->entity_refs[i];
    fix_str(f, &e->schema_url);
    fix_str(f, &e->type);
    for (size_t j = 0; j < e->n_id_keys; j++)
      fix_str(f, &e->id_keys[j]);
    for (size_t j = 0; j < e->n_description_keys; j++)
      fix_str(f, &e->description_keys[j]);
  }
}

static void fix_scope(struct fixer *f, GwScope *s)
{
  if (!s)
    return;
  fix_str(f, &s->name);
  fix_str(f, &s->version);
  fix_kvs(f, s->attributes, s->n_attributes);
}

static void fix_span(struct fixer *f, GwSpan *s)
{
  fix_str(f, &s->trace_state);
  fix_str(f, &s->name);
  fix_kvs(f, s->attributes, s->n_attributes);
  for (size_t i = 0; i < s->n_events; i++) {
    fix_str(f, &s->events[i]->name);
    fix_kvs(f, s->events[i]->attributes, s->events[i]->n_attributes);
  }
  for (size_t i = 0; i < s->n_links; i++) {
    fix_str(f, &s->links[i]->trace_state);
    fix_kvs(f, s->links[i]->attributes, s->links[i]->n_attributes);
  }
  if (s->status)
    fix_str(f, &s->status->message);
}

/* Take what unpacking will allocate up front: past the arena's room it is TOO_LARGE now, before
 * protobuf-c fills the arena; a refusal of the in-flight budget leaves gw_arena_refused set (the request
 * turns it into 503). */
static gw_rc expect(struct gw_arena *a, size_t need, size_t len, struct gw_err *err)
{
  size_t room = gw_arena_room(a);
  if (need > room)
    return gw_err_set(err, GW_ERR(TOO_LARGE),
                      "protobuf: the %zu-byte body unpacks to about %zu bytes, more than the %zu this request may "
                      "still use",
                      len, need, room);
  if (gw_arena_expect(a, need))
    return gw_err_set(err, GW_ERR(TOO_LARGE), "request needs more memory than the per-request limit");
  return GW_OK;
}

bool gw_decode_repaired_add(struct gw_arena *a, struct gw_decode_repaired *r, const void *span)
{
  if (r->n == r->cap) {
    size_t ncap = r->cap ? 2 * r->cap : 16;
    const void **nv = gw_arena_grow(a, r->spans, r->cap * sizeof *nv, ncap * sizeof *nv);
    if (!nv)
      return false;
    r->spans = nv;
    r->cap = ncap;
  }
  r->spans[r->n++] = span;
  return true;
}

/* Repairs (or, f->done set, the repairs the one-pass unpack made), counted, and (rep) the spans they
 * concern: a span's own strings, or its resource's or scope's; spans whose own strings were repaired are
 * marked changed in raw (their bytes on the wire are not what the tree holds). */
static gw_rc fix_trace_request(struct fixer *f, GwTraceRequest *req, struct gw_decode_repaired *rep,
                               struct gw_pb_raw *raw, struct gw_err *err)
{
  size_t raw_at = 0;
  for (size_t i = 0; i < req->n_resource_spans; i++) {
    GwResourceSpans *rs = req->resource_spans[i];
    uint64_t at = f->fixed;
    fix_resource(f, rs->resource);
    fix_str(f, &rs->schema_url);
    bool res_fixed = f->fixed != at;
    for (size_t j = 0; j < rs->n_scope_spans; j++) {
      GwScopeSpans *ss = rs->scope_spans[j];
      at = f->fixed;
      fix_scope(f, ss->scope);
      fix_str(f, &ss->schema_url);
      bool scope_fixed = res_fixed || f->fixed != at;
      for (size_t k = 0; k < ss->n_spans; k++) {
        at = f->fixed;
        fix_span(f, ss->spans[k]);
        if (f->fixed != at)
          gw_pb_raw_changed(raw, &raw_at, ss->spans[k]);
        if (rep && (scope_fixed || f->fixed != at) && !gw_decode_repaired_add(f->a, rep, ss->spans[k]))
          f->oom = true;
      }
    }
  }
  if (f->fixed)
    gw_metric_add(GW_M_UTF8_FIXED, (int64_t)f->fixed);
  if (f->oom)
    return gw_err_set(err, GW_ERR(TOO_LARGE), "request needs more memory than the per-request limit");
  return GW_OK;
}

/* The pre-scan of the generic path, and the body protobuf-c should unpack: body itself, or (a string field
 * holding NUL) its patched copy in the arena, *nul_ff then set. */
static gw_rc generic_prescan(enum gw_pb_kind kind, struct gw_arena *a, const void *body, size_t len,
                             const struct gw_decode_limits *lim, const void **use, bool *nul_ff, struct gw_err *err)
{
  size_t need;
  *use = body;
  *nul_ff = false;
  gw_rc rc = prescan(kind, body, len, lim->max_depth, &need, nul_ff, NULL, err);
  if (rc || (rc = expect(a, need, len, err)) || !*nul_ff)
    return rc;
  uint8_t *copy = gw_arena_alloc(a, len);
  if (!copy)
    return gw_err_set(err, GW_ERR(TOO_LARGE), "request needs more memory than the per-request limit");
  memcpy(copy, body, len);
  if ((rc = prescan(kind, body, len, lim->max_depth, NULL, NULL, copy, err)))
    return rc;
  *use = copy;
  return GW_OK;
}

bool gw_decode_pb_fast = true;

gw_rc gw_decode_pb_traces_generic(struct gw_arena *a, const void *body, size_t len,
                                  const struct gw_decode_limits *lim, GwTraceRequest **out, struct gw_err *err)
{
  *out = NULL;
  const void *use;
  bool nul_ff;
  gw_rc rc = generic_prescan(GW_PB_TRACES_REQUEST, a, body, len, lim, &use, &nul_ff, err);
  if (rc)
    return rc;
  GwTraceRequest *req = gw_pb_trace_request_unpack(gw_arena_pb_allocator(a), len, use);
  if (!req) {
    if (gw_arena_exhausted(a))
      return gw_err_set(err, GW_ERR(TOO_LARGE), "request needs more memory than the per-request limit");
    return gw_err_set(err, GW_ERR(DECODE), "protobuf: body is not a valid ExportTraceServiceRequest");
  }
  struct fixer f = {.a = a, .nul_ff = nul_ff};
  if ((rc = fix_trace_request(&f, req, lim->repaired, NULL, err)))
    return rc;
  *out = req;
  return GW_OK;
}

static gw_rc fix_logs_request(struct fixer *fp, GwLogsRequest *req, struct gw_err *err);

/* The one-pass unpack (pb_unpack.c), or on its fallback the arena rewound and the generic path. */
static gw_rc decode_pb(enum gw_pb_kind kind, struct gw_arena *a, const void *body, size_t len,
                       const struct gw_decode_limits *lim, void **out, struct gw_pb_raw *raw, struct gw_err *err)
{
  if (raw)
    *raw = (struct gw_pb_raw){0};
  if (gw_decode_pb_fast) {
    struct gw_arena_mark mark;
    gw_arena_mark(a, &mark);
    ProtobufCMessage *m;
    struct gw_decode_repaired fixed;
    int rc = gw_pb_unpack_raw(kind, a, body, len, lim->max_depth, &m, raw, &fixed, err);
    if (rc == GW_OK && fixed.n) { /* rare: count the repairs and find the spans they concern */
      struct fixer f = {.a = a, .done = fixed.spans, .ndone = fixed.n};
      rc = kind == GW_PB_TRACES_REQUEST ? fix_trace_request(&f, (GwTraceRequest *)m, lim->repaired, raw, err)
                                        : fix_logs_request(&f, (GwLogsRequest *)m, err);
      if (rc)
        return rc;
    }
    if (rc == GW_OK) {
      *out = m;
      return GW_OK;
    }
    gw_arena_rewind(a, &mark);
    if (rc != GW_PB_FALLBACK)
      return rc;
  }
  if (kind == GW_PB_TRACES_REQUEST)
    return gw_decode_pb_traces_generic(a, body, len, lim, (GwTraceRequest **)out, err);
  return gw_decode_pb_logs_generic(a, body, len, lim, (GwLogsRequest **)out, err);
}

gw_rc gw_decode_traces(struct gw_arena *a, enum gw_encoding enc, const void *body, size_t len,
                       const struct gw_decode_limits *lim, GwTraceRequest **out, struct gw_err *err)
{
  return gw_decode_traces_raw(a, enc, body, len, lim, out, NULL, err);
}

gw_rc gw_decode_traces_raw(struct gw_arena *a, enum gw_encoding enc, const void *body, size_t len,
                           const struct gw_decode_limits *lim, GwTraceRequest **out, struct gw_pb_raw *raw,
                           struct gw_err *err)
{
  *out = NULL;
  if (raw)
    *raw = (struct gw_pb_raw){0};
  if (len > lim->max_bytes)
    return gw_err_set(err, GW_ERR(TOO_LARGE), "request body is %zu bytes, over the limit of %zu", len, lim->max_bytes);
  if (enc == GW_ENC_JSON)
    return gw_decode_json_traces(a, body, len, lim, out, err);
  void *m = NULL;
  gw_rc rc = decode_pb(GW_PB_TRACES_REQUEST, a, body, len, lim, &m, raw, err);
  *out = m;
  return rc;
}

static gw_rc fix_logs_request(struct fixer *fp, GwLogsRequest *req, struct gw_err *err)
{
  struct fixer f = *fp;
  for (size_t i = 0; i < req->n_resource_logs; i++) {
    GwResourceLogs *rl = req->resource_logs[i];
    fix_resource(&f, rl->resource);
    fix_str(&f, &rl->schema_url);
    for (size_t j = 0; j < rl->n_scope_logs; j++) {
      GwScopeLogs *sl = rl->scope_logs[j];
      fix_scope(&f, sl->scope);
      fix_str(&f, &sl->schema_url);
      for (size_t k = 0; k < sl->n_log_records; k++) {
        GwLogRecord *l = sl->log_records[k];
        fix_str(&f, &l->severity_text);
        fix_str(&f, &l->event_name);
        fix_any(&f, l->body);
        fix_kvs(&f, l->attributes, l->n_attributes);
      }
    }
  }
  if (f.fixed)
    gw_metric_add(GW_M_UTF8_FIXED, (int64_t)f.fixed);
  if (f.oom)
    return gw_err_set(err, GW_ERR(TOO_LARGE), "request needs more memory than the per-request limit");
  return GW_OK;
}

gw_rc gw_decode_pb_logs_generic(struct gw_arena *a, const void *body, size_t len, const struct gw_decode_limits *lim,
                                GwLogsRequest **out, struct gw_err *err)
{
  *out = NULL;
  const void *use;
  bool nul_ff;
  gw_rc rc = generic_prescan(GW_PB_LOGS_REQUEST, a, body, len, lim, &use, &nul_ff, err);
  if (rc)
    return rc;
  GwLogsRequest *req = gw_pb_logs_request_unpack(gw_arena_pb_allocator(a), len, use);
  if (!req) {
    if (gw_arena_exhausted(a))
      return gw_err_set(err, GW_ERR(TOO_LARGE), "request needs more memory than the per-request limit");
    return gw_err_set(err, GW_ERR(DECODE), "protobuf: body is not a valid ExportLogsServiceRequest");
  }
  struct fixer f = {.a = a, .nul_ff = nul_ff};
  if ((rc = fix_logs_request(&f, req, err)))
    return rc;
  *out = req;
  return GW_OK;
}

gw_rc gw_decode_logs(struct gw_arena *a, enum gw_encoding enc, const void *body, size_t len,
                     const struct gw_decode_limits *lim, GwLogsRequest **out, struct gw_err *err)
{
  *out = NULL;
  if (len > lim->max_bytes)
    return gw_err_set(err, GW_ERR(TOO_LARGE), "request body is %zu bytes, over the limit of %zu", len, lim->max_bytes);
  if (enc == GW_ENC_JSON)
    return gw_decode_json_logs(a, body, len, lim, out, err);
  void *m = NULL;
  gw_rc rc = decode_pb(GW_PB_LOGS_REQUEST, a, body, len, lim, &m, NULL, err);
  *out = m;
  return rc;
}
