/*
 * openinference.c: the OpenInference (Arize) dialect (SPEC-FACTS §4.2): llm.* model and token keys,
 * openinference.span.kind, session.id / user.id, llm.invocation_parameters (a JSON string) and the
 * flattened llm.input_messages.{i}.message.* / llm.output_messages.{i}.message.* families, which are
 * preferred over the raw input.value / output.value (DESIGN §3). The raw values are still read when no
 * message attributes exist: a request/response JSON yields its messages, anything else becomes one text
 * message. The raw-value reader is shared with traceloop.entity.* and langfuse.observation.input/output.
 */
#include <string.h>

#include "normalize/normalize_int.h"

#define K(k, s) {k, NZ_S_##s}
const struct nz_key nz_openinference_keys[] = {
  K("openinference.span.kind", OI_KIND),
  K("llm.model_name", OI_MODEL),
  K("llm.request.model_name", OI_REQ_MODEL),
  K("llm.response.model_name", OI_RESP_MODEL),
  K("llm.provider", OI_PROVIDER),
  K("llm.system", OI_SYSTEM),
  K("llm.token_count.prompt", OI_PROMPT),
  K("llm.token_count.completion", OI_COMPL),
  K("llm.token_count.total", OI_TOTAL),
  K("llm.token_count.prompt_details.cache_read", OI_CACHE_READ),
  K("llm.token_count.prompt_details.cache_write", OI_CACHE_WRITE),
  K("llm.token_count.completion_details.reasoning", OI_REASONING),
  K("llm.invocation_parameters", OI_PARAMS),
  K("input.value", OI_IN),
  K("input.mime_type", OI_IN_MIME),
  K("output.value", OI_OUT),
  K("output.mime_type", OI_OUT_MIME),
  K("llm.finish_reason", OI_FINISH),
  K("embedding.model_name", EMB_MODEL),
  K("session.id", SESSION_ID),
  K("user.id", USER_ID),
  K("enduser.id", ENDUSER_ID),
  K("llm.cost.total", LLM_COST),
  K("agent.name", OI_AGENT_NAME),
  K("llm.prompt_template.template", OI_PT_TEMPLATE),
  K("llm.prompt_template.version", OI_PT_VERSION),
  K("prompt.id", OI_PROMPT_ID),
};
const size_t nz_openinference_nkeys = sizeof nz_openinference_keys / sizeof nz_openinference_keys[0];


static bool eat(const char **p, const char *end, const char *lit)
{
  size_t n = strlen(lit);
  if ((size_t)(end - *p) < n || memcmp(*p, lit, n))
    return false;
  *p += n;
  return true;
}

/* llm.input_messages.{i}.message.* / llm.output_messages.{i}.message.*; key starts with "llm.". */
bool nz_openinference_flat(struct nz_ctx *c, const char *key, size_t klen, const GwAnyValue *v)
{
  const char *p = key + 4, *end = key + klen;
  enum nz_family fam;
  if (eat(&p, end, "input_messages."))
    fam = NZ_F_OI_IN;
  else if (eat(&p, end, "output_messages."))
    fam = NZ_F_OI_OUT;
  else
    return false;
  uint32_t idx, sub = 0;
  if (!nz_index_dot(&p, end, &idx) || !eat(&p, end, "message."))
    return false;
  enum nz_field fl;
  if (p == end)
    return false;
  if (!strcmp(p, "role"))
    fl = NZ_FL_ROLE;
  else if (!strcmp(p, "content"))
    fl = NZ_FL_CONTENT;
  else if (!strcmp(p, "name"))
    fl = NZ_FL_NAME;
  else if (!strcmp(p, "tool_call_id"))
    fl = NZ_FL_TOOL_CALL_ID;
  else if (eat(&p, end, "contents.")) {
    if (!nz_index_dot(&p, end, &sub) || strcmp(p, "message_content.text"))
      return false;
    sub++;
    fl = NZ_FL_PART_TEXT;
  } else if (eat(&p, end, "tool_calls.")) {
    if (!nz_index_dot(&p, end, &sub) || !eat(&p, end, "tool_call."))
      return false;
    sub++;
    if (!strcmp(p, "id"))
      fl = NZ_FL_TC_ID;
    else if (!strcmp(p, "function.name"))
      fl = NZ_FL_TC_NAME;
    else if (!strcmp(p, "function.arguments"))
      fl = NZ_FL_TC_ARGS;
    else
      return false;
  } else {
    return false;
  }
  return nz_flat_add(c, fam, idx, fl, sub, v);
}

const char *nz_openinference_operation(const char *k)
{
  static const struct { const char *kind, *op; } map[] = {
    {"LLM", "chat"}, {"EMBEDDING", "embeddings"}, {"TOOL", "execute_tool"}, {"AGENT", "invoke_agent"},
    {"CHAIN", "chain"}, {"RETRIEVER", "retrieval"}, {"RERANKER", "rerank"}, {"GUARDRAIL", "guardrail"},
    {"EVALUATOR", "evaluator"},
  };
  if (k)
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
      if (!strcmp(k, map[i].kind))
        return map[i].op;
  return NULL;
}

void nz_params_from_json(struct nz_params *p, struct json_object *o)
{
  static const struct { const char *key; int id; } map[] = {
    {"temperature", NZ_P_TEMPERATURE}, {"top_p", NZ_P_TOP_P}, {"top_k", NZ_P_TOP_K},
    {"max_tokens", NZ_P_MAX_TOKENS}, {"max_completion_tokens", NZ_P_MAX_COMPLETION_TOKENS},
    {"frequency_penalty", NZ_P_FREQUENCY_PENALTY}, {"presence_penalty", NZ_P_PRESENCE_PENALTY},
    {"seed", NZ_P_SEED}, {"stop", NZ_P_STOP_SEQUENCES}, {"stop_sequences", NZ_P_STOP_SEQUENCES},
    {"n", NZ_P_CHOICE_COUNT}, {"service_tier", NZ_P_SERVICE_TIER}, {"reasoning_effort", NZ_P_REASONING_EFFORT},
  };
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
    struct json_object *x;
    if (json_object_object_get_ex(o, map[i].key, &x) && !json_object_is_type(x, json_type_null))
      nz_params_put_json(p, (unsigned)map[i].id, x);
  }
}

void nz_openinference_params(struct nz_ctx *c, struct nz_params *p, const char **req_model, gw_tribool *stream)
{
  const char *s = nz_str(c->s->v[NZ_S_OI_PARAMS]);
  if (!s)
    return;
  struct json_object *o = nz_json_parse(c, s, strlen(s)), *x;
  if (!o || !json_object_is_type(o, json_type_object)) {
    gw_record_set_flag(c->r, GW_FLAG_BAD_ATTRIBUTE);
    if (o)
      nz_json_put(c, o);
    return;
  }
  nz_params_from_json(p, o);
  if (req_model && !*req_model && json_object_object_get_ex(o, "model", &x))
    *req_model = nz_json_dup_str(c, x);
  if (stream && *stream < 0 && json_object_object_get_ex(o, "stream", &x) && json_object_is_type(x, json_type_boolean))
    *stream = json_object_get_boolean(x) ? 1 : 0;
  nz_json_put(c, o);
}

/* An OpenAI chat response: one output message per choice, with its finish_reason. */
static bool choices(struct nz_ctx *c, struct json_object *arr, struct nz_msgs *out)
{
  uint32_t before = out->n;
  for (size_t i = 0; i < json_object_array_length(arr); i++) {
    struct json_object *ch = json_object_array_get_idx(arr, i), *msg = NULL, *fr = NULL, *txt = NULL;
    if (!json_object_is_type(ch, json_type_object))
      continue;
    uint32_t n0 = out->n;
    if (json_object_object_get_ex(ch, "message", &msg))
      nz_msg_from_json(c, msg, out);
    else if (json_object_object_get_ex(ch, "text", &txt)) {
      struct nz_msg *m = nz_msgs_add(c, out, "assistant");
      if (m)
        nz_msg_text(c, m, "text", nz_json_dup_str(c, txt));
    }
    if (out->n > n0 && json_object_object_get_ex(ch, "finish_reason", &fr) && !out->v[out->n - 1].finish_reason)
      out->v[out->n - 1].finish_reason = nz_json_dup_str(c, fr);
  }
  return out->n > before;
}

bool nz_raw_content(struct nz_ctx *c, const GwAnyValue *v, bool output, struct nz_msgs *out)
{
  const char *s = nz_str(v);
  const char *role = output ? "assistant" : "user";
  if (!s)
    return v ? nz_msgs_from_value(c, v, out) : false;
  uint32_t before = out->n;
  struct json_object *o = nz_json_parse(c, s, strlen(s)), *x = NULL;
  if (o && json_object_is_type(o, json_type_object)) {
    if (json_object_object_get_ex(o, "messages", &x) && json_object_is_type(x, json_type_array))
      nz_msgs_from_json(c, x, out);
    else if (json_object_object_get_ex(o, "choices", &x) && json_object_is_type(x, json_type_array))
      choices(c, x, out);
    else if (json_object_object_get_ex(o, "role", &x))
      nz_msg_from_json(c, o, out);
  } else if (o && json_object_is_type(o, json_type_array) && json_object_array_length(o) > 0) {
    struct json_object *first = json_object_array_get_idx(o, 0), *r = NULL;
    if (json_object_is_type(first, json_type_object) && json_object_object_get_ex(first, "role", &r)) {
      nz_msgs_from_json(c, o, out);
    } else {
      /* A list of inputs (embeddings): one message, one text part each. */
      struct nz_msg *m = nz_msgs_add(c, out, role);
      for (size_t i = 0; m && i < json_object_array_length(o); i++) {
        struct json_object *e = json_object_array_get_idx(o, i);
        if (json_object_is_type(e, json_type_string))
          nz_msg_text(c, m, "text", nz_json_dup_str(c, e));
      }
      if (m && !m->n)
        out->n--;
    }
  }
  if (o)
    nz_json_put(c, o);
  return nz_msgs_text_fallback(c, out, before, role, s);
}
