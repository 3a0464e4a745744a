/* hoststats.c — per-node counters of every worker on a host, in one file.
 *
 * The agent creates DIR/stats beside the ring: a header and a fixed number
 * of slots. Each client handle that follows the ring claims one slot with a
 * compare-and-swap of the slot's pid word (0, or a dead process's pid, to
 * its own) and from then on is the only writer of that slot: no locks, no
 * atomics beyond plain 64-bit stores, which readers can never see torn. A
 * slot holds a table of node entries ("host:port" plus counters), appended
 * as the handle meets new nodes; entries of nodes that left the ring stay,
 * so their history is not lost while the worker lives. A handle gives its
 * slot back when freed; a child after fork claims a slot of its own before
 * it counts anything (it would otherwise write into its parent's slot), and
 * slots of processes that died are taken over by the next claimer.
 *
 * `mcring stat` opens the file read-only and adds up the slots whose owner
 * is alive. The file is sparse: a slot costs memory only for the pages its
 * owner touched.
 *
 * Layout (little-endian, offsets from the start of the file):
 *   0     header (4096 bytes): "MCRSTAT1", u32 version, u32 header size,
 *         u32 slots, u32 slot size, u32 entries per slot, u32 entry size
 *   4096  slot i at 4096 + i * slot size:
 *           u32 pid (0 = free), u32 entries used, u64 generation,
 *           u64 reserved[6]                               (64 bytes)
 *           entries: char node[64] then the u64 counters of
 *           mcr_node_counters_t                         (entry size each)
 */
#include <ck_pr.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define HS_MAGIC "MCRSTAT1"
#define HS_VERSION 1u
#define HS_HEADER 4096u
#define HS_SLOT_HEAD 64u
#define HS_NAME 64u
#define HS_ENTRY 320u /* 64 name + 30 counters (240), rounded up */
#define HS_ENTRIES 1024u
#define HS_SLOT_SIZE (HS_SLOT_HEAD + HS_ENTRIES * HS_ENTRY)
#define HS_FILE "stats"

_Static_assert(HS_NAME + sizeof(mcr_node_counters_t) <= HS_ENTRY,
               "counters fit an entry");

typedef struct {
  char magic[8];
  uint32_t version, header_size, slots, slot_size, entries, entry_size;
} hs_header_t;

typedef struct {
  uint32_t pid;
  uint32_t used;
  uint64_t generation;
  uint64_t reserved[6];
} hs_slot_t;

struct mcr__hs {
  char* map;
  size_t len;
  hs_slot_t* slot;   /* ours, or NULL */
  unsigned fork_gen; /* mcr__fork_gen when the slot was claimed */
  uint32_t slots;
};

static hs_slot_t* slot_at(char* map, uint32_t i) {
  return (hs_slot_t*)(map + HS_HEADER + (size_t)i * HS_SLOT_SIZE);
}

static char* entry_at(hs_slot_t* s, uint32_t i) {
  return (char*)s + HS_SLOT_HEAD + (size_t)i * HS_ENTRY;
}

static int header_ok(const char* map, size_t len) {
  hs_header_t h;
  if (len < HS_HEADER)
    return 0;
  memcpy(&h, map, sizeof h);
  return memcmp(h.magic, HS_MAGIC, 8) == 0 && h.version == HS_VERSION &&
         h.header_size == HS_HEADER && h.slot_size == HS_SLOT_SIZE &&
         h.entries == HS_ENTRIES && h.entry_size == HS_ENTRY && h.slots > 0 &&
         (uint64_t)HS_HEADER + (uint64_t)h.slots * HS_SLOT_SIZE == len;
}

/* Opens DIR/stats without following symlinks and checks that it is a
 * regular file owned by the directory's owner. */
static int open_file(const char* dir, int flags, struct stat* st, char* err,
                     size_t errlen) {
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    snprintf(err, errlen, "%s: %s", dir, strerror(errno));
    return errno == ENOENT ? MCR_ESNAPSHOT : MCR_ESYS;
  }
  struct stat dst;
  int fd = -1, rc = 0;
  if (fstat(dfd, &dst) < 0) {
    snprintf(err, errlen, "%s: %s", dir, strerror(errno));
    rc = MCR_ESYS;
  } else if ((fd = openat(dfd, HS_FILE,
                          flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0) {
    snprintf(err, errlen, "%s/%s: %s", dir, HS_FILE, strerror(errno));
    rc = errno == ENOENT                     ? MCR_ESNAPSHOT
         : errno == ELOOP || errno == EACCES ? MCR_EPERM
                                             : MCR_ESYS;
  } else if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode) ||
             st->st_uid != dst.st_uid || (st->st_mode & S_IWOTH)) {
    snprintf(err, errlen,
             "%s/%s: not a regular file owned by the directory's owner, or "
             "writable by others",
             dir, HS_FILE);
    rc = MCR_EPERM;
  }
  close(dfd);
  if (rc) {
    if (fd >= 0)
      close(fd);
    return rc;
  }
  return fd;
}

/* Opens and maps DIR/stats (read-write or read-only) and checks its
 * header. Returns 0 with the mapping, its length and slot count, or an
 * error: MCR_ESNAPSHOT when there is none or it is not a stats segment. */
static int map_segment(const char* dir, bool writable, char** map, size_t* len,
                       uint32_t* slots, char* err, size_t errlen) {
  struct stat st;
  int fd = open_file(dir, writable ? O_RDWR : O_RDONLY, &st, err, errlen);
  if (fd < 0)
    return fd;
  *len = (size_t)st.st_size;
  void* m = *len ? mmap(NULL, *len, PROT_READ | (writable ? PROT_WRITE : 0),
                        MAP_SHARED, fd, 0)
                 : MAP_FAILED;
  close(fd);
  if (m == MAP_FAILED || !header_ok(m, *len)) {
    if (m != MAP_FAILED)
      munmap(m, *len);
    snprintf(err, errlen, "%s/%s: not an mcring stats segment", dir, HS_FILE);
    return MCR_ESNAPSHOT;
  }
  *map = m;
  memcpy(slots, (char*)m + offsetof(hs_header_t, slots), 4);
  return 0;
}

int mcr_hoststats_create(const char* dir, unsigned slots, char* err,
                         size_t errlen) {
  char dummy[8];
  if (!err) {
    err = dummy;
    errlen = sizeof dummy;
  }
  if (!dir || slots == 0 || slots > 65536) {
    snprintf(err, errlen, "slots must be 1..65536");
    return MCR_EINVAL;
  }
  size_t len = HS_HEADER + (size_t)slots * HS_SLOT_SIZE;
  struct stat st;
  int fd = open_file(dir, O_RDWR, &st, err, errlen);
  if (fd >= 0 && (size_t)st.st_size == len) {
    /* Reuse: live workers keep their slots across an agent restart. */
    void* m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    int ok = m != MAP_FAILED && header_ok(m, len);
    if (m != MAP_FAILED)
      munmap(m, len);
    if (ok) {
      close(fd);
      return 0;
    }
  }
  if (fd >= 0)
    close(fd);
  if (fd < 0 && fd != MCR_ESNAPSHOT)
    return fd;

  /* A new file under a temporary name, renamed over the old one, so no
   * worker ever maps a half-made header. */
  char tmp[4096], path[4096];
  snprintf(tmp, sizeof tmp, "%s/%s.tmp.%d", dir, HS_FILE, (int)getpid());
  snprintf(path, sizeof path, "%s/%s", dir, HS_FILE);
  fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0660);
  if (fd < 0) {
    snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
    return MCR_ESYS;
  }
  struct stat dst;
  hs_header_t h = {.version = HS_VERSION,
                   .header_size = HS_HEADER,
                   .slots = slots,
                   .slot_size = HS_SLOT_SIZE,
                   .entries = HS_ENTRIES,
                   .entry_size = HS_ENTRY};
  memcpy(h.magic, HS_MAGIC, 8);
  int rc = 0;
  /* Group of the directory (the workers' group), mode 0660 despite the
   * umask: workers of that group claim slots by writing. */
  if (stat(dir, &dst) < 0 || fchown(fd, (uid_t)-1, dst.st_gid) < 0 ||
      fchmod(fd, 0660) < 0 || ftruncate(fd, (off_t)len) < 0 ||
      pwrite(fd, &h, sizeof h, 0) != (ssize_t)sizeof h ||
      rename(tmp, path) < 0) {
    snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
    unlink(tmp);
    rc = MCR_ESYS;
  }
  close(fd);
  return rc;
}

/* ------------------------------------------------------------ workers */

static bool pid_alive(uint32_t pid) {
  return pid != 0 && (kill((pid_t)pid, 0) == 0 || errno != ESRCH);
}

/* Claims a free slot, else one whose owner died. Returns NULL when all are
 * taken by live processes (the handle then counts nothing). */
static hs_slot_t* claim(mcr__hs_t* h) {
  uint32_t me = (uint32_t)getpid();
  for (int pass = 0; pass < 2; pass++) {
    for (uint32_t i = 0; i < h->slots; i++) {
      hs_slot_t* s = slot_at(h->map, i);
      uint32_t pid = ck_pr_load_32(&s->pid);
      if (pass == 0 ? pid != 0 : pid == 0 || pid == me || pid_alive(pid))
        continue;
      /* The CAS makes the claim exclusive between racing claimers. */
      if (!ck_pr_cas_32(&s->pid, pid, me))
        continue;
      ck_pr_store_32(&s->used, 0);
      return s;
    }
  }
  return NULL;
}

int mcr__hs_open(mcr_client_t* c, const char* dir) {
  char err[256];
  char* m;
  size_t len;
  uint32_t slots;
  int rc = map_segment(dir, true, &m, &len, &slots, err, sizeof err);
  /* Host stats are optional: no segment, no write access (a worker outside
   * the agent's group) or a bad file leaves this client's counters private
   * instead of failing it. */
  if (rc)
    return rc == MCR_ENOMEM ? rc : 0;
  mcr__hs_t* h = mcr__calloc(1, sizeof(*h));
  if (!h) {
    munmap(m, len);
    return MCR_ENOMEM;
  }
  h->map = m;
  h->len = len;
  h->slots = slots;
  h->fork_gen = ck_pr_load_uint(&mcr__fork_gen);
  h->slot = claim(h);
  c->hs = h;
  mcr__hs_bind(c);
  return 0;
}

/* The entry of `name` in our slot, appended when new; NULL when full. */
static uint64_t* entry_for(hs_slot_t* s, const char* name) {
  uint32_t used = s->used;
  for (uint32_t i = 0; i < used; i++)
    if (strncmp(entry_at(s, i), name, HS_NAME) == 0)
      return (uint64_t*)(entry_at(s, i) + HS_NAME);
  if (used == HS_ENTRIES)
    return NULL;
  char* e = entry_at(s, used);
  memset(e, 0, HS_ENTRY);
  snprintf(e, HS_NAME, "%s", name);
  /* Release: a reader that sees the new count sees the entry's name. */
  ck_pr_fence_store();
  ck_pr_store_32(&s->used, used + 1);
  return (uint64_t*)(e + HS_NAME);
}

void mcr__hs_bind(mcr_client_t* c) {
  mcr__hs_t* h = c->hs;
  /* Nodes kept across a ring switch keep their entry: only new ones are
   * looked up (a scan of the slot's entries). */
  for (size_t i = 0; i < c->nnodes; i++)
    if (!c->nodes[i].hs && h && h->slot)
      c->nodes[i].hs = entry_for(h->slot, c->nodes[i].srv.name);
  if (h && h->slot)
    ck_pr_store_64(&h->slot->generation, mcr_client_generation(c));
}

void mcr__hs_check_fork(mcr_client_t* c) {
  mcr__hs_t* h = c->hs;
  if (MCR__LIKELY(h->fork_gen == ck_pr_load_uint(&mcr__fork_gen)))
    return;
  h->fork_gen = ck_pr_load_uint(&mcr__fork_gen);
  h->slot = claim(h); /* the parent's slot stays the parent's */
  for (size_t i = 0; i < c->nnodes; i++)
    c->nodes[i].hs = NULL;
  mcr__hs_bind(c);
}

void mcr__hs_close(mcr_client_t* c) {
  mcr__hs_t* h = c->hs;
  if (!h)
    return;
  if (h->slot && h->fork_gen == ck_pr_load_uint(&mcr__fork_gen))
    ck_pr_store_32(&h->slot->pid, 0);
  munmap(h->map, h->len);
  mcr__free(h);
  c->hs = NULL;
}

void mcr__hs_op_slow(mcr__node_t* n, mcr__opkind_t kind, int rc) {
  uint64_t* k = n->hs;
  static const size_t field[] = {
      [MCR__OP_GET] = offsetof(mcr_node_counters_t, gets),
      [MCR__OP_SET] = offsetof(mcr_node_counters_t, sets),
      [MCR__OP_DELETE] = offsetof(mcr_node_counters_t, deletes),
      [MCR__OP_OTHER] = offsetof(mcr_node_counters_t, others),
  };
#define BUMP(off) \
  ck_pr_store_64(&k[(off) / 8], k[(off) / 8] + 1) /* single writer */
  BUMP(field[kind]);
  if (rc < 0) {
    BUMP(offsetof(mcr_node_counters_t, errors));
    if (rc == MCR_ETIMEOUT || rc == MCR_ECONNTIMEOUT)
      BUMP(offsetof(mcr_node_counters_t, timeouts));
  } else if (kind == MCR__OP_GET) {
    BUMP(rc == MCR_OK ? offsetof(mcr_node_counters_t, hits)
                      : offsetof(mcr_node_counters_t, misses));
  }
#undef BUMP
}

void mcr__hs_add(mcr__node_t* n, size_t field_off, uint64_t v) {
  uint64_t* k = n->hs;
  ck_pr_store_64(&k[field_off / 8], k[field_off / 8] + v);
}

void mcr__hs_latency(mcr__node_t* n, int64_t ns) {
  uint64_t us = ns > 0 ? (uint64_t)ns / 1000 : 0;
  unsigned b = us < 2 ? 0 : 63 - (unsigned)__builtin_clzll(us);
  if (b >= MCR_LATENCY_BUCKETS)
    b = MCR_LATENCY_BUCKETS - 1;
  mcr__hs_add(n, offsetof(mcr_node_counters_t, latency) + b * 8, 1);
}

/* ------------------------------------------------------------ readers */

struct mcr_hoststats {
  char* map;
  size_t len;
  uint32_t slots;
  mcr_hoststat_row_t* rows;
  size_t cap;
};

int mcr_hoststats_open(mcr_hoststats_t** out, const char* dir, char* err,
                       size_t errlen) {
  char dummy[8];
  if (!err) {
    err = dummy;
    errlen = sizeof dummy;
  }
  if (!out || !dir)
    return MCR_EINVAL;
  *out = NULL;
  char* m;
  size_t len;
  uint32_t slots;
  int rc = map_segment(dir, false, &m, &len, &slots, err, errlen);
  if (rc)
    return rc;
  mcr_hoststats_t* h = mcr__calloc(1, sizeof(*h));
  if (!h) {
    munmap(m, len);
    return MCR_ENOMEM;
  }
  h->map = m;
  h->len = len;
  h->slots = slots;
  *out = h;
  return 0;
}

int mcr_hoststats_read(mcr_hoststats_t* h, const mcr_hoststat_row_t** rows) {
  if (!h || !rows)
    return MCR_EINVAL;
  size_t n = 0;
  for (uint32_t i = 0; i < h->slots; i++) {
    hs_slot_t* s = slot_at(h->map, i);
    uint32_t pid = ck_pr_load_32(&s->pid);
    if (!pid_alive(pid))
      continue;
    uint32_t used = ck_pr_load_32(&s->used);
    /* Acquire: pairs with entry_for's release of the count. */
    ck_pr_fence_load();
    if (used > HS_ENTRIES)
      continue; /* corrupt: skip the slot */
    for (uint32_t e = 0; e < used; e++) {
      if (n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        mcr_hoststat_row_t* r = mcr__realloc(h->rows, cap * sizeof(*r));
        if (!r)
          return MCR_ENOMEM;
        h->rows = r;
        h->cap = cap;
      }
      mcr_hoststat_row_t* r = &h->rows[n++];
      const char* ent = entry_at(s, e);
      r->pid = (int)pid;
      r->slot = i;
      r->generation = ck_pr_load_64(&s->generation);
      /* Copied and terminated here: the slot is written by another
       * process, so nothing in it is trusted. */
      memcpy(r->node, ent, sizeof r->node);
      r->node[sizeof r->node - 1] = '\0';
      const uint64_t* k = (const uint64_t*)(ent + HS_NAME);
      uint64_t* dst = (uint64_t*)&r->c;
      for (size_t f = 0; f < sizeof(r->c) / 8; f++)
        dst[f] = ck_pr_load_64(&k[f]);
    }
  }
  *rows = h->rows;
  return (int)n;
}

void mcr_hoststats_free(mcr_hoststats_t* h) {
  if (!h)
    return;
  munmap(h->map, h->len);
  mcr__free(h->rows);
  mcr__free(h);
}
