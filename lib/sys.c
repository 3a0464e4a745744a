/* sys.c — the fork generation and the deadline wait every layer shares
 * (the clock, their other half, is inline in internal.h).
 *
 * Deadlines are CLOCK_MONOTONIC milliseconds (mcr__now_ms), latencies
 * nanoseconds; through the vDSO neither is a system call. mcr__fork_gen
 * counts forks: pthread_atfork bumps it in every child, and anything made
 * under an older value (a connection, a host stats registration) belongs
 * to the parent, so the child closes its copy unused instead of reading
 * its parent's replies or writing its parent's counters.
 */
#include <ck_pr.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>

#include "internal.h"

unsigned mcr__fork_gen;

/* Runs in the child, which has one thread: no race with readers. */
static void on_fork_child(void) {
  ck_pr_inc_uint(&mcr__fork_gen);
}

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static void fork_register(void) {
  pthread_atfork(NULL, NULL, on_fork_child);
}

void mcr__fork_guard_init(void) {
  pthread_once(&fork_once, fork_register);
}

int mcr__wait_fd(int fd, short events, int64_t deadline) {
  for (;;) {
    int64_t left = deadline - mcr__now_ns();
    if (left <= 0)
      return MCR_ETIMEOUT;
    struct pollfd p = {.fd = fd, .events = events};
    int r = poll(&p, 1, (int)((left + 999999) / 1000000));
    if (r > 0)
      return 0;
    if (r < 0 && errno != EINTR)
      return MCR_EIO;
  }
}
