/*
 * front.h: the OTLP/HTTP port's own listener, in front of libmicrohttpd, and the OTLP/gRPC port's with
 * receivers.grpc.engine nghttp2 (private to receive/).
 *
 * libmicrohttpd speaks HTTP/1.1 only, and its TLS (GnuTLS) can neither offer HTTP/2 through ALPN nor
 * fail a handshake on a bad client certificate. So the port is accepted here, on a few epoll loops, and
 * each connection goes where it belongs:
 *  - connection limits first, in total and per client address, before any byte is read;
 *  - plaintext HTTP/1.1: the socket itself is handed to libmicrohttpd (MHD_add_connection), which then
 *    owns it: no copy, no extra work;
 *  - TLS (receivers.tls): OpenSSL handshakes here (TLS 1.2+, client certificate verified when
 *    client_ca_file is set, within header_timeout_ms); HTTP/1.1 inside is relayed to libmicrohttpd over a
 *    socketpair, given the client's address so its limits and logs see the real peer;
 *  - HTTP/2 (h2c prior knowledge, ALPN h2): served by receive/h2.c with nghttp2 on the same loops.
 * The per-address table is shared with libmicrohttpd's close notification (gw_front_release), so a
 * connection holds its slot until whoever holds the socket closes it.
 */
#ifndef GW_FRONT_H
#define GW_FRONT_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "receive/request.h"

struct gw_front;

/* What differs between the ports one front can serve: the OTLP/HTTP port (HTTP/1.1 handed to
 * libmicrohttpd, HTTP/2 here) and the OTLP/gRPC port (receivers.grpc.engine nghttp2: HTTP/2 only, with the
 * connection policing gRPC core applied: idle and age GOAWAYs, ping strikes). */
struct gw_front_port {
  const char *addr;     /* host:port to listen on */
  const char *listener; /* label of its metrics and of receivers.auth's failures: "otlp_http" or "otlp_grpc" */
  uint32_t threads, max_conns, per_ip;
  uint32_t header_ms;   /* TLS handshake and HTTP/2 preface; an HTTP/2 stream's headers */
  uint32_t idle_ms;     /* HTTP/2: GOAWAY after this long without a stream; 0: never */
  uint32_t body_ms;     /* an HTTP/2 stream's body after its headers */
  uint32_t max_streams; /* HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS */
  bool grpc;            /* application/grpc POSTs are OTLP/gRPC calls (h2_grpc.c) */
  bool h2_only;         /* the gRPC port: no HTTP/1.1 (closed, counted), gRPC core's connection policing */
  uint32_t age_ms, age_grace_ms; /* h2_only: GOAWAY at age, closed at age + grace; age 0: never */
  uint32_t min_ping_ms;          /* h2_only: pings closer than this (any, without a call) are strikes */
};

/* Listen on port->addr and start the loops. HTTP/1.1 goes to mhd (started with MHD_USE_NO_LISTEN_SOCKET;
 * NULL with h2_only); read timeouts are counted in guard (may be NULL). NULL with err on failure. */
struct gw_httpd_guard;
struct gw_front *gw_front_start(struct gw_pipeline *p, const struct gw_front_port *port, struct MHD_Daemon *mhd,
                                struct gw_httpd_guard *guard, struct gw_err *err);
/* Close the listening socket: no new connection, and no connection handed to libmicrohttpd once this has
 * returned (one accepted before is closed instead), so libmicrohttpd can be stopped after it. */
void gw_front_stop_accepting(struct gw_front *f);
/* Stop the loops and close what they still hold. Call after libmicrohttpd is stopped. NULL is fine. */
void gw_front_stop(struct gw_front *f);

/* libmicrohttpd closed a connection the front handed it: free its address slot. */
void gw_front_release(struct gw_front *f, const struct sockaddr *addr);

#endif
