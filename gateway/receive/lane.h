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

struct gw_lane;

/* threads (>= 1) threads at nice increment nice (0..19). */
struct gw_lane *gw_lane_start(unsigned threads, unsigned nice);
/* Run fn(arg) on a lane thread, in submission order. */
void gw_lane_submit(struct gw_lane *l, void (*fn)(void *arg), void *arg);
/* Wait until nothing is queued or running (a receiver that is stopping, before it frees what jobs use). */
void gw_lane_drain(struct gw_lane *l);
/* Run what is queued, then stop the threads. NULL is fine. */
void gw_lane_stop(struct gw_lane *l);

/* The size a request is judged by: its body's len, or for a gzip body the larger of that and the size its
 * gzip trailer states (ISIZE, the last member's size modulo 2^32; a body that lies about it is still capped
 * by receivers.max_inflate_ratio and fails its length check). head: the body's first 2 bytes, tail: its
 * last 4 (both read only when gzip and len >= 18). */
uint64_t gw_lane_size(const unsigned char *head, const unsigned char *tail, size_t len, bool gzip);

#endif
