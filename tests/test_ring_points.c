/* test_ring_points.c — the fast continuum against the ring builder's.
 *
 * lib/ring_points.c makes a continuum's points by appending digits to a
 * per-node prefix and sorts them with a radix sort; the ring builder
 * (lib/ketama.c, mcr__ring_build_nodes) formats every node string with
 * snprintf and sorts with qsort. For large rings of every mode — weights
 * 1..5, ports 11211 and others, IPv4, IPv6 and unresolved names, host
 * names long enough to need two MD5 blocks — both must give the same
 * points and owners, byte for byte. The digest count per node is read
 * back from the built ring (its points per node / points per digest), so
 * the comparison is of the strings, hashes and order alone.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"

/* Node i of a test ring. */
static void node(size_t i, char* host, size_t hcap, char* addr, size_t acap,
                 mcr__ring_node_in_t* in) {
  switch (i % 5) {
    case 0:
      snprintf(addr, acap, "10.%zu.%zu.%zu", (i >> 16) & 255, (i >> 8) & 255,
               i & 255);
      snprintf(host, hcap, "%s", addr);
      break;
    case 1:
      snprintf(addr, acap, "fd00::%zx:%zx", (i >> 16) & 0xffff, i & 0xffff);
      snprintf(host, hcap, "%s", addr);
      break;
    case 2:
      snprintf(addr, acap, "10.200.%zu.%zu", (i >> 8) & 255, i & 255);
      snprintf(host, hcap, "node-%zu.cache.example.com", i);
      break;
    case 3: /* over 55 bytes with its digits: two MD5 blocks */
      snprintf(addr, acap, "10.201.%zu.%zu", (i >> 8) & 255, i & 255);
      snprintf(host, hcap,
               "a-rather-long-node-name-%zu.some-cluster.cfg.use1.cache."
               "amazonaws.com",
               i);
      break;
    default:
      snprintf(addr, acap, "192.168.%zu.%zu", (i >> 8) & 255, i & 255);
      snprintf(host, hcap, "n%zu", i);
      break;
  }
  *in =
      (mcr__ring_node_in_t){.host = host,
                            .address = addr,
                            .port = (uint16_t)(i % 3 ? 11211 : 11000 + i % 97),
                            .weight = (uint32_t)(1 + i % 5),
                            .state = MCR__NODE_UP};
}

/* Builds an n-node ring in `mode` both ways and compares. */
static void same_continuum(mcr_distribution_t mode, size_t n) {
  mcr__ring_node_in_t* in = calloc(n, sizeof(*in));
  char(*hosts)[96] = calloc(n, sizeof(*hosts));
  char(*addrs)[48] = calloc(n, sizeof(*addrs));
  cr_assert(in && hosts && addrs);
  for (size_t i = 0; i < n; i++)
    node(i, hosts[i], sizeof(hosts[i]), addrs[i], sizeof(addrs[i]), &in[i]);
  mcr_ring_t* r;
  char err[256];
  int rc = mcr__ring_build_nodes(&r, mode, in, n, err, sizeof(err));
  cr_assert_eq(rc, 0, "%s", err);
  uint32_t per = mode == MCR_DIST_XXH3 ? 2 : 4;
  uint32_t* hashes = calloc(n, sizeof(*hashes));
  for (size_t i = 0; i < n; i++) {
    cr_assert_eq(r->nodes[i].points % per, 0);
    hashes[i] = r->nodes[i].points / per;
  }
  uint32_t* points = malloc((size_t)r->npoints * sizeof(*points) + 4);
  uint32_t* owners = malloc((size_t)r->npoints * sizeof(*owners) + 4);
  size_t np = 0;
  cr_assert_eq(mcr__ring_points(mode, r->nodes, n, hashes, points, owners, &np),
               0);
  cr_assert_eq(np, r->npoints, "%s: %zu points, the builder %u",
               mcr_distribution_name(mode), np, r->npoints);
  for (size_t i = 0; i < np; i++) {
    cr_assert_eq(points[i], r->points[i], "%s: point %zu: %08x, builder %08x",
                 mcr_distribution_name(mode), i, points[i], r->points[i]);
    cr_assert_eq(owners[i], r->owners[i], "%s: owner of point %zu: %u, %u",
                 mcr_distribution_name(mode), i, owners[i], r->owners[i]);
  }
  free(points);
  free(owners);
  free(hashes);
  mcr_ring_free(r);
  free(in);
  free(hosts);
  free(addrs);
}

Test(ring_points, ketama_large, .timeout = 120) {
  same_continuum(MCR_DIST_KETAMA, 8000);
}

Test(ring_points, ketama_libmemcached_large, .timeout = 120) {
  same_continuum(MCR_DIST_KETAMA_LIBMEMCACHED, 8000);
}

Test(ring_points, xxh3_large, .timeout = 120) {
  same_continuum(MCR_DIST_XXH3, 8000);
}

/* Small rings: digit counts cross 9 -> 10 -> 100 within one node, one
 * node alone, ties decided by the node index. */
Test(ring_points, small_rings) {
  for (size_t n = 1; n <= 7; n++) {
    same_continuum(MCR_DIST_KETAMA, n);
    same_continuum(MCR_DIST_KETAMA_LIBMEMCACHED, n);
    same_continuum(MCR_DIST_XXH3, n);
  }
}
