/*
 * simhash_cache.c: the SimHash parts kept between requests (normalize.h, gw_sh_cache).
 *
 * A chat's turns reach the gateway in separate exports, each call resending the system prompt and every
 * earlier turn; the request's own memo (semconv.c, sh_part) only saves what repeats within one request.
 * This cache keeps, across requests, the parts of an input that will be resent (nz_sh_add's history: the
 * messages before the last, and the last too once a chat is under way), each with its text for an exact
 * compare, so a message is tokenized and hashed about once in a conversation rather than once per call.
 *
 * Layout: 16 shards, each a mutex and a table of buckets of 8 ways (a part's key picks its shard and
 * bucket), entries malloc'd (the part, then its text). Bounded by bytes: an entry costs its struct, its
 * text and a malloc header; the tables are counted too. A new entry takes an empty way of its bucket, else
 * one not used since the clock last passed, else the bucket's first; while a shard is over its share, a
 * clock hand walks its ways and evicts what has not been used since its last pass. A look-up compares at
 * most the 8 ways of one bucket, so parts made to share a key (the key samples eight words) cost at most 8
 * compares each, and can only evict each other's entries.
 *
 * The texts are prompt text as received (before redaction), held in memory only, never written anywhere;
 * receivers.simhash_cache_bytes: 0 keeps none.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "normalize/normalize.h"
#include "core/arena.h"
#include "normalize/normalize_int.h"

#define SHC_SHARDS 16
#define SHC_WAYS 8
#define SHC_MALLOC_OVERHEAD 16 /* what malloc adds to an entry, about */

struct shc_ent {
  struct gw_simhash_part part;
  size_t len;
  char text[];
};

struct shc_way {
  struct shc_ent *e;
  uint64_t key;
  bool ref; /* used since the clock last passed */
};

struct shc_shard {
  pthread_mutex_t mu;
  struct shc_way *w; /* nbuckets x SHC_WAYS */
  uint32_t nbuckets; /* a power of two */
  uint32_t hand;     /* the clock: the next way it looks at */
  size_t bytes, budget;
  size_t entries;
  uint64_t hits, misses, evictions;
} __attribute__((aligned(64)));

struct gw_sh_cache {
  struct shc_shard shard[SHC_SHARDS];
};

static size_t ent_cost(size_t len) { return sizeof(struct shc_ent) + len + SHC_MALLOC_OVERHEAD; }

struct gw_sh_cache *gw_sh_cache_create(size_t max_bytes)
{
  /* a table of one way per 512 bytes of the budget (an entry is at least NZ_SH_MEMO_MIN bytes of text and
   * a 344-byte part), counted in the budget */
  size_t share = max_bytes / SHC_SHARDS;
  size_t ways = share / 512, nb = 1;
  while (nb * SHC_WAYS * 2 <= ways)
    nb *= 2;
  size_t table = nb * SHC_WAYS * sizeof(struct shc_way);
  if (!max_bytes || share <= table + ent_cost(NZ_SH_MEMO_MIN))
    return NULL;
  struct gw_sh_cache *c = aligned_alloc(64, sizeof *c);
  if (!c)
    return NULL;
  memset(c, 0, sizeof *c);
  for (int s = 0; s < SHC_SHARDS; s++) {
    struct shc_shard *sh = &c->shard[s];
    sh->w = calloc(nb * SHC_WAYS, sizeof *sh->w);
    if (!sh->w) {
      for (int k = 0; k < s; k++) {
        pthread_mutex_destroy(&c->shard[k].mu);
        free(c->shard[k].w);
      }
      free(c);
      return NULL;
    }
    pthread_mutex_init(&sh->mu, NULL);
    sh->nbuckets = (uint32_t)nb;
    sh->bytes = table;
    sh->budget = share;
  }
  return c;
}

static void evict(struct shc_shard *sh, struct shc_way *w)
{
  sh->bytes -= ent_cost(w->e->len);
  sh->entries--;
  sh->evictions++;
  free(w->e);
  *w = (struct shc_way){0};
}

void gw_sh_cache_clear(struct gw_sh_cache *c)
{
  if (!c)
    return;
  for (int s = 0; s < SHC_SHARDS; s++) {
    struct shc_shard *sh = &c->shard[s];
    pthread_mutex_lock(&sh->mu);
    for (size_t i = 0; i < (size_t)sh->nbuckets * SHC_WAYS; i++)
      if (sh->w[i].e) {
        evict(sh, &sh->w[i]);
        sh->evictions--; /* cleared, not evicted */
      }
    pthread_mutex_unlock(&sh->mu);
  }
}

void gw_sh_cache_destroy(struct gw_sh_cache *c)
{
  if (!c)
    return;
  gw_sh_cache_clear(c);
  for (int s = 0; s < SHC_SHARDS; s++) {
    pthread_mutex_destroy(&c->shard[s].mu);
    free(c->shard[s].w);
  }
  free(c);
}

void gw_sh_cache_stats(struct gw_sh_cache *c, struct gw_sh_cache_stats *st)
{
  memset(st, 0, sizeof *st);
  if (!c)
    return;
  for (int s = 0; s < SHC_SHARDS; s++) {
    struct shc_shard *sh = &c->shard[s];
    pthread_mutex_lock(&sh->mu);
    st->hits += sh->hits;
    st->misses += sh->misses;
    st->evictions += sh->evictions;
    st->bytes += sh->bytes;
    st->entries += sh->entries;
    st->max_bytes += sh->budget;
    pthread_mutex_unlock(&sh->mu);
  }
}

/* The shard and the bucket's first way for key (the shard from the high bits, the bucket from the low). */
static struct shc_shard *shard_of(struct gw_sh_cache *c, uint64_t key) { return &c->shard[key >> 60]; }
static struct shc_way *bucket_of(struct shc_shard *sh, uint64_t key)
{
  return &sh->w[(size_t)(key & (sh->nbuckets - 1)) * SHC_WAYS];
}

static struct shc_way *find(struct shc_way *b, uint64_t key, const char *text, size_t len)
{
  for (int i = 0; i < SHC_WAYS; i++)
    if (b[i].e && b[i].key == key && b[i].e->len == len && !memcmp(b[i].e->text, text, len))
      return &b[i];
  return NULL;
}

bool nz_shc_get(struct gw_sh_cache *c, uint64_t key, const char *text, size_t len, struct gw_simhash_part *out)
{
  struct shc_shard *sh = shard_of(c, key);
  pthread_mutex_lock(&sh->mu);
  struct shc_way *w = find(bucket_of(sh, key), key, text, len);
  if (w) {
    w->ref = true;
    *out = w->e->part;
    sh->hits++;
  } else {
    sh->misses++;
  }
  pthread_mutex_unlock(&sh->mu);
  return w != NULL;
}

void nz_shc_put(struct gw_sh_cache *c, uint64_t key, const char *text, size_t len, const struct gw_simhash_part *p)
{
  struct shc_shard *sh = shard_of(c, key);
  if (ent_cost(len) > sh->budget / 4) /* one part never takes most of a shard */
    return;
  struct shc_ent *e = malloc(sizeof *e + len);
  if (!e)
    return;
  e->part = *p;
  e->len = len;
  memcpy(e->text, text, len);
  pthread_mutex_lock(&sh->mu);
  struct shc_way *b = bucket_of(sh, key);
  if (find(b, key, text, len)) { /* another thread put it meanwhile */
    pthread_mutex_unlock(&sh->mu);
    free(e);
    return;
  }
  struct shc_way *v = NULL;
  for (int i = 0; i < SHC_WAYS && !v; i++)
    if (!b[i].e)
      v = &b[i];
  for (int i = 0; i < SHC_WAYS && !v; i++)
    if (!b[i].ref)
      v = &b[i];
  if (!v)
    v = &b[0];
  if (v->e)
    evict(sh, v);
  *v = (struct shc_way){e, key, false};
  sh->bytes += ent_cost(len);
  sh->entries++;
  /* Over the share: the clock evicts what was not used since its last pass (two passes at most: the first
   * clears every mark it meets). The new entry is never taken. */
  size_t nways = (size_t)sh->nbuckets * SHC_WAYS;
  for (size_t step = 0; sh->bytes > sh->budget && step < 2 * nways; step++) {
    struct shc_way *w = &sh->w[sh->hand];
    sh->hand = (uint32_t)((sh->hand + 1) % nways);
    if (!w->e || w == v)
      continue;
    if (w->ref)
      w->ref = false;
    else
      evict(sh, w);
  }
  pthread_mutex_unlock(&sh->mu);
}

void gw_sh_cache_render(struct gw_sb *out, void *ctx)
{
  struct gw_sh_cache_stats st;
  gw_sh_cache_stats(ctx, &st);
  gw_sb_printf(out,
               "# HELP genai_gateway_simhash_cache_lookups_total Prompt parts looked up in the SimHash cache "
               "kept between requests (receivers.simhash_cache_bytes)\n"
               "# TYPE genai_gateway_simhash_cache_lookups_total counter\n"
               "genai_gateway_simhash_cache_lookups_total{result=\"hit\"} %llu\n"
               "genai_gateway_simhash_cache_lookups_total{result=\"miss\"} %llu\n"
               "# HELP genai_gateway_simhash_cache_evictions_total Parts dropped from the SimHash cache for room\n"
               "# TYPE genai_gateway_simhash_cache_evictions_total counter\n"
               "genai_gateway_simhash_cache_evictions_total %llu\n"
               "# HELP genai_gateway_simhash_cache_bytes Memory the SimHash cache holds (tables included)\n"
               "# TYPE genai_gateway_simhash_cache_bytes gauge\n"
               "genai_gateway_simhash_cache_bytes %zu\n"
               "# HELP genai_gateway_simhash_cache_parts Prompt parts the SimHash cache holds\n"
               "# TYPE genai_gateway_simhash_cache_parts gauge\n"
               "genai_gateway_simhash_cache_parts %zu\n",
               (unsigned long long)st.hits, (unsigned long long)st.misses, (unsigned long long)st.evictions,
               st.bytes, st.entries);
}
