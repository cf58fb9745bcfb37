/*
 * test_auth.c: bearer tokens (gateway/core/auth.c): what a tokens file may hold, which credentials a
 * request may present them in, and a rotation by rewriting the file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/auth.h"
#include "core/reload.h"

#define T1 "tok-0123456789abcdef"
#define T2 "tok-fedcba9876543210-second"

static char dir[] = "/tmp/test_auth.XXXXXX";
static char path[512];

static void write_tokens(const char *text)
{
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.new", path);
  FILE *f = fopen(tmp, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  assert_int_equal(rename(tmp, path), 0);
}

static int setup(void **state)
{
  (void)state;
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/tokens", dir);
  return 0;
}

static int teardown(void **state)
{
  (void)state;
  unlink(path);
  rmdir(dir);
  return 0;
}

static void test_file_rules(void **state)
{
  (void)state;
  static const struct {
    const char *text, *why; /* why: NULL = loads */
  } cases[] = {
    {T1 "\n", NULL},
    {"# comment\n\n  " T1 "  \r\n" T2 "\n", NULL},
    {"", "holds no token (one per line; '#' starts a comment)"},
    {"# only a comment\n\n", "holds no token (one per line; '#' starts a comment)"},
    {T1 "\nshort\n", "line 2: a token must be 16 to 512 characters long (this one has 5)"},
    {"tok with a space inside\n", "line 1: a token is printable ASCII without spaces"},
    {"tok-\x01-0123456789abcdef\n", "line 1: a token is printable ASCII without spaces"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    write_tokens(cases[i].text);
    char why[200] = "";
    gw_rc rc = gw_auth_check_file(path, why, sizeof why);
    if (!cases[i].why) {
      assert_int_equal(rc, GW_OK);
    } else {
      assert_int_equal(rc, GW_ERR(CONFIG));
      assert_string_equal(why, cases[i].why);
      assert_null(strstr(why, T1)); /* a token never appears in a message */
    }
  }
  char why[200];
  assert_int_equal(gw_auth_check_file("/no/such/tokens", why, sizeof why), GW_ERR(CONFIG));
  assert_string_equal(why, "cannot read: No such file or directory");
  /* the size cap: 1 MiB is read (and judged), one byte more is refused unread */
  char *big = malloc((1u << 20) + 2);
  memset(big, 'a', (1u << 20) + 1);
  big[1u << 20] = '\0';
  write_tokens(big);
  assert_int_equal(gw_auth_check_file(path, why, sizeof why), GW_ERR(CONFIG));
  assert_string_equal(why, "line 1: a token must be 16 to 512 characters long (this one has 1048576)");
  big[1u << 20] = 'a';
  big[(1u << 20) + 1] = '\0';
  write_tokens(big);
  assert_int_equal(gw_auth_check_file(path, why, sizeof why), GW_ERR(CONFIG));
  assert_string_equal(why, "larger than 1 MiB");
  free(big);
}

static void test_credentials(void **state)
{
  (void)state;
  write_tokens(T1 "\n" T2 "\n");
  struct gw_err err = {0};
  struct gw_auth *a = gw_auth_create(path, &err);
  assert_non_null(a);
  static const struct {
    const char *authorization, *api_key;
    enum gw_auth_result want;
  } cases[] = {
    {NULL, NULL, GW_AUTH_MISSING},
    {"Bearer " T1, NULL, GW_AUTH_OK},
    {"Bearer " T2, NULL, GW_AUTH_OK}, /* every token of the file is valid at once */
    {"bearer   " T1 "  ", NULL, GW_AUTH_OK}, /* the scheme is case-insensitive (RFC 9110 §11.1) */
    {NULL, T1, GW_AUTH_OK},
    {"Bearer nope-nope-nope-nope", T2, GW_AUTH_OK}, /* either credential may carry it */
    {"Bearer " T1 "x", NULL, GW_AUTH_INVALID},
    {"Bearer tok-0123456789abcde", NULL, GW_AUTH_INVALID}, /* a prefix is not the token */
    {"Basic " T1, NULL, GW_AUTH_INVALID},
    {"Bearer", NULL, GW_AUTH_INVALID},
    {"Bearer ", NULL, GW_AUTH_INVALID},
    {T1, NULL, GW_AUTH_INVALID}, /* no scheme */
    {NULL, "", GW_AUTH_INVALID},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *az = cases[i].authorization, *k = cases[i].api_key;
    enum gw_auth_result got = gw_auth_verify(a, "otlp_http", az, az ? strlen(az) : 0, k, k ? strlen(k) : 0);
    if (got != cases[i].want)
      fail_msg("case %zu (%s / %s): got %d, want %d", i, az ? az : "-", k ? k : "-", got, cases[i].want);
  }
  gw_auth_destroy(a);
}

static void test_rotation(void **state)
{
  (void)state;
  write_tokens(T1 "\n");
  struct gw_err err = {0};
  struct gw_auth *a = gw_auth_create(path, &err);
  assert_non_null(a);
  const char *b1 = "Bearer " T1, *b2 = "Bearer " T2;
  assert_int_equal(gw_auth_verify(a, "otlp_grpc", b1, strlen(b1), NULL, 0), GW_AUTH_OK);
  assert_int_equal(gw_auth_verify(a, "otlp_grpc", b2, strlen(b2), NULL, 0), GW_AUTH_INVALID);
  /* add the new token, then drop the old one (SIGHUP each time) */
  write_tokens(T1 "\n" T2 "\n");
  gw_reload_now();
  assert_int_equal(gw_auth_verify(a, "otlp_grpc", b1, strlen(b1), NULL, 0), GW_AUTH_OK);
  assert_int_equal(gw_auth_verify(a, "otlp_grpc", b2, strlen(b2), NULL, 0), GW_AUTH_OK);
  write_tokens(T2 "\n");
  gw_reload_now();
  assert_int_equal(gw_auth_verify(a, "otlp_grpc", b1, strlen(b1), NULL, 0), GW_AUTH_INVALID);
  assert_int_equal(gw_auth_verify(a, "otlp_grpc", b2, strlen(b2), NULL, 0), GW_AUTH_OK);
  /* a rewrite that does not load keeps the tokens loaded before */
  write_tokens("short\n");
  gw_reload_now();
  assert_int_equal(gw_auth_verify(a, "otlp_grpc", b2, strlen(b2), NULL, 0), GW_AUTH_OK);
  /* the watcher notices a change by itself */
  gw_reload_start(20);
  write_tokens(T1 "\n");
  int ok = 0;
  for (int i = 0; i < 200 && !ok; i++) {
    usleep(10000);
    ok = gw_auth_verify(a, "otlp_grpc", b1, strlen(b1), NULL, 0) == GW_AUTH_OK;
  }
  assert_true(ok);
  gw_reload_stop();
  gw_auth_destroy(a);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_file_rules),
    cmocka_unit_test(test_credentials),
    cmocka_unit_test(test_rotation),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
