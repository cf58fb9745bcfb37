/*
 * memtrim.h: give the heap's free memory back to the system after large requests.
 *
 * glibc's malloc keeps what is freed in its arenas (one per thread that allocates, up to 8 per core) for
 * the next allocation; an arena other than the main one only shrinks from its top. A large request's
 * malloc'd memory (gRPC core's message slices and read buffers, json-c documents) stays resident after it:
 * a burst of 8 MiB gRPC requests left the gateway at 2.2 GB RSS, idle. After a request of at least
 * GW_MEMTRIM_MIN bytes the receiver notes it; a thread then runs malloc_trim(0) shortly after (20 ms:
 * gRPC core frees the call's buffers after the answer; a burst costs one trim), off the request path.
 */
#ifndef GW_MEMTRIM_H
#define GW_MEMTRIM_H

#include <stddef.h>

#define GW_MEMTRIM_MIN (1024 * 1024)

/* Starts the trimming thread (main). Without it gw_memtrim_note does nothing. */
void gw_memtrim_start(void);
/* Stops and joins it. */
void gw_memtrim_stop(void);
/* A request of `bytes` (its body or message) is done: a trim follows when it is at least GW_MEMTRIM_MIN. */
void gw_memtrim_note(size_t bytes);
/* Trims done so far. */
unsigned long gw_memtrim_count(void);

#endif
