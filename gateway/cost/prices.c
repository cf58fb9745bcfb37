/*
 * prices.c: loading the price table (DESIGN §4): the shipped prices.yaml, a user file merged over it
 * (YAML, LiteLLM JSON via litellm.c, Langfuse's model JSON via langfuse_prices.c), pattern compilation, and the table's lifetime.
 *
 * Key decisions:
 * - YAML is read with libyaml's document API (the file is small and read once at start); every error
 *   names the file, the line, the key path (models[3].long_context.input) and the reason.
 * - Prices are parsed from their text exactly (gw_decimal_parse): USD per 1M tokens with at most 6
 *   decimals becomes integer pico-USD per token; a value that would lose digits is an error.
 * - Patterns are compiled case-insensitive and JIT-compiled once here; a bad pattern reports pcre2's own
 *   message and offset. The compiled table is read-only afterwards and shared by all threads.
 * - Merge: a user entry with the same id and valid_from as a default replaces it; other entries add.
 *   Each entry keeps the version of the file it came from in its price_id.
 * Leaves to cost.c: matching, the lookup cache and the arithmetic.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/datadir.h"
#include "core/log.h"
#include "cost/cost_int.h"
#include "normalize/normalize.h"

#define MAX_PRICE_FILE (64u << 20)

/* pcre2's JIT code trips memcheck with false "uninitialised value" reports (pcre2build(3): only a
 * --enable-valgrind build avoids them); under valgrind the interpreter answers the same, without them. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND() RUNNING_ON_VALGRIND
#endif
#endif
#ifndef UNDER_VALGRIND
#define UNDER_VALGRIND() 0
#endif

/* ---- table helpers ---- */

struct gw_price_entry *gw_table_add(struct gw_table *t)
{
  if (t->n == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 64;
    t->v = gw_realloc(t->v, t->cap * sizeof *t->v);
  }
  struct gw_price_entry *e = &t->v[t->n++];
  memset(e, 0, sizeof *e);
  return e;
}

void gw_entry_free(struct gw_price_entry *e)
{
  free(e->id);
  free(e->pattern);
  free(e->exact);
  free(e->provider);
  free(e->valid_from_text);
  free(e->price_id);
  pcre2_code_free(e->re);
  memset(e, 0, sizeof *e);
}

void gw_table_free_entries(struct gw_table *t)
{
  for (size_t i = 0; i < t->n; i++)
    gw_entry_free(&t->v[i]);
  free(t->v);
  free(t->version);
  memset(t, 0, sizeof *t);
}

bool gw_prices_parse_date(const char *s, uint64_t *ns)
{
  static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
    return false;
  for (int i = 0; i < 10; i++)
    if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
      return false;
  int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1] || (m == 2 && d == 29 && !leap))
    return false;
  /* days_from_civil (H. Hinnant), years >= 1970 only */
  int64_t yy = y - (m <= 2);
  int64_t era = yy / 400, yoe = yy - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t days = era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
  *ns = (uint64_t)days * 86400ull * 1000000000ull;
  return true;
}

char *gw_prices_basename(const char *path)
{
  const char *b = strrchr(path, '/');
  b = b ? b + 1 : path;
  const char *dot = strrchr(b, '.');
  size_t n = dot && dot > b ? (size_t)(dot - b) : strlen(b);
  char *s = gw_malloc(n + 1);
  memcpy(s, b, n);
  s[n] = 0;
  return s;
}

/* Compile e->pattern (case-insensitive, UTF-8) and JIT it. The caller words the error. */
bool gw_prices_compile(struct gw_price_entry *e, char *why, size_t whylen)
{
  int ec;
  PCRE2_SIZE off;
  e->re = pcre2_compile((PCRE2_SPTR)e->pattern, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS | PCRE2_UTF, &ec, &off, NULL);
  if (!e->re) {
    char msg[160];
    pcre2_get_error_message(ec, (PCRE2_UCHAR *)msg, sizeof msg);
    snprintf(why, whylen, "bad pattern at offset %zu: %s", (size_t)off, msg);
    return false;
  }
  /* No JIT on this CPU or build: the interpreter gives the same answers, only slower. */
  if (!UNDER_VALGRIND())
    (void)pcre2_jit_compile(e->re, PCRE2_JIT_COMPLETE);
  return true;
}

/* ---- YAML ---- */

struct yctx {
  const char *path;
  yaml_document_t *doc;
  struct gw_err *err;
};

static gw_rc yfail(struct yctx *y, const yaml_node_t *at, const char *key, const char *fmt, ...)
  __attribute__((format(printf, 4, 5)));
static gw_rc yfail(struct yctx *y, const yaml_node_t *at, const char *key, const char *fmt, ...)
{
  char why[200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  return gw_err_set(y->err, GW_ERR(CONFIG), "%s:%lu: %s: %s", y->path, at ? (unsigned long)at->start_mark.line + 1 : 0ul,
                    key, why);
}

static const char *scalar(const yaml_node_t *n)
{
  return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static const char *const rate_keys[GW_R__COUNT] = {"input", "output", "cache_read", "cache_write", "cache_write_1h",
                                                    "reasoning"};
static const char *const tier_keys[GW_T__COUNT] = {"batch", "flex", "priority"};

static gw_rc price(struct yctx *y, const yaml_node_t *v, const char *key, int64_t *out)
{
  const char *s = scalar(v);
  if (!s || !gw_decimal_parse(s, strlen(s), 6, GW_DEC_EXACT, out))
    return yfail(y, v, key, "bad number \"%.40s\" (want USD per 1M tokens, at most 6 decimals)", s ? s : "");
  return GW_OK;
}

/* A mapping of rates (and, for long_context, threshold). */
static gw_rc rates_map(struct yctx *y, const yaml_node_t *m, const char *path, struct gw_rates *r,
                       int64_t *threshold)
{
  char key[96];
  if (m->type != YAML_MAPPING_NODE)
    return yfail(y, m, path, "want a mapping of prices");
  for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
    const yaml_node_t *k = yaml_document_get_node(y->doc, p->key), *v = yaml_document_get_node(y->doc, p->value);
    const char *ks = scalar(k);
    snprintf(key, sizeof key, "%s.%s", path, ks ? ks : "?");
    int i = 0;
    while (i < GW_R__COUNT && (!ks || strcmp(ks, rate_keys[i])))
      i++;
    if (i < GW_R__COUNT) {
      if (r->have & (1u << i))
        return yfail(y, k, key, "duplicate key");
      gw_rc rc = price(y, v, key, &r->r[i]);
      if (rc)
        return rc;
      r->have |= 1u << i;
    } else if (threshold && ks && !strcmp(ks, "threshold")) {
      const char *s = scalar(v);
      if (!s || !gw_decimal_parse(s, strlen(s), 0, GW_DEC_EXACT, threshold) || *threshold <= 0)
        return yfail(y, v, key, "bad number \"%.40s\" (want input tokens, a positive integer)", s ? s : "");
    } else {
      return yfail(y, k, key, "unknown key (allowed: input, output, cache_read, cache_write, cache_write_1h, "
                              "reasoning%s)", threshold ? ", threshold" : "");
    }
  }
  return GW_OK;
}

static gw_rc str_value(struct yctx *y, const yaml_node_t *v, const char *key, char **out)
{
  const char *s = scalar(v);
  if (!s || !s[0])
    return yfail(y, v, key, "want a non-empty string");
  if (*out)
    return yfail(y, v, key, "duplicate key");
  *out = gw_strdup(s);
  return GW_OK;
}

static gw_rc entry(struct yctx *y, const yaml_node_t *m, size_t idx, bool user, struct gw_table *t)
{
  char path[32], key[96];
  snprintf(path, sizeof path, "models[%zu]", idx);
  if (m->type != YAML_MAPPING_NODE)
    return yfail(y, m, path, "want a mapping");
  struct gw_price_entry *e = gw_table_add(t);
  e->user = user;
  gw_rc rc = GW_OK;
  char *source = NULL, *taken = NULL;
  bool have_prio = false;
  for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top && !rc; p++) {
    const yaml_node_t *k = yaml_document_get_node(y->doc, p->key), *v = yaml_document_get_node(y->doc, p->value);
    const char *ks = scalar(k) ? scalar(k) : "?";
    snprintf(key, sizeof key, "%s.%s", path, ks);
    int ri = 0;
    while (ri < GW_R__COUNT && strcmp(ks, rate_keys[ri]))
      ri++;
    if (ri < GW_R__COUNT) {
      if (e->base.have & (1u << ri))
        rc = yfail(y, k, key, "duplicate key");
      else if (!(rc = price(y, v, key, &e->base.r[ri])))
        e->base.have |= 1u << ri;
    } else if (!strcmp(ks, "id")) {
      rc = str_value(y, v, key, &e->id);
    } else if (!strcmp(ks, "pattern")) {
      char why[200];
      if (!(rc = str_value(y, v, key, &e->pattern)) && !gw_prices_compile(e, why, sizeof why))
        rc = yfail(y, v, key, "%s", why);
    } else if (!strcmp(ks, "provider")) {
      rc = str_value(y, v, key, &e->provider);
    } else if (!strcmp(ks, "source")) {
      rc = str_value(y, v, key, &source);
    } else if (!strcmp(ks, "taken")) {
      uint64_t ns;
      if (!(rc = str_value(y, v, key, &taken)) && !gw_prices_parse_date(taken, &ns))
        rc = yfail(y, v, key, "bad date \"%.40s\" (want YYYY-MM-DD)", taken);
    } else if (!strcmp(ks, "valid_from")) {
      if (!(rc = str_value(y, v, key, &e->valid_from_text)) &&
          !gw_prices_parse_date(e->valid_from_text, &e->valid_from_ns))
        rc = yfail(y, v, key, "bad date \"%.40s\" (want YYYY-MM-DD)", e->valid_from_text);
    } else if (!strcmp(ks, "priority")) {
      const char *s = scalar(v);
      bool neg = s && s[0] == '-';
      if (have_prio)
        rc = yfail(y, k, key, "duplicate key");
      else if (!s || !gw_decimal_parse(s + neg, strlen(s + neg), 0, GW_DEC_EXACT, &e->priority) ||
               e->priority > 1000000)
        rc = yfail(y, v, key, "bad number \"%.40s\" (want an integer, higher wins)", s ? s : "");
      if (neg)
        e->priority = -e->priority;
      have_prio = true;
    } else if (!strcmp(ks, "long_context")) {
      e->long_threshold = 200000; /* SPEC-FACTS §6.1: tiers apply above 200k input tokens */
      if (e->long_ctx.have)
        rc = yfail(y, k, key, "duplicate key");
      else if (!(rc = rates_map(y, v, key, &e->long_ctx, &e->long_threshold)) && !e->long_ctx.have)
        rc = yfail(y, v, key, "no prices given");
    } else if (!strcmp(ks, "tiers")) {
      if (v->type != YAML_MAPPING_NODE) {
        rc = yfail(y, v, key, "want a mapping of batch, flex, priority");
        break;
      }
      for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top && !rc; q++) {
        const yaml_node_t *tk = yaml_document_get_node(y->doc, q->key), *tv = yaml_document_get_node(y->doc, q->value);
        const char *ts = scalar(tk) ? scalar(tk) : "?";
        char tkey[128];
        snprintf(tkey, sizeof tkey, "%s.%s", key, ts);
        int ti = 0;
        while (ti < GW_T__COUNT && strcmp(ts, tier_keys[ti]))
          ti++;
        if (ti == GW_T__COUNT)
          rc = yfail(y, tk, tkey, "unknown tier (allowed: batch, flex, priority)");
        else if (e->tier[ti].have)
          rc = yfail(y, tk, tkey, "duplicate key");
        else
          rc = rates_map(y, tv, tkey, &e->tier[ti], NULL);
      }
    } else {
      rc = yfail(y, k, key,
                 "unknown key (allowed: id, pattern, provider, valid_from, source, taken, priority, input, output, "
                 "cache_read, cache_write, cache_write_1h, reasoning, long_context, tiers)");
    }
  }
  free(source);
  free(taken);
  if (rc)
    return rc;
  static const char *const required[] = {"id", "pattern", "input", "output"};
  bool missing[] = {!e->id, !e->pattern, !(e->base.have & (1u << GW_R_INPUT)), !(e->base.have & (1u << GW_R_OUTPUT))};
  for (int i = 0; i < 4; i++)
    if (missing[i]) {
      snprintf(key, sizeof key, "%s.%s", path, required[i]);
      return yfail(y, m, key, "missing%s", i >= 2 ? " (USD per 1M tokens)" : "");
    }
  return GW_OK;
}

gw_rc gw_prices_finish_ids(struct gw_table *t, size_t from, const char *path, struct gw_err *err)
{
  for (size_t i = from; i < t->n; i++) {
    struct gw_price_entry *e = &t->v[i];
    for (size_t j = from; j < i; j++) {
      struct gw_price_entry *o = &t->v[j];
      bool same_from = (!e->valid_from_text && !o->valid_from_text) ||
                       (e->valid_from_text && o->valid_from_text && !strcmp(e->valid_from_text, o->valid_from_text));
      if (!strcmp(e->id, o->id) && same_from)
        return gw_err_set(err, GW_ERR(CONFIG), "%s: models[%zu]: duplicate entry %s@%s (also models[%zu])", path,
                          i - from, e->id, e->valid_from_text ? e->valid_from_text : "-", j - from);
    }
    size_t n = strlen(e->id) + (e->valid_from_text ? strlen(e->valid_from_text) + 1 : 0) + strlen(t->version) + 2;
    e->price_id = gw_malloc(n);
    if (e->valid_from_text)
      snprintf(e->price_id, n, "%s@%s/%s", e->id, e->valid_from_text, t->version);
    else
      snprintf(e->price_id, n, "%s/%s", e->id, t->version);
  }
  return GW_OK;
}

gw_rc gw_prices_read_yaml(const char *path, const char *text, size_t len, bool user, struct gw_table *t,
                          struct gw_err *err)
{
  yaml_parser_t parser;
  yaml_document_t doc;
  struct yctx y = {path, &doc, err};
  gw_rc rc = GW_ERR(CONFIG);
  bool have_doc = false;
  size_t from = t->n;

  yaml_parser_initialize(&parser);
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  if (!yaml_parser_load(&parser, &doc)) {
    gw_err_set(err, rc, "%s:%lu: not valid YAML: %s", path, (unsigned long)parser.problem_mark.line + 1,
               parser.problem ? parser.problem : "parse error");
    goto out;
  }
  have_doc = true;
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  if (!root || root->type != YAML_MAPPING_NODE) {
    rc = yfail(&y, root, "(top)", "want a mapping with version and models");
    goto out;
  }
  const yaml_node_t *models = NULL;
  for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
    const yaml_node_t *k = yaml_document_get_node(&doc, p->key), *v = yaml_document_get_node(&doc, p->value);
    const char *ks = scalar(k) ? scalar(k) : "?";
    if (!strcmp(ks, "version")) {
      free(t->version);
      t->version = NULL;
      if ((rc = str_value(&y, v, "version", &t->version)))
        goto out;
    } else if (!strcmp(ks, "models")) {
      models = v;
    } else {
      rc = yfail(&y, k, ks, "unknown key (allowed: version, models)");
      goto out;
    }
  }
  if (!models || models->type != YAML_SEQUENCE_NODE) {
    rc = yfail(&y, models ? models : root, "models", "want a list of price entries");
    goto out;
  }
  size_t idx = 0;
  for (yaml_node_item_t *it = models->data.sequence.items.start; it < models->data.sequence.items.top; it++, idx++)
    if ((rc = entry(&y, yaml_document_get_node(&doc, *it), idx, user, t)))
      goto out;
  if (!t->version)
    t->version = gw_prices_basename(path);
  rc = gw_prices_finish_ids(t, from, path, err);
out:
  if (have_doc)
    yaml_document_delete(&doc);
  yaml_parser_delete(&parser);
  return rc;
}

/* ---- files, merge, lifetime ---- */

static char *read_file(const char *path, size_t *len, struct gw_err *err)
{
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  if (!f) {
    gw_err_set(err, GW_ERR(CONFIG), "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  size_t cap = 1 << 16, n = 0;
  buf = gw_malloc(cap + 1);
  for (;;) {
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (n < cap) {
      if (ferror(f)) {
        gw_err_set(err, GW_ERR(CONFIG), "%s: read error: %s", path, strerror(errno));
        goto fail;
      }
      break;
    }
    if (cap >= MAX_PRICE_FILE) {
      gw_err_set(err, GW_ERR(CONFIG), "%s: larger than %u MiB", path, MAX_PRICE_FILE >> 20);
      goto fail;
    }
    cap *= 2;
    buf = gw_realloc(buf, cap + 1);
  }
  fclose(f);
  buf[n] = 0;
  *len = n;
  return buf;
fail:
  fclose(f);
  free(buf);
  return NULL;
}

/* 'y' YAML, 'l' LiteLLM (a JSON object), 'f' Langfuse (a JSON array): by the first character, else by a
 * .json name (LiteLLM). */
static char file_kind(const char *path, const char *text)
{
  while (*text == ' ' || *text == '\t' || *text == '\r' || *text == '\n')
    text++;
  if (*text == '[')
    return 'f';
  size_t pl = strlen(path);
  return *text == '{' || (pl > 5 && !strcmp(path + pl - 5, ".json")) ? 'l' : 'y';
}

static gw_rc load_file(const char *path, bool user, struct gw_table *t, struct gw_err *err)
{
  size_t len;
  char *text = read_file(path, &len, err);
  if (!text)
    return GW_ERR(CONFIG);
  char kind = file_kind(path, text);
  gw_rc rc = kind == 'f'   ? gw_prices_read_langfuse(path, text, len, t, err)
             : kind == 'l' ? gw_prices_read_litellm(path, text, len, t, err)
                           : gw_prices_read_yaml(path, text, len, user, t, err);
  free(text);
  return rc;
}

static bool same_key(const struct gw_price_entry *a, const struct gw_price_entry *b)
{
  if (strcmp(a->id, b->id))
    return false;
  if (!a->valid_from_text || !b->valid_from_text)
    return !a->valid_from_text && !b->valid_from_text;
  return !strcmp(a->valid_from_text, b->valid_from_text);
}

struct gw_prices *gw_prices_load(const char *defaults_path, const char *user_path, struct gw_err *err)
{
  struct gw_table def = {0}, usr = {0};
  struct gw_prices *p = NULL;
  char *found = NULL;
  if (!defaults_path)
    defaults_path = found = gw_datadir_find(GW_PRICES_DEFAULT_PATH, "prices.yaml");
  if (load_file(defaults_path, false, &def, err))
    goto out;
  if (user_path && user_path[0]) {
    if (load_file(user_path, true, &usr, err))
      goto out;
    for (size_t i = 0; i < usr.n; i++) {
      struct gw_price_entry *u = &usr.v[i];
      u->user = true;
      size_t j = 0;
      while (j < def.n && !same_key(&def.v[j], u))
        j++;
      struct gw_price_entry *slot = j < def.n ? &def.v[j] : gw_table_add(&def);
      gw_entry_free(slot);
      *slot = *u;
      memset(u, 0, sizeof *u);
    }
    free(def.version);
    def.version = usr.version;
    usr.version = NULL;
  }
  p = gw_calloc(1, sizeof *p);
  p->v = def.v;
  p->n = def.n;
  p->version = def.version;
  memset(&def, 0, sizeof def);
  for (int i = 0; i < GW_COST_SHARDS; i++) {
    pthread_mutex_init(&p->shard[i].mu, NULL);
    p->shard[i].slots = gw_calloc(2 * GW_COST_SHARD_CAP, sizeof *p->shard[i].slots);
  }
  pthread_mutex_init(&p->log_mu, NULL);
  p->logged = gw_calloc(GW_COST_LOG_CAP, sizeof *p->logged);
out:
  gw_table_free_entries(&def);
  gw_table_free_entries(&usr);
  free(found);
  return p;
}

void gw_prices_destroy(struct gw_prices *p)
{
  if (!p)
    return;
  for (size_t i = 0; i < p->n; i++)
    gw_entry_free(&p->v[i]);
  free(p->v);
  free(p->version);
  for (int i = 0; i < GW_COST_SHARDS; i++) {
    for (uint32_t j = 0; j < 2 * GW_COST_SHARD_CAP; j++)
      free(p->shard[i].slots[j].key);
    free(p->shard[i].slots);
    pthread_mutex_destroy(&p->shard[i].mu);
  }
  for (uint32_t i = 0; i < p->nlogged; i++)
    free(p->logged[i]);
  free(p->logged);
  pthread_mutex_destroy(&p->log_mu);
  free(p);
}

size_t gw_prices_count(const struct gw_prices *p) { return p ? p->n : 0; }
const char *gw_prices_version(const struct gw_prices *p) { return p ? p->version : NULL; }
