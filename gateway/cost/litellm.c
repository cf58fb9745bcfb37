/*
 * litellm.c: a user price file in LiteLLM's model_prices_and_context_window.json format (SPEC-FACTS §6.2),
 * so users reuse the table they already maintain.
 *
 * Key decisions:
 * - Per-token USD values are read from their JSON text (json-c keeps the text of parsed numbers) and
 *   become pico-USD per token, rounded half up past the 12th decimal; never through a double sum.
 * - Each model key becomes an anchored literal pattern: "gemini/gemini-2.5-pro" matches itself and the
 *   bare "gemini-2.5-pro"; a bare key also accepts any "<provider>/" path in front ("openai/gpt-4o").
 *   The key is the entry's `exact` name, so a model name equal to a key always picks that key's entry
 *   over another key that merely accepts it. The key is also the entry id (keys are unique, stripped
 *   names are not).
 * - sample_spec and keys without input_cost_per_token (images, audio, per-call pricing) are skipped.
 *   No valid_from (LiteLLM has no effective dates): such entries are always in force.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cost/cost_int.h"
#include "normalize/normalize.h"

#define MAX_KEY 256

struct lkey {
  const char *name;
  int rate;      /* enum gw_rate */
  int where;     /* 0 base, 1 long context, 2 + tier */
  int threshold; /* long context threshold this key implies */
};

static const struct lkey keys[] = {
  {"input_cost_per_token", GW_R_INPUT, 0, 0},
  {"output_cost_per_token", GW_R_OUTPUT, 0, 0},
  {"cache_read_input_token_cost", GW_R_CACHE_READ, 0, 0},
  {"cache_creation_input_token_cost", GW_R_CACHE_WRITE, 0, 0},
  {"cache_creation_input_token_cost_above_1hr", GW_R_CACHE_WRITE_1H, 0, 0},
  {"output_cost_per_reasoning_token", GW_R_REASONING, 0, 0},
  {"input_cost_per_token_above_200k_tokens", GW_R_INPUT, 1, 200000},
  {"output_cost_per_token_above_200k_tokens", GW_R_OUTPUT, 1, 200000},
  {"cache_read_input_token_cost_above_200k_tokens", GW_R_CACHE_READ, 1, 200000},
  {"input_cost_per_token_above_128k_tokens", GW_R_INPUT, 1, 128000},
  {"output_cost_per_token_above_128k_tokens", GW_R_OUTPUT, 1, 128000},
  {"input_cost_per_token_batches", GW_R_INPUT, 2 + GW_T_BATCH, 0},
  {"output_cost_per_token_batches", GW_R_OUTPUT, 2 + GW_T_BATCH, 0},
  {"input_cost_per_token_flex", GW_R_INPUT, 2 + GW_T_FLEX, 0},
  {"output_cost_per_token_flex", GW_R_OUTPUT, 2 + GW_T_FLEX, 0},
  {"cache_read_input_token_cost_flex", GW_R_CACHE_READ, 2 + GW_T_FLEX, 0},
  {"input_cost_per_token_priority", GW_R_INPUT, 2 + GW_T_PRIORITY, 0},
  {"output_cost_per_token_priority", GW_R_OUTPUT, 2 + GW_T_PRIORITY, 0},
  {"cache_read_input_token_cost_priority", GW_R_CACHE_READ, 2 + GW_T_PRIORITY, 0},
};

static void put_escaped(char *dst, size_t *n, const char *s, size_t len)
{
  for (size_t i = 0; i < len; i++) {
    if (strchr("\\^$.|?*+()[]{}#", s[i]))
      dst[(*n)++] = '\\';
    dst[(*n)++] = s[i];
  }
}

static char *key_pattern(const char *k)
{
  size_t len = strlen(k), n = 0;
  char *p = gw_malloc(2 * len + 48);
  const char *slash = strchr(k, '/');
  p[n++] = '^';
  if (slash) {
    memcpy(p + n, "(?:", 3);
    n += 3;
    put_escaped(p, &n, k, (size_t)(slash - k) + 1);
    memcpy(p + n, ")?", 2);
    n += 2;
    put_escaped(p, &n, slash + 1, len - (size_t)(slash - k) - 1);
  } else {
    static const char any[] = "(?:[a-z0-9_.-]+/)?";
    memcpy(p + n, any, sizeof any - 1);
    n += sizeof any - 1;
    put_escaped(p, &n, k, len);
  }
  p[n++] = '$';
  p[n] = 0;
  return p;
}

bool gw_prices_json_usd(struct json_object *v, bool strings_ok, int64_t *pico, const char **text)
{
  const char *s = json_object_get_string(v);
  *text = s ? s : "";
  if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int) &&
      !(strings_ok && json_object_is_type(v, json_type_string)))
    return false;
  return s && gw_decimal_parse(s, strlen(s), 12, GW_DEC_ROUND, pico);
}

/* 1-based line of a byte offset, for JSON syntax errors. */
static unsigned long line_of(const char *text, size_t off)
{
  unsigned long line = 1;
  for (size_t i = 0; i < off; i++)
    line += text[i] == '\n';
  return line;
}

gw_rc gw_prices_read_litellm(const char *path, const char *text, size_t len, struct gw_table *t, struct gw_err *err)
{
  gw_rc rc = GW_ERR(CONFIG);
  size_t from = t->n;
  struct json_tokener *tok = json_tokener_new_ex(64);
  struct json_object *root = json_tokener_parse_ex(tok, text, (int)len);
  enum json_tokener_error jerr = json_tokener_get_error(tok);
  if (!root || jerr != json_tokener_success) {
    size_t off = json_tokener_get_parse_end(tok);
    gw_err_set(err, rc, "%s:%lu: not valid JSON: %s", path, line_of(text, off < len ? off : len),
               json_tokener_error_desc(jerr == json_tokener_success ? json_tokener_continue : jerr));
    goto out;
  }
  if (!json_object_is_type(root, json_type_object)) {
    gw_err_set(err, rc, "%s: want a JSON object keyed by model name (LiteLLM format)", path);
    goto out;
  }
  json_object_object_foreach(root, model, spec)
  {
    if (!strcmp(model, "sample_spec"))
      continue;
    if (!json_object_is_type(spec, json_type_object)) {
      gw_err_set(err, rc, "%s: \"%.80s\": want an object", path, model);
      goto out;
    }
    struct json_object *in;
    if (!json_object_object_get_ex(spec, "input_cost_per_token", &in) || json_object_is_type(in, json_type_null))
      continue;
    if (!model[0] || strlen(model) > MAX_KEY) {
      gw_err_set(err, rc, "%s: a model key of %zu bytes (want 1..%d)", path, strlen(model), MAX_KEY);
      goto out;
    }
    struct gw_price_entry *e = gw_table_add(t);
    e->user = true;
    e->id = gw_strdup(model);
    e->exact = gw_strdup(model);
    e->pattern = key_pattern(model);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
      struct json_object *v;
      if (!json_object_object_get_ex(spec, keys[i].name, &v) || json_object_is_type(v, json_type_null))
        continue;
      const char *s;
      int64_t pico;
      if (!gw_prices_json_usd(v, false, &pico, &s)) {
        gw_err_set(err, rc, "%s: \"%.80s\".%s: bad number \"%.40s\" (want USD per token, not negative)", path, model,
                   keys[i].name, s);
        goto out;
      }
      struct gw_rates *r = keys[i].where == 0 ? &e->base : keys[i].where == 1 ? &e->long_ctx : &e->tier[keys[i].where - 2];
      /* One long-context tier per entry: the 200k keys (listed first) win over old Gemini's 128k keys. */
      if (keys[i].where == 1 && !e->long_threshold)
        e->long_threshold = keys[i].threshold;
      else if (keys[i].where == 1 && keys[i].threshold != e->long_threshold)
        continue;
      r->r[keys[i].rate] = pico;
      r->have |= 1u << keys[i].rate;
    }
    gw_prices_default_output(e);
    char why[200];
    if (!gw_prices_compile(e, why, sizeof why)) {
      gw_err_set(err, rc, "%s: \"%.80s\": %s", path, model, why);
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
