/* test_router.c — routing over several real memcached nodes.
 *
 * Four memcached per test. Checks that every key lands on the node the ring
 * names (read back with raw connections that bypass mcring), that multi-key
 * calls come back in the caller's order with a status per key, that one
 * dead node costs only its own keys, that a node marked down fails fast and
 * is used again after retry_timeout, that eject moves a down node's keys to
 * the next node on the ring, that ignore_errors turns a dead node's
 * errors into misses, that the batch routing of multi-key calls picks
 * the node the one-key routing picks, in every mode and with eject, and
 * that a client following a ring directory keeps every connection when a
 * new generation lists the same nodes in another order (the identity
 * index of a switch, lib/router.c). Last, without memcached: an embedded
 * `ketama` ring of thousands of host names, each resolved within its own
 * timeout, and a bad name among them failing the client by name.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h" /* mcr__route, mcr__route_many */
#include "ring.h"     /* the snapshot writer */
#include "support.h"

#define NODES 4
#define KEYS 200

static mcd_t mcd[NODES];
static char servers[NODES * 40];
static char keybuf[KEYS][16];
static const char* keys[KEYS];
static size_t lens[KEYS];

static void setup(void) {
  mcd_start_n(mcd, NODES, servers, sizeof servers);
  for (int i = 0; i < KEYS; i++) {
    snprintf(keybuf[i], sizeof keybuf[i], "ck%d", i);
    keys[i] = keybuf[i];
    lens[i] = strlen(keybuf[i]);
  }
}

static void teardown(void) {
  for (int i = 0; i < NODES; i++)
    mcd_stop(&mcd[i]);
}

static mcr_client_t* cluster_client(mcr_client_opts_t* o) {
  mcr_client_opts_t d = opts_default();
  if (!o)
    o = &d;
  o->servers = servers;
  mcr_client_t* c = NULL;
  char err[256];
  int rc = mcr_client_new(&c, o, err, sizeof err);
  cr_assert_eq(rc, 0, "mcr_client_new: %s: %s", mcr_err_name(rc), err);
  return c;
}

/* Index (into mcd[]) of the node the ring gives key i. */
static int owner(mcr_client_t* c, int i) {
  size_t n = mcr_ring_locate(mcr_client_ring(c), keys[i], lens[i]);
  const char* name = mcr_client_node_name(c, n);
  for (int j = 0; j < NODES; j++)
    if (strcmp(name, mcd_servers_string(&mcd[j])) == 0)
      return j;
  cr_assert_fail("node %s is not one of ours", name);
  return -1;
}

/* The first of keys[] that the ring gives node `node`. */
static int key_of_node(mcr_client_t* c, int node) {
  for (int i = 0; i < KEYS; i++)
    if (owner(c, i) == node)
      return i;
  cr_assert_fail("no key on node %d", node);
  return -1;
}

/* A client that ejects a node after one failure and does not try it again
 * within the test. */
static mcr_client_t* ejecting_client(void) {
  mcr_client_opts_t o = opts_default();
  o.eject = 1;
  o.failure_limit = 1;
  o.retry_timeout_ms = 60000;
  return cluster_client(&o);
}

TestSuite(router, .init = setup, .fini = teardown, .timeout = 60);

Test(router, set_multi_lands_on_ring_nodes) {
  mcr_client_t* c = cluster_client(NULL);
  const void* vals[KEYS];
  int st[KEYS];
  for (int i = 0; i < KEYS; i++)
    vals[i] = keys[i];
  int ok = t_set_multi(c, KEYS, keys, lens, vals, lens, 7, 0, st, 0);
  cr_assert_eq(ok, KEYS, "%d stored: %s", ok, mcr_client_last_error(c));
  int per_node[NODES] = {0};
  for (int i = 0; i < KEYS; i++) {
    cr_assert_eq(st[i], MCR_OK);
    int o = owner(c, i);
    per_node[o]++;
    char v[32];
    size_t len;
    uint32_t flags;
    cr_assert(raw_get(&mcd[o], keys[i], v, sizeof v, &len, &flags),
              "%s not on its ring node", keys[i]);
    cr_assert(len == lens[i] && memcmp(v, keys[i], len) == 0);
    cr_assert_eq(flags, 7);
    for (int j = 0; j < NODES; j++)
      if (j != o)
        cr_assert(!raw_get(&mcd[j], keys[i], v, sizeof v, &len, &flags),
                  "%s also on node %d", keys[i], j);
  }
  for (int j = 0; j < NODES; j++)
    cr_assert_gt(per_node[j], 10, "node %d got only %d keys", j, per_node[j]);
  mcr_client_free(c);
}

Test(router, get_multi_in_caller_order) {
  mcr_client_t* c = cluster_client(NULL);
  /* Store the even keys only, then ask for all in reverse order. */
  for (int i = 0; i < KEYS; i += 2)
    cr_assert_eq(mcr_client_set(c, keys[i], lens[i], keys[i], lens[i], 0, 0, 0),
                 MCR_OK);
  const char* rk[KEYS];
  size_t rl[KEYS];
  for (int i = 0; i < KEYS; i++) {
    rk[i] = keys[KEYS - 1 - i];
    rl[i] = lens[KEYS - 1 - i];
  }
  mcr_item_t items[KEYS];
  int hits = t_get_multi(c, KEYS, rk, rl, items);
  cr_assert_eq(hits, KEYS / 2);
  for (int i = 0; i < KEYS; i++) {
    int k = KEYS - 1 - i;
    if (k % 2) {
      cr_assert_eq(items[i].status, MCR_MISS, "%s", rk[i]);
    } else {
      cr_assert_eq(items[i].status, MCR_OK, "%s", rk[i]);
      cr_assert(items[i].value_len == rl[i] &&
                memcmp(items[i].value, rk[i], rl[i]) == 0);
    }
  }
  mcr_client_free(c);
}

Test(router, delete_multi_statuses) {
  mcr_client_t* c = cluster_client(NULL);
  for (int i = 0; i < 20; i += 2)
    mcr_client_set(c, keys[i], lens[i], "x", 1, 0, 0, 0);
  int st[20];
  int ok = t_delete_multi(c, 20, keys, lens, st, 0);
  cr_assert_eq(ok, 10);
  for (int i = 0; i < 20; i++)
    cr_assert_eq(st[i], i % 2 ? MCR_NOT_FOUND : MCR_OK, "%s", keys[i]);
  mcr_client_free(c);
}

Test(router, set_multi_checks_everything_before_sending) {
  mcr_client_t* c = cluster_client(NULL);
  const char* k[3] = {"good1", "bad key", "good2"};
  size_t kl[3] = {5, 7, 5};
  const void* v[3] = {"a", "b", "c"};
  size_t vl[3] = {1, 1, 1};
  int st[3];
  cr_assert_eq(t_set_multi(c, 3, k, kl, v, vl, 0, 0, st, 0), MCR_EKEY);
  mcr_client_opts_t o = opts_default();
  o.item_size_max = 100;
  mcr_client_t* small = cluster_client(&o);
  static char big[101];
  const void* v2[3] = {"a", big, "c"};
  size_t vl2[3] = {1, sizeof big, 1};
  const char* k2[3] = {"good1", "good3", "good2"};
  size_t kl2[3] = {5, 5, 5};
  int rc = t_set_multi(small, 3, k2, kl2, v2, vl2, 0, 0, st, 0);
  cr_assert_eq(rc, MCR_ETOOBIG, "got %s: %s", mcr_err_name(rc),
               mcr_client_last_error(small));
  for (int j = 0; j < NODES; j++)
    cr_assert_eq(mcd_stat(&mcd[j], "cmd_set"), 0, "node %d got a set", j);
  mcr_client_free(small);
  mcr_client_free(c);
}

/* Milliseconds of one call. */
static double timed_get(mcr_client_t* c, int i, int* rc) {
  struct timespec a, b;
  mcr_item_t it;
  clock_gettime(CLOCK_MONOTONIC, &a);
  *rc = mcr_client_get(c, keys[i], lens[i], &it);
  clock_gettime(CLOCK_MONOTONIC, &b);
  return (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
}

Test(router, dead_node_costs_only_its_keys_then_comes_back) {
  mcr_client_opts_t o = opts_default();
  o.retry_timeout_ms = 300;
  mcr_client_t* c = cluster_client(&o);
  for (int i = 0; i < KEYS; i++)
    mcr_client_set(c, keys[i], lens[i], keys[i], lens[i], 0, 0, 0);
  mcd_stop(&mcd[1]);

  /* One multi-get: the dead node's keys fail, the others hit. */
  mcr_item_t items[KEYS];
  int hits = t_get_multi(c, KEYS, keys, lens, items);
  int dead = 0;
  for (int i = 0; i < KEYS; i++) {
    if (owner(c, i) == 1) {
      dead++;
      cr_assert_lt(items[i].status, 0, "%s", keys[i]);
    } else {
      cr_assert_eq(items[i].status, MCR_OK, "%s", keys[i]);
    }
  }
  cr_assert_eq(hits, KEYS - dead);
  cr_assert_gt(dead, 0);

  /* The second failure marks it down: its keys now fail fast. */
  int i1 = key_of_node(c, 1);
  int rc;
  timed_get(c, i1, &rc);
  cr_assert_lt(rc, 0);
  timed_get(c, i1, &rc);
  cr_assert_eq(rc, MCR_ENODEDOWN, "got %s", mcr_err_name(rc));

  /* Restarted and past retry_timeout: used again. */
  mcd_restart(&mcd[1]);
  struct timespec ts = {0, 350 * 1000000};
  nanosleep(&ts, NULL);
  cr_assert_eq(mcr_client_set(c, keys[i1], lens[i1], "back", 4, 0, 0, 0),
               MCR_OK, "%s", mcr_client_last_error(c));
  cr_assert(raw_has(&mcd[1], keys[i1]));
  mcr_client_free(c);
}

Test(router, eject_moves_keys_of_a_down_node) {
  mcr_client_t* c = ejecting_client();
  int i1 = key_of_node(c, 2);
  mcd_stop(&mcd[2]);
  int rc = mcr_client_set(c, keys[i1], lens[i1], "v", 1, 0, 0, 0);
  cr_assert_lt(rc, 0, "the first failure is reported");
  /* Marked down: the key now goes to another node and succeeds. */
  rc = mcr_client_set(c, keys[i1], lens[i1], "moved", 5, 0, 0, 0);
  cr_assert_eq(rc, MCR_OK, "%s: %s", mcr_err_name(rc),
               mcr_client_last_error(c));
  int found = 0;
  for (int j = 0; j < NODES; j++)
    if (j != 2 && raw_has(&mcd[j], keys[i1]))
      found++;
  cr_assert_eq(found, 1);
  /* Keys of live nodes did not move. */
  int i0 = key_of_node(c, 0);
  cr_assert_eq(mcr_client_set(c, keys[i0], lens[i0], "stay", 4, 0, 0, 0),
               MCR_OK);
  cr_assert(raw_has(&mcd[0], keys[i0]));
  mcr_client_free(c);
}

Test(router, ignore_errors_makes_a_dead_node_a_miss) {
  mcr_client_opts_t o = opts_default();
  o.ignore_errors = 1;
  mcr_client_t* c = cluster_client(&o);
  int i3 = key_of_node(c, 3);
  mcd_stop(&mcd[3]);
  mcr_item_t it;
  for (int round = 0; round < 4; round++) {
    cr_assert_eq(mcr_client_get(c, keys[i3], lens[i3], &it), MCR_MISS);
    cr_assert_eq(mcr_client_set(c, keys[i3], lens[i3], "v", 1, 0, 0, 0),
                 MCR_NOT_STORED);
  }
  cr_assert_eq(cl_stats(c).ignored_errors, 8);
  mcr_client_free(c);
}

/* mcr__route_many against mcr__route for the cluster's keys plus keys too
 * long for the hash lanes (they mix in the same batches). */
static void check_route_many(mcr_client_t* c) {
  enum { N = KEYS + 50 };
  static char longbuf[50][200];
  const char* k[N];
  size_t l[N], got[N];
  for (int i = 0; i < N; i++) {
    if (i < KEYS) {
      k[i] = keys[i];
      l[i] = lens[i];
      continue;
    }
    int j = i - KEYS;
    l[i] =
        (size_t)snprintf(longbuf[j], sizeof longbuf[j], "%0*d", 56 + 3 * j, j);
    k[i] = longbuf[j];
  }
  for (size_t n = 0; n <= N; n += n < 20 ? 1 : 23) {
    for (size_t i = 0; i < N; i++)
      got[i] = SIZE_MAX;
    mcr__route_many(c, n, k, l, got);
    for (size_t i = 0; i < n; i++)
      cr_assert_eq(got[i], (size_t)mcr__route(c, k[i], l[i])->at,
                   "n %zu key %zu (%zu bytes)", n, i, l[i]);
    for (size_t i = n; i < N; i++)
      cr_assert_eq(got[i], SIZE_MAX);
  }
}

Test(router, route_many_matches_route) {
  for (int mode = 0; mode < 3; mode++) {
    mcr_client_opts_t o = opts_default();
    o.distribution = (mcr_distribution_t)mode;
    mcr_client_t* c = cluster_client(&o);
    check_route_many(c);
    mcr_client_free(c);
  }
  /* One server: no ring, every key to node 0. */
  mcr_client_opts_t o = opts_default();
  o.servers = mcd_servers_string(&mcd[1]);
  mcr_client_t* c = NULL;
  cr_assert_eq(mcr_client_new(&c, &o, NULL, 0), 0);
  check_route_many(c);
  mcr_client_free(c);
  /* A node marked down: with eject its keys move, the same way in both. */
  c = ejecting_client();
  int i2 = key_of_node(c, 2);
  mcd_stop(&mcd[2]);
  cr_assert_lt(mcr_client_set(c, keys[i2], lens[i2], "v", 1, 0, 0, 0), 0);
  cr_assert_eq(c->health.ndown, 1);
  check_route_many(c);
  size_t moved = 0;
  mcr__route_many(c, 1, &keys[i2], &lens[i2], &moved);
  cr_assert_neq(moved, mcr_ring_locate(mcr_client_ring(c), keys[i2], lens[i2]),
                "the down node's key was not moved");
  c->opts.eject = 0; /* down but not ejected: keys stay on their node */
  check_route_many(c);
  mcr_client_free(c);
}

/* ------------------------------------------------ switches */

/* Publishes the four nodes in the order `order` into dir. */
static void publish_order(const char* dir, const int order[NODES]) {
  char err[256];
  mcr__snapshot_writer_t* w;
  cr_assert_eq(mcr__snapshot_writer_open(&w, dir, err, sizeof err), 0, "%s",
               err);
  mcr__ring_node_in_t in[NODES];
  for (int i = 0; i < NODES; i++)
    in[i] = (mcr__ring_node_in_t){
        .host = "127.0.0.1", .port = (uint16_t)mcd[order[i]].port, .weight = 1};
  cr_assert_eq(
      mcr__snapshot_writer_publish_nodes(w, MCR_DIST_KETAMA, in, NODES, NULL),
      0, "%s", mcr__snapshot_writer_error(w));
  mcr__snapshot_writer_close(w);
}

/* Reads every key through c and asserts all hit. */
static void all_hit(mcr_client_t* c) {
  mcr_item_t items[KEYS];
  size_t hits = 0;
  cr_assert_eq(mcr_client_get_multi(c, KEYS, keys, lens, items, &hits), 0);
  cr_assert_eq(hits, KEYS, "%zu of %d keys hit", hits, KEYS);
}

Test(router, a_reordered_ring_keeps_every_connection) {
  char dir[64];
  ring_dir_make(dir, sizeof dir, "rt");
  const int orders[][NODES] = {{0, 1, 2, 3}, {3, 2, 1, 0}, {1, 3, 0, 2}};
  publish_order(dir, orders[0]);
  mcr_client_opts_t o = opts_default();
  o.ring_dir = dir;
  mcr_client_t* c = NULL;
  char err[256];
  cr_assert_eq(mcr_client_new(&c, &o, err, sizeof err), 0, "%s", err);
  for (int i = 0; i < KEYS; i++)
    cr_assert_eq(mcr_client_set(c, keys[i], lens[i], "v", 1, 0, 0, 0), MCR_OK);
  all_hit(c);
  uint64_t conns[NODES];
  for (int j = 0; j < NODES; j++)
    conns[j] = mcd_stat(&mcd[j], "total_connections");
  uint64_t gen = mcr_client_generation(c);
  for (size_t k = 1; k < sizeof orders / sizeof orders[0]; k++) {
    publish_order(dir, orders[k]);
    all_hit(c); /* switches first: placement follows identity, not order */
    cr_assert_gt(mcr_client_generation(c), gen, "the client did not switch");
    gen = mcr_client_generation(c);
    /* Each mcd_stat is one connection of its own, and nothing else. */
    for (int j = 0; j < NODES; j++)
      cr_assert_eq(mcd_stat(&mcd[j], "total_connections"), conns[j] + k,
                   "order %zu: node %d was reconnected", k, j);
  }
  mcr_client_free(c);
  ring_dir_remove(dir);
}

/* A ring of our memcached 0 and nodes on 127.0.1.<k>, k = 1 .. n - 1, that
 * nobody listens on, node `skip` left out (0: none). Leaving one out only
 * moves that node's keys: a key on our memcached stays there. */
static mcr_ring_t* wide_ring(int n, int skip) {
  static char hosts[64][24];
  mcr__ring_node_in_t in[64];
  int m = 0;
  for (int k = 1; k < n; k++) {
    if (k == skip)
      continue;
    snprintf(hosts[k], sizeof hosts[k], "127.0.1.%d", k);
    in[m++] = (mcr__ring_node_in_t){.host = hosts[k], .port = 1, .weight = 1};
  }
  /* Last, so that a node left out before it moves its index. */
  in[m++] = (mcr__ring_node_in_t){
      .host = "127.0.0.1", .port = (uint16_t)mcd[0].port, .weight = 1};
  mcr_ring_t* r = NULL;
  char err[256] = "";
  cr_assert_eq(mcr__ring_build_nodes(&r, MCR_DIST_KETAMA, in, (size_t)m, err,
                                     sizeof err),
               0, "%s", err);
  return r;
}

/* The first of keys[] that c routes to our memcached 0 (read from the
 * ring: naming the client's node would make it). */
static int key_on_real(mcr_client_t* c) {
  const mcr_ring_t* r = mcr_client_ring(c);
  for (int i = 0; i < KEYS; i++) {
    mcr_ring_node_t n;
    cr_assert_eq(mcr_ring_node(r, mcr_ring_locate(r, keys[i], lens[i]), &n), 0);
    if (n.port == mcd[0].port)
      return i;
  }
  cr_assert_fail("no key on memcached 0");
  return -1;
}

/* Writes ring r as generation `gen` with the map `to` (n entries) from
 * generation `from`, as a writer would, and publishes it. */
static void plant_with_map(mcr__snapshot_writer_t* w, const char* dir,
                           const mcr_ring_t* r, uint64_t gen, uint64_t from,
                           const uint32_t* to, uint32_t n) {
  mcr__snap_remap_t map = {.from = from, .to = to, .n = n};
  size_t size = mcr__snapshot_size(r, n);
  void* buf = malloc(size);
  cr_assert_not_null(buf);
  mcr__snapshot_encode(r, gen, 1, NULL, &map, buf, size);
  char p[128];
  snprintf(p, sizeof p, "%s/ring.%" PRIu64, dir, gen);
  int fd = open(p, O_CREAT | O_EXCL | O_WRONLY, 0640);
  cr_assert_geq(fd, 0);
  cr_assert_eq(write(fd, buf, size), (ssize_t)size);
  close(fd);
  free(buf);
  mcr__snapshot_writer_store_generation(w, gen);
}

/* A worker holds state for the nodes it uses, not for the ring: one node
 * of forty after a call. A switch moves that node through the map the
 * writer published from the generation before (the node's index shifts,
 * its connection stays), and a map that lies is caught by the identities
 * (the node still lands where its identity is). */
Test(router, a_switch_moves_only_the_nodes_in_use) {
  char dir[64];
  ring_dir_make(dir, sizeof dir, "rt");
  char err[256];
  mcr__snapshot_writer_t* w;
  cr_assert_eq(mcr__snapshot_writer_open(&w, dir, err, sizeof err), 0, "%s",
               err);
  mcr_ring_t* a = wide_ring(40, 0);
  uint64_t ga = 0;
  cr_assert_eq(mcr__snapshot_writer_publish(w, a, &ga), 0);
  mcr_client_opts_t o = opts_default();
  o.ring_dir = dir;
  o.host_stats = 0;
  mcr_client_t* c = NULL;
  cr_assert_eq(mcr_client_new(&c, &o, err, sizeof err), 0, "%s", err);
  cr_assert_eq(c->nlive, 0, "nodes made before any call");
  int k = key_on_real(c);
  cr_assert_eq(mcr_client_set(c, keys[k], lens[k], "v", 1, 0, 0, 0), MCR_OK);
  cr_assert_eq(c->nlive, 1, "%zu nodes made for one key", c->nlive);
  uint32_t at_a = c->live[0]->at;
  uint64_t conns = mcd_stat(&mcd[0], "total_connections");

  /* A node that sorts before ours leaves: ours moves down by one. */
  mcr_ring_t* b = wide_ring(40, 1);
  uint64_t gb = 0;
  cr_assert_eq(mcr__snapshot_writer_publish(w, b, &gb), 0);
  mcr_item_t it;
  cr_assert_eq(mcr_client_get(c, keys[k], lens[k], &it), MCR_OK);
  cr_assert_eq(mcr_client_generation(c), gb);
  const mcr_ring_t* rb = mcr_client_ring(c);
  cr_assert_eq(rb->remap_from, ga, "the writer published no map");
  cr_assert_eq(c->nlive, 1);
  uint32_t at_b = c->live[0]->at;
  cr_assert_eq(at_b, at_a - 1, "the node did not move down");
  cr_assert_eq(mcr__ring_remap(rb, ga, at_a), at_b);
  cr_assert_eq(mcr__ring_ident_at(rb, at_b), c->live[0]->ident);
  cr_assert_eq(mcr_client_node_name(c, at_b), c->live[0]->srv.name);

  /* A map that sends every node to the index after ours: the identity
   * decides. */
  uint32_t wrong[64];
  for (int i = 0; i < 64; i++)
    wrong[i] = (at_a + 1) % 40;
  plant_with_map(w, dir, a, gb + 1, gb, wrong, 39);
  cr_assert_eq(mcr_client_get(c, keys[k], lens[k], &it), MCR_OK);
  cr_assert_eq(mcr_client_generation(c), gb + 1);
  cr_assert_eq(c->nlive, 1);
  cr_assert_eq(c->live[0]->at, at_a, "the lying map placed the node");
  /* Each mcd_stat is one connection of its own: ours was never remade. */
  cr_assert_eq(mcd_stat(&mcd[0], "total_connections"), conns + 1);
  mcr_client_free(c);
  mcr_ring_free(a);
  mcr_ring_free(b);
  mcr__snapshot_writer_close(w);
  ring_dir_remove(dir);
}

/* route_skip: a prefixed key is stored whole, on the node that the key
 * without its prefix routes to, in single and multi-key calls alike; a key
 * no longer than the skip is routed whole. */
Test(router, route_skip_places_by_the_unprefixed_key) {
  mcr_client_t* plain = cluster_client(NULL);
  mcr_client_opts_t o = opts_default();
  o.route_skip = 4;
  mcr_client_t* c = cluster_client(&o);
  char pk[KEYS][24];
  const char* pkeys[KEYS];
  size_t plens[KEYS];
  int moved = 0;
  for (int i = 0; i < KEYS; i++) {
    snprintf(pk[i], sizeof pk[i], "pfx:%s", keys[i]);
    pkeys[i] = pk[i];
    plens[i] = strlen(pk[i]);
    size_t whole = mcr_ring_locate(mcr_client_ring(c), pk[i], plens[i]);
    if (whole != mcr_ring_locate(mcr_client_ring(c), keys[i], lens[i]))
      moved++;
  }
  cr_assert_gt(moved, KEYS / 4, "the prefix moves too few keys to tell");
  size_t routed[KEYS];
  mcr__route_many(c, KEYS, pkeys, plens, routed);
  for (int i = 0; i < KEYS; i++) {
    int o_i = owner(plain, i);
    cr_assert_eq(mcr__route(c, pkeys[i], plens[i])->at, o_i);
    cr_assert_eq(routed[i], (size_t)o_i, "%s", pkeys[i]);
  }
  for (int i = 0; i < 20; i++) {
    cr_assert_eq(mcr_client_set(c, pkeys[i], plens[i], "v", 1, 0, 0, 0),
                 MCR_OK);
    cr_assert(raw_has(&mcd[owner(plain, i)], pkeys[i]), "%s", pkeys[i]);
  }
  /* Not longer than the skip: the whole key routes. */
  const char* shortk = "ab";
  size_t whole = mcr_ring_locate(mcr_client_ring(c), shortk, 2);
  cr_assert_eq((size_t)mcr__route(c, shortk, 2)->at, whole);
  size_t slen = 2, sr = 99;
  mcr__route_many(c, 1, &shortk, &slen, &sr);
  cr_assert_eq(sr, whole);
  mcr_client_free(c);
  mcr_client_free(plain);
}

/* route_by: every key of every call goes to the server key's node (both
 * routes, and the real stores: a multi-key set and get included), until
 * route_by(NULL); the server key overrides route_skip; an over-long server
 * key is refused and changes nothing. */
Test(router, route_by_places_every_key_on_the_server_keys_node) {
  mcr_client_opts_t o = opts_default();
  o.route_skip = 2;
  mcr_client_t* c = cluster_client(&o);
  const char* sk = "user:42";
  size_t target = mcr_ring_locate(mcr_client_ring(c), sk, strlen(sk));
  int elsewhere = 0;
  for (int i = 0; i < KEYS; i++)
    elsewhere += (size_t)mcr__route(c, keys[i], lens[i])->at != target;
  cr_assert_gt(elsewhere, KEYS / 4, "too few keys live elsewhere to tell");
  cr_assert_eq(mcr_client_route_by(c, sk, strlen(sk)), MCR_OK);
  size_t routed[KEYS];
  mcr__route_many(c, KEYS, keys, lens, routed);
  for (int i = 0; i < KEYS; i++) {
    cr_assert_eq((size_t)mcr__route(c, keys[i], lens[i])->at, target);
    cr_assert_eq(routed[i], target);
  }
  for (int i = 0; i < 20; i++) {
    cr_assert_eq(mcr_client_set(c, keys[i], lens[i], "v", 1, 0, 0, 0), MCR_OK);
    cr_assert(raw_has(&mcd[target], keys[i]), "%s", keys[i]);
  }
  mcr_item_t items[20];
  size_t hits = 0;
  cr_assert_eq(mcr_client_get_multi(c, 20, keys, lens, items, &hits), MCR_OK);
  cr_assert_eq(hits, 20);
  /* Too long: refused, the pin stays. */
  char big[251];
  memset(big, 'x', sizeof big);
  cr_assert_eq(mcr_client_route_by(c, big, sizeof big), MCR_EKEY);
  cr_assert_str_neq(mcr_client_last_error(c), "");
  cr_assert_eq((size_t)mcr__route(c, keys[0], lens[0])->at, target);
  /* Any bytes, even none, are a server key. */
  cr_assert_eq(mcr_client_route_by(c, "a b\n", 4), MCR_OK);
  cr_assert_eq((size_t)mcr__route(c, keys[0], lens[0])->at,
               mcr_ring_locate(mcr_client_ring(c), "a b\n", 4));
  cr_assert_eq(mcr_client_route_by(c, "", 0), MCR_OK);
  cr_assert_eq((size_t)mcr__route(c, keys[0], lens[0])->at,
               mcr_ring_locate(mcr_client_ring(c), "", 0));
  /* Unpinned: each key by itself again (less its route_skip bytes). */
  cr_assert_eq(mcr_client_route_by(c, NULL, 0), MCR_OK);
  for (int i = 0; i < KEYS; i++)
    cr_assert_eq((size_t)mcr__route(c, keys[i], lens[i])->at,
                 mcr_ring_locate(mcr_client_ring(c), keys[i] + 2, lens[i] - 2));
  mcr_client_free(c);
}

/* ------------------------------------------------ embedded `ketama` names */

/* An embedded `ketama` ring resolves every host name when the client is
 * made. Many names under a short connect timeout: each name has its own
 * timeout, so 5,000 lookups of "localhost" (one per port; nothing needs to
 * listen) succeed where one timeout shared by all of them ran out, and
 * every node gets the loopback address it resolves to. */
Test(embedded, many_names_each_within_its_own_timeout, .timeout = 120) {
  enum { N = 5000 };
  size_t cap = (size_t)N * 24;
  char* list = malloc(cap);
  size_t len = 0;
  for (int i = 0; i < N; i++)
    len += (size_t)snprintf(list + len, cap - len, "%slocalhost:%d",
                            i ? "," : "", 20000 + i);
  mcr_client_opts_t o;
  mcr_client_opts_init(&o);
  o.servers = list;
  o.distribution = MCR_DIST_KETAMA;
  o.connect_timeout_ms = 250;
  mcr_client_t* c = NULL;
  char err[256];
  int rc = mcr_client_new(&c, &o, err, sizeof err);
  cr_assert_eq(rc, 0, "%s (%s)", err, mcr_err_name(rc));
  const mcr_ring_t* r = mcr_client_ring(c);
  cr_assert_eq(mcr_ring_node_count(r), N);
  for (size_t i = 0; i < N; i++) {
    mcr_ring_node_t n;
    cr_assert_eq(mcr_ring_node(r, i, &n), 0);
    cr_assert(
        strcmp(n.address, "127.0.0.1") == 0 || strstr(n.address, ":1") != NULL,
        "node %zu (%s:%u) at %s", i, n.host, n.port, n.address);
  }
  mcr_client_free(c);
  free(list);
}

/* A name that does not resolve fails the client, named in the message,
 * without waiting for the names after it. */
Test(embedded, a_bad_name_among_many_fails_by_name) {
  enum { N = 200 };
  size_t cap = (size_t)N * 24 + 64;
  char* list = malloc(cap);
  size_t len = 0;
  for (int i = 0; i < N; i++)
    len += (size_t)snprintf(list + len, cap - len, "%slocalhost:%d",
                            i ? "," : "", 20000 + i);
  snprintf(list + len, cap - len, ",no-such-host.invalid:11211");
  mcr_client_opts_t o;
  mcr_client_opts_init(&o);
  o.servers = list;
  o.distribution = MCR_DIST_KETAMA;
  mcr_client_t* c = NULL;
  char err[256];
  int rc = mcr_client_new(&c, &o, err, sizeof err);
  cr_assert(rc == MCR_ERESOLVE || rc == MCR_ECONNTIMEOUT, "rc %d: %s", rc, err);
  cr_assert(strstr(err, "no-such-host.invalid:11211"), "%s", err);
  cr_assert_null(c);
  free(list);
}
