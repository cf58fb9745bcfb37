/*
 * fuzz_redact_json.c: redaction of values that are JSON text (redact/redact_json.c's parser, re-escaping
 * and truncation), through the calls the pipeline makes: gw_redact_records on a record's content fields
 * (message arrays: one shared truncation budget) and attribute objects (member names are keys), and
 * gw_redact_string for an attribute value.
 * Input: one selector byte, then the text (made valid UTF-8 first, as decoding does for every string).
 *   sel & 3: 0 prompt_content, 1 response_content, 2 attributes (attribute mode), 3 an attribute value
 *   (sel >> 2) & 3: the policy: defaults; defaults cut at 32 bytes; every detector hashing, cut at 100;
 *   every detector dropping, user.* hashed, no cut.
 * Checks: valid JSON in, changed, must be valid JSON out (the promise redact.h makes), for objects and
 * arrays: a bare string or number is text to the redactor (content fields hold message arrays). And for
 * the content fields, the memo: the same text redacted first as the request's message attribute (so the
 * record's column can be answered from that walk, under the field's budget) must give the record the
 * same column, counts, kinds and flags as redacting it with no memo at all.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "decode/decode.h"
#include "fuzzutil.h"
#include "normalize/record.h"
#include "pb.h"
#include "redact/redact.h"

static struct gw_redactor *red[4];

static void init(void)
{
  static const struct gw_redact_key_rule rules[] = {{"user.*", GW_REDACT_HASH}};
  static const size_t cut[4] = {8192, 32, 100, 0};
  for (int i = 0; i < 4; i++) {
    struct gw_redact_policy p;
    struct gw_err err;
    gw_redact_policy_defaults(&p);
    p.max_content_bytes = cut[i];
    p.hmac_key = "fuzz-hmac-key";
    for (int k = 0; k < GW_RK__COUNT && i >= 2; k++)
      p.actions[k] = i == 2 ? GW_REDACT_HASH : GW_REDACT_DROP;
    if (i == 3) {
      p.key_rules = rules;
      p.n_key_rules = 1;
    }
    if (!(red[i] = gw_redactor_create(&p, &err)))
      abort();
  }
}

/* RFC 8259 JSON, checked strictly (json-c lets leading zeros and raw control bytes in strings pass), no
 * deeper than 48 levels: the redactor walks 64 and redacts deeper text as plain text, a documented limit. */
static bool v_value(const char **p, int depth);

static void v_ws(const char **p)
{
  while (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r')
    (*p)++;
}

static bool v_string(const char **p)
{
  for ((*p)++;;) {
    unsigned char ch = (unsigned char)*(*p)++;
    if (ch == '"')
      return true;
    if (ch < 0x20)
      return false;
    if (ch != '\\')
      continue;
    ch = (unsigned char)*(*p)++;
    if (ch == 'u') {
      for (int i = 0; i < 4; i++)
        if (!isxdigit((unsigned char)*(*p)++))
          return false;
    } else if (!ch || !strchr("\"\\/bfnrt", ch)) {
      return false;
    }
  }
}

static bool v_digits(const char **p)
{
  if (!isdigit((unsigned char)**p))
    return false;
  while (isdigit((unsigned char)**p))
    (*p)++;
  return true;
}

static bool v_number(const char **p)
{
  if (**p == '-')
    (*p)++;
  if (**p == '0')
    (*p)++;
  else if (!v_digits(p))
    return false;
  if (**p == '.' && ((*p)++, !v_digits(p)))
    return false;
  if (**p == 'e' || **p == 'E') {
    (*p)++;
    if (**p == '+' || **p == '-')
      (*p)++;
    return v_digits(p);
  }
  return true;
}

static bool v_items(const char **p, int depth, char close, bool members)
{
  (*p)++;
  v_ws(p);
  if (**p == close)
    return (*p)++, true;
  for (;;) {
    v_ws(p);
    if (members) {
      if (**p != '"' || !v_string(p))
        return false;
      v_ws(p);
      if (*(*p)++ != ':')
        return false;
    }
    if (!v_value(p, depth + 1))
      return false;
    v_ws(p);
    char ch = *(*p)++;
    if (ch == close)
      return true;
    if (ch != ',')
      return false;
  }
}

static bool v_value(const char **p, int depth)
{
  v_ws(p);
  if (depth > 48)
    return false;
  switch (**p) {
  case '{': return v_items(p, depth, '}', true);
  case '[': return v_items(p, depth, ']', false);
  case '"': return v_string(p);
  case 't': return strncmp(*p, "true", 4) ? false : (*p += 4, true);
  case 'f': return strncmp(*p, "false", 5) ? false : (*p += 5, true);
  case 'n': return strncmp(*p, "null", 4) ? false : (*p += 4, true);
  default: return v_number(p);
  }
}

static bool valid_json(const char *s)
{
  if (!v_value(&s, 0))
    return false;
  v_ws(&s);
  return !*s;
}

/* A request of one span whose one attribute is key = text (a copy), as the SDK sends a message array. */
static GwTraceRequest *one_attribute(struct gw_arena *a, const char *key, const char *text)
{
  GwTraceRequest *req = gw_arena_calloc(a, sizeof *req);
  GwResourceSpans *rs = gw_arena_calloc(a, sizeof *rs), **rsv = gw_arena_calloc(a, sizeof *rsv);
  GwScopeSpans *ss = gw_arena_calloc(a, sizeof *ss), **ssv = gw_arena_calloc(a, sizeof *ssv);
  GwSpan *sp = gw_arena_calloc(a, sizeof *sp), **spv = gw_arena_calloc(a, sizeof *spv);
  GwKeyValue *kv = gw_arena_calloc(a, sizeof *kv), **kvv = gw_arena_calloc(a, sizeof *kvv);
  GwAnyValue *av = gw_arena_calloc(a, sizeof *av);
  char *k = gw_arena_strdup(a, key), *t = gw_arena_strdup(a, text);
  if (!req || !rs || !rsv || !ss || !ssv || !sp || !spv || !kv || !kvv || !av || !k || !t)
    return NULL;
  gw_pb_trace_request_init(req);
  gw_pb_resource_spans_init(rs);
  gw_pb_scope_spans_init(ss);
  gw_pb_span_init(sp);
  gw_pb_key_value_init(kv);
  gw_pb_any_value_init(av);
  av->value_case = GW_AV_STRING;
  av->string_value = t;
  kv->key = k;
  kv->value = av;
  kvv[0] = kv;
  sp->attributes = kvv;
  sp->n_attributes = 1;
  spv[0] = sp;
  ss->spans = spv;
  ss->n_spans = 1;
  ssv[0] = ss;
  rs->scope_spans = ssv;
  rs->n_scope_spans = 1;
  rsv[0] = rs;
  req->resource_spans = rsv;
  req->n_resource_spans = 1;
  return req;
}

static bool same_str(const char *x, const char *y) { return x == y || (x && y && !strcmp(x, y)); }

/* The record's column redacted with a memo the request pass filled (the same text as the message
 * attribute) against with no memo: aborts on any difference. */
static void memo_differential(const struct gw_redactor *r, struct gw_arena *a, const char *in, bool response)
{
  GwTraceRequest *req = one_attribute(a, response ? "gen_ai.output.messages" : "gen_ai.input.messages", in);
  struct gw_redact_memo *m = gw_redact_memo_create(a);
  if (!req || !m || gw_redact_request(r, req, a, m))
    return;
  struct gw_record rec[2];
  for (int i = 0; i < 2; i++) {
    memset(&rec[i], 0, sizeof rec[i]);
    if (response)
      rec[i].response_content = in;
    else
      rec[i].prompt_content = in;
    if (gw_redact_records(r, &rec[i], 1, a, i ? NULL : m))
      return;
  }
  const char *c0 = response ? rec[0].response_content : rec[0].prompt_content;
  const char *c1 = response ? rec[1].response_content : rec[1].prompt_content;
  bool same = same_str(c0, c1) && rec[0].flags == rec[1].flags &&
              rec[0].redaction_count.set == rec[1].redaction_count.set &&
              rec[0].redaction_count.v == rec[1].redaction_count.v &&
              rec[0].redacted_kinds.n == rec[1].redacted_kinds.n;
  for (uint32_t i = 0; same && i < rec[0].redacted_kinds.n; i++)
    same = same_str(rec[0].redacted_kinds.v[i], rec[1].redacted_kinds.v[i]);
  if (!same)
    abort(); /* the memo changed what the record gets */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!red[0])
    init();
  if (size < 1)
    return 0;
  const struct gw_redactor *r = red[data[0] >> 2 & 3];
  struct gw_arena *a = gw_arena_create(64 << 20);
  bool fixed;
  char *in = gw_arena_alloc(a, size);
  if (!in)
    goto out;
  memcpy(in, data + 1, size - 1);
  in[size - 1] = '\0';
  if (!(in = gw_utf8_fix(a, in, size - 1, &fixed)))
    goto out;
  const char *res;
  if ((data[0] & 3) == 3) {
    res = gw_redact_string(r, "gen_ai.tool.call.arguments", in, strlen(in), a, NULL);
  } else {
    struct gw_record rec;
    memset(&rec, 0, sizeof rec);
    const char **field = (data[0] & 3) == 0 ? &rec.prompt_content
                         : (data[0] & 3) == 1 ? &rec.response_content : &rec.attributes;
    *field = in;
    if (gw_redact_records(r, &rec, 1, a, gw_redact_memo_create(a)))
      goto out;
    res = *field;
    if ((data[0] & 3) < 2)
      memo_differential(r, a, in, (data[0] & 3) == 1);
  }
  char first = in[strspn(in, " \t\r\n")];
  if (res && res != in && strcmp(res, in) && (first == '{' || first == '[') && valid_json(in) && !valid_json(res))
    abort(); /* redaction broke a JSON value */
out:
  gw_arena_destroy(a);
  return 0;
}
