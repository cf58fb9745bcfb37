/*
 * front.h: the OTLP/HTTP port's own listener, in front of libmicrohttpd (private to receive/).
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
#include <sys/socket.h>

#include "receive/request.h"

struct gw_front;

/* Listen on conf->receivers.http_addr and start the loops. HTTP/1.1 goes to mhd (started with
 * MHD_USE_NO_LISTEN_SOCKET); read timeouts are counted in guard (may be NULL). NULL with err on failure. */
struct gw_httpd_guard;
struct gw_front *gw_front_start(struct gw_pipeline *p, struct MHD_Daemon *mhd, struct gw_httpd_guard *guard,
                                struct gw_err *err);
/* Close the listening socket: no new connection. */
void gw_front_stop_accepting(struct gw_front *f);
/* Stop the loops and close what they still hold. Call after libmicrohttpd is stopped. NULL is fine. */
void gw_front_stop(struct gw_front *f);

/* libmicrohttpd closed a connection the front handed it: free its address slot. */
void gw_front_release(struct gw_front *f, const struct sockaddr *addr);

#endif
