/* proc.c — the programs under test, as tests start and wait for them.
 *
 * Tests run the built mcring, mcring-agent and friends as real processes.
 * The work is tools/deploy.c, which the bench and the demo share; this
 * file only turns what a test cannot go on without (a fork, a built
 * program, a generation that never came) into a failed test, knows how
 * the tests start the agent, and counts the files a publisher leaves in a
 * ring directory.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

pid_t spawn_prog(const char* const* argv, const spawn_opts_t* o) {
  pid_t pid = deploy_spawn(argv, o);
  cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
  return pid;
}

int wait_exit(pid_t pid, int timeout_ms) {
  return deploy_wait(pid, timeout_ms);
}

const char* built_prog(const char* name) {
  static char path[2][4096];
  static int slot;
  char* p = path[slot++ & 1];
  if (!deploy_build_path(NULL, name, p, sizeof path[0]))
    cr_assert_fail("no %s at %s (set MCR_TOP_BUILDDIR)", name, p);
  return p;
}

pid_t agent_spawn(const spawn_opts_t* o, const char* const* args,
                  const char* const* more) {
  const char* argv[64];
  size_t n = 0;
  argv[n++] = built_prog("mcring-agent");
  for (size_t i = 0; args && args[i] && n < 63; i++)
    argv[n++] = args[i];
  for (size_t i = 0; more && more[i] && n < 63; i++)
    argv[n++] = more[i];
  argv[n] = NULL;
  return spawn_prog(argv, o);
}

uint64_t ring_wait_gen(const char* ring_dir, uint64_t want, int timeout_ms) {
  uint64_t g = deploy_wait_gen(ring_dir, want, timeout_ms);
  if (!g)
    cr_assert_fail("generation %llu not published in %s within %d ms (at %llu)",
                   (unsigned long long)want, ring_dir, timeout_ms,
                   (unsigned long long)deploy_ring_gen(ring_dir));
  return g;
}

size_t dir_count_prefix(const char* dir, const char* prefix) {
  DIR* d = opendir(dir);
  size_t n = 0;
  struct dirent* de;
  while (d && (de = readdir(d)) != NULL)
    n += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
  if (d)
    closedir(d);
  return n;
}
