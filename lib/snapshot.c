/* snapshot.c — reads the ring that mcring-agent publishes in shared memory.
 *
 * The agent (snapshot_write.c) keeps a directory, normally on tmpfs, with
 * one small permanent control file ("ctl": the current generation) and one
 * immutable file per generation ("ring.<N>"). The format of both is
 * described once, in docs/snapshot.md; the structs that match it byte for
 * byte are in ring.h.
 *
 * Why a reader can trust what it maps: it opens with O_RDONLY|O_NOFOLLOW
 * relative to the directory fd, refuses files that are not regular, not
 * owned by the expected user, or writable by group or other, maps PROT_READ,
 * and validates once per generation, before any lookup, what a lookup
 * relies on: every header field, every section's offset and length
 * overflow-safe against the fstat size, the end of the bucket index. A node
 * entry is checked when it is read (mcr__ring_node_get: its strings in
 * bounds and NUL-terminated, its arc at most 2^32), so a worker reads and
 * checks only the entries of the nodes it uses, and a switch costs the same
 * at 50 nodes as at 50,000. The O(nodes + points) checks (the checksum,
 * every node entry and identity, the totals, point order, owner indexes,
 * the exact bucket index) are made once per host, by the writer from the
 * file's own bytes before it publishes (snapshot_write.c), and again by
 * readers only on request (opts.verify). A reader does not need them to
 * stay safe: lookups clamp every index they read from the arrays (ring.h),
 * so whatever a file holds, a lookup stays inside it and names a node of
 * the table, and a damaged entry is refused when it is read. A refused
 * generation leaves the last good ring in place. docs/decisions.md has the
 * numbers behind this split.
 *
 * Why checking is cheap: mcr_snapshot_refresh is one acquire load of the
 * control file's generation compared with the last generation seen; only a
 * change costs system calls. The reader never waits for the writer: files
 * are complete before their generation is stored, and a generation unlinked
 * between the load and the open is followed to the newer one a bounded
 * number of times.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ck_pr.h>
#include <xxhash.h>

#include "ring.h"

_Static_assert(sizeof(mcr__snap_header_t) == 192, "header layout");
_Static_assert(sizeof(mcr__snap_node_t) == MCR__SNAP_NODE_SIZE, "node size");
_Static_assert(offsetof(mcr__snap_header_t, nodes_off) == 56, "header");
_Static_assert(offsetof(mcr__snap_header_t, buckets_len) == 128, "header");
_Static_assert(offsetof(mcr__snap_header_t, arcs_len) == 144, "header");

/* The biggest ring file a reader accepts (a full ring is about 130 MiB). */
#define SNAP_MAX_SIZE ((uint64_t)1 << 30)
/* Tries per refresh when generations are replaced faster than we open. */
#define SNAP_OPEN_TRIES 4

/* ---------------------------------------------------------------- format */

void mcr__snapshot_seal(void* buf, size_t size) {
  uint64_t sum = XXH3_64bits(buf, size - 8);
  memcpy((char*)buf + size - 8, &sum, 8);
}

static int bad(char* err, size_t errlen, const char* fmt, uint64_t a,
               uint64_t b) {
  if (err && errlen)
    snprintf(err, errlen, fmt, a, b);
  return MCR_ESNAPSHOT;
}

/* True when [off, off + len) fits inside [lo, hi), without overflow. */
static bool in_bounds(uint64_t off, uint64_t len, uint64_t lo, uint64_t hi) {
  return off >= lo && off <= hi && len <= hi - off;
}

/* Checks one (offset, length) section: inside the payload, u32-aligned,
 * and exactly `want` bytes long. */
static int check_section(const char* name, uint64_t off, uint64_t len,
                         uint64_t want, const mcr__snap_header_t* h, char* err,
                         size_t errlen) {
  if (!in_bounds(off, len, h->header_size, h->total_size - 8) || off % 4) {
    if (err && errlen)
      snprintf(err, errlen,
               "%s section (offset %" PRIu64 ", length %" PRIu64
               ") out of bounds",
               name, off, len);
    return MCR_ESNAPSHOT;
  }
  if (want != UINT64_MAX && len != want) {
    if (err && errlen)
      snprintf(err, errlen, "%s section length %" PRIu64 ", expected %" PRIu64,
               name, len, want);
    return MCR_ESNAPSHOT;
  }
  return 0;
}

static int check_header(const mcr__snap_header_t* h, size_t size,
                        uint64_t generation, char* err, size_t errlen) {
  if (memcmp(h->magic, MCR__SNAP_MAGIC, 8) != 0)
    return bad(err, errlen,
               "bad magic: not an mcring ring file%.0" PRIu64 "%.0" PRIu64, 0,
               0);
  if (h->abi_major != MCR__SNAP_ABI_MAJOR)
    return bad(err, errlen,
               "ABI major %" PRIu64 " unsupported (this reader knows %" PRIu64
               ")",
               h->abi_major, MCR__SNAP_ABI_MAJOR);
  /* Any minor version is accepted: minors only add fields and sections
   * that older readers may ignore. */
  if (h->header_size < sizeof(*h) || h->header_size > size - 8 ||
      h->header_size % 8)
    return bad(err, errlen, "bad header size %" PRIu64 " (file %" PRIu64 ")",
               h->header_size, size);
  if (h->total_size != size)
    return bad(err, errlen,
               "total size %" PRIu64 " does not match the file size %" PRIu64,
               h->total_size, size);
  if (generation && h->generation != generation)
    return bad(err, errlen,
               "generation %" PRIu64 " in the file, %" PRIu64 " published",
               h->generation, generation);
  if (!mcr_distribution_name((mcr_distribution_t)h->mode) || h->mode > 2)
    return bad(err, errlen, "unknown mode %" PRIu64 "%.0" PRIu64, h->mode, 0);
  if (h->node_count == 0 || h->node_count > MCR__RING_MAX_NODES)
    return bad(err, errlen, "bad node count %" PRIu64 "%.0" PRIu64,
               h->node_count, 0);
  if (h->point_count == 0 || h->point_count > MCR__RING_MAX_POINTS)
    return bad(err, errlen, "bad point count %" PRIu64 "%.0" PRIu64,
               h->point_count, 0);
  /* Any size of index in range is readable (lookups are correct with any:
   * only their speed depends on it); minor 1 readers accept 16 alone. */
  if (h->bucket_bits < MCR__BUCKET_BITS_MIN ||
      h->bucket_bits > MCR__BUCKET_BITS_MAX)
    return bad(err, errlen, "bucket bits %" PRIu64 " outside 16..%" PRIu64,
               h->bucket_bits, MCR__BUCKET_BITS_MAX);
  int rc;
  if ((rc = check_section("node", h->nodes_off, h->nodes_len,
                          (uint64_t)h->node_count * MCR__SNAP_NODE_SIZE, h, err,
                          errlen)) ||
      (rc = check_section("string", h->strings_off, h->strings_len, UINT64_MAX,
                          h, err, errlen)) ||
      (rc = check_section("point", h->points_off, h->points_len,
                          (uint64_t)h->point_count * 4, h, err, errlen)) ||
      (rc = check_section("owner", h->owners_off, h->owners_len,
                          (uint64_t)h->point_count * 4, h, err, errlen)) ||
      (rc = check_section("bucket", h->buckets_off, h->buckets_len,
                          (((uint64_t)1 << h->bucket_bits) + 1) * 4, h, err,
                          errlen)))
    return rc;
  if (h->abi_minor >= 1) {
    if ((rc = check_section("arc", h->arcs_off, h->arcs_len,
                            (uint64_t)h->node_count * 8, h, err, errlen)))
      return rc;
    if (h->arcs_off % 8)
      return bad(err, errlen,
                 "arc section at %" PRIu64 " not 8-aligned%.0" PRIu64,
                 h->arcs_off, 0);
  }
  if (h->abi_minor >= 3) {
    if (h->idents_len &&
        (rc = check_section("identity", h->idents_off, h->idents_len,
                            (uint64_t)h->node_count * 8, h, err, errlen)))
      return rc;
    if (h->remap_len % 4 || h->remap_len / 4 > MCR__RING_MAX_NODES)
      return bad(err, errlen, "bad remap length %" PRIu64 "%.0" PRIu64,
                 h->remap_len, 0);
    if (h->remap_len && (rc = check_section("remap", h->remap_off, h->remap_len,
                                            h->remap_len, h, err, errlen)))
      return rc;
  }
  return 0;
}

/* The O(points) half of validation: the checksum, the order of the points,
 * every owner index, the exact bucket index, and each node's point count
 * and arc recomputed from the arrays and compared with `nodes` (the node
 * table's counts, and the arcs section's arcs when `have_arcs`; without
 * one the recomputed arcs are stored into `nodes`). */
static int verify_arrays(const char* base, size_t size,
                         const mcr__snap_header_t* h, mcr__ring_node_t* nodes,
                         bool have_arcs, char* err, size_t errlen) {
  uint64_t sum;
  memcpy(&sum, base + size - 8, 8);
  if (XXH3_64bits(base, size - 8) != sum)
    return bad(err, errlen, "checksum mismatch%.0" PRIu64 "%.0" PRIu64, 0, 0);

  const uint32_t* points = (const uint32_t*)(base + h->points_off);
  const uint32_t* owners = (const uint32_t*)(base + h->owners_off);
  const uint32_t* buckets = (const uint32_t*)(base + h->buckets_off);
  uint32_t np = h->point_count, nn = h->node_count;
  mcr__ring_node_t* count = mcr__calloc(nn, sizeof(*count));
  if (!count)
    return MCR_ENOMEM;
  int rc = 0;
  /* One pass checks the order and the node indexes and counts each node's
   * points and arc (what mcr__ring_account computes). */
  for (uint32_t i = 0; i < np && !rc; i++) {
    uint32_t o = owners[i];
    if (o >= nn) {
      rc = bad(err, errlen, "point %" PRIu64 " names node %" PRIu64, i, o);
    } else if (i && (points[i] < points[i - 1] ||
                     (points[i] == points[i - 1] && o < owners[i - 1]))) {
      rc = bad(err, errlen, "points not sorted at %" PRIu64 "%.0" PRIu64, i, 0);
    } else {
      count[o].points++;
      count[o].arc += i ? (uint64_t)points[i] - points[i - 1]
                        : (uint64_t)points[0] + 1 +
                              (0xffffffffu - (uint64_t)points[np - 1]);
    }
  }
  /* With the points sorted, bucket b is right exactly when it points at the
   * first point whose top bits are >= b: the point there is >= b and the
   * one before it is < b. One read of the index, no merge with the points. */
  const unsigned shift = 32 - h->bucket_bits;
  uint32_t b = 0, prev = 0;
  for (; b < (1u << h->bucket_bits) && !rc; b++) {
    uint32_t v = buckets[b];
    if (v < prev || v > np || (v < np && (points[v] >> shift) < b) ||
        (v > 0 && (points[v - 1] >> shift) >= b))
      rc = bad(err, errlen, "bucket %" PRIu64 " is wrong (%" PRIu64 ")", b, v);
    prev = v;
  }
  for (uint32_t i = 0; i < nn && !rc; i++) {
    if (count[i].points != nodes[i].points ||
        (have_arcs && count[i].arc != nodes[i].arc))
      rc = bad(err, errlen,
               "node %" PRIu64 " entry disagrees with the continuum (%" PRIu64
               " points)",
               i, count[i].points);
    nodes[i].arc = count[i].arc;
  }
  mcr__free(count);
  return rc;
}

/* The O(nodes) half of the full check: every node entry readable, the
 * identities (when the file has them) equal to the entries', every remap
 * entry a node or MCR__SNAP_GONE, and the per-node point counts and arcs
 * adding up to the totals. Then the O(points) half (verify_arrays). For a
 * file without arcs (minor 0) the node table is kept as r->nodes, with the
 * arcs verify_arrays computed. */
static int verify_all(mcr_ring_t* r, const char* base, size_t size,
                      const mcr__snap_header_t* h, bool have_arcs, char* err,
                      size_t errlen) {
  uint32_t nn = r->nnodes;
  mcr__ring_node_t* nodes = mcr__calloc(nn, sizeof(*nodes));
  if (!nodes)
    return MCR_ENOMEM;
  int rc = 0;
  /* Each arc is at most 2^32, so 65535 of them cannot overflow the sum. */
  uint64_t points_sum = 0, arcs_sum = 0;
  for (uint32_t i = 0; i < nn && !rc; i++) {
    if (mcr__ring_node_get(r, i, &nodes[i]) ||
        (r->idents && mcr__ring_ident_at(r, i) !=
                          mcr__ring_node_ident(nodes[i].host, nodes[i].address,
                                               nodes[i].port)))
      rc =
          bad(err, errlen, "node %" PRIu64 " entry is invalid%.0" PRIu64, i, 0);
    points_sum += nodes[i].points;
    arcs_sum += nodes[i].arc;
  }
  for (uint32_t j = 0; j < r->nremap && !rc; j++) {
    uint32_t to;
    memcpy(&to, r->remap + (size_t)j * 4, 4);
    if (to != MCR__SNAP_GONE && to >= nn)
      rc = bad(err, errlen, "remap entry %" PRIu64 " is %" PRIu64, j, to);
  }
  if (!rc && points_sum != r->npoints)
    rc = bad(err, errlen,
             "node point counts add up to %" PRIu64 ", not %" PRIu64,
             points_sum, r->npoints);
  if (!rc && have_arcs && arcs_sum != (1ull << 32))
    rc = bad(err, errlen, "node arcs add up to %" PRIu64 ", not %" PRIu64,
             arcs_sum, 1ull << 32);
  if (!rc)
    rc = verify_arrays(base, size, h, nodes, have_arcs, err, errlen);
  if (!rc && !have_arcs)
    r->nodes = nodes;
  else
    mcr__free(nodes);
  return rc;
}

int mcr__snapshot_validate(const void* buf, size_t size, uint64_t generation,
                           bool full, mcr_ring_t** out, char* err,
                           size_t errlen) {
  *out = NULL;
  const char* base = buf;
  const mcr__snap_header_t* h = buf;
  if (size < sizeof(*h) + 8)
    return bad(err, errlen,
               "truncated: %" PRIu64 " bytes, smaller than a header (%" PRIu64
               ")",
               size, sizeof(*h) + 8);
  int rc = check_header(h, size, generation, err, errlen);
  if (rc)
    return rc;
  /* Files from writers before ABI minor 1 carry no arcs: only the full
   * pass can compute them. */
  bool have_arcs = h->abi_minor >= 1;
  full |= !have_arcs;
  const uint32_t* buckets = (const uint32_t*)(base + h->buckets_off);
  if (buckets[1u << h->bucket_bits] != h->point_count)
    return bad(err, errlen, "bucket index ends at %" PRIu64 ", not %" PRIu64,
               buckets[1u << h->bucket_bits], h->point_count);
  mcr_ring_t* r = mcr__calloc(1, sizeof(*r));
  if (!r)
    return MCR_ENOMEM;
  r->points = (const uint32_t*)(base + h->points_off);
  r->owners = (const uint32_t*)(base + h->owners_off);
  r->buckets = buckets;
  r->npoints = h->point_count;
  r->nnodes = h->node_count;
  r->mode = (mcr_distribution_t)h->mode;
  r->bucket_shift = 32 - h->bucket_bits;
  r->generation = h->generation;
  r->publish_ns = h->publish_ns;
  /* Node entries are read, and checked, when they are used: what a
   * switch costs does not grow with the nodes (docs/snapshot.md). */
  r->file_nodes = base + h->nodes_off;
  r->strings = base + h->strings_off;
  r->strings_len = h->strings_len;
  r->arcs = have_arcs ? base + h->arcs_off : NULL;
  if (h->abi_minor >= 3 && h->idents_len)
    r->idents = base + h->idents_off;
  if (h->abi_minor >= 3 && h->remap_len) {
    r->remap = base + h->remap_off;
    r->nremap = (uint32_t)(h->remap_len / 4);
    r->remap_from = h->remap_from;
  }
  if (full && (rc = verify_all(r, base, size, h, have_arcs, err, errlen))) {
    mcr_ring_free(r);
    return rc;
  }
  *out = r;
  return 0;
}

/* ---------------------------------------------------------------- reader */

struct mcr_snapshot {
  const uint64_t* ctl_gen; /* generation word of the mapped control file */
  uint64_t seen;           /* last generation loaded or refused */
  mcr_ring_t* ring;        /* current good ring (owns its mapping) */
  void* ctl_map;
  int dirfd;
  uid_t uid;   /* expected owner */
  bool verify; /* validate every generation in full (opts.verify) */
  /* As long as the client's: the reason a ring directory is refused runs
   * to about 230 characters besides the path. */
  char err[512];
};

static void ring_unmap(mcr_ring_t* r) {
  if (!r)
    return;
  if (r->map)
    munmap(r->map, r->map_len);
  mcr__free(r->nodes);
  mcr__free(r);
}

/* Owner and permission checks shared by the control and ring files. */
static int check_file(const struct stat* st, uid_t uid, const char* name,
                      char* err, size_t errlen) {
  if (!S_ISREG(st->st_mode)) {
    snprintf(err, errlen, "%s is not a regular file", name);
    return MCR_EPERM;
  }
  if (st->st_uid != uid) {
    snprintf(err, errlen, "%s is owned by uid %u, expected uid %u", name,
             (unsigned)st->st_uid, (unsigned)uid);
    return MCR_EPERM;
  }
  if (st->st_mode & (S_IWGRP | S_IWOTH)) {
    snprintf(err, errlen, "%s is writable by group or other (mode %03o)", name,
             (unsigned)(st->st_mode & 0777));
    return MCR_EPERM;
  }
  return 0;
}

/* Opens dir-relative `name` read-only without following a symlink, checks
 * it, and returns the fd (or a negative error with a message). */
static int open_checked(mcr_snapshot_t* s, const char* name, struct stat* st,
                        bool* missing) {
  *missing = false;
  int fd =
      openat(s->dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    *missing = e == ENOENT;
    snprintf(s->err, sizeof(s->err), "%s: %s", name,
             e == ELOOP ? "is a symlink, refused" : strerror(e));
    return e == ELOOP ? MCR_EPERM : e == ENOENT ? MCR_ESNAPSHOT : MCR_ESYS;
  }
  int rc = 0;
  if (fstat(fd, st) != 0) {
    snprintf(s->err, sizeof(s->err), "%s: fstat: %s", name, strerror(errno));
    rc = MCR_ESYS;
  } else {
    rc = check_file(st, s->uid, name, s->err, sizeof(s->err));
  }
  if (rc) {
    close(fd);
    return rc;
  }
  return fd;
}

/* load_gen's result when the file is gone (replaced and unlinked). */
#define LOAD_GONE 2

/* Maps and validates ring.<gen>; on success swaps it in and returns 0.
 * Returns LOAD_GONE when the file does not exist, else a negative error. */
static int load_gen(mcr_snapshot_t* s, uint64_t gen) {
  char name[40];
  snprintf(name, sizeof(name), "ring.%" PRIu64, gen);
  struct stat st;
  bool missing = false;
  int fd = open_checked(s, name, &st, &missing);
  if (missing)
    return LOAD_GONE;
  if (fd < 0)
    return fd;
  if (st.st_size < (off_t)sizeof(mcr__snap_header_t) + 8 ||
      (uint64_t)st.st_size > SNAP_MAX_SIZE) {
    close(fd);
    snprintf(s->err, sizeof(s->err), "%s: bad size %lld", name,
             (long long)st.st_size);
    return MCR_ESNAPSHOT;
  }
  size_t len = (size_t)st.st_size;
  void* map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
  int e = errno;
  close(fd);
  if (map == MAP_FAILED) {
    snprintf(s->err, sizeof(s->err), "%s: mmap: %s", name, strerror(e));
    return MCR_ESYS;
  }
  mcr_ring_t* r;
  char verr[200];
  int rc =
      mcr__snapshot_validate(map, len, gen, s->verify, &r, verr, sizeof(verr));
  if (rc) {
    munmap(map, len);
    snprintf(s->err, sizeof(s->err), "%s refused: %s", name, verr);
    return rc;
  }
  r->map = map;
  r->map_len = len;
  ring_unmap(s->ring);
  s->ring = r;
  return 0;
}

/* The slow path of refresh: generation `gen` differs from the last seen. */
static int refresh_slow(mcr_snapshot_t* s, uint64_t gen) {
  for (int tries = 0; tries < SNAP_OPEN_TRIES; tries++) {
    if (gen == 0) {
      snprintf(s->err, sizeof(s->err), "no ring published yet");
      return MCR_ESNAPSHOT;
    }
    int rc = load_gen(s, gen);
    if (rc != LOAD_GONE) {
      /* Loaded or refused: either way this generation is settled, and a
       * refused one is not retried on every operation. */
      s->seen = gen;
      return rc ? rc : 1;
    }
    /* Unlinked under us: a newer generation must have been published. */
    uint64_t now = ck_pr_load_64(s->ctl_gen);
    if (now == gen) {
      s->seen = gen;
      snprintf(s->err, sizeof(s->err),
               "ring.%" PRIu64 " is published but missing", gen);
      return MCR_ESNAPSHOT;
    }
    gen = now;
  }
  /* The writer outran us; keep the current ring, retry on the next call. */
  return 0;
}

int mcr_snapshot_refresh(mcr_snapshot_t* s) {
  /* Acquire: pairs with the writer's release store, so the ring file named
   * by this generation is complete before we open and read it. */
  uint64_t gen = ck_pr_load_64(s->ctl_gen);
  if (MCR__LIKELY(gen == s->seen))
    return 0;
  ck_pr_fence_load();
  return refresh_slow(s, gen);
}

void mcr_snapshot_opts_init(mcr_snapshot_opts_t* opts) {
  opts->expected_uid = -1;
  opts->verify = 0;
}

static int open_ctl(mcr_snapshot_t* s) {
  struct stat st;
  bool missing;
  int fd = open_checked(s, MCR__SNAP_CTL_NAME, &st, &missing);
  if (fd < 0)
    return fd;
  if (st.st_size != MCR__SNAP_CTL_SIZE) {
    close(fd);
    snprintf(s->err, sizeof(s->err), "ctl: size %lld, expected %u",
             (long long)st.st_size, MCR__SNAP_CTL_SIZE);
    return MCR_ESNAPSHOT;
  }
  void* map = mmap(NULL, MCR__SNAP_CTL_SIZE, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (map == MAP_FAILED) {
    snprintf(s->err, sizeof(s->err), "ctl: mmap: %s", strerror(errno));
    return MCR_ESYS;
  }
  s->ctl_map = map;
  uint16_t major;
  memcpy(&major, (char*)map + 8, 2);
  if (memcmp(map, MCR__SNAP_CTL_MAGIC, 8) != 0 ||
      major != MCR__SNAP_ABI_MAJOR) {
    snprintf(s->err, sizeof(s->err), "ctl: not an mcring control file");
    return MCR_ESNAPSHOT;
  }
  s->ctl_gen = (const uint64_t*)((char*)map + MCR__SNAP_CTL_GEN_OFF);
  return 0;
}

int mcr_snapshot_open(mcr_snapshot_t** out, const char* dir,
                      const mcr_snapshot_opts_t* opts, char* err,
                      size_t errlen) {
  if (!out || !dir)
    return MCR_EINVAL;
  *out = NULL;
  mcr_snapshot_t* s = mcr__calloc(1, sizeof(*s));
  if (!s)
    return MCR_ENOMEM;
  /* The directory itself, and who may have made it (ringdir.c). */
  int rc = s->dirfd = mcr__ringdir_open(dir, opts ? opts->expected_uid : -1,
                                        &s->uid, s->err, sizeof(s->err));
  if (rc >= 0)
    rc = 0;
  s->verify = opts && opts->verify != 0;
  if (!rc)
    rc = open_ctl(s);
  if (!rc)
    rc = refresh_slow(s, ck_pr_load_64(s->ctl_gen));
  if (rc >= 0 && !s->ring) {
    snprintf(s->err, sizeof(s->err), "no ring could be loaded");
    rc = MCR_ESNAPSHOT;
  }
  if (rc < 0) {
    if (err && errlen)
      snprintf(err, errlen, "%s", s->err);
    mcr_snapshot_free(s);
    return rc;
  }
  s->err[0] = '\0';
  *out = s;
  return 0;
}

const mcr_ring_t* mcr_snapshot_ring(const mcr_snapshot_t* s) {
  return s->ring;
}

uint64_t mcr_snapshot_generation(const mcr_snapshot_t* s) {
  return s->ring ? s->ring->generation : 0;
}

int mcr__snapshot_dirfd(const mcr_snapshot_t* s, uid_t* owner) {
  *owner = s->uid;
  return s->dirfd;
}

const char* mcr_snapshot_last_error(const mcr_snapshot_t* s) {
  return s->err;
}

void mcr_snapshot_free(mcr_snapshot_t* s) {
  if (!s)
    return;
  ring_unmap(s->ring);
  if (s->ctl_map)
    munmap(s->ctl_map, MCR__SNAP_CTL_SIZE);
  if (s->dirfd >= 0)
    close(s->dirfd);
  mcr__free(s);
}
