/* test_ketama.c — the three distribution modes of lib/ketama.c.
 *
 * The reference vectors in tests/data (produced by spymemcached's rule and
 * by libmemcached 1.1.4 itself) must match exactly. Beyond them, every mode
 * is checked against a deliberately naive model written here from the rules
 * in docs/ring.md: node strings formatted with snprintf, MD5 through
 * nettle's ordinary md5_ctx API (so the one-block fast path of ketama.c is
 * checked too), and a linear scan for the first point >= the key hash. Node
 * lists vary weights, ports and address families, and keys run from 1 to
 * 250 bytes, so the rule is tested rather than the samples. The batch hash
 * of multi-key calls (mcr__ring_hash_many, md5x.c's SIMD lanes) must equal
 * the one-key hash on every key length 0..250, at every lane position and
 * for every lane remainder, on each instruction set the machine has (each
 * test logs the level that ran).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/md5.h>
#include <xxhash.h>

#include "ring.h"

/* ---------------------------------------------------------------- model */

typedef struct {
  uint32_t value;
  uint32_t node;
} model_point_t;

typedef struct {
  model_point_t* p;
  size_t n;
} model_t;

static uint32_t le32(const uint8_t* b) {
  return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
         (uint32_t)b[3] << 24;
}

static void md5(const char* s, size_t len, uint8_t out[16]) {
  struct md5_ctx c;
  md5_init(&c);
  md5_update(&c, len, (const uint8_t*)s);
  md5_digest(&c, 16, out);
}

static int cmp_point(const void* a, const void* b) {
  const model_point_t *x = a, *y = b;
  if (x->value != y->value)
    return x->value < y->value ? -1 : 1;
  return x->node < y->node ? -1 : x->node > y->node;
}

/* hosts[i] is the string hashed for node i before ":<port>" (the address
 * in ketama mode, the configured host otherwise). */
static model_t model_build(mcr_distribution_t mode, const char* const* hosts,
                           const unsigned* ports, const unsigned* weights,
                           size_t n) {
  model_t m = {calloc(1 << 22, sizeof(model_point_t)), 0};
  unsigned total = 0;
  for (size_t i = 0; i < n; i++)
    total += weights[i];
  for (size_t i = 0; i < n; i++) {
    unsigned reps;
    if (mode == MCR_DIST_KETAMA) {
      reps = 40 * weights[i];
    } else if (mode == MCR_DIST_KETAMA_LIBMEMCACHED) {
      float pct = (float)weights[i] / (float)total;
      float t = pct * 160.0f / 4.0f * (float)n;
      reps = (unsigned)floor((float)((double)t + 1e-10));
    } else {
      reps = 80 * weights[i];
    }
    for (unsigned r = 0; r < reps; r++) {
      char s[300];
      int len;
      if (mode == MCR_DIST_KETAMA_LIBMEMCACHED && ports[i] == 11211)
        len = snprintf(s, sizeof(s), "%s-%u", hosts[i], r);
      else if (mode == MCR_DIST_XXH3 && strchr(hosts[i], ':'))
        len = snprintf(s, sizeof(s), "[%s]:%u-%u", hosts[i], ports[i], r);
      else
        len = snprintf(s, sizeof(s), "%s:%u-%u", hosts[i], ports[i], r);
      if (mode == MCR_DIST_XXH3) {
        uint64_t h = XXH3_64bits(s, (size_t)len);
        m.p[m.n++] = (model_point_t){(uint32_t)h, (uint32_t)i};
        m.p[m.n++] = (model_point_t){(uint32_t)(h >> 32), (uint32_t)i};
      } else {
        uint8_t d[16];
        md5(s, (size_t)len, d);
        for (int j = 0; j < 4; j++)
          m.p[m.n++] = (model_point_t){le32(d + 4 * j), (uint32_t)i};
      }
    }
  }
  qsort(m.p, m.n, sizeof(*m.p), cmp_point);
  return m;
}

static uint32_t model_hash(mcr_distribution_t mode, const char* k, size_t len) {
  if (mode == MCR_DIST_XXH3)
    return (uint32_t)XXH3_64bits(k, len);
  uint8_t d[16];
  md5(k, len, d);
  return le32(d);
}

static uint32_t model_find(const model_t* m, uint32_t h) {
  for (size_t i = 0; i < m->n; i++)
    if (m->p[i].value >= h)
      return m->p[i].node;
  return m->p[0].node;
}

/* ---------------------------------------------------------------- helpers */

static char* data_path(const char* name) {
  const char* top = getenv("MCR_TOP_SRCDIR");
  static char buf[1024];
  snprintf(buf, sizeof(buf), "%s/tests/data/%s", top ? top : ".", name);
  return buf;
}

static void check_vectors(mcr_distribution_t mode, const char* servers,
                          const char* file) {
  mcr_ring_t* r;
  cr_assert_eq(mcr_ring_build(&r, mode, servers, NULL, 0), 0);
  FILE* f = fopen(data_path(file), "r");
  cr_assert_not_null(f, "cannot open %s (is MCR_TOP_SRCDIR set?)",
                     data_path(file));
  char line[600];
  int n = 0;
  while (fgets(line, sizeof(line), f)) {
    char key[300], want[300], got[300];
    if (sscanf(line, "%299s %299s", key, want) != 2)
      continue;
    mcr_ring_node_t nd;
    cr_assert_eq(mcr_ring_node(r, mcr_ring_locate(r, key, strlen(key)), &nd),
                 0);
    snprintf(got, sizeof(got), "%s:%u", nd.host, nd.port);
    cr_expect_str_eq(got, want, "key %s", key);
    n++;
  }
  fclose(f);
  cr_assert_eq(n, 300);
  mcr_ring_free(r);
}

/* Compares a ring with the model on keys of every length 1..250 and on
 * every point value and its neighbours (the ring's edges). */
static void check_against_model(mcr_distribution_t mode,
                                const char* const* hosts,
                                const char* const* addrs, const unsigned* ports,
                                const unsigned* weights, size_t n) {
  mcr__ring_node_in_t in[64];
  for (size_t i = 0; i < n; i++)
    in[i] = (mcr__ring_node_in_t){hosts[i], addrs ? addrs[i] : NULL,
                                  (uint16_t)ports[i], weights[i], 0};
  mcr_ring_t* r;
  char err[200] = "";
  cr_assert_eq(mcr__ring_build_nodes(&r, mode, in, n, err, sizeof(err)), 0,
               "%s", err);
  model_t m =
      model_build(mode, addrs && mode == MCR_DIST_KETAMA ? addrs : hosts, ports,
                  weights, n);
  cr_assert_eq(r->npoints, m.n);
  for (size_t i = 0; i < n; i++) {
    size_t pts = 0;
    for (size_t j = 0; j < m.n; j++)
      pts += m.p[j].node == i;
    mcr_ring_node_t nd;
    mcr_ring_node(r, i, &nd);
    cr_expect_eq(nd.points, pts, "node %zu points", i);
  }
  srand(7);
  char key[251];
  for (int round = 0; round < 4; round++) {
    for (size_t len = 1; len <= 250; len++) {
      for (size_t j = 0; j < len; j++)
        key[j] = (char)(33 + rand() % 94);
      cr_assert_eq(mcr_ring_locate(r, key, len),
                   model_find(&m, model_hash(mode, key, len)),
                   "mode %d key length %zu", mode, len);
    }
  }
  for (size_t j = 0; j < m.n; j += 7) {
    uint32_t v = m.p[j].value;
    cr_assert_eq(mcr__ring_find(r, v), model_find(&m, v));
    cr_assert_eq(mcr__ring_find(r, v + 1), model_find(&m, v + 1));
    cr_assert_eq(mcr__ring_find(r, v - 1), model_find(&m, v - 1));
  }
  cr_assert_eq(mcr__ring_find(r, 0), model_find(&m, 0));
  cr_assert_eq(mcr__ring_find(r, UINT32_MAX), model_find(&m, UINT32_MAX));
  free(m.p);
  mcr_ring_free(r);
}

/* ---------------------------------------------------------------- vectors */

Test(ketama, spymemcached_vectors) {
  check_vectors(MCR_DIST_KETAMA,
                "10.0.1.1:11211,10.0.1.2:11211,10.0.1.3:11211,"
                "10.0.1.4:11211,10.0.1.5:11211,10.0.1.6:11211,"
                "10.0.1.7:11211,10.0.1.8:11211",
                "ketama-spy-8nodes.txt");
}

Test(ketama, libmemcached_vectors) {
  check_vectors(MCR_DIST_KETAMA_LIBMEMCACHED,
                "192.168.10.1:11211:1,192.168.10.2:11211:2,"
                "192.168.10.3:11222:1",
                "ketama-libmemcached-3nodes-weighted.txt");
}

/* ---------------------------------------------------------------- model */

static const char* const hosts5[] = {"cache-a.example", "10.2.0.7", "fe80::1",
                                     "cache-d", "/run/mc.sock"};
static const char* const addrs5[] = {"10.9.9.1", "10.2.0.7", "0:0:0:0:0:0:0:1",
                                     "172.16.0.4", "/run/mc.sock"};
static const unsigned ports5[] = {11211, 11212, 11211, 22122, 0};
static const unsigned weights5[] = {1, 3, 2, 1, 5};

Test(ketama, ketama_mode_matches_model) {
  check_against_model(MCR_DIST_KETAMA, hosts5, addrs5, ports5, weights5, 5);
}

Test(ketama, libmemcached_mode_matches_model) {
  check_against_model(MCR_DIST_KETAMA_LIBMEMCACHED, hosts5, NULL, ports5,
                      weights5, 5);
}

Test(ketama, xxh3_mode_matches_model) {
  check_against_model(MCR_DIST_XXH3, hosts5, NULL, ports5, weights5, 5);
}

Test(ketama, many_nodes_match_model) {
  const char* hosts[40];
  char buf[40][32];
  unsigned ports[40], weights[40];
  for (int i = 0; i < 40; i++) {
    snprintf(buf[i], sizeof(buf[i]), "10.%d.%d.%d", i % 3, i, 200 - i);
    hosts[i] = buf[i];
    ports[i] = 11211 + (unsigned)(i % 4 == 3);
    weights[i] = 1 + (unsigned)(i % 5);
  }
  for (int mode = 0; mode < 3; mode++)
    check_against_model((mcr_distribution_t)mode, hosts, NULL, ports, weights,
                        40);
}

/* The first point >= h, wrapping to 0: a binary search over the points,
 * the reference for the bucket index. */
static uint32_t search_point(const mcr_ring_t* r, uint32_t h) {
  uint32_t lo = 0, hi = r->npoints;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (r->points[mid] < h)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo == r->npoints ? 0 : lo;
}

Test(ketama, bucket_bits_grow_with_the_points) {
  cr_assert_eq(mcr__ring_bucket_bits(1), 16);
  cr_assert_eq(mcr__ring_bucket_bits(8u << 16), 16);
  cr_assert_eq(mcr__ring_bucket_bits((8u << 16) + 1), 17);
  cr_assert_eq(mcr__ring_bucket_bits(65535u * 160), 21);
  cr_assert_eq(mcr__ring_bucket_bits(MCR__RING_MAX_POINTS), 21);
  cr_assert_eq(mcr__ring_bucket_bits(UINT32_MAX), MCR__BUCKET_BITS_MAX);
}

/* A ring big enough for 18 bucket bits finds, for every hash tried (each
 * point, its neighbours, each bucket's edges, random ones), the point a
 * binary search finds. */
Test(ketama, a_bigger_bucket_index_finds_every_point, .timeout = 120) {
  enum { N = 7000 }; /* 1,120,000 points */
  static mcr__ring_node_in_t in[N];
  static char hosts[N][32];
  for (size_t i = 0; i < N; i++) {
    snprintf(hosts[i], 32, "10.%zu.%zu.%zu", i / 65536, i / 256 % 256, i % 256);
    in[i] = (mcr__ring_node_in_t){hosts[i], NULL, 11211, 1, 0};
  }
  mcr_ring_t* r;
  cr_assert_eq(mcr__ring_build_nodes(&r, MCR_DIST_XXH3, in, N, NULL, 0), 0);
  cr_assert_eq(r->bucket_shift, 32 - 18);
  cr_assert_eq(mcr__ring_nbuckets(r), 1u << 18);
  for (uint32_t i = 0; i < r->npoints; i += 3) {
    uint32_t v = r->points[i];
    for (uint32_t h = v - 1; h != v + 2; h++)
      cr_assert_eq(mcr__ring_find_point(r, h), search_point(r, h), "hash %u",
                   h);
  }
  for (uint32_t b = 0; b < mcr__ring_nbuckets(r); b++) {
    uint32_t lo = b << r->bucket_shift, hi = lo | ((1u << r->bucket_shift) - 1);
    cr_assert_eq(mcr__ring_find_point(r, lo), search_point(r, lo));
    cr_assert_eq(mcr__ring_find_point(r, hi), search_point(r, hi));
  }
  srand(11);
  for (int k = 0; k < 200000; k++) {
    uint32_t h = (uint32_t)rand() << 16 ^ (uint32_t)rand();
    cr_assert_eq(mcr__ring_find_point(r, h), search_point(r, h));
  }
  mcr_ring_free(r);
}

/* ---------------------------------------------------------------- by hand */

/* Builds a ring of `mode` on `list`, asserting that it builds with
 * `points` points in all. */
static mcr_ring_t* ring_with_points(mcr_distribution_t mode, const char* list,
                                    size_t points) {
  mcr_ring_t* r;
  cr_assert_eq(mcr_ring_build(&r, mode, list, NULL, 0), 0, "%s", list);
  cr_assert_eq(mcr_ring_point_count(r), points, "%s", list);
  return r;
}

/* The points that node i of r holds. */
static uint32_t node_points(const mcr_ring_t* r, size_t i) {
  mcr_ring_node_t nd;
  cr_assert_eq(mcr_ring_node(r, i, &nd), 0);
  return nd.points;
}

Test(ketama, point_counts) {
  /* ketama: 160 points per weight unit. */
  mcr_ring_t* r = ring_with_points(MCR_DIST_KETAMA,
                                   "10.0.0.1:11211:1,10.0.0.2:11300:3", 640);
  mcr_ring_node_t nd;
  mcr_ring_node(r, 1, &nd);
  cr_assert_eq(nd.points, 480);
  cr_assert_eq(nd.port, 11300);
  cr_assert_eq(nd.weight, 3);
  mcr_ring_free(r);
  /* libmemcached: weights 1,2,1 over 3 nodes give 30, 60, 30 digests. */
  r = ring_with_points(MCR_DIST_KETAMA_LIBMEMCACHED,
                       "a:11211:1,b:11211:2,c:11211:1", 480);
  cr_assert_eq(node_points(r, 1), 240);
  mcr_ring_free(r);
  /* libmemcached computes in single precision: with weights 1 x5, 4 x5
   * (W = 25, n = 10) a weight-1 node gets floor(15.999999) = 15 digests,
   * not 16, and a weight-4 node 63, not 64 (checked against libmemcached
   * 1.1.4: 0 of 200,000 keys differ). */
  cr_assert_eq(mcr_ring_build(&r, MCR_DIST_KETAMA_LIBMEMCACHED,
                              "h0,h1,h2,h3:11300,h4,h5:11211:4,h6::4,"
                              "h7:11211:4,h8:11211:4,h9:11211:4",
                              NULL, 0),
               MCR_ESERVERS); /* "h6::4" is not a valid entry */
  r = ring_with_points(MCR_DIST_KETAMA_LIBMEMCACHED,
                       "h0,h1,h2,h3:11300,h4,h5:11211:4,h6:11211:4,"
                       "h7:11211:4,h8:11211:4,h9:11211:4",
                       5 * 60 + 5 * 252);
  cr_assert_eq(node_points(r, 3), 60);
  cr_assert_eq(node_points(r, 9), 252);
  mcr_ring_free(r);
  /* xxh3: 160 points per weight unit too. */
  mcr_ring_free(ring_with_points(MCR_DIST_XXH3, "a:1:2", 320));
}

Test(ketama, hand_computed_points) {
  /* The first digest of "10.0.0.1:11211-0" gives the first four points
   * of that node in ketama mode; the continuum must contain them. */
  uint8_t d[16];
  md5("10.0.0.1:11211-0", 16, d);
  mcr_ring_t* r;
  cr_assert_eq(mcr_ring_build(&r, MCR_DIST_KETAMA, "10.0.0.1", NULL, 0), 0);
  for (int j = 0; j < 4; j++) {
    uint32_t v = le32(d + 4 * j);
    bool found = false;
    for (uint32_t i = 0; i < r->npoints; i++)
      found |= r->points[i] == v;
    cr_expect(found, "point %08x missing", v);
  }
  mcr_ring_free(r);
  /* libmemcached on a non-default port hashes "host:port-i". */
  md5("cache1:11311-39", 15, d);
  cr_assert_eq(mcr_ring_build(&r, MCR_DIST_KETAMA_LIBMEMCACHED,
                              "cache1:11311,cache2", NULL, 0),
               0);
  uint32_t v = le32(d + 12);
  bool found = false;
  for (uint32_t i = 0; i < r->npoints; i++)
    found |= r->points[i] == v && r->owners[i] == 0;
  cr_expect(found);
  /* A key hashing exactly onto a point goes to that point's node. */
  cr_expect_eq(mcr__ring_find(r, v), 0);
  mcr_ring_free(r);
}

Test(ketama, ipv6_address_in_java_form) {
  mcr_ring_t* r;
  cr_assert_eq(
      mcr_ring_build(&r, MCR_DIST_KETAMA, "[::1]:11211,[fe80::a:b]", NULL, 0),
      0);
  mcr_ring_node_t nd;
  mcr_ring_node(r, 0, &nd);
  cr_expect_str_eq(nd.host, "::1");
  cr_expect_str_eq(nd.address, "0:0:0:0:0:0:0:1");
  mcr_ring_node(r, 1, &nd);
  cr_expect_str_eq(nd.address, "fe80:0:0:0:0:0:a:b");
  mcr_ring_free(r);
}

Test(ketama, ties_go_to_lowest_node_index) {
  /* Two nodes with the same strings produce identical points. */
  mcr__ring_node_in_t in[2] = {{"10.0.0.1", NULL, 11211, 1, 0},
                               {"10.0.0.1", NULL, 11211, 1, 0}};
  mcr_ring_t* r;
  cr_assert_eq(mcr__ring_build_nodes(&r, MCR_DIST_KETAMA, in, 2, NULL, 0), 0);
  for (int k = 0; k < 1000; k++) {
    char key[16];
    int len = snprintf(key, sizeof(key), "k%d", k);
    cr_assert_eq(mcr_ring_locate(r, key, (size_t)len), 0);
  }
  mcr_ring_node_t nd;
  mcr_ring_node(r, 1, &nd);
  cr_expect_eq(nd.share, 0.0);
  mcr_ring_free(r);
}

/* ---------------------------------------------------------------- xxh3 */

Test(ketama, xxh3_distribution_is_even) {
  mcr_ring_t* r;
  cr_assert_eq(mcr_ring_build(&r, MCR_DIST_XXH3,
                              "n0,n1,n2,n3,n4,n5,n6,n7,n8,n9:11211:2", NULL, 0),
               0);
  enum { KEYS = 1000000 };
  size_t count[10] = {0};
  char key[32];
  for (int k = 0; k < KEYS; k++) {
    int len = snprintf(key, sizeof(key), "session:%d", k);
    count[mcr_ring_locate(r, key, (size_t)len)]++;
  }
  double unit = KEYS / 11.0, share_sum = 0;
  for (size_t i = 0; i < 10; i++) {
    double want = i == 9 ? 2 * unit : unit;
    cr_expect(count[i] > 0.8 * want && count[i] < 1.2 * want,
              "node %zu got %zu keys, expected about %.0f", i, count[i], want);
    mcr_ring_node_t nd;
    mcr_ring_node(r, i, &nd);
    share_sum += nd.share;
    /* The computed share predicts the observed fraction. */
    cr_expect(fabs(nd.share - (double)count[i] / KEYS) < 0.01);
  }
  cr_expect(fabs(share_sum - 1.0) < 1e-9);
  mcr_ring_free(r);
}

/* ---------------------------------------------------------------- API */

Test(ketama, distribution_names) {
  mcr_distribution_t d;
  cr_assert_eq(mcr_distribution_parse("ketama", &d), 0);
  cr_assert_eq(d, MCR_DIST_KETAMA);
  cr_assert_eq(mcr_distribution_parse("ketama-libmemcached", &d), 0);
  cr_assert_eq(d, MCR_DIST_KETAMA_LIBMEMCACHED);
  cr_assert_eq(mcr_distribution_parse("xxh3", &d), 0);
  cr_assert_eq(d, MCR_DIST_XXH3);
  cr_assert_eq(mcr_distribution_parse("KETAMA", &d), MCR_EINVAL);
  cr_assert_eq(mcr_distribution_parse("", &d), MCR_EINVAL);
  cr_assert_str_eq(mcr_distribution_name(MCR_DIST_XXH3), "xxh3");
  cr_assert_str_eq(mcr_distribution_name(MCR_DIST_KETAMA_LIBMEMCACHED),
                   "ketama-libmemcached");
  cr_assert_null(mcr_distribution_name((mcr_distribution_t)7));
}

Test(ketama, build_errors) {
  mcr_ring_t* r = (mcr_ring_t*)1;
  cr_assert_eq(mcr_ring_build(&r, (mcr_distribution_t)9, "a", NULL, 0),
               MCR_EINVAL);
  cr_assert_null(r);
  cr_assert_eq(mcr_ring_build(&r, MCR_DIST_KETAMA, "", NULL, 0),
               MCR_ENOSERVERS);
  cr_assert_eq(mcr_ring_build(&r, MCR_DIST_XXH3, "a:0", NULL, 0), MCR_ESERVERS);
  mcr__ring_node_in_t in = {"cache.example", NULL, 11211, 1, 0};
  cr_assert_eq(mcr__ring_build_nodes(&r, MCR_DIST_KETAMA, &in, 1, NULL, 0),
               MCR_EINVAL);
  cr_assert_eq(mcr_ring_build(&r, MCR_DIST_XXH3, "a,b", NULL, 0), 0);
  mcr_ring_node_t nd;
  cr_assert_eq(mcr_ring_node(r, 2, &nd), MCR_ERANGE);
  cr_assert_eq(mcr_ring_generation(r), 0);
  cr_assert_eq(mcr_ring_distribution(r), MCR_DIST_XXH3);
  mcr_ring_free(r);
  mcr_ring_free(NULL);
}

Test(ketama, resolves_names_in_ketama_mode) {
  mcr_ring_t* r;
  cr_assert_eq(mcr_ring_build(&r, MCR_DIST_KETAMA, "localhost:11211", NULL, 0),
               0);
  mcr_ring_node_t nd;
  mcr_ring_node(r, 0, &nd);
  cr_expect_str_eq(nd.host, "localhost");
  cr_expect(strcmp(nd.address, "127.0.0.1") == 0 ||
                strcmp(nd.address, "0:0:0:0:0:0:0:1") == 0,
            "address %s", nd.address);
  mcr_ring_free(r);
}

/* ---------------------------------------------------------------- many */

/* Keys of every length 0..250, pseudo-random bytes (NUL included). */
static char many_buf[251][250];
static const char* many_keys[251];
static size_t many_lens[251];

static void many_init(void) {
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (size_t len = 0; len <= 250; len++) {
    for (size_t j = 0; j < len; j++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      many_buf[len][j] = (char)(x >> 24);
    }
    many_keys[len] = many_buf[len];
    many_lens[len] = len;
  }
}

/* mcr__ring_hash_many against mcr__ring_hash (and, for the MD5 modes, the
 * model's MD5) on n keys starting at every offset of the key table, so
 * every length meets every lane position and its remainder. */
static void check_many(mcr_distribution_t mode, size_t n) {
  const char* k[300];
  size_t l[300];
  uint32_t out[301];
  for (size_t start = 0; start <= 250; start++) {
    for (size_t i = 0; i < n; i++) {
      k[i] = many_keys[(start + i) % 251];
      l[i] = many_lens[(start + i) % 251];
    }
    for (size_t i = 0; i <= n; i++)
      out[i] = 0xdeadbeefu;
    mcr__ring_hash_many(mode, n, k, l, out);
    for (size_t i = 0; i < n; i++) {
      uint32_t want = mcr__ring_hash(mode, k[i], l[i]);
      cr_assert_eq(out[i], want,
                   "mode %d n %zu start %zu key %zu (%zu bytes): %08x, "
                   "want %08x",
                   mode, n, start, i, l[i], out[i], want);
      cr_assert_eq(want, model_hash(mode, k[i], l[i]));
    }
    cr_assert_eq(out[n], 0xdeadbeefu, "wrote past out[%zu]", n);
  }
}

/* The level this machine runs when nothing caps it. */
static mcr__md5x_isa_t cpu_level(void) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
    return MCR__MD5X_AVX512;
  return __builtin_cpu_supports("avx2") ? MCR__MD5X_AVX2 : MCR__MD5X_SSE2;
#else
  return MCR__MD5X_SCALAR;
#endif
}

/* Every mode and lane remainder at the level cap (or the best below it
 * this machine has; the test says which ran). The counts cover every way
 * the AVX-512 level splits keys: full 32-lane calls and last calls of 1,
 * 2..8, 9..16 and 17..31 keys; start offsets vary how many are short. */
static void check_many_all(mcr__md5x_isa_t cap) {
  static const size_t ns[] = {0,  1,  2,  3,  4,  5,  7,  8,  9,   15, 16,
                              17, 24, 31, 32, 33, 63, 64, 65, 100, 251};
  many_init();
  mcr__md5x_isa_t got = mcr__md5x_limit(cap);
  cr_assert_leq(got, cap);
  cr_assert_eq(got, cap < cpu_level() ? cap : cpu_level());
  cr_log_info("md5x: level %d asked, level %d ran", (int)cap, (int)got);
  for (int mode = 0; mode < 3; mode++)
    for (size_t j = 0; j < sizeof ns / sizeof ns[0]; j++)
      check_many((mcr_distribution_t)mode, ns[j]);
  mcr__md5x_limit(MCR__MD5X_AVX512);
}

Test(ketama, hash_many_scalar) {
  cr_assert_eq(mcr__md5x_limit(MCR__MD5X_SCALAR), MCR__MD5X_SCALAR);
  check_many_all(MCR__MD5X_SCALAR);
}

Test(ketama, hash_many_sse2) {
#if defined(__x86_64__)
  cr_assert_eq(mcr__md5x_limit(MCR__MD5X_SSE2), MCR__MD5X_SSE2,
               "x86_64 always has the SSE2 lanes");
#endif
  check_many_all(MCR__MD5X_SSE2);
}

Test(ketama, hash_many_avx2) {
  check_many_all(MCR__MD5X_AVX2);
}

/* MCR__MD5X_AVX512 is no cap: the best level runs (AVX2 under valgrind,
 * which hides AVX-512). */
Test(ketama, hash_many_best) {
  cr_assert_eq(mcr__md5x_limit(MCR__MD5X_AVX512), cpu_level());
  check_many_all(MCR__MD5X_AVX512);
}

/* 1000 distinct keys in one call: first of the lane lengths 0..55 only
 * (every lane full), then of the lengths around the one-block limit. */
Test(ketama, hash_many_short_keys_and_block_edges) {
  static char buf[1000][120];
  const char* k[1000];
  size_t l[1000];
  uint32_t out[1000];
  static const size_t edges[] = {0, 1, 54, 55, 56, 57, 63, 64, 119, 120};
  for (size_t i = 0; i < 1000; i++) {
    l[i] = i < 500 ? i % 56 : edges[i % 10];
    for (size_t j = 0; j < l[i]; j++)
      buf[i][j] = (char)('a' + (i * 7 + j * 13) % 26);
    k[i] = buf[i];
  }
  for (int cap = MCR__MD5X_SCALAR; cap <= MCR__MD5X_AVX512; cap++) {
    mcr__md5x_limit((mcr__md5x_isa_t)cap);
    for (int mode = 0; mode < 3; mode++) {
      mcr__ring_hash_many((mcr_distribution_t)mode, 1000, k, l, out);
      for (size_t i = 0; i < 1000; i++)
        cr_assert_eq(out[i], model_hash((mcr_distribution_t)mode, k[i], l[i]),
                     "level %d mode %d key %zu (%zu bytes)", cap, mode, i,
                     l[i]);
    }
  }
  mcr__md5x_limit(MCR__MD5X_AVX512);
}
