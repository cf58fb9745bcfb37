/*
 * cost_int.h: the price table's internals, shared by prices.c (YAML, merge, compile), litellm.c (JSON)
 * and cost.c (matching, cache, computation). Not a public interface.
 */
#ifndef GW_COST_INT_H
#define GW_COST_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>

#include "cost/cost.h"

/* The rates an entry can give; bit i of gw_rates.have says rate i is set. */
enum gw_rate { GW_R_INPUT, GW_R_OUTPUT, GW_R_CACHE_READ, GW_R_CACHE_WRITE, GW_R_CACHE_WRITE_1H, GW_R_REASONING,
               GW_R__COUNT };
/* Service tiers with their own rates (openai.*.service_tier values). */
enum gw_tier { GW_T_BATCH, GW_T_FLEX, GW_T_PRIORITY, GW_T__COUNT };

struct gw_rates {
  int64_t r[GW_R__COUNT]; /* pico-USD per token (USD per 1M tokens x 10^6) */
  uint32_t have;
};

struct gw_price_entry {
  char *id;       /* canonical model name: model_id */
  char *pattern;  /* pcre2 source, compiled case-insensitive */
  char *exact;    /* LiteLLM: the literal key; a name equal to it beats every other match */
  char *provider; /* NULL: any provider */
  char *valid_from_text; /* "YYYY-MM-DD" or NULL (always in force) */
  char *price_id;        /* "<id>@<valid_from>/<version>" */
  uint64_t valid_from_ns;
  int64_t priority;
  bool user; /* from the user file */
  struct gw_rates base, long_ctx, tier[GW_T__COUNT];
  int64_t long_threshold; /* input tokens above which long_ctx applies (whole request); 0 = none */
  pcre2_code *re;
};

/* A parsed but not yet compiled table, as a loader builds it. */
struct gw_table {
  struct gw_price_entry *v;
  size_t n, cap;
  char *version;
};

/* Growth and free of a table; add_entry returns a zeroed slot. */
struct gw_price_entry *gw_table_add(struct gw_table *t);
void gw_table_free_entries(struct gw_table *t);
void gw_entry_free(struct gw_price_entry *e);

/* Loaders: fill t from one file; on error fill err (CONFIG) naming file, line, key and reason. */
gw_rc gw_prices_read_yaml(const char *path, const char *text, size_t len, bool user, struct gw_table *t,
                          struct gw_err *err);
gw_rc gw_prices_read_litellm(const char *path, const char *text, size_t len, struct gw_table *t,
                             struct gw_err *err);
/* Langfuse's model-price format: a JSON array of {modelName, matchPattern, pricingTiers | prices}. */
gw_rc gw_prices_read_langfuse(const char *path, const char *text, size_t len, struct gw_table *t,
                              struct gw_err *err);

/* For the JSON price files (litellm.c, langfuse_prices.c): a price, USD per token, from the text json-c
 * kept of a number (and of a string when strings_ok) into pico-USD per token, rounded half up past the
 * 12th decimal, never through a double; false when it is no such number or negative. *text: the value's
 * text for the error ("" when it has none). */
struct json_object;
bool gw_prices_json_usd(struct json_object *v, bool strings_ok, int64_t *pico, const char **text);
/* JSON price files leave out a zero output price (embeddings): an entry without one gets 0. */
static inline void gw_prices_default_output(struct gw_price_entry *e)
{
  if (!(e->base.have & (1u << GW_R_OUTPUT))) {
    e->base.have |= 1u << GW_R_OUTPUT;
    e->base.r[GW_R_OUTPUT] = 0;
  }
}

/* "2024-08-06" -> ns since the epoch at 00:00 UTC; false when not a valid date. */
bool gw_prices_parse_date(const char *s, uint64_t *ns);
/* Compile e->pattern (PCRE2_CASELESS, JIT when available); false with pcre2's message and offset in why. */
bool gw_prices_compile(struct gw_price_entry *e, char *why, size_t whylen);
/* Entries t->v[from..]: reject a repeated (id, valid_from) and set price_id from t->version. */
gw_rc gw_prices_finish_ids(struct gw_table *t, size_t from, const char *path, struct gw_err *err);
/* File name without directory and extension, in a malloc'd string. */
char *gw_prices_basename(const char *path);

#define GW_COST_SHARDS 16
#define GW_COST_SHARD_CAP 256 /* cached names per shard: 4096 in all */
#define GW_COST_MAX_CAND 8    /* candidates kept per cached name */
#define GW_COST_MAX_NAME 256  /* longer model names are matched but not cached */
#define GW_COST_LOG_CAP 1024  /* distinct unknown model names logged per table */

struct gw_cache_ent {
  char *key; /* model "\x1f" provider, malloc'd; NULL = empty slot */
  uint32_t hash;
  uint32_t ncand;
  uint32_t cand[GW_COST_MAX_CAND]; /* entry indexes in preference order */
};

struct gw_cache_shard {
  pthread_mutex_t mu;
  struct gw_cache_ent *slots; /* open addressing, 2 x cap slots */
  uint32_t used;
};

struct gw_prices {
  struct gw_price_entry *v;
  size_t n;
  char *version;
  struct gw_cache_shard shard[GW_COST_SHARDS];
  pthread_mutex_t log_mu;
  char **logged; /* unknown names already logged */
  uint32_t nlogged;
  bool log_overflow;
  uint64_t nlog_lines;
};

#endif
