/*
 * redact.c: the redactor (DESIGN §5): policy, compilation, key rules, and the scan of one plain string.
 * redact_json.c walks JSON values, redact_apply.c walks requests and records.
 *
 * Key decisions:
 * - Built once at start and immutable afterwards; match data, match context and JIT stack are per thread
 *   (thread-local, freed by a pthread key destructor at thread exit).
 * - Built-ins: one C pass over the value finds candidate start positions (detectors.c, rd_candidate) and
 *   the combined pattern, compiled anchored and JIT'd, runs only there: one pass per value whatever the
 *   number of detectors. PEM private keys are matched in C at their candidates (detectors.c). Then one
 *   unanchored JIT pass per user pattern; user patterns are compiled apart so their group numbers and errors
 *   are their own. Matches are merged left to right, an earlier start winning over an overlapping later one.
 * - Fail closed: a pcre2 match error (match limit, JIT stack) replaces the whole value; so does a request's
 *   budget running out (redact_limits.c).
 * - Actions: a key rule's action, when set, wins over the detector's. Any drop drops the whole value.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redact/redact_int.h"

/* pcre2's JIT looks for a pattern's first characters 16 bytes at a time and may read past the end of
 * the subject inside an aligned block (never past a page): harmless, but valgrind reports the bytes it
 * reads after an arena string as uninitialised (Debian's pcre2 is not built with its valgrind support).
 * Under valgrind, user patterns, the only unanchored scans, run in the interpreter: the same matches. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef UNDER_VALGRIND
#define UNDER_VALGRIND() false
#endif

const char *const gw_redact_default_allow_keys[] = {
  "gen_ai.request.model", "gen_ai.response.model", "gen_ai.system", "gen_ai.provider.name",
  "gen_ai.operation.name", "gen_ai.response.finish_reasons", "llm.model_name", "llm.system", "llm.provider",
  "embedding.model_name", "service.name", "service.version", "telemetry.sdk.*", "openinference.span.kind",
  "traceloop.span.kind", "genai_gateway.*",
};
const size_t gw_redact_default_n_allow_keys = sizeof gw_redact_default_allow_keys / sizeof(char *);
const char *const gw_redact_default_deny_keys[] = {
  "http.request.header.authorization", "http.request.header.cookie", "http.request.header.x-api-key",
  "http.request.header.proxy-authorization", "http.request.header.api-key", "http.response.header.set-cookie",
};
const size_t gw_redact_default_n_deny_keys = sizeof gw_redact_default_deny_keys / sizeof(char *);

#define RD_SEPARATOR '\x1f' /* stands for a match in a rescan: no detector's character class holds it */
#define GLUE_PASSES 8

void gw_redact_policy_defaults(struct gw_redact_policy *p)
{
  memset(p, 0, sizeof *p);
  p->enabled = true;
  for (int i = 0; i < GW_RK__COUNT; i++)
    p->actions[i] = GW_REDACT_MASK;
  p->allow_keys = gw_redact_default_allow_keys;
  p->n_allow_keys = gw_redact_default_n_allow_keys;
  p->deny_keys = gw_redact_default_deny_keys;
  p->n_deny_keys = gw_redact_default_n_deny_keys;
  p->max_content_bytes = 8192;
  p->scan_factor = 32;
  p->cpu_ms_per_mib = 1000;
}

bool gw_redact_action_parse(const char *s, enum gw_redact_action *out)
{
  static const struct { const char *w; enum gw_redact_action a; } words[] = {
    {"mask", GW_REDACT_MASK}, {"hash", GW_REDACT_HASH}, {"drop", GW_REDACT_DROP},
    {"off", GW_REDACT_OFF},   {"none", GW_REDACT_OFF},  {"allow", GW_REDACT_OFF},
  };
  for (size_t i = 0; s && i < sizeof words / sizeof words[0]; i++)
    if (!strcmp(s, words[i].w)) {
      *out = words[i].a;
      return true;
    }
  return false;
}

bool gw_redact_kind_parse(const char *s, enum gw_redact_kind *out)
{
  for (int i = 0; s && i < GW_RK__COUNT; i++)
    if (!strcmp(s, rd_kind_names[i])) {
      *out = (enum gw_redact_kind)i;
      return true;
    }
  return false;
}

const char *gw_redact_kind_name(enum gw_redact_kind k)
{
  return (unsigned)k < GW_RK__COUNT ? rd_kind_names[k] : "unknown";
}

/* ---- per-thread match state ---- */

struct rd_tls {
  pcre2_match_data *md;
  pcre2_match_context *mc;
  pcre2_jit_stack *js;
};

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static _Thread_local struct rd_tls *tls_cache;

static void tls_free(void *p)
{
  struct rd_tls *t = p;
  pcre2_match_data_free(t->md);
  pcre2_match_context_free(t->mc);
  pcre2_jit_stack_free(t->js);
  free(t);
}

static void tls_init(void) { pthread_key_create(&tls_key, tls_free); }

static struct rd_tls *tls_get(void)
{
  if (tls_cache)
    return tls_cache;
  pthread_once(&tls_once, tls_init);
  struct rd_tls *t = gw_calloc(1, sizeof *t);
  t->md = pcre2_match_data_create(32, NULL);
  t->mc = pcre2_match_context_create(NULL);
  t->js = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
  if (!t->md || !t->mc || !t->js) {
    fprintf(stderr, "redact: out of memory creating pcre2 match data\n");
    abort();
  }
  /* Bounds for user patterns that backtrack badly: the value is then replaced whole (fail closed). A
   * pattern that is slow without backtracking is bounded by the request's CPU budget (redact_limits.c). */
  pcre2_set_match_limit(t->mc, 5000000);
  pcre2_set_depth_limit(t->mc, 10000);
  pcre2_set_heap_limit(t->mc, 16 * 1024); /* KiB, the interpreter's backtracking frames */
  pcre2_jit_stack_assign(t->mc, NULL, t->js);
  pthread_setspecific(tls_key, t);
  tls_cache = t;
  return t;
}

/* ---- keys ----
 * Matched without regard to ASCII case: HTTP header names are case-insensitive (RFC 9110 §5.1), and an SDK
 * that records http.request.header.Authorization must meet the deny list all the same. Rules are stored
 * lowercased. */

static unsigned char lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? (unsigned char)(c | 0x20) : c; }

/* ASCII 'A'..'Z' of eight bytes made lowercase, the others kept. */
static uint64_t lower8(uint64_t w)
{
  const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
  uint64_t low7 = w & ~high;
  uint64_t ge_a = low7 + ones * (0x80 - 'A'); /* high bit set where the byte is >= 'A' */
  uint64_t gt_z = low7 + ones * (0x7F - 'Z'); /* ... where it is > 'Z' */
  uint64_t upper = ~w & high & (ge_a ^ gt_z);
  return w | upper >> 2;
}

/* Eight bytes at a time: keys are looked up for every attribute and JSON member a request holds. */
static uint32_t key_hash(const char *s, size_t n)
{
  const uint64_t k = 0x9E3779B97F4A7C15ull;
  uint64_t h = n * k;
  for (; n >= 8; s += 8, n -= 8) {
    uint64_t w;
    memcpy(&w, s, 8);
    h = (h ^ lower8(w)) * k;
  }
  if (n) {
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ lower8(w)) * k;
  }
  return (uint32_t)(h ^ h >> 32);
}

/* a (any case) equals the lowercased rule b over n bytes */
static bool key_eq(const char *a, const char *b, size_t n)
{
  if (!memcmp(a, b, n))
    return true; /* keys are mostly lowercase already */
  for (size_t i = 0; i < n; i++)
    if (lower((unsigned char)a[i]) != (unsigned char)b[i])
      return false;
  return true;
}

const struct rd_key *rd_key_find(const struct gw_redactor *r, const char *key, size_t len)
{
  if (!key || !r->nkeys)
    return NULL;
  if (r->key_hash_size) {
    size_t mask = r->key_hash_size - 1;
    for (size_t i = key_hash(key, len) & mask;; i = (i + 1) & mask) {
      uint32_t e = r->key_hash[i];
      if (!e)
        break;
      const struct rd_key *k = &r->keys[e - 1];
      if (!k->prefix && k->len == len && key_eq(key, k->key, len))
        return k;
    }
  }
  const struct rd_key *best = NULL;
  for (size_t i = 0; i < r->nprefix; i++) {
    const struct rd_key *k = &r->keys[r->prefix_keys[i]];
    if (k->len <= len && key_eq(key, k->key, k->len) && (!best || k->len > best->len))
      best = k;
  }
  return best;
}

struct rd_keyinfo rd_key_info(const struct gw_redactor *r, const char *key, size_t len)
{
  struct rd_keyinfo ki = {NULL, false, false};
  if (key) {
    ki.secret = rd_secret_key_name(key, len);
    ki.auth = rd_auth_key_name(key, len);
    ki.k = rd_key_find(r, key, len);
  }
  return ki;
}

bool rd_key_enter_info(struct rd_ctx *c, const struct rd_keyinfo *ki, bool *allow)
{
  *allow = false;
  c->secret_key = ki->secret;
  c->auth_key = ki->auth;
  const struct rd_key *k = ki->k;
  if (!k)
    return true;
  if (k->deny)
    return false;
  if (k->action == GW_REDACT_OFF)
    *allow = true;
  else if (k->action != GW_REDACT_DEFAULT)
    c->key_action = k->action;
  return true;
}

/*
 * rd_key_info per key met, cached: a request asks it for every attribute key and every member name of the
 * JSON it walks (about 2 600 times for 100 GenAI spans, 5 % of the receive line's instructions), and the
 * same few dozen names come back ("role", "parts", "content", "gen_ai.request.model", ...). Keys of 1 to 32
 * bytes are held whole in four words (the first and last 16, 8 or 4 bytes, which overlap so that length and
 * words say exactly which key it is: no false hit), direct-mapped by a hash of the words, per thread (no
 * lock), with the redactor's id: a reloaded policy is a new redactor, and another redactor's entries never
 * answer, even at the same address. Longer keys are looked up each time.
 */
#define KEY_CACHE 128 /* a power of two */
#define KEY_CACHE_MAX 32

struct key_cache_ent {
  uint64_t id; /* the redactor's; 0: empty */
  uint64_t w[4];
  size_t len;
  struct rd_keyinfo ki;
};
static _Thread_local struct key_cache_ent key_cache[KEY_CACHE];
static _Atomic uint64_t redactor_ids;

/* The key's bytes in four words, len 1..KEY_CACHE_MAX; together with len they give back every byte. */
static inline void key_words(const char *s, size_t n, uint64_t w[4])
{
  if (n >= 16) {
    memcpy(&w[0], s, 8);
    memcpy(&w[1], s + 8, 8);
    memcpy(&w[2], s + n - 16, 8);
    memcpy(&w[3], s + n - 8, 8);
  } else if (n >= 8) {
    memcpy(&w[0], s, 8);
    memcpy(&w[1], s + n - 8, 8);
    w[2] = w[3] = 0;
  } else if (n >= 4) {
    uint32_t a, b;
    memcpy(&a, s, 4);
    memcpy(&b, s + n - 4, 4);
    w[0] = a;
    w[1] = b;
    w[2] = w[3] = 0;
  } else {
    w[0] = (uint64_t)(unsigned char)s[0] | (uint64_t)(unsigned char)s[n / 2] << 8 |
           (uint64_t)(unsigned char)s[n - 1] << 16;
    w[1] = w[2] = w[3] = 0;
  }
}

/* The slot: the words only (keys of one letter repeated share it at every length of a word range, and the
 * entry's length tells them apart). */
static inline unsigned key_slot(const uint64_t w[4])
{
  uint64_t h = (w[0] ^ (w[1] << 21 | w[1] >> 43) ^ (w[2] << 42 | w[2] >> 22) ^ w[3] * 0xC2B2AE3D27D4EB4Full) *
               0x9E3779B97F4A7C15ull;
  return (unsigned)(h >> 57) & (KEY_CACHE - 1);
}

int rd_key_cache_slot(const char *key, size_t len)
{
  if (!key || !len || len > KEY_CACHE_MAX)
    return -1;
  uint64_t w[4];
  key_words(key, len, w);
  return (int)key_slot(w);
}

struct rd_keyinfo rd_key_info_cached(const struct gw_redactor *r, const char *key, size_t len)
{
  if (!key || !len || len > KEY_CACHE_MAX)
    return rd_key_info(r, key, len);
  uint64_t w[4];
  key_words(key, len, w);
  struct key_cache_ent *e = &key_cache[key_slot(w)];
  if (e->id == r->id && e->len == len && e->w[0] == w[0] && e->w[1] == w[1] && e->w[2] == w[2] && e->w[3] == w[3])
    return e->ki;
  struct rd_keyinfo ki = rd_key_info(r, key, len);
  *e = (struct key_cache_ent){.id = r->id, .w = {w[0], w[1], w[2], w[3]}, .len = len, .ki = ki};
  return ki;
}

bool rd_key_enter(struct rd_ctx *c, const char *key, size_t len, bool *allow)
{
  struct rd_keyinfo ki = rd_key_info_cached(c->r, key, len);
  return rd_key_enter_info(c, &ki, allow);
}

/* Add a key with its rule, merging with an earlier entry for the same key: deny beats allow beats rule. */
static void add_key(struct gw_redactor *r, size_t *cap, const char *key, enum gw_redact_action act, bool deny)
{
  if (!key || !key[0])
    return;
  size_t len = strlen(key);
  bool prefix = key[len - 1] == '*'; /* "a.b.*" keeps the dot: it matches "a.b.<anything>" */
  if (prefix)
    len--;
  for (size_t i = 0; i < r->nkeys; i++) {
    struct rd_key *k = &r->keys[i];
    if (k->prefix == prefix && k->len == len && key_eq(key, k->key, len)) {
      if (deny)
        k->deny = true;
      else if (act == GW_REDACT_OFF || k->action != GW_REDACT_OFF)
        k->action = act;
      return;
    }
  }
  if (r->nkeys == *cap) {
    *cap = *cap ? *cap * 2 : 16;
    r->keys = gw_realloc(r->keys, *cap * sizeof *r->keys);
  }
  struct rd_key *k = &r->keys[r->nkeys++];
  k->key = gw_malloc(len + 1);
  for (size_t i = 0; i < len; i++)
    k->key[i] = (char)lower((unsigned char)key[i]);
  k->key[len] = 0;
  k->len = len;
  k->prefix = prefix;
  k->action = act;
  k->deny = deny;
}

static void build_key_hash(struct gw_redactor *r)
{
  size_t size = 16;
  while (size < r->nkeys * 2)
    size *= 2;
  r->key_hash = gw_calloc(size, sizeof *r->key_hash);
  r->key_hash_size = size;
  r->prefix_keys = gw_calloc(r->nkeys ? r->nkeys : 1, sizeof *r->prefix_keys);
  for (size_t i = 0; i < r->nkeys; i++) {
    if (r->keys[i].prefix) {
      r->prefix_keys[r->nprefix++] = (uint32_t)i;
      continue;
    }
    size_t j = key_hash(r->keys[i].key, r->keys[i].len) & (size - 1);
    while (r->key_hash[j])
      j = (j + 1) & (size - 1);
    r->key_hash[j] = (uint32_t)i + 1;
  }
}

/* ---- create / destroy ---- */

static pcre2_code *compile(const char *pat, uint32_t opts, const char *what, struct gw_err *err)
{
  int ec;
  PCRE2_SIZE off;
  pcre2_code *code = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | opts, &ec, &off, NULL);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(ec, msg, sizeof msg);
    gw_err_set(err, GW_ERR(CONFIG), "redaction pattern '%s': %s at offset %zu", what, (char *)msg, (size_t)off);
    return NULL;
  }
  /* JIT may be unavailable on the platform: the interpreter then runs the same pattern, slower. */
  (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  return code;
}

static char *upper_label(const char *name)
{
  size_t n = strlen(name);
  char *s = gw_malloc(n + 1), *w = s;
  for (size_t i = 0; i < n; i++) {
    char ch = name[i];
    *w++ = (char)(ch >= 'a' && ch <= 'z' ? ch - 32 : (ch == ' ' || ch == '-' || ch == '.') ? '_' : ch);
  }
  *w = 0;
  return s;
}

struct gw_redactor *gw_redactor_create(const struct gw_redact_policy *p, struct gw_err *err)
{
  struct gw_redactor *r = gw_calloc(1, sizeof *r);
  r->id = ++redactor_ids; /* atomic: never 0, never reused */
  enum gw_redact_action acts[GW_RK__COUNT];
  bool uses_hash = false;
  char *pat = NULL;

  r->enabled = p->enabled;
  r->max_content = p->max_content_bytes;
  r->scan_factor = p->scan_factor;
  r->cpu_ms_per_mib = p->cpu_ms_per_mib;
  for (int i = 0; i < GW_RK__COUNT; i++) {
    acts[i] = p->actions[i] == GW_REDACT_DEFAULT ? GW_REDACT_MASK : p->actions[i];
    if (acts[i] > GW_REDACT_OFF) {
      gw_err_set(err, GW_ERR(CONFIG), "redaction detector %s: unknown action %d", rd_kind_names[i], (int)acts[i]);
      goto fail;
    }
    uses_hash |= acts[i] == GW_REDACT_HASH;
    r->det[i].name = rd_kind_names[i];
    r->det[i].stem = rd_kind_stems[i];
    r->det[i].mask = gw_malloc(strlen(rd_kind_stems[i]) + 12);
    sprintf((char *)r->det[i].mask, "[%s_REDACTED]", rd_kind_stems[i]);
    r->det[i].action = acts[i];
    r->metric_slot[i] = i;
  }
  r->aws_secret_on = acts[GW_RK_AWS_SECRET] != GW_REDACT_OFF;
  r->pk_on = acts[GW_RK_PRIVATE_KEY] != GW_REDACT_OFF;
  r->user_match_opts = UNDER_VALGRIND() ? PCRE2_NO_JIT : 0;

  if (p->n_patterns > GW_REDACT_MAX_PATTERNS) {
    gw_err_set(err, GW_ERR(CONFIG), "redaction: %zu user patterns, at most %d", p->n_patterns,
               GW_REDACT_MAX_PATTERNS);
    goto fail;
  }
  for (size_t i = 0; i < p->n_patterns; i++) {
    const struct gw_redact_user_pattern *u = &p->patterns[i];
    if (!u->name || !u->name[0] || !u->regex || !u->regex[0]) {
      gw_err_set(err, GW_ERR(CONFIG), "redaction pattern #%zu: needs a name and a regex", i + 1);
      goto fail;
    }
    if (u->action > GW_REDACT_OFF) {
      gw_err_set(err, GW_ERR(CONFIG), "redaction pattern '%s': unknown action %d", u->name, (int)u->action);
      goto fail;
    }
    r->user[i] = compile(u->regex, 0, u->name, err);
    if (!r->user[i])
      goto fail;
    r->nuser = i + 1;
    pcre2_code *watched = rd_watch_pattern(u->regex, r->user[i]);
    if (watched) {
      pcre2_code_free(r->user[i]);
      r->user[i] = watched;
      r->user_watched[i] = true;
    }
    struct rd_det *d = &r->det[GW_RK__COUNT + i];
    d->name = gw_strdup(u->name);
    d->stem = upper_label(u->name);
    if (u->label && u->label[0]) {
      d->mask = gw_strdup(u->label);
    } else {
      char *m = gw_malloc(strlen(d->stem) + 12);
      sprintf(m, "[%s_REDACTED]", d->stem);
      d->mask = m;
    }
    d->action = u->action == GW_REDACT_DEFAULT ? GW_REDACT_MASK : u->action;
    uses_hash |= d->action == GW_REDACT_HASH;
    r->metric_slot[GW_RK__COUNT + i] = rd_metric_slot(u->name);
  }

  size_t cap = 0;
  for (size_t i = 0; i < p->n_key_rules; i++) {
    if (p->key_rules[i].action > GW_REDACT_OFF) {
      gw_err_set(err, GW_ERR(CONFIG), "redaction key rule '%s': unknown action %d",
                 p->key_rules[i].key ? p->key_rules[i].key : "", (int)p->key_rules[i].action);
      goto fail;
    }
    add_key(r, &cap, p->key_rules[i].key, p->key_rules[i].action, false);
    uses_hash |= p->key_rules[i].action == GW_REDACT_HASH;
  }
  for (size_t i = 0; i < p->n_allow_keys; i++)
    add_key(r, &cap, p->allow_keys[i], GW_REDACT_OFF, false);
  for (size_t i = 0; i < p->n_deny_keys; i++)
    add_key(r, &cap, p->deny_keys[i], GW_REDACT_DROP, true);
  build_key_hash(r);
  rd_apply_prepare(r);

  if (p->hmac_key && p->hmac_key[0]) {
    r->hmac_key_len = p->hmac_key_len ? p->hmac_key_len : strlen(p->hmac_key);
    r->hmac_key = gw_malloc(r->hmac_key_len);
    memcpy(r->hmac_key, p->hmac_key, r->hmac_key_len);
  }
  if (p->enabled && uses_hash && !r->hmac_key) {
    gw_err_set(err, GW_ERR(CONFIG),
               "redaction: action 'hash' needs an HMAC key (redaction.hmac_key or GENAI_GW_REDACTION_HMAC_KEY)");
    goto fail;
  }

  pat = rd_builtin_pattern(acts);
  if (pat) {
    r->builtin = compile(pat, PCRE2_ANCHORED, "built-in", err);
    if (!r->builtin)
      goto fail;
  }
  free(pat);
  rd_metrics_init();
  return r;

fail:
  free(pat);
  gw_redactor_destroy(r);
  return NULL;
}

void gw_redactor_destroy(struct gw_redactor *r)
{
  if (!r)
    return;
  pcre2_code_free(r->builtin);
  for (int i = 0; i < GW_RK__COUNT; i++)
    free((char *)r->det[i].mask);
  for (size_t i = 0; i < r->nuser; i++) {
    pcre2_code_free(r->user[i]);
    struct rd_det *d = &r->det[GW_RK__COUNT + i];
    free((char *)d->name);
    free((char *)d->stem);
    free((char *)d->mask);
  }
  for (size_t i = 0; i < r->nkeys; i++)
    free(r->keys[i].key);
  free(r->keys);
  free(r->key_hash);
  free(r->prefix_keys);
  if (r->hmac_key) {
    memset(r->hmac_key, 0, r->hmac_key_len);
    free(r->hmac_key);
  }
  free(r);
}

/* ---- one plain string ---- */

struct rd_match {
  size_t start, end;
  uint32_t det;
};

struct rd_matches {
  struct rd_match local[32], *v;
  size_t n, cap;
  struct gw_arena *a;
  bool oom;
};

/* An empty list in its local array (left unwritten: zeroing it cost a 768-byte memset per value scanned). */
static void matches_init(struct rd_matches *m, struct gw_arena *a)
{
  m->v = m->local;
  m->n = 0;
  m->cap = sizeof m->local / sizeof m->local[0];
  m->a = a;
  m->oom = false;
}

static void push(struct rd_matches *m, size_t start, size_t end, uint32_t det)
{
  if (m->n == m->cap) {
    struct rd_match *nv = gw_arena_alloc(m->a, m->cap * 2 * sizeof *nv);
    if (!nv) {
      m->oom = true;
      return;
    }
    memcpy(nv, m->v, m->n * sizeof *nv);
    m->v = nv;
    m->cap *= 2;
  }
  m->v[m->n++] = (struct rd_match){start, end, det};
}

static size_t next_char(const char *s, size_t len, size_t i)
{
  i++;
  while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
    i++;
  return i;
}

/*
 * One pass over s. user >= 0: user pattern index, an unanchored pcre2 scan (no marks, no validation).
 * user < 0: the built-ins, the anchored pattern tried at each rd_candidate position only.
 * Returns 0, a pcre2 error, or PCRE2_ERROR_CALLOUT when the request's limits stopped it (c->lim says why).
 */
static int scan(struct rd_ctx *c, const pcre2_code *code, int user, const char *s, size_t len, struct rd_tls *t,
                struct rd_matches *m)
{
  const struct gw_redactor *r = c->r;
  size_t off = 0, ticked = 0;
  uint32_t opts = PCRE2_NO_UTF_CHECK | (user >= 0 ? r->user_match_opts : 0);
  struct rd_pk pk;
  rd_pk_init(&pk);
  while (off <= len) {
    if (user < 0) {
      off = rd_next_candidate(s, len, off);
      if (off >= len)
        return 0;
      /* linear, but a long value is still worth a look at the clock and the deadline now and then */
      if (off - ticked >= 65536) {
        ticked = off;
        if (!rd_tick(c))
          return PCRE2_ERROR_CALLOUT;
      }
      /* No pattern branch starts with '-': a candidate there is a private key's header or nothing. */
      if (s[off] == '-') {
        size_t e = r->pk_on ? rd_private_key(&pk, s, len, off) : 0;
        if (e) {
          push(m, off, e, GW_RK_PRIVATE_KEY);
          off = e;
        } else {
          off = next_char(s, len, off);
        }
        continue;
      }
      if (!code) {
        off = next_char(s, len, off);
        continue;
      }
    } else if (!rd_charge(c, 0)) { /* between matches: the clock and the deadline, every few */
      return PCRE2_ERROR_CALLOUT;
    }
    int rc = pcre2_match(code, (PCRE2_SPTR)s, len, off, opts, t->md, t->mc);
    if (rc == PCRE2_ERROR_NOMATCH && user < 0) {
      off = next_char(s, len, off);
      continue;
    }
    if (rc == PCRE2_ERROR_NOMATCH)
      return 0;
    if (rc < 0)
      return rc;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
    size_t st = ov[0], en = ov[1];
    if (en < st || en > len)
      return PCRE2_ERROR_INTERNAL;
    uint32_t det;
    if (user >= 0) {
      det = GW_RK__COUNT + (uint32_t)user;
    } else {
      PCRE2_SPTR mark = pcre2_get_mark(t->md);
      int k = mark ? atoi((const char *)mark) : -1;
      if (k < 0 || k >= GW_RK__COUNT)
        return PCRE2_ERROR_INTERNAL;
      det = (uint32_t)k;
      size_t vst = st;
      if (!rd_validate((enum gw_redact_kind)k, s, &vst, en, c->auth_key)) {
        off = next_char(s, len, off);
        continue;
      }
      /* an email whose local part covers earlier matches absorbs them */
      while (k == GW_RK_EMAIL && m->n && m->v[m->n - 1].end > vst) {
        if (m->v[m->n - 1].start < vst)
          vst = m->v[m->n - 1].start;
        m->n--;
      }
      st = vst;
    }
    if (en == st) {
      off = next_char(s, len, st);
      continue;
    }
    push(m, st, en, det);
    off = en;
  }
  return 0;
}

/* A user pattern's pass: its callout (when it has one) sees this value's context. */
static int scan_user(struct rd_ctx *c, size_t i, const char *s, size_t len, struct rd_tls *t, struct rd_matches *m)
{
  bool watched = c->r->user_watched[i] && c->lim && c->lim->on;
  if (watched)
    pcre2_set_callout(t->mc, rd_callout, c);
  int rc = scan(c, c->r->user[i], (int)i, s, len, t, m);
  if (watched)
    pcre2_set_callout(t->mc, NULL, NULL);
  return rc;
}

static bool before(const struct rd_match *a, const struct rd_match *b)
{
  return a->start < b->start || (a->start == b->start && a->end > b->end);
}

/* m->v[0..mid) and m->v[mid..n) are each in order (start, then longer first): merge them, in linear time
 * (an insertion sort of two long lists was quadratic: 0.8 s for 1 MiB of emails and user-pattern ids). */
static void merge_matches(struct rd_matches *m, size_t mid)
{
  size_t n = m->n;
  if (!mid || mid == n || before(&m->v[mid - 1], &m->v[mid]))
    return;
  struct rd_match *tmp = gw_arena_alloc(m->a, n * sizeof *tmp);
  if (!tmp) {
    m->oom = true;
    return;
  }
  size_t i = 0, j = mid, w = 0;
  while (i < mid && j < n)
    tmp[w++] = before(&m->v[j], &m->v[i]) ? m->v[j++] : m->v[i++];
  while (i < mid)
    tmp[w++] = m->v[i++];
  while (j < n)
    tmp[w++] = m->v[j++];
  memcpy(m->v, tmp, n * sizeof *tmp);
}

/* Overlaps: keep the earliest (then longest) match. */
static void drop_overlaps(struct rd_matches *m)
{
  size_t kept = 0, last_end = 0;
  for (size_t i = 0; i < m->n; i++) {
    if (kept && m->v[i].start < last_end)
      continue;
    m->v[kept++] = m->v[i];
    last_end = m->v[i].end;
  }
  m->n = kept;
}

/* Every detector over s into m (in order, overlaps kept): the built-ins unless skip_builtin, then each user
 * pattern; each pass charged to the request. 0, a pcre2 error (*failed_user: the user pattern, -1: the
 * built-ins), or PCRE2_ERROR_CALLOUT when the request's limits stopped it. */
static int detect(struct rd_ctx *c, const char *s, size_t len, bool skip_builtin, struct rd_matches *m,
                  int *failed_user)
{
  const struct gw_redactor *r = c->r;
  struct rd_tls *t = NULL;
  int rc = 0;
  *failed_user = -1;
  if ((r->builtin || r->pk_on) && !skip_builtin) {
    t = tls_get();
    rc = scan(c, r->builtin, -1, s, len, t, m);
  }
  for (size_t i = 0; !rc && i < r->nuser; i++) {
    if (!t)
      t = tls_get();
    if (!rd_charge(c, len))
      return PCRE2_ERROR_CALLOUT;
    size_t mid = m->n;
    rc = scan_user(c, i, s, len, t, m);
    if (rc)
      *failed_user = (int)i;
    merge_matches(m, mid);
  }
  return rc;
}

static void count(struct rd_ctx *c, uint32_t det)
{
  if (c->st) {
    c->st->total++;
    c->st->kinds[det]++;
  }
}

static enum rd_res plain_scan(struct rd_ctx *c, const char *s, const char *src, size_t len, const char **out,
                              size_t *outlen);

/* ---- the per-request memo ----
 * One request's texts come back several times: a message text is in the request's gen_ai.input.messages,
 * in the record's attributes JSON (as JSON inside a JSON string) and in its prompt_content. What rd_plain
 * makes of a text depends only on the text, the key action and the secret-key context, so the first
 * result is kept (output string, and the counts it added) and replayed for the same text met again.
 * Texts are compared whole (the hash only finds the slot); a slot search is bounded, so a request
 * crafted to collide only loses the memo. Short texts are cheaper to scan than to look up. */
#define MEMO_MIN RD_MEMO_MIN
#define MEMO_PROBES 8

struct memo_ent {
  uint64_t hash;
  const char *s, *out;
  size_t len, outlen;
  uint16_t (*counts)[2]; /* (detector, count) pairs, ncounts of them */
  uint32_t total;        /* what plain_scan added to stats->total */
  uint32_t deny;         /* JSON values: deny-listed members removed */
  size_t longest;        /* JSON values: the longest string cut() was asked about (c->longest) */
  size_t long_sum;       /* JSON values: the long strings' lengths summed (c->long_sum) */
  uint16_t ncounts;
  uint8_t res, ctx;
  uint8_t depth; /* JSON values: the JSON levels walked (c->jmax - c->jdepth) */
};

struct gw_redact_memo {
  struct gw_arena *a;
  struct memo_ent *v;
  size_t cap, n;
  struct rd_limits lim; /* the request's limits (redact_limits.c); off until gw_redact_memo_limit */
  struct rd_span_info *spans; /* open addressing by span pointer (rd_memo_span_add) */
  size_t scap, sn;
  size_t json_hits; /* JSON values replayed (gw_redact_memo_json_hits) */
};

struct rd_limits *rd_memo_limits(struct gw_redact_memo *m) { return m ? &m->lim : NULL; }

static size_t span_slot(const void *span, size_t cap)
{
  uint64_t h = (uint64_t)(uintptr_t)span * 0x9E3779B97F4A7C15ull;
  return (size_t)(h >> 32) & (cap - 1);
}

struct rd_kv_info *rd_memo_span_add(struct gw_redact_memo *m, const void *span, size_t n)
{
  if (!m || !span)
    return NULL;
  if (m->sn + 1 > m->scap / 2) {
    size_t ncap = m->scap ? m->scap * 2 : 64;
    struct rd_span_info *nv = gw_arena_calloc(m->a, ncap * sizeof *nv);
    if (!nv)
      return NULL;
    for (size_t i = 0; i < m->scap; i++)
      if (m->spans[i].span)
        for (size_t j = span_slot(m->spans[i].span, ncap);; j = (j + 1) & (ncap - 1))
          if (!nv[j].span) {
            nv[j] = m->spans[i];
            break;
          }
    m->spans = nv;
    m->scap = ncap;
  }
  struct rd_kv_info *v = gw_arena_calloc(m->a, (n ? n : 1) * sizeof *v);
  if (!v)
    return NULL;
  size_t j = span_slot(span, m->scap);
  while (m->spans[j].span && m->spans[j].span != span)
    j = (j + 1) & (m->scap - 1);
  if (!m->spans[j].span)
    m->sn++;
  m->spans[j] = (struct rd_span_info){span, v, n};
  return v;
}

const struct rd_span_info *rd_memo_span_get(const struct gw_redact_memo *m, const void *span)
{
  if (!m || !m->scap || !span)
    return NULL;
  for (size_t j = span_slot(span, m->scap); m->spans[j].span; j = (j + 1) & (m->scap - 1))
    if (m->spans[j].span == span)
      return &m->spans[j];
  return NULL;
}

size_t gw_redact_memo_json_hits(const struct gw_redact_memo *m) { return m ? m->json_hits : 0; }

struct gw_redact_memo *gw_redact_memo_create(struct gw_arena *a)
{
  struct gw_redact_memo *m = gw_arena_calloc(a, sizeof *m);
  if (m)
    m->a = a;
  return m;
}

/* The slot hash: the length, the context and the first and last 32 bytes (len >= MEMO_MIN > 32), in
 * constant time. Texts alike at both ends share a slot; the whole-text comparison tells them apart. */
static uint64_t memo_hash(const char *s, size_t len, unsigned ctx)
{
  const uint64_t k = 0x9E3779B97F4A7C15ull;
  uint64_t h = (len ^ ((uint64_t)ctx << 56)) * k;
  for (int part = 0; part < 2; part++) {
    const char *p = part ? s + len - 32 : s;
    for (int i = 0; i < 32; i += 8) {
      uint64_t w;
      memcpy(&w, p + i, 8);
      h = (h ^ w) * k;
      h ^= h >> 29;
    }
  }
  return h ^ (h >> 32);
}

static struct memo_ent *memo_slot(struct gw_redact_memo *m, uint64_t h, const char *s, size_t len, unsigned ctx,
                                  bool *found)
{
  *found = false;
  if (!m->cap)
    return NULL;
  size_t mask = m->cap - 1;
  for (size_t k = 0, i = h & mask; k < MEMO_PROBES; k++, i = (i + 1) & mask) {
    struct memo_ent *e = &m->v[i];
    if (!e->s)
      return e;
    if (e->hash == h && e->ctx == ctx && e->len == len && (e->s == s || !memcmp(e->s, s, len))) {
      *found = true;
      return e;
    }
  }
  return NULL;
}

static bool memo_grow(struct gw_redact_memo *m)
{
  size_t ncap = m->cap ? m->cap * 2 : 64;
  struct memo_ent *nv = gw_arena_calloc(m->a, ncap * sizeof *nv);
  if (!nv)
    return false;
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->v[i].s)
      continue;
    for (size_t j = m->v[i].hash & (ncap - 1);; j = (j + 1) & (ncap - 1))
      if (!nv[j].s) {
        nv[j] = m->v[i];
        break;
      }
  }
  m->v = nv;
  m->cap = ncap;
  return true;
}

static void replay(struct rd_ctx *c, const struct memo_ent *e)
{
  if (!c->st)
    return;
  c->st->total += e->total;
  c->st->deny += e->deny;
  for (uint16_t i = 0; i < e->ncounts; i++)
    c->st->kinds[e->counts[i][0]] += e->counts[i][1];
}

enum rd_res rd_plain(struct rd_ctx *c, const char *s, size_t len, const char **out, size_t *outlen)
{
  const struct gw_redactor *r = c->r;
  if (!r->enabled || !len)
    return RD_SAME;
  struct gw_redact_memo *m = c->memo;
  if (!m || len < MEMO_MIN)
    return plain_scan(c, s, s, len, out, outlen);
  unsigned ctx = (unsigned)c->key_action << 2 | (c->auth_key ? 2u : 0u) | (c->secret_key ? 1u : 0u);
  uint64_t h = memo_hash(s, len, ctx);
  bool found;
  struct memo_ent *e = memo_slot(m, h, s, len, ctx, &found);
  if (found) {
    replay(c, e);
    if (e->res == RD_CHANGED) {
      *out = e->out;
      *outlen = e->outlen;
    }
    return (enum rd_res)e->res;
  }
  /* Scan with counts of our own, to keep them, then add them to the caller's. */
  struct gw_redact_stats mine, *theirs = c->st;
  memset(&mine, 0, sizeof mine);
  c->st = &mine;
  enum rd_res res = plain_scan(c, s, s, len, out, outlen);
  c->st = theirs;
  size_t nk = GW_RK__COUNT + r->nuser, nc = 0;
  for (size_t k = 0; k < nk; k++)
    nc += mine.kinds[k] != 0;
  struct memo_ent ent = {.hash = h, .s = s, .len = len, .res = (uint8_t)res, .ctx = (uint8_t)ctx,
                         .total = mine.total, .ncounts = (uint16_t)nc};
  if (res == RD_CHANGED) {
    ent.out = *out;
    ent.outlen = *outlen;
  }
  if (theirs) {
    theirs->total += mine.total;
    theirs->limited += mine.limited;
    for (size_t k = 0; k < nk; k++)
      theirs->kinds[k] += mine.kinds[k];
  }
  if (c->oom || (c->lim && (c->lim->stop_rc || c->lim->why)) || mine.limited)
    return res; /* not kept: the request fails anyway, or a limit decided the result, not the text */
  for (size_t k = 0; k < nk; k++)
    if (mine.kinds[k] > UINT16_MAX)
      return res; /* not kept: counts too large to replay exactly */
  if (nc && !(ent.counts = gw_arena_alloc(m->a, nc * sizeof *ent.counts)))
    return res;
  for (size_t k = 0, w = 0; nc && k < nk; k++)
    if (mine.kinds[k]) {
      ent.counts[w][0] = (uint16_t)k;
      ent.counts[w++][1] = (uint16_t)mine.kinds[k];
    }
  if (m->n + 1 > m->cap / 2 && !memo_grow(m))
    return res;
  e = memo_slot(m, h, s, len, ctx, &found);
  if (e) {
    *e = ent;
    m->n++;
  }
  return res;
}

/* JSON values (rd_value): the context byte also says "JSON value" (bit 6) and attr_mode (bit 5), so they never
 * meet rd_plain's entries. Replayed only where the walk would give the same: no string of it longer than
 * this call's cap (the walk that was kept cut nothing), and room for as many JSON levels. */
#define MEMO_JSON 0x40u
#define MEMO_ATTR 0x20u

static unsigned memo_ctx(const struct rd_ctx *c)
{
  return (unsigned)c->key_action << 2 | (c->auth_key ? 2u : 0u) | (c->secret_key ? 1u : 0u);
}

bool rd_memo_json_get(struct rd_ctx *c, const char *s, size_t len, bool attr_mode, int max_depth, enum rd_res *res,
                      const char **out, size_t *outlen)
{
  struct gw_redact_memo *m = c->memo;
  if (!m || len < MEMO_MIN || (c->lim && (c->lim->stop_rc || c->lim->why)))
    return false;
  unsigned ctx = memo_ctx(c) | MEMO_JSON | (attr_mode ? MEMO_ATTR : 0u);
  bool found;
  const struct memo_ent *e = memo_slot(m, memo_hash(s, len, ctx), s, len, ctx, &found);
  if (!found || e->longest > c->cap || e->depth > max_depth || (c->budget != SIZE_MAX && e->long_sum > c->budget))
    return false;
  if (c->budget != SIZE_MAX)
    c->budget -= e->long_sum; /* what the walk's cut() would have taken, cutting nothing */
  c->long_sum += e->long_sum;
  m->json_hits++;
  replay(c, e);
  if (e->longest > c->longest)
    c->longest = e->longest;
  if (c->jdepth + e->depth > c->jmax)
    c->jmax = c->jdepth + e->depth;
  *res = (enum rd_res)e->res;
  if (e->res == RD_CHANGED) {
    *out = e->out;
    *outlen = e->outlen;
  }
  return true;
}

void rd_memo_json_put(struct rd_ctx *c, const char *s, size_t len, bool attr_mode, enum rd_res res, const char *out,
                      size_t outlen, const struct gw_redact_stats *mine, size_t longest, size_t long_sum, int depth)
{
  struct gw_redact_memo *m = c->memo;
  size_t nk = GW_RK__COUNT + c->r->nuser, nc = 0;
  if (!m || len < MEMO_MIN || depth < 0 || depth > UINT8_MAX)
    return;
  for (size_t k = 0; k < nk; k++) {
    if (mine->kinds[k] > UINT16_MAX)
      return; /* counts too large to replay exactly */
    nc += mine->kinds[k] != 0;
  }
  unsigned ctx = memo_ctx(c) | MEMO_JSON | (attr_mode ? MEMO_ATTR : 0u);
  uint64_t h = memo_hash(s, len, ctx);
  struct memo_ent ent = {.hash = h, .s = s, .len = len, .res = (uint8_t)res, .ctx = (uint8_t)ctx,
                         .total = mine->total, .deny = mine->deny, .longest = longest, .long_sum = long_sum,
                         .depth = (uint8_t)depth,
                         .ncounts = (uint16_t)nc};
  if (res == RD_CHANGED) {
    ent.out = out;
    ent.outlen = outlen;
  }
  if (nc && !(ent.counts = gw_arena_alloc(m->a, nc * sizeof *ent.counts)))
    return;
  for (size_t k = 0, w = 0; nc && k < nk; k++)
    if (mine->kinds[k]) {
      ent.counts[w][0] = (uint16_t)k;
      ent.counts[w++][1] = (uint16_t)mine->kinds[k];
    }
  if (m->n + 1 > m->cap / 2 && !memo_grow(m))
    return;
  bool found;
  struct memo_ent *e = memo_slot(m, h, s, len, ctx, &found);
  if (e && !found) {
    *e = ent;
    m->n++;
  }
}

enum rd_res rd_plain_src(struct rd_ctx *c, const char *scan, const char *src, size_t len, const char **out,
                         size_t *outlen)
{
  return c->r->enabled && len ? plain_scan(c, scan, src, len, out, outlen) : RD_SAME;
}

/* The detectors over s; the output copies the bytes between matches, and hashes the matches, from src (the
 * same length: s itself, or the bytes a binary value's scan copy stands for, redact_bytes.c). */
static enum rd_res plain_scan(struct rd_ctx *c, const char *s, const char *src, size_t len, const char **out,
                              size_t *outlen)
{
  const struct gw_redactor *r = c->r;
  struct rd_matches m;
  matches_init(&m, c->a);

  if (!rd_charge(c, len))
    goto limited;
  if (c->secret_key && r->aws_secret_on) {
    size_t b = 0, e = len;
    while (b < e && (s[b] == ' ' || s[b] == '"' || s[b] == '\''))
      b++;
    while (e > b && (s[e - 1] == ' ' || s[e - 1] == '"' || s[e - 1] == '\''))
      e--;
    if (rd_aws_secret_value(s + b, e - b))
      push(&m, b, e, GW_RK_AWS_SECRET);
  }
  int failed_user;
  int rc = detect(c, s, len, m.n > 0, &m, &failed_user);
  if (!m.oom && !rc)
    drop_overlaps(&m);
  /* Detections glued to a neighbouring one ("2001:db8::1tok_abcd", "212-555-1234+14155550123"): a
   * detector's boundary check saw the neighbour's characters, so only a second pass over the output found
   * them. The value is scanned again with what was found replaced by a separator (same length, so offsets
   * hold) until nothing new turns up; a rescan that keeps finding more (a chain of glued tokens) is charged
   * to the request's scan budget, and past GLUE_PASSES the value goes whole. */
  char *neutral = NULL;
  for (int pass = 0; !rc && !m.oom && m.n; pass++) {
    if (pass == GLUE_PASSES) {
      rd_limited(c, RD_LIM_SCAN, -1, len);
      *out = RD_LIMIT_MASK;
      *outlen = sizeof RD_LIMIT_MASK - 1;
      return RD_CHANGED;
    }
    if (!rd_charge(c, len))
      goto limited;
    if (!neutral && !(neutral = gw_arena_alloc(c->a, len + 1))) {
      c->oom = true;
      return RD_SAME;
    }
    memcpy(neutral, s, len);
    neutral[len] = 0;
    for (size_t i = 0; i < m.n; i++)
      memset(neutral + m.v[i].start, RD_SEPARATOR, m.v[i].end - m.v[i].start);
    struct rd_matches more;
    matches_init(&more, c->a);
    rc = detect(c, neutral, len, false, &more, &failed_user);
    if (rc || more.oom) {
      m.oom |= more.oom;
      break;
    }
    /* keep what does not touch an earlier match (only user patterns can match a separator) */
    size_t w = 0, k = 0;
    for (size_t i = 0; i < more.n; i++) {
      while (k < m.n && m.v[k].end <= more.v[i].start)
        k++;
      if (k < m.n && m.v[k].start < more.v[i].end)
        continue;
      more.v[w++] = more.v[i];
    }
    more.n = w;
    drop_overlaps(&more);
    if (!more.n)
      break;
    size_t mid = m.n;
    for (size_t i = 0; i < more.n; i++)
      push(&m, more.v[i].start, more.v[i].end, more.v[i].det);
    merge_matches(&m, mid);
  }
  if (m.oom) {
    c->oom = true;
    return RD_SAME;
  }
  if (rc == PCRE2_ERROR_CALLOUT && c->lim && (c->lim->stop_rc || c->lim->why))
    goto limited;
  if (rc) {
    bool limit = rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT ||
                 rc == PCRE2_ERROR_JIT_STACKLIMIT;
    rd_limited(c, limit ? RD_LIM_MATCH : RD_LIM_MATCH_ERR, failed_user, len);
    *out = RD_FAIL_MASK;
    *outlen = sizeof RD_FAIL_MASK - 1;
    return RD_CHANGED;
  }
  if (!m.n)
    return RD_SAME;

  bool any_hash = false;
  for (size_t i = 0; i < m.n; i++) {
    enum gw_redact_action act = c->key_action != GW_REDACT_DEFAULT ? c->key_action : r->det[m.v[i].det].action;
    if (act == GW_REDACT_DROP) {
      count(c, m.v[i].det);
      return RD_DROP;
    }
    any_hash |= act == GW_REDACT_HASH;
  }

  /* The replacements first, then one exact allocation. */
  char (*tok)[64] = NULL;
  if (any_hash && !(tok = gw_arena_alloc(c->a, m.n * sizeof *tok))) {
    c->oom = true;
    return RD_SAME;
  }
  size_t n = len;
  for (size_t i = 0; i < m.n; i++) {
    const struct rd_det *d = &r->det[m.v[i].det];
    enum gw_redact_action act = c->key_action != GW_REDACT_DEFAULT ? c->key_action : d->action;
    if (act == GW_REDACT_HASH) {
      /* a hash that cannot be computed falls back to the mask: never the value itself */
      if (!r->hmac_key || !rd_hash_token(r->hmac_key, r->hmac_key_len, d->stem, src + m.v[i].start,
                                         m.v[i].end - m.v[i].start, tok[i], sizeof tok[i]))
        snprintf(tok[i], sizeof tok[i], "%s", d->mask);
    } else if (tok) {
      tok[i][0] = 0;
    }
    n += strlen(tok && tok[i][0] ? tok[i] : d->mask) - (m.v[i].end - m.v[i].start);
    count(c, m.v[i].det);
  }
  char *res = gw_arena_alloc(c->a, n + 1), *w = res;
  if (!res) {
    c->oom = true;
    return RD_SAME;
  }
  size_t prev = 0;
  for (size_t i = 0; i < m.n; i++) {
    const char *rep = tok && tok[i][0] ? tok[i] : r->det[m.v[i].det].mask;
    size_t rl = strlen(rep);
    memcpy(w, src + prev, m.v[i].start - prev);
    w += m.v[i].start - prev;
    memcpy(w, rep, rl);
    w += rl;
    prev = m.v[i].end;
  }
  memcpy(w, src + prev, len - prev);
  w += len - prev;
  *w = 0;
  *out = res;
  *outlen = n;
  return RD_CHANGED;

limited:
  /* Stopped (deadline, client gone): the request fails, nothing is written. A budget ran out: the value
   * goes whole, unscanned. */
  if (c->lim->stop_rc)
    return RD_SAME;
  rd_limited(c, c->lim->why, -1, len);
  *out = RD_LIMIT_MASK;
  *outlen = sizeof RD_LIMIT_MASK - 1;
  return RD_CHANGED;
}
