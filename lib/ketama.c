/* ketama.c — builds Ketama continuums and maps keys to nodes.
 *
 * Three modes share one continuum shape: 32-bit points, sorted by (value,
 * node index), each owning the hashes from the previous point (exclusive)
 * up to itself; a key goes to the node of the first point >= its hash,
 * wrapping to the first point. What differs is which strings are hashed and
 * how many points a node gets (docs/ring.md has the full rules):
 *
 *   ketama              MD5("<address>:<port>-<i>"), i = 0 .. 40*weight-1,
 *                       four little-endian u32 points per digest: 160 points
 *                       per weight unit (spymemcached, pyelasticache_client)
 *   ketama-libmemcached MD5("<host>-<i>") on port 11211, else
 *                       MD5("<host>:<port>-<i>"); floor(w/W*40*n + 1e-10)
 *                       digests per node computed in single precision, as
 *                       libmemcached's KETAMA_WEIGHTED does
 *   xxh3                XXH3-64("<host>:<port>-<i>"), i = 0 .. 80*weight-1,
 *                       two u32 points (low half, high half) per hash
 *
 * Lookups must be cheap because every key operation does one: instead of a
 * binary search over up to millions of points, a bucket index over the top
 * bits of the hash gives the first point of each bucket, so a lookup is one
 * bucket load plus a scan of the few points inside it (2^16 buckets, or
 * more for rings of over 524,288 points, so that a bucket holds at most 8
 * points on average whatever the ring's size). Keys
 * up to 55 bytes are hashed with a single MD5 compression call (nettle's
 * md5_compress) on a stack block, skipping the context bookkeeping; the
 * keys of a multi-key call go through md5x.c, several MD5s at a time.
 */
#include <arpa/inet.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <nettle/md5.h>
#include <xxhash.h>

#include "ring.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "mcring's ring and snapshot code assumes a little-endian host"
#endif

static const char* const mode_names[] = {"ketama", "ketama-libmemcached",
                                         "xxh3"};

int mcr_distribution_parse(const char* name, mcr_distribution_t* out) {
  if (!name || !out)
    return MCR_EINVAL;
  for (size_t i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++) {
    if (strcmp(name, mode_names[i]) == 0) {
      *out = (mcr_distribution_t)i;
      return 0;
    }
  }
  return MCR_EINVAL;
}

const char* mcr_distribution_name(mcr_distribution_t mode) {
  if ((unsigned)mode >= sizeof(mode_names) / sizeof(mode_names[0]))
    return NULL;
  return mode_names[mode];
}

/* ---------------------------------------------------------------- hashing */

static void md5_words(const void* data, size_t len, uint32_t st[4]) {
  if (MCR__LIKELY(len <= 55)) {
    uint8_t block[64];
    memcpy(block, data, len);
    mcr__md5_block(block, len, st);
    return;
  }
  struct md5_ctx ctx;
  uint8_t digest[MD5_DIGEST_SIZE];
  md5_init(&ctx);
  md5_update(&ctx, len, data);
  md5_digest(&ctx, sizeof(digest), digest);
  memcpy(st, digest, sizeof(digest));
}

uint32_t mcr__ring_hash(mcr_distribution_t mode, const void* key, size_t len) {
  if (mode == MCR_DIST_XXH3)
    return (uint32_t)XXH3_64bits(key, len);
  uint32_t st[4];
  md5_words(key, len, st);
  return st[0];
}

/* ---------------------------------------------------------------- build */

/* Digests (MD5 modes) or hashes (xxh3) per node, and points per digest. */
static uint32_t libmemcached_digests(uint32_t w, uint64_t total, size_t n) {
  /* libmemcached computes this in float, and the float rounding decides
   * the count for some weight mixes, so it is reproduced step by step:
   * pct = w / W; pct * 160 / 4 * n, + 1e-10 in double, back to float,
   * floored. volatile keeps each step rounded to float. */
  volatile float pct = (float)w / (float)total;
  volatile float t = pct * 160.0f;
  t = t / 4.0f;
  t = t * (float)n;
  volatile float f = (float)((double)t + 0.0000000001);
  return (uint32_t)floor((double)f);
}

static bool is_numeric(const char* host) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host, buf) == 1 ||
         inet_pton(AF_INET6, host, buf) == 1;
}

/* Formats an IPv6 address the way Java's Inet6Address.getHostAddress does
 * (eight lower-case hex groups, no zero compression): spymemcached and the
 * ElastiCache Java client hash that text, so the `ketama` mode does too. */
static void format_v6_java(const struct in6_addr* a, char* out, size_t len) {
  const uint8_t* b = a->s6_addr;
  snprintf(out, len, "%x:%x:%x:%x:%x:%x:%x:%x", b[0] << 8 | b[1],
           b[2] << 8 | b[3], b[4] << 8 | b[5], b[6] << 8 | b[7],
           b[8] << 8 | b[9], b[10] << 8 | b[11], b[12] << 8 | b[13],
           b[14] << 8 | b[15]);
}

/* Canonical text of a numeric address for the `ketama` mode, or -1. */
static int canonical_address(const char* in, char* out, size_t len) {
  struct in_addr v4;
  struct in6_addr v6;
  if (inet_pton(AF_INET, in, &v4) == 1)
    return inet_ntop(AF_INET, &v4, out, (socklen_t)len) ? 0 : -1;
  if (inet_pton(AF_INET6, in, &v6) == 1) {
    format_v6_java(&v6, out, len);
    return 0;
  }
  return -1;
}

uint32_t mcr__ring_bucket_bits(uint32_t npoints) {
  uint32_t bits = MCR__BUCKET_BITS_MIN;
  while (bits < MCR__BUCKET_BITS_MAX &&
         ((uint64_t)MCR__BUCKET_LOAD << bits) < npoints)
    bits++;
  return bits;
}

void mcr__ring_fill_buckets(const uint32_t* points, uint32_t npoints,
                            uint32_t bits, uint32_t* buckets) {
  uint32_t i = 0, n = 1u << bits;
  for (uint32_t b = 0; b < n; b++) {
    while (i < npoints && (points[i] >> (32 - bits)) < b)
      i++;
    buckets[b] = i;
  }
  buckets[n] = npoints;
}

int mcr__ring_account(const uint32_t* points, const uint32_t* owners,
                      uint32_t npoints, mcr__ring_node_t* nodes,
                      uint32_t nnodes) {
  for (uint32_t i = 0; i < nnodes; i++) {
    nodes[i].points = 0;
    nodes[i].arc = 0;
  }
  for (uint32_t i = 0; i < npoints; i++) {
    if (owners[i] >= nnodes)
      return -1;
    /* Point i owns (points[i-1], points[i]]; point 0 also owns the wrap
     * (points[n-1], 2^32). A tied later point owns nothing. */
    uint64_t arc = i ? (uint64_t)points[i] - points[i - 1]
                     : (uint64_t)points[0] + 1 +
                           (0xffffffffu - (uint64_t)points[npoints - 1]);
    nodes[owners[i]].points++;
    nodes[owners[i]].arc += arc;
  }
  return 0;
}

static int fail(char* err, size_t errlen, int rc, const char* fmt,
                const char* arg) {
  if (err && errlen)
    snprintf(err, errlen, fmt, arg);
  return rc;
}

/* Lays out a ring in one heap block: struct-external node table, arrays,
 * strings. */
int mcr__ring_build_nodes(mcr_ring_t** out, mcr_distribution_t mode,
                          const mcr__ring_node_in_t* in, size_t n, char* err,
                          size_t errlen) {
  *out = NULL;
  if (!mcr_distribution_name(mode))
    return fail(err, errlen, MCR_EINVAL, "unknown distribution%s", "");
  if (n == 0)
    return fail(err, errlen, MCR_ENOSERVERS, "no nodes%s", "");
  if (n > MCR__RING_MAX_NODES)
    return fail(err, errlen, MCR_ERANGE, "more than 65535 nodes%s", "");

  /* Digests per node and the total point count. */
  uint64_t total_w = 0;
  for (size_t i = 0; i < n; i++)
    total_w += in[i].weight ? in[i].weight : 1;
  uint32_t* hashes = mcr__calloc(n, sizeof(*hashes));
  if (!hashes)
    return MCR_ENOMEM;
  uint64_t npoints = 0;
  size_t strbytes = 0;
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    uint32_t w = in[i].weight ? in[i].weight : 1;
    const char* addr = in[i].address ? in[i].address : in[i].host;
    if (!in[i].host || !*in[i].host || strlen(in[i].host) > MCR__RING_MAX_STR ||
        strlen(addr) > MCR__RING_MAX_STR) {
      rc = fail(err, errlen, MCR_EINVAL, "bad node host \"%s\"",
                in[i].host ? in[i].host : "(null)");
      break;
    }
    if (mode == MCR_DIST_KETAMA && !is_numeric(addr) && in[i].port != 0)
      rc = fail(err, errlen, MCR_EINVAL,
                "ketama needs a numeric address for \"%s\"", in[i].host);
    if (mode == MCR_DIST_KETAMA)
      hashes[i] = 40 * w;
    else if (mode == MCR_DIST_KETAMA_LIBMEMCACHED)
      hashes[i] = libmemcached_digests(w, total_w, n);
    else
      hashes[i] = 80 * w;
    npoints += (uint64_t)hashes[i] * (mode == MCR_DIST_XXH3 ? 2 : 4);
    strbytes += strlen(in[i].host) + 1 + 64; /* address canonical <= 64 */
  }
  if (!rc && npoints == 0)
    rc = fail(err, errlen, MCR_ENOSERVERS, "no points on the ring%s", "");
  if (!rc && npoints > MCR__RING_MAX_POINTS)
    rc = fail(err, errlen, MCR_ERANGE, "more than 2^24 points%s", "");
  if (rc) {
    mcr__free(hashes);
    return rc;
  }

  uint32_t bits = mcr__ring_bucket_bits((uint32_t)npoints);
  size_t nbuckets = ((size_t)1 << bits) + 1;
  size_t arrays = ((size_t)npoints * 2 + nbuckets) * sizeof(uint32_t);
  mcr_ring_t* r = mcr__calloc(1, sizeof(*r));
  char* heap = mcr__malloc(arrays + strbytes);
  mcr__ring_node_t* nodes = mcr__calloc(n, sizeof(*nodes));
  if (!r || !heap || !nodes) {
    mcr__free(r);
    mcr__free(heap);
    mcr__free(nodes);
    mcr__free(hashes);
    return MCR_ENOMEM;
  }
  uint32_t* points = (uint32_t*)heap;
  uint32_t* owners = points + npoints;
  uint32_t* buckets = owners + npoints;
  char* str = (char*)(buckets + nbuckets);

  for (size_t i = 0; i < n; i++) {
    mcr__ring_node_t* nd = &nodes[i];
    size_t hl = strlen(in[i].host) + 1;
    memcpy(str, in[i].host, hl);
    nd->host = str;
    str += hl;
    const char* addr = in[i].address ? in[i].address : in[i].host;
    /* Every mode keeps a numeric address when it has one: `ketama` hashes
     * it, and in all modes it is where clients connect without a DNS
     * lookup of their own. */
    if (canonical_address(addr, str, 64) == 0) {
      nd->address = str;
      str += strlen(str) + 1;
    } else {
      nd->address = nd->host; /* a unix socket, or a name never resolved */
    }
    nd->port = in[i].port;
    nd->weight = in[i].weight ? in[i].weight : 1;
    nd->state = in[i].state ? in[i].state : MCR__NODE_UP;
  }
  /* The points, sorted with ties in node-index order (ring_points.c). */
  size_t k = 0;
  rc = mcr__ring_points(mode, nodes, n, hashes, points, owners, &k);
  mcr__free(hashes);
  if (rc) {
    mcr__free(r);
    mcr__free(heap);
    mcr__free(nodes);
    return rc;
  }
  mcr__ring_fill_buckets(points, (uint32_t)k, bits, buckets);
  mcr__ring_account(points, owners, (uint32_t)k, nodes, (uint32_t)n);

  r->points = points;
  r->owners = owners;
  r->buckets = buckets;
  r->npoints = (uint32_t)k;
  r->nnodes = (uint32_t)n;
  r->mode = mode;
  r->bucket_shift = 32 - bits;
  r->nodes = nodes;
  r->heap = heap;
  *out = r;
  return 0;
}

/* The numeric address of a host for the `ketama` mode. */
static int resolve(const char* host, char* out, size_t len, char* err,
                   size_t errlen) {
  if (canonical_address(host, out, len) == 0)
    return 0;
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int g = getaddrinfo(host, NULL, &hints, &res);
  if (g != 0 || !res)
    return fail(err, errlen, MCR_ERESOLVE, "cannot resolve \"%s\"", host);
  int rc = 0;
  if (res->ai_family == AF_INET)
    inet_ntop(AF_INET, &((struct sockaddr_in*)res->ai_addr)->sin_addr, out,
              (socklen_t)len);
  else if (res->ai_family == AF_INET6)
    format_v6_java(&((struct sockaddr_in6*)res->ai_addr)->sin6_addr, out, len);
  else
    rc = fail(err, errlen, MCR_ERESOLVE, "no IP address for \"%s\"", host);
  freeaddrinfo(res);
  return rc;
}

int mcr__ring_build(mcr_ring_t** out, mcr_distribution_t mode,
                    const mcr__server_t* srv, size_t n, char* err,
                    size_t errlen) {
  *out = NULL;
  if (n == 0)
    return fail(err, errlen, MCR_ENOSERVERS, "no servers%s", "");
  mcr__ring_node_in_t* in = mcr__calloc(n, sizeof(*in));
  char(*addrs)[64] = mcr__calloc(n, sizeof(*addrs));
  int rc = (!in || !addrs) ? MCR_ENOMEM : 0;
  for (size_t i = 0; i < n && !rc; i++) {
    in[i].host = srv[i].host;
    in[i].port = srv[i].is_unix ? 0 : srv[i].port;
    in[i].weight = srv[i].weight;
    in[i].state = MCR__NODE_UP;
    if (mode == MCR_DIST_KETAMA && !srv[i].is_unix) {
      rc = resolve(srv[i].host, addrs[i], sizeof(addrs[i]), err, errlen);
      in[i].address = addrs[i];
    }
  }
  if (!rc)
    rc = mcr__ring_build_nodes(out, mode, in, n, err, errlen);
  mcr__free(in);
  mcr__free(addrs);
  return rc;
}

/* ---------------------------------------------------------------- public */

int mcr_ring_build(mcr_ring_t** out, mcr_distribution_t mode,
                   const char* servers, char* err, size_t errlen) {
  char dummy[8];
  if (!err || !errlen) {
    err = dummy;
    errlen = sizeof dummy;
  }
  err[0] = '\0';
  if (!out) {
    snprintf(err, errlen, "NULL argument");
    return MCR_EINVAL;
  }
  *out = NULL;
  if (!mcr_distribution_name(mode)) {
    snprintf(err, errlen, "unknown distribution %d", (int)mode);
    return MCR_EINVAL;
  }
  mcr__server_t* srv;
  size_t n;
  int rc = mcr__servers_parse(servers, &srv, &n, err, errlen);
  if (rc)
    return rc;
  rc = mcr__ring_build(out, mode, srv, n, err, errlen);
  mcr__servers_free(srv, n);
  return rc;
}

void mcr_ring_free(mcr_ring_t* r) {
  if (!r)
    return;
  mcr__free(r->nodes);
  mcr__free(r->heap);
  mcr__free(r);
}

size_t mcr_ring_locate(const mcr_ring_t* r, const char* key, size_t len) {
  return mcr__ring_locate(r, key, len);
}

mcr_distribution_t mcr_ring_distribution(const mcr_ring_t* r) {
  return r->mode;
}

size_t mcr_ring_node_count(const mcr_ring_t* r) {
  return r->nnodes;
}

size_t mcr_ring_point_count(const mcr_ring_t* r) {
  return r->npoints;
}

uint64_t mcr_ring_generation(const mcr_ring_t* r) {
  return r->generation;
}

uint64_t mcr_ring_publish_time_ns(const mcr_ring_t* r) {
  return r->publish_ns;
}

/* ------------------------------------------------------------ nodes */

uint64_t mcr__ring_node_ident(const char* host, const char* address,
                              uint16_t port) {
  /* One shot over host NUL address NUL port: the strings of a ring are at
   * most MCR__RING_MAX_STR bytes (longer ones are cut, never overrun). */
  char buf[2 * (MCR__RING_MAX_STR + 1) + 2];
  size_t hl = strnlen(host, MCR__RING_MAX_STR);
  size_t al = strnlen(address, MCR__RING_MAX_STR);
  memcpy(buf, host, hl);
  buf[hl] = '\0';
  memcpy(buf + hl + 1, address, al);
  buf[hl + 1 + al] = '\0';
  memcpy(buf + hl + al + 2, &port, 2);
  uint64_t id = XXH3_64bits(buf, hl + al + 4);
  return id ? id : 1; /* 0 marks a free entry */
}

/* A string of a mapped ring's strings section: in bounds, NUL-terminated
 * right at off + len, with no NUL inside. Returns it or NULL. */
static const char* file_string(const mcr_ring_t* r, uint32_t off,
                               uint32_t len) {
  if (len == 0 || off > r->strings_len || len >= r->strings_len - off)
    return NULL;
  const char* s = r->strings + off;
  if (s[len] != '\0' || memchr(s, '\0', len))
    return NULL;
  return s;
}

int mcr__ring_node_get(const mcr_ring_t* r, uint32_t i, mcr__ring_node_t* out) {
  if (i >= r->nnodes)
    return MCR_ERANGE;
  if (r->nodes) {
    *out = r->nodes[i];
    return 0;
  }
  mcr__snap_node_t e;
  memcpy(&e, r->file_nodes + (size_t)i * MCR__SNAP_NODE_SIZE, sizeof e);
  *out = (mcr__ring_node_t){.host = file_string(r, e.host_off, e.host_len),
                            .address = file_string(r, e.addr_off, e.addr_len),
                            .port = e.port,
                            .state = e.state,
                            .weight = e.weight,
                            .points = e.points};
  if (r->arcs) /* else a minor-0 file, whose arcs only the full check makes */
    memcpy(&out->arc, r->arcs + (size_t)i * 8, 8);
  if (!out->host || !out->address || out->arc > (1ull << 32))
    return MCR_ESNAPSHOT;
  return 0;
}

uint64_t mcr__ring_ident_slow(const mcr_ring_t* r, uint32_t i) {
  mcr__ring_node_t n;
  if (i >= r->nnodes || mcr__ring_node_get(r, i, &n))
    return 0;
  return mcr__ring_node_ident(n.host, n.address, n.port);
}

int mcr_ring_node(const mcr_ring_t* r, size_t i, mcr_ring_node_t* out) {
  if (i >= r->nnodes)
    return MCR_ERANGE;
  mcr__ring_node_t n;
  int rc = mcr__ring_node_get(r, (uint32_t)i, &n);
  if (rc)
    return rc;
  out->host = n.host;
  out->address = n.address;
  out->port = n.port;
  out->weight = n.weight;
  out->state = n.state;
  out->points = n.points;
  out->share = (double)n.arc / 4294967296.0;
  return 0;
}
