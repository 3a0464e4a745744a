/* ring_points.c — the points of a continuum, computed and sorted fast.
 *
 * A ring of 65,535 nodes has 10.5 million points, and making them was
 * most of the agent's 2.7 s per publication: a snprintf per node string
 * ("<address>:<port>-<i>"), an MD5 per string, then qsort with a
 * comparison callback over (value, node index) pairs. This module
 * produces exactly the same two arrays (points ascending, ties by node
 * index, and the owner of each) without either cost:
 *
 *   strings  each node's string is a fixed prefix ("<address>:<port>-",
 *            "<host>-", ...) followed by the decimal digest number; the
 *            prefix is laid into an MD5 block once per node and only the
 *            digits, which are counted up in place, the padding and the
 *            length change from one digest to the next (strings over 55
 *            bytes, one MD5 block, go through nettle's md5_update);
 *   sorting  points are made node by node, so the (value, index) pairs
 *            already come in index order: a stable LSD radix sort on the
 *            32-bit value alone (three passes of 11 bits or fewer) gives
 *            the order of a full sort of the pairs, ties included.
 *
 * The strings and hashes per mode are those of ketama.c (docs/ring.md):
 * `ketama` MD5("<address>:<port>-<i>"); `ketama-libmemcached`
 * MD5("<host>-<i>") on port 11211, else MD5("<host>:<port>-<i>"); both 4
 * little-endian points per digest; `xxh3` XXH3-64("<host>:<port>-<i>"),
 * "[<host>]:<port>-<i>" for an IPv6 host, low then high half. A test
 * (tests/test_ring_points.c) compares the arrays with the builder's for
 * large rings of every mode.
 */
#include <stdio.h>
#include <string.h>

#include <nettle/md5.h>
#include <xxhash.h>

#include "ring.h"

/* The longest string a node can have: two strings of MCR__RING_MAX_STR
 * plus port, digits and punctuation (ketama.c's node string buffer). */
#define STR_CAP (MCR__RING_MAX_STR * 2 + 32)

/* MD5 of the len (<= 55) bytes at the start of block, as the four state
 * words (the digest read as little-endian u32s, which is exactly the Ketama
 * point order). Here, below ketama.c, so its one-key hash can use it too. */
void mcr__md5_block(uint8_t block[64], size_t len, uint32_t st[4]) {
  /* One block: message, 0x80, zeros, bit length (little-endian). */
  block[len] = 0x80;
  memset(block + len + 1, 0, 56 - len - 1);
  uint64_t bits = (uint64_t)len * 8;
  memcpy(block + 56, &bits, 8);
  st[0] = 0x67452301u;
  st[1] = 0xefcdab89u;
  st[2] = 0x98badcfeu;
  st[3] = 0x10325476u;
  nettle_md5_compress(st, block);
}

/* The node string of digest i without the digits: the prefix. Returns its
 * length (the prefix never exceeds STR_CAP - 12). */
static size_t prefix(mcr_distribution_t mode, const mcr__ring_node_t* n,
                     char* buf) {
  int k;
  if (mode == MCR_DIST_KETAMA)
    k = snprintf(buf, STR_CAP, "%s:%u-", n->address, n->port);
  else if (mode == MCR_DIST_KETAMA_LIBMEMCACHED && n->port == 11211)
    k = snprintf(buf, STR_CAP, "%s-", n->host);
  else if (mode == MCR_DIST_XXH3 && strchr(n->host, ':'))
    k = snprintf(buf, STR_CAP, "[%s]:%u-", n->host, n->port);
  else
    k = snprintf(buf, STR_CAP, "%s:%u-", n->host, n->port);
  return k < 0 ? 0 : (size_t)k;
}

/* A decimal counter kept as text: digits[0..len), most significant first,
 * counted up in place so that no digest formats a number. */
typedef struct {
  char digits[12];
  size_t len;
} counter_t;

static void counter_next(counter_t* c) {
  size_t i = c->len;
  while (i > 0 && c->digits[i - 1] == '9')
    c->digits[--i] = '0';
  if (i > 0) {
    c->digits[i - 1]++;
    return;
  }
  /* 99..9 + 1: one more digit. */
  memmove(c->digits + 1, c->digits, c->len);
  c->digits[0] = '1';
  c->len++;
}

/* Appends the pairs (value << 32 | ni) of node n's `hashes` digests. */
static size_t node_pairs(mcr_distribution_t mode, const mcr__ring_node_t* n,
                         uint32_t ni, uint32_t hashes, uint64_t* pairs) {
  char str[STR_CAP + 16];
  size_t plen = prefix(mode, n, str);
  counter_t c = {.digits = "0", .len = 1};
  uint8_t block[64];
  if (plen <= 55)
    memcpy(block, str, plen);
  size_t k = 0;
  for (uint32_t i = 0; i < hashes; i++, counter_next(&c)) {
    size_t len = plen + c.len;
    if (mode == MCR_DIST_XXH3) {
      memcpy(str + plen, c.digits, c.len);
      uint64_t h = XXH3_64bits(str, len);
      pairs[k++] = (h & 0xffffffffu) << 32 | ni;
      pairs[k++] = (h >> 32) << 32 | ni;
      continue;
    }
    uint32_t st[4];
    if (len <= 55) {
      memcpy(block + plen, c.digits, c.len);
      mcr__md5_block(block, len, st); /* pads after the digits */
    } else {
      memcpy(str + plen, c.digits, c.len);
      struct md5_ctx ctx;
      md5_init(&ctx);
      md5_update(&ctx, len, (const uint8_t*)str);
      md5_digest(&ctx, sizeof(st), (uint8_t*)st);
    }
    for (int j = 0; j < 4; j++)
      pairs[k++] = (uint64_t)st[j] << 32 | ni;
  }
  return k;
}

/* Sorts pairs[0..n) by their high 32 bits, stably: an LSD radix sort in
 * three passes of 11, 11 and 10 bits (2,048 counters a pass stay in the
 * L1 cache, where 65,536 would not), through tmp[0..n) and the zeroed
 * count[3][2049]. The last pass writes the split result, points and
 * owners, directly. */
static void radix_sort_high(uint64_t* pairs, uint64_t* tmp, size_t n,
                            size_t (*count)[2048 + 1], uint32_t* points,
                            uint32_t* owners) {
  for (size_t i = 0; i < n; i++) {
    uint32_t v = (uint32_t)(pairs[i] >> 32);
    count[0][(v & 0x7ff) + 1]++;
    count[1][((v >> 11) & 0x7ff) + 1]++;
    count[2][(v >> 22) + 1]++;
  }
  for (int p = 0; p < 3; p++)
    for (size_t b = 0; b < 2048; b++)
      count[p][b + 1] += count[p][b];
  for (size_t i = 0; i < n; i++)
    tmp[count[0][(pairs[i] >> 32) & 0x7ff]++] = pairs[i];
  for (size_t i = 0; i < n; i++)
    pairs[count[1][(tmp[i] >> 43) & 0x7ff]++] = tmp[i];
  for (size_t i = 0; i < n; i++) {
    size_t at = count[2][pairs[i] >> 54]++;
    points[at] = (uint32_t)(pairs[i] >> 32);
    owners[at] = (uint32_t)pairs[i];
  }
}

int mcr__ring_points(mcr_distribution_t mode, const mcr__ring_node_t* nodes,
                     size_t n, const uint32_t* hashes, uint32_t* points,
                     uint32_t* owners, size_t* npoints) {
  size_t total = 0;
  for (size_t i = 0; i < n; i++)
    total += (size_t)hashes[i] * (mode == MCR_DIST_XXH3 ? 2 : 4);
  *npoints = 0;
  uint64_t* pairs = mcr__malloc((total ? total : 1) * sizeof(*pairs));
  uint64_t* tmp = mcr__malloc((total ? total : 1) * sizeof(*tmp));
  size_t(*count)[2048 + 1] = mcr__calloc(3, sizeof(*count));
  int rc = (!pairs || !tmp || !count) ? MCR_ENOMEM : 0;
  size_t k = 0;
  for (size_t i = 0; i < n && !rc; i++)
    k += node_pairs(mode, &nodes[i], (uint32_t)i, hashes[i], pairs + k);
  if (!rc) {
    radix_sort_high(pairs, tmp, k, count, points, owners);
    *npoints = k;
  }
  mcr__free(pairs);
  mcr__free(tmp);
  mcr__free(count);
  return rc;
}
