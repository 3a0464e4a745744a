/* test_hoststats.c — the host-wide statistics segment.
 *
 * A ring directory with a published ring (the snapshot writer, as the agent
 * uses it) and the stats segment (mcr_hoststats_create); ring_dir clients
 * against two real memcached. Checks that each handle counts into a slot of
 * its own, that a forked child claims a new slot instead of writing into
 * its parent's, that the counters add up to the calls made, that a freed
 * handle gives its slot back and a dead process's slot is skipped by
 * readers and taken over by the next claimer, and that host_stats = 0 and a
 * directory without a segment keep everything private.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ring.h"
#include "support.h"

static mcd_t m1, m2;
static char dir[64];

static void setup(void) {
  mcd_start(&m1, NULL);
  mcd_start(&m2, NULL);
  snprintf(dir, sizeof dir, "/tmp/mcr-hs-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  strcat(dir, "/ring");
  char err[256];
  mcr__snapshot_writer_t* w;
  cr_assert_eq(mcr__snapshot_writer_open(&w, dir, err, sizeof err), 0, "%s",
               err);
  mcr__ring_node_in_t in[2] = {
      {.host = "127.0.0.1", .port = (uint16_t)m1.port, .weight = 1},
      {.host = "127.0.0.1", .port = (uint16_t)m2.port, .weight = 1}};
  cr_assert_eq(
      mcr__snapshot_writer_publish_nodes(w, MCR_DIST_KETAMA, in, 2, NULL), 0);
  mcr__snapshot_writer_close(w);
}

static void teardown(void) {
  mcd_stop(&m1);
  mcd_stop(&m2);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %.*s", (int)(strlen(dir) - 5), dir);
  if (system(cmd) != 0) {
  }
}

static mcr_client_t* ring_client(int host_stats) {
  mcr_client_opts_t o = opts_default();
  o.ring_dir = dir;
  o.host_stats = host_stats;
  mcr_client_t* c = NULL;
  char err[256];
  int rc = mcr_client_new_err(&c, &o, err, sizeof err);
  cr_assert_eq(rc, 0, "%s: %s", mcr_err_name(rc), err);
  return c;
}

/* Sums the rows of process `pid` (all pids when 0). */
static mcr_node_counters_t sum(int pid, int* slots_seen) {
  mcr_hoststats_t* h;
  char err[256];
  cr_assert_eq(mcr_hoststats_open(&h, dir, err, sizeof err), 0, "%s", err);
  const mcr_hoststat_row_t* r;
  int n = mcr_hoststats_read(h, &r);
  cr_assert_geq(n, 0);
  mcr_node_counters_t t = {0};
  unsigned seen[64];
  int nseen = 0;
  for (int i = 0; i < n; i++) {
    if (pid && r[i].pid != pid)
      continue;
    bool dup = false;
    for (int j = 0; j < nseen; j++)
      dup |= seen[j] == r[i].slot;
    if (!dup && nseen < 64)
      seen[nseen++] = r[i].slot;
    t.gets += r[i].c.gets;
    t.sets += r[i].c.sets;
    t.deletes += r[i].c.deletes;
    t.others += r[i].c.others;
    t.hits += r[i].c.hits;
    t.misses += r[i].c.misses;
    t.errors += r[i].c.errors;
    t.bytes_in += r[i].c.bytes_in;
    t.bytes_out += r[i].c.bytes_out;
    for (int b = 0; b < MCR_LATENCY_BUCKETS; b++)
      t.latency[b] += r[i].c.latency[b];
  }
  if (slots_seen)
    *slots_seen = nseen;
  mcr_hoststats_free(h);
  return t;
}

static void traffic(mcr_client_t* c, int n) {
  for (int i = 0; i < n; i++) {
    char k[16];
    int kl = snprintf(k, sizeof k, "hk%d", i);
    cr_assert_eq(mcr_client_set(c, k, (size_t)kl, "v", 1, 0, 0, 0), MCR_OK);
    mcr_item_t it;
    cr_assert_eq(mcr_client_get(c, k, (size_t)kl, &it), MCR_OK);
    cr_assert_eq(mcr_client_get(c, "absent", 6, &it), MCR_MISS);
  }
  uint64_t v;
  cr_assert_eq(mcr_client_incr(c, "absent", 6, 1, &v, 0), MCR_NOT_FOUND);
  cr_assert_eq(mcr_client_delete(c, "hk0", 3, 0), MCR_OK);
}

TestSuite(hoststats, .init = setup, .fini = teardown, .timeout = 30);

Test(hoststats, counters_add_up) {
  char err[256];
  cr_assert_eq(mcr_hoststats_create(dir, 16, err, sizeof err), 0, "%s", err);
  mcr_client_t* c = ring_client(1);
  traffic(c, 50);
  int slots;
  mcr_node_counters_t t = sum(getpid(), &slots);
  cr_assert_eq(slots, 1);
  cr_assert_eq(t.sets, 50);
  cr_assert_eq(t.gets, 100);
  cr_assert_eq(t.hits, 50);
  cr_assert_eq(t.misses, 50);
  cr_assert_eq(t.others, 1);
  cr_assert_eq(t.deletes, 1);
  cr_assert_eq(t.errors, 0);
  cr_assert_gt(t.bytes_in, 0);
  cr_assert_gt(t.bytes_out, 0);
  uint64_t lat = 0;
  for (int b = 0; b < MCR_LATENCY_BUCKETS; b++)
    lat += t.latency[b];
  cr_assert_eq(lat, 152, "one latency sample per call, got %llu",
               (unsigned long long)lat);
  /* A second handle in the same process has a slot of its own. */
  mcr_client_t* c2 = ring_client(1);
  traffic(c2, 5);
  sum(getpid(), &slots);
  cr_assert_eq(slots, 2);
  mcr_client_free(c2);
  sum(getpid(), &slots);
  cr_assert_eq(slots, 1, "a freed handle gives its slot back");
  mcr_client_free(c);
}

Test(hoststats, child_after_fork_counts_in_its_own_slot) {
  char err[256];
  cr_assert_eq(mcr_hoststats_create(dir, 16, err, sizeof err), 0, "%s", err);
  mcr_client_t* c = ring_client(1);
  traffic(c, 10);
  int pipefd[2];
  cr_assert_eq(pipe(pipefd), 0);
  pid_t pid = fork();
  if (pid == 0) {
    traffic(c, 3);
    char ok = 1;
    if (write(pipefd[1], &ok, 1) != 1)
      _exit(2);
    pause(); /* stay alive until the parent has read the stats */
    _exit(0);
  }
  char ok;
  cr_assert_eq(read(pipefd[0], &ok, 1), 1);
  mcr_node_counters_t parent = sum(getpid(), NULL);
  mcr_node_counters_t child = sum(pid, NULL);
  cr_assert_eq(parent.sets, 10, "the child never wrote the parent's slot");
  cr_assert_eq(child.sets, 3);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  /* Dead: readers skip its slot, and a new claimer may take it. */
  int slots;
  sum(0, &slots);
  cr_assert_eq(slots, 1);
  mcr_client_free(c);
}

Test(hoststats, dead_slots_are_reclaimed_when_full) {
  char err[256];
  cr_assert_eq(mcr_hoststats_create(dir, 2, err, sizeof err), 0, "%s", err);
  for (int i = 0; i < 2; i++) {
    pid_t pid = fork();
    if (pid == 0) {
      mcr_client_t* c = ring_client(1);
      traffic(c, 1);
      _exit(0); /* dies without freeing: its slot stays claimed */
    }
    waitpid(pid, NULL, 0);
  }
  mcr_client_t* c = ring_client(1);
  traffic(c, 2);
  int slots;
  mcr_node_counters_t t = sum(0, &slots);
  cr_assert_eq(slots, 1);
  cr_assert_eq(t.sets, 2, "the reclaimed slot starts from zero");
  mcr_client_free(c);
}

Test(hoststats, off_and_absent_keep_counters_private) {
  mcr_hoststats_t* h;
  char err[256];
  /* No segment: readers say so, clients work. */
  cr_assert_eq(mcr_hoststats_open(&h, dir, err, sizeof err), MCR_ESNAPSHOT);
  mcr_client_t* c = ring_client(1);
  traffic(c, 2);
  mcr_client_free(c);
  /* A segment, but host_stats = 0. */
  cr_assert_eq(mcr_hoststats_create(dir, 4, err, sizeof err), 0, "%s", err);
  c = ring_client(0);
  traffic(c, 2);
  int slots;
  sum(0, &slots);
  cr_assert_eq(slots, 0);
  mcr_client_free(c);
}

Test(hoststats, a_segment_it_cannot_use_leaves_the_client_working) {
  /* A stats file the client may not use (here a symlink, refused like
   * one it may not write) must cost only the host stats, never the
   * client. */
  char path[128];
  snprintf(path, sizeof path, "%s/stats", dir);
  cr_assert_eq(symlink("/dev/null", path), 0);
  mcr_client_t* c = ring_client(1);
  traffic(c, 2);
  mcr_client_free(c);
  mcr_hoststats_t* h;
  char err[256];
  cr_assert_eq(mcr_hoststats_open(&h, dir, err, sizeof err), MCR_EPERM, "%s",
               err);
}
