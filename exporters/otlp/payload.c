/*
 * payload.c: what an exporter sends for a batch of spool entries.
 *
 * An Export{Trace,Logs}ServiceRequest is one repeated field (resource_spans / resource_logs = 1), so the
 * concatenation of several serialized requests is itself a valid request holding all their resources.
 * When nothing needs changing (no transform, genai_only off) an entry's bytes are therefore forwarded as
 * they are, without decoding: the cheap path, and byte-exact.
 * Otherwise (a backend transform, or genai_only) the trace entries of the batch are read at the wire level,
 * without protobuf-c: each span's byte range, ids and attributes (keys and string values pointing into the
 * bytes). Their interaction records are decoded beside them and matched to their spans by (trace_id,
 * span_id); spans with malformed ids are left out and counted (Langfuse rejects a whole batch for one,
 * SPEC-FACTS §5.1), genai_only leaves out spans without a record, the backend transforms the whole batch
 * at once (so trace-level facts found in one entry reach spans in another) by adding attributes, and each
 * entry is written back: the kept spans' bytes as they were with the added KeyValues appended (a repeated
 * field may continue anywhere in a message), every other field of the envelopes copied, envelopes left
 * empty removed (OTLP: senders SHOULD NOT send empty ResourceSpans / ScopeSpans). Decoding into protobuf-c
 * messages and packing them again was a quarter of the Langfuse exporter's time. Log entries are never
 * read: genai_only passes those whose request holds GenAI events.
 */
#include <libdeflate.h>
#include <stdlib.h>
#include <string.h>

#include "decode/decode.h"
#include "export_int.h"

/* ---- attributes, for transforms ---- */

const GwKeyValue *gw_export_span_attr(const GwSpan *sp, const char *key)
{
  for (size_t i = 0; i < sp->n_attributes; i++)
    if (sp->attributes[i] && sp->attributes[i]->key && strcmp(sp->attributes[i]->key, key) == 0)
      return sp->attributes[i];
  return NULL;
}

/* ---- gzip ---- */

/* libdeflate, not zlib: whole-buffer compression is all we need, and at its fastest level it compresses
 * OTLP about twice as fast as zlib's level 1 for a similar ratio (bench/README.md, "Exporters"). */
struct gw_export_gzip *gw_export_gzip_create(void)
{
  struct libdeflate_compressor *c = libdeflate_alloc_compressor(1);
  if (!c)
    abort(); /* out of memory at start */
  return (struct gw_export_gzip *)c;
}

void gw_export_gzip_destroy(struct gw_export_gzip *z)
{
  if (z)
    libdeflate_free_compressor((struct libdeflate_compressor *)z);
}

gw_rc gw_export_gzip(struct gw_export_gzip *z, struct gw_arena *a, const void *src, size_t len, void **out,
                     size_t *out_len)
{
  struct libdeflate_compressor *c = (struct libdeflate_compressor *)z;
  size_t cap = libdeflate_gzip_compress_bound(c, len);
  uint8_t *buf = gw_arena_alloc(a, cap ? cap : 1);
  if (!buf)
    return GW_ERR(NOMEM);
  size_t n = libdeflate_gzip_compress(c, src, len, buf, cap);
  if (!n)
    return GW_ERR(INTERNAL);
  *out = buf;
  *out_len = n;
  return GW_OK;
}

/* ---- records, and the spans that carried trace facts, by (trace_id, span_id) ---- */

struct idslot {
  const char *trace, *span; /* hex; NULL: an empty slot */
  const void *v;
};

struct idmap {
  struct idslot *slot;
  size_t mask;
};

static uint64_t hash_ids(const char *trace_hex, const char *span_hex)
{
  uint64_t h = 1469598103934665603ull;
  for (const char *p = span_hex; *p; p++)
    h = (h ^ (unsigned char)*p) * 1099511628211ull;
  for (const char *p = trace_hex; *p; p++)
    h = (h ^ (unsigned char)*p) * 1099511628211ull;
  return h;
}

static bool idmap_init(struct idmap *m, struct gw_arena *a, size_t n)
{
  size_t cap = 16;
  while (cap < n * 2)
    cap *= 2;
  m->slot = gw_arena_calloc(a, cap * sizeof *m->slot);
  m->mask = cap - 1;
  return m->slot != NULL;
}

static void idmap_put(struct idmap *m, const char *trace_hex, const char *span_hex, const void *v)
{
  for (size_t i = hash_ids(trace_hex, span_hex) & m->mask;; i = (i + 1) & m->mask)
    if (!m->slot[i].trace) {
      m->slot[i] = (struct idslot){trace_hex, span_hex, v};
      return;
    }
}

/* What (trace_hex, span_hex) was put with; NULL when nothing (or the map is empty). */
static const void *idmap_get(const struct idmap *m, const char *trace_hex, const char *span_hex)
{
  if (!m->slot)
    return NULL;
  for (size_t i = hash_ids(trace_hex, span_hex) & m->mask; m->slot[i].trace; i = (i + 1) & m->mask)
    if (!strcmp(m->slot[i].span, span_hex) && !strcmp(m->slot[i].trace, trace_hex))
      return m->slot[i].v;
  return NULL;
}

/* ---- the OTLP wire format, read and written without protobuf-c ---- */

/* One field: number, wire type, its first byte, and for LEN its payload; *p moves past it. */
struct wfield {
  uint32_t num;
  unsigned wt;
  const uint8_t *start, *val;
  size_t vlen;
};

static bool rd_field(const uint8_t **p, const uint8_t *end, struct wfield *f)
{
  uint64_t tag, v;
  f->start = *p;
  if (!gw_pb_varint(p, end, &tag) || tag >> 3 == 0 || tag >> 3 > UINT32_MAX)
    return false;
  f->num = (uint32_t)(tag >> 3);
  f->wt = (unsigned)(tag & 7);
  f->val = NULL;
  f->vlen = 0;
  switch (f->wt) {
  case 0:
    return gw_pb_varint(p, end, &v);
  case 1:
  case 5: {
    size_t n = f->wt == 1 ? 8 : 4;
    if ((size_t)(end - *p) < n)
      return false;
    *p += n;
    return true;
  }
  case 2:
    if (!gw_pb_varint(p, end, &v) || v > (uint64_t)(end - *p))
      return false;
    f->val = *p;
    f->vlen = (size_t)v;
    *p += v;
    return true;
  default:
    return false;
  }
}

static size_t vsize(uint64_t v)
{
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static uint8_t *wr_varint(uint8_t *o, uint64_t v)
{
  while (v >= 0x80) {
    *o++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *o++ = (uint8_t)v;
  return o;
}

/* tag + length of a LEN field of n payload bytes */
static size_t len_field(size_t n) { return 1 + vsize(n) + n; }

struct gw_export_add {
  const char *key, *val;
  size_t klen, vlen;
};

/* The KeyValue of an added attribute: 1: key, 2: AnyValue{1: string_value}. */
static size_t add_kv_size(const struct gw_export_add *d)
{
  return len_field(d->klen) + len_field(len_field(d->vlen));
}

gw_rc gw_export_add_attr(struct gw_export_batch *b, struct gw_export_span *sp, const char *key, const char *value,
                         size_t len, const char **stored)
{
  if (sp->nadds == sp->capadds) {
    size_t cap = sp->capadds ? sp->capadds * 2 : 8;
    struct gw_export_add *na = gw_arena_alloc(b->arena, cap * sizeof *na);
    if (!na)
      return GW_ERR(NOMEM);
    if (sp->nadds)
      memcpy(na, sp->adds, sp->nadds * sizeof *na);
    sp->adds = na;
    sp->capadds = cap;
  }
  char *v = gw_arena_alloc(b->arena, len ? len : 1);
  if (!v)
    return GW_ERR(NOMEM);
  memcpy(v, value, len);
  sp->adds[sp->nadds++] = (struct gw_export_add){key, v, strlen(key), len};
  if (stored)
    *stored = v;
  return GW_OK;
}

/* A span's fields: its ids, and its attributes' keys and string values. */
static bool read_span(struct gw_arena *a, struct gw_export_span *sp, const uint8_t *p, size_t n, size_t *parent_len)
{
  memset(sp, 0, sizeof *sp);
  sp->body = p;
  sp->len = n;
  *parent_len = 0;
  size_t tlen = 0, slen = 0, nattrs = 0;
  const uint8_t *end = p + n, *q = p;
  struct wfield f = {0};
  while (q < end) { /* count attributes first: one allocation */
    if (!rd_field(&q, end, &f))
      return false;
    nattrs += f.num == 9 && f.wt == 2;
  }
  struct gw_export_attr *attrs = nattrs ? gw_arena_alloc(a, nattrs * sizeof *attrs) : NULL;
  if (nattrs && !attrs)
    return false;
  size_t k = 0;
  for (q = p; q < end;) {
    rd_field(&q, end, &f);
    if (f.wt != 2)
      continue;
    const uint8_t *field_end = q;
    if (f.num == 1)
      sp->trace_id = f.val, tlen = f.vlen;
    else if (f.num == 2)
      sp->span_id = f.val, slen = f.vlen;
    else if (f.num == 4)
      *parent_len = f.vlen;
    else if (f.num == 9) {
      struct gw_export_attr *at = &attrs[k++];
      memset(at, 0, sizeof *at);
      at->key = "";
      at->wire = f.start;
      at->wire_len = (size_t)(field_end - f.start);
      const uint8_t *r = f.val, *re = f.val + f.vlen;
      struct wfield g;
      while (r < re) {
        if (!rd_field(&r, re, &g))
          return false;
        if (g.num == 1 && g.wt == 2) {
          at->key = (const char *)g.val;
          at->klen = g.vlen;
        } else if (g.num == 2 && g.wt == 2) {
          const uint8_t *v = g.val, *ve = g.val + g.vlen;
          struct wfield h;
          at->str = NULL;
          while (v < ve) {
            if (!rd_field(&v, ve, &h))
              return false;
            at->str = NULL; /* another kind of value (the last one set wins) */
            at->has_dbl = false;
            if (h.num == 1 && h.wt == 2) {
              at->str = (const char *)h.val;
              at->slen = h.vlen;
            } else if (h.num == 4 && h.wt == 1) {
              uint64_t bits = 0;
              for (int b = 0; b < 8; b++) /* fixed64: little-endian */
                bits |= (uint64_t)v[b - 8] << (8 * b);
              memcpy(&at->dbl, &bits, sizeof at->dbl);
              at->has_dbl = true;
            }
          }
        }
      }
    }
  }
  sp->attrs = attrs;
  sp->nattrs = k;
  if (tlen != 16)
    sp->trace_id = NULL;
  if (slen != 8)
    sp->span_id = NULL;
  return true;
}

static bool nonzero(const uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (p[i])
      return true;
  return false;
}

/* SPEC-FACTS §1.7: 16-byte trace id and 8-byte span id, not all zero; a parent is empty or 8 bytes. */
static bool ids_ok(const struct gw_export_span *sp, size_t parent_len)
{
  return sp->trace_id && nonzero(sp->trace_id, 16) && sp->span_id && nonzero(sp->span_id, 8) &&
         (parent_len == 0 || parent_len == 8);
}

/* A trace entry read for a transform: its resources, scopes and spans as byte ranges. */
struct wscope {
  const uint8_t *p;
  size_t n;
  size_t first, count; /* its spans: spans[first .. first + count) of the entry */
  size_t out;          /* payload size once written (0: nothing kept) */
};
struct wres {
  const uint8_t *p;
  size_t n;
  size_t first, count; /* its scopes */
  size_t out;
};
struct wentry {
  struct wres *res;
  size_t nres;
  struct wscope *scopes;
  size_t nscopes;
  struct gw_export_span *spans;
  size_t nspans;
};

/* Count the LEN fields numbered num in [p, p + n); false when the bytes do not parse. */
static bool count_fields(const uint8_t *p, size_t n, uint32_t num, size_t *out)
{
  const uint8_t *end = p + n;
  struct wfield f = {0};
  while (p < end) {
    if (!rd_field(&p, end, &f))
      return false;
    *out += f.num == num && f.wt == 2;
  }
  return true;
}

static bool read_entry(struct gw_arena *a, const uint8_t *p, size_t n, struct wentry *w)
{
  memset(w, 0, sizeof *w);
  size_t nres = 0, nscopes = 0, nspans = 0;
  const uint8_t *end = p + n, *q, *r, *t;
  struct wfield f, g, h;
  if (!count_fields(p, n, 1, &nres))
    return false;
  for (q = p; q < end;) { /* count, so that each array is one allocation */
    rd_field(&q, end, &f);
    if (f.num != 1 || f.wt != 2)
      continue;
    for (r = f.val; r < f.val + f.vlen;) {
      if (!rd_field(&r, f.val + f.vlen, &g))
        return false;
      if (g.num != 2 || g.wt != 2)
        continue;
      nscopes++;
      if (!count_fields(g.val, g.vlen, 2, &nspans))
        return false;
    }
  }
  w->res = gw_arena_alloc(a, (nres ? nres : 1) * sizeof *w->res);
  w->scopes = gw_arena_alloc(a, (nscopes ? nscopes : 1) * sizeof *w->scopes);
  w->spans = gw_arena_alloc(a, (nspans ? nspans : 1) * sizeof *w->spans);
  if (!w->res || !w->scopes || !w->spans)
    return false;
  for (q = p; q < end;) {
    rd_field(&q, end, &f);
    if (f.num != 1 || f.wt != 2)
      continue;
    struct wres *rs = &w->res[w->nres++];
    *rs = (struct wres){f.val, f.vlen, w->nscopes, 0, 0};
    for (r = f.val; r < f.val + f.vlen;) {
      rd_field(&r, f.val + f.vlen, &g);
      if (g.num != 2 || g.wt != 2)
        continue;
      struct wscope *sc = &w->scopes[w->nscopes++];
      rs->count++;
      *sc = (struct wscope){g.val, g.vlen, w->nspans, 0, 0};
      for (t = g.val; t < g.val + g.vlen;) {
        rd_field(&t, g.val + g.vlen, &h);
        if (h.num != 2 || h.wt != 2)
          continue;
        struct gw_export_span *sp = &w->spans[w->nspans++];
        size_t parent_len;
        sc->count++;
        if (!read_span(a, sp, h.val, h.vlen, &parent_len))
          return false;
        sp->drop = !ids_ok(sp, parent_len);
      }
    }
  }
  return true;
}

/* The bytes of [p, p + n) except the LEN fields numbered num: what is kept as is around the children. */
static size_t other_size(const uint8_t *p, size_t n, uint32_t num)
{
  const uint8_t *end = p + n;
  struct wfield f = {0};
  size_t o = 0;
  while (p < end) {
    rd_field(&p, end, &f);
    if (!(f.num == num && f.wt == 2))
      o += (size_t)(p - f.start);
  }
  return o;
}

static uint8_t *copy_other(uint8_t *o, const uint8_t *p, size_t n, uint32_t num)
{
  const uint8_t *end = p + n;
  struct wfield f = {0};
  while (p < end) {
    rd_field(&p, end, &f);
    if (!(f.num == num && f.wt == 2)) {
      memcpy(o, f.start, (size_t)(p - f.start));
      o += p - f.start;
    }
  }
  return o;
}

gw_rc gw_export_drop_attr(struct gw_export_batch *b, struct gw_export_span *sp, size_t i)
{
  if (i >= sp->nattrs)
    return GW_OK;
  if (!sp->dropped && !(sp->dropped = gw_arena_calloc(b->arena, sp->nattrs * sizeof *sp->dropped)))
    return GW_ERR(NOMEM);
  if (!sp->dropped[i]) {
    sp->dropped[i] = true;
    sp->dropped_len += sp->attrs[i].wire_len;
  }
  return GW_OK;
}

/* The span's own bytes without its dropped attributes. */
static uint8_t *copy_span_body(uint8_t *o, const struct gw_export_span *sp)
{
  if (!sp->dropped) {
    memcpy(o, sp->body, sp->len);
    return o + sp->len;
  }
  const uint8_t *from = sp->body;
  for (size_t i = 0; i < sp->nattrs; i++) { /* attributes are in wire order */
    if (!sp->dropped[i])
      continue;
    memcpy(o, from, (size_t)(sp->attrs[i].wire - from));
    o += sp->attrs[i].wire - from;
    from = sp->attrs[i].wire + sp->attrs[i].wire_len;
  }
  memcpy(o, from, (size_t)(sp->body + sp->len - from));
  return o + (sp->body + sp->len - from);
}

static size_t span_out(const struct gw_export_span *sp)
{
  size_t n = sp->len - sp->dropped_len;
  for (size_t i = 0; i < sp->nadds; i++)
    n += len_field(add_kv_size(&sp->adds[i]));
  return n;
}

/* The entry written back: kept spans with their added attributes, envelopes left empty removed (OTLP:
 * senders SHOULD NOT send empty ResourceSpans / ScopeSpans). NULL with *len 0 when nothing is kept. */
static uint8_t *write_entry(struct gw_arena *a, const uint8_t *p, size_t n, struct wentry *w, size_t *len, bool *oom)
{
  size_t total = other_size(p, n, 1);
  bool any = false;
  for (size_t i = 0; i < w->nres; i++) {
    struct wres *rs = &w->res[i];
    size_t rsz = 0;
    for (size_t j = rs->first; j < rs->first + rs->count; j++) {
      struct wscope *sc = &w->scopes[j];
      size_t ssz = 0;
      for (size_t k = sc->first; k < sc->first + sc->count; k++)
        if (!w->spans[k].drop)
          ssz += len_field(span_out(&w->spans[k]));
      sc->out = ssz ? ssz + other_size(sc->p, sc->n, 2) : 0;
      if (sc->out)
        rsz += len_field(sc->out);
    }
    rs->out = rsz ? rsz + other_size(rs->p, rs->n, 2) : 0;
    if (rs->out) {
      total += len_field(rs->out);
      any = true;
    }
  }
  *len = 0;
  if (!any)
    return NULL;
  uint8_t *buf = gw_arena_alloc(a, total), *o = buf;
  if (!buf) {
    *oom = true;
    return NULL;
  }
  for (size_t i = 0; i < w->nres; i++) {
    const struct wres *rs = &w->res[i];
    if (!rs->out)
      continue;
    *o++ = 0x0a; /* 1: resource_spans */
    o = wr_varint(o, rs->out);
    o = copy_other(o, rs->p, rs->n, 2);
    for (size_t j = rs->first; j < rs->first + rs->count; j++) {
      const struct wscope *sc = &w->scopes[j];
      if (!sc->out)
        continue;
      *o++ = 0x12; /* 2: scope_spans */
      o = wr_varint(o, sc->out);
      o = copy_other(o, sc->p, sc->n, 2);
      for (size_t k = sc->first; k < sc->first + sc->count; k++) {
        const struct gw_export_span *sp = &w->spans[k];
        if (sp->drop)
          continue;
        *o++ = 0x12; /* 2: spans */
        o = wr_varint(o, span_out(sp));
        o = copy_span_body(o, sp);
        for (size_t d = 0; d < sp->nadds; d++) {
          const struct gw_export_add *ad = &sp->adds[d];
          *o++ = 0x4a; /* 9: attributes */
          o = wr_varint(o, add_kv_size(ad));
          *o++ = 0x0a; /* KeyValue 1: key */
          o = wr_varint(o, ad->klen);
          memcpy(o, ad->key, ad->klen);
          o += ad->klen;
          *o++ = 0x12; /* KeyValue 2: value */
          o = wr_varint(o, len_field(ad->vlen));
          *o++ = 0x0a; /* AnyValue 1: string_value */
          o = wr_varint(o, ad->vlen);
          memcpy(o, ad->val, ad->vlen);
          o += ad->vlen;
        }
      }
    }
  }
  o = copy_other(o, p, n, 1);
  *len = (size_t)(o - buf);
  return buf;
}

/* A one-span ExportTraceServiceRequest: the span with its resource and scope (their other fields), for
 * the join to hold and send later on its own. */
static uint8_t *mini_request(struct gw_arena *a, const struct wres *rs, const struct wscope *sc,
                             const struct gw_export_span *sp, size_t *len)
{
  size_t scope_len = other_size(sc->p, sc->n, 2) + len_field(sp->len);
  size_t res_len = other_size(rs->p, rs->n, 2) + len_field(scope_len);
  uint8_t *buf = gw_arena_alloc(a, len_field(res_len)), *o = buf;
  if (!buf)
    return NULL;
  *o++ = 0x0a; /* 1: resource_spans */
  o = wr_varint(o, res_len);
  o = copy_other(o, rs->p, rs->n, 2);
  *o++ = 0x12; /* 2: scope_spans */
  o = wr_varint(o, scope_len);
  o = copy_other(o, sc->p, sc->n, 2);
  *o++ = 0x12; /* 2: spans */
  o = wr_varint(o, sp->len);
  memcpy(o, sp->body, sp->len);
  o += sp->len;
  *len = (size_t)(o - buf);
  return buf;
}

/* Hand the entry's spans that wait for their log records to the join; they are left out of this batch
 * (the transform still sees them, marked held). false: out of memory. */
static bool hold_spans(struct gw_export_join *join, struct gw_arena *a, const struct gw_spool_entry *e,
                       struct wentry *w, struct gw_export_piece *p)
{
  for (size_t i = 0; i < w->nres; i++) {
    const struct wres *rs = &w->res[i];
    for (size_t s = rs->first; s < rs->first + rs->count; s++) {
      const struct wscope *sc = &w->scopes[s];
      for (size_t k = sc->first; k < sc->first + sc->count; k++) {
        struct gw_export_span *sp = &w->spans[k];
        if (sp->drop || !sp->rec || !gw_export_join_wants(join, sp->trace_id, sp->span_id, sp->rec))
          continue;
        struct gw_sb sb;
        gw_sb_init(&sb, a);
        size_t mlen;
        uint8_t *mini = mini_request(a, rs, sc, sp, &mlen);
        if (!mini || gw_records_encode(sp->rec, 1, &sb) != GW_OK || !gw_sb_finish(&sb))
          return false;
        if (gw_export_join_hold(join, sp->trace_id, sp->span_id, sp->rec, mini, mlen, sb.buf, sb.len, e->seq,
                                e->appended_ns) == GW_XH_FULL)
          continue;
        sp->held = true;
        p->items--;
        p->held++;
      }
    }
  }
  return true;
}

static size_t join_events(void *ctx, const uint8_t *trace_id, const uint8_t *span_id, struct gw_arena *a,
                          const struct gw_event *const **out)
{
  return gw_export_join_events(ctx, trace_id, span_id, a, out);
}

static bool takes(const struct gw_exporter_type *t, enum gw_signal s)
{
  return (s == GW_SIGNAL_TRACES && (t->signals & GW_EXPORT_TRACES)) || (s == GW_SIGNAL_LOGS && (t->signals & GW_EXPORT_LOGS));
}

/* An entry written while no exporter was configured holds rows only (receive/request.c): nothing to send. */
static bool rows_only(const struct gw_spool_entry *e) { return !e->otlp_len && e->nspans; }

gw_rc gw_export_build(const struct gw_export_payload_opts *o, struct gw_arena *a, const struct gw_spool_entry *entries,
                      size_t n, struct gw_export_piece *pieces)
{
  bool decode = o->type->transform || o->genai_only;
  size_t ntraces = 0;
  for (size_t i = 0; i < n; i++) {
    const struct gw_spool_entry *e = &entries[i];
    struct gw_export_piece *p = &pieces[i];
    memset(p, 0, sizeof *p);
    p->signal = e->signal;
    if (!takes(o->type, e->signal))
      continue;
    if (rows_only(e)) {
      p->filtered = e->nspans;
      continue;
    }
    if (e->signal == GW_SIGNAL_LOGS && o->genai_only && !(e->flags & GW_ENTRY_HAS_GENAI)) {
      p->filtered = e->nspans;
      continue;
    }
    if (e->signal == GW_SIGNAL_TRACES && decode) {
      ntraces++;
      continue;
    }
    p->bytes = e->otlp;
    p->len = e->otlp_len;
    p->items = e->nspans;
  }
  if (!ntraces)
    return GW_OK;

  /* Read every trace entry of the batch, then transform them together, then write each back. */
  struct wentry *ws = gw_arena_calloc(a, ntraces * sizeof *ws);
  size_t *owner = gw_arena_calloc(a, ntraces * sizeof *owner); /* ws[k] came from entries[owner[k]] */
  if (!ws || !owner)
    goto oom;
  size_t k = 0, kept = 0;
  for (size_t i = 0; i < n; i++) {
    const struct gw_spool_entry *e = &entries[i];
    if (e->signal != GW_SIGNAL_TRACES || !takes(o->type, e->signal) || rows_only(e))
      continue;
    struct gw_export_piece *p = &pieces[i];
    struct wentry *w = &ws[k];
    if (!read_entry(a, e->otlp, e->otlp_len, w)) {
      if (gw_arena_exhausted(a))
        goto oom;
      p->too_large = true; /* our own encoding that does not parse: a bug, counted and given up */
      p->items = e->nspans;
      continue;
    }
    struct gw_record *recs = NULL;
    struct gw_trace_fact *facts = NULL;
    size_t nrecs = 0, nfacts = 0;
    if (e->records_len &&
        gw_records_decode_facts(e->records, e->records_len, a, &recs, &nrecs, &facts, &nfacts) != GW_OK) {
      if (gw_arena_exhausted(a))
        goto oom;
      recs = NULL; /* a records blob that does not decode: the spans still go, without their records */
      nrecs = nfacts = 0;
    }
    struct idmap m = {0}, fm = {0}; /* the records; the spans that carried facts (kept by genai_only) */
    if (nrecs) {
      if (!idmap_init(&m, a, nrecs))
        goto oom;
      for (size_t r = 0; r < nrecs; r++)
        idmap_put(&m, recs[r].trace_id, recs[r].span_id, &recs[r]);
    }
    if (o->genai_only && nfacts) {
      if (!idmap_init(&fm, a, nfacts))
        goto oom;
      for (size_t f = 0; f < nfacts; f++)
        idmap_put(&fm, facts[f].trace_id, facts[f].span_id, &facts[f]);
    }
    for (size_t j = 0; j < w->nspans; j++) {
      struct gw_export_span *sp = &w->spans[j];
      if (sp->drop) {
        p->invalid++;
        continue;
      }
      char th[33], sh[17];
      gw_hex(th, sp->trace_id, 16);
      gw_hex(sh, sp->span_id, 8);
      sp->rec = (struct gw_record *)idmap_get(&m, th, sh);
      /* genai_only keeps the spans of no record that carried their trace's session or user id (record.h,
       * gw_trace_fact): a gateway after this one then fills them into the trace's rows as we do */
      if (o->genai_only && !sp->rec && !idmap_get(&fm, th, sh)) {
        sp->drop = true;
        p->filtered++;
        continue;
      }
      p->items++;
      kept++;
    }
    p->spans = w->spans;
    p->nspans = w->nspans;
    if (o->join && !(e->flags & GW_EXPORT_ENTRY_RELEASED) && !hold_spans(o->join, a, e, w, p))
      goto oom;
    owner[k++] = i;
  }
  ntraces = k;

  if (o->type->transform && kept) {
    gw_rc rc;
    struct gw_export_span **all = gw_arena_alloc(a, kept * sizeof *all);
    if (!all)
      goto oom;
    size_t off = 0;
    for (size_t j = 0; j < ntraces; j++)
      for (size_t q = 0; q < ws[j].nspans; q++)
        if (!ws[j].spans[q].drop)
          all[off++] = &ws[j].spans[q];
    struct gw_export_batch b = {a, all, kept, o->join ? join_events : NULL, o->join};
    if ((rc = o->type->transform(o->priv, &b)))
      goto oom;
  }
  for (size_t j = 0; j < ntraces; j++) /* held spans go later, from the join's copy */
    for (size_t q = 0; q < ws[j].nspans; q++)
      if (ws[j].spans[q].held)
        ws[j].spans[q].drop = true;
  for (size_t j = 0; j < ntraces; j++) {
    struct gw_export_piece *p = &pieces[owner[j]];
    const struct gw_spool_entry *e = &entries[owner[j]];
    bool out_of_room = false;
    size_t len;
    uint8_t *buf = write_entry(a, e->otlp, e->otlp_len, &ws[j], &len, &out_of_room);
    if (out_of_room)
      goto oom;
    p->bytes = buf;
    p->len = len;
  }
  return GW_OK;

oom:
  /* The arena cap is per batch: every trace entry of this batch is given up (counted by the caller). */
  for (size_t i = 0; i < n; i++) {
    if (entries[i].signal != GW_SIGNAL_TRACES || !takes(o->type, GW_SIGNAL_TRACES))
      continue;
    pieces[i].too_large = true;
    pieces[i].bytes = NULL;
    pieces[i].len = 0;
    pieces[i].items = entries[i].nspans;
    pieces[i].invalid = pieces[i].filtered = 0;
    pieces[i].spans = NULL;
    pieces[i].nspans = 0;
  }
  return GW_ERR(NOMEM);
}
