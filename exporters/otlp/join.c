/*
 * join.c: an exporter's join of GenAI spans with the log records that carry their message content, for a
 * backend that takes no logs (Langfuse; issue 14). The official OpenTelemetry instrumentations keep
 * prompts and completions out of the span and emit them as OTLP log records with the span's ids (DESIGN
 * §3), and the SDKs export spans every 5 s and logs every 1 s: a call's logs and its span reach the
 * gateway seconds apart, in either order, in different spool entries.
 *
 * Two stores, both copies in this exporter's heap, bounded together by max_bytes:
 * - content: the GenAI events (redacted messages) of the logs entries the exporter has read, grouped by
 *   span, until a span of theirs is delivered, or events_ms has passed (or memory runs short: the oldest
 *   go first), counted when they go unused;
 * - held spans: an inference span of the OTel semconv dialects (the ones whose content comes as logs)
 *   that carries no content of its own and whose content has not arrived (no input messages; no output
 *   messages and not an error) is taken out of its request and kept as a one-span request (its resource
 *   and scope copied) with its interaction record, until its content is there or wait_ms has passed
 *   since it was spooled; then it goes out like any other span of a batch, through the backend's
 *   transform. A span that cannot be held (memory) goes at once; both that and the end of the wait are
 *   counted as spans sent without the content they waited for.
 * The spool cursor: the exporter does not commit entries the join still keeps something of (keep_from),
 * so after a crash they are read again: a held span is delivered at least once, and content that came
 * before its span is there again when the span comes. Nothing is kept longer than events_ms (wait_ms for
 * spans), so the cursor is never held back for longer, and the lag cap still applies.
 * Reading again (a retried batch, a restart) is idempotent: an event already kept and a span already held
 * are not added twice.
 * One thread (the exporter's) uses a join; the counters it updates are atomics read by /metrics.
 */
#include <stdlib.h>
#include <string.h>

#include "export_int.h"

const char *const gw_export_join_why_labels[GW_XJ__COUNT] = {"wait", "memory", "stop"};

struct jkey {
  uint8_t id[24]; /* trace id (16) then span id (8) */
};

/* What both stores' items share: hash chain, age order, the entry they came from, their bytes. */
struct jnode {
  struct jkey k;
  struct jnode *hnext;
  struct jnode *prev, *next; /* by seq, oldest first */
  uint64_t seq;
  size_t bytes;
};

struct jtab {
  struct jnode **b;
  size_t mask, n;
  struct jnode *head, *tail;
};

struct jev {
  struct gw_event e; /* trace_id, span_id, time_ns, event_name, seq, direction, content: what a transform reads */
};

struct group { /* the kept content of one span */
  struct jnode node;
  uint64_t added_mono;
  struct jev *ev;
  size_t n, cap;
  bool has_in, has_out;
};

struct held { /* a span waiting for its content */
  struct jnode node;
  uint64_t appended_ns;
  bool need_in, need_out; /* what the span itself lacks */
  bool out;               /* released in the batch being sent */
  int why;                /* released without its content: enum gw_export_join_why; -1: complete */
  uint8_t *otlp, *recs;
  size_t otlp_len, recs_len;
};

struct gw_export_join {
  struct gw_export_join_conf c;
  struct gw_export_stats *st;
  struct jtab groups, held;
  size_t bytes;
  struct held **released; /* the last release, in order */
  size_t nreleased, capreleased;
};

/* ---- keys and tables ---- */

static struct jkey key_bin(const uint8_t *trace, const uint8_t *span)
{
  struct jkey k;
  memcpy(k.id, trace, 16);
  memcpy(k.id + 16, span, 8);
  return k;
}

static int unhex1(char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; }

static bool unhex(uint8_t *out, const char *s, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    int hi = unhex1(s[2 * i]), lo = hi < 0 ? -1 : unhex1(s[2 * i + 1]);
    if (lo < 0)
      return false;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return s[2 * n] == '\0';
}

static size_t khash(const struct jkey *k)
{
  uint64_t h;
  memcpy(&h, k->id + 8, sizeof h); /* trace ids are random (W3C): their low bytes hash well */
  uint64_t s;
  memcpy(&s, k->id + 16, sizeof s);
  return (size_t)((h ^ s) * 0x9e3779b97f4a7c15ull >> 17);
}

static void tab_init(struct jtab *t)
{
  memset(t, 0, sizeof *t);
  t->mask = 255;
  t->b = gw_calloc(t->mask + 1, sizeof *t->b);
}

static struct jnode *tab_find(const struct jtab *t, const struct jkey *k)
{
  for (struct jnode *n = t->b[khash(k) & t->mask]; n; n = n->hnext)
    if (!memcmp(n->k.id, k->id, sizeof k->id))
      return n;
  return NULL;
}

static void tab_grow(struct jtab *t)
{
  size_t mask = t->mask * 2 + 1;
  struct jnode **b = gw_calloc(mask + 1, sizeof *b);
  for (size_t i = 0; i <= t->mask; i++)
    for (struct jnode *n = t->b[i], *nx; n; n = nx) {
      nx = n->hnext;
      size_t h = khash(&n->k) & mask;
      n->hnext = b[h];
      b[h] = n;
    }
  free(t->b);
  t->b = b;
  t->mask = mask;
}

/* Link n (key and seq set): hashed, and in seq order (it is nearly always the newest). */
static void tab_add(struct jtab *t, struct jnode *n)
{
  if (t->n >= t->mask)
    tab_grow(t);
  size_t h = khash(&n->k) & t->mask;
  n->hnext = t->b[h];
  t->b[h] = n;
  t->n++;
  struct jnode *after = t->tail;
  while (after && after->seq > n->seq)
    after = after->prev;
  n->prev = after;
  n->next = after ? after->next : t->head;
  if (n->next)
    n->next->prev = n;
  else
    t->tail = n;
  if (after)
    after->next = n;
  else
    t->head = n;
}

static void tab_del(struct jtab *t, struct jnode *n)
{
  struct jnode **p = &t->b[khash(&n->k) & t->mask];
  while (*p != n)
    p = &(*p)->hnext;
  *p = n->hnext;
  t->n--;
  if (n->prev)
    n->prev->next = n->next;
  else
    t->head = n->next;
  if (n->next)
    n->next->prev = n->prev;
  else
    t->tail = n->prev;
}

/* ---- create / destroy ---- */

struct gw_export_join *gw_export_join_create(const struct gw_export_join_conf *c, struct gw_export_stats *st)
{
  struct gw_export_join *j = gw_calloc(1, sizeof *j);
  j->c = *c;
  if (!j->c.release_max)
    j->c.release_max = 512;
  j->st = st;
  tab_init(&j->groups);
  tab_init(&j->held);
  return j;
}

static void group_free(struct gw_export_join *j, struct group *g)
{
  tab_del(&j->groups, &g->node);
  j->bytes -= g->node.bytes;
  for (size_t i = 0; i < g->n; i++) {
    free((char *)g->ev[i].e.event_name);
    free((char *)g->ev[i].e.content);
  }
  free(g->ev);
  free(g);
}

static void held_free(struct gw_export_join *j, struct held *h)
{
  tab_del(&j->held, &h->node);
  j->bytes -= h->node.bytes;
  free(h->otlp);
  free(h->recs);
  free(h);
}

static void gauges(struct gw_export_join *j)
{
  if (!j->st)
    return;
  atomic_store(&j->st->join_held_now, j->held.n);
  atomic_store(&j->st->join_bytes_now, j->bytes);
}

void gw_export_join_destroy(struct gw_export_join *j)
{
  if (!j)
    return;
  while (j->groups.head)
    group_free(j, (struct group *)j->groups.head);
  while (j->held.head)
    held_free(j, (struct held *)j->held.head);
  free(j->groups.b);
  free(j->held.b);
  free(j->released);
  free(j);
}

/* ---- content ---- */

static void count_dropped(struct gw_export_join *j, const struct group *g)
{
  if (j->st)
    atomic_fetch_add(&j->st->join_events_dropped, g->n);
}

/* The oldest content goes until need more bytes fit (held spans are never evicted: they are sent). */
static bool make_room(struct gw_export_join *j, size_t need)
{
  while (j->bytes + need > j->c.max_bytes && j->groups.head) {
    struct group *g = (struct group *)j->groups.head;
    count_dropped(j, g);
    group_free(j, g);
  }
  return j->bytes + need <= j->c.max_bytes;
}

static int ev_cmp(const struct gw_event *a, const struct gw_event *b)
{
  if (a->time_ns != b->time_ns)
    return a->time_ns < b->time_ns ? -1 : 1;
  if (a->seq.v != b->seq.v)
    return a->seq.v < b->seq.v ? -1 : 1;
  return strcmp(a->event_name ? a->event_name : "", b->event_name ? b->event_name : "");
}

static void add_event(struct gw_export_join *j, const struct gw_event *e, uint64_t seq, uint64_t now_mono)
{
  struct jkey k;
  if (!unhex(k.id, e->trace_id, 16) || !unhex(k.id + 16, e->span_id, 8))
    return;
  size_t need = strlen(e->content) + (e->event_name ? strlen(e->event_name) + 1 : 0) + 1 + sizeof(struct jev);
  struct group *g = (struct group *)tab_find(&j->groups, &k);
  if (g)
    for (size_t i = 0; i < g->n; i++) /* read again (a retried batch, a restart): kept already */
      if (!ev_cmp(&g->ev[i].e, e) && !strcmp(g->ev[i].e.direction, e->direction))
        return;
  if (!make_room(j, need + sizeof *g)) {
    if (j->st)
      atomic_fetch_add(&j->st->join_events_dropped, 1);
    return;
  }
  g = (struct group *)tab_find(&j->groups, &k); /* make_room may have dropped it */
  if (!g) {
    g = gw_calloc(1, sizeof *g);
    g->node.k = k;
    g->node.seq = seq;
    g->node.bytes = sizeof *g;
    g->added_mono = now_mono;
    tab_add(&j->groups, &g->node);
    j->bytes += sizeof *g;
  }
  if (g->n == g->cap) {
    g->cap = g->cap ? g->cap * 2 : 4;
    g->ev = gw_realloc(g->ev, g->cap * sizeof *g->ev);
  }
  struct gw_event c;
  memset(&c, 0, sizeof c);
  memcpy(c.trace_id, e->trace_id, sizeof c.trace_id);
  memcpy(c.span_id, e->span_id, sizeof c.span_id);
  c.time_ns = e->time_ns;
  c.seq = e->seq;
  c.event_name = e->event_name ? gw_strdup(e->event_name) : NULL;
  c.direction = !strcmp(e->direction, "output") ? "output" : "input";
  c.content = gw_strdup(e->content);
  /* in merge order; they nearly always come in it */
  size_t at = g->n;
  while (at && ev_cmp(&g->ev[at - 1].e, &c) > 0)
    at--;
  memmove(&g->ev[at + 1], &g->ev[at], (g->n - at) * sizeof *g->ev);
  g->ev[at].e = c;
  g->n++;
  g->node.bytes += need;
  j->bytes += need;
  if (c.direction[0] == 'o')
    g->has_out = true;
  else
    g->has_in = true;
}

static void expire(struct gw_export_join *j, uint64_t now_mono)
{
  uint64_t keep = j->c.events_ms * 1000000ull;
  /* by seq, which is nearly arrival order: stop at the first one still young */
  while (j->groups.head) {
    struct group *g = (struct group *)j->groups.head;
    if (now_mono - g->added_mono < keep)
      break;
    count_dropped(j, g);
    group_free(j, g);
  }
}

gw_rc gw_export_join_add(struct gw_export_join *j, struct gw_arena *a, const struct gw_spool_entry *entries, size_t n)
{
  uint64_t now = gw_mono_ns();
  expire(j, now);
  for (size_t i = 0; i < n; i++) {
    const struct gw_spool_entry *e = &entries[i];
    if (e->signal != GW_SIGNAL_LOGS || !e->records_len || !(e->flags & GW_ENTRY_HAS_GENAI))
      continue;
    struct gw_event *ev;
    size_t m;
    if (gw_events_decode(e->records, e->records_len, a, &ev, &m) != GW_OK) {
      if (gw_arena_exhausted(a))
        return GW_ERR(NOMEM);
      continue; /* a blob that does not decode: its content is lost for this exporter, its spans still go */
    }
    for (size_t k = 0; k < m; k++)
      if (ev[k].direction && ev[k].content)
        add_event(j, &ev[k], e->seq, now);
  }
  gauges(j);
  return GW_OK;
}

size_t gw_export_join_events(struct gw_export_join *j, const uint8_t *trace_id, const uint8_t *span_id,
                             struct gw_arena *a, const struct gw_event *const **out)
{
  struct jkey k = key_bin(trace_id, span_id);
  const struct group *g = (const struct group *)tab_find(&j->groups, &k);
  if (!g || !g->n)
    return 0;
  const struct gw_event **v = gw_arena_alloc(a, g->n * sizeof *v);
  if (!v)
    return 0;
  for (size_t i = 0; i < g->n; i++)
    v[i] = &g->ev[i].e;
  *out = v;
  return g->n;
}

void gw_export_join_claim(struct gw_export_join *j, const uint8_t *trace_id, const uint8_t *span_id)
{
  struct jkey k = key_bin(trace_id, span_id);
  struct jnode *g = tab_find(&j->groups, &k);
  if (g)
    group_free(j, (struct group *)g);
}

/* ---- held spans ---- */

/* The operations whose content the official instrumentations emit as log records (SPEC-FACTS §3.1). */
static bool inference(const char *op)
{
  return op && (!strcmp(op, "chat") || !strcmp(op, "text_completion") || !strcmp(op, "generate_content"));
}

/* Dialects that carry content in attributes only (OpenInference, OpenLLMetry, Langfuse): no logs to wait for. */
static bool logs_dialect(const char *d) { return !d || !strcmp(d, "semconv") || !strcmp(d, "semconv_deprecated"); }

static bool is_error(const struct gw_record *r) { return r->status && !strcmp(r->status, "error"); }

static bool complete(const struct held *h, const struct group *g)
{
  return (!h->need_in || (g && g->has_in)) && (!h->need_out || (g && g->has_out));
}

bool gw_export_join_wants(struct gw_export_join *j, const uint8_t *trace_id, const uint8_t *span_id,
                          const struct gw_record *r)
{
  if (!j->c.wait_ms || !r || !inference(r->operation) || !logs_dialect(r->dialect))
    return false;
  struct held h = {.need_in = !r->prompt_content, .need_out = !r->response_content && !is_error(r)};
  if (!h.need_in && !h.need_out)
    return false;
  struct jkey k = key_bin(trace_id, span_id);
  return !complete(&h, (const struct group *)tab_find(&j->groups, &k));
}

enum gw_export_hold gw_export_join_hold(struct gw_export_join *j, const uint8_t *trace_id, const uint8_t *span_id,
                                        const struct gw_record *r, const void *otlp, size_t otlp_len,
                                        const void *recs, size_t recs_len, uint64_t seq, uint64_t appended_ns)
{
  struct jkey k = key_bin(trace_id, span_id);
  if (tab_find(&j->held, &k))
    return GW_XH_ALREADY;
  size_t need = sizeof(struct held) + otlp_len + recs_len;
  if (j->bytes + need > j->c.max_bytes) {
    if (j->st)
      atomic_fetch_add(&j->st->join_incomplete[GW_XJ_MEMORY], 1);
    return GW_XH_FULL;
  }
  struct held *h = gw_calloc(1, sizeof *h);
  h->node.k = k;
  h->node.seq = seq;
  h->node.bytes = need;
  h->appended_ns = appended_ns;
  h->need_in = !r->prompt_content;
  h->need_out = !r->response_content && !is_error(r);
  h->why = -1;
  h->otlp = gw_malloc(otlp_len);
  memcpy(h->otlp, otlp, otlp_len);
  h->otlp_len = otlp_len;
  h->recs = gw_malloc(recs_len ? recs_len : 1);
  memcpy(h->recs, recs, recs_len);
  h->recs_len = recs_len;
  tab_add(&j->held, &h->node);
  j->bytes += need;
  if (j->st)
    atomic_fetch_add(&j->st->join_held, 1);
  gauges(j);
  return GW_XH_HELD;
}

size_t gw_export_join_release(struct gw_export_join *j, struct gw_arena *a, const struct gw_export_join_now *now,
                              struct gw_spool_entry **out)
{
  j->nreleased = 0;
  *out = NULL;
  if (!j->held.n)
    return 0;
  uint64_t wait = j->c.wait_ms * 1000000ull;
  struct gw_spool_entry *v = NULL;
  size_t cap = 0;
  for (struct jnode *n = j->held.head; n && j->nreleased < j->c.release_max; n = n->next) {
    struct held *h = (struct held *)n;
    const struct group *g = (const struct group *)tab_find(&j->groups, &n->k);
    bool done = complete(h, g);
    /* Waited long enough: the exporter has read what was spooled up to wait_ms after this span (its logs,
     * if any, would be among them), or, when it is not reading a backlog, the wall clock is past that plus
     * the time an entry may sit in the spool before the exporter reads it. */
    uint64_t until = h->appended_ns + wait;
    bool due = now->read_ns >= until || (now->caught_up && now->wall_ns >= until + j->c.read_lag_ms * 1000000ull);
    if (!done && !due && !now->final)
      continue;
    h->why = done ? -1 : due ? GW_XJ_WAIT : GW_XJ_STOP;
    if (j->nreleased == j->capreleased) {
      j->capreleased = j->capreleased ? j->capreleased * 2 : 64;
      j->released = gw_realloc(j->released, j->capreleased * sizeof *j->released);
    }
    if (j->nreleased == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      struct gw_spool_entry *nv = gw_arena_alloc(a, ncap * sizeof *nv);
      if (!nv)
        break; /* out of memory for the list: the rest waits for the next batch */
      if (cap)
        memcpy(nv, v, cap * sizeof *nv);
      v = nv;
      cap = ncap;
    }
    h->out = true;
    j->released[j->nreleased] = h;
    v[j->nreleased++] = (struct gw_spool_entry){
      .seq = n->seq,
      .format = GW_SPOOL_FORMAT,
      .signal = GW_SIGNAL_TRACES,
      .flags = GW_ENTRY_HAS_GENAI | GW_EXPORT_ENTRY_RELEASED,
      .nspans = 1,
      .nrecords = 1,
      .appended_ns = h->appended_ns,
      .otlp = h->otlp,
      .otlp_len = h->otlp_len,
      .records = h->recs,
      .records_len = h->recs_len,
    };
  }
  *out = v;
  return j->nreleased;
}

void gw_export_join_done(struct gw_export_join *j, size_t done)
{
  for (size_t i = 0; i < j->nreleased; i++) {
    struct held *h = j->released[i];
    if (i < done) {
      if (h->why >= 0 && j->st)
        atomic_fetch_add(&j->st->join_incomplete[h->why], 1);
      held_free(j, h);
    } else {
      h->out = false; /* not sent: released again next time */
    }
  }
  j->nreleased = 0;
  gauges(j);
}

uint64_t gw_export_join_keep_from(const struct gw_export_join *j)
{
  uint64_t a = j->groups.head ? j->groups.head->seq : 0, b = j->held.head ? j->held.head->seq : 0;
  return !a ? b : !b ? a : a < b ? a : b;
}

size_t gw_export_join_held(const struct gw_export_join *j) { return j->held.n; }
