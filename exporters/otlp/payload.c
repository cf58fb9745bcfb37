/*
 * payload.c: what an exporter sends for a batch of spool entries.
 *
 * An Export{Trace,Logs}ServiceRequest is one repeated field (resource_spans / resource_logs = 1), so the
 * concatenation of several serialized requests is itself a valid request holding all their resources.
 * When nothing needs changing (no transform, genai_only off) an entry's bytes are therefore forwarded as
 * they are, without decoding: the cheap path, and byte-exact.
 * Otherwise (a backend transform, or genai_only) the trace entries of the batch are decoded with
 * protobuf-c into the exporter's arena, their interaction records decoded beside them and matched to their
 * spans by (trace_id, span_id); spans with malformed ids are left out and counted (Langfuse rejects a
 * whole batch for one, SPEC-FACTS §5.1), genai_only leaves out spans without a record, envelopes left
 * empty are removed (OTLP: senders SHOULD NOT send empty ResourceSpans / ScopeSpans), the backend
 * transforms the whole batch at once (so trace-level facts found in one entry reach spans in another), and
 * each entry is re-encoded. Log entries are never decoded: genai_only passes those whose request holds
 * GenAI events.
 */
#include <libdeflate.h>
#include <stdlib.h>
#include <string.h>

#include "export_int.h"

/* ---- attributes, for transforms ---- */

const GwKeyValue *gw_export_span_attr(const GwSpan *sp, const char *key)
{
  for (size_t i = 0; i < sp->n_attributes; i++)
    if (sp->attributes[i] && sp->attributes[i]->key && strcmp(sp->attributes[i]->key, key) == 0)
      return sp->attributes[i];
  return NULL;
}

gw_rc gw_export_add_attr_str(struct gw_arena *a, GwSpan *sp, const char *key, const char *value)
{
  GwKeyValue *kv = gw_arena_alloc(a, sizeof *kv);
  GwAnyValue *v = gw_arena_alloc(a, sizeof *v);
  GwKeyValue **arr = gw_arena_alloc(a, (sp->n_attributes + 1) * sizeof *arr);
  char *k = gw_arena_strdup(a, key), *s = gw_arena_strdup(a, value);
  if (!kv || !v || !arr || !k || !s)
    return GW_ERR(NOMEM);
  gw_pb_key_value_init(kv);
  gw_pb_any_value_init(v);
  v->value_case = GW_AV_STRING;
  v->string_value = s;
  kv->key = k;
  kv->value = v;
  if (sp->n_attributes)
    memcpy(arr, sp->attributes, sp->n_attributes * sizeof *arr);
  arr[sp->n_attributes] = kv;
  sp->attributes = arr;
  sp->n_attributes++;
  return GW_OK;
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

/* ---- records by (trace_id, span_id) ---- */

struct recmap {
  struct gw_record **slot;
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

static bool recmap_init(struct recmap *m, struct gw_arena *a, size_t n)
{
  size_t cap = 16;
  while (cap < n * 2)
    cap *= 2;
  m->slot = gw_arena_calloc(a, cap * sizeof *m->slot);
  m->mask = cap - 1;
  return m->slot != NULL;
}

static void recmap_put(struct recmap *m, struct gw_record *r)
{
  for (size_t i = hash_ids(r->trace_id, r->span_id) & m->mask;; i = (i + 1) & m->mask)
    if (!m->slot[i]) {
      m->slot[i] = r;
      return;
    }
}

static struct gw_record *recmap_get(const struct recmap *m, const char *trace_hex, const char *span_hex)
{
  for (size_t i = hash_ids(trace_hex, span_hex) & m->mask; m->slot[i]; i = (i + 1) & m->mask)
    if (!strcmp(m->slot[i]->span_id, span_hex) && !strcmp(m->slot[i]->trace_id, trace_hex))
      return m->slot[i];
  return NULL;
}

static void hex(char *out, const uint8_t *b, size_t n)
{
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[b[i] >> 4];
    out[2 * i + 1] = digits[b[i] & 15];
  }
  out[2 * n] = '\0';
}

static bool nonzero(const ProtobufCBinaryData *d)
{
  for (size_t i = 0; i < d->len; i++)
    if (d->data[i])
      return true;
  return false;
}

/* SPEC-FACTS §1.7: 16-byte trace id and 8-byte span id, not all zero; a parent is empty or 8 bytes. */
static bool ids_ok(const GwSpan *sp)
{
  return sp->trace_id.len == 16 && nonzero(&sp->trace_id) && sp->span_id.len == 8 && nonzero(&sp->span_id) &&
         (sp->parent_span_id.len == 0 || sp->parent_span_id.len == 8);
}

/* Filter one decoded request in place; counts what stays and what was left out. */
static void filter_request(GwTraceRequest *req, const struct recmap *m, bool genai_only, uint64_t *kept,
                           uint64_t *invalid, uint64_t *filtered)
{
  size_t nrs = 0;
  for (size_t i = 0; i < req->n_resource_spans; i++) {
    GwResourceSpans *rs = req->resource_spans[i];
    if (!rs)
      continue;
    size_t nss = 0;
    for (size_t j = 0; j < rs->n_scope_spans; j++) {
      GwScopeSpans *ss = rs->scope_spans[j];
      if (!ss)
        continue;
      size_t ns = 0;
      for (size_t k = 0; k < ss->n_spans; k++) {
        GwSpan *sp = ss->spans[k];
        if (!sp)
          continue;
        if (!ids_ok(sp)) {
          (*invalid)++;
          continue;
        }
        char th[33], sh[17];
        hex(th, sp->trace_id.data, 16);
        hex(sh, sp->span_id.data, 8);
        struct gw_record *r = m->slot ? recmap_get(m, th, sh) : NULL;
        if (genai_only && !r) {
          (*filtered)++;
          continue;
        }
        if (r)
          r->span = sp;
        ss->spans[ns++] = sp;
      }
      ss->n_spans = ns;
      *kept += ns;
      if (ns)
        rs->scope_spans[nss++] = ss;
    }
    rs->n_scope_spans = nss;
    if (nss)
      req->resource_spans[nrs++] = rs;
  }
  req->n_resource_spans = nrs;
}

/* The GenAI events of the batch's logs entries, for a backend that attaches them to spans. An entry whose
 * events do not decode is passed over (its spans still go, without the content). */
static gw_rc batch_events(struct gw_arena *a, const struct gw_spool_entry *entries, size_t n, struct gw_export_batch *b)
{
  size_t total = 0;
  for (size_t i = 0; i < n; i++)
    if (entries[i].signal == GW_SIGNAL_LOGS && entries[i].records_len)
      total += entries[i].nrecords;
  if (!total)
    return GW_OK;
  struct gw_event *all = gw_arena_alloc(a, total * sizeof *all);
  if (!all)
    return GW_ERR(NOMEM);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const struct gw_spool_entry *e = &entries[i];
    if (e->signal != GW_SIGNAL_LOGS || !e->records_len)
      continue;
    struct gw_event *ev;
    size_t m;
    if (gw_events_decode(e->records, e->records_len, a, &ev, &m) != GW_OK) {
      if (gw_arena_exhausted(a))
        return GW_ERR(NOMEM);
      continue;
    }
    if (k + m > total)
      m = total - k;
    memcpy(all + k, ev, m * sizeof *all);
    k += m;
  }
  b->events = all;
  b->nevents = k;
  return GW_OK;
}

static bool takes(const struct gw_exporter_type *t, enum gw_signal s)
{
  return (s == GW_SIGNAL_TRACES && (t->signals & GW_EXPORT_TRACES)) || (s == GW_SIGNAL_LOGS && (t->signals & GW_EXPORT_LOGS));
}

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

  /* Decode every trace entry of the batch, then transform them together. */
  GwTraceRequest **reqs = gw_arena_calloc(a, ntraces * sizeof *reqs);
  size_t *owner = gw_arena_calloc(a, ntraces * sizeof *owner); /* reqs[k] came from entries[owner[k]] */
  struct gw_record **recs_of = gw_arena_calloc(a, ntraces * sizeof *recs_of);
  size_t *nrecs_of = gw_arena_calloc(a, ntraces * sizeof *nrecs_of);
  if (!reqs || !owner || !recs_of || !nrecs_of)
    goto oom;
  size_t k = 0, total_recs = 0;
  for (size_t i = 0; i < n; i++) {
    const struct gw_spool_entry *e = &entries[i];
    if (e->signal != GW_SIGNAL_TRACES || !takes(o->type, e->signal))
      continue;
    struct gw_export_piece *p = &pieces[i];
    GwTraceRequest *req = gw_pb_trace_request_unpack(gw_arena_pb_allocator(a), e->otlp_len, e->otlp);
    struct gw_record *recs = NULL;
    size_t nrecs = 0;
    if (req && e->records_len && gw_records_decode(e->records, e->records_len, a, &recs, &nrecs) != GW_OK) {
      recs = NULL; /* a records blob that does not decode: the spans still go, without their records */
      nrecs = 0;
    }
    if (!req) {
      if (gw_arena_exhausted(a))
        goto oom;
      p->too_large = true; /* our own encoding that does not decode: a bug, counted and given up */
      p->items = e->nspans;
      continue;
    }
    struct recmap m = {0};
    if (nrecs) {
      if (!recmap_init(&m, a, nrecs))
        goto oom;
      for (size_t r = 0; r < nrecs; r++)
        recmap_put(&m, &recs[r]);
    }
    filter_request(req, &m, o->genai_only, &p->items, &p->invalid, &p->filtered);
    reqs[k] = req;
    owner[k] = i;
    recs_of[k] = recs;
    nrecs_of[k] = nrecs;
    total_recs += nrecs;
    k++;
  }
  ntraces = k;

  if (o->type->transform && ntraces) {
    gw_rc rc;
    struct gw_record *all = gw_arena_alloc(a, (total_recs ? total_recs : 1) * sizeof *all);
    if (!all)
      goto oom;
    size_t off = 0;
    for (size_t j = 0; j < ntraces; j++) {
      if (nrecs_of[j])
        memcpy(all + off, recs_of[j], nrecs_of[j] * sizeof *all);
      off += nrecs_of[j];
    }
    struct gw_export_batch b = {a, reqs, ntraces, all, total_recs, NULL, 0};
    if (o->type->wants_events && (rc = batch_events(a, entries, n, &b)))
      goto oom;
    if ((rc = o->type->transform(o->priv, &b)))
      goto oom;
  }
  for (size_t j = 0; j < ntraces; j++) {
    struct gw_export_piece *p = &pieces[owner[j]];
    if (!reqs[j]->n_resource_spans)
      continue;
    size_t len = gw_pb_trace_request_size(reqs[j]);
    uint8_t *buf = gw_arena_alloc(a, len ? len : 1);
    if (!buf)
      goto oom;
    gw_pb_trace_request_pack(reqs[j], buf);
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
  }
  return GW_ERR(NOMEM);
}
