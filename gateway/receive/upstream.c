/* upstream.c: the stamps one gateway leaves for the next on forwarded spans (upstream.h). */
#include "receive/upstream.h"

#include <string.h>

#include "normalize/simhash.h"
#include "pb.h"

#define K_HASH "genai_gateway.prompt_hash"
#define K_COUNT "genai_gateway.redaction.count"
#define K_KINDS "genai_gateway.redaction.kinds"
#define K_SIMHASH "genai_gateway.prompt_simhash" /* 64 '0'/'1' digits, as the column */
#define K_LINKS "genai_gateway.span_links"     /* string array, as the column */
#define LINKS_MAX 512                          /* normalize.c's GW_SPAN_LINKS_MAX */

/* "<16 hex>:<16 hex>", lowercase: a span link as normalize writes it. */
static bool is_link(const char *s)
{
  if (!s || strlen(s) != 33 || s[16] != ':')
    return false;
  for (int i = 0; i < 33; i++)
    if (i != 16 && !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return true;
}

static bool is_hash(const char *s)
{
  if (!s || strlen(s) != 16)
    return false;
  for (const char *p = s; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
      return false;
  return true;
}

static bool has_kind(const struct gw_strv *v, const char *k)
{
  for (uint32_t i = 0; i < v->n; i++)
    if (v->v[i] && !strcmp(v->v[i], k))
      return true;
  return false;
}

/* What an upstream gateway stamped on one attribute list. */
struct stamps {
  const char *hash;           /* NULL: none */
  int64_t count;              /* 0: none */
  const GwArrayValue *kinds;  /* NULL: none */
  const char *simhash;        /* NULL: none */
  const GwArrayValue *links;  /* NULL: none */
};

static struct stamps read_stamps(GwKeyValue *const *attrs, size_t n)
{
  struct stamps st = {0};
  for (size_t k = 0; k < n; k++) {
    const GwKeyValue *kv = attrs[k];
    const GwAnyValue *v = kv->value;
    if (!kv->key || !v || strncmp(kv->key, "genai_gateway.", 14) != 0)
      continue;
    if (!strcmp(kv->key, K_HASH) && v->value_case == GW_AV_STRING && is_hash(v->string_value))
      st.hash = v->string_value;
    else if (!strcmp(kv->key, K_SIMHASH) && v->value_case == GW_AV_STRING && gw_simhash_parse_bits(v->string_value, &(uint64_t){0}))
      st.simhash = v->string_value;
    else if (!strcmp(kv->key, K_COUNT) && v->value_case == GW_AV_INT && v->int_value > 0 && v->int_value < (1ll << 40))
      st.count = v->int_value;
    else if (!strcmp(kv->key, K_LINKS) && v->value_case == GW_AV_ARRAY && v->array_value &&
             v->array_value->n_values > 0 && v->array_value->n_values <= LINKS_MAX)
      st.links = v->array_value;
    else if (!strcmp(kv->key, K_KINDS) && v->value_case == GW_AV_ARRAY && v->array_value &&
             v->array_value->n_values > 0 && v->array_value->n_values <= 64)
      st.kinds = v->array_value;
  }
  return st;
}

/* Add the stamped count and kinds to a row's own. */
static gw_rc add_redactions(struct gw_arena *a, const struct stamps *st, struct gw_opt_i64 *count,
                            struct gw_strv *kinds)
{
  if (st->count) {
    int64_t own = count->set ? count->v : 0;
    *count = (struct gw_opt_i64){own + st->count, true};
  }
  if (!st->kinds)
    return GW_OK;
  const char **out = gw_arena_alloc(a, (kinds->n + st->kinds->n_values) * sizeof *out);
  if (!out)
    return GW_ERR(TOO_LARGE);
  struct gw_strv k = {out, 0};
  for (uint32_t j = 0; j < kinds->n; j++)
    out[k.n++] = kinds->v[j];
  for (size_t j = 0; j < st->kinds->n_values; j++) {
    const GwAnyValue *e = st->kinds->values[j];
    if (e && e->value_case == GW_AV_STRING && e->string_value && *e->string_value && strlen(e->string_value) < 64 &&
        !has_kind(&k, e->string_value))
      out[k.n++] = e->string_value;
  }
  *kinds = k;
  return GW_OK;
}

/* Add the stamped span links to the record's own (each once, at most LINKS_MAX). */
static gw_rc add_links(struct gw_arena *a, const GwArrayValue *st, struct gw_strv *links)
{
  if (!st)
    return GW_OK;
  const char **out = gw_arena_alloc(a, (links->n + st->n_values) * sizeof *out);
  if (!out)
    return GW_ERR(TOO_LARGE);
  struct gw_strv k = {out, 0};
  for (uint32_t j = 0; j < links->n; j++)
    out[k.n++] = links->v[j];
  for (size_t j = 0; j < st->n_values && k.n < LINKS_MAX; j++) {
    const GwAnyValue *e = st->values[j];
    if (e && e->value_case == GW_AV_STRING && is_link(e->string_value) && !has_kind(&k, e->string_value))
      out[k.n++] = e->string_value;
  }
  *links = k;
  return GW_OK;
}

gw_rc gw_upstream_merge(struct gw_arena *a, struct gw_record *recs, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    struct gw_record *r = &recs[i];
    if (!r->span)
      continue;
    struct stamps st = read_stamps(r->span->attributes, r->span->n_attributes);
    if (st.hash && r->prompt_hash[0])
      memcpy(r->prompt_hash, st.hash, 17);
    if (st.simhash && r->prompt_simhash[0])
      memcpy(r->prompt_simhash, st.simhash, 65);
    gw_rc rc = add_redactions(a, &st, &r->redaction_count, &r->redacted_kinds);
    if (!rc)
      rc = add_links(a, st.links, &r->span_links);
    if (rc)
      return rc;
  }
  return GW_OK;
}

/* The rows of events[] from the same log record as events[i] come right after it (normalize builds
 * them record by record). */
static bool first_of_record(const struct gw_event *ev, size_t i)
{
  return i == 0 || ev[i - 1].log != ev[i].log;
}

gw_rc gw_upstream_merge_events(struct gw_arena *a, struct gw_event *ev, size_t n)
{
  bool stamped = false;
  for (size_t i = 0; i < n && !stamped; i++)
    if (ev[i].log) {
      struct stamps st = read_stamps(ev[i].log->attributes, ev[i].log->n_attributes);
      stamped = st.hash || st.simhash;
    }
  for (size_t i = 0; i < n; i++) {
    struct gw_event *e = &ev[i];
    if (!e->log)
      continue;
    struct stamps st = read_stamps(e->log->attributes, e->log->n_attributes);
    if (stamped) {
      /* The upstream took the hashes (and SimHashes) over unredacted text; ours are over its redacted output. */
      bool first_input = false;
      if ((st.hash || st.simhash) && e->direction && !strcmp(e->direction, "input")) {
        first_input = true;
        for (size_t j = i; j > 0 && ev[j - 1].log == e->log && first_input; j--)
          first_input = !(ev[j - 1].direction && !strcmp(ev[j - 1].direction, "input"));
      }
      if (first_input && st.hash)
        memcpy(e->prompt_hash, st.hash, 17);
      else
        e->prompt_hash[0] = 0;
      if (first_input && st.simhash)
        memcpy(e->prompt_simhash, st.simhash, 65);
      else
        e->prompt_simhash[0] = 0;
    }
    if (first_of_record(ev, i)) {
      gw_rc rc = add_redactions(a, &st, &e->redaction_count, &e->redacted_kinds);
      if (rc)
        return rc;
    }
  }
  return GW_OK;
}

static GwKeyValue *kv_new(struct gw_arena *a, const char *key)
{
  GwKeyValue *kv = gw_arena_alloc(a, sizeof *kv);
  GwAnyValue *v = gw_arena_alloc(a, sizeof *v);
  if (!kv || !v)
    return NULL;
  gw_pb_key_value_init(kv);
  gw_pb_any_value_init(v);
  kv->key = (char *)key; /* a literal: protobuf-c only reads it */
  kv->value = v;
  return kv;
}

/* Replace the stamps in the attribute list (attrs, n) with hash (NULL: none), count and kinds. */
/* A string array value of v[0, n). */
static GwArrayValue *str_array(struct gw_arena *a, const struct gw_strv *sv)
{
  GwArrayValue *arr = gw_arena_alloc(a, sizeof *arr);
  GwAnyValue **vals = gw_arena_alloc(a, (sv->n + 1) * sizeof *vals);
  if (!arr || !vals)
    return NULL;
  gw_pb_array_value_init(arr);
  for (uint32_t j = 0; j < sv->n; j++) {
    GwAnyValue *e = gw_arena_alloc(a, sizeof *e);
    char *s = gw_arena_strdup(a, sv->v[j] ? sv->v[j] : "");
    if (!e || !s)
      return NULL;
    gw_pb_any_value_init(e);
    e->value_case = GW_AV_STRING;
    e->string_value = s;
    vals[arr->n_values++] = e;
  }
  arr->values = vals;
  return arr;
}

static gw_rc write_stamps(struct gw_arena *a, GwKeyValue ***attrs, size_t *n, const char *hash, const char *simhash,
                          int64_t count, const struct gw_strv *kinds, const struct gw_strv *links)
{
  if (!hash && !simhash && count <= 0 && !links->n)
    return GW_OK;
  GwKeyValue **v = gw_arena_alloc(a, (*n + 5) * sizeof *v);
  if (!v)
    return GW_ERR(TOO_LARGE);
  size_t w = 0;
  for (size_t k = 0; k < *n; k++) {
    const char *key = (*attrs)[k]->key;
    if (key && !strncmp(key, "genai_gateway.", 14) && /* (all five: one compare for most keys) */
        (!strcmp(key, K_HASH) || !strcmp(key, K_COUNT) || !strcmp(key, K_KINDS) || !strcmp(key, K_SIMHASH) ||
         !strcmp(key, K_LINKS)))
      continue; /* an earlier gateway's: ours replace it (we merged it) */
    v[w++] = (*attrs)[k];
  }
  if (hash) {
    GwKeyValue *kv = kv_new(a, K_HASH);
    char *h = gw_arena_strdup(a, hash);
    if (!kv || !h)
      return GW_ERR(TOO_LARGE);
    kv->value->value_case = GW_AV_STRING;
    kv->value->string_value = h;
    v[w++] = kv;
  }
  if (simhash) {
    GwKeyValue *kv = kv_new(a, K_SIMHASH);
    char *h = gw_arena_strdup(a, simhash);
    if (!kv || !h)
      return GW_ERR(TOO_LARGE);
    kv->value->value_case = GW_AV_STRING;
    kv->value->string_value = h;
    v[w++] = kv;
  }
  if (count > 0) {
    GwKeyValue *kc = kv_new(a, K_COUNT), *kk = kv_new(a, K_KINDS);
    GwArrayValue *arr = str_array(a, kinds);
    if (!kc || !kk || !arr)
      return GW_ERR(TOO_LARGE);
    kc->value->value_case = GW_AV_INT;
    kc->value->int_value = count;
    v[w++] = kc;
    if (arr->n_values) {
      kk->value->value_case = GW_AV_ARRAY;
      kk->value->array_value = arr;
      v[w++] = kk;
    }
  }
  if (links->n) {
    GwKeyValue *kl = kv_new(a, K_LINKS);
    GwArrayValue *arr = str_array(a, links);
    if (!kl || !arr)
      return GW_ERR(TOO_LARGE);
    kl->value->value_case = GW_AV_ARRAY;
    kl->value->array_value = arr;
    v[w++] = kl;
  }
  *attrs = v;
  *n = w;
  return GW_OK;
}

gw_rc gw_upstream_stamp(struct gw_arena *a, struct gw_record *recs, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    const struct gw_record *r = &recs[i];
    if (!r->span)
      continue;
    gw_rc rc = write_stamps(a, &r->span->attributes, &r->span->n_attributes, r->prompt_hash[0] ? r->prompt_hash : NULL,
                            r->prompt_simhash[0] ? r->prompt_simhash : NULL, r->redaction_count.set ? r->redaction_count.v : 0, &r->redacted_kinds,
                            &r->span_links);
    if (rc)
      return rc;
  }
  return GW_OK;
}

gw_rc gw_upstream_stamp_logs(struct gw_arena *a, const struct gw_event *ev, size_t n)
{
  for (size_t i = 0; i < n;) {
    /* one log record: its rows are ev[i, j) */
    size_t j = i + 1;
    while (j < n && ev[j].log == ev[i].log)
      j++;
    GwLogRecord *log = (GwLogRecord *)ev[i].log; /* the request's own record, in the arena */
    const char *hash = NULL, *simhash = NULL;
    int64_t count = 0;
    uint32_t nk = 0;
    for (size_t k = i; k < j; k++) {
      if (ev[k].prompt_hash[0] && !hash)
        hash = ev[k].prompt_hash;
      if (ev[k].prompt_simhash[0] && !simhash)
        simhash = ev[k].prompt_simhash;
      count += ev[k].redaction_count.set ? ev[k].redaction_count.v : 0;
      nk += ev[k].redacted_kinds.n;
    }
    struct gw_strv kinds = {NULL, 0};
    if (nk) {
      const char **kv = gw_arena_alloc(a, nk * sizeof *kv);
      if (!kv)
        return GW_ERR(TOO_LARGE);
      kinds.v = kv;
      for (size_t k = i; k < j; k++)
        for (uint32_t m = 0; m < ev[k].redacted_kinds.n; m++)
          if (ev[k].redacted_kinds.v[m] && !has_kind(&kinds, ev[k].redacted_kinds.v[m]))
            kv[kinds.n++] = ev[k].redacted_kinds.v[m];
    }
    if (log) {
      gw_rc rc = write_stamps(a, &log->attributes, &log->n_attributes, hash, simhash, count, &kinds,
                              &(struct gw_strv){NULL, 0});
      if (rc)
        return rc;
    }
    i = j;
  }
  return GW_OK;
}
