/*
 * semconv_old.c: deprecated GenAI semantic conventions (SPEC-FACTS §3.4, §3.5): gen_ai.system,
 * prompt/completion token names, gen_ai.openai.* request keys, the gen_ai.prompt / gen_ai.completion
 * JSON attributes, and the deprecated content events (gen_ai.{system,user,assistant,tool}.message,
 * gen_ai.choice, gen_ai.content.prompt|completion). Events only fill content the attributes left empty;
 * normalize.c decides that order.
 */
#include <string.h>

#include "normalize/normalize_int.h"

#define K(k, s) {k, NZ_S_##s}
const struct nz_key nz_semconv_old_keys[] = {
  K("gen_ai.system", SYSTEM),
  K("gen_ai.usage.prompt_tokens", PROMPT_TOK),
  K("gen_ai.usage.completion_tokens", COMPL_TOK),
  K("gen_ai.prompt", PROMPT_JSON),
  K("gen_ai.completion", COMPLETION_JSON),
  K("gen_ai.openai.request.seed", OAI_SEED),
  K("gen_ai.openai.request.service_tier", OAI_SERVICE_TIER),
  K("gen_ai.openai.response.service_tier", OAI_RESP_SERVICE_TIER),
  K("gen_ai.model.provider", MODEL_PROVIDER),
};
const size_t nz_semconv_old_nkeys = sizeof nz_semconv_old_keys / sizeof nz_semconv_old_keys[0];

/* gen_ai.prompt / gen_ai.completion: a JSON message list, one message object, or plain text. */
bool nz_old_content(struct nz_ctx *c, const GwAnyValue *v, const char *role, struct nz_msgs *out)
{
  const char *s = nz_str(v);
  if (!s)
    return v ? nz_msgs_from_value(c, v, out) : false;
  uint32_t before = out->n;
  struct json_object *o = nz_json_parse(c, s, strlen(s));
  if (o && json_object_is_type(o, json_type_array))
    nz_msgs_from_json(c, o, out);
  else if (o && json_object_is_type(o, json_type_object))
    nz_msg_from_json(c, o, out);
  if (o)
    nz_json_put(c, o);
  return nz_msgs_text_fallback(c, out, before, role, s);
}

static const GwAnyValue *ev_attr(const GwSpanEvent *ev, const char *key)
{
  const GwAnyValue *found = NULL;
  for (size_t i = 0; i < ev->n_attributes; i++)
    if (ev->attributes[i]->key && !strcmp(ev->attributes[i]->key, key))
      found = ev->attributes[i]->value;
  return found;
}

/* A {content, role, tool_calls} body spread over event attributes, or under "message" as a kvlist. */
static void event_msg(struct nz_ctx *c, const GwSpanEvent *ev, const char *role, struct nz_msgs *out)
{
  const GwAnyValue *msg = ev_attr(ev, "message");
  const GwAnyValue *content = ev_attr(ev, "content");
  const char *r = nz_str(ev_attr(ev, "role"));
  if (msg && msg->value_case == GW_AV_KVLIST) {
    uint32_t before = out->n;
    nz_msgs_from_value(c, msg, out);
    if (out->n > before) {
      struct nz_msg *m = &out->v[out->n - 1];
      if (!m->role)
        m->role = r ? r : role;
      if (!m->finish_reason)
        m->finish_reason = nz_str(ev_attr(ev, "finish_reason"));
    }
    return;
  }
  if (!content)
    return;
  struct nz_msg *m = nz_msgs_add(c, out, r ? r : role);
  if (!m)
    return;
  m->finish_reason = nz_str(ev_attr(ev, "finish_reason"));
  if (content->value_case == GW_AV_STRING) {
    nz_msg_text(c, m, "text", content->string_value);
  } else {
    struct gw_sb sb;
    gw_sb_init(&sb, c->a);
    nz_av_write(&sb, content, 0);
    const char *s = gw_sb_finish(&sb);
    if (!s)
      c->oom = true;
    nz_msg_text(c, m, "text", s);
  }
}

void nz_old_events(struct nz_ctx *c, struct nz_msgs *in, struct nz_msgs *out)
{
  bool fill_in = in->n == 0, fill_out = out->n == 0;
  for (size_t e = 0; e < c->span->n_events && !c->oom; e++) {
    const GwSpanEvent *ev = c->span->events[e];
    const char *n = ev->name;
    if (!n || strncmp(n, "gen_ai.", 7))
      continue;
    n += 7;
    if (fill_in && !strcmp(n, "system.message"))
      event_msg(c, ev, "system", in);
    else if (fill_in && !strcmp(n, "user.message"))
      event_msg(c, ev, "user", in);
    else if (fill_in && !strcmp(n, "assistant.message"))
      event_msg(c, ev, "assistant", in);
    else if (fill_in && !strcmp(n, "tool.message"))
      event_msg(c, ev, "tool", in);
    else if (fill_out && !strcmp(n, "choice"))
      event_msg(c, ev, "assistant", out);
    else if (fill_in && !strcmp(n, "content.prompt"))
      nz_old_content(c, ev_attr(ev, "gen_ai.prompt"), "user", in);
    else if (fill_out && !strcmp(n, "content.completion"))
      nz_old_content(c, ev_attr(ev, "gen_ai.completion"), "assistant", out);
  }
}
