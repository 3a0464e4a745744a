/* test_fork.c — a client handle inherited across fork().
 *
 * Pre-fork servers create a client, use it, and then fork workers that keep
 * using the same handle. A connection opened in the parent must never be
 * used by a child: if it were, parent and children would interleave
 * requests on one socket and read each other's replies. The parent opens
 * its connection, forks 16 children that each write and read their own
 * keys 1,000 times through the inherited handle while the parent keeps
 * working too, and every child checks it only ever sees its own values.
 * Afterwards the parent's connection must still be the one it had: a child
 * must not shut it down or send "quit" on it.
 *
 * Children report through their exit status (0, or the number of the check
 * that failed) and never run Criterion's assertions.
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support.h"

#define CHILDREN 16
#define ROUNDS 1000

/* Writes and reads keys "w<id>-<i % 20>" with values naming the writer
 * and the round. Returns 0, or which check failed. */
static int worker(int id, const char* prefix) {
  for (int i = 0; i < ROUNDS; i++) {
    char key[64], val[64];
    int kl = snprintf(key, sizeof key, "%s%d-%d", prefix, id, i % 20);
    int vl = snprintf(val, sizeof val, "%s%d round %d pid %d", prefix, id, i,
                      (int)getpid());
    int rc = mcr_client_set(fx_client, key, (size_t)kl, val, (size_t)vl,
                            (uint32_t)id, 0, 0);
    if (rc != MCR_OK) {
      fprintf(stderr, "%s%d: set %s: %s (%s)\n", prefix, id, key,
              mcr_err_name(rc), mcr_client_last_error(fx_client));
      return 1;
    }
    mcr_item_t item;
    rc = mcr_client_get(fx_client, key, (size_t)kl, &item);
    if (rc != MCR_OK) {
      fprintf(stderr, "%s%d: get %s: %d %s (%s)\n", prefix, id, key, rc,
              rc < 0 ? mcr_err_name(rc) : mcr_status_name(rc),
              mcr_client_last_error(fx_client));
      return 2;
    }
    if (item.value_len != (size_t)vl || memcmp(item.value, val, vl) != 0 ||
        item.flags != (uint32_t)id) {
      fprintf(stderr, "%s%d: got \"%.*s\" flags %u, want \"%s\"\n", prefix, id,
              (int)item.value_len, item.value, item.flags, val);
      return 3;
    }
  }
  return 0;
}

Test(fork, children_share_the_handle, .init = fx_setup, .fini = fx_teardown,
     .timeout = 120) {
  cl_set(fx_client, "parent", "p");
  cl_expect(fx_client, "parent", "p");
  uint64_t conns = mcd_stat(&fx_mcd, "curr_connections");

  pid_t pids[CHILDREN];
  for (int i = 0; i < CHILDREN; i++) {
    pids[i] = fork();
    cr_assert_geq(pids[i], 0, "fork");
    if (pids[i] == 0)
      _exit(worker(i, "w"));
  }
  /* The parent keeps using its connection meanwhile. */
  int parent_rc = worker(0, "parent-");

  int failed = 0;
  for (int i = 0; i < CHILDREN; i++) {
    int status;
    cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      cr_log_error("child %d: %s %d", i, WIFEXITED(status) ? "exit" : "signal",
                   WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
      failed++;
    }
  }
  cr_assert_eq(failed, 0, "%d of %d children failed", failed, CHILDREN);
  cr_assert_eq(parent_rc, 0, "the parent failed during the children's run");

  /* Every child's last values are on the server. */
  for (int i = 0; i < CHILDREN; i++) {
    char key[32];
    snprintf(key, sizeof key, "w%d-%d", i, (ROUNDS - 1) % 20);
    mcr_item_t item;
    assert_rc(mcr_client_get(fx_client, key, strlen(key), &item), MCR_OK);
    cr_assert_eq(item.flags, (uint32_t)i);
  }
  /* The parent's own connection survived the children. */
  cl_expect(fx_client, "parent", "p");
  mcr_client_stats_t st;
  mcr_client_stats(fx_client, &st);
  cr_assert_eq(st.reconnects, 0, "the parent had to reconnect");
  cr_assert_geq(mcd_stat(&fx_mcd, "total_connections"), conns + CHILDREN);
}

Test(fork, child_of_an_unused_client, .init = fx_setup, .fini = fx_teardown,
     .timeout = 60) {
  /* No connection yet at fork time: both sides connect on their own. */
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0)
    _exit(worker(1, "lone"));
  int rc = worker(2, "lone");
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed");
  cr_assert_eq(rc, 0);
}

Test(fork, grandchildren, .init = fx_setup, .fini = fx_teardown,
     .timeout = 60) {
  /* A child that forks again: each generation gets its own connection. */
  cl_set(fx_client, "g", "0");
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    if (mcr_client_set(fx_client, "g1", 2, "1", 1, 0, 0, 0) != MCR_OK)
      _exit(1);
    pid_t gp = fork();
    if (gp < 0)
      _exit(2);
    if (gp == 0)
      _exit(worker(7, "grand"));
    int st;
    if (waitpid(gp, &st, 0) != gp || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
      _exit(3);
    _exit(worker(8, "child"));
  }
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status), "child died");
  cr_assert_eq(WEXITSTATUS(status), 0, "child exit %d", WEXITSTATUS(status));
  cl_expect(fx_client, "g1", "1");
  cl_expect(fx_client, "g", "0");
}
