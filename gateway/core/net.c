/* net.c: address parsing without DNS (a sidecar listens on numeric addresses; "localhost" is 127.0.0.1). */
#include "core/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

gw_rc gw_net_parse_addr(const char *addr, struct sockaddr_storage *out, socklen_t *len, struct gw_err *err)
{
  char host[128];
  const char *colon = strrchr(addr, ':');
  if (!colon || colon == addr)
    return gw_err_set(err, GW_ERR(CONFIG), "address '%s' is not host:port", addr);
  size_t hl = (size_t)(colon - addr);
  if (hl >= sizeof host)
    return gw_err_set(err, GW_ERR(CONFIG), "address '%s': host too long", addr);
  memcpy(host, addr, hl);
  host[hl] = 0;
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || end == colon + 1 || port < 0 || port > 65535)
    return gw_err_set(err, GW_ERR(CONFIG), "address '%s': port must be 0..65535", addr);
  memset(out, 0, sizeof *out);
  if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
    host[hl - 1] = 0;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
      return gw_err_set(err, GW_ERR(CONFIG), "address '%s': bad IPv6 host", addr);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    *len = sizeof *s6;
    return GW_OK;
  }
  struct sockaddr_in *s4 = (struct sockaddr_in *)out;
  if (strcmp(host, "localhost") == 0)
    strcpy(host, "127.0.0.1");
  if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
    return gw_err_set(err, GW_ERR(CONFIG), "address '%s': host must be a numeric IPv4/[IPv6] address", addr);
  s4->sin_family = AF_INET;
  s4->sin_port = htons((uint16_t)port);
  *len = sizeof *s4;
  return GW_OK;
}

bool gw_net_is_loopback(const char *addr)
{
  struct sockaddr_storage ss;
  socklen_t len;
  if (gw_net_parse_addr(addr, &ss, &len, NULL) != GW_OK)
    return false;
  if (ss.ss_family == AF_INET)
    return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
  return IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->sin6_addr);
}
