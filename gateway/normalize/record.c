/*
 * record.c: the field table of the canonical record and its compact spool encoding.
 * The encoding carries a format version ("GWR3"; "GWR1", without the 0006 columns, and "GWR2", without
 * the 0010 column, are still read)
 * because the disk spool persists it.
 */
#include "normalize/record.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define F(col, type, member) {col, type, offsetof(struct gw_record, member), sizeof(((struct gw_record *)0)->member), 0}
/* A long text: its length is kept in text_lens[rt] (gw_record_set_text). */
#define FT(col, type, member, rt)                                                                          \
  {col, type, offsetof(struct gw_record, member), sizeof(((struct gw_record *)0)->member), (uint8_t)((rt) + 1)}

const struct gw_field gw_record_fields[] = {
  F("trace_id", GW_FT_CHARS, trace_id),
  F("span_id", GW_FT_CHARS, span_id),
  F("parent_span_id", GW_FT_CHARS, parent_span_id),
  F("trace_version", GW_FT_TEXT, trace_version),
  F("service_name", GW_FT_TEXT, service_name),
  F("scope_name", GW_FT_TEXT, scope_name),
  F("span_name", GW_FT_TEXT, span_name),
  F("operation", GW_FT_TEXT, operation),
  F("provider", GW_FT_TEXT, provider),
  F("request_model", GW_FT_TEXT, request_model),
  F("response_model", GW_FT_TEXT, response_model),
  F("model_id", GW_FT_TEXT, model_id),
  F("session_id", GW_FT_TEXT, session_id),
  F("user_id", GW_FT_TEXT, user_id),
  F("input_tokens", GW_FT_I64, input_tokens),
  F("output_tokens", GW_FT_I64, output_tokens),
  F("cache_read_tokens", GW_FT_I64, cache_read_tokens),
  F("cache_write_tokens", GW_FT_I64, cache_write_tokens),
  F("reasoning_tokens", GW_FT_I64, reasoning_tokens),
  F("total_tokens", GW_FT_I64, total_tokens),
  F("input_cost_usd", GW_FT_NUSD, input_cost_nusd),
  F("output_cost_usd", GW_FT_NUSD, output_cost_nusd),
  F("total_cost_usd", GW_FT_NUSD, total_cost_nusd),
  F("cost_source", GW_FT_TEXT, cost_source),
  F("reported_cost_usd", GW_FT_NUSD, reported_cost_nusd),
  F("price_id", GW_FT_TEXT, price_id),
  F("dialect", GW_FT_TEXT, dialect),
  F("enrichment_flags", GW_FT_FLAGS, flags),
  F("start_time", GW_FT_TIME, start_ns),
  F("end_time", GW_FT_TIME, end_ns),
  F("duration_ms", GW_FT_F64, duration_ms),
  F("first_token_latency_ms", GW_FT_F64, first_token_latency_ms),
  F("streaming_enabled", GW_FT_BOOL, streaming),
  F("status", GW_FT_TEXT, status),
  F("error_code", GW_FT_TEXT, error_code),
  FT("error_message", GW_FT_TEXT, error_message, GW_RT_ERROR_MESSAGE),
  F("finish_reasons", GW_FT_STRV, finish_reasons),
  FT("prompt_content", GW_FT_TEXT, prompt_content, GW_RT_PROMPT_CONTENT),
  FT("system_prompt", GW_FT_TEXT, system_prompt, GW_RT_SYSTEM_PROMPT),
  FT("response_content", GW_FT_TEXT, response_content, GW_RT_RESPONSE_CONTENT),
  F("prompt_hash", GW_FT_CHARS, prompt_hash),
  FT("parameters", GW_FT_JSON, parameters, GW_RT_PARAMETERS),
  FT("attributes", GW_FT_JSON, attributes, GW_RT_ATTRIBUTES),
  FT("resource", GW_FT_JSON, resource, GW_RT_RESOURCE),
  F("redaction_count", GW_FT_I64, redaction_count),
  F("redacted_kinds", GW_FT_STRV, redacted_kinds),
  /* migrations/0006_agents.sql; spool format GWR2 */
  F("agent_name", GW_FT_TEXT, agent_name),
  F("workflow_name", GW_FT_TEXT, workflow_name),
  F("prompt_name", GW_FT_TEXT, prompt_name),
  F("prompt_version", GW_FT_TEXT, prompt_version),
  F("prompt_simhash", GW_FT_CHARS, prompt_simhash),
  /* migrations/0010_span_links.sql; spool format GWR3 */
  F("span_links", GW_FT_STRV, span_links),
};
const size_t gw_record_nfields = sizeof gw_record_fields / sizeof gw_record_fields[0];
const size_t gw_record_nfields_v1 = 46;
const size_t gw_record_nfields_v2 = 51;

static const char *flag_names[] = {
#define GW_FLAG_NAME(id, name) name,
  GW_FLAGS(GW_FLAG_NAME)
#undef GW_FLAG_NAME
};

const char *gw_flag_name(enum gw_flag f) { return (unsigned)f < GW_FLAG__COUNT ? flag_names[f] : "unknown"; }
void gw_record_set_flag(struct gw_record *r, enum gw_flag f) { r->flags |= 1u << f; }
bool gw_record_has_flag(const struct gw_record *r, enum gw_flag f) { return (r->flags >> f) & 1u; }

static const size_t rtext_off[GW_RT__COUNT] = {
  [GW_RT_ERROR_MESSAGE] = offsetof(struct gw_record, error_message),
  [GW_RT_SYSTEM_PROMPT] = offsetof(struct gw_record, system_prompt),
  [GW_RT_PROMPT_CONTENT] = offsetof(struct gw_record, prompt_content),
  [GW_RT_RESPONSE_CONTENT] = offsetof(struct gw_record, response_content),
  [GW_RT_PARAMETERS] = offsetof(struct gw_record, parameters),
  [GW_RT_ATTRIBUTES] = offsetof(struct gw_record, attributes),
  [GW_RT_RESOURCE] = offsetof(struct gw_record, resource),
};

const char *gw_record_text(const struct gw_record *r, enum gw_rtext t)
{
  return *(const char *const *)(const void *)((const char *)r + rtext_off[t]);
}

void gw_record_set_text(struct gw_record *r, enum gw_rtext t, const char *s, size_t n)
{
  assert(!s || strlen(s) == n);
  *(const char **)(void *)((char *)r + rtext_off[t]) = s;
  r->text_lens[t] = (struct gw_text_len){s, s ? n : 0};
}

/* The length of s, the text field t of r holds. */
static size_t text_len(const struct gw_record *r, enum gw_rtext t, const char *s)
{
  if (!s)
    return 0;
  if (r->text_lens[t].s == s) {
    assert(strlen(s) == r->text_lens[t].n);
    return r->text_lens[t].n;
  }
  return strlen(s);
}

size_t gw_record_text_len(const struct gw_record *r, enum gw_rtext t) { return text_len(r, t, gw_record_text(r, t)); }

/*
 * The encoder measures every text once. A batch of records is about twice its request, so the output is
 * sized exactly before it is written (growing it by doubling copied it and left the smaller copies behind
 * in the arena); the size pass keeps each text's length, in write order, and the write pass stores through
 * a cursor into the reserved room. Before, both passes took strlen of every text (about 1.5 % of the
 * receive line) and every byte went through the builder's room check. The records' long texts (content and
 * JSON columns, most of the bytes) are not measured at all when they carry their length (gw_record_set_text).
 */
struct enc {
  size_t *lens; /* one per text slot: CHARS/TEXT/JSON fields and strv elements, in write order */
  size_t nlens;
};

/* Text slots of the rows: the size of enc.lens. */
static size_t rows_texts(const struct gw_field *fields, size_t nf, const void *rows, size_t stride, size_t n)
{
  size_t t = 0;
  for (size_t i = 0; i < n; i++) {
    const char *base = (const char *)rows + i * stride;
    for (size_t f = 0; f < nf; f++) {
      enum gw_field_type ty = fields[f].type;
      if (ty == GW_FT_CHARS || ty == GW_FT_TEXT || ty == GW_FT_JSON)
        t++;
      else if (ty == GW_FT_STRV)
        t += ((const struct gw_strv *)(const void *)(base + fields[f].offset))->n;
    }
  }
  return t;
}

static size_t str_size_n(struct enc *e, const char *s, size_t n)
{
  e->lens[e->nlens++] = n;
  return s ? 1 + 4 + n : 1;
}

static size_t str_size(struct enc *e, const char *s) { return str_size_n(e, s, s ? strlen(s) : 0); }

/* The exact size rows_encode will write; fills e->lens. recs: the rows are struct gw_record, whose long
 * texts (gw_field.rtext) carry their lengths. */
static size_t rows_size(struct enc *e, const struct gw_field *fields, size_t nf, const void *rows, size_t stride,
                        size_t n, bool recs)
{
  size_t t = 8;
  for (size_t i = 0; i < n; i++) {
    const char *base = (const char *)rows + i * stride;
    for (size_t f = 0; f < nf; f++) {
      const void *p = base + fields[f].offset;
      switch (fields[f].type) {
      case GW_FT_CHARS: t += str_size(e, p); break;
      case GW_FT_TEXT:
      case GW_FT_JSON: {
        const char *s = *(const char *const *)p;
        if (recs && fields[f].rtext)
          t += str_size_n(e, s, text_len((const struct gw_record *)(const void *)base, fields[f].rtext - 1, s));
        else
          t += str_size(e, s);
        break;
      }
      case GW_FT_I64:
      case GW_FT_NUSD: t += 1 + (((const struct gw_opt_i64 *)p)->set ? 8 : 0); break;
      case GW_FT_F64: t += 1 + (((const struct gw_opt_f64 *)p)->set ? 8 : 0); break;
      case GW_FT_TIME: t += 8; break;
      case GW_FT_BOOL: t += 1; break;
      case GW_FT_FLAGS: t += 4; break;
      case GW_FT_STRV: {
        const struct gw_strv *v = p;
        t += 4;
        for (uint32_t k = 0; k < v->n; k++)
          t += str_size(e, v->v[k]);
        break;
      }
      }
    }
  }
  return t;
}

static unsigned char *put_u32(unsigned char *w, uint32_t v)
{
  w[0] = (unsigned char)v;
  w[1] = (unsigned char)(v >> 8);
  w[2] = (unsigned char)(v >> 16);
  w[3] = (unsigned char)(v >> 24);
  return w + 4;
}

static unsigned char *put_u64(unsigned char *w, uint64_t v) { return put_u32(put_u32(w, (uint32_t)v), (uint32_t)(v >> 32)); }

static unsigned char *put_str(unsigned char *w, struct enc *e, const char *s)
{
  size_t n = e->lens[e->nlens++];
  if (!s) {
    *w++ = 0;
    return w;
  }
  *w++ = 1;
  w = put_u32(w, (uint32_t)n);
  memcpy(w, s, n);
  return w + n;
}

static unsigned char *row_write(unsigned char *w, struct enc *e, const struct gw_field *fields, size_t nf,
                                const char *base)
{
  for (size_t f = 0; f < nf; f++) {
    const struct gw_field *fd = &fields[f];
    const void *p = base + fd->offset;
    switch (fd->type) {
    case GW_FT_CHARS: w = put_str(w, e, p); break;
    case GW_FT_TEXT:
    case GW_FT_JSON: w = put_str(w, e, *(const char *const *)p); break;
    case GW_FT_I64:
    case GW_FT_NUSD: {
      const struct gw_opt_i64 *v = p;
      *w++ = v->set;
      if (v->set)
        w = put_u64(w, (uint64_t)v->v);
      break;
    }
    case GW_FT_F64: {
      const struct gw_opt_f64 *v = p;
      *w++ = v->set;
      if (v->set) {
        uint64_t bits;
        memcpy(&bits, &v->v, 8);
        w = put_u64(w, bits);
      }
      break;
    }
    case GW_FT_TIME: w = put_u64(w, *(const uint64_t *)p); break;
    case GW_FT_BOOL: *w++ = (unsigned char)*(const gw_tribool *)p; break;
    case GW_FT_FLAGS: w = put_u32(w, *(const uint32_t *)p); break;
    case GW_FT_STRV: {
      const struct gw_strv *v = p;
      w = put_u32(w, v->n);
      for (uint32_t k = 0; k < v->n; k++)
        w = put_str(w, e, v->v[k]);
      break;
    }
    }
  }
  return w;
}

/* The codec, generic over a field table: rows of `stride` bytes described by fields[0..nf). */
static gw_rc rows_encode(const char magic[4], const struct gw_field *fields, size_t nf, const void *rows, size_t stride,
                         size_t n, bool recs, struct gw_sb *out)
{
  size_t slots = rows_texts(fields, nf, rows, stride, n);
  struct enc e = {gw_malloc((slots ? slots : 1) * sizeof *e.lens), 0};
  size_t size = rows_size(&e, fields, nf, rows, stride, n, recs);
  if (!gw_sb_reserve(out, size)) {
    free(e.lens);
    return GW_ERR(TOO_LARGE);
  }
  unsigned char *start = (unsigned char *)out->buf + out->len, *w = start;
  memcpy(w, magic, 4);
  w = put_u32(w + 4, (uint32_t)n);
  e.nlens = 0;
  for (size_t i = 0; i < n; i++)
    w = row_write(w, &e, fields, nf, (const char *)rows + i * stride);
  out->len += (size_t)(w - start);
  free(e.lens);
  return GW_OK;
}

struct rd {
  const unsigned char *p, *end;
  bool bad;
};

static bool need(struct rd *r, size_t n)
{
  if (r->bad || (size_t)(r->end - r->p) < n) {
    r->bad = true;
    return false;
  }
  return true;
}

static uint8_t get_u8(struct rd *r)
{
  if (!need(r, 1))
    return 0;
  return *r->p++;
}

static uint32_t get_u32(struct rd *r)
{
  if (!need(r, 4))
    return 0;
  uint32_t v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 | (uint32_t)r->p[3] << 24;
  r->p += 4;
  return v;
}

static uint64_t get_u64(struct rd *r)
{
  uint64_t lo = get_u32(r);
  uint64_t hi = get_u32(r);
  return lo | hi << 32;
}

static const char *get_str(struct rd *r, struct gw_arena *a)
{
  if (!get_u8(r))
    return NULL;
  uint32_t n = get_u32(r);
  if (!need(r, n))
    return NULL;
  const char *s = gw_arena_strndup(a, (const char *)r->p, n);
  if (!s)
    r->bad = true;
  r->p += n;
  return s;
}

static gw_rc rows_decode(const char magic[4], const struct gw_field *fields, size_t nf, size_t stride, const void *buf,
                         size_t len, struct gw_arena *a, void **rows, size_t *n, size_t *used)
{
  struct rd r = {buf, (const unsigned char *)buf + len, false};
  *rows = NULL;
  *n = 0;
  if (!need(&r, 8) || memcmp(r.p, magic, 4) != 0)
    return GW_ERR(DECODE);
  r.p += 4;
  uint32_t count = get_u32(&r);
  /* Never size from a declared count alone: each row takes at least one byte per field. */
  if (count > len / nf + 1)
    return GW_ERR(DECODE);
  char *out = gw_arena_calloc(a, stride * (count ? count : 1));
  if (!out)
    return GW_ERR(NOMEM);
  for (uint32_t i = 0; i < count && !r.bad; i++) {
    char *base = out + (size_t)i * stride;
    for (size_t f = 0; f < nf && !r.bad; f++) {
      const struct gw_field *fd = &fields[f];
      void *p = base + fd->offset;
      switch (fd->type) {
      case GW_FT_CHARS: {
        const char *s = get_str(&r, a);
        if (s) {
          size_t sl = strlen(s);
          if (sl >= fd->size)
            r.bad = true;
          else
            memcpy(p, s, sl + 1);
        }
        break;
      }
      case GW_FT_TEXT:
      case GW_FT_JSON: *(const char **)p = get_str(&r, a); break;
      case GW_FT_I64:
      case GW_FT_NUSD: {
        struct gw_opt_i64 *v = p;
        v->set = get_u8(&r) != 0;
        if (v->set)
          v->v = (int64_t)get_u64(&r);
        break;
      }
      case GW_FT_F64: {
        struct gw_opt_f64 *v = p;
        v->set = get_u8(&r) != 0;
        if (v->set) {
          uint64_t bits = get_u64(&r);
          memcpy(&v->v, &bits, 8);
        }
        break;
      }
      case GW_FT_TIME: *(uint64_t *)p = get_u64(&r); break;
      case GW_FT_BOOL: *(gw_tribool *)p = (gw_tribool)get_u8(&r); break;
      case GW_FT_FLAGS: *(uint32_t *)p = get_u32(&r); break;
      case GW_FT_STRV: {
        struct gw_strv *v = p;
        uint32_t k = get_u32(&r);
        if (k > (size_t)(r.end - r.p)) {
          r.bad = true;
          break;
        }
        v->n = k;
        v->v = k ? gw_arena_alloc(a, sizeof(char *) * k) : NULL;
        if (k && !v->v) {
          r.bad = true;
          break;
        }
        for (uint32_t j = 0; j < k; j++)
          v->v[j] = get_str(&r, a);
        break;
      }
      }
    }
  }
  if (r.bad)
    return GW_ERR(DECODE);
  *rows = out;
  *n = count;
  if (used)
    *used = (size_t)(r.p - (const unsigned char *)buf);
  return GW_OK;
}

gw_rc gw_records_encode(const struct gw_record *recs, size_t n, struct gw_sb *out)
{
  return rows_encode("GWR3", gw_record_fields, gw_record_nfields, recs, sizeof *recs, n, true, out);
}

static gw_rc records_decode(const void *buf, size_t len, struct gw_arena *a, struct gw_record **recs, size_t *n,
                            size_t *used)
{
  void *rows;
  /* GWR1: written before the 0006 columns existed, GWR2 before the 0010 one (a disk spool kept across an
   * upgrade); the later fields stay NULL / empty. */
  const char *magic = "GWR3";
  size_t nf = gw_record_nfields;
  if (len >= 4 && !memcmp(buf, "GWR1", 4)) {
    magic = "GWR1";
    nf = gw_record_nfields_v1;
  } else if (len >= 4 && !memcmp(buf, "GWR2", 4)) {
    magic = "GWR2";
    nf = gw_record_nfields_v2;
  }
  gw_rc rc = rows_decode(magic, gw_record_fields, nf, sizeof **recs, buf, len, a, &rows, n, used);
  *recs = rows;
  return rc;
}

gw_rc gw_records_decode(const void *buf, size_t len, struct gw_arena *a, struct gw_record **recs, size_t *n)
{
  return records_decode(buf, len, a, recs, n, NULL);
}

#define T(col, type, member)                                                                                 \
  {col, type, offsetof(struct gw_trace_fact, member), sizeof(((struct gw_trace_fact *)0)->member), 0}

const struct gw_field gw_trace_fact_fields[] = {
  T("trace_id", GW_FT_CHARS, trace_id),
  T("start_time", GW_FT_TIME, start_ns),
  T("session_id", GW_FT_TEXT, session_id),
  T("user_id", GW_FT_TEXT, user_id),
  T("span_id", GW_FT_CHARS, span_id),
};
const size_t gw_trace_fact_nfields = sizeof gw_trace_fact_fields / sizeof gw_trace_fact_fields[0];

gw_rc gw_trace_facts_encode(const struct gw_trace_fact *facts, size_t n, struct gw_sb *out)
{
  if (!n)
    return GW_OK;
  return rows_encode("GWT1", gw_trace_fact_fields, gw_trace_fact_nfields, facts, sizeof *facts, n, false, out);
}

gw_rc gw_records_decode_facts(const void *buf, size_t len, struct gw_arena *a, struct gw_record **recs, size_t *n,
                              struct gw_trace_fact **facts, size_t *nfacts)
{
  size_t used = 0;
  *facts = NULL;
  *nfacts = 0;
  gw_rc rc = records_decode(buf, len, a, recs, n, &used);
  if (rc || used == len)
    return rc;
  void *rows;
  if ((rc = rows_decode("GWT1", gw_trace_fact_fields, gw_trace_fact_nfields, sizeof **facts,
                        (const unsigned char *)buf + used, len - used, a, &rows, nfacts, NULL)))
    return rc;
  *facts = rows;
  return GW_OK;
}

#define E(col, type, member) {col, type, offsetof(struct gw_event, member), sizeof(((struct gw_event *)0)->member), 0}

const struct gw_field gw_event_fields[] = {
  E("trace_id", GW_FT_CHARS, trace_id),
  E("span_id", GW_FT_CHARS, span_id),
  E("time", GW_FT_TIME, time_ns),
  E("event_name", GW_FT_TEXT, event_name),
  E("seq", GW_FT_I64, seq),
  E("role", GW_FT_TEXT, role),
  E("content", GW_FT_TEXT, content),
  E("attributes", GW_FT_JSON, attributes),
  E("redaction_count", GW_FT_I64, redaction_count),
  E("direction", GW_FT_TEXT, direction),
  E("text_content", GW_FT_TEXT, text_content),
  E("prompt_hash", GW_FT_CHARS, prompt_hash),
  E("redacted_kinds", GW_FT_STRV, redacted_kinds),
  E("service_name", GW_FT_TEXT, service_name),
  /* spool format GWE2 */
  E("prompt_simhash", GW_FT_CHARS, prompt_simhash),
};
const size_t gw_event_nfields = sizeof gw_event_fields / sizeof gw_event_fields[0];
const size_t gw_event_nfields_v1 = 14;

gw_rc gw_events_encode(const struct gw_event *evs, size_t n, struct gw_sb *out)
{
  return rows_encode("GWE2", gw_event_fields, gw_event_nfields, evs, sizeof *evs, n, false, out);
}

gw_rc gw_events_decode(const void *buf, size_t len, struct gw_arena *a, struct gw_event **evs, size_t *n)
{
  void *rows;
  /* GWE1: written before prompt_simhash existed (a disk spool kept across an upgrade); it stays "". */
  bool v1 = len >= 4 && !memcmp(buf, "GWE1", 4);
  gw_rc rc = rows_decode(v1 ? "GWE1" : "GWE2", gw_event_fields, v1 ? gw_event_nfields_v1 : gw_event_nfields,
                         sizeof **evs, buf, len, a, &rows, n, NULL);
  *evs = rows;
  return rc;
}
