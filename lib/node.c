/* node.c — one memcached node: the server it is, the connection to it, its
 * counters in the host stats, and its health.
 *
 * Nodes are made here and only here, either from a configured server (the
 * embedded mode) or from a node of the agent's ring (a ring_dir client:
 * connect to the address the agent resolved, name it after its host), and
 * freed here. Health is the client's failure rule (mcr__health_t):
 * failure_limit connect or I/O failures in a row mark a node down for
 * retry_timeout_ms; its keys then fail at once (MCR_ENODEDOWN), or go to
 * the next node on the ring with eject; when the time is up one call tries
 * it again, and one more failure marks it down again. With the host's
 * health table (health.c) the same rule holds for the whole host: a mark
 * is written there and taken in by every worker, and when the time is up
 * one process of the host tries the node, not one per worker.
 */
#include <stdio.h>
#include <string.h>

#include <ck_pr.h>

#include "internal.h"

void mcr__node_init(mcr__node_t* n, mcr__server_t* srv) {
  *n = (mcr__node_t){.srv = *srv, .conn = {.fd = -1}, .hh = mcr__hh_none};
  *srv = (mcr__server_t){0}; /* the strings are the node's now */
}

int mcr__node_from_ring(mcr__node_t* n, const char* host, const char* address,
                        uint16_t port, uint32_t weight, uint64_t ident) {
  const char* target = address && *address ? address : host;
  bool is_unix = port == 0;
  bool v6 = strchr(target, ':') != NULL;
  size_t nlen = strlen(host) + strlen(target) + 24;
  *n = (mcr__node_t){.conn = {.fd = -1}, .hh = mcr__hh_none, .ident = ident};
  n->srv.host = mcr__strndup(target, strlen(target));
  n->srv.name = mcr__malloc(nlen);
  if (!n->srv.host || !n->srv.name) {
    mcr__node_free(n);
    return MCR_ENOMEM;
  }
  /* TLS verifies the host name, not the address connected to. */
  if (!is_unix && strcmp(host, target) != 0 &&
      !(n->srv.tls_name = mcr__strndup(host, strlen(host)))) {
    mcr__node_free(n);
    return MCR_ENOMEM;
  }
  if (is_unix)
    snprintf(n->srv.name, nlen, "%s", host);
  else if (strcmp(host, target) != 0)
    snprintf(n->srv.name, nlen, v6 ? "%s([%s]):%u" : "%s(%s):%u", host, target,
             port);
  else
    snprintf(n->srv.name, nlen, v6 ? "[%s]:%u" : "%s:%u", host, port);
  n->srv.port = port;
  n->srv.weight = weight;
  n->srv.is_unix = is_unix;
  return 0;
}

void mcr__node_free(mcr__node_t* n) {
  mcr__conn_free(&n->conn);
  mcr__free(n->srv.host);
  mcr__free(n->srv.name);
  mcr__free(n->srv.tls_name);
  *n = (mcr__node_t){.conn = {.fd = -1}, .hh = mcr__hh_none};
}

void mcr__node_bind_health(mcr__node_t* n, mcr__health_t* h) {
  /* A handle with failure_limit 0 tracks no health, its own or shared. */
  uint64_t* e = h->limit ? mcr__hh_find(h->table, n->ident, true) : NULL;
  n->hh = e ? e : mcr__hh_none;
  n->hh_seen = 0; /* a mark already there is taken in at the next use */
  n->hh_probing = false;
}

void mcr__node_failed(mcr__node_t* n, mcr__health_t* h, int err) {
  /* Ours (out of memory, a bad argument) or the node's word that it is up
   * (a malformed reply, a server error line): not a failure to reach it. */
  switch (err) {
    case MCR_ENOMEM:
    case MCR_EINVAL:
    case MCR_EPROTO:
    case MCR_ESERVERCMD:
    case MCR_ECLIENTERR:
    case MCR_ESERVERERR:
    case MCR_ENODEDOWN:
      return;
  }
  if (!h->limit)
    return;
  /* The limit counts failures in a row in this handle, or, with the
   * host's table, in the whole host (no success by anyone in between). */
  bool host = n->hh != mcr__hh_none && mcr__hh_failure(n, h, mcr__now_ms());
  if ((++n->fails >= h->limit || host) && !n->down_until) {
    n->down_until = mcr__now_ms() + h->retry_ms;
    h->ndown++;
    if (n->hh != mcr__hh_none)
      mcr__hh_mark_down(n, h, n->down_until);
  }
}

int mcr__node_available(mcr__node_t* n, mcr__health_t* h, int64_t now,
                        int64_t* left_ms) {
  if (!mcr__node_shared_same(n))
    mcr__hh_sync(n, h, now);
  if (!n->down_until)
    return 0;
  if (now < n->down_until) {
    *left_ms = n->down_until - now;
    return MCR_ENODEDOWN;
  }
  /* Time is up: one try, by one process of the host; one more failure
   * marks it down again. */
  if (n->hh != mcr__hh_none && !mcr__hh_claim_probe(n, h, now)) {
    if (!n->down_until)
      return 0; /* it came up meanwhile */
    *left_ms = n->down_until > now ? n->down_until - now : 0;
    return MCR_ENODEDOWN;
  }
  n->down_until = 0;
  n->fails = h->limit - 1;
  h->ndown--;
  return 0;
}
