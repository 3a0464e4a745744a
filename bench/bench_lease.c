/* bench_lease.c — the stampede scenario of `make bench`: what leases save
 * a host when a hot key expires.
 *
 *   bench_lease PORT [WORKERS SECONDS COMPUTE_MS]
 *
 * WORKERS forked processes (default 64) read one hot key in a loop with a
 * 1 ms pause between reads, for SECONDS (default 5) per mode. The key is
 * stored with a 1 s TTL, so it expires about once a second; a reader that
 * must recompute it "computes" for COMPUTE_MS (default 50, a sleep) and
 * stores it. Two modes, run one after the other against one memcached:
 *
 *   plain  get; on a miss compute and set (what every client does today);
 *   lease  mcr_client_lease_get; WON computes and fills, HIT / STALE use
 *          the value, BUSY (no value within wait_ms 1000) counts as a
 *          failed read.
 *
 * Each computation's start time goes into a shared page; the parent groups
 * them into expiries (a computation starting more than 500 ms after the
 * previous group's first one opens a new group) and prints, per mode:
 * recomputations per expiry, read latency p50 / p99 / p99.9 (a read that
 * computes or waits counts whole), reads per second and failed reads.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "mcring.h"

#define MAX_WORKERS 256
#define MAX_COMPUTES 65536
#define MAX_SAMPLES 20000 /* latency samples kept per worker */

typedef struct {
  uint64_t computes;               /* shared counter (atomic add) */
  uint64_t compute_ns[MAX_COMPUTES]; /* start of each computation */
  struct {
    uint64_t reads, failed, nsamples;
    float ms[MAX_SAMPLES];
  } w[MAX_WORKERS];
} shared_t;

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

static void record_compute(shared_t* s, uint64_t t) {
  uint64_t i = __atomic_fetch_add(&s->computes, 1, __ATOMIC_RELAXED);
  if (i < MAX_COMPUTES)
    s->compute_ns[i] = t;
}

static int worker(shared_t* s, int id, const char* servers, int lease,
                  double seconds, int compute_ms) {
  mcr_client_opts_t o;
  mcr_client_opts_init(&o);
  o.servers = servers;
  o.io_timeout_ms = 2000;
  mcr_client_t* c = NULL;
  char err[256];
  if (mcr_client_new(&c, &o, err, sizeof err) < 0) {
    fprintf(stderr, "bench_lease: %s\n", err);
    return 1;
  }
  mcr_lease_opts_t lo;
  mcr_lease_opts_init(&lo);
  lo.lease_ttl = 5;
  const char* key = "hot";
  const char value[] = "the expensive value";
  double end = bench_now() + seconds;
  while (bench_now() < end) {
    uint64_t t0 = bench_now_ns();
    int ok = 1;
    if (lease) {
      mcr_lease_t l;
      int rc = mcr_client_lease_get(c, key, 3, &lo, &l);
      if (rc < 0 || l.state == MCR_LEASE_BUSY) {
        ok = 0;
      } else if (l.state == MCR_LEASE_WON) {
        record_compute(s, t0);
        sleep_ms(compute_ms);
        rc = mcr_client_lease_fill(c, key, 3, value, sizeof value - 1, 0, 1,
                                   &l);
        ok = rc == MCR_OK || rc == MCR_EXISTS || rc == MCR_NOT_STORED;
      }
    } else {
      mcr_item_t it;
      int rc = mcr_client_get(c, key, 3, &it);
      if (rc == MCR_MISS) {
        record_compute(s, t0);
        sleep_ms(compute_ms);
        rc = mcr_client_set(c, key, 3, value, sizeof value - 1, 0, 1, 0);
      }
      ok = rc == MCR_OK;
    }
    double ms = (double)(bench_now_ns() - t0) / 1e6;
    s->w[id].reads++;
    if (!ok)
      s->w[id].failed++;
    if (s->w[id].nsamples < MAX_SAMPLES)
      s->w[id].ms[s->w[id].nsamples++] = (float)ms;
    sleep_ms(1);
  }
  mcr_client_free(c);
  return 0;
}

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

static int cmp_u64(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
  return x < y ? -1 : x > y;
}

static void run(const char* name, const char* servers, int lease, int workers,
                double seconds, int compute_ms) {
  shared_t* s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (s == MAP_FAILED)
    bench_die("bench_lease: mmap failed");
  pid_t pids[MAX_WORKERS];
  for (int i = 0; i < workers; i++) {
    pids[i] = fork();
    if (pids[i] < 0)
      bench_die("bench_lease: fork failed");
    if (pids[i] == 0)
      _exit(worker(s, i, servers, lease, seconds, compute_ms));
  }
  int failed_workers = 0;
  for (int i = 0; i < workers; i++) {
    int st;
    if (waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) ||
        WEXITSTATUS(st) != 0)
      failed_workers++;
  }
  if (failed_workers)
    bench_die("bench_lease: %d workers failed", failed_workers);

  uint64_t n = s->computes < MAX_COMPUTES ? s->computes : MAX_COMPUTES;
  qsort(s->compute_ns, n, sizeof s->compute_ns[0], cmp_u64);
  uint64_t expiries = 0, first = 0;
  for (uint64_t i = 0; i < n; i++)
    if (i == 0 || s->compute_ns[i] - first > 500000000ull) {
      expiries++;
      first = s->compute_ns[i];
    }
  uint64_t reads = 0, failed = 0, ns = 0;
  for (int i = 0; i < workers; i++) {
    reads += s->w[i].reads;
    failed += s->w[i].failed;
    ns += s->w[i].nsamples;
  }
  double* all = malloc(sizeof(double) * (ns ? ns : 1));
  if (!all)
    bench_die("bench_lease: out of memory");
  size_t k = 0;
  for (int i = 0; i < workers; i++)
    for (uint64_t j = 0; j < s->w[i].nsamples; j++)
      all[k++] = s->w[i].ms[j];
  qsort(all, k, sizeof all[0], cmp_double);
#define PCT(p) (k ? all[(size_t)((double)(k - 1) * (p))] : 0)
  char key[64];
  printf("%s: %d workers, %" PRIu64 " computations in %" PRIu64
         " expiries, %" PRIu64 " reads (%" PRIu64
         " failed), p50 %.3f p99 %.3f p99.9 %.3f ms\n",
         name, workers, n, expiries, reads, failed, PCT(0.5), PCT(0.99),
         PCT(0.999));
  snprintf(key, sizeof key, "stampede_recomputes_per_expiry_%s", name);
  bench_result(key, expiries ? (double)n / (double)expiries : 0);
  snprintf(key, sizeof key, "stampede_p99_ms_%s", name);
  bench_result(key, PCT(0.99));
  snprintf(key, sizeof key, "stampede_p999_ms_%s", name);
  bench_result(key, PCT(0.999));
  snprintf(key, sizeof key, "stampede_failed_reads_%s", name);
  bench_result(key, (double)failed);
  free(all);
  munmap(s, sizeof *s);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_lease PORT [WORKERS SECONDS COMPUTE_MS]\n");
    return 2;
  }
  char servers[64];
  snprintf(servers, sizeof servers, "127.0.0.1:%d", atoi(argv[1]));
  int workers = argc > 2 ? atoi(argv[2]) : 64;
  double seconds = argc > 3 ? atof(argv[3]) : 5;
  int compute_ms = argc > 4 ? atoi(argv[4]) : 50;
  if (workers < 1 || workers > MAX_WORKERS || seconds <= 0 || compute_ms < 0)
    bench_die("bench_lease: bad arguments");
  run("plain", servers, 0, workers, seconds, compute_ms);
  sleep_ms(1500); /* let the last value expire */
  run("lease", servers, 1, workers, seconds, compute_ms);
  return 0;
}
