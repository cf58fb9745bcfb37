/*
 * openllmetry.c: the OpenLLMetry / Traceloop dialect (SPEC-FACTS §4.1): its own usage keys (underscore
 * cache variants, llm.usage.*), llm.request.type and traceloop.span.kind, association properties, and
 * the flattened gen_ai.prompt.{i}.* / gen_ai.completion.{i}.* messages.
 *
 * Flattened families (these and OpenInference's llm.*_messages.{i}) are collected during the single
 * attribute pass as (index, field, value) entries and assembled here: sorted by index (sparse or
 * unordered indexes are fine), one message per index. Indexes never size an allocation.
 */
#include <stdlib.h>
#include <string.h>

#include "normalize/normalize_int.h"

#define K(k, s) {k, NZ_S_##s}
const struct nz_key nz_openllmetry_keys[] = {
  K("llm.request.type", LLM_REQ_TYPE),
  K("gen_ai.usage.cache_read_input_tokens", CACHE_READ_US),
  K("gen_ai.usage.cache_creation_input_tokens", CACHE_WRITE_US),
  K("gen_ai.usage.reasoning_tokens", REASONING_US),
  K("llm.usage.reasoning_tokens", LLM_REASONING),
  K("llm.usage.total_tokens", LLM_TOTAL),
  K("gen_ai.usage.total_tokens", GENAI_TOTAL),
  K("llm.is_streaming", LLM_STREAMING),
  K("gen_ai.is_streaming", GENAI_STREAMING),
  K("llm.top_k", LLM_TOP_K),
  K("llm.frequency_penalty", LLM_FREQ_PEN),
  K("llm.presence_penalty", LLM_PRES_PEN),
  K("llm.chat.stop_sequences", LLM_STOP),
  K("llm.user", LLM_USER),
  K("gen_ai.user", GENAI_USER),
  K("llm.response.finish_reason", LLM_RESP_FINISH),
  K("gen_ai.response.finish_reason", GENAI_FINISH),
  K("gen_ai.request.n", REQ_N),
  K("gen_ai.request.max_completion_tokens", MAX_COMPL),
  K("gen_ai.request.reasoning_effort", REASONING_EFFORT),
  K("traceloop.span.kind", TL_KIND),
  K("traceloop.association.properties.session_id", TL_SESSION),
  K("traceloop.association.properties.user_id", TL_USER),
  K("traceloop.entity.input", TL_IN),
  K("traceloop.entity.output", TL_OUT),
  K("traceloop.workflow.name", TL_WORKFLOW),
  K("traceloop.entity.name", TL_ENTITY),
  K("traceloop.prompt.key", TL_PROMPT_KEY),
  K("traceloop.prompt.version", TL_PROMPT_VERSION),
  K("traceloop.prompt.version_name", TL_PROMPT_VERSION_NAME),
};
const size_t nz_openllmetry_nkeys = sizeof nz_openllmetry_keys / sizeof nz_openllmetry_keys[0];


static bool eq(const char *s, const char *end, const char *lit)
{
  size_t n = strlen(lit);
  return (size_t)(end - s) == n && !memcmp(s, lit, n);
}

/* gen_ai.prompt.{i}.<field> and gen_ai.completion.{i}.<field>; key is known to start with "gen_ai.". */
bool nz_openllmetry_flat(struct nz_ctx *c, const char *key, size_t klen, const GwAnyValue *v)
{
  const char *p = key + 7, *end = key + klen;
  enum nz_family fam;
  if ((size_t)(end - p) > 7 && !memcmp(p, "prompt.", 7)) {
    fam = NZ_F_PROMPT;
    p += 7;
  } else if ((size_t)(end - p) > 11 && !memcmp(p, "completion.", 11)) {
    fam = NZ_F_COMPLETION;
    p += 11;
  } else {
    return false;
  }
  uint32_t idx, sub = 0;
  if (!nz_index_dot(&p, end, &idx))
    return false;
  enum nz_field fl;
  if (eq(p, end, "role"))
    fl = NZ_FL_ROLE;
  else if (eq(p, end, "content"))
    fl = NZ_FL_CONTENT;
  else if (eq(p, end, "name"))
    fl = NZ_FL_NAME;
  else if (eq(p, end, "finish_reason"))
    fl = NZ_FL_FINISH;
  else if (eq(p, end, "tool_call_id"))
    fl = NZ_FL_TOOL_CALL_ID;
  else if ((size_t)(end - p) > 11 && !memcmp(p, "tool_calls.", 11)) {
    p += 11;
    if (!nz_index_dot(&p, end, &sub))
      return false;
    sub++;
    if (eq(p, end, "id"))
      fl = NZ_FL_TC_ID;
    else if (eq(p, end, "name"))
      fl = NZ_FL_TC_NAME;
    else if (eq(p, end, "arguments"))
      fl = NZ_FL_TC_ARGS;
    else
      return false;
  } else {
    return false;
  }
  return nz_flat_add(c, fam, idx, fl, sub, v);
}

static int ent_cmp(const void *a, const void *b)
{
  const struct nz_flat_ent *x = a, *y = b;
  if (x->idx != y->idx)
    return x->idx < y->idx ? -1 : 1;
  if (x->sub != y->sub)
    return x->sub < y->sub ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void tool_call(struct nz_ctx *c, struct nz_msg *m, const struct nz_flat_ent *e, size_t n)
{
  const GwAnyValue *id = NULL, *name = NULL, *args = NULL;
  for (size_t i = 0; i < n; i++) {
    if (e[i].field == NZ_FL_TC_ID)
      id = e[i].v;
    else if (e[i].field == NZ_FL_TC_NAME)
      name = e[i].v;
    else if (e[i].field == NZ_FL_TC_ARGS)
      args = e[i].v;
  }
  struct gw_sb sb;
  gw_sb_init(&sb, c->a);
  gw_sb_puts(&sb, "{\"type\":\"tool_call\"");
  if (id) {
    gw_sb_puts(&sb, ",\"id\":");
    nz_av_write(&sb, id, 1);
  }
  if (name) {
    gw_sb_puts(&sb, ",\"name\":");
    nz_av_write(&sb, name, 1);
  }
  if (args) {
    gw_sb_puts(&sb, ",\"arguments\":");
    nz_av_write(&sb, args, 1);
  }
  gw_sb_putc(&sb, '}');
  const char *s = gw_sb_finish(&sb);
  if (!s)
    c->oom = true;
  nz_msg_json(c, m, s);
}

/* One message per index, in index order. Shared by OpenLLMetry and OpenInference families. */
void nz_flat_msgs(struct nz_ctx *c, enum nz_family f, struct nz_msgs *out)
{
  struct nz_flat *fl = &c->s->flat[f];
  if (!fl->n)
    return;
  qsort(fl->v, fl->n, sizeof *fl->v, ent_cmp);
  for (uint32_t i = 0; i < fl->n && !c->oom;) {
    uint32_t idx = fl->v[i].idx, j = i;
    while (j < fl->n && fl->v[j].idx == idx)
      j++;
    struct nz_msg *m = nz_msgs_add(c, out, NULL);
    if (!m)
      return;
    const GwAnyValue *content = NULL;
    const char *tool_call_id = NULL;
    uint32_t k = i;
    for (; k < j && fl->v[k].sub == 0; k++) {
      const struct nz_flat_ent *e = &fl->v[k];
      switch (e->field) {
      case NZ_FL_ROLE: m->role = nz_str(e->v); break;
      case NZ_FL_NAME: m->name = nz_str(e->v); break;
      case NZ_FL_FINISH: m->finish_reason = nz_str(e->v); break;
      case NZ_FL_TOOL_CALL_ID: tool_call_id = nz_str(e->v); break;
      case NZ_FL_CONTENT: content = e->v; break;
      default: break;
      }
    }
    if (content && tool_call_id) {
      struct gw_sb sb;
      gw_sb_init(&sb, c->a);
      gw_sb_puts(&sb, "{\"type\":\"tool_call_response\",\"id\":");
      gw_sb_json_str(&sb, tool_call_id, strlen(tool_call_id));
      gw_sb_puts(&sb, ",\"response\":");
      nz_av_write(&sb, content, 1);
      gw_sb_putc(&sb, '}');
      const char *s = gw_sb_finish(&sb);
      if (!s)
        c->oom = true;
      nz_msg_json(c, m, s);
    } else if (content && content->value_case == GW_AV_STRING) {
      nz_msg_text(c, m, "text", content->string_value);
    } else if (content) {
      /* Structured content: already a list of parts or a single part. */
      nz_parts_from_value(c, content, m);
    }
    while (k < j) {
      uint32_t sub = fl->v[k].sub, s = k;
      while (k < j && fl->v[k].sub == sub)
        k++;
      if (fl->v[s].field == NZ_FL_PART_TEXT) {
        const char *t = nz_str(fl->v[k - 1].v);
        if (t)
          nz_msg_text(c, m, "text", t);
      } else {
        tool_call(c, m, &fl->v[s], k - s);
      }
    }
    i = j;
  }
}

const char *nz_openllmetry_operation(const char *request_type, const char *span_kind)
{
  if (request_type) {
    if (!strcmp(request_type, "chat"))
      return "chat";
    if (!strcmp(request_type, "completion"))
      return "text_completion";
    if (!strcmp(request_type, "embedding"))
      return "embeddings";
    if (!strcmp(request_type, "rerank"))
      return "rerank";
  }
  if (span_kind) {
    if (!strcmp(span_kind, "workflow"))
      return "invoke_workflow";
    if (!strcmp(span_kind, "task"))
      return "task";
    if (!strcmp(span_kind, "agent"))
      return "invoke_agent";
    if (!strcmp(span_kind, "tool"))
      return "execute_tool";
  }
  return NULL;
}
