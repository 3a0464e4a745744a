/* enospc.c — an LD_PRELOAD shim that fills the disk on demand.
 *
 * The chaos suite needs the ring filesystem to be full during a publish.
 * Where a small tmpfs can be mounted (root in a privileged container) the
 * test does that; elsewhere it runs the agent with this shim preloaded:
 * while the file named by $MCR_ENOSPC_FLAG exists, posix_fallocate (what
 * the snapshot writer calls before filling a ring file) fails with ENOSPC,
 * exactly as it does on a full tmpfs; otherwise the real one runs.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

static int full(void) {
  const char* flag = getenv("MCR_ENOSPC_FLAG");
  return flag && access(flag, F_OK) == 0;
}

int posix_fallocate(int fd, off_t off, off_t len) {
  if (full())
    return ENOSPC;
  int (*real)(int, off_t, off_t) =
      (int (*)(int, off_t, off_t))dlsym(RTLD_NEXT, "posix_fallocate");
  return real ? real(fd, off, len) : ENOSYS;
}

int posix_fallocate64(int fd, off_t off, off_t len) {
  if (full())
    return ENOSPC;
  int (*real)(int, off_t, off_t) =
      (int (*)(int, off_t, off_t))dlsym(RTLD_NEXT, "posix_fallocate64");
  return real ? real(fd, off, len) : ENOSYS;
}
