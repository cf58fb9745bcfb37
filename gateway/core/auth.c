/*
 * auth.c: the bearer token set behind auth.h. A snapshot is an array of SHA-256 digests with a refcount;
 * verify takes a reference, hashes the presented token once and compares it with every digest.
 */
#include "core/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/file.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/reload.h"

#define AUTH_MAX_FILE (1u << 20)
#define AUTH_MAX_TOKENS 4096

struct tokens {
  _Atomic int refs;
  size_t n;
  unsigned char (*digests)[SHA256_DIGEST_LENGTH];
};

/* Failures per listener: "otlp_http", "otlp_grpc". */
#define NLISTENERS 2
static const char *const listeners[NLISTENERS] = {"otlp_http", "otlp_grpc"};

struct gw_auth {
  char path[512];
  pthread_mutex_t mu;
  struct tokens *cur;
  int watch;
  _Atomic uint64_t missing[NLISTENERS], invalid[NLISTENERS], reloads_ok, reloads_failed;
};

static void tokens_unref(struct tokens *t)
{
  if (t && atomic_fetch_sub(&t->refs, 1) == 1) {
    OPENSSL_cleanse(t->digests, t->n * sizeof t->digests[0]);
    free(t->digests);
    free(t);
  }
}

/* The whole file (at most 1 MiB) into a NUL-terminated heap buffer; NULL with why. */
static char *read_all(const char *path, size_t *len, char *why, size_t whylen)
{
  bool too_large;
  char *buf = gw_file_read(path, AUTH_MAX_FILE, len, &too_large, why, whylen);
  if (!buf && too_large)
    snprintf(why, whylen, "larger than 1 MiB");
  return buf;
}

static void wipe(char *buf, size_t n)
{
  if (buf) {
    OPENSSL_cleanse(buf, n);
    free(buf);
  }
}

/* The next token line of buf[*pos, n): its start and length (trimmed), 0 at the end; line counts lines.
 * A line that is not a valid token gives why and returns -1. */
static int next_token(char *buf, size_t n, size_t *pos, unsigned *line, const char **tok, size_t *tlen, char *why,
                      size_t whylen)
{
  while (*pos < n) {
    char *p = buf + *pos;
    char *nl = memchr(p, '\n', n - *pos);
    size_t len = (size_t)((nl ? nl : buf + n) - p);
    *pos = nl ? (size_t)(nl + 1 - buf) : n;
    (*line)++;
    while (len && (p[len - 1] == '\r' || p[len - 1] == ' ' || p[len - 1] == '\t'))
      len--;
    while (len && (*p == ' ' || *p == '\t')) {
      p++;
      len--;
    }
    if (len == 0 || *p == '#')
      continue;
    bool printable = true;
    for (size_t i = 0; i < len; i++)
      printable &= p[i] > 0x20 && p[i] < 0x7f;
    if (!printable) {
      snprintf(why, whylen, "line %u: a token is printable ASCII without spaces", *line);
      return -1;
    }
    if (len < GW_AUTH_MIN_TOKEN || len > GW_AUTH_MAX_TOKEN) {
      snprintf(why, whylen, "line %u: a token must be %d to %d characters long (this one has %zu)", *line,
               GW_AUTH_MIN_TOKEN, GW_AUTH_MAX_TOKEN, len);
      return -1;
    }
    *tok = p;
    *tlen = len;
    return 1;
  }
  return 0;
}

/* Parse the file into a snapshot; NULL with why on failure. */
static struct tokens *load(const char *path, char *why, size_t whylen)
{
  size_t n = 0;
  char *buf = read_all(path, &n, why, whylen);
  if (!buf)
    return NULL;
  struct tokens *t = gw_calloc(1, sizeof *t);
  t->digests = gw_calloc(AUTH_MAX_TOKENS, sizeof t->digests[0]);
  size_t pos = 0, len;
  unsigned line = 0;
  const char *tok;
  int got;
  while ((got = next_token(buf, n, &pos, &line, &tok, &len, why, whylen)) > 0) {
    if (t->n == AUTH_MAX_TOKENS) {
      snprintf(why, whylen, "more than %d tokens", AUTH_MAX_TOKENS);
      goto fail;
    }
    SHA256((const unsigned char *)tok, len, t->digests[t->n++]);
  }
  if (got < 0)
    goto fail;
  if (t->n == 0) {
    snprintf(why, whylen, "holds no token (one per line; '#' starts a comment)");
    goto fail;
  }
  atomic_init(&t->refs, 1);
  wipe(buf, n);
  return t;
fail:
  free(t->digests);
  free(t);
  wipe(buf, n);
  return NULL;
}

gw_rc gw_auth_read_token(const char *path, char **out, char *why, size_t whylen)
{
  size_t n = 0;
  *out = NULL;
  char *buf = read_all(path, &n, why, whylen);
  if (!buf)
    return GW_ERR(CONFIG);
  size_t pos = 0, len = 0, len2;
  unsigned line = 0;
  const char *tok = NULL, *tok2;
  int got = next_token(buf, n, &pos, &line, &tok, &len, why, whylen);
  if (got == 0)
    snprintf(why, whylen, "holds no token (the one token to send; '#' starts a comment)");
  if (got > 0) {
    int more = next_token(buf, n, &pos, &line, &tok2, &len2, why, whylen);
    if (more > 0)
      snprintf(why, whylen, "line %u: a second token; this file holds the one token to send", line);
    if (more != 0)
      got = -1;
  }
  if (got <= 0) {
    wipe(buf, n);
    return GW_ERR(CONFIG);
  }
  char *t = gw_malloc(len + 1);
  memcpy(t, tok, len);
  t[len] = '\0';
  wipe(buf, n);
  *out = t;
  return GW_OK;
}

gw_rc gw_auth_check_file(const char *path, char *why, size_t whylen)
{
  struct tokens *t = load(path, why, whylen);
  if (!t)
    return GW_ERR(CONFIG);
  tokens_unref(t);
  return GW_OK;
}

static void render(struct gw_sb *out, void *ctx)
{
  struct gw_auth *a = ctx;
  gw_sb_puts(out, "# HELP genai_gateway_auth_failures_total Requests refused for their credentials: none given "
                  "(missing) or none valid (invalid)\n# TYPE genai_gateway_auth_failures_total counter\n");
  for (int i = 0; i < NLISTENERS; i++)
    gw_sb_printf(out,
                 "genai_gateway_auth_failures_total{listener=\"%s\",reason=\"missing\"} %llu\n"
                 "genai_gateway_auth_failures_total{listener=\"%s\",reason=\"invalid\"} %llu\n",
                 listeners[i], (unsigned long long)atomic_load(&a->missing[i]), listeners[i],
                 (unsigned long long)atomic_load(&a->invalid[i]));
  gw_sb_printf(out,
               "# HELP genai_gateway_auth_reloads_total Re-reads of receivers.auth.tokens_file (SIGHUP or a change)\n"
               "# TYPE genai_gateway_auth_reloads_total counter\n"
               "genai_gateway_auth_reloads_total{result=\"ok\"} %llu\n"
               "genai_gateway_auth_reloads_total{result=\"failed\"} %llu\n",
               (unsigned long long)atomic_load(&a->reloads_ok), (unsigned long long)atomic_load(&a->reloads_failed));
}

static void reload(void *arg, int forced)
{
  struct gw_auth *a = arg;
  char why[200];
  struct tokens *t = load(a->path, why, sizeof why);
  if (!t) {
    atomic_fetch_add(&a->reloads_failed, 1);
    gw_error("auth", "receivers.auth.tokens_file: '%s': %s; still accepting the tokens loaded before", a->path, why);
    return;
  }
  pthread_mutex_lock(&a->mu);
  struct tokens *old = a->cur;
  a->cur = t;
  pthread_mutex_unlock(&a->mu);
  tokens_unref(old);
  atomic_fetch_add(&a->reloads_ok, 1);
  gw_info("auth", "receivers.auth.tokens_file re-read (%s): %zu tokens", forced ? "SIGHUP" : "file changed", t->n);
}

struct gw_auth *gw_auth_create(const char *path, struct gw_err *err)
{
  char why[200];
  struct tokens *t = load(path, why, sizeof why);
  if (!t) {
    gw_err_set(err, GW_ERR(CONFIG), "receivers.auth.tokens_file: '%s': %s", path, why);
    return NULL;
  }
  struct gw_auth *a = gw_calloc(1, sizeof *a);
  snprintf(a->path, sizeof a->path, "%s", path);
  pthread_mutex_init(&a->mu, NULL);
  a->cur = t;
  const char *paths[1] = {a->path};
  a->watch = gw_reload_add(paths, 1, reload, a);
  gw_metrics_register(render, a);
  gw_info("auth", "receivers require a token: %zu in %s", t->n, path);
  return a;
}

void gw_auth_destroy(struct gw_auth *a)
{
  if (!a)
    return;
  gw_reload_remove(a->watch);
  gw_metrics_unregister(render, a);
  tokens_unref(a->cur);
  pthread_mutex_destroy(&a->mu);
  free(a);
}

/* The token in an Authorization value when its scheme is Bearer (RFC 6750 §2.1), else NULL. */
static const char *bearer(const char *v, size_t len, size_t *tlen)
{
  if (len < 7 || strncasecmp(v, "Bearer", 6) != 0 || (v[6] != ' ' && v[6] != '\t'))
    return NULL;
  size_t i = 6;
  while (i < len && (v[i] == ' ' || v[i] == '\t'))
    i++;
  size_t end = len;
  while (end > i && (v[end - 1] == ' ' || v[end - 1] == '\t'))
    end--;
  *tlen = end - i;
  return *tlen ? v + i : NULL;
}

/* Whether token matches any digest; every digest is compared, whatever matched. */
static bool known(const struct tokens *t, const char *tok, size_t len)
{
  if (!tok || len > GW_AUTH_MAX_TOKEN)
    return false;
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256((const unsigned char *)tok, len, d);
  int hit = 0;
  for (size_t i = 0; i < t->n; i++)
    hit |= CRYPTO_memcmp(d, t->digests[i], sizeof d) == 0;
  return hit != 0;
}

enum gw_auth_result gw_auth_verify(struct gw_auth *a, const char *listener, const char *authorization,
                                   size_t alen, const char *api_key, size_t klen)
{
  int li = strcmp(listener, "otlp_grpc") == 0 ? 1 : 0;
  if (!authorization && !api_key) {
    atomic_fetch_add(&a->missing[li], 1);
    return GW_AUTH_MISSING;
  }
  pthread_mutex_lock(&a->mu);
  struct tokens *t = a->cur;
  atomic_fetch_add(&t->refs, 1);
  pthread_mutex_unlock(&a->mu);
  size_t blen = 0;
  const char *b = authorization ? bearer(authorization, alen, &blen) : NULL;
  /* Both looked up whatever the first finds (no short-circuit): the time does not say which header matched. */
  int via_bearer = known(t, b, blen), via_key = known(t, api_key, klen);
  bool ok = (via_bearer | via_key) != 0;
  tokens_unref(t);
  if (ok)
    return GW_AUTH_OK;
  atomic_fetch_add(&a->invalid[li], 1);
  return GW_AUTH_INVALID;
}
