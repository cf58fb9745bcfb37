/*
 * redact_json.c: values that are JSON text (message arrays, the attributes/resource objects of a record,
 * JSON-encoded attribute strings) are redacted string value by string value, so keys and structure stay
 * and the result is valid JSON; then truncation.
 *
 * Key decisions:
 * - A small parser, not a DOM, that writes nothing until a string changes: then the source text before it
 *   is copied as is, the new string literal appended. Formatting is kept; an unchanged value keeps its
 *   original pointer and bytes.
 * - Strings are unescaped before the detectors see them ("\nalice@x.com" must not become "\[EMAIL...]")
 *   and re-escaped after. JSON inside a JSON string is walked again (at most 4 levels).
 * - Attribute mode (a record's attributes, resource, parameters): object member names are attribute keys,
 *   so allow/deny/key rules apply to them at every level, as to kvlist keys in a request; a drop removes
 *   the nearest member. In content mode (messages) a drop anywhere drops the whole value. In both modes a
 *   member named like an AWS secret key marks its value as key-like context.
 * - Text that starts like JSON but does not parse is redacted as plain text.
 * - Truncation: a content field's long strings (over 64 bytes; roles, types and ids are never cut) share
 *   one budget of max_content_bytes; the string that crosses it is cut on a UTF-8 boundary and marked,
 *   later ones keep only the marker. Other fields cut each string at the cap.
 * - Numbers are copied as they are: a card number sent as a JSON number is not found (documented gap).
 * - In attribute mode a string that is canonical base64 is also decoded and scanned as a bytes value
 *   (redact_bytes.c): that is how a record's JSON holds them.
 */
#include <stdint.h>
#include <string.h>

#include "redact/redact_int.h"

#define RJ_MAX_DEPTH 64
#define RD_TRUNC_MARK "...[TRUNCATED]"
#define RD_SHORT 64

enum { RJ_OK, RJ_DROP, RJ_ERR };

struct rj {
  struct rd_ctx *c;
  const char *p, *end;
  struct gw_sb *out;
  const char *copied; /* source text before this is in out */
  bool attr_mode, changed;
  int copy; /* > 0: inside an allow-listed member, copied as is */
};

static void ws(struct rj *j)
{
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
    j->p++;
}

static int hexv(char ch)
{
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

static bool hex4(const char *p, const char *end, uint32_t *v)
{
  if (end - p < 4)
    return false;
  *v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexv(p[i]);
    if (h < 0)
      return false;
    *v = *v << 4 | (uint32_t)h;
  }
  return true;
}

static size_t put_utf8(char *w, uint32_t cp)
{
  if (cp < 0x80) {
    w[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    w[0] = (char)(0xC0 | cp >> 6);
    w[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    w[0] = (char)(0xE0 | cp >> 12);
    w[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    w[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  w[0] = (char)(0xF0 | cp >> 18);
  w[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  w[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  w[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* A string at j->p: the raw literal [*rb, j->p) and its text (raw inner bytes when there is no escape,
 * else unescaped into the arena; lone surrogates become U+FFFD so the text stays valid UTF-8). */
static int string(struct rj *j, const char **rb, const char **txt, size_t *tlen)
{
  const char *p = j->p + 1, *end = j->end;
  bool esc = false;
  *rb = j->p;
  for (;;) {
    p += gw_json_plain(p, (size_t)(end - p), false);
    if (p >= end || *p == '"')
      break;
    if ((unsigned char)*p < 0x20)
      return RJ_ERR;
    /* a backslash: the escaped byte is skipped whatever it is, and checked when unescaping */
    esc = true;
    p += 2;
    if (p > end)
      return RJ_ERR;
  }
  if (p >= end)
    return RJ_ERR;
  const char *b = *rb + 1;
  j->p = p + 1;
  if (!esc) {
    *txt = b;
    *tlen = (size_t)(p - b);
    return RJ_OK;
  }
  char *w = gw_arena_alloc(j->c->a, (size_t)(p - b) + 1), *w0 = w;
  if (!w) {
    j->c->oom = true;
    return RJ_ERR;
  }
  for (const char *q = b; q < p; q++) {
    if (*q != '\\') {
      const char *e = memchr(q, '\\', (size_t)(p - q));
      size_t run = e ? (size_t)(e - q) : (size_t)(p - q);
      memcpy(w, q, run);
      w += run;
      q += run - 1;
      continue;
    }
    q++;
    switch (*q) {
    case '"': *w++ = '"'; break;
    case '\\': *w++ = '\\'; break;
    case '/': *w++ = '/'; break;
    case 'b': *w++ = '\b'; break;
    case 'f': *w++ = '\f'; break;
    case 'n': *w++ = '\n'; break;
    case 'r': *w++ = '\r'; break;
    case 't': *w++ = '\t'; break;
    case 'u': {
      uint32_t cp, lo;
      if (!hex4(q + 1, p, &cp))
        return RJ_ERR;
      q += 4;
      if (cp >= 0xD800 && cp < 0xDC00 && p - q > 6 && q[1] == '\\' && q[2] == 'u' && hex4(q + 3, p, &lo) &&
          lo >= 0xDC00 && lo < 0xE000) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        q += 6;
      } else if (cp >= 0xD800 && cp < 0xE000) {
        cp = 0xFFFD;
      }
      w += put_utf8(w, cp);
      break;
    }
    default: return RJ_ERR;
    }
  }
  *w = 0;
  *txt = w0;
  *tlen = (size_t)(w - w0);
  return RJ_OK;
}

static int value(struct rj *j, int depth);

static int member_value(struct rj *j, const char *key, size_t klen, int depth)
{
  struct rd_ctx *c = j->c;
  enum gw_redact_action saved_act = c->key_action;
  bool saved_secret = c->secret_key, saved_auth = c->auth_key, allow = false;
  int rc;
  if (j->attr_mode && !j->copy && c->r->enabled) {
    if (!rd_key_enter(c, key, klen, &allow)) {
      /* deny-listed: parse it (copying), then take it back */
      j->copy++;
      rc = value(j, depth + 1);
      j->copy--;
      if (c->st)
        c->st->deny++, c->st->total++;
      c->key_action = saved_act;
      c->secret_key = saved_secret;
      c->auth_key = saved_auth;
      return rc == RJ_ERR ? RJ_ERR : RJ_DROP;
    }
  } else {
    c->secret_key = rd_secret_key_name(key, klen);
    c->auth_key = rd_auth_key_name(key, klen);
  }
  if (allow)
    j->copy++;
  rc = value(j, depth + 1);
  if (allow)
    j->copy--;
  c->key_action = saved_act;
  c->secret_key = saved_secret;
  c->auth_key = saved_auth;
  return rc;
}

/* Emit the source text up to `upto` (unchanged bytes are copied lazily, only once something changed). */
static void flush(struct rj *j, const char *upto)
{
  if (!j->out->buf && !j->out->oom) {
    /* size for the whole text once: growing later would copy, other allocations sit in between */
    size_t cap = (size_t)(j->end - j->copied) + 256;
    j->out->buf = gw_arena_alloc(j->out->a, cap);
    if (j->out->buf)
      j->out->cap = cap;
    else
      j->out->oom = true;
  }
  gw_sb_putn(j->out, j->copied, (size_t)(upto - j->copied));
  j->copied = upto;
}

static int object(struct rj *j, int depth)
{
  j->p++;
  ws(j);
  if (j->p < j->end && *j->p == '}') {
    j->p++;
    return RJ_OK;
  }
  bool kept_any = false, dropped_last = false;
  const char *comma = NULL;
  for (;;) {
    ws(j);
    if (j->p >= j->end || *j->p != '"')
      return RJ_ERR;
    const char *mstart = j->p, *save_copied = j->copied;
    size_t save_len = j->out->len;
    const char *rb, *key;
    size_t klen;
    if (string(j, &rb, &key, &klen) != RJ_OK)
      return RJ_ERR;
    ws(j);
    if (j->p >= j->end || *j->p != ':')
      return RJ_ERR;
    j->p++;
    ws(j);
    int rc = member_value(j, key, klen, depth);
    if (rc == RJ_ERR)
      return RJ_ERR;
    dropped_last = rc == RJ_DROP;
    if (rc == RJ_DROP) {
      if (!j->attr_mode)
        return RJ_DROP;
      /* take back what the member emitted, then cut it with one comma: the one before it, or when no
       * member was kept yet, the one after it */
      if (!j->out->oom)
        j->out->len = save_len;
      j->copied = save_copied;
      flush(j, kept_any && comma ? comma : mstart);
      j->copied = j->p;
      j->changed = true;
    } else {
      kept_any = true;
    }
    ws(j);
    if (j->p < j->end && *j->p == ',') {
      comma = j->p;
      j->p++;
      if (dropped_last && !kept_any)
        j->copied = j->p;
      continue;
    }
    if (j->p < j->end && *j->p == '}') {
      j->p++;
      return RJ_OK;
    }
    return RJ_ERR;
  }
}

static int array(struct rj *j, int depth)
{
  j->p++;
  ws(j);
  if (j->p < j->end && *j->p == ']') {
    j->p++;
    return RJ_OK;
  }
  /* an element's drop drops the array's member, but parsing goes on to the array's end so the member
   * can be cut out */
  bool drop = false;
  for (;;) {
    ws(j);
    int rc = value(j, depth + 1);
    if (rc == RJ_ERR)
      return rc;
    if (rc == RJ_DROP) {
      if (!j->attr_mode)
        return RJ_DROP;
      if (!drop)
        j->copy++; /* the rest is going anyway */
      drop = true;
    }
    ws(j);
    if (j->p < j->end && *j->p == ',') {
      j->p++;
      continue;
    }
    if (drop)
      j->copy--;
    if (j->p < j->end && *j->p == ']') {
      j->p++;
      return drop ? RJ_DROP : RJ_OK;
    }
    return RJ_ERR;
  }
}

/* true, false, null, or a number as RFC 8259 §6 writes it (so "[8.8.8.8]" is text, not JSON). */
static int scalar(struct rj *j)
{
  const char *p = j->p, *end = j->end;
  static const char *const lits[] = {"true", "false", "null"};
  for (int i = 0; i < 3; i++) {
    size_t n = strlen(lits[i]);
    if ((size_t)(end - p) >= n && !memcmp(p, lits[i], n)) {
      j->p = p + n;
      return RJ_OK;
    }
  }
#define DIGIT(q) ((q) < end && *(q) >= '0' && *(q) <= '9')
  if (p < end && *p == '-')
    p++;
  if (!DIGIT(p))
    return RJ_ERR;
  if (*p == '0')
    p++;
  else
    while (DIGIT(p))
      p++;
  if (p < end && *p == '.') {
    p++;
    if (!DIGIT(p))
      return RJ_ERR;
    while (DIGIT(p))
      p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-'))
      p++;
    if (!DIGIT(p))
      return RJ_ERR;
    while (DIGIT(p))
      p++;
  }
#undef DIGIT
  j->p = p;
  return RJ_OK;
}

static int value(struct rj *j, int depth)
{
  if (depth > RJ_MAX_DEPTH || j->p >= j->end)
    return RJ_ERR;
  switch (*j->p) {
  case '{': return object(j, depth);
  case '[': return array(j, depth);
  case '"': {
    const char *rb, *txt, *o;
    size_t tlen, olen;
    if (string(j, &rb, &txt, &tlen) != RJ_OK)
      return RJ_ERR;
    if (j->copy)
      return RJ_OK;
    /* a record's attribute JSON writes bytes values in base64 (redact_bytes.c) */
    enum rd_res res = j->attr_mode ? rd_base64_value(j->c, txt, tlen, &o, &olen) : RD_SAME;
    if (res == RD_SAME && !j->c->oom)
      res = rd_value(j->c, txt, tlen, false, &o, &olen);
    if (res == RD_DROP)
      return RJ_DROP;
    if (res == RD_CHANGED) {
      flush(j, rb);
      gw_sb_json_str(j->out, o, olen);
      j->copied = j->p;
      j->changed = true;
    }
    return RJ_OK;
  }
  default: return scalar(j);
  }
}

static bool looks_json(const char *s, size_t len)
{
  size_t i = 0;
  while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
    i++;
  return i < len && (s[i] == '{' || s[i] == '[');
}

/* RJ_ERR: not JSON (or out of memory: c->oom). */
static int json(struct rd_ctx *c, const char *s, size_t len, bool attr_mode, enum rd_res *res, const char **out,
                size_t *outlen)
{
  struct gw_sb sb;
  gw_sb_init(&sb, c->a);
  struct rj j = {.c = c, .p = s, .end = s + len, .out = &sb, .attr_mode = attr_mode, .copied = s};
  ws(&j);
  int rc = value(&j, 0);
  if (rc == RJ_OK) {
    ws(&j);
    if (j.p != j.end)
      rc = RJ_ERR;
  }
  if (rc == RJ_ERR)
    return RJ_ERR;
  if (rc == RJ_DROP) {
    *res = RD_DROP;
    return RJ_OK;
  }
  if (!j.changed) {
    *res = RD_SAME;
    return RJ_OK;
  }
  flush(&j, j.end);
  size_t n = sb.len;
  char *t = gw_sb_finish(&sb);
  if (!t) {
    c->oom = true;
    return RJ_ERR;
  }
  *out = t;
  *outlen = n;
  *res = RD_CHANGED;
  return RJ_OK;
}

/* Cut s to the cap and the shared budget; true when cut (then *out is a new arena string). */
static bool cut(struct rd_ctx *c, const char *s, size_t len, const char **out, size_t *outlen)
{
  size_t keep = len;
  if (len > RD_SHORT)
    c->long_sum += len;
  if (c->cap != SIZE_MAX && keep > c->cap)
    keep = c->cap;
  if (c->budget != SIZE_MAX && len > RD_SHORT) {
    if (keep > c->budget)
      keep = c->budget;
    c->budget -= keep;
  }
  if (keep >= len)
    return false;
  while (keep > 0 && ((unsigned char)s[keep] & 0xC0) == 0x80)
    keep--;
  char *t = gw_arena_alloc(c->a, keep + sizeof RD_TRUNC_MARK);
  if (!t) {
    c->oom = true;
    return false;
  }
  memcpy(t, s, keep);
  memcpy(t + keep, RD_TRUNC_MARK, sizeof RD_TRUNC_MARK);
  *out = t;
  *outlen = keep + sizeof RD_TRUNC_MARK - 1;
  c->truncated = true;
  if (c->st)
    c->st->truncated++;
  return true;
}

static enum rd_res value_walk(struct rd_ctx *c, const char *s, size_t len, bool attr_mode, const char **out,
                              size_t *outlen)
{
  if (c->jdepth >= RJ_MAX_NEST && looks_json(s, len))
    c->refused = true; /* redacted as plain text here, walked at a shallower level */
  /* Past a budget JSON is still walked (linear), so its strings are masked one by one and it stays valid
   * JSON (the attributes column is jsonb); once stopped nothing is worth the walk. */
  if (c->jdepth < RJ_MAX_NEST && looks_json(s, len) && (rd_charge(c, len) || !c->lim->stop_rc)) {
    /* A text that only starts like JSON is redacted and cut as plain text below from the state it had
     * here: what the strings walked before the parse failed spent of the budget and counted is given back. */
    size_t budget = c->budget, long_sum = c->long_sum;
    bool truncated = c->truncated;
    struct gw_redact_stats saved;
    if (c->st)
      saved = *c->st;
    enum rd_res res;
    c->jdepth++;
    if (c->jdepth > c->jmax)
      c->jmax = c->jdepth;
    int rc = json(c, s, len, attr_mode, &res, out, outlen);
    c->jdepth--;
    if (rc == RJ_OK || c->oom)
      return rc == RJ_OK ? res : RD_SAME;
    c->budget = budget;
    c->long_sum = long_sum;
    c->truncated = truncated;
    if (c->st)
      *c->st = saved;
  }
  enum rd_res res = rd_plain(c, s, len, out, outlen);
  if (res == RD_DROP || c->oom)
    return res;
  const char *t = res == RD_CHANGED ? *out : s;
  size_t tl = res == RD_CHANGED ? *outlen : len;
  if (tl > c->longest)
    c->longest = tl;
  if (cut(c, t, tl, out, outlen))
    return RD_CHANGED;
  return res;
}

/*
 * A JSON value comes back whole: the record's attributes JSON holds each message attribute the request pass
 * already walked (as a JSON string, the same text once unescaped), and its content columns are rendered
 * from those attributes, byte for byte the same text when the SDK sent the semconv shape compactly. A
 * walk's result depends only on the text, the key context and attr_mode, as long as neither the cap nor a
 * content budget cuts any of its strings and the levels of JSON inside it are walked the same: the memo
 * keeps the walk with what it needs to know that (the longest string; the long strings' lengths summed,
 * which is what a budget spends when it cuts nothing, and it cuts nothing exactly when that sum fits what
 * is left of it; the levels, none left unwalked for depth), and the counts it added.
 */
enum rd_res rd_value(struct rd_ctx *c, const char *s, size_t len, bool attr_mode, const char **out, size_t *outlen)
{
  if (!c->memo || !c->r->enabled || len < RD_MEMO_MIN || c->jdepth >= RJ_MAX_NEST || !looks_json(s, len))
    return value_walk(c, s, len, attr_mode, out, outlen);
  enum rd_res res;
  if (rd_memo_json_get(c, s, len, attr_mode, RJ_MAX_NEST - c->jdepth, &res, out, outlen))
    return res;
  size_t longest = c->longest, long_sum = c->long_sum;
  int jmax = c->jmax;
  bool refused = c->refused;
  struct gw_redact_stats mine, *theirs = c->st;
  memset(&mine, 0, sizeof mine);
  c->longest = 0;
  c->jmax = c->jdepth;
  c->refused = false;
  c->st = &mine;
  res = value_walk(c, s, len, attr_mode, out, outlen);
  c->st = theirs;
  size_t nk = GW_RK__COUNT + c->r->nuser;
  if (theirs) {
    theirs->total += mine.total;
    theirs->deny += mine.deny;
    theirs->truncated += mine.truncated;
    theirs->limited += mine.limited;
    for (size_t k = 0; k < nk; k++)
      theirs->kinds[k] += mine.kinds[k];
  }
  if (!c->oom && !(c->lim && (c->lim->stop_rc || c->lim->why)) && !mine.limited && !mine.truncated && !c->refused)
    rd_memo_json_put(c, s, len, attr_mode, res, res == RD_CHANGED ? *out : NULL, res == RD_CHANGED ? *outlen : 0,
                     &mine, c->longest, c->long_sum - long_sum, c->jmax - c->jdepth);
  if (longest > c->longest)
    c->longest = longest;
  if (jmax > c->jmax)
    c->jmax = jmax;
  c->refused |= refused;
  return res;
}
