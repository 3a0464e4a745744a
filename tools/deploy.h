/* deploy.h — running the programs of a deployment from another program.
 *
 * The tests, the ring benchmark and the demo all do the same few things
 * with the built programs: find mcring-agent in a build directory, start
 * it (or memcached, or the fake configuration endpoint) with its output in
 * a log file, wait until a ring generation is published, stop it. This is
 * the one copy of that, in plain C with no test framework, so a program
 * that is not a Criterion test can link it (tools/libdeploy.la). Nothing
 * here fails or exits on its own: every function returns what happened and
 * the caller decides (tests wrap these with cr_assert in tests/support/).
 *
 * Every child started here dies with the process that started it
 * (PR_SET_PDEATHSIG), so a crashed test or demo leaves nothing running.
 */
#ifndef MCR_TOOLS_DEPLOY_H
#define MCR_TOOLS_DEPLOY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---------------------------------------------------------------- paths */

/* Writes "<build_dir>/<name>" to buf[cap] (build_dir NULL:
 * $MCR_TOP_BUILDDIR, else "."). Returns buf when that file is executable,
 * NULL when it is not (buf still holds the path, for a message). */
const char* deploy_build_path(const char* build_dir, const char* name,
                              char* buf, size_t cap);

/* deploy_build_path of "mcring-agent", in a static buffer (overwritten by
 * the next call). */
const char* deploy_agent_path(const char* build_dir);

/* ---------------------------------------------------------------- processes */

/* How deploy_spawn starts a program; every field may be left zero (then
 * the child inherits the stream, the environment and the user). */
typedef struct {
  const char* in;           /* stdin from this file */
  const char* out;          /* stdout to this file */
  bool out_append;          /* append to out instead of truncating it */
  const char* err;          /* stderr to this file */
  bool err_append;          /* append to err instead of truncating it */
  const char* const* env;   /* "NAME=value" to add, NULL-terminated */
  const char* const* unset; /* names to remove, NULL-terminated */
  bool as_user;             /* run as uid:gid with one extra group sgid */
  uid_t uid;
  gid_t gid, sgid;
} deploy_spawn_opts_t;

/* fork() whose child dies with the caller: in the child it returns 0 with
 * PR_SET_PDEATHSIG set to SIGKILL (and exits 127 at once when the caller
 * died before that was set). -1 when fork fails (errno set). Flush stdio
 * before calling it, or buffered output is written twice. */
pid_t deploy_fork(void);

/* Starts argv[0] (a path; argv NULL-terminated) in a deploy_fork child with
 * the streams, environment and user of `o` (may be NULL) and SIGPIPE back
 * at its default. Returns the pid, or -1 when fork fails. The child exits
 * 126 when a redirection or the user switch fails, 127 when exec fails. */
pid_t deploy_spawn(const char* const* argv, const deploy_spawn_opts_t* o);

/* Waits up to timeout_ms for pid to exit and reaps it. Returns its exit
 * status, or -1 when a signal ended it or the timeout passed (then it is
 * killed with SIGKILL and reaped). */
int deploy_wait(pid_t pid, int timeout_ms);

/* Sends `sig` to pid, then deploy_wait(pid, timeout_ms). */
int deploy_stop(pid_t pid, int sig, int timeout_ms);

/* True while pid (a child of the caller) runs; false once it has exited.
 * It does not reap it: deploy_wait (or waitpid) still gets its status. */
bool deploy_alive(pid_t pid);

/* ---------------------------------------------------------------- rings */

/* The generation published in ring_dir, as a reader opening it now sees
 * it (mcr_snapshot_open); 0 when there is none it can read. */
uint64_t deploy_ring_gen(const char* ring_dir);

/* Polls deploy_ring_gen every 2 ms until it is >= want. Returns it, or 0
 * when timeout_ms passed first. */
uint64_t deploy_wait_gen(const char* ring_dir, uint64_t want, int timeout_ms);

/* ---------------------------------------------------------------- files */

/* Reads the file at path into buf[cap] (at most cap - 1 bytes) and
 * NUL-terminates it. Returns the bytes read (0, and "", when the file
 * cannot be read). cap must be at least 1. */
size_t deploy_slurp_into(const char* path, char* buf, size_t cap);

/* deploy_slurp_into a static 256 KiB buffer, returned; overwritten by the
 * next call, and not for use from several threads. */
const char* deploy_slurp(const char* path);

#endif /* MCR_TOOLS_DEPLOY_H */
