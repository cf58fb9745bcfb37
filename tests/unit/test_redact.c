/*
 * test_redact.c: redaction. The detector table (tests/fixtures/redact/detectors.tsv: true positives and
 * true negatives per detector), each action, allow/deny/key rules, user patterns and their errors,
 * truncation, the request walk (every place a string can hide), the record walk, metrics, threads, and
 * every captured SDK fixture: decoded, normalized, redacted and re-encoded without any PII its manifest lists.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "core/metrics.h"
#include "cost/cost.h"
#include "decode/decode.h"
#include "normalize/normalize.h"
#include "redact/redact.h"
#include "redact/redact_int.h"
#include "testutil.h"

static struct gw_arena *A;

static int setup(void **state)
{
  (void)state;
  gw_normalize_init();
  A = gw_arena_create(256u << 20);
  return 0;
}

static int teardown(void **state)
{
  (void)state;
  gw_arena_destroy(A);
  A = NULL;
  return 0;
}

static struct gw_redactor *make(const struct gw_redact_policy *p)
{
  struct gw_err err = {0};
  struct gw_redactor *r = gw_redactor_create(p, &err);
  if (!r)
    fail_msg("gw_redactor_create: %s", err.msg);
  return r;
}

static struct gw_redactor *make_default(void)
{
  struct gw_redact_policy p;
  gw_redact_policy_defaults(&p);
  return make(&p);
}

static const char *red(const struct gw_redactor *r, const char *key, const char *s)
{
  return gw_redact_string(r, key, s, strlen(s), A, NULL);
}

/* ---- the detector table ---- */

static char *unescape(const char *s)
{
  char *o = malloc(strlen(s) + 1), *w = o;
  for (; *s; s++) {
    if (*s == '\\' && s[1]) {
      s++;
      *w++ = *s == 'n' ? '\n' : *s == 't' ? '\t' : *s;
    } else {
      *w++ = *s;
    }
  }
  *w = 0;
  return o;
}

static void test_detector_table(void **state)
{
  (void)state;
  struct gw_redactor *r = make_default();
  char *text = tu_read_file("redact/detectors.tsv", NULL);
  int tp[GW_RK__COUNT] = {0}, tn[GW_RK__COUNT] = {0};
  int line_no = 0;
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    line_no++;
    if (line[0] == '#')
      continue;
    char *col[6] = {0};
    int nc = 0;
    for (char *p = line; nc < 6;) {
      col[nc++] = p;
      char *t = strchr(p, '\t');
      if (!t)
        break;
      *t = 0;
      p = t + 1;
    }
    assert_true(nc >= 4);
    enum gw_redact_kind k;
    if (!gw_redact_kind_parse(col[0], &k))
      fail_msg("line %d: unknown kind %s", line_no, col[0]);
    const char *key = strcmp(col[2], "-") ? col[2] : NULL;
    char *in = unescape(col[3]);
    const char *out = red(r, key, in);
    assert_non_null(out);
    char mask[64];
    static const char *const stems[] = {
#define STEM(id, name, label) label,
      GW_REDACT_KINDS(STEM)
#undef STEM
    };
    snprintf(mask, sizeof mask, "[%s_REDACTED]", stems[k]);
    if (col[1][0] == '+') {
      char *secret = unescape(col[4]);
      if (strstr(out, secret) || !strstr(out, mask))
        fail_msg("line %d (%s): '%s' -> '%s'", line_no, col[0], in, out);
      if (nc >= 6 && col[5][0]) {
        char *exact = unescape(col[5]);
        if (strcmp(out, exact))
          fail_msg("line %d (%s): '%s' -> '%s', want '%s'", line_no, col[0], in, out, exact);
        free(exact);
      }
      free(secret);
      tp[k]++;
    } else {
      if (strcmp(out, in))
        fail_msg("line %d (%s): true negative '%s' changed to '%s'", line_no, col[0], in, out);
      tn[k]++;
    }
    free(in);
  }
  for (int k = 0; k < GW_RK__COUNT; k++) {
    if (tp[k] < 10 || tn[k] < 10)
      fail_msg("%s: %d true positives, %d true negatives, want 10 each", gw_redact_kind_name(k), tp[k], tn[k]);
  }
  free(text);
  gw_redactor_destroy(r);
}

/* Several findings in one value, overlapping detectors, escapes inside JSON. */
static void test_mixed_values(void **state)
{
  (void)state;
  struct gw_redactor *r = make_default();
  assert_string_equal(red(r, NULL, "Reach me at +1 646 555 0986 or grace.rossi47@example.com and my social "
                                   "security number is 219-96-7272"),
                      "Reach me at [PHONE_REDACTED] or [EMAIL_REDACTED] and my social security number is "
                      "[SSN_REDACTED]");
  /* a phone number as an email's local part: the email takes it whole, the domain does not stay behind */
  assert_string_equal(red(r, NULL, "212-555-1234@example.com or 10.0.0.1"), "[EMAIL_REDACTED] or [IP_REDACTED]");
  /* JSON escapes are undone before matching and redone after: the result stays valid JSON */
  const char *j = red(r, NULL, "{\"a\":\"x\\nbob@example.com\\t\\u00e9\",\"n\":[1,2.5e3,true,null]}");
  assert_string_equal(j, "{\"a\":\"x\\n[EMAIL_REDACTED]\\t\xc3\xa9\",\"n\":[1,2.5e3,true,null]}");
  /* JSON inside a JSON string (an attribute holding a message array, rendered into the attributes JSON) */
  const char *nested = "{\"gen_ai.input.messages\":\"[{\\\"role\\\":\\\"user\\\",\\\"content\\\":\\\"mail "
                       "me\\\\nalice@example.com\\\"}]\"}";
  const char *o = red(r, NULL, nested);
  assert_null(strstr(o, "alice@example.com"));
  assert_non_null(strstr(o, "[EMAIL_REDACTED]"));
  struct json_object *obj = json_tokener_parse(o), *inner;
  assert_non_null(obj);
  assert_true(json_object_object_get_ex(obj, "gen_ai.input.messages", &inner));
  struct json_object *arr = json_tokener_parse(json_object_get_string(inner));
  assert_non_null(arr);
  json_object_put(arr);
  json_object_put(obj);
  /* long strings are scanned in blocks: escapes, the end quote and bad bytes past the first blocks */
  assert_string_equal(red(r, NULL, "{\"a\":\"a long run of plain text before the escape \\\"quoted\\\" then "
                                   "bob@example.com and a backslash \\\\ after another long run of text\"}"),
                      "{\"a\":\"a long run of plain text before the escape \\\"quoted\\\" then "
                      "[EMAIL_REDACTED] and a backslash \\\\ after another long run of text\"}");
  assert_string_equal(red(r, NULL, "[\"twenty bytes of text\x01 bob@example.com\"]"),
                      "[\"twenty bytes of text\x01 [EMAIL_REDACTED]\"]"); /* a raw control: not JSON */
  assert_string_equal(red(r, NULL, "[\"bob@example.com and a long enough run of text \\"),
                      "[\"[EMAIL_REDACTED] and a long enough run of text \\"); /* ends inside an escape */
  /* text that only starts like JSON is redacted as text */
  assert_string_equal(red(r, NULL, "[note] mail bob@example.com"), "[note] mail [EMAIL_REDACTED]");
  /* an unchanged value is the same pointer (no copy) */
  const char *same = "nothing to see here 42";
  assert_ptr_equal(red(r, NULL, same), same);
  /* a 16-digit id failing Luhn is kept; the same digits made Luhn-valid are not */
  assert_string_equal(red(r, NULL, "id 4111111111111112"), "id 4111111111111112");
  assert_string_equal(red(r, NULL, "id 4111111111111111"), "id [CARD_REDACTED]");
  gw_redactor_destroy(r);
}

static char *repeat(const char *unit, size_t times);

/* Malformed or hostile JSON-looking text: never a crash, never a leak, redacted as text instead. */
static void test_bad_json(void **state)
{
  (void)state;
  struct gw_redactor *r = make_default();
  static const char *const bad[] = {
    "[\"bob@example.com", "{\"a\":\"bob@example.com\"", "{\"a\" \"bob@example.com\"}", "[\"\\u12\", \"bob@example.com\"]",
    "[\"\\ud800 bob@example.com\"]", "{\"a\":tru, \"b\":\"bob@example.com\"}", "[1.,\"bob@example.com\"]",
    "[\"x\"] trailing bob@example.com", "{\"a\":\"\\q bob@example.com\"}", "[01, \"bob@example.com\"]",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const char *o = red(r, NULL, bad[i]);
    assert_non_null(o);
    if (strstr(o, "bob@example.com"))
      fail_msg("'%s' -> '%s'", bad[i], o);
  }
  /* nesting past the walker's depth: plain-text redaction of the whole */
  char *deep = repeat("[", 200);
  char *text = malloc(strlen(deep) + 64);
  sprintf(text, "%s\"bob@example.com\"", deep);
  assert_null(strstr(red(r, NULL, text), "bob@example.com"));
  free(text);
  free(deep);
  /* a lone surrogate becomes U+FFFD, the value stays valid UTF-8 and JSON */
  const char *o = red(r, NULL, "[\"\\ud800 bob@example.com\"]");
  struct json_object *j = json_tokener_parse(o);
  assert_non_null(j);
  json_object_put(j);
  gw_redactor_destroy(r);
}

/* Issue 11 (fuzzing): a content value that starts like JSON but does not parse is redacted and cut as plain
 * text from where it started. The strings the failed parse walked had spent the truncation budget and
 * counted their detections, so the value kept only the marker and its redactions were counted twice. */
static void test_issue11_bad_json_budget(void **state)
{
  (void)state;
  struct gw_redact_policy p;
  gw_redact_policy_defaults(&p);
  p.max_content_bytes = 100;
  struct gw_redactor *r = make(&p);
  char *a90 = repeat("a", 90);
  char text[256];
  snprintf(text, sizeof text, "[\"%s\", \"mail bob@example.com\", \"raw \x01 control\"]", a90);
  struct gw_record rec;
  memset(&rec, 0, sizeof rec);
  rec.response_content = text;
  assert_int_equal(gw_redact_records(r, &rec, 1, A, NULL), GW_OK);
  /* the first 100 bytes kept (the email starts after them), then the marker */
  assert_int_equal(strlen(rec.response_content), 100 + strlen("...[TRUNCATED]"));
  assert_memory_equal(rec.response_content, text, 100);
  assert_true(gw_record_has_flag(&rec, GW_FLAG_CONTENT_TRUNCATED));
  assert_int_equal(rec.redaction_count.v, 1); /* the email, redacted before the cut */
  /* with no cut, the email is redacted and counted once */
  memset(&rec, 0, sizeof rec);
  snprintf(text, sizeof text, "[\"mail bob@example.com\", \"raw \x01 control\"]");
  rec.response_content = text;
  assert_int_equal(gw_redact_records(r, &rec, 1, A, NULL), GW_OK);
  assert_null(strstr(rec.response_content, "bob@example.com"));
  assert_int_equal(rec.redaction_count.v, 1);
  assert_false(gw_record_has_flag(&rec, GW_FLAG_CONTENT_TRUNCATED));
  free(a90);
  gw_redactor_destroy(r);
}

/* ---- actions ---- */

static void test_hash_action(void **state)
{
  (void)state;
  struct gw_redact_policy p;
  gw_redact_policy_defaults(&p);
  p.actions[GW_RK_EMAIL] = GW_REDACT_HASH;
  p.hmac_key = "k1-secret-hmac-key";
  struct gw_redactor *r1 = make(&p);
  p.hmac_key = "k2-other-key";
  struct gw_redactor *r2 = make(&p);

  const char *a = red(r1, NULL, "from alice@example.com");
  const char *b = red(r1, NULL, "to alice@example.com!");
  const char *c = red(r1, NULL, "from carol@example.com");
  const char *d = red(r2, NULL, "from alice@example.com");
  assert_null(strstr(a, "alice"));
  /* "[EMAIL:" + 12 hex + "]" */
  const char *t = strstr(a, "[EMAIL:");
  assert_non_null(t);
  for (int i = 0; i < 12; i++)
    assert_non_null(strchr("0123456789abcdef", t[7 + i]));
  assert_int_equal(t[19], ']');
  assert_int_equal(strlen(a), strlen("from [EMAIL:") + 13);
  /* same value, same key: same token; other value or other key: another token */
  assert_memory_equal(t, strstr(b, "[EMAIL:"), 20);
  assert_memory_not_equal(t, strstr(c, "[EMAIL:"), 20);
  assert_memory_not_equal(t, strstr(d, "[EMAIL:"), 20);
  /* other detectors keep masking */
  assert_string_equal(red(r1, NULL, "ip 10.0.0.1"), "ip [IP_REDACTED]");
  gw_redactor_destroy(r1);
  gw_redactor_destroy(r2);
}

/* GenAI events are cut like a span's content: one span's messages of one direction share a budget of
 * max_content_bytes in a request, another span or direction has its own, text_content is cut per string,
 * the JSON stays valid, and this happens with redaction off too. */
static char *msg_json(char fill, size_t n)
{
  char *body = malloc(n + 1);
  memset(body, fill, n);
  body[n] = 0;
  char *out;
  assert_true(asprintf(&out, "{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"%s\"}]}", body) > 0);
  free(body);
  return out;
}

static void test_event_content_cut(void **state)
{
  (void)state;
  for (int enabled = 1; enabled >= 0; enabled--) {
    struct gw_redact_policy p;
    gw_redact_policy_defaults(&p);
    p.enabled = enabled;
    p.max_content_bytes = 200;
    struct gw_redactor *r = make(&p);
    char *m1 = msg_json('a', 150), *m2 = msg_json('b', 150), *m3 = msg_json('c', 150), *m4 = msg_json('d', 300);
    char text[301];
    memset(text, 'd', 300);
    text[300] = 0;
    struct gw_event ev[4];
    memset(ev, 0, sizeof ev);
    const char *spans[4] = {"1111111111111111", "1111111111111111", "2222222222222222", "1111111111111111"};
    const char *dirs[4] = {"input", "input", "input", "output"};
    char *msgs[4] = {m1, m2, m3, m4};
    for (int i = 0; i < 4; i++) {
      snprintf(ev[i].trace_id, sizeof ev[i].trace_id, "%s", "0af7651916cd43dd8448eb211c80319c");
      snprintf(ev[i].span_id, sizeof ev[i].span_id, "%s", spans[i]);
      ev[i].role = i == 3 ? "assistant" : "user";
      ev[i].direction = dirs[i];
      ev[i].content = msgs[i];
    }
    ev[3].text_content = text;
    assert_int_equal(gw_redact_events(r, ev, 4, A, NULL), GW_OK);
    /* span 1, input: 150 fit, then 50 of the second and the marker */
    assert_string_equal(ev[0].content, m1);
    assert_non_null(strstr(ev[1].content, "bbbbb...[TRUNCATED]\""));
    assert_null(strstr(ev[1].content, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")); /* 51 b's */
    /* span 2 has its own budget; span 1's output too (cut at 200) */
    assert_string_equal(ev[2].content, m3);
    assert_non_null(strstr(ev[3].content, "...[TRUNCATED]"));
    assert_int_equal(strlen(ev[3].text_content), 200 + strlen("...[TRUNCATED]"));
    for (int i = 0; i < 4; i++) {
      struct json_object *o = json_tokener_parse(ev[i].content);
      assert_non_null(o);
      json_object_put(o);
    }
    assert_int_equal(ev[1].redaction_count.set, enabled == 1);
    free(m1), free(m2), free(m3), free(m4);
    gw_redactor_destroy(r);
  }
}

static void test_drop_action(void **state)
{
  (void)state;
  struct gw_redact_policy p;
  gw_redact_policy_defaults(&p);
  p.actions[GW_RK_SSN] = GW_REDACT_DROP;
  struct gw_redactor *r = make(&p);
  struct gw_redact_stats st = {0};
  const char *s = "ssn 123-45-6789 and bob@example.com";
  assert_null(gw_redact_string(r, "note", s, strlen(s), A, &st));
  assert_int_equal(st.kinds[GW_RK_SSN], 1);
  assert_string_equal(red(r, "note", "only bob@example.com"), "only [EMAIL_REDACTED]");
  /* in a message array, a drop drops the whole value */
  assert_null(red(r, NULL, "[{\"role\":\"user\",\"content\":\"ssn 123-45-6789\"}]"));
  /* in attribute mode (record attributes JSON) only the member goes */
  struct gw_record rec;
  memset(&rec, 0, sizeof rec);
  rec.attributes = "{\"a\":\"ssn 123-45-6789\",\"b\":\"ok\",\"c\":{\"d\":\"123-45-6789\",\"e\":1}}";
  assert_int_equal(gw_redact_records(r, &rec, 1, A, NULL), GW_OK);
  assert_string_equal(rec.attributes, "{\"b\":\"ok\",\"c\":{\"e\":1}}");
  /* removing members keeps the commas right wherever they sit; formatting is kept */
  static const char *const drops[][2] = {
    {"{ \"a\" : \"123-45-6789\" , \"b\":1 }", "{  \"b\":1 }"},
    {"{\"a\":1,\"b\":\"123-45-6789\",\"c\":2}", "{\"a\":1,\"c\":2}"},
    {"{\"a\":1,\"b\":[\"x\",\"123-45-6789\"]}", "{\"a\":1}"},
    {"{\"a\":\"123-45-6789\",\"b\":\"123-45-6789\"}", "{}"},
    {"{\"a\":\"123-45-6789\",\"b\":\"123-45-6789\",\"c\":\"bob@example.com\"}", "{\"c\":\"[EMAIL_REDACTED]\"}"},
  };
  for (size_t i = 0; i < sizeof drops / sizeof drops[0]; i++) {
    memset(&rec, 0, sizeof rec);
    rec.attributes = drops[i][0];
    assert_int_equal(gw_redact_records(r, &rec, 1, A, NULL), GW_OK);
    assert_string_equal(rec.attributes, drops[i][1]);
    struct json_object *o = json_tokener_parse(rec.attributes);
    assert_non_null(o);
    json_object_put(o);
  }
  gw_redactor_destroy(r);
  /* disabling a detector */
  gw_redact_policy_defaults(&p);
  p.actions[GW_RK_IPV4] = GW_REDACT_OFF;
  r = make(&p);
  assert_string_equal(red(r, NULL, "10.0.0.1 bob@example.com"), "10.0.0.1 [EMAIL_REDACTED]");
  gw_redactor_destroy(r);
}

static void test_allow_deny_keys(void **state)
{
  (void)state;
  struct gw_redactor *r = make_default();
  const char *mail = "alice@example.com";
  assert_ptr_equal(red(r, "gen_ai.request.model", mail), mail);
  assert_ptr_equal(red(r, "service.name", mail), mail);
  assert_ptr_equal(red(r, "telemetry.sdk.language", mail), mail); /* prefix rule telemetry.sdk.* */
  assert_string_equal(red(r, "user.id", mail), "[EMAIL_REDACTED]");
  assert_null(red(r, "http.request.header.authorization", "Basic abc"));
  assert_null(red(r, "http.request.header.cookie", "session=1"));
  assert_null(red(r, "http.request.header.x-api-key", "whatever"));
  gw_redactor_destroy(r);

  static const char *const allow[] = {"my.safe.*"};
  static const char *const deny[] = {"secret.note"};
  static const struct gw_redact_key_rule rules[] = {{"user.id", GW_REDACT_HASH}, {"debug.blob", GW_REDACT_DROP},
                                                    {"raw.*", GW_REDACT_OFF}};
  struct gw_redact_policy p;
  gw_redact_policy_defaults(&p);
  p.allow_keys = allow;
  p.n_allow_keys = 1;
  p.deny_keys = deny;
  p.n_deny_keys = 1;
  p.key_rules = rules;
  p.n_key_rules = 3;
  p.hmac_key = "key";
  r = make(&p);
  assert_ptr_equal(red(r, "my.safe.thing", mail), mail);
  assert_string_equal(red(r, "gen_ai.request.model", mail), "[EMAIL_REDACTED]"); /* defaults replaced */
  assert_null(red(r, "secret.note", "hello"));
  assert_non_null(red(r, "http.request.header.cookie", "session=1"));
  assert_non_null(strstr(red(r, "user.id", mail), "[EMAIL:"));
  assert_string_equal(red(r, "other", mail), "[EMAIL_REDACTED]");
  assert_null(red(r, "debug.blob", "x 10.1.1.1"));
  assert_string_equal(red(r, "debug.blob", "nothing"), "nothing");
  assert_ptr_equal(red(r, "raw.body", mail), mail);
  gw_redactor_destroy(r);
}

static void test_user_patterns(void **state)
{
  (void)state;
  struct gw_redact_user_pattern pats[] = {
    {"employee_id", "\\bEMP-\\d{6}\\b", NULL, GW_REDACT_DEFAULT},
    {"ticket", "(?i)ticket#(\\d+)", "<ticket>", GW_REDACT_MASK},
    {"project", "Project (Falcon|Eagle)", NULL, GW_REDACT_HASH},
  };
  struct gw_redact_policy p;
  gw_redact_policy_defaults(&p);
  p.patterns = pats;
  p.n_patterns = 3;
  p.hmac_key = "hk";
  struct gw_redactor *r = make(&p);
  assert_string_equal(red(r, NULL, "EMP-123456 opened TICKET#99 for bob@example.com"),
                      "[EMPLOYEE_ID_REDACTED] opened <ticket> for [EMAIL_REDACTED]");
  const char *h = red(r, NULL, "on Project Falcon");
  assert_non_null(strstr(h, "[PROJECT:"));
  assert_null(strstr(h, "Falcon"));
  /* a user pattern overlapping a built-in: the earlier start wins, nothing leaks */
  assert_string_equal(red(r, NULL, "xEMP-123456"), "xEMP-123456");
  struct gw_redact_stats st = {0};
  const char *s = "EMP-000001 EMP-000002";
  assert_string_equal(gw_redact_string(r, NULL, s, strlen(s), A, &st),
                      "[EMPLOYEE_ID_REDACTED] [EMPLOYEE_ID_REDACTED]");
  assert_int_equal(st.kinds[GW_RK__COUNT + 0], 2);
  assert_int_equal(st.total, 2);
  gw_redactor_destroy(r);

  /* a bad pattern: its name, the pcre2 message and the offset */
  struct gw_redact_user_pattern bad[] = {{"broken", "abc(def", NULL, GW_REDACT_MASK}};
  p.patterns = bad;
  p.n_patterns = 1;
  p.hmac_key = "super-secret-hmac-key-value";
  struct gw_err err = {0};
  assert_null(gw_redactor_create(&p, &err));
  assert_int_equal(err.rc, GW_ERR(CONFIG));
  assert_non_null(strstr(err.msg, "redaction pattern 'broken'"));
  assert_non_null(strstr(err.msg, "missing closing parenthesis"));
  assert_non_null(strstr(err.msg, "at offset 7"));
  assert_null(strstr(err.msg, "super-secret"));

  struct gw_redact_user_pattern noname[] = {{"", "x", NULL, GW_REDACT_MASK}};
  p.patterns = noname;
  memset(&err, 0, sizeof err);
  assert_null(gw_redactor_create(&p, &err));
  assert_non_null(strstr(err.msg, "needs a name and a regex"));
}

static void test_hash_needs_key(void **state)
{
  (void)state;
  struct gw_redact_policy p;
  gw_redact_policy_defaults(&p);
  p.actions[GW_RK_PHONE] = GW_REDACT_HASH;
  struct gw_err err = {0};
  assert_null(gw_redactor_create(&p, &err));
  assert_int_equal(err.rc, GW_ERR(CONFIG));
  assert_non_null(strstr(err.msg, "HMAC key"));

  /* a key rule with hash needs it too */
  gw_redact_policy_defaults(&p);
  static const struct gw_redact_key_rule rule = {"user.id", GW_REDACT_HASH};
  p.key_rules = &rule;
  p.n_key_rules = 1;
  memset(&err, 0, sizeof err);
  assert_null(gw_redactor_create(&p, &err));
  assert_non_null(strstr(err.msg, "HMAC key"));
  p.hmac_key = "k";
  struct gw_redactor *r = make(&p);
  gw_redactor_destroy(r);

  /* parse helpers the config layer uses */
  enum gw_redact_action a;
  enum gw_redact_kind k;
  assert_true(gw_redact_action_parse("hash", &a) && a == GW_REDACT_HASH);
  assert_true(gw_redact_action_parse("off", &a) && a == GW_REDACT_OFF);
  assert_false(gw_redact_action_parse("maks", &a));
  assert_true(gw_redact_kind_parse("credit_card", &k) && k == GW_RK_CARD);
  assert_false(gw_redact_kind_parse("creditcard", &k));
}

/* ---- truncation ---- */

static char *repeat(const char *unit, size_t times)
{
  size_t ul = strlen(unit);
  char *s = malloc(ul * times + 1);
  for (size_t i = 0; i < times; i++)
    memcpy(s + i * ul, unit, ul);
  s[ul * times] = 0;
  return s;
}

static void test_truncation(void **state)
{
  (void)state;
  struct gw_redact_policy p;
  gw_redact_policy_defaults(&p);
  p.max_content_bytes = 1000;
  struct gw_redactor *r = make(&p);

  char *big = repeat("caf\xc3\xa9 bob@example.com ", 300); /* ~6.6 KB, multi-byte characters */
  struct gw_sb sb;
  gw_sb_init(&sb, A);
  gw_sb_puts(&sb, "[{\"role\":\"system\",\"parts\":[{\"type\":\"text\",\"content\":");
  gw_sb_json_str(&sb, big, strlen(big));
  gw_sb_puts(&sb, "}]},{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":");
  gw_sb_json_str(&sb, big, strlen(big));
  gw_sb_puts(&sb, "}]}]");
  const char *prompt = gw_sb_finish(&sb);

  struct gw_record rec;
  memset(&rec, 0, sizeof rec);
  rec.prompt_content = prompt;
  rec.response_content = "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"short\"}]}]";
  rec.system_prompt = big;
  memcpy(rec.prompt_hash, "0123456789abcdef", 17);
  assert_int_equal(gw_redact_records(r, &rec, 1, A, NULL), GW_OK);
  assert_true(gw_record_has_flag(&rec, GW_FLAG_CONTENT_TRUNCATED));
  assert_string_equal(rec.prompt_hash, "0123456789abcdef");
  assert_null(strstr(rec.prompt_content, "bob@example.com"));
  assert_non_null(strstr(rec.prompt_content, "...[TRUNCATED]"));
  assert_true(strlen(rec.prompt_content) < 1300);

  /* still valid JSON, structure kept: roles and types untouched, the second message keeps only the marker */
  struct json_object *o = json_tokener_parse(rec.prompt_content), *m, *parts, *part, *x;
  assert_non_null(o);
  assert_int_equal(json_object_array_length(o), 2);
  m = json_object_array_get_idx(o, 1);
  assert_true(json_object_object_get_ex(m, "role", &x));
  assert_string_equal(json_object_get_string(x), "user");
  assert_true(json_object_object_get_ex(m, "parts", &parts));
  part = json_object_array_get_idx(parts, 0);
  assert_true(json_object_object_get_ex(part, "type", &x));
  assert_string_equal(json_object_get_string(x), "text");
  assert_true(json_object_object_get_ex(part, "content", &x));
  assert_string_equal(json_object_get_string(x), "...[TRUNCATED]");
  json_object_put(o);
  /* the cut lands on a UTF-8 boundary */
  struct json_object *sp = json_tokener_parse(rec.prompt_content);
  assert_non_null(sp);
  json_object_put(sp);

  /* plain text content: cut at the cap with the marker */
  assert_true(strlen(rec.system_prompt) <= 1000 + strlen("...[TRUNCATED]"));
  assert_non_null(strstr(rec.system_prompt, "...[TRUNCATED]"));
  /* a short reply is not cut */
  assert_null(strstr(rec.response_content, "TRUNCATED"));

  /* nothing long: no flag */
  memset(&rec, 0, sizeof rec);
  rec.prompt_content = "[{\"role\":\"user\",\"content\":\"hi\"}]";
  assert_int_equal(gw_redact_records(r, &rec, 1, A, NULL), GW_OK);
  assert_false(gw_record_has_flag(&rec, GW_FLAG_CONTENT_TRUNCATED));
  assert_string_equal(rec.prompt_content, "[{\"role\":\"user\",\"content\":\"hi\"}]");
  free(big);
  gw_redactor_destroy(r);
}

/* ---- requests built by hand ---- */

#define az(n) tu_alloc(A, n)
#define av_str(s) tu_av_str(A, s)
#define av_int(i) tu_av_int(A, i)
#define av_dbl(d) tu_av_dbl(A, d)
#define av_bool(b) tu_av_bool(A, b)
#define kv(k, v) tu_kv(A, k, v)

static GwKeyValue **kvs(size_t n, ...)
{
  GwKeyValue **a = az(n * sizeof *a);
  va_list ap;
  va_start(ap, n);
  for (size_t i = 0; i < n; i++)
    a[i] = va_arg(ap, GwKeyValue *);
  va_end(ap);
  return a;
}

static GwAnyValue *av_arr(size_t n, ...)
{
  GwAnyValue *v = az(sizeof *v);
  gw_pb_any_value_init(v);
  v->value_case = GW_AV_ARRAY;
  v->array_value = az(sizeof *v->array_value);
  gw_pb_array_value_init(v->array_value);
  v->array_value->values = az(n * sizeof(GwAnyValue *));
  v->array_value->n_values = n;
  va_list ap;
  va_start(ap, n);
  for (size_t i = 0; i < n; i++)
    v->array_value->values[i] = va_arg(ap, GwAnyValue *);
  va_end(ap);
  return v;
}

static GwAnyValue *av_kvl(size_t n, GwKeyValue **items)
{
  GwAnyValue *v = az(sizeof *v);
  gw_pb_any_value_init(v);
  v->value_case = GW_AV_KVLIST;
  v->kvlist_value = az(sizeof *v->kvlist_value);
  gw_pb_kvlist_init(v->kvlist_value);
  v->kvlist_value->values = items;
  v->kvlist_value->n_values = n;
  return v;
}

static bool has_key(GwKeyValue **a, size_t n, const char *k)
{
  for (size_t i = 0; i < n; i++)
    if (!strcmp(a[i]->key, k))
      return true;
  return false;
}

static uint8_t *pack(GwTraceRequest *req, size_t *len)
{
  *len = gw_pb_trace_request_size(req);
  uint8_t *b = az(*len + 1);
  gw_pb_trace_request_pack(req, b);
  return b;
}

/* Each of the n strings s[] must be absent from (want_found false) or present in the len bytes at b,
 * the encoded request named by what. */
static void check_encoded(const uint8_t *b, size_t len, const char *const *s, size_t n, bool want_found,
                          const char *what)
{
  for (size_t i = 0; i < n; i++) {
    bool found = memmem(b, len, s[i], strlen(s[i])) != NULL;
    if (found && !want_found)
      fail_msg("'%s' survived in the %s", s[i], what);
    if (!found && want_found)
      fail_msg("'%s' is missing from the %s", s[i], what);
  }
}

/* The /metrics text as rendered now. */
static const char *metrics_text(void)
{
  struct gw_sb out;
  gw_sb_init(&out, A);
  gw_metrics_render(&out);
  assert_non_null(gw_sb_finish(&out));
  return out.buf;
}

/* A request of one resource, one scope and one span named "span" with these n attributes. */
static GwTraceRequest *span_request(GwKeyValue **attrs, size_t n)
{
  GwSpan *sp = az(sizeof *sp);
  gw_pb_span_init(sp);
  sp->name = gw_arena_strdup(A, "span");
  sp->attributes = attrs;
  sp->n_attributes = n;
  GwScopeSpans *ss = az(sizeof *ss);
  gw_pb_scope_spans_init(ss);
  ss->spans = az(sizeof(GwSpan *));
  ss->spans[0] = sp;
  ss->n_spans = 1;
  GwResourceSpans *rs = az(sizeof *rs);
  gw_pb_resource_spans_init(rs);
  rs->scope_spans = az(sizeof(GwScopeSpans *));
  rs->scope_spans[0] = ss;
  rs->n_scope_spans = 1;
  GwTraceRequest *req = az(sizeof *req);
  gw_pb_trace_request_init(req);
  req->resource_spans = az(sizeof(GwResourceSpans *));
  req->resource_spans[0] = rs;
  req->n_resource_spans = 1;
  return req;
}

/* The value of the span's attribute key (span_request's span), NULL when it has none. */
static const GwAnyValue *attr_value(GwTraceRequest *req, const char *key)
{
  GwSpan *sp = req->resource_spans[0]->scope_spans[0]->spans[0];
  for (size_t i = 0; i < sp->n_attributes; i++)
    if (!strcmp(sp->attributes[i]->key, key))
      return sp->attributes[i]->value;
  return NULL;
}

static const char *attr_of(GwTraceRequest *req, const char *key)
{
  const GwAnyValue *v = attr_value(req, key);
  return v ? v->string_value : NULL;
}

static void test_request_everywhere(void **state)
{
  (void)state;
  struct gw_redact_policy p;
  gw_redact_policy_defaults(&p);
  p.actions[GW_RK_SSN] = GW_REDACT_DROP;
  struct gw_redactor *r = make(&p);

  GwResource *res = az(sizeof *res);
  gw_pb_resource_init(res);
  res->attributes = kvs(3, kv("service.name", av_str("svc-owner@example.com")), /* allow-listed */
                        kv("host.ip", av_str("10.20.30.40")), kv("deploy.owner", av_str("ops@example.com")));
  res->n_attributes = 3;
  GwScope *scope = az(sizeof *scope);
  gw_pb_scope_init(scope);
  scope->name = gw_arena_strdup(A, "scope");
  scope->attributes = kvs(1, kv("scope.contact", av_str("scope-team@example.com")));
  scope->n_attributes = 1;

  GwTraceRequest *req = span_request(
    kvs(8, kv("gen_ai.request.model", av_str("gpt-4o")),
        kv("gen_ai.input.messages",
           av_str("[{\"role\":\"user\",\"content\":\"my key is sk-proj-abc123def456ghi789jkl012\"}]")),
        kv("http.request.header.authorization", av_str("Bearer abcdef123456789")),
        kv("tags", av_arr(2, av_str("vip"), av_str("call +1 646 555 3263"))),
        kv("records", av_arr(2, av_str("fine"), av_str("ssn 123-45-6789"))), /* drop -> whole attribute */
        kv("meta", av_kvl(4, kvs(4, kv("owner", av_str("meta@example.com")), kv("http.request.header.cookie",
                                                                                 av_str("sid=1")),
                                 kv("deep", av_kvl(1, kvs(1, kv("ip", av_str("fe80::1ff:fe23:4567:890a"))))),
                                 kv("count", av_int(3))))),
        kv("note", av_str("ssn 123-45-6789")), kv("plain", av_str("nothing here"))),
    8);
  req->resource_spans[0]->resource = res;
  req->resource_spans[0]->scope_spans[0]->scope = scope;
  GwSpan *sp = req->resource_spans[0]->scope_spans[0]->spans[0];
  sp->name = gw_arena_strdup(A, "lookup 203.0.113.9");
  sp->n_events = 1;
  sp->events = az(sizeof(GwSpanEvent *));
  sp->events[0] = az(sizeof(GwSpanEvent));
  gw_pb_span_event_init(sp->events[0]);
  sp->events[0]->name = gw_arena_strdup(A, "gen_ai.user.message");
  sp->events[0]->attributes = kvs(1, kv("content", av_str("event mail ev@example.com")));
  sp->events[0]->n_attributes = 1;
  sp->n_links = 1;
  sp->links = az(sizeof(GwSpanLink *));
  sp->links[0] = az(sizeof(GwSpanLink));
  gw_pb_span_link_init(sp->links[0]);
  sp->links[0]->attributes = kvs(1, kv("link.why", av_str("card 4111 1111 1111 1111")));
  sp->links[0]->n_attributes = 1;
  sp->status = az(sizeof(GwStatus));
  gw_pb_status_init(sp->status);
  sp->status->code = GW_SPAN_STATUS_ERROR;
  sp->status->message = gw_arena_strdup(A, "upstream refused key AKIAIOSFODNN7EXAMPLE");

  int64_t before_email = gw_redact_metric_get("email"), before_deny = gw_redact_metric_get("deny_list");
  assert_int_equal(gw_redact_request(r, req, A, NULL), GW_OK);

  size_t len;
  uint8_t *b = pack(req, &len);
  static const char *const gone[] = {"10.20.30.40", "ops@example.com", "scope-team@example.com", "203.0.113.9",
                                     "sk-proj-abc123def456ghi789jkl012", "abcdef123456789", "646 555 3263",
                                     "123-45-6789", "meta@example.com", "sid=1", "fe80::1ff", "ev@example.com",
                                     "4111 1111 1111 1111", "AKIAIOSFODNN7EXAMPLE"};
  check_encoded(b, len, gone, sizeof gone / sizeof gone[0], false, "encoded request");
  static const char *const kept[] = {"svc-owner@example.com", "gpt-4o", "my key is ", "vip", "nothing here",
                                     "upstream refused key ", "lookup ", "event mail "};
  check_encoded(b, len, kept, sizeof kept / sizeof kept[0], true, "encoded request");

  assert_false(has_key(sp->attributes, sp->n_attributes, "http.request.header.authorization"));
  assert_false(has_key(sp->attributes, sp->n_attributes, "records"));
  assert_false(has_key(sp->attributes, sp->n_attributes, "note"));
  assert_true(has_key(sp->attributes, sp->n_attributes, "tags"));
  assert_int_equal(sp->n_attributes, 5);
  GwKeyValueList *meta = NULL;
  for (size_t i = 0; i < sp->n_attributes; i++)
    if (!strcmp(sp->attributes[i]->key, "meta"))
      meta = sp->attributes[i]->value->kvlist_value;
  assert_non_null(meta);
  assert_int_equal(meta->n_values, 3); /* the nested cookie header is gone */
  assert_false(has_key(meta->values, meta->n_values, "http.request.header.cookie"));
  assert_string_equal(sp->name, "lookup [IP_REDACTED]");
  assert_string_equal(sp->status->message, "upstream refused key [AWS_KEY_REDACTED]");
  assert_true(gw_redact_metric_get("email") >= before_email + 4);
  assert_true(gw_redact_metric_get("deny_list") >= before_deny + 2);

  /* the renderer exposes the counters */
  const char *text = metrics_text();
  assert_non_null(strstr(text, "# TYPE genai_gateway_redactions_total counter"));
  assert_non_null(strstr(text, "genai_gateway_redactions_total{kind=\"email\"} "));
  assert_non_null(strstr(text, "genai_gateway_redactions_total{kind=\"credit_card\"} "));
  gw_redactor_destroy(r);
}

/* The forwarded request copies the spans redaction left unchanged from the body (gw_pb_pack_spliced): every
 * span redaction rewrote, wherever in the span, must be packed from its redacted tree instead. One span per
 * place a secret can hide, and spans with nothing to redact; the body is protobuf-c's, so the spliced bytes
 * must be gw_pb_pack's exactly. Without the marking (gw_redact_request_raw) the secrets survive. */
static GwSpan *splice_span(const char *name)
{
  GwSpan *sp = az(sizeof *sp);
  gw_pb_span_init(sp);
  sp->name = gw_arena_strdup(A, name);
  sp->trace_id = (ProtobufCBinaryData){16, az(16)};
  memset(sp->trace_id.data, 7, 16);
  sp->span_id = (ProtobufCBinaryData){8, az(8)};
  memset(sp->span_id.data, 9, 8);
  sp->attributes = kvs(2, kv("gen_ai.request.model", av_str("gpt-4o")), kv("plain", av_str("nothing to see")));
  sp->n_attributes = 2;
  return sp;
}

static void test_request_spliced(void **state)
{
  (void)state;
  struct gw_redactor *r = make_default();
  enum { NSP = 12 };
  GwSpan *sp[NSP];
  for (int i = 0; i < NSP; i++)
    sp[i] = splice_span(i == 3 ? "call owner sp3@example.com" : "chat gpt-4o");
  sp[1]->attributes[1] = kv("plain", av_str("mail sp1@example.com"));
  sp[2]->attributes[1] = kv("meta", av_kvl(1, kvs(1, kv("deep", av_arr(2, av_str("ok"), av_str("sp2@example.com"))))));
  sp[4]->trace_state = gw_arena_strdup(A, "vendor=sp4@example.com");
  sp[5]->status = az(sizeof(GwStatus));
  gw_pb_status_init(sp[5]->status);
  sp[5]->status->message = gw_arena_strdup(A, "refused sp5@example.com");
  sp[6]->n_events = 1;
  sp[6]->events = az(sizeof(GwSpanEvent *));
  sp[6]->events[0] = az(sizeof(GwSpanEvent));
  gw_pb_span_event_init(sp[6]->events[0]);
  sp[6]->events[0]->name = gw_arena_strdup(A, "ev");
  sp[6]->events[0]->attributes = kvs(1, kv("content", av_str("event sp6@example.com")));
  sp[6]->events[0]->n_attributes = 1;
  sp[7]->n_links = 1;
  sp[7]->links = az(sizeof(GwSpanLink *));
  sp[7]->links[0] = az(sizeof(GwSpanLink));
  gw_pb_span_link_init(sp[7]->links[0]);
  sp[7]->links[0]->attributes = kvs(1, kv("why", av_str("link sp7@example.com")));
  sp[7]->links[0]->n_attributes = 1;
  sp[8]->attributes[1] = kv("http.request.header.authorization", av_str("Basic c3A4OnNlY3JldA=="));
  GwAnyValue *bytes = az(sizeof *bytes);
  gw_pb_any_value_init(bytes);
  bytes->value_case = GW_AV_BYTES;
  bytes->bytes_value = (ProtobufCBinaryData){20, (uint8_t *)gw_arena_strdup(A, "sp9@example.com here")};
  sp[9]->attributes[1] = kv("blob", bytes);
  /* sp[0], sp[10], sp[11]: nothing to redact */
  GwTraceRequest *req = span_request(NULL, 0);
  GwScopeSpans *ss = req->resource_spans[0]->scope_spans[0];
  ss->spans = az(NSP * sizeof(GwSpan *));
  memcpy(ss->spans, sp, sizeof sp);
  ss->n_spans = NSP;
  size_t blen;
  uint8_t *body = pack(req, &blen);

  struct gw_decode_limits lim = {.max_bytes = 1u << 20, .max_depth = 32};
  struct gw_err err = {0};
  GwTraceRequest *dec;
  struct gw_pb_raw raw;
  assert_int_equal(gw_decode_traces_raw(A, GW_ENC_PROTOBUF, body, blen, &lim, &dec, &raw, &err), GW_OK);
  assert_int_equal(raw.n, NSP); /* every span may be copied */
  assert_int_equal(gw_redact_request_raw(r, dec, A, gw_redact_memo_create(A), &raw), GW_OK);
  size_t n = 0;
  for (size_t i = 0; i < raw.n; i++)
    n += raw.v[i].changed;
  assert_int_equal(n, 9); /* spans 1 to 9 */

  size_t plen, slen;
  uint8_t *packed = gw_pb_pack(A, &dec->base, &plen), *spliced = gw_pb_pack_spliced(A, dec, &raw, &slen);
  static const char *const gone[] = {"sp1@example.com", "sp2@example.com", "sp3@example.com", "sp4@example.com",
                                     "sp5@example.com", "sp6@example.com", "sp7@example.com", "c3A4OnNlY3JldA==",
                                     "sp9@example.com"};
  check_encoded(spliced, slen, gone, sizeof gone / sizeof gone[0], false, "forwarded request");
  static const char *const kept[] = {"nothing to see", "chat gpt-4o", "mail ", "event ", "link ", "refused "};
  check_encoded(spliced, slen, kept, sizeof kept / sizeof kept[0], true, "forwarded request");
  assert_int_equal(slen, plen);
  assert_memory_equal(spliced, packed, plen);
  gw_redactor_destroy(r);
}

/* ---- records ---- */

/* Trace facts (session and user ids of spans that give no row) are redacted as a record's session_id and
 * user_id: under session.id and user.id, with their key rules; a dropped one becomes NULL. */
static void test_trace_facts(void **state)
{
  (void)state;
  struct gw_redactor *r = make_default();
  struct gw_trace_fact f[2] = {
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 1, "sess-1", "alice@example.com", ""},
    {"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 1, "call 555-867-5309 later", NULL, ""},
  };
  assert_int_equal(gw_redact_trace_facts(r, f, 2, A, NULL), GW_OK);
  assert_string_equal(f[0].session_id, "sess-1");
  assert_string_equal(f[0].user_id, red(r, "user.id", "alice@example.com"));
  assert_string_equal(f[0].user_id, "[EMAIL_REDACTED]");
  assert_string_equal(f[1].session_id, red(r, "session.id", "call 555-867-5309 later"));
  assert_null(f[1].user_id);
  gw_redactor_destroy(r);

  static const char *const deny[] = {"user.id"};
  struct gw_redact_policy p;
  gw_redact_policy_defaults(&p);
  p.deny_keys = deny;
  p.n_deny_keys = 1;
  r = make(&p);
  struct gw_trace_fact g = {"cccccccccccccccccccccccccccccccc", 1, "s", "bob", ""};
  assert_int_equal(gw_redact_trace_facts(r, &g, 1, A, NULL), GW_OK);
  assert_null(g.user_id);
  assert_string_equal(g.session_id, "s");
  gw_redactor_destroy(r);
}

static void test_records(void **state)
{
  (void)state;
  struct gw_redactor *r = make_default();
  const char *resource = "{\"service.name\":\"svc\",\"host.ip\":\"10.0.0.7\"}";
  struct gw_record recs[2];
  memset(recs, 0, sizeof recs);
  for (int i = 0; i < 2; i++) {
    recs[i].resource = resource; /* shared, as normalize shares it per ResourceSpans */
    recs[i].request_model = "gpt-4o";
    recs[i].span_name = "chat gpt-4o";
  }
  recs[0].user_id = "alice@example.com";
  recs[0].session_id = "sess-1";
  recs[0].error_message = "rate limited for key sk-abcdefghijklmnopqrstuvwx1234";
  recs[0].system_prompt = "You are helpful. Owner: ops@example.com";
  recs[0].prompt_content = "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"SSN 123-45-6789\"}]}]";
  recs[0].response_content = "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"ok\"}]}]";
  recs[0].parameters = "{\"temperature\":0.2,\"user\":\"bob@example.com\"}";
  recs[0].attributes = "{\"gen_ai.request.model\":\"gpt-4o\",\"http.request.header.authorization\":\"Basic x\","
                       "\"user.id\":\"alice@example.com\",\"n\":3}";
  memcpy(recs[0].prompt_hash, "aaaaaaaaaaaaaaaa", 17);
  assert_int_equal(gw_redact_records(r, recs, 2, A, NULL), GW_OK);

  assert_string_equal(recs[0].user_id, "[EMAIL_REDACTED]");
  assert_string_equal(recs[0].session_id, "sess-1");
  assert_string_equal(recs[0].request_model, "gpt-4o");
  assert_string_equal(recs[0].error_message, "rate limited for key [API_KEY_REDACTED]");
  assert_string_equal(recs[0].system_prompt, "You are helpful. Owner: [EMAIL_REDACTED]");
  assert_string_equal(recs[0].prompt_content,
                      "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"SSN [SSN_REDACTED]\"}]}]");
  assert_string_equal(recs[0].parameters, "{\"temperature\":0.2,\"user\":\"[EMAIL_REDACTED]\"}");
  assert_string_equal(recs[0].attributes,
                      "{\"gen_ai.request.model\":\"gpt-4o\",\"user.id\":\"[EMAIL_REDACTED]\",\"n\":3}");
  assert_string_equal(recs[0].resource, "{\"service.name\":\"svc\",\"host.ip\":\"[IP_REDACTED]\"}");
  assert_ptr_equal(recs[1].resource, recs[0].resource);
  assert_string_equal(recs[0].prompt_hash, "aaaaaaaaaaaaaaaa");

  /* user_id, error_message, system_prompt, prompt, parameters, attributes user.id, deny, resource ip */
  assert_true(recs[0].redaction_count.set);
  assert_int_equal(recs[0].redaction_count.v, 8);
  const char *want[] = {"email", "ssn", "ipv4", "api_key", "deny_list"};
  assert_int_equal(recs[0].redacted_kinds.n, 5);
  for (size_t i = 0; i < 5; i++) {
    bool found = false;
    for (uint32_t k = 0; k < recs[0].redacted_kinds.n; k++)
      found |= !strcmp(recs[0].redacted_kinds.v[k], want[i]);
    if (!found)
      fail_msg("kind %s missing", want[i]);
  }
  assert_true(recs[1].redaction_count.set);
  assert_int_equal(recs[1].redaction_count.v, 1); /* the shared resource's IP */
  assert_int_equal(recs[1].redacted_kinds.n, 1);
  assert_string_equal(recs[1].redacted_kinds.v[0], "ipv4");
  gw_redactor_destroy(r);

  /* disabled: nothing redacted, counts left NULL, truncation still applies */
  struct gw_redact_policy p;
  gw_redact_policy_defaults(&p);
  p.enabled = false;
  p.max_content_bytes = 10;
  r = make(&p);
  struct gw_record rec;
  memset(&rec, 0, sizeof rec);
  rec.user_id = "alice@example.com";
  rec.system_prompt = "a long system prompt";
  assert_int_equal(gw_redact_records(r, &rec, 1, A, NULL), GW_OK);
  assert_string_equal(rec.user_id, "alice@example.com"); /* ids are never cut */
  assert_string_equal(rec.system_prompt, "a long sys...[TRUNCATED]");
  assert_false(rec.redaction_count.set);
  assert_string_equal(red(r, NULL, "bob@example.com"), "bob@example.com");
  gw_redactor_destroy(r);
}

/* ---- threads: one redactor, per-thread match data ---- */

struct thr {
  const struct gw_redactor *r;
  int bad;
};

static void *thr_main(void *arg)
{
  struct thr *t = arg;
  struct gw_arena *a = gw_arena_create(16u << 20);
  const char *in = "Customer carol.rossi51@example.com connecting from 10.71.168.150 wants a refund on card "
                   "4242424242424242";
  const char *want = "Customer [EMAIL_REDACTED] connecting from [IP_REDACTED] wants a refund on card "
                     "[CARD_REDACTED]";
  for (int i = 0; i < 2000; i++) {
    const char *o = gw_redact_string(t->r, NULL, in, strlen(in), a, NULL);
    if (!o || strcmp(o, want))
      t->bad++;
    if (i % 100 == 0)
      gw_arena_reset(a);
  }
  gw_arena_destroy(a);
  return NULL;
}

static void test_threads(void **state)
{
  (void)state;
  struct gw_redactor *r = make_default();
  pthread_t th[4];
  struct thr t[4];
  for (int i = 0; i < 4; i++) {
    t[i] = (struct thr){r, 0};
    assert_int_equal(pthread_create(&th[i], NULL, thr_main, &t[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(t[i].bad, 0);
  }
  gw_redactor_destroy(r);
}

/* ---- candidate positions ---- */

/* rd_next_candidate skips 16 bytes at a time where no branch can start; it must stop exactly where a plain
 * walk asking rd_candidate at every position stops, on text dense with the bytes branches start with. */
static void test_candidate_scan(void **state)
{
  (void)state;
  static const char alphabet[] = "aAsSeEwWcCrRtTgGxXbBkK0189@+(:-_ ./=\n\xc3\xa9yz";
  unsigned seed = 12345;
  char buf[160];
  for (int round = 0; round < 3000; round++) {
    size_t len = (size_t)(rand_r(&seed) % sizeof buf);
    for (size_t i = 0; i < len; i++)
      buf[i] = alphabet[rand_r(&seed) % (sizeof alphabet - 1)];
    if (round % 7 == 0 && len > 20) /* whole words too */
      memcpy(buf + rand_r(&seed) % (len - 20), round % 2 ? "MyAwsSecretKey -----BEGIN" : "sk-ab1 ::1 eyJ 4111", 19);
    for (size_t from = 0; from <= len; from++) {
      size_t want = from;
      while (want < len && !rd_candidate(buf, len, want))
        want++;
      size_t got = rd_next_candidate(buf, len, from);
      if (got != want)
        fail_msg("round %d from %zu: got %zu, want %zu in '%.*s'", round, from, got, want, (int)len, buf);
    }
  }
}

/* ---- PEM private keys (issue 12: the lazy regex was quadratic) ---- */

/* rd_private_key must find exactly what the regex it replaces found, at every position of values built
 * from the pieces that matter (headers, footers, labels, near misses, body bytes), asked at increasing
 * positions with one rd_pk as the scan asks it. */
static void test_private_key_same_as_regex(void **state)
{
  (void)state;
  static const char old[] = "-----BEGIN[A-Z ]{0,40}PRIVATE KEY-----"
                            "(?:[\\s\\S]*?-----END[A-Z ]{0,40}PRIVATE KEY-----|[A-Za-z0-9+/=\\s\\\\]*)";
  int ec;
  PCRE2_SIZE eo;
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)old, PCRE2_ZERO_TERMINATED, PCRE2_ANCHORED, &ec, &eo, NULL);
  assert_non_null(re);
  pcre2_match_data *md = pcre2_match_data_create(4, NULL);
  static const char *const pieces[] = {
    "-----BEGIN", "-----END", " PRIVATE KEY-----", "PRIVATE KEY-----", " RSA", " ENCRYPTED", "-----", " KEYS-----",
    "PRIVATE KEY", "MIIEvQIBAD", "ab+/=", "\n", "\n", "\t", " ", "x", "-", " PUBLIC KEY-----", "ABCDEFGHIJKLMNOPQRST",
    "-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----", "\r", "\\", "\x01",
  };
  /* few pieces, so that headers, footers and labels meet in every way: a footer sharing a header's
   * dashes, a header inside a key, labels of 40 and 41 characters */
  static const char *const dense[] = {
    "-----BEGIN", "-----END", "PRIVATE KEY", "-----", " ", "ABCDEFGHIJKLMNOPQRSTUVWXYZ ABCDEFGHIJKL", "A", "\n",
  };
  static const char *const fixed[] = {
    "-----BEGIN PRIVATE KEY-----BEGIN PRIVATE KEY-----END PRIVATE KEY-----",
    "-----BEGIN PRIVATE KEY-----END PRIVATE KEY-----",
    "-----BEGINABCDEFGHIJKLMNOPQRSTUVWXYZ ABCDEFGHIJKLMPRIVATE KEY-----x",
    "-----BEGINABCDEFGHIJKLMNOPQRSTUVWXYZ ABCDEFGHIJKLMNPRIVATE KEY-----x",
    "-----BEGIN PRIVATE KEY-----\nab\n-----ENDABCDEFGHIJKLMNOPQRSTUVWXYZ ABCDEFGHIJKLMNPRIVATE KEY-----\n"
    "-----END PRIVATE KEY-----",
  };
  unsigned seed = 1212;
  char buf[1024];
  for (int round = 0; round < 30000; round++) {
    size_t len = 0;
    if (round < (int)(sizeof fixed / sizeof fixed[0])) {
      len = strlen(fixed[round]);
      memcpy(buf, fixed[round], len);
    }
    bool use_dense = round % 2;
    size_t n = round < (int)(sizeof fixed / sizeof fixed[0]) ? 0 : 1 + (size_t)rand_r(&seed) % 20;
    for (size_t k = 0; k < n; k++) {
      const char *p = use_dense ? dense[rand_r(&seed) % (sizeof dense / sizeof dense[0])]
                                : pieces[rand_r(&seed) % (sizeof pieces / sizeof pieces[0])];
      size_t pl = strlen(p);
      memcpy(buf + len, p, pl);
      len += pl;
    }
    struct rd_pk pk;
    rd_pk_init(&pk);
    for (size_t i = 0; i < len; i++) {
      int rc = pcre2_match(re, (PCRE2_SPTR)buf, len, i, 0, md, NULL);
      size_t want = rc > 0 ? pcre2_get_ovector_pointer(md)[1] : 0;
      size_t got = rd_private_key(&pk, buf, len, i);
      if (got != want)
        fail_msg("round %d at %zu: got %zu, want %zu in '%.*s'", round, i, got, want, (int)len, buf);
    }
  }
  pcre2_match_data_free(md);
  pcre2_code_free(re);
}

/* The input that took 37 s: a bounded, correct answer (each header masked; with a footer at the end, one
 * key from the first header to it). */
static void test_private_key_hostile(void **state)
{
  (void)state;
  struct gw_redactor *r = make_default();
  const char *hdr = "-----BEGIN PRIVATE KEY-----";
  size_t times = (1u << 20) / strlen(hdr);
  char *v = repeat(hdr, times);
  const char *o = red(r, NULL, v);
  char *want = repeat("[PRIVATE_KEY_REDACTED]", times);
  assert_string_equal(o, want);
  free(want);
  size_t vl = strlen(v);
  char *withend = malloc(vl + 64);
  memcpy(withend, v, vl);
  strcpy(withend + vl, "\n-----END PRIVATE KEY-----\nafter");
  assert_string_equal(red(r, NULL, withend), "[PRIVATE_KEY_REDACTED]\nafter");
  /* headers among base64 lines with no footer: each header and the body after it */
  char *lines = repeat("-----BEGIN RSA PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n", 20000);
  char *lwant = repeat("[PRIVATE_KEY_REDACTED]", 20000);
  assert_string_equal(red(r, NULL, lines), lwant);
  free(lines);
  free(lwant);
  free(withend);
  free(v);
  gw_redactor_destroy(r);
}

/* The shapes bench_redact times (bench/bench_redact.c) at 256 KiB: every detector gives its answer (no
 * pcre2 limit is hit, nothing is replaced whole), and the answers are right. */
static void test_hostile_shapes(void **state)
{
  (void)state;
  static const struct {
    const char *head, *unit, *tail, *want_unit; /* want_unit: the output is want_unit repeated; NULL: unchanged */
  } shapes[] = {
    {"", "1", "", NULL}, {"", "1 ", "", NULL}, {"", "12-", "", NULL}, {"", "1.", "", NULL}, {"", "+1 ", "", NULL},
    {"", "(212) ", "", NULL}, {"", "4111 ", "", NULL}, {"", "@", "", NULL}, {"", "a@", "", NULL},
    {"", "a.", "@", NULL}, {"", "a:", "", NULL}, {"", ":", "", NULL}, {"", "Bearer ", "", NULL},
    {"", "sk-", "", NULL}, {"", "aws_secret_access_key=", "", NULL}, {"", "AwsSecret", "", NULL},
    {"", "Basic ", "", NULL}, {"", "[", "", NULL},
    {"", "-----BEGIN PRIVATE KEY-----", "", "[PRIVATE_KEY_REDACTED]"},
    {"", "a@b.cc ", "", "[EMAIL_REDACTED] "},
    {"", "Authorization: Bearer x ", "", "Authorization: Bearer [TOKEN_REDACTED] "},
  };
  struct gw_redactor *r = make_default();
  int64_t before = rd_metric_limited_get(RD_LIM_MATCH) + rd_metric_limited_get(RD_LIM_MATCH_ERR);
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    size_t times = (256u << 10) / strlen(shapes[i].unit);
    char *body = repeat(shapes[i].unit, times), *in = malloc(strlen(body) + 64);
    sprintf(in, "%s%s%s", shapes[i].head, body, shapes[i].tail);
    const char *o = red(r, NULL, in);
    if (shapes[i].want_unit) {
      char *want = repeat(shapes[i].want_unit, times);
      if (strcmp(o, want))
        fail_msg("'%s' x %zu: '%.60s...'", shapes[i].unit, times, o);
      free(want);
    } else if (strcmp(o, in)) {
      fail_msg("'%s' x %zu changed: '%.60s...'", shapes[i].unit, times, o);
    }
    free(body);
    free(in);
  }
  /* an email whose domain has thousands of labels: the address and its first 126 labels go */
  char *labels = repeat("ab.", 100000), *in = malloc(strlen(labels) + 16);
  sprintf(in, "x@%s1", labels);
  const char *o = red(r, NULL, in);
  assert_int_equal(strncmp(o, "[EMAIL_REDACTED]", 16), 0);
  assert_null(strstr(o, "x@"));
  free(labels);
  free(in);
  /* an address with a zone id that never ends: the address without it */
  char *zone = repeat("a", 256u << 10);
  in = malloc(strlen(zone) + 16);
  sprintf(in, "fe80::1%%%s_", zone);
  o = red(r, NULL, in);
  assert_int_equal(strncmp(o, "[IP_REDACTED]%aaa", 17), 0);
  assert_int_equal(strlen(o), strlen(in) - strlen("fe80::1") + strlen("[IP_REDACTED]"));
  free(zone);
  free(in);
  assert_int_equal(rd_metric_limited_get(RD_LIM_MATCH) + rd_metric_limited_get(RD_LIM_MATCH_ERR), before);
  gw_redactor_destroy(r);
}

/* ---- per-request limits (issue 12) ---- */

/* A request of one span holding attrs. */
/* One value through a record field with the request's limits on (request_bytes as the receiver says). */
static const char *limited_red(const struct gw_redactor *r, const char *s, size_t request_bytes,
                               struct gw_redact_stats *st)
{
  struct gw_redact_memo *m = gw_redact_memo_create(A);
  gw_redact_memo_limit(m, r, request_bytes, NULL, NULL);
  struct gw_record rec;
  memset(&rec, 0, sizeof rec);
  rec.error_message = s;
  assert_int_equal(gw_redact_records(r, &rec, 1, A, m), GW_OK);
  if (st) {
    memset(st, 0, sizeof *st);
    st->total = (uint32_t)rec.redaction_count.v;
    for (uint32_t k = 0; k < rec.redacted_kinds.n; k++)
      if (!strcmp(rec.redacted_kinds.v[k], "redaction_limit"))
        st->limited = 1;
  }
  return rec.error_message;
}

/* A user pattern that backtracks exponentially hits pcre2's match limit: the value goes whole, counted. */
static void test_user_pattern_match_limit(void **state)
{
  (void)state;
  struct gw_redact_user_pattern pats[] = {{"greedy", "^(\\w+\\s?)*$", NULL, GW_REDACT_MASK}};
  struct gw_redact_policy p;
  gw_redact_policy_defaults(&p);
  p.patterns = pats;
  p.n_patterns = 1;
  p.max_content_bytes = 0;
  struct gw_redactor *r = make(&p);
  int64_t before = rd_metric_limited_get(RD_LIM_MATCH);
  struct gw_redact_stats st;
  const char *o = limited_red(r, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa! mail bob@example.com", 100, &st);
  assert_string_equal(o, "[REDACTION_FAILED]");
  assert_int_equal(st.limited, 1);
  assert_int_equal(rd_metric_limited_get(RD_LIM_MATCH), before + 1);
  /* the metric is rendered */
  assert_non_null(strstr(metrics_text(), "genai_gateway_redaction_limited_total{reason=\"match_limit\"} "));
  gw_redactor_destroy(r);
}

/* A user pattern that reads the rest of the value from every start (no backtracking for pcre2's match limit
 * to count: minutes over 1 MiB in one pcre2_match call) is stopped by the request's CPU budget, inside the
 * call, and the value goes whole. */
static void test_user_pattern_cpu_budget(void **state)
{
  (void)state;
  struct gw_redact_user_pattern pats[] = {{"slow", "1(?=\\d*x)", NULL, GW_REDACT_MASK}};
  struct gw_redact_policy p;
  gw_redact_policy_defaults(&p);
  p.patterns = pats;
  p.n_patterns = 1;
  p.max_content_bytes = 0;
  p.cpu_ms_per_mib = 1; /* the floor applies: 100 ms */
  struct gw_redactor *r = make(&p);
  assert_true(r->user_watched[0]);
  char *digits = repeat("1", 1u << 20);
  int64_t before = rd_metric_limited_get(RD_LIM_CPU);
  struct gw_redact_stats st;
  assert_string_equal(limited_red(r, digits, 1u << 20, &st), "[REDACTION_LIMIT]");
  assert_int_equal(st.limited, 1);
  assert_int_equal(rd_metric_limited_get(RD_LIM_CPU), before + 1);
  /* the same pattern on ordinary input finds what it should */
  assert_string_equal(limited_red(r, "a 12x b", 100, NULL), "a [SLOW_REDACTED]2x b");
  free(digits);
  gw_redactor_destroy(r);
}

/* Past the scan budget every later value of the request goes whole and unscanned, allow-listed keys are
 * left alone, deny-listed ones still removed, and a record's JSON columns stay valid JSON. */
static void test_scan_budget(void **state)
{
  (void)state;
  struct gw_redact_policy p;
  gw_redact_policy_defaults(&p);
  p.scan_factor = 1; /* 1 x request bytes + 1 MiB */
  struct gw_redactor *r = make(&p);
  char *big = repeat("plain words ", (3u << 20) / 12);
  GwTraceRequest *req = span_request(
    kvs(5, kv("gen_ai.request.model", av_str("gpt-4o")), kv("app.big", av_str(big)),
        kv("app.mail", av_str("write to bob@example.com")), kv("http.request.header.cookie", av_str("sid=1")),
        kv("app.plain", av_str("nothing here"))),
    5);
  struct gw_redact_memo *m = gw_redact_memo_create(A);
  gw_redact_memo_limit(m, r, 1000, NULL, NULL);
  int64_t before = rd_metric_limited_get(RD_LIM_SCAN);
  assert_int_equal(gw_redact_request(r, req, A, m), GW_OK);
  assert_string_equal(attr_of(req, "gen_ai.request.model"), "gpt-4o");
  assert_string_equal(attr_of(req, "app.big"), "[REDACTION_LIMIT]");
  assert_string_equal(attr_of(req, "app.mail"), "[REDACTION_LIMIT]");
  assert_string_equal(attr_of(req, "app.plain"), "[REDACTION_LIMIT]");
  assert_null(attr_of(req, "http.request.header.cookie"));
  assert_int_equal(rd_metric_limited_get(RD_LIM_SCAN), before + 3);
  struct gw_record rec;
  memset(&rec, 0, sizeof rec);
  rec.attributes = "{\"gen_ai.request.model\":\"gpt-4o\",\"app.mail\":\"bob@example.com\",\"n\":[1,\"x\"],"
                   "\"b64\":\"Ym9iQGV4YW1wbGUuY29t\"}";
  rec.prompt_content = "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"hi bob@example.com\"}]}]";
  assert_int_equal(gw_redact_records(r, &rec, 1, A, m), GW_OK);
  assert_string_equal(rec.attributes, "{\"gen_ai.request.model\":\"gpt-4o\",\"app.mail\":\"[REDACTION_LIMIT]\","
                                      "\"n\":[1,\"[REDACTION_LIMIT]\"],\"b64\":\"[REDACTION_LIMIT]\"}");
  struct json_object *o = json_tokener_parse(rec.prompt_content);
  assert_non_null(o);
  json_object_put(o);
  assert_null(strstr(rec.prompt_content, "bob@"));
  bool kind = false;
  for (uint32_t k = 0; k < rec.redacted_kinds.n; k++)
    kind |= !strcmp(rec.redacted_kinds.v[k], "redaction_limit");
  assert_true(kind);
  /* without limits the same request is scanned as always */
  req = span_request(kvs(1, kv("app.mail", av_str("write to bob@example.com"))), 1);
  assert_int_equal(gw_redact_request(r, req, A, NULL), GW_OK);
  assert_string_equal(attr_of(req, "app.mail"), "write to [EMAIL_REDACTED]");
  free(big);
  gw_redactor_destroy(r);
}

/* The callout in front of a user pattern changes nothing it matches: extended mode with a trailing
 * comment, top-level alternation, a leading (*VERB), an open \Q, groups and back-references. */
static void test_watched_patterns_same(void **state)
{
  (void)state;
  struct gw_redact_user_pattern pats[] = {
    {"ext", "(?x) EMP - \\d{6}  # employee ids", NULL, GW_REDACT_MASK},
    {"alt", "foo\\d+|bar\\d+", NULL, GW_REDACT_MASK},
    {"verb", "(*UCP)\\bzeta\\w+", NULL, GW_REDACT_MASK},
    {"quoted", "lit\\Q.*+", NULL, GW_REDACT_MASK},
    {"backref", "(q)(?<w>r)\\1\\k<w>", NULL, GW_REDACT_MASK},
  };
  struct gw_redact_policy p;
  gw_redact_policy_defaults(&p);
  p.patterns = pats;
  p.n_patterns = sizeof pats / sizeof pats[0];
  struct gw_redactor *r = make(&p);
  for (size_t i = 0; i < p.n_patterns; i++)
    if (!r->user_watched[i])
      fail_msg("pattern %s is not watched", pats[i].name);
  assert_string_equal(limited_red(r, "EMP-123456 foo12 bar3 zetaé lit.*+ qrqr EMP-12", 100, NULL),
                      "[EXT_REDACTED] [ALT_REDACTED] [ALT_REDACTED] [VERB_REDACTED] [QUOTED_REDACTED] "
                      "[BACKREF_REDACTED] EMP-12");
  gw_redactor_destroy(r);
}

/* ---- redaction gaps found on stored rows (issue 12, item 8) ---- */

/* Issue 12: http.request.header.Authorization was stored. Keys meet their rules whatever their ASCII case,
 * rules written in any case too; in a request's kvlists and a record's attributes JSON alike. */
static void test_keys_any_case(void **state)
{
  (void)state;
  const char *mail = "alice@example.com";
  struct gw_redactor *r = make_default();
  assert_null(red(r, "http.request.header.Authorization", "Basic abc"));
  assert_null(red(r, "HTTP.REQUEST.HEADER.COOKIE", "session=1"));
  assert_null(red(r, "http.request.header.X-Api-Key", "whatever"));
  assert_ptr_equal(red(r, "Gen_AI.Request.Model", mail), mail);
  assert_ptr_equal(red(r, "Telemetry.SDK.language", mail), mail); /* prefix rule telemetry.sdk.* */
  assert_string_equal(red(r, "http.request.header.authorizatio", mail), "[EMAIL_REDACTED]"); /* not the key */
  struct gw_record rec;
  memset(&rec, 0, sizeof rec);
  rec.attributes = "{\"a\":1,\"http.request.header.Authorization\":\"Bearer x\"}";
  assert_int_equal(gw_redact_records(r, &rec, 1, A, NULL), GW_OK);
  assert_string_equal(rec.attributes, "{\"a\":1}");
  GwKeyValue **kv0 = kvs(2, kv("http.request.header.Authorization", av_str("Basic dXNlcjpwYXNz")),
                         kv("app", av_str("fine")));
  GwTraceRequest *req = span_request(kv0, 2);
  assert_int_equal(gw_redact_request(r, req, A, NULL), GW_OK);
  assert_null(attr_of(req, "http.request.header.Authorization"));
  assert_string_equal(attr_of(req, "app"), "fine");
  gw_redactor_destroy(r);

  static const char *const deny[] = {"X-Internal-Token"};
  static const struct gw_redact_key_rule rules[] = {{"App.User.*", GW_REDACT_DROP}};
  struct gw_redact_policy p;
  gw_redact_policy_defaults(&p);
  p.deny_keys = deny;
  p.n_deny_keys = 1;
  p.key_rules = rules;
  p.n_key_rules = 1;
  r = make(&p);
  assert_null(red(r, "x-internal-token", "t"));
  assert_null(red(r, "app.user.email", mail));
  assert_string_equal(red(r, "app.user.note", "nothing"), "nothing");
  gw_redactor_destroy(r);
}

/* Issue 12: scope name and version, trace states, schema URLs, a log record's severity text and event name
 * reached the forwarded request (and scope_name the stored row, event_name the events table) unscanned. */
static void test_texts_everywhere(void **state)
{
  (void)state;
  struct gw_redactor *r = make_default();
  GwTraceRequest *req = span_request(kvs(1, kv("app", av_str("fine"))), 1);
  GwResourceSpans *rs = req->resource_spans[0];
  GwScopeSpans *ss = rs->scope_spans[0];
  GwSpan *sp = ss->spans[0];
  rs->schema_url = gw_arena_strdup(A, "https://schemas.example.com/rs-owner@example.com");
  ss->schema_url = gw_arena_strdup(A, "https://schemas.example.com/10.9.8.7");
  ss->scope = az(sizeof *ss->scope);
  gw_pb_scope_init(ss->scope);
  ss->scope->name = gw_arena_strdup(A, "lib/scope-owner@example.com");
  ss->scope->version = gw_arena_strdup(A, "1.0 by 203.0.113.77");
  sp->trace_state = gw_arena_strdup(A, "vendor=ts-user@example.com,other=1");
  sp->n_links = 1;
  sp->links = az(sizeof(GwSpanLink *));
  sp->links[0] = az(sizeof(GwSpanLink));
  gw_pb_span_link_init(sp->links[0]);
  sp->links[0]->trace_state = gw_arena_strdup(A, "v=123-45-6789");
  assert_int_equal(gw_redact_request(r, req, A, NULL), GW_OK);
  size_t len;
  uint8_t *b = pack(req, &len);
  static const char *const gone[] = {"rs-owner@example.com", "10.9.8.7", "scope-owner@example.com", "203.0.113.77",
                                     "ts-user@example.com", "123-45-6789"};
  check_encoded(b, len, gone, sizeof gone / sizeof gone[0], false, "forwarded request");
  assert_string_equal(ss->scope->name, "lib/[EMAIL_REDACTED]");
  assert_string_equal(ss->scope->version, "1.0 by [IP_REDACTED]");
  assert_string_equal(sp->trace_state, "vendor=[EMAIL_REDACTED],other=1");

  /* logs */
  GwLogRecord *l = az(sizeof *l);
  gw_pb_log_record_init(l);
  l->severity_text = gw_arena_strdup(A, "WARN for sev-user@example.com");
  l->event_name = gw_arena_strdup(A, "app.event ev-user@example.com");
  GwScopeLogs *sl = az(sizeof *sl);
  gw_pb_scope_logs_init(sl);
  sl->scope = az(sizeof *sl->scope);
  gw_pb_scope_init(sl->scope);
  sl->scope->name = gw_arena_strdup(A, "log-scope 10.1.2.3");
  sl->log_records = az(sizeof(GwLogRecord *));
  sl->log_records[0] = l;
  sl->n_log_records = 1;
  GwResourceLogs *rl = az(sizeof *rl);
  gw_pb_resource_logs_init(rl);
  rl->scope_logs = az(sizeof(GwScopeLogs *));
  rl->scope_logs[0] = sl;
  rl->n_scope_logs = 1;
  GwLogsRequest *lreq = az(sizeof *lreq);
  gw_pb_logs_request_init(lreq);
  lreq->resource_logs = az(sizeof(GwResourceLogs *));
  lreq->resource_logs[0] = rl;
  lreq->n_resource_logs = 1;
  assert_int_equal(gw_redact_logs_request(r, lreq, A, NULL), GW_OK);
  len = gw_pb_logs_request_size(lreq);
  b = az(len + 1);
  gw_pb_logs_request_pack(lreq, b);
  static const char *const lgone[] = {"sev-user@example.com", "ev-user@example.com", "10.1.2.3"};
  check_encoded(b, len, lgone, sizeof lgone / sizeof lgone[0], false, "forwarded logs request");
  assert_string_equal(l->severity_text, "WARN for [EMAIL_REDACTED]");
  assert_string_equal(l->event_name, "app.event [EMAIL_REDACTED]");

  /* the stored row's scope_name, the events table's event_name */
  struct gw_record rec;
  memset(&rec, 0, sizeof rec);
  rec.scope_name = "lib/scope-owner@example.com";
  rec.service_tier = "tier for 10.0.0.9";
  assert_int_equal(gw_redact_records(r, &rec, 1, A, NULL), GW_OK);
  assert_string_equal(rec.scope_name, "lib/[EMAIL_REDACTED]");
  assert_string_equal(rec.service_tier, "tier for [IP_REDACTED]");
  struct gw_event ev;
  memset(&ev, 0, sizeof ev);
  ev.event_name = "gen_ai.user.message ev-user@example.com";
  ev.content = "{\"role\":\"user\",\"content\":\"hi\"}";
  assert_int_equal(gw_redact_events(r, &ev, 1, A, NULL), GW_OK);
  assert_string_equal(ev.event_name, "gen_ai.user.message [EMAIL_REDACTED]");
  assert_int_equal(ev.redaction_count.v, 1);
  gw_redactor_destroy(r);
}

static GwAnyValue *av_bytes(const void *p, size_t n)
{
  GwAnyValue *v = az(sizeof *v);
  gw_pb_any_value_init(v);
  v->value_case = GW_AV_BYTES;
  uint8_t *d = az(n + 1);
  memcpy(d, p, n);
  v->bytes_value = (ProtobufCBinaryData){n, d};
  return v;
}

static const ProtobufCBinaryData *bytes_of(GwTraceRequest *req, const char *key)
{
  const GwAnyValue *v = attr_value(req, key);
  return v ? &v->bytes_value : NULL;
}

/* Issue 12: bytesValue attributes were never scanned (the base64 of an email and an SSN was stored as sent).
 * Text bytes are scanned as text, binary ones over their ASCII runs; a record's JSON holds them in base64. */
static void test_bytes_values(void **state)
{
  (void)state;
  struct gw_redact_policy p;
  gw_redact_policy_defaults(&p);
  p.actions[GW_RK_CARD] = GW_REDACT_DROP;
  struct gw_redactor *r = make(&p);
  static const char text[] = "mail alice@example.com, SSN 123-45-6789";
  static const char bin[] = "\x00\x01\xff alice@example.com\xfe\x00 10.1.2.3\x80";
  static const char utf16[] = "a\0l\0i\0c\0e\0@\0x\0.\0i\0o\0";
  GwTraceRequest *req = span_request(
    kvs(5, kv("app.text", av_bytes(text, sizeof text - 1)), kv("app.bin", av_bytes(bin, sizeof bin - 1)),
        kv("app.card", av_bytes("card 4111 1111 1111 1111", 24)), kv("app.utf16", av_bytes(utf16, sizeof utf16 - 1)),
        kv("app.plain", av_bytes("\x01\x02\x03", 3))),
    5);
  assert_int_equal(gw_redact_request(r, req, A, NULL), GW_OK);
  const ProtobufCBinaryData *b = bytes_of(req, "app.text");
  assert_non_null(b);
  assert_int_equal(b->len, strlen("mail [EMAIL_REDACTED], SSN [SSN_REDACTED]"));
  assert_memory_equal(b->data, "mail [EMAIL_REDACTED], SSN [SSN_REDACTED]", b->len);
  b = bytes_of(req, "app.bin");
  static const char bin_want[] = "\x00\x01\xff [EMAIL_REDACTED]\xfe\x00 [IP_REDACTED]\x80";
  assert_int_equal(b->len, sizeof bin_want - 1);
  assert_memory_equal(b->data, bin_want, b->len);
  assert_null(bytes_of(req, "app.card")); /* drop removes the attribute */
  b = bytes_of(req, "app.utf16"); /* not readable as ASCII: passes as sent (documented) */
  assert_int_equal(b->len, sizeof utf16 - 1);
  assert_memory_equal(b->data, utf16, b->len);
  assert_int_equal(bytes_of(req, "app.plain")->len, 3);

  /* the record's attributes JSON: base64 (as normalize writes bytes) decoded, scanned, written back */
  struct gw_record rec;
  memset(&rec, 0, sizeof rec);
  /* base64 of "mail alice@example.com, SSN 123-45-6789"; a hex id (valid base64 of binary); not canonical */
  rec.attributes = "{\"app.text\":\"bWFpbCBhbGljZUBleGFtcGxlLmNvbSwgU1NOIDEyMy00NS02Nzg5\","
                   "\"trace\":\"0123456789abcdef0123456789abcdef\",\"odd\":\"bWFpbCBhbGljZUBleGFtcGxlLmNvbR==\"}";
  assert_int_equal(gw_redact_records(r, &rec, 1, A, NULL), GW_OK);
  /* base64 of "mail [EMAIL_REDACTED], SSN [SSN_REDACTED]" */
  assert_string_equal(rec.attributes,
                      "{\"app.text\":\"bWFpbCBbRU1BSUxfUkVEQUNURURdLCBTU04gW1NTTl9SRURBQ1RFRF0=\","
                      "\"trace\":\"0123456789abcdef0123456789abcdef\",\"odd\":\"bWFpbCBhbGljZUBleGFtcGxlLmNvbR==\"}");
  memset(&rec, 0, sizeof rec);
  rec.attributes = "{\"app.card\":\"Y2FyZCA0MTExIDExMTEgMTExMSAxMTEx\",\"n\":1}"; /* "card 4111 1111 1111 1111" */
  assert_int_equal(gw_redact_records(r, &rec, 1, A, NULL), GW_OK);
  assert_string_equal(rec.attributes, "{\"n\":1}");
  /* digits and hex are ids, not base64: scanned as text (a card number in a string attribute: dropped by
   * this policy) */
  memset(&rec, 0, sizeof rec);
  rec.attributes = "{\"id\":\"4111111111111111\",\"h\":\"0123456789abcdef\"}";
  assert_int_equal(gw_redact_records(r, &rec, 1, A, NULL), GW_OK);
  assert_string_equal(rec.attributes, "{\"h\":\"0123456789abcdef\"}");
  gw_redactor_destroy(r);
}

/* Issue 12: a detection glued to a neighbouring one (2001:db8::1tok_abcd) only showed on a second pass,
 * because a boundary check saw the neighbour's characters. One pass must now find all that a second pass
 * over its output would: redacting the output again changes nothing, for every pair of these values glued
 * together, with and without a user pattern. */
static void test_glued_one_pass(void **state)
{
  (void)state;
  static const char *const v[] = {
    "10.1.2.3", "2001:db8::1", "fe80::1", "alice@example.com", "212-555-1234", "+14155550123", "123-45-6789",
    "4111111111111111", "AKIAIOSFODNN7EXAMPLE", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fw",
    "Bearer abc123def456ghi789", "sk-proj-AbCdEf0123456789AbCdEf0123456789", "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN\n-----END PRIVATE KEY-----", "xoxb-1234567890-abcdef",
    "AIzaSyA1234567890abcdefghijklmnopqrstu", "Basic dXNlcjpwYXNz", "tok_abcd", "x", "_", "-", ".", ":", "@", "/",
  };
  struct gw_redact_user_pattern pats[] = {{"tok", "tok_[a-z]+", NULL, GW_REDACT_MASK}};
  struct gw_redact_policy p;
  gw_redact_policy_defaults(&p);
  for (int with_user = 0; with_user < 2; with_user++) {
    p.patterns = with_user ? pats : NULL;
    p.n_patterns = with_user ? 1 : 0;
    struct gw_redactor *r = make(&p);
    char buf[512];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
      for (size_t j = 0; j < sizeof v / sizeof v[0]; j++) {
        snprintf(buf, sizeof buf, "%s%s", v[i], v[j]);
        const char *o = red(r, NULL, buf), *o2 = red(r, NULL, o);
        if (strcmp(o, o2))
          fail_msg("'%s': one pass gave '%s', a second '%s'", buf, o, o2);
      }
    if (with_user) {
      assert_string_equal(red(r, NULL, "2001:db8::1tok_abcd"), "[IP_REDACTED][TOK_REDACTED]");
      assert_string_equal(red(r, NULL, "10.0.0.1tok_abc"), "[IP_REDACTED][TOK_REDACTED]");
    }
    assert_string_equal(red(r, NULL, "2001:db8::1alice@example.com"), "[IP_REDACTED][EMAIL_REDACTED]");
    assert_string_equal(red(r, NULL, "212-555-1234+14155550123"), "[PHONE_REDACTED][PHONE_REDACTED]");
    gw_redactor_destroy(r);
  }
  /* many built-in and user-pattern matches interleaved: merged in order (and in linear time) */
  struct gw_redact_user_pattern emp[] = {{"employee_id", "EMP-\\d{6}", NULL, GW_REDACT_MASK}};
  p.patterns = emp;
  p.n_patterns = 1;
  struct gw_redactor *r = make(&p);
  char *in = repeat("a@b.cc EMP-123456 ", 5000), *want = repeat("[EMAIL_REDACTED] [EMPLOYEE_ID_REDACTED] ", 5000);
  assert_string_equal(red(r, NULL, in), want);
  free(in);
  free(want);
  gw_redactor_destroy(r);
}

/* ---- the per-request memo ---- */

/* A request whose long texts come back in many places: the same messages on every span (JSON attribute,
 * and so the record's attributes JSON and content columns), as a plain attribute, in span names. */
/* {"v":"<s as a JSON string>"} */
static char *wrap_json(const char *s)
{
  struct gw_sb sb;
  gw_sb_init(&sb, A);
  gw_sb_puts(&sb, "{\"v\":");
  gw_sb_json_str(&sb, s, strlen(s));
  gw_sb_putc(&sb, '}');
  return gw_sb_finish(&sb);
}

static uint8_t *memo_body(size_t *len)
{
  /* JSON four levels deep: walked whole as the request's attribute, but one level deeper in the record's
   * attributes JSON the last level is plain text there ("\nbob@..." then reads as "nbob@..."), so the
   * request pass's walk must not be replayed for it. */
  char *nested = gw_arena_strdup(A, "{\"k\":\"x\\nbob@example.com and some more words to be long enough\"}");
  for (int i = 0; i < 3; i++)
    nested = wrap_json(nested);
  /* the fourth is JSON itself: inside a message it is walked one level deeper, and under a content budget
   * that level's memoized walk is replayed (or not) with what is left of the budget; its "raw" member only
   * starts like JSON (a string is walked before the parse fails, then the whole is plain text) */
  static const char *const texts[] = {
    "Customer grace.rossi47@example.com called from +1 646 555 0986 about card 4111 1111 1111 1111; "
    "she asked us to confirm the refund to the address on file.",
    "Please write back to ops-team@example.com once 10.20.30.40 is patched, and keep 219-96-7272 out of "
    "the ticket history, thanks.",
    "Nothing sensitive in this one, only a long enough sentence to be worth remembering for later reuse.",
    "{\"note\":\"call +1 646 555 0986 before noon about the parcel that never arrived at the depot\","
    "\"raw\":\"[\\\"an array that only starts like JSON, with a string long enough to count\\\", oops]\","
    "\"tags\":[\"a plain tag that is long enough to spend the content budget of a record\",\"x\"]}",
  };
  GwSpan **spans = az(sizeof *spans * 12);
  for (size_t i = 0; i < 12; i++) {
    const char *t = texts[i % 4], *u = texts[(i + 1) % 4];
    struct gw_sb in_sb, out_sb;
    gw_sb_init(&in_sb, A);
    gw_sb_puts(&in_sb, "[{\"role\":\"system\",\"parts\":[{\"type\":\"text\",\"content\":");
    gw_sb_json_str(&in_sb, u, strlen(u));
    gw_sb_puts(&in_sb, "}]},{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":");
    gw_sb_json_str(&in_sb, t, strlen(t));
    gw_sb_puts(&in_sb, "}]}]");
    gw_sb_init(&out_sb, A);
    gw_sb_puts(&out_sb, "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":");
    gw_sb_json_str(&out_sb, t, strlen(t));
    gw_sb_puts(&out_sb, "}],\"finish_reason\":\"stop\"}]");
    char *in = gw_sb_finish(&in_sb), *out = gw_sb_finish(&out_sb);
    GwSpan *sp = az(sizeof *sp);
    gw_pb_span_init(sp);
    uint8_t *tid = az(16), *sid = az(8);
    memset(tid, 0x11, 16);
    tid[15] = (uint8_t)(i / 4 + 1);
    memset(sid, 0x22, 8);
    sid[7] = (uint8_t)(i + 1);
    sp->trace_id = (ProtobufCBinaryData){16, tid};
    sp->span_id = (ProtobufCBinaryData){8, sid};
    sp->start_time_unix_nano = 1700000000000000000ull + i;
    sp->end_time_unix_nano = sp->start_time_unix_nano + 1000;
    sp->name = gw_arena_strdup(A, t);
    sp->attributes = kvs(7, kv("gen_ai.operation.name", av_str("chat")), kv("gen_ai.request.model", av_str("gpt-4o")),
                         kv("gen_ai.input.messages", av_str(in)), kv("gen_ai.output.messages", av_str(out)),
                         kv("note", av_str(t)), kv("user.id", av_str("user-7@example.com")),
                         kv("tool.args", av_str(nested)));
    sp->n_attributes = 7;
    spans[i] = sp;
  }
  GwResource *res = az(sizeof *res);
  gw_pb_resource_init(res);
  res->attributes = kvs(2, kv("service.name", av_str("svc")), kv("deploy.owner", av_str(texts[1])));
  res->n_attributes = 2;
  GwScopeSpans *ss = az(sizeof *ss);
  gw_pb_scope_spans_init(ss);
  ss->spans = spans;
  ss->n_spans = 12;
  GwResourceSpans *rs = az(sizeof *rs);
  gw_pb_resource_spans_init(rs);
  rs->resource = res;
  rs->scope_spans = az(sizeof *rs->scope_spans);
  rs->scope_spans[0] = ss;
  rs->n_scope_spans = 1;
  GwTraceRequest *req = az(sizeof *req);
  gw_pb_trace_request_init(req);
  req->resource_spans = az(sizeof *req->resource_spans);
  req->resource_spans[0] = rs;
  req->n_resource_spans = 1;
  return pack(req, len);
}

/* memo_body decoded and normalized: its 12 records. */
static GwTraceRequest *memo_decode(const uint8_t *body, size_t len, struct gw_normalize_result *res)
{
  struct gw_decode_limits lim = {.max_bytes = 64u << 20, .max_depth = 64};
  struct gw_err err = {0};
  GwTraceRequest *req;
  assert_int_equal(gw_decode_traces(A, GW_ENC_PROTOBUF, body, len, &lim, &req, &err), GW_OK);
  assert_int_equal(gw_normalize_traces(req, A, NULL, res, &err), GW_OK);
  assert_int_equal(res->nrecords, 12);
  return req;
}

/* Decode, normalize and redact body (with or without a memo); the forwarded request and the encoded
 * records as bytes, and what the request pass added to the redaction metric. */
static void memo_run(const struct gw_redactor *r, const uint8_t *body, size_t len, bool memo, struct gw_sb *req_out,
                     struct gw_sb *recs_out, int64_t *metric)
{
  struct gw_normalize_result res;
  GwTraceRequest *req = memo_decode(body, len, &res);
  struct gw_redact_memo *m = memo ? gw_redact_memo_create(A) : NULL;
  int64_t before = 0;
  for (size_t k = 0; k < GW_RK__COUNT; k++)
    before += gw_redact_metric_get(gw_redact_kind_name((enum gw_redact_kind)k));
  assert_int_equal(gw_redact_request(r, req, A, m), GW_OK);
  assert_int_equal(gw_redact_records(r, res.records, res.nrecords, A, m), GW_OK);
  *metric = -before;
  for (size_t k = 0; k < GW_RK__COUNT; k++)
    *metric += gw_redact_metric_get(gw_redact_kind_name((enum gw_redact_kind)k));
  size_t plen;
  uint8_t *pb = pack(req, &plen);
  gw_sb_init(req_out, A);
  gw_sb_putn(req_out, (const char *)pb, plen);
  gw_sb_init(recs_out, A);
  assert_int_equal(gw_records_encode(res.records, res.nrecords, recs_out), GW_OK);
}

/* With the memo each distinct text is scanned once; the forwarded request, the records (redaction counts
 * and kinds included) and the metric are the same bytes as without it, under every kind of action. */
static void test_memo_same_result(void **state)
{
  (void)state;
  size_t len;
  uint8_t *body = memo_body(&len);
  static const struct gw_redact_key_rule hash_input[] = {{"gen_ai.input.messages", GW_REDACT_HASH}};
  static const struct gw_redact_user_pattern user[] = {{"ticket", "refund|ticket", NULL, GW_REDACT_MASK}};
  /* variant 5: a cap under the message texts' length, so the record's attributes JSON cuts what the
   * request pass kept whole (its memoized walk must not be replayed there); variants 6-9: content budgets
   * that cut some content columns and not others, one string in or the JSON text inside a message (the
   * memoized walks replayed under a budget must spend it as the walk does) */
  static const size_t budgets[] = {150, 100, 200, 290, 330, 2000};
  for (int variant = 0; variant < 10; variant++) {
    struct gw_redact_policy p;
    gw_redact_policy_defaults(&p);
    p.hmac_key = "k1-secret-hmac-key";
    if (variant == 1)
      p.actions[GW_RK_EMAIL] = GW_REDACT_HASH;
    if (variant == 2)
      p.actions[GW_RK_PHONE] = GW_REDACT_DROP;
    if (variant == 3) {
      p.key_rules = hash_input;
      p.n_key_rules = 1;
      p.patterns = user;
      p.n_patterns = 1;
    }
    if (variant >= 4)
      p.max_content_bytes = budgets[variant - 4];
    struct gw_redactor *r = make(&p);
    struct gw_sb req[2], recs[2];
    int64_t metric[2];
    memo_run(r, body, len, false, &req[0], &recs[0], &metric[0]);
    memo_run(r, body, len, true, &req[1], &recs[1], &metric[1]);
    if (req[0].len != req[1].len || memcmp(req[0].buf, req[1].buf, req[0].len))
      fail_msg("variant %d: the forwarded request differs with the memo", variant);
    if (recs[0].len != recs[1].len || memcmp(recs[0].buf, recs[1].buf, recs[0].len))
      fail_msg("variant %d: the records differ with the memo", variant);
    assert_int_equal(metric[0], metric[1]);
    assert_true(metric[0] > 0);
    gw_redactor_destroy(r);
  }
}

/* A content column rendered the same as the message attribute it came from (the semconv shape, compact, as
 * the OTel JS SDK sends it) is answered from the request pass's walk of that attribute: both columns of every
 * record, under the default content budget; under a budget smaller than their long strings, none. */
static void test_memo_content_replayed(void **state)
{
  (void)state;
  size_t len;
  uint8_t *body = memo_body(&len);
  for (int tight = 0; tight < 2; tight++) {
    struct gw_redact_policy p;
    gw_redact_policy_defaults(&p);
    if (tight)
      p.max_content_bytes = 90; /* under every message text's length (the shortest is 99 bytes) */
    struct gw_redactor *r = make(&p);
    struct gw_normalize_result res;
    GwTraceRequest *req = memo_decode(body, len, &res);
    struct gw_redact_memo *m = gw_redact_memo_create(A);
    assert_int_equal(gw_redact_request(r, req, A, m), GW_OK);
    size_t before = gw_redact_memo_json_hits(m);
    /* only the content columns are left to hit: a record's attributes JSON is replayed member by member,
     * and the span name and system prompt are texts (JSON in three spans each, so hits of their own) */
    for (size_t i = 0; i < res.nrecords; i++)
      res.records[i].attributes = res.records[i].span_name = res.records[i].system_prompt = NULL;
    assert_int_equal(gw_redact_records(r, res.records, res.nrecords, A, m), GW_OK);
    size_t hits = gw_redact_memo_json_hits(m) - before;
    if (tight)
      assert_int_equal(hits, 0);
    else
      assert_int_equal(hits, 2 * res.nrecords);
    gw_redactor_destroy(r);
  }
}

/* ---- the captured SDK fixtures ---- */

static const char *jstr(struct json_object *o, const char *k)
{
  struct json_object *v;
  return json_object_object_get_ex(o, k, &v) && !json_object_is_type(v, json_type_null) ? json_object_get_string(v)
                                                                                         : NULL;
}

static bool jbool(struct json_object *o, const char *k)
{
  struct json_object *v;
  return json_object_object_get_ex(o, k, &v) && json_object_get_boolean(v);
}

static void check_fixture(const struct gw_redactor *r, const char *file, const char *manifest_file)
{
  size_t len;
  char path[512];
  snprintf(path, sizeof path, "sdk/%s", file);
  char *body = tu_read_file(path, &len);
  bool json = strstr(file, ".json") != NULL;
  struct gw_decode_limits lim = {.max_bytes = 64u << 20, .max_depth = 64};
  struct gw_err err = {0};
  GwTraceRequest *req = NULL;
  if (gw_decode_traces(A, json ? GW_ENC_JSON : GW_ENC_PROTOBUF, body, len, &lim, &req, &err))
    fail_msg("%s: decode failed: %s", file, err.msg);
  struct gw_normalize_result res;
  assert_int_equal(gw_normalize_traces(req, A, NULL, &res, &err), GW_OK);
  assert_true(res.nrecords > 0);
  assert_int_equal(gw_redact_request(r, req, A, NULL), GW_OK);
  assert_int_equal(gw_redact_records(r, res.records, res.nrecords, A, NULL), GW_OK);

  size_t plen;
  uint8_t *pb = pack(req, &plen);
  struct gw_sb recs;
  gw_sb_init(&recs, A);
  assert_int_equal(gw_records_encode(res.records, res.nrecords, &recs), GW_OK);
  /* the records survive the spool codec and their JSON columns are valid */
  struct gw_record *back;
  size_t nback;
  assert_int_equal(gw_records_decode(recs.buf, recs.len, A, &back, &nback), GW_OK);
  for (size_t i = 0; i < nback; i++) {
    const char *js[] = {back[i].prompt_content, back[i].response_content, back[i].attributes, back[i].resource,
                        back[i].parameters};
    for (size_t k = 0; k < 5; k++) {
      if (!js[k])
        continue;
      struct json_object *o = json_tokener_parse(js[k]);
      if (!o)
        fail_msg("%s: record %zu: invalid JSON after redaction: %.200s", file, i, js[k]);
      json_object_put(o);
    }
  }

  snprintf(path, sizeof path, "sdk/%s", manifest_file);
  char *mtext = tu_read_file(path, NULL);
  struct json_object *m = json_tokener_parse(mtext), *calls;
  assert_non_null(m);
  assert_true(json_object_object_get_ex(m, "calls", &calls));
  size_t npii = 0, nkept = 0;
  bool content_dialect = strncmp(file, "otel", 4) != 0;
  for (size_t i = 0; i < json_object_array_length(calls); i++) {
    struct json_object *c = json_object_array_get_idx(calls, i), *pii, *msgs;
    if (json_object_object_get_ex(c, "pii", &pii))
      for (size_t k = 0; k < json_object_array_length(pii); k++) {
        const char *v = jstr(json_object_array_get_idx(pii, k), "value");
        assert_non_null(v);
        if (memmem(pb, plen, v, strlen(v)))
          fail_msg("%s call %zu: PII '%s' survived in the forwarded request", file, i, v);
        if (memmem(recs.buf, recs.len, v, strlen(v)))
          fail_msg("%s call %zu: PII '%s' survived in the stored records", file, i, v);
        npii++;
      }
    /* the non-PII words around it survive where the dialect carries content */
    const char *kind = jstr(c, "kind");
    if (!content_dialect || !jbool(c, "expect_span_exported") || !kind ||
        (strcmp(kind, "chat") && strcmp(kind, "stream")))
      continue;
    assert_true(json_object_object_get_ex(c, "messages", &msgs));
    for (size_t k = 0; k < json_object_array_length(msgs); k++) {
      const char *content = jstr(json_object_array_get_idx(msgs, k), "content");
      static const char *const phrases[] = {"can you check my account status", "connecting from", "wants a refund",
                                            "Please draft a short reply to", "You are a helpful assistant.",
                                            "Reach me at", "Audit access key", "Rotate the leaked AWS key",
                                            "logged key"};
      for (size_t q = 0; content && q < sizeof phrases / sizeof phrases[0]; q++)
        if (strstr(content, phrases[q])) {
          if (!memmem(recs.buf, recs.len, phrases[q], strlen(phrases[q])))
            fail_msg("%s call %zu: '%s' lost from the records", file, i, phrases[q]);
          if (!memmem(pb, plen, phrases[q], strlen(phrases[q])))
            fail_msg("%s call %zu: '%s' lost from the request", file, i, phrases[q]);
          nkept++;
        }
    }
  }
  assert_true(npii > 0);
  if (content_dialect)
    assert_true(nkept > 0);
  /* records that carried PII say so */
  size_t counted = 0;
  for (size_t i = 0; i < res.nrecords; i++)
    if (res.records[i].redaction_count.set && res.records[i].redaction_count.v > 0)
      counted++;
  if (content_dialect)
    assert_true(counted > 0);
  json_object_put(m);
  free(mtext);
  free(body);
}

static void test_fixtures(void **state)
{
  (void)state;
  struct gw_redactor *r = make_default();
  char *index = tu_read_file("sdk/index.jsonl", NULL);
  size_t checked = 0;
  char *save = NULL;
  for (char *line = strtok_r(index, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    struct json_object *o = json_tokener_parse(line);
    assert_non_null(o);
    const char *sig = jstr(o, "signal"), *p = jstr(o, "path");
    bool traces = sig ? !strcmp(sig, "traces") : (p && strstr(p, "trace") != NULL);
    if (traces) {
      check_fixture(r, jstr(o, "file"), jstr(o, "manifest"));
      checked++;
    }
    json_object_put(o);
  }
  free(index);
  assert_int_equal(checked, 9);
  gw_redactor_destroy(r);
}


/* ---- a record's attributes JSON rendered from the request pass (gw_redact_records) ----
 * Each body goes through decode, normalize, cost and redaction (with a memo and limits, as a receiver runs
 * them) twice: walking every record's attributes JSON as text (gw_redact_walk_attributes, the reference),
 * and rendering it from the request pass's results where that gives the same. The stored records and the
 * forwarded request must be the same bytes (values, counts, redacted_kinds, truncation flags), for the SDK
 * fixtures, the all-fields fixture and requests built from the detector table, under several policies. */

struct path_out {
  uint8_t *pb, *recs;
  size_t plen, rlen, replayed;
  gw_rc rc;
};

static struct gw_prices *replay_prices(void)
{
  static struct gw_prices *p;
  if (!p) {
    struct gw_err err = {0};
    p = gw_prices_load(NULL, NULL, &err);
    if (!p)
      fail_msg("prices: %s", err.msg);
  }
  return p;
}

/* Long texts redaction replaced (a new pointer) whose length it kept beside them (check_text_lengths). */
static size_t lengths_kept_after_rewrite;

/* The records' long texts carry their lengths from normalize through redaction (gw_record_set_text): each
 * kept length whose field still points at its text is that text's strlen, and the records encode to the
 * same bytes with every length cleared (the codec then measures each text itself, as before the lengths
 * were kept). before: each record's long texts as normalize left them. */
static void check_text_lengths(struct gw_arena *a, const struct gw_record *recs, size_t n,
                               const char *const (*before)[GW_RT__COUNT], const struct gw_sb *enc)
{
  struct gw_record *plain = malloc((n ? n : 1) * sizeof *plain);
  for (size_t i = 0; i < n; i++) {
    for (int t = 0; t < GW_RT__COUNT; t++) {
      const char *s = gw_record_text(&recs[i], (enum gw_rtext)t);
      if (s && recs[i].text_lens[t].s == s) {
        if (recs[i].text_lens[t].n != strlen(s))
          fail_msg("record %zu, long text %d: kept length %zu, strlen %zu", i, t, recs[i].text_lens[t].n, strlen(s));
        lengths_kept_after_rewrite += s != before[i][t];
      }
    }
    plain[i] = recs[i];
    memset(plain[i].text_lens, 0, sizeof plain[i].text_lens);
  }
  struct gw_sb sb;
  gw_sb_init(&sb, a);
  assert_int_equal(gw_records_encode(plain, n, &sb), GW_OK);
  if (sb.len != enc->len || memcmp(sb.buf, enc->buf, sb.len))
    fail_msg("records encoded with kept lengths differ from those measured again");
  free(plain);
}

static void one_path(const struct gw_redactor *r, const char *body, size_t len, bool json, bool walk,
                     struct path_out *o)
{
  struct gw_arena *ra = gw_arena_create(512u << 20); /* this run's own, as a request's */
  struct gw_decode_limits lim = {.max_bytes = 64u << 20, .max_depth = 64};
  struct gw_err err = {0};
  GwTraceRequest *req = NULL;
  memset(o, 0, sizeof *o);
  if (gw_decode_traces(ra, json ? GW_ENC_JSON : GW_ENC_PROTOBUF, body, len, &lim, &req, &err))
    fail_msg("decode failed: %s", err.msg);
  struct gw_normalize_result res;
  memset(&res, 0, sizeof res);
  assert_int_equal(gw_normalize_traces(req, ra, NULL, &res, &err), GW_OK);
  gw_cost_apply(replay_prices(), res.records, res.nrecords);
  assert_int_equal(gw_cost_annotate_spans(ra, res.records, res.nrecords), GW_OK);
  struct gw_redact_memo *memo = gw_redact_memo_create(ra);
  gw_redact_memo_limit(memo, r, len, NULL, NULL);
  gw_redact_walk_attributes = walk;
  size_t before = rd_attributes_replayed;
  const char *(*texts)[GW_RT__COUNT] = malloc((res.nrecords ? res.nrecords : 1) * sizeof *texts);
  for (size_t i = 0; i < res.nrecords; i++)
    for (int t = 0; t < GW_RT__COUNT; t++)
      texts[i][t] = gw_record_text(&res.records[i], (enum gw_rtext)t);
  o->rc = gw_redact_request(r, req, ra, memo);
  if (!o->rc)
    o->rc = gw_redact_records(r, res.records, res.nrecords, ra, memo);
  gw_redact_walk_attributes = false;
  o->replayed = rd_attributes_replayed - before;
  assert_int_equal(o->rc, GW_OK);
  struct gw_sb sb;
  gw_sb_init(&sb, ra);
  assert_int_equal(gw_records_encode(res.records, res.nrecords, &sb), GW_OK);
  check_text_lengths(ra, res.records, res.nrecords, (const char *const(*)[GW_RT__COUNT])texts, &sb);
  free(texts);
  o->rlen = sb.len;
  o->recs = malloc(sb.len + 1);
  memcpy(o->recs, sb.buf, sb.len);
  o->plen = gw_pb_trace_request_size(req);
  o->pb = malloc(o->plen + 1);
  gw_pb_trace_request_pack(req, o->pb);
  gw_arena_destroy(ra);
}

/* Both paths over body: the same bytes out; returns how many records the rendering served. */
static size_t same_both_ways(const struct gw_redactor *r, const char *body, size_t len, bool json, const char *what)
{
  struct path_out ref, got;
  one_path(r, body, len, json, true, &ref);
  one_path(r, body, len, json, false, &got);
  assert_int_equal(ref.replayed, 0);
  if (ref.rlen != got.rlen || memcmp(ref.recs, got.recs, ref.rlen)) {
    size_t i = 0;
    while (i < ref.rlen && i < got.rlen && ref.recs[i] == got.recs[i])
      i++;
    size_t from = i > 80 ? i - 80 : 0;
    fail_msg("%s: stored records differ at byte %zu of %zu/%zu:\n walked:   %.*s\n rendered: %.*s", what, i, ref.rlen,
             got.rlen, (int)(ref.rlen - from < 240 ? ref.rlen - from : 240), ref.recs + from,
             (int)(got.rlen - from < 240 ? got.rlen - from : 240), got.recs + from);
  }
  if (ref.plen != got.plen || memcmp(ref.pb, got.pb, ref.plen))
    fail_msg("%s: forwarded requests differ", what);
  free(ref.pb);
  free(ref.recs);
  free(got.pb);
  free(got.recs);
  return got.replayed;
}

/* Redaction rewrites the records' long texts (masked shorter or longer, hashed, dropped to NULL or "{}",
 * denied, cut to the content cap, a shared resource served from its cache) and keeps each new length
 * beside its text: every kept length is its text's strlen, and the records encode as with every length
 * measured again (check_text_lengths). */
static void test_record_lengths_after_rewrite(void **state)
{
  (void)state;
  static const char *const deny[] = {"status.message"};
  struct gw_redact_policy pol[4];
  for (int k = 0; k < 4; k++)
    gw_redact_policy_defaults(&pol[k]);
  pol[1].actions[GW_RK_SSN] = GW_REDACT_DROP;
  pol[1].actions[GW_RK_EMAIL] = GW_REDACT_HASH;
  pol[1].hmac_key = "lengths-test-key";
  pol[2].max_content_bytes = 16;
  pol[3].deny_keys = deny;
  pol[3].n_deny_keys = 1;
  const char *resource = "{\"owner\":\"ops@example.com\",\"region\":\"eu\"}";
  const char *texts[GW_RT__COUNT] = {
    [GW_RT_ERROR_MESSAGE] = "rate limited for key sk-abcdefghijklmnopqrstuvwx1234",
    [GW_RT_SYSTEM_PROMPT] = "Owner: a@b.io, caf\xc3\xa9 \xe2\x82\xac",
    [GW_RT_PROMPT_CONTENT] =
      "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"ssn 123-45-6789 caf\\u00e9 \xc3\xa9\"}]}]",
    [GW_RT_RESPONSE_CONTENT] = "",
    [GW_RT_PARAMETERS] = "ssn 123-45-6789",
    [GW_RT_ATTRIBUTES] = "{\"a\":\"ssn 123-45-6789\",\"b\":\"ok\",\"c\":\"x@y.example\"}",
    [GW_RT_RESOURCE] = resource,
  };
  for (int k = 0; k < 4; k++) {
    struct gw_redactor *r = make(&pol[k]);
    enum { NR = 3 };
    struct gw_record recs[NR];
    const char *before[NR][GW_RT__COUNT];
    memset(recs, 0, sizeof recs);
    for (int i = 0; i < NR; i++)
      for (int t = 0; t < GW_RT__COUNT; t++) {
        const char *s = i == 2 && t != GW_RT_RESOURCE ? NULL : texts[t]; /* the third: NULLs, the resource */
        gw_record_set_text(&recs[i], (enum gw_rtext)t, s, s ? strlen(s) : 0);
        before[i][t] = s;
      }
    assert_int_equal(gw_redact_records(r, recs, NR, A, NULL), GW_OK);
    size_t kept = lengths_kept_after_rewrite;
    struct gw_sb sb;
    gw_sb_init(&sb, A);
    assert_int_equal(gw_records_encode(recs, NR, &sb), GW_OK);
    check_text_lengths(A, recs, NR, (const char *const(*)[GW_RT__COUNT])before, &sb);
    assert_true(lengths_kept_after_rewrite - kept >= 6);
    for (int i = 0; i < NR; i++)
      for (int t = 0; t < GW_RT__COUNT; t++) {
        const char *s = gw_record_text(&recs[i], (enum gw_rtext)t);
        assert_int_equal(gw_record_text_len(&recs[i], (enum gw_rtext)t), s ? strlen(s) : 0);
      }
    assert_ptr_equal(recs[1].resource, recs[0].resource); /* served from the cache */
    assert_null(strstr(recs[0].resource, "ops@example.com"));
    if (k == 0) {
      assert_true(strlen(recs[0].error_message) < strlen(texts[GW_RT_ERROR_MESSAGE]));
      assert_true(strlen(recs[0].system_prompt) > strlen(texts[GW_RT_SYSTEM_PROMPT]));
      assert_string_equal(recs[0].parameters, "ssn [SSN_REDACTED]");
      assert_string_equal(recs[0].response_content, "");
    } else if (k == 1) {
      assert_null(recs[0].prompt_content);            /* a drop in a message list drops the list */
      assert_string_equal(recs[0].parameters, "{}"); /* an attribute JSON column is left an object */
      assert_string_equal(recs[0].attributes, "{\"b\":\"ok\",\"c\":\"[EMAIL:a2ec6fee13e2]\"}"); /* a member goes */
    } else if (k == 2) {
      assert_true(gw_record_has_flag(&recs[0], GW_FLAG_CONTENT_TRUNCATED));
    } else {
      assert_null(recs[0].error_message);
    }
    gw_redactor_destroy(r);
  }
}

/* An OTLP/JSON key/value with a string (or other typed) value. */
static void kv_add(struct json_object *attrs, const char *key, const char *type, struct json_object *val)
{
  struct json_object *kv = json_object_new_object(), *v = json_object_new_object();
  json_object_object_add(kv, "key", json_object_new_string(key));
  json_object_object_add(v, type, val);
  json_object_object_add(kv, "value", v);
  json_object_array_add(attrs, kv);
}

static char *b64(const char *s)
{
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t n = strlen(s), w = 0;
  char *o = malloc(n / 3 * 4 + 8);
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)(unsigned char)s[i] << 16 | (i + 1 < n ? (uint32_t)(unsigned char)s[i + 1] << 8 : 0) |
                 (i + 2 < n ? (unsigned char)s[i + 2] : 0);
    o[w++] = tab[v >> 18];
    o[w++] = tab[(v >> 12) & 63];
    o[w++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
    o[w++] = i + 2 < n ? tab[v & 63] : '=';
  }
  o[w] = 0;
  return o;
}

/* A GenAI span holding in (under key, in message JSON, in JSON inside JSON, and, varying with i, as bytes, in
 * an array, next to deny- and allow-listed keys, numbers and empty values). */
static struct json_object *corpus_span(int i, const char *key, const char *in, bool positive)
{
  struct json_object *sp = json_object_new_object(), *attrs = json_object_new_array();
  char id[40];
  snprintf(id, sizeof id, "%032x", i + 1);
  json_object_object_add(sp, "traceId", json_object_new_string(id));
  snprintf(id, sizeof id, "%016x", i + 1);
  json_object_object_add(sp, "spanId", json_object_new_string(id));
  json_object_object_add(sp, "name", json_object_new_string("chat gpt-4o"));
  json_object_object_add(sp, "startTimeUnixNano", json_object_new_string("1764800000000000000"));
  json_object_object_add(sp, "endTimeUnixNano", json_object_new_string("1764800001000000000"));
  kv_add(attrs, "gen_ai.operation.name", "stringValue", json_object_new_string("chat"));
  kv_add(attrs, "gen_ai.request.model", "stringValue", json_object_new_string("gpt-4o"));
  kv_add(attrs, "gen_ai.usage.input_tokens", "intValue", json_object_new_string("120"));
  kv_add(attrs, "gen_ai.usage.output_tokens", "intValue", json_object_new_string("30"));
  kv_add(attrs, key, "stringValue", json_object_new_string(in));
  struct json_object *msg = json_object_new_array(), *m = json_object_new_object(), *parts = json_object_new_array(),
                     *part = json_object_new_object();
  json_object_object_add(part, "type", json_object_new_string("text"));
  json_object_object_add(part, "content", json_object_new_string(in));
  json_object_array_add(parts, part);
  json_object_object_add(m, "role", json_object_new_string("user"));
  json_object_object_add(m, "parts", parts);
  json_object_array_add(msg, m);
  const char *msgs = json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN);
  kv_add(attrs, "gen_ai.input.messages", "stringValue", json_object_new_string(msgs));
  struct json_object *outer = json_object_new_object();
  json_object_object_add(outer, "inner", json_object_new_string(msgs));
  kv_add(attrs, "app.nested", "stringValue",
         json_object_new_string(json_object_to_json_string_ext(outer, JSON_C_TO_STRING_PLAIN)));
  json_object_put(outer);
  json_object_put(msg);
  if (i % 9 == 6) { /* JSON in JSON strings, as deep as the walk goes: the record's walk reads one level less */
    char *deep = strdup(in);
    for (int level = 0; level < 4; level++) {
      struct json_object *o = json_object_new_object();
      json_object_object_add(o, "v", json_object_new_string(deep));
      free(deep);
      deep = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
      json_object_put(o);
    }
    kv_add(attrs, "app.deep", "stringValue", json_object_new_string(deep));
    free(deep);
  }
  kv_add(attrs, "app.empty", "stringValue", json_object_new_string(""));
  kv_add(attrs, "app.ratio", "doubleValue", json_object_new_double(0.25 * i));
  kv_add(attrs, "app.flag", "boolValue", json_object_new_boolean(i & 1));
  if (i % 4 == 1) {
    char *b = b64(in);
    kv_add(attrs, "app.blob", "bytesValue", json_object_new_string(b));
    free(b);
  }
  if (i % 4 == 3) { /* a string that is base64 text: the record's walk decodes it, the request's does not */
    char *b = b64(in);
    kv_add(attrs, "app.b64", "stringValue", json_object_new_string(b));
    free(b);
  }
  if (i % 5 == 2) {
    struct json_object *arr = json_object_new_object(), *vals = json_object_new_array(), *v = json_object_new_object();
    json_object_object_add(v, "stringValue", json_object_new_string(in));
    json_object_array_add(vals, v);
    json_object_object_add(arr, "values", vals);
    kv_add(attrs, "app.list", "arrayValue", arr);
  }
  if (i % 3 == 0)
    kv_add(attrs, "http.request.header.authorization", "stringValue", json_object_new_string("Bearer abcdef0123456789"));
  if (i % 7 == 3 && !positive)
    kv_add(attrs, "service.version", "stringValue", json_object_new_string(in));
  if (i % 6 == 4)
    kv_add(attrs, "user.id", "stringValue", json_object_new_string(in));
  if (i % 8 == 5)
    kv_add(attrs, "", "stringValue", json_object_new_string(in));
  json_object_object_add(sp, "attributes", attrs);
  return sp;
}

/* The detector table as OTLP/JSON requests of 40 spans each; secrets[] collects the texts that must not
 * survive (but those a true negative holds: "ORD-212-555-1234" keeps its digits). Returns the number of bodies. */
static size_t corpus_bodies(char ***bodies, char ***secrets, size_t *nsecrets)
{
  char *text = tu_read_file("redact/detectors.tsv", NULL), *save = NULL;
  size_t nb = 0, ns = 0, nneg = 0;
  static char *neg[1024];
  *bodies = calloc(64, sizeof **bodies);
  *secrets = calloc(1024, sizeof **secrets);
  struct json_object *spans = NULL;
  int i = 0;
  for (char *line = strtok_r(text, "\n", &save);; line = strtok_r(NULL, "\n", &save)) {
    if (line && line[0] == '#')
      continue;
    if (spans && (!line || json_object_array_length(spans) == 40)) {
      struct json_object *root = json_object_new_object(), *rss = json_object_new_array(),
                         *rs = json_object_new_object(), *sss = json_object_new_array(),
                         *ss = json_object_new_object(), *res = json_object_new_object(),
                         *rattrs = json_object_new_array();
      kv_add(rattrs, "service.name", "stringValue", json_object_new_string("corpus"));
      kv_add(rattrs, "host.owner", "stringValue", json_object_new_string("ops alice@example.com"));
      json_object_object_add(res, "attributes", rattrs);
      json_object_object_add(rs, "resource", res);
      json_object_object_add(ss, "spans", spans);
      json_object_array_add(sss, ss);
      json_object_object_add(rs, "scopeSpans", sss);
      json_object_array_add(rss, rs);
      json_object_object_add(root, "resourceSpans", rss);
      assert_true(nb < 64);
      (*bodies)[nb++] = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
      json_object_put(root);
      spans = NULL;
    }
    if (!line) {
      /* one body past the scan budget of scan_factor 1 (its size plus 1 MiB): masked whole from some point */
      struct json_object *root = json_object_new_object(), *rss = json_object_new_array(),
                         *rs = json_object_new_object(), *sss = json_object_new_array(),
                         *ss = json_object_new_object();
      spans = json_object_new_array();
      char *big = malloc(8192);
      big[0] = 0;
      while (strlen(big) + 40 < 8000)
        strcat(big, "mail alice@example.com or 212-555-1234 ");
      for (int k = 0; k < 80; k++)
        json_object_array_add(spans, corpus_span(1000 + k, "app.note", big, true));
      free(big);
      json_object_object_add(ss, "spans", spans);
      json_object_array_add(sss, ss);
      json_object_object_add(rs, "scopeSpans", sss);
      json_object_array_add(rss, rs);
      json_object_object_add(root, "resourceSpans", rss);
      (*bodies)[nb++] = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
      json_object_put(root);
      break;
    }
    char *col[6] = {0};
    int nc = 0;
    for (char *p = line; nc < 6;) {
      col[nc++] = p;
      char *t = strchr(p, '\t');
      if (!t)
        break;
      *t = 0;
      p = t + 1;
    }
    assert_true(nc >= 4);
    bool positive = !strcmp(col[1], "+");
    char *in = unescape(col[3]);
    if (!spans)
      spans = json_object_new_array();
    json_object_array_add(spans, corpus_span(i++, strcmp(col[2], "-") ? col[2] : "app.note", in, positive));
    if (positive && nc >= 5 && col[4][0] && ns < 1024)
      (*secrets)[ns++] = unescape(col[4]);
    if (!positive && nneg < 1024)
      neg[nneg++] = strdup(in);
    free(in);
  }
  free(text);
  size_t w = 0;
  for (size_t q = 0; q < ns; q++) {
    bool kept = false;
    for (size_t k = 0; k < nneg && !kept; k++)
      kept = strstr(neg[k], (*secrets)[q]) != NULL;
    if (kept)
      free((*secrets)[q]);
    else
      (*secrets)[w++] = (*secrets)[q];
  }
  for (size_t k = 0; k < nneg; k++)
    free(neg[k]);
  *nsecrets = w;
  return nb;
}

static void test_attributes_rendered_same(void **state)
{
  (void)state;
  static const char *const users[] = {"user.id"};
  static const struct gw_redact_key_rule rules[] = {{"user.id", GW_REDACT_HASH}, {"app.nested", GW_REDACT_DROP}};
  static const struct gw_redact_user_pattern pats[] = {{"ticket", "TCK-[0-9]+", NULL, GW_REDACT_MASK},
                                                       {"account", "acct[0-9]{3}", NULL, GW_REDACT_DROP}};
  struct gw_redact_policy pol[6];
  for (int k = 0; k < 6; k++) {
    gw_redact_policy_defaults(&pol[k]);
    /* no CPU budget: where it runs out depends on the clock (the walk is the slower path, and valgrind
     * makes it slower still), not on the text; the scan budget (policy 4) is the deterministic one */
    pol[k].cpu_ms_per_mib = 0;
  }
  for (int k = 0; k < GW_RK__COUNT; k++) /* hash, drop and mask mixed */
    pol[1].actions[k] = k % 3 == 0 ? GW_REDACT_HASH : k % 3 == 1 ? GW_REDACT_DROP : GW_REDACT_MASK;
  pol[1].hmac_key = "replay-test-key";
  pol[1].key_rules = rules;
  pol[1].n_key_rules = 2;
  pol[1].deny_keys = users;
  pol[1].n_deny_keys = 1;
  pol[2].max_content_bytes = 24; /* strings cut: the records must be walked */
  pol[3].patterns = pats;
  pol[3].n_patterns = 2;
  pol[3].allow_keys = users;
  pol[3].n_allow_keys = 1;
  pol[4].scan_factor = 1; /* a small scan budget: masked whole past it */
  pol[5].enabled = false;

  char **bodies, **secrets;
  size_t nsecrets, nb = corpus_bodies(&bodies, &secrets, &nsecrets);
  assert_true(nb >= 5);
  assert_true(nsecrets > 100);
  size_t replayed[6] = {0}, rewritten[6] = {0};
  int64_t limited = rd_metric_limited_get(RD_LIM_SCAN);
  for (int k = 0; k < 6; k++) {
    struct gw_redactor *r = make(&pol[k]);
    char what[128];
    if (k == 5)
      assert_true(rd_metric_limited_get(RD_LIM_SCAN) > limited); /* policy 4 met its scan budget */
    size_t kept = lengths_kept_after_rewrite;
    for (size_t b = 0; b < nb; b++) {
      snprintf(what, sizeof what, "policy %d, detector table body %zu", k, b);
      replayed[k] += same_both_ways(r, bodies[b], strlen(bodies[b]), true, what);
    }
    rewritten[k] = lengths_kept_after_rewrite - kept;
    char *index = tu_read_file("sdk/index.jsonl", NULL), *save = NULL;
    for (char *line = strtok_r(index, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
      struct json_object *o = json_tokener_parse(line);
      const char *sig = jstr(o, "signal"), *p = jstr(o, "path"), *file = jstr(o, "file");
      if (sig ? !strcmp(sig, "traces") : (p && strstr(p, "trace") != NULL)) {
        char path[512];
        size_t len;
        snprintf(path, sizeof path, "sdk/%s", file);
        char *body = tu_read_file(path, &len);
        snprintf(what, sizeof what, "policy %d, %s", k, file);
        replayed[k] += same_both_ways(r, body, len, strstr(file, ".json") != NULL, what);
        free(body);
      }
      json_object_put(o);
    }
    free(index);
    size_t len;
    char *all = tu_read_file("json/traces-all-fields.json", &len);
    snprintf(what, sizeof what, "policy %d, traces-all-fields.json", k);
    replayed[k] += same_both_ways(r, all, len, true, what);
    free(all);
    if (k == 0) {
      /* nothing the table calls a secret is left, in the records or the forwarded request */
      for (size_t b = 0; b < nb; b++) {
        struct path_out o;
        one_path(r, bodies[b], strlen(bodies[b]), true, false, &o);
        for (size_t q = 0; q < nsecrets; q++) {
          if (memmem(o.recs, o.rlen, secrets[q], strlen(secrets[q])))
            fail_msg("'%s' survived in the stored records of body %zu", secrets[q], b);
          if (memmem(o.pb, o.plen, secrets[q], strlen(secrets[q])))
            fail_msg("'%s' survived in the forwarded request of body %zu", secrets[q], b);
        }
        free(o.pb);
        free(o.recs);
      }
    }
    gw_redactor_destroy(r);
  }
  /* the rendering served most records where it can, none where redaction is off */
  if (getenv("GW_TEST_VERBOSE"))
    for (int k = 0; k < 6; k++)
      printf("policy %d: %zu records rendered\n", k, replayed[k]);
  assert_true(replayed[0] > 100);
  assert_true(replayed[1] > 100);
  assert_true(replayed[3] > 100);
  assert_int_equal(replayed[5], 0);
  /* redaction replaced long texts and kept their lengths under every policy that redacts (with
   * redaction off, only texts over the content cap are replaced: cut) */
  if (getenv("GW_TEST_VERBOSE"))
    for (int k = 0; k < 6; k++)
      printf("policy %d: %zu long texts replaced with their lengths kept\n", k, rewritten[k]);
  for (int k = 0; k < 5; k++)
    assert_true(rewritten[k] > 10);
  for (size_t b = 0; b < nb; b++)
    free(bodies[b]);
  for (size_t q = 0; q < nsecrets; q++)
    free(secrets[q]);
  free(bodies);
  free(secrets);
}

/* An array attribute with nothing to redact (tags, finish reasons, stop sequences) leaves the record's
 * attributes JSON as normalize wrote it instead of rendering it again; an array holding a secret is
 * rendered again, without it. Both give the bytes of the walk (same_both_ways). */
static void test_clean_array_keeps_attributes(void **state)
{
  (void)state;
  struct gw_redact_policy pol;
  gw_redact_policy_defaults(&pol);
  pol.cpu_ms_per_mib = 0;
  struct gw_redactor *r = make(&pol);
  static const char *const fmt =
    "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"0af7651916cd43dd8448eb211c80319c\","
    "\"spanId\":\"b7ad6b716920333%d\",\"name\":\"chat gpt-4o\",\"attributes\":["
    "{\"key\":\"gen_ai.operation.name\",\"value\":{\"stringValue\":\"chat\"}},"
    "{\"key\":\"gen_ai.request.model\",\"value\":{\"stringValue\":\"gpt-4o\"}},"
    "{\"key\":\"app.tags\",\"value\":{\"arrayValue\":{\"values\":["
    "{\"stringValue\":\"end_turn\"},{\"stringValue\":\"%s\"},{\"intValue\":\"3\"}]}}},"
    "{\"key\":\"gen_ai.input.messages\",\"value\":{\"stringValue\":"
    "\"[{\\\"role\\\":\\\"user\\\",\\\"parts\\\":[{\\\"type\\\":\\\"text\\\",\\\"content\\\":\\\"hi %s\\\"}]}]\"}}]}]}]}]}";
  static const char *const cases[][3] = {
    /* array element, message word, kept */
    {"length", "there", "1"},
    {"mail alice@example.com", "there", "0"},
    {"length", "alice@example.com", "0"}, /* another attribute changed: rendered again */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char body[2048], what[64];
    snprintf(body, sizeof body, fmt, (int)i, cases[i][0], cases[i][1]);
    snprintf(what, sizeof what, "clean array case %zu", i);
    size_t kept = rd_attributes_kept;
    assert_int_equal(same_both_ways(r, body, strlen(body), true, what), 1);
    if (rd_attributes_kept - kept != (size_t)(cases[i][2][0] - '0'))
      fail_msg("%s: kept %zu", what, rd_attributes_kept - kept);
    struct path_out o;
    one_path(r, body, strlen(body), true, false, &o);
    assert_null(memmem(o.recs, o.rlen, "alice@example.com", 17));
    assert_null(memmem(o.pb, o.plen, "alice@example.com", 17));
    assert_non_null(memmem(o.recs, o.rlen, "\"end_turn\"", 10));
    free(o.pb);
    free(o.recs);
  }
  gw_redactor_destroy(r);
}

/* rd_secret_key_name looks for "secret" around each 'c' before it copies and searches the key: the same
 * answers as the copy-and-search alone (written out here), on keys built from pieces of both names, their
 * near misses, separators and case, up to past the 127 bytes the search reads. */
static bool secret_key_ref(const char *key, size_t len)
{
  if (len < 9)
    return false;
  char buf[128];
  size_t n = 0;
  for (size_t i = 0; i < len && n < sizeof buf - 1; i++) {
    char c = key[i];
    if (c == '_' || c == '.' || c == '-')
      continue;
    buf[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
  }
  buf[n] = 0;
  return strstr(buf, "secretaccesskey") || strstr(buf, "awssecret");
}

static void test_secret_key_name_same(void **state)
{
  (void)state;
  static const char *const pieces[] = {"secret", "SECRET", "Se", "cret", "sec", "ret", "access", "Access",
                                       "key", "KEY", "aws", "AWS", "_", ".", "-", "c", "C", "s", "e", "r",
                                       "t", "x", "gen_ai", "content", "secrt", "secr-et", "sEcReT", "\xc3\xa9",
                                       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
  static const char *const fixed[] = {"aws_secret_access_key", "AWS-Secret", "my.secret.access.key",
                                      "s_e_c_r_e_t_a_c_c_e_s_s_k_e_y", "awssecre", "secretaccesske",
                                      "x.secret-_-access..key", "session.id", "process.command_line"};
  size_t yes = 0;
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
    assert_int_equal(rd_secret_key_name(fixed[i], strlen(fixed[i])), secret_key_ref(fixed[i], strlen(fixed[i])));
  uint64_t st = 0x9e3779b97f4a7c15ull;
  for (int round = 0; round < 200000; round++) {
    char key[400];
    size_t n = 0;
    st = st * 6364136223846793005ull + 1442695040888963407ull;
    int parts = 1 + (int)(st >> 60);
    for (int k = 0; k < parts; k++) {
      st = st * 6364136223846793005ull + 1442695040888963407ull;
      const char *p = pieces[(st >> 33) % (sizeof pieces / sizeof pieces[0])];
      size_t pl = strlen(p);
      if (n + pl >= sizeof key)
        break;
      memcpy(key + n, p, pl);
      n += pl;
    }
    bool want = secret_key_ref(key, n);
    yes += want;
    if (rd_secret_key_name(key, n) != want)
      fail_msg("'%.*s': %d, the copy-and-search says %d", (int)n, key, !want, want);
  }
  assert_true(yes > 1000); /* the pieces make both names often enough */
}

/* rd_key_enter's per-thread cache of keys (rd_key_info_cached) gives what rd_key_info gives, key by key:
 * keys of every length around the cache's words (1-3, 4-7, 8-15, 16-32 bytes, and longer ones it does not
 * hold), case variants, rule keys and their prefixes, asked in random order so that slots are shared and
 * replaced; then a second redactor with the opposite rules must not be answered from the first one's
 * entries (the redactor's id is part of the entry). */
static void key_cache_check(const struct gw_redactor *r, uint64_t *st, size_t *hits_rule)
{
  static const char *const pieces[] = {"role", "Role", "parts", "content", "type", "gen_ai", ".", "_", "-",
                                       "password", "PASSWORD", "token", "api", "key", "Authorization",
                                       "secret", "access", "aws", "x", "Y", "z9", "user.id", "a.b.", "\xc3\xa9"};
  for (int round = 0; round < 60000; round++) {
    char key[80];
    size_t n = 0;
    *st = *st * 6364136223846793005ull + 1442695040888963407ull;
    int parts = 1 + (int)(*st >> 61);
    for (int k = 0; k < parts; k++) {
      *st = *st * 6364136223846793005ull + 1442695040888963407ull;
      const char *p = pieces[(*st >> 33) % (sizeof pieces / sizeof pieces[0])];
      size_t pl = strlen(p);
      if (n + pl >= sizeof key)
        break;
      memcpy(key + n, p, pl);
      n += pl;
    }
    *st = *st * 6364136223846793005ull + 1442695040888963407ull;
    if (n > 1 && (*st >> 40) % 4 == 0)
      n = 1 + (size_t)(*st >> 20) % n; /* cut anywhere: every length */
    struct rd_keyinfo want = rd_key_info(r, key, n), got = rd_key_info_cached(r, key, n);
    if (got.k != want.k || got.secret != want.secret || got.auth != want.auth)
      fail_msg("'%.*s' (%zu bytes): cached rule %p secret %d auth %d, rd_key_info %p %d %d", (int)n, key, n,
               (const void *)got.k, got.secret, got.auth, (const void *)want.k, want.secret, want.auth);
    *hits_rule += want.k != NULL;
  }
}

static void test_key_cache_same(void **state)
{
  (void)state;
  static const char *const deny[] = {"password", "parts", "a.b.*", "x"};
  static const char *const allow[] = {"content", "role"};
  static const struct gw_redact_key_rule rules[] = {{"gen_ai.prompt", GW_REDACT_HASH}, {"user.id", GW_REDACT_DROP}};
  struct gw_redact_policy p;
  gw_redact_policy_defaults(&p);
  p.deny_keys = deny;
  p.n_deny_keys = 4;
  p.allow_keys = allow;
  p.n_allow_keys = 2;
  p.key_rules = rules;
  p.n_key_rules = 2;
  p.hmac_key = "k";
  struct gw_redactor *r1 = make(&p);
  uint64_t st = 42;
  size_t ruled = 0;
  key_cache_check(r1, &st, &ruled);
  assert_true(ruled > 1000); /* the pieces meet the rules often */
  /* the same keys again under other rules: "role" and "content" denied, "password" and "parts" allowed */
  static const char *const deny2[] = {"role", "content"};
  static const char *const allow2[] = {"password", "parts", "x"};
  p.deny_keys = deny2;
  p.n_deny_keys = 2;
  p.allow_keys = allow2;
  p.n_allow_keys = 3;
  p.n_key_rules = 0;
  struct gw_redactor *r2 = make(&p);
  st = 42;
  key_cache_check(r2, &st, &ruled);
  gw_redactor_destroy(r1);
  st = 42;
  key_cache_check(r2, &st, &ruled);
  struct gw_redactor *r3 = make_default(); /* may well take r1's address */
  st = 42;
  key_cache_check(r3, &st, &ruled);
  gw_redactor_destroy(r2);
  gw_redactor_destroy(r3);

  /* Keys sharing a slot and a length, one byte apart, at every position of every length the cache holds:
   * the deny-listed one first, then its neighbour, which has no rule; any byte the entry failed to compare
   * would hand the neighbour the deny rule. */
  size_t pairs = 0;
  for (size_t len = 1; len <= 33; len++) {
    for (size_t pos = 0; pos < len; pos++) {
      char base[40], other[40];
      for (size_t i = 0; i < len; i++)
        base[i] = (char)('a' + (i * 7 + len) % 26);
      base[len] = 0;
      memcpy(other, base, len + 1);
      int slot = rd_key_cache_slot(base, len);
      if (len > 32) {
        assert_int_equal(slot, -1); /* not held: looked up each time */
        break;
      }
      bool found = false;
      for (int c = 1; c < 256 && !found; c++) {
        if ((unsigned char)c == (unsigned char)base[pos] || (c >= 'A' && c <= 'Z'))
          continue; /* the same key, or the same key in another case (rules ignore case) */
        other[pos] = (char)c;
        found = rd_key_cache_slot(other, len) == slot;
      }
      if (!found)
        continue;
      const char *const deny3[] = {base};
      struct gw_redact_policy q;
      gw_redact_policy_defaults(&q);
      q.deny_keys = deny3;
      q.n_deny_keys = 1;
      struct gw_redactor *r4 = make(&q);
      struct rd_keyinfo a = rd_key_info_cached(r4, base, len), b = rd_key_info_cached(r4, other, len);
      assert_non_null(a.k);
      if (b.k)
        fail_msg("%zu-byte key changed at byte %zu took the rule of the key before it in the same slot", len, pos);
      pairs++;
      gw_redactor_destroy(r4);
    }
  }
  assert_true(pairs > 200); /* most positions found a neighbour in the same slot */

  /* Runs of one letter have the same words at every length of a word range ("aaaa" and "aaaaa"): the
   * length tells them apart where they share a slot. */
  size_t runs = 0;
  for (int ch = 'a'; ch <= 'z'; ch++)
    for (size_t la = 4; la <= 32; la++)
      for (size_t lb = la + 1; lb <= 32 && lb < (la < 8 ? 8 : la < 16 ? 16 : 33); lb++) {
        char ka[40], kb[40];
        memset(ka, ch, la);
        ka[la] = 0;
        memset(kb, ch, lb);
        kb[lb] = 0;
        if (rd_key_cache_slot(ka, la) != rd_key_cache_slot(kb, lb))
          continue;
        const char *const deny4[] = {ka};
        struct gw_redact_policy q;
        gw_redact_policy_defaults(&q);
        q.deny_keys = deny4;
        q.n_deny_keys = 1;
        struct gw_redactor *r5 = make(&q);
        assert_non_null(rd_key_info_cached(r5, ka, la).k);
        if (rd_key_info_cached(r5, kb, lb).k)
          fail_msg("'%s' took the rule of '%s' in the same slot", kb, ka);
        runs++;
        gw_redactor_destroy(r5);
      }
  assert_true(runs > 5);
}

/* ---- the candidate prefilter against the straightforward scan ----
 * rd_next_candidate skips 16 bytes at a time with a block filter before rd_candidate looks closer. A filter
 * that let a real start through unseen would lose a match: compared here, on random and adversarial texts,
 * with (1) the position-by-position candidate walk and (2) the anchored pattern tried at every position
 * (rd_every_position): the outputs and counts must be the same, value by value. */

static uint64_t prng_state;

/* Under valgrind the comparison runs on fewer texts (each one is redacted at every position). */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define DIFF_SLOW() (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef DIFF_SLOW
#define DIFF_SLOW() false
#endif

static uint32_t prng(void)
{
  prng_state = prng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(prng_state >> 33);
}

/* Pieces detectors start with, or almost do, and what surrounds them. */
static const char *const diff_pieces[] = {
  "alice@example.com", "a.b+c@d-e.example.org", "@", "@@x.io", "+1 415 555 0132", "+14155550132", "(212) 555-1234",
  "212-555-1234", "1-800-555-0199", "078-05-1120", "4111 1111 1111 1111", "4111-1111-1111-1111", "378282246310005",
  "4012888888881881", "192.168.1.20", "10.0.0.1", "version 1.2.3.4", "2001:db8::1", "::1", "::ffff:10.0.0.1",
  "fe80::1%eth0", "dead:beef::", "1:2:3:4:5:6:7:8", "AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A",
  "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "SecretAccessKey: ", "MyAwsSecretKey=",
  "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "eyJ",
  "Bearer abcdefgh12345678", "bearer x", "Authorization: Bearer t0k", "Basic dXNlcjpwYXNzd29yZA==", "basic usage",
  "sk-proj-abc123def456ghi789jkl012", "sk_live_0123456789abcdefghijklmn", "rk_live_0123456789abcdefghij",
  "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB", "github_pat_0123456789abcdefghijklmn",
  "AIzaSyA-1234567890abcdefghijklmnopqrstu", "xoxb-1234567890-abcdef", "-----BEGIN RSA PRIVATE KEY-----",
  "MIIEowIBAAKCAQEA", "-----END RSA PRIVATE KEY-----", "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----",
  "--", "::", "+(", "(9", "x:", "abcd:", "Ab", "AB", "A", "se", "sec", "aw", "aws", "be", "ba", "sk", "rk", "gh", "gi",
  "xo", "ey", "\t", "\n", " ", " ", ".", ",", "_", "-", "/", "=", "\"", "'", "\\", "é", "日本", "\xf0\x9f\x98\x80",
  "The device restarts when the VPN profile is imported again.", "0", "7", "42", "2024-01-15", "12:30:45",
  /* the first bytes of the digit shapes (rd_candidate's digit_shape), and ids that only look like them */
  "1 (212) 555-1234", "1.212.555.0100", "1(212)555-0100", "1-212-555-0100", "8.8.8.8", "1::", "12::3", "1a2b::1",
  "123a:b::1", "4.1-nano", "gpt-4o-mini", "sess-9f3a2b", "1", "12", "123", ":", "(", "1 212 555 0100", "1212 555 0100",
  "123-45-6789", "123 ", "1-nano", "1.2.3.4", "1.22.333.4", "212.555-1234",
};

static char *diff_text(size_t *len)
{
  size_t cap = 1 + prng() % 700, n = 0;
  char *t = malloc(cap + 128);
  while (n < cap) {
    if (prng() % 3 == 0) { /* a random byte: ASCII mostly, any non-NUL byte sometimes */
      unsigned c = prng() % 8 ? 0x20 + prng() % 95 : 1 + prng() % 255;
      t[n++] = (char)c;
    } else {
      const char *pc = diff_pieces[prng() % (sizeof diff_pieces / sizeof diff_pieces[0])];
      size_t pl = strlen(pc);
      if (n + pl > cap + 100)
        break;
      memcpy(t + n, pc, pl);
      n += pl;
    }
  }
  t[n] = 0;
  *len = n;
  return t;
}

/* The two candidate walks agree from every start position. */
static void diff_candidates(const char *s, size_t len)
{
  for (size_t i = 0; i <= len; i++) {
    size_t fast = rd_next_candidate(s, len, i), ref = rd_next_candidate_ref(s, len, i);
    rd_no_avx512 = true; /* the 32-byte blocks, on a CPU where the 64-byte steps run */
    size_t fast32 = rd_next_candidate(s, len, i);
    rd_no_avx2 = true; /* the SSE2 blocks, on a CPU where the 32-byte ones run */
    size_t fast16 = rd_next_candidate(s, len, i);
    rd_no_avx2 = rd_no_avx512 = false;
    if (fast != ref || fast32 != ref || fast16 != ref)
      fail_msg("next candidate from %zu of a %zu-byte text: %zu (32-byte blocks %zu, 16-byte %zu), the bytewise "
               "walk says %zu",
               i, len, fast, fast32, fast16, ref);
  }
}

/* s redacted (as a plain value and under an AWS-secret key) with the candidates and at every position. */
static void diff_redact(const struct gw_redactor *r, const char *s, size_t len)
{
  static const char *const keys[] = {NULL, "aws_secret_access_key", "http.authorization"};
  for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
    struct gw_redact_stats s1, s2;
    memset(&s1, 0, sizeof s1);
    memset(&s2, 0, sizeof s2);
    const char *fast = gw_redact_string(r, keys[k], s, len, A, &s1);
    rd_every_position = true;
    const char *every = gw_redact_string(r, keys[k], s, len, A, &s2);
    rd_every_position = false;
    if ((fast == NULL) != (every == NULL) || (fast && strcmp(fast, every)) || memcmp(&s1, &s2, sizeof s1))
      fail_msg("key %s, text '%s':\n candidates: '%s'\n every position: '%s'", keys[k] ? keys[k] : "-", s,
               fast ? fast : "(dropped)", every ? every : "(dropped)");
  }
}

static void test_prefilter_differential(void **state)
{
  (void)state;
  struct gw_redactor *r = make_default();
  struct gw_redact_policy p;
  gw_redact_policy_defaults(&p);
  p.hmac_key = "diff-key";
  for (int k = 0; k < GW_RK__COUNT; k++)
    p.actions[k] = GW_REDACT_HASH;
  struct gw_redactor *rh = make(&p);
  prng_state = 0x5eed15;
  bool slow = DIFF_SLOW();
  for (int it = 0; it < (slow ? 30 : 1000); it++) {
    size_t len;
    char *t = diff_text(&len);
    diff_candidates(t, len);
    /* the texts as stored: valid UTF-8 (decode repairs every string) */
    bool fixed;
    char *u = gw_utf8_fix(A, t, len, &fixed);
    assert_non_null(u);
    diff_redact(it & 1 ? rh : r, u, strlen(u));
    free(t);
    gw_arena_reset(A);
  }
  /* Every detector table input at every alignment to the 16-byte blocks, after a space, a letter, a digit
   * and a NUL-free punctuation byte (the candidates also at every alignment to the 64-byte steps, after
   * spaces), and cut short at every length near the end of the text. */
  char *text = tu_read_file("redact/detectors.tsv", NULL), *save = NULL;
  int nline = 0;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (line[0] == '#' || (slow && nline++ % 16))
      continue;
    char *col[4] = {0};
    int nc = 0;
    for (char *q = line; nc < 4;) {
      col[nc++] = q;
      char *tab = strchr(q, '\t');
      if (!tab)
        break;
      *tab = 0;
      q = tab + 1;
    }
    if (nc < 4)
      continue;
    char *in = unescape(col[3]);
    size_t il = strlen(in);
    char *buf = malloc(il + 80);
    for (size_t pad = 0; pad < (slow ? 17u : 65u); pad++) {
      static const char lead[] = " a7-";
      for (size_t l = 0; l < (pad < 17 ? 4u : 1u); l++) {
        memset(buf, lead[l], pad);
        memcpy(buf + pad, in, il + 1);
        diff_candidates(buf, pad + il);
        if (pad < 17)
          diff_redact(r, buf, pad + il);
      }
    }
    for (size_t cut = il > 24 ? il - 24 : 0; cut < il; cut++) {
      memcpy(buf, in, cut);
      buf[cut] = 0;
      diff_candidates(buf, cut);
    }
    free(buf);
    free(in);
    gw_arena_reset(A);
  }
  free(text);
  gw_redactor_destroy(r);
  gw_redactor_destroy(rh);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_detector_table, setup, teardown),
    cmocka_unit_test_setup_teardown(test_prefilter_differential, setup, teardown),
    cmocka_unit_test_setup_teardown(test_mixed_values, setup, teardown),
    cmocka_unit_test_setup_teardown(test_bad_json, setup, teardown),
    cmocka_unit_test_setup_teardown(test_issue11_bad_json_budget, setup, teardown),
    cmocka_unit_test_setup_teardown(test_hash_action, setup, teardown),
    cmocka_unit_test_setup_teardown(test_drop_action, setup, teardown),
    cmocka_unit_test_setup_teardown(test_allow_deny_keys, setup, teardown),
    cmocka_unit_test_setup_teardown(test_user_patterns, setup, teardown),
    cmocka_unit_test_setup_teardown(test_hash_needs_key, setup, teardown),
    cmocka_unit_test_setup_teardown(test_truncation, setup, teardown),
    cmocka_unit_test_setup_teardown(test_request_everywhere, setup, teardown),
    cmocka_unit_test_setup_teardown(test_request_spliced, setup, teardown),
    cmocka_unit_test_setup_teardown(test_records, setup, teardown),

    cmocka_unit_test_setup_teardown(test_trace_facts, setup, teardown),
    cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
    cmocka_unit_test_setup_teardown(test_memo_same_result, setup, teardown),
    cmocka_unit_test_setup_teardown(test_memo_content_replayed, setup, teardown),
    cmocka_unit_test_setup_teardown(test_candidate_scan, setup, teardown),
    cmocka_unit_test_setup_teardown(test_fixtures, setup, teardown),
    cmocka_unit_test_setup_teardown(test_event_content_cut, setup, teardown),
    cmocka_unit_test_setup_teardown(test_private_key_same_as_regex, setup, teardown),
    cmocka_unit_test_setup_teardown(test_private_key_hostile, setup, teardown),
    cmocka_unit_test_setup_teardown(test_hostile_shapes, setup, teardown),
    cmocka_unit_test_setup_teardown(test_user_pattern_match_limit, setup, teardown),
    cmocka_unit_test_setup_teardown(test_user_pattern_cpu_budget, setup, teardown),
    cmocka_unit_test_setup_teardown(test_scan_budget, setup, teardown),
    cmocka_unit_test_setup_teardown(test_watched_patterns_same, setup, teardown),
    cmocka_unit_test_setup_teardown(test_keys_any_case, setup, teardown),
    cmocka_unit_test_setup_teardown(test_texts_everywhere, setup, teardown),
    cmocka_unit_test_setup_teardown(test_bytes_values, setup, teardown),
    cmocka_unit_test_setup_teardown(test_glued_one_pass, setup, teardown),
    cmocka_unit_test_setup_teardown(test_attributes_rendered_same, setup, teardown),
    cmocka_unit_test_setup_teardown(test_record_lengths_after_rewrite, setup, teardown),
    cmocka_unit_test_setup_teardown(test_clean_array_keeps_attributes, setup, teardown),
    cmocka_unit_test(test_secret_key_name_same),
    cmocka_unit_test(test_key_cache_same),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
