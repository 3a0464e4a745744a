/* test_ring_points.c — the ring builder's continuum against a slow model.
 *
 * lib/ring_points.c makes the points of every ring the builder
 * (mcr__ring_build_nodes) builds: digits appended to a per-node prefix in
 * an MD5 block, then a radix sort. The model here formats every node
 * string with snprintf, hashes it with nettle's md5 (XXH3 for xxh3) and
 * sorts the (value, node index) pairs with qsort, as the builder did
 * before. For large rings of every mode — weights 1..5, ports 11211 and
 * others, IPv4, IPv6 and unresolved names, host names long enough to need
 * two MD5 blocks — both must give the same points and owners, byte for
 * byte. The digest count per node is read back from the built ring (its
 * points per node / points per digest), so the comparison is of the
 * strings, hashes and order alone.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/md5.h>
#include <xxhash.h>

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

/* The string node n hashes for digest i (docs/ring.md). */
static size_t node_string(mcr_distribution_t mode, const mcr__ring_node_t* n,
                          uint32_t i, char* buf, size_t len) {
  int k;
  if (mode == MCR_DIST_KETAMA)
    k = snprintf(buf, len, "%s:%u-%u", n->address, n->port, i);
  else if (mode == MCR_DIST_KETAMA_LIBMEMCACHED && n->port == 11211)
    k = snprintf(buf, len, "%s-%u", n->host, i);
  else if (mode == MCR_DIST_XXH3 && strchr(n->host, ':'))
    k = snprintf(buf, len, "[%s]:%u-%u", n->host, n->port, i);
  else
    k = snprintf(buf, len, "%s:%u-%u", n->host, n->port, i);
  return (size_t)k;
}

static int cmp_u64(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
  return x < y ? -1 : x > y;
}

/* The model: every (value << 32 | node index) pair, sorted. */
static size_t model_points(mcr_distribution_t mode,
                           const mcr__ring_node_t* nodes, size_t n,
                           const uint32_t* hashes, uint32_t* points,
                           uint32_t* owners) {
  size_t total = 0;
  for (size_t i = 0; i < n; i++)
    total += (size_t)hashes[i] * (mode == MCR_DIST_XXH3 ? 2 : 4);
  uint64_t* pairs = malloc((total + 1) * sizeof(*pairs));
  cr_assert_not_null(pairs);
  size_t k = 0;
  char buf[MCR__RING_MAX_STR * 2 + 32];
  for (size_t ni = 0; ni < n; ni++) {
    for (uint32_t i = 0; i < hashes[ni]; i++) {
      size_t len = node_string(mode, &nodes[ni], i, buf, sizeof buf);
      if (mode == MCR_DIST_XXH3) {
        uint64_t h = XXH3_64bits(buf, len);
        pairs[k++] = (h & 0xffffffffu) << 32 | ni;
        pairs[k++] = (h >> 32) << 32 | ni;
        continue;
      }
      struct md5_ctx c;
      uint8_t d[MD5_DIGEST_SIZE];
      md5_init(&c);
      md5_update(&c, len, (const uint8_t*)buf);
      md5_digest(&c, sizeof d, d);
      for (int j = 0; j < 4; j++) {
        uint32_t v = (uint32_t)d[4 * j] | (uint32_t)d[4 * j + 1] << 8 |
                     (uint32_t)d[4 * j + 2] << 16 |
                     (uint32_t)d[4 * j + 3] << 24;
        pairs[k++] = (uint64_t)v << 32 | ni;
      }
    }
  }
  qsort(pairs, k, sizeof *pairs, cmp_u64);
  for (size_t i = 0; i < k; i++) {
    points[i] = (uint32_t)(pairs[i] >> 32);
    owners[i] = (uint32_t)pairs[i];
  }
  free(pairs);
  return k;
}

/* Builds an n-node ring in `mode` and compares it with the model. */
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
  size_t np = model_points(mode, r->nodes, n, hashes, points, owners);
  cr_assert_eq(np, r->npoints, "%s: %zu points, the builder %u",
               mcr_distribution_name(mode), np, r->npoints);
  for (size_t i = 0; i < np; i++) {
    cr_assert_eq(points[i], r->points[i],
                 "%s: point %zu: model %08x, builder %08x",
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
