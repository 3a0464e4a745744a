/* bench_agent.c — what the agent costs per poll and per publication.
 *
 * The agent's two loops that grow with the cluster, timed in CPU time of
 * the thread that runs them (CLOCK_THREAD_CPUTIME_ID: user plus system, so
 * the socket reads count; the fake endpoint runs in another thread and
 * does not):
 *
 *   poll_unchanged_us_<N>  one poll of an ElastiCache endpoint whose reply
 *                          did not change (agent_source_poll, as main.c
 *                          calls it, then agent_pub_apply, which finds the
 *                          list unchanged), N nodes; median of POLLS polls
 *   publish_ms_<N>         building and writing one ring of N nodes
 *   publish_ms_libmemcached_<N>  (mcr__snapshot_writer_publish_nodes: the
 *                          ring builder, the file, its verification) in
 *                          the `ketama` and `ketama-libmemcached` modes;
 *                          median of PUBLISHES
 *
 *   ring_build_ms_65535    the ring builder alone (lib/ketama.c) on a
 *   ring_points_ms_65535   65,535-node `ketama` ring, and the fast point
 *                          maker (lib/ring_points.c) on the same nodes,
 *                          checked to give the same arrays; one run each
 *
 * The endpoint is the tests' fake (tests/support/fakecfg.c, in a thread)
 * serving N nodes "node<i>.bench|10.<i>>16>.<i>>8&255>.<i&255>|11211";
 * rings are written to a fresh directory under /dev/shm (or TMPDIR when
 * there is no /dev/shm), removed afterwards. Every figure is printed as a
 * "result" line for bench/run.sh. Target (issue 21): an unchanged poll at
 * 5,000 nodes <= 500 us.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "common.h"
#include "fakecfg.h"
#include "ring.h"

#define POLLS 21
#define PUBLISHES 3

/* CPU time of the calling thread (user and system), microseconds. */
static double thread_cpu_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* A scratch directory; its path in dir[cap]. */
static void scratch_dir(char* dir, size_t cap) {
  struct stat st;
  const char* base = stat("/dev/shm", &st) == 0 ? "/dev/shm" : NULL;
  if (!base)
    base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(dir, cap, "%s/mcring-bench-agent-XXXXXX", base);
  if (!mkdtemp(dir))
    bench_die("mkdtemp %s failed", dir);
}

static void remove_dir(const char* dir) {
  char cmd[640];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "bench_agent: could not remove %s\n", dir);
}

/* Writes the node file of n nodes for the fake endpoint. */
static void write_nodes(const char* path, int n) {
  size_t cap = (size_t)n * 48 + 1;
  char* text = malloc(cap);
  if (!text)
    bench_die("out of memory");
  size_t len = 0;
  for (int i = 0; i < n; i++)
    len += (size_t)snprintf(text + len, cap - len,
                            "node%d.bench|10.%d.%d.%d|11211\n", i, i >> 16,
                            (i >> 8) & 255, i & 255);
  if (fakecfg_write_file(path, text) != 0)
    bench_die("cannot write %s", path);
  free(text);
}

/* Median CPU microseconds of an unchanged poll of n nodes. */
static double poll_unchanged(int n, const char* dir) {
  char nodes_file[640], ring_dir[640];
  snprintf(nodes_file, sizeof(nodes_file), "%s/nodes.%d", dir, n);
  snprintf(ring_dir, sizeof(ring_dir), "%s/ring.%d", dir, n);
  write_nodes(nodes_file, n);
  fakecfg_opts_t fo = {.mode = FAKECFG_NORMAL, .nodes_file = nodes_file};
  fakecfg_t* f = fakecfg_start(&fo);
  if (!f)
    bench_die("cannot start the fake endpoint");
  char ep[64];
  snprintf(ep, sizeof(ep), "%s", fakecfg_endpoint(f));
  agent_source_t src = {.kind = AGENT_SRC_ELASTICACHE,
                        .arg = ep,
                        .connect_timeout_ms = 5000,
                        .io_timeout_ms = 5000};
  agent_pub_t* pub;
  char err[512];
  if (agent_pub_open(&pub, ring_dir, NULL, err, sizeof(err)) != 0)
    bench_die("open %s: %s", ring_dir, err);
  mcr__nodes_t nodes = {0};
  double v[POLLS];
  for (int i = -1; i < POLLS; i++) {
    double t0 = thread_cpu_us();
    int rc = agent_source_poll(&src, &nodes, err, sizeof(err));
    bool published = false;
    uint64_t gen;
    if (!rc)
      rc = agent_pub_apply(pub, MCR_DIST_KETAMA, &nodes, &published, &gen, err,
                           sizeof(err));
    double t1 = thread_cpu_us();
    if (rc || nodes.n != (size_t)n)
      bench_die("poll of %d nodes: %s", n, err);
    if (i < 0)
      continue; /* the first poll publishes */
    if (published)
      bench_die("an unchanged poll published");
    v[i] = t1 - t0;
  }
  mcr__nodes_free(&nodes);
  agent_source_reset(&src);
  agent_pub_close(pub);
  fakecfg_stop(f);
  return bench_median(v, POLLS);
}

/* Median CPU milliseconds of one publication of n nodes in mode. */
static double publish(int n, mcr_distribution_t mode, const char* dir) {
  char ring_dir[640], err[512];
  snprintf(ring_dir, sizeof(ring_dir), "%s/pub.%d.%d", dir, n, (int)mode);
  mcr__snapshot_writer_t* w;
  if (mcr__snapshot_writer_open(&w, ring_dir, err, sizeof(err)) != 0)
    bench_die("open %s: %s", ring_dir, err);
  mcr__ring_node_in_t* in = calloc((size_t)n, sizeof(*in));
  char(*hosts)[32] = calloc((size_t)n, sizeof(*hosts));
  char(*addrs)[32] = calloc((size_t)n, sizeof(*addrs));
  if (!in || !hosts || !addrs)
    bench_die("out of memory");
  for (int i = 0; i < n; i++) {
    snprintf(hosts[i], sizeof(hosts[i]), "node%d.bench", i);
    snprintf(addrs[i], sizeof(addrs[i]), "10.%d.%d.%d", i >> 16, (i >> 8) & 255,
             i & 255);
    in[i] = (mcr__ring_node_in_t){.host = hosts[i],
                                  .address = addrs[i],
                                  .port = 11211,
                                  .weight = 1,
                                  .state = MCR__NODE_UP};
  }
  double v[PUBLISHES];
  for (int i = 0; i < PUBLISHES; i++) {
    double t0 = thread_cpu_us();
    uint64_t gen;
    int rc = mcr__snapshot_writer_publish_nodes(w, mode, in, (size_t)n, &gen);
    double t1 = thread_cpu_us();
    if (rc)
      bench_die("publish %d nodes: %s", n, mcr__snapshot_writer_error(w));
    v[i] = (t1 - t0) / 1000;
  }
  mcr__snapshot_writer_close(w);
  free(in);
  free(hosts);
  free(addrs);
  return bench_median(v, PUBLISHES);
}

/* CPU milliseconds to make the points of an n-node `ketama` ring: the ring
 * builder (strings by snprintf, qsort), then lib/ring_points.c on the same
 * nodes (the two are checked equal by tests/test_ring_points.c). */
static void points_both_ways(int n, double* builder_ms, double* fast_ms) {
  mcr__ring_node_in_t* in = calloc((size_t)n, sizeof(*in));
  char(*addrs)[32] = calloc((size_t)n, sizeof(*addrs));
  uint32_t* hashes = calloc((size_t)n, sizeof(*hashes));
  if (!in || !addrs || !hashes)
    bench_die("out of memory");
  for (int i = 0; i < n; i++) {
    snprintf(addrs[i], sizeof(addrs[i]), "10.%d.%d.%d", i >> 16, (i >> 8) & 255,
             i & 255);
    in[i] = (mcr__ring_node_in_t){
        .host = addrs[i], .address = addrs[i], .port = 11211, .weight = 1};
    hashes[i] = 40;
  }
  char err[256];
  mcr_ring_t* r;
  double t0 = thread_cpu_us();
  if (mcr__ring_build_nodes(&r, MCR_DIST_KETAMA, in, (size_t)n, err,
                            sizeof(err)) != 0)
    bench_die("build: %s", err);
  double t1 = thread_cpu_us();
  uint32_t* points = malloc((size_t)r->npoints * sizeof(*points));
  uint32_t* owners = malloc((size_t)r->npoints * sizeof(*owners));
  size_t np;
  double t2 = thread_cpu_us();
  if (!points || !owners ||
      mcr__ring_points(MCR_DIST_KETAMA, r->nodes, (size_t)n, hashes, points,
                       owners, &np) != 0)
    bench_die("ring points failed");
  double t3 = thread_cpu_us();
  if (np != r->npoints ||
      memcmp(points, r->points, np * sizeof(*points)) != 0 ||
      memcmp(owners, r->owners, np * sizeof(*owners)) != 0)
    bench_die("ring_points.c and the builder disagree");
  *builder_ms = (t1 - t0) / 1000;
  *fast_ms = (t3 - t2) / 1000;
  mcr_ring_free(r);
  free(points);
  free(owners);
  free(in);
  free(addrs);
  free(hashes);
}

int main(int argc, char** argv) {
  static const int poll_sizes[] = {1000, 5000, 65535};
  static const int pub_sizes[] = {5000, 65535};
  char dir[512], name[64];
  scratch_dir(dir, sizeof(dir));
  agent_log_init(false, AGENT_LOG_ERROR);
  for (size_t i = 0; i < sizeof(poll_sizes) / sizeof(poll_sizes[0]); i++) {
    double us = poll_unchanged(poll_sizes[i], dir);
    printf("unchanged poll, %5d nodes: %9.1f us CPU\n", poll_sizes[i], us);
    snprintf(name, sizeof(name), "poll_unchanged_us_%d", poll_sizes[i]);
    bench_result(name, us);
  }
  for (size_t i = 0; i < sizeof(pub_sizes) / sizeof(pub_sizes[0]); i++) {
    double k = publish(pub_sizes[i], MCR_DIST_KETAMA, dir);
    double l = publish(pub_sizes[i], MCR_DIST_KETAMA_LIBMEMCACHED, dir);
    printf(
        "publish, %5d nodes: ketama %8.1f ms, ketama-libmemcached %8.1f "
        "ms CPU\n",
        pub_sizes[i], k, l);
    snprintf(name, sizeof(name), "publish_ms_%d", pub_sizes[i]);
    bench_result(name, k);
    snprintf(name, sizeof(name), "publish_ms_libmemcached_%d", pub_sizes[i]);
    bench_result(name, l);
  }
  double b, f;
  points_both_ways(65535, &b, &f);
  printf(
      "ring points, 65535 nodes: builder %.1f ms, ring_points.c %.1f ms "
      "CPU\n",
      b, f);
  bench_result("ring_build_ms_65535", b);
  bench_result("ring_points_ms_65535", f);
  remove_dir(dir);
  (void)argc;
  (void)argv;
  return 0;
}
