/* test_upstream.c: the stamps one gateway leaves for the next (receive/upstream.h): what a stamp carries
 * arrives unchanged through a second gateway, our stamps replace an earlier gateway's, and malformed
 * stamps are ignored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "pb.h"
#include "receive/upstream.h"

static GwKeyValue *kv_str(struct gw_arena *a, const char *k, const char *v)
{
  GwKeyValue *kv = gw_arena_alloc(a, sizeof *kv);
  GwAnyValue *av = gw_arena_alloc(a, sizeof *av);
  gw_pb_key_value_init(kv);
  gw_pb_any_value_init(av);
  kv->key = (char *)k;
  kv->value = av;
  av->value_case = GW_AV_STRING;
  av->string_value = (char *)v;
  return kv;
}

static GwKeyValue *kv_int(struct gw_arena *a, const char *k, int64_t v)
{
  GwKeyValue *kv = kv_str(a, k, "");
  kv->value->value_case = GW_AV_INT;
  kv->value->int_value = v;
  return kv;
}

static const GwKeyValue *find(const GwSpan *sp, const char *k)
{
  const GwKeyValue *hit = NULL;
  for (size_t i = 0; i < sp->n_attributes; i++)
    if (!strcmp(sp->attributes[i]->key, k)) {
      assert_null(hit); /* at most once */
      hit = sp->attributes[i];
    }
  return hit;
}

/* A record as the first gateway has it after redaction, on a span with one attribute. */
static void first_gateway(struct gw_arena *a, GwSpan *sp, struct gw_record *r)
{
  gw_pb_span_init(sp);
  GwKeyValue **v = gw_arena_alloc(a, sizeof *v);
  v[0] = kv_str(a, "gen_ai.request.model", "gpt-4o");
  sp->attributes = v;
  sp->n_attributes = 1;
  memset(r, 0, sizeof *r);
  r->span = sp;
  strcpy(r->prompt_hash, "0123456789abcdef");
  r->redaction_count = (struct gw_opt_i64){3, true};
  static const char *kinds[] = {"email", "card"};
  r->redacted_kinds = (struct gw_strv){kinds, 2};
}

static void test_round_trip_through_a_second_gateway(void **st)
{
  (void)st;
  struct gw_arena *a = gw_arena_create(0);
  GwSpan sp;
  struct gw_record r;
  first_gateway(a, &sp, &r);
  assert_int_equal(gw_upstream_stamp(a, &r, 1), GW_OK);
  assert_string_equal(find(&sp, "genai_gateway.prompt_hash")->value->string_value, "0123456789abcdef");
  assert_int_equal(find(&sp, "genai_gateway.redaction.count")->value->int_value, 3);
  assert_int_equal(find(&sp, "genai_gateway.redaction.kinds")->value->array_value->n_values, 2);

  /* the second gateway: its own hash is over redacted text, it redacted one more value of a kind
   * already seen */
  struct gw_record r2;
  memset(&r2, 0, sizeof r2);
  r2.span = &sp;
  strcpy(r2.prompt_hash, "ffffffffffffffff");
  r2.redaction_count = (struct gw_opt_i64){1, true};
  static const char *own[] = {"card"};
  r2.redacted_kinds = (struct gw_strv){own, 1};
  assert_int_equal(gw_upstream_merge(a, &r2, 1), GW_OK);
  assert_string_equal(r2.prompt_hash, "0123456789abcdef");
  assert_int_equal(r2.redaction_count.v, 4);
  assert_int_equal(r2.redacted_kinds.n, 2);
  assert_string_equal(r2.redacted_kinds.v[0], "card");
  assert_string_equal(r2.redacted_kinds.v[1], "email");

  /* and stamps again for a third: replacing, never duplicating */
  assert_int_equal(gw_upstream_stamp(a, &r2, 1), GW_OK);
  assert_int_equal(find(&sp, "genai_gateway.redaction.count")->value->int_value, 4);
  assert_non_null(find(&sp, "gen_ai.request.model"));
  assert_int_equal(sp.n_attributes, 4);
  gw_arena_destroy(a);
}

static void test_no_prompt_no_hash(void **st)
{
  (void)st;
  struct gw_arena *a = gw_arena_create(0);
  GwSpan sp;
  struct gw_record r;
  first_gateway(a, &sp, &r);
  assert_int_equal(gw_upstream_stamp(a, &r, 1), GW_OK);
  struct gw_record r2;
  memset(&r2, 0, sizeof r2);
  r2.span = &sp; /* a record without prompt content here: the stamp does not invent one */
  assert_int_equal(gw_upstream_merge(a, &r2, 1), GW_OK);
  assert_string_equal(r2.prompt_hash, "");
  gw_arena_destroy(a);
}

static void test_malformed_stamps_are_ignored(void **st)
{
  (void)st;
  struct gw_arena *a = gw_arena_create(0);
  GwSpan sp;
  gw_pb_span_init(&sp);
  GwKeyValue *v[] = {
    kv_str(a, "genai_gateway.prompt_hash", "0123456789ABCDEF"), /* not lowercase hex */
    kv_int(a, "genai_gateway.redaction.count", -5),
    kv_str(a, "genai_gateway.redaction.kinds", "email"), /* not an array */
  };
  sp.attributes = v;
  sp.n_attributes = 3;
  struct gw_record r;
  memset(&r, 0, sizeof r);
  r.span = &sp;
  strcpy(r.prompt_hash, "aaaaaaaaaaaaaaaa");
  assert_int_equal(gw_upstream_merge(a, &r, 1), GW_OK);
  assert_string_equal(r.prompt_hash, "aaaaaaaaaaaaaaaa");
  assert_false(r.redaction_count.set);
  assert_int_equal(r.redacted_kinds.n, 0);
  gw_arena_destroy(a);
}

/* Span links travel as a string array: merged into the next gateway's own (each once), stamped again
 * replacing the earlier stamp, and malformed entries are dropped. */
static void test_span_links(void **st)
{
  (void)st;
  struct gw_arena *a = gw_arena_create(0);
  GwSpan sp;
  struct gw_record r;
  first_gateway(a, &sp, &r);
  static const char *links[] = {"1111111111111111:2222222222222222", "3333333333333333:1111111111111111"};
  r.span_links = (struct gw_strv){links, 2};
  assert_int_equal(gw_upstream_stamp(a, &r, 1), GW_OK);
  const GwKeyValue *kl = find(&sp, "genai_gateway.span_links");
  assert_non_null(kl);
  assert_int_equal(kl->value->value_case, GW_AV_ARRAY);
  assert_int_equal(kl->value->array_value->n_values, 2);
  /* a malformed entry slipped into the stamp */
  GwAnyValue *bad = gw_arena_alloc(a, sizeof *bad);
  gw_pb_any_value_init(bad);
  bad->value_case = GW_AV_STRING;
  bad->string_value = "3333333333333333:111111111111111X";
  GwArrayValue *arr = kl->value->array_value;
  GwAnyValue **vals = gw_arena_alloc(a, 3 * sizeof *vals);
  vals[0] = arr->values[0];
  vals[1] = bad;
  vals[2] = arr->values[1];
  arr->values = vals;
  arr->n_values = 3;

  struct gw_record r2;
  memset(&r2, 0, sizeof r2);
  r2.span = &sp;
  static const char *own[] = {"3333333333333333:1111111111111111", "4444444444444444:3333333333333333"};
  r2.span_links = (struct gw_strv){own, 2};
  assert_int_equal(gw_upstream_merge(a, &r2, 1), GW_OK);
  assert_int_equal(r2.span_links.n, 3);
  assert_string_equal(r2.span_links.v[0], own[0]);
  assert_string_equal(r2.span_links.v[1], own[1]);
  assert_string_equal(r2.span_links.v[2], links[0]);
  assert_int_equal(gw_upstream_stamp(a, &r2, 1), GW_OK);
  assert_int_equal(find(&sp, "genai_gateway.span_links")->value->array_value->n_values, 3);
  gw_arena_destroy(a);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_round_trip_through_a_second_gateway),
    cmocka_unit_test(test_no_prompt_no_hash),
    cmocka_unit_test(test_malformed_stamps_are_ignored),
    cmocka_unit_test(test_span_links),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
