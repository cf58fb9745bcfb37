/*
 * langfuse_prices.c: a user price file in Langfuse's own model-price format (SPEC-FACTS §6.3: the shape of
 * its worker/src/constants/default-model-prices.json, and of a model definition exported from a project),
 * so a team that already keeps its prices in Langfuse prices the same spans the same way here.
 *
 * Key decisions:
 * - The top level is a JSON array of models: {modelName, matchPattern, pricingTiers[] | prices, startDate?}.
 *   Each becomes one entry: id = modelName, pattern = matchPattern (Langfuse's Postgres regular
 *   expressions with an inline (?i); pcre2 reads the ones Langfuse ships), valid_from = startDate's date
 *   when there is one (Langfuse's effective dating: the newest start date in force wins, as here).
 * - Prices are USD per unit (token), read from their JSON text into pico-USD per token as LiteLLM's are.
 *   Usage types map to our rates by the names Langfuse lists for each (SPEC-FACTS §6.3): input (input,
 *   input_tokens, prompt_tokens, prompt_token_count, promptTokenCount), output (output, output_tokens,
 *   completion_tokens, candidates_token_count, candidatesTokenCount), cache read (input_cached_tokens,
 *   input_cache_read, cache_read_input_tokens), cache write (input_cache_creation,
 *   input_cache_creation_5m, cache_creation_input_tokens), 1-hour cache write (input_cache_creation_1h),
 *   reasoning (output_reasoning_tokens, output_reasoning, reasoning_tokens, thoughts_token_count,
 *   thoughtsTokenCount); `total` alone (Langfuse prices embeddings so) is the input rate. Other usage
 *   types (audio, images) have no rate here and are left out.
 * - Tiers: the default tier (isDefault, else priority 0) gives the base rates; a tier whose condition is
 *   usageDetailPattern on input (input|prompt|cached...) "gt" N gives the long-context rates with threshold
 *   N; a tier whose condition is model_parameters service_tier "in" [...] gives the batch, flex or priority
 *   rates for those values (Langfuse's "fast" is OpenAI's priority). Other conditions are left out.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cost/cost_int.h"
#include "normalize/normalize.h"

static const struct {
  const char *usage;
  int rate;
} usage_rates[] = {
  {"input", GW_R_INPUT}, {"input_tokens", GW_R_INPUT}, {"prompt_tokens", GW_R_INPUT},
  {"prompt_token_count", GW_R_INPUT}, {"promptTokenCount", GW_R_INPUT},
  {"output", GW_R_OUTPUT}, {"output_tokens", GW_R_OUTPUT}, {"completion_tokens", GW_R_OUTPUT},
  {"candidates_token_count", GW_R_OUTPUT}, {"candidatesTokenCount", GW_R_OUTPUT},
  {"input_cached_tokens", GW_R_CACHE_READ}, {"input_cache_read", GW_R_CACHE_READ},
  {"cache_read_input_tokens", GW_R_CACHE_READ},
  {"input_cache_creation", GW_R_CACHE_WRITE}, {"input_cache_creation_5m", GW_R_CACHE_WRITE},
  {"cache_creation_input_tokens", GW_R_CACHE_WRITE},
  {"input_cache_creation_1h", GW_R_CACHE_WRITE_1H},
  {"output_reasoning_tokens", GW_R_REASONING}, {"output_reasoning", GW_R_REASONING},
  {"reasoning_tokens", GW_R_REASONING}, {"thoughts_token_count", GW_R_REASONING},
  {"thoughtsTokenCount", GW_R_REASONING},
};

static const char *jstr(struct json_object *o, const char *key)
{
  struct json_object *v;
  return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v)
                                                                                             : NULL;
}

/* One tier's prices into r; false with why on a bad number. */
static bool read_prices(struct json_object *prices, struct gw_rates *r, char *why, size_t whylen)
{
  int64_t total = -1;
  json_object_object_foreach(prices, usage, v)
  {
    int rate = -1;
    for (size_t i = 0; i < sizeof usage_rates / sizeof usage_rates[0] && rate < 0; i++)
      if (!strcmp(usage, usage_rates[i].usage))
        rate = usage_rates[i].rate;
    bool is_total = !strcmp(usage, "total");
    if (rate < 0 && !is_total)
      continue;
    const char *s;
    int64_t pico;
    if (!gw_prices_json_usd(v, true, &pico, &s)) {
      snprintf(why, whylen, "prices.%.40s: bad number \"%.40s\" (want USD per unit, not negative)", usage, s);
      return false;
    }
    if (is_total) {
      total = pico;
      continue;
    }
    if (r->have & (1u << rate))
      continue; /* the first name of a rate wins (Langfuse lists duplicates with one value) */
    r->r[rate] = pico;
    r->have |= 1u << rate;
  }
  if (!(r->have & (1u << GW_R_INPUT)) && total >= 0) {
    r->r[GW_R_INPUT] = total;
    r->have |= 1u << GW_R_INPUT;
  }
  return true;
}

/* What a tier is for: 0 base, 1 long context (*threshold), 2 + tier, -1 not one we use. */
static int tier_kind(struct json_object *tier, int64_t *threshold)
{
  struct json_object *conds, *v;
  bool dflt = json_object_object_get_ex(tier, "isDefault", &v) && json_object_get_boolean(v);
  if (!json_object_object_get_ex(tier, "conditions", &conds) || !json_object_is_type(conds, json_type_array) ||
      !json_object_array_length(conds))
    return dflt || !json_object_object_get_ex(tier, "priority", &v) || !json_object_get_int64(v) ? 0 : -1;
  if (dflt)
    return 0;
  if (json_object_array_length(conds) != 1)
    return -1;
  struct json_object *c = json_object_array_get_idx(conds, 0);
  const char *pat = jstr(c, "usageDetailPattern"), *op = jstr(c, "operator"), *key = jstr(c, "key");
  if (pat && op && !strcmp(op, "gt") && (strstr(pat, "input") || strstr(pat, "prompt")) &&
      json_object_object_get_ex(c, "value", &v)) {
    *threshold = json_object_get_int64(v);
    return *threshold > 0 ? 1 : -1;
  }
  struct json_object *vals;
  if (key && !strcmp(key, "service_tier") && op && !strcmp(op, "in") && json_object_object_get_ex(c, "values", &vals) &&
      json_object_is_type(vals, json_type_array)) {
    for (size_t i = 0; i < json_object_array_length(vals); i++) {
      const char *s = json_object_get_string(json_object_array_get_idx(vals, i));
      if (!s)
        continue;
      if (!strcasecmp(s, "priority") || !strcasecmp(s, "fast"))
        return 2 + GW_T_PRIORITY;
      if (!strcasecmp(s, "flex"))
        return 2 + GW_T_FLEX;
      if (!strcasecmp(s, "batch"))
        return 2 + GW_T_BATCH;
    }
  }
  return -1;
}

gw_rc gw_prices_read_langfuse(const char *path, const char *text, size_t len, struct gw_table *t, struct gw_err *err)
{
  gw_rc rc = GW_ERR(CONFIG);
  size_t from = t->n;
  struct json_tokener *tok = json_tokener_new_ex(64);
  struct json_object *root = json_tokener_parse_ex(tok, text, (int)len);
  char why[240];
  if (!root || json_tokener_get_error(tok) != json_tokener_success) {
    gw_err_set(err, rc, "%s: not valid JSON: %s", path,
               json_tokener_error_desc(json_tokener_get_error(tok) == json_tokener_success ? json_tokener_continue
                                                                                           : json_tokener_get_error(tok)));
    goto out;
  }
  for (size_t i = 0; i < json_object_array_length(root); i++) {
    struct json_object *m = json_object_array_get_idx(root, i), *tiers, *prices;
    const char *name = json_object_is_type(m, json_type_object) ? jstr(m, "modelName") : NULL;
    const char *pattern = name ? jstr(m, "matchPattern") : NULL;
    if (!name || !*name || !pattern || !*pattern) {
      gw_err_set(err, rc, "%s: [%zu]: want an object with modelName and matchPattern (Langfuse model format)", path, i);
      goto out;
    }
    struct gw_price_entry *e = gw_table_add(t);
    e->user = true;
    e->id = gw_strdup(name);
    e->pattern = gw_strdup(pattern);
    const char *start = jstr(m, "startDate");
    if (start && strlen(start) >= 10) {
      char day[11];
      memcpy(day, start, 10);
      day[10] = '\0';
      if (!gw_prices_parse_date(day, &e->valid_from_ns)) {
        gw_err_set(err, rc, "%s: \"%.80s\".startDate: bad date \"%.40s\"", path, name, start);
        goto out;
      }
      e->valid_from_text = gw_strdup(day);
    }
    if (json_object_object_get_ex(m, "pricingTiers", &tiers) && json_object_is_type(tiers, json_type_array)) {
      for (size_t k = 0; k < json_object_array_length(tiers); k++) {
        struct json_object *tier = json_object_array_get_idx(tiers, k);
        int64_t threshold = 0;
        int kind = tier_kind(tier, &threshold);
        if (kind < 0 || !json_object_object_get_ex(tier, "prices", &prices) ||
            !json_object_is_type(prices, json_type_object))
          continue;
        struct gw_rates *r = kind == 0 ? &e->base : kind == 1 ? &e->long_ctx : &e->tier[kind - 2];
        if (kind == 1) {
          if (e->long_threshold && e->long_threshold != threshold)
            continue; /* one long-context tier per entry: the first */
          e->long_threshold = threshold;
        }
        if (!read_prices(prices, r, why, sizeof why)) {
          gw_err_set(err, rc, "%s: \"%.80s\".pricingTiers[%zu].%s", path, name, k, why);
          goto out;
        }
      }
    } else if (json_object_object_get_ex(m, "prices", &prices) && json_object_is_type(prices, json_type_object)) {
      if (!read_prices(prices, &e->base, why, sizeof why)) {
        gw_err_set(err, rc, "%s: \"%.80s\".%s", path, name, why);
        goto out;
      }
    }
    if (!(e->base.have & (1u << GW_R_INPUT))) {
      gw_err_set(err, rc, "%s: \"%.80s\": no input price in its default tier (want prices.input, USD per token)", path,
                 name);
      goto out;
    }
    gw_prices_default_output(e);
    if (!gw_prices_compile(e, why, sizeof why)) {
      gw_err_set(err, rc, "%s: \"%.80s\".matchPattern: %s", path, name, why);
      goto out;
    }
  }
  free(t->version);
  t->version = gw_prices_basename(path);
  rc = gw_prices_finish_ids(t, from, path, err);
out:
  if (root)
    json_object_put(root);
  json_tokener_free(tok);
  return rc;
}
