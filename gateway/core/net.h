/* net.h: listen-address parsing ("host:port", "[v6]:port") shared by the receivers and the admin port. */
#ifndef GW_NET_H
#define GW_NET_H

#include <sys/socket.h>

#include "core/gw.h"

/* Parse addr into a sockaddr (numeric hosts, plus "localhost"). GW_ERR(CONFIG) with a reason on failure. */
gw_rc gw_net_parse_addr(const char *addr, struct sockaddr_storage *out, socklen_t *len, struct gw_err *err);

/* True when addr ("host:port") is a loopback address (127.0.0.0/8, ::1, localhost): only this machine reaches it. */
bool gw_net_is_loopback(const char *addr);

#endif
