/*
 * conf_int.h: private to the conf module (conf.c loads, conf_print.c prints and documents).
 * The key table lives in conf.c; these declarations let both walk it.
 */
#ifndef GW_CONF_INT_H
#define GW_CONF_INT_H

#include "core/conf.h"

#define KiB 1024ull
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)
#define TiB (1024ull * GiB)

/* T_LIST: a YAML list of strings; T_TABLE: a YAML list of mappings whose fields are named by `allowed`
 * (a leading '!' marks a required field, then a '*' a secret one, printed masked). Both store a struct
 * gw_conf_list and default to empty. */
enum gw_conf_type { T_STRING, T_SECRET_STRING, T_U32, T_U64, T_SIZE, T_DOUBLE, T_BOOL, T_ENUM, T_DURATION_MS, T_LIST, T_TABLE };

enum {
  F_SECRET = 1 << 0,  /* never printed nor echoed */
  F_ADDR = 1 << 1,    /* a listen address: host:port, checked and compared in validate() */
  F_MIN_EXCL = 1 << 2 /* DOUBLE: the minimum itself is not allowed */
};

/* One key. U32 and DURATION_MS store a uint32_t, U64 and SIZE a uint64_t, strings and enums a char *. */
struct gw_conf_row {
  const char *path;
  enum gw_conf_type type;
  const char *def;     /* default, as text */
  const char *def_doc; /* default as the docs should show it, when it depends on the build */
  uint64_t min, max;   /* integer, size and duration bounds (inclusive) */
  double dmin, dmax;   /* DOUBLE bounds */
  const char *const *allowed; /* ENUM values, NULL-terminated */
  unsigned flags;
  size_t off;
  const char *desc;
};

struct gw_conf_env {
  const char *var, *path;
};

extern const struct gw_conf_row gw_conf_rows[];
extern const size_t gw_conf_nrows;
extern const struct gw_conf_env gw_conf_envs[];
extern const size_t gw_conf_nenvs;

static inline void *gw_conf_field(const struct gw_conf *c, const struct gw_conf_row *r)
{
  return (char *)c + r->off;
}

static inline bool gw_conf_is_secret(const struct gw_conf_row *r)
{
  return r->type == T_SECRET_STRING || (r->flags & F_SECRET);
}

/* A T_TABLE field name without its markers, and the markers. */
static inline const char *gw_conf_fname(const char *a)
{
  while (*a == '!' || *a == '*')
    a++;
  return a;
}
static inline bool gw_conf_frequired(const char *a) { return a[0] == '!'; }
static inline bool gw_conf_fsecret(const char *a) { return a[0] == '*' || (a[0] == '!' && a[1] == '*'); }

/* Formatting shared by messages, print and docs (conf_print.c). */
void gw_conf_fmt_size(uint64_t v, char *buf, size_t n);     /* "64MiB", else bytes */
void gw_conf_fmt_duration(uint64_t ms, char *buf, size_t n); /* "10s", "200ms" */
void gw_conf_fmt_double(double d, char *buf, size_t n);     /* shortest that reads back equal */
void gw_conf_fmt_bound(const struct gw_conf_row *r, uint64_t v, char *buf, size_t n);

#endif
