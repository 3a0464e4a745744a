/* sys.c — the fork generation every layer shares (the clock, its other
 * half, is inline in internal.h).
 *
 * Deadlines are CLOCK_MONOTONIC milliseconds (mcr__now_ms), latencies
 * nanoseconds; through the vDSO neither is a system call. mcr__fork_gen
 * counts forks: pthread_atfork bumps it in every child, and anything made
 * under an older value (a connection, a host stats registration) belongs
 * to the parent, so the child closes its copy unused instead of reading
 * its parent's replies or writing its parent's counters.
 */
#include <ck_pr.h>
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
