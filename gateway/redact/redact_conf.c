/*
 * redact_conf.c: the redaction policy from the gateway's configuration (redaction.* keys, docs/config.md).
 * Config lists add to the built-in allow and deny lists; actions not valid for their place fail the
 * start naming the key and the entry. The HMAC key is passed through and never echoed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/conf.h"
#include "redact/redact.h"

static const char *const conf_kinds[GW_CONF_NREDACT_KINDS] = {GW_CONF_REDACT_KINDS};

/* Built-in list followed by the configured entries; caller frees the array (not the strings). */
static const char **merged(const char *const *base, size_t nbase, const struct gw_conf_list *l, size_t *n)
{
  const char **v = gw_calloc(nbase + l->n + 1, sizeof *v);
  memcpy(v, base, nbase * sizeof *v);
  for (uint32_t i = 0; i < l->n; i++)
    v[nbase + i] = l->cells[i];
  *n = nbase + l->n;
  return v;
}

struct gw_redactor *gw_redactor_from_conf(const struct gw_conf *c, struct gw_err *err)
{
  struct gw_redact_policy p;
  struct gw_redactor *r = NULL;
  const char **allow = NULL, **deny = NULL;
  struct gw_redact_key_rule *rules = NULL;
  struct gw_redact_user_pattern *pats = NULL;

  gw_redact_policy_defaults(&p);
  p.enabled = c->redaction.enabled;
  p.hmac_key = c->redaction.hmac_key && c->redaction.hmac_key[0] ? c->redaction.hmac_key : NULL;
  p.max_content_bytes = (size_t)c->redaction.max_content_bytes;
  p.scan_factor = c->redaction.scan_factor;
  p.cpu_ms_per_mib = c->redaction.max_cpu_ms_per_mib;
  for (size_t i = 0; i < GW_CONF_NREDACT_KINDS; i++) {
    enum gw_redact_kind k;
    enum gw_redact_action a;
    if (!gw_redact_kind_parse(conf_kinds[i], &k) || !gw_redact_action_parse(c->redaction.detectors[i], &a)) {
      gw_err_set(err, GW_ERR(CONFIG), "redaction.detectors.%s: '%s' is not a known detector action", conf_kinds[i],
                 c->redaction.detectors[i]);
      goto out;
    }
    p.actions[k] = a;
  }
  allow = merged(gw_redact_default_allow_keys, gw_redact_default_n_allow_keys, &c->redaction.allow_keys,
                 &p.n_allow_keys);
  deny = merged(gw_redact_default_deny_keys, gw_redact_default_n_deny_keys, &c->redaction.deny_keys, &p.n_deny_keys);
  p.allow_keys = allow;
  p.deny_keys = deny;

  const struct gw_conf_list *ka = &c->redaction.key_actions;
  rules = gw_calloc(ka->n + 1, sizeof *rules);
  for (uint32_t i = 0; i < ka->n; i++) {
    rules[i].key = ka->cells[i * ka->width];
    const char *act = ka->cells[i * ka->width + 1];
    if (!gw_redact_action_parse(act, &rules[i].action)) {
      gw_err_set(err, GW_ERR(CONFIG), "redaction.key_actions[%u].action: '%.48s' is not one of mask, hash, drop, off",
                 i, act);
      goto out;
    }
  }
  p.key_rules = rules;
  p.n_key_rules = ka->n;

  const struct gw_conf_list *pl = &c->redaction.patterns;
  pats = gw_calloc(pl->n + 1, sizeof *pats);
  for (uint32_t i = 0; i < pl->n; i++) {
    char *const *row = &pl->cells[i * pl->width];
    pats[i].name = row[0];
    pats[i].regex = row[1];
    pats[i].label = row[3];
    pats[i].action = GW_REDACT_MASK;
    if (row[2] && !gw_redact_action_parse(row[2], &pats[i].action)) {
      gw_err_set(err, GW_ERR(CONFIG), "redaction.patterns[%u].action: '%.48s' is not one of mask, hash, drop, off", i,
                 row[2]);
      goto out;
    }
  }
  p.patterns = pats;
  p.n_patterns = pl->n;

  r = gw_redactor_create(&p, err);
out:
  free(allow);
  free(deny);
  free(rules);
  free(pats);
  return r;
}
