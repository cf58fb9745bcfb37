/*
 * cost.c: the cost stage (DESIGN §4), run per request after normalize and before redaction: price
 * lookup, the exact cost arithmetic, the unknown-model reporting, and the cost attributes on forwarded
 * spans.
 *
 * Key decisions:
 * - Selection rule (deterministic; docs/pricing.md): among the entries whose pattern matches the model
 *   name (and whose provider, when the entry names one, equals the record's provider when the record has
 *   one), order by (1) a LiteLLM key equal to the name, (2) priority, higher first, (3) user file before
 *   defaults (as Langfuse puts project prices before its defaults), (4) valid_from, latest first, (5) later
 *   in the file first; then take the first one in force at the span's start (valid_from <= start; start 0
 *   means now), so an older span falls through to the price that was in force then.
 * - Lookups are cached per (model, provider) as that ordered candidate list, so the span's start time is
 *   still honoured on a hit. 16 mutex-guarded shards of at most 256 names each; a full shard is cleared
 *   (bounded memory whatever names clients send). pcre2 match data is per thread.
 * - Arithmetic in integers: rates are pico-USD per token, products and sums in unsigned 128-bit, each of
 *   input and output cost rounded half up to nano-USD once, total = input + output.
 * - A record flagged tokens_out_of_range gets no computed cost (a reported cost still stands in).
 * - Token semantics (DESIGN §3, counts inclusive): input cost = (input - cache_read - cache_write) x input
 *   + cache_read x cache_read rate + cache_write x cache_write rate (the input rate when the entry has no
 *   cache rate); output cost = (output - reasoning) x output + reasoning x reasoning rate (the output rate
 *   unless priced apart). Input above the entry's long-context threshold prices the whole request at the
 *   long-context rates; a batch/flex/priority service tier prices at that tier's rates when the entry has
 *   them; rates a tier does not give fall back to the base (or long-context) rate.
 * - Unknown models are logged once per distinct name per table (at most 1024 names, then one line saying
 *   so), never per span; the metric counts every record.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/metrics.h"
#include "cost/cost_int.h"
#include "pb.h"

/* ---- per-thread match data ---- */

static pthread_key_t md_key;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

static void md_free(void *md) { pcre2_match_data_free(md); }
static void md_init(void) { pthread_key_create(&md_key, md_free); }

static pcre2_match_data *thread_md(void)
{
  pthread_once(&md_once, md_init);
  pcre2_match_data *md = pthread_getspecific(md_key);
  if (!md) {
    md = pcre2_match_data_create(1, NULL);
    if (!md)
      abort(); /* process-lifetime allocation: the heap wrappers' policy */
    pthread_setspecific(md_key, md);
  }
  return md;
}

/* ---- candidates ---- */

struct cand_ctx {
  const struct gw_prices *p;
  const char *model;
};

static int prefer(const struct gw_price_entry *a, const struct gw_price_entry *b, const char *model, size_t ia,
                  size_t ib)
{
  bool ea = a->exact && !strcasecmp(a->exact, model), eb = b->exact && !strcasecmp(b->exact, model);
  if (ea != eb)
    return ea ? -1 : 1;
  if (a->priority != b->priority)
    return a->priority > b->priority ? -1 : 1;
  if (a->user != b->user)
    return a->user ? -1 : 1;
  if (a->valid_from_ns != b->valid_from_ns)
    return a->valid_from_ns > b->valid_from_ns ? -1 : 1;
  return ia > ib ? -1 : ia < ib ? 1 : 0;
}

/* Every matching entry index, in preference order, into out (n entries); returns the count. */
static uint32_t candidates(const struct gw_prices *p, const char *model, const char *provider, uint32_t *out)
{
  pcre2_match_data *md = thread_md();
  size_t len = strlen(model);
  uint32_t n = 0;
  for (size_t i = 0; i < p->n; i++) {
    const struct gw_price_entry *e = &p->v[i];
    if (e->provider && provider && strcasecmp(e->provider, provider))
      continue;
    if (pcre2_match(e->re, (PCRE2_SPTR)model, len, 0, 0, md, NULL) < 0)
      continue;
    /* insertion sort: candidate lists are short */
    uint32_t j = n++;
    while (j > 0 && prefer(e, &p->v[out[j - 1]], model, i, out[j - 1]) < 0) {
      out[j] = out[j - 1];
      j--;
    }
    out[j] = (uint32_t)i;
  }
  return n;
}

static uint32_t fnv1a(const char *s, const char *t)
{
  uint32_t h = 2166136261u;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 16777619u;
  h = (h ^ 0x1f) * 16777619u;
  for (; t && *t; t++)
    h = (h ^ (unsigned char)*t) * 16777619u;
  return h;
}

static bool key_eq(const char *key, const char *model, size_t mlen, const char *provider)
{
  return !memcmp(key, model, mlen) && key[mlen] == 0x1f && !strcmp(key + mlen + 1, provider ? provider : "");
}

/* Cached candidate list of (model, provider); false when the name is too long to cache or has more
 * candidates than a cache slot holds (then the caller matches directly). */
static bool cache_get(const struct gw_prices *cp, const char *model, const char *provider, uint32_t *cand,
                      uint32_t *ncand)
{
  struct gw_prices *p = (struct gw_prices *)cp; /* the cache is the one mutable part, behind its locks */
  size_t mlen = strlen(model), plen = provider ? strlen(provider) : 0;
  if (mlen + plen > GW_COST_MAX_NAME)
    return false;
  uint32_t h = fnv1a(model, provider);
  struct gw_cache_shard *sh = &p->shard[h >> 28];
  const uint32_t mask = 2 * GW_COST_SHARD_CAP - 1;
  pthread_mutex_lock(&sh->mu);
  for (uint32_t j = h & mask; sh->slots[j].key; j = (j + 1) & mask) {
    struct gw_cache_ent *ce = &sh->slots[j];
    if (ce->hash == h && key_eq(ce->key, model, mlen, provider)) {
      *ncand = ce->ncand;
      memcpy(cand, ce->cand, ce->ncand * sizeof *cand);
      pthread_mutex_unlock(&sh->mu);
      return true;
    }
  }
  pthread_mutex_unlock(&sh->mu);

  uint32_t stack[64], *all = p->n <= 64 ? stack : gw_malloc(p->n * sizeof *all);
  uint32_t n = candidates(p, model, provider, all);
  bool ok = n <= GW_COST_MAX_CAND;
  if (ok) {
    *ncand = n;
    memcpy(cand, all, n * sizeof *cand);
    pthread_mutex_lock(&sh->mu);
    if (sh->used >= GW_COST_SHARD_CAP) {
      for (uint32_t j = 0; j <= mask; j++)
        free(sh->slots[j].key);
      memset(sh->slots, 0, (mask + 1) * sizeof *sh->slots);
      sh->used = 0;
    }
    uint32_t j = h & mask;
    while (sh->slots[j].key && !(sh->slots[j].hash == h && key_eq(sh->slots[j].key, model, mlen, provider)))
      j = (j + 1) & mask;
    if (!sh->slots[j].key) {
      struct gw_cache_ent *ce = &sh->slots[j];
      ce->key = gw_malloc(mlen + plen + 2);
      memcpy(ce->key, model, mlen);
      ce->key[mlen] = 0x1f;
      memcpy(ce->key + mlen + 1, provider ? provider : "", plen + 1);
      ce->hash = h;
      ce->ncand = n;
      memcpy(ce->cand, cand, n * sizeof *cand);
      sh->used++;
    }
    pthread_mutex_unlock(&sh->mu);
  }
  if (all != stack)
    free(all);
  return ok;
}

static const struct gw_price_entry *lookup(const struct gw_prices *p, const char *model, const char *provider,
                                           uint64_t start_ns)
{
  uint32_t cand[GW_COST_MAX_CAND], n = 0, *list = cand, *heap = NULL;
  const struct gw_price_entry *hit = NULL;
  if (!p || !model || !model[0])
    return NULL;
  if (!cache_get(p, model, provider, cand, &n)) {
    heap = gw_malloc((p->n ? p->n : 1) * sizeof *heap);
    n = candidates(p, model, provider, heap);
    list = heap;
  }
  if (!start_ns)
    start_ns = gw_now_ns();
  for (uint32_t i = 0; i < n && !hit; i++)
    if (p->v[list[i]].valid_from_ns <= start_ns)
      hit = &p->v[list[i]];
  free(heap);
  return hit;
}

const char *gw_prices_match(const struct gw_prices *p, const char *model, const char *provider, uint64_t start_ns,
                            const char **price_id)
{
  const struct gw_price_entry *e = lookup(p, model, provider, start_ns);
  if (price_id)
    *price_id = e ? e->price_id : NULL;
  return e ? e->id : NULL;
}

/* ---- arithmetic ---- */

typedef unsigned __int128 u128;

static void overlay(struct gw_rates *dst, const struct gw_rates *src)
{
  for (int i = 0; i < GW_R__COUNT; i++)
    if (src->have & (1u << i)) {
      dst->r[i] = src->r[i];
      dst->have |= 1u << i;
    }
}

static int64_t rate(const struct gw_rates *r, enum gw_rate want, enum gw_rate fallback)
{
  return r->have & (1u << want) ? r->r[want] : r->r[fallback];
}

static int tier_of(const char *s)
{
  if (!s)
    return -1;
  if (!strcasecmp(s, "batch"))
    return GW_T_BATCH;
  if (!strcasecmp(s, "flex"))
    return GW_T_FLEX;
  if (!strcasecmp(s, "priority"))
    return GW_T_PRIORITY;
  return -1; /* auto, default, scale, ...: the standard rates */
}

/* pico-USD to nano-USD, half up; false past the int64 range we allow for one cost. */
static bool to_nano(u128 pico, int64_t *out)
{
  u128 nano = (pico + 500) / 1000;
  if (nano > (u128)(INT64_MAX / 4))
    return false;
  *out = (int64_t)nano;
  return true;
}

static int64_t sub0(int64_t a, int64_t b) { return a > b ? a - b : 0; }

/* The record's computed cost from entry e; false when its tokens cannot be priced. */
static bool compute(const struct gw_price_entry *e, struct gw_record *r)
{
  const struct gw_record *c = r;
  /* A count the client reported but normalize dropped as out of range: any cost from what is left (the
   * other side alone, or input without its cached part) would be a made-up figure. Unknown instead. */
  if (gw_record_has_flag(r, GW_FLAG_TOKENS_OUT_OF_RANGE))
    return false;
  struct gw_rates eff = e->base;
  int64_t in = c->input_tokens.set ? c->input_tokens.v : 0;
  if (e->long_threshold && c->input_tokens.set && in > e->long_threshold)
    overlay(&eff, &e->long_ctx);
  int t = tier_of(c->service_tier);
  if (t >= 0 && e->tier[t].have)
    overlay(&eff, &e->tier[t]);

  struct gw_opt_i64 ic = {0}, oc = {0}, crc = {0}, cwc = {0}, rsc = {0};
  if (c->input_tokens.set) {
    int64_t cr = c->cache_read_tokens.set ? c->cache_read_tokens.v : 0;
    int64_t cw = c->cache_write_tokens.set ? c->cache_write_tokens.v : 0;
    u128 cr_pico = (u128)cr * (u128)rate(&eff, GW_R_CACHE_READ, GW_R_INPUT);
    u128 cw_pico = (u128)cw * (u128)rate(&eff, GW_R_CACHE_WRITE, GW_R_INPUT);
    u128 pico = (u128)sub0(sub0(in, cr), cw) * (u128)eff.r[GW_R_INPUT] + cr_pico + cw_pico;
    if (!to_nano(pico, &ic.v))
      return false;
    ic.set = true;
    /* the parts, for a per-type view; the total stays the one rounding of the sum */
    crc.set = c->cache_read_tokens.set && to_nano(cr_pico, &crc.v);
    cwc.set = c->cache_write_tokens.set && to_nano(cw_pico, &cwc.v);
  }
  if (c->output_tokens.set) {
    int64_t out = c->output_tokens.v;
    int64_t rs = c->reasoning_tokens.set ? (c->reasoning_tokens.v < out ? c->reasoning_tokens.v : out) : 0;
    u128 rs_pico = (u128)rs * (u128)rate(&eff, GW_R_REASONING, GW_R_OUTPUT);
    u128 pico = (u128)(out - rs) * (u128)eff.r[GW_R_OUTPUT] + rs_pico;
    if (!to_nano(pico, &oc.v))
      return false;
    oc.set = true;
    rsc.set = c->reasoning_tokens.set && to_nano(rs_pico, &rsc.v);
  }
  if (!ic.set && !oc.set)
    return false;
  r->input_cost_nusd = ic;
  r->output_cost_nusd = oc;
  r->cache_read_cost_nusd = crc;
  r->cache_write_cost_nusd = cwc;
  r->reasoning_cost_nusd = rsc;
  r->total_cost_nusd = (struct gw_opt_i64){(ic.set ? ic.v : 0) + (oc.set ? oc.v : 0), true};
  return true;
}

/* ---- unknown models ---- */

static void log_unknown(const struct gw_prices *cp, const char *model, const char *provider)
{
  struct gw_prices *p = (struct gw_prices *)cp; /* the logged-name set is mutable, behind log_mu */
  pthread_mutex_lock(&p->log_mu);
  for (uint32_t i = 0; i < p->nlogged; i++)
    if (!strcmp(p->logged[i], model))
      goto out;
  if (p->nlogged < GW_COST_LOG_CAP) {
    p->logged[p->nlogged++] = gw_strdup(model);
    p->nlog_lines++;
    gw_warn("cost", "no price for model \"%.128s\" (provider %.64s): cost left NULL, flag model_unpriced; "
                    "logged once per model name", model, provider ? provider : "unknown");
  } else if (!p->log_overflow) {
    p->log_overflow = true;
    p->nlog_lines++;
    gw_warn("cost", "more than %d distinct unpriced model names: no longer logging them (see metric "
                    "genai_gateway_cost_unknown_total)", GW_COST_LOG_CAP);
  }
out:
  pthread_mutex_unlock(&p->log_mu);
}

uint64_t gw_prices_unknown_logged(const struct gw_prices *cp)
{
  struct gw_prices *p = (struct gw_prices *)cp;
  if (!p)
    return 0;
  pthread_mutex_lock(&p->log_mu);
  uint64_t n = p->nlog_lines;
  pthread_mutex_unlock(&p->log_mu);
  return n;
}

/* ---- the stage ---- */

void gw_cost_apply(const struct gw_prices *p, struct gw_record *recs, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    struct gw_record *r = &recs[i];
    /* normalize's pick (SPEC-FACTS: Langfuse's, semconv's response then request model, then
     * OpenInference's): a span carrying both dialects is priced on the semconv name */
    const char *model = r->model_id ? r->model_id : r->response_model ? r->response_model : r->request_model;
    const struct gw_price_entry *e = model ? lookup(p, model, r->provider, r->start_ns) : NULL;
    if (e) {
      r->model_id = e->id;
      if (compute(e, r)) {
        r->cost_source = "computed";
        r->price_id = e->price_id;
        continue;
      }
    } else if (model) {
      gw_record_set_flag(r, GW_FLAG_MODEL_UNPRICED);
    }
    if (r->reported_cost_nusd.set) {
      r->total_cost_nusd = r->reported_cost_nusd;
      r->cost_source = "reported";
    } else if (model && !e) {
      gw_metric_add(GW_M_COST_UNKNOWN, 1);
      log_unknown(p, model, r->provider);
    }
  }
}

/* ---- forwarded span attributes ---- */

#define ATTR_PREFIX "genai_gateway.cost."

static GwKeyValue *kv_new(struct gw_arena *a, const char *key)
{
  GwKeyValue *kv = gw_arena_alloc(a, sizeof *kv);
  GwAnyValue *v = gw_arena_alloc(a, sizeof *v);
  if (!kv || !v)
    return NULL;
  gw_pb_key_value_init(kv);
  gw_pb_any_value_init(v);
  kv->key = (char *)key; /* a literal: protobuf-c only reads it, and the arena never frees */
  kv->value = v;
  return kv;
}

static GwKeyValue *kv_usd(struct gw_arena *a, const char *key, int64_t nusd)
{
  GwKeyValue *kv = kv_new(a, key);
  if (kv) {
    kv->value->value_case = GW_AV_DOUBLE;
    kv->value->double_value = (double)nusd / 1e9;
  }
  return kv;
}

static GwKeyValue *kv_str(struct gw_arena *a, const char *key, const char *s)
{
  GwKeyValue *kv = kv_new(a, key);
  char *copy = gw_arena_strdup(a, s);
  if (!kv || !copy)
    return NULL;
  kv->value->value_case = GW_AV_STRING;
  kv->value->string_value = copy;
  return kv;
}

gw_rc gw_cost_annotate_spans(struct gw_arena *a, struct gw_record *recs, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    const struct gw_record *r = &recs[i];
    GwSpan *sp = r->span;
    if (!sp || !r->total_cost_nusd.set || !r->cost_source)
      continue;
    bool client_cost = false;
    size_t keep = 0;
    GwKeyValue **v = gw_arena_alloc(a, (sp->n_attributes + 12) * sizeof *v);
    if (!v)
      return GW_ERR(TOO_LARGE);
    for (size_t k = 0; k < sp->n_attributes; k++) {
      GwKeyValue *kv = sp->attributes[k];
      const char *key = kv->key;
      /* byte by byte first (each stops at a NUL): most keys are neither of the two below by their 8th byte */
      if (key && key[0] == 'g' && key[1] == 'e' && key[2] == 'n') {
        if (key[3] == '_' && key[4] == 'a' && key[5] == 'i' && key[6] == '.' && key[7] == 'u' &&
            !strcmp(key, "gen_ai.usage.cost"))
          client_cost = true;
        /* A span re-sent through another gateway: our values replace the earlier stamp. */
        if (key[3] == 'a' && !strncmp(key, ATTR_PREFIX, sizeof ATTR_PREFIX - 1))
          continue;
      }
      v[keep++] = kv;
    }
    GwKeyValue *add[12] = {0};
    size_t na = 0;
    bool oom = false;
#define ADD(x)       \
  do {               \
    GwKeyValue *kv_ = (x); \
    oom |= !kv_;     \
    add[na++] = kv_; \
  } while (0)
    ADD(kv_usd(a, ATTR_PREFIX "total_usd", r->total_cost_nusd.v));
    if (r->input_cost_nusd.set)
      ADD(kv_usd(a, ATTR_PREFIX "input_usd", r->input_cost_nusd.v));
    if (r->output_cost_nusd.set)
      ADD(kv_usd(a, ATTR_PREFIX "output_usd", r->output_cost_nusd.v));
    if (r->cache_read_cost_nusd.set)
      ADD(kv_usd(a, ATTR_PREFIX "cache_read_usd", r->cache_read_cost_nusd.v));
    if (r->cache_write_cost_nusd.set)
      ADD(kv_usd(a, ATTR_PREFIX "cache_write_usd", r->cache_write_cost_nusd.v));
    if (r->reasoning_cost_nusd.set)
      ADD(kv_usd(a, ATTR_PREFIX "reasoning_usd", r->reasoning_cost_nusd.v));
    if (r->price_id)
      ADD(kv_str(a, ATTR_PREFIX "price_id", r->price_id));
    ADD(kv_str(a, ATTR_PREFIX "source", r->cost_source));
    /* what the client reported, for a downstream gateway (receive/upstream.h) */
    if (r->reported_cost_nusd.set)
      ADD(kv_usd(a, ATTR_PREFIX "reported_usd", r->reported_cost_nusd.v));
    if (!client_cost)
      ADD(kv_usd(a, "gen_ai.usage.cost", r->total_cost_nusd.v));
#undef ADD
    if (oom)
      return GW_ERR(TOO_LARGE);
    memcpy(v + keep, add, na * sizeof *v);
    sp->attributes = v;
    sp->n_attributes = keep + na;
  }
  return GW_OK;
}
