/* hoststats.c — per-node counters of every worker on a host: the worker's
 * half and the reader's.
 *
 * Each client handle that follows an agent's ring keeps its per-node
 * counters in a segment of its own: a memfd it creates, sizes for the
 * largest ring (MCR__HS_CAP entries, ~20 MiB of address space, of which
 * only the pages of entries in use are ever allocated), seals against
 * shrinking and growing, maps read-write and hands to the agent over the
 * agent's unix socket in the ring directory (hoststats_server.c). The
 * handle is then the only writer of its counters: plain 64-bit stores, no
 * locks, no atomics on the hot path. Nobody else maps the segment: the
 * agent reads it with pread. So no process can make a worker fault
 * (SIGBUS), read or write outside its mapping, or even see another
 * worker's memory through host stats; the worst a process of the agent's
 * group can do is register segments of its own with false numbers.
 *
 * Pages are allocated (fallocate) before an entry in them is first used,
 * so an exhausted host shows up as an entry that cannot be had, never as
 * a fault; the entries and the ring filesystem never share space (a memfd
 * lives in memory, charged to the worker that made it).
 *
 * Which entry belongs to which node is private: a hash table from the
 * node's name to its entry number, in the handle's own heap. A worker that
 * has met MCR__HS_CAP nodes recycles the entries of nodes that left the
 * ring; when none has left it stops counting new nodes until the next
 * ring switch, without rescanning on every call.
 *
 * The registration is the open connection: the agent drops it when the
 * connection closes (the handle was freed, or its process died), or when
 * the process that registered it is gone although a forked child still
 * holds the socket (pid plus start time). A child after fork closes the
 * inherited socket and mapping at its first call and registers a segment
 * of its own. A handle notices at its next ring switch that the agent
 * restarted (end of stream on the socket) and registers again; a new
 * agent always publishes a new generation.
 *
 * The reader (`mcring stat`, mcr_hoststats_read) asks the agent, which
 * sums nothing and trusts nothing: it copies out what each live segment
 * holds, clamped to the segment's size (hoststats_server.c).
 */
#include <ck_pr.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <xxhash.h>

#include "hoststats.h"

/* Test hook: entries a new segment holds (MCR__HS_CAP unless set). */
uint32_t mcr__hs_capacity;

/* The least time a registration waits for the agent's answer. */
#define REGISTER_MS 2000

/* Entries whose pages are allocated when a segment is made; the allocated
 * range then doubles as entries are used. */
#define FIRST_READY 64u
#define EMPTY UINT32_MAX

struct mcr__hs {
  int dirfd; /* the ring directory (our own descriptor) */
  uid_t owner;
  int timeout_ms;
  int sock;  /* the registration's connection, or -1 */
  int memfd; /* the segment, or -1 */
  char* map; /* the segment mapping, or NULL (no host stats right now) */
  size_t map_len;
  uint32_t cap;   /* entries the segment has room for */
  uint32_t used;  /* entries handed out: [0, used) */
  uint32_t ready; /* entries whose pages are allocated */
  bool full;      /* no entry to be had until the next ring switch */
  unsigned fork_gen;
  /* Private: each entry's name hash, and an open-addressing table from
   * hash to entry number. */
  uint64_t* hashes;
  uint32_t* index;
  uint32_t index_mask; /* table size - 1, or 0 without a table */
  uint32_t* free;      /* entries freed by the last recycle */
  uint32_t nfree;
  uint64_t generation; /* the ring generation c routes by */
  uint64_t* health;    /* the host's health table (health.c), or NULL */
};

static mcr__hs_head_t* head_of(mcr__hs_t* h) {
  return (mcr__hs_head_t*)(void*)h->map;
}

static char* entry_at(mcr__hs_t* h, uint32_t i) {
  return h->map + MCR__HS_HEAD + (size_t)i * MCR__HS_ENTRY;
}

/* ------------------------------------------------------------ the socket */

/* Connects to the agent's socket in dirfd, refusing anything but a socket
 * owned by `owner` with a peer process running as `owner`. Returns the
 * (non-blocking) fd or a negative error with a message. */
static int agent_connect(int dirfd, uid_t owner, char* err, size_t errlen) {
  struct stat st;
  if (fstatat(dirfd, MCR__HS_SOCK, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    int e = errno;
    snprintf(err, errlen, "%s: %s", MCR__HS_SOCK,
             e == ENOENT ? "absent (no agent running, or one started with "
                           "--stats-slots 0)"
                         : strerror(e));
    return e == ENOENT ? MCR_ESNAPSHOT : MCR_ESYS;
  }
  if (!S_ISSOCK(st.st_mode) || st.st_uid != owner) {
    snprintf(err, errlen, "%s: not a socket owned by uid %u", MCR__HS_SOCK,
             (unsigned)owner);
    return MCR_EPERM;
  }
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/%s", dirfd,
           MCR__HS_SOCK);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(err, errlen, "socket: %s", strerror(errno));
    return MCR_ESYS;
  }
  if (connect(fd, (struct sockaddr*)&sa, sizeof sa) != 0) {
    int e = errno;
    close(fd);
    snprintf(err, errlen, "%s: connect: %s", MCR__HS_SOCK,
             e == EAGAIN ? "the agent's queue is full" : strerror(e));
    return e == EACCES ? MCR_EPERM : MCR_ESYS;
  }
  struct ucred cr;
  socklen_t cl = sizeof cr;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 ||
      cr.uid != owner) {
    close(fd);
    snprintf(err, errlen, "%s: the listening process is not uid %u",
             MCR__HS_SOCK, (unsigned)owner);
    return MCR_EPERM;
  }
  return fd;
}

/* Waits until fd is ready for `events` or deadline (mcr__now_ms) passes. */
static int wait_fd(int fd, short events, int64_t deadline) {
  for (;;) {
    int64_t left = deadline - mcr__now_ms();
    if (left <= 0)
      return MCR_ETIMEOUT;
    struct pollfd p = {.fd = fd, .events = events};
    int r = poll(&p, 1, (int)left);
    if (r > 0)
      return 0;
    if (r < 0 && errno != EINTR)
      return MCR_ESYS;
  }
}

/* Reads exactly len bytes by the deadline. Returns 0, MCR_ECLOSED (end of
 * stream first), MCR_ETIMEOUT or MCR_ESYS. */
static int read_full(int fd, void* buf, size_t len, int64_t deadline) {
  size_t got = 0;
  while (got < len) {
    ssize_t r = recv(fd, (char*)buf + got, len - got, MSG_DONTWAIT);
    if (r > 0) {
      got += (size_t)r;
      continue;
    }
    if (r == 0)
      return MCR_ECLOSED;
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return MCR_ESYS;
    int rc = wait_fd(fd, POLLIN, deadline);
    if (rc)
      return rc;
  }
  return 0;
}

/* Sends a message (with fd as SCM_RIGHTS when >= 0). */
static int send_msg(int sock, uint32_t kind, int fd) {
  mcr__hs_msg_t m = {.kind = kind};
  memcpy(m.magic, MCR__HS_WIRE_MAGIC, 8);
  return mcr__hs_send(sock, &m, sizeof m, fd) == (ssize_t)sizeof m ? 0
                                                                   : MCR_ESYS;
}

/* Reads a reply header by the deadline and checks its magic and kind; a
 * descriptor that comes with it (the host's health table) is *fd, or -1. */
static int read_msg_fd(int sock, uint32_t kind, mcr__hs_msg_t* m,
                       int64_t deadline, int* fd) {
  *fd = -1;
  size_t got = 0;
  int rc = 0;
  while (got < sizeof *m && !rc) {
    union {
      char buf[CMSG_SPACE(4 * sizeof(int))];
      struct cmsghdr align;
    } u;
    struct iovec iov = {.iov_base = (char*)m + got, .iov_len = sizeof *m - got};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = u.buf,
                        .msg_controllen = sizeof u.buf};
    ssize_t r = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (r > 0) {
      (void)mcr__hs_take_fds(&mh, fd);
      got += (size_t)r;
    } else if (r == 0) {
      rc = MCR_ECLOSED;
    } else if (errno != EINTR) {
      rc = errno == EAGAIN || errno == EWOULDBLOCK
               ? wait_fd(sock, POLLIN, deadline)
               : MCR_ESYS;
    }
  }
  if (!rc && (memcmp(m->magic, MCR__HS_WIRE_MAGIC, 8) != 0 || m->kind != kind))
    rc = MCR_EPROTO;
  if (rc && *fd >= 0) {
    close(*fd);
    *fd = -1;
  }
  return rc;
}

/* Maps the host's health table from the agent's descriptor (closed here),
 * or returns NULL when it is not one: a regular file of exactly
 * MCR__HH_BYTES that can neither shrink nor grow, so no process can make
 * an access to it fault. */
static uint64_t* health_map(int fd, int prot) {
  if (fd < 0)
    return NULL;
  struct stat st;
  int seals = fcntl(fd, F_GET_SEALS);
  void* m = MAP_FAILED;
  if (seals >= 0 &&
      (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) ==
          (F_SEAL_SHRINK | F_SEAL_GROW) &&
      fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
      (uint64_t)st.st_size == MCR__HH_BYTES)
    m = mmap(NULL, MCR__HH_BYTES, prot, MAP_SHARED, fd, 0);
  close(fd);
  return m == MAP_FAILED ? NULL : m;
}

/* ------------------------------------------------------------ the segment */

/* Forgets the registration and the segment (closing what this process
 * holds; a child's copies of its parent's are only closed, never used). */
static void seg_drop(mcr__hs_t* h) {
  if (h->sock >= 0)
    close(h->sock);
  if (h->memfd >= 0)
    close(h->memfd);
  if (h->map)
    munmap(h->map, h->map_len);
  if (h->health)
    munmap(h->health, MCR__HH_BYTES);
  h->sock = h->memfd = -1;
  h->map = NULL;
  h->health = NULL;
  h->used = h->ready = 0;
  h->full = false;
  mcr__free(h->hashes);
  mcr__free(h->index);
  mcr__free(h->free);
  h->hashes = NULL;
  h->index = NULL;
  h->free = NULL;
  h->index_mask = 0;
  h->nfree = 0;
}

/* Registers a new sealed segment with the agent. The agent is asked
 * first, so a ring directory without one costs a failed fstatat at most.
 * Returns 0 or a negative error (host stats are then off until the next
 * try). */
static int seg_register(mcr__hs_t* h) {
  char err[160];
  h->sock = agent_connect(h->dirfd, h->owner, err, sizeof err);
  if (h->sock < 0) {
    h->sock = -1;
    return MCR_ESYS;
  }
  h->cap = mcr__hs_capacity ? mcr__hs_capacity : MCR__HS_CAP;
  h->map_len = MCR__HS_HEAD + (size_t)h->cap * MCR__HS_ENTRY;
  h->ready = h->cap < FIRST_READY ? h->cap : FIRST_READY;
  h->memfd = memfd_create("mcring-stats", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (h->memfd < 0 || ftruncate(h->memfd, (off_t)h->map_len) != 0 ||
      fallocate(h->memfd, 0, 0,
                (off_t)(MCR__HS_HEAD + (size_t)h->ready * MCR__HS_ENTRY)) !=
          0 ||
      fcntl(h->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) !=
          0)
    goto fail;
  void* m =
      mmap(NULL, h->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, h->memfd, 0);
  if (m == MAP_FAILED)
    goto fail;
  h->map = m;
  mcr__hs_head_t* hd = head_of(h);
  memcpy(hd->magic, MCR__HS_MAGIC, 8);
  hd->header_size = MCR__HS_HEAD;
  hd->entry_size = MCR__HS_ENTRY;
  hd->capacity = h->cap;
  hd->pid = (uint32_t)getpid();
  mcr__hs_msg_t ack;
  int hfd = -1;
  if (send_msg(h->sock, MCR__HS_REGISTER, h->memfd) != 0 ||
      read_msg_fd(h->sock, MCR__HS_REGISTER, &ack,
                  mcr__now_ms() + h->timeout_ms, &hfd) != 0 ||
      ack.status != MCR__HS_OK) {
    if (hfd >= 0)
      close(hfd);
    goto fail;
  }
  /* Health shared across the host comes with the registration; without
   * it (an agent of mcring 0.2) each handle keeps its own. */
  h->health = health_map(hfd, PROT_READ | PROT_WRITE);
  return 0;
fail:
  seg_drop(h);
  return MCR_ESYS;
}

/* True when the agent closed the registration (it exited or restarted). */
static bool agent_gone(mcr__hs_t* h) {
  char b;
  ssize_t r = recv(h->sock, &b, 1, MSG_DONTWAIT | MSG_PEEK);
  return r == 0 ||
         (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Inserts entry e (hash in h->hashes[e]) into the index. */
static void index_put(mcr__hs_t* h, uint32_t e) {
  uint32_t i = (uint32_t)h->hashes[e] & h->index_mask;
  while (h->index[i] != EMPTY)
    i = (i + 1) & h->index_mask;
  h->index[i] = e;
}

/* Rebuilds the index for `want` entries at most half full. Returns 0 or
 * MCR_ENOMEM (the old index stays). */
static int index_rebuild(mcr__hs_t* h, uint32_t want) {
  size_t size = 64;
  while (size < 2 * (size_t)want)
    size *= 2;
  uint32_t* idx = mcr__malloc(size * sizeof *idx);
  uint64_t* hashes = mcr__realloc(h->hashes, size / 2 * sizeof *hashes);
  if (!idx || !hashes) {
    mcr__free(idx);
    if (hashes)
      h->hashes = hashes;
    return MCR_ENOMEM;
  }
  h->hashes = hashes;
  memset(idx, 0xff, size * sizeof *idx);
  mcr__free(h->index);
  h->index = idx;
  h->index_mask = (uint32_t)(size - 1);
  for (uint32_t e = 0; e < h->used; e++)
    if (entry_at(h, e)[0])
      index_put(h, e);
  return 0;
}

/* The entry number of node n's counters in our segment. */
static uint32_t entry_of(mcr__hs_t* h, const uint64_t* counters) {
  return (
      uint32_t)(((const char*)counters - MCR__HS_NAME - h->map - MCR__HS_HEAD) /
                MCR__HS_ENTRY);
}

/* Frees the entries of nodes no longer in c's ring (h->free). Returns
 * their number. */
static uint32_t recycle(mcr_client_t* c, mcr__hs_t* h) {
  uint8_t* live = mcr__calloc(h->used, 1);
  if (!h->free)
    h->free = mcr__malloc((size_t)h->cap * sizeof *h->free);
  if (!live || !h->free) {
    mcr__free(live);
    return 0;
  }
  for (size_t i = 0; i < c->nlive; i++)
    if (c->live[i]->hs)
      live[entry_of(h, c->live[i]->hs)] = 1;
  h->nfree = 0;
  for (uint32_t e = 0; e < h->used; e++) {
    if (live[e])
      continue;
    /* Its node left the ring: the entry becomes free (an empty name). A
     * reader that copies it meanwhile sees a torn row at worst. */
    ck_pr_store_char(entry_at(h, e), '\0');
    h->free[h->nfree++] = e;
  }
  mcr__free(live);
  if (h->nfree && index_rebuild(h, h->used) != 0)
    h->nfree = 0;
  return h->nfree;
}

/* A free entry: one freed by a recycle, a new one (its pages allocated
 * first), or one recycled now; EMPTY when there is none. */
static uint32_t new_entry(mcr_client_t* c, mcr__hs_t* h) {
  if (h->nfree)
    return h->free[--h->nfree];
  if (h->used < h->cap) {
    if (h->used == h->ready) {
      uint32_t more =
          h->ready < h->cap - h->ready ? h->ready : h->cap - h->ready;
      if (fallocate(h->memfd, 0,
                    (off_t)(MCR__HS_HEAD + (size_t)h->ready * MCR__HS_ENTRY),
                    (off_t)((size_t)more * MCR__HS_ENTRY)) != 0)
        return EMPTY; /* out of memory: count what we have */
      h->ready += more;
    }
    if (h->used + 1 > (h->index_mask + 1) / 2 &&
        index_rebuild(h, h->used + 1) != 0)
      return EMPTY;
    return h->used++;
  }
  return recycle(c, h) ? h->free[--h->nfree] : EMPTY;
}

/* The counters of node `name` in our segment, taking an entry when it has
 * none; NULL when no entry can be had. */
static uint64_t* entry_for(mcr_client_t* c, mcr__hs_t* h, const char* name) {
  size_t len = strnlen(name, MCR__HS_NAME - 1);
  uint64_t hash = XXH3_64bits(name, len);
  if (h->index) {
    for (uint32_t i = (uint32_t)hash & h->index_mask; h->index[i] != EMPTY;
         i = (i + 1) & h->index_mask) {
      uint32_t e = h->index[i];
      const char* ent = entry_at(h, e);
      if (h->hashes[e] == hash && memcmp(ent, name, len) == 0 && !ent[len])
        return (uint64_t*)(void*)(entry_at(h, e) + MCR__HS_NAME);
    }
  }
  if (h->full)
    return NULL;
  uint32_t was_used = h->used;
  uint32_t e = new_entry(c, h);
  if (e == EMPTY) {
    h->full = true;
    return NULL;
  }
  char* ent = entry_at(h, e);
  memset(ent + MCR__HS_NAME, 0, MCR__HS_ENTRY - MCR__HS_NAME);
  memset(ent, 0, MCR__HS_NAME);
  memcpy(ent, name, len);
  h->hashes[e] = hash;
  index_put(h, e);
  if (h->used != was_used) {
    /* Release: a reader that sees the new count sees the entry's name. */
    ck_pr_fence_store();
    ck_pr_store_32(&head_of(h)->used, h->used);
  }
  return (uint64_t*)(void*)(ent + MCR__HS_NAME);
}

/* ------------------------------------------------------------ workers */

/* Detaches c's nodes from the segment and the health table before they
 * are unmapped. */
static void unbind(mcr_client_t* c) {
  for (size_t i = 0; i < c->nlive; i++) {
    c->live[i]->hs = NULL;
    c->live[i]->hh = mcr__hh_none;
    c->live[i]->hh_seen = 0;
    c->live[i]->hh_probing = false;
  }
  c->health.table = NULL;
}

int mcr__hs_open(mcr_client_t* c, int dirfd, uid_t owner, uint64_t generation) {
  mcr__hs_t* h = mcr__calloc(1, sizeof(*h));
  if (!h)
    return MCR_ENOMEM;
  h->sock = h->memfd = -1;
  h->owner = owner;
  /* The agent answers a registration from one thread: on a loaded host
   * it may take longer than a connect, and a handle that gives up keeps
   * its health private until the next ring switch. */
  h->timeout_ms = c->opts.connect_timeout_ms > REGISTER_MS
                      ? c->opts.connect_timeout_ms
                      : REGISTER_MS;
  h->fork_gen = ck_pr_load_uint(&mcr__fork_gen);
  h->dirfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (h->dirfd < 0) {
    mcr__free(h);
    return 0; /* no host stats, the client works */
  }
  c->hs = h;
  /* Host stats are optional: no agent, a worker outside the agent's group
   * (no access to the socket), a full registry or no memory for the
   * segment leave this client's counters private instead of failing it. */
  (void)seg_register(h);
  mcr__hs_bind(c, generation);
  return 0;
}

void mcr__hs_bind(mcr_client_t* c, uint64_t generation) {
  mcr__hs_t* h = c->hs;
  h->generation = generation;
  if (h->map && agent_gone(h)) {
    /* The agent restarted: its successor knows nothing of us. */
    unbind(c);
    seg_drop(h);
  }
  if (!h->map && seg_register(h) != 0)
    return;        /* tried once per switch; the client goes on without */
  h->full = false; /* nodes may have left the ring: entries to recycle */
  c->health.table = h->health;
  /* Nodes kept across the switch are bound already: only those without
   * an entry (a new segment, or a full one then) are looked at again. */
  for (size_t i = 0; i < c->nlive; i++) {
    mcr__node_t* n = c->live[i];
    if (MCR__UNLIKELY(!n->hs || (h->health && n->hh == mcr__hh_none)))
      mcr__hs_bind_node(c, n);
  }
  ck_pr_store_64(&head_of(h)->generation, generation);
}

void mcr__hs_bind_node(mcr_client_t* c, mcr__node_t* n) {
  mcr__hs_t* h = c->hs;
  if (!h || !h->map)
    return;
  if (!n->hs)
    n->hs = entry_for(c, h, n->srv.name);
  if (h->health && n->hh == mcr__hh_none)
    mcr__node_bind_health(n, &c->health);
}

void mcr__hs_check_fork(mcr_client_t* c) {
  mcr__hs_t* h = c->hs;
  if (MCR__LIKELY(h->fork_gen == ck_pr_load_uint(&mcr__fork_gen)))
    return;
  /* The parent's segment and registration stay the parent's: our copies
   * are closed unused, and we register a segment of our own. */
  h->fork_gen = ck_pr_load_uint(&mcr__fork_gen);
  unbind(c);
  seg_drop(h);
  mcr__hs_bind(c, h->generation);
}

void mcr__hs_close(mcr_client_t* c) {
  mcr__hs_t* h = c->hs;
  if (!h)
    return;
  unbind(c);
  seg_drop(h);
  close(h->dirfd);
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

/* How long a read waits for the agent's answer. */
#define READ_TIMEOUT_MS 5000

struct mcr_hoststats {
  int dirfd;
  uid_t owner;
  mcr_hoststat_row_t* rows;
  size_t cap;
  uint64_t* health; /* the host's health table, read-only, or NULL */
  char err[256];
};

int mcr_hoststats_open(mcr_hoststats_t** out, const char* dir,
                       long expected_uid, char* err, size_t errlen) {
  char dummy[8];
  if (!err) {
    err = dummy;
    errlen = sizeof dummy;
  }
  if (!out || !dir)
    return MCR_EINVAL;
  *out = NULL;
  uid_t owner;
  int dfd = mcr__ringdir_open(dir, expected_uid, &owner, err, errlen);
  if (dfd < 0)
    return dfd;
  struct stat st;
  if (fstatat(dfd, MCR__HS_SOCK, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    snprintf(err, errlen,
             "%s/%s: %s (no agent running there, or one started with "
             "--stats-slots 0)",
             dir, MCR__HS_SOCK, strerror(errno));
    close(dfd);
    return MCR_ESNAPSHOT;
  }
  mcr_hoststats_t* h = mcr__calloc(1, sizeof(*h));
  if (!h) {
    close(dfd);
    return MCR_ENOMEM;
  }
  h->dirfd = dfd;
  h->owner = owner;
  *out = h;
  return 0;
}

static int read_fail(mcr_hoststats_t* h, int sock, int rc, const char* what) {
  if (sock >= 0)
    close(sock);
  snprintf(h->err, sizeof h->err, "%s: %s", what,
           rc == MCR_ETIMEOUT  ? "the agent did not answer in time"
           : rc == MCR_ECLOSED ? "the agent closed the connection early"
           : rc == MCR_EPROTO  ? "malformed answer"
                               : mcr_strerror(rc));
  return rc;
}

int mcr_hoststats_read(mcr_hoststats_t* h, const mcr_hoststat_row_t** rows,
                       size_t* nrows) {
  if (!h || !rows || !nrows)
    return MCR_EINVAL;
  *nrows = 0;
  h->err[0] = '\0';
  int sock = agent_connect(h->dirfd, h->owner, h->err, sizeof h->err);
  if (sock < 0)
    return sock;
  int64_t deadline = mcr__now_ms() + READ_TIMEOUT_MS;
  if (send_msg(sock, MCR__HS_READ, -1) != 0)
    return read_fail(h, sock, MCR_ESYS, "request");
  mcr__hs_msg_t m;
  int hfd;
  int rc = read_msg_fd(sock, MCR__HS_READ, &m, deadline, &hfd);
  if (rc)
    return read_fail(h, sock, rc, "answer");
  if (hfd >= 0) { /* the table of the agent answering now */
    if (h->health)
      munmap(h->health, MCR__HH_BYTES);
    h->health = health_map(hfd, PROT_READ);
  }
  /* Trust nothing: the count is clamped before anything is sized by it. */
  if ((m.status != MCR__HS_OK && m.status != MCR__HS_TRUNCATED) ||
      m.count > MCR__HS_ROWS_MAX)
    return read_fail(h, sock, MCR_EPROTO, "answer");
  size_t n = (size_t)m.count;
  if (n > h->cap) {
    mcr_hoststat_row_t* r = mcr__realloc(h->rows, n * sizeof(*r));
    if (!r)
      return read_fail(h, sock, MCR_ENOMEM, "rows");
    h->rows = r;
    h->cap = n;
  }
  for (size_t i = 0; i < n; i++) {
    mcr__hs_wire_row_t w;
    if ((rc = read_full(sock, &w, sizeof w, deadline)))
      return read_fail(h, sock, rc, "rows");
    mcr_hoststat_row_t* r = &h->rows[i];
    r->pid = (int)w.pid;
    r->slot = w.slot;
    r->generation = w.generation;
    memcpy(r->node, w.node, sizeof r->node);
    r->node[sizeof r->node - 1] = '\0';
    r->c = w.c;
  }
  close(sock);
  *rows = h->rows;
  *nrows = n;
  return 0;
}

int mcr_hoststats_health(mcr_hoststats_t* h, const mcr_ring_node_t* node,
                         mcr_node_health_t* out) {
  if (!h || !node || !out || !node->host || !node->address)
    return MCR_EINVAL;
  *out = (mcr_node_health_t){0};
  if (!h->health) {
    snprintf(h->err, sizeof h->err,
             "no health table: read first (mcr_hoststats_read), from an "
             "agent of mcring 0.3 or later");
    return MCR_ESNAPSHOT;
  }
  const uint64_t* e = mcr__hh_find(
      h->health, mcr__ring_node_ident(node->host, node->address, node->port),
      false);
  if (!e)
    return 0; /* never marked down since the agent started */
  /* Written by any process of the agent's group: shown, never trusted. */
  mcr__hh_state_t st;
  mcr__hh_decode(ck_pr_load_64(&e[1]), &st);
  int64_t now = mcr__now_ms();
  uint64_t since = ck_pr_load_64(&e[2]);
  out->marks = ck_pr_load_64(&e[3]);
  out->pid = st.pid;
  if (!st.down)
    return 0;
  out->down = 1;
  out->probing = st.probing;
  out->down_ms = since && (int64_t)since <= now ? now - (int64_t)since : 0;
  out->next_ms = st.deadline_ms > now ? st.deadline_ms - now : 0;
  return 0;
}

const char* mcr_hoststats_last_error(const mcr_hoststats_t* h) {
  return h ? h->err : "";
}

void mcr_hoststats_free(mcr_hoststats_t* h) {
  if (!h)
    return;
  close(h->dirfd);
  if (h->health)
    munmap(h->health, MCR__HH_BYTES);
  mcr__free(h->rows);
  mcr__free(h);
}
