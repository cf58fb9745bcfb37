/* redact_int.h: what the redact module's files share (not a public interface). */
#ifndef GW_REDACT_INT_H
#define GW_REDACT_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "redact/redact.h"

/* A detector: one built-in kind or one user pattern, with its action and label. */
struct rd_det {
  const char *name;  /* metric / kinds name */
  const char *mask;  /* "[EMAIL_REDACTED]" */
  const char *stem;  /* "EMAIL": hash tokens "[EMAIL:...]" */
  enum gw_redact_action action;
};

/* One key of the allow/deny/override table. */
struct rd_key {
  char *key;
  size_t len;
  bool prefix;
  enum gw_redact_action action; /* OFF: allow list, DROP + deny: deny list */
  bool deny;
};

/* What a key means to the values under it (rd_key_info): looked up once for the fixed keys (record fields,
 * span names, ...) when the redactor is built, instead of for every value. */
struct rd_keyinfo {
  const struct rd_key *k; /* NULL: no rule */
  bool secret, auth;      /* rd_secret_key_name, rd_auth_key_name */
};
#define RD_FIXED_KEYS 32 /* room for redact_apply.c's fixed keys */

struct gw_redactor {
  uint64_t id; /* unique per redactor built (rd_key_info_cached) */
  bool enabled;
  size_t max_content;
  pcre2_code *builtin; /* NULL when every built-in is off */
  bool aws_secret_on;
  bool pk_on; /* the private-key detector (matched in C) is on */
  uint32_t user_match_opts; /* pcre2_match options for user patterns (PCRE2_NO_JIT under valgrind) */
  size_t nuser;
  pcre2_code *user[GW_REDACT_MAX_PATTERNS];
  bool user_watched[GW_REDACT_MAX_PATTERNS]; /* compiled with a callout at each start (rd_watch_pattern) */
  uint32_t scan_factor, cpu_ms_per_mib;      /* the policy's per-request limits */
  struct rd_det det[GW_RK__COUNT + GW_REDACT_MAX_PATTERNS];
  int metric_slot[GW_RK__COUNT + GW_REDACT_MAX_PATTERNS];
  unsigned char *hmac_key;
  size_t hmac_key_len;
  struct rd_key *keys;
  size_t nkeys;
  uint32_t *key_hash; /* open addressing over exact keys: index + 1, 0 = empty */
  size_t key_hash_size;
  uint32_t *prefix_keys; /* indexes of the prefix keys, the only ones rd_key_find walks */
  size_t nprefix;
  struct rd_keyinfo fixed[RD_FIXED_KEYS]; /* redact_apply.c's fixed keys (rd_apply_prepare) */
};

/* Why values are replaced whole without (complete) scanning: genai_gateway_redaction_limited_total{reason}. */
enum rd_limit {
  RD_LIM_NONE,
  RD_LIM_MATCH,     /* a user pattern hit a pcre2 match, depth, heap or JIT stack limit */
  RD_LIM_MATCH_ERR, /* any other pcre2 match error */
  RD_LIM_SCAN,      /* the request's scan budget (scan_factor) */
  RD_LIM_CPU,       /* the request's CPU budget (cpu_ms_per_mib) */
  RD_LIM__COUNT
};
extern const char *const rd_limit_names[RD_LIM__COUNT]; /* the metric's reason label */

/* One request's limits (gw_redact_memo_limit), kept in its memo. */
struct rd_limits {
  bool on;
  uint64_t work, work_max;   /* bytes read by detector passes and JSON parses; work_max 0: none */
  uint64_t checked;          /* work at the last clock/stop check */
  uint32_t calls;            /* checks skipped since the last one */
  uint64_t cpu_start, cpu_max; /* thread CPU ns; cpu_max 0: none */
  gw_rc (*stop)(void *arg);
  void *stop_arg;
  gw_rc stop_rc;             /* non-zero: stop said stop */
  enum rd_limit why;         /* a budget ran out: the rest of the request is masked */
  size_t request_bytes;
};

/* One value's redaction context. */
struct rd_ctx {
  const struct gw_redactor *r;
  struct gw_arena *a;
  struct gw_redact_stats *st;
  enum gw_redact_action key_action; /* from the nearest key rule; DEFAULT: each detector's own */
  bool secret_key;                  /* the nearest key names an AWS secret */
  bool auth_key;                    /* the nearest key is an Authorization header (rd_auth_key_name) */
  size_t budget; /* shared by the long strings of one content field; SIZE_MAX: none */
  size_t cap;    /* per string; SIZE_MAX: none */
  bool truncated, oom;
  int jdepth; /* JSON inside JSON strings */
  struct gw_redact_memo *memo; /* NULL: every text is scanned */
  struct rd_limits *lim;       /* the memo's limits; NULL: none */
  int user;                    /* the user pattern being run (for the callout), -1: none */
  /* What a JSON value's result depends on besides its text and context (rd_value's memo): the longest
   * string cut() was asked about, the deepest jdepth reached, whether JSON was left unwalked for depth. */
  size_t longest;
  int jmax;
  bool refused;
  /* The lengths of the long strings (over 64 bytes) cut() was asked about, summed: what a content field's
   * budget spends on them when it cuts none; so a memoized walk is replayed under a budget exactly. */
  size_t long_sum;
  /* Rewrites of the request so far (a string or bytes value replaced, a pair removed, a name replaced): a
   * span whose pass leaves it unchanged may be forwarded as its client's bytes (gw_redact_request_raw). */
  size_t changes;
};

enum rd_res { RD_SAME, RD_CHANGED, RD_DROP };

/* redact.c: the detectors over plain text; *out and *outlen are set on RD_CHANGED (NUL-terminated, arena). */
enum rd_res rd_plain(struct rd_ctx *c, const char *s, size_t len, const char **out, size_t *outlen);
/* The same over scan, with the output made of src's bytes between matches (src and scan: len bytes each).
 * Not memoized. */
enum rd_res rd_plain_src(struct rd_ctx *c, const char *scan, const char *src, size_t len, const char **out,
                         size_t *outlen);
/* The memo for JSON values (rd_value, redact.c): a hit when the same text was walked in the same context
 * (key rules, attr_mode) with no string longer than cap, no deeper than max_depth more JSON levels and,
 * under a content budget, long strings that fit what is left of it (which the hit then spends, as the walk
 * would); sets *res, *out, *outlen and replays the counts. put keeps a walk that cut nothing: its result,
 * the counts it added (mine) and its long strings' sum (long_sum). */
bool rd_memo_json_get(struct rd_ctx *c, const char *s, size_t len, bool attr_mode, int max_depth, enum rd_res *res,
                      const char **out, size_t *outlen);
void rd_memo_json_put(struct rd_ctx *c, const char *s, size_t len, bool attr_mode, enum rd_res res, const char *out,
                      size_t outlen, const struct gw_redact_stats *mine, size_t longest, size_t long_sum, int depth);
#define RD_MEMO_MIN 48 /* shorter texts are cheaper to redact than to look up */

/* What the request pass did with one span attribute (redact_apply.c). A record's attributes JSON is
 * rendered from the span's attributes (normalize), so its walk gives, member by member, what the request
 * pass gave the same key/value when the walk cannot differ: ok says so (a string, number, bool or empty
 * value, or an array of those; no limit, base64 text or JSON level the record's walk would meet
 * differently; cuts are checked against the record's cap). */
struct rd_kv_info {
  const void *kv;             /* the GwKeyValue; NULL: none at this index */
  const char *text;           /* its string value before redaction, NULL when not a string */
  uint32_t total, deny;       /* what it counted (limited is never set when ok) */
  uint16_t ncounts;
  bool ok, dropped, array;   /* array: an array value the pass may have changed (array_begin) */
  uint16_t (*counts)[2];      /* kind, count */
  size_t longest;             /* the longest string its walk asked cut() about */
};
/* One span's attributes as the request pass met them (before it removed dropped ones). */
struct rd_span_info {
  const void *span;
  struct rd_kv_info *v;
  size_t n;
};
/* Room for the info of span's n attributes, zeroed (NULL when out of room: its records are walked);
 * then find it again (NULL: none). */
struct rd_kv_info *rd_memo_span_add(struct gw_redact_memo *m, const void *span, size_t n);
/* Records whose attributes JSON this thread rendered from the request pass's results, and of those the ones
 * whose JSON was kept as normalize wrote it, nothing in it having changed (tests). */
extern _Thread_local size_t rd_attributes_replayed, rd_attributes_kept;
const struct rd_span_info *rd_memo_span_get(const struct gw_redact_memo *m, const void *span);
/* redact_bytes.c: a bytes value (see gw_redact_request); *out and *outlen as rd_plain (bytes, NUL-terminated). */
enum rd_res rd_bytes(struct rd_ctx *c, const uint8_t *b, size_t len, const char **out, size_t *outlen);
/* A JSON string value of a record's attribute JSON that may be base64 of a bytes value: when it is, decoded,
 * redacted as rd_bytes and encoded again; RD_SAME otherwise. */
enum rd_res rd_base64_value(struct rd_ctx *c, const char *s, size_t len, const char **out, size_t *outlen);
/* Is s canonical base64 (rd_base64_value would decode it)? Its decoded length, else 0. */
size_t rd_b64_len(const char *s, size_t len);
/* The same for a NUL-terminated s, reading no further than its first byte outside the base64 alphabet. */
bool rd_b64_text(const char *s);
#define RJ_MAX_NEST 4 /* levels of JSON inside JSON strings walked (redact_json.c) */
/* redact_json.c: a value that may be JSON text (attr_mode: object member names are attribute keys), then
 * truncation. */
enum rd_res rd_value(struct rd_ctx *c, const char *s, size_t len, bool attr_mode, const char **out, size_t *outlen);
/* Apply a key's rule to c (returns false when the key is deny-listed); *allow set when never touched. */
bool rd_key_enter(struct rd_ctx *c, const char *key, size_t len, bool *allow);
/* The same in two halves: what a key means (key NULL: no key), then applying it. */
struct rd_keyinfo rd_key_info(const struct gw_redactor *r, const char *key, size_t len);
/* The same through a per-thread cache of keys up to 32 bytes (rd_key_enter uses it). */
struct rd_keyinfo rd_key_info_cached(const struct gw_redactor *r, const char *key, size_t len);
/* The cache slot of a key, -1 for a key the cache does not hold (tests). */
int rd_key_cache_slot(const char *key, size_t len);
bool rd_key_enter_info(struct rd_ctx *c, const struct rd_keyinfo *ki, bool *allow);
/* redact_apply.c: fill r->fixed (once r's key rules are in place). */
void rd_apply_prepare(struct gw_redactor *r);

/* detectors.c */
char *rd_builtin_pattern(const enum gw_redact_action *actions);
/* Can a built-in branch start at s[i]? A cheap superset test, so the anchored pattern runs only there. */
bool rd_candidate(const char *s, size_t len, size_t i);
/* The first candidate position at or after i, len when none (a block prefilter, then rd_candidate). */
size_t rd_next_candidate(const char *s, size_t len, size_t i);
/* The same without the block prefilter, position by position: the reference the tests compare with. */
size_t rd_next_candidate_ref(const char *s, size_t len, size_t i);
/* Tests only: true makes rd_next_candidate return every position, so the anchored pattern is tried at each
 * one (the straightforward scan, which must find exactly what the candidates find). Not thread-safe. */
extern bool rd_every_position;
/* Tests only: true keeps rd_next_candidate from its AVX-512 steps, and rd_no_avx2 from its AVX2 blocks,
 * on a CPU that has them (every path the CPU can run is compared). */
extern bool rd_no_avx2, rd_no_avx512;
/* auth: the value is under an Authorization key (rd_ctx.auth_key) */
bool rd_validate(enum gw_redact_kind k, const char *s, size_t *start, size_t end, bool auth);
bool rd_secret_key_name(const char *key, size_t len);
/* A key ending in "authorization" (any case): its value is a credential, whatever its length. */
bool rd_auth_key_name(const char *key, size_t len);
/* PEM private keys (detectors.c): the footer search's memory over one value. */
struct rd_pk {
  bool searched;
  size_t from, footer_start, footer_end; /* the first footer at or after from; footer_end 0: none */
};
void rd_pk_init(struct rd_pk *pk);
/* A private key starting at s[i]: its end, or 0. Linear over one value with one rd_pk, when asked at
 * increasing positions. */
size_t rd_private_key(struct rd_pk *pk, const char *s, size_t len, size_t i);
bool rd_aws_secret_value(const char *s, size_t len);
extern const char *const rd_kind_names[GW_RK__COUNT];
extern const char *const rd_kind_stems[GW_RK__COUNT];

/* luhn.c */
bool rd_luhn_ok(const char *s, size_t len);

/* hmac.c: the hash token "[STEM:12 hex]" into buf (at least 64 bytes); false on a crypto failure. */
bool rd_hash_token(const unsigned char *key, size_t key_len, const char *stem, const char *v, size_t len, char *buf,
                   size_t bufsz);

/* redact.c: policy lookup for a key (NULL = no key): NULL when no rule applies. */
const struct rd_key *rd_key_find(const struct gw_redactor *r, const char *key, size_t len);

/* redact_limits.c */
#define RD_LIMIT_MASK "[REDACTION_LIMIT]"
#define RD_FAIL_MASK "[REDACTION_FAILED]"
struct rd_limits *rd_memo_limits(struct gw_redact_memo *m);
/* Count n bytes read; false when the request must not scan further (a budget ran out, or stop). */
bool rd_charge(struct rd_ctx *c, size_t n);
/* The periodic check inside long scans (cheap unless due); false as rd_charge. */
bool rd_tick(struct rd_ctx *c);
/* A value replaced whole for reason why (pattern: the user pattern involved, -1: none): counted in the
 * metric, logged the first time per reason. */
void rd_limited(struct rd_ctx *c, enum rd_limit why, int pattern, size_t len);
/* pcre2's callout, set on the match context while a watched user pattern runs; data is the rd_ctx. */
int rd_callout(pcre2_callout_block *b, void *data);
/* u's regex compiled with a callout before each match attempt, so a long single match can be checked;
 * NULL when the regex cannot be wrapped so that it means the same (the unwrapped code is then used). */
pcre2_code *rd_watch_pattern(const char *regex, const pcre2_code *plain);

/* metrics (redact_metrics.c) */
void rd_metrics_init(void);
int rd_metric_slot(const char *kind);
void rd_metric_add(int slot, uint32_t n);
int rd_metric_slot_deny(void);
void rd_metric_limited(enum rd_limit why);
int64_t rd_metric_limited_get(enum rd_limit why);

#endif
