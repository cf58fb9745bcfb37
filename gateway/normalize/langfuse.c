/*
 * langfuse.c: langfuse.* attributes (SPEC-FACTS §4.4, §4.5). Users set them on purpose, so they
 * override the other dialects field by field (DESIGN §3): model name, model parameters, usage, level,
 * status message, input/output, completion start time.
 *
 * langfuse.observation.usage_details holds Langfuse's EXCLUSIVE buckets (input without cache, output
 * without reasoning/audio); the record stores inclusive counts as the OTel conventions define them, so
 * input += input_cached_tokens + input_cache_creation and output += output_reasoning_tokens +
 * output_audio_tokens, and the record is flagged tokens_converted. When the bucket or a part of the sum is
 * reported but no usable count (bad_attribute, tokens_out_of_range), or the sum is above GW_TOKENS_MAX,
 * the inclusive count is unknown rather than a partial sum.
 */
#include <string.h>

#include "normalize/normalize_int.h"

#define K(k, s) {k, NZ_S_##s}
const struct nz_key nz_langfuse_keys[] = {
  K("langfuse.observation.type", LF_TYPE),
  K("langfuse.observation.model.name", LF_MODEL),
  K("langfuse.observation.model.parameters", LF_PARAMS),
  K("langfuse.observation.usage_details", LF_USAGE),
  K("langfuse.observation.completion_start_time", LF_TTFT),
  K("langfuse.observation.level", LF_LEVEL),
  K("langfuse.observation.status_message", LF_STATUS_MSG),
  K("langfuse.observation.input", LF_INPUT),
  K("langfuse.observation.output", LF_OUTPUT),
  K("langfuse.session.id", LF_SESSION),
  K("langfuse.user.id", LF_USER),
  K("langfuse.observation.cost_details", LF_COST),
  K("langfuse.observation.prompt.name", LF_PROMPT_NAME),
  K("langfuse.observation.prompt.version", LF_PROMPT_VERSION),
  K("langfuse.trace.name", LF_TRACE_NAME),
};
const size_t nz_langfuse_nkeys = sizeof nz_langfuse_keys / sizeof nz_langfuse_keys[0];

/* A count of usage_details: a JSON integer, or a double holding one (nz_count_*). A value that is no
 * number at all is a bad attribute. */
static enum nz_count get_count(struct nz_ctx *c, struct json_object *o, const char *key, int64_t *v)
{
  struct json_object *x;
  if (!json_object_object_get_ex(o, key, &x))
    return NZ_COUNT_NONE;
  if (json_object_is_type(x, json_type_int)) {
    int64_t i = json_object_get_int64(x);
    if (i == INT64_MAX && json_object_get_uint64(x) > (uint64_t)INT64_MAX) { /* json-c clamps */
      gw_record_set_flag(c->r, GW_FLAG_TOKENS_OUT_OF_RANGE);
      return NZ_COUNT_RANGE;
    }
    return nz_count_i64(c, i, v);
  }
  if (json_object_is_type(x, json_type_double))
    return nz_count_f64(c, json_object_get_double(x), v);
  gw_record_set_flag(c->r, GW_FLAG_BAD_ATTRIBUTE);
  return NZ_COUNT_BAD;
}

/* An inclusive count: the bucket plus the two it excludes. Unknown (false) when the bucket or a part that
 * was reported is not a usable count, or the sum is above GW_TOKENS_MAX; *lost says a value was given. */
static bool inclusive(struct nz_ctx *c, enum nz_count kb, int64_t b, enum nz_count k1, int64_t v1, enum nz_count k2,
                      int64_t v2, int64_t *sum, bool *lost)
{
  *lost = kb != NZ_COUNT_NONE;
  if (kb != NZ_COUNT_OK || k1 == NZ_COUNT_BAD || k1 == NZ_COUNT_RANGE || k2 == NZ_COUNT_BAD || k2 == NZ_COUNT_RANGE)
    return false;
  if (!nz_tokens_add(b, k1 == NZ_COUNT_OK ? v1 : 0, sum) || !nz_tokens_add(*sum, k2 == NZ_COUNT_OK ? v2 : 0, sum)) {
    gw_record_set_flag(c->r, GW_FLAG_TOKENS_OUT_OF_RANGE);
    return false;
  }
  *lost = false;
  return true;
}

void nz_langfuse_usage(struct nz_ctx *c)
{
  const char *s = nz_str(c->s->v[NZ_S_LF_USAGE]);
  if (!s)
    return;
  struct json_object *o = nz_json_parse(c, s, strlen(s));
  if (!o || !json_object_is_type(o, json_type_object)) {
    gw_record_set_flag(c->r, GW_FLAG_BAD_ATTRIBUTE);
    if (o)
      nz_json_put(c, o);
    return;
  }
  struct gw_record *r = c->r;
  int64_t in = 0, out = 0, total = 0, cr = 0, cw = 0, rs = 0, au = 0, sum;
  enum nz_count kcr = get_count(c, o, "input_cached_tokens", &cr), kcw = get_count(c, o, "input_cache_creation", &cw);
  enum nz_count krs = get_count(c, o, "output_reasoning_tokens", &rs), kau = get_count(c, o, "output_audio_tokens", &au);
  enum nz_count kin = get_count(c, o, "input", &in), kout = get_count(c, o, "output", &out);
  enum nz_count ktot = get_count(c, o, "total", &total);
  bool converted = false, lost;
  /* What is unknown here may still come from the semconv keys; c->tok_lost keeps it out of a derived total. */
  if (inclusive(c, kin, in, kcr, cr, kcw, cw, &sum, &lost)) {
    r->input_tokens = (struct gw_opt_i64){sum, true};
    converted = true;
  }
  if (lost)
    c->tok_lost |= NZ_TOK_IN;
  if (inclusive(c, kout, out, krs, rs, kau, au, &sum, &lost)) {
    r->output_tokens = (struct gw_opt_i64){sum, true};
    converted = true;
  }
  if (lost)
    c->tok_lost |= NZ_TOK_OUT;
  if (ktot == NZ_COUNT_OK)
    r->total_tokens = (struct gw_opt_i64){total, true};
  else if (ktot != NZ_COUNT_NONE)
    c->tok_lost |= NZ_TOK_TOTAL;
  if (kcr == NZ_COUNT_OK)
    r->cache_read_tokens = (struct gw_opt_i64){cr, true};
  if (kcw == NZ_COUNT_OK)
    r->cache_write_tokens = (struct gw_opt_i64){cw, true};
  if (krs == NZ_COUNT_OK)
    r->reasoning_tokens = (struct gw_opt_i64){rs, true};
  if (converted)
    gw_record_set_flag(r, GW_FLAG_TOKENS_CONVERTED);
  nz_json_put(c, o);
}

void nz_langfuse_params(struct nz_ctx *c, struct nz_params *p)
{
  const char *s = nz_str(c->s->v[NZ_S_LF_PARAMS]);
  if (!s)
    return;
  struct json_object *o = nz_json_parse(c, s, strlen(s));
  if (o && json_object_is_type(o, json_type_object))
    nz_params_from_json(p, o);
  else
    gw_record_set_flag(c->r, GW_FLAG_BAD_ATTRIBUTE);
  if (o)
    nz_json_put(c, o);
}

static bool digits(const char **p, int n, int *out)
{
  int v = 0;
  for (int i = 0; i < n; i++) {
    char ch = (*p)[i];
    if (ch < '0' || ch > '9')
      return false;
    v = v * 10 + (ch - '0');
  }
  *p += n;
  *out = v;
  return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/* ISO-8601 / RFC 3339 "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)" into ns since the epoch; false when
 * malformed or outside what int64 ns hold (*ns is then unspecified). */
static bool iso8601_ns(const char *s, int64_t *ns)
{
  int y, mo, d, h, mi, se, oh = 0, om = 0;
  const char *p = s;
  if (*p == '"')
    p++; /* some SDKs JSON-encode the string */
  if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' || !digits(&p, 2, &d) ||
      (*p != 'T' && *p != 't' && *p != ' '))
    return false;
  p++;
  if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) || *p++ != ':' || !digits(&p, 2, &se))
    return false;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
    return false;
  int64_t frac = 0;
  if (*p == '.') {
    p++;
    int nd = 0;
    while (*p >= '0' && *p <= '9') {
      if (nd < 9) {
        frac = frac * 10 + (*p - '0');
        nd++;
      }
      p++;
    }
    if (!nd)
      return false;
    for (; nd < 9; nd++)
      frac *= 10;
  }
  int sign = 0;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    sign = *p++ == '-' ? -1 : 1;
    if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om))
      return false;
  } else {
    return false;
  }
  if (*p == '"')
    p++;
  if (*p)
    return false;
  int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - sign * (oh * 3600 + om * 60);
  /* Before 1970 or after 2262-04-11T23:47:16.854775807Z, the last instant int64 ns can hold. */
  return secs >= 0 && !__builtin_mul_overflow(secs, (int64_t)1000000000, ns) && !__builtin_add_overflow(*ns, frac, ns);
}

bool nz_langfuse_ttft(struct nz_ctx *c, double *ms)
{
  const char *s = nz_str(c->s->v[NZ_S_LF_TTFT]);
  int64_t t;
  if (!s || !c->r->start_ns)
    return false;
  if (!iso8601_ns(s, &t) || (uint64_t)t < c->r->start_ns) {
    gw_record_set_flag(c->r, GW_FLAG_BAD_ATTRIBUTE);
    return false;
  }
  *ms = (double)((uint64_t)t - c->r->start_ns) / 1e6;
  return true;
}

const char *nz_langfuse_operation(const char *type)
{
  static const struct { const char *type, *op; } map[] = {
    {"generation", "chat"}, {"embedding", "embeddings"}, {"agent", "invoke_agent"}, {"tool", "execute_tool"},
    {"chain", "chain"}, {"retriever", "retrieval"}, {"guardrail", "guardrail"}, {"evaluator", "evaluator"},
  };
  if (type)
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
      if (!strcmp(type, map[i].type))
        return map[i].op;
  return NULL;
}

/* A JSON number as nano-USD, from its text (json-c keeps the text of parsed doubles), never a double. */
static bool json_nusd(struct json_object *x, int64_t *v)
{
  if (!json_object_is_type(x, json_type_int) && !json_object_is_type(x, json_type_double))
    return false;
  const char *t = json_object_get_string(x);
  return t && gw_decimal_parse(t, strlen(t), 9, GW_DEC_ROUND, v);
}

/* SPEC-FACTS §4.5 extractCostDetails: the provided total, else the sum of the provided buckets. */
bool nz_langfuse_cost(struct nz_ctx *c, int64_t *nusd)
{
  const char *s = nz_str(c->s->v[NZ_S_LF_COST]);
  if (!s)
    return false;
  struct json_object *o = nz_json_parse(c, s, strlen(s)), *x;
  bool ok = false;
  if (!o || !json_object_is_type(o, json_type_object))
    goto out;
  if (json_object_object_get_ex(o, "total", &x)) {
    ok = json_nusd(x, nusd);
    goto out;
  }
  int64_t sum = 0;
  json_object_object_foreach(o, key, val)
  {
    int64_t v;
    (void)key;
    if (!json_nusd(val, &v) || sum > INT64_MAX / 2 - v)
      goto out;
    sum += v;
    ok = true;
  }
  *nusd = sum;
out:
  if (!ok && (!o || !json_object_is_type(o, json_type_object) || json_object_object_length(o) > 0))
    gw_record_set_flag(c->r, GW_FLAG_BAD_ATTRIBUTE); /* "{}" says nothing, it is not wrong */
  if (o)
    nz_json_put(c, o);
  return ok;
}
