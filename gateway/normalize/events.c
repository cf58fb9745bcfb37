/*
 * events.c: GenAI events from OTLP log records (DESIGN §3). The official OpenTelemetry instrumentations
 * keep message content out of spans and emit it as log records named gen_ai.system.message,
 * gen_ai.user.message, gen_ai.assistant.message, gen_ai.tool.message, gen_ai.choice or
 * gen_ai.client.inference.operation.details, carrying the LLM span's trace_id and span_id. Each becomes
 * one or more struct gw_event (one per message) that the writer stores in ai_interaction_events and
 * merges into the span's interaction row.
 *
 * Key decisions:
 * - The event name is the record's event_name field, else its event.name attribute. Any gen_ai.* name
 *   is a GenAI event; the content names above are turned into messages, others are stored with their body
 *   as JSON and no direction (they never fill a row's content).
 * - A log record is read as a span event would be: its body's kvlist entries (or a string body as
 *   "content") and its attributes become the attributes of a synthetic span event, and the same message
 *   readers the span path uses (semconv_old.c, semconv.c) produce the messages. So a message reads the
 *   same whichever way it came, and each row's content is rendered exactly like one element of
 *   prompt_content / response_content: the writer's merge concatenates them into the same JSON array.
 * - seq: the message's index within its record, plus 1000 x the record's place among the span's records
 *   in the request: stable when a request is re-sent (storage stays idempotent), and it keeps the sent
 *   order of messages that share a timestamp. Rows are ordered by (time, seq, event_name).
 * - prompt_hash (before redaction) is set on the first input row of each span of the request, over that
 *   span's input messages of the request rendered as prompt_content would be; prompt_simhash beside it,
 *   over their text as a row's is taken (the messages' text parts joined by newlines), so a prompt that
 *   came only in log records gets the same two values as had it come on its span.
 * - Validation: a record with a trace_id or span_id of the wrong length is rejected (partial_success) and
 *   removed from the request; a GenAI event outside the storable time window likewise. A GenAI event
 *   without ids cannot be joined to a span: forwarded, not stored, counted (unjoinable).
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "normalize/events.h"
#include "normalize/normalize_int.h"
#include "normalize/simhash.h"

static const char *attr_str(GwKeyValue *const *kv, size_t n, const char *key)
{
  const char *found = NULL;
  for (size_t i = 0; i < n; i++)
    if (kv[i]->key && !strcmp(kv[i]->key, key) && nz_str(kv[i]->value))
      found = kv[i]->value->string_value;
  return found;
}

const char *gw_log_event_name(const GwLogRecord *l)
{
  if (l->event_name && l->event_name[0])
    return l->event_name;
  return attr_str(l->attributes, l->n_attributes, "event.name");
}

enum ev_kind { EV_OTHER, EV_MESSAGE, EV_CHOICE, EV_DETAILS };

static enum ev_kind kind_of(const char *name)
{
  if (!strcmp(name, "gen_ai.system.message") || !strcmp(name, "gen_ai.user.message") ||
      !strcmp(name, "gen_ai.assistant.message") || !strcmp(name, "gen_ai.tool.message"))
    return EV_MESSAGE;
  if (!strcmp(name, "gen_ai.choice"))
    return EV_CHOICE;
  if (!strcmp(name, "gen_ai.client.inference.operation.details"))
    return EV_DETAILS;
  return EV_OTHER;
}

static bool all_zero(const uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (p[i])
      return false;
  return true;
}

/* The record as a span event: body kvlist entries (or a string body as "content"), then its attributes. */
static bool synth_event(struct gw_arena *a, const GwLogRecord *l, const char *name, GwSpanEvent *ev)
{
  size_t nb = 0;
  GwKeyValue *const *bkv = NULL;
  GwKeyValue *content = NULL;
  if (l->body && l->body->value_case == GW_AV_KVLIST && l->body->kvlist_value) {
    bkv = l->body->kvlist_value->values;
    nb = l->body->kvlist_value->n_values;
  } else if (l->body && l->body->value_case != GW_AV_NONE) {
    content = gw_arena_alloc(a, sizeof *content);
    if (!content)
      return false;
    gw_pb_key_value_init(content);
    content->key = (char *)"content";
    content->value = l->body;
    nb = 1;
  }
  size_t n = nb + l->n_attributes;
  GwKeyValue **kv = gw_arena_alloc(a, sizeof *kv * (n ? n : 1));
  if (!kv)
    return false;
  for (size_t i = 0; i < nb; i++)
    kv[i] = content ? content : bkv[i];
  for (size_t i = 0; i < l->n_attributes; i++)
    kv[nb + i] = l->attributes[i];
  gw_pb_span_event_init(ev);
  ev->name = (char *)name;
  ev->time_unix_nano = l->time_unix_nano;
  ev->attributes = kv;
  ev->n_attributes = n;
  return true;
}

/* One message rendered alone: the element prompt_content / response_content would hold. */
static const char *render_one(struct nz_ctx *c, const struct nz_msg *m, bool output)
{
  struct nz_msgs one = {.v = (struct nz_msg *)m, .n = 1, .cap = 1};
  size_t len = 0;
  char *s = nz_msgs_render(c, &one, output, &len);
  if (!s)
    return NULL;
  if (len < 2)
    return NULL;
  s[len - 1] = 0; /* strip the list's brackets: the merge joins elements */
  return s + 1;
}

struct ev_builder {
  struct gw_arena *a;
  struct gw_logs_result *res;
  size_t cap;
  bool oom;
};

static struct gw_event *new_event(struct ev_builder *b)
{
  struct gw_logs_result *res = b->res;
  if (res->nevents == b->cap) {
    size_t ncap = b->cap ? b->cap * 2 : 16;
    struct gw_event *ne = gw_arena_grow(b->a, res->events, b->cap * sizeof *ne, ncap * sizeof *ne);
    if (!ne) {
      b->oom = true;
      return NULL;
    }
    res->events = ne;
    b->cap = ncap;
  }
  struct gw_event *e = &res->events[res->nevents++];
  memset(e, 0, sizeof *e);
  return e;
}

/* Rows for one message list; seq0 is the record's base seq. */
static void add_msgs(struct ev_builder *b, struct nz_ctx *c, const struct gw_event *proto, const struct nz_msgs *m,
                     bool output, int64_t *seq)
{
  for (uint32_t i = 0; i < m->n && !b->oom; i++) {
    const char *content = render_one(c, &m->v[i], output);
    struct nz_msgs one = {.v = &m->v[i], .n = 1, .cap = 1};
    const char *text = nz_msgs_text(c, &one, NULL, NULL);
    if (!content || c->oom) {
      b->oom = true;
      return;
    }
    struct gw_event *e = new_event(b);
    if (!e)
      return;
    *e = *proto;
    e->seq.v = (*seq)++;
    e->seq.set = true;
    e->role = m->v[i].role ? m->v[i].role : output ? "assistant" : "user";
    e->direction = output ? "output" : "input";
    e->content = content;
    e->text_content = text;
  }
}

/* Build the rows of one GenAI log record. */
static void build(struct ev_builder *b, const GwLogRecord *l, const char *name, const struct gw_event *proto,
                  int64_t seq)
{
  struct gw_arena *a = b->a;
  enum ev_kind k = kind_of(name);
  if (k == EV_OTHER) {
    struct gw_event *e = new_event(b);
    if (!e)
      return;
    *e = *proto;
    e->seq.v = seq;
    e->seq.set = true;
    if (l->body && l->body->value_case != GW_AV_NONE) {
      struct gw_sb sb;
      gw_sb_init(&sb, a);
      nz_av_write(&sb, l->body, 1);
      e->content = gw_sb_finish(&sb);
      if (!e->content)
        b->oom = true;
    }
    return;
  }
  GwSpanEvent ev, *evp = &ev;
  GwSpan span;
  struct gw_record dummy;
  memset(&dummy, 0, sizeof dummy);
  if (!synth_event(a, l, name, &ev)) {
    b->oom = true;
    return;
  }
  gw_pb_span_init(&span);
  span.events = &evp;
  span.n_events = 1;
  struct nz_ctx c = {.a = a, .r = &dummy, .span = &span};
  struct nz_msgs in = {0}, out = {0};
  struct nz_msg sys = {0};
  if (k == EV_DETAILS)
    nz_semconv_events(&c, &in, &out, &sys);
  else
    nz_old_events(&c, &in, &out);
  if (c.oom) {
    b->oom = true;
    return;
  }
  if (sys.n) {
    sys.role = "system";
    struct nz_msgs one = {.v = &sys, .n = 1, .cap = 1};
    add_msgs(b, &c, proto, &one, false, &seq);
  }
  add_msgs(b, &c, proto, &in, false, &seq);
  add_msgs(b, &c, proto, &out, true, &seq);
}

static const char *check_ids(const GwLogRecord *l, char *why, size_t whylen)
{
  if (l->trace_id.len != 0 && l->trace_id.len != 16)
    snprintf(why, whylen, "traceId: %zu bytes, want 16 or none", l->trace_id.len);
  else if (l->span_id.len != 0 && l->span_id.len != 8)
    snprintf(why, whylen, "spanId: %zu bytes, want 8 or none", l->span_id.len);
  else
    return NULL;
  return why;
}

/* The prompt hash of each span's input rows of this request (rows are grouped per record, records in
 * request order; the merge orders by time, seq: the same order for one request's rows of a span). */
/* One input row, for grouping by span and ordering by (time, seq); the original place breaks ties. */
struct in_row {
  const struct gw_event *e;
  size_t at;
};

static int in_row_cmp(const void *pa, const void *pb)
{
  const struct in_row *a = pa, *b = pb;
  int c = strcmp(a->e->trace_id, b->e->trace_id);
  if (!c)
    c = strcmp(a->e->span_id, b->e->span_id);
  if (c)
    return c;
  if (a->e->time_ns != b->e->time_ns)
    return a->e->time_ns < b->e->time_ns ? -1 : 1;
  if (a->e->seq.v != b->e->seq.v)
    return a->e->seq.v < b->e->seq.v ? -1 : 1;
  return a->at < b->at ? -1 : a->at > b->at;
}

/* The input rows sorted by span, then (time, seq): each span's group hashed in that order into its first
 * row in the request, and its text SimHashed there too (normalize.c takes a row's over the text parts of
 * its input messages joined by '\n': each row's text_content is its message's text parts joined so). Sorting keeps this O(n log n) whatever the number of spans (it compared every row
 * with every earlier one: 64 s for 80 000 events). */
static void prompt_hashes(struct gw_logs_result *res, struct gw_arena *a, struct gw_hist_cache *shared, bool *oom)
{
  size_t n = 0;
  for (size_t i = 0; i < res->nevents; i++)
    n += res->events[i].direction && !strcmp(res->events[i].direction, "input");
  if (!n)
    return;
  struct in_row *v = gw_arena_alloc(a, n * sizeof *v);
  if (!v) {
    *oom = true;
    return;
  }
  size_t w = 0;
  for (size_t i = 0; i < res->nevents; i++)
    if (res->events[i].direction && !strcmp(res->events[i].direction, "input"))
      v[w++] = (struct in_row){&res->events[i], i};
  qsort(v, n, sizeof *v, in_row_cmp);
  /* a conversation's calls log its earlier messages again */
  struct nz_sh_memo shm = {.shared = shared};
  struct nz_ph_lane lane;
  nz_ph_init(&lane, shared);
  for (size_t g = 0; g < n;) {
    size_t end = g + 1, first = v[g].at;
    while (end < n && !strcmp(v[end].e->trace_id, v[g].e->trace_id) && !strcmp(v[end].e->span_id, v[g].e->span_id)) {
      if (v[end].at < first)
        first = v[end].at;
      end++;
    }
    /* "[" + the contents joined by "," + "]": a later call of the conversation begins with it (nz_ph_job) */
    struct gw_sb msgs;
    gw_sb_init(&msgs, a);
    gw_sb_putc(&msgs, '[');
    for (size_t j = g; j < end; j++) {
      if (j > g)
        gw_sb_putc(&msgs, ',');
      gw_sb_puts(&msgs, v[j].e->content);
    }
    gw_sb_putc(&msgs, ']');
    if (msgs.oom) {
      *oom = true;
      return;
    }
    struct gw_sha256_job job;
    nz_ph_job(&lane, a, &job, msgs.buf, msgs.len, end - g > 2);
    gw_sha256_jobs(&job, NULL);
    gw_hex(res->events[first].prompt_hash, job.out, 8);
    nz_ph_done(&lane, &job, end - g > 2);
    struct nz_sh_acc sh;
    nz_sh_begin(&sh, &shm, a);
    for (size_t j = g; j < end; j++)
      if (v[j].e->text_content)
        nz_sh_add(&sh, v[j].e->text_content, strlen(v[j].e->text_content), end - g > 2 || j + 1 < end);
    uint64_t h;
    if (nz_sh_end(&sh, &h, oom))
      gw_simhash_bits(h, res->events[first].prompt_simhash);
    g = end;
  }
}

/* The spans seen in a request, found by their ids through an open-addressing table (a list walked for every
 * record made a request of many spans quadratic). */
struct span_seen {
  char trace_id[33], span_id[17];
  int64_t records;
};

struct span_tab {
  struct span_seen *v;
  size_t n, cap;
  uint32_t *slot; /* index + 1, 0 = empty */
  size_t nslot;
};

static size_t span_hash(const char *trace_id, const char *span_id)
{
  uint64_t h = 1469598103934665603ull;
  for (const char *p = trace_id; *p; p++)
    h = (h ^ (unsigned char)*p) * 1099511628211ull;
  for (const char *p = span_id; *p; p++)
    h = (h ^ (unsigned char)*p) * 1099511628211ull;
  return (size_t)(h ^ h >> 32);
}

/* The span's entry, added when new; NULL when the arena is exhausted. */
static struct span_seen *span_find(struct span_tab *t, struct gw_arena *a, const char *trace_id, const char *span_id)
{
  if (t->n * 2 >= t->nslot) {
    size_t ns = t->nslot ? t->nslot * 2 : 64;
    uint32_t *sl = gw_arena_calloc(a, ns * sizeof *sl);
    if (!sl)
      return NULL;
    for (size_t i = 0; i < t->n; i++)
      for (size_t j = span_hash(t->v[i].trace_id, t->v[i].span_id) & (ns - 1);; j = (j + 1) & (ns - 1))
        if (!sl[j]) {
          sl[j] = (uint32_t)i + 1;
          break;
        }
    t->slot = sl;
    t->nslot = ns;
  }
  size_t mask = t->nslot - 1, j = span_hash(trace_id, span_id) & mask;
  for (; t->slot[j]; j = (j + 1) & mask) {
    struct span_seen *s = &t->v[t->slot[j] - 1];
    if (!strcmp(s->trace_id, trace_id) && !strcmp(s->span_id, span_id))
      return s;
  }
  if (t->n == t->cap) {
    size_t ncap = t->cap ? t->cap * 2 : 8;
    struct span_seen *nv = gw_arena_grow(a, t->v, t->cap * sizeof *nv, ncap * sizeof *nv);
    if (!nv)
      return NULL;
    t->v = nv;
    t->cap = ncap;
  }
  struct span_seen *s = &t->v[t->n];
  memcpy(s->trace_id, trace_id, sizeof s->trace_id);
  memcpy(s->span_id, span_id, sizeof s->span_id);
  s->records = 0;
  t->slot[j] = (uint32_t)++t->n;
  return s;
}

gw_rc gw_normalize_logs(GwLogsRequest *req, struct gw_arena *a, const struct gw_normalize_opts *opts,
                        struct gw_logs_result *res, struct gw_err *err)
{
  gw_normalize_init();
  memset(res, 0, sizeof *res);
  struct ev_builder b = {.a = a, .res = res};
  struct span_tab spans = {0};
  for (size_t ri = 0; ri < req->n_resource_logs; ri++) {
    GwResourceLogs *rl = req->resource_logs[ri];
    const char *service = rl->resource ? attr_str(rl->resource->attributes, rl->resource->n_attributes, "service.name")
                                       : NULL;
    for (size_t si = 0; si < rl->n_scope_logs; si++) {
      GwScopeLogs *sl = rl->scope_logs[si];
      size_t w = 0;
      for (size_t k = 0; k < sl->n_log_records; k++) {
        GwLogRecord *l = sl->log_records[k];
        char why[96];
        const char *bad = check_ids(l, why, sizeof why);
        const char *name = bad ? NULL : gw_log_event_name(l);
        bool genai = name && !strncmp(name, "gen_ai.", 7);
        uint64_t t = l->time_unix_nano ? l->time_unix_nano : l->observed_time_unix_nano;
        if (!bad && genai && opts) {
          if (opts->min_start_ns && t < opts->min_start_ns)
            bad = "timeUnixNano: before the retention window";
          else if (opts->max_start_ns && t > opts->max_start_ns)
            bad = "timeUnixNano: more than 1 day in the future";
        }
        res->nlogs++;
        if (bad) {
          if (!res->nrejected++)
            snprintf(res->reject_msg, sizeof res->reject_msg,
                     "resourceLogs[%zu].scopeLogs[%zu].logRecords[%zu].%s", ri, si, k, bad);
          continue;
        }
        sl->log_records[w++] = l;
        if (!genai)
          continue;
        res->ngenai++;
        res->has_genai = true;
        if (l->trace_id.len != 16 || l->span_id.len != 8 || all_zero(l->trace_id.data, 16) ||
            all_zero(l->span_id.data, 8)) {
          res->nunjoinable++;
          continue;
        }
        struct gw_event proto;
        memset(&proto, 0, sizeof proto);
        gw_hex(proto.trace_id, l->trace_id.data, 16);
        gw_hex(proto.span_id, l->span_id.data, 8);
        proto.time_ns = t;
        proto.event_name = name;
        proto.service_name = service;
        proto.log = l;
        /* seq: this record's place among the span's records in the request, so messages that share a
         * timestamp (the instrumentation stamps a call's messages alike) keep the order they were sent. */
        struct span_seen *seen = span_find(&spans, a, proto.trace_id, proto.span_id);
        if (!seen)
          goto oom;
        int64_t ord = seen->records++;
        build(&b, l, name, &proto, ord * 1000);
        if (b.oom)
          goto oom;
      }
      sl->n_log_records = w;
    }
  }
  prompt_hashes(res, a, opts ? opts->history_cache : NULL, &b.oom);
  if (b.oom)
    goto oom;
  return GW_OK;
oom:
  return gw_err_set(err, GW_ERR(TOO_LARGE), "request needs more memory than the per-request limit");
}

gw_rc gw_events_finish(struct gw_event *evs, size_t n, struct gw_arena *a)
{
  for (size_t i = 0; i < n; i++) {
    const GwLogRecord *l = evs[i].log;
    if (!l)
      continue;
    evs[i].attributes = nz_render_kvs(a, l->attributes, l->n_attributes, NULL);
    if (!evs[i].attributes)
      return GW_ERR(TOO_LARGE);
  }
  return GW_OK;
}
