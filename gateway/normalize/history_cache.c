/*
 * history_cache.c: chat history kept between requests (normalize.h, gw_hist_cache).
 *
 * A chat's turns reach the gateway in separate exports, each call resending the system prompt and every
 * earlier turn; the request's own memo (semconv.c, sh_part) and SHA-256 lanes (normalize.c, nz_ph_job) only
 * save what repeats within one request. This cache keeps two kinds of entry across requests, each with its
 * text for an exact compare:
 * - a message's SimHash part (lever 42), for the messages of an input that will be resent (nz_sh_add's
 *   history: the messages before the last, and the last too once a chat is under way), so a message is
 *   tokenized and hashed about once in a conversation rather than once per call;
 * - a prompt's prefix and the SHA-256 state after it (a checkpoint, core/sha256.h), for prompts of a chat
 *   under way: the next call's prompt begins with this one's (all but its closing ']'), so its prompt_hash
 *   resumes there. A look-up tries the prompt's last NZ_PHC_PROBES checkpoints, longest first, each keyed
 *   by the CRC-32 of the prefix and its length, comparing at most four times the prompt's bytes in all.
 *
 * Layout: 16 shards, each a mutex and a table of buckets of 8 ways (an entry's key picks its shard and
 * bucket), entries malloc'd (the value, then the text). Bounded by bytes: an entry costs its struct, its
 * text and a malloc header; the tables are counted too. A new entry takes an empty way of its bucket, else
 * one not used since the clock last passed, else the bucket's first; while a shard is over its share, a
 * clock hand walks its ways and evicts what has not been used since its last pass. A look-up compares at
 * most the 8 ways of one bucket, so entries made to share a key cost at most 8 compares each, and can only
 * evict each other.
 *
 * The texts are prompt text as received (before redaction), held in memory only, never written anywhere;
 * receivers.history_cache_bytes: 0 keeps none.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/crc32.h"
#include "normalize/normalize.h"
#include "normalize/normalize_int.h"

#define HC_SHARDS 16
#define HC_WAYS 8
#define HC_MALLOC_OVERHEAD 16 /* what malloc adds to an entry, about */

enum hc_kind { HC_SIMHASH, HC_PREFIX, HC__KINDS };
static const char *const hc_kind_names[HC__KINDS] = {"simhash", "prompt_hash"};

struct hc_ent {
  size_t len;
  enum hc_kind kind;
  union {
    struct gw_simhash_part part;
    struct gw_sha256_mid mid;
  } v;
  char text[];
};

struct hc_way {
  struct hc_ent *e;
  uint64_t key;
  bool ref; /* used since the clock last passed */
};

struct hc_shard {
  pthread_mutex_t mu;
  struct hc_way *w;  /* nbuckets x HC_WAYS */
  uint32_t nbuckets; /* a power of two */
  uint32_t hand;     /* the clock: the next way it looks at */
  size_t bytes, budget;
  size_t entries[HC__KINDS];
  uint64_t hits[HC__KINDS], misses[HC__KINDS], evictions; /* hits and misses: SimHash look-ups */
  uint64_t compares; /* texts compared in look-ups */
} __attribute__((aligned(64)));

/* Prefix keys held, counted by some of their bits (four counters a way of the tables): a look-up skips a
 * checkpoint whose count is 0 without taking a lock (most of the checkpoints a prompt tries are not kept). */
struct gw_hist_cache {
  struct hc_shard shard[HC_SHARDS];
  _Atomic uint32_t *present; /* present_mask + 1 counts (at most the tables' ways each) */
  size_t present_mask;
  _Atomic uint64_t prefix_hits, prefix_misses; /* prompts resumed, prompts looked up and not */
};

static size_t present_at(const struct gw_hist_cache *c, uint64_t key) { return (size_t)(key >> 20) & c->present_mask; }

static size_t ent_cost(size_t len) { return sizeof(struct hc_ent) + len + HC_MALLOC_OVERHEAD; }

struct gw_hist_cache *gw_hist_cache_create(size_t max_bytes)
{
  /* a table of one way per 512 bytes of the budget (an entry is at least NZ_SH_MEMO_MIN bytes of text and
   * its value), counted in the budget */
  size_t share = max_bytes / HC_SHARDS;
  size_t ways = share / 512, nb = 1;
  while (nb * HC_WAYS * 2 <= ways)
    nb *= 2;
  size_t npresent = 4 * nb * HC_WAYS * HC_SHARDS; /* a power of two */
  size_t table = nb * HC_WAYS * sizeof(struct hc_way) + npresent * sizeof(uint32_t) / HC_SHARDS;
  if (!max_bytes || share <= table + ent_cost(NZ_SH_MEMO_MIN))
    return NULL;
  struct gw_hist_cache *c = aligned_alloc(64, sizeof *c);
  if (!c)
    return NULL;
  memset(c, 0, sizeof *c);
  c->present = calloc(npresent, sizeof *c->present);
  c->present_mask = npresent - 1;
  if (!c->present) {
    free(c);
    return NULL;
  }
  for (int s = 0; s < HC_SHARDS; s++) {
    struct hc_shard *sh = &c->shard[s];
    sh->w = calloc(nb * HC_WAYS, sizeof *sh->w);
    if (!sh->w) {
      for (int k = 0; k < s; k++) {
        pthread_mutex_destroy(&c->shard[k].mu);
        free(c->shard[k].w);
      }
      free(c->present);
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

static void drop(struct gw_hist_cache *c, struct hc_shard *sh, struct hc_way *w)
{
  if (w->e->kind == HC_PREFIX)
    atomic_fetch_sub_explicit(&c->present[present_at(c, w->key)], 1, memory_order_relaxed);
  sh->bytes -= ent_cost(w->e->len);
  sh->entries[w->e->kind]--;
  free(w->e);
  *w = (struct hc_way){0};
}

void gw_hist_cache_clear(struct gw_hist_cache *c)
{
  if (!c)
    return;
  for (int s = 0; s < HC_SHARDS; s++) {
    struct hc_shard *sh = &c->shard[s];
    pthread_mutex_lock(&sh->mu);
    for (size_t i = 0; i < (size_t)sh->nbuckets * HC_WAYS; i++)
      if (sh->w[i].e)
        drop(c, sh, &sh->w[i]);
    pthread_mutex_unlock(&sh->mu);
  }
}

void gw_hist_cache_destroy(struct gw_hist_cache *c)
{
  if (!c)
    return;
  gw_hist_cache_clear(c);
  for (int s = 0; s < HC_SHARDS; s++) {
    pthread_mutex_destroy(&c->shard[s].mu);
    free(c->shard[s].w);
  }
  free(c->present);
  free(c);
}

void gw_hist_cache_stats(struct gw_hist_cache *c, struct gw_hist_cache_stats *st)
{
  memset(st, 0, sizeof *st);
  if (!c)
    return;
  for (int s = 0; s < HC_SHARDS; s++) {
    struct hc_shard *sh = &c->shard[s];
    pthread_mutex_lock(&sh->mu);
    st->hits += sh->hits[HC_SIMHASH];
    st->misses += sh->misses[HC_SIMHASH];
    st->entries += sh->entries[HC_SIMHASH];
    st->prefixes += sh->entries[HC_PREFIX];
    st->evictions += sh->evictions;
    st->compares += sh->compares;
    st->bytes += sh->bytes;
    st->max_bytes += sh->budget;
    pthread_mutex_unlock(&sh->mu);
  }
  st->prefix_hits = atomic_load(&c->prefix_hits);
  st->prefix_misses = atomic_load(&c->prefix_misses);
}

/* The shard and the bucket's first way for key (the shard from the high bits, the bucket from the low). */
static struct hc_shard *shard_of(struct gw_hist_cache *c, uint64_t key) { return &c->shard[key >> 60]; }
static struct hc_way *bucket_of(struct hc_shard *sh, uint64_t key)
{
  return &sh->w[(size_t)(key & (sh->nbuckets - 1)) * HC_WAYS];
}

/* The way holding (kind, key, text) in bucket b, or NULL. budget (NULL: none): bytes left to compare, each
 * text compared counting whole; none compared past it. */
static struct hc_way *find(struct hc_shard *sh, struct hc_way *b, enum hc_kind kind, uint64_t key, const char *text,
                           size_t len, size_t *budget)
{
  for (int i = 0; i < HC_WAYS; i++)
    if (b[i].e && b[i].key == key && b[i].e->kind == kind && b[i].e->len == len) {
      if (budget) {
        if (*budget < len)
          return NULL;
        *budget -= len;
      }
      sh->compares++;
      if (!memcmp(b[i].e->text, text, len))
        return &b[i];
    }
  return NULL;
}

/* The entry for (kind, key, text) copied into *v; a SimHash look-up is counted as a hit or a miss. */
static bool get(struct gw_hist_cache *c, enum hc_kind kind, uint64_t key, const char *text, size_t len, void *v,
                size_t vlen, size_t *budget)
{
  struct hc_shard *sh = shard_of(c, key);
  pthread_mutex_lock(&sh->mu);
  struct hc_way *w = find(sh, bucket_of(sh, key), kind, key, text, len, budget);
  if (w) {
    w->ref = true;
    memcpy(v, &w->e->v, vlen);
    sh->hits[kind] += kind == HC_SIMHASH;
  } else {
    sh->misses[kind] += kind == HC_SIMHASH;
  }
  pthread_mutex_unlock(&sh->mu);
  return w != NULL;
}

static void put(struct gw_hist_cache *c, enum hc_kind kind, uint64_t key, const char *text, size_t len, const void *v,
                size_t vlen)
{
  struct hc_shard *sh = shard_of(c, key);
  if (ent_cost(len) > sh->budget / 4) /* one entry never takes most of a shard */
    return;
  struct hc_ent *e = malloc(sizeof *e + len);
  if (!e)
    return;
  e->len = len;
  e->kind = kind;
  memcpy(&e->v, v, vlen);
  memcpy(e->text, text, len);
  pthread_mutex_lock(&sh->mu);
  struct hc_way *b = bucket_of(sh, key);
  if (find(sh, b, kind, key, text, len, NULL)) { /* another thread put it meanwhile */
    pthread_mutex_unlock(&sh->mu);
    free(e);
    return;
  }
  struct hc_way *nw = NULL;
  for (int i = 0; i < HC_WAYS && !nw; i++)
    if (!b[i].e)
      nw = &b[i];
  for (int i = 0; i < HC_WAYS && !nw; i++)
    if (!b[i].ref)
      nw = &b[i];
  if (!nw)
    nw = &b[0];
  if (nw->e) {
    drop(c, sh, nw);
    sh->evictions++;
  }
  *nw = (struct hc_way){e, key, false};
  sh->bytes += ent_cost(len);
  sh->entries[kind]++;
  if (kind == HC_PREFIX)
    atomic_fetch_add_explicit(&c->present[present_at(c, key)], 1, memory_order_relaxed);
  /* Over the share: the clock evicts what was not used since its last pass (two passes at most: the first
   * clears every mark it meets). The new entry is never taken. */
  size_t nways = (size_t)sh->nbuckets * HC_WAYS;
  for (size_t step = 0; sh->bytes > sh->budget && step < 2 * nways; step++) {
    struct hc_way *w = &sh->w[sh->hand];
    sh->hand = (uint32_t)((sh->hand + 1) % nways);
    if (!w->e || w == nw)
      continue;
    if (w->ref) {
      w->ref = false;
    } else {
      drop(c, sh, w);
      sh->evictions++;
    }
  }
  pthread_mutex_unlock(&sh->mu);
}

bool nz_shc_get(struct gw_hist_cache *c, uint64_t key, const char *text, size_t len, struct gw_simhash_part *out)
{
  return get(c, HC_SIMHASH, key, text, len, out, sizeof *out, NULL);
}

void nz_shc_put(struct gw_hist_cache *c, uint64_t key, const char *text, size_t len, const struct gw_simhash_part *p)
{
  put(c, HC_SIMHASH, key, text, len, p, sizeof *p);
}

/* A prefix's key: its CRC-32 and its checkpoints, mixed (fmix64) so that shard and bucket bits both vary. */
static uint64_t prefix_key(uint32_t crc, size_t k)
{
  uint64_t h = (uint64_t)crc << 32 ^ (uint64_t)k ^ 0x9e3779b97f4a7c15ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  return h ^ (h >> 33);
}

size_t nz_phc_get(struct gw_hist_cache *c, const char *p, size_t n, size_t kmin, struct gw_sha256_mid *st)
{
  size_t kmax = n / GW_SHA256_CK;
  if (kmax < kmin || kmax < 1)
    return 0;
  size_t lo = kmax >= NZ_PHC_PROBES ? kmax - NZ_PHC_PROBES + 1 : 1;
  if (lo < kmin)
    lo = kmin;
  /* the CRC of each prefix tried: that of p[0, lo) once, then one checkpoint more at a time */
  uint32_t crc[NZ_PHC_PROBES];
  uint32_t x = gw_crc32(0, p, (lo - 1) * GW_SHA256_CK);
  for (size_t k = lo; k <= kmax; k++)
    crc[k - lo] = x = gw_crc32(x, p + (k - 1) * GW_SHA256_CK, GW_SHA256_CK);
  /* Keys are CRCs, which a client can make collide at will: whatever the entries, the texts compared for
   * one prompt stay within four times its length. */
  size_t budget = 4 * n;
  for (size_t k = kmax; k >= lo; k--) {
    uint64_t key = prefix_key(crc[k - lo], k);
    if (atomic_load_explicit(&c->present[present_at(c, key)], memory_order_relaxed) &&
        get(c, HC_PREFIX, key, p, k * GW_SHA256_CK, st, sizeof *st, &budget)) {
      atomic_fetch_add_explicit(&c->prefix_hits, 1, memory_order_relaxed);
      return k;
    }
  }
  atomic_fetch_add_explicit(&c->prefix_misses, 1, memory_order_relaxed);
  return 0;
}

void nz_phc_put(struct gw_hist_cache *c, const char *p, size_t k, const struct gw_sha256_mid *st)
{
  size_t len = k * GW_SHA256_CK;
  put(c, HC_PREFIX, prefix_key(gw_crc32(0, p, len), k), p, len, st, sizeof *st);
}

void gw_hist_cache_render(struct gw_sb *out, void *ctx)
{
  struct gw_hist_cache_stats st;
  gw_hist_cache_stats(ctx, &st);
  const uint64_t hits[HC__KINDS] = {st.hits, st.prefix_hits}, misses[HC__KINDS] = {st.misses, st.prefix_misses};
  const size_t entries[HC__KINDS] = {st.entries, st.prefixes};
  gw_sb_puts(out, "# HELP genai_gateway_history_cache_lookups_total Look-ups in the chat history kept between "
                  "requests (receivers.history_cache_bytes): a message's SimHash, a prompt's prefix for its SHA-256\n"
                  "# TYPE genai_gateway_history_cache_lookups_total counter\n");
  for (int k = 0; k < HC__KINDS; k++)
    gw_sb_printf(out,
                 "genai_gateway_history_cache_lookups_total{kind=\"%s\",result=\"hit\"} %llu\n"
                 "genai_gateway_history_cache_lookups_total{kind=\"%s\",result=\"miss\"} %llu\n",
                 hc_kind_names[k], (unsigned long long)hits[k], hc_kind_names[k], (unsigned long long)misses[k]);
  gw_sb_puts(out, "# HELP genai_gateway_history_cache_entries Entries the history cache holds\n"
                  "# TYPE genai_gateway_history_cache_entries gauge\n");
  for (int k = 0; k < HC__KINDS; k++)
    gw_sb_printf(out, "genai_gateway_history_cache_entries{kind=\"%s\"} %zu\n", hc_kind_names[k], entries[k]);
  gw_sb_printf(out,
               "# HELP genai_gateway_history_cache_evictions_total Entries dropped from the history cache for room\n"
               "# TYPE genai_gateway_history_cache_evictions_total counter\n"
               "genai_gateway_history_cache_evictions_total %llu\n"
               "# HELP genai_gateway_history_cache_bytes Memory the history cache holds (tables included)\n"
               "# TYPE genai_gateway_history_cache_bytes gauge\n"
               "genai_gateway_history_cache_bytes %zu\n",
               (unsigned long long)st.evictions, st.bytes);
}
