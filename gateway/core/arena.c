/*
 * arena.c: a chunked bump allocator with a byte cap, in the spirit of nginx's ngx_palloc.
 * Chunks grow geometrically (16 KiB up to 1 MiB); a large allocation gets a chunk of its own.
 * The cap counts bytes handed out plus chunk slack, so the memory a hostile request can pin is bounded;
 * an optional budget shared between arenas (the receivers' in-flight bytes) is charged the same bytes,
 * before the chunk is allocated.
 * Chunks of 1 MiB and more are anonymous mappings: munmap hands them back to the system at once, where
 * malloc's free lists would keep a large request's pages resident long after it. "Big" buffers
 * (gw_arena_alloc_big) are mappings that mremap resizes in place or by moving page tables, never by a
 * copy that holds both sizes.
 * Warm pool: faulting fresh pages in is most of what a large request costs (about 8 ms per MiB on a
 * virtual machine, where copying a warm MiB takes 0.07 ms), so the receiver threads' arenas
 * (gw_arena_thread) give their mapped chunks to one pool all threads share, of at most gw_arena_set_warm
 * bytes, and take chunks from it before mapping new ones. The pool holds up to GW_ARENA_WARM_MAX while
 * requests keep it in use, and is cut back to GW_ARENA_WARM_REST once they stop (gw_arena_warm_trim, from
 * the trimming thread: core/memtrim.h), so what stays resident at rest is what it was with the smaller pool. A request that needs a mapping the pool cannot
 * give first unmaps pooled chunks of at least that size, so the pool and the requests' own chunks never
 * hold more than the larger of the two: the peak stays what it was, and at most the pool's size stays
 * resident once the requests are over.
 */
#include "core/arena.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/mman.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define JS512 1 /* 64-byte JSON string scans and escaping with AVX-512, chosen at run time */
#endif

#define ALIGN 16
#define FIRST_CHUNK (16 * 1024)
#define MAX_CHUNK (1024 * 1024)

#define MAP_MIN MAX_CHUNK /* chunks of this size and more are mappings */
/* A larger chunk (one allocation of its own: the encoded records, the re-packed request) is rounded up to
 * this, so that the next request's, a few bytes larger, still fits the pooled one: sized exactly, half of
 * them missed the pool and were faulted in afresh. */
#define MAP_GRAIN (64 * 1024)

enum chunk_kind { C_HEAP, C_MAPPED, C_BIG };

struct chunk {
  struct chunk *next;
  size_t size, used;
  enum chunk_kind kind; /* C_BIG: one gw_arena_alloc_big buffer, never reused */
  _Alignas(ALIGN) unsigned char data[];
};

#define KEEP_MAX (4 * 1024 * 1024) /* chunk bytes a reset arena keeps for the next request, by default */

struct gw_arena {
  struct chunk *head;  /* current chunk; older ones follow */
  struct chunk *spare; /* chunks kept by reset, reused before malloc */
  size_t cap, total;  /* total: bytes of chunk data allocated */
  size_t keep;        /* chunk bytes reset keeps (KEEP_MAX unless gw_arena_keep said otherwise) */
  size_t next_size;
  void *last;         /* most recent allocation, for gw_arena_grow */
  size_t last_n;
  bool exhausted;
  bool refused;       /* the last failure was the budget's */
  bool has_budget;
  bool pooled;        /* a receiver thread's arena: its mapped chunks go through the warm pool */
  struct gw_arena_budget budget;
  size_t charged;     /* taken from the budget: at least total while there is one */
  ProtobufCAllocator pb;
};

static size_t round_up(size_t n) { return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1); }

/* Bytes of the mapping that holds a chunk of size bytes. */
static size_t map_len(size_t size)
{
  size_t page = 4096;
  return (sizeof(struct chunk) + size + page - 1) & ~(page - 1);
}

static struct chunk *chunk_alloc(size_t size, enum chunk_kind kind)
{
  struct chunk *c;
  if (kind == C_HEAP) {
    c = malloc(sizeof *c + size);
  } else {
    c = mmap(NULL, map_len(size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (c == MAP_FAILED)
      c = NULL;
  }
  if (c)
    c->kind = kind;
  return c;
}

static void chunk_free(struct chunk *c)
{
  if (c->kind == C_HEAP)
    free(c);
  else
    munmap(c, map_len(c->size));
}

/* ---- the warm pool (top comment) ---- */

static struct {
  pthread_mutex_t mu;
  struct chunk *head; /* C_MAPPED chunks, used = 0 */
  size_t bytes;       /* their sizes */
  size_t limit;       /* gw_arena_set_warm */
  size_t rest;        /* what gw_arena_warm_trim leaves: min(limit, GW_ARENA_WARM_REST) */
} warm = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, GW_ARENA_WARM_MAX, GW_ARENA_WARM_REST};
static void (*_Atomic warm_hook)(void);

/* The smallest pooled chunk of at least need bytes and at most room (and twice need, or big when more: a
 * much larger one would hold memory the request cannot use), or NULL. */
static struct chunk *warm_take_upto(size_t need, size_t room, size_t big)
{
  pthread_mutex_lock(&warm.mu);
  struct chunk **best = NULL;
  for (struct chunk **pp = &warm.head; *pp; pp = &(*pp)->next) {
    size_t sz = (*pp)->size;
    if (sz >= need && sz <= room && (sz / 2 <= need || sz <= big) && (!best || sz < (*best)->size))
      best = pp;
  }
  struct chunk *c = NULL;
  if (best) {
    c = *best;
    *best = c->next;
    warm.bytes -= c->size;
  }
  pthread_mutex_unlock(&warm.mu);
  return c;
}

static struct chunk *warm_take(size_t need, size_t room) { return warm_take_upto(need, room, 0); }

/* A new mapping of size bytes is about to be made: unmap pooled chunks of at least that total first. */
static void warm_evict(size_t size)
{
  struct chunk *drop = NULL;
  size_t freed = 0;
  pthread_mutex_lock(&warm.mu);
  while (warm.head && freed < size) {
    struct chunk *c = warm.head;
    warm.head = c->next;
    warm.bytes -= c->size;
    freed += c->size;
    c->next = drop;
    drop = c;
  }
  pthread_mutex_unlock(&warm.mu);
  while (drop) {
    struct chunk *n = drop->next;
    munmap(drop, map_len(drop->size));
    drop = n;
  }
}

/* A reset arena's mapped chunk: into the pool if it fits, else back to the system. The hook hears of a pool
 * left above its size at rest. */
static void warm_put(struct chunk *c)
{
  pthread_mutex_lock(&warm.mu);
  if (warm.bytes + c->size <= warm.limit) {
    c->used = 0;
    c->next = warm.head;
    warm.head = c;
    warm.bytes += c->size;
    c = NULL;
  }
  bool over = warm.bytes > warm.rest;
  pthread_mutex_unlock(&warm.mu);
  if (c)
    munmap(c, map_len(c->size));
  void (*hook)(void) = warm_hook;
  if (over && hook)
    hook();
}

size_t gw_arena_warm_trim(void)
{
  struct chunk *drop = NULL;
  size_t freed = 0;
  pthread_mutex_lock(&warm.mu);
  while (warm.head && warm.bytes > warm.rest) {
    struct chunk *c = warm.head;
    warm.head = c->next;
    warm.bytes -= c->size;
    freed += c->size;
    c->next = drop;
    drop = c;
  }
  pthread_mutex_unlock(&warm.mu);
  while (drop) {
    struct chunk *n = drop->next;
    munmap(drop, map_len(drop->size));
    drop = n;
  }
  return freed;
}

void gw_arena_set_warm_hook(void (*hook)(void)) { warm_hook = hook; }

/* ---- request bodies' mappings through the warm pool ---- */

#define BODY_ANY (1024 * 1024)

/* A body's usable size for size bytes: its mapping rounded up to 64 KiB, so that bodies of about the same
 * size (a client's batches) can use each other's pooled mappings. */
static size_t body_size(size_t size)
{
  size_t g = 64 * 1024;
  return ((sizeof(struct chunk) + size + g - 1) & ~(g - 1)) - sizeof(struct chunk);
}

/* The chunk whose data a body pointer is. */
static struct chunk *body_chunk(void *p)
{
  return (struct chunk *)(void *)((unsigned char *)p - offsetof(struct chunk, data));
}

void *gw_warm_map(size_t size, size_t *mapped)
{
  size_t need = body_size(size ? size : 1);
  /* A body whose size is not known yet (chunked, or HTTP/2 without content-length) starts at 64 KiB and
   * grows: any pooled mapping up to BODY_ANY serves it, so it grows in place instead of moving and
   * replacing pooled memory at each doubling. */
  struct chunk *c = warm_take_upto(need, SIZE_MAX, BODY_ANY);
  if (!c) {
    warm_evict(need);
    if (!(c = chunk_alloc(need, C_MAPPED)))
      return NULL;
    c->size = need;
  }
  c->used = 0;
  c->next = NULL;
  *mapped = c->size;
  return c->data;
}

void *gw_warm_remap(void *p, size_t mapped, size_t size, size_t *new_mapped)
{
  if (!p)
    return gw_warm_map(size, new_mapped);
  struct chunk *c = body_chunk(p);
  size_t need = body_size(size);
  if (need <= mapped) {
    *new_mapped = mapped;
    return p;
  }
  warm_evict(need - mapped);
  void *m = mremap(c, map_len(mapped), map_len(need), MREMAP_MAYMOVE);
  if (m == MAP_FAILED)
    return NULL;
  c = m;
  c->size = need;
  *new_mapped = need;
  return c->data;
}

void gw_warm_unmap(void *p, size_t mapped)
{
  if (!p)
    return;
  struct chunk *c = body_chunk(p);
  c->size = mapped;
  c->kind = C_MAPPED;
  warm_put(c);
}

void gw_arena_set_warm(size_t bytes)
{
  pthread_mutex_lock(&warm.mu);
  warm.limit = bytes < GW_ARENA_WARM_MAX ? bytes : GW_ARENA_WARM_MAX;
  warm.rest = warm.limit < GW_ARENA_WARM_REST ? warm.limit : GW_ARENA_WARM_REST;
  pthread_mutex_unlock(&warm.mu);
  warm_evict(SIZE_MAX / 2); /* what no longer fits goes */
}

size_t gw_arena_warm_bytes(void)
{
  pthread_mutex_lock(&warm.mu);
  size_t n = warm.bytes;
  pthread_mutex_unlock(&warm.mu);
  return n;
}

/* May the arena's chunk bytes grow to total? Within the cap, and with a budget once taken from it. */
static bool charge(struct gw_arena *a, size_t total)
{
  if (total > a->cap) {
    a->exhausted = true;
    a->refused = false;
    return false;
  }
  if (a->has_budget && total > a->charged) {
    if (!a->budget.take(a->budget.ctx, total - a->charged)) {
      a->exhausted = true;
      a->refused = true;
      return false;
    }
    a->charged = total;
  }
  return true;
}

static struct chunk *chunk_new(struct gw_arena *a, size_t need)
{
  size_t size = a->next_size;
  if (size < need)
    size = need > MAX_CHUNK ? (need + MAP_GRAIN - 1) & ~(size_t)(MAP_GRAIN - 1) : round_up(need);
  if (a->total + size > a->cap) {
    /* Over the cap: allow a chunk just big enough, if that still fits. */
    size = round_up(need);
    if (a->total + size > a->cap) {
      a->exhausted = true;
      a->refused = false;
      return NULL;
    }
  }
  struct chunk *c = NULL;
  bool from_warm = false;
  for (struct chunk **pp = &a->spare; *pp; pp = &(*pp)->next) {
    if ((*pp)->size >= need && a->total + (*pp)->size <= a->cap) {
      c = *pp;
      *pp = c->next;
      size = c->size;
      break;
    }
  }
  if (!c && a->pooled && size >= MAP_MIN && (c = warm_take(size, a->cap - a->total))) {
    size = c->size;
    from_warm = true;
  }
  if (!charge(a, a->total + size)) {
    if (c && from_warm) {
      warm_put(c);
    } else if (c) {
      c->next = a->spare;
      a->spare = c;
    }
    return NULL;
  }
  if (!c && a->pooled && size >= MAP_MIN)
    warm_evict(size);
  if (!c)
    c = chunk_alloc(size, size >= MAP_MIN ? C_MAPPED : C_HEAP);
  if (!c) {
    a->exhausted = true;
    return NULL;
  }
  c->size = size;
  c->used = 0;
  c->next = a->head;
  a->head = c;
  a->total += size;
  if (a->next_size < MAX_CHUNK)
    a->next_size *= 2;
  return c;
}

static void *pb_alloc(void *ctx, size_t n) { return gw_arena_alloc(ctx, n); }
static void pb_free(void *ctx, void *p) { (void)ctx, (void)p; }

struct gw_arena *gw_arena_create(size_t cap)
{
  struct gw_arena *a = gw_calloc(1, sizeof *a);
  a->cap = cap ? cap : (size_t)1 << 30;
  a->next_size = FIRST_CHUNK;
  a->keep = KEEP_MAX;
  a->pb.alloc = pb_alloc;
  a->pb.free = pb_free;
  a->pb.allocator_data = a;
  return a;
}

/* Give back all the budget taken, and drop the budget. */
static void budget_end(struct gw_arena *a)
{
  if (a->has_budget && a->charged)
    a->budget.give(a->budget.ctx, a->charged);
  a->has_budget = false;
  a->charged = 0;
}

void gw_arena_destroy(struct gw_arena *a)
{
  if (!a)
    return;
  budget_end(a);
  for (int list = 0; list < 2; list++) {
    struct chunk *c = list ? a->spare : a->head;
    while (c) {
      struct chunk *n = c->next;
      chunk_free(c);
      c = n;
    }
  }
  free(a);
}

void gw_arena_reset(struct gw_arena *a)
{
  /* Keep up to a->keep bytes of chunks (largest first come from the newest end) so the next request
   * reuses memory already faulted in instead of mapping it again; free the rest. */
  size_t kept = 0;
  for (struct chunk *s2 = a->spare; s2; s2 = s2->next)
    kept += s2->size;
  budget_end(a);
  struct chunk *c = a->head;
  while (c) {
    struct chunk *n = c->next;
    if (a->pooled && c->kind == C_MAPPED) {
      warm_put(c);
    } else if (c->kind != C_BIG && kept + c->size <= a->keep) {
      c->used = 0;
      c->next = a->spare;
      a->spare = c;
      kept += c->size;
    } else {
      chunk_free(c);
    }
    c = n;
  }
  a->head = NULL;
  a->total = 0;
  a->next_size = FIRST_CHUNK;
  a->last = NULL;
  a->last_n = 0;
  a->exhausted = false;
  a->refused = false;
}

bool gw_arena_set_budget(struct gw_arena *a, const struct gw_arena_budget *b)
{
  budget_end(a);
  if (!b)
    return true;
  a->budget = *b;
  a->has_budget = true;
  a->charged = 0;
  if (charge(a, a->total))
    return true;
  a->has_budget = false;
  return false;
}

/* n more bytes would pass the cap (checked before any sum that could wrap). */
static bool over_cap(struct gw_arena *a, size_t n)
{
  if (n <= a->cap - a->total)
    return false;
  a->exhausted = true;
  a->refused = false;
  return true;
}

int gw_arena_expect(struct gw_arena *a, size_t n)
{
  if (over_cap(a, n))
    return -1;
  if (!charge(a, a->total + n))
    return -2;
  return 0;
}

bool gw_arena_refused(const struct gw_arena *a) { return a->refused; }

size_t gw_arena_room(const struct gw_arena *a) { return a->total < a->cap ? a->cap - a->total : 0; }

bool gw_arena_borrow(struct gw_arena *a, size_t n)
{
  if (over_cap(a, n) || !charge(a, a->total + n))
    return false;
  a->total += n;
  return true;
}

void gw_arena_unborrow(struct gw_arena *a, size_t n) { a->total -= n < a->total ? n : a->total; }

void *gw_arena_alloc_big(struct gw_arena *a, size_t n)
{
  if (over_cap(a, n))
    return NULL;
  size_t size = round_up(n ? n : 1);
  if (!charge(a, a->total + size))
    return NULL;
  if (a->pooled)
    warm_evict(size); /* new memory replaces pooled memory (top comment) */
  struct chunk *c = chunk_alloc(size, C_BIG);
  if (!c) {
    a->exhausted = true;
    return NULL;
  }
  c->size = c->used = size;
  /* after the current chunk, whose free space small allocations keep using */
  if (a->head) {
    c->next = a->head->next;
    a->head->next = c;
  } else {
    c->next = NULL;
    a->head = c;
  }
  a->total += size;
  return c->data;
}

void *gw_arena_resize_big(struct gw_arena *a, void *p, size_t n)
{
  struct chunk **pp = &a->head;
  while (*pp && (void *)(*pp)->data != p)
    pp = &(*pp)->next;
  struct chunk *c = *pp;
  if (!c || c->kind != C_BIG)
    abort(); /* not a big buffer of this arena: a bug, not input */
  if (n > c->size && (over_cap(a, n - c->size) || !charge(a, a->total + (round_up(n) - c->size))))
    return NULL;
  size_t size = round_up(n ? n : 1);
  size_t old_len = map_len(c->size), new_len = map_len(size);
  if (a->pooled && new_len > old_len)
    warm_evict(new_len - old_len);
  if (old_len != new_len) {
    void *m = mremap(c, old_len, new_len, MREMAP_MAYMOVE);
    if (m == MAP_FAILED) {
      a->exhausted = true;
      return NULL;
    }
    c = m;
    *pp = c;
  }
  a->total = a->total - c->size + size;
  c->size = c->used = size;
  return c->data;
}

void gw_arena_mark(const struct gw_arena *a, struct gw_arena_mark *m)
{
  m->head = a->head;
  m->used = a->head ? a->head->used : 0;
  m->total = a->total;
  m->next_size = a->next_size;
  m->charged = a->charged;
  m->last = a->last;
  m->last_n = a->last_n;
  m->exhausted = a->exhausted;
  m->refused = a->refused;
}

void gw_arena_rewind(struct gw_arena *a, const struct gw_arena_mark *m)
{
  size_t kept = 0;
  for (struct chunk *s = a->spare; s; s = s->next)
    kept += s->size;
  /* chunk_new puts new chunks in front: those before the mark's chunk are the ones added since */
  while (a->head && a->head != m->head) {
    struct chunk *c = a->head;
    a->head = c->next;
    a->total -= c->size;
    if (a->pooled && c->kind == C_MAPPED) {
      warm_put(c);
    } else if (c->kind == C_HEAP && kept + c->size <= a->keep) {
      c->used = 0;
      c->next = a->spare;
      a->spare = c;
      kept += c->size;
    } else {
      chunk_free(c);
    }
  }
  if (a->head != m->head || a->total != m->total)
    abort(); /* not a mark of this arena, or a big buffer or borrow since: a bug, not input */
  if (a->head)
    a->head->used = m->used;
  a->next_size = m->next_size;
  a->last = m->last;
  a->last_n = m->last_n;
  a->exhausted = m->exhausted;
  a->refused = m->refused;
  if (a->has_budget && a->charged > m->charged) {
    a->budget.give(a->budget.ctx, a->charged - m->charged);
    a->charged = m->charged;
  }
}

void gw_arena_keep(struct gw_arena *a, size_t bytes) { a->keep = bytes; }

/* The calling thread's arena, reset (see arena.h). */
static pthread_key_t thread_key;
static pthread_once_t thread_once = PTHREAD_ONCE_INIT;

static void thread_arena_free(void *p) { gw_arena_destroy(p); }
static void thread_key_init(void) { pthread_key_create(&thread_key, thread_arena_free); }

struct gw_arena *gw_arena_thread(size_t cap)
{
  pthread_once(&thread_once, thread_key_init);
  struct gw_arena *a = pthread_getspecific(thread_key);
  if (!a) {
    a = gw_arena_create(cap);
    a->pooled = true;
    pthread_setspecific(thread_key, a);
  } else {
    gw_arena_reset(a);
  }
  a->cap = cap ? cap : (size_t)1 << 30;
  return a;
}

void *gw_arena_alloc(struct gw_arena *a, size_t n)
{
  if (n > a->cap) {
    a->exhausted = true;
    a->refused = false;
    return NULL;
  }
  size_t need = round_up(n ? n : 1);
  struct chunk *c = a->head;
  if (!c || c->size - c->used < need) {
    c = chunk_new(a, need);
    if (!c)
      return NULL;
  }
  void *p = c->data + c->used;
  c->used += need;
  a->last = p;
  a->last_n = need;
  return p;
}

void *gw_arena_calloc(struct gw_arena *a, size_t n)
{
  void *p = gw_arena_alloc(a, n);
  if (p)
    memset(p, 0, n);
  return p;
}

void *gw_arena_grow(struct gw_arena *a, void *p, size_t old_n, size_t new_n)
{
  if (p && p == a->last && a->head) {
    struct chunk *c = a->head;
    size_t need = round_up(new_n);
    size_t start = (size_t)((unsigned char *)p - c->data);
    if (start + need <= c->size) {
      c->used = start + need;
      a->last_n = need;
      return p;
    }
  }
  void *q = gw_arena_alloc(a, new_n);
  if (q && p)
    memcpy(q, p, old_n < new_n ? old_n : new_n);
  return q;
}

char *gw_arena_strndup(struct gw_arena *a, const char *s, size_t n)
{
  char *p = gw_arena_alloc(a, n + 1);
  if (!p)
    return NULL;
  memcpy(p, s, n);
  p[n] = 0;
  return p;
}

char *gw_arena_strdup(struct gw_arena *a, const char *s) { return gw_arena_strndup(a, s, strlen(s)); }

char *gw_arena_printf(struct gw_arena *a, const char *fmt, ...)
{
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *p = n >= 0 ? gw_arena_alloc(a, (size_t)n + 1) : NULL;
  if (p)
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  return p;
}

size_t gw_arena_used(const struct gw_arena *a) { return a->total; }

size_t gw_arena_kept(const struct gw_arena *a)
{
  size_t n = 0;
  for (const struct chunk *c = a->spare; c; c = c->next)
    n += c->size;
  return n;
}
bool gw_arena_exhausted(const struct gw_arena *a) { return a->exhausted; }
ProtobufCAllocator *gw_arena_pb_allocator(struct gw_arena *a) { return &a->pb; }

void gw_sb_init(struct gw_sb *sb, struct gw_arena *a)
{
  sb->a = a;
  sb->buf = NULL;
  sb->len = sb->cap = 0;
  sb->oom = false;
}

static bool sb_reserve(struct gw_sb *sb, size_t more)
{
  if (sb->oom)
    return false;
  if (sb->len + more + 1 <= sb->cap)
    return true;
  size_t ncap = sb->cap ? sb->cap * 2 : 256;
  while (ncap < sb->len + more + 1)
    ncap *= 2;
  char *n = gw_arena_grow(sb->a, sb->buf, sb->len, ncap);
  if (!n) {
    sb->oom = true;
    return false;
  }
  sb->buf = n;
  sb->cap = ncap;
  return true;
}

bool gw_sb_reserve(struct gw_sb *sb, size_t n)
{
  if (sb->oom)
    return false;
  if (sb->len + n + 1 <= sb->cap)
    return true;
  size_t ncap = sb->len + n + 1; /* exactly: the caller knows what is coming */
  char *p = gw_arena_grow(sb->a, sb->buf, sb->len, ncap);
  if (!p) {
    sb->oom = true;
    return false;
  }
  sb->buf = p;
  sb->cap = ncap;
  return true;
}

void gw_sb_putn(struct gw_sb *sb, const char *s, size_t n)
{
  if (!sb_reserve(sb, n))
    return;
  memcpy(sb->buf + sb->len, s, n);
  sb->len += n;
}

void gw_sb_putc_slow(struct gw_sb *sb, char c)
{
  if (!sb_reserve(sb, 1))
    return;
  sb->buf[sb->len++] = c;
}

void gw_sb_i64(struct gw_sb *sb, int64_t v)
{
  char tmp[24], *e = tmp + sizeof tmp, *p = e;
  uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do {
    *--p = (char)('0' + m % 10);
    m /= 10;
  } while (m);
  if (v < 0)
    *--p = '-';
  gw_sb_putn(sb, p, (size_t)(e - p));
}

void gw_sb_printf(struct gw_sb *sb, const char *fmt, ...)
{
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)n < sizeof tmp) {
    gw_sb_putn(sb, tmp, (size_t)n);
    return;
  }
  if (!sb_reserve(sb, (size_t)n))
    return;
  va_start(ap, fmt);
  vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  sb->len += (size_t)n;
}

/* Bytes JSON needs escaped: controls, '"' and '\\'. */
static bool needs_escape(unsigned char c) { return c < 0x20 || c == '"' || c == '\\'; }

#ifdef __SSE2__
/* The bytes of x that JSON needs escaped, one bit each (byte 0 the lowest), and with ascii the bytes >= 0x80
 * too. */
static unsigned escape_mask(__m128i x, bool ascii)
{
  const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'), ctl = _mm_set1_epi8(0x1f);
  __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, bslash)),
                           _mm_cmpeq_epi8(_mm_max_epu8(x, ctl), ctl)); /* x <= 0x1f, unsigned */
  unsigned mask = (unsigned)_mm_movemask_epi8(m);
  if (ascii)
    mask |= (unsigned)_mm_movemask_epi8(x);
  return mask;
}

/* The last r bytes of a string, 4 <= r < 16, in one register: its first and last 8 (or 4) bytes, which
 * overlap when r is not 16 (or 8). Returns the mask of the bytes to escape over those 16 (or 8) lanes, *x
 * the register; tail_pos maps a lane back to its byte. No byte past the r is read. */
static unsigned tail_mask(const char *p, size_t r, bool ascii, __m128i *x)
{
  if (r >= 8) {
    *x = _mm_unpacklo_epi64(_mm_loadl_epi64((const __m128i *)(const void *)p),
                            _mm_loadl_epi64((const __m128i *)(const void *)(p + r - 8)));
    return escape_mask(*x, ascii);
  }
  uint32_t lo, hi;
  memcpy(&lo, p, 4);
  memcpy(&hi, p + r - 4, 4);
  *x = _mm_unpacklo_epi32(_mm_cvtsi32_si128((int)lo), _mm_cvtsi32_si128((int)hi));
  return escape_mask(*x, ascii) & 0xff; /* the zero lanes above would count as control bytes */
}

/* The byte of lane `lane` (a set bit of tail_mask's mask, the lowest one): lanes of the first half are the
 * first bytes; the second half holds the last bytes, and its lowest set lane is past the first half's
 * bytes whenever the first half has none set. */
static size_t tail_pos(size_t r, unsigned lane)
{
  size_t half = r >= 8 ? 8 : 4;
  return lane < half ? lane : r - 2 * half + lane;
}

/* Copy the leading run of s that needs no escaping to w, 16 bytes at a time; returns its length. Bytes
 * past the run may be written too, never more than n: w must have room for n bytes. */
static size_t copy_run(char *w, const char *s, size_t n)
{
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
    _mm_storeu_si128((__m128i *)(void *)(w + i), x);
    unsigned mask = escape_mask(x, false);
    if (mask)
      return i + (size_t)__builtin_ctz(mask);
  }
  size_t r = n - i;
  if (r >= 4) {
    __m128i x;
    unsigned mask = tail_mask(s + i, r, false, &x);
    if (r >= 8) {
      _mm_storel_epi64((__m128i *)(void *)(w + i), x);
      _mm_storel_epi64((__m128i *)(void *)(w + n - 8), _mm_unpackhi_epi64(x, x));
    } else {
      uint32_t lo = (uint32_t)_mm_cvtsi128_si32(x), hi = (uint32_t)_mm_cvtsi128_si32(_mm_srli_si128(x, 4));
      memcpy(w + i, &lo, 4);
      memcpy(w + n - 4, &hi, 4);
    }
    return mask ? i + tail_pos(r, (unsigned)__builtin_ctz(mask)) : n;
  }
  for (; i < n && !needs_escape((unsigned char)s[i]); i++)
    w[i] = s[i];
  return i;
}
#else
/* Copy the leading run of s that needs no escaping to w; returns its length. */
static size_t copy_run(char *w, const char *s, size_t n)
{
  size_t i = 0;
  for (; i < n && !needs_escape((unsigned char)s[i]); i++)
    w[i] = s[i];
  return i;
}
#endif

bool gw_json_no_avx512;

#ifdef JS512
#define JS_TARGET __attribute__((target("avx512f,avx512bw,avx512vbmi2,bmi2")))

static char *put_escape(char *w, unsigned char c);
static bool sb_room(struct gw_sb *sb, char **w, size_t more);

/* Whether the CPU has AVX-512 F, BW and VBMI2 and BMI2 (PDEP/PEXT, fast on every core with AVX-512) and the
 * OS saves their state (libgcc checks XCR0). Asked once; a race only computes the same answer twice. */
static bool js512(void)
{
  static int have = -1;
  int h = __atomic_load_n(&have, __ATOMIC_RELAXED);
  if (h < 0) {
    __builtin_cpu_init();
    h = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vbmi2") && __builtin_cpu_supports("bmi2");
    __atomic_store_n(&have, h, __ATOMIC_RELAXED);
  }
  return h && !gw_json_no_avx512;
}

static inline uint64_t lanes(size_t r) { return r >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << r) - 1; }

/* The bytes JSON needs escaped among the lanes of x, one bit each (and with ascii those >= 0x80). */
JS_TARGET static uint64_t escape_mask64(__m512i x, bool ascii)
{
  uint64_t m = _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8('"')) | _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8('\\')) |
               _mm512_cmple_epu8_mask(x, _mm512_set1_epi8(0x1f));
  if (ascii)
    m |= _mm512_movepi8_mask(x);
  return m;
}

/* gw_json_plain 64 bytes a step; the last step a masked load, which reads nothing past n. */
JS_TARGET static size_t plain64(const char *s, size_t n, bool ascii)
{
  for (size_t i = 0; i < n; i += 64) {
    uint64_t k = lanes(n - i), m = escape_mask64(_mm512_maskz_loadu_epi8(k, s + i), ascii) & k;
    if (m)
      return i + (size_t)__builtin_ctzll(m);
  }
  return n;
}

/*
 * gw_sb_json_str 64 bytes a step. A step with nothing to escape is copied whole. Otherwise each half of 32
 * bytes with escapes of two bytes only ('"', '\\', and '\n', '\r', '\t', which become letters) is written in
 * one expand: the half's bytes spread over 32 + k lanes, a backslash in the lane before each of its k
 * escaped bytes; a half holding another control byte (six bytes out) goes byte by byte. Room, before a
 * step with escapes: the rest of s and the quote (what a plain step writes), plus what this step's
 * escapes add (at most one byte a byte, five with other control bytes).
 */
JS_TARGET static void json_str64(struct gw_sb *sb, const char *s, size_t n)
{
  if (!sb_reserve(sb, n + 2))
    return;
  char *w = sb->buf + sb->len;
  *w++ = '"';
  const __m512i bslash = _mm512_set1_epi8('\\');
  for (size_t i = 0; i < n;) {
    size_t r = n - i, step = r < 64 ? r : 64;
    uint64_t k = lanes(r);
    __m512i x = _mm512_maskz_loadu_epi8(k, s + i);
    uint64_t m = escape_mask64(x, false) & k;
    if (!m) {
      _mm512_mask_storeu_epi8(w, k, x);
      w += step;
      i += step;
      continue;
    }
    uint64_t nl = _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8('\n')), cr = _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8('\r')),
             tab = _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8('\t'));
    uint64_t wide = _mm512_cmple_epu8_mask(x, _mm512_set1_epi8(0x1f)) & ~(nl | cr | tab) & k;
    if (!sb_room(sb, &w, (n - i) + (wide ? 5 : 1) * step + 1))
      return;
    for (unsigned h = 0; h < 2 && 32 * h < step; h++) {
      size_t hn = step - 32 * h < 32 ? step - 32 * h : 32;
      uint32_t hm = (uint32_t)(m >> (32 * h)) & (uint32_t)lanes(hn);
      if (!hm) {
        memcpy(w, s + i + 32 * h, hn);
        w += hn;
        continue;
      }
      if ((uint32_t)(wide >> (32 * h))) {
        for (size_t j = 0; j < hn; j++) {
          unsigned char c = (unsigned char)s[i + 32 * h + j];
          if (needs_escape(c))
            w = put_escape(w, c);
          else
            *w++ = (char)c;
        }
        continue;
      }
      /* The output lanes that take the source bytes (the others take backslashes): an escaped byte j
       * becomes a backslash and itself, any other just itself. Spread over two bits a byte (bit 2j: its
       * backslash is there; bit 2j + 1: always), the bits present squeezed together (PEXT) from the
       * pattern "backslash 0, byte 1" give the output's lanes in order. */
      uint64_t present = _pdep_u64(hm, 0x5555555555555555ull) | 0xaaaaaaaaaaaaaaaaull;
      uint64_t bytes = _pext_u64(0xaaaaaaaaaaaaaaaaull, present);
      size_t out = hn + (size_t)__builtin_popcount(hm);
      __m512i half = h ? _mm512_zextsi256_si512(_mm512_extracti64x4_epi64(x, 1)) : x;
      __m512i y = _mm512_mask_expand_epi8(bslash, bytes & lanes(out), half);
      y = _mm512_mask_mov_epi8(y, _mm512_cmpeq_epi8_mask(y, _mm512_set1_epi8('\n')), _mm512_set1_epi8('n'));
      y = _mm512_mask_mov_epi8(y, _mm512_cmpeq_epi8_mask(y, _mm512_set1_epi8('\r')), _mm512_set1_epi8('r'));
      y = _mm512_mask_mov_epi8(y, _mm512_cmpeq_epi8_mask(y, _mm512_set1_epi8('\t')), _mm512_set1_epi8('t'));
      _mm512_mask_storeu_epi8(w, lanes(out), y);
      w += out;
    }
    i += step;
  }
  *w++ = '"';
  sb->len = (size_t)(w - sb->buf);
}
#endif

size_t gw_json_plain(const char *s, size_t n, bool ascii)
{
#ifdef JS512
  if (n >= 16 && js512())
    return plain64(s, n, ascii);
#endif
  size_t i = 0;
#ifdef __SSE2__
  for (; i + 16 <= n; i += 16) {
    unsigned mask = escape_mask(_mm_loadu_si128((const __m128i *)(const void *)(s + i)), ascii);
    if (mask)
      return i + (size_t)__builtin_ctz(mask);
  }
  size_t r = n - i;
  if (r && n >= 16) {
    /* the last 16 bytes, of which the first 16 - r were found plain above */
    unsigned mask = escape_mask(_mm_loadu_si128((const __m128i *)(const void *)(s + n - 16)), ascii) >> (16 - r);
    return mask ? i + (size_t)__builtin_ctz(mask) : n;
  }
  if (r >= 4) {
    __m128i x;
    unsigned mask = tail_mask(s + i, r, ascii, &x);
    return mask ? i + tail_pos(r, (unsigned)__builtin_ctz(mask)) : n;
  }
#endif
  for (; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (needs_escape(c) || (ascii && c >= 0x80))
      break;
  }
  return i;
}

/* One byte JSON needs escaped, at w; returns the end. */
static char *put_escape(char *w, unsigned char c)
{
  static const char hex[] = "0123456789abcdef";
  *w++ = '\\';
  switch (c) {
  case '"': *w++ = '"'; break;
  case '\\': *w++ = '\\'; break;
  case '\n': *w++ = 'n'; break;
  case '\r': *w++ = 'r'; break;
  case '\t': *w++ = 't'; break;
  default:
    *w++ = 'u';
    *w++ = '0';
    *w++ = '0';
    *w++ = hex[c >> 4];
    *w++ = hex[c & 15];
  }
  return w;
}

/* Room for `more` bytes after w (keeping the NUL's byte): w moves with the buffer. False when out of room. */
static bool sb_room(struct gw_sb *sb, char **w, size_t more)
{
  if ((size_t)(sb->buf + sb->cap - 1 - *w) >= more)
    return true;
  sb->len = (size_t)(*w - sb->buf);
  if (!sb_reserve(sb, more))
    return false;
  *w = sb->buf + sb->len;
  return true;
}

void gw_sb_json_str(struct gw_sb *sb, const char *s, size_t n)
{
#ifdef JS512
  if (n >= 16 && js512()) {
    json_str64(sb, s, n);
    return;
  }
#endif
  /* Room for the common case (nothing to escape) at once. Invariant: room for the rest of s and the
   * closing quote, which is all copy_run writes; a cluster of bytes holding an escape first makes room for
   * its worst case (6 bytes out for each byte in). */
  if (!sb_reserve(sb, n + 2))
    return;
  char *w = sb->buf + sb->len;
  *w++ = '"';
  size_t i = 0;
  for (;;) {
    size_t run = copy_run(w, s + i, n - i);
    w += run;
    i += run;
    if (i == n)
      break;
    /* Escapes come in clusters (JSON inside a JSON string: a quote every few bytes): the next 16 bytes
     * are done one at a time before going back to the block scan. */
    size_t k = n - i < 16 ? n - i : 16;
    if (!sb_room(sb, &w, (n - i) + 5 * k + 1))
      return;
    for (size_t e = i + k; i < e; i++) {
      unsigned char c = (unsigned char)s[i];
      if (needs_escape(c))
        w = put_escape(w, c);
      else
        *w++ = (char)c;
    }
  }
  *w++ = '"';
  sb->len = (size_t)(w - sb->buf);
}

char *gw_sb_finish(struct gw_sb *sb)
{
  if (!sb_reserve(sb, 0))
    return NULL;
  sb->buf[sb->len] = 0;
  return sb->buf;
}
