/* publish.c — turns polled node lists into published ring generations.
 *
 * The snapshot writer (lib/snapshot_write.c) owns the ring directory's
 * files and the single-writer lock; this module decides when to use it.
 * A poll's node list is published only when it differs from the list this
 * process published last (node set, addresses, ports or weights) or the
 * ring mode changed — never merely because the source's configuration
 * version moved, and always when the list changed even if the version did
 * not (AWS replaces failed nodes in place without bumping it). A version
 * that goes backwards is logged once. The first good poll of a process
 * always publishes, which also picks up a changed --distribution after a
 * restart; the generation carries on from the control file.
 *
 * A published file is unlinked when the next one replaces it, and the
 * kernel frees its pages (tens of milliseconds at 65,535 nodes) in
 * whichever process drops the last reference: without help, the last
 * worker to switch away. So the agent opens the current file before it
 * publishes the next one and keeps that descriptor for AGENT_PUB_HOLD_MS
 * (until the first poll after that, at most one such file at a time):
 * workers that switch in that time only unmap, and the agent, closing
 * last, pays for the pages. A worker still on the old ring after that
 * (idle all along) pays as before. The cost is one more ring of memory
 * for about one poll interval.
 *
 * Beside the snapshot it keeps "status", a few "key value" lines (source,
 * last poll time, outcome, configuration version, generation) that
 * `mcring ring --ring-dir` shows. It is replaced atomically: written to a
 * temporary name created O_EXCL|O_NOFOLLOW relative to the directory fd,
 * then renamed over the old one, so a reader sees a whole file or the
 * previous one.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "ring.h"

#define STATUS_NAME "status"
/* How long a replaced ring file is kept open at least (see above). */
#define AGENT_PUB_HOLD_MS 2000
#define STATUS_TMP_PREFIX "status.tmp."

struct agent_pub {
  mcr__snapshot_writer_t* w;
  int dirfd;
  bool have_last; /* `last` was published by this process */
  mcr_distribution_t last_mode;
  mcr__nodes_t last;
  bool have_version; /* a version seen in an earlier good poll */
  uint64_t version;
  int held_fd;           /* a replaced ring file, kept open; -1: none */
  int64_t held_since_ms; /* CLOCK_MONOTONIC of its replacement */
};

/* Opens the file of the generation published now (-1 when there is none
 * or it cannot be opened: then nothing is held, which is only slower). */
static int open_current(agent_pub_t* p) {
  uint64_t g = mcr__snapshot_writer_generation(p->w);
  if (g == 0)
    return -1;
  char name[40];
  snprintf(name, sizeof(name), "ring.%" PRIu64, g);
  return openat(p->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
}

/* Closes the held file, if any: its pages are freed here when no worker
 * maps it any more. */
static void drop_held(agent_pub_t* p) {
  if (p->held_fd >= 0)
    close(p->held_fd);
  p->held_fd = -1;
}

/* mcr__ringdir_walk callback: removes a temporary status file a killed agent
 * left. */
static void remove_stale_status(int dirfd, const char* name, void* arg) {
  if (strncmp(name, STATUS_TMP_PREFIX, strlen(STATUS_TMP_PREFIX)) == 0)
    unlinkat(dirfd, name, 0);
}

/* mcr__ringdir_walk callback: gives an existing file the directory's group
 * (*arg). Failures are harmless: new files inherit the group through setgid. */
static void regroup_file(int dirfd, const char* name, void* arg) {
  /* (An if, not a cast to void: glibc's _FORTIFY_SOURCE marks fchownat
   * warn_unused_result, and a cast does not silence that.) */
  if (fchownat(dirfd, name, (uid_t)-1, *(gid_t*)arg, AT_SYMLINK_NOFOLLOW) != 0)
    return;
}

/* Gives the directory (and what is already in it) the workers' group and
 * the setgid bit, so files created later inherit the group. */
static int apply_group(int dirfd, const char* dir, const char* group, char* err,
                       size_t errlen) {
  struct group* gr = getgrnam(group);
  gid_t gid;
  if (gr) {
    gid = gr->gr_gid;
  } else {
    uint64_t g;
    if (mcr__parse_u64(group, strlen(group), UINT32_MAX - 1, &g) != 0) {
      snprintf(err, errlen, "unknown group \"%s\"", group);
      return MCR_EINVAL;
    }
    gid = (gid_t)g;
  }
  if (fchown(dirfd, (uid_t)-1, gid) != 0 || fchmod(dirfd, 02750) != 0) {
    snprintf(err, errlen, "set group %s on %s: %s", group, dir,
             strerror(errno));
    return MCR_EPERM;
  }
  return 0;
}

int agent_pub_open(agent_pub_t** out, const char* dir, const char* group,
                   char* err, size_t errlen) {
  *out = NULL;
  agent_pub_t* p = calloc(1, sizeof(*p));
  if (!p)
    return MCR_ENOMEM;
  p->dirfd = -1;
  p->held_fd = -1;
  /* The writer makes the directory (0750), refuses a symlink, one that is
   * world-writable or someone else's, and takes the lock. */
  int rc = mcr__snapshot_writer_open(&p->w, dir, err, errlen);
  if (!rc && (p->dirfd = fcntl(mcr__snapshot_writer_dirfd(p->w),
                               F_DUPFD_CLOEXEC, 0)) < 0) {
    snprintf(err, errlen, "%s: %s", dir, strerror(errno));
    rc = MCR_ESYS;
  }
  /* The group is changed only once the lock is ours. */
  if (!rc && group && *group) {
    rc = apply_group(p->dirfd, dir, group, err, errlen);
    struct stat gst;
    if (!rc && fstat(p->dirfd, &gst) == 0)
      mcr__ringdir_walk(p->dirfd, regroup_file, &gst.st_gid);
  }
  if (!rc)
    mcr__ringdir_walk(p->dirfd, remove_stale_status, NULL);
  if (rc) {
    agent_pub_close(p);
    return rc;
  }
  *out = p;
  return 0;
}

int agent_pub_apply(agent_pub_t* p, mcr_distribution_t mode,
                    const mcr__nodes_t* nodes, bool* published, uint64_t* gen,
                    char* err, size_t errlen) {
  *published = false;
  bool same =
      p->have_last && p->last_mode == mode && mcr__nodes_equal(&p->last, nodes);
  if (nodes->has_version && p->have_version) {
    if (nodes->version < p->version)
      agent_log(AGENT_LOG_WARNING,
                "configuration version went backwards: %" PRIu64
                " after %" PRIu64,
                nodes->version, p->version);
    else if (!same && p->have_last && nodes->version == p->version)
      agent_log(AGENT_LOG_WARNING,
                "node list changed but configuration version %" PRIu64
                " did not (node replaced in place?): applying it",
                nodes->version);
  }
  if (nodes->has_version) {
    p->have_version = true;
    p->version = nodes->version;
  }
  if (same) {
    *gen = mcr__snapshot_writer_generation(p->w);
    return 0;
  }
  mcr__ring_node_in_t* in = calloc(nodes->n ? nodes->n : 1, sizeof(*in));
  if (!in)
    return MCR_ENOMEM;
  for (size_t i = 0; i < nodes->n; i++) {
    in[i].host = nodes->v[i].host;
    in[i].address = nodes->v[i].addr[0] ? nodes->v[i].addr : NULL;
    in[i].port = nodes->v[i].port;
    in[i].weight = nodes->v[i].weight;
    in[i].state = MCR__NODE_UP;
  }
  uint64_t g = 0;
  bool wraps = mcr__snapshot_writer_generation(p->w) == UINT64_MAX;
  /* The file held since the last publication goes first: once the new
   * generation is visible, at most the file it replaces is held. */
  drop_held(p);
  int prev = open_current(p);
  int rc = mcr__snapshot_writer_publish_nodes(p->w, mode, in, nodes->n, &g);
  free(in);
  if (rc) {
    if (prev >= 0)
      close(prev); /* still the current file */
  } else {
    p->held_fd = prev;
    p->held_since_ms = mcr__now_ms();
  }
  if (!rc && wraps)
    agent_log(AGENT_LOG_WARNING,
              "generation numbering starts again at 1 after 2^64 - 1 (a "
              "damaged control file?): workers follow any change");
  if (rc) {
    snprintf(err, errlen, "publish: %s", mcr__snapshot_writer_error(p->w));
    return rc;
  }
  rc = mcr__nodes_copy(&p->last, nodes);
  p->have_last = rc == 0;
  p->last_mode = mode;
  *published = true;
  *gen = g;
  return 0;
}

void agent_pub_release(agent_pub_t* p, int64_t now_ms) {
  if (p->held_fd >= 0 && now_ms - p->held_since_ms >= AGENT_PUB_HOLD_MS)
    drop_held(p);
}

uint64_t agent_pub_generation(const agent_pub_t* p) {
  return mcr__snapshot_writer_generation(p->w);
}

/* Formats a CLOCK_REALTIME millisecond time as ISO 8601 UTC. */
static void iso_time(int64_t ms, char* out, size_t cap) {
  time_t s = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&s, &tm);
  char b[32];
  strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, cap, "%s.%03dZ", b, (int)(ms % 1000));
}

int agent_pub_status(agent_pub_t* p, const agent_status_t* st, char* err,
                     size_t errlen) {
  char text[2048], when[40], ok_when[40] = "never";
  iso_time(st->poll_time_ms, when, sizeof(when));
  if (st->last_ok_ms)
    iso_time(st->last_ok_ms, ok_when, sizeof(ok_when));
  char version[24] = "none";
  if (st->has_version)
    snprintf(version, sizeof(version), "%" PRIu64, st->version);
  /* The message is one line: replace any control byte. */
  char msg[512];
  snprintf(msg, sizeof(msg), "%s", st->message ? st->message : "");
  for (char* c = msg; *c; c++)
    if ((unsigned char)*c < 0x20)
      *c = ' ';
  int n = snprintf(text, sizeof(text),
                   "pid %ld\n"
                   "source %s\n"
                   "last_poll %s\n"
                   "last_poll_ms %" PRId64
                   "\n"
                   "outcome %s%s%s%s\n"
                   "last_ok %s\n"
                   "failures %u\n"
                   "config_version %s\n"
                   "generation %" PRIu64
                   "\n"
                   "nodes %zu\n",
                   (long)getpid(), st->source, when, st->poll_time_ms,
                   st->rc ? "error " : "ok", st->rc ? mcr_err_name(st->rc) : "",
                   st->rc ? ": " : "", st->rc ? msg : "", ok_when, st->failures,
                   version, agent_pub_generation(p), st->nodes);
  if (n < 0 || (size_t)n >= sizeof(text))
    n = (int)strlen(text);
  char tmp[48];
  snprintf(tmp, sizeof(tmp), STATUS_TMP_PREFIX "%ld", (long)getpid());
  unlinkat(p->dirfd, tmp, 0);
  int fd = openat(p->dirfd, tmp,
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
  if (fd < 0) {
    snprintf(err, errlen, "create %s: %s", tmp, strerror(errno));
    return MCR_ESYS;
  }
  int rc = 0;
  if (fchmod(fd, 0640) != 0 || write(fd, text, (size_t)n) != (ssize_t)n) {
    snprintf(err, errlen, "write %s: %s", tmp, strerror(errno));
    rc = MCR_ESYS;
  }
  close(fd);
  if (!rc && renameat(p->dirfd, tmp, p->dirfd, STATUS_NAME) != 0) {
    snprintf(err, errlen, "rename %s: %s", tmp, strerror(errno));
    rc = MCR_ESYS;
  }
  if (rc)
    unlinkat(p->dirfd, tmp, 0);
  return rc;
}

void agent_pub_close(agent_pub_t* p) {
  if (!p)
    return;
  drop_held(p);
  mcr__snapshot_writer_close(p->w);
  if (p->dirfd >= 0)
    close(p->dirfd);
  mcr__nodes_free(&p->last);
  free(p);
}
