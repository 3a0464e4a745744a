/* ring.h — the Ketama continuum, its lookup, and the shared snapshot format.
 *
 * Shared by ketama.c (building rings, lookup), snapshot.c (the reader that
 * maps published rings) and snapshot_write.c (the writer the agent uses).
 * A ring is the same struct whether it was built in this process or mapped
 * from a snapshot: three flat arrays (sorted points, the node index of each
 * point, and a bucket index over the points) plus a node table. Lookup
 * touches only the arrays and never allocates.
 */
#ifndef MCR_RING_H
#define MCR_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

/* ---------------------------------------------------------------- ring */

/* The bucket index has 2^bits entries over the top `bits` bits of a hash,
 * plus one sentinel entry equal to the point count. `bits` grows with the
 * points (mcr__ring_bucket_bits) so that a bucket holds at most
 * MCR__BUCKET_LOAD points on average: 16 up to 524,288 points (3,276
 * nodes of weight 1 in `ketama` mode), 21 at 65,535 such nodes. */
#define MCR__BUCKET_BITS_MIN 16u
#define MCR__BUCKET_BITS_MAX 24u
#define MCR__BUCKET_LOAD 8u

/* Limits that keep every count and offset of a ring in 32 bits. */
#define MCR__RING_MAX_NODES 65535u
#define MCR__RING_MAX_POINTS (1u << 24)
#define MCR__RING_MAX_STR 1023u
/* A remap entry of a node that left the ring (the snapshot's remap). */
#define MCR__SNAP_GONE 0xffffffffu

/* Node states stored in the node table (informational: a ring only ever
 * holds the nodes the writer considered live). */
#define MCR__NODE_UP 1u

/* One node handed to the ring builder. */
typedef struct {
  const char* host;    /* as configured: name, IPv4, IPv6 without brackets,
                          or a unix socket path */
  const char* address; /* numeric address the `ketama` mode hashes; NULL
                          means "host" (which must then be numeric) */
  uint16_t port;       /* 0 for a unix socket */
  uint32_t weight;     /* 0 counts as 1 */
  uint16_t state;      /* MCR__NODE_UP */
} mcr__ring_node_in_t;

/* One node of a built or mapped ring. Strings point into the ring's own
 * memory (heap or mapping). */
typedef struct {
  const char* host;
  const char* address;
  uint16_t port;
  uint16_t state;
  uint32_t weight;
  uint32_t points; /* points this node contributed to the continuum */
  uint64_t arc;    /* hashes (out of 2^32) that land on this node */
} mcr__ring_node_t;

struct mcr_ring {
  /* Hot lookup fields first (one cache line). */
  const uint32_t* points;  /* npoints, ascending; ties by node index */
  const uint32_t* owners;  /* npoints node indexes, parallel to points */
  const uint32_t* buckets; /* 2^bucket_bits + 1 first-point indexes */
  uint32_t npoints;
  uint32_t nnodes;
  mcr_distribution_t mode;
  uint32_t bucket_shift; /* 32 - bucket_bits */
  /* Cold fields. */
  mcr__ring_node_t* nodes; /* nnodes entries, heap; NULL for a mapped ring
                              whose entries are read from the file on use
                              (mcr__ring_node_get) */
  /* A mapped ring's node table, strings and per-node sections, or NULL.
   * Entries are checked when read, not when mapped: a switch costs what
   * it uses of the file, not its size. */
  const char* file_nodes;
  const char* strings;
  uint64_t strings_len;
  const char* arcs;   /* nnodes u64 */
  const char* idents; /* nnodes u64, or NULL (computed on use) */
  const char* remap;  /* nremap u32, or NULL */
  uint32_t nremap;
  uint64_t remap_from; /* the generation remap maps from */
  uint64_t generation; /* snapshot generation, 0 when built here */
  uint64_t publish_ns; /* snapshot publish time (CLOCK_REALTIME) */
  void* heap;          /* arrays and strings when built here */
  void* map;           /* the mapped snapshot file, or NULL */
  size_t map_len;
};

/* The 32-bit key hash of the ring's mode: the first 4 bytes of MD5(key)
 * read little-endian for the two MD5 modes, the low 32 bits of
 * XXH3-64(key) for xxh3. Pure; no allocation. */
uint32_t mcr__ring_hash(mcr_distribution_t mode, const void* key, size_t len);

/* out[i] = mcr__ring_hash(mode, keys[i], lens[i]) for i < n, bit for bit;
 * the MD5 modes hash several keys at once (md5x.c). For the routing of
 * multi-key calls. Pure; no allocation; n may be 0. */
void mcr__ring_hash_many(mcr_distribution_t mode, size_t n,
                         const char* const* keys, const size_t* lens,
                         uint32_t* out);

/* md5x.c: out[i] = the first little-endian word of MD5(keys[i]) for i < n
 * (the hash of both MD5 modes), computed 4 (SSE2), 8 (AVX2) or up to 32
 * (AVX-512VL) keys at a time; keys over 55 bytes take the scalar path. */
void mcr__md5x_word0(size_t n, const char* const* keys, const size_t* lens,
                     uint32_t* out);

/* Instruction sets md5x.c can use, in order. AVX512 means AVX-512F and
 * AVX-512VL, on 256-bit vectors. */
typedef enum {
  MCR__MD5X_SCALAR,
  MCR__MD5X_SSE2,
  MCR__MD5X_AVX2,
  MCR__MD5X_AVX512
} mcr__md5x_isa_t;

/* Test seam: caps the instruction set md5x.c uses at `max` (process-wide;
 * MCR__MD5X_AVX512, the top level, removes the cap). Returns the level now
 * in use, which is lower than max when the CPU or the build lacks it. */
mcr__md5x_isa_t mcr__md5x_limit(mcr__md5x_isa_t max);

/* The MD5 of block[0..len), len <= 55, as the four state words (the
 * digest read as little-endian u32s): pads the caller's block in place
 * and runs one compression (ring_points.c). */
void mcr__md5_block(uint8_t block[64], size_t len, uint32_t st[4]);

/* ring_points.c: the continuum of nodes[0..n) in `mode`, node i making
 * hashes[i] digests (ketama.c decides how many): points[] ascending with
 * ties in node-index order and owners[] the node index of each, exactly
 * the arrays of sorting every (value, node index) pair, into the caller's
 * arrays of sum(hashes) * 4 entries (* 2 for xxh3). Uses each node's host,
 * address and port. Sets *npoints; returns 0 or MCR_ENOMEM. */
int mcr__ring_points(mcr_distribution_t mode, const mcr__ring_node_t* nodes,
                     size_t n, const uint32_t* hashes, uint32_t* points,
                     uint32_t* owners, size_t* npoints);

/* mcr__ring_find_point gives the index of the first point >= h, wrapping
 * to the first point; mcr__ring_find the node index owning hash `h`, the
 * node of that point. Expected O(1): one bucket load and a short
 * scan. The ring must have at least one point (every built or validated
 * ring has). */
static inline uint32_t mcr__ring_find_point(const mcr_ring_t* r, uint32_t h) {
  uint32_t b = h >> r->bucket_shift;
  uint32_t i = r->buckets[b];
  uint32_t end = r->buckets[b + 1];
  /* A mapped ring's arrays are trusted only as far as bounds (see
   * snapshot.c): whatever the index holds, the scan stays inside the
   * points and the result is a valid point index. */
  if (MCR__UNLIKELY(end > r->npoints))
    end = r->npoints;
  while (i < end && r->points[i] < h)
    i++;
  return MCR__UNLIKELY(i >= r->npoints) ? 0 : i;
}

/* Entries of r's bucket index, the sentinel not counted. */
static inline uint32_t mcr__ring_nbuckets(const mcr_ring_t* r) {
  return 1u << (32 - r->bucket_shift);
}

/* The owner of a point, always < r->nnodes (node 0 for an index out of
 * range, which only a mapped file altered after publication can hold). */
static inline uint32_t mcr__ring_owner(const mcr_ring_t* r, uint32_t point) {
  uint32_t o = r->owners[point];
  return MCR__LIKELY(o < r->nnodes) ? o : 0;
}

static inline uint32_t mcr__ring_find(const mcr_ring_t* r, uint32_t h) {
  return mcr__ring_owner(r, mcr__ring_find_point(r, h));
}

/* Node index for a key; the routing fast path of the client. */
static inline uint32_t mcr__ring_locate(const mcr_ring_t* r, const void* key,
                                        size_t len) {
  return mcr__ring_find(r, mcr__ring_hash(r->mode, key, len));
}

/* Builds a ring from `n` nodes. No name resolution: in the `ketama` mode
 * every node needs a numeric `address` (or a numeric host). Returns 0 and
 * sets *out (free with mcr_ring_free), or MCR_ENOSERVERS (n == 0),
 * MCR_EINVAL (bad mode, bad node), MCR_ERANGE (too many nodes or points),
 * MCR_ENOMEM; a message goes to err[errlen] (err may be NULL). */
int mcr__ring_build_nodes(mcr_ring_t** out, mcr_distribution_t mode,
                          const mcr__ring_node_in_t* nodes, size_t n, char* err,
                          size_t errlen);

/* Builds a ring from a parsed server list (see servers.c). For the `ketama`
 * mode a host that is not a numeric address is resolved with getaddrinfo
 * (blocking; first address returned) — MCR_ERESOLVE when that fails. */
int mcr__ring_build(mcr_ring_t** out, mcr_distribution_t mode,
                    const mcr__server_t* srv, size_t n, char* err,
                    size_t errlen);

/* The bucket bits of a ring of `npoints` points: the fewest, from
 * MCR__BUCKET_BITS_MIN to MCR__BUCKET_BITS_MAX, that hold at most
 * MCR__BUCKET_LOAD points per bucket on average. */
uint32_t mcr__ring_bucket_bits(uint32_t npoints);

/* Fills r->buckets-style index `buckets` (2^bits + 1 entries) for sorted
 * `points`. */
void mcr__ring_fill_buckets(const uint32_t* points, uint32_t npoints,
                            uint32_t bits, uint32_t* buckets);

/* Computes nodes[i].points and nodes[i].arc from the arrays. Returns 0, or
 * -1 when an owner index is >= nnodes. */
int mcr__ring_account(const uint32_t* points, const uint32_t* owners,
                      uint32_t npoints, mcr__ring_node_t* nodes,
                      uint32_t nnodes);

/* Node i of ring r into *out: a built ring's entry, or a mapped ring's
 * entry read from the file and checked there and then (its strings in
 * bounds and NUL-terminated without a NUL inside, its arc at most 2^32).
 * Returns 0, MCR_ERANGE (i >= nnodes) or MCR_ESNAPSHOT (a bad entry). */
int mcr__ring_node_get(const mcr_ring_t* r, uint32_t i, mcr__ring_node_t* out);

/* The identity of node i of r computed from its entry; 0 for a bad one. */
uint64_t mcr__ring_ident_slow(const mcr_ring_t* r, uint32_t i);

/* The identity (mcr__ring_node_ident) of node i of r: the file's when it
 * carries them, else computed from the entry; 0 for a bad entry. Inline:
 * a ring switch reads one per node the worker holds. */
static inline uint64_t mcr__ring_ident_at(const mcr_ring_t* r, uint32_t i) {
  if (MCR__LIKELY(r->idents != NULL && i < r->nnodes)) {
    uint64_t id;
    memcpy(&id, r->idents + (size_t)i * 8, 8);
    return id;
  }
  return mcr__ring_ident_slow(r, i);
}

/* Where node `old` of generation `from` is in r, from the map the writer
 * published with r: its index, or MCR__SNAP_GONE when it left; -1 when r
 * has no map from `from` (or the entry is out of range), and the caller
 * must match by identity instead. */
static inline int64_t mcr__ring_remap(const mcr_ring_t* r, uint64_t from,
                                      uint32_t old) {
  if (!r->remap || r->remap_from != from || old >= r->nremap)
    return -1;
  uint32_t j;
  memcpy(&j, r->remap + (size_t)old * 4, 4);
  return j < r->nnodes ? (int64_t)j : (int64_t)MCR__SNAP_GONE;
}

/* The ring directory a reader opened (its own descriptor) and the uid its
 * files must be owned by. */
int mcr__snapshot_dirfd(const mcr_snapshot_t* s, uid_t* owner);

/* ---------------------------------------------------------------- snapshot
 * File format: docs/snapshot.md (the one description). All integers are
 * little-endian; every offset is from the start of the file. */

#define MCR__SNAP_MAGIC "MCRRING1"     /* 8 bytes, no NUL */
#define MCR__SNAP_CTL_MAGIC "MCRCTL01" /* 8 bytes, no NUL */
#define MCR__SNAP_ABI_MAJOR 1u
#define MCR__SNAP_ABI_MINOR 3u
#define MCR__SNAP_CTL_NAME "ctl"
#define MCR__SNAP_CTL_SIZE 4096u
#define MCR__SNAP_CTL_GEN_OFF 16u /* the 8-aligned generation word */
#define MCR__SNAP_ALIGN 64u       /* every section starts on a cache line */
#define MCR__SNAP_NODE_SIZE 32u

/* The ring file header. Its in-memory layout is the file layout on a
 * little-endian host (static asserts in snapshot.c). */
typedef struct {
  char magic[8];        /* 0   "MCRRING1" */
  uint16_t abi_major;   /* 8   incompatible changes */
  uint16_t abi_minor;   /* 10  compatible additions */
  uint32_t header_size; /* 12  sizeof this header */
  uint64_t total_size;  /* 16  file size, checksum trailer included */
  uint64_t generation;  /* 24  equals the N of ring.N */
  uint64_t publish_ns;  /* 32  CLOCK_REALTIME nanoseconds */
  uint32_t mode;        /* 40  mcr_distribution_t */
  uint32_t node_count;  /* 44 */
  uint32_t point_count; /* 48 */
  uint32_t bucket_bits; /* 52  MCR__BUCKET_BITS_MIN..MAX */
  uint64_t nodes_off;   /* 56  node table: node_count * 32 bytes */
  uint64_t nodes_len;   /* 64 */
  uint64_t strings_off; /* 72  NUL-terminated host and address strings */
  uint64_t strings_len; /* 80 */
  uint64_t points_off;  /* 88  point_count u32, ascending */
  uint64_t points_len;  /* 96 */
  uint64_t owners_off;  /* 104 point_count u32 node indexes */
  uint64_t owners_len;  /* 112 */
  uint64_t buckets_off; /* 120 (2^bucket_bits + 1) u32 point indexes */
  uint64_t buckets_len; /* 128 */
  uint64_t arcs_off;    /* 136 ABI minor >= 1: node_count u64, the hashes */
  uint64_t arcs_len;    /* 144 (out of 2^32) each node owns; 0 in minor 0 */
  uint64_t idents_off;  /* 152 ABI minor >= 3: node_count u64, each node's */
  uint64_t idents_len;  /* 160 identity (mcr__ring_node_ident); 0 before */
  uint64_t remap_off;   /* 168 ABI minor >= 3: for each node of generation */
  uint64_t remap_len;   /* 176 remap_from, its u32 index in this one, or */
  uint64_t remap_from;  /* 184 MCR__SNAP_GONE; remap_len 0 = no map */
} mcr__snap_header_t;   /* 192 bytes; the last 8 bytes of the file hold
                           XXH3-64 of every byte before them */

/* One node table entry (32 bytes). */
typedef struct {
  uint32_t host_off; /* into the strings section */
  uint32_t host_len; /* without the NUL */
  uint32_t addr_off;
  uint32_t addr_len;
  uint16_t port;
  uint16_t state;
  uint32_t weight;
  uint32_t points;
  uint32_t reserved; /* zero */
} mcr__snap_node_t;

/* The map a generation carries from the one before it (remap_*). */
typedef struct {
  uint64_t from;      /* the generation it maps from */
  const uint32_t* to; /* n entries: new index, or MCR__SNAP_GONE */
  uint32_t n;
} mcr__snap_remap_t;

/* Size of the snapshot file for ring r with a map of `nremap` entries. */
size_t mcr__snapshot_size(const mcr_ring_t* r, uint32_t nremap);

/* Writes the complete snapshot of ring r (generation, publish time, the
 * nodes' identities: `idents`, or computed when NULL; and `remap` unless
 * NULL) into buf[0..size), size from mcr__snapshot_size, checksum
 * included. */
void mcr__snapshot_encode(const mcr_ring_t* r, uint64_t generation,
                          uint64_t publish_ns, const uint64_t* idents,
                          const mcr__snap_remap_t* remap, void* buf,
                          size_t size);

/* Recomputes the checksum trailer of buf[0..size) (tests use it to make a
 * corrupted file pass the checksum and reach the field checks). */
void mcr__snapshot_seal(void* buf, size_t size);

/* Checks a snapshot image and, on success, builds a ring that points into
 * it: *out->map = NULL (the caller owns the bytes and sets map/map_len).
 * Always checked, in constant time: the header, every section's bounds,
 * the end of the bucket index; node entries are checked when they are read
 * (mcr__ring_node_get). With `full` also every node entry, identity and
 * map entry, the per-node point counts and arcs against the totals, the
 * checksum, the order of the points, every owner index and the exact
 * bucket index (time proportional to the nodes and points; a file without
 * the arcs section, ABI minor 0, is always checked in full). Lookups never
 * leave the arrays of a ring that passed the first part (ring.h), so
 * `full` decides only whether a damaged file can route keys, never whether
 * it can crash.
 * `generation` is the expected generation (0 = any). Returns 0, or
 * MCR_ESNAPSHOT / MCR_ENOMEM with a message in err. */
int mcr__snapshot_validate(const void* buf, size_t size, uint64_t generation,
                           bool full, mcr_ring_t** out, char* err,
                           size_t errlen);

/* ---------------------------------------------------------------- writer
 * The writer side (snapshot_write.c), used by the agent. One writer per
 * directory at a time (flock); not thread-safe. */
typedef struct mcr__snapshot_writer mcr__snapshot_writer_t;

/* Opens (creating it with mode 0750 when missing) the ring directory,
 * refuses a world-writable one, takes the single-writer lock, opens or
 * creates the control file, carries the published generation on, and
 * removes stale ring.* and temporary files. Returns 0, MCR_EPERM (lock
 * held by another writer, unsafe directory), MCR_ESNAPSHOT (bad control
 * file), MCR_ESYS, MCR_ENOMEM; message in err. */
int mcr__snapshot_writer_open(mcr__snapshot_writer_t** out, const char* dir,
                              char* err, size_t errlen);

/* Publishes ring r as the next generation: writes ring.<gen> (O_EXCL,
 * O_NOFOLLOW, 0640, fully allocated, checksummed), stores the generation
 * into the control file with one release store, then unlinks the previous
 * generation's file. Sets *gen (may be NULL). Returns 0 or a negative
 * error with the message in mcr__snapshot_writer_error(). */
int mcr__snapshot_writer_publish(mcr__snapshot_writer_t* w, const mcr_ring_t* r,
                                 uint64_t* gen);

/* Builds the ring from nodes and publishes it. */
int mcr__snapshot_writer_publish_nodes(mcr__snapshot_writer_t* w,
                                       mcr_distribution_t mode,
                                       const mcr__ring_node_in_t* nodes,
                                       size_t n, uint64_t* gen);

/* The generation currently published (0 when none). */
uint64_t mcr__snapshot_writer_generation(const mcr__snapshot_writer_t* w);

/* When the last generation was stored (CLOCK_MONOTONIC ns, read just
 * before the store): where a benchmark times propagation from, since the
 * publish call may return long after readers switched. */
int64_t mcr__snapshot_writer_stored_ns(const mcr__snapshot_writer_t* w);

/* The directory the writer holds (its own descriptor: do not close it). */
int mcr__snapshot_writer_dirfd(const mcr__snapshot_writer_t* w);

/* Test seam: stores `gen` into the control file exactly as publish does,
 * without writing a ring file (tests plant hostile files this way), and
 * makes it the writer's current generation: the next publish uses gen + 1
 * and unlinks ring.<gen>. */
void mcr__snapshot_writer_store_generation(mcr__snapshot_writer_t* w,
                                           uint64_t gen);

/* Last error message of the writer ("" if none). */
const char* mcr__snapshot_writer_error(const mcr__snapshot_writer_t* w);

/* Releases the lock and closes the writer. The published ring stays. */
void mcr__snapshot_writer_close(mcr__snapshot_writer_t* w);

#endif /* MCR_RING_H */
