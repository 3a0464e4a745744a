/* test_hoststats.c — the host-wide statistics segment.
 *
 * A ring directory with a published ring (the snapshot writer, as the agent
 * uses it) and the agent's host stats server (mcr_hoststats_serve, in a
 * thread of the test process); ring_dir clients
 * against two real memcached. Checks that each handle counts into a slot of
 * its own, that a forked child claims a new slot instead of writing into
 * its parent's, that the counters add up to the calls made, that a freed
 * handle gives its slot back and a dead process's slot is skipped by
 * readers and taken over by the next claimer (also when every slot is
 * held by a dead worker and no reader came by), and that host_stats = 0 and a
 * directory without a segment keep everything private.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hoststats.h"
#include "ring.h"
#include "support.h"

static mcd_t m1, m2;
static char dir[64];
static mcr_hoststats_server_t* srv; /* the agent's half, in this process */

/* Starts serving host stats for dir with `slots` registrations. */
static void serve(unsigned slots) {
  char err[256];
  cr_assert_eq(mcr_hoststats_serve(&srv, dir, slots, err, sizeof err), 0, "%s",
               err);
}

static void setup(void) {
  mcd_start(&m1, NULL);
  mcd_start(&m2, NULL);
  ring_dir_make(dir, sizeof dir, "hs");
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
  mcr_hoststats_server_free(srv);
  srv = NULL;
  mcd_stop(&m1);
  mcd_stop(&m2);
  ring_dir_remove(dir);
}

static mcr_client_t* ring_client(int host_stats) {
  mcr_client_opts_t o = opts_default();
  o.ring_dir = dir;
  o.host_stats = host_stats;
  mcr_client_t* c = NULL;
  char err[256];
  int rc = mcr_client_new(&c, &o, err, sizeof err);
  cr_assert_eq(rc, 0, "%s: %s", mcr_err_name(rc), err);
  return c;
}

/* Sums the rows of process `pid` (all pids when 0). */
static mcr_node_counters_t sum(int pid, int* slots_seen) {
  mcr_hoststats_t* h;
  char err[256];
  cr_assert_eq(mcr_hoststats_open(&h, dir, -1, err, sizeof err), 0, "%s", err);
  const mcr_hoststat_row_t* r;
  int n = t_hoststats_read(h, &r);
  cr_assert_geq(n, 0, "%s", mcr_hoststats_last_error(h));
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
  serve(16);
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
  serve(16);
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
  serve(2);
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
  cr_assert_eq(mcr_hoststats_open(&h, dir, -1, err, sizeof err), MCR_ESNAPSHOT);
  mcr_client_t* c = ring_client(1);
  traffic(c, 2);
  mcr_client_free(c);
  /* A segment, but host_stats = 0. */
  serve(4);
  c = ring_client(0);
  traffic(c, 2);
  int slots;
  sum(0, &slots);
  cr_assert_eq(slots, 0);
  mcr_client_free(c);
}

Test(hoststats, a_socket_it_cannot_use_leaves_the_client_working) {
  /* Something in place of the agent's socket that is not the agent's
   * socket (here a symlink) must cost only the host stats, never the
   * client. */
  char path[128];
  snprintf(path, sizeof path, "%s/stats.sock", dir);
  cr_assert_eq(symlink("/dev/null", path), 0);
  mcr_client_t* c = ring_client(1);
  traffic(c, 2);
  mcr_client_free(c);
  mcr_hoststats_t* h;
  char err[256];
  cr_assert_eq(mcr_hoststats_open(&h, dir, -1, err, sizeof err), 0, "%s", err);
  const mcr_hoststat_row_t* r;
  cr_assert_eq(t_hoststats_read(h, &r), MCR_EPERM);
  cr_assert(strstr(mcr_hoststats_last_error(h), "not a socket"), "%s",
            mcr_hoststats_last_error(h));
  mcr_hoststats_free(h);
}

/* ------------------------------------------------ the agent's trust */

/* Registers segfd (a raw registration, as a hostile worker would) and
 * returns the agent's status. *sock gets the connection (left open: it is
 * the registration). */
static int raw_register(int segfd, int* sock) {
  *sock = hs_connect(dir);
  cr_assert_geq(*sock, 0, "%s", strerror(errno));
  return hs_register(*sock, segfd, true);
}

/* A memfd of `size` bytes, sealed or not. */
static int segment(size_t size, bool sealed) {
  int fd = memfd_create("hostile", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  cr_assert_geq(fd, 0);
  cr_assert_eq(ftruncate(fd, (off_t)size), 0);
  if (sealed)
    cr_assert_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
  return fd;
}

/* Whatever a process of the workers' group hands the agent, and whatever
 * it then writes into its own segment, other workers keep counting and
 * readers get sane rows: unsealed or odd-sized segments are refused, a
 * count of entries beyond the segment is clamped, names without their
 * NUL are cut, holes cost nothing. */
Test(hoststats, hostile_registrations_are_refused_or_clamped) {
  serve(16);
  mcr_client_t* c = ring_client(1);
  traffic(c, 7);
  size_t full = MCR__HS_HEAD + 8 * (size_t)MCR__HS_ENTRY;
  int sock[4], seg;
  /* Not sealed: it could shrink under the agent. */
  seg = segment(full, false);
  cr_assert_eq(raw_register(seg, &sock[0]), MCR__HS_BADSEG);
  close(seg);
  /* Sealed, but no whole number of entries. */
  seg = segment(full + 1, true);
  cr_assert_eq(raw_register(seg, &sock[1]), MCR__HS_BADSEG);
  close(seg);
  /* Sealed, sane size, hostile content: a used count far past the end,
   * unterminated names, every byte 0xff in the counters. */
  seg = segment(full, true);
  mcr__hs_head_t hd = {.used = 0x7fffffff, .capacity = 0xffffffff};
  memcpy(hd.magic, MCR__HS_MAGIC, 8);
  cr_assert_eq(pwrite(seg, &hd, sizeof hd, 0), (ssize_t)sizeof hd);
  char ent[MCR__HS_ENTRY];
  memset(ent, 0xff, sizeof ent);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(pwrite(seg, ent, sizeof ent,
                        (off_t)(MCR__HS_HEAD + (size_t)i * MCR__HS_ENTRY)),
                 (ssize_t)sizeof ent);
  cr_assert_eq(raw_register(seg, &sock[2]), MCR__HS_OK);
  close(seg);
  /* A connection that never says what it is: dropped after a second. */
  sock[3] = hs_connect(dir);
  cr_assert_geq(sock[3], 0);

  traffic(c, 1);
  mcr_hoststats_t* h;
  char err[256];
  cr_assert_eq(mcr_hoststats_open(&h, dir, -1, err, sizeof err), 0, "%s", err);
  const mcr_hoststat_row_t* r;
  int n = t_hoststats_read(h, &r);
  cr_assert_gt(n, 0, "%s", mcr_hoststats_last_error(h));
  int hostile = 0;
  uint64_t sets = 0, gets = 0;
  for (int i = 0; i < n; i++) {
    cr_assert_lt(strlen(r[i].node), sizeof r[i].node);
    if (r[i].c.gets == UINT64_MAX) {
      hostile++;
      continue;
    }
    sets += r[i].c.sets;
    gets += r[i].c.gets;
  }
  /* Three entries with a name (the rest of its 8 are holes: zeros). */
  cr_assert_eq(hostile, 3);
  /* The honest client's counters are whole. */
  cr_assert_eq(sets, 8);
  cr_assert_eq(gets, 16);
  mcr_hoststats_free(h);
  char b;
  cr_assert_eq(recv(sock[3], &b, 1, 0), 0, "an idle connection stayed open");
  for (int i = 0; i < 4; i++)
    close(sock[i]);
  mcr_client_free(c);
}

/* ------------------------------------------------ lifecycle */

/* Publishes `n` nodes (the two memcached first, then ports that nobody
 * listens on) as a new generation. */
static void republish(int n) {
  char err[256];
  mcr__snapshot_writer_t* w;
  cr_assert_eq(mcr__snapshot_writer_open(&w, dir, err, sizeof err), 0, "%s",
               err);
  mcr__ring_node_in_t in[16];
  cr_assert_leq(n, 16);
  for (int i = 0; i < n; i++)
    in[i] = (mcr__ring_node_in_t){.host = "127.0.0.1",
                                  .port = (uint16_t)(i == 0   ? m1.port
                                                     : i == 1 ? m2.port
                                                              : 1000 + i),
                                  .weight = 1};
  cr_assert_eq(mcr__snapshot_writer_publish_nodes(w, MCR_DIST_KETAMA, in,
                                                  (size_t)n, NULL),
               0);
  mcr__snapshot_writer_close(w);
}

/* Rows of the last read that belong to process pid (-1: any). */
static int rows_of(int pid) {
  mcr_hoststats_t* h;
  char err[256];
  cr_assert_eq(mcr_hoststats_open(&h, dir, -1, err, sizeof err), 0, "%s", err);
  const mcr_hoststat_row_t* r;
  int n = t_hoststats_read(h, &r), k = 0;
  cr_assert_geq(n, 0, "%s", mcr_hoststats_last_error(h));
  for (int i = 0; i < n; i++)
    k += pid < 0 || r[i].pid == pid;
  mcr_hoststats_free(h);
  return k;
}

/* An agent that restarts knows nothing of the workers registered with its
 * predecessor: a worker registers again at its next ring switch (a new
 * agent always publishes a new generation). */
Test(hoststats, a_restarted_agent_gets_every_worker_back) {
  serve(4);
  mcr_client_t* c = ring_client(1);
  traffic(c, 1);
  cr_assert_gt(rows_of(getpid()), 0);
  mcr_hoststats_server_free(srv);
  srv = NULL;
  serve(4);
  cr_assert_eq(rows_of(getpid()), 0);
  republish(2);
  traffic(c, 1);
  cr_assert_gt(rows_of(getpid()), 0, "the worker did not register again");
  mcr_client_free(c);
}

/* The registration is the process that made it, not its pid alone: a
 * child that inherited the socket and never used the client does not keep
 * a dead parent's counters alive. */
Test(hoststats, a_dead_worker_is_gone_though_a_child_holds_its_socket) {
  serve(4);
  int ready[2], done[2];
  cr_assert_eq(pipe(ready), 0);
  cr_assert_eq(pipe(done), 0);
  pid_t w = fork();
  if (w == 0) {
    mcr_client_t* c = ring_client(1);
    traffic(c, 2);
    if (fork() == 0) { /* holds every descriptor of w, says nothing */
      close(ready[0]);
      close(done[1]);
      char b;
      if (read(done[0], &b, 1) < 0) {
      }
      _exit(0);
    }
    if (write(ready[1], "r", 1) != 1)
      _exit(2);
    _exit(0); /* dies without freeing the client */
  }
  close(ready[1]);
  close(done[0]);
  char b;
  cr_assert_eq(read(ready[0], &b, 1), 1);
  waitpid(w, NULL, 0);
  cr_assert_eq(rows_of(w), 0, "a dead worker still has counters");
  /* A process that now gets the dead worker's pid is not it either. */
  /* ns_last_pid is writable by mode to anyone and refuses the write
   * itself without the privilege: only fclose says so, and it closes the
   * file whatever it returns. */
  FILE* f = fopen("/proc/sys/kernel/ns_last_pid", "w");
  pid_t x = -1;
  bool set = false;
  if (f) {
    bool wrote = fprintf(f, "%d", (int)w - 1) > 0;
    set = fclose(f) == 0 && wrote;
  }
  if (set) {
    x = fork();
    if (x == 0) {
      pause();
      _exit(0);
    }
  }
  if (x == w)
    cr_assert_eq(rows_of(w), 0, "pid %d reused: its new owner has counters",
                 (int)w);
  else
    cr_log_info("pid reuse not forced (needs root): checked pid death only");
  if (x > 0) {
    kill(x, SIGKILL);
    waitpid(x, NULL, 0);
  }
  close(done[1]); /* the grandchild exits */
}

/* Every slot taken by a worker that died while a forked child of it still
 * holds its socket (so the agent never saw the connection close), and
 * nobody has read the stats since: a new worker still registers, because
 * the agent drops dead registrations before it answers FULL. */
Test(hoststats, a_full_registry_of_dead_workers_takes_a_new_one) {
  enum { SLOTS = 3 };
  serve(SLOTS);
  int done[2];
  cr_assert_eq(pipe(done), 0);
  for (int i = 0; i < SLOTS; i++) {
    pid_t w = fork();
    cr_assert_geq(w, 0);
    if (w == 0) {
      close(done[1]);
      mcr_client_t* c = ring_client(1); /* registers: a slot is taken */
      traffic(c, 1);
      if (fork() == 0) { /* holds the registration's socket, says nothing */
        char b;
        if (read(done[0], &b, 1) < 0) {
        }
        _exit(0);
      }
      _exit(0); /* dies without freeing the client */
    }
    int st;
    cr_assert_eq(waitpid(w, &st, 0), w);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker %d failed", i);
  }
  close(done[0]);
  /* A raw registration gets the agent's answer itself. */
  int seg = segment(MCR__HS_HEAD + 8 * (size_t)MCR__HS_ENTRY, true), sock;
  cr_assert_eq(raw_register(seg, &sock), MCR__HS_OK,
               "registry full of dead workers");
  close(seg);
  /* And a client registers too, counting from zero. */
  mcr_client_t* c = ring_client(1);
  traffic(c, 2);
  int slots;
  mcr_node_counters_t t = sum(0, &slots);
  cr_assert_eq(slots, 2, "%d registrations live (the raw one and ours)", slots);
  cr_assert_eq(t.sets, 2);
  mcr_client_free(c);
  close(sock);
  close(done[1]); /* the holders exit */
}

/* A worker whose segment is full reuses the entries of nodes that left the
 * ring, and stops counting new nodes (without rescanning every call) only
 * when every entry belongs to a node still in the ring. */
extern uint32_t mcr__hs_capacity;
/* Makes every node of c's ring (naming one makes it, without connecting),
 * as traffic to every node would. */
static void use_every_node(mcr_client_t* c) {
  for (size_t i = 0; i < mcr_client_node_count(c); i++)
    cr_assert_not_null(mcr_client_node_name(c, i));
}

Test(hoststats, a_full_segment_recycles_nodes_that_left) {
  mcr__hs_capacity = 4;
  serve(4);
  republish(4);
  mcr_client_t* c = ring_client(1);
  /* A node gets its entry when the client first uses it; a call (its
   * outcome does not matter: most nodes here do not listen) is what makes
   * the client look for a new generation. */
  mcr_item_t it;
  (void)mcr_client_get(c, "x", 1, &it);
  cr_assert_leq(rows_of(getpid()), 1);
  use_every_node(c);
  cr_assert_eq(rows_of(getpid()), 4);
  /* Six nodes: the four entries stay with nodes still in the ring. */
  republish(6);
  for (int i = 0; i < 20; i++)
    (void)mcr_client_get(c, "x", 1, &it);
  use_every_node(c);
  cr_assert_eq(rows_of(getpid()), 4);
  /* Back to the two memcached: traffic still counts on both. */
  republish(2);
  traffic(c, 4);
  cr_assert_eq(rows_of(getpid()), 4);
  mcr_node_counters_t t = sum(getpid(), NULL);
  cr_assert_eq(t.sets, 4);
  mcr_client_free(c);
  mcr__hs_capacity = 0;
}

/* Host stats cost memory only for what is counted: a worker's segment has
 * pages for the entries it uses, and nothing of it lives in the ring
 * directory; files an older agent left there are removed. */
Test(hoststats, segments_cost_what_they_count_and_leftovers_go) {
  char path[128];
  snprintf(path, sizeof path, "%s/stats", dir);
  int fd = open(path, O_CREAT | O_WRONLY, 0660);
  cr_assert_geq(fd, 0);
  cr_assert_eq(ftruncate(fd, 335 << 20), 0); /* 0.1's 1,024 slots */
  close(fd);
  snprintf(path, sizeof path, "%s/stats.tmp.%d", dir, (int)getpid());
  fd = open(path, O_CREAT | O_WRONLY, 0660);
  cr_assert_geq(fd, 0);
  close(fd);
  republish(2); /* the writer opens the directory, as the agent does */
  snprintf(path, sizeof path, "%s/stats", dir);
  cr_assert_neq(access(path, F_OK), 0, "the old stats file stayed");
  snprintf(path, sizeof path, "%s/stats.tmp.%d", dir, (int)getpid());
  cr_assert_neq(access(path, F_OK), 0, "a stats.tmp file stayed");

  serve(4);
  mcr_client_t* c = ring_client(1);
  traffic(c, 3);
  /* Find our segment among our descriptors. */
  long long blocks = -1;
  for (int i = 0; i < 1024 && blocks < 0; i++) {
    char link[64], target[128];
    snprintf(link, sizeof link, "/proc/self/fd/%d", i);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0)
      continue;
    target[n] = '\0';
    struct stat st;
    if (strstr(target, "memfd:mcring-stats") && fstat(i, &st) == 0) {
      cr_assert_eq(st.st_size,
                   MCR__HS_HEAD + (off_t)MCR__HS_CAP * MCR__HS_ENTRY);
      blocks = (long long)st.st_blocks;
    }
  }
  cr_assert_geq(blocks, 0, "no segment found");
  /* 64 entries are ready from the start: about 20 KiB of 20 MiB. */
  cr_assert_leq(blocks * 512, 64 * 1024, "%lld bytes allocated", blocks * 512);
  mcr_client_free(c);
}
