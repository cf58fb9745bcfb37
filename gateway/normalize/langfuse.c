/*
 * langfuse.c: langfuse.* attributes (SPEC-FACTS §4.4, §4.5). Users set them on purpose, so they
 * override the other dialects field by field (DESIGN §3): model name, model parameters, usage, level,
 * status message, input/output, completion start time.
 *
 * langfuse.observation.usage_details holds Langfuse's EXCLUSIVE buckets (input without cache, output
 * without reasoning/audio); the record stores inclusive counts as the OTel conventions define them, so
 * input += input_cached_tokens + input_cache_creation and output += output_reasoning_tokens +
 * output_audio_tokens, and the record is flagged tokens_converted.
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
};
const size_t nz_langfuse_nkeys = sizeof nz_langfuse_keys / sizeof nz_langfuse_keys[0];

static bool get_count(struct json_object *o, const char *key, int64_t *v)
{
  struct json_object *x;
  if (!json_object_object_get_ex(o, key, &x))
    return false;
  if (json_object_is_type(x, json_type_int)) {
    *v = json_object_get_int64(x);
  } else if (json_object_is_type(x, json_type_double)) {
    double d = json_object_get_double(x);
    if (d != (double)(int64_t)d)
      return false;
    *v = (int64_t)d;
  } else {
    return false;
  }
  return *v >= 0;
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
  int64_t in, out, total, cr = 0, cw = 0, rs = 0, au = 0;
  bool has_cr = get_count(o, "input_cached_tokens", &cr), has_cw = get_count(o, "input_cache_creation", &cw);
  bool has_rs = get_count(o, "output_reasoning_tokens", &rs), has_au = get_count(o, "output_audio_tokens", &au);
  bool converted = false;
  if (get_count(o, "input", &in)) {
    r->input_tokens = (struct gw_opt_i64){in + cr + cw, true};
    converted = true;
  }
  if (get_count(o, "output", &out)) {
    r->output_tokens = (struct gw_opt_i64){out + rs + au, true};
    converted = true;
  }
  if (get_count(o, "total", &total))
    r->total_tokens = (struct gw_opt_i64){total, true};
  if (has_cr)
    r->cache_read_tokens = (struct gw_opt_i64){cr, true};
  if (has_cw)
    r->cache_write_tokens = (struct gw_opt_i64){cw, true};
  if (has_rs)
    r->reasoning_tokens = (struct gw_opt_i64){rs, true};
  (void)has_au;
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

/* ISO-8601 / RFC 3339 "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)" into ns since the epoch. */
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
  if (secs < 0)
    return false;
  *ns = secs * 1000000000 + frac;
  return true;
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
