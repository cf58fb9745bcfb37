/*
 * conf_print.c: the conf module's output side: --print-config (gw_conf_print) and the reference page
 * (gw_conf_describe -> docs/config.md), both walking the key table of conf.c.
 *
 * Secrets print as "****" (empty stays empty, so "Postgres off" stays visible). Any other string is
 * printed with a password in a URI userinfo ("user:PASS@") or a libpq "password=" setting masked, so a
 * DSN pasted into a non-secret key does not leak either. Sizes and durations print in the largest unit
 * that divides them exactly, so the output loads back to the same values.
 */
#include "core/conf_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *type_name(const struct gw_conf_row *r)
{
  switch (r->type) {
  case T_STRING: return (r->flags & F_ADDR) ? "host:port" : "string";
  case T_SECRET_STRING: return "string (secret)";
  case T_U32:
  case T_U64: return "integer";
  case T_SIZE: return "size";
  case T_DOUBLE: return "number";
  case T_BOOL: return "boolean";
  case T_ENUM: return "enum";
  case T_DURATION_MS: return "duration";
  case T_LIST: return "list of strings";
  case T_TABLE: return "list of mappings";
  }
  return "?";
}

/* Size as the largest binary unit dividing it exactly ("64MiB"), else bytes. */
void gw_conf_fmt_size(uint64_t v, char *buf, size_t n)
{
  static const struct {
    const char *name;
    uint64_t mul;
  } u[] = {{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}};
  for (size_t i = 0; i < sizeof u / sizeof u[0]; i++)
    if (v && v % u[i].mul == 0) {
      snprintf(buf, n, "%llu%s", (unsigned long long)(v / u[i].mul), u[i].name);
      return;
    }
  snprintf(buf, n, "%llu", (unsigned long long)v);
}

void gw_conf_fmt_duration(uint64_t ms, char *buf, size_t n)
{
  if (ms && ms % 3600000 == 0)
    snprintf(buf, n, "%lluh", (unsigned long long)(ms / 3600000));
  else if (ms && ms % 60000 == 0)
    snprintf(buf, n, "%llum", (unsigned long long)(ms / 60000));
  else if (ms && ms % 1000 == 0)
    snprintf(buf, n, "%llus", (unsigned long long)(ms / 1000));
  else
    snprintf(buf, n, "%llums", (unsigned long long)ms);
}

/* Shortest %g that reads back as the same double. */
void gw_conf_fmt_double(double d, char *buf, size_t n)
{
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, n, "%.*g", prec, d);
    if (strtod(buf, NULL) == d)
      return;
  }
}

void gw_conf_fmt_bound(const struct gw_conf_row *r, uint64_t v, char *buf, size_t n)
{
  if (r->type == T_SIZE)
    gw_conf_fmt_size(v, buf, n);
  else if (r->type == T_DURATION_MS)
    gw_conf_fmt_duration(v, buf, n);
  else
    snprintf(buf, n, "%llu", (unsigned long long)v);
}

/* Length of a password to hide at s[i], 0 if none: URI userinfo ("user:PASS@") or libpq "password=PASS". */
static size_t password_at(const char *s, size_t i, size_t *skip)
{
  if (i >= 3 && strncmp(s + i - 3, "://", 3) == 0) {
    size_t end = i + strcspn(s + i, "@/?#");
    if (s[end] == '@') {
      const char *colon = memchr(s + i, ':', end - i);
      if (colon) {
        *skip = (size_t)(colon - (s + i)) + 1;
        return end - (i + *skip);
      }
    }
    return 0;
  }
  if ((i == 0 || s[i - 1] == ' ' || s[i - 1] == '?' || s[i - 1] == '&') && strncasecmp(s + i, "password=", 9) == 0) {
    *skip = 9;
    size_t j = i + 9;
    if (s[j] == '\'') {
      for (j++; s[j] && s[j] != '\''; j++)
        if (s[j] == '\\' && s[j + 1])
          j++;
      if (s[j])
        j++;
    } else {
      j += strcspn(s + j, " &");
    }
    return j - (i + 9);
  }
  return 0;
}

/* A YAML double-quoted string, with any password in it replaced by ****. */
static void print_string(FILE *f, const char *s)
{
  fputc('"', f);
  for (size_t i = 0; s[i];) {
    size_t skip = 0, n = password_at(s, i, &skip);
    if (n) {
      fprintf(f, "%.*s****", (int)skip, s + i);
      i += skip + n;
      continue;
    }
    unsigned char ch = (unsigned char)s[i++];
    if (ch == '"' || ch == '\\')
      fprintf(f, "\\%c", ch);
    else if (ch < 0x20 || ch == 0x7f)
      fprintf(f, "\\x%02x", ch);
    else
      fputc(ch, f);
  }
  fputc('"', f);
}

static void print_value(FILE *f, const struct gw_conf *c, const struct gw_conf_row *r)
{
  char b[48];
  const void *p = gw_conf_field(c, r);
  switch (r->type) {
  case T_STRING:
  case T_ENUM:
    if (gw_conf_is_secret(r))
      fputs(**(char *const *)p ? "\"****\"" : "\"\"", f);
    else
      print_string(f, *(char *const *)p);
    break;
  case T_SECRET_STRING: fputs(**(char *const *)p ? "\"****\"" : "\"\"", f); break;
  case T_U32: fprintf(f, "%u", (unsigned)*(const uint32_t *)p); break;
  case T_U64: fprintf(f, "%llu", (unsigned long long)*(const uint64_t *)p); break;
  case T_SIZE:
    gw_conf_fmt_size(*(const uint64_t *)p, b, sizeof b);
    fputs(b, f);
    break;
  case T_DURATION_MS:
    gw_conf_fmt_duration(*(const uint32_t *)p, b, sizeof b);
    fputs(b, f);
    break;
  case T_DOUBLE:
    gw_conf_fmt_double(*(const double *)p, b, sizeof b);
    fputs(b, f);
    break;
  case T_BOOL: fputs(*(const bool *)p ? "true" : "false", f); break;
  case T_LIST:
  case T_TABLE: {
    const struct gw_conf_list *l = p;
    fputc('[', f);
    for (uint32_t i = 0; i < l->n; i++) {
      fputs(i ? ", " : "", f);
      if (r->type == T_LIST) {
        print_string(f, l->cells[i]);
        continue;
      }
      fputc('{', f);
      bool first = true;
      for (uint32_t k = 0; k < l->width; k++) {
        const char *cell = l->cells[(size_t)i * l->width + k];
        if (!cell)
          continue;
        fprintf(f, "%s%s: ", first ? "" : ", ", gw_conf_fname(r->allowed[k]));
        if (gw_conf_fsecret(r->allowed[k]))
          fputs(*cell ? "\"****\"" : "\"\"", f);
        else
          print_string(f, cell);
        first = false;
      }
      fputc('}', f);
    }
    fputc(']', f);
    break;
  }
  }
}

void gw_conf_print(const struct gw_conf *c, FILE *f)
{
  const char *prev = "";
  fprintf(f, "# effective configuration (source: %s)\n", c->source ? c->source : "built-in defaults");
  for (size_t i = 0; i < gw_conf_nrows; i++) {
    const char *p = gw_conf_rows[i].path, *q = prev;
    int depth = 0;
    /* Skip the sections shared with the previous row, then open the new ones. */
    for (;;) {
      size_t a = strcspn(p, "."), b = strcspn(q, ".");
      if (!p[a] || !q[b] || a != b || strncmp(p, q, a) != 0)
        break;
      p += a + 1;
      q += b + 1;
      depth++;
    }
    for (size_t a; p[a = strcspn(p, ".")]; p += a + 1, depth++)
      fprintf(f, "%*s%.*s:\n", depth * 2, "", (int)a, p);
    fprintf(f, "%*s%s: ", depth * 2, "", p);
    print_value(f, c, &gw_conf_rows[i]);
    fputc('\n', f);
    prev = gw_conf_rows[i].path;
  }
}

void gw_conf_describe(FILE *f)
{
  char b1[32], b2[32];
  fputs("# Configuration reference\n\n"
        "<!-- Generated from the table in gateway/core/conf.c by gw_conf_describe(); do not edit by hand.\n"
        "     Regenerate: GW_CONF_WRITE_DOCS=1 ./test_conf (the unit test fails while this page is stale). -->\n\n"
        "The gateway reads one YAML file (`--config FILE`); without one it runs on the defaults below.\n"
        "Precedence, lowest first: defaults, the file, the environment overrides.\n\n"
        "- Unknown keys, values of the wrong type and values out of bounds stop the start with\n"
        "  `FILE:LINE: KEY: REASON`, e.g. `gw.yaml:7: receivers.grpc.adr: unknown key (allowed here: addr, threads)`.\n"
        "- `${NAME}` and `${NAME:-default}` in a value are replaced by the environment variable before the value\n"
        "  is converted (the default applies when NAME is unset or empty); an unset NAME without a default is an\n"
        "  error. `$${` writes a literal `${`.\n"
        "- Sizes are bytes or a number with a unit: B, KB, MB, GB, TB (powers of 1000), KiB, MiB, GiB, TiB\n"
        "  (powers of 1024), e.g. `64MiB`. Durations are milliseconds or a number with ms, s, m or h, e.g. `5s`.\n"
        "- Booleans: true/false (also yes/no, on/off).\n"
        "- Listen addresses are host:port with a port in 1..65535, IPv6 in brackets (`[::1]:4317`); the gRPC,\n"
        "  HTTP and admin addresses must differ.\n"
        "- Secrets are never printed: `--print-config` shows them as `****`, and a password inside any other\n"
        "  printed URL or `password=` setting is masked too.\n\n"
        "## Environment overrides\n\n"
        "Applied after the file when set and not empty; a bad value is an error naming the variable.\n\n"
        "| Variable | Key |\n|---|---|\n",
        f);
  for (size_t i = 0; i < gw_conf_nenvs; i++)
    fprintf(f, "| `%s` | `%s` |\n", gw_conf_envs[i].var, gw_conf_envs[i].path);
  fputs("\n## Keys\n\n| Key | Type | Default | Allowed | Description |\n|---|---|---|---|---|\n", f);
  for (size_t i = 0; i < gw_conf_nrows; i++) {
    const struct gw_conf_row *r = &gw_conf_rows[i];
    fprintf(f, "| `%s` | %s | ", r->path, type_name(r));
    if (r->def_doc)
      fprintf(f, "%s", r->def_doc);
    else if (!*r->def)
      fputs("(empty)", f);
    else
      fprintf(f, "`%s`", r->def);
    fputs(" | ", f);
    switch (r->type) {
    case T_U32:
    case T_U64:
    case T_SIZE:
    case T_DURATION_MS:
      gw_conf_fmt_bound(r, r->min, b1, sizeof b1);
      gw_conf_fmt_bound(r, r->max, b2, sizeof b2);
      fprintf(f, "%s .. %s", b1, b2);
      break;
    case T_DOUBLE:
      gw_conf_fmt_double(r->dmin, b1, sizeof b1);
      gw_conf_fmt_double(r->dmax, b2, sizeof b2);
      fprintf(f, "%s %s x <= %s", b1, (r->flags & F_MIN_EXCL) ? "<" : "<=", b2);
      break;
    case T_ENUM:
      for (const char *const *a = r->allowed; *a; a++)
        fprintf(f, "%s`%s`", a == r->allowed ? "" : ", ", *a);
      break;
    case T_BOOL: fputs("true, false", f); break;
    case T_SECRET_STRING: fputs("secret, printed as `****`", f); break;
    case T_STRING: fputs((r->flags & F_ADDR) ? "host:port, port 1..65535" : "any", f); break;
    case T_LIST: fputs("strings", f); break;
    case T_TABLE:
      fputs("mappings with keys ", f);
      for (const char *const *a = r->allowed; *a; a++)
        fprintf(f, "%s`%s`%s%s", a == r->allowed ? "" : ", ", gw_conf_fname(*a), gw_conf_frequired(*a) ? " (required)" : "",
                gw_conf_fsecret(*a) ? " (secret)" : "");
      break;
    }
    fprintf(f, " | %s |\n", r->desc);
  }
}
