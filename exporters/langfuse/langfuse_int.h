/*
 * langfuse_int.h: private to the Langfuse backend: the span attributes its transform reads and writes
 * (one pass over each span finds them all), and the parts of the transform that live in observation.c
 * (usage, cost, model, and the notes on them that Langfuse shows as metadata).
 */
#ifndef GW_LANGFUSE_INT_H
#define GW_LANGFUSE_INT_H

#include "export_int.h"

enum gw_lf_key_id {
  K_USAGE, K_COST,                   /* ours, unless the client already set them */
  K_LF_USER, K_USER, K_ENDUSER,      /* user id, in Langfuse's order of reading them */
  K_LF_SESSION, K_SESSION, K_CONV,   /* session id, likewise */
  K_IN, K_OUT,                       /* message content, semconv parts form */
  K_MODEL,                           /* langfuse.observation.model.name */
  K_LF_IN, K_LF_OUT,                 /* langfuse.observation.input / .output: read before K_IN / K_OUT */
  K_COST_CACHE_READ, K_COST_CACHE_WRITE, K_COST_REASONING, /* the cost stage's parts (doubles, USD) */
  K_META_USAGE, K_META_COST_SOURCE, K_META_REPORTED, K_META_CLIENT_COST, /* our notes (metadata) */
  K__N
};
struct gw_lf_key {
  const char *s;
  size_t n;
};
extern const struct gw_lf_key gw_lf_keys[K__N];

/* A span of the batch with its attributes of interest (the first of each key, as a lookup would find). */
struct gw_lf_view {
  struct gw_export_span *sp;
  const struct gw_export_attr *kv[K__N];
};

/* A non-empty string attribute's value (not NUL-terminated: *len), or NULL. */
const char *gw_lf_str(const struct gw_lf_view *v, enum gw_lf_key_id k, size_t *len);
/* Append a string attribute to the span and note it in the view. NOMEM over the arena cap. */
gw_rc gw_lf_add(struct gw_export_batch *b, struct gw_lf_view *v, enum gw_lf_key_id k, const char *value, size_t len);

/*
 * The observation fields of one span with a record (observation.c): usage_details, cost_details (the cost
 * Postgres holds in total_cost_usd, per usage type), the model name (the record's model_id), and the
 * metadata that says where usage and cost came from; for a generation without usage, its messages in the
 * plain {role, content} form Langfuse tokenizes. Runs after the log content was attached.
 */
gw_rc gw_lf_observation(struct gw_export_batch *b, struct gw_lf_view *v);

/* Semconv parts-form messages ([{"role", "parts": [{"type": "text", "content"}, ...]}]) as the plain
 * [{"role", "content"}] list Langfuse's chat view and tokenizer read (text parts joined by newlines;
 * tool calls as OpenAI's tool_calls). NULL when it does not parse or holds no message. */
const char *gw_lf_plain_messages(struct gw_arena *a, const char *json, size_t len);

#endif
