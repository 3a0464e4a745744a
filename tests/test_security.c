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
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chaos.h" /* agent spawning and waiting helpers */
#include "ring.h"
#include "support.h"

#define NOBODY 65534u      /* the agent's unprivileged user */
#define WORKERS_GID 4301u  /* the workers' group (numeric: no /etc edit) */
#define WORKER_UID 4302u   /* a worker in that group */
#define OUTSIDER_UID 4303u /* a local user outside it */
#define OUTSIDER_GID 4304u

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
  const char* argv[32];
  size_t n = 0;
  argv[n++] = chaos_agent_bin();
  for (size_t i = 0; args[i] && n < 31; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  spawn_opts_t o = {.err = e->log,
                    .err_append = true,
                    .as_user = uid != (uid_t)-1,
                    .uid = uid,
                    .gid = gid,
                    .sgid = sgid};
  return wait_exit(spawn_prog(argv, &o), 10000);
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
  cr_expect_str_eq(chaos_slurp(path), "precious\n", "victim content changed");
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
  cr_assert_eq(rc, 0, "agent as nobody exited %d:\n%s", rc, chaos_slurp(e.log));
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
  cr_assert_eq(rc, 0, "second run exited %d:\n%s", rc, chaos_slurp(e.log));
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
  const char* unit = chaos_slurp(path);
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
               chaos_slurp(e.log));
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
      0, "%s", chaos_slurp(e.log));
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
  cr_expect_eq(rc, 0, "agent exit %d:\n%s", rc, chaos_slurp(e.log));
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
               chaos_slurp(e.log));
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
  int rc = chaos_wait(pid, ms);
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
