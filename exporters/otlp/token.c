/*
 * token.c: an exporter's bearer token (exporters.<name>.token_file), read at start and again on SIGHUP or
 * when the file changes (core/reload.h polls it: a Kubernetes Secret rotated in place swaps a symlink).
 * The exporter thread asks for the generation it last used; a new one (a token that differs from the
 * previous) makes it rebuild its Authorization header. A rewrite that does not load keeps the token in use
 * and says why. The token is never logged; copies are wiped before they are freed.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/auth.h"
#include "core/log.h"
#include "core/reload.h"
#include "export_int.h"

struct gw_export_token {
  char name[32];
  char path[512];
  pthread_mutex_t mu;
  char *value;
  _Atomic uint64_t gen;
  int watch;
  _Atomic uint64_t *reloads; /* ok, failed */
};

static void wipe(char *s)
{
  if (s) {
    memset(s, 0, strlen(s));
    free(s);
  }
}

static void reload(void *arg, int forced)
{
  struct gw_export_token *t = arg;
  char *v = NULL, why[200];
  if (gw_auth_read_token(t->path, &v, why, sizeof why) != GW_OK) {
    atomic_fetch_add(&t->reloads[1], 1);
    gw_error(t->name, "exporters.%s.token_file: '%s': %s; still sending the token read before", t->name, t->path, why);
    return;
  }
  atomic_fetch_add(&t->reloads[0], 1);
  pthread_mutex_lock(&t->mu);
  bool changed = strcmp(v, t->value) != 0;
  if (changed) {
    wipe(t->value);
    t->value = v;
    v = NULL;
    atomic_fetch_add(&t->gen, 1);
  }
  pthread_mutex_unlock(&t->mu);
  wipe(v);
  gw_info(t->name, "exporters.%s.token_file re-read (%s): %s", t->name, forced ? "SIGHUP" : "file changed",
          changed ? "a new token, sent from the next request on" : "the same token");
}

struct gw_export_token *gw_export_token_create(const char *name, const char *path, _Atomic uint64_t *reloads,
                                               struct gw_err *err)
{
  char *v = NULL, why[200];
  if (gw_auth_read_token(path, &v, why, sizeof why) != GW_OK) {
    gw_err_set(err, GW_ERR(CONFIG), "exporters.%s.token_file: '%s': %s", name, path, why);
    return NULL;
  }
  struct gw_export_token *t = gw_calloc(1, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  snprintf(t->path, sizeof t->path, "%s", path);
  pthread_mutex_init(&t->mu, NULL);
  t->value = v;
  t->reloads = reloads;
  atomic_init(&t->gen, 1);
  const char *paths[1] = {t->path};
  t->watch = gw_reload_add(paths, 1, reload, t);
  if (!t->watch) {
    gw_err_set(err, GW_ERR(INTERNAL), "exporters.%s.token_file: cannot watch '%s': too many watched files", name, path);
    gw_export_token_destroy(t);
    return NULL;
  }
  return t;
}

void gw_export_token_destroy(struct gw_export_token *t)
{
  if (!t)
    return;
  if (t->watch)
    gw_reload_remove(t->watch);
  wipe(t->value);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

uint64_t gw_export_token_gen(const struct gw_export_token *t) { return atomic_load(&t->gen); }

char *gw_export_token_get(struct gw_export_token *t, uint64_t *gen)
{
  pthread_mutex_lock(&t->mu);
  char *v = gw_strdup(t->value);
  *gen = atomic_load(&t->gen);
  pthread_mutex_unlock(&t->mu);
  return v;
}
