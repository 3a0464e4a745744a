/* hoststats_server.c — the agent's half of host stats: a registry of the
 * workers' segments behind a unix socket in the ring directory.
 *
 * mcring-agent runs it in a thread of its own (mcr_hoststats_serve). It
 * listens on DIR/stats.sock (mode 0660, the directory's group: the
 * workers' group) and takes two kinds of connection (hoststats.h):
 *
 *  - a worker's registration: one message with its segment's memfd. The
 *    fd is accepted only when it is a regular file sealed against
 *    shrinking and growing, of exactly the size its header's capacity
 *    calls for. The connection then stays open and idle; it is the
 *    registration's life: end of stream (the handle was freed or the
 *    process died), any byte at all, or the registering process gone
 *    (its pid no longer has the start time it had, checked at each read
 *    and before a registration is refused for want of a slot) ends it.
 *  - a reader's request: the answer is a copy of what every live segment
 *    holds, one row per (worker, node), built with pread (a segment is
 *    never mapped here, so no content and no size game can fault or steer
 *    the agent: holes read as zeros and cost nothing, every count is
 *    clamped to the size), queued and sent as the socket takes it.
 *
 * Everything a group member could abuse is bounded: registrations
 * (max_workers), connections that have not yet said what they are (64, a
 * second each), readers (8 at a time, 10 s each, ~80 MiB per answer at
 * most). A worker that misbehaves loses its registration; nothing it does
 * reaches another worker. One epoll loop in one thread, woken by an
 * eventfd to stop; no locks.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "hoststats.h"

#define PENDING_MAX 64
#define PENDING_MS 1000
#define READERS_MAX 8
#define READER_MS 10000
#define ENTRY_BATCH 256

/* C_CLOSED: closed, its memory kept until the end of the epoll batch
 * (serve), which may still hold an event for it. */
enum { C_PENDING, C_WORKER, C_READER, C_CLOSED };

typedef struct hconn {
  int fd;
  int kind; /* C_* */
  int64_t deadline;
  /* C_WORKER */
  int seg;          /* the segment's memfd */
  uint32_t cap;     /* its capacity (from its size) */
  uint32_t slot;    /* registration number */
  pid_t pid;        /* the process that registered it */
  uint64_t started; /* its start time (/proc/PID/stat field 22) */
  /* C_READER: the answer being sent */
  char* out;
  size_t outlen, outpos, rows, cap_rows;
  struct hconn *prev, *next; /* the list of its kind */
} hconn_t;

struct mcr_hoststats_server {
  int dirfd, lfd, epfd, wakefd;
  int health; /* the host's health table (health.c): a sealed memfd */
  unsigned max_workers;
  hconn_t* lists[3]; /* by kind */
  unsigned counts[3];
  hconn_t* closed; /* C_CLOSED, chained by next: freed after each batch */
  uint32_t next_slot;
  pthread_t thread;
  bool started;
};

/* ------------------------------------------------------------ helpers */

/* Start time of pid in clock ticks since boot, or 0 when it is gone. */
static uint64_t proc_start(pid_t pid) {
  char path[40], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  /* The command name (field 2) may hold spaces and parentheses: count
   * fields from the last ')'. Field 22 is the 20th after it. */
  char* p = strrchr(buf, ')');
  for (int field = 2; p && field < 22; field++)
    p = strchr(p + 1, ' ');
  if (!p)
    return 0;
  uint64_t v = 0;
  for (p++; *p >= '0' && *p <= '9'; p++)
    v = v * 10 + (uint64_t)(*p - '0');
  return v;
}

static int64_t now_ms(void) {
  return mcr__now_ms();
}

static void list_add(mcr_hoststats_server_t* s, hconn_t* c, int kind) {
  c->kind = kind;
  c->prev = NULL;
  c->next = s->lists[kind];
  if (c->next)
    c->next->prev = c;
  s->lists[kind] = c;
  s->counts[kind]++;
}

static void list_del(mcr_hoststats_server_t* s, hconn_t* c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    s->lists[c->kind] = c->next;
  if (c->next)
    c->next->prev = c->prev;
  s->counts[c->kind]--;
}

static void list_move(mcr_hoststats_server_t* s, hconn_t* c, int kind) {
  list_del(s, c);
  list_add(s, c, kind);
}

/* Closes c's descriptors at once; its memory goes when the current epoll
 * batch is done (free_closed): handling one event may close another
 * connection (a reader's answer drops dead workers) whose own event is
 * still to come in the same batch. */
static void conn_close(mcr_hoststats_server_t* s, hconn_t* c) {
  list_del(s, c);
  epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  if (c->kind == C_WORKER)
    close(c->seg);
  mcr__free(c->out);
  c->out = NULL;
  c->kind = C_CLOSED;
  c->next = s->closed;
  s->closed = c;
}

static void free_closed(mcr_hoststats_server_t* s) {
  while (s->closed) {
    hconn_t* c = s->closed;
    s->closed = c->next;
    mcr__free(c);
  }
}

ssize_t mcr__hs_send(int fd, const void* buf, size_t len, int pass) {
  struct iovec iov = {.iov_base = (void*)buf, .iov_len = len};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
  if (pass >= 0) {
    memset(&u, 0, sizeof u);
    mh.msg_control = u.buf;
    mh.msg_controllen = sizeof u.buf;
    struct cmsghdr* cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &pass, sizeof pass);
  }
  ssize_t w;
  do {
    w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (w < 0 && errno == EINTR);
  return w;
}

int mcr__hs_take_fds(struct msghdr* mh, int* fd) {
  int extra = 0;
  for (struct cmsghdr* cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
      continue;
    size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < nfd; i++) {
      int f;
      memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof f);
      if (*fd < 0) {
        *fd = f;
      } else {
        close(f);
        extra++;
      }
    }
  }
  return extra;
}

/* Queues a message for c (a reply to a registration is one message, with
 * the health table when it is a welcome). */
static void send_reply(mcr_hoststats_server_t* s, hconn_t* c, uint32_t kind,
                       uint32_t status, uint64_t count) {
  mcr__hs_msg_t m = {.kind = kind, .status = status, .count = count};
  memcpy(m.magic, MCR__HS_WIRE_MAGIC, 8);
  (void)mcr__hs_send(c->fd, &m, sizeof m,
                     status == MCR__HS_OK ? s->health : -1);
  /* A reply that does not fit an empty socket buffer whole means the peer
   * is not a worker: it is closed by the caller on the next event. */
}

/* ------------------------------------------------------------ workers */

/* Checks a segment fd: a regular file with both size seals, and a size
 * that is exactly a header plus a whole number of entries. Returns its
 * capacity, or 0. */
static uint32_t segment_ok(int fd) {
  struct stat st;
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0 ||
      (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
    return 0;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      st.st_size < (off_t)(MCR__HS_HEAD + MCR__HS_ENTRY))
    return 0;
  uint64_t body = (uint64_t)st.st_size - MCR__HS_HEAD;
  if (body % MCR__HS_ENTRY || body / MCR__HS_ENTRY > MCR__HS_CAP)
    return 0;
  return (uint32_t)(body / MCR__HS_ENTRY);
}

/* ------------------------------------------------------------ readers */

/* Appends one row to a reader's answer. Returns false when the answer is
 * full (MCR__HS_ROWS_MAX, or no memory for more). */
static bool add_row(hconn_t* r, const mcr__hs_wire_row_t* row) {
  if (r->rows == MCR__HS_ROWS_MAX)
    return false;
  if (r->rows == r->cap_rows) {
    size_t nc = r->cap_rows ? r->cap_rows * 2 : 256;
    char* o = mcr__realloc(r->out, sizeof(mcr__hs_msg_t) + nc * sizeof *row);
    if (!o)
      return false;
    r->out = o;
    r->cap_rows = nc;
  }
  memcpy(r->out + sizeof(mcr__hs_msg_t) + r->rows * sizeof *row, row,
         sizeof *row);
  r->rows++;
  return true;
}

/* True while worker w's registration stands: its connection is open and
 * has said nothing (end of stream or a byte ends it, even before the loop
 * has seen the event), and the process that registered it still runs (the
 * same start time under its pid: a forked child may hold the socket open
 * long after the worker died, and its pid may have gone to another
 * process). */
static bool worker_live(hconn_t* w) {
  char b;
  ssize_t r = recv(w->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  if (r >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
    return false;
  return proc_start(w->pid) == w->started;
}

/* Closes every registration whose worker is gone (worker_live). */
static void prune_workers(mcr_hoststats_server_t* s) {
  for (hconn_t *w = s->lists[C_WORKER], *next; w; w = next) {
    next = w->next;
    if (!worker_live(w))
      conn_close(s, w);
  }
}

/* Appends the rows of worker w to reader r's answer: one per entry in
 * use, or one without a node when it has counted nothing yet. Returns
 * false when w's worker is gone (worker_live); sets *truncated when rows
 * had to be left out. */
static bool add_rows(hconn_t* r, hconn_t* w, bool* truncated) {
  if (!worker_live(w))
    return false;
  mcr__hs_head_t hd;
  if (pread(w->seg, &hd, sizeof hd, 0) != (ssize_t)sizeof hd)
    return false;
  /* Everything in the segment is the worker's word: clamp it. */
  uint32_t used = hd.used < w->cap ? hd.used : w->cap;
  mcr__hs_wire_row_t row = {
      .pid = (uint32_t)w->pid, .slot = w->slot, .generation = hd.generation};
  size_t before = r->rows;
  static char batch[ENTRY_BATCH * MCR__HS_ENTRY]; /* the loop's thread only */
  for (uint32_t e = 0; e < used && !*truncated; e += ENTRY_BATCH) {
    uint32_t n = used - e < ENTRY_BATCH ? used - e : ENTRY_BATCH;
    ssize_t got = pread(w->seg, batch, (size_t)n * MCR__HS_ENTRY,
                        (off_t)(MCR__HS_HEAD + (size_t)e * MCR__HS_ENTRY));
    n = got > 0 ? (uint32_t)((size_t)got / MCR__HS_ENTRY) : 0;
    for (uint32_t i = 0; i < n && !*truncated; i++) {
      const char* ent = batch + (size_t)i * MCR__HS_ENTRY;
      if (!ent[0])
        continue;                                 /* a free entry */
      memcpy(row.node, ent, sizeof row.node - 1); /* the last byte stays 0 */
      memcpy(&row.c, ent + MCR__HS_NAME, sizeof row.c);
      *truncated = !add_row(r, &row);
    }
    if (n < ENTRY_BATCH)
      break;
  }
  if (r->rows == before && !*truncated) {
    memset(row.node, 0, sizeof row.node);
    memset(&row.c, 0, sizeof row.c);
    *truncated = !add_row(r, &row);
  }
  return true;
}

/* Builds a reader's answer from every live segment and starts sending it. */
static void answer(mcr_hoststats_server_t* s, hconn_t* c) {
  if (s->counts[C_READER] >= READERS_MAX) {
    conn_close(s, c);
    return;
  }
  bool truncated = false;
  if (!(c->out = mcr__malloc(sizeof(mcr__hs_msg_t)))) {
    conn_close(s, c);
    return;
  }
  for (hconn_t *w = s->lists[C_WORKER], *next; w; w = next) {
    next = w->next;
    if (!add_rows(c, w, &truncated))
      conn_close(s, w); /* gone, or its segment unreadable */
  }
  mcr__hs_msg_t m = {.kind = MCR__HS_READ,
                     .status = truncated ? MCR__HS_TRUNCATED : MCR__HS_OK,
                     .count = c->rows};
  memcpy(m.magic, MCR__HS_WIRE_MAGIC, 8);
  memcpy(c->out, &m, sizeof m);
  c->outlen = sizeof m + c->rows * sizeof(mcr__hs_wire_row_t);
  c->deadline = now_ms() + READER_MS;
  list_move(s, c, C_READER);
  struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
  epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void on_reader(mcr_hoststats_server_t* s, hconn_t* c) {
  while (c->outpos < c->outlen) {
    /* The health table rides with the answer's first bytes. */
    ssize_t w = mcr__hs_send(c->fd, c->out + c->outpos, c->outlen - c->outpos,
                             c->outpos == 0 ? s->health : -1);
    if (w > 0) {
      c->outpos += (size_t)w;
      continue;
    }
    if (w < 0 && (errno == EAGAIN || errno == EINTR))
      return;
    break;
  }
  conn_close(s, c); /* done, or the reader went away */
}

/* ------------------------------------------------------------ pending */

/* A registration: takes the segment fd when it is sound and a slot is
 * free, and answers either way. When every slot is taken, the
 * registrations of workers that are gone are dropped first: a worker that
 * died while a forked child holds its socket shows no event to the loop,
 * and would otherwise keep its slot until a reader came by. (That costs a
 * look at /proc per registered worker, only while the registry is full.) */
static void do_register(mcr_hoststats_server_t* s, hconn_t* c, int segfd) {
  uint32_t cap = segment_ok(segfd);
  struct ucred cr;
  socklen_t cl = sizeof cr;
  uint32_t status = MCR__HS_OK;
  if (!cap || getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 ||
      !(c->started = proc_start(cr.pid)))
    status = MCR__HS_BADSEG;
  if (status == MCR__HS_OK && s->counts[C_WORKER] >= s->max_workers)
    prune_workers(s);
  if (status == MCR__HS_OK && s->counts[C_WORKER] >= s->max_workers)
    status = MCR__HS_FULL;
  send_reply(s, c, MCR__HS_REGISTER, status, 0);
  if (status != MCR__HS_OK) {
    close(segfd);
    conn_close(s, c);
    return;
  }
  c->seg = segfd;
  c->cap = cap;
  c->pid = cr.pid;
  c->slot = s->next_slot++;
  list_move(s, c, C_WORKER);
}

/* A pending connection is readable: its first message must arrive whole
 * in one piece (as the library sends it), with exactly one fd for a
 * registration and none for a read. Anything else closes it. */
static void on_pending(mcr_hoststats_server_t* s, hconn_t* c) {
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  mcr__hs_msg_t m;
  struct iovec iov = {.iov_base = &m, .iov_len = sizeof m};
  struct msghdr mh = {.msg_iov = &iov,
                      .msg_iovlen = 1,
                      .msg_control = u.buf,
                      .msg_controllen = sizeof u.buf};
  ssize_t r = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (r < 0 && (errno == EAGAIN || errno == EINTR))
    return;
  int segfd = -1;
  int extra = r > 0 ? mcr__hs_take_fds(&mh, &segfd) : 0;
  bool ok = r == (ssize_t)sizeof m && !extra && !(mh.msg_flags & MSG_CTRUNC) &&
            memcmp(m.magic, MCR__HS_WIRE_MAGIC, 8) == 0 &&
            ((m.kind == MCR__HS_REGISTER && segfd >= 0) ||
             (m.kind == MCR__HS_READ && segfd < 0));
  if (!ok) {
    if (segfd >= 0)
      close(segfd);
    conn_close(s, c);
  } else if (m.kind == MCR__HS_READ) {
    answer(s, c);
  } else {
    do_register(s, c, segfd);
  }
}

/* ------------------------------------------------------------ the loop */

static void on_accept(mcr_hoststats_server_t* s) {
  for (;;) {
    int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      return;
    hconn_t* c = NULL;
    if (s->counts[C_PENDING] < PENDING_MAX)
      c = mcr__calloc(1, sizeof(*c));
    if (!c) {
      close(fd);
      continue;
    }
    c->fd = fd;
    c->seg = -1;
    c->deadline = now_ms() + PENDING_MS;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      close(fd);
      mcr__free(c);
      continue;
    }
    list_add(s, c, C_PENDING);
  }
}

/* Closes pending connections and readers past their deadline; returns
 * the time to the next deadline (-1: none). */
static int expire(mcr_hoststats_server_t* s) {
  int64_t now = now_ms(), next = INT64_MAX;
  static const int kinds[] = {C_PENDING, C_READER};
  for (int k = 0; k < 2; k++) {
    for (hconn_t *c = s->lists[kinds[k]], *nx; c; c = nx) {
      nx = c->next;
      if (c->deadline <= now)
        conn_close(s, c);
      else if (c->deadline < next)
        next = c->deadline;
    }
  }
  return next == INT64_MAX ? -1 : (int)(next - now);
}

static void* serve(void* arg) {
  mcr_hoststats_server_t* s = arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are the agent's */
  for (;;) {
    struct epoll_event ev[64];
    int n = epoll_wait(s->epfd, ev, 64, expire(s));
    for (int i = 0; i < n; i++) {
      void* p = ev[i].data.ptr;
      if (p == &s->wakefd)
        return NULL;
      if (p == &s->lfd) {
        on_accept(s);
        continue;
      }
      hconn_t* c = p;
      if (c->kind == C_PENDING)
        on_pending(s, c);
      else if (c->kind == C_READER)
        on_reader(s, c);
      else if (c->kind == C_WORKER)
        conn_close(s, c); /* a worker closed, or sent what it must not */
      /* else closed earlier in this batch: nothing to do */
    }
    free_closed(s);
  }
}

/* ------------------------------------------------------------ health */

/* Makes the host's health table (health.c): a memfd of MCR__HH_BYTES,
 * allocated now (so no access to it can fault for want of memory later)
 * and sealed against shrinking, growing and further seals. Every worker
 * that registers gets it, read-write; readers get it too. Returns the fd
 * or -1 (errno set). */
static int health_table(void) {
  int fd = memfd_create("mcring-health", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0)
    return -1;
  if (ftruncate(fd, (off_t)MCR__HH_BYTES) != 0 ||
      fallocate(fd, 0, 0, (off_t)MCR__HH_BYTES) != 0 ||
      fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

/* ------------------------------------------------------------ public */

int mcr_hoststats_serve(mcr_hoststats_server_t** out, const char* dir,
                        unsigned max_workers, char* err, size_t errlen) {
  char dummy[8];
  if (!err) {
    err = dummy;
    errlen = sizeof dummy;
  }
  if (!out || !dir || max_workers == 0 || max_workers > 65536) {
    snprintf(err, errlen, "max_workers must be 1..65536");
    return MCR_EINVAL;
  }
  *out = NULL;
  mcr_hoststats_server_t* s = mcr__calloc(1, sizeof(*s));
  if (!s)
    return MCR_ENOMEM;
  s->lfd = s->epfd = s->wakefd = s->health = -1;
  s->max_workers = max_workers;
  s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  int rc = 0;
  const char* what = "open";
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (s->dirfd >= 0) {
    snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/%s", s->dirfd,
             MCR__HS_SOCK);
    /* A socket left by an earlier agent (or anything by that name). */
    unlinkat(s->dirfd, MCR__HS_SOCK, 0);
    what = "socket";
    s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  }
  struct stat dst;
  if (s->dirfd < 0 || s->lfd < 0 || (what = "bind", 0) ||
      bind(s->lfd, (struct sockaddr*)&sa, sizeof sa) != 0 ||
      (what = "chmod", 0) || fstat(s->dirfd, &dst) != 0 ||
      fchownat(s->dirfd, MCR__HS_SOCK, (uid_t)-1, dst.st_gid,
               AT_SYMLINK_NOFOLLOW) != 0 ||
      fchmodat(s->dirfd, MCR__HS_SOCK, 0660, 0) != 0 || (what = "listen", 0) ||
      listen(s->lfd, 1024) != 0 || (what = "epoll", 0) ||
      (s->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
      (s->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
      (what = "health table", 0) || (s->health = health_table()) < 0) {
    snprintf(err, errlen, "%s/%s: %s: %s", dir, MCR__HS_SOCK, what,
             strerror(errno));
    rc = MCR_ESYS;
  }
  if (!rc) {
    struct epoll_event el = {.events = EPOLLIN, .data.ptr = &s->lfd};
    struct epoll_event ew = {.events = EPOLLIN, .data.ptr = &s->wakefd};
    /* Each registration holds two descriptors (socket and segment). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = rl.rlim_max;
      setrlimit(RLIMIT_NOFILE, &rl);
    }
    int e;
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &el) != 0 ||
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wakefd, &ew) != 0 ||
        (e = pthread_create(&s->thread, NULL, serve, s)) != 0) {
      snprintf(err, errlen, "%s/%s: cannot start: %s", dir, MCR__HS_SOCK,
               strerror(errno));
      rc = MCR_ESYS;
    } else {
      s->started = true;
    }
  }
  if (rc) {
    mcr_hoststats_server_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

void mcr_hoststats_server_free(mcr_hoststats_server_t* s) {
  if (!s)
    return;
  if (s->started) {
    uint64_t one = 1;
    if (write(s->wakefd, &one, sizeof one) != sizeof one) {
    }
    pthread_join(s->thread, NULL);
  }
  for (int k = 0; k < 3; k++)
    while (s->lists[k])
      conn_close(s, s->lists[k]);
  free_closed(s);
  if (s->lfd >= 0) {
    close(s->lfd);
    unlinkat(s->dirfd, MCR__HS_SOCK, 0);
  }
  if (s->epfd >= 0)
    close(s->epfd);
  if (s->wakefd >= 0)
    close(s->wakefd);
  if (s->health >= 0)
    close(s->health);
  if (s->dirfd >= 0)
    close(s->dirfd);
  mcr__free(s);
}
