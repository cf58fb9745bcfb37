/*
 * lane.h: the large-request lane (issue 12). Requests whose size reaches receivers.large_request_bytes are
 * not processed on the receiver thread that received them but handed to receivers.large_request_threads
 * threads of their own, at most that many at a time, at a lower CPU priority (receivers.large_request_nice):
 * the receiver threads stay free for the small requests that make up normal traffic, so a client sending
 * megabyte requests back to back (or a hostile one) delays them by the CPU it takes, not by holding every
 * receiver thread. Private to receive/.
 */
#ifndef GW_LANE_H
#define GW_LANE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decode/decode.h"

struct gw_lane;

/* threads (>= 1) threads at nice increment nice (0..19). */
struct gw_lane *gw_lane_start(unsigned threads, unsigned nice);
/* Run fn(arg) on a lane thread, in submission order. */
void gw_lane_submit(struct gw_lane *l, void (*fn)(void *arg), void *arg);
/* Wait until nothing is queued or running (a receiver that is stopping, before it frees what jobs use). */
void gw_lane_drain(struct gw_lane *l);
/* Run what is queued, then stop the threads. NULL is fine. */
void gw_lane_stop(struct gw_lane *l);

/* The size a request is judged by: its body's len, or for a compressed body the larger of that and the size
 * it states: a gzip trailer's (ISIZE, the last member's size modulo 2^32), a zstd first frame's content size,
 * a snappy block's length, an lz4 first frame's content size (a body that lies is still capped by receivers.max_inflate_ratio and fails its
 * length check; framed snappy is judged by its wire size). head: the body's first head_len bytes (2 are
 * enough for gzip, a zstd frame header takes up to 18, a snappy length 5, an lz4 size 14), tail: its last 4
 * (read only for gzip, when len >= 18). */
uint64_t gw_lane_size(const unsigned char *head, size_t head_len, const unsigned char *tail, size_t len,
                      enum gw_coding coding);

#endif
