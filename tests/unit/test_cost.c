/*
 * test_cost.c: the cost stage (DESIGN §4). The shipped table loads and each model name hits its own entry;
 * user files merge, price by valid_from and fail with exact messages; LiteLLM JSON loads and prices;
 * known costs to the nano-USD; reported costs; unknown models (flag, metric, one log line); span
 * annotation; normalize's reported-cost and service-tier reading; every SDK fixture priced.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "core/metrics.h"
#include "cost/cost.h"
#include "cost/cost_int.h"
#include "decode/decode.h"
#include "normalize/normalize.h"
#include "testutil.h"

#define NONE (-1)

static struct gw_prices *DEF, *USR, *LIT, *LFP;
static struct gw_arena *A;

static char *fx(const char *name)
{
  static char buf[4][512];
  static int i;
  i = (i + 1) % 4;
  snprintf(buf[i], sizeof buf[i], "%s/cost/%s", GW_FIXTURES, name);
  return buf[i];
}

static int group_setup(void **state)
{
  (void)state;
  struct gw_err err = {0};
  gw_normalize_init();
  DEF = gw_prices_load(NULL, NULL, &err);
  if (!DEF)
    fprintf(stderr, "defaults: %s\n", err.msg);
  USR = gw_prices_load(NULL, fx("user_history.yaml"), &err);
  if (!USR)
    fprintf(stderr, "user: %s\n", err.msg);
  LIT = gw_prices_load(NULL, fx("litellm_sample.json"), &err);
  if (!LIT)
    fprintf(stderr, "litellm: %s\n", err.msg);
  LFP = gw_prices_load(NULL, fx("langfuse_sample.json"), &err);
  if (!LFP)
    fprintf(stderr, "langfuse: %s\n", err.msg);
  A = gw_arena_create(64u << 20);
  return DEF && USR && LIT ? 0 : -1;
}

static int group_teardown(void **state)
{
  (void)state;
  gw_prices_destroy(DEF);
  gw_prices_destroy(USR);
  gw_prices_destroy(LIT);
  gw_prices_destroy(LFP);
  gw_arena_destroy(A);
  return 0;
}

static uint64_t day(const char *d)
{
  uint64_t ns = 0;
  assert_true(gw_prices_parse_date(d, &ns));
  return ns;
}

/* ---- exact decimals ---- */

static void test_decimal(void **state)
{
  (void)state;
  static const struct {
    const char *s;
    unsigned scale;
    enum gw_dec_mode mode;
    bool ok;
    int64_t want;
  } cases[] = {
    {"2.50", 6, GW_DEC_EXACT, true, 2500000},
    {"0.005", 6, GW_DEC_EXACT, true, 5000},
    {"0.0000001", 6, GW_DEC_EXACT, false, 0},
    {"0.0000001", 6, GW_DEC_ROUND, true, 0},
    {"0.0000005", 6, GW_DEC_ROUND, true, 1},
    {"2.5e-06", 12, GW_DEC_EXACT, true, 2500000},
    {"1.25E-7", 12, GW_DEC_EXACT, true, 125000},
    {"4.0054321e-08", 12, GW_DEC_ROUND, true, 40054},
    {"0.0075", 9, GW_DEC_EXACT, true, 7500000},
    {"+3", 0, GW_DEC_EXACT, true, 3},
    {"10", 9, GW_DEC_EXACT, true, 10000000000},
    {"1e3", 0, GW_DEC_EXACT, true, 1000},
    {".5", 1, GW_DEC_EXACT, true, 5},
    {"5.", 1, GW_DEC_EXACT, true, 50},
    {"-1", 0, GW_DEC_EXACT, false, 0},
    {"", 0, GW_DEC_EXACT, false, 0},
    {".", 0, GW_DEC_EXACT, false, 0},
    {"1e", 0, GW_DEC_EXACT, false, 0},
    {"1.2.3", 0, GW_DEC_EXACT, false, 0},
    {"2,50", 6, GW_DEC_EXACT, false, 0},
    {"1 ", 0, GW_DEC_EXACT, false, 0},
    {"9999999999999999999", 0, GW_DEC_EXACT, false, 0},
    {"1e99999", 0, GW_DEC_EXACT, false, 0},
    {"1e-99999", 9, GW_DEC_ROUND, true, 0},
    {"0.00000000000000000000000000001", 9, GW_DEC_ROUND, true, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int64_t v = -7;
    bool ok = gw_decimal_parse(cases[i].s, strlen(cases[i].s), cases[i].scale, cases[i].mode, &v);
    if (ok != cases[i].ok || (ok && v != cases[i].want))
      fail_msg("\"%s\" scale %u: ok=%d v=%lld, want ok=%d v=%lld", cases[i].s, cases[i].scale, ok, (long long)v,
               cases[i].ok, (long long)cases[i].want);
  }
}

/* ---- the shipped table ---- */

static void test_defaults_load(void **state)
{
  (void)state;
  assert_non_null(DEF);
  assert_string_equal(gw_prices_version(DEF), "defaults-2026-11");
  assert_int_equal(gw_prices_count(DEF), 171);
  const char *pid = NULL;
  assert_string_equal(gw_prices_match(DEF, "gpt-4o", NULL, day("2026-11-01"), &pid), "gpt-4o");
  assert_string_equal(pid, "gpt-4o@2024-08-06/defaults-2026-11");
  assert_string_equal(gw_prices_match(DEF, "gpt-5.1", NULL, 0, &pid), "gpt-5.1");
  assert_string_equal(pid, "gpt-5.1/defaults-2026-11");
}

static const struct {
  const char *name, *want;
} match_cases[] = {
  {"gpt-4o", "gpt-4o"},
  {"gpt-4o-2024-08-06", "gpt-4o"},
  {"openai/gpt-4o", "gpt-4o"},
  {"GPT-4O", "gpt-4o"},
  {"gpt-4o-mini", "gpt-4o-mini"},
  {"gpt-4o-mini-2024-07-18", "gpt-4o-mini"},
  {"azure/gpt-4o-mini", "gpt-4o-mini"},
  {"gpt-4.1", "gpt-4.1"},
  {"gpt-4.1-2025-04-14", "gpt-4.1"},
  {"gpt-4.1-mini", "gpt-4.1-mini"},
  {"gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"},
  {"o1", "o1"},
  {"o1-2024-12-17", "o1"},
  {"o3", "o3"},
  {"o3-2025-04-16", "o3"},
  {"o3-mini", "o3-mini"},
  {"o3-mini-2025-01-31", "o3-mini"},
  {"o4-mini", "o4-mini"},
  {"gpt-5", "gpt-5"},
  {"gpt-5-2025-08-07", "gpt-5"},
  {"gpt-5-mini", "gpt-5-mini"},
  {"gpt-5-nano-2025-08-07", "gpt-5-nano"},
  {"text-embedding-3-small", "text-embedding-3-small"},
  {"text-embedding-3-large", "text-embedding-3-large"},
  {"claude-3-5-haiku-20241022", "claude-3-5-haiku"},
  {"claude-3-5-sonnet-20241022", "claude-3-5-sonnet"},
  {"claude-3-5-sonnet-latest", "claude-3-5-sonnet"},
  {"anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"},
  {"claude-3-7-sonnet-20250219", "claude-3-7-sonnet"},
  {"claude-3.7-sonnet", "claude-3-7-sonnet"},
  {"claude-sonnet-4", "claude-sonnet-4"},
  {"claude-sonnet-4-20250514", "claude-sonnet-4"},
  {"anthropic/claude-sonnet-4-20250514", "claude-sonnet-4"},
  {"anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"},
  {"us.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"},
  {"eu.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"},
  {"apac.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"},
  {"global.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"},
  {"claude-sonnet-4@20250514", "claude-sonnet-4"},
  {"claude-sonnet-4-5", "claude-sonnet-4-5"},
  {"claude-sonnet-4-5-20250929", "claude-sonnet-4-5"},
  {"Claude-Sonnet-4-5", "claude-sonnet-4-5"},
  {"claude-opus-4-20250514", "claude-opus-4"},
  {"claude-opus-4-1", "claude-opus-4-1"},
  {"claude-opus-4-1-20250805", "claude-opus-4-1"},
  {"claude-haiku-4-5-20251001", "claude-haiku-4-5"},
  {"gemini-1.5-pro", "gemini-1.5-pro"},
  {"gemini-1.5-pro-002", "gemini-1.5-pro"},
  {"gemini-1.5-flash", "gemini-1.5-flash"},
  {"gemini/gemini-2.0-flash", "gemini-2.0-flash"},
  {"gemini-2.5-pro", "gemini-2.5-pro"},
  {"google/gemini-2.5-pro", "gemini-2.5-pro"},
  {"vertex_ai/gemini-2.5-flash", "gemini-2.5-flash"},
  {"gemini-2.5-flash-preview-05-20", "gemini-2.5-flash"},
  {"gemini-2.5-flash-lite", "gemini-2.5-flash-lite"},
  {"mistral-large-latest", "mistral-large-latest"},
  {"mistral/mistral-small-latest", "mistral-small-latest"},
  {"groq/llama-3.3-70b-versatile", "llama-3.3-70b-versatile"},
  {"us.meta.llama3-3-70b-instruct-v1:0", "meta.llama3-3-70b-instruct-v1:0"},
  {"deepseek/deepseek-reasoner", "deepseek-reasoner"},
  /* issue 14: names that had no price and got a LiteLLM-style cost only in Langfuse */
  {"gpt-4", "gpt-4"},
  {"gpt-4-turbo", "gpt-4-turbo"},
  {"gpt-4-turbo-2024-04-09", "gpt-4-turbo"},
  {"text-embedding-ada-002", "text-embedding-ada-002"},
  {"o1-mini", "o1-mini"},
  {"o3-pro", "o3-pro"},
  {"gpt-5-codex", "gpt-5"},
  {"gpt-5.1-codex-mini", "gpt-5.1-codex-mini"},
  {"gpt-5.1-chat-latest", "gpt-5.1"},
  {"gemini-2.0-flash-lite", "gemini-2.0-flash-lite"},
  {"claude-3-haiku-20240307", "claude-3-haiku"},
  {"us.anthropic.claude-3-haiku-20240307-v1:0", "claude-3-haiku"},
  {"command-r-plus-08-2024", "command-r-plus"},
  {"grok-3-mini", "grok-3-mini"},
  {"xai/grok-4-0709", "grok-4-0709"},
  {"us.meta.llama4-scout-17b-instruct-v1:0", "meta.llama4-scout-17b-instruct-v1:0"},
  {"mistral-large", "mistral-large-2411"},
  /* near misses: nothing */
  {"gpt-4o-2024-08", NULL},
  {"claude-sonnet-4-7", NULL},
  {"my-gpt-4o", NULL},
  {"llama-3.3-70b", NULL},
  {"gpt-4-5", NULL},
  {"", NULL},
};

static void test_match_defaults(void **state)
{
  (void)state;
  for (size_t i = 0; i < sizeof match_cases / sizeof match_cases[0]; i++) {
    const char *got = gw_prices_match(DEF, match_cases[i].name, NULL, day("2026-11-01"), NULL);
    if ((got == NULL) != (match_cases[i].want == NULL) || (got && strcmp(got, match_cases[i].want)))
      fail_msg("\"%s\": got %s, want %s", match_cases[i].name, got ? got : "(none)",
               match_cases[i].want ? match_cases[i].want : "(none)");
  }
}

/* Overlapping names are kept apart by the patterns themselves, not by the tie-break: at most one shipped
 * entry matches any name. */
static void test_defaults_do_not_overlap(void **state)
{
  (void)state;
  pcre2_match_data *md = pcre2_match_data_create(1, NULL);
  for (size_t i = 0; i < sizeof match_cases / sizeof match_cases[0]; i++) {
    const char *name = match_cases[i].name;
    int hits = 0;
    for (size_t k = 0; k < DEF->n; k++)
      hits += pcre2_match(DEF->v[k].re, (PCRE2_SPTR)name, strlen(name), 0, 0, md, NULL) >= 0;
    if (hits != (match_cases[i].want ? 1 : 0))
      fail_msg("\"%s\" matches %d shipped entries", name, hits);
  }
  pcre2_match_data_free(md);
}

/* Issue 14, item 7: the 200 model ids of the major providers (tests/fixtures/cost/top-200-models.txt, how
 * it was assembled is in its header) are all priced, each by the entries of exactly one shipped id. */
static void test_top_models_priced(void **state)
{
  (void)state;
  char *text = tu_read_file("cost/top-200-models.txt", NULL);
  pcre2_match_data *md = pcre2_match_data_create(1, NULL);
  int n = 0, unpriced = 0;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    if (line[0] == '#' || !line[0])
      continue;
    n++;
    int hits = 0; /* entries of other ids (one id may have several entries: its price history) */
    const char *first = NULL;
    for (size_t k = 0; k < DEF->n; k++)
      if (pcre2_match(DEF->v[k].re, (PCRE2_SPTR)line, strlen(line), 0, 0, md, NULL) >= 0 &&
          (!first || strcmp(first, DEF->v[k].id))) {
        hits++;
        first = first ? first : DEF->v[k].id;
      }
    if (!gw_prices_match(DEF, line, NULL, 0, NULL)) {
      print_error("unpriced: %s\n", line);
      unpriced++;
    } else if (hits != 1) {
      print_error("%s matches %d shipped entries\n", line, hits);
      unpriced++;
    }
  }
  pcre2_match_data_free(md);
  free(text);
  assert_int_equal(n, 200);
  assert_int_equal(unpriced, 0);
}

/* ---- user files ---- */

static void test_valid_from(void **state)
{
  (void)state;
  const char *pid = NULL;
  assert_null(gw_prices_match(USR, "acme-llm", NULL, day("2024-12-31"), &pid));
  assert_null(pid);
  assert_string_equal(gw_prices_match(USR, "acme-llm", NULL, day("2025-06-01"), &pid), "acme-llm");
  assert_string_equal(pid, "acme-llm@2025-01-01/acme-2026-12");
  assert_string_equal(gw_prices_match(USR, "acme-llm-2", NULL, day("2026-01-01") + 1, &pid), "acme-llm");
  assert_string_equal(pid, "acme-llm@2026-01-01/acme-2026-12");
  /* a cache hit still honours the start time */
  assert_string_equal(gw_prices_match(USR, "acme-llm-2", NULL, day("2025-03-01"), &pid), "acme-llm");
  assert_string_equal(pid, "acme-llm@2025-01-01/acme-2026-12");

  struct gw_record r[2];
  memset(r, 0, sizeof r);
  for (int i = 0; i < 2; i++) {
    r[i].request_model = "acme-llm";
    r[i].input_tokens = (struct gw_opt_i64){1000000, true};
    r[i].output_tokens = (struct gw_opt_i64){1000000, true};
  }
  r[0].start_ns = day("2025-12-31");
  r[1].start_ns = day("2026-01-02");
  gw_cost_apply(USR, r, 2);
  assert_int_equal(r[0].total_cost_nusd.v, 3000000000);
  assert_int_equal(r[1].total_cost_nusd.v, 1500000000);
}

static void test_user_merge(void **state)
{
  (void)state;
  const char *pid = NULL;
  /* replaced: same id and valid_from */
  assert_string_equal(gw_prices_match(USR, "gpt-4o-2024-08-06", NULL, 0, &pid), "gpt-4o");
  assert_string_equal(pid, "gpt-4o@2024-08-06/acme-2026-12");
  assert_int_equal(gw_prices_count(USR), gw_prices_count(DEF) + 6);
  /* untouched defaults keep their own version in price_id */
  assert_string_equal(gw_prices_match(USR, "gpt-4o-mini", NULL, 0, &pid), "gpt-4o-mini");
  assert_string_equal(pid, "gpt-4o-mini@2024-07-18/defaults-2026-11");
  /* priority beats the shipped, more specific, entries */
  assert_string_equal(gw_prices_match(USR, "claude-opus-4-1", NULL, 0, NULL), "negotiated-opus");
  assert_string_equal(gw_prices_match(DEF, "claude-opus-4-1", NULL, 0, NULL), "claude-opus-4-1");
  /* provider narrows only when the entry names one */
  assert_string_equal(gw_prices_match(USR, "acme-hosted", "azure.ai.openai", 0, NULL), "acme-azure-only");
  assert_string_equal(gw_prices_match(USR, "acme-hosted", NULL, 0, NULL), "acme-azure-only");
  assert_null(gw_prices_match(USR, "acme-hosted", "openai", 0, NULL));
  /* default entries name no provider: a Claude model through an OpenAI-style proxy is still priced */
  assert_string_equal(gw_prices_match(USR, "claude-sonnet-4", "openai", 0, NULL), "claude-sonnet-4");

  struct gw_record r = {0};
  r.request_model = "gpt-4o";
  r.input_tokens = (struct gw_opt_i64){1000, true};
  r.output_tokens = (struct gw_opt_i64){500, true};
  gw_cost_apply(USR, &r, 1);
  assert_int_equal(r.total_cost_nusd.v, 2000000 + 4000000);
}

static void test_bad_files(void **state)
{
  (void)state;
  static const struct {
    const char *file, *want; /* want: the message after "<path>" */
  } cases[] = {
    {"bad_regex.yaml", ":4: models[0].pattern: bad pattern at offset 9: missing closing parenthesis"},
    {"bad_number.yaml", ":10: models[1].output: bad number \"2,50\" (want USD per 1M tokens, at most 6 decimals)"},
    {"bad_precision.yaml",
     ":4: models[0].input: bad number \"0.0000001\" (want USD per 1M tokens, at most 6 decimals)"},
    {"bad_unknown_key.yaml", ":6: models[0].ouptut: unknown key (allowed: id, pattern, provider, valid_from, source, "
                             "taken, priority, input, output, cache_read, cache_write, cache_write_1h, reasoning, "
                             "long_context, tiers)"},
    {"bad_missing_input.yaml", ":3: models[0].input: missing (USD per 1M tokens)"},
    {"bad_date.yaml", ":5: models[0].valid_from: bad date \"2025-02-30\" (want YYYY-MM-DD)"},
    {"bad_tier.yaml", ":8: models[0].tiers.turbo: unknown tier (allowed: batch, flex, priority)"},
    {"bad_duplicate.yaml", ": models[1]: duplicate entry twice@2025-01-01 (also models[0])"},
    {"bad_syntax.yaml", ":5: not valid YAML: did not find expected ',' or ']'"},
    {"bad_litellm_number.json",
     ": \"gpt-x\".input_cost_per_token: bad number \"cheap\" (want USD per token, not negative)"},
    {"bad_litellm_string.json", /* LiteLLM's prices are JSON numbers; Langfuse's may be strings */
     ": \"gpt-y\".input_cost_per_token: bad number \"0.000001\" (want USD per token, not negative)"},
    {"bad_litellm_syntax.json", ":4: not valid JSON: object property name separator ':' expected"},
    {"bad_langfuse_number.json",
     ": \"neg\".prices.output: bad number \"-0.000001\" (want USD per unit, not negative)"},
    {"missing.yaml", ": cannot open: No such file or directory"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct gw_err err = {0};
    char want[512];
    const char *path = fx(cases[i].file);
    snprintf(want, sizeof want, "%s%s", path, cases[i].want);
    struct gw_prices *p = gw_prices_load(NULL, path, &err);
    if (p) {
      gw_prices_destroy(p);
      fail_msg("%s loaded", cases[i].file);
    }
    assert_int_equal(err.rc, GW_ERR(CONFIG));
    if (strcmp(err.msg, want))
      fail_msg("%s:\n got: %s\nwant: %s", cases[i].file, err.msg, want);
  }
  /* the defaults path is checked as well */
  struct gw_err err = {0};
  assert_null(gw_prices_load(fx("bad_regex.yaml"), NULL, &err));
  assert_non_null(strstr(err.msg, "bad pattern"));
}

/* ---- LiteLLM ---- */

static void test_litellm(void **state)
{
  (void)state;
  const char *pid = NULL;
  assert_string_equal(gw_prices_version(LIT), "litellm_sample");
  /* 8 keys with token prices; sample_spec and the per-pixel image model are skipped */
  assert_int_equal(gw_prices_count(LIT), gw_prices_count(DEF) + 8);
  assert_null(gw_prices_match(LIT, "sample_spec", NULL, 0, NULL));
  assert_null(gw_prices_match(LIT, "dall-e-3", NULL, 0, NULL));
  /* a name equal to a LiteLLM key takes that key over the shipped entry */
  assert_string_equal(gw_prices_match(LIT, "gpt-4o", NULL, 0, &pid), "gpt-4o");
  assert_string_equal(pid, "gpt-4o/litellm_sample");
  assert_string_equal(gw_prices_match(LIT, "openai/gpt-4o", NULL, 0, &pid), "gpt-4o");
  assert_string_equal(pid, "gpt-4o/litellm_sample");
  /* exact key first; a bare name takes a prefixed key */
  assert_string_equal(gw_prices_match(LIT, "us.anthropic.claude-sonnet-4-20250514-v1:0", NULL, 0, NULL),
                      "us.anthropic.claude-sonnet-4-20250514-v1:0");
  assert_string_equal(gw_prices_match(LIT, "claude-sonnet-4-20250514", NULL, 0, NULL), "claude-sonnet-4-20250514");
  assert_string_equal(gw_prices_match(LIT, "vertex_ai/gemini-1.5-flash", NULL, 0, NULL), "vertex_ai/gemini-1.5-flash");
  assert_string_equal(gw_prices_match(LIT, "gemini/gemini-1.5-flash", NULL, 0, NULL), "gemini/gemini-1.5-flash");
  assert_string_equal(gw_prices_match(LIT, "mistral-small-latest", NULL, 0, NULL), "mistral/mistral-small-latest");
  /* a name with a different prefix is not taken by a prefixed key */
  assert_null(gw_prices_match(LIT, "groq/mistral-small-latest", NULL, 0, NULL));
  /* regex metacharacters in keys are literal */
  assert_null(gw_prices_match(LIT, "us.anthropic.claude-sonnet-4-20250514-v1X0", NULL, 0, NULL));
  assert_string_equal(gw_prices_match(LIT, "gpt-4o-2024-08-06", NULL, 0, NULL), "gpt-4o"); /* shipped entry */
}

/* Langfuse's own model-price format (issue 14, item 7): tiers, usage-type names, embeddings priced as
 * total, an older entry with flat prices and a start date; a bad pattern names the file and the model. */
static void test_langfuse_prices(void **state)
{
  (void)state;
  assert_non_null(LFP);
  const char *pid = NULL;
  assert_string_equal(gw_prices_version(LFP), "langfuse_sample");
  assert_int_equal(gw_prices_count(LFP), gw_prices_count(DEF) + 4);
  assert_string_equal(gw_prices_match(LFP, "gpt-4o", NULL, 0, &pid), "gpt-4o");
  assert_string_equal(pid, "gpt-4o/langfuse_sample"); /* the user's entry comes first */
  assert_string_equal(gw_prices_match(LFP, "eu.anthropic.claude-sonnet-4-5-20250929-v1:0", NULL, 0, &pid), "claude-sonnet-4-5");
  assert_string_equal(pid, "claude-sonnet-4-5/langfuse_sample");
  assert_null(gw_prices_match(LFP, "house-model", NULL, day("2025-12-31"), NULL)); /* before its startDate */
  assert_string_equal(gw_prices_match(LFP, "house-model-v2", NULL, day("2026-02-01"), &pid), "house-model");
  assert_string_equal(pid, "house-model@2026-01-01/langfuse_sample");
  struct gw_err err = {0};
  struct gw_prices *bad = gw_prices_load(NULL, fx("bad_langfuse_pattern.json"), &err);
  assert_null(bad);
  assert_non_null(strstr(err.msg, "bad_langfuse_pattern.json: \"broken\".matchPattern: "));
}

/* ---- known costs ---- */

struct cost_case {
  const char *what;
  struct gw_prices **table;
  const char *model, *tier;
  int64_t in, out, cr, cw, rs;
  int64_t want_in, want_out, want_total;
  const char *want_id;
};

static struct gw_opt_i64 opt(int64_t v) { return v == NONE ? (struct gw_opt_i64){0} : (struct gw_opt_i64){v, true}; }

static const struct cost_case cost_cases[] = {
  {"gpt-4o 1000/500 = $0.0075", &DEF, "gpt-4o", NULL, 1000, 500, NONE, NONE, NONE, 2500000, 5000000, 7500000, "gpt-4o"},
  {"gpt-4o cache read at its own rate", &DEF, "gpt-4o-2024-08-06", NULL, 1000, 0, 400, NONE, NONE, 2000000, 0, 2000000,
   "gpt-4o"},
  {"claude cache read + 5m write", &DEF, "claude-sonnet-4-20250514", NULL, 10000, 1000, 2000, 3000, NONE, 26850000,
   15000000, 41850000, "claude-sonnet-4"},
  {"claude-sonnet-4 at 200k: base rates", &DEF, "claude-sonnet-4", NULL, 200000, 1000, NONE, NONE, NONE, 600000000,
   15000000, 615000000, "claude-sonnet-4"},
  {"claude-sonnet-4 above 200k: whole request", &DEF, "us.anthropic.claude-sonnet-4-20250514-v1:0", NULL, 250000, 1000,
   100000, NONE, NONE, 960000000, 22500000, 982500000, "claude-sonnet-4"},
  {"gemini-1.5-pro above 128k", &DEF, "gemini-1.5-pro", NULL, 130000, 100, NONE, NONE, NONE, 325000000, 1000000,
   326000000, "gemini-1.5-pro"},
  {"gpt-5 flex", &DEF, "gpt-5", "flex", 10000, 2000, NONE, NONE, NONE, 6250000, 10000000, 16250000, "gpt-5"},
  {"gpt-5 priority", &DEF, "gpt-5", "priority", 10000, 2000, NONE, NONE, NONE, 25000000, 40000000, 65000000, "gpt-5"},
  {"gpt-5 default tier", &DEF, "gpt-5", "default", 10000, 2000, NONE, NONE, NONE, 12500000, 20000000, 32500000,
   "gpt-5"},
  {"gpt-5 flex keeps the base cache rate", &DEF, "gpt-5", "flex", 10000, 0, 8000, NONE, NONE, 2250000, 0, 2250000,
   "gpt-5"},
  {"embeddings batch: tier without output", &DEF, "text-embedding-3-large", "batch", 1000000, 0, NONE, NONE, NONE,
   65000000, 0, 65000000, "text-embedding-3-large"},
  {"gpt-4o-mini has no flex tier", &DEF, "gpt-4o-mini", "flex", 1000000, NONE, NONE, NONE, NONE, 150000000, NONE,
   150000000, "gpt-4o-mini"},
  {"o3 reasoning inside output, output rate", &DEF, "o3", NULL, 100, 1000, NONE, NONE, 800, 200000, 8000000, 8200000,
   "o3"},
  {"reasoning priced apart", &USR, "reasoner-x", NULL, 0, 1000, NONE, NONE, 400, 0, 14000000, 14000000, "reasoner-x"},
  {"reasoning above output is capped", &USR, "reasoner-x", NULL, NONE, 100, NONE, NONE, 500, NONE, 2000000, 2000000,
   "reasoner-x"},
  {"embeddings: no output tokens, no output cost", &DEF, "text-embedding-3-small", NULL, 1000, NONE, NONE, NONE, NONE,
   20000, NONE, 20000, "text-embedding-3-small"},
  {"embeddings: output rate 0", &DEF, "text-embedding-3-small", NULL, 1000, 0, NONE, NONE, NONE, 20000, 0, 20000,
   "text-embedding-3-small"},
  {"sub-nano cache rate", &DEF, "gpt-5-nano", NULL, 1, 0, 1, NONE, NONE, 5, 0, 5, "gpt-5-nano"},
  {"half a nano-USD rounds up", &USR, "tiny", NULL, 1, 1, NONE, NONE, NONE, 1, 2, 3, "tiny"},
  {"deepseek cache write at 0", &DEF, "deepseek-chat", NULL, 1000, 0, NONE, 1000, NONE, 0, 0, 0, "deepseek-chat"},
  {"cache counts above input do not go negative", &DEF, "gpt-4o", NULL, 100, 0, 300, NONE, NONE, 375000, 0, 375000,
   "gpt-4o"},
  {"LiteLLM gpt-4o", &LIT, "gpt-4o", NULL, 1000, 500, NONE, NONE, NONE, 2500000, 5000000, 7500000, "gpt-4o"},
  {"LiteLLM 200k tier", &LIT, "claude-sonnet-4-20250514", NULL, 300000, 1000, NONE, NONE, NONE, 1800000000, 22500000,
   1822500000, "claude-sonnet-4-20250514"},
  {"LiteLLM 128k tier", &LIT, "gemini/gemini-1.5-flash", NULL, 200000, 1000, NONE, NONE, NONE, 30000000, 600000,
   30600000, "gemini/gemini-1.5-flash"},
  {"LiteLLM flex with flex cache", &LIT, "gpt-5", "flex", 10000, 2000, 8000, NONE, NONE, 1750000, 10000000, 11750000,
   "gpt-5"},
  {"LiteLLM bedrock cache write", &LIT, "us.anthropic.claude-sonnet-4-20250514-v1:0", NULL, 1000, 0, NONE, 1000, NONE,
   4125000, 0, 4125000, "us.anthropic.claude-sonnet-4-20250514-v1:0"},
  {"LiteLLM embeddings batches", &LIT, "text-embedding-3-small", "batch", 1000000, 0, NONE, NONE, NONE, 10000000, 0,
   10000000, "text-embedding-3-small"},
  {"Langfuse format: cache read and its 5m write", &LFP, "claude-sonnet-4-5", NULL, 10000, 1000, 2000, 3000, NONE,
   26850000, 15000000, 41850000, "claude-sonnet-4-5"},
  {"Langfuse format: Large Context tier", &LFP, "claude-sonnet-4-5-20250929", NULL, 250000, 1000, 100000, NONE, NONE,
   960000000, 22500000, 982500000, "claude-sonnet-4-5"},
  {"Langfuse format: Fast mode is priority", &LFP, "gpt-4o", "priority", 1000, 1000, NONE, NONE, NONE, 4250000,
   17000000, 21250000, "gpt-4o"},
  {"Langfuse format: cached input", &LFP, "openai/gpt-4o", NULL, 1000, 0, 400, NONE, NONE, 2000000, 0, 2000000, "gpt-4o"},
  {"Langfuse format: embeddings priced as total", &LFP, "text-embedding-3-small", NULL, 1000, NONE, NONE, NONE, NONE,
   20000, NONE, 20000, "text-embedding-3-small"},
  {"Langfuse format: reasoning priced apart", &LFP, "house-model", NULL, 0, 1000, NONE, NONE, 400, 0, 2800000, 2800000,
   "house-model"},
  {"huge counts: exact, no overflow", &DEF, "claude-opus-4", NULL, 1000000000000, 1000000000000, NONE, NONE, NONE,
   15000000000000000, 75000000000000000, 90000000000000000, "claude-opus-4"},
};

static void test_cost_values(void **state)
{
  (void)state;
  for (size_t i = 0; i < sizeof cost_cases / sizeof cost_cases[0]; i++) {
    const struct cost_case *c = &cost_cases[i];
    struct gw_record r = {0};
    r.response_model = c->model;
    r.request_model = "not-this-one";
    r.service_tier = c->tier;
    r.start_ns = day("2026-11-20");
    r.input_tokens = opt(c->in);
    r.output_tokens = opt(c->out);
    r.cache_read_tokens = opt(c->cr);
    r.cache_write_tokens = opt(c->cw);
    r.reasoning_tokens = opt(c->rs);
    gw_cost_apply(*c->table, &r, 1);
    int64_t got[3] = {r.input_cost_nusd.set ? r.input_cost_nusd.v : NONE,
                      r.output_cost_nusd.set ? r.output_cost_nusd.v : NONE,
                      r.total_cost_nusd.set ? r.total_cost_nusd.v : NONE};
    if (got[0] != c->want_in || got[1] != c->want_out || got[2] != c->want_total)
      fail_msg("%s: got %lld/%lld/%lld nano-USD, want %lld/%lld/%lld", c->what, (long long)got[0], (long long)got[1],
               (long long)got[2], (long long)c->want_in, (long long)c->want_out, (long long)c->want_total);
    assert_string_equal(r.cost_source, "computed");
    assert_string_equal(r.model_id, c->want_id);
    assert_non_null(r.price_id);
    assert_false(gw_record_has_flag(&r, GW_FLAG_MODEL_UNPRICED));
  }
}

/* ---- provenance ---- */

static void test_reported_and_missing(void **state)
{
  (void)state;
  struct gw_record r[5];
  memset(r, 0, sizeof r);
  /* 0: priced + reported: computed wins, reported kept */
  r[0].request_model = "gpt-4o";
  r[0].input_tokens = opt(1000);
  r[0].output_tokens = opt(500);
  r[0].reported_cost_nusd = opt(9000000);
  /* 1: unknown model, reported */
  r[1].request_model = "in-house-model";
  r[1].input_tokens = opt(10);
  r[1].reported_cost_nusd = opt(1234);
  /* 2: priced model without tokens: no made-up zero */
  r[2].response_model = "gpt-4o-mini";
  r[2].model_id = "gpt-4o-mini-2024-07-18";
  /* 3: priced model without tokens but reported */
  r[3].request_model = "o3";
  r[3].reported_cost_nusd = opt(42);
  /* 4: an agent span (no model) with a reported cost */
  r[4].reported_cost_nusd = opt(7);
  int64_t unknown = gw_metric_get(GW_M_COST_UNKNOWN);
  gw_cost_apply(DEF, r, 5);
  assert_int_equal(gw_metric_get(GW_M_COST_UNKNOWN), unknown);

  assert_string_equal(r[0].cost_source, "computed");
  assert_int_equal(r[0].total_cost_nusd.v, 7500000);
  assert_int_equal(r[0].reported_cost_nusd.v, 9000000);

  assert_string_equal(r[1].cost_source, "reported");
  assert_int_equal(r[1].total_cost_nusd.v, 1234);
  assert_false(r[1].input_cost_nusd.set);
  assert_false(r[1].output_cost_nusd.set);
  assert_null(r[1].price_id);
  assert_true(gw_record_has_flag(&r[1], GW_FLAG_MODEL_UNPRICED));

  assert_null(r[2].cost_source);
  assert_false(r[2].total_cost_nusd.set);
  assert_false(r[2].input_cost_nusd.set);
  assert_null(r[2].price_id);
  assert_string_equal(r[2].model_id, "gpt-4o-mini");
  assert_false(gw_record_has_flag(&r[2], GW_FLAG_MODEL_UNPRICED));

  assert_string_equal(r[3].cost_source, "reported");
  assert_int_equal(r[3].total_cost_nusd.v, 42);

  assert_string_equal(r[4].cost_source, "reported");
  assert_int_equal(r[4].total_cost_nusd.v, 7);
  assert_int_equal(r[4].flags, 0);
}

/* Run fn with stderr going to a temp file; returns the lines written that contain needle. */
static int stderr_lines(void (*fn)(void *), void *arg, const char *needle)
{
  char path[] = "/tmp/test_cost_stderr_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  fflush(stderr);
  int saved = dup(2);
  dup2(fd, 2);
  fn(arg);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  lseek(fd, 0, SEEK_SET);
  FILE *f = fdopen(fd, "r");
  char line[2048];
  int n = 0;
  while (fgets(line, sizeof line, f))
    n += strstr(line, needle) != NULL;
  fclose(f);
  unlink(path);
  return n;
}

static void price_unknown_batch(void *arg)
{
  struct gw_record *r = arg;
  for (int rep = 0; rep < 3; rep++) {
    for (int i = 0; i < 50; i++) {
      memset(&r[i], 0, sizeof r[i]);
      r[i].request_model = i % 2 ? "mystery-model-1" : "mystery-model-2";
      r[i].input_tokens = opt(10);
      r[i].output_tokens = opt(10);
    }
    gw_cost_apply(USR, r, 50);
  }
}

static void test_unknown_model(void **state)
{
  (void)state;
  struct gw_record r[50];
  int64_t before = gw_metric_get(GW_M_COST_UNKNOWN);
  uint64_t lines_before = gw_prices_unknown_logged(USR);
  int lines = stderr_lines(price_unknown_batch, r, "mystery-model-");
  assert_int_equal(lines, 2); /* one per distinct name, 150 records */
  assert_int_equal(gw_prices_unknown_logged(USR) - lines_before, 2);
  assert_int_equal(gw_metric_get(GW_M_COST_UNKNOWN) - before, 150);
  for (int i = 0; i < 50; i++) {
    assert_true(gw_record_has_flag(&r[i], GW_FLAG_MODEL_UNPRICED));
    assert_false(r[i].total_cost_nusd.set);
    assert_null(r[i].cost_source);
    assert_null(r[i].price_id);
  }
}

/* Many distinct names: the cache and the logged-name set stay bounded, answers stay right. */
static void flood(void *arg)
{
  (void)arg;
  char name[64];
  for (int i = 0; i < 6000; i++) {
    snprintf(name, sizeof name, "flood-%d", i);
    struct gw_record r = {0};
    r.request_model = name;
    r.input_tokens = opt(1);
    gw_cost_apply(USR, &r, 1);
    if (i % 1000 == 0)
      assert_string_equal(gw_prices_match(USR, "gpt-4o-mini", NULL, 0, NULL), "gpt-4o-mini");
  }
}

static void test_bounded(void **state)
{
  (void)state;
  int lines = stderr_lines(flood, NULL, "module=cost");
  assert_true(lines <= GW_COST_LOG_CAP + 1);
  assert_true(USR->nlogged <= GW_COST_LOG_CAP);
  for (int i = 0; i < GW_COST_SHARDS; i++)
    assert_true(USR->shard[i].used <= GW_COST_SHARD_CAP);
  char longname[1000];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  memcpy(longname, "gpt-4o", 6);
  assert_null(gw_prices_match(USR, longname, NULL, 0, NULL));
}

/* Threads share one table: concurrent lookups give the single-threaded answers. */
static void *lookup_thread(void *arg)
{
  intptr_t bad = 0;
  (void)arg;
  for (int i = 0; i < 3000; i++) {
    size_t k = (size_t)i % (sizeof match_cases / sizeof match_cases[0]);
    const char *got = gw_prices_match(DEF, match_cases[k].name, NULL, 0, NULL);
    if ((got == NULL) != (match_cases[k].want == NULL) || (got && strcmp(got, match_cases[k].want)))
      bad++;
  }
  return (void *)bad;
}

static void test_threads(void **state)
{
  (void)state;
  pthread_t t[4];
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&t[i], NULL, lookup_thread, NULL), 0);
  for (int i = 0; i < 4; i++) {
    void *bad;
    pthread_join(t[i], &bad);
    assert_int_equal((intptr_t)bad, 0);
  }
}

/* ---- forwarded span ---- */

static GwKeyValue *kv(const char *key, int type, const char *s, double d)
{
  GwKeyValue *k = gw_arena_calloc(A, sizeof *k);
  GwAnyValue *v = gw_arena_calloc(A, sizeof *v);
  gw_pb_key_value_init(k);
  gw_pb_any_value_init(v);
  k->key = gw_arena_strdup(A, key);
  k->value = v;
  v->value_case = type;
  if (type == GW_AV_STRING)
    v->string_value = gw_arena_strdup(A, s);
  else
    v->double_value = d;
  return k;
}

static const GwAnyValue *attr(const GwSpan *sp, const char *key, int *count)
{
  const GwAnyValue *v = NULL;
  *count = 0;
  for (size_t i = 0; i < sp->n_attributes; i++)
    if (!strcmp(sp->attributes[i]->key, key)) {
      v = sp->attributes[i]->value;
      (*count)++;
    }
  return v;
}

static void test_annotate(void **state)
{
  (void)state;
  GwSpan sp[3];
  struct gw_record r[3];
  memset(r, 0, sizeof r);
  for (int i = 0; i < 3; i++) {
    gw_pb_span_init(&sp[i]);
    r[i].span = &sp[i];
  }
  GwKeyValue *a0[] = {kv("gen_ai.request.model", GW_AV_STRING, "gpt-4o", 0)};
  sp[0].attributes = a0;
  sp[0].n_attributes = 1;
  r[0].request_model = "gpt-4o";
  r[0].input_tokens = opt(1000);
  r[0].output_tokens = opt(500);
  /* the client set gen_ai.usage.cost, and an earlier gateway stamped its own */
  GwKeyValue *a1[] = {kv("gen_ai.usage.cost", GW_AV_DOUBLE, NULL, 0.5),
                      kv("genai_gateway.cost.total_usd", GW_AV_DOUBLE, NULL, 99)};
  sp[1].attributes = a1;
  sp[1].n_attributes = 2;
  r[1].request_model = "in-house";
  r[1].reported_cost_nusd = opt(500000000);
  /* nothing to annotate */
  r[2].request_model = "gpt-4o";
  gw_cost_apply(DEF, r, 3);
  assert_int_equal(gw_cost_annotate_spans(A, r, 3), GW_OK);

  int n;
  const GwAnyValue *v = attr(&sp[0], "genai_gateway.cost.total_usd", &n);
  assert_int_equal(n, 1);
  assert_int_equal(v->value_case, GW_AV_DOUBLE);
  assert_true(v->double_value == 0.0075);
  v = attr(&sp[0], "genai_gateway.cost.input_usd", &n);
  assert_true(v && v->double_value == 0.0025);
  v = attr(&sp[0], "genai_gateway.cost.output_usd", &n);
  assert_true(v && v->double_value == 0.005);
  v = attr(&sp[0], "genai_gateway.cost.price_id", &n);
  assert_string_equal(v->string_value, "gpt-4o@2024-08-06/defaults-2026-11");
  v = attr(&sp[0], "genai_gateway.cost.source", &n);
  assert_string_equal(v->string_value, "computed");
  v = attr(&sp[0], "gen_ai.usage.cost", &n);
  assert_true(v && v->double_value == 0.0075);
  assert_int_equal(sp[0].n_attributes, 7);
  assert_string_equal(sp[0].attributes[0]->key, "gen_ai.request.model");
  assert_null(attr(&sp[0], "genai_gateway.cost.cache_read_usd", &n)); /* no cache tokens: no part */

  v = attr(&sp[1], "gen_ai.usage.cost", &n);
  assert_int_equal(n, 1);
  assert_true(v->double_value == 0.5); /* never overwritten */
  v = attr(&sp[1], "genai_gateway.cost.total_usd", &n);
  assert_int_equal(n, 1);
  assert_true(v->double_value == 0.5);
  v = attr(&sp[1], "genai_gateway.cost.source", &n);
  assert_string_equal(v->string_value, "reported");
  assert_null(attr(&sp[1], "genai_gateway.cost.price_id", &n));
  assert_null(attr(&sp[1], "genai_gateway.cost.input_usd", &n));

  assert_int_equal(sp[2].n_attributes, 0);

  /* The parts priced apart (issue 14, item 5): cache read and write inside input, reasoning inside output. */
  struct gw_record q;
  GwSpan qs;
  gw_pb_span_init(&qs);
  memset(&q, 0, sizeof q);
  q.span = &qs;
  q.request_model = "claude-sonnet-4-5";
  q.input_tokens = opt(1000);
  q.cache_read_tokens = opt(300);
  q.cache_write_tokens = opt(100);
  q.output_tokens = opt(200);
  q.reasoning_tokens = opt(50);
  gw_cost_apply(DEF, &q, 1);
  assert_int_equal(gw_cost_annotate_spans(A, &q, 1), GW_OK);
  assert_int_equal(q.cache_read_cost_nusd.v, 90000);   /* 300 x 0.30 / M */
  assert_int_equal(q.cache_write_cost_nusd.v, 375000); /* 100 x 3.75 / M */
  assert_int_equal(q.reasoning_cost_nusd.v, 750000);   /* 50 x 15 / M: the output rate */
  assert_int_equal(q.input_cost_nusd.v, 600 * 3000 + 90000 + 375000);
  v = attr(&qs, "genai_gateway.cost.cache_read_usd", &n);
  assert_true(v && v->double_value == 0.00009);
  v = attr(&qs, "genai_gateway.cost.cache_write_usd", &n);
  assert_true(v && v->double_value == 0.000375);
  v = attr(&qs, "genai_gateway.cost.reasoning_usd", &n);
  assert_true(v && v->double_value == 0.00075);
}

/* ---- normalize: reported cost and service tier ---- */

static GwTraceRequest *decode_json(const char *json)
{
  struct gw_decode_limits lim = {.max_bytes = 1u << 20, .max_depth = 64};
  struct gw_err err = {0};
  GwTraceRequest *req = NULL;
  char *copy = gw_arena_strdup(A, json);
  if (gw_decode_traces(A, GW_ENC_JSON, copy, strlen(copy), &lim, &req, &err))
    fail_msg("decode: %s", err.msg);
  return req;
}

/* A request of one span "chat" of model, with the extra attributes attrs (OTLP/JSON KeyValues). */
static GwTraceRequest *chat_span(const char *model, const char *attrs)
{
  char json[2048];
  snprintf(json, sizeof json,
           "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\","
           "\"spanId\":\"0102030405060708\",\"name\":\"chat\",\"startTimeUnixNano\":\"1790000000000000000\","
           "\"attributes\":[{\"key\":\"gen_ai.request.model\",\"value\":{\"stringValue\":\"%s\"}},%s]}]}]}]}",
           model, attrs);
  return decode_json(json);
}

static void test_normalize_reported(void **state)
{
  (void)state;
  static const struct {
    const char *attrs;
    int64_t want; /* NONE: not reported */
    const char *tier;
  } cases[] = {
    {"{\"key\":\"gen_ai.usage.cost\",\"value\":{\"doubleValue\":0.0123}}", 12300000, NULL},
    {"{\"key\":\"gen_ai.usage.cost\",\"value\":{\"intValue\":2}}", 2000000000, NULL},
    {"{\"key\":\"gen_ai.usage.cost.amount\",\"value\":{\"stringValue\":\"0.000000123456\"}}", 123, NULL},
    {"{\"key\":\"llm.cost.total\",\"value\":{\"doubleValue\":1e-05}}", 10000, NULL},
    {"{\"key\":\"langfuse.observation.cost_details\",\"value\":{\"stringValue\":\"{\\\"input\\\":0.001,"
     "\\\"output\\\":0.002}\"}}",
     3000000, NULL},
    {"{\"key\":\"langfuse.observation.cost_details\",\"value\":{\"stringValue\":\"{\\\"input\\\":0.001,"
     "\\\"total\\\":0.5}\"}},{\"key\":\"gen_ai.usage.cost\",\"value\":{\"doubleValue\":9}}",
     500000000, NULL},
    {"{\"key\":\"gen_ai.usage.cost\",\"value\":{\"stringValue\":\"lots\"}},"
     "{\"key\":\"llm.cost.total\",\"value\":{\"doubleValue\":0.25}}",
     250000000, NULL},
    {"{\"key\":\"gen_ai.usage.cost\",\"value\":{\"doubleValue\":-1}}", NONE, NULL},
    {"{\"key\":\"openai.request.service_tier\",\"value\":{\"stringValue\":\"auto\"}},"
     "{\"key\":\"openai.response.service_tier\",\"value\":{\"stringValue\":\"flex\"}}",
     NONE, "flex"},
    {"{\"key\":\"gen_ai.openai.request.service_tier\",\"value\":{\"stringValue\":\"priority\"}}", NONE, "priority"},
    {"{\"key\":\"gen_ai.openai.response.service_tier\",\"value\":{\"stringValue\":\"default\"}},"
     "{\"key\":\"openai.request.service_tier\",\"value\":{\"stringValue\":\"flex\"}}",
     NONE, "default"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    GwTraceRequest *req = chat_span("gpt-5", cases[i].attrs);
    struct gw_normalize_result res;
    struct gw_err err = {0};
    assert_int_equal(gw_normalize_traces(req, A, NULL, &res, &err), GW_OK);
    assert_int_equal(res.nrecords, 1);
    struct gw_record *r = &res.records[0];
    assert_ptr_equal(r->span, req->resource_spans[0]->scope_spans[0]->spans[0]);
    int64_t got = r->reported_cost_nusd.set ? r->reported_cost_nusd.v : NONE;
    if (got != cases[i].want)
      fail_msg("case %zu: reported %lld, want %lld", i, (long long)got, (long long)cases[i].want);
    if ((r->service_tier == NULL) != (cases[i].tier == NULL) ||
        (r->service_tier && strcmp(r->service_tier, cases[i].tier)))
      fail_msg("case %zu: tier %s, want %s", i, r->service_tier ? r->service_tier : "NULL",
               cases[i].tier ? cases[i].tier : "NULL");
  }
}

/* Issue 11 item 4: a token count above the int columns (3000000000) was priced as it came (USD 7500 of
 * input for one call) and the row then refused by Postgres. normalize now drops it (tokens_out_of_range)
 * and no cost is computed from what is left: NULL when nothing else is known, the client's own cost when
 * it reported one. */
static void test_issue11_tokens_out_of_range(void **state)
{
  (void)state;
  static const struct {
    const char *attrs;
    int64_t want_total; /* NONE: unknown */
    const char *source;
  } cases[] = {
    {"{\"key\":\"gen_ai.usage.input_tokens\",\"value\":{\"intValue\":\"3000000000\"}},"
     "{\"key\":\"gen_ai.usage.output_tokens\",\"value\":{\"intValue\":\"10\"}}",
     NONE, NULL},
    {"{\"key\":\"gen_ai.usage.input_tokens\",\"value\":{\"intValue\":\"1000\"}},"
     "{\"key\":\"gen_ai.usage.cache_read.input_tokens\",\"value\":{\"intValue\":\"-1\"}}",
     NONE, NULL},
    {"{\"key\":\"gen_ai.usage.input_tokens\",\"value\":{\"intValue\":\"3000000000\"}},"
     "{\"key\":\"gen_ai.usage.cost\",\"value\":{\"doubleValue\":0.5}}",
     500000000, "reported"},
    /* in range: priced as usual (1000 x 2.50 + 500 x 10.00 per 1M) */
    {"{\"key\":\"gen_ai.usage.input_tokens\",\"value\":{\"intValue\":\"1000\"}},"
     "{\"key\":\"gen_ai.usage.output_tokens\",\"value\":{\"intValue\":\"500\"}}",
     7500000, "computed"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    GwTraceRequest *req = chat_span("gpt-4o", cases[i].attrs);
    struct gw_normalize_result res;
    struct gw_err err = {0};
    assert_int_equal(gw_normalize_traces(req, A, NULL, &res, &err), GW_OK);
    struct gw_record *r = &res.records[0];
    gw_cost_apply(DEF, r, 1);
    int64_t total = r->total_cost_nusd.set ? r->total_cost_nusd.v : NONE;
    bool oor = gw_record_has_flag(r, GW_FLAG_TOKENS_OUT_OF_RANGE);
    if (total != cases[i].want_total || (r->cost_source == NULL) != (cases[i].source == NULL) ||
        (r->cost_source && strcmp(r->cost_source, cases[i].source)) || oor != (cases[i].source == NULL ||
                                                                               !strcmp(cases[i].source, "reported")))
      fail_msg("case %zu: total %lld nano-USD (%s), tokens_out_of_range %d", i, (long long)total,
               r->cost_source ? r->cost_source : "NULL", oor);
    if (oor) {
      assert_false(r->input_cost_nusd.set);
      assert_false(r->output_cost_nusd.set);
      assert_null(r->price_id);
      assert_string_equal(r->model_id, "gpt-4o"); /* the model is still known */
      assert_false(gw_record_has_flag(r, GW_FLAG_MODEL_UNPRICED));
    }
  }
}

/* A flex-tier span end to end: normalize, price at the flex rate, stamp the span. */
static void test_pipeline_flex(void **state)
{
  (void)state;
  GwTraceRequest *req = decode_json(
    "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\","
    "\"spanId\":\"0102030405060708\",\"name\":\"chat gpt-5\",\"startTimeUnixNano\":\"1790000000000000000\","
    "\"attributes\":[{\"key\":\"gen_ai.operation.name\",\"value\":{\"stringValue\":\"chat\"}},"
    "{\"key\":\"gen_ai.request.model\",\"value\":{\"stringValue\":\"gpt-5\"}},"
    "{\"key\":\"gen_ai.response.model\",\"value\":{\"stringValue\":\"gpt-5-2025-08-07\"}},"
    "{\"key\":\"openai.response.service_tier\",\"value\":{\"stringValue\":\"flex\"}},"
    "{\"key\":\"gen_ai.usage.input_tokens\",\"value\":{\"intValue\":10000}},"
    "{\"key\":\"gen_ai.usage.output_tokens\",\"value\":{\"intValue\":2000}}]}]}]}]}");
  struct gw_normalize_result res;
  struct gw_err err = {0};
  assert_int_equal(gw_normalize_traces(req, A, NULL, &res, &err), GW_OK);
  gw_cost_apply(DEF, res.records, res.nrecords);
  assert_int_equal(res.records[0].total_cost_nusd.v, 16250000);
  assert_string_equal(res.records[0].model_id, "gpt-5");
  assert_int_equal(gw_cost_annotate_spans(A, res.records, res.nrecords), GW_OK);
  /* the annotated request still packs */
  size_t n = gw_pb_trace_request_size(req);
  uint8_t *buf = gw_arena_alloc(A, n);
  assert_int_equal(gw_pb_trace_request_pack(req, buf), n);
  int c;
  assert_non_null(attr(req->resource_spans[0]->scope_spans[0]->spans[0], "genai_gateway.cost.total_usd", &c));
}

/* A span carrying both semconv's request model and OpenInference's model name (an app instrumented twice,
 * or an OpenInference span enriched by a semconv processor) is priced on the semconv name, as SPEC-FACTS'
 * order says: not on llm.model_name because it fills the response model. */
static void test_both_dialects_priced_on_semconv(void **state)
{
  (void)state;
  GwTraceRequest *req = decode_json(
    "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"0102030405060708090a0b0c0d0e0f11\","
    "\"spanId\":\"0102030405060709\",\"name\":\"chat gpt-4o\",\"startTimeUnixNano\":\"1790000000000000000\","
    "\"attributes\":[{\"key\":\"gen_ai.operation.name\",\"value\":{\"stringValue\":\"chat\"}},"
    "{\"key\":\"gen_ai.request.model\",\"value\":{\"stringValue\":\"gpt-4o\"}},"
    "{\"key\":\"llm.model_name\",\"value\":{\"stringValue\":\"gpt-4o-mini\"}},"
    "{\"key\":\"gen_ai.usage.input_tokens\",\"value\":{\"intValue\":1000}},"
    "{\"key\":\"gen_ai.usage.output_tokens\",\"value\":{\"intValue\":100}}]}]}]}]}");
  struct gw_normalize_result res;
  struct gw_err err = {0};
  assert_int_equal(gw_normalize_traces(req, A, NULL, &res, &err), GW_OK);
  assert_int_equal(res.nrecords, 1);
  gw_cost_apply(DEF, res.records, res.nrecords);
  struct gw_record *r = &res.records[0];
  assert_string_equal(r->cost_source, "computed");
  assert_string_equal(r->model_id, "gpt-4o");
  /* gpt-4o: $2.50 / $10 per million: 1000 x 2.5 + 100 x 10 = 3500 micro-USD (not gpt-4o-mini's 210) */
  assert_int_equal(r->total_cost_nusd.v, 3500000);
}

/* ---- every SDK fixture ---- */

static void test_fixtures(void **state)
{
  (void)state;
  char *index = tu_read_file("sdk/index.jsonl", NULL);
  int priced = 0, files = 0;
  for (char *line = strtok(index, "\n"); line; line = strtok(NULL, "\n")) {
    struct json_object *o = json_tokener_parse(line), *f, *sig;
    assert_non_null(o);
    assert_true(json_object_object_get_ex(o, "file", &f));
    /* the logs bodies (/v1/logs, LogsService) hold no spans */
    if (!json_object_object_get_ex(o, "path", &sig) || strstr(json_object_get_string(sig), "ogs")) {
      json_object_put(o);
      continue;
    }
    char path[512];
    snprintf(path, sizeof path, "sdk/%s", json_object_get_string(f));
    size_t len;
    char *body = tu_read_file(path, &len);
    struct gw_decode_limits lim = {.max_bytes = 64u << 20, .max_depth = 64};
    struct gw_err err = {0};
    GwTraceRequest *req = NULL;
    assert_int_equal(gw_decode_traces(A, strstr(path, ".json") ? GW_ENC_JSON : GW_ENC_PROTOBUF, body, len, &lim,
                                      &req, &err),
                     GW_OK);
    struct gw_normalize_result res;
    assert_int_equal(gw_normalize_traces(req, A, NULL, &res, &err), GW_OK);
    gw_cost_apply(DEF, res.records, res.nrecords);
    for (size_t i = 0; i < res.nrecords; i++) {
      struct gw_record *r = &res.records[i];
      const char *model = r->response_model ? r->response_model : r->request_model;
      if (!model)
        continue;
      if (!gw_prices_match(DEF, model, r->provider, r->start_ns, NULL))
        fail_msg("%s: model %s has no price entry", path, model);
      if (!r->input_tokens.set && !r->output_tokens.set)
        continue;
      if (!r->cost_source || strcmp(r->cost_source, "computed") || !r->total_cost_nusd.set ||
          r->total_cost_nusd.v <= 0 || !r->price_id)
        fail_msg("%s: %s span %s not priced", path, model, r->span_id);
      priced++;
    }
    assert_int_equal(gw_cost_annotate_spans(A, res.records, res.nrecords), GW_OK);
    free(body);
    json_object_put(o);
    files++;
  }
  free(index);
  assert_true(files >= 9);
  assert_true(priced >= 35); /* 39 spans with token counts in the 9 trace bodies */
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_decimal),
    cmocka_unit_test(test_defaults_load),
    cmocka_unit_test(test_match_defaults),
    cmocka_unit_test(test_defaults_do_not_overlap),
    cmocka_unit_test(test_langfuse_prices),
    cmocka_unit_test(test_top_models_priced),
    cmocka_unit_test(test_valid_from),
    cmocka_unit_test(test_user_merge),
    cmocka_unit_test(test_bad_files),
    cmocka_unit_test(test_litellm),
    cmocka_unit_test(test_cost_values),
    cmocka_unit_test(test_reported_and_missing),
    cmocka_unit_test(test_unknown_model),
    cmocka_unit_test(test_bounded),
    cmocka_unit_test(test_threads),
    cmocka_unit_test(test_annotate),
    cmocka_unit_test(test_normalize_reported),
    cmocka_unit_test(test_pipeline_flex),
    cmocka_unit_test(test_both_dialects_priced_on_semconv),
    cmocka_unit_test(test_issue11_tokens_out_of_range),
    cmocka_unit_test(test_fixtures),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
