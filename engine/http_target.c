/* Which URLs bench.http's native transport takes, and the addresses they
 * name: plain http:// to an IP literal or localhost, no user name, no
 * proxy meant for it (docs/http.md, "Transports"). Everything else goes
 * through curl. */
#include "http_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The address(es) of host (an IP literal, or localhost) on port into tg:
 * 1 for a loopback address, 0 for another, -1 for a name to resolve. */
static int target_address(http_target *tg, const char *host, int bracketed, long p) {
  memset(tg->addrs, 0, sizeof tg->addrs);
  struct sockaddr_in *v4 = (struct sockaddr_in *)&tg->addrs[0];
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&tg->addrs[0];
  if (!bracketed && inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)p);
    tg->addrlens[0] = sizeof *v4;
    tg->naddr = 1;
    return (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
  } else if (bracketed && inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)p);
    tg->addrlens[0] = sizeof *v6;
    tg->naddr = 1;
    return IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
  } else if (!bracketed && strcasecmp(host, "localhost") == 0) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)p);
    v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    tg->addrlens[0] = sizeof *v4;
    struct sockaddr_in6 *l6 = (struct sockaddr_in6 *)&tg->addrs[1];
    l6->sin6_family = AF_INET6;
    l6->sin6_port = htons((uint16_t)p);
    l6->sin6_addr = in6addr_loopback;
    tg->addrlens[1] = sizeof *l6;
    tg->naddr = 2;
    return 1;
  }
  return -1;   /* a name to resolve: curl has an asynchronous resolver */
}

int http_native_target(const char *url, size_t len, http_target *tg) {
  if (len < 8 || strncasecmp(url, "http://", 7) != 0) return 0;
  const char *a = url + 7, *end = url + len;
  const char *ae = a;
  while (ae < end && *ae != '/' && *ae != '?' && *ae != '#') ae++;
  if (ae == a || memchr(a, '@', (size_t)(ae - a))) return 0;
  const char *h = a, *he, *port = NULL;
  if (*h == '[') {
    he = memchr(h, ']', (size_t)(ae - h));
    if (!he) return 0;
    h++;
    if (he + 1 < ae) {
      if (he[1] != ':') return 0;
      port = he + 2;
    }
  } else {
    he = memchr(h, ':', (size_t)(ae - h));
    if (he) port = he + 1;
    else he = ae;
  }
  long p = 80;
  if (port) {
    if (port == ae || ae - port > 5) return 0;
    p = 0;
    for (const char *q = port; q < ae; q++) {
      if (*q < '0' || *q > '9') return 0;
      p = p * 10 + (*q - '0');
    }
    if (p < 1 || p > 65535) return 0;
  }
  char host[64];
  size_t hl = (size_t)(he - h);
  if (hl == 0 || hl >= sizeof host) return 0;
  memcpy(host, h, hl);
  host[hl] = 0;
  int loopback = target_address(tg, host, a[0] == '[', p);
  if (loopback < 0) return 0;
  if (!loopback) {   /* a proxy may be meant for it: curl knows the rules */
    static const char *const vars[] = {"http_proxy", "all_proxy", "ALL_PROXY"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
      const char *v = getenv(vars[i]);
      if (v && *v) return 0;
    }
  }
  const char *t = ae, *te = memchr(ae, '#', (size_t)(end - ae));
  if (!te) te = end;
  for (const char *q = t; q < te; q++)
    if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f) return 0;   /* curl's rules for odd URLs */
  tg->authority = a;
  tg->alen = (size_t)(ae - a);
  tg->path = t;
  tg->plen = (size_t)(te - t);
  return 1;
}
