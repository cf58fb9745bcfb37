/*
 * grpc_front.h: the plaintext OTLP/gRPC port's own listener, in front of gRPC core, with
 * receivers.grpc.engine grpc-core (the default engine, nghttp2, serves the port with front.c; private to
 * receive/).
 *
 * gRPC core accepts a connection at a cost before the client has sent a byte (about 0.45 ms of CPU on its
 * threads, which also serve the calls: channel arguments, transport, timers) and has no cap on connections,
 * so 2 000 connections that never speak, reopened each time handshake_timeout_ms closes them, cost the calls
 * of well-behaved clients a burst of about a second of CPU on those threads every 10 s (bench/README.md,
 * "Abuse"). Here the port is accepted on one thread of our own, and a connection is handed to gRPC core
 * (grpc_server_add_channel_from_fd: the socket itself, nothing read from it) only once the client has sent
 * what gRPC's handshake waits for: the HTTP/2 connection preface and its first frame, SETTINGS (or bytes
 * that are no preface: gRPC answers those as before). Until then a connection costs a descriptor and a few
 * bytes; it is closed after receivers.grpc.handshake_timeout_ms (as gRPC core closed it), and past
 * max_pending such connections the oldest is closed. TLS stays on gRPC core's own listener (the descriptor
 * API takes plaintext connections only).
 */
#ifndef GW_GRPC_FRONT_H
#define GW_GRPC_FRONT_H

#include <stdint.h>

#include "core/gw.h"

#define GW_GRPC_FRONT_PENDING 4096 /* connections that have not sent their preface yet, at most */

struct gw_grpc_front;

/* Called on the front's thread with a connected, non-blocking socket whose preface has arrived (unread);
 * the callee owns fd from then on. */
typedef void (*gw_grpc_handoff_fn)(void *ctx, int fd);

/* Listen on addr ("host:port", core/net.h) and start the thread. NULL with err when addr cannot be listened
 * on (GW_ERR(CONFIG) when it is no address core/net.h parses, GW_ERR(IO) otherwise). */
struct gw_grpc_front *gw_grpc_front_start(const char *addr, uint32_t handshake_ms, unsigned max_pending,
                                          gw_grpc_handoff_fn handoff, void *ctx, struct gw_err *err);
/* The port listened on (the one chosen by the system for port 0). */
int gw_grpc_front_port(const struct gw_grpc_front *f);
/* Stop the thread, close the listening socket and the connections not handed over yet. NULL is fine. */
void gw_grpc_front_stop(struct gw_grpc_front *f);

/* Connections closed before their preface: after the handshake timeout, and as the oldest past max_pending. */
uint64_t gw_grpc_front_timeouts(const struct gw_grpc_front *f);
uint64_t gw_grpc_front_evicted(const struct gw_grpc_front *f);
/* Connections handed to gRPC core. */
uint64_t gw_grpc_front_handed(const struct gw_grpc_front *f);

/* What the first bytes of a connection say (n of them): 0 wait for more, 1 hand it over (a complete preface
 * and SETTINGS frame header with its payload, or bytes that cannot be a preface). */
int gw_grpc_preface_ready(const unsigned char *b, size_t n);

#endif
