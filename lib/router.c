/* router.c — picks the node of a key, and follows the agent's ring.
 *
 * Four cases share one lookup. One server: every key goes to it. Several
 * servers: the client builds the ring of its distribution in process (the
 * embedded mode) once, at mcr_client_new. A ring_dir: the client maps the
 * agent's published snapshot (lib/snapshot.c) and routes by it. An
 * ElastiCache endpoint (opts.elasticache): the client polls it itself
 * (elasticache.c, the agent's code) at mcr_client_new and then at the
 * start of the first call after each discovery interval, and builds the
 * ring of the listed nodes in process when the list changed.
 *
 * In every case c->nodes is kept in ring order, so the ring's node index is
 * the client's node index and a route is one ring lookup plus an array
 * index. A ring node's slot stays empty until a call needs the node
 * (mcr__node_make reads its entry from the ring then): a worker holds state
 * for the nodes it talks to, not for the whole ring. For a ring_dir,
 * mcr__router_refresh runs at the start of every call: one acquire load of
 * the published generation. When it changed, the snapshot reader maps the
 * new ring (checking its header, not its nodes), and the nodes this client
 * made are moved to their new places through the map the agent published
 * from the generation before (checked against each node's identity, else
 * matched by identity): a node whose host, address and port are unchanged
 * keeps its open connection, removed nodes' connections are closed. So a
 * switch costs what the worker holds, not what the ring holds. It happens
 * between calls, never inside one, so node pointers held by a multi-key
 * call stay valid for the whole call.
 *
 * What is hashed is the key, less its first route_skip bytes (a namespace
 * the peers do not hash), or, after mcr_client_route_by, one server key for
 * every key (libmemcached's *_by_key placement).
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "discovery.h"
#include "ring.h"

struct mcr__router {
  mcr_ring_t* own;        /* built in process, or NULL */
  mcr_snapshot_t* snap;   /* the agent's snapshot, or NULL */
  const mcr_ring_t* ring; /* the ring keys are routed by */
  uint64_t gen;           /* the generation c->nodes follows (snapshots) */
  bool behind; /* c->nodes not yet reconciled with ring (out of memory) */
  /* Embedded discovery (opts.elasticache), else ec is NULL. */
  char* ec;              /* the configuration endpoint */
  int64_t next_poll_ms;  /* mcr__now_ms() at or after which to poll */
  mcr__ec_cache_t cache; /* the endpoint's last reply that parsed */
  mcr__nodes_t nodes;    /* the node list `own` was built from */
  bool warned;           /* the many-pollers warning was written */
};
typedef mcr__router_t router_t;

/* The numeric addresses of the nodes for the `ketama` mode, which hashes
 * "<ip>:<port>": every name resolved together (mcr__resolve_many), each
 * within the connect timeout. addrs[i] is left empty for unix sockets. */
static int numeric_addresses(mcr_client_t* c, char (*addrs)[INET6_ADDRSTRLEN]) {
  size_t n = 0;
  const mcr__server_t** srv = mcr__calloc(c->nnodes, sizeof(*srv));
  size_t* at = mcr__calloc(c->nnodes, sizeof(*at));
  struct addrinfo** res = mcr__calloc(c->nnodes, sizeof(*res));
  if (!srv || !at || !res) {
    mcr__free(srv);
    mcr__free(at);
    mcr__free(res);
    return mcr__set_error(c, MCR_ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < c->nnodes; i++)
    if (!c->nodes[i]->srv.is_unix) {
      at[n] = i;
      srv[n++] = &c->nodes[i]->srv;
    }
  size_t bad = 0;
  const char* why = NULL;
  int rc = mcr__resolve_many(srv, n, c->opts.connect_timeout_ms, INT64_MAX, res,
                             &bad, &why);
  if (rc)
    mcr__set_error(c, rc, "%s: %s", n ? srv[bad]->name : "",
                   why ? why : mcr_strerror(rc));
  for (size_t k = 0; k < n && !rc; k++) {
    const struct addrinfo* ai = res[k];
    const void* a =
        ai->ai_family == AF_INET6
            ? (const void*)&((struct sockaddr_in6*)ai->ai_addr)->sin6_addr
            : (const void*)&((struct sockaddr_in*)ai->ai_addr)->sin_addr;
    if (!inet_ntop(ai->ai_family, a, addrs[at[k]], INET6_ADDRSTRLEN))
      rc = mcr__set_error(c, MCR_ERESOLVE, "%s: cannot format its address",
                          srv[k]->name);
  }
  for (size_t k = 0; k < n; k++)
    if (res[k])
      freeaddrinfo(res[k]);
  mcr__free(srv);
  mcr__free(at);
  mcr__free(res);
  return rc;
}

static int build_own(mcr_client_t* c, router_t* r) {
  size_t n = c->nnodes;
  mcr__ring_node_in_t* in = mcr__calloc(n, sizeof(*in));
  char(*addrs)[INET6_ADDRSTRLEN] = mcr__calloc(n, sizeof(*addrs));
  int rc = (!in || !addrs) ? mcr__set_error(c, MCR_ENOMEM, "out of memory") : 0;
  bool ketama = c->opts.distribution == MCR_DIST_KETAMA;
  if (!rc && ketama)
    rc = numeric_addresses(c, addrs);
  for (size_t i = 0; i < n && !rc; i++) {
    const mcr__server_t* s = &c->nodes[i]->srv;
    in[i] = (mcr__ring_node_in_t){.host = s->host,
                                  .port = s->is_unix ? 0 : s->port,
                                  .weight = s->weight,
                                  .state = MCR__NODE_UP};
    if (ketama && !s->is_unix)
      in[i].address = addrs[i];
  }
  if (!rc) {
    char err[256] = "";
    rc = mcr__ring_build_nodes(&r->own, c->opts.distribution, in, n, err,
                               sizeof err);
    if (rc)
      mcr__set_error(c, rc, "cannot build the ring: %s", err);
  }
  mcr__free(in);
  mcr__free(addrs);
  r->ring = r->own;
  return rc;
}

/* ------------------------------------------------------------ nodes */

mcr__node_t* mcr__node_make(mcr_client_t* c, size_t i) {
  router_t* r = c->router;
  mcr__ring_node_t rn;
  int rc = MCR_ENOMEM;
  /* Only ring nodes are made on use; configured ones exist from the
   * start. While a switch waits for memory (r->behind) c->nodes is in the
   * old ring's order: no node is made that could land in the wrong slot. */
  if (!r || !r->ring || r->behind || i >= c->nnodes) {
    c->node_err = MCR_ENOMEM;
    mcr__set_error(c, MCR_ENOMEM, "out of memory (a ring switch is pending)");
    return NULL;
  }
  if ((rc = mcr__ring_node_get(r->ring, (uint32_t)i, &rn))) {
    c->node_err = MCR_ESNAPSHOT;
    mcr__set_error(c, MCR_ESNAPSHOT,
                   "ring generation %" PRIu64 ": node %zu entry is damaged",
                   r->ring->generation, i);
    return NULL;
  }
  mcr__node_t* n = mcr__malloc(sizeof *n);
  if (n && (rc = mcr__node_from_ring(n, rn.host, rn.address, rn.port, rn.weight,
                                     mcr__ring_ident_at(r->ring, (uint32_t)i))))
    n = (mcr__free(n), NULL);
  if (!n || mcr__node_place(c, i, n)) {
    c->node_err = MCR_ENOMEM;
    mcr__set_error(c, MCR_ENOMEM, "out of memory");
    return NULL;
  }
  mcr__hs_bind_node(c, n);
  return n;
}

int mcr__node_place(mcr_client_t* c, size_t i, mcr__node_t* n) {
  if (c->nlive == c->live_cap) {
    size_t cap = c->live_cap ? 2 * c->live_cap : 8;
    mcr__node_t** v = mcr__realloc(c->live, cap * sizeof *v);
    if (!v) {
      mcr__node_free(n);
      mcr__free(n);
      return MCR_ENOMEM;
    }
    c->live = v;
    c->live_cap = cap;
  }
  n->at = (uint32_t)i;
  c->live[c->nlive++] = n;
  c->nodes[i] = n;
  return 0;
}

/* The new ring's nodes by identity, built the first time a switch needs
 * it (no map from the generation before, or a map that disagrees with the
 * identities): an open-addressing table of node index + 1 (0 = empty),
 * twice as large as the node count. */
typedef struct {
  uint32_t* slot;
  size_t mask;
} ident_index_t;

static int index_build(ident_index_t* x, const mcr_ring_t* ring) {
  size_t cap = 16;
  while (cap < 2 * (size_t)ring->nnodes)
    cap <<= 1;
  x->slot = mcr__calloc(cap, sizeof *x->slot);
  if (!x->slot)
    return MCR_ENOMEM;
  x->mask = cap - 1;
  for (uint32_t i = 0; i < ring->nnodes; i++) {
    uint64_t id = mcr__ring_ident_at(ring, i);
    if (!id)
      continue; /* a damaged entry matches nothing */
    size_t h = (size_t)id & x->mask;
    while (x->slot[h])
      h = (h + 1) & x->mask;
    x->slot[h] = i + 1;
  }
  return 0;
}

/* The index in `ring` of the node with identity id, or SIZE_MAX. */
static size_t index_find(const ident_index_t* x, const mcr_ring_t* ring,
                         uint64_t id) {
  for (size_t h = (size_t)id & x->mask; x->slot[h]; h = (h + 1) & x->mask)
    if (mcr__ring_ident_at(ring, x->slot[h] - 1) == id)
      return x->slot[h] - 1;
  return SIZE_MAX;
}

/* Moves the nodes c has made to their places in `ring` (generation
 * `from` before it), keeping each one's state (connection, failure count,
 * stats entry) when its identity (host, address, port) is still in the
 * ring, freeing it otherwise; nodes not made stay unmade. A node is found
 * through the map the writer published from `from` (one read, checked
 * against the identity there), else through an identity index of the new
 * ring built once: a switch costs what c holds, not what the ring holds,
 * when the worker follows the agent generation by generation. On failure
 * (out of memory) c->nodes is untouched. */
static int reconcile(mcr_client_t* c, const mcr_ring_t* ring, uint64_t from) {
  size_t n = ring->nnodes;
  size_t* dest = mcr__malloc((c->nlive + 1) * sizeof *dest);
  ident_index_t index = {NULL, 0};
  int rc = dest ? 0 : MCR_ENOMEM;
  for (size_t k = 0; k < c->nlive && !rc; k++) {
    const mcr__node_t* node = c->live[k];
    int64_t j = mcr__ring_remap(ring, from, node->at);
    if (j >= 0 && j != MCR__SNAP_GONE &&
        mcr__ring_ident_at(ring, (uint32_t)j) != node->ident)
      j = -1; /* a map that disagrees: match by identity */
    if (j < 0 && (index.slot || !(rc = index_build(&index, ring)))) {
      size_t f = index_find(&index, ring, node->ident);
      j = f == SIZE_MAX ? (int64_t)MCR__SNAP_GONE : (int64_t)f;
    }
    dest[k] = j < 0 || j == MCR__SNAP_GONE ? SIZE_MAX : (size_t)j;
  }
  mcr__free(index.slot);
  /* The slot array is reused: every slot is NULL but those of the nodes
   * made, so only a ring larger than any before needs new (zeroed) slots,
   * and nothing here touches the slots of nodes never made. */
  if (!rc && n > c->nodes_cap) {
    mcr__node_t** v = mcr__realloc(c->nodes, n * sizeof *v);
    if (v) {
      memset(v + c->nodes_cap, 0, (n - c->nodes_cap) * sizeof *v);
      c->nodes = v;
      c->nodes_cap = n;
    } else {
      rc = MCR_ENOMEM;
    }
  }
  if (rc) {
    mcr__free(dest);
    return rc;
  }
  for (size_t k = 0; k < c->nlive; k++)
    c->nodes[c->live[k]->at] = NULL;
  size_t keep = 0;
  c->health.ndown = 0;
  for (size_t k = 0; k < c->nlive; k++) {
    mcr__node_t* node = c->live[k];
    if (dest[k] == SIZE_MAX || c->nodes[dest[k]]) {
      mcr__node_free(node); /* left the ring (or a duplicate identity) */
      mcr__free(node);
      continue;
    }
    c->nodes[dest[k]] = node;
    node->at = (uint32_t)dest[k];
    c->live[keep++] = node;
    c->health.ndown += node->down_until != 0;
  }
  mcr__free(dest);
  c->nnodes = n;
  c->nlive = keep;
  return 0;
}

static int open_snapshot(mcr_client_t* c, router_t* r, const char* dir) {
  mcr_snapshot_opts_t so;
  mcr_snapshot_opts_init(&so);
  so.expected_uid = c->opts.ring_owner_uid;
  so.verify = c->opts.ring_verify;
  char err[512] = "";
  int rc = mcr_snapshot_open(&r->snap, dir, &so, err, sizeof err);
  if (rc)
    return mcr__set_error(c, rc, "ring %s: %s", dir, err);
  r->ring = mcr_snapshot_ring(r->snap);
  rc = reconcile(c, r->ring, 0);
  if (rc)
    return mcr__set_error(c, rc, "out of memory");
  r->gen = r->ring->generation;
  if (!c->opts.host_stats)
    return 0;
  uid_t owner;
  int dirfd = mcr__snapshot_dirfd(r->snap, &owner);
  return mcr__hs_open(c, dirfd, owner, mcr_snapshot_generation(r->snap));
}

/* ------------------------------------------------ embedded discovery */

/* Builds the ring of `list` (sorted and checked by the poll) as the agent
 * would publish it, and switches c->nodes to it. On failure nothing
 * changes. */
static int ec_apply(mcr_client_t* c, router_t* r, const mcr__nodes_t* list) {
  mcr__ring_node_in_t* in = mcr__calloc(list->n ? list->n : 1, sizeof(*in));
  if (!in)
    return mcr__set_error(c, MCR_ENOMEM, "out of memory");
  for (size_t i = 0; i < list->n; i++)
    in[i] = (mcr__ring_node_in_t){
        .host = list->v[i].host,
        .address = list->v[i].addr[0] ? list->v[i].addr : NULL,
        .port = list->v[i].port,
        .weight = list->v[i].weight,
        .state = MCR__NODE_UP};
  mcr_ring_t* ring = NULL;
  char err[256] = "";
  int rc = mcr__ring_build_nodes(&ring, c->opts.distribution, in, list->n, err,
                                 sizeof err);
  mcr__free(in);
  if (rc)
    return mcr__set_error(c, rc, "%s: cannot build the ring: %s", r->ec, err);
  if ((rc = reconcile(c, ring, 0))) {
    mcr_ring_free(ring);
    return mcr__set_error(c, rc, "out of memory");
  }
  mcr_ring_free(r->own);
  r->own = ring;
  r->ring = ring;
  return 0;
}

/* One poll of the endpoint; a node list that differs from the current
 * one becomes the ring. Returns 0 or the poll's error (message on c). */
static int ec_poll(mcr_client_t* c, router_t* r) {
  mcr__nodes_t fresh = {0};
  char err[256] = "";
  c->counters.discovery_polls++;
  int rc =
      mcr__ec_poll(r->ec, c->opts.connect_timeout_ms, c->opts.io_timeout_ms,
                   c->tls, &r->cache, &fresh, NULL, err, sizeof err);
  if (rc) {
    mcr__nodes_free(&fresh);
    return mcr__set_error(c, rc, "%s: %s", r->ec, err);
  }
  if (!r->own || !mcr__nodes_equal(&fresh, &r->nodes)) {
    bool first = !r->own;
    if ((rc = ec_apply(c, r, &fresh))) {
      mcr__nodes_free(&fresh);
      return rc;
    }
    if (!first)
      c->counters.ring_switches++;
    mcr__nodes_t old = r->nodes;
    r->nodes = fresh;
    fresh = old;
  }
  mcr__nodes_free(&fresh);
  /* Many processes of this user polling the same endpoint: the agent's
   * job. Counted through a small per-user file (elasticache.c). */
  int peers = mcr__ec_peers(r->ec, c->opts.discovery_interval_ms);
  c->counters.discovery_peers = peers > 0 ? (uint64_t)peers : 0;
  if (peers > MCR_DISCOVERY_PEERS_WARN && !r->warned) {
    r->warned = true;
    fprintf(stderr,
            "mcring: %d processes on this host poll the ElastiCache "
            "endpoint %s; run mcring-agent and give them ring_dir instead "
            "(docs/elasticache.md)\n",
            peers, r->ec);
  }
  return 0;
}

static void ec_refresh(mcr_client_t* c, router_t* r) {
  int64_t now = mcr__now_ms();
  if (MCR__LIKELY(now < r->next_poll_ms))
    return;
  /* At most one poll per interval, failed or not, counted from the end
   * of this one: an endpoint slower than the interval is still polled
   * once per interval, not by every call. */
  if (ec_poll(c, r))
    c->counters.ring_errors++; /* the last ring stays */
  r->next_poll_ms = mcr__now_ms() + c->opts.discovery_interval_ms;
}

static int ec_open(mcr_client_t* c, router_t* r, const char* endpoint) {
  size_t len = strlen(endpoint);
  if (!(r->ec = mcr__malloc(len + 1)))
    return mcr__set_error(c, MCR_ENOMEM, "out of memory");
  memcpy(r->ec, endpoint, len + 1);
  int rc = ec_poll(c, r);
  r->next_poll_ms = mcr__now_ms() + c->opts.discovery_interval_ms;
  return rc;
}

int mcr__router_init(mcr_client_t* c, const char* ring_dir,
                     const char* elasticache) {
  if (!ring_dir && !elasticache && c->nnodes == 1)
    return 0;
  router_t* r = mcr__calloc(1, sizeof(*r));
  if (!r)
    return mcr__set_error(c, MCR_ENOMEM, "out of memory");
  c->router = r;
  if (elasticache)
    return ec_open(c, r, elasticache);
  return ring_dir ? open_snapshot(c, r, ring_dir) : build_own(c, r);
}

void mcr__router_free(mcr_client_t* c) {
  router_t* r = c->router;
  if (!r)
    return;
  mcr_ring_free(r->own);
  mcr_snapshot_free(r->snap);
  mcr__free(r->ec);
  mcr__ec_cache_free(&r->cache);
  mcr__nodes_free(&r->nodes);
  mcr__free(r);
  c->router = NULL;
}

void mcr__router_refresh(mcr_client_t* c) {
  router_t* r = c->router;
  if (!r)
    return;
  if (!r->snap) {
    if (MCR__UNLIKELY(r->ec != NULL))
      ec_refresh(c, r);
    return;
  }
  int rc = mcr_snapshot_refresh(r->snap);
  if (MCR__LIKELY(rc == 0 && !r->behind))
    return;
  if (rc < 0) {
    /* Refused generation: the reader keeps the last good ring. */
    c->counters.ring_errors++;
    if (!r->behind)
      return;
  }
  r->ring = mcr_snapshot_ring(r->snap);
  if (reconcile(c, r->ring, r->gen)) {
    /* Out of memory: the node array still has the old ring's order.
     * Retry at every call; mcr__route clamps indexes meanwhile. */
    r->behind = true;
    c->counters.ring_errors++;
    return;
  }
  r->behind = false;
  r->gen = r->ring->generation;
  c->counters.ring_switches++;
  if (c->hs)
    mcr__hs_bind(c, mcr_snapshot_generation(r->snap));
}

/* With eject on, a key whose node is down goes to the node of the next
 * point on the ring that is up (its place if the node were removed, give or
 * take the other points it owns); with every node down, to its own. */
static mcr__node_t* eject_route(mcr_client_t* c, const mcr_ring_t* ring,
                                uint32_t h) {
  int64_t now = mcr__now_ms();
  uint32_t p = mcr__ring_find_point(ring, h);
  for (uint32_t step = 0; step < ring->npoints; step++) {
    uint32_t q = p + step < ring->npoints ? p + step : p + step - ring->npoints;
    mcr__node_t* n = mcr__client_node(c, mcr__ring_owner(ring, q));
    if (n && !mcr__node_is_down(n, &c->health, now))
      return n;
  }
  return mcr__client_node(c, mcr__ring_owner(ring, p));
}

mcr__node_t* mcr__route(mcr_client_t* c, const char* key, size_t key_len) {
  router_t* r = c->router;
  if (!r)
    return c->nodes[0];
  size_t skip = c->opts.route_skip;
  if (MCR__UNLIKELY(c->pinned)) {
    key = c->pin_key;
    key_len = c->pin_len;
  } else if (MCR__UNLIKELY(skip) && key_len > skip) {
    key += skip;
    key_len -= skip;
  }
  uint32_t h = mcr__ring_hash(r->ring->mode, key, key_len);
  if (MCR__UNLIKELY(c->health.ndown || c->health.table) && c->opts.eject &&
      !r->behind)
    return eject_route(c, r->ring, h);
  uint32_t i = mcr__ring_find(r->ring, h);
  if (MCR__UNLIKELY(i >= c->nnodes))
    i = 0; /* only while r->behind */
  return mcr__client_node(c, i);
}

void mcr__route_many(mcr_client_t* c, size_t n, const char* const* keys,
                     const size_t* lens, size_t* out) {
  router_t* r = c->router;
  if (!r) {
    for (size_t i = 0; i < n; i++)
      out[i] = 0;
    return;
  }
  if (MCR__UNLIKELY(c->pinned)) {
    mcr__node_t* pin = mcr__route(c, NULL, 0);
    size_t i = pin ? pin->at : 0; /* not made: the plan asks again */
    for (size_t k = 0; k < n; k++)
      out[k] = i;
    return;
  }
  /* Hashes in chunks of 64 (a multiple of every lane count of md5x.c, so
   * only the last chunk can leave lanes empty) to bound the stack. */
  enum { CHUNK = 64 };
  uint32_t h[CHUNK];
  const mcr_ring_t* ring = r->ring;
  bool eject = MCR__UNLIKELY(c->health.ndown || c->health.table) &&
               c->opts.eject && !r->behind;
  size_t skip = c->opts.route_skip;
  const char* skey[CHUNK];
  size_t slen[CHUNK];
  for (size_t base = 0; base < n; base += CHUNK) {
    size_t m = n - base < CHUNK ? n - base : CHUNK;
    if (MCR__UNLIKELY(skip)) {
      /* The same rule as mcr__route: keys not longer than the skip are
       * routed whole. */
      for (size_t k = 0; k < m; k++) {
        bool cut = lens[base + k] > skip;
        skey[k] = keys[base + k] + (cut ? skip : 0);
        slen[k] = lens[base + k] - (cut ? skip : 0);
      }
      mcr__ring_hash_many(ring->mode, m, skey, slen, h);
    } else {
      mcr__ring_hash_many(ring->mode, m, keys + base, lens + base, h);
    }
    for (size_t k = 0; k < m; k++) {
      if (MCR__UNLIKELY(eject)) {
        mcr__node_t* e = eject_route(c, ring, h[k]);
        out[base + k] = e ? e->at : mcr__ring_find(ring, h[k]);
        continue;
      }
      uint32_t i = mcr__ring_find(ring, h[k]);
      out[base + k] = MCR__UNLIKELY(i >= c->nnodes) ? 0 : i;
    }
  }
}

int mcr_client_route_by(mcr_client_t* c, const char* server_key, size_t len) {
  if (!server_key) {
    c->pinned = false;
    return 0;
  }
  if (len > sizeof c->pin_key)
    return mcr__set_error(c, MCR_EKEY,
                          "server key of %zu bytes: at most %zu are allowed",
                          len, sizeof c->pin_key);
  memcpy(c->pin_key, server_key, len);
  c->pin_len = len;
  c->pinned = true;
  return 0;
}

const mcr_ring_t* mcr_client_ring(const mcr_client_t* c) {
  router_t* r = c ? c->router : NULL;
  return r ? r->ring : NULL;
}

uint64_t mcr_client_generation(const mcr_client_t* c) {
  router_t* r = c ? c->router : NULL;
  return r && r->snap ? mcr_snapshot_generation(r->snap) : 0;
}
