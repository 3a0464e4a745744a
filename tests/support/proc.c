/* proc.c — starting and reaping the programs under test.
 *
 * Tests run the built mcring, mcring-agent and friends as real processes.
 * spawn_prog forks and execs one with its standard streams redirected, an
 * environment tweak and optionally another user, and makes it die with the
 * test process (PR_SET_PDEATHSIG) so a crashed test leaves nothing behind;
 * wait_exit reaps it within a deadline, killing it when the deadline
 * passes. One copy for every test file that runs programs.
 */
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

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

pid_t spawn_prog(const char* const* argv, const spawn_opts_t* o) {
  static const spawn_opts_t none;
  if (!o)
    o = &none;
  pid_t pid = fork();
  cr_assert_geq(pid, 0, "fork");
  if (pid != 0)
    return pid;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  for (size_t i = 0; o->unset && o->unset[i]; i++)
    unsetenv(o->unset[i]);
  for (size_t i = 0; o->env && o->env[i]; i++)
    putenv((char*)o->env[i]);
  int errflags = O_WRONLY | O_CREAT | (o->err_append ? O_APPEND : O_TRUNC);
  if (!redirect(o->in, O_RDONLY, 0) ||
      !redirect(o->out, O_WRONLY | O_CREAT | O_TRUNC, 1) ||
      !redirect(o->err, errflags, 2))
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

int wait_exit(pid_t pid, int timeout_ms) {
  int64_t end = now_ms() + timeout_ms;
  for (;;) {
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid)
      return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (now_ms() > end) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return -1;
    }
    usleep(2000);
  }
}
