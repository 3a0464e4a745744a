/* snapshot_write.c — publishes rings into the shared snapshot directory.
 *
 * The writer half of snapshot.c (the files and their format:
 * docs/snapshot.md). Used by mcring-agent; internal to libmcring. It is built
 * around one rule: a published file is never modified. Each generation is
 * written into a new file that no reader can be looking at yet (created
 * O_EXCL|O_NOFOLLOW relative to the directory fd, mode 0640, allocated in
 * full with posix_fallocate so filling it cannot hit ENOSPC half-way, filled
 * through a shared mapping of the new file, checksummed, and verified in
 * full from the file's own bytes: the O(points) checks readers skip), and
 * only then made current by one release store of its generation into the
 * control file. The previous file is unlinked afterwards; readers still
 * mapping it keep it alive, and the kernel frees it with their last
 * mapping, so reclamation needs no reader cooperation.
 *
 * A writer killed at any instruction therefore leaves either the old
 * generation current (a partial ring.<N+1> nobody reads) or the new one
 * complete. The next writer takes the flock, reads the generation from the
 * control file, carries it on, and deletes every other ring.* and temporary
 * file. Files are not fsynced: the directory is meant for tmpfs, where that
 * is a no-op, and after a reboot the agent publishes a fresh ring anyway.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ck_pr.h>

#include "ring.h"

struct mcr__snapshot_writer {
  int dirfd;
  uint64_t* ctl_gen; /* generation word of the control file, mapped RW */
  void* ctl_map;
  uint64_t gen;     /* last published generation */
  uint64_t* idents; /* its nodes' identities (nidents), for the next map */
  uint32_t nidents;
  int64_t stored_ns; /* CLOCK_MONOTONIC just before its store (bench) */
  char err[512];
};

static size_t align_up(size_t v, size_t a) {
  return (v + a - 1) & ~(a - 1);
}

/* ---------------------------------------------------------------- encode */

/* Section offsets of ring r's file, in file order. */
typedef struct {
  size_t nodes, strings, strings_len, arcs, idents, remap, points, owners,
      buckets, total;
} layout_t;

static layout_t layout(const mcr_ring_t* r, uint32_t nremap) {
  layout_t l;
  size_t slen = 0;
  for (uint32_t i = 0; i < r->nnodes; i++)
    slen += strlen(r->nodes[i].host) + strlen(r->nodes[i].address) + 2;
  l.nodes = align_up(sizeof(mcr__snap_header_t), MCR__SNAP_ALIGN);
  l.strings = align_up(l.nodes + (size_t)r->nnodes * MCR__SNAP_NODE_SIZE,
                       MCR__SNAP_ALIGN);
  l.strings_len = slen;
  l.arcs = align_up(l.strings + slen, MCR__SNAP_ALIGN);
  l.idents = align_up(l.arcs + (size_t)r->nnodes * 8, MCR__SNAP_ALIGN);
  l.remap = align_up(l.idents + (size_t)r->nnodes * 8, MCR__SNAP_ALIGN);
  l.points = align_up(l.remap + (size_t)nremap * 4, MCR__SNAP_ALIGN);
  l.owners = align_up(l.points + (size_t)r->npoints * 4, MCR__SNAP_ALIGN);
  l.buckets = align_up(l.owners + (size_t)r->npoints * 4, MCR__SNAP_ALIGN);
  l.total =
      align_up(l.buckets + ((size_t)mcr__ring_nbuckets(r) + 1) * 4, 8) + 8;
  return l;
}

size_t mcr__snapshot_size(const mcr_ring_t* r, uint32_t nremap) {
  return layout(r, nremap).total;
}

/* Copies s (with its NUL) to strings + *pos; records offset and length. */
static void put_string(char* strings, size_t* pos, const char* s, uint32_t* off,
                       uint32_t* len) {
  size_t n = strlen(s);
  memcpy(strings + *pos, s, n + 1);
  *off = (uint32_t)*pos;
  *len = (uint32_t)n;
  *pos += n + 1;
}

void mcr__snapshot_encode(const mcr_ring_t* r, uint64_t generation,
                          uint64_t publish_ns, const uint64_t* idents,
                          const mcr__snap_remap_t* remap, void* buf,
                          size_t size) {
  uint32_t nremap = remap ? remap->n : 0;
  layout_t l = layout(r, nremap);
  char* base = buf;
  memset(base, 0, size);
  mcr__snap_header_t h = {0};
  memcpy(h.magic, MCR__SNAP_MAGIC, 8);
  h.abi_major = MCR__SNAP_ABI_MAJOR;
  h.abi_minor = MCR__SNAP_ABI_MINOR;
  h.header_size = sizeof(h);
  h.total_size = l.total;
  h.generation = generation;
  h.publish_ns = publish_ns;
  h.mode = (uint32_t)r->mode;
  h.node_count = r->nnodes;
  h.point_count = r->npoints;
  h.bucket_bits = 32 - r->bucket_shift;
  h.nodes_off = l.nodes;
  h.nodes_len = (uint64_t)r->nnodes * MCR__SNAP_NODE_SIZE;
  h.strings_off = l.strings;
  h.strings_len = l.strings_len;
  h.points_off = l.points;
  h.points_len = (uint64_t)r->npoints * 4;
  h.owners_off = l.owners;
  h.owners_len = (uint64_t)r->npoints * 4;
  h.buckets_off = l.buckets;
  h.buckets_len = ((uint64_t)mcr__ring_nbuckets(r) + 1) * 4;
  h.arcs_off = l.arcs;
  h.arcs_len = (uint64_t)r->nnodes * 8;
  h.idents_off = l.idents;
  h.idents_len = (uint64_t)r->nnodes * 8;
  h.remap_off = l.remap;
  h.remap_len = (uint64_t)nremap * 4;
  h.remap_from = nremap ? remap->from : 0;
  memcpy(base, &h, sizeof(h));

  size_t pos = 0;
  for (uint32_t i = 0; i < r->nnodes; i++) {
    const mcr__ring_node_t* n = &r->nodes[i];
    mcr__snap_node_t e = {0};
    put_string(base + l.strings, &pos, n->host, &e.host_off, &e.host_len);
    put_string(base + l.strings, &pos, n->address, &e.addr_off, &e.addr_len);
    e.port = n->port;
    e.state = n->state;
    e.weight = n->weight;
    e.points = n->points;
    memcpy(base + l.nodes + (size_t)i * MCR__SNAP_NODE_SIZE, &e, sizeof(e));
    memcpy(base + l.arcs + (size_t)i * 8, &n->arc, 8);
    uint64_t id =
        idents ? idents[i] : mcr__ring_node_ident(n->host, n->address, n->port);
    memcpy(base + l.idents + (size_t)i * 8, &id, 8);
  }
  if (nremap)
    memcpy(base + l.remap, remap->to, (size_t)nremap * 4);
  memcpy(base + l.points, r->points, (size_t)r->npoints * 4);
  memcpy(base + l.owners, r->owners, (size_t)r->npoints * 4);
  memcpy(base + l.buckets, r->buckets, h.buckets_len);
  mcr__snapshot_seal(buf, size);
}

/* ---------------------------------------------------------------- writer */

static int werr(mcr__snapshot_writer_t* w, int rc, const char* what,
                const char* name, int e) {
  snprintf(w->err, sizeof(w->err), "%s %s: %s", what, name,
           e ? strerror(e) : "refused");
  return rc;
}

/* Removes every ring.* except the current generation's, every temporary
 * file a killed writer may have left, and the shared stats file of mcring
 * 0.1 ("stats", "stats.tmp.<pid>": a sparse file of up to 21 GiB that
 * host stats no longer use; hoststats.c). */
static void remove_if_stale(int dirfd, const char* n, void* arg) {
  const char* keep = arg;
  bool stale = (strncmp(n, "ring.", 5) == 0 && strcmp(n, keep) != 0) ||
               strncmp(n, MCR__SNAP_CTL_NAME ".tmp.", 8) == 0 ||
               strcmp(n, "stats") == 0 || strncmp(n, "stats.tmp.", 10) == 0;
  if (stale)
    unlinkat(dirfd, n, 0);
}

static void remove_stale(mcr__snapshot_writer_t* w) {
  char keep[40];
  snprintf(keep, sizeof(keep), "ring.%" PRIu64, w->gen);
  mcr__ringdir_walk(w->dirfd, remove_if_stale, keep);
}

/* Creates the control file atomically: a complete temporary file linked
 * into place, so "ctl" either does not exist or is whole. */
static int create_ctl(mcr__snapshot_writer_t* w) {
  char tmp[48];
  snprintf(tmp, sizeof(tmp), MCR__SNAP_CTL_NAME ".tmp.%ld", (long)getpid());
  unlinkat(w->dirfd, tmp, 0);
  int fd = openat(w->dirfd, tmp,
                  O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
  if (fd < 0)
    return werr(w, MCR_ESYS, "create", tmp, errno);
  char page[MCR__SNAP_CTL_SIZE] = {0};
  uint16_t v[2] = {MCR__SNAP_ABI_MAJOR, MCR__SNAP_ABI_MINOR};
  memcpy(page, MCR__SNAP_CTL_MAGIC, 8);
  memcpy(page + 8, v, sizeof(v));
  int rc = 0;
  if (fchmod(fd, 0640) != 0 ||
      pwrite(fd, page, sizeof(page), 0) != (ssize_t)sizeof(page))
    rc = werr(w, MCR_ESYS, "write", tmp, errno);
  close(fd);
  if (!rc && linkat(w->dirfd, tmp, w->dirfd, MCR__SNAP_CTL_NAME, 0) != 0 &&
      errno != EEXIST)
    rc = werr(w, MCR_ESYS, "link", MCR__SNAP_CTL_NAME, errno);
  unlinkat(w->dirfd, tmp, 0);
  return rc;
}

static int open_ctl(mcr__snapshot_writer_t* w) {
  int fd =
      openat(w->dirfd, MCR__SNAP_CTL_NAME, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    int rc = create_ctl(w);
    if (rc)
      return rc;
    fd = openat(w->dirfd, MCR__SNAP_CTL_NAME, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  }
  if (fd < 0)
    return werr(w, errno == ELOOP ? MCR_EPERM : MCR_ESYS, "open",
                MCR__SNAP_CTL_NAME, errno);
  struct stat st;
  int rc = 0;
  if (fstat(fd, &st) != 0)
    rc = werr(w, MCR_ESYS, "fstat", MCR__SNAP_CTL_NAME, errno);
  else if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
           (st.st_mode & (S_IWGRP | S_IWOTH)) ||
           st.st_size != MCR__SNAP_CTL_SIZE)
    rc = werr(w, MCR_ESNAPSHOT, "unsafe or damaged", MCR__SNAP_CTL_NAME, 0);
  if (!rc) {
    w->ctl_map = mmap(NULL, MCR__SNAP_CTL_SIZE, PROT_READ | PROT_WRITE,
                      MAP_SHARED, fd, 0);
    if (w->ctl_map == MAP_FAILED) {
      w->ctl_map = NULL;
      rc = werr(w, MCR_ESYS, "mmap", MCR__SNAP_CTL_NAME, errno);
    } else if (memcmp(w->ctl_map, MCR__SNAP_CTL_MAGIC, 8) != 0) {
      rc = werr(w, MCR_ESNAPSHOT, "not a control file:", MCR__SNAP_CTL_NAME, 0);
    }
  }
  close(fd);
  if (rc)
    return rc;
  w->ctl_gen = (uint64_t*)((char*)w->ctl_map + MCR__SNAP_CTL_GEN_OFF);
  /* Only this (locked) writer stores the word; a plain atomic load is
   * enough to pick up what the previous writer published. */
  w->gen = ck_pr_load_64(w->ctl_gen);
  return 0;
}

int mcr__snapshot_writer_open(mcr__snapshot_writer_t** out, const char* dir,
                              char* err, size_t errlen) {
  *out = NULL;
  mcr__snapshot_writer_t* w = mcr__calloc(1, sizeof(*w));
  if (!w)
    return MCR_ENOMEM;
  int rc = 0;
  struct stat st;
  if (mkdir(dir, 0750) != 0 && errno != EEXIST)
    rc = werr(w, MCR_ESYS, "mkdir", dir, errno);
  /* Someone else's directory (made before us, in a parent others can
   * write) is not ours to publish in: its owner could swap our files. */
  if (!rc && lstat(dir, &st) == 0 && S_ISDIR(st.st_mode) &&
      st.st_uid != geteuid()) {
    snprintf(w->err, sizeof(w->err),
             "%s is owned by uid %u, not by this agent (uid %u): remove it "
             "(and put ring directories where only root can create them, "
             "such as /run/mcring), or run the agent as its owner",
             dir, (unsigned)st.st_uid, (unsigned)geteuid());
    rc = MCR_EPERM;
  }
  if (!rc) {
    w->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (w->dirfd < 0 || fstat(w->dirfd, &st) != 0)
      /* ELOOP or ENOTDIR: a symlink or a file where the directory goes. */
      rc = werr(w, errno == ELOOP || errno == ENOTDIR ? MCR_EPERM : MCR_ESYS,
                "open", dir, errno);
    else if (st.st_mode & S_IWOTH)
      rc = werr(w, MCR_EPERM, "world-writable directory", dir, 0);
    else if (flock(w->dirfd, LOCK_EX | LOCK_NB) != 0)
      rc = werr(w, MCR_ESNAPSHOT, "another writer holds the lock on", dir,
                errno == EWOULDBLOCK ? 0 : errno);
  } else {
    w->dirfd = -1;
  }
  if (!rc)
    rc = open_ctl(w);
  if (!rc)
    remove_stale(w);
  if (rc) {
    if (err && errlen)
      snprintf(err, errlen, "%s", w->err);
    mcr__snapshot_writer_close(w);
    return rc;
  }
  *out = w;
  return 0;
}

/* Creates and fills ring.<gen> completely; the file is not published. */
static int write_file(mcr__snapshot_writer_t* w, const mcr_ring_t* r,
                      const uint64_t* idents, const mcr__snap_remap_t* remap,
                      uint64_t gen, const char* name) {
  int fd = openat(w->dirfd, name,
                  O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
  if (fd < 0 && errno == EEXIST) {
    /* Left by a publish that failed earlier in this process. */
    unlinkat(w->dirfd, name, 0);
    fd = openat(w->dirfd, name,
                O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
  }
  if (fd < 0)
    return werr(w, MCR_ESYS, "create", name, errno);
  size_t size = mcr__snapshot_size(r, remap ? remap->n : 0);
  int rc = 0, e;
  void* map = MAP_FAILED;
  /* The umask may have cleared the group read bit that workers need. */
  if (fchmod(fd, 0640) != 0) {
    rc = werr(w, MCR_ESYS, "chmod", name, errno);
  } else if ((e = posix_fallocate(fd, 0, (off_t)size)) != 0) {
    rc = werr(w, MCR_ESYS, "allocate", name, e);
  } else {
    map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED)
      rc = werr(w, MCR_ESYS, "mmap", name, errno);
  }
  if (!rc) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    mcr__snapshot_encode(
        r, gen, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec,
        idents, remap, map, size);
    /* Readers check the header and each node entry they use (snapshot.c):
     * the whole file is verified here, once per host, from its own bytes,
     * before anyone can be told the generation. */
    mcr_ring_t* check;
    char verr[160];
    rc = mcr__snapshot_validate(map, size, gen, true, &check, verr,
                                sizeof(verr));
    if (rc) {
      snprintf(w->err, sizeof(w->err), "%s failed verification: %s", name,
               verr);
    } else {
      mcr_ring_free(check); /* ->heap is NULL: frees only the node table */
    }
    munmap(map, size);
  }
  close(fd);
  return rc;
}

static void store_generation(mcr__snapshot_writer_t* w, uint64_t gen) {
  /* Release: every byte of ring.<gen> (written through syscalls and a
   * shared mapping before this point) must be visible before a reader can
   * see the generation that names it. */
  w->stored_ns = mcr__now_ns();
  ck_pr_fence_store();
  /* The single atomic store that publishes; readers load it with acquire
   * semantics (mcr_snapshot_refresh). */
  ck_pr_store_64(w->ctl_gen, gen);
}

void mcr__snapshot_writer_store_generation(mcr__snapshot_writer_t* w,
                                           uint64_t gen) {
  store_generation(w, gen);
  w->gen = gen;
  mcr__free(w->idents); /* no map from a generation this did not write */
  w->idents = NULL;
  w->nidents = 0;
}

/* The identities of r's nodes into *ids, and in *to where each node of
 * the previous generation (w->idents) went: one open-addressing index of
 * the new identities, one probe per old node. */
static int make_remap(mcr__snapshot_writer_t* w, const mcr_ring_t* r,
                      uint64_t** ids, uint32_t** to) {
  size_t cap = 16;
  while (cap < 2 * (size_t)r->nnodes)
    cap <<= 1;
  *ids = mcr__malloc((size_t)r->nnodes * sizeof **ids);
  *to = mcr__malloc(((size_t)w->nidents + 1) * sizeof **to);
  uint32_t* slot = mcr__calloc(cap, sizeof *slot);
  if (!*ids || !*to || !slot) {
    mcr__free(slot);
    return werr(w, MCR_ENOMEM, "remap", "ring", ENOMEM);
  }
  for (uint32_t i = 0; i < r->nnodes; i++) {
    const mcr__ring_node_t* n = &r->nodes[i];
    uint64_t id = mcr__ring_node_ident(n->host, n->address, n->port);
    (*ids)[i] = id;
    size_t h = (size_t)id & (cap - 1);
    while (slot[h])
      h = (h + 1) & (cap - 1);
    slot[h] = i + 1;
  }
  for (uint32_t j = 0; j < w->nidents; j++) {
    (*to)[j] = MCR__SNAP_GONE;
    for (size_t h = (size_t)w->idents[j] & (cap - 1); slot[h];
         h = (h + 1) & (cap - 1))
      if ((*ids)[slot[h] - 1] == w->idents[j]) {
        (*to)[j] = slot[h] - 1;
        break;
      }
  }
  mcr__free(slot);
  return 0;
}

int mcr__snapshot_writer_publish(mcr__snapshot_writer_t* w, const mcr_ring_t* r,
                                 uint64_t* gen) {
  /* Readers compare generations for equality only, so numbering can
   * start again at 1 after 2^64 - 1 (only a damaged control file gets
   * there) without a reader missing the change; 0 means "nothing
   * published" and is skipped. */
  uint64_t g = w->gen == UINT64_MAX ? 1 : w->gen + 1;
  char name[40];
  snprintf(name, sizeof(name), "ring.%" PRIu64, g);
  /* The map from the generation before, when this writer published it
   * (after a restart readers match nodes by identity once). */
  uint64_t* ids = NULL;
  uint32_t* to = NULL;
  int rc = make_remap(w, r, &ids, &to);
  mcr__snap_remap_t remap = {.from = w->gen, .to = to, .n = w->nidents};
  if (!rc)
    rc = write_file(w, r, ids, w->idents && w->gen ? &remap : NULL, g, name);
  mcr__free(to);
  if (rc) {
    mcr__free(ids);
    unlinkat(w->dirfd, name, 0);
    return rc;
  }
  store_generation(w, g);
  if (w->gen) {
    snprintf(name, sizeof(name), "ring.%" PRIu64, w->gen);
    unlinkat(w->dirfd, name, 0);
  }
  w->gen = g;
  mcr__free(w->idents);
  w->idents = ids;
  w->nidents = r->nnodes;
  if (gen)
    *gen = g;
  return 0;
}

int mcr__snapshot_writer_publish_nodes(mcr__snapshot_writer_t* w,
                                       mcr_distribution_t mode,
                                       const mcr__ring_node_in_t* nodes,
                                       size_t n, uint64_t* gen) {
  mcr_ring_t* r;
  int rc = mcr__ring_build_nodes(&r, mode, nodes, n, w->err, sizeof(w->err));
  if (rc)
    return rc;
  rc = mcr__snapshot_writer_publish(w, r, gen);
  mcr_ring_free(r);
  return rc;
}

int mcr__snapshot_writer_dirfd(const mcr__snapshot_writer_t* w) {
  return w->dirfd;
}

uint64_t mcr__snapshot_writer_generation(const mcr__snapshot_writer_t* w) {
  return w->gen;
}

int64_t mcr__snapshot_writer_stored_ns(const mcr__snapshot_writer_t* w) {
  return w->stored_ns;
}

const char* mcr__snapshot_writer_error(const mcr__snapshot_writer_t* w) {
  return w->err;
}

void mcr__snapshot_writer_close(mcr__snapshot_writer_t* w) {
  if (!w)
    return;
  if (w->ctl_map)
    munmap(w->ctl_map, MCR__SNAP_CTL_SIZE);
  if (w->dirfd >= 0)
    close(w->dirfd); /* releases the flock */
  mcr__free(w->idents);
  mcr__free(w);
}
