/*
 * arena.h: the request arena. Everything decode, normalize, cost and redact produce for one request lives
 * here and dies in one gw_arena_destroy. Bounded: allocations past the cap fail (return NULL) and the
 * arena remembers it (gw_arena_exhausted), which the request turns into 413 / RESOURCE_EXHAUSTED.
 * Its growth can also be charged to a budget shared with other arenas (gw_arena_set_budget: the
 * receivers' in-flight bytes); a refusal there fails the allocation the same way, and gw_arena_refused
 * tells the two apart (503 / UNAVAILABLE, retry later).
 * Chunks of 1 MiB and more are mappings of their own, so a large request's memory goes back to the
 * system when it ends instead of staying in the allocator's free lists.
 * An arena belongs to one thread at a time.
 */
#ifndef GW_ARENA_H
#define GW_ARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/gw.h"

struct gw_arena;

/* Create an arena that hands out at most cap bytes in total (cap 0 = 1 GiB). Never returns NULL. */
struct gw_arena *gw_arena_create(size_t cap);
/* Free every allocation at once. NULL is fine. */
void gw_arena_destroy(struct gw_arena *a);
/* Forget every allocation, keeping up to 4 MiB of chunks (or what gw_arena_keep set) for reuse. */
void gw_arena_reset(struct gw_arena *a);
/* Let reset keep up to bytes of chunks instead of 4 MiB: for a long-lived arena whose every use is large
 * (an exporter's batch), so each use does not map and fault its memory in again. */
void gw_arena_keep(struct gw_arena *a, size_t bytes);

/* The calling thread's own arena, reset, with its cap set to cap: a receiver thread reuses the memory its
 * previous request faulted in (chunks under 1 MiB kept by the thread, mapped ones in the warm pool all
 * thread arenas share, arena.c). Freed when the thread exits. Do not destroy it; it is valid until the
 * thread's next gw_arena_thread call. */
struct gw_arena *gw_arena_thread(size_t cap);
/* The warm pool's size: GW_ARENA_WARM_MAX unless set lower (0: no pool); and what it holds now. A request
 * of 300 GenAI spans (820 KB) takes an 11 MB arena, 7 MB of it in mapped chunks, so two receiver threads and
 * their bodies need more than 16 MiB or they fault memory in afresh on every request (2x the CPU a span).
 * Once requests stop, gw_arena_warm_trim cuts the pool back to GW_ARENA_WARM_REST (or the size set, if
 * lower): what stays resident at rest. The hook (the trimming thread's, core/memtrim.c) is called when a
 * chunk given back leaves the pool above that; NULL: none. */
#define GW_ARENA_WARM_MAX ((size_t)32 << 20)
#define GW_ARENA_WARM_REST ((size_t)16 << 20)
void gw_arena_set_warm(size_t bytes);
size_t gw_arena_warm_bytes(void);
size_t gw_arena_warm_trim(void); /* the bytes unmapped */
void gw_arena_set_warm_hook(void (*hook)(void));

/* Request bodies' anonymous mappings, through the same warm pool: a body buffer of at least size bytes
 * (*mapped: its usable size), taken from the pool when it holds one of size to twice size (or up to 1 MiB:
 * a body of unknown size starts small and grows), else mapped anew after unmapping pooled memory of at
 * least that size (the peak stays what it was); grown by mremap (no copy holding both sizes); and given
 * back to the pool (or to the system when the pool is full). A body of the common size then reuses pages
 * already faulted in: faulting a 270 KB body in took more of the gateway's time than decoding it. NULL when
 * the system has no memory (the old buffer then unchanged). */
void *gw_warm_map(size_t size, size_t *mapped);
void *gw_warm_remap(void *p, size_t mapped, size_t size, size_t *new_mapped);
void gw_warm_unmap(void *p, size_t mapped);

/* A budget shared by several arenas. take(ctx, n): n more bytes, or false to refuse; give(ctx, n): n bytes
 * back. Both may be called from any thread holding an arena; they must be thread-safe. */
struct gw_arena_budget {
  bool (*take)(void *ctx, size_t n);
  void (*give)(void *ctx, size_t n);
  void *ctx;
};
/* Charge the arena's chunk bytes to b from now on (b is copied; NULL: no budget), first what it already
 * holds. Until the next reset or destroy, which give back everything taken and drop the budget. False
 * when b refused what the arena already holds (the arena then has no budget). */
bool gw_arena_set_budget(struct gw_arena *a, const struct gw_arena_budget *b);
/* Take n bytes of budget now for allocations to come (they draw on it before taking more): the cost of a
 * decode known in advance is refused at once rather than half-way. 0, or -1 when n is more than the cap
 * allows (gw_arena_exhausted), -2 when the budget refused (gw_arena_refused). */
int gw_arena_expect(struct gw_arena *a, size_t n);
/* The last failed allocation was refused by the budget, not by the cap. */
bool gw_arena_refused(const struct gw_arena *a);
/* Bytes the arena may still grow by before reaching its cap. */
size_t gw_arena_room(const struct gw_arena *a);

/* Count n bytes of memory the arena does not hold (a json-c document, which has no allocator hook)
 * against its cap and budget, as if allocated, until gw_arena_unborrow(a, n). False, with the arena
 * exhausted (and refused when the budget said no), when they do not fit: the caller must not build it. */
bool gw_arena_borrow(struct gw_arena *a, size_t n);
void gw_arena_unborrow(struct gw_arena *a, size_t n);

/* n bytes in a mapping of their own, which gw_arena_resize_big can grow or shrink without copying and
 * without holding the old and the new size at once (mremap): for a buffer whose final size is not known
 * in advance, such as inflate's output. Counted against the cap and budget like any allocation; freed
 * with the arena. NULL over the cap. */
void *gw_arena_alloc_big(struct gw_arena *a, size_t n);
/* Resize p (from gw_arena_alloc_big) to n bytes, keeping min(old, n) bytes of content; it may move. NULL
 * over the cap or budget, and then p is unchanged. */
void *gw_arena_resize_big(struct gw_arena *a, void *p, size_t n);

/* A point to come back to: gw_arena_rewind forgets every allocation made since gw_arena_mark and restores
 * the arena's accounting as it was then (bytes counted against the cap, budget charged: what was taken since
 * is given back, the exhausted and refused flags), so a decode that gives up half-way leaves no trace.
 * Chunks added since go where a reset puts them (kept for reuse, the warm pool, or freed). Only plain
 * allocations (gw_arena_alloc and what builds on it) may happen in between: no gw_arena_alloc_big,
 * borrow, expect or set_budget. */
struct gw_arena_mark {
  const void *head; /* the current chunk then */
  size_t used, total, next_size, charged, last_n;
  void *last;
  bool exhausted, refused;
};
void gw_arena_mark(const struct gw_arena *a, struct gw_arena_mark *m);
void gw_arena_rewind(struct gw_arena *a, const struct gw_arena_mark *m);

/* 16-byte aligned memory, or NULL when the cap would be passed (then gw_arena_exhausted is true). */
void *gw_arena_alloc(struct gw_arena *a, size_t n);
void *gw_arena_calloc(struct gw_arena *a, size_t n);
/* Grow the most recent allocation p in place when possible, else copy; NULL over the cap. */
void *gw_arena_grow(struct gw_arena *a, void *p, size_t old_n, size_t new_n);
char *gw_arena_strndup(struct gw_arena *a, const char *s, size_t n);
char *gw_arena_strdup(struct gw_arena *a, const char *s);
char *gw_arena_printf(struct gw_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

size_t gw_arena_used(const struct gw_arena *a);
/* Bytes of chunks a reset kept for reuse (tests). */
size_t gw_arena_kept(const struct gw_arena *a);
bool gw_arena_exhausted(const struct gw_arena *a);

/* A protobuf-c allocator backed by the arena (free is a no-op). Valid while the arena lives. */
ProtobufCAllocator *gw_arena_pb_allocator(struct gw_arena *a);

/* A string builder in the arena. On cap failure it stays consistent and sets oom; the result is NULL. */
struct gw_sb {
  struct gw_arena *a;
  char *buf;
  size_t len, cap;
  bool oom;
};
void gw_sb_init(struct gw_sb *sb, struct gw_arena *a);
/* Make room for n more bytes at once (one allocation instead of doublings); false when over the cap. */
bool gw_sb_reserve(struct gw_sb *sb, size_t n);
void gw_sb_putn(struct gw_sb *sb, const char *s, size_t n);
void gw_sb_putc_slow(struct gw_sb *sb, char c);
/* Inline so that the length of a literal is known at compile time and a byte with room costs a store. */
static inline void gw_sb_puts(struct gw_sb *sb, const char *s) { gw_sb_putn(sb, s, strlen(s)); }
static inline void gw_sb_putc(struct gw_sb *sb, char c)
{
  if (sb->len + 2 <= sb->cap)
    sb->buf[sb->len++] = c;
  else
    gw_sb_putc_slow(sb, c);
}
void gw_sb_printf(struct gw_sb *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* v in decimal, as printf's %lld writes it. */
void gw_sb_i64(struct gw_sb *sb, int64_t v);
/* Length of the leading run of s[0..n) that a JSON string literal may hold as it is: no '"', no '\\', no
 * control byte, and when ascii is set no byte >= 0x80 either. 16 bytes at a time with SSE2. */
size_t gw_json_plain(const char *s, size_t n, bool ascii);
/* Append s as a JSON string literal (quotes included), escaping as RFC 8259 requires. */
void gw_sb_json_str(struct gw_sb *sb, const char *s, size_t n);
/* Tests only: true keeps gw_json_plain and gw_sb_json_str to their 16-byte steps on a CPU with AVX-512. */
extern bool gw_json_no_avx512;
/* NUL-terminated result (owned by the arena), or NULL after an allocation failure. */
char *gw_sb_finish(struct gw_sb *sb);

#endif
