/* bench_lookup.c — nanoseconds per key lookup, mcring against libmemcached.
 *
 * For 10, 100 and 1,000 nodes (weights 1..3, some on port 11212) it builds
 * the ring in each of mcring's three modes and a libmemcached handle with
 * MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED on the same node list, then times
 * mcr_ring_locate and memcached_generate_hash over the same pre-generated
 * keys (20..40 bytes, like typical cache keys). Debian's libmemcached
 * 1.1.4 aborts (an assertion in update_continuum) above 100 servers, so a
 * child process tries each size first and the column says "n/a" when it
 * dies. Before timing, it checks
 * that the ketama-libmemcached mode sends every key to the node libmemcached
 * picks, so the comparison is between equal work. Each figure is the median
 * of REPEATS runs, the ones of a size interleaved (libmemcached, then each
 * mode, REPEATS times), and is also printed as a "result" line for
 * bench/run.sh. Targets (issue 6): MD5 modes <= 0.6x libmemcached, xxh3
 * <= 25 ns at 100 nodes. `loop` (below) is the same lookup for callgrind,
 * on rings up to 65,535 nodes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libmemcached/memcached.h>

#include "common.h"
#include "mcring.h"

#define NKEYS 4096
#define ROUNDS 100
#define REPEATS 5

static char keys[NKEYS][48];
static size_t key_lens[NKEYS];

/* Node i: 10.<i/250>.<i%250>.1, port 11212 every 7th, weight 1 + i % 3. */
static void node(size_t i, char* host, size_t hlen, unsigned* port,
                 unsigned* weight) {
  snprintf(host, hlen, "10.%zu.%zu.1", i / 250, i % 250);
  *port = i % 7 == 6 ? 11212 : 11211;
  *weight = 1 + (unsigned)(i % 3);
}

static char* server_list(size_t n) {
  char* s = malloc(n * 40 + 1);
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    char host[32];
    unsigned port, weight;
    node(i, host, sizeof(host), &port, &weight);
    off += (size_t)sprintf(s + off, "%s%s:%u:%u", i ? "," : "", host, port,
                           weight);
  }
  return s;
}

static memcached_st* lm_new(size_t n) {
  memcached_st* m = memcached_create(NULL);
  memcached_behavior_set(m, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1);
  /* One push of the whole list: adding servers one at a time rebuilds the
   * continuum each time and trips an assertion in libmemcached 1.1. */
  memcached_server_list_st list = NULL;
  for (size_t i = 0; i < n; i++) {
    char host[32];
    unsigned port, weight;
    memcached_return_t rc;
    node(i, host, sizeof(host), &port, &weight);
    list = memcached_server_list_append_with_weight(list, host, (in_port_t)port,
                                                    weight, &rc);
  }
  memcached_server_push(m, list);
  memcached_server_list_free(list);
  return m;
}

/* True when libmemcached survives building a continuum of n servers. */
static int lm_usable(size_t n) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    freopen("/dev/null", "w", stderr);
    memcached_st* m = lm_new(n);
    memcached_generate_hash(m, "probe", 5);
    _exit(0);
  }
  int st = 0;
  if (pid < 0 || waitpid(pid, &st, 0) != pid)
    return 0;
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static volatile size_t sink;

static double time_ring(const mcr_ring_t* r) {
  size_t acc = 0;
  double t0 = (double)bench_now_ns();
  for (int round = 0; round < ROUNDS; round++)
    for (size_t k = 0; k < NKEYS; k++)
      acc += mcr_ring_locate(r, keys[k], key_lens[k]);
  double t = ((double)bench_now_ns() - t0) / ((double)ROUNDS * NKEYS);
  sink = acc;
  return t;
}

static double time_lm(memcached_st* m) {
  size_t acc = 0;
  double t0 = (double)bench_now_ns();
  for (int round = 0; round < ROUNDS; round++)
    for (size_t k = 0; k < NKEYS; k++)
      acc += memcached_generate_hash(m, keys[k], key_lens[k]);
  double t = ((double)bench_now_ns() - t0) / ((double)ROUNDS * NKEYS);
  sink = acc;
  return t;
}

/* `bench_lookup loop NODES MODE COUNT`: COUNT lookups on a ring of NODES
 * nodes of weight 1 (160 points each), for bench/run.sh to count under
 * callgrind with --toggle-collect=mcr_ring_locate: the instructions of the
 * lookups alone, whatever building the ring cost. */
static int loop(size_t n, const char* mode_name, long count) {
  mcr_distribution_t mode;
  if (mcr_distribution_parse(mode_name, &mode) != 0 || n < 1 || n > 65535 ||
      count < 1) {
    fprintf(stderr, "usage: bench_lookup loop NODES(1..65535) MODE COUNT\n");
    return 2;
  }
  char* list = malloc(n * 24 + 1);
  size_t off = 0;
  for (size_t i = 0; i < n; i++)
    off += (size_t)sprintf(list + off, "%s10.%zu.%zu.%zu:11211", i ? "," : "",
                           i >> 16, i >> 8 & 255, i & 255);
  mcr_ring_t* r;
  int rc = mcr_ring_build(&r, mode, list, NULL, 0);
  free(list);
  if (rc) {
    fprintf(stderr, "build: %s\n", mcr_strerror(rc));
    return 1;
  }
  size_t acc = 0;
  for (long i = 0; i < count; i++)
    acc += mcr_ring_locate(r, keys[i % NKEYS], key_lens[i % NKEYS]);
  sink = acc;
  mcr_ring_free(r);
  return 0;
}

int main(int argc, char** argv) {
  srand(42);
  for (size_t k = 0; k < NKEYS; k++) {
    int len = 20 + rand() % 21;
    int p = snprintf(keys[k], sizeof(keys[k]), "user:%08x:", rand());
    while (p < len)
      keys[k][p++] = (char)('a' + rand() % 26);
    keys[k][p] = '\0';
    key_lens[k] = (size_t)p;
  }
  if (argc == 5 && !strcmp(argv[1], "loop"))
    return loop(strtoul(argv[2], NULL, 10), argv[3], strtol(argv[4], NULL, 10));
  if (argc != 1) {
    fprintf(stderr, "usage: bench_lookup [loop NODES MODE COUNT]\n");
    return 2;
  }
  static const size_t sizes[] = {10, 100, 1000};
  int failed = 0;
  printf("%-6s %-20s %10s %14s %8s\n", "nodes", "mode", "ns/key",
         "libmemcached", "ratio");
  for (size_t si = 0; si < 3; si++) {
    size_t n = sizes[si];
    char* list = server_list(n);
    memcached_st* m = lm_usable(n) ? lm_new(n) : NULL;
    mcr_ring_t* rings[3];
    for (int mode = 0; mode < 3; mode++) {
      int rc =
          mcr_ring_build(&rings[mode], (mcr_distribution_t)mode, list, NULL, 0);
      if (rc) {
        fprintf(stderr, "build: %s\n", mcr_strerror(rc));
        return 1;
      }
    }
    if (m) {
      size_t diff = 0;
      for (size_t k = 0; k < NKEYS; k++)
        diff += mcr_ring_locate(rings[MCR_DIST_KETAMA_LIBMEMCACHED], keys[k],
                                key_lens[k]) !=
                memcached_generate_hash(m, keys[k], key_lens[k]);
      if (diff) {
        printf("MISMATCH: %zu of %d keys differ from libmemcached\n", diff,
               NKEYS);
        failed = 1;
      }
    }
    double t_lm[REPEATS], t[3][REPEATS];
    for (int rep = 0; rep < REPEATS; rep++) {
      t_lm[rep] = m ? time_lm(m) : 0;
      for (int mode = 0; mode < 3; mode++)
        t[mode][rep] = time_ring(rings[mode]);
    }
    double lm = bench_median(t_lm, REPEATS);
    char name[64];
    if (m) {
      snprintf(name, sizeof name, "lookup_ns_libmemcached_%zu", n);
      bench_result(name, lm);
    }
    for (int mode = 0; mode < 3; mode++) {
      double tm = bench_median(t[mode], REPEATS);
      const char* mname = mcr_distribution_name((mcr_distribution_t)mode);
      char key[32];
      snprintf(key, sizeof key, "%s", mname);
      for (char* p = key; *p; p++)
        if (*p == '-')
          *p = '_';
      snprintf(name, sizeof name, "lookup_ns_%s_%zu", key, n);
      bench_result(name, tm);
      if (m) {
        snprintf(name, sizeof name, "lookup_ratio_%s_%zu", key, n);
        bench_result(name, tm / lm);
        printf("%-6zu %-20s %10.1f %14.1f %7.2fx\n", n, mname, tm, lm, tm / lm);
      } else {
        printf("%-6zu %-20s %10.1f %14s %8s\n", n, mname, tm, "n/a", "-");
      }
      mcr_ring_free(rings[mode]);
    }
    if (m)
      memcached_free(m);
    free(list);
  }
  return failed;
}
