/* test_security.c — the shared-memory permission model, proved.
 *
 * DESIGN.md's security model: the ring directory is private (0750, group =
 * the workers' group), ring files are 0640, workers open them read-only
 * and map them PROT_READ, refuse files not owned by the expected user or
 * writable by group/other, and nobody follows a symlink. Each test here
 * attacks one of those promises from the side of a worker or of a local
 * user who can plant files:
 *   - a worker cannot write the mapping (mprotect PROT_WRITE, write(),
 *     reopening read-write, a shared writable mmap: all refused);
 *   - a worker of another uid in the group reads the ring; a user outside
 *     the group cannot even open the directory;
 *   - symlinks planted in the ring directory, in place of ctl, status,
 *     ring.<N> or the directory itself, are never followed by the agent or
 *     the reader, and their targets stay untouched;
 *   - the agent runs as an unprivileged user (nobody) with --group, and
 *     the systemd unit keeps its hardening.
 * Refusal of foreign-owned and group/other-writable ring files is tested in
 * test_snapshot.c (hostile_permissions_owner_symlink,
 * expected_owner_is_configurable); the agent's refusal of a world-writable
 * ring directory in test_agent.c (world_writable_ring_dir_refused). Tests
 * that switch uids need root and say SKIP otherwise (CI runs as root).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chaos.h" /* agent spawning and waiting helpers */
#include "hoststats.h"
#include "ring.h"
#include "support.h"

#define NOBODY 65534u      /* the agent's unprivileged user */
#define WORKERS_GID 4301u  /* the workers' group (numeric: no /etc edit) */
#define WORKER_UID 4302u   /* a worker in that group */
#define OUTSIDER_UID 4303u /* a local user outside it */
#define OUTSIDER_GID 4304u
#define ATTACKER_UID 4305u /* another worker in the group, hostile */

/* ---------------------------------------------------------------- helpers */

typedef struct {
  char top[64];   /* mkdtemp, 0755 so other uids can traverse */
  char ring[128]; /* the ring directory inside it */
  char log[96];
} senv_t;

static void senv_init(senv_t* e) {
  snprintf(e->top, sizeof(e->top), "/tmp/mcr-sec-XXXXXX");
  cr_assert(mkdtemp(e->top), "mkdtemp: %s", strerror(errno));
  cr_assert_eq(chmod(e->top, 0755), 0);
  snprintf(e->ring, sizeof(e->ring), "%s/ring", e->top);
  snprintf(e->log, sizeof(e->log), "%s/agent.log", e->top);
}

static void senv_fini(senv_t* e) {
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->top);
  if (system(cmd) != 0) { /* leftovers in /tmp are harmless */
  }
}

static void need_root(void) {
  if (geteuid() != 0)
    skip_or_fail("needs root to switch uids");
}

/* Publishes one ring into e->ring with the library's writer (as the agent
 * does) and returns the writer, still holding the directory. */
static mcr__snapshot_writer_t* publish_one(senv_t* e) {
  mcr__snapshot_writer_t* w;
  char err[256] = "";
  cr_assert_eq(mcr__snapshot_writer_open(&w, e->ring, err, sizeof(err)), 0,
               "%s", err);
  mcr__ring_node_in_t in[2] = {{"10.0.0.1", NULL, 11211, 1, MCR__NODE_UP},
                               {"10.0.0.2", NULL, 11211, 1, MCR__NODE_UP}};
  uint64_t gen;
  cr_assert_eq(
      mcr__snapshot_writer_publish_nodes(w, MCR_DIST_KETAMA, in, 2, &gen), 0,
      "%s", mcr__snapshot_writer_error(w));
  return w;
}

/* Runs the agent with args (NULL-terminated), optionally as uid/gid with
 * the supplementary group `sgid` (uid (uid_t)-1: as ourselves); stderr goes
 * to e->log. Returns its exit status (-1: killed or timed out). */
static int run_agent(senv_t* e, uid_t uid, gid_t gid, gid_t sgid,
                     const char* const* args) {
  spawn_opts_t o = {.err = e->log,
                    .err_append = true,
                    .as_user = uid != (uid_t)-1,
                    .uid = uid,
                    .gid = gid,
                    .sgid = sgid};
  return wait_exit(agent_spawn(&o, args, NULL), 10000);
}

#define AGENT(e, ...) \
  run_agent((e), (uid_t)-1, 0, 0, (const char* const[]){__VA_ARGS__, NULL})

/* A victim file outside the ring directory, and a check it is untouched. */
static void victim_make(const char* path) {
  FILE* f = fopen(path, "w");
  cr_assert(f);
  fputs("precious\n", f);
  fclose(f);
  cr_assert_eq(chmod(path, 0600), 0);
}

static void victim_expect_intact(const char* path) {
  struct stat st;
  cr_assert_eq(lstat(path, &st), 0, "victim %s gone", path);
  cr_expect(S_ISREG(st.st_mode));
  cr_expect_eq(st.st_mode & 07777, 0600, "victim mode changed to %o",
               st.st_mode & 07777);
  cr_expect_eq(st.st_uid, geteuid(), "victim owner changed");
  cr_expect_eq(st.st_gid, getegid(), "victim group changed");
  cr_expect_str_eq(deploy_slurp(path), "precious\n", "victim content changed");
}

/* Runs fn in a child process as uid/gid with supplementary group sgid
 * (none when sgid is (gid_t)-1); the child's exit status is fn's result
 * (0 = expectations met). */
static int as_user(uid_t uid, gid_t gid, gid_t sgid, int (*fn)(void*),
                   void* arg) {
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    gid_t groups[1] = {sgid};
    if (setgroups(sgid == (gid_t)-1 ? 0 : 1, groups) != 0 || setgid(gid) != 0 ||
        setuid(uid) != 0)
      _exit(100);
    _exit(fn(arg));
  }
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 200;
}

/* ------------------------------------------------ a worker cannot write */

Test(security, worker_cannot_write_the_mapping) {
  senv_t e;
  senv_init(&e);
  mcr__snapshot_writer_t* w = publish_one(&e);
  mcr_snapshot_t* s;
  char err[256] = "";
  cr_assert_eq(mcr_snapshot_open(&s, e.ring, NULL, err, sizeof(err)), 0, "%s",
               err);
  const mcr_ring_t* r = mcr_snapshot_ring(s);
  cr_assert_not_null(r->map);
  /* The reader's own mapping: PROT_READ of an O_RDONLY descriptor, so the
   * kernel refuses to make it writable, even for root. */
  errno = 0;
  cr_expect_eq(mprotect(r->map, r->map_len, PROT_READ | PROT_WRITE), -1);
  cr_expect_eq(errno, EACCES, "mprotect: %s", strerror(errno));
  char path[256];
  snprintf(path, sizeof(path), "%s/ring.%" PRIu64, e.ring,
           mcr_snapshot_generation(s));
  /* A descriptor opened as the reader opens it cannot write... */
  int fd = open(path, O_RDONLY | O_NOFOLLOW);
  cr_assert_geq(fd, 0);
  errno = 0;
  cr_expect_eq(write(fd, "x", 1), -1);
  cr_expect_eq(errno, EBADF, "write: %s", strerror(errno));
  /* ...nor be mapped shared and writable. */
  errno = 0;
  cr_expect_eq(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0),
               MAP_FAILED);
  cr_expect_eq(errno, EACCES, "mmap: %s", strerror(errno));
  close(fd);
  /* Lookups still work on the untouched ring. */
  cr_expect_lt(mcr_ring_locate(r, "k", 1), 2);
  mcr_snapshot_free(s);
  mcr__snapshot_writer_close(w);
  senv_fini(&e);
}

/* As a worker uid in the workers' group: read everything, write nothing. */
static int worker_reads(void* arg) {
  senv_t* e = arg;
  mcr_snapshot_t* s;
  char err[256] = "";
  if (mcr_snapshot_open(&s, e->ring, NULL, err, sizeof(err)) != 0) {
    fprintf(stderr, "worker: snapshot open: %s\n", err);
    return 1;
  }
  const mcr_ring_t* r = mcr_snapshot_ring(s);
  if (mcr_ring_node_count(r) != 2 || mcr_ring_locate(r, "k", 1) >= 2)
    return 2;
  char path[256];
  snprintf(path, sizeof(path), "%s/ring.%" PRIu64, e->ring,
           mcr_snapshot_generation(s));
  /* Files are 0640: the group may read, not write. */
  if (open(path, O_RDWR) >= 0 || errno != EACCES)
    return 3;
  snprintf(path, sizeof(path), "%s/ctl", e->ring);
  if (open(path, O_RDWR) >= 0 || errno != EACCES)
    return 4;
  /* The directory is 0750 (or 02750): no new files from the group. */
  snprintf(path, sizeof(path), "%s/planted", e->ring);
  if (open(path, O_WRONLY | O_CREAT, 0644) >= 0 || errno != EACCES)
    return 5;
  if (mprotect(r->map, r->map_len, PROT_READ | PROT_WRITE) == 0)
    return 6;
  mcr_snapshot_free(s);
  return 0;
}

/* As a local user outside the group: the directory is closed. */
static int outsider_refused(void* arg) {
  senv_t* e = arg;
  mcr_snapshot_t* s;
  char err[256] = "";
  int rc = mcr_snapshot_open(&s, e->ring, NULL, err, sizeof(err));
  if (rc == 0)
    return 1;
  if (!strstr(err, "Permission denied")) {
    fprintf(stderr, "outsider: %s\n", err);
    return 2;
  }
  return 0;
}

/* ------------------------------------------------ an unprivileged agent */

Test(security, agent_runs_as_nobody_and_group_workers_read) {
  need_root();
  senv_t e;
  senv_init(&e);
  /* /run/mcring as systemd's RuntimeDirectory would make it: owned by the
   * agent's user. */
  char run[80];
  snprintf(run, sizeof(run), "%s/run", e.top);
  cr_assert_eq(mkdir(run, 0755), 0);
  cr_assert_eq(chown(run, NOBODY, NOBODY), 0);
  snprintf(e.ring, sizeof(e.ring), "%s/ring", run);
  cr_assert_eq(chmod(e.top, 0777), 0); /* the agent log, as nobody */
  char gid[16];
  snprintf(gid, sizeof(gid), "%u", WORKERS_GID);
  int rc = run_agent(&e, NOBODY, NOBODY, WORKERS_GID,
                     (const char* const[]){
                         "--servers", "127.0.0.1:11211,127.0.0.2:11211",
                         "--ring-dir", e.ring, "--group", gid, "--once", NULL});
  cr_assert_eq(chmod(e.top, 0755), 0);
  cr_assert_eq(rc, 0, "agent as nobody exited %d:\n%s", rc,
               deploy_slurp(e.log));
  /* What it made: a 02750 directory and 0640 files, all nobody:workers. */
  struct stat st;
  cr_assert_eq(stat(e.ring, &st), 0);
  cr_expect_eq(st.st_uid, NOBODY);
  cr_expect_eq(st.st_gid, WORKERS_GID);
  cr_expect_eq(st.st_mode & 07777, 02750, "dir mode %o", st.st_mode & 07777);
  const char* files[] = {"ctl", "ring.1", "status"};
  for (size_t i = 0; i < 3; i++) {
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", e.ring, files[i]);
    cr_assert_eq(lstat(p, &st), 0, "%s missing", p);
    cr_expect(S_ISREG(st.st_mode));
    cr_expect_eq(st.st_uid, NOBODY, "%s owner %u", files[i], st.st_uid);
    cr_expect_eq(st.st_gid, WORKERS_GID, "%s group %u", files[i], st.st_gid);
    cr_expect_eq(st.st_mode & 07777, 0640, "%s mode %o", files[i],
                 st.st_mode & 07777);
  }
  cr_expect_eq(as_user(WORKER_UID, WORKER_UID, WORKERS_GID, worker_reads, &e),
               0, "worker in the group could not read, or could write");
  cr_expect_eq(
      as_user(OUTSIDER_UID, OUTSIDER_GID, (gid_t)-1, outsider_refused, &e), 0,
      "a user outside the group opened the ring");
  /* A restarted unprivileged agent carries the generation on. */
  rc = run_agent(
      &e, NOBODY, NOBODY, WORKERS_GID,
      (const char* const[]){"--servers", "127.0.0.3:11211", "--ring-dir",
                            e.ring, "--group", gid, "--once", NULL});
  cr_assert_eq(rc, 0, "second run exited %d:\n%s", rc, deploy_slurp(e.log));
  char p[256];
  snprintf(p, sizeof(p), "%s/ring.2", e.ring);
  cr_expect_eq(access(p, F_OK), 0, "ring.2 not published");
  senv_fini(&e);
}

Test(security, systemd_unit_is_hardened) {
  const char* top = getenv("MCR_TOP_SRCDIR");
  char path[512];
  snprintf(path, sizeof(path), "%s/contrib/mcring-agent.service",
           top ? top : "..");
  const char* unit = deploy_slurp(path);
  cr_assert(strlen(unit) > 0, "cannot read %s", path);
  const char* want[] = {"\nNoNewPrivileges=yes",
                        "\nProtectSystem=strict",
                        "\nRuntimeDirectory=mcring",
                        "\nUMask=0027",
                        "\nUser=",
                        "\nReadWritePaths=/run/mcring"};
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
    cr_expect(strstr(unit, want[i]), "%s lacks %s", path, want[i] + 1);
  cr_expect(!strstr(unit, "\nUser=root"), "the unit runs as root");
}

/* ------------------------------------------------ symlinks */

Test(security, agent_never_follows_a_planted_ctl_symlink) {
  senv_t e;
  senv_init(&e);
  char victim[96], p[160];
  snprintf(victim, sizeof(victim), "%s/victim", e.top);
  victim_make(victim);
  cr_assert_eq(mkdir(e.ring, 0750), 0);
  snprintf(p, sizeof(p), "%s/ctl", e.ring);
  cr_assert_eq(symlink(victim, p), 0);
  int rc =
      AGENT(&e, "--servers", "127.0.0.1:11211", "--ring-dir", e.ring, "--once");
  cr_expect_eq(rc, 3, "agent exit %d with ctl a symlink:\n%s", rc,
               deploy_slurp(e.log));
  victim_expect_intact(victim);
  /* The reader refuses it too. */
  mcr_snapshot_t* s;
  char err[256] = "";
  cr_expect_eq(mcr_snapshot_open(&s, e.ring, NULL, err, sizeof(err)), MCR_EPERM,
               "%s", err);
  cr_expect(strstr(err, "symlink"), "%s", err);
  senv_fini(&e);
}

Test(security, agent_replaces_planted_status_and_ring_symlinks) {
  senv_t e;
  senv_init(&e);
  char victim[96], v2[96], p[160];
  snprintf(victim, sizeof(victim), "%s/victim", e.top);
  snprintf(v2, sizeof(v2), "%s/victim2", e.top);
  victim_make(victim);
  victim_make(v2);
  /* A first ring, then symlinks where the next run writes: the status
   * file and the next generation's ring file. */
  cr_assert_eq(
      AGENT(&e, "--servers", "127.0.0.1:11211", "--ring-dir", e.ring, "--once"),
      0, "%s", deploy_slurp(e.log));
  snprintf(p, sizeof(p), "%s/status", e.ring);
  cr_assert_eq(unlink(p), 0);
  cr_assert_eq(symlink(victim, p), 0);
  snprintf(p, sizeof(p), "%s/ring.2", e.ring);
  cr_assert_eq(symlink(v2, p), 0);
  char tmp[256];
  snprintf(tmp, sizeof(tmp), "%s/ctl.tmp.1", e.ring); /* dangling too */
  cr_assert_eq(symlink(v2, tmp), 0);
  int rc =
      AGENT(&e, "--servers", "127.0.0.2:11211", "--ring-dir", e.ring, "--once");
  cr_expect_eq(rc, 0, "agent exit %d:\n%s", rc, deploy_slurp(e.log));
  victim_expect_intact(victim);
  victim_expect_intact(v2);
  struct stat st;
  snprintf(p, sizeof(p), "%s/status", e.ring);
  cr_assert_eq(lstat(p, &st), 0);
  cr_expect(S_ISREG(st.st_mode), "status is still a symlink");
  snprintf(p, sizeof(p), "%s/ring.2", e.ring);
  cr_assert_eq(lstat(p, &st), 0);
  cr_expect(S_ISREG(st.st_mode), "ring.2 is still a symlink");
  cr_expect_eq(st.st_mode & 0777, 0640);
  mcr_snapshot_t* s;
  char err[256] = "";
  cr_assert_eq(mcr_snapshot_open(&s, e.ring, NULL, err, sizeof(err)), 0, "%s",
               err);
  cr_expect_eq(mcr_snapshot_generation(s), 2);
  mcr_snapshot_free(s);
  senv_fini(&e);
}

Test(security, ring_dir_symlink_refused_by_agent) {
  senv_t e;
  senv_init(&e);
  char real[96];
  snprintf(real, sizeof(real), "%s/real", e.top);
  cr_assert_eq(mkdir(real, 0750), 0);
  cr_assert_eq(symlink(real, e.ring), 0);
  int rc =
      AGENT(&e, "--servers", "127.0.0.1:11211", "--ring-dir", e.ring, "--once");
  cr_expect_eq(rc, 3, "agent exit %d with a symlinked ring dir:\n%s", rc,
               deploy_slurp(e.log));
  char p[256];
  snprintf(p, sizeof(p), "%s/ctl", real);
  cr_expect_neq(access(p, F_OK), 0, "the agent wrote through the symlink");
  senv_fini(&e);
}

/* Runs mcr_snapshot_open(dir) in a child and returns its result, or 1000
 * when it was still blocked after `ms` (the child is then killed). */
static int open_within(const char* dir, int ms) {
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    mcr_snapshot_t* s;
    char err[256] = "";
    int rc = mcr_snapshot_open(&s, dir, NULL, err, sizeof(err));
    _exit(rc < 0 ? -rc : 0);
  }
  int rc = wait_exit(pid, ms);
  return rc < 0 ? 1000 : -rc;
}

/* A FIFO planted as the control file or as a ring file. Design: "a reader
 * never blocks". Opening a FIFO O_RDONLY blocks until a writer appears, so
 * the reader must open with O_NONBLOCK (or O_PATH) before its S_ISREG
 * check. REGRESSION for lib/snapshot.c open_checked(), which opens with
 * O_RDONLY|O_NOFOLLOW only: a worker's mcr_snapshot_open (and the
 * mcr_snapshot_refresh every operation runs) hangs for ever. Fails until
 * open_checked adds O_NONBLOCK. */
Test(security, reader_never_blocks_on_a_fifo) {
  senv_t e;
  senv_init(&e);
  mcr__snapshot_writer_t* w = publish_one(&e);
  char p[256];
  /* ring.2 a FIFO, published. */
  snprintf(p, sizeof(p), "%s/ring.2", e.ring);
  cr_assert_eq(mkfifo(p, 0640), 0);
  mcr__snapshot_writer_store_generation(w, 2);
  int rc = open_within(e.ring, 1000);
  cr_expect_neq(rc, 1000, "the reader blocked on a FIFO ring.2");
  cr_expect_eq(rc, MCR_EPERM, "got %d", rc);
  mcr__snapshot_writer_close(w);
  /* ctl a FIFO. */
  snprintf(p, sizeof(p), "%s/ctl", e.ring);
  cr_assert_eq(unlink(p), 0);
  cr_assert_eq(mkfifo(p, 0640), 0);
  rc = open_within(e.ring, 1000);
  cr_expect_neq(rc, 1000, "the reader blocked on a FIFO ctl");
  cr_expect_eq(rc, MCR_EPERM, "got %d", rc);
  senv_fini(&e);
}

/* ------------------------------------------------ host stats */

/* A worker of the group (victim) keeps counting and routing while another
 * member of the group (attacker) tries every way host stats used to give
 * it into other workers (reliability round 2, part A): shrinking the
 * shared file under their mappings (SIGBUS), writing counts that steer
 * their writes out of bounds, filling the ring filesystem through a file
 * the agent owns. Now each worker writes a segment nobody else maps, so:
 * nothing in the ring directory opens for writing or truncates, no file
 * can be added to it, the victim's segment is out of reach (/proc/PID/fd
 * of another uid), and a hostile segment registered with the agent costs
 * only false rows of its own. */
typedef struct {
  senv_t* e;
  int port;     /* memcached */
  int go, done; /* victim: starts counting / stops (pipe read ends) */
  pid_t victim; /* for the attacker's /proc attempts */
} hs_attack_t;

static int victim_worker(void* arg) {
  hs_attack_t* a = arg;
  mcr_client_opts_t o;
  mcr_client_opts_init(&o);
  o.ring_dir = a->e->ring;
  mcr_client_t* c;
  char err[256];
  if (mcr_client_new(&c, &o, err, sizeof err) != 0) {
    fprintf(stderr, "victim: %s\n", err);
    return 1;
  }
  char b;
  if (read(a->go, &b, 1) != 1)
    return 2;
  fcntl(a->done, F_SETFL, O_NONBLOCK);
  uint64_t sets = 0;
  for (;;) {
    char k[32], v[32];
    int kl = snprintf(k, sizeof k, "victim%llu", (unsigned long long)sets % 50);
    int vl = snprintf(v, sizeof v, "v%llu", (unsigned long long)sets);
    if (mcr_client_set(c, k, (size_t)kl, v, (size_t)vl, 0, 0, 0) != MCR_OK)
      return 3;
    sets++;
    mcr_item_t it;
    if (mcr_client_get(c, k, (size_t)kl, &it) != MCR_OK ||
        it.value_len != (size_t)vl || memcmp(it.value, v, (size_t)vl) != 0)
      return 4; /* routing or values broken */
    if (read(a->done, &b, 1) == 1 || sets > 2000000)
      break;
    usleep(200);
  }
  /* Its own counters, as the agent reports them, are exact. */
  mcr_hoststats_t* h;
  if (mcr_hoststats_open(&h, a->e->ring, -1, err, sizeof err) != 0) {
    fprintf(stderr, "victim: stats: %s\n", err);
    return 5;
  }
  const mcr_hoststat_row_t* r;
  int n = t_hoststats_read(h, &r);
  uint64_t seen_sets = 0, seen_gets = 0;
  for (int i = 0; i < n; i++)
    if (r[i].pid == getpid()) {
      seen_sets += r[i].c.sets;
      seen_gets += r[i].c.gets;
    }
  mcr_hoststats_free(h);
  mcr_client_free(c);
  if (seen_sets != sets || seen_gets != sets) {
    fprintf(stderr, "victim: counted %llu sets, agent says %llu / %llu\n",
            (unsigned long long)sets, (unsigned long long)seen_sets,
            (unsigned long long)seen_gets);
    return 6;
  }
  return 0;
}

static int attacker(void* arg) {
  hs_attack_t* a = arg;
  int fails = 0;
  /* 1. Shrink, grow, replace or remove anything in the ring directory. */
  DIR* d = opendir(a->e->ring);
  if (!d)
    return 100;
  struct dirent* de;
  int files = 0;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.')
      continue;
    char p[512];
    snprintf(p, sizeof p, "%s/%s", a->e->ring, de->d_name);
    files++;
    if (open(p, O_RDWR | O_NOFOLLOW) >= 0 || open(p, O_WRONLY | O_TRUNC) >= 0)
      fails |= 1;
    if (truncate(p, 0) == 0 || unlink(p) == 0)
      fails |= 2;
    char q[520];
    snprintf(q, sizeof q, "%s.x", p);
    if (rename(p, q) == 0)
      fails |= 4;
  }
  closedir(d);
  if (files < 3)
    fails |= 8; /* ctl, ring.N, status, stats.sock at least */
  /* 2. Fill the ring filesystem through the directory. */
  char p[512];
  snprintf(p, sizeof p, "%s/filler", a->e->ring);
  if (open(p, O_WRONLY | O_CREAT, 0600) >= 0)
    fails |= 16;
  /* 3. Reach the victim's segment through /proc. */
  for (int fd = 0; fd < 64; fd++) {
    snprintf(p, sizeof p, "/proc/%d/fd/%d", (int)a->victim, fd);
    if (open(p, O_RDWR) >= 0)
      fails |= 32;
  }
  snprintf(p, sizeof p, "/proc/%d/map_files", (int)a->victim);
  if (opendir(p))
    fails |= 64;
  /* 4. Hand the agent hostile segments and idle connections. */
  for (int i = 0; i < 100; i++) {
    int s = hs_connect(a->e->ring);
    if (s < 0) {
      fails |= 128; /* a member of the group may connect */
      break;
    }
    if (i % 2)
      continue; /* left open, idle */
    int seg = memfd_create("evil", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    size_t size = MCR__HS_HEAD + 4 * (size_t)MCR__HS_ENTRY;
    if (ftruncate(seg, (off_t)size) != 0)
      return 101;
    if (i % 4 == 0)
      fcntl(seg, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
    mcr__hs_head_t hd = {.used = 0xffffffffu, .capacity = 0xffffffffu};
    if (pwrite(seg, &hd, sizeof hd, 0) != (ssize_t)sizeof hd)
      return 102;
    /* The agent may already have dropped this connection (more than
     * PENDING_MAX waiting, or a second without a message on a slow
     * machine): being refused is no breach, so try the next one. */
    if (hs_register(s, seg, false) != 0) {
      close(seg);
      continue;
    }
    /* Now scribble over its own segment while the agent holds it. */
    char junk[MCR__HS_ENTRY];
    memset(junk, 0x41, sizeof junk);
    for (int e = 0; e < 4; e++)
      if (pwrite(seg, junk, sizeof junk,
                 (off_t)(MCR__HS_HEAD + (size_t)e * MCR__HS_ENTRY)) < 0)
        return 104;
    if (i % 4 == 0 && ftruncate(seg, 0) == 0)
      fails |= 256; /* a sealed one cannot shrink */
  }
  if (fails)
    fprintf(stderr, "attacker: %#x\n", fails);
  return fails;
}

Test(security, host_stats_give_a_group_member_nothing_of_another_worker,
     .timeout = 60) {
  need_root();
  senv_t e;
  senv_init(&e);
  mcd_t m;
  mcd_start(&m, NULL);
  char run[80];
  snprintf(run, sizeof(run), "%s/run", e.top);
  cr_assert_eq(mkdir(run, 0755), 0);
  cr_assert_eq(chown(run, NOBODY, NOBODY), 0);
  snprintf(e.ring, sizeof(e.ring), "%s/ring", run);
  char gid[16];
  snprintf(gid, sizeof(gid), "%u", WORKERS_GID);
  const char* args[] = {"--config",   "/dev/null", "--servers", m.servers,
                        "--ring-dir", e.ring,      "--group",   gid,
                        "--interval", "0.2",       NULL};
  spawn_opts_t o = {.err = e.log,
                    .err_append = true,
                    .as_user = true,
                    .uid = NOBODY,
                    .gid = NOBODY,
                    .sgid = WORKERS_GID};
  pid_t agent = agent_spawn(&o, args, NULL);
  ring_wait_gen(e.ring, 1, 10000);
  char sock[200];
  snprintf(sock, sizeof sock, "%s/%s", e.ring, MCR__HS_SOCK);
  int64_t end = now_ms() + 10000;
  while (access(sock, F_OK) != 0 && now_ms() < end)
    usleep(10000);

  int go[2], done[2];
  cr_assert_eq(pipe(go), 0);
  cr_assert_eq(pipe(done), 0);
  hs_attack_t a = {.e = &e, .port = m.port, .go = go[0], .done = done[0]};
  pid_t v = fork();
  if (v == 0) {
    gid_t groups[1] = {WORKERS_GID};
    if (setgroups(1, groups) != 0 || setgid(WORKER_UID) != 0 ||
        setuid(WORKER_UID) != 0)
      _exit(100);
    _exit(victim_worker(&a));
  }
  a.victim = v;
  cr_assert_eq(write(go[1], "g", 1), 1);
  usleep(100000); /* the victim counts */
  cr_expect_eq(as_user(ATTACKER_UID, ATTACKER_UID, WORKERS_GID, attacker, &a),
               0, "the attacker got somewhere (see its stderr)");
  usleep(100000); /* and keeps counting */
  cr_assert_eq(write(done[1], "d", 1), 1);
  int st;
  cr_assert_eq(waitpid(v, &st, 0), v);
  cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "victim: %s %d",
            WIFEXITED(st) ? "exit" : "signal",
            WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
  cr_expect(deploy_alive(agent), "the agent died:\n%s", deploy_slurp(e.log));
  kill(agent, SIGTERM);
  wait_exit(agent, 5000);
  mcd_stop(&m);
  senv_fini(&e);
}

/* A full ring filesystem stops new rings (the agent keeps the last one),
 * never a worker: its host stats segment lives in memory, not on that
 * filesystem, and nothing it maps has pages still to allocate there. */
Test(security, a_full_ring_filesystem_does_not_stop_new_workers) {
  need_root();
  senv_t e;
  senv_init(&e);
  mcd_t m;
  mcd_start(&m, NULL);
  char fs[96];
  snprintf(fs, sizeof fs, "%s/fs", e.top);
  cr_assert_eq(mkdir(fs, 0755), 0);
  if (mount("tmpfs", fs, "tmpfs", 0, "size=1m,mode=0755") != 0)
    skip_or_fail("cannot mount a tmpfs here");
  snprintf(e.ring, sizeof e.ring, "%s/ring", fs);
  mcr__snapshot_writer_t* w;
  char err[256];
  cr_assert_eq(mcr__snapshot_writer_open(&w, e.ring, err, sizeof err), 0, "%s",
               err);
  mcr__ring_node_in_t in[1] = {
      {.host = "127.0.0.1", .port = (uint16_t)m.port, .weight = 1}};
  cr_assert_eq(
      mcr__snapshot_writer_publish_nodes(w, MCR_DIST_KETAMA, in, 1, NULL), 0);
  mcr_hoststats_server_t* srv;
  cr_assert_eq(mcr_hoststats_serve(&srv, e.ring, 8, err, sizeof err), 0, "%s",
               err);
  /* Fill the filesystem to the last block. */
  char filler[128];
  snprintf(filler, sizeof filler, "%s/filler", fs);
  int fd = open(filler, O_WRONLY | O_CREAT, 0600);
  cr_assert_geq(fd, 0);
  static char block[65536];
  while (write(fd, block, sizeof block) > 0) {
  }
  cr_assert_eq(errno, ENOSPC);
  close(fd);
  pid_t pid = fork();
  if (pid == 0) {
    mcr_client_opts_t o;
    mcr_client_opts_init(&o);
    o.ring_dir = e.ring;
    mcr_client_t* c;
    if (mcr_client_new(&c, &o, NULL, 0) != 0)
      _exit(1);
    for (int i = 0; i < 100; i++)
      if (mcr_client_set(c, "k", 1, "v", 1, 0, 0, 0) != MCR_OK)
        _exit(2);
    mcr_hoststats_t* h;
    const mcr_hoststat_row_t* r;
    if (mcr_hoststats_open(&h, e.ring, -1, err, sizeof err) != 0)
      _exit(3);
    int n = t_hoststats_read(h, &r);
    uint64_t sets = 0;
    for (int i = 0; i < n; i++)
      sets += r[i].pid == getpid() ? r[i].c.sets : 0;
    _exit(sets == 100 ? 0 : 4);
  }
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "new worker: %s %d",
            WIFEXITED(st) ? "exit" : "signal",
            WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
  mcr_hoststats_server_free(srv);
  mcr__snapshot_writer_close(w);
  umount2(fs, MNT_DETACH);
  mcd_stop(&m);
  senv_fini(&e);
}

/* ------------------------------------------------ where a ring dir sits */

/* Opens dir as a reader with the owner named or not; returns the result
 * and leaves the message in err. */
static int open_ring(const char* dir, long uid, char* err, size_t errlen) {
  mcr_snapshot_opts_t so;
  mcr_snapshot_opts_init(&so);
  so.expected_uid = uid;
  mcr_snapshot_t* s;
  int rc = mcr_snapshot_open(&s, dir, &so, err, errlen);
  if (rc == 0)
    mcr_snapshot_free(s);
  return rc;
}

/* In a parent others can write (world-writable, sticky or not, or
 * group-writable), whoever made the ring directory first owns what workers
 * follow: a reader refuses it unless the owner is named, and says how to
 * fix it. A symlink as the ring directory is refused like the agent
 * refuses it. Runs without root: the squatter is another uid only in the
 * second test. */
Test(security, a_ring_dir_anyone_could_have_made_is_refused) {
  senv_t e;
  senv_init(&e);
  static const mode_t modes[] = {01777, 0777, 0775, 0770};
  for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
    char parent[96];
    snprintf(parent, sizeof parent, "%s/p%zu", e.top, i);
    cr_assert_eq(mkdir(parent, 0700), 0);
    cr_assert_eq(chmod(parent, modes[i]), 0);
    snprintf(e.ring, sizeof e.ring, "%s/ring", parent);
    mcr__snapshot_writer_close(publish_one(&e));
    char err[512] = "";
    cr_expect_eq(open_ring(e.ring, -1, err, sizeof err), MCR_EPERM,
                 "parent mode %04o accepted", (unsigned)modes[i]);
    /* Whole: the way out is at the end of a long line. */
    cr_expect(strstr(err, "its parent") && strstr(err, "ring_owner_uid") &&
                  strstr(err, "--ring-owner)"),
              "%s", err);
    /* Naming the agent's user is the way out: its files must be its. */
    cr_expect_eq(open_ring(e.ring, (long)geteuid(), err, sizeof err), 0, "%s",
                 err);
    cr_expect_eq(open_ring(e.ring, (long)geteuid() + 1, err, sizeof err),
                 MCR_EPERM, "files of another owner accepted");
  }
  /* A private parent is fine; a symlink to the ring directory is not. */
  char priv[96], link[128];
  snprintf(priv, sizeof priv, "%s/private", e.top);
  cr_assert_eq(mkdir(priv, 0755), 0);
  snprintf(e.ring, sizeof e.ring, "%s/ring", priv);
  mcr__snapshot_writer_close(publish_one(&e));
  char err[512] = "";
  cr_expect_eq(open_ring(e.ring, -1, err, sizeof err), 0, "%s", err);
  snprintf(link, sizeof link, "%s/link", priv);
  cr_assert_eq(symlink(e.ring, link), 0);
  cr_expect_eq(open_ring(link, -1, err, sizeof err), MCR_EPERM);
  cr_expect(strstr(err, "symlink"), "%s", err);
  /* The client says why in one line, and so does the tool. */
  mcr_client_opts_t o;
  mcr_client_opts_init(&o);
  o.ring_dir = link;
  mcr_client_t* c;
  cr_expect_eq(mcr_client_new(&c, &o, err, sizeof err), MCR_EPERM);
  cr_expect(strstr(err, "symlink") && !strchr(err, '\n'), "%s", err);
  senv_fini(&e);
}

/* The attack itself: a local user squats the ring directory in a shared
 * parent before the agent starts and publishes a ring that sends every
 * key to a server of theirs. Workers refuse to follow it; the legitimate
 * agent cannot use the directory and says what to do. */
static int squat(void* arg) {
  senv_t* e = arg;
  mcr__snapshot_writer_t* w;
  char err[256];
  if (mcr__snapshot_writer_open(&w, e->ring, err, sizeof err) != 0)
    return 1;
  mcr__ring_node_in_t in[1] = {{"10.6.6.6", NULL, 11211, 1, MCR__NODE_UP}};
  if (mcr__snapshot_writer_publish_nodes(w, MCR_DIST_KETAMA, in, 1, NULL))
    return 2;
  mcr__snapshot_writer_close(w);
  return 0;
}

Test(security, a_squatted_ring_dir_is_not_followed) {
  need_root();
  senv_t e;
  senv_init(&e);
  char shared[96];
  snprintf(shared, sizeof shared, "%s/shm", e.top); /* like /dev/shm */
  cr_assert_eq(mkdir(shared, 0700), 0);
  cr_assert_eq(chmod(shared, 01777), 0);
  snprintf(e.ring, sizeof e.ring, "%s/ring", shared);
  cr_assert_eq(as_user(OUTSIDER_UID, OUTSIDER_GID, (gid_t)-1, squat, &e), 0);
  char err[512] = "";
  cr_expect_eq(open_ring(e.ring, -1, err, sizeof err), MCR_EPERM,
               "a squatted ring was followed");
  cr_expect_eq(open_ring(e.ring, NOBODY, err, sizeof err), MCR_EPERM,
               "the squatter's files passed for the agent's");
  /* The real agent (as nobody) cannot take the directory over. */
  int rc =
      run_agent(&e, NOBODY, NOBODY, WORKERS_GID,
                (const char* const[]){"--servers", "127.0.0.1:11211",
                                      "--ring-dir", e.ring, "--once", NULL});
  cr_expect_eq(rc, 3, "agent exit %d", rc);
  const char* log = deploy_slurp(e.log);
  cr_expect(strstr(log, "owned by uid") && strstr(log, "remove it"), "%s", log);
  senv_fini(&e);
}
