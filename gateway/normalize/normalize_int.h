/*
 * normalize_int.h: internals shared by normalize.c and the dialect files (not a public interface).
 *
 * One pass over a span's attributes fills a struct nz_span: every known key lands in its slot (last
 * duplicate wins), indexed families (gen_ai.prompt.{i}.*, llm.input_messages.{i}.*, ...) are collected
 * as (index, field, value) entries. The dialect files own their key tables and the parsing that is
 * specific to them; normalize.c owns the walk and the per-field precedence.
 */
#ifndef GW_NORMALIZE_INT_H
#define GW_NORMALIZE_INT_H

#include <json-c/json.h>
#include <openssl/evp.h>

#include "core/sha256.h"
#include "normalize/normalize.h"
#include "normalize/simhash.h"

/* Slots, grouped by the dialect whose key fills them. */
#define NZ_SLOTS(X)                                                                                      \
  /* semconv (current) */                                                                              \
  X(OP_NAME) X(PROVIDER) X(REQ_MODEL) X(RESP_MODEL) X(IN_TOK) X(OUT_TOK) X(CACHE_READ) X(CACHE_WRITE)     \
  X(REASONING) X(TEMPERATURE) X(TOP_P) X(TOP_K) X(MAX_TOKENS) X(FREQ_PEN) X(PRES_PEN) X(STOP_SEQ) X(SEED) \
  X(CHOICE_COUNT) X(STREAM) X(FINISH_REASONS) X(TTFC) X(CONV_ID) X(SYS_INSTR) X(IN_MSGS) X(OUT_MSGS)     \
  X(ERROR_TYPE) X(SERVICE_TIER) X(ENCODING_FORMATS) X(OUTPUT_TYPE) X(RESP_SERVICE_TIER) X(USAGE_COST)     \
  X(USAGE_COST_AMOUNT) X(AGENT_NAME) X(AGENT_ID) X(WORKFLOW_NAME) X(PROMPT_NAME)                         \
  /* semconv, deprecated */                                                                            \
  X(SYSTEM) X(PROMPT_TOK) X(COMPL_TOK) X(PROMPT_JSON) X(COMPLETION_JSON) X(OAI_SEED) X(OAI_SERVICE_TIER) \
  X(MODEL_PROVIDER) X(OAI_RESP_SERVICE_TIER)                                                           \
  /* OpenLLMetry and 2026 project-policy names */                                                      \
  X(LLM_REQ_TYPE) X(CACHE_READ_US) X(CACHE_WRITE_US) X(REASONING_US) X(LLM_REASONING) X(LLM_TOTAL)       \
  X(GENAI_TOTAL) X(LLM_STREAMING) X(GENAI_STREAMING) X(LLM_TOP_K) X(LLM_FREQ_PEN) X(LLM_PRES_PEN)        \
  X(LLM_STOP) X(LLM_USER) X(GENAI_USER) X(LLM_RESP_FINISH) X(GENAI_FINISH) X(REQ_N) X(MAX_COMPL)        \
  X(REASONING_EFFORT) X(TL_KIND) X(TL_SESSION) X(TL_USER) X(TL_IN) X(TL_OUT) X(TL_WORKFLOW) X(TL_ENTITY)  \
  X(TL_PROMPT_KEY) X(TL_PROMPT_VERSION) X(TL_PROMPT_VERSION_NAME)                                       \
  /* OpenInference */                                                                                  \
  X(OI_KIND) X(OI_MODEL) X(OI_REQ_MODEL) X(OI_RESP_MODEL) X(OI_PROVIDER) X(OI_SYSTEM) X(OI_PROMPT)       \
  X(OI_COMPL) X(OI_TOTAL) X(OI_CACHE_READ) X(OI_CACHE_WRITE) X(OI_REASONING) X(OI_PARAMS) X(OI_IN)       \
  X(OI_IN_MIME) X(OI_OUT) X(OI_OUT_MIME) X(OI_FINISH) X(EMB_MODEL) X(SESSION_ID) X(USER_ID) X(ENDUSER_ID) \
  X(LLM_COST) X(OI_AGENT_NAME) X(OI_PT_TEMPLATE) X(OI_PT_VERSION) X(OI_PROMPT_ID)                      \
  /* Langfuse */                                                                                       \
  X(LF_TYPE) X(LF_MODEL) X(LF_PARAMS) X(LF_USAGE) X(LF_TTFT) X(LF_LEVEL) X(LF_STATUS_MSG) X(LF_INPUT)    \
  X(LF_OUTPUT) X(LF_SESSION) X(LF_USER) X(LF_COST) X(LF_PROMPT_NAME) X(LF_PROMPT_VERSION) X(LF_TRACE_NAME) \
  /* stamps of an upstream genai-gateway (a forwarding sidecar): receive/upstream.h */                   \
  X(GW_COST_SOURCE) X(GW_REPORTED_COST)

enum nz_slot {
#define NZ_SLOT_ENUM(id) NZ_S_##id,
  NZ_SLOTS(NZ_SLOT_ENUM)
#undef NZ_SLOT_ENUM
  NZ_S__COUNT
};

enum nz_dialect { NZ_D_SEMCONV, NZ_D_SEMCONV_OLD, NZ_D_OPENLLMETRY, NZ_D_OPENINFERENCE, NZ_D_LANGFUSE, NZ_D__COUNT };

struct nz_key {
  const char *key;
  uint16_t slot;
};

/* Each dialect file's key table (exact keys only). */
extern const struct nz_key nz_semconv_keys[], nz_semconv_old_keys[], nz_openllmetry_keys[],
  nz_openinference_keys[], nz_langfuse_keys[];
extern const size_t nz_semconv_nkeys, nz_semconv_old_nkeys, nz_openllmetry_nkeys, nz_openinference_nkeys,
  nz_langfuse_nkeys;

/* Indexed attribute families, read by prefix. */
enum nz_family { NZ_F_PROMPT, NZ_F_COMPLETION, NZ_F_OI_IN, NZ_F_OI_OUT, NZ_F__COUNT };
/* What a family entry holds: a message field, or a field of tool call `sub`, or text part `sub`. */
enum nz_field { NZ_FL_ROLE, NZ_FL_CONTENT, NZ_FL_NAME, NZ_FL_FINISH, NZ_FL_TOOL_CALL_ID, NZ_FL_TC_ID,
                NZ_FL_TC_NAME, NZ_FL_TC_ARGS, NZ_FL_PART_TEXT };

struct nz_flat_ent {
  uint32_t idx, sub, seq; /* sub 0: the message itself; j + 1: tool call or content part j */
  enum nz_field field;
  const GwAnyValue *v;
};

struct nz_flat {
  struct nz_flat_ent *v;
  uint32_t n;
};

/* One span's attributes, sorted into slots. */
struct nz_span {
  const GwAnyValue *v[NZ_S__COUNT];
  struct nz_flat flat[NZ_F__COUNT];
  uint32_t flat_cap; /* capacity of each flat array: the span's attribute count */
};

/* Token fields for which a value was reported but could not be used (bits of nz_ctx.tok_lost). */
enum { NZ_TOK_IN = 1, NZ_TOK_OUT = 2, NZ_TOK_TOTAL = 4 };

/* The request-scoped context every helper gets. oom is sticky: once set the record is abandoned. */
struct nz_sh_memo;
struct nz_ctx {
  struct gw_arena *a;
  struct nz_sh_memo *shm; /* the request's SimHash parts (nz_msgs_simhash); NULL: none kept */
  struct gw_record *r;
  const GwSpan *span;
  struct nz_span *s;
  bool oom;
  uint8_t tok_lost; /* NZ_TOK_*: no total is derived from what is left */
};

/* The canonical message model that every content dialect is converted into (semconv message shape).
 * A part is {"type":type,"content":text} when json is NULL, else the part object rendered as JSON. */
struct nz_part {
  const char *type, *text, *json;
  size_t len; /* text's length */
};
struct nz_msg {
  const char *role, *name, *finish_reason;
  struct nz_part *parts;
  uint32_t n, cap;
};
struct nz_msgs {
  struct nz_msg *v;
  uint32_t n, cap;
  /* The attribute text the messages were read from, when rendering them gives those very bytes (the direct
   * parser saw the canonical shape: no whitespace, keys in the rendered order, escapes as rendered) and
   * they still are the raw_n messages read from it. raw_fin: one of them has a finish_reason (which only
   * the output rendering writes). */
  const char *raw;
  size_t raw_len;
  uint32_t raw_n;
  bool raw_fin;
};

/* normalize.c: value access helpers. */
/* SHA-256 for prompt_hash and friends, fetched once (EVP_sha256() looks it up on every digest). */
const EVP_MD *nz_sha256(void);
const char *nz_str(const GwAnyValue *v); /* string value, NULL for other types or "" */
bool nz_dbl(struct nz_ctx *c, const GwAnyValue *v, double *out);

/* What a reported token count turned out to be. */
enum nz_count {
  NZ_COUNT_NONE,  /* not reported */
  NZ_COUNT_OK,    /* a count in [0, GW_TOKENS_MAX], in *out */
  NZ_COUNT_BAD,   /* not a whole number (flagged bad_attribute) */
  NZ_COUNT_RANGE, /* a whole number outside [0, GW_TOKENS_MAX] (flagged tokens_out_of_range) */
};
/* An attribute holding a count: an int, a double without fraction, or decimal digits. NONE for NULL. */
enum nz_count nz_count_av(struct nz_ctx *c, const GwAnyValue *v, int64_t *out);
/* A whole number already read (a JSON integer): OK or RANGE. */
enum nz_count nz_count_i64(struct nz_ctx *c, int64_t v, int64_t *out);
/* A double (a JSON number): OK, RANGE, or BAD when it has a fraction or is NaN or infinite. Checked before
 * any conversion, which is undefined for NaN, infinities and values past int64. */
enum nz_count nz_count_f64(struct nz_ctx *c, double d, int64_t *out);
const char *nz_slot_str(struct nz_ctx *c, enum nz_slot s);
bool nz_flat_add(struct nz_ctx *c, enum nz_family f, uint32_t idx, enum nz_field fl, uint32_t sub,
                 const GwAnyValue *v);

/* semconv.c: JSON helpers, the message model and its rendering, current-semconv content. */
/* Parse attribute text as JSON (json-c, strict). json-c has no allocator hook, so the document's memory
 * is estimated first and borrowed from the request arena (cap and in-flight budget) until nz_json_put:
 * when it does not fit, nothing is parsed, c->oom is set and the request fails as any arena exhaustion
 * does (413, or 503 under load). NULL also for text that is not JSON. */
struct json_object *nz_json_parse(struct nz_ctx *c, const char *s, size_t n);
/* Free a document from nz_json_parse (NULL is fine) and give its memory back to the arena. */
void nz_json_put(struct nz_ctx *c, struct json_object *o);
void nz_json_write(struct gw_sb *sb, struct json_object *o, int depth);
void nz_av_write(struct gw_sb *sb, const GwAnyValue *v, int depth);
/* A JSON object of key/value pairs (attributes, resource); NULL when the arena is exhausted. *len (when
 * len is not NULL): its strlen. */
char *nz_render_kvs(struct gw_arena *a, GwKeyValue *const *kv, size_t n, size_t *len);
void nz_sb_str(struct gw_sb *sb, const char *s, size_t n); /* JSON string, NUL dropped, bad UTF-8 replaced */
void nz_sb_double(struct gw_sb *sb, double d);
const char *nz_json_dup_str(struct nz_ctx *c, struct json_object *o); /* arena copy of a json string */
struct nz_msg *nz_msgs_add(struct nz_ctx *c, struct nz_msgs *m, const char *role);
void nz_msg_text(struct nz_ctx *c, struct nz_msg *m, const char *type, const char *text);
/* The same for a text whose length is known (strlen(text) == len). */
void nz_msg_text_n(struct nz_ctx *c, struct nz_msg *m, const char *type, const char *text, size_t len);
void nz_msg_json(struct nz_ctx *c, struct nz_msg *m, const char *json);
/* Messages from a semconv value (JSON string or structured array); OpenAI-shaped objects are accepted.
 * A JSON string of the usual shape is read directly, anything else through json-c (same result). */
bool nz_msgs_from_value(struct nz_ctx *c, const GwAnyValue *v, struct nz_msgs *out);
/* false: every JSON string goes through json-c (tests compare the two paths). Set before normalizing. */
extern bool nz_fast_json;
/* Tests: false renders every message array, even one fs_msgs found already in the rendered form. */
extern bool nz_reuse_raw;
extern _Thread_local uint64_t nz_fast_json_reads; /* values this thread read directly (tests) */
bool nz_msgs_from_json(struct nz_ctx *c, struct json_object *arr, struct nz_msgs *out);
bool nz_msg_from_json(struct nz_ctx *c, struct json_object *o, struct nz_msgs *out);
/* gen_ai.system_instructions: a list of parts (JSON string, structured, or plain text). */
bool nz_parts_from_value(struct nz_ctx *c, const GwAnyValue *v, struct nz_msg *into);
/* The messages as prompt_content / response_content JSON; *len (when len is not NULL): its strlen. */
char *nz_msgs_render(struct nz_ctx *c, const struct nz_msgs *m, bool output, size_t *len);
/* Plain text of the text parts of the messages whose role is `role` (all when NULL), "\n"-joined;
 * *len (when len is not NULL): its strlen. */
char *nz_msgs_text(struct nz_ctx *c, const struct nz_msgs *m, const char *role, size_t *len);
/* prompt_hash of prompts that begin with earlier ones (normalize.c): a lane remembers its last
 * NZ_PH_RECENT prompts' SHA-256 checkpoints; nz_ph_job sets a job for p[0, n) up to start from the longest
 * prefix one of them shares (and to leave its own checkpoints: arena), nz_ph_done remembers it once hashed
 * (gw_sha256_jobs). Without the SHA extensions a job is the whole message and nothing is remembered. */
#define NZ_PH_RECENT 4
struct nz_ph_done {
  const char *p;
  size_t nck; /* checkpoints: the state after each GW_SHA256_CK bytes of p */
  const struct gw_sha256_mid *ck;
};
struct nz_ph_lane {
  struct nz_ph_done recent[NZ_PH_RECENT];
  int nr, next;
  bool on; /* gw_sha256_resumable() */
  struct gw_hist_cache *shared; /* prompt prefixes kept between requests (normalize.h); NULL: none */
  size_t ck_from; /* the job's first checkpoint written (not 0 when it resumed from the shared cache) */
};
/* shared: for a prompt of a chat under way (talk: more than two messages; only such a prompt can begin
 * with one kept), the cache looked in when no recent prompt of the lane shares a longer prefix, and given
 * the prompt once hashed. */
void nz_ph_init(struct nz_ph_lane *l, struct gw_hist_cache *shared);
void nz_ph_job(struct nz_ph_lane *l, struct gw_arena *a, struct gw_sha256_job *j, const char *p, size_t n, bool talk);
void nz_ph_done(struct nz_ph_lane *l, const struct gw_sha256_job *j, bool talk);
/* Prompt prefixes in the shared cache (history_cache.c): get tries p's last NZ_PHC_PROBES checkpoints from
 * the longest, none below kmin, and gives the checkpoints k of the longest found (0: none) with the SHA-256
 * state after them in *st; put keeps p[0, k x GW_SHA256_CK) and the state st after it. */
#define NZ_PHC_PROBES 32
size_t nz_phc_get(struct gw_hist_cache *c, const char *p, size_t n, size_t kmin, struct gw_sha256_mid *st);
void nz_phc_put(struct gw_hist_cache *c, const char *p, size_t k, const struct gw_sha256_mid *st);
/* A request's SimHash parts of NZ_SH_MEMO_MIN bytes or more, each hashed once (a conversation's calls each
 * resend the system prompt and every earlier turn). */
#define NZ_SH_MEMO_MIN 128
#define NZ_SH_MEMO_MAX 4096 /* parts kept at most (about 1.5 MB of arena); later ones are hashed each time */
#define NZ_SH_PROBES 8      /* slots a look-up compares at most (semconv.c, sh_slot) */
struct nz_sh_ent {
  const char *text;
  size_t len;
  uint64_t key;
  const struct gw_simhash_part *part;
};
struct nz_sh_memo {
  struct nz_sh_ent *v; /* open addressing on sh_key (semconv.c), cap a power of two */
  uint32_t n, cap;
  uint64_t compares; /* texts compared in look-ups (tests: at most NZ_SH_PROBES a look-up) */
  struct gw_hist_cache *shared; /* looked in on a miss, given history parts (normalize.h); NULL: none */
};
/* The SimHash of texts joined by '\n', given one at a time: long ones through the memo m (NULL: none),
 * the others gathered into runs, the pieces joined (simhash.h). end: false when no token, or on running
 * out of memory (*oom set). */
struct nz_sh_acc {
  struct gw_simhash_join j;
  struct nz_sh_memo *m;
  struct gw_arena *a;
  struct gw_sb sb;
  const char *one;
  size_t one_len;
  unsigned n;
};
void nz_sh_begin(struct nz_sh_acc *s, struct nz_sh_memo *m, struct gw_arena *a);
/* history: the text will be resent by the conversation's next calls (a message before the input's last, or
 * any message of an input of more than two: a chat under way), so it may go to the memo's shared cache. An
 * input of one or two messages (a system prompt and a question) keeps its last out: most such calls are
 * one-shot, and a cache filled with their questions would hold nothing met again. */
void nz_sh_add(struct nz_sh_acc *s, const char *text, size_t len, bool history);
bool nz_sh_end(struct nz_sh_acc *s, uint64_t *out, bool *oom);
/* The SimHash of nz_msgs_text(c, m, NULL) through c->shm. */
bool nz_msgs_simhash(struct nz_ctx *c, const struct nz_msgs *m, uint64_t *out);
/* The shared cache's look-up (a copy of the part into *out) and store (history_cache.c); key: sh_key. */
bool nz_shc_get(struct gw_hist_cache *c, uint64_t key, const char *text, size_t len, struct gw_simhash_part *out);
void nz_shc_put(struct gw_hist_cache *c, uint64_t key, const char *text, size_t len, const struct gw_simhash_part *p);
/* The gen_ai.client.inference.operation.details event (current semconv). */
void nz_semconv_events(struct nz_ctx *c, struct nz_msgs *in, struct nz_msgs *out, struct nz_msg *sys);

/* semconv_old.c: deprecated events and the gen_ai.prompt / gen_ai.completion JSON attributes. */
void nz_old_events(struct nz_ctx *c, struct nz_msgs *in, struct nz_msgs *out);
bool nz_old_content(struct nz_ctx *c, const GwAnyValue *v, const char *role, struct nz_msgs *out);

/* openllmetry.c */
bool nz_openllmetry_flat(struct nz_ctx *c, const char *key, size_t klen, const GwAnyValue *v);
void nz_flat_msgs(struct nz_ctx *c, enum nz_family f, struct nz_msgs *out);
const char *nz_openllmetry_operation(const char *request_type, const char *span_kind);

/* openinference.c */
bool nz_openinference_flat(struct nz_ctx *c, const char *key, size_t klen, const GwAnyValue *v);
const char *nz_openinference_operation(const char *span_kind);
/* llm.invocation_parameters into the parameter object being built (keys not yet present only). */
struct nz_params {
  struct gw_sb sb;
  uint32_t have; /* bit per parameter already written */
};
void nz_params_put_av(struct nz_params *p, unsigned id, const GwAnyValue *v);
void nz_params_put_json(struct nz_params *p, unsigned id, struct json_object *o);
/* The standard parameter names of a JSON object (OpenAI request style) into p. */
void nz_params_from_json(struct nz_params *p, struct json_object *o);
void nz_openinference_params(struct nz_ctx *c, struct nz_params *p, const char **req_model, gw_tribool *stream);
/* input.value / output.value / traceloop.entity.*: messages when the JSON holds any, else one text message. */
bool nz_raw_content(struct nz_ctx *c, const GwAnyValue *v, bool output, struct nz_msgs *out);

/* a + b for two token counts into *sum; false when the sum is above GW_TOKENS_MAX (the caller leaves the
 * field unknown: a wrapped or clamped count would be a made-up number). */
static inline bool nz_tokens_add(int64_t a, int64_t b, int64_t *sum)
{
  int64_t s;
  if (__builtin_add_overflow(a, b, &s) || s > GW_TOKENS_MAX)
    return false;
  *sum = s;
  return true;
}

/* langfuse.c */
void nz_langfuse_usage(struct nz_ctx *c);
/* langfuse.observation.cost_details: its total (else the sum of its buckets) in nano-USD. */
bool nz_langfuse_cost(struct nz_ctx *c, int64_t *nusd);
void nz_langfuse_params(struct nz_ctx *c, struct nz_params *p);
bool nz_langfuse_ttft(struct nz_ctx *c, double *ms);
const char *nz_langfuse_operation(const char *type);

/* Parameter names, in output order (bit i of nz_params.have). */
#define NZ_PARAMS(X)                                                                                     \
  X(TEMPERATURE, "temperature") X(TOP_P, "top_p") X(TOP_K, "top_k") X(MAX_TOKENS, "max_tokens")          \
  X(MAX_COMPLETION_TOKENS, "max_completion_tokens") X(FREQUENCY_PENALTY, "frequency_penalty")          \
  X(PRESENCE_PENALTY, "presence_penalty") X(SEED, "seed") X(STOP_SEQUENCES, "stop_sequences")            \
  X(CHOICE_COUNT, "choice_count") X(SERVICE_TIER, "service_tier") X(REASONING_EFFORT, "reasoning_effort") \
  X(ENCODING_FORMATS, "encoding_formats") X(OUTPUT_TYPE, "output_type")

enum nz_param {
#define NZ_PARAM_ENUM(id, name) NZ_P_##id,
  NZ_PARAMS(NZ_PARAM_ENUM)
#undef NZ_PARAM_ENUM
  NZ_P__COUNT
};
extern const char *const nz_param_names[];

/* Parse "<digits>." at *p (at most 9 digits) and advance past the dot; false when *p is not an index. */
bool nz_index_dot(const char **p, const char *end, uint32_t *idx);

/* When parsing a content value added no message to out (still `before` long), keep the raw text s as one
 * message of `role`. True when out grew. */
bool nz_msgs_text_fallback(struct nz_ctx *c, struct nz_msgs *out, uint32_t before, const char *role, const char *s);

#endif
