/*
 * memtrim.h: give the heap's free memory back to the system after large requests.
 *
 * glibc's malloc keeps what is freed in its arenas (one per thread that allocates, up to 8 per core) for
 * the next allocation; an arena other than the main one only shrinks from its top. A large request's
 * malloc'd memory (gRPC core's message slices and read buffers, json-c documents) stays resident after it:
 * a burst of 8 MiB gRPC requests left the gateway at 2.2 GB RSS, idle. After a request of at least
 * GW_MEMTRIM_MIN bytes the receiver notes it; a thread then runs malloc_trim(0) shortly after (20 ms:
 * gRPC core frees the call's buffers after the answer; a burst costs one trim), off the request path.
 * Trims are at most GW_MEMTRIM_INTERVAL_MS apart: a trim hands the free pages back and the next large
 * message faults them in again (about 8 ms per MiB on a VM), on gRPC core's threads, at normal priority, so
 * trimming after every call of a stream of large calls cost more than the calls' own decoding.
 */
#ifndef GW_MEMTRIM_H
#define GW_MEMTRIM_H

#include <stddef.h>
#include <stdint.h>

#define GW_MEMTRIM_MIN (1024 * 1024)
#define GW_MEMTRIM_QUIET_MS 20      /* a trim waits this long after the last note */
#define GW_MEMTRIM_INTERVAL_MS 1000 /* and trims are at least this far apart */
/* The receivers' warm pool (core/arena.h) grows past its size at rest while requests use it; the same
 * thread cuts it back once no chunk has come back to it for this long. */
#define GW_MEMTRIM_POOL_QUIET_MS 1000

/* Starts the trimming thread (main). Without it gw_memtrim_note does nothing. */
void gw_memtrim_start(void);
/* Stops and joins it. */
void gw_memtrim_stop(void);
/* A request of `bytes` (its body or message) is done: a trim follows when it is at least GW_MEMTRIM_MIN. */
void gw_memtrim_note(size_t bytes);
/* When the pending trim is due (nanoseconds, any one clock): GW_MEMTRIM_QUIET_MS after the last note, but
 * no later than GW_MEMTRIM_INTERVAL_MS after the first note since the last trim (a stream of notes does not
 * put it off for ever), and no sooner than GW_MEMTRIM_INTERVAL_MS after the last trim (0: none yet). */
uint64_t gw_memtrim_due(uint64_t first_note, uint64_t last_note, uint64_t last_trim);
/* Trims done so far; and cuts of the warm pool back to its size at rest. */
unsigned long gw_memtrim_count(void);
unsigned long gw_memtrim_pool_count(void);

#endif
