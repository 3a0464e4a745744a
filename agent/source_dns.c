/* source_dns.c — nodes from DNS: A/AAAA records of a name, or SRV records.
 *
 * "--dns NAME[:PORT]": every address of NAME (getaddrinfo, IPv4 and IPv6)
 * is a node on PORT (11211 by default); the node's host is its address, so
 * both ring modes hash something that differs per node. "--dns
 * _service._proto.name" (a Kubernetes headless service, for instance):
 * the SRV records of the name, queried with res_query and parsed with
 * libresolv's ns_* functions; each target of the lowest priority present
 * is a node on the record's port (higher priorities are fallbacks in SRV,
 * not shards), its host the target name, resolved for its address. SRV
 * weights are load-balancing hints, not cache capacity, so every node gets
 * weight 1.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "agent.h"

/* True for "_service._proto.rest" names. */
static bool is_srv_name(const char* name) {
  if (name[0] != '_')
    return false;
  const char* dot = strchr(name, '.');
  return dot && dot[1] == '_' && strchr(dot + 1, '.') != NULL;
}

static int srv_poll(const char* name, mcr__nodes_t* out, char* err,
                    size_t errlen) {
  unsigned char ans[65536];
  struct __res_state rs;
  memset(&rs, 0, sizeof(rs));
  if (res_ninit(&rs) != 0) {
    snprintf(err, errlen, "resolver initialisation failed");
    return MCR_ERESOLVE;
  }
  int n = res_nquery(&rs, name, ns_c_in, ns_t_srv, ans, sizeof(ans));
  res_nclose(&rs);
  if (n < 0) {
    snprintf(err, errlen, "SRV %s: %s", name, hstrerror(rs.res_h_errno));
    return MCR_ERESOLVE;
  }
  ns_msg msg;
  if (ns_initparse(ans, n, &msg) != 0) {
    snprintf(err, errlen, "SRV %s: malformed DNS answer", name);
    return MCR_ERESOLVE;
  }
  int count = ns_msg_count(msg, ns_s_an);
  unsigned best = 65536;
  /* Two passes: the lowest priority, then its records. */
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < count; i++) {
      ns_rr rr;
      if (ns_parserr(&msg, ns_s_an, i, &rr) != 0)
        continue;
      if (ns_rr_type(rr) != ns_t_srv || ns_rr_rdlen(rr) < 7)
        continue;
      const unsigned char* rd = ns_rr_rdata(rr);
      unsigned prio = ns_get16(rd);
      unsigned port = ns_get16(rd + 4);
      if (pass == 0) {
        if (prio < best)
          best = prio;
        continue;
      }
      if (prio != best)
        continue;
      char target[NS_MAXDNAME];
      if (dn_expand(ns_msg_base(msg), ns_msg_end(msg), rd + 6, target,
                    sizeof(target)) < 0) {
        snprintf(err, errlen, "SRV %s: malformed target", name);
        return MCR_ERESOLVE;
      }
      size_t tl = strlen(target);
      if (tl && target[tl - 1] == '.')
        target[--tl] = '\0';
      if (tl == 0 || port == 0 || !mcr__hostname_ok(target, tl)) {
        snprintf(err, errlen,
                 "SRV %s: unusable record (target \"%s\", port "
                 "%u)",
                 name, target, port);
        return MCR_ERESOLVE;
      }
      int rc = mcr__nodes_add(out, target, tl, NULL, (uint16_t)port, 1);
      if (rc) {
        snprintf(err, errlen, "SRV %s: cannot add %s", name, target);
        return rc;
      }
    }
  }
  if (out->n == 0) {
    snprintf(err, errlen, "SRV %s: no records", name);
    return MCR_ERESOLVE;
  }
  return 0;
}

static int addr_poll(const char* spec, mcr__nodes_t* out, char* err,
                     size_t errlen) {
  char name[MCR__HOST_MAX + 1];
  const char* colon = strrchr(spec, ':');
  size_t nl = colon ? (size_t)(colon - spec) : strlen(spec);
  uint64_t port = 11211;
  if (colon &&
      (mcr__parse_u64(colon + 1, strlen(colon + 1), 65535, &port) != 0 ||
       port == 0)) {
    snprintf(err, errlen, "bad port in \"%s\"", spec);
    return MCR_EINVAL;
  }
  if (nl == 0 || nl > MCR__HOST_MAX || !mcr__hostname_ok(spec, nl)) {
    snprintf(err, errlen, "bad DNS name in \"%s\"", spec);
    return MCR_EINVAL;
  }
  memcpy(name, spec, nl);
  name[nl] = '\0';
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  struct addrinfo* res = NULL;
  int e = getaddrinfo(name, NULL, &hints, &res);
  if (e != 0) {
    snprintf(err, errlen, "resolve %s: %s", name, gai_strerror(e));
    return MCR_ERESOLVE;
  }
  int rc = 0;
  for (struct addrinfo* ai = res; ai && !rc; ai = ai->ai_next) {
    char a[MCR__ADDR_MAX];
    const void* src =
        ai->ai_family == AF_INET6
            ? (const void*)&((struct sockaddr_in6*)ai->ai_addr)->sin6_addr
            : (const void*)&((struct sockaddr_in*)ai->ai_addr)->sin_addr;
    if (!inet_ntop(ai->ai_family, src, a, sizeof(a)))
      continue;
    bool dup = false;
    for (size_t i = 0; i < out->n; i++)
      dup |= strcmp(out->v[i].addr, a) == 0;
    if (!dup)
      rc = mcr__nodes_add(out, a, strlen(a), a, (uint16_t)port, 1);
  }
  freeaddrinfo(res);
  return rc;
}

int agent_dns_poll(const char* spec, mcr__nodes_t* out, char* err,
                   size_t errlen) {
  mcr__nodes_clear(out);
  int rc = is_srv_name(spec) ? srv_poll(spec, out, err, errlen)
                             : addr_poll(spec, out, err, errlen);
  if (rc)
    return rc;
  return mcr__nodes_finish(out, err, errlen);
}
