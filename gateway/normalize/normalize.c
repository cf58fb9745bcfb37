/*
 * normalize.c: the normalize stage (DESIGN §3): after decode, before cost and redaction. Walks every span
 * of a trace request, rejects and removes spans with invalid ids (SPEC-FACTS §1.7), and turns each GenAI
 * span into one struct gw_record in the request arena.
 *
 * Key decisions:
 * - One pass over a span's attributes. A process-wide open-addressing hash (built once by
 *   gw_normalize_init from the dialect files' key tables) maps each known key to a slot; indexed
 *   families are parsed by prefix. Only then are fields resolved, each by its own precedence list
 *   (langfuse.* overrides, semconv, deprecated semconv, OpenLLMetry, OpenInference; SPEC-FACTS appendix).
 * - Duplicate attribute keys: the last one wins, in slots and in the attributes JSON (which may then
 *   hold the key twice; jsonb and json-c both keep the last).
 * - Span attributes win over span events; events only fill content that attributes left empty.
 * - System instructions stay in prompt_content (as a leading system message, the semconv input shape,
 *   prepended when gen_ai.system_instructions came separately) and are also given as plain text in
 *   system_prompt. prompt_hash is over prompt_content exactly as stored, before redaction.
 * - Unknown values stay NULL; flags say why (tokens_missing, model_missing, total_derived, ...).
 * - A token count outside [0, GW_TOKENS_MAX] (negative, or above the int columns: no single call has
 *   2^31 tokens) is unknown too: NULL and tokens_out_of_range, never clamped; cost then prices nothing.
 *   Sums (derived totals, Langfuse's inclusive counts) are checked against the same bound.
 * - The client-reported cost (reported_cost_nusd) and the billed service tier are read here; pricing is the
 *   cost module's. Each record points back to its span (transient) so cost can annotate it.
 * Leaves to others: cost (model_id is replaced by the price entry), redaction and truncation, merging
 * content from OTLP log records.
 */
#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/sha256.h"
#include "decode/decode.h"
#include "normalize/normalize_int.h"
#include "normalize/simhash.h"

/* SHA-256 fetched once: with EVP_sha256(), OpenSSL 3 looks its implementation up again on every digest,
 * about a sixth of the time of hashing a 1.5 KB prompt. */
static EVP_MD *sha256_md;
static void sha256_fetch(void) { sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL); }

const EVP_MD *nz_sha256(void)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, sha256_fetch);
  return sha256_md ? sha256_md : EVP_sha256();
}

/* ---- the key table ---- */

#define NZ_HASH_SIZE 512 /* power of two, well over twice the number of keys */

struct hent {
  const char *key;
  uint32_t hash, len;
  uint16_t slot;
};

static struct hent table[NZ_HASH_SIZE];
static uint8_t slot_dialect[NZ_S__COUNT];
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static const char *const dialect_names[NZ_D__COUNT] = {"semconv", "semconv_deprecated", "openllmetry",
                                                       "openinference", "langfuse"};

const char *const nz_param_names[] = {
#define NZ_PARAM_NAME(id, name) name,
  NZ_PARAMS(NZ_PARAM_NAME)
#undef NZ_PARAM_NAME
};

/* The table's hash of a key: its length and three of its 8-byte words (first, middle, last; a shorter key
 * whole), mixed by multiplication. Keys alike in those words share a slot chain, and lookup compares whole
 * keys, so it only has to spread the table's keys (a byte-at-a-time hash was 2 % of normalize). */
static uint32_t key_hash(const char *s, size_t *len)
{
  const uint64_t k = 0x9E3779B97F4A7C15ull;
  size_t n = strlen(s);
  uint64_t a = 0, m = 0, b = 0;
  if (n >= 8) {
    memcpy(&a, s, 8);
    memcpy(&m, s + n / 2 - 4, 8);
    memcpy(&b, s + n - 8, 8);
  } else {
    memcpy(&a, s, n);
  }
  uint64_t h = (n ^ a) * k;
  h = (h ^ (h >> 29) ^ m) * k;
  h = (h ^ (h >> 29) ^ b) * k;
  *len = n;
  return (uint32_t)(h >> 32);
}

static void table_add(const struct nz_key *keys, size_t n, enum nz_dialect d)
{
  for (size_t i = 0; i < n; i++) {
    size_t len;
    uint32_t h = key_hash(keys[i].key, &len);
    uint32_t j = h & (NZ_HASH_SIZE - 1);
    while (table[j].key)
      j = (j + 1) & (NZ_HASH_SIZE - 1);
    table[j] = (struct hent){keys[i].key, h, (uint32_t)len, keys[i].slot};
    slot_dialect[keys[i].slot] = (uint8_t)d;
  }
}

static void build_table(void)
{
  table_add(nz_semconv_keys, nz_semconv_nkeys, NZ_D_SEMCONV);
  table_add(nz_semconv_old_keys, nz_semconv_old_nkeys, NZ_D_SEMCONV_OLD);
  table_add(nz_openllmetry_keys, nz_openllmetry_nkeys, NZ_D_OPENLLMETRY);
  table_add(nz_openinference_keys, nz_openinference_nkeys, NZ_D_OPENINFERENCE);
  table_add(nz_langfuse_keys, nz_langfuse_nkeys, NZ_D_LANGFUSE);
}

void gw_normalize_init(void) { pthread_once(&init_once, build_table); }

static int lookup(const char *key, size_t len, uint32_t h)
{
  for (uint32_t j = h & (NZ_HASH_SIZE - 1); table[j].key; j = (j + 1) & (NZ_HASH_SIZE - 1))
    if (table[j].hash == h && table[j].len == len && !memcmp(table[j].key, key, len))
      return table[j].slot;
  return -1;
}

/* ---- value helpers ---- */

const char *nz_str(const GwAnyValue *v)
{
  return v && v->value_case == GW_AV_STRING && v->string_value && v->string_value[0] ? v->string_value : NULL;
}

enum nz_count nz_count_i64(struct nz_ctx *c, int64_t v, int64_t *out)
{
  if (v < 0 || v > GW_TOKENS_MAX) {
    gw_record_set_flag(c->r, GW_FLAG_TOKENS_OUT_OF_RANGE);
    return NZ_COUNT_RANGE;
  }
  *out = v;
  return NZ_COUNT_OK;
}

enum nz_count nz_count_f64(struct nz_ctx *c, double d, int64_t *out)
{
  if (!isfinite(d) || d != floor(d)) {
    gw_record_set_flag(c->r, GW_FLAG_BAD_ATTRIBUTE);
    return NZ_COUNT_BAD;
  }
  if (!(d >= 0 && d <= (double)GW_TOKENS_MAX)) { /* before the conversion, undefined past int64 */
    gw_record_set_flag(c->r, GW_FLAG_TOKENS_OUT_OF_RANGE);
    return NZ_COUNT_RANGE;
  }
  *out = (int64_t)d;
  return NZ_COUNT_OK;
}

enum nz_count nz_count_av(struct nz_ctx *c, const GwAnyValue *v, int64_t *out)
{
  if (!v)
    return NZ_COUNT_NONE;
  if (v->value_case == GW_AV_INT)
    return nz_count_i64(c, v->int_value, out);
  if (v->value_case == GW_AV_DOUBLE)
    return nz_count_f64(c, v->double_value, out);
  if (v->value_case == GW_AV_STRING && v->string_value[0]) {
    char *end;
    errno = 0;
    long long x = strtoll(v->string_value, &end, 10);
    if (!*end) {
      if (errno == ERANGE) { /* digits past int64: strtoll clamped them */
        gw_record_set_flag(c->r, GW_FLAG_TOKENS_OUT_OF_RANGE);
        return NZ_COUNT_RANGE;
      }
      return nz_count_i64(c, x, out);
    }
  }
  gw_record_set_flag(c->r, GW_FLAG_BAD_ATTRIBUTE);
  return NZ_COUNT_BAD;
}

bool nz_dbl(struct nz_ctx *c, const GwAnyValue *v, double *out)
{
  if (!v)
    return false;
  if (v->value_case == GW_AV_DOUBLE) {
    *out = v->double_value;
    return true;
  }
  if (v->value_case == GW_AV_INT) {
    *out = (double)v->int_value;
    return true;
  }
  if (v->value_case == GW_AV_STRING && v->string_value[0]) {
    char *end;
    double x = strtod(v->string_value, &end);
    if (!*end) {
      *out = x;
      return true;
    }
  }
  gw_record_set_flag(c->r, GW_FLAG_BAD_ATTRIBUTE);
  return false;
}

const char *nz_slot_str(struct nz_ctx *c, enum nz_slot s) { return nz_str(c->s->v[s]); }

bool nz_flat_add(struct nz_ctx *c, enum nz_family f, uint32_t idx, enum nz_field fl, uint32_t sub,
                 const GwAnyValue *v)
{
  struct nz_flat *fa = &c->s->flat[f];
  if (!fa->v) {
    /* One entry per attribute at most: the span's own attribute count bounds it. */
    fa->v = gw_arena_alloc(c->a, sizeof *fa->v * c->s->flat_cap);
    if (!fa->v) {
      c->oom = true;
      return true;
    }
  }
  if (fa->n < c->s->flat_cap)
    fa->v[fa->n] = (struct nz_flat_ent){idx, sub, fa->n, fl, v};
  fa->n++;
  return true;
}

static bool param_begin(struct nz_params *p, unsigned id)
{
  if (id >= NZ_P__COUNT || (p->have >> id) & 1u)
    return false;
  gw_sb_putc(&p->sb, p->have ? ',' : '{');
  p->have |= 1u << id;
  gw_sb_json_str(&p->sb, nz_param_names[id], strlen(nz_param_names[id]));
  gw_sb_putc(&p->sb, ':');
  return true;
}

void nz_params_put_av(struct nz_params *p, unsigned id, const GwAnyValue *v)
{
  if (v && v->value_case != GW_AV_NONE && param_begin(p, id))
    nz_av_write(&p->sb, v, 1);
}

void nz_params_put_json(struct nz_params *p, unsigned id, struct json_object *o)
{
  if (param_begin(p, id))
    nz_json_write(&p->sb, o, 1);
}

/* ---- the single attribute pass ---- */

static bool genai_key(const char *k, size_t n)
{
  switch (k[0]) {
  case 'g': return n > 7 && !memcmp(k, "gen_ai.", 7);
  case 'l': return (n > 4 && !memcmp(k, "llm.", 4)) || (n > 21 && !memcmp(k, "langfuse.observation.", 21));
  case 'e': return n > 10 && !memcmp(k, "embedding.", 10);
  case 'o': return n == 23 && !memcmp(k, "openinference.span.kind", 23);
  case 't': return n == 19 && !memcmp(k, "traceloop.span.kind", 19);
  default: return false;
  }
}

static bool scan(struct nz_ctx *c, const GwSpan *span)
{
  struct nz_span *s = c->s;
  memset(s, 0, sizeof *s);
  s->flat_cap = (uint32_t)span->n_attributes;
  bool genai = false;
  for (size_t i = 0; i < span->n_attributes; i++) {
    const GwKeyValue *kv = span->attributes[i];
    if (!kv->key || !kv->key[0])
      continue;
    size_t len;
    uint32_t h = key_hash(kv->key, &len);
    if (!genai && genai_key(kv->key, len))
      genai = true;
    int slot = lookup(kv->key, len, h);
    if (slot >= 0)
      s->v[slot] = kv->value; /* duplicates: last wins */
    else if (kv->key[0] == 'g' && len > 14 && !memcmp(kv->key, "gen_ai.", 7))
      nz_openllmetry_flat(c, kv->key, len, kv->value);
    else if (kv->key[0] == 'l' && len > 20 && !memcmp(kv->key, "llm.", 4))
      nz_openinference_flat(c, kv->key, len, kv->value);
  }
  return genai;
}

/* ---- field resolution ---- */

/* First non-empty string among the slots, in order; *d gets the dialect of the slot it came from. */
static const char *pick(struct nz_ctx *c, const uint16_t *order, size_t n, int *d)
{
  for (size_t i = 0; i < n; i++) {
    const char *s = nz_str(c->s->v[order[i]]);
    if (s) {
      if (d)
        *d = slot_dialect[order[i]];
      return s;
    }
  }
  return NULL;
}
#define PICK(c, d, ...) pick(c, (const uint16_t[]){__VA_ARGS__}, sizeof((const uint16_t[]){__VA_ARGS__}) / 2, d)

/* A span's session and user ids, in the order of SPEC-FACTS' appendix: for its record, or for its trace
 * when it gives none (trace_fact). */
static const char *span_session(struct nz_ctx *c)
{
  return PICK(c, NULL, NZ_S_CONV_ID, NZ_S_SESSION_ID, NZ_S_LF_SESSION, NZ_S_TL_SESSION);
}

static const char *span_user(struct nz_ctx *c)
{
  return PICK(c, NULL, NZ_S_USER_ID, NZ_S_LF_USER, NZ_S_TL_USER, NZ_S_GENAI_USER, NZ_S_LLM_USER, NZ_S_ENDUSER_ID);
}

/* The first usable count among the slots; a reported value that is not usable falls through to the next
 * slot and is remembered in c->tok_lost (lost: NZ_TOK_* bit of the field, or 0). */
static void pick_tokens(struct nz_ctx *c, struct gw_opt_i64 *dst, unsigned lost, const uint16_t *order, size_t n)
{
  for (size_t i = 0; i < n && !dst->set; i++) {
    int64_t v;
    enum nz_count k = nz_count_av(c, c->s->v[order[i]], &v);
    if (k == NZ_COUNT_OK)
      *dst = (struct gw_opt_i64){v, true};
    else if (k != NZ_COUNT_NONE)
      c->tok_lost |= (uint8_t)lost;
  }
}
#define TOKENS(c, dst, lost, ...) \
  pick_tokens(c, dst, lost, (const uint16_t[]){__VA_ARGS__}, sizeof((const uint16_t[]){__VA_ARGS__}) / 2)

static gw_tribool tribool(const GwAnyValue *v)
{
  if (!v)
    return -1;
  if (v->value_case == GW_AV_BOOL)
    return v->bool_value ? 1 : 0;
  if (v->value_case == GW_AV_STRING)
    return !strcmp(v->string_value, "true") ? 1 : !strcmp(v->string_value, "false") ? 0 : -1;
  return -1;
}

static bool model_operation(const char *op)
{
  return op && (!strcmp(op, "chat") || !strcmp(op, "text_completion") || !strcmp(op, "embeddings") ||
                !strcmp(op, "generate_content"));
}

static const char *operation(struct nz_ctx *c)
{
  const char *op = nz_slot_str(c, NZ_S_OP_NAME);
  if (op)
    return !strcmp(op, "completion") ? "text_completion" : op; /* the historical name (SPEC-FACTS §3.1) */
  if ((op = nz_openllmetry_operation(nz_slot_str(c, NZ_S_LLM_REQ_TYPE), NULL)))
    return op;
  if ((op = nz_openinference_operation(nz_slot_str(c, NZ_S_OI_KIND))))
    return op;
  if ((op = nz_openllmetry_operation(NULL, nz_slot_str(c, NZ_S_TL_KIND))))
    return op;
  return nz_langfuse_operation(nz_slot_str(c, NZ_S_LF_TYPE));
}

static void tokens(struct nz_ctx *c)
{
  struct gw_record *r = c->r;
  nz_langfuse_usage(c); /* override: sets what it has, the rest falls through */
  TOKENS(c, &r->input_tokens, NZ_TOK_IN, NZ_S_IN_TOK, NZ_S_PROMPT_TOK, NZ_S_OI_PROMPT);
  TOKENS(c, &r->output_tokens, NZ_TOK_OUT, NZ_S_OUT_TOK, NZ_S_COMPL_TOK, NZ_S_OI_COMPL);
  TOKENS(c, &r->cache_read_tokens, 0, NZ_S_CACHE_READ, NZ_S_CACHE_READ_US, NZ_S_OI_CACHE_READ);
  TOKENS(c, &r->cache_write_tokens, 0, NZ_S_CACHE_WRITE, NZ_S_CACHE_WRITE_US, NZ_S_OI_CACHE_WRITE);
  TOKENS(c, &r->reasoning_tokens, 0, NZ_S_REASONING, NZ_S_REASONING_US, NZ_S_LLM_REASONING, NZ_S_OI_REASONING);
  TOKENS(c, &r->total_tokens, NZ_TOK_TOTAL, NZ_S_LLM_TOTAL, NZ_S_GENAI_TOTAL, NZ_S_OI_TOTAL);
  /* Derived only from what was reported whole: an input or output (or total) the span gave but that could
   * not be used would make input + output a made-up total. */
  bool lost = (c->tok_lost & NZ_TOK_TOTAL) || ((c->tok_lost & NZ_TOK_IN) && !r->input_tokens.set) ||
              ((c->tok_lost & NZ_TOK_OUT) && !r->output_tokens.set);
  if (!r->total_tokens.set && !lost && (r->input_tokens.set || r->output_tokens.set)) {
    int64_t sum;
    if (nz_tokens_add(r->input_tokens.set ? r->input_tokens.v : 0, r->output_tokens.set ? r->output_tokens.v : 0,
                      &sum)) {
      r->total_tokens = (struct gw_opt_i64){sum, true};
      gw_record_set_flag(r, GW_FLAG_TOTAL_DERIVED);
    } else {
      gw_record_set_flag(r, GW_FLAG_TOKENS_OUT_OF_RANGE);
    }
  }
  if (model_operation(r->operation) && !r->input_tokens.set && !r->output_tokens.set)
    gw_record_set_flag(r, GW_FLAG_TOKENS_MISSING);
}

/* An attribute holding a USD amount (double, int or decimal string) as nano-USD. */
static bool av_nusd(struct nz_ctx *c, const GwAnyValue *v, int64_t *nusd)
{
  char buf[40];
  const char *t = NULL;
  if (!v)
    return false;
  if (v->value_case == GW_AV_DOUBLE && v->double_value >= 0 && v->double_value < 1e9) {
    /* 15 significant digits give back the decimal the client wrote (0.0075, not 0.00749999...). */
    snprintf(buf, sizeof buf, "%.15g", v->double_value);
    t = buf;
  } else if (v->value_case == GW_AV_INT && v->int_value >= 0) {
    snprintf(buf, sizeof buf, "%lld", (long long)v->int_value);
    t = buf;
  } else if (v->value_case == GW_AV_STRING) {
    t = v->string_value;
  }
  if (t && gw_decimal_parse(t, strlen(t), 9, GW_DEC_ROUND, nusd))
    return true;
  gw_record_set_flag(c->r, GW_FLAG_BAD_ATTRIBUTE);
  return false;
}

/* The cost the client reported (SPEC-FACTS appendix "upstream cost"), kept beside the computed one, and
 * the service tier that prices the call (the response's tier is what was billed). */
static void reported_cost(struct nz_ctx *c)
{
  struct gw_record *r = c->r;
  const GwAnyValue *const *v = c->s->v;
  int64_t nusd;
  if (v[NZ_S_GW_COST_SOURCE]) {
    /* Priced by an upstream gateway (a forwarding sidecar), which also set gen_ai.usage.cost when the
     * client had not: what the client reported is in its reported_usd stamp, and only there. */
    if (av_nusd(c, v[NZ_S_GW_REPORTED_COST], &nusd))
      r->reported_cost_nusd = (struct gw_opt_i64){nusd, true};
  } else if (nz_langfuse_cost(c, &nusd) || av_nusd(c, v[NZ_S_USAGE_COST], &nusd) ||
             av_nusd(c, v[NZ_S_USAGE_COST_AMOUNT], &nusd) || av_nusd(c, v[NZ_S_LLM_COST], &nusd))
    r->reported_cost_nusd = (struct gw_opt_i64){nusd, true};
  r->service_tier =
    PICK(c, NULL, NZ_S_RESP_SERVICE_TIER, NZ_S_OAI_RESP_SERVICE_TIER, NZ_S_SERVICE_TIER, NZ_S_OAI_SERVICE_TIER);
}

static char *params(struct nz_ctx *c, const char **oi_model, gw_tribool *oi_stream, size_t *len)
{
  struct nz_params p = {.have = 0};
  const GwAnyValue *const *v = c->s->v;
  gw_sb_init(&p.sb, c->a);
  nz_langfuse_params(c, &p);
  nz_params_put_av(&p, NZ_P_TEMPERATURE, v[NZ_S_TEMPERATURE]);
  nz_params_put_av(&p, NZ_P_TOP_P, v[NZ_S_TOP_P]);
  nz_params_put_av(&p, NZ_P_TOP_K, v[NZ_S_TOP_K]);
  nz_params_put_av(&p, NZ_P_MAX_TOKENS, v[NZ_S_MAX_TOKENS]);
  nz_params_put_av(&p, NZ_P_MAX_COMPLETION_TOKENS, v[NZ_S_MAX_COMPL]);
  nz_params_put_av(&p, NZ_P_FREQUENCY_PENALTY, v[NZ_S_FREQ_PEN]);
  nz_params_put_av(&p, NZ_P_PRESENCE_PENALTY, v[NZ_S_PRES_PEN]);
  nz_params_put_av(&p, NZ_P_SEED, v[NZ_S_SEED]);
  nz_params_put_av(&p, NZ_P_SEED, v[NZ_S_OAI_SEED]);
  nz_params_put_av(&p, NZ_P_STOP_SEQUENCES, v[NZ_S_STOP_SEQ]);
  nz_params_put_av(&p, NZ_P_CHOICE_COUNT, v[NZ_S_CHOICE_COUNT]);
  nz_params_put_av(&p, NZ_P_CHOICE_COUNT, v[NZ_S_REQ_N]);
  nz_params_put_av(&p, NZ_P_SERVICE_TIER, v[NZ_S_SERVICE_TIER]);
  nz_params_put_av(&p, NZ_P_SERVICE_TIER, v[NZ_S_OAI_SERVICE_TIER]);
  nz_params_put_av(&p, NZ_P_REASONING_EFFORT, v[NZ_S_REASONING_EFFORT]);
  nz_params_put_av(&p, NZ_P_ENCODING_FORMATS, v[NZ_S_ENCODING_FORMATS]);
  nz_params_put_av(&p, NZ_P_OUTPUT_TYPE, v[NZ_S_OUTPUT_TYPE]);
  nz_params_put_av(&p, NZ_P_TOP_K, v[NZ_S_LLM_TOP_K]);
  nz_params_put_av(&p, NZ_P_FREQUENCY_PENALTY, v[NZ_S_LLM_FREQ_PEN]);
  nz_params_put_av(&p, NZ_P_PRESENCE_PENALTY, v[NZ_S_LLM_PRES_PEN]);
  nz_params_put_av(&p, NZ_P_STOP_SEQUENCES, v[NZ_S_LLM_STOP]);
  nz_openinference_params(c, &p, oi_model, oi_stream);
  if (!p.have)
    return NULL;
  gw_sb_putc(&p.sb, '}');
  char *s = gw_sb_finish(&p.sb);
  if (!s)
    c->oom = true;
  *len = s ? p.sb.len : 0;
  return s;
}

static void add_reason(struct nz_ctx *c, const char **v, uint32_t *n, uint32_t cap, const char *s)
{
  if (s && *n < cap)
    v[(*n)++] = s;
}

/* gen_ai.response.finish_reasons (string[], or a JSON array string) and the single-value fallbacks. */
static void finish_reasons(struct nz_ctx *c, const struct nz_msgs *out)
{
  const GwAnyValue *fr = c->s->v[NZ_S_FINISH_REASONS];
  uint32_t cap = 0, n = 0;
  struct json_object *jo = NULL;
  if (fr && fr->value_case == GW_AV_ARRAY && fr->array_value)
    cap = (uint32_t)fr->array_value->n_values;
  else if (nz_str(fr) && fr->string_value[0] == '[' && (jo = nz_json_parse(c, fr->string_value, strlen(fr->string_value))) &&
           json_object_is_type(jo, json_type_array))
    cap = (uint32_t)json_object_array_length(jo);
  if (cap < out->n)
    cap = out->n;
  if (cap < 1)
    cap = 1;
  const char **v = gw_arena_alloc(c->a, sizeof *v * cap);
  if (!v) {
    c->oom = true;
    goto out;
  }
  if (fr && fr->value_case == GW_AV_ARRAY && fr->array_value) {
    for (size_t i = 0; i < fr->array_value->n_values; i++)
      add_reason(c, v, &n, cap, nz_str(fr->array_value->values[i]));
  } else if (jo && json_object_is_type(jo, json_type_array)) {
    for (size_t i = 0; i < json_object_array_length(jo); i++)
      add_reason(c, v, &n, cap, nz_json_dup_str(c, json_object_array_get_idx(jo, i)));
  } else {
    add_reason(c, v, &n, cap, nz_str(fr));
  }
  if (!n)
    add_reason(c, v, &n, cap, PICK(c, NULL, NZ_S_GENAI_FINISH));
  if (!n)
    for (uint32_t i = 0; i < out->n; i++)
      add_reason(c, v, &n, cap, out->v[i].finish_reason);
  if (!n)
    add_reason(c, v, &n, cap, PICK(c, NULL, NZ_S_LLM_RESP_FINISH, NZ_S_OI_FINISH));
  if (n)
    c->r->finish_reasons = (struct gw_strv){v, n};
out:
  if (jo)
    nz_json_put(c, jo);
}

static bool has_role(const struct nz_msgs *m, const char *role)
{
  for (uint32_t i = 0; i < m->n; i++)
    if (m->v[i].role && !strcmp(m->v[i].role, role))
      return true;
  return false;
}

static void content(struct nz_ctx *c)
{
  struct gw_record *r = c->r;
  const GwAnyValue *const *v = c->s->v;
  struct nz_msgs in = {0}, out = {0};
  struct nz_msg sys = {0};
  const char *text;
  size_t n = 0;

  /* Attributes first, in precedence order; each source only when the earlier ones gave nothing. */
  if (v[NZ_S_LF_INPUT])
    nz_raw_content(c, v[NZ_S_LF_INPUT], false, &in);
  if (!in.n && v[NZ_S_IN_MSGS])
    nz_msgs_from_value(c, v[NZ_S_IN_MSGS], &in);
  if (!in.n)
    nz_flat_msgs(c, NZ_F_PROMPT, &in);
  if (!in.n)
    nz_flat_msgs(c, NZ_F_OI_IN, &in);
  if (!in.n && v[NZ_S_OI_IN])
    nz_raw_content(c, v[NZ_S_OI_IN], false, &in);
  if (!in.n && v[NZ_S_TL_IN])
    nz_raw_content(c, v[NZ_S_TL_IN], false, &in);
  if (!in.n && v[NZ_S_PROMPT_JSON])
    nz_old_content(c, v[NZ_S_PROMPT_JSON], "user", &in);

  if (v[NZ_S_LF_OUTPUT])
    nz_raw_content(c, v[NZ_S_LF_OUTPUT], true, &out);
  if (!out.n && v[NZ_S_OUT_MSGS])
    nz_msgs_from_value(c, v[NZ_S_OUT_MSGS], &out);
  if (!out.n)
    nz_flat_msgs(c, NZ_F_COMPLETION, &out);
  if (!out.n)
    nz_flat_msgs(c, NZ_F_OI_OUT, &out);
  if (!out.n && v[NZ_S_OI_OUT])
    nz_raw_content(c, v[NZ_S_OI_OUT], true, &out);
  if (!out.n && v[NZ_S_TL_OUT])
    nz_raw_content(c, v[NZ_S_TL_OUT], true, &out);
  if (!out.n && v[NZ_S_COMPLETION_JSON])
    nz_old_content(c, v[NZ_S_COMPLETION_JSON], "assistant", &out);

  if (v[NZ_S_SYS_INSTR])
    nz_parts_from_value(c, v[NZ_S_SYS_INSTR], &sys);

  /* Then span events, filling only what is still empty. */
  if (c->span->n_events && (!in.n || !out.n || !sys.n)) {
    nz_semconv_events(c, &in, &out, &sys);
    nz_old_events(c, &in, &out);
  }

  if (sys.n) {
    struct nz_msgs one = {.v = &sys, .n = 1};
    sys.role = "system";
    text = nz_msgs_text(c, &one, NULL, &n);
    if (!has_role(&in, "system") && nz_msgs_add(c, &in, NULL)) {
      memmove(&in.v[1], &in.v[0], sizeof in.v[0] * (in.n - 1));
      in.v[0] = sys;
    }
  } else {
    text = nz_msgs_text(c, &in, "system", &n);
  }
  gw_record_set_text(r, GW_RT_SYSTEM_PROMPT, text, text ? n : 0);

  finish_reasons(c, &out);
  for (uint32_t i = 0; i < out.n && i < r->finish_reasons.n; i++)
    if (!out.v[i].finish_reason) {
      out.v[i].finish_reason = r->finish_reasons.v[i]; /* one entry per choice (§3.1) */
      out.raw = NULL; /* rendered differently from the attribute now */
    }

  text = nz_msgs_render(c, &in, false, &n);
  gw_record_set_text(r, GW_RT_PROMPT_CONTENT, text, text ? n : 0);
  text = nz_msgs_render(c, &out, true, &n);
  gw_record_set_text(r, GW_RT_RESPONSE_CONTENT, text, text ? n : 0);
  if (r->prompt_content) {
    /* prompt_hash: taken for the whole request at the end (prompt_hashes), two prompts at a time. The SimHash is over the text of the input messages (system included), before redaction too. */
    uint64_t sh;
    r->prompt_chat = in.n > 2;
    if (nz_msgs_simhash(c, &in, &sh))
      gw_simhash_bits(sh, r->prompt_simhash);
  }
}

/* ---- agent, workflow and prompt template (issue 16) ---- */

/* Names are dimensions of the hourly rollups: each is cut to NZ_NAME_MAX bytes (at a UTF-8 boundary) so
 * that the rollups' key always fits an index entry. */
#define NZ_NAME_MAX 200

static const char *name_cap(struct nz_ctx *c, const char *s)
{
  if (!s || !*s)
    return NULL;
  size_t n = strlen(s);
  if (n <= NZ_NAME_MAX)
    return s;
  n = NZ_NAME_MAX;
  while (n && ((unsigned char)s[n] & 0xc0) == 0x80)
    n--; /* s[n] continues a character: cut before that character */
  const char *t = gw_arena_strndup(c->a, s, n);
  if (!t)
    c->oom = true;
  return t;
}

/* A string, or an integer rendered as text (prompt versions are integers in Langfuse and Traceloop). */
static const char *str_or_int(struct nz_ctx *c, enum nz_slot slot)
{
  const GwAnyValue *v = c->s->v[slot];
  if (!v)
    return NULL;
  if (v->value_case == GW_AV_INT) {
    char buf[24];
    snprintf(buf, sizeof buf, "%lld", (long long)v->int_value);
    const char *t = gw_arena_strdup(c->a, buf);
    if (!t)
      c->oom = true;
    return t;
  }
  return nz_str(v);
}

static bool slot_is(struct nz_ctx *c, enum nz_slot slot, const char *want)
{
  const char *s = nz_slot_str(c, slot);
  return s && !strcmp(s, want);
}

/* "<op> <name>", the semconv span name of invoke_agent / create_agent / invoke_workflow: the name. */
static const char *name_after(const char *span_name, const char *op)
{
  size_t n = strlen(op);
  if (!span_name || strncmp(span_name, op, n) || span_name[n] != ' ' || !span_name[n + 1])
    return NULL;
  return span_name + n + 1;
}

/*
 * The span's own agent and workflow, each from the first dialect that names one (DESIGN §3 precedence):
 *   agent:    Langfuse observation of type agent (its name, the span name); gen_ai.agent.name, else
 *             gen_ai.agent.id; the name in an invoke_agent / create_agent span name; Traceloop
 *             traceloop.entity.name of a traceloop.span.kind agent span; OpenInference agent.name, else
 *             the name of an openinference.span.kind AGENT span.
 *   workflow: langfuse.trace.name, else the name of a Langfuse chain observation; gen_ai.workflow.name, else
 *             the name in an invoke_workflow span name; traceloop.workflow.name, else traceloop.entity.name
 *             of a workflow span; the name of an OpenInference CHAIN span.
 * A span without its own is filled by the writer from its nearest ancestor in the trace (store_pg.c).
 */
static void attribution(struct nz_ctx *c)
{
  struct gw_record *r = c->r;
  const char *op = r->operation ? r->operation : "", *agent = NULL, *wf = NULL;
  if (slot_is(c, NZ_S_LF_TYPE, "agent"))
    agent = r->span_name;
  if (!agent)
    agent = PICK(c, NULL, NZ_S_AGENT_NAME, NZ_S_AGENT_ID);
  if (!agent && (!strcmp(op, "invoke_agent") || !strcmp(op, "create_agent")))
    agent = name_after(r->span_name, op);
  if (!agent && slot_is(c, NZ_S_TL_KIND, "agent"))
    agent = nz_slot_str(c, NZ_S_TL_ENTITY);
  if (!agent)
    agent = nz_slot_str(c, NZ_S_OI_AGENT_NAME);
  if (!agent && slot_is(c, NZ_S_OI_KIND, "AGENT"))
    agent = r->span_name;

  wf = nz_slot_str(c, NZ_S_LF_TRACE_NAME);
  if (!wf && slot_is(c, NZ_S_LF_TYPE, "chain"))
    wf = r->span_name;
  if (!wf)
    wf = nz_slot_str(c, NZ_S_WORKFLOW_NAME);
  if (!wf && !strcmp(op, "invoke_workflow"))
    wf = name_after(r->span_name, op);
  if (!wf)
    wf = nz_slot_str(c, NZ_S_TL_WORKFLOW);
  if (!wf && slot_is(c, NZ_S_TL_KIND, "workflow"))
    wf = nz_slot_str(c, NZ_S_TL_ENTITY);
  if (!wf && slot_is(c, NZ_S_OI_KIND, "CHAIN"))
    wf = r->span_name;
  r->agent_name = name_cap(c, agent);
  r->workflow_name = name_cap(c, wf);
}

/*
 * The prompt template: Langfuse langfuse.observation.prompt.name / .version; semconv gen_ai.prompt.name;
 * Traceloop traceloop.prompt.key / .version (else .version_name); OpenInference prompt.id, else
 * "template:" and the first 16 hex digits of the SHA-256 of llm.prompt_template.template (a template is
 * known by its text), with llm.prompt_template.version. The version is taken from the dialect that gave
 * the name when it has one.
 */
static void prompt_template(struct nz_ctx *c)
{
  struct gw_record *r = c->r;
  const char *name = NULL, *version = NULL;
  if ((name = nz_slot_str(c, NZ_S_LF_PROMPT_NAME)))
    version = str_or_int(c, NZ_S_LF_PROMPT_VERSION);
  else if ((name = nz_slot_str(c, NZ_S_PROMPT_NAME)))
    ;
  else if ((name = nz_slot_str(c, NZ_S_TL_PROMPT_KEY))) {
    version = str_or_int(c, NZ_S_TL_PROMPT_VERSION);
    if (!version)
      version = nz_slot_str(c, NZ_S_TL_PROMPT_VERSION_NAME);
  } else if ((name = nz_slot_str(c, NZ_S_OI_PROMPT_ID))) {
    version = str_or_int(c, NZ_S_OI_PT_VERSION);
  } else {
    const char *tpl = nz_slot_str(c, NZ_S_OI_PT_TEMPLATE);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (tpl && EVP_Digest(tpl, strlen(tpl), md, &mdlen, nz_sha256(), NULL) && mdlen >= 8) {
      char *t = gw_arena_alloc(c->a, 9 + 17);
      if (!t) {
        c->oom = true;
        return;
      }
      memcpy(t, "template:", 9);
      gw_hex(t + 9, md, 8);
      name = t;
      version = str_or_int(c, NZ_S_OI_PT_VERSION);
    }
  }
  if (!version) /* a version without a name from the same dialect still says something */
    version = str_or_int(c, NZ_S_LF_PROMPT_VERSION);
  if (!version)
    version = str_or_int(c, NZ_S_TL_PROMPT_VERSION);
  if (!version)
    version = str_or_int(c, NZ_S_OI_PT_VERSION);
  r->prompt_name = name_cap(c, name);
  r->prompt_version = name_cap(c, version);
}

char *nz_render_kvs(struct gw_arena *a, GwKeyValue *const *kv, size_t n, size_t *len)
{
  struct gw_sb sb;
  gw_sb_init(&sb, a);
  gw_sb_putc(&sb, '{');
  bool first = true;
  for (size_t i = 0; i < n; i++) {
    if (!kv[i]->key || !kv[i]->key[0])
      continue;
    if (!first)
      gw_sb_putc(&sb, ',');
    first = false;
    gw_sb_json_str(&sb, kv[i]->key, strlen(kv[i]->key));
    gw_sb_putc(&sb, ':');
    nz_av_write(&sb, kv[i]->value, 1);
  }
  gw_sb_putc(&sb, '}');
  char *s = gw_sb_finish(&sb);
  if (len)
    *len = s ? sb.len : 0;
  return s;
}

char *gw_render_attributes(struct gw_arena *a, GwKeyValue *const *kv, size_t n, size_t *len)
{
  return nz_render_kvs(a, kv, n, len);
}

/* Resource-level facts, rendered once per ResourceSpans and shared by its records. */
struct nz_res {
  const GwResource *res;
  const char *service_name, *json;
  size_t json_len;
  bool done;
};

static void build(struct nz_ctx *c, struct nz_res *res, const GwScope *scope)
{
  const GwSpan *sp = c->span;
  struct gw_record *r = c->r;
  int d_req = -1, d_resp = -1;

  memset(r, 0, sizeof *r);
  r->streaming = -1;
  gw_hex(r->trace_id, sp->trace_id.data, 16);
  gw_hex(r->span_id, sp->span_id.data, 8);
  if (sp->parent_span_id.len == 8)
    gw_hex(r->parent_span_id, sp->parent_span_id.data, 8);
  r->trace_version = "v1";
  r->service_name = res->service_name;
  gw_record_set_text(r, GW_RT_RESOURCE, res->json, res->json_len);
  r->scope_name = scope && scope->name && scope->name[0] ? scope->name : NULL;
  r->span_name = sp->name && sp->name[0] ? sp->name : NULL;
  r->start_ns = sp->start_time_unix_nano;
  r->end_ns = sp->end_time_unix_nano;
  if (r->start_ns && r->end_ns >= r->start_ns)
    r->duration_ms = (struct gw_opt_f64){(double)(r->end_ns - r->start_ns) / 1e6, true};

  int sc = sp->status ? (int)sp->status->code : GW_SPAN_STATUS_UNSET;
  r->status = sc == GW_SPAN_STATUS_ERROR ? "error" : sc == GW_SPAN_STATUS_OK ? "ok" : "unset";
  const char *lvl = nz_slot_str(c, NZ_S_LF_LEVEL);
  if (lvl && !strcmp(lvl, "ERROR"))
    r->status = "error";
  r->error_code = nz_slot_str(c, NZ_S_ERROR_TYPE);
  r->error_message = nz_slot_str(c, NZ_S_LF_STATUS_MSG);
  if (!r->error_message && sp->status && sp->status->message && sp->status->message[0])
    r->error_message = sp->status->message;

  r->operation = operation(c);
  r->provider = PICK(c, NULL, NZ_S_PROVIDER, NZ_S_SYSTEM, NZ_S_OI_PROVIDER, NZ_S_OI_SYSTEM, NZ_S_MODEL_PROVIDER);

  const char *oi_model = NULL;
  size_t plen = 0;
  const char *pjson = params(c, &oi_model, &r->streaming, &plen);
  gw_record_set_text(r, GW_RT_PARAMETERS, pjson, plen);
  r->request_model = PICK(c, &d_req, NZ_S_LF_MODEL, NZ_S_REQ_MODEL, NZ_S_OI_REQ_MODEL);
  if (!r->request_model && oi_model) {
    r->request_model = oi_model;
    d_req = NZ_D_OPENINFERENCE;
  }
  if (!r->request_model)
    r->request_model = PICK(c, &d_req, NZ_S_OI_MODEL, NZ_S_EMB_MODEL);
  r->response_model =
    PICK(c, &d_resp, NZ_S_LF_MODEL, NZ_S_RESP_MODEL, NZ_S_OI_RESP_MODEL, NZ_S_OI_MODEL, NZ_S_EMB_MODEL);
  /* The model priced: SPEC-FACTS' order, Langfuse's, then semconv's response and request models before
   * OpenInference's (a span carrying both dialects is priced on the semconv name). */
  int d_sem = -1, d;
  const char *sem = PICK(c, &d_sem, NZ_S_LF_MODEL, NZ_S_RESP_MODEL, NZ_S_REQ_MODEL);
  if (sem) {
    r->model_id = sem;
    d = d_sem;
  } else {
    r->model_id = r->response_model ? r->response_model : r->request_model;
    d = r->response_model ? d_resp : d_req;
  }
  r->dialect = d >= 0 ? dialect_names[d] : NULL;
  if (model_operation(r->operation) && !r->model_id)
    gw_record_set_flag(r, GW_FLAG_MODEL_MISSING);

  tokens(c);
  reported_cost(c);

  r->session_id = span_session(c);
  r->user_id = span_user(c);

  gw_tribool st = tribool(c->s->v[NZ_S_STREAM]);
  if (st < 0)
    st = tribool(c->s->v[NZ_S_GENAI_STREAMING]);
  if (st < 0)
    st = tribool(c->s->v[NZ_S_LLM_STREAMING]);
  if (st >= 0)
    r->streaming = st; /* else keeps what llm.invocation_parameters said, or unknown */

  double ms, sec;
  if (nz_langfuse_ttft(c, &ms)) {
    r->first_token_latency_ms = (struct gw_opt_f64){ms, true};
  } else if (c->s->v[NZ_S_TTFC] && nz_dbl(c, c->s->v[NZ_S_TTFC], &sec)) {
    /* "inf" or 1e308 s would store Infinity, and one such row makes its hour's latency sum infinite. */
    if (sec >= 0 && isfinite(sec * 1000.0))
      r->first_token_latency_ms = (struct gw_opt_f64){sec * 1000.0, true};
    else
      gw_record_set_flag(r, GW_FLAG_BAD_ATTRIBUTE);
  }

  content(c);
  attribution(c);
  prompt_template(c);
  size_t alen = 0;
  const char *ajson = nz_render_kvs(c->a, sp->attributes, sp->n_attributes, &alen);
  gw_record_set_text(r, GW_RT_ATTRIBUTES, ajson, alen);
  static GwKeyValue *const no_kvs[1];
  GwKeyValue **kvs = sp->n_attributes ? gw_arena_alloc(c->a, sp->n_attributes * sizeof *kvs) : NULL;
  if (kvs)
    memcpy(kvs, sp->attributes, sp->n_attributes * sizeof *kvs);
  r->attr_kvs = sp->n_attributes ? kvs : no_kvs;
  r->n_attr_kvs = sp->n_attributes;
  if (!r->attributes || !r->resource || !r->attr_kvs)
    c->oom = true;
}

/* Parse "<digits>." at *p (at most 9 digits), advancing past the dot: the index of a flattened list key. */
bool nz_index_dot(const char **p, const char *end, uint32_t *idx)
{
  const char *s = *p;
  uint32_t v = 0;
  int nd = 0;
  while (s < end && *s >= '0' && *s <= '9' && nd < 9) {
    v = v * 10 + (uint32_t)(*s++ - '0');
    nd++;
  }
  if (!nd || s >= end || *s != '.')
    return false;
  *idx = v;
  *p = s + 1;
  return true;
}

/* When parsing added no message, keep the raw text as one message of `role`; true when out grew. */
bool nz_msgs_text_fallback(struct nz_ctx *c, struct nz_msgs *out, uint32_t before, const char *role, const char *s)
{
  if (out->n == before) {
    struct nz_msg *m = nz_msgs_add(c, out, role);
    if (m)
      nz_msg_text(c, m, "text", s);
  }
  return out->n > before;
}

/* ---- the walk ---- */

static const char *check_ids(const GwSpan *sp, char *why, size_t whylen)
{
  static const uint8_t zero[16];
  if (sp->trace_id.len != 16)
    snprintf(why, whylen, "traceId: %zu bytes, want 16", sp->trace_id.len);
  else if (!memcmp(sp->trace_id.data, zero, 16))
    snprintf(why, whylen, "traceId: all zero");
  else if (sp->span_id.len != 8)
    snprintf(why, whylen, "spanId: %zu bytes, want 8", sp->span_id.len);
  else if (!memcmp(sp->span_id.data, zero, 8))
    snprintf(why, whylen, "spanId: all zero");
  else if (sp->parent_span_id.len != 0 && sp->parent_span_id.len != 8)
    snprintf(why, whylen, "parentSpanId: %zu bytes, want 0 or 8", sp->parent_span_id.len);
  else
    return NULL;
  return why;
}

struct gw_normalize_opts gw_normalize_window(uint64_t now_ns, uint32_t retention_days)
{
  const uint64_t day = 86400ull * 1000000000ull;
  struct gw_normalize_opts o = {0};
  /* Fewer days than since 1970: retention_days * day < now_ns, so neither the product nor the difference
   * can wrap. */
  o.min_start_ns = retention_days < now_ns / day ? now_ns - (uint64_t)retention_days * day : 1;
  o.max_start_ns = now_ns < UINT64_MAX - day ? now_ns + day : UINT64_MAX;
  return o;
}

static const char *check_time(const GwSpan *sp, const struct gw_normalize_opts *o, char *why, size_t whylen)
{
  if (!o)
    return NULL;
  if (o->min_start_ns && sp->start_time_unix_nano < o->min_start_ns)
    snprintf(why, whylen, "startTimeUnixNano: before the retention window");
  else if (o->max_start_ns && sp->start_time_unix_nano > o->max_start_ns)
    snprintf(why, whylen, "startTimeUnixNano: more than 1 day in the future");
  else
    return NULL;
  return why;
}

static bool res_facts(struct gw_arena *a, struct nz_res *res)
{
  if (res->done)
    return res->json != NULL;
  res->done = true;
  GwKeyValue *const *kv = res->res ? res->res->attributes : NULL;
  size_t n = res->res ? res->res->n_attributes : 0;
  for (size_t i = 0; i < n; i++)
    if (kv[i]->key && !strcmp(kv[i]->key, "service.name") && nz_str(kv[i]->value))
      res->service_name = kv[i]->value->string_value;
  res->json = nz_render_kvs(a, kv, n, &res->json_len);
  return res->json != NULL;
}

/* Every span of the request, stored or not, by (trace_id, span_id), for the parent lookups below. */
struct nz_link {
  const GwSpan *sp;
  int64_t rec; /* its record's index, -1 for a span that is not stored (not GenAI) */
};

static int cmp_ids(const GwSpan *p, const uint8_t *tid, const uint8_t *sid)
{
  int c = memcmp(p->trace_id.data, tid, 16);
  return c ? c : memcmp(p->span_id.data, sid, 8);
}

static int cmp_link(const void *x, const void *y)
{
  const GwSpan *q = ((const struct nz_link *)y)->sp;
  return cmp_ids(((const struct nz_link *)x)->sp, q->trace_id.data, q->span_id.data);
}

static struct nz_link *find_link(struct nz_link *links, size_t n, const uint8_t *tid, const uint8_t *sid)
{
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = cmp_ids(links[mid].sp, tid, sid);
    if (!c)
      return &links[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

/*
 * A record without its own agent or workflow takes its nearest ancestor's among the spans of this
 * request (the writer's gw_fill_agents does the same across requests, migrations/0006_agents.sql): an
 * application's SDK usually exports a whole agent run in one request, and a row stored already named
 * is not written twice. The walk passes through the request's spans that are not stored (an HTTP or
 * framework span between an agent and its calls): they name nothing but link a call to its agent. As
 * in the SQL fill: at most 64 levels, each name on its own, and a name that would make the rollups' key
 * too long is not given.
 */
/* Every span of the request, sorted by (trace id, span id), each with its record's index or -1; NULL when
 * there is no record or no memory. */
static struct nz_link *link_index(struct gw_arena *a, const GwTraceRequest *req, struct gw_record *recs, size_t n,
                                  size_t *nlinks)
{
  if (!n)
    return NULL;
  size_t nl = 0;
  for (size_t ri = 0; ri < req->n_resource_spans; ri++)
    for (size_t si = 0; si < req->resource_spans[ri]->n_scope_spans; si++)
      nl += req->resource_spans[ri]->scope_spans[si]->n_spans;
  struct nz_link *links = nl <= SIZE_MAX / sizeof *links ? gw_arena_alloc(a, sizeof *links * nl) : NULL;
  if (!links)
    return NULL;
  size_t k = 0;
  for (size_t ri = 0; ri < req->n_resource_spans; ri++)
    for (size_t si = 0; si < req->resource_spans[ri]->n_scope_spans; si++) {
      const GwScopeSpans *ss = req->resource_spans[ri]->scope_spans[si];
      for (size_t j = 0; j < ss->n_spans; j++) /* every span left here passed check_ids */
        links[k++] = (struct nz_link){.sp = ss->spans[j], .rec = -1};
    }
  qsort(links, nl, sizeof *links, cmp_link);
  for (size_t i = 0; i < n; i++) {
    struct nz_link *l = find_link(links, nl, recs[i].span->trace_id.data, recs[i].span->span_id.data);
    if (l)
      l->rec = (int64_t)i;
  }
  *nlinks = nl;
  return links;
}

static void inherit_names(struct gw_record *recs, size_t n, struct nz_link *links, size_t nl)
{
  bool need = false, have = false;
  for (size_t i = 0; i < n; i++) {
    need |= (!recs[i].agent_name || !recs[i].workflow_name) && recs[i].parent_span_id[0];
    have |= recs[i].agent_name || recs[i].workflow_name;
  }
  if (!need || !have || !links)
    return; /* without the index (no memory) the writer's fill still names them */
  for (size_t i = 0; i < n; i++) {
    struct gw_record *r = &recs[i];
    const char *agent = r->agent_name, *wf = r->workflow_name;
    const GwSpan *p = r->span;
    for (int depth = 0; depth < 64 && (!agent || !wf) && p->parent_span_id.len == 8; depth++) {
      const struct nz_link *l = find_link(links, nl, p->trace_id.data, p->parent_span_id.data);
      if (!l)
        break;
      if (l->rec >= 0) {
        agent = agent ? agent : recs[l->rec].agent_name;
        wf = wf ? wf : recs[l->rec].workflow_name;
      }
      p = l->sp;
    }
    size_t key = 0;
    const char *parts[] = {r->service_name, r->provider, r->model_id, r->operation, agent, wf, r->prompt_name,
                           r->prompt_version};
    for (size_t m = 0; m < sizeof parts / sizeof parts[0]; m++)
      key += parts[m] ? strlen(parts[m]) : 0;
    if (key > 2600) /* the writer's and gw_fill_agents' bound on the rollups' key */
      continue;
    if (agent && !r->agent_name) {
      r->agent_name = agent;
      gw_record_set_flag(r, GW_FLAG_AGENT_INHERITED);
    }
    if (wf && !r->workflow_name) {
      r->workflow_name = wf;
      gw_record_set_flag(r, GW_FLAG_WORKFLOW_INHERITED);
    }
  }
}

/*
 * The request's spans that are not stored (not GenAI) but have a parent, as "<span id>:<parent span id>" on
 * the first record of their trace (record.h, span_links): a call whose parent is such a span, arriving in
 * another request than its agent, is still named by gw_fill_agents (migrations/0010_span_links.sql), which
 * walks these links as it walks the rows. Traces without a record here keep none (nothing of theirs is
 * stored to carry them); at most GW_SPAN_LINKS_MAX per trace and request, the first in span id order.
 */
#define GW_SPAN_LINKS_MAX 512

static bool collect_span_links(struct gw_arena *a, struct gw_record *recs, const struct nz_link *links, size_t nl)
{
  for (size_t lo = 0; lo < nl;) {
    size_t hi = lo + 1;
    while (hi < nl && !memcmp(links[hi].sp->trace_id.data, links[lo].sp->trace_id.data, 16))
      hi++;
    int64_t carrier = -1;
    size_t k = 0;
    for (size_t i = lo; i < hi; i++) {
      if (links[i].rec >= 0 && (carrier < 0 || links[i].rec < carrier))
        carrier = links[i].rec;
      k += links[i].rec < 0 && links[i].sp->parent_span_id.len == 8;
    }
    if (carrier >= 0 && k) {
      if (k > GW_SPAN_LINKS_MAX)
        k = GW_SPAN_LINKS_MAX;
      const char **v = gw_arena_alloc(a, sizeof *v * k);
      if (!v)
        return false;
      size_t m = 0;
      for (size_t i = lo; i < hi && m < k; i++) {
        if (links[i].rec >= 0 || links[i].sp->parent_span_id.len != 8)
          continue;
        char *t = gw_arena_alloc(a, 34);
        if (!t)
          return false;
        gw_hex(t, links[i].sp->span_id.data, 8);
        t[16] = ':';
        gw_hex(t + 17, links[i].sp->parent_span_id.data, 8);
        v[m++] = t;
      }
      recs[carrier].span_links = (struct gw_strv){v, (uint32_t)m};
    }
    lo = hi;
  }
  return true;
}

/* The longest prefix of p[0, n) in whole checkpoints that one of the lane's recent prompts shares (0: none),
 * and that prompt. Each step compares the checkpoint's last 64 bytes first: two prompts of one conversation
 * agree all along, others usually differ there. At most NZ_PH_RECENT prompts, so at most that many times
 * p's bytes compared. */
static size_t ph_prefix(const struct nz_ph_lane *l, const char *p, size_t n, const struct nz_ph_done **from)
{
  size_t best = 0;
  *from = NULL;
  for (int i = 0; i < l->nr; i++) {
    const struct nz_ph_done *q = &l->recent[i];
    size_t k = 0, kmax = q->nck < n / GW_SHA256_CK ? q->nck : n / GW_SHA256_CK;
    for (; k < kmax; k++) {
      const char *x = q->p + k * GW_SHA256_CK, *y = p + k * GW_SHA256_CK;
      if (memcmp(x + GW_SHA256_CK - 64, y + GW_SHA256_CK - 64, 64) || memcmp(x, y, GW_SHA256_CK - 64))
        break;
    }
    if (k > best) {
      best = k;
      *from = q;
    }
  }
  return best;
}

void nz_ph_job(struct nz_ph_lane *l, struct gw_arena *a, struct gw_sha256_job *j, const char *p, size_t n, bool talk)
{
  size_t nck = n / GW_SHA256_CK;
  *j = (struct gw_sha256_job){.p = p, .n = n};
  l->ck_from = 0;
  if (!l->on)
    return;
  j->ck = nck ? gw_arena_alloc(a, sizeof *j->ck * nck) : NULL;
  const struct nz_ph_done *from;
  size_t k = ph_prefix(l, p, n, &from);
  struct gw_sha256_mid *st;
  size_t ks;
  if (talk && l->shared && j->ck && k < nck && (st = gw_arena_alloc(a, sizeof *st)) &&
      (ks = nz_phc_get(l->shared, p, n, k + 1, st))) {
    /* an earlier request's prompt shares more: its checkpoints before are not known here */
    j->from = ks * GW_SHA256_CK;
    j->start = st;
    j->ck[ks - 1] = *st;
    l->ck_from = ks - 1;
    return;
  }
  if (k) {
    j->from = k * GW_SHA256_CK;
    j->start = &from->ck[k - 1];
    if (j->ck) /* the shared prefix's checkpoints are the earlier prompt's */
      memcpy(j->ck, from->ck, sizeof *j->ck * k);
  }
}

void nz_ph_init(struct nz_ph_lane *l, struct gw_hist_cache *shared)
{
  l->nr = l->next = 0;
  l->on = gw_sha256_resumable();
  l->shared = shared;
  l->ck_from = 0;
}

void nz_ph_done(struct nz_ph_lane *l, const struct gw_sha256_job *j, bool talk)
{
  if (!j->ck)
    return;
  /* the next call of a chat sends this prompt again but for its closing ']': keep the prefix up to the last
   * checkpoint before it */
  size_t keep = (j->n - 1) / GW_SHA256_CK;
  if (talk && l->shared && keep && keep - 1 >= l->ck_from)
    nz_phc_put(l->shared, j->p, keep, &j->ck[keep - 1]);
  if (l->ck_from)
    return; /* checkpoints missing: the lane's later prompts cannot resume from this one */
  l->recent[l->next] = (struct nz_ph_done){j->p, j->n / GW_SHA256_CK, j->ck};
  l->next = (l->next + 1) % NZ_PH_RECENT;
  if (l->nr < NZ_PH_RECENT)
    l->nr++;
}

/* The first record from i on that has a prompt (n: none). */
static size_t next_prompt(const struct gw_record *recs, size_t n, size_t i)
{
  while (i < n && !recs[i].prompt_content)
    i++;
  return i;
}

/* Each record's prompt_hash: the first 8 bytes of the SHA-256 of its prompt_content as normalize rendered
 * it (before redaction), in hex. Two prompts are hashed at a time (core/sha256.h), in two lanes: the first
 * half of the request's prompts in one, the second half in the other, so that the prompts before one in its
 * half are done when it starts (neighbours, most often one conversation's calls, share a half) and it can
 * resume from the longest prefix they share with it (nz_ph_job). */
static void prompt_hashes(struct gw_arena *a, struct gw_record *recs, size_t n, struct gw_hist_cache *shared)
{
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    m += recs[i].prompt_content != NULL;
  size_t half = (m + 1) / 2, at[2];
  at[0] = at[1] = next_prompt(recs, n, 0);
  for (size_t k = 0; k < half; k++)
    at[1] = next_prompt(recs, n, at[1] + 1);
  struct nz_ph_lane lane[2];
  nz_ph_init(&lane[0], shared);
  nz_ph_init(&lane[1], shared);
  for (size_t t = 0; t < half; t++) {
    struct gw_sha256_job job[2];
    struct gw_record *r[2];
    int lanes = 0;
    for (int l = 0; l < 2 && at[l] < n; l++, lanes++) {
      r[l] = &recs[at[l]];
      nz_ph_job(&lane[l], a, &job[l], r[l]->prompt_content, gw_record_text_len(r[l], GW_RT_PROMPT_CONTENT),
                r[l]->prompt_chat);
    }
    gw_sha256_jobs(&job[0], lanes == 2 ? &job[1] : NULL);
    for (int l = 0; l < lanes; l++) {
      gw_hex(r[l]->prompt_hash, job[l].out, 8);
      nz_ph_done(&lane[l], &job[l], r[l]->prompt_chat);
      at[l] = next_prompt(recs, n, at[l] + 1);
    }
  }
}

/* A span that gives no record but carries a session or user id (the same keys, in the same order, as a
 * record's): kept as a fact of its trace, once per trace and ids in the request. False when out of memory. */
static bool trace_fact(struct nz_ctx *c, struct gw_normalize_result *res, size_t *cap)
{
  const char *session = span_session(c), *user = span_user(c);
  if (!session && !user)
    return true;
  char tid[33];
  gw_hex(tid, c->span->trace_id.data, 16);
  /* Spans of a trace usually come together: only the last few facts are looked at (a request of many
   * traces stays linear); a repeat further back is one more fact, which the writer folds into its trace. */
  for (size_t i = res->nfacts, seen = 0; i-- > 0 && seen++ < 8;) {
    struct gw_trace_fact *f = &res->facts[i];
    if (strcmp(f->trace_id, tid))
      continue;
    if ((!session || (f->session_id && !strcmp(f->session_id, session))) &&
        (!user || (f->user_id && !strcmp(f->user_id, user)))) {
      if (c->span->start_time_unix_nano && c->span->start_time_unix_nano < f->start_ns)
        f->start_ns = c->span->start_time_unix_nano;
      return true;
    }
  }
  if (res->nfacts == *cap) {
    size_t ncap = *cap ? *cap * 2 : 8;
    struct gw_trace_fact *nf = gw_arena_grow(c->a, res->facts, *cap * sizeof *nf, ncap * sizeof *nf);
    if (!nf)
      return false;
    res->facts = nf;
    *cap = ncap;
  }
  struct gw_trace_fact *f = &res->facts[res->nfacts++];
  memcpy(f->trace_id, tid, sizeof tid);
  gw_hex(f->span_id, c->span->span_id.data, 8);
  f->start_ns = c->span->start_time_unix_nano;
  f->session_id = session;
  f->user_id = user;
  return true;
}

static int cmp_ptr(const void *x, const void *y)
{
  uintptr_t a = (uintptr_t)*(const void *const *)x, b = (uintptr_t)*(const void *const *)y;
  return a < b ? -1 : a > b;
}

/* Whether decode repaired a string of sp (or of its resource or scope): rep sorted. */
static bool repaired(const struct gw_decode_repaired *rep, const GwSpan *sp)
{
  return rep && rep->n && bsearch(&sp, rep->spans, rep->n, sizeof *rep->spans, cmp_ptr);
}

gw_rc gw_normalize_traces(GwTraceRequest *req, struct gw_arena *a, const struct gw_normalize_opts *opts,
                          struct gw_normalize_result *res, struct gw_err *err)
{
  struct nz_span *view = NULL;
  size_t cap = 0, fcap = 0;
  gw_rc rc = GW_ERR(TOO_LARGE);

  gw_normalize_init();
  memset(res, 0, sizeof *res);
  const struct gw_decode_repaired *rep = opts ? opts->repaired : NULL;
  if (rep && rep->n > 1)
    qsort(opts->repaired->spans, rep->n, sizeof *rep->spans, cmp_ptr);
  view = gw_arena_alloc(a, sizeof *view);
  if (!view)
    goto oom;
  struct nz_sh_memo shm = {.shared = opts ? opts->history_cache : NULL};
  for (size_t ri = 0; ri < req->n_resource_spans; ri++) {
    GwResourceSpans *rs = req->resource_spans[ri];
    struct nz_res rf = {.res = rs->resource};
    for (size_t si = 0; si < rs->n_scope_spans; si++) {
      GwScopeSpans *ss = rs->scope_spans[si];
      size_t w = 0;
      for (size_t k = 0; k < ss->n_spans; k++) {
        GwSpan *sp = ss->spans[k];
        char why[96];
        res->nspans++;
        if (check_ids(sp, why, sizeof why) || check_time(sp, opts, why, sizeof why)) {
          if (!res->nrejected++)
            snprintf(res->reject_msg, sizeof res->reject_msg, "resourceSpans[%zu].scopeSpans[%zu].spans[%zu].%s", ri,
                     si, k, why);
          continue;
        }
        ss->spans[w++] = sp;
        struct nz_ctx c = {.a = a, .span = sp, .s = view, .shm = &shm};
        if (!scan(&c, sp) && !c.oom) {
          if (!trace_fact(&c, res, &fcap))
            goto oom;
          continue;
        }
        if (c.oom || !res_facts(a, &rf))
          goto oom;
        if (res->nrecords == cap) {
          size_t ncap = cap ? cap * 2 : 16;
          struct gw_record *nr =
            gw_arena_grow(a, res->records, cap * sizeof *res->records, ncap * sizeof *res->records);
          if (!nr)
            goto oom;
          res->records = nr;
          cap = ncap;
        }
        c.r = &res->records[res->nrecords];
        build(&c, &rf, ss->scope);
        c.r->span = sp;
        if (repaired(rep, sp))
          gw_record_set_flag(c.r, GW_FLAG_INVALID_UTF8);
        if (c.oom || gw_arena_exhausted(a))
          goto oom;
        res->nrecords++;
        res->has_genai = true;
      }
      ss->n_spans = w;
    }
  }
  prompt_hashes(a, res->records, res->nrecords, shm.shared);
  size_t nl = 0;
  struct nz_link *links = link_index(a, req, res->records, res->nrecords, &nl);
  inherit_names(res->records, res->nrecords, links, nl);
  if (links && !collect_span_links(a, res->records, links, nl))
    goto oom;
  return GW_OK;
oom:
  return gw_err_set(err, rc, "normalize: request needs more memory than the per-request limit");
}
