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
 * arrays: a bare string or number is text to the redactor (content fields hold message arrays).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "decode/decode.h"
#include "fuzzutil.h"
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
  }
  char first = in[strspn(in, " \t\r\n")];
  if (res && res != in && strcmp(res, in) && (first == '{' || first == '[') && valid_json(in) && !valid_json(res))
    abort(); /* redaction broke a JSON value */
out:
  gw_arena_destroy(a);
  return 0;
}
