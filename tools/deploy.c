/* deploy.c — finding, starting, watching and stopping a deployment's
 * programs (see deploy.h).
 *
 * One copy for the tests, the ring benchmark and the demo, which used to
 * carry five of their own. Children are forked with PR_SET_PDEATHSIG so
 * they die with whoever started them, also when that one is SIGKILLed or
 * crashes; the parent's pid is checked after setting it, since the parent
 * may have died between fork and prctl. Waiting is polling with a short
 * sleep on CLOCK_MONOTONIC: these are slow events (a process exits, an
 * agent publishes) and a poll keeps every wait bounded without signals.
 * The generation is read the way a worker reads it, by opening the ring
 * directory with the library's snapshot reader.
 */
#include "deploy.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mcring.h"

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* ---------------------------------------------------------------- paths */

const char* deploy_build_path(const char* build_dir, const char* name,
                              char* buf, size_t cap) {
  if (!build_dir)
    build_dir = getenv("MCR_TOP_BUILDDIR");
  snprintf(buf, cap, "%s/%s", build_dir ? build_dir : ".", name);
  return access(buf, X_OK) == 0 ? buf : NULL;
}

const char* deploy_agent_path(const char* build_dir) {
  static char path[4096];
  return deploy_build_path(build_dir, "mcring-agent", path, sizeof path);
}

/* ---------------------------------------------------------------- processes */

pid_t deploy_fork(void) {
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid != 0)
    return pid;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent)
    _exit(127); /* the parent died before the signal was armed */
  return 0;
}

/* Points fd `to` at `path` opened with `flags`; false when it cannot. */
static bool redirect(const char* path, int flags, int to) {
  if (!path)
    return true;
  int fd = open(path, flags, 0666);
  if (fd < 0)
    return false;
  if (fd != to) {
    dup2(fd, to);
    close(fd);
  }
  return true;
}

static int write_flags(bool append) {
  return O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC);
}

pid_t deploy_spawn(const char* const* argv, const deploy_spawn_opts_t* o) {
  static const deploy_spawn_opts_t none;
  if (!o)
    o = &none;
  pid_t pid = deploy_fork();
  if (pid != 0)
    return pid;
  signal(SIGPIPE, SIG_DFL); /* the parent may ignore it; exec keeps that */
  for (size_t i = 0; o->unset && o->unset[i]; i++)
    unsetenv(o->unset[i]);
  for (size_t i = 0; o->env && o->env[i]; i++)
    putenv((char*)o->env[i]);
  if (!redirect(o->in, O_RDONLY, 0) ||
      !redirect(o->out, write_flags(o->out_append), 1) ||
      !redirect(o->err, write_flags(o->err_append), 2))
    _exit(126);
  if (o->as_user) {
    gid_t groups[1] = {o->sgid};
    if (setgroups(1, groups) != 0 || setgid(o->gid) != 0 || setuid(o->uid) != 0)
      _exit(126);
    /* A change of credentials clears the parent-death signal: set again. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
  }
  execv(argv[0], (char* const*)argv);
  _exit(127);
}

int deploy_wait(pid_t pid, int timeout_ms) {
  int64_t end = mono_ms() + timeout_ms;
  for (;;) {
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid)
      return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (mono_ms() > end) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return -1;
    }
    sleep_ms(2);
  }
}

int deploy_stop(pid_t pid, int sig, int timeout_ms) {
  kill(pid, sig);
  return deploy_wait(pid, timeout_ms);
}

bool deploy_alive(pid_t pid) {
  siginfo_t si = {0};
  /* WNOWAIT: look without reaping, so the status stays for its owner. */
  return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
         si.si_pid == 0;
}

/* ---------------------------------------------------------------- rings */

uint64_t deploy_ring_gen(const char* ring_dir) {
  mcr_snapshot_t* s;
  char err[256];
  if (mcr_snapshot_open(&s, ring_dir, NULL, err, sizeof err) != 0)
    return 0;
  uint64_t g = mcr_snapshot_generation(s);
  mcr_snapshot_free(s);
  return g;
}

uint64_t deploy_wait_gen(const char* ring_dir, uint64_t want, int timeout_ms) {
  int64_t end = mono_ms() + timeout_ms;
  uint64_t g;
  while ((g = deploy_ring_gen(ring_dir)) < want) {
    if (mono_ms() > end)
      return 0;
    sleep_ms(2);
  }
  return g;
}

/* ---------------------------------------------------------------- files */

size_t deploy_slurp_into(const char* path, char* buf, size_t cap) {
  size_t n = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t r;
    while (n + 1 < cap && (r = read(fd, buf + n, cap - 1 - n)) > 0)
      n += (size_t)r;
    close(fd);
  }
  buf[n] = '\0';
  return n;
}

const char* deploy_slurp(const char* path) {
  static char buf[1 << 18];
  deploy_slurp_into(path, buf, sizeof buf);
  return buf;
}
